//! Golden packets for traffic that is not balanced: members' outgoing port ranges on a VIP
//! (CommuniGate's outgoing TCP, by DR and by NAT) and routing between the ports
//! (`ip_forward`): input frame, expected output frame, verdict; frames built with etherparse.

use etherparse::{icmpv4, Icmpv4Type, PacketBuilder};
use rvs_core::engine::{DropReason, EngineConfig, Floating, ForwardMethod, MemberPorts, Verdict};
use rvs_testkit::*;

const VIP: [u8; 4] = [192, 168, 1, 120];
const REMOTE: [u8; 4] = [203, 0, 113, 9];

fn lab_with_members() -> Lab {
    let mut lab = Lab::new();
    lab.snap.set_member_ports(vec![
        MemberPorts {
            proto: 6,
            vip: ip(VIP),
            first: 33000,
            last: 33999,
            member: ip([10, 0, 0, 3]),
            nat: false,
        },
        MemberPorts {
            proto: 6,
            vip: ip(VIP),
            first: 34000,
            last: 34999,
            member: ip([10, 0, 0, 2]),
            nat: true,
        },
    ]);
    lab
}

fn syn_ack(
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    ports: (u16, u16),
) -> Vec<u8> {
    tcp4(
        macs.0, macs.1, src, dst, ttl, ports.0, ports.1, true, true, b"",
    )
}

#[test]
fn a_reply_to_a_dr_members_range_goes_to_that_member_unchanged() {
    let mut lab = lab_with_members();
    let input = syn_ack((GW_MAC, PORT0_MAC), REMOTE, VIP, 60, (25, 33007));
    let want = syn_ack((PORT1_MAC, RS3_MAC), REMOTE, VIP, 60, (25, 33007));
    assert_eq!(lab.run(0, &input), (Verdict::Forward { port: 1 }, want));
    assert_eq!(lab.engine.counters().member_packets, 1);
    // No connection is made: the range is the member's for every packet.
    assert_eq!(lab.engine.counters().new_conns, 0);
}

#[test]
fn a_nat_member_leaves_from_the_vip_and_its_replies_return_to_it() {
    let mut lab = lab_with_members();
    // The member opens a connection from its own address and a port of its range.
    let out = syn_ack((RS2_MAC, PORT1_MAC), [10, 0, 0, 2], REMOTE, 64, (34007, 25));
    let want_out = syn_ack((PORT0_MAC, GW_MAC), VIP, REMOTE, 63, (34007, 25));
    assert_eq!(lab.run(1, &out), (Verdict::Forward { port: 0 }, want_out));
    // The answer to VIP:34007 is the member's, at its own address.
    let back = syn_ack((GW_MAC, PORT0_MAC), REMOTE, VIP, 60, (25, 34007));
    let want_back = syn_ack((PORT1_MAC, RS2_MAC), REMOTE, [10, 0, 0, 2], 59, (25, 34007));
    assert_eq!(lab.run(0, &back), (Verdict::Forward { port: 1 }, want_back));
    // A port outside every range: no service takes it, so it is the host's (as LVS).
    let other = syn_ack((GW_MAC, PORT0_MAC), REMOTE, VIP, 60, (25, 35000));
    assert_eq!(lab.run(0, &other).0, Verdict::ToHost);
    // The DR member's range is not rewritten on the way out (it sends from the VIP).
    let dr_out = syn_ack((RS3_MAC, PORT1_MAC), [10, 0, 0, 3], REMOTE, 64, (33007, 25));
    assert_eq!(lab.run(1, &dr_out).0, Verdict::Drop(DropReason::NotOurs));
}

fn udp(macs: ([u8; 6], [u8; 6]), src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src, dst, ttl)
        .udp(5000, 53)
        .write(&mut out, b"query")
        .unwrap();
    out
}

