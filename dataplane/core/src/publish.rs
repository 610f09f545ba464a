//! RCU-style publication of snapshots. The control thread builds an immutable
//! [`Snapshot`] and publishes it; each worker checks the generation at a burst boundary and
//! takes the newest. A replaced snapshot is kept on a retired list until no worker holds
//! it, so a worker's release is a reference-count decrement, never a free on the lcore.
//! Each reader also says which generation it runs, so the control side can wait until a
//! change is in force (as ipvsadm's changes are when it returns).

use crate::engine::Snapshot;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
    retired: Mutex<Vec<Arc<Snapshot>>>,
    /// The generation each live reader runs.
    readers: Mutex<Vec<Weak<AtomicU64>>>,
}

impl std::fmt::Debug for SnapshotCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotCell(generation {})", self.generation())
    }
}

impl SnapshotCell {
    pub fn new(first: Snapshot) -> SnapshotCell {
        SnapshotCell {
            current: ArcSwap::from_pointee(first),
            generation: AtomicU64::new(1),
            retired: Mutex::new(Vec::new()),
            readers: Mutex::new(Vec::new()),
        }
    }

    /// Publishes `next` (control side) and returns its generation. Retired snapshots no
    /// worker holds any more are freed here.
    pub fn publish(&self, next: Snapshot) -> u64 {
        let old = self.current.swap(Arc::new(next));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut retired = self.retired.lock();
        retired.push(old);
        retired.retain(|s| Arc::strong_count(s) > 1);
        generation
    }

    /// Frees retired snapshots no worker holds; returns how many are still held.
    pub fn reclaim(&self) -> usize {
        let mut retired = self.retired.lock();
        retired.retain(|s| Arc::strong_count(s) > 1);
        retired.len()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Waits until every live reader runs `generation` or a newer one, for at most
    /// `limit`; true when they all do. A packet a reader takes after this returns true
    /// is handled by the published rules.
    pub fn wait_adopted(&self, generation: u64, limit: Duration) -> bool {
        // None: a limit past what an Instant holds, so no deadline.
        let deadline = Instant::now().checked_add(limit);
        let mut pause = Duration::from_micros(20);
        loop {
            let behind = {
                let mut readers = self.readers.lock();
                readers.retain(|r| r.strong_count() > 0);
                readers
                    .iter()
                    .filter_map(Weak::upgrade)
                    .any(|seen| seen.load(Ordering::Acquire) < generation)
            };
            if !behind {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// The newest snapshot (a full reference).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}

/// A worker's view: the snapshot it uses and the generation it was published as.
#[derive(Debug)]
pub struct SnapshotReader {
    cell: Arc<SnapshotCell>,
    snapshot: Arc<Snapshot>,
    /// The generation this reader runs (written by it only; the control side's
    /// `wait_adopted` reads it).
    seen: Arc<AtomicU64>,
}

impl SnapshotReader {
    pub fn new(cell: Arc<SnapshotCell>) -> SnapshotReader {
        let seen = Arc::new(AtomicU64::new(cell.generation()));
        let snapshot = cell.load();
        cell.readers.lock().push(Arc::downgrade(&seen));
        SnapshotReader {
            cell,
            snapshot,
            seen,
        }
    }

    /// At a burst boundary: takes the newest snapshot if one was published since the last
    /// call; true when it changed.
    #[inline]
    pub fn refresh(&mut self) -> bool {
        let g = self.cell.generation();
        if g == self.generation() {
            return false;
        }
        self.snapshot = self.cell.load();
        self.seen.store(g, Ordering::Release);
        true
    }

    pub fn get(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    #[inline]
    pub fn generation(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: usize) -> Snapshot {
        let ports = (0..n)
            .map(|_| crate::engine::PortInfo {
                mac: [0; 6],
                addrs: Vec::new(),
                mtu: 1500,
                ip_checksum_offload: false,
            })
            .collect();
        Snapshot::new(Vec::new(), ports, Vec::new(), Default::default())
    }

    #[test]
    fn readers_switch_on_refresh_and_retired_snapshots_wait_for_them() {
        let cell = Arc::new(SnapshotCell::new(snap(1)));
        let mut a = SnapshotReader::new(cell.clone());
        let mut b = SnapshotReader::new(cell.clone());
        assert!(!a.refresh());
        assert_eq!(cell.publish(snap(2)), 2);
        // Both readers still hold generation 1: it stays retired.
        assert_eq!(cell.reclaim(), 1);
        assert!(a.refresh());
        assert_eq!(a.get().ports.len(), 2);
        assert_eq!(cell.reclaim(), 1);
        assert!(b.refresh());
        assert_eq!(cell.reclaim(), 0);
        assert!(!b.refresh());
        cell.publish(snap(3));
        cell.publish(snap(4));
        assert!(a.refresh());
        assert_eq!((a.get().ports.len(), a.generation()), (4, 4));
    }

    #[test]
    fn a_change_is_in_force_once_every_live_reader_took_it() {
        let cell = Arc::new(SnapshotCell::new(snap(1)));
        let g = cell.publish(snap(2));
        // No reader: nothing to wait for.
        assert!(cell.wait_adopted(g, Duration::ZERO));
        let mut idle = SnapshotReader::new(cell.clone());
        let g = cell.publish(snap(3));
        let t = Instant::now();
        assert!(!cell.wait_adopted(g, Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        idle.refresh();
        assert!(cell.wait_adopted(g, Duration::ZERO));
        // A reader refreshing on another thread is waited for; a dropped one is not.
        let g = cell.publish(snap(4));
        let worker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            idle.refresh();
            idle
        });
        assert!(cell.wait_adopted(g, Duration::from_secs(10)));
        assert_eq!(worker.join().unwrap().get().ports.len(), 4);
        let g = cell.publish(snap(5));
        assert!(cell.wait_adopted(g, Duration::ZERO));
    }

    #[test]
    fn concurrent_readers_always_see_a_whole_snapshot() {
        let cell = Arc::new(SnapshotCell::new(snap(1)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cell, stop) = (cell.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut r = SnapshotReader::new(cell);
                    let mut last = 1;
                    let mut switches = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if r.refresh() {
                            let n = r.get().ports.len();
                            assert!(n >= last, "went back from {last} to {n}");
                            last = n;
                            switches += 1;
                        }
                    }
                    switches
                })
            })
            .collect();
        for n in 2..2000 {
            cell.publish(snap(n));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(cell.reclaim(), 0);
    }
}
