//! The forwarding methods: NAT (rewrite both ways), DR (MAC only) and TUN (IP-in-IP), and
//! the header rewrites and encapsulation they share.

use super::*;
use crate::{Tunnel, TunnelCsum, TunnelKind};
use rvs_wire::{array_at, array_mut, checksum};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Src,
    Dst,
}

/// NAT rewrite of one side's address and port, TTL / hop limit decremented, every checksum
/// updated incrementally.
#[inline(always)]
pub(super) fn rewrite(b: &mut [u8], flow: &Flow, side: Side, addr: Addr16, port: u16) {
    if !rewrite_v4(b, flow, side, addr, port, true) {
        rewrite_side_general(b, flow, side, addr, port, true);
    }
}

/// The other side's rewrite of full NAT (the TTL was decremented by the first).
#[inline]
pub(super) fn rewrite_keeping_ttl(b: &mut [u8], flow: &Flow, side: Side, addr: Addr16, port: u16) {
    if !rewrite_v4(b, flow, side, addr, port, false) {
        rewrite_side_general(b, flow, side, addr, port, false);
    }
}

/// [`rewrite`] for IPv6, fragments, SCTP and what is too short for the IPv4 one.
#[cold]
#[inline(never)]
fn rewrite_side_general(b: &mut [u8], flow: &Flow, side: Side, addr: Addr16, port: u16, hop: bool) {
    let old_addr = match side {
        Side::Dst => flow.dst,
        Side::Src => flow.src,
    };
    // IPv4: the mapped address's last four bytes.
    let (old, new): (&[u8], &[u8]) = if flow.v6 {
        (&old_addr, &addr)
    } else {
        (&old_addr[12..], &addr[12..])
    };
    set_ip_address(b, flow, side, addr, hop);
    let Some(l4b) = b.get_mut(flow.l4()..flow.end()) else {
        return;
    };
    match flow.frag {
        Frag::Whole => {}
        Frag::First(_) => return rewrite_first_fragment(l4b, flow.proto, side, (old, new), port),
        Frag::Later(_) => return,
    }
    match flow.proto {
        proto::TCP => {
            if let Ok(mut t) = TcpPacket::new_checked(l4b) {
                t.adjust_checksum(old, new);
                match side {
                    Side::Dst => t.set_dst_port(port),
                    Side::Src => t.set_src_port(port),
                }
            }
        }
        proto::UDP => {
            if let Ok(mut u) = UdpPacket::new_checked(l4b) {
                u.adjust_checksum(old, new);
                match side {
                    Side::Dst => u.set_dst_port(port),
                    Side::Src => u.set_src_port(port),
                }
            }
        }
        // No pseudo-header: only a port change needs the CRC computed anew (as IPVS).
        proto::SCTP => {
            if let Ok(mut s) = SctpPacket::new_checked(l4b) {
                let old_port = match side {
                    Side::Dst => s.dst_port(),
                    Side::Src => s.src_port(),
                };
                if old_port != port {
                    match side {
                        Side::Dst => s.set_dst_port(port),
                        Side::Src => s.set_src_port(port),
                    }
                    s.fill_checksum();
                }
            }
        }
        _ => {}
    }
}