#[test]
fn with_ip_forward_traffic_for_neither_is_routed_as_a_router_does() {
    let mut lab = Lab::new();
    let input = udp((RS2_MAC, PORT1_MAC), [10, 0, 0, 2], REMOTE, 64);
    // Off (the default, as Linux's ip_forward): not ours, dropped.
    assert_eq!(lab.run(1, &input).0, Verdict::Drop(DropReason::NotOurs));
    lab.snap.ip_forward = true;
    let want = udp((PORT0_MAC, GW_MAC), [10, 0, 0, 2], REMOTE, 63);
    assert_eq!(lab.run(1, &input), (Verdict::Forward { port: 0 }, want));
    // Back the other way to the server, on-link.
    let back = udp((GW_MAC, PORT0_MAC), REMOTE, [10, 0, 0, 2], 50);
    let want_back = udp((PORT1_MAC, RS2_MAC), REMOTE, [10, 0, 0, 2], 49);
    assert_eq!(lab.run(0, &back), (Verdict::Forward { port: 1 }, want_back));
    assert_eq!(lab.engine.counters().routed, 2);
    // A frame for another MAC (flooded by a switch) is not routed.
    let flooded = udp((RS2_MAC, [2, 9, 9, 9, 9, 9]), [10, 0, 0, 2], REMOTE, 64);
    assert_eq!(lab.run(1, &flooded).0, Verdict::Drop(DropReason::NotOurs));
}

/// A routed datagram larger than the out port's MTU: with DF the sender is told the MTU;
/// without, it leaves in fragments (TTL decremented first), as a router sends it.
#[test]
fn a_routed_datagram_over_the_mtu_is_fragmented_unless_df() {
    let mut lab = Lab::new();
    lab.snap.ip_forward = true;
    lab.snap.ports[0].mtu = 1280;
    let big = |df: bool, ttl: u8, macs: ([u8; 6], [u8; 6])| {
        let mut out = Vec::new();
        let mut b = PacketBuilder::ethernet2(macs.0, macs.1).ipv4([10, 0, 0, 2], REMOTE, ttl);
        if !df {
            b = PacketBuilder::ethernet2(macs.0, macs.1).ip(etherparse::IpHeaders::Ipv4(
                {
                    let mut h =
                        etherparse::Ipv4Header::new(0, ttl, 17.into(), [10, 0, 0, 2], REMOTE)
                            .unwrap();
                    h.dont_fragment = false;
                    h
                },
                Default::default(),
            ));
        }
        b.udp(5000, 53).write(&mut out, &[9u8; 1400]).unwrap();
        out
    };
    let (v, _) = lab.run(1, &big(true, 64, (RS2_MAC, PORT1_MAC)));
    assert_eq!(
        v,
        Verdict::Forward { port: 1 },
        "frag needed, back to the sender"
    );
    let (v, out) = lab.run(1, &big(false, 64, (RS2_MAC, PORT1_MAC)));
    assert_eq!(v, Verdict::Fragment { port: 0, mtu: 1280 });
    assert_eq!(out, big(false, 63, (PORT0_MAC, GW_MAC)));
    assert_eq!(lab.engine.counters().icmp_errors_sent, 1);
}

#[test]
fn a_routed_packet_out_of_ttl_gets_time_exceeded_from_the_port_it_came_in_by() {
    let mut lab = Lab::new();
    lab.snap.ip_forward = true;
    let input = udp((RS2_MAC, PORT1_MAC), [10, 0, 0, 2], REMOTE, 1);
    let quote = &input[14..14 + 28];
    let mut want = Vec::new();
    // As the kernel's ICMP errors: no DF on the error itself.
    let mut header = etherparse::Ipv4Header::new(
        0,
        64,
        etherparse::IpNumber::ICMP,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
    )
    .unwrap();
    header.dont_fragment = false;
    PacketBuilder::ethernet2(PORT1_MAC, RS2_MAC)
        .ip(etherparse::IpHeaders::Ipv4(header, Default::default()))
        .icmpv4(Icmpv4Type::TimeExceeded(
            icmpv4::TimeExceededCode::TtlExceededInTransit,
        ))
        .write(&mut want, quote)
        .unwrap();
    assert_eq!(lab.run(1, &input), (Verdict::Forward { port: 1 }, want));
    assert_eq!(lab.engine.counters().icmp_errors_sent, 1);
}

