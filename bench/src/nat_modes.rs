//! NAT, full NAT (with and without PROXY protocol v2) and SNAT side by side, through one
//! engine on this core (no ports, so the figures compare the methods' own work): packets
//! per second of established connections (10k flows, a client packet and a server reply in
//! turn) and new connections per second (SYNs of distinct clients into a large table).
//! Every packet must be forwarded: a loss is a failure, speed never is.

use rvs_core::engine::{EngineConfig, FullNat, Parsed, SnatRule, Verdict};
use rvs_testkit::lab::{snapshot_with, tcp4, Lab, GW_MAC, PORT0_MAC, PORT1_MAC, RS2_MAC};
use rvs_wire::{Frame, VecFrame};
use serde::Serialize;
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nat,
    /// NAT again, in bursts of 32 through the worker's stages (every frame parsed and
    /// hashed, every entry prefetched, then the engine frame by frame).
    NatStaged,
    FullNat,
    FullNatProxy,
    Snat,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::NatStaged => "nat-staged",
            Mode::FullNat => "fullnat",
            Mode::FullNatProxy => "fullnat-proxy",
            Mode::Snat => "snat",
        }
    }
}

/// One mode's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ModeOutcome {
    pub name: String,
    pub flows: u32,
    pub established_mpps: f64,
    pub ns_per_packet: f64,
    pub new_conns_per_s: f64,
    pub lost: u64,
    /// First data segments that carried a PROXY v2 header.
    pub proxy_headers: u64,
}

const VIP: [u8; 4] = [192, 168, 1, 100];
const RS: [u8; 4] = [10, 0, 0, 2];

/// Flow `i`'s remote host (SNAT): 200 of them, so one address's 64k ports go round.
fn remote(i: u32) -> [u8; 4] {
    [203, 0, 113, 1 + (i % 200) as u8]
}

fn lab(mode: Mode, capacity: usize) -> Lab {
    let full_nat = match mode {
        // Four local addresses: 4 x 64k ports towards one server.
        Mode::FullNat | Mode::FullNatProxy => Some(FullNat::new(
            (1..=4).map(|i| IpAddr::from([10, 0, 0, 200 + i])),
            mode == Mode::FullNatProxy,
        )),
        _ => None,
    };
    let mut snap = snapshot_with(|services| services[0].full_nat = full_nat);
    if mode == Mode::Snat {
        snap.ip_forward = true;
        snap.set_snat(vec![SnatRule {
            proto: None,
            source: (IpAddr::from([10, 0, 0, 0]), 8),
            destination: (IpAddr::from([0, 0, 0, 0]), 0),
            out_port: Some(0),
            to_source: None,
            ports: (1024, 65535),
        }]);
    }
    Lab::with(
        snap,
        EngineConfig {
            conn_capacity: capacity,
            full_nat: true,
            ..EngineConfig::default()
        },
    )
}

/// Flow `i`'s opening SYN and the port it enters by: a client beyond the gateway to the
/// VIP, or (SNAT) a server behind rvs to a remote host.
fn opening(mode: Mode, i: u32) -> (u16, Vec<u8>) {
    let port = 10_000 + (i % 50_000) as u16;
    if mode == Mode::Snat {
        let src = [10, 0, (i / 50_000) as u8, 2];
        return (
            1,
            tcp4(
                RS2_MAC,
                PORT1_MAC,
                src,
                remote(i),
                64,
                port,
                80,
                true,
                false,
                b"",
            ),
        );
    }
    let client = [100, 64 + (i >> 16) as u8, (i >> 8) as u8, i as u8];
    (
        0,
        tcp4(
            GW_MAC, PORT0_MAC, client, VIP, 64, port, 80, true, false, b"",
        ),
    )
}

/// The client's data packet and the other end's reply for flow `i`, from what rvs sent for
/// the SYN (the reply goes to the source rvs gave it).
fn exchange(mode: Mode, i: u32, out: &[u8]) -> [(u16, Vec<u8>); 2] {
    let (in_port, syn) = opening(mode, i);
    let (src, sport) = (
        [syn[26], syn[27], syn[28], syn[29]],
        u16::from_be_bytes([syn[34], syn[35]]),
    );
    let (to, to_port) = (
        [out[26], out[27], out[28], out[29]],
        u16::from_be_bytes([out[34], out[35]]),
    );
    // Data well after the first segment (PROXY's header went before that one: its
    // sequence numbers are shifted), and the other end's acknowledgement.
    let data = |mac: ([u8; 6], [u8; 6]), dst: [u8; 4], dport| {
        let mut v = Vec::new();
        let _ = etherparse::PacketBuilder::ethernet2(mac.0, mac.1)
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1001 + 10_000, 64000)
            .ack(5001)
            .write(&mut v, b"0123456789");
        v
    };
    match mode {
        Mode::Snat => [
            (in_port, data((RS2_MAC, PORT1_MAC), remote(i), 80)),
            (
                0,
                tcp4(
                    GW_MAC,
                    PORT0_MAC,
                    remote(i),
                    to,
                    64,
                    80,
                    to_port,
                    false,
                    true,
                    b"ok",
                ),
            ),
        ],
        _ => [
            (in_port, data((GW_MAC, PORT0_MAC), VIP, 80)),
            (
                1,
                tcp4(
                    RS2_MAC, PORT1_MAC, RS, to, 64, 8080, to_port, false, true, b"ok",
                ),
            ),
        ],
    }
}

