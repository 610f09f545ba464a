//! Structure-aware frames and the engine's invariants, shared by the property tests (any
//! machine) and the fuzz targets (cargo-fuzz, nightly).
//!
//! A [`FrameSpec`] is drawn from raw bytes: its addresses are mostly the lab's own (clients,
//! VIPs, real servers, the appliance), so inputs reach connections, replies and ICMP paths
//! instead of dying at the first lookup; lengths, flags and a corruption are free.
//! [`step`] runs one frame and checks after it:
//! * exactly one drop counter moved for a drop (or a packet whose buffer left as an ICMP
//!   error or a neighbour request in its place), none otherwise;
//! * a frame forwarded from an intact one has valid checksums (IPv4 header, TCP/UDP/ICMP,
//!   the inner packet of a tunnel), unless it asked the port to compute the IPv4 one;
//! * every real server's active and inactive counts equal its connections in the table.

use crate::lab::*;
use arbitrary::{Arbitrary, Unstructured};
use etherparse::PacketBuilder;
use rvs_core::engine::{DropReason, Frame, VecFrame, Verdict, EXPIRE_BUDGET_MAX};
use rvs_wire::checksum::{accumulate, finish};
use rvs_wire::{proto, EthernetFrame, Ipv4Packet, Ipv6Packet};

#[derive(Debug, Clone, Arbitrary)]
pub enum Addr {
    Client(u8),
    Vip(u8),
    Server(u8),
    Appliance,
    Other([u8; 4]),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum L4 {
    Tcp {
        flags: u8,
    },
    Udp,
    IcmpEcho,
    /// An ICMP error quoting a packet of the same addresses (reversed).
    IcmpUnreachable,
    Arp,
}

/// One frame by its fields.
#[derive(Debug, Clone, Arbitrary)]
pub struct FrameSpec {
    pub port: bool,
    pub v6: bool,
    pub src: Addr,
    pub dst: Addr,
    pub l4: L4,
    pub sport: u8,
    pub dport: u8,
    pub ttl: u8,
    pub payload: u8,
    /// Cut the frame to this length.
    pub truncate: Option<u8>,
    /// XOR one byte.
    pub corrupt: Option<(u8, u8)>,
    /// Seconds to let pass before the frame (expiry runs).
    pub wait: u8,
}

const VIPS: [[u8; 4]; 10] = [
    [192, 168, 1, 100],
    [192, 168, 1, 101],
    [192, 168, 1, 102],
    [192, 168, 1, 103],
    [192, 168, 1, 104],
    [192, 168, 1, 105],
    [192, 168, 1, 106],
    // The router lab's member range, marked prefix and cache cluster's origins.
    [192, 168, 1, 120],
    [192, 168, 2, 7],
    [192, 168, 3, 7],
];
const VIPS6: [[u8; 16]; 3] = [VIP6, VIP6_TUN, VIP6_DR];
const SERVERS: [[u8; 4]; 3] = [[10, 0, 0, 2], [10, 0, 0, 3], [10, 0, 0, 9]];
const PORTS: [u16; 6] = [80, 443, 53, 8080, 40000, 22];

fn pick<T: Copy>(v: &[T], i: u8) -> T {
    v[usize::from(i) % v.len()]
}

impl Addr {
    fn v4(&self) -> [u8; 4] {
        match self {
            Addr::Client(i) => [198, 51, 100, 1 + i % 8],
            Addr::Vip(i) => pick(&VIPS, *i),
            Addr::Server(i) => pick(&SERVERS, *i),
            Addr::Appliance => [192, 168, 1, 1],
            Addr::Other(a) => *a,
        }
    }

    fn v6(&self) -> [u8; 16] {
        match self {
            Addr::Client(i) => {
                let mut a = CLIENT6;
                a[15] = 1 + i % 8;
                a
            }
            Addr::Vip(i) => pick(&VIPS6, *i),
            Addr::Server(_) => RS6,
            Addr::Appliance => DIP6_IN,
            Addr::Other(a) => {
                let mut v = [0u8; 16];
                v[..4].copy_from_slice(&[0x20, 1, 0xd, 0xb8]);
                v[12..].copy_from_slice(a);
                v
            }
        }
    }
}

impl FrameSpec {
    /// Draws a spec from raw bytes (fuzzers and property tests feed the same way).
    pub fn from_bytes(data: &[u8]) -> Option<FrameSpec> {
        FrameSpec::arbitrary(&mut Unstructured::new(data)).ok()
    }

