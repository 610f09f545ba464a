//! The live load-balancing model the control thread owns: virtual services and their real
//! servers as ipvsadm sees them, plus the static parts (ports, routes, neighbours, firewall
//! marks). Every change goes through [`Director::apply`]; [`Director::snapshot`] turns the
//! model into the immutable snapshot the workers use.
//!
//! Ids are stable: a virtual service's entries (one per VIP:port; several for a firewall
//! mark) index the workers' per-service state and counters, a real server's id indexes the
//! shared load counters. A removed server's id is reused only once no connection or
//! template refers to it any more.

use crate::ipvsadm::{Command, Protocol, ServerSpec, ServiceKey, ServiceSpec};
use rvs_core::conn::Timeouts;
use rvs_core::engine::{
    FullNat, MarkRule, MemberPorts, PortInfo, RealServer, Route, Service, Snapshot, SnatRule,
};
use rvs_core::sched::{CachePool, DestLoad, ListChange, SchedEvent, Thresholds, WrrConsts};
use std::net::IpAddr;
use std::sync::Arc;

/// One VIP:port the data plane matches for a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: u16,
    pub proto: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    pub spec: ServiceSpec,
    /// Newest first, as IPVS lists them.
    pub dests: Vec<RealServer>,
    pub entries: Vec<Entry>,
    pub version: u64,
    /// Changes of the server list and scheduler for the workers' scheduler states.
    pub sched_log: Vec<SchedEvent>,
    /// The version at which the scheduler was last bound (set or changed).
    pub bound: u64,
}

/// Most scheduler events a service keeps (a worker further behind binds afresh).
const SCHED_LOG_MAX: usize = 256;

impl VirtualService {
    /// Records a change of the list or scheduler. A bind replaces the log; a change made
    /// while no worker has seen the bind yet (`published`) folds into it, as the state it
    /// leaves is known.
    fn log(&mut self, version: u64, change: ListChange, published: u64) {
        let wrr = WrrConsts::new(&self.dests);
        let after = self.sched_log.last().map_or(0, |e| e.version);
        if let ListChange::Bind { .. } = change {
            self.sched_log.clear();
        } else if let [only] = &mut self.sched_log[..] {
            if let (ListChange::Bind { cw }, true) = (only.change, only.version > published) {
                only.change = ListChange::Bind {
                    cw: wrr.adjusted_cw(cw),
                };
                only.version = version;
                only.wrr = wrr;
                return;
            }
        }
        if self.sched_log.len() >= SCHED_LOG_MAX {
            self.sched_log.remove(0);
        }
        self.sched_log.push(SchedEvent {
            version,
            after,
            change,
            wrr,
        });
    }
}

impl VirtualService {
    pub fn is_ipv6(&self) -> bool {
        match self.spec.key {
            ServiceKey::Addr(_, a) => a.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => ipv6,
        }
    }

    /// Whether a server is of the other family (a tunnel carrying one in the other).
    pub fn has_mixed_family(&self) -> bool {
        self.dests
            .iter()
            .any(|d| d.addr.is_ipv6() != self.is_ipv6())
    }
}

/// The equivalent of `iptables -t mangle -A PREROUTING [-p PROTO] [-s SOURCE] -d DEST
/// [--dport PORTS] -j MARK --set-mark N`: that traffic belongs to firewall-mark service N.
/// Written (console, `rvsadm --mark`) as `N PROTO DEST[/LEN][:PORT[-PORT]] [from SOURCE]`,
/// PROTO tcp, udp, sctp or any; an IPv6 DEST in brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwmarkRule {
    pub mark: u32,
    /// None: TCP, UDP and SCTP.
    pub proto: Option<Protocol>,
    pub addr: IpAddr,
    pub prefix: u8,
    pub ports: (u16, u16),
    pub source: Option<(IpAddr, u8)>,
}

impl FwmarkRule {
    /// One VIP:port of one protocol (`[[fwmark]]` as it was, a TOML service's `group`).
    pub fn exact(mark: u32, proto: Protocol, addr: IpAddr, port: u16) -> FwmarkRule {
        FwmarkRule {
            mark,
            proto: Some(proto),
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
            ports: if port == 0 {
                (0, u16::MAX)
            } else {
                (port, port)
            },
            source: None,
        }
    }

    pub fn engine_rule(&self) -> MarkRule {
        MarkRule {
            mark: self.mark,
            proto: self.proto.map(|p| p.number()),
            dst: (
                rvs_core::engine::masked(self.addr, self.prefix),
                self.prefix,
            ),
            ports: self.ports,
            src: self
                .source
                .map(|(a, l)| (rvs_core::engine::masked(a, l), l)),
        }
    }

    /// A single VIP:port entry (a port of 0 stands for all ports, as a service's).
    fn entry(&self) -> Option<(Protocol, IpAddr, u16)> {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        let port = match self.ports {
            (a, b) if a == b => a,
            (0, u16::MAX) => 0,
            _ => return None,
        };
        match (self.proto, self.prefix == full, self.source) {
            (Some(p), true, None) => Some((p, self.addr, port)),
            _ => None,
        }
    }
}

impl std::fmt::Display for FwmarkRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = self.proto.map_or("any", |p| p.word());
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        let mut dest = match self.addr {
            IpAddr::V6(a) => format!("[{a}"),
            IpAddr::V4(a) => a.to_string(),
        };
        if self.prefix != full {
            dest.push_str(&format!("/{}", self.prefix));
        }
        if self.addr.is_ipv6() {
            dest.push(']');
        }
        match self.ports {
            (0, u16::MAX) => {}
            (a, b) if a == b => dest.push_str(&format!(":{a}")),
            (a, b) => dest.push_str(&format!(":{a}-{b}")),
        }
        write!(f, "{} {proto} {dest}", self.mark)?;
        if let Some((a, l)) = self.source {
            write!(f, " from {a}/{l}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FwmarkRule {
    type Err = String;

    fn from_str(text: &str) -> Result<FwmarkRule, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (mark, proto, dest, source) = match words[..] {
            [m, p, d] => (m, p, d, None),
            [m, p, d, "from", s] => (m, p, d, Some(s)),
            _ => {
                return Err(format!(
                    "{text:?}: expected MARK PROTO DEST[:PORTS] [from SOURCE]"
                ))
            }
        };
        let mark: u32 = mark
            .parse()
            .ok()
            .filter(|&m| m > 0)
            .ok_or_else(|| format!("{mark:?}: a mark above 0"))?;
        let proto = match proto {
            "any" => None,
            p => Some(
                Protocol::from_word(p).ok_or_else(|| format!("{p:?}: tcp, udp, sctp or any"))?,
            ),
        };
        // DEST: ADDR[/LEN][:PORTS], or [V6ADDR[/LEN]][:PORTS].
        let (net, ports) = if let Some(rest) = dest.strip_prefix('[') {
            let (net, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{dest:?}: no closing bracket"))?;
            (net, after.strip_prefix(':'))
        } else {
            match dest.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (dest, None),
            }
        };
        let (addr, prefix) = parse_prefix(net)?;
        let ports = match ports {
            None => (0, u16::MAX),
            Some(p) => {
                let (a, b) = p.split_once('-').unwrap_or((p, p));
                match (a.parse::<u16>(), b.parse::<u16>()) {
                    (Ok(a), Ok(b)) if a <= b => (a, b),
                    _ => return Err(format!("{p:?}: a port or a range such as 1000-2000")),
                }
            }
        };
        let source = match source {
            Some(s) => Some(parse_prefix(s)?),
            None => None,
        };
        if source.is_some_and(|(a, _)| a.is_ipv4() != addr.is_ipv4()) {
            return Err("the source and the destination are of different families".into());
        }
        Ok(FwmarkRule {
            mark,
            proto,
            addr,
            prefix,
            ports,
            source,
        })
    }
}

