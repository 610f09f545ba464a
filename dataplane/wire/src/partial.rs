//! Completing the TCP and UDP checksums a kernel device left partial.
//!
//! A Linux device with transmit checksum offload (a veth, a tap, most virtual NICs) hands
//! the next hop a frame whose L4 checksum field holds only the folded pseudo-header sum,
//! expecting hardware to finish it (`CHECKSUM_PARTIAL`). Ports that read such devices
//! directly (AF_XDP, AF_PACKET) receive that frame as it is; forwarded unchanged (or
//! rewritten incrementally) it reaches the server with a wrong checksum. A field equal to
//! the pseudo-header sum is the mark: the checksum is then computed in full. A complete
//! checksum that happens to carry that value is recomputed to the same value.

use crate::checksum::{accumulate, finish, fold, pseudo_v4, pseudo_v6};
use crate::ethernet::{EtherType, HEADER_LEN, VLAN_TAG_LEN};

const TCP: u8 = 6;
const UDP: u8 = 17;
/// Offset of the checksum field in each protocol's header, and its least length.
const TCP_CHECK: usize = 16;
const TCP_MIN: usize = 20;
const UDP_CHECK: usize = 6;
const UDP_MIN: usize = 8;

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

fn array<const N: usize>(frame: &[u8], at: usize) -> Option<[u8; N]> {
    frame.get(at..at + N)?.try_into().ok()
}

/// Where the L4 segment lies, its protocol and its pseudo-header accumulator.
fn segment(frame: &[u8]) -> Option<(usize, usize, u8, u32)> {
    let mut at = HEADER_LEN;
    let mut ether_type = be16(frame, HEADER_LEN - 2)?;
    for _ in 0..2 {
        if ether_type != EtherType::VLAN && ether_type != EtherType::QINQ {
            break;
        }
        ether_type = be16(frame, at + 2)?;
        at += VLAN_TAG_LEN;
    }
    match ether_type {
        EtherType::IPV4 => {
            let first = *frame.get(at)?;
            let header = usize::from(first & 0x0f) * 4;
            let total = usize::from(be16(frame, at + 2)?);
            // Offloaded checksums are never on fragments.
            if first >> 4 != 4
                || header < 20
                || total < header
                || be16(frame, at + 6)? & 0x3fff != 0
            {
                return None;
            }
            let proto = *frame.get(at + 9)?;
            let len = total - header;
            let pseudo = pseudo_v4(
                array(frame, at + 12)?,
                array(frame, at + 16)?,
                proto,
                len as u16,
            );
            Some((at + header, len, proto, pseudo))
        }
        EtherType::IPV6 => {
            // Offload puts TCP or UDP right after the fixed header.
            let len = usize::from(be16(frame, at + 4)?);
            let proto = *frame.get(at + 6)?;
            let pseudo = pseudo_v6(
                array(frame, at + 8)?,
                array(frame, at + 24)?,
                proto,
                len as u32,
            );
            Some((at + 40, len, proto, pseudo))
        }
        _ => None,
    }
}

