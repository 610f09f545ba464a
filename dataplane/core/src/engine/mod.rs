//! The forwarding core of a worker: `(snapshot, now, port, frame) -> verdict`, no I/O.
//!
//! Client packets to a VIP find (or create) their connection and go to the real server by
//! NAT (destination rewritten, TTL decremented), DR (MAC rewrite only) or TUN (IP-in-IP /
//! IPv6-in-IPv6 with the port's own address as the outer source). NAT replies are found by
//! the reply-side key and get the VIP back as their source. ARP for VIPs and the
//! appliance's addresses is answered; ICMP echo to a VIP is answered. Anything else for the
//! appliance goes to the host, and so does traffic for a VIP that no service takes (unless
//! that VIP drops it). Members' outgoing port ranges on a VIP and, with `ip_forward`,
//! traffic for neither are routed (`routed`); else it is dropped and counted. Addresses VRRP
//! manages are answered and forwarded only while this box holds them (MASTER); otherwise
//! they are dropped as `standby`.
//!
//! [`Engine::process`] reads top to bottom: classify (`classify`), then a local answer
//! (`local`), a session (`session`) and its method (`methods`) towards a next hop
//! (`neighbour`), or an ICMP error (`icmp_errors`); every drop is counted (`counters`).

mod classify;
mod counters;
mod defence;
mod fast_lane;
mod fragments;
mod frame_arena;
mod ftp;
mod full_nat;
mod held;
mod icmp_errors;
mod local;
mod methods;
mod neighbour;
mod probe_map;
mod routed;
mod segment;
mod session;
mod shared_templates;
pub mod snapshot;
mod sync;

pub use crate::model::{ForwardMethod, RealServer};
pub use classify::{flow_owner, masked, owner_of, Parsed};
pub use counters::{CounterSlots, Counters, DropReason, Slot};
pub use defence::IN_PKTS_KEPT;
pub use fragments::FragOwners;
pub use ftp::FTP_PORTS_MAX;
pub use held::HELD_TIMEOUT_S;
pub use rvs_wire::{Frame, VecFrame};
pub use session::EXPIRE_BUDGET_MAX;
pub use shared_templates::{BoardKey, SharedTemplates, BOARD_DEST_LIMIT};
pub use snapshot::{
    tos_key, AddrClass, Floating, FullNat, MarkRule, MemberPorts, PortInfo, Route, RouteQuery,
    Rule, RuleAction, RuleDev, RuleSelectors, Service, Snapshot, SnatRule, DEFAULT_TABLE,
    MAIN_TABLE,
};

use crate::conn::table::{flags, NO_HOP};
use crate::conn::{
    account_active, addr16, ip_of, mapped_v4, sctp_transition, state_is_active, v4_mapped, Addr16,
    Conn, ConnTable, Direction, InKey, OutKey, SctpState, TcpState, Timeouts,
};
use crate::sched::{self, DestLoad, PendingLoads, Request, SchedState};
use hashbrown::HashMap;
use rvs_wire::{arp, checksum, ethernet, icmp, icmpv6, ipv4, ipv6, proto, tcp};
use rvs_wire::{
    ArpPacket, ArpRepr, EtherType, EthernetFrame, IcmpPacket, Icmpv6Packet, Ipv4Packet, Ipv6Packet,
    SctpPacket, TcpPacket, UdpPacket,
};
use std::net::IpAddr;
use std::sync::Arc;

use classify::*;
use fragments::*;
use full_nat::{of_a_server, BYPASS_DEST, SNAT_DEST, SNAT_SERVICE};
use held::*;
use icmp_errors::*;
use methods::*;
use neighbour::*;
use routed::*;
use session::*;

/// What to do with the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame out of this port.
    Forward {
        port: u16,
    },
    /// Send the (rewritten) frame out of this port in fragments of at most `mtu` bytes: an
    /// IPv4 datagram without DF longer than the port's MTU, which a router and IPVS
    /// fragment, or a tunnel's outer IPv6 header around one ([`rvs_wire::fragment::fragment`],
    /// IPv6 fragment headers numbered by [`Engine::fragment_ident6`]).
    Fragment {
        port: u16,
        mtu: u16,
    },
    /// For the host kernel (exception path).
    ToHost,
    Drop(DropReason),
}

