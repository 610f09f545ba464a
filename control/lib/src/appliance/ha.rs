//! High availability's side of the appliance: VRRP's ownership of the managed addresses
//! published to the workers, the data ports' links for tracking, `show vrrp`; the
//! connection sync daemons (`--start-daemon`, `-L --daemon`, `show sync`).

use super::*;
use crate::vrrp::conf::SyncDaemonConf;
use crate::vrrp::{Host, InstanceStatus, Link, State, VrrpConf, VrrpRuntime};
use rvs_core::engine::Floating;

/// The appliance as the VRRP runtime sees it.
#[derive(Debug, Clone)]
pub struct VrrpHost(pub Arc<Appliance>);

impl Host for VrrpHost {
    fn set_floating(
        &self,
        addrs: Vec<Floating>,
        routes: Vec<rvs_core::engine::Route>,
        rules: Vec<rvs_core::engine::Rule>,
    ) {
        let a = &self.0;
        let _one_at_a_time = a.changing.lock();
        let mut next = a.director.lock().clone();
        next.floating = addrs;
        next.vrrp_routes = routes;
        next.vrrp_rules = rules;
        a.sync_host_vips(HostVips::of(&next));
        a.commit(next);
    }

    /// The port's link as its driver reports it; one the driver cannot tell counts as up.
    fn link_up(&self, port: usize) -> bool {
        self.0
            .ports
            .lock()
            .get(port)
            .is_none_or(|p| p.port.link_up() != Some(false))
    }

    fn state_changed(&self, instance: &str, state: State) {
        let hook = self.0.vrrp_hook.lock().clone();
        if let Some(h) = hook {
            h(instance, state);
        }
    }
}

/// Called on every instance state change (the sync daemon follows its instance).
pub type StateHook = Arc<dyn Fn(&str, State) + Send + Sync>;

impl Appliance {
    /// Where `show vrrp` reads the instances' state.
    pub fn set_vrrp_status(&self, status: Arc<Mutex<Vec<InstanceStatus>>>) {
        *self.vrrp.lock() = Some(status);
    }

    pub fn set_vrrp_hook(&self, hook: StateHook) {
        *self.vrrp_hook.lock() = Some(hook);
    }

    /// Runs VRRP (the daemon, at start) on `links`, the data ports with a host twin; with
    /// nothing configured, none runs until a reload configures some.
    pub fn run_vrrp(self: &Arc<Self>, conf: VrrpConf, links: Vec<Link>) -> Result<(), String> {
        *self.vrrp_links.lock() = links;
        if conf.configures_nothing() {
            return Ok(());
        }
        let rt = self.start_vrrp_runtime(conf)?;
        *self.vrrp_runtime.lock() = Some(rt);
        Ok(())
    }

    /// A VRRP runtime on the ports VRRP may speak on, its status shown by `show vrrp`.
    fn start_vrrp_runtime(self: &Arc<Self>, conf: VrrpConf) -> Result<VrrpRuntime, String> {
        let links = self.vrrp_links.lock().clone();
        let rt = VrrpRuntime::start(conf, links, Arc::new(VrrpHost(self.clone())))?;
        self.set_vrrp_status(rt.status_handle());
        Ok(rt)
    }

    /// keepalived's STATS signal (SIGUSR2; STATS_CLEAR with `clear`): each instance's
    /// counters in keepalived's stats file, `$TMPDIR` (else /tmp) `/keepalived.stats`, then
    /// with `clear` from 0 again. Returns the file's path.
    pub fn write_vrrp_stats(&self, clear: bool) -> Result<std::path::PathBuf, String> {
        let statuses = match self.vrrp_runtime.lock().as_ref() {
            Some(rt) => rt.stats(clear),
            None => Vec::new(),
        };
        let path = crate::vrrp::tmp_dir().join("keepalived.stats");
        std::fs::write(&path, crate::vrrp::keepalived_stats(&statuses))
            .map_err(|e| format!("Can't open {} ({e})", path.display()))?;
        Ok(path)
    }

    /// Stops VRRP cleanly (masters advertise priority 0, addresses are released).
    pub fn stop_vrrp(&self) {
        let rt = self.vrrp_runtime.lock().take();
        if let Some(rt) = rt {
            rt.shutdown();
        }
    }

    /// The VRRP configuration running (empty when none runs).
    pub(super) fn vrrp_conf(&self) -> VrrpConf {
        self.vrrp_runtime
            .lock()
            .as_ref()
            .map(|r| r.conf().clone())
            .unwrap_or_default()
    }

