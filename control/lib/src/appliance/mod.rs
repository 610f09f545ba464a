//! The running appliance as the control side sees it, and the one command layer the
//! console and the control socket share: ipvsadm command lines (from `rvsadm` or typed at
//! the prompt) and testpmd-style console verbs.
//!
//! Every change is applied to a copy of the [`Director`], so a failing command changes
//! nothing; a successful one becomes a new snapshot published to the workers.

use crate::director::Director;
use crate::health::monitor::{HealthRow, Monitor};
use crate::ipvsadm::{self, Command, ListOptions, ServiceKey};
use crate::keepalived::KeepalivedConf;
use crate::listing::{self, Figures, Stats};
use crate::ports::{PortCounters, PortDevice};
use crate::report;
use parking_lot::Mutex;
use rvs_core::engine::Counters;
use rvs_core::publish::SnapshotCell;
use rvs_core::ForwardMode;
pub use rvs_core::WorkerView;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod announce;
mod capture;
mod defence;
mod figures;
mod ha;
mod health;
mod host_vips;
use host_vips::HostVips;
mod metrics;
mod port_state;
mod reload;
mod show;
mod sysctl;
pub mod verbs;

pub use announce::{Announcer, VipAnnouncement};
pub use reload::{restart_only, ReloadSource};

pub use ha::{StateHook, VrrpHost};

use figures::*;

#[derive(Debug)]
pub struct PortView {
    pub name: String,
    pub port: Arc<dyn PortDevice>,
    /// Its host twin's interface name, if it has one.
    pub twin: Option<String>,
}

/// The answer to one command: what goes to stdout and stderr, and the exit status
/// (ipvsadm's: 0 ok, 1 refused by the data plane's rules, 2 bad syntax).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub status: i32,
    pub out: String,
    pub err: String,
}

impl Reply {
    pub fn ok(out: impl Into<String>) -> Reply {
        Reply {
            status: 0,
            out: out.into(),
            err: String::new(),
        }
    }

    pub fn fail(status: i32, err: impl Into<String>) -> Reply {
        let mut err = err.into();
        if !err.ends_with('\n') {
            err.push('\n');
        }
        Reply {
            status,
            out: String::new(),
            err,
        }
    }
}

/// The most `load` reads: command files are short; keepalived.conf has its own limits.
const MAX_COMMAND_FILE: u64 = 1 << 20;
/// How long a change waits for the workers to take it (an idle worker sleeps at most
/// `idle_sleep_max_us` between polls; one that does not poll is not waited for longer).
const ADOPTION_LIMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A regular file of at most [`MAX_COMMAND_FILE`] bytes (a FIFO or device would block).
fn read_command_file(path: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_COMMAND_FILE {
        return Err(format!("larger than {MAX_COMMAND_FILE} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "not text (UTF-8)".to_string())
}

/// A console switch (`set WHAT on|off`): quiet, as testpmd's.
fn switch(what: &str, on: &str, set: impl FnOnce(bool)) -> Reply {
    match on {
        "on" | "off" => {
            set(on == "on");
            Reply::ok("")
        }
        _ => Reply::fail(2, format!("set {what} on|off")),
    }
}

/// ipvsadm's answer to a line it cannot take.
fn failure(f: ipvsadm::Failure) -> Reply {
    Reply {
        status: f.status,
        out: String::new(),
        err: f.message + "\n",
    }
}

/// The workers' burst where the daemon does not say (tests): DPDK's wrapper's.
const DEFAULT_BURST: u16 = 32;

/// Most connections one worker lists for `-L -c` / `show conn`.
pub const CONN_LISTING_LIMIT: usize = 1 << 20;

/// Entries a worker hands over at a time (its buffer, lent by the control side).
const CONN_LISTING_CHUNK: usize = 4096;

pub struct Appliance {
    director: Mutex<Director>,
    cell: Arc<SnapshotCell>,
    workers: Vec<WorkerView>,
    ports: Mutex<Vec<PortView>>,
    last_port_show: Mutex<HashMap<usize, (Instant, PortCounters)>>,
    /// Raw counters at the last `-Z` (or when an id was taken into use).
    baseline: Mutex<Figures>,
    estimator: Mutex<Estimator>,
    conn_capacity: usize,
    /// Bytes a worker's connection table holds per entry (IPVS's defences count memory).
    pub entry_bytes: f64,
    /// Cleared by the console's `stop`: workers leave their queues alone.
    pub forwarding: Arc<AtomicBool>,
    /// The workers' forwarding mode (`set fwd`), a [`ForwardMode::code`].
    pub fwd_mode: Arc<AtomicU8>,
    /// Frames a worker takes from an rx queue at a time (`set burst`), and the most it can
    /// (the size of its burst arrays).
    pub burst: Arc<AtomicU16>,
    pub max_burst: u16,
    /// The EAL's lcores besides the main one (testpmd's bound for `set nbcore`); at least
    /// the workers (fewer forward with `--nb-cores`).
    pub worker_lcores: usize,
    /// testpmd's `set record-core-cycles`: `show fwd stats` ends with cycles per packet.
    record_core_cycles: AtomicBool,
    /// The workers' TSC frequency (their cycle counts' clock).
    pub tsc_hz: u64,
    /// What each worker forwards (`show config fwd`).
    pub streams: Vec<FwdStream>,
    /// Each worker's lcore's NUMA socket.
    pub worker_sockets: Vec<u32>,
    /// The EAL's memory (testpmd's `dump` commands, the mbuf pools' metrics); None
    /// without an EAL.
    pub memory: Option<Arc<dyn crate::ports::EalMemory>>,
    /// `dump socket_mem`'s totals at its last call (testpmd prints the change since).
    socket_mem_last: Mutex<Option<(u64, u64)>>,
    /// Each worker's counters (its own and its engine's) at the last `start` or `clear
    /// fwd stats`: `show fwd stats` counts from there.
    fwd_since: Mutex<Vec<(rvs_core::WorkerCounters, rvs_core::engine::Counters)>>,
    verbose: AtomicU32,
    /// testpmd's `set xstats-hide-zero`: `show port xstats` leaves out zero counters.
    xstats_hide_zero: AtomicBool,
    /// Nesting of `load` (a file that loads itself stops here).
    load_depth: AtomicU32,
    /// Set by the console's `quit`.
    pub quit: Arc<AtomicBool>,
    /// False in the diagnostic forwarding modes: changes would reach no worker.
    pub balancing: bool,
    /// Health checkers' states for `show health`.
    health: Mutex<Vec<HealthRow>>,
    /// The running keepalived.conf: its services and its monitor.
    keepalived: Mutex<Option<(Vec<ServiceKey>, Monitor)>>,
    /// The BFD sessions the files declare, when they declare some.
    bfd: Mutex<Option<crate::bfd::BfdRuntime>>,
    /// Where `reload` reads the configuration again.
    reload_source: Mutex<Option<ReloadSource>>,
    /// The packet capture the workers feed, and the one being written.
    capture: Mutex<Option<Arc<rvs_core::capture::Capture>>>,
    capture_run: Mutex<Option<capture::CaptureRun>>,
    /// Serialises changes of the model (held while the host's addresses are updated).
    changing: Mutex<()>,
    /// Changes the checkers applied.
    health_changes: std::sync::atomic::AtomicU64,
    /// Changes that returned before every worker ran them (`ADOPTION_LIMIT` passed).
    adoption_timeouts: std::sync::atomic::AtomicU64,
    /// The host TAP twins' interface names, and the VIPs put on them for local servers.
    pub twins: Vec<String>,
    host_vips: Mutex<Vec<std::net::IpAddr>>,
    /// The VRRP instances' state (`show vrrp`), when VRRP runs.
    vrrp: Mutex<Option<Arc<Mutex<Vec<crate::vrrp::InstanceStatus>>>>>,
    vrrp_hook: Mutex<Option<StateHook>>,
    /// VRRP running, and the ports it may speak on (a reload may start it).
    vrrp_runtime: Mutex<Option<crate::vrrp::VrrpRuntime>>,
    vrrp_links: Mutex<Vec<crate::vrrp::Link>>,
    /// The connection sync daemons, where the data plane balances.
    sync: Mutex<Option<Arc<crate::sync::SyncDaemons>>>,
    /// The VIPs announced to a routing daemon (`[announce]`).
    announcements: Mutex<Vec<VipAnnouncement>>,
}

impl std::fmt::Debug for Appliance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Appliance({} workers)", self.workers.len())
    }
}

/// One worker's rx queue and where its frames go (the diagnostic modes' peer port), with
/// the ports' NUMA sockets (None: the device does not say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwdStream {
    pub worker: usize,
    pub lcore: u32,
    pub rx_port: u16,
    pub rx_queue: u16,
    pub rx_socket: Option<u32>,
    pub tx_port: u16,
    pub tx_queue: u16,
    pub tx_socket: Option<u32>,
}