/// Policy rules select routed packets by the port they came in on (`iif`), their protocol
/// and ports, and their firewall mark (the `[[fwmark]]` rules'), as the kernel's fib rules
/// select forwarded ones; an `iif lo` rule is the appliance's own lookups', an `oif` or a
/// mark no rule sets selects none, and `not` inverts the whole selector.
#[test]
fn policy_rules_select_routed_packets_by_their_flow() {
    use rvs_core::engine::{Route, Rule, RuleAction, RuleDev, RuleSelectors};
    let gw2_mac = [2, 0xbb, 0, 0, 0, 2];
    let gw2 = ip([192, 168, 1, 253]);
    let mut lab = Lab::new();
    lab.snap.ip_forward = true;
    lab.snap.neighbours.insert(gw2, gw2_mac);
    lab.snap.routes.push(Route {
        prefix: ip([0, 0, 0, 0]),
        len: 0,
        gateway: Some(gw2),
        port: 0,
        table: 100,
    });
    let dev = |name: &str, port: Option<u16>| {
        let mut d = RuleDev::new(name).unwrap();
        d.port = port;
        d
    };
    let rule = |select: RuleSelectors, invert: bool| Rule {
        priority: 100,
        ipv6: false,
        from: None,
        to: None,
        select,
        invert,
        action: RuleAction::Table(100),
    };
    let dns = udp((RS2_MAC, PORT1_MAC), [10, 0, 0, 2], REMOTE, 64);
    let tcp = syn_ack((RS2_MAC, PORT1_MAC), [10, 0, 0, 2], REMOTE, 64, (40000, 25));
    let via = |mac: [u8; 6], frame: &[u8]| {
        let mut out = frame.to_vec();
        out[..6].copy_from_slice(&mac);
        out[6..12].copy_from_slice(&PORT0_MAC);
        out[22] -= 1;
        // The IPv4 checksum after the TTL's decrement.
        let sum = u16::from_be_bytes([out[24], out[25]]);
        let (s, carry) = sum.overflowing_add(0x0100);
        out[24..26].copy_from_slice(&(s + u16::from(carry)).to_be_bytes());
        (Verdict::Forward { port: 0 }, out)
    };
    let route = |lab: &mut Lab, rules: Vec<Rule>, frame: &[u8]| {
        lab.snap.set_rules(rules);
        lab.engine.adopt(&lab.snap);
        lab.run(1, frame)
    };
    let servers_dns = RuleSelectors {
        iif: Some(dev("lan", Some(1))),
        ipproto: Some(17),
        dport: Some((53, 53)),
        ..Default::default()
    };
    // From the servers' port, UDP to port 53: table 100's gateway; TCP: main's.
    assert_eq!(
        route(&mut lab, vec![rule(servers_dns, false)], &dns),
        via(gw2_mac, &dns)
    );
    assert_eq!(
        route(&mut lab, vec![rule(servers_dns, false)], &tcp),
        via(GW_MAC, &tcp)
    );
    // Another port's rule, a source port range the packet is outside of: main.
    let other_port = RuleSelectors {
        iif: Some(dev("wan", Some(0))),
        ..Default::default()
    };
    assert_eq!(
        route(&mut lab, vec![rule(other_port, false)], &dns),
        via(GW_MAC, &dns)
    );
    let high_ports = RuleSelectors {
        sport: Some((10000, 20000)),
        ..Default::default()
    };
    assert_eq!(
        route(&mut lab, vec![rule(high_ports, false)], &dns),
        via(GW_MAC, &dns)
    );
    // `not`: everything but the other port's traffic, this packet included.
    assert_eq!(
        route(&mut lab, vec![rule(other_port, true)], &dns),
        via(gw2_mac, &dns)
    );
    // lo, an interface of the host's own, an oif, a mark: none of them a routed packet's.
    for select in [
        RuleSelectors {
            iif: Some(dev("lo", None)),
            ..Default::default()
        },
        RuleSelectors {
            iif: Some(dev("eth7", None)),
            ..Default::default()
        },
        RuleSelectors {
            oif: Some(dev("lan", Some(1))),
            ..Default::default()
        },
        RuleSelectors {
            fwmark: Some((1, u32::MAX)),
            ..Default::default()
        },
    ] {
        assert_eq!(
            route(&mut lab, vec![rule(select, false)], &dns),
            via(GW_MAC, &dns),
            "{select:?}"
        );
    }
    // A mark of 0 under its mask is every unmarked packet's.
    let unmarked = RuleSelectors {
        fwmark: Some((0x100, 0xff)),
        ..Default::default()
    };
    assert_eq!(
        route(&mut lab, vec![rule(unmarked, false)], &dns),
        via(gw2_mac, &dns)
    );
    // The servers' UDP to port 53 marked 7 by a [[fwmark]] rule (its mark has no
    // service: only routing sees it): `fwmark 7` sends it by table 100, not their TCP;
    // marked packets no longer match the unmarked rule.
    lab.snap.set_route_marks(vec![rvs_core::engine::MarkRule {
        mark: 7,
        proto: Some(17),
        dst: (ip([0, 0, 0, 0]), 0),
        ports: (53, 53),
        src: Some((ip([10, 0, 0, 0]), 24)),
    }]);
    let marked = RuleSelectors {
        fwmark: Some((7, u32::MAX)),
        ..Default::default()
    };
    assert_eq!(
        route(&mut lab, vec![rule(marked, false)], &dns),
        via(gw2_mac, &dns)
    );
    assert_eq!(
        route(&mut lab, vec![rule(marked, false)], &tcp),
        via(GW_MAC, &tcp)
    );
    assert_eq!(
        route(&mut lab, vec![rule(unmarked, false)], &dns),
        via(GW_MAC, &dns)
    );
    assert_eq!(
        route(&mut lab, vec![rule(unmarked, false)], &tcp),
        via(gw2_mac, &tcp)
    );
}

