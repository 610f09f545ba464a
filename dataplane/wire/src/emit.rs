//! Frames built from fields, for tools that make traffic of their own (`rvs preview` runs
//! synthetic connections through the engine). Tests build their frames with an independent
//! implementation instead.

use crate::checksum::{pseudo_v4, pseudo_v6};
use crate::ethernet::{EtherType, EthernetRepr};
use crate::ipv4::{Ipv4Repr, MIN_HEADER_LEN as IPV4_LEN};
use crate::ipv6::{Ipv6Repr, HEADER_LEN as IPV6_LEN};
use crate::proto;
use crate::tcp::{TcpRepr, MIN_HEADER_LEN as TCP_LEN, SYN};
use crate::udp::UdpRepr;
use std::net::IpAddr;

/// An Ethernet frame opening a connection: a TCP SYN, an SCTP INIT (`proto::SCTP`), or
/// (with `proto::UDP`) an empty UDP datagram, with valid checksums. `src` and `dst` must be of one family; None otherwise.
pub fn opening_frame(
    macs: ([u8; 6], [u8; 6]),
    src: IpAddr,
    dst: IpAddr,
    l4_proto: u8,
    ports: (u16, u16),
) -> Option<Vec<u8>> {
    let l4_len = match l4_proto {
        proto::TCP => TCP_LEN,
        proto::SCTP => crate::sctp::INIT_PACKET_LEN,
        _ => UdpRepr::LEN,
    };
    let (ethertype, l3_len) = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (EtherType::IPV4, IPV4_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => (EtherType::IPV6, IPV6_LEN),
        _ => return None,
    };
    let mut frame = vec![0u8; EthernetRepr::LEN + l3_len + l4_len];
    let (eth, rest) = frame.split_at_mut(EthernetRepr::LEN);
    let (l3, l4) = rest.split_at_mut(l3_len);
    EthernetRepr {
        dst: macs.1,
        src: macs.0,
        ethertype,
    }
    .emit(eth);
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Ipv4Repr {
                src: s.octets(),
                dst: d.octets(),
                protocol: l4_proto,
                payload_len: l4_len as u16,
                ttl: 64,
                ident: 0,
                dont_fragment: false,
                dscp_ecn: 0,
            }
            .emit(l3);
            pseudo_v4(s.octets(), d.octets(), l4_proto, l4_len as u16)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            Ipv6Repr {
                src: s.octets(),
                dst: d.octets(),
                next_header: l4_proto,
                payload_len: l4_len as u16,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(l3);
            pseudo_v6(s.octets(), d.octets(), l4_proto, l4_len as u32)
        }
        _ => return None,
    };
    let written = if l4_proto == proto::SCTP {
        crate::sctp::emit_init(l4, ports, u32::from(ports.0) << 16 | u32::from(ports.1))
    } else if l4_proto == proto::TCP {
        let syn = TcpRepr {
            src_port: ports.0,
            dst_port: ports.1,
            seq: 1,
            ack: 0,
            flags: SYN,
            window: 64240,
        };
        syn.emit(l4, pseudo)
    } else {
        let udp = UdpRepr {
            src_port: ports.0,
            dst_port: ports.1,
        };
        udp.emit(l4, pseudo)
    };
    written.ok().map(|()| frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{accumulate, finish};
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
        let f = opening_frame(macs, v6, w6, proto::SCTP, (40000, 5000)).unwrap();
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        let sctp = crate::SctpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((sctp.src_port(), sctp.dst_port()), (40000, 5000));
        assert_eq!(sctp.first_chunk(), Some(crate::sctp::chunk::INIT));
        assert!(sctp.verify_checksum());
    }
}
