//! A worker's connection table: a fixed-capacity slab of [`Conn`] entries indexed by two
//! hash tables of slab indices (the client-side key, and for NAT the reply-side key), and a
//! timer wheel for expiry. Nothing grows after creation: a full table refuses new entries.
//!
//! Expiry: each entry sits in the wheel slot of its deadline (1 s ticks, 1024 slots). A
//! packet only moves the deadline forward; when the slot comes round, an entry whose
//! deadline moved is relinked, others expire. [`ConnTable::expire`] works through due slots
//! with a budget, so there is never a full-table scan.
//!
//! Embryonic connections (a TCP SYN seen, not yet ESTABLISHED; an SCTP association not yet
//! up; a UDP flow's first datagram, not yet its second) are also kept in arrival order, with
//! a count per client address and protocol (hashed into one 16-bit counter per entry of
//! capacity; addresses sharing a counter share its count), so that a flood can be met by
//! evicting the oldest of them instead of refusing every newcomer (see the engine's flood
//! defence).

use super::index::{FlowIndex, Refused};
use crate::model::ForwardMethod;
use hashbrown::DefaultHashBuilder;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;

const WHEEL_SLOTS: usize = 1024;
const NIL: u32 = u32::MAX;
const UNLINKED: u16 = u16::MAX;

/// Flags of an entry.
pub mod flags {
    /// A persistence template, not a connection.
    pub const TEMPLATE: u8 = 0x01;
    /// Also indexed by its reply-side key (NAT).
    pub const REPLY_INDEXED: u8 = 0x02;
    /// Counted active on its server.
    pub const ACTIVE: u8 = 0x04;
    /// One-packet scheduling (UDP): released right after its packet is forwarded.
    pub const ONE_PACKET: u8 = 0x08;
    /// Its server is the appliance itself (IPVS's "Local"): packets go to the host.
    pub const LOCAL: u8 = 0x10;
    /// On the embryonic list (TCP or SCTP not yet established, UDP before a second
    /// datagram).
    pub const EMBRYONIC: u8 = 0x20;
    /// Full NAT: the client's source is replaced by a local address and port (the
    /// table's [`super::Local`] for the entry), which the reply-side key uses.
    pub const FULL_NAT: u8 = 0x40;
    /// A persistence template taking another worker's choice (the shared board): its
    /// server counts the template once, on the worker that chose.
    pub const TEMPLATE_COPY: u8 = 0x80;
}

/// The local end of a full-NAT (or SNAT) entry, and its PROXY protocol state; kept beside
/// the slab, only in a table made for full NAT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Local {
    pub addr: Addr16,
    pub port: u16,
    /// PROXY protocol towards the server: [`proxy::NONE`], `PENDING` or `SENT`, with
    /// [`proxy::V1`] for the text version (else version 2).
    pub proxy: u8,
    /// The PROXY header's length (its version's, for this connection's client and VIP),
    /// fixed when the entry is made: sequence numbers shift by it.
    pub proxy_len: u8,
    /// The sequence number of the client's first data byte (the header goes before it).
    pub proxy_seq: u32,
}

// The header's length sits in what was padding: a local end stays 24 bytes.
const _: () = assert!(std::mem::size_of::<Local>() == 24);

/// An application helper's state for a control connection (IPVS's `app_data` and
/// `out_seq`), kept beside the slab only in a table made for helpers: what the client asked
/// last, and how the server's sequence numbers shift where the helper changed the length
/// of a segment it rewrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppState {
    /// The helper's own mark (FTP: the passive mode asked for).
    pub mode: u8,
    /// The original sequence number of the last segment rewritten to another length.
    pub init_seq: u32,
    /// The shift of sequence numbers after `init_seq`, and at or before it.
    pub delta: i32,
    pub previous_delta: i32,
}

/// States of [`Local::proxy`].
pub mod proxy {
    pub const NONE: u8 = 0;
    /// Wanted, not yet put before the first data segment.
    pub const PENDING: u8 = 1;
    pub const SENT: u8 = 2;
    /// The state's bits; [`V1`] beside them marks the text version (synced with them).
    pub const STATE: u8 = 0x0f;
    pub const V1: u8 = 0x10;

    /// Whether the header has gone out.
    pub fn sent(proxy: u8) -> bool {
        proxy & STATE == SENT
    }
}

/// Addresses are stored as 16 bytes; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
pub type Addr16 = [u8; 16];

/// An address as one word (IPv4 mapped): the tables' keys are built from it.
#[inline]
pub fn addr_word(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => 0xffff_u128 << 32 | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A well-mixed 64-bit hash of two addresses and a word of small fields, the same on
/// every worker and every run (keys shared between workers: the persistence board's, the
/// fragments' owners).
#[inline]
pub fn mix_pair(a: &Addr16, b: &Addr16, tail: u64) -> u64 {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    let (a, b) = (u128::from_be_bytes(*a), u128::from_be_bytes(*b));
    let mut h = (a as u64) ^ ((a >> 64) as u64).rotate_left(21);
    h = h.wrapping_mul(GOLDEN) ^ (b as u64) ^ ((b >> 64) as u64).rotate_left(37);
    h = h.wrapping_mul(GOLDEN) ^ tail;
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 29)
}

/// An address as the table keeps it (IPv4 mapped).
#[inline]
pub fn addr16(a: IpAddr) -> Addr16 {
    addr_word(a).to_be_bytes()
}

/// An IPv4 address's octets as the table keeps them (::ffff:a.b.c.d): no byte swaps.
#[inline]
pub fn v4_mapped(octets: [u8; 4]) -> Addr16 {
    std::net::Ipv4Addr::from(octets).to_ipv6_mapped().octets()
}

/// The IPv4 address an [`Addr16`] maps, as its octets; None for IPv6.
#[inline]
pub fn mapped_v4(a: &Addr16) -> Option<[u8; 4]> {
    // (Not `Ipv6Addr::to_ipv4_mapped`: measured at 18 more instructions a NAT packet.)
    let (prefix, v4) = a.split_at(12);
    (prefix == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]).then(|| v4.try_into().ok())?
}

#[inline]
pub fn ip_of(a: &Addr16) -> IpAddr {
    // As one word: the IPv4-mapped prefix is a compare, not a 12-byte memcmp.
    let w = u128::from_be_bytes(*a);
    if w >> 32 == 0xffff {
        IpAddr::from((w as u32).to_be_bytes())
    } else {
        IpAddr::from(w.to_be_bytes())
    }
}

/// The client-side key: protocol, client endpoint, virtual endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InKey {
    pub proto: u8,
    pub caddr: Addr16,
    pub cport: u16,
    pub vaddr: Addr16,
    pub vport: u16,
}

/// The reply-side key (NAT): protocol, real-server endpoint, client endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutKey {
    pub proto: u8,
    pub daddr: Addr16,
    pub dport: u16,
    pub caddr: Addr16,
    pub cport: u16,
}

