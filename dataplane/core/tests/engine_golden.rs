//! Golden packets for the forwarding core: each case is an input frame, the expected output
//! frame and the verdict. Inputs and expected outputs are built with etherparse (an
//! independent implementation, with its own checksums), never by the code under test.

#![allow(clippy::too_many_arguments)]

use etherparse::{IpNumber, PacketBuilder};
use rvs_core::engine::{
    DropReason, EngineConfig, Floating, ForwardMethod, Frame, Service, VecFrame, Verdict,
};
use rvs_core::sched::SchedKind;
use rvs_testkit::fixtures::{cases, drops, Net};
use rvs_testkit::*;
use std::net::IpAddr;

/// Every case of the fixture table on a fresh engine: the verdict and the frame that leaves
/// for each step, and one drop counter per drop.
#[test]
fn the_fixture_table_on_the_engine() {
    let net = Net::two_ports();
    let table = cases(&net);
    assert!(table.len() >= 10, "{} cases", table.len());
    for case in &table {
        let mut lab = Lab::new();
        for (i, step) in case.steps.iter().enumerate() {
            let (verdict, out) = lab.run(step.port, &step.input);
            assert_eq!(verdict, step.verdict, "{}: step {i}", case.name);
            if let Some(want) = &step.output {
                assert_eq!(&out, want, "{}: step {i}", case.name);
            }
            if let Verdict::Fragment { mtu, .. } = verdict {
                let pieces = cut_ipv4(&out, usize::from(mtu));
                let want: Vec<Vec<u8>> = step.frames_out().into_iter().map(|(_, f)| f).collect();
                assert_eq!(pieces, want, "{}: step {i}: the fragments", case.name);
            }
        }
        for r in DropReason::ALL {
            let want = drops(&case.steps, r);
            assert_eq!(
                lab.engine.counters().drops[r as usize],
                want,
                "{}: {r:?}",
                case.name
            );
        }
    }
}

#[test]
fn nat_ipv4_counts_per_service_and_server() {
    let mut lab = Lab::new();
    let nat = &cases(&Net::two_ports())[0];
    for step in &nat.steps {
        lab.run(step.port, &step.input);
    }
    assert_eq!(lab.engine.counters().new_conns, 1);
    assert_eq!(lab.engine.counters().svc_in[0], (1, 40));
    assert_eq!(lab.engine.counters().svc_out[0], (1, 45));
    assert_eq!(
        (lab.loads[0].active(), lab.loads[0].inactive()),
        (1, 0),
        "SYN_RECV counts active"
    );
}

#[test]
fn tun_ipv4_wraps_in_ipip() {
    let mut lab = Lab::new();
    let mut input = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 102], 64)
        .udp(5353, 53)
        .write(&mut input, b"query")
        .unwrap();
    let inner = input[14..].to_vec();
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC, RS2_MAC)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .write(&mut expected, IpNumber(4), &inner)
        .unwrap();
    assert_eq!(
        lab.run(0, &input),
        (Verdict::Forward { port: 1 }, expected.clone())
    );

    // A port with IPv4 checksum offload: the outer checksum is left to it (zero in the
    // frame, the offload requested for 14 + 20 bytes of headers); the rest is identical.
    lab.snap.ports[1].ip_checksum_offload = true;
    let mut f = rvs_core::engine::VecFrame::new(&input);
    let v = lab.engine.process(&lab.snap, &lab.loads, 1, 0, &mut f);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(f.ipv4_checksum_offload, Some((14, 20)));
    let mut want = expected;
    want[24..26].fill(0);
    assert_eq!(rvs_core::engine::Frame::bytes(&f), &want[..]);
}

/// The Internet checksum, written here apart from the code under test.
fn ones_complement(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn tun_gue_and_gre_as_ipvsadm_sets_them() {
    use rvs_core::{Tunnel, TunnelCsum, TunnelKind};
    let mut input = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 102], 64)
        .udp(5353, 53)
        .write(&mut input, b"query")
        .unwrap();
    let inner = input[14..].to_vec();
    for csum in [TunnelCsum::NoCsum, TunnelCsum::Csum, TunnelCsum::RemCsum] {
        // GUE: UDP to the tunnel port from a port the flow hashes to, then GUE version 0
        // naming IPIP; the UDP checksum only with --tun-csum / --tun-remcsum.
        let mut lab = Lab::new();
        lab.snap.services[2].servers[0].tunnel = Tunnel {
            kind: TunnelKind::Gue,
            port: 6080,
            csum,
        };
        let (v, out) = lab.run(0, &input);
        assert_eq!(v, Verdict::Forward { port: 1 });
        let sport = u16::from_be_bytes([out[34], out[35]]);
        assert!((32768..=60999).contains(&sport), "{sport}");
        let mut gue = vec![0u8, 4, 0, 0];
        gue.extend_from_slice(&inner);
        let mut want = Vec::new();
        PacketBuilder::ethernet2(PORT1_MAC, RS2_MAC)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(sport, 6080)
            .write(&mut want, &gue)
            .unwrap();
        if csum == TunnelCsum::NoCsum {
            want[40..42].fill(0);
        }
        assert_eq!(out, want, "GUE {csum:?}");
        // The same flow keeps its source port.
        assert_eq!(lab.run(0, &input).1, want);

        // GRE: protocol 0x0800 after the flags; with --tun-csum the C bit and a checksum
        // over the GRE header and payload.
        let mut lab = Lab::new();
        lab.snap.services[2].servers[0].tunnel = Tunnel {
            kind: TunnelKind::Gre,
            port: 0,
            csum,
        };
        let (v, out) = lab.run(0, &input);
        assert_eq!(v, Verdict::Forward { port: 1 });
        let mut gre = if csum == TunnelCsum::Csum {
            vec![0x80, 0, 0x08, 0, 0, 0, 0, 0]
        } else {
            vec![0, 0, 0x08, 0]
        };
        gre.extend_from_slice(&inner);
        if csum == TunnelCsum::Csum {
            let c = ones_complement(&gre);
            gre[4..6].copy_from_slice(&c.to_be_bytes());
        }
        let mut want = Vec::new();
        PacketBuilder::ethernet2(PORT1_MAC, RS2_MAC)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .write(&mut want, IpNumber(47), &gre)
            .unwrap();
        assert_eq!(out, want, "GRE {csum:?}");
    }
}

/// Timer arithmetic saturates: a connection made when the clock is near its end, with the
/// longest timeouts, is forwarded (no overflow).
#[test]
fn timers_saturate_near_the_end_of_the_clock() {
    let mut lab = Lab::new();
    lab.snap.timeouts.set(u32::MAX, u32::MAX, u32::MAX);
    lab.engine.adopt(&lab.snap);
    let nat = &cases(&Net::two_ports())[0];
    let mut f = VecFrame::new(&nat.steps[0].input);
    let v = lab.engine.process(
        &lab.snap,
        &lab.loads,
        u32::MAX - 5,
        nat.steps[0].port,
        &mut f,
    );
    assert_eq!(v, nat.steps[0].verdict);
}

/// Two NAT VIPs with one real server endpoint: a second connection from the same client
/// endpoint is refused as a key clash (the server would see one connection), not as a full
/// table; another client port goes through.
#[test]
fn two_vips_sharing_a_server_endpoint() {
    let mut lab = Lab::new();
    lab.snap.services[7].servers[0].addr = IpAddr::from([10, 0, 0, 2]);
    lab.snap.services[7].servers[0].port = 8080;
    let syn = |vip: [u8; 4], cport: u16| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, cport, 80, true, false, b"",
        )
    };
    let (v, _) = lab.run(0, &syn([192, 168, 1, 100], 40000));
    assert_eq!(v, Verdict::Forward { port: 1 });
    let (v, _) = lab.run(0, &syn([192, 168, 1, 105], 40000));
    assert_eq!(v, Verdict::Drop(DropReason::Clash));
    let (v, _) = lab.run(0, &syn([192, 168, 1, 105], 40001));
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        lab.engine.counters().drops[DropReason::TableFull as usize],
        0
    );
}

/// A persistence mask with non-contiguous ones (ipvsadm -M 255.0.255.0): clients that
/// agree on the masked bits share the template, others do not.
#[test]
fn a_non_contiguous_persistence_mask() {
    let mut lab = Lab::new();
    lab.snap.services[5].persist_mask_v4 = Some(0xff00_ff00);
    let syn = |client: [u8; 4], cport: u16| {
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            client,
            [192, 168, 1, 103],
            64,
            cport,
            80,
            true,
            false,
            b"",
        )
    };
    let server = |out: &[u8]| [out[30], out[31], out[32], out[33]];
    let (_, a) = lab.run(0, &syn([198, 51, 100, 7], 1000));
    // Differs from the first client in the masked-out bytes only: the same server.
    let (_, b) = lab.run(0, &syn([198, 9, 100, 200], 1001));
    assert_eq!(server(&a), server(&b));
    // Differs in a masked-in byte: scheduled anew (rr's next server).
    let (_, c) = lab.run(0, &syn([198, 51, 101, 7], 1002));
    assert_ne!(server(&a), server(&c));
}

/// A tunnel carries IPv4 in IPv6 to a server of the other family (as IPVS allows for -i).
#[test]
fn tun_ipv4_service_to_an_ipv6_server() {
    let mut lab = Lab::new();
    lab.snap.services[2].servers[0].addr = IpAddr::from(RS6);
    let mut input = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 102], 64)
        .udp(5353, 53)
        .write(&mut input, b"query")
        .unwrap();
    let inner = input[14..].to_vec();
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC, RS6_MAC)
        .ipv6(DIP6_IN, RS6, 64)
        .write(&mut expected, IpNumber(4), &inner)
        .unwrap();
    assert_eq!(lab.run(0, &input), (Verdict::Forward { port: 1 }, expected));
}

/// IPv4 in IPv6 over the MTU: without DF (or with DF and pmtu_disc off) the wrapped
/// datagram leaves in IPv6 fragments, as the kernel's output sends IPVS's; with DF the
/// client hears "fragmentation needed" with the MTU less the outer header. The fragment
/// headers' identifications follow the worker's turn.
#[test]
fn tun_ipv4_in_ipv6_over_the_mtu_is_fragmented_unless_df() {
    let datagram = |df: bool| {
        let mut input = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CLIENT, [192, 168, 1, 102], 64)
            .udp(5353, 53)
            .write(&mut input, &[9u8; 1472])
            .unwrap();
        if !df {
            clear_df(&mut input);
        }
        input
    };
    let mut lab = Lab::new();
    lab.snap.services[2].servers[0].addr = IpAddr::from(RS6);
    let input = datagram(false);
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC, RS6_MAC)
        .ipv6(DIP6_IN, RS6, 64)
        .write(&mut expected, IpNumber(4), &input[14..])
        .unwrap();
    assert_eq!(
        lab.run(0, &input),
        (Verdict::Fragment { port: 1, mtu: 1500 }, expected.clone()),
        "the whole outer datagram, to be cut by the worker"
    );
    let mut pieces = Vec::new();
    rvs_wire::fragment::fragment(&expected, 1500, 7, |h, p| {
        pieces.push([h, p].concat());
        true
    })
    .unwrap();
    assert_eq!(
        pieces.iter().map(Vec::len).collect::<Vec<_>>(),
        [14 + 1496, 14 + 48 + 1500 - 1448],
        "1,540 bytes of IPv6 in two fragments"
    );
    // With DF: the MTU less the outer IPv6 header.
    let (v, out) = lab.run(0, &datagram(true));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        (out[23], out[34], out[35]),
        (1, 3, 4),
        "fragmentation needed"
    );
    assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1460);
    // pmtu_disc off: fragmented all the same.
    lab.snap.pmtu_disc = false;
    assert_eq!(
        lab.run(0, &datagram(true)).0,
        Verdict::Fragment { port: 1, mtu: 1500 }
    );
    // Identifications: worker 1 of 2 numbers 3, 5, ...
    lab.engine.set_owner(1, 2);
    assert_eq!(
        (lab.engine.fragment_ident6(), lab.engine.fragment_ident6()),
        (3, 5)
    );
}

/// A SIP INVITE of `call_id` from `client:sport` to the SIP VIP (ipvsadm --pe sip).
fn sip_invite(client: [u8; 4], sport: u16, call_id: &str) -> Vec<u8> {
    let msg = format!(
        "INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\ni: {call_id}\r\nCSeq: 1 INVITE\r\n\r\n"
    );
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(client, [192, 168, 1, 107], 64)
        .udp(sport, 5060)
        .write(&mut f, msg.as_bytes())
        .unwrap();
    f
}

/// The real server a NAT'd frame was sent to (its IPv4 destination).
fn nat_server(out: &[u8]) -> [u8; 4] {
    [out[30], out[31], out[32], out[33]]
}

/// ipvsadm --pe sip, as the kernel's ip_vs_pe_sip matches templates: a dialog's datagrams
/// from one client reach one server whatever port they come from; the same Call-ID from
/// another client is that client's own call (scheduled anew) unless the persistence mask
/// joins the two (`-M 0.0.0.0`: the Call-ID alone).
#[test]
fn sip_persistence_follows_the_call_id() {
    let (one, two) = ([198, 51, 100, 1], [203, 0, 113, 9]);
    let mut lab = Lab::new();
    let (v, a) = lab.run(0, &sip_invite(one, 5060, "abc@host"));
    assert_eq!(v, Verdict::Forward { port: 1 });
    let (_, again) = lab.run(0, &sip_invite(one, 5062, "abc@host"));
    assert_eq!(
        nat_server(&a),
        nat_server(&again),
        "the call from another port"
    );
    let (_, b) = lab.run(0, &sip_invite(two, 5070, "abc@host"));
    assert_ne!(
        nat_server(&a),
        nat_server(&b),
        "another client's call: rr's next"
    );
    let (_, b2) = lab.run(0, &sip_invite(two, 5072, "abc@host"));
    assert_eq!(nat_server(&b), nat_server(&b2));
    // -M 0.0.0.0: one template per Call-ID whoever sends it.
    let mut lab = Lab::new();
    if let Some(sip) = lab.snap.services.iter_mut().find(|s| s.pe_sip) {
        sip.persistence = sip.persistence.map(|(timeout, _)| (timeout, 0));
    }
    let (_, a) = lab.run(0, &sip_invite(one, 5060, "abc@host"));
    let (_, b) = lab.run(0, &sip_invite(two, 5070, "abc@host"));
    assert_eq!(nat_server(&a), nat_server(&b));
    let (_, c) = lab.run(0, &sip_invite(one, 5062, " other-call "));
    assert_ne!(nat_server(&a), nat_server(&c), "a new Call-ID: rr's next");
}

/// A SIP template reaches the backup and keeps its calls there: from an rvs master
/// (with the call's second datagram) and from a kernel master (its Call-ID in the
/// persistence-engine options); a call the backup never heard of is scheduled anew.
#[test]
fn sip_templates_are_synced() {
    use rvs_core::sync::{decode, decode_keeping, encode_with, SyncChannel};

    use std::sync::Arc;
    let client = [198, 51, 100, 1];
    let mut master = Lab::new();
    let ch = master.sync_master();
    // rr: "warm-up" takes the first server, "abc@host" the second.
    let (_, warm) = master.run(0, &sip_invite(client, 5060, "warm-up"));
    let invite = sip_invite(client, 5062, "abc@host");
    let (_, on_master) = master.run(0, &invite);
    assert_ne!(nat_server(&warm), nat_server(&on_master));
    // The flow's second datagram: the flow and its template are sent.
    master.run(0, &invite);
    let mut notes = Vec::new();
    while let Some(n) = ch.outbox.pop() {
        notes.push(n);
    }
    // The template goes as the kernel's master sends one: an IPv4 entry for the client,
    // the Call-ID and "sip" in the persistence-engine options.
    let messages = encode_with(3, &notes, 1472, Some(&ch.sip_calls));
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    let mut pe = vec![2, 8];
    pe.extend_from_slice(b"abc@host");
    pe.extend_from_slice(&[3, 3, b's', b'i', b'p']);
    let at = m
        .windows(pe.len())
        .position(|w| w == &pe[..])
        .expect("PE options");
    let entry = at - 36;
    assert_eq!(m[entry], 0, "an IPv4 entry");
    assert_eq!(m[entry + 24..entry + 28], client, "the client's address");
    assert_eq!(m[entry + 2..entry + 4], [0, 36 + 10 + 5], "its size");
    let backup_ch = Arc::new(SyncChannel::default());
    let mut backup = Lab::new();
    backup.engine.sync = Some(backup_ch.clone());
    for c in decode_keeping(m, Some(&backup_ch.sip_calls)).unwrap().1 {
        assert!(backup
            .engine
            .install_synced(&backup.snap, &backup.loads, 1, &c));
    }
    // The backup holds the call too (to list it, and to send it on as master).
    let key = rvs_core::sip::template_addr(b"abc@host", &{
        let mut a = [0u8; 16];
        a[10..12].copy_from_slice(&[0xff, 0xff]);
        a[12..].copy_from_slice(&client);
        a
    });
    assert_eq!(
        backup_ch.sip_calls.find(&key).map(|c| c.call_id().to_vec()),
        Some(b"abc@host".to_vec())
    );
    // The call from a new port (a new flow): the template's server.
    let (_, on_backup) = backup.run(0, &sip_invite(client, 5064, "abc@host"));
    assert_eq!(nat_server(&on_backup), nat_server(&on_master));
    // A kernel master's template for another call, to the first server.
    let first = nat_server(&warm);
    // (IPv4 UDP, TEMPLATE|MASQ, cport 0, vport 5060, dport the server's as the fixture
    // lists it: 0, the service's.)
    let mut entry: Vec<u8> = vec![0, 17, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x13, 0xc4, 0, 0];
    entry.extend([0, 0, 0, 0, 0, 0, 1, 0x68]);
    entry.extend(client.iter().chain(&[192, 168, 1, 107]).chain(&first));
    entry.extend([2, 8]);
    entry.extend(b"k-call@x");
    entry.extend([3, 3]);
    entry.extend(b"sip");
    let size = entry.len() as u16;
    entry[2..4].copy_from_slice(&size.to_be_bytes());
    let mut msg = vec![0, 3, 0, 0, 1, 1, 0, 0];
    msg.extend(entry);
    let size = msg.len() as u16;
    msg[2..4].copy_from_slice(&size.to_be_bytes());
    let mut fresh = Lab::new();
    for c in decode(&msg).unwrap().1 {
        assert!(fresh
            .engine
            .install_synced(&fresh.snap, &fresh.loads, 1, &c));
    }
    // (A UDP template is assured by its server's answer, which none of these had.)
    assert!(fresh
        .engine
        .table
        .iter()
        .all(|(_, c)| c.is_template() && !c.assured));
    // rr alone would give a first call the first server: the template says so too, and
    // the second call goes by rr to the other, then the kernel's call to its template's.
    let (_, other) = fresh.run(0, &sip_invite(client, 5070, "new-call"));
    assert_eq!(nat_server(&other), first);
    let (_, kernel_call) = fresh.run(0, &sip_invite(client, 5072, "k-call@x"));
    assert_eq!(nat_server(&kernel_call), first);
    let (_, next) = fresh.run(0, &sip_invite(client, 5074, "next-call"));
    assert_ne!(nat_server(&next), first);
}

/// A datagram without DF that fills the client side's MTU: wrapped, its outer header (no
/// DF, a fresh identification each) is one MTU too long, so it leaves in two outer
/// fragments, as the kernel's output sends IPVS's tunnelled packets. Each worker numbers
/// its outer headers apart from the others.
#[test]
fn tun_without_df_over_the_mtu_leaves_in_outer_fragments() {
    for (me, workers, first_ident) in [(0, 1, 1u16), (1, 2, 3)] {
        let mut lab = Lab::new();
        lab.engine.set_owner(me, workers);
        let mut input = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CLIENT, [192, 168, 1, 102], 64)
            .udp(5353, 53)
            .write(&mut input, &[7u8; 1472])
            .unwrap();
        clear_df(&mut input);
        for n in 0..2u16 {
            let (v, out) = lab.run(0, &input);
            assert_eq!(v, Verdict::Fragment { port: 1, mtu: 1500 });
            let ident = first_ident + n * workers as u16;
            let pieces = cut_ipv4(&out, 1500);
            let want = fragments4(
                (PORT1_MAC, RS2_MAC),
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                64,
                4,
                ident,
                &input[14..],
                1500,
            );
            assert_eq!(want.len(), 2);
            assert_eq!(pieces, want, "outer fragments, identification {ident}");
        }
    }
    // With DF the sender hears of the MTU instead (below); with a larger MTU it fits.
    let mut lab = Lab::new();
    lab.snap.ports[1].mtu = 1520;
    let mut input = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 102], 64)
        .udp(5353, 53)
        .write(&mut input, &[7u8; 1472])
        .unwrap();
    assert_eq!(lab.run(0, &input).0, Verdict::Forward { port: 1 });
}