/// Sizes fixed at start.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    pub conn_capacity: usize,
    pub max_services: usize,
    pub max_dests: usize,
    pub neighbour_capacity: usize,
    /// The share of the table (percent) TCP connections not yet established may hold; the
    /// rest is kept for established ones. A SYN finding it full (or the table full) evicts
    /// the oldest embryonic connection.
    pub syn_share: u8,
    /// Most embryonic TCP connections from one client address (0: no limit).
    pub syn_per_source: u32,
    /// Most new UDP flows (before their client's second datagram) from one client address
    /// (0: no limit).
    pub udp_per_source: u32,
    /// Room for full-NAT and SNAT entries (their local ends, beside the table).
    pub full_nat: bool,
    /// Ports of NAT services the FTP helper watches (IPVS's ip_vs_ftp `ports=`); 0: none.
    pub ftp_ports: [u16; FTP_PORTS_MAX],
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            conn_capacity: 1 << 16,
            max_services: 1024,
            max_dests: 8192,
            neighbour_capacity: 4096,
            syn_share: 50,
            syn_per_source: 0,
            udp_per_source: 0,
            full_nat: false,
            ftp_ports: [0; FTP_PORTS_MAX],
        }
    }
}

pub struct Engine {
    pub table: ConnTable,
    pub timeouts: Timeouts,
    states: Vec<SchedState>,
    /// The version of the last scheduler event each state applied.
    state_versions: Vec<u64>,
    /// Each service's templates, by service id.
    templates: Vec<TemplateService>,
    /// Neighbours learned, with when (seconds) they last answered or spoke.
    learned: HashMap<IpAddr, ([u8; 6], u32)>,
    /// When an ARP / neighbour solicitation was last sent for an address (seconds).
    requested: HashMap<IpAddr, u32>,
    neighbour_capacity: usize,
    /// Neighbours learned (or changed) since the worker last took them, for its peers.
    news: Vec<(IpAddr, [u8; 6], u32)>,
    /// The second the learned neighbours were last checked for failures.
    neighbours_checked_at: u32,
    /// Next hops (port and MAC) connections cached an index of; valid for one epoch, which
    /// ends when a snapshot is adopted or a neighbour's MAC changes.
    hops: Vec<NextHop>,
    hop_ids: HashMap<(u16, IpAddr), u16>,
    /// The hop index recently found towards a destination, so a new connection to a server
    /// skips the route and neighbour lookups (direct-mapped by address; cleared with the epoch).
    dest_hops: Box<[DestHop; DEST_HOPS]>,
    hop_epoch: u32,
    released: Vec<u32>,
    /// FTP control connections an expiry pass kept for their data connections.
    kept: Vec<u32>,
    /// Changes to the servers' shared counts held until the end of the burst (none held
    /// unless the worker asks, see [`Engine::hold_loads`]).
    pending_loads: PendingLoads,
    /// Shared with the control side, which reads them at any time.
    pub counters: Arc<CounterSlots>,
    /// This worker's queues to and from the connection sync daemon, if it runs one.
    pub sync: Option<Arc<crate::sync::SyncChannel>>,
    /// IPVS's sync_persist_mode, from the last snapshot adopted: a persistent service's
    /// connections are not synced, only their templates.
    sync_templates_only: bool,
    /// IPVS's sync_refresh_period (0: unset), from the last snapshot adopted.
    sync_refresh_period: u32,
    /// The TCP transition tables in use: IPVS's, or its secure_tcp ones while that
    /// defence is on (from the last snapshot adopted).
    tcp_tables: &'static crate::conn::TcpTables,
    /// IPVS's lblc_expiration and lblcr_expiration, from the last snapshot adopted.
    cache_expiration: crate::sched::CacheExpiration,
    /// The persistence templates' choices all workers share (None: one worker).
    shared: Option<Arc<SharedTemplates>>,
    /// The FTP helper, when it watches some port.
    ftp: Option<ftp::FtpHelper>,
    /// The snapshots' count of deleted servers last seen, and where the sweep for their
    /// connections (expire_nodest_conn) has got to, while one runs.
    removals_seen: u64,
    nodest_sweep: Option<usize>,
    swept: Vec<crate::conn::ConnId>,
    /// IPVS's drop_packet and drop_entry, as the last snapshot adopted has them.
    defence: defence::MemoryDefence,
    /// Where first fragments went, for the later ones.
    frags: FragTable,
    /// Frames waiting for their next hop's MAC.
    held: HeldFrames,
    /// Later fragments waiting for their first.
    early: EarlyFragments,
    /// Most embryonic TCP connections ([`EngineConfig::syn_share`] of the table).
    embryonic_limit: usize,
    syn_per_source: u32,
    udp_per_source: u32,
    /// This worker's index and the number of workers (local ports are given out by it).
    owner: (usize, usize),
    port_cursor: u32,
    local_cursor: u32,
    /// The identification of the last outer IPv4 header without DF this worker sent (a
    /// tunnel's: each datagram's must differ, as its fragments need); it steps by the
    /// number of workers from the worker's index.
    next_ident: u16,
    /// The identification of the last IPv6 fragment headers this worker sent (numbered as
    /// `next_ident`).
    next_ident6: u32,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({:?})", self.table)
    }
}

