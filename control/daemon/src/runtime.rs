//! The daemon's life: EAL, ports, workers, then waiting for SIGINT/SIGTERM, then a clean
//! stop with final statistics.

use crate::data_port::{self, DataPort};
use dpdk::log::Level;
use dpdk::{Eal, LcoreHandle, Mempool, Port, PortConf, RssConf, BURST};
use rvs_control::appliance::{Appliance, PortView, WorkerView};
use rvs_control::config::{Config, ConfigError, Hugepages};
use rvs_control::director::Director;
use rvs_control::keepalived::KeepalivedConf;
use rvs_control::{console, report, socket};
use rvs_core::engine::{self, Engine, EngineConfig, PortInfo};
use rvs_core::publish::{SnapshotCell, SnapshotReader};
use rvs_core::sched::DestLoad;
use rvs_core::ForwardMode;
use rvs_core::{WorkerCounters, WorkerStats};
use rvs_worker::{LbContext, RxAssignment, WorkerPlan};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why the daemon stopped with an error. Each prints as one line.
#[derive(Debug)]
pub enum RunError {
    Config(ConfigError),
    Dpdk(String),
    Worker(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(e) => e.fmt(f),
            RunError::Dpdk(m) | RunError::Worker(m) => f.write_str(m),
        }
    }
}

impl From<ConfigError> for RunError {
    fn from(e: ConfigError) -> Self {
        RunError::Config(e)
    }
}

/// EAL's log: printed to stderr, or held back while an operation whose failure we report
/// ourselves (in one line) is running.
struct EalLog {
    held: Mutex<Option<Vec<String>>>,
}

impl EalLog {
    fn install() -> Arc<EalLog> {
        let log = Arc::new(EalLog {
            held: Mutex::new(None),
        });
        let sink = log.clone();
        dpdk::log::set_sink(Box::new(move |_level: Level, line: &str| {
            let mut held = sink.held.lock().unwrap_or_else(|e| e.into_inner());
            match held.as_mut() {
                Some(lines) => lines.push(line.to_owned()),
                None => eprintln!("{line}"),
            }
        }));
        log
    }

    /// Runs `f` with EAL's lines held; they are printed if `f` succeeds and dropped if it
    /// fails (its error carries the last of them).
    fn quietly<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
        let result = f();
        let lines = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        if result.is_ok() {
            for l in lines {
                eprintln!("{l}");
            }
        }
        result
    }
}

fn free_hugepages() -> bool {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"));
    free > 0 && mounted
}

/// The EAL command line for a config; `hugepages` says whether to use them.
pub fn eal_args(cfg: &Config, hugepages: bool) -> Vec<String> {
    let lcores: Vec<String> = cfg.eal.lcores.iter().map(u32::to_string).collect();
    let mut args = vec![
        if cfg.eal.placement.is_some() {
            "--lcores"
        } else {
            "-l"
        }
        .to_string(),
        cfg.eal
            .placement
            .clone()
            .unwrap_or_else(|| lcores.join(",")),
        "--file-prefix".into(),
        cfg.eal.file_prefix.clone(),
        "--log-level".into(),
        data_port::log_level(&cfg.eal.log_level).name().into(),
        "--no-telemetry".into(),
    ];
    if hugepages {
        args.push("--huge-unlink".into());
        if let Some(mb) = cfg.eal.memory_mb {
            args.extend(["-m".into(), mb.to_string()]);
        }
    } else {
        let mb = cfg.eal.memory_mb.unwrap_or(512);
        args.extend([
            "--no-huge".into(),
            "-m".into(),
            mb.to_string(),
            "--no-shconf".into(),
        ]);
    }
    let pci: Vec<&str> = cfg
        .ports
        .iter()
        .filter(|p| p.is_pci())
        .map(|p| p.device.as_str())
        .collect();
    if pci.is_empty() {
        args.push("--no-pci".into());
    }
    for dev in pci {
        args.extend(["-a".into(), dev.to_string()]);
    }
    args.extend(cfg.eal.extra_args.iter().cloned());
    args
}