/// IPVS's pmtu_disc off: a tunnelled IPv4 datagram's DF is not copied to the outer header,
/// which takes an identification and is fragmented where too big (the kernel fragments
/// rather than send "fragmentation needed"); the inner header keeps its DF. IPv6 is not
/// concerned (it gets "packet too big" either way).
#[test]
fn tun_with_pmtu_disc_off_fragments_the_outer_header_despite_df() {
    let mut lab = Lab::new();
    lab.snap.pmtu_disc = false;
    let mut input = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 102], 64)
        .udp(5353, 53)
        .write(&mut input, &[7u8; 1472])
        .unwrap();
    assert_ne!(input[20] & 0x40, 0, "the client's datagram has DF");
    let (v, out) = lab.run(0, &input);
    assert_eq!(v, Verdict::Fragment { port: 1, mtu: 1500 });
    let pieces = cut_ipv4(&out, 1500);
    let want = fragments4(
        (PORT1_MAC, RS2_MAC),
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        64,
        4,
        1,
        &input[14..],
        1500,
    );
    assert_eq!(
        pieces, want,
        "two outer fragments of the datagram with its DF inside"
    );
    // One that fits leaves whole, its outer header without DF, numbered.
    let mut small = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 102], 64)
        .udp(5354, 53)
        .write(&mut small, &[7u8; 100])
        .unwrap();
    let (v, out) = lab.run(0, &small);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out[20] & 0x40, 0, "outer without DF");
    assert_eq!(
        u16::from_be_bytes([out[18], out[19]]),
        2,
        "its identification"
    );
    assert_ne!(out[34 + 6] & 0x40, 0, "the inner keeps DF");
    // pmtu_disc on (the default): "fragmentation needed", as below.
    lab.snap.pmtu_disc = true;
    let (v, out) = lab.run(0, &input);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        (out[23], out[34]),
        (1, 3),
        "ICMP destination unreachable to the client"
    );
}

#[test]
fn tun_too_big_with_df_sends_frag_needed_to_the_client() {
    let mut lab = Lab::new();
    let mut input = Vec::new();
    let payload = vec![7u8; 1472]; // 20 + 8 + 1472 = 1500; +20 outer > 1500
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 102], 64)
        .udp(5353, 53)
        .write(&mut input, &payload)
        .unwrap();
    let quote = input[14..14 + 28].to_vec();
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC, GW_MAC)
        .ipv4([192, 168, 1, 102], CLIENT, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 },
        ))
        .write(&mut expected, &quote)
        .unwrap();
    // etherparse sets DF on the ICMP's own header; rvs does not: compare all but that.
    let (v, out) = lab.run(0, &input);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let h = etherparse::PacketHeaders::from_ethernet_slice(&out).unwrap();
    let e = etherparse::PacketHeaders::from_ethernet_slice(&expected).unwrap();
    assert_eq!(h.link, e.link);
    assert_eq!(h.transport, e.transport, "ICMP type, MTU and checksum");
    assert_eq!(h.payload.slice(), &quote[..]);
    let etherparse::NetHeaders::Ipv4(ip4, _) = h.net.unwrap() else {
        panic!()
    };
    assert_eq!(
        (ip4.source, ip4.destination, ip4.header_checksum),
        ([192, 168, 1, 102], CLIENT, ip4.calc_header_checksum()),
        "from the VIP the client addressed"
    );
    assert_eq!(lab.engine.counters().icmp_errors_sent, 1);
}

/// The lab with the clients' gateway (192.168.1.254) not resolved yet; `holding`: frames
/// may wait for it.
fn lab_without_gateway(holding: bool) -> Lab {
    let mut snap = snapshot();
    snap.neighbours.remove(&ip([192, 168, 1, 254]));
    let mut lab = Lab::with(
        snap,
        EngineConfig {
            conn_capacity: 1024,
            ..EngineConfig::default()
        },
    );
    lab.engine.set_holding(holding);
    lab
}

/// The gateway answers rvs's ARP request: the frames that waited for it, as they leave.
fn gateway_answers(lab: &mut Lab) -> Vec<(u16, Vec<u8>)> {
    let reply = arp_answer((GW_MAC, [192, 168, 1, 254]), (PORT0_MAC, [192, 168, 1, 1]));
    let _ = lab.run(0, &reply);
    let mut sent = Vec::new();
    lab.engine.release_held(&lab.snap, 1, |p, f, split| {
        assert_eq!(split, None, "whole frames");
        sent.push((p, f.to_vec()));
        true
    });
    sent
}

/// "Fragmentation needed" to a client whose next hop's MAC is not known yet (TUN sends
/// it nothing else, so nothing learned it): the error waits while an ARP request goes out,
/// and leaves as it would have once the gateway answers; a worker that cannot hold frames
/// at least asks.
#[test]
fn an_icmp_error_waits_for_its_neighbour() {
    let too_big = {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CLIENT, [192, 168, 1, 102], 64)
            .udp(5353, 53)
            .write(&mut f, &[7u8; 1472])
            .unwrap();
        f
    };
    let mut sent_at_once = None;
    for holding in [false, true] {
        let mut lab = Lab::new();
        lab.engine.set_holding(holding);
        let (v, first) = lab.run(0, &too_big);
        if holding {
            // With the MAC known, as it leaves at once.
            sent_at_once = Some(first.clone());
        }
        let mut lab = lab_without_gateway(holding);
        assert_eq!(v, Verdict::Forward { port: 0 });
        let (v, out) = lab.run(0, &too_big);
        assert_eq!(v, Verdict::Forward { port: 0 }, "holding {holding}");
        assert_eq!(
            &out[12..14],
            &[0x08, 0x06],
            "the frame became the ARP request"
        );
        assert_eq!(&out[38..42], &[192, 168, 1, 254]);
        let no_neighbour = lab.engine.counters().drops[DropReason::NoNeighbour as usize];
        assert_eq!(
            (lab.engine.held_len(), no_neighbour),
            if holding { (1, 0) } else { (0, 1) }
        );
        if !holding {
            continue;
        }
        let sent = gateway_answers(&mut lab);
        let want = sent_at_once.clone().unwrap();
        assert_eq!(want[23], 1, "an ICMP message");
        assert_eq!(sent, vec![(0, want)]);
        assert_eq!(lab.engine.counters().icmp_errors_sent, 1);
    }
}

/// A NAT server's "port unreachable" for a client whose next hop's MAC is not known yet
/// waits for it as the connection's own packets would, and leaves as it would have.
#[test]
fn a_relayed_icmp_error_waits_for_its_neighbour() {
    let mut query = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 110], 64)
        .udp(40000, 53)
        .write(&mut query, b"query")
        .unwrap();
    // The server's error about the datagram as it reached it.
    let error_from_server = |forwarded: &[u8]| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC)
            .ipv4([10, 0, 0, 2], CLIENT, 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut f, &forwarded[14..14 + 28])
            .unwrap();
        f
    };
    let mut lab = Lab::new();
    let (v, forwarded) = lab.run(0, &query);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let (v, at_once) = lab.run(1, &error_from_server(&forwarded));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&at_once[0..6], &GW_MAC);
    let mut lab = lab_without_gateway(true);
    let (_, forwarded) = lab.run(0, &query);
    let (v, out) = lab.run(1, &error_from_server(&forwarded));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        &out[12..14],
        &[0x08, 0x06],
        "the frame became the ARP request"
    );
    assert_eq!(lab.engine.held_len(), 1);
    let sent = gateway_answers(&mut lab);
    assert_eq!(sent, vec![(0, at_once)]);
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoNeighbour as usize],
        0
    );
}

/// NAT and DR respect the out port's MTU: a DF datagram too big gets "fragmentation
/// needed" with the MTU, one without DF leaves in fragments (rewritten first); a datagram
/// that fits is forwarded.
#[test]
fn nat_and_dr_respect_the_mtu() {
    for vip in [[192, 168, 1, 100], [192, 168, 1, 101]] {
        let mut lab = Lab::new();
        lab.snap.ports[1].mtu = 576;
        let frame = |len: usize, df: bool| {
            let mut f = tcp4(
                CLIENT_MAC,
                PORT0_MAC,
                CLIENT,
                vip,
                64,
                40000,
                80,
                true,
                false,
                &vec![1u8; len],
            );
            if !df {
                clear_df(&mut f);
            }
            f
        };
        let (v, out) = lab.run(0, &frame(1000, true));
        assert_eq!(v, Verdict::Forward { port: 0 }, "{vip:?}");
        let h = etherparse::PacketHeaders::from_ethernet_slice(&out).unwrap();
        let Some(etherparse::TransportHeader::Icmpv4(icmp)) = h.transport else {
            panic!("{h:?}")
        };
        assert_eq!(
            icmp.icmp_type,
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 576
                }
            )
        );
        let mut lab = Lab::new();
        lab.snap.ports[1].mtu = 576;
        let input = frame(1000, false);
        let (v, out) = lab.run(0, &input);
        assert_eq!(v, Verdict::Fragment { port: 1, mtu: 576 }, "{vip:?}");
        // Rewritten as a datagram that fits would be (NAT: to the server; DR: the MACs).
        let server = if vip == [192, 168, 1, 100] {
            [10, 0, 0, 2]
        } else {
            vip
        };
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&out[14..]).unwrap();
        assert_eq!((ip.destination(), ip.total_len()), (server, 1040));
        assert_eq!(&out[6..12], &PORT1_MAC);
        let pieces = cut_ipv4(&out, 576);
        let l4 = &out[34..];
        let macs = (PORT1_MAC, out[..6].try_into().unwrap());
        let want = fragments4(
            macs,
            CLIENT,
            server,
            ip.ttl(),
            6,
            ip.identification(),
            l4,
            576,
        );
        assert_eq!(
            pieces, want,
            "{vip:?}: the fragments of the rewritten datagram"
        );
        assert_eq!(
            lab.engine.counters().drops,
            [0; DropReason::COUNT],
            "nothing dropped"
        );
        assert_eq!(
            lab.run(0, &frame(500, true)).0,
            Verdict::Forward { port: 1 }
        );
    }
}

/// The client's SYN for 192.168.1.103:80 (persistent, all ports, NAT).
fn syn_to_persistent_service() -> Vec<u8> {
    tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 103],
        64,
        1000,
        80,
        true,
        false,
        b"",
    )
}

/// IPVS's ASSURED template state: a TCP template's once a connection it controls is
/// established, a UDP template's once its server answers; synced as the template's state
/// (a backup takes it), and what keeps a template when a flood evicts a later attempt.
#[test]
fn templates_are_assured_as_ipvs_assures_them() {
    use rvs_core::sync::{decode, encode};

    let mut lab = Lab::new();
    let ch = lab.sync_master();
    let template = |lab: &Lab, vip: [u8; 4]| {
        let t = lab
            .engine
            .table
            .iter()
            .find(|(_, c)| c.is_template() && c.vaddr[12..] == vip);
        t.map(|(_, c)| c.assured)
    };
    let tcp_vip = [192, 168, 1, 103];
    lab.run(0, &syn_to_persistent_service());
    assert_eq!(template(&lab, tcp_vip), Some(false), "after the SYN");
    let ack = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, tcp_vip, 64, 1000, 80, false, true, b"",
    );
    assert_eq!(lab.run(0, &ack).0, Verdict::Forward { port: 1 });
    assert_eq!(template(&lab, tcp_vip), Some(true), "established");
    // Sent with its first established connection, as ASSURED (state 1).
    let mut notes = Vec::new();
    while let Some(n) = ch.outbox.pop() {
        notes.push(n);
    }
    let sent = notes
        .iter()
        .find(|n| n.flags & rvs_core::sync::ipvs_flags::TEMPLATE != 0);
    assert_eq!(sent.map(|t| t.state), Some(1));
    let mut backup = Lab::new();
    for m in encode(3, &notes, 1472) {
        for c in decode(&m).unwrap().1 {
            assert!(backup
                .engine
                .install_synced(&backup.snap, &backup.loads, 1, &c));
        }
    }
    assert_eq!(template(&backup, tcp_vip), Some(true), "on the backup");
    // UDP (the SIP service, NAT): the client's datagrams leave it unassured, the server's
    // answer assures it.
    let sip_vip = [192, 168, 1, 107];
    let (_, out) = lab.run(0, &sip_invite(CLIENT, 5060, "call@x"));
    lab.run(0, &sip_invite(CLIENT, 5060, "call@x"));
    assert_eq!(
        template(&lab, sip_vip),
        Some(false),
        "two datagrams, no answer"
    );
    let server = nat_server(&out);
    let server_mac = if server == [10, 0, 0, 2] {
        RS2_MAC
    } else {
        RS3_MAC
    };
    let mut answer = Vec::new();
    PacketBuilder::ethernet2(server_mac, PORT1_MAC)
        .ipv4(server, CLIENT, 64)
        .udp(5060, 5060)
        .write(&mut answer, b"SIP/2.0 200 OK\r\ni: call@x\r\n\r\n")
        .unwrap();
    while ch.outbox.pop().is_some() {}
    assert_eq!(lab.run(1, &answer).0, Verdict::Forward { port: 0 });
    assert_eq!(template(&lab, sip_vip), Some(true), "answered");
    // Sent again, ASSURED now, with the flow.
    let resent = std::iter::from_fn(|| ch.outbox.pop())
        .find(|n| n.flags & rvs_core::sync::ipvs_flags::TEMPLATE != 0);
    assert_eq!(resent.map(|t| t.state), Some(1));
    // Its flow's later answers take the fast lane again (the mark is set once).
    assert_eq!(lab.run(1, &answer).0, Verdict::Forward { port: 0 });
}

#[test]
fn persistence_keeps_a_client_on_its_server_across_ports() {
    let mut lab = Lab::new();
    let a = syn_to_persistent_service();
    let b = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 103],
        64,
        1001,
        443,
        true,
        false,
        b"",
    );
    let other = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        [203, 0, 113, 9],
        [192, 168, 1, 103],
        64,
        1000,
        80,
        true,
        false,
        b"",
    );
    let dst_ip = |f: &[u8]| [f[30], f[31], f[32], f[33]];
    let (_, out_a) = lab.run(0, &a);
    let (_, out_b) = lab.run(0, &b);
    let (_, out_o) = lab.run(0, &other);
    assert_eq!(dst_ip(&out_a), [10, 0, 0, 3], "rr: first in list");
    assert_eq!(
        dst_ip(&out_b),
        [10, 0, 0, 3],
        "same client, other port: the template"
    );
    assert_eq!(dst_ip(&out_o), [10, 0, 0, 2], "another client: rr moves on");
    assert_eq!(
        u16::from_be_bytes([out_b[36], out_b[37]]),
        443,
        "all-ports service keeps the port"
    );
    assert_eq!(lab.loads[6].persistent(), 1);
}

#[test]
fn a_template_outliving_its_timeout_is_rearmed_for_the_persistence_timeout() {
    let mut lab = Lab::new();
    lab.engine.timeouts.tcp[3] = 1000; // SYN_RECV outlives the 360 s template
    let syn = syn_to_persistent_service();
    assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
    let template = |lab: &Lab| {
        lab.engine
            .table
            .iter()
            .find(|(_, c)| c.is_template())
            .map(|(_, c)| c.expires)
    };
    assert_eq!(template(&lab), Some(361));
    lab.engine.expire(362, 256, &lab.loads);
    assert_eq!(
        template(&lab),
        Some(362 + 360),
        "re-armed for -p 360, as IPVS"
    );
    lab.engine.expire(1002, 256, &lab.loads);
    lab.engine.expire(1002 + 360, 256, &lab.loads);
    assert_eq!(template(&lab), None, "gone once it controls nothing");
    assert_eq!(lab.engine.table.len(), 0);
}

#[test]
fn every_truncation_is_dropped_without_panic() {
    let mut lab = Lab::new();
    let frames = [
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            CLIENT,
            [192, 168, 1, 100],
            64,
            40000,
            80,
            true,
            false,
            b"data",
        ),
        tcp6(CLIENT_MAC, PORT0_MAC, CLIENT6, VIP6, 64, 50000, 80, b"data"),
    ];
    for f in frames {
        for cut in 0..f.len() {
            let (v, _) = lab.run(0, &f[..cut]);
            assert!(
                matches!(v, Verdict::Drop(_) | Verdict::ToHost),
                "cut {cut}: {v:?}"
            );
        }
    }
}

#[test]
fn no_server_available_gets_port_unreachable() {
    let mut lab = Lab::new();
    let input = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 104],
        64,
        40010,
        80,
        true,
        false,
        b"payload",
    );
    let (v, out) = lab.run(0, &input);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let h = etherparse::PacketHeaders::from_ethernet_slice(&out).unwrap();
    let Some(etherparse::TransportHeader::Icmpv4(icmp)) = h.transport else {
        panic!("{h:?}")
    };
    assert_eq!(
        icmp.icmp_type,
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port
        )
    );
    assert_eq!(
        icmp.checksum,
        icmp.icmp_type.calc_checksum(h.payload.slice())
    );
    assert_eq!(
        h.payload.slice(),
        &input[14..14 + 28],
        "IPv4 header + 8 bytes quoted"
    );
    let etherparse::NetHeaders::Ipv4(ip4, _) = h.net.unwrap() else {
        panic!()
    };
    assert_eq!((ip4.source, ip4.destination), ([192, 168, 1, 104], CLIENT));
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoServer as usize],
        1
    );
}

/// A tagged SYN (VLAN 100) with no server to take it: the port unreachable error keeps the
/// tag, as every reply the appliance makes.
#[test]
fn icmp_errors_keep_the_request_s_vlan_tag() {
    let mut lab = Lab::new();
    let input = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 104],
        64,
        40010,
        80,
        true,
        false,
        b"payload",
    );
    let (_, untagged) = Lab::new().run(0, &input);
    let (v, out) = lab.run(0, &vlan_tagged(&input));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(out, vlan_tagged(&untagged));
    assert_eq!(&out[12..16], &[0x81, 0x00, 0x00, 100]);
}

#[test]
fn both_directions_of_a_nat_flow_have_the_same_owner() {
    use rvs_core::engine::flow_owner;
    use rvs_core::rss;
    let lab = Lab::new();
    for n in [2usize, 3, 4, 8] {
        let mut owners = std::collections::HashSet::new();
        for client_last in 1..=50u8 {
            let client = [198, 51, 100, client_last];
            let syn = tcp4(
                CLIENT_MAC,
                PORT0_MAC,
                client,
                [192, 168, 1, 100],
                64,
                40000 + u16::from(client_last),
                80,
                true,
                false,
                b"",
            );
            let reply = tcp4(
                RS2_MAC,
                PORT1_MAC,
                [10, 0, 0, 2],
                client,
                64,
                8080,
                40000 + u16::from(client_last),
                true,
                true,
                b"",
            );
            let a = flow_owner(&lab.snap, &syn, n, &Default::default()).unwrap();
            assert_eq!(
                Some(a),
                flow_owner(&lab.snap, &reply, n, &Default::default())
            );
            assert!(a < n);
            // The queue a NIC puts both on: the client port hashes the SYN's source, the
            // server port the reply's destination (Toeplitz bit by bit, 128-entry table).
            let reference = |addr: [u8; 4], port: u16| {
                let (t, len) = rss::one_end(addr.into(), port);
                usize::from(
                    rss::Reta::spread(128, n as u16)
                        .queue(rss::toeplitz(&rss::VERIFICATION_KEY, &t[..len])),
                )
            };
            assert_eq!(
                a,
                reference(client, 40000 + u16::from(client_last)),
                "SYN on the client port"
            );
            owners.insert(a);
        }
        assert_eq!(owners.len(), n, "50 clients reach every one of {n} workers");
    }
    assert_eq!(
        flow_owner(&lab.snap, &[0u8; 10], 4, &Default::default()),
        None,
        "malformed: the receiving worker"
    );
}