/// The first data segment of the connection `syn` opened (sequence number ISN + 1).
fn first_data(syn: &[u8]) -> Vec<u8> {
    let ip = |at: usize| [syn[at], syn[at + 1], syn[at + 2], syn[at + 3]];
    let port = |at: usize| u16::from_be_bytes([syn[at], syn[at + 1]]);
    let mut mac = ([0u8; 6], [0u8; 6]);
    mac.0.copy_from_slice(&syn[6..12]);
    mac.1.copy_from_slice(&syn[..6]);
    let mut v = Vec::new();
    let _ = etherparse::PacketBuilder::ethernet2(mac.0, mac.1)
        .ipv4(ip(26), ip(30), 64)
        .tcp(port(34), port(36), 1001, 64000)
        .ack(5001)
        .write(&mut v, b"GET / HTTP/1.0\r\n\r\n");
    v
}

/// Frames a staged burst holds (the workers' burst).
const BURST: usize = 32;

/// One burst through the worker's stages; the frames not forwarded.
fn staged_burst(
    lab: &mut Lab,
    chunk: &[(u16, Vec<u8>)],
    burst: &mut [VecFrame],
    parsed: &mut [Parsed; BURST],
) -> u64 {
    for ((f, p), (_, bytes)) in burst.iter_mut().zip(parsed.iter_mut()).zip(chunk) {
        f.reset(bytes);
        *p = lab.engine.parse(&lab.snap, f.bytes());
    }
    for p in &parsed[..chunk.len()] {
        lab.engine.prefetch_entry(p);
    }
    let mut lost = 0;
    for ((f, p), (port, _)) in burst.iter_mut().zip(parsed.iter()).zip(chunk) {
        if !matches!(
            lab.engine
                .process_parsed(&lab.snap, &lab.loads, 1, *port, p, f),
            Verdict::Forward { .. }
        ) {
            lost += 1;
        }
    }
    lost
}

