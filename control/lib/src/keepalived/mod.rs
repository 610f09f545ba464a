//! keepalived.conf for rvs: `global_defs`, `virtual_server` (address/port, `fwmark`, or
//! `group`) with `real_server`s and their checkers, `virtual_server_group`; `vrrp_*`
//! sections are parsed and kept for the high-availability work. Unknown keywords give a
//! warning naming the file and line; malformed values are errors (nothing is applied).
//!
//! Settings inherit virtual server -> real server -> checker, with keepalived's defaults.

pub mod syntax;
mod tls_key;

use crate::ipvsadm::{Command, ForwardMethod, Protocol, ServerSpec, ServiceKey, ServiceSpec};
use rvs_core::sched::SchedKind;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use syntax::Statement;

/// What a checker probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection opens.
    Tcp,
    /// GET each url; `ssl` for SSL_GET.
    Http {
        ssl: bool,
        urls: Vec<UrlCheck>,
        /// The Host header (and, with `sni`, the TLS server name) unless a url has its own:
        /// the checker's `virtualhost`, else the real server's, else the virtual server's.
        virtualhost: Option<String>,
        /// `http_protocol`: 1.0 (default), 1.0C (with Connection: close) or 1.1.
        protocol: HttpProtocol,
        /// `enable_sni`: send the virtual host as the TLS server name.
        sni: bool,
        /// The top-level `SSL` block's certificate and key (SSL_GET): presented when the
        /// server asks for one.
        client: Option<TlsClient>,
    },
    /// A query (type, name) answered with rcode 0.
    Dns { qtype: String, name: String },
    /// A datagram; with `require_reply` an answer must come (matching, if a pattern is
    /// given).
    Udp {
        payload: Vec<u8>,
        require_reply: Option<UdpReply>,
    },
    /// 220 banner, HELO, 250, QUIT.
    Smtp { helo_name: String },
    /// SIP OPTIONS with a Route header to the server itself (rvs's own checker).
    Sip { tcp: bool },
    /// A script: exit 0 up, 1 down; with `dynamic`, 2..=255 set weight = code - 2. It runs
    /// as `uid`:`gid` (its `user`, else `script_user`, see [`crate::scripts`]).
    Misc {
        path: String,
        timeout: Option<Duration>,
        dynamic: bool,
        uid: u32,
        gid: u32,
    },
    /// ICMP echo.
    Ping,
    /// BFD_CHECK: the `bfd_instance`'s session is up (read every 100 ms).
    Bfd { name: String },
    /// FILE_CHECK on a `track_file`: the number in the file times `weight` (negated with
    /// `reverse`) added to the server's `base` weight; with weight 0, any non-zero number
    /// (with reverse: zero) is a failure. Read every second (keepalived watches it).
    File {
        path: String,
        weight: i32,
        reverse: bool,
        base: u32,
        /// `init_file [VALUE] [overwrite]`: written when the checker starts.
        init: Option<(i64, bool)>,
    },
}

/// A top-level `track_file` (or `vrrp_track_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    pub name: String,
    pub path: String,
    pub weight: i32,
    pub reverse: bool,
    pub init: Option<(i64, bool)>,
}

/// keepalived's `http_protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpProtocol {
    #[default]
    Http10,
    Http10Close,
    Http11,
}

/// A url's `regex` test of the body (keepalived's PCRE2 patterns, read by the regex
/// crate: no look-around or back-references).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRegex {
    pub pattern: String,
    /// `regex_no_match`: up when the pattern is absent.
    pub no_match: bool,
    /// `regex_min_offset` / `regex_max_offset`: where in the body a match may start.
    pub min_offset: usize,
    pub max_offset: Option<usize>,
}

impl BodyRegex {
    pub fn compile(&self) -> Result<regex::bytes::Regex, regex::Error> {
        regex::bytes::Regex::new(&self.pattern)
    }

    /// Whether the body passes: a match (starting within the offsets), or none with
    /// `regex_no_match`.
    pub fn passes(&self, re: &regex::bytes::Regex, body: &[u8]) -> bool {
        let start = self.min_offset.min(body.len());
        let found = re
            .find_iter(&body[start..])
            .any(|m| self.max_offset.is_none_or(|max| start + m.start() <= max));
        found != self.no_match
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCheck {
    /// The url's own `virtualhost`.
    pub virtualhost: Option<String>,
    pub regex: Option<BodyRegex>,
    pub path: String,
    /// Expected MD5 of the body, lower-case hex.
    pub digest: Option<String>,
    /// Accepted status codes; empty = 200..=299.
    /// Accepted statuses as inclusive ranges (`200`, `200-299`); empty: any 2xx.
    pub status_codes: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checker {
    pub kind: CheckKind,
    /// Where the probe goes (connect_ip / connect_port; default the real server).
    pub target: SocketAddr,
    pub bindto: Option<IpAddr>,
    pub connect_timeout: Duration,
    pub delay_loop: Duration,
    /// Failures after the first before a live server goes down.
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// Random delay up to this before the first check (keepalived: up to delay_loop).
    pub warmup: Duration,
    /// `log_all_failures` (or global_defs' `checker_log_all_failures`): each failed attempt
    /// of a live server is logged, not only the one that takes it down.
    pub log_all_failures: bool,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub method: ForwardMethod,
    pub inhibit_on_failure: bool,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    pub upper: u32,
    pub lower: u32,
    pub checkers: Vec<Checker>,
    pub line: String,
    /// The `weight` written (else the virtual server's `weight`, default 1).
    pub weight_given: Option<u32>,
    /// `alpha` (its own, or the virtual server's): down until its checks pass.
    pub alpha: bool,
    /// A TUN server's encapsulation (`lb_kind TUN type gue port N csum`; its own, else
    /// the virtual server's).
    pub tunnel: Option<rvs_core::Tunnel>,
    /// `smtp_alert`: its checkers' changes are mailed (unset: global_defs' word, else
    /// yes, see [`crate::mail::MailConf::real_server_alerts`]).
    pub smtp_alert: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    /// One key per service (a group gives several).
    pub keys: Vec<ServiceKey>,
    /// lvs_method: the real servers' default, and the sorry server's.
    pub method: ForwardMethod,
    pub sched: SchedKind,
    pub persistence: Option<u32>,
    pub granularity: Option<u8>,
    /// A non-contiguous IPv4 `persistence_granularity`.
    pub granularity_v4: Option<std::net::Ipv4Addr>,
    pub one_packet: bool,
    /// Scheduler flag bits the scheduler gives no meaning to (`flag-N`).
    pub flag_bits: u8,
    /// `persistence_engine sip`.
    pub pe: Option<String>,
    pub sorry_server: Option<(IpAddr, u16)>,
    /// `sorry_server_lvs_method` (default: the virtual server's lb_kind).
    pub sorry_method: ForwardMethod,
    pub sorry_server_inhibit: bool,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    pub alpha: bool,
    pub omega: bool,
    /// `smtp_alert`: its quorum's changes are mailed (unset: global_defs' word, else no).
    pub smtp_alert: Option<bool>,
    pub real_servers: Vec<RealServer>,
    pub line: String,
    /// `virtual_server group NAME`: the group's name.
    pub group: Option<String>,
    /// DPVS's keepalived: `lb_kind FNAT` with `laddr_group_name` (a top-level
    /// `local_address_group NAME { ADDR [IFACE] ... }`) and `proxy_protocol v2`.
    pub full_nat: Option<rvs_core::engine::FullNat>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepalivedConf {
    pub global_defs: Vec<Statement>,
    pub virtual_servers: Vec<VirtualServer>,
    /// vrrp_instance, vrrp_sync_group, vrrp_script, ...: kept as parsed.
    pub vrrp: Vec<Statement>,
    /// What the VRRP statements and `global_defs` configure.
    pub vrrp_conf: crate::vrrp::VrrpConf,
    /// global_defs' `lvs_notify_fifo`: the checkers' VS and RS lines.
    pub lvs_fifo: Option<crate::vrrp::fifo::NotifyFifo>,
    /// global_defs' `notify_fifo`: VRRP's lines and the checkers'.
    pub global_fifo: Option<crate::vrrp::fifo::NotifyFifo>,
    /// `global_defs { lvs_timeouts tcp N tcpfin N udp N }` (0: not set).
    pub lvs_timeouts: (u32, u32, u32),
    /// `global_defs { script_user; enable_script_security }`.
    pub scripts: crate::scripts::ScriptPolicy,
    /// `track_file` blocks, for FILE_CHECK.
    pub track_files: Vec<TrackFile>,
    /// `bfd_instance` blocks: the BFD sessions (VRRP's track_bfd, BFD_CHECK).
    pub bfd_instances: Vec<crate::bfd::BfdInstance>,
    /// The top-level `SSL` block's client certificate and key.
    pub ssl_client: Option<TlsClient>,
    pub warnings: Vec<String>,
    /// DPVS's `local_address_group NAME { ADDR [IFACE] ... }`: full NAT's local addresses.
    pub local_address_groups: Vec<(String, Vec<IpAddr>)>,
}

/// A script keepalived waits for, at most `timeout` (its `*_script_timeout`, 10 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedScript {
    pub script: crate::vrrp::conf::Script,
    pub timeout: std::time::Duration,
}

/// Why rvs does not do what a `global_defs` keyword asks keepalived to do (None: rvs does
/// it, or it only tunes keepalived's own processes: names, priorities, buffers).
fn not_applied_global(s: &Statement) -> Option<&'static str> {
    Some(match s.keyword.as_str() {
        "enable_snmp_keepalived"
        | "enable_snmp_checker"
        | "enable_snmp_vrrp"
        | "enable_snmp_rfc"
        | "enable_snmp_rfcv2"
        | "enable_snmp_rfcv3"
        | "enable_traps"
        | "snmp_socket"
        | "enable_dbus"
        | "dbus_service_name" => {
            "rvs has no SNMP or D-Bus interface (its metrics are Prometheus's)"
        }
        "vrrp_iptables" | "vrrp_ipsets" | "nftables" | "nftables_priority" | "nftables_ifindex"
        | "nftables_counters" => "rvs installs no firewall rules for VRRP addresses",
        "default_interface" => {
            "a static_ipaddress without dev goes on the first data port with a host twin"
        }
        _ => return None,
    })
}

/// Why a top-level keepalived block rvs knows is not applied (None: not one of those).
fn not_applied_root(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "net_namespace" | "net_namespace_ipvs" | "namespace_with_ipsets" => {
            "rvs runs in the namespace it is started in (ip netns exec)"
        }
        _ => return None,
    })
}

