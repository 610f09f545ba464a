//! Scale-out behind ECMP: each VIP this node can serve is a route in a kernel table of its
//! own (`[announce] table`), through the data port's host twin, which a routing daemon
//! learns and announces by BGP (the BIRD configuration: `rvs --bird-config`). Every 200 ms a
//! VIP is kept announced while one of its services has a live server (weight above 0), the
//! workers are forwarding and none has stalled, and no data port's link is down (as its
//! driver tells); otherwise its route goes. At a stop every
//! route goes; if rvs dies, the twin and its routes vanish with it.

use super::*;
use crate::config::{AnnounceConfig, MAIN_TABLE_PROTO};
use crate::iproute::ip;
use crate::log::{log, Level};
use std::net::IpAddr;
use std::time::Duration;

/// One VIP's announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipAnnouncement {
    pub vip: IpAddr,
    pub announced: bool,
    /// Why it is withdrawn (empty while announced).
    pub reason: String,
    pub changes: u64,
}

/// The thread keeping the routes; dropping it withdraws them.
pub struct Announcer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TICK: Duration = Duration::from_millis(200);

/// Adds (`replace`) or removes (`del`) `vip`'s route in rvs's table, and with
/// `ipv6_main_table` an IPv6 VIP's in the main table too.
fn route(action: &str, vip: IpAddr, conf: &AnnounceConfig) -> Result<(), String> {
    let prefix = match vip {
        IpAddr::V4(_) => format!("{vip}/32"),
        IpAddr::V6(_) => format!("{vip}/128"),
    };
    let table = conf.table.to_string();
    let mut args = vec![
        if vip.is_ipv6() { "-6" } else { "-4" },
        "route",
        action,
        &prefix,
    ];
    if action != "del" {
        args.extend(["dev", &conf.iface, "proto", "static"]);
    }
    args.extend(["table", &table]);
    let own = gone_is_fine(action, ip(&args));
    if !(vip.is_ipv6() && conf.ipv6_main_table) {
        return own;
    }
    // The main table's copy (`ipv6_main_table`), which FRR's zebra learns; --frr-config's
    // bgpd takes host routes at metric `table` from there.
    let proto = MAIN_TABLE_PROTO.to_string();
    let mut args = vec!["-6", "route", action, &prefix, "dev", &conf.iface];
    if action != "del" {
        args.extend(["proto", &proto]);
    }
    args.extend(["metric", &table, "table", "main"]);
    own.and(gone_is_fine(action, ip(&args)))
}

/// A route to remove that is not there (gone with its twin, or never added) is removed.
fn gone_is_fine(action: &str, result: Result<(), String>) -> Result<(), String> {
    match result {
        Err(e) if action == "del" && e.ends_with("No such process") => Ok(()),
        other => other,
    }
}

/// Empties rvs's table (what an earlier run may have left while its twin lived on).
fn flush(conf: &AnnounceConfig) {
    for family in ["-4", "-6"] {
        let _ = ip(&[family, "route", "flush", "table", &conf.table.to_string()]);
    }
    if conf.ipv6_main_table {
        let proto = MAIN_TABLE_PROTO.to_string();
        let _ = ip(&[
            "-6",
            "route",
            "flush",
            "table",
            "main",
            "proto",
            &proto,
            "dev",
            &conf.iface,
        ]);
    }
}

impl Appliance {
    /// Each VIP to consider (the configured ones, else every VIP a service listens on) and
    /// why it must not be announced now (None: announce it).
    pub fn announce_plan(
        &self,
        vips: Option<&[IpAddr]>,
        stalled: Option<&str>,
    ) -> Vec<(IpAddr, Option<String>)> {
        // A data port whose link is down (as its driver tells): the node cannot serve.
        let link_down = self.ports.lock().iter().enumerate().find_map(|(i, p)| {
            (p.port.link_up() == Some(false)).then(|| format!("port {i} ({}): link down", p.name))
        });
        let d = self.director.lock();
        let all = d.announced_vips(vips);
        let forwarding = self.forwarding.load(Ordering::Relaxed);
        all.into_iter()
            .map(|vip| {
                let services: Vec<_> = d
                    .services
                    .iter()
                    .filter(|s| matches!(s.spec.key, ServiceKey::Addr(_, a) if a.ip() == vip))
                    .collect();
                let why = if !forwarding {
                    Some("forwarding stopped".to_string())
                } else if let Some(down) = &link_down {
                    Some(down.clone())
                } else if let Some(s) = stalled {
                    Some(s.to_string())
                } else if services.is_empty() {
                    Some("no service".to_string())
                } else if !services
                    .iter()
                    .any(|s| s.dests.iter().any(|r| r.weight > 0))
                {
                    Some("no live server".to_string())
                } else {
                    None
                };
                (vip, why)
            })
            .collect()
    }

