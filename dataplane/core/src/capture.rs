//! Packet capture off the worker cores: while a capture runs, each worker copies the frames
//! of the chosen port and direction that pass the filter (up to [`SNAPLEN`] bytes) into a
//! preallocated slot taken from a free list and queues it for the writer thread; with no
//! free slot the frame is counted as dropped, never waited for. Nothing is allocated on
//! the worker; with no capture running a worker pays one atomic load per burst.

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

/// Bytes of a frame a capture keeps (a whole standard Ethernet frame).
pub const SNAPLEN: usize = 1536;

/// Directions a capture takes.
pub const RX: u8 = 1;
pub const TX: u8 = 2;

/// A tcpdump-style filter: every given part must hold ("tcp port 80 and host 10.0.0.2").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    pub proto: Option<u8>,
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
}

impl CaptureFilter {
    /// Reads `tcp|udp|icmp|icmp6|sctp`, `host ADDR`, `port N`, joined by `and` or nothing.
    pub fn parse(words: &[&str]) -> Result<CaptureFilter, String> {
        let mut f = CaptureFilter::default();
        let mut i = 0;
        while i < words.len() {
            match words[i] {
                "and" | "&&" => {}
                "tcp" => f.proto = Some(6),
                "udp" => f.proto = Some(17),
                "icmp" => f.proto = Some(1),
                "icmp6" => f.proto = Some(58),
                "sctp" => f.proto = Some(132),
                "host" => {
                    i += 1;
                    let a = words.get(i).ok_or("host: an address is missing")?;
                    f.host = Some(a.parse().map_err(|_| format!("host {a:?}: not an address"))?);
                }
                "port" => {
                    i += 1;
                    let p = words.get(i).ok_or("port: a number is missing")?;
                    f.port = Some(p.parse().map_err(|_| format!("port {p:?}: not a port"))?);
                }
                w => {
                    return Err(format!(
                        "{w:?}: a filter is tcp, udp, icmp, icmp6, sctp, host ADDR, port N, joined by and"
                    ))
                }
            }
            i += 1;
        }
        Ok(f)
    }

    /// Whether an Ethernet frame passes (through VLAN tags; IPv4 and IPv6).
    pub fn matches(&self, frame: &[u8]) -> bool {
        if *self == CaptureFilter::default() {
            return true;
        }
        let mut at = 12;
        let word = |at: usize| {
            frame
                .get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        while matches!(word(at), Some(0x8100 | 0x88a8)) {
            at += 4;
        }
        let l3 = at + 2;
        let (proto, src, dst, l4) = match word(at) {
            Some(0x0800) => {
                let Some(h) = frame.get(l3..l3 + 20) else {
                    return false;
                };
                let ihl = usize::from(h[0] & 0x0f) * 4;
                let a = |o: usize| IpAddr::from([h[o], h[o + 1], h[o + 2], h[o + 3]]);
                // Later fragments carry no ports.
                let later = u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0;
                (h[9], a(12), a(16), (!later).then_some(l3 + ihl))
            }
            Some(0x86dd) => {
                let Some(h) = frame.get(l3..l3 + 40) else {
                    return false;
                };
                let a = |o: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&h[o..o + 16]);
                    IpAddr::from(b)
                };
                (h[6], a(8), a(24), Some(l3 + 40))
            }
            _ => return false,
        };
        if self.proto.is_some_and(|p| p != proto) {
            return false;
        }
        if self.host.is_some_and(|h| h != src && h != dst) {
            return false;
        }
        if let Some(port) = self.port {
            let ports = matches!(proto, 6 | 17 | 132)
                .then_some(l4)
                .flatten()
                .and_then(|l4| frame.get(l4..l4 + 4));
            match ports {
                Some(p) => {
                    let (s, d) = (
                        u16::from_be_bytes([p[0], p[1]]),
                        u16::from_be_bytes([p[2], p[3]]),
                    );
                    if s != port && d != port {
                        return false;
                    }
                }
                None => return false,
            }
        }
        true
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
        let len = frame.len().min(SNAPLEN);
        slot.data[..len].copy_from_slice(&frame[..len]);
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
    fn filters_read_and_match_as_tcpdump_s() {
        let f = CaptureFilter::parse(&["tcp", "port", "80", "and", "host", "10.0.0.2"]).unwrap();
        assert!(f.matches(&tcp([10, 0, 0, 2], [1, 2, 3, 4], 80, 5000)));
        assert!(f.matches(&tcp([1, 2, 3, 4], [10, 0, 0, 2], 5000, 80)));
        assert!(!f.matches(&tcp([1, 2, 3, 4], [10, 0, 0, 3], 5000, 80)));
        assert!(!f.matches(&tcp([10, 0, 0, 2], [1, 2, 3, 4], 81, 5000)));
        let mut udp = tcp([10, 0, 0, 2], [1, 2, 3, 4], 80, 80);
        udp[14 + 9] = 17;
        assert!(!f.matches(&udp));
        assert!(
            CaptureFilter::default().matches(&[]),
            "no filter: everything"
        );
        assert!(!f.matches(&[0u8; 20]), "not IP");
        for len in 0..54 {
            let _ = f.matches(&tcp([10, 0, 0, 2], [1, 2, 3, 4], 80, 1)[..len]);
        }
        assert!(CaptureFilter::parse(&["port"]).is_err());
        assert!(CaptureFilter::parse(&["host", "x"]).is_err());
        assert!(CaptureFilter::parse(&["greater", "100"]).is_err());
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
