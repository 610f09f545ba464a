//! Local answers: ARP and IPv6 neighbour discovery for the appliance's addresses and VIPs,
//! and ICMP echo to a VIP.

use super::*;

impl Engine {
    #[inline(never)]
    pub(super) fn arp<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        port: u16,
        l3: usize,
        frame: &mut F,
    ) -> Verdict {
        let Some(p) = frame
            .bytes()
            .get(l3..)
            .and_then(|b| ArpPacket::new_checked(b).ok())
        else {
            return self.drop(DropReason::Malformed);
        };
        let (op, sha, spa, tpa) = (p.op(), p.sender_mac(), p.sender_ip(), p.target_ip());
        self.learn(snap, now, port, IpAddr::from(spa), sha);
        let target = IpAddr::from(tpa);
        if snap.is_standby(target) {
            return self.drop(DropReason::Standby);
        }
        if op != arp::OP_REQUEST || !(snap.is_vip(target) || snap.is_local(target)) {
            return Verdict::ToHost;
        }
        // The port's MAC, or the virtual router's (`use_vmac`) for an address it holds.
        let Some(mac) = snap.answer_mac(port, target) else {
            return self.drop(DropReason::NoRoute);
        };
        let b = frame.bytes_mut();
        // The request's link header stays (its VLAN tags with it); only the MACs change.
        set_macs(b, sha, mac);
        if let Some(body) = b.get_mut(l3..) {
            let reply = ArpRepr {
                op: arp::OP_REPLY,
                sender_mac: mac,
                sender_ip: tpa,
                target_mac: sha,
                target_ip: spa,
            };
            reply.emit(body);
        }
        self.counters.arp_replies.add(1);
        Verdict::Forward { port }
    }

    /// Neighbour discovery: learns from solicitations and advertisements, and answers a
    /// solicitation for a VIP or an own address with an advertisement. None when the frame
    /// is not ND (it then follows the normal path).
    #[inline(never)]
    pub(super) fn neighbour_discovery<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        port: u16,
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        let l4 = frame.bytes().get(flow.l4()..flow.end())?;
        let m = Icmpv6Packet::new_checked(l4).ok()?;
        let (kind, target) = (m.msg_type(), m.nd_target());
        match kind {
            icmpv6::NEIGHBOR_ADVERT => {
                if let Some(mac) = m.nd_lladdr(icmpv6::OPT_TARGET_LL) {
                    self.learn(snap, now, port, IpAddr::from(target), mac);
                }
                return Some(Verdict::ToHost);
            }
            icmpv6::NEIGHBOR_SOLICIT => {}
            _ => return None,
        }
        let requester_mac = m.nd_lladdr(icmpv6::OPT_SOURCE_LL);
        let unspecified = flow.src == [0u8; 16];
        if let (Some(mac), false) = (requester_mac, unspecified) {
            self.learn(snap, now, port, flow.src_ip(), mac);
        }
        let target_ip = IpAddr::from(target);
        if snap.is_standby(target_ip) {
            return Some(self.drop(DropReason::Standby));
        }
        if !(snap.is_vip(target_ip) || snap.is_local(target_ip)) {
            return Some(Verdict::ToHost);
        }
        let Some(port_mac) = snap.answer_mac(port, target_ip) else {
            return Some(self.drop(DropReason::NoRoute));
        };
        let frame_src: [u8; 6] = frame
            .bytes()
            .get(6..12)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 6]);
        // To the requester, or to all nodes for a duplicate-address probe.
        let (dst_ip, dst_mac, flags) = if unspecified {
            (
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x33, 0x33, 0, 0, 0, 1],
                icmpv6::NA_OVERRIDE,
            )
        } else {
            (
                flow.src,
                requester_mac.unwrap_or(frame_src),
                icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE,
            )
        };
        // The request's VLAN tags (between the MACs and the IPv6 header) go back with the
        // answer: it is built after them, then the MACs move in front.
        let mut tags = [0u8; 16];
        let tag_len = flow.l3().saturating_sub(ethernet::HEADER_LEN).min(14);
        tags.get_mut(..tag_len + 2)?
            .copy_from_slice(frame.bytes().get(12..14 + tag_len)?);
        let total = flow.l3() + ipv6::HEADER_LEN + 32;
        let have = frame.bytes().len();
        if have < total && !frame.append(total - have) {
            return Some(self.drop(DropReason::Unsupported));
        }
        frame.truncate(total);
        let b = frame.bytes_mut();
        icmpv6::emit_nd_frame(
            b.get_mut(tag_len..).unwrap_or_default(),
            dst_mac,
            port_mac,
            target,
            dst_ip,
            |m| icmpv6::emit_neighbor_advert(m, target, port_mac, flags),
        );
        if tag_len > 0 {
            rvs_wire::move_within(b, tag_len..tag_len + 12, 0);
            if let (Some(to), Some(from)) = (b.get_mut(12..14 + tag_len), tags.get(..tag_len + 2)) {
                to.copy_from_slice(from);
            }
        }
        self.counters.arp_replies.add(1);
        Some(Verdict::Forward { port })
    }

    pub(super) fn echo_reply<F: Frame>(
        &mut self,
        snap: &Snapshot,
        port: u16,
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        let Some(mac) = snap.ports.get(usize::from(port)).map(|p| p.mac) else {
            return self.drop(DropReason::NoRoute);
        };
        // As a host's stack, answer only an intact request.
        if !icmp_checksum_ok(frame.bytes(), &flow) {
            return self.drop(DropReason::Malformed);
        }
        let b = frame.bytes_mut();
        let src_mac: [u8; 6] = b
            .get(6..12)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 6]);
        set_macs(b, src_mac, mac);
        // A fresh TTL (a host's reply, not the request's remainder), and the ICMP checksum
        // computed anew (an incremental update can give 0x0000 where 0xffff is right).
        if flow.v6 {
            if let Ok(mut ip) =
                Ipv6Packet::new_checked(b.get_mut(flow.l3()..flow.end()).unwrap_or_default())
            {
                ip.set_src(flow.dst);
                ip.set_dst(flow.src);
                ip.set_hop_limit(REPLY_TTL);
            }
            if let Ok(mut m) =
                Icmpv6Packet::new_checked(b.get_mut(flow.l4()..flow.end()).unwrap_or_default())
            {
                m.set_type(icmpv6::ECHO_REPLY);
                let len = (flow.end() - flow.l4()) as u32;
                m.fill_checksum(checksum::pseudo_v6(flow.dst, flow.src, proto::ICMPV6, len));
            }
        } else {
            if let Ok(mut ip) =
                Ipv4Packet::new_checked(b.get_mut(flow.l3()..flow.end()).unwrap_or_default())
            {
                ip.set_src(low4(&flow.dst));
                ip.set_dst(low4(&flow.src));
                ip.set_ttl(REPLY_TTL);
            }
            if let Ok(mut m) =
                IcmpPacket::new_checked(b.get_mut(flow.l4()..flow.end()).unwrap_or_default())
            {
                m.set_type(icmp::ECHO_REPLY);
                m.fill_checksum();
            }
        }
        self.counters.icmp_replies.add(1);
        Verdict::Forward { port }
    }
}