/// A line for each worker that polls a port attached to another NUMA socket than its
/// lcore's (every frame it takes then crosses the sockets' link, as does the port's memory
/// pool); `worker_sockets`: each worker's lcore's socket; `names`: the ports' names.
pub fn remote_numa_notices(
    streams: &[FwdStream],
    worker_sockets: &[u32],
    names: &[String],
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut lines = Vec::new();
    for s in streams {
        let Some(&lcore_socket) = worker_sockets.get(s.worker) else {
            continue;
        };
        let Some(socket) = s.rx_socket.filter(|&p| p != lcore_socket) else {
            continue;
        };
        if seen.contains(&(s.worker, s.rx_port)) {
            continue;
        }
        seen.push((s.worker, s.rx_port));
        let queues: Vec<String> = streams
            .iter()
            .filter(|o| o.worker == s.worker && o.rx_port == s.rx_port)
            .map(|o| o.rx_queue.to_string())
            .collect();
        let name = names.get(usize::from(s.rx_port)).map_or("", String::as_str);
        lines.push(format!(
            "port {} ({name:?}) is on NUMA socket {socket}, polled (rx queue {}) by worker {} on lcore {} of socket {}: performance will not be optimal (give it lcores of socket {socket})",
            s.rx_port,
            queues.join(", "),
            s.worker,
            s.lcore,
            lcore_socket,
        ));
    }
    lines
}

/// ipvsadm's exit status when the kernel refuses a change ("Service not defined", "No such
/// destination"...): its main returns libipvs's -1.
pub const REFUSED: i32 = 255;

/// True when a file's first statement is one of keepalived.conf's sections.
fn looks_like_keepalived(text: &str) -> bool {
    text.lines()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .and_then(|l| l.split_whitespace().next())
        .is_some_and(|w| {
            matches!(
                w,
                "global_defs"
                    | "virtual_server"
                    | "virtual_server_group"
                    | "include"
                    | "SSL"
                    | "static_ipaddress"
                    | "static_routes"
                    | "static_rules"
                    | "garp_group"
                    | "track_file"
                    | "local_address_group"
                    | "net_namespace"
                    | "instance"
                    | "bfd_instance"
            ) || w.starts_with("vrrp_")
        })
}