// Keys hash as three words (two addresses, protocol and ports) rather than field by field
// with slice length prefixes: the lookup is on every packet's path.
impl Hash for InKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.caddr));
        h.write_u128(u128::from_ne_bytes(self.vaddr));
        h.write_u64(ports_word(self.proto, self.cport, self.vport));
    }
}

impl Hash for OutKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.daddr));
        h.write_u128(u128::from_ne_bytes(self.caddr));
        h.write_u64(ports_word(self.proto, self.dport, self.cport));
    }
}

fn ports_word(proto: u8, a: u16, b: u16) -> u64 {
    u64::from(proto) << 32 | u64::from(a) << 16 | u64::from(b)
}

/// No next hop cached.
pub const NO_HOP: u16 = u16::MAX;

/// One connection (or persistence template). Laid out in order: what a packet of an
/// established connection reads or writes comes first ([`HOT_BYTES`], which a burst's
/// entry stage prefetches whole), the expiry and embryonic links and template bookkeeping
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Conn {
    pub caddr: Addr16,
    pub vaddr: Addr16,
    pub daddr: Addr16,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub service: u16,
    /// The encapsulation towards a tunnelled server.
    pub tunnel: crate::model::Tunnel,
    pub proto: u8,
    /// The protocol's state ([`super::TcpState`], [`super::SctpState`]) as a byte.
    pub state: u8,
    /// [`flags`] bits.
    pub flags: u8,
    pub method: ForwardMethod,
    /// Stable real-server id.
    pub dest: u32,
    /// Deadline in seconds.
    pub expires: u32,
    /// The engine's next-hop cache epoch the two hop indexes below belong to.
    pub hop_epoch: u32,
    /// Index of the cached next hop towards the real server, or [`NO_HOP`].
    pub hop_to_server: u16,
    /// Index of the cached next hop towards the client (NAT replies), or [`NO_HOP`].
    pub hop_to_client: u16,
    /// When the connection sync daemon was last told about it (seconds).
    pub synced_at: u32,
    /// The timer-wheel slot it is linked in, or [`FREE`] (every lookup reads it: hot).
    wheel_slot: u16,
    /// Client packets seen, up to [`crate::engine::IN_PKTS_KEPT`] (IPVS's in_pkts, which its
    /// drop_entry defence reads).
    pub in_pkts: u8,
    /// Templates: IPVS's ASSURED state: a connection they controlled got established (UDP:
    /// its server answered), or a master said so; a forced removal of a later attempt (a
    /// flood's eviction) leaves it in place. Listed and synced as the template's state.
    pub assured: bool,
    /// Slab index of the persistence template controlling this connection, or NIL.
    pub template: u32,
    /// Templates: connections they control.
    pub controls: u32,
    emb_next: u32,
    emb_prev: u32,
    wheel_next: u32,
    wheel_prev: u32,
}

/// The leading bytes of a [`Conn`] an established connection's packet touches: its keys,
/// what forwarding copies out ([`Conn::method`] .. [`Conn::dest`]), its deadline, cached
/// next hops, sync time, whether the entry is in use (which a lookup checks) and its
/// client packets.
pub const HOT_BYTES: usize = std::mem::offset_of!(Conn, in_pkts) + 1;

impl Conn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: InKey,
        daddr: Addr16,
        dport: u16,
        service: u16,
        dest: u32,
        method: ForwardMethod,
        flags: u8,
    ) -> Conn {
        Conn {
            caddr: key.caddr,
            vaddr: key.vaddr,
            daddr,
            cport: key.cport,
            vport: key.vport,
            dport,
            proto: key.proto,
            state: 0,
            flags,
            method,
            tunnel: crate::model::Tunnel::default(),
            service,
            dest,
            expires: 0,
            template: NIL,
            controls: 0,
            hop_epoch: 0,
            hop_to_server: NO_HOP,
            hop_to_client: NO_HOP,
            synced_at: 0,
            emb_next: NIL,
            emb_prev: NIL,
            wheel_next: NIL,
            wheel_prev: NIL,
            wheel_slot: UNLINKED,
            in_pkts: 0,
            assured: false,
        }
    }

    pub fn in_key(&self) -> InKey {
        InKey {
            proto: self.proto,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
        }
    }

    pub fn out_key(&self) -> OutKey {
        OutKey {
            proto: self.proto,
            daddr: self.daddr,
            dport: self.dport,
            caddr: self.caddr,
            cport: self.cport,
        }
    }

    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    pub fn template_id(&self) -> Option<ConnId> {
        (self.template != NIL).then_some(ConnId(self.template))
    }
}

/// A slab index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u32);

/// Why an entry was not inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// The table (or its index) is at capacity.
    Full,
    /// Its key is taken: the same flow, or (reply side) a connection through another VIP
    /// between the same client and server endpoints, which the server could not tell apart.
    Clash,
}

/// What an insertion knows of the client-side key's hash.
#[derive(Clone, Copy)]
enum InHash {
    Unknown,
    Known(u64),
    /// Known, and the key looked up under it and found absent.
    Absent(u64),
}

fn refused(why: Refused) -> InsertError {
    match why {
        Refused::Present => InsertError::Clash,
        Refused::Full => InsertError::Full,
    }
}

/// A free slab entry: its `wheel_slot` says so, its `wheel_next` links the free list (its
/// other fields are never read).
const FREE: u16 = u16::MAX - 1;

fn free_entry(next: u32) -> Conn {
    let key = InKey {
        proto: 0,
        caddr: [0; 16],
        cport: 0,
        vaddr: [0; 16],
        vport: 0,
    };
    Conn {
        wheel_next: next,
        wheel_slot: FREE,
        ..Conn::new(key, [0; 16], 0, 0, 0, ForwardMethod::Nat, 0)
    }
}

pub struct ConnTable {
    slots: Vec<Conn>,
    /// Local ends of full-NAT entries by slab index (empty in a table without full NAT).
    locals: Vec<Local>,
    /// Application helpers' states, by slot (empty unless made for helpers).
    app: Vec<AppState>,
    free_head: u32,
    len: usize,
    by_in: FlowIndex,
    by_out: FlowIndex,
    hasher: DefaultHashBuilder,
    wheel: Vec<u32>,
    /// The next second whose slot has not been detached for sweeping.
    wheel_now: u32,
    /// The rest of a detached slot list still to sweep.
    sweep: u32,
    /// Embryonic entries, oldest first.
    emb_head: u32,
    emb_tail: u32,
    emb_len: usize,
    /// Embryonic entries per client address, by hash (a power of two >= capacity); empty
    /// unless counted ([`ConnTable::with_source_counts`]).
    emb_sources: Vec<u16>,
    /// The oldest embryonic entry's hashes as its lines were asked for, for its removal.
    ahead: Ahead,
}