/// A source address no host may use (RFC 1812 5.3.7 and Linux's martians): 0/8,
/// loopback, multicast, class E and the limited broadcast; IPv6 ::, ::1 and multicast.
pub fn martian(a: IpAddr) -> bool {
    martian_mapped(&addr16(a))
}

/// [`martian`] for an address as a flow carries it.
#[inline]
fn martian_mapped(a: &Addr16) -> bool {
    match mapped_v4(a) {
        Some(o) => o[0] == 0 || o[0] == 127 || o[0] >= 224,
        // Unspecified, loopback, multicast.
        None => matches!(u128::from_be_bytes(*a), 0 | 1) || a[0] == 0xff,
    }
}

/// A service's persistence templates as the engine treats them: the persistence timeout
/// (seconds; a template that still controls connections when it runs out is re-armed for
/// that long, as IPVS does), and one-packet scheduling (`-o`: drop_entry takes its
/// templates by rate).
#[derive(Debug, Clone, Copy)]
pub(super) struct TemplateService {
    pub(super) timeout: u32,
    pub(super) one_packet: bool,
}

impl TemplateService {
    const DEFAULT: TemplateService = TemplateService {
        timeout: TEMPLATE_REARM,
        one_packet: false,
    };

    /// Service `id`'s, from the engine's table of them.
    pub(super) fn of(templates: &[TemplateService], id: u16) -> TemplateService {
        templates
            .get(usize::from(id))
            .copied()
            .unwrap_or(TemplateService::DEFAULT)
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig, now: u32) -> Engine {
        let mut table = ConnTable::new(cfg.conn_capacity, now);
        if cfg.full_nat {
            table = table.with_full_nat();
        }
        if cfg.syn_per_source > 0 || cfg.udp_per_source > 0 {
            table = table.with_source_counts();
        }
        let ftp = ftp::FtpHelper::new(cfg.ftp_ports);
        if ftp.is_some() {
            table = table.with_app_state();
        }
        Engine {
            table,
            timeouts: Timeouts::default(),
            states: (0..cfg.max_services)
                .map(|_| SchedState::default())
                .collect(),
            state_versions: vec![0; cfg.max_services],
            templates: vec![TemplateService::DEFAULT; cfg.max_services],
            learned: HashMap::with_capacity(cfg.neighbour_capacity),
            requested: HashMap::with_capacity(cfg.neighbour_capacity),
            neighbour_capacity: cfg.neighbour_capacity,
            news: Vec::with_capacity(NEWS_CAPACITY),
            neighbours_checked_at: 0,
            hops: Vec::with_capacity(cfg.neighbour_capacity),
            hop_ids: HashMap::with_capacity(cfg.neighbour_capacity),
            dest_hops: Box::new([DestHop::EMPTY; DEST_HOPS]),
            hop_epoch: 1,
            released: Vec::with_capacity(EXPIRE_BUDGET_MAX),
            kept: Vec::with_capacity(EXPIRE_BUDGET_MAX),
            pending_loads: PendingLoads::default(),
            counters: Arc::new(CounterSlots::new(cfg.max_services, cfg.max_dests)),
            sync: None,
            sync_templates_only: false,
            sync_refresh_period: 0,
            tcp_tables: &crate::conn::TCP_TABLES,
            cache_expiration: crate::sched::CacheExpiration::default(),
            shared: None,
            ftp,
            removals_seen: 0,
            nodest_sweep: None,
            swept: Vec::with_capacity(EXPIRE_BUDGET_MAX),
            defence: defence::MemoryDefence::new(u64::from(now) ^ 0x9e37_79b9_7f4a_7c15),
            embryonic_limit: (cfg.conn_capacity.max(1) * usize::from(cfg.syn_share.clamp(1, 100))
                / 100)
                .max(1),
            syn_per_source: cfg.syn_per_source,
            udp_per_source: cfg.udp_per_source,
            frags: FragTable::new(),
            held: HeldFrames::new(HELD_FRAMES),
            early: EarlyFragments::new(),
            owner: (0, 1),
            port_cursor: 0,
            local_cursor: 0,
            next_ident: 0,
            next_ident6: 0,
        }
    }

