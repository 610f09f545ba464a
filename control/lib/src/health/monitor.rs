//! The health monitor: one thread with a tokio runtime; a task per checker probes on its
//! own schedule (warmup, delay_loop, delay_before_retry) and reports to a coordinator task,
//! which turns server and quorum transitions into configuration changes (one snapshot per
//! change), runs notify scripts, logs, and keeps the table `show health` prints.

use super::probe::probe;
use super::state::{server_alive, server_set, CheckerState, Outcome, Quorum, ServerSet};
use super::HealthTarget;
use crate::ipvsadm::{Command, ServerSpec, ServiceKey};
use crate::keepalived::Checker;
use crate::keepalived::{server_spec, CheckKind, KeepalivedConf, VirtualServer};
use crate::log::{log, Level};
use crate::vrrp::fifo::{self, Fifos};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One checker's line in `show health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    pub service: String,
    pub server: String,
    pub checker: String,
    pub target: String,
    pub up: bool,
    pub transitions: u64,
    pub last_error: Option<String>,
}

struct Report {
    vs: usize,
    rs: usize,
    ck: usize,
    state: CheckerState,
    changed: bool,
}

/// A checker across reloads: its service (first key), real server and place in the
/// server's list.
pub type CheckerId = (ServiceKey, IpAddr, u16, usize);

/// Each running checker's configuration (its line left out) and state, which a reload
/// hands to the next monitor: a checker configured the same keeps its state.
pub type CheckerStates = HashMap<CheckerId, (Checker, CheckerState)>;

pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    states: Arc<Mutex<CheckerStates>>,
    /// lvs_notify_fifo, open while the checkers run (closed after them), and how it is
    /// configured.
    fifos: Arc<Fifos>,
    fifo_conf: Vec<fifo::NotifyFifo>,
    /// The virtual servers checked, and whether each has its quorum now.
    vss: Vec<VirtualServer>,
    quorum_up: Arc<Mutex<Vec<bool>>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Monitor")
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn kind_name(k: &CheckKind) -> &'static str {
    match k {
        CheckKind::Tcp => "TCP_CHECK",
        CheckKind::Http { ssl: false, .. } => "HTTP_GET",
        CheckKind::Http { ssl: true, .. } => "SSL_GET",
        CheckKind::Dns { .. } => "DNS_CHECK",
        CheckKind::Udp { .. } => "UDP_CHECK",
        CheckKind::Smtp { .. } => "SMTP_CHECK",
        CheckKind::File { .. } => "FILE_CHECK",
        CheckKind::Bfd { .. } => "BFD_CHECK",
        CheckKind::Sip { .. } => "SIP_CHECK",
        CheckKind::Misc { .. } => "MISC_CHECK",
        CheckKind::Ping => "PING_CHECK",
    }
}

