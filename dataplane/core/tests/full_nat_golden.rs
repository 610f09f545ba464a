//! Golden packets for full NAT (a local address and port in place of the client's), the
//! seed's level-2 SNAT to the VIP, PROXY protocol v2 with the sequence numbers it shifts,
//! and SNAT of routed traffic. Frames are built with etherparse; the local port rvs picks is
//! read from its output and checked against the range.

#![allow(clippy::too_many_arguments)]

use etherparse::{PacketBuilder, TcpOptionElement};
use rvs_core::engine::{
    flow_owner, owner_of, DropReason, EngineConfig, FragOwners, FullNat, SnatRule, Verdict,
};
use rvs_testkit::*;
use std::net::IpAddr;

const VIP: [u8; 4] = [192, 168, 1, 100];
const RS: [u8; 4] = [10, 0, 0, 2];
const REMOTE: [u8; 4] = [203, 0, 113, 9];

/// The fixture appliance with full NAT on service 0 (VIP:80 -> 10.0.0.2:8080) and a table
/// made for it.
fn lab(full_nat: Option<FullNat>, snat: Vec<SnatRule>) -> Lab {
    let mut snap = snapshot_with(|services| services[0].full_nat = full_nat);
    snap.set_snat(snat);
    snap.ip_forward = true;
    Lab::with(
        snap,
        EngineConfig {
            conn_capacity: 1024,
            full_nat: true,
            ..EngineConfig::default()
        },
    )
}

fn full_nat(locals: &[[u8; 4]], proxy_protocol: bool) -> Option<FullNat> {
    Some(FullNat::new(
        locals.iter().map(|a| IpAddr::from(*a)),
        proxy_protocol,
    ))
}

/// The TCP source port of an IPv4 frame without options in its IP header.
fn sport_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

#[test]
fn full_nat_replaces_the_client_by_the_ports_own_address_and_back() {
    let mut lab = lab(full_nat(&[], false), Vec::new());
    let client = (CLIENT, 40000);
    let syn = segment(
        (GW_MAC, PORT0_MAC),
        client,
        (VIP, 80),
        64,
        (1000, None),
        true,
        &[],
        b"",
    );
    let (v, out) = lab.run(0, &syn);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let lport = sport_of(&out);
    assert!(lport >= 1024, "local port {lport}");
    let local = ([10, 0, 0, 1], lport);
    let want = segment(
        (PORT1_MAC, RS2_MAC),
        local,
        (RS, 8080),
        63,
        (1000, None),
        true,
        &[],
        b"",
    );
    assert_eq!(out, want, "from the port's own address towards the server");
    // The server answers its local peer; the client gets it from the VIP.
    let reply = segment(
        (RS2_MAC, PORT1_MAC),
        (RS, 8080),
        local,
        64,
        (5000, Some(1001)),
        true,
        &[],
        b"",
    );
    let want = segment(
        (PORT0_MAC, GW_MAC),
        (VIP, 80),
        client,
        63,
        (5000, Some(1001)),
        true,
        &[],
        b"",
    );
    assert_eq!(lab.run(1, &reply), (Verdict::Forward { port: 0 }, want));
    // A second client gets another local port.
    let other = segment(
        (GW_MAC, PORT0_MAC),
        (CLIENT, 40001),
        (VIP, 80),
        64,
        (1, None),
        true,
        &[],
        b"",
    );
    let (_, out2) = lab.run(0, &other);
    assert_ne!(sport_of(&out2), lport);
}