    /// Shares persistence templates' choices with the other workers through `board`, so
    /// that a client's connections reach one server whichever worker owns them.
    pub fn share_templates(&mut self, board: Arc<SharedTemplates>) {
        if let Some(h) = &mut self.ftp {
            h.share(board.clone());
        }
        self.shared = Some(board);
    }

    /// Holds changes to the servers' shared counts (servers `0..servers`) until
    /// [`Engine::flush_loads`], which the worker calls at the end of each burst (see
    /// [`PendingLoads`]); without this every change is counted at once.
    pub fn hold_loads(&mut self, servers: usize) {
        self.pending_loads = PendingLoads::new(servers);
    }

    /// Applies the changes to the servers' counts held since the last call.
    #[inline]
    pub fn flush_loads(&mut self, loads: &[DestLoad]) {
        self.pending_loads.flush(loads);
    }

    /// Takes a new snapshot into use (at a burst boundary): each service's scheduler state
    /// applies the changes it has not seen (as IPVS's scheduler callbacks would; a worker
    /// that missed some binds afresh); the timeouts are taken over. Allocates nothing.
    pub fn adopt(&mut self, snap: &Snapshot) {
        for svc in &snap.services {
            let i = usize::from(svc.id);
            if let (Some(st), Some(seen)) = (self.states.get_mut(i), self.state_versions.get_mut(i))
            {
                let log = &svc.sched_log[..];
                let newest = log.last().map_or(0, |e| e.version);
                if *seen != newest {
                    let caches = svc.caches.as_deref();
                    // From the change after the last one applied, or from a bind, which
                    // makes the state whatever came before.
                    let is_bind =
                        |e: &sched::SchedEvent| matches!(e.change, sched::ListChange::Bind { .. });
                    let from = log
                        .iter()
                        .position(|e| e.after == *seen)
                        .or_else(|| log.first().filter(|e| is_bind(e)).map(|_| 0));
                    match from {
                        Some(from) => log
                            .iter()
                            .skip(from)
                            .for_each(|e| st.apply(&svc.sched, e, caches)),
                        None => {
                            let fresh = sched::SchedEvent::bind(newest, &svc.servers);
                            st.apply(&svc.sched, &fresh, caches);
                        }
                    }
                    *seen = newest;
                }
            }
            if let Some(t) = self.templates.get_mut(i) {
                *t = TemplateService {
                    timeout: svc.persistence.map_or(TEMPLATE_REARM, |(t, _)| t.max(1)),
                    one_packet: snap.scheduling_service(svc).one_packet,
                };
            }
        }
        self.timeouts = snap.timeouts;
        self.sync_templates_only = snap.sync_persist_mode;
        self.sync_refresh_period = snap.sync_refresh_period;
        self.tcp_tables = if snap.secure_tcp {
            &crate::conn::SECURE_TCP_TABLES
        } else {
            &crate::conn::TCP_TABLES
        };
        self.cache_expiration = snap.cache_expiration;
        self.defence.adopt(snap.drop_rate);
        self.new_hop_epoch();
        if snap.servers_removed != self.removals_seen {
            self.removals_seen = snap.servers_removed;
            if snap.expire_nodest_conn {
                self.nodest_sweep = Some(0);
            }
        }
    }

    /// The engine's counters as they are now.
    pub fn counters(&self) -> Counters {
        self.counters.read()
    }

    fn drop(&mut self, r: DropReason) -> Verdict {
        self.counters.dropped(r);
        Verdict::Drop(r)
    }

