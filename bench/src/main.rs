//! `rvs-bench`: measures the rvs data plane over DPDK virtual devices and prints the
//! figures as text and as one JSON line.
//!
//! `ring-io`: the main lcore generates frames of a fixed size into `net_ring0`, one rvs
//! worker forwards them (io mode) to `net_ring1`, and the main lcore drains and frees them.
//! The figure is the worker's forwarding rate with the generator on the other core, so it
//! is bounded by whichever of the two is slower; compare runs on the same machine only.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use dpdk::{Eal, MbufBurst, Mempool, Port, PortConf};
use rvs_dataplane::worker::{self, RxAssignment, WorkerPlan};
use rvs_dataplane::{ForwardMode, WorkerStats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "pktgen-style measurements of the rvs data plane")]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Worker io forwarding between two net_ring ports.
    RingIo {
        /// Seconds to measure.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Frame size in bytes (60..=1514).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(60..=1514))]
        size: u16,
        /// Worker forwarding mode.
        #[arg(long, default_value = "io")]
        mode: ForwardMode,
    },
}

fn main() -> std::process::ExitCode {
    match Args::parse().bench {
        Bench::RingIo {
            seconds,
            size,
            mode,
        } => match ring_io(seconds, size, mode) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rvs-bench: error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

fn ring_io(seconds: f64, size: u16, mode: ForwardMode) -> Result<(), dpdk::Error> {
    let prefix = format!("rvs-bench-{}", std::process::id());
    let eal = Eal::init(&[
        "-l",
        "0,1",
        "--no-huge",
        "-m",
        "512",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "--log-level",
        "error",
        "--file-prefix",
        &prefix,
    ])?;
    let pool = Mempool::new(&eal, "bench_pool", 16383, 256, 2048 + 128, 0)?;
    let a_id = eal.attach("net_ring0")?[0];
    let b_id = eal.attach("net_ring1")?[0];
    let two_tx = PortConf {
        tx_queues: 2,
        ..PortConf::default()
    };
    let mut a = Port::configure(&eal, a_id, &two_tx, pool)?;
    let mut b = Port::configure(&eal, b_id, &PortConf::default(), pool)?;
    let (mut a_rx, mut a_tx) = a.take_queues().expect("fresh port");
    let (mut b_rx, mut b_tx) = b.take_queues().expect("fresh port");
    a.start()?;
    b.start()?;
    let mut gen_tx = a_tx.remove(0);
    let mut sink_rx = b_rx.remove(0);
    let plan = WorkerPlan {
        worker: 0,
        mode,
        rx: vec![RxAssignment {
            rx: a_rx.remove(0),
            out_port: 1,
            in_port: 0,
            from_host: false,
        }],
        tx: vec![a_tx.remove(0), b_tx.remove(0)],
        forwarding: Arc::new(AtomicBool::new(true)),
        host: Vec::new(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(WorkerStats::default());
    let handle = {
        let (stop, stats) = (stop.clone(), stats.clone());
        eal.launch(1, move || worker::run(plan, &stop, &stats))?
    };

    let mut out: MbufBurst = MbufBurst::new();
    let mut back: MbufBurst = MbufBurst::new();
    let warmup = Duration::from_millis(300);
    let duration = Duration::from_secs_f64(seconds.clamp(0.1, 600.0));
    let start = Instant::now();
    let mut measured_from: Option<(Instant, u64)> = None;
    loop {
        let now = Instant::now();
        if measured_from.is_none() && now - start >= warmup {
            measured_from = Some((now, stats.read().tx_packets));
        }
        if let Some((t0, _)) = measured_from {
            if now - t0 >= duration {
                break;
            }
        }
        if out.is_empty() && pool.alloc_bulk(&mut out, dpdk::BURST) {
            for m in out.as_mut_slice() {
                if let Some(frame) = m.append(size) {
                    frame[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
                    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
                }
            }
        }
        gen_tx.tx_burst(&mut out);
        sink_rx.rx_burst(&mut back);
        back.clear();
    }
    let (t0, tx0) = measured_from.expect("measured");
    let elapsed = t0.elapsed().as_secs_f64();
    let forwarded = stats.read().tx_packets - tx0;
    stop.store(true, Ordering::Relaxed);
    let counters = handle
        .join()
        .map_err(|p| dpdk::Error::new(p.to_string(), 0))?;
    drop((out, back, gen_tx, sink_rx, a_rx, a_tx, b_rx, b_tx));
    a.close()?;
    b.close()?;

    let mpps = forwarded as f64 / elapsed / 1e6;
    let gbps = mpps * f64::from(size + 20) * 8.0 / 1e3;
    println!("ring-io: {size} B frames, mode {mode}, {elapsed:.2} s measured");
    println!("  forwarded {forwarded} packets: {mpps:.2} Mpps ({gbps:.2} Gbit/s on the wire)");
    println!(
        "  worker: rx {} tx {} dropped {} busy {:.1}%",
        counters.rx_packets,
        counters.tx_packets,
        counters.tx_dropped,
        counters.busy_share() * 100.0
    );
    println!(
        "{{\"bench\":\"ring-io\",\"mode\":\"{mode}\",\"frame_bytes\":{size},\"seconds\":{elapsed:.3},\"packets\":{forwarded},\"mpps\":{mpps:.3},\"worker_tx_dropped\":{}}}",
        counters.tx_dropped
    );
    Ok(())
}