    pub fn in_port(&self) -> u16 {
        u16::from(self.port)
    }

    /// The frame, with etherparse computing every checksum before the mutations.
    pub fn build(&self) -> Vec<u8> {
        let (src_mac, dst_mac) = if self.port {
            (RS2_MAC, PORT1_MAC)
        } else {
            (CLIENT_MAC, PORT0_MAC)
        };
        let payload = vec![0x5a; usize::from(self.payload)];
        let (sport, dport) = (pick(&PORTS, self.sport), pick(&PORTS, self.dport));
        let mut out = Vec::new();
        if let L4::Arp = self.l4 {
            out = crate::fixtures::arp(
                1 + u16::from(self.ttl & 1),
                (src_mac, [0xff; 6]),
                (src_mac, self.src.v4()),
                ([0; 6], self.dst.v4()),
            );
        } else {
            let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
            let l3 = if self.v6 {
                eth.ipv6(self.src.v6(), self.dst.v6(), self.ttl)
            } else {
                eth.ipv4(self.src.v4(), self.dst.v4(), self.ttl)
            };
            let written = match self.l4 {
                L4::Tcp { flags } => {
                    let mut b = l3.tcp(sport, dport, 1000, 64000);
                    if flags & 1 != 0 {
                        b = b.syn();
                    }
                    if flags & 2 != 0 {
                        b = b.ack(7);
                    }
                    if flags & 4 != 0 {
                        b = b.fin();
                    }
                    if flags & 8 != 0 {
                        b = b.rst();
                    }
                    b.write(&mut out, &payload)
                }
                L4::Udp => l3.udp(sport, dport).write(&mut out, &payload),
                L4::IcmpEcho if self.v6 => l3.icmpv6_echo_request(7, 1).write(&mut out, &payload),
                L4::IcmpEcho => l3.icmpv4_echo_request(7, 1).write(&mut out, &payload),
                L4::IcmpUnreachable => {
                    // Quote a TCP header of the reverse direction.
                    let mut quoted = Vec::new();
                    let q = PacketBuilder::ipv4(self.dst.v4(), self.src.v4(), 64)
                        .tcp(dport, sport, 1, 1);
                    let _ = q.write(&mut quoted, &[]);
                    quoted.truncate(28);
                    l3.icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::Port,
                    ))
                    .write(&mut out, &quoted)
                }
                L4::Arp => Ok(()),
            };
            if written.is_err() {
                out.clear();
            }
        }
        if let Some((at, x)) = self.corrupt {
            if let Some(b) = out.get_mut(usize::from(at)) {
                *b ^= x;
            }
        }
        if let Some(len) = self.truncate {
            out.truncate(usize::from(len));
        }
        out
    }
}

fn ip_payload_ok(l4_proto: u8, pseudo: u32, l4: &[u8]) -> Result<(), String> {
    match l4_proto {
        proto::TCP | proto::UDP | proto::ICMPV6 => {
            if l4_proto == proto::UDP && l4.get(6..8) == Some(&[0, 0]) {
                return Ok(()); // IPv4 UDP without a checksum
            }
            if finish(accumulate(pseudo, l4)) != 0 {
                return Err(format!("bad checksum of protocol {l4_proto}"));
            }
        }
        proto::ICMP if finish(accumulate(0, l4)) != 0 => {
            return Err("bad ICMP checksum".into());
        }
        proto::IPIP => return ipv4_ok(l4, false),
        proto::IPV6 => return ipv6_ok(l4),
        _ => {}
    }
    Ok(())
}

fn ipv4_ok(b: &[u8], offloaded: bool) -> Result<(), String> {
    let ip = Ipv4Packet::new_checked(b).map_err(|e| format!("IPv4: {e:?}"))?;
    if !offloaded && !ip.verify_checksum() {
        return Err("bad IPv4 header checksum".into());
    }
    if ip.is_fragment() {
        return Ok(());
    }
    let pseudo = ip.pseudo_header();
    ip_payload_ok(ip.protocol(), pseudo, ip.payload())
}

