//! Property tests of the forwarding core: every packet it forwards keeps valid checksums
//! (checked by etherparse), and the TCP state machine keeps the connection table and the
//! servers' active/inactive counters consistent.

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use proptest::prelude::*;
use rvs_core::engine::Verdict;
use rvs_testkit::*;

/// Recomputes every checksum of an Ethernet frame (and of an IP-in-IP inner datagram).
fn checksums_ok(frame: &[u8]) -> Result<(), String> {
    let h = PacketHeaders::from_ethernet_slice(frame).map_err(|e| e.to_string())?;
    let payload = h.payload.slice();
    match (&h.net, &h.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), t) => {
            if ip.header_checksum != ip.calc_header_checksum() {
                return Err("ipv4 header".into());
            }
            match t {
                Some(TransportHeader::Tcp(tcp))
                    if tcp.checksum != tcp.calc_checksum_ipv4(ip, payload).unwrap() =>
                {
                    Err("tcp4".into())
                }
                Some(TransportHeader::Udp(u))
                    if u.checksum != 0
                        && u.checksum != u.calc_checksum_ipv4(ip, payload).unwrap() =>
                {
                    Err("udp4".into())
                }
                None if ip.protocol.0 == 4 => inner(payload, false),
                _ => Ok(()),
            }
        }
        (Some(NetHeaders::Ipv6(ip, _)), t) => match t {
            Some(TransportHeader::Tcp(tcp))
                if tcp.checksum != tcp.calc_checksum_ipv6(ip, payload).unwrap() =>
            {
                Err("tcp6".into())
            }
            Some(TransportHeader::Udp(u))
                if u.checksum != u.calc_checksum_ipv6(ip, payload).unwrap() =>
            {
                Err("udp6".into())
            }
            None if ip.next_header.0 == 41 => inner(payload, true),
            _ => Ok(()),
        },
        other => Err(format!("{other:?}")),
    }
}

/// An IPv4 TCP frame's source and destination endpoints and TTL.
fn endpoints(frame: &[u8]) -> ([u8; 4], u16, [u8; 4], u16, u8) {
    let ip = &frame[14..];
    let l4 = &ip[usize::from(ip[0] & 0xf) * 4..];
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    let addr = |at: usize| <[u8; 4]>::try_from(&ip[at..at + 4]).unwrap();
    (addr(12), port(0), addr(16), port(2), ip[8])
}

