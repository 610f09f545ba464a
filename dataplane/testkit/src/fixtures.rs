//! The fixture table (Katran's tester is the model): each case is a few steps, each step an
//! input frame on a port, the verdict and the frame that leaves a data port (none for a
//! drop or the host's share). The same table runs against the engine (`rvs-core`'s
//! tests), through the `rvs` binary over `net_pcap` (the daemon's tests) and through a
//! launched worker over `net_ring` before the benchmark measures anything.
//!
//! Every frame is built with etherparse or by hand from the RFC layouts, never by the code
//! under test. The appliance is [`crate::lab::snapshot`]'s; [`daemon_config`] is the same
//! appliance (its IPv4 part) as a TOML file for one port carrying both sides.

use crate::lab::*;
use etherparse::{IpNumber, PacketBuilder};
use rvs_core::conn::v4_mapped;
use rvs_core::engine::{DropReason, Verdict};

/// Where the fixture appliance's sides are: each port's MAC, the port clients are on and
/// the port servers are on, and the address TUN sends from (the server side's own).
#[derive(Debug, Clone, Copy)]
pub struct Net {
    pub macs: [[u8; 6]; 2],
    pub client_port: u16,
    pub server_port: u16,
    pub tun_source: [u8; 4],
    /// Whether the IPv6 part of the appliance is there (the daemon's file has none).
    pub ipv6: bool,
}

impl Net {
    /// The engine lab: clients on port 0, servers on port 1 (its own MACs).
    pub fn two_ports() -> Net {
        Net {
            macs: [PORT0_MAC, PORT1_MAC],
            client_port: 0,
            server_port: 1,
            tun_source: [10, 0, 0, 1],
            ipv6: true,
        }
    }

    /// One port with MAC `mac` carrying clients and servers ([`daemon_config`]).
    pub fn one_port(mac: [u8; 6]) -> Net {
        Net {
            macs: [mac, mac],
            client_port: 0,
            server_port: 0,
            tun_source: [192, 168, 1, 1],
            ipv6: false,
        }
    }

    fn client_side(&self) -> [u8; 6] {
        self.macs[usize::from(self.client_port)]
    }

    fn server_side(&self) -> [u8; 6] {
        self.macs[usize::from(self.server_port)]
    }
}

/// One frame in, what comes of it.
#[derive(Debug, Clone)]
pub struct Step {
    pub port: u16,
    pub input: Vec<u8>,
    pub verdict: Verdict,
    /// The frame that leaves by the verdict's port (None: nothing leaves a data port); with
    /// [`Verdict::Fragment`] the datagram before it is cut.
    pub output: Option<Vec<u8>>,
}