/// The frame with an 802.1Q tag (VLAN 100) after its MACs.
fn vlan_tagged(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
    f.extend_from_slice(&frame[12..]);
    f
}

/// A broadcast ARP request from `sha`/`spa` for the appliance's inside address.
fn arp_from(sha: [u8; 6], spa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f
}

/// 4,200 spoofed ARPs from hosts nobody asked about fill nothing: a real server's ARP is
/// still learned, and its connections go straight to it.
#[test]
fn spoofed_arps_do_not_crowd_out_real_servers() {
    let mut lab = Lab::new();
    for i in 0..4200u32 {
        let b = i.to_be_bytes();
        let _ = lab.run(
            1,
            &arp_from([2, 0xee, b[0], b[1], b[2], b[3]], [172, 16, b[2], b[3]]),
        );
    }
    let server_mac = [2, 0xaa, 0, 0, 0, 9];
    let _ = lab.run(1, &arp_from(server_mac, [10, 0, 0, 9]));
    let syn = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 105],
        64,
        40000,
        80,
        true,
        false,
        b"",
    );
    let (v, out) = lab.run(0, &syn);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        &out[..6],
        &server_mac,
        "to the server itself, not an ARP request"
    );
    assert_eq!(&out[12..14], &[0x08, 0x00]);
}

/// A real server's address claimed by an ARP on the clients' segment (port 0) is not
/// learned: the server's segment is port 1's. Its connections still ask for it there, and
/// its own ARP there is learned.
#[test]
fn a_neighbour_is_learned_only_on_its_own_segment() {
    let mut lab = Lab::new();
    let spoofer = [2, 0xee, 0, 0, 0, 66];
    let _ = lab.run(0, &arp_from(spoofer, [10, 0, 0, 9]));
    assert_eq!(lab.engine.counters().neighbours_ignored, 1);
    let syn = |port: u16| {
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            CLIENT,
            [192, 168, 1, 105],
            64,
            port,
            80,
            true,
            false,
            b"",
        )
    };
    // Held: what leaves is the ARP request for the server on port 1.
    let (v, out) = lab.run(0, &syn(40000));
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        (&out[..6], &out[12..14]),
        (&[0xff; 6][..], &[0x08, 0x06][..])
    );
    let server_mac = [2, 0xaa, 0, 0, 0, 9];
    let _ = lab.run(1, &arp_from(server_mac, [10, 0, 0, 9]));
    assert_eq!(lab.engine.counters().neighbours_ignored, 1);
    let (v, out) = lab.run(0, &syn(40001));
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[..6], &server_mac, "learned on its own segment");
    // Heard again on the wrong port, the learned entry stays.
    let _ = lab.run(0, &arp_from(spoofer, [10, 0, 0, 9]));
    assert_eq!(lab.engine.counters().neighbours_ignored, 2);
    let (_, out) = lab.run(0, &syn(40002));
    assert_eq!(&out[..6], &server_mac);
}

/// An ARP request for a VIP in VLAN 100: the reply keeps the tag, its body after it.
#[test]
fn arp_replies_keep_the_request_s_vlan_tag() {
    let mut lab = Lab::new();
    let arp = |op: u8, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]| {
        let mut b = vec![0, 1, 8, 0, 6, 4, 0, op];
        b.extend_from_slice(&sha);
        b.extend_from_slice(&spa);
        b.extend_from_slice(&tha);
        b.extend_from_slice(&tpa);
        b
    };
    let mut req = vec![0xff; 6];
    req.extend_from_slice(&CLIENT_MAC);
    req.extend_from_slice(&[0x08, 0x06]);
    req.extend(arp(1, CLIENT_MAC, CLIENT, [0; 6], [192, 168, 1, 100]));
    let mut rep = CLIENT_MAC.to_vec();
    rep.extend_from_slice(&PORT0_MAC);
    rep.extend_from_slice(&[0x08, 0x06]);
    rep.extend(arp(2, PORT0_MAC, [192, 168, 1, 100], CLIENT_MAC, CLIENT));
    assert_eq!(
        lab.run(0, &req),
        (Verdict::Forward { port: 0 }, rep.clone())
    );
    assert_eq!(
        lab.run(0, &vlan_tagged(&req)),
        (Verdict::Forward { port: 0 }, vlan_tagged(&rep))
    );
}

#[test]
fn neighbour_solicitation_for_a_vip_is_answered() {
    use etherparse::Icmpv6Type;
    let mut lab = Lab::new();
    let requester: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc];
    let solicited: [u8; 16] = [
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, VIP6[13], VIP6[14], VIP6[15],
    ];
    let mut ns_body = VIP6.to_vec();
    ns_body.extend_from_slice(&[1, 1]);
    ns_body.extend_from_slice(&CLIENT_MAC);
    let mut ns = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, [0x33, 0x33, 0xff, 0, 1, 0])
        .ipv6(requester, solicited, 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        })
        .write(&mut ns, &ns_body)
        .unwrap();
    let mut na_body = VIP6.to_vec();
    na_body.extend_from_slice(&[2, 1]);
    na_body.extend_from_slice(&PORT0_MAC);
    let mut na = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC, CLIENT_MAC)
        .ipv6(VIP6, requester, 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 136,
            code_u8: 0,
            bytes5to8: [0x60, 0, 0, 0],
        })
        .write(&mut na, &na_body)
        .unwrap();
    assert_eq!(lab.run(0, &ns), (Verdict::Forward { port: 0 }, na.clone()));
    // Tagged (VLAN 100), the advertisement carries the same tag.
    assert_eq!(
        lab.run(0, &vlan_tagged(&ns)),
        (Verdict::Forward { port: 0 }, vlan_tagged(&na))
    );
    // A solicitation for an address that is not ours goes to the host.
    let mut other = ns.clone();
    other[14 + 40 + 8 + 10] ^= 1; // another address (VIP6 ^ ::100 is a VIP too)
    let (v, _) = lab.run(0, &other);
    assert_eq!(v, Verdict::ToHost);
}

/// IPVS's schedule_icmp: an ICMP error about a reply this node has no connection for (its
/// flow went through another node behind ECMP, or expired here) is scheduled as the flow it
/// quotes would be and reaches that flow's server (NAT rewritten, DR and TUN unchanged);
/// off, it is the host's. The connection it makes lives 3 s unless the flow's packets come.
#[test]
fn schedule_icmp_takes_an_error_about_an_unknown_flow_to_the_flow_s_server() {
    use etherparse::{icmpv4::DestUnreachableHeader, Icmpv4Type};
    let frag_needed =
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400,
        });
    let router = [203, 0, 113, 1];
    // A router's "fragmentation needed" about the reply VIP:vport -> client:cport.
    let too_big = |vip: [u8; 4], vport: u16, cport: u16| {
        let reply = tcp4(
            PORT0_MAC, GW_MAC, vip, CLIENT, 63, vport, cport, false, true, b"",
        );
        let quote = &reply[14..42];
        icmp4(
            (GW_MAC, PORT0_MAC),
            router,
            vip,
            64,
            frag_needed.clone(),
            quote,
        )
    };
    // NAT: the reply VIP:80 -> client:40000.
    let vip = [192, 168, 1, 100];
    let input = too_big(vip, 80, 40000);
    let as_server_sent = tcp4(
        PORT0_MAC,
        GW_MAC,
        [10, 0, 0, 2],
        CLIENT,
        63,
        8080,
        40000,
        false,
        true,
        b"",
    );
    let expected = icmp4(
        (PORT1_MAC, RS2_MAC),
        router,
        [10, 0, 0, 2],
        63,
        frag_needed.clone(),
        &as_server_sent[14..42],
    );
    let ack = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, 40000, 80, false, true, b"",
    );
    let mut lab = Lab::new();
    assert_eq!(lab.run(0, &input).0, Verdict::ToHost, "off: the host's");
    assert_eq!(lab.run(0, &ack).0, Verdict::Drop(DropReason::NoConnection));
    lab.snap.schedule_icmp = true;
    assert_eq!(
        lab.run_at(10, 0, &input),
        (Verdict::Forward { port: 1 }, expected.clone())
    );
    let c = lab.engine.counters();
    assert_eq!((c.icmp_scheduled, c.new_conns), (1, 1));
    assert_eq!((lab.loads[0].active(), lab.loads[0].inactive()), (0, 1));
    // Its connection lives 3 s without packets of its own.
    lab.engine.expire(12, 64, &lab.loads);
    assert_eq!(lab.engine.table.len(), 1);
    lab.engine.expire(14, 64, &lab.loads);
    assert_eq!(lab.engine.table.len(), 0, "gone after 3 s");
    assert_eq!(
        lab.run_at(14, 0, &ack).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    // Made again, the flow's own segment follows it.
    assert_eq!(
        lab.run_at(20, 0, &input),
        (Verdict::Forward { port: 1 }, expected)
    );
    assert_eq!(lab.run_at(21, 0, &ack).0, Verdict::Forward { port: 1 });
    // A director paused (backup_only), a port no service has: not scheduled.
    let mut other = Lab::new();
    other.snap.schedule_icmp = true;
    other.snap.director_paused = true;
    assert_eq!(other.run(0, &input).0, Verdict::ToHost, "paused");
    other.snap.director_paused = false;
    let no_service = too_big(vip, 81, 40000);
    assert_eq!(other.run(0, &no_service).0, Verdict::ToHost, "no service");
    assert_eq!(other.engine.counters().icmp_scheduled, 0);
    // Full NAT: the server knows the flow by a local end this node would not give again.
    let mut fnat = Lab::router();
    fnat.snap.schedule_icmp = true;
    assert_eq!(fnat.run(0, &input).0, Verdict::ToHost, "full NAT");
    assert_eq!(fnat.engine.counters().new_conns, 0);
    // IPv6: "packet too big" about VIP6:80 -> client, to the NAT server with both headers
    // rewritten.
    let router6 = [0x20, 1, 0xd, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let too_big6 = |smac, dmac, dst, hop, quote: &[u8]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(smac, dmac)
            .ipv6(router6, dst, hop)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1400 })
            .write(&mut v, quote)
            .unwrap();
        v
    };
    let reply6 = tcp6(PORT0_MAC, GW6_MAC, VIP6, CLIENT6, 63, 80, 40000, b"");
    let from_server6 = tcp6(PORT0_MAC, GW6_MAC, RS6, CLIENT6, 63, 8080, 40000, b"");
    let input6 = too_big6(GW6_MAC, PORT0_MAC, VIP6, 64, &reply6[14..62]);
    let expected6 = too_big6(PORT1_MAC, RS6_MAC, RS6, 63, &from_server6[14..62]);
    assert_eq!(
        other.run(0, &input6),
        (Verdict::Forward { port: 1 }, expected6)
    );
    assert_eq!(other.engine.counters().icmp_scheduled, 1);

    // DR behind ECMP with mh: whichever node gets the error sends it to the server the
    // flow's own node chose, unchanged but for the MACs. TUN: in IPIP to the server.
    let dr_vip = [192, 168, 1, 101];
    let ecmp = || {
        let snap = snapshot_with(|services| {
            services[1]
                .servers
                .push(rs(21, [10, 0, 0, 2], 0, ForwardMethod::Dr));
            let mh = SchedKind::Mh {
                fallback: false,
                port: true,
                size: 251,
            };
            services[1] = Service::new(
                1,
                6,
                ip(dr_vip),
                80,
                None,
                mh,
                None,
                services[1].servers.clone(),
            );
        });
        let mut lab = Lab::with(
            snap,
            EngineConfig {
                conn_capacity: 1024,
                ..EngineConfig::default()
            },
        );
        lab.snap.schedule_icmp = true;
        lab
    };
    let (mut flow_node, mut error_node) = (ecmp(), ecmp());
    let mut servers_seen = std::collections::BTreeSet::new();
    for cport in 40000..40016 {
        let syn = tcp4(
            CLIENT_MAC, PORT0_MAC, CLIENT, dr_vip, 64, cport, 80, true, false, b"",
        );
        let (v, out) = flow_node.run(0, &syn);
        assert_eq!(v, Verdict::Forward { port: 1 });
        let server_mac: [u8; 6] = out[..6].try_into().unwrap();
        servers_seen.insert(server_mac);
        let input = too_big(dr_vip, 80, cport);
        let mut expected = input.clone();
        expected[..6].copy_from_slice(&server_mac);
        expected[6..12].copy_from_slice(&PORT1_MAC);
        assert_eq!(
            error_node.run(0, &input),
            (Verdict::Forward { port: 1 }, expected),
            "{cport}"
        );
    }
    assert_eq!(servers_seen.len(), 2, "both servers chosen over the ports");
    let tun_vip = [192, 168, 1, 102];
    let mut reply = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC, GW_MAC)
        .ipv4(tun_vip, CLIENT, 63)
        .udp(53, 5353)
        .write(&mut reply, b"answer")
        .unwrap();
    let unreach = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let input = icmp4(
        (GW_MAC, PORT0_MAC),
        CLIENT,
        tun_vip,
        64,
        unreach,
        &reply[14..42],
    );
    let mut expected = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC, RS2_MAC)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .write(&mut expected, IpNumber(4), &input[14..])
        .unwrap();
    assert_eq!(
        error_node.run(0, &input),
        (Verdict::Forward { port: 1 }, expected)
    );
}

#[test]
fn icmp_errors_about_a_nat_connection_cross_with_the_quoted_header_rewritten() {
    use etherparse::{icmpv4::DestUnreachableHeader, Icmpv4Type};
    use rvs_core::engine::flow_owner;
    let mut lab = Lab::new();
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
    // The server answers the SYN (client -> RIP:8080, TTL 63) with port unreachable.
    let seen_by_server = tcp4(
        PORT1_MAC,
        RS2_MAC,
        CLIENT,
        [10, 0, 0, 2],
        63,
        40000,
        8080,
        true,
        false,
        b"",
    );
    let as_sent = tcp4(
        PORT1_MAC,
        RS2_MAC,
        CLIENT,
        [192, 168, 1, 100],
        63,
        40000,
        80,
        true,
        false,
        b"",
    );
    let unreach = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
    let input = icmp4(
        (RS2_MAC, PORT1_MAC),
        [10, 0, 0, 2],
        CLIENT,
        64,
        unreach.clone(),
        &seen_by_server[14..42],
    );
    let expected = icmp4(
        (PORT0_MAC, GW_MAC),
        [192, 168, 1, 100],
        CLIENT,
        63,
        unreach,
        &as_sent[14..42],
    );
    assert_eq!(
        flow_owner(&lab.snap, &input, 4, &Default::default()),
        flow_owner(&lab.snap, &syn, 4, &Default::default()),
        "owned with its connection"
    );
    assert_eq!(lab.run(1, &input), (Verdict::Forward { port: 0 }, expected));

    // A router on the client side reports the reply (VIP:80 -> client) as timed out.
    let reply_sent = tcp4(
        PORT0_MAC,
        GW_MAC,
        [192, 168, 1, 100],
        CLIENT,
        63,
        80,
        40000,
        true,
        true,
        b"",
    );
    let reply_from_server = tcp4(
        PORT0_MAC,
        GW_MAC,
        [10, 0, 0, 2],
        CLIENT,
        63,
        8080,
        40000,
        true,
        true,
        b"",
    );
    let exceeded =
        Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit);
    let input = icmp4(
        (GW_MAC, PORT0_MAC),
        [203, 0, 113, 1],
        [192, 168, 1, 100],
        64,
        exceeded.clone(),
        &reply_sent[14..42],
    );
    let expected = icmp4(
        (PORT1_MAC, RS2_MAC),
        [203, 0, 113, 1],
        [10, 0, 0, 2],
        63,
        exceeded,
        &reply_from_server[14..42],
    );
    assert_eq!(
        flow_owner(&lab.snap, &input, 4, &Default::default()),
        flow_owner(&lab.snap, &syn, 4, &Default::default())
    );
    assert_eq!(lab.run(0, &input), (Verdict::Forward { port: 1 }, expected));

    // An error about no known connection is not forwarded.
    let stray = tcp4(
        PORT1_MAC,
        RS2_MAC,
        [198, 51, 100, 8],
        [10, 0, 0, 2],
        63,
        1,
        8080,
        true,
        false,
        b"",
    );
    let input = icmp4(
        (RS2_MAC, PORT1_MAC),
        [10, 0, 0, 2],
        [198, 51, 100, 8],
        64,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
        &stray[14..42],
    );
    assert_eq!(lab.run(1, &input).0, Verdict::Drop(DropReason::NotOurs));
}

#[test]
fn an_unknown_next_hop_is_resolved_by_arp() {
    let mut lab = Lab::new();
    let syn = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 105],
        64,
        40020,
        80,
        true,
        false,
        b"",
    );
    let (v, out) = lab.run(0, &syn);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out, who_has_rs9(), "the SYN became an ARP request");
    assert_eq!(
        lab.run(0, &syn).0,
        Verdict::Drop(DropReason::NoNeighbour),
        "at most one request a second"
    );
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoNeighbour as usize],
        2
    );
    // The reply is learned; the client's retransmitted SYN goes through.
    assert_eq!(lab.run(1, &rs9_is_at()).0, Verdict::ToHost);
    assert_eq!(
        lab.run(0, &syn),
        (Verdict::Forward { port: 1 }, syn_to_rs9(PORT1_MAC, RS9_MAC))
    );
}

const RS9_MAC: [u8; 6] = [2, 0xaa, 0, 0, 0, 9];

/// The client's SYN for 192.168.1.105:80 (rr to 10.0.0.9), with Ethernet `src` -> `dst`.
fn syn_to_rs9(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let (addr, ttl) = if dst == PORT0_MAC {
        ([192, 168, 1, 105], 64)
    } else {
        ([10, 0, 0, 9], 63)
    };
    tcp4(src, dst, CLIENT, addr, ttl, 40020, 80, true, false, b"")
}

/// 10.0.0.9's SYN-ACK to the client of `syn_to_rs9`: as it arrives (to port 1's MAC) or
/// as rvs sends it on (from port 0, to `dst_mac`).
fn rs9_reply(dst_mac: [u8; 6]) -> Vec<u8> {
    let (src_mac, addr, ttl) = if dst_mac == PORT1_MAC {
        (RS9_MAC, [10, 0, 0, 9], 64)
    } else {
        (PORT0_MAC, [192, 168, 1, 105], 63)
    };
    tcp4(
        src_mac, dst_mac, addr, CLIENT, ttl, 80, 40020, true, true, b"",
    )
}

/// rvs's ARP request for 10.0.0.9 out of port 1.
fn who_has_rs9() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&PORT1_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&PORT1_MAC);
    f.extend_from_slice(&[10, 0, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 0, 0, 9]);
    f
}

/// 10.0.0.9's answer to it.
fn rs9_is_at() -> Vec<u8> {
    rs9_answers_from(RS9_MAC)
}

/// 10.0.0.9's ARP answer, from `mac`.
fn rs9_answers_from(mac: [u8; 6]) -> Vec<u8> {
    arp_answer((mac, [10, 0, 0, 9]), (PORT1_MAC, [10, 0, 0, 1]))
}

/// An ARP reply: `from` (its MAC and address) tells `to` (rvs's port).
fn arp_answer(from: ([u8; 6], [u8; 4]), to: ([u8; 6], [u8; 4])) -> Vec<u8> {
    let mut f = to.0.to_vec();
    f.extend_from_slice(&from.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&from.0);
    f.extend_from_slice(&from.1);
    f.extend_from_slice(&to.0);
    f.extend_from_slice(&to.1);
    f
}

