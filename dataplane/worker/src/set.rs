//! The one way to assemble and launch workers, used by the daemon, the benchmark and the
//! tests: each worker's queues in, running lcores out; hand-off rings, engines, snapshot
//! readers and statistics blocks are made here and nowhere else.

use crate::{run, run_lb, Handoff, LbContext, RxAssignment, WorkerPlan};
use dpdk::{Eal, LcoreHandle, Mempool, PortsQuiet, TxQueue};
use rvs_core::conn::ConnTable;
use rvs_core::engine::{Counters, Engine, EngineConfig, SharedTemplates};
use rvs_core::publish::{SnapshotCell, SnapshotReader};
use rvs_core::sched::DestLoad;
use rvs_core::{ForwardMode, WorkerCounters, WorkerStats, WorkerView};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, Ordering};
use std::sync::Arc;

/// One worker's queues: what it polls and where its frames leave.
#[derive(Debug)]
pub struct WorkerQueues {
    pub lcore: u32,
    pub rx: Vec<RxAssignment>,
    /// Its own tx queue on every port, by port index.
    pub tx: Vec<TxQueue>,
    /// By data port: its tx queue on the port's host TAP twin, if any.
    pub host: Vec<Option<TxQueue>>,
    /// The longest sleep when idle (adaptive polling), in microseconds; 0: never sleep.
    pub idle_sleep_max_us: u32,
    /// Count TSC cycles per stage of a pass (a few TSC reads per burst).
    pub stage_cycles: bool,
}

/// What load-balancing workers share.
#[derive(Debug, Clone)]
pub struct LbShared {
    pub cell: Arc<SnapshotCell>,
    pub loads: Arc<Vec<DestLoad>>,
    pub engine: EngineConfig,
    /// Worker 0 sends ARP requests / solicitations ahead of traffic from this pool, and
    /// with it every worker keeps frames for unresolved neighbours.
    pub solicit_pool: Option<Mempool>,
    /// Where the workers take the buffers of frames they make: IPv4 fragments, frames
    /// that waited for a neighbour (None: the solicitations' pool, if any; without a pool
    /// a datagram to fragment is dropped as too big).
    pub pool: Option<Mempool>,
    /// Hand-off rings are named `{ring_prefix}_{from}_{to}` (unique per EAL).
    pub ring_prefix: String,
    pub socket: i32,
    /// Each worker's queues to and from the connection sync daemon (empty: no sync).
    pub sync: Vec<Arc<rvs_core::sync::SyncChannel>>,
    /// Where the workers copy frames while a packet capture runs (None: no capture).
    pub capture: Option<Arc<rvs_core::capture::Capture>>,
}

type Outcome = (WorkerCounters, Option<Counters>);

/// What a load-balancing worker's context is made of, gathered on the control thread; the
/// worker makes its engine from it on its own lcore ([`EngineSeed::grow`]).
struct EngineSeed {
    config: EngineConfig,
    sync: Option<Arc<rvs_core::sync::SyncChannel>>,
    holding: bool,
    snapshot: SnapshotReader,
    loads: Arc<Vec<DestLoad>>,
    handoff: Handoff,
    frag_owners: Arc<rvs_core::engine::FragOwners>,
    /// The persistence templates' shared choices (several workers only).
    templates: Option<Arc<SharedTemplates>>,
    /// The TSC reading all workers count their seconds from.
    clock_start: u64,
    solicit_pool: Option<Mempool>,
    pool: Option<Mempool>,
    capture: Option<Arc<rvs_core::capture::Capture>>,
}

impl EngineSeed {
    /// Worker `index` of `workers`: its engine over the current snapshot.
    fn grow(self, index: usize, workers: usize) -> LbContext {
        let mut engine = Engine::new(self.config, 1);
        engine.set_owner(index, workers);
        engine.sync = self.sync;
        if let Some(board) = self.templates {
            engine.share_templates(board);
        }
        engine.set_holding(self.holding);
        engine.set_keeping_early_fragments(self.pool.is_some());
        // Each server's shared counts change once a pass, not per connection.
        engine.hold_loads(self.loads.len());
        engine.adopt(self.snapshot.get());
        LbContext {
            engine,
            snapshot: self.snapshot,
            loads: self.loads,
            handoff: self.handoff,
            frag_owners: self.frag_owners,
            clock_start: self.clock_start,
            solicit_pool: self.solicit_pool,
            pool: self.pool,
            capture: self.capture,
        }
    }
}

/// A launched worker.
pub struct RunningWorker {
    pub index: usize,
    pub lcore: u32,
    pub stats: Arc<WorkerStats>,
    /// Bytes one connection of capacity costs (load balancing).
    pub bytes_per_entry: Option<f64>,
    handle: LcoreHandle<Outcome>,
}

impl std::fmt::Debug for RunningWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "worker {} on lcore {}", self.index, self.lcore)
    }
}

/// What a worker left when it stopped.
#[derive(Debug, Clone)]
pub struct WorkerOutcome {
    pub index: usize,
    pub lcore: u32,
    pub counters: WorkerCounters,
    pub engine: Option<Counters>,
    pub bytes_per_entry: Option<f64>,
    /// The worker panicked: its last published counters stand in.
    pub failure: Option<String>,
}