/// The TTL (hop limit) of the replies the appliance makes itself.
const REPLY_TTL: u8 = 64;

/// Whether an ICMP (v4) or ICMPv6 message's checksum is right.
fn icmp_checksum_ok(b: &[u8], flow: &Flow) -> bool {
    let Some(l4) = b.get(flow.l4()..flow.end()) else {
        return false;
    };
    let sum = if flow.v6 {
        let len = l4.len() as u32;
        checksum::pseudo_v6(flow.src, flow.dst, proto::ICMPV6, len)
    } else {
        0
    };
    checksum::finish(checksum::accumulate(sum, l4)) == 0
}

impl Engine {
    /// A frame for the host's stack sent to a virtual router MAC (`use_vmac`) is given the
    /// port's own, which its host twin has (the kernel drops frames to other MACs).
    pub fn to_host_mac(snap: &Snapshot, port: u16, frame: &mut [u8]) {
        if !snap.has_vmacs() {
            return;
        }
        let (Some(dst), Some(own)) = (frame.get_mut(..6), snap.ports.get(usize::from(port))) else {
            return;
        };
        if snap.is_vmac(port, dst) {
            dst.copy_from_slice(&own.mac);
        }
    }

    /// Whether a frame the host's stack sends (through a port's twin) is refused: its
    /// source is an address held without accept mode (keepalived's firewall drops what
    /// leaves from it) and it is no neighbour solicitation or advertisement. Counted.
    pub fn host_frame_refused(&mut self, snap: &Snapshot, frame: &[u8]) -> bool {
        if !snap.refusing() {
            return false;
        }
        let Ok(eth) = ethernet::EthernetFrame::new_checked(frame) else {
            return false;
        };
        let l3 = eth.payload();
        let source = match eth.ethertype() {
            ethernet::EtherType::IPV4 => l3
                .get(12..16)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(IpAddr::from),
            ethernet::EtherType::IPV6 => {
                let nd = l3.get(6) == Some(&proto::ICMPV6)
                    && matches!(
                        l3.get(40),
                        Some(&icmpv6::NEIGHBOR_SOLICIT | &icmpv6::NEIGHBOR_ADVERT)
                    );
                l3.get(8..24)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .filter(|_| !nd)
                    .map(IpAddr::from)
            }
            _ => None,
        };
        if source.is_some_and(|a| snap.class_of(a).refuses()) {
            self.counters.dropped(DropReason::NoAccept);
            return true;
        }
        false
    }
}
