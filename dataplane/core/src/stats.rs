//! Per-worker counters. Each worker owns one cache-line-aligned block and is its only
//! writer (plain relaxed stores, published once per poll); readers take relaxed loads.

use crate::conn::{Conn, ConnTable};
use crate::engine::{CounterSlots, Counters};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Table slots a worker walks per pass for a connection listing: a few microseconds of
/// copying at most, whatever the table's size.
pub const LISTING_SLOTS_PER_PASS: usize = 256;

#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    polls: AtomicU64,
    busy_polls: AtomicU64,
    cycles: AtomicU64,
    busy_cycles: AtomicU64,
    rx_packets: AtomicU64,
    tx_packets: AtomicU64,
    tx_dropped: AtomicU64,
    malformed: AtomicU64,
    checksums_completed: AtomicU64,
    handoffs: AtomicU64,
    handoff_drops: AtomicU64,
    max_pass_cycles: AtomicU64,
    listing_slices: AtomicU64,
    listing_cycles: AtomicU64,
    max_listing_cycles: AtomicU64,
    sleeps: AtomicU64,
    slept_us: AtomicU64,
    stage_cycles: [AtomicU64; STAGES.len()],
    /// The sizes of the worker's rx and tx bursts, published while `recording_bursts`.
    rx_bursts: AtomicSpread,
    tx_bursts: AtomicSpread,
    recording_bursts: AtomicBool,
    /// Load balancing: the engine's counters (its own slots, read in place) and the
    /// connection listing handed over a slice per pass on request.
    engine: OnceLock<Arc<CounterSlots>>,
    listing_wanted: AtomicBool,
    listing: Mutex<Listing>,
}

/// A connection listing in progress: the control side lends the buffer, the worker fills
/// it from `cursor` on, a slice of the table per pass, never beyond its capacity.
#[derive(Debug, Default)]
struct Listing {
    cursor: usize,
    buf: Vec<Conn>,
    now: u32,
    done: bool,
    /// The entries outside the table were copied.
    others_copied: bool,
}

/// A worker as the control side sees it: its place and its statistics block.
#[derive(Debug, Clone)]
pub struct WorkerView {
    pub index: usize,
    pub lcore: u32,
    pub stats: Arc<WorkerStats>,
}

/// Burst sizes counted: 0 (an empty poll) to 32 frames, a worker's largest burst.
pub const BURST_SIZES: usize = 33;

/// How many bursts had each size, 0 to 32 frames (testpmd's `set record-burst-stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstSpread(pub [u64; BURST_SIZES]);

impl Default for BurstSpread {
    fn default() -> Self {
        BurstSpread([0; BURST_SIZES])
    }
}

impl BurstSpread {
    /// Counts a burst of `n` frames.
    #[inline]
    pub fn record(&mut self, n: usize) {
        if let Some(count) = self.0.get_mut(n) {
            *count += 1;
        }
    }

    pub fn since(&self, base: &BurstSpread) -> BurstSpread {
        BurstSpread(since(self.0, &base.0))
    }

