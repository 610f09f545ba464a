//! The poll-mode loop of one worker lcore: the I/O adapter between DPDK queues and the
//! pure forwarding core. Per packet it neither allocates, locks, logs nor makes syscalls.

use crate::forward::{self, ForwardMode, Verdict};
use crate::stats::{WorkerCounters, WorkerStats};
use dpdk::{MbufBurst, RxQueue, TxQueue, BURST};
use std::sync::atomic::{AtomicBool, Ordering};

/// One rx queue the worker polls and the port its frames leave by.
#[derive(Debug)]
pub struct RxAssignment {
    pub rx: RxQueue,
    /// Index into [`WorkerPlan::tx`].
    pub out_port: usize,
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
