//! Hostile console input: lines built from the verbs' own words with numbers, addresses and
//! junk put in their places get an answer (a failure saying why), never a panic, and leave
//! the appliance answering.

use super::*;
use proptest::prelude::*;

/// Words a line may take in any place: what operators mistype and what parsers trip on.
const ODD: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "99999999999999999999999",
    "0x10",
    "1e3",
    "all",
    "on",
    "off",
    "port",
    "",
    "-",
    "--",
    "/",
    ":",
    "::",
    "[::1]:80",
    "10.0.0.1",
    "10.0.0.1:80",
    "10.0.0.0/33",
    "300.1.1.1",
    "fe80::1%lo",
    "a-b",
    "5-3",
    "1-65536",
    "tcp",
    "udp",
    "sctp",
    "=",
    "a=",
    "=1",
    "net.ipv4.vs.",
    "é",
    "\u{0}",
    "(",
    "(0,",
    "0x",
    "laddr",
    "from",
    "proxy",
    "to_source",
    "ports",
    "1-",
    "-w",
    "-e",
];

/// Every word of the verbs' usages and phrases (alternatives and brackets split apart).
fn verb_words() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = verbs::VERBS
        .iter()
        .flat_map(|v| v.phrases.iter().copied().chain([v.usage]))
        .flat_map(|s| s.split(|c: char| c.is_whitespace() || "|[]()".contains(c)))
        .filter(|w| !w.is_empty())
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// Lines that read or write files, or end the console, are not for this test; nor a
/// connection listing that asks the (fake, never polling) worker and waits a second for it.
fn harmless(line: &str) -> bool {
    let w: Vec<&str> = line.split_whitespace().collect();
    let listing = match w.as_slice() {
        ["show", "conn"] => true,
        ["show", "conn", a] => a.parse::<std::net::IpAddr>().is_ok(),
        ["ipvsadm", rest @ ..] => rest
            .iter()
            .any(|a| a.starts_with("-c") || *a == "--connection"),
        _ => false,
    };
    !listing
        && !matches!(w.first(), Some(&("load" | "capture" | "quit" | "exit")))
        && !w
            .iter()
            .any(|w| matches!(*w, "<" | "-p" | "--system" | "--load"))
}

