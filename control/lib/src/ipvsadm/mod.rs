//! ipvsadm's rule syntax: the lines `ipvsadm -S` writes and `ipvsadm -R` reads, parsed into
//! typed commands. Errors use ipvsadm's wording where it has one.

mod names;
mod parse;
mod popt;
mod usage;

pub use names::{host_name, inet_aton, service_name};
pub use parse::{parse_command, Failure};

/// `rvsadm --completion bash`: a bash completion built from ipvsadm's option table.
pub fn bash_completion(program: &str) -> String {
    popt::bash_completion(program, &rvs_core::sched::SchedKind::NAMES)
}
use rvs_core::sched::SchedKind;
pub use rvs_core::ForwardMethod;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
pub use usage::{usage, version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => rvs_wire::proto::TCP,
            Protocol::Udp => rvs_wire::proto::UDP,
            Protocol::Sctp => rvs_wire::proto::SCTP,
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .into_iter()
            .find(|p| p.number() == n)
    }

    /// As ipvsadm's listing names it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// As /etc/services names it.
    pub fn word(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    pub fn from_word(w: &str) -> Option<Protocol> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .into_iter()
            .find(|p| p.word() == w)
    }

    /// The ipvsadm option that names a service of this protocol.
    pub fn option(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        }
    }
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
            ServiceKey::Addr(p, a) => write!(f, "{} {a}", p.option()),
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
    /// An IPv4 persistence mask whose ones are not contiguous (`-M 255.0.255.0`), which the
    /// kernel takes as given; `netmask` is then None.
    pub mask_v4: Option<std::net::Ipv4Addr>,
    pub one_packet: bool,
    /// `-b` flag bits (1, 2, 4) the scheduler gives no meaning to (sh's and mh's are in
    /// `scheduler`); kept and shown as ipvsadm does.
    pub flag_bits: u8,
    /// The persistence engine (`--pe sip`: UDP persistence by SIP Call-ID).
    pub pe: Option<String>,
    /// What the kernel side refuses once the service is looked up (an unknown scheduler,
    /// what rvs does not implement); never set on a stored service.
    pub refusal: Option<String>,
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
    /// The encapsulation of a tunnelled server (`--tun-type`, `--tun-port`, `--tun-*csum`).
    pub tunnel: rvs_core::Tunnel,
    /// As [`ServiceSpec::refusal`], checked once the server is looked up.
    pub refusal: Option<String>,
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
    Save {
        numeric: bool,
    },
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
    /// -h / --help.
    Help,
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
    /// -n: addresses and ports as numbers (else names from /etc/hosts and /etc/services).
    pub numeric: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub tun_info: bool,
    /// -c: the connection entries instead of the services.
    pub connections: bool,
    /// --timeout: the timeouts instead of the services.
    pub timeout: bool,
    pub exact: bool,
    /// --nosort: the table's own order instead of ipvsadm's.
    pub nosort: bool,
    /// --daemon: the sync daemons instead of the services.
    pub daemon: bool,
}

