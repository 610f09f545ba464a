//! The daemon's configuration file (TOML).
//!
//! Parsing is in two steps: serde reads the file into the raw sections (unknown fields and
//! wrong types are rejected there), then [`Config::from_raw`] checks what serde cannot
//! (names, references, lcores, queues) and builds the validated model. Every error names
//! the file, the line and the field. One file per section: `eal`, `ports`, `workers`, `lb`
//! (services, routes, neighbours, marks); `source` turns spans into lines and fields.

use rvs_core::sched::CacheExpiration;
use rvs_core::ForwardMode;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod announce;
mod eal;
pub mod lb;
mod ports;
pub(crate) use ports::parse_hex;
mod source;
mod vrrp;
mod workers;
use announce::*;
pub use announce::{AnnounceConfig, BgpPeer, RoutingDaemon, MAIN_TABLE_PROTO};

use eal::*;
pub use eal::{parse_lcore_list, EalConfig, Hugepages, LOG_LEVELS};
use ports::*;
pub use ports::{
    KernelDevice, KernelSocket, PortConfig, AF_XDP_MAX_MTU, DEFAULT_RSS_FIELDS, RSS_FIELDS,
    SERVER_SIDE_RSS_FIELDS,
};
pub use source::{ConfigError, Source};
pub use workers::WorkerConfig;
use workers::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    eal: RawEal,
    #[serde(default)]
    dataplane: RawDataplane,
    #[serde(default, rename = "port")]
    ports: Vec<RawPort>,
    #[serde(default, rename = "worker")]
    workers: Vec<RawWorker>,
    #[serde(default, rename = "service")]
    services: Vec<lb::RawService>,
    #[serde(default, rename = "route")]
    routes: Vec<lb::RawRoute>,
    #[serde(default, rename = "neighbour")]
    neighbours: Vec<lb::RawNeighbour>,
    #[serde(default, rename = "fwmark")]
    fwmarks: Vec<lb::RawFwmark>,
    #[serde(default, rename = "vip")]
    vips: Vec<lb::RawVip>,
    #[serde(default, rename = "outgoing")]
    outgoing: Vec<lb::RawOutgoing>,
    #[serde(default, rename = "snat")]
    snat: Vec<lb::RawSnat>,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    metrics: RawMetrics,
    announce: Option<RawAnnounce>,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default, rename = "vrrp_instance")]
    vrrp_instances: Vec<toml::Table>,
    #[serde(default, rename = "vrrp_script")]
    vrrp_scripts: Vec<toml::Table>,
    #[serde(default, rename = "vrrp_track_process")]
    vrrp_processes: Vec<toml::Table>,
    #[serde(default, rename = "vrrp_sync_group")]
    vrrp_sync_groups: Vec<toml::Table>,
    #[serde(default, rename = "garp_group")]
    garp_groups: Vec<toml::Table>,
    #[serde(default, rename = "bfd_instance")]
    bfd_instances: Vec<toml::Table>,
    #[serde(default, rename = "rule")]
    rules: Vec<toml::Table>,
    #[serde(default)]
    vrrp: Option<toml::Table>,
    mail: Option<toml::Table>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<String>,
    rules: Option<Spanned<String>>,
}

/// `[log]`: level, where to, how, and the per-event rate limit.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    syslog_socket: Option<String>,
    format: Option<Spanned<String>>,
    rate_limit: Option<u32>,
}

/// `[metrics]`: where the Prometheus endpoint listens (off when absent).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

