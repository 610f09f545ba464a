//! `rvs`: the load-balancer daemon.
#![forbid(unsafe_code)]

mod data_port;
mod kernel_port;
mod runtime;

use clap::{Parser, Subcommand};
use runtime::RunError;
use rvs_control::config::{Config, RoutingDaemon};
use rvs_control::keepalived::KeepalivedConf;
use rvs_core::ForwardMode;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// rvs: an L4 load balancer (LVS-style NAT, DR and TUN) on a DPDK data plane.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The configuration file (TOML); see configs/.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration and exit without starting the data plane.
    #[arg(long)]
    check: bool,

    /// Print the BIRD 2 configuration that announces the VIPs of `[announce]` by BGP, and
    /// exit.
    #[arg(long)]
    bird_config: bool,

    /// Print the FRR configuration (frr.conf: zebra, bgpd, bfdd) that announces the VIPs of
    /// `[announce]` by BGP, and exit.
    #[arg(long, conflicts_with = "bird_config")]
    frr_config: bool,

    /// Take off the XDP programs a killed rvs left on the configuration's AF_XDP
    /// interfaces (which keep them from the kernel until rvs starts again), and exit.
    #[arg(long)]
    release_xdp: bool,

    /// Interactive: an `rvs> ` console on this terminal (testpmd style).
    #[arg(short, long)]
    interactive: bool,

    /// testpmd's: the workers' forwarding mode, in place of the configuration's
    /// `dataplane.forward` (io, macswap, 5tswap, lb).
    #[arg(long, value_name = "MODE", value_parser = forward_mode)]
    forward_mode: Option<ForwardMode>,

    /// testpmd's: frames a worker takes from an rx queue at a time, 1 to 32 (0: the
    /// driver's preferred burst); the console's `set burst` changes it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=32))]
    burst: Option<u16>,

    /// testpmd's: forwarding cores, the first N worker lcores of `eal.lcores` (the queues
    /// spread over them; the rest stay idle); with `[[worker]]` sections, their count only.
    #[arg(long, value_name = "N")]
    nb_cores: Option<usize>,

    /// keepalived's: print the signal number of STOP, RELOAD, DATA, STATS, STATS_CLEAR or
    /// JSON, and exit (`kill -s $(rvs --signum=STATS) PID`).
    #[arg(long, value_name = "SIGFUNC")]
    signum: Option<String>,

    /// A keepalived.conf: its virtual servers join the configuration and its health
    /// checkers run (vrrp sections are read and kept).
    #[arg(long, value_name = "FILE")]
    keepalived_conf: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the real server each client would get, in order, from ipvsadm-style rules
    /// (`ipvsadm -S` output), without packets or a running daemon.
    Preview {
        /// Rules in ipvsadm syntax (-A / -a lines); "-" reads standard input.
        #[arg(long, value_name = "FILE")]
        rules: PathBuf,
        /// One client a line: CLIENT[:PORT] VIP:PORT|fwmark:N [tcp|udp]; "-" reads stdin.
        #[arg(long, value_name = "FILE")]
        clients: PathBuf,
    },
}

fn read_input(path: &Path) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("standard input: {e}"))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

const SKIP_DISPATCHER: &str = "LIBXDP_SKIP_DISPATCHER";

fn forward_mode(s: &str) -> Result<ForwardMode, String> {
    s.parse()
}

