//! The daemon's life: EAL, ports, workers, then waiting for SIGINT/SIGTERM, then a clean
//! stop with final statistics.

use crate::data_port::{self, DataPort};
use crate::kernel_port;
use dpdk::log::Level;
use dpdk::{Eal, EalArgs, Mempool, Port, PortConf, RssConf, BURST};
use rvs_control::appliance::{Appliance, PortView};
use rvs_control::config::{Config, ConfigError, Hugepages, PortConfig, AF_XDP_MAX_MTU};
use rvs_control::director::Director;
use rvs_control::iproute::ip;
use rvs_control::keepalived::KeepalivedConf;
use rvs_control::sync::SyncDaemons;
use rvs_control::vrrp::{self, VrrpConf};
use rvs_control::{console, report, socket};
use rvs_core::engine::{EngineConfig, PortInfo};
use rvs_core::publish::SnapshotCell;
use rvs_core::sync::SyncChannel;
use rvs_core::ForwardMode;
use rvs_worker::{LbShared, RxAssignment, WorkerQueues, WorkerSet};
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

/// The kernel's transparent huge page mode, the bracketed word of
/// `/sys/kernel/mm/transparent_hugepage/enabled` ("always [madvise] never").
fn thp_mode(enabled: &str) -> Option<&str> {
    let (_, rest) = enabled.split_once('[')?;
    let (mode, _) = rest.split_once(']')?;
    Some(mode)
}

/// A notice when the connection tables (`table_mib` per worker) cannot be on transparent
/// huge pages: each random lookup then walks page tables for 4 KiB pages.
fn thp_notice(enabled: Option<&str>, table_mib: f64) -> Option<String> {
    const PATH: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
    if table_mib < 64.0 {
        return None;
    }
    let why = match enabled.map(thp_mode) {
        None => format!("{PATH} cannot be read: the kernel has no transparent huge pages"),
        Some(Some("never")) => format!("{PATH} says never (echo madvise > {PATH} turns them on)"),
        Some(Some(_)) => return None,
        Some(None) => format!("{PATH} is not understood"),
    };
    Some(format!("rvs: notice: connection tables ({table_mib:.0} MiB per worker) on 4 KiB pages, slower with many flows: {why}"))
}

/// The EAL command line for a config; `hugepages` says whether to use them.
pub fn eal_args(cfg: &Config, hugepages: bool) -> Vec<String> {
    let lcores: Vec<String> = cfg.eal.lcores.iter().map(u32::to_string).collect();
    let mut args = EalArgs::new(
        cfg.eal
            .placement
            .clone()
            .unwrap_or_else(|| lcores.join(",")),
        cfg.eal.file_prefix.clone(),
    );
    args.placed = cfg.eal.placement.is_some();
    // One of EAL's own names (checked against DPDK's in data_port's tests).
    args.log_level = cfg.eal.log_level.clone();
    args.hugepages = hugepages;
    args.memory_mb = cfg.eal.memory_mb;
    args.pci = cfg
        .ports
        .iter()
        .filter(|p| p.is_pci())
        .map(|p| p.device.clone())
        .collect();
    args.extra = cfg.eal.extra_args.clone();
    args.to_vec()
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

/// Room for a whole frame of the largest MTU in one segment, plus headroom (and XDP's,
/// where an AF_XDP port receives into these buffers).
fn data_room(cfg: &Config) -> u16 {
    let mtu = cfg.ports.iter().filter_map(|p| p.mtu).max().unwrap_or(1500);
    // An AF_XDP buffer (mbuf and all) fits in a page: Ethernet and FCS only, as the driver
    // counts its MTU, and XDP's headroom before the frame.
    let (frame, xdp) = if cfg.ports.iter().any(PortConfig::is_af_xdp) {
        (u32::from(mtu) + 14 + 4, XDP_PACKET_HEADROOM)
    } else {
        (u32::from(mtu) + 14 + 8 + 4, 0) // Ethernet, two VLAN tags, FCS
    };
    let room = frame.max(2048) + PKTMBUF_HEADROOM + xdp;
    room.min(u32::from(u16::MAX)) as u16
}

/// DPDK's RTE_PKTMBUF_HEADROOM.
const PKTMBUF_HEADROOM: u32 = 128;
/// The kernel's XDP_PACKET_HEADROOM, before each frame in an AF_XDP buffer.
const XDP_PACKET_HEADROOM: u32 = 256;

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
    // The host's ARP requests name the twin's own address in the target's subnet, never a
    // VIP the host holds (an LVS real server's arp_announce=2): a BACKUP whose host serves
    // a VIP (a local real server) must not move the VIP to itself in its neighbours' caches.
    // The twin's routes are rvs's (never a default route): a router advertisement or a
    // redirect heard on a data segment (anyone's, on the clients' side) must not change
    // the host's routing. Set before the port starts (the tap PMD sets the link up then), so
    // none is heard first.
    // No duplicate address detection on the twin: its addresses are the data port's, which
    // rvs answers for on the wire. Detection would keep them tentative for a second or two
    // after every start, and a routing daemon connecting meanwhile gets the link-local
    // source (FRR's bgpd refuses such a session and backs off for up to two minutes).
    let ipv6 = std::path::Path::new(&format!("/proc/sys/net/ipv6/conf/{name}")).exists();
    for (key, value) in [
        (format!("/proc/sys/net/ipv4/conf/{name}/arp_announce"), "2"),
        (
            format!("/proc/sys/net/ipv4/conf/{name}/accept_redirects"),
            "0",
        ),
        (format!("/proc/sys/net/ipv6/conf/{name}/accept_ra"), "0"),
        (
            format!("/proc/sys/net/ipv6/conf/{name}/accept_redirects"),
            "0",
        ),
        (format!("/proc/sys/net/ipv6/conf/{name}/accept_dad"), "0"),
    ] {
        if key.starts_with("/proc/sys/net/ipv6/") && !ipv6 {
            continue;
        }
        if let Err(e) = std::fs::write(&key, value) {
            println!("rvs: warning: cannot set {key} to {value}: {e}");
        }
    }
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
    ip(&["link", "set", "dev", name, "up"]).map_err(err)?;
    for (a, len) in p.addresses.iter().zip(&p.prefix_lens) {
        ip(&["addr", "replace", &format!("{a}/{len}"), "dev", name]).map_err(err)?;
    }
    for r in cfg.lb.routes.iter().filter(|r| usize::from(r.port) == i) {
        let main = r.table == rvs_core::engine::MAIN_TABLE;
        if r.len == 0 && main {
            // The host keeps its own default route (management access); another table's
            // serves the rules that name it only.
            println!(
                "rvs: notice: default route via port {:?} not installed on {name}; the host keeps its own",
                p.name
            );
            continue;
        }
        let prefix = format!("{}/{}", r.prefix, r.len);
        let via = r.gateway.map(|g| g.to_string());
        let table = r.table.to_string();
        let family = if r.prefix.is_ipv6() { "-6" } else { "-4" };
        let mut args = vec![family, "route", "replace", prefix.as_str()];
        if let Some(v) = &via {
            args.extend(["via", v.as_str()]);
        }
        args.extend(["dev", name]);
        if !main {
            args.extend(["table", table.as_str()]);
        }
        ip(&args).map_err(err)?;
    }
    Ok(twin)
}

