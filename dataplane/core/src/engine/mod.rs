//! The forwarding core of a worker: `(snapshot, now, port, frame) -> verdict`, no I/O.
//!
//! Client packets to a VIP find (or create) their connection and go to the real server by
//! NAT (destination rewritten, TTL decremented), DR (MAC rewrite only) or TUN (IP-in-IP /
//! IPv6-in-IPv6 with the port's own address as the outer source). NAT replies are found by
//! the reply-side key and get the VIP back as their source. ARP for VIPs and the
//! appliance's addresses is answered; ICMP echo to a VIP is answered. Anything else for the
//! appliance goes to the host; traffic for neither is dropped and counted.

pub mod snapshot;

pub use rvs_wire::{Frame, VecFrame};
pub use snapshot::{Method, PortInfo, RealServer, Route, Service, Snapshot};

use crate::conn::table::{flags, NO_HOP};
use crate::conn::{
    account_transition, addr16, ip_of, transition, Conn, ConnTable, Direction, InKey, OutKey,
    TcpState, Timeouts,
};
use crate::sched::{self, DestLoad, Request, SchedState};
use hashbrown::HashMap;
use rvs_wire::{arp, checksum, ethernet, icmp, icmpv6, ipv4, ipv6, proto, tcp};
use rvs_wire::{
    ArpPacket, EtherType, EthernetFrame, IcmpPacket, Icmpv6Packet, Ipv4Packet, Ipv6Packet,
    TcpPacket, UdpPacket,
};
use std::net::IpAddr;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    Malformed = 0,
    NoService,
    NoServer,
    TableFull,
    NoRoute,
    NoNeighbour,
    Ttl,
    /// Neither for a VIP nor for the appliance: never relayed.
    NotOurs,
    /// A non-SYN segment (or a reply) of no known connection.
    NoConnection,
    /// Too big for the tunnel without DF (IPVS would fragment; rvs does not yet).
    TooBig,
    Unsupported,
}

impl DropReason {
    pub const COUNT: usize = 11;
    pub const ALL: [DropReason; 11] = [
        DropReason::Malformed,
        DropReason::NoService,
        DropReason::NoServer,
        DropReason::TableFull,
        DropReason::NoRoute,
        DropReason::NoNeighbour,
        DropReason::Ttl,
        DropReason::NotOurs,
        DropReason::NoConnection,
        DropReason::TooBig,
        DropReason::Unsupported,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoService => "no service",
            DropReason::NoServer => "no server",
            DropReason::TableFull => "table full",
            DropReason::NoRoute => "no route",
            DropReason::NoNeighbour => "no neighbour",
            DropReason::Ttl => "TTL",
            DropReason::NotOurs => "not ours",
            DropReason::NoConnection => "no connection",
            DropReason::TooBig => "too big",
            DropReason::Unsupported => "unsupported",
        }
    }
}

/// ICMP errors the engine sends to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IcmpError {
    /// Fragmentation needed (IPv4) / packet too big (IPv6), with the MTU to use.
    TooBig(usize),
    PortUnreachable,
}

/// What to do with the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame out of this port.
    Forward {
        port: u16,
    },
    /// For the host kernel (exception path).
    ToHost,
    Drop(DropReason),
}

/// Per-worker counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub new_conns: u64,
    pub drops: [u64; DropReason::COUNT],
    /// Per service id: packets and bytes in (client side) and out (NAT replies).
    pub svc_in: Vec<(u64, u64)>,
    pub svc_out: Vec<(u64, u64)>,
    /// New connections per service id and per real-server id.
    pub svc_conns: Vec<u64>,
    pub dest_conns: Vec<u64>,
    /// Per real-server id.
    pub dest_in: Vec<(u64, u64)>,
    pub dest_out: Vec<(u64, u64)>,
    /// ARP replies and IPv6 neighbour advertisements sent.
    pub arp_replies: u64,
    pub icmp_replies: u64,
    pub icmp_errors_sent: u64,
    /// Frames for the host kernel (dropped while there is no exception path).
    pub to_host: u64,
    /// ARP requests and neighbour solicitations sent to resolve next hops.
    pub neighbour_requests: u64,
}

impl Counters {
    fn bump(v: &mut [(u64, u64)], i: usize, bytes: usize) {
        if let Some(c) = v.get_mut(i) {
            c.0 += 1;
            c.1 += bytes as u64;
        }
    }
}

/// Sizes fixed at start.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    pub conn_capacity: usize,
    pub max_services: usize,
    pub max_dests: usize,
    pub neighbour_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            conn_capacity: 1 << 16,
            max_services: 1024,
            max_dests: 8192,
            neighbour_capacity: 4096,
        }
    }
}

/// A parsed packet's addressing.
#[derive(Debug, Clone, Copy)]
struct Flow {
    v6: bool,
    l3: usize,
    l4: usize,
    /// End of the IP datagram in the frame.
    end: usize,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    ttl: u8,
    df: bool,
}

pub struct Engine {
    pub table: ConnTable,
    pub timeouts: Timeouts,
    states: Vec<SchedState>,
    /// The service version each scheduler state was built for.
    state_versions: Vec<u64>,
    /// Each service's persistence timeout (seconds): a template that still controls
    /// connections when it runs out is re-armed for that long, as IPVS does.
    persistence: Vec<u32>,
    learned: HashMap<IpAddr, [u8; 6]>,
    /// When an ARP / neighbour solicitation was last sent for an address (seconds).
    requested: HashMap<IpAddr, u32>,
    neighbour_capacity: usize,
    /// Neighbours learned (or changed) since the worker last took them, for its peers.
    news: Vec<(IpAddr, [u8; 6])>,
    /// Next hops (port and MAC) connections cached an index of; valid for one epoch, which
    /// ends when a snapshot is adopted or a neighbour's MAC changes.
    hops: Vec<NextHop>,
    hop_ids: HashMap<(u16, IpAddr), u16>,
    hop_epoch: u32,
    released: Vec<u32>,
    pub counters: Counters,
}

/// Where a packet leaves: the port and the next hop's MAC.
#[derive(Debug, Clone, Copy)]
struct NextHop {
    port: u16,
    mac: [u8; 6],
}

/// What forwarding needs of a connection, copied out of its entry (not all of it: the
/// packet path reads a few fields), with the address and port it rewrites to.
#[derive(Debug, Clone, Copy)]
struct Binding {
    method: u8,
    flags: u8,
    state: u8,
    service: u16,
    dest: u32,
    addr: crate::conn::Addr16,
    port: u16,
}

impl Binding {
    #[inline]
    fn of(c: &Conn, addr: crate::conn::Addr16, port: u16) -> Binding {
        Binding {
            method: c.method,
            flags: c.flags,
            state: c.state,
            service: c.service,
            dest: c.dest,
            addr,
            port,
        }
    }
}

/// Most entries one [`Engine::expire`] call visits.
pub const EXPIRE_BUDGET_MAX: usize = 256;

/// How long a template of a service no longer known lives on while it controls connections.
const TEMPLATE_REARM: u32 = 60;

