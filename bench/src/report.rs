//! Results for people (a table), for machines (JSON) and for the eye (an SVG plot).

use crate::run::Outcome;
use std::fmt::Write as _;

pub fn flows_label(f: u32) -> String {
    match f {
        f if f >= 1_000_000 && f % 1_000_000 == 0 => format!("{}M", f / 1_000_000),
        f if f >= 1000 && f % 1000 == 0 => format!("{}k", f / 1000),
        f => f.to_string(),
    }
}

/// The scaling set's summary: per method, the forwarded rate with each number of workers
/// and its share of linear (n times the one-worker rate), the hand-off share; and which
/// figures measure anything on this machine (workers beyond its cores share them).
pub fn scaling(outcomes: &[Outcome], cores: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "scaling ({cores} cores available; the generator runs as lanes, one per two workers where spare cores allow, each on a core of its own: rows whose workers and lanes outnumber the cores share cores and check the wiring, not speed; rows the generator could not feed faster say generator-bound)"
    );
    let mut methods: Vec<&str> = Vec::new();
    for o in outcomes.iter().filter(|o| o.name.ends_with('w')) {
        if !methods.contains(&o.method.as_str()) {
            methods.push(&o.method);
        }
    }
    for m in methods {
        let rows: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.method == m && o.name.ends_with('w'))
            .collect();
        let one = rows
            .iter()
            .find(|o| o.workers == 1)
            .map_or(0.0, |o| o.forwarded_mpps);
        let cells: Vec<String> = rows
            .iter()
            .map(|o| {
                // A row the generator's core capped says nothing of rvs's scaling.
                let capped = if o.bottleneck == "generator" {
                    ", generator-bound"
                } else {
                    ""
                };
                let shared = if o.workers + o.generators.max(1) > cores {
                    ", shared cores"
                } else {
                    ""
                };
                let linear = if one > 0.0 {
                    format!(
                        " ({:.0}% of linear{shared}{capped})",
                        100.0 * o.forwarded_mpps / (one * o.workers as f64),
                    )
                } else {
                    String::new()
                };
                let lanes = if o.generators > 1 {
                    format!(", {} generator lanes", o.generators)
                } else {
                    String::new()
                };
                let handed = if o.workers > 1 && o.forward_mode_is_lb() {
                    format!(", {:.1}% handed off", o.handoff_percent)
                } else {
                    String::new()
                };
                format!(
                    "{} workers {:.2} Mpps{linear}{lanes}{handed}",
                    o.workers, o.forwarded_mpps
                )
            })
            .collect();
        let _ = writeln!(t, "  {m}: {}", cells.join("; "));
    }
    t
}

/// Fills in each outcome's ratio to its yardstick (same run).
pub fn add_ratios(outcomes: &mut [Outcome]) {
    let rates: Vec<(String, f64)> = outcomes
        .iter()
        .map(|o| (o.name.clone(), o.forwarded_mpps))
        .collect();
    let rate_of = |name: &str| {
        rates
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| *r)
            .filter(|r| *r > 0.0)
    };
    for o in outcomes.iter_mut() {
        o.ratio = o
            .yardstick
            .as_ref()
            .and_then(|y| rate_of(y))
            .map(|base| o.forwarded_mpps / base);
        // The same traffic through 5tswap: "nat-tcp-64-10k" against "5tswap-tcp-64-10k",
        // "memif-nat-..." against testpmd's "memif-testpmd-5tswap-...".
        let swap_of = |name: &str| {
            let rest = name.strip_prefix(o.method.as_str())?;
            Some(format!("5tswap{rest}"))
        };
        let swap = match o.name.strip_prefix("memif-") {
            Some(name) => swap_of(name).map(|n| format!("memif-testpmd-{n}")),
            None => swap_of(&o.name),
        };
        o.ratio_5tswap = swap
            .filter(|_| ["nat", "dr", "tun"].contains(&o.method.as_str()))
            .and_then(|n| rate_of(&n))
            .map(|base| o.forwarded_mpps / base);
    }
}