    fn ip<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        port: u16,
        flow: &Flow,
        frame: &mut F,
    ) -> Verdict {
        let tcp_or_udp = has_ports(flow.proto);
        if flow.v6 && flow.proto == proto::ICMPV6 {
            if let Some(v) = self.neighbour_discovery(snap, now, port, flow, frame) {
                return v;
            }
        }
        // A source no host can have, or a LAND packet (from a VIP or the appliance itself),
        // is never balanced, answered or relayed; the host's stack judges its own traffic.
        // (An address a firewall mark's prefix covers is someone else's: a transparent
        // cache's origin answers from one.) What each address is, looked up once.
        let dst = flow
            .dst_class
            .unwrap_or_else(|| snap.class_of_mapped(&flow.dst));
        let src = snap.class_of_mapped(&flow.src);
        let hosts_own = !dst.is_vip() && (dst.is_local() || is_group_address(flow.dst_ip()));
        if (martian_mapped(&flow.src) || src.is_exact_vip() || src.is_local()) && !hosts_own {
            return self.drop(DropReason::Martian);
        }
        // keepalived's firewall for an instance without accept mode drops what is sent to
        // its addresses, virtual servers' traffic included (ahead of IPVS); a reply to a
        // local end there is forwarded traffic, which it lets through.
        if dst.refuses() && !(tcp_or_udp && dst.is_local_end() && self.lookup_reply(flow).is_some())
        {
            return self.drop(DropReason::NoAccept);
        }
        if let Frag::Later(id) = flow.frag {
            return self.later_fragment(snap, loads, (now, port), *flow, id, frame);
        }
        // (Only ICMP can be an error about a connection.)
        if !tcp_or_udp {
            if let Some(v) = self.icmp_error_about_conn(snap, (loads, now), flow, frame) {
                return v;
            }
        }
        // A reply to a full-NAT or SNAT local end (which may be a VIP or an own address).
        if tcp_or_udp && dst.is_local_end() {
            if let Some(id) = self.lookup_reply(flow) {
                return self.forward_to_client(snap, loads, now, id, flow, frame);
            }
        }
        if dst.is_vip() {
            if dst.is_standby() {
                return self.standby_vip(snap, flow);
            }
            if tcp_or_udp {
                if let Some(&range) = snap.member_for_mapped(dst, flow.proto, &flow.dst, flow.dport)
                {
                    return self.forward_to_member(snap, (now, port), range, *flow, frame);
                }
                if snap.director_paused {
                    return self.unserved(snap, flow, DropReason::NoService);
                }
                return self.forward_to_server(snap, loads, now, flow, frame);
            }
            if flow.frag == Frag::Whole && is_echo_request(frame.bytes(), flow) {
                return self.echo_reply(snap, port, *flow, frame);
            }
            return self.unserved(snap, flow, DropReason::Unsupported);
        }
        if tcp_or_udp {
            if let Some(id) = self.lookup_reply(flow) {
                return self.forward_to_client(snap, loads, now, id, flow, frame);
            }
            if let Some(v) = self.ftp_active_data(snap, loads, now, flow, frame) {
                return v;
            }
            if let Some(&range) = snap.member_range_of_mapped(flow.proto, &flow.src, flow.sport) {
                return self.forward_from_member(snap, (now, port), range, *flow, frame);
            }
        }
        // The appliance's own traffic, and link-level multicast and broadcast (routing
        // protocols, VRRP) are the host's.
        if dst.is_local() || is_group_address(flow.dst_ip()) {
            return Verdict::ToHost;
        }
        if dst.is_standby() {
            return self.drop(DropReason::Standby);
        }
        if tcp_or_udp
            && snap.nat_icmp_send
            && stray_from_nat_server(snap, port, flow, frame.bytes())
        {
            return self.icmp_error(snap, now, *flow, IcmpError::PortUnreachable, frame);
        }
        if snap.ip_forward && sent_to_port(snap, port, frame.bytes()) {
            if tcp_or_udp && !snap.snat.is_empty() {
                if let Some(v) = self.source_nat(snap, loads, now, *flow, frame) {
                    return v;
                }
            }
            return self.route_through(snap, (now, port), *flow, frame);
        }
        self.drop(DropReason::NotOurs)
    }

    /// Traffic for a VIP VRRP holds on the other box: dropped, but for a BACKUP that is its
    /// master's real server (the LVS HOWTO's two-box set-up), which serves what the master
    /// sent it through its host while backup_only pauses its director, as IPVS leaves it to
    /// the local stack.
    #[cold]
    #[inline(never)]
    fn standby_vip(&mut self, snap: &Snapshot, flow: &Flow) -> Verdict {
        if snap.director_paused && has_ports(flow.proto) && snap.served_here(flow) {
            return Verdict::ToHost;
        }
        self.drop(DropReason::Standby)
    }

    /// The connection a reply-side packet belongs to (its key hashed once per packet).
    #[inline]
    fn lookup_reply(&self, flow: &Flow) -> Option<crate::conn::ConnId> {
        let key = out_key(flow);
        match flow.out_hash() {
            Some(h) => self.table.lookup_out_hashed(&key, h),
            None => self.table.lookup_out(&key),
        }
    }

    /// A packet for a VIP that no service takes: the host's, as the local stack gets it in
    /// LVS, unless the VIP is configured to drop such traffic (or is one only by a marked
    /// prefix, which the host does not hold).
    fn unserved(&mut self, snap: &Snapshot, flow: &Flow, why: DropReason) -> Verdict {
        // An address that is a VIP only by a marked prefix is not on the host either.
        let dst = snap.class_of_mapped(&flow.dst);
        if dst.drops_unserved() || !dst.is_exact_vip() {
            return self.drop(why);
        }
        Verdict::ToHost
    }
}
