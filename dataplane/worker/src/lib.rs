//! The poll-mode loop of one worker lcore: the I/O adapter between DPDK queues and the
//! pure forwarding core. Per packet it neither allocates, locks, logs nor makes syscalls.
//! The only crate that sees both DPDK and the core.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod idle;
mod mbuf_frame;
mod set;

pub use set::{LbShared, RunningWorker, WorkerOutcome, WorkerQueues, WorkerSet};

use crossbeam::queue::ArrayQueue;
use dpdk::{MbufBurst, Mempool, PortsQuiet, RingConsumer, RingProducer, RxQueue, TxQueue, BURST};
pub use mbuf_frame::MbufFrame;
use rvs_core::capture::{self, Capture};
use rvs_core::engine::{self, Counters, Engine, Frame, Parsed};
use rvs_core::forward::{self, ForwardMode, Verdict};
use rvs_core::publish::SnapshotReader;
use rvs_core::sched::DestLoad;
use rvs_core::stats::{stage, WorkerCounters, WorkerStats};
use rvs_wire::partial;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, Ordering};
use std::sync::Arc;

/// One rx queue the worker polls and the port its frames leave by.
#[derive(Debug)]
pub struct RxAssignment {
    pub rx: RxQueue,
    /// Index into [`WorkerPlan::tx`] (diagnostic modes).
    pub out_port: usize,
    /// The receiving port's index in the configuration and snapshot.
    pub in_port: u16,
    /// A host TAP twin's queue: what the kernel sends leaves by `out_port` untouched.
    pub from_host: bool,
    /// The port reads a kernel device directly (AF_XDP, AF_PACKET): TCP and UDP
    /// checksums its senders left partial are completed on arrival.
    pub complete_checksums: bool,
}

/// What a load-balancing worker owns besides its queues.
#[derive(Debug)]
pub(crate) struct LbContext {
    pub engine: Engine,
    pub snapshot: SnapshotReader,
    pub loads: Arc<Vec<DestLoad>>,
    pub handoff: Handoff,
    /// Which worker took each datagram's first fragment (shared by all workers).
    pub frag_owners: Arc<engine::FragOwners>,
    /// The TSC reading every worker's clock (seconds, [`Engine`]'s `now`) counts from, so
    /// that what they share (templates' deadlines) reads the same on each.
    pub clock_start: u64,
    /// Where worker 0 takes the buffers of the ARP requests / neighbour solicitations it
    /// sends ahead of traffic for real servers and gateways (None: only on demand).
    pub solicit_pool: Option<Mempool>,
    /// Where every worker takes the buffers of the frames it makes: IPv4 fragments, frames
    /// that waited for a neighbour (None: a datagram to fragment is dropped as too big).
    pub pool: Option<Mempool>,
    /// The packet capture the control side may start.
    pub capture: Option<Arc<Capture>>,
}

/// Nanoseconds since the Unix epoch (read once per burst, only while capturing).
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Copies the frames of `burst` received on `port` that the running capture wants.
fn capture_rx(capture: Option<&Capture>, port: u16, burst: &MbufBurst<BURST>) {
    let Some(c) = capture.filter(|c| c.wants(port, capture::RX)) else {
        return;
    };
    let (filter, at) = (c.filter(), wall_ns());
    for m in burst.as_slice() {
        if filter.matches(m.data()) {
            c.offer(port, false, m.data(), at);
        }
    }
}

/// A neighbour one worker learned or heard again: address, MAC, when (seconds).
pub type NeighbourNews = (IpAddr, [u8; 6], u32);

/// Most requests sent ahead of traffic per second.
const SOLICIT_PER_SECOND: usize = 32;

/// This worker's ends of the hand-off rings: one producer towards every other worker, one
/// consumer from every other worker (single producer, single consumer each).
#[derive(Default)]
pub(crate) struct Handoff {
    pub me: usize,
    pub workers: usize,
    /// Indexed by the receiving worker; None for this worker itself.
    pub to: Vec<Option<RingProducer>>,
    pub from: Vec<RingConsumer>,
    /// Every worker's inbox of neighbour news, by worker (empty: nothing shared). An
    /// answer to ARP reaches one queue; its worker tells the others through these.
    pub neighbours: Vec<Arc<ArrayQueue<NeighbourNews>>>,
}

