//! What the control side publishes for the workers: services with their real servers and
//! scheduler tables, the appliance's ports and addresses, routes and static neighbours.
//! Immutable once built; workers switch to a new one at a burst boundary.

use crate::conn::Timeouts;
use crate::model::RealServer;
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
    /// Local addresses; none: the address of the port towards the server.
    pub locals: Arc<[IpAddr]>,
    pub proxy_protocol: bool,
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

/// An address as the snapshot's tables key it: 16 bytes (IPv4 mapped) as one u128, cheaper
/// to hash than an IpAddr.
#[inline]
fn addr_key(a: IpAddr) -> u128 {
    u128::from_be_bytes(crate::conn::addr16(a))
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

/// A static route: prefix/len via gateway (None = on-link) out of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpAddr,
    pub len: u8,
    pub gateway: Option<IpAddr>,
    pub port: u16,
}

impl Route {
    fn contains(&self, a: IpAddr) -> bool {
        within(a, (self.prefix, self.len))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub services: Vec<Service>,
    by_key: HashMap<(u8, IpAddr, u16), usize>,
    /// VIPs as 16-byte addresses (IPv4 mapped): hashing a u128 is cheaper than an IpAddr,
    /// and every packet asks.
    vips: HashMap<u128, ()>,
    /// Addresses VRRP manages, and whether this box holds them (MASTER) now. A held one
    /// that is no VIP is the appliance's own (a floating gateway); one not held is answered
    /// and forwarded by the peer, never here.
    floating: HashMap<u128, bool>,
    pub ports: Vec<PortInfo>,
    /// Longest prefix first.
    pub routes: Vec<Route>,
    pub neighbours: HashMap<IpAddr, [u8; 6]>,
    /// Connection timeouts (`ipvsadm --set`).
    pub timeouts: Timeouts,
    /// The next hops the configuration needs: real servers (not on the appliance) and
    /// gateways. Their neighbour entries are learned whenever they speak, and kept.
    next_hops: HashMap<IpAddr, ()>,
    /// VIPs whose traffic matching no service is dropped; the others hand it to the host's
    /// stack, as LVS does with a VIP it owns (`ssh VIP`, replies to the director).
    unserved_drop: HashMap<u128, ()>,
    /// Members' outgoing port ranges on VIPs.
    member_ports: Vec<MemberPorts>,
    /// Addresses full NAT and SNAT give connections as their source: replies to them are
    /// looked up by the reply-side key first.
    local_ends: HashMap<u128, ()>,
    /// Source NAT for routed traffic, in order.
    pub snat: Vec<SnatRule>,
    /// Firewall-mark rules in order, each with the index of the service it selects; the
    /// last that matches decides (iptables' MARK target does not stop the chain).
    marks: Vec<(MarkRule, usize)>,
    /// Destination prefixes of mark rules wider than one address: their addresses are VIPs.
    mark_prefixes: Vec<(IpAddr, u8)>,
    /// Whether traffic for neither a VIP nor the appliance is routed between the ports
    /// (Linux's ip_forward), with TTL and ICMP as a router; else it is dropped.
    pub ip_forward: bool,
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
        let by_key = services
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.vaddr.is_unspecified())
            .map(|(i, s)| ((s.proto, s.vaddr, s.vport), i))
            .collect();
        let vips = services
            .iter()
            .filter(|s| !s.vaddr.is_unspecified())
            .map(|s| (addr_key(s.vaddr), ()))
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
        let mut local_ends: HashMap<u128, ()> = HashMap::new();
        for f in services.iter().filter_map(|s| s.full_nat.as_ref()) {
            let own = ports.iter().flat_map(|p| p.addrs.iter());
            let addrs: Vec<IpAddr> = if f.locals.is_empty() {
                own.copied().collect()
            } else {
                f.locals.to_vec()
            };
            for a in addrs {
                local_ends.insert(addr_key(a), ());
            }
        }
        let next_hops = services
            .iter()
            .flat_map(|s| s.servers.iter().map(|r| r.addr))
            .chain(routes.iter().filter_map(|r| r.gateway))
            .map(|a| (a, ()))
            .collect();
        Snapshot {
            next_hops,
            services,
            by_key,
            vips,
            floating: HashMap::new(),
            ports,
            routes,
            neighbours,
            timeouts: Timeouts::default(),
            unserved_drop: HashMap::new(),
            member_ports: Vec::new(),
            local_ends,
            snat: Vec::new(),
            marks: Vec::new(),
            mark_prefixes: Vec::new(),
            ip_forward: false,
        }
    }

    /// Sets the firewall-mark rules with the services they select (indexes into
    /// `services`); their destinations become VIPs.
    pub fn set_marks(&mut self, rules: Vec<(MarkRule, usize)>) {
        self.mark_prefixes.clear();
        for (r, _) in &rules {
            let full = if r.dst.0.is_ipv4() { 32 } else { 128 };
            if r.dst.1 == full {
                self.vips.insert(addr_key(r.dst.0), ());
            } else if !self.mark_prefixes.contains(&r.dst) {
                self.mark_prefixes.push(r.dst);
            }
        }
        self.marks = rules;
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
        if !self.marks.is_empty() {
            if let Some((_, i)) = self
                .marks
                .iter()
                .rev()
                .find(|(r, _)| r.matches(proto, src, dst, dport))
            {
                return self.services.get(*i);
            }
        }
        self.service_for(proto, dst, dport)
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
        for a in rules.iter().filter_map(|r| r.to_source).chain(own) {
            self.local_ends.insert(addr_key(a), ());
        }
        self.snat = rules;
    }

    /// An address full NAT or SNAT uses as a source (replies to it may be translated).
    #[inline]
    pub fn is_local_end(&self, a: IpAddr) -> bool {
        !self.local_ends.is_empty() && self.local_ends.contains_key(&addr_key(a))
    }

    /// Sets the members' outgoing port ranges; their VIPs become VIPs of the snapshot.
    pub fn set_member_ports(&mut self, ranges: Vec<MemberPorts>) {
        for r in &ranges {
            self.vips.insert(addr_key(r.vip), ());
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

    /// The NAT member range a packet from `member:port` leaves by.
    #[inline]
    pub fn member_range_of(&self, proto: u8, member: IpAddr, port: u16) -> Option<&MemberPorts> {
        self.member_ports.iter().find(|r| {
            r.nat && r.proto == proto && r.member == member && (r.first..=r.last).contains(&port)
        })
    }

    /// Sets the VIPs whose traffic for no service is dropped instead of going to the host.
    pub fn set_unserved_drop(&mut self, vips: impl IntoIterator<Item = IpAddr>) {
        self.unserved_drop = vips.into_iter().map(|a| (addr_key(a), ())).collect();
    }

    /// Whether traffic for `vip` that matches no service is dropped (else it is the host's).
    #[inline]
    pub fn drops_unserved(&self, vip: IpAddr) -> bool {
        !self.unserved_drop.is_empty() && self.unserved_drop.contains_key(&addr_key(vip))
    }

    /// The service for a destination: exact port first, then the all-ports service.
    pub fn service_for(&self, proto: u8, vaddr: IpAddr, vport: u16) -> Option<&Service> {
        self.by_key
            .get(&(proto, vaddr, vport))
            .or_else(|| self.by_key.get(&(proto, vaddr, 0)))
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
        self.next_hops.contains_key(&a)
    }

    /// A VIP by its own address (a service's, a single-address mark's, a member range's),
    /// not only by a marked prefix.
    #[inline]
    pub fn is_exact_vip(&self, a: IpAddr) -> bool {
        self.vips.contains_key(&addr_key(a))
    }

    pub fn is_vip(&self, a: IpAddr) -> bool {
        self.vips.contains_key(&addr_key(a))
            || (!self.mark_prefixes.is_empty() && self.mark_prefixes.iter().any(|p| within(a, *p)))
    }

    pub fn is_local(&self, a: IpAddr) -> bool {
        self.ports.iter().any(|p| p.addrs.contains(&a)) || self.floating_state(a) == Some(true)
    }

    /// Sets the VRRP-managed addresses and which of them this box holds.
    pub fn set_floating(&mut self, addrs: impl IntoIterator<Item = (IpAddr, bool)>) {
        self.floating = addrs
            .into_iter()
            .map(|(a, held)| (addr_key(a), held))
            .collect();
    }

    /// Whether VRRP manages `a` (Some) and this box holds it (true).
    #[inline]
    pub fn floating_state(&self, a: IpAddr) -> Option<bool> {
        if self.floating.is_empty() {
            return None;
        }
        self.floating.get(&addr_key(a)).copied()
    }

    /// True for an address VRRP manages that this box does not hold now.
    #[inline]
    pub fn is_standby(&self, a: IpAddr) -> bool {
        self.floating_state(a) == Some(false)
    }

    /// Out port and next-hop address for a destination.
    pub fn route(&self, dst: IpAddr) -> Option<(u16, IpAddr)> {
        self.routes
            .iter()
            .find(|r| r.contains(dst))
            .map(|r| (r.port, r.gateway.unwrap_or(dst)))
    }

    /// The port's own address of the family of `like`.
    pub fn local_addr(&self, port: u16, like: IpAddr) -> Option<IpAddr> {
        self.ports
            .get(usize::from(port))?
            .addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == like.is_ipv4())
    }
}