    /// Starts keeping `conf`'s routes (the daemon, when `[announce]` is set).
    pub fn start_announcing(self: &Arc<Self>, conf: AnnounceConfig) -> std::io::Result<Announcer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (app, flag) = (self.clone(), stop.clone());
        flush(&conf);
        let thread = std::thread::Builder::new()
            .name("rvs-announce".into())
            .spawn(move || app.announce_loop(&conf, &flag))?;
        Ok(Announcer {
            stop,
            thread: Some(thread),
        })
    }

    fn announce_loop(&self, conf: &AnnounceConfig, stop: &AtomicBool) {
        let stall = Duration::from_millis(u64::from(conf.stall_ms));
        // Each worker's polls and when they last moved.
        let mut polls: Vec<(u64, Instant)> = self
            .workers
            .iter()
            .map(|w| (w.stats.read().polls, Instant::now()))
            .collect();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut stalled = None;
            for (w, seen) in self.workers.iter().zip(polls.iter_mut()) {
                let p = w.stats.read().polls;
                if p != seen.0 {
                    *seen = (p, now);
                } else if now.duration_since(seen.1) >= stall && stalled.is_none() {
                    stalled = Some(format!("worker {} stalled", w.index));
                }
            }
            let plan = self.announce_plan(conf.vips.as_deref(), stalled.as_deref());
            self.apply_plan(conf, plan);
            std::thread::sleep(TICK);
        }
        // Stopping: every announcement goes.
        let plan = self
            .announcements
            .lock()
            .iter()
            .map(|a| (a.vip, Some("rvs stopping".to_string())))
            .collect();
        self.apply_plan(conf, plan);
    }

    fn apply_plan(&self, conf: &AnnounceConfig, plan: Vec<(IpAddr, Option<String>)>) {
        let mut state = self.announcements.lock();
        // VIPs no longer considered are withdrawn.
        for a in state.iter_mut() {
            if a.announced && !plan.iter().any(|(v, _)| *v == a.vip) {
                let _ = route("del", a.vip, conf);
                a.announced = false;
                a.reason = "no longer a VIP".into();
                a.changes += 1;
            }
        }
        for (vip, why) in plan {
            let i = match state.iter().position(|a| a.vip == vip) {
                Some(i) => i,
                None => {
                    state.push(VipAnnouncement {
                        vip,
                        announced: false,
                        reason: String::new(),
                        changes: 0,
                    });
                    state.len() - 1
                }
            };
            let a = &mut state[i];
            let want = why.is_none();
            if want == a.announced {
                a.reason = why.unwrap_or_default();
                continue;
            }
            let result = route(if want { "replace" } else { "del" }, vip, conf);
            match result {
                Ok(()) => {
                    a.announced = want;
                    a.changes += 1;
                    log(
                        if want { Level::Notice } else { Level::Warning },
                        "announce",
                        Some(&format!("announce {vip}")),
                        format_args!(
                            "{vip} {}",
                            match &why {
                                None => "announced".to_string(),
                                Some(r) => format!("withdrawn: {r}"),
                            }
                        ),
                    );
                    a.reason = why.unwrap_or_default();
                }
                Err(e) => {
                    log(
                        Level::Error,
                        "announce",
                        Some(&format!("announce {vip}")),
                        format_args!("{vip}: {e}"),
                    );
                    a.reason = e;
                }
            }
        }
        state.sort_by_key(|a| a.vip);
    }

    /// The announcements, for `show announce` and the metrics.
    pub fn announcements(&self) -> Vec<VipAnnouncement> {
        self.announcements.lock().clone()
    }

    pub(super) fn show_announce(&self) -> String {
        let state = self.announcements.lock();
        if state.is_empty() {
            return "announce: nothing announced ([announce] not set, or no VIP)\n".into();
        }
        let mut out = format!("{:<40} {:<10} {:>7}  reason\n", "vip", "state", "changes");
        for a in state.iter() {
            let _ = writeln!(
                out,
                "{:<40} {:<10} {:>7}  {}",
                a.vip.to_string(),
                if a.announced {
                    "announced"
                } else {
                    "withdrawn"
                },
                a.changes,
                a.reason
            );
        }
        out
    }
}
