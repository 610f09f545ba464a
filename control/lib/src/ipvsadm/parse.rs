//! An ipvsadm command line into a [`Command`], with ipvsadm 1.31's checks in its order and
//! its words and exit statuses: the first option must be a command (else "Try ..."), each
//! option is checked as it comes, popt's errors end the reading, then leftovers, scheduler
//! flags, the table of legal options, and the per-command rules.

use super::names::{host_v4, inet_aton, service_port};
use super::popt::{read, Opt, Token};
use super::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a command line fails, as ipvsadm reports it: the text on stderr (without the final
/// new line) and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub status: i32,
}

impl Failure {
    fn fail(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status: 2,
        }
    }

    /// ipvsadm's answer to a line that does not start with a command.
    pub fn try_help(program: &str) -> Failure {
        Failure {
            message: format!("Try `{program} -h' or '{program} --help' for more information."),
            status: 255,
        }
    }
}

/// ipvsadm's option names (its messages use them), by option.
fn option_name(o: Opt) -> Option<&'static str> {
    use Opt::*;
    Some(match o {
        Numeric => "numeric",
        Connection => "connection",
        Tcp | Udp | Sctp | Fwmark => "service-address",
        Scheduler => "scheduler",
        Persistent => "persistent",
        Netmask => "netmask",
        RealServer => "real-server",
        Masquerading | Ipip | Gatewaying => "forwarding-method",
        Weight => "weight",
        UThreshold => "u-threshold",
        LThreshold => "l-threshold",
        McastInterface => "mcast-interface",
        Timeout => "timeout",
        Daemon => "daemon",
        Stats => "stats",
        Rate => "rate",
        Thresholds => "thresholds",
        PersistentConn => "persistent-conn",
        NoSort => "nosort",
        SyncId => "syncid",
        Exact => "exact",
        Ops => "ops",
        Pe => "pe",
        SchedFlags => "sched-flags",
        McastGroup => "mcast-group",
        McastPort => "mcast-port",
        McastTtl => "mcast-ttl",
        SyncMaxlen => "sync-maxlen",
        TunInfo => "tun-info",
        TunType => "tun-type",
        TunPort => "tun-port",
        TunNocsum => "tun-nocsum",
        TunCsum => "tun-csum",
        TunRemcsum => "tun-remcsum",
        _ => return None,
    })
}

/// strtol over the whole word, within `min..=max` (ipvsadm's string_to_number).
fn whole_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let v: i64 = s.parse().ok()?;
    (min..=max).contains(&v).then_some(v)
}

/// What ipvsadm's parse_service finds in `host[:port]` / `[v6]:port`.
struct Endpoint {
    addr: IpAddr,
    port: Option<u16>,
}

fn parse_endpoint_as_ipvsadm(word: &str, proto: &str) -> Option<Endpoint> {
    if word.is_empty() || word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, port) = if let Some(rest) = word.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, Some(after.strip_prefix(':')?))
    } else if word.parse::<Ipv6Addr>().is_ok() {
        (word, None)
    } else {
        match word.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (word, None),
        }
    };
    let addr = if let Ok(v6) = host.parse::<Ipv6Addr>() {
        IpAddr::V6(v6)
    } else if word.starts_with('[') {
        return None;
    } else {
        IpAddr::V4(inet_aton(host).or_else(|| host_v4(host))?)
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            whole_number(p, 0, 65535)
                .map(|n| n as u16)
                .or_else(|| service_port(p, proto))?,
        ),
    };
    Some(Endpoint { addr, port })
}

fn timeout(word: &str, min: i64) -> Result<u32, Failure> {
    whole_number(word, min, i64::from(MAX_TIMEOUT))
        .map(|t| t as u32)
        .ok_or_else(|| Failure::fail(format!("invalid timeout value `{word}' specified")))
}