/// Frames one hand-off ring holds.
const HANDOFF_RING: u32 = 1024;

impl Handoff {
    /// The hand-off ends of `workers` workers, sharing neighbour inboxes; with `rings`
    /// (load balancing), a ring for each ordered pair of workers, named `{prefix}_{a}_{b}`
    /// on `socket`.
    pub fn mesh(
        eal: &dpdk::Eal,
        workers: usize,
        rings: bool,
        prefix: &str,
        socket: i32,
    ) -> Result<Vec<Handoff>, dpdk::Error> {
        let inboxes = Handoff::neighbour_inboxes(workers);
        let mut mesh: Vec<Handoff> = (0..workers)
            .map(|me| Handoff {
                me,
                workers,
                to: (0..workers).map(|_| None).collect(),
                from: Vec::new(),
                neighbours: inboxes.clone(),
            })
            .collect();
        for a in (0..workers).filter(|_| rings) {
            for b in (0..workers).filter(|&b| b != a) {
                let name = format!("{prefix}_{a}_{b}");
                let (p, c) = dpdk::mbuf_ring(eal, &name, HANDOFF_RING, socket)?;
                if let Some(to) = mesh.get_mut(a).and_then(|h| h.to.get_mut(b)) {
                    *to = Some(p);
                }
                if let Some(h) = mesh.get_mut(b) {
                    h.from.push(c);
                }
            }
        }
        Ok(mesh)
    }

    /// Inboxes for `workers` workers' neighbour news.
    pub fn neighbour_inboxes(workers: usize) -> Vec<Arc<ArrayQueue<NeighbourNews>>> {
        (0..workers)
            .map(|_| Arc::new(ArrayQueue::new(256)))
            .collect()
    }
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handoff(worker {} of {})", self.me, self.workers)
    }
}

/// Runs each frame of `burst` through the engine and queues it on its out port's burst.
/// `in_port` gives each frame's receiving port (configuration index).
/// Queues `m` on `queued`, first sending the burst out of `q` if it is full.
fn enqueue(
    queued: &mut MbufBurst<BURST>,
    q: Option<&mut TxQueue>,
    m: dpdk::Mbuf,
    counters: &mut WorkerCounters,
) {
    if queued.is_full() {
        transmit(q, queued, counters);
    }
    let _ = queued.push(m);
}

// Every burst size has its slot in the counted spreads.
const _: () = assert!(BURST < rvs_core::stats::BURST_SIZES);

/// Sends the burst out of `q` (none: the frames are dropped), counting what left and what
/// the queue did not take (freed); the burst is empty after.
#[inline]
fn transmit(q: Option<&mut TxQueue>, burst: &mut MbufBurst<BURST>, counters: &mut WorkerCounters) {
    if let Some(q) = q {
        let sent = q.tx_burst(burst);
        counters.tx_packets += sent as u64;
        counters.tx_bursts.record(sent);
    }
    counters.tx_dropped += burst.len() as u64;
    burst.clear();
}

/// Where a worker's frames go: per port, its tx queue and the burst being filled; per data
/// port, the same towards the host TAP twin.
struct Outputs<'a> {
    tx: &'a mut [TxQueue],
    out: &'a mut [MbufBurst<BURST>],
    host: &'a mut [Option<TxQueue>],
    host_out: &'a mut [MbufBurst<BURST>],
}

/// The first pass of a burst's parse: every frame's headers into `parsed`, in order (the
/// keys are hashed in a second pass, [`Engine::hash_key`]).
fn parse_headers(burst: &MbufBurst<BURST>, parsed: &mut [Parsed; BURST]) {
    for (p, m) in parsed.iter_mut().zip(burst.as_slice()) {
        p.read(m.data(), m.rx_ip_checksum_good());
    }
}

