//! The engine's work per packet as instructions, for `scripts/bench ir` to run under
//! callgrind: unlike time on a shared VM, the count barely moves from run to run (new
//! connections by about 2%: the tables' hash seeds are random), so the
//! effect of a change shows in one comparison. One engine, no ports, frames processed as a
//! worker does (a burst's headers parsed, then its keys hashed, then its entries
//! prefetched, then each frame, then the burst's changes to the servers' counts), the lab's fixture services (rvs_testkit::lab).
//!
//!   rvs-engine-ir SCENARIO [ROUNDS]    nat | dr | tun | syn | flood
//!
//! nat: 10k established flows, a client segment and the server's reply in turn; dr: the
//! client's segments of 10k flows; tun: 10k UDP flows tunnelled; syn: SYNs of distinct
//! clients (new connections); flood: the same SYNs into a small table whose embryonic share
//! is full after the first thousand, so that nearly every SYN evicts the oldest (a SYN
//! flood's steady state, as the benchmark's nat-synflood reaches it). Only `measure` runs
//! with collection on; it prints how many packets it processed.

use rvs_core::engine::{EngineConfig, Parsed, VecFrame, Verdict};
use rvs_testkit::lab::{snapshot, tcp4, Lab, CLIENT_MAC, PORT0_MAC, PORT1_MAC, RS2_MAC};

const FLOWS: u32 = 10_000;
const BURST: usize = 32;
/// The flood's connection table (its embryonic share, half, full after 1,024 SYNs).
const FLOOD_TABLE: usize = 2048;

fn client(i: u32) -> ([u8; 4], u16) {
    (
        (0x0b00_0000u32 + i).to_be_bytes(),
        1024 + (i % 60_000) as u16,
    )
}

fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, &[0u8; 18])
        .expect("a UDP frame");
    out
}

/// Processes `frames` `rounds` times in bursts; returns the frames forwarded.
#[inline(never)]
fn measure(lab: &mut Lab, frames: &[(u16, Vec<u8>)], rounds: usize) -> u64 {
    let mut forwarded = 0;
    let mut f = VecFrame::new(&[]);
    let mut parsed = [Parsed::default(); BURST];
    for _ in 0..rounds {
        for burst in frames.chunks(BURST) {
            // As a worker: every frame's headers, then every key, then every entry.
            for (p, (_, bytes)) in parsed.iter_mut().zip(burst) {
                p.read(bytes, false);
            }
            for p in &mut parsed[..burst.len()] {
                lab.engine.hash_key(&lab.snap, p);
            }
            for p in &parsed[..burst.len()] {
                lab.engine.prefetch_entry(p);
            }
            for (p, (port, bytes)) in parsed.iter().zip(burst) {
                f.reset(bytes);
                let v = lab
                    .engine
                    .process_parsed(&lab.snap, &lab.loads, 1, *port, p, &mut f);
                forwarded += u64::from(matches!(v, Verdict::Forward { .. }));
            }
            // As a worker at the end of its pass: the servers' counts, one step each.
            lab.engine.flush_loads(&lab.loads);
        }
    }
    forwarded
}

/// The scenario's established flows opened, and the frames to measure.
fn prepare(lab: &mut Lab, scenario: &str) -> Vec<(u16, Vec<u8>)> {
    let payload = [0u8; 10];
    let mut frames = Vec::new();
    let opened = |lab: &mut Lab, port: u16, frame: &[u8]| {
        assert!(
            matches!(lab.run(port, frame).0, Verdict::Forward { .. }),
            "{scenario}: a flow did not open"
        );
    };
    for i in 0..FLOWS {
        let (c, sport) = client(i);
        // The client's segment to `vip`: a SYN, or an ACK with the payload.
        let from_client = |vip: [u8; 4], syn: bool| {
            let data: &[u8] = if syn { &[] } else { &payload };
            tcp4(
                CLIENT_MAC, PORT0_MAC, c, vip, 64, sport, 80, syn, !syn, data,
            )
        };
        match scenario {
            "nat" | "dr" => {
                let vip = [192, 168, 1, if scenario == "nat" { 100 } else { 101 }];
                opened(lab, 0, &from_client(vip, true));
                let ack = from_client(vip, false);
                opened(lab, 0, &ack);
                frames.push((0, ack));
                if scenario == "nat" {
                    let rs = [10, 0, 0, 2];
                    let reply = |syn| {
                        tcp4(
                            RS2_MAC, PORT1_MAC, rs, c, 64, 8080, sport, syn, true, &payload,
                        )
                    };
                    opened(lab, 1, &reply(true));
                    frames.push((1, reply(false)));
                }
            }
            "tun" => {
                // Established: past its second datagram (off the embryonic list).
                let datagram = udp4(c, [192, 168, 1, 102], sport, 53);
                opened(lab, 0, &datagram);
                opened(lab, 0, &datagram);
                frames.push((0, datagram));
            }
            "syn" | "flood" => frames.push((0, from_client([192, 168, 1, 100], true))),
            other => panic!("unknown scenario {other:?} (nat, dr, tun, syn, flood)"),
        }
    }
    frames
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| "nat".into());
    let rounds: usize = args
        .next()
        .map_or(3, |r| r.parse().expect("ROUNDS: a number"));
    let new_conns = matches!(scenario.as_str(), "syn" | "flood");
    // SYNs open a connection each round: room for all of them, except in a flood.
    let capacity = if scenario == "flood" {
        FLOOD_TABLE
    } else {
        (2 * FLOWS as usize * (rounds + 1)).next_power_of_two()
    };
    let mut lab = Lab::with(
        snapshot(),
        EngineConfig {
            conn_capacity: capacity,
            ..EngineConfig::default()
        },
    );
    let mut frames = prepare(&mut lab, &scenario);
    // The worker holds changes to the servers' counts until the end of its pass.
    lab.engine.hold_loads(lab.loads.len());
    if new_conns {
        // Each round's SYNs from other clients (the first octet moved), so every one is new.
        let all: Vec<_> = (0..rounds)
            .flat_map(|r| {
                frames.iter().map(move |(port, f)| {
                    let mut f = f.clone();
                    f[26] = f[26].wrapping_add(r as u8 * 16);
                    let mut ip = rvs_wire::Ipv4Packet::new_checked(&mut f[14..]).expect("IPv4");
                    ip.fill_checksum();
                    (*port, f)
                })
            })
            .collect();
        frames = all;
    }
    let rounds = if new_conns { 1 } else { rounds };
    let forwarded = measure(&mut lab, &frames, rounds);
    let packets = (frames.len() * rounds) as u64;
    println!("{scenario}: {packets} packets, {forwarded} forwarded");
    if forwarded != packets {
        eprintln!(
            "rvs-engine-ir: {scenario}: {} not forwarded",
            packets - forwarded
        );
        std::process::exit(1);
    }
}