impl ListOptions {
    /// The columns shown, by ipvsadm's precedence (--stats, --rate, --thresholds,
    /// --persistent-conn).
    pub fn format(&self) -> ListFormat {
        if self.stats {
            ListFormat::Stats
        } else if self.rate {
            ListFormat::Rate
        } else if self.thresholds {
            ListFormat::Thresholds
        } else if self.persistent_conn {
            ListFormat::PersistentConn
        } else {
            ListFormat::Default
        }
    }
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

/// The longest timeout ipvsadm (and the kernel) take: 31 days.
pub const MAX_TIMEOUT: u32 = 86_400 * 31;

/// ipvsadm's option names, in the order it checks them (its error messages use them).
pub(crate) const OPTION_NAMES: [&str; 34] = [
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

/// Which options a command needs, may take, and takes one of at most (ipvsadm's rules:
/// any other is illegal with it); and the command's name in ipvsadm's messages.
type CommandRules = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

pub(crate) fn command_rules(cmd: &str) -> Option<CommandRules> {
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

/// Parses ipvsadm's arguments (the program name may lead); no arguments lists, as
/// `ipvsadm` alone does. Errors are ipvsadm's messages (see [`parse_command`] for its exit
/// statuses too).
pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    let args = match args.first() {
        Some(&"ipvsadm" | &"rvsadm") => &args[1..],
        _ => &args[..],
    };
    parse_command(args, "ipvsadm").map_err(|f| f.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bash completion bash itself runs: options, schedulers after -s, rvs's additions.
    #[test]
    fn the_bash_completion_completes() {
        let path = std::env::temp_dir().join(format!("rvsadm-completion-{}", std::process::id()));
        std::fs::write(&path, bash_completion("rvsadm")).unwrap();
        let complete = |words: &str, cword: usize| {
            let script = format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _rvsadm; echo \"${{COMPREPLY[@]}}\"",
                path.display()
            );
            let out = std::process::Command::new("bash")
                .args(["-c", &script])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(complete("rvsadm --sch", 1), "--scheduler --sched-flags");
        assert_eq!(complete("rvsadm -A -t 1.2.3.4:80 -s w", 5), "wrr wlc");
        assert_eq!(complete("rvsadm --tun-type g", 2), "gue gre");
        assert_eq!(complete("rvsadm -L -n --js", 3), "--json");
        assert!(complete("rvsadm -", 1).split(' ').any(|w| w == "-L"));
        let _ = std::fs::remove_file(&path);
    }

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
        let mut group = DaemonSettings::new("lan", 0);
        group.group = Some("239.1.1.3".parse().unwrap());
        group.port = Some(9000);
        assert_eq!(
            parse_args(&[
                "--start-daemon",
                "master",
                "--mcast-interface",
                "lan",
                "--mcast-group",
                "239.1.1.3",
                "--mcast-port",
                "9000"
            ]),
            Ok(Command::StartDaemon {
                role: Role::Master,
                settings: group
            })
        );
        // As ipvsadm: the group must be a multicast address.
        assert_eq!(
            parse_args(&["--start-daemon", "master", "--mcast-group", "10.0.0.3"]),
            Err("invalid IPv4 mcast-group `10.0.0.3'".into())
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
            e("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 2147483648"),
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
        // An unknown scheduler is the kernel's refusal, after it looks the service up.
        let Ok(Some(Command::AddService(s))) = parse_line("-A -t 1.2.3.4:80 -s fast") else {
            panic!()
        };
        assert_eq!(
            s.refusal.as_deref(),
            Some("Scheduler or persistence engine not found")
        );
        assert_eq!(e("-A -a -t 1.2.3.4:80"), "invalid option `-a'");
        assert_eq!(
            e("-t 1.2.3.4:80"),
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information."
        );
        assert_eq!(e("-A -t 1.2.3.4:80 --bogus"), "--bogus: unknown option");
        let f = parse_command(&["-A", "-t", "1.2.3.4:80", "-q"], "ipvsadm").unwrap_err();
        assert_eq!((f.message.as_str(), f.status), ("-q: unknown option", 255));
        assert_eq!(parse_line("# comment").unwrap(), None);
    }

    #[test]
    fn listing_options_bundle_as_ipvsadm_allows() {
        let l = |a: &[&str]| parse_args(a).unwrap();
        assert_eq!(l(&[]), Command::List(ListOptions::default()));
        assert_eq!(
            l(&["-Ln"]),
            Command::List(ListOptions {
                numeric: true,
                ..ListOptions::default()
            })
        );
        let Command::List(o) = l(&["ipvsadm", "-lnc"]) else {
            panic!()
        };
        assert!(o.connections);
        let Command::List(o) = l(&["-L", "-n", "--stats", "--exact", "--sort"]) else {
            panic!()
        };
        assert_eq!(
            (o.format(), o.exact, o.nosort),
            (ListFormat::Stats, true, false)
        );
        let Command::List(o) = l(&["-L", "-t", "1.2.3.4:80", "--rate"]) else {
            panic!()
        };
        assert_eq!(o.format(), ListFormat::Rate);
        assert!(o.service.is_some());
        assert_eq!(
            l(&["--set", "900", "120", "300"]),
            Command::SetTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300
            }
        );
        assert_eq!(l(&["-Sn"]), Command::Save { numeric: true });
        assert_eq!(l(&["-S"]), Command::Save { numeric: false });
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