/// A burst in stages: each frame parsed once unless the steering stage did it already
/// (`parsed` then holds the burst's frames in order): every frame's headers, then every
/// key hashed and its index line asked for (apart, so that the frames' first reads, from
/// another core's writes, overlap instead of waiting behind each frame's hash); then every
/// frame's connection entry asked for, then the engine's work frame by frame; dropped
/// frames are freed together at the end.
#[allow(clippy::too_many_arguments)]
fn process_burst(
    burst: &mut MbufBurst<BURST>,
    parsed: &mut [Parsed; BURST],
    already_parsed: bool,
    lb: &mut LbContext,
    in_port: impl Fn(&dpdk::Mbuf) -> u16,
    now: u32,
    o: &mut Outputs,
    counters: &mut WorkerCounters,
    watch: &mut Stopwatch,
) {
    let (engine, snap, loads) = (&mut lb.engine, &**lb.snapshot.get(), &lb.loads[..]);
    let pool = lb.pool;
    let n = burst.len().min(BURST);
    // While a capture of sent frames runs: its filter and clock, once for the burst.
    let tx_capture = lb
        .capture
        .as_deref()
        .filter(|c| c.is_active())
        .map(|c| (c, c.filter(), wall_ns()));
    if !already_parsed {
        burst.prefetch();
        // Every frame's headers first (short, independent reads), then every key.
        parse_headers(burst, parsed);
        for p in parsed.iter_mut().take(n) {
            engine.hash_key(snap, p);
        }
        watch.lap(&mut counters.stage_cycles[stage::PARSE]);
    }
    for p in parsed.iter().take(n) {
        engine.prefetch_entry(p);
    }
    watch.lap(&mut counters.stage_cycles[stage::PREFETCH]);
    let mut dead: MbufBurst<BURST> = MbufBurst::new();
    let mut i = 0;
    burst.drain_each(|mut m| {
        let from = in_port(&m);
        let verdict = match parsed.get(i).filter(|_| i < n) {
            Some(p) => engine.process_parsed(snap, loads, now, from, p, &mut MbufFrame(&mut m)),
            None => engine.process(snap, loads, now, from, &mut MbufFrame(&mut m)),
        };
        i += 1;
        match verdict {
            engine::Verdict::Forward { port } => {
                if let Some((c, filter, at)) = &tx_capture {
                    if c.wants(port, capture::TX) && filter.matches(m.data()) {
                        c.offer(port, true, m.data(), *at);
                    }
                }
                let p = usize::from(port);
                if let Some(queued) = o.out.get_mut(p) {
                    enqueue(queued, o.tx.get_mut(p), m, counters);
                }
            }
            // Copied into fragments, each from a buffer of the pool (the slow path: a
            // datagram over the MTU); the original is freed with the dropped ones.
            engine::Verdict::Fragment { port, mtu } => {
                let p = usize::from(port);
                let ident6 = engine.fragment_ident6();
                let sent = match (pool, o.out.get_mut(p)) {
                    (Some(pool), Some(queued)) => {
                        send_fragments(pool, m.data(), (mtu, ident6), |f| {
                            if let Some((c, filter, at)) = &tx_capture {
                                if c.wants(port, capture::TX) && filter.matches(f.data()) {
                                    c.offer(port, true, f.data(), *at);
                                }
                            }
                            enqueue(queued, o.tx.get_mut(p), f, counters);
                        })
                    }
                    _ => None,
                };
                match sent {
                    Some(n) => {
                        engine.counters.fragmented.add(1);
                        engine.counters.fragments_sent.add(n);
                    }
                    None => engine.counters.dropped(engine::DropReason::TooBig),
                }
                let _ = dead.push(m);
            }
            // The host's share leaves by the receiving port's twin, if it has one;
            // otherwise it is dropped (counted as to-host all the same).
            engine::Verdict::ToHost => {
                engine.counters.to_host.add(1);
                engine::Engine::to_host_mac(snap, from, m.data_mut());
                let p = usize::from(from);
                if let (Some(Some(q)), Some(queued)) = (o.host.get_mut(p), o.host_out.get_mut(p)) {
                    enqueue(queued, Some(q), m, counters);
                }
            }
            // Freed with the others below (one bulk call).
            engine::Verdict::Drop(_) => {
                let _ = dead.push(m);
            }
        }
    });
}