#[test]
fn real_servers_are_resolved_ahead_and_neighbours_shared_between_workers() {
    let rs9 = IpAddr::from([10, 0, 0, 9]);
    let mut lab = Lab::new();
    let mut hops = Vec::new();
    lab.engine.unresolved_hops(&lab.snap, 1, 32, &mut hops);
    assert!(hops.contains(&(1, rs9)), "{hops:?}");
    assert!(
        !hops.iter().any(|&(_, h)| h == IpAddr::from([10, 0, 0, 2])),
        "configured neighbours are known: {hops:?}"
    );
    // Worker 0 sends the request in a buffer of its own, once a second.
    let mut request = VecFrame::new(&[]);
    assert!(lab.engine.solicit(&lab.snap, 1, 1, rs9, &mut request));
    assert_eq!(request.bytes(), who_has_rs9());
    lab.engine.unresolved_hops(&lab.snap, 1, 32, &mut hops);
    assert!(!hops.contains(&(1, rs9)), "asked this second already");
    lab.engine.unresolved_hops(&lab.snap, 3, 32, &mut hops);
    assert!(hops.contains(&(1, rs9)), "asked again while unanswered");

    // The answer reaches one worker's queue: it learns, and has news for the others once.
    assert_eq!(lab.run(1, &rs9_is_at()).0, Verdict::ToHost);
    let mut news = Vec::new();
    lab.engine.take_news(|ip, mac, _| news.push((ip, mac)));
    assert_eq!(news, [(rs9, RS9_MAC)]);
    assert_eq!(lab.run(1, &rs9_is_at()).0, Verdict::ToHost);
    lab.engine.take_news(|ip, mac, _| news.push((ip, mac)));
    assert_eq!(news.len(), 1, "nothing new the second time");

    // Another worker that never saw the answer forwards the client's first SYN.
    let mut other = Lab::new();
    other.engine.learn_from_peer(rs9, RS9_MAC, 1);
    assert_eq!(
        other.run(0, &syn_to_rs9(CLIENT_MAC, PORT0_MAC)),
        (Verdict::Forward { port: 1 }, syn_to_rs9(PORT1_MAC, RS9_MAC))
    );
    other.engine.unresolved_hops(&other.snap, 5, 32, &mut hops);
    assert!(!hops.contains(&(1, rs9)));
    other.engine.take_news(|ip, mac, _| news.push((ip, mac)));
    assert_eq!(news.len(), 1, "what peers tell is not news again");
}

#[test]
fn an_established_connection_follows_its_next_hops_when_they_change() {
    let (moved, told, gw2) = (
        [2, 0xaa, 0, 0, 0, 0x99],
        [2, 0xaa, 0, 0, 0, 0x77],
        [2, 0xbb, 0, 0, 0, 2],
    );
    let to_rs9 = |syn: bool, dst_mac: [u8; 6]| {
        let (src_mac, addr, ttl) = if dst_mac == PORT0_MAC {
            (CLIENT_MAC, [192, 168, 1, 105], 64)
        } else {
            (PORT1_MAC, [10, 0, 0, 9], 63)
        };
        tcp4(
            src_mac, dst_mac, CLIENT, addr, ttl, 40020, 80, syn, !syn, b"",
        )
    };
    let reply = rs9_reply;
    let mut lab = Lab::new();
    assert_eq!(lab.run(1, &rs9_is_at()).0, Verdict::ToHost);
    let check = |lab: &mut Lab, port: u16, input: Vec<u8>, expected: Vec<u8>| {
        let out_port = 1 - port;
        assert_eq!(
            lab.run(port, &input),
            (Verdict::Forward { port: out_port }, expected)
        );
    };
    check(&mut lab, 0, to_rs9(true, PORT0_MAC), to_rs9(true, RS9_MAC));
    check(&mut lab, 1, reply(PORT1_MAC), reply(GW_MAC));
    check(
        &mut lab,
        0,
        to_rs9(false, PORT0_MAC),
        to_rs9(false, RS9_MAC),
    );
    // A new connection to the same server (another client port) goes where the first did.
    let opens = |lab: &mut Lab, sport: u16, mac: [u8; 6]| {
        let syn = |m: ([u8; 6], [u8; 6]), addr, ttl| {
            tcp4(m.0, m.1, CLIENT, addr, ttl, sport, 80, true, false, b"")
        };
        assert_eq!(
            lab.run(0, &syn((CLIENT_MAC, PORT0_MAC), [192, 168, 1, 105], 64)),
            (
                Verdict::Forward { port: 1 },
                syn((PORT1_MAC, mac), [10, 0, 0, 9], 63)
            ),
            "new connection from port {sport}"
        );
    };
    opens(&mut lab, 41000, RS9_MAC);
    // The server moves to another MAC (its ARP answer says so): the connection follows, and
    // so do new ones (no next hop remembered from before).
    assert_eq!(lab.run(1, &rs9_answers_from(moved)).0, Verdict::ToHost);
    check(&mut lab, 0, to_rs9(false, PORT0_MAC), to_rs9(false, moved));
    opens(&mut lab, 41001, moved);
    // Another worker heard of a newer one.
    lab.engine
        .learn_from_peer(IpAddr::from([10, 0, 0, 9]), told, 1);
    opens(&mut lab, 41002, told);
    check(&mut lab, 0, to_rs9(false, PORT0_MAC), to_rs9(false, told));
    // A new snapshot configures the gateway's new MAC: the replies follow it.
    lab.snap
        .neighbours
        .insert(IpAddr::from([192, 168, 1, 254]), gw2);
    lab.engine.adopt(&lab.snap);
    check(&mut lab, 1, reply(PORT1_MAC), reply(gw2));
    check(&mut lab, 0, to_rs9(false, PORT0_MAC), to_rs9(false, told));
    // A snapshot that configures the server's MAC: new connections take it at once.
    lab.snap
        .neighbours
        .insert(IpAddr::from([10, 0, 0, 9]), moved);
    lab.engine.adopt(&lab.snap);
    opens(&mut lab, 41003, moved);
}

#[test]
fn a_group_of_services_shares_persistence() {
    let mut lab = Lab::new();
    let dst = |f: &[u8]| [f[30], f[31], f[32], f[33]];
    let to = |client: [u8; 4], sport, port| {
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            client,
            [192, 168, 1, 106],
            64,
            sport,
            port,
            true,
            false,
            b"",
        )
    };
    let (_, a) = lab.run(0, &to(CLIENT, 1000, 80));
    let (_, b) = lab.run(0, &to(CLIENT, 1001, 443));
    assert_eq!(
        dst(&a),
        dst(&b),
        "the :443 service follows the template made through :80"
    );
    let (_, c) = lab.run(0, &to([203, 0, 113, 5], 1000, 443));
    assert_ne!(
        dst(&a),
        dst(&c),
        "another client: the group's one rr moves on"
    );
}

/// ipvsadm -o: every datagram of one UDP flow is scheduled on its own (rr alternates) and
/// leaves no connection behind.
#[test]
fn one_packet_scheduling_schedules_every_datagram() {
    use rvs_core::engine::{ForwardMethod, Service, Snapshot};
    use rvs_core::sched::SchedKind;
    let mut lab = Lab::new();
    let mut ops = Service::new(
        11,
        17,
        ip([192, 168, 1, 107]),
        53,
        None,
        SchedKind::Rr,
        None,
        vec![
            rs(14, [10, 0, 0, 3], 0, ForwardMethod::Dr),
            rs(15, [10, 0, 0, 2], 0, ForwardMethod::Dr),
        ],
    );
    ops.one_packet = true;
    let mut services = lab.snap.services.clone();
    services.push(ops);
    lab.snap = Snapshot::new(
        services,
        lab.snap.ports.clone(),
        lab.snap.routes.clone(),
        lab.snap.neighbours.clone(),
    );
    lab.engine.adopt(&lab.snap);
    let before = lab.engine.table.len();
    let mut q = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 107], 64)
        .udp(5353, 53)
        .write(&mut q, b"query")
        .unwrap();
    let macs: Vec<[u8; 6]> = (0..4)
        .map(|_| {
            let (v, out) = lab.run(0, &q);
            assert_eq!(v, Verdict::Forward { port: 1 });
            out[..6].try_into().unwrap()
        })
        .collect();
    assert_eq!(macs, vec![RS3_MAC, RS2_MAC, RS3_MAC, RS2_MAC]);
    assert_eq!(lab.engine.table.len(), before, "no connection kept");
    assert_eq!((lab.loads[14].inactive(), lab.loads[15].inactive()), (0, 0));
    assert_eq!(lab.engine.counters().dest_conns[14], 2);
}

/// A real server that is the appliance itself (IPVS's "Local"): the packet goes to the
/// host stack unchanged.
#[test]
fn a_local_real_server_hands_the_packet_to_the_host() {
    use rvs_core::engine::{ForwardMethod, Service, Snapshot};
    use rvs_core::sched::SchedKind;
    let mut lab = Lab::new();
    let local = Service::new(
        11,
        6,
        ip([192, 168, 1, 108]),
        80,
        None,
        SchedKind::Rr,
        None,
        vec![rs(14, [10, 0, 0, 1], 80, ForwardMethod::Nat)],
    );
    let mut services = lab.snap.services.clone();
    services.push(local);
    lab.snap = Snapshot::new(
        services,
        lab.snap.ports.clone(),
        lab.snap.routes.clone(),
        lab.snap.neighbours.clone(),
    );
    lab.engine.adopt(&lab.snap);
    let input = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 108],
        64,
        40100,
        80,
        true,
        false,
        b"",
    );
    assert_eq!(lab.run(0, &input), (Verdict::ToHost, input.clone()));
    assert_eq!(lab.engine.counters().dest_conns[14], 1);

    // A server at an address VRRP manages is the appliance while VRRP holds the address
    // here, not before; one at a loopback address always is.
    let floating = [10, 0, 0, 250];
    let to_vip = |last: u8, sport: u16| {
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            CLIENT,
            [192, 168, 1, last],
            64,
            sport,
            80,
            true,
            false,
            b"",
        )
    };
    let mut services = lab.snap.services.clone();
    for (id, last, server) in [(20, 109, floating), (21, 110, [127, 0, 0, 1])] {
        services.push(Service::new(
            id,
            6,
            ip([192, 168, 1, last]),
            80,
            None,
            SchedKind::Rr,
            None,
            vec![rs(id as usize, server, 80, ForwardMethod::Dr)],
        ));
    }
    lab.snap = Snapshot::new(
        services,
        lab.snap.ports.clone(),
        lab.snap.routes.clone(),
        lab.snap.neighbours.clone(),
    );
    lab.snap.set_floating([Floating::standby(ip(floating))]);
    lab.engine.adopt(&lab.snap);
    let (v, _) = lab.run(0, &to_vip(109, 40101));
    assert_ne!(
        v,
        Verdict::ToHost,
        "the peer holds {floating:?}: a remote server"
    );
    let loopback = to_vip(110, 40102);
    assert_eq!(lab.run(0, &loopback), (Verdict::ToHost, loopback.clone()));
    lab.snap.set_floating([Floating::held(ip(floating))]);
    lab.engine.adopt(&lab.snap);
    let held = to_vip(109, 40103);
    assert_eq!(lab.run(0, &held), (Verdict::ToHost, held.clone()));
    assert_eq!(lab.engine.counters().dest_conns[20], 2);
}

/// VRRP ownership: a VIP (and a floating gateway that is no VIP) held elsewhere is neither
/// answered by ARP nor forwarded (counted `standby`); once held, both are, and the gateway
/// is the appliance's own (the host's share); addresses VRRP does not manage are unchanged.
#[test]
fn vrrp_standby_addresses_are_dropped_until_held() {
    use rvs_testkit::fixtures::arp;
    let vip = [192, 168, 1, 100];
    let gateway = [10, 0, 0, 254];
    let mut lab = Lab::new();
    lab.snap
        .set_floating([Floating::standby(ip(vip)), Floating::standby(ip(gateway))]);
    let who_has = |target: [u8; 4]| {
        arp(
            1,
            (CLIENT_MAC, [0xff; 6]),
            (CLIENT_MAC, CLIENT),
            ([0; 6], target),
        )
    };
    let syn = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, 40000, 80, true, false, b"",
    );
    let standby = Verdict::Drop(DropReason::Standby);
    assert_eq!(lab.run(0, &who_has(vip)).0, standby);
    assert_eq!(lab.run(0, &who_has(gateway)).0, standby);
    assert_eq!(lab.run(0, &syn).0, standby);
    let to_gateway = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, gateway, 64, 40000, 22, true, false, b"",
    );
    assert_eq!(lab.run(0, &to_gateway).0, standby);
    assert_eq!(lab.engine.counters().drops[DropReason::Standby as usize], 4);
    assert_eq!(lab.engine.counters().new_conns, 0);
    // Another VIP of the appliance, not managed by VRRP, works as before.
    let (v, out) = lab.run(0, &who_has([192, 168, 1, 101]));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        &out[28..32],
        &[192, 168, 1, 101],
        "answered for the other VIP"
    );

    // MASTER now.
    lab.snap
        .set_floating([Floating::held(ip(vip)), Floating::held(ip(gateway))]);
    let (v, out) = lab.run(0, &who_has(vip));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        &out[22..28],
        &PORT0_MAC,
        "the port's MAC answers for the VIP"
    );
    let (v, out) = lab.run(0, &who_has(gateway));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&out[28..32], &gateway);
    assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
    assert_eq!(lab.run(0, &to_gateway).0, Verdict::ToHost);
    assert_eq!(lab.engine.counters().drops[DropReason::Standby as usize], 4);
}

/// An instance without accept mode (keepalived's `no_accept`, strict mode's default) that
/// is MASTER: its addresses are still answered by ARP, but what is sent to them (a virtual
/// server's SYN, a ping, the host's share of a floating gateway) is dropped, counted `no
/// accept mode`, and so is what the host sends from them; with accept mode, as before.
#[test]
fn no_accept_refuses_traffic_to_and_from_held_addresses() {
    use rvs_testkit::fixtures::arp;
    let vip = [192, 168, 1, 100];
    let gateway = [10, 0, 0, 254];
    let refused = |a: [u8; 4]| Floating {
        addr: ip(a),
        held: true,
        accept: false,
        vmac: None,
    };
    let mut lab = Lab::new();
    lab.snap.set_floating([refused(vip), refused(gateway)]);
    let who_has = arp(
        1,
        (CLIENT_MAC, [0xff; 6]),
        (CLIENT_MAC, CLIENT),
        ([0; 6], vip),
    );
    let (v, out) = lab.run(0, &who_has);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&out[22..28], &PORT0_MAC, "ARP is still answered");
    let syn = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, 40000, 80, true, false, b"",
    );
    let no_accept = Verdict::Drop(DropReason::NoAccept);
    assert_eq!(lab.run(0, &syn).0, no_accept);
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, vip, 9)
        .icmpv4_echo_request(7, 1)
        .write(&mut ping, b"abc")
        .unwrap();
    assert_eq!(lab.run(0, &ping).0, no_accept);
    let to_gateway = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, gateway, 64, 40000, 22, true, false, b"",
    );
    assert_eq!(lab.run(0, &to_gateway).0, no_accept);
    // The host's frames: from the VIP refused, from the port's own address not.
    let from_vip = tcp4(
        PORT0_MAC, CLIENT_MAC, vip, CLIENT, 64, 80, 40000, false, true, b"",
    );
    assert!(lab.engine.host_frame_refused(&lab.snap, &from_vip));
    let from_port = tcp4(
        PORT0_MAC,
        CLIENT_MAC,
        [192, 168, 1, 1],
        CLIENT,
        64,
        22,
        40000,
        false,
        true,
        b"",
    );
    assert!(!lab.engine.host_frame_refused(&lab.snap, &from_port));
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoAccept as usize],
        4
    );
    assert_eq!(lab.engine.counters().new_conns, 0);

    // Accept mode: balanced, and the host's again.
    lab.snap
        .set_floating([Floating::held(ip(vip)), Floating::held(ip(gateway))]);
    assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
    assert_eq!(lab.run(0, &to_gateway).0, Verdict::ToHost);
    assert!(!lab.engine.host_frame_refused(&lab.snap, &from_vip));
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoAccept as usize],
        4
    );
}

/// keepalived's use_vmac: while held, ARP for the instance's address on its port is
/// answered by the virtual router MAC (Ethernet source and sender); on another port by that
/// port's MAC; a frame for the host's stack sent to the virtual router MAC gets the port's
/// (the host twin's) MAC; once the address is the peer's, nothing answers.
#[test]
fn use_vmac_answers_with_the_virtual_router_mac() {
    use rvs_core::engine::Engine;
    use rvs_testkit::fixtures::arp;
    let vip = [192, 168, 1, 100];
    let vmac = [0, 0, 0x5e, 0, 1, 30];
    let mut lab = Lab::new();
    lab.snap.set_floating([Floating {
        addr: ip(vip),
        held: true,
        accept: true,
        vmac: Some((0, vmac)),
    }]);
    let who_has = |to_mac: [u8; 6]| {
        arp(
            1,
            (CLIENT_MAC, [0xff; 6]),
            (CLIENT_MAC, CLIENT),
            ([0; 6], vip),
        )
        .into_iter()
        .enumerate()
        .map(|(i, b)| if i < 6 { to_mac[i] } else { b })
        .collect::<Vec<u8>>()
    };
    let (v, out) = lab.run(0, &who_has([0xff; 6]));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&out[6..12], &vmac, "Ethernet source");
    assert_eq!(&out[22..28], &vmac, "ARP sender");
    let (v, out) = lab.run(1, &who_has([0xff; 6]));
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        &out[22..28],
        &lab.snap.ports[1].mac,
        "another port answers with its own"
    );
    // To the host: the twin's MAC (the port's).
    let mut to_host = who_has(vmac);
    Engine::to_host_mac(&lab.snap, 0, &mut to_host);
    assert_eq!(&to_host[..6], &PORT0_MAC);
    let mut elsewhere = who_has([2, 9, 9, 9, 9, 9]);
    Engine::to_host_mac(&lab.snap, 0, &mut elsewhere);
    assert_eq!(
        &elsewhere[..6],
        &[2, 9, 9, 9, 9, 9],
        "other MACs are left alone"
    );
    // The peer's now.
    lab.snap.set_floating([Floating::standby(ip(vip))]);
    assert_eq!(
        lab.run(0, &who_has([0xff; 6])).0,
        Verdict::Drop(DropReason::Standby)
    );
    let mut to_host = who_has(vmac);
    Engine::to_host_mac(&lab.snap, 0, &mut to_host);
    assert_eq!(
        &to_host[..6],
        &vmac,
        "a MAC no longer held is not rewritten"
    );
}

/// Connection sync over IPv6: a NAT and a DR connection of IPv6 VIPs go through the wire
/// format (IPv6 entries) into a backup, whose packets of them, mid-flow, leave as the
/// master's did; the server's reply through the NAT one too.
#[test]
fn ipv6_connections_continue_on_the_backup() {
    use rvs_core::sync::{decode, encode};

    let segment =
        |macs: ([u8; 6], [u8; 6]), ends: ([u8; 16], [u8; 16]), ports: (u16, u16), syn: bool| {
            let mut out = Vec::new();
            let tcp = PacketBuilder::ethernet2(macs.0, macs.1)
                .ipv6(ends.0, ends.1, 64)
                .tcp(ports.0, ports.1, 1000, 64000);
            let tcp = if syn { tcp.syn() } else { tcp.ack(5000) };
            tcp.write(&mut out, if syn { b"" } else { b"data" })
                .unwrap();
            out
        };
    let mut master = Lab::new();
    let ch = master.sync_master();
    let from_client =
        |vip, port, syn| segment((CLIENT_MAC, PORT0_MAC), (CLIENT6, vip), (port, 80), syn);
    let nat_ack = from_client(VIP6, 41000, false);
    let dr_ack = from_client(VIP6_DR, 41001, false);
    let reply = segment((RS6_MAC, PORT1_MAC), (RS6, CLIENT6), (8080, 41000), false);
    for f in [
        from_client(VIP6, 41000, true),
        from_client(VIP6_DR, 41001, true),
        nat_ack.clone(),
        dr_ack.clone(),
    ] {
        assert!(matches!(master.run(0, &f).0, Verdict::Forward { .. }));
    }
    let on_master = [
        master.run(0, &nat_ack),
        master.run(0, &dr_ack),
        master.run(1, &reply),
    ];
    let mut notes = Vec::new();
    while let Some(n) = ch.outbox.pop() {
        notes.push(n);
    }
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes.iter().all(|n| n.v6), "IPv6 entries: {notes:?}");
    let mut backup = Lab::new();
    assert_eq!(
        backup.run(0, &nat_ack).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    for m in encode(3, &notes, 1472) {
        for c in &decode(&m).unwrap().1 {
            assert!(backup
                .engine
                .install_synced(&backup.snap, &backup.loads, 1, c));
        }
    }
    assert_eq!(backup.engine.table.len(), 2);
    let on_backup = [
        backup.run(0, &nat_ack),
        backup.run(0, &dr_ack),
        backup.run(1, &reply),
    ];
    for (i, what) in [
        "NAT to the server",
        "DR to the server",
        "NAT reply to the client",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            matches!(on_master[i].0, Verdict::Forward { .. }),
            "{what}: {:?}",
            on_master[i].0
        );
        assert_eq!(on_backup[i], on_master[i], "{what} as on the master");
    }
}

