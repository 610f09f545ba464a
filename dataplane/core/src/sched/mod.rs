//! Real-server schedulers with Linux IPVS semantics (see `shared/reference/ipvs-semantics.md`).
//!
//! The control side builds a [`SchedTable`] for a service's server list (wrr constants, sh/dh
//! buckets, the Maglev table) into the snapshot; the data plane calls [`pick`] per new
//! connection with the worker's own [`SchedState`] (rr/wrr cursors, lblc/lblcr caches) and
//! the shared load counters ([`DestLoad`]).
//!
//! The list is in IPVS order: newest server first. "Skip" means not a candidate:
//! overloaded, or weight 0.
//!
//! With several workers, each keeps its own rr/wrr cursor, so the sequence of choices is
//! the kernel's per worker, not across workers; lblc's and lblcr's caches are the workers'
//! shared board; load-based schedulers read the shared counters and agree.

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod load;
mod mh;
mod nq;
mod ovf;
mod pending;
mod rr;
mod sed;
mod sh;
mod wlc;
mod wrr;

pub use lblc::LblcCache;
pub use lblcr::{LblcrCache, SharedSet, SHARED_MEMBERS};
pub use load::{DestLoad, Thresholds};
pub use mh::{hsiphash_u32, MH_PRIMES};
pub use pending::PendingLoads;
pub use wrr::WrrConsts;

use crate::conn::{ip_of, Addr16};
pub use crate::model::RealServer;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Which scheduler, with its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Fo,
    Ovf,
    /// Source hashing: `fallback` (sh-fallback), `port` (sh-port), table of 2^bits buckets.
    Sh {
        fallback: bool,
        port: bool,
        bits: u8,
    },
    /// Destination hashing over 2^bits buckets.
    Dh {
        bits: u8,
    },
    Lblc,
    Lblcr,
    /// Maglev hashing: mh-fallback, mh-port, prime table size.
    Mh {
        fallback: bool,
        port: bool,
        size: u32,
    },
}

impl SchedKind {
    pub const NAMES: [&'static str; 13] = [
        "rr", "wrr", "lc", "wlc", "sed", "nq", "fo", "ovf", "sh", "dh", "lblc", "lblcr", "mh",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Fo => "fo",
            SchedKind::Ovf => "ovf",
            SchedKind::Sh { .. } => "sh",
            SchedKind::Dh { .. } => "dh",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Mh { .. } => "mh",
        }
    }

    /// The scheduler by name with default flags (ipvsadm's `-s NAME`).
    pub fn by_name(name: &str) -> Option<SchedKind> {
        Some(match name {
            "rr" => SchedKind::Rr,
            "wrr" => SchedKind::Wrr,
            "lc" => SchedKind::Lc,
            "wlc" => SchedKind::Wlc,
            "sed" => SchedKind::Sed,
            "nq" => SchedKind::Nq,
            "fo" => SchedKind::Fo,
            "ovf" => SchedKind::Ovf,
            "sh" => SchedKind::Sh {
                fallback: false,
                port: false,
                bits: 8,
            },
            "dh" => SchedKind::Dh { bits: 8 },
            "lblc" => SchedKind::Lblc,
            "lblcr" => SchedKind::Lblcr,
            "mh" => SchedKind::Mh {
                fallback: false,
                port: false,
                size: mh::DEFAULT_SIZE,
            },
            _ => return None,
        })
    }

    /// Applies ipvsadm `-b` flags (`sh-fallback,sh-port`, `mh-fallback,mh-port`; the
    /// generic `flag-1`, `flag-2` too). Flags of another scheduler are an error.
    pub fn with_flags(mut self, flags: &str) -> Result<SchedKind, String> {
        for flag in flags.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match (&mut self, flag) {
                (SchedKind::Sh { fallback, .. }, "sh-fallback" | "flag-1") => *fallback = true,
                (SchedKind::Sh { port, .. }, "sh-port" | "flag-2") => *port = true,
                (SchedKind::Mh { fallback, .. }, "mh-fallback" | "flag-1") => *fallback = true,
                (SchedKind::Mh { port, .. }, "mh-port" | "flag-2") => *port = true,
                (_, "flag-3") => {}
                (k, f) => {
                    return Err(format!(
                        "scheduler flag {f:?} does not apply to {}",
                        k.name()
                    ))
                }
            }
        }
        Ok(self)
    }

    /// The `-b` flags as ipvsadm prints them.
    pub fn flags(&self) -> Vec<&'static str> {
        match *self {
            SchedKind::Sh { fallback, port, .. } => [(fallback, "sh-fallback"), (port, "sh-port")]
                .into_iter()
                .filter_map(|(on, n)| on.then_some(n))
                .collect(),
            SchedKind::Mh { fallback, port, .. } => [(fallback, "mh-fallback"), (port, "mh-port")]
                .into_iter()
                .filter_map(|(on, n)| on.then_some(n))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SchedKind::by_name(s).ok_or_else(|| {
            format!(
                "unknown scheduler {s:?} (one of {})",
                SchedKind::NAMES.join(", ")
            )
        })
    }
}