pub fn table(outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<34} {:>5} {:>5} {:>8} {:>8} {:>6} {:>6} {:>9} {:>8} {:>9} {:>9} {:>10}  drops",
        "scenario",
        "bytes",
        "flows",
        "offered",
        "fwd Mpps",
        "ratio",
        "5tswap",
        "lost",
        "conn/s",
        "p50 us",
        "p99 us",
        "limit"
    );
    for o in outcomes {
        let ratio = o
            .ratio
            .map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
        let vs_swap = o
            .ratio_5tswap
            .map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
        let cps = if o.conns_per_sec > 0.0 {
            format!("{:.2}M", o.conns_per_sec / 1e6)
        } else {
            "-".into()
        };
        let drops: Vec<String> = o.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(
            t,
            "{:<34} {:>5} {:>5} {:>8.2} {:>8.2} {:>6} {:>6} {:>9} {:>8} {:>9.1} {:>9.1} {:>10}  {}",
            o.name,
            o.frame_bytes.max(60) + 4,
            flows_label(o.flows),
            o.offered_mpps,
            o.forwarded_mpps,
            ratio,
            vs_swap,
            o.lost,
            cps,
            o.latency_ns.p50 as f64 / 1e3,
            o.latency_ns.p99 as f64 / 1e3,
            o.bottleneck,
            if drops.is_empty() {
                "none".into()
            } else {
                drops.join(", ")
            }
        );
    }
    for o in outcomes {
        if o.listings > 0 {
            let _ = writeln!(
                t,
                "{}: {} connection listings (up to {} entries) during the run, {} packets lost inside rvs ({} the generator drained too late); a listing slice took the worker {:.2} us on average, {:.1} us at most (its longest pass {:.1} us, the VM's preemptions included)",
                o.name, o.listings, o.listed_max, o.lost.saturating_sub(o.sink_overflow), o.sink_overflow, o.mean_listing_us, o.max_listing_us, o.max_pass_us
            );
        }
        if o.reloads > 0 {
            let _ = writeln!(
                t,
                "{}: {} hitless reloads of the configuration during the run (each a weight and a fifth server changed), {} packets lost inside rvs ({} the generator drained too late; {} dropped on the fifth server's connections while it was deleted, as IPVS drops them), {} reordered",
                o.name, o.reloads, o.lost_in_rvs(), o.sink_overflow, o.server_removed(), o.reordered
            );
        } else if o.publications > 0 {
            let _ = writeln!(
                t,
                "{}: {} snapshot publications during the run, {} packets lost, {} reordered",
                o.name, o.publications, o.lost, o.reordered
            );
        }
        if o.traffic == "syn" && o.conn_capacity > 0 {
            // With the SYN-flood defence, SYNs fill their share of the table (syn_share)
            // and then evict the oldest embryonic connections instead of being dropped.
            let fill = o.table_full_after.map_or("did not fill".to_string(), |s| {
                format!("taken by SYNs after {s:.2} s")
            });
            let _ = writeln!(
                t,
                "{}: table of {} connections {fill}; {} connections held (the SYN share), {:.0} bytes each, process grew {:.0} MiB",
                o.name, o.conn_capacity, o.connections, o.table_bytes_per_conn, o.rss_growth_mib
            );
        }
        if o.workers > 1 && o.forward_mode_is_lb() {
            let _ = writeln!(
                t,
                "{}: {} workers, flows spread by RSS emulation: {:.2}% of the packets handed to another worker",
                o.name, o.workers, o.handoff_percent
            );
        }
        if o.cycles_per_packet.iter().any(|(_, c)| *c > 0.0) {
            let stages: Vec<String> = o
                .cycles_per_packet
                .iter()
                .map(|(s, c)| format!("{s} {c:.0}"))
                .collect();
            let total: f64 = o.cycles_per_packet.iter().map(|(_, c)| c).sum();
            let _ = writeln!(
                t,
                "{}: cycles per packet by stage: {} (total {total:.0})",
                o.name,
                stages.join(", ")
            );
        }
        if o.worker_sleeps > 0 {
            let _ = writeln!(
                t,
                "{}: the workers slept {} time(s) in the measured window (idle back-off)",
                o.name, o.worker_sleeps
            );
        }
    }
    t
}

