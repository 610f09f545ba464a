//! What the control side publishes for the workers: services with their real servers and
//! scheduler tables, the appliance's ports and addresses, routes and static neighbours.
//! Immutable once built; workers switch to a new one at a burst boundary.

use super::probe_map::ProbeMap;
use crate::conn::{addr16, addr_word, ip_of, Addr16, Timeouts};
use crate::model::{ForwardMethod, RealServer};
use crate::sched::{build_table, CachePool, SchedEvent, SchedKind, SchedTable};
use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A virtual service.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: u16,
    pub proto: u8,
    pub vaddr: IpAddr,
    /// 0 = all ports.
    pub vport: u16,
    /// Services sharing a group (a firewall mark) share persistence.
    pub group: Option<u32>,
    pub sched: SchedKind,
    /// Persistence timeout (s) and netmask (prefix length).
    pub persistence: Option<(u32, u8)>,
    /// An IPv4 persistence mask with non-contiguous ones (it replaces the prefix).
    pub persist_mask_v4: Option<u32>,
    /// One-packet scheduling (ipvsadm -o): every UDP datagram is scheduled on its own.
    pub one_packet: bool,
    /// The SIP persistence engine (ipvsadm --pe sip): UDP persistence by Call-ID.
    pub pe_sip: bool,
    /// Real servers in IPVS list order (newest first).
    pub servers: Vec<RealServer>,
    pub table: SchedTable,
    /// Index of the first service of its group in the snapshot (set by [`Snapshot::new`]).
    pub leader: usize,
    /// Changes with any change of the service (unique across services).
    pub version: u64,
    /// Changes each time its scheduler is bound anew (set, or changed and back): the
    /// workers' shared lblc entries of an earlier binding are not this one's.
    pub sched_epoch: u16,
    /// The recent changes of the server list and scheduler, oldest first: a worker applies
    /// those after the last it applied (see [`crate::sched::SchedState::apply`]).
    pub sched_log: Arc<[SchedEvent]>,
    /// Caches for workers binding lblc/lblcr anew, made on the control side.
    pub caches: Option<Arc<CachePool>>,
    /// Full NAT for its NAT servers: the client's source replaced by a local address.
    pub full_nat: Option<FullNat>,
}

/// A service's full NAT (DPVS's FNAT; the seed's `SNAT --to-source VIP` after IPVS's NAT):
/// connections to its NAT servers leave from a local address and port, so the servers
/// answer to rvs whatever their routes; optionally the client's address travels in a PROXY
/// protocol v2 header before the first data (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullNat {
    /// Local addresses, IPv4 first (each family in the configuration's order); none: the
    /// address of the port towards the server.
    locals: Arc<[IpAddr]>,
    /// How many of `locals` are IPv4.
    v4: usize,
    pub proxy_protocol: bool,
    /// The PROXY header in version 1 (text) instead of 2.
    pub proxy_v1: bool,
}

impl FullNat {
    pub fn new(locals: impl IntoIterator<Item = IpAddr>, proxy_protocol: bool) -> FullNat {
        let mut locals: Vec<IpAddr> = locals.into_iter().collect();
        locals.sort_by_key(|a| a.is_ipv6());
        FullNat {
            v4: locals.iter().filter(|a| a.is_ipv4()).count(),
            locals: locals.into(),
            proxy_protocol,
            proxy_v1: false,
        }
    }

    /// The same with the PROXY header (if any) in version 1.
    pub fn with_proxy_v1(mut self, v1: bool) -> FullNat {
        self.proxy_v1 = v1;
        self
    }

    /// Every local address (IPv4 first).
    pub fn locals(&self) -> &[IpAddr] {
        &self.locals
    }

    /// The local addresses of one family, without a scan (a new connection's lookup).
    pub fn locals_of(&self, ipv4: bool) -> &[IpAddr] {
        let (v4, v6) = self.locals.split_at_checked(self.v4).unwrap_or_default();
        if ipv4 {
            v4
        } else {
            v6
        }
    }
}

/// Source NAT for traffic rvs routes (`iptables -t nat -A POSTROUTING ... -j SNAT` /
/// `MASQUERADE`): a new flow from `source` to `destination` (leaving by `out_port`) gets
/// `to_source` (none: the out port's own address) and a port of `ports`; replies are
/// translated back. Rules are tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnatRule {
    /// None: TCP, UDP and SCTP.
    pub proto: Option<u8>,
    pub source: (IpAddr, u8),
    pub destination: (IpAddr, u8),
    pub out_port: Option<u16>,
    pub to_source: Option<IpAddr>,
    pub ports: (u16, u16),
}

impl SnatRule {
    /// Whether a flow `src -> dst` of `proto` leaving by `out_port` is the rule's.
    pub fn matches(&self, proto: u8, src: IpAddr, dst: IpAddr, out_port: u16) -> bool {
        self.proto.is_none_or(|p| p == proto)
            && within(src, self.source)
            && within(dst, self.destination)
            && self.out_port.is_none_or(|p| p == out_port)
    }
}

impl Service {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u16,
        proto: u8,
        vaddr: IpAddr,
        vport: u16,
        group: Option<u32>,
        sched: SchedKind,
        persistence: Option<(u32, u8)>,
        servers: Vec<RealServer>,
    ) -> Service {
        let table = build_table(&sched, &servers);
        let sched_log = Arc::from([SchedEvent::bind(1, &servers)]);
        Service {
            id,
            proto,
            vaddr,
            vport,
            group,
            sched,
            persistence,
            persist_mask_v4: None,
            one_packet: false,
            pe_sip: false,
            servers,
            table,
            leader: 0,
            version: 0,
            sched_epoch: 0,
            sched_log,
            caches: None,
            full_nat: None,
        }
    }
}

/// Connections a cluster member opens from a VIP with source ports in its own range
/// (CommuniGate's outgoing TCP): packets to the VIP on a port of the range go to the member,
/// by direct routing (it holds the VIP) or NAT (its own address, rvs its gateway, which
/// also gives its packets from that range the VIP as their source). Stateless: the ranges
/// of the members do not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPorts {
    pub proto: u8,
    pub vip: IpAddr,
    pub first: u16,
    pub last: u16,
    pub member: IpAddr,
    /// NAT (the member's own address); else direct routing.
    pub nat: bool,
}

/// [`Snapshot`]'s marks of a real server id.
const SERVER_LIVE: u8 = 1;
const SERVER_QUIESCED: u8 = 2;

/// A protocol's bit in the NAT servers' map (TCP, UDP, SCTP; nothing for another).
fn nat_protocol_bit(proto_num: u8) -> u8 {
    match proto_num {
        rvs_wire::proto::TCP => 1,
        rvs_wire::proto::UDP => 2,
        rvs_wire::proto::SCTP => 4,
        _ => 0,
    }
}

/// A firewall-mark rule (what `iptables -t mangle -A PREROUTING ... -j MARK` does for LVS):
/// packets of `proto` (None: TCP, UDP or SCTP) to `dst` (a prefix) on a destination port in
/// `ports`, from `src` when given, belong to the mark's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRule {
    pub mark: u32,
    pub proto: Option<u8>,
    pub dst: (IpAddr, u8),
    pub ports: (u16, u16),
    pub src: Option<(IpAddr, u8)>,
}

/// Whether `a` is in the prefix `(p, len)` (of its family).
fn within(a: IpAddr, (p, len): (IpAddr, u8)) -> bool {
    a.is_ipv4() == p.is_ipv4() && super::masked(a, len) == super::masked(p, len)
}

impl MarkRule {
    #[inline]
    pub fn matches(&self, proto: u8, src: IpAddr, dst: IpAddr, dport: u16) -> bool {
        self.proto.is_none_or(|p| p == proto)
            && (self.ports.0..=self.ports.1).contains(&dport)
            && within(dst, self.dst)
            && self.src.is_none_or(|s| within(src, s))
    }