fn ipv6_ok(b: &[u8]) -> Result<(), String> {
    let ip = Ipv6Packet::new_checked(b).map_err(|e| format!("IPv6: {e:?}"))?;
    let pseudo = ip.pseudo_header(ip.next_header(), ip.payload().len());
    ip_payload_ok(ip.next_header(), pseudo, ip.payload())
}

/// Checksums of a frame the engine sends out.
pub fn forwarded_frame_ok(frame: &[u8], ipv4_offloaded: bool) -> Result<(), String> {
    let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("Ethernet: {e:?}"))?;
    match eth.ethertype() {
        rvs_wire::EtherType::IPV4 => ipv4_ok(eth.payload(), ipv4_offloaded),
        rvs_wire::EtherType::IPV6 => ipv6_ok(eth.payload()),
        _ => Ok(()),
    }
}

/// Whether a frame is what the engine sends in a dropped packet's place: an ICMP
/// destination-unreachable, an ICMPv6 error or neighbour solicitation, an ARP request.
fn sent_in_place(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    match eth.ethertype() {
        rvs_wire::EtherType::ARP => true,
        rvs_wire::EtherType::IPV4 => Ipv4Packet::new_checked(eth.payload())
            .is_ok_and(|ip| ip.protocol() == proto::ICMP && ip.payload().first() == Some(&3)),
        rvs_wire::EtherType::IPV6 => Ipv6Packet::new_checked(eth.payload()).is_ok_and(|ip| {
            ip.next_header() == proto::ICMPV6
                && ip.payload().first().is_some_and(|t| *t < 128 || *t == 135)
        }),
        _ => false,
    }
}

/// Every real server's active/inactive counts against its connections in the table.
pub fn loads_match_table(lab: &Lab) -> Result<(), String> {
    for (id, load) in lab.loads.iter().enumerate() {
        let conns: Vec<_> = lab
            .engine
            .table
            .iter()
            .filter(|(_, c)| !c.is_template() && c.dest as usize == id)
            .map(|(_, c)| rvs_core::conn::state_is_active(c.proto, c.state))
            .collect();
        let active = conns.iter().filter(|a| **a).count() as u32;
        let inactive = conns.len() as u32 - active;
        if (load.active(), load.inactive()) != (active, inactive) {
            return Err(format!(
                "server {id}: counts {}/{} but the table holds {active}/{inactive}",
                load.active(),
                load.inactive()
            ));
        }
    }
    Ok(())
}

/// Runs one spec through `lab` at `*now` (advanced by its wait, with expiry) and checks
/// the invariants; the verdict, or what broke.
pub fn step(lab: &mut Lab, now: &mut u32, spec: &FrameSpec) -> Result<Verdict, String> {
    if spec.wait > 0 {
        *now += u32::from(spec.wait);
        lab.engine.expire(*now, 1 << 16, &lab.loads);
        // drop_entry's look of each second waited (the router lab has it on).
        for second in *now + 1 - u32::from(spec.wait)..=*now {
            lab.engine
                .drop_entries(&lab.snap, &lab.loads, second, EXPIRE_BUDGET_MAX);
        }
    }
    let input = spec.build();
    let drops = |lab: &Lab| lab.engine.counters().drops.iter().sum::<u64>();
    let before = drops(lab);
    let before_each = lab.engine.counters().drops;
    let mut f = VecFrame::new(&input);
    let verdict = lab
        .engine
        .process(&lab.snap, &lab.loads, *now, spec.in_port(), &mut f);
    let moved = drops(lab) - before;
    // A drop counts once; so does a packet whose buffer left as an ICMP error or a
    // neighbour request in its place.
    let want = match verdict {
        Verdict::Drop(_) => 1,
        Verdict::Forward { .. } if sent_in_place(f.bytes()) => moved.min(1),
        _ => 0,
    };
    if moved != want {
        let after = lab.engine.counters().drops;
        let which: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| after[**r as usize] != before_each[**r as usize])
            .map(|r| format!("{r:?}"))
            .collect();
        return Err(format!(
            "{verdict:?} moved {moved} drop counters ({}) on {spec:?}",
            which.join(", ")
        ));
    }
    if let Verdict::Drop(r) = verdict {
        let c = lab.engine.counters().drops[r as usize];
        if c == 0 {
            return Err(format!("{r:?} not counted"));
        }
    }
    // The engine must never break a checksum (it forwards a corrupt payload as it came).
    let intact = forwarded_frame_ok(&input, false).is_ok();
    if let (Verdict::Forward { .. }, true) = (verdict, intact) {
        forwarded_frame_ok(f.bytes(), f.ipv4_checksum_offload.is_some())
            .map_err(|e| format!("{verdict:?}: {e} in {:02x?}", f.bytes()))?;
    }
    loads_match_table(lab)?;
    Ok(verdict)
}

