//! One measurement in the one-process ring wiring: the generator on the main lcore sends
//! into `net_ring` port A, worker lcores forward (rvs's load balancing, or io mode as the
//! yardstick) to port B, and the generator drains B and reads every stamp back. With N
//! workers, port A and B have a queue pair per worker and the generator puts each flow on
//! the queue a NIC's RSS would (see [`crate::nic`]); the workers hand over what is not
//! theirs through rvs's own hand-off rings. With more workers than one core can feed, the
//! generator runs as lanes on spare CPUs, each with its own queues (see [`crate::lanes`]).
//!
//! ```text
//!   generator lane (main lcore, ...) --A tx i--> [ring] --A rx i--> worker i --B tx i--> [ring] --B rx i--> lane
//! ```

use crate::gen::{Kind, Traffic};
use crate::generate::{generate, GenPorts};
use crate::memif::{self, Dut};
use dpdk::{Eal, EalArgs, Mempool, Port, PortConf};
use rvs_control::appliance::Appliance;
use rvs_control::director::{Director, Limits};
use rvs_control::ipvsadm::parse_line;
use rvs_core::engine::{DropReason, EngineConfig, PortInfo, Route};
use rvs_core::publish::SnapshotCell;
use rvs_core::sched::DestLoad;
use rvs_core::{ForwardMode, WorkerStats};
use rvs_worker::{LbShared, RxAssignment, WorkerQueues, WorkerSet};
use serde::Serialize;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const VIP: [u8; 4] = [192, 0, 2, 10];
const SERVERS: usize = 4;
pub const GEN_MAC: [u8; 6] = [2, 0xbe, 0, 0, 0, 1];
const ROUTER_MAC: [u8; 6] = [2, 0xbe, 0, 0, 0, 0xfe];
const SERVER_MAC: [u8; 6] = [2, 0x5e, 0, 0, 0, 0];

/// How the worker forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The yardstick: rvs's io diagnostic mode (frames forwarded untouched).
    Io,
    /// testpmd's macswap, as rvs's workers run it (Ethernet addresses swapped).
    Macswap,
    /// testpmd's 5tswap (Ethernet, IP addresses and ports swapped: the headers NAT
    /// rewrites, with no lookup).
    #[value(name = "5tswap")]
    #[serde(rename = "5tswap")]
    FiveTupleSwap,
    Nat,
    Dr,
    Tun,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Io => "io",
            Method::Macswap => "macswap",
            Method::FiveTupleSwap => "5tswap",
            Method::Nat => "nat",
            Method::Dr => "dr",
            Method::Tun => "tun",
        }
    }

    /// A diagnostic forwarding mode (no engine), None for the load balancer's methods.
    pub fn forward_mode(self) -> Option<ForwardMode> {
        match self {
            Method::Io => Some(ForwardMode::Io),
            Method::Macswap => Some(ForwardMode::MacSwap),
            Method::FiveTupleSwap => Some(ForwardMode::FiveTupleSwap),
            Method::Nat | Method::Dr | Method::Tun => None,
        }
    }

    fn ipvsadm_flag(self) -> &'static str {
        match self {
            Method::Nat | Method::Io | Method::Macswap | Method::FiveTupleSwap => "-m",
            Method::Dr => "-g",
            Method::Tun => "-i",
        }
    }
}

impl Outcome {
    /// Whether the workers ran the load balancer (not a diagnostic mode).
    pub fn forward_mode_is_lb(&self) -> bool {
        ["nat", "dr", "tun"].contains(&self.method.as_str())
    }

    /// Packets dropped on the connections of a server the configuration deleted (as IPVS
    /// drops them): policy, not loss.
    pub fn server_removed(&self) -> u64 {
        self.drops
            .iter()
            .filter(|(reason, _)| reason == "server removed")
            .map(|(_, n)| n)
            .sum()
    }