impl Step {
    /// The frames that leave a data port, with their port: the output, or its fragments.
    pub fn frames_out(&self) -> Vec<(u16, Vec<u8>)> {
        match (self.verdict, &self.output) {
            (Verdict::Forward { port }, Some(f)) => vec![(port, f.clone())],
            (Verdict::Fragment { port, mtu }, Some(f)) => fragments(f, usize::from(mtu))
                .into_iter()
                .map(|f| (port, f))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// An untagged Ethernet frame's IPv4 datagram (without options) cut as RFC 791 cuts it:
/// pieces of the largest multiple of 8 bytes that fits `mtu` after the header, MF on all
/// but the last, the header's length, offset and checksum set for each.
pub fn fragments(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let (head, payload) = frame.split_at(34);
    let step = (mtu - 20) / 8 * 8;
    let total = usize::from(u16::from_be_bytes([head[16], head[17]])) - 20;
    let payload = &payload[..total];
    let mut out = Vec::new();
    for (n, piece) in payload.chunks(step).enumerate() {
        let mut f = head.to_vec();
        f[16..18].copy_from_slice(&((20 + piece.len()) as u16).to_be_bytes());
        let more = if (n + 1) * step < payload.len() {
            0x2000
        } else {
            0
        };
        f[20..22].copy_from_slice(&(more | (n * step / 8) as u16).to_be_bytes());
        f[24..26].fill(0);
        let mut sum: u32 = f[14..34]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend_from_slice(piece);
        out.push(f);
    }
    out
}

/// `frame`'s IPv4 header with DF cleared (its checksum updated).
fn without_df(mut frame: Vec<u8>) -> Vec<u8> {
    if let Some(h) = frame.get(14..34) {
        if let Ok(mut ip) = etherparse::Ipv4Header::from_slice(h).map(|(ip, _)| ip) {
            ip.dont_fragment = false;
            ip.header_checksum = ip.calc_header_checksum();
            frame.splice(14..34, ip.to_bytes());
        }
    }
    frame
}

/// Steps that run in order on one fresh appliance.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub steps: Vec<Step>,
}

/// How many of `steps` a table expects dropped for `reason`.
pub fn drops<'a>(steps: impl IntoIterator<Item = &'a Step>, reason: DropReason) -> u64 {
    steps
        .into_iter()
        .filter(|s| s.verdict == Verdict::Drop(reason))
        .count() as u64
}

fn step(port: u16, input: Vec<u8>, verdict: Verdict, output: Option<Vec<u8>>) -> Step {
    Step {
        port,
        input,
        verdict,
        output,
    }
}

fn forward(from: u16, input: Vec<u8>, to: u16, output: Vec<u8>) -> Step {
    step(from, input, Verdict::Forward { port: to }, Some(output))
}

fn dropped(port: u16, input: Vec<u8>, reason: DropReason) -> Step {
    step(port, input, Verdict::Drop(reason), None)
}

fn udp4(
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src, dst, ttl)
        .udp(ports.0, ports.1)
        .write(&mut out, payload)
        .unwrap_or_default();
    out
}

/// An ARP request (`op` 1) or reply (2), by RFC 826's layout.
pub fn arp(
    op: u16,
    eth: ([u8; 6], [u8; 6]),
    sender: ([u8; 6], [u8; 4]),
    target: ([u8; 6], [u8; 4]),
) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&eth.1);
    f.extend_from_slice(&eth.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sender.0);
    f.extend_from_slice(&sender.1);
    f.extend_from_slice(&target.0);
    f.extend_from_slice(&target.1);
    f
}

