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
//! With several workers, each keeps its own rr/wrr cursor and lblc/lblcr cache, so the
//! sequence of choices is the kernel's per worker, not across workers; load-based schedulers
//! read the shared counters and agree.

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod load;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod wlc;
mod wrr;

pub use lblc::LblcCache;
pub use lblcr::LblcrCache;
pub use load::{DestLoad, Thresholds};
pub use mh::{hsiphash_u32, MH_PRIMES};

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A real server as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// Stable id: index into the shared [`DestLoad`] array.
    pub id: usize,
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    /// The last non-zero weight (Maglev keeps a quiesced server's slots with it).
    pub last_weight: u32,
}

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
pub fn build_table(kind: &SchedKind, dests: &[Dest]) -> SchedTable {
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

    /// The server list changed (add, delete, edit): IPVS resets the cursor to the head and
    /// adjusts wrr's current weight.
    pub fn list_changed(&mut self, table: &SchedTable) {
        self.cursor = None;
        if let SchedTable::Wrr(c) = table {
            self.cw = c.adjusted_cw(self.cw);
        }
    }
}

/// The connection being scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub client: IpAddr,
    pub client_port: u16,
    /// The destination the client asked for (the VIP, or the cache object's address).
    pub dst: IpAddr,
    /// Seconds, monotonic (lblc/lblcr cache ageing).
    pub now: u64,
}

/// Picks a server for a new connection: the index into `dests`, or None when no server
/// is available.
pub fn pick(
    kind: &SchedKind,
    table: &SchedTable,
    state: &mut SchedState,
    dests: &[Dest],
    loads: &[DestLoad],
    req: &Request,
) -> Option<usize> {
    let view = View { dests, loads };
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
            sh::pick(&view, b, *bits, req.client, port, *fallback)
        }
        (SchedKind::Dh { bits }, SchedTable::Buckets(b)) => dh::pick(&view, b, *bits, req.dst),
        (
            SchedKind::Mh {
                fallback,
                port,
                size,
            },
            SchedTable::Buckets(b),
        ) => {
            let port = if *port { req.client_port } else { 0 };
            mh::pick(&view, b, *size, req.client, port, *fallback)
        }
        (SchedKind::Lblc, _) => {
            let cache = state.lblc.get_or_insert_with(LblcCache::new);
            lblc::pick(&view, cache, req.dst, req.now)
        }
        (SchedKind::Lblcr, _) => {
            let cache = state.lblcr.get_or_insert_with(LblcrCache::new);
            lblcr::pick(&view, cache, req.dst, req.now)
        }
        // A table of the wrong kind: the snapshot builder never makes one.
        _ => None,
    }
}

/// The server list with its live counters.
pub(crate) struct View<'a> {
    pub dests: &'a [Dest],
    pub loads: &'a [DestLoad],
}

impl View<'_> {
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    pub fn weight(&self, i: usize) -> i64 {
        i64::from(self.dests[i].weight)
    }

    fn load(&self, i: usize) -> Option<&DestLoad> {
        self.loads.get(self.dests[i].id)
    }

    pub fn overloaded(&self, i: usize) -> bool {
        self.load(i).is_some_and(DestLoad::overloaded)
    }

    pub fn active(&self, i: usize) -> i64 {
        self.load(i).map_or(0, |l| i64::from(l.active()))
    }

    pub fn inactive(&self, i: usize) -> i64 {
        self.load(i).map_or(0, |l| i64::from(l.inactive()))
    }

    /// IPVS's `ip_vs_dest_conn_overhead`: active * 256 + inactive.
    pub fn overhead(&self, i: usize) -> i64 {
        (self.active(i) << 8) + self.inactive(i)
    }

    /// Not a candidate: overloaded or weight 0.
    pub fn unavailable(&self, i: usize) -> bool {
        self.overloaded(i) || self.dests[i].weight == 0
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
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
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
    pub fn dests(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Dest {
                id: i,
                addr: IpAddr::from([10, 0, ((i + 1) >> 8) as u8, (i + 1) as u8]),
                port: 80,
                weight: w,
                last_weight: w,
            })
            .collect()
    }

    pub fn loads(n: usize) -> Vec<DestLoad> {
        (0..n).map(|_| DestLoad::default()).collect()
    }

    pub fn letters(picks: &[Option<usize>]) -> String {
        picks
            .iter()
            .map(|p| p.map_or('-', |i| (b'A' + i as u8) as char))
            .collect()
    }

    pub fn req(client: [u8; 4], port: u16) -> Request {
        Request {
            client: IpAddr::from(client),
            client_port: port,
            dst: IpAddr::from([10, 0, 0, 100]),
            now: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
