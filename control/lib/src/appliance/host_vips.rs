//! VIPs the host's stack takes traffic for (a local real server, or ports no service
//! takes), kept on the host twins. Runs `ip` with no lock of the model held.

use super::*;
use rvs_core::engine::Floating;
use std::net::IpAddr;

/// What the host twins hold, read from the model at once (`ip` then runs without its lock).
pub(super) struct HostVips {
    /// The VIPs the host takes traffic for (`Director::local_vips`).
    want: Vec<IpAddr>,
    /// Those of them a local real server serves.
    served: Vec<IpAddr>,
    /// VRRP's addresses.
    floating: Vec<Floating>,
}

impl HostVips {
    pub(super) fn of(d: &Director) -> HostVips {
        HostVips {
            want: d.local_vips(),
            served: d.vips_served_here(),
            floating: d.floating.clone(),
        }
    }
}

impl Appliance {
    /// Puts the VIPs the host takes traffic for on the host twins (and takes away
    /// those no longer needed), so the host's stack accepts their traffic. An address
    /// VRRP manages is VRRP's on the twins: put there while held, with its own prefix, and
    /// taken away otherwise (a BACKUP's host must not own it), unless a local real server
    /// serves it: then the host holds it in any state, as an LVS real server holds its VIP
    /// on lo (a BACKUP that is its master's real server serves what the master sends it;
    /// put back when VRRP's own entry leaves with it). One that becomes VRRP's while held
    /// keeps its entry (it may be VRRP's very one).
    pub(super) fn sync_host_vips(&self, v: HostVips) {
        if self.twins.is_empty() {
            return;
        }
        let managed = |a: &IpAddr| v.floating.iter().any(|f| f.addr == *a);
        let held = |a: &IpAddr| v.floating.iter().any(|f| f.addr == *a && f.held);
        let served = |a: &IpAddr| v.served.contains(a);
        let want: Vec<IpAddr> = v
            .want
            .into_iter()
            .filter(|a| !managed(a) || served(a))
            .collect();
        let mut have = self.host_vips.lock();
        let ip = |verb: &str, vip: &IpAddr, twin: &str| {
            let len = if vip.is_ipv4() { 32 } else { 128 };
            // No duplicate address detection for an IPv6 VIP: the data plane answers for it.
            let nodad = if vip.is_ipv6() && verb != "del" {
                &["nodad"][..]
            } else {
                &[]
            };
            let prefix = format!("{vip}/{len}");
            let mut args = vec!["addr", verb, &prefix, "dev", twin];
            args.extend(nodad);
            let ok = crate::iproute::ip(&args).is_ok();
            if !ok && verb != "del" {
                crate::log::log(
                    crate::log::Level::Warning,
                    "host twin",
                    Some(twin),
                    format_args!("cannot put {vip} on host twin {twin}"),
                );
            }
        };
        for vip in want.iter().filter(|a| !have.contains(a)) {
            self.twins.iter().for_each(|t| ip("add", vip, t));
        }
        // A served VIP VRRP does not hold here: VRRP's entry may have taken the host's
        // with it (the same address and prefix); `replace` puts it back or leaves it.
        for vip in want
            .iter()
            .filter(|a| have.contains(a) && managed(a) && !held(a))
        {
            self.twins.iter().for_each(|t| ip("replace", vip, t));
        }
        for vip in have.iter().filter(|a| !want.contains(a) && !held(a)) {
            self.twins.iter().for_each(|t| ip("del", vip, t));
        }
        *have = want;
    }

    /// Puts the start-up configuration's local-server VIPs on the host twins.
    pub fn refresh_host_vips(&self) {
        let v = HostVips::of(&self.director.lock());
        self.sync_host_vips(v);
    }
}