    /// Packets missing that rvs lost: neither the receiver's (drained too late) nor a
    /// deleted server's connections'.
    pub fn lost_in_rvs(&self) -> u64 {
        self.lost
            .saturating_sub(self.sink_overflow)
            .saturating_sub(self.server_removed())
    }
}

/// One measurement to make.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub method: Method,
    pub kind: Kind,
    pub flows: u32,
    /// VIPs (consecutive from [`VIP`], one service each); flows spread over them.
    pub vips: u32,
    pub size: u16,
    pub seconds: f64,
    /// Offered packets per second; None = as fast as the generator can.
    pub rate: Option<f64>,
    /// Connection table size of the worker.
    pub conn_capacity: usize,
    /// Workers used (the first of the bench's worker lcores); None: all of them.
    pub workers: Option<usize>,
    /// Snapshot publications (weight edits, servers added and removed) during the run.
    pub churn: usize,
    /// Hitless reloads (the TOML read again, alternating two versions) during the window.
    pub reloads: usize,
    /// Connection listings (`-L -n -c`) back to back during the run, from a control
    /// thread on the generator's CPU.
    pub listing: bool,
    /// The yardstick run this one is compared with.
    pub yardstick: Option<String>,
    pub wiring: Wiring,
}

impl Scenario {
    /// The generator's traffic for this scenario, towards the device's MAC.
    pub fn traffic(&self, dst_mac: [u8; 6]) -> Traffic {
        Traffic {
            kind: self.kind,
            flows: self.flows,
            size: self.size,
            vip: VIP,
            vips: self.vips,
            vport: 80,
            src_mac: GEN_MAC,
            dst_mac,
        }
    }
}

/// How generator and device under test are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiring {
    /// One process, `net_ring` pairs, the worker on its own lcore.
    Ring,
    /// Two processes over `net_memif`.
    Memif(Dut),
}

/// What one measurement found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub name: String,
    pub method: String,
    pub traffic: String,
    /// "ring" (one process) or "memif" (two processes).
    pub wiring: String,
    pub workers: usize,
    /// Generator lanes (threads, each on its own CPU where there are CPUs enough).
    pub generators: usize,
    pub flows: u32,
    pub vips: u32,
    pub frame_bytes: u16,
    pub rate_limit_pps: Option<f64>,
    pub seconds: f64,
    /// Packets the generator put into rvs's rx ring per second (measured window).
    pub offered_mpps: f64,
    /// Packets that came out of rvs per second (measured window).
    pub forwarded_mpps: f64,
    pub forwarded_gbps: f64,
    /// Whole run, after draining.
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Of those, frames the generator did not drain in time from the one-process wiring's
    /// 1024-entry output ring (the receiver lagging, not rvs dropping).
    pub sink_overflow: u64,
    pub reordered: u64,
    /// Offers (tx attempts, retries included) in the window, and those that found rvs's rx
    /// ring full.
    pub offers: u64,
    pub ring_full: u64,
    /// Share of the workers' time (mean over workers) in passes that found packets, over
    /// the measured window.
    pub worker_busy: f64,
    /// Idle sleeps (adaptive polling) the workers took in the measured window.
    pub worker_sleeps: u64,
    /// Who limited the rate: "rvs" (or "testpmd"), "generator" or "rate limit".
    pub bottleneck: String,
    pub drops: Vec<(String, u64)>,
    pub new_conns: u64,
    pub conns_per_sec: f64,
    pub connections: u64,
    pub conn_capacity: usize,
    /// SYN flood: seconds until the table was full (None: it did not fill).
    pub table_full_after: Option<f64>,
    pub table_bytes_per_conn: f64,
    /// Resident memory the process gained from before the worker's set-up to the end of
    /// the measured window (MiB).
    pub rss_growth_mib: f64,
    pub publications: u64,
    /// Hitless reloads made during the run.
    pub reloads: u64,
    /// Listing scenarios: listings completed, the most connections one listed.
    pub listings: u64,
    pub listed_max: u64,
    /// The workers' longest pass over the run, and the longest slice of a connection
    /// listing one copied (microseconds).
    pub max_pass_us: f64,
    pub max_listing_us: f64,
    pub mean_listing_us: f64,
    /// Frames a worker handed to the flow's owner (none when the generator steers right).
    pub handoffs: u64,
    /// Of the packets the workers received in the measured window, the share handed off.
    pub handoff_percent: f64,
    /// TSC cycles per received packet in each stage of the workers' passes (rx, steer,
    /// engine, tx), over the measured window.
    pub cycles_per_packet: Vec<(String, f64)>,
    pub latency_ns: Latency,
    pub yardstick: Option<String>,
    /// Forwarded rate / the yardstick's.
    pub ratio: Option<f64>,
    /// Forwarded rate / 5tswap's on the same traffic (the load balancer's methods).
    pub ratio_5tswap: Option<f64>,
    /// Interleaved rounds this row stands for (`--rounds`; 0 or 1: one run). With more,
    /// the row is the round whose rate was the median, its shares the medians of the shares
    /// measured within each round, and these the ranges over the rounds.
    pub rounds: usize,
    pub forwarded_mpps_range: Option<(f64, f64)>,
    pub ratio_range: Option<(f64, f64)>,
    pub ratio_5tswap_range: Option<(f64, f64)>,
}

