//! ipvsadm's rule syntax: the lines `ipvsadm -S` writes and `ipvsadm -R` reads, parsed into
//! typed commands. Errors use ipvsadm's wording where it has one.

use rvs_core::sched::SchedKind;
pub use rvs_core::ForwardMethod;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A virtual service: protocol + address + port (port 0 = all ports), or a firewall mark
/// (a group of VIP:port entries sharing persistence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    Addr(Protocol, SocketAddr),
    Fwmark { mark: u32, ipv6: bool },
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr(Protocol::Tcp, a) => write!(f, "-t {a}"),
            ServiceKey::Addr(Protocol::Udp, a) => write!(f, "-u {a}"),
            ServiceKey::Fwmark { mark, ipv6 } => {
                write!(f, "-f {mark}")?;
                if *ipv6 {
                    f.write_str(" -6")?;
                }
                Ok(())
            }
        }
    }
}

/// How packets reach a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub scheduler: SchedKind,
    /// Persistence timeout in seconds.
    pub persistent: Option<u32>,
    /// Persistence netmask (prefix length).
    pub netmask: Option<u8>,
    pub one_packet: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub service: ServiceKey,
    pub addr: IpAddr,
    pub port: u16,
    pub method: ForwardMethod,
    pub weight: u32,
    pub upper: u32,
    pub lower: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DeleteService(ServiceKey),
    AddServer(ServerSpec),
    EditServer(ServerSpec),
    DeleteServer {
        service: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    Clear,
    /// -L / -l (with -c: connections; with --timeout: the timeouts).
    List(ListOptions),
    /// -Z [service].
    Zero(Option<ServiceKey>),
    /// -S [-n].
    Save,
    /// -R: rules from stdin.
    Restore,
    /// --set tcp tcpfin udp.
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    /// -v / --version.
    Version,
    /// --start-daemon master|backup [--mcast-interface IF] [--syncid N].
    StartDaemon {
        role: crate::sync::Role,
        settings: crate::sync::DaemonSettings,
    },
    /// --stop-daemon master|backup.
    StopDaemon(crate::sync::Role),
}

/// What `-L` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    #[default]
    Default,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOptions {
    pub service: Option<ServiceKey>,
    pub format: ListFormat,
    /// -c: the connection entries instead of the services.
    pub connections: bool,
    /// --timeout: the timeouts instead of the services.
    pub timeout: bool,
    pub exact: bool,
    pub sort: bool,
    /// --daemon: the sync daemons instead of the services.
    pub daemon: bool,
}

impl Command {
    /// True for the commands an `ipvsadm -R` rules file may hold.
    pub fn is_rule(&self) -> bool {
        matches!(
            self,
            Command::AddService(_)
                | Command::EditService(_)
                | Command::DeleteService(_)
                | Command::AddServer(_)
                | Command::EditServer(_)
                | Command::DeleteServer { .. }
                | Command::Clear
        )
    }
}

pub const DEFAULT_PERSISTENCE: u32 = 360;

fn parse_port(s: &str) -> Option<u16> {
    match s {
        "http" | "www" => Some(80),
        "https" => Some(443),
        "domain" => Some(53),
        "smtp" => Some(25),
        "ftp" => Some(21),
        "sip" => Some(5060),
        _ => s.parse().ok(),
    }
}

/// `ADDR[:PORT]` or `[V6ADDR][:PORT]`; the port is None when omitted.
pub fn parse_endpoint(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let addr: IpAddr = addr.parse().ok()?;
        return match after.strip_prefix(':') {
            Some(p) => Some((addr, Some(parse_port(p)?))),
            None if after.is_empty() => Some((addr, None)),
            None => None,
        };
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Some((addr, None));
    }
    let (addr, port) = s.rsplit_once(':')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    Some((IpAddr::V4(addr), Some(parse_port(port)?)))
}

pub fn netmask_prefix(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 128).then_some(n);
    }
    let m: std::net::Ipv4Addr = s.parse().ok()?;
    let bits = u32::from(m);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Parses one ipvsadm command line (without the program name). Blank lines and `#`
/// comments give Ok(None).
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() || words[0].starts_with('#') {
        return Ok(None);
    }
    parse_args(&words).map(Some)
}

/// Short options that take no argument and may be bundled (`-Ln`, `-lnc`).
const BUNDLEABLE: &str = "LlncZSRCgimo6AEDaedvhX";
/// Short options that take an argument, written apart or attached (`-s rr`, `-srr`).
const WITH_ARGUMENT: &str = "tufsMrwxyb";