/// `ipvsadm --set tcp tcpfin udp`; 0 or absent keeps the default.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    tcp: Option<Spanned<u32>>,
    tcpfin: Option<Spanned<u32>>,
    udp: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataplane {
    #[serde(default = "default_forward")]
    forward: Spanned<String>,
    #[serde(default)]
    mbufs: Option<Spanned<u32>>,
    #[serde(default = "default_mbuf_cache")]
    mbuf_cache: u32,
    /// Connection-table entries per worker (connections and persistence templates).
    #[serde(default)]
    connections: Option<Spanned<u32>>,
    /// Most VIP:port entries and real servers the running daemon can hold.
    #[serde(default)]
    services: Option<Spanned<u32>>,
    #[serde(default)]
    servers: Option<Spanned<u32>>,
    /// Adaptive polling bound (microseconds); 0 keeps workers polling always.
    #[serde(default = "default_idle_sleep")]
    idle_sleep_max_us: u32,
    /// Workers count TSC cycles per stage (rx, steer, engine, tx), shown by `show worker`.
    #[serde(default)]
    stage_cycles: bool,
    /// The SYN-flood defence: the share of the table (percent) embryonic TCP connections
    /// may hold, and the most from one client address (0: no limit).
    #[serde(default)]
    syn_share: Option<Spanned<u32>>,
    #[serde(default)]
    syn_per_source: u32,
    #[serde(default)]
    udp_per_source: u32,
    /// Route traffic for neither a VIP nor the appliance between the ports (the real
    /// servers' gateway), as Linux's net.ipv4.ip_forward; off by default.
    #[serde(default)]
    ip_forward: bool,
    /// IPVS's net.ipv4.vs.sloppy_tcp: any TCP segment but a RST of an unknown flow opens a
    /// connection (not only a SYN).
    #[serde(default)]
    sloppy_tcp: bool,
    /// IPVS's net.ipv4.vs.sloppy_sctp: any SCTP packet but an ABORT of an unknown flow
    /// opens an association (not only an INIT).
    #[serde(default)]
    sloppy_sctp: bool,
    /// IPVS's net.ipv4.vs.expire_nodest_conn: a packet of a connection whose server was
    /// deleted ends it and is scheduled anew (else dropped until the entry times out).
    #[serde(default)]
    expire_nodest_conn: bool,
    /// IPVS's net.ipv4.vs.expire_quiescent_template: a persistence template whose server
    /// has weight 0 is no longer followed.
    #[serde(default)]
    expire_quiescent_template: bool,
    /// IPVS's net.ipv4.vs.conn_reuse_mode (default 1): how a new connection on a finished
    /// one's ports is treated.
    #[serde(default = "default_conn_reuse_mode")]
    conn_reuse_mode: u8,
    /// IPVS's net.ipv4.vs.pmtu_disc (default on): off, an IPv4 datagram with DF for a
    /// tunnel server over the MTU is fragmented in its outer header (which has no DF)
    /// rather than answered with "fragmentation needed".
    #[serde(default = "ports::yes")]
    pmtu_disc: bool,
    /// IPVS's net.ipv4.vs.nat_icmp_send: a NAT real server's packet that belongs to no
    /// connection is answered with "port unreachable" (not routed).
    #[serde(default)]
    nat_icmp_send: bool,
    /// IPVS's net.ipv4.vs.schedule_icmp: an ICMP error about a reply of a flow no
    /// connection holds (one another node behind ECMP balanced) schedules that flow.
    #[serde(default)]
    schedule_icmp: bool,
    /// IPVS's net.ipv4.vs.cache_bypass: a firewall-mark service's new connection with no
    /// server available goes on to its own destination (a transparent cache's origin).
    #[serde(default)]
    cache_bypass: bool,
    /// IPVS's net.ipv4.vs.run_estimation (default on): off, the rates `--rate` shows
    /// stay as they were.
    #[serde(default = "ports::yes")]
    run_estimation: bool,
    /// IPVS's net.ipv4.vs.secure_tcp (0 off; 1 on while connection memory is short, 2
    /// the same, on now; 3 always) and amemthresh (pages of connection memory left below
    /// which it is short, default 1024).
    secure_tcp: Option<Spanned<u8>>,
    amemthresh: Option<Spanned<u32>>,
    /// IPVS's drop_entry and drop_packet (secure_tcp's modes) and am_droprate (drop_packet's
    /// rate at 3: one in this many new connections dropped, default 10, 0 none).
    drop_entry: Option<Spanned<u8>>,
    drop_packet: Option<Spanned<u8>>,
    am_droprate: Option<Spanned<u32>>,
    /// IPVS's net.ipv4.vs.sync_persist_mode: a persistent service's connections are not
    /// synced, only its templates.
    #[serde(default)]
    sync_persist_mode: bool,
    /// IPVS's net.ipv4.vs.sync_refresh_period (seconds, 0 unless set): a master sends a
    /// connection again at most this long after it last did.
    #[serde(default)]
    sync_refresh_period: Option<Spanned<u32>>,
    /// IPVS's net.ipv4.vs.lblc_expiration and lblcr_expiration (seconds, 24 h unless
    /// set): how long an lblc entry or an lblcr set lives unused (and an lblcr set
    /// unchanged before it sheds a member).
    lblc_expiration: Option<Spanned<u32>>,
    lblcr_expiration: Option<Spanned<u32>>,
    /// IPVS's net.ipv4.vs.backup_only: while a backup sync daemon runs, the VIPs'
    /// traffic is the host's, not balanced.
    #[serde(default)]
    backup_only: bool,
    /// One of several load balancers behind ECMP: sloppy TCP, and each service's servers
    /// kept in one order (by address and port) whatever order they came in, so that every
    /// node's mh table is the same and picks the same server for a flow.
    #[serde(default)]
    ecmp: bool,
    /// Room in the connection tables for full-NAT and SNAT entries (on by itself when the
    /// file has a full-NAT service or an SNAT rule; set it to add them at run time).
    #[serde(default)]
    full_nat: bool,
    /// Ports whose NAT connections the FTP helper watches (IPVS's `modprobe ip_vs_ftp
    /// ports=21`): the passive reply rewritten to the VIP, data connections expected.
    #[serde(default)]
    ftp_ports: Option<Spanned<Vec<u16>>>,
}

