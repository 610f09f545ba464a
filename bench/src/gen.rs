//! The traffic generator's packets: built once from a template per kind, then per packet
//! stamped with the flow's client address and port, a per-flow sequence number and the TSC,
//! with both checksums updated incrementally (no per-packet allocation, no full checksum).
//!
//! Where the stamp lives: TCP carries the sequence number in its sequence number field and
//! the TSC's low 32 bits in its acknowledgement number (rvs rewrites neither, so a 60-byte
//! frame can carry it); UDP carries both in the first 8 payload bytes.

use rvs_wire::checksum::{accumulate, finish, pseudo_v4};
use rvs_wire::{proto, EthernetFrame, Ipv4Packet, TcpPacket, UdpPacket};
use serde::Serialize;

/// Clients are taken from 100.64.0.0/10, `PORTS_PER_CLIENT` source ports each.
pub const CLIENT_BASE: u32 = u32::from_be_bytes([100, 64, 0, 0]);
pub const PORT_BASE: u16 = 1024;
pub const PORTS_PER_CLIENT: u32 = 60_000;
/// Distinct (client, port) pairs available: 2^22 addresses x 60,000 ports.
pub const MAX_FLOWS: u64 = (1 << 22) * PORTS_PER_CLIENT as u64;

const ETH: usize = 14;
const IP: usize = 20;
/// The generator's frames carry no VLAN tag nor IP options.
const L4: usize = ETH + IP;
const TCP: usize = 20;
const UDP: usize = 8;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Established TCP: one SYN per flow first, then ACK segments with payload.
    Tcp,
    /// UDP datagrams (the first of a flow makes its connection).
    Udp,
    /// A SYN flood: every packet a new client (address, port).
    Syn,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Udp => "udp",
            Kind::Syn => "syn",
        }
    }
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    pub kind: Kind,
    /// Concurrent flows cycled through (ignored by `Syn`, where every packet is a new flow).
    pub flows: u32,
    /// Frame size without the FCS (60 = a 64-byte frame on the wire).
    pub size: u16,
    /// The first VIP; flow `f` goes to VIP number `f % vips` from it.
    pub vip: [u8; 4],
    pub vips: u32,
    pub vport: u16,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
}

impl Traffic {
    pub fn min_size(kind: Kind) -> u16 {
        match kind {
            Kind::Tcp | Kind::Syn => (ETH + IP + TCP) as u16,
            Kind::Udp => (ETH + IP + UDP + 8) as u16,
        }
        .max(60)
    }
}

/// The client address and source port of flow `f`.
pub fn flow_addr(f: u64) -> (u32, u16) {
    let ip = CLIENT_BASE.wrapping_add((f / u64::from(PORTS_PER_CLIENT)) as u32);
    let port = PORT_BASE + (f % u64::from(PORTS_PER_CLIENT)) as u16;
    (ip, port)
}

/// The flow of a client address and source port, if it is one of the generator's.
pub fn flow_of(ip: u32, port: u16) -> Option<u64> {
    let host = ip.wrapping_sub(CLIENT_BASE);
    let p = port.checked_sub(PORT_BASE)?;
    (host < (1 << 22) && u32::from(p) < PORTS_PER_CLIENT)
        .then(|| u64::from(host) * u64::from(PORTS_PER_CLIENT) + u64::from(p))
}

/// The flow visited `i`-th in round `round` of `flows`: every round visits each flow once,
/// in an order of its own. Real arrivals interleave flows differently from the order their
/// connections were opened in, so a worker's connection entries (allocated in SYN order) are
/// not read back in memory order, which a fixed cycle would let the CPU's stream prefetcher
/// hide. A bijection of the k-bit integers (k: the bits `flows` needs) keyed by the round,
/// walked until it lands below `flows` (under two steps on average).
#[inline]
pub fn visit_order(i: u64, round: u64, flows: u64) -> u64 {
    if flows <= 1 {
        return 0;
    }
    let bits = 64 - (flows - 1).leading_zeros();
    let mask = u64::MAX >> (64 - bits);
    let shift = bits / 2 + 1;
    let key = round.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask;
    let mut x = i;
    loop {
        // Each step is a bijection on k bits (multiply by an odd number, xorshift, add);
        // the key goes in between them, so rounds differ by more than a relabelling.
        x = x.wrapping_mul(0xd6e8_feb8_6659_fd93) & mask;
        x ^= x >> shift;
        x = x.wrapping_add(key) & mask;
        x = x.wrapping_mul(0xa076_1d64_78bd_642f) & mask;
        x ^= x >> shift;
        if x < flows {
            return x;
        }
    }
}

