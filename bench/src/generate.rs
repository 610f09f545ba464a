//! The generator's loop: warm-up (established TCP: the flows' SYNs), then the measured
//! window, then a drain until nothing more arrives. One lane runs on the main lcore; with
//! more CPUs given, further lanes (see [`crate::lanes`]) run on threads registered with
//! EAL, each on the queues and flows of its own. The first lane leads: it decides when the
//! window opens and closes (a TSC every lane compares with), reads the workers' counters
//! at those moments, and the lanes' figures are summed when all have drained.

use crate::gen::{Generator, Histogram, Kind, Source, Stamp, Traffic};
use crate::lanes::{lane_of_queue, split_flows, FreshClients};
use crate::memif::Dut;
use crate::nic::NicModel;
use crate::run::{rss_kib, Latency, Outcome, Scenario, Wiring};
use dpdk::{Eal, MbufBurst, Mempool, BURST};
use rvs_core::stats::STAGES;
use rvs_core::{WorkerCounters, WorkerStats};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// The generator's ends of the wiring: a tx queue towards each worker (flows spread as a
/// NIC's RSS would), and the rx queues it drains.
pub struct GenPorts<'a> {
    pub eal: &'a Eal,
    pub pool: &'a Mempool,
    pub tx: &'a mut [dpdk::TxQueue],
    pub rx: &'a mut [dpdk::RxQueue],
    /// CPUs of the lanes after the first (which runs on the calling thread); at most one
    /// lane a tx queue.
    pub lane_cpus: &'a [u32],
}

/// A lane's progress, as the leading lane reads it.
#[repr(align(64))]
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    received: AtomicU64,
    /// Its established flows' first round is out.
    opened: AtomicBool,
}

/// What the lanes share.
struct Shared {
    progress: Vec<Progress>,
    /// The TSC at which every lane opens, then closes, its window (u64::MAX: not yet).
    start_at: AtomicU64,
    end_at: AtomicU64,
    /// A lane failed: the others stop.
    failed: AtomicBool,
    /// With several lanes, per established flow its lane and its place among the lane's
    /// flows (`lane << SLOT_BITS | place`): each lane keeps its own flows' sequence numbers,
    /// so no two lanes write one cache line (empty: one lane, flow number = place).
    slots: Vec<u32>,
}

/// Bits of a flow's place in [`Shared::slots`] (flows are fewer than 2^27).
const SLOT_BITS: u32 = 27;

/// TSC, packets sent and received at one edge of a lane's window.
type Edge = (u64, u64, u64);

struct Lane<'a> {
    index: usize,
    /// Established flows it sends (their sequence numbers are checked).
    tracked: usize,
    lanes: usize,
    /// Tx queues of port A in all (the NIC model's queues).
    queues: usize,
    tx: Vec<&'a mut dpdk::TxQueue>,
    rx: Vec<&'a mut dpdk::RxQueue>,
    gen: Generator,
}

struct LaneOutcome {
    start: Edge,
    end: Edge,
    sent: u64,
    received: u64,
    reordered: u64,
    offers: u64,
    ring_full: u64,
    hist: Histogram,
}

/// The leading lane's duties: the window's edges and what the workers say at them.
struct Leader<'a> {
    workers: &'a [Arc<WorkerStats>],
    /// Connections the workers' tables hold in all (a SYN flood fills them).
    capacity: u64,
    syn: bool,
    warmup: u64,
    window: u64,
    start: u64,
    /// When it last looked (it looks every 10 us: the lanes' lines stay theirs).
    looked: u64,
    full_at: Option<(u64, u64)>,
    busy_from: Vec<WorkerCounters>,
    rss_before: u64,
    out: &'a mut Outcome,
}

