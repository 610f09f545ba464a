//! Property tests of the wire views against an independent implementation (etherparse):
//! every rewrite keeps valid checksums, and no byte string makes a view panic.

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use proptest::prelude::*;
use rvs_wire::{
    ethernet, ArpPacket, EtherType, EthernetFrame, IcmpPacket, Icmpv6Packet, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket,
};

/// Recomputes every checksum of a frame with etherparse and compares with what is stored.
fn checksums_valid(frame: &[u8]) -> Result<(), String> {
    let h = PacketHeaders::from_ethernet_slice(frame).map_err(|e| e.to_string())?;
    let payload = h.payload.slice();
    match (h.net, h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Tcp(tcp))) => {
            check(ip.header_checksum, ip.calc_header_checksum(), "ipv4")?;
            check(
                tcp.checksum,
                tcp.calc_checksum_ipv4(&ip, payload).unwrap(),
                "tcp4",
            )
        }
        (Some(NetHeaders::Ipv4(ip, _)), Some(TransportHeader::Udp(udp))) => {
            check(ip.header_checksum, ip.calc_header_checksum(), "ipv4")?;
            check(
                udp.checksum,
                udp.calc_checksum_ipv4(&ip, payload).unwrap(),
                "udp4",
            )
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Tcp(tcp))) => check(
            tcp.checksum,
            tcp.calc_checksum_ipv6(&ip, payload).unwrap(),
            "tcp6",
        ),
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Udp(udp))) => check(
            udp.checksum,
            udp.calc_checksum_ipv6(&ip, payload).unwrap(),
            "udp6",
        ),
        other => Err(format!("unexpected headers {other:?}")),
    }
}

fn check(stored: u16, computed: u16, what: &str) -> Result<(), String> {
    if stored == computed {
        Ok(())
    } else {
        Err(format!(
            "{what}: stored {stored:#06x}, computed {computed:#06x}"
        ))
    }
}

/// Rewrites destination address and port and decrements the TTL/hop limit with rvs's
/// views (as NAT does), in place.
fn nat_rewrite(frame: &mut [u8], new_dst4: [u8; 4], new_dst6: [u8; 16], new_port: u16) {
    let eth = EthernetFrame::new_checked(&mut *frame).unwrap();
    let (ethertype, at) = (eth.ethertype(), eth.header_len());
    let l3 = &mut frame[at..];
    if ethertype == EtherType::IPV4 {
        let mut ip = Ipv4Packet::new_checked(&mut *l3).unwrap();
        let (old, proto, hl) = (ip.dst(), ip.protocol(), ip.header_len());
        ip.set_dst(new_dst4);
        ip.set_ttl(ip.ttl() - 1);
        let l4 = &mut l3[hl..];
        rewrite_l4(l4, proto, &old, &new_dst4, new_port);
    } else {
        let mut ip = Ipv6Packet::new_checked(&mut *l3).unwrap();
        let loc = ip.l4().unwrap();
        let old = ip.dst();
        ip.set_dst(new_dst6);
        ip.set_hop_limit(ip.hop_limit() - 1);
        rewrite_l4(
            &mut l3[loc.offset..],
            loc.protocol,
            &old,
            &new_dst6,
            new_port,
        );
    }
}