/// `[dataplane] ftp_ports`: at most eight distinct ports, none 0.
fn validate_ftp_ports(
    source: &Source,
    ports: Option<&Spanned<Vec<u16>>>,
) -> Result<[u16; rvs_core::engine::FTP_PORTS_MAX], ConfigError> {
    let mut out = [0u16; rvs_core::engine::FTP_PORTS_MAX];
    let Some(ports) = ports else {
        return Ok(out);
    };
    let list = ports.get_ref();
    let field = "dataplane.ftp_ports";
    if list.len() > out.len() {
        return Err(source.error(ports.span(), field, format!("at most {} ports", out.len())));
    }
    for (i, &p) in list.iter().enumerate() {
        if p == 0 {
            return Err(source.error(ports.span(), field, "port 0 is no FTP port"));
        }
        if list[..i].contains(&p) {
            return Err(source.error(ports.span(), field, format!("port {p} is named twice")));
        }
        out[i] = p;
    }
    Ok(out)
}

/// IPVS's amemthresh: its default and the most rvs takes (pages of 4 KiB).
pub const DEFAULT_AMEMTHRESH: u32 = 1024;
pub const MAX_AMEMTHRESH: u32 = 1 << 24;
/// IPVS's am_droprate default.
pub const DEFAULT_AM_DROPRATE: u32 = 10;

fn default_conn_reuse_mode() -> u8 {
    1
}

fn default_idle_sleep() -> u32 {
    100
}

impl Default for RawDataplane {
    fn default() -> Self {
        RawDataplane {
            forward: default_forward(),
            mbufs: None,
            mbuf_cache: default_mbuf_cache(),
            connections: None,
            idle_sleep_max_us: default_idle_sleep(),
            stage_cycles: false,
            syn_share: None,
            syn_per_source: 0,
            udp_per_source: 0,
            ip_forward: false,
            sloppy_tcp: false,
            sloppy_sctp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: default_conn_reuse_mode(),
            pmtu_disc: true,
            nat_icmp_send: false,
            schedule_icmp: false,
            cache_bypass: false,
            run_estimation: true,
            secure_tcp: None,
            amemthresh: None,
            drop_entry: None,
            drop_packet: None,
            am_droprate: None,
            sync_persist_mode: false,
            sync_refresh_period: None,
            lblc_expiration: None,
            lblcr_expiration: None,
            backup_only: false,
            ecmp: false,
            full_nat: false,
            ftp_ports: None,
            services: None,
            servers: None,
        }
    }
}

fn default_forward() -> Spanned<String> {
    Spanned::new(0..0, "io".into())
}