/// Connection sync: what a master's engine notes (a NAT connection, a DR one, in their
/// TCP states) installs on a backup's engine, whose packets of those connections then go
/// to the same servers, mid-flow (an ACK, no SYN), rewritten exactly as on the master.
#[test]
fn synced_connections_continue_on_the_backup() {
    use rvs_core::sync::{decode, encode};

    let mut master = Lab::new();
    let ch = master.sync_master();
    let nat_syn = tcp4(
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
    let dr_syn = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 101],
        64,
        40001,
        80,
        true,
        false,
        b"",
    );
    let nat_ack = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 100],
        64,
        40000,
        80,
        false,
        true,
        b"data",
    );
    let dr_ack = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 101],
        64,
        40001,
        80,
        false,
        true,
        b"data",
    );
    for f in [&nat_syn, &dr_syn, &nat_ack, &dr_ack] {
        assert!(matches!(master.run(0, f).0, Verdict::Forward { .. }));
    }
    let (_, on_master_nat) = master.run(0, &nat_ack);
    let (_, on_master_dr) = master.run(0, &dr_ack);
    let mut notes = Vec::new();
    while let Some(n) = ch.outbox.pop() {
        notes.push(n);
    }
    // Each once ESTABLISHED (not in SYN_RECV: IPVS syncs a TCP connection from
    // ESTABLISHED on, so a SYN flood never reaches a backup).
    assert_eq!(notes.len(), 2, "{notes:?}");
    // Through the wire format and into a backup.
    let msgs = encode(3, &notes, 1472);
    let mut backup = Lab::new();
    let before = backup.run(0, &nat_ack).0;
    assert_eq!(
        before,
        Verdict::Drop(DropReason::NoConnection),
        "unknown mid-flow ACK"
    );
    for m in &msgs {
        let (syncid, conns) = decode(m).unwrap();
        assert_eq!(syncid, 3);
        for c in &conns {
            assert!(backup
                .engine
                .install_synced(&backup.snap, &backup.loads, 1, c));
        }
    }
    assert_eq!(backup.engine.table.len(), 2);
    let (v, out) = backup.run(0, &nat_ack);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(out, on_master_nat, "NAT rewrite as on the master");
    let (v, out) = backup.run(0, &dr_ack);
    assert!(matches!(v, Verdict::Forward { .. }));
    assert_eq!(out, on_master_dr, "DR to the same server's MAC");
    // Counted active on their servers, as the master counts them.
    assert_eq!(backup.loads[0].active(), 1);
    // A connection for a service this box lacks is refused, not installed.
    let mut stray = notes[0];
    stray.vport = 8080;
    assert!(!backup
        .engine
        .install_synced(&backup.snap, &backup.loads, 1, &stray));

    // The same notes in the old format (version 0: no timeout): the backup gives each its
    // state's timeout (ESTABLISHED: 900 s), as the kernel's backup does.
    let mut v0 = vec![notes.len() as u8, 3, 0, 0];
    for c in &notes {
        v0.extend([0, c.proto]);
        for port in [c.cport, c.vport, c.dport] {
            v0.extend(port.to_be_bytes());
        }
        for a in [&c.caddr, &c.vaddr, &c.daddr] {
            v0.extend(&a[12..]);
        }
        v0.extend((c.flags as u16).to_be_bytes());
        v0.extend(c.state.to_be_bytes());
    }
    let size = v0.len() as u16;
    v0[2..4].copy_from_slice(&size.to_be_bytes());
    let (syncid, conns) = decode(&v0).unwrap();
    assert_eq!((syncid, conns.len()), (3, 2));
    let mut old = Lab::new();
    for c in &conns {
        assert_eq!(c.timeout, 0);
        assert!(old.engine.install_synced(&old.snap, &old.loads, 1, c));
    }
    old.engine.expire(300, 1 << 20, &old.loads);
    assert_eq!(old.engine.table.len(), 2, "alive at 300 s");
    let (v, out) = old.run(0, &nat_ack);
    assert_eq!((v, out), (Verdict::Forward { port: 1 }, on_master_nat));
    old.engine.expire(1000, 1 << 20, &old.loads);
    assert_eq!(old.engine.table.len(), 0, "gone after 900 s");

    // SYNs alone (a flood's) are never sent.
    for port in 41000..41100 {
        let syn = tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            CLIENT,
            [192, 168, 1, 100],
            64,
            port,
            80,
            true,
            false,
            b"",
        );
        assert!(matches!(master.run(0, &syn).0, Verdict::Forward { .. }));
    }
    assert!(ch.outbox.pop().is_none(), "embryonic connections synced");
    // A UDP flow's first datagram: embryonic on the master (the flood defence's mark, its
    // own), not sent; its second: sent, in IPVS's one UDP state, 0; the backup's copy is
    // no embryonic entry.
    let mut dns = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, [192, 168, 1, 110], 64)
        .udp(40002, 53)
        .write(&mut dns, b"query")
        .unwrap();
    assert!(matches!(master.run(0, &dns).0, Verdict::Forward { .. }));
    assert_eq!(master.engine.table.embryonic_len(), 101);
    assert!(
        ch.outbox.pop().is_none(),
        "a UDP flow of one datagram synced"
    );
    assert!(matches!(master.run(0, &dns).0, Verdict::Forward { .. }));
    let note = ch.outbox.pop().expect("the UDP flow noted");
    assert_eq!((note.proto, note.state), (17, 0));
    let mut udp_backup = Lab::new();
    assert!(udp_backup
        .engine
        .install_synced(&udp_backup.snap, &udp_backup.loads, 1, &note));
    assert_eq!(
        (
            udp_backup.engine.table.len(),
            udp_backup.engine.table.embryonic_len()
        ),
        (1, 0)
    );
}

/// A long, quiet connection is sent again once half its state's timeout has passed since
/// the master last sent it, so the backup's copy never runs out while it lives.
#[test]
fn long_connections_are_synced_again() {
    use std::sync::atomic::Ordering;

    let mut lab = Lab::new();
    let ch = lab.sync_master();
    let vip = [192, 168, 1, 101];
    let syn = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, 40001, 80, true, false, b"",
    );
    let ack = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, 40001, 80, false, true, b"x",
    );
    let mut at = |now: u32, frame: &[u8]| {
        let mut f = VecFrame::new(frame);
        lab.engine.process(&lab.snap, &lab.loads, now, 0, &mut f)
    };
    at(1, &syn);
    at(2, &ack);
    let drain = || std::iter::from_fn(|| ch.outbox.pop()).count();
    assert_eq!(drain(), 1, "ESTABLISHED (not SYN_RECV, as IPVS)");
    // ESTABLISHED lasts 900 s from each packet: nothing again before 450 s...
    for now in [10, 100, 400, 451] {
        at(now, &ack);
    }
    assert_eq!(drain(), 0);
    // ...then once, and not again for another 450 s.
    at(452, &ack);
    at(453, &ack);
    assert_eq!(drain(), 1);
    at(902, &ack);
    assert_eq!(drain(), 1);
    // A backup (not sending) notes nothing.
    ch.sending.store(false, Ordering::Relaxed);
    at(2000, &ack);
    assert_eq!(drain(), 0);
}

/// IPVS's sync_refresh_period: a connection is sent again once that period has passed since
/// it was last sent (ESTABLISHED's 900 s would wait 450 s); a period above half the timeout
/// leaves half the timeout.
#[test]
fn sync_refresh_period_sends_connections_again_sooner() {
    let vip = [192, 168, 1, 101];
    let syn = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, 40001, 80, true, false, b"",
    );
    let ack = tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, 40001, 80, false, true, b"x",
    );
    // The times (from 2 s, when it was first sent) at which acknowledgements each second
    // up to `until` send it again.
    let resent = |period: u32, until: u32| {
        let mut lab = Lab::new();
        lab.snap.sync_refresh_period = period;
        lab.engine.adopt(&lab.snap);
        let ch = lab.sync_master();
        let mut at = |now: u32, frame: &[u8]| {
            let mut f = VecFrame::new(frame);
            lab.engine.process(&lab.snap, &lab.loads, now, 0, &mut f);
            std::iter::from_fn(|| ch.outbox.pop()).count()
        };
        at(1, &syn);
        assert_eq!(at(2, &ack), 1, "once ESTABLISHED");
        (3..=until)
            .filter(|&now| at(now, &ack) > 0)
            .collect::<Vec<u32>>()
    };
    assert_eq!(resent(30, 100), [32, 62, 92]);
    assert_eq!(resent(5, 20), [7, 12, 17]);
    assert_eq!(resent(1000, 1000), [452, 902], "half the timeout if sooner");
    assert_eq!(resent(0, 1000), [452, 902], "unset: half the timeout");
}

/// IPVS's sync_persist_mode: a persistent service's connections are not synced, only their
/// templates (a backup with sloppy TCP follows the template after a failover); a service
/// without persistence is synced as before.
#[test]
fn sync_persist_mode_syncs_only_a_persistent_services_templates() {
    use rvs_core::sync::ipvs_flags;

    let run = |templates_only: bool| {
        let mut lab = Lab::new();
        lab.snap.sync_persist_mode = templates_only;
        lab.engine.adopt(&lab.snap);
        let ch = lab.sync_master();
        let mut notes = Vec::new();
        // The persistent service (192.168.1.103, any port), then the DR one.
        for (vip, cport) in [([192, 168, 1, 103], 40000), ([192, 168, 1, 101], 40001)] {
            for syn in [true, false] {
                let f = tcp4(
                    CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, cport, 80, syn, !syn, b"x",
                );
                assert!(matches!(lab.run(0, &f).0, Verdict::Forward { .. }));
            }
            let mut these = Vec::new();
            while let Some(n) = ch.outbox.pop() {
                these.push(n.flags & ipvs_flags::TEMPLATE != 0);
            }
            notes.push(these);
        }
        notes
    };
    // Off: the template with its connection once ESTABLISHED; the DR connection then too.
    assert_eq!(run(false), [vec![true, false], vec![false]]);
    // On: the template alone; the DR service (no persistence) as before.
    assert_eq!(run(true), [vec![true], vec![false]]);
}

/// CRC32c one bit at a time (independent of the engine's table-driven one).
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `frame`'s IPv4 header without DF, its checksum made again.
fn clear_df(frame: &mut [u8]) {
    frame[20] &= !0x40;
    frame[24..26].fill(0);
    let sum = ones_complement(&frame[14..34]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// The IPv4 fragments `fragment_ipv4` cuts `frame` into for `mtu`, each whole.
fn cut_ipv4(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    rvs_wire::fragment::fragment_ipv4(frame, mtu, |h, p| {
        pieces.push([h, p].concat());
        true
    })
    .unwrap();
    pieces
}

/// An SCTP packet (common header, tag, one chunk of `chunk_type` with `body`) with its
/// checksum.
fn sctp_packet(sport: u16, dport: u16, tag: u32, chunk_type: u8, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(&[chunk_type, 0]);
    p.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    p.extend_from_slice(body);
    while p.len() % 4 != 0 {
        p.push(0);
    }
    let crc = crc32c_bitwise(&p);
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    p
}

fn sctp4(macs: ([u8; 6], [u8; 6]), src: [u8; 4], dst: [u8; 4], ttl: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src, dst, ttl)
        .write(&mut f, IpNumber(132), l4)
        .unwrap();
    f
}

/// The flood defence for SCTP: a flood of spoofed INITs twice the table holds no more than
/// the embryonic share, the oldest making room; an association that is up is never touched
/// and a new client's association still comes up.
#[test]
fn an_sctp_init_flood_evicts_associations_not_yet_up() {
    use rvs_core::engine::EngineConfig;
    const INIT: u8 = 1;
    const INIT_ACK: u8 = 2;
    const COOKIE_ECHO: u8 = 10;
    const COOKIE_ACK: u8 = 11;
    let vip = [192, 168, 1, 108];
    let rs = [10, 0, 0, 2];
    let mut lab = lab_with(EngineConfig {
        conn_capacity: 1024,
        ..EngineConfig::default()
    });
    let from_client = |src: [u8; 4], sport: u16, chunk: u8, body: &[u8]| {
        let l4 = sctp_packet(sport, 5000, 7, chunk, body);
        sctp4((CLIENT_MAC, PORT0_MAC), src, vip, 64, &l4)
    };
    let from_server = |dst: [u8; 4], dport: u16, chunk: u8| {
        let l4 = sctp_packet(5001, dport, 7, chunk, &[0x22; 16]);
        sctp4((RS2_MAC, PORT1_MAC), rs, dst, 64, &l4)
    };
    // An association up: INIT, INIT-ACK, COOKIE-ECHO, COOKIE-ACK.
    let associate = |lab: &mut Lab, src: [u8; 4], sport: u16| {
        assert_eq!(
            lab.run(0, &from_client(src, sport, INIT, &[0x11; 16])).0,
            Verdict::Forward { port: 1 }
        );
        assert_eq!(
            lab.run(1, &from_server(src, sport, INIT_ACK)).0,
            Verdict::Forward { port: 0 }
        );
        assert_eq!(
            lab.run(0, &from_client(src, sport, COOKIE_ECHO, &[0x33; 8]))
                .0,
            Verdict::Forward { port: 1 }
        );
        assert_eq!(
            lab.run(1, &from_server(src, sport, COOKIE_ACK)).0,
            Verdict::Forward { port: 0 }
        );
    };
    associate(&mut lab, CLIENT, 40000);
    assert_eq!(lab.engine.table.embryonic_len(), 0, "up: off the list");
    for n in 0..2048u32 {
        let src = [10, 200, (n >> 8) as u8, n as u8];
        let v = lab.run(0, &from_client(src, 1024, INIT, &[0x11; 16])).0;
        assert_eq!(v, Verdict::Forward { port: 1 }, "INIT {n}");
        assert!(lab.engine.table.embryonic_len() <= 512);
    }
    associate(&mut lab, [203, 0, 113, 5], 40001);
    let data = from_client(CLIENT, 40000, 0, &[0x44; 20]);
    assert_eq!(
        lab.run(0, &data).0,
        Verdict::Forward { port: 1 },
        "the first one"
    );
    let c = lab.engine.counters();
    assert_eq!(c.drops[DropReason::TableFull as usize], 0);
    assert_eq!(c.syn_evictions, 2048 + 1 - 512);
    assert_eq!(lab.engine.table.embryonic_len(), 511);
    assert_eq!(lab.engine.table.len(), 2 + 511);
}

/// `syn_per_source` holds one address's SCTP INITs too (associations not yet up), counted
/// apart from its SYNs.
#[test]
fn one_address_sending_inits_is_held_to_its_limit() {
    use rvs_core::engine::EngineConfig;
    let mut lab = lab_with(EngineConfig {
        conn_capacity: 1024,
        syn_per_source: 4,
        ..EngineConfig::default()
    });
    let flooder = [198, 18, 0, 9];
    let init = |sport: u16| {
        let l4 = sctp_packet(sport, 5000, 7, 1, &[0x11; 16]);
        sctp4(
            (CLIENT_MAC, PORT0_MAC),
            flooder,
            [192, 168, 1, 108],
            64,
            &l4,
        )
    };
    let verdicts: Vec<_> = (0..6u16).map(|p| lab.run(0, &init(1000 + p)).0).collect();
    let forwarded = Verdict::Forward { port: 1 };
    let limited = Verdict::Drop(DropReason::SynLimit);
    assert_eq!(
        verdicts,
        [forwarded, forwarded, forwarded, forwarded, limited, limited]
    );
    let syn = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        flooder,
        [192, 168, 1, 100],
        64,
        2000,
        80,
        true,
        false,
        b"",
    );
    assert_eq!(lab.run(0, &syn).0, forwarded, "its SYNs counted apart");
}

/// An SCTP association through a NAT service that maps port 5000 to 5001: every packet
/// rewritten with a valid CRC32c, IPVS's states from INIT to CLOSED (active only while
/// ESTABLISHED), and a new INIT on the closed association scheduled afresh.
#[test]
fn sctp_nat_association_from_init_to_closed() {
    const INIT: u8 = 1;
    const INIT_ACK: u8 = 2;
    const COOKIE_ECHO: u8 = 10;
    const COOKIE_ACK: u8 = 11;
    const SHUTDOWN: u8 = 7;
    const SHUTDOWN_ACK: u8 = 8;
    const SHUTDOWN_COMPLETE: u8 = 14;
    let vip = [192, 168, 1, 108];
    let rs = [10, 0, 0, 2];
    let mut lab = Lab::new();
    let state = |lab: &Lab| {
        let c = lab
            .engine
            .table
            .iter()
            .map(|(_, c)| *c)
            .find(|c| c.proto == 132 && c.service == 12)
            .expect("the association's entry");
        rvs_core::conn::state_name(c.proto, c.state)
    };
    let load = |lab: &Lab| (lab.loads[16].active(), lab.loads[16].inactive());
    // (from the client?, chunk, body, state after)
    let steps: [(bool, u8, &[u8], &str); 7] = [
        (true, INIT, &[0x11; 16], "INIT1"),
        (false, INIT_ACK, &[0x22; 16], "C-SENT"),
        (true, COOKIE_ECHO, &[0x33; 8], "C-REPLIED"),
        (false, COOKIE_ACK, &[], "ESTABLISHED"),
        (true, 0, &[0x44; 20], "ESTABLISHED"),
        (true, SHUTDOWN, &[0, 0, 0, 9], "S-RECEIVED"),
        (false, SHUTDOWN_ACK, &[], "S-ACK-SENT"),
    ];
    for (i, (from_client, chunk, body, want)) in steps.into_iter().enumerate() {
        let (input, port, expected) = if from_client {
            let i = sctp4(
                (CLIENT_MAC, PORT0_MAC),
                CLIENT,
                vip,
                64,
                &sctp_packet(40000, 5000, 7, chunk, body),
            );
            let e = sctp4(
                (PORT1_MAC, RS2_MAC),
                CLIENT,
                rs,
                63,
                &sctp_packet(40000, 5001, 7, chunk, body),
            );
            (i, 0, (Verdict::Forward { port: 1 }, e))
        } else {
            let i = sctp4(
                (RS2_MAC, PORT1_MAC),
                rs,
                CLIENT,
                64,
                &sctp_packet(5001, 40000, 9, chunk, body),
            );
            let e = sctp4(
                (PORT0_MAC, GW_MAC),
                vip,
                CLIENT,
                63,
                &sctp_packet(5000, 40000, 9, chunk, body),
            );
            (i, 1, (Verdict::Forward { port: 0 }, e))
        };
        assert_eq!(lab.run(port, &input), expected, "step {i}");
        assert_eq!(state(&lab), want, "step {i}");
        let active = if want == "ESTABLISHED" {
            (1, 0)
        } else {
            (0, 1)
        };
        assert_eq!(load(&lab), active, "step {i}");
    }
    let complete = sctp4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        &sctp_packet(40000, 5000, 7, SHUTDOWN_COMPLETE, &[]),
    );
    assert_eq!(lab.run(0, &complete).0, Verdict::Forward { port: 1 });
    assert_eq!(state(&lab), "CLOSED");
    assert_eq!(lab.engine.counters().new_conns, 1);
    // A new INIT on the closed association starts a new one.
    let init = sctp4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        &sctp_packet(40000, 5000, 0, INIT, &[0x55; 16]),
    );
    assert_eq!(lab.run(0, &init).0, Verdict::Forward { port: 1 });
    assert_eq!(state(&lab), "INIT1");
    assert_eq!(lab.engine.counters().new_conns, 2);
    assert_eq!(load(&lab), (0, 1));
    // Anything but an INIT opens nothing: counted and dropped.
    let data = sctp4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        &sctp_packet(40001, 5000, 7, 0, &[1; 8]),
    );
    assert_eq!(lab.run(0, &data).0, Verdict::Drop(DropReason::NoConnection));
    // A header without chunks, and a truncated header: no association, no panic.
    let bare = sctp4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        &sctp_packet(40002, 5000, 7, INIT, &[])[..12],
    );
    assert_eq!(lab.run(0, &bare).0, Verdict::Drop(DropReason::NoConnection));
    let short = sctp4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        &[0x9c, 0x40, 0x13],
    );
    assert_eq!(lab.run(0, &short).0, Verdict::Drop(DropReason::Malformed));
}