/// A whole IPv4 TCP/UDP datagram's rewrite: the address, port and TTL written, the header
/// checksum and the L4 checksum each updated once by the sum of the changes (RFC 1624).
/// The sums are taken over the words as they lie in memory (a ones'-complement sum does
/// not depend on byte order, RFC 1071), so nothing is byte-swapped. False, with nothing
/// written, for anything else or a frame too short for the flow's offsets (the general
/// rewrite then handles or refuses it).
#[inline(always)]
fn rewrite_v4(b: &mut [u8], flow: &Flow, side: Side, addr: Addr16, port: u16, hop: bool) -> bool {
    let old_addr = match side {
        Side::Dst => flow.dst,
        Side::Src => flow.src,
    };
    // (An IPv4 flow's addresses are mapped ones; the new address may be of either family.)
    let (false, Some(new), Frag::Whole, proto::TCP | proto::UDP) =
        (flow.v6, mapped_v4(&addr), flow.frag, flow.proto)
    else {
        return false;
    };
    let old = low4(&old_addr);
    let tcp = flow.proto == proto::TCP;
    let (l3, l4) = (flow.l3(), flow.l4());
    // Everything checked before anything is written.
    if l4 < l3 + ipv4::MIN_HEADER_LEN || b.len() < l4 + if tcp { 18 } else { 8 } {
        return false;
    }
    // Fixed-size views of the two headers: every access below is at a constant offset.
    let (head, tail) = b.split_at_mut(l4);
    let (Some(ip), Some(ports)) = (
        array_mut::<{ ipv4::MIN_HEADER_LEN }>(head, l3),
        array_mut::<8>(tail, 0),
    ) else {
        return false;
    };
    let (addr_at, port_at) = match side {
        Side::Src => (12, 0),
        Side::Dst => (16, 2),
    };
    let word =
        |h: &[u8], at: usize| array_at(h, at).map_or(0, |w| u32::from(u16::from_ne_bytes(w)));
    let (old, new) = (u32::from_ne_bytes(old), u32::from_ne_bytes(new));
    // ~m + m' for the address's two words.
    let addr_sum = (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    let mut ip_sum = addr_sum;
    if hop {
        let ttl_word = word(ip, 8);
        ip[8] = flow.ttl.saturating_sub(1);
        ip_sum += (!ttl_word & 0xffff) + word(ip, 8);
    }
    if let Some(a) = array_mut::<4>(ip, addr_at) {
        *a = new.to_ne_bytes();
    }
    let ip_check = checksum::adjust(word(ip, 10) as u16, ip_sum);
    ip[10..12].copy_from_slice(&ip_check.to_ne_bytes());
    let old_port = word(ports, port_at);
    if let Some(p) = array_mut::<2>(ports, port_at) {
        *p = port.to_be_bytes();
    }
    let l4_sum = addr_sum + (!old_port & 0xffff) + word(ports, port_at);
    if !tcp {
        // UDP over IPv4 may carry none (zero), which stays none; a computed zero is sent
        // as all ones.
        let check = word(ports, 6) as u16;
        if check != 0 {
            let c = checksum::adjust(check, l4_sum);
            ports[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_ne_bytes());
        }
        return true;
    }
    let Some(check) = array_mut::<2>(tail, 16) else {
        return false;
    };
    *check = checksum::adjust(u16::from_ne_bytes(*check), l4_sum).to_ne_bytes();
    true
}

/// The L4 header of a first fragment: its ports and its checksum, which covers the whole
/// datagram (updated incrementally: the sum is linear). UDP's zero ("none") stays zero.
fn rewrite_first_fragment(
    l4b: &mut [u8],
    proto_num: u8,
    side: Side,
    (old, new): (&[u8], &[u8]),
    port: u16,
) {
    let at = match proto_num {
        proto::TCP => 16,
        proto::UDP => 6,
        _ => return,
    };
    let port_at = if side == Side::Dst { 2 } else { 0 };
    let (Some(p), Some(c)) = (array_at(l4b, port_at), array_at(l4b, at)) else {
        return;
    };
    let (old_port, check) = (u16::from_be_bytes(p), u16::from_be_bytes(c));
    if let Some(p) = l4b.get_mut(port_at..port_at + 2) {
        p.copy_from_slice(&port.to_be_bytes());
    }
    if proto_num == proto::UDP && check == 0 {
        return;
    }
    let mut check = checksum::update_bytes(check, old, new);
    check = checksum::update16(check, old_port, port);
    if proto_num == proto::UDP && check == 0 {
        check = 0xffff;
    }
    if let Some(c) = l4b.get_mut(at..at + 2) {
        c.copy_from_slice(&check.to_be_bytes());
    }
}

/// Rewrites one address of the outer IP header (header checksum kept) and decrements the
/// TTL / hop limit; the L4 checksum is the caller's.
pub(super) fn rewrite_ip_only(b: &mut [u8], flow: &Flow, side: Side, addr: Addr16) {
    set_ip_address(b, flow, side, addr, true);
}

pub(super) fn set_ip_address(b: &mut [u8], flow: &Flow, side: Side, addr: Addr16, hop: bool) {
    let Some(ipb) = b.get_mut(flow.l3()..flow.end()) else {
        return;
    };
    if flow.v6 {
        if let Ok(mut ip) = Ipv6Packet::new_checked(&mut *ipb) {
            match side {
                Side::Dst => ip.set_dst(addr),
                Side::Src => ip.set_src(addr),
            }
            if hop {
                ip.set_hop_limit(flow.ttl.saturating_sub(1));
            }
        }
    } else if let Ok(mut ip) = Ipv4Packet::new_checked(&mut *ipb) {
        match side {
            Side::Dst => ip.set_dst(low4(&addr)),
            Side::Src => ip.set_src(low4(&addr)),
        }
        if hop {
            ip.set_ttl(flow.ttl.saturating_sub(1));
        }
    }
}

/// The UDP source port of a GUE-encapsulated flow: a hash of the inner flow spread over
/// Linux's default ephemeral range (32768-60999), as the kernel's udp_flow_src_port.
fn gue_source_port(flow: &Flow) -> u16 {
    let mut h: u32 = 0x9e37_79b9;
    for v in [
        u32::from(flow.sport),
        u32::from(flow.dport),
        u32::from(flow.proto),
    ]
    .into_iter()
    .chain(
        flow.src
            .as_chunks()
            .0
            .iter()
            .map(|&c| u32::from_be_bytes(c)),
    )
    .chain(
        flow.dst
            .as_chunks()
            .0
            .iter()
            .map(|&c| u32::from_be_bytes(c)),
    ) {
        h = (h ^ v).wrapping_mul(0x0100_0193).rotate_left(13);
    }
    let (min, max) = (32768u64, 60999u64);
    (((u64::from(h) * (max - min)) >> 32) + min) as u16
}

/// Wraps the IP datagram in an outer IP header (to `src` from `dst`) after a fresh Ethernet
/// header, with the tunnel's own header between them: none (IP-in-IP, IPv6-in-IPv6), UDP
/// and GUE (to the tunnel's port, the UDP checksum filled with `--tun-csum` or
/// `--tun-remcsum`), or GRE (with its checksum for `--tun-csum`). Any VLAN tag of the frame
/// is not kept. With `offload`, the port fills in the outer IPv4 checksum.
pub(super) fn encapsulate<F: Frame>(
    frame: &mut F,
    flow: &Flow,
    (src, dst): (IpAddr, IpAddr),
    (hop_mac, port_mac): ([u8; 6], [u8; 6]),
    (tunnel, outer_frag): (Tunnel, OuterFragmentation),
    offload: bool,
) -> bool {
    if let (IpAddr::V4(s), IpAddr::V4(d), false, TunnelKind::Ipip) =
        (src, dst, flow.v6, tunnel.kind)
    {
        if flow.l3() == ethernet::HEADER_LEN {
            return ipip4(
                frame,
                flow,
                (s.octets(), d.octets()),
                (hop_mac, port_mac),
                outer_frag,
                offload,
            );
        }
    }
    encapsulate_any(
        frame,
        flow,
        (src, dst),
        (hop_mac, port_mac),
        (tunnel, outer_frag),
        offload,
    )
}

/// [`encapsulate`] for every family, tunnel kind and link header.
fn encapsulate_any<F: Frame>(
    frame: &mut F,
    flow: &Flow,
    (src, dst): (IpAddr, IpAddr),
    (hop_mac, port_mac): ([u8; 6], [u8; 6]),
    (tunnel, outer_frag): (Tunnel, OuterFragmentation),
    offload: bool,
) -> bool {
    // The outer header is the server's family (IPVS tunnels IPv4 in IPv6 and back).
    let outer_v6 = dst.is_ipv6();
    let ip_len = if outer_v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::MIN_HEADER_LEN
    };
    let tun_len = tunnel.header_len();
    let outer = ip_len + tun_len;
    let inner_len = flow.end() - flow.l3();
    // Drop Ethernet padding and tags: the inner datagram starts right after the new headers.
    frame.truncate(flow.end());
    let grow = (ethernet::HEADER_LEN + outer).saturating_sub(flow.l3());
    let shrink = flow.l3().saturating_sub(ethernet::HEADER_LEN + outer);
    if grow > 0 && !frame.prepend(grow) {
        return false;
    }
    let b = frame.bytes_mut();
    // More link header than needed (two VLAN tags on IPv4): move the datagram down.
    let inner = flow.l3()..flow.l3() + inner_len;
    if shrink > 0 && !rvs_wire::move_within(b, inner, ethernet::HEADER_LEN + outer) {
        return false;
    }
    let inner_proto = if flow.v6 { proto::IPV6 } else { proto::IPIP };
    let protocol = match tunnel.kind {
        TunnelKind::Ipip => inner_proto,
        TunnelKind::Gue => proto::UDP,
        TunnelKind::Gre => proto::GRE,
    };
    let et = ip_ethertype(outer_v6);
    ethernet::emit_header(b, hop_mac, port_mac, et);
    let l3 = ethernet::HEADER_LEN;
    let payload_len = (tun_len + inner_len) as u16;
    let Some(outer_ip) = b.get_mut(l3..) else {
        return false;
    };
    if outer_v6 {
        ipv6::Ipv6Repr {
            src: addr16(src),
            dst: addr16(dst),
            next_header: protocol,
            payload_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(outer_ip);
    } else {
        ipv4::Ipv4Repr {
            src: addr_bytes4(src),
            dst: addr_bytes4(dst),
            protocol,
            payload_len,
            ttl: 64,
            ident: outer_frag.ident,
            dont_fragment: outer_frag.dont_fragment,
            dscp_ecn: 0,
        }
        .emit(outer_ip);
    }
    let t = l3 + ip_len;
    let csum = tunnel.csum != TunnelCsum::NoCsum;
    match tunnel.kind {
        TunnelKind::Ipip => {}
        TunnelKind::Gue => {
            // UDP, then GUE version 0 without options: the inner protocol in proto/ctype.
            let udp_len = payload_len;
            let Some(header) = array_mut::<12>(b, t) else {
                return false;
            };
            let ([s0, s1], [d0, d1]) = (
                gue_source_port(flow).to_be_bytes(),
                tunnel.port.to_be_bytes(),
            );
            let [l0, l1] = udp_len.to_be_bytes();
            *header = [s0, s1, d0, d1, l0, l1, 0, 0, 0, inner_proto, 0, 0];
            if csum {
                let pseudo = if outer_v6 {
                    checksum::pseudo_v6(addr16(src), addr16(dst), proto::UDP, u32::from(udp_len))
                } else {
                    checksum::pseudo_v4(addr_bytes4(src), addr_bytes4(dst), proto::UDP, udp_len)
                };
                let end = t + usize::from(udp_len);
                let datagram = b.get(t..end).unwrap_or_default();
                let sum = checksum::finish(checksum::accumulate(pseudo, datagram));
                let sum = if sum == 0 { 0xffff } else { sum };
                if let Some(check) = array_mut::<2>(b, t + 6) {
                    *check = sum.to_be_bytes();
                }
            }
        }
        TunnelKind::Gre => {
            let gre_proto = ip_ethertype(flow.v6);
            let flags: u16 = if tunnel.csum == TunnelCsum::Csum {
                0x8000
            } else {
                0
            };
            let Some(header) = array_mut::<4>(b, t) else {
                return false;
            };
            let ([f0, f1], [p0, p1]) = (flags.to_be_bytes(), gre_proto.to_be_bytes());
            *header = [f0, f1, p0, p1];
            // The checksum and reserved fields follow only with a checksum.
            if tunnel.csum == TunnelCsum::Csum {
                if let Some(fields) = array_mut::<4>(b, t + 4) {
                    *fields = [0; 4];
                }
                let end = t + usize::from(payload_len);
                let sum = checksum::checksum(b.get(t..end).unwrap_or_default());
                if let Some(check) = array_mut::<2>(b, t + 4) {
                    *check = sum.to_be_bytes();
                }
            }
        }
    }
    if shrink > 0 {
        frame.truncate(ethernet::HEADER_LEN + outer + inner_len);
    }
    if !outer_v6 && offload && frame.offload_ipv4_checksum(l3, ip_len) {
        if let Some(c) = frame.bytes_mut().get_mut(l3 + 10..l3 + 12) {
            c.fill(0);
        }
    }
    true
}

/// [`encapsulate`] for the common case, IPv4 in IPv4 from an untagged frame: the outer
/// header goes into 20 bytes of headroom, the Ethernet header before it.
fn ipip4<F: Frame>(
    frame: &mut F,
    flow: &Flow,
    (src, dst): ([u8; 4], [u8; 4]),
    (hop_mac, port_mac): ([u8; 6], [u8; 6]),
    outer_frag: OuterFragmentation,
    offload: bool,
) -> bool {
    const L3: usize = ethernet::HEADER_LEN;
    let inner_len = flow.end() - flow.l3();
    frame.truncate(flow.end());
    if !frame.prepend(ipv4::MIN_HEADER_LEN) {
        return false;
    }
    let b = frame.bytes_mut();
    ethernet::emit_header(b, hop_mac, port_mac, EtherType::IPV4);
    if let Some(ip) = b.get_mut(L3..) {
        ipv4::Ipv4Repr {
            src,
            dst,
            protocol: proto::IPIP,
            payload_len: inner_len as u16,
            ttl: 64,
            ident: outer_frag.ident,
            dont_fragment: outer_frag.dont_fragment,
            dscp_ecn: 0,
        }
        .emit(ip);
    }
    if offload && frame.offload_ipv4_checksum(L3, ipv4::MIN_HEADER_LEN) {
        if let Some(c) = frame.bytes_mut().get_mut(L3 + 10..L3 + 12) {
            c.fill(0);
        }
    }
    true
}

/// Whether a tunnel's outer IPv4 header has DF: the inner IPv4 header's, unless IPVS's
/// pmtu_disc is off (the kernel then leaves it clear and fragments).
#[inline]
pub(super) fn outer_df(snap: &Snapshot, flow: &Flow) -> bool {
    flow.df && !flow.v6 && snap.pmtu_disc
}

/// The frame's destination and source MACs (the first 12 bytes, tagged or not: a frame the
/// engine forwards was parsed as Ethernet).
pub(super) fn set_macs(b: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    if let Some(macs) = array_mut::<12>(b, 0) {
        macs[..6].copy_from_slice(&dst);
        macs[6..].copy_from_slice(&src);
    }
}

pub(super) fn ip_ethertype(v6: bool) -> u16 {
    if v6 {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    }
}

pub(super) fn addr_bytes4(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(_) => [0; 4],
    }
}

