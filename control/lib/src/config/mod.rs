//! The daemon's configuration file (TOML).
//!
//! Parsing is in two steps: serde reads the file into the raw sections (unknown fields and
//! wrong types are rejected there), then [`Config::from_raw`] checks what serde cannot
//! (names, references, lcores, queues) and builds the validated model. Every error names
//! the file, the line and the field.

use rvs_core::ForwardMode;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub mod lb;
mod source;

pub use source::{ConfigError, Source};

/// Whether EAL runs on hugepages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hugepages {
    /// Hugepages when the system has free ones, else `--no-huge` (with a notice).
    #[default]
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Hugepages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Hugepages;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Hugepages, E> {
                Ok(if v { Hugepages::On } else { Hugepages::Off })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Hugepages, E> {
                match v {
                    "auto" => Ok(Hugepages::Auto),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

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
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    timeouts: RawTimeouts,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<String>,
    rules: Option<Spanned<String>>,
}

/// `ipvsadm --set tcp tcpfin udp`; 0 or absent keeps the default.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default)]
    tcp: u32,
    #[serde(default)]
    tcpfin: u32,
    #[serde(default)]
    udp: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEal {
    lcores: Option<Spanned<String>>,
    #[serde(default)]
    hugepages: Hugepages,
    memory_mb: Option<Spanned<u32>>,
    #[serde(default = "default_prefix")]
    file_prefix: Spanned<String>,
    #[serde(default = "default_log_level")]
    log_level: Spanned<String>,
    #[serde(default)]
    extra_args: Vec<String>,
}

impl Default for RawEal {
    fn default() -> Self {
        RawEal {
            lcores: None,
            hugepages: Hugepages::Auto,
            memory_mb: None,
            file_prefix: default_prefix(),
            log_level: default_log_level(),
            extra_args: Vec::new(),
        }
    }
}

fn default_prefix() -> Spanned<String> {
    Spanned::new(0..0, "rvs".into())
}

fn default_log_level() -> Spanned<String> {
    Spanned::new(0..0, "notice".into())
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
}

impl Default for RawDataplane {
    fn default() -> Self {
        RawDataplane {
            forward: default_forward(),
            mbufs: None,
            mbuf_cache: default_mbuf_cache(),
            connections: None,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    device: Spanned<String>,
    #[serde(default = "one")]
    rx_queues: Spanned<u16>,
    #[serde(default = "default_desc")]
    rx_desc: u16,
    #[serde(default = "default_desc")]
    tx_desc: u16,
    mtu: Option<Spanned<u16>>,
    #[serde(default = "yes")]
    promiscuous: bool,
    peer: Option<Spanned<String>>,
    rss_hash: Option<Spanned<Vec<String>>>,
    rss_key: Option<Spanned<String>>,
    /// The appliance's own addresses on this port (`IP` or `IP/LEN`).
    #[serde(default)]
    addresses: Vec<Spanned<String>>,
    /// The kernel interface of this port's TAP twin (the host exception path).
    host_tap: Option<Spanned<String>>,
}

fn one() -> Spanned<u16> {
    Spanned::new(0..0, 1)
}

fn default_desc() -> u16 {
    1024
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    lcore: Spanned<u32>,
    rx: Spanned<Vec<String>>,
}

/// Validated EAL settings.
/// EAL's log levels by the names `--log-level` takes, most severe first.
pub const LOG_LEVELS: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// The RSS hash fields a port may ask for, by their configuration names.
pub const RSS_FIELDS: [&str; 8] = [
    "ip",
    "tcp",
    "udp",
    "sctp",
    "l3-src-only",
    "l3-dst-only",
    "l4-src-only",
    "l4-dst-only",
];

/// What a port hashes when its configuration says nothing.
pub const DEFAULT_RSS_FIELDS: [&str; 3] = ["ip", "tcp", "udp"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// The lcores in use; the first is the main (control) lcore.
    pub lcores: Vec<u32>,
    /// The `--lcores` form (`0@0,1@1,2@1`) when lcores are placed on CPUs explicitly.
    pub placement: Option<String>,
    pub hugepages: Hugepages,
    pub memory_mb: Option<u32>,
    pub file_prefix: String,
    /// One of [`LOG_LEVELS`] (EAL's `--log-level` names).
    pub log_level: String,
    pub extra_args: Vec<String>,
}

/// A validated data port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    /// DPDK devargs: a PCI address or a vdev string.
    pub device: String,
    pub rx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    /// Index of the port frames received here leave by (diagnostic forwarding modes).
    pub peer: usize,
    /// Names from [`RSS_FIELDS`]; the daemon maps them to DPDK's hash bits.
    pub rss_hash: Vec<String>,
    pub rss_key: Option<Vec<u8>>,
    pub addresses: Vec<std::net::IpAddr>,
    /// Prefix length of each address (the host twin's subnets); full when not given.
    pub prefix_lens: Vec<u8>,
    /// The host TAP twin's interface name, if the port has one.
    pub host_tap: Option<String>,
    /// Where the port is defined, for errors found at run time.
    pub line: usize,
}

impl PortConfig {
    /// A PCI address (`0000:03:00.0` or `03:00.0`) rather than a virtual device.
    pub fn is_pci(&self) -> bool {
        let dev = self.device.split(',').next().unwrap_or("");
        is_pci_address(dev)
    }
}

fn is_pci_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '.']).collect();
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [d, b, s, f] => hex(d, 4) && hex(b, 2) && hex(s, 2) && f.len() == 1 && hex(f, 1),
        [b, s, f] => hex(b, 2) && hex(s, 2) && f.len() == 1 && hex(f, 1),
        _ => false,
    }
}