/// Most neighbour news an engine keeps between two passes of its worker.
const NEWS_CAPACITY: usize = 64;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({:?})", self.table)
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig, now: u32) -> Engine {
        Engine {
            table: ConnTable::new(cfg.conn_capacity, now),
            timeouts: Timeouts::default(),
            states: (0..cfg.max_services)
                .map(|_| SchedState::default())
                .collect(),
            state_versions: vec![u64::MAX; cfg.max_services],
            persistence: vec![TEMPLATE_REARM; cfg.max_services],
            learned: HashMap::with_capacity(cfg.neighbour_capacity),
            requested: HashMap::with_capacity(cfg.neighbour_capacity),
            neighbour_capacity: cfg.neighbour_capacity,
            news: Vec::with_capacity(NEWS_CAPACITY),
            hops: Vec::with_capacity(cfg.neighbour_capacity),
            hop_ids: HashMap::with_capacity(cfg.neighbour_capacity),
            hop_epoch: 1,
            released: Vec::with_capacity(EXPIRE_BUDGET_MAX),
            counters: Counters {
                svc_in: vec![(0, 0); cfg.max_services],
                svc_out: vec![(0, 0); cfg.max_services],
                dest_in: vec![(0, 0); cfg.max_dests],
                dest_out: vec![(0, 0); cfg.max_dests],
                svc_conns: vec![0; cfg.max_services],
                dest_conns: vec![0; cfg.max_dests],
                ..Counters::default()
            },
        }
    }

    /// Takes a new snapshot into use (at a burst boundary): scheduler states are rebuilt
    /// for services whose version changed; the timeouts are taken over.
    pub fn adopt(&mut self, snap: &Snapshot) {
        for svc in &snap.services {
            let i = usize::from(svc.id);
            if let (Some(st), Some(v)) = (self.states.get_mut(i), self.state_versions.get_mut(i)) {
                if *v != svc.version {
                    *st = SchedState::new(&svc.sched, &svc.table);
                    *v = svc.version;
                }
            }
            if let Some(p) = self.persistence.get_mut(i) {
                *p = svc.persistence.map_or(TEMPLATE_REARM, |(t, _)| t.max(1));
            }
        }
        self.timeouts = snap.timeouts;
        self.new_hop_epoch();
    }

    /// Forgets every cached next hop (routes, ports or neighbours changed).
    fn new_hop_epoch(&mut self) {
        self.hop_epoch = self.hop_epoch.wrapping_add(1).max(1);
        self.hops.clear();
        self.hop_ids.clear();
    }

    /// The port and next-hop MAC towards `dst` for connection `id`, from the connection's
    /// cache while its epoch is current; otherwise by route and neighbour lookup, cached.
    /// Without one, the packet's verdict: dropped for no route, or (next hop unresolved)
    /// turned into an ARP request / neighbour solicitation (see [`Engine::resolve`]).
    fn next_hop<F: Frame>(
        &mut self,
        snap: &Snapshot,
        id: crate::conn::ConnId,
        dst: IpAddr,
        to_server: bool,
        now: u32,
        frame: &mut F,
    ) -> Result<NextHop, Verdict> {
        let cached = self.table.get(id).and_then(|c| {
            let i = if to_server {
                c.hop_to_server
            } else {
                c.hop_to_client
            };
            (c.hop_epoch == self.hop_epoch).then_some(i)
        });
        if let Some(hop) = cached.and_then(|i| self.hops.get(usize::from(i))) {
            return Ok(*hop);
        }
        let Some((port, hop)) = snap.route(dst) else {
            return Err(self.drop(DropReason::NoRoute));
        };
        let Some(mac) = self.neighbour(snap, hop) else {
            return Err(self.resolve(snap, now, port, hop, frame));
        };
        let next = NextHop { port, mac };
        let index = match self.hop_ids.get(&(port, hop)) {
            Some(&i) => i,
            None if self.hops.len() < self.neighbour_capacity.min(usize::from(NO_HOP)) => {
                let i = self.hops.len() as u16;
                self.hops.push(next);
                self.hop_ids.insert((port, hop), i);
                i
            }
            None => return Ok(next),
        };
        let epoch = self.hop_epoch;
        if let Some(c) = self.table.get_mut(id) {
            if c.hop_epoch != epoch {
                c.hop_epoch = epoch;
                c.hop_to_server = NO_HOP;
                c.hop_to_client = NO_HOP;
            }
            if to_server {
                c.hop_to_server = index;
            } else {
                c.hop_to_client = index;
            }
        }
        Ok(next)
    }

    fn drop(&mut self, r: DropReason) -> Verdict {
        self.counters.drops[r as usize] += 1;
        Verdict::Drop(r)
    }

    /// Runs the connection timers, visiting at most `budget` (<= [`EXPIRE_BUDGET_MAX`]) entries. Expired
    /// connections leave their server's counters and their template's count; a template
    /// lives on while it still controls connections.
    pub fn expire(&mut self, now: u32, budget: usize, loads: &[DestLoad]) -> usize {
        // Templates that lost a connection (kept across calls: no per-poll zeroing).
        let released = &mut self.released;
        released.clear();
        let persistence = &self.persistence;
        let visited = self
            .table
            .expire(now, budget.min(released.capacity()), |_, c| {
                if c.is_template() {
                    if c.controls > 0 {
                        let rearm = persistence.get(usize::from(c.service));
                        return Some(now + rearm.copied().unwrap_or(TEMPLATE_REARM));
                    }
                    if let Some(l) = loads.get(c.dest as usize) {
                        l.remove_persistent();
                    }
                    return None;
                }
                if let Some(l) = loads.get(c.dest as usize) {
                    l.unbind(c.flags & flags::ACTIVE != 0);
                }
                if let Some(t) = c.template_id() {
                    released.push(t.0);
                }
                None
            });
        for &t in &self.released {
            if let Some(t) = self.table.get_mut(crate::conn::ConnId(t)) {
                t.controls = t.controls.saturating_sub(1);
            }
        }
        visited
    }

    fn neighbour(&self, snap: &Snapshot, ip: IpAddr) -> Option<[u8; 6]> {
        snap.neighbours
            .get(&ip)
            .or_else(|| self.learned.get(&ip))
            .copied()
    }

    fn learn(&mut self, ip: IpAddr, mac: [u8; 6]) {
        if self.learned.get(&ip) == Some(&mac) {
            return;
        }
        if self.learned.len() < self.neighbour_capacity || self.learned.contains_key(&ip) {
            if self.learned.insert(ip, mac).is_some() {
                self.new_hop_epoch();
            }
            if self.news.len() < NEWS_CAPACITY {
                self.news.push((ip, mac));
            }
        }
    }

    /// A neighbour another worker learned (ARP and neighbour discovery answers reach only
    /// the worker whose queue received them).
    pub fn learn_from_peer(&mut self, ip: IpAddr, mac: [u8; 6]) {
        let room = self.learned.len() < self.neighbour_capacity || self.learned.contains_key(&ip);
        if room && self.learned.insert(ip, mac).is_some_and(|old| old != mac) {
            self.new_hop_epoch();
        }
    }

    /// Neighbours this engine learned since the last call, for the other workers.
    pub fn take_news(&mut self, mut each: impl FnMut(IpAddr, [u8; 6])) {
        for (ip, mac) in self.news.drain(..) {
            each(ip, mac);
        }
    }

    /// The next hops the snapshot's real servers and gateways need whose MAC is unknown and
    /// for which no request went out this second, with their ports (at most `limit`).
    pub fn unresolved_hops(
        &self,
        snap: &Snapshot,
        now: u32,
        limit: usize,
        out: &mut Vec<(u16, IpAddr)>,
    ) {
        out.clear();
        let servers = snap
            .services
            .iter()
            .flat_map(|s| s.servers.iter())
            .map(|r| r.addr)
            .filter(|a| !snap.is_local(*a))
            .filter_map(|a| snap.route(a));
        let gateways = snap
            .routes
            .iter()
            .filter_map(|r| r.gateway.map(|g| (r.port, g)));
        for (port, hop) in servers.chain(gateways) {
            if out.len() >= limit {
                break;
            }
            let due = self.requested.get(&hop).is_none_or(|&t| now > t);
            if due && self.neighbour(snap, hop).is_none() && !out.contains(&(port, hop)) {
                out.push((port, hop));
            }
        }
    }

    /// Brings the connection-index line `process` will read for this frame into cache: a
    /// worker calls it for a whole burst first, so that the burst's index misses overlap
    /// instead of stalling one packet after another.
    #[inline]
    pub fn prefetch(&self, snap: &Snapshot, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        let v6 = match eth.ethertype() {
            EtherType::IPV4 => false,
            EtherType::IPV6 => true,
            _ => return,
        };
        let Ok(flow) = parse_flow(frame, eth.header_len(), v6) else {
            return;
        };
        if flow.proto != proto::TCP && flow.proto != proto::UDP {
            return;
        }
        if snap.is_vip(flow.dst) {
            self.table.prefetch_in(&in_key(&flow));
        } else {
            self.table.prefetch_out(&out_key(&flow));
        }
    }

    /// Processes one frame received on `port`.
    pub fn process<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        port: u16,
        frame: &mut F,
    ) -> Verdict {
        let (ethertype, l3) = match EthernetFrame::new_checked(frame.bytes()) {
            Ok(e) => (e.ethertype(), e.header_len()),
            Err(_) => return self.drop(DropReason::Malformed),
        };
        match ethertype {
            EtherType::ARP => self.arp(snap, port, l3, frame),
            EtherType::IPV4 | EtherType::IPV6 => {
                let flow = match parse_flow(frame.bytes(), l3, ethertype == EtherType::IPV6) {
                    Ok(f) => f,
                    Err(r) => return self.drop(r),
                };
                self.ip(snap, loads, now, port, flow, frame)
            }
            _ => Verdict::ToHost,
        }
    }

    fn arp<F: Frame>(&mut self, snap: &Snapshot, port: u16, l3: usize, frame: &mut F) -> Verdict {
        let Some(p) = frame
            .bytes()
            .get(l3..)
            .and_then(|b| ArpPacket::new_checked(b).ok())
        else {
            return self.drop(DropReason::Malformed);
        };
        let (op, sha, spa, tpa) = (p.op(), p.sender_mac(), p.sender_ip(), p.target_ip());
        self.learn(IpAddr::from(spa), sha);
        let target = IpAddr::from(tpa);
        if op != arp::OP_REQUEST || !(snap.is_vip(target) || snap.is_local(target)) {
            return Verdict::ToHost;
        }
        let Some(mac) = snap.ports.get(usize::from(port)).map(|p| p.mac) else {
            return self.drop(DropReason::NoRoute);
        };
        let b = frame.bytes_mut();
        ethernet::emit_header(b, sha, mac, EtherType::ARP);
        if let Some(body) = b.get_mut(l3..) {
            arp::emit(body, arp::OP_REPLY, mac, tpa, sha, spa);
        }
        self.counters.arp_replies += 1;
        Verdict::Forward { port }
    }

    fn ip<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        port: u16,
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        let tcp_or_udp = flow.proto == proto::TCP || flow.proto == proto::UDP;
        if flow.v6 && flow.proto == proto::ICMPV6 {
            if let Some(v) = self.neighbour_discovery(snap, port, &flow, frame) {
                return v;
            }
        }
        if let Some(v) = self.icmp_error_about_conn(snap, &flow, frame) {
            return v;
        }
        if snap.is_vip(flow.dst) {
            if tcp_or_udp {
                return self.forward_to_server(snap, loads, now, flow, frame);
            }
            if is_echo_request(frame.bytes(), &flow) {
                return self.echo_reply(snap, port, flow, frame);
            }
            return self.drop(DropReason::Unsupported);
        }
        if tcp_or_udp {
            if let Some(id) = self.table.lookup_out(&out_key(&flow)) {
                return self.forward_to_client(snap, loads, now, id, flow, frame);
            }
        }
        // The appliance's own traffic, and link-level multicast and broadcast (routing
        // protocols, VRRP) are the host's.
        if snap.is_local(flow.dst) || is_group_address(flow.dst) {
            return Verdict::ToHost;
        }
        self.drop(DropReason::NotOurs)
    }

    /// Client -> real server.
    fn forward_to_server<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        let key = in_key(&flow);
        let mut found = self.table.lookup_in(&key);
        // conn_reuse_mode: a SYN on a TIME_WAIT/CLOSE connection starts a new one.
        if let (Some(id), true) = (
            found,
            flow.proto == proto::TCP && flow.tcp_flags & (tcp::SYN | tcp::RST) == tcp::SYN,
        ) {
            let st = self.table.get(id).map(|c| TcpState::from_u8(c.state));
            if matches!(st, Some(TcpState::TimeWait | TcpState::Close)) {
                self.release(id, loads);
                found = None;
            }
        }
        let id = match found {
            Some(id) => id,
            None => match self.new_conn(snap, loads, now, key, &flow) {
                Ok(id) => id,
                Err(DropReason::NoServer) => {
                    // No server available: drop, and tell the client (port unreachable).
                    self.counters.drops[DropReason::NoServer as usize] += 1;
                    return self.icmp_error(snap, flow, IcmpError::PortUnreachable, frame);
                }
                Err(r) => return self.drop(r),
            },
        };
        let Some(conn) = self.table.get(id).map(|c| Binding::of(c, c.daddr, c.dport)) else {
            return self.drop(DropReason::NoConnection);
        };
        let method = Method::from_u8(conn.method);
        let dir = if method == Method::Nat {
            Direction::Input
        } else {
            Direction::InputOnly
        };
        self.track(id, &conn, dir, &flow, now, loads);
        if conn.flags & flags::ONE_PACKET != 0 {
            self.release(id, loads);
        }
        let bytes = flow.end - flow.l3;
        Counters::bump(&mut self.counters.svc_in, usize::from(conn.service), bytes);
        Counters::bump(&mut self.counters.dest_in, conn.dest as usize, bytes);
        // A server on the appliance itself (IPVS's "Local"): the host's stack, which holds
        // the VIP on the port's twin, gets the packet unchanged.
        if conn.flags & flags::LOCAL != 0 {
            return Verdict::ToHost;
        }
        let daddr = ip_of(&conn.addr);
        let (out_port, hop_mac) = match self.next_hop(snap, id, daddr, true, now, frame) {
            Ok(h) => (h.port, h.mac),
            Err(verdict) => return verdict,
        };
        let Some(port_info) = snap.ports.get(usize::from(out_port)) else {
            return self.drop(DropReason::NoRoute);
        };
        let port_mac = port_info.mac;
        match method {
            Method::Nat => {
                if flow.ttl <= 1 {
                    return self.drop(DropReason::Ttl);
                }
                rewrite(frame.bytes_mut(), &flow, Side::Dst, daddr, conn.port);
                set_macs(frame.bytes_mut(), hop_mac, port_mac);
                Verdict::Forward { port: out_port }
            }
            Method::Dr => {
                set_macs(frame.bytes_mut(), hop_mac, port_mac);
                Verdict::Forward { port: out_port }
            }
            Method::Tun => {
                let Some(src) = snap.local_addr(out_port, daddr) else {
                    return self.drop(DropReason::NoRoute);
                };
                let outer = if flow.v6 {
                    ipv6::HEADER_LEN
                } else {
                    ipv4::MIN_HEADER_LEN
                };
                let inner_len = flow.end - flow.l3;
                if inner_len + outer > usize::from(port_info.mtu) {
                    if flow.v6 || flow.df {
                        let mtu = usize::from(port_info.mtu) - outer;
                        return self.icmp_error(snap, flow, IcmpError::TooBig(mtu), frame);
                    }
                    return self.drop(DropReason::TooBig);
                }
                if !encapsulate(
                    frame,
                    &flow,
                    (src, daddr),
                    (hop_mac, port_mac),
                    port_info.ip_checksum_offload,
                ) {
                    return self.drop(DropReason::Unsupported);
                }
                Verdict::Forward { port: out_port }
            }
        }
    }

    /// Real server -> client (NAT).
    fn forward_to_client<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        id: crate::conn::ConnId,
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        let Some(conn) = self.table.get(id).map(|c| Binding::of(c, c.vaddr, c.vport)) else {
            return self.drop(DropReason::NoConnection);
        };
        self.track(id, &conn, Direction::Output, &flow, now, loads);
        let bytes = flow.end - flow.l3;
        Counters::bump(&mut self.counters.svc_out, usize::from(conn.service), bytes);
        Counters::bump(&mut self.counters.dest_out, conn.dest as usize, bytes);
        if flow.ttl <= 1 {
            return self.drop(DropReason::Ttl);
        }
        let (out_port, hop_mac) = match self.next_hop(snap, id, flow.dst, false, now, frame) {
            Ok(h) => (h.port, h.mac),
            Err(verdict) => return verdict,
        };
        let Some(port_mac) = snap.ports.get(usize::from(out_port)).map(|p| p.mac) else {
            return self.drop(DropReason::NoRoute);
        };
        rewrite(
            frame.bytes_mut(),
            &flow,
            Side::Src,
            ip_of(&conn.addr),
            conn.port,
        );
        set_macs(frame.bytes_mut(), hop_mac, port_mac);
        Verdict::Forward { port: out_port }
    }

    /// TCP state and timer upkeep for a packet of a connection.
    fn track(
        &mut self,
        id: crate::conn::ConnId,
        conn: &Binding,
        dir: Direction,
        flow: &Flow,
        now: u32,
        loads: &[DestLoad],
    ) {
        let timeout = if flow.proto == proto::TCP {
            let from = TcpState::from_u8(conn.state);
            let to = transition(dir, from, flow.tcp_flags);
            if to != from {
                if let Some(l) = loads.get(conn.dest as usize) {
                    account_transition(l, from, to);
                }
                if let Some(c) = self.table.get_mut(id) {
                    c.state = to as u8;
                    c.flags = if to.is_active() {
                        c.flags | flags::ACTIVE
                    } else {
                        c.flags & !flags::ACTIVE
                    };
                }
            }
            self.timeouts.tcp_state(to)
        } else {
            self.timeouts.udp
        };
        self.table.set_expires(id, now + timeout);
    }

    /// A connection ends before its timer (rescheduled SYN): counters and template.
    fn release(&mut self, id: crate::conn::ConnId, loads: &[DestLoad]) {
        if let Some(c) = self.table.remove(id) {
            if let Some(l) = loads.get(c.dest as usize) {
                l.unbind(c.flags & flags::ACTIVE != 0);
            }
            if let Some(t) = c.template_id().and_then(|t| self.table.get_mut(t)) {
                t.controls = t.controls.saturating_sub(1);
            }
        }
    }

    fn new_conn(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        key: InKey,
        flow: &Flow,
    ) -> Result<crate::conn::ConnId, DropReason> {
        let Some(entry) = snap.service_for(flow.proto, flow.dst, flow.dport) else {
            return Err(DropReason::NoService);
        };
        let entry_id = entry.id;
        let svc = snap.scheduling_service(entry);
        if flow.proto == proto::TCP && flow.tcp_flags & (tcp::SYN | tcp::RST) != tcp::SYN {
            return Err(DropReason::NoConnection);
        }
        // Persistence: a template per (masked client, service or group).
        let mut template = None;
        let mut chosen = None;
        if let Some((timeout, mask)) = svc.persistence {
            let tkey = InKey {
                proto: flow.proto,
                caddr: addr16(masked(flow.src, mask)),
                cport: 0,
                vaddr: match svc.group {
                    Some(mark) => group_addr(mark),
                    None => addr16(svc.vaddr),
                },
                vport: if svc.group.is_some() { 0 } else { svc.vport },
            };
            if let Some(tid) = self.table.lookup_in(&tkey) {
                // By address and port: services of one group list the same servers.
                let dest = self.table.get(tid).map(|t| (t.daddr, t.dport));
                let same = |s: &&RealServer, (a, p): (crate::conn::Addr16, u16)| {
                    addr16(s.addr) == a && s.port == p
                };
                let i = match dest.and_then(|d| svc.servers.iter().position(|s| same(&s, d))) {
                    Some(i) => i,
                    None => {
                        // Its server was deleted: reschedule and rebind the template (it
                        // stays in place for the connections it already controls).
                        let i = self
                            .schedule(svc, loads, flow, now)
                            .ok_or(DropReason::NoServer)?;
                        let s = &svc.servers[i];
                        if let Some(t) = self.table.get_mut(tid) {
                            t.dest = s.id as u32;
                            t.daddr = addr16(s.addr);
                            t.dport = s.port;
                            t.method = s.method as u8;
                        }
                        if let Some(l) = loads.get(s.id) {
                            l.add_persistent();
                        }
                        i
                    }
                };
                template = Some(tid);
                chosen = Some(i);
                self.table.set_expires(tid, now + timeout);
            }
            if chosen.is_none() {
                let i = self
                    .schedule(svc, loads, flow, now)
                    .ok_or(DropReason::NoServer)?;
                let s = &svc.servers[i];
                let t = Conn::new(
                    tkey,
                    addr16(s.addr),
                    s.port,
                    entry_id,
                    s.id as u32,
                    s.method as u8,
                    flags::TEMPLATE,
                );
                let tid = self
                    .table
                    .insert(t, now + timeout)
                    .map_err(|_| DropReason::TableFull)?;
                if let Some(l) = loads.get(s.id) {
                    l.add_persistent();
                }
                template = Some(tid);
                chosen = Some(i);
            }
        }
        let i = match chosen {
            Some(i) => i,
            None => self
                .schedule(svc, loads, flow, now)
                .ok_or(DropReason::NoServer)?,
        };
        let s = &svc.servers[i];
        let dport = if s.port == 0 { flow.dport } else { s.port };
        let mut f = if svc.one_packet && flow.proto == proto::UDP {
            flags::ONE_PACKET
        } else if s.method == Method::Nat {
            flags::REPLY_INDEXED
        } else {
            0
        };
        // Decided once per connection, not per packet.
        if snap.is_local(s.addr) || s.addr.is_loopback() {
            f |= flags::LOCAL;
        }
        let mut c = Conn::new(
            key,
            addr16(s.addr),
            dport,
            entry_id,
            s.id as u32,
            s.method as u8,
            f,
        );
        if let Some(t) = template {
            c.template = t.0;
        }
        let id = self
            .table
            .insert(c, now + self.timeouts.tcp_state(TcpState::None))
            .map_err(|_| DropReason::TableFull)?;
        if let Some(t) = template.and_then(|t| self.table.get_mut(t)) {
            t.controls += 1;
        }
        if let Some(l) = loads.get(s.id) {
            l.bind();
        }
        self.counters.new_conns += 1;
        if let Some(n) = self.counters.svc_conns.get_mut(usize::from(entry_id)) {
            *n += 1;
        }
        if let Some(n) = self.counters.dest_conns.get_mut(s.id) {
            *n += 1;
        }
        Ok(id)
    }

    fn schedule(
        &mut self,
        svc: &Service,
        loads: &[DestLoad],
        flow: &Flow,
        now: u32,
    ) -> Option<usize> {
        let state = self.states.get_mut(usize::from(svc.id))?;
        let req = Request {
            client: flow.src,
            client_port: flow.sport,
            dst: flow.dst,
            now: u64::from(now),
        };
        sched::pick(&svc.sched, &svc.table, state, &svc.dests, loads, &req)
    }

    /// The next hop's MAC is unknown: the packet is dropped (counted) and, at most once a
    /// second per address, the frame becomes an ARP request / neighbour solicitation for it.
    fn resolve<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        port: u16,
        hop: IpAddr,
        frame: &mut F,
    ) -> Verdict {
        self.counters.drops[DropReason::NoNeighbour as usize] += 1;
        if self.solicit(snap, now, port, hop, frame) {
            Verdict::Forward { port }
        } else {
            Verdict::Drop(DropReason::NoNeighbour)
        }
    }

    /// Makes `frame` an ARP request / neighbour solicitation for `hop` out of `port`, unless
    /// one went out this second (or the table is full); true when it did.
    pub fn solicit<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        port: u16,
        hop: IpAddr,
        frame: &mut F,
    ) -> bool {
        let due = match self.requested.get(&hop) {
            Some(&t) => now > t,
            None => self.requested.len() < self.neighbour_capacity,
        };
        let (Some(port_mac), Some(me)) = (
            snap.ports.get(usize::from(port)).map(|p| p.mac),
            snap.local_addr(port, hop),
        ) else {
            return false;
        };
        if !due {
            return false;
        }
        let total = match hop {
            IpAddr::V4(_) => ethernet::HEADER_LEN + arp::LEN,
            IpAddr::V6(_) => ethernet::HEADER_LEN + ipv6::HEADER_LEN + 32,
        };
        let have = frame.bytes().len();
        if have < total && !frame.append(total - have) {
            return false;
        }
        frame.truncate(total);
        self.requested.insert(hop, now);
        let b = frame.bytes_mut();
        let l3 = ethernet::HEADER_LEN;
        match (hop, me) {
            (IpAddr::V4(h), IpAddr::V4(m)) => {
                ethernet::emit_header(b, [0xff; 6], port_mac, EtherType::ARP);
                arp::emit(
                    &mut b[l3..],
                    arp::OP_REQUEST,
                    port_mac,
                    m.octets(),
                    [0; 6],
                    h.octets(),
                );
            }
            _ => {
                let (target, src) = (addr_bytes16(hop), addr_bytes16(me));
                let group = icmpv6::solicited_node(target);
                let mac = [0x33, 0x33, group[12], group[13], group[14], group[15]];
                emit_nd(b, mac, port_mac, src, group, |m| {
                    icmpv6::emit_neighbor_solicit(m, target, port_mac)
                });
            }
        }
        self.counters.neighbour_requests += 1;
        true
    }

    /// An ICMP error about a packet of a known connection is forwarded to the other side
    /// with the embedded header rewritten (as IPVS's ip_vs_nat_icmp does): from the client
    /// side (about VIP -> client) towards the real server, or for NAT from the server side
    /// (about client -> server) towards the client with the VIP put back. None when the
    /// frame is not such an error.
    fn icmp_error_about_conn<F: Frame>(
        &mut self,
        snap: &Snapshot,
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        let emb = embedded(frame.bytes(), flow)?;
        let (id, towards_server) = if snap.is_vip(emb.src) {
            let key = InKey {
                proto: emb.proto,
                caddr: addr16(emb.dst),
                cport: emb.dport,
                vaddr: addr16(emb.src),
                vport: emb.sport,
            };
            (self.table.lookup_in(&key)?, true)
        } else {
            let key = OutKey {
                proto: emb.proto,
                daddr: addr16(emb.dst),
                dport: emb.dport,
                caddr: addr16(emb.src),
                cport: emb.sport,
            };
            (self.table.lookup_out(&key)?, false)
        };
        let conn = *self.table.get(id)?;
        if flow.ttl <= 1 {
            return Some(self.drop(DropReason::Ttl));
        }
        let method = Method::from_u8(conn.method);
        let (outer_new, emb_addr, emb_port, next) = if towards_server {
            (
                ip_of(&conn.daddr),
                ip_of(&conn.daddr),
                conn.dport,
                ip_of(&conn.daddr),
            )
        } else {
            (ip_of(&conn.vaddr), ip_of(&conn.vaddr), conn.vport, flow.dst)
        };
        let Some((out_port, hop)) = snap.route(next) else {
            return Some(self.drop(DropReason::NoRoute));
        };
        let Some(hop_mac) = self.neighbour(snap, hop) else {
            return Some(self.drop(DropReason::NoNeighbour));
        };
        let port_mac = snap.ports.get(usize::from(out_port))?.mac;
        if towards_server && method != Method::Nat {
            // DR/TUN: the real server owns the VIP too; deliver the error unchanged.
            if method == Method::Tun {
                let src = snap.local_addr(out_port, next)?;
                if !encapsulate(frame, flow, (src, next), (hop_mac, port_mac), false) {
                    return Some(self.drop(DropReason::Unsupported));
                }
            } else {
                set_macs(frame.bytes_mut(), hop_mac, port_mac);
            }
            return Some(Verdict::Forward { port: out_port });
        }
        if !towards_server && method != Method::Nat {
            return None;
        }
        let b = frame.bytes_mut();
        // Outer header: the real server's address (towards it) or the VIP (towards the client).
        let side = if towards_server { Side::Dst } else { Side::Src };
        rewrite_ip_only(b, flow, side, outer_new);
        // Embedded header: its source (towards the server) or destination (towards the client).
        let e = flow.l4 + 8;
        if flow.v6 {
            let at = if towards_server { e + 8 } else { e + 24 };
            if let Some(dst) = b.get_mut(at..at + 16) {
                dst.copy_from_slice(&addr_bytes16(emb_addr));
            }
        } else if let Some(h) = b.get_mut(e..e + emb.ihl) {
            let at = if towards_server { 12 } else { 16 };
            h[at..at + 4].copy_from_slice(&addr_bytes4(emb_addr));
            h[10..12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let port_at = e + emb.ihl + if towards_server { 0 } else { 2 };
        if let Some(p) = b.get_mut(port_at..port_at + 2) {
            p.copy_from_slice(&emb_port.to_be_bytes());
        }
        // The ICMP checksum, recomputed over the whole message.
        if let Some(m) = b.get_mut(flow.l4..flow.end) {
            if flow.v6 {
                let (src, dst) = match side {
                    Side::Dst => (addr_bytes16(flow.src), addr_bytes16(outer_new)),
                    Side::Src => (addr_bytes16(outer_new), addr_bytes16(flow.dst)),
                };
                let pseudo = checksum::pseudo_v6(src, dst, proto::ICMPV6, m.len() as u32);
                if let Ok(mut p) = Icmpv6Packet::new_checked(m) {
                    p.fill_checksum(pseudo);
                }
            } else if let Ok(mut p) = IcmpPacket::new_checked(m) {
                p.fill_checksum();
            }
        }
        set_macs(b, hop_mac, port_mac);
        Some(Verdict::Forward { port: out_port })
    }

    /// Neighbour discovery: learns from solicitations and advertisements, and answers a
    /// solicitation for a VIP or an own address with an advertisement. None when the frame
    /// is not ND (it then follows the normal path).
    fn neighbour_discovery<F: Frame>(
        &mut self,
        snap: &Snapshot,
        port: u16,
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        let l4 = frame.bytes().get(flow.l4..flow.end)?;
        let m = Icmpv6Packet::new_checked(l4).ok()?;
        let (kind, target) = (m.msg_type(), m.nd_target());
        match kind {
            icmpv6::NEIGHBOR_ADVERT => {
                if let Some(mac) = m.nd_lladdr(icmpv6::OPT_TARGET_LL) {
                    self.learn(IpAddr::from(target), mac);
                }
                return Some(Verdict::ToHost);
            }
            icmpv6::NEIGHBOR_SOLICIT => {}
            _ => return None,
        }
        let requester_mac = m.nd_lladdr(icmpv6::OPT_SOURCE_LL);
        let unspecified = flow.src == IpAddr::from([0u8; 16]);
        if let (Some(mac), false) = (requester_mac, unspecified) {
            self.learn(flow.src, mac);
        }
        let target_ip = IpAddr::from(target);
        if !(snap.is_vip(target_ip) || snap.is_local(target_ip)) {
            return Some(Verdict::ToHost);
        }
        let Some(port_mac) = snap.ports.get(usize::from(port)).map(|p| p.mac) else {
            return Some(self.drop(DropReason::NoRoute));
        };
        let frame_src: [u8; 6] = frame
            .bytes()
            .get(6..12)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 6]);
        // To the requester, or to all nodes for a duplicate-address probe.
        let (dst_ip, dst_mac, flags) = if unspecified {
            (
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x33, 0x33, 0, 0, 0, 1],
                icmpv6::NA_OVERRIDE,
            )
        } else {
            (
                addr_bytes16(flow.src),
                requester_mac.unwrap_or(frame_src),
                icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE,
            )
        };
        let total = ethernet::HEADER_LEN + ipv6::HEADER_LEN + 32;
        let have = frame.bytes().len();
        if have < total && !frame.append(total - have) {
            return Some(self.drop(DropReason::Unsupported));
        }
        frame.truncate(total);
        let b = frame.bytes_mut();
        emit_nd(b, dst_mac, port_mac, target, dst_ip, |m| {
            icmpv6::emit_neighbor_advert(m, target, port_mac, flags)
        });
        self.counters.arp_replies += 1;
        Some(Verdict::Forward { port })
    }

    fn echo_reply<F: Frame>(
        &mut self,
        snap: &Snapshot,
        port: u16,
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        let Some(mac) = snap.ports.get(usize::from(port)).map(|p| p.mac) else {
            return self.drop(DropReason::NoRoute);
        };
        let b = frame.bytes_mut();
        let src_mac: [u8; 6] = b
            .get(6..12)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 6]);
        set_macs(b, src_mac, mac);
        if flow.v6 {
            if let Ok(mut ip) = Ipv6Packet::new_checked(&mut b[flow.l3..flow.end]) {
                ip.set_src(addr_bytes16(flow.dst));
                ip.set_dst(addr_bytes16(flow.src));
            }
            if let Ok(mut m) = Icmpv6Packet::new_checked(&mut b[flow.l4..flow.end]) {
                m.set_type(icmpv6::ECHO_REPLY); // the pseudo-header sum is symmetric
            }
        } else {
            if let Ok(mut ip) = Ipv4Packet::new_checked(&mut b[flow.l3..flow.end]) {
                ip.set_src(addr_bytes4(flow.dst));
                ip.set_dst(addr_bytes4(flow.src));
            }
            if let Ok(mut m) = IcmpPacket::new_checked(&mut b[flow.l4..flow.end]) {
                m.set_type(icmp::ECHO_REPLY);
            }
        }
        self.counters.icmp_replies += 1;
        Verdict::Forward { port }
    }

    /// Turns the frame into an ICMP error for the client, from the VIP it addressed (as the
    /// kernel's icmp_send does for a local destination), quoting the start of the datagram.
    fn icmp_error<F: Frame>(
        &mut self,
        snap: &Snapshot,
        flow: Flow,
        kind: IcmpError,
        frame: &mut F,
    ) -> Verdict {
        let Some((out_port, hop)) = snap.route(flow.src) else {
            return self.drop(DropReason::NoRoute);
        };
        let Some(hop_mac) = self.neighbour(snap, hop) else {
            return self.drop(DropReason::NoNeighbour);
        };
        let Some(port_mac) = snap.ports.get(usize::from(out_port)).map(|p| p.mac) else {
            return self.drop(DropReason::NoRoute);
        };
        let me = flow.dst;
        // The quoted part: IPv4 header + 8 bytes; IPv6 as much as fits in 1280 bytes.
        let quote_len = if flow.v6 {
            (flow.end - flow.l3).min(1280 - ipv6::HEADER_LEN - icmpv6::HEADER_LEN)
        } else {
            (flow.l4 - flow.l3 + 8).min(flow.end - flow.l3)
        };
        let mut quote = [0u8; 1232];
        quote[..quote_len].copy_from_slice(&frame.bytes()[flow.l3..flow.l3 + quote_len]);
        let ip_len = if flow.v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::MIN_HEADER_LEN
        };
        let total = ethernet::HEADER_LEN + ip_len + 8 + quote_len;
        let have = frame.bytes().len();
        if have < total && !frame.append(total - have) {
            return self.drop(DropReason::Unsupported);
        }
        frame.truncate(total);
        let b = frame.bytes_mut();
        let et = ip_ethertype(flow.v6);
        ethernet::emit_header(b, hop_mac, port_mac, et);
        let l3 = ethernet::HEADER_LEN;
        let l4 = l3 + ip_len;
        let icmp_len = 8 + quote_len;
        if flow.v6 {
            ipv6::Ipv6Repr {
                src: addr_bytes16(me),
                dst: addr_bytes16(flow.src),
                next_header: proto::ICMPV6,
                payload_len: icmp_len as u16,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut b[l3..]);
            let (t, code, rest) = match kind {
                IcmpError::TooBig(mtu) => (icmpv6::PACKET_TOO_BIG, 0, (mtu as u32).to_be_bytes()),
                IcmpError::PortUnreachable => (
                    icmpv6::DEST_UNREACHABLE,
                    icmpv6::CODE_PORT_UNREACHABLE,
                    [0; 4],
                ),
            };
            icmp::emit_header(&mut b[l4..], t, code, rest);
            b[l4 + 8..l4 + 8 + quote_len].copy_from_slice(&quote[..quote_len]);
            let pseudo = checksum::pseudo_v6(
                addr_bytes16(me),
                addr_bytes16(flow.src),
                proto::ICMPV6,
                icmp_len as u32,
            );
            if let Ok(mut m) = Icmpv6Packet::new_checked(&mut b[l4..l4 + icmp_len]) {
                m.fill_checksum(pseudo);
            }
        } else {
            ipv4::Ipv4Repr {
                src: addr_bytes4(me),
                dst: addr_bytes4(flow.src),
                protocol: proto::ICMP,
                payload_len: icmp_len as u16,
                ttl: 64,
                ident: 0,
                dont_fragment: false,
                dscp_ecn: 0,
            }
            .emit(&mut b[l3..]);
            let (code, rest) = match kind {
                IcmpError::TooBig(mtu) => {
                    (icmp::CODE_FRAG_NEEDED, [0, 0, (mtu >> 8) as u8, mtu as u8])
                }
                IcmpError::PortUnreachable => (icmp::CODE_PORT_UNREACHABLE, [0; 4]),
            };
            icmp::emit_header(&mut b[l4..], icmp::DEST_UNREACHABLE, code, rest);
            b[l4 + 8..l4 + 8 + quote_len].copy_from_slice(&quote[..quote_len]);
            if let Ok(mut m) = IcmpPacket::new_checked(&mut b[l4..l4 + icmp_len]) {
                m.fill_checksum();
            }
        }
        self.counters.icmp_errors_sent += 1;
        Verdict::Forward { port: out_port }
    }
}

