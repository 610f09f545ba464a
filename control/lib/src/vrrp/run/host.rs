//! What the VRRP runtime changes on the host: addresses on the data ports' host twins
//! (static and floating), `promote_secondaries`, VRRP routes and policy rules, and the
//! kernel links it tracks.

use super::*;

/// Turns `promote_secondaries` on for the twins of instances that ask for it (or use
/// use_vmac, as keepalived sets it on its VMAC), once; `promoted` lists those rvs changed.
pub(super) fn promote_secondaries(conf: &VrrpConf, links: &[Link], promoted: &mut Vec<String>) {
    for (i, l) in conf
        .instances
        .iter()
        .filter_map(|i| Some((i, &links[link_for(i, links).ok()?])))
    {
        if !(i.promote_secondaries || i.vmac.is_some()) || promoted.contains(&l.twin) {
            continue;
        }
        let path = format!("/proc/sys/net/ipv4/conf/{}/promote_secondaries", l.twin);
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "0")
            && std::fs::write(&path, "1").is_ok()
        {
            promoted.push(l.twin.clone());
        }
    }
}

/// The twin a `static_ipaddress` entry goes on: its `dev`'s, else the first data port's
/// with a twin (keepalived's default interface).
pub(super) fn static_twin<'a>(links: &'a [Link], a: &VirtualAddress) -> Option<&'a Link> {
    match &a.dev {
        Some(d) => links.iter().find(|l| l.is_named(d)),
        None => links.first(),
    }
}

/// Puts the `static_ipaddress` entries on their twins: the host owns them from the start,
/// as keepalived adds them.
pub fn add_static_addresses(conf: &VrrpConf, links: &[Link]) {
    for a in &conf.static_addresses {
        if let Some(l) = static_twin(links, a) {
            twin_address(&l.twin, a, true);
        }
    }
}

/// Adds (or deletes) an address on a twin, as keepalived does on its interface: an IPv6
/// one without duplicate address detection, a label when it names that interface.
pub(super) fn twin_address(twin: &str, a: &VirtualAddress, add: bool) {
    let mut cmd = Command::new("ip");
    cmd.args([
        "addr",
        if add { "add" } else { "del" },
        &format!("{}/{}", a.addr, a.len),
        "dev",
        twin,
    ]);
    if add && a.addr.is_ipv6() {
        // As keepalived: a VIP is not probed for duplicates (it would sit
        // tentative, unusable, for a second).
        cmd.arg("nodad");
    }
    if let (true, Some(label)) = (add, &a.label) {
        if label.starts_with(twin) {
            cmd.args(["label", label]);
        }
    }
    let _ = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Puts a VRRP route on the host twin of its data port (or takes it off), so the host's
/// own connections follow it as they follow keepalived's kernel routes; the main table's
/// default route is left to the host (its management access), as the configuration's
/// routes are (another table's is used by the rules that name it only).
pub fn twin_route(links: &[Link], r: &VrrpRoute, add: bool) {
    let Some(link) = links
        .iter()
        .find(|l| Some(l.port) == r.port.map(usize::from))
    else {
        return;
    };
    if !on_twin(r) {
        return;
    }
    let main = r.table == rvs_core::engine::MAIN_TABLE;
    let mut cmd = Command::new("ip");
    let prefix = format!("{}/{}", r.prefix, r.len);
    let family = if r.prefix.is_ipv6() { "-6" } else { "-4" };
    cmd.args([
        family,
        "route",
        if add { "replace" } else { "del" },
        &prefix,
    ]);
    if let Some(g) = r.via {
        cmd.args(["via", &g.to_string()]);
    }
    cmd.args(["dev", &link.twin]);
    if !main {
        cmd.args(["table", &r.table.to_string()]);
    }
    let _ = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The host's policy rules of keepalived's protocol (rvs's and keepalived's own), as
/// (IPv6, preference); none looked for unless `wanted`.
pub(super) fn host_rule_preferences(wanted: bool) -> Vec<(bool, u32)> {
    if !wanted {
        return Vec::new();
    }
    [("-4", false), ("-6", true)]
        .iter()
        .flat_map(|(family, ipv6)| {
            let out = Command::new("ip")
                .args([*family, "rule", "show"])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            out.lines()
                .filter(|l| {
                    let l = l.trim_end();
                    l.ends_with(" proto keepalived") || l.ends_with(" proto 18")
                })
                .filter_map(|l| l.split(':').next()?.trim().parse().ok())
                .map(|p| (*ipv6, p))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Puts a VRRP rule in the host's policy rules (or takes it out), as keepalived does, so
/// the host's own connections (from a VIP, through the twins) are routed as the data
/// plane routes: `ip rule add` refuses a rule already there, `del` one not there.
pub fn host_rule(r: &VrrpRule, add: bool) {
    let args = r.ip_args(if add { "add" } else { "del" });
    if let Err(e) = crate::iproute::ip(&args.iter().map(String::as_str).collect::<Vec<_>>()) {
        if !(e.contains("File exists") || e.contains("No such file")) {
            log(
                Level::Warning,
                "vrrp",
                None,
                format_args!("rule {r} ({}): {e}", r.at),
            );
        }
    }
}

pub(super) fn kernel_link_up(ifname: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/operstate"))
        .is_ok_and(|s| matches!(s.trim(), "up" | "unknown"))
}