/// What the control side precomputes for a service's server list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedTable {
    None,
    Wrr(wrr::WrrConsts),
    /// sh/dh/mh buckets: index into the server list, or none.
    Buckets(Vec<Option<u32>>),
}

/// Builds the table for `kind` over `dests` (in list order).
pub fn build_table(kind: &SchedKind, dests: &[RealServer]) -> SchedTable {
    match *kind {
        SchedKind::Wrr => SchedTable::Wrr(wrr::WrrConsts::new(dests)),
        SchedKind::Sh { bits, .. } => SchedTable::Buckets(sh::build(dests, bits)),
        SchedKind::Dh { bits } => SchedTable::Buckets(dh::build(dests, bits)),
        SchedKind::Mh { size, .. } => SchedTable::Buckets(mh::build(dests, size)),
        _ => SchedTable::None,
    }
}

/// A worker's mutable scheduling state for one service.
#[derive(Debug, Default)]
pub struct SchedState {
    /// rr/wrr: index of the last server chosen (None = the list head).
    pub cursor: Option<usize>,
    /// wrr: the current weight.
    pub cw: i64,
    pub lblc: Option<LblcCache>,
    pub lblcr: Option<LblcrCache>,
}

impl SchedState {
    /// Fresh state for a scheduler bound to a complete list (`-E -s`, start-up): the wrr
    /// walk starts at cw = mw.
    pub fn new(kind: &SchedKind, table: &SchedTable) -> SchedState {
        let mut s = SchedState::default();
        if let (SchedKind::Wrr, SchedTable::Wrr(c)) = (kind, table) {
            s.cw = c.mw;
        }
        match kind {
            SchedKind::Lblc => s.lblc = Some(LblcCache::new()),
            SchedKind::Lblcr => s.lblcr = Some(LblcrCache::new()),
            _ => {}
        }
        s
    }

