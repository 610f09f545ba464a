//! `rvs`: the load-balancer daemon.
#![forbid(unsafe_code)]

use clap::Parser;
use rvs_control::config::Config;
use rvs_control::runtime::{self, RunError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// rvs: an L4 load balancer (LVS-style NAT, DR and TUN) on a DPDK data plane.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The configuration file (TOML); see configs/.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,

    /// Check the configuration and exit without starting the data plane.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::load(&args.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("rvs: error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!(
            "rvs: {}: configuration OK ({} port(s), {} worker(s), forward {})",
            args.config.display(),
            cfg.ports.len(),
            cfg.workers.len(),
            cfg.forward
        );
        return ExitCode::SUCCESS;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("rvs: error: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    match runtime::run(&cfg, stop) {
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