/// "FIRST-LAST" ports, FIRST at least 1 (SNAT pools, member ranges, mark port ranges).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
    (a >= 1 && a <= b).then_some((a, b))
}

/// An SNAT rule from its parts, as `[[snat]]` and the console's `snat add` give them:
/// source and destination default to any address of the rule's family (that of whichever
/// address is given), which all of them must share.
pub fn snat_rule(
    proto: Option<u8>,
    source: Option<(IpAddr, u8)>,
    destination: Option<(IpAddr, u8)>,
    out_port: Option<u16>,
    to_source: Option<IpAddr>,
    ports: (u16, u16),
) -> Result<SnatRule, String> {
    let v6 = to_source
        .or(source.map(|p| p.0))
        .or(destination.map(|p| p.0))
        .is_some_and(|a| a.is_ipv6());
    let any = if v6 {
        (IpAddr::from([0u8; 16]), 0)
    } else {
        (IpAddr::from([0u8; 4]), 0)
    };
    let (source, destination) = (source.unwrap_or(any), destination.unwrap_or(any));
    if [Some(source.0), Some(destination.0), to_source]
        .iter()
        .flatten()
        .any(|a| a.is_ipv6() != v6)
    {
        return Err("source, destination and to_source of one family".into());
    }
    let masked = |(a, l): (IpAddr, u8)| (rvs_core::engine::masked(a, l), l);
    Ok(SnatRule {
        proto,
        source: masked(source),
        destination: masked(destination),
        out_port,
        to_source,
        ports,
    })
}

/// `ADDR[/LEN]`.
pub fn parse_prefix(text: &str) -> Result<(IpAddr, u8), String> {
    let (a, l) = text.split_once('/').unwrap_or((text, ""));
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{a:?} is not an IP address"))?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        "" => full,
        l => l
            .parse()
            .ok()
            .filter(|&l| l <= full)
            .ok_or_else(|| format!("{l:?}: a prefix length up to {full}"))?,
    };
    Ok((addr, len))
}

/// The range of `ranges` that `r` overlaps (the same protocol and VIP, a port in common).
pub fn overlapping_member_range(ranges: &[MemberPorts], r: &MemberPorts) -> Option<usize> {
    ranges.iter().position(|o| {
        o.proto == r.proto && o.vip == r.vip && o.first <= r.last && r.first <= o.last
    })
}

/// Fixed sizes: service entries and real servers the data plane was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub entries: usize,
    pub dests: usize,
}

#[derive(Debug, Clone)]
pub struct Director {
    pub services: Vec<VirtualService>,
    pub marks: Vec<FwmarkRule>,
    pub ports: Vec<PortInfo>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<(IpAddr, [u8; 6])>,
    pub timeouts: Timeouts,
    /// Addresses VRRP manages, whether this box holds them now (MASTER) and takes their
    /// traffic (accept mode).
    pub floating: Vec<rvs_core::engine::Floating>,
    /// Routes VRRP installs now (keepalived's static_routes, MASTER instances'
    /// virtual_routes), after `routes` where prefixes are equally long.
    pub vrrp_routes: Vec<Route>,
    /// Policy rules VRRP applies now (static_rules, MASTER instances' virtual_rules).
    pub vrrp_rules: Vec<rvs_core::engine::Rule>,
    loads: Arc<Vec<DestLoad>>,
    entry_used: Vec<bool>,
    dest_used: Vec<bool>,
    /// Deleted servers whose ids are not yet given out again (IPVS's destination trash):
    /// the same server added back to its service takes its id again, and with it its
    /// connections, which went on waiting (dropped) meanwhile.
    trash: Vec<(ServiceKey, IpAddr, u16, usize)>,
    /// Servers deleted so far (with their services too), for the workers' sweeps.
    removals: u64,
    next_version: u64,
    /// The version the last snapshot was built at.
    published: std::cell::Cell<u64>,
    /// Workers the snapshots are for (caches for lblc/lblcr binds are made for each).
    pub workers: usize,
    /// A connection sync daemon runs: the sync protocol cannot carry a server of the other
    /// family, so the kernel refuses one (and a daemon while one exists).
    pub sync_running: bool,
    /// A backup sync daemon runs (with `backup_only`, the director function is off).
    pub sync_backup: bool,
    /// VIPs whose traffic for no service is dropped; the others' goes to the host.
    pub unserved_drop: Vec<IpAddr>,
    /// Members' outgoing port ranges on VIPs.
    pub member_ports: Vec<MemberPorts>,
    /// Routing between the ports for traffic for neither a VIP nor the appliance.
    pub ip_forward: bool,
    /// Any TCP segment but a RST of an unknown flow opens a connection (IPVS sloppy_tcp);
    /// any SCTP packet but an ABORT (sloppy_sctp).
    pub sloppy_tcp: bool,
    pub sloppy_sctp: bool,
    /// IPVS's expire_nodest_conn and expire_quiescent_template.
    pub expire_nodest_conn: bool,
    pub expire_quiescent_template: bool,
    /// IPVS's conn_reuse_mode (1 unless set).
    pub conn_reuse_mode: u8,
    /// IPVS's pmtu_disc (on unless set): off, tunnelled IPv4 ignores DF.
    pub pmtu_disc: bool,
    /// IPVS's nat_icmp_send: "port unreachable" for a NAT server's stray packet.
    pub nat_icmp_send: bool,
    /// IPVS's schedule_icmp: an ICMP error about a flow without a connection schedules it.
    pub schedule_icmp: bool,
    /// IPVS's cache_bypass: a firewall-mark service's flow with no server available goes
    /// on to its own destination.
    pub cache_bypass: bool,
    /// IPVS's run_estimation (on unless set): off, the rate estimator stands still.
    pub run_estimation: bool,
    /// IPVS's secure_tcp: 0 off, 1 and 2 automatic (on while connection memory is short,
    /// the value moving between them as the kernel's does), 3 always on.
    pub secure_tcp: u8,
    /// IPVS's amemthresh: pages of connection memory left below which it is short.
    pub amemthresh: u32,
    /// IPVS's drop_entry and drop_packet, in secure_tcp's modes (0 off, 1 and 2 automatic,
    /// 3 always on), and am_droprate (drop_packet's rate at 3).
    pub drop_entry: u8,
    pub drop_packet: u8,
    pub am_droprate: u32,
    /// drop_packet's rate while at 2, from how short memory is (not a setting).
    pub drop_rate: u32,
    /// IPVS's sync_persist_mode: only the templates of persistent services are synced.
    pub sync_persist_mode: bool,
    /// IPVS's sync_refresh_period (seconds, 0: unset).
    pub sync_refresh_period: u32,
    /// IPVS's lblc_expiration and lblcr_expiration.
    pub cache_expiration: rvs_core::sched::CacheExpiration,
    /// IPVS's backup_only: while a backup sync daemon runs, the VIPs' traffic is not
    /// balanced but the host's (a backup director that is its master's real server).
    pub backup_only: bool,
    /// Behind ECMP with other nodes: a service's servers are kept sorted by address and
    /// port (not in arrival order), so that every node builds the same mh table.
    pub ecmp: bool,
    /// Full NAT by service (kept across edits of the service: ipvsadm cannot say it).
    pub full_nat: Vec<(ServiceKey, FullNat)>,
    /// Source NAT rules for routed traffic.
    pub snat: Vec<SnatRule>,
    /// The workers' tables have room for full-NAT entries (fixed at start).
    pub full_nat_room: bool,
}

