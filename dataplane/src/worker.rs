//! The poll-mode loop of one worker lcore: the I/O adapter between DPDK queues and the
//! pure forwarding core. Per packet it neither allocates, locks, logs nor makes syscalls.

use crate::engine::{self, Counters, Engine, Snapshot};
use crate::forward::{self, ForwardMode, Verdict};
use crate::sched::DestLoad;
use crate::stats::{WorkerCounters, WorkerStats};
use dpdk::{MbufBurst, RxQueue, TxQueue, BURST};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One rx queue the worker polls and the port its frames leave by.
#[derive(Debug)]
pub struct RxAssignment {
    pub rx: RxQueue,
    /// Index into [`WorkerPlan::tx`] (diagnostic modes).
    pub out_port: usize,
    /// The receiving port's index in the configuration and snapshot.
    pub in_port: u16,
}

/// What a load-balancing worker owns besides its queues.
#[derive(Debug)]
pub struct LbContext {
    pub engine: Engine,
    pub snapshot: Arc<Snapshot>,
    pub loads: Arc<Vec<DestLoad>>,
}

/// Everything a worker owns.
#[derive(Debug)]
pub struct WorkerPlan {
    pub worker: usize,
    pub mode: ForwardMode,
    pub rx: Vec<RxAssignment>,
    /// This worker's own tx queue on every port, by port index.
    pub tx: Vec<TxQueue>,
}

/// Polls until `stop` is set; returns the final counters (also published to `stats`).
pub fn run(mut plan: WorkerPlan, stop: &AtomicBool, stats: &WorkerStats) -> WorkerCounters {
    let mut counters = WorkerCounters::default();
    let mut burst: MbufBurst<BURST> = MbufBurst::new();
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        for assignment in plan.rx.iter_mut() {
            let n = assignment.rx.rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            busy = true;
            counters.rx_packets += n as u64;
            if plan.mode != ForwardMode::Io {
                let mode = plan.mode;
                counters.malformed +=
                    burst.retain(|m| forward::apply(mode, m.data_mut()) == Verdict::Forward) as u64;
            }
            let Some(tx) = plan.tx.get_mut(assignment.out_port) else {
                counters.tx_dropped += burst.len() as u64;
                burst.clear();
                continue;
            };
            counters.tx_packets += tx.tx_burst(&mut burst) as u64;
            counters.tx_dropped += burst.len() as u64;
            burst.clear();
        }
        counters.polls += 1;
        counters.busy_polls += u64::from(busy);
        stats.publish(&counters);
    }
    stats.publish(&counters);
    counters
}

/// The load-balancing loop: each frame goes through the engine and leaves by the port its
/// verdict names; expiry runs with a small budget on every pass. Returns the worker's and
/// the engine's counters.
pub fn run_lb(
    mut plan: WorkerPlan,
    mut lb: LbContext,
    stop: &AtomicBool,
    stats: &WorkerStats,
) -> (WorkerCounters, Counters) {
    let mut counters = WorkerCounters::default();
    let mut rx: MbufBurst<BURST> = MbufBurst::new();
    let mut out: Vec<MbufBurst<BURST>> = plan.tx.iter().map(|_| MbufBurst::new()).collect();
    let hz = dpdk::tsc_hz().max(1);
    let start = dpdk::tsc_now();
    while !stop.load(Ordering::Relaxed) {
        let now = ((dpdk::tsc_now() - start) / hz) as u32 + 1;
        let mut busy = false;
        for assignment in plan.rx.iter_mut() {
            let n = assignment.rx.rx_burst(&mut rx);
            if n == 0 {
                continue;
            }
            busy = true;
            counters.rx_packets += n as u64;
            let in_port = assignment.in_port;
            let (engine, snap, loads) = (&mut lb.engine, &*lb.snapshot, &lb.loads[..]);
            let (tx, out) = (&mut plan.tx, &mut out);
            rx.drain_each(
                |mut m| match engine.process(snap, loads, now, in_port, &mut m) {
                    engine::Verdict::Forward { port } => {
                        let p = usize::from(port);
                        let Some(burst) = out.get_mut(p) else { return };
                        if burst.is_full() {
                            if let Some(q) = tx.get_mut(p) {
                                counters.tx_packets += q.tx_burst(burst) as u64;
                            }
                            counters.tx_dropped += burst.len() as u64;
                            burst.clear();
                        }
                        let _ = burst.push(m);
                    }
                    // No exception path yet: frames for the host are dropped and counted.
                    engine::Verdict::ToHost => engine.counters.to_host += 1,
                    engine::Verdict::Drop(_) => {}
                },
            );
        }
        for (q, burst) in plan.tx.iter_mut().zip(out.iter_mut()) {
            if !burst.is_empty() {
                counters.tx_packets += q.tx_burst(burst) as u64;
                counters.tx_dropped += burst.len() as u64;
                burst.clear();
            }
        }
        lb.engine.expire(now, 64, &lb.loads);
        counters.polls += 1;
        counters.busy_polls += u64::from(busy);
        stats.publish(&counters);
    }
    stats.publish(&counters);
    (counters, lb.engine.counters)
}
