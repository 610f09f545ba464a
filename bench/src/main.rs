//! `rvs-bench`: a pktgen-style traffic generator measuring the rvs data plane over DPDK
//! virtual devices, with rvs's own io forwarding on the same devices and cores as the
//! yardstick. Prints a table, writes JSON and an SVG plot under `bench/results/`.
#![forbid(unsafe_code)]

mod fixtures;
mod flood;
mod gen;
mod generate;
mod lanes;
mod memif;
mod nat_modes;
mod nic;
mod report;
mod rounds;
mod rss_share;
mod run;

use clap::{Parser, ValueEnum};
use gen::Kind;
use memif::Dut;
use run::{Bench, Method, Outcome, Scenario, Wiring};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "pktgen-style measurements of the rvs data plane over net_ring devices")]
struct Args {
    /// Which scenarios: the short set (about 25 s), the full set, or scaling (io, 5tswap,
    /// NAT and DR with 1, 2, 4, 8 workers, flows spread by RSS emulation; its workers are
    /// the lcores given, default 0,1,...,8).
    #[arg(long, value_enum, default_value_t = Set::Short)]
    set: Set,
    /// Only scenarios whose name contains this (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Seconds each scenario measures (overrides the set's).
    #[arg(long)]
    seconds: Option<f64>,
    /// The generator's lcore, then the workers' (one or more, each with its own queue pair
    /// in the one-process wiring; the two-process wiring uses the first), e.g. 0,1 or
    /// 0,1,2,3. Lcores beyond the machine's CPUs share them (the run works; its per-core
    /// figures do not hold).
    #[arg(long, default_value = "0,1", value_parser = parse_lcores)]
    lcores: Lcores,
    /// Generator lanes (threads) a run uses, each owning its workers' queues and sending
    /// the flows a NIC puts on them. Default: one per two workers, on CPUs no lcore uses
    /// (none such: one). Lanes asked for beyond those CPUs share the others.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=8))]
    generators: Option<u16>,
    /// Where JSON and SVG go (created if missing).
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// The rvs daemon for the two-process (memif) runs; default: next to rvs-bench.
    #[arg(long)]
    rvs: Option<PathBuf>,
    /// EAL memory in MB (no hugepages needed).
    #[arg(long, default_value_t = 1024)]
    memory_mb: u32,
    /// An ad-hoc scenario instead of a set: this method (with io on the same flows as its
    /// yardstick, unless it is io).
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// The ad-hoc scenario's traffic.
    #[arg(long, value_enum, default_value_t = Kind::Tcp, requires = "method")]
    traffic: Kind,
    /// The ad-hoc scenario's flows (clients x ports); for syn, the connection table's size.
    #[arg(long, default_value_t = 10_000, requires = "method",
          value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    flows: u32,
    /// The ad-hoc scenario's frame size in bytes, CRC included (64 to 1518).
    #[arg(long, default_value_t = 64, requires = "method",
          value_parser = clap::value_parser!(u16).range(64..=1518))]
    size: u16,
    /// The ad-hoc scenario's offered rate in packets per second (default: full speed).
    #[arg(long, requires = "method", value_parser = parse_rate)]
    rate: Option<f64>,
    /// The ad-hoc scenario's VIPs: consecutive addresses from 192.0.2.10, one service each
    /// (four real servers, rr); flow f goes to VIP f mod N.
    #[arg(long, default_value_t = 1, requires = "method",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    vips: u32,
    /// Workers' adaptive polling: the longest idle sleep in microseconds (0: always poll).
    /// The daemon's default unless given.
    #[arg(long, default_value_t = rvs_worker::idle::DEFAULT_SLEEP_MAX_US)]
    idle_sleep_max_us: u32,
    /// Runs the scenarios this many times over, in the same order, and reports each one's
    /// median round, with its shares of io and 5tswap taken within each round (their
    /// medians and ranges): on a machine whose speed moves between minutes, the shares
    /// that hold.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=15))]
    rounds: u16,
}

/// The generator's lcore and the workers'.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Lcores {
    generator: u32,
    workers: Vec<u32>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 1000.0 => Ok(r),
        _ => Err(format!("{s:?}: packets per second, at least 1000")),
    }
}

