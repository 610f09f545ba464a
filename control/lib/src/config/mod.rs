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
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            field: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(Source { file, text })
    }

    /// Parses and validates config text.
    pub fn parse(source: Source) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(&source.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ConfigError {
                file: source.file.clone(),
                line: e.span().map(|s| source.line_of(s.start)),
                field: source.field_at(span.start),
                message: e.message().trim().to_string(),
            }
        })?;
        Config::from_raw(source, raw)
    }

    fn from_raw(source: Source, raw: RawConfig) -> Result<Config, ConfigError> {
        let eal = validate_eal(&source, raw.eal)?;
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
        let worker_lcores = eal.lcores.len().saturating_sub(1) as u16;
        let ports = validate_ports(&source, &raw.ports, worker_lcores)?;
        let workers = validate_workers(&source, &eal, &ports, &raw.ports, raw.workers)?;
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Source {
            file: "t.toml".into(),
            text: text.into(),
        })
    }

    const TWO_PORTS: &str = r#"
[eal]
lcores = "0-2"
hugepages = false

[[port]]
name = "a"
device = "net_ring0"
rx_queues = 2

[[port]]
name = "b"
device = "net_ring1"
"#;

    /// A tunnel carries IPv4 to an IPv6 server (IPVS allows it, so does keepalived); any
    /// other method with a server of the other family is refused at the field.
    #[test]
    fn only_a_tun_server_may_be_of_the_other_family() {
        let service = |method: &str| {
            format!("{TWO_PORTS}\n[[service]]\nprotocol = \"udp\"\naddress = \"192.0.2.1\"\nport = 9001\n\n[[service.server]]\naddress = \"2001:db8::12\"\nmethod = \"{method}\"\n")
        };
        let c = parse(&service("tun")).unwrap();
        let loads = (0..c.limits.dests)
            .map(|_| rvs_core::sched::DestLoad::default())
            .collect();
        let d =
            c.lb.director(c.limits, std::sync::Arc::new(loads), Vec::new())
                .unwrap();
        assert!(d.services[0].has_mixed_family());
        for method in ["nat", "dr"] {
            let e = parse(&service(method)).unwrap_err();
            assert!(
                e.to_string().contains("service[0].server[0].address")
                    && e.to_string().contains("only a tun server's may"),
                "{e}"
            );
        }
    }

    /// IPVS's lblc_expiration and lblcr_expiration: seconds, 24 h unless set; past rvs's
    /// limit an error names the field and its line.
    #[test]
    fn lblc_and_lblcr_expiration_are_seconds_up_to_a_limit() {
        let lb = parse(&format!("[dataplane]\nlblc_expiration = 60\n{TWO_PORTS}"))
            .unwrap()
            .lb;
        assert_eq!(
            (lb.cache_expiration.lblc, lb.cache_expiration.lblcr),
            (60, 86_400)
        );
        let bad = format!("[dataplane]\nlblcr_expiration = 1000001\n{TWO_PORTS}");
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.field, "dataplane.lblcr_expiration", "{e}");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("at most 1000000"), "{e}");
    }

    /// IPVS's secure_tcp (0 to 3) and amemthresh (pages): bad values named with their line.
    #[test]
    fn secure_tcp_and_amemthresh_are_read_in_range() {
        let read = |dataplane: &str| parse(&format!("[dataplane]\n{dataplane}\n{TWO_PORTS}"));
        let lb = read("").unwrap().lb;
        assert_eq!((lb.secure_tcp, lb.amemthresh), (0, 1024));
        let lb = read("secure_tcp = 3\namemthresh = 2048").unwrap().lb;
        assert_eq!((lb.secure_tcp, lb.amemthresh), (3, 2048));
        let e = read("\nsecure_tcp = 4").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("dataplane.secure_tcp", Some(3)),
            "{e}"
        );
        let e = read("amemthresh = 0").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("dataplane.amemthresh", Some(2)),
            "{e}"
        );
        // drop_entry and drop_packet in the same modes; am_droprate at least 1.
        assert_eq!((lb.drop_entry, lb.drop_packet, lb.am_droprate), (0, 0, 10));
        let lb = read("drop_entry = 1\ndrop_packet = 3\nam_droprate = 5")
            .unwrap()
            .lb;
        assert_eq!((lb.drop_entry, lb.drop_packet, lb.am_droprate), (1, 3, 5));
        for (bad, field) in [
            ("drop_entry = 4", "dataplane.drop_entry"),
            ("drop_packet = 9", "dataplane.drop_packet"),
            ("am_droprate = 3000000000", "dataplane.am_droprate"),
        ] {
            let e = read(bad).unwrap_err();
            assert_eq!((e.field.as_str(), e.line), (field, Some(2)), "{e}");
        }
    }

    /// IPVS's sync_refresh_period: seconds, unset (0) unless given, up to the same limit.
    #[test]
    fn sync_refresh_period_is_seconds_up_to_a_limit() {
        let read = |dataplane: &str| parse(&format!("[dataplane]\n{dataplane}\n{TWO_PORTS}"));
        assert_eq!(read("").unwrap().lb.sync_refresh_period, 0);
        let lb = read("sync_refresh_period = 30").unwrap().lb;
        assert_eq!(lb.sync_refresh_period, 30);
        let e = read("\nsync_refresh_period = 1000001").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("dataplane.sync_refresh_period", Some(3)),
            "{e}"
        );
    }

    /// `ecmp` makes TCP and SCTP sloppy (a node takes over flows another node had) and
    /// schedules ICMP errors (one about a flow another node carries); `sloppy_sctp` alone
    /// only SCTP; `pmtu_disc` is on unless set off.
    #[test]
    fn ecmp_makes_tcp_and_sctp_sloppy_and_schedules_icmp() {
        let with = |dataplane: &str| {
            let lb = parse(&format!("[dataplane]\n{dataplane}\n{TWO_PORTS}"))
                .unwrap()
                .lb;
            (
                lb.sloppy_tcp,
                lb.sloppy_sctp,
                !lb.pmtu_disc_off,
                lb.schedule_icmp,
            )
        };
        assert_eq!(with(""), (false, false, true, false));
        assert_eq!(with("ecmp = true"), (true, true, true, true));
        assert_eq!(with("sloppy_sctp = true"), (false, true, true, false));
        assert_eq!(with("pmtu_disc = false"), (false, false, false, false));
        assert_eq!(with("schedule_icmp = true"), (false, false, true, true));
    }

    /// The TOML's VRRP instances are read as keepalived.conf's: a VMAC name an earlier
    /// instance took is ignored with keepalived's message.
    #[test]
    fn a_toml_instances_vmac_name_in_use_is_ignored() {
        let instance = |n: u8| {
            format!("[[vrrp_instance]]\nname = \"V{n}\"\ninterface = \"a\"\nvirtual_router_id = {n}\nuse_vmac = \"vm60\"\nvirtual_ipaddress = [\"10.0.0.{n}\"]\n")
        };
        let ports = TWO_PORTS.replace("rx_queues = 2\n", "rx_queues = 2\npromiscuous = true\n");
        let text = format!("{ports}{}{}", instance(60), instance(61));
        let vrrp = parse(&text).unwrap().vrrp;
        assert_eq!(vrrp.instances[0].vmac_name.as_deref(), Some("vm60"));
        assert!(vrrp.instances[0].vmac.is_some());
        assert!(vrrp.instances[1].vmac.is_some(), "the VMAC stays");
        assert_eq!(vrrp.instances[1].vmac_name, None, "its name does not");
        assert!(
            vrrp.warnings.len() == 1
                && vrrp.warnings[0]
                    .ends_with("(V61) VRRP instance V60 is already using vm60 - ignoring name"),
            "{:?}",
            vrrp.warnings
        );
    }

    /// A port hashes the end its traffic comes from unless told otherwise, so that both
    /// directions of a flow reach the queue of its owner.
    #[test]
    fn ports_hash_the_client_end() {
        let c =
            parse(&TWO_PORTS.replace("name = \"b\"", "name = \"b\"\nfaces = \"servers\"")).unwrap();
        assert_eq!(c.ports[0].rss_hash, DEFAULT_RSS_FIELDS.map(String::from));
        assert_eq!(
            c.ports[1].rss_hash,
            SERVER_SIDE_RSS_FIELDS.map(String::from)
        );
        let c =
            parse(&TWO_PORTS.replace("rx_queues = 2", "rss_hash = [\"ip\"]\nfaces = \"servers\""))
                .unwrap();
        assert_eq!(c.ports[0].rss_hash, ["ip"], "rss_hash says it all");
    }

    /// A tun server's GUE/GRE encapsulation and a service's SIP persistence in TOML.
    #[test]
    fn tunnels_and_the_sip_engine() {
        let c = parse(&format!(
            "{TWO_PORTS}[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.1\"\nport = 5060\npersistence = 60\npe = \"sip\"\n\
             [[service.server]]\naddress = \"10.1.0.1\"\nmethod = \"tun\"\ntunnel = \"gue\"\ntunnel_port = 6080\ntunnel_csum = \"csum\"\n"
        ))
        .unwrap();
        let (cmds, _) = c.lb.commands();
        let crate::ipvsadm::Command::AddService(svc) = &cmds[0] else {
            panic!()
        };
        assert_eq!(svc.pe.as_deref(), Some("sip"));
        let crate::ipvsadm::Command::AddServer(srv) = &cmds[1] else {
            panic!()
        };
        assert_eq!(
            srv.tunnel,
            rvs_core::Tunnel {
                kind: rvs_core::TunnelKind::Gue,
                port: 6080,
                csum: rvs_core::TunnelCsum::Csum
            }
        );
        for (bad, field) in [
            (
                "method = \"tun\"\ntunnel = \"gue\"",
                "service[0].server[0].tunnel_port",
            ),
            (
                "method = \"tun\"\ntunnel = \"vxlan\"",
                "service[0].server[0].tunnel",
            ),
            (
                "method = \"dr\"\ntunnel = \"gre\"",
                "service[0].server[0].tunnel",
            ),
        ] {
            let e = parse(&format!(
                "{TWO_PORTS}[[service]]\naddress = \"10.0.0.1\"\nport = 80\n[[service.server]]\naddress = \"10.1.0.1\"\n{bad}\n"
            ))
            .unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    /// An IPv4-mapped IPv6 address anywhere an address is configured is refused at its
    /// field, with the IPv4 form to write (no packet carries one: it would only alias).
    #[test]
    fn ipv4_mapped_addresses_are_refused_at_their_field() {
        let service = "[[service]]\naddress = \"10.0.0.1\"\nport = 80\n\
                       [[service.server]]\naddress = \"10.1.0.1\"\n";
        let text = format!("{TWO_PORTS}{service}");
        assert!(parse(&text).is_ok());
        let line_of =
            |t: &str, needle: &str| t[..t.find(needle).unwrap()].matches('\n').count() + 1;
        for (from, to, field) in [
            (
                "address = \"10.0.0.1\"",
                "address = \"::ffff:10.0.0.1\"",
                "service[0].address",
            ),
            (
                "address = \"10.1.0.1\"",
                "address = \"::ffff:10.1.0.1\"",
                "service[0].server[0].address",
            ),
            (
                "device = \"net_ring1\"",
                "device = \"net_ring1\"\naddresses = [\"::ffff:10.1.0.254/24\"]",
                "port[1].addresses",
            ),
        ] {
            let bad = text.replace(from, to);
            let e = parse(&bad).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert_eq!(e.line, Some(line_of(&bad, "::ffff:")), "{e}");
            assert!(
                e.message.contains("IPv4-mapped") && e.message.contains("write 10."),
                "{e}"
            );
        }
        let route = format!("{text}[[route]]\nprefix = \"::ffff:10.9.0.0/112\"\nport = \"b\"\n");
        assert_eq!(parse(&route).unwrap_err().field, "route[0].prefix");
    }

    /// `[[outgoing]]` member ranges, `[[vip]] unserved` and `ip_forward` reach the
    /// snapshot; bad values name the field and line.
    #[test]
    fn router_settings_reach_the_snapshot() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let c = parse(&format!(
            "{TWO_PORTS}[dataplane]\nip_forward = true\nexpire_nodest_conn = true\n\
             [[outgoing]]\nvip = \"10.0.0.1\"\nports = \"33000-33999\"\nmember = \"10.1.0.1\"\n\
             [[outgoing]]\nvip = \"10.0.0.1\"\nports = \"34000-34999\"\nmember = \"10.1.0.2\"\nmethod = \"nat\"\n\
             [[vip]]\naddress = \"10.0.0.9\"\nunserved = \"drop\"\n\
             [[snat]]\nsource = \"10.1.0.0/24\"\nout_port = \"b\"\nto_source = \"10.0.0.7\"\nports = \"20000-29999\"\n\
             [[service]]\naddress = \"10.0.0.1\"\nport = 80\nproxy_protocol = true\n[[service.server]]\naddress = \"10.1.0.5\"\n\
             [[fwmark]]\nmark = 5\nprotocol = \"any\"\naddress = \"10.3.0.0/16\"\nports = \"1000-1999\"\nsource = \"192.0.2.0/24\"\n\
             [[service]]\naddress = \"10.3.0.1\"\nport = 7\ngroup = 5\n[[service.server]]\naddress = \"10.1.0.6\"\n"
        ))
        .unwrap();
        assert!(c.full_nat, "a full-NAT service makes room for local ends");
        let snap = c.lb.snapshot(Vec::new());
        let rule = snap.snat[0];
        assert_eq!(
            (rule.out_port, rule.ports, rule.proto),
            (Some(1), (20000, 29999), None)
        );
        assert!(rule.matches(17, ip("10.1.0.3"), ip("192.0.2.1"), 1));
        assert!(!rule.matches(17, ip("10.2.0.3"), ip("192.0.2.1"), 1));
        assert!(snap.is_local_end(ip("10.0.0.7")));
        let marked = snap
            .service_for_packet(17, ip("192.0.2.9"), ip("10.3.44.1"), 1500)
            .unwrap();
        assert_eq!(marked.group, Some(5));
        assert!(snap
            .service_for_packet(17, ip("192.0.3.9"), ip("10.3.44.1"), 1500)
            .is_none());
        let fnat = snap.services[0].full_nat.as_ref().unwrap();
        assert!(fnat.proxy_protocol && !fnat.proxy_v1 && fnat.locals().is_empty());
        // The version by name; another value is refused at its field.
        let with = |v: &str| {
            parse(&format!(
                "{TWO_PORTS}[[service]]\naddress = \"10.0.0.1\"\nport = 25\nproxy_protocol = {v}\n[[service.server]]\naddress = \"10.1.0.5\"\n"
            ))
        };
        let v1 = with("\"v1\"").unwrap().lb.snapshot(Vec::new());
        let fnat = v1.services[0].full_nat.as_ref().unwrap();
        assert!(fnat.proxy_protocol && fnat.proxy_v1);
        let v2 = with("\"v2\"").unwrap().lb.snapshot(Vec::new());
        assert!(!v2.services[0].full_nat.as_ref().unwrap().proxy_v1);
        assert!(with("false").unwrap().lb.snapshot(Vec::new()).services[0]
            .full_nat
            .is_none());
        let e = with("\"v3\"").unwrap_err().to_string();
        assert!(
            e.contains("service[0].proxy_protocol") && e.contains("\"v3\""),
            "{e}"
        );
        assert!(snap.ip_forward);
        assert!(snap.expire_nodest_conn && !snap.expire_quiescent_template);
        assert!(snap.is_vip(ip("10.0.0.1")));
        let m = snap.member_for(6, ip("10.0.0.1"), 34500).unwrap();
        assert_eq!((m.member, m.nat), (ip("10.1.0.2"), true));
        assert_eq!(
            snap.member_for(6, ip("10.0.0.1"), 33000).unwrap().member,
            ip("10.1.0.1")
        );
        assert!(snap.member_for(17, ip("10.0.0.1"), 33000).is_none());
        assert!(snap.drops_unserved(ip("10.0.0.9")));
        assert!(!snap.drops_unserved(ip("10.0.0.1")));
        for (bad, field) in [
            ("[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"34000\"\nmember = \"10.1.0.1\"\n", "outgoing[0].ports"),
            ("[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"1-9\"\nmember = \"10.1.0.1\"\nmethod = \"tun\"\n", "outgoing[0].method"),
            ("[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"1-9\"\nmember = \"10.1.0.1\"\n[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"9-20\"\nmember = \"10.1.0.2\"\n", "outgoing[1].ports"),
            ("[[vip]]\naddress = \"10.0.0.9\"\nunserved = \"reject\"\n", "vip[0].unserved"),
            ("[[snat]]\nout_port = \"c\"\n", "snat[0].out_port"),
            ("[[fwmark]]\nmark = 1\naddress = \"10.0.0.0/8\"\nports = \"5-1\"\n", "fwmark[0].ports"),
            ("[[fwmark]]\nmark = 1\naddress = \"10.0.0.0/8\"\nsource = \"::/0\"\n", "fwmark[0].source"),
            ("[[snat]]\nports = \"9-1\"\n", "snat[0].ports"),
            ("[[snat]]\nsource = \"10.0.0.0/33\"\n", "snat[0].source"),
        ] {
            let e = parse(&format!("{TWO_PORTS}{bad}")).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.line.is_some(), "{e}");
        }
    }

    /// `[dataplane] ftp_ports`: the helper's ports; bad lists name the field and line.
    #[test]
    fn ftp_ports_are_read_and_checked() {
        let c = parse(TWO_PORTS).unwrap();
        assert_eq!(c.ftp_ports, [0; rvs_core::engine::FTP_PORTS_MAX]);
        let c = parse(&format!("{TWO_PORTS}[dataplane]\nftp_ports = [21, 2121]\n")).unwrap();
        assert_eq!(c.ftp_ports[..3], [21, 2121, 0]);
        for (bad, says) in [
            ("[21, 0]", "port 0"),
            ("[21, 21]", "named twice"),
            ("[1, 2, 3, 4, 5, 6, 7, 8, 9]", "at most 8"),
        ] {
            let e = parse(&format!("{TWO_PORTS}[dataplane]\nftp_ports = {bad}\n")).unwrap_err();
            assert_eq!(e.field, "dataplane.ftp_ports", "{e}");
            assert!(e.line.is_some() && e.to_string().contains(says), "{e}");
        }
    }

    /// The TOML VRRP sections mean what keepalived.conf's do; errors name the table.
    #[test]
    fn vrrp_sections_read_as_keepalived_reads_them() {
        let toml_text = format!(
            r#"{TWO_PORTS}
[vrrp]
version = 3
lvs_sync_daemon = "a VI_1 id 9"
garp_extra_if = "100 all"
startup_script = "/bin/true"
startup_script_timeout = 5

[mail]
smtp_server = "192.168.200.1 2525"
notification_email = ["ops@example.com", "noc@example.com"]
notification_email_from = "lvs@example.com"
smtp_connect_timeout = 10
router_id = "LVS_1"
smtp_alert_vrrp = true
no_email_faults = true
no_checker_emails = false

[[vrrp_script]]
name = "chk"
script = "/bin/nc -z 127.0.0.1 53"
interval = 2
weight = -20

[[vrrp_instance]]
name = "VI_1"
state = "MASTER"
interface = "a"
virtual_router_id = 5
priority = 150
advert_int = 1
preempt_delay = 10
virtual_ipaddress = ["10.2.1.5/24 dev a", "10.2.1.6"]
track_script = ["chk weight -30"]
track_bfd = ["gw weight 0"]
notify = ["/etc/keepalived/notify.sh", "root"]
virtual_rules = ["from 10.2.1.5 table 100 priority 100"]
smtp_alert = false

[[bfd_instance]]
name = "gw"
neighbor_ip = "10.2.1.1"
min_rx = 50
multiplier = 3
weight = [-20, "reverse"]

[[vrrp_sync_group]]
name = "G"
group = ["VI_1"]

[[garp_group]]
garp_interval = 0.1
interfaces = ["a", "b"]

[[rule]]
from = "10.9.0.0/16"
not = true
priority = 50
table = "main"
"#
        );
        let keepalived_text = r#"
global_defs {
    vrrp_version 3
    lvs_sync_daemon a VI_1 id 9
    vrrp_garp_extra_if 100 all
    startup_script /bin/true
    startup_script_timeout 5
    smtp_server 192.168.200.1 2525
    notification_email {
        ops@example.com
        noc@example.com
    }
    notification_email_from lvs@example.com
    smtp_connect_timeout 10
    router_id LVS_1
    smtp_alert_vrrp
    no_email_faults
    no_checker_emails false
}
vrrp_script chk {
    script "/bin/nc -z 127.0.0.1 53"
    interval 2
    weight -20
}
vrrp_instance VI_1 {
    state MASTER
    interface a
    virtual_router_id 5
    priority 150
    advert_int 1
    preempt_delay 10
    virtual_ipaddress {
        10.2.1.5/24 dev a
        10.2.1.6
    }
    track_script { chk weight -30 }
    track_bfd { gw weight 0 }
    notify /etc/keepalived/notify.sh root
    virtual_rules {
        from 10.2.1.5 table 100 priority 100
    }
    smtp_alert off
}
bfd_instance gw {
    neighbor_ip 10.2.1.1
    min_rx 50
    multiplier 3
    weight -20 reverse
}
static_rules {
    not from 10.9.0.0/16 priority 50 table main
}
vrrp_sync_group G { group { VI_1 } }
garp_group {
    garp_interval 0.1
    interfaces {
        a
        b
    }
}
"#;
        let mut from_toml = parse(&toml_text).unwrap().vrrp;
        // keepalived drops the weighted script of a sync group's member; the TOML's VRRP
        // keeps its warnings, the keepalived.conf's are the file's.
        assert_eq!(
            from_toml.warnings,
            ["t.toml:38: vrrp_instance VI_1: ignoring tracked script chk with weight -30 due to SYNC group"]
        );
        from_toml.warnings.clear();
        let mut from_keepalived =
            crate::keepalived::KeepalivedConf::parse("k.conf", keepalived_text)
                .unwrap()
                .vrrp_conf;
        // Where each came from differs; what they say must not.
        let i = &mut from_keepalived.instances[0];
        i.at = from_toml.instances[0].at.clone();
        for (a, t) in i
            .addresses
            .iter_mut()
            .zip(&from_toml.instances[0].addresses)
        {
            a.at = t.at.clone();
        }
        from_keepalived.bfd_instances[0].at = from_toml.bfd_instances[0].at.clone();
        from_keepalived.instances[0].rules[0].at = from_toml.instances[0].rules[0].at.clone();
        from_keepalived.static_rules[0].at = from_toml.static_rules[0].at.clone();
        assert_eq!(from_toml, from_keepalived);
        assert_eq!(
            from_toml.static_rules[0].to_string(),
            "50: not from 10.9.0.0/16 table 254"
        );
        let start = from_toml.startup_script.as_ref().unwrap();
        assert_eq!(
            (start.script.command.as_str(), start.timeout.as_secs()),
            ("/bin/true", 5)
        );
        // One startup_script: the TOML's and the keepalived.conf's may not both name one.
        let scripted = || crate::vrrp::VrrpConf {
            startup_script: from_toml.startup_script.clone(),
            ..Default::default()
        };
        let e = scripted().merge(scripted()).unwrap_err();
        assert!(e.contains("startup_script: set in both files"), "{e}");
        // Mail: read alike (an instance's explicit no included); one file configures it.
        assert_eq!(
            from_toml.mail.server,
            Some("192.168.200.1:2525".parse().unwrap())
        );
        assert_eq!(from_toml.instances[0].smtp_alert, Some(false));
        let mailing = || crate::vrrp::VrrpConf {
            mail: from_toml.mail.clone(),
            ..Default::default()
        };
        let e = mailing().merge(mailing()).unwrap_err();
        assert!(e.contains("e-mail alerts"), "{e}");
        for (line, field, said) in [
            (
                "smtp_server = \"10.0.0.1 x\"",
                "mail.smtp_server",
                "Invalid smtp server 10.0.0.1 x",
            ),
            (
                "smtp_alert = \"maybe\"",
                "mail.smtp_alert",
                "Invalid value 'maybe'",
            ),
            (
                "notification_email = \"a@b\"",
                "mail.notification_email",
                "a list of addresses",
            ),
            (
                "smtp_sever = \"10.0.0.1\"",
                "mail.smtp_sever",
                "unknown key",
            ),
        ] {
            let e = parse(&format!("{TWO_PORTS}\n[mail]\n{line}\n")).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(said) && e.line.is_some(), "{e}");
        }
        assert!(from_toml.instances[0].at.starts_with("t.toml:"));
        let b = &from_toml.bfd_instances[0];
        assert_eq!(
            (b.min_rx, b.multiplier, b.weight, b.reverse),
            (50_000, 3, -20, true)
        );
        // Weight 0 stays in a sync group; without `noreverse` the definition's reverse.
        let t = &from_toml.instances[0].track_bfds[0];
        assert_eq!(
            (t.name.as_str(), t.weight, t.reverse),
            ("gw", Some(0), true)
        );
        assert_eq!(from_toml.garp_groups[0].interfaces, ["a", "b"]);
        assert!(from_toml.instances[0].garp_extra_if.is_some());
        let e = parse(&format!(
            "{TWO_PORTS}\n[[vrrp_instance]]\nname = \"V\"\ninterface = \"a\"\nvirtual_router_id = 300\nvirtual_ipaddress = [\"10.0.0.1\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(15), "the table's line: {e}");
        assert!(e.to_string().contains("virtual_router_id"), "{e}");
        let e = parse(&format!(
            "{TWO_PORTS}\n[[vrrp_instance]]\ninterface = \"a\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("vrrp_instance[0]: a name"), "{e}");
        // A [[rule]] names its field; what keepalived would leave out is an error.
        for (rule, field, message) in [
            (
                "from = \"10.0.0.0/8\"\ntable = 100",
                "rule[0].priority",
                "a preference is required",
            ),
            ("priority = 5\ntable = 0", "rule[0]", "Table 0 is not valid"),
            (
                "priority = 5\ntable = 100\nfwmark = \"3/y\"",
                "rule[0]",
                "Invalid rule fwmark 3/y",
            ),
            (
                "priority = 5\ntable = 100\nipproto = \"nonesuch\"",
                "rule[0].ipproto",
                "Invalid ipproto nonesuch",
            ),
            (
                "priority = 5\ntable = 100\nsport = 0",
                "rule[0]",
                "Invalid sport range 0-0",
            ),
            (
                "priority = 5\ntable = 100\nuidrange = \"0-1\"",
                "rule[0].uidrange",
                "unknown key",
            ),
            (
                "priority = 5\naction = \"drop\"",
                "rule[0].action",
                "expected \"nop\"",
            ),
            (
                "priority = 5\nfrom = \"10.0.0.0/8\"",
                "rule[0]",
                "No action specified",
            ),
        ] {
            let e = parse(&format!("{TWO_PORTS}\n[[rule]]\n{rule}\n")).unwrap_err();
            assert_eq!((e.field.as_str(), e.line), (field, Some(15)), "{e}");
            assert!(e.to_string().contains(message), "{e}");
        }
        // A route in another table: by number or by rt_tables name.
        let c = parse(&format!(
            "{TWO_PORTS}\n[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"\nport = \"a\"\ntable = 100\n\n[[route]]\nprefix = \"10.8.0.0/16\"\nvia = \"10.0.0.254\"\nport = \"a\"\ntable = \"main\"\n"
        ))
        .unwrap();
        let tables: Vec<u32> = c.lb.routes.iter().map(|r| r.table).collect();
        assert_eq!(tables, [100, 254]);
        let e = parse(&format!(
            "{TWO_PORTS}\n[[route]]\nprefix = \"0.0.0.0/0\"\nport = \"a\"\ntable = \"no_such_table\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.field, "route[0].table", "{e}");
    }

    #[test]
    fn defaults_pair_ports_and_spread_queues() {
        let c = parse(TWO_PORTS).unwrap();
        assert_eq!(c.eal.lcores, vec![0, 1, 2]);
        assert_eq!(c.eal.hugepages, Hugepages::Off);
        assert_eq!(c.forward, ForwardMode::Io);
        assert_eq!((c.ports[0].peer, c.ports[1].peer), (1, 0));
        assert_eq!(
            c.workers,
            vec![
                WorkerConfig {
                    lcore: 1,
                    rx: vec![(0, 0), (1, 0)]
                },
                WorkerConfig {
                    lcore: 2,
                    rx: vec![(0, 1)]
                },
            ]
        );
        assert_eq!(c.ports[1].line, 12);
    }

    /// `af_xdp:IFACE` becomes DPDK's devargs with a queue per worker and 4,096-entry
    /// rings; ports reading kernel devices complete partial checksums unless told not to.
    #[test]
    fn af_xdp_ports_take_their_shape_from_the_workers() {
        let text = "[eal]\nlcores = \"0-2\"\nhugepages = false\n\n[[port]]\nname = \"out\"\ndevice = \"af_xdp:eth1\"\n\n[[port]]\nname = \"in\"\ndevice = \"net_af_packet0,iface=eth2\"\nrx_queues = 2\ncomplete_checksums = false\n";
        let c = parse(text).unwrap();
        let out = &c.ports[0];
        assert_eq!(
            out.device,
            "net_af_xdp0,iface=eth1,start_queue=0,queue_count=2"
        );
        assert_eq!((out.rx_queues, out.rx_desc, out.tx_desc), (2, 4096, 4096));
        assert_eq!(
            out.kernel,
            Some(KernelDevice {
                socket: KernelSocket::AfXdp,
                iface: "eth1".into()
            })
        );
        assert!(out.complete_checksums);
        let inside = &c.ports[1];
        assert_eq!(
            inside.kernel.as_ref().map(|k| k.socket),
            Some(KernelSocket::AfPacket)
        );
        assert_eq!((inside.rx_desc, inside.complete_checksums), (1024, false));
        assert!(!parse(TWO_PORTS).unwrap().ports[0].complete_checksums);

        // DPDK's own devargs get the queue count the workers need.
        let devargs = text.replace("af_xdp:eth1", "net_af_xdp0,iface=eth1");
        assert_eq!(
            parse(&devargs).unwrap().ports[0].device,
            "net_af_xdp0,iface=eth1,queue_count=2"
        );

        let e = parse(&text.replace(
            "device = \"af_xdp:eth1\"",
            "device = \"af_xdp:eth1\"\nrx_queues = 1",
        ))
        .unwrap_err();
        assert_eq!(e.field, "port[0].rx_queues");
        assert!(
            e.message.contains("2 worker(s) need 2 rx queue(s), not 1"),
            "{e}"
        );
        let e = parse(&text.replace(
            "device = \"af_xdp:eth1\"",
            "device = \"af_xdp:eth1\"\nrx_desc = 3000",
        ))
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (Some(8), "port[0].rx_desc"));
        assert!(e.message.contains("power of two"), "{e}");
        let e = parse(&text.replace("af_xdp:eth1", "af_xdp:eth 1")).unwrap_err();
        assert_eq!(e.field, "port[0].device");
    }

    #[test]
    fn explicit_workers_must_cover_every_queue_once() {
        let ok = format!("{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a\"]\n[[worker]]\nlcore = 2\nrx = [\"b:0\"]\n");
        let c = parse(&ok).unwrap();
        assert_eq!(c.workers[0].rx, vec![(0, 0), (0, 1)]);
        assert_eq!(c.workers[1].rx, vec![(1, 0)]);

        let missing = format!("{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a:0\", \"b:0\"]\n");
        let e = parse(&missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml:9: port[0].rx_queues: rx queue a:1 is polled by no worker"
        );

        let twice = format!("{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a\", \"b\"]\n[[worker]]\nlcore = 2\nrx = [\"a:1\"]\n");
        let e = parse(&twice).unwrap_err();
        assert_eq!(e.line, Some(20));
        assert!(
            e.message.contains("a:1 is already polled by worker[0]"),
            "{e}"
        );

        let main = format!("{TWO_PORTS}\n[[worker]]\nlcore = 0\nrx = [\"a\", \"b\"]\n");
        let e = parse(&main).unwrap_err();
        assert_eq!(e.field, "worker[0].lcore");
        assert!(e.message.contains("main lcore"), "{e}");

        let bad_queue = format!("{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a:5\"]\n");
        assert!(parse(&bad_queue)
            .unwrap_err()
            .message
            .contains("has 2 rx queue(s)"));
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = TWO_PORTS.replace("rx_queues = 2", "rx_queues = 2\nspeed = 10");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(10));
        assert_eq!(e.field, "port[0].speed");
        assert!(e.message.contains("unknown field `speed`"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_field() {
        let text = TWO_PORTS.replace("rx_queues = 2", "rx_queues = \"two\"");
        let e = parse(&text).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (Some(9), "port[0].rx_queues"));
        assert!(e.message.contains("invalid type"), "{e}");
        let e = parse(&TWO_PORTS.replace("rx_queues = 2", "rx_queues = 70000")).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (Some(9), "port[0].rx_queues"));
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                TWO_PORTS.replace("0-2", "2-0"),
                "eal.lcores",
                "runs backwards",
            ),
            (
                TWO_PORTS.replace("0-2", "0"),
                "eal.lcores",
                "at least one worker",
            ),
            (
                TWO_PORTS.replace("hugepages = false", "hugepages = \"maybe\""),
                "eal.hugepages",
                "true, false or \"auto\"",
            ),
            (
                TWO_PORTS.replace("hugepages = false", "log_level = \"loud\""),
                "eal.log_level",
                "unknown level",
            ),
            (
                TWO_PORTS.replace("name = \"b\"", "name = \"a\""),
                "port[1].name",
                "used twice",
            ),
            (
                TWO_PORTS.replace("net_ring1", "net_ring0"),
                "port[1].device",
                "already port[0]",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "rx_queues = 0"),
                "port[0].rx_queues",
                "1..=64",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "peer = \"c\""),
                "port[0].peer",
                "no port named \"c\"",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "rss_hash = [\"ip\", \"mac\"]"),
                "port[0].rss_hash",
                "unknown hash field \"mac\"",
            ),
            (
                format!("{TWO_PORTS}[log]\nlevel = \"loud\"\n"),
                "log.level",
                "one of error, warning, notice, info, debug",
            ),
            (
                format!("{TWO_PORTS}[log]\ntarget = \"file\"\n"),
                "log.target",
                "\"stderr\" or \"syslog\"",
            ),
            (
                format!("{TWO_PORTS}[metrics]\nlisten = \"localhost\"\n"),
                "metrics.listen",
                "not an address and port",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "faces = \"routers\""),
                "port[0].faces",
                "\"clients\" or \"servers\"",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "rss_key = \"zz\""),
                "port[0].rss_key",
                "hex",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "mtu = 20"),
                "port[0].mtu",
                "at least 68",
            ),
            (
                format!("{TWO_PORTS}[dataplane]\nforward = \"fast\"\n"),
                "dataplane.forward",
                "lb, io, macswap",
            ),
            (
                TWO_PORTS.replace("0-2", "0-4294967295"),
                "eal.lcores",
                "lcores go up to",
            ),
            (
                format!("{TWO_PORTS}[timeouts]\ntcp = 4294967295\n"),
                "timeouts.tcp",
                "at most 2678400 seconds",
            ),
            (
                format!("{TWO_PORTS}[[service]]\naddress = \"10.0.0.1\"\nport = 80\npersistence = 4294967295\n"),
                "service[0].persistence",
                "from 1 to 2678400 seconds",
            ),
        ];
        for (text, field, needle) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(needle), "{e} lacks {needle:?}");
            assert!(e.line.is_some(), "{e}");
        }
    }

    #[test]
    fn missing_sections_and_files() {
        let e = parse("[eal]\nlcores = \"0,1\"\n").unwrap_err();
        assert!(e.message.contains("no [[port]]"), "{e}");
        let e = parse("[[port]]\nname = \"a\"\n").unwrap_err();
        assert!(e.message.contains("missing field `device`"), "{e}");
        assert_eq!(e.field, "port[0]");
        let e = Config::load(Path::new("/nonexistent/rvs.toml")).unwrap_err();
        assert_eq!(e.line, None);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/rvs.toml: cannot read the config file"),
            "{e}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_lcore_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_lcore_list("1,1").is_err());
        assert!(parse_lcore_list("x").is_err());
        // Refused before anything is expanded (not four billion numbers first).
        let e = parse_lcore_list("0-4294967295").unwrap_err();
        assert_eq!(e, "lcores go up to 127");
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("03:00.1"));
        assert!(!is_pci_address("net_ring0"));
        assert_eq!(parse_hex("6d:5a:01").unwrap(), vec![0x6d, 0x5a, 1]);
        assert!(parse_hex("abc").is_none());
    }
}