/// SCTP by DR: the frame leaves unchanged but for its MACs (the CRC untouched), and the
/// input-only table takes the client's COOKIE ECHO to ESTABLISHED.
#[test]
fn sctp_dr_forwards_unchanged_and_tracks_the_client_side() {
    let vip = [192, 168, 1, 109];
    let mut lab = Lab::new();
    for (chunk, want) in [
        (1u8, "INIT1"),
        (10, "ESTABLISHED"),
        (7, "S-RECEIVED"),
        (14, "CLOSED"),
    ] {
        let l4 = sctp_packet(40000, 5000, 7, chunk, &[0x66; 12]);
        let input = sctp4((CLIENT_MAC, PORT0_MAC), CLIENT, vip, 64, &l4);
        let mut expected = input.clone();
        expected[..6].copy_from_slice(&RS3_MAC);
        expected[6..12].copy_from_slice(&PORT1_MAC);
        assert_eq!(
            lab.run(0, &input),
            (Verdict::Forward { port: 1 }, expected),
            "chunk {chunk}"
        );
        let c = lab
            .engine
            .table
            .iter()
            .map(|(_, c)| *c)
            .find(|c| c.service == 13)
            .unwrap();
        assert_eq!(rvs_core::conn::state_name(c.proto, c.state), want);
    }
}

/// The fixture lab with an engine made by `cfg` (a small table for the flood tests).
fn lab_with(cfg: rvs_core::engine::EngineConfig) -> Lab {
    let mut lab = Lab::new();
    lab.engine = rvs_core::engine::Engine::new(cfg, 0);
    lab.engine.adopt(&lab.snap);
    lab
}

/// A client's DNS query from `src:sport` to 192.168.1.110:53 (the fixture's UDP NAT
/// service).
fn dns_query(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(src, [192, 168, 1, 110], 64)
        .udp(sport, 53)
        .write(&mut f, b"query")
        .unwrap();
    f
}

/// The flood defence for UDP: a flood of spoofed datagrams (each a flow of one datagram)
/// five times the table takes no more than the embryonic share of it, the oldest making
/// room, so new clients (UDP and TCP) still get in; flows whose client sent a second
/// datagram and established TCP connections are never touched.
#[test]
fn a_udp_flood_evicts_single_datagram_flows_only() {
    use rvs_core::engine::EngineConfig;
    let dns = dns_query;
    // The server's answer (NAT, from its port 5353).
    let answer = |dst: [u8; 4], dport: u16| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC)
            .ipv4([10, 0, 0, 2], dst, 64)
            .udp(5353, dport)
            .write(&mut f, b"answer")
            .unwrap();
        f
    };
    let web = [192, 168, 1, 100];
    let syn = |sport| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, CLIENT, web, 64, sport, 80, true, false, b"",
        )
    };
    let ack = |sport| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, CLIENT, web, 64, sport, 80, false, true, b"x",
        )
    };
    let mut lab = lab_with(EngineConfig {
        conn_capacity: 1024,
        ..EngineConfig::default()
    });
    let forwarded = Verdict::Forward { port: 1 };
    // 50 UDP flows of two datagrams each and 50 established TCP connections first.
    for p in 0..50u16 {
        assert_eq!(lab.run(0, &dns(CLIENT, 20000 + p)).0, forwarded);
        assert_eq!(lab.run(0, &dns(CLIENT, 20000 + p)).0, forwarded);
        assert_eq!(lab.run(0, &syn(21000 + p)).0, forwarded);
        assert_eq!(lab.run(0, &ack(21000 + p)).0, forwarded);
    }
    assert_eq!(
        lab.engine.table.embryonic_len(),
        0,
        "all past their first packet"
    );
    let before = lab.engine.counters().new_conns;
    // 5,000 spoofed sources, one datagram each, which the server answers (an answer takes
    // no flow off the list); a new client's query every 50 of them.
    let mut queries = 0u16;
    for n in 0..5000u32 {
        let src = [10, 200 + (n >> 16) as u8, (n >> 8) as u8, n as u8];
        assert_eq!(
            lab.run(0, &dns(src, 1024)).0,
            forwarded,
            "flood datagram {n}"
        );
        let v = lab.run(1, &answer(src, 1024)).0;
        assert_eq!(v, Verdict::Forward { port: 0 }, "answer {n}");
        if n % 50 == 0 {
            let v = lab.run(0, &dns([203, 0, 113, 5], 30000 + queries)).0;
            assert_eq!(v, forwarded, "query {queries}");
            queries += 1;
        }
        assert!(lab.engine.table.embryonic_len() <= 512);
    }
    // A new TCP client too.
    assert_eq!(lab.run(0, &syn(22000)).0, forwarded);
    assert_eq!(lab.run(0, &ack(22000)).0, forwarded);
    let c = lab.engine.counters();
    assert_eq!(c.drops[DropReason::TableFull as usize], 0);
    assert_eq!(c.new_conns - before, 5000 + u64::from(queries) + 1);
    // The two-datagram flows and the TCP connections are still theirs: no new connection.
    for p in 0..50u16 {
        assert_eq!(lab.run(0, &dns(CLIENT, 20000 + p)).0, forwarded, "flow {p}");
        assert_eq!(lab.run(0, &ack(21000 + p)).0, forwarded, "established {p}");
    }
    let c = lab.engine.counters();
    assert_eq!(
        c.new_conns - before,
        5000 + u64::from(queries) + 1,
        "none made again"
    );
    // The flood's entries held the share; the new SYN took the oldest's place.
    assert_eq!(c.udp_evictions, 5000 + u64::from(queries) - 512);
    assert_eq!(c.syn_evictions, 1);
    assert_eq!(lab.engine.table.embryonic_len(), 511);
    assert_eq!(lab.engine.table.len(), 101 + 511);
}

/// `udp_per_source`: one address opening flow after flow from new ports (no spoofing) is
/// held to its limit of new flows ("UDP limit"), counted apart from its SYNs
/// (`syn_per_source`); a flow its client keeps up (a second datagram) leaves the count, and
/// other addresses are not touched.
#[test]
fn one_address_opening_udp_flows_is_held_to_its_limit() {
    use rvs_core::conn::addr16;
    use rvs_core::engine::EngineConfig;
    let dns = dns_query;
    let syn = |src: [u8; 4], sport: u16| {
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            src,
            [192, 168, 1, 100],
            64,
            sport,
            80,
            true,
            false,
            b"",
        )
    };
    let mut lab = lab_with(EngineConfig {
        conn_capacity: 1024,
        syn_per_source: 8,
        udp_per_source: 8,
        ..EngineConfig::default()
    });
    let forwarded = Verdict::Forward { port: 1 };
    let flooder = [198, 18, 0, 1];
    let mut refused = 0;
    for p in 0..20u16 {
        match lab.run(0, &dns(flooder, 1000 + p)).0 {
            v if p < 8 => assert_eq!(v, forwarded, "flow {p}"),
            Verdict::Drop(DropReason::UdpLimit) => refused += 1,
            v => panic!("flow {p}: {v:?}"),
        }
    }
    assert_eq!(refused, 12);
    assert_eq!(
        lab.engine.counters().drops[DropReason::UdpLimit as usize],
        12
    );
    assert_eq!(lab.engine.table.embryonic_from(&addr16(ip(flooder)), 17), 8);
    // Its SYNs have a count of their own.
    for p in 0..8u16 {
        assert_eq!(lab.run(0, &syn(flooder, 2000 + p)).0, forwarded, "SYN {p}");
    }
    assert_eq!(
        lab.run(0, &syn(flooder, 2008)).0,
        Verdict::Drop(DropReason::SynLimit)
    );
    // A flow kept up (its second datagram) leaves the count: one more may open.
    assert_eq!(lab.run(0, &dns(flooder, 1000)).0, forwarded);
    assert_eq!(lab.run(0, &dns(flooder, 1100)).0, forwarded);
    assert_eq!(
        lab.run(0, &dns(flooder, 1101)).0,
        Verdict::Drop(DropReason::UdpLimit)
    );
    // Another address, its counter not shared with the flooder's (counts are per hashed
    // address), opens flows as before.
    let other = (1..=50u8)
        .map(|n| [203, 0, 113, n])
        .find(|a| lab.engine.table.embryonic_from(&addr16(ip(*a)), 17) == 0)
        .expect("an address with a counter of its own");
    for p in 0..8u16 {
        assert_eq!(lab.run(0, &dns(other, 3000 + p)).0, forwarded);
    }
}

/// The flood defence on a persistent service: each spoofed source's SYN makes a template
/// too, which its connection's eviction takes with it (it controls nothing else), so the
/// templates cannot fill the table; a legitimate client's template, which controls its
/// established connection, stays and keeps it on its server.
#[test]
fn a_syn_flood_on_a_persistent_service_takes_its_templates_away() {
    use rvs_core::engine::EngineConfig;
    let vip = [192, 168, 1, 106];
    let syn = |src: [u8; 4], sport: u16| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, src, vip, 64, sport, 80, true, false, b"",
        )
    };
    let ack = |src: [u8; 4], sport: u16| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, src, vip, 64, sport, 80, false, true, b"x",
        )
    };
    let mut lab = lab_with(EngineConfig {
        conn_capacity: 1024,
        ..EngineConfig::default()
    });
    let forwarded = Verdict::Forward { port: 1 };
    assert_eq!(lab.run(0, &syn(CLIENT, 20000)).0, forwarded);
    let (v, first) = lab.run(0, &ack(CLIENT, 20000));
    assert_eq!(v, forwarded);
    for n in 0..5000u32 {
        let src = [10, 200 + (n >> 16) as u8, (n >> 8) as u8, n as u8];
        assert_eq!(lab.run(0, &syn(src, 1024)).0, forwarded, "flood SYN {n}");
        // Each SYN's entry and template: the share holds connections, not templates.
        assert!(lab.engine.table.len() <= 2 + 2 * 512, "{n}");
    }
    let c = lab.engine.counters();
    assert_eq!(c.drops[DropReason::TableFull as usize], 0);
    // The servers' persistent counts follow the templates left.
    let templates = lab
        .engine
        .table
        .iter()
        .filter(|(_, c)| c.is_template())
        .count() as u32;
    assert_eq!(templates, 1 + lab.engine.table.embryonic_len() as u32);
    assert_eq!(
        lab.loads[10].persistent() + lab.loads[11].persistent(),
        templates
    );
    // The established connection, and a second one of the same client on its server.
    let (v, again) = lab.run(0, &ack(CLIENT, 20000));
    assert_eq!((v, &again), (forwarded, &first));
    assert_eq!(lab.run(0, &syn(CLIENT, 20001)).0, forwarded);
    let (_, second) = lab.run(0, &ack(CLIENT, 20001));
    assert_eq!(
        second[..12],
        first[..12],
        "the same server's MAC (persistence)"
    );
}

/// A client picks its ports per destination, so a new connection through another VIP or
/// port may reuse the client port of a finished one to the same server: the new one takes
/// the reply side (IPVS's newest entry shadows the old); a live one keeps it.
#[test]
fn a_finished_connection_gives_its_reply_side_to_a_new_one() {
    // Without SNAT rules, and with one that balanced traffic does not match (the servers'
    // own connections masqueraded), which takes another way to the table.
    for snat in [false, true] {
        finished_connection_gives_its_reply_side(snat);
    }
}

fn finished_connection_gives_its_reply_side(snat: bool) {
    use rvs_core::engine::{ForwardMethod, Service, SnatRule};
    use rvs_core::sched::SchedKind;
    let vip = [192, 168, 1, 100];
    let mut snap = snapshot_with(|services| {
        services.push(Service::new(
            30,
            6,
            ip(vip),
            81,
            None,
            SchedKind::Rr,
            None,
            vec![rs(23, [10, 0, 0, 2], 8080, ForwardMethod::Nat)],
        ));
    });
    if snat {
        snap.set_snat(vec![SnatRule {
            proto: None,
            source: (IpAddr::from([10, 9, 0, 0]), 16),
            destination: (IpAddr::from([0, 0, 0, 0]), 0),
            out_port: Some(0),
            to_source: None,
            ports: (1024, 65535),
        }]);
    }
    let mut lab = Lab::with(snap.clone(), rvs_core::engine::EngineConfig::default());
    let ch = std::sync::Arc::new(rvs_core::sync::SyncChannel::default());
    ch.sending.store(true, std::sync::atomic::Ordering::Relaxed);
    lab.engine.sync = Some(ch.clone());
    let seg = |sport: u16, dport: u16, flags: &str| {
        let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CLIENT, vip, 64)
            .tcp(sport, dport, 1000, 64000);
        let b = match flags {
            "syn" => b.syn(),
            "rst" => b.rst(),
            _ => b.ack(5000),
        };
        let mut out = Vec::new();
        b.write(&mut out, b"").unwrap();
        out
    };
    let forwarded = Verdict::Forward { port: 1 };
    assert_eq!(lab.run(0, &seg(40000, 80, "syn")).0, forwarded);
    assert_eq!(lab.run(0, &seg(40000, 80, "ack")).0, forwarded);
    assert_eq!(lab.run(0, &seg(40000, 80, "rst")).0, forwarded, "CLOSE");
    // The same client port to :81, the same server 10.0.0.2:8080.
    assert_eq!(lab.run(0, &seg(40000, 81, "syn")).0, forwarded);
    assert_eq!(lab.engine.counters().reply_key_takeovers, 1);
    assert_eq!(lab.engine.table.len(), 1, "the old connection ended");
    // The server's reply is the new connection's: from VIP:81.
    let mut reply = Vec::new();
    PacketBuilder::ethernet2(RS2_MAC, PORT1_MAC)
        .ipv4([10, 0, 0, 2], CLIENT, 64)
        .tcp(8080, 40000, 7000, 64000)
        .syn()
        .ack(1001)
        .write(&mut reply, b"")
        .unwrap();
    let (v, out) = lab.run(1, &reply);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let tcp = etherparse::TcpHeaderSlice::from_slice(&out[34..]).unwrap();
    assert_eq!(
        (out[26..30].to_vec(), tcp.source_port()),
        (vip.to_vec(), 81)
    );
    // A backup given the same story by sync ends the old connection as the master did.
    assert_eq!(lab.run(0, &seg(40000, 81, "ack")).0, forwarded);
    let notes: Vec<_> = std::iter::from_fn(|| ch.outbox.pop()).collect();
    let mut backup = Lab::with(snap, rvs_core::engine::EngineConfig::default());
    for n in &notes {
        assert!(
            backup
                .engine
                .install_synced(&backup.snap, &backup.loads, 1, n),
            "{n:?}"
        );
    }
    let on_backup: Vec<_> = backup
        .engine
        .table
        .iter()
        .map(|(_, c)| (c.cport, c.vport))
        .collect();
    assert_eq!(on_backup, vec![(40000, 81)]);
    assert_eq!(backup.engine.counters().reply_key_takeovers, 1);
    // A live connection keeps its side: the server could not tell the two apart.
    assert_eq!(lab.run(0, &seg(40001, 80, "syn")).0, forwarded);
    assert_eq!(lab.run(0, &seg(40001, 80, "ack")).0, forwarded);
    assert_eq!(
        lab.run(0, &seg(40001, 81, "syn")).0,
        Verdict::Drop(DropReason::Clash)
    );
    assert_eq!(lab.engine.counters().reply_key_takeovers, 1);
}

/// A returning client's template stays when a flood evicts its new attempt: it controls
/// nothing at that moment (its connection has ended), but it once had an established
/// connection, so the client's next SYN still goes to its server.
#[test]
fn a_flood_evicting_a_returning_clients_attempt_keeps_its_template() {
    use rvs_core::engine::EngineConfig;
    let vip = [192, 168, 1, 106];
    let tcp = |src: [u8; 4], sport: u16, syn: bool, fin: bool| {
        let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(src, vip, 64)
            .tcp(sport, 80, 1000, 64000);
        let b = match (syn, fin) {
            (true, _) => b.syn(),
            (false, true) => b.fin().ack(5000),
            (false, false) => b.ack(5000),
        };
        let mut out = Vec::new();
        b.write(&mut out, b"").unwrap();
        out
    };
    let mut lab = lab_with(EngineConfig {
        conn_capacity: 1024,
        ..EngineConfig::default()
    });
    let forwarded = Verdict::Forward { port: 1 };
    let client_template = |lab: &Lab| {
        lab.engine
            .table
            .iter()
            .filter(|(_, c)| c.is_template() && c.caddr[12..] == CLIENT)
            .count()
    };
    assert_eq!(
        lab.run_at(1, 0, &tcp(CLIENT, 20000, true, false)).0,
        forwarded
    );
    let (v, first) = lab.run_at(1, 0, &tcp(CLIENT, 20000, false, false));
    assert_eq!(v, forwarded);
    // The client closes; its connection's entry goes, the template (360 s) stays.
    assert_eq!(
        lab.run_at(2, 0, &tcp(CLIENT, 20000, false, true)).0,
        forwarded
    );
    let loads = std::mem::take(&mut lab.loads);
    lab.engine.expire(200, usize::MAX, &loads);
    lab.loads = loads;
    assert_eq!(lab.engine.table.len(), 1, "the template alone");
    // It comes back at 200 s: the attempt is embryonic, then a flood evicts it.
    assert_eq!(
        lab.run_at(200, 0, &tcp(CLIENT, 20001, true, false)).0,
        forwarded
    );
    for n in 0..600u32 {
        let src = [10, 200, (n >> 8) as u8, n as u8];
        assert_eq!(
            lab.run_at(200, 0, &tcp(src, 1024, true, false)).0,
            forwarded
        );
    }
    assert!(lab.engine.counters().syn_evictions >= 88);
    assert_eq!(
        lab.run_at(200, 0, &tcp(CLIENT, 20001, false, false)).0,
        Verdict::Drop(DropReason::NoConnection),
        "the attempt was evicted"
    );
    assert_eq!(client_template(&lab), 1, "the client's template stayed");
    assert_eq!(
        lab.run_at(200, 0, &tcp(CLIENT, 20002, true, false)).0,
        forwarded
    );
    let (_, again) = lab.run_at(200, 0, &tcp(CLIENT, 20002, false, false));
    assert_eq!(again[..12], first[..12], "the same server's MAC");
}