fn inner(datagram: &[u8], v6: bool) -> Result<(), String> {
    // Re-frame the inner datagram to reuse the checks.
    let mut f = vec![0u8; 12];
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(datagram);
    checksums_ok(&f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn forwarded_packets_keep_valid_checksums(
        // A host's address (martian sources are dropped; VIPs and the appliance's subnets
        // are not clients): the first byte moved into 11..=126 / 2000::/3.
        client in any::<[u8; 4]>().prop_map(|mut c| { c[0] = 11 + c[0] % 116; c }),
        client6 in any::<[u8; 16]>().prop_map(|mut c| { c[0] = 0x20 | (c[0] & 0x1f); c[1] |= 0x80; c }),
        sport in 1u16..,
        which in 0usize..5, payload in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut lab = Lab::new();
        let mut input = Vec::new();
        let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC);
        match which {
            0 => b.ipv4(client, [192, 168, 1, 100], 64).tcp(sport, 80, 1, 100).syn().write(&mut input, &payload),
            1 => b.ipv4(client, [192, 168, 1, 101], 64).tcp(sport, 80, 1, 100).syn().write(&mut input, &payload),
            2 => b.ipv4(client, [192, 168, 1, 102], 64).udp(sport, 53).write(&mut input, &payload),
            3 => b.ipv6(client6, VIP6, 64).tcp(sport, 80, 1, 100).syn().write(&mut input, &payload),
            _ => b.ipv6(client6, VIP6_TUN, 64).tcp(sport, 80, 1, 100).syn().write(&mut input, &payload),
        }.unwrap();
        let (v, out) = lab.run(0, &input);
        prop_assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
        if let Err(e) = checksums_ok(&out) {
            return Err(TestCaseError::fail(e));
        }
        if which == 0 {
            // The server's reply back through NAT.
            let mut reply = Vec::new();
            PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC).ipv4([10, 0, 0, 2], client, 64)
                .tcp(8080, sport, 9, 100).syn().ack(2).write(&mut reply, &payload).unwrap();
            let (v, out) = lab.run(1, &reply);
            prop_assert_eq!(v, Verdict::Forward { port: 0 });
            if let Err(e) = checksums_ok(&out) {
                return Err(TestCaseError::fail(e));
            }
            // Established segments both ways (the path that skips classification): the
            // server's endpoint in, the VIP's out, TTL down by one, checksums valid.
            let mut data = Vec::new();
            PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC).ipv4(client, [192, 168, 1, 100], 64)
                .tcp(sport, 80, 2, 100).ack(10).psh().write(&mut data, &payload).unwrap();
            let (v, out) = lab.run(0, &data);
            prop_assert_eq!(v, Verdict::Forward { port: 1 });
            prop_assert_eq!(endpoints(&out), (client, sport, [10, 0, 0, 2], 8080, 63));
            checksums_ok(&out).map_err(TestCaseError::fail)?;
            let mut answer = Vec::new();
            PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC).ipv4([10, 0, 0, 2], client, 64)
                .tcp(8080, sport, 10, 100).ack(2).write(&mut answer, &payload).unwrap();
            let (v, out) = lab.run(1, &answer);
            prop_assert_eq!(v, Verdict::Forward { port: 0 });
            prop_assert_eq!(endpoints(&out), ([192, 168, 1, 100], 80, client, sport, 63));
            checksums_ok(&out).map_err(TestCaseError::fail)?;
        }
        if which == 2 {
            // Later datagrams of the flow (TUN), with a checksum and without one (IPv4's
            // zero, which must stay zero inside the tunnel).
            for none in [false, true] {
                let mut again = Vec::new();
                PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC).ipv4(client, [192, 168, 1, 102], 64)
                    .udp(sport, 53).write(&mut again, &payload).unwrap();
                if none {
                    again[14 + 20 + 6..14 + 20 + 8].fill(0);
                }
                let (v, out) = lab.run(0, &again);
                prop_assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
                checksums_ok(&out).map_err(TestCaseError::fail)?;
                prop_assert_eq!(out[14 + 40 + 6..14 + 40 + 8] == [0, 0], none);
            }
        }
    }

    #[test]
    fn counters_follow_the_state_machine(
        steps in proptest::collection::vec((0u8..6, 0usize..4, any::<bool>(), 0u32..30), 1..120),
        pass in 0usize..6,
    ) {
        // pass > 0: the worker's way, changes held and shared every `pass` packets.
        let mut lab = Lab::new();
        if pass > 0 {
            lab.engine.hold_loads(lab.loads.len());
        }
        let mut now = 1u32;
        for (n, (client, flags, reply, dt)) in steps.into_iter().enumerate() {
            let c = [198, 51, 100, client];
            let (syn, ack, fin, rst) = match flags {
                0 => (true, false, false, false),
                1 => (false, true, false, false),
                2 => (false, true, true, false),
                _ => (false, false, false, true),
            };
            let mut frame = Vec::new();
            let b = if reply {
                PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC).ipv4([10, 0, 0, 2], c, 64).tcp(8080, 1000, 1, 100)
            } else {
                PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC).ipv4(c, [192, 168, 1, 100], 64).tcp(1000, 80, 1, 100)
            };
            let b = if syn { b.syn() } else { b };
            let b = if ack { b.ack(1) } else { b };
            let b = if fin { b.fin() } else { b };
            let b = if rst { b.rst() } else { b };
            b.write(&mut frame, &[]).unwrap();
            let mut f = rvs_core::engine::VecFrame::new(&frame);
            lab.engine.process(&lab.snap, &lab.loads, now, if reply { 1 } else { 0 }, &mut f);
            now += dt;
            lab.engine.expire(now, 256, &lab.loads);
            if pass > 0 && n % pass != pass - 1 {
                continue;
            }
            lab.engine.flush_loads(&lab.loads);
            let conns: Vec<_> = lab.engine.table.iter().filter(|(_, c)| !c.is_template() && c.dest == 0).map(|(_, c)| *c).collect();
            let active = conns.iter().filter(|c| rvs_core::conn::state_is_active(c.proto, c.state)).count() as u32;
            prop_assert_eq!(lab.loads[0].active(), active, "active");
            prop_assert_eq!(lab.loads[0].active() + lab.loads[0].inactive(), conns.len() as u32, "active + inactive");
        }
    }
}

/// The inputs fuzzing found a fault with (dataplane/fuzz/seeds/engine, where each run of
/// the fuzz target starts too) hold every invariant, here in every test run.
#[test]
fn inputs_fuzzing_broke_once_hold() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/engine");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        rvs_testkit::invariants::run_bytes(&data).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        rvs_testkit::invariants::staged_agrees(&data).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        n += 1;
    }
    assert!(n > 0, "no input in {dir:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// Structure-aware frames (the fuzz targets' generator) in sequences on one engine: one
    /// drop counter per drop, valid checksums on everything forwarded, and every real
    /// server's counts equal to its connections in the table, after every frame.
    #[test]
    fn invariants_hold_for_structured_frames(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Err(e) = rvs_testkit::invariants::run_bytes(&data) {
            prop_assert!(false, "{}", e);
        }
    }

    /// The worker's staged burst (parse and hash every frame, prefetch every entry, then
    /// the engine frame by frame) forwards exactly as frame-by-frame processing.
    #[test]
    fn a_staged_burst_is_frame_by_frame_processing(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Err(e) = rvs_testkit::invariants::staged_agrees(&data) {
            prop_assert!(false, "{}", e);
        }
    }

    /// An established packet forwarded by the fast lane leaves the same frame, verdict,
    /// counters and entries as the general path.
    #[test]
    fn the_fast_lane_is_the_general_path(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        match rvs_testkit::invariants::fast_lane_agrees(&data) {
            Err(e) => prop_assert!(false, "{}", e),
            // At least the data segments of one connection.
            Ok(established) => prop_assert!(established >= 3 || data.len() < 32, "{} established", established),
        }
    }
}
