//! Per-worker counters. Each worker owns one cache-line-aligned block and is its only
//! writer (plain relaxed stores, published once per poll); readers take relaxed loads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    polls: AtomicU64,
    busy_polls: AtomicU64,
    rx_packets: AtomicU64,
    tx_packets: AtomicU64,
    tx_dropped: AtomicU64,
    malformed: AtomicU64,
    handoffs: AtomicU64,
    handoff_drops: AtomicU64,
}

/// A plain copy of a worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Passes over the worker's rx queues.
    pub polls: u64,
    /// Passes that received at least one packet.
    pub busy_polls: u64,
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
    /// Share of polls that found work, 0..=1.
    pub fn busy_share(&self) -> f64 {
        if self.polls == 0 {
            0.0
        } else {
            self.busy_polls as f64 / self.polls as f64
        }
    }
}

impl WorkerStats {
    /// Publishes the worker's running totals (called by the owning worker only).
    #[inline]
    pub fn publish(&self, c: &WorkerCounters) {
        self.polls.store(c.polls, Relaxed);
        self.busy_polls.store(c.busy_polls, Relaxed);
        self.rx_packets.store(c.rx_packets, Relaxed);
        self.tx_packets.store(c.tx_packets, Relaxed);
        self.tx_dropped.store(c.tx_dropped, Relaxed);
        self.malformed.store(c.malformed, Relaxed);
        self.handoffs.store(c.handoffs, Relaxed);
        self.handoff_drops.store(c.handoff_drops, Relaxed);
    }

    pub fn read(&self) -> WorkerCounters {
        WorkerCounters {
            polls: self.polls.load(Relaxed),
            busy_polls: self.busy_polls.load(Relaxed),
            rx_packets: self.rx_packets.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_dropped: self.tx_dropped.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            handoffs: self.handoffs.load(Relaxed),
            handoff_drops: self.handoff_drops.load(Relaxed),
        }
    }
}