/// The whole table for `net`.
pub fn cases(net: &Net) -> Vec<Case> {
    let (c, s) = (net.client_port, net.server_port);
    let (cmac, smac) = (net.client_side(), net.server_side());
    let mut v = vec![
        Case {
            name: "NAT IPv4: a SYN to the VIP reaches the server, its reply leaves from the VIP",
            steps: vec![
                forward(
                    c,
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        CLIENT,
                        [192, 168, 1, 100],
                        64,
                        40000,
                        80,
                        true,
                        false,
                        b"",
                    ),
                    s,
                    tcp4(
                        smac,
                        RS2_MAC,
                        CLIENT,
                        [10, 0, 0, 2],
                        63,
                        40000,
                        8080,
                        true,
                        false,
                        b"",
                    ),
                ),
                forward(
                    s,
                    tcp4(
                        RS2_MAC,
                        smac,
                        [10, 0, 0, 2],
                        CLIENT,
                        64,
                        8080,
                        40000,
                        true,
                        true,
                        b"hello",
                    ),
                    c,
                    tcp4(
                        cmac,
                        GW_MAC,
                        [192, 168, 1, 100],
                        CLIENT,
                        63,
                        80,
                        40000,
                        true,
                        true,
                        b"hello",
                    ),
                ),
            ],
        },
        Case {
            name: "DR IPv4: only the MACs change",
            steps: vec![forward(
                c,
                tcp4(
                    CLIENT_MAC,
                    cmac,
                    CLIENT,
                    [192, 168, 1, 101],
                    64,
                    40001,
                    80,
                    true,
                    false,
                    b"",
                ),
                s,
                tcp4(
                    smac,
                    RS3_MAC,
                    CLIENT,
                    [192, 168, 1, 101],
                    64,
                    40001,
                    80,
                    true,
                    false,
                    b"",
                ),
            )],
        },
        Case {
            name: "TUN IPv4: the datagram wrapped in IPIP from the server side's address",
            steps: {
                let input = udp4(
                    (CLIENT_MAC, cmac),
                    CLIENT,
                    [192, 168, 1, 102],
                    64,
                    (5353, 53),
                    b"query",
                );
                let mut out = Vec::new();
                PacketBuilder::ethernet2(smac, RS2_MAC)
                    .ipv4(net.tun_source, [10, 0, 0, 2], 64)
                    .write(&mut out, IpNumber(4), input.get(14..).unwrap_or_default())
                    .unwrap_or_default();
                vec![forward(c, input, s, out)]
            },
        },
        Case {
            name: "TUN IPv4: a datagram without DF that fills the MTU leaves in two outer \
                   fragments (no DF, identification 1)",
            steps: {
                let input = without_df(udp4(
                    (CLIENT_MAC, cmac),
                    CLIENT,
                    [192, 168, 1, 102],
                    64,
                    (5353, 53),
                    &[0x5a; 1472],
                ));
                let mut outer = etherparse::Ipv4Header::new(
                    1500,
                    64,
                    IpNumber(4),
                    net.tun_source,
                    [10, 0, 0, 2],
                )
                .unwrap_or_default();
                outer.dont_fragment = false;
                outer.identification = 1;
                outer.header_checksum = outer.calc_header_checksum();
                let mut out = Vec::new();
                out.extend_from_slice(&RS2_MAC);
                out.extend_from_slice(&smac);
                out.extend_from_slice(&[0x08, 0x00]);
                out.extend_from_slice(&outer.to_bytes());
                out.extend_from_slice(input.get(14..).unwrap_or_default());
                vec![step(
                    c,
                    input,
                    Verdict::Fragment { port: s, mtu: 1500 },
                    Some(out),
                )]
            },
        },
        Case {
            name: "ARP for a VIP is answered with the port's MAC",
            steps: vec![forward(
                c,
                arp(
                    1,
                    (CLIENT_MAC, [0xff; 6]),
                    (CLIENT_MAC, CLIENT),
                    ([0; 6], [192, 168, 1, 100]),
                ),
                c,
                arp(
                    2,
                    (cmac, CLIENT_MAC),
                    (cmac, [192, 168, 1, 100]),
                    (CLIENT_MAC, CLIENT),
                ),
            )],
        },
        Case {
            name: "ICMP echo to a VIP is answered",
            steps: {
                // The reply has a fresh TTL, not what is left of the request's.
                let mut ping = Vec::new();
                PacketBuilder::ethernet2(CLIENT_MAC, cmac)
                    .ipv4(CLIENT, [192, 168, 1, 100], 9)
                    .icmpv4_echo_request(7, 1)
                    .write(&mut ping, b"abc")
                    .unwrap_or_default();
                let mut pong = Vec::new();
                PacketBuilder::ethernet2(cmac, CLIENT_MAC)
                    .ipv4([192, 168, 1, 100], CLIENT, 64)
                    .icmpv4_echo_reply(7, 1)
                    .write(&mut pong, b"abc")
                    .unwrap_or_default();
                vec![forward(c, ping, c, pong)]
            },
        },
        Case {
            name: "martian and LAND sources are dropped, never balanced or answered",
            steps: {
                let syn_from = |src: [u8; 4]| {
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        src,
                        [192, 168, 1, 100],
                        64,
                        40000,
                        80,
                        true,
                        false,
                        b"",
                    )
                };
                let mut ping = Vec::new();
                PacketBuilder::ethernet2(CLIENT_MAC, cmac)
                    .ipv4([255, 255, 255, 255], [192, 168, 1, 100], 64)
                    .icmpv4_echo_request(7, 1)
                    .write(&mut ping, b"abc")
                    .unwrap_or_default();
                vec![
                    dropped(c, syn_from([0, 0, 0, 0]), DropReason::Martian),
                    dropped(c, syn_from([127, 0, 0, 1]), DropReason::Martian),
                    dropped(c, syn_from([224, 0, 0, 5]), DropReason::Martian),
                    dropped(c, syn_from([240, 1, 2, 3]), DropReason::Martian),
                    // LAND: from the VIP itself, or from the appliance's own address.
                    dropped(c, syn_from([192, 168, 1, 100]), DropReason::Martian),
                    dropped(c, syn_from([192, 168, 1, 1]), DropReason::Martian),
                    dropped(c, ping, DropReason::Martian),
                ]
            },
        },
        Case {
            name: "drops, each counted by its reason",
            steps: vec![
                dropped(
                    c,
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        CLIENT,
                        [192, 168, 1, 100],
                        64,
                        40002,
                        80,
                        false,
                        true,
                        b"",
                    ),
                    DropReason::NoConnection,
                ),
                dropped(
                    c,
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        CLIENT,
                        [192, 168, 1, 101],
                        64,
                        40002,
                        81,
                        true,
                        false,
                        b"",
                    ),
                    DropReason::NoService,
                ),
                dropped(
                    c,
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        CLIENT,
                        [8, 8, 8, 8],
                        64,
                        40002,
                        80,
                        true,
                        false,
                        b"",
                    ),
                    DropReason::NotOurs,
                ),
                dropped(
                    c,
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        CLIENT,
                        [192, 168, 1, 100],
                        1,
                        40003,
                        80,
                        true,
                        false,
                        b"",
                    ),
                    DropReason::Ttl,
                ),
                dropped(
                    c,
                    {
                        let mut f = tcp4(
                            CLIENT_MAC,
                            cmac,
                            CLIENT,
                            [192, 168, 1, 100],
                            64,
                            40003,
                            80,
                            true,
                            false,
                            b"",
                        );
                        f.truncate(14 + 12); // half an IPv4 header
                        f
                    },
                    DropReason::Malformed,
                ),
                dropped(
                    c,
                    {
                        // An echo request whose ICMP checksum is wrong: a host does not
                        // answer it (found by the fuzzing invariants).
                        let mut ping = Vec::new();
                        PacketBuilder::ethernet2(CLIENT_MAC, cmac)
                            .ipv4(CLIENT, [192, 168, 1, 100], 64)
                            .icmpv4_echo_request(7, 2)
                            .write(&mut ping, b"abc")
                            .unwrap_or_default();
                        if let Some(b) = ping.last_mut() {
                            *b ^= 0xff;
                        }
                        ping
                    },
                    DropReason::Malformed,
                ),
            ],
        },
        Case {
            name: "the appliance's own address and link-level multicast go to the host",
            steps: vec![
                step(
                    c,
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        CLIENT,
                        [192, 168, 1, 1],
                        64,
                        40002,
                        22,
                        true,
                        false,
                        b"",
                    ),
                    Verdict::ToHost,
                    None,
                ),
                // A VIP's port no service takes is the host's (`ssh VIP`), as in LVS.
                step(
                    c,
                    tcp4(
                        CLIENT_MAC,
                        cmac,
                        CLIENT,
                        [192, 168, 1, 100],
                        64,
                        40002,
                        22,
                        true,
                        false,
                        b"",
                    ),
                    Verdict::ToHost,
                    None,
                ),
                step(
                    c,
                    udp4(
                        (CLIENT_MAC, [0x01, 0x00, 0x5e, 0, 0, 0xfb]),
                        CLIENT,
                        [224, 0, 0, 251],
                        255,
                        (5353, 5353),
                        b"mdns",
                    ),
                    Verdict::ToHost,
                    None,
                ),
            ],
        },
    ];
    if net.ipv6 {
        v.extend(ipv6_cases(net));
    }
    v
}

