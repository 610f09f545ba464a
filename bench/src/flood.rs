//! The SYN-flood defence measured: spoofed SYNs from ever new addresses through one
//! worker's engine at the engine's full rate on this core (no ports: the flood is as fast
//! as rvs can take it), with established connections and legitimate clients mixed in. A
//! legitimate client sends its SYN, then its ACK a round trip later (counted in flood
//! packets); its connection succeeds when the ACK finds its entry. Figures, not verdicts,
//! except that established connections may never lose a packet.

use crate::gen::{Generator, Kind, Traffic};
use rvs_core::conn::addr16;
use rvs_core::engine::{DropReason, Engine, EngineConfig, Verdict};
use rvs_testkit::lab::{tcp4, Lab, CLIENT_MAC, PORT0_MAC};
use rvs_wire::VecFrame;
use serde::Serialize;
use std::time::Instant;

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FloodOutcome {
    pub name: String,
    pub table: usize,
    pub syn_share: u8,
    /// A legitimate client's round trip, in flood packets.
    pub rtt_packets: u64,
    pub seconds: f64,
    pub packets: u64,
    pub mpps: f64,
    pub flood_syns: u64,
    pub established_flows: u32,
    pub established_packets: u64,
    pub established_lost: u64,
    pub legit_opened: u64,
    pub legit_ok: u64,
    pub legit_ok_percent: f64,
    pub embryonic_max: usize,
    pub table_max: usize,
    pub evictions: u64,
    pub table_full_drops: u64,
    pub rss_growth_mib: f64,
}

const BURST: usize = 32;
/// Every this many packets, one of an established connection.
const ESTABLISHED_EVERY: u64 = 16;
/// Every this many packets, a legitimate client opens a connection.
const LEGIT_EVERY: u64 = 512;

fn traffic(kind: Kind, flows: u32, vip: [u8; 4]) -> Traffic {
    Traffic {
        kind,
        flows,
        size: 60,
        vip,
        vips: 1,
        vport: 80,
        src_mac: CLIENT_MAC,
        dst_mac: PORT0_MAC,
    }
}

/// A flood of `seconds` into a table of `table` entries, legitimate round trips of
/// `rtt_packets`.
pub fn run(name: &str, table: usize, rtt_packets: u64, seconds: f64) -> FloodOutcome {
    run_at_least(name, table, rtt_packets, seconds, 0)
}