    /// One address, one port, one protocol, any source: a single VIP:port entry.
    pub fn is_exact(&self) -> bool {
        let full = if self.dst.0.is_ipv4() { 32 } else { 128 };
        self.proto.is_some()
            && self.dst.1 == full
            && self.ports.0 == self.ports.1
            && self.src.is_none()
    }
}

/// A data port as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub mac: [u8; 6],
    /// The appliance's own addresses on this port (tunnel sources, ARP, the host path).
    pub addrs: Vec<IpAddr>,
    pub mtu: u16,
    /// The port computes IPv4 header checksums on transmit (used for tunnel headers).
    pub ip_checksum_offload: bool,
}

/// The kernel's main routing table (rt_tables' `main`): routes without a `table` go there,
/// and without policy rules it is the only one looked in.
pub const MAIN_TABLE: u32 = 254;
/// rt_tables' `default`, looked in after main by the kernel's last rule.
pub const DEFAULT_TABLE: u32 = 253;

/// A static route: prefix/len via gateway (None = on-link) out of a port, in a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpAddr,
    pub len: u8,
    pub gateway: Option<IpAddr>,
    pub port: u16,
    pub table: u32,
}

impl Route {
    /// A route of the main table.
    pub fn main(prefix: IpAddr, len: u8, gateway: Option<IpAddr>, port: u16) -> Route {
        Route {
            prefix,
            len,
            gateway,
            port,
            table: MAIN_TABLE,
        }
    }

    fn contains(&self, a: IpAddr) -> bool {
        within(a, (self.prefix, self.len))
    }
}

/// What a policy rule does with a packet it selects (`ip rule`'s actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// `table N`: the route from that table; none there, the next rule.
    Table(u32),
    /// `goto P`: on at the first rule of preference P or more (always a later one).
    Goto(u32),
    /// `nop`: nothing; the next rule.
    Nop,
    /// `blackhole`, `unreachable`, `prohibit`: no route (the kind says what the host's
    /// copy does).
    Blackhole,
    Unreachable,
    Prohibit,
}

/// An interface a rule names (`iif`/`dev`, `oif`): the name as written, and the data
/// port of that name (or whose host twin has it) once resolved; None: an interface of the
/// host's own (`lo`, or one that is no data port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleDev {
    name: [u8; 15],
    len: u8,
    pub port: Option<u16>,
}

impl RuleDev {
    /// A kernel interface name: 1 to 15 bytes, no '/', no blank.
    pub fn new(name: &str) -> Option<RuleDev> {
        let ok = (1..=15).contains(&name.len())
            && !name.contains(['/', ':'])
            && !name.chars().any(char::is_whitespace);
        ok.then(|| {
            let mut bytes = [0; 15];
            for (b, n) in bytes.iter_mut().zip(name.as_bytes()) {
                *b = *n;
            }
            RuleDev {
                name: bytes,
                len: name.len() as u8,
                port: None,
            }
        })
    }

    pub fn name(&self) -> &str {
        let name = self.name.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(name).unwrap_or("")
    }

    /// Whether a lookup from `iif` (None: the appliance's own, the kernel's `lo`) is
    /// from this interface.
    fn is(&self, iif: Option<u16>) -> bool {
        match iif {
            Some(p) => self.port == Some(p),
            None => self.name() == "lo",
        }
    }
}

/// What a rule selects besides addresses (`ip rule`'s tos, fwmark, iif, oif, ipproto,
/// sport, dport); None: any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleSelectors {
    /// The DS field as the kernel takes it for a rule: IPv4's TOS bits (0x1c; what
    /// [`tos_key`] keeps), IPv6's DSCP (ECN bits 0).
    pub tos: Option<u8>,
    /// Value and mask: selects a packet whose mark (its `[[fwmark]]` rules') agrees with
    /// the value under the mask.
    pub fwmark: Option<(u32, u32)>,
    pub iif: Option<RuleDev>,
    /// rvs's lookups are never bound to an output interface: an `oif` rule selects none.
    pub oif: Option<RuleDev>,
    pub ipproto: Option<u8>,
    pub sport: Option<(u16, u16)>,
    pub dport: Option<(u16, u16)>,
}

/// What of a packet's DS field a rule's `tos` is compared with, as the kernel does: IPv4's
/// routing TOS bits (IPTOS_RT_MASK), IPv6's DSCP.
pub fn tos_key(ipv6: bool, ds_field: u8) -> u8 {
    if ipv6 {
        ds_field & 0xfc
    } else {
        ds_field & 0x1c
    }
}

/// A route lookup's flow as the kernel's policy rules see it: from a data port (a packet
/// routed through) or from the appliance itself (None: an output lookup, `iif lo`; what
/// IPVS sends), bound to no output interface, with the packet's firewall mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteQuery {
    /// None: before a source is chosen (only rules for any source select it).
    pub src: Option<IpAddr>,
    pub dst: IpAddr,
    pub iif: Option<u16>,
    /// The DS field (TOS / traffic class).
    pub tos: u8,
    pub proto: u8,
    /// TCP, UDP and SCTP ports; 0 otherwise.
    pub sport: u16,
    pub dport: u16,
    /// The firewall mark (0: none).
    pub mark: u32,
}

impl RouteQuery {
    /// An output lookup with addresses alone (IPVS's towards a real server).
    pub fn output(src: Option<IpAddr>, dst: IpAddr) -> RouteQuery {
        RouteQuery {
            src,
            dst,
            iif: None,
            tos: 0,
            proto: 0,
            sport: 0,
            dport: 0,
            mark: 0,
        }
    }
}

/// A policy routing rule (`ip rule`): by preference, the first whose selector matches a
/// packet's flow decides which table routes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub ipv6: bool,
    /// `from PREFIX` (None: all).
    pub from: Option<(IpAddr, u8)>,
    /// `to PREFIX` (None: all).
    pub to: Option<(IpAddr, u8)>,
    pub select: RuleSelectors,
    /// `not`: the selector's sense inverted.
    pub invert: bool,
    pub action: RuleAction,
}

impl Rule {
    /// The kernel's own rules after any others: main (32766), then default (32767).
    fn kernel_defaults() -> [Rule; 4] {
        let rule = |priority, ipv6, table| Rule {
            priority,
            ipv6,
            from: None,
            to: None,
            select: RuleSelectors::default(),
            invert: false,
            action: RuleAction::Table(table),
        };
        [
            rule(32766, false, MAIN_TABLE),
            rule(32766, true, MAIN_TABLE),
            rule(32767, false, DEFAULT_TABLE),
            rule(32767, true, DEFAULT_TABLE),
        ]
    }

    /// The selector and action in `ip rule`'s words, without the preference; interfaces
    /// by `dev_name` (a data port's: its host twin's).
    pub fn words_with(&self, dev_name: impl Fn(&RuleDev) -> String) -> String {
        let mut out = String::new();
        if self.invert {
            out.push_str("not ");
        }
        match self.from {
            Some((a, len)) => out.push_str(&format!("from {a}/{len}")),
            None => out.push_str("from all"),
        }
        if let Some((a, len)) = self.to {
            out.push_str(&format!(" to {a}/{len}"));
        }
        let f = &self.select;
        if let Some(t) = f.tos {
            out.push_str(&format!(" tos {t:#04x}"));
        }
        match f.fwmark {
            Some((v, u32::MAX)) => out.push_str(&format!(" fwmark {v:#x}")),
            Some((v, m)) => out.push_str(&format!(" fwmark {v:#x}/{m:#x}")),
            None => {}
        }
        if let Some(d) = &f.iif {
            out.push_str(&format!(" iif {}", dev_name(d)));
        }
        if let Some(d) = &f.oif {
            out.push_str(&format!(" oif {}", dev_name(d)));
        }
        match f.ipproto {
            // As `ip rule` lists the common ones.
            Some(1) => out.push_str(" ipproto icmp"),
            Some(6) => out.push_str(" ipproto tcp"),
            Some(17) => out.push_str(" ipproto udp"),
            Some(58) => out.push_str(" ipproto ipv6-icmp"),
            Some(132) => out.push_str(" ipproto sctp"),
            Some(p) => out.push_str(&format!(" ipproto {p}")),
            None => {}
        }
        for (word, range) in [("sport", f.sport), ("dport", f.dport)] {
            match range {
                Some((a, b)) if a == b => out.push_str(&format!(" {word} {a}")),
                Some((a, b)) => out.push_str(&format!(" {word} {a}-{b}")),
                None => {}
            }
        }
        let action = match self.action {
            RuleAction::Table(t) => format!("table {t}"),
            RuleAction::Goto(t) => format!("goto {t}"),
            RuleAction::Nop => "nop".into(),
            RuleAction::Blackhole => "blackhole".into(),
            RuleAction::Unreachable => "unreachable".into(),
            RuleAction::Prohibit => "prohibit".into(),
        };
        out.push(' ');
        out.push_str(&action);
        out
    }