/// The seed's level 2: `SNAT --to-source VIP` after IPVS's NAT is full NAT whose local
/// address is the VIP; the reply to VIP:port is the owner's of that port, not the client's
/// path, and multi-worker steering agrees with the port the worker gave out.
#[test]
fn the_seeds_snat_to_the_vip_is_full_nat_from_the_vip() {
    let client = (CLIENT, 40000);
    let syn = segment(
        (GW_MAC, PORT0_MAC),
        client,
        (VIP, 80),
        64,
        (1000, None),
        true,
        &[],
        b"",
    );
    for workers in [1usize, 2, 4] {
        let mut lab = lab(full_nat(&[VIP], false), Vec::new());
        let me = owner_of(IpAddr::from(CLIENT), 40000, workers);
        lab.engine.set_owner(me, workers);
        let (v, out) = lab.run(0, &syn);
        assert_eq!(v, Verdict::Forward { port: 1 });
        let local = (VIP, sport_of(&out));
        let want = segment(
            (PORT1_MAC, RS2_MAC),
            local,
            (RS, 8080),
            63,
            (1000, None),
            true,
            &[],
            b"",
        );
        assert_eq!(out, want);
        let reply = segment(
            (RS2_MAC, PORT1_MAC),
            (RS, 8080),
            local,
            64,
            (5000, Some(1001)),
            true,
            &[],
            b"",
        );
        let frags = FragOwners::default();
        if workers > 1 {
            assert_eq!(
                flow_owner(&lab.snap, &reply, workers, &frags),
                Some(me),
                "{workers} workers"
            );
        }
        let want = segment(
            (PORT0_MAC, GW_MAC),
            (VIP, 80),
            client,
            63,
            (5000, Some(1001)),
            true,
            &[],
            b"",
        );
        assert_eq!(lab.run(1, &reply), (Verdict::Forward { port: 0 }, want));
    }
}

#[test]
fn proxy_protocol_v2_goes_before_the_first_data_and_shifts_sequence_numbers() {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    header.extend_from_slice(&CLIENT);
    header.extend_from_slice(&VIP);
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&80u16.to_be_bytes());
    proxy_protocol_case(full_nat(&[], true), &header);
}

/// Version 1, the text form (Postfix's postscreen, Dovecot, stunnel and older backends
/// read only it): its length follows the addresses, and the shifts with it.
#[test]
fn proxy_protocol_v1_goes_before_the_first_data_and_shifts_sequence_numbers() {
    let header = format!(
        "PROXY TCP4 {} {} 40000 80\r\n",
        std::net::Ipv4Addr::from(CLIENT),
        std::net::Ipv4Addr::from(VIP)
    );
    let fnat = full_nat(&[], true).map(|f| f.with_proxy_v1(true));
    proxy_protocol_case(fnat, header.as_bytes());
}

/// A connection through `fnat`, whose PROXY header is `header`: the header before the
/// first data (and its retransmission), the client's later sequence numbers shifted by its
/// length, the server's MSS, acknowledgements and SACK edges back.
fn proxy_protocol_case(fnat: Option<FullNat>, header: &[u8]) {
    let delta = header.len() as u32;
    let mut lab = lab(fnat, Vec::new());
    let client = (CLIENT, 40000);
    let c = (GW_MAC, PORT0_MAC);
    let s = (RS2_MAC, PORT1_MAC);
    let (to_server, to_client) = ((PORT1_MAC, RS2_MAC), (PORT0_MAC, GW_MAC));
    let (_, out) = lab.run(
        0,
        &segment(c, client, (VIP, 80), 64, (1000, None), true, &[], b""),
    );
    let local = ([10, 0, 0, 1], sport_of(&out));
    // The server's MSS is lowered by the header's length.
    let mss = |m| [TcpOptionElement::MaximumSegmentSize(m)];
    let synack = segment(
        s,
        (RS, 8080),
        local,
        64,
        (5000, Some(1001)),
        true,
        &mss(1460),
        b"",
    );
    let want = segment(
        to_client,
        (VIP, 80),
        client,
        63,
        (5000, Some(1001)),
        true,
        &mss(1460 - delta as u16),
        b"",
    );
    assert_eq!(lab.run(1, &synack), (Verdict::Forward { port: 0 }, want));
    // The handshake's ACK passes as it is; the first data gets the header before it.
    let ack = segment(
        c,
        client,
        (VIP, 80),
        64,
        (1001, Some(5001)),
        false,
        &[],
        b"",
    );
    let want = segment(
        to_server,
        local,
        (RS, 8080),
        63,
        (1001, Some(5001)),
        false,
        &[],
        b"",
    );
    assert_eq!(lab.run(0, &ack).1, want);
    let first = segment(
        c,
        client,
        (VIP, 80),
        64,
        (1001, Some(5001)),
        false,
        &[],
        b"GET /",
    );
    let mut with_header = header.to_vec();
    with_header.extend_from_slice(b"GET /");
    let want = segment(
        to_server,
        local,
        (RS, 8080),
        63,
        (1001, Some(5001)),
        false,
        &[],
        &with_header,
    );
    assert_eq!(
        lab.run(0, &first),
        (Verdict::Forward { port: 1 }, want.clone())
    );
    // A retransmission of the first data carries the header again.
    assert_eq!(lab.run(0, &first).1, want);
    // Later data is shifted by the header's length; the server's acknowledgements (and
    // SACK edges) back.
    let next = segment(
        c,
        client,
        (VIP, 80),
        64,
        (1006, Some(5001)),
        false,
        &[],
        b"x",
    );
    let want = segment(
        to_server,
        local,
        (RS, 8080),
        63,
        (1006 + delta, Some(5001)),
        false,
        &[],
        b"x",
    );
    assert_eq!(lab.run(0, &next).1, want);
    let sack = [
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
        TcpOptionElement::SelectiveAcknowledgement(
            (1007 + delta, 1012 + delta),
            [None, None, None],
        ),
    ];
    let ack_back = segment(
        s,
        (RS, 8080),
        local,
        64,
        (5001, Some(1007 + delta)),
        false,
        &sack,
        b"",
    );
    let sack_client = [
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
        TcpOptionElement::SelectiveAcknowledgement((1007, 1012), [None, None, None]),
    ];
    let want = segment(
        to_client,
        (VIP, 80),
        client,
        63,
        (5001, Some(1007)),
        false,
        &sack_client,
        b"",
    );
    assert_eq!(lab.run(1, &ack_back), (Verdict::Forward { port: 0 }, want));
}

