//! Packet capture off the worker cores: while a capture runs, each worker copies the frames
//! of the chosen port and direction that pass the filter (up to [`SNAPLEN`] bytes) into a
//! preallocated slot taken from a free list and queues it for the writer thread; with no
//! free slot the frame is counted as dropped, never waited for. Nothing is allocated on
//! the worker; with no capture running a worker pays one atomic load per burst.

use crate::bpf::Program;
use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

/// Bytes of a frame a capture keeps (a whole standard Ethernet frame).
pub const SNAPLEN: usize = 1536;

/// Directions a capture takes.
pub const RX: u8 = 1;
pub const TX: u8 = 2;

/// A tcpdump filter: its text, and the classic BPF program libpcap compiled it into (run
/// on each frame a capture considers); no program takes every frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    pub text: String,
    pub program: Option<Program>,
}

impl CaptureFilter {
    /// Whether an Ethernet frame passes.
    #[inline]
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.program.as_ref().is_none_or(|p| p.run(frame) != 0)
    }
}

/// One captured frame.
pub struct CaptureSlot {
    pub len: usize,
    pub orig_len: usize,
    /// Nanoseconds since the Unix epoch (the writer stamps what the worker's TSC says).
    pub at_ns: u64,
    pub port: u16,
    pub tx: bool,
    pub data: [u8; SNAPLEN],
}

/// The capture shared by the workers and the control side.
pub struct Capture {
    active: AtomicBool,
    /// The port captured (u32::MAX: every port).
    port: AtomicU32,
    dirs: AtomicU8,
    filter: ArcSwap<CaptureFilter>,
    free: ArrayQueue<Box<CaptureSlot>>,
    full: ArrayQueue<Box<CaptureSlot>>,
    captured: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Capture(active {})", self.active.load(Relaxed))
    }
}

impl Capture {
    /// A capture with `slots` frames of room between the workers and the writer.
    pub fn new(slots: usize) -> Arc<Capture> {
        let slots = slots.max(1);
        let free = ArrayQueue::new(slots);
        for _ in 0..slots {
            let _ = free.push(Box::new(CaptureSlot {
                len: 0,
                orig_len: 0,
                at_ns: 0,
                port: 0,
                tx: false,
                data: [0; SNAPLEN],
            }));
        }
        Arc::new(Capture {
            active: AtomicBool::new(false),
            port: AtomicU32::new(u32::MAX),
            dirs: AtomicU8::new(0),
            filter: ArcSwap::from_pointee(CaptureFilter::default()),
            free,
            full: ArrayQueue::new(slots),
            captured: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Control side: starts capturing `dirs` ([`RX`] | [`TX`]) of `port` (None: all).
    pub fn start(&self, port: Option<u16>, dirs: u8, filter: CaptureFilter) {
        self.filter.store(Arc::new(filter));
        self.port.store(port.map_or(u32::MAX, u32::from), Relaxed);
        self.dirs.store(dirs, Relaxed);
        self.captured.store(0, Relaxed);
        self.dropped.store(0, Relaxed);
        self.active
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn stop(&self) {
        self.active
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Worker side, once per burst: whether frames of `port` in direction `dir` are wanted.
    #[inline]
    pub fn wants(&self, port: u16, dir: u8) -> bool {
        self.active.load(Relaxed)
            && self.dirs.load(Relaxed) & dir != 0
            && matches!(self.port.load(Relaxed), p if p == u32::MAX || p == u32::from(port))
    }

    /// The filter, for a burst.
    #[inline]
    pub fn filter(&self) -> arc_swap::Guard<Arc<CaptureFilter>> {
        self.filter.load()
    }

    /// Worker side: copies `frame` if a slot is free (else counts it dropped).
    #[inline]
    pub fn offer(&self, port: u16, tx: bool, frame: &[u8], at_ns: u64) {
        let Some(mut slot) = self.free.pop() else {
            self.dropped.fetch_add(1, Relaxed);
            return;
        };
        let len = frame.len().min(SNAPLEN).min(slot.data.len());
        if let (Some(to), Some(from)) = (slot.data.get_mut(..len), frame.get(..len)) {
            to.copy_from_slice(from);
        }
        slot.len = len;
        slot.orig_len = frame.len();
        slot.at_ns = at_ns;
        slot.port = port;
        slot.tx = tx;
        match self.full.push(slot) {
            Ok(()) => {
                self.captured.fetch_add(1, Relaxed);
            }
            Err(slot) => {
                let _ = self.free.push(slot);
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Writer side: the next captured frame.
    pub fn take(&self) -> Option<Box<CaptureSlot>> {
        self.full.pop()
    }

    /// Writer side: a slot written, back to the workers.
    pub fn give_back(&self, slot: Box<CaptureSlot>) {
        let _ = self.free.push(slot);
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Relaxed)
    }

    /// Frames captured and frames dropped for want of a slot, since the start.
    pub fn counts(&self) -> (u64, u64) {
        (self.captured.load(Relaxed), self.dropped.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn a_filter_runs_its_program() {
        use crate::bpf::Insn;
        // `tcpdump -dd ip`: ldh [12]; jeq #0x800 jt 0 jf 1; ret #262144; ret #0.
        let ip = [
            (0x28, 0, 0, 12),
            (0x15, 0, 1, 0x800),
            (0x06, 0, 0, 262144),
            (0x06, 0, 0, 0),
        ];
        let program = Program::new(
            ip.map(|(code, jt, jf, k)| Insn { code, jt, jf, k })
                .to_vec(),
        )
        .unwrap();
        let f = CaptureFilter {
            text: "ip".into(),
            program: Some(program),
        };
        assert!(f.matches(&tcp([10, 0, 0, 2], [1, 2, 3, 4], 80, 5000)));
        let mut arp = tcp([10, 0, 0, 2], [1, 2, 3, 4], 80, 5000);
        arp[13] = 0x06;
        assert!(!f.matches(&arp));
        assert!(!f.matches(&[0u8; 12]), "too short to tell");
        assert!(
            CaptureFilter::default().matches(&[]),
            "no filter: everything"
        );
    }

    /// Slots go round between the workers and the writer; with none free a frame is
    /// dropped and counted, never waited for.
    #[test]
    fn a_full_capture_drops_and_counts() {
        let c = Capture::new(4);
        assert!(!c.wants(0, RX));
        c.start(Some(1), RX, CaptureFilter::default());
        assert!(c.wants(1, RX) && !c.wants(0, RX) && !c.wants(1, TX));
        let frame = vec![7u8; 2000];
        for _ in 0..6 {
            c.offer(1, false, &frame, 5);
        }
        assert_eq!(c.counts(), (4, 2));
        let s = c.take().unwrap();
        assert_eq!((s.len, s.orig_len, s.at_ns), (SNAPLEN, 2000, 5));
        c.give_back(s);
        c.offer(1, true, &frame[..60], 6);
        assert_eq!(c.counts(), (5, 2));
        c.stop();
        assert!(!c.wants(1, RX));
    }
}