pub fn json(set: &str, machine: &str, outcomes: &[Outcome]) -> String {
    let doc = serde_json::json!({
        "bench": "rvs-bench",
        "set": set,
        "wiring": "one process, net_ring pairs, generator on the main lcore, one worker lcore",
        "machine": machine,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "results": outcomes,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

const COLOURS: [(&str, &str); 4] = [
    ("io", "#888888"),
    ("nat", "#1f77b4"),
    ("dr", "#2ca02c"),
    ("tun", "#d62728"),
];

/// Two panels: forwarded Mpps against flows (one line per method and frame size) and
/// latency percentiles of the rate-limited runs.
pub fn svg(title: &str, outcomes: &[Outcome]) -> String {
    let (w, h) = (960.0, 420.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14">{}</text>"#,
        escape(title)
    );

    // Panel 1: Mpps against flows, established TCP at full speed.
    let (x0, y0, pw, ph) = (60.0, 50.0, 400.0, 300.0);
    let lines: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.traffic == "tcp" && o.rate_limit_pps.is_none() && o.publications == 0)
        .collect();
    let mut flows: Vec<u32> = lines.iter().map(|o| o.flows).collect();
    flows.sort_unstable();
    flows.dedup();
    let top = lines
        .iter()
        .map(|o| o.forwarded_mpps)
        .fold(1.0_f64, f64::max)
        * 1.15;
    axes(
        &mut s,
        x0,
        y0,
        pw,
        ph,
        top,
        "Mpps forwarded (established TCP)",
    );
    let xs = |i: usize| x0 + pw * (i as f64 + 0.5) / flows.len().max(1) as f64;
    for (i, f) in flows.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} flows</text>"#,
            xs(i),
            y0 + ph + 16.0,
            flows_label(*f)
        );
    }
    let mut legend_y = y0;
    for (method, colour) in COLOURS {
        let mut sizes: Vec<u16> = lines
            .iter()
            .filter(|o| o.method == method)
            .map(|o| o.frame_bytes)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let pts: Vec<(f64, f64)> = lines
                .iter()
                .filter(|o| o.method == method && o.frame_bytes == size)
                .filter_map(|o| {
                    let i = flows.iter().position(|f| *f == o.flows)?;
                    Some((xs(i), y0 + ph - ph * o.forwarded_mpps / top))
                })
                .collect();
            let dash = if size > 60 {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                path.join(" ")
            );
            for (x, y) in &pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
                );
            }
            let _ = writeln!(
                s,
                r#"<line x1="{}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{method} {} B</text>"#,
                x0 + pw + 10.0,
                x0 + pw + 30.0,
                x0 + pw + 35.0,
                legend_y + 4.0,
                size.max(60) + 4
            );
            legend_y += 16.0;
        }
    }

    // Panel 2: latency percentiles of the rate-limited runs.
    let (x1, pw2) = (600.0, 330.0);
    let lat: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.rate_limit_pps.is_some() && o.latency_ns.samples > 0)
        .collect();
    let top_us = lat
        .iter()
        .map(|o| o.latency_ns.p99 as f64 / 1e3)
        .fold(1.0_f64, f64::max)
        * 1.15;
    axes(&mut s, x1, y0, pw2, ph, top_us, "latency us (p50 / p99)");
    let slot = pw2 / lat.len().max(1) as f64;
    for (i, o) in lat.iter().enumerate() {
        let colour = COLOURS
            .iter()
            .find(|(m, _)| *m == o.method)
            .map_or("#000", |(_, c)| c);
        for (j, (v, opacity)) in [(o.latency_ns.p50, 1.0), (o.latency_ns.p99, 0.45)]
            .iter()
            .enumerate()
        {
            let bh = ph * (*v as f64 / 1e3) / top_us;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{colour}" fill-opacity="{opacity}"/>"#,
                x1 + slot * i as f64 + slot * (0.15 + 0.35 * j as f64),
                y0 + ph - bh,
                slot * 0.3
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
            x1 + slot * (i as f64 + 0.5),
            y0 + ph + 16.0,
            escape(&o.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, x: f64, y: f64, w: f64, h: f64, top: f64, label: &str) {
    let _ = writeln!(
        s,
        r##"<polyline points="{x},{y} {x},{} {},{}" fill="none" stroke="#000"/>"##,
        y + h,
        x + w,
        y + h
    );
    for k in 0..=4 {
        let v = top * f64::from(k) / 4.0;
        let yy = y + h - h * f64::from(k) / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.1}</text>"##,
            x + w,
            x - 4.0,
            yy + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{x}" y="{}">{}</text>"#,
        y - 8.0,
        escape(label)
    );
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, method: &str, flows: u32, mpps: f64, ys: Option<&str>) -> Outcome {
        Outcome {
            name: name.into(),
            method: method.into(),
            traffic: "tcp".into(),
            flows,
            frame_bytes: 60,
            forwarded_mpps: mpps,
            yardstick: ys.map(Into::into),
            ..Outcome::default()
        }
    }

    #[test]
    fn ratios_come_from_the_named_yardstick() {
        let mut v = vec![
            outcome("io", "io", 10_000, 8.0, None),
            outcome("nat", "nat", 10_000, 6.0, Some("io")),
            outcome("dr", "dr", 10_000, 2.0, Some("missing")),
        ];
        add_ratios(&mut v);
        assert_eq!(v[0].ratio, None);
        assert_eq!(v[1].ratio, Some(0.75));
        assert_eq!(v[2].ratio, None);
        let t = table(&v);
        assert!(t.lines().nth(2).unwrap().contains("75%"), "{t}");
        assert!(t.contains("10k"));
    }

    #[test]
    fn scaling_is_shown_against_linear() {
        let row = |name: &str, method: &str, workers: usize, mpps: f64, handed: f64| Outcome {
            workers,
            generators: workers.div_ceil(2),
            handoff_percent: handed,
            bottleneck: "rvs".into(),
            ..outcome(name, method, 10_000, mpps, None)
        };
        let mut v = vec![
            row("nat-tcp-64-10k-1w", "nat", 1, 4.0, 0.0),
            row("nat-tcp-64-10k-2w", "nat", 2, 7.2, 0.0),
            row("nat-tcp-64-10k-4w", "nat", 4, 8.0, 0.5),
            row("nat-tcp-64-10k", "nat", 1, 9.0, 0.0),
        ];
        v[2].bottleneck = "generator".into();
        let t = scaling(&v, 4);
        assert!(t.contains("(4 cores available;"), "{t}");
        assert!(
            t.contains("nat: 1 workers 4.00 Mpps (100% of linear); 2 workers 7.20 Mpps (90% of linear), 0.0% handed off; 4 workers 8.00 Mpps (50% of linear, shared cores, generator-bound), 2 generator lanes, 0.5% handed off"),
            "{t}"
        );
    }

    #[test]
    fn the_balancer_is_also_measured_against_5tswap() {
        let mut v = vec![
            outcome("5tswap-tcp-64-10k", "5tswap", 10_000, 8.0, None),
            outcome("nat-tcp-64-10k", "nat", 10_000, 6.0, None),
            outcome("dr-tcp-64-1M", "dr", 1_000_000, 2.0, None),
            outcome(
                "memif-testpmd-5tswap-tcp-64-10k",
                "5tswap",
                10_000,
                4.0,
                None,
            ),
            outcome("memif-tun-tcp-64-10k", "tun", 10_000, 1.0, None),
        ];
        add_ratios(&mut v);
        let got: Vec<Option<f64>> = v.iter().map(|o| o.ratio_5tswap).collect();
        assert_eq!(got, [None, Some(0.75), None, None, Some(0.25)]);
    }

    #[test]
    fn svg_has_a_line_per_method_and_parses_as_xml_shape() {
        let v = vec![
            outcome("io-1", "io", 1, 8.0, None),
            outcome("io-10k", "io", 10_000, 7.5, None),
            outcome("nat-1", "nat", 1, 6.0, None),
            outcome("nat-10k", "nat", 10_000, 5.0, None),
        ];
        let s = svg("t <&>", &v);
        assert_eq!(
            s.matches("<polyline").count(),
            2 + 2,
            "two lines and two axes"
        );
        assert!(s.contains("t &lt;&amp;&gt;"));
        assert!(s.trim_end().ends_with("</svg>"));
    }
}