/// Frames a packet capture holds between the workers and its writer.
const CAPTURE_SLOTS: usize = 4096;

/// How often the rate estimator runs (IPVS: 2 s).
const ESTIMATOR_INTERVAL: Duration = Duration::from_secs(2);
/// IPVS's defence upkeep (its defense_work) runs every second.
const DEFENCE_INTERVAL: Duration = Duration::from_secs(1);

/// The starting model: the TOML's services, then its ipvsadm rules file, and timeouts.
pub fn build_director(cfg: &Config, ports: Vec<PortInfo>) -> Result<Director, RunError> {
    cfg.director(ports).map_err(RunError::Config)
}

/// What the signal handlers set: stop (SIGINT/SIGTERM), reload (SIGHUP), keepalived's
/// STATS (SIGUSR2) and STATS_CLEAR, DATA (SIGUSR1) and JSON.
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub hup: Arc<AtomicBool>,
    pub stats: Arc<AtomicBool>,
    pub stats_clear: Arc<AtomicBool>,
    pub data: Arc<AtomicBool>,
    pub json: Arc<AtomicBool>,
}

/// What the command line asks of the run besides the configuration.
pub struct RunOptions {
    /// An `rvs> ` prompt on the terminal.
    pub interactive: bool,
    /// testpmd's `--burst=N`: the workers' first burst (0: the driver's preference).
    pub burst: Option<u16>,
}