impl Appliance {
    pub fn new(
        director: Director,
        cell: Arc<SnapshotCell>,
        workers: Vec<WorkerView>,
        ports: Vec<PortView>,
        conn_capacity: usize,
    ) -> Appliance {
        let worker_lcores = workers.len();
        Appliance {
            director: Mutex::new(director),
            cell,
            workers,
            ports: Mutex::new(ports),
            last_port_show: Mutex::new(HashMap::new()),
            baseline: Mutex::new(Figures::default()),
            estimator: Mutex::new(Estimator::default()),
            conn_capacity,
            entry_bytes: rvs_core::conn::ConnTable::bytes_per_entry_of(
                conn_capacity,
                false,
                false,
                false,
            ),
            forwarding: Arc::new(AtomicBool::new(true)),
            fwd_mode: Arc::new(AtomicU8::new(ForwardMode::Lb.code())),
            burst: Arc::new(AtomicU16::new(DEFAULT_BURST)),
            max_burst: DEFAULT_BURST,
            worker_lcores,
            record_core_cycles: AtomicBool::new(false),
            tsc_hz: 0,
            streams: Vec::new(),
            worker_sockets: Vec::new(),
            memory: None,
            socket_mem_last: Mutex::new(None),
            fwd_since: Mutex::new(Vec::new()),
            verbose: AtomicU32::new(0),
            xstats_hide_zero: AtomicBool::new(false),
            load_depth: AtomicU32::new(0),
            quit: Arc::new(AtomicBool::new(false)),
            balancing: true,
            health: Mutex::new(Vec::new()),
            keepalived: Mutex::new(None),
            bfd: Mutex::new(None),
            reload_source: Mutex::new(None),
            capture: Mutex::new(None),
            capture_run: Mutex::new(None),
            changing: Mutex::new(()),
            health_changes: std::sync::atomic::AtomicU64::new(0),
            adoption_timeouts: std::sync::atomic::AtomicU64::new(0),
            twins: Vec::new(),
            host_vips: Mutex::new(Vec::new()),
            vrrp: Mutex::new(None),
            vrrp_hook: Mutex::new(None),
            vrrp_runtime: Mutex::new(None),
            vrrp_links: Mutex::new(Vec::new()),
            sync: Mutex::new(None),
            announcements: Mutex::new(Vec::new()),
        }
    }

    /// Shares the appliance: keeps a weak reference to itself for monitors started later.
    pub fn shared(self) -> Arc<Appliance> {
        Arc::new(self)
    }

    /// Reads the model.
    pub fn with_director<R>(&self, f: impl FnOnce(&Director) -> R) -> R {
        f(&self.director.lock())
    }

    /// Hands the ports back (at shutdown).
    pub fn take_ports(&self) -> Vec<PortView> {
        std::mem::take(&mut *self.ports.lock())
    }

    pub fn cell(&self) -> &Arc<SnapshotCell> {
        &self.cell
    }

    /// A copy of the current model (tests, the estimator).
    pub fn director(&self) -> Director {
        self.director.lock().clone()
    }

    /// Publishes a changed model; ids newly taken into use start from zero counters.
    /// Returns once the workers run it (as an ipvsadm change is in force when ipvsadm
    /// returns), or after `ADOPTION_LIMIT` if one of them does not poll: that is counted
    /// and logged, as packets may meet the old rules after the change returned.
    fn commit(&self, next: Director) {
        let generation = self.publish_model(&mut self.director.lock(), next);
        if !self.cell.wait_adopted(generation, ADOPTION_LIMIT) {
            self.adoption_timeouts.fetch_add(1, Ordering::Relaxed);
            crate::log::log(
                crate::log::Level::Warning,
                "snapshot",
                None,
                format_args!(
                    "change {generation} returned before every worker took it ({} ms): a worker is stalled or not polling",
                    ADOPTION_LIMIT.as_millis()
                ),
            );
        }
    }

    /// testpmd's `set burst N`: frames a worker takes from an rx queue at a time, at most
    /// the size of its burst arrays (testpmd's 512 is rvs's 32); in force at its next poll.
    /// 0 takes the first port's driver's preferred burst, as testpmd's `port config all
    /// burst 0`.
    fn set_burst(&self, n: &str) -> Reply {
        let most = self.max_burst;
        match n.parse::<u16>() {
            Ok(0) => {
                let preferred = self
                    .ports
                    .lock()
                    .first()
                    .map_or(0, |p| p.port.describe().limits.rx_burst_size);
                if preferred == 0 {
                    Reply::fail(
                        2,
                        format!("PMD does not recommend a burst size.\nUser provided value must be between 1 and {most}"),
                    )
                } else if preferred > most {
                    Reply::fail(
                        2,
                        format!("PMD recommended burst size of {preferred} exceeds maximum value of {most}"),
                    )
                } else {
                    self.burst.store(preferred, Ordering::Relaxed);
                    Reply::ok(format!("Using PMD-provided burst value of {preferred}\n"))
                }
            }
            Ok(n) if n > most => Reply::fail(
                2,
                format!("nb pkt per burst: {n} > {most} (maximum packet per burst)  ignored"),
            ),
            Ok(n) => {
                self.burst.store(n, Ordering::Relaxed);
                Reply::ok(format!("Number of packets per burst set to {n}\n"))
            }
            Err(_) => Reply::fail(2, format!("set burst N: N is 1 to {most}, not {n:?}")),
        }
    }

    /// testpmd's `port config all burst N`, in its words: as `set burst N`, silent when
    /// taken. testpmd asks for its ports stopped first; rvs's workers take the new size at
    /// their next poll, so it applies at once.
    fn port_config_burst(&self, n: &str) -> Reply {
        let most = self.max_burst;
        match n.parse::<u16>() {
            Ok(0) => self.set_burst(n),
            Ok(n) if n > most => Reply::fail(2, format!("burst must be >= 1 && <= {most}")),
            Ok(n) => {
                self.burst.store(n, Ordering::Relaxed);
                Reply::ok(String::new())
            }
            Err(_) => Reply::fail(
                2,
                format!("port config all burst N: N is 0 to {most}, not {n:?}"),
            ),
        }
    }