/// keepalived's signals by function, as its `--signum` names them (rvs answers the same).
fn signum(function: &str) -> Option<i32> {
    Some(match function {
        "STOP" => libc::SIGTERM,
        "RELOAD" => libc::SIGHUP,
        "DATA" => libc::SIGUSR1,
        "STATS" => libc::SIGUSR2,
        "STATS_CLEAR" => libc::SIGRTMAX() - 1,
        "JSON" => libc::SIGRTMIN() + 2,
        _ => return None,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(function) = &args.signum {
        return match signum(function) {
            Some(n) => {
                println!("{n}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("Unknown sigfunc {function}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Cmd::Preview { rules, clients }) = &args.command {
        let result = read_input(rules)
            .and_then(|r| read_input(clients).map(|c| (r, c)))
            .and_then(|(r, c)| rvs_control::preview::preview(&r, &c));
        return match result {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvs: error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let Some(config) = args.config else {
        eprintln!("rvs: error: --config FILE is required (see rvs --help)");
        return ExitCode::from(2);
    };
    let mut cfg = match Config::load_with_cores(&config, args.nb_cores) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("rvs: error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.bird_config || args.frr_config {
        let daemon = if args.frr_config {
            RoutingDaemon::Frr
        } else {
            RoutingDaemon::Bird
        };
        let text = cfg.routing_daemon_config(daemon);
        return match text {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvs: error: {}: {e}", config.display());
                ExitCode::from(2)
            }
        };
    }
    if args.release_xdp {
        for p in &cfg.ports {
            let Some(dev) = &p.kernel else { continue };
            if kernel_port::release(&dev.iface) {
                println!("rvs: {}: took off the XDP program rvs left", dev.iface);
            }
        }
        return ExitCode::SUCCESS;
    }
    if cfg.ports.iter().any(|p| p.kernel.is_some()) && std::env::var_os(SKIP_DISPATCHER).is_none() {
        // One plain XDP program per AF_XDP interface, which `ip link set dev IF xdp off`
        // takes off (libxdp's dispatcher wants a bpffs and outlives a killed rvs).
        std::env::set_var(SKIP_DISPATCHER, "1");
    }
    if let Err(e) = rvs_control::log::init(cfg.log.clone()) {
        eprintln!("rvs: error: {}: log: {e}", config.display());
        return ExitCode::from(2);
    }
    // What only a restart changes, as loaded (a reload compares the file with it).
    let reload = rvs_control::appliance::ReloadSource {
        config: config.clone(),
        keepalived: args.keepalived_conf.clone(),
        fixed: rvs_control::appliance::restart_only(&cfg),
        nb_cores: args.nb_cores,
        keepalived_text: args
            .keepalived_conf
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok()),
    };
    // After what a reload compares with: the file's own mode stays the reference.
    if let Some(mode) = args.forward_mode {
        cfg.forward = mode;
    }
    let keepalived = match &args.keepalived_conf {
        Some(path) => match KeepalivedConf::load(path) {
            Ok(k) => {
                for w in &k.warnings {
                    eprintln!("rvs: warning: {w}");
                }
                Some(k)
            }
            Err(e) => {
                eprintln!("rvs: error: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    // Full NAT in keepalived.conf (lb_kind FNAT) needs the tables' room for local ends.
    if keepalived
        .as_ref()
        .is_some_and(|k| !k.full_nat().is_empty())
    {
        cfg.full_nat = true;
    }
    for w in &cfg.vrrp.warnings {
        eprintln!("rvs: warning: {w}");
    }
    let vrrp = match cfg.vrrp_with(keepalived.as_ref()) {
        Ok((vrrp, warnings)) => {
            for w in warnings {
                eprintln!("rvs: warning: {w}");
            }
            vrrp
        }
        Err(e) => {
            eprintln!("rvs: error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        // Services, the rules file, timeouts and keepalived.conf are applied as at start-up.
        let checked = runtime::build_director(&cfg, Vec::new()).and_then(|mut d| {
            let cmds: Vec<(String, _)> = keepalived.iter().flat_map(|k| k.commands_at()).collect();
            d.apply_all(&cmds)
                .map_err(|e| runtime::RunError::Dpdk(format!("keepalived.conf: {e}")))
        });
        if let Err(e) = checked {
            eprintln!("rvs: error: {e}");
            return ExitCode::from(2);
        }
        println!(
            "rvs: {}: configuration OK ({} port(s), {} worker(s), forward {}, {} VRRP instance(s))",
            config.display(),
            cfg.ports.len(),
            cfg.workers.len(),
            cfg.forward,
            vrrp.instances.len()
        );
        return ExitCode::SUCCESS;
    }
    let stop = Arc::new(AtomicBool::new(false));
    // On the console Ctrl-C only cancels a line (testpmd's habit): SIGINT is caught and
    // ignored there; `quit` or SIGTERM stops rvs.
    let ignored = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let flag = if sig == signal_hook::consts::SIGINT && args.interactive {
            ignored.clone()
        } else {
            stop.clone()
        };
        if let Err(e) = signal_hook::flag::register(sig, flag) {
            eprintln!("rvs: error: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    // SIGHUP: read the configuration again and apply the difference (hitless reload).
    let hup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        eprintln!("rvs: error: cannot handle SIGHUP: {e}");
        return ExitCode::FAILURE;
    }
    // keepalived's STATS (SIGUSR2) and STATS_CLEAR; its DATA (SIGUSR1) and JSON, which rvs
    // answers with a notice rather than be ended by (their default action).
    let dumps: Vec<(i32, Arc<AtomicBool>)> = ["STATS", "STATS_CLEAR", "DATA", "JSON"]
        .iter()
        .filter_map(|f| signum(f))
        .map(|n| (n, Arc::new(AtomicBool::new(false))))
        .collect();
    for (n, flag) in &dumps {
        if let Err(e) = signal_hook::flag::register(*n, flag.clone()) {
            eprintln!("rvs: error: cannot handle signal {n}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let flag = |i: usize| dumps[i].1.clone();
    let signals = runtime::Signals {
        stop,
        hup,
        stats: flag(0),
        stats_clear: flag(1),
        data: flag(2),
        json: flag(3),
    };
    let options = runtime::RunOptions {
        interactive: args.interactive,
        burst: args.burst,
    };
    match runtime::run(&cfg, signals, options, keepalived.as_ref(), &vrrp, reload) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ RunError::Config(_)) => {
            eprintln!("rvs: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("rvs: error: {e}");
            ExitCode::FAILURE
        }
    }
}