/// The ad-hoc scenario of `--method`, after its yardstick.
fn custom(a: &Args, method: Method) -> Vec<Planned> {
    let secs = a.seconds.unwrap_or(2.0);
    let size = a.size - 4;
    let mut v = Vec::new();
    if a.traffic == Kind::Syn {
        let mut s = syn_flood(
            method,
            &format!("{}-synflood", method.name()),
            secs,
            a.flows as usize,
        );
        if method != Method::Io {
            v.push(syn_flood(Method::Io, "io-syn", secs.min(1.0), 0));
            s.yardstick = Some("io-syn".into());
        }
        s.rate = a.rate;
        v.push(s);
    } else {
        if method != Method::Io {
            v.push(established(Method::Io, a.traffic, size, a.flows, secs));
        }
        // The load balancer's methods are also measured against 5tswap on the same flows.
        if method.forward_mode().is_none() {
            v.push(established(
                Method::FiveTupleSwap,
                a.traffic,
                size,
                a.flows,
                secs,
            ));
        }
        let mut s = established(method, a.traffic, size, a.flows, secs);
        s.rate = a.rate;
        v.push(s);
    }
    v.into_iter()
        .map(|mut scenario| {
            scenario.vips = a.vips;
            if a.vips > 1 {
                scenario.name += &format!("-{}vips", a.vips);
                if let Some(y) = scenario.yardstick.as_mut() {
                    *y += &format!("-{}vips", a.vips);
                }
            }
            Planned {
                scenario,
                rate_share: None,
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Set {
    Short,
    Full,
    Scaling,
}

/// The scaling set: for 1, 2, 4 and 8 workers (as many as there are), io, 5tswap, NAT and
/// DR on 10k flows spread over the workers' queues as a NIC's RSS would.
fn plan_scaling(workers: usize, seconds: Option<f64>) -> Vec<Planned> {
    let secs = seconds.unwrap_or(1.5);
    let mut v = Vec::new();
    for n in [1usize, 2, 4, 8].into_iter().filter(|&n| n <= workers) {
        for m in [Method::Io, Method::FiveTupleSwap, Method::Nat, Method::Dr] {
            let mut s = established(m, Kind::Tcp, 60, 10_000, secs);
            s.name = format!("{}-{n}w", s.name);
            s.yardstick = s.yardstick.map(|y| format!("{y}-{n}w"));
            s.workers = Some(n);
            v.push(Planned {
                scenario: s,
                rate_share: None,
            });
        }
    }
    v
}

fn parse_lcores(s: &str) -> Result<Lcores, String> {
    let ids = s
        .split(',')
        .map(|l| {
            l.trim()
                .parse::<u32>()
                .ok()
                .filter(|&l| l < 128)
                .ok_or(format!("bad lcore {l:?} (0-127)"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    let (&generator, workers) = ids
        .split_first()
        .filter(|(_, w)| !w.is_empty())
        .ok_or("GENERATOR,WORKER[,WORKER...]: at least two lcores")?;
    if workers.len() > run::MAX_WORKERS {
        return Err(format!("at most {} workers", run::MAX_WORKERS));
    }
    let mut seen = ids.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != ids.len() {
        return Err("each lcore once: the generator and every worker need their own".into());
    }
    Ok(Lcores {
        generator,
        workers: workers.to_vec(),
    })
}

/// A rate given as a share of an earlier run's forwarded rate (resolved when it runs), so
/// "below saturation" holds on any machine.
struct Planned {
    scenario: Scenario,
    rate_share: Option<(String, f64)>,
}

fn established(method: Method, kind: Kind, size: u16, flows: u32, seconds: f64) -> Scenario {
    let name = format!(
        "{}-{}-{}-{}",
        method.name(),
        kind.name(),
        size.max(60) + 4,
        report::flows_label(flows)
    );
    let yardstick = (method != Method::Io).then(|| {
        format!(
            "{}-{}-{}-{}",
            Method::Io.name(),
            kind.name(),
            size.max(60) + 4,
            report::flows_label(flows)
        )
    });
    Scenario {
        name,
        method,
        kind,
        flows,
        size,
        seconds,
        rate: None,
        conn_capacity: (flows as usize * 2).max(1 << 16),
        churn: 0,
        reloads: 0,
        listing: false,
        yardstick,
        wiring: Wiring::Ring,
        vips: 1,
        workers: None,
    }
}

/// Every packet a new client; the run ends half a second after a table of `capacity` fills.
fn syn_flood(method: Method, name: &str, seconds: f64, capacity: usize) -> Scenario {
    Scenario {
        name: name.into(),
        method,
        kind: Kind::Syn,
        flows: 0,
        size: 60,
        seconds,
        rate: None,
        conn_capacity: capacity,
        churn: 0,
        reloads: 0,
        listing: false,
        yardstick: None,
        wiring: Wiring::Ring,
        vips: 1,
        workers: None,
    }
}

fn plan(set: Set, seconds: Option<f64>) -> Vec<Planned> {
    let full = set == Set::Full;
    let secs = seconds.unwrap_or(if full { 2.0 } else { 1.5 });
    let mut v: Vec<Planned> = Vec::new();
    let mut add = |scenario: Scenario, rate_share: Option<(&str, f64)>| {
        v.push(Planned {
            scenario,
            rate_share: rate_share.map(|(n, f)| (n.to_string(), f)),
        })
    };
    let methods = [Method::Io, Method::Nat, Method::Dr, Method::Tun];
    // testpmd's yardsticks as rvs's workers run them, beside each traffic's io.
    let with_yardsticks = [
        Method::Io,
        Method::Macswap,
        Method::FiveTupleSwap,
        Method::Nat,
        Method::Dr,
        Method::Tun,
    ];
    if full {
        for size in [60, 508] {
            for flows in [1, 10_000, 1_000_000] {
                for m in with_yardsticks {
                    add(established(m, Kind::Tcp, size, flows, secs), None);
                }
            }
        }
        for m in [Method::Io, Method::FiveTupleSwap, Method::Nat] {
            add(established(m, Kind::Udp, 60, 10_000, secs), None);
        }
    } else {
        for m in with_yardsticks {
            add(established(m, Kind::Tcp, 60, 10_000, secs), None);
        }
    }
    // Latency below saturation: all methods at half the slowest one's rate.
    for m in methods {
        let mut s = established(m, Kind::Tcp, 60, 10_000, secs.min(1.0));
        s.name = format!("{}-latency", m.name());
        s.yardstick = None;
        add(s, Some(("tun-tcp-64-10k", 0.5)));
    }
    // A SYN flood of distinct clients into a table that fills.
    let capacity = if full { 4 << 20 } else { 1 << 20 };
    let mut flood = syn_flood(
        Method::Nat,
        "nat-synflood",
        if full { 8.0 } else { 3.0 },
        capacity,
    );
    flood.yardstick = Some("io-syn".into());
    add(flood, None);
    add(syn_flood(Method::Io, "io-syn", secs.min(1.0), 0), None);
    if full {
        // Memory: ten million concurrent connections.
        add(
            syn_flood(Method::Nat, "nat-table-10M", 20.0, 10_000_000),
            None,
        );
    }
    // Two processes over memif: dpdk-testpmd's io (and 5tswap, macswap) as the
    // yardsticks, then the rvs daemon.
    let memif_methods: &[Method] = if full {
        &[
            Method::Io,
            Method::Macswap,
            Method::FiveTupleSwap,
            Method::Nat,
            Method::Dr,
            Method::Tun,
        ]
    } else {
        &[Method::Io, Method::FiveTupleSwap, Method::Nat]
    };
    for &m in memif_methods {
        let mut s = established(m, Kind::Tcp, 60, 10_000, secs);
        if m == Method::Io {
            s.name = "memif-testpmd-tcp-64-10k".into();
            s.wiring = Wiring::Memif(Dut::Testpmd);
        } else if m.forward_mode().is_some() {
            s.name = format!("memif-testpmd-{}", s.name);
            s.wiring = Wiring::Memif(Dut::Testpmd);
            s.yardstick = Some("memif-testpmd-tcp-64-10k".into());
        } else {
            s.name = format!("memif-{}", s.name);
            s.wiring = Wiring::Memif(Dut::Rvs);
            s.yardstick = Some("memif-testpmd-tcp-64-10k".into());
        }
        add(s, None);
    }
    // The control side at work while established NAT flows run at half the NAT rate
    // (below saturation): nothing may be lost.
    let busy_control = |name: &str, flows: u32, seconds: f64| {
        let mut s = established(Method::Nat, Kind::Tcp, 60, flows, seconds);
        s.name = name.into();
        s.yardstick = None;
        s
    };
    let control_secs = if full { 5.0 } else { 2.0 };
    // Config churn: 1000 snapshot publications.
    let mut churn = busy_control("nat-churn", 10_000, control_secs);
    churn.churn = 1000;
    add(churn, Some(("nat-tcp-64-10k", 0.5)));
    // Hitless reloads: the TOML read again 100 times (a weight and a fifth server changing
    // each time).
    let mut reload = busy_control("nat-reload", 10_000, control_secs);
    reload.reloads = 100;
    add(reload, Some(("nat-tcp-64-10k", 0.5)));
    // Connection listings of a 100k-entry table back to back: every listing complete; the
    // worker's longest listing slice is the figure (its longest pass includes the VM's
    // preemptions).
    let mut listing = busy_control("nat-listing", 100_000, 2.0);
    listing.listing = true;
    add(listing, Some(("nat-tcp-64-10k", 0.5)));
    v
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores available")
}

/// Failures that mean rvs is broken (never speed): nothing forwarded, or packets of
/// established flows lost inside rvs.
fn verdicts(outcomes: &[Outcome]) -> Vec<String> {
    let mut bad = Vec::new();
    for o in outcomes {
        if o.received == 0 || o.forwarded_mpps <= 0.0 {
            bad.push(format!("{}: rvs forwarded nothing", o.name));
        }
        // Frames the generator did not drain in time are the receiver's loss; anything
        // else missing was dropped inside rvs, which established flows never should be,
        // whatever the speed (a SYN flood's table-full drops are the point of that run).
        // Over memif the DUT reports its drops when it stops: rvs's by reason, and its full
        // ring towards the generator apart (the sink overflow). Packets of a deleted server's
        // connections are dropped by design, as IPVS drops them (the reload scenario's
        // fifth server comes and goes).
        let lost_in_rvs = o.lost_in_rvs();
        let testpmd =
            o.wiring == "memif" && ["io", "macswap", "5tswap"].contains(&o.method.as_str());
        if o.traffic != "syn" && !testpmd && lost_in_rvs > 0 {
            bad.push(format!(
                "{}: {lost_in_rvs} of {} packets lost in rvs ({:?})",
                o.name, o.sent, o.drops
            ));
        }
        // Two ports hashing the client's end put both directions of a flow on its owner's
        // queue, whichever generator lane sent it: a hand-off means ownership no longer
        // follows the NIC.
        if o.wiring == "ring" && o.forward_mode_is_lb() && o.handoffs > 0 {
            bad.push(format!(
                "{}: {} frames handed to another worker ({:.2}%): ownership does not follow the NIC",
                o.name, o.handoffs, o.handoff_percent
            ));
        }
        if o.name == "nat-listing" && (o.listings == 0 || o.listed_max < u64::from(o.flows)) {
            bad.push(format!(
                "{}: {} listings, at most {} of {} connections listed",
                o.name, o.listings, o.listed_max, o.flows
            ));
        }
        if o.name == "nat-churn" && o.publications < 1000 {
            bad.push(format!("{}: only {} publications", o.name, o.publications));
        }
        if o.name == "nat-reload" && o.reloads < 100 {
            bad.push(format!("{}: only {} reloads", o.name, o.reloads));
        }
    }
    bad
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // Before EAL pins this thread to its lcore.
    let machine = machine();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lcores = args.lcores.clone();
    if args.set == Set::Scaling && lcores.workers.len() == 1 {
        lcores.workers = (1..=run::MAX_WORKERS as u32).collect();
    }
    let mut planned = match (args.method, args.set) {
        (Some(m), _) => custom(&args, m),
        (None, Set::Scaling) => plan_scaling(lcores.workers.len(), args.seconds),
        (None, set) => plan(set, args.seconds),
    };
    if !args.only.is_empty() {
        // Keep what a kept run needs for its rate.
        let wanted: Vec<String> = planned
            .iter()
            .filter(|p| {
                args.only
                    .iter()
                    .any(|o| p.scenario.name.contains(o.as_str()))
            })
            .flat_map(|p| {
                std::iter::once(p.scenario.name.clone())
                    .chain(p.rate_share.as_ref().map(|(n, _)| n.clone()))
            })
            .collect();
        planned.retain(|p| wanted.contains(&p.scenario.name));
    }
    let mut bench = match Bench::new(lcores.generator, &lcores.workers, args.memory_mb) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rvs-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    bench.idle_sleep_max_us = args.idle_sleep_max_us;
    bench.generators = args.generators.map(usize::from);
    let set = match (args.method, args.set) {
        (Some(_), _) => "custom",
        (None, Set::Short) => "short",
        (None, Set::Full) => "full",
        (None, Set::Scaling) => "scaling",
    };
    println!(
        "rvs-bench: {} scenarios ({set} set), generator lcore {}, worker lcores {:?}, {}",
        planned.len(),
        lcores.generator,
        lcores.workers,
        machine
    );
    match bench.check_fixtures() {
        Ok(steps) => println!(
            "rvs-bench: the fixture table ({steps} steps) through a worker over net_ring: as expected"
        ),
        Err(e) => {
            eprintln!("rvs-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let rvs_bin = args.rvs.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.join("rvs")))
            .unwrap_or_else(|| PathBuf::from("rvs"))
    });
    let mut rounds: Vec<Vec<Outcome>> = Vec::new();
    for round in 1..=args.rounds {
        if args.rounds > 1 {
            println!("round {round} of {}", args.rounds);
        }
        let mut outcomes: Vec<Outcome> = Vec::new();
        for p in &planned {
            let mut s = p.scenario.clone();
            if let Some((base, share)) = &p.rate_share {
                let Some(b) = outcomes.iter().find(|o| &o.name == base) else {
                    eprintln!("rvs-bench: {}: needs {base} first", s.name);
                    return std::process::ExitCode::FAILURE;
                };
                s.rate = Some((b.forwarded_mpps * 1e6 * share).max(10_000.0));
            }
            match bench.run(&s, &rvs_bin) {
                Ok(o) => {
                    let lanes = if o.generators > 1 {
                        format!(" ({} generator lanes)", o.generators)
                    } else {
                        String::new()
                    };
                    println!(
                        "  {:<22} {:>7.2} Mpps forwarded ({:.2} offered), lost {}, limit {}{lanes}",
                        o.name, o.forwarded_mpps, o.offered_mpps, o.lost, o.bottleneck
                    );
                    outcomes.push(o);
                }
                Err(e) => {
                    eprintln!("rvs-bench: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        rounds.push(outcomes);
    }
    // Every run is judged, whichever round it was.
    let mut bad: Vec<String> = rounds.iter().flat_map(|r| verdicts(r)).collect();
    let outcomes = rounds::combine(rounds);
    println!();
    print!("{}", report::table(&outcomes));
    if args.rounds > 1 {
        println!();
        print!("{}", rounds::table(&outcomes));
    }
    if set == "scaling" {
        println!();
        print!("{}", report::scaling(&outcomes, cores));
    }
    // The SYN-flood defence, through the engine on this core (sets only).
    // The engine-only sections belong to the short and full sets.
    let engine_sections = args.method.is_none() && args.set != Set::Scaling;
    let floods = if engine_sections
        && (args.only.is_empty() || args.only.iter().any(|o| "synflood".contains(o.as_str())))
    {
        let f = flood::runs(if set == "full" { 3.0 } else { 1.0 });
        println!();
        print!("{}", flood::table(&f));
        f
    } else {
        Vec::new()
    };

    // NAT, full NAT, PROXY v2 and SNAT side by side through the engine (sets only).
    let modes = if engine_sections
        && (args.only.is_empty() || args.only.iter().any(|o| "natmodes".contains(o.as_str())))
    {
        let m = nat_modes::runs(if set == "full" { 2.0 } else { 0.5 });
        println!();
        print!("{}", nat_modes::table(&m));
        m
    } else {
        Vec::new()
    };

    // What ownership by rvs's own hash costs under a real NIC's RSS (computed, sets only).
    if engine_sections {
        println!();
        print!("{}", rss_share::line(&rss_share::shares(100_000)));
    }

    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("rvs-bench: {}: {e}", args.out.display());
        return std::process::ExitCode::FAILURE;
    }
    let json_path = args.out.join(format!("{set}-{stamp}.json"));
    let svg_path = args.out.join(format!("{set}-{stamp}.svg"));
    let title = format!("rvs-bench {set} set: {machine}");
    let flood_path = args.out.join(format!("{set}-{stamp}-synflood.json"));
    let flood_json = serde_json::to_string_pretty(&floods).unwrap_or_default();
    let modes_path = args.out.join(format!("{set}-{stamp}-natmodes.json"));
    let modes_json = serde_json::to_string_pretty(&modes).unwrap_or_default();
    for (path, body) in [
        (&json_path, report::json(set, &machine, &outcomes)),
        (&svg_path, report::svg(&title, &outcomes)),
        (&flood_path, flood_json),
        (&modes_path, modes_json),
    ] {
        if let Err(e) = std::fs::write(path, body) {
            eprintln!("rvs-bench: {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    println!(
        "results: {} and {}",
        json_path.display(),
        svg_path.display()
    );
    bad.extend(flood::verdicts(&floods));
    bad.extend(nat_modes::verdicts(&modes));
    for b in &bad {
        eprintln!("rvs-bench: FAIL: {b}");
    }
    if bad.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("rvs-bench").chain(a.iter().copied()))
    }

    #[test]
    fn an_ad_hoc_scenario_runs_after_its_yardstick() {
        let a = args(&[
            "--method", "dr", "--flows", "500", "--size", "128", "--rate", "2e6",
        ])
        .unwrap();
        let names: Vec<(String, Option<f64>, Option<String>)> = custom(&a, Method::Dr)
            .into_iter()
            .map(|p| (p.scenario.name, p.scenario.rate, p.scenario.yardstick))
            .collect();
        assert_eq!(
            names,
            [
                ("io-tcp-128-500".to_string(), None, None),
                (
                    "5tswap-tcp-128-500".to_string(),
                    None,
                    Some("io-tcp-128-500".to_string())
                ),
                (
                    "dr-tcp-128-500".to_string(),
                    Some(2e6),
                    Some("io-tcp-128-500".to_string())
                )
            ]
        );
        let a = args(&["--method", "nat", "--traffic", "syn", "--flows", "100000"]).unwrap();
        let p = custom(&a, Method::Nat);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].scenario.conn_capacity, 100_000);
        assert_eq!(p[1].scenario.yardstick.as_deref(), Some("io-syn"));
        assert_eq!(
            custom(&args(&["--method", "io"]).unwrap(), Method::Io).len(),
            1
        );
    }

    #[test]
    fn lcores_name_the_generator_then_the_workers() {
        let l = parse_lcores("0,1,2,3").unwrap();
        assert_eq!((l.generator, l.workers), (0, vec![1, 2, 3]));
        assert!(parse_lcores("0").is_err(), "a worker is needed");
        assert!(parse_lcores("0,1,1").is_err(), "one lcore each");
        assert!(parse_lcores("0,x").is_err());
        assert!(
            parse_lcores("0,1,2,3,4,5,6,7,8,9").is_err(),
            "too many workers"
        );
        // On two CPUs, extra workers share the one the generator does not use.
        assert_eq!(
            run::cpu_map(0, &[1, 2, 3], 2),
            vec![(0, 0), (1, 1), (2, 1), (3, 1)]
        );
        assert_eq!(run::cpu_map(0, &[1, 2], 4), vec![(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn vips_spread_an_ad_hoc_scenario_and_its_yardstick() {
        let a = args(&["--method", "nat", "--vips", "16"]).unwrap();
        let p = custom(&a, Method::Nat);
        assert!(p.iter().all(|p| p.scenario.vips == 16));
        assert_eq!(p[2].scenario.name, "nat-tcp-64-10k-16vips");
        assert_eq!(
            p[2].scenario.yardstick.as_deref(),
            Some("io-tcp-64-10k-16vips")
        );
        assert!(args(&["--method", "nat", "--vips", "0"]).is_err());
    }

    #[test]
    fn a_hand_off_in_the_two_port_wiring_fails_the_run() {
        let o = |method: &str, handoffs: u64| Outcome {
            name: format!("{method}-tcp-64-10k-2w"),
            method: method.into(),
            traffic: "tcp".into(),
            wiring: "ring".into(),
            workers: 2,
            sent: 1000,
            received: 1000,
            forwarded_mpps: 1.0,
            handoffs,
            ..Outcome::default()
        };
        assert!(verdicts(&[o("nat", 0), o("io", 5)]).is_empty());
        let bad = verdicts(&[o("dr", 3)]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].contains("3 frames handed to another worker"),
            "{bad:?}"
        );
    }

    #[test]
    fn ad_hoc_options_are_checked() {
        assert!(args(&["--flows", "5"]).is_err(), "needs --method");
        assert!(args(&["--method", "nat", "--size", "63"]).is_err());
        assert!(args(&["--method", "nat", "--size", "1519"]).is_err());
        assert!(args(&["--method", "nat", "--rate", "10"]).is_err());
        assert!(args(&["--method", "nat", "--rate", "fast"]).is_err());
        assert!(args(&["--method", "maglev"]).is_err());
        assert!(args(&["--method", "tun", "--traffic", "udp", "--size", "1518"]).is_ok());
    }
}