    /// Changes that returned before every worker ran them.
    pub fn adoption_timeouts(&self) -> u64 {
        self.adoption_timeouts.load(Ordering::Relaxed)
    }

    fn publish_model(&self, current: &mut Director, next: Director) -> u64 {
        let used = |d: &Director| -> (Vec<u16>, Vec<usize>) {
            (
                d.services
                    .iter()
                    .flat_map(|s| s.entries.iter().map(|e| e.id))
                    .collect(),
                d.services
                    .iter()
                    .flat_map(|s| s.dests.iter().map(|d| d.id))
                    .collect(),
            )
        };
        let (old_e, old_d) = used(current);
        let (new_e, new_d) = used(&next);
        let fresh_e: Vec<u16> = new_e.into_iter().filter(|i| !old_e.contains(i)).collect();
        let fresh_d: Vec<usize> = new_d.into_iter().filter(|i| !old_d.contains(i)).collect();
        if !fresh_e.is_empty() || !fresh_d.is_empty() {
            self.zero(Some(&fresh_e), Some(&fresh_d));
        }
        let generation = self.cell.publish(next.snapshot());
        *current = next;
        if self.verbose.load(Ordering::Relaxed) > 0 {
            crate::log::log(
                crate::log::Level::Info,
                "snapshot",
                None,
                format_args!(
                    "{generation} published: {} service(s), {} real server(s)",
                    current.services.len(),
                    current.dest_count()
                ),
            );
        }
        generation
    }

    /// Applies rule commands all or nothing and publishes the result.
    fn change(&self, cmds: &[(String, Command)]) -> Result<(), String> {
        self.change_with(|next| {
            if cmds.len() == 1 {
                next.apply(&cmds[0].1)
            } else {
                next.apply_all(cmds)
            }
        })
    }

    /// Applies `edit` to a copy of the model and publishes it as one snapshot; on error
    /// nothing changes.
    pub(super) fn change_with(
        &self,
        edit: impl FnOnce(&mut Director) -> Result<(), String>,
    ) -> Result<(), String> {
        if !self.balancing {
            return Err(
                "rvs runs a diagnostic forwarding mode (dataplane.forward): no load balancing to change"
                    .into(),
            );
        }
        // One change at a time; the model's lock is held only to copy and to swap it, so
        // readers never wait for the host's `ip` below.
        let _one_at_a_time = self.changing.lock();
        let mut next = self.director.lock().clone();
        edit(&mut next)?;
        // A local server's VIP is on the host before traffic for it can arrive there.
        self.sync_host_vips(HostVips::of(&next));
        self.commit(next);
        Ok(())
    }

    /// An ipvsadm command line (arguments without the program name; stdin for -R).
    /// `--json` (an rvs extension) asks for the service listing as JSON.
    pub fn ipvsadm<S: AsRef<str>>(&self, args: &[S], stdin: &str) -> Reply {
        let json = args.iter().any(|a| a.as_ref() == "--json");
        let args: Vec<&str> = args
            .iter()
            .map(AsRef::as_ref)
            .filter(|a| *a != "--json")
            .collect();
        let cmd = match ipvsadm::parse_command(&args, "ipvsadm") {
            Ok(c) => c,
            Err(f) => return failure(f),
        };
        if json {
            return match cmd {
                Command::List(opts) if !(opts.daemon || opts.timeout || opts.connections) => {
                    self.list_json(&opts)
                }
                _ => Reply::fail(
                    2,
                    "--json: only with -L/--list of the services (not -c, --timeout or --daemon)",
                ),
            };
        }
        match cmd {
            Command::List(opts) => self.list(&opts),
            Command::Zero(key) => self.zero_service(key),
            Command::Save { numeric } => Reply::ok(listing::save(&self.director.lock(), numeric)),
            Command::Version => Reply::ok(ipvsadm::version()),
            Command::Help => Reply::ok(ipvsadm::usage("ipvsadm")),
            Command::Restore => self.restore(stdin),
            Command::StartDaemon { role, settings } => self.start_sync(role, settings),
            Command::StopDaemon(role) => self.stop_sync(role),
            c => match self.change(&[(String::new(), c)]) {
                Ok(()) => Reply::ok(""),
                Err(e) => Reply::fail(REFUSED, e),
            },
        }
    }