impl Leader<'_> {
    fn connections(&self) -> u64 {
        self.workers.iter().map(|w| w.connections()).sum()
    }

    fn read_workers(&self) -> Vec<WorkerCounters> {
        self.workers.iter().map(|w| w.read()).collect()
    }

    fn step(&mut self, now: u64, shared: &Shared) {
        let hz = dpdk::tsc_hz().max(1);
        if now - self.looked < hz / 100_000 {
            return;
        }
        self.looked = now;
        if self.syn && self.full_at.is_none() {
            let received: u64 = shared
                .progress
                .iter()
                .map(|p| p.received.load(Relaxed))
                .sum();
            if received >= self.capacity || self.connections() >= self.capacity {
                self.full_at = Some((now, received));
            }
        }
        let start_at = shared.start_at.load(Relaxed);
        if start_at == u64::MAX {
            let opened = shared.progress.iter().all(|p| p.opened.load(Relaxed));
            if opened && now - self.start >= self.warmup {
                shared.start_at.store(now, Relaxed);
                self.busy_from = self.read_workers();
            }
            return;
        }
        // A SYN flood ends half a second after its table filled.
        let ended =
            now - start_at >= self.window || self.full_at.is_some_and(|(t, _)| now - t > hz / 2);
        if !ended || shared.end_at.load(Relaxed) != u64::MAX {
            return;
        }
        shared.end_at.store(now, Relaxed);
        let now_read = self.read_workers();
        let out = &mut *self.out;
        out.worker_busy = busy_between(&self.busy_from, &now_read);
        out.worker_sleeps = now_read
            .iter()
            .zip(&self.busy_from)
            .map(|(a, b)| a.sleeps.saturating_sub(b.sleeps))
            .sum();
        let window: Vec<WorkerCounters> = now_read
            .iter()
            .zip(&self.busy_from)
            .map(|(a, b)| a.since(b))
            .collect();
        let rx: u64 = window.iter().map(|w| w.rx_packets).sum();
        let handed: u64 = window.iter().map(|w| w.handoffs).sum();
        out.handoff_percent = 100.0 * handed as f64 / rx.max(1) as f64;
        out.cycles_per_packet = STAGES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let c: u64 = window.iter().map(|w| w.stage_cycles[i]).sum();
                (name.to_string(), c as f64 / rx.max(1) as f64)
            })
            .collect();
        // While the workers still hold their tables.
        out.rss_growth_mib = rss_kib().saturating_sub(self.rss_before) as f64 / 1024.0;
    }
}

/// Mean share of busy time over the workers between two readings of their counters.
fn busy_between(before: &[WorkerCounters], after: &[WorkerCounters]) -> f64 {
    let shares: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let cycles = a.cycles.saturating_sub(b.cycles);
            let busy = a.busy_cycles.saturating_sub(b.busy_cycles);
            if cycles == 0 {
                0.0
            } else {
                busy as f64 / cycles as f64
            }
        })
        .collect();
    if shares.is_empty() {
        0.0
    } else {
        shares.iter().sum::<f64>() / shares.len() as f64
    }
}