impl Director {
    pub fn new(limits: Limits, loads: Arc<Vec<DestLoad>>) -> Director {
        Director {
            services: Vec::new(),
            marks: Vec::new(),
            ports: Vec::new(),
            routes: Vec::new(),
            neighbours: Vec::new(),
            timeouts: Timeouts::default(),
            floating: Vec::new(),
            vrrp_routes: Vec::new(),
            vrrp_rules: Vec::new(),
            entry_used: vec![false; limits.entries.min(usize::from(u16::MAX))],
            dest_used: vec![false; limits.dests.min(loads.len())],
            trash: Vec::new(),
            removals: 0,
            loads,
            next_version: 1,
            published: std::cell::Cell::new(0),
            workers: 1,
            sync_running: false,
            sync_backup: false,
            unserved_drop: Vec::new(),
            member_ports: Vec::new(),
            ip_forward: false,
            sloppy_tcp: false,
            sloppy_sctp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            pmtu_disc: true,
            nat_icmp_send: false,
            schedule_icmp: false,
            cache_bypass: false,
            run_estimation: true,
            secure_tcp: 0,
            amemthresh: crate::config::DEFAULT_AMEMTHRESH,
            drop_entry: 0,
            drop_packet: 0,
            am_droprate: crate::config::DEFAULT_AM_DROPRATE,
            drop_rate: 0,
            sync_persist_mode: false,
            sync_refresh_period: 0,
            cache_expiration: Default::default(),
            backup_only: false,
            ecmp: false,
            full_nat: Vec::new(),
            snat: Vec::new(),
            full_nat_room: true,
        }
    }

    pub fn loads(&self) -> &Arc<Vec<DestLoad>> {
        &self.loads
    }

    pub fn find(&self, key: ServiceKey) -> Option<&VirtualService> {
        self.services.iter().find(|s| s.spec.key == key)
    }

    fn find_mut(&mut self, key: ServiceKey) -> Option<&mut VirtualService> {
        self.services.iter_mut().find(|s| s.spec.key == key)
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }

    fn alloc_entry(&mut self) -> Result<u16, String> {
        let i = self
            .entry_used
            .iter()
            .position(|u| !u)
            .ok_or_else(|| {
                format!(
                    "Memory allocation problem (all {} service entries in use: raise [dataplane] services)",
                    self.entry_used.len()
                )
            })?;
        self.entry_used[i] = true;
        Ok(i as u16)
    }

    /// A free real-server id no connection still refers to.
    fn alloc_dest(&mut self) -> Result<usize, String> {
        let loads = &self.loads;
        let i = self
            .dest_used
            .iter()
            .enumerate()
            .position(|(i, &u)| {
                !u && loads
                    .get(i)
                    .is_some_and(|l| l.active() + l.inactive() + l.persistent() == 0)
            })
            .ok_or_else(|| {
                format!(
                    "Memory allocation problem (all {} real-server slots in use: raise [dataplane] servers)",
                    self.dest_used.len()
                )
            })?;
        self.dest_used[i] = true;
        // Nothing waits on it any more: it is no one's to take back.
        self.trash.retain(|t| t.3 != i);
        Ok(i)
    }

    /// The id a deleted server of the same service, address and port left, if not given
    /// out since (IPVS's ip_vs_trash_get_dest).
    fn revive(&mut self, spec: &ServerSpec) -> Option<usize> {
        let at = self.trash.iter().position(|&(k, a, p, id)| {
            (k, a, p) == (spec.service, spec.addr, spec.port) && !self.dest_used[id]
        })?;
        let id = self.trash.remove(at).3;
        self.dest_used[id] = true;
        Some(id)
    }

    /// The VIP:port entries of a service key: a firewall-mark service's single-address
    /// rules, or (when it has none) one anchor entry its wider rules select.
    fn entries_for(&self, key: ServiceKey) -> Vec<(Protocol, IpAddr, u16)> {
        match key {
            ServiceKey::Addr(p, a) => vec![(p, a.ip(), a.port())],
            ServiceKey::Fwmark { mark, ipv6 } => {
                let mut v: Vec<(Protocol, IpAddr, u16)> = Vec::new();
                for e in self
                    .marks
                    .iter()
                    .filter(|m| m.mark == mark && m.addr.is_ipv6() == ipv6)
                    .filter_map(FwmarkRule::entry)
                {
                    if !v.contains(&e) {
                        v.push(e);
                    }
                }
                let wider = self
                    .marks
                    .iter()
                    .any(|m| m.mark == mark && m.addr.is_ipv6() == ipv6 && m.entry().is_none());
                if v.is_empty() && wider {
                    let any = if ipv6 {
                        IpAddr::from([0u8; 16])
                    } else {
                        IpAddr::from([0u8; 4])
                    };
                    v.push((Protocol::Tcp, any, 0));
                }
                v
            }
        }
    }

    /// Adds a member's outgoing range (`[[outgoing]]`, `outgoing add`); one overlapping a
    /// range of the same VIP and protocol is refused.
    pub fn add_member_ports(&mut self, r: MemberPorts) -> Result<(), String> {
        if r.vip.is_ipv4() != r.member.is_ipv4() {
            return Err(format!("member {} is not of the VIP's family", r.member));
        }
        if let Some(i) = overlapping_member_range(&self.member_ports, &r) {
            let o = &self.member_ports[i];
            return Err(format!(
                "{}-{} overlaps the range {}-{} of {} to {}",
                r.first, r.last, o.first, o.last, o.vip, o.member
            ));
        }
        self.member_ports.push(r);
        Ok(())
    }

    /// Removes the outgoing range `first-last` of `vip` and `proto`.
    pub fn delete_member_ports(
        &mut self,
        proto: u8,
        vip: IpAddr,
        (first, last): (u16, u16),
    ) -> Result<MemberPorts, String> {
        let i = self
            .member_ports
            .iter()
            .position(|r| r.proto == proto && r.vip == vip && (r.first, r.last) == (first, last))
            .ok_or_else(|| format!("no outgoing range {first}-{last} of {vip}"))?;
        Ok(self.member_ports.remove(i))
    }

    /// Sets what becomes of `vip`'s traffic that no service takes: dropped, or (the
    /// default) the host's.
    pub fn set_unserved_drop(&mut self, vip: IpAddr, drop: bool) {
        self.unserved_drop.retain(|a| *a != vip);
        if drop {
            self.unserved_drop.push(vip);
        }
    }

    /// Adds a firewall-mark rule (a no-op when it is there); the mark's services take
    /// their entries anew.
    pub fn add_mark(&mut self, rule: FwmarkRule) -> Result<(), String> {
        if !self.marks.contains(&rule) {
            self.marks.push(rule);
        }
        self.refresh_mark_entries(rule.mark)
    }

    /// Removes a firewall-mark rule.
    pub fn delete_mark(&mut self, rule: FwmarkRule) -> Result<(), String> {
        let i = self
            .marks
            .iter()
            .position(|m| *m == rule)
            .ok_or_else(|| format!("no mark rule {rule}"))?;
        self.marks.remove(i);
        self.refresh_mark_entries(rule.mark)
    }

    /// Gives the services of `mark` the entries its rules now ask for, keeping those that
    /// stay (their ids and counters).
    fn refresh_mark_entries(&mut self, mark: u32) -> Result<(), String> {
        let keys: Vec<ServiceKey> = self
            .services
            .iter()
            .map(|s| s.spec.key)
            .filter(|k| matches!(k, ServiceKey::Fwmark { mark: m, .. } if *m == mark))
            .collect();
        for key in keys {
            let wanted = self.entries_for(key);
            let Some(i) = self.services.iter().position(|s| s.spec.key == key) else {
                continue;
            };
            let old = std::mem::take(&mut self.services[i].entries);
            let mut entries = Vec::with_capacity(wanted.len());
            for (proto, addr, port) in wanted {
                if let Some(e) = old
                    .iter()
                    .find(|e| (e.proto, e.addr, e.port) == (proto, addr, port))
                {
                    entries.push(*e);
                    continue;
                }
                if self.entry_taken(key, (proto, addr, port)) {
                    return Err(format!(
                        "{} {addr} port {port} already belongs to another service",
                        proto.name()
                    ));
                }
                let id = self.alloc_entry()?;
                entries.push(Entry {
                    id,
                    proto,
                    addr,
                    port,
                });
            }
            let gone: Vec<Entry> = old
                .iter()
                .filter(|e| !entries.iter().any(|n| n.id == e.id))
                .copied()
                .collect();
            self.release_entries(&gone);
            let version = self.bump();
            let svc = &mut self.services[i];
            svc.entries = entries;
            svc.version = version;
        }
        Ok(())
    }