    /// `ipvsadm -R`: each line as ipvsadm runs it (a refused rule is reported and the next
    /// line runs; a line ipvsadm cannot parse stops there), published as one change.
    fn restore(&self, stdin: &str) -> Reply {
        let _one_at_a_time = self.changing.lock();
        let mut next = self.director.lock().clone();
        let mut reply = Reply::ok("");
        for line in stdin.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            let cmd = match ipvsadm::parse_command(&words, "ipvsadm") {
                Ok(Command::Restore) => Err(ipvsadm::Failure::try_help("ipvsadm")),
                other => other,
            };
            match cmd {
                Err(f) => {
                    reply.err.push_str(&f.message);
                    reply.err.push('\n');
                    reply.status = f.status;
                    break;
                }
                Ok(c) if c.is_rule() || matches!(c, Command::SetTimeouts { .. }) => {
                    match next.apply(&c) {
                        Ok(()) => reply.status = 0,
                        Err(e) => {
                            reply.err.push_str(&e);
                            reply.err.push('\n');
                            reply.status = REFUSED;
                        }
                    }
                }
                Ok(_) => {
                    reply
                        .err
                        .push_str("rvs: only rules and --set are read from -R input\n");
                    reply.status = 2;
                    break;
                }
            }
        }
        self.sync_host_vips(HostVips::of(&next));
        self.commit(next);
        reply
    }

    fn list(&self, opts: &ListOptions) -> Reply {
        if opts.daemon {
            return Reply::ok(self.sync_listing());
        }
        if opts.timeout {
            return Reply::ok(listing::timeouts(&self.director.lock().timeouts));
        }
        if opts.connections {
            let calls = self.sync_daemons().map(|d| d.sip_calls());
            let (conns, lacking) = self.connections();
            return Reply {
                err: lacking,
                ..Reply::ok(listing::connections(
                    &conns,
                    (opts.numeric, opts.persistent_conn),
                    calls.as_deref(),
                ))
            };
        }
        let fig = self.figures();
        let d = self.director.lock();
        let size = self.conn_capacity * self.workers.len().max(1);
        match listing::list(&d, opts, &fig, d.loads(), size) {
            Ok(t) => Reply::ok(t),
            Err(e) => Reply::fail(1, e),
        }
    }

    fn list_json(&self, opts: &ListOptions) -> Reply {
        let fig = self.figures();
        let d = self.director.lock();
        let size = self.conn_capacity * self.workers.len().max(1);
        match listing::list_json(&d, opts, &fig, d.loads(), size) {
            Ok(t) => Reply::ok(t),
            Err(e) => Reply::fail(1, e),
        }
    }

    fn zero_service(&self, key: Option<ServiceKey>) -> Reply {
        match key {
            None => self.zero(None, None),
            Some(k) => {
                let d = self.director.lock();
                let Some(vs) = d.find(k) else {
                    return Reply::fail(REFUSED, "No such service");
                };
                let e: Vec<u16> = vs.entries.iter().map(|e| e.id).collect();
                let ds: Vec<usize> = vs.dests.iter().map(|d| d.id).collect();
                drop(d);
                self.zero(Some(&e), Some(&ds));
            }
        }
        Reply::ok("")
    }

    /// A console line from the control socket: everything but `quit` (a remote client
    /// stops rvs with SIGTERM, which the service manager sends).
    pub fn console_remote(self: &Arc<Self>, line: &str) -> Reply {
        if matches!(line.split_whitespace().next(), Some("quit" | "exit")) {
            return Reply::fail(
                1,
                "quit is not taken over the control socket: stop rvs with SIGTERM (systemctl stop rvs)",
            );
        }
        self.console(line)
    }

    /// One console line: a console verb or an ipvsadm command line.
    pub fn console(self: &Arc<Self>, line: &str) -> Reply {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => Reply::ok(""),
            [w, ..] if w.starts_with('#') => Reply::ok(""),
            // `ipvsadm -R < FILE`: the console's stand-in for the shell's redirection.
            ["ipvsadm" | "rvsadm", rest @ .., "<", file] => match std::fs::read_to_string(file) {
                Ok(text) => self.ipvsadm(rest, &text),
                Err(e) => Reply::fail(1, format!("cannot read {file}: {e}")),
            },
            ["ipvsadm" | "rvsadm", rest @ ..] => self.ipvsadm(rest, ""),
            [w, ..] if w.starts_with('-') => self.ipvsadm(&words, ""),
            ["help"] | ["?"] => Reply::ok(verbs::help()),
            ["quit"] | ["exit"] => {
                self.quit.store(true, Ordering::Relaxed);
                Reply::ok("")
            }
            // testpmd's answers.
            ["start"] => self.start_forwarding(),
            ["stop"] => {
                if !self.forwarding.swap(false, Ordering::Relaxed) {
                    return Reply::ok("Packet forwarding not started\n");
                }
                let mut out = String::from("Telling cores to stop...\nWaiting for lcores to finish...\n");
                out.push_str(&self.fwd_stats());
                out.push_str("\nDone.\n");
                Reply::ok(out)
            }
            ["set", "fwd", mode] => match mode.parse::<ForwardMode>() {
                Ok(ForwardMode::Lb) if !self.balancing => Reply::fail(
                    2,
                    "lb forwarding needs the workers' engines: start rvs with dataplane.forward = \"lb\"",
                ),
                Ok(m) => {
                    self.fwd_mode.store(m.code(), Ordering::Relaxed);
                    Reply::ok(format!("Set {m} packet forwarding mode\n"))
                }
                Err(e) => Reply::fail(2, e),
            },
            ["show", "config", "fwd"] => Reply::ok(self.fwd_config()),
            ["show", "config", "cores"] => Reply::ok(self.cores_config()),
            ["show", "config", "rxtx"] => Reply::ok(self.rxtx_config()),
            ["set", updown @ ("link-up" | "link-down"), "port", which] => {
                self.set_link(*updown == "link-up", which)
            }
            ["set", mode @ ("promisc" | "allmulti"), which, on] => {
                self.set_port_mode(mode, which, on)
            }
            ["show", q @ ("rxq" | "txq"), "info", which, queue] => {
                self.show_queue_info(*q == "rxq", which, queue)
            }
            ["show", "port", which, "rss-hash"] => self.show_rss_hash(which, false),
            ["show", "port", which, "ptypes"] => self.show_ptypes(which),
            ["dump", "socket_mem"] => self.dump_socket_mem(),
            ["dump", what, name @ ..] if name.len() <= 1 => self.dump_eal(what, name.first()),
            ["show", "port", which, "rss-hash", "key"] => self.show_rss_hash(which, true),
            ["show", "port", which, "rss", "reta", rest @ ..] if rest.len() != 1 => {
                self.show_rss_reta(which, rest)
            }
            ["set", what @ "xstats-hide-zero", on] => switch(what, on, |on| {
                self.xstats_hide_zero.store(on, Ordering::Relaxed)
            }),
            ["set", "burst", n] => self.set_burst(n),
            ["set", "nbcore", n] => self.set_nbcore(n),
            ["port", "config", "all", "burst", n] => self.port_config_burst(n),
            ["port", "config", "all", q @ ("rxq" | "txq"), n] => self.port_config_queues(q, n),
            ["port", op @ ("start" | "stop"), which] => self.port_start_stop(*op == "start", which),
            ["set", "verbose", n] => match n.parse::<u32>() {
                Ok(v) => {
                    let old = self.verbose.swap(v, Ordering::Relaxed);
                    Reply::ok(format!("Change verbose level from {old} to {v}\n"))
                }
                Err(_) => Reply::fail(2, format!("bad verbose level {n:?}")),
            },
            ["capture", rest @ ..] => self.capture_verb(rest),
            ["show", "capture"] => Reply::ok(self.show_capture()),
            ["reload"] => match self.reload() {
                Ok(report) => Reply::ok(report),
                Err(e) => Reply::fail(1, e),
            },
            ["load", file] => {
                if self.load_depth.fetch_add(1, Ordering::Relaxed) >= 8 {
                    self.load_depth.fetch_sub(1, Ordering::Relaxed);
                    return Reply::fail(1, "load: nested more than 8 deep");
                }
                let r = self.load(file);
                self.load_depth.fetch_sub(1, Ordering::Relaxed);
                r
            }
            ["show", "port", what, which] => self.show_port(what, which),
            ["clear", "port", "stats", which] => self.clear_port_stats(which),
            ["clear", "port", "xstats", which] => self.clear_port_xstats(which),
            ["set", what @ "record-core-cycles", on] => switch(what, on, |on| {
                self.record_core_cycles.store(on, Ordering::Relaxed)
            }),
            ["set", what @ "record-burst-stats", on] => {
                switch(what, on, |on| self.record_burst_stats(on))
            }
            ["clear", "fwd", "stats"] | ["clear", "fwd", "stats", "all"] => {
                self.clear_fwd_stats();
                Reply::ok("")
            }
            ["show", "fwd", "stats"] | ["show", "fwd", "stats", "all"] => {
                Reply::ok(self.fwd_stats())
            }
            ["show", "worker"] | ["show", "workers"] => Reply::ok(self.show_workers()),
            ["show", "service"] | ["show", "services"] => self.ipvsadm(&["-L", "-n"], ""),
            ["show", "conn", rest @ ..] => self.show_conn(rest),
            ["show", "neighbour" | "neighbor"] => Reply::ok(self.show_neighbours()),
            ["show", "route"] => Reply::ok(self.show_routes()),
            ["show", "health"] => Reply::ok(self.show_health()),
            ["show", "vrrp"] => Reply::ok(self.show_vrrp()),
            ["show", "bfd"] => Reply::ok(self.show_bfd()),
            ["show", "mail"] => Reply::ok(crate::mail::show()),
            ["show", "announce"] => Reply::ok(self.show_announce()),
            ["show", "sync"] => Reply::ok(self.show_sync()),
            ["show", "mark" | "marks"] => Reply::ok(self.show_marks()),
            ["show", "fullnat"] => Reply::ok(self.show_full_nat()),
            ["show", "snat"] => Reply::ok(self.show_snat()),
            ["show", "outgoing"] => Reply::ok(self.show_outgoing()),
            ["show", "vip" | "vips"] => Reply::ok(self.show_vips()),
            ["outgoing", verb @ ("add" | "del" | "delete"), rest @ ..] => {
                let change = match parse_outgoing(rest, *verb == "add") {
                    Ok(c) => c,
                    Err(e) => return Reply::fail(2, format!("outgoing {verb}: {e}")),
                };
                match self.change_with(|d| match change {
                    OutgoingChange::Add(r) => d.add_member_ports(r),
                    OutgoingChange::Delete(proto, vip, ports) => {
                        d.delete_member_ports(proto, vip, ports).map(drop)
                    }
                }) {
                    Ok(()) => Reply::ok(""),
                    Err(e) => Reply::fail(REFUSED, format!("outgoing {verb}: {e}")),
                }
            }
            ["vip", rest @ ..] => {
                let (vip, drop) = match rest {
                    [addr, "unserved", how @ ("host" | "drop")] => match addr.parse() {
                        Ok(vip) => (vip, *how == "drop"),
                        Err(_) => {
                            return Reply::fail(2, format!("vip: {addr:?} is not an IP address"))
                        }
                    },
                    _ => return Reply::fail(2, "vip: ADDR unserved host|drop"),
                };
                match self.change_with(|d| {
                    d.set_unserved_drop(vip, drop);
                    Ok(())
                }) {
                    Ok(()) => {
                        let mut r = Reply::ok("");
                        if !self.director.lock().vips().contains(&vip) {
                            r.err = format!(
                                "warning: {vip} is no VIP yet (no service or member range has it); the setting waits for one\n"
                            );
                        }
                        r
                    }
                    Err(e) => Reply::fail(REFUSED, format!("vip: {e}")),
                }
            }
            ["snat", verb @ ("add" | "del" | "delete"), rest @ ..] => {
                let names: Vec<String> =
                    self.ports.lock().iter().map(|p| p.name.clone()).collect();
                let rule = match parse_snat(rest, &names) {
                    Ok(r) => r,
                    Err(e) => return Reply::fail(2, format!("snat {verb}: {e}")),
                };
                let add = *verb == "add";
                match self.change_with(|d| {
                    if add {
                        if !d.snat.contains(&rule) {
                            d.snat.push(rule);
                        }
                    } else {
                        let i = d
                            .snat
                            .iter()
                            .position(|r| *r == rule)
                            .ok_or("no such SNAT rule")?;
                        d.snat.remove(i);
                    }
                    d.check_full_nat_room()
                }) {
                    Ok(()) => Reply::ok(""),
                    Err(e) => Reply::fail(REFUSED, format!("snat {verb}: {e}")),
                }
            }
            ["fullnat", verb @ ("on" | "off"), rest @ ..] => {
                let parsed = parse_full_nat(rest, *verb == "on");
                let (key, fnat) = match parsed {
                    Ok(p) => p,
                    Err(e) => return Reply::fail(2, format!("fullnat {verb}: {e}")),
                };
                match self.change_with(|d| {
                    d.find(key).ok_or("No such service")?;
                    d.full_nat.retain(|(k, _)| *k != key);
                    if let Some(f) = fnat {
                        d.full_nat.push((key, f));
                    }
                    d.check_full_nat_room()
                }) {
                    Ok(()) => Reply::ok(""),
                    Err(e) => Reply::fail(REFUSED, format!("fullnat {verb}: {e}")),
                }
            }
            ["sysctl", rest @ ..] => self.sysctl_verb(rest),
            ["mark", verb @ ("add" | "del" | "delete"), rest @ ..] => {
                let rule: crate::director::FwmarkRule = match rest.join(" ").parse() {
                    Ok(r) => r,
                    Err(e) => return Reply::fail(2, format!("mark {verb}: {e}")),
                };
                let add = *verb == "add";
                match self.change_with(|d| {
                    if add {
                        d.add_mark(rule)
                    } else {
                        d.delete_mark(rule)
                    }
                }) {
                    Ok(()) => Reply::ok(""),
                    Err(e) => Reply::fail(REFUSED, format!("mark {verb}: {e}")),
                }
            }
            _ => Reply::fail(
                2,
                format!("Bad arguments: {line:?} (type \"help\" for the commands)"),
            ),
        }
    }

    /// Runs a file of console lines. A file of ipvsadm rules only is applied all or
    /// nothing, like `-R`; otherwise every line's syntax is checked first and the lines run
    /// in order, stopping at the first that fails.
    fn load(self: &Arc<Self>, file: &str) -> Reply {
        let text = match read_command_file(file) {
            Ok(t) => t,
            Err(e) => return Reply::fail(1, format!("cannot read {file}: {e}")),
        };
        if looks_like_keepalived(&text) {
            let conf = match KeepalivedConf::load(std::path::Path::new(file)) {
                Ok(c) => c,
                Err(e) => return Reply::fail(2, format!("{e} (nothing applied)")),
            };
            return match self.load_keepalived(&conf) {
                Ok(warnings) => {
                    let mut r = Reply::ok(format!(
                        "Loaded {file}: {} virtual server(s), health checks running\n",
                        conf.virtual_servers.len()
                    ));
                    r.err = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
                    if !conf.vrrp_conf.is_empty() {
                        r.err.push_str(
                            "warning: its vrrp_instance sections are not applied by load: VRRP is configured when rvs starts (--keepalived-conf, [[vrrp_instance]])\n",
                        );
                    }
                    let mail = &conf.vrrp_conf.mail;
                    if mail.server.is_some() && *mail != crate::mail::current().conf() {
                        r.err.push_str(
                            "warning: its mail settings are not applied by load: alerts go as the files rvs started or reloaded with say (show mail)\n",
                        );
                    }
                    r
                }
                Err(e) => Reply::fail(1, e),
            };
        }
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let mut rules = Vec::new();
        for &(n, line) in &lines {
            match Self::syntax(line) {
                Err(e) => return Reply::fail(2, format!("{file}:{n}: {e}")),
                Ok(Some(c)) if c.is_rule() => rules.push((format!("{file}:{n}"), c)),
                Ok(_) => {}
            }
        }
        if !rules.is_empty() && rules.len() == lines.len() {
            return match self.change(&rules) {
                Ok(()) => Reply::ok(format!("Applied {} rule(s) from {file}\n", rules.len())),
                Err(e) => Reply::fail(1, format!("{e} (nothing applied)")),
            };
        }
        let mut out = String::new();
        for &(n, line) in &lines {
            let r = self.console(line);
            out.push_str(&r.out);
            if r.status != 0 {
                let mut r = Reply::fail(r.status, format!("{file}:{n}: {}", r.err.trim()));
                r.out = out;
                return r;
            }
        }
        out.push_str(&format!("Read {} command(s) from {file}\n", lines.len()));
        Reply::ok(out)
    }

    /// Checks a console line's syntax without running it; gives the ipvsadm command of an
    /// ipvsadm line.
    fn syntax(line: &str) -> Result<Option<Command>, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let args = match words.as_slice() {
            ["ipvsadm" | "rvsadm", rest @ ..] => rest,
            [w, ..] if w.starts_with('-') => &words[..],
            [first, ..] => {
                return if verbs::is_verb(first) {
                    Ok(None)
                } else {
                    // Not echoed: a file read by `load` may hold anything.
                    Err("Bad arguments: not a console command or an ipvsadm line".to_string())
                };
            }
            [] => return Ok(None),
        };
        ipvsadm::parse_args(args).map(Some)
    }
}