/// Runs every spec drawn from `data` (one after another on one lab).
pub fn run_bytes(data: &[u8]) -> Result<(), String> {
    let mut u = Unstructured::new(data);
    // Half the inputs run on the appliance as its servers' router (full NAT, PROXY v2,
    // SNAT, routing, member ranges, marks).
    let mut lab = if data.first().is_some_and(|b| b & 1 == 1) {
        Lab::router()
    } else {
        Lab::new()
    };
    let mut now = 1;
    while let Ok(spec) = FrameSpec::arbitrary(&mut u) {
        step(&mut lab, &mut now, &spec)?;
        if u.is_empty() {
            break;
        }
    }
    Ok(())
}

/// The specs drawn from `data` (at most 24), then each intact, each from a client to a VIP
/// and each as a real server's answer to a client (connections made, met and replied
/// to), then everything again at once; and whether the lab is the router (the first
/// byte odd).
fn conversation(data: &[u8]) -> (bool, Vec<FrameSpec>) {
    let mut u = Unstructured::new(data);
    let router = data.first().is_some_and(|b| b & 1 == 1);
    let mut specs = Vec::new();
    while let Ok(spec) = FrameSpec::arbitrary(&mut u) {
        specs.push(spec);
        if u.is_empty() || specs.len() >= 24 {
            break;
        }
    }
    let intact = |s: &FrameSpec| FrameSpec {
        truncate: None,
        corrupt: None,
        wait: 0,
        ..s.clone()
    };
    let mut more: Vec<FrameSpec> = specs.iter().map(intact).collect();
    for s in &specs {
        let (client, vip, server) = (s.sport % 4, s.dport % 4, s.ttl % 3);
        more.push(FrameSpec {
            src: Addr::Client(client),
            dst: Addr::Vip(vip),
            ..intact(s)
        });
        more.push(FrameSpec {
            src: Addr::Server(server),
            dst: Addr::Client(client),
            sport: s.dport,
            dport: s.sport,
            ..intact(s)
        });
    }
    specs.extend(more);
    let replay: Vec<FrameSpec> = specs.iter().map(intact).collect();
    specs.extend(replay);
    (router, specs)
}

/// Connections drawn from `data` and played out, interleaved: for each spec, a client of
/// the NAT, DR or TUN service or of the IPv6 NAT or TUN one opens a connection, sends
/// data (the spec's TTL, which may be 1, and payload; seconds may pass in between), gets
/// NAT replies, and ends it with a FIN or an RST; then everything again. Most packets are of established connections.
fn sessions(data: &[u8]) -> Vec<FrameSpec> {
    let mut u = Unstructured::new(data);
    let mut lanes: Vec<Vec<FrameSpec>> = Vec::new();
    while let Ok(s) = FrameSpec::arbitrary(&mut u) {
        let kind = s.dport % 5;
        let (vip, vport, tcp) = match kind {
            0 => (0, 0, true),  // 192.168.1.100:80, NAT
            1 => (1, 0, true),  // 192.168.1.101:80, DR
            2 => (2, 2, false), // 192.168.1.102:53, TUN (UDP)
            3 => (0, 0, true),  // VIP6:80, NAT
            _ => (1, 0, true),  // VIP6_TUN:80, TUN
        };
        let nat = kind == 0 || kind == 3;
        let from_client = |flags: u8, ttl: u8, payload: u8| FrameSpec {
            port: false,
            v6: kind >= 3,
            src: Addr::Client(s.sport),
            dst: Addr::Vip(vip),
            l4: if tcp { L4::Tcp { flags } } else { L4::Udp },
            sport: 4 + s.sport % 2,
            dport: vport,
            ttl,
            payload,
            truncate: None,
            corrupt: None,
            wait: 0,
        };
        // The real server 10.0.0.2:8080 (RS6 for IPv6) answering the client.
        let from_server = |flags: u8, ttl: u8, payload: u8| FrameSpec {
            port: true,
            src: Addr::Server(0),
            dst: Addr::Client(s.sport),
            sport: 3,
            dport: 4 + s.sport % 2,
            ..from_client(flags, ttl, payload)
        };
        let (syn, ack, fin, rst) = (1, 2, 4 | 2, 8);
        let mut lane = vec![from_client(syn, 64, 0)];
        if nat {
            lane.push(from_server(syn | ack, 64, 0));
        }
        lane.push(from_client(ack, 64, 0));
        for i in 0..3 {
            lane.push(from_client(ack, if i == 1 { s.ttl } else { 64 }, s.payload));
            if nat {
                lane.push(from_server(ack, if i == 2 { s.ttl } else { 64 }, s.payload));
            }
        }
        lane.push(from_client(if s.ttl & 1 == 0 { fin } else { rst }, 64, 0));
        if nat {
            lane.push(from_server(fin, 64, 0));
        }
        lane.push(from_client(ack, 64, 0));
        if let Some(first) = lane.first_mut() {
            first.wait = s.wait % 4;
        }
        // Time also passes between data segments (deadlines move under established
        // connections).
        if let Some(data) = lane.get_mut(if nat { 5 } else { 3 }) {
            data.wait = (s.wait >> 2) % 3;
        }
        lanes.push(lane);
        if u.is_empty() || lanes.len() >= 8 {
            break;
        }
    }
    let longest = lanes.iter().map(Vec::len).max().unwrap_or(0);
    let mut specs: Vec<FrameSpec> = (0..longest)
        .flat_map(|i| lanes.iter().filter_map(move |l| l.get(i).cloned()))
        .collect();
    specs.extend(specs.clone());
    specs
}