/// Copies the IP datagram of `frame` into fragments of at most `mtu` bytes (IPv6 ones with
/// fragment headers of identification `ident6`), each in a buffer of `pool`, and hands
/// each to `send`; the count sent, None when it could not be fragmented or a buffer ran
/// out (the fragments already sent are lost with the rest).
fn send_fragments(
    pool: Mempool,
    frame: &[u8],
    (mtu, ident6): (u16, u32),
    mut send: impl FnMut(dpdk::Mbuf),
) -> Option<u64> {
    let mut complete = true;
    let sent = rvs_wire::fragment::fragment(frame, usize::from(mtu), ident6, |head, payload| {
        let Some(m) = mbuf_of(pool, head, payload) else {
            complete = false;
            return false;
        };
        send(m);
        true
    })
    .ok()?;
    complete.then_some(sent as u64)
}

/// A buffer of `pool` holding `head` then `rest` (None: the pool is empty).
fn mbuf_of(pool: Mempool, head: &[u8], rest: &[u8]) -> Option<dpdk::Mbuf> {
    let mut m = pool.alloc()?;
    let mut f = MbufFrame(&mut m);
    if !f.append(head.len() + rest.len()) {
        return None;
    }
    let (h, r) = f.bytes_mut().split_at_mut_checked(head.len())?;
    let whole = rvs_wire::copy_exact(h, head) && rvs_wire::copy_exact(r, rest);
    whole.then_some(m)
}

/// Sends the frames of `away` to their owners' rings (a full ring's are dropped, counted).
fn hand_off(lb: &mut LbContext, away: &mut [MbufBurst<BURST>], counters: &mut WorkerCounters) {
    for (o, b) in away.iter_mut().enumerate() {
        if b.is_empty() {
            continue;
        }
        if let Some(Some(ring)) = lb.handoff.to.get_mut(o) {
            counters.handoffs += ring.enqueue_burst(b) as u64;
        }
        counters.handoff_drops += b.len() as u64;
        b.clear();
    }
}

/// The later fragments the engine kept whose first has come, each copied into a buffer
/// of `pool` with the port it arrived on: into `mine` when this worker took the first,
/// else onto `away` for the worker that did.
fn take_early_fragments(
    lb: &mut LbContext,
    pool: Mempool,
    now: u32,
    mine: &mut MbufBurst<BURST>,
    away: &mut [MbufBurst<BURST>],
) {
    let (me, workers) = (lb.handoff.me, lb.handoff.workers);
    let (engine, snap, frags) = (&mut lb.engine, &**lb.snapshot.get(), &*lb.frag_owners);
    let owner = |bytes: &[u8]| engine::flow_owner(snap, bytes, workers, frags).filter(|&o| o != me);
    engine.release_early_fragments(now, (workers > 1).then_some((frags, me)), |port, bytes| {
        let Some(mut m) = mbuf_of(pool, bytes, &[]) else {
            return false;
        };
        m.set_in_port(port);
        let to = match owner(bytes) {
            Some(o) => away.get_mut(o),
            None => Some(&mut *mine),
        };
        to.is_some_and(|b| b.push(m).is_ok())
    });
}

/// Sends the frames whose neighbour answered (each from a buffer of `pool`).
fn release_held(
    lb: &mut LbContext,
    pool: Mempool,
    now: u32,
    out: &mut [MbufBurst<BURST>],
    tx: &mut [TxQueue],
    counters: &mut WorkerCounters,
) {
    if lb.engine.held_len() == 0 {
        return;
    }
    let snap = &**lb.snapshot.get();
    let (mut fragmented, mut fragments) = (0, 0);
    lb.engine.release_held(snap, now, |port, bytes, split| {
        let p = usize::from(port);
        let Some(queued) = out.get_mut(p) else {
            return false;
        };
        if let Some(split) = split {
            let sent = send_fragments(pool, bytes, split, |m| {
                enqueue(queued, tx.get_mut(p), m, counters);
            });
            fragmented += u64::from(sent.is_some());
            fragments += sent.unwrap_or(0);
            return sent.is_some();
        }
        let Some(m) = mbuf_of(pool, bytes, &[]) else {
            return false;
        };
        enqueue(queued, tx.get_mut(p), m, counters);
        true
    });
    lb.engine.counters.fragmented.add(fragmented);
    lb.engine.counters.fragments_sent.add(fragments);
}