    /// Applies one change of the service's list or scheduler as IPVS's scheduler callbacks
    /// do: a bind starts afresh (lblc/lblcr caches emptied, taken from `caches` when there
    /// is none yet, so a worker allocates nothing); rr keeps its place across adds and
    /// deletes; wrr goes back to the head with its current weight adjusted; lblc/lblcr keep
    /// their caches.
    pub fn apply(&mut self, kind: &SchedKind, ev: &SchedEvent, caches: Option<&CachePool>) {
        match ev.change {
            ListChange::Bind { cw } => {
                self.cursor = None;
                self.cw = if *kind == SchedKind::Wrr { cw } else { 0 };
                // The kind's own cache is kept (emptied) or taken from the pool; one of
                // another kind goes back to the pool for the control side to free.
                let (mut old_lblc, mut old_lblcr) = (self.lblc.take(), self.lblcr.take());
                if *kind == SchedKind::Lblc {
                    let pooled = || caches.and_then(|p| take(&p.lblc));
                    let mut c = old_lblc.take().or_else(pooled).unwrap_or_default();
                    c.clear();
                    self.lblc = Some(c);
                }
                if *kind == SchedKind::Lblcr {
                    let pooled = || caches.and_then(|p| take(&p.lblcr));
                    let mut c = old_lblcr.take().or_else(pooled).unwrap_or_default();
                    c.clear();
                    self.lblcr = Some(c);
                }
                if let (Some(pool), Some(c)) = (caches, old_lblc) {
                    give_back(&pool.lblc, c);
                }
                if let (Some(pool), Some(c)) = (caches, old_lblcr) {
                    give_back(&pool.lblcr, c);
                }
            }
            ListChange::Added if *kind == SchedKind::Rr => {
                self.cursor = self.cursor.map(|c| c + 1);
            }
            ListChange::Removed(at) if *kind == SchedKind::Rr => {
                // IPVS moves a cursor on the removed server to the one before it.
                self.cursor = match self.cursor {
                    Some(c) if c == at => at.checked_sub(1),
                    Some(c) if c > at => Some(c - 1),
                    other => other,
                };
            }
            ListChange::Added | ListChange::Removed(_) | ListChange::Edited => {
                if *kind == SchedKind::Wrr {
                    self.cursor = None;
                    self.cw = ev.wrr.adjusted_cw(self.cw);
                }
            }
        }
    }
}

/// A change of a service's server list or scheduler (IPVS's init_service, add_dest,
/// del_dest and upd_dest callbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChange {
    /// The scheduler bound to the list: a new service, or `-E` with another scheduler
    /// (wrr starts at `cw`; changes folded in before any worker saw the bind adjust it).
    Bind { cw: i64 },
    /// A server added at the head of the list.
    Added,
    /// The server at this list position removed.
    Removed(usize),
    /// A server's weight, method or thresholds changed.
    Edited,
}

/// One entry of a service's change log, which the snapshot carries so that every worker
/// brings its own scheduler state up to date whatever snapshots it skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedEvent {
    /// The control side's version of this change (unique, rising).
    pub version: u64,
    /// The version of the service's previous event (0 for its first).
    pub after: u64,
    pub change: ListChange,
    /// wrr's constants for the list the change left.
    pub wrr: wrr::WrrConsts,
}

impl SchedEvent {
    /// The first event of a service bound to `servers` (hand-built snapshots, tests).
    pub fn bind(version: u64, servers: &[RealServer]) -> SchedEvent {
        let wrr = wrr::WrrConsts::new(servers);
        SchedEvent {
            version,
            after: 0,
            change: ListChange::Bind { cw: wrr.mw },
            wrr,
        }
    }
}

/// A cache from a pool slot, if one is there and free.
fn take<T>(slot: &parking_lot::Mutex<Vec<T>>) -> Option<T> {
    slot.try_lock()?.pop()
}

/// Keeps `c` for the control side to free, within the room reserved for the workers
/// (beyond it, or while the slot is busy, the caller frees it).
fn give_back<T>(slot: &parking_lot::Mutex<Vec<T>>, c: T) {
    if let Some(mut v) = slot.try_lock() {
        if v.len() < v.capacity() {
            v.push(c);
        }
    }
}

/// lblc/lblcr caches made on the control side for the workers that bind those schedulers,
/// and the caches workers let go of, freed when the snapshot carrying the pool is.
#[derive(Debug, Default)]
pub struct CachePool {
    lblc: parking_lot::Mutex<Vec<LblcCache>>,
    lblcr: parking_lot::Mutex<Vec<LblcrCache>>,
}

impl CachePool {
    /// A pool with `n` fresh caches for `kind` (none for other schedulers).
    pub fn for_workers(kind: &SchedKind, n: usize) -> CachePool {
        let pool = CachePool {
            lblc: parking_lot::Mutex::new(Vec::with_capacity(n)),
            lblcr: parking_lot::Mutex::new(Vec::with_capacity(n)),
        };
        match kind {
            SchedKind::Lblc => pool.lblc.lock().extend((0..n).map(|_| LblcCache::new())),
            SchedKind::Lblcr => pool.lblcr.lock().extend((0..n).map(|_| LblcrCache::new())),
            _ => {}
        }
        pool
    }
}