impl Outcome {
    /// An outcome of `s` over `wiring` with nothing measured yet.
    pub fn for_scenario(s: &Scenario, wiring: &str) -> Outcome {
        Outcome {
            name: s.name.clone(),
            method: s.method.name().into(),
            traffic: s.kind.name().into(),
            wiring: wiring.into(),
            workers: 1,
            generators: 1,
            flows: s.flows,
            vips: s.vips,
            frame_bytes: s.size,
            rate_limit_pps: s.rate,
            conn_capacity: s.conn_capacity,
            yardstick: s.yardstick.clone(),
            ..Outcome::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub min: u64,
    pub avg: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub samples: u64,
}

/// The process's EAL, packet pool and cores, shared by every run.
pub struct Bench {
    pub eal: Eal,
    pool: Mempool,
    worker_lcores: Vec<u32>,
    /// The CPU the generator (main lcore) runs on: control threads of a run go there.
    gen_cpu: u32,
    /// CPUs no lcore uses: further generator lanes go there.
    spare_cpus: Vec<u32>,
    /// CPUs in all.
    cpus: u32,
    /// Generator lanes a run uses; None: one per two workers, as spare CPUs allow.
    pub generators: Option<usize>,
    runs: u32,
    /// Workers' adaptive polling bound (0: always poll), as the daemon's default unless set.
    pub idle_sleep_max_us: u32,
}

/// Most workers the ring wiring takes (net_ring has 16 queues a port; port A needs two per
/// worker).
pub const MAX_WORKERS: usize = 8;

/// Lcore to CPU: its own number while there are CPUs enough; past them a worker shares
/// one of the CPUs the generator does not use, so that the generator keeps its core (the
/// run then works, but its figures are not per core).
pub fn cpu_map(generator: u32, workers: &[u32], cpus: u32) -> Vec<(u32, u32)> {
    let gen_cpu = if generator < cpus { generator } else { 0 };
    let others: Vec<u32> = (0..cpus).filter(|&c| c != gen_cpu).collect();
    std::iter::once((generator, gen_cpu))
        .chain(workers.iter().map(|&l| {
            let cpu = if l < cpus && l != gen_cpu {
                l
            } else if others.is_empty() {
                gen_cpu
            } else {
                others[l as usize % others.len()]
            };
            (l, cpu)
        }))
        .collect()
}

pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

impl Bench {
    /// The generator's (main) lcore and the workers'. Each lcore runs on the CPU of its
    /// number; see [`cpu_map`] when there are fewer CPUs.
    pub fn new(generator: u32, workers: &[u32], memory_mb: u32) -> Result<Bench, dpdk::Error> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let map = cpu_map(generator, workers, cpus);
        let gen_cpu = map.first().map_or(0, |&(_, cpu)| cpu);
        let list = map
            .iter()
            .map(|(l, c)| format!("{l}@{c}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut args = EalArgs::scratch(&list, "bench", memory_mb);
        args.placed = true;
        args.main_lcore = Some(generator);
        let eal = Eal::init(&args.to_vec())?;
        let pool = Mempool::new(&eal, "bench_pool", 32767, 256, 2048 + 128, 0)?;
        let spare_cpus = (0..cpus)
            .filter(|c| map.iter().all(|&(_, used)| used != *c))
            .collect();
        Ok(Bench {
            eal,
            pool,
            worker_lcores: workers.to_vec(),
            gen_cpu,
            spare_cpus,
            cpus,
            generators: None,
            runs: 0,
            idle_sleep_max_us: rvs_worker::idle::DEFAULT_SLEEP_MAX_US,
        })
    }

    /// CPUs of a run's generator lanes after the first (which is the main lcore): one lane
    /// per two workers on spare CPUs, or the lanes asked for, which past the spare CPUs
    /// share the others (the run then checks the wiring, not speed).
    fn lane_cpus(&self, workers: usize) -> Vec<u32> {
        let auto = self.generators.is_none();
        let lanes = self
            .generators
            .unwrap_or(workers.div_ceil(2))
            .clamp(1, workers.max(1));
        let mut shared: Vec<u32> = (0..self.cpus).filter(|&c| c != self.gen_cpu).collect();
        if shared.is_empty() || auto {
            shared = vec![self.gen_cpu];
        }
        let shared = shared
            .into_iter()
            .cycle()
            .take(if auto { 0 } else { lanes });
        self.spare_cpus
            .iter()
            .copied()
            .chain(shared)
            .take(lanes - 1)
            .collect()
    }

    /// The fixture table through a worker on the first worker lcore (see
    /// [`crate::fixtures`]); the number of steps checked.
    pub fn check_fixtures(&self) -> Result<usize, String> {
        let lcore = *self.worker_lcores.first().ok_or("no worker lcore")?;
        crate::fixtures::check(&self.eal, self.pool, lcore)
    }

    pub fn run(&mut self, s: &Scenario, rvs_bin: &Path) -> Result<Outcome, String> {
        let n = self.runs;
        self.runs += 1;
        if let Wiring::Memif(dut) = s.wiring {
            let lcore = self.worker_lcores[0];
            return memif::run(&self.eal, self.pool, n, s, dut, lcore, rvs_bin);
        }
        let err = |e: dpdk::Error| format!("{}: {e}", s.name);
        let workers = s
            .workers
            .unwrap_or(usize::MAX)
            .clamp(1, self.worker_lcores.len());
        let worker_lcores = &self.worker_lcores[..workers];
        let queues = workers as u16;
        let a_id = self
            .eal
            .attach(&format!("net_ring{}", 2 * n))
            .map_err(err)?[0];
        let b_id = self
            .eal
            .attach(&format!("net_ring{}", 2 * n + 1))
            .map_err(err)?[0];
        // Port A: the generator's tx queues 0..N feed the workers' rx queues; the workers'
        // own tx queues on A are N..2N. Port B: worker i sends on tx i, read back on rx i.
        // Each port is configured with all its device's rx queues, unused beyond N: closing
        // frees only the rings behind configured rx queues, and a run that left the others
        // would use up DPDK's memzones (about 80 runs in one process).
        let rings = |id| Port::info_of(&self.eal, id).map(|i| i.max_rx_queues.max(queues));
        let a_conf = PortConf {
            rx_queues: rings(a_id).map_err(err)?,
            tx_queues: 2 * queues,
            ..PortConf::default()
        };
        let b_conf = PortConf {
            rx_queues: rings(b_id).map_err(err)?,
            tx_queues: queues,
            ..PortConf::default()
        };
        let mut a = Port::configure(&self.eal, a_id, &a_conf, self.pool).map_err(err)?;
        let mut b = Port::configure(&self.eal, b_id, &b_conf, self.pool).map_err(err)?;
        let (mut a_rx, mut gen_tx) = a.take_queues().ok_or("port A queues")?;
        let (mut gen_rx, b_tx) = b.take_queues().ok_or("port B queues")?;
        a_rx.truncate(workers);
        gen_rx.truncate(workers);
        let worker_a_tx = gen_tx.split_off(workers);
        a.start().map_err(err)?;
        b.start().map_err(err)?;
        let a_mac = a.mac_addr().map_err(err)?;
        let b_mac = b.mac_addr().map_err(err)?;

        let rss_before = rss_kib();
        let queues: Vec<WorkerQueues> = a_rx
            .into_iter()
            .zip(worker_a_tx.into_iter().zip(b_tx))
            .zip(worker_lcores)
            .map(|((rx, (to_a, to_b)), &lcore)| WorkerQueues {
                lcore,
                rx: vec![RxAssignment {
                    rx,
                    out_port: 1,
                    in_port: 0,
                    from_host: false,
                    complete_checksums: false,
                }],
                tx: vec![to_a, to_b],
                host: Vec::new(),
                idle_sleep_max_us: self.idle_sleep_max_us,
                stage_cycles: true,
            })
            .collect();
        let (mode, lb) = if let Some(mode) = s.method.forward_mode() {
            (mode, None)
        } else {
            (ForwardMode::Lb, Some(lb_setup(n, s, [a_mac, b_mac])?))
        };
        let (set, launched) = WorkerSet::launch(
            &self.eal,
            mode,
            queues,
            lb.as_ref().map(|(_, shared)| shared),
        );
        // The command layer over the running workers: churn and listings go through it.
        let control = match (launched, lb) {
            (Err(e), _) => {
                set.stop_and_join();
                return Err(format!("{}: {e}", s.name));
            }
            (Ok(()), Some((director, shared))) => Some(Arc::new(Appliance::new(
                director,
                shared.cell,
                set.views(),
                Vec::new(),
                s.conn_capacity,
            ))),
            (Ok(()), None) => None,
        };
        let stats: Vec<Arc<WorkerStats>> = set.workers.iter().map(|w| w.stats.clone()).collect();

        let churn = match (&control, s.churn) {
            (Some(appliance), n) if n > 0 => Some(spawn_churn(
                appliance.clone(),
                s.method,
                n,
                Duration::from_secs_f64(s.seconds),
            )),
            _ => None,
        };
        let reloads = match (&control, s.reloads) {
            (Some(appliance), n) if n > 0 => Some(spawn_reloads(
                appliance.clone(),
                s.method,
                n,
                Duration::from_secs_f64(s.seconds),
            )),
            _ => None,
        };
        let generation0 = control.as_ref().map_or(0, |a| a.cell().generation());
        let listing_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listing = match (&control, s.listing) {
            (Some(appliance), true) => Some(spawn_listing(
                appliance.clone(),
                self.gen_cpu,
                listing_stop.clone(),
            )),
            _ => None,
        };

        let traffic = s.traffic(a_mac);
        let mut out = Outcome::for_scenario(s, "ring");
        out.workers = workers;
        let lane_cpus = self.lane_cpus(workers);
        let ports = GenPorts {
            eal: &self.eal,
            pool: &self.pool,
            tx: &mut gen_tx,
            rx: &mut gen_rx,
            lane_cpus: &lane_cpus,
        };
        let gen_result = generate(ports, traffic, s, &stats, rss_before, &mut out);
        listing_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = listing {
            (out.listings, out.listed_max) = h
                .join()
                .map_err(|_| format!("{}: listing thread panicked", s.name))?;
        }

        let joined = set.stop_and_join();
        if let Some(churn) = churn {
            churn
                .join()
                .map_err(|_| format!("{}: churn thread panicked", s.name))??;
        }
        if let Some(r) = reloads {
            out.reloads = r
                .join()
                .map_err(|_| format!("{}: reload thread panicked", s.name))??;
        }
        gen_result?;
        let mut drops = [0u64; DropReason::ALL.len()];
        for w in &joined {
            if let Some(f) = &w.failure {
                return Err(format!("{}: worker {}: {f}", s.name, w.index));
            }
            out.sink_overflow += w.counters.tx_dropped;
            let us = |cycles: u64| cycles as f64 * 1e6 / dpdk::tsc_hz().max(1) as f64;
            out.max_pass_us = out.max_pass_us.max(us(w.counters.max_pass_cycles));
            out.max_listing_us = out.max_listing_us.max(us(w.counters.max_listing_cycles));
            if let Some(mean) = w
                .counters
                .listing_cycles
                .checked_div(w.counters.listing_slices)
            {
                out.mean_listing_us = out.mean_listing_us.max(us(mean));
            }
            out.handoffs += w.counters.handoffs;
            if let (Some(engine), Some(bytes)) = (&w.engine, &w.bytes_per_entry) {
                out.new_conns += engine.new_conns;
                for r in DropReason::ALL {
                    drops[r as usize] += engine.drops[r as usize];
                }
                out.table_bytes_per_conn = *bytes;
            }
        }
        out.drops = DropReason::ALL
            .iter()
            .filter(|r| drops[**r as usize] > 0)
            .map(|r| (r.name().to_string(), drops[*r as usize]))
            .collect();
        if out.sink_overflow > 0 {
            out.drops.push(("sink ring full".into(), out.sink_overflow));
        }
        if let Some(appliance) = &control {
            out.publications = appliance.cell().generation() - generation0;
        }
        drop((gen_tx, gen_rx));
        a.close().map_err(err)?;
        b.close().map_err(err)?;
        Ok(out)
    }
}

/// The appliance of a scenario: clients behind a router on port 0, four real servers on
/// port 1 (TUN: behind a router on port 1), its services applied as `ipvsadm -R` applies
/// them (all or nothing, through the model's change language) before any worker starts,
/// and what its workers share (hand-off rings named apart per run `run`).
fn lb_setup(run: u32, s: &Scenario, macs: [[u8; 6]; 2]) -> Result<(Director, LbShared), String> {
    let limits = Limits {
        entries: s.vips as usize + 1,
        dests: (s.vips as usize + 1) * (SERVERS + 1) + 8,
    };
    let loads: Arc<Vec<DestLoad>> =
        Arc::new((0..limits.dests).map(|_| DestLoad::default()).collect());
    let mut director = Director::new(limits, loads.clone());
    let port = |mac, addr: [u8; 4]| PortInfo {
        mac,
        addrs: vec![IpAddr::from(addr)],
        mtu: 1500,
        ip_checksum_offload: false,
    };
    director.ports = vec![
        port(macs[0], [192, 0, 2, 1]),
        port(macs[1], [10, 1, 0, 254]),
    ];
    director.routes = vec![
        Route {
            prefix: IpAddr::from([10, 1, 0, 0]),
            len: 24,
            gateway: None,
            port: 1,
            table: rvs_core::engine::MAIN_TABLE,
        },
        Route {
            prefix: IpAddr::from([10, 2, 0, 0]),
            len: 16,
            gateway: Some(IpAddr::from([10, 1, 0, 253])),
            port: 1,
            table: rvs_core::engine::MAIN_TABLE,
        },
        Route {
            prefix: IpAddr::from([0, 0, 0, 0]),
            len: 0,
            gateway: Some(IpAddr::from([192, 0, 2, 254])),
            port: 0,
            table: rvs_core::engine::MAIN_TABLE,
        },
    ];
    director.neighbours = vec![
        (IpAddr::from([192, 0, 2, 254]), ROUTER_MAC),
        (IpAddr::from([10, 1, 0, 253]), ROUTER_MAC),
    ];
    for i in 1..=SERVERS as u8 + 1 {
        let mut mac = SERVER_MAC;
        mac[5] = i;
        director.neighbours.push((IpAddr::from([10, 1, 0, i]), mac));
    }
    let mut cmds = Vec::new();
    for (n, line) in rules(s).lines().enumerate() {
        if let Some(c) = parse_line(line).map_err(|e| format!("{}: rules: {e}", s.name))? {
            cmds.push((format!("line {}", n + 1), c));
        }
    }
    director
        .apply_all(&cmds)
        .map_err(|e| format!("{}: rules: {e}", s.name))?;
    let cell = Arc::new(SnapshotCell::new(director.snapshot()));
    let shared = LbShared {
        cell,
        loads,
        engine: EngineConfig {
            conn_capacity: s.conn_capacity,
            max_services: limits.entries,
            max_dests: limits.dests,
            neighbour_capacity: 64,
            ..EngineConfig::default()
        },
        solicit_pool: None,
        pool: None,
        ring_prefix: format!("bench_ho_{run}"),
        socket: -1,
        sync: Vec::new(),
        capture: None,
    };
    Ok((director, shared))
}

/// The scenario's services (one on each VIP) as `ipvsadm -R` lines.
fn rules(s: &Scenario) -> String {
    let proto = if s.kind == Kind::Udp { "-u" } else { "-t" };
    let mut rules = String::new();
    for v in 0..s.vips {
        let vip = vip_name(v);
        rules += &format!("-A {proto} {vip} -s rr\n");
        for i in 1..=SERVERS {
            rules += &format!(
                "-a {proto} {vip} -r {} {} -w 1\n",
                server_addr(s.method, i),
                s.method.ipvsadm_flag()
            );
        }
    }
    rules
}

/// VIP number `v` (consecutive from [`VIP`]) with the service port.
fn vip_name(v: u32) -> String {
    let a = std::net::Ipv4Addr::from(u32::from_be_bytes(VIP).wrapping_add(v));
    format!("{a}:80")
}

fn server_addr(method: Method, i: usize) -> String {
    match method {
        Method::Tun => format!("10.2.0.{i}:80"),
        _ => format!("10.1.0.{i}:80"),
    }
}

/// Lists every connection (`-L -n -c` through the command layer) back to back until
/// `stop`, from the generator's CPU; gives the listings made and the most lines one had.
fn spawn_listing(
    appliance: Arc<Appliance>,
    cpu: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu as usize });
        let (mut n, mut most) = (0u64, 0u64);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let r = appliance.ipvsadm(&["-L", "-n", "-c"], "");
            // Two heading lines, then a connection a line.
            most = most.max(r.out.lines().count().saturating_sub(2) as u64);
            n += 1;
        }
        (n, most)
    })
}