/// ipvsadm's check of a command's options against its table, in its order and words.
fn check_options(cmd: &str, given: &[&str]) -> Result<(), Failure> {
    let Some((name, needed, optional, exclusive)) = command_rules(cmd) else {
        return Ok(());
    };
    let mut first_exclusive: Option<&str> = None;
    for opt in OPTION_NAMES {
        if !given.contains(&opt) {
            if needed.contains(&opt) {
                return Err(Failure::fail(format!(
                    "You need to supply the '{opt}' option for the '{name}' command"
                )));
            }
            continue;
        }
        if exclusive.contains(&opt) {
            if let Some(first) = first_exclusive {
                return Err(Failure::fail(format!(
                    "The option '{opt}' conflicts with the '{first}' option in the '{name}' command"
                )));
            }
            first_exclusive = Some(opt);
        } else if !needed.contains(&opt) && !optional.contains(&opt) {
            return Err(Failure::fail(format!(
                "Illegal '{opt}' option with the '{name}' command"
            )));
        }
    }
    Ok(())
}

/// ipvsadm's rules for a tunnel type's options (port needed for gue, checksum options
/// exclusive, none with ipip).
fn check_tunnel(tun: TunnelType, given: &[&str]) -> Result<(), Failure> {
    let (name, rules) = match tun {
        TunnelType::Ipip => ("ipip", ['x', 'x', 'x', 'x']),
        TunnelType::Gue => ("gue", ['+', '1', '1', '1']),
        TunnelType::Gre => ("gre", ['x', '1', '1', 'x']),
    };
    let opts = ["tun-port", "tun-nocsum", "tun-csum", "tun-remcsum"];
    let mut first: Option<&str> = None;
    for (opt, rule) in opts.into_iter().zip(rules) {
        if !given.contains(&opt) {
            if rule == '+' {
                return Err(Failure::fail(format!(
                    "You need to supply the '{opt}' option for the '{name}' tunnel type"
                )));
            }
            continue;
        }
        match rule {
            'x' => {
                return Err(Failure::fail(format!(
                    "Illegal '{opt}' option with the '{name}' tunnel type"
                )))
            }
            '1' => {
                if let Some(f) = first {
                    return Err(Failure::fail(format!(
                        "The option '{opt}' conflicts with the '{f}' option in the '{name}' tunnel type"
                    )));
                }
                first = Some(opt);
            }
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's `-b` words as flag bits (1, 2, 4), checked against the scheduler.
fn sched_flag_bits(sched: &str, arg: &str) -> Result<u8, Failure> {
    let mut bits = 0;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let (bit, only) = match flag {
            "flag-1" => (1, None),
            "flag-2" => (2, None),
            "flag-3" => (4, None),
            "sh-fallback" => (1, Some("sh")),
            "sh-port" => (2, Some("sh")),
            "mh-fallback" => (1, Some("mh")),
            "mh-port" => (2, Some("mh")),
            _ => return Err(Failure::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        if only.is_some_and(|s| s != sched) {
            return Err(Failure::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
        bits |= bit;
    }
    Ok(bits)
}

/// Parses an ipvsadm command line (without the program name; `program` is how ipvsadm
/// names itself in "Try `ipvsadm -h'"). No arguments at all lists, as `ipvsadm` alone does.
pub fn parse_command<S: AsRef<str>>(args: &[S], program: &str) -> Result<Command, Failure> {
    if args.is_empty() {
        return Ok(Command::List(ListOptions::default()));
    }
    let (tokens, leftovers) = read(args);
    let mut tokens = tokens.into_iter();
    let try_help = || Failure::try_help(program);
    let (cmd, daemon_role) = match tokens.next() {
        Some(Token::Opt { opt, value, .. }) => match opt {
            Opt::Help => return Ok(Command::Help),
            Opt::Version => return Ok(Command::Version),
            Opt::StartDaemon | Opt::StopDaemon => {
                let role = crate::sync::Role::parse(value.as_deref().unwrap_or(""));
                let Some(role) = role else {
                    return Err(Failure::fail(if opt == Opt::StartDaemon {
                        "illegal start-daemon parameter specified"
                    } else {
                        "illegal start_daemon specified"
                    }));
                };
                (opt, Some(role))
            }
            Opt::Add
            | Opt::Edit
            | Opt::Delete
            | Opt::Clear
            | Opt::List
            | Opt::Zero
            | Opt::AddServer
            | Opt::EditServer
            | Opt::DeleteServer
            | Opt::Set
            | Opt::Restore
            | Opt::Save => (opt, None),
            _ => return Err(try_help()),
        },
        _ => return Err(try_help()),
    };

    // The service being built, as ipvsadm's ipvs_service_t: address family 0 until set.
    let mut proto = Protocol::Tcp;
    let mut svc_addr: Option<IpAddr> = None;
    let mut svc_port: u16 = 0;
    let mut fwmark: u32 = 0;
    let mut fwmark_v6 = false;
    let mut scheduler = String::new();
    let mut persistent: Option<u32> = None;
    let mut netmask: Option<Netmask> = None;
    let mut one_packet = false;
    let mut pe: Option<String> = None;
    let mut flags_arg: Option<String> = None;
    let mut server: Option<(IpAddr, u16)> = None;
    let mut method = ForwardMethod::Dr;
    let mut weight: u32 = 1;
    let (mut upper, mut lower) = (0u32, 0u32);
    let mut list = ListOptions::default();
    let mut tun = TunnelType::Ipip;
    let mut tun_port: u16 = 0;
    let mut tun_csum = rvs_core::TunnelCsum::NoCsum;
    let mut settings = crate::sync::DaemonSettings::new("", 0);
    let mut given: Vec<&'static str> = Vec::new();

    for token in tokens {
        let (opt, word, value) = match token {
            Token::Opt { opt, word, value } => (opt, word, value),
            Token::Bad { word, reason } => {
                return Err(Failure {
                    message: format!("{word}: {reason}"),
                    status: 255,
                })
            }
        };
        if let Some(name) = option_name(opt) {
            if given.contains(&name) {
                return Err(Failure::fail(format!(
                    "multiple '{name}' options specified"
                )));
            }
            given.push(name);
        }
        let v = value.unwrap_or_default();
        match opt {
            Opt::Tcp | Opt::Udp | Opt::Sctp => {
                proto = match opt {
                    Opt::Udp => Protocol::Udp,
                    Opt::Sctp => Protocol::Sctp,
                    _ => Protocol::Tcp,
                };
                let e = parse_endpoint_as_ipvsadm(&v, proto.word()).ok_or_else(|| {
                    Failure::fail("illegal virtual server address[:port] specified")
                })?;
                svc_addr = Some(e.addr);
                svc_port = e.port.unwrap_or(svc_port);
            }
            Opt::Fwmark => {
                fwmark = whole_number(&v, 1, i64::from(u32::MAX))
                    .map(|m| m as u32)
                    .ok_or_else(|| {
                        Failure::fail(format!("invalid fwmark value `{v}' specified"))
                    })?;
                svc_addr = None;
                proto = Protocol::Tcp;
            }
            Opt::Scheduler => scheduler = v.chars().take(15).collect(),
            Opt::Persistent => {
                persistent = Some(match value_given(&v) {
                    Some(w) => timeout(w, 1)?,
                    None => DEFAULT_PERSISTENCE,
                });
            }
            Opt::Netmask => {
                let v6 = fwmark_v6 || svc_addr.is_some_and(|a| a.is_ipv6());
                netmask = Some(if v6 {
                    let n = atoi(&v);
                    if !(1..=128).contains(&n) {
                        return Err(Failure::fail("illegal ipv6 netmask specified"));
                    }
                    Netmask::Prefix(n as u8)
                } else {
                    Netmask::V4(inet_aton(&v).or_else(|| host_v4(&v)).ok_or_else(|| {
                        Failure::fail("illegal virtual server persistent mask specified")
                    })?)
                });
            }
            Opt::RealServer => {
                let e = parse_endpoint_as_ipvsadm(&v, proto.word())
                    .ok_or_else(|| Failure::fail("illegal real server address[:port] specified"))?;
                server = Some((e.addr, e.port.unwrap_or(svc_port)));
            }
            Opt::Ipip => method = ForwardMethod::Tun,
            Opt::Gatewaying => method = ForwardMethod::Dr,
            Opt::Masquerading => method = ForwardMethod::Nat,
            Opt::Weight => {
                weight = whole_number(&v, 0, i64::from(i32::MAX))
                    .ok_or_else(|| Failure::fail("illegal weight specified"))?
                    as u32;
            }
            Opt::UThreshold => {
                upper = whole_number(&v, 0, i64::from(i32::MAX))
                    .ok_or_else(|| Failure::fail("illegal u_threshold specified"))?
                    as u32;
            }
            Opt::LThreshold => {
                lower = whole_number(&v, 0, i64::from(i32::MAX))
                    .ok_or_else(|| Failure::fail("illegal l_threshold specified"))?
                    as u32;
            }
            Opt::Connection => list.connections = true,
            Opt::Numeric => list.numeric = true,
            Opt::McastInterface => settings.interface = v.chars().take(15).collect(),
            Opt::SyncId => {
                settings.syncid = whole_number(&v, 0, 255)
                    .ok_or_else(|| Failure::fail("illegal syncid specified"))?
                    as u8;
            }
            Opt::Timeout => list.timeout = true,
            Opt::Daemon => list.daemon = true,
            Opt::Stats => list.stats = true,
            Opt::Rate => list.rate = true,
            Opt::Thresholds => list.thresholds = true,
            Opt::PersistentConn => list.persistent_conn = true,
            Opt::NoSort => list.nosort = true,
            Opt::Sort => {}
            Opt::Exact => list.exact = true,
            Opt::Ipv6 => {
                if fwmark == 0 {
                    return Err(Failure::fail("-6 used before -f\n"));
                }
                fwmark_v6 = true;
            }
            Opt::Ops => one_packet = true,
            Opt::Pe => pe = Some(v.chars().take(32).collect()),
            Opt::SchedFlags => flags_arg = Some(v),
            Opt::McastGroup => {
                let g: IpAddr = if v.contains(':') {
                    v.parse::<Ipv6Addr>()
                        .ok()
                        .filter(|g| g.is_multicast())
                        .ok_or_else(|| Failure::fail(format!("invalid IPv6 mcast-group `{v}'")))?
                        .into()
                } else {
                    v.parse::<Ipv4Addr>()
                        .ok()
                        .filter(|g| g.is_multicast())
                        .ok_or_else(|| Failure::fail(format!("invalid IPv4 mcast-group `{v}'")))?
                        .into()
                };
                settings.group = Some(g);
            }
            Opt::McastPort => {
                settings.port = Some(
                    whole_number(&v, 1, 65535)
                        .ok_or_else(|| Failure::fail("illegal mcast-port specified"))?
                        as u16,
                );
            }
            Opt::McastTtl => {
                settings.ttl = Some(
                    whole_number(&v, 1, 255)
                        .ok_or_else(|| Failure::fail("illegal mcast-ttl specified"))?
                        as u8,
                );
            }
            Opt::SyncMaxlen => {
                settings.maxlen = Some(
                    whole_number(&v, 1, 65535 - 20 - 8)
                        .ok_or_else(|| Failure::fail("illegal sync-maxlen specified"))?
                        as u16,
                );
            }
            Opt::TunInfo => list.tun_info = true,
            Opt::TunType => {
                tun = match v.as_str() {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    _ => return Err(Failure::fail("illegal tunnel type specified")),
                };
            }
            Opt::TunPort => {
                tun_port = whole_number(&v, 1, 65535)
                    .ok_or_else(|| Failure::fail("illegal tunnel port specified"))?
                    as u16;
            }
            // ipvsadm ORs the flags; the table above lets one through.
            Opt::TunNocsum => {}
            Opt::TunCsum => tun_csum = rvs_core::TunnelCsum::Csum,
            Opt::TunRemcsum => tun_csum = rvs_core::TunnelCsum::RemCsum,
            _ => return Err(Failure::fail(format!("invalid option `{word}'"))),
        }
    }

    let mut leftovers = leftovers.into_iter();
    let mut timeouts = None;
    if cmd == Opt::Set {
        let (a, b, c) = (leftovers.next(), leftovers.next(), leftovers.next());
        let (Some(a), Some(b), Some(c)) = (a, b, c) else {
            return Err(Failure::fail("--set option requires 3 timeout values"));
        };
        timeouts = Some((timeout(&a, 0)?, timeout(&b, 0)?, timeout(&c, 0)?));
    }
    if let Some(extra) = leftovers.next() {
        return Err(Failure::fail(format!("unexpected argument {extra}")));
    }
    let sched_name = if scheduler.is_empty() {
        "wlc"
    } else {
        scheduler.as_str()
    };
    let flag_bits = match &flags_arg {
        Some(a) => sched_flag_bits(sched_name, a)?,
        None => 0,
    };
    let cmd_word = match cmd {
        Opt::Add => "-A",
        Opt::Edit => "-E",
        Opt::Delete => "-D",
        Opt::Clear => "-C",
        Opt::List => "-L",
        Opt::Zero => "-Z",
        Opt::AddServer => "-a",
        Opt::EditServer => "-e",
        Opt::DeleteServer => "-d",
        Opt::Set => "--set",
        Opt::Restore => "-R",
        Opt::Save => "-S",
        Opt::StartDaemon => "--start-daemon",
        _ => "--stop-daemon",
    };
    check_options(cmd_word, &given)?;

    let key = match (fwmark, svc_addr) {
        (0, Some(a)) => Some(ServiceKey::Addr(proto, SocketAddr::new(a, svc_port))),
        (0, None) => None,
        (mark, _) => Some(ServiceKey::Fwmark {
            mark,
            ipv6: fwmark_v6,
        }),
    };
    let svc_v6 = fwmark_v6 || svc_addr.is_some_and(|a| a.is_ipv6());

    if matches!(cmd, Opt::Add | Opt::Edit) {
        if fwmark == 0 && svc_port == 0 && persistent.is_none() {
            return Err(Failure::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        if one_packet && fwmark == 0 && proto != Protocol::Udp {
            return Err(Failure::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
    }
    let mut server_port = server.map(|s| s.1).unwrap_or(0);
    if matches!(cmd, Opt::AddServer | Opt::EditServer) {
        if fwmark == 0 && method != ForwardMethod::Nat {
            server_port = svc_port;
        }
        if server.is_some_and(|(a, _)| a.is_ipv6() != svc_v6) && method != ForwardMethod::Tun {
            return Err(Failure::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tunnel_opts = [
            "tun-type",
            "tun-port",
            "tun-nocsum",
            "tun-csum",
            "tun-remcsum",
        ];
        if given.iter().any(|g| tunnel_opts.contains(g)) && method != ForwardMethod::Tun {
            return Err(Failure::fail("Tunnel options conflict with forward method"));
        }
        check_tunnel(tun, &given)?;
    }

    match cmd {
        Opt::List => {
            let counters = list.stats || list.rate || list.thresholds;
            if ((list.connections || list.timeout || list.daemon) && counters)
                || ((list.timeout || list.daemon) && list.persistent_conn)
            {
                return Err(Failure::fail("options conflicts in the list command"));
            }
            list.service = key;
            return Ok(Command::List(list));
        }
        Opt::Restore => return Ok(Command::Restore),
        Opt::Save => {
            return Ok(Command::Save {
                numeric: list.numeric,
            })
        }
        Opt::Clear => return Ok(Command::Clear),
        Opt::Zero => return Ok(Command::Zero(key)),
        Opt::Set => {
            let (tcp, tcpfin, udp) = timeouts.unwrap_or_default();
            return Ok(Command::SetTimeouts { tcp, tcpfin, udp });
        }
        Opt::StartDaemon => {
            if settings.interface.is_empty() {
                settings.interface = "eth0".into();
            }
            return Ok(Command::StartDaemon {
                role: daemon_role.unwrap_or(crate::sync::Role::Master),
                settings,
            });
        }
        Opt::StopDaemon => {
            return Ok(Command::StopDaemon(
                daemon_role.unwrap_or(crate::sync::Role::Master),
            ))
        }
        _ => {}
    }
    // The table above made the service compulsory for the remaining commands.
    let Some(key) = key else {
        return Err(Failure::fail("service address not specified"));
    };
    // What the kernel would refuse once it has found (or not found) the service.
    let service_refusal = if pe.as_ref().is_some_and(|p| !p.is_empty() && p != "sip") {
        // The kernel's only persistence engine is sip.
        Some("Scheduler or persistence engine not found".to_string())
    } else {
        None
    };
    let make_service = || -> ServiceSpec {
        let parsed: Option<SchedKind> = sched_name.parse().ok();
        let refusal = service_refusal.clone().or_else(|| {
            parsed
                .is_none()
                .then(|| "Scheduler or persistence engine not found".to_string())
        });
        let mut sched = parsed.unwrap_or(SchedKind::Wlc);
        // sh's and mh's flags mean fallback (1) and port (2); other bits are kept as given.
        let mut other = flag_bits;
        if matches!(sched, SchedKind::Sh { .. } | SchedKind::Mh { .. }) {
            let words: Vec<&str> = [(1, "flag-1"), (2, "flag-2")]
                .into_iter()
                .filter(|(b, _)| flag_bits & b != 0)
                .map(|(_, w)| w)
                .collect();
            if let Ok(s) = sched.with_flags(&words.join(",")) {
                sched = s;
            }
            other &= !3;
        }
        ServiceSpec {
            key,
            scheduler: sched,
            persistent,
            netmask: netmask.and_then(Netmask::prefix),
            mask_v4: match netmask {
                Some(m @ Netmask::V4(v)) if m.prefix().is_none() => Some(v),
                _ => None,
            },
            one_packet,
            flag_bits: other,
            pe: pe.clone().filter(|p| !p.is_empty()),
            refusal,
        }
    };
    let make_server = || -> ServerSpec {
        let (addr, _) = server.unwrap_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        let tunnel = rvs_core::Tunnel {
            kind: match tun {
                TunnelType::Ipip => rvs_core::TunnelKind::Ipip,
                TunnelType::Gue => rvs_core::TunnelKind::Gue,
                TunnelType::Gre => rvs_core::TunnelKind::Gre,
            },
            port: tun_port,
            csum: tun_csum,
        };
        ServerSpec {
            service: key,
            addr,
            port: server_port,
            method,
            weight,
            upper,
            lower,
            tunnel,
            refusal: None,
        }
    };
    Ok(match cmd {
        Opt::Add => Command::AddService(make_service()),
        Opt::Edit => Command::EditService(make_service()),
        Opt::Delete => Command::DeleteService(key),
        Opt::AddServer => Command::AddServer(make_server()),
        Opt::EditServer => Command::EditServer(make_server()),
        _ => {
            let s = make_server();
            Command::DeleteServer {
                service: key,
                addr: s.addr,
                port: s.port,
            }
        }
    })
}

/// A persistence granularity as given: an IPv4 mask or an IPv6 prefix length.
#[derive(Clone, Copy)]
enum Netmask {
    V4(Ipv4Addr),
    Prefix(u8),
}

impl Netmask {
    /// The prefix length; None for an IPv4 mask whose ones are not contiguous.
    fn prefix(self) -> Option<u8> {
        match self {
            Netmask::V4(m) => {
                let bits = u32::from(m);
                let ones = bits.leading_ones();
                (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
            }
            Netmask::Prefix(p) => Some(p),
        }
    }
}

/// A tunnel type of `--tun-type`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TunnelType {
    Ipip,
    Gue,
    Gre,
}

/// `-p`'s value when one was given.
fn value_given(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

/// C's atoi: leading digits (with a sign), 0 when there are none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n: i64 = digits
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(12)
        .fold(0, |acc, c| acc * 10 + i64::from(c as u8 - b'0'));
    if neg {
        -n
    } else {
        n
    }
}