/// One lane's loop; `leader` on the first lane only.
fn run_lane(
    lane: Lane<'_>,
    shared: &Shared,
    s: &Scenario,
    pool: &Mempool,
    mut leader: Option<&mut Leader<'_>>,
) -> Result<LaneOutcome, String> {
    let Lane {
        index,
        tracked,
        lanes,
        queues,
        mut tx,
        mut rx,
        mut gen,
    } = lane;
    let mut queued: Vec<MbufBurst<BURST>> = (0..tx.len()).map(|_| MbufBurst::new()).collect();
    let nic = NicModel::new(queues);
    let frame_len = gen.frame_len() as u16;
    let first_round = gen.first_round();
    let idle = gen.is_idle() || tx.is_empty();
    let rate = s.rate.map(|r| r / lanes as f64);
    let hz = dpdk::tsc_hz().max(1);
    let ns_per_cycle = 1e9 / hz as f64;
    let secs = |cycles: u64| cycles as f64 / hz as f64;
    let progress = &shared.progress[index];
    // The last sequence number received per flow of the lane (u32::MAX: none yet).
    let mut last_seq = vec![u32::MAX; tracked];
    let mut hist = Histogram::default();
    let mut burst: MbufBurst<BURST> = MbufBurst::new();
    let mut back: MbufBurst<BURST> = MbufBurst::new();
    let (mut sent, mut received, mut reordered) = (0u64, 0u64, 0u64);
    let (mut offers, mut ring_full) = (0u64, 0u64);
    let window = (hz as f64 * s.seconds) as u64;
    let start = dpdk::tsc_now();
    let give_up = start + window * 4 + hz * 30;
    let mut window_start: Option<Edge> = None;
    let mut window_end: Option<Edge> = None;
    let mut measuring = false;
    let mut rate_from = (start, 0u64);
    let mut last_arrival = start;

    loop {
        let now = dpdk::tsc_now();
        if shared.failed.load(Relaxed) {
            // The failing lane says why.
            return Err(String::new());
        }
        if now > give_up {
            shared.failed.store(true, Relaxed);
            return Err(format!(
                "{}: no progress (generator lane {index}: sent {sent}, received {received})",
                s.name
            ));
        }
        // Receive everything waiting.
        for q in rx.iter_mut() {
            let n = q.rx_burst(&mut back);
            if n == 0 {
                continue;
            }
            last_arrival = dpdk::tsc_now();
            let t32 = last_arrival as u32;
            for m in back.as_slice() {
                let Some(st) = Stamp::read(m.data()) else {
                    continue;
                };
                received += 1;
                if measuring {
                    hist.record((f64::from(t32.wrapping_sub(st.ts)) * ns_per_cycle) as u64);
                }
                let place = match shared.slots.get(st.flow as usize) {
                    None if shared.slots.is_empty() => Some(st.flow as usize),
                    Some(&slot) if (slot >> SLOT_BITS) as usize == index => {
                        Some((slot & ((1 << SLOT_BITS) - 1)) as usize)
                    }
                    // Another lane's flow (handed off to a worker of this lane).
                    _ => None,
                };
                if let Some(last) = place.and_then(|p| last_seq.get_mut(p)) {
                    if *last != u32::MAX && st.seq <= *last {
                        reordered += 1;
                    } else {
                        *last = st.seq;
                    }
                }
            }
            back.clear();
        }
        progress.sent.store(sent, Relaxed);
        progress.received.store(received, Relaxed);
        if sent >= first_round {
            progress.opened.store(true, Relaxed);
        }
        if let Some(l) = leader.as_deref_mut() {
            l.step(now, shared);
        }
        if window_start.is_none() && now >= shared.start_at.load(Relaxed) {
            window_start = Some((now, sent, received));
            measuring = true;
            hist = Histogram::default();
            rate_from = (now, sent);
        } else if window_start.is_some()
            && window_end.is_none()
            && now >= shared.end_at.load(Relaxed)
        {
            window_end = Some((now, sent, received));
            measuring = false;
        }
        if let Some((t1, _, _)) = window_end {
            // Drain: until everything arrived, nothing arrived for 20 ms, or 1 s passed.
            if received >= sent || now.saturating_sub(last_arrival) > hz / 50 || now - t1 > hz {
                break;
            }
            continue;
        }
        if idle {
            continue;
        }
        // Offer one burst (rate-limited runs only as many as are due).
        let mut want = BURST;
        if let Some(rate) = rate {
            let due = (secs(now - rate_from.0) * rate) as u64 + rate_from.1;
            // After a stall of the generator's core, catch up by at most two bursts: the
            // rest is skipped, so latency shows rvs's queueing, not the generator's.
            if due > sent + 2 * BURST as u64 {
                let excess = (due - sent - 2 * BURST as u64) as f64;
                rate_from.0 += (excess / rate * hz as f64) as u64;
            }
            let due = (secs(now - rate_from.0) * rate) as u64 + rate_from.1;
            want = want.min(due.saturating_sub(sent) as usize);
        }
        // A new burst once the last one is all out; each frame to its flow's queue.
        if queued.iter().all(|q| q.is_empty()) && want > 0 && pool.alloc_bulk(&mut burst, want) {
            let tsc = dpdk::tsc_now();
            let last = queued.len() - 1;
            burst.drain_each(|mut m| {
                let flow = m.append(frame_len).map(|frame| gen.next(frame, tsc));
                let q = match flow {
                    Some(flow) if queues > 1 => {
                        let (ip, port) = crate::gen::flow_addr(flow);
                        let queue = nic.queue(IpAddr::from(ip.to_be_bytes()), port);
                        lane_of_queue(queue, lanes).1
                    }
                    _ => 0,
                };
                let _ = queued[q.min(last)].push(m);
            });
        }
        for (q, b) in tx.iter_mut().zip(queued.iter_mut()) {
            if b.is_empty() {
                continue;
            }
            let before = b.len();
            let n = q.tx_burst(b);
            sent += n as u64;
            if measuring {
                offers += 1;
                ring_full += u64::from(n < before);
            }
        }
    }
    // Dropped bursts left over from the last offer are not counted as sent.
    burst.clear();
    queued.iter_mut().for_each(|q| q.clear());
    Ok(LaneOutcome {
        start: window_start.ok_or("no window")?,
        end: window_end.ok_or("no window end")?,
        sent,
        received,
        reordered,
        offers,
        ring_full,
        hist,
    })
}