fn key_name(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Addr(p, a) => format!("{} {a}", p.name()),
        ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

fn run_script(line: &str) {
    if line.is_empty() {
        return;
    }
    match std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .stdin(std::process::Stdio::null())
        .spawn()
    {
        // Reaped by a waiter thread so no zombie is left.
        Ok(mut child) => {
            let _ = std::thread::Builder::new()
                .name("rvs-notify".into())
                .spawn(move || child.wait());
        }
        Err(e) => log(
            Level::Warning,
            "health",
            Some(line),
            format_args!("cannot run {line:?}: {e}"),
        ),
    }
}

/// The ipvsadm commands that turn `key`'s current servers into `want`.
fn diff(target: &dyn HealthTarget, key: ServiceKey, want: &[ServerSpec]) -> Vec<Command> {
    let current = target.servers(key);
    let Some(current) = current else {
        return Vec::new();
    };
    let mut cmds = Vec::new();
    for d in &current {
        if !want.iter().any(|w| w.addr == d.addr && w.port == d.port) {
            cmds.push(Command::DeleteServer {
                service: key,
                addr: d.addr,
                port: d.port,
            });
        }
    }
    for w in want {
        match current
            .iter()
            .find(|d| d.addr == w.addr && d.port == w.port)
        {
            None => cmds.push(Command::AddServer(w.clone())),
            Some(d) if d.weight != w.weight || d.method != w.method => {
                cmds.push(Command::EditServer(w.clone()))
            }
            Some(_) => {}
        }
    }
    cmds
}

fn wanted(vs: &VirtualServer, key: ServiceKey, set: &ServerSet) -> Vec<ServerSpec> {
    let mut specs: Vec<ServerSpec> = set
        .servers
        .iter()
        .map(|&(i, w)| server_spec(key, &vs.real_servers[i], w))
        .collect();
    if let (Some(weight), Some((addr, port))) = (set.sorry, vs.sorry_server) {
        // A sorry server that is one of the real servers serves as the sorry server.
        let port_here = crate::keepalived::server_port(key, vs.sorry_method, port);
        specs.retain(|s| (s.addr, s.port) != (addr, port_here));
        specs.push(ServerSpec {
            service: key,
            addr,
            port: port_here,
            method: vs.sorry_method,
            weight,
            upper: 0,
            lower: 0,
            tunnel: Default::default(),
            refusal: None,
        });
    }
    specs
}

impl Monitor {
    /// Starts checking every real server of `conf`; changes go to `appliance` (the target).
    pub fn start(
        conf: &KeepalivedConf,
        appliance: Arc<dyn HealthTarget>,
    ) -> std::io::Result<Monitor> {
        Monitor::start_carrying(conf, appliance, (&CheckerStates::new(), &[]), None)
    }

    /// Each virtual server's keys and whether its quorum is up now (for a reload).
    pub fn quorums(&self) -> Vec<(Vec<ServiceKey>, bool)> {
        let up = self.quorum_up.lock();
        self.vss
            .iter()
            .zip(up.iter())
            .map(|(vs, up)| (vs.keys.clone(), *up))
            .collect()
    }

    /// As `start`, each checker configured as one in `carried` starting from its state
    /// and each virtual server in `quorums` (the running ones, [`Monitor::quorums`]) from
    /// its quorum (a reload: keepalived keeps unchanged checkers' verdicts and a kept
    /// virtual server's quorum), writing to `fifos` (the running checkers'
    /// lvs_notify_fifo, [`Monitor::fifos_for`]) if given.
    pub fn start_carrying(
        conf: &KeepalivedConf,
        appliance: Arc<dyn HealthTarget>,
        (carried, quorums): (&CheckerStates, &[(Vec<ServiceKey>, bool)]),
        fifos: Option<Arc<Fifos>>,
    ) -> std::io::Result<Monitor> {
        let stop = Arc::new(AtomicBool::new(false));
        let fifos = fifos.unwrap_or_else(|| Arc::new(Fifos::open(&conf.checker_fifos())));
        let vss = conf.virtual_servers.clone();
        let seeds = seed(&vss, carried);
        // As keepalived starts: a service's quorum is down until its first evaluation
        // gains it; a reload keeps a kept service's (checkers or not).
        let mut quorum: Vec<Quorum> = vss
            .iter()
            .map(|vs| Quorum {
                up: quorums
                    .iter()
                    .find(|(keys, _)| *keys == vs.keys)
                    .map_or_else(|| carries_any(vs, carried), |q| q.1),
                weight: 0,
            })
            .collect();
        // The first evaluation (alpha servers start down, quorum at start) is applied
        // before the start returns, so the table is never seen without it.
        // global_defs' rs_init_notifies: a server alive from the start (not carried over a
        // reload) gets its notify_up and FIFO line, before its service's quorum, as keepalived.
        let init_notifies = conf
            .global_defs
            .iter()
            .any(|s| s.keyword == "rs_init_notifies");
        for ((vs, states), q) in vss.iter().zip(&seeds).zip(&mut quorum) {
            let alive = alive_from(vs, states);
            for (rs, _) in vs.real_servers.iter().zip(&alive).filter(|(_, up)| **up) {
                let carried_here = (0..rs.checkers.len())
                    .any(|k| checker_id(vs, rs, k).is_some_and(|id| carried.contains_key(&id)));
                if init_notifies && !carried_here {
                    if let Some(s) = &rs.notify_up {
                        run_script(s);
                    }
                    fifos.write(&fifo::checker_line(vs, Some(rs), true));
                }
            }
            apply(vs, &alive, states, (q, true), (&*appliance, &fifos));
        }
        let rows = health_rows(&vss, &seeds);
        appliance.set_health(rows.clone());
        let mut start = CheckerStates::new();
        for (vs, vs_seeds) in vss.iter().zip(&seeds) {
            for (rs, rs_seeds) in vs.real_servers.iter().zip(vs_seeds) {
                for (k, (c, state)) in rs.checkers.iter().zip(rs_seeds).enumerate() {
                    if let Some(id) = checker_id(vs, rs, k) {
                        start.insert(id, (comparable(c), state.clone()));
                    }
                }
            }
        }
        let states = Arc::new(Mutex::new(start));
        let quorum_up = Arc::new(Mutex::new(quorum.iter().map(|q| q.up).collect::<Vec<_>>()));
        let (flag, shared, lines) = (stop.clone(), states.clone(), fifos.clone());
        let (kept_vss, shared_quorum) = (vss.clone(), quorum_up.clone());
        let thread = std::thread::Builder::new()
            .name("rvs-health".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        log(
                            Level::Error,
                            "health",
                            None,
                            format_args!("cannot start: {e}"),
                        );
                        return;
                    }
                };
                rt.block_on(coordinate(
                    vss,
                    seeds,
                    rows,
                    quorum,
                    (appliance, lines),
                    flag,
                    (shared, shared_quorum),
                ));
            })?;
        Ok(Monitor {
            stop,
            thread: Some(thread),
            states,
            fifos,
            fifo_conf: conf.checker_fifos(),
            vss: kept_vss,
            quorum_up,
        })
    }

    /// keepalived's notices for what a reload to `new` removes: each live real server no
    /// longer configured runs its notify_down, writes its DOWN line and mails "=> Removing
    /// <="; then a virtual server no longer configured whose quorum was up loses it (its
    /// quorum_down, DOWN line and mail). Called before the new checkers start.
    pub fn notify_removed(&self, new: &KeepalivedConf) {
        let states = self.states();
        let quorum_up = self.quorum_up.lock().clone();
        let mailer = crate::mail::current();
        let mail = mailer.conf();
        for (v, vs) in self.vss.iter().enumerate() {
            let kept = new
                .virtual_servers
                .iter()
                .find(|n| n.keys == vs.keys && n.group == vs.group);
            let name = fifo::virtual_server_name(vs);
            for rs in &vs.real_servers {
                if kept.is_some_and(|n| {
                    n.real_servers
                        .iter()
                        .any(|o| o.addr == rs.addr && o.port == rs.port)
                }) {
                    continue;
                }
                let checkers: Vec<CheckerState> = (0..rs.checkers.len())
                    .filter_map(|k| checker_id(vs, rs, k))
                    .filter_map(|id| states.get(&id).map(|(_, s)| s.clone()))
                    .collect();
                if !server_alive(&checkers) {
                    continue;
                }
                if let Some(s) = &rs.notify_down {
                    run_script(s);
                }
                self.fifos.write(&fifo::checker_line(vs, Some(rs), false));
                if mail.real_server_alerts(rs.smtp_alert) {
                    let rs_name = fifo::real_server_name(vs, rs);
                    mailer.real_server(&rs_name, &name, false, "=> Removing <=");
                }
            }
            if kept.is_none() && quorum_up.get(v) == Some(&true) {
                if let Some(s) = &vs.quorum_down {
                    run_script(s);
                }
                self.fifos.write(&fifo::checker_line(vs, None, false));
                if mail.virtual_server_alerts(vs.smtp_alert) {
                    let (q, h) = (i64::from(vs.quorum), i64::from(vs.hysteresis));
                    let body = format!("=> Lost quorum {q}+{h}={} <= 0 <=", q - h);
                    mailer.virtual_server(&name, false, &body);
                }
            }
        }
    }

    /// The open notify_fifo and lvs_notify_fifo, if `conf` configures them alike: a reload's new checkers
    /// write on without the reader seeing it closed.
    pub fn fifos_for(&self, conf: &KeepalivedConf) -> Option<Arc<Fifos>> {
        fifo::same_fifos(&self.fifo_conf, &conf.checker_fifos()).then(|| self.fifos.clone())
    }

    /// Every checker's configuration and state now.
    pub fn states(&self) -> CheckerStates {
        self.states.lock().clone()
    }
}