/// An entry's index hashes and SYN counter slot, worked out ahead of its removal
/// ([`ConnTable::prefetch_oldest_embryonic`]); `id` NIL: none. An entry's keys do not change
/// while it is in the table, and its removal takes these.
#[derive(Clone, Copy)]
struct Ahead {
    id: u32,
    in_hash: u64,
    out_hash: u64,
    source: usize,
}

impl Ahead {
    const NONE: Ahead = Ahead {
        id: NIL,
        in_hash: 0,
        out_hash: 0,
        source: 0,
    };
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnTable({}/{})", self.len, self.slots.len())
    }
}

impl ConnTable {
    /// A table for `capacity` entries (connections and templates), allocated now.
    pub fn new(capacity: usize, now: u32) -> ConnTable {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        // Read at random by every packet: on huge pages where the kernel has them.
        let slots = rvs_cpu::huge_page_vec(capacity, |i| {
            free_entry(if i + 1 < capacity { i as u32 + 1 } else { NIL })
        });
        ConnTable {
            slots,
            locals: Vec::new(),
            app: Vec::new(),
            free_head: 0,
            len: 0,
            by_in: FlowIndex::new(capacity),
            by_out: FlowIndex::new(capacity),
            hasher: DefaultHashBuilder::default(),
            wheel: vec![NIL; WHEEL_SLOTS],
            wheel_now: now,
            sweep: NIL,
            emb_head: NIL,
            emb_tail: NIL,
            emb_len: 0,
            emb_sources: Vec::new(),
            ahead: Ahead::NONE,
        }
    }

    /// A table that can hold full-NAT entries: room for a [`Local`] per entry.
    pub fn with_full_nat(mut self) -> ConnTable {
        self.locals = rvs_cpu::huge_page_vec(self.slots.len(), |_| Local::default());
        self
    }

    /// A table whose entries can carry an application helper's state ([`AppState`]).
    pub fn with_app_state(mut self) -> ConnTable {
        self.app = rvs_cpu::huge_page_vec(self.slots.len(), |_| AppState::default());
        self
    }

    /// An entry's helper state (fresh when the entry was made); None in a table without.
    #[inline]
    pub fn app_state(&self, id: ConnId) -> Option<&AppState> {
        self.app.get(id.0 as usize)
    }

    #[inline]
    pub fn app_state_mut(&mut self, id: ConnId) -> Option<&mut AppState> {
        self.app.get_mut(id.0 as usize)
    }

    /// A table that counts embryonic entries per client address, TCP, UDP and SCTP apart
    /// (for the per-source SYN and UDP limits): without it nothing is counted, and a SYN
    /// touches no counter.
    pub fn with_source_counts(mut self) -> ConnTable {
        self.emb_sources = rvs_cpu::huge_page_vec(self.slots.len().next_power_of_two(), |_| 0);
        self
    }

    /// Whether full-NAT entries can be inserted.
    pub fn has_full_nat(&self) -> bool {
        !self.locals.is_empty()
    }

    /// The local end of a full-NAT entry.
    #[inline]
    pub fn local(&self, id: ConnId) -> Option<&Local> {
        self.locals.get(id.0 as usize)
    }

    #[inline]
    pub fn local_mut(&mut self, id: ConnId) -> Option<&mut Local> {
        self.locals.get_mut(id.0 as usize)
    }

    /// An entry's reply-side key: towards its local end under full NAT.
    #[inline]
    fn reply_key(locals: &[Local], i: u32, c: &Conn) -> OutKey {
        let mut k = c.out_key();
        if c.flags & flags::FULL_NAT != 0 {
            if let Some(l) = locals.get(i as usize) {
                k.caddr = l.addr;
                k.cport = l.port;
            }
        }
        k
    }

    /// Embryonic entries now.
    pub fn embryonic_len(&self) -> usize {
        self.emb_len
    }

    /// Embryonic entries of protocol `proto` (TCP, UDP or SCTP) from one client address (and
    /// any sharing its counter); 0 when sources are not counted.
    pub fn embryonic_from(&self, caddr: &Addr16, proto: u8) -> u32 {
        let i = self.source_slot(caddr, proto);
        self.emb_sources.get(i).map_or(0, |&n| u32::from(n))
    }

    /// The counter slot of a client address's embryonic entries of `proto`: TCP, UDP and
    /// SCTP are counted apart (the address's slot differs by protocol); past the end (no
    /// slot) for other protocols, or when sources are not counted.
    #[inline]
    fn source_slot(&self, caddr: &Addr16, proto: u8) -> usize {
        if self.emb_sources.is_empty() {
            return usize::MAX;
        }
        let salt = match proto {
            rvs_wire::proto::TCP => 0,
            rvs_wire::proto::UDP => u128::MAX,
            rvs_wire::proto::SCTP => u128::MAX >> 1,
            _ => return usize::MAX,
        };
        // As one word (an array hashes as a slice: its length, then its bytes). The map's
        // hasher leaves its low bits poorly mixed for addresses a byte apart (half of 20
        // once shared a slot): the slot is taken from the top of a multiplied hash.
        let h = self
            .hash(&(u128::from_ne_bytes(*caddr) ^ salt))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let bits = self.emb_sources.len().trailing_zeros();
        (h >> (64 - bits).min(63)) as usize & (self.emb_sources.len() - 1)
    }

    /// The oldest embryonic entry, the first to go when SYNs crowd the table.
    pub fn oldest_embryonic(&self) -> Option<ConnId> {
        (self.emb_head != NIL).then_some(ConnId(self.emb_head))
    }

    /// Asks for what evicting the oldest embryonic entry will touch, one eviction ahead (in
    /// a SYN flood every new connection evicts one): the entry's index lines, its neighbours
    /// on the timer wheel, its source's SYN counter, and the entry after it, whose own lines
    /// the next call asks for (its keys are read here, from the entry brought in last time).
    /// Its hashes are kept for the removal.
    pub fn prefetch_oldest_embryonic(&mut self) {
        let id = self.emb_head;
        let Some(c) = self.get(ConnId(id)) else {
            return;
        };
        let in_hash = self.hash(&c.in_key());
        self.by_in.prefetch(in_hash);
        let mut out_hash = 0;
        if c.flags & flags::REPLY_INDEXED != 0 {
            out_hash = self.hash(&Self::reply_key(&self.locals, id, c));
            self.by_out.prefetch(out_hash);
        }
        for n in [c.wheel_next, c.wheel_prev, c.emb_next] {
            if let Some(e) = self.slots.get(n as usize) {
                rvs_cpu::prefetch_first(e, std::mem::size_of::<Conn>());
            }
        }
        let source = self.source_slot(&c.caddr, c.proto);
        if let Some(n) = self.emb_sources.get(source) {
            rvs_cpu::prefetch(n);
        }
        self.ahead = Ahead {
            id,
            in_hash,
            out_hash,
            source,
        };
    }