/// Completes the frame's TCP or UDP checksum if it is partial; true when it did.
pub fn complete_partial(frame: &mut [u8]) -> bool {
    let Some((l4, len, proto, pseudo)) = segment(frame) else {
        return false;
    };
    let (field, least) = match proto {
        TCP => (l4 + TCP_CHECK, TCP_MIN),
        UDP => (l4 + UDP_CHECK, UDP_MIN),
        _ => return false,
    };
    if len < least || be16(frame, field) != Some(fold(pseudo)) {
        return false;
    }
    let Some(check) = frame.get_mut(field..field + 2) else {
        return false;
    };
    check.copy_from_slice(&[0, 0]);
    let Some(bytes) = frame.get(l4..l4 + len) else {
        return false;
    };
    let mut sum = finish(accumulate(pseudo, bytes));
    if proto == UDP && sum == 0 {
        sum = 0xffff;
    }
    if let Some(check) = frame.get_mut(field..field + 2) {
        check.copy_from_slice(&sum.to_be_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    /// A frame built by etherparse (complete checksums) for the given shape.
    fn frame(v6: bool, vlan: bool, udp: bool, payload: &[u8], port: u16) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match (vlan, v6) {
            (false, false) => eth.ipv4([192, 168, 110, 2], [192, 168, 110, 100], 64),
            (true, false) => {
                eth.single_vlan(7.try_into().unwrap())
                    .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            }
            (false, true) => eth.ipv6([0x20; 16], [0x30; 16], 64),
            (true, true) => eth
                .single_vlan(7.try_into().unwrap())
                .ipv6([0x20; 16], [0x31; 16], 64),
        };
        let mut out = Vec::new();
        if udp {
            let b = ip.udp(port, 53);
            b.write(&mut out, payload).unwrap();
        } else {
            let b = ip.tcp(port, 80, 1000, 64240).syn();
            b.write(&mut out, payload).unwrap();
        }
        out
    }

    fn check_field(frame: &[u8]) -> (usize, u16) {
        let (l4, _, proto, _) = segment(frame).unwrap();
        let at = l4 + if proto == TCP { TCP_CHECK } else { UDP_CHECK };
        (at, be16(frame, at).unwrap())
    }

    /// What a sending kernel leaves: the folded pseudo-header sum in the field.
    fn made_partial(frame: &[u8]) -> Vec<u8> {
        let mut f = frame.to_vec();
        let (at, _) = check_field(&f);
        let (_, _, _, pseudo) = segment(&f).unwrap();
        f[at..at + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
        f
    }

    #[test]
    fn a_veths_syn_is_completed() {
        // curl's SYN as tcpdump showed it on a veth: 192.168.110.2.59488 > 192.168.110.100.80,
        // options [mss 1460,sackOK,TS,nop,wscale 10], "cksum 0x5de6 (incorrect -> 0x89ca)".
        use etherparse::TcpOptionElement::*;
        let mut whole = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 110, 2], [192, 168, 110, 100], 64)
            .tcp(59488, 80, 761828965, 64240)
            .syn()
            .options(&[
                MaximumSegmentSize(1460),
                SelectiveAcknowledgementPermitted,
                Timestamp(2420582596, 0),
                Noop,
                WindowScale(10),
            ])
            .unwrap()
            .write(&mut whole, &[])
            .unwrap();
        let mut f = made_partial(&whole);
        assert_eq!(check_field(&f).1, 0x5de6);
        assert!(complete_partial(&mut f));
        assert_eq!(check_field(&f).1, 0x89ca);
        assert_eq!(f, whole);
        // Done once: a second pass finds nothing to do.
        assert!(!complete_partial(&mut f));
    }

    #[test]
    fn fragments_and_other_protocols_are_left_alone() {
        let mut f = made_partial(&frame(false, false, true, b"abc", 5353));
        let ip = HEADER_LEN;
        f[ip + 6] = 0x20; // more fragments
        let before = f.clone();
        assert!(!complete_partial(&mut f));
        assert_eq!(f, before);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&EtherType::ARP.to_be_bytes());
        assert!(!complete_partial(&mut arp));
    }

    proptest! {
        #[test]
        fn partial_frames_come_out_as_the_sender_meant(
            v6: bool, vlan: bool, udp: bool, port in 1u16.., payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let whole = frame(v6, vlan, udp, &payload, port);
            let mut f = made_partial(&whole);
            let completed = complete_partial(&mut f);
            prop_assert_eq!(&f, &whole);
            prop_assert!(completed);
            // A complete checksum is never changed.
            let mut g = whole.clone();
            complete_partial(&mut g);
            prop_assert_eq!(&g, &whole);
            let parsed = SlicedPacket::from_ethernet(&g).unwrap();
            prop_assert!(matches!(parsed.transport, Some(TransportSlice::Tcp(_)) | Some(TransportSlice::Udp(_))));
        }

        #[test]
        fn any_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            complete_partial(&mut bytes);
        }
    }
}
