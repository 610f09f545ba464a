//! The correctness gate before any measurement: the test kit's fixture table through a
//! worker launched by the one worker builder, over two `net_ring` ports (real mbufs, real
//! bursts). Each step's frame goes in on its port; what the worker sends out must be the
//! step's output on the verdict's port, and nothing for drops and the host's share; the
//! engine's drop counters must match the table's drops one for one.
//!
//! ```text
//!   port X (clients): bench tx q0 -> [ring] -> rx q0 worker tx q1 -> [ring] -> rx q1 bench
//!   port Y (servers): the same
//! ```

use dpdk::{Eal, Mbuf, MbufBurst, Mempool, Port, PortConf};
use rvs_core::engine::{DropReason, EngineConfig};
use rvs_core::publish::SnapshotCell;
use rvs_core::sched::DestLoad;
use rvs_core::ForwardMode;
use rvs_testkit::fixtures::{cases, drops, Net};
use rvs_worker::{LbShared, RxAssignment, WorkerQueues, WorkerSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one step may take to come out (a worker polls continuously).
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the table on `lcore`; returns the number of steps checked.
pub fn check(eal: &Eal, pool: Mempool, lcore: u32) -> Result<usize, String> {
    let err = |e: dpdk::Error| format!("fixture table: {e}");
    let mut ports = Vec::new();
    for dev in ["net_ring_fx0", "net_ring_fx1"] {
        let id = eal.attach(dev).map_err(err)?[0];
        let conf = PortConf {
            rx_queues: 2,
            tx_queues: 2,
            ..PortConf::default()
        };
        ports.push(Port::configure(eal, id, &conf, pool).map_err(err)?);
    }
    let mut bench_tx = Vec::new();
    let mut bench_rx = Vec::new();
    let mut queues = WorkerQueues {
        lcore,
        rx: Vec::new(),
        tx: Vec::new(),
        host: Vec::new(),
        idle_sleep_max_us: rvs_worker::idle::DEFAULT_SLEEP_MAX_US,
        stage_cycles: false,
    };
    let mut macs = [[0u8; 6]; 2];
    for (i, port) in ports.iter_mut().enumerate() {
        let (mut rx, mut tx) = port.take_queues().ok_or("fixture table: queues")?;
        port.start().map_err(err)?;
        macs[i] = port.mac_addr().map_err(err)?;
        let (worker_tx, worker_rx) = (tx.remove(1), rx.remove(0));
        bench_tx.push(tx.remove(0));
        bench_rx.push(rx.remove(0));
        queues.rx.push(RxAssignment {
            rx: worker_rx,
            out_port: i,
            in_port: i as u16,
            from_host: false,
            complete_checksums: false,
        });
        queues.tx.push(worker_tx);
    }
    let net = Net {
        macs,
        ..Net::two_ports()
    };
    let mut snapshot = rvs_testkit::lab::snapshot();
    for (info, mac) in snapshot.ports.iter_mut().zip(macs) {
        info.mac = mac;
    }
    let shared = LbShared {
        cell: Arc::new(SnapshotCell::new(snapshot)),
        loads: Arc::new((0..64).map(|_| DestLoad::default()).collect()),
        engine: EngineConfig {
            conn_capacity: 1024,
            ..EngineConfig::default()
        },
        solicit_pool: None,
        pool: Some(pool),
        ring_prefix: "fixture_ho".into(),
        socket: -1,
        sync: Vec::new(),
        capture: None,
    };
    let (workers, launched) = WorkerSet::launch(eal, ForwardMode::Lb, vec![queues], Some(&shared));
    let stats = workers.workers.first().map(|w| w.stats.clone());
    let result = launched.and_then(|()| {
        let stats = stats.ok_or("fixture table: no worker")?;
        let table = cases(&net);
        let mut steps = 0;
        for case in &table {
            for (i, step) in case.steps.iter().enumerate() {
                let fail = |what: String| format!("fixture table: {}: step {i}: {what}", case.name);
                let before = stats.read().rx_packets;
                let mut burst: MbufBurst = MbufBurst::new();
                let mut m = pool.alloc().ok_or_else(|| fail("no mbuf".into()))?;
                let room = m
                    .append(step.input.len() as u16)
                    .ok_or_else(|| fail("no tailroom".into()))?;
                room.copy_from_slice(&step.input);
                let _ = burst.push(m);
                let p = usize::from(step.port);
                bench_tx[p].tx_burst(&mut burst);
                if !burst.is_empty() {
                    return Err(fail("the ring refused the frame".into()));
                }
                let out = collect(&mut bench_rx, &stats, before);
                let want: Vec<(usize, Vec<u8>)> = step
                    .frames_out()
                    .into_iter()
                    .map(|(port, frame)| (usize::from(port), frame))
                    .collect();
                if out != want {
                    return Err(fail(format!("got {out:02x?}, want {want:02x?}")));
                }
                steps += 1;
            }
        }
        Ok((table, steps))
    });
    let outcome = workers.stop_and_join();
    let (table, steps) = result?;
    let engine = outcome
        .first()
        .and_then(|o| o.engine.clone())
        .ok_or("fixture table: the worker left no counters")?;
    for r in DropReason::ALL {
        let want = drops(table.iter().flat_map(|c| &c.steps), r);
        if engine.drops[r as usize] != want {
            return Err(format!(
                "fixture table: {} drops counted {}, the table has {want}",
                r.name(),
                engine.drops[r as usize]
            ));
        }
    }
    drop((bench_tx, bench_rx));
    for p in ports {
        p.close().map_err(err)?;
    }
    Ok(steps)
}

/// What left the worker after it took in the step's frame: every frame on either port,
/// read until the worker has received it and a few passes more.
fn collect(
    rx: &mut [dpdk::RxQueue],
    stats: &rvs_core::WorkerStats,
    before: u64,
) -> Vec<(usize, Vec<u8>)> {
    let start = Instant::now();
    let mut seen_at = None;
    let mut out = Vec::new();
    let mut burst: MbufBurst = MbufBurst::new();
    while start.elapsed() < STEP_TIMEOUT {
        for (p, q) in rx.iter_mut().enumerate() {
            q.rx_burst(&mut burst);
            burst.drain_each(|m: Mbuf| out.push((p, m.data().to_vec())));
        }
        match seen_at {
            None if stats.read().rx_packets > before => seen_at = Some(Instant::now()),
            Some(t) if t.elapsed() > Duration::from_millis(20) => break,
            _ => std::thread::yield_now(),
        }
    }
    out
}