/// The address a group (firewall mark) persists under: ::ffff:0:0 plus the mark, which no
/// real client or VIP uses.
fn group_addr(mark: u32) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[12..].copy_from_slice(&mark.to_be_bytes());
    a
}

/// `a` with all but its first `prefix` bits cleared (persistence netmasks, route prefixes).
pub fn masked(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let p = u32::from(prefix.min(32));
            let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let p = u32::from(prefix.min(128));
            let m = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

fn ip_ethertype(v6: bool) -> u16 {
    if v6 {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    }
}

fn addr_bytes4(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(_) => [0; 4],
    }
}

fn addr_bytes16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(v) => v.octets(),
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
    }
}

/// Multicast or limited broadcast: never forwarded, possibly of interest to the host.
fn is_group_address(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_multicast() || v.is_broadcast(),
        IpAddr::V6(v) => v.is_multicast(),
    }
}

fn set_macs(b: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    if let Ok(mut e) = EthernetFrame::new_checked(b) {
        e.set_dst(dst);
        e.set_src(src);
    }
}

fn is_echo_request(b: &[u8], flow: &Flow) -> bool {
    let Some(l4) = b.get(flow.l4..flow.end) else {
        return false;
    };
    match (flow.v6, flow.proto) {
        (false, proto::ICMP) => {
            IcmpPacket::new_checked(l4).is_ok_and(|m| m.msg_type() == icmp::ECHO_REQUEST)
        }
        (true, proto::ICMPV6) => {
            Icmpv6Packet::new_checked(l4).is_ok_and(|m| m.msg_type() == icmpv6::ECHO_REQUEST)
        }
        _ => false,
    }
}