/// A number of type `T`, at least `min`, or ipvsadm's "illegal WHAT specified".
fn number<T: std::str::FromStr + PartialOrd + From<u8>>(
    word: &str,
    min: u8,
    what: &str,
) -> Result<T, String> {
    word.parse::<T>()
        .ok()
        .filter(|v| *v >= T::from(min))
        .ok_or_else(|| format!("illegal {what} specified"))
}

/// The longest timeout ipvsadm (and the kernel) take: 31 days.
pub const MAX_TIMEOUT: u32 = 86_400 * 31;

/// A timeout in seconds from `min` to 31 days, in ipvsadm's words when it is not.
fn timeout_value(word: &str, min: u32) -> Result<u32, String> {
    word.parse::<u32>()
        .ok()
        .filter(|t| (min..=MAX_TIMEOUT).contains(t))
        .ok_or_else(|| format!("invalid timeout value `{word}' specified"))
}

/// ipvsadm's option names, in the order it checks them (its error messages use them).
const OPTION_NAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// The ipvsadm option a word sets, by its name in [`OPTION_NAMES`].
fn option_name(w: &str) -> Option<&'static str> {
    Some(match w {
        "-n" | "--numeric" => "numeric",
        "-c" | "--connection" => "connection",
        "-t" | "--tcp-service" | "-u" | "--udp-service" | "-f" | "--fwmark-service" => {
            "service-address"
        }
        "-s" | "--scheduler" => "scheduler",
        "-p" | "--persistent" => "persistent",
        "-M" | "--netmask" => "netmask",
        "-r" | "--real-server" => "real-server",
        "-g" | "--gatewaying" | "-i" | "--ipip" | "-m" | "--masquerading" => "forwarding-method",
        "-w" | "--weight" => "weight",
        "-x" | "--u-threshold" => "u-threshold",
        "-y" | "--l-threshold" => "l-threshold",
        "--mcast-interface" => "mcast-interface",
        "--timeout" => "timeout",
        "--daemon" => "daemon",
        "--stats" => "stats",
        "--rate" => "rate",
        "--thresholds" => "thresholds",
        "--persistent-conn" => "persistent-conn",
        "--nosort" => "nosort",
        "--syncid" => "syncid",
        "--exact" | "-X" => "exact",
        "-o" | "--ops" => "ops",
        "--pe" => "pe",
        "-b" | "--sched-flags" => "sched-flags",
        "--mcast-group" => "mcast-group",
        "--mcast-port" => "mcast-port",
        "--mcast-ttl" => "mcast-ttl",
        "--sync-maxlen" => "sync-maxlen",
        _ => return None,
    })
}

/// Which options a command needs, may take, and takes one of at most (ipvsadm's rules:
/// any other is illegal with it); and the command's name in ipvsadm's messages.
type CommandRules = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

fn command_rules(cmd: &str) -> Option<CommandRules> {
    const SERVICE_OPTIONS: &[&str] = &[
        "scheduler",
        "persistent",
        "netmask",
        "ops",
        "pe",
        "sched-flags",
    ];
    const SERVER_OPTIONS: &[&str] = &[
        "forwarding-method",
        "weight",
        "u-threshold",
        "l-threshold",
        "tun-type",
        "tun-port",
        "tun-nocsum",
        "tun-csum",
        "tun-remcsum",
    ];
    let service: &'static [&'static str] = &["service-address"];
    let server: &'static [&'static str] = &["service-address", "real-server"];
    Some(match cmd {
        "-A" => ("add-service", service, SERVICE_OPTIONS, &[]),
        "-E" => ("edit-service", service, SERVICE_OPTIONS, &[]),
        "-D" => ("delete-service", service, &[], &[]),
        "-C" => ("flush", &[], &[], &[]),
        "-L" => (
            "list",
            &[],
            &[
                "numeric",
                "stats",
                "rate",
                "thresholds",
                "persistent-conn",
                "nosort",
                "syncid",
                "exact",
                "tun-info",
            ],
            &["connection", "service-address", "timeout", "daemon"],
        ),
        "-a" => ("add-server", server, SERVER_OPTIONS, &[]),
        "-d" => ("delete-server", server, &[], &[]),
        "-e" => ("edit-server", server, SERVER_OPTIONS, &[]),
        "--set" => ("set", &[], &[], &[]),
        "--start-daemon" => (
            "start-daemon",
            &[],
            &[
                "mcast-interface",
                "syncid",
                "mcast-group",
                "mcast-port",
                "mcast-ttl",
                "sync-maxlen",
            ],
            &[],
        ),
        "--stop-daemon" => ("stop-daemon", &[], &["syncid"], &[]),
        "-R" => ("restore", &[], &[], &[]),
        "-S" => ("save", &[], &["numeric"], &[]),
        "-Z" => ("zero", &[], &["service-address"], &[]),
        _ => return None,
    })
}