fn run(mode: Mode, flows: u32, seconds: f64, conns: u32) -> ModeOutcome {
    let (mut lost, mut proxy_headers) = (0u64, 0u64);
    // Established: open the flows, then a client packet and a reply in turn.
    let mut lab = lab(mode, 1 << 16);
    let mut frames = Vec::with_capacity(2 * flows as usize);
    for i in 0..flows {
        let (port, syn) = opening(mode, i);
        let mut f = VecFrame::new(&syn);
        match lab.engine.process(&lab.snap, &lab.loads, 0, port, &mut f) {
            Verdict::Forward { .. } => {
                // The first data segment (which carries PROXY's header), once.
                let first = first_data(&syn);
                let mut d = VecFrame::new(&first);
                if !matches!(
                    lab.engine.process(&lab.snap, &lab.loads, 0, port, &mut d),
                    Verdict::Forward { .. }
                ) {
                    lost += 1;
                }
                if d.bytes().len() == first.len() + rvs_wire::proxy::LEN_V4 {
                    proxy_headers += 1;
                }
                frames.extend(exchange(mode, i, f.bytes()));
            }
            _ => lost += 1,
        }
    }
    let mut frame = VecFrame::new(&[0u8; 64]);
    let mut burst: Vec<VecFrame> = (0..BURST).map(|_| VecFrame::new(&[0u8; 64])).collect();
    let mut parsed = [Parsed::default(); BURST];
    let (mut n, start) = (0u64, Instant::now());
    if mode == Mode::NatStaged {
        'staged: loop {
            for chunk in frames.chunks(BURST) {
                lost += staged_burst(&mut lab, chunk, &mut burst, &mut parsed);
                n += chunk.len() as u64;
                if n % 4096 < BURST as u64 && start.elapsed().as_secs_f64() >= seconds {
                    break 'staged;
                }
            }
        }
    }
    'measure: loop {
        if mode == Mode::NatStaged {
            break;
        }
        for (port, bytes) in &frames {
            frame.reset(bytes);
            if !matches!(
                lab.engine
                    .process(&lab.snap, &lab.loads, 1, *port, &mut frame),
                Verdict::Forward { .. }
            ) {
                lost += 1;
            }
            n += 1;
            if n.is_multiple_of(4096) && start.elapsed().as_secs_f64() >= seconds {
                break 'measure;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // New connections: SYNs of distinct clients into a table four times their number.
    let mut lab = self::lab(mode, 4 * conns as usize);
    let syns: Vec<(u16, Vec<u8>)> = (0..conns).map(|i| opening(mode, i)).collect();
    let start_new = Instant::now();
    if mode == Mode::NatStaged {
        for chunk in syns.chunks(BURST) {
            lost += staged_burst(&mut lab, chunk, &mut burst, &mut parsed);
        }
    }
    for (port, syn) in syns.iter().filter(|_| mode != Mode::NatStaged) {
        frame.reset(syn);
        if !matches!(
            lab.engine
                .process(&lab.snap, &lab.loads, 1, *port, &mut frame),
            Verdict::Forward { .. }
        ) {
            lost += 1;
        }
    }
    let new_secs = start_new.elapsed().as_secs_f64();
    ModeOutcome {
        name: mode.name().into(),
        flows,
        established_mpps: n as f64 / secs / 1e6,
        ns_per_packet: secs * 1e9 / n as f64,
        new_conns_per_s: f64::from(conns) / new_secs,
        lost,
        proxy_headers,
    }
}

/// The four modes in five interleaved rounds (this machine is shared: a round that a
/// neighbour slows down moves the median little), each round `seconds / 5` of established
/// traffic and 200,000 new connections; medians of the rounds.
pub fn runs(seconds: f64) -> Vec<ModeOutcome> {
    runs_sized(seconds, 200_000, 5)
}

fn runs_sized(seconds: f64, conns: u32, rounds: usize) -> Vec<ModeOutcome> {
    let modes = [
        Mode::Nat,
        Mode::NatStaged,
        Mode::FullNat,
        Mode::FullNatProxy,
        Mode::Snat,
    ];
    let mut all: Vec<Vec<ModeOutcome>> = vec![Vec::new(); modes.len()];
    for _ in 0..rounds.max(1) {
        for (i, m) in modes.iter().enumerate() {
            all[i].push(run(*m, 10_000, seconds / rounds.max(1) as f64, conns));
        }
    }
    all.into_iter()
        .map(|rs| {
            let median = |f: &dyn Fn(&ModeOutcome) -> f64| {
                let mut v: Vec<f64> = rs.iter().map(f).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            ModeOutcome {
                established_mpps: median(&|r| r.established_mpps),
                ns_per_packet: median(&|r| r.ns_per_packet),
                new_conns_per_s: median(&|r| r.new_conns_per_s),
                lost: rs.iter().map(|r| r.lost).sum(),
                ..rs[0].clone()
            }
        })
        .collect()
}

pub fn verdicts(runs: &[ModeOutcome]) -> Vec<String> {
    runs.iter()
        .filter(|r| r.lost > 0)
        .map(|r| format!("{}: {} packets not forwarded", r.name, r.lost))
        .collect()
}

pub fn table(runs: &[ModeOutcome]) -> String {
    let nat = runs.first().map_or(1.0, |r| r.established_mpps);
    let nat_new = runs.first().map_or(1.0, |r| r.new_conns_per_s);
    let mut s = String::from(
        "NAT modes through one engine on this core (TCP, 64-byte frames, 10k flows; full NAT from 4 local addresses; no ports; medians of 5 interleaved rounds)\n\
         mode            established Mpps  ns/packet  vs NAT   new conns/s   vs NAT  lost\n",
    );
    for r in runs {
        s.push_str(&format!(
            "{:<15} {:>16.2} {:>10.1} {:>6.0}% {:>13.0} {:>7.0}% {:>5}\n",
            r.name,
            r.established_mpps,
            r.ns_per_packet,
            100.0 * r.established_mpps / nat,
            r.new_conns_per_s,
            100.0 * r.new_conns_per_s / nat_new,
            r.lost
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mode forwards every packet of its exchange (the figures would mean nothing
    /// otherwise), and the reply reaches the client side.
    #[test]
    fn every_mode_forwards_its_exchange() {
        for r in runs_sized(0.05, 20_000, 1) {
            assert_eq!(r.lost, 0, "{r:?}");
            let proxied = if r.name == "fullnat-proxy" {
                r.flows
            } else {
                0
            };
            assert_eq!(r.proxy_headers, u64::from(proxied), "{r:?}");
            assert!(r.established_mpps > 0.0 && r.new_conns_per_s > 0.0, "{r:?}");
        }
    }
}