    /// Whether another firewall-mark service has the single VIP:port entry.
    fn entry_taken(&self, key: ServiceKey, (proto, addr, port): (Protocol, IpAddr, u16)) -> bool {
        !addr.is_unspecified()
            && self
                .services
                .iter()
                .filter(|s| s.spec.key != key && matches!(s.spec.key, ServiceKey::Fwmark { .. }))
                .flat_map(|s| &s.entries)
                .any(|e| (e.proto, e.addr, e.port) == (proto, addr, port))
    }

    /// Applies one rule command; on error nothing changes. (Listing, zeroing and restore
    /// are the caller's.)
    pub fn apply(&mut self, cmd: &Command) -> Result<(), String> {
        match cmd {
            Command::AddService(spec) => self.add_service(spec),
            Command::EditService(spec) => {
                let (version, published) = (self.bump(), self.published.get());
                let svc = self.find_mut(spec.key).ok_or("No such service")?;
                if let Some(r) = &spec.refusal {
                    return Err(r.clone());
                }
                let rebind = svc.spec.scheduler != spec.scheduler;
                svc.spec = spec.clone();
                svc.version = version;
                if rebind {
                    let cw = WrrConsts::new(&svc.dests).mw;
                    svc.log(version, ListChange::Bind { cw }, published);
                    svc.bound = version;
                }
                Ok(())
            }
            Command::DeleteService(key) => {
                let i = self
                    .services
                    .iter()
                    .position(|s| s.spec.key == *key)
                    .ok_or("No such service")?;
                self.remove_at(i);
                Ok(())
            }
            Command::AddServer(spec) => self.add_server(spec),
            Command::EditServer(spec) => {
                let (version, published) = (self.bump(), self.published.get());
                let sync_running = self.sync_running;
                let svc = self.find_mut(spec.service).ok_or("Service not defined")?;
                if sync_running && spec.addr.is_ipv6() != svc.is_ipv6() {
                    return Err(NOT_UNICAST.into());
                }
                if spec.lower > spec.upper {
                    return Err(OUT_OF_RANGE.into());
                }
                let d = svc
                    .dests
                    .iter_mut()
                    .find(|d| d.addr == spec.addr && d.port == spec.port)
                    .ok_or("No such destination")?;
                if let Some(r) = &spec.refusal {
                    return Err(r.clone());
                }
                d.method = spec.method;
                d.weight = spec.weight;
                // Maglev keeps a quiesced server's slots with its last non-zero weight.
                if spec.weight > 0 {
                    d.last_weight = spec.weight;
                }
                d.upper = spec.upper;
                d.lower = spec.lower;
                d.tunnel = spec.tunnel;
                let (id, t) = (d.id, thresholds(spec));
                svc.version = version;
                svc.log(version, ListChange::Edited, published);
                if let Some(l) = self.loads.get(id) {
                    l.set_thresholds(t);
                }
                Ok(())
            }
            Command::DeleteServer {
                service,
                addr,
                port,
            } => {
                let (version, published) = (self.bump(), self.published.get());
                let svc = self.find_mut(*service).ok_or("Service not defined")?;
                let i = svc
                    .dests
                    .iter()
                    .position(|d| d.addr == *addr && d.port == *port)
                    .ok_or("No such destination")?;
                let d = svc.dests.remove(i);
                svc.version = version;
                svc.log(version, ListChange::Removed(i), published);
                self.dest_used[d.id] = false;
                self.trash.push((*service, d.addr, d.port, d.id));
                self.removals += 1;
                Ok(())
            }
            Command::Clear => {
                while !self.services.is_empty() {
                    self.remove_at(self.services.len() - 1);
                }
                Ok(())
            }
            Command::SetTimeouts { tcp, tcpfin, udp } => {
                self.timeouts.set(*tcp, *tcpfin, *udp);
                Ok(())
            }
            other => Err(format!("not a change: {other:?}")),
        }
    }

    fn add_service(&mut self, spec: &ServiceSpec) -> Result<(), String> {
        if self.find(spec.key).is_some() {
            return Err("Service already exists".into());
        }
        if let Some(r) = &spec.refusal {
            return Err(r.clone());
        }
        if let (Some(m), ServiceKey::Addr(_, a)) = (spec.netmask, spec.key) {
            if a.is_ipv4() && m > 32 {
                return Err("illegal virtual server persistent mask specified".into());
            }
        }
        let wanted = self.entries_for(spec.key);
        let mut entries = Vec::with_capacity(wanted.len());
        for (proto, addr, port) in wanted {
            // A marked VIP:port may also have a service of its own (the mark wins); two
            // mark services cannot share one.
            let taken = matches!(spec.key, ServiceKey::Fwmark { .. })
                && self.entry_taken(spec.key, (proto, addr, port));
            if taken {
                self.release_entries(&entries);
                return Err(format!(
                    "{} {addr} port {port} already belongs to another service",
                    proto.name()
                ));
            }
            match self.alloc_entry() {
                Ok(id) => entries.push(Entry {
                    id,
                    proto,
                    addr,
                    port,
                }),
                Err(e) => {
                    self.release_entries(&entries);
                    return Err(e);
                }
            }
        }
        let version = self.bump();
        let mut vs = VirtualService {
            spec: spec.clone(),
            dests: Vec::new(),
            entries,
            version,
            sched_log: Vec::new(),
            bound: version,
        };
        vs.log(version, ListChange::Bind { cw: 0 }, self.published.get());
        self.services.push(vs);
        Ok(())
    }

    fn release_entries(&mut self, entries: &[Entry]) {
        for e in entries {
            self.entry_used[usize::from(e.id)] = false;
        }
    }

    fn remove_at(&mut self, i: usize) {
        let svc = self.services.remove(i);
        self.release_entries(&svc.entries);
        for d in &svc.dests {
            self.dest_used[d.id] = false;
            self.trash.push((svc.spec.key, d.addr, d.port, d.id));
            self.removals += 1;
        }
    }

    fn add_server(&mut self, spec: &ServerSpec) -> Result<(), String> {
        let svc = self.find(spec.service).ok_or("Service not defined")?;
        // Only a tunnel carries one family in the other (IPv4 in IPv6 and back), as IPVS.
        if spec.addr.is_ipv6() != svc.is_ipv6() && spec.method != rvs_core::ForwardMethod::Tun {
            return Err("the real server's address family differs from the service's".into());
        }
        if self.sync_running && spec.addr.is_ipv6() != svc.is_ipv6() {
            return Err(NOT_UNICAST.into());
        }
        // The kernel's order: thresholds, an existing server, a non-unicast address, then
        // what rvs does not implement.
        if spec.lower > spec.upper {
            return Err(OUT_OF_RANGE.into());
        }
        if svc
            .dests
            .iter()
            .any(|d| d.addr == spec.addr && d.port == spec.port)
        {
            return Err("Destination already exists".into());
        }
        if !unicast(spec.addr) {
            return Err(NOT_UNICAST.into());
        }
        if let Some(r) = &spec.refusal {
            return Err(r.clone());
        }
        let id = match self.revive(spec) {
            Some(id) => id,
            None => self.alloc_dest()?,
        };
        if let Some(l) = self.loads.get(id) {
            l.set_thresholds(thresholds(spec));
        }
        let (version, published) = (self.bump(), self.published.get());
        let ecmp = self.ecmp;
        let svc = self.find_mut(spec.service).ok_or("Service not defined")?;
        // IPVS puts a new server at the head; behind ECMP every node keeps one order.
        let at = if ecmp {
            svc.dests
                .partition_point(|d| (d.addr, d.port) < (spec.addr, spec.port))
        } else {
            0
        };
        svc.dests.insert(
            at,
            RealServer {
                addr: spec.addr,
                port: spec.port,
                method: spec.method,
                weight: spec.weight,
                last_weight: spec.weight,
                upper: spec.upper,
                lower: spec.lower,
                tunnel: spec.tunnel,
                id,
            },
        );
        svc.version = version;
        svc.log(version, ListChange::Added, published);
        Ok(())
    }