/// The SYN-flood defence: a spoofed flood larger than the table neither locks a new client
/// out nor touches an established connection; embryonic entries stay within their share and
/// the oldest make room. A per-source limit stops a single flooding address.
#[test]
fn a_syn_flood_evicts_embryonic_connections_only() {
    use rvs_core::engine::EngineConfig;
    let vip = [192, 168, 1, 100];
    let syn = |src: [u8; 4], sport: u16| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, src, vip, 64, sport, 80, true, false, b"",
        )
    };
    let ack = |src: [u8; 4], sport: u16| {
        tcp4(
            CLIENT_MAC, PORT0_MAC, src, vip, 64, sport, 80, false, true, b"data",
        )
    };
    let mut lab = lab_with(EngineConfig {
        conn_capacity: 1024,
        // Counters are per hashed address: a limit well above the few spoofed
        // addresses that share one.
        syn_per_source: 16,
        ..EngineConfig::default()
    });
    let forwarded = Verdict::Forward { port: 1 };
    // 100 established connections before the flood.
    for p in 0..100u16 {
        assert_eq!(lab.run(0, &syn(CLIENT, 20000 + p)).0, forwarded);
        assert_eq!(lab.run(0, &ack(CLIENT, 20000 + p)).0, forwarded);
    }
    assert_eq!(lab.engine.table.embryonic_len(), 0);
    // A flood from 5,000 spoofed addresses (five times the table), a legitimate client
    // opening a connection every 50 flood SYNs and completing it 10 flood SYNs later.
    let mut legit = 0;
    for n in 0..5000u32 {
        let src = [10, 200 + (n >> 16) as u8, (n >> 8) as u8, n as u8];
        assert_eq!(lab.run(0, &syn(src, 1024)).0, forwarded, "flood SYN {n}");
        if n % 50 == 0 {
            assert_eq!(
                lab.run(0, &syn([203, 0, 113, 5], 30000 + legit)).0,
                forwarded
            );
        }
        if n % 50 == 10 {
            let v = lab.run(0, &ack([203, 0, 113, 5], 30000 + legit)).0;
            assert_eq!(v, forwarded, "legitimate connection {legit}");
            legit += 1;
        }
        assert!(lab.engine.table.embryonic_len() <= 512);
    }
    assert_eq!(legit, 100);
    // Every established connection is still there and forwards.
    for p in 0..100u16 {
        assert_eq!(
            lab.run(0, &ack(CLIENT, 20000 + p)).0,
            forwarded,
            "established {p}"
        );
        assert_eq!(lab.run(0, &ack([203, 0, 113, 5], 30000 + p)).0, forwarded);
    }
    let c = lab.engine.counters();
    assert_eq!(c.drops[DropReason::TableFull as usize], 0);
    // 5,100 embryonic connections made, 100 established, 512 left: the rest evicted.
    assert_eq!(lab.engine.table.embryonic_len(), 512);
    assert_eq!(c.syn_evictions, 5000 + 100 - 100 - 512);
    assert_eq!(
        lab.engine.table.len(),
        200 + lab.engine.table.embryonic_len()
    );
    // The server's counts follow: evicted connections left it.
    assert_eq!(
        lab.loads[0].active() + lab.loads[0].inactive(),
        lab.engine.table.len() as u32
    );
    // One address flooding alone: past its limit, refused (its counter may already hold a
    // few spoofed addresses' entries).
    let mut accepted = 0;
    let mut refused = 0;
    for p in 0..40u16 {
        match lab.run(0, &syn([198, 18, 0, 1], 40000 + p)).0 {
            Verdict::Drop(DropReason::SynLimit) => refused += 1,
            v => {
                assert_eq!(v, forwarded);
                accepted += 1;
            }
        }
    }
    assert!(
        (1..=16).contains(&accepted) && refused == 40 - accepted,
        "{accepted}"
    );
    // Once one of them is established, the address may open another.
    assert_eq!(lab.run(0, &ack([198, 18, 0, 1], 40000)).0, forwarded);
    assert_eq!(lab.run(0, &syn([198, 18, 0, 1], 40100)).0, forwarded);
}

/// An IPv4 datagram (protocol, L4 bytes) cut into fragments of at most `mtu` bytes, each
/// with its own header (identification `id`) and header checksum.
fn fragments4(
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    protocol: u8,
    id: u16,
    l4: &[u8],
    mtu: usize,
) -> Vec<Vec<u8>> {
    let step = (mtu - 20) / 8 * 8;
    let mut out = Vec::new();
    let mut at = 0;
    while at < l4.len() {
        let end = (at + step).min(l4.len());
        let more = end < l4.len();
        let mut f = Vec::new();
        f.extend_from_slice(&macs.1);
        f.extend_from_slice(&macs.0);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + end - at) as u16;
        let flags = (if more { 0x2000 } else { 0 }) | (at / 8) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&[ttl, protocol, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let c = ones_complement(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(&l4[at..end]);
        out.push(f);
        at = end;
    }
    out
}

/// The L4 bytes of a UDP datagram built by etherparse (its checksum over the whole).
fn udp4_l4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut f, payload)
        .unwrap();
    f[34..].to_vec()
}

/// IPVS reassembles fragments; rvs follows them: a 3,000-byte DNS datagram in three
/// fragments goes to one server by NAT (the first fragment's port and checksum rewritten for
/// the whole datagram, the later ones' address), and so does the fragmented answer back.
#[test]
fn fragmented_udp_follows_its_first_fragment_both_ways() {
    let mut lab = Lab::new();
    let vip = [192, 168, 1, 110];
    let rs = [10, 0, 0, 2];
    let query: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let input = fragments4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        17,
        0x1234,
        &udp4_l4(CLIENT, vip, 40000, 53, &query),
        1500,
    );
    let expected = fragments4(
        (PORT1_MAC, RS2_MAC),
        CLIENT,
        rs,
        63,
        17,
        0x1234,
        &udp4_l4(CLIENT, rs, 40000, 5353, &query),
        1500,
    );
    assert_eq!(input.len(), 3);
    for (i, (f, want)) in input.iter().zip(&expected).enumerate() {
        assert_eq!(
            lab.run(0, f),
            (Verdict::Forward { port: 1 }, want.clone()),
            "fragment {i}"
        );
    }
    // The answer, 4,000 bytes in three fragments, back to the client from the VIP.
    let answer: Vec<u8> = (0..4000u32).map(|i| (i * 13) as u8).collect();
    let reply = fragments4(
        (RS2_MAC, PORT1_MAC),
        rs,
        CLIENT,
        64,
        17,
        0x0777,
        &udp4_l4(rs, CLIENT, 5353, 40000, &answer),
        1500,
    );
    let back = fragments4(
        (PORT0_MAC, GW_MAC),
        vip,
        CLIENT,
        63,
        17,
        0x0777,
        &udp4_l4(vip, CLIENT, 53, 40000, &answer),
        1500,
    );
    for (i, (f, want)) in reply.iter().zip(&back).enumerate() {
        assert_eq!(
            lab.run(1, f),
            (Verdict::Forward { port: 0 }, want.clone()),
            "answer fragment {i}"
        );
    }
    assert_eq!(lab.engine.counters().new_conns, 1);
    // A later fragment whose first never came: counted and dropped.
    let orphan = fragments4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        17,
        0x4321,
        &udp4_l4(CLIENT, vip, 40001, 53, &query),
        1500,
    );
    assert_eq!(
        lab.run(0, &orphan[1]).0,
        Verdict::Drop(DropReason::Fragment)
    );
    // A first fragment too short for its UDP header is malformed.
    let mut tiny = orphan[0][..14 + 20 + 4].to_vec();
    tiny[16..18].copy_from_slice(&24u16.to_be_bytes());
    tiny[24..26].copy_from_slice(&[0, 0]);
    let c = ones_complement(&tiny[14..34]);
    tiny[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(lab.run(0, &tiny).0, Verdict::Drop(DropReason::Malformed));
    assert_eq!(
        lab.engine.counters().drops[DropReason::Fragment as usize],
        1
    );
}

/// A NAT member's outgoing range (CommuniGate's outgoing connections) with fragmented
/// datagrams both ways: the later fragments follow their first, by the range its port was
/// in (they carry no port of their own).
#[test]
fn fragments_of_a_members_outgoing_range_follow_their_first() {
    let mut lab = Lab::new();
    let (vip, member, remote) = ([192, 168, 1, 120], [10, 0, 0, 2], [203, 0, 113, 9]);
    lab.snap
        .set_member_ports(vec![rvs_core::engine::MemberPorts {
            proto: 17,
            vip: IpAddr::from(vip),
            first: 33000,
            last: 33999,
            member: IpAddr::from(member),
            nat: true,
        }]);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 5) as u8).collect();
    let out = fragments4(
        (RS2_MAC, PORT1_MAC),
        member,
        remote,
        64,
        17,
        0x5151,
        &udp4_l4(member, remote, 33007, 53, &payload),
        1500,
    );
    let want_out = fragments4(
        (PORT0_MAC, GW_MAC),
        vip,
        remote,
        63,
        17,
        0x5151,
        &udp4_l4(vip, remote, 33007, 53, &payload),
        1500,
    );
    for (i, (f, want)) in out.iter().zip(&want_out).enumerate() {
        assert_eq!(
            lab.run(1, f),
            (Verdict::Forward { port: 0 }, want.clone()),
            "out {i}"
        );
    }
    let back = fragments4(
        (GW_MAC, PORT0_MAC),
        remote,
        vip,
        60,
        17,
        0x6161,
        &udp4_l4(remote, vip, 53, 33007, &payload),
        1500,
    );
    let want_back = fragments4(
        (PORT1_MAC, RS2_MAC),
        remote,
        member,
        59,
        17,
        0x6161,
        &udp4_l4(remote, member, 53, 33007, &payload),
        1500,
    );
    for (i, (f, want)) in back.iter().zip(&want_back).enumerate() {
        assert_eq!(
            lab.run(0, f),
            (Verdict::Forward { port: 1 }, want.clone()),
            "back {i}"
        );
    }
    assert_eq!(lab.engine.counters().member_packets, 6);
    assert_eq!(lab.engine.counters().drops, [0; DropReason::COUNT]);
}

/// A datagram whose fragments come last first (as some stacks send them, or reordered on
/// the way): the later ones are kept until the first has gone through, then taken in
/// again and follow it (IPVS reassembles, so the order is nothing to it); one whose first
/// never comes is dropped and counted once it has waited its time.
#[test]
fn fragments_before_their_first_wait_for_it() {
    let mut lab = Lab::new();
    lab.engine.set_keeping_early_fragments(true);
    let vip = [192, 168, 1, 110];
    let rs = [10, 0, 0, 2];
    let query: Vec<u8> = (0..3000u32).map(|i| (i * 11) as u8).collect();
    let input = fragments4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        17,
        0x2345,
        &udp4_l4(CLIENT, vip, 40002, 53, &query),
        1500,
    );
    let expected = fragments4(
        (PORT1_MAC, RS2_MAC),
        CLIENT,
        rs,
        63,
        17,
        0x2345,
        &udp4_l4(CLIENT, rs, 40002, 5353, &query),
        1500,
    );
    let mut out = Vec::new();
    let release = |lab: &mut Lab, now: u32| {
        let mut again = Vec::new();
        lab.engine.release_early_fragments(now, None, |port, f| {
            again.push((port, f.to_vec()));
            true
        });
        again
    };
    // The last, then the middle: kept, not counted, nothing to release yet.
    for i in [2, 1] {
        assert_eq!(lab.run(0, &input[i]).0, Verdict::Drop(DropReason::Held));
    }
    assert_eq!(lab.engine.early_fragments(), 2);
    assert_eq!(lab.engine.counters().fragments_waited, 2);
    assert!(release(&mut lab, 1).is_empty());
    // The first goes through; the two kept come out in arrival slots, and follow it.
    assert_eq!(
        lab.run(0, &input[0]),
        (Verdict::Forward { port: 1 }, expected[0].clone())
    );
    for (port, f) in release(&mut lab, 1) {
        assert_eq!(port, 0, "the port they arrived on");
        out.push(lab.run(port, &f));
    }
    out.sort_by_key(|(_, f)| u16::from_be_bytes([f[20], f[21]]) & 0x1fff);
    assert_eq!(
        out,
        vec![
            (Verdict::Forward { port: 1 }, expected[1].clone()),
            (Verdict::Forward { port: 1 }, expected[2].clone()),
        ]
    );
    assert_eq!(lab.engine.early_fragments(), 0);
    assert_eq!(lab.engine.counters().drops, [0; DropReason::COUNT]);
    // An orphan waits its two seconds, then is dropped and counted.
    let orphan = fragments4(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        vip,
        64,
        17,
        0x4321,
        &udp4_l4(CLIENT, vip, 40001, 53, &query),
        1500,
    );
    assert_eq!(lab.run(0, &orphan[1]).0, Verdict::Drop(DropReason::Held));
    assert!(release(&mut lab, 3).is_empty());
    assert_eq!(lab.engine.early_fragments(), 1);
    assert!(release(&mut lab, 4).is_empty());
    assert_eq!(lab.engine.early_fragments(), 0);
    assert_eq!(
        lab.engine.counters().drops[DropReason::Fragment as usize],
        1
    );
    // Another worker (of four) took the first: handed over once its owner is noted.
    assert_eq!(lab.run(0, &orphan[2]).0, Verdict::Drop(DropReason::Held));
    let owners = rvs_core::engine::FragOwners::default();
    let mut elsewhere = Vec::new();
    let mut take = |lab: &mut Lab, now: u32, me: usize| {
        lab.engine
            .release_early_fragments(now, Some((&owners, me)), |p, f| {
                elsewhere.push((p, f.to_vec()));
                true
            })
    };
    take(&mut lab, 2, 0);
    assert_eq!(lab.engine.early_fragments(), 1, "no owner yet");
    use rvs_core::engine::flow_owner;
    let first_owner = flow_owner(&lab.snap, &orphan[0], 4, &owners).unwrap();
    assert_eq!(
        flow_owner(&lab.snap, &orphan[2], 4, &owners),
        Some(first_owner)
    );
    take(&mut lab, 2, first_owner);
    assert_eq!(
        lab.engine.early_fragments(),
        1,
        "its own first: not elsewhere"
    );
    take(&mut lab, 3, (first_owner + 1) % 4);
    assert_eq!(elsewhere, vec![(0, orphan[2].clone())]);
}

/// IPv6 fragments (fragment header) of a TCP segment through a NAT service that changes
/// the port: the first carries the rewritten port and checksum, the later ones follow.
#[test]
fn fragmented_ipv6_follows_its_first_fragment() {
    let mut lab = Lab::new();
    let payload: Vec<u8> = (0..2500u32).map(|i| (i * 3) as u8).collect();
    let seg = |src: [u8; 16], dst: [u8; 16], dport: u16| {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv6(src, dst, 64)
            .tcp(40000, dport, 1000, 64000)
            .syn()
            .write(&mut f, &payload)
            .unwrap();
        f[54..].to_vec()
    };
    let frag6 = |macs: ([u8; 6], [u8; 6]), src: [u8; 16], dst: [u8; 16], hops: u8, l4: &[u8]| {
        let mut out = Vec::new();
        let mut at = 0;
        while at < l4.len() {
            let end = (at + 1448).min(l4.len());
            let more = end < l4.len();
            let mut f = Vec::new();
            f.extend_from_slice(&macs.1);
            f.extend_from_slice(&macs.0);
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&((8 + end - at) as u16).to_be_bytes());
            f.extend_from_slice(&[44, hops]);
            f.extend_from_slice(&src);
            f.extend_from_slice(&dst);
            let off = (at as u16) | u16::from(more);
            f.extend_from_slice(&[6, 0]);
            f.extend_from_slice(&off.to_be_bytes());
            f.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
            f.extend_from_slice(&l4[at..end]);
            out.push(f);
            at = end;
        }
        out
    };
    let input = frag6(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT6,
        VIP6,
        64,
        &seg(CLIENT6, VIP6, 80),
    );
    let expected = frag6(
        (PORT1_MAC, RS6_MAC),
        CLIENT6,
        RS6,
        63,
        &seg(CLIENT6, RS6, 8080),
    );
    assert_eq!(input.len(), 2);
    for (i, (f, want)) in input.iter().zip(&expected).enumerate() {
        assert_eq!(
            lab.run(0, f),
            (Verdict::Forward { port: 1 }, want.clone()),
            "fragment {i}"
        );
    }
    // With several workers, the later fragment (no ports) goes where the first went.
    use rvs_core::engine::{flow_owner, FragOwners};
    let owners = FragOwners::default();
    let first = flow_owner(&lab.snap, &input[0], 4, &owners);
    assert!(first.is_some());
    assert_eq!(flow_owner(&lab.snap, &input[1], 4, &owners), first);
    assert_eq!(
        flow_owner(&lab.snap, &input[1], 4, &FragOwners::default()),
        None,
        "unknown: stays where it arrived"
    );
}

/// A datagram to fragment that waits for its neighbour is kept whole, rewritten, and
/// released with the MTU to cut it to.
#[test]
fn a_datagram_to_fragment_waits_for_its_neighbour_whole() {
    let server_mac = [2, 0xaa, 0, 0, 0, 9];
    let mut lab = Lab::new();
    lab.snap.ports[1].mtu = 576;
    lab.engine.set_holding(true);
    let mut input = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 105],
        64,
        41000,
        80,
        true,
        false,
        &[3u8; 1000],
    );
    clear_df(&mut input);
    let (v, out) = lab.run(0, &input);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        &out[12..14],
        &[0x08, 0x06],
        "the ARP request went in its place"
    );
    assert_eq!(lab.engine.held_len(), 1);
    let _ = lab.run(1, &rs9_answers_from(server_mac));
    let mut sent = Vec::new();
    lab.engine.release_held(&lab.snap, 1, |p, f, split| {
        sent.push((p, f.to_vec(), split));
        true
    });
    let mut whole = tcp4(
        PORT1_MAC,
        server_mac,
        CLIENT,
        [10, 0, 0, 9],
        63,
        41000,
        80,
        true,
        false,
        &[3u8; 1000],
    );
    clear_df(&mut whole);
    assert_eq!(
        sent,
        vec![(1, whole, Some((576, 1)))],
        "its IPv6 identification unused"
    );
}

/// The first packets to a real server whose MAC is not known yet are not lost: they wait
/// (rewritten) while the ARP request goes out, and leave with the MAC once it answers;
/// unanswered, they are dropped after a few seconds and counted once.
#[test]
fn packets_wait_for_an_unresolved_neighbour() {
    let server_mac = [2, 0xaa, 0, 0, 0, 9];
    let syn = |sport: u16| {
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            CLIENT,
            [192, 168, 1, 105],
            64,
            sport,
            80,
            true,
            false,
            b"",
        )
    };
    let mut lab = Lab::new();
    lab.engine.set_holding(true);
    let (v, out) = lab.run(0, &syn(41000));
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        &out[12..14],
        &[0x08, 0x06],
        "the frame became the ARP request"
    );
    assert_eq!(&out[38..42], &[10, 0, 0, 9]);
    // Asked this second already: the next one just waits.
    assert_eq!(lab.run(0, &syn(41001)).0, Verdict::Drop(DropReason::Held));
    assert_eq!(lab.engine.held_len(), 2);
    let mut sent = Vec::new();
    lab.engine.release_held(&lab.snap, 1, |p, f, split| {
        assert_eq!(split, None, "whole frames");
        sent.push((p, f.to_vec()));
        true
    });
    assert!(sent.is_empty(), "nothing before the answer");
    // The server answers the request.
    let _ = lab.run(1, &rs9_answers_from(server_mac));
    lab.engine.release_held(&lab.snap, 1, |p, f, split| {
        assert_eq!(split, None, "whole frames");
        sent.push((p, f.to_vec()));
        true
    });
    let want = |sport: u16| {
        tcp4(
            PORT1_MAC,
            server_mac,
            CLIENT,
            [10, 0, 0, 9],
            63,
            sport,
            80,
            true,
            false,
            b"",
        )
    };
    assert_eq!(sent, vec![(1, want(41000)), (1, want(41001))]);
    assert_eq!(lab.engine.held_len(), 0);
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoNeighbour as usize],
        0
    );
    // No answer: dropped after the timeout, counted once each; three wait per next hop.
    let mut lab = Lab::new();
    lab.engine.set_holding(true);
    for p in 0..5 {
        let _ = lab.run(0, &syn(42000 + p));
    }
    assert_eq!(lab.engine.held_len(), 3);
    lab.engine.release_held(
        &lab.snap,
        1 + rvs_core::engine::HELD_TIMEOUT_S + 1,
        |_, _, _| panic!("nothing to send"),
    );
    assert_eq!(lab.engine.held_len(), 0);
    assert_eq!(
        lab.engine.counters().drops[DropReason::NoNeighbour as usize],
        2 + 3
    );
}

