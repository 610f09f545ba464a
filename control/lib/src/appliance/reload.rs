//! Hitless reload (SIGHUP, the console's `reload`): the TOML and the keepalived.conf read
//! again and their difference applied as one snapshot, as keepalived reloads: services and
//! real servers that stay the same are left alone (their connections, counters and
//! scheduler state), changed ones edited, new ones added, gone ones removed (their
//! connections' packets are dropped, as IPVS drops them). A file with an error
//! changes nothing and says where. VRRP is reloaded as keepalived reloads it (see
//! [`crate::vrrp::reload`]). What only a restart can change ([eal], ports, workers, the
//! table's size, the socket, lvs_sync_daemon, the log) is read, compared and reported, not
//! applied.

use super::*;
use crate::config::Config;

use std::path::PathBuf;

/// Where a reload reads the configuration again, and what it started with.
#[derive(Debug, Clone)]
pub struct ReloadSource {
    pub config: PathBuf,
    pub keepalived: Option<PathBuf>,
    /// The restart-only parts of the configuration rvs started with.
    pub fixed: String,
    /// testpmd's `--nb-cores` rvs started with: the file is read again under it.
    pub nb_cores: Option<usize>,
    /// The keepalived.conf's text as its checkers run it: while it stays the same, its
    /// services and their servers are the checkers' (a reload leaves them alone).
    pub keepalived_text: Option<String>,
}

/// The parts of a configuration a reload cannot change, in one comparable text.
pub fn restart_only(cfg: &Config) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        cfg.eal,
        cfg.ports,
        cfg.workers,
        cfg.forward,
        cfg.connections,
        cfg.limits,
        cfg.full_nat,
        (cfg.syn_share, cfg.syn_per_source, cfg.udp_per_source),
        cfg.ftp_ports,
        cfg.socket,
        cfg.metrics_listen,
        cfg.mbufs,
        cfg.log,
        cfg.announce,
    )
}

impl Appliance {
    /// Where `reload` reads the configuration (set by the daemon at start).
    pub fn set_reload_source(&self, source: ReloadSource) {
        *self.reload_source.lock() = Some(source);
    }

