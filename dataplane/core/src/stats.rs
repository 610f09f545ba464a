//! Per-worker counters. Each worker owns one cache-line-aligned block and is its only
//! writer (plain relaxed stores, published once per poll); readers take relaxed loads.

use crate::conn::Conn;
use crate::engine::Counters;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, Ordering::Relaxed};
use std::time::{Duration, Instant};

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
    handoffs: AtomicU64,
    handoff_drops: AtomicU64,
    /// Load balancing: the engine's counters, connections in the table, and the
    /// connection listing handed over on request.
    engine: Mutex<Counters>,
    connections: AtomicU64,
    dump_requested: AtomicBool,
    dump: Mutex<(u32, Vec<Conn>)>,
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
    /// Frames handed to the worker owning their flow.
    pub handoffs: u64,
    /// Hand-offs lost to a full ring.
    pub handoff_drops: u64,
}

impl WorkerCounters {
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
        self.handoffs.store(c.handoffs, Relaxed);
        self.handoff_drops.store(c.handoff_drops, Relaxed);
    }

    /// Publishes the engine's counters (owning worker; a few times a second). Never waits:
    /// while a reader holds the slot this publication is skipped.
    pub fn publish_engine(&self, c: &Counters, connections: usize) {
        self.connections.store(connections as u64, Relaxed);
        if let Some(mut slot) = self.engine.try_lock() {
            slot.clone_from(c);
        }
    }

    pub fn read_engine(&self) -> Counters {
        self.engine.lock().clone()
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }

    /// Worker side, once per pass: is a connection listing wanted?
    #[inline]
    pub fn dump_wanted(&self) -> bool {
        self.dump_requested.load(Relaxed)
    }

    /// Worker side: hands over up to `limit` entries with the worker's clock `now`
    /// (off the packet path: it may allocate).
    pub fn hand_over<'a>(&self, entries: impl Iterator<Item = &'a Conn>, limit: usize, now: u32) {
        if let Some(mut out) = self.dump.try_lock() {
            out.0 = now;
            out.1.clear();
            out.1.extend(entries.take(limit));
            self.dump_requested.store(false, Ordering::Release);
        }
    }

    /// Control side: asks the worker for its connections and waits up to `timeout`;
    /// gives the worker's clock and the entries (None when the worker did not answer).
    pub fn request_connections(&self, timeout: Duration) -> Option<(u32, Vec<Conn>)> {
        self.dump.lock().1.clear();
        self.dump_requested.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout;
        while self.dump_requested.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                self.dump_requested.store(false, Ordering::Release);
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Some(std::mem::take(&mut *self.dump.lock()))
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
            handoffs: self.handoffs.load(Relaxed),
            handoff_drops: self.handoff_drops.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WorkerCounters;

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