/// A validated worker: its lcore and the (port index, rx queue) pairs it polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub lcore: u32,
    pub rx: Vec<(usize, u16)>,
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
    /// Capacity of the live configuration: VIP:port entries and real servers.
    pub limits: crate::director::Limits,
    /// The control socket's path: `[control] socket`, else `RVS_SOCKET`, else the default.
    pub socket: PathBuf,
    /// An ipvsadm rules file (`rvsadm -S` output) applied after the TOML's services.
    pub rules: Option<(PathBuf, String)>,
    /// `ipvsadm --set` values (0 = default).
    pub timeouts: (u32, u32, u32),
}

/// Where `rvs` and `rvsadm` meet unless told otherwise (`[control] socket`, `RVS_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvs.sock";

impl Config {
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
        let ports = validate_ports(&source, &raw.ports)?;
        let workers = validate_workers(&source, &eal, &ports, &raw.ports, raw.workers)?;
        let names: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
        let lb = lb::LbConfig::validate(
            &source,
            &raw.services,
            &raw.routes,
            &raw.neighbours,
            &raw.fwmarks,
            &names,
        )?;
        let capacity = |v: &Option<Spanned<u32>>, field: &str, default: u32, max: u32| match v {
            Some(c) if *c.get_ref() == 0 || *c.get_ref() > max => {
                Err(source.error(c.span(), field, format!("between 1 and {max}")))
            }
            Some(c) => Ok(*c.get_ref() as usize),
            None => Ok(default as usize),
        };
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
        let connections = match &raw.dataplane.connections {
            Some(c) if *c.get_ref() < 16 => {
                return Err(source.error(c.span(), "dataplane.connections", "at least 16"));
            }
            Some(c) => *c.get_ref() as usize,
            None => 1 << 20,
        };
        Ok(Config {
            lb,
            connections,
            limits,
            socket: raw
                .control
                .socket
                .map(PathBuf::from)
                .unwrap_or_else(crate::socket::client_path),
            rules,
            timeouts: (raw.timeouts.tcp, raw.timeouts.tcpfin, raw.timeouts.udp),
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

/// EAL's RTE_MAX_LCORE as Debian builds DPDK.
const MAX_LCORES: u32 = 128;

/// Parses an EAL core list: `0-3`, `0,2,4`, `0-1,6`, or with CPU placement as EAL's
/// `--lcores` takes it: `0@0,1@1,2@1` (lcore 2 runs on CPU 1).
pub fn parse_lcore_list(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let part = match part.split_once('@') {
            Some((lcore, cpu)) => {
                cpu.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{cpu:?} is not a CPU number"))?;
                lcore
            }
            None => part,
        };
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{t:?} is not an lcore number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part:?} runs backwards"));
                }
                if b >= MAX_LCORES {
                    return Err(format!("lcores go up to {}", MAX_LCORES - 1));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    let unique: BTreeSet<_> = out.iter().collect();
    if unique.len() != out.len() {
        return Err("an lcore is listed twice".into());
    }
    if out.iter().any(|&l| l >= MAX_LCORES) {
        return Err(format!("lcores go up to {}", MAX_LCORES - 1));
    }
    Ok(out)
}

fn validate_eal(source: &Source, raw: RawEal) -> Result<EalConfig, ConfigError> {
    let lcores = match &raw.lcores {
        Some(l) => {
            parse_lcore_list(l.get_ref()).map_err(|m| source.error(l.span(), "eal.lcores", m))?
        }
        None => vec![0, 1],
    };
    if lcores.len() < 2 {
        let span = raw.lcores.as_ref().map_or(0..0, |l| l.span());
        return Err(source.error(
            span,
            "eal.lcores",
            "needs a main lcore and at least one worker lcore",
        ));
    }
    let log_level = raw.log_level.get_ref().clone();
    if !LOG_LEVELS.contains(&log_level.as_str()) {
        return Err(source.error(
            raw.log_level.span(),
            "eal.log_level",
            format!("unknown level {log_level:?} ({})", LOG_LEVELS.join(", ")),
        ));
    }
    let prefix = raw.file_prefix.get_ref();
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(source.error(
            raw.file_prefix.span(),
            "eal.file_prefix",
            "letters, digits, '-' and '_' only",
        ));
    }
    if let Some(m) = &raw.memory_mb {
        if *m.get_ref() < 64 {
            return Err(source.error(m.span(), "eal.memory_mb", "at least 64 MB"));
        }
    }
    let placement = raw
        .lcores
        .as_ref()
        .map(|l| l.get_ref().replace(' ', ""))
        .filter(|l| l.contains('@'));
    Ok(EalConfig {
        lcores,
        placement,
        hugepages: raw.hugepages,
        memory_mb: raw.memory_mb.map(|m| m.into_inner()),
        file_prefix: prefix.clone(),
        log_level,
        extra_args: raw.extra_args,
    })
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn validate_ports(source: &Source, raw: &[RawPort]) -> Result<Vec<PortConfig>, ConfigError> {
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for (i, p) in raw.iter().enumerate() {
        let name = p.name.get_ref();
        let field = format!("port[{i}].name");
        if name.is_empty() || name.contains([':', ' ', ',']) {
            return Err(source.error(
                p.name.span(),
                field,
                "a port name is non-empty, without ':', ',' or spaces",
            ));
        }
        if index_of.insert(name, i).is_some() {
            return Err(source.error(
                p.name.span(),
                field,
                format!("port name {name:?} is used twice"),
            ));
        }
        if p.device.get_ref().trim().is_empty() {
            return Err(source.error(p.device.span(), format!("port[{i}].device"), "empty device"));
        }
        let q = *p.rx_queues.get_ref();
        if q == 0 || q > 64 {
            return Err(source.error(
                p.rx_queues.span(),
                format!("port[{i}].rx_queues"),
                "1..=64 rx queues",
            ));
        }
    }
    let mut devices: HashMap<&str, usize> = HashMap::new();
    let mut ports = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let dev = p.device.get_ref().as_str();
        if let Some(other) = devices.insert(dev, i) {
            return Err(source.error(
                p.device.span(),
                format!("port[{i}].device"),
                format!("device {dev:?} is already port[{other}]"),
            ));
        }
        let peer = match &p.peer {
            Some(peer) => *index_of.get(peer.get_ref().as_str()).ok_or_else(|| {
                source.error(
                    peer.span(),
                    format!("port[{i}].peer"),
                    format!("no port named {:?}", peer.get_ref()),
                )
            })?,
            // testpmd's paired topology: 0<->1, 2<->3; an odd last port loops to itself.
            None if i ^ 1 < raw.len() => i ^ 1,
            None => i,
        };
        let rss_hash = match &p.rss_hash {
            Some(fields) => fields
                .get_ref()
                .iter()
                .map(|f| {
                    if RSS_FIELDS.contains(&f.as_str()) {
                        Ok(f.clone())
                    } else {
                        Err(source.error(
                            fields.span(),
                            format!("port[{i}].rss_hash"),
                            format!(
                                "unknown hash field {f:?} (one of {})",
                                RSS_FIELDS.join(", ")
                            ),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => DEFAULT_RSS_FIELDS.iter().map(|f| f.to_string()).collect(),
        };
        let rss_key = match &p.rss_key {
            Some(k) => Some(
                parse_hex(k.get_ref())
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        source.error(
                            k.span(),
                            format!("port[{i}].rss_key"),
                            "expected hex bytes, such as \"6d5a6d5a...\"",
                        )
                    })?,
            ),
            None => None,
        };
        let mut addresses = Vec::new();
        let mut prefix_lens = Vec::new();
        for a in &p.addresses {
            let bad = || {
                source.error(
                    a.span(),
                    format!("port[{i}].addresses"),
                    format!("{:?} is not an IP address (IP or IP/LEN)", a.get_ref()),
                )
            };
            let (ip, len) = a.get_ref().split_once('/').unwrap_or((a.get_ref(), ""));
            let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
            let full = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                "" => full,
                l => l.parse().ok().filter(|&l| l <= full).ok_or_else(bad)?,
            };
            addresses.push(ip);
            prefix_lens.push(len);
        }
        let host_tap = match &p.host_tap {
            Some(t) => {
                let name = t.get_ref();
                let ok = !name.is_empty()
                    && name.len() <= 15
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(source.error(
                        t.span(),
                        format!("port[{i}].host_tap"),
                        "an interface name of 1 to 15 letters, digits, '-', '_' or '.'",
                    ));
                }
                Some(name.clone())
            }
            None => None,
        };
        if let Some(mtu) = &p.mtu {
            if *mtu.get_ref() < 68 {
                return Err(source.error(
                    mtu.span(),
                    format!("port[{i}].mtu"),
                    "an MTU is at least 68",
                ));
            }
        }
        ports.push(PortConfig {
            name: p.name.get_ref().clone(),
            device: dev.to_string(),
            rx_queues: *p.rx_queues.get_ref(),
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            mtu: p.mtu.as_ref().map(|m| *m.get_ref()),
            promiscuous: p.promiscuous,
            peer,
            rss_hash,
            rss_key,
            addresses,
            prefix_lens,
            host_tap,
            line: source.line_of(p.name.span().start),
        });
    }
    Ok(ports)
}

fn validate_workers(
    source: &Source,
    eal: &EalConfig,
    ports: &[PortConfig],
    raw_ports: &[RawPort],
    raw: Vec<RawWorker>,
) -> Result<Vec<WorkerConfig>, ConfigError> {
    let worker_lcores = &eal.lcores[1..];
    if raw.is_empty() {
        // Every rx queue, round robin over the worker lcores.
        let mut workers: Vec<WorkerConfig> = worker_lcores
            .iter()
            .map(|&lcore| WorkerConfig {
                lcore,
                rx: Vec::new(),
            })
            .collect();
        let all = ports
            .iter()
            .enumerate()
            .flat_map(|(p, cfg)| (0..cfg.rx_queues).map(move |q| (p, q)));
        let n = workers.len();
        for (k, pq) in all.enumerate() {
            workers[k % n].rx.push(pq);
        }
        workers.retain(|w| !w.rx.is_empty());
        return Ok(workers);
    }
    let index_of: HashMap<&str, usize> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut owner: HashMap<(usize, u16), usize> = HashMap::new();
    let mut lcores_seen = BTreeSet::new();
    let mut workers = Vec::new();
    for (w, rw) in raw.into_iter().enumerate() {
        let lcore = *rw.lcore.get_ref();
        let field = format!("worker[{w}].lcore");
        if lcore == eal.lcores[0] {
            return Err(source.error(
                rw.lcore.span(),
                field,
                format!("lcore {lcore} is the main lcore (first of eal.lcores)"),
            ));
        }
        if !worker_lcores.contains(&lcore) {
            return Err(source.error(
                rw.lcore.span(),
                field,
                format!("lcore {lcore} is not in eal.lcores"),
            ));
        }
        if !lcores_seen.insert(lcore) {
            return Err(source.error(
                rw.lcore.span(),
                field,
                format!("lcore {lcore} has two workers"),
            ));
        }
        let field = format!("worker[{w}].rx");
        if rw.rx.get_ref().is_empty() {
            return Err(source.error(
                rw.rx.span(),
                field,
                "a worker polls at least one \"port:queue\"",
            ));
        }
        let mut rx = Vec::new();
        for item in rw.rx.get_ref() {
            let bad = |m: String| source.error(rw.rx.span(), field.clone(), m);
            let (name, queues) = match item.split_once(':') {
                Some((n, q)) => {
                    let q: u16 = q
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("{item:?}: queue is not a number")))?;
                    (n.trim(), Some(q))
                }
                None => (item.trim(), None),
            };
            let p = *index_of
                .get(name)
                .ok_or_else(|| bad(format!("{item:?}: no port named {name:?}")))?;
            let qs: Vec<u16> = match queues {
                Some(q) if q >= ports[p].rx_queues => {
                    return Err(bad(format!(
                        "{item:?}: port {name:?} has {} rx queue(s)",
                        ports[p].rx_queues
                    )))
                }
                Some(q) => vec![q],
                None => (0..ports[p].rx_queues).collect(),
            };
            for q in qs {
                if let Some(other) = owner.insert((p, q), w) {
                    return Err(bad(format!(
                        "{name}:{q} is already polled by worker[{other}]"
                    )));
                }
                rx.push((p, q));
            }
        }
        workers.push(WorkerConfig { lcore, rx });
    }
    for (p, cfg) in ports.iter().enumerate() {
        for q in 0..cfg.rx_queues {
            if !owner.contains_key(&(p, q)) {
                return Err(source.error(
                    raw_ports[p].rx_queues.span(),
                    format!("port[{p}].rx_queues"),
                    format!("rx queue {}:{q} is polled by no worker", cfg.name),
                ));
            }
        }
    }
    Ok(workers)
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
