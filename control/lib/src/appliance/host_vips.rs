//! VIPs the host's stack takes traffic for (a local real server, or ports no service
//! takes), kept on the host twins. Runs `ip` with no lock of the model held.

use super::*;
use rvs_core::engine::Floating;

impl Appliance {
    /// Puts the VIPs the host takes traffic for on the host twins (and takes away
    /// those no longer needed), so the host's stack accepts their traffic. An address
    /// VRRP manages (`floating`) is VRRP's on the twins: put there while held, with its
    /// own prefix, and taken away otherwise (a BACKUP's host must not own it); one that
    /// becomes VRRP's while held keeps its entry (it may be VRRP's very one).
    pub(super) fn sync_host_vips(&self, want: Vec<std::net::IpAddr>, floating: &[Floating]) {
        if self.twins.is_empty() {
            return;
        }
        let managed = |v: &std::net::IpAddr| floating.iter().any(|f| f.addr == *v);
        let held = |v: &std::net::IpAddr| floating.iter().any(|f| f.addr == *v && f.held);
        let want: Vec<std::net::IpAddr> = want.into_iter().filter(|v| !managed(v)).collect();
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
        for vip in have.iter().filter(|v| !want.contains(v) && !held(v)) {
            self.twins.iter().for_each(|t| ip("del", vip, t));
        }
        *have = want;
    }

    /// Puts the start-up configuration's local-server VIPs on the host twins.
    pub fn refresh_host_vips(&self) {
        let (want, floating) = {
            let d = self.director.lock();
            (d.local_vips(), d.floating.clone())
        };
        self.sync_host_vips(want, &floating);
    }
}