    /// Puts an entry at the end of the embryonic list (once).
    #[inline]
    pub fn mark_embryonic(&mut self, id: ConnId) {
        let tail = self.emb_tail;
        let Some(c) = self.get_mut(id) else { return };
        if c.flags & flags::EMBRYONIC != 0 {
            return;
        }
        c.flags |= flags::EMBRYONIC;
        c.emb_prev = tail;
        c.emb_next = NIL;
        let (caddr, proto) = (c.caddr, c.proto);
        match self.get_mut(ConnId(tail)) {
            Some(t) => t.emb_next = id.0,
            None => self.emb_head = id.0,
        }
        self.emb_tail = id.0;
        self.emb_len += 1;
        // (Per source and protocol: SYNs, SCTP INITs and new UDP flows.)
        let i = self.source_slot(&caddr, proto);
        if let Some(n) = self.emb_sources.get_mut(i) {
            *n = n.saturating_add(1);
        }
    }

    /// Takes an entry off the embryonic list (it is established, or leaves the table).
    pub fn clear_embryonic(&mut self, id: ConnId) {
        self.clear_embryonic_at(id, None);
    }

    /// As [`ConnTable::clear_embryonic`]; `source`: the address's counter slot if known.
    fn clear_embryonic_at(&mut self, id: ConnId, source: Option<usize>) {
        let Some(c) = self.get_mut(id) else { return };
        if c.flags & flags::EMBRYONIC == 0 {
            return;
        }
        c.flags &= !flags::EMBRYONIC;
        let (next, prev, caddr, proto) = (c.emb_next, c.emb_prev, c.caddr, c.proto);
        c.emb_next = NIL;
        c.emb_prev = NIL;
        match self.get_mut(ConnId(prev)) {
            Some(p) => p.emb_next = next,
            None => self.emb_head = next,
        }
        match self.get_mut(ConnId(next)) {
            Some(n) => n.emb_prev = prev,
            None => self.emb_tail = prev,
        }
        self.emb_len -= 1;
        let i = source.unwrap_or_else(|| self.source_slot(&caddr, proto));
        if let Some(n) = self.emb_sources.get_mut(i) {
            *n = n.saturating_sub(1);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes the table holds per entry of capacity: the slab entry plus both index tables.
    pub fn bytes_per_entry(&self) -> f64 {
        Self::bytes_per_entry_of(
            self.slots.len(),
            self.has_full_nat(),
            !self.emb_sources.is_empty(),
            !self.app.is_empty(),
        )
    }

    /// What [`ConnTable::bytes_per_entry`] will be for a table of `capacity` (made
    /// [`ConnTable::with_full_nat`] if `full_nat`, [`ConnTable::with_source_counts`] if
    /// `source_counts`, [`ConnTable::with_app_state`] if `app_state`), before it is made.
    pub fn bytes_per_entry_of(
        capacity: usize,
        full_nat: bool,
        source_counts: bool,
        app_state: bool,
    ) -> f64 {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        let locals = if full_nat { capacity } else { 0 };
        let apps = if app_state { capacity } else { 0 };
        let counters = if source_counts {
            capacity.next_power_of_two()
        } else {
            0
        };
        let total = std::mem::size_of::<Conn>() * capacity
            + std::mem::size_of::<Local>() * locals
            + std::mem::size_of::<AppState>() * apps
            + 2 * FlowIndex::bytes_for(capacity)
            + WHEEL_SLOTS * std::mem::size_of::<u32>()
            + counters * std::mem::size_of::<u16>();
        total as f64 / capacity as f64
    }

    fn hash<K: Hash>(&self, k: &K) -> u64 {
        self.hasher.hash_one(k)
    }

    #[inline]
    fn conn_at(slots: &[Conn], i: u32) -> Option<&Conn> {
        slots.get(i as usize).filter(|c| c.wheel_slot != FREE)
    }

    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        Self::conn_at(&self.slots, id.0)
    }

    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots
            .get_mut(id.0 as usize)
            .filter(|c| c.wheel_slot != FREE)
    }

    /// The hash a client-side lookup of `key` uses (computed once per packet by a burst's
    /// first stage).
    #[inline]
    pub fn hash_in(&self, key: &InKey) -> u64 {
        self.hash(key)
    }

    /// As [`ConnTable::hash_in`], for the reply side.
    #[inline]
    pub fn hash_out(&self, key: &OutKey) -> u64 {
        self.hash(key)
    }

    #[inline]
    pub fn lookup_in(&self, key: &InKey) -> Option<ConnId> {
        self.lookup_in_hashed(key, self.hash(key))
    }

    /// As [`ConnTable::lookup_in`] with the key's hash already known.
    #[inline]
    pub fn lookup_in_hashed(&self, key: &InKey, h: u64) -> Option<ConnId> {
        self.by_in
            .find(h, |i| Self::holds_in(&self.slots, i, key))
            .map(ConnId)
    }

    /// Whether entry `i` is in use under client-side key `key`.
    #[inline]
    fn holds_in(slots: &[Conn], i: u32, key: &InKey) -> bool {
        Self::conn_at(slots, i).is_some_and(|c| c.in_key() == *key)
    }

    /// Whether entry `i` is in use under reply-side key `key`.
    #[inline]
    fn holds_out(slots: &[Conn], locals: &[Local], i: u32, key: &OutKey) -> bool {
        Self::conn_at(slots, i).is_some_and(|c| Self::reply_key(locals, i, c) == *key)
    }

    #[inline]
    pub fn lookup_out(&self, key: &OutKey) -> Option<ConnId> {
        self.lookup_out_hashed(key, self.hash(key))
    }

    /// As [`ConnTable::lookup_out`] with the key's hash already known.
    #[inline]
    pub fn lookup_out_hashed(&self, key: &OutKey, h: u64) -> Option<ConnId> {
        self.by_out
            .find(h, |i| Self::holds_out(&self.slots, &self.locals, i, key))
            .map(ConnId)
    }

    /// Brings the index line a client-side lookup under hash `h` will read into cache (a
    /// burst asks for all its packets' lines before it looks any up).
    #[inline]
    pub fn prefetch_in(&self, h: u64) {
        self.by_in.prefetch(h);
    }

    /// As [`ConnTable::prefetch_in`], for the reply side.
    #[inline]
    pub fn prefetch_out(&self, h: u64) {
        self.by_out.prefetch(h);
    }

    /// Brings the entries a lookup under `h` will compare into cache (their index line
    /// prefetched before): the second dependent miss of a lookup, overlapped over a burst.
    #[inline]
    pub fn prefetch_entries(&self, reply_side: bool, h: u64) {
        let index = if reply_side {
            &self.by_out
        } else {
            &self.by_in
        };
        index.candidates(h, |id| {
            if let Some(c) = self.slots.get(id as usize) {
                rvs_cpu::prefetch_first(c, HOT_BYTES);
            }
        });
    }