    /// Applies every command or none: the first error names where its command came from
    /// (`line 3`, `keepalived.conf:12`).
    pub fn apply_all(&mut self, cmds: &[(String, Command)]) -> Result<(), String> {
        let mut next = self.clone();
        for (at, c) in cmds {
            next.apply(c).map_err(|e| format!("{at}: {e}"))?;
        }
        *self = next;
        Ok(())
    }

    /// What [`Director::take_settings`] would change in this director, a line each, as a
    /// reload reports it (the rules' changes are its ipvsadm lines).
    pub fn settings_changes(&self, to: &Director) -> Vec<String> {
        let mut out = Vec::new();
        let on = |b: bool| if b { "on" } else { "off" };
        let mut count = |what: &str, (old, new): (usize, usize), same: bool| {
            if !same {
                out.push(format!("{what}: {old} -> {new}"));
            }
        };
        count(
            "routes",
            (self.routes.len(), to.routes.len()),
            self.routes == to.routes,
        );
        count(
            "static neighbours",
            (self.neighbours.len(), to.neighbours.len()),
            self.neighbours == to.neighbours,
        );
        count(
            "[[outgoing]] member ranges",
            (self.member_ports.len(), to.member_ports.len()),
            self.member_ports == to.member_ports,
        );
        count(
            "[[vip]] unserved = \"drop\" addresses",
            (self.unserved_drop.len(), to.unserved_drop.len()),
            self.unserved_drop == to.unserved_drop,
        );
        count(
            "full NAT services",
            (self.full_nat.len(), to.full_nat.len()),
            self.full_nat == to.full_nat,
        );
        count(
            "[[snat]] rules",
            (self.snat.len(), to.snat.len()),
            self.snat == to.snat,
        );
        for (name, old, new) in [
            ("ip_forward", self.ip_forward, to.ip_forward),
            ("sloppy_tcp", self.sloppy_tcp, to.sloppy_tcp),
            ("sloppy_sctp", self.sloppy_sctp, to.sloppy_sctp),
            (
                "expire_nodest_conn",
                self.expire_nodest_conn,
                to.expire_nodest_conn,
            ),
            (
                "expire_quiescent_template",
                self.expire_quiescent_template,
                to.expire_quiescent_template,
            ),
            ("pmtu_disc", self.pmtu_disc, to.pmtu_disc),
            ("nat_icmp_send", self.nat_icmp_send, to.nat_icmp_send),
            ("schedule_icmp", self.schedule_icmp, to.schedule_icmp),
            ("cache_bypass", self.cache_bypass, to.cache_bypass),
            ("run_estimation", self.run_estimation, to.run_estimation),
            (
                "sync_persist_mode",
                self.sync_persist_mode,
                to.sync_persist_mode,
            ),
            ("backup_only", self.backup_only, to.backup_only),
            ("ecmp", self.ecmp, to.ecmp),
        ] {
            if old != new {
                out.push(format!("{name} {}", on(new)));
            }
        }
        if self.conn_reuse_mode != to.conn_reuse_mode {
            out.push(format!("conn_reuse_mode {}", to.conn_reuse_mode));
        }
        // (1 and 2 are one setting, automatic; the defence moves between them itself.)
        if defence_setting(self.secure_tcp) != defence_setting(to.secure_tcp) {
            out.push(format!("secure_tcp {}", to.secure_tcp));
        }
        for (name, old, new) in [
            ("drop_entry", self.drop_entry, to.drop_entry),
            ("drop_packet", self.drop_packet, to.drop_packet),
        ] {
            if defence_setting(old) != defence_setting(new) {
                out.push(format!("{name} {new}"));
            }
        }
        if self.amemthresh != to.amemthresh {
            out.push(format!("amemthresh {} pages", to.amemthresh));
        }
        if self.am_droprate != to.am_droprate {
            out.push(format!("am_droprate {}", to.am_droprate));
        }
        if self.sync_refresh_period != to.sync_refresh_period {
            out.push(format!("sync_refresh_period {} s", to.sync_refresh_period));
        }
        let (old, new) = (self.cache_expiration, to.cache_expiration);
        for (name, old, new) in [
            ("lblc_expiration", old.lblc, new.lblc),
            ("lblcr_expiration", old.lblcr, new.lblcr),
        ] {
            if old != new {
                out.push(format!("{name} {new} s"));
            }
        }
        if self.timeouts != to.timeouts {
            let t = &to.timeouts;
            out.push(format!(
                "timeouts (tcp tcpfin udp) {} {} {}",
                t.tcp[1], t.tcp[4], t.udp
            ));
        }
        out
    }

    /// Takes `from`'s settings beside the services and marks (routes, neighbours, VIP
    /// handling, member ranges, forwarding, sloppy TCP and ECMP order, full NAT, SNAT,
    /// timeouts): what a reload applies once the rules are.
    pub fn take_settings(&mut self, from: &Director) {
        self.routes = from.routes.clone();
        self.neighbours = from.neighbours.clone();
        self.unserved_drop = from.unserved_drop.clone();
        self.member_ports = from.member_ports.clone();
        self.ip_forward = from.ip_forward;
        self.sloppy_tcp = from.sloppy_tcp;
        self.sloppy_sctp = from.sloppy_sctp;
        self.expire_nodest_conn = from.expire_nodest_conn;
        self.expire_quiescent_template = from.expire_quiescent_template;
        self.conn_reuse_mode = from.conn_reuse_mode;
        self.pmtu_disc = from.pmtu_disc;
        self.nat_icmp_send = from.nat_icmp_send;
        self.schedule_icmp = from.schedule_icmp;
        self.cache_bypass = from.cache_bypass;
        self.run_estimation = from.run_estimation;
        if defence_setting(self.secure_tcp) != defence_setting(from.secure_tcp) {
            self.secure_tcp = from.secure_tcp;
        }
        if defence_setting(self.drop_entry) != defence_setting(from.drop_entry) {
            self.drop_entry = from.drop_entry;
        }
        if defence_setting(self.drop_packet) != defence_setting(from.drop_packet) {
            self.drop_packet = from.drop_packet;
        }
        self.amemthresh = from.amemthresh;
        self.am_droprate = from.am_droprate;
        self.sync_persist_mode = from.sync_persist_mode;
        self.sync_refresh_period = from.sync_refresh_period;
        self.cache_expiration = from.cache_expiration;
        self.backup_only = from.backup_only;
        self.ecmp = from.ecmp;
        self.full_nat = from.full_nat.clone();
        self.snat = from.snat.clone();
        self.timeouts = from.timeouts;
    }