/// Runs the daemon until SIGINT/SIGTERM, the console's `quit` (with `interactive`, an
/// `rvs> ` prompt on the terminal) or `stop`, and prints final statistics. Each step
/// below is one function: EAL, ports, host twins, workers, the control side, shutdown.
pub fn run(
    cfg: &Config,
    signals: Signals,
    options: RunOptions,
    keepalived: Option<&KeepalivedConf>,
    vrrp: &VrrpConf,
    reload: rvs_control::appliance::ReloadSource,
) -> Result<(), RunError> {
    let RunOptions { interactive, burst } = options;
    let mut director = build_director(cfg, Vec::new())?;
    // Until VRRP says MASTER, its addresses are the peer's.
    director.floating = vrrp::all_standby(vrrp);
    let log = EalLog::install();
    let eal = start_eal(cfg, &log)?;
    let mut ports = open_ports(&eal, &log, cfg)?;
    let twins = open_twins(&eal, &log, cfg, &ports)?;
    director.ports = ports.infos(cfg);
    let cell = Arc::new(SnapshotCell::new(director.snapshot()));
    let loads = director.loads().clone();
    // One queue pair per worker for the connection sync daemon (idle until one runs), and
    // one store of SIP templates' calls for all.
    let sip_calls = Arc::new(rvs_core::sip::SipCalls::new(rvs_core::sip::SIP_CALL_SLOTS));
    let sync_channels: Vec<Arc<SyncChannel>> = (0..cfg.workers.len())
        .map(|_| Arc::new(SyncChannel::sharing(sip_calls.clone())))
        .collect();
    // The capture the console and the socket start: 4,096 frames of room to the writer.
    let capture = rvs_core::capture::Capture::new(CAPTURE_SLOTS);
    let lb = (cfg.forward == ForwardMode::Lb).then(|| {
        let table_mib = cfg.connections as f64
            * rvs_core::conn::ConnTable::bytes_per_entry_of(
                cfg.connections,
                cfg.full_nat,
                cfg.syn_per_source > 0 || cfg.udp_per_source > 0,
                cfg.ftp_ports.iter().any(|&p| p != 0),
            )
            / f64::from(1 << 20);
        println!(
            "rvs: load balancing {} service(s), {} real server(s); room for {} VIP:port entries, {} real servers, {} connections per worker ({table_mib:.0} MiB each)",
            director.services.len(),
            director.dest_count(),
            cfg.limits.entries,
            cfg.limits.dests,
            cfg.connections
        );
        let enabled = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        if let Some(n) = thp_notice(enabled.as_deref().ok(), table_mib) {
            eprintln!("{n}");
        }
        LbShared {
            cell: cell.clone(),
            loads,
            engine: EngineConfig {
                conn_capacity: cfg.connections,
                max_services: cfg.limits.entries,
                max_dests: cfg.limits.dests,
                neighbour_capacity: 4096,
                syn_share: cfg.syn_share,
                syn_per_source: cfg.syn_per_source,
                udp_per_source: cfg.udp_per_source,
                full_nat: cfg.full_nat,
                ftp_ports: cfg.ftp_ports,
            },
            solicit_pool: Some(ports.pools[0].1),
            pool: Some(ports.pools[0].1),
            ring_prefix: "rvs_ho".into(),
            socket: ports.main_socket,
            sync: sync_channels.clone(),
            capture: Some(capture.clone()),
        }
    });
    let queues = assign_queues(cfg, &mut ports, twins.queues)?;
    let (workers, launched) = WorkerSet::launch(&eal, cfg.forward, queues, lb.as_ref());
    for w in &workers.workers {
        println!(
            "rvs: worker {} on lcore {}: forward {} {}",
            w.index,
            w.lcore,
            cfg.forward,
            describe_rx(cfg, w.index)
        );
    }
    let machine = Machine {
        port_sockets: ports.sockets.clone(),
        worker_sockets: (workers.workers.iter())
            .map(|w| eal.lcore_socket(w.lcore))
            .collect(),
        memory: data_port::EalMemoryView::new(
            eal.memory_view(),
            (ports.pools.iter())
                .map(|&(socket, pool)| (pool_name(socket), socket, pool))
                .collect(),
        ),
    };
    let shared: Vec<Arc<DataPort>> = ports
        .ports
        .drain(..)
        .zip(&cfg.ports)
        .map(|(p, c)| {
            let kernel = c.kernel.as_ref().map(|k| k.iface.clone());
            Arc::new(DataPort::new(p, kernel, &c.device, workers.quiet.clone()))
        })
        .collect();
    let appliance = control_side(
        cfg,
        director,
        cell,
        &workers,
        &shared,
        &twins.ports,
        machine,
    );
    let names: Vec<String> = cfg.ports.iter().map(|p| p.name.clone()).collect();
    for n in rvs_control::appliance::remote_numa_notices(
        &appliance.streams,
        &appliance.worker_sockets,
        &names,
    ) {
        eprintln!("rvs: warning: {n}");
    }
    appliance.set_reload_source(reload);
    if let Some(n) = burst {
        // As the console's `set burst N` takes it, in its words.
        let r = appliance.console(&format!("set burst {n}"));
        print!("rvs: --burst={n}: {}", r.out);
        eprint!("{}", r.err);
    }
    if cfg.forward == ForwardMode::Lb {
        appliance.set_capture(capture);
    }
    let syncd = (cfg.forward == ForwardMode::Lb).then(|| {
        let d = Arc::new(SyncDaemons::new(sync_channels, cfg.vrrp_links(&ports.macs)));
        appliance.set_sync(d.clone());
        d
    });
    let failure = match launched.map_err(RunError::Dpdk).and_then(|()| {
        if syncd.is_some() {
            appliance.follow_vrrp_with_sync(vrrp.sync_daemon.clone());
        }
        // Alerts from the first state VRRP enters.
        rvs_control::mail::use_conf(&vrrp.mail);
        // keepalived's startup_script, waited for before VRRP and the checkers start.
        if let Some(b) = &vrrp.startup_script {
            vrrp::run_waited(&b.script, b.timeout, "startup_script");
        }
        start_vrrp(cfg, vrrp, &ports.macs, &appliance)
    }) {
        Err(e) => Some(e),
        Ok(()) => {
            let failure = serve(cfg, &appliance, &workers, &signals, interactive, keepalived);
            // While the workers still carry its priority-0 adverts to the wire.
            appliance.stop_vrrp();
            failure
        }
    };
    if let Some(d) = &syncd {
        d.stop_all();
    }
    let shutdown_script = vrrp.shutdown_script.as_ref();
    shutdown(
        cfg,
        &appliance,
        (workers, shared, twins.ports),
        shutdown_script,
        failure,
    )
}