fn default_mbuf_cache() -> u32 {
    256
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    pub eal: EalConfig,
    pub forward: ForwardMode,
    /// Mbufs in the pool; None sizes it from the ports and workers.
    pub mbufs: Option<u32>,
    pub mbuf_cache: u32,
    pub ports: Vec<PortConfig>,
    pub workers: Vec<WorkerConfig>,
    /// Services, routes and neighbours (forward = "lb").
    pub lb: lb::LbConfig,
    /// Connection-table entries per worker.
    pub connections: usize,
    /// Adaptive polling: an idle worker's longest sleep (microseconds; 0 never sleeps).
    pub idle_sleep_max_us: u32,
    /// Workers count cycles per stage of a pass.
    pub stage_cycles: bool,
    /// The flood defence (`[dataplane] syn_share`, `syn_per_source`, `udp_per_source`).
    pub syn_share: u8,
    pub syn_per_source: u32,
    pub udp_per_source: u32,
    /// Room for full-NAT and SNAT entries in the connection tables.
    pub full_nat: bool,
    /// `[dataplane] ftp_ports`: the FTP helper's ports (0: unused), read at start.
    pub ftp_ports: [u16; rvs_core::engine::FTP_PORTS_MAX],
    /// Capacity of the live configuration: VIP:port entries and real servers.
    pub limits: crate::director::Limits,
    /// The control socket's path: `[control] socket`, else `RVS_SOCKET`, else the default.
    pub socket: PathBuf,
    /// `[metrics] listen`: the Prometheus endpoint's address (None: no endpoint).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[announce]`: VIPs for a routing daemon to announce (scale-out behind ECMP).
    pub announce: Option<AnnounceConfig>,
    /// `[log]`.
    pub log: crate::log::LogConfig,
    /// An ipvsadm rules file (`rvsadm -S` output) applied after the TOML's services.
    pub rules: Option<(PathBuf, String)>,
    /// `ipvsadm --set` values (0 = default).
    pub timeouts: (u32, u32, u32),
    /// VRRP instances, scripts and sync groups (`[[vrrp_instance]]`...).
    pub vrrp: crate::vrrp::VrrpConf,
}

/// Where `rvs` and `rvsadm` meet unless told otherwise (`[control] socket`, `RVS_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvs.sock";