    /// The immutable snapshot for the workers.
    pub fn snapshot(&self) -> Snapshot {
        let mut services = Vec::new();
        // Firewall-mark services come last: their VIP:port entries take precedence over a
        // service of the same address, as a marked packet goes to the mark's service in IPVS.
        let (marked, plain): (Vec<&VirtualService>, Vec<&VirtualService>) = self
            .services
            .iter()
            .partition(|s| matches!(s.spec.key, ServiceKey::Fwmark { .. }));
        for vs in plain.into_iter().chain(marked) {
            let full = if vs.is_ipv6() { 128 } else { 32 };
            let group = match vs.spec.key {
                ServiceKey::Fwmark { mark, .. } => Some(mark),
                ServiceKey::Addr(..) => None,
            };
            let servers = vs.dests.clone();
            let sched_log: Arc<[SchedEvent]> = Arc::from(vs.sched_log.as_slice());
            // A bind no worker has seen: caches made here, so workers allocate none.
            let caches = match vs.sched_log.first() {
                Some(e)
                    if matches!(e.change, ListChange::Bind { .. })
                        && e.version > self.published.get() =>
                {
                    Some(Arc::new(CachePool::for_workers(
                        &vs.spec.scheduler,
                        self.workers * vs.entries.len(),
                    )))
                }
                _ => None,
            };
            for e in &vs.entries {
                let mut s = Service::new(
                    e.id,
                    e.proto.number(),
                    e.addr,
                    e.port,
                    group,
                    vs.spec.scheduler,
                    vs.spec
                        .persistent
                        .map(|t| (t, vs.spec.netmask.unwrap_or(full))),
                    servers.clone(),
                );
                s.version = vs.version;
                s.sched_epoch = vs.bound as u16;
                s.sched_log = sched_log.clone();
                s.caches = caches.clone();
                s.one_packet = vs.spec.one_packet;
                s.pe_sip = vs.spec.pe.as_deref() == Some("sip");
                s.persist_mask_v4 = vs.spec.mask_v4.map(u32::from);
                s.full_nat = self
                    .full_nat
                    .iter()
                    .find(|(k, _)| *k == vs.spec.key)
                    .map(|(_, f)| f.clone());
                services.push(s);
            }
        }
        let mut snap = Snapshot::new(
            services,
            self.ports.clone(),
            self.routes
                .iter()
                .chain(&self.vrrp_routes)
                .copied()
                .collect(),
            self.neighbours.iter().copied().collect(),
        );
        snap.timeouts = self.timeouts;
        snap.set_rules(self.vrrp_rules.clone());
        snap.set_floating(self.floating.iter().copied());
        snap.set_unserved_drop(self.unserved_drop.iter().copied());
        snap.set_member_ports(self.member_ports.clone());
        snap.ip_forward = self.ip_forward;
        snap.sloppy_tcp = self.sloppy_tcp;
        snap.sloppy_sctp = self.sloppy_sctp;
        snap.expire_nodest_conn = self.expire_nodest_conn;
        snap.expire_quiescent_template = self.expire_quiescent_template;
        snap.pmtu_disc = self.pmtu_disc;
        snap.nat_icmp_send = self.nat_icmp_send;
        snap.schedule_icmp = self.schedule_icmp;
        snap.cache_bypass = self.cache_bypass;
        snap.secure_tcp = self.secure_tcp >= 2;
        snap.drop_entry = self.drop_entry >= 2;
        snap.drop_rate = match self.drop_packet {
            2 => self.drop_rate,
            3 => self.am_droprate,
            _ => 0,
        };
        snap.sync_persist_mode = self.sync_persist_mode;
        snap.sync_refresh_period = self.sync_refresh_period;
        snap.cache_expiration = self.cache_expiration;
        snap.director_paused = self.backup_only && self.sync_backup;
        snap.conn_reuse_mode = self.conn_reuse_mode;
        snap.servers_removed = self.removals;
        snap.set_snat(self.snat.clone());
        snap.set_marks(self.mark_selections(&snap.services));
        snap.set_route_marks(self.marks.iter().map(|m| m.engine_rule()).collect());
        self.published.set(self.next_version);
        snap
    }

    /// Refuses full NAT the workers' tables have no room for.
    pub fn check_full_nat_room(&self) -> Result<(), String> {
        if self.full_nat_room || (self.full_nat.is_empty() && self.snat.is_empty()) {
            return Ok(());
        }
        Err("full NAT and SNAT need room in the connection tables, sized at start: set [dataplane] full_nat = true".into())
    }

    /// Each firewall-mark rule with the snapshot service it selects: its own VIP:port entry
    /// for a single-address rule, else the first entry (the scheduling one) of its mark's
    /// service of its family. Rules of marks without a service select nothing.
    fn mark_selections(&self, services: &[Service]) -> Vec<(MarkRule, usize)> {
        self.marks
            .iter()
            .filter_map(|m| {
                let of_mark =
                    |s: &&Service| s.group == Some(m.mark) && s.vaddr.is_ipv4() == m.addr.is_ipv4();
                let own = m.entry().and_then(|(p, a, port)| {
                    services.iter().position(|s| {
                        of_mark(&s) && s.proto == p.number() && s.vaddr == a && s.vport == port
                    })
                });
                let i = own.or_else(|| services.iter().position(|s| of_mark(&s)))?;
                Some((m.engine_rule(), i))
            })
            .collect()
    }

    /// A server on the appliance itself (IPVS's "Local" forwarding): one of the ports'
    /// addresses or a loopback address.
    pub fn is_local(&self, a: IpAddr) -> bool {
        a.is_loopback() || self.ports.iter().any(|p| p.addrs.contains(&a))
    }

    /// Every VIP: the addresses of services (a mark's single addresses too) and of members'
    /// outgoing ranges, in order.
    pub fn vips(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .services
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.addr))
            .chain(self.member_ports.iter().map(|r| r.vip))
            .filter(|a| !a.is_unspecified())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The VIPs `[announce]` considers: `vips`, else every VIP a service listens on.
    pub fn announced_vips(&self, vips: Option<&[IpAddr]>) -> Vec<IpAddr> {
        let mut all: Vec<IpAddr> = match vips {
            Some(v) => v.to_vec(),
            None => self
                .services
                .iter()
                .filter_map(|s| match s.spec.key {
                    ServiceKey::Addr(_, a) => Some(a.ip()),
                    ServiceKey::Fwmark { .. } => None,
                })
                .collect(),
        };
        all.sort();
        all.dedup();
        all
    }

    /// Whether the appliance itself is among the service's real servers.
    fn has_local_server(&self, s: &VirtualService) -> bool {
        s.dests.iter().any(|d| self.is_local(d.addr))
    }

    /// VIPs a service of which has the appliance itself among its servers: the host serves
    /// them as a real server (LVS's VIP on lo), VRRP BACKUP or not.
    pub fn vips_served_here(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .services
            .iter()
            .filter(|s| self.has_local_server(s))
            .flat_map(|s| s.entries.iter().map(|e| e.addr))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// VIPs the host's stack must own: those served by a local server, and every VIP whose
    /// traffic for no service goes to the host (not the appliance's own addresses, which
    /// the host has already).
    pub fn local_vips(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .services
            .iter()
            .flat_map(|s| {
                let local = self.has_local_server(s);
                s.entries
                    .iter()
                    .map(|e| e.addr)
                    .filter(move |a| local || !self.unserved_drop.contains(a))
            })
            .chain(
                self.member_ports
                    .iter()
                    .map(|r| r.vip)
                    .filter(|a| !self.unserved_drop.contains(a)),
            )
            .filter(|a| !self.ports.iter().any(|p| p.addrs.contains(a)))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Real servers in use.
    pub fn dest_count(&self) -> usize {
        self.services.iter().map(|s| s.dests.len()).sum()
    }
}

fn thresholds(spec: &ServerSpec) -> Thresholds {
    Thresholds {
        upper: spec.upper,
        lower: spec.lower,
    }
}

/// ipvsadm's words for the kernel's ERANGE (a lower threshold above the upper one).
const OUT_OF_RANGE: &str = "Numerical result out of range";
/// ipvsadm's words for the kernel's EINVAL when adding a real server (or starting a sync
/// daemon next to a mixed-family service).
pub const NOT_UNICAST: &str =
    "Invalid operation.  Possibly wrong module version, address not unicast, ...";

/// Whether a real server's address is one the kernel takes (unicast, as inet_addr_type
/// and ipv6_addr_type see it: an IPv4-mapped IPv6 address is IPV6_ADDR_MAPPED, not
/// unicast).
fn unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some())
        }
    }
}