/// An IPv4-mapped address's IPv4 octets (the last four bytes).
#[inline]
pub(super) fn low4(a: &Addr16) -> [u8; 4] {
    [a[12], a[13], a[14], a[15]]
}

/// An outer IPv4 header's fragmentation fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct OuterFragmentation {
    pub dont_fragment: bool,
    pub ident: u16,
}

/// Whether a datagram leaves whole or in fragments of at most the MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    Whole,
    Split(u16),
}

impl Fit {
    /// The verdict that sends the frame out of `port` this way.
    pub(super) fn out(self, port: u16) -> Verdict {
        match self {
            Fit::Whole => Verdict::Forward { port },
            Fit::Split(mtu) => Verdict::Fragment { port, mtu },
        }
    }
}

/// Whether an opening packet on connection `c`'s ports starts a new connection (IPVS's
/// is_new_conn_expected under conn_reuse_mode, and expire_nodest_conn's weight-0 case).
fn reused(snap: &Snapshot, c: &Conn) -> bool {
    if snap.expire_nodest_conn && snap.server_quiesced(c.dest) {
        return true;
    }
    // Besides a finished one, the last state a director that sees no replies (DR, TUN) sees.
    crate::conn::state_is_finished(c.proto, c.state)
        || (c.proto == proto::TCP
            && TcpState::from_u8(c.state) == TcpState::FinWait
            && snap.conn_reuse_mode & 2 != 0
            && c.method != ForwardMethod::Nat)
}