    /// Reads the configuration again and applies the difference (see the module); the
    /// report lists the changes made.
    pub fn reload(self: &Arc<Self>) -> Result<String, String> {
        let source = self
            .reload_source
            .lock()
            .clone()
            .ok_or("reload: rvs was not started from a configuration file")?;
        let cfg = Config::load_with_cores(&source.config, source.nb_cores)
            .map_err(|e| format!("reload: {e} (nothing changed)"))?;
        // A keepalived.conf whose text changed is taken anew; its checkers configured as
        // before keep their state.
        let conf_text = match &source.keepalived {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("reload: {}: {e} (nothing changed)", p.display()))?,
            ),
            None => None,
        };
        let parsed = match (&source.keepalived, &conf_text) {
            (Some(p), Some(text)) => Some(
                KeepalivedConf::parse(&p.display().to_string(), text)
                    .map_err(|e| format!("reload: {e} (nothing changed)"))?,
            ),
            _ => None,
        };
        // VRRP as both files configure it now; applied after the services if it changed.
        let (vrrp, vrrp_warnings) = cfg
            .vrrp_with(parsed.as_ref())
            .map_err(|e| format!("reload: {e} (nothing changed)"))?;
        let running_vrrp = self.vrrp_conf();
        let vrrp_changed = vrrp.without_mail() != running_vrrp.without_mail()
            && !(vrrp.configures_nothing() && running_vrrp.configures_nothing());
        let sync_moved = vrrp.sync_daemon != running_vrrp.sync_daemon;
        let vrrp_sync = vrrp.sync_daemon.clone();
        let conf = parsed.filter(|_| source.keepalived_text != conf_text);
        let current = self.director.lock().clone();
        let mut desired = cfg
            .director(current.ports.clone())
            .map_err(|e| format!("reload: {e} (nothing changed)"))?;
        let mut extra: Vec<(String, Command)> = Vec::new();
        // What the running checkers know, for those the changed file configures the same.
        let carried = conf
            .as_ref()
            .and_then(|_| self.keepalived.lock().as_ref().map(|(_, m)| m.states()))
            .unwrap_or_default();
        match &conf {
            Some(conf) => {
                // A service with checkers carried over starts with the servers their
                // verdicts give (a server found dead stays out), not all of them.
                let seeded = crate::health::monitor::carried_servers(conf, &carried);
                for (at, c) in conf.commands_at() {
                    let seeded_here = |key| seeded.iter().any(|(k, _)| *k == key);
                    if let Command::AddServer(spec) = &c {
                        if seeded_here(spec.service) {
                            continue;
                        }
                    }
                    let key = match &c {
                        Command::AddService(spec) => Some(spec.key),
                        _ => None,
                    };
                    extra.push((at.clone(), c));
                    if let Some((_, servers)) =
                        key.and_then(|k| seeded.iter().find(|(s, _)| *s == k))
                    {
                        extra.extend(
                            servers
                                .iter()
                                .map(|s| (at.clone(), Command::AddServer(s.clone()))),
                        );
                    }
                }
                desired.full_nat.extend(conf.full_nat());
            }
            // Unchanged: the running checkers' services stay as they are now.
            None => {
                let keys = self
                    .keepalived
                    .lock()
                    .as_ref()
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default();
                for k in &keys {
                    if let Some(vs) = current.find(*k) {
                        desired.services.push(vs.clone());
                    }
                }
                desired.full_nat.extend(
                    current
                        .full_nat
                        .iter()
                        .filter(|(k, _)| keys.contains(k))
                        .cloned(),
                );
            }
        }
        desired
            .apply_all(&extra)
            .map_err(|e| format!("reload: {e} (nothing changed)"))?;
        let lines = listing::rules_diff(&current, &desired);
        let mut cmds = Vec::with_capacity(lines.len());
        for l in &lines {
            match ipvsadm::parse_line(l) {
                Ok(Some(c)) => cmds.push((format!("reload: {l}"), c)),
                _ => return Err(format!("reload: cannot express {l:?} (nothing changed)")),
            }
        }
        let gone: Vec<_> = current
            .marks
            .iter()
            .filter(|m| !desired.marks.contains(m))
            .copied()
            .collect();
        let new: Vec<_> = desired
            .marks
            .iter()
            .filter(|m| !current.marks.contains(m))
            .copied()
            .collect();
        let settings = current.settings_changes(&desired);
        // The checkers of the old keepalived.conf stop before their services change.
        let checkers = conf
            .is_some()
            .then(|| self.keepalived.lock().take())
            .flatten();
        let applied = self.change_with(|d| {
            for m in &gone {
                d.delete_mark(*m)?;
            }
            d.apply_all(&cmds)?;
            for m in &new {
                d.add_mark(*m)?;
            }
            d.take_settings(&desired);
            d.check_full_nat_room()
        });
        if let Err(e) = applied {
            if let Some(old) = checkers {
                *self.keepalived.lock() = Some(old);
            }
            return Err(format!("reload: {e} (nothing changed)"));
        }
        // Alerts go by the new settings from here on (nothing else to restart for them).
        crate::mail::use_conf(&vrrp.mail);
        let mut report = format!(
            "reload: {} change(s) from {}{}\n",
            lines.len() + gone.len() + new.len() + settings.len(),
            source.config.display(),
            source
                .keepalived
                .as_ref()
                .map(|p| format!(" and {}", p.display()))
                .unwrap_or_default()
        );
        for l in &lines {
            report.push_str(&format!("  {l}\n"));
        }
        for m in &gone {
            report.push_str(&format!("  mark del {m}\n"));
        }
        for m in &new {
            report.push_str(&format!("  mark add {m}\n"));
        }
        for s in &settings {
            report.push_str(&format!("  {s}\n"));
        }
        if let Some(conf) = &conf {
            // Live servers the file no longer has are notified as keepalived notifies them.
            if let Some((_, m)) = &checkers {
                m.notify_removed(conf);
            }
            // The checkers' FIFOs configured alike stay open (their readers see no EOF).
            let fifos = checkers.as_ref().and_then(|(_, m)| m.fifos_for(conf));
            let quorums = checkers
                .as_ref()
                .map(|(_, m)| m.quorums())
                .unwrap_or_default();
            drop(checkers);
            let target: Arc<dyn crate::health::HealthTarget> = self.clone();
            let keys = conf
                .virtual_servers
                .iter()
                .flat_map(|v| v.keys.iter().copied())
                .collect();
            let monitor = Monitor::start_carrying(conf, target, (&carried, &quorums), fifos)
                .map_err(|e| format!("health monitor: {e}"))?;
            let now = monitor.states();
            let kept = now
                .iter()
                .filter(|(id, (c, _))| carried.get(*id).is_some_and(|(old, _)| old == c))
                .count();
            let all = now.len();
            *self.keepalived.lock() = Some((keys, monitor));
            report.push_str(&format!(
                "  health checkers of the changed keepalived.conf: {kept} of {all} configured as before keep their state\n"
            ));
            if let Some(src) = self.reload_source.lock().as_mut() {
                src.keepalived_text = conf_text;
            }
        }
        for w in vrrp_warnings {
            report.push_str(&format!("reload: warning: {w}\n"));
        }
        let bfd = self
            .run_bfd(vrrp.bfd_instances.clone())
            .map_err(|e| format!("{report}reload: {e}; the services above changed"))?;
        for l in &bfd {
            report.push_str(&format!("  {l}\n"));
        }
        if vrrp_changed {
            let (lines, kept) = self
                .reload_vrrp(vrrp)
                .map_err(|e| format!("{report}reload: vrrp: {e}; the services above changed"))?;
            for l in &lines {
                report.push_str(&format!("  {l}\n"));
            }
            report.push_str(&format!(
                "  vrrp: {} change(s); {kept} instance(s) keep their state\n",
                lines.len()
            ));
        }
        if sync_moved {
            let line = self.resync(running_vrrp.sync_daemon.as_ref(), vrrp_sync);
            report.push_str(&format!("  {line}\n"));
        }
        if restart_only(&cfg) != source.fixed {
            report.push_str("reload: notice: [eal], ports, workers, table sizes, the flood defence (syn_share, syn_per_source, udp_per_source), ftp_ports, the control socket or metrics changed: they take effect at the next restart\n");
        }
        Ok(report)
    }
}
