//! VIPs the host's stack takes traffic for (a local real server, or ports no service
//! takes), kept on the host twins. Runs `ip` with no lock of the model held.

use super::*;

impl Appliance {
    /// Puts the VIPs the host takes traffic for on the host twins (and takes away
    /// those no longer needed), so the host's stack accepts their traffic.
    pub(super) fn sync_host_vips(&self, want: Vec<std::net::IpAddr>) {
        if self.twins.is_empty() {
            return;
        }
        let mut have = self.host_vips.lock();
        let ip = |verb: &str, vip: &std::net::IpAddr, twin: &str| {
            let len = if vip.is_ipv4() { 32 } else { 128 };
            // No duplicate address detection for an IPv6 VIP: the data plane answers for it.
            let nodad = if vip.is_ipv6() && verb == "add" {
                &["nodad"][..]
            } else {
                &[]
            };
            let prefix = format!("{vip}/{len}");
            let mut args = vec!["addr", verb, &prefix, "dev", twin];
            args.extend(nodad);
            let ok = crate::iproute::ip(&args).is_ok();
            if !ok && verb == "add" {
                crate::log::log(
                    crate::log::Level::Warning,
                    "host twin",
                    Some(twin),
                    format_args!("cannot put {vip} on host twin {twin}"),
                );
            }
        };
        for vip in want.iter().filter(|v| !have.contains(v)) {
            self.twins.iter().for_each(|t| ip("add", vip, t));
        }
        for vip in have.iter().filter(|v| !want.contains(v)) {
            self.twins.iter().for_each(|t| ip("del", vip, t));
        }
        *have = want;
    }

    /// Puts the start-up configuration's local-server VIPs on the host twins.
    pub fn refresh_host_vips(&self) {
        let want = self.director.lock().local_vips();
        self.sync_host_vips(want);
    }
}
