//! Raw bytes through the engine and every wire view: nothing may panic, and a frame the
//! engine forwards from an intact one keeps valid checksums. The same bytes complete partial
//! checksums (idempotent), cut into instructions, make a capture filter program, and are
//! fragmented (IPv4 and IPv6) to an MTU the first byte picks: each fragment fits it with a
//! valid header, and their payloads join to the datagram's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::bpf::{Insn, Program};
use rvs_core::engine::{Frame, VecFrame, Verdict};
use rvs_testkit::invariants::forwarded_frame_ok;
use rvs_wire::{ArpPacket, EthernetFrame, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

fuzz_target!(|data: &[u8]| {
    let Some((&port, frame)) = data.split_first() else {
        return;
    };
    if let Ok(eth) = EthernetFrame::new_checked(frame) {
        let p = eth.payload();
        let _ = ArpPacket::new_checked(p).map(|a| a.op());
        if let Ok(ip) = Ipv4Packet::new_checked(p) {
            let _ = (
                ip.verify_checksum(),
                TcpPacket::new_checked(ip.payload()).is_ok(),
            );
            let _ = UdpPacket::new_checked(ip.payload()).is_ok();
        }
        if let Ok(ip) = Ipv6Packet::new_checked(p) {
            let _ = TcpPacket::new_checked(ip.payload()).is_ok();
        }
    }
    let mut completed = frame.to_vec();
    if rvs_wire::partial::complete_partial(&mut completed) {
        let mut again = completed.clone();
        rvs_wire::partial::complete_partial(&mut again);
        assert_eq!(again, completed, "completing twice changed the frame");
    }
    let insns: Vec<Insn> = data
        .chunks_exact(8)
        .take(64)
        .map(|c| Insn {
            code: u16::from_le_bytes([c[0], c[1]]) & 0xff,
            jt: c[2] % 8,
            jf: c[3] % 8,
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]) % 128,
        })
        .collect();
    if let Ok(program) = Program::new(insns) {
        let _ = program.run(frame);
    }
    let mut lab = rvs_testkit::lab::Lab::new();
    let mut f = VecFrame::new(frame);
    let v = lab
        .engine
        .process(&lab.snap, &lab.loads, 1, u16::from(port & 1), &mut f);
    let drops: u64 = lab.engine.counters().drops.iter().sum();
    assert!(drops <= 1, "{drops} drop counters for one frame");
    if let (Verdict::Forward { .. }, true) = (v, forwarded_frame_ok(frame, false).is_ok()) {
        if let Err(e) = forwarded_frame_ok(f.bytes(), f.ipv4_checksum_offload.is_some()) {
            panic!("{e}");
        }
    }
    let mtu = 68 + usize::from(port) * 6;
    let mut pieces = Vec::new();
    let fragmented = rvs_wire::fragment::fragment_ipv4(frame, mtu, |head, payload| {
        pieces.push((head.to_vec(), payload.to_vec()));
        true
    });
    if fragmented.is_ok() {
        let l3 = network_header(frame);
        let mut data = Vec::new();
        for (head, payload) in &pieces {
            assert_eq!(&head[..l3], &frame[..l3], "the link header repeated");
            let ip = &head[l3..];
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            assert!(total <= mtu, "a fragment of {total} bytes over {mtu}");
            assert_eq!(total, ip.len() + payload.len(), "total length");
            assert_eq!(rvs_wire::checksum::checksum(ip), 0, "header checksum");
            data.extend_from_slice(payload);
        }
        let whole = Ipv4Packet::new_checked(&frame[l3..]).expect("fragmented: IPv4");
        assert_eq!(
            data,
            whole.payload(),
            "the pieces join to the datagram's payload"
        );
    }
    // IPv6: each piece fits, a fragment header's offset is where its payload goes, and the
    // pieces join to the payload after the fixed header.
    let mut pieces = Vec::new();
    let fragmented = rvs_wire::fragment::fragment_ipv6(frame, mtu, 0x5eed, |head, payload| {
        pieces.push((head.to_vec(), payload.to_vec()));
        true
    });
    if fragmented.is_ok() {
        let l3 = network_header(frame);
        let whole_len = usize::from(u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]));
        let mut data = Vec::new();
        for (head, payload) in &pieces {
            assert_eq!(&head[..l3 + 4], &frame[..l3 + 4], "link and IPv6 header repeated");
            let len = usize::from(u16::from_be_bytes([head[l3 + 4], head[l3 + 5]]));
            assert_eq!(len, head.len() - l3 - 40 + payload.len(), "payload length");
            assert!(40 + len <= mtu || pieces.len() == 1, "a fragment over {mtu}");
            if pieces.len() > 1 {
                let offset = u16::from_be_bytes([head[l3 + 42], head[l3 + 43]]) & !7;
                assert_eq!(usize::from(offset), data.len(), "fragment offset");
            }
            data.extend_from_slice(payload);
        }
        assert_eq!(
            &data[..],
            &frame[l3 + 40..l3 + 40 + whole_len],
            "the pieces join to the datagram's payload"
        );
    }
});

/// The IP header's place, found here apart from the code under test: after up to two VLAN
/// tags.
fn network_header(frame: &[u8]) -> usize {
    let mut l3 = 14;
    while l3 < 22 && matches!(frame.get(l3 - 2..l3), Some([0x81, 0x00] | [0x88, 0xa8])) {
        l3 += 4;
    }
    l3
}