/// As [`run`], going on past `seconds` until `min_flood` flood SYNs have gone in (so a
/// check does not depend on this machine's speed).
fn run_at_least(
    name: &str,
    table: usize,
    rtt_packets: u64,
    seconds: f64,
    min_flood: u64,
) -> FloodOutcome {
    let mut lab = Lab::new();
    let syn_share = EngineConfig::default().syn_share;
    lab.engine = Engine::new(
        EngineConfig {
            conn_capacity: table,
            ..EngineConfig::default()
        },
        0,
    );
    lab.engine.adopt(&lab.snap);
    let rss_before = crate::run::rss_kib();
    // The lab's NAT service 192.168.1.100:80 takes the flood and the legitimate clients;
    // its DR service 192.168.1.101:80 the established connections (other keys).
    let mut flood = Generator::new(traffic(Kind::Syn, 0, [192, 168, 1, 100]));
    let established_flows = (table / 8) as u32;
    let mut established = Generator::new(traffic(Kind::Tcp, established_flows, [192, 168, 1, 101]));
    let mut frames: Vec<VecFrame> = (0..BURST).map(|_| VecFrame::new(&[0u8; 60])).collect();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let now = |start: &Instant| start.elapsed().as_secs() as u32;
    let (mut out, mut lost) = (0u64, 0u64);
    // Open the established connections (SYN, then one ACK each) before the flood.
    for _ in 0..2 * u64::from(established_flows) {
        established.next(&mut buf, 0);
        let mut f = VecFrame::new(&buf[..60]);
        if lab.engine.process(&lab.snap, &lab.loads, 0, 0, &mut f) != (Verdict::Forward { port: 1 })
        {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "the established connections open");
    assert_eq!(lab.engine.table.embryonic_len(), 0);
    // Legitimate clients: (packet number when the ACK is due, client port).
    let mut pending: std::collections::VecDeque<(u64, u16)> = std::collections::VecDeque::new();
    let legit_client = [203, 0, 113, 9];
    let (mut legit_opened, mut legit_ok, mut est_packets, mut flood_syns) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut embryonic_max, mut table_max) = (0usize, 0usize);
    let mut n = 0u64;
    let deadline = seconds;
    while start.elapsed().as_secs_f64() < deadline || flood_syns < min_flood {
        let t = now(&start);
        // One burst: flood SYNs with an established packet among them.
        let mut kinds = [false; BURST];
        for (i, f) in frames.iter_mut().enumerate() {
            let est = (n + i as u64).is_multiple_of(ESTABLISHED_EVERY);
            kinds[i] = est;
            if est {
                established.next(&mut buf, 0);
            } else {
                flood.next(&mut buf, 0);
            }
            f.reset(&buf[..60]);
        }
        for (i, f) in frames.iter_mut().enumerate() {
            let v = lab.engine.process(&lab.snap, &lab.loads, t, 0, f);
            out += 1;
            if kinds[i] {
                est_packets += 1;
                if v != (Verdict::Forward { port: 1 }) {
                    lost += 1;
                }
            } else {
                flood_syns += 1;
            }
        }
        n += BURST as u64;
        lab.engine
            .expire(t, rvs_core::engine::EXPIRE_BUDGET_MAX, &lab.loads);
        if n % LEGIT_EVERY < BURST as u64 {
            let port = 10_000 + (legit_opened % 50_000) as u16;
            let syn = tcp4(
                CLIENT_MAC,
                PORT0_MAC,
                legit_client,
                [192, 168, 1, 100],
                64,
                port,
                80,
                true,
                false,
                b"",
            );
            let mut f = VecFrame::new(&syn);
            if lab.engine.process(&lab.snap, &lab.loads, t, 0, &mut f)
                == (Verdict::Forward { port: 1 })
            {
                pending.push_back((n + rtt_packets, port));
            }
            legit_opened += 1;
        }
        while pending.front().is_some_and(|&(due, _)| due <= n) {
            let Some((_, port)) = pending.pop_front() else {
                break;
            };
            let ack = tcp4(
                CLIENT_MAC,
                PORT0_MAC,
                legit_client,
                [192, 168, 1, 100],
                64,
                port,
                80,
                false,
                true,
                b"GET",
            );
            let mut f = VecFrame::new(&ack);
            if lab.engine.process(&lab.snap, &lab.loads, t, 0, &mut f)
                == (Verdict::Forward { port: 1 })
            {
                legit_ok += 1;
                // Time compressed: the connection has done its work and its entry expired
                // (else a small table would fill with finished legitimate connections).
                let key = rvs_core::conn::InKey {
                    proto: 6,
                    caddr: addr16(legit_client.into()),
                    cport: port,
                    vaddr: addr16([192, 168, 1, 100].into()),
                    vport: 80,
                };
                if let Some(id) = lab.engine.table.lookup_in(&key) {
                    lab.engine.table.remove(id);
                }
            }
        }
        embryonic_max = embryonic_max.max(lab.engine.table.embryonic_len());
        table_max = table_max.max(lab.engine.table.len());
    }
    let secs = start.elapsed().as_secs_f64();
    // Handshakes still in flight at the end are not counted either way.
    let legit_opened = legit_opened - pending.len() as u64;
    let c = lab.engine.counters();
    FloodOutcome {
        name: name.into(),
        table,
        syn_share,
        rtt_packets,
        seconds: secs,
        packets: out,
        mpps: out as f64 / secs / 1e6,
        flood_syns,
        established_flows,
        established_packets: est_packets,
        established_lost: lost,
        legit_opened,
        legit_ok,
        legit_ok_percent: if legit_opened == 0 {
            0.0
        } else {
            100.0 * legit_ok as f64 / legit_opened as f64
        },
        embryonic_max,
        table_max,
        evictions: c.syn_evictions,
        table_full_drops: c.drops[DropReason::TableFull as usize],
        rss_growth_mib: crate::run::rss_kib().saturating_sub(rss_before) as f64 / 1024.0,
    }
}

