//! Frames built from fields, for tools that make traffic of their own (`rvs preview` runs
//! synthetic connections through the engine). Tests build their frames with an independent
//! implementation instead.

use crate::checksum::{accumulate, finish, pseudo_v4, pseudo_v6};
use crate::proto;
use std::net::IpAddr;

/// An Ethernet frame opening a connection: a TCP SYN, or (with `proto::UDP`) an empty UDP
/// datagram, with valid checksums. `src` and `dst` must be of one family; None otherwise.
pub fn opening_frame(
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    l4_proto: u8,
    ports: (u16, u16),
) -> Option<Vec<u8>> {
    let mut l4 = Vec::with_capacity(20);
    l4.extend_from_slice(&ports.0.to_be_bytes());
    l4.extend_from_slice(&ports.1.to_be_bytes());
    if l4_proto == proto::TCP {
        l4.extend_from_slice(&1u32.to_be_bytes()); // sequence
        l4.extend_from_slice(&0u32.to_be_bytes()); // acknowledgement
        l4.extend_from_slice(&[0x50, 0x02]); // 20-byte header, SYN
        l4.extend_from_slice(&64240u16.to_be_bytes()); // window
        l4.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    } else {
        l4.extend_from_slice(&8u16.to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    let check_at = if l4_proto == proto::TCP { 16 } else { 6 };
    let mut frame = Vec::with_capacity(14 + 40 + l4.len());
    frame.extend_from_slice(&macs.1);
    frame.extend_from_slice(&macs.0);
    let sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame.extend_from_slice(&[0x08, 0x00]);
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + l4.len() as u16).to_be_bytes());
            ip[8] = 64;
            ip[9] = l4_proto;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = finish(accumulate(0, &ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            frame.extend_from_slice(&ip);
            pseudo_v4(s.octets(), d.octets(), l4_proto, l4.len() as u16)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame.extend_from_slice(&[0x86, 0xdd]);
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            ip[6] = l4_proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            frame.extend_from_slice(&ip);
            pseudo_v6(s.octets(), d.octets(), l4_proto, l4.len() as u32)
        }
        _ => return None,
    };
    let c = finish(accumulate(sum, &l4));
    if let Some(field) = l4.get_mut(check_at..check_at + 2) {
        field.copy_from_slice(&c.to_be_bytes());
    }
    frame.extend_from_slice(&l4);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EthernetFrame, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

    #[test]
    fn opening_frames_parse_with_valid_checksums() {
        let macs = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let f = opening_frame(
            macs,
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            proto::TCP,
            (1234, 80),
        )
        .unwrap();
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port()), (1234, 80));
        assert_eq!(finish(accumulate(ip.pseudo_header(), ip.payload())), 0);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let w6: IpAddr = "2001:db8::2".parse().unwrap();
        let f = opening_frame(macs, v6, w6, proto::UDP, (53, 53)).unwrap();
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), 53);
        assert!(opening_frame(macs, v6, [1, 2, 3, 4].into(), proto::TCP, (1, 2)).is_none());
    }
}