/// The EAL, with hugepages when asked for (or, with "auto", when some are free).
fn start_eal(cfg: &Config, log: &EalLog) -> Result<Eal, RunError> {
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
    log.quietly(|| Eal::init(&args))
        .map_err(|e| RunError::Dpdk(format!("EAL (args: {}): {e}", args.join(" "))))
}

/// The data ports, configured and started, with their mbuf pools (one per NUMA socket).
struct DataPorts {
    ports: Vec<Port>,
    macs: Vec<[u8; 6]>,
    offloads: Vec<bool>,
    /// Each port's NUMA socket (None: the device does not say).
    sockets: Vec<Option<u32>>,
    pools: Vec<(i32, Mempool)>,
    main_socket: i32,
}

/// A data pool's name on NUMA `socket`.
fn pool_name(socket: i32) -> String {
    format!("rvs_mbufs_s{socket}")
}

impl DataPorts {
    /// What the engine knows of each port.
    fn infos(&self, cfg: &Config) -> Vec<PortInfo> {
        cfg.ports
            .iter()
            .zip(self.macs.iter().zip(&self.offloads))
            .map(|(p, (mac, offload))| PortInfo {
                mac: *mac,
                addrs: p.addresses.clone(),
                mtu: p.mtu.unwrap_or(1500),
                ip_checksum_offload: *offload,
            })
            .collect()
    }
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn open_ports(eal: &Eal, log: &EalLog, cfg: &Config) -> Result<DataPorts, RunError> {
    let n_workers = cfg.workers.len();
    let main_socket = eal.lcore_socket(eal.main_lcore()) as i32;
    let mut dp = DataPorts {
        ports: Vec::new(),
        macs: Vec::new(),
        offloads: Vec::new(),
        sockets: Vec::new(),
        pools: Vec::new(),
        main_socket,
    };
    for (i, p) in cfg.ports.iter().enumerate() {
        if let Some(dev) = &p.kernel {
            let notices = kernel_port::check_before_open(dev, p.rx_queues)
                .map_err(|e| cfg.port_error(i, "device", e))?;
            for n in notices {
                eprintln!("rvs: notice: port {:?}: {n}", p.name);
            }
        }
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
        let id = found[0];
        let info =
            Port::info_of(eal, id).map_err(|e| cfg.port_error(i, "device", e.to_string()))?;
        let socket = if info.socket < 0 {
            main_socket
        } else {
            info.socket
        };
        let pool = match dp.pools.iter().find(|(s, _)| *s == socket) {
            Some((_, pool)) => *pool,
            None => {
                let pool = Mempool::new(
                    eal,
                    &pool_name(socket),
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
                dp.pools.push((socket, pool));
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
                // Flows are owned by the worker whose queue the NIC picks under rvs's key.
                key: p.rss_key.clone().or_else(|| {
                    rvs_core::rss::device_key(usize::from(info.hash_key_size))
                        .filter(|_| p.rx_queues > 1 && cfg.forward == ForwardMode::Lb)
                }),
            },
            tx_ipv4_checksum: true,
        };
        if let Some(dev) = &p.kernel {
            // The kernel writes a frame after the mbuf's headroom and XDP's own.
            let frame =
                data_room(cfg).saturating_sub((PKTMBUF_HEADROOM + XDP_PACKET_HEADROOM) as u16);
            let max_mtu = info.max_mtu.min(AF_XDP_MAX_MTU);
            kernel_port::check_mtu(dev, max_mtu, frame.saturating_sub(18))
                .map_err(|e| cfg.port_error(i, "device", e))?;
        }
        let mut port = log
            .quietly(|| Port::configure(eal, id, &conf, pool))
            .map_err(|e| {
                let m = e.to_string();
                let Some(dev) = &p.kernel else {
                    return cfg.port_error(i, field_of(&m), m);
                };
                // A queue the kernel refused may have left DPDK's program attached.
                kernel_port::release(&dev.iface);
                cfg.port_error(i, field_of(&m), kernel_port::explain_setup_error(dev, &m))
            })?;
        if p.rx_queues > 1 {
            let requested = conf.rss.fields.iter().fold(0u64, |a, f| a | f.bits());
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
        // rvs parses each frame itself, reading the bytes the NIC's packet type would spare
        // it: a driver that can skips classifying (testpmd's default at start).
        if log.quietly(|| port.set_ptypes(0)).is_err() {
            eprintln!("rvs: notice: Port {id}: Failed to disable Ptype parsing");
        }
        log.quietly(|| port.start())
            .map_err(|e| cfg.port_error(i, "device", e.to_string()))?;
        // Not promiscuous: multicast (VRRP adverts, IPv6 neighbour discovery) still arrives.
        if !p.promiscuous {
            if let Err(e) = port.set_allmulticast(true) {
                eprintln!(
                    "rvs: notice: port {:?}: all-multicast mode: {} (VRRP adverts and IPv6 neighbour discovery arrive only if the device delivers multicast anyway)",
                    p.name,
                    e.reason()
                );
            }
        }
        if p.rx_queues > 1 && port.rss_hash_fields() != 0 && cfg.forward == ForwardMode::Lb {
            steer_like_the_owners(cfg, i, &port);
        }
        let mac = port.mac_addr().unwrap_or_default();
        dp.macs.push(mac);
        dp.offloads.push(port.tx_ipv4_checksum());
        dp.sockets.push(u32::try_from(info.socket).ok());
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
            mac_text(&mac),
            p.rx_queues,
            n_workers,
            link
        );
        dp.ports.push(port);
    }
    Ok(dp)
}

/// Programs port `i`'s redirection table so that each flow lands on a queue its owner
/// polls; where the device cannot, says that such flows cross a hand-off ring.
fn steer_like_the_owners(cfg: &Config, i: usize, port: &Port) {
    let p = &cfg.ports[i];
    let queue_of_worker: Vec<Option<u16>> = cfg
        .workers
        .iter()
        .map(|w| w.rx.iter().find(|&&(port, _)| port == i).map(|&(_, q)| q))
        .collect();
    let reta_size = usize::from(port.info().reta_size);
    let outcome = match rvs_core::rss::device_reta(reta_size, &queue_of_worker, p.rx_queues) {
        Some(table) => port.set_reta(&table).map_err(|e| e.to_string()),
        None => Err(format!(
            "its redirection table has {reta_size} entries, not a multiple of {}",
            rvs_core::rss::STEERING_RETA
        )),
    };
    if let Err(e) = outcome {
        eprintln!(
            "rvs: notice: port {:?}: {e}; flows it puts on another worker's queue cross a hand-off ring",
            p.name
        );
    }
    if p.rss_key.is_some() {
        eprintln!(
            "rvs: notice: port {:?} hashes with its own rss_key; flows it puts on another worker's queue cross a hand-off ring",
            p.name
        );
    }
}

/// The host TAP twins (the exception path), one per data port that asks for one, with
/// the queues the workers use on them.
struct Twins {
    ports: Vec<(String, Port)>,
    queues: TwinQueues,
}

struct TwinQueues {
    /// (data port, the twin's rx queue): what the kernel sends, carried by worker 0.
    rx: Vec<(usize, dpdk::RxQueue)>,
    /// By worker, by data port: the worker's tx queue on that port's twin.
    tx: Vec<Vec<Option<dpdk::TxQueue>>>,
}

fn open_twins(eal: &Eal, log: &EalLog, cfg: &Config, ports: &DataPorts) -> Result<Twins, RunError> {
    let mut twins = Twins {
        ports: Vec::new(),
        queues: TwinQueues {
            rx: Vec::new(),
            tx: (0..cfg.workers.len())
                .map(|_| (0..cfg.ports.len()).map(|_| None).collect())
                .collect(),
        },
    };
    if cfg.forward != ForwardMode::Lb {
        return Ok(twins);
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        let Some(name) = &p.host_tap else { continue };
        let mut twin = host_twin(eal, log, cfg, i, name, ports.macs[i], ports.pools[0].1)?;
        let (mut rx, tx) = twin
            .take_queues()
            .ok_or_else(|| cfg.port_error(i, "host_tap", "the twin's queues are gone"))?;
        if !rx.is_empty() {
            twins.queues.rx.push((i, rx.remove(0)));
        }
        for (w, q) in tx.into_iter().enumerate() {
            if let Some(slot) = twins.queues.tx.get_mut(w) {
                slot[i] = Some(q);
            }
        }
        println!(
            "rvs: port {:?} has host twin {name} (the kernel's share of its traffic)",
            p.name
        );
        twins.ports.push((name.clone(), twin));
    }
    Ok(twins)
}

/// Each worker's queues: the rx queues the configuration gives it, its own tx queue
/// (index = worker) on every port and twin; worker 0 also carries what the kernel sends.
fn assign_queues(
    cfg: &Config,
    ports: &mut DataPorts,
    twins: TwinQueues,
) -> Result<Vec<WorkerQueues>, RunError> {
    let gone = |what: &str| {
        RunError::Dpdk(format!(
            "{what} taken twice (configuration check missed it)"
        ))
    };
    let mut rx_queues: Vec<Vec<Option<dpdk::RxQueue>>> = Vec::new();
    let mut tx_queues: Vec<Vec<Option<dpdk::TxQueue>>> = Vec::new();
    for port in ports.ports.iter_mut() {
        let (rx, tx) = port.take_queues().ok_or_else(|| gone("port queues"))?;
        rx_queues.push(rx.into_iter().map(Some).collect());
        tx_queues.push(tx.into_iter().map(Some).collect());
    }
    let mut twin_rx = twins.rx;
    let mut twin_tx = twins.tx.into_iter();
    let mut out = Vec::with_capacity(cfg.workers.len());
    for (w, wc) in cfg.workers.iter().enumerate() {
        let mut rx = Vec::with_capacity(wc.rx.len());
        for &(p, q) in &wc.rx {
            let queue = rx_queues
                .get_mut(p)
                .and_then(|qs| qs.get_mut(usize::from(q)))
                .and_then(Option::take)
                .ok_or_else(|| gone("an rx queue"))?;
            rx.push(RxAssignment {
                rx: queue,
                out_port: cfg.ports[p].peer,
                in_port: p as u16,
                from_host: false,
                complete_checksums: cfg.ports[p].complete_checksums,
            });
        }
        if w == 0 {
            rx.extend(twin_rx.drain(..).map(|(p, q)| RxAssignment {
                rx: q,
                out_port: p,
                in_port: p as u16,
                from_host: true,
                complete_checksums: false,
            }));
        }
        let mut tx = Vec::with_capacity(tx_queues.len());
        for queues in tx_queues.iter_mut() {
            tx.push(
                queues
                    .get_mut(w)
                    .and_then(Option::take)
                    .ok_or_else(|| gone("a tx queue"))?,
            );
        }
        out.push(WorkerQueues {
            lcore: wc.lcore,
            rx,
            tx,
            host: twin_tx.next().unwrap_or_default(),
            idle_sleep_max_us: cfg.idle_sleep_max_us,
            stage_cycles: cfg.stage_cycles,
        });
    }
    Ok(out)
}

/// "in:q -> out" for each rx queue of worker `w`.
fn describe_rx(cfg: &Config, w: usize) -> String {
    cfg.workers
        .get(w)
        .map(|wc| {
            wc.rx
                .iter()
                .map(|&(p, q)| {
                    format!(
                        "{}:{q} -> {}",
                        cfg.ports[p].name, cfg.ports[cfg.ports[p].peer].name
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Starts the BFD sessions the files declare, then VRRP on the host twins when
/// instances, static addresses or routes are configured.
fn start_vrrp(
    cfg: &Config,
    conf: &VrrpConf,
    macs: &[[u8; 6]],
    appliance: &Arc<Appliance>,
) -> Result<(), RunError> {
    // BFD first: VRRP's and the checkers' tracking reads its sessions.
    appliance
        .run_bfd(conf.bfd_instances.clone())
        .map_err(|e| RunError::Worker(e.clone()))?;
    if !conf.bfd_instances.is_empty() {
        println!("rvs: bfd: {} session(s) running", conf.bfd_instances.len());
    }
    appliance
        .run_vrrp(conf.clone(), cfg.vrrp_links(macs))
        .map_err(|e| RunError::Worker(format!("vrrp: {e}")))?;
    if !conf.is_empty() {
        println!("rvs: vrrp: {} instance(s) running", conf.instances.len());
    }
    Ok(())
}

/// What the EAL tells of the machine: the NUMA sockets of the ports (None: the device does
/// not say) and of the workers' lcores, and its memory.
struct Machine {
    port_sockets: Vec<Option<u32>>,
    worker_sockets: Vec<u32>,
    memory: data_port::EalMemoryView,
}

/// The command layer over the running workers and ports.
fn control_side(
    cfg: &Config,
    director: Director,
    cell: Arc<SnapshotCell>,
    workers: &WorkerSet,
    ports: &[Arc<DataPort>],
    twins: &[(String, Port)],
    machine: Machine,
) -> Arc<Appliance> {
    let views = workers.views();
    let port_views = cfg
        .ports
        .iter()
        .zip(ports)
        .map(|(p, port)| PortView {
            name: p.name.clone(),
            port: port.clone(),
            twin: p.host_tap.clone(),
        })
        .collect();
    let mut appliance = Appliance::new(director, cell, views, port_views, cfg.connections);
    appliance.entry_bytes = rvs_core::conn::ConnTable::bytes_per_entry_of(
        cfg.connections,
        cfg.full_nat,
        cfg.syn_per_source > 0 || cfg.udp_per_source > 0,
        cfg.ftp_ports.iter().any(|&p| p != 0),
    );
    appliance.forwarding = workers.forwarding.clone();
    appliance.fwd_mode = workers.mode.clone();
    appliance.burst = workers.burst.clone();
    appliance.max_burst = dpdk::BURST as u16;
    appliance.worker_lcores = cfg.eal.lcores.len().saturating_sub(1);
    appliance.tsc_hz = dpdk::tsc_hz();
    appliance.balancing = cfg.forward == ForwardMode::Lb;
    // Worker w transmits on queue w of every port.
    appliance.streams = cfg
        .workers
        .iter()
        .enumerate()
        .flat_map(|(w, wc)| {
            let lcore = wc.lcore;
            let socket = |p: usize| machine.port_sockets.get(p).copied().flatten();
            wc.rx.iter().map(move |&(p, q)| {
                let tx = cfg.ports[p].peer;
                rvs_control::appliance::FwdStream {
                    worker: w,
                    lcore,
                    rx_port: p as u16,
                    rx_queue: q,
                    rx_socket: socket(p),
                    tx_port: tx as u16,
                    tx_queue: w as u16,
                    tx_socket: socket(tx),
                }
            })
        })
        .collect();
    appliance.worker_sockets = machine.worker_sockets;
    appliance.memory = Some(Arc::new(machine.memory));
    appliance.twins = twins.iter().map(|(name, _)| name.clone()).collect();
    let appliance = appliance.shared();
    appliance.refresh_host_vips();
    appliance
}

/// keepalived's dump signals: STATS and STATS_CLEAR write its stats file; DATA and JSON,
/// whose files rvs does not write, get a notice saying where the same state is shown.
fn answer_dumps(appliance: &Appliance, signals: &Signals) {
    use rvs_control::log::{log, Level};
    for (flag, clear) in [(&signals.stats, false), (&signals.stats_clear, true)] {
        if flag.swap(false, Ordering::Relaxed) {
            match appliance.write_vrrp_stats(clear) {
                Ok(path) => log(
                    Level::Notice,
                    "vrrp",
                    None,
                    format_args!(
                        "statistics written to {}{}",
                        path.display(),
                        if clear { " and cleared" } else { "" }
                    ),
                ),
                Err(e) => log(Level::Error, "vrrp", None, format_args!("{e}")),
            }
        }
    }
    for (flag, what) in [
        (&signals.data, "DATA (SIGUSR1): keepalived.data"),
        (&signals.json, "JSON: keepalived.json"),
    ] {
        if flag.swap(false, Ordering::Relaxed) {
            log(
                Level::Notice,
                "vrrp",
                None,
                format_args!(
                    "{what} is not written by rvs; `rvsadm --console 'show vrrp'`, `rvsadm -L -n` and `rvsadm --console 'show health'` show that state"
                ),
            );
        }
    }
}

/// Health checks, the control socket and the console, then the wait for a stop; returns
/// what ended it if that was a failure.
fn serve(
    cfg: &Config,
    appliance: &Arc<Appliance>,
    workers: &WorkerSet,
    signals: &Signals,
    interactive: bool,
    keepalived: Option<&KeepalivedConf>,
) -> Option<RunError> {
    let stop = &signals.stop;
    if let Some(conf) = keepalived {
        match appliance.load_keepalived(conf) {
            Ok(_) => println!(
                "rvs: keepalived.conf: {} virtual server(s), health checks running",
                conf.virtual_servers.len()
            ),
            Err(e) => return Some(RunError::Worker(format!("keepalived.conf: {e}"))),
        }
    }
    let control_stop = Arc::new(AtomicBool::new(false));
    let control = match socket::serve(&cfg.socket, appliance.clone(), control_stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            appliance.stop_health();
            return Some(RunError::Config(ConfigError {
                file: cfg.source.file.clone(),
                line: None,
                field: "control.socket".into(),
                message: format!("{}: {e}", cfg.socket.display()),
            }));
        }
    };
    let metrics_stop = Arc::new(AtomicBool::new(false));
    let metrics = match cfg.metrics_listen {
        Some(addr) => {
            match rvs_control::metrics_http::serve(addr, appliance.clone(), metrics_stop.clone()) {
                Ok(h) => {
                    if !addr.ip().is_loopback() {
                        eprintln!("rvs: notice: metrics on {addr}, not only loopback: anyone who reaches it reads the counters");
                    }
                    println!("rvs: metrics on http://{addr}/metrics");
                    Some(h)
                }
                Err(e) => {
                    control_stop.store(true, Ordering::Relaxed);
                    let _ = control.join();
                    appliance.stop_health();
                    return Some(RunError::Config(ConfigError {
                        file: cfg.source.file.clone(),
                        line: None,
                        field: "metrics.listen".into(),
                        message: format!("{addr}: {e}"),
                    }));
                }
            }
        }
        None => None,
    };
    // Scale-out: the VIPs' routes for the routing daemon, withdrawn when this is dropped.
    let announcer = match (&cfg.announce, cfg.forward) {
        (Some(a), ForwardMode::Lb) => match appliance.start_announcing(a.clone()) {
            Ok(h) => {
                println!(
                    "rvs: announcing VIPs with live servers in kernel table {} through {}",
                    a.table, a.iface
                );
                Some(h)
            }
            Err(e) => {
                eprintln!("rvs: error: announce: {e}");
                None
            }
        },
        _ => None,
    };
    println!(
        "rvs: forwarding; control socket {} (rvsadm); {} to stop",
        cfg.socket.display(),
        if interactive {
            "type quit (or send SIGTERM)"
        } else {
            "press Ctrl-C (or send SIGTERM)"
        }
    );
    let console = interactive.then(|| {
        let (a, s) = (appliance.clone(), stop.clone());
        std::thread::Builder::new()
            .name("rvs-console".into())
            .spawn(move || console::run(&a, &s))
    });
    let mut failure = None;
    let mut last_estimate = Instant::now();
    let mut last_defence = Instant::now();
    while !stop.load(Ordering::Relaxed) && !appliance.quit.load(Ordering::Relaxed) {
        if let Some(w) = workers.stopped_early() {
            failure = Some(RunError::Worker(format!(
                "worker {} on lcore {} stopped unexpectedly",
                w.index, w.lcore
            )));
            break;
        }
        answer_dumps(appliance, signals);
        if signals.hup.swap(false, Ordering::Relaxed) {
            use rvs_control::log::{log, Level};
            match appliance.reload() {
                Ok(report) => log(
                    Level::Notice,
                    "reload",
                    None,
                    format_args!("{}", report.trim_end().trim_start_matches("reload: ")),
                ),
                Err(e) => log(
                    Level::Error,
                    "reload",
                    None,
                    format_args!("{}", e.trim_start_matches("reload: ")),
                ),
            }
        }
        if last_estimate.elapsed() >= ESTIMATOR_INTERVAL {
            last_estimate = Instant::now();
            appliance.estimate();
        }
        if last_defence.elapsed() >= DEFENCE_INTERVAL {
            last_defence = Instant::now();
            appliance.update_defence();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Withdrawn first: routers stop sending here before the workers stop.
    drop(announcer);
    appliance.stop_health();
    control_stop.store(true, Ordering::Relaxed);
    let _ = control.join();
    metrics_stop.store(true, Ordering::Relaxed);
    if let Some(m) = metrics {
        let _ = m.join();
    }
    // The console thread may sit in a blocking read of the terminal; it is not joined.
    drop(console);
    failure
}

/// Stops the workers, prints the final statistics and closes the twins and ports.
fn shutdown(
    cfg: &Config,
    appliance: &Appliance,
    (workers, ports, twins): (WorkerSet, Vec<Arc<DataPort>>, Vec<(String, Port)>),
    shutdown_script: Option<&rvs_control::keepalived::BoundedScript>,
    mut failure: Option<RunError>,
) -> Result<(), RunError> {
    appliance.stop_health();
    // The stop's alerts (VRRP's STOP, omega's) leave before rvs does.
    rvs_control::mail::current().flush(Duration::from_secs(5));
    // keepalived's shutdown_script, once VRRP and the checkers have stopped.
    if let Some(b) = shutdown_script {
        vrrp::run_waited(&b.script, b.timeout, "shutdown_script");
    }
    drop(appliance.take_ports());
    for (name, twin) in twins {
        if let Err(e) = twin.close() {
            eprintln!("rvs: host twin {name}: {e}");
        }
    }
    let finals = workers.stop_and_join();
    println!("\nrvs: stopping; final statistics");
    for (p, port) in cfg.ports.iter().zip(&ports) {
        match port.port.stats() {
            Ok(s) => print!(
                "{}",
                report::port_stats(port.port.id().0, &p.name, &data_port::counters(s))
            ),
            Err(e) => eprintln!("rvs: port {:?}: {e}", p.name),
        }
    }
    for w in &finals {
        print!(
            "{}",
            report::worker_stats(w.index, w.lcore, &w.counters, false)
        );
        if let Some(e) = &w.engine {
            print!("{}", report::engine_stats(e));
        }
        if let (Some(f), None) = (&w.failure, &failure) {
            failure = Some(RunError::Worker(format!("worker {}: {f}", w.index)));
        }
    }
    for (p, port) in cfg.ports.iter().zip(ports) {
        // The command layer has let go of its handles; a port still shared is left open.
        let Ok(DataPort { port, .. }) = Arc::try_unwrap(port) else {
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
    fn large_tables_without_transparent_huge_pages_get_a_notice() {
        assert_eq!(thp_mode("always [madvise] never\n"), Some("madvise"));
        assert_eq!(thp_mode("[always] madvise never"), Some("always"));
        assert_eq!(thp_mode("always madvise never"), None);
        assert_eq!(thp_notice(Some("always [madvise] never\n"), 1000.0), None);
        assert_eq!(thp_notice(Some("[always] madvise never\n"), 1000.0), None);
        let off = thp_notice(Some("always madvise [never]\n"), 1000.0).unwrap();
        assert!(
            off.contains("1000 MiB per worker") && off.contains("says never"),
            "{off}"
        );
        assert!(thp_notice(None, 1000.0).unwrap().contains("cannot be read"));
        assert!(thp_notice(Some("garbage"), 1000.0)
            .unwrap()
            .contains("not understood"));
        // A small table fits the TLB's reach anyway.
        assert_eq!(thp_notice(Some("always madvise [never]"), 8.0), None);
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

    /// An AF_XDP buffer at the largest MTU is 63 cache lines with the mempool header and the
    /// mbuf (an odd count the pool keeps, within a page); at 1500 the frame has 2 KB.
    #[test]
    fn af_xdp_buffers_fit_a_page() {
        let text =
            format!("[[port]]\nname = \"a\"\ndevice = \"af_xdp:eth9\"\nmtu = {AF_XDP_MAX_MTU}\n");
        let room = u32::from(data_room(&cfg(&text)));
        assert_eq!(64 + 128 + room, 63 * 64);
        let plain = u32::from(data_room(&cfg(
            "[[port]]\nname = \"a\"\ndevice = \"af_xdp:eth9\"\n",
        )));
        assert_eq!(plain - PKTMBUF_HEADROOM - XDP_PACKET_HEADROOM, 2048);
    }
}