/// Sends ARP requests / neighbour solicitations for the real servers and gateways whose
/// MAC no worker knows yet, so that the first packets towards them are not lost.
fn solicit_ahead(
    lb: &mut LbContext,
    pool: Mempool,
    now: u32,
    hops: &mut Vec<(u16, IpAddr)>,
    out: &mut [MbufBurst<BURST>],
    tx: &mut [TxQueue],
    counters: &mut WorkerCounters,
) {
    let snap = &**lb.snapshot.get();
    lb.engine
        .unresolved_hops(snap, now, SOLICIT_PER_SECOND, hops);
    for &(port, hop) in hops.iter() {
        let Some(mut m) = pool.alloc() else {
            return;
        };
        let p = usize::from(port);
        if lb
            .engine
            .solicit(snap, now, port, hop, &mut MbufFrame(&mut m))
        {
            if let Some(queued) = out.get_mut(p) {
                enqueue(queued, tx.get_mut(p), m, counters);
            }
        }
    }
}

/// Cycles per stage of a pass, when asked for (a TSC read costs tens of cycles on some
/// machines, several per burst): `start` then `lap` into each stage's counter.
struct Stopwatch {
    on: bool,
    last: u64,
}

impl Stopwatch {
    fn new(on: bool) -> Stopwatch {
        Stopwatch { on, last: 0 }
    }

    #[inline]
    fn start(&mut self) {
        if self.on {
            self.last = dpdk::tsc_now();
        }
    }

    #[inline]
    fn lap(&mut self, stage: &mut u64) {
        if self.on {
            let t = dpdk::tsc_now();
            *stage += t.wrapping_sub(self.last);
            self.last = t;
        }
    }
}

/// Everything a worker owns.
#[derive(Debug)]
pub(crate) struct WorkerPlan {
    /// The forwarding mode, changed at run time by the console's `set fwd` (a
    /// [`ForwardMode::code`]); `lb` needs a worker started with an engine.
    pub mode: Arc<AtomicU8>,
    pub rx: Vec<RxAssignment>,
    /// This worker's own tx queue on every port, by port index.
    pub tx: Vec<TxQueue>,
    /// This worker's place in its set.
    pub index: usize,
    /// The console's `stop` switches forwarding off: the worker then leaves every queue
    /// alone, and says so when asked.
    pub quiet: Arc<PortsQuiet>,
    /// Frames taken from an rx queue at a time, 1..=BURST (the console's `set burst`).
    pub burst: Arc<AtomicU16>,
    /// By data port: this worker's tx queue on the port's host TAP twin (the exception
    /// path), if it has one.
    pub host: Vec<Option<TxQueue>>,
    pub backoff: idle::Backoff,
    /// Count cycles per stage ([`rvs_core::stats::STAGES`]).
    pub stage_cycles: bool,
}

/// Connections a master sent for this worker: a bounded number per pass, so a sync storm
/// delays forwarding by little and never stalls it.
fn install_synced(ch: &rvs_core::sync::SyncChannel, lb: &mut LbContext, now: u32) {
    use std::sync::atomic::Ordering::Relaxed;
    for _ in 0..SYNC_INSTALLS_PER_PASS {
        let Some(c) = ch.inbox.pop() else { break };
        let snap = &**lb.snapshot.get();
        if lb.engine.install_synced(snap, &lb.loads, now, &c) {
            ch.installed.fetch_add(1, Relaxed);
        } else {
            ch.refused.fetch_add(1, Relaxed);
        }
    }
}

/// Synced connections a worker installs per pass at most.
const SYNC_INSTALLS_PER_PASS: usize = 64;

/// Sleeps when the back-off says so, counting it.
#[inline]
fn idle_pause(backoff: &mut idle::Backoff, busy: bool, counters: &mut WorkerCounters) {
    if let Some(d) = backoff.after_pass(busy) {
        std::thread::sleep(d);
        counters.sleeps += 1;
        counters.slept_us += d.as_micros() as u64;
    }
}