/// Runs the specs of [`sessions`] on two identical labs, one as workers run (an
/// established packet whose next hop is cached takes the engine's fast lane), the other
/// with every connection's cached next hop made stale before each packet (so every packet
/// takes the general path); the verdicts, frames, counters and connection entries (state,
/// flags, deadline, client packets) must be the same after every packet, also across a shortened timeout. How many packets the lane could
/// have taken (forwarded established ones) is returned, for the caller to require some.
pub fn fast_lane_agrees(data: &[u8]) -> Result<usize, String> {
    let specs = sessions(data);
    let lab = Lab::new;
    let (mut fast, mut general) = (lab(), lab());
    let entries = |lab: &Lab| {
        let mut v: Vec<_> = lab
            .engine
            .table
            .iter()
            .map(|(id, c)| {
                let what = (c.state, c.flags, c.expires, c.dest, c.daddr, c.dport);
                (id.0, what, c.in_pkts)
            })
            .collect();
        v.sort();
        v
    };
    let mut now = 1;
    let mut established = 0;
    let mut shortened = false;
    for spec in &specs {
        if spec.wait > 0 {
            now += u32::from(spec.wait);
            fast.engine.expire(now, 1 << 16, &fast.loads);
            general.engine.expire(now, 1 << 16, &general.loads);
        }
        // Once, the established timeout shortened (`ipvsadm --set 30 0 0`) under open
        // connections: their next packets move their deadlines earlier.
        if spec.wait == 3 && !shortened {
            shortened = true;
            for lab in [&mut fast, &mut general] {
                lab.snap.timeouts.set(30, 0, 0);
                lab.engine.adopt(&lab.snap);
            }
        }
        let before = fast.engine.table.len();
        let input = spec.build();
        let (mut f, mut g) = (VecFrame::new(&input), VecFrame::new(&input));
        // As a worker: parsed and hashed first (only a hashed packet may take the lane).
        let p = fast.engine.parse(&fast.snap, &input);
        let got =
            fast.engine
                .process_parsed(&fast.snap, &fast.loads, now, spec.in_port(), &p, &mut f);
        // Taking the same snapshot again starts a new next-hop epoch: nothing else changes.
        general.engine.adopt(&general.snap);
        let p = general.engine.parse(&general.snap, &input);
        let want = general.engine.process_parsed(
            &general.snap,
            &general.loads,
            now,
            spec.in_port(),
            &p,
            &mut g,
        );
        if (got, f.bytes()) != (want, g.bytes()) {
            return Err(format!(
                "fast lane {got:?} {:02x?}, general path {want:?} {:02x?}, on {spec:?}",
                f.bytes(),
                g.bytes()
            ));
        }
        if fast.engine.counters() != general.engine.counters() {
            return Err(format!("the counters differ after {spec:?}"));
        }
        if entries(&fast) != entries(&general) {
            return Err(format!(
                "the entries differ after {spec:?}: {:?} / {:?}",
                entries(&fast),
                entries(&general)
            ));
        }
        let plain =
            matches!(spec.l4, L4::Udp) || matches!(spec.l4, L4::Tcp { flags } if flags == 2);
        if plain && matches!(got, Verdict::Forward { .. }) && fast.engine.table.len() == before {
            established += 1;
        }
    }
    Ok(established)
}