/// Neighbours age as Linux's do: silent 60 s, a configured next hop is asked again (its old
/// MAC still used meanwhile); silent 5 s more after that, it is forgotten and its packets
/// wait for a fresh answer. Heard again after a while, the other workers are told when.
#[test]
fn neighbours_go_stale_then_fail_as_linux_s() {
    let rs9 = IpAddr::from([10, 0, 0, 9]);
    let mut lab = Lab::new();
    lab.engine.set_holding(true);
    let at = |lab: &mut Lab, now: u32, port: u16, frame: &[u8]| {
        let mut f = VecFrame::new(frame);
        let v = lab.engine.process(&lab.snap, &lab.loads, now, port, &mut f);
        (v, f.bytes().to_vec())
    };
    let mut request = VecFrame::new(&[]);
    assert!(lab.engine.solicit(&lab.snap, 1, 1, rs9, &mut request));
    let _ = at(&mut lab, 1, 1, &rs9_is_at());
    let mut hops = Vec::new();
    lab.engine.unresolved_hops(&lab.snap, 50, 32, &mut hops);
    assert!(!hops.contains(&(1, rs9)), "fresh");
    lab.engine.unresolved_hops(&lab.snap, 62, 32, &mut hops);
    assert!(hops.contains(&(1, rs9)), "stale: asked again");
    assert!(lab.engine.solicit(&lab.snap, 62, 1, rs9, &mut request));
    lab.engine.expire(66, 64, &lab.loads);
    let forwarded = (Verdict::Forward { port: 1 }, syn_to_rs9(PORT1_MAC, RS9_MAC));
    assert_eq!(
        at(&mut lab, 66, 0, &syn_to_rs9(CLIENT_MAC, PORT0_MAC)),
        forwarded,
        "the old MAC still used while it is asked"
    );
    lab.engine.expire(68, 64, &lab.loads);
    let (v, out) = at(&mut lab, 68, 0, &syn_to_rs9(CLIENT_MAC, PORT0_MAC));
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        out,
        who_has_rs9(),
        "forgotten: the SYN waits, a request goes out"
    );
    assert_eq!(lab.engine.held_len(), 1);
    // It answers again: the waiting SYN leaves, the others hear of it.
    let _ = at(&mut lab, 68, 1, &rs9_is_at());
    let mut sent = Vec::new();
    lab.engine.release_held(&lab.snap, 68, |p, f, split| {
        assert_eq!(split, None, "whole frames");
        sent.push((p, f.to_vec()));
        true
    });
    assert_eq!(sent, vec![(1, syn_to_rs9(PORT1_MAC, RS9_MAC))]);
    let mut news = Vec::new();
    lab.engine
        .take_news(|ip, mac, heard| news.push((ip, mac, heard)));
    assert!(news.contains(&(rs9, RS9_MAC, 68)), "{news:?}");
    // Heard again 32 s later (same MAC): news too, so that no worker ages a live one out.
    let _ = at(&mut lab, 100, 1, &rs9_is_at());
    news.clear();
    lab.engine
        .take_news(|ip, mac, heard| news.push((ip, mac, heard)));
    assert_eq!(news, [(rs9, RS9_MAC, 100)]);
    // A neighbour never asked again is never forgotten (the old MAC is used on).
    let mut quiet = Lab::new();
    quiet.engine.learn_from_peer(rs9, RS9_MAC, 1);
    quiet.engine.expire(1000, 64, &quiet.loads);
    assert_eq!(
        at(&mut quiet, 1000, 0, &syn_to_rs9(CLIENT_MAC, PORT0_MAC)),
        forwarded
    );
}

/// A NIC that verified the IPv4 header checksum (its checksum-good flag) spares the engine
/// the check: a frame it vouches for is taken as it is; without the flag the engine checks.
#[test]
fn the_nics_checksum_verdict_is_trusted() {
    let syn = tcp4(
        CLIENT_MAC,
        PORT0_MAC,
        [198, 51, 100, 9],
        [192, 168, 1, 100],
        64,
        40009,
        80,
        true,
        false,
        b"",
    );
    let mut bad = syn.clone();
    bad[14 + 10] ^= 0xff; // the IPv4 header checksum
    let mut lab = Lab::new();
    let mut f = VecFrame::new(&bad);
    let p = lab.engine.parse(&lab.snap, f.bytes());
    let v = lab
        .engine
        .process_parsed(&lab.snap, &lab.loads, 1, 0, &p, &mut f);
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    let mut f = VecFrame::new(&syn);
    let p = lab.engine.parse_checked(&lab.snap, f.bytes(), true);
    let v = lab
        .engine
        .process_parsed(&lab.snap, &lab.loads, 1, 0, &p, &mut f);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let mut f = VecFrame::new(&bad);
    let p = lab.engine.parse_checked(&lab.snap, f.bytes(), true);
    assert!(matches!(
        lab.engine
            .process_parsed(&lab.snap, &lab.loads, 1, 0, &p, &mut f),
        Verdict::Forward { .. }
    ));
}

/// Behind ECMP (IPVS's sloppy_tcp), a mid-flow segment of a flow this node never saw
/// (another node had it) opens an ESTABLISHED connection to the server the scheduler
/// picks and is forwarded; a RST opens nothing. Without sloppy TCP it is dropped.
#[test]
fn sloppy_tcp_takes_over_mid_flow() {
    let ack = |sport: u16, rst: bool| {
        let mut f = tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            CLIENT,
            [192, 168, 1, 101],
            64,
            sport,
            80,
            false,
            true,
            b"mid-flow",
        );
        if rst {
            // TCP flags at 14 + 20 + 13: ACK|RST; the checksum no longer matters here, as
            // the RST is refused before anything reads it.
            f[47] |= 0x04;
        }
        f
    };
    let mut strict = Lab::new();
    assert_eq!(
        strict.run(0, &ack(41000, false)).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    let mut snap = snapshot();
    snap.sloppy_tcp = true;
    let mut lab = Lab::with(snap, Default::default());
    let (v, out) = lab.run(0, &ack(41000, false));
    assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
    // DR: the frame leaves unchanged but for the MACs, to 10.0.0.3 (the service's server).
    assert_eq!(&out[12..], &ack(41000, false)[12..]);
    let c = lab
        .engine
        .table
        .iter()
        .map(|(_, c)| *c)
        .find(|c| c.proto == 6 && c.cport == 41000)
        .expect("a connection for the mid-flow segment");
    assert_eq!(rvs_core::conn::state_name(c.proto, c.state), "ESTABLISHED");
    assert_eq!(lab.engine.counters().new_conns, 1);
    // Opened established: counted active at once, never embryonic.
    rvs_testkit::invariants::loads_match_table(&lab).unwrap();
    assert_eq!(lab.engine.table.embryonic_len(), 0);
    assert_eq!(
        lab.run(0, &ack(41001, true)).0,
        Verdict::Drop(DropReason::NoConnection),
        "a RST opens nothing"
    );
}

/// IPVS's sloppy_sctp (behind ECMP): a DATA chunk of an association this node never saw
/// opens an ESTABLISHED one and is forwarded; an ABORT opens nothing; without it, only an
/// INIT opens.
#[test]
fn sloppy_sctp_takes_over_mid_association() {
    const ABORT: u8 = 6;
    let data = |sport: u16, chunk: u8| {
        sctp4(
            (CLIENT_MAC, PORT0_MAC),
            CLIENT,
            [192, 168, 1, 108],
            64,
            &sctp_packet(sport, 5000, 7, chunk, &[0x44; 20]),
        )
    };
    let mut strict = Lab::new();
    assert_eq!(
        strict.run(0, &data(40000, 0)).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    let mut snap = snapshot();
    snap.sloppy_sctp = true;
    let mut lab = Lab::with(snap, Default::default());
    let (v, out) = lab.run(0, &data(40000, 0));
    assert_eq!(v, Verdict::Forward { port: 1 });
    let want = sctp4(
        (PORT1_MAC, RS2_MAC),
        CLIENT,
        [10, 0, 0, 2],
        63,
        &sctp_packet(40000, 5001, 7, 0, &[0x44; 20]),
    );
    assert_eq!(out, want, "NAT to the server's port, CRC32c computed anew");
    let c = lab
        .engine
        .table
        .iter()
        .map(|(_, c)| *c)
        .find(|c| c.proto == 132 && c.cport == 40000)
        .expect("an association for the DATA chunk");
    assert_eq!(rvs_core::conn::state_name(c.proto, c.state), "ESTABLISHED");
    rvs_testkit::invariants::loads_match_table(&lab).unwrap();
    assert_eq!(
        lab.run(0, &data(40001, ABORT)).0,
        Verdict::Drop(DropReason::NoConnection),
        "an ABORT opens nothing"
    );
    // sloppy TCP does not make SCTP sloppy.
    let mut snap = snapshot();
    snap.sloppy_tcp = true;
    let mut tcp_only = Lab::with(snap, Default::default());
    assert_eq!(
        tcp_only.run(0, &data(40002, 0)).0,
        Verdict::Drop(DropReason::NoConnection)
    );
}

/// A worker holding its changes to the servers' counts until the end of its pass: its own
/// scheduler sees them at once (lc spreads one pass's new connections), the shared counts
/// at the flush.
#[test]
fn held_counts_are_seen_by_the_workers_scheduler_and_shared_at_the_flush() {
    use rvs_core::engine::{ForwardMethod, Service};
    use rvs_core::sched::SchedKind;
    let snap = snapshot_with(|services| {
        services[0] = Service::new(
            0,
            6,
            ip([192, 168, 1, 100]),
            80,
            None,
            SchedKind::Lc,
            None,
            vec![
                rs(20, [10, 0, 0, 2], 8080, ForwardMethod::Nat),
                rs(21, [10, 0, 0, 3], 8080, ForwardMethod::Nat),
            ],
        );
    });
    let mut lab = Lab::with(snap, rvs_core::engine::EngineConfig::default());
    lab.engine.hold_loads(lab.loads.len());
    let mut to = [0usize; 2];
    for i in 0..10u8 {
        let syn = tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            [198, 51, 100, i],
            [192, 168, 1, 100],
            64,
            1000,
            80,
            true,
            false,
            &[],
        );
        let (v, out) = lab.run(0, &syn);
        assert_eq!(v, Verdict::Forward { port: 1 });
        match out[30..34] {
            [10, 0, 0, 2] => to[0] += 1,
            [10, 0, 0, 3] => to[1] += 1,
            _ => panic!("to {:?}", &out[30..34]),
        }
    }
    assert_eq!(to, [5, 5], "lc saw the pass's own connections");
    let counts = |lab: &Lab, id: usize| (lab.loads[id].active(), lab.loads[id].inactive());
    assert_eq!(
        (counts(&lab, 20), counts(&lab, 21)),
        ((0, 0), (0, 0)),
        "held"
    );
    lab.engine.flush_loads(&lab.loads);
    assert_eq!(
        (counts(&lab, 20), counts(&lab, 21)),
        ((5, 0), (5, 0)),
        "SYN_RECV counts active"
    );
}

/// A service at an IPv4-mapped IPv6 VIP (::ffff:a.b.c.d) takes no packets, as in the
/// kernel (a v6 service no IPv4 packet looks up; IPv6 headers with such addresses are
/// dropped as martian): it neither takes the IPv4 VIP's packets over nor makes the
/// address a VIP.
#[test]
fn a_service_at_an_ipv4_mapped_vip_takes_no_packets() {
    use rvs_core::engine::{ForwardMethod, Service};
    use rvs_core::sched::SchedKind;
    let mapped = |v4: [u8; 4]| ip(rvs_core::conn::v4_mapped(v4));
    let service = |id: usize, vip| {
        Service::new(
            id as u16,
            6,
            vip,
            80,
            None,
            SchedKind::Rr,
            None,
            vec![rs(30 + id, RS6, 8080, ForwardMethod::Nat)],
        )
    };
    let syn = |dst| {
        tcp4(
            CLIENT_MAC,
            PORT0_MAC,
            CLIENT,
            dst,
            64,
            40000,
            80,
            true,
            false,
            &[],
        )
    };
    // The IPv4 VIP's connections still go to its own server, whichever service comes first.
    for first in [false, true] {
        let snap = snapshot_with(|services| {
            let s = service(services.len(), mapped([192, 168, 1, 100]));
            if first {
                services.insert(0, s);
                for (i, s) in services.iter_mut().enumerate() {
                    s.id = i as u16;
                }
            } else {
                services.push(s);
            }
        });
        let mut lab = Lab::with(snap, rvs_core::engine::EngineConfig::default());
        let (v, out) = lab.run(0, &syn([192, 168, 1, 100]));
        assert_eq!(
            v,
            Verdict::Forward { port: 1 },
            "mapped service first: {first}"
        );
        assert_eq!(out[30..34], [10, 0, 0, 2], "mapped service first: {first}");
    }
    // An address that is no VIP stays one: its packets fare as without the service.
    let other = [192, 168, 1, 200];
    let without = Lab::new().run(0, &syn(other));
    let mut lab = Lab::with(
        snapshot_with(|services| services.push(service(services.len(), mapped(other)))),
        rvs_core::engine::EngineConfig::default(),
    );
    assert_eq!(lab.run(0, &syn(other)), without);
}

/// Policy rules (keepalived's static_rules / virtual_rules, `ip rule`): a NAT reply is
/// routed from its VIP (IPVS's snat_reroute), so a rule for the VIP sends it to another
/// uplink's gateway; towards the server the lookup has no source (IPVS's), so a rule for
/// the client's address does not move it; a refusing rule drops; each new snapshot's
/// rules apply to established connections at once.
#[test]
fn policy_rules_route_replies_by_their_vip() {
    use rvs_core::engine::{Route, Rule, RuleAction};
    let gw2_mac = [2, 0xbb, 0, 0, 0, 2];
    let gw2 = IpAddr::from([192, 168, 1, 253]);
    let rule = |priority, from: Option<(IpAddr, u8)>, to, action| Rule {
        priority,
        ipv6: false,
        from,
        to,
        select: Default::default(),
        invert: false,
        action,
    };
    let vip = (IpAddr::from([192, 168, 1, 105]), 32);
    let client = (IpAddr::from(CLIENT), 32);
    let reply = rs9_reply;
    let mut lab = Lab::new();
    lab.snap.neighbours.insert(gw2, gw2_mac);
    lab.snap.routes.push(Route {
        prefix: IpAddr::from([0u8; 4]),
        len: 0,
        gateway: Some(gw2),
        port: 0,
        table: 100,
    });
    // Table 100 alone, named by no rule, changes nothing.
    lab.engine.adopt(&lab.snap);
    assert_eq!(lab.run(1, &rs9_is_at()).0, Verdict::ToHost);
    assert_eq!(
        lab.run(0, &syn_to_rs9(CLIENT_MAC, PORT0_MAC)),
        (Verdict::Forward { port: 1 }, syn_to_rs9(PORT1_MAC, RS9_MAC))
    );
    let replies = |lab: &mut Lab| lab.run(1, &reply(PORT1_MAC));
    assert_eq!(
        replies(&mut lab),
        (Verdict::Forward { port: 0 }, reply(GW_MAC))
    );
    // From the VIP, table 100: the established connection's replies move to gw2.
    lab.snap
        .set_rules(vec![rule(100, Some(vip), None, RuleAction::Table(100))]);
    lab.engine.adopt(&lab.snap);
    assert_eq!(
        replies(&mut lab),
        (Verdict::Forward { port: 0 }, reply(gw2_mac))
    );
    // Towards the server: a rule for the client's source does not apply (no source yet),
    // one for the server's address does: a refusal drops the packet.
    let to_server = |lab: &mut Lab| {
        let ack = |m: ([u8; 6], [u8; 6]), addr, ttl| {
            tcp4(m.0, m.1, CLIENT, addr, ttl, 40020, 80, false, true, b"")
        };
        (
            lab.run(0, &ack((CLIENT_MAC, PORT0_MAC), [192, 168, 1, 105], 64)),
            ack((PORT1_MAC, RS9_MAC), [10, 0, 0, 9], 63),
        )
    };
    lab.snap.set_rules(vec![
        rule(50, Some(client), None, RuleAction::Prohibit),
        rule(100, Some(vip), None, RuleAction::Table(100)),
    ]);
    lab.engine.adopt(&lab.snap);
    let (got, want) = to_server(&mut lab);
    assert_eq!(got, (Verdict::Forward { port: 1 }, want));
    lab.snap.set_rules(vec![rule(
        50,
        None,
        Some((IpAddr::from([10, 0, 0, 0]), 24)),
        RuleAction::Prohibit,
    )]);
    lab.engine.adopt(&lab.snap);
    let (got, _) = to_server(&mut lab);
    assert_eq!(got.0, Verdict::Drop(DropReason::NoRoute));
    // A goto past the VIP's rule, and `not`: the reply takes the main table again.
    lab.snap.set_rules(vec![
        rule(10, None, Some(client), RuleAction::Goto(200)),
        rule(100, Some(vip), None, RuleAction::Table(100)),
    ]);
    lab.engine.adopt(&lab.snap);
    assert_eq!(
        replies(&mut lab),
        (Verdict::Forward { port: 0 }, reply(GW_MAC))
    );
    let mut not_the_vip = rule(100, Some(vip), None, RuleAction::Table(100));
    not_the_vip.invert = true;
    lab.snap.set_rules(vec![not_the_vip]);
    lab.engine.adopt(&lab.snap);
    assert_eq!(
        replies(&mut lab),
        (Verdict::Forward { port: 0 }, reply(GW_MAC))
    );
    // By the service's protocol and port (the reply's source port), as IPVS reroutes a
    // reply with its flow: TCP from port 80 takes table 100; UDP, or port 81, does not;
    // nor does a rule for what comes in on a port (a reply is the appliance's own).
    let by_flow = |ipproto, sport, iif: Option<u16>| {
        let mut r = rule(100, None, None, RuleAction::Table(100));
        r.select.ipproto = Some(ipproto);
        r.select.sport = Some((sport, sport));
        r.select.iif = iif.map(|p| {
            let mut d = rvs_core::engine::RuleDev::new("lan").unwrap();
            d.port = Some(p);
            d
        });
        r
    };
    for (r, mac) in [
        (by_flow(6, 80, None), gw2_mac),
        (by_flow(17, 80, None), GW_MAC),
        (by_flow(6, 81, None), GW_MAC),
        (by_flow(6, 80, Some(1)), GW_MAC),
    ] {
        lab.snap.set_rules(vec![r]);
        lab.engine.adopt(&lab.snap);
        assert_eq!(
            replies(&mut lab),
            (Verdict::Forward { port: 0 }, reply(mac)),
            "{}",
            r.words()
        );
    }
    // By the reply's DS field (IPv4's TOS bits), as IPVS reroutes it: TOS 0x10 takes
    // table 100, 0 does not.
    let with_tos = |frame: Vec<u8>, tos: u8| {
        let mut f = frame;
        f[15] = tos;
        f[24..26].copy_from_slice(&[0, 0]);
        let sum = f[14..34]
            .chunks(2)
            .fold(0u32, |s, w| s + u32::from(u16::from_be_bytes([w[0], w[1]])));
        let folded = (sum & 0xffff) + (sum >> 16);
        f[24..26].copy_from_slice(&(!((folded & 0xffff) + (folded >> 16)) as u16).to_be_bytes());
        f
    };
    let mut by_tos = rule(100, None, None, RuleAction::Table(100));
    by_tos.select.tos = Some(0x10);
    lab.snap.set_rules(vec![by_tos]);
    lab.engine.adopt(&lab.snap);
    assert_eq!(
        lab.run(1, &with_tos(reply(PORT1_MAC), 0x10)),
        (Verdict::Forward { port: 0 }, with_tos(reply(gw2_mac), 0x10))
    );
    lab.engine.adopt(&lab.snap);
    assert_eq!(
        replies(&mut lab),
        (Verdict::Forward { port: 0 }, reply(GW_MAC))
    );
    // By the reply's firewall mark as it came in from the server (the last matching
    // [[fwmark]] rule's, iptables' mangle MARK; no service needed): `fwmark 5` takes
    // table 100 for the server's traffic marked 5, not for a mark of 6.
    let mut by_mark = rule(100, None, None, RuleAction::Table(100));
    by_mark.select.fwmark = Some((5, u32::MAX));
    for (mark, mac) in [(5, gw2_mac), (6, GW_MAC)] {
        let from_rs9 = |mark| rvs_core::engine::MarkRule {
            mark,
            proto: Some(6),
            dst: (IpAddr::from([0u8; 4]), 0),
            ports: (0, u16::MAX),
            src: Some((IpAddr::from([10, 0, 0, 9]), 32)),
        };
        // Another server's rule marks nothing here; the last matching rule decides.
        let mut other = from_rs9(5);
        other.src = Some((IpAddr::from([10, 0, 0, 8]), 32));
        lab.snap
            .set_route_marks(vec![from_rs9(7), from_rs9(mark), other]);
        lab.snap.set_rules(vec![by_mark]);
        lab.engine.adopt(&lab.snap);
        assert_eq!(
            replies(&mut lab),
            (Verdict::Forward { port: 0 }, reply(mac)),
            "mark {mark}"
        );
    }
    // Rules gone: the main table.
    lab.snap.set_rules(Vec::new());
    lab.engine.adopt(&lab.snap);
    assert_eq!(
        replies(&mut lab),
        (Verdict::Forward { port: 0 }, reply(GW_MAC))
    );
}
