//! Frames the VRRP runtime sends as whole Ethernet frames: gratuitous ARPs, IPv4 and
//! IPv6 adverts (to the group's MAC, or the VMAC's), unsolicited neighbour advertisements.

use super::*;

/// keepalived's gratuitous ARP: a broadcast request whose sender and target are both the
/// address, sent from the port's MAC, padded to the Ethernet minimum.
pub fn gratuitous_arp(mac: [u8; 6], addr: Ipv4Addr) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    rvs_wire::ArpRepr {
        op: rvs_wire::arp::OP_REQUEST,
        sender_mac: mac,
        sender_ip: addr.octets(),
        target_mac: [0xff; 6],
        target_ip: addr.octets(),
    }
    .emit(&mut f[14..42]);
    f
}

/// An IPv6 advert as a whole frame into `buf`: to `group` (ff02::12 unless mcast_dst_ip
/// says otherwise; its MAC 33:33 and the group's last 32 bits) from `mac` and `src`, hop
/// limit 255, the message with its pseudo-header checksum. Returns the frame's length (0:
/// the message does not fit).
/// The source MAC of an instance's adverts sent as whole frames: the virtual router's
/// (use_vmac) unless `vmac_xmit_base`, else the link's.
pub(super) fn advert_mac(conf: &Instance, link: &Link) -> [u8; 6] {
    match conf.vmac {
        Some(vmac) if !conf.vmac_xmit_base => vmac,
        _ => link.mac,
    }
}

/// The Ethernet address of an IPv4 multicast group (RFC 1112).
pub(super) fn group_mac_v4(g: [u8; 4]) -> [u8; 6] {
    [0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]]
}

/// An IPv4 advert as a whole frame (an instance whose adverts leave from its virtual
/// router MAC): to the group's multicast MAC, TTL 255, TOS 0xc0 (keepalived's network
/// control precedence).
pub fn advert_frame_v4(
    buf: &mut [u8],
    mac: [u8; 6],
    src: Ipv4Addr,
    group: Ipv4Addr,
    ident: u16,
    repr: &VrrpRepr,
    addrs: &[&[u8]],
) -> usize {
    const L4: usize = 14 + 20;
    let g = group.octets();
    let Some(body) = buf.get_mut(L4..) else {
        return 0;
    };
    let n = repr.emit(body, addrs, &src.octets(), &g);
    if n == 0 {
        return 0;
    }
    rvs_wire::ethernet::emit_header(buf, group_mac_v4(g), mac, rvs_wire::EtherType::IPV4);
    rvs_wire::ipv4::Ipv4Repr {
        src: src.octets(),
        dst: g,
        protocol: vrrp::PROTO,
        payload_len: n as u16,
        ttl: 255,
        ident,
        dont_fragment: false,
        dscp_ecn: 0xc0,
    }
    .emit(&mut buf[14..L4]);
    L4 + n
}

pub fn advert_frame_v6(
    buf: &mut [u8],
    mac: [u8; 6],
    src: Ipv6Addr,
    group: Ipv6Addr,
    repr: &VrrpRepr,
    addrs: &[&[u8]],
) -> usize {
    const L4: usize = 14 + 40;
    let group = group.octets();
    let Some(body) = buf.get_mut(L4..) else {
        return 0;
    };
    let n = repr.emit(body, addrs, &src.octets(), &group);
    if n == 0 {
        return 0;
    }
    rvs_wire::ethernet::emit_header(
        buf,
        [0x33, 0x33, group[12], group[13], group[14], group[15]],
        mac,
        rvs_wire::EtherType::IPV6,
    );
    rvs_wire::ipv6::Ipv6Repr {
        src: src.octets(),
        dst: group,
        next_header: vrrp::PROTO,
        payload_len: n as u16,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut buf[14..L4]);
    L4 + n
}

/// keepalived's unsolicited neighbour advertisement for a VIP: from the VIP to all nodes
/// (ff02::1), Override set (Router too when the appliance forwards), the port's MAC as the
/// target link-layer address.
pub fn unsolicited_na(
    buf: &mut [u8; icmpv6::ND_FRAME_LEN],
    mac: [u8; 6],
    vip: Ipv6Addr,
    router: bool,
) {
    let all_nodes = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let flags = icmpv6::NA_OVERRIDE | if router { icmpv6::NA_ROUTER } else { 0 };
    icmpv6::emit_nd_frame(
        buf,
        [0x33, 0x33, 0, 0, 0, 1],
        mac,
        vip.octets(),
        all_nodes,
        |m| icmpv6::emit_neighbor_advert(m, vip.octets(), mac, flags),
    );
}
