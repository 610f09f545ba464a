//! `[announce]`: scale-out behind ECMP. rvs puts each VIP it can serve into a kernel routing
//! table through a data port's host twin; a routing daemon (BIRD or FRR) learns that table
//! and announces it by BGP. The routing daemon's configuration that does so is generated
//! from this section (`rvs --bird-config`, `rvs --frr-config`).

use super::*;
use std::net::IpAddr;

/// The routing daemons rvs writes a configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingDaemon {
    Bird,
    Frr,
}

impl Config {
    /// What `rvs --bird-config` or `--frr-config` prints: the daemon's side of
    /// `[announce]`, its router id the announcing port's first IPv4 address. Err: no such
    /// section, or what the daemon cannot do (a VIP of a family no session carries; for
    /// FRR, an IPv6 VIP or session, or an announced VIP the host twin holds).
    pub fn routing_daemon_config(&self, daemon: RoutingDaemon) -> Result<String, String> {
        let announce = self.announce.as_ref().ok_or("no [announce] section")?;
        let router_id = self.ports[announce.port]
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4());
        // The director's own rules for the VIPs announced and those the host twin holds.
        let loads = std::sync::Arc::new(
            (0..self.limits.dests)
                .map(|_| rvs_core::sched::DestLoad::default())
                .collect(),
        );
        let d = self.lb.director(self.limits, loads, Vec::new())?;
        let announced = d.announced_vips(announce.vips.as_deref());
        match daemon {
            RoutingDaemon::Bird => announce.bird_config(router_id, &announced),
            RoutingDaemon::Frr => {
                let held = d.local_vips();
                let on_twin: Vec<IpAddr> = announced
                    .iter()
                    .copied()
                    .filter(|v| held.contains(v))
                    .collect();
                announce.frr_config(router_id, &announced, &on_twin)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnnounce {
    /// The data port whose host twin the routes point at (and BGP runs through).
    port: Spanned<String>,
    /// The kernel routing table rvs owns for them.
    table: Option<Spanned<u32>>,
    /// Which VIPs (default: every VIP a service listens on).
    vips: Option<Spanned<Vec<String>>>,
    /// A worker whose polls stop this long withdraws everything.
    stall_ms: Option<Spanned<u32>>,
    /// For the generated BIRD or FRR configuration.
    local_as: Option<Spanned<u32>>,
    /// One address, or a list: a session each (two top-of-rack routers, or one router by
    /// IPv4 and IPv6: a session carries its own family's VIPs).
    neighbor: Option<Spanned<OneOrList<String>>>,
    /// One AS for every neighbour, or one each.
    neighbor_as: Option<Spanned<OneOrList<u32>>>,
    #[serde(default)]
    communities: Vec<Spanned<String>>,
    med: Option<u32>,
    hold_time: Option<Spanned<u32>>,
    /// BFD on the session (100 ms, 3 missed): a dead node is noticed in 0.3 s.
    #[serde(default)]
    bfd: bool,
    /// IPv6 VIP routes also in the main table, where FRR 8's zebra learns them.
    #[serde(default)]
    ipv6_main_table: bool,
}

/// A value given alone or as a list.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "one value or a list of them, one per neighbor (neighbor = \"10.0.0.1\" or [\"10.0.0.1\", \"fd00::1\"]; neighbor_as = 65000 or [65000, 65010])"
)]
pub(super) enum OneOrList<T> {
    One(T),
    List(Vec<T>),
}

impl<T> OneOrList<T> {
    fn items(&self) -> &[T] {
        match self {
            OneOrList::One(v) => std::slice::from_ref(v),
            OneOrList::List(v) => v,
        }
    }
}

/// A validated `[announce]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// The port's index and the twin's interface name.
    pub port: usize,
    pub iface: String,
    pub table: u32,
    pub vips: Option<Vec<IpAddr>>,
    pub stall_ms: u32,
    pub bgp: Option<BgpPeer>,
    /// Each announced IPv6 VIP's route also goes into the main table (protocol
    /// [`MAIN_TABLE_PROTO`], metric `table`): FRR 8 imports only IPv4 tables, and its zebra
    /// learns main-table routes.
    pub ipv6_main_table: bool,
}

/// The BGP side of the generated BIRD or FRR configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    pub local_as: u32,
    /// Each neighbour and its AS, in the file's order (a session each).
    pub neighbors: Vec<(IpAddr, u32)>,
    pub communities: Vec<(u16, u16)>,
    pub med: Option<u32>,
    pub hold_time: u32,
    pub bfd: bool,
}

pub const DEFAULT_TABLE: u32 = 250;
pub const DEFAULT_STALL_MS: u32 = 1000;
/// The routing protocol number of rvs's IPv6 VIP routes in the main table
/// (`ipv6_main_table`): none of the kernel's, BIRD's or FRR's own.
pub const MAIN_TABLE_PROTO: u8 = 213;