#[inline]
fn parse_flow(b: &[u8], l3: usize, v6: bool) -> Result<Flow, DropReason> {
    let bytes = b.get(l3..).ok_or(DropReason::Malformed)?;
    let (proto_num, src, dst, l4, end, ttl, df) = if v6 {
        let ip = Ipv6Packet::new_checked(bytes).map_err(|_| DropReason::Malformed)?;
        let loc = ip.l4().map_err(|_| DropReason::Unsupported)?;
        if loc.fragment {
            return Err(DropReason::Unsupported);
        }
        (
            loc.protocol,
            IpAddr::from(ip.src()),
            IpAddr::from(ip.dst()),
            l3 + loc.offset,
            l3 + ip.total_len(),
            ip.hop_limit(),
            true,
        )
    } else {
        let ip = Ipv4Packet::new_checked(bytes).map_err(|_| DropReason::Malformed)?;
        if !ip.verify_checksum() {
            return Err(DropReason::Malformed);
        }
        if ip.is_fragment() {
            return Err(DropReason::Unsupported);
        }
        (
            ip.protocol(),
            IpAddr::from(ip.src()),
            IpAddr::from(ip.dst()),
            l3 + ip.header_len(),
            l3 + ip.total_len(),
            ip.ttl(),
            ip.dont_fragment(),
        )
    };
    let l4b = b.get(l4..end).ok_or(DropReason::Malformed)?;
    let (sport, dport, tcp_flags) = match proto_num {
        proto::TCP => {
            let t = TcpPacket::new_checked(l4b).map_err(|_| DropReason::Malformed)?;
            (t.src_port(), t.dst_port(), t.flags())
        }
        proto::UDP => {
            let u = UdpPacket::new_checked(l4b).map_err(|_| DropReason::Malformed)?;
            (u.src_port(), u.dst_port(), 0)
        }
        _ => (0, 0, 0),
    };
    Ok(Flow {
        v6,
        l3,
        l4,
        end,
        proto: proto_num,
        src,
        dst,
        sport,
        dport,
        tcp_flags,
        ttl,
        df,
    })
}