/// `workers`: the workers' statistics when they run in this process (empty otherwise).
pub fn generate(
    ports: GenPorts<'_>,
    traffic: Traffic,
    s: &Scenario,
    workers: &[Arc<WorkerStats>],
    rss_before: u64,
    out: &mut Outcome,
) -> Result<(), String> {
    let GenPorts {
        eal,
        pool,
        tx,
        rx,
        lane_cpus,
    } = ports;
    let queues = tx.len().max(1);
    let lanes = (1 + lane_cpus.len()).min(queues);
    let nic = NicModel::new(queues);
    let mut tx_of: Vec<Vec<&mut dpdk::TxQueue>> = (0..lanes).map(|_| Vec::new()).collect();
    for (q, t) in tx.iter_mut().enumerate() {
        tx_of[lane_of_queue(q, lanes).0].push(t);
    }
    let mut rx_of: Vec<Vec<&mut dpdk::RxQueue>> = (0..lanes).map(|_| Vec::new()).collect();
    for (q, r) in rx.iter_mut().enumerate() {
        rx_of[lane_of_queue(q, lanes).0].push(r);
    }
    // Each lane's flows: all of them for one lane, else those on its queues.
    let syn = traffic.kind == Kind::Syn;
    let mut split = if lanes > 1 && !syn {
        split_flows(&nic, traffic.flows, lanes)
    } else {
        Vec::new()
    };
    let mut slots = vec![
        0u32;
        if split.is_empty() {
            0
        } else {
            s.flows as usize
        }
    ];
    for (lane, flows) in split.iter().enumerate() {
        for (place, &f) in flows.iter().enumerate() {
            slots[f as usize] = (lane as u32) << SLOT_BITS | place as u32;
        }
    }
    let mut all_lanes: Vec<Lane<'_>> = tx_of
        .into_iter()
        .zip(rx_of)
        .enumerate()
        .map(|(index, (tx, rx))| {
            let tracked = match split.get(index) {
                _ if syn => 0,
                Some(flows) => flows.len(),
                None => s.flows as usize,
            };
            let source = if lanes == 1 {
                Source::All
            } else if syn {
                FreshClients::new(&nic, index, lanes)
                    .map_or(Source::Listed(Vec::new()), |f| Source::Fresh(Box::new(f)))
            } else {
                Source::Listed(std::mem::take(&mut split[index]))
            };
            Lane {
                index,
                tracked,
                lanes,
                queues,
                tx,
                rx,
                gen: Generator::of(traffic, source),
            }
        })
        .collect();
    let shared = Shared {
        progress: (0..lanes).map(|_| Progress::default()).collect(),
        start_at: AtomicU64::new(u64::MAX),
        end_at: AtomicU64::new(u64::MAX),
        failed: AtomicBool::new(false),
        slots,
    };
    let hz = dpdk::tsc_hz().max(1);
    let mut leader = Leader {
        workers,
        // Table capacity is per worker.
        capacity: (s.conn_capacity * workers.len().max(1)) as u64,
        syn: s.kind == Kind::Syn,
        warmup: (hz as f64 * 0.2) as u64,
        window: (hz as f64 * s.seconds) as u64,
        start: dpdk::tsc_now(),
        looked: 0,
        full_at: None,
        busy_from: Vec::new(),
        rss_before,
        out,
    };
    let first = all_lanes.remove(0);
    let results: Vec<Result<LaneOutcome, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = all_lanes
            .into_iter()
            .zip(lane_cpus)
            .map(|(lane, &cpu)| {
                let shared = &shared;
                scope.spawn(move || {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu as usize });
                    let outcome = dpdk::register_thread(eal)
                        .map_err(|e| format!("{}: generator lane: {e}", s.name))
                        .and_then(|_registered| run_lane(lane, shared, s, pool, None));
                    if outcome.is_err() {
                        shared.failed.store(true, Relaxed);
                    }
                    outcome
                })
            })
            .collect();
        let led = run_lane(first, &shared, s, pool, Some(&mut leader));
        if led.is_err() {
            shared.failed.store(true, Relaxed);
        }
        std::iter::once(led)
            .chain(handles.into_iter().map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(format!("{}: a generator lane panicked", s.name)))
            }))
            .collect()
    });
    let full_at = leader.full_at;
    let start = leader.start;
    let out = leader.out;
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(o) => done.push(o),
            Err(e) if !e.is_empty() => failures.push(e),
            Err(_) => {}
        }
    }
    if !failures.is_empty() || done.len() != lanes {
        return Err(failures.join("; "));
    }
    out.generators = lanes;
    let sum = |f: fn(&LaneOutcome) -> u64| done.iter().map(f).sum::<u64>();
    let (t0, _, _) = done[0].start;
    let (t1, _, _) = done[0].end;
    let secs = |cycles: u64| cycles as f64 / hz as f64;
    let elapsed = secs(t1 - t0);
    let offered = sum(|l| l.end.1 - l.start.1);
    let forwarded = sum(|l| l.end.2 - l.start.2);
    let (offers, ring_full) = (sum(|l| l.offers), sum(|l| l.ring_full));
    out.seconds = elapsed;
    out.sent = sum(|l| l.sent);
    out.received = sum(|l| l.received);
    out.lost = out.sent.saturating_sub(out.received);
    out.reordered = sum(|l| l.reordered);
    out.ring_full = ring_full;
    out.offers = offers;
    // rvs limits when most offers found its rx ring full.
    let dut = if s.wiring == Wiring::Memif(Dut::Testpmd) {
        "testpmd"
    } else {
        "rvs"
    };
    out.bottleneck = if ring_full * 10 > offers {
        dut
    } else if s.rate.is_some() {
        "rate limit"
    } else {
        "generator"
    }
    .into();
    out.offered_mpps = offered as f64 / elapsed / 1e6;
    out.forwarded_mpps = forwarded as f64 / elapsed / 1e6;
    out.forwarded_gbps = out.forwarded_mpps * f64::from(s.size.max(60) + 24) * 8.0 / 1e3;
    out.connections = workers.iter().map(|w| w.connections()).sum();
    let mut hist = Histogram::default();
    for l in &done {
        hist.merge(&l.hist);
    }
    out.latency_ns = Latency {
        min: if hist.count == 0 { 0 } else { hist.min },
        avg: hist.mean(),
        p50: hist.quantile(0.5),
        p99: hist.quantile(0.99),
        max: hist.max,
        samples: hist.count,
    };
    if s.kind == Kind::Syn {
        out.table_full_after = full_at.map(|(t, _)| secs(t - start));
        // While the table fills every forwarded SYN is a new connection.
        out.conns_per_sec = match full_at {
            Some((t, n)) => n as f64 / secs(t - start),
            None => forwarded as f64 / elapsed,
        };
    }
    Ok(())
}