fn rewrite_l4(l4: &mut [u8], proto: u8, old: &[u8], new: &[u8], port: u16) {
    if proto == 6 {
        let mut t = TcpPacket::new_checked(l4).unwrap();
        t.adjust_checksum(old, new);
        t.set_dst_port(port);
    } else {
        let mut u = UdpPacket::new_checked(l4).unwrap();
        u.adjust_checksum(old, new);
        u.set_dst_port(port);
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    v6: bool,
    tcp: bool,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut out = Vec::new();
    match (v6, tcp) {
        (false, true) => eth
            .ipv4(src4, dst4, 64)
            .tcp(sport, dport, 1, 1000)
            .write(&mut out, payload),
        (false, false) => eth
            .ipv4(src4, dst4, 64)
            .udp(sport, dport)
            .write(&mut out, payload),
        (true, true) => eth
            .ipv6(src6, dst6, 64)
            .tcp(sport, dport, 1, 1000)
            .write(&mut out, payload),
        (true, false) => eth
            .ipv6(src6, dst6, 64)
            .udp(sport, dport)
            .write(&mut out, payload),
    }
    .unwrap();
    out
}

/// Calls every accessor of every view that accepts the bytes.
fn poke_all_views(b: &[u8]) {
    if let Ok(e) = EthernetFrame::new_checked(b) {
        let _ = (e.dst(), e.src(), e.ethertype(), e.vlan(), e.payload().len());
    }
    if let Ok(a) = ArpPacket::new_checked(b) {
        let _ = (
            a.op(),
            a.sender_ip(),
            a.sender_mac(),
            a.target_ip(),
            a.target_mac(),
        );
    }
    if let Ok(ip) = Ipv4Packet::new_checked(b) {
        let _ = (
            ip.header_len(),
            ip.total_len(),
            ip.ttl(),
            ip.src(),
            ip.dst(),
            ip.options().len(),
        );
        let _ = (
            ip.payload().len(),
            ip.verify_checksum(),
            ip.pseudo_header(),
            ip.is_fragment(),
        );
    }
    if let Ok(ip) = Ipv6Packet::new_checked(b) {
        let _ = (
            ip.l4(),
            ip.payload().len(),
            ip.flow_label(),
            ip.src(),
            ip.dst(),
        );
    }
    if let Ok(t) = TcpPacket::new_checked(b) {
        let _ = (
            t.src_port(),
            t.dst_port(),
            t.flags(),
            t.seq(),
            t.verify_checksum(0),
        );
    }
    if let Ok(u) = UdpPacket::new_checked(b) {
        let _ = (u.src_port(), u.payload().len(), u.verify_checksum(0));
    }
    if let Ok(i) = IcmpPacket::new_checked(b) {
        let _ = (
            i.msg_type(),
            i.is_error(),
            i.payload().len(),
            i.verify_checksum(),
        );
    }
    if let Ok(i) = Icmpv6Packet::new_checked(b) {
        let _ = (
            i.nd_target(),
            i.nd_lladdr(1),
            i.nd_lladdr(2),
            i.mtu(),
            i.verify_checksum(0),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn nat_rewrites_keep_every_checksum_valid(
        v6 in any::<bool>(), tcp in any::<bool>(),
        src4 in any::<[u8; 4]>(), dst4 in any::<[u8; 4]>(), new4 in any::<[u8; 4]>(),
        src6 in any::<[u8; 16]>(), dst6 in any::<[u8; 16]>(), new6 in any::<[u8; 16]>(),
        sport in any::<u16>(), dport in any::<u16>(), new_port in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut frame = build(v6, tcp, src4, dst4, src6, dst6, sport, dport, &payload);
        prop_assert!(checksums_valid(&frame).is_ok());
        nat_rewrite(&mut frame, new4, new6, new_port);
        if let Err(e) = checksums_valid(&frame) {
            return Err(TestCaseError::fail(e));
        }
        let h = PacketHeaders::from_ethernet_slice(&frame).unwrap();
        match h.transport.unwrap() {
            TransportHeader::Tcp(t) => prop_assert_eq!(t.destination_port, new_port),
            TransportHeader::Udp(u) => prop_assert_eq!(u.destination_port, new_port),
            _ => unreachable!(),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        poke_all_views(&bytes);
        if let Ok(e) = EthernetFrame::new_checked(&bytes[..]) {
            poke_all_views(e.payload());
        }
    }

    #[test]
    fn every_truncation_of_a_valid_packet_is_safe(
        v6 in any::<bool>(), tcp in any::<bool>(), cut in 0usize..200,
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let frame = build(v6, tcp, [10, 0, 0, 1], [10, 0, 0, 2], [1; 16], [2; 16], 1000, 80, &payload);
        let cut = cut.min(frame.len());
        let part = &frame[..cut];
        poke_all_views(part);
        if let Ok(e) = EthernetFrame::new_checked(part) {
            let l3 = e.payload();
            poke_all_views(l3);
            let ip_ok = if v6 { Ipv6Packet::new_checked(l3).is_ok() } else { Ipv4Packet::new_checked(l3).is_ok() };
            // A cut inside the IP datagram is always refused (its length field says more).
            prop_assert_eq!(ip_ok, cut == frame.len());
        }
    }
}

#[test]
fn ethernet_emit_matches_etherparse() {
    let mut f = vec![0u8; 14];
    ethernet::emit_header(
        &mut f,
        [1, 2, 3, 4, 5, 6],
        [7, 8, 9, 10, 11, 12],
        EtherType::IPV6,
    );
    let (h, _) = etherparse::Ethernet2Header::from_slice(&f).unwrap();
    assert_eq!(h.destination, [1, 2, 3, 4, 5, 6]);
    assert_eq!(h.source, [7, 8, 9, 10, 11, 12]);
    assert_eq!(h.ether_type, etherparse::EtherType::IPV6);
}

proptest! {
    /// Frames the Reprs emit (emit::opening_frame) read back through both the views (the
    /// same fields) and etherparse (valid checksums): parse and emit agree both ways.
    #[test]
    fn reprs_round_trip_and_agree_with_etherparse(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
        src6 in any::<[u8; 16]>(), dst6 in any::<[u8; 16]>(),
        sport in any::<u16>(), dport in any::<u16>(), tcp in any::<bool>(), v6 in any::<bool>(),
    ) {
        use rvs_wire::emit::opening_frame;
        use rvs_wire::tcp::TcpRepr;
        use rvs_wire::udp::UdpRepr;
        let (s, d): (std::net::IpAddr, std::net::IpAddr) = if v6 {
            (src6.into(), dst6.into())
        } else {
            (src.into(), dst.into())
        };
        let l4 = if tcp { rvs_wire::proto::TCP } else { rvs_wire::proto::UDP };
        let f = opening_frame(([2; 6], [4; 6]), s, d, l4, (sport, dport)).unwrap();
        prop_assert!(checksums_valid(&f).is_ok(), "{:?}", checksums_valid(&f));
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        prop_assert_eq!(rvs_wire::EthernetRepr::parse(&eth).dst, [4; 6]);
        let payload = if v6 {
            let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
            prop_assert_eq!(rvs_wire::Ipv6Repr::parse(&ip).src, src6);
            ip.payload().to_vec()
        } else {
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            prop_assert_eq!(rvs_wire::Ipv4Repr::parse(&ip).dst, dst);
            ip.payload().to_vec()
        };
        if tcp {
            let t = TcpRepr::parse(&TcpPacket::new_checked(&payload[..]).unwrap());
            prop_assert_eq!((t.src_port, t.dst_port, t.flags), (sport, dport, rvs_wire::tcp::SYN));
        } else {
            let u = UdpRepr::parse(&UdpPacket::new_checked(&payload[..]).unwrap());
            prop_assert_eq!((u.src_port, u.dst_port), (sport, dport));
        }
    }
}

proptest! {
    /// An IPv4 header emitted from any fields reads back as those fields, with a checksum
    /// that verifies, and etherparse reads the same header.
    #[test]
    fn ipv4_headers_emit_every_field_with_a_valid_checksum(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), protocol in any::<u8>(),
        payload_len in 0u16..=(u16::MAX - 20), ttl in any::<u8>(), ident in any::<u16>(),
        dont_fragment in any::<bool>(), dscp_ecn in any::<u8>(),
    ) {
        let repr = rvs_wire::Ipv4Repr {
            src, dst, protocol, payload_len, ttl, ident, dont_fragment, dscp_ecn,
        };
        let mut b = vec![0xa5; 20 + usize::from(payload_len)];
        repr.emit(&mut b);
        let ip = Ipv4Packet::new_checked(&b[..]).unwrap();
        prop_assert!(ip.verify_checksum());
        prop_assert_eq!(rvs_wire::Ipv4Repr::parse(&ip), repr);
        let (h, _) = etherparse::Ipv4Header::from_slice(&b).unwrap();
        prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
        prop_assert_eq!(
            (h.source, h.destination, h.time_to_live, h.identification, h.total_len),
            (src, dst, ttl, ident, payload_len + 20)
        );
        prop_assert_eq!((h.dont_fragment, h.more_fragments, h.protocol.0), (dont_fragment, false, protocol));
    }
}
