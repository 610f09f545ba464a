//! keepalived.conf taken into use: its services, its checkers (the monitor), and what
//! they report; the appliance is their `HealthTarget`.

use super::*;
use crate::health::HealthTarget;

impl HealthTarget for Appliance {
    fn servers(&self, key: ServiceKey) -> Option<Vec<rvs_core::RealServer>> {
        self.director.lock().find(key).map(|s| s.dests.clone())
    }

    /// A health checker's change: applied all or nothing, published, counted.
    fn apply_health(&self, cmds: &[Command]) -> Result<(), String> {
        let located: Vec<(String, Command)> = cmds
            .iter()
            .map(|c| ("health check".to_string(), c.clone()))
            .collect();
        self.change(&located)?;
        self.health_changes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn set_health(&self, rows: Vec<HealthRow>) {
        *self.health.lock() = rows;
    }
}

impl Appliance {
    /// Takes a keepalived.conf into use: its services replace those of the previous one
    /// (all or nothing), and its checkers start. Returns the warnings.
    pub fn load_keepalived(self: &Arc<Self>, conf: &KeepalivedConf) -> Result<Vec<String>, String> {
        let target: Arc<dyn HealthTarget> = self.clone();
        let mut slot = self.keepalived.lock();
        // Stop the old checkers before their services go.
        let old = slot.take();
        let old_keys = old.as_ref().map(|(k, _)| k.clone()).unwrap_or_default();
        drop(old);
        let mut cmds: Vec<(String, Command)> = old_keys
            .iter()
            .map(|k| {
                (
                    "the previous keepalived.conf".to_string(),
                    Command::DeleteService(*k),
                )
            })
            .collect();
        cmds.extend(conf.commands_at());
        let full_nat = conf.full_nat();
        let applied = self.change_with(|d| {
            d.apply_all(&cmds)?;
            d.full_nat.retain(|(k, _)| !old_keys.contains(k));
            d.full_nat.extend(full_nat);
            d.check_full_nat_room()
        });
        if let Err(e) = applied {
            return Err(format!("{e} (nothing applied)"));
        }
        let keys = conf
            .virtual_servers
            .iter()
            .flat_map(|v| v.keys.iter().copied())
            .collect();
        let monitor = Monitor::start(conf, target).map_err(|e| format!("health monitor: {e}"))?;
        *slot = Some((keys, monitor));
        let mut warnings = conf.warnings.clone();
        // Sessions start with the files rvs starts or reloads with (`load` runs checkers).
        let running: Vec<crate::bfd::BfdInstance> = self
            .bfd
            .lock()
            .as_ref()
            .map(|r| r.conf().to_vec())
            .unwrap_or_default();
        for b in conf.bfd_instances.iter().filter(|b| !running.contains(b)) {
            warnings.push(format!(
                "{}: bfd_instance {}: not running: BFD sessions start with the files rvs starts or reloads with (--keepalived-conf)",
                b.at, b.name
            ));
        }
        Ok(warnings)
    }

    /// Stops the health checkers and the BFD sessions (at shutdown).
    pub fn stop_health(&self) {
        drop(self.keepalived.lock().take());
        if let Some(rt) = self.bfd.lock().take() {
            rt.shutdown();
        }
    }

    /// Runs the BFD sessions the files declare (the merged VRRP configuration's): started,
    /// or the running ones reloaded (those of the same name keep their state), or stopped
    /// when there are none. The changes, a line each.
    pub fn run_bfd(&self, wanted: Vec<crate::bfd::BfdInstance>) -> Result<Vec<String>, String> {
        let mut slot = self.bfd.lock();
        if let (Some(rt), false) = (slot.as_mut(), wanted.is_empty()) {
            return Ok(rt.reload(wanted));
        }
        if let Some(rt) = slot.take() {
            let names = rt
                .conf()
                .iter()
                .map(|b| format!("bfd_instance {}: removed", b.name))
                .collect();
            rt.shutdown();
            // Its sessions are no more (at a stop they stay as they were last, so VRRP sees
            // no failure before it stops itself).
            crate::bfd::board().publish(Vec::new());
            return Ok(names);
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let names = wanted
            .iter()
            .map(|b| format!("bfd_instance {}: new", b.name))
            .collect();
        *slot = Some(crate::bfd::BfdRuntime::start(wanted, crate::bfd::board())?);
        Ok(names)
    }

    pub(super) fn show_bfd(&self) -> String {
        let mut out = crate::bfd::show(&crate::bfd::board().rows());
        if let Some(rt) = self.bfd.lock().as_ref() {
            out.push_str(&format!(
                "{} packet(s) discarded (malformed, of no session, or below the TTL check)\n",
                rt.discarded.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
        out
    }

    pub(super) fn show_health(&self) -> String {
        let rows = self.health.lock();
        let mut out = format!(
            "{:<24} {:<24} {:<11} {:<24} {:<5} {:>5}  last error\n",
            "service", "server", "checker", "probe", "state", "flips"
        );
        for r in rows.iter() {
            let _ = writeln!(
                out,
                "{:<24} {:<24} {:<11} {:<24} {:<5} {:>5}  {}",
                r.service,
                r.server,
                r.checker,
                r.target,
                if r.up { "UP" } else { "DOWN" },
                r.transitions,
                r.last_error.as_deref().unwrap_or("-")
            );
        }
        let _ = writeln!(
            out,
            "{} change(s) applied by the checkers",
            self.health_changes.load(Ordering::Relaxed)
        );
        out
    }
}