impl Config {
    /// The starting model: the TOML's services, then its ipvsadm rules file, and
    /// timeouts, on data ports `ports` (errors name the file and field).
    pub fn director(
        &self,
        ports: Vec<rvs_core::engine::PortInfo>,
    ) -> Result<crate::director::Director, ConfigError> {
        let loads = std::sync::Arc::new(
            (0..self.limits.dests)
                .map(|_| rvs_core::sched::DestLoad::default())
                .collect(),
        );
        let error = |field: &str, message: String| ConfigError {
            file: self.source.file.clone(),
            line: None,
            field: field.into(),
            message,
        };
        let mut d = self
            .lb
            .director(self.limits, loads, ports)
            .map_err(|m| error("service", m))?;
        d.full_nat_room = self.full_nat;
        let (tcp, tcpfin, udp) = self.timeouts;
        d.timeouts.set(tcp, tcpfin, udp);
        if let Some((path, text)) = &self.rules {
            let mut cmds = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if let Ok(Some(c)) = crate::ipvsadm::parse_line(line) {
                    cmds.push((format!("line {}", n + 1), c));
                }
            }
            d.apply_all(&cmds)
                .map_err(|m| error("control.rules", format!("{}: {m}", path.display())))?;
        }
        Ok(d)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_cores(path, None)
    }

    /// As [`Config::load`], with testpmd's `--nb-cores=N` when given: the first `N` worker
    /// lcores of `eal.lcores` forward, the queues spread over them as over all of them
    /// without it (the others stay idle, as testpmd's); with `[[worker]]` sections, only
    /// their own count is taken.
    pub fn load_with_cores(path: &Path, nb_cores: Option<usize>) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            field: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse_with_cores(Source { file, text }, nb_cores)
    }

    /// Parses and validates config text.
    pub fn parse(source: Source) -> Result<Config, ConfigError> {
        Config::parse_with_cores(source, None)
    }

    /// As [`Config::parse`], with `--nb-cores` (see [`Config::load_with_cores`]).
    pub fn parse_with_cores(
        source: Source,
        nb_cores: Option<usize>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(&source.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ConfigError {
                file: source.file.clone(),
                line: e.span().map(|s| source.line_of(s.start)),
                field: source.field_at(span.start),
                message: e.message().trim().to_string(),
            }
        })?;
        Config::from_raw(source, raw, nb_cores)
    }

    fn from_raw(
        source: Source,
        raw: RawConfig,
        nb_cores: Option<usize>,
    ) -> Result<Config, ConfigError> {
        let lcores_span = raw.eal.lcores.as_ref().map_or(0..0, |l| l.span());
        let eal = validate_eal(&source, raw.eal)?;
        let worker_lcores = eal.lcores.len().saturating_sub(1);
        let forwarding = match nb_cores {
            None => worker_lcores,
            Some(n) => check_nb_cores(&source, lcores_span, &raw.workers, n, worker_lcores)?,
        };
        let forward_given = raw.dataplane.forward.span() != (0..0);
        let wants_lb = !raw.services.is_empty()
            || !raw.fwmarks.is_empty()
            || raw.control.rules.is_some()
            || raw.ports.iter().any(|p| !p.addresses.is_empty());
        let forward = if !forward_given && wants_lb {
            ForwardMode::Lb
        } else {
            raw.dataplane
                .forward
                .get_ref()
                .parse::<ForwardMode>()
                .map_err(|m| source.error(raw.dataplane.forward.span(), "dataplane.forward", m))?
        };
        if let Some(m) = &raw.dataplane.mbufs {
            if *m.get_ref() < 1024 {
                return Err(source.error(m.span(), "dataplane.mbufs", "at least 1024 mbufs"));
            }
        }
        if raw.ports.is_empty() {
            return Err(ConfigError {
                file: source.file.clone(),
                line: None,
                field: "port".into(),
                message: "no [[port]] defined: rvs needs at least one data port".into(),
            });
        }
        let ports = validate_ports(&source, &raw.ports, forwarding as u16)?;
        let workers =
            validate_workers(&source, (&eal, forwarding), &ports, &raw.ports, raw.workers)?;
        check_af_xdp_pairs(&source, &raw.ports, &ports, workers.len())?;
        let announce = match &raw.announce {
            Some(a) => Some(validate_announce(&source, a, &ports)?),
            None => None,
        };
        let names: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
        let lb = lb::LbConfig::validate(
            &source,
            &raw.services,
            &raw.routes,
            &raw.neighbours,
            &raw.fwmarks,
            &raw.vips,
            &names,
        )?;
        let mut lb = lb;
        lb.member_ports = lb::validate_outgoing(&source, &raw.outgoing)?;
        lb.snat = lb::validate_snat(&source, &raw.snat, &names)?;
        lb.ip_forward = raw.dataplane.ip_forward;
        lb.sloppy_tcp = raw.dataplane.sloppy_tcp || raw.dataplane.ecmp;
        lb.sloppy_sctp = raw.dataplane.sloppy_sctp || raw.dataplane.ecmp;
        lb.expire_nodest_conn = raw.dataplane.expire_nodest_conn;
        lb.expire_quiescent_template = raw.dataplane.expire_quiescent_template;
        lb.conn_reuse_mode = raw.dataplane.conn_reuse_mode;
        lb.pmtu_disc_off = !raw.dataplane.pmtu_disc;
        lb.nat_icmp_send = raw.dataplane.nat_icmp_send;
        lb.schedule_icmp = raw.dataplane.schedule_icmp || raw.dataplane.ecmp;
        lb.cache_bypass = raw.dataplane.cache_bypass;
        lb.run_estimation_off = !raw.dataplane.run_estimation;
        let defence = |field: &str, value: &Option<Spanned<u8>>| match value {
            Some(v) if *v.get_ref() > 3 => Err(source.error(
                v.span(),
                field,
                "0 (off), 1 or 2 (on while connection memory is short) or 3 (always)",
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(0),
        };
        lb.secure_tcp = defence("dataplane.secure_tcp", &raw.dataplane.secure_tcp)?;
        lb.drop_entry = defence("dataplane.drop_entry", &raw.dataplane.drop_entry)?;
        lb.drop_packet = defence("dataplane.drop_packet", &raw.dataplane.drop_packet)?;
        lb.am_droprate = match &raw.dataplane.am_droprate {
            Some(v) if *v.get_ref() > i32::MAX as u32 => {
                return Err(source.error(
                    v.span(),
                    "dataplane.am_droprate",
                    "one new connection in N dropped (0: none), N at most 2147483647",
                ))
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_AM_DROPRATE,
        };
        lb.amemthresh = match &raw.dataplane.amemthresh {
            Some(v) if *v.get_ref() == 0 || *v.get_ref() > MAX_AMEMTHRESH => {
                return Err(source.error(
                    v.span(),
                    "dataplane.amemthresh",
                    format!("pages, between 1 and {MAX_AMEMTHRESH}"),
                ))
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_AMEMTHRESH,
        };
        lb.sync_persist_mode = raw.dataplane.sync_persist_mode;
        let expiration = |field: &str, value: &Option<Spanned<u32>>| match value {
            Some(v) if *v.get_ref() > CacheExpiration::MAX_S => Err(source.error(
                v.span(),
                field,
                format!("seconds, at most {}", CacheExpiration::MAX_S),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(CacheExpiration::DEFAULT_S),
        };
        lb.cache_expiration = CacheExpiration {
            lblc: expiration("dataplane.lblc_expiration", &raw.dataplane.lblc_expiration)?,
            lblcr: expiration(
                "dataplane.lblcr_expiration",
                &raw.dataplane.lblcr_expiration,
            )?,
        };
        let refresh = &raw.dataplane.sync_refresh_period;
        lb.sync_refresh_period = match refresh {
            Some(_) => expiration("dataplane.sync_refresh_period", refresh)?,
            None => 0,
        };
        lb.backup_only = raw.dataplane.backup_only;
        lb.ecmp = raw.dataplane.ecmp;
        let full_nat = raw.dataplane.full_nat || !lb.full_nat.is_empty() || !lb.snat.is_empty();
        let ftp_ports = validate_ftp_ports(&source, raw.dataplane.ftp_ports.as_ref())?;
        let capacity = |v: &Option<Spanned<u32>>, field: &str, default: u32, max: u32| match v {
            Some(c) if *c.get_ref() == 0 || *c.get_ref() > max => {
                Err(source.error(c.span(), field, format!("between 1 and {max}")))
            }
            Some(c) => Ok(*c.get_ref() as usize),
            None => Ok(default as usize),
        };
        // ipvsadm --set's bounds: 0 (the default) to 31 days.
        let timeout = |t: &Option<Spanned<u32>>, field: &str| -> Result<u32, ConfigError> {
            match t {
                Some(v) if *v.get_ref() > crate::ipvsadm::MAX_TIMEOUT => Err(source.error(
                    v.span(),
                    field,
                    format!(
                        "{}: at most {} seconds (31 days)",
                        v.get_ref(),
                        crate::ipvsadm::MAX_TIMEOUT
                    ),
                )),
                Some(v) => Ok(*v.get_ref()),
                None => Ok(0),
            }
        };
        let timeouts = (
            timeout(&raw.timeouts.tcp, "timeouts.tcp")?,
            timeout(&raw.timeouts.tcpfin, "timeouts.tcpfin")?,
            timeout(&raw.timeouts.udp, "timeouts.udp")?,
        );
        let limits = crate::director::Limits {
            entries: capacity(&raw.dataplane.services, "dataplane.services", 256, 65535)?,
            dests: capacity(&raw.dataplane.servers, "dataplane.servers", 4096, 1 << 20)?,
        };
        if lb.services.len() > limits.entries {
            return Err(source.error(
                raw.dataplane
                    .services
                    .as_ref()
                    .map(|s| s.span())
                    .unwrap_or(0..0),
                "dataplane.services",
                format!("{} services are configured", lb.services.len()),
            ));
        }
        if lb.server_count() > limits.dests {
            return Err(source.error(
                raw.dataplane
                    .servers
                    .as_ref()
                    .map(|s| s.span())
                    .unwrap_or(0..0),
                "dataplane.servers",
                format!("{} real servers are configured", lb.server_count()),
            ));
        }
        let base = Path::new(&source.file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let metrics_listen = match &raw.metrics.listen {
            Some(l) => Some(l.get_ref().parse::<std::net::SocketAddr>().map_err(|_| {
                source.error(
                    l.span(),
                    "metrics.listen",
                    format!(
                        "{:?} is not an address and port (such as \"127.0.0.1:9108\")",
                        l.get_ref()
                    ),
                )
            })?),
            None => None,
        };
        let log = {
            use crate::log::{Format, Level, LogConfig, Target};
            let mut l = LogConfig::default();
            if let Some(v) = &raw.log.level {
                l.level = Level::parse(v.get_ref()).ok_or_else(|| {
                    source.error(
                        v.span(),
                        "log.level",
                        format!("{:?}: one of {}", v.get_ref(), Level::NAMES.join(", ")),
                    )
                })?;
            }
            if let Some(v) = &raw.log.target {
                l.target = match v.get_ref().as_str() {
                    "stderr" | "terminal" => Target::Terminal,
                    "syslog" | "journald" => Target::Syslog(
                        raw.log
                            .syslog_socket
                            .clone()
                            .unwrap_or_else(|| "/dev/log".into())
                            .into(),
                    ),
                    other => {
                        return Err(source.error(
                            v.span(),
                            "log.target",
                            format!("{other:?}: \"stderr\" or \"syslog\""),
                        ))
                    }
                };
            }
            if let Some(v) = &raw.log.format {
                l.format = match v.get_ref().as_str() {
                    "text" => Format::Text,
                    "logfmt" => Format::Logfmt,
                    other => {
                        return Err(source.error(
                            v.span(),
                            "log.format",
                            format!("{other:?}: \"text\" or \"logfmt\""),
                        ))
                    }
                };
            }
            if let Some(r) = raw.log.rate_limit {
                l.rate_limit = r;
            }
            l
        };
        let rules = match &raw.control.rules {
            Some(r) => {
                let path = base.join(r.get_ref());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    source.error(
                        r.span(),
                        "control.rules",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                for (n, line) in text.lines().enumerate() {
                    match crate::ipvsadm::parse_line(line) {
                        Ok(Some(c)) if !c.is_rule() => {
                            return Err(source.error(
                                r.span(),
                                "control.rules",
                                format!("{}:{}: not a rule", path.display(), n + 1),
                            ))
                        }
                        Err(m) => {
                            return Err(source.error(
                                r.span(),
                                "control.rules",
                                format!("{}:{}: {m}", path.display(), n + 1),
                            ))
                        }
                        _ => {}
                    }
                }
                Some((path, text))
            }
            None => None,
        };
        let vrrp = vrrp::validate(
            &source,
            &vrrp::RawVrrp {
                instances: raw.vrrp_instances,
                scripts: raw.vrrp_scripts,
                processes: raw.vrrp_processes,
                groups: raw.vrrp_sync_groups,
                garp_groups: raw.garp_groups,
                bfd_instances: raw.bfd_instances,
                rules: raw.rules,
                globals: raw.vrrp,
                mail: raw.mail,
            },
        )?;
        let connections = match &raw.dataplane.connections {
            Some(c) if *c.get_ref() < 16 => {
                return Err(source.error(c.span(), "dataplane.connections", "at least 16"));
            }
            Some(c) => *c.get_ref() as usize,
            None => 1 << 20,
        };
        let syn_share = match &raw.dataplane.syn_share {
            Some(s) if !(1..=100).contains(s.get_ref()) => {
                return Err(source.error(
                    s.span(),
                    "dataplane.syn_share",
                    "a percentage of the connection table, 1 to 100",
                ));
            }
            Some(s) => *s.get_ref() as u8,
            None => 50,
        };
        if raw.dataplane.idle_sleep_max_us > 100_000 {
            return Err(ConfigError {
                file: source.file.clone(),
                line: None,
                field: "dataplane.idle_sleep_max_us".into(),
                message: "at most 100000 (0.1 s); 0 turns sleeping off".into(),
            });
        }
        Ok(Config {
            lb,
            connections,
            idle_sleep_max_us: raw.dataplane.idle_sleep_max_us,
            stage_cycles: raw.dataplane.stage_cycles,
            syn_share,
            syn_per_source: raw.dataplane.syn_per_source,
            udp_per_source: raw.dataplane.udp_per_source,
            full_nat,
            ftp_ports,
            limits,
            socket: raw
                .control
                .socket
                .map(PathBuf::from)
                .unwrap_or_else(crate::socket::client_path),
            metrics_listen,
            announce,
            log,
            rules,
            timeouts,
            vrrp,
            eal,
            forward,
            mbufs: raw.dataplane.mbufs.map(|m| m.into_inner()),
            mbuf_cache: raw.dataplane.mbuf_cache,
            ports,
            workers,
            source,
        })
    }

    /// An error about port `index`, found after validation (for instance by DPDK).
    pub fn port_error(&self, index: usize, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.source.file.clone(),
            line: Some(self.ports[index].line),
            field: format!("port[{index}].{field}"),
            message: message.into(),
        }
    }

    pub fn main_lcore(&self) -> u32 {
        self.eal.lcores[0]
    }
}

#[cfg(test)]
mod tests;