fn ipv6_cases(net: &Net) -> Vec<Case> {
    let (c, s) = (net.client_port, net.server_port);
    let (cmac, smac) = (net.client_side(), net.server_side());
    let tcp6_flags =
        |macs: ([u8; 6], [u8; 6]), src, dst, hops, ports: (u16, u16), payload: &[u8]| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2(macs.0, macs.1)
                .ipv6(src, dst, hops)
                .tcp(ports.0, ports.1, 9, 1000)
                .syn()
                .ack(1001)
                .write(&mut out, payload)
                .unwrap_or_default();
            out
        };
    vec![
        Case {
            name: "NAT IPv6: both directions",
            steps: vec![
                forward(
                    c,
                    tcp6(CLIENT_MAC, cmac, CLIENT6, VIP6, 64, 50003, 80, b""),
                    s,
                    tcp6(smac, RS6_MAC, CLIENT6, RS6, 63, 50003, 8080, b""),
                ),
                forward(
                    s,
                    tcp6_flags((RS6_MAC, smac), RS6, CLIENT6, 64, (8080, 50003), b"hi"),
                    c,
                    tcp6_flags((cmac, GW6_MAC), VIP6, CLIENT6, 63, (80, 50003), b"hi"),
                ),
            ],
        },
        Case {
            name: "TUN IPv6: wrapped in IPv6 from the server side's address",
            steps: {
                let input = tcp6(CLIENT_MAC, cmac, CLIENT6, VIP6_TUN, 64, 50001, 80, b"y");
                let mut out = Vec::new();
                PacketBuilder::ethernet2(smac, RS6_MAC)
                    .ipv6(DIP6_IN, RS6, 64)
                    .write(&mut out, IpNumber(41), input.get(14..).unwrap_or_default())
                    .unwrap_or_default();
                vec![forward(c, input, s, out)]
            },
        },
        Case {
            name: "IPv6 with an IPv4-mapped address is dropped as martian (it would stand for \
                   an IPv4 flow: here the IPv4 VIP's)",
            steps: {
                let syn = |src, dst| tcp6(CLIENT_MAC, cmac, src, dst, 64, 50004, 80, b"");
                vec![
                    dropped(
                        c,
                        syn(CLIENT6, v4_mapped([192, 168, 1, 100])),
                        DropReason::Martian,
                    ),
                    dropped(c, syn(v4_mapped(CLIENT), VIP6), DropReason::Martian),
                ]
            },
        },
        Case {
            name: "DR IPv6: only the MACs change",
            steps: vec![forward(
                c,
                tcp6(CLIENT_MAC, cmac, CLIENT6, VIP6_DR, 64, 50002, 80, b""),
                s,
                tcp6(smac, RS6_MAC, CLIENT6, VIP6_DR, 64, 50002, 80, b""),
            )],
        },
    ]
}