/// A usage made concrete: one of each `a|b` taken by `pick`, brackets dropped, each
/// placeholder (`N`, `ADDR`, `PROTO`...) given a value.
fn concrete(usage: &'static str, mut pick: usize) -> Vec<&'static str> {
    let mut words = Vec::new();
    for w in usage.split_whitespace() {
        let w = w.trim_matches(|c| "[]()".contains(c));
        let alternatives: Vec<&str> = w.split('|').filter(|a| !a.is_empty()).collect();
        let Some(&one) = alternatives.get(pick % alternatives.len().max(1)) else {
            continue;
        };
        pick = pick / alternatives.len().max(1) + 7;
        let placeholder = one.len() > 1
            && one
                .chars()
                .all(|c| c.is_ascii_uppercase() || "-_/:.,".contains(c));
        words.push(if placeholder {
            VALUES[pick % VALUES.len()]
        } else {
            one
        });
    }
    words
}

/// What placeholders take: values a careful operator would type, and some a careless one would.
const VALUES: &[&str] = &[
    "0",
    "1",
    "4",
    "32",
    "lan",
    "odd",
    "tcp",
    "udp",
    "10.0.0.1",
    "10.0.0.1:80",
    "192.0.2.1:80",
    "10.0.0.0/24",
    "1000-1999",
    "[2001:db8::1]:80",
    "2001:db8::/64",
    "0xff",
    "net.ipv4.vs.conn_reuse_mode=0",
    "net.ipv4.vs.expire_nodest_conn",
    "bogus",
    "-1",
    "70000",
];

/// Every verb's usage (each alternative in turn) with each argument in turn replaced by
/// each odd word: single substitutions, all of them.
#[test]
fn each_argument_swapped_for_an_odd_word_gets_an_answer() {
    let a = lan_and_refusing_port();
    let mut lines = 0;
    for v in verbs::VERBS {
        for usage in v.phrases.iter().copied().chain([v.usage]) {
            for pick in 0..4 {
                let base = concrete(usage, pick);
                for at in 1..=base.len() {
                    for odd in ODD {
                        let mut w = base.clone();
                        match w.get_mut(at) {
                            Some(x) => *x = odd,
                            None => w.push(odd),
                        }
                        let line = w.join(" ");
                        if !harmless(&line) {
                            continue;
                        }
                        let r = a.console(&line);
                        lines += 1;
                        assert!(
                            r.status == 0 || !r.err.is_empty() || !r.out.is_empty(),
                            "{line:?} failed ({}) without saying why",
                            r.status
                        );
                    }
                }
            }
        }
    }
    assert!(lines > 10_000, "{lines} lines");
    assert_eq!(a.console("show port summary all").status, 0);
    assert_eq!(a.console("ipvsadm -L -n").status, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_console_line_gets_an_answer_not_a_panic(
        lines in proptest::collection::vec(
            (any::<prop::sample::Index>(),
             any::<usize>(),
             proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 0..3),
             1usize..12),
            1..8,
        )
    ) {
        let a = lan_and_refusing_port();
        let usages: Vec<&str> = verbs::VERBS
            .iter()
            .flat_map(|v| v.phrases.iter().copied().chain([v.usage]))
            .collect();
        let words = verb_words();
        for (base, pick, changes, keep) in lines {
            let mut w = concrete(usages[base.index(usages.len())], pick);
            // The verb stays; its arguments change.
            for (at, with, odd) in changes {
                let word = if odd { ODD[with.index(ODD.len())] } else { words[with.index(words.len())] };
                match 1 + at.index(w.len()) {
                    i if i >= w.len() => w.push(word),
                    i => w[i] = word,
                }
            }
            w.truncate(keep);
            let line = w.join(" ");
            if !harmless(&line) {
                continue;
            }
            let r = a.console(&line);
            prop_assert!(
                r.status == 0 || !r.err.is_empty() || !r.out.is_empty(),
                "{line:?} failed ({}) without saying why", r.status
            );
        }
        prop_assert_eq!(a.console("show port summary all").status, 0);
        prop_assert_eq!(a.console("ipvsadm -L -n").status, 0);
    }
}

#[test]
fn show_conn_takes_one_address_at_most() {
    let a = lan_and_refusing_port();
    let r = a.console("show conn nonsense");
    assert_eq!(
        (r.status, r.err.as_str()),
        (2, "show conn: \"nonsense\" is not an address\n")
    );
    let r = a.console("show conn 10.0.0.1 10.0.0.2");
    assert_eq!(
        (r.status, r.err.as_str()),
        (2, "show conn: one address at most (show conn [ADDR])\n")
    );
}

/// A worker that does not answer a listing (stalled, not polling) is named, not left out
/// silently.
#[test]
fn a_listing_names_the_worker_that_did_not_answer() {
    let a = lan_and_refusing_port();
    let lacking = "worker 0 (lcore 1) did not answer within 1 s: its connections are not listed\n";
    let r = a.console("ipvsadm -L -c -n");
    assert_eq!((r.status, r.err.as_str()), (0, lacking));
    assert!(r.out.starts_with("IPVS connection entries\n"), "{}", r.out);
    let r = a.console("show conn");
    assert_eq!((r.status, r.err.as_str()), (0, lacking));
}

/// Stalled workers are asked at once: three cost one wait of a second, not three.
#[test]
fn stalled_workers_cost_one_wait() {
    let a = appliance_with(Vec::new(), 3);
    let t0 = std::time::Instant::now();
    let r = a.console("ipvsadm -L -c -n");
    let waited = t0.elapsed();
    assert_eq!(r.err.lines().count(), 3, "{}", r.err);
    assert!(
        r.err.contains("worker 2 (lcore 3) did not answer"),
        "{}",
        r.err
    );
    // One after another they would take at least 3 s.
    assert!(
        waited < std::time::Duration::from_millis(2500),
        "{waited:?}"
    );
}