/// Publishes `n` configuration changes spread over `over`: weight edits, and every tenth
/// change a fifth server added or removed again.
fn spawn_churn(
    appliance: Arc<Appliance>,
    method: Method,
    n: usize,
    over: Duration,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let gap = over.mul_f64(0.9) / n as u32;
        let start = Instant::now();
        let vip = vip_name(0);
        let flag = method.ipvsadm_flag();
        let mut fifth = false;
        for i in 0..n {
            let line = if i % 10 == 9 {
                fifth = !fifth;
                let s = server_addr(method, SERVERS + 1);
                if fifth {
                    format!("-a -t {vip} -r {s} {flag} -w 1")
                } else {
                    format!("-d -t {vip} -r {s}")
                }
            } else {
                let s = server_addr(method, 1 + i % SERVERS);
                format!("-e -t {vip} -r {s} {flag} -w {}", 1 + i % 5)
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            let r = appliance.ipvsadm(&words, "");
            if r.status != 0 {
                return Err(format!("churn: {line}: {}", r.err));
            }
            let due = gap * (i as u32 + 1);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    })
}

/// The bench's set-up as a TOML file: its ports, routes, neighbours and the first VIP's
/// service; `second` weighs the first server 3 and adds a fifth.
fn reload_toml(method: Method, second: bool) -> String {
    let mac = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut t = String::from(
        "[dataplane]\nforward = \"lb\"\n\n\
         [[port]]\nname = \"a\"\ndevice = \"net_ring_a\"\naddresses = [\"192.0.2.1/24\"]\n\n\
         [[port]]\nname = \"b\"\ndevice = \"net_ring_b\"\naddresses = [\"10.1.0.254/24\"]\n\n\
         [[route]]\nprefix = \"10.1.0.0/24\"\nport = \"b\"\n\n\
         [[route]]\nprefix = \"10.2.0.0/16\"\nvia = \"10.1.0.253\"\nport = \"b\"\n\n\
         [[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"192.0.2.254\"\nport = \"a\"\n",
    );
    let mut neighbour = |addr: String, m: [u8; 6]| {
        t += &format!(
            "\n[[neighbour]]\naddress = \"{addr}\"\nmac = \"{}\"\n",
            mac(m)
        );
    };
    neighbour("192.0.2.254".into(), ROUTER_MAC);
    neighbour("10.1.0.253".into(), ROUTER_MAC);
    for i in 1..=SERVERS as u8 + 1 {
        let mut m = SERVER_MAC;
        m[5] = i;
        neighbour(format!("10.1.0.{i}"), m);
    }
    let vip = vip_name(0);
    let (addr, port) = vip.split_once(':').unwrap_or((&vip, "80"));
    t += &format!(
        "\n[[service]]\nprotocol = \"tcp\"\naddress = \"{addr}\"\nport = {port}\nscheduler = \"rr\"\n"
    );
    let servers = if second { SERVERS + 1 } else { SERVERS };
    for i in 1..=servers {
        let s = server_addr(method, i);
        let (a, p) = s.split_once(':').unwrap_or((&s, "80"));
        let weight = if second && i == 1 { 3 } else { 1 };
        t += &format!(
            "\n[[service.server]]\naddress = \"{a}\"\nport = {p}\nmethod = \"{}\"\nweight = {weight}\n",
            method.name()
        );
    }
    t
}