/// The connection being scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Addresses as the connection tables hold them (IPv4 mapped, [`crate::conn::addr16`]):
    /// only the schedulers that hash or cache an address read them.
    pub client: Addr16,
    pub client_port: u16,
    /// The destination the client asked for (the VIP, or the cache object's address).
    pub dst: Addr16,
    /// Seconds, monotonic (lblc/lblcr cache ageing).
    pub now: u64,
    /// How long lblc's entries and lblcr's sets live.
    pub expiration: CacheExpiration,
}

/// IPVS's `lblc_expiration` and `lblcr_expiration` (seconds): how long an lblc entry, or
/// an lblcr set, lives unused; lblcr's also how long a set stays unchanged before it sheds
/// its most loaded member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheExpiration {
    pub lblc: u32,
    pub lblcr: u32,
}

impl CacheExpiration {
    /// The kernel's default, 24 h each.
    pub const DEFAULT_S: u32 = 24 * 3600;
    /// The longest rvs takes (lblcr's shared sets keep 20 bits of the clock).
    pub const MAX_S: u32 = 1_000_000;
}

impl Default for CacheExpiration {
    fn default() -> Self {
        CacheExpiration {
            lblc: Self::DEFAULT_S,
            lblcr: Self::DEFAULT_S,
        }
    }
}

/// Picks a server for a new connection: the index into `dests`, or None when no server
/// is available.
pub fn pick(
    kind: &SchedKind,
    table: &SchedTable,
    state: &mut SchedState,
    dests: &[RealServer],
    loads: &[DestLoad],
    req: &Request,
) -> Option<usize> {
    pick_holding(kind, table, state, dests, loads, None, req)
}

/// [`pick`] for a worker that holds changes to the counts until the end of its burst: the
/// counts it reads include its own held ones.
pub fn pick_holding(
    kind: &SchedKind,
    table: &SchedTable,
    state: &mut SchedState,
    dests: &[RealServer],
    loads: &[DestLoad],
    held: Option<&PendingLoads>,
    req: &Request,
) -> Option<usize> {
    let view = View { dests, loads, held };
    match (kind, table) {
        (SchedKind::Rr, _) => rr::pick(&view, &mut state.cursor),
        (SchedKind::Wrr, SchedTable::Wrr(c)) => {
            wrr::pick(&view, c, &mut state.cursor, &mut state.cw)
        }
        (SchedKind::Lc, _) => lc::pick(&view),
        (SchedKind::Wlc, _) => wlc::pick(&view),
        (SchedKind::Sed, _) => sed::pick(&view),
        (SchedKind::Nq, _) => nq::pick(&view),
        (SchedKind::Fo, _) => fo::pick(&view),
        (SchedKind::Ovf, _) => ovf::pick(&view),
        (
            SchedKind::Sh {
                fallback,
                port,
                bits,
            },
            SchedTable::Buckets(b),
        ) => {
            let port = if *port { req.client_port } else { 0 };
            sh::pick(&view, b, *bits, ip_of(&req.client), port, *fallback)
        }
        (SchedKind::Dh { bits }, SchedTable::Buckets(b)) => {
            dh::pick(&view, b, *bits, ip_of(&req.dst))
        }
        (
            SchedKind::Mh {
                fallback,
                port,
                size,
            },
            SchedTable::Buckets(b),
        ) => {
            let port = if *port { req.client_port } else { 0 };
            mh::pick(&view, b, *size, ip_of(&req.client), port, *fallback)
        }
        (SchedKind::Lblc, _) => {
            let cache = state.lblc.get_or_insert_with(LblcCache::new);
            let expiration = u64::from(req.expiration.lblc);
            lblc::pick(&view, cache, ip_of(&req.dst), (req.now, expiration))
        }
        (SchedKind::Lblcr, _) => {
            let cache = state.lblcr.get_or_insert_with(LblcrCache::new);
            let expiration = u64::from(req.expiration.lblcr);
            lblcr::pick(&view, cache, ip_of(&req.dst), (req.now, expiration))
        }
        // A table of the wrong kind: the snapshot builder never makes one.
        _ => None,
    }
}