fn udp(
    macs: ([u8; 6], [u8; 6]),
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    ttl: u8,
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src, dst, ttl)
        .udp(sport, dport)
        .write(&mut out, b"query")
        .unwrap();
    out
}

fn masquerade(ports: (u16, u16)) -> SnatRule {
    SnatRule {
        proto: None,
        source: (IpAddr::from([10, 0, 0, 0]), 24),
        destination: (IpAddr::from([0, 0, 0, 0]), 0),
        out_port: Some(0),
        to_source: None,
        ports,
    }
}

#[test]
fn snat_masquerades_routed_traffic_and_translates_the_replies_back() {
    let mut lab = lab(None, vec![masquerade((1024, 65535))]);
    let own = [192, 168, 1, 1];
    let out = udp((RS2_MAC, PORT1_MAC), (RS, 5000), (REMOTE, 53), 64);
    // The source port is kept when free, as Linux's SNAT.
    let want = udp((PORT0_MAC, GW_MAC), (own, 5000), (REMOTE, 53), 63);
    assert_eq!(lab.run(1, &out), (Verdict::Forward { port: 0 }, want));
    let back = udp((GW_MAC, PORT0_MAC), (REMOTE, 53), (own, 5000), 50);
    let want = udp((PORT1_MAC, RS2_MAC), (REMOTE, 53), (RS, 5000), 49);
    assert_eq!(lab.run(0, &back), (Verdict::Forward { port: 1 }, want));
    // Another server with the same port towards the same peer gets another one.
    let out3 = udp(
        (RS3_MAC, PORT1_MAC),
        ([10, 0, 0, 3], 5000),
        (REMOTE, 53),
        64,
    );
    let (v, o) = lab.run(1, &out3);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_ne!(sport_of(&o), 5000);
    assert_eq!(lab.engine.counters().snat_conns, 2);
    // Traffic no rule matches is routed unchanged; traffic to a server is not SNATed.
    let inbound = udp((GW_MAC, PORT0_MAC), (REMOTE, 53), (RS, 7000), 50);
    let want = udp((PORT1_MAC, RS2_MAC), (REMOTE, 53), (RS, 7000), 49);
    assert_eq!(lab.run(0, &inbound), (Verdict::Forward { port: 1 }, want));
}