/// Runs the specs of [`conversation`] on two identical labs: frame by frame through
/// `process`, and in bursts of up to eight through the worker's stages (every frame
/// parsed and its key hashed, then every entry prefetched, then `process_parsed` one
/// after another, as a burst sees the table change under it); the verdicts and frames
/// must be the same. With the first byte's second bit, the director is paused (IPVS's
/// backup_only) for the second half, the replay of connections the first half opened:
/// each path must hand them to the host alike.
pub fn staged_agrees(data: &[u8]) -> Result<(), String> {
    let (router, specs) = conversation(data);
    let lab = || if router { Lab::router() } else { Lab::new() };
    let (mut one, mut staged) = (lab(), lab());
    let pause_at = match data.first() {
        Some(b) if b & 2 != 0 => specs.len() / 2,
        _ => usize::MAX,
    };
    let mut done = 0;
    let mut now = 1;
    // Bursts end where time moves (expiry runs between passes).
    for burst in specs.chunk_by(|_, b| b.wait == 0) {
        for chunk in burst.chunks(8) {
            if done >= pause_at && !one.snap.director_paused {
                for lab in [&mut one, &mut staged] {
                    lab.snap.director_paused = true;
                }
            }
            done += chunk.len();
            if chunk[0].wait > 0 {
                now += u32::from(chunk[0].wait);
                one.engine.expire(now, 1 << 16, &one.loads);
                staged.engine.expire(now, 1 << 16, &staged.loads);
            }
            let inputs: Vec<Vec<u8>> = chunk.iter().map(FrameSpec::build).collect();
            let mut frames: Vec<VecFrame> = inputs.iter().map(|b| VecFrame::new(b)).collect();
            let parsed: Vec<_> = frames
                .iter()
                .map(|f| staged.engine.parse(&staged.snap, f.bytes()))
                .collect();
            for p in &parsed {
                staged.engine.prefetch_entry(p);
            }
            for ((spec, frame), p) in chunk.iter().zip(frames.iter_mut()).zip(&parsed) {
                let got = staged.engine.process_parsed(
                    &staged.snap,
                    &staged.loads,
                    now,
                    spec.in_port(),
                    p,
                    frame,
                );
                let mut f = VecFrame::new(&spec.build());
                let want = one
                    .engine
                    .process(&one.snap, &one.loads, now, spec.in_port(), &mut f);
                if (got, frame.bytes()) != (want, f.bytes()) {
                    return Err(format!(
                        "staged {got:?} {:02x?}, per packet {want:?} {:02x?}, on {spec:?}",
                        frame.bytes(),
                        f.bytes()
                    ));
                }
            }
        }
    }
    if one.engine.counters() != staged.engine.counters() {
        return Err("the counters differ".into());
    }
    Ok(())
}

/// What a client sends on an FTP control connection in [`ftp_session`]: the commands the
/// helper reads, then free bytes.
const FTP_CLIENT_LINES: [&[u8]; 6] = [
    b"",
    b"PASV\r\n",
    b"EPSV\r\n",
    b"EPSV 1\r\n",
    b"PORT 198,51,100,7,200,10\r\n",
    b"EPRT |1|198.51.100.7|51210|\r\n",
];

/// What a server answers in [`ftp_session`]: the replies the helper rewrites, then free
/// bytes.
const FTP_SERVER_LINES: [&[u8]; 8] = [
    b"",
    b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n",
    b"227 =10,0,0,2,4,1\r\n",
    b"229 Entering Extended Passive Mode (|||50001|)\r\n",
    b"229 (|1|10.0.0.2|50002|)\r\n",
    b"227 Entering Passive Mode (10,0,0,3,195,83).\r\n",
    b"229 (|1|10.0.0.3|50004|)\r\n",
    b"150 Opening BINARY mode data connection\r\n",
];