    /// [`Rule::words_with`], interfaces by the names written.
    pub fn words(&self) -> String {
        self.words_with(|d| d.name().to_string())
    }

    /// Whether the rule selects a lookup's flow from `src` (unspecified: a lookup made
    /// before a source is chosen, which only rules for any source select, as in the
    /// kernel).
    fn selects(&self, src: IpAddr, q: &RouteQuery) -> bool {
        let f = &self.select;
        let in_range =
            |r: Option<(u16, u16)>, port: u16| r.is_none_or(|(a, b)| (a..=b).contains(&port));
        let matched = self.from.is_none_or(|p| within(src, p))
            && self.to.is_none_or(|p| within(q.dst, p))
            && f.tos.is_none_or(|t| t == tos_key(self.ipv6, q.tos))
            && f.fwmark.is_none_or(|(v, m)| (q.mark ^ v) & m == 0)
            && f.iif.is_none_or(|d| d.is(q.iif))
            && f.oif.is_none()
            && f.ipproto.is_none_or(|p| p == q.proto)
            && in_range(f.sport, q.sport)
            && in_range(f.dport, q.dport);
        matched != self.invert
    }
}

/// What an address is to the appliance, found with one lookup: a VIP (its own or within a
/// marked prefix), managed by VRRP (and held here or not), a full-NAT/SNAT local end, a VIP
/// whose unserved traffic is dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrClass(u16);

impl AddrClass {
    const VIP: u16 = 1;
    const MARKED: u16 = 2;
    const FLOATING: u16 = 4;
    const HELD: u16 = 8;
    const LOCAL_END: u16 = 16;
    const UNSERVED_DROP: u16 = 32;
    /// An address of one of the appliance's ports.
    const OWN: u16 = 64;
    /// A VIP some of whose ports are a member's outgoing range ([`MemberPorts`]).
    const MEMBER_PORTS: u16 = 128;
    /// Held here by an instance without accept mode (keepalived's `no_accept`, the default
    /// of its strict mode): packets to it and from it are refused, but neighbour discovery.
    const NO_ACCEPT: u16 = 256;

    #[inline]
    pub fn is_vip(self) -> bool {
        self.0 & (Self::VIP | Self::MARKED) != 0
    }

    /// A VIP by its own address, not only by a marked prefix.
    #[inline]
    pub fn is_exact_vip(self) -> bool {
        self.0 & Self::VIP != 0
    }

    /// Whether VRRP manages the address (Some) and this box holds it (true).
    #[inline]
    pub fn floating_state(self) -> Option<bool> {
        (self.0 & Self::FLOATING != 0).then_some(self.0 & Self::HELD != 0)
    }

    /// Managed by VRRP and not held here now.
    #[inline]
    pub fn is_standby(self) -> bool {
        self.0 & (Self::FLOATING | Self::HELD) == Self::FLOATING
    }

    /// Held here without accept mode: what is sent to it is refused.
    #[inline]
    pub fn refuses(self) -> bool {
        self.0 & Self::NO_ACCEPT != 0
    }

    /// Standby, or held without accept mode: nothing sent to it is balanced here.
    #[inline]
    pub fn turned_away(self) -> bool {
        self.0 & Self::FLOATING != 0 && self.0 & (Self::HELD | Self::NO_ACCEPT) != Self::HELD
    }

    #[inline]
    pub fn is_local_end(self) -> bool {
        self.0 & Self::LOCAL_END != 0
    }

    /// Whether [`Snapshot::member_for`] can find anything for this address.
    #[inline]
    pub fn has_member_ports(self) -> bool {
        self.0 & Self::MEMBER_PORTS != 0
    }

    #[inline]
    pub fn drops_unserved(self) -> bool {
        self.0 & Self::UNSERVED_DROP != 0
    }

    /// The appliance's own: a port's address, or a floating one held here.
    #[inline]
    pub fn is_local(self) -> bool {
        self.0 & Self::OWN != 0 || self.floating_state() == Some(true)
    }
}

/// An address VRRP manages: whether this box holds it now (MASTER) and, if so, whether it
/// takes traffic for it (accept mode: always for the address owner, priority 255).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Floating {
    pub addr: IpAddr,
    pub held: bool,
    pub accept: bool,
    /// keepalived's `use_vmac`: the port on which, while held, it is answered by this MAC
    /// (the virtual router's) instead of the port's.
    pub vmac: Option<(u16, [u8; 6])>,
}

impl Floating {
    /// Held here, traffic accepted.
    pub fn held(addr: IpAddr) -> Floating {
        Floating {
            addr,
            held: true,
            accept: true,
            vmac: None,
        }
    }