/// A connection from outside to an inside host (routed, no service) is the outside's: the
/// host's SYN-ACK is routed back unchanged, as Linux's conntrack sees a reply there and
/// SNAT takes only new connections; the host's own SYN out is masqueraded.
#[test]
fn an_inside_hosts_answer_to_a_connection_from_outside_is_not_masqueraded() {
    let mut lab = lab(None, vec![masquerade((1024, 65535))]);
    let seg = |macs: ([u8; 6], [u8; 6]), (src, sport), (dst, dport), ttl, ack| {
        tcp4(macs.0, macs.1, src, dst, ttl, sport, dport, true, ack, b"")
    };
    let syn = seg((GW_MAC, PORT0_MAC), (REMOTE, 40000), (RS, 22), 50, false);
    let want = seg((PORT1_MAC, RS2_MAC), (REMOTE, 40000), (RS, 22), 49, false);
    assert_eq!(lab.run(0, &syn), (Verdict::Forward { port: 1 }, want));
    let syn_ack = seg((RS2_MAC, PORT1_MAC), (RS, 22), (REMOTE, 40000), 64, true);
    let want = seg((PORT0_MAC, GW_MAC), (RS, 22), (REMOTE, 40000), 63, true);
    assert_eq!(lab.run(1, &syn_ack), (Verdict::Forward { port: 0 }, want));
    assert_eq!(lab.engine.counters().snat_conns, 0);
    let own_syn = seg((RS2_MAC, PORT1_MAC), (RS, 41000), (REMOTE, 22), 64, false);
    let want = seg(
        (PORT0_MAC, GW_MAC),
        ([192, 168, 1, 1], 41000),
        (REMOTE, 22),
        63,
        false,
    );
    assert_eq!(lab.run(1, &own_syn), (Verdict::Forward { port: 0 }, want));
    assert_eq!(lab.engine.counters().snat_conns, 1);
}

#[test]
fn an_exhausted_snat_pool_is_a_counted_drop() {
    let mut lab = lab(None, vec![masquerade((6000, 6000))]);
    let first = udp((RS2_MAC, PORT1_MAC), (RS, 5000), (REMOTE, 53), 64);
    assert_eq!(lab.run(1, &first).0, Verdict::Forward { port: 0 });
    let second = udp((RS2_MAC, PORT1_MAC), (RS, 5001), (REMOTE, 53), 64);
    assert_eq!(
        lab.run(1, &second).0,
        Verdict::Drop(DropReason::NoLocalPort)
    );
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoLocalPort as usize],
        1
    );
}

/// The seed's rule as written (`iptables -t nat -I POSTROUTING -d 10.2.1.0/24 -j SNAT
/// --to-source VIP`): an SNAT rule sees balanced NAT traffic after its destination is
/// rewritten, so servers on that prefix get it from the VIP (the client's port kept).
#[test]
fn an_snat_rule_on_the_servers_prefix_applies_to_balanced_nat_traffic() {
    let rule = SnatRule {
        proto: None,
        source: (IpAddr::from([0, 0, 0, 0]), 0),
        destination: (IpAddr::from([10, 0, 0, 0]), 24),
        out_port: None,
        to_source: Some(IpAddr::from(VIP)),
        ports: (1024, 65535),
    };
    let mut lab = lab(None, vec![rule]);
    let client = (CLIENT, 40000);
    let syn = segment(
        (GW_MAC, PORT0_MAC),
        client,
        (VIP, 80),
        64,
        (1000, None),
        true,
        &[],
        b"",
    );
    let want = segment(
        (PORT1_MAC, RS2_MAC),
        (VIP, 40000),
        (RS, 8080),
        63,
        (1000, None),
        true,
        &[],
        b"",
    );
    assert_eq!(lab.run(0, &syn), (Verdict::Forward { port: 1 }, want));
    let reply = segment(
        (RS2_MAC, PORT1_MAC),
        (RS, 8080),
        (VIP, 40000),
        64,
        (5000, Some(1001)),
        true,
        &[],
        b"",
    );
    let want = segment(
        (PORT0_MAC, GW_MAC),
        (VIP, 80),
        client,
        63,
        (5000, Some(1001)),
        true,
        &[],
        b"",
    );
    assert_eq!(lab.run(1, &reply), (Verdict::Forward { port: 0 }, want));
    // A DR service is not rewritten (the rule is NAT's, as in the kernel).
    let dr = segment(
        (GW_MAC, PORT0_MAC),
        client,
        ([192, 168, 1, 101], 80),
        64,
        (1, None),
        true,
        &[],
        b"",
    );
    let want = segment(
        (PORT1_MAC, RS3_MAC),
        client,
        ([192, 168, 1, 101], 80),
        64,
        (1, None),
        true,
        &[],
        b"",
    );
    assert_eq!(lab.run(0, &dr), (Verdict::Forward { port: 1 }, want));
}