/// Mbufs needed: every rx and tx descriptor, the workers' bursts and the lcore caches.
fn pool_size(cfg: &Config) -> u32 {
    if let Some(n) = cfg.mbufs {
        return n;
    }
    let workers = cfg.workers.len() as u32;
    let descriptors: u32 = cfg
        .ports
        .iter()
        .map(|p| u32::from(p.rx_queues) * u32::from(p.rx_desc) + workers * u32::from(p.tx_desc))
        .sum();
    let want = descriptors
        + workers * BURST as u32 * 2
        + cfg.eal.lcores.len() as u32 * cfg.mbuf_cache
        + 2048;
    want.next_power_of_two() - 1
}

/// Room for a whole frame of the largest MTU in one segment, plus headroom.
fn data_room(cfg: &Config) -> u16 {
    let mtu = cfg.ports.iter().filter_map(|p| p.mtu).max().unwrap_or(1500);
    let frame = u32::from(mtu) + 14 + 8 + 4; // Ethernet, two VLAN tags, FCS
    let room = frame.max(2048) + PKTMBUF_HEADROOM;
    room.min(u32::from(u16::MAX)) as u16
}

/// DPDK's RTE_PKTMBUF_HEADROOM.
const PKTMBUF_HEADROOM: u32 = 128;

fn field_of(message: &str) -> &'static str {
    if message.contains("MTU") {
        "mtu"
    } else if message.contains("rx queues") {
        "rx_queues"
    } else if message.contains("RSS key") {
        "rss_key"
    } else {
        "device"
    }
}

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates port `i`'s host TAP twin: a net_tap port whose kernel interface `name` has the
/// data port's MAC, addresses and routes, so the kernel owns the appliance's addresses.
#[allow(clippy::too_many_arguments)]
fn host_twin(
    eal: &Eal,
    log: &EalLog,
    cfg: &Config,
    i: usize,
    name: &str,
    mac: [u8; 6],
    pool: Mempool,
) -> Result<Port, RunError> {
    let p = &cfg.ports[i];
    let err = |m: String| cfg.port_error(i, "host_tap", m);
    let mac_text = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let devargs = format!("net_tap_rvshost{i},iface={name},mac={mac_text}");
    let id = log
        .quietly(|| eal.attach(&devargs))
        .map_err(|e| err(e.to_string()))?[0];
    let conf = PortConf {
        rx_queues: 1,
        tx_queues: cfg.workers.len() as u16,
        mtu: p.mtu,
        promiscuous: false,
        ..PortConf::default()
    };
    let mut twin = log
        .quietly(|| Port::configure(eal, id, &conf, pool))
        .map_err(|e| err(e.to_string()))?;
    log.quietly(|| twin.start())
        .map_err(|e| err(e.to_string()))?;
    ip_cmd(&["link", "set", "dev", name, "up"]).map_err(err)?;
    for (a, len) in p.addresses.iter().zip(&p.prefix_lens) {
        ip_cmd(&["addr", "replace", &format!("{a}/{len}"), "dev", name]).map_err(err)?;
    }
    for r in cfg.lb.routes.iter().filter(|r| usize::from(r.port) == i) {
        if r.len == 0 {
            // The host keeps its own default route (management access).
            println!(
                "rvs: notice: default route via port {:?} not installed on {name}; the host keeps its own",
                p.name
            );
            continue;
        }
        let prefix = format!("{}/{}", r.prefix, r.len);
        let via = r.gateway.map(|g| g.to_string());
        let mut args = vec!["route", "replace", prefix.as_str()];
        if let Some(v) = &via {
            args.extend(["via", v.as_str()]);
        }
        args.extend(["dev", name]);
        ip_cmd(&args).map_err(err)?;
    }
    Ok(twin)
}

/// How often the rate estimator runs (IPVS: 2 s).
const ESTIMATOR_INTERVAL: Duration = Duration::from_secs(2);

/// The starting model: the TOML's services, then its ipvsadm rules file, and timeouts.
pub fn build_director(cfg: &Config, ports: Vec<PortInfo>) -> Result<Director, RunError> {
    let loads: Arc<Vec<DestLoad>> =
        Arc::new((0..cfg.limits.dests).map(|_| DestLoad::default()).collect());
    let config_error = |field: &str, message: String| {
        RunError::Config(ConfigError {
            file: cfg.source.file.clone(),
            line: None,
            field: field.into(),
            message,
        })
    };
    let mut d = cfg
        .lb
        .director(cfg.limits, loads, ports)
        .map_err(|m| config_error("service", m))?;
    let (tcp, tcpfin, udp) = cfg.timeouts;
    d.timeouts.set(tcp, tcpfin, udp);
    if let Some((path, text)) = &cfg.rules {
        let mut cmds = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if let Ok(Some(c)) = rvs_control::ipvsadm::parse_line(line) {
                cmds.push((n + 1, c));
            }
        }
        d.apply_all(&cmds)
            .map_err(|m| config_error("control.rules", format!("{}: {m}", path.display())))?;
    }
    Ok(d)
}