/// An FTP control connection through the helper driven by raw bytes: each segment, from
/// the client or the server (or the server's last one again before the client speaks),
/// carries one of the lines the
/// helper reads and free bytes. Every segment must be forwarded with right checksums and
/// lengths; the server's stream the client sees must stay contiguous however the helper
/// rewrote it (a retransmission seen as the first sending was), the client's stream never
/// moves, and the client's acknowledgement of all it saw reaches the server as the
/// server's own next sequence number.
pub fn ftp_session(data: &[u8]) -> Result<(), String> {
    let mut lab = ftp_lab(true);
    let client = (CLIENT, 40000);
    let (c, s) = ((GW_MAC, PORT0_MAC), (RS2_MAC, PORT1_MAC));
    let vip = (FTP_VIP, 21);
    let server = ([10, 0, 0, 2], 21);
    let run = |lab: &mut Lab, port: u16, f: &[u8]| -> Result<Vec<u8>, String> {
        let (v, out) = lab.run(port, f);
        if !matches!(v, Verdict::Forward { .. }) {
            return Err(format!("a control segment was not forwarded: {v:?}"));
        }
        forwarded_frame_ok(&out, false)?;
        Ok(out)
    };
    run(
        &mut lab,
        0,
        &segment(c, client, vip, 64, (1000, None), true, &[], b""),
    )?;
    run(
        &mut lab,
        1,
        &segment(s, server, client, 64, (5000, Some(1001)), true, &[], b""),
    )?;
    run(
        &mut lab,
        0,
        &segment(c, client, vip, 64, (1001, Some(5001)), false, &[], b""),
    )?;
    // Next sequence numbers: the client's; the server's own; the server's as the client
    // sees them. The server's last segment, and where and how the client saw it.
    let (mut c_seq, mut s_seq, mut seen) = (1001u32, 5001u32, 5001u32);
    let mut last: Option<(Vec<u8>, u32, Vec<u8>)> = None;
    let mut rest = data;
    for _ in 0..64 {
        let [head, len, tail @ ..] = rest else {
            break;
        };
        let n = usize::from(*len).min(tail.len()).min(200);
        let (free, next) = tail.split_at(n);
        rest = next;
        let line = usize::from(head >> 2) % FTP_CLIENT_LINES.len();
        match head & 3 {
            0 | 3 => {
                let payload = [FTP_CLIENT_LINES[line], free].concat();
                let input = segment(
                    c,
                    client,
                    vip,
                    64,
                    (c_seq, Some(seen)),
                    false,
                    &[],
                    &payload,
                );
                let out = run(&mut lab, 0, &input)?;
                let (seq, ack) = (u32_at(&out, 38), u32_at(&out, 42));
                if (seq, ack) != (c_seq, s_seq) {
                    return Err(format!(
                        "the server saw seq {seq} ack {ack}, not {c_seq} and its own {s_seq}"
                    ));
                }
                c_seq = c_seq.wrapping_add(payload.len() as u32);
                // (A server retransmits what the client has not acknowledged: before it
                // speaks again, here.)
                last = None;
            }
            1 => {
                let payload = [FTP_SERVER_LINES[line], free].concat();
                let input = segment(
                    s,
                    server,
                    client,
                    64,
                    (s_seq, Some(c_seq)),
                    false,
                    &[],
                    &payload,
                );
                let out = run(&mut lab, 1, &input)?;
                let seq = u32_at(&out, 38);
                if seq != seen {
                    return Err(format!(
                        "the client saw seq {seq} where its stream is at {seen}"
                    ));
                }
                let shown = out.get(54..).unwrap_or_default().to_vec();
                seen = seen.wrapping_add(shown.len() as u32);
                s_seq = s_seq.wrapping_add(payload.len() as u32);
                last = Some((input, seq, shown));
            }
            _ => {
                let Some((input, at, shown)) = &last else {
                    continue;
                };
                let out = run(&mut lab, 1, input)?;
                let again = (u32_at(&out, 38), out.get(54..).unwrap_or_default());
                if again != (*at, &shown[..]) {
                    return Err(format!(
                        "a retransmission was seen at {} ({} bytes), first at {at} ({} bytes)",
                        again.0,
                        again.1.len(),
                        shown.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}