/// The first 28 bytes of an IPv4 TCP (or UDP) packet: what an ICMP error quotes.
fn quote(src: ([u8; 4], u16), dst: ([u8; 4], u16), udp: bool) -> Vec<u8> {
    let b = PacketBuilder::ipv4(src.0, dst.0, 60);
    let mut v = Vec::new();
    if udp {
        b.udp(src.1, dst.1).write(&mut v, b"data").unwrap();
    } else {
        b.tcp(src.1, dst.1, 1000, 64000)
            .write(&mut v, b"data")
            .unwrap();
    }
    v.truncate(28);
    v
}

fn frag_needed(
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    quoted: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src, dst, ttl)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut v, quoted)
        .unwrap();
    v
}

/// ICMP errors about a full-NAT connection cross it both ways with both ends translated
/// (as IPVS does for NAT): the server's side about what rvs sent from the local end goes to
/// the client about its own packet; the client's side about a reply goes to the server.
#[test]
fn icmp_errors_about_full_nat_connections_are_translated_both_ways() {
    let mut lab = lab(full_nat(&[], false), Vec::new());
    let client = (CLIENT, 40000);
    let syn = segment(
        (GW_MAC, PORT0_MAC),
        client,
        (VIP, 80),
        64,
        (1000, None),
        true,
        &[],
        b"",
    );
    let (_, out) = lab.run(0, &syn);
    let local = ([10, 0, 0, 1], sport_of(&out));
    // From the server's side, about local -> server.
    let input = frag_needed(
        (RS2_MAC, PORT1_MAC),
        RS,
        local.0,
        64,
        &quote(local, (RS, 8080), false),
    );
    let want = frag_needed(
        (PORT0_MAC, GW_MAC),
        VIP,
        CLIENT,
        63,
        &quote(client, (VIP, 80), false),
    );
    assert_eq!(lab.run(1, &input), (Verdict::Forward { port: 0 }, want));
    // From the client's side, about VIP -> client.
    let input = frag_needed(
        (GW_MAC, PORT0_MAC),
        [198, 51, 100, 254],
        VIP,
        64,
        &quote((VIP, 80), client, false),
    );
    let want = frag_needed(
        (PORT1_MAC, RS2_MAC),
        local.0,
        RS,
        63,
        &quote((RS, 8080), local, false),
    );
    assert_eq!(lab.run(0, &input), (Verdict::Forward { port: 1 }, want));
}

/// An ICMP error from beyond about a masqueraded flow reaches the server behind rvs, about
/// the packet it sent; the reporting router stays the sender.
#[test]
fn icmp_errors_about_snat_flows_reach_the_inside_host() {
    let mut lab = lab(None, vec![masquerade((1024, 65535))]);
    let own = [192, 168, 1, 1];
    let out = udp((RS2_MAC, PORT1_MAC), (RS, 5000), (REMOTE, 53), 64);
    assert_eq!(lab.run(1, &out).0, Verdict::Forward { port: 0 });
    let router = [198, 51, 100, 254];
    let input = frag_needed(
        (GW_MAC, PORT0_MAC),
        router,
        own,
        64,
        &quote((own, 5000), (REMOTE, 53), true),
    );
    let want = frag_needed(
        (PORT1_MAC, RS2_MAC),
        router,
        RS,
        63,
        &quote((RS, 5000), (REMOTE, 53), true),
    );
    assert_eq!(lab.run(0, &input), (Verdict::Forward { port: 1 }, want));
}

/// Full-NAT (with PROXY v2 state) and SNAT connections cross the sync protocol in rvs's
/// optional option and continue on the backup exactly as on the master: the same local
/// ends, the same shifted sequence numbers.
#[test]
fn full_nat_and_snat_connections_continue_on_the_backup() {
    continue_on_the_backup(false);
}

/// The same with the PROXY header in version 1: the backup shifts by the text's length.
#[test]
fn full_nat_connections_with_proxy_v1_continue_on_the_backup() {
    continue_on_the_backup(true);
}

/// [`Lab::router`], its full-NAT service's PROXY header in version 1 with `v1`.
fn router(v1: bool) -> Lab {
    let mut lab = Lab::router();
    if v1 {
        let f = lab.snap.services[0].full_nat.take();
        lab.snap.services[0].full_nat = f.map(|f| f.with_proxy_v1(true));
    }
    lab
}