/// Runs the daemon until SIGINT/SIGTERM, the console's `quit` (with `interactive`, an
/// `rvs> ` prompt on the terminal) or `stop`, and prints final statistics.
pub fn run(
    cfg: &Config,
    stop: Arc<AtomicBool>,
    interactive: bool,
    keepalived: Option<&KeepalivedConf>,
) -> Result<(), RunError> {
    let mut director = build_director(cfg, Vec::new())?;
    let log = EalLog::install();
    let use_huge = match cfg.eal.hugepages {
        Hugepages::On => true,
        Hugepages::Off => false,
        Hugepages::Auto => {
            let free = free_hugepages();
            if !free {
                eprintln!("rvs: notice: no free hugepages mounted; running with --no-huge (run scripts/setup to reserve them)");
            }
            free
        }
    };
    let args = eal_args(cfg, use_huge);
    let eal = log
        .quietly(|| Eal::init(&args))
        .map_err(|e| RunError::Dpdk(format!("EAL (args: {}): {e}", args.join(" "))))?;

    let mut ids = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let found = log
            .quietly(|| eal.attach(&p.device))
            .map_err(|e| cfg.port_error(i, "device", e.to_string()))?;
        if found.len() > 1 {
            eprintln!(
                "rvs: notice: device {:?} has {} ports; port {:?} uses the first",
                p.device,
                found.len(),
                p.name
            );
        }
        ids.push(found[0]);
    }

    let n_workers = cfg.workers.len();
    let main_socket = eal.lcore_socket(eal.main_lcore()) as i32;
    let mut pools: Vec<(i32, Mempool)> = Vec::new();
    let mut ports = Vec::new();
    let mut port_macs: Vec<[u8; 6]> = Vec::new();
    let mut offloads: Vec<bool> = Vec::new();
    for (i, (p, &id)) in cfg.ports.iter().zip(&ids).enumerate() {
        let info =
            Port::info_of(&eal, id).map_err(|e| cfg.port_error(i, "device", e.to_string()))?;
        let socket = if info.socket < 0 {
            main_socket
        } else {
            info.socket
        };
        let pool = match pools.iter().find(|(s, _)| *s == socket) {
            Some((_, pool)) => *pool,
            None => {
                let pool = Mempool::new(
                    &eal,
                    &format!("rvs_mbufs_s{socket}"),
                    pool_size(cfg),
                    cfg.mbuf_cache,
                    data_room(cfg),
                    socket,
                )
                .map_err(|e| {
                    RunError::Dpdk(format!(
                        "{e} (raise eal.memory_mb or lower dataplane.mbufs)"
                    ))
                })?;
                pools.push((socket, pool));
                pool
            }
        };
        let conf = PortConf {
            rx_queues: p.rx_queues,
            tx_queues: n_workers as u16,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            mtu: p.mtu,
            promiscuous: p.promiscuous,
            rss: RssConf {
                fields: data_port::rss_fields(&p.rss_hash),
                key: p.rss_key.clone(),
            },
            tx_ipv4_checksum: true,
        };
        let mut port = log
            .quietly(|| Port::configure(&eal, id, &conf, pool))
            .map_err(|e| {
                let m = e.to_string();
                cfg.port_error(i, field_of(&m), m)
            })?;
        if p.rx_queues > 1 {
            let requested = data_port::rss_fields(&p.rss_hash)
                .iter()
                .fold(0u64, |a, f| a | f.bits());
            if port.rss_hash_fields() == 0 {
                eprintln!("rvs: notice: port {:?} ({}) has no RSS; each rx queue gets what the device puts on it", p.name, info.driver);
            } else if port.rss_hash_fields() != requested {
                eprintln!(
                    "rvs: notice: port {:?} hashes {:#x} of the requested {requested:#x}",
                    p.name,
                    port.rss_hash_fields()
                );
            }
        }
        log.quietly(|| port.start())
            .map_err(|e| cfg.port_error(i, "device", e.to_string()))?;
        let mac = port.mac_addr().unwrap_or_default();
        port_macs.push(mac);
        offloads.push(port.tx_ipv4_checksum());
        let link = port
            .link()
            .map(|l| l.text)
            .unwrap_or_else(|e| e.to_string());
        println!(
            "rvs: port {} {:?} = {} ({}), MAC {}, {} rx queue(s), {} tx queue(s), {}",
            id,
            p.name,
            p.device,
            info.driver,
            mac.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            p.rx_queues,
            n_workers,
            link
        );
        ports.push(port);
    }

    // Each worker: its rx queues, and its own tx queue (index = worker) on every port.
    // Host TAP twins (the exception path), one per data port that asks for one.
    let mut twins: Vec<(String, Port)> = Vec::new();
    let mut twin_rx: Vec<(usize, dpdk::RxQueue)> = Vec::new();
    let mut twin_tx: Vec<Vec<Option<dpdk::TxQueue>>> = (0..n_workers)
        .map(|_| (0..cfg.ports.len()).map(|_| None).collect())
        .collect();
    if cfg.forward == ForwardMode::Lb {
        for (i, p) in cfg.ports.iter().enumerate() {
            let Some(name) = &p.host_tap else { continue };
            let pool = pools[0].1;
            let mut twin = host_twin(&eal, &log, cfg, i, name, port_macs[i], pool)?;
            let (mut rx, tx) = twin.take_queues().expect("queues are taken once");
            twin_rx.push((i, rx.remove(0)));
            for (w, q) in tx.into_iter().enumerate() {
                twin_tx[w][i] = Some(q);
            }
            println!(
                "rvs: port {:?} has host twin {name} (the kernel's share of its traffic)",
                p.name
            );
            twins.push((name.clone(), twin));
        }
    }
    let mut rx_queues: Vec<Vec<Option<dpdk::RxQueue>>> = Vec::new();
    let mut tx_queues: Vec<Vec<Option<dpdk::TxQueue>>> = Vec::new();
    for port in ports.iter_mut() {
        let (rx, tx) = port.take_queues().expect("queues are taken once");
        rx_queues.push(rx.into_iter().map(Some).collect());
        tx_queues.push(tx.into_iter().map(Some).collect());
    }
    let worker_stop = Arc::new(AtomicBool::new(false));
    let forwarding = Arc::new(AtomicBool::new(true));
    type Outcome = (WorkerCounters, Option<engine::Counters>);
    let mut running: Vec<(usize, u32, Arc<WorkerStats>, LcoreHandle<Outcome>)> = Vec::new();
    let infos: Vec<PortInfo> = cfg
        .ports
        .iter()
        .zip(port_macs.iter().zip(&offloads))
        .map(|(p, (mac, offload))| PortInfo {
            mac: *mac,
            addrs: p.addresses.clone(),
            mtu: p.mtu.unwrap_or(1500),
            ip_checksum_offload: *offload,
        })
        .collect();
    director.ports = infos;
    let cell = Arc::new(SnapshotCell::new(director.snapshot()));
    let loads = director.loads().clone();
    if cfg.forward == ForwardMode::Lb {
        println!(
            "rvs: load balancing {} service(s), {} real server(s); room for {} VIP:port entries, {} real servers, {} connections per worker",
            director.services.len(),
            director.dest_count(),
            cfg.limits.entries,
            cfg.limits.dests,
            cfg.connections
        );
    }
    let mut launch_error = None;
    // Hand-off rings for lb: one per ordered pair of workers.
    let n_workers = cfg.workers.len();
    let lb = cfg.forward == ForwardMode::Lb;
    let handoffs = rvs_worker::Handoff::mesh(&eal, n_workers, lb, "rvs_ho", main_socket)
        .map_err(|e| RunError::Dpdk(format!("hand-off ring: {e}")))?;
    let mut handoffs = handoffs.into_iter();
    let mut twin_tx = twin_tx.into_iter();
    for (w, wc) in cfg.workers.iter().enumerate() {
        let handoff = handoffs.next().unwrap_or_default();
        let host = twin_tx.next().unwrap_or_default();
        let mut rx: Vec<RxAssignment> = wc
            .rx
            .iter()
            .map(|&(p, q)| RxAssignment {
                rx: rx_queues[p][usize::from(q)]
                    .take()
                    .expect("each rx queue has one worker"),
                out_port: cfg.ports[p].peer,
                in_port: p as u16,
                from_host: false,
            })
            .collect();
        // The first worker also carries what the kernel sends out of the twins.
        if w == 0 {
            rx.extend(twin_rx.drain(..).map(|(p, q)| RxAssignment {
                rx: q,
                out_port: p,
                in_port: p as u16,
                from_host: true,
            }));
        }
        let tx = tx_queues
            .iter_mut()
            .map(|queues| queues[w].take().expect("one tx queue per worker"))
            .collect();
        let plan = WorkerPlan {
            worker: w,
            mode: cfg.forward,
            rx,
            tx,
            forwarding: forwarding.clone(),
            host,
        };
        let desc: Vec<String> = wc
            .rx
            .iter()
            .map(|&(p, q)| {
                format!(
                    "{}:{q} -> {}",
                    cfg.ports[p].name, cfg.ports[cfg.ports[p].peer].name
                )
            })
            .collect();
        let lb = (cfg.forward == ForwardMode::Lb).then(|| {
            let mut engine = Engine::new(
                EngineConfig {
                    conn_capacity: cfg.connections,
                    max_services: cfg.limits.entries,
                    max_dests: cfg.limits.dests,
                    neighbour_capacity: 4096,
                },
                1,
            );
            let snapshot = SnapshotReader::new(cell.clone());
            engine.adopt(snapshot.get());
            LbContext {
                engine,
                snapshot,
                loads: loads.clone(),
                handoff,
                solicit_pool: (w == 0).then_some(pools[0].1),
            }
        });
        let stats = Arc::new(WorkerStats::default());
        let (s, st) = (worker_stop.clone(), stats.clone());
        let job = move || match lb {
            Some(ctx) => {
                let (c, e) = rvs_worker::run_lb(plan, ctx, &s, &st);
                (c, Some(e))
            }
            None => (rvs_worker::run(plan, &s, &st), None),
        };
        match eal.launch(wc.lcore, job) {
            Ok(handle) => {
                println!(
                    "rvs: worker {w} on lcore {}: forward {} {}",
                    wc.lcore,
                    cfg.forward,
                    desc.join(", ")
                );
                running.push((w, wc.lcore, stats, handle));
            }
            Err(e) => {
                launch_error = Some(RunError::Dpdk(format!("worker {w}: {e}")));
                break;
            }
        }
    }
    drop((rx_queues, tx_queues));

    let views = running
        .iter()
        .map(|(w, lcore, stats, _)| WorkerView {
            index: *w,
            lcore: *lcore,
            stats: stats.clone(),
        })
        .collect();
    let ports: Vec<Arc<DataPort>> = ports.into_iter().map(|p| Arc::new(DataPort(p))).collect();
    let port_views = cfg
        .ports
        .iter()
        .zip(&ports)
        .map(|(p, port)| PortView {
            name: p.name.clone(),
            port: port.clone(),
        })
        .collect();
    let mut appliance = Appliance::new(director, cell, views, port_views, cfg.connections);
    appliance.forwarding = forwarding;
    appliance.balancing = cfg.forward == ForwardMode::Lb;
    appliance.twins = twins.iter().map(|(name, _)| name.clone()).collect();
    let appliance = appliance.shared();
    appliance.refresh_host_vips();
    let mut failure = launch_error;
    if let (None, Some(conf)) = (&failure, keepalived) {
        match appliance.load_keepalived(conf) {
            Ok(_) => println!(
                "rvs: keepalived.conf: {} virtual server(s), health checks running",
                conf.virtual_servers.len()
            ),
            Err(e) => failure = Some(RunError::Worker(format!("keepalived.conf: {e}"))),
        }
    }
    let control_stop = Arc::new(AtomicBool::new(false));
    let control = if failure.is_none() {
        match socket::serve(&cfg.socket, appliance.clone(), control_stop.clone()) {
            Ok(h) => Some(h),
            Err(e) => {
                failure = Some(RunError::Config(ConfigError {
                    file: cfg.source.file.clone(),
                    line: None,
                    field: "control.socket".into(),
                    message: format!("{}: {e}", cfg.socket.display()),
                }));
                None
            }
        }
    } else {
        None
    };
    if failure.is_none() {
        println!(
            "rvs: forwarding; control socket {} (rvsadm); press Ctrl-C (or send SIGTERM) to stop",
            cfg.socket.display()
        );
    }
    let console = (failure.is_none() && interactive).then(|| {
        let (a, s) = (appliance.clone(), stop.clone());
        std::thread::Builder::new()
            .name("rvs-console".into())
            .spawn(move || console::run(&a, &s))
    });
    let mut last_estimate = Instant::now();
    while failure.is_none()
        && !stop.load(Ordering::Relaxed)
        && !appliance.quit.load(Ordering::Relaxed)
    {
        if let Some((w, lcore, ..)) = running.iter().find(|r| r.3.is_finished()) {
            failure = Some(RunError::Worker(format!(
                "worker {w} on lcore {lcore} stopped unexpectedly"
            )));
            break;
        }
        if last_estimate.elapsed() >= ESTIMATOR_INTERVAL {
            last_estimate = Instant::now();
            appliance.estimate();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    appliance.stop_health();
    control_stop.store(true, Ordering::Relaxed);
    if let Some(h) = control {
        let _ = h.join();
    }
    // The console thread may sit in a blocking read of the terminal; it is not joined.
    drop(console);
    drop(appliance.take_ports());
    for (name, twin) in twins {
        if let Err(e) = twin.close() {
            eprintln!("rvs: host twin {name}: {e}");
        }
    }

    worker_stop.store(true, Ordering::Relaxed);
    let mut finals = Vec::new();
    for (w, lcore, stats, handle) in running {
        match handle.join() {
            Ok((c, e)) => finals.push((w, lcore, c, e)),
            Err(panic) => {
                finals.push((w, lcore, stats.read(), None));
                failure = Some(RunError::Worker(format!("worker {w}: {panic}")));
            }
        }
    }

    println!("\nrvs: stopping; final statistics");
    for (p, port) in cfg.ports.iter().zip(&ports) {
        match port.0.stats() {
            Ok(s) => print!(
                "{}",
                report::port_stats(port.0.id().0, &p.name, &data_port::counters(s))
            ),
            Err(e) => eprintln!("rvs: port {:?}: {e}", p.name),
        }
    }
    for (w, lcore, c, e) in &finals {
        print!("{}", report::worker_stats(*w, *lcore, c));
        if let Some(e) = e {
            print!("{}", report::engine_stats(e));
        }
    }
    for (p, port) in cfg.ports.iter().zip(ports) {
        // The command layer has let go of its handles; a port still shared is left open.
        let Ok(DataPort(port)) = Arc::try_unwrap(port) else {
            continue;
        };
        if let Err(e) = port.close() {
            eprintln!("rvs: port {:?}: {e}", p.name);
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            println!("rvs: bye");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_control::config::Source;

    fn cfg(text: &str) -> Config {
        Config::parse(Source {
            file: "t.toml".into(),
            text: text.into(),
        })
        .unwrap()
    }

    #[test]
    fn eal_args_for_vdevs_without_hugepages() {
        let c = cfg("[eal]\nlcores = \"0,1\"\nmemory_mb = 300\nfile_prefix = \"x\"\n[[port]]\nname = \"a\"\ndevice = \"net_ring0\"\n");
        assert_eq!(
            eal_args(&c, false).join(" "),
            "-l 0,1 --file-prefix x --log-level notice --no-telemetry --no-huge -m 300 --no-shconf --no-pci"
        );
        assert_eq!(
            eal_args(&c, true).join(" "),
            "-l 0,1 --file-prefix x --log-level notice --no-telemetry --huge-unlink -m 300 --no-pci"
        );
    }

    #[test]
    fn pci_ports_are_allowlisted() {
        let c = cfg("[[port]]\nname = \"a\"\ndevice = \"0000:03:00.0\"\n[[port]]\nname = \"b\"\ndevice = \"net_tap0,iface=x\"\n");
        let args = eal_args(&c, true).join(" ");
        assert!(args.contains("-a 0000:03:00.0"), "{args}");
        assert!(!args.contains("--no-pci"), "{args}");
    }

    #[test]
    fn pool_covers_descriptors_and_room_covers_the_mtu() {
        let c = cfg("[[port]]\nname = \"a\"\ndevice = \"net_ring0\"\nrx_queues = 1\nmtu = 9000\n[[port]]\nname = \"b\"\ndevice = \"net_ring1\"\n");
        let n = pool_size(&c);
        assert!(n >= 4 * 1024 + 2048, "{n}");
        assert!((n + 1).is_power_of_two());
        assert_eq!(data_room(&c), 9000 + 26 + 128);
    }
}