/// Completes the partial TCP/UDP checksums of a burst from a port that reads a kernel
/// device directly.
fn complete_checksums(
    from: &RxAssignment,
    burst: &mut MbufBurst<BURST>,
    counters: &mut WorkerCounters,
) {
    if from.complete_checksums && !from.from_host {
        for m in burst.as_mut_slice() {
            counters.checksums_completed += u64::from(partial::complete_partial(m.data_mut()));
        }
    }
}

/// Polls until `stop` is set; returns the final counters (also published to `stats`).
pub(crate) fn run(mut plan: WorkerPlan, stop: &AtomicBool, stats: &WorkerStats) -> WorkerCounters {
    let mut counters = WorkerCounters::default();
    let mut burst: MbufBurst<BURST> = MbufBurst::new();
    let mut pass_start = dpdk::tsc_now();
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        let polling = plan.quiet.io_allowed(plan.index);
        let mode = ForwardMode::from_code(plan.mode.load(Ordering::Relaxed));
        let most = usize::from(plan.burst.load(Ordering::Relaxed));
        for assignment in plan.rx.iter_mut().filter(|_| polling) {
            let n = assignment.rx.rx_burst_up_to(&mut burst, most);
            counters.rx_bursts.record(n);
            if n == 0 {
                continue;
            }
            busy = true;
            counters.rx_packets += n as u64;
            complete_checksums(assignment, &mut burst, &mut counters);
            if mode != ForwardMode::Io {
                counters.malformed +=
                    burst.retain(|m| forward::apply(mode, m.data_mut()) == Verdict::Forward) as u64;
            }
            transmit(
                plan.tx.get_mut(assignment.out_port),
                &mut burst,
                &mut counters,
            );
        }
        let end = dpdk::tsc_now();
        counters.count_pass(busy, end.wrapping_sub(pass_start));
        pass_start = end;
        stats.publish(&counters);
        idle_pause(&mut plan.backoff, busy, &mut counters);
    }
    stats.publish(&counters);
    counters
}