/// `snat add|del [protocol P] [source PREFIX] [destination PREFIX] [out_port NAME]
/// [to_source ADDR|masquerade] [ports FIRST-LAST]`: the `[[snat]]` table's keys as words.
fn parse_snat(words: &[&str], port_names: &[String]) -> Result<rvs_core::engine::SnatRule, String> {
    use crate::director::parse_prefix;
    let usage = "KEY VALUE pairs: protocol, source, destination, out_port, to_source, ports";
    if !words.len().is_multiple_of(2) {
        return Err(usage.into());
    }
    let (mut proto, mut source, mut destination, mut out_port, mut to, mut ports) =
        (None, None, None, None, None, (1024, 65535));
    for pair in words.chunks(2) {
        let (k, v) = (pair[0], pair[1]);
        match k {
            "protocol" => {
                let p = crate::ipvsadm::Protocol::from_word(v)
                    .ok_or_else(|| format!("protocol {v:?}: tcp, udp or sctp"))?;
                proto = Some(p.number());
            }
            "source" => source = Some(parse_prefix(v)?),
            "destination" => destination = Some(parse_prefix(v)?),
            "out_port" => {
                let i = port_names
                    .iter()
                    .position(|n| n == v)
                    .ok_or_else(|| format!("out_port {v:?}: no such port"))?;
                out_port = Some(i as u16);
            }
            "to_source" if v == "masquerade" => to = None,
            "to_source" => {
                to = Some(
                    v.parse::<std::net::IpAddr>()
                        .map_err(|_| format!("to_source {v:?} is not an IP address"))?,
                )
            }
            "ports" => {
                ports = crate::director::parse_port_range(v)
                    .ok_or_else(|| format!("ports {v:?}: a range such as 1024-65535"))?
            }
            _ => return Err(format!("{k:?}: {usage}")),
        }
    }
    crate::director::snat_rule(proto, source, destination, out_port, to, ports)
}