/// A packet's client-side key (client -> VIP).
#[inline]
fn in_key(flow: &Flow) -> InKey {
    InKey {
        proto: flow.proto,
        caddr: addr16(flow.src),
        cport: flow.sport,
        vaddr: addr16(flow.dst),
        vport: flow.dport,
    }
}

/// A packet's reply-side key (real server -> client, NAT).
#[inline]
fn out_key(flow: &Flow) -> OutKey {
    OutKey {
        proto: flow.proto,
        daddr: addr16(flow.src),
        dport: flow.sport,
        caddr: addr16(flow.dst),
        cport: flow.dport,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// NAT rewrite of one side's address and port, TTL / hop limit decremented, every checksum
/// updated incrementally.
fn rewrite(b: &mut [u8], flow: &Flow, side: Side, addr: IpAddr, port: u16) {
    let old_addr = if side == Side::Dst {
        flow.dst
    } else {
        flow.src
    };
    let (old16, new16) = (addr_bytes16(old_addr), addr_bytes16(addr));
    let (old4, new4) = (addr_bytes4(old_addr), addr_bytes4(addr));
    let (old, new): (&[u8], &[u8]) = if flow.v6 {
        (&old16, &new16)
    } else {
        (&old4, &new4)
    };
    rewrite_ip_only(b, flow, side, addr);
    let Some(l4b) = b.get_mut(flow.l4..flow.end) else {
        return;
    };
    match flow.proto {
        proto::TCP => {
            if let Ok(mut t) = TcpPacket::new_checked(l4b) {
                t.adjust_checksum(old, new);
                match side {
                    Side::Dst => t.set_dst_port(port),
                    Side::Src => t.set_src_port(port),
                }
            }
        }
        proto::UDP => {
            if let Ok(mut u) = UdpPacket::new_checked(l4b) {
                u.adjust_checksum(old, new);
                match side {
                    Side::Dst => u.set_dst_port(port),
                    Side::Src => u.set_src_port(port),
                }
            }
        }
        _ => {}
    }
}

/// Writes a 32-byte neighbour-discovery message (filled by `body`) in Ethernet and IPv6
/// (hop limit 255), with its checksum.
fn emit_nd(
    b: &mut [u8],
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: [u8; 16],
    dst: [u8; 16],
    body: impl FnOnce(&mut [u8]),
) {
    ethernet::emit_header(b, eth_dst, eth_src, EtherType::IPV6);
    let l3 = ethernet::HEADER_LEN;
    let l4 = l3 + ipv6::HEADER_LEN;
    let Some(ip) = b.get_mut(l3..l4) else { return };
    ipv6::Ipv6Repr {
        src,
        dst,
        next_header: proto::ICMPV6,
        payload_len: 32,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(ip);
    let Some(m) = b.get_mut(l4..l4 + 32) else {
        return;
    };
    body(m);
    let pseudo = checksum::pseudo_v6(src, dst, proto::ICMPV6, 32);
    if let Ok(mut p) = Icmpv6Packet::new_checked(m) {
        p.fill_checksum(pseudo);
    }
}

/// The header of the datagram an ICMP error quotes.
struct Embedded {
    ihl: usize,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
}

/// Reads the quoted datagram of an ICMP / ICMPv6 error (it is usually truncated, so no
/// length checks beyond the header and the first 8 bytes of its L4 header).
fn embedded(b: &[u8], flow: &Flow) -> Option<Embedded> {
    let msg = b.get(flow.l4..flow.end)?;
    let is_error = match (flow.v6, flow.proto) {
        (false, proto::ICMP) => IcmpPacket::new_checked(msg).ok()?.is_error(),
        (true, proto::ICMPV6) => Icmpv6Packet::new_checked(msg).ok()?.is_error(),
        _ => false,
    };
    if !is_error {
        return None;
    }
    let q = msg.get(8..)?;
    let (ihl, proto_num, src, dst) = if flow.v6 {
        let h: &[u8; 40] = q.get(..40)?.try_into().ok()?;
        if h[0] >> 4 != 6 {
            return None;
        }
        let src: [u8; 16] = h[8..24].try_into().ok()?;
        let dst: [u8; 16] = h[24..40].try_into().ok()?;
        (40, h[6], IpAddr::from(src), IpAddr::from(dst))
    } else {
        let v = *q.first()?;
        let ihl = usize::from(v & 0x0f) * 4;
        if v >> 4 != 4 || ihl < 20 || q.len() < ihl {
            return None;
        }
        let src: [u8; 4] = q[12..16].try_into().ok()?;
        let dst: [u8; 4] = q[16..20].try_into().ok()?;
        (ihl, q[9], IpAddr::from(src), IpAddr::from(dst))
    };
    if proto_num != proto::TCP && proto_num != proto::UDP {
        return None;
    }
    let ports = q.get(ihl..ihl + 4)?;
    Some(Embedded {
        ihl,
        proto: proto_num,
        src,
        dst,
        sport: u16::from_be_bytes([ports[0], ports[1]]),
        dport: u16::from_be_bytes([ports[2], ports[3]]),
    })
}

/// Rewrites one address of the outer IP header (header checksum kept) and decrements the
/// TTL / hop limit; the L4 checksum is the caller's.
fn rewrite_ip_only(b: &mut [u8], flow: &Flow, side: Side, addr: IpAddr) {
    let Some(ipb) = b.get_mut(flow.l3..flow.end) else {
        return;
    };
    if flow.v6 {
        if let Ok(mut ip) = Ipv6Packet::new_checked(&mut *ipb) {
            match side {
                Side::Dst => ip.set_dst(addr_bytes16(addr)),
                Side::Src => ip.set_src(addr_bytes16(addr)),
            }
            ip.set_hop_limit(flow.ttl.saturating_sub(1));
        }
    } else if let Ok(mut ip) = Ipv4Packet::new_checked(&mut *ipb) {
        match side {
            Side::Dst => ip.set_dst(addr_bytes4(addr)),
            Side::Src => ip.set_src(addr_bytes4(addr)),
        }
        ip.set_ttl(flow.ttl.saturating_sub(1));
    }
}

/// Wraps the IP datagram in an outer header (IPIP or IPv6-in-IPv6) after a fresh Ethernet
/// header. Any VLAN tag of the frame is not kept. With `offload`, the port fills in the
/// outer IPv4 checksum.
fn encapsulate<F: Frame>(
    frame: &mut F,
    flow: &Flow,
    (src, dst): (IpAddr, IpAddr),
    (hop_mac, port_mac): ([u8; 6], [u8; 6]),
    offload: bool,
) -> bool {
    let outer = if flow.v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    };
    let inner_len = flow.end - flow.l3;
    // Drop Ethernet padding and tags: the inner datagram starts right after the new header.
    frame.truncate(flow.end);
    let grow = (ethernet::HEADER_LEN + outer).saturating_sub(flow.l3);
    let shrink = flow.l3.saturating_sub(ethernet::HEADER_LEN + outer);
    if grow > 0 && !frame.prepend(grow) {
        return false;
    }
    let b = frame.bytes_mut();
    if shrink > 0 {
        // More link header than needed (two VLAN tags on IPv4): move the datagram down.
        b.copy_within(flow.l3..flow.l3 + inner_len, ethernet::HEADER_LEN + outer);
    }
    let et = ip_ethertype(flow.v6);
    ethernet::emit_header(b, hop_mac, port_mac, et);
    let l3 = ethernet::HEADER_LEN;
    if flow.v6 {
        ipv6::Ipv6Repr {
            src: addr_bytes16(src),
            dst: addr_bytes16(dst),
            next_header: proto::IPV6,
            payload_len: inner_len as u16,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut b[l3..]);
    } else {
        ipv4::Ipv4Repr {
            src: addr_bytes4(src),
            dst: addr_bytes4(dst),
            protocol: proto::IPIP,
            payload_len: inner_len as u16,
            ttl: 64,
            ident: 0,
            dont_fragment: flow.df,
            dscp_ecn: 0,
        }
        .emit(&mut b[l3..]);
    }
    if shrink > 0 {
        frame.truncate(ethernet::HEADER_LEN + outer + inner_len);
    }
    if !flow.v6 && offload && frame.offload_ipv4_checksum(l3, outer) {
        if let Some(c) = frame.bytes_mut().get_mut(l3 + 10..l3 + 12) {
            c.fill(0);
        }
    }
    true
}

/// The worker that owns a frame's flow: a hash of the client endpoint (client address and
/// port), the one part of the tuple that is the same in both directions of NAT, DR and TUN.
/// Frames without one (ARP, ICMP, non-IP) belong to the worker that received them (None).
pub fn flow_owner(snap: &Snapshot, frame: &[u8], workers: usize) -> Option<usize> {
    if workers <= 1 {
        return None;
    }
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = eth.header_len();
    let flow = match eth.ethertype() {
        EtherType::IPV4 => parse_flow(frame, l3, false).ok()?,
        EtherType::IPV6 => parse_flow(frame, l3, true).ok()?,
        _ => return None,
    };
    let (client, port) = if flow.proto == proto::TCP || flow.proto == proto::UDP {
        if snap.is_vip(flow.dst) {
            (flow.src, flow.sport)
        } else {
            (flow.dst, flow.dport)
        }
    } else {
        // An ICMP error belongs with the connection it quotes.
        let e = embedded(frame, &flow)?;
        if snap.is_vip(e.src) {
            (e.dst, e.dport)
        } else {
            (e.src, e.sport)
        }
    };
    Some(owner_of(client, port, workers))
}

/// The worker that owns the flows of a client endpoint (see [`flow_owner`]); what a
/// generator or an RSS set-up steering flows to their owners computes.
#[inline]
pub fn owner_of(client: IpAddr, port: u16, workers: usize) -> usize {
    let h = sched::hash_32(
        sched::fold_addr(client) ^ u32::from(port).rotate_left(16),
        16,
    );
    h as usize % workers.max(1)
}