    /// Runs `conf` instead of the VRRP configuration running, as keepalived reloads (see
    /// [`crate::vrrp::reload`]): the changes, one line each, and how many instances keep
    /// their state.
    pub(super) fn reload_vrrp(
        self: &Arc<Self>,
        conf: VrrpConf,
    ) -> Result<(Vec<String>, usize), String> {
        let mut running = self.vrrp_runtime.lock();
        match running.as_mut() {
            Some(rt) => rt.reload(conf),
            None => {
                let names: Vec<String> = conf
                    .instances
                    .iter()
                    .map(|i| format!("vrrp_instance {}: new", i.name))
                    .collect();
                let rt = self
                    .start_vrrp_runtime(conf)
                    .map_err(|e| format!("{e} (VRRP not started)"))?;
                *running = Some(rt);
                Ok((names, 0))
            }
        }
    }

    pub(super) fn show_vrrp(&self) -> String {
        let Some(status) = self.vrrp.lock().clone() else {
            return "no VRRP instances\n".into();
        };
        let rows = status.lock().clone();
        let mut out = String::new();
        for s in &rows {
            let since = s
                .since
                .map(|t| format!("{:.1} s", t.elapsed().as_secs_f64()))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "VRRP instance {}: {} for {since}, interface {}, vrid {}, version {}, priority {} (configured {}), advert_int {:.2} s, {}{}{}{}",
                s.name,
                s.state,
                s.interface,
                s.vrid,
                s.version,
                s.priority,
                s.base_priority,
                f64::from(s.advert_cs) / 100.0,
                if s.preempt { "preempt" } else { "nopreempt" },
                if s.strict { ", strict mode" } else { "" },
                if s.accept { "" } else { ", no accept mode" },
                s.group
                    .as_ref()
                    .map(|g| format!(", sync group {g}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "  addresses: {}", s.addresses.join(" "));
            if let Some((m, xmit_base)) = s.vmac {
                let _ = writeln!(
                    out,
                    "  use_vmac: {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} answers for them{}",
                    m[0],
                    m[1],
                    m[2],
                    m[3],
                    m[4],
                    m[5],
                    if xmit_base {
                        "; adverts from the interface's MAC (vmac_xmit_base)"
                    } else {
                        " and sends the adverts"
                    }
                );
            }
            if let Some((addr, prio)) = s.master {
                let _ = writeln!(out, "  master: {addr} (priority {prio})");
            }
            if !s.faults.is_empty() {
                let _ = writeln!(out, "  fault: {}", s.faults.join(", "));
            }
            let _ = writeln!(
                out,
                "  adverts sent {} (priority 0: {}), received {} (priority 0: {}); became master {}, released master {}; gratuitous ARPs and unsolicited NAs {}",
                s.adverts_sent,
                s.priority_zero_sent,
                s.adverts_received,
                s.priority_zero_received,
                s.became_master,
                s.released_master,
                s.garps_sent
            );
            let _ = writeln!(
                out,
                "  dropped adverts: length {}, ttl {}, version {}, type {}, authentication {} (invalid type {}, type mismatch {}, failure {}), checksum {}, interval {}, not a unicast peer {}, another address list {}",
                s.bad_length,
                s.bad_ttl,
                s.bad_version,
                s.bad_type,
                s.auth_invalid_type + s.auth_type_mismatch + s.auth_failure,
                s.auth_invalid_type,
                s.auth_type_mismatch,
                s.auth_failure,
                s.bad_checksum,
                s.bad_interval,
                s.bad_source,
                s.address_mismatch
            );
        }
        if rows.is_empty() {
            out.push_str("no VRRP instances\n");
        }
        out
    }
}

impl Appliance {
    /// The sync daemons this appliance runs (the daemon sets them at start).
    pub fn set_sync(&self, daemons: Arc<crate::sync::SyncDaemons>) {
        *self.sync.lock() = Some(daemons);
    }

    pub fn sync_daemons(&self) -> Option<Arc<crate::sync::SyncDaemons>> {
        self.sync.lock().clone()
    }

    /// `--start-daemon`: refused as the kernel refuses it next to a mixed-family service.
    pub fn start_sync(
        &self,
        role: crate::sync::Role,
        settings: crate::sync::DaemonSettings,
    ) -> Reply {
        let Some(d) = self.sync_daemons() else {
            return Reply::fail(1, "no connection sync here (forward = \"lb\" only)");
        };
        let _one_at_a_time = self.changing.lock();
        if self
            .director
            .lock()
            .services
            .iter()
            .any(|s| s.has_mixed_family())
        {
            return Reply::fail(REFUSED, crate::director::NOT_UNICAST);
        }
        match d.start(role, settings) {
            Ok(()) => {
                self.note_sync_roles(&d);
                Reply::ok("")
            }
            Err(e) => Reply::fail(REFUSED, e),
        }
    }

    /// The daemons' roles into the model and the workers' snapshot (IPVS's backup_only
    /// follows a backup daemon). The caller holds `changing`.
    fn note_sync_roles(&self, d: &crate::sync::SyncDaemons) {
        use crate::sync::Role;
        let mut next = self.director.lock().clone();
        next.sync_running = d.running(Role::Master) || d.running(Role::Backup);
        next.sync_backup = d.running(Role::Backup);
        self.commit(next);
    }

    pub fn stop_sync(&self, role: crate::sync::Role) -> Reply {
        let Some(d) = self.sync_daemons() else {
            return Reply::fail(REFUSED, "No daemon is running");
        };
        let _one_at_a_time = self.changing.lock();
        match d.stop(role) {
            Ok(()) => {
                self.note_sync_roles(&d);
                Reply::ok("")
            }
            Err(e) => Reply::fail(REFUSED, e),
        }
    }

    /// keepalived's `lvs_sync_daemon IF INSTANCE [id N]`: a master sync daemon while the
    /// instance is MASTER, a backup one otherwise (None: no daemon follows VRRP).
    pub fn follow_vrrp_with_sync(self: &Arc<Self>, conf: Option<SyncDaemonConf>) {
        let Some(conf) = conf else {
            *self.vrrp_hook.lock() = None;
            return;
        };
        let app = Arc::downgrade(self);
        self.set_vrrp_hook(Arc::new(move |instance, state| {
            if let (Some(app), true) = (app.upgrade(), instance == conf.instance) {
                app.sync_follow(&conf, state);
            }
        }));
    }

    /// The sync daemons as `conf`'s instance in `state` wants them.
    fn sync_follow(&self, conf: &SyncDaemonConf, state: State) {
        use crate::sync::Role;
        let Some(d) = self.sync_daemons() else {
            return;
        };
        let (stop, start) = match state {
            State::Master => (Role::Backup, Some(Role::Master)),
            State::Stop => (Role::Master, None),
            _ => (Role::Master, Some(Role::Backup)),
        };
        if d.running(stop) {
            self.stop_sync(stop);
        }
        match start {
            Some(role) if !d.running(role) => {
                let r = self.start_sync(role, conf.settings.clone());
                if r.status != 0 {
                    eprintln!("rvs: sync daemon: {}", r.err.trim_end());
                }
            }
            Some(_) => {}
            None => {
                for role in [Role::Master, Role::Backup] {
                    if d.running(role) {
                        self.stop_sync(role);
                    }
                }
            }
        }
        println!(
            "rvs: sync daemon follows {}: {}",
            conf.instance,
            d.listing().trim_end()
        );
    }

    /// A reload changed lvs_sync_daemon: the daemons the old one ran stop, the new one's
    /// follow its instance's state now (a reload that keeps the instance makes no
    /// transition to start them). Returns the report's line.
    pub(super) fn resync(
        self: &Arc<Self>,
        old: Option<&SyncDaemonConf>,
        new: Option<SyncDaemonConf>,
    ) -> String {
        use crate::sync::Role;
        if let (Some(_), Some(d)) = (old, self.sync_daemons()) {
            for role in [Role::Master, Role::Backup] {
                if d.running(role) {
                    self.stop_sync(role);
                }
            }
        }
        self.follow_vrrp_with_sync(new.clone());
        let Some(conf) = new else {
            return "lvs_sync_daemon: removed, its daemons stopped".into();
        };
        let state = self
            .vrrp
            .lock()
            .clone()
            .and_then(|s| {
                s.lock()
                    .iter()
                    .find(|i| i.name == conf.instance)
                    .map(|i| i.state.clone())
            })
            .map_or(State::Backup, |s| {
                if s == State::Master.name() {
                    State::Master
                } else {
                    State::Backup
                }
            });
        self.sync_follow(&conf, state);
        format!(
            "lvs_sync_daemon: follows {} (now {}): {}",
            conf.instance,
            state.name(),
            self.sync_listing().trim_end()
        )
    }

    pub(super) fn sync_listing(&self) -> String {
        self.sync_daemons().map(|d| d.listing()).unwrap_or_default()
    }

    pub(super) fn show_sync(&self) -> String {
        let Some(d) = self.sync_daemons() else {
            return "no connection sync here (forward = \"lb\" only)\n".into();
        };
        let mut out = d.show();
        if self.cell.load().director_paused {
            out.push_str(
                "backup_only: the director is paused while the backup daemon runs (VIP traffic goes to the host)\n",
            );
        }
        out
    }
}