    /// Inserts an entry expiring at `expires`. Refused when the table is full or the key
    /// (either of them) is already present.
    #[inline]
    pub fn insert(&mut self, conn: Conn, expires: u32) -> Result<ConnId, InsertError> {
        self.insert_with_local(&conn, None, expires, InHash::Unknown)
    }

    /// As [`ConnTable::insert`], with the client-side key's hash a burst's first stage
    /// computed ([`ConnTable::hash_in`] of `conn.in_key()`).
    #[inline]
    pub fn insert_hashed(
        &mut self,
        conn: &Conn,
        in_hash: u64,
        expires: u32,
    ) -> Result<ConnId, InsertError> {
        debug_assert_eq!(in_hash, self.hash(&conn.in_key()));
        self.insert_with_local(conn, None, expires, InHash::Known(in_hash))
    }

    /// As [`ConnTable::insert_hashed`] for a client-side key the caller looked up under
    /// `in_hash` and found absent, inserting nothing since: that index is not checked for
    /// a clash again (the reply-side one is).
    #[inline]
    pub fn insert_absent(
        &mut self,
        conn: &Conn,
        in_hash: u64,
        expires: u32,
    ) -> Result<ConnId, InsertError> {
        debug_assert_eq!(in_hash, self.hash(&conn.in_key()));
        debug_assert!(self.lookup_in_hashed(&conn.in_key(), in_hash).is_none());
        self.insert_with_local(conn, None, expires, InHash::Absent(in_hash))
    }

    /// As [`ConnTable::insert`], for a full-NAT entry with its local end (the flag is set
    /// here; refused as full by a table made without full NAT).
    pub fn insert_full_nat(
        &mut self,
        conn: &Conn,
        local: Local,
        expires: u32,
    ) -> Result<ConnId, InsertError> {
        if !self.has_full_nat() {
            return Err(InsertError::Full);
        }
        self.insert_with_local(conn, Some(local), expires, InHash::Unknown)
    }

    /// Places `conn` in the free slot at the head of the free list; with `local`, a
    /// full-NAT entry (its flags set here), without, never one.
    fn insert_with_local(
        &mut self,
        conn: &Conn,
        local: Option<Local>,
        expires: u32,
        in_hash: InHash,
    ) -> Result<ConnId, InsertError> {
        if self.free_head == NIL {
            return Err(InsertError::Full);
        }
        let id = self.free_head;
        let mut out_key = conn.out_key();
        let conn_flags = if let Some(l) = &local {
            out_key.caddr = l.addr;
            out_key.cport = l.port;
            conn.flags | flags::FULL_NAT | flags::REPLY_INDEXED
        } else {
            conn.flags & !flags::FULL_NAT
        };
        let in_key = conn.in_key();
        let (in_hash, known_absent) = match in_hash {
            InHash::Unknown => (self.hash(&in_key), false),
            InHash::Known(h) => (h, false),
            InHash::Absent(h) => (h, true),
        };
        let indexed_out = conn_flags & flags::REPLY_INDEXED != 0;
        let next = match self.slots.get(id as usize) {
            Some(c) if c.wheel_slot == FREE => c.wheel_next,
            _ => return Err(InsertError::Full),
        };
        // Each index checks for the key and places the entry in one pass (entry `id` is
        // free, so it matches no key meanwhile).
        let slots = &self.slots;
        if known_absent {
            self.by_in.insert_absent(in_hash, id).map_err(refused)?;
        } else {
            self.by_in
                .insert_unique(in_hash, id, |i| Self::holds_in(slots, i, &in_key))
                .map_err(refused)?;
        }
        if indexed_out {
            let out_hash = self.hash(&out_key);
            let locals = &self.locals;
            let placed = self.by_out.insert_unique(out_hash, id, |i| {
                Self::holds_out(slots, locals, i, &out_key)
            });
            if let Err(why) = placed {
                self.by_in.remove(in_hash, id);
                return Err(refused(why));
            }
        }
        self.free_head = next;
        let expires = expires.max(self.wheel_now);
        if let Some(slot) = self.slots.get_mut(id as usize) {
            *slot = *conn;
            slot.flags = conn_flags & !flags::EMBRYONIC;
            slot.emb_next = NIL;
            slot.emb_prev = NIL;
            slot.expires = expires;
            slot.wheel_next = NIL;
            slot.wheel_prev = NIL;
            slot.wheel_slot = UNLINKED;
        }
        if let (Some(l), Some(slot)) = (local, self.locals.get_mut(id as usize)) {
            *slot = l;
        }
        if let Some(state) = self.app.get_mut(id as usize) {
            *state = AppState::default();
        }
        self.wheel_link(id);
        self.len += 1;
        Ok(ConnId(id))
    }