/// What `outgoing add|del` asks for.
enum OutgoingChange {
    Add(rvs_core::engine::MemberPorts),
    /// The protocol, VIP and port range of the range to remove.
    Delete(u8, std::net::IpAddr, (u16, u16)),
}

/// `outgoing add PROTO VIP FIRST-LAST MEMBER [dr|nat]` / `outgoing del PROTO VIP
/// FIRST-LAST`, as `[[outgoing]]` writes a member's range.
fn parse_outgoing(words: &[&str], add: bool) -> Result<OutgoingChange, String> {
    let usage = if add {
        "PROTO VIP FIRST-LAST MEMBER [dr|nat]"
    } else {
        "PROTO VIP FIRST-LAST"
    };
    let (proto, vip, ports, rest) = match words {
        [proto, vip, ports, rest @ ..] => (proto, vip, ports, rest),
        _ => return Err(usage.into()),
    };
    let proto = crate::ipvsadm::Protocol::from_word(proto)
        .ok_or_else(|| format!("protocol {proto:?}: tcp, udp or sctp"))?
        .number();
    let vip: std::net::IpAddr = vip
        .parse()
        .map_err(|_| format!("{vip:?} is not an IP address"))?;
    let (first, last) = crate::director::parse_port_range(ports)
        .ok_or_else(|| format!("{ports:?}: a range such as 33000-33999"))?;
    if !add {
        return match rest {
            [] => Ok(OutgoingChange::Delete(proto, vip, (first, last))),
            _ => Err(usage.into()),
        };
    }
    let (member, nat) = match rest {
        [m] | [m, "dr"] => (m, false),
        [m, "nat"] => (m, true),
        _ => return Err(usage.into()),
    };
    let member: std::net::IpAddr = member
        .parse()
        .map_err(|_| format!("member {member:?} is not an IP address"))?;
    Ok(OutgoingChange::Add(rvs_core::engine::MemberPorts {
        proto,
        vip,
        first,
        last,
        member,
        nat,
    }))
}