#[inline]
fn words32(v: u32) -> u32 {
    (v >> 16) + (v & 0xffff)
}

/// One frame template with its checksum sums taken over the stamped fields as zero.
#[derive(Clone)]
struct Template {
    bytes: Vec<u8>,
    ip_sum: u32,
    l4_sum: u32,
}

/// Which of a traffic's flows a generator sends.
pub enum Source {
    /// All of them: established flows each round in visit order, a SYN flood's clients in
    /// order.
    All,
    /// Established traffic: these flows only (a generator lane's share).
    Listed(Vec<u32>),
    /// A SYN flood: clients drawn for a lane's queues.
    Fresh(Box<crate::lanes::FreshClients>),
}

/// Builds frames of a [`Traffic`]; `next` stamps the next packet of the cycle into a buffer.
pub struct Generator {
    traffic: Traffic,
    source: Source,
    /// Established TCP: the SYN template (first round) and the data template.
    first: Template,
    data: Template,
    /// Packets built so far.
    pub built: u64,
}

impl Generator {
    pub fn new(traffic: Traffic) -> Generator {
        Generator::of(traffic, Source::All)
    }

    pub fn of(traffic: Traffic, source: Source) -> Generator {
        let size = usize::from(traffic.size.max(Traffic::min_size(traffic.kind)));
        let build = |flags: u8| -> Template {
            let mut f = vec![0u8; size];
            f[0..6].copy_from_slice(&traffic.dst_mac);
            f[6..12].copy_from_slice(&traffic.src_mac);
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut f[ETH..ETH + IP];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((size - ETH) as u16).to_be_bytes());
            ip[6] = 0x40; // DF
            ip[8] = 64;
            let protocol = if traffic.kind == Kind::Udp {
                proto::UDP
            } else {
                proto::TCP
            };
            ip[9] = protocol;
            // Both addresses are stamped per packet (the sums below take them as zero).
            let ip_sum = accumulate(0, &f[ETH..L4]);
            let l4 = L4;
            let l4_len = size - l4;
            if traffic.kind == Kind::Udp {
                f[l4 + 2..l4 + 4].copy_from_slice(&traffic.vport.to_be_bytes());
                f[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            } else {
                f[l4 + 2..l4 + 4].copy_from_slice(&traffic.vport.to_be_bytes());
                f[l4 + 12] = 0x50;
                f[l4 + 13] = flags;
                f[l4 + 14..l4 + 16].copy_from_slice(&65535u16.to_be_bytes());
            }
            for (i, b) in f[l4
                + if traffic.kind == Kind::Udp {
                    UDP + 8
                } else {
                    TCP
                }..]
                .iter_mut()
                .enumerate()
            {
                *b = i as u8;
            }
            // Pseudo header (addresses zero) + the L4 header and payload.
            let pseudo = pseudo_v4([0; 4], [0; 4], protocol, l4_len as u16);
            let l4_sum = accumulate(pseudo, &f[l4..]);
            Template {
                bytes: f,
                ip_sum,
                l4_sum,
            }
        };
        let (first, data) = match traffic.kind {
            Kind::Tcp => (build(TCP_SYN), build(TCP_ACK)),
            Kind::Syn => (build(TCP_SYN), build(TCP_SYN)),
            Kind::Udp => (build(0), build(0)),
        };
        Generator {
            traffic,
            source,
            first,
            data,
            built: 0,
        }
    }

