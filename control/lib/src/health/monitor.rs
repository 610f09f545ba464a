//! The health monitor: one thread with a tokio runtime; a task per checker probes on its
//! own schedule (warmup, delay_loop, delay_before_retry) and reports to a coordinator task,
//! which turns server and quorum transitions into configuration changes (one snapshot per
//! change), runs notify scripts, logs, and keeps the table `show health` prints.

use super::probe::probe;
use super::state::{server_alive, server_set, CheckerState, Quorum, ServerSet};
use super::HealthTarget;
use crate::ipvsadm::{Command, ServerSpec, ServiceKey};
use crate::keepalived::{server_spec, CheckKind, KeepalivedConf, VirtualServer};
use crate::log::{log, Level};
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

pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
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
    match set {
        ServerSet::Servers(list) => list
            .iter()
            .map(|&(i, w)| server_spec(key, &vs.real_servers[i], w))
            .collect(),
        ServerSet::Sorry => vs
            .sorry_server
            .map(|(addr, port): (IpAddr, u16)| {
                vec![ServerSpec {
                    service: key,
                    addr,
                    port,
                    method: vs.sorry_method,
                    weight: 1,
                    upper: 0,
                    lower: 0,
                    tunnel: Default::default(),
                    refusal: None,
                }]
            })
            .unwrap_or_default(),
    }
}

impl Monitor {
    /// Starts checking every real server of `conf`; changes go to `appliance` (the target).
    pub fn start(
        conf: &KeepalivedConf,
        appliance: Arc<dyn HealthTarget>,
    ) -> std::io::Result<Monitor> {
        let stop = Arc::new(AtomicBool::new(false));
        let vss = conf.virtual_servers.clone();
        let flag = stop.clone();
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
                rt.block_on(coordinate(vss, appliance, flag));
            })?;
        Ok(Monitor {
            stop,
            thread: Some(thread),
        })
    }
}

async fn checker_task(
    vs: usize,
    rs: usize,
    ck: usize,
    c: crate::keepalived::Checker,
    start_up: bool,
    tx: mpsc::UnboundedSender<Report>,
    stop: Arc<AtomicBool>,
) {
    let mut state = CheckerState::new(c.retry, start_up);
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
    if !c.warmup.is_zero() {
        let ms = c.warmup.as_millis().max(1) as u64;
        nap(Duration::from_millis(rand::random::<u64>() % ms)).await;
    }
    while !stop.load(Ordering::Relaxed) {
        let outcome = probe(&c).await;
        let next = state.record(outcome, c.delay_loop, c.delay_before_retry);
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

async fn coordinate(
    vss: Vec<VirtualServer>,
    appliance: Arc<dyn HealthTarget>,
    stop: Arc<AtomicBool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
    // states[vs][rs][ck]
    let mut states: Vec<Vec<Vec<CheckerState>>> = Vec::new();
    let mut alive: Vec<Vec<bool>> = Vec::new();
    let mut quorum: Vec<Quorum> = Vec::new();
    let mut rows: Vec<HealthRow> = Vec::new();
    let mut row_of: Vec<Vec<Vec<usize>>> = Vec::new();
    for (v, vs) in vss.iter().enumerate() {
        states.push(Vec::new());
        row_of.push(Vec::new());
        alive.push(vs.real_servers.iter().map(|r| !r.alpha).collect());
        quorum.push(Quorum { up: true });
        for (r, rs) in vs.real_servers.iter().enumerate() {
            let start_up = !rs.alpha;
            states[v].push(Vec::new());
            row_of[v].push(Vec::new());
            for (k, c) in rs.checkers.iter().enumerate() {
                states[v][r].push(CheckerState::new(c.retry, start_up));
                row_of[v][r].push(rows.len());
                rows.push(HealthRow {
                    service: vs.keys.first().map(key_name).unwrap_or_default(),
                    server: format!("{}", std::net::SocketAddr::new(rs.addr, rs.port)),
                    checker: kind_name(&c.kind).into(),
                    target: c.target.to_string(),
                    up: start_up,
                    transitions: 0,
                    last_error: None,
                });
                tokio::spawn(checker_task(
                    v,
                    r,
                    k,
                    c.clone(),
                    start_up,
                    tx.clone(),
                    stop.clone(),
                ));
            }
        }
    }
    drop(tx);
    appliance.set_health(rows.clone());
    // alpha: servers start down, so the first evaluation may already need changes.
    for v in 0..vss.len() {
        apply(&vss[v], &alive[v], &states[v], &mut quorum[v], &*appliance);
    }
    loop {
        let report = tokio::select! {
            r = rx.recv() => r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if stop.load(Ordering::Relaxed) {
                    omega(&vss, &alive);
                    return;
                }
                continue;
            }
        };
        let Some(rep) = report else { return };
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
        states[v][r][k] = rep.state;
        appliance.set_health(rows.clone());
        let now_alive = server_alive(&states[v][r]);
        let dynamic = states[v][r].iter().any(|c| c.weight.is_some());
        if now_alive != alive[v][r] || dynamic {
            let was = alive[v][r];
            alive[v][r] = now_alive;
            let rs = &vs.real_servers[r];
            if was != now_alive {
                let script = if now_alive {
                    &rs.notify_up
                } else {
                    &rs.notify_down
                };
                if let Some(s) = script {
                    run_script(s);
                }
            }
            apply(vs, &alive[v], &states[v], &mut quorum[v], &*appliance);
        }
    }
}

/// On shutdown, virtual servers with `omega` run their live servers' notify_down and
/// their quorum_down scripts, as keepalived does.
fn omega(vss: &[VirtualServer], alive: &[Vec<bool>]) {
    for (vs, alive) in vss.iter().zip(alive).filter(|(vs, _)| vs.omega) {
        for (rs, _) in vs.real_servers.iter().zip(alive).filter(|(_, a)| **a) {
            if let Some(s) = &rs.notify_down {
                run_script(s);
            }
        }
        if let Some(s) = &vs.quorum_down {
            run_script(s);
        }
    }
}

/// Recomputes `vs`'s server set and applies the difference (one publication).
fn apply(
    vs: &VirtualServer,
    alive: &[bool],
    states: &[Vec<CheckerState>],
    quorum: &mut Quorum,
    appliance: &dyn HealthTarget,
) {
    let inputs: Vec<(bool, Option<u32>)> = alive
        .iter()
        .zip(states)
        .map(|(&a, cs)| (a, cs.iter().rev().find_map(|c| c.weight)))
        .collect();
    let was_up = quorum.up;
    let set = server_set(vs, &inputs, quorum);
    if was_up != quorum.up {
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