pub(super) fn validate_announce(
    source: &Source,
    raw: &RawAnnounce,
    ports: &[PortConfig],
) -> Result<AnnounceConfig, ConfigError> {
    let name = raw.port.get_ref();
    let port = ports.iter().position(|p| &p.name == name).ok_or_else(|| {
        source.error(
            raw.port.span(),
            "announce.port",
            format!("no port named {name:?}"),
        )
    })?;
    let iface = ports[port].host_tap.clone().ok_or_else(|| {
        source.error(
            raw.port.span(),
            "announce.port",
            format!("port {name:?} has no host_tap: the routes point at its host twin, and the routing daemon talks through it"),
        )
    })?;
    let table = match &raw.table {
        // 253-255 are the kernel's default, main and local tables; 0 is none.
        Some(t) if *t.get_ref() == 0 || (253..=255).contains(t.get_ref()) => {
            return Err(source.error(
                t.span(),
                "announce.table",
                "a table of rvs's own: 1-252 or above 255 (253-255 are the kernel's)",
            ))
        }
        Some(t) => *t.get_ref(),
        None => DEFAULT_TABLE,
    };
    let vips = match &raw.vips {
        Some(v) => Some(
            v.get_ref()
                .iter()
                .map(|a| {
                    let ip = a.parse::<IpAddr>().map_err(|_| {
                        source.error(
                            v.span(),
                            "announce.vips",
                            format!("{a:?} is not an address"),
                        )
                    })?;
                    source.unmapped(v.span(), "announce.vips", ip)
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let stall_ms = match &raw.stall_ms {
        Some(s) if *s.get_ref() < 100 => {
            return Err(source.error(s.span(), "announce.stall_ms", "at least 100 ms"))
        }
        Some(s) => *s.get_ref(),
        None => DEFAULT_STALL_MS,
    };
    let bgp = match (&raw.local_as, &raw.neighbor, &raw.neighbor_as) {
        (None, None, None) => None,
        (Some(local), Some(neighbor), Some(remote)) => {
            let mut addrs: Vec<IpAddr> = Vec::new();
            for a in neighbor.get_ref().items() {
                let addr = a.parse::<IpAddr>().map_err(|_| {
                    source.error(
                        neighbor.span(),
                        "announce.neighbor",
                        format!("{a:?} is not an address"),
                    )
                })?;
                let addr = source.unmapped(neighbor.span(), "announce.neighbor", addr)?;
                if addrs.contains(&addr) {
                    return Err(source.error(
                        neighbor.span(),
                        "announce.neighbor",
                        format!("{addr} is named twice"),
                    ));
                }
                addrs.push(addr);
            }
            if addrs.is_empty() {
                return Err(source.error(
                    neighbor.span(),
                    "announce.neighbor",
                    "no address: one, or a list (a session each)",
                ));
            }
            let neighbors = match remote.get_ref().items() {
                [one] => addrs.iter().map(|&a| (a, *one)).collect(),
                each if each.len() == addrs.len() => {
                    addrs.iter().copied().zip(each.iter().copied()).collect()
                }
                each => {
                    return Err(source.error(
                        remote.span(),
                        "announce.neighbor_as",
                        format!(
                            "{} AS number(s) for {} neighbour(s): one for all, or one each",
                            each.len(),
                            addrs.len()
                        ),
                    ))
                }
            };
            let mut communities = Vec::new();
            for c in &raw.communities {
                let parsed = c
                    .get_ref()
                    .split_once(':')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                communities.push(parsed.ok_or_else(|| {
                    source.error(
                        c.span(),
                        "announce.communities",
                        format!(
                            "{:?} is not a community (\"AS:VALUE\", each 0-65535)",
                            c.get_ref()
                        ),
                    )
                })?);
            }
            let hold_time = match &raw.hold_time {
                Some(h) if *h.get_ref() != 0 && *h.get_ref() < 3 => {
                    return Err(source.error(
                        h.span(),
                        "announce.hold_time",
                        "0 (no keepalives) or at least 3 seconds (RFC 4271)",
                    ))
                }
                Some(h) => *h.get_ref(),
                None => 3,
            };
            Some(BgpPeer {
                local_as: *local.get_ref(),
                neighbors,
                communities,
                med: raw.med,
                hold_time,
                bfd: raw.bfd,
            })
        }
        _ => {
            let span = raw
                .local_as
                .as_ref()
                .map(|s| s.span())
                .or(raw.neighbor.as_ref().map(|s| s.span()))
                .or(raw.neighbor_as.as_ref().map(|s| s.span()))
                .unwrap_or(0..0);
            return Err(source.error(
                span,
                "announce",
                "local_as, neighbor and neighbor_as go together (the BGP session of --bird-config and --frr-config)",
            ));
        }
    };
    Ok(AnnounceConfig {
        port,
        iface,
        table,
        vips,
        stall_ms,
        bgp,
        ipv6_main_table: raw.ipv6_main_table,
    })
}

impl AnnounceConfig {
    fn session(&self) -> Result<&BgpPeer, String> {
        self.bgp.as_ref().ok_or_else(|| {
            "[announce] has no BGP session (local_as, neighbor, neighbor_as) to generate".into()
        })
    }

    /// Refuses `announced` VIPs of a family no session carries: they would never leave
    /// this node.
    fn check_families(bgp: &BgpPeer, announced: &[IpAddr]) -> Result<(), String> {
        // There is a session: the VIPs left out are all of the other family.
        let carried = |v: &&IpAddr| {
            bgp.neighbors
                .iter()
                .any(|(a, _)| a.is_ipv6() == v.is_ipv6())
        };
        let stranded: Vec<&IpAddr> = announced.iter().filter(|v| !carried(v)).collect();
        let Some(first) = stranded.first() else {
            return Ok(());
        };
        let list: Vec<String> = stranded.iter().map(|v| v.to_string()).collect();
        Err(format!(
            "{} announced, but no {} neighbor: a session carries its own family's routes; add one to announce.neighbor (a list), or leave the VIP out of announce.vips",
            list.join(", "),
            if first.is_ipv6() { "IPv6" } else { "IPv4" }
        ))
    }

    /// A BIRD 2 configuration announcing what rvs puts in its table: a kernel protocol per
    /// family of the sessions learns the table (rescanned every second), each BGP session
    /// exports only those routes of its family, with the communities and MED, next hop
    /// this node. `announced`: the VIPs rvs may put there (each must have a session of its
    /// family).
    pub fn bird_config(
        &self,
        router_id: Option<IpAddr>,
        announced: &[IpAddr],
    ) -> Result<String, String> {
        let bgp = self.session()?;
        Self::check_families(bgp, announced)?;
        let families: Vec<(&str, &str)> =
            [(false, "ipv4", "rvs_vips"), (true, "ipv6", "rvs_vips6")]
                .into_iter()
                .filter(|(v6, ..)| bgp.neighbors.iter().any(|(a, _)| a.is_ipv6() == *v6))
                .map(|(_, family, name)| (family, name))
                .collect();
        let mut out = String::new();
        out.push_str(&format!(
            "# BIRD 2 configuration generated by `rvs --bird-config`: BGP announces the VIPs rvs\n\
             # puts in kernel table {} (through its host twin {}); a VIP leaves the table, and the\n\
             # announcement goes, when it has no live server, when a worker stalls, and when rvs\n\
             # stops or dies (the twin and its routes vanish with it).\n",
            self.table, self.iface
        ));
        if let Some(id) = router_id.filter(IpAddr::is_ipv4) {
            out.push_str(&format!("router id {id};\n"));
        }
        out.push_str("\nprotocol device {\n    scan time 1;\n}\n\n");
        for (family, name) in &families {
            out.push_str(&format!(
                "protocol kernel {name} {{\n    kernel table {};\n    learn;\n    scan time 1;\n    {family} {{\n        import all;\n        export none;\n    }};\n}}\n\n",
                self.table
            ));
        }
        let from_rvs: Vec<String> = families
            .iter()
            .map(|(_, name)| format!("proto != \"{name}\""))
            .collect();
        out.push_str(&format!(
            "filter rvs_export {{\n    if {} then reject;\n",
            from_rvs.join(" && ")
        ));
        for (a, b) in &bgp.communities {
            out.push_str(&format!("    bgp_community.add(({a},{b}));\n"));
        }
        if let Some(med) = bgp.med {
            out.push_str(&format!("    bgp_med = {med};\n"));
        }
        out.push_str("    accept;\n}\n\n");
        if bgp.bfd {
            out.push_str(&format!(
                "protocol bfd {{\n    interface \"{}\" {{\n        interval 100 ms;\n        multiplier 3;\n    }};\n}}\n\n",
                self.iface
            ));
        }
        let bfd = if bgp.bfd { "    bfd on;\n" } else { "" };
        let keepalive = match bgp.hold_time {
            0 => String::new(),
            h => format!("    keepalive time {};\n", (h / 3).max(1)),
        };
        for (i, (neighbor, remote_as)) in bgp.neighbors.iter().enumerate() {
            let name = match bgp.neighbors.len() {
                1 => "rvs_uplink".to_string(),
                _ => format!("rvs_uplink{}", i + 1),
            };
            let family = if neighbor.is_ipv6() { "ipv6" } else { "ipv4" };
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&format!(
                "protocol bgp {name} {{\n    local as {};\n    neighbor {neighbor} as {remote_as};\n    hold time {};\n{keepalive}{bfd}    connect retry time 1;\n    error wait time 1, 5;\n    {family} {{\n        import none;\n        export filter rvs_export;\n        next hop self;\n    }};\n}}\n",
                bgp.local_as, bgp.hold_time
            ));
        }
        Ok(out)
    }

    /// An FRR configuration (zebra, bgpd and, with BFD, bfdd; integrated frr.conf, FRR 8)
    /// announcing what rvs puts in its table: zebra imports the table (`ip import-table`,
    /// IPv4 only in FRR 8), bgpd redistributes it and sends only it to each neighbour
    /// (nothing is imported), with the communities and MED, next hop this node. IPv6 (FRR 8
    /// imports no IPv6 table) needs `ipv6_main_table`: bgpd redistributes the kernel routes
    /// rvs keeps in the main table, host routes at metric `table` only.
    /// `announced`: the VIPs rvs may put there (IPv6 ones refused without
    /// `ipv6_main_table`). `on_twin`: announced VIPs the host twin holds (`[[vip]] unserved =
    /// "host"`), which FRR takes for connected routes that always win over the imported
    /// ones: refused, as FRR would never announce them.
    pub fn frr_config(
        &self,
        router_id: Option<IpAddr>,
        announced: &[IpAddr],
        on_twin: &[IpAddr],
    ) -> Result<String, String> {
        let bgp = self.session()?;
        if !self.ipv6_main_table {
            let v6: Vec<String> = announced
                .iter()
                .filter(|v| v.is_ipv6())
                .map(IpAddr::to_string)
                .collect();
            if !v6.is_empty() {
                return Err(format!(
                    "{} announced: FRR 8 imports only IPv4 kernel tables (ip import-table); set announce.ipv6_main_table = true (rvs then keeps its IPv6 VIP routes in the main table too, where zebra learns them), use --bird-config, or leave them out of announce.vips",
                    v6.join(", ")
                ));
            }
            if let Some((n, _)) = bgp.neighbors.iter().find(|(a, _)| a.is_ipv6()) {
                return Err(format!(
                    "neighbor {n}: FRR 8 imports only IPv4 kernel tables (ip import-table), so an IPv6 session would carry nothing; set announce.ipv6_main_table = true, or use --bird-config"
                ));
            }
        }
        Self::check_families(bgp, announced)?;
        if !on_twin.is_empty() {
            let list: Vec<String> = on_twin.iter().map(IpAddr::to_string).collect();
            return Err(format!(
                "{} held on the host twin (unserved traffic goes to the host, the default): FRR takes such an address for a connected route, which always wins over the imported one, so it would never announce it; set [[vip]] unserved = \"drop\" for it, or use --bird-config",
                list.join(", ")
            ));
        }
        let v4 = bgp.neighbors.iter().any(|(a, _)| a.is_ipv4());
        let v6 = bgp.neighbors.iter().any(|(a, _)| a.is_ipv6());
        let mut out = format!(
            "! FRR configuration generated by `rvs --frr-config` (zebra, bgpd{}): BGP announces\n\
             ! the VIPs rvs puts in kernel table {} (through its host twin {}); a VIP leaves the\n\
             ! table, and the announcement goes, when it has no live server, when a worker stalls,\n\
             ! and when rvs stops or dies (the twin and its routes vanish with it). zebra also\n\
             ! installs the imported routes in the main table, where they lead where rvs's own do.\n",
            if bgp.bfd { ", bfdd" } else { "" },
            self.table,
            self.iface,
        );
        if v6 {
            out.push_str(&format!(
                "! IPv6 (FRR 8 imports no IPv6 table): zebra learns rvs's IPv6 VIP routes from the\n\
                 ! main table (protocol {MAIN_TABLE_PROTO}, metric {}), and bgpd takes only those.\n",
                self.table
            ));
        }
        out.push_str(&format!(
            "frr defaults traditional\n!\nip import-table {}\n!\n",
            self.table
        ));
        if bgp.bfd {
            out.push_str(
                "bfd\n profile rvs\n  transmit-interval 100\n  receive-interval 100\n  detect-multiplier 3\n exit\nexit\n!\n",
            );
        }
        // Origin IGP, as BIRD's (a redistributed route is "incomplete" otherwise): the
        // router's multipath needs the nodes' routes equal.
        out.push_str("route-map rvs-export permit 10\n set origin igp\n");
        if !bgp.communities.is_empty() {
            let list: Vec<String> = bgp
                .communities
                .iter()
                .map(|(a, b)| format!("{a}:{b}"))
                .collect();
            out.push_str(&format!(" set community {}\n", list.join(" ")));
        }
        if let Some(med) = bgp.med {
            out.push_str(&format!(" set metric {med}\n"));
        }
        out.push_str("exit\n!\nroute-map rvs-import deny 10\nexit\n!\n");
        if v6 {
            // Host routes at rvs's metric only; their MED as an imported IPv4 route's (0).
            out.push_str(&format!(
                "ipv6 prefix-list rvs-vips6 seq 5 permit ::/0 ge 128\n!\n\
                 route-map rvs-main6 permit 10\n match ipv6 address prefix-list rvs-vips6\n match metric {}\n set metric 0\nexit\n!\n",
                self.table
            ));
        }
        out.push_str(&format!("router bgp {}\n", bgp.local_as));
        if let Some(id) = router_id.filter(IpAddr::is_ipv4) {
            out.push_str(&format!(" bgp router-id {id}\n"));
        }
        let keepalive = (bgp.hold_time / 3).max(1);
        let timers = match bgp.hold_time {
            0 => "0 0".to_string(),
            h => format!("{keepalive} {h}"),
        };
        out.push_str(" no bgp default ipv4-unicast\n");
        for (n, remote_as) in &bgp.neighbors {
            out.push_str(&format!(
                " neighbor {n} remote-as {remote_as}\n neighbor {n} timers {timers}\n neighbor {n} timers connect 1\n"
            ));
            if bgp.bfd {
                out.push_str(&format!(" neighbor {n} bfd profile rvs\n"));
            }
        }
        // Each session in its own family's address family (as BIRD's).
        let families = [
            (
                v4,
                false,
                "ipv4",
                format!("redistribute table {}", self.table),
            ),
            (
                v6,
                true,
                "ipv6",
                "redistribute kernel route-map rvs-main6".into(),
            ),
        ];
        for (_, is_v6, family, redistribute) in families.iter().filter(|f| f.0) {
            out.push_str(&format!(
                " !\n address-family {family} unicast\n  {redistribute}\n"
            ));
            for (n, _) in bgp.neighbors.iter().filter(|(a, _)| a.is_ipv6() == *is_v6) {
                out.push_str(&format!(
                    "  neighbor {n} activate\n  neighbor {n} next-hop-self\n  neighbor {n} route-map rvs-import in\n  neighbor {n} route-map rvs-export out\n"
                ));
            }
            out.push_str(" exit-address-family\n");
        }
        out.push_str("exit\n");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RoutingDaemon, Source};
    use std::net::IpAddr;

    fn parse(announce: &str) -> Result<Config, crate::config::ConfigError> {
        let text = format!(
            "[eal]\nlcores = \"0,1\"\nhugepages = false\n\n[[port]]\nname = \"lan\"\ndevice = \"net_tap0,iface=t0\"\naddresses = [\"10.0.0.11/24\"]\nhost_tap = \"t0-h\"\n\n[announce]\n{announce}"
        );
        Config::parse(Source {
            file: "n.toml".into(),
            text,
        })
    }

    #[test]
    fn announce_names_its_errors() {
        let e = parse("port = \"wan\"\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("announce.port", Some(12)));
        let e = parse("port = \"lan\"\ntable = 254\n").unwrap_err();
        assert_eq!(e.field, "announce.table");
        let e = parse("port = \"lan\"\nlocal_as = 65001\n").unwrap_err();
        assert!(e.message.contains("go together"), "{e}");
        let e = parse("port = \"lan\"\nlocal_as = 1\nneighbor = \"10.0.0.1\"\nneighbor_as = 2\ncommunities = [\"65001:x\"]\n").unwrap_err();
        assert_eq!(e.field, "announce.communities");
        let e = parse("port = \"lan\"\nlocal_as = 1\nneighbor = \"10.0.0.1\"\nneighbor_as = 2\nhold_time = 2\n").unwrap_err();
        assert_eq!(e.field, "announce.hold_time");
        let c = parse("port = \"lan\"\nvips = [\"192.0.2.1\"]\n").unwrap();
        let a = c.announce.unwrap();
        assert_eq!((a.iface.as_str(), a.table, a.stall_ms), ("t0-h", 250, 1000));
        assert!(
            a.bird_config(None, &[]).is_err(),
            "no BGP session to generate"
        );
        // Neighbours: one or a list; their AS numbers one for all or one each.
        let c = parse("port = \"lan\"\nlocal_as = 1\nneighbor = [\"10.0.0.1\", \"fd00::1\"]\nneighbor_as = 2\n").unwrap();
        let bgp = c.announce.unwrap().bgp.unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bgp.neighbors, vec![(ip("10.0.0.1"), 2), (ip("fd00::1"), 2)]);
        let c = parse("port = \"lan\"\nlocal_as = 1\nneighbor = [\"10.0.0.1\", \"10.0.0.2\"]\nneighbor_as = [2, 3]\n").unwrap();
        let bgp = c.announce.unwrap().bgp.unwrap();
        assert_eq!(
            bgp.neighbors,
            vec![(ip("10.0.0.1"), 2), (ip("10.0.0.2"), 3)]
        );
        for (text, field, line, says) in [
            (
                "neighbor = [\"10.0.0.1\", \"10.0.0.2\"]\nneighbor_as = [2, 3, 4]\n",
                "announce.neighbor_as",
                15,
                "3 AS number(s) for 2",
            ),
            (
                "neighbor = [\"10.0.0.1\", \"10.0.0.1\"]\nneighbor_as = 2\n",
                "announce.neighbor",
                14,
                "10.0.0.1 is named twice",
            ),
            (
                "neighbor = []\nneighbor_as = 2\n",
                "announce.neighbor",
                14,
                "no address",
            ),
            (
                "neighbor = [\"10.0.0.1\", \"x\"]\nneighbor_as = 2\n",
                "announce.neighbor",
                14,
                "\"x\" is not an address",
            ),
            (
                "neighbor = 5\nneighbor_as = 2\n",
                "announce.neighbor",
                14,
                "one value or a list of them, one per neighbor",
            ),
            (
                "neighbor = \"10.0.0.1\"\nneighbor_as = [\"x\"]\n",
                "announce.neighbor_as",
                15,
                "neighbor_as = 65000 or [65000, 65010]",
            ),
        ] {
            let e = parse(&format!("port = \"lan\"\nlocal_as = 1\n{text}")).unwrap_err();
            assert_eq!((e.field.as_str(), e.line), (field, Some(line)), "{e}");
            assert!(e.message.contains(says), "{e}");
        }
    }

    /// `rvs --bird-config` / `--frr-config` from a whole file: the router id from the port,
    /// FRR refused for a service's VIP the host twin holds and accepted once it drops
    /// unserved traffic; BIRD takes both.
    #[test]
    fn a_files_routing_daemon_config_knows_which_vips_the_twin_holds() {
        let session =
            "port = \"lan\"\nlocal_as = 65001\nneighbor = \"10.0.0.1\"\nneighbor_as = 65000\n";
        let service = "\n[[service]]\nprotocol = \"tcp\"\naddress = \"192.0.2.1\"\nport = 80\n\n[[service.server]]\naddress = \"10.0.0.21\"\nmethod = \"dr\"\n";
        let held = parse(&format!("{session}{service}")).unwrap();
        let e = held.routing_daemon_config(RoutingDaemon::Frr).unwrap_err();
        assert!(e.starts_with("192.0.2.1 held on the host twin"), "{e}");
        let bird = held.routing_daemon_config(RoutingDaemon::Bird).unwrap();
        assert!(bird.contains("router id 10.0.0.11;"), "{bird}");
        let dropped = parse(&format!(
            "{session}{service}\n[[vip]]\naddress = \"192.0.2.1\"\nunserved = \"drop\"\n"
        ))
        .unwrap();
        let frr = dropped.routing_daemon_config(RoutingDaemon::Frr).unwrap();
        assert!(frr.contains(" bgp router-id 10.0.0.11\n"), "{frr}");
        // An IPv6 VIP with an IPv4 session alone would never be announced: both refuse,
        // naming it; BIRD takes it with an IPv6 neighbour, FRR 8 never (no IPv6 import).
        let service6 = "\n[[service]]\nprotocol = \"tcp\"\naddress = \"2001:db8::1\"\nport = 80\n\n[[service.server]]\naddress = \"fd00::21\"\nmethod = \"dr\"\n\n[[vip]]\naddress = \"2001:db8::1\"\nunserved = \"drop\"\n";
        let v6 = parse(&format!("{session}{service6}")).unwrap();
        for daemon in [RoutingDaemon::Bird, RoutingDaemon::Frr] {
            let e = v6.routing_daemon_config(daemon).unwrap_err();
            assert!(e.starts_with("2001:db8::1 announced"), "{e}");
        }
        assert!(v6
            .routing_daemon_config(RoutingDaemon::Bird)
            .unwrap_err()
            .contains("no IPv6 neighbor"));
        let dual = parse(&format!(
            "port = \"lan\"\nlocal_as = 65001\nneighbor = [\"10.0.0.1\", \"fd00::1\"]\nneighbor_as = 65000\n{service}{service6}"
        ))
        .unwrap();
        let bird = dual.routing_daemon_config(RoutingDaemon::Bird).unwrap();
        assert!(bird.contains("protocol kernel rvs_vips6 {"), "{bird}");
        let e = dual.routing_daemon_config(RoutingDaemon::Frr).unwrap_err();
        assert!(
            e.contains("FRR 8 imports only IPv4") && e.contains("ipv6_main_table = true"),
            "{e}"
        );
        // With the IPv6 routes in the main table too, FRR takes them: a session a family.
        let dual_main = parse(&format!(
            "port = \"lan\"\nlocal_as = 65001\nneighbor = [\"10.0.0.1\", \"fd00::1\"]\nneighbor_as = 65000\nipv6_main_table = true\n{service}{service6}\n[[vip]]\naddress = \"192.0.2.1\"\nunserved = \"drop\"\n"
        ))
        .unwrap();
        assert!(dual_main.announce.as_ref().unwrap().ipv6_main_table);
        let frr = dual_main.routing_daemon_config(RoutingDaemon::Frr).unwrap();
        assert!(
            frr.contains(" address-family ipv6 unicast\n  redistribute kernel route-map rvs-main6\n  neighbor fd00::1 activate\n"),
            "{frr}"
        );
        // Announcing only another address: the held VIP is not FRR's concern.
        let other = parse(&format!("vips = [\"192.0.2.9\"]\n{session}{service}")).unwrap();
        assert!(other.routing_daemon_config(RoutingDaemon::Frr).is_ok());
        let none = Config::parse(Source {
            file: "n.toml".into(),
            text: "[eal]\nlcores = \"0,1\"\nhugepages = false\n\n[[port]]\nname = \"lan\"\ndevice = \"net_tap0,iface=t0\"\n".into(),
        })
        .unwrap();
        let e = none.routing_daemon_config(RoutingDaemon::Bird).unwrap_err();
        assert_eq!(e, "no [announce] section");
    }

    #[test]
    fn frr_config_imports_rvss_table_and_exports_only_it() {
        let c = parse("port = \"lan\"\ntable = 77\nlocal_as = 65001\nneighbor = \"10.0.0.1\"\nneighbor_as = 65000\ncommunities = [\"65001:100\", \"65001:7\"]\nmed = 10\nbfd = true\n").unwrap();
        let a = c.announce.unwrap();
        let text = a
            .frr_config(Some("10.0.0.11".parse().unwrap()), &[], &[])
            .unwrap();
        // A VIP the host twin holds would never be announced: refused, named.
        let vip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let e = a.frr_config(None, &[vip], &[vip]).unwrap_err();
        assert!(
            e.starts_with("192.0.2.1 held on the host twin") && e.contains("unserved = \"drop\""),
            "{e}"
        );
        for want in [
            "ip import-table 77\n",
            " profile rvs\n  transmit-interval 100\n  receive-interval 100\n  detect-multiplier 3\n",
            "route-map rvs-export permit 10\n set origin igp\n set community 65001:100 65001:7\n set metric 10\nexit\n",
            "route-map rvs-import deny 10\n",
            "router bgp 65001\n bgp router-id 10.0.0.11\n",
            " neighbor 10.0.0.1 remote-as 65000\n",
            " neighbor 10.0.0.1 timers 1 3\n",
            " neighbor 10.0.0.1 bfd profile rvs\n",
            "  redistribute table 77\n",
            "  neighbor 10.0.0.1 route-map rvs-import in\n",
            "  neighbor 10.0.0.1 route-map rvs-export out\n",
            "  neighbor 10.0.0.1 next-hop-self\n",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        // Without BFD, communities or MED: none of them; hold time 0: no keepalives.
        let c = parse("port = \"lan\"\nlocal_as = 65001\nneighbor = \"10.0.0.1\"\nneighbor_as = 65000\nhold_time = 0\n").unwrap();
        let plain = c.announce.unwrap().frr_config(None, &[], &[]).unwrap();
        for absent in ["bfd", "set community", "set metric", "router-id"] {
            assert!(!plain.contains(absent), "{absent} in:\n{plain}");
        }
        assert!(plain.contains(" neighbor 10.0.0.1 timers 0 0\n"), "{plain}");
        // An IPv6 session: FRR 8 cannot import an IPv6 kernel table.
        let c = parse(
            "port = \"lan\"\nlocal_as = 65001\nneighbor = \"fd00::1\"\nneighbor_as = 65000\n",
        )
        .unwrap();
        let e = c.announce.unwrap().frr_config(None, &[], &[]).unwrap_err();
        assert!(
            e.contains("ipv6_main_table = true") && e.contains("--bird-config"),
            "{e}"
        );
        // With ipv6_main_table: the session in the IPv6 address family alone, fed only
        // host routes at rvs's metric (its table's number) from the main table.
        let c = parse(
            "port = \"lan\"\ntable = 77\nlocal_as = 65001\nneighbor = [\"10.0.0.1\", \"fd00::1\"]\nneighbor_as = 65000\nipv6_main_table = true\n",
        )
        .unwrap();
        let vip6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let dual = c
            .announce
            .unwrap()
            .frr_config(None, &[vip, vip6], &[])
            .unwrap();
        for want in [
            "ipv6 prefix-list rvs-vips6 seq 5 permit ::/0 ge 128\n",
            "route-map rvs-main6 permit 10\n match ipv6 address prefix-list rvs-vips6\n match metric 77\n set metric 0\nexit\n",
            " address-family ipv4 unicast\n  redistribute table 77\n  neighbor 10.0.0.1 activate\n",
            " address-family ipv6 unicast\n  redistribute kernel route-map rvs-main6\n  neighbor fd00::1 activate\n  neighbor fd00::1 next-hop-self\n  neighbor fd00::1 route-map rvs-import in\n  neighbor fd00::1 route-map rvs-export out\n exit-address-family\n",
        ] {
            assert!(dual.contains(want), "{want} missing from:\n{dual}");
        }
        let v4_part = &dual[dual.find(" address-family ipv4").unwrap()
            ..dual.find(" address-family ipv6").unwrap()];
        assert!(!v4_part.contains("fd00::1"), "{dual}");
        // Two routers (a top-of-rack pair): a session each, both sent only rvs's routes.
        let c = parse("port = \"lan\"\nlocal_as = 65001\nneighbor = [\"10.0.0.1\", \"10.0.0.2\"]\nneighbor_as = [65000, 65002]\nbfd = true\n").unwrap();
        let pair = c.announce.unwrap().frr_config(None, &[vip], &[]).unwrap();
        for (n, remote_as) in [("10.0.0.1", 65000), ("10.0.0.2", 65002)] {
            for want in [
                format!(" neighbor {n} remote-as {remote_as}\n"),
                format!(" neighbor {n} bfd profile rvs\n"),
                format!("  neighbor {n} activate\n"),
                format!("  neighbor {n} route-map rvs-export out\n"),
            ] {
                assert!(pair.contains(&want), "{want} missing from:\n{pair}");
            }
        }
        // FRR itself accepts both (vtysh's dry run, where FRR is installed).
        let dir = std::env::temp_dir().join(format!("rvs-frr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, conf) in [
            ("bfd.conf", &text),
            ("plain.conf", &plain),
            ("pair.conf", &pair),
            ("dual.conf", &dual),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, conf).unwrap();
            if let Ok(out) = std::process::Command::new("vtysh")
                .args(["-C", "-f"])
                .arg(&path)
                .output()
            {
                assert!(
                    out.status.success(),
                    "vtysh -C: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bird_config_learns_rvss_table_and_exports_only_it() {
        let c = parse("port = \"lan\"\ntable = 77\nlocal_as = 65001\nneighbor = \"10.0.0.1\"\nneighbor_as = 65000\ncommunities = [\"65001:100\", \"65001:7\"]\nmed = 10\nbfd = true\n").unwrap();
        let text = c
            .announce
            .unwrap()
            .bird_config(Some("10.0.0.11".parse().unwrap()), &[])
            .unwrap();
        for want in [
            "router id 10.0.0.11;",
            "kernel table 77;",
            "learn;",
            "if proto != \"rvs_vips\" then reject;",
            "bgp_community.add((65001,100));",
            "bgp_community.add((65001,7));",
            "bgp_med = 10;",
            "local as 65001;",
            "neighbor 10.0.0.1 as 65000;",
            "hold time 3;",
            "keepalive time 1;",
            "export filter rvs_export;",
            "next hop self;",
            "protocol bfd {\n    interface \"t0-h\"",
            "bfd on;",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        // Dual stack: a kernel protocol per family, a session per neighbour, each its
        // family's channel; the filter passes both kernel protocols' routes.
        let c = parse("port = \"lan\"\nlocal_as = 65001\nneighbor = [\"10.0.0.1\", \"fd00::1\"]\nneighbor_as = [65000, 65010]\n").unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let dual = c.announce.unwrap().bird_config(None, &[v4, v6]).unwrap();
        for want in [
            "protocol kernel rvs_vips {\n    kernel table 250;\n    learn;\n    scan time 1;\n    ipv4 {",
            "protocol kernel rvs_vips6 {\n    kernel table 250;\n    learn;\n    scan time 1;\n    ipv6 {",
            "if proto != \"rvs_vips\" && proto != \"rvs_vips6\" then reject;",
            "protocol bgp rvs_uplink1 {\n    local as 65001;\n    neighbor 10.0.0.1 as 65000;",
            "protocol bgp rvs_uplink2 {\n    local as 65001;\n    neighbor fd00::1 as 65010;",
        ] {
            assert!(dual.contains(want), "{want} missing from:\n{dual}");
        }
        let uplink2 = &dual[dual.find("protocol bgp rvs_uplink2").unwrap()..];
        assert!(
            uplink2.contains("    ipv6 {\n        import none;\n        export filter rvs_export;"),
            "{uplink2}"
        );
        assert!(!dual.contains("protocol bgp rvs_uplink {"), "{dual}");
        // BIRD itself accepts both (where it is installed).
        let dir = std::env::temp_dir().join(format!("rvs-bird-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, conf) in [("bird.conf", &text), ("dual.conf", &dual)] {
            let path = dir.join(name);
            std::fs::write(&path, conf).unwrap();
            if let Ok(out) = std::process::Command::new("bird")
                .args(["-p", "-c"])
                .arg(&path)
                .output()
            {
                assert!(
                    out.status.success(),
                    "bird -p {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