    /// Packets of the first round (each established flow's opening one; none for a SYN
    /// flood, where every packet opens a flow).
    pub fn first_round(&self) -> u64 {
        match (&self.source, self.traffic.kind) {
            (_, Kind::Syn) => 0,
            (Source::Listed(flows), _) => flows.len() as u64,
            _ => u64::from(self.traffic.flows),
        }
    }

    /// Whether there is nothing to send (a lane whose queues no flow lands on).
    pub fn is_idle(&self) -> bool {
        matches!(&self.source, Source::Listed(flows) if flows.is_empty())
    }

    pub fn frame_len(&self) -> usize {
        self.data.bytes.len()
    }

    /// The flow and sequence number of packet `n` of the cycle.
    #[inline]
    fn position(&mut self, n: u64) -> (u64, u32) {
        let cycle = |flows: u64| {
            let flows = flows.max(1);
            let round = n / flows;
            (visit_order(n % flows, round, flows), round as u32)
        };
        match (&mut self.source, self.traffic.kind) {
            (Source::Fresh(clients), _) => (clients.next_flow(), 0),
            (_, Kind::Syn) => (n % MAX_FLOWS, 0),
            (Source::Listed(flows), _) => {
                let (i, round) = cycle(flows.len() as u64);
                (
                    u64::from(flows.get(i as usize).copied().unwrap_or(0)),
                    round,
                )
            }
            (Source::All, _) => cycle(u64::from(self.traffic.flows)),
        }
    }

    /// The VIP of flow `flow`.
    #[inline]
    pub fn vip_of(&self, flow: u64) -> u32 {
        let vips = u64::from(self.traffic.vips.max(1));
        u32::from_be_bytes(self.traffic.vip).wrapping_add((flow % vips) as u32)
    }

    /// Writes the next packet into `out` (at least `frame_len` bytes), stamped with `tsc`;
    /// returns its flow.
    #[inline]
    pub fn next(&mut self, out: &mut [u8], tsc: u64) -> u64 {
        let n = self.built;
        self.built += 1;
        let (flow, seq) = self.position(n);
        let t = if seq == 0 { &self.first } else { &self.data };
        let out = &mut out[..t.bytes.len()];
        out.copy_from_slice(&t.bytes);
        let (ip, port) = flow_addr(flow);
        let vip = self.vip_of(flow);
        let ts = tsc as u32;
        let l4 = L4;
        out[ETH + 12..ETH + 16].copy_from_slice(&ip.to_be_bytes());
        out[ETH + 16..ETH + 20].copy_from_slice(&vip.to_be_bytes());
        let addrs = words32(ip) + words32(vip);
        let ip_csum = finish(t.ip_sum + addrs);
        out[ETH + 10..ETH + 12].copy_from_slice(&ip_csum.to_be_bytes());
        out[l4..l4 + 2].copy_from_slice(&port.to_be_bytes());
        let stamped = t.l4_sum + addrs + u32::from(port) + words32(seq) + words32(ts);
        let csum = finish(stamped);
        if self.traffic.kind == Kind::Udp {
            out[l4 + UDP..l4 + UDP + 4].copy_from_slice(&seq.to_be_bytes());
            out[l4 + UDP + 4..l4 + UDP + 8].copy_from_slice(&ts.to_be_bytes());
            let csum = if csum == 0 { 0xffff } else { csum };
            out[l4 + 6..l4 + 8].copy_from_slice(&csum.to_be_bytes());
        } else {
            out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            out[l4 + 8..l4 + 12].copy_from_slice(&ts.to_be_bytes());
            out[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());
        }
        flow
    }
}

/// What the receiver reads back from a forwarded frame (NAT, DR, IPIP or unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub flow: u64,
    pub seq: u32,
    pub ts: u32,
}