    /// Held by the peer.
    pub fn standby(addr: IpAddr) -> Floating {
        Floating {
            addr,
            held: false,
            accept: true,
            vmac: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub services: Vec<Service>,
    by_key: ProbeMap<(u128, u32), usize>,
    /// Every address that is something to the appliance, by its 16-byte form (IPv4
    /// mapped: hashing a u128 is cheaper than an IpAddr), with [`AddrClass`] bits: VIPs;
    /// addresses VRRP manages and whether this box holds them (MASTER) now (a held one that
    /// is no VIP is the appliance's own, a floating gateway; one not held is answered and
    /// forwarded by the peer, never here); full-NAT and SNAT local ends (replies to them
    /// are looked up by the reply-side key first); VIPs whose traffic matching no service
    /// is dropped (the others hand it to the host's stack, as LVS does with a VIP it owns:
    /// `ssh VIP`, replies to the director); the ports' own addresses. Every packet asks,
    /// once per address.
    classes: ProbeMap<u128, u16>,
    /// The ports; their addresses are classed when the snapshot is made (a change of
    /// address makes a new snapshot).
    pub ports: Vec<PortInfo>,
    /// By port: its first own IPv4 and IPv6 address (tunnel and ICMP sources, full NAT's
    /// default local ends), found when the snapshot is made.
    port_sources: Vec<[Option<IpAddr>; 2]>,
    /// Longest prefix first, of every table.
    pub routes: Vec<Route>,
    /// Policy rules by preference, the kernel's own (main, default) included; empty when
    /// there are none but those: then the main table alone is looked in.
    rules: Vec<Rule>,
    pub neighbours: HashMap<IpAddr, [u8; 6]>,
    /// Connection timeouts (`ipvsadm --set`).
    pub timeouts: Timeouts,
    /// The next hops the configuration needs: real servers (not on the appliance) and
    /// gateways. Their neighbour entries are learned whenever they speak, and kept.
    next_hops: ProbeMap<u128, ()>,
    /// By real server id: the server is the appliance itself (IPVS's LOCALNODE): a port's
    /// address, one VRRP holds here, or loopback. Kept with the addresses it depends on, so
    /// a new connection asks one flag instead of an address lookup.
    local_servers: Vec<bool>,
    /// By service index: whether the appliance itself is among its servers (the two-box
    /// set-up's standby VIP, [`Snapshot::served_here`]).
    services_served_here: Vec<bool>,
    /// Members' outgoing port ranges on VIPs.
    member_ports: Vec<MemberPorts>,
    /// Source NAT for routed traffic, in order.
    pub snat: Vec<SnatRule>,
    /// Firewall-mark rules in order, each with the index of the service it selects; the
    /// last that matches decides (iptables' MARK target does not stop the chain).
    marks: Vec<(MarkRule, usize)>,
    /// Destination prefixes of mark rules wider than one address: their addresses are VIPs.
    mark_prefixes: Vec<(IpAddr, u8)>,
    /// Every firewall-mark rule in order, services or not: the marks policy rules see.
    route_marks: Vec<MarkRule>,
    /// Whether a policy rule selects by mark (a routed packet's mark is then found).
    rules_by_mark: bool,
    /// Whether traffic for neither a VIP nor the appliance is routed between the ports
    /// (Linux's ip_forward), with TTL and ICMP as a router; else it is dropped.
    pub ip_forward: bool,
    /// IPVS's sloppy_tcp: a TCP segment other than a RST opens a connection for an unknown
    /// flow (an ECMP peer's flow arriving here mid-stream), not only a SYN.
    pub sloppy_tcp: bool,
    /// IPVS's sloppy_sctp: an SCTP packet whose first chunk is any but an ABORT opens an
    /// association for an unknown flow, not only an INIT.
    pub sloppy_sctp: bool,
    /// IPVS's expire_nodest_conn: a packet of a connection whose server was deleted ends
    /// the connection and is scheduled anew (else it is dropped).
    pub expire_nodest_conn: bool,
    /// IPVS's expire_quiescent_template: a persistence template whose server has weight 0
    /// is no longer followed (its clients are scheduled anew).
    pub expire_quiescent_template: bool,
    /// IPVS's pmtu_disc (default on): off, an IPv4 datagram with DF for a tunnel server is
    /// wrapped in an outer header without DF and fragmented where it is too big, instead
    /// of answered with "fragmentation needed".
    pub pmtu_disc: bool,
    /// IPVS's conn_reuse_mode: 0, a new connection on a finished one's ports (a SYN on
    /// TIME_WAIT or CLOSE, an INIT on CLOSED) goes on with it to the same server; else it
    /// is scheduled anew; bit 2 also on a FIN_WAIT connection that sees no replies (DR,
    /// TUN); with expire_nodest_conn also on any connection to a server of weight 0.
    pub conn_reuse_mode: u8,
    /// IPVS's nat_icmp_send: a packet from a NAT real server's address and port (of a
    /// service's protocol, any for a firewall-mark service) that belongs to no connection
    /// is answered with "port unreachable" (a TCP RST or SCTP ABORT excepted) instead of
    /// routed, so the server learns its connection is gone.
    pub nat_icmp_send: bool,
    /// IPVS's schedule_icmp: an ICMP error about a reply of a flow no connection holds
    /// (behind ECMP, one another node balanced) schedules the client's flow it quotes, so
    /// it reaches the server the flow goes to.
    pub schedule_icmp: bool,
    /// IPVS's cache_bypass: a firewall-mark service's new connection with no server
    /// available goes on to its own destination (not a VIP or the appliance's address).
    pub cache_bypass: bool,
    /// IPVS's secure_tcp defence on (its sysctl at 2 or 3): TCP follows the secure
    /// transition tables.
    pub secure_tcp: bool,
    /// IPVS's drop_packet: one in this many packets that would open a connection is
    /// dropped (0: off).
    pub drop_rate: u32,
    /// IPVS's drop_entry on: the workers drop entries that cost little to lose.
    pub drop_entry: bool,
    /// IPVS's lblc_expiration and lblcr_expiration.
    pub cache_expiration: crate::sched::CacheExpiration,
    /// IPVS's sync_persist_mode: the connections of persistent services are not synced,
    /// their templates are (a backup with sloppy TCP follows them after a failover).
    pub sync_persist_mode: bool,
    /// IPVS's sync_refresh_period (seconds, 0: unset): a master sends a connection again
    /// once this long has passed since it last did, or half its timeout (counted as 10 s
    /// at least) if that is sooner; unset, once half its timeout has passed.
    pub sync_refresh_period: u32,
    /// IPVS's backup_only in effect (set, and a backup sync daemon runs): traffic for a
    /// VIP is not balanced, connections synced or not, but goes where a VIP's traffic no
    /// service takes goes (the host, or dropped with `unserved = "drop"`); members'
    /// ranges still work.
    pub director_paused: bool,
    /// The NAT real servers' (address, port), each with the protocols of its services
    /// ([`nat_protocol_bit`]; every bit for a firewall-mark service's: any protocol).
    nat_servers: hashbrown::HashMap<(Addr16, u16), u8>,
    /// By real server id: [`SERVER_LIVE`] for a server of some service (ids of deleted
    /// servers wait for their connections to end before they are given out again),
    /// [`SERVER_QUIESCED`] with weight 0 too.
    live_servers: Vec<u8>,
    /// How many servers the configuration has deleted so far: a worker that sees it grow
    /// with `expire_nodest_conn` set ends their connections in the background.
    pub servers_removed: u64,
    /// Some floating address is held without accept mode.
    refusing: bool,
    /// Held addresses answered by a virtual router MAC (`use_vmac`), with its port.
    answer_macs: HashMap<IpAddr, (u16, [u8; 6])>,
    /// Those MACs, by port: frames to them are the port's own.
    vmacs: Vec<(u16, [u8; 6])>,
}

impl Snapshot {
    pub fn new(
        services: Vec<Service>,
        ports: Vec<PortInfo>,
        mut routes: Vec<Route>,
        neighbours: HashMap<IpAddr, [u8; 6]>,
    ) -> Snapshot {
        // A firewall-mark service without single-address rules has an anchor entry at the
        // unspecified address: selected by its rules only, never by address.
        // A service at an IPv4-mapped IPv6 VIP takes no packets either (none carries such
        // an address), as in the kernel: its word would be the IPv4 VIP's.
        let by_key = services
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.vaddr.is_unspecified())
            .filter_map(|(i, s)| Some((service_key(s.proto, packet_word(s.vaddr)?, s.vport), i)))
            .collect();
        let mut classes: ProbeMap<u128, u16> = services
            .iter()
            .filter(|s| !s.vaddr.is_unspecified())
            .filter_map(|s| Some((packet_word(s.vaddr)?, AddrClass::VIP)))
            .collect();
        let leaders: Vec<usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| match s.group {
                Some(g) => services
                    .iter()
                    .position(|o| o.group == Some(g))
                    .unwrap_or(i),
                None => i,
            })
            .collect();
        let mut services = services;
        for (s, l) in services.iter_mut().zip(leaders) {
            s.leader = l;
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.len));
        // Full NAT's local ends: its addresses, or the ports' own when it names none.
        for f in services.iter().filter_map(|s| s.full_nat.as_ref()) {
            let own = ports.iter().flat_map(|p| p.addrs.iter());
            let addrs: Vec<IpAddr> = if f.locals().is_empty() {
                own.copied().collect()
            } else {
                f.locals().to_vec()
            };
            for w in addrs.into_iter().filter_map(packet_word) {
                classes.update(w, AddrClass::LOCAL_END, |c| *c |= AddrClass::LOCAL_END);
            }
        }
        // The ports' own addresses (a bit beside the others: no scan of the ports a packet).
        for w in ports
            .iter()
            .flat_map(|p| p.addrs.iter())
            .filter_map(|a| packet_word(*a))
        {
            classes.update(w, AddrClass::OWN, |c| *c |= AddrClass::OWN);
        }
        let next_hops = services
            .iter()
            .flat_map(|s| s.servers.iter().map(|r| r.addr))
            .chain(routes.iter().filter_map(|r| r.gateway))
            .map(|a| (addr_word(a), ()))
            .collect();
        let port_sources = ports
            .iter()
            .map(|p| {
                let first = |v4: bool| p.addrs.iter().copied().find(|a| a.is_ipv4() == v4);
                [first(true), first(false)]
            })
            .collect();
        let mut snap = Snapshot {
            next_hops,
            port_sources,
            local_servers: Vec::new(),
            services_served_here: Vec::new(),
            services,
            by_key,
            classes,
            ports,
            routes,
            rules: Vec::new(),
            neighbours,
            timeouts: Timeouts::default(),
            member_ports: Vec::new(),
            snat: Vec::new(),
            marks: Vec::new(),
            mark_prefixes: Vec::new(),
            route_marks: Vec::new(),
            rules_by_mark: false,
            refusing: false,
            answer_macs: HashMap::new(),
            vmacs: Vec::new(),
            ip_forward: false,
            sloppy_tcp: false,
            sloppy_sctp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            pmtu_disc: true,
            conn_reuse_mode: 1,
            nat_icmp_send: false,
            schedule_icmp: false,
            cache_bypass: false,
            secure_tcp: false,
            drop_rate: 0,
            drop_entry: false,
            cache_expiration: crate::sched::CacheExpiration::default(),
            sync_persist_mode: false,
            sync_refresh_period: 0,
            director_paused: false,
            nat_servers: hashbrown::HashMap::new(),
            live_servers: Vec::new(),
            servers_removed: 0,
        };
        snap.note_local_servers();
        for svc in &snap.services {
            let protocols = if svc.group.is_some() {
                u8::MAX
            } else {
                nat_protocol_bit(svc.proto)
            };
            for r in svc
                .servers
                .iter()
                .filter(|r| r.method == ForwardMethod::Nat)
            {
                *snap
                    .nat_servers
                    .entry((addr16(r.addr), r.port))
                    .or_default() |= protocols;
            }
        }
        for r in snap.services.iter().flat_map(|s| s.servers.iter()) {
            if snap.live_servers.len() <= r.id {
                snap.live_servers.resize(r.id + 1, 0);
            }
            if let Some(live) = snap.live_servers.get_mut(r.id) {
                *live = if r.weight == 0 {
                    SERVER_LIVE | SERVER_QUIESCED
                } else {
                    SERVER_LIVE
                };
            }
        }
        snap
    }

    /// Whether `addr`:`port` is a NAT real server of a service of `proto` (or of a
    /// firewall-mark service): IPVS's ip_vs_has_real_service.
    pub(super) fn is_nat_server(&self, proto: u8, addr: &Addr16, port: u16) -> bool {
        !self.nat_servers.is_empty()
            && self
                .nat_servers
                .get(&(*addr, port))
                .is_some_and(|&protocols| protocols & nat_protocol_bit(proto) != 0)
    }

    /// Whether real server `id` is a server of some service (not deleted).
    #[inline]
    pub fn has_server(&self, id: u32) -> bool {
        self.server_bits(id) & SERVER_LIVE != 0
    }

    /// Whether real server `id` is a server with weight 0.
    #[inline]
    pub fn server_quiesced(&self, id: u32) -> bool {
        self.server_bits(id) & SERVER_QUIESCED != 0
    }

    fn server_bits(&self, id: u32) -> u8 {
        self.live_servers.get(id as usize).copied().unwrap_or(0)
    }

    /// Recomputes [`Snapshot::is_local_server`] after the addresses it depends on changed.
    fn note_local_servers(&mut self) {
        let mut local = Vec::new();
        for s in self.services.iter().flat_map(|s| s.servers.iter()) {
            if self.is_local(s.addr) || s.addr.is_loopback() {
                if local.len() <= s.id {
                    local.resize(s.id + 1, false);
                }
                if let Some(l) = local.get_mut(s.id) {
                    *l = true;
                }
            }
        }
        self.local_servers = local;
        self.services_served_here = self
            .services
            .iter()
            .map(|svc| svc.servers.iter().any(|s| self.is_local_server(s)))
            .collect();
    }

    /// Whether the service a client's packet is for has the appliance itself among its
    /// servers (whose host then holds the VIP).
    pub(super) fn served_here(&self, flow: &super::Flow) -> bool {
        self.service_for_mapped(flow.proto, &flow.src, &flow.dst, flow.dport)
            .is_some_and(|e| self.services_served_here.get(e.leader) == Some(&true))
    }

    /// Whether real server `s` is the appliance itself (its connections are LOCALNODE).
    #[inline]
    pub fn is_local_server(&self, s: &RealServer) -> bool {
        self.local_servers.get(s.id).copied().unwrap_or(false)
    }

    /// Sets the firewall-mark rules with the services they select (indexes into
    /// `services`); their destinations become VIPs.
    pub fn set_marks(&mut self, rules: Vec<(MarkRule, usize)>) {
        self.mark_prefixes.clear();
        for (r, _) in &rules {
            let full = if r.dst.0.is_ipv4() { 32 } else { 128 };
            if r.dst.1 == full {
                self.mark_as(r.dst.0, AddrClass::VIP);
            } else if !self.mark_prefixes.contains(&r.dst) {
                self.mark_prefixes.push(r.dst);
            }
        }
        self.marks = rules;
    }

    /// Sets the firewall-mark rules that mark packets for policy rules: all of them, in
    /// order, whether their mark has a service or not (iptables' MARK rules in mangle).
    pub fn set_route_marks(&mut self, rules: Vec<MarkRule>) {
        self.route_marks = rules;
    }

    /// A packet's firewall mark as policy rules see it: the last matching rule's, 0 when
    /// none matches or no rule selects by mark (then it makes no difference).
    #[inline]
    pub fn route_mark(&self, proto: u8, src: &Addr16, dst: &Addr16, dport: u16) -> u32 {
        if !self.rules_by_mark {
            return 0;
        }
        self.route_mark_of(proto, ip_of(src), ip_of(dst), dport)
    }

    #[inline(never)]
    fn route_mark_of(&self, proto: u8, src: IpAddr, dst: IpAddr, dport: u16) -> u32 {
        self.route_marks
            .iter()
            .rev()
            .find(|r| r.matches(proto, src, dst, dport))
            .map_or(0, |r| r.mark)
    }

    /// The firewall-mark rules.
    pub fn mark_rules(&self) -> impl Iterator<Item = &MarkRule> {
        self.marks.iter().map(|(r, _)| r)
    }

    /// The service a packet belongs to: its firewall mark's, else by VIP and port.
    #[inline]
    pub fn service_for_packet(
        &self,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        dport: u16,
    ) -> Option<&Service> {
        self.service_for_mapped(proto, &addr16(src), &addr16(dst), dport)
    }

    /// [`Snapshot::service_for_packet`] for addresses as a flow carries them.
    #[inline]
    pub fn service_for_mapped(
        &self,
        proto: u8,
        src: &Addr16,
        dst: &Addr16,
        dport: u16,
    ) -> Option<&Service> {
        if self.marks.is_empty() {
            return self.service_for_word(proto, u128::from_be_bytes(*dst), dport);
        }
        self.service_for_marked(proto, ip_of(src), ip_of(dst), dport)
    }

    /// [`Snapshot::service_for_packet`] with firewall-mark rules to try first (the last
    /// matching rule wins, as the last iptables rule to set the mark).
    #[inline(never)]
    fn service_for_marked(
        &self,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        dport: u16,
    ) -> Option<&Service> {
        match self
            .marks
            .iter()
            .rev()
            .find(|(r, _)| r.matches(proto, src, dst, dport))
        {
            Some((_, i)) => self.services.get(*i),
            None => self.service_for(proto, dst, dport),
        }
    }

    /// Sets the SNAT rules; their addresses (a masquerading rule's: the ports' own) become
    /// local ends.
    pub fn set_snat(&mut self, rules: Vec<SnatRule>) {
        let masquerades = rules.iter().any(|r| r.to_source.is_none());
        let own = self
            .ports
            .iter()
            .flat_map(|p| p.addrs.iter().copied())
            .filter(|_| masquerades);
        let ends: Vec<IpAddr> = rules
            .iter()
            .filter_map(|r| r.to_source)
            .chain(own)
            .collect();
        for a in ends {
            self.mark_as(a, AddrClass::LOCAL_END);
        }
        self.snat = rules;
    }

    /// Gives `a` the class bits `bits` (besides those it has).
    fn mark_as(&mut self, a: IpAddr, bits: u16) {
        if let Some(w) = packet_word(a) {
            self.classes.update(w, bits, |c| *c |= bits);
        }
    }

    /// Takes the class bits `bits` from every address.
    fn unmark_all(&mut self, bits: u16) {
        self.classes.retain(|_, c| {
            *c &= !bits;
            *c != 0
        });
    }

    /// What `a` is to the appliance (one lookup, and the marked prefixes if any).
    #[inline]
    pub fn class_of(&self, a: IpAddr) -> AddrClass {
        self.class_of_mapped(&addr16(a))
    }

    /// [`Snapshot::class_of`] for an address as a flow carries it.
    #[inline]
    pub fn class_of_mapped(&self, a: &Addr16) -> AddrClass {
        let mut c = self
            .classes
            .get(&u128::from_be_bytes(*a))
            .copied()
            .unwrap_or(0);
        if !self.mark_prefixes.is_empty() && self.within_marked_prefix(ip_of(a)) {
            c |= AddrClass::MARKED;
        }
        AddrClass(c)
    }

    #[cold]
    fn within_marked_prefix(&self, a: IpAddr) -> bool {
        self.mark_prefixes.iter().any(|p| within(a, *p))
    }

    /// An address full NAT or SNAT uses as a source (replies to it may be translated).
    #[inline]
    pub fn is_local_end(&self, a: IpAddr) -> bool {
        self.class_of(a).is_local_end()
    }

    /// Sets the members' outgoing port ranges; their VIPs become VIPs of the snapshot.
    pub fn set_member_ports(&mut self, ranges: Vec<MemberPorts>) {
        for r in &ranges {
            self.mark_as(r.vip, AddrClass::VIP | AddrClass::MEMBER_PORTS);
        }
        self.member_ports = ranges;
    }

    /// The member whose outgoing range holds `vip:port`.
    #[inline]
    pub fn member_for(&self, proto: u8, vip: IpAddr, port: u16) -> Option<&MemberPorts> {
        self.member_ports
            .iter()
            .find(|r| r.proto == proto && r.vip == vip && (r.first..=r.last).contains(&port))
    }

    /// [`Snapshot::member_for`] for an address as a flow carries it, with its class
    /// (already looked up): only a VIP with members' ranges is searched.
    #[inline(always)]
    pub fn member_for_mapped(
        &self,
        class: AddrClass,
        proto: u8,
        vip: &Addr16,
        port: u16,
    ) -> Option<&MemberPorts> {
        if !class.has_member_ports() {
            return None;
        }
        self.member_for(proto, ip_of(vip), port)
    }

    /// [`Snapshot::member_range_of`] for an address as a flow carries it.
    #[inline]
    pub fn member_range_of_mapped(
        &self,
        proto: u8,
        member: &Addr16,
        port: u16,
    ) -> Option<&MemberPorts> {
        if self.member_ports.is_empty() {
            return None;
        }
        self.member_range_of(proto, ip_of(member), port)
    }

    /// The NAT member range a packet from `member:port` leaves by.
    #[inline]
    pub fn member_range_of(&self, proto: u8, member: IpAddr, port: u16) -> Option<&MemberPorts> {
        self.member_ports.iter().find(|r| {
            r.nat && r.proto == proto && r.member == member && (r.first..=r.last).contains(&port)
        })
    }

    /// Sets the VIPs whose traffic for no service is dropped instead of going to the host.
    pub fn set_unserved_drop(&mut self, vips: impl IntoIterator<Item = IpAddr>) {
        self.unmark_all(AddrClass::UNSERVED_DROP);
        for a in vips {
            self.mark_as(a, AddrClass::UNSERVED_DROP);
        }
    }

    /// Whether traffic for `vip` that matches no service is dropped (else it is the host's).
    #[inline]
    pub fn drops_unserved(&self, vip: IpAddr) -> bool {
        self.class_of(vip).drops_unserved()
    }

    /// The service for a destination: exact port first, then the all-ports service.
    #[inline]
    pub fn service_for(&self, proto: u8, vaddr: IpAddr, vport: u16) -> Option<&Service> {
        self.service_for_word(proto, addr_word(vaddr), vport)
    }

    /// [`Snapshot::service_for`] with the address as one word ([`addr_word`]).
    #[inline]
    fn service_for_word(&self, proto: u8, vaddr: u128, vport: u16) -> Option<&Service> {
        self.by_key
            .get(&service_key(proto, vaddr, vport))
            .or_else(|| self.by_key.get(&service_key(proto, vaddr, 0)))
            .and_then(|&i| self.services.get(i))
    }

    /// The service whose server list and scheduler a service uses: the first of its group,
    /// so a group behaves as one IPVS firewall-mark service.
    pub fn scheduling_service<'a>(&'a self, svc: &'a Service) -> &'a Service {
        self.services.get(svc.leader).unwrap_or(svc)
    }

    #[inline]
    /// A real server or a gateway of the configuration.
    pub fn is_next_hop(&self, a: IpAddr) -> bool {
        self.next_hops.contains_key(&addr_word(a))
    }

    /// A VIP by its own address (a service's, a single-address mark's, a member range's),
    /// not only by a marked prefix.
    #[inline]
    pub fn is_exact_vip(&self, a: IpAddr) -> bool {
        self.class_of(a).is_exact_vip()
    }

    #[inline]
    pub fn is_vip(&self, a: IpAddr) -> bool {
        self.class_of(a).is_vip()
    }

    /// The appliance's own address (a port's, or a floating one held here); for an
    /// address whose class is known, [`AddrClass::is_local`].
    #[inline]
    pub fn is_local(&self, a: IpAddr) -> bool {
        self.class_of(a).is_local()
    }

    /// Sets the VRRP-managed addresses, which of them this box holds and which of those
    /// it refuses traffic for.
    pub fn set_floating(&mut self, addrs: impl IntoIterator<Item = Floating>) {
        self.unmark_all(AddrClass::FLOATING | AddrClass::HELD | AddrClass::NO_ACCEPT);
        self.refusing = false;
        self.answer_macs.clear();
        self.vmacs.clear();
        for f in addrs {
            let mut bits = AddrClass::FLOATING;
            if f.held {
                bits |= AddrClass::HELD;
                if let Some(v) = f.vmac {
                    self.answer_macs.insert(f.addr, v);
                    if !self.vmacs.contains(&v) {
                        self.vmacs.push(v);
                    }
                }
                if !f.accept {
                    bits |= AddrClass::NO_ACCEPT;
                    self.refusing = true;
                }
            }
            self.mark_as(f.addr, bits);
        }
        self.note_local_servers();
    }

    /// The MAC that answers for `a` on `port`: a virtual router MAC (`use_vmac`) while
    /// held, else the port's.
    #[inline]
    pub fn answer_mac(&self, port: u16, a: IpAddr) -> Option<[u8; 6]> {
        match self.answer_macs.get(&a) {
            Some(&(p, mac)) if p == port => Some(mac),
            _ => self.ports.get(usize::from(port)).map(|p| p.mac),
        }
    }

    /// Whether `mac` is a virtual router MAC held on `port`.
    #[inline]
    pub fn is_vmac(&self, port: u16, mac: &[u8]) -> bool {
        self.vmacs.iter().any(|(p, m)| *p == port && m[..] == *mac)
    }

    /// Whether some virtual router MAC is held.
    #[inline]
    pub fn has_vmacs(&self) -> bool {
        !self.vmacs.is_empty()
    }

    /// Whether some address is held without accept mode (the host's frames are then
    /// checked for its source).
    #[inline]
    pub fn refusing(&self) -> bool {
        self.refusing
    }

    /// Whether VRRP manages `a` (Some) and this box holds it (true).
    #[inline]
    pub fn floating_state(&self, a: IpAddr) -> Option<bool> {
        self.class_of(a).floating_state()
    }

    /// True for an address VRRP manages that this box does not hold now.
    #[inline]
    pub fn is_standby(&self, a: IpAddr) -> bool {
        self.class_of(a).is_standby()
    }

    /// Out port and next-hop address for a destination, before a source is chosen.
    pub fn route(&self, dst: IpAddr) -> Option<(u16, IpAddr)> {
        self.route_from(None, dst)
    }

    /// Out port and next-hop address for the appliance's own packet from `src` to `dst`
    /// (an output lookup by addresses alone; see [`Snapshot::route_for`]).
    pub fn route_from(&self, src: Option<IpAddr>, dst: IpAddr) -> Option<(u16, IpAddr)> {
        self.route_for(&RouteQuery::output(src, dst))
    }

    /// Out port and next-hop address for a lookup's flow: without policy rules the main
    /// table's longest match; with them, the tables the first selecting rules name, in
    /// preference order, as the kernel's fib rules.
    pub fn route_for(&self, q: &RouteQuery) -> Option<(u16, IpAddr)> {
        let dst = q.dst;
        if self.rules.is_empty() {
            return self.lookup(MAIN_TABLE, dst);
        }
        let src = q.src.unwrap_or(if dst.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u16; 8])
        });
        let mut i = 0;
        while let Some(rule) = self.rules.get(i) {
            i += 1;
            if rule.ipv6 != dst.is_ipv6() || !rule.selects(src, q) {
                continue;
            }
            match rule.action {
                RuleAction::Table(t) => {
                    if let Some(hop) = self.lookup(t, dst) {
                        return Some(hop);
                    }
                }
                // A goto's target is past its own preference (checked when read), so this
                // only moves on.
                RuleAction::Goto(target) => {
                    i = i.max(self.rules.partition_point(|r| r.priority < target))
                }
                RuleAction::Nop => {}
                RuleAction::Blackhole | RuleAction::Unreachable | RuleAction::Prohibit => {
                    return None
                }
            }
        }
        None
    }

    /// Whether neighbour `ip` lives on `port`'s segment: in some table the longest match
    /// for it leads out of `port` on-link, or a route there names it as its gateway. ARP
    /// and neighbour discovery heard on another port teach nothing about it (a spoofed
    /// reply on the clients' segment cannot take a server's or a gateway's traffic).
    pub fn neighbour_on(&self, port: u16, ip: IpAddr) -> bool {
        self.routes.iter().any(|r| {
            r.port == port
                && (r.gateway == Some(ip) || self.lookup(r.table, ip) == Some((port, ip)))
        })
    }

    /// The longest match for `dst` in one table.
    fn lookup(&self, table: u32, dst: IpAddr) -> Option<(u16, IpAddr)> {
        self.routes
            .iter()
            .find(|r| r.table == table && r.contains(dst))
            .map(|r| (r.port, r.gateway.unwrap_or(dst)))
    }

    /// Sets the policy rules (besides the kernel's own, which are always there); none:
    /// the main table alone routes.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        self.rules.clear();
        self.rules_by_mark = rules.iter().any(|r| r.select.fwmark.is_some());
        if rules.is_empty() {
            return;
        }
        // At one preference the kernel's rules come first, then the others in order.
        self.rules.extend(Rule::kernel_defaults());
        self.rules.extend(rules);
        self.rules.sort_by_key(|r| r.priority);
    }

    /// The policy rules by preference, the kernel's own among them (none: main alone).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether policy rules are set: a route then depends on the source too.
    #[inline]
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The port's own address of the family of `like`.
    #[inline]
    pub fn local_addr(&self, port: u16, like: IpAddr) -> Option<IpAddr> {
        let sources = self.port_sources.get(usize::from(port))?;
        sources.get(usize::from(like.is_ipv6())).copied().flatten()
    }
}