fn checker_id(
    vs: &VirtualServer,
    rs: &crate::keepalived::RealServer,
    k: usize,
) -> Option<CheckerId> {
    Some((*vs.keys.first()?, rs.addr, rs.port, k))
}

/// A checker's configuration as compared across reloads (where it was written aside).
fn comparable(c: &Checker) -> Checker {
    Checker {
        line: String::new(),
        ..c.clone()
    }
}

/// Each checker's starting state (`[vs][rs][ck]`): carried over when configured the same,
/// else up unless its server is `alpha`.
fn seed(vss: &[VirtualServer], carried: &CheckerStates) -> Vec<Vec<Vec<CheckerState>>> {
    vss.iter()
        .map(|vs| {
            vs.real_servers
                .iter()
                .map(|rs| {
                    rs.checkers
                        .iter()
                        .enumerate()
                        .map(|(k, c)| {
                            checker_id(vs, rs, k)
                                .and_then(|id| carried.get(&id))
                                .filter(|(old, _)| *old == comparable(c))
                                .map(|(_, state)| CheckerState {
                                    retry: c.retry,
                                    ..state.clone()
                                })
                                .unwrap_or_else(|| CheckerState::new(c.retry, !rs.alpha))
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Whether each real server is alive by its checkers' states (one without checkers: unless
/// `alpha`).
fn alive_from(vs: &VirtualServer, states: &[Vec<CheckerState>]) -> Vec<bool> {
    vs.real_servers
        .iter()
        .zip(states)
        // A server without checkers is alive, alpha or not (alpha is the checkers' first
        // verdict; keepalived counts failed checkers).
        .map(|(_, cs)| server_alive(cs))
        .collect()
}

/// What `server_set` weighs: each server alive or not, with its dynamic weight if a
/// checker gave one.
fn server_inputs(alive: &[bool], states: &[Vec<CheckerState>]) -> Vec<(bool, Option<u32>)> {
    alive
        .iter()
        .zip(states)
        .map(|(&a, cs)| (a, cs.iter().rev().find_map(|c| c.weight)))
        .collect()
}

/// The servers each service of `conf` starts with when its checkers start from `carried`
/// (what the monitor's first evaluation will want): services with a carried checker only.
pub fn carried_servers(
    conf: &KeepalivedConf,
    carried: &CheckerStates,
) -> Vec<(ServiceKey, Vec<ServerSpec>)> {
    let seeds = seed(&conf.virtual_servers, carried);
    let mut out = Vec::new();
    for (vs, states) in conf.virtual_servers.iter().zip(&seeds) {
        if !carries_any(vs, carried) {
            continue;
        }
        let inputs = server_inputs(&alive_from(vs, states), states);
        let set = server_set(
            vs,
            &inputs,
            &mut Quorum {
                up: true,
                weight: 0,
            },
        );
        for key in &vs.keys {
            out.push((*key, wanted(vs, *key, &set)));
        }
    }
    out
}

/// Whether a checker of `vs` carries its state from `carried` (a reload).
fn carries_any(vs: &VirtualServer, carried: &CheckerStates) -> bool {
    vs.real_servers.iter().any(|rs| {
        (0..rs.checkers.len())
            .any(|k| checker_id(vs, rs, k).is_some_and(|id| carried.contains_key(&id)))
    })
}

/// keepalived's delay before a checker's first check.
const BOOTSTRAP_DELAY: Duration = Duration::from_secs(1);

async fn checker_task(
    vs: usize,
    rs: usize,
    ck: usize,
    c: crate::keepalived::Checker,
    mut state: CheckerState,
    tx: mpsc::UnboundedSender<Report>,
    stop: Arc<AtomicBool>,
) {
    let nap = |d: Duration| {
        let stop = stop.clone();
        async move {
            // Sleep in slices so a stop is noticed within 100 ms.
            let end = tokio::time::Instant::now() + d;
            while tokio::time::Instant::now() < end && !stop.load(Ordering::Relaxed) {
                let left = end - tokio::time::Instant::now();
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
        }
    };
    // As keepalived: the first check a second after the start (its BOOTSTRAP_DELAY), plus
    // a random part of the warmup.
    let warmup = match c.warmup.as_millis() as u64 {
        0 => 0,
        ms => rand::random::<u64>() % ms,
    };
    nap(BOOTSTRAP_DELAY + Duration::from_millis(warmup)).await;
    while !stop.load(Ordering::Relaxed) {
        let outcome = probe(&c).await;
        let failed_live = match (&outcome, state.up) {
            (Outcome::Down(why), true) => Some(why.clone()),
            _ => None,
        };
        let next = state.record(outcome, c.delay_loop, c.delay_before_retry);
        // log_all_failures: the attempts a live server survives (retries) are said too.
        if let (Some(why), true, false) = (failed_live, c.log_all_failures, next.changed) {
            log(
                Level::Info,
                "health",
                None,
                format_args!(
                    "{} to {} failed ({why}); retry {} of {}",
                    kind_name(&c.kind),
                    c.target,
                    state.failures,
                    c.retry
                ),
            );
        }
        let report = Report {
            vs,
            rs,
            ck,
            state: state.clone(),
            changed: next.changed,
        };
        if tx.send(report).is_err() {
            return;
        }
        nap(next.wait).await;
    }
}

/// Every checker's `show health` row, in order (service, server, checker).
fn health_rows(vss: &[VirtualServer], states: &[Vec<Vec<CheckerState>>]) -> Vec<HealthRow> {
    let mut rows = Vec::new();
    for (vs, vs_states) in vss.iter().zip(states) {
        for (rs, rs_states) in vs.real_servers.iter().zip(vs_states) {
            for (c, state) in rs.checkers.iter().zip(rs_states) {
                rows.push(HealthRow {
                    service: vs.keys.first().map(key_name).unwrap_or_default(),
                    server: format!("{}", std::net::SocketAddr::new(rs.addr, rs.port)),
                    checker: kind_name(&c.kind).into(),
                    target: c.target.to_string(),
                    up: state.up,
                    transitions: 0,
                    last_error: state.last_error.clone(),
                });
            }
        }
    }
    rows
}

async fn coordinate(
    vss: Vec<VirtualServer>,
    seeds: Vec<Vec<Vec<CheckerState>>>,
    mut rows: Vec<HealthRow>,
    mut quorum: Vec<Quorum>,
    (appliance, fifos): (Arc<dyn HealthTarget>, Arc<Fifos>),
    stop: Arc<AtomicBool>,
    (shared, shared_quorum): (Arc<Mutex<CheckerStates>>, Arc<Mutex<Vec<bool>>>),
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
    // states[vs][rs][ck]
    let mut states = seeds;
    let mut alive: Vec<Vec<bool>> = Vec::new();
    // Each checker's row (in `health_rows`' order).
    let mut row_of: Vec<Vec<Vec<usize>>> = Vec::new();
    let mut next_row = 0;
    for (v, vs) in vss.iter().enumerate() {
        row_of.push(Vec::new());
        alive.push(alive_from(vs, &states[v]));
        for (r, rs) in vs.real_servers.iter().enumerate() {
            row_of[v].push(Vec::new());
            for (k, c) in rs.checkers.iter().enumerate() {
                let state = states[v][r][k].clone();
                row_of[v][r].push(next_row);
                next_row += 1;
                tokio::spawn(checker_task(
                    v,
                    r,
                    k,
                    c.clone(),
                    state,
                    tx.clone(),
                    stop.clone(),
                ));
            }
        }
    }
    drop(tx);
    loop {
        let report = tokio::select! {
            r = rx.recv() => r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if stop.load(Ordering::Relaxed) {
                    omega(&vss, &alive, &fifos);
                    return;
                }
                continue;
            }
        };
        // The checkers end when they see the stop, possibly before this loop does: omega
        // then runs all the same.
        let Some(rep) = report else {
            if stop.load(Ordering::Relaxed) {
                omega(&vss, &alive, &fifos);
            }
            return;
        };
        let (v, r, k) = (rep.vs, rep.rs, rep.ck);
        let vs = &vss[v];
        let row = &mut rows[row_of[v][r][k]];
        row.up = rep.state.up;
        row.last_error = rep.state.last_error.clone();
        if rep.changed {
            row.transitions += 1;
            // A flapping checker writes a few lines a window, then says how many it held.
            let event = format!("{} {} {}", row.service, row.server, row.checker);
            log(
                if rep.state.up {
                    Level::Notice
                } else {
                    Level::Warning
                },
                "health",
                Some(&event),
                format_args!(
                    "{} of {}: {} {} ({})",
                    row.server,
                    row.service,
                    row.checker,
                    if rep.state.up { "UP" } else { "DOWN" },
                    rep.state.last_error.as_deref().unwrap_or(if rep.state.up {
                        "succeeded"
                    } else {
                        "failed"
                    })
                ),
            );
        }
        if let Some(id) = checker_id(vs, &vs.real_servers[r], k) {
            if let Some(entry) = shared.lock().get_mut(&id) {
                entry.1 = rep.state.clone();
            }
        }
        let (changed, up, why) = (rep.changed, rep.state.up, rep.state.last_error.clone());
        states[v][r][k] = rep.state;
        appliance.set_health(rows.clone());
        let now_alive = server_alive(&states[v][r]);
        let was_alive = alive[v][r];
        let dynamic = states[v][r].iter().any(|c| c.weight.is_some());
        if now_alive != was_alive || dynamic {
            alive[v][r] = now_alive;
            let rs = &vs.real_servers[r];
            if was_alive != now_alive {
                let script = if now_alive {
                    &rs.notify_up
                } else {
                    &rs.notify_down
                };
                if let Some(s) = script {
                    run_script(s);
                }
                fifos.write(&fifo::checker_line(vs, Some(rs), now_alive));
            }
            apply(
                vs,
                &alive[v],
                &states[v],
                (&mut quorum[v], false),
                (&*appliance, &fifos),
            );
            if let Some(up) = shared_quorum.lock().get_mut(v) {
                *up = quorum[v].up;
            }
        }
        // After the quorum's, as keepalived mails them.
        if changed {
            mail_checker(vs, r, k, (up, why.as_deref()), (was_alive, now_alive));
        }
    }
}

/// On shutdown, virtual servers with `omega` run their live servers' notify_down and
/// their quorum_down scripts, and write their DOWN lines, as keepalived does.
fn omega(vss: &[VirtualServer], alive: &[Vec<bool>], fifos: &Fifos) {
    let mailer = crate::mail::current();
    let conf = mailer.conf();
    for (vs, alive) in vss.iter().zip(alive).filter(|(vs, _)| vs.omega) {
        let name = fifo::virtual_server_name(vs);
        for (rs, _) in vs.real_servers.iter().zip(alive).filter(|(_, a)| **a) {
            if let Some(s) = &rs.notify_down {
                run_script(s);
            }
            fifos.write(&fifo::checker_line(vs, Some(rs), false));
            if conf.real_server_alerts(rs.smtp_alert) {
                mailer.real_server(
                    &fifo::real_server_name(vs, rs),
                    &name,
                    false,
                    "=> Shutting down <=",
                );
            }
        }
        if let Some(s) = &vs.quorum_down {
            run_script(s);
        }
        fifos.write(&fifo::checker_line(vs, None, false));
        if conf.virtual_server_alerts(vs.smtp_alert) {
            mailer.virtual_server(&name, false, "=> Shutting down <=");
        }
    }
}

/// keepalived's mail for a checker's change (`up`, and why it failed), if its server
/// mails: the subject says the server's state after it (`alive`: before, after); with
/// `no_checker_emails`, only a change of the server's state is mailed.
fn mail_checker(
    vs: &VirtualServer,
    r: usize,
    k: usize,
    (up, why): (bool, Option<&str>),
    (was_alive, alive): (bool, bool),
) {
    let rs = &vs.real_servers[r];
    let mailer = crate::mail::current();
    let conf = mailer.conf();
    if !mailer.enabled() || !conf.real_server_alerts(rs.smtp_alert) {
        return;
    }
    if was_alive == alive && conf.no_checker_emails {
        return;
    }
    if let Some(body) = checker_alert(&rs.checkers[k], up, why) {
        let name = fifo::virtual_server_name(vs);
        mailer.real_server(&fifo::real_server_name(vs, rs), &name, alive, &body);
    }
}

/// The body keepalived's checker of this kind mails for its change (FILE_CHECK mails
/// none).
fn checker_alert(c: &Checker, up: bool, why: Option<&str>) -> Option<String> {
    let ok = if up { "succeed" } else { "failed" };
    let done = if up { "succeeded" } else { "failed" };
    Some(match &c.kind {
        CheckKind::Tcp => format!("=> TCP CHECK {ok} on service <="),
        CheckKind::Udp { .. } => format!("=> UDP CHECK {ok} on service <="),
        CheckKind::Ping => format!("=> ICMP CHECK {ok} on service <="),
        CheckKind::Dns { .. } => format!("=> DNS_CHECK: {ok} on service <="),
        CheckKind::Sip { .. } => format!("=> SIP CHECK {ok} on service <="),
        CheckKind::Http { .. } | CheckKind::Smtp { .. } if up => {
            "=> CHECK succeed on service <=".into()
        }
        CheckKind::Http { .. } => "=> CHECK failed on service : HTTP request failed <=".into(),
        CheckKind::Smtp { .. } => {
            // keepalived's smtp_final phrases, by what went wrong.
            let why = why.unwrap_or_default();
            let host = format!("[{}]:{}", c.target.ip(), c.target.port());
            let phrase = if why.starts_with("SMTP banner") {
                "Bad greeting banner from server"
            } else if why.starts_with("SMTP HELO") {
                "Bad HELO response from server"
            } else if why.starts_with("SMTP:") {
                "Read failure from server"
            } else if why.starts_with("timed out") {
                "Connection timeout to server"
            } else {
                "Error connecting to server"
            };
            format!("=> CHECK failed on service : {phrase} {host} <=")
        }
        CheckKind::Misc { .. } => {
            let timed_out = !up && why.is_some_and(|w| w.starts_with("timed out"));
            let said = if timed_out { "timed out" } else { done };
            format!("=> MISC CHECK {said} on service <=")
        }
        CheckKind::Bfd { name } => format!("=> BFD CHECK {name} {done} on service <="),
        CheckKind::File { .. } => return None,
    })
}

/// Recomputes `vs`'s server set and applies the difference (one publication).
fn apply(
    vs: &VirtualServer,
    alive: &[bool],
    states: &[Vec<CheckerState>],
    (quorum, first): (&mut Quorum, bool),
    (appliance, fifos): (&dyn HealthTarget, &Fifos),
) {
    let inputs = server_inputs(alive, states);
    let was_up = quorum.up;
    let set = server_set(vs, &inputs, quorum);
    // keepalived's start: quorum gained (its quorum_up runs), or down with a sorry server
    // to put in (its quorum_down runs); down without one says nothing.
    let starts_down = first && !quorum.up && vs.sorry_server.is_some();
    if was_up != quorum.up || starts_down {
        let name = vs.keys.first().map(key_name).unwrap_or_default();
        log(
            if quorum.up {
                Level::Notice
            } else {
                Level::Warning
            },
            "health",
            Some(&format!("quorum {name}")),
            format_args!("{name}: quorum {}", if quorum.up { "UP" } else { "LOST" }),
        );
        let script = if quorum.up {
            &vs.quorum_up
        } else {
            &vs.quorum_down
        };
        if let Some(s) = script {
            run_script(s);
        }
        fifos.write(&fifo::checker_line(vs, None, quorum.up));
        let mailer = crate::mail::current();
        if mailer.conf().virtual_server_alerts(vs.smtp_alert) {
            // keepalived's words: the threshold crossed (from the state before) and the
            // live weight.
            let (q, h) = (i64::from(vs.quorum), i64::from(vs.hysteresis));
            let threshold = if was_up { q - h } else { q + h };
            let what = match (first, quorum.up) {
                (true, true) => "Starting with quorum up",
                (true, false) => "Starting with quorum down",
                (false, true) => "Gained quorum",
                (false, false) => "Lost quorum",
            };
            let body = format!("=> {what} {q}+{h}={threshold} <= {} <=", quorum.weight);
            mailer.virtual_server(&fifo::virtual_server_name(vs), quorum.up, &body);
        }
    }
    let mut cmds = Vec::new();
    for key in &vs.keys {
        cmds.extend(diff(appliance, *key, &wanted(vs, *key, &set)));
    }
    if cmds.is_empty() {
        return;
    }
    if let Err(e) = appliance.apply_health(&cmds) {
        log(
            Level::Error,
            "health",
            Some("apply"),
            format_args!("cannot apply a change: {e}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each checker's words in its change's mail, keepalived's.
    #[test]
    fn checker_alerts_are_keepalived_s_words() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "track_file maint {\n  file /run/maint\n}\n\
             virtual_server 10.0.0.1 25 {\n  protocol TCP\n  real_server 10.0.0.2 25 {\n\
             TCP_CHECK {\n    }\n    SMTP_CHECK {\n    }\n    MISC_CHECK {\n      misc_path /bin/true\n    }\n\
             FILE_CHECK {\n      track_file maint\n    }\n    HTTP_GET {\n      url {\n        path /\n      }\n    }\n  }\n}\n",
        )
        .unwrap();
        let c = &k.virtual_servers[0].real_servers[0].checkers;
        let said = |i: usize, up: bool, why: Option<&str>| checker_alert(&c[i], up, why);
        let is = |s: &str| Some(s.to_string());
        assert_eq!(
            said(0, true, None),
            is("=> TCP CHECK succeed on service <=")
        );
        assert_eq!(
            said(0, false, Some("refused")),
            is("=> TCP CHECK failed on service <=")
        );
        assert_eq!(said(1, true, None), is("=> CHECK succeed on service <="));
        for (why, phrase) in [
            ("SMTP banner 554", "Bad greeting banner from server"),
            ("SMTP HELO answered 550", "Bad HELO response from server"),
            ("SMTP: connection closed", "Read failure from server"),
            ("timed out after 5s", "Connection timeout to server"),
            (
                "Connection refused (os error 111)",
                "Error connecting to server",
            ),
        ] {
            assert_eq!(
                said(1, false, Some(why)),
                Some(format!(
                    "=> CHECK failed on service : {phrase} [10.0.0.2]:25 <="
                ))
            );
        }
        assert_eq!(
            said(2, true, None),
            is("=> MISC CHECK succeeded on service <=")
        );
        assert_eq!(
            said(2, false, Some("timed out after 5s")),
            is("=> MISC CHECK timed out on service <=")
        );
        assert_eq!(
            said(2, false, Some("exit 1")),
            is("=> MISC CHECK failed on service <=")
        );
        assert_eq!(said(3, false, None), None, "FILE_CHECK mails nothing");
        assert_eq!(
            said(4, false, Some("status 500")),
            is("=> CHECK failed on service : HTTP request failed <=")
        );
    }
}