impl Stamp {
    /// Parses Ethernet / IPv4 [/ IPv4 in IPv4] / TCP or UDP; None for anything else.
    #[inline]
    pub fn read(frame: &[u8]) -> Option<Stamp> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != 0x0800 {
            return None;
        }
        let outer = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let ip = if outer.protocol() == proto::IPIP {
            Ipv4Packet::new_checked(outer.payload()).ok()?
        } else {
            outer
        };
        let (sport, dport, seq, ts) = match ip.protocol() {
            proto::TCP => {
                let t = TcpPacket::new_checked(ip.payload()).ok()?;
                (t.src_port(), t.dst_port(), t.seq(), t.ack_number())
            }
            proto::UDP => {
                let u = UdpPacket::new_checked(ip.payload()).ok()?;
                let p = u.payload().get(..8)?;
                let word = |at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
                (u.src_port(), u.dst_port(), word(0), word(4))
            }
            _ => return None,
        };
        // The client is the source, or the destination of a frame 5tswap turned round.
        let flow = flow_of(u32::from_be_bytes(ip.src()), sport)
            .or_else(|| flow_of(u32::from_be_bytes(ip.dst()), dport))?;
        Some(Stamp { flow, seq, ts })
    }
}

/// Latency histogram: exact below 16 ns, then 8 buckets per power of two (12.5% steps).
#[derive(Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; 16 + 60 * 8],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Histogram {
    #[inline]
    fn bucket(v: u64) -> usize {
        if v < 16 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize;
        16 + (e - 4) * 8 + ((v >> (e - 3)) & 7) as usize
    }

    fn lower_bound(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let e = (i - 16) / 8 + 4;
        let m = ((i - 16) % 8) as u64 + 8;
        m << (e - 3)
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        let i = Self::bucket(v).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// The value below which `q` (0..=1) of the samples lie (bucket lower bound).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let target = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Self::lower_bound(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn checksum_ok(frame: &[u8]) -> bool {
        let ip = &frame[ETH..L4];
        if finish(accumulate(0, ip)) != 0 {
            return false;
        }
        let l4 = &frame[L4..];
        let src = ip[12..16].try_into().unwrap();
        let dst = ip[16..20].try_into().unwrap();
        finish(accumulate(pseudo_v4(src, dst, ip[9], l4.len() as u16), l4)) == 0
    }

    fn traffic(kind: Kind, flows: u32, size: u16) -> Traffic {
        Traffic {
            kind,
            flows,
            size,
            vip: [192, 0, 2, 10],
            vips: 2,
            vport: 80,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
        }
    }

    #[test]
    fn stamped_frames_have_valid_checksums_and_read_back() {
        for (kind, size) in [
            (Kind::Tcp, 60),
            (Kind::Tcp, 512),
            (Kind::Udp, 60),
            (Kind::Udp, 77),
            (Kind::Syn, 60),
        ] {
            let mut g = Generator::new(traffic(kind, 3, size));
            let mut buf = vec![0u8; 2048];
            for n in 0..200_000u64 {
                let tsc = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                g.next(&mut buf, tsc);
                let f = &buf[..g.frame_len()];
                assert!(checksum_ok(f), "{kind:?} {size} packet {n}");
                let s = Stamp::read(f).unwrap();
                let flow = if kind == Kind::Syn {
                    n
                } else {
                    visit_order(n % 3, n / 3, 3)
                };
                let seq = if kind == Kind::Syn { 0 } else { (n / 3) as u32 };
                assert_eq!(
                    s,
                    Stamp {
                        flow,
                        seq,
                        ts: tsc as u32
                    }
                );
                let vip = [192, 0, 2, 10 + (flow % 2) as u8];
                assert_eq!(f[ETH + 16..ETH + 20], vip, "flows alternate over two VIPs");
                let flags = f[ETH + IP + 13];
                match kind {
                    // Every flow's first packet (its SYN) comes in the first round.
                    Kind::Tcp => assert_eq!(flags, if n < 3 { TCP_SYN } else { TCP_ACK }),
                    Kind::Syn => assert_eq!(flags, TCP_SYN),
                    Kind::Udp => {}
                }
            }
        }
    }

    #[test]
    fn a_listed_source_cycles_its_flows_only() {
        let listed = vec![3u32, 8, 11, 40];
        let mut g = Generator::of(traffic(Kind::Tcp, 50, 60), Source::Listed(listed.clone()));
        assert_eq!(g.first_round(), 4);
        let mut buf = vec![0u8; 128];
        for round in 0..5u32 {
            let mut seen: Vec<u64> = (0..4).map(|_| g.next(&mut buf, 0)).collect();
            let stamp = Stamp::read(&buf[..60]).unwrap();
            assert_eq!(stamp.seq, round);
            let flags = buf[ETH + IP + 13];
            assert_eq!(flags, if round == 0 { TCP_SYN } else { TCP_ACK });
            seen.sort_unstable();
            assert_eq!(seen, [3, 8, 11, 40], "round {round}");
        }
        let idle = Generator::of(traffic(Kind::Tcp, 50, 60), Source::Listed(Vec::new()));
        assert!(idle.is_idle());
    }

    #[test]
    fn every_round_visits_each_flow_once() {
        for flows in [1u64, 2, 3, 5, 64, 1000, 10_000, 65_537] {
            for round in [0u64, 1, 2, 77, 1 << 40] {
                let mut seen = vec![false; flows as usize];
                for i in 0..flows {
                    let f = visit_order(i, round, flows);
                    assert!(f < flows, "{flows} flows, round {round}: {f}");
                    assert!(!seen[f as usize], "{flows} flows, round {round}: {f} twice");
                    seen[f as usize] = true;
                }
            }
        }
    }

    /// Rounds after the first read the connections (in the first round's order in a
    /// worker's slab) far apart, not in memory order.
    #[test]
    fn later_rounds_do_not_follow_the_first_rounds_order() {
        let flows = 100_000u64;
        let mut opened_at = vec![0u64; flows as usize];
        for i in 0..flows {
            opened_at[visit_order(i, 0, flows) as usize] = i;
        }
        for round in [1u64, 2, 3, 1000] {
            let slots: Vec<u64> = (0..flows)
                .map(|i| opened_at[visit_order(i, round, flows) as usize])
                .collect();
            let near = slots
                .windows(2)
                .filter(|w| w[0].abs_diff(w[1]) < 64)
                .count();
            assert!(
                near < flows as usize / 100,
                "round {round}: {near} of {flows} steps within 64 entries"
            );
        }
    }

    #[test]
    fn flows_map_to_distinct_clients_and_back() {
        for f in [0, 1, 59_999, 60_000, 1_000_000, MAX_FLOWS - 1] {
            let (ip, port) = flow_addr(f);
            assert_eq!(flow_of(ip, port), Some(f));
            assert!(Ipv4Addr::from(ip).octets()[0] == 100);
        }
        assert_eq!(flow_of(CLIENT_BASE, 80), None);
        assert_eq!(flow_of(0x0a00_0001, 2000), None);
    }

    #[test]
    fn ipip_frames_are_read_through_the_tunnel() {
        let mut g = Generator::new(traffic(Kind::Tcp, 10, 60));
        let mut buf = vec![0u8; 128];
        g.built = 25;
        g.next(&mut buf, 77);
        let inner = buf[..60].to_vec();
        let mut tun = inner[..ETH].to_vec();
        tun.extend_from_slice(&[
            0x45, 0, 0, 66, 0, 0, 0x40, 0, 63, 4, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1,
        ]);
        tun.extend_from_slice(&inner[ETH..]);
        assert_eq!(
            Stamp::read(&tun),
            Some(Stamp {
                flow: visit_order(5, 2, 10),
                seq: 2,
                ts: 77
            })
        );
    }

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 5_000u64), (0.99, 9_900), (1.0, 10_000)] {
            let got = h.quantile(q);
            assert!(
                got <= exact && got as f64 >= exact as f64 * 0.875,
                "{q}: {got}"
            );
        }
        assert_eq!((h.min, h.max, h.mean()), (1, 10_000, 5_000));
        for i in 0..h.buckets.len() {
            assert_eq!(Histogram::bucket(Histogram::lower_bound(i)), i);
        }
    }
}