/// lblc with its cache on the workers' shared board (see [`lblc::pick_shared`]).
pub fn pick_lblc_shared(
    dests: &[RealServer],
    loads: &[DestLoad],
    held: Option<&PendingLoads>,
    (board, key): (&crate::engine::SharedTemplates, crate::engine::BoardKey),
    (now, expiration): (u32, u32),
) -> Option<usize> {
    lblc::pick_shared(&View { dests, loads, held }, board, key, (now, expiration))
}

/// lblcr with its sets on the workers' shared board (see [`lblcr::pick_shared`]).
pub fn pick_lblcr_shared(
    dests: &[RealServer],
    loads: &[DestLoad],
    held: Option<&PendingLoads>,
    (board, set): (&crate::engine::SharedTemplates, &SharedSet),
    (now, expiration): (u32, u32),
) -> Option<usize> {
    lblcr::pick_shared(&View { dests, loads, held }, board, set, (now, expiration))
}

/// The server list with its live counters (and the worker's held changes to them).
pub(crate) struct View<'a> {
    pub dests: &'a [RealServer],
    pub loads: &'a [DestLoad],
    pub held: Option<&'a PendingLoads>,
}

impl View<'_> {
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// Server `i`'s id (None past the list).
    pub fn id(&self, i: usize) -> Option<usize> {
        self.dests.get(i).map(|d| d.id)
    }

    /// Server `i`'s weight (0 past the list).
    pub fn weight(&self, i: usize) -> i64 {
        self.dests.get(i).map_or(0, |d| i64::from(d.weight))
    }

    fn load(&self, i: usize) -> Option<&DestLoad> {
        self.loads.get(self.id(i)?)
    }

    pub fn overloaded(&self, i: usize) -> bool {
        self.load(i).is_some_and(DestLoad::overloaded)
    }

    fn held(&self, i: usize) -> (i64, i64) {
        match (self.held, self.id(i)) {
            (Some(h), Some(id)) => h.held(id),
            _ => (0, 0),
        }
    }

    pub fn active(&self, i: usize) -> i64 {
        let shared = self.load(i).map_or(0, |l| i64::from(l.active()));
        (shared + self.held(i).0).max(0)
    }

    pub fn inactive(&self, i: usize) -> i64 {
        let shared = self.load(i).map_or(0, |l| i64::from(l.inactive()));
        (shared + self.held(i).1).max(0)
    }

    /// IPVS's `ip_vs_dest_conn_overhead`: active * 256 + inactive.
    pub fn overhead(&self, i: usize) -> i64 {
        (self.active(i) << 8) + self.inactive(i)
    }

    /// Not a candidate: overloaded or weight 0.
    pub fn unavailable(&self, i: usize) -> bool {
        self.overloaded(i) || self.weight(i) == 0
    }
}

/// The kernel's `hash_32`: multiplicative hashing with the 32-bit golden ratio.
#[inline]
pub fn hash_32(value: u32, bits: u8) -> u32 {
    value.wrapping_mul(0x61C8_8647) >> (32 - u32::from(bits))
}

/// An address as IPVS hashes it: IPv4 as a host-order u32, IPv6 with its four words xored.
#[inline]
pub fn fold_addr(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x >> 96) as u32 ^ (x >> 64) as u32 ^ (x >> 32) as u32 ^ x as u32
        }
    }
}