fn continue_on_the_backup(v1: bool) {
    use rvs_core::sync::{decode, encode};

    let delta = if v1 {
        format!(
            "PROXY TCP4 {} {} 40000 80\r\n",
            std::net::Ipv4Addr::from(CLIENT),
            std::net::Ipv4Addr::from(VIP)
        )
        .len() as u32
    } else {
        28
    };
    let mut master = router(v1);
    let ch = master.sync_master();
    let client = (CLIENT, 40000);
    let c = (GW_MAC, PORT0_MAC);
    let syn = segment(c, client, (VIP, 80), 64, (1000, None), true, &[], b"");
    let (_, out) = master.run(0, &syn);
    let local = ([10, 0, 0, 1], sport_of(&out));
    let s = (RS2_MAC, PORT1_MAC);
    let synack = segment(s, (RS, 8080), local, 64, (5000, Some(1001)), true, &[], b"");
    let ack = segment(
        c,
        client,
        (VIP, 80),
        64,
        (1001, Some(5001)),
        false,
        &[],
        b"",
    );
    let first = segment(
        c,
        client,
        (VIP, 80),
        64,
        (1001, Some(5001)),
        false,
        &[],
        b"GET /",
    );
    let snat_out = udp((RS2_MAC, PORT1_MAC), (RS, 5000), (REMOTE, 53), 64);
    for (port, f) in [(1, &synack), (0, &ack), (0, &first), (1, &snat_out)] {
        assert!(matches!(master.run(port, f).0, Verdict::Forward { .. }));
    }
    let later = segment(
        c,
        client,
        (VIP, 80),
        64,
        (1006, Some(5001)),
        false,
        &[],
        b"x",
    );
    let reply = segment(
        s,
        (RS, 8080),
        local,
        64,
        (5001, Some(1007 + delta)),
        false,
        &[],
        b"ok",
    );
    let snat_back = udp(
        (GW_MAC, PORT0_MAC),
        (REMOTE, 53),
        ([192, 168, 1, 1], 5000),
        50,
    );
    let on_master: Vec<_> = [(0, &later), (1, &reply), (0, &snat_back)]
        .iter()
        .map(|(p, f)| master.run(*p, f))
        .collect();
    let mut notes = Vec::new();
    while let Some(n) = ch.outbox.pop() {
        notes.push(n);
    }
    assert!(
        notes.iter().any(|n| n
            .local
            .is_some_and(|l| l.proxy == if v1 { 0x12 } else { 2 })),
        "the header's going out was noted"
    );
    assert!(
        notes.iter().any(|n| n.local.is_some_and(|l| l.snat)),
        "{notes:?}"
    );
    let mut backup = router(v1);
    for m in encode(3, &notes, 1472) {
        for n in decode(&m).unwrap().1 {
            assert!(
                backup
                    .engine
                    .install_synced(&backup.snap, &backup.loads, 1, &n),
                "{n:?}"
            );
        }
    }
    let on_backup: Vec<_> = [(0, &later), (1, &reply), (0, &snat_back)]
        .iter()
        .map(|(p, f)| backup.run(*p, f))
        .collect();
    assert_eq!(on_backup, on_master);
    assert!(on_backup
        .iter()
        .all(|(v, _)| matches!(v, Verdict::Forward { .. })));
}

/// The addresses of a marked prefix are VIPs for the mark's traffic; what the rule does not
/// select there is dropped, not handed to the host (which does not hold those addresses).
#[test]
fn a_marked_prefix_takes_its_traffic_and_drops_the_rest() {
    let mut lab = Lab::router();
    let marked = ([192, 168, 2, 7], 443);
    let from = ([198, 51, 100, 7], 40000);
    let syn = segment(
        (GW_MAC, PORT0_MAC),
        from,
        marked,
        64,
        (1, None),
        true,
        &[],
        b"",
    );
    assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
    let outside_range = segment(
        (GW_MAC, PORT0_MAC),
        from,
        ([192, 168, 2, 7], 2000),
        64,
        (1, None),
        true,
        &[],
        b"",
    );
    assert_eq!(
        lab.run(0, &outside_range).0,
        Verdict::Drop(DropReason::NoService)
    );
    let other_source = segment(
        (GW_MAC, PORT0_MAC),
        ([203, 0, 113, 50], 40000),
        marked,
        64,
        (1, None),
        true,
        &[],
        b"",
    );
    assert_eq!(
        lab.run(0, &other_source).0,
        Verdict::Drop(DropReason::NoService)
    );
}