/// IPVS's nat_icmp_send: a NAT real server's segment from its service port that belongs
/// to no connection (the director forgot it: expired, or a failover without sync) gets
/// "port unreachable" from the appliance instead of leaving with the server's own
/// address; a RST, another port, another server and a connection's own replies go on as
/// before; off (the default), routed.
#[test]
fn nat_icmp_send_tells_a_nat_server_its_connection_is_gone() {
    let mut lab = Lab::new();
    lab.snap.ip_forward = true;
    let from_server = |src: [u8; 4], sport: u16, ttl: u8, macs: ([u8; 6], [u8; 6])| {
        tcp4(
            macs.0, macs.1, src, CLIENT, ttl, sport, 40000, false, true, b"late",
        )
    };
    let inbound = (RS2_MAC, PORT1_MAC);
    let stray = from_server([10, 0, 0, 2], 8080, 64, inbound);
    let routed = (
        Verdict::Forward { port: 0 },
        from_server([10, 0, 0, 2], 8080, 63, (PORT0_MAC, GW_MAC)),
    );
    assert_eq!(lab.run(1, &stray), routed, "off: routed as any packet");
    lab.snap.nat_icmp_send = true;
    let (v, out) = lab.run(1, &stray);
    assert_eq!(v, Verdict::Forward { port: 1 }, "back to the server");
    let h = etherparse::PacketHeaders::from_ethernet_slice(&out).unwrap();
    let Some(etherparse::LinkHeader::Ethernet2(eth)) = &h.link else {
        panic!("{h:?}")
    };
    assert_eq!((eth.source, eth.destination), (PORT1_MAC, RS2_MAC));
    let Some(etherparse::NetHeaders::Ipv4(ip4, _)) = &h.net else {
        panic!("{h:?}")
    };
    assert_eq!(
        (ip4.source, ip4.destination),
        ([10, 0, 0, 1], [10, 0, 0, 2])
    );
    let Some(etherparse::TransportHeader::Icmpv4(icmp)) = &h.transport else {
        panic!("{h:?}")
    };
    assert_eq!(
        icmp.icmp_type,
        Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port)
    );
    assert_eq!(
        icmp.checksum,
        icmp.icmp_type.calc_checksum(h.payload.slice())
    );
    assert_eq!(
        h.payload.slice(),
        &stray[14..14 + 28],
        "its header + 8 bytes quoted"
    );
    assert_eq!(lab.engine.counters().icmp_errors_sent, 1);
    // Without ip_forward too (rvs's NAT needs none; the server is told all the same).
    lab.snap.ip_forward = false;
    assert_eq!(lab.run(1, &stray).0, Verdict::Forward { port: 1 });
    lab.snap.ip_forward = true;
    // A RST is let through, as IPVS's; so are another port and a DR server's segment.
    let mut rst = Vec::new();
    PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC)
        .ipv4([10, 0, 0, 2], CLIENT, 64)
        .tcp(8080, 40000, 1000, 0)
        .rst()
        .write(&mut rst, b"")
        .unwrap();
    assert_eq!(lab.run(1, &rst).0, Verdict::Forward { port: 0 });
    assert_eq!(
        lab.run(1, &from_server([10, 0, 0, 2], 8081, 64, inbound)),
        (
            Verdict::Forward { port: 0 },
            from_server([10, 0, 0, 2], 8081, 63, (PORT0_MAC, GW_MAC))
        )
    );
    let dr = from_server([10, 0, 0, 3], 8080, 64, (RS3_MAC, PORT1_MAC));
    assert_eq!(lab.run(1, &dr).0, Verdict::Forward { port: 0 });
    // The server's port serves TCP: a UDP datagram from it is no stray of a service.
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC)
        .ipv4([10, 0, 0, 2], CLIENT, 64)
        .udp(8080, 40000)
        .write(&mut udp, b"late")
        .unwrap();
    assert_eq!(lab.run(1, &udp).0, Verdict::Forward { port: 0 });
    // A connection's own reply is the connection's: back to the client from the VIP.
    let syn = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 100],
        64,
        40000,
        80,
        true,
        false,
        b"",
    );
    assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
    let (v, out) = lab.run(1, &stray);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&out[26..30], &[192, 168, 1, 100], "from the VIP");
    assert_eq!(lab.engine.counters().icmp_errors_sent, 2);
}