/// `fullnat on|off SERVICE [laddr ADDR[,ADDR]] [proxy|proxy-v1]`, SERVICE `tcp|udp|sctp
/// VIP:PORT` or `fwmark N [v6]`: the service's key and (on) its full NAT (`proxy`: the
/// PROXY header in version 2, `proxy-v1` in version 1).
fn parse_full_nat(
    words: &[&str],
    on: bool,
) -> Result<(ServiceKey, Option<rvs_core::engine::FullNat>), String> {
    let usage =
        "SERVICE is tcp|udp|sctp VIP:PORT or fwmark N [v6]; then [laddr ADDR[,ADDR]] [proxy|proxy-v1]";
    let (key, rest) = match words {
        ["fwmark", n, "v6", rest @ ..] | ["fwmark", n, rest @ ..] => {
            let mark = n.parse().ok().filter(|&m| m > 0).ok_or(usage)?;
            let ipv6 = words.get(2) == Some(&"v6");
            (ServiceKey::Fwmark { mark, ipv6 }, rest)
        }
        [proto, addr, rest @ ..] => {
            let p = crate::ipvsadm::Protocol::from_word(proto).ok_or(usage)?;
            let a: std::net::SocketAddr = addr.parse().map_err(|_| format!("{addr:?}: {usage}"))?;
            (ServiceKey::Addr(p, a), rest)
        }
        _ => return Err(usage.into()),
    };
    if !on {
        return if rest.is_empty() {
            Ok((key, None))
        } else {
            Err(usage.into())
        };
    }
    let mut locals = Vec::new();
    let (mut proxy_protocol, mut proxy_v1) = (false, false);
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            "proxy" => (proxy_protocol, proxy_v1) = (true, false),
            "proxy-v1" => (proxy_protocol, proxy_v1) = (true, true),
            "laddr" => {
                let list = rest.get(i + 1).ok_or(usage)?;
                for a in list.split(',') {
                    let a: std::net::IpAddr = a
                        .parse()
                        .map_err(|_| format!("{a:?} is not an IP address"))?;
                    locals.push(a);
                }
                i += 1;
            }
            w => return Err(format!("{w:?}: {usage}")),
        }
        i += 1;
    }
    Ok((
        key,
        Some(rvs_core::engine::FullNat::new(locals, proxy_protocol).with_proxy_v1(proxy_v1)),
    ))
}

#[cfg(test)]
mod tests;