/// An IPVS defence's setting as configured: its automatic modes (1, and 2 while on) are one.
fn defence_setting(level: u8) -> u8 {
    if level == 2 {
        1
    } else {
        level
    }
}

/// IPVS's update_defense_level for a defence at `level` (0-3) whose resource is `short`:
/// its automatic modes move 1 -> 2 while short and back once not; 0 and 3 stay. On at 2
/// and 3.
pub fn defence_step(level: u8, short: bool) -> u8 {
    match (level, short) {
        (1, true) => 2,
        (2, false) => 1,
        (l, _) => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::parse_line;

    pub(crate) fn director(dests: usize) -> Director {
        let loads = Arc::new((0..dests).map(|_| DestLoad::default()).collect());
        Director::new(Limits { entries: 16, dests }, loads)
    }

    fn run(d: &mut Director, lines: &str) -> Result<(), String> {
        for l in lines.lines() {
            if let Some(c) = parse_line(l)? {
                d.apply(&c)?;
            }
        }
        Ok(())
    }

    /// VRRP's routes join the configuration's in the snapshot (the longest prefix wins, the
    /// configuration's first among equals) and leave it when VRRP takes them back.
    #[test]
    fn vrrp_routes_join_the_configuration_s() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let route = |p: &str, len, gateway: Option<&str>, port| Route {
            prefix: ip(p),
            len,
            gateway: gateway.map(ip),
            port,
            table: rvs_core::engine::MAIN_TABLE,
        };
        let mut d = director(1);
        d.routes = vec![
            route("10.0.0.0", 24, None, 0),
            route("10.5.0.0", 16, Some("10.0.0.9"), 0),
        ];
        d.vrrp_routes = vec![
            route("0.0.0.0", 0, Some("192.0.2.1"), 1),
            route("10.5.0.0", 16, Some("10.0.0.8"), 0),
            route("10.5.1.0", 24, Some("10.0.0.7"), 0),
        ];
        let snap = d.snapshot();
        assert_eq!(snap.route(ip("198.51.100.1")), Some((1, ip("192.0.2.1"))));
        assert_eq!(snap.route(ip("10.5.9.9")), Some((0, ip("10.0.0.9"))));
        assert_eq!(snap.route(ip("10.5.1.9")), Some((0, ip("10.0.0.7"))));
        assert_eq!(snap.route(ip("10.0.0.5")), Some((0, ip("10.0.0.5"))));
        d.vrrp_routes.clear();
        let snap = d.snapshot();
        assert_eq!(snap.route(ip("198.51.100.1")), None);
        assert_eq!(snap.route(ip("10.5.1.9")), Some((0, ip("10.0.0.9"))));
    }

    /// Behind ECMP every node must build the same mh table whatever order its servers came
    /// in (a node whose checker took one out and put it back has it at the head in IPVS's
    /// order): with `ecmp` the servers stay sorted and the tables agree slot for slot.
    #[test]
    fn ecmp_nodes_build_one_mh_table_whatever_the_order() {
        let service = "ipvsadm -A -t 192.0.2.80:80 -s mh\n";
        let add = |last: u8| format!("ipvsadm -a -t 192.0.2.80:80 -r 10.0.0.{last}:80 -g\n");
        let table_of = |ecmp: bool, order: &[u8], flap: Option<u8>| {
            let mut d = director(8);
            d.ecmp = ecmp;
            let mut lines = service.to_string();
            for &o in order {
                lines.push_str(&add(o));
            }
            if let Some(f) = flap {
                lines.push_str(&format!("ipvsadm -d -t 192.0.2.80:80 -r 10.0.0.{f}:80\n"));
                lines.push_str(&add(f));
            }
            run(&mut d, &lines).unwrap();
            let snap = d.snapshot();
            let s = &snap.services[0];
            let servers: Vec<String> = s.servers.iter().map(|r| r.addr.to_string()).collect();
            // Each slot's server by address: what a flow hashing there gets.
            match &s.table {
                rvs_core::sched::SchedTable::Buckets(b) => b
                    .iter()
                    .map(|i| i.map(|i| servers[i as usize].clone()))
                    .collect::<Vec<_>>(),
                other => panic!("mh without buckets: {other:?}"),
            }
        };
        let a = table_of(true, &[1, 2, 3, 4], None);
        assert_eq!(a, table_of(true, &[4, 2, 3, 1], None));
        assert_eq!(a, table_of(true, &[1, 2, 3, 4], Some(2)));
        assert!(a.iter().all(Option::is_some));
        // IPVS's own order (the newest first) makes them differ.
        assert_ne!(
            table_of(false, &[1, 2, 3, 4], None),
            table_of(false, &[4, 2, 3, 1], None)
        );
    }

    /// A scheduler set anew (changed, or changed and back) is a new binding in the
    /// snapshot's epoch (lblc's shared table starts empty); a server's weight is not.
    #[test]
    fn a_scheduler_change_is_a_new_binding() {
        let mut d = director(4);
        run(
            &mut d,
            "ipvsadm -A -t 192.0.2.80:80 -s lblc\nipvsadm -a -t 192.0.2.80:80 -r 10.0.0.1:80 -m",
        )
        .unwrap();
        let epoch = |d: &mut Director| d.snapshot().services[0].sched_epoch;
        let first = epoch(&mut d);
        run(&mut d, "ipvsadm -e -t 192.0.2.80:80 -r 10.0.0.1:80 -m -w 5").unwrap();
        assert_eq!(epoch(&mut d), first, "a weight changes no binding");
        run(&mut d, "ipvsadm -E -t 192.0.2.80:80 -s lblc").unwrap();
        assert_eq!(epoch(&mut d), first, "the same scheduler is no new binding");
        run(&mut d, "ipvsadm -E -t 192.0.2.80:80 -s rr").unwrap();
        let rr = epoch(&mut d);
        assert_ne!(rr, first);
        run(&mut d, "ipvsadm -E -t 192.0.2.80:80 -s lblc").unwrap();
        let again = epoch(&mut d);
        assert!(again != first && again != rr, "{first} {rr} {again}");
    }

    #[test]
    fn howto_nat_sequence_builds_the_snapshot() {
        let mut d = director(8);
        run(
            &mut d,
            "ipvsadm -A -t 192.168.1.100:80 -s rr
             ipvsadm -a -t 192.168.1.100:80 -r 10.0.0.1:80 -m
             ipvsadm -a -t 192.168.1.100:80 -r 10.0.0.2:80 -m
             ipvsadm -E -t 192.168.1.100:80 -s wrr
             ipvsadm -e -t 192.168.1.100:80 -r 10.0.0.1:80 -m -w 3",
        )
        .unwrap();
        let snap = d.snapshot();
        assert_eq!(snap.services.len(), 1);
        let s = &snap.services[0];
        let servers: Vec<(String, u32)> = s
            .servers
            .iter()
            .map(|r| (r.addr.to_string(), r.weight))
            .collect();
        assert_eq!(
            servers,
            vec![("10.0.0.2".into(), 1), ("10.0.0.1".into(), 3)]
        );
        assert_eq!(s.sched.name(), "wrr");
        assert!(s
            .servers
            .iter()
            .all(|r| r.method == rvs_core::ForwardMethod::Nat));
    }

    #[test]
    fn an_ipv4_mapped_real_server_is_not_unicast() {
        // ipv6_addr_type calls ::ffff:a.b.c.d IPV6_ADDR_MAPPED, without the unicast bit: the
        // kernel refuses such a server with EINVAL, ipvsadm prints its words for it.
        let mut d = director(4);
        run(&mut d, "-A -t [2001:db8::80]:80").unwrap();
        assert_eq!(
            run(&mut d, "-a -t [2001:db8::80]:80 -r [::ffff:10.0.0.2]:80 -m").unwrap_err(),
            NOT_UNICAST
        );
        assert!(d.services[0].dests.is_empty());
        run(&mut d, "-a -t [2001:db8::80]:80 -r [2001:db8::2]:80 -m").unwrap();
        run(&mut d, "-a -t [2001:db8::80]:80 -r [::10.0.0.3]:80 -m").unwrap();
        assert_eq!(d.services[0].dests.len(), 2, "IPv4-compatible is unicast");
    }

    #[test]
    fn errors_use_ipvsadm_wording_and_change_nothing() {
        let mut d = director(2);
        run(&mut d, "-A -t 1.1.1.1:80\n-a -t 1.1.1.1:80 -r 10.0.0.1").unwrap();
        let before = d.services.clone();
        let e = |d: &mut Director, l: &str| run(d, l).unwrap_err();
        assert_eq!(e(&mut d, "-A -t 1.1.1.1:80"), "Service already exists");
        assert_eq!(e(&mut d, "-E -t 1.1.1.2:80"), "No such service");
        assert_eq!(e(&mut d, "-D -t 1.1.1.2:80"), "No such service");
        assert_eq!(
            e(&mut d, "-a -t 1.1.1.2:80 -r 10.0.0.1"),
            "Service not defined"
        );
        assert_eq!(
            e(&mut d, "-a -t 1.1.1.1:80 -r 10.0.0.1"),
            "Destination already exists"
        );
        assert_eq!(
            e(&mut d, "-e -t 1.1.1.1:80 -r 10.0.0.9"),
            "No such destination"
        );
        assert_eq!(
            e(&mut d, "-d -t 1.1.1.1:80 -r 10.0.0.9"),
            "No such destination"
        );
        run(&mut d, "-a -t 1.1.1.1:80 -r 10.0.0.2").unwrap();
        assert!(e(&mut d, "-a -t 1.1.1.1:80 -r 10.0.0.3").contains("Memory allocation"));
        assert!(e(&mut d, "-a -t 1.1.1.1:80 -r 2001:db8::1").contains("family"));
        assert_eq!(d.services[0].dests.len(), 2);
        assert_ne!(d.services, before);
        // All or nothing.
        let cmds: Vec<(String, Command)> = ["-A -t 2.2.2.2:80", "-a -t 9.9.9.9:80 -r 10.0.0.1"]
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("line {}", i + 1), parse_line(l).unwrap().unwrap()))
            .collect();
        let keep = d.services.clone();
        assert_eq!(
            d.apply_all(&cmds).unwrap_err(),
            "line 2: Service not defined"
        );
        assert_eq!(d.services, keep);
    }

    #[test]
    fn removed_server_ids_wait_for_their_connections() {
        let mut d = director(2);
        run(
            &mut d,
            "-A -t 1.1.1.1:80\n-a -t 1.1.1.1:80 -r 10.0.0.1\n-a -t 1.1.1.1:80 -r 10.0.0.2",
        )
        .unwrap();
        let id = d.services[0].dests[1].id;
        d.loads()[id].bind();
        run(&mut d, "-d -t 1.1.1.1:80 -r 10.0.0.1").unwrap();
        // Its connection still counts against id: no slot is free.
        assert!(run(&mut d, "-a -t 1.1.1.1:80 -r 10.0.0.3").is_err());
        d.loads()[id].unbind(false);
        run(&mut d, "-a -t 1.1.1.1:80 -r 10.0.0.3").unwrap();
        assert_eq!(d.services[0].dests[0].id, id);
    }

    /// IPVS's destination trash: a deleted server added back to its service while its
    /// connections wait takes its id again (so they go on); another server or service
    /// does not get it.
    #[test]
    fn a_server_added_back_takes_its_id_again() {
        let mut d = director(4);
        run(
            &mut d,
            "-A -t 1.1.1.1:80\n-A -t 2.2.2.2:80\n-a -t 1.1.1.1:80 -r 10.0.0.1 -m\n-a -t 1.1.1.1:80 -r 10.0.0.2 -m",
        )
        .unwrap();
        let id = d.services[0].dests[1].id;
        d.loads()[id].bind();
        assert_eq!(d.snapshot().servers_removed, 0);
        run(&mut d, "-d -t 1.1.1.1:80 -r 10.0.0.1").unwrap();
        assert_eq!(
            d.snapshot().servers_removed,
            1,
            "the workers' sweeps follow it"
        );
        run(&mut d, "-a -t 2.2.2.2:80 -r 10.0.0.1 -m").unwrap();
        assert_ne!(d.services[1].dests[0].id, id, "another service's server");
        run(&mut d, "-a -t 1.1.1.1:80 -r 10.0.0.1:8080 -m").unwrap();
        assert_ne!(d.services[0].dests[0].id, id, "another port");
        run(&mut d, "-a -t 1.1.1.1:80 -r 10.0.0.1 -m").unwrap();
        assert_eq!(
            d.services[0].dests[0].id, id,
            "the same server: its id back"
        );
        // Deleted with its service, then both back.
        run(
            &mut d,
            "-D -t 1.1.1.1:80\n-A -t 1.1.1.1:80\n-a -t 1.1.1.1:80 -r 10.0.0.1 -m",
        )
        .unwrap();
        assert_eq!(d.services.last().unwrap().dests[0].id, id);
    }

    #[test]
    fn fwmark_services_cover_their_marked_entries_and_share_a_version() {
        let mut d = director(4);
        for port in [80, 23] {
            d.marks.push(FwmarkRule::exact(
                10,
                Protocol::Tcp,
                "10.1.1.254".parse().unwrap(),
                port,
            ));
        }
        run(
            &mut d,
            "ipvsadm -A -f 10 -s rr
             ipvsadm -a -f 10 -r 10.1.1.2 -g -w 2
             ipvsadm -a -f 10 -r 10.1.1.3 -g -w 1
             ipvsadm -E -f 10 -p 600",
        )
        .unwrap();
        let snap = d.snapshot();
        assert_eq!(snap.services.len(), 2);
        assert!(snap.services.iter().all(|s| s.group == Some(10)
            && s.persistence == Some((600, 32))
            && s.servers.len() == 2
            && s.version == snap.services[0].version));
        let ports: Vec<u16> = snap.services.iter().map(|s| s.vport).collect();
        assert_eq!(ports, vec![80, 23]);
        // A service of its own on a marked VIP:port coexists; the mark takes precedence.
        run(&mut d, "-A -t 10.1.1.254:80 -s wlc").unwrap();
        let snap = d.snapshot();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let s = snap
            .service_for_packet(6, ip("192.0.2.1"), ip("10.1.1.254"), 80)
            .unwrap();
        assert_eq!(s.group, Some(10));
        // Two mark services cannot share a VIP:port.
        d.marks
            .push(FwmarkRule::exact(11, Protocol::Tcp, ip("10.1.1.254"), 80));
        assert!(run(&mut d, "-A -f 11")
            .unwrap_err()
            .contains("another service"));
    }

    #[test]
    fn versions_move_only_for_the_changed_service() {
        let mut d = director(4);
        run(&mut d, "-A -t 1.1.1.1:80\n-A -u 1.1.1.1:53").unwrap();
        let v: Vec<u64> = d.services.iter().map(|s| s.version).collect();
        run(&mut d, "-a -u 1.1.1.1:53 -r 10.0.0.1").unwrap();
        assert_eq!(d.services[0].version, v[0]);
        assert_ne!(d.services[1].version, v[1]);
        run(&mut d, "--set 100 20 30").unwrap();
        assert_eq!(d.snapshot().timeouts.udp, 30);
    }
}