/// The LVS HOWTO's two-box cluster: a VRRP BACKUP that is one of its master's real servers
/// (a local server of the service) gets what the master sends it for the standby VIP. With
/// its director paused (backup_only) its host serves it; otherwise, and for a service
/// without a local server, it is dropped as standby traffic.
#[test]
fn a_paused_backup_hands_its_masters_traffic_to_its_host() {
    let dr_vip = [192, 168, 1, 101];
    let snap = snapshot_with(|services| {
        services[1]
            .servers
            .push(rs(22, [10, 0, 0, 1], 0, ForwardMethod::Dr));
    });
    let mut lab = Lab::with(
        snap,
        EngineConfig {
            conn_capacity: 1024,
            ..EngineConfig::default()
        },
    );
    lab.snap.set_floating([
        Floating::standby(ip(dr_vip)),
        Floating::standby(ip([192, 168, 1, 100])),
    ]);
    let syn = |vip: [u8; 4]| {
        tcp4(
            GW_MAC, PORT0_MAC, CLIENT, vip, 63, 40000, 80, true, false, b"",
        )
    };
    assert_eq!(
        lab.run(0, &syn(dr_vip)).0,
        Verdict::Drop(DropReason::Standby)
    );
    lab.snap.director_paused = true;
    assert_eq!(lab.run(0, &syn(dr_vip)).0, Verdict::ToHost, "served here");
    assert_eq!(
        lab.run(0, &syn([192, 168, 1, 100])).0,
        Verdict::Drop(DropReason::Standby),
        "no local server"
    );
    assert_eq!(lab.engine.counters().new_conns, 0);
}

/// IPVS's backup_only in effect (a backup sync daemon runs): a VIP's traffic is the
/// host's, a connection's (synced or not) included, or dropped where the VIP drops
/// unserved traffic; members' ranges still work; once the director resumes, the
/// connection goes on to its server.
#[test]
fn a_paused_director_hands_vip_traffic_to_the_host() {
    let mut lab = lab_with_members();
    let vip = [192, 168, 1, 100];
    let seg = |syn: bool, sport: u16| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, sport, 80, syn, !syn, b"",
        )
    };
    assert_eq!(
        lab.run(0, &seg(true, 40000)).0,
        Verdict::Forward { port: 1 }
    );
    lab.snap.director_paused = true;
    // Through a worker's staged burst (parsed and hashed first: the established
    // connections' lane), then the general path.
    let established = seg(false, 40000);
    let parsed = lab.engine.parse(&lab.snap, &established);
    let mut f = rvs_core::engine::VecFrame::new(&established);
    assert_eq!(
        lab.engine
            .process_parsed(&lab.snap, &lab.loads, 1, 0, &parsed, &mut f),
        Verdict::ToHost
    );
    assert_eq!(lab.run(0, &seg(false, 40000)).0, Verdict::ToHost);
    assert_eq!(lab.run(0, &seg(true, 40001)).0, Verdict::ToHost);
    assert_eq!(
        lab.engine.counters().new_conns,
        1,
        "nothing scheduled while paused"
    );
    // A member's range is no service: still the member's.
    let to_member = syn_ack((GW_MAC, PORT0_MAC), REMOTE, VIP, 60, (25, 33007));
    assert_eq!(lab.run(0, &to_member).0, Verdict::Forward { port: 1 });
    lab.snap.set_unserved_drop([ip(vip)]);
    assert_eq!(
        lab.run(0, &seg(false, 40000)).0,
        Verdict::Drop(DropReason::NoService)
    );
    lab.snap.set_unserved_drop(Vec::<std::net::IpAddr>::new());
    lab.snap.director_paused = false;
    assert_eq!(
        lab.run(0, &seg(false, 40000)).0,
        Verdict::Forward { port: 1 }
    );
}