/// ipvsadm's check of a command's options, in its order and words.
fn check_options(cmd: &str, given: &[&str]) -> Result<(), String> {
    let Some((name, needed, optional, exclusive)) = command_rules(cmd) else {
        return Ok(());
    };
    let mut first_exclusive: Option<&str> = None;
    for opt in OPTION_NAMES {
        let has = given.contains(&opt);
        if !has {
            if needed.contains(&opt) {
                return Err(format!(
                    "You need to supply the '{opt}' option for the '{name}' command"
                ));
            }
            continue;
        }
        if exclusive.contains(&opt) {
            if let Some(first) = first_exclusive {
                return Err(format!(
                    "The option '{opt}' conflicts with the '{first}' option in the '{name}' command"
                ));
            }
            first_exclusive = Some(opt);
        } else if !needed.contains(&opt) && !optional.contains(&opt) {
            return Err(format!("Illegal '{opt}' option with the '{name}' command"));
        }
    }
    Ok(())
}

/// popt's spellings of one word as separate words: `--name=value`, bundled flags that may
/// end in an option with its value attached (`-At`, `-gw2`, `-srr`), `-p600` (-p's value is
/// optional, so only attached).
fn popt_words(a: &str, out: &mut Vec<String>) {
    if let Some(long) = a.strip_prefix("--") {
        match long.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                out.push(format!("--{name}"));
                out.push(value.to_string());
            }
            _ => out.push(a.to_string()),
        }
        return;
    }
    let Some(short) = a.strip_prefix('-').filter(|b| b.len() > 1) else {
        out.push(a.to_string());
        return;
    };
    let mut split = Vec::new();
    for (i, c) in short.char_indices() {
        let rest = &short[i + c.len_utf8()..];
        if WITH_ARGUMENT.contains(c) || c == 'p' {
            split.push(format!("-{c}"));
            if !rest.is_empty() {
                split.push(rest.to_string());
            }
            out.extend(split);
            return;
        }
        if !BUNDLEABLE.contains(c) {
            // Not popt's bundling (a negative number, an unknown letter): as written.
            out.push(a.to_string());
            return;
        }
        split.push(format!("-{c}"));
    }
    out.extend(split);
}