/// The set: a 64k table with short and long round trips, the 4,096 entries, and a
/// round trip longer than the embryonic share lasts (the defence's bound, shown).
pub fn runs(seconds: f64) -> Vec<FloodOutcome> {
    vec![
        run("synflood-64k-rtt2k", 1 << 16, 2_000, seconds),
        run("synflood-64k-rtt30k", 1 << 16, 30_000, seconds),
        run("synflood-4k-rtt1k", 4096, 1_000, seconds),
        run("synflood-64k-rtt40k", 1 << 16, 40_000, seconds),
    ]
}

/// The runs' failures: an established connection losing a packet, or fewer than 99% of
/// legitimate handshakes completing where the round trip is within what the embryonic
/// share lasts (fewer flood SYNs in a round trip than the share holds). Deterministic in
/// packets, never a matter of speed.
pub fn verdicts(runs: &[FloodOutcome]) -> Vec<String> {
    let mut bad = Vec::new();
    for r in runs {
        if r.established_lost > 0 {
            bad.push(format!(
                "{}: {} of {} packets of established connections lost",
                r.name, r.established_lost, r.established_packets
            ));
        }
        let share = r.table * usize::from(r.syn_share) / 100;
        let flood_per_rtt = r.rtt_packets * (ESTABLISHED_EVERY - 1) / ESTABLISHED_EVERY;
        if (flood_per_rtt as usize) < share && r.legit_ok_percent < 99.0 {
            bad.push(format!(
                "{}: {:.2}% of legitimate handshakes completed",
                r.name, r.legit_ok_percent
            ));
        }
        if r.legit_opened == 0 {
            bad.push(format!("{}: no legitimate handshake measured", r.name));
        }
    }
    bad
}

pub fn table(runs: &[FloodOutcome]) -> String {
    let mut s = String::from(
        "SYN flood through one engine (spoofed SYNs at full rate; 1 packet in 16 established; \
         a legitimate handshake every 512)\n\
         name                  table  rtt(pkts)   Mpps  established lost  legit ok  embryonic max  evictions  table-full\n",
    );
    for r in runs {
        s.push_str(&format!(
            "{:<20} {:>6} {:>10} {:>6.2} {:>12}/{:<8} {:>7.2}% {:>14} {:>10} {:>11}\n",
            r.name,
            r.table,
            r.rtt_packets,
            r.mpps,
            r.established_lost,
            r.established_packets,
            r.legit_ok_percent,
            r.embryonic_max,
            r.evictions,
            r.table_full_drops
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short flood keeps the promises the figures report: nothing established lost, every
    /// handshake within the share completed; beyond the share, handshakes fail.
    #[test]
    fn a_short_flood_keeps_established_and_new_connections() {
        let within = run_at_least("within", 4096, 1_000, 0.0, 30_000);
        assert!(within.flood_syns > 20_000, "{within:?}");
        assert!(within.evictions > 0, "{within:?}");
        assert!(within.embryonic_max <= 2048, "{within:?}");
        assert_eq!(
            verdicts(std::slice::from_ref(&within)),
            Vec::<String>::new()
        );
        assert_eq!(within.legit_ok, within.legit_opened, "{within:?}");
        let beyond = run_at_least("beyond", 4096, 4_000, 0.0, 30_000);
        assert!(beyond.legit_ok_percent < 50.0, "{beyond:?}");
        assert_eq!(beyond.established_lost, 0);
    }
}