/// Reloads the configuration `n` times spread over `over`, alternating the two versions
/// of [`reload_toml`] (a weight and a fifth server changed each time); gives how many.
fn spawn_reloads(
    appliance: Arc<Appliance>,
    method: Method,
    n: usize,
    over: Duration,
) -> std::thread::JoinHandle<Result<u64, String>> {
    std::thread::spawn(move || {
        let dir = std::env::temp_dir().join(format!("rvs-bench-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("reload: {e}"))?;
        let path = dir.join("rvs.toml");
        let texts = [reload_toml(method, false), reload_toml(method, true)];
        let first = rvs_control::config::Config::parse(rvs_control::config::Source {
            file: path.display().to_string(),
            text: texts[0].clone(),
        })
        .map_err(|e| format!("reload: {e}"))?;
        appliance.set_reload_source(rvs_control::appliance::ReloadSource {
            config: path.clone(),
            keepalived: None,
            fixed: rvs_control::appliance::restart_only(&first),
            nb_cores: None,
            keepalived_text: None,
        });
        let gap = over.mul_f64(0.9) / n as u32;
        let start = Instant::now();
        let mut done = 0;
        for i in 0..n {
            std::fs::write(&path, &texts[(i + 1) % 2]).map_err(|e| format!("reload: {e}"))?;
            let report = appliance.reload()?;
            if report.contains("notice") || report.starts_with("reload: 0 change") {
                return Err(format!("reload {i}: {report}"));
            }
            done += 1;
            let due = gap * (i as u32 + 1);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(done)
    })
}