/// global_defs' `NAME SCRIPT [USER]` and `NAME_timeout SECONDS` (1 to 1000; 10 by
/// default), the last of each.
pub(crate) fn bounded_script(
    defs: &[Statement],
    name: &str,
) -> Result<Option<BoundedScript>, String> {
    let timeout_name = format!("{name}_timeout");
    let mut script = None;
    let mut timeout = std::time::Duration::from_secs(10);
    for s in defs {
        if s.keyword == name {
            script = Some(crate::vrrp::conf::Script {
                command: s.arg(0)?.to_string(),
                user: s.args.get(1).cloned(),
            });
        } else if s.keyword == timeout_name {
            let secs: u64 = s
                .arg(0)?
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| format!("{}: {timeout_name}: 1 to 1000 seconds", s.at()))?;
            timeout = std::time::Duration::from_secs(secs);
        }
    }
    Ok(script.map(|script| BoundedScript { script, timeout }))
}

/// keepalived 2.2.7's `global_defs` keywords (others are warned about).
const GLOBAL_DEFS_KEYWORDS: &[&str] = &[
    "bfd_cpu_affinity",
    "bfd_no_swap",
    "bfd_priority",
    "bfd_process_name",
    "bfd_rlimit_rtime",
    "bfd_rlimit_rttime",
    "bfd_rt_priority",
    "checker_cpu_affinity",
    "checker_log_all_failures",
    "checker_no_swap",
    "checker_priority",
    "checker_process_name",
    "checker_rlimit_rtime",
    "checker_rlimit_rttime",
    "checker_rt_priority",
    "config_save_dir",
    "data_use_instance",
    "dbus_service_name",
    "default_interface",
    "disable_local_igmp",
    "dynamic_interfaces",
    "enable_dbus",
    "enable_script_security",
    "enable_snmp_checker",
    "enable_snmp_keepalived",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_vrrp",
    "enable_traps",
    "fifo_write_vrrp_states_on_reload",
    "include_check",
    "log_unknown_vrids",
    "lvs_flush",
    "lvs_flush_on_stop",
    "lvs_flush_onstop",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "lvs_process_name",
    "lvs_sync_daemon",
    "lvs_sync_daemon_interface",
    "lvs_timeouts",
    "max_auto_priority",
    "min_auto_priority_delay",
    "nftables",
    "nftables_counters",
    "nftables_ifindex",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "nftables_priority",
    "no_checker_emails",
    "no_email_faults",
    "notification_email",
    "notification_email_from",
    "notify_fifo",
    "notify_fifo_script",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "process_name",
    "process_names",
    "random_seed",
    "reload_check_config",
    "reload_file",
    "reload_repeat",
    "reload_time_file",
    "router_id",
    "rs_init_notifies",
    "script_user",
    "shutdown_script",
    "shutdown_script_timeout",
    "smtp_alert",
    "smtp_alert_checker",
    "smtp_alert_vrrp",
    "smtp_connect_timeout",
    "smtp_helo_name",
    "smtp_server",
    "snmp_socket",
    "startup_script",
    "startup_script_timeout",
    "tmp_config_directory",
    "umask",
    "vmac_addr_prefix",
    "vmac_prefix",
    "vrrp_check_unicast_src",
    "vrrp_cpu_affinity",
    "vrrp_down_timer_adverts",
    "vrrp_garp_extra_if",
    "vrrp_garp_interval",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_refresh",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_garp_master_repeat",
    "vrrp_gna_interval",
    "vrrp_higher_prio_send_advert",
    "vrrp_ipsets",
    "vrrp_iptables",
    "vrrp_lower_prio_no_advert",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_min_garp",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "vrrp_no_swap",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "vrrp_notify_priority_changes",
    "vrrp_priority",
    "vrrp_process_name",
    "vrrp_rlimit_rtime",
    "vrrp_rlimit_rttime",
    "vrrp_rt_priority",
    "vrrp_rx_bufs_multiplier",
    "vrrp_rx_bufs_policy",
    "vrrp_skip_check_adv_addr",
    "vrrp_startup_delay",
    "vrrp_strict",
    "vrrp_version",
    "vrrp_vmac_garp_intvl",
];

/// The most addresses one virtual_server_group may expand to.
const MAX_GROUP_ADDRESSES: u128 = 65_536;

/// A virtual_server_group address entry as a range of addresses (as integers), or None
/// when it is not one of keepalived's forms.
fn group_range(word: &str) -> Option<(u128, u128)> {
    let v6 = word.contains(':');
    let parse = |a: &str| -> Option<u128> {
        if v6 {
            a.parse::<std::net::Ipv6Addr>().ok().map(u128::from)
        } else {
            a.parse::<std::net::Ipv4Addr>()
                .ok()
                .map(|a| u128::from(u32::from(a)))
        }
    };
    let bits = if v6 { 128 } else { 32 };
    if let Some((a, m)) = word.split_once('/') {
        let start = parse(a)?;
        let m: u32 = m.parse().ok().filter(|m| (1..=bits).contains(m))?;
        let host = if m == bits {
            0
        } else {
            (1u128 << (bits - m)) - 1
        };
        return (start & host == 0).then_some((start, start | host));
    }
    let Some((a, end)) = word.split_once('-') else {
        return parse(word).map(|a| (a, a));
    };
    let start = parse(a)?;
    let full = if v6 {
        end.contains(':')
    } else {
        end.contains('.')
    };
    if full {
        let last = parse(end)?;
        return (last >= start).then_some((start, last));
    }
    let (unit, radix) = if v6 { (0xffffu128, 16) } else { (0xff, 10) };
    let n = u128::from_str_radix(end, radix)
        .ok()
        .filter(|n| *n <= unit)?;
    let low = start & unit;
    (n > low).then_some((start, start - low + n))
}

/// keepalived's (and the kernel's) largest real-server weight.
const MAX_WEIGHT: u32 = i32::MAX as u32;

fn num<T: std::str::FromStr>(s: &Statement, what: &str) -> Result<T, String> {
    s.arg(0)?.parse().map_err(|_| {
        format!(
            "{}: {}: {what} expected, got {:?}",
            s.at(),
            s.keyword,
            s.args[0]
        )
    })
}

fn secs(s: &Statement) -> Result<Duration, String> {
    let v: f64 = num(s, "seconds")?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{}: {}: out of range", s.at(), s.keyword));
    }
    Ok(Duration::from_secs_f64(v))
}

fn ip(s: &Statement, i: usize) -> Result<IpAddr, String> {
    let a = s.arg(i)?;
    a.parse()
        .map_err(|_| format!("{}: {}: {a:?} is not an IP address", s.at(), s.keyword))
}

fn port(s: &Statement, i: usize) -> Result<u16, String> {
    let p = s.arg(i)?;
    p.parse()
        .map_err(|_| format!("{}: {}: {p:?} is not a port", s.at(), s.keyword))
}

/// A virtual server's address family as keepalived settles it ([`KeepalivedConf::families`]).
#[derive(Default)]
struct Family {
    /// IPv6 or not; None when only tunnelled servers say (a mark then is IPv4).
    ipv6: Option<bool>,
    /// The real servers (by their place among the real_server blocks) skipped.
    skipped: Vec<usize>,
    sorry_skipped: bool,
}

/// The port of a `virtual_server IP PORT` (0 for `fwmark` and `group`).
fn service_port(s: &Statement) -> u16 {
    match s.args.first().map(String::as_str) {
        Some("fwmark" | "group") | None => 0,
        Some(_) => s.args.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
    }
}

/// A `status_code` word: `200` or `200-299` (keepalived's ranges), codes 100-599.
fn status_range(w: &str) -> Option<(u16, u16)> {
    let code = |s: &str| s.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    match w.split_once('-') {
        Some((a, b)) => Some((code(a)?, code(b)?)).filter(|(a, b)| a <= b),
        None => code(w).map(|c| (c, c)),
    }
}

fn method(s: &Statement) -> Result<ForwardMethod, String> {
    match s.arg(0)?.to_ascii_uppercase().as_str() {
        "NAT" => Ok(ForwardMethod::Nat),
        "DR" => Ok(ForwardMethod::Dr),
        "TUN" => Ok(ForwardMethod::Tun),
        m => Err(format!("{}: {}: {m:?}: NAT, DR or TUN", s.at(), s.keyword)),
    }
}

/// `lb_kind TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`: the tunnel, or
/// keepalived's complaint (it then ignores the statement).
fn tunnel_options(s: &Statement) -> Result<rvs_core::Tunnel, String> {
    use rvs_core::{Tunnel, TunnelCsum, TunnelKind};
    let mut t = Tunnel::default();
    let mut i = 1;
    while let Some(w) = s.args.get(i) {
        let next = s.args.get(i + 1);
        match w.as_str() {
            "type" => {
                t.kind = match next.map(String::as_str) {
                    Some("ipip") => TunnelKind::Ipip,
                    Some("gue") => TunnelKind::Gue,
                    Some("gre") => TunnelKind::Gre,
                    Some(o) => return Err(format!("Unknown tunnel type {o}")),
                    None => return Err("Missing tunnel type".into()),
                };
                i += 1;
            }
            "port" => {
                t.port = next
                    .and_then(|p| p.parse().ok())
                    .filter(|p| *p != 0)
                    .ok_or("Invalid gue tunnel port")?;
                i += 1;
            }
            "nocsum" => t.csum = TunnelCsum::NoCsum,
            "csum" => t.csum = TunnelCsum::Csum,
            "remcsum" => t.csum = TunnelCsum::RemCsum,
            o => return Err(format!("Invalid tunnel option {o}")),
        }
        i += 1;
    }
    if (t.kind == TunnelKind::Gue) != (t.port != 0) {
        return Err("gue tunnels require port, otherwise cannot have port.".into());
    }
    if t.kind == TunnelKind::Ipip && t.csum != TunnelCsum::NoCsum {
        return Err("ipip tunnels do not support checksum option.".into());
    }
    if t.kind == TunnelKind::Gre && t.csum == TunnelCsum::RemCsum {
        return Err("gre tunnels do not support remote checksum option.".into());
    }
    Ok(t)
}

/// Checker settings as inherited down the tree.
#[derive(Debug, Clone, Copy)]
struct Inherited {
    delay_loop: Duration,
    connect_timeout: Duration,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    inhibit_on_failure: bool,
}