/// Greatest common divisor of the positive weights (1 when there is none).
pub(crate) fn gcd_weight(weights: impl Iterator<Item = u32>) -> u32 {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    weights.filter(|&w| w > 0).fold(0, gcd).max(1)
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// Servers A, B, C... (10.0.0.1, .2, ...) with the given weights, in list order.
    pub fn dests(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RealServer {
                id: i,
                addr: IpAddr::from([10, 0, ((i + 1) >> 8) as u8, (i + 1) as u8]),
                port: 80,
                weight: w,
                last_weight: w,
                method: crate::model::ForwardMethod::Nat,
                upper: 0,
                lower: 0,
                tunnel: Default::default(),
            })
            .collect()
    }

    pub fn loads(n: usize) -> Vec<DestLoad> {
        (0..n).map(|_| DestLoad::default()).collect()
    }

    /// The list as a worker sees it with no held changes.
    pub fn view<'a>(dests: &'a [RealServer], loads: &'a [DestLoad]) -> View<'a> {
        View {
            dests,
            loads,
            held: None,
        }
    }

    pub fn letters(picks: &[Option<usize>]) -> String {
        picks
            .iter()
            .map(|p| p.map_or('-', |i| (b'A' + i as u8) as char))
            .collect()
    }

    pub fn req(client: [u8; 4], port: u16) -> Request {
        Request {
            client: crate::conn::v4_mapped(client),
            client_port: port,
            dst: crate::conn::v4_mapped([10, 0, 0, 100]),
            now: 0,
            expiration: CacheExpiration::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(change: ListChange, servers: &[RealServer]) -> SchedEvent {
        SchedEvent {
            version: 0,
            after: 0,
            change,
            wrr: WrrConsts::new(servers),
        }
    }

    #[test]
    fn rr_keeps_its_place_across_adds_and_deletes() {
        // B of A,B,C chosen last.
        let mut s = SchedState {
            cursor: Some(1),
            ..SchedState::default()
        };
        // A server added at the head: B is now at 2.
        s.apply(
            &SchedKind::Rr,
            &event(ListChange::Added, &testutil::dests(&[1; 4])),
            None,
        );
        assert_eq!(s.cursor, Some(2));
        // B removed: IPVS moves the cursor to the one before it.
        s.apply(
            &SchedKind::Rr,
            &event(ListChange::Removed(2), &testutil::dests(&[1; 3])),
            None,
        );
        assert_eq!(s.cursor, Some(1));
        s.apply(
            &SchedKind::Rr,
            &event(ListChange::Removed(0), &testutil::dests(&[1; 2])),
            None,
        );
        assert_eq!(s.cursor, Some(0));
        s.apply(
            &SchedKind::Rr,
            &event(ListChange::Removed(0), &testutil::dests(&[1])),
            None,
        );
        assert_eq!(s.cursor, None, "the head");
        s.apply(
            &SchedKind::Rr,
            &event(ListChange::Edited, &testutil::dests(&[1])),
            None,
        );
        assert_eq!(s.cursor, None);
    }

    #[test]
    fn wrr_goes_back_to_the_head_with_its_weight_adjusted() {
        let mut s = SchedState::default();
        let d = testutil::dests(&[4, 2]);
        s.apply(
            &SchedKind::Wrr,
            &event(ListChange::Bind { cw: 4 }, &d),
            None,
        );
        assert_eq!((s.cursor, s.cw), (None, 4));
        s.cursor = Some(1);
        s.cw = 3;
        // di = 2: cw = (3 / 2) * 2 + 1.
        s.apply(&SchedKind::Wrr, &event(ListChange::Edited, &d), None);
        assert_eq!((s.cursor, s.cw), (None, 3));
        s.cw = 9;
        s.apply(
            &SchedKind::Wrr,
            &event(ListChange::Added, &testutil::dests(&[4, 2, 2])),
            None,
        );
        assert_eq!(s.cw, 3, "cw > mw becomes mw");
    }

    #[test]
    fn lblc_keeps_its_cache_across_list_changes_and_binds_from_the_pool() {
        let d = testutil::dests(&[1, 1]);
        let pool = CachePool::for_workers(&SchedKind::Lblc, 1);
        let mut s = SchedState::default();
        s.apply(
            &SchedKind::Lblc,
            &event(ListChange::Bind { cw: 0 }, &d),
            Some(&pool),
        );
        assert!(s.lblc.is_some());
        assert!(
            take(&pool.lblc).is_none(),
            "the worker took the pool's cache"
        );
        let l = testutil::loads(2);
        let t = build_table(&SchedKind::Lblc, &d);
        let r = testutil::req([1, 1, 1, 1], 1);
        let first = pick(&SchedKind::Lblc, &t, &mut s, &d, &l, &r);
        assert_eq!(s.lblc.as_ref().map(LblcCache::len), Some(1));
        s.apply(&SchedKind::Lblc, &event(ListChange::Edited, &d), None);
        assert_eq!(s.lblc.as_ref().map(LblcCache::len), Some(1), "kept");
        assert_eq!(pick(&SchedKind::Lblc, &t, &mut s, &d, &l, &r), first);
        // Bound anew: emptied in place; to another scheduler: handed back to the pool.
        s.apply(
            &SchedKind::Lblc,
            &event(ListChange::Bind { cw: 0 }, &d),
            None,
        );
        assert_eq!(s.lblc.as_ref().map(LblcCache::len), Some(0));
        s.apply(
            &SchedKind::Rr,
            &event(ListChange::Bind { cw: 0 }, &d),
            Some(&pool),
        );
        assert!(s.lblc.is_none());
        assert!(take(&pool.lblc).is_some(), "the control side frees it");
    }

    #[test]
    fn hash_32_matches_the_reference_vectors() {
        let v4 = |a: [u8; 4]| fold_addr(IpAddr::from(a));
        assert_eq!(hash_32(v4([10, 0, 0, 1]), 8), 39);
        assert_eq!(hash_32(v4([10, 0, 0, 2]), 8), 137);
        assert_eq!(hash_32(v4([192, 168, 1, 100]), 8), 89);
        assert_eq!(hash_32(v4([10, 0, 0, 1]).wrapping_add(12345), 8), 134);
    }

    #[test]
    fn names_and_flags() {
        for n in SchedKind::NAMES {
            assert_eq!(n.parse::<SchedKind>().unwrap().name(), n);
        }
        assert!("xyz".parse::<SchedKind>().unwrap_err().contains("wlc"));
        let sh = SchedKind::by_name("sh")
            .unwrap()
            .with_flags("sh-fallback,sh-port")
            .unwrap();
        assert_eq!(sh.flags(), vec!["sh-fallback", "sh-port"]);
        assert!(SchedKind::Wlc.with_flags("sh-port").is_err());
        let mh = SchedKind::by_name("mh")
            .unwrap()
            .with_flags("flag-2")
            .unwrap();
        assert_eq!(mh.flags(), vec!["mh-port"]);
    }

    /// Shares of a million picks against the weights, for schedulers whose choice follows
    /// the weights (wrr over its cycle, sh and mh over their tables with varied clients).
    #[test]
    fn weight_proportional_shares_over_a_million_picks() {
        use super::testutil::*;
        let weights = [5u32, 3, 2];
        for name in ["wrr", "sh", "mh"] {
            let kind = match name {
                "mh" => SchedKind::Mh {
                    fallback: false,
                    port: true,
                    size: 65521,
                },
                "sh" => SchedKind::Sh {
                    fallback: false,
                    port: true,
                    bits: 10,
                },
                n => SchedKind::by_name(n).unwrap(),
            };
            let d = dests(&weights);
            let l = loads(3);
            let t = build_table(&kind, &d);
            let mut s = SchedState::new(&kind, &t);
            let mut counts = [0u64; 3];
            let mut x: u32 = 0x1234_5678;
            for _ in 0..1_000_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let r = req(x.to_be_bytes(), (x >> 7) as u16);
                counts[pick(&kind, &t, &mut s, &d, &l, &r).unwrap()] += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                let share = counts[i] as f64 / 1e6;
                let want = f64::from(w) / 10.0;
                assert!(
                    (share - want).abs() < 0.01,
                    "{name}: server {i} got {share:.4}, want {want}"
                );
            }
        }
    }

    #[test]
    fn gcd_of_weights() {
        assert_eq!(gcd_weight([4, 6, 0, 8].into_iter()), 2);
        assert_eq!(gcd_weight([0, 0].into_iter()), 1);
        assert_eq!(gcd_weight([5, 1, 1].into_iter()), 1);
    }
}