/// The load-balancing loop: frames whose flow another worker owns are handed to it over a
/// ring; the others (and those handed to this worker) go through the engine and leave by
/// the port their verdict names. At the top of every pass the worker takes the newest
/// published snapshot; expiry runs with a small budget on every pass; the engine's counters
/// are shared slots the control side reads in place; a connection listing takes a slice of
/// the table per pass. Returns the worker's and the engine's counters.
pub(crate) fn run_lb(
    mut plan: WorkerPlan,
    mut lb: LbContext,
    stop: &AtomicBool,
    stats: &WorkerStats,
) -> (WorkerCounters, Counters) {
    let mut counters = WorkerCounters::default();
    let mut rx: MbufBurst<BURST> = MbufBurst::new();
    let mut mine: MbufBurst<BURST> = MbufBurst::new();
    let mut parsed = [Parsed::default(); BURST];
    let mut out: Vec<MbufBurst<BURST>> = plan.tx.iter().map(|_| MbufBurst::new()).collect();
    let mut host_out: Vec<MbufBurst<BURST>> = plan.host.iter().map(|_| MbufBurst::new()).collect();
    let mut away: Vec<MbufBurst<BURST>> =
        (0..lb.handoff.workers).map(|_| MbufBurst::new()).collect();
    let (me, workers) = (lb.handoff.me, lb.handoff.workers);
    let sync = lb.engine.sync.clone();
    let hz = dpdk::tsc_hz().max(1);
    let start = lb.clock_start;
    let mut hops: Vec<(u16, IpAddr)> = Vec::with_capacity(SOLICIT_PER_SECOND);
    let mut solicited_at = 0;
    // A pass is counted when the next one starts (its TSC read ends the last one's time).
    let (mut pass_start, mut last_busy) = (dpdk::tsc_now(), None);
    let mut watch = Stopwatch::new(plan.stage_cycles);
    while !stop.load(Ordering::Relaxed) {
        let tsc = dpdk::tsc_now();
        if let Some(busy) = last_busy.take() {
            counters.count_pass(busy, tsc.wrapping_sub(pass_start));
        }
        pass_start = tsc;
        let now = (tsc.saturating_sub(start) / hz) as u32 + 1;
        // Forwarding stopped: no queue is touched in this pass (frames handed over wait in
        // their rings, held ones in their slots).
        let polling = plan.quiet.io_allowed(plan.index);
        let mut changed = false;
        if lb.snapshot.refresh() {
            lb.engine.adopt(lb.snapshot.get());
            changed = true;
        }
        if let Some(inbox) = lb.handoff.neighbours.get(me) {
            while let Some((ip, mac, heard)) = inbox.pop() {
                lb.engine.learn_from_peer(ip, mac, heard);
            }
        }
        if let Some(ch) = &sync {
            install_synced(ch, &mut lb, now);
        }
        if let (Some(pool), true) = (lb.pool, polling) {
            release_held(&mut lb, pool, now, &mut out, &mut plan.tx, &mut counters);
        }
        if let (Some(pool), true) = (lb.solicit_pool, polling && (changed || now != solicited_at)) {
            solicited_at = now;
            solicit_ahead(
                &mut lb,
                pool,
                now,
                &mut hops,
                &mut out,
                &mut plan.tx,
                &mut counters,
            );
        }
        let mut busy = false;
        let mode = ForwardMode::from_code(plan.mode.load(Ordering::Relaxed));
        let most = usize::from(plan.burst.load(Ordering::Relaxed));
        for assignment in plan.rx.iter_mut().filter(|_| polling) {
            watch.start();
            let n = assignment.rx.rx_burst_up_to(&mut rx, most);
            counters.rx_bursts.record(n);
            if n == 0 {
                continue;
            }
            watch.lap(&mut counters.stage_cycles[stage::RX]);
            busy = true;
            counters.rx_packets += n as u64;
            complete_checksums(assignment, &mut rx, &mut counters);
            if mode != ForwardMode::Lb && !assignment.from_host {
                // A diagnostic mode set at run time (`set fwd io|macswap`): to the peer port,
                // unchanged or with the Ethernet addresses swapped, as testpmd's engines.
                if mode != ForwardMode::Io {
                    // testpmd's macswap and 5tswap ask for each next frame before they
                    // touch one; the burst's frames asked for at once do no less.
                    rx.prefetch();
                    counters.malformed += rx
                        .retain(|m| forward::apply(mode, m.data_mut()) == Verdict::Forward)
                        as u64;
                }
                let p = assignment.out_port;
                rx.drain_each(|m| {
                    if let Some(queued) = out.get_mut(p) {
                        enqueue(queued, plan.tx.get_mut(p), m, &mut counters);
                    }
                });
                continue;
            }
            if assignment.from_host {
                // The kernel's frames go out unchanged, but those from an address held
                // without accept mode.
                let snap = &**lb.snapshot.get();
                if snap.refusing() {
                    let engine = &mut lb.engine;
                    rx.retain(|m| !engine.host_frame_refused(snap, m.data()));
                }
                let p = assignment.out_port;
                rx.drain_each(|m| {
                    if let Some(queued) = out.get_mut(p) {
                        enqueue(queued, plan.tx.get_mut(p), m, &mut counters);
                    }
                });
                continue;
            }
            let snap = &**lb.snapshot.get();
            let in_port = assignment.in_port;
            capture_rx(lb.capture.as_deref(), in_port, &rx);
            // Alone, every frame is mine; otherwise each goes to its flow's owner (found
            // from the frame parsed once, which the engine then starts from).
            let parsed_here = workers > 1;
            if workers <= 1 {
                std::mem::swap(&mut rx, &mut mine);
            } else {
                rx.prefetch();
                let (engine, frags) = (&lb.engine, &*lb.frag_owners);
                // Every frame's headers first (as `process_burst` does), then each key
                // and owner.
                parse_headers(&rx, &mut parsed);
                let (mut i, mut kept) = (0, 0);
                rx.drain_each(|mut m| {
                    let mut p = match parsed.get(i) {
                        Some(p) => *p,
                        None => Parsed::of_checked(m.data(), m.rx_ip_checksum_good()),
                    };
                    i += 1;
                    engine.hash_key(snap, &mut p);
                    match p.owner(snap, m.data(), workers, frags) {
                        Some(o) if o != me => {
                            // The owner learns the receiving port from the mbuf.
                            m.set_in_port(in_port);
                            if let Some(b) = away.get_mut(o) {
                                let _ = b.push(m);
                            }
                        }
                        _ => {
                            if let Some(slot) = parsed.get_mut(kept) {
                                *slot = p;
                            }
                            kept += 1;
                            let _ = mine.push(m);
                        }
                    }
                });
            }
            hand_off(&mut lb, &mut away, &mut counters);
            watch.lap(&mut counters.stage_cycles[stage::STEER]);
            let mut o = Outputs {
                tx: &mut plan.tx,
                out: &mut out,
                host: &mut plan.host,
                host_out: &mut host_out,
            };
            process_burst(
                &mut mine,
                &mut parsed,
                parsed_here,
                &mut lb,
                |_| in_port,
                now,
                &mut o,
                &mut counters,
                &mut watch,
            );
            watch.lap(&mut counters.stage_cycles[stage::ENGINE]);
        }
        // Frames other workers handed over (their in_port is in the mbuf); then the later
        // fragments that came before their first, once it has come (here, or handed to
        // the worker that took it).
        let rings = lb.handoff.from.len();
        for i in (0..=rings).filter(|_| polling) {
            if let Some(ring) = lb.handoff.from.get_mut(i) {
                if ring.dequeue_burst(&mut rx) == 0 {
                    continue;
                }
                busy = true;
            } else {
                let Some(pool) = lb.pool.filter(|_| lb.engine.early_fragments() > 0) else {
                    continue;
                };
                take_early_fragments(&mut lb, pool, now, &mut rx, &mut away);
                hand_off(&mut lb, &mut away, &mut counters);
                if rx.is_empty() {
                    continue;
                }
            }
            watch.start();
            let mut o = Outputs {
                tx: &mut plan.tx,
                out: &mut out,
                host: &mut plan.host,
                host_out: &mut host_out,
            };
            process_burst(
                &mut rx,
                &mut parsed,
                false,
                &mut lb,
                |m| m.in_port(),
                now,
                &mut o,
                &mut counters,
                &mut watch,
            );
            watch.lap(&mut counters.stage_cycles[stage::ENGINE]);
        }
        watch.start();
        for (q, burst) in plan.tx.iter_mut().zip(out.iter_mut()) {
            if !burst.is_empty() {
                transmit(Some(q), burst, &mut counters);
            }
        }
        for (q, burst) in plan.host.iter_mut().zip(host_out.iter_mut()) {
            if let (Some(q), false) = (q, burst.is_empty()) {
                transmit(Some(q), burst, &mut counters);
            }
        }
        if busy {
            watch.lap(&mut counters.stage_cycles[stage::TX]);
        }
        let (engine, peers) = (&mut lb.engine, &lb.handoff.neighbours);
        engine.take_news(|ip, mac, heard| {
            for (w, inbox) in peers.iter().enumerate() {
                if w != me {
                    let _ = inbox.push((ip, mac, heard));
                }
            }
        });
        lb.engine.expire(now, 64, &lb.loads);
        lb.engine.sweep_removed(lb.snapshot.get(), &lb.loads, 256);
        lb.engine
            .drop_entries(lb.snapshot.get(), &lb.loads, now, 256);
        // The pass's changes to the servers' shared counts, one step a server.
        lb.engine.flush_loads(&lb.loads);
        last_busy = Some(busy);
        stats.publish(&counters);
        lb.engine
            .counters
            .connections
            .set(lb.engine.table.len() as u64);
        if stats.listing_wanted() {
            let t = dpdk::tsc_now();
            stats.list_slice(&lb.engine.table, lb.engine.ftp_expected(now), now);
            let took = dpdk::tsc_now().wrapping_sub(t);
            counters.listing_slices += 1;
            counters.listing_cycles += took;
            counters.max_listing_cycles = counters.max_listing_cycles.max(took);
        }
        idle_pause(&mut plan.backoff, busy, &mut counters);
    }
    lb.engine.flush_loads(&lb.loads);
    stats.publish(&counters);
    (counters, lb.engine.counters())
}