/// A service's lookup key: its address as one word, protocol and port in another (hashed as
/// two integers instead of an address enum and a tuple).
#[inline]
/// An address as the packet tables key it; None for an IPv4-mapped IPv6 address, which no
/// packet carries (parsing drops such headers as martian) and whose word would be the
/// IPv4 address's: a VIP, local end or own address configured so takes nothing.
fn packet_word(a: IpAddr) -> Option<u128> {
    match a {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => None,
        a => Some(addr_word(a)),
    }
}

fn service_key(proto: u8, vaddr: u128, vport: u16) -> (u128, u32) {
    (vaddr, u32::from(proto) << 16 | u32::from(vport))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A neighbour's segment: the port of its longest on-link match in any table, or the
    /// port of a route naming it as gateway; never another.
    #[test]
    fn a_neighbour_lives_where_its_routes_lead() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let route = |p: &str, len, gw: Option<&str>, port, table| Route {
            prefix: ip(p),
            len,
            gateway: gw.map(ip),
            port,
            table,
        };
        let snap = Snapshot::new(
            Vec::new(),
            Vec::new(),
            vec![
                route("192.168.1.0", 24, None, 0, MAIN_TABLE),
                route("10.0.0.0", 24, None, 1, MAIN_TABLE),
                // A host route elsewhere wins over the subnet's (longest match).
                route("10.0.0.77", 32, Some("10.9.9.9"), 2, MAIN_TABLE),
                route("0.0.0.0", 0, Some("192.168.1.254"), 0, MAIN_TABLE),
                route("0.0.0.0", 0, Some("fe80::1"), 3, 100),
                route("172.16.0.0", 16, None, 4, 100),
                route("fd00::", 64, None, 1, MAIN_TABLE),
            ],
            HashMap::new(),
        );
        for (port, addr, on) in [
            (1, "10.0.0.9", true),
            (0, "10.0.0.9", false),
            (0, "192.168.1.5", true),
            (0, "192.168.1.254", true),
            (1, "192.168.1.254", false),
            (1, "10.0.0.77", false),
            (2, "10.9.9.9", true),
            (3, "fe80::1", true),
            (4, "172.16.3.3", true),
            (0, "172.16.3.3", false),
            (1, "fd00::2", true),
            (0, "fd00::2", false),
            // Behind a gateway, never a neighbour.
            (0, "198.51.100.7", false),
        ] {
            assert_eq!(
                snap.neighbour_on(port, ip(addr)),
                on,
                "{addr} on port {port}"
            );
        }
    }

    /// The kernel's fib rules: by preference, a rule's table when it has a route, else on;
    /// main then default after the others; a rule of the other family never applies; no
    /// rules at all: main alone (another table unused).
    #[test]
    fn rules_pick_tables_as_the_kernel_does() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let route = |p: &str, len, gw: &str, port, table| Route {
            prefix: ip(p),
            len,
            gateway: Some(ip(gw)),
            port,
            table,
        };
        let rule = |priority, ipv6, from: Option<(&str, u8)>, action| Rule {
            priority,
            ipv6,
            from: from.map(|(a, l)| (ip(a), l)),
            to: None,
            select: RuleSelectors::default(),
            invert: false,
            action,
        };
        let mut snap = Snapshot::new(
            Vec::new(),
            Vec::new(),
            vec![
                route("10.0.0.0", 8, "10.255.0.1", 1, MAIN_TABLE),
                route("0.0.0.0", 0, "192.0.2.1", 0, 100),
                route("0.0.0.0", 0, "192.0.2.2", 2, DEFAULT_TABLE),
                route("::", 0, "fe80::1", 3, 100),
            ],
            HashMap::new(),
        );
        let from = |a: &str| Some(ip(a));
        // No rules: main alone; table 100 and default unused.
        assert_eq!(snap.route(ip("198.51.100.9")), None);
        assert_eq!(snap.route(ip("10.1.2.3")), Some((1, ip("10.255.0.1"))));
        snap.set_rules(vec![rule(
            100,
            false,
            Some(("172.16.0.0", 12)),
            RuleAction::Table(100),
        )]);
        // The kernel's rules now: main, then default.
        assert_eq!(snap.route(ip("198.51.100.9")), Some((2, ip("192.0.2.2"))));
        assert_eq!(
            snap.route_from(from("172.16.5.5"), ip("198.51.100.9")),
            Some((0, ip("192.0.2.1")))
        );
        // An IPv4 rule does not route IPv6 (and table 100's IPv6 default is not reached).
        assert_eq!(snap.route_from(from("::1"), ip("2001:db8::1")), None);
        snap.set_rules(vec![rule(5, true, None, RuleAction::Table(100))]);
        assert_eq!(snap.route(ip("2001:db8::1")), Some((3, ip("fe80::1"))));
        // A table without the route: on to the next rule.
        snap.set_rules(vec![rule(5, false, None, RuleAction::Table(7))]);
        assert_eq!(snap.route(ip("10.1.2.3")), Some((1, ip("10.255.0.1"))));
        // Nop, then a goto over a refusal to the rule it names.
        snap.set_rules(vec![
            rule(1, false, None, RuleAction::Nop),
            rule(2, false, None, RuleAction::Goto(4)),
            rule(3, false, None, RuleAction::Prohibit),
            rule(4, false, None, RuleAction::Table(100)),
        ]);
        assert_eq!(snap.route(ip("10.1.2.3")), Some((0, ip("192.0.2.1"))));
        snap.set_rules(Vec::new());
        assert!(!snap.has_rules());
        assert_eq!(snap.route(ip("198.51.100.9")), None);
    }

    /// The flow selectors as the kernel's: TOS by its DSCP bits, `iif lo` for the
    /// appliance's own lookups, port ranges inclusive, every selector needed at once.
    #[test]
    fn rule_selectors_match_a_lookup_s_flow() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut snap = Snapshot::new(
            Vec::new(),
            Vec::new(),
            vec![
                Route {
                    prefix: ip("0.0.0.0"),
                    len: 0,
                    gateway: Some(ip("192.0.2.1")),
                    port: 0,
                    table: MAIN_TABLE,
                },
                Route {
                    prefix: ip("0.0.0.0"),
                    len: 0,
                    gateway: Some(ip("192.0.2.2")),
                    port: 1,
                    table: 100,
                },
            ],
            HashMap::new(),
        );
        let rule = |select| Rule {
            priority: 10,
            ipv6: false,
            from: None,
            to: None,
            select,
            invert: false,
            action: RuleAction::Table(100),
        };
        let q = RouteQuery {
            src: Some(ip("10.0.0.2")),
            dst: ip("198.51.100.7"),
            iif: Some(2),
            tos: 0x12,
            proto: 6,
            sport: 40000,
            dport: 443,
            mark: 0x17,
        };
        let table = |snap: &Snapshot, q: &RouteQuery| snap.route_for(q).map(|(port, _)| port);
        let lo = {
            let d = RuleDev::new("lo");
            assert!(
                RuleDev::new("a-name-too-long").is_some()
                    && RuleDev::new("sixteen-bytes-xx").is_none()
            );
            d
        };
        for (select, selected) in [
            // IPv4 compares the TOS bits (0x1c) alone: tos 0x10 selects 0x12, 0x14 does
            // not (checked against the kernel's `ip route get ... tos`).
            (
                RuleSelectors {
                    tos: Some(0x10),
                    ..Default::default()
                },
                true,
            ),
            (
                RuleSelectors {
                    tos: Some(0x14),
                    ..Default::default()
                },
                false,
            ),
            (
                RuleSelectors {
                    dport: Some((443, 443)),
                    sport: Some((32768, 60999)),
                    ..Default::default()
                },
                true,
            ),
            (
                RuleSelectors {
                    dport: Some((80, 442)),
                    ..Default::default()
                },
                false,
            ),
            (
                RuleSelectors {
                    ipproto: Some(17),
                    ..Default::default()
                },
                false,
            ),
            (
                RuleSelectors {
                    iif: lo,
                    ..Default::default()
                },
                false,
            ),
            // The mark agrees under the mask (the kernel's (mark ^ value) & mask == 0).
            (
                RuleSelectors {
                    fwmark: Some((0x17, u32::MAX)),
                    ..Default::default()
                },
                true,
            ),
            (
                RuleSelectors {
                    fwmark: Some((0x07, 0x0f)),
                    ..Default::default()
                },
                true,
            ),
            (
                RuleSelectors {
                    fwmark: Some((0x18, u32::MAX)),
                    ..Default::default()
                },
                false,
            ),
            (
                RuleSelectors {
                    fwmark: Some((0, 0xff)),
                    ..Default::default()
                },
                false,
            ),
        ] {
            snap.set_rules(vec![rule(select)]);
            assert_eq!(
                table(&snap, &q),
                Some(if selected { 1 } else { 0 }),
                "{select:?}"
            );
        }
        // The appliance's own lookup (iif lo): the lo rule's; one by protocol is not.
        snap.set_rules(vec![rule(RuleSelectors {
            iif: lo,
            ..Default::default()
        })]);
        assert_eq!(
            snap.route_from(Some(ip("10.0.0.1")), q.dst),
            Some((1, ip("192.0.2.2")))
        );
        snap.set_rules(vec![rule(RuleSelectors {
            ipproto: Some(6),
            ..Default::default()
        })]);
        assert_eq!(
            snap.route_from(Some(ip("10.0.0.1")), q.dst),
            Some((0, ip("192.0.2.1")))
        );
        // As `ip rule` words them.
        let words = rule(RuleSelectors {
            tos: Some(0x10),
            fwmark: Some((0x10, 0xff)),
            iif: lo,
            ipproto: Some(6),
            dport: Some((80, 90)),
            sport: Some((53, 53)),
            ..Default::default()
        })
        .words();
        assert_eq!(
            words,
            "from all tos 0x10 fwmark 0x10/0xff iif lo ipproto tcp sport 53 dport 80-90 table 100"
        );
    }

    /// A new connection takes its family's local addresses without a scan; each family
    /// keeps the configuration's order (the round robin's).
    #[test]
    fn full_nat_locals_by_family() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let f = FullNat::new(
            ["fd00::1", "10.0.0.1", "fd00::2", "10.0.0.2"].map(ip),
            false,
        );
        assert_eq!(f.locals_of(true), [ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(f.locals_of(false), [ip("fd00::1"), ip("fd00::2")]);
        assert_eq!(f.locals().len(), 4);
        let only6 = FullNat::new([ip("fd00::1")], true);
        assert!(only6.locals_of(true).is_empty());
        assert_eq!(only6.locals_of(false), [ip("fd00::1")]);
        assert!(FullNat::new([], false).locals_of(true).is_empty());
    }

    #[test]
    fn a_ports_own_address_is_its_first_of_the_family() {
        let port = |addrs: &[&str]| PortInfo {
            mac: [2, 0, 0, 0, 0, 1],
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            mtu: 1500,
            ip_checksum_offload: false,
        };
        let ports = vec![
            port(&["10.0.0.1", "fd00::1", "10.0.0.9", "fd00::9"]),
            port(&["fd01::1"]),
            port(&[]),
        ];
        let snap = Snapshot::new(Vec::new(), ports, Vec::new(), HashMap::new());
        let (v4, v6): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        let own = |port, like| snap.local_addr(port, like).map(|a| a.to_string());
        assert_eq!(own(0, v4).as_deref(), Some("10.0.0.1"));
        assert_eq!(own(0, v6).as_deref(), Some("fd00::1"));
        assert_eq!(own(1, v4), None);
        assert_eq!(own(1, v6).as_deref(), Some("fd01::1"));
        assert_eq!((own(2, v4), own(2, v6), own(3, v4)), (None, None, None));
    }
}