    /// Bursts of every size.
    pub fn bursts(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Frames in all the bursts.
    pub fn frames(&self) -> u64 {
        self.0.iter().enumerate().map(|(n, &c)| n as u64 * c).sum()
    }
}

/// A [`BurstSpread`] the control side reads while its worker writes it.
#[derive(Debug)]
struct AtomicSpread([AtomicU64; BURST_SIZES]);

impl Default for AtomicSpread {
    fn default() -> Self {
        AtomicSpread(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl AtomicSpread {
    fn store(&self, s: &BurstSpread) {
        for (slot, &v) in self.0.iter().zip(&s.0) {
            slot.store(v, Relaxed);
        }
    }

    fn load(&self) -> BurstSpread {
        BurstSpread(self.0.each_ref().map(|c| c.load(Relaxed)))
    }
}

/// A plain copy of a worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Passes over the worker's rx queues.
    pub polls: u64,
    /// Passes that received at least one packet.
    pub busy_polls: u64,
    /// TSC cycles over all passes, and over those that received packets: a pass with a
    /// full burst lasts a hundred times an empty one, so time, not passes, tells load.
    pub cycles: u64,
    pub busy_cycles: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Packets the tx queue did not take (queue full), freed.
    pub tx_dropped: u64,
    /// Frames dropped as malformed.
    pub malformed: u64,
    /// TCP/UDP checksums a kernel sender left partial, completed on arrival.
    pub checksums_completed: u64,
    /// Frames handed to the worker owning their flow.
    pub handoffs: u64,
    /// Hand-offs lost to a full ring.
    pub handoff_drops: u64,
    /// The longest pass, in TSC cycles: what a queue waited at worst between two polls.
    pub max_pass_cycles: u64,
    /// Connection listing slices the worker copied (one a pass at most), their cycles in
    /// all and the longest one's.
    pub listing_slices: u64,
    pub listing_cycles: u64,
    pub max_listing_cycles: u64,
    /// Idle sleeps (adaptive polling) and their total length in microseconds.
    pub sleeps: u64,
    pub slept_us: u64,
    /// TSC cycles spent in each of [`STAGES`], counted per burst that had packets.
    pub stage_cycles: [u64; STAGES.len()],
    /// Its rx calls by the frames they brought (empty polls too) and its tx calls by the
    /// frames they sent; published only while the control side records them.
    pub rx_bursts: BurstSpread,
    pub tx_bursts: BurstSpread,
}

/// The stages of a load-balancing worker's pass, as [`WorkerCounters::stage_cycles`] counts
/// them: receiving a burst, finding each frame's owner (and handing frames over; with
/// several workers this parses the frames), parsing a burst a single worker received (key,
/// hash, index line asked for), asking for the connection entries, the engine's work frame
/// by frame, and sending.
pub const STAGES: [&str; 6] = ["rx", "steer", "parse", "prefetch", "engine", "tx"];

/// Indexes into [`WorkerCounters::stage_cycles`].
pub mod stage {
    pub const RX: usize = 0;
    pub const STEER: usize = 1;
    pub const PARSE: usize = 2;
    pub const PREFETCH: usize = 3;
    pub const ENGINE: usize = 4;
    pub const TX: usize = 5;
}

impl WorkerCounters {
    /// What was counted since `base` (the maxima are kept as they are).
    pub fn since(&self, base: &WorkerCounters) -> WorkerCounters {
        WorkerCounters {
            polls: self.polls.saturating_sub(base.polls),
            busy_polls: self.busy_polls.saturating_sub(base.busy_polls),
            cycles: self.cycles.saturating_sub(base.cycles),
            busy_cycles: self.busy_cycles.saturating_sub(base.busy_cycles),
            rx_packets: self.rx_packets.saturating_sub(base.rx_packets),
            tx_packets: self.tx_packets.saturating_sub(base.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(base.tx_dropped),
            malformed: self.malformed.saturating_sub(base.malformed),
            checksums_completed: self
                .checksums_completed
                .saturating_sub(base.checksums_completed),
            handoffs: self.handoffs.saturating_sub(base.handoffs),
            handoff_drops: self.handoff_drops.saturating_sub(base.handoff_drops),
            listing_slices: self.listing_slices.saturating_sub(base.listing_slices),
            listing_cycles: self.listing_cycles.saturating_sub(base.listing_cycles),
            sleeps: self.sleeps.saturating_sub(base.sleeps),
            slept_us: self.slept_us.saturating_sub(base.slept_us),
            stage_cycles: since(self.stage_cycles, &base.stage_cycles),
            rx_bursts: self.rx_bursts.since(&base.rx_bursts),
            tx_bursts: self.tx_bursts.since(&base.tx_bursts),
            ..*self
        }
    }

    /// Share of the worker's time spent in passes that found work, 0..=1 (of its passes,
    /// when it measured no time).
    pub fn busy_share(&self) -> f64 {
        if self.cycles > 0 {
            self.busy_cycles as f64 / self.cycles as f64
        } else if self.polls > 0 {
            self.busy_polls as f64 / self.polls as f64
        } else {
            0.0
        }
    }

    /// Counts one pass that took `cycles` and found work or not.
    #[inline]
    pub fn count_pass(&mut self, busy: bool, cycles: u64) {
        self.polls += 1;
        self.busy_polls += u64::from(busy);
        self.cycles += cycles;
        self.max_pass_cycles = self.max_pass_cycles.max(cycles);
        if busy {
            self.busy_cycles += cycles;
        }
    }
}

impl WorkerStats {
    /// Publishes the worker's running totals (called by the owning worker only).
    #[inline]
    pub fn publish(&self, c: &WorkerCounters) {
        self.polls.store(c.polls, Relaxed);
        self.busy_polls.store(c.busy_polls, Relaxed);
        self.cycles.store(c.cycles, Relaxed);
        self.busy_cycles.store(c.busy_cycles, Relaxed);
        self.rx_packets.store(c.rx_packets, Relaxed);
        self.tx_packets.store(c.tx_packets, Relaxed);
        self.tx_dropped.store(c.tx_dropped, Relaxed);
        self.malformed.store(c.malformed, Relaxed);
        self.checksums_completed
            .store(c.checksums_completed, Relaxed);
        self.handoffs.store(c.handoffs, Relaxed);
        self.handoff_drops.store(c.handoff_drops, Relaxed);
        self.max_pass_cycles.store(c.max_pass_cycles, Relaxed);
        self.listing_slices.store(c.listing_slices, Relaxed);
        self.listing_cycles.store(c.listing_cycles, Relaxed);
        self.max_listing_cycles.store(c.max_listing_cycles, Relaxed);
        self.sleeps.store(c.sleeps, Relaxed);
        self.slept_us.store(c.slept_us, Relaxed);
        for (slot, &v) in self.stage_cycles.iter().zip(&c.stage_cycles) {
            slot.store(v, Relaxed);
        }
        // 66 more stores a pass: only while someone looks.
        if self.recording_bursts.load(Relaxed) {
            self.rx_bursts.store(&c.rx_bursts);
            self.tx_bursts.store(&c.tx_bursts);
        }
    }

    /// Control side: the worker publishes its burst sizes from its next pass on (on), or
    /// leaves the last ones published (off).
    pub fn set_recording_bursts(&self, on: bool) {
        self.recording_bursts.store(on, Relaxed);
    }

    pub fn recording_bursts(&self) -> bool {
        self.recording_bursts.load(Relaxed)
    }

    /// Shares the engine's counters (once, before the worker starts).
    pub fn attach_engine(&self, counters: Arc<CounterSlots>) {
        let _ = self.engine.set(counters);
    }

    /// The engine's counters as they are now (zero without an engine).
    pub fn read_engine(&self) -> Counters {
        self.engine.get().map(|c| c.read()).unwrap_or_default()
    }

    pub fn connections(&self) -> u64 {
        self.engine.get().map_or(0, |c| c.connections.get())
    }

    /// Worker side, once per pass: is a connection listing wanted?
    #[inline]
    pub fn listing_wanted(&self) -> bool {
        self.listing_wanted.load(Relaxed)
    }

    /// Worker side: copies the next slice of `table` (at most [`LISTING_SLOTS_PER_PASS`]
    /// slots, never beyond the lent buffer's room, so nothing is allocated) with the
    /// worker's clock `now`, `others` (entries kept outside the table: the FTP helper's
    /// expected connections) first; hands the buffer back when it is full or the table is
    /// done.
    pub fn list_slice(&self, table: &ConnTable, others: impl Iterator<Item = Conn>, now: u32) {
        let Some(mut l) = self.listing.try_lock() else {
            return;
        };
        let l = &mut *l;
        l.now = now;
        if !l.others_copied {
            l.others_copied = true;
            let room = l.buf.capacity() - l.buf.len();
            l.buf.extend(others.take(room));
        }
        l.cursor = table.copy_live(l.cursor, LISTING_SLOTS_PER_PASS, &mut l.buf);
        l.done = l.cursor >= table.capacity();
        if l.done || l.buf.len() == l.buf.capacity() {
            self.listing_wanted.store(false, Ordering::Release);
        }
    }

    /// Control side: walks the worker's table a buffer of `chunk` entries at a time, up to
    /// `limit` entries, waiting at most `timeout` for each; gives the worker's clock and the
    /// entries (None when the worker did not answer).
    pub fn request_connections(
        &self,
        chunk: usize,
        limit: usize,
        timeout: Duration,
    ) -> Option<(u32, Vec<Conn>)> {
        let mut out = Vec::new();
        *self.listing.lock() = Listing {
            buf: Vec::with_capacity(chunk.max(1)),
            ..Listing::default()
        };
        loop {
            self.listing_wanted.store(true, Ordering::Release);
            let deadline = Instant::now() + timeout;
            while self.listing_wanted.load(Ordering::Acquire) {
                if Instant::now() >= deadline {
                    self.listing_wanted.store(false, Ordering::Release);
                    return None;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let mut l = self.listing.lock();
            out.append(&mut l.buf);
            if l.done || out.len() >= limit {
                out.truncate(limit);
                return Some((l.now, out));
            }
        }
    }

    pub fn read(&self) -> WorkerCounters {
        WorkerCounters {
            polls: self.polls.load(Relaxed),
            busy_polls: self.busy_polls.load(Relaxed),
            cycles: self.cycles.load(Relaxed),
            busy_cycles: self.busy_cycles.load(Relaxed),
            rx_packets: self.rx_packets.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_dropped: self.tx_dropped.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            checksums_completed: self.checksums_completed.load(Relaxed),
            handoffs: self.handoffs.load(Relaxed),
            handoff_drops: self.handoff_drops.load(Relaxed),
            max_pass_cycles: self.max_pass_cycles.load(Relaxed),
            listing_slices: self.listing_slices.load(Relaxed),
            listing_cycles: self.listing_cycles.load(Relaxed),
            max_listing_cycles: self.max_listing_cycles.load(Relaxed),
            sleeps: self.sleeps.load(Relaxed),
            slept_us: self.slept_us.load(Relaxed),
            stage_cycles: self.stage_cycles.each_ref().map(|c| c.load(Relaxed)),
            rx_bursts: self.rx_bursts.load(),
            tx_bursts: self.tx_bursts.load(),
        }
    }
}

/// Each counter of `now` less its value in `then` (0 where it went back).
pub fn since<const N: usize>(mut now: [u64; N], then: &[u64; N]) -> [u64; N] {
    for (n, t) in now.iter_mut().zip(then) {
        *n = n.saturating_sub(*t);
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{addr16, InKey};
    use crate::ForwardMethod;
    use std::net::IpAddr;

    /// A worker thread taking a listing slice per pass while the control side walks its
    /// table: every entry arrives, each pass copied at most its share; the entries kept
    /// outside the table arrive once.
    #[test]
    fn a_listing_arrives_whole_a_slice_per_pass() {
        let mut table = ConnTable::new(5000, 0);
        for c in 0..3000u32 {
            let key = InKey {
                proto: 6,
                caddr: addr16(IpAddr::from(c.to_be_bytes())),
                cport: 1,
                vaddr: addr16(IpAddr::from([192, 0, 2, 1])),
                vport: 80,
            };
            let conn = Conn::new(key, key.vaddr, 80, 0, 7, ForwardMethod::Dr, 0);
            table.insert(conn, 100).unwrap();
        }
        let listen = InKey {
            proto: 6,
            caddr: addr16(IpAddr::from([10, 0, 0, 5])),
            cport: 0,
            vaddr: addr16(IpAddr::from([192, 0, 2, 1])),
            vport: 50000,
        };
        let outside = Conn::new(listen, [0; 16], 50000, 0, 9, ForwardMethod::Nat, 0);
        let stats = Arc::new(WorkerStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut passes = 0u64;
                while !stop.load(Relaxed) {
                    if stats.listing_wanted() {
                        stats.list_slice(&table, [outside; 2].into_iter(), 42);
                        passes += 1;
                    }
                    std::thread::yield_now();
                }
                passes
            })
        };
        let (now, conns) = stats
            .request_connections(700, usize::MAX, Duration::from_secs(10))
            .expect("the worker answered");
        stop.store(true, Relaxed);
        let passes = worker.join().unwrap();
        assert_eq!((now, conns.len()), (42, 3002));
        assert_eq!(conns.iter().filter(|c| c.dest == 7).count(), 3000);
        assert_eq!(conns[..2], [outside; 2], "the others first, once");
        assert!(passes >= (5000 / LISTING_SLOTS_PER_PASS) as u64, "{passes}");
        let limited = stats.request_connections(700, 10, Duration::from_millis(1));
        assert!(
            limited.is_none(),
            "no worker polls now: the request times out"
        );
    }

    #[test]
    fn busy_share_weighs_passes_by_their_time() {
        let mut c = WorkerCounters::default();
        // Saturated: every other pass finds the ring empty, but full passes are long.
        for _ in 0..100 {
            c.count_pass(true, 5_000);
            c.count_pass(false, 50);
        }
        assert_eq!((c.polls, c.busy_polls), (200, 100));
        assert!((c.busy_share() - 0.990).abs() < 0.001, "{}", c.busy_share());
        // Idle: short empty passes only.
        let mut idle = WorkerCounters::default();
        idle.count_pass(false, 60);
        idle.count_pass(false, 60);
        assert_eq!(idle.busy_share(), 0.0);
    }
}