impl Inherited {
    /// Applies a setting statement; false if it is not one. Values keepalived ignores
    /// (a zero delay_loop or connect_timeout) are ignored with its warning.
    fn take(&mut self, s: &Statement, warnings: &mut Vec<String>) -> Result<bool, String> {
        match s.keyword.as_str() {
            "delay_loop" | "connect_timeout" => {
                let v = secs(s)?;
                if v < Duration::from_secs(1) && s.keyword == "delay_loop"
                    || v < Duration::from_micros(1)
                {
                    warnings.push(format!(
                        "{}: {} '{}' invalid - ignoring (as keepalived)",
                        s.at(),
                        s.keyword,
                        s.args[0]
                    ));
                } else if s.keyword == "delay_loop" {
                    self.delay_loop = v;
                } else {
                    self.connect_timeout = v;
                }
            }
            "retry" => self.retry = Some(num(s, "a count")?),
            "delay_before_retry" => self.delay_before_retry = Some(secs(s)?),
            "warmup" => self.warmup = Some(secs(s)?),
            "inhibit_on_failure" => {
                self.inhibit_on_failure = s.args.first().is_none_or(|a| a != "false")
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl KeepalivedConf {
    pub fn load(path: &Path) -> Result<KeepalivedConf, String> {
        Self::from_statements(syntax::parse_file(path)?)
    }

    pub fn parse(file: &str, text: &str) -> Result<KeepalivedConf, String> {
        Self::from_statements(syntax::parse_text(file, text)?)
    }

    fn from_statements(top: Vec<Statement>) -> Result<KeepalivedConf, String> {
        let mut conf = KeepalivedConf::default();
        let groups: Vec<&Statement> = top
            .iter()
            .filter(|s| s.keyword == "virtual_server_group")
            .collect();
        for s in top.iter().filter(|s| s.keyword == "global_defs") {
            for c in s.children() {
                if !GLOBAL_DEFS_KEYWORDS.contains(&c.keyword.as_str()) {
                    conf.warn(c);
                } else if let Some(why) = not_applied_global(c) {
                    conf.warnings.push(format!(
                        "{}: global_defs: {}: {why}; ignored",
                        c.at(),
                        c.keyword
                    ));
                }
            }
            conf.global_defs.extend(s.children().iter().cloned());
        }
        conf.scripts = crate::scripts::ScriptPolicy::from_global_defs(&conf.global_defs);
        let (lvs_fifo, warning) = crate::vrrp::fifo::from_global_defs(&conf.global_defs, "lvs_")?;
        conf.warnings.extend(warning);
        conf.lvs_fifo = lvs_fifo.map(|mut f| {
            let what = format!("{}: lvs_notify_fifo {}'s script", f.at, f.path);
            if let Some(sc) = &mut f.script {
                if !crate::vrrp::conf::vet_script(&conf.scripts, sc, &what, &mut conf.warnings) {
                    f.script = None;
                }
            }
            f
        });
        for s in top
            .iter()
            .filter(|s| matches!(s.keyword.as_str(), "track_file" | "vrrp_track_file"))
        {
            let t = conf.track_file(s)?;
            conf.track_files.push(t);
        }
        conf.bfd_instances = crate::bfd::from_statements(&top, &mut conf.warnings);
        for s in top.iter().filter(|s| s.keyword == "local_address_group") {
            let mut addrs = Vec::new();
            for c in s.children() {
                // `ADDR [IFACE]` (DPVS names the port; rvs takes the address).
                let a: IpAddr = c.keyword.parse().map_err(|_| {
                    format!(
                        "{}: local_address_group: {:?} is not an address",
                        c.at(),
                        c.keyword
                    )
                })?;
                addrs.push(a);
            }
            conf.local_address_groups
                .push((s.arg(0)?.to_string(), addrs));
        }
        // The last SSL block is the one (keepalived replaces an earlier one).
        for s in top.iter().filter(|s| s.keyword == "SSL") {
            conf.ssl_client = ssl_block(s, &mut conf.warnings)?;
        }
        for s in &top {
            match s.keyword.as_str() {
                "global_defs" | "local_address_group" | "SSL" => {}
                "virtual_server" => {
                    let Some(vs) = conf.virtual_server(s, &groups)? else {
                        continue;
                    };
                    conf.virtual_servers.push(vs);
                    let services: usize = conf.virtual_servers.iter().map(|v| v.keys.len()).sum();
                    if services as u128 > MAX_GROUP_ADDRESSES {
                        return Err(format!(
                            "{}: the virtual servers expand to more than {MAX_GROUP_ADDRESSES} services",
                            s.at()
                        ));
                    }
                }
                "virtual_server_group" | "track_file" | "bfd_instance" => {}
                k if k.starts_with("vrrp_")
                    || matches!(
                        k,
                        "static_ipaddress"
                            | "static_routes"
                            | "static_rules"
                            | "garp_group"
                            | "interface_up_down_delays"
                    ) =>
                {
                    conf.vrrp.push(s.clone())
                }
                // keepalived's own process handling: nothing for rvs to do.
                "instance"
                | "use_pid_dir"
                | "child_wait_time"
                | "linkbeat_use_polling"
                | "linkbeat_interfaces" => {}
                k => conf.warnings.push(match not_applied_root(k) {
                    Some(why) => format!("{}: {k}: {why}; ignored", s.at()),
                    None => format!("{}: unknown keyword {k:?} ignored", s.at()),
                }),
            }
        }
        for g in conf.global_defs.clone() {
            if g.keyword == "lvs_timeouts" {
                conf.lvs_timeouts(&g);
            }
        }
        conf.vrrp_conf = crate::vrrp::VrrpConf::from_statements(
            &conf.vrrp,
            &conf.global_defs,
            &conf.track_files,
            &conf.bfd_instances,
        )?;
        conf.warnings.append(&mut conf.vrrp_conf.warnings);
        // global_defs' notify_fifo gets the checkers' lines too, as keepalived's checker
        // process opens it beside lvs_notify_fifo (its script vetted with VRRP's FIFOs).
        let (global, _) = crate::vrrp::fifo::from_global_defs(&conf.global_defs, "")?;
        conf.global_fifo =
            global.and_then(|g| conf.vrrp_conf.fifos.iter().find(|f| f.at == g.at).cloned());
        Ok(conf)
    }

    /// The FIFOs the checkers write to: global_defs' notify_fifo, then lvs_notify_fifo,
    /// in the order keepalived's checker process opens them.
    pub fn checker_fifos(&self) -> Vec<crate::vrrp::fifo::NotifyFifo> {
        self.global_fifo
            .iter()
            .chain(&self.lvs_fifo)
            .cloned()
            .collect()
    }

    /// `track_file NAME { file PATH; weight W [reverse]; init_file [VALUE] [overwrite] }`.
    fn track_file(&mut self, s: &Statement) -> Result<TrackFile, String> {
        let mut t = TrackFile {
            name: s.arg(0)?.to_string(),
            path: String::new(),
            weight: 1,
            reverse: false,
            init: None,
        };
        for c in s.children() {
            match c.keyword.as_str() {
                "file" => t.path = c.arg(0)?.to_string(),
                "weight" => {
                    let w: i32 = num(c, "a weight")?;
                    if !(-254..=254).contains(&w) {
                        return Err(format!("{}: track_file weight: -254 to 254", c.at()));
                    }
                    t.weight = w;
                    t.reverse = c.args.get(1).map(String::as_str) == Some("reverse");
                }
                "init_file" => {
                    let value = c
                        .args
                        .first()
                        .filter(|a| *a != "overwrite")
                        .map(|a| a.parse::<i64>())
                        .transpose()
                        .map_err(|_| format!("{}: init_file: a number expected", c.at()))?
                        .unwrap_or(0);
                    t.init = Some((value, c.args.iter().any(|a| a == "overwrite")));
                }
                _ => self.warn(c),
            }
        }
        if t.path.is_empty() {
            return Err(format!("{}: track_file {}: no file", s.at(), t.name));
        }
        Ok(t)
    }

    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`: what keepalived sets with `ipvsadm --set`;
    /// bad words and values are ignored with its warnings.
    fn lvs_timeouts(&mut self, s: &Statement) {
        if s.args.len() < 2 {
            self.warnings.push(format!(
                "{}: lvs_timeouts requires at least one option",
                s.at()
            ));
            return;
        }
        let mut i = 0;
        while i < s.args.len() {
            let word = s.args[i].as_str();
            let slot = match word {
                "tcp" => &mut self.lvs_timeouts.0,
                "tcpfin" => &mut self.lvs_timeouts.1,
                "udp" => &mut self.lvs_timeouts.2,
                _ => {
                    self.warnings.push(format!(
                        "{}: Unknown option {word} specified for lvs_timeouts",
                        s.at()
                    ));
                    i += 1;
                    continue;
                }
            };
            match s.args.get(i + 1).map(|v| (v, v.parse::<u32>())) {
                None => self.warnings.push(format!(
                    "{}: No value specified for lvs_timeout {word} - ignoring",
                    s.at()
                )),
                Some((_, Ok(v))) if v <= crate::ipvsadm::MAX_TIMEOUT => *slot = v,
                Some((v, _)) => self.warnings.push(format!(
                    "{}: Invalid lvs_timeout {word} ({v}) - ignoring",
                    s.at()
                )),
            }
            i += 2;
        }
    }

    fn warn(&mut self, s: &Statement) {
        self.warnings.push(format!(
            "{}: unknown keyword {:?} ignored",
            s.at(),
            s.keyword
        ));
    }

    fn group_keys(
        s: &Statement,
        name: &str,
        proto: Protocol,
        groups: &[&Statement],
    ) -> Result<Vec<ServiceKey>, String> {
        let g = groups
            .iter()
            .find(|g| g.args.first().map(String::as_str) == Some(name))
            .ok_or_else(|| format!("{}: no virtual_server_group {name:?}", s.at()))?;
        let mut keys = Vec::new();
        for e in g.children() {
            if e.keyword == "fwmark" {
                let mark: u32 = num(e, "a mark")?;
                let ipv6 = e.args.get(1).map(String::as_str) == Some("inet6");
                keys.push(ServiceKey::Fwmark { mark, ipv6 });
                continue;
            }
            // keepalived's forms: `ADDR`, `ADDR-LAST` (the last byte, or the last 16 bits
            // in hex for IPv6), `ADDR-ADDR`, `ADDR/MASK`; then the port (0 or none: all).
            let p: u16 = e
                .args
                .first()
                .map(|p| p.parse())
                .transpose()
                .map_err(|_| format!("{}: bad port", e.at()))?
                .unwrap_or(0);
            let (first, last) = group_range(&e.keyword)
                .ok_or_else(|| format!("{}: {:?} is not an address or range", e.at(), e.keyword))?;
            let count = last - first + 1;
            if keys.len() as u128 + count > MAX_GROUP_ADDRESSES {
                return Err(format!(
                    "{}: virtual_server_group {name:?} expands to more than {MAX_GROUP_ADDRESSES} addresses",
                    e.at()
                ));
            }
            let v6 = e.keyword.contains(':');
            for n in first..=last {
                let ip = if v6 {
                    IpAddr::from(std::net::Ipv6Addr::from(n))
                } else {
                    IpAddr::from(std::net::Ipv4Addr::from(n as u32))
                };
                keys.push(ServiceKey::Addr(proto, SocketAddr::new(ip, p)));
            }
        }
        Ok(keys)
    }

    fn virtual_server(
        &mut self,
        s: &Statement,
        groups: &[&Statement],
    ) -> Result<Option<VirtualServer>, String> {
        // keepalived 2.2.7 without `protocol`: "no protocol set - defaulting to UDP".
        let mut proto = Protocol::Udp;
        let mut proto_given = false;
        let mut sched = SchedKind::Wlc;
        let mut default_method = ForwardMethod::Nat;
        let mut default_weight = 1;
        let mut default_tunnel = rvs_core::Tunnel::default();
        let mut flag_words: Vec<String> = Vec::new();
        let mut sorry_method: Option<ForwardMethod> = None;
        let mut vs = VirtualServer {
            keys: Vec::new(),
            method: ForwardMethod::Nat,
            sched,
            persistence: None,
            granularity: None,
            granularity_v4: None,
            one_packet: false,
            flag_bits: 0,
            pe: None,
            sorry_server: None,
            sorry_method: ForwardMethod::Nat,
            sorry_server_inhibit: false,
            quorum: 1,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            alpha: false,
            omega: false,
            smtp_alert: None,
            real_servers: Vec::new(),
            line: s.at(),
            group: (s.args.first().map(String::as_str) == Some("group"))
                .then(|| s.args.get(1).cloned())
                .flatten(),
            full_nat: None,
        };
        let mut fnat = false;
        let mut laddr_group: Option<(String, String)> = None;
        let (mut proxy_protocol, mut proxy_v1) = (false, false);
        let mut inh = Inherited {
            delay_loop: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            retry: None,
            delay_before_retry: None,
            warmup: None,
            inhibit_on_failure: false,
        };
        // Settings first (they may follow the real servers in the file).
        for c in s.children() {
            if inh.take(c, &mut self.warnings)? {
                continue;
            }
            match c.keyword.as_str() {
                "protocol" => {
                    proto_given = true;
                    proto = match c.arg(0)?.to_ascii_uppercase().as_str() {
                        "TCP" => Protocol::Tcp,
                        "UDP" => Protocol::Udp,
                        "SCTP" => Protocol::Sctp,
                        p => {
                            return Err(format!("{}: protocol {p:?}: TCP, UDP or SCTP", c.at()))
                        }
                    }
                }
                "lvs_sched" | "lb_algo" => match c.arg(0)?.parse() {
                    Ok(k) => sched = k,
                    Err(e) => self.warnings.push(format!(
                        "{}: Invalid lvs_scheduler {:?} ({e}) - ignoring (as keepalived)",
                        c.at(),
                        c.args[0]
                    )),
                },
                "lvs_method" | "lb_kind" if c.arg(0)?.eq_ignore_ascii_case("FNAT") => {
                    default_method = ForwardMethod::Nat;
                    fnat = true;
                }
                "laddr_group_name" => laddr_group = Some((c.arg(0)?.to_string(), c.at())),
                "proxy_protocol" => match c.arg(0)? {
                    "v1" => (proxy_protocol, proxy_v1) = (true, true),
                    "v2" => (proxy_protocol, proxy_v1) = (true, false),
                    "disable" => proxy_protocol = false,
                    v => {
                        return Err(format!(
                            "{}: proxy_protocol {v:?}: rvs writes version 1 (v1), 2 (v2) or none (disable)",
                            c.at()
                        ))
                    }
                },
                "lvs_method" | "lb_kind" => match tunnel_options(c) {
                    Ok(t) => {
                        default_method = method(c)?;
                        default_tunnel = t;
                    }
                    Err(e) => self
                        .warnings
                        .push(format!("{}: {e} - ignoring (as keepalived)", c.at())),
                },
                // Without a value, keepalived's default: 6 minutes; out of 1 s..31 days,
                // ignored with its warning.
                "persistence_timeout" if c.args.is_empty() => vs.persistence = Some(360),
                "persistence_timeout" => match c.args[0].parse::<u32>() {
                    Ok(t) if (1..=crate::ipvsadm::MAX_TIMEOUT).contains(&t) => {
                        vs.persistence = Some(t)
                    }
                    _ => self.warnings.push(format!(
                        "{}: persistence_timeout invalid - ignoring (as keepalived)",
                        c.at()
                    )),
                },
                // keepalived's reading: for an IPv6 service a prefix length (1-128), for an
                // IPv4 one a mask as inet_aton reads it ("24" is 0.0.0.24); anything else
                // is ignored with its warning. A mark or a group: IPv4 if it has a dot.
                "persistence_granularity" => {
                    let g = c.arg(0)?;
                    let v6 = match s.args.first().map(String::as_str) {
                        Some("fwmark" | "group") | None => !g.contains('.'),
                        Some(_) => ip(s, 0)?.is_ipv6(),
                    };
                    let read = if v6 {
                        g.parse::<u8>()
                            .ok()
                            .filter(|n| (1..=128).contains(n))
                            .map(|n| vs.granularity = Some(n))
                    } else {
                        crate::ipvsadm::inet_aton(g).map(|mask| {
                            // A mask the kernel takes as it is, ones contiguous or not.
                            match crate::ipvsadm::netmask_prefix(&mask.to_string()) {
                                Some(p) => vs.granularity = Some(p),
                                None => vs.granularity_v4 = Some(mask),
                            }
                        })
                    };
                    if read.is_none() {
                        self.warnings.push(format!(
                            "{}: Invalid IPv{} persistence_granularity specified - {g} - ignoring (as keepalived)",
                            c.at(),
                            if v6 { 6 } else { 4 }
                        ));
                        continue;
                    }
                    // A granularity makes the service persistent (keepalived's default).
                    vs.persistence.get_or_insert(360);
                }
                // The weight of the real servers that give none.
                "weight" => match c.args.first().and_then(|w| w.parse::<u32>().ok()) {
                    Some(w) if (1..=MAX_WEIGHT).contains(&w) => default_weight = w,
                    _ => self.warnings.push(format!(
                        "{}: Virtual server weight {} is outside range 1-{MAX_WEIGHT} - ignoring (as keepalived)",
                        c.at(),
                        c.args.first().map(String::as_str).unwrap_or("")
                    )),
                },
                "ops" => vs.one_packet = true,
                "sorry_server" => {
                    let p = if c.args.len() > 1 {
                        port(c, 1)?
                    } else {
                        service_port(s)
                    };
                    vs.sorry_server = Some((ip(c, 0)?, p))
                }
                "sorry_server_inhibit" => vs.sorry_server_inhibit = true,
                "quorum" => match c.args.first().and_then(|q| q.parse::<u32>().ok()) {
                    Some(q) if q >= 1 => vs.quorum = q,
                    _ => self.warnings.push(format!(
                        "{}: Quorum {} must be in [1, {}]. Setting to 1. (as keepalived)",
                        c.at(),
                        c.args.first().map(String::as_str).unwrap_or(""),
                        u32::MAX
                    )),
                },
                "hysteresis" => vs.hysteresis = num(c, "a weight")?,
                "quorum_up" => vs.quorum_up = Some(c.args.join(" ")),
                "quorum_down" => vs.quorum_down = Some(c.args.join(" ")),
                "alpha" => vs.alpha = true,
                "omega" => vs.omega = true,
                "real_server" | "virtualhost" | "ha_suspend" => {}
                // Scheduler flags, applied once lb_algo is known (ipvsadm's -b words).
                "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
                | "mh-fallback" => flag_words.push(c.keyword.clone()),
                "hashed" => {}
                // Its place among the real servers matters: see `families`.
                "ip_family" => {}
                "sorry_server_lvs_method" => sorry_method = Some(method(c)?),
                "persistence_engine" if c.args.first().map(String::as_str) == Some("sip") => {
                    vs.pe = Some("sip".into())
                }
                "smtp_alert" => {
                    let what = "virtual server smtp_alert";
                    let v = crate::mail::true_false(c, what, &mut self.warnings);
                    vs.smtp_alert = v.or(vs.smtp_alert);
                }
                "persistence_engine" | "snmp_name" => {
                    self.warnings.push(format!(
                        "{}: {} is not supported by rvs - ignored",
                        c.at(),
                        c.keyword
                    ))
                }
                _ => self.warn(c),
            }
        }
        if !proto_given && s.args.first().map(String::as_str) != Some("fwmark") {
            self.warnings.push(format!(
                "{}: virtual_server: no protocol set - defaulting to UDP (as keepalived does)",
                s.at()
            ));
        }
        // keepalived's flag words mean what ipvsadm's -b does: sh's and mh's by name,
        // flag-N as bits the scheduler keeps.
        for w in &flag_words {
            let applies = match w.as_str() {
                "sh-port" | "sh-fallback" => sched.name() == "sh",
                "mh-port" | "mh-fallback" => sched.name() == "mh",
                _ => true,
            };
            if !applies {
                self.warnings.push(format!(
                    "{}: {w} does not apply to lb_algo {} - ignored",
                    s.at(),
                    sched.name()
                ));
                continue;
            }
            let as_flag = match w.as_str() {
                "sh-fallback" | "mh-fallback" => "flag-1",
                "sh-port" | "mh-port" => "flag-2",
                other => other,
            };
            match sched.with_flags(as_flag) {
                Ok(k) if matches!(sched, SchedKind::Sh { .. } | SchedKind::Mh { .. }) => sched = k,
                _ => {
                    vs.flag_bits |= match as_flag {
                        "flag-1" => 1,
                        "flag-2" => 2,
                        _ => 4,
                    }
                }
            }
        }
        if fnat || proxy_protocol {
            let locals = match &laddr_group {
                Some((name, at)) => self
                    .local_address_groups
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, a)| a.clone())
                    .ok_or_else(|| {
                        format!("{at}: laddr_group_name {name:?}: no such local_address_group")
                    })?,
                None => Vec::new(),
            };
            vs.full_nat = Some(
                rvs_core::engine::FullNat::new(locals, proxy_protocol).with_proxy_v1(proxy_v1),
            );
        }
        vs.sched = sched;
        vs.method = default_method;
        vs.sorry_method = sorry_method.unwrap_or(default_method);
        let family = self.families(s, default_method, vs.sorry_method)?;
        vs.keys = match s.args.first().map(String::as_str) {
            Some("fwmark") => vec![ServiceKey::Fwmark {
                mark: num(
                    &Statement {
                        args: s.args[1..].to_vec(),
                        ..s.clone()
                    },
                    "a mark",
                )?,
                // A mark's family: ip_family, else its servers' (`families`).
                ipv6: family.ipv6.unwrap_or(false),
            }],
            Some("group") => Self::group_keys(s, s.arg(1)?, proto, groups)?,
            Some(_) => vec![ServiceKey::Addr(
                proto,
                SocketAddr::new(ip(s, 0)?, port(s, 1)?),
            )],
            None => {
                return Err(format!(
                    "{}: virtual_server: address and port expected",
                    s.at()
                ))
            }
        };
        let virtualhost = s
            .children()
            .iter()
            .find(|c| c.keyword == "virtualhost")
            .and_then(|c| c.args.first().cloned());
        for (j, c) in s
            .children()
            .iter()
            .filter(|c| c.keyword == "real_server")
            .enumerate()
        {
            if family.skipped.contains(&j) {
                continue;
            }
            let mut rs =
                self.real_server(c, inh, default_method, virtualhost.clone(), service_port(s))?;
            rs.weight = rs.weight_given.unwrap_or(default_weight);
            rs.alpha |= vs.alpha;
            rs.tunnel = rs.tunnel.or(Some(default_tunnel));
            // The kernel refuses a lower threshold above the upper one (ERANGE): keepalived
            // logs the error and runs without the server.
            if rs.lower > rs.upper {
                self.warnings.push(format!(
                    "{}: real server {}: lthreshold {} above uthreshold {} is refused by IPVS (Numerical result out of range) - running without it (as keepalived)",
                    rs.line, rs.addr, rs.lower, rs.upper
                ));
                continue;
            }
            for ck in &mut rs.checkers {
                if let CheckKind::File { base, .. } = &mut ck.kind {
                    *base = rs.weight;
                }
            }
            vs.real_servers.push(rs);
        }
        if family.sorry_skipped {
            vs.sorry_server = None;
        }
        // A real server given twice: keepalived keeps the first.
        let name = s.args.join(" ");
        let mut seen: Vec<(IpAddr, u16)> = Vec::new();
        let warnings = &mut self.warnings;
        vs.real_servers.retain(|rs| {
            if seen.contains(&(rs.addr, rs.port)) {
                warnings.push(format!(
                    "{}: VS {name}: real server {} is duplicated - removing second rs (as keepalived)",
                    rs.line,
                    SocketAddr::new(rs.addr, rs.port)
                ));
                return false;
            }
            seen.push((rs.addr, rs.port));
            true
        });
        if let Some(why) = self.ignored(s, &vs, family.ipv6) {
            self.warnings
                .push(format!("{}: {why} - ignoring (as keepalived)", s.at()));
            return Ok(None);
        }
        self.correct(s, &mut vs);
        Ok(Some(vs))
    }

    /// keepalived's address family of a virtual server, statement by statement: the VIP's;
    /// for a mark or a group, `ip_family` (refused where it conflicts with a server before
    /// it), else the first real server's, else the sorry server's. Tunnelled servers may be
    /// of the other family; other real and sorry servers of the other family are skipped.
    fn families(
        &mut self,
        s: &Statement,
        default_method: ForwardMethod,
        sorry_method: ForwardMethod,
    ) -> Result<Family, String> {
        let mut ipv6 = match s.args.first().map(String::as_str) {
            Some("fwmark" | "group") | None => None,
            Some(_) => Some(ip(s, 0)?.is_ipv6()),
        };
        let name = s.args.join(" ");
        let mut family = Family::default();
        let mut servers = 0;
        for c in s.children() {
            match c.keyword.as_str() {
                "ip_family" => {
                    let f = match c.arg(0)? {
                        "inet" => false,
                        "inet6" => true,
                        f => {
                            self.warnings.push(format!(
                                "{}: unknown address family {f} (as keepalived)",
                                c.at()
                            ));
                            continue;
                        }
                    };
                    if ipv6.is_some_and(|v| v != f) {
                        self.warnings.push(format!(
                            "{}: Virtual server specified family {} conflicts with server family - ignoring (as keepalived)",
                            c.at(),
                            c.args[0]
                        ));
                    } else {
                        ipv6 = Some(f);
                    }
                }
                "real_server" => {
                    let own = c
                        .children()
                        .iter()
                        .rev()
                        .find(|k| matches!(k.keyword.as_str(), "lvs_method" | "lb_kind"))
                        .and_then(|k| method(k).ok());
                    let a = ip(c, 0)?;
                    if own.unwrap_or(default_method) != ForwardMethod::Tun {
                        match ipv6 {
                            None => ipv6 = Some(a.is_ipv6()),
                            Some(v) if v != a.is_ipv6() => {
                                self.warnings.push(format!(
                                    "{}: Address family of virtual server {name} and real server {a} don't match - skipping real server (as keepalived)",
                                    c.at()
                                ));
                                family.skipped.push(servers);
                            }
                            Some(_) => {}
                        }
                    }
                    servers += 1;
                }
                _ => {}
            }
        }
        let sorry = s
            .children()
            .iter()
            .rev()
            .find(|c| c.keyword == "sorry_server")
            .and_then(|c| Some((c.at(), c.args.first()?.parse::<IpAddr>().ok()?)));
        if let (Some((at, a)), false) = (sorry.clone(), sorry_method == ForwardMethod::Tun) {
            match ipv6 {
                None => ipv6 = Some(a.is_ipv6()),
                Some(v) if v != a.is_ipv6() => {
                    self.warnings.push(format!(
                        "{at}: Address family of virtual server {name} and sorry server {a} don't match - skipping sorry server (as keepalived)"
                    ));
                    family.sorry_skipped = true;
                }
                Some(_) => {}
            }
        }
        // A mark with tunnelled servers only: theirs when they agree, else IPv4.
        if ipv6.is_none() && s.args.first().map(String::as_str) == Some("fwmark") {
            let mut all = sorry.map(|(_, a)| a.is_ipv6()).into_iter().chain(
                s.children()
                    .iter()
                    .filter(|c| c.keyword == "real_server")
                    .filter_map(|c| Some(c.args.first()?.parse::<IpAddr>().ok()?.is_ipv6())),
            );
            let first = all.next();
            ipv6 = Some(first == Some(true) && all.all(|v| v));
        }
        family.ipv6 = ipv6;
        Ok(family)
    }

    /// Why keepalived leaves out a virtual server it has read: no real servers, or a group
    /// whose addresses are not of its family (`ipv6`, None when every server is tunnelled).
    fn ignored(&self, s: &Statement, vs: &VirtualServer, ipv6: Option<bool>) -> Option<String> {
        let name = s.args.join(" ");
        if vs.real_servers.is_empty() {
            return Some(format!("Virtual server {name} has no real servers"));
        }
        if s.args.first().map(String::as_str) != Some("group") {
            return None;
        }
        let family_of = |k: &ServiceKey| match k {
            ServiceKey::Addr(_, a) => a.is_ipv6(),
            ServiceKey::Fwmark { ipv6, .. } => *ipv6,
        };
        let (has4, has6) = (
            vs.keys.iter().any(|k| !family_of(k)),
            vs.keys.iter().any(family_of),
        );
        match ipv6 {
            Some(_) if has4 && has6 => Some(format!(
                "virtual server group with IPv4 & IPv6 doesn't match virtual server {name}"
            )),
            Some(v6) if (v6 && has4) || (!v6 && has6) => Some(format!(
                "address family doesn't match virtual server {name}"
            )),
            _ => None,
        }
    }

    /// keepalived's corrections once a virtual server is read, with its warnings: a quorum
    /// above the servers' total weight, a hysteresis not below the quorum, and the ports of
    /// DR and TUN servers (the service's; none for a mark service).
    fn correct(&mut self, s: &Statement, vs: &mut VirtualServer) {
        let name = s.args.join(" ");
        // Services by address (not by mark): one-packet scheduling only for UDP, port 0
        // only for a persistent service.
        let by_address = vs.keys.iter().any(|k| matches!(k, ServiceKey::Addr(..)));
        if by_address {
            let udp = vs
                .keys
                .iter()
                .any(|k| matches!(k, ServiceKey::Addr(Protocol::Udp, _)));
            if vs.one_packet && !udp {
                self.warnings.push(format!(
                    "{}: Virtual server {name}: one packet scheduling requires UDP - resetting (as keepalived)",
                    s.at()
                ));
                vs.one_packet = false;
            }
            let zero_port = vs
                .keys
                .iter()
                .any(|k| matches!(k, ServiceKey::Addr(_, a) if a.port() == 0));
            if vs.persistence.is_none() && zero_port {
                self.warnings.push(format!(
                    "{}: Virtual server {name}: zero port only valid for persistent services - setting (as keepalived)",
                    s.at()
                ));
                vs.persistence = Some(360);
            }
        }
        let total: u64 = vs.real_servers.iter().map(|r| u64::from(r.weight)).sum();
        if u64::from(vs.quorum) > total {
            let t = total.min(u64::from(u32::MAX)) as u32;
            self.warnings.push(format!(
                "{}: Warning - quorum {} for {name} exceeds total weight of real servers {t}, reducing quorum to {t} (as keepalived)",
                s.at(),
                vs.quorum
            ));
            vs.quorum = t;
        }
        if vs.hysteresis >= vs.quorum {
            // (A quorum of 0, all weights 0, wraps as in keepalived: the quorum stays down.)
            let h = vs.quorum.wrapping_sub(1);
            self.warnings.push(format!(
                "{}: Virtual server {name}: hysteresis {} >= quorum {}; setting hysteresis to {h} (as keepalived)",
                s.at(),
                vs.hysteresis,
                vs.quorum
            ));
            vs.hysteresis = h;
        }
        let (group, mark) = match s.args.first().map(String::as_str) {
            Some("group") => (true, false),
            Some("fwmark") => (false, true),
            _ => (false, false),
        };
        if group {
            // A group's marks take no port from DR and TUN servers (the addresses keep it).
            if vs
                .keys
                .iter()
                .any(|k| matches!(k, ServiceKey::Fwmark { .. }))
            {
                for rs in &vs.real_servers {
                    if rs.method != ForwardMethod::Nat && rs.port != 0 {
                        self.warnings.push(format!(
                            "{}: WARNING - fwmark virtual server {name}, real server {} has port specified - port will be ignored (as keepalived)",
                            rs.line, rs.addr
                        ));
                    }
                }
            }
            return;
        }
        let vport = service_port(s);
        let mut fix = |what: String, method: ForwardMethod, port: &mut u16, at: &str| {
            if method == ForwardMethod::Nat {
                return;
            }
            if mark && *port != 0 {
                self.warnings.push(format!(
                    "{at}: WARNING - fwmark virtual server {name}, {what} has port specified - clearing (as keepalived)"
                ));
                *port = 0;
            } else if !mark && *port != vport {
                self.warnings.push(format!(
                    "{at}: WARNING - virtual server {name} and {what} ports don't match - resetting (as keepalived)"
                ));
                *port = vport;
            }
        };
        for rs in &mut vs.real_servers {
            let what = format!("real server {}", rs.addr);
            fix(what, rs.method, &mut rs.port, &rs.line.clone());
        }
        let (method, line) = (vs.sorry_method, vs.line.clone());
        if let Some((_, port)) = vs.sorry_server.as_mut() {
            fix("sorry server".into(), method, port, &line);
        }
    }

    fn real_server(
        &mut self,
        s: &Statement,
        mut inh: Inherited,
        default_method: ForwardMethod,
        virtualhost: Option<String>,
        vs_port: u16,
    ) -> Result<RealServer, String> {
        let addr = ip(s, 0)?;
        // Without a port: the service's, as ipvsadm's -r without one.
        let rport = if s.args.len() > 1 {
            port(s, 1)?
        } else {
            vs_port
        };
        let mut rs = RealServer {
            addr,
            port: rport,
            weight: 1,
            method: default_method,
            inhibit_on_failure: false,
            notify_up: None,
            notify_down: None,
            upper: 0,
            lower: 0,
            checkers: Vec::new(),
            line: s.at(),
            weight_given: None,
            alpha: false,
            tunnel: None,
            smtp_alert: None,
        };
        let mut rs_vhost = None;
        let mut rs_alpha = false;
        let mut rs_tunnel = None;
        for c in s.children() {
            if inh.take(c, &mut self.warnings)? {
                continue;
            }
            match c.keyword.as_str() {
                "weight" => match c.args.first().and_then(|w| w.parse::<u32>().ok()) {
                    Some(w) if w <= MAX_WEIGHT => rs.weight_given = Some(w),
                    _ => self.warnings.push(format!(
                        "{}: Real server weight {} is outside range 0-{MAX_WEIGHT} - ignoring (as keepalived)",
                        c.at(),
                        c.args.first().map(String::as_str).unwrap_or("")
                    )),
                },
                "lvs_method" | "lb_kind" => match tunnel_options(c) {
                    Ok(t) => {
                        rs.method = method(c)?;
                        rs_tunnel = Some(t);
                    }
                    Err(e) => self
                        .warnings
                        .push(format!("{}: {e} - ignoring (as keepalived)", c.at())),
                },
                "notify_up" => rs.notify_up = Some(c.args.join(" ")),
                "notify_down" => rs.notify_down = Some(c.args.join(" ")),
                "virtualhost" => rs_vhost = Some(c.arg(0)?.to_string()),
                "alpha" => rs_alpha = true,
                "smtp_alert" => {
                    let what = "real server smtp_alert";
                    let v = crate::mail::true_false(c, what, &mut self.warnings);
                    rs.smtp_alert = v.or(rs.smtp_alert);
                }
                "snmp_name" => self.warnings.push(format!(
                    "{}: {} is not supported by rvs - ignored",
                    c.at(),
                    c.keyword
                )),
                "uthreshold" => rs.upper = num(c, "a count")?,
                "lthreshold" => rs.lower = num(c, "a count")?,
                k if k.ends_with("_CHECK") || k == "HTTP_GET" || k == "SSL_GET" => {}
                _ => self.warn(c),
            }
        }
        rs.inhibit_on_failure = inh.inhibit_on_failure;
        rs.alpha = rs_alpha;
        rs.tunnel = rs_tunnel;
        for c in s.children() {
            let kind = match c.keyword.as_str() {
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "DNS_CHECK" | "UDP_CHECK" | "SMTP_CHECK"
                | "SIP_CHECK" | "MISC_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" => {
                    c.keyword.as_str()
                }
                k if k.ends_with("_CHECK") || k.ends_with("_GET") => {
                    // A checker rvs does not know (a typo): said aloud, since the server
                    // would otherwise look checked.
                    self.warnings.push(format!(
                        "{}: {k} is not supported: real_server {} is not checked by it",
                        c.at(),
                        addr
                    ));
                    continue;
                }
                _ => continue,
            };
            if kind == "FILE_CHECK" {
                if let Some(ck) = self.file_check(c, inh, addr, rport, rs.weight_given)? {
                    rs.checkers.push(ck);
                }
                continue;
            }
            if kind == "BFD_CHECK" {
                if let Some(ck) = self.bfd_check(c, inh, SocketAddr::new(addr, rport), &rs.checkers)
                {
                    rs.checkers.push(ck);
                }
                continue;
            }
            let vhost = rs_vhost.clone().or_else(|| virtualhost.clone());
            let ck = self.checker(c, kind, inh, addr, rport, vhost)?;
            if let CheckKind::Misc { path, uid, .. } = &ck.kind {
                if let Some(u) = self.scripts.check(path, *uid) {
                    self.warnings.push(format!("{}: {}", c.at(), u.warning));
                    if u.disabled {
                        continue;
                    }
                }
            }
            let hosts: Vec<&Statement> = c
                .children()
                .iter()
                .filter(|h| kind == "SMTP_CHECK" && h.keyword == "host")
                .collect();
            if hosts.is_empty() {
                rs.checkers.push(ck);
                continue;
            }
            // keepalived's deprecated `host` blocks: one more checker each; the block's own
            // connection counts only when it sets one.
            self.warnings.push(format!(
                "{}: The SMTP_CHECK host block is deprecated. Please define additional checkers. (as keepalived)",
                c.at()
            ));
            let own = c.children().iter().any(|k| {
                matches!(
                    k.keyword.as_str(),
                    "connect_ip" | "connect_port" | "bindto" | "bind_port" | "connect_timeout"
                )
            });
            for h in hosts {
                let mut hc = ck.clone();
                hc.target = SocketAddr::new(addr, rport);
                hc.line = h.at();
                for k in h.children() {
                    match k.keyword.as_str() {
                        "connect_ip" => hc.target.set_ip(ip(k, 0)?),
                        "connect_port" => hc.target.set_port(port(k, 0)?),
                        "bindto" => hc.bindto = Some(ip(k, 0)?),
                        "connect_timeout" => hc.connect_timeout = secs(k)?,
                        "bind_port" | "fwmark" | "bind_if" => {}
                        _ => self.warn(k),
                    }
                }
                rs.checkers.push(hc);
            }
            if own {
                rs.checkers.push(ck);
            }
        }
        Ok(rs)
    }

    /// `FILE_CHECK { track_file NAME; weight W [reverse] }`; None (with keepalived's
    /// warning) without a known track_file.
    fn file_check(
        &mut self,
        s: &Statement,
        inh: Inherited,
        addr: IpAddr,
        rport: u16,
        base: Option<u32>,
    ) -> Result<Option<Checker>, String> {
        let mut file: Option<TrackFile> = None;
        let mut weight: Option<(i32, bool)> = None;
        for c in s.children() {
            match c.keyword.as_str() {
                "track_file" => match self.track_files.iter().find(|t| t.name == c.args[0]) {
                    Some(t) => file = Some(t.clone()),
                    None => self.warnings.push(format!(
                        "{}: track_file {} not found (as keepalived)",
                        c.at(),
                        c.args.first().map(String::as_str).unwrap_or("")
                    )),
                },
                "weight" => {
                    let w: i64 = num(c, "a weight")?;
                    if w.unsigned_abs() > u64::from(MAX_WEIGHT) {
                        return Err(format!("{}: FILE_CHECK weight out of range", c.at()));
                    }
                    weight = Some((
                        w as i32,
                        c.args.get(1).map(String::as_str) == Some("reverse"),
                    ));
                }
                _ => self.warn(c),
            }
        }
        let Some(f) = file else {
            self.warnings.push(format!(
                "{}: FILE_CHECK has no track_file specified - ignoring (as keepalived)",
                s.at()
            ));
            return Ok(None);
        };
        let (weight, reverse) = weight.unwrap_or((f.weight, f.reverse));
        Ok(Some(Checker {
            kind: CheckKind::File {
                path: f.path,
                weight,
                reverse,
                base: base.unwrap_or(1),
                init: f.init,
            },
            target: SocketAddr::new(addr, rport),
            bindto: None,
            connect_timeout: inh.connect_timeout,
            delay_loop: Duration::from_secs(1),
            retry: 0,
            delay_before_retry: Duration::from_secs(1),
            warmup: Duration::ZERO,
            log_all_failures: false,
            line: s.at(),
        }))
    }

    /// `BFD_CHECK { name NAME; alpha }`: None (with keepalived's message) without one
    /// name of a `bfd_instance` the checkers get, or one the server already checks.
    fn bfd_check(
        &mut self,
        s: &Statement,
        inh: Inherited,
        target: SocketAddr,
        others: &[Checker],
    ) -> Option<Checker> {
        let mut name: Option<String> = None;
        for c in s.children() {
            match c.keyword.as_str() {
                "name" => {
                    let known = |n: &str| {
                        self.bfd_instances
                            .iter()
                            .any(|b| b.name == n && b.to_checker)
                    };
                    let why = match c.args.as_slice() {
                        [n] if !known(n) => format!("BFD {n} not configured"),
                        [n] if name.is_some() => format!(
                            "BFD {n} already specified as {}",
                            name.as_deref().unwrap_or("")
                        ),
                        [n] if others
                            .iter()
                            .any(|o| o.kind == CheckKind::Bfd { name: n.clone() }) =>
                        {
                            format!("RS already monitoring {n}")
                        }
                        [n] => {
                            name = Some(n.clone());
                            continue;
                        }
                        _ => "No or too many names specified - skipping checker".into(),
                    };
                    self.warnings
                        .push(format!("{}: ({target}) BFD_CHECK - {why}", c.at()));
                    return None;
                }
                // The session's state is the checker's from the start.
                "alpha" => {}
                _ => self.warn(c),
            }
        }
        let Some(name) = name else {
            self.warnings.push(format!(
                "{}: ({target}) No name has been specified for BFD_CHECKER - skipping",
                s.at()
            ));
            return None;
        };
        Some(Checker {
            kind: CheckKind::Bfd { name },
            target,
            bindto: None,
            connect_timeout: inh.connect_timeout,
            delay_loop: Duration::from_millis(100),
            retry: 0,
            delay_before_retry: Duration::from_millis(100),
            warmup: Duration::ZERO,
            log_all_failures: false,
            line: s.at(),
        })
    }

    fn checker(
        &mut self,
        s: &Statement,
        kind: &str,
        mut inh: Inherited,
        addr: IpAddr,
        rport: u16,
        virtualhost: Option<String>,
    ) -> Result<Checker, String> {
        let mut target = SocketAddr::new(addr, rport);
        let mut bindto = None;
        let mut urls = Vec::new();
        let (mut qtype, mut qname) = ("SOA".to_string(), ".".to_string());
        let mut payload = Vec::new();
        let mut log_all_failures: Option<bool> = None;
        // require_reply's pattern and lengths (these wherever they stand in the block).
        let mut require_reply = false;
        let mut reply = UdpReply {
            data: Vec::new(),
            wildcard: Vec::new(),
            min_len: 0,
            max_len: 255,
        };
        let mut helo = "rvs".to_string();
        let (mut misc_path, mut misc_timeout, mut misc_dynamic) = (None, None, false);
        let mut sip_tcp = false;
        let mut checker_vhost = None;
        let mut misc_user: Option<(String, Option<String>)> = None;
        let mut protocol = HttpProtocol::Http10;
        let mut sni = false;
        for c in s.children() {
            if inh.take(c, &mut self.warnings)? {
                continue;
            }
            match c.keyword.as_str() {
                "connect_ip" => target.set_ip(ip(c, 0)?),
                "connect_port" => target.set_port(port(c, 0)?),
                "bindto" => bindto = Some(ip(c, 0)?),
                "bind_port" | "fwmark" => {}
                "user" if kind == "MISC_CHECK" => {
                    misc_user = Some((c.arg(0)?.to_string(), c.args.get(1).cloned()))
                }
                "url" => {
                    let mut u = UrlCheck {
                        virtualhost: None,
                        regex: None,
                        path: "/".into(),
                        digest: None,
                        status_codes: Vec::new(),
                    };
                    let mut re = BodyRegex {
                        pattern: String::new(),
                        no_match: false,
                        min_offset: 0,
                        max_offset: None,
                    };
                    let mut flags = String::new();
                    for k in c.children() {
                        match k.keyword.as_str() {
                            "path" => u.path = k.arg(0)?.to_string(),
                            "digest" => u.digest = Some(k.arg(0)?.to_ascii_lowercase()),
                            "virtualhost" => u.virtualhost = Some(k.arg(0)?.to_string()),
                            "regex" => re.pattern = k.arg(0)?.to_string(),
                            "regex_no_match" => re.no_match = true,
                            "regex_min_offset" => re.min_offset = num(k, "an offset")?,
                            "regex_max_offset" => re.max_offset = Some(num(k, "an offset")?),
                            "regex_stack" => {}
                            "regex_options" => {
                                for o in &k.args {
                                    match o.as_str() {
                                        "caseless" => flags.push('i'),
                                        "multiline" => flags.push('m'),
                                        "dotall" => flags.push('s'),
                                        "extended" => flags.push('x'),
                                        "ungreedy" => flags.push('U'),
                                        other => self.warnings.push(format!(
                                            "{}: regex_options {other}: not supported by rvs - ignored",
                                            k.at()
                                        )),
                                    }
                                }
                            }
                            "status_code" => {
                                for a in &k.args {
                                    u.status_codes.push(status_range(a).ok_or_else(|| {
                                        format!(
                                            "{}: status_code {a:?}: a code from 100 to 599 or a range such as 200-299",
                                            k.at()
                                        )
                                    })?);
                                }
                            }
                            _ => self.warn(k),
                        }
                    }
                    if !re.pattern.is_empty() {
                        if !flags.is_empty() {
                            re.pattern = format!("(?{flags}){}", re.pattern);
                        }
                        re.compile()
                            .map_err(|e| format!("{}: regex {:?}: {e}", c.at(), re.pattern))?;
                        u.regex = Some(re);
                    }
                    urls.push(u);
                }
                "virtualhost" => checker_vhost = Some(c.arg(0)?.to_string()),
                "http_protocol" => {
                    protocol = match c.arg(0)? {
                        "1.0" => HttpProtocol::Http10,
                        "1.0C" | "1.0c" => HttpProtocol::Http10Close,
                        "1.1" => HttpProtocol::Http11,
                        v => {
                            self.warnings.push(format!(
                                "{}: Invalid http_protocol version {v} - ignoring (as keepalived)",
                                c.at()
                            ));
                            protocol
                        }
                    }
                }
                "enable_sni" => sni = true,
                "fast_recovery" => {}
                "host" if kind == "SMTP_CHECK" => {}
                "type" => qtype = c.arg(0)?.to_ascii_uppercase(),
                "name" => qname = c.arg(0)?.to_string(),
                "log_all_failures" => {
                    log_all_failures = Some(!matches!(
                        c.args.first().map(String::as_str),
                        Some("false" | "no" | "off")
                    ))
                }
                "payload" => match hex_string(&c.args, false) {
                    Some((data, _)) => payload = data,
                    None => self.warnings.push(format!(
                        "{}: UDP_CHECK payload: invalid hex string; none sent (as keepalived)",
                        c.at()
                    )),
                },
                "require_reply" => {
                    let (data, wildcard) = if c.args.is_empty() {
                        (Vec::new(), Vec::new())
                    } else {
                        hex_string(&c.args, true).unwrap_or_else(|| {
                            self.warnings.push(format!(
                                "{}: UDP_CHECK require_reply: invalid hex string; any reply will do (as keepalived)",
                                c.at()
                            ));
                            (Vec::new(), Vec::new())
                        })
                    };
                    (reply.data, reply.wildcard) = (data, wildcard);
                    require_reply = true;
                }
                "min_reply_length" | "max_reply_length" => match c.arg(0)?.parse::<u16>() {
                    Ok(n) if c.keyword.starts_with("min") => reply.min_len = n,
                    Ok(n) => reply.max_len = n,
                    Err(_) => self.warnings.push(format!(
                        "{}: UDP_CHECK {} {:?} not valid - must be between 0 & 65535; ignored",
                        c.at(),
                        c.keyword,
                        c.args[0]
                    )),
                },
                "helo_name" => helo = c.arg(0)?.to_string(),
                "misc_path" => misc_path = Some(c.args.join(" ")),
                "misc_timeout" => misc_timeout = Some(secs(c)?),
                "misc_dynamic" => misc_dynamic = true,
                "transport" => sip_tcp = c.arg(0)?.eq_ignore_ascii_case("tcp"),
                "nb_get_retry" if matches!(kind, "HTTP_GET" | "SSL_GET") => {
                    self.warnings.push(format!(
                        "{}: nb_get_retry is deprecated - please use 'retry' (as keepalived)",
                        c.at()
                    ));
                    inh.retry = Some(num(c, "a count")?);
                }
                _ => self.warn(c),
            }
        }
        let (kind, retry, dbr) = match kind {
            "TCP_CHECK" => (CheckKind::Tcp, 1, Duration::from_secs(1)),
            "HTTP_GET" | "SSL_GET" => {
                if urls.is_empty() {
                    urls.push(UrlCheck {
                        virtualhost: None,
                        regex: None,
                        path: "/".into(),
                        digest: None,
                        status_codes: Vec::new(),
                    });
                }
                (
                    CheckKind::Http {
                        ssl: kind == "SSL_GET",
                        urls,
                        virtualhost: checker_vhost.or(virtualhost),
                        protocol,
                        sni,
                        client: self.ssl_client.clone().filter(|_| kind == "SSL_GET"),
                    },
                    1,
                    Duration::from_secs(3),
                )
            }
            "DNS_CHECK" => (CheckKind::Dns { qtype, name: qname }, 3, inh.delay_loop),
            "UDP_CHECK" => (
                CheckKind::Udp {
                    payload,
                    require_reply: require_reply.then(|| {
                        if reply.min_len > reply.max_len {
                            self.warnings.push(format!(
                                "{}: UDP_CHECK min_reply_length {} > max_reply_length {} - will always fail (as keepalived)",
                                s.at(),
                                reply.min_len,
                                reply.max_len
                            ));
                        }
                        reply
                    }),
                },
                1,
                Duration::from_secs(1),
            ),
            "SMTP_CHECK" => (
                CheckKind::Smtp { helo_name: helo },
                1,
                Duration::from_secs(1),
            ),
            "SIP_CHECK" => (CheckKind::Sip { tcp: sip_tcp }, 1, Duration::from_secs(1)),
            "MISC_CHECK" => {
                let path =
                    misc_path.ok_or_else(|| format!("{}: MISC_CHECK without misc_path", s.at()))?;
                let (uid, gid) = self
                    .scripts
                    .resolve(misc_user.as_ref().map(|(u, g)| (u.as_str(), g.as_deref())))
                    .map_err(|e| format!("{}: MISC_CHECK: {e}", s.at()))?;
                (
                    CheckKind::Misc {
                        path,
                        timeout: misc_timeout,
                        dynamic: misc_dynamic,
                        uid,
                        gid,
                    },
                    0,
                    Duration::from_secs(1),
                )
            }
            _ => (CheckKind::Ping, 1, Duration::from_secs(1)),
        };
        Ok(Checker {
            kind,
            target,
            bindto,
            connect_timeout: inh.connect_timeout,
            delay_loop: inh.delay_loop,
            retry: inh.retry.unwrap_or(retry),
            delay_before_retry: inh.delay_before_retry.unwrap_or(dbr),
            warmup: inh.warmup.unwrap_or(inh.delay_loop),
            // As keepalived: either says so (the global one is not overridden).
            log_all_failures: log_all_failures.unwrap_or(false)
                || self
                    .global_defs
                    .iter()
                    .rev()
                    .find(|g| g.keyword == "checker_log_all_failures")
                    .is_some_and(|g| {
                        !matches!(
                            g.args.first().map(String::as_str),
                            Some("false" | "no" | "off")
                        )
                    }),
            line: s.at(),
        })
    }

    /// The services with full NAT (`lb_kind FNAT`, `proxy_protocol v2`).
    pub fn full_nat(&self) -> Vec<(ServiceKey, rvs_core::engine::FullNat)> {
        self.virtual_servers
            .iter()
            .filter_map(|v| v.full_nat.as_ref().map(|f| (v, f)))
            .flat_map(|(v, f)| v.keys.iter().map(move |k| (*k, f.clone())))
            .collect()
    }

    /// [`Self::commands`], each with the file and line it comes from (for errors).
    pub fn commands_at(&self) -> Vec<(String, Command)> {
        let mut out = Vec::new();
        if self.lvs_timeouts != (0, 0, 0) {
            let (tcp, tcpfin, udp) = self.lvs_timeouts;
            let at = self
                .global_defs
                .iter()
                .find(|g| g.keyword == "lvs_timeouts")
                .map(|g| g.at())
                .unwrap_or_default();
            out.push((at, Command::SetTimeouts { tcp, tcpfin, udp }));
        }
        for vs in &self.virtual_servers {
            for c in self.service_commands(vs) {
                let at = match &c {
                    Command::AddServer(s) => vs
                        .real_servers
                        .iter()
                        .find(|r| r.addr == s.addr && r.port == s.port)
                        .map(|r| r.line.clone())
                        .unwrap_or_else(|| vs.line.clone()),
                    _ => vs.line.clone(),
                };
                out.push((at, c));
            }
        }
        out
    }

    /// The ipvsadm commands that set the services up (all servers assumed up unless
    /// `alpha`, which starts them down).
    pub fn commands(&self) -> Vec<Command> {
        self.commands_at().into_iter().map(|(_, c)| c).collect()
    }

    /// One virtual server's services and (unless `alpha`) servers.
    fn service_commands(&self, vs: &VirtualServer) -> Vec<Command> {
        let mut out = Vec::new();
        for key in &vs.keys {
            out.push(Command::AddService(ServiceSpec {
                key: *key,
                scheduler: vs.sched,
                persistent: vs.persistence,
                netmask: vs.granularity,
                mask_v4: vs.granularity_v4,
                one_packet: vs.one_packet,
                flag_bits: vs.flag_bits,
                pe: vs.pe.clone(),
                refusal: None,
            }));
            for rs in vs.real_servers.iter().filter(|r| !r.alpha) {
                out.push(Command::AddServer(server_spec(*key, rs, rs.weight)));
            }
        }
        out
    }
}

/// The ipvsadm server spec of a real server of service `key` at `weight`.
pub fn server_spec(key: ServiceKey, rs: &RealServer, weight: u32) -> ServerSpec {
    ServerSpec {
        service: key,
        addr: rs.addr,
        port: server_port(key, rs.method, rs.port),
        method: rs.method,
        weight,
        upper: rs.upper,
        lower: rs.lower,
        tunnel: rs.tunnel.unwrap_or_default(),
        refusal: None,
    }
}

/// A server's port in the service `key`: none for a mark service unless NAT (a group's
/// marks as well, as keepalived programs them).
pub fn server_port(key: ServiceKey, method: ForwardMethod, port: u16) -> u16 {
    match key {
        ServiceKey::Fwmark { .. } if method != ForwardMethod::Nat => 0,
        _ => port,
    }
}

/// A client certificate chain and its key, PEM as read from the `SSL` block's files
/// (checked when the file is loaded), and the block's password for an encrypted key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsClient {
    pub certificate: Vec<u8>,
    pub key: Vec<u8>,
    pub password: Option<String>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient { .. }")
    }
}

impl TlsClient {
    /// The chain and key as rustls takes them.
    pub fn parts(
        &self,
    ) -> Result<
        (
            Vec<rustls::pki_types::CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        String,
    > {
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&self.certificate)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        if chain.is_empty() {
            return Err("no certificate in it".into());
        }
        let key = match tls_key::open(&self.key, self.password.as_deref())? {
            Some(key) => key,
            None => rustls::pki_types::PrivateKeyDer::from_pem_slice(&self.key)
                .map_err(|e| format!("no private key in it ({e})"))?,
        };
        Ok((chain, key))
    }

    /// The same with its key opened (unencrypted PEM), so that checks present it without
    /// decrypting it each time (scrypt takes tens of milliseconds).
    fn opened(self) -> Result<TlsClient, String> {
        Ok(match tls_key::open(&self.key, self.password.as_deref())? {
            Some(key) => TlsClient {
                key: tls_key::pem_of(&key),
                password: None,
                ..self
            },
            None => self,
        })
    }

    /// What a rustls client presents to a server that asks: the chain, signed for by the
    /// key, which must be the end-entity certificate's (their public keys compared, as
    /// OpenSSL compares them when keepalived loads the key). The certificate is read here,
    /// so a version 1 certificate, which rustls's own check refuses, is presented too.
    pub fn resolver(
        &self,
        provider: &rustls::crypto::CryptoProvider,
    ) -> Result<std::sync::Arc<dyn rustls::client::ResolvesClientCert>, String> {
        let (chain, key) = self.parts()?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| format!("a key rvs cannot sign with ({e})"))?;
        let spki = chain
            .first()
            .and_then(|c| tls_key::certificate_spki(c))
            .ok_or("the first certificate is not one rvs can read")?;
        match signing.public_key() {
            Some(k) if k.as_ref() == spki => {}
            Some(_) => {
                return Err("the key is not the certificate's (their public keys differ)".into())
            }
            None => {
                return Err(
                    "a key whose public half rvs cannot compare with the certificate's".into(),
                )
            }
        }
        let certified = rustls::sign::CertifiedKey::new(chain, signing);
        Ok(std::sync::Arc::new(Present(std::sync::Arc::new(certified))))
    }
}

/// A client certificate presented whatever the server asks.
#[derive(Debug)]
struct Present(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The top-level `SSL { password; ca; certificate; key }` block as keepalived's check_ssl.c
/// uses it: the certificate chain and key are presented to servers that ask (SSL_GET),
/// `ca` is loaded but verifies nothing (keepalived never enforces it), `password` opens an
/// encrypted key. A file that cannot be read or parsed, or a key the password does not
/// open, refuses the configuration (keepalived's checker process terminates).
fn ssl_block(s: &Statement, warnings: &mut Vec<String>) -> Result<Option<TlsClient>, String> {
    use rustls::pki_types::pem::PemObject;
    let (mut certificate, mut key, mut password) = (None, None, None);
    for c in s.children() {
        let read = |what: &str| {
            let path = c.arg(0)?;
            std::fs::read(path).map_err(|e| format!("{}: SSL {what} {path}: {e}", c.at()))
        };
        match c.keyword.as_str() {
            "certificate" => certificate = Some((read("certificate")?, c.at())),
            "key" => key = Some((read("key")?, c.at())),
            "ca" => {
                let pem = read("ca")?;
                let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default();
                if certs.is_empty() {
                    return Err(format!(
                        "{}: SSL ca {}: no certificate in it",
                        c.at(),
                        c.args[0]
                    ));
                }
            }
            "password" => password = Some(c.arg(0)?.to_string()),
            k => warnings.push(format!("{}: SSL: unknown keyword {k:?} ignored", c.at())),
        }
    }
    match (certificate, key) {
        (Some((certificate, at)), Some((key, _))) => {
            let refused = |e: String| format!("{at}: SSL certificate and key: {e}");
            let client = TlsClient {
                certificate,
                key,
                password,
            }
            .opened()
            .map_err(refused)?;
            // What the checkers will present, made once now: a key that is not the
            // certificate's refuses the file here.
            client
                .resolver(&rustls::crypto::ring::default_provider())
                .map_err(refused)?;
            Ok(Some(client))
        }
        (None, None) => Ok(None),
        (Some((_, at)), None) | (None, Some((_, at))) => {
            warnings.push(format!(
                "{at}: SSL: a certificate needs its key (and a key its certificate): no client certificate presented"
            ));
            Ok(None)
        }
    }
}

/// UDP_CHECK's `require_reply [HEX]` with `min_reply_length` / `max_reply_length`
/// (0 and 255 by default), as keepalived's check_udp.c reads and applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpReply {
    /// The octets the reply starts with (none: any reply will do), and which of their
    /// bits are wildcards (`x`/`X` nibbles).
    pub data: Vec<u8>,
    pub wildcard: Vec<u8>,
    pub min_len: u16,
    pub max_len: u16,
}

impl UdpReply {
    /// Whether a reply (read into a buffer of `max_len + 1` octets, so `len` is at most
    /// that) passes: with a pattern, a length within the bounds and the first octets (as
    /// many as both have) matching it; without one, anything.
    pub fn accepts(&self, reply: &[u8]) -> bool {
        if self.data.is_empty() {
            return true;
        }
        let n = reply.len();
        if n < usize::from(self.min_len) || n > usize::from(self.max_len) {
            return false;
        }
        reply
            .iter()
            .zip(&self.data)
            .zip(&self.wildcard)
            .all(|((r, d), w)| (r ^ d) & !w == 0)
    }
}

/// keepalived's hex strings (`payload`, `require_reply`): the words joined by spaces; two
/// hex digits an octet, one alone (before a space or the end) an octet too; with
/// `wildcards`, `x`/`X` a nibble that matches anything. None: not a hex string (or
/// empty). Gives the octets and their wildcard bits.
fn hex_string(words: &[String], wildcards: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = words.join(" ");
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some((c - b'0', 0)),
        b'a'..=b'f' => Some((c - b'a' + 10, 0)),
        b'A'..=b'F' => Some((c - b'A' + 10, 0)),
        b'x' | b'X' if wildcards => Some((0, 0x0f)),
        _ => None,
    };
    let (mut data, mut wild) = (Vec::new(), Vec::new());
    let mut chars = text.bytes().peekable();
    loop {
        while chars.next_if(|c| *c == b' ' || *c == b'\t').is_some() {}
        let Some(first) = chars.next() else { break };
        let (mut v, mut m) = nibble(first)?;
        if let Some(second) = chars.next_if(|c| *c != b' ') {
            let (v2, m2) = nibble(second)?;
            v = v << 4 | v2;
            m = m << 4 | m2;
        }
        data.push(v);
        wild.push(m);
    }
    (!data.is_empty()).then_some((data, wild))
}

#[cfg(test)]
mod tests;