impl Engine {
    /// How a datagram leaves a port of MTU `mtu`: whole when it fits; larger, in
    /// fragments when it is IPv4 without DF, else (IPv4 with DF, IPv6) not at all: ICMP
    /// "fragmentation needed" / "packet too big" goes to its sender (the `Err`), as a
    /// router and IPVS do.
    pub(super) fn fit_mtu<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        flow: &Flow,
        mtu: u16,
        frame: &mut F,
    ) -> Result<Fit, Verdict> {
        if flow.end() - flow.l3() <= usize::from(mtu) {
            Ok(Fit::Whole)
        } else if flow.v6 || flow.df {
            Err(self.icmp_error(snap, now, *flow, IcmpError::TooBig(usize::from(mtu)), frame))
        } else {
            Ok(Fit::Split(mtu))
        }
    }

    /// An outer IPv4 header's DF and identification: with DF, 0 (an atomic datagram, RFC
    /// 6864); else the worker's next; the workers take turns (worker `i` of `n` the
    /// numbers `k * n + i`), so none repeats another's before they wrap.
    pub(super) fn outer_fragmentation(&mut self, df: bool) -> OuterFragmentation {
        if df {
            return OuterFragmentation {
                dont_fragment: true,
                ident: 0,
            };
        }
        self.next_ident = self.next_ident.wrapping_add(self.owner.1 as u16);
        OuterFragmentation {
            dont_fragment: false,
            ident: self.next_ident,
        }
    }

    /// Whether connection `id`'s real server was deleted. Asked only while the entry has
    /// no next hop towards its server cached in this epoch (a deletion comes with a new
    /// snapshot, which ends the epoch), so established packets on the fast lane skip it.
    #[inline]
    pub(super) fn server_removed(&self, snap: &Snapshot, id: crate::conn::ConnId) -> bool {
        self.table.get(id).is_some_and(|c| {
            (c.hop_epoch != self.hop_epoch || c.hop_to_server == NO_HOP)
                && of_a_server(c.dest)
                && !snap.has_server(c.dest)
        })
    }

    /// Client -> real server.
    #[inline(always)]
    pub(super) fn forward_to_server<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        flow: &Flow,
        frame: &mut F,
    ) -> Verdict {
        let key = in_key(flow);
        let mut found = match flow.in_hash() {
            Some(h) => self.table.lookup_in_hashed(&key, h),
            None => self.table.lookup_in(&key),
        };
        // conn_reuse_mode: a SYN on a finished connection's ports starts a new one.
        let reopens = snap.conn_reuse_mode != 0
            && matches!(flow.proto, proto::TCP | proto::SCTP)
            && opens_connection(flow);
        if let (Some(id), true) = (found, reopens) {
            let ended = self.table.get(id).is_some_and(|c| reused(snap, c));
            if ended {
                self.release(id, loads);
                found = None;
            }
        }
        // Its server deleted (IPVS: no longer available): dropped, or with
        // expire_nodest_conn ended now and the packet scheduled anew. (A port's reuse,
        // above, comes first, as in ip_vs_in.)
        if let Some(id) = found.filter(|&id| self.server_removed(snap, id)) {
            if !snap.expire_nodest_conn {
                return self.drop(DropReason::ServerRemoved);
            }
            self.release(id, loads);
            found = None;
        }
        let fresh = found.is_none();
        let id = match found {
            Some(id) => id,
            None => match self
                .ftp_passive_data(snap, loads, now, key, flow)
                .unwrap_or_else(|| {
                    let opener = (now, Opener::Packet);
                    self.new_conn(snap, loads, opener, &key, flow, frame.bytes())
                }) {
                Ok(id) => id,
                Err(DropReason::NoServer) => match self.cache_bypass(snap, now, key, flow) {
                    Some(Ok(id)) => id,
                    Some(Err(reason)) => return self.drop(reason),
                    None => {
                        // No server available: drop (counted once), and tell the client
                        // (port unreachable) when the error can go out.
                        self.counters.dropped(DropReason::NoServer);
                        let error = self.build_icmp_error(
                            snap,
                            now,
                            *flow,
                            IcmpError::PortUnreachable,
                            frame,
                        );
                        return match error {
                            Ok(v) => v,
                            Err(DropReason::NoNeighbour) => self
                                .ask_for_sender(snap, now, flow, frame)
                                .unwrap_or(Verdict::Drop(DropReason::NoServer)),
                            Err(_) => Verdict::Drop(DropReason::NoServer),
                        };
                    }
                },
                Err(DropReason::NoService) => {
                    return self.unserved(snap, flow, DropReason::NoService)
                }
                Err(r) => return self.drop(r),
            },
        };
        if let Frag::First(fid) = flow.frag {
            self.frags.note(FragKey::of(flow, fid), id, true, now);
        } else if fresh && flow.frag == Frag::Whole {
            // A new connection whose server's next hop is known takes the fast lane too.
            if let Some(v) = self.forward_fast(snap, now, (id, true, true), flow, frame) {
                return v;
            }
        }
        // The opening packet's state change came with the entry (`new_conn`).
        let tracked = if fresh { Tracked::Yes } else { Tracked::No };
        self.forward_conn_to_server(snap, loads, now, (id, tracked), flow, frame)
    }

    /// Client -> real server through connection `id` (found, made, or followed by a later
    /// fragment); its state and timer follow the packet unless they already have.
    /// (A const generic instead of the flag cost established flows 20-40 instructions a
    /// packet: the two copies were inlined differently.)
    pub(super) fn forward_conn_to_server<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        (id, tracked): (crate::conn::ConnId, Tracked),
        flow: &Flow,
        frame: &mut F,
    ) -> Verdict {
        let Some(conn) = self.table.get(id).map(|c| Binding::of(c, c.daddr, c.dport)) else {
            return self.drop(DropReason::NoConnection);
        };
        if tracked == Tracked::No {
            self.track(id, &conn, client_direction(conn.method), flow, now, loads);
        }
        if conn.dest == BYPASS_DEST {
            return self.forward_bypassed(snap, loads, now, (id, conn.flags), flow, frame);
        }
        if self.ftp.is_some() {
            self.ftp_from_client(snap, now, id, flow, frame);
        }
        if conn.flags & flags::ONE_PACKET != 0 {
            if flow.frag == Frag::Whole {
                self.release(id, loads);
            } else {
                // One-packet scheduling of a fragmented datagram: the entry lives as long
                // as its later fragments may come.
                self.table.set_expires(id, now.saturating_add(FRAG_TIMEOUT));
            }
        }
        let bytes = flow.end() - flow.l3();
        self.counters
            .inbound(usize::from(conn.service), conn.dest as usize, bytes);
        // A server on the appliance itself (IPVS's "Local"): the host's stack, which holds
        // the VIP on the port's twin, gets the packet unchanged.
        if conn.flags & flags::LOCAL != 0 {
            return Verdict::ToHost;
        }
        let daddr = ip_of(&conn.addr);
        let (out_port, hop_mac, pending) =
            match self.next_hop(snap, (id, flow), daddr, true, now, frame) {
                Ok(h) => (h.port, h.mac, h.pending),
                Err(verdict) => return verdict,
            };
        // Full NAT: the source becomes the local end (after any PROXY header goes in, which
        // moves the datagram's end).
        let shifted;
        let (local, flow) = match self.full_nat_end(id, &conn) {
            Some(l) => {
                let mut moved = *flow;
                if !self.proxy_towards_server(now, id, &mut moved, frame) {
                    return self.drop(DropReason::Unsupported);
                }
                shifted = moved;
                (Some(l), &shifted)
            }
            None => (None, flow),
        };
        // A frame that may wait is copied: its checksums cannot be left to the NIC.
        let offload = pending.is_none();
        let verdict = self.rewrite_towards_server(
            snap,
            now,
            (&conn, local),
            (out_port, hop_mac, offload),
            flow,
            frame,
        );
        match (pending, verdict) {
            (Some(hop), Verdict::Forward { port }) => {
                self.hold_and_solicit(snap, now, (port, Fit::Whole), hop, frame)
            }
            (Some(hop), Verdict::Fragment { port, mtu }) => {
                self.hold_and_solicit(snap, now, (port, Fit::Split(mtu)), hop, frame)
            }
            _ => verdict,
        }
    }

    /// The rewrite towards a real server by the connection's method (full NAT's from its
    /// `local` end), out of `out_port` to `hop_mac`.
    fn rewrite_towards_server<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        (conn, local): (&Binding, Option<(IpAddr, u16)>),
        (out_port, hop_mac, offload): (u16, [u8; 6], bool),
        flow: &Flow,
        frame: &mut F,
    ) -> Verdict {
        let method = conn.method;
        let daddr = ip_of(&conn.addr);
        let Some(port_info) = snap.ports.get(usize::from(out_port)) else {
            return self.drop(DropReason::NoRoute);
        };
        let port_mac = port_info.mac;
        let fit = match method {
            ForwardMethod::Tun => Fit::Whole,
            _ => match self.fit_mtu(snap, now, flow, port_info.mtu, frame) {
                Ok(fit) => fit,
                Err(verdict) => return verdict,
            },
        };
        match method {
            ForwardMethod::Nat => {
                if flow.ttl <= 1 {
                    return self.drop(DropReason::Ttl);
                }
                rewrite(frame.bytes_mut(), flow, Side::Dst, conn.addr, conn.port);
                if let Some((addr, port)) = local {
                    rewrite_keeping_ttl(frame.bytes_mut(), flow, Side::Src, addr16(addr), port);
                }
                set_macs(frame.bytes_mut(), hop_mac, port_mac);
                fit.out(out_port)
            }
            ForwardMethod::Dr => {
                set_macs(frame.bytes_mut(), hop_mac, port_mac);
                fit.out(out_port)
            }
            ForwardMethod::Tun => {
                let Some(src) = snap.local_addr(out_port, daddr) else {
                    return self.drop(DropReason::NoRoute);
                };
                let outer = if daddr.is_ipv6() {
                    ipv6::HEADER_LEN
                } else {
                    ipv4::MIN_HEADER_LEN
                } + conn.tunnel.header_len();
                let inner_len = flow.end() - flow.l3();
                // The outer IPv4 header copies the inner DF, unless pmtu_disc is off.
                let df = outer_df(snap, flow);
                let mut fit = Fit::Whole;
                if inner_len + outer > usize::from(port_info.mtu) {
                    if flow.v6 || df {
                        let mtu = usize::from(port_info.mtu) - outer;
                        return self.icmp_error(snap, now, *flow, IcmpError::TooBig(mtu), frame);
                    }
                    // The outer header (IPv4 without DF, or IPv6 around IPv4 without DF)
                    // is fragmented, as the kernel's output does after IPVS.
                    fit = Fit::Split(port_info.mtu);
                }
                let outer_frag = self.outer_fragmentation(df);
                if !encapsulate(
                    frame,
                    flow,
                    (src, daddr),
                    (hop_mac, port_mac),
                    (conn.tunnel, outer_frag),
                    port_info.ip_checksum_offload && offload && fit == Fit::Whole,
                ) {
                    return self.drop(DropReason::Unsupported);
                }
                fit.out(out_port)
            }
        }
    }

    /// Real server -> client (NAT).
    pub(super) fn forward_to_client<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        id: crate::conn::ConnId,
        flow: &Flow,
        frame: &mut F,
    ) -> Verdict {
        let Some(conn) = self.table.get(id).map(|c| Binding::of(c, c.vaddr, c.vport)) else {
            return self.drop(DropReason::NoConnection);
        };
        if let Frag::First(fid) = flow.frag {
            self.frags.note(FragKey::of(flow, fid), id, false, now);
        }
        self.track(id, &conn, Direction::Output, flow, now, loads);
        // The FTP helper may rewrite a reply to another length.
        let rewritten;
        let flow = if self.ftp.is_some() {
            let mut moved = *flow;
            if !self.ftp_from_server(snap, now, id, &mut moved, frame) {
                return self.drop(DropReason::Unsupported);
            }
            rewritten = moved;
            &rewritten
        } else {
            flow
        };
        let bytes = flow.end() - flow.l3();
        self.counters
            .outbound(usize::from(conn.service), conn.dest as usize, bytes);
        if flow.ttl <= 1 {
            return self.drop(DropReason::Ttl);
        }
        // Full NAT: the reply went to the local end; the client is the entry's.
        let client = match self.full_nat_end(id, &conn) {
            Some(_) => self.table.get(id).map(|c| (ip_of(&c.caddr), c.cport)),
            None => None,
        };
        let towards = client.map_or(flow.dst_ip(), |(a, _)| a);
        let (out_port, hop_mac, pending) =
            match self.next_hop(snap, (id, flow), towards, false, now, frame) {
                Ok(h) => (h.port, h.mac, h.pending),
                Err(verdict) => return verdict,
            };
        let Some((port_mac, mtu)) = snap
            .ports
            .get(usize::from(out_port))
            .map(|p| (p.mac, p.mtu))
        else {
            return self.drop(DropReason::NoRoute);
        };
        let fit = match self.fit_mtu(snap, now, flow, mtu, frame) {
            Ok(fit) => fit,
            Err(verdict) => return verdict,
        };
        if client.is_some() {
            self.proxy_towards_client(id, flow, frame);
        }
        rewrite(frame.bytes_mut(), flow, Side::Src, conn.addr, conn.port);
        if let Some((addr, port)) = client {
            rewrite_keeping_ttl(frame.bytes_mut(), flow, Side::Dst, addr16(addr), port);
        }
        set_macs(frame.bytes_mut(), hop_mac, port_mac);
        match pending {
            Some(hop) => self.hold_and_solicit(snap, now, (out_port, fit), hop, frame),
            None => fit.out(out_port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `frame` with the NAT rewrite done field by field and every checksum computed anew
    /// (a UDP datagram's unless it has none: `udp_none`).
    fn reference(
        mut frame: Vec<u8>,
        flow: &Flow,
        (side, addr, port): (Side, [u8; 4], u16),
        udp_none: bool,
    ) -> Vec<u8> {
        let (l3, l4) = (flow.l3(), flow.l4());
        let (addr_at, port_at) = match side {
            Side::Src => (l3 + 12, l4),
            Side::Dst => (l3 + 16, l4 + 2),
        };
        frame[addr_at..addr_at + 4].copy_from_slice(&addr);
        frame[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
        frame[l3 + 8] = flow.ttl.saturating_sub(1);
        let mut ip = Ipv4Packet::new_checked(&mut frame[l3..flow.end()]).unwrap();
        ip.fill_checksum();
        let (src, dst) = (ip.src(), ip.dst());
        let len = (flow.end() - l4) as u16;
        let pseudo = checksum::pseudo_v4(src, dst, flow.proto, len);
        let l4b = &mut frame[l4..flow.end()];
        if flow.proto == proto::TCP {
            TcpPacket::new_checked(l4b).unwrap().fill_checksum(pseudo);
        } else if udp_none {
            l4b[6..8].fill(0);
        } else {
            UdpPacket::new_checked(&mut *l4b)
                .unwrap()
                .fill_checksum(pseudo);
            if l4b[6..8] == [0, 0] {
                l4b[6..8].fill(0xff);
            }
        }
        frame
    }

    /// An untagged IPv4 frame with a TCP ACK segment or a UDP datagram (its IPv4 checksum
    /// filled, the L4 one left zero).
    fn ipv4_frame(
        (src, dst): ([u8; 4], [u8; 4]),
        (sport, dport): (u16, u16),
        (ttl, df, udp): (u8, bool, bool),
        payload: &[u8],
    ) -> Vec<u8> {
        let l4_len = if udp { 8 } else { 20 } + payload.len();
        let mut frame = vec![0u8; 14];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip[6] = if df { 0x40 } else { 0 };
        ip[8] = ttl;
        ip[9] = if udp { proto::UDP } else { proto::TCP };
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        frame.extend_from_slice(&ip);
        let mut l4 = vec![0u8; l4_len - payload.len()];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        if udp {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            l4[12] = 5 << 4;
            l4[13] = tcp::ACK;
        }
        frame.extend_from_slice(&l4);
        frame.extend_from_slice(payload);
        Ipv4Packet::new_checked(&mut frame[14..])
            .unwrap()
            .fill_checksum();
        frame
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// IPv4 in IPv4 from an untagged frame (the common case's own code) wraps exactly
        /// as the encapsulation of every case: padding cut, headers, checksum, offload.
        #[test]
        fn ipip4_is_the_general_encapsulation(
            client in any::<[u8; 4]>(), vip in any::<[u8; 4]>(),
            own in any::<[u8; 4]>(), server in any::<[u8; 4]>(),
            macs in any::<([u8; 6], [u8; 6])>(), udp in any::<bool>(), df in any::<bool>(),
            offload in any::<bool>(), ident in any::<u16>(), outer_df in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64), padding in 0usize..8,
        ) {
            let mut frame = ipv4_frame((client, vip), (12345, 80), (64, df, udp), &payload);
            frame.resize(frame.len() + padding, 0xee);
            let flow = parse_flow(&frame, 14, false, true).unwrap();
            prop_assert_eq!(flow.df, df);
            let ends = (IpAddr::from(own), IpAddr::from(server));
            let (mut fast, mut general) = (VecFrame::new(&frame), VecFrame::new(&frame));
            let outer = OuterFragmentation { dont_fragment: outer_df, ident };
            let done = ipip4(&mut fast, &flow, (own, server), macs, outer, offload);
            let tunnel = (Tunnel::default(), outer);
            prop_assert!(done && encapsulate_any(&mut general, &flow, ends, macs, tunnel, offload));
            prop_assert_eq!(fast, general);
        }

        /// The 32-bit rewrite gives the bytes of a rewrite with checksums computed from
        /// scratch (UDP's "none" kept, its computed zero sent as 0xffff either way).
        #[test]
        fn ipv4_rewrite_equals_checksums_computed_anew(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), to in any::<[u8; 4]>(),
            sport in any::<u16>(), dport in any::<u16>(), port in any::<u16>(),
            ttl in 1u8.., udp in any::<bool>(), no_udp_checksum in any::<bool>(),
            dst_side in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let frame = ipv4_frame((src, dst), (sport, dport), (ttl, false, udp), &payload);
            // A valid frame first.
            let flow = parse_flow(&frame, 14, false, true).unwrap();
            let none = udp && no_udp_checksum;
            let mut valid = reference(frame.clone(), &flow, (Side::Dst, dst, dport), none);
            valid[14 + 8] = ttl;
            Ipv4Packet::new_checked(&mut valid[14..]).unwrap().fill_checksum();
            let side = if dst_side { Side::Dst } else { Side::Src };
            let mut expected = reference(valid.clone(), &flow, (side, to, port), none);
            let mut got = valid;
            rewrite(&mut got, &flow, side, v4_mapped(to), port);
            let l4_check = if udp { 14 + 20 + 6 } else { 14 + 20 + 16 };
            // One's complement has two zeros (0xffff and 0, except UDP's, where 0 means
            // none): compare the values, then the other bytes.
            let value = |c: &[u8], zero_is_none: bool| match u16::from_be_bytes([c[0], c[1]]) {
                0xffff if !zero_is_none => 0,
                v => v,
            };
            prop_assert_eq!(
                value(&got[l4_check..l4_check + 2], udp),
                value(&expected[l4_check..l4_check + 2], udp)
            );
            prop_assert_eq!(value(&got[24..26], false), value(&expected[24..26], false));
            got[l4_check..l4_check + 2].fill(0);
            expected[l4_check..l4_check + 2].fill(0);
            got[24..26].fill(0);
            expected[24..26].fill(0);
            prop_assert_eq!(got, expected);
        }
    }
}