/// The running workers and their shared switches.
#[derive(Debug)]
pub struct WorkerSet {
    pub workers: Vec<RunningWorker>,
    /// Cleared by the console's `stop`: workers leave their queues alone.
    pub forwarding: Arc<AtomicBool>,
    /// The workers' confirmation that they left their queues (`port stop|start`).
    pub quiet: Arc<PortsQuiet>,
    /// The forwarding mode ([`ForwardMode::code`]), set by the console's `set fwd`.
    pub mode: Arc<AtomicU8>,
    /// Frames a worker takes from an rx queue at a time, 1..=[`dpdk::BURST`] (the
    /// console's `set burst`).
    pub burst: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl WorkerSet {
    /// Launches one worker per entry of `queues` (worker `i` on `queues[i].lcore`). With
    /// `lb`, each gets an engine over the shared snapshot and its ends of the hand-off mesh.
    /// A failed launch stops there: the set holds the workers already running, and the
    /// error says which one failed.
    pub fn launch(
        eal: &Eal,
        mode: ForwardMode,
        queues: Vec<WorkerQueues>,
        lb: Option<&LbShared>,
    ) -> (WorkerSet, Result<(), String>) {
        let forwarding = Arc::new(AtomicBool::new(true));
        let mut set = WorkerSet {
            workers: Vec::with_capacity(queues.len()),
            quiet: Arc::new(PortsQuiet::new(forwarding.clone(), queues.len())),
            forwarding,
            mode: Arc::new(AtomicU8::new(mode.code())),
            burst: Arc::new(AtomicU16::new(dpdk::BURST as u16)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let n = queues.len();
        let mesh = match lb {
            Some(lb) => match Handoff::mesh(eal, n, n > 1, &lb.ring_prefix, lb.socket) {
                Ok(m) => m,
                Err(e) => return (set, Err(format!("hand-off ring: {e}"))),
            },
            None => Vec::new(),
        };
        let mut mesh = mesh.into_iter();
        let frag_owners = Arc::new(rvs_core::engine::FragOwners::default());
        // Every worker's template table can hold a connection's worth of templates; so can
        // the board its entries share.
        let templates = lb
            .filter(|_| n > 1)
            .map(|lb| Arc::new(SharedTemplates::new(lb.engine.conn_capacity)));
        let clock_start = dpdk::tsc_now();
        for (index, q) in queues.into_iter().enumerate() {
            let plan = WorkerPlan {
                mode: set.mode.clone(),
                rx: q.rx,
                tx: q.tx,
                index,
                quiet: set.quiet.clone(),
                burst: set.burst.clone(),
                host: q.host,
                backoff: crate::idle::Backoff::new(q.idle_sleep_max_us),
                stage_cycles: q.stage_cycles,
            };
            // The engine (its connection table above all) is made on the worker's own
            // lcore, so its memory is first touched there: on the worker's NUMA node, and
            // the workers' tables filled in parallel.
            let seed = lb.map(|lb| EngineSeed {
                config: lb.engine,
                sync: lb.sync.get(index).cloned(),
                holding: lb.solicit_pool.is_some(),
                snapshot: SnapshotReader::new(lb.cell.clone()),
                loads: lb.loads.clone(),
                handoff: mesh.next().unwrap_or_default(),
                frag_owners: frag_owners.clone(),
                templates: templates.clone(),
                clock_start,
                solicit_pool: lb.solicit_pool.filter(|_| index == 0),
                pool: lb.pool.or(lb.solicit_pool),
                capture: lb.capture.clone(),
            });
            let bytes_per_entry = lb.map(|lb| {
                ConnTable::bytes_per_entry_of(
                    lb.engine.conn_capacity,
                    lb.engine.full_nat,
                    lb.engine.syn_per_source > 0 || lb.engine.udp_per_source > 0,
                    lb.engine.ftp_ports.iter().any(|&p| p != 0),
                )
            });
            let stats = Arc::new(WorkerStats::default());
            let (stop, st) = (set.stop.clone(), stats.clone());
            let job = move || match seed {
                Some(seed) => {
                    let ctx = seed.grow(index, n);
                    st.attach_engine(ctx.engine.counters.clone());
                    let (c, e) = run_lb(plan, ctx, &stop, &st);
                    (c, Some(e))
                }
                None => (run(plan, &stop, &st), None),
            };
            match eal.launch(q.lcore, job) {
                Ok(handle) => set.workers.push(RunningWorker {
                    index,
                    lcore: q.lcore,
                    stats,
                    bytes_per_entry,
                    handle,
                }),
                Err(e) => return (set, Err(format!("worker {index}: {e}"))),
            }
        }
        (set, Ok(()))
    }

    /// The workers as the control side sees them.
    pub fn views(&self) -> Vec<WorkerView> {
        self.workers
            .iter()
            .map(|w| WorkerView {
                index: w.index,
                lcore: w.lcore,
                stats: w.stats.clone(),
            })
            .collect()
    }

    /// The first worker that stopped on its own (a panic), if any.
    pub fn stopped_early(&self) -> Option<&RunningWorker> {
        self.workers.iter().find(|w| w.handle.is_finished())
    }

    /// Stops every worker and waits for them.
    pub fn stop_and_join(self) -> Vec<WorkerOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.workers
            .into_iter()
            .map(|w| {
                let (counters, engine, failure) = match w.handle.join() {
                    Ok((c, e)) => (c, e, None),
                    Err(panic) => (w.stats.read(), None, Some(panic.to_string())),
                };
                WorkerOutcome {
                    index: w.index,
                    lcore: w.lcore,
                    counters,
                    engine,
                    bytes_per_entry: w.bytes_per_entry,
                    failure,
                }
            })
            .collect()
    }
}
