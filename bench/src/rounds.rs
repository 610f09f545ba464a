//! Interleaved rounds (`--rounds N`): the plan run N times over, so that in every round each
//! row ran moments after its yardsticks. On a machine whose speed moves from one minute to
//! the next, a share of io or of 5tswap taken within one round is steadier than one taken
//! between single runs minutes apart; the row reported is the median round's, with the
//! medians of the per-round shares and the ranges over the rounds.

use crate::report;
use crate::run::Outcome;

/// One row per scenario (in the first round's order) from `rounds`, each a complete run of
/// the plan in the same order.
pub fn combine(mut rounds: Vec<Vec<Outcome>>) -> Vec<Outcome> {
    for round in &mut rounds {
        report::add_ratios(round);
    }
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    if rounds.len() == 1 {
        return rounds.swap_remove(0);
    }
    first
        .iter()
        .map(|o| {
            let runs: Vec<&Outcome> = rounds
                .iter()
                .filter_map(|r| r.iter().find(|x| x.name == o.name))
                .collect();
            let mut by_rate = runs.clone();
            by_rate.sort_by(|a, b| a.forwarded_mpps.total_cmp(&b.forwarded_mpps));
            let mut row = by_rate[(by_rate.len() - 1) / 2].clone();
            let rates: Vec<f64> = runs.iter().map(|r| r.forwarded_mpps).collect();
            row.rounds = runs.len();
            row.forwarded_mpps_range = range(&rates);
            let ratios: Vec<f64> = runs.iter().filter_map(|r| r.ratio).collect();
            row.ratio = median(&ratios);
            row.ratio_range = range(&ratios);
            let swaps: Vec<f64> = runs.iter().filter_map(|r| r.ratio_5tswap).collect();
            row.ratio_5tswap = median(&swaps);
            row.ratio_5tswap_range = range(&swaps);
            row
        })
        .collect()
}

/// The median (of an even count, the lower middle: a value that was measured).
fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len().checked_sub(1)? / 2).copied()
}

fn range(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// The rounds' section: each row's median rate and range, and its shares' medians and
/// ranges (rows with a share only).
pub fn table(rows: &[Outcome]) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let n = rows.iter().map(|r| r.rounds).max().unwrap_or(1);
    let _ = writeln!(
        t,
        "Interleaved rounds: medians of {n} rounds (range); shares are medians of the shares within each round"
    );
    let _ = writeln!(
        t,
        "{:<34} {:>17} {:>15} {:>15}",
        "scenario", "fwd Mpps", "of yardstick", "of 5tswap"
    );
    let pct = |m: Option<f64>, r: Option<(f64, f64)>| match (m, r) {
        (Some(m), Some((lo, hi))) => {
            format!("{:.0}% ({:.0}-{:.0})", m * 100.0, lo * 100.0, hi * 100.0)
        }
        _ => "-".into(),
    };
    for o in rows {
        let rate = match o.forwarded_mpps_range {
            Some((lo, hi)) => format!("{:.2} ({lo:.2}-{hi:.2})", o.forwarded_mpps),
            None => format!("{:.2}", o.forwarded_mpps),
        };
        let _ = writeln!(
            t,
            "{:<34} {:>17} {:>15} {:>15}",
            o.name,
            rate,
            pct(o.ratio, o.ratio_range),
            pct(o.ratio_5tswap, o.ratio_5tswap_range)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, method: &str, mpps: f64, yardstick: Option<&str>) -> Outcome {
        Outcome {
            name: name.into(),
            method: method.into(),
            forwarded_mpps: mpps,
            yardstick: yardstick.map(Into::into),
            ..Outcome::default()
        }
    }

    /// A round: io, 5tswap and NAT on the same traffic.
    fn round(io: f64, swap: f64, nat: f64) -> Vec<Outcome> {
        let y = Some("io-tcp-64-10k");
        vec![
            run("io-tcp-64-10k", "io", io, None),
            run("5tswap-tcp-64-10k", "5tswap", swap, y),
            run("nat-tcp-64-10k", "nat", nat, y),
        ]
    }

    #[test]
    fn shares_are_taken_within_a_round_then_their_median() {
        // The machine fast, slow, then middling: NAT is 80% of 5tswap in every round, but
        // the median rates alone (NAT 6, 5tswap 8 from different rounds) would say 75%.
        let rows = combine(vec![
            round(20.0, 10.0, 8.0),
            round(10.0, 5.0, 4.0),
            round(16.0, 8.0, 6.4),
        ]);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["io-tcp-64-10k", "5tswap-tcp-64-10k", "nat-tcp-64-10k"]
        );
        let nat = &rows[2];
        assert_eq!(nat.rounds, 3);
        assert_eq!(nat.forwarded_mpps, 6.4);
        assert_eq!(nat.forwarded_mpps_range, Some((4.0, 8.0)));
        assert!((nat.ratio_5tswap.unwrap() - 0.8).abs() < 1e-9);
        let (lo, hi) = nat.ratio_5tswap_range.unwrap();
        assert!((lo - 0.8).abs() < 1e-9 && (hi - 0.8).abs() < 1e-9);
        assert!((nat.ratio.unwrap() - 0.4).abs() < 1e-9);
        // The yardsticks have no share of 5tswap.
        assert_eq!(rows[0].ratio_5tswap, None);
        let t = table(&rows);
        assert!(t.contains("medians of 3 rounds"), "{t}");
        assert!(t.contains("6.40 (4.00-8.00)"), "{t}");
        assert!(t.contains("80% (80-80)"), "{t}");
    }

    #[test]
    fn the_median_round_is_the_row_and_one_round_is_left_as_it_is() {
        let mut a = round(10.0, 5.0, 3.0);
        a[2].lost = 7;
        let b = round(10.0, 5.0, 4.0);
        let c = round(10.0, 5.0, 5.0);
        let rows = combine(vec![a.clone(), b, c]);
        // NAT's median run is the second round's: its other figures come with it.
        assert_eq!(rows[2].forwarded_mpps, 4.0);
        assert_eq!(rows[2].lost, 0);
        let one = combine(vec![a]);
        assert_eq!(one[2].rounds, 0);
        assert_eq!(one[2].forwarded_mpps_range, None);
        assert!((one[2].ratio_5tswap.unwrap() - 0.6).abs() < 1e-9);
        assert!(combine(Vec::new()).is_empty());
    }
}