    /// Removes an entry and returns it.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.remove_with(id, |c| *c)
    }

    /// Removes an entry and returns what `f` reads of it (no copy of the whole entry).
    #[inline]
    pub fn remove_with<R>(&mut self, id: ConnId, f: impl FnOnce(&Conn) -> R) -> Option<R> {
        let ahead = if self.ahead.id == id.0 {
            Some(std::mem::replace(&mut self.ahead, Ahead::NONE))
        } else {
            None
        };
        self.clear_embryonic_at(id, ahead.map(|a| a.source));
        let conn = self.get(id)?;
        let (taken, reply_indexed) = (f(conn), conn.flags & flags::REPLY_INDEXED != 0);
        let in_hash = match ahead {
            Some(a) => a.in_hash,
            None => self.hash(&conn.in_key()),
        };
        let out_hash = match ahead {
            Some(a) => a.out_hash,
            None if reply_indexed => self.hash(&Self::reply_key(&self.locals, id.0, conn)),
            None => 0,
        };
        self.wheel_unlink(id.0);
        self.by_in.remove(in_hash, id.0);
        if reply_indexed {
            self.by_out.remove(out_hash, id.0);
        }
        // Freed by its two fields (a free entry's others are never read).
        if let Some(slot) = self.slots.get_mut(id.0 as usize) {
            slot.wheel_slot = FREE;
            slot.wheel_next = self.free_head;
            self.free_head = id.0;
            self.len -= 1;
        }
        Some(taken)
    }

    /// One more client packet on a live entry whose count is below
    /// [`crate::engine::IN_PKTS_KEPT`] (the caller read it).
    #[inline]
    pub fn count_in_packet(&mut self, id: ConnId) {
        if let Some(c) = self.slots.get_mut(id.0 as usize) {
            c.in_pkts = c.in_pkts.wrapping_add(1);
        }
    }

    /// A packet on an entry: its deadline moved (as [`ConnTable::set_expires`]) and, with
    /// `client`, one more client packet counted (the caller saw fewer than
    /// [`crate::engine::IN_PKTS_KEPT`]), the entry looked up once for both.
    #[inline]
    pub fn touch(&mut self, id: ConnId, expires: u32, client: bool) {
        let now = self.wheel_now;
        let Some(c) = self.get_mut(id) else { return };
        if client {
            c.in_pkts = c.in_pkts.wrapping_add(1);
        }
        let earlier = expires < c.expires;
        c.expires = expires.max(now);
        if earlier {
            self.relink(id.0);
        }
    }

    /// Moves an entry's deadline. A later deadline is applied lazily (the entry stays in its
    /// slot and is relinked when the slot comes round); an earlier one relinks now.
    #[inline]
    pub fn set_expires(&mut self, id: ConnId, expires: u32) {
        let now = self.wheel_now;
        let Some(c) = self.get_mut(id) else { return };
        let earlier = expires < c.expires;
        c.expires = expires.max(now);
        if earlier {
            self.relink(id.0);
        }
    }

    /// An entry's deadline moved earlier: into the slot of its new deadline now.
    #[inline(never)]
    fn relink(&mut self, id: u32) {
        self.wheel_unlink(id);
        self.wheel_link(id);
    }

    fn wheel_link(&mut self, id: u32) {
        let Some(c) = self.get(ConnId(id)) else {
            return;
        };
        let slot = c.expires as usize % WHEEL_SLOTS;
        let Some(&head) = self.wheel.get(slot) else {
            return;
        };
        if let Some(h) = self.get_mut(ConnId(head)) {
            h.wheel_prev = id;
        }
        if let Some(c) = self.get_mut(ConnId(id)) {
            c.wheel_next = head;
            c.wheel_prev = NIL;
            c.wheel_slot = slot as u16;
        }
        if let Some(h) = self.wheel.get_mut(slot) {
            *h = id;
        }
    }

    /// Takes an entry out of its slot list, or out of the chain being swept.
    fn wheel_unlink(&mut self, id: u32) {
        let Some(c) = self.get(ConnId(id)) else {
            return;
        };
        if c.wheel_slot == UNLINKED {
            return;
        }
        let (next, prev, slot) = (c.wheel_next, c.wheel_prev, usize::from(c.wheel_slot));
        if prev != NIL {
            if let Some(p) = self.get_mut(ConnId(prev)) {
                p.wheel_next = next;
            }
        } else if let Some(h) = self.wheel.get_mut(slot).filter(|h| **h == id) {
            *h = next;
        } else if self.sweep == id {
            self.sweep = next;
        }
        if let Some(n) = self.get_mut(ConnId(next)) {
            n.wheel_prev = prev;
        }
        if let Some(c) = self.get_mut(ConnId(id)) {
            c.wheel_next = NIL;
            c.wheel_prev = NIL;
            c.wheel_slot = UNLINKED;
        }
    }

    /// Expires what is due up to `now`, visiting at most `budget` entries. Each due entry
    /// goes to `on_expire`, which may return a later deadline to keep it (a template that
    /// still controls connections); otherwise it is removed. Entries whose deadline moved
    /// on are relinked. Returns how many entries were visited.
    pub fn expire(
        &mut self,
        now: u32,
        budget: usize,
        on_expire: impl FnMut(ConnId, &Conn) -> Option<u32>,
    ) -> usize {
        self.expire_watching(now, budget, on_expire, |_, _| {})
    }

    /// [`ConnTable::expire`], and in a table with helper state each entry found alive
    /// (its deadline moved on since it was linked) goes to `on_alive` with its state.
    pub fn expire_watching(
        &mut self,
        now: u32,
        mut budget: usize,
        mut on_expire: impl FnMut(ConnId, &Conn) -> Option<u32>,
        mut on_alive: impl FnMut(&Conn, &AppState),
    ) -> usize {
        let mut visited = 0;
        loop {
            if self.sweep == NIL {
                if self.wheel_now > now {
                    break;
                }
                // Detach the slot of this second; it is swept across calls if need be.
                let slot = self.wheel_now as usize % WHEEL_SLOTS;
                self.sweep = self
                    .wheel
                    .get_mut(slot)
                    .map_or(NIL, |h| std::mem::replace(h, NIL));
                self.wheel_now += 1;
                continue;
            }
            if budget == 0 {
                break;
            }
            let id = self.sweep;
            self.wheel_unlink(id);
            budget -= 1;
            visited += 1;
            let Some(conn) = self.get(ConnId(id)).copied() else {
                continue;
            };
            if conn.expires > now {
                self.wheel_link(id);
                if let Some(app) = self.app.get(id as usize) {
                    on_alive(&conn, app);
                }
                continue;
            }
            match on_expire(ConnId(id), &conn) {
                Some(later) if later > now => {
                    if let Some(c) = self.get_mut(ConnId(id)) {
                        c.expires = later;
                    }
                    self.wheel_link(id);
                }
                _ => {
                    self.remove(ConnId(id));
                }
            }
        }
        visited
    }

    /// Copies the live entries among slots `from..from + max_slots` into `out` while it has
    /// room (it never grows); gives the slot to continue from.
    pub fn copy_live(&self, from: usize, max_slots: usize, out: &mut Vec<Conn>) -> usize {
        let end = from.saturating_add(max_slots).min(self.slots.len());
        for i in from..end {
            let Some(c) = self.slots.get(i) else {
                return i;
            };
            if c.wheel_slot == FREE {
                continue;
            }
            if out.len() == out.capacity() {
                return i;
            }
            out.push(*c);
        }
        end.max(from)
    }

    /// The ids of live entries among slots `from..from + max_slots` that `pick` takes, into
    /// `out` while it has room (it never grows); gives the slot to continue from (the
    /// table's capacity once every slot was seen).
    pub fn select_live(
        &self,
        from: usize,
        max_slots: usize,
        out: &mut Vec<ConnId>,
        pick: impl Fn(&Conn) -> bool,
    ) -> usize {
        let end = from.saturating_add(max_slots).min(self.slots.len());
        for i in from..end {
            let Some(c) = self.slots.get(i) else {
                return i;
            };
            if c.wheel_slot == FREE || !pick(c) {
                continue;
            }
            if out.len() == out.capacity() {
                return i;
            }
            out.push(ConnId(i as u32));
        }
        end.max(from)
    }

    /// All entries (console, tests): not for the data path.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| c.wheel_slot != FREE)
            .map(|(i, c)| (ConnId(i as u32), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Addresses keep their family through the table's 16-byte form, as IPv4-mapped
        /// IPv6 does (an IPv6 address of that form reads back as IPv4, as before).
        #[test]
        fn addresses_round_trip_through_the_table_form(v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>()) {
            let a = IpAddr::from(v4);
            prop_assert_eq!(addr16(a), std::net::Ipv4Addr::from(v4).to_ipv6_mapped().octets());
            prop_assert_eq!(ip_of(&addr16(a)), a);
            let b = std::net::Ipv6Addr::from(v6);
            let expected = b.to_ipv4_mapped().map_or(IpAddr::V6(b), IpAddr::V4);
            prop_assert_eq!(ip_of(&addr16(IpAddr::V6(b))), expected);
        }
    }

    #[test]
    fn address_words_map_ipv4_as_ipv6_does() {
        for a in ["10.1.2.3", "255.255.255.255", "0.0.0.0"] {
            let v4: std::net::Ipv4Addr = a.parse().unwrap();
            assert_eq!(
                addr_word(IpAddr::V4(v4)),
                u128::from_be_bytes(addr16(IpAddr::V4(v4)))
            );
            assert_eq!(
                addr_word(IpAddr::V4(v4)),
                addr_word(IpAddr::V6(v4.to_ipv6_mapped()))
            );
        }
        let v6: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
        assert_eq!(addr_word(IpAddr::V6(v6)), u128::from(v6));
    }

    fn key(client: u32, port: u16) -> InKey {
        InKey {
            proto: 6,
            caddr: addr16(IpAddr::from(client.to_be_bytes())),
            cport: port,
            vaddr: addr16(IpAddr::from([192, 168, 1, 100])),
            vport: 80,
        }
    }

    fn nat(k: InKey, rip: u8) -> Conn {
        Conn::new(
            k,
            addr16(IpAddr::from([10, 0, 0, rip])),
            8080,
            0,
            u32::from(rip),
            ForwardMethod::Nat,
            flags::REPLY_INDEXED,
        )
    }

    #[test]
    fn copy_live_walks_a_bounded_slice_into_a_buffer_that_never_grows() {
        let mut t = ConnTable::new(1000, 0);
        for c in 0..600u32 {
            t.insert(nat(key(c, 1000), 2), 100).unwrap();
        }
        let mut out = Vec::with_capacity(50);
        let (mut at, mut total, mut calls) = (0, 0, 0);
        while at < t.capacity() {
            let next = t.copy_live(at, 128, &mut out);
            assert!(next > at || out.len() == out.capacity());
            assert!(next - at <= 128, "at most 128 slots a call");
            assert_eq!(out.capacity(), 50, "the lent buffer never grows");
            at = next;
            total += out.len();
            out.clear();
            calls += 1;
        }
        assert_eq!(total, 600);
        assert!(calls >= 1000 / 128, "{calls}");
    }

    #[test]
    fn insert_lookup_both_ways_and_remove() {
        let mut t = ConnTable::new(4, 0);
        let k = key(0x0a00_0001, 1234);
        let id = t.insert(nat(k, 7), 60).unwrap();
        assert_eq!(t.lookup_in(&k), Some(id));
        let out = t.get(id).unwrap().out_key();
        assert_eq!(out.dport, 8080);
        assert_eq!(t.lookup_out(&out), Some(id));
        assert_eq!(
            ip_of(&t.get(id).unwrap().daddr),
            IpAddr::from([10, 0, 0, 7])
        );
        assert_eq!(
            t.insert(nat(k, 8), 60),
            Err(InsertError::Clash),
            "duplicate key refused"
        );
        let removed = t.remove(id).unwrap();
        assert_eq!(removed.dest, 7);
        assert_eq!(
            (t.lookup_in(&k), t.lookup_out(&out), t.len()),
            (None, None, 0)
        );
    }

    #[test]
    fn a_full_table_refuses_new_entries_and_keeps_old_ones() {
        let mut t = ConnTable::new(3, 0);
        let ids: Vec<_> = (0..3)
            .map(|i| t.insert(nat(key(i, 1), 1), 100).unwrap())
            .collect();
        assert_eq!(t.insert(nat(key(9, 1), 1), 100), Err(InsertError::Full));
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(t.lookup_in(&key(i as u32, 1)), Some(*id));
        }
        t.remove(ids[1]);
        assert!(
            t.insert(nat(key(9, 1), 1), 100).is_ok(),
            "a freed slot is reused"
        );
    }

    #[test]
    fn expiry_follows_deadlines_moved_lazily() {
        let mut t = ConnTable::new(16, 0);
        let a = t.insert(nat(key(1, 1), 1), 10).unwrap();
        let b = t.insert(nat(key(2, 1), 1), 10).unwrap();
        t.set_expires(a, 2000); // beyond one wheel turn
        let mut gone = Vec::new();
        t.expire(10, 100, |id, _| {
            gone.push(id);
            None
        });
        assert_eq!(gone, vec![b]);
        assert!(t.get(a).is_some());
        t.expire(1999, 100, |id, _| {
            gone.push(id);
            None
        });
        assert_eq!(gone.len(), 1, "a is not due before 2000");
        t.expire(2000, 100, |id, _| {
            gone.push(id);
            None
        });
        assert_eq!(gone, vec![b, a]);
        assert!(t.is_empty());
    }

    #[test]
    fn budget_bounds_the_work_and_the_sweep_resumes() {
        let mut t = ConnTable::new(1000, 0);
        for i in 0..1000 {
            t.insert(nat(key(i, 1), 1), 5).unwrap();
        }
        let mut expired = 0;
        let mut calls = 0;
        while !t.is_empty() {
            let v = t.expire(5, 64, |_, _| {
                expired += 1;
                None
            });
            assert!(v <= 64);
            calls += 1;
            assert!(calls < 100);
        }
        assert_eq!(expired, 1000);
        assert!(calls >= 1000 / 64);
    }

    #[test]
    fn a_kept_entry_gets_its_new_deadline_and_earlier_deadlines_relink() {
        let mut t = ConnTable::new(4, 0);
        let tpl = t.insert(nat(key(1, 0), 1), 30).unwrap();
        let mut seen = 0;
        t.expire(30, 10, |_, _| {
            seen += 1;
            Some(90)
        });
        assert_eq!((seen, t.get(tpl).unwrap().expires), (1, 90));
        t.set_expires(tpl, 40);
        t.expire(40, 10, |_, _| None);
        assert!(t.is_empty());
    }

    /// Everything an established connection's packet reads or writes lies in the prefetched
    /// head of the entry; the fields only expiry, the SYN defence and templates use do not.
    #[test]
    fn the_per_packet_fields_lead_the_entry() {
        use std::mem::{offset_of, size_of_val};
        let c = Conn::new(key(1, 1000), [0; 16], 80, 0, 0, ForwardMethod::Nat, 0);
        let ends = [
            offset_of!(Conn, caddr) + size_of_val(&c.caddr),
            offset_of!(Conn, vaddr) + size_of_val(&c.vaddr),
            offset_of!(Conn, daddr) + size_of_val(&c.daddr),
            offset_of!(Conn, cport) + 2,
            offset_of!(Conn, vport) + 2,
            offset_of!(Conn, dport) + 2,
            offset_of!(Conn, service) + 2,
            offset_of!(Conn, tunnel) + size_of_val(&c.tunnel),
            offset_of!(Conn, proto) + 1,
            offset_of!(Conn, state) + 1,
            offset_of!(Conn, flags) + 1,
            offset_of!(Conn, method) + 1,
            offset_of!(Conn, dest) + 4,
            offset_of!(Conn, expires) + 4,
            offset_of!(Conn, hop_epoch) + 4,
            offset_of!(Conn, hop_to_server) + 2,
            offset_of!(Conn, hop_to_client) + 2,
            offset_of!(Conn, synced_at) + 4,
            offset_of!(Conn, wheel_slot) + size_of_val(&c.wheel_slot),
            offset_of!(Conn, in_pkts) + 1,
        ];
        assert_eq!(ends.into_iter().max(), Some(HOT_BYTES));
        for cold in [
            offset_of!(Conn, template),
            offset_of!(Conn, controls),
            offset_of!(Conn, emb_next),
            offset_of!(Conn, emb_prev),
            offset_of!(Conn, wheel_next),
            offset_of!(Conn, wheel_prev),
        ] {
            assert!(cold >= HOT_BYTES);
        }
    }

    /// The target is 10 M connections in 1.5 GB: 150 bytes per entry of capacity.
    #[test]
    fn memory_per_connection_is_within_144_bytes() {
        let t = ConnTable::new(1 << 20, 0);
        let per = t.bytes_per_entry();
        assert_eq!(
            per,
            ConnTable::bytes_per_entry_of(1 << 20, false, false, false)
        );
        let full = ConnTable::new(1000, 0).with_full_nat();
        assert_eq!(
            full.bytes_per_entry(),
            ConnTable::bytes_per_entry_of(1000, true, false, false)
        );
        // A per-source SYN limit's counters: two bytes a power of two of entries.
        let counted = ConnTable::new(1000, 0).with_source_counts();
        assert_eq!(
            counted.bytes_per_entry(),
            ConnTable::bytes_per_entry_of(1000, false, true, false)
        );
        let more = counted.bytes_per_entry() - ConnTable::new(1000, 0).bytes_per_entry();
        assert!((more - 1024.0 * 2.0 / 1000.0).abs() < 1e-9, "{more}");
        println!(
            "conn table: {} bytes per Conn, {per:.1} bytes per entry of capacity",
            std::mem::size_of::<Conn>()
        );
        assert!(per <= 144.0, "{per} bytes per connection");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        Touch(u8, u32),
        Expire(u32),
        MarkEmbryonic(u8),
        ClearEmbryonic(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), 1u32..3000).prop_map(|(k, t)| Op::Insert(k, t)),
            any::<u8>().prop_map(Op::Remove),
            (any::<u8>(), 1u32..3000).prop_map(|(k, t)| Op::Touch(k, t)),
            (1u32..400).prop_map(Op::Expire),
            any::<u8>().prop_map(Op::MarkEmbryonic),
            any::<u8>().prop_map(Op::ClearEmbryonic),
        ]
    }

    proptest! {
        /// The table agrees with a plain model under any mix of operations: lookups find
        /// exactly the live entries, both indexes agree, and an entry expires exactly
        /// when its deadline has passed.
        #[test]
        fn table_matches_a_model(
            ops in proptest::collection::vec(op(), 1..300),
            counted in any::<bool>(),
        ) {
            let mut t = ConnTable::new(64, 0);
            if counted {
                t = t.with_source_counts();
            }
            let mut model: HashMap<u8, (ConnId, u32)> = HashMap::new();
            // Embryonic entries in the order they were marked.
            let mut embryonic: Vec<u8> = Vec::new();
            let mut now = 0u32;
            for op in ops {
                // A hint in every state the table passes through: it changes nothing.
                t.prefetch_oldest_embryonic();
                match op {
                    Op::Insert(k, ttl) => {
                        // Odd keys are UDP flows: counted apart from TCP's.
                        let mut ik = key(u32::from(k), 1);
                        ik.proto = if k % 2 == 1 { 17 } else { 6 };
                        let r = t.insert(nat(ik, k), now + ttl);
                        match (model.contains_key(&k), model.len() >= 64, r) {
                            (true, _, Err(_)) | (false, true, Err(_)) => {}
                            (false, false, Ok(id)) => { model.insert(k, (id, now + ttl)); }
                            other => prop_assert!(false, "insert {k}: {other:?}"),
                        }
                    }
                    Op::Remove(k) => {
                        if let Some((id, _)) = model.remove(&k) {
                            prop_assert!(t.remove(id).is_some());
                        }
                    }
                    Op::MarkEmbryonic(k) => {
                        if let Some((id, _)) = model.get(&k) {
                            t.mark_embryonic(*id);
                            if !embryonic.contains(&k) {
                                embryonic.push(k);
                            }
                        }
                    }
                    Op::ClearEmbryonic(k) => {
                        if let Some((id, _)) = model.get(&k) {
                            t.clear_embryonic(*id);
                            embryonic.retain(|&e| e != k);
                        }
                    }
                    Op::Touch(k, ttl) => {
                        if let Some((id, deadline)) = model.get_mut(&k) {
                            t.set_expires(*id, now + ttl);
                            *deadline = now + ttl;
                        }
                    }
                    Op::Expire(dt) => {
                        now += dt;
                        let mut gone = Vec::new();
                        t.expire(now, usize::MAX, |id, c| { gone.push((id, c.expires)); None });
                        for (id, deadline) in gone {
                            prop_assert!(deadline <= now);
                            let k = model.iter().find(|(_, (i, _))| *i == id).map(|(k, _)| *k);
                            prop_assert!(k.is_some(), "expired an unknown entry");
                            model.remove(&k.unwrap());
                        }
                        for (_, deadline) in model.values() {
                            prop_assert!(*deadline > now, "an entry past its deadline survived");
                        }
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                embryonic.retain(|k| model.contains_key(k));
                prop_assert_eq!(t.embryonic_len(), embryonic.len());
                prop_assert_eq!(
                    t.oldest_embryonic(),
                    embryonic.first().map(|k| model[k].0)
                );
                // Each key is a client address of its own: its counter holds at least it,
                // and all the counters hold exactly the embryonic entries (none uncounted).
                for k in &embryonic {
                    let c = t.get(model[k].0).unwrap();
                    prop_assert_eq!(t.embryonic_from(&c.caddr, c.proto) >= 1, counted);
                }
                let held: usize = t.emb_sources.iter().map(|&n| usize::from(n)).sum();
                prop_assert_eq!(held, if counted { embryonic.len() } else { 0 });
                // No index keeps an entry that was removed (a removal under the wrong
                // hash would leave it behind, unseen by lookups).
                prop_assert_eq!(t.by_in.occupied(), model.len());
                prop_assert_eq!(t.by_out.occupied(), model.len());
                for (k, (id, _)) in &model {
                    let mut ik = key(u32::from(*k), 1);
                    ik.proto = if k % 2 == 1 { 17 } else { 6 };
                    prop_assert_eq!(t.lookup_in(&ik), Some(*id));
                    let ok = t.get(*id).unwrap().out_key();
                    prop_assert_eq!(t.lookup_out(&ok), Some(*id));
                }
            }
        }
    }
}