/// Parses ipvsadm's arguments (the program name may lead); no arguments lists, as
/// `ipvsadm` alone does.
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, String> {
    let mut words: Vec<String> = Vec::with_capacity(args.len());
    for (n, a) in args.iter().map(|a| a.as_ref()).enumerate() {
        if n == 0 && (a == "ipvsadm" || a == "rvsadm") {
            continue;
        }
        popt_words(a, &mut words);
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if words.is_empty() {
        return Ok(Command::List(ListOptions::default()));
    }
    let mut cmd: Option<&str> = None;
    let mut service: Option<ServiceKey> = None;
    let mut ipv6 = false;
    let mut scheduler: Option<String> = None;
    let mut flags: Option<String> = None;
    let mut persistent: Option<u32> = None;
    let mut netmask: Option<u8> = None;
    let mut one_packet = false;
    let mut server: Option<(IpAddr, Option<u16>)> = None;
    let mut method: Option<ForwardMethod> = None;
    let mut weight: Option<u32> = None;
    let (mut upper, mut lower) = (0u32, 0u32);
    let mut list = ListOptions::default();
    let mut timeouts: Option<(u32, u32, u32)> = None;
    let mut daemon_role: Option<crate::sync::Role> = None;
    let mut mcast_interface: Option<String> = None;
    let mut syncid: u8 = 0;
    let (mut mcast_group, mut mcast_port, mut mcast_ttl, mut sync_maxlen) =
        (None, None, None, None);
    let mut i = 0;
    let value = |i: &mut usize, what: &str| -> Result<String, String> {
        *i += 1;
        words
            .get(*i)
            .map(|s| s.to_string())
            .ok_or_else(|| format!("option {what} requires an argument"))
    };
    let mut given: Vec<&'static str> = Vec::new();
    while i < words.len() {
        let w = words[i];
        if let Some(o) = option_name(w) {
            if given.contains(&o) {
                return Err(format!("multiple '{o}' options specified"));
            }
            given.push(o);
        }
        match w {
            "-A" | "--add-service" | "-E" | "--edit-service" | "-D" | "--delete-service" | "-a"
            | "--add-server" | "-e" | "--edit-server" | "-d" | "--delete-server" | "-C"
            | "--clear" | "-L" | "-l" | "--list" | "-Z" | "--zero" | "-S" | "--save" | "-R"
            | "--restore" | "--set" | "-v" | "--version" => {
                if cmd.is_some() {
                    return Err("multiple commands specified".into());
                }
                cmd = Some(match w {
                    "--add-service" => "-A",
                    "--edit-service" => "-E",
                    "--delete-service" => "-D",
                    "--add-server" => "-a",
                    "--edit-server" => "-e",
                    "--delete-server" => "-d",
                    "--clear" => "-C",
                    "-l" | "--list" => "-L",
                    "--zero" => "-Z",
                    "--save" => "-S",
                    "--restore" => "-R",
                    "--version" => "-v",
                    other => other,
                });
                if w == "--set" {
                    let mut t = [0u32; 3];
                    for v in t.iter_mut() {
                        i += 1;
                        let word = words
                            .get(i)
                            .ok_or("--set option requires 3 timeout values")?;
                        *v = timeout_value(word, 0)?;
                    }
                    timeouts = Some((t[0], t[1], t[2]));
                }
            }
            "--start-daemon" | "--stop-daemon" => {
                if cmd.is_some() {
                    return Err("multiple commands specified".into());
                }
                cmd = Some(w);
                let v = value(&mut i, w)?;
                daemon_role = Some(
                    crate::sync::Role::parse(&v)
                        .ok_or("illegal start_daemon parameter specified")?,
                );
            }
            "--mcast-interface" => mcast_interface = Some(value(&mut i, w)?),
            "--syncid" => syncid = number(&value(&mut i, w)?, 0, "syncid")?,
            "--mcast-group" => {
                mcast_group = Some(
                    value(&mut i, w)?
                        .parse::<std::net::Ipv4Addr>()
                        .map_err(|_| "illegal mcast-group specified")?,
                );
            }
            "--mcast-port" => mcast_port = Some(number(&value(&mut i, w)?, 1, "mcast-port")?),
            "--mcast-ttl" => mcast_ttl = Some(number(&value(&mut i, w)?, 1, "mcast-ttl")?),
            "--sync-maxlen" => sync_maxlen = Some(number(&value(&mut i, w)?, 0, "sync-maxlen")?),
            "--daemon" => list.daemon = true,
            "-n" | "--numeric" => {}
            "-c" | "--connection" => list.connections = true,
            "--timeout" => list.timeout = true,
            "--stats" => list.format = ListFormat::Stats,
            "--rate" => list.format = ListFormat::Rate,
            "--thresholds" => list.format = ListFormat::Thresholds,
            "--persistent-conn" => list.format = ListFormat::PersistentConn,
            "--exact" | "-X" => list.exact = true,
            "--sort" => list.sort = true,
            "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                let v = value(&mut i, w)?;
                let (addr, port) =
                    parse_endpoint(&v).ok_or("illegal virtual server address[:port] specified")?;
                let proto = if w == "-t" || w == "--tcp-service" {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                service = Some(ServiceKey::Addr(
                    proto,
                    SocketAddr::new(addr, port.unwrap_or(0)),
                ));
            }
            "-f" | "--fwmark-service" => {
                let v = value(&mut i, w)?;
                let mark: u32 = v
                    .parse()
                    .ok()
                    .filter(|&m| m > 0)
                    .ok_or("illegal virtual server fwmark specified")?;
                service = Some(ServiceKey::Fwmark { mark, ipv6: false });
            }
            "-6" | "--ipv6" => ipv6 = true,
            "-s" | "--scheduler" => scheduler = Some(value(&mut i, w)?),
            "-b" | "--sched-flags" => flags = Some(value(&mut i, w)?),
            "-p" | "--persistent" => {
                persistent = Some(DEFAULT_PERSISTENCE);
                if let Some(next) = words.get(i + 1).filter(|n| !n.starts_with('-')) {
                    persistent = Some(timeout_value(next, 1)?);
                    i += 1;
                }
            }
            "-M" | "--netmask" => {
                let v = value(&mut i, w)?;
                netmask = Some(
                    netmask_prefix(&v).ok_or("illegal virtual server persistent mask specified")?,
                );
            }
            "-o" | "--ops" => one_packet = true,
            "-r" | "--real-server" => {
                let v = value(&mut i, w)?;
                server =
                    Some(parse_endpoint(&v).ok_or("illegal real server address[:port] specified")?);
            }
            "-g" | "--gatewaying" => method = Some(ForwardMethod::Dr),
            "-i" | "--ipip" => method = Some(ForwardMethod::Tun),
            "-m" | "--masquerading" => method = Some(ForwardMethod::Nat),
            "-w" | "--weight" => {
                let v = value(&mut i, w)?;
                weight = Some(
                    v.parse()
                        .ok()
                        .filter(|&w: &u32| w <= 65535)
                        .ok_or("illegal weight specified")?,
                );
            }
            "-x" | "--u-threshold" => {
                upper = value(&mut i, w)?
                    .parse()
                    .map_err(|_| "illegal upper threshold specified")?;
            }
            "-y" | "--l-threshold" => {
                lower = value(&mut i, w)?
                    .parse()
                    .map_err(|_| "illegal lower threshold specified")?;
            }
            other => return Err(format!("invalid option {other:?}")),
        }
        i += 1;
    }
    if let Some(ServiceKey::Fwmark { mark, .. }) = service {
        service = Some(ServiceKey::Fwmark { mark, ipv6 });
    }
    let Some(cmd) = cmd else {
        return Err("no command specified".into());
    };
    check_options(cmd, &given)?;
    match cmd {
        "-C" => return Ok(Command::Clear),
        "-L" => {
            // ipvsadm's rule: no counters with -c, --timeout or --daemon; no
            // --persistent-conn with --timeout or --daemon.
            let counters = matches!(
                list.format,
                ListFormat::Stats | ListFormat::Rate | ListFormat::Thresholds
            );
            if ((list.connections || list.timeout || list.daemon) && counters)
                || ((list.timeout || list.daemon) && list.format == ListFormat::PersistentConn)
            {
                return Err("options conflicts in the list command".into());
            }
            list.service = service;
            return Ok(Command::List(list));
        }
        "-Z" => return Ok(Command::Zero(service)),
        "-S" => return Ok(Command::Save),
        "-R" => return Ok(Command::Restore),
        "-v" => return Ok(Command::Version),
        "--start-daemon" => {
            let mut settings = crate::sync::DaemonSettings::new(
                mcast_interface.as_deref().unwrap_or("eth0"),
                syncid,
            );
            settings.group = mcast_group;
            settings.port = mcast_port;
            settings.ttl = mcast_ttl;
            settings.maxlen = sync_maxlen;
            return Ok(Command::StartDaemon {
                role: daemon_role.ok_or("illegal start_daemon parameter specified")?,
                settings,
            });
        }
        "--stop-daemon" => {
            return Ok(Command::StopDaemon(
                daemon_role.ok_or("illegal start_daemon parameter specified")?,
            ))
        }
        "--set" => {
            let (tcp, tcpfin, udp) = timeouts.unwrap_or_default();
            return Ok(Command::SetTimeouts { tcp, tcpfin, udp });
        }
        _ => {}
    }
    let key = service.ok_or("service address not specified")?;
    let need_service = || -> Result<ServiceSpec, String> {
        if let ServiceKey::Addr(proto, a) = key {
            if a.port() == 0 && persistent.is_none() {
                return Err("Zero port specified for non-persistent service".into());
            }
            if one_packet && proto != Protocol::Udp {
                return Err("One-Packet Scheduling is only for UDP virtual services".into());
            }
        }
        let name = scheduler.as_deref().unwrap_or("wlc");
        let mut sched: SchedKind = name.parse()?;
        if let Some(f) = &flags {
            sched = sched.with_flags(f)?;
        }
        Ok(ServiceSpec {
            key,
            scheduler: sched,
            persistent,
            netmask,
            one_packet,
        })
    };
    let need_server = || -> Result<ServerSpec, String> {
        let (addr, port) = server.ok_or("real server address not specified")?;
        let service_port = match key {
            ServiceKey::Addr(_, a) => a.port(),
            ServiceKey::Fwmark { .. } => 0,
        };
        let method = method.unwrap_or(ForwardMethod::Dr);
        // As ipvsadm: a direct-routing or tunnelled server of an address service (not a
        // mark) takes the service's port, whatever was written (-a and -e only).
        let forced = matches!(cmd, "-a" | "-e")
            && matches!(key, ServiceKey::Addr(..))
            && method != ForwardMethod::Nat;
        Ok(ServerSpec {
            service: key,
            addr,
            port: if forced {
                service_port
            } else {
                port.unwrap_or(service_port)
            },
            method,
            weight: weight.unwrap_or(1),
            upper,
            lower,
        })
    };
    Ok(match cmd {
        "-A" => Command::AddService(need_service()?),
        "-E" => Command::EditService(need_service()?),
        "-D" => Command::DeleteService(key),
        "-a" => Command::AddServer(need_server()?),
        "-e" => Command::EditServer(need_server()?),
        _ => {
            let s = need_server()?;
            Command::DeleteServer {
                service: key,
                addr: s.addr,
                port: s.port,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ipvsadm's own checks before it asks the kernel (ipvsadm.c's process_options).
    /// popt's spellings mean what they mean to ipvsadm.
    /// ipvsadm's table of commands and options, with its words.
    #[test]
    fn options_legal_for_the_command() {
        let err = |l: &str| parse_args(&l.split_whitespace().collect::<Vec<_>>()).unwrap_err();
        assert_eq!(
            err("-A -t 1.1.1.1:80 -s rr -s wrr"),
            "multiple 'scheduler' options specified"
        );
        assert_eq!(
            err("-a -t 1.1.1.1:80 -r 10.0.0.2 -g -m"),
            "multiple 'forwarding-method' options specified"
        );
        assert_eq!(
            err("-A -t 1.1.1.1:80 -w 3"),
            "Illegal 'weight' option with the 'add-service' command"
        );
        assert_eq!(
            err("-D -t 1.1.1.1:80 -s rr"),
            "Illegal 'scheduler' option with the 'delete-service' command"
        );
        assert_eq!(
            err("-a -t 1.1.1.1:80 -w 2"),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(
            err("-C -n"),
            "Illegal 'numeric' option with the 'flush' command"
        );
        assert_eq!(
            err("-L -c --timeout"),
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(
            err("-Z -n"),
            "Illegal 'numeric' option with the 'zero' command"
        );
        assert_eq!(
            err("-L -s rr"),
            "Illegal 'scheduler' option with the 'list' command"
        );
        assert!(parse_args(&["-S", "-n"]).is_ok());
        assert!(parse_args(&["-L", "-n", "--stats", "--exact", "-t", "1.1.1.1:80"]).is_ok());
        assert!(parse_args(&[
            "--start-daemon",
            "master",
            "--mcast-interface",
            "lan",
            "--syncid",
            "3"
        ])
        .is_ok());
        assert_eq!(
            err("--stop-daemon master --mcast-interface lan"),
            "Illegal 'mcast-interface' option with the 'stop-daemon' command"
        );
    }

    #[test]
    fn popt_spellings() {
        let same = |a: &str, b: &str| {
            let w = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
            assert_eq!(parse_args(&w(a)), parse_args(&w(b)), "{a} vs {b}");
            assert!(parse_args(&w(a)).is_ok(), "{a}");
        };
        same("-At 10.0.0.1:80 -srr", "-A -t 10.0.0.1:80 -s rr");
        same(
            "-A -t 10.0.0.1:80 --scheduler=wrr -p600",
            "-A -t 10.0.0.1:80 -s wrr -p 600",
        );
        same("-A -t 10.0.0.1:80 -p", "-A -t 10.0.0.1:80 -p 360");
        same(
            "-at 10.0.0.1:80 -r10.0.0.2 -gw 2",
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -g -w 2",
        );
        same(
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -mw3",
            "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -w 3",
        );
        same("-Ln --tcp-service=10.0.0.1:80", "-L -n -t 10.0.0.1:80");
        let Err(e) = parse_args(&["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", "-1"]) else {
            panic!()
        };
        assert_eq!(
            e, "illegal weight specified",
            "a negative value stays a value"
        );
    }

    #[test]
    fn ipvsadm_s_own_checks() {
        let err = |l: &str| parse_args(&l.split_whitespace().collect::<Vec<_>>()).unwrap_err();
        assert_eq!(
            err("-A -t 10.0.0.1:0"),
            "Zero port specified for non-persistent service"
        );
        assert!(parse_args(&["-A", "-t", "10.0.0.1:0", "-p"]).is_ok());
        assert!(parse_args(&["-A", "-f", "7"]).is_ok(), "a mark has no port");
        assert_eq!(
            err("-A -t 10.0.0.1:80 -o"),
            "One-Packet Scheduling is only for UDP virtual services"
        );
        assert!(parse_args(&["-A", "-u", "10.0.0.1:53", "-o"]).is_ok());
        for l in [
            "-L -c --stats",
            "-L --timeout --rate",
            "-L --daemon --thresholds",
            "-L --timeout --persistent-conn",
        ] {
            assert_eq!(err(l), "options conflicts in the list command", "{l}");
        }
        // A DR (default) or TUN server takes the service's port; NAT keeps its own.
        let port_of = |l: &str| match parse_args(&l.split_whitespace().collect::<Vec<_>>()) {
            Ok(Command::AddServer(s) | Command::EditServer(s)) => s.port,
            other => panic!("{other:?}"),
        };
        assert_eq!(port_of("-a -t 10.0.0.1:80 -r 10.0.0.2:8080"), 80);
        assert_eq!(port_of("-e -t 10.0.0.1:80 -r 10.0.0.2:8080 -i"), 80);
        assert_eq!(port_of("-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m"), 8080);
        assert_eq!(
            port_of("-a -f 7 -r 10.0.0.2:8080 -g"),
            8080,
            "marks keep it"
        );
        match parse_args(&["-d", "-t", "10.0.0.1:80", "-r", "10.0.0.2:8080"]) {
            Ok(Command::DeleteServer { port, .. }) => assert_eq!(port, 8080, "-d as written"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sync_daemon_commands() {
        use crate::sync::{DaemonSettings, Role};
        assert_eq!(
            parse_args(&[
                "--start-daemon",
                "master",
                "--mcast-interface",
                "lan",
                "--syncid",
                "30"
            ]),
            Ok(Command::StartDaemon {
                role: Role::Master,
                settings: DaemonSettings::new("lan", 30)
            })
        );
        let mut unicast = DaemonSettings::new("lan", 0);
        unicast.group = Some("10.0.0.3".parse().unwrap());
        unicast.port = Some(9000);
        assert_eq!(
            parse_args(&[
                "--start-daemon",
                "master",
                "--mcast-interface",
                "lan",
                "--mcast-group",
                "10.0.0.3",
                "--mcast-port",
                "9000"
            ]),
            Ok(Command::StartDaemon {
                role: Role::Master,
                settings: unicast
            })
        );
        assert_eq!(
            parse_args(&["--start-daemon", "backup"]),
            Ok(Command::StartDaemon {
                role: Role::Backup,
                settings: DaemonSettings::new("eth0", 0)
            }),
            "ipvsadm's default interface"
        );
        assert_eq!(
            parse_args(&["--stop-daemon", "backup"]),
            Ok(Command::StopDaemon(Role::Backup))
        );
        assert!(parse_args(&["--start-daemon", "both"]).is_err());
        assert!(parse_args(&["--start-daemon", "master", "--syncid", "256"]).is_err());
        match parse_args(&["-L", "--daemon"]) {
            Ok(Command::List(o)) => assert!(o.daemon),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn services_and_servers_from_the_howto() {
        let c = parse_line("ipvsadm -A -t 192.168.1.100:80 -s wrr")
            .unwrap()
            .unwrap();
        let Command::AddService(s) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            s.key,
            ServiceKey::Addr(Protocol::Tcp, "192.168.1.100:80".parse().unwrap())
        );
        assert_eq!(s.scheduler, SchedKind::Wrr);
        let c = parse_line("-a -t 192.168.1.100:80 -r 10.0.0.1:80 -m -w 3")
            .unwrap()
            .unwrap();
        let Command::AddServer(r) = c else { panic!() };
        assert_eq!((r.method, r.weight, r.port), (ForwardMethod::Nat, 3, 80));
        let c = parse_line("-A -t 192.168.1.100:0 -s wlc -p 600")
            .unwrap()
            .unwrap();
        let Command::AddService(s) = c else { panic!() };
        assert_eq!(s.persistent, Some(600));
        let c = parse_line("-A -f 10 -s rr -p").unwrap().unwrap();
        let Command::AddService(s) = c else { panic!() };
        assert_eq!(
            (s.key, s.persistent),
            (
                ServiceKey::Fwmark {
                    mark: 10,
                    ipv6: false
                },
                Some(360)
            )
        );
        let c = parse_line("-a -f 10 -r 10.0.0.2 -g").unwrap().unwrap();
        let Command::AddServer(r) = c else { panic!() };
        assert_eq!((r.port, r.method, r.weight), (0, ForwardMethod::Dr, 1));
    }

    #[test]
    fn ipv6_flags_and_masks() {
        let c = parse_line("-A -u [2001:db8::1]:53 -s mh -b mh-fallback,mh-port -p 30 -M 64 -o")
            .unwrap()
            .unwrap();
        let Command::AddService(s) = c else { panic!() };
        assert_eq!(
            s.key,
            ServiceKey::Addr(Protocol::Udp, "[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(s.scheduler.flags(), vec!["mh-fallback", "mh-port"]);
        assert_eq!((s.netmask, s.one_packet), (Some(64), true));
        let c = parse_line("-A -t 1.2.3.4:80 -p 100 -M 255.255.255.0")
            .unwrap()
            .unwrap();
        let Command::AddService(s) = c else { panic!() };
        assert_eq!((s.netmask, s.scheduler), (Some(24), SchedKind::Wlc));
    }

    #[test]
    fn errors_use_ipvsadm_wording() {
        let e = |l: &str| parse_line(l).unwrap_err();
        assert_eq!(
            e("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 70000"),
            "illegal weight specified"
        );
        assert_eq!(
            e("-A -t 1.2.3.4:x"),
            "illegal virtual server address[:port] specified"
        );
        assert_eq!(
            e("-a -t 1.2.3.4:80 -r nothing"),
            "illegal real server address[:port] specified"
        );
        assert!(e("-A -t 1.2.3.4:80 -s fast").contains("unknown scheduler"));
        assert_eq!(e("-A -a -t 1.2.3.4:80"), "multiple commands specified");
        assert_eq!(e("-t 1.2.3.4:80"), "no command specified");
        assert!(e("-A -t 1.2.3.4:80 --bogus").contains("invalid option"));
        assert_eq!(parse_line("# comment").unwrap(), None);
    }

    #[test]
    fn listing_options_bundle_as_ipvsadm_allows() {
        let l = |a: &[&str]| parse_args(a).unwrap();
        assert_eq!(l(&[]), Command::List(ListOptions::default()));
        assert_eq!(l(&["-Ln"]), Command::List(ListOptions::default()));
        let Command::List(o) = l(&["ipvsadm", "-lnc"]) else {
            panic!()
        };
        assert!(o.connections);
        let Command::List(o) = l(&["-L", "-n", "--stats", "--exact", "--sort"]) else {
            panic!()
        };
        assert_eq!((o.format, o.exact, o.sort), (ListFormat::Stats, true, true));
        let Command::List(o) = l(&["-L", "-t", "1.2.3.4:80", "--rate"]) else {
            panic!()
        };
        assert_eq!(o.format, ListFormat::Rate);
        assert!(o.service.is_some());
        assert_eq!(
            l(&["--set", "900", "120", "300"]),
            Command::SetTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300
            }
        );
        assert_eq!(l(&["-Sn"]), Command::Save);
        assert_eq!(
            l(&["-Z", "-u", "1.2.3.4:53"]),
            Command::Zero(Some(ServiceKey::Addr(
                Protocol::Udp,
                "1.2.3.4:53".parse().unwrap()
            )))
        );
        assert_eq!(
            parse_args(&["--set", "1", "x", "3"]).unwrap_err(),
            "invalid timeout value `x' specified"
        );
        // ipvsadm's bounds: 0 to 31 days for --set, 1 to 31 days for -p.
        assert_eq!(
            parse_args(&["--set", "4294967295", "0", "0"]).unwrap_err(),
            "invalid timeout value `4294967295' specified"
        );
        assert!(parse_args(&["--set", "2678400", "0", "0"]).is_ok());
        assert_eq!(
            parse_args(&["--set", "1", "2"]).unwrap_err(),
            "--set option requires 3 timeout values"
        );
        assert_eq!(
            parse_args(&["-A", "-t", "1.2.3.4:80", "-p", "2678401"]).unwrap_err(),
            "invalid timeout value `2678401' specified"
        );
        assert!(parse_args(&["-A", "-t", "1.2.3.4:80", "-p", "0"]).is_err());
        assert!(!l(&["-R"]).is_rule());
        let Command::EditServer(e) = l(&["-e", "-t", "1.2.3.4:80", "-r", "10.0.0.1", "-w", "6"])
        else {
            panic!()
        };
        assert_eq!(e.weight, 6);
    }
}