/// [`crate::lab::snapshot`]'s IPv4 services, routes and neighbours as an rvs TOML file for
/// one port (`device`) carrying both sides ([`Net::one_port`]), one worker.
pub fn daemon_config(device: &str) -> String {
    daemon_config_with_workers(device, "0,1", &[])
}

/// As [`daemon_config`] with `lcores` (EAL's list or `--lcores` form) and one rx queue per
/// `(lcore, "wire:Q")` worker.
pub fn daemon_config_with_workers(device: &str, lcores: &str, workers: &[(u32, &str)]) -> String {
    let rx_queues = workers.len().max(1);
    let workers: String = workers
        .iter()
        .map(|(lcore, rx)| format!("[[worker]]\nlcore = {lcore}\nrx = [\"{rx}\"]\n\n"))
        .collect();
    format!(
        r#"[eal]
lcores = "{lcores}"
hugepages = false
memory_mb = 256

[dataplane]
connections = 1024

{workers}[[port]]
name = "wire"
device = "{device}"
rx_queues = {rx_queues}
addresses = ["192.168.1.1", "10.0.0.1"]

[[route]]
prefix = "10.0.0.0/24"
port = "wire"

[[route]]
prefix = "0.0.0.0/0"
via = "192.168.1.254"
port = "wire"

[[neighbour]]
address = "10.0.0.2"
mac = "02:aa:00:00:00:02"

[[neighbour]]
address = "10.0.0.3"
mac = "02:aa:00:00:00:03"

[[neighbour]]
address = "192.168.1.254"
mac = "02:bb:00:00:00:01"

[[service]]
protocol = "tcp"
address = "192.168.1.100"
port = 80
scheduler = "rr"

[[service.server]]
address = "10.0.0.2"
port = 8080
method = "nat"

[[service]]
protocol = "tcp"
address = "192.168.1.101"
port = 80
scheduler = "rr"

[[service.server]]
address = "10.0.0.3"
method = "dr"

[[service]]
protocol = "udp"
address = "192.168.1.102"
port = 53
scheduler = "rr"

[[service.server]]
address = "10.0.0.2"
method = "tun"

[[vip]]
address = "192.168.1.101"
unserved = "drop"
"#
    )
}
