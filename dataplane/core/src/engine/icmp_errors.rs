//! ICMP errors: those about a connection relayed to its other side (translated for NAT),
//! and those rvs sends itself (fragmentation needed / too big, port unreachable).

use super::*;

/// ICMP errors the engine sends to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IcmpError {
    /// Fragmentation needed (IPv4) / packet too big (IPv6), with the MTU to use.
    TooBig(usize),
    PortUnreachable,
    /// TTL / hop limit exceeded in transit (a routed packet).
    TimeExceeded,
}

/// The header of the datagram an ICMP error quotes.
pub(super) struct Embedded {
    pub(super) ihl: usize,
    pub(super) proto: u8,
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) sport: u16,
    pub(super) dport: u16,
}

/// Reads the quoted datagram of an ICMP / ICMPv6 error (it is usually truncated, so no
/// length checks beyond the header and the first 8 bytes of its L4 header).
pub(super) fn embedded(b: &[u8], flow: &Flow) -> Option<Embedded> {
    let msg = b.get(flow.l4()..flow.end())?;
    let is_error = match (flow.v6, flow.proto) {
        (false, proto::ICMP) => IcmpPacket::new_checked(msg).ok()?.is_error(),
        (true, proto::ICMPV6) => Icmpv6Packet::new_checked(msg).ok()?.is_error(),
        _ => false,
    };
    if !is_error {
        return None;
    }
    let q = msg.get(8..)?;
    let (ihl, proto_num, src, dst) = if flow.v6 {
        let h: &[u8; 40] = q.get(..40)?.try_into().ok()?;
        if h[0] >> 4 != 6 {
            return None;
        }
        let src: [u8; 16] = h[8..24].try_into().ok()?;
        let dst: [u8; 16] = h[24..40].try_into().ok()?;
        (40, h[6], IpAddr::from(src), IpAddr::from(dst))
    } else {
        let v = *q.first()?;
        let ihl = usize::from(v & 0x0f) * 4;
        if v >> 4 != 4 || ihl < 20 || q.len() < ihl {
            return None;
        }
        let h: [u8; 20] = rvs_wire::array_at(q, 0)?;
        let src: [u8; 4] = h[12..16].try_into().ok()?;
        let dst: [u8; 4] = h[16..20].try_into().ok()?;
        (ihl, h[9], IpAddr::from(src), IpAddr::from(dst))
    };
    if !matches!(proto_num, proto::TCP | proto::UDP | proto::SCTP) {
        return None;
    }
    let [s0, s1, d0, d1] = rvs_wire::array_at(q, ihl)?;
    Some(Embedded {
        ihl,
        proto: proto_num,
        src,
        dst,
        sport: u16::from_be_bytes([s0, s1]),
        dport: u16::from_be_bytes([d0, d1]),
    })
}

impl Engine {
    /// An ICMP error about a packet of a known connection is forwarded to the other side
    /// with the embedded header rewritten (as IPVS's ip_vs_nat_icmp does): from the client
    /// side (about VIP -> client) towards the real server, or for NAT from the server side
    /// (about client -> server) towards the client with the VIP put back. None when the
    /// frame is not such an error.
    #[inline(never)]
    pub(super) fn icmp_error_about_conn<F: Frame>(
        &mut self,
        snap: &Snapshot,
        (loads, now): (&[DestLoad], u32),
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        let emb = embedded(frame.bytes(), flow)?;
        let (id, towards_server) = if snap.is_vip(emb.src) {
            // A paused director (backup_only) leaves what comes to its VIPs to the host.
            if snap.director_paused {
                return None;
            }
            let key = InKey {
                proto: emb.proto,
                caddr: addr16(emb.dst),
                cport: emb.dport,
                vaddr: addr16(emb.src),
                vport: emb.sport,
            };
            let id = match self.table.lookup_in(&key) {
                Some(id) => id,
                None if snap.schedule_icmp => {
                    match self.schedule_quoted_flow(snap, (loads, now), flow, &emb, key)? {
                        Ok(id) => id,
                        Err(reason) => return Some(self.drop(reason)),
                    }
                }
                None => return None,
            };
            (id, true)
        } else {
            let key = OutKey {
                proto: emb.proto,
                daddr: addr16(emb.dst),
                dport: emb.dport,
                caddr: addr16(emb.src),
                cport: emb.sport,
            };
            (self.table.lookup_out(&key)?, false)
        };
        let conn = *self.table.get(id)?;
        if flow.ttl <= 1 {
            return Some(self.drop(DropReason::Ttl));
        }
        // A cache-bypass connection's: on to its destination, as its packets go.
        if conn.dest == BYPASS_DEST {
            return Some(self.forward_bypassed(snap, loads, now, (id, 0), flow, frame));
        }
        // A server on the appliance itself: the host's stack has the connection.
        if towards_server && conn.flags & flags::LOCAL != 0 {
            return Some(Verdict::ToHost);
        }
        let method = conn.method;
        // Full NAT (and SNAT): the other end knows the connection by its local end.
        let local = (conn.flags & flags::FULL_NAT != 0)
            .then(|| self.table.local(id).map(|l| (ip_of(&l.addr), l.port)))
            .flatten();
        let client = (ip_of(&conn.caddr), conn.cport);
        let (outer_new, emb_addr, emb_port, next) = if towards_server {
            (
                ip_of(&conn.daddr),
                ip_of(&conn.daddr),
                conn.dport,
                ip_of(&conn.daddr),
            )
        } else {
            let to = if local.is_some() {
                client.0
            } else {
                flow.dst_ip()
            };
            (ip_of(&conn.vaddr), ip_of(&conn.vaddr), conn.vport, to)
        };
        // Routed as the connection's own packets that way (see `next_hop`).
        let from = (!towards_server).then(|| ip_of(&conn.vaddr));
        let Some((out_port, hop)) = snap.route_from(from, next) else {
            return Some(self.drop(DropReason::NoRoute));
        };
        // A next hop not known yet (a client rvs has sent nothing to): the error waits for
        // it, as a packet of the connection would.
        let known = self.neighbour(snap, hop);
        let pending = known.is_none();
        if pending && !self.held_room() {
            return Some(self.resolve(snap, now, out_port, hop, frame));
        }
        let hop_mac = known.unwrap_or_default();
        let port_mac = snap.ports.get(usize::from(out_port))?.mac;
        let sent = |engine: &mut Engine, frame: &mut F| {
            Some(if pending {
                engine.hold_and_solicit(snap, now, (out_port, Fit::Whole), hop, frame)
            } else {
                Verdict::Forward { port: out_port }
            })
        };
        if towards_server && method != ForwardMethod::Nat {
            // DR/TUN: the real server owns the VIP too; deliver the error unchanged.
            if method == ForwardMethod::Tun {
                let src = snap.local_addr(out_port, next)?;
                let t = (conn.tunnel, self.outer_fragmentation(outer_df(snap, flow)));
                if !encapsulate(frame, flow, (src, next), (hop_mac, port_mac), t, false) {
                    return Some(self.drop(DropReason::Unsupported));
                }
            } else {
                set_macs(frame.bytes_mut(), hop_mac, port_mac);
            }
            return sent(self, frame);
        }
        if !towards_server && method != ForwardMethod::Nat {
            return None;
        }
        let snat = conn.service == SNAT_SERVICE;
        let b = frame.bytes_mut();
        // Outer header: the real server's address (towards it) or the VIP (towards the
        // client; an SNAT flow's error keeps the sender that reported it). Under full NAT
        // also the other address: the local end towards the server, the client back.
        let side = if towards_server { Side::Dst } else { Side::Src };
        let mut outer = (flow.src_ip(), flow.dst_ip());
        if !snat || towards_server {
            rewrite_ip_only(b, flow, side, addr16(outer_new));
            match side {
                Side::Dst => outer.1 = outer_new,
                Side::Src => outer.0 = outer_new,
            }
        }
        match (local, towards_server) {
            (Some((l, _)), true) => {
                set_ip_address(b, flow, Side::Src, addr16(l), false);
                outer.0 = l;
            }
            (Some(_), false) => {
                // An SNAT flow's outer source was kept: the TTL is decremented here.
                set_ip_address(b, flow, Side::Dst, addr16(client.0), snat);
                outer.1 = client.0;
            }
            (None, _) => {}
        }
        // Embedded header: its source (towards the server) or destination (towards the
        // client); under full NAT the other end too (the local end, or the client).
        let e = flow.l4() + 8;
        let mut fields = [(towards_server, emb_addr, emb_port), (false, emb_addr, 0)];
        let mut n = 1;
        if let Some(l) = local {
            fields[1] = if towards_server {
                (false, l.0, l.1)
            } else {
                (true, client.0, client.1)
            };
            n = 2;
        }
        // A quoted UDP header carries its checksum: kept right for the rewritten fields.
        let udp_check = e + emb.ihl + 6;
        for &(is_src, addr, port) in fields.iter().take(n) {
            let (at, new): (usize, &[u8]) = if flow.v6 {
                (if is_src { e + 8 } else { e + 24 }, &addr16(addr)[..])
            } else {
                (e + if is_src { 12 } else { 16 }, &addr_bytes4(addr)[..])
            };
            let port_at = e + emb.ihl + if is_src { 0 } else { 2 };
            let len = new.len();
            let mut saved = [0u8; 16];
            let old_addr = saved.get_mut(..len).unwrap_or_default();
            if let Some(a) = b.get(at..at + len) {
                old_addr.copy_from_slice(a);
            }
            let old_port = rvs_wire::array_at(b, port_at).map_or(0, u16::from_be_bytes);
            if let Some(a) = b.get_mut(at..at + len) {
                a.copy_from_slice(new);
            }
            if let Some(p) = b.get_mut(port_at..port_at + 2) {
                p.copy_from_slice(&port.to_be_bytes());
            }
            let check = rvs_wire::array_at(b, udp_check)
                .map(u16::from_be_bytes)
                .filter(|&c| emb.proto == proto::UDP && c != 0);
            if let Some(c) = check {
                let c = checksum::update_bytes(c, old_addr, new);
                let c = checksum::update16(c, old_port, port);
                let c = if c == 0 { 0xffff } else { c };
                if let Some(x) = b.get_mut(udp_check..udp_check + 2) {
                    x.copy_from_slice(&c.to_be_bytes());
                }
            }
        }
        if !flow.v6 {
            if let Some(h) = b.get_mut(e..e + emb.ihl) {
                if let Some(check) = rvs_wire::array_mut::<2>(h, 10) {
                    *check = [0, 0];
                }
                let c = checksum::checksum(h);
                if let Some(check) = rvs_wire::array_mut::<2>(h, 10) {
                    *check = c.to_be_bytes();
                }
            }
        }
        // The ICMP checksum, recomputed over the whole message.
        if let Some(m) = b.get_mut(flow.l4()..flow.end()) {
            if flow.v6 {
                let (src, dst) = (addr16(outer.0), addr16(outer.1));
                let pseudo = checksum::pseudo_v6(src, dst, proto::ICMPV6, m.len() as u32);
                if let Ok(mut p) = Icmpv6Packet::new_checked(m) {
                    p.fill_checksum(pseudo);
                }
            } else if let Ok(mut p) = IcmpPacket::new_checked(m) {
                p.fill_checksum();
            }
        }
        set_macs(b, hop_mac, port_mac);
        sent(self, frame)
    }

    /// IPVS's schedule_icmp: an ICMP error about a reply this node has no connection for
    /// (ECMP gave the flow to another node, or it expired here) schedules the client's flow
    /// it quotes, as a new connection would be, so the error reaches the server that flow
    /// goes to (with `mh` behind ECMP, the one every node picks). The connection lives a
    /// few seconds unless the flow's own packets come. None: no service takes the flow, or
    /// a full-NAT one (the error is the host's, as any unserved traffic); Err: it cannot be
    /// scheduled.
    fn schedule_quoted_flow(
        &mut self,
        snap: &Snapshot,
        (loads, now): (&[DestLoad], u32),
        flow: &Flow,
        emb: &Embedded,
        key: InKey,
    ) -> Option<Result<crate::conn::ConnId, DropReason>> {
        // A VIP VRRP holds elsewhere: that node schedules.
        if snap.class_of_mapped(&flow.dst).is_standby() {
            return None;
        }
        let quoted = flow.quoted_reversed(emb);
        // A full-NAT flow's server knows it by a local end this node would not give again.
        let full_nat = snap
            .service_for_mapped(quoted.proto, &quoted.src, &quoted.dst, quoted.dport)
            .is_some_and(|e| snap.scheduling_service(e).full_nat.is_some());
        if full_nat {
            return None;
        }
        // (Not the error's payload: a SIP Call-ID is read from a client's own datagram.)
        let made = self.new_conn(snap, loads, (now, Opener::IcmpError), &key, &quoted, &[]);
        match made {
            Ok(id) => {
                self.table
                    .set_expires(id, now.saturating_add(ICMP_OPENED_TIMEOUT));
                self.counters.icmp_scheduled.add(1);
                Some(Ok(id))
            }
            Err(DropReason::NoService) => None,
            Err(reason) => Some(Err(reason)),
        }
    }

    /// Turns the frame into an ICMP error for the client, from the VIP it addressed (as the
    /// kernel's icmp_send does for a local destination), quoting the start of the datagram.
    /// To a sender whose MAC is not known yet (a TUN or DR client, whom rvs never sends
    /// anything else), the error waits while a request for it goes out, as a router's.
    pub(super) fn icmp_error<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        flow: Flow,
        kind: IcmpError,
        frame: &mut F,
    ) -> Verdict {
        match self.build_icmp_error(snap, now, flow, kind, frame) {
            Ok(v) => v,
            Err(DropReason::NoNeighbour) => {
                self.counters.dropped(DropReason::NoNeighbour);
                self.ask_for_sender(snap, now, &flow, frame)
                    .unwrap_or(Verdict::Drop(DropReason::NoNeighbour))
            }
            Err(r) => self.drop(r),
        }
    }

    /// An ICMP error that could not wait for its sender's MAC: the frame asks for the MAC
    /// instead (the error is lost), unless a request went out this second.
    pub(super) fn ask_for_sender<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        let (port, hop) = snap.route(flow.src_ip())?;
        self.solicit(snap, now, port, hop, frame)
            .then_some(Verdict::Forward { port })
    }

    /// As [`Engine::icmp_error`], without counting: why it could not be sent (the frame
    /// unchanged then).
    pub(super) fn build_icmp_error<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        flow: Flow,
        kind: IcmpError,
        frame: &mut F,
    ) -> Result<Verdict, DropReason> {
        let Some((out_port, hop)) = snap.route(flow.src_ip()) else {
            return Err(DropReason::NoRoute);
        };
        let hop_mac = self.neighbour(snap, hop);
        if hop_mac.is_none() && !self.held_room() {
            // Nowhere to wait (the frame unchanged: see `ask_for_sender`).
            return Err(DropReason::NoNeighbour);
        }
        let Some(port_mac) = snap.ports.get(usize::from(out_port)).map(|p| p.mac) else {
            return Err(DropReason::NoRoute);
        };
        // From the address it was sent to when that is ours (a VIP, the appliance); a
        // routed packet's error comes from the port it leaves by, as a router's.
        let dst = snap.class_of_mapped(&flow.dst);
        let me = if dst.is_vip() || dst.is_local() {
            flow.dst_ip()
        } else {
            snap.local_addr(out_port, flow.src_ip())
                .ok_or(DropReason::NoRoute)?
        };
        // The quoted part: IPv4 header + 8 bytes; IPv6 as much as fits in 1280 bytes.
        let quote_len = if flow.v6 {
            (flow.end() - flow.l3()).min(1280 - ipv6::HEADER_LEN - icmpv6::HEADER_LEN)
        } else {
            (flow.l4() - flow.l3() + 8).min(flow.end() - flow.l3())
        };
        let mut quote_buf = [0u8; 1232];
        let (Some(quote), Some(quoted)) = (
            quote_buf.get_mut(..quote_len),
            frame.bytes().get(flow.l3()..flow.l3() + quote_len),
        ) else {
            return Err(DropReason::Malformed);
        };
        quote.copy_from_slice(quoted);
        let ip_len = if flow.v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::MIN_HEADER_LEN
        };
        // The request's link header is kept (its VLAN tags and IP ethertype): only the
        // MACs change, and the error follows it.
        let l3 = flow.l3();
        let total = l3 + ip_len + 8 + quote_len;
        let have = frame.bytes().len();
        if have < total && !frame.append(total - have) {
            return Err(DropReason::Unsupported);
        }
        frame.truncate(total);
        let b = frame.bytes_mut();
        set_macs(b, hop_mac.unwrap_or_default(), port_mac);
        let l4 = l3 + ip_len;
        let icmp_len = 8 + quote_len;
        // The message: its header, then the quote.
        let (Some(head), Some(message)) =
            b.split_at_mut_checked(l4).map_or((None, None), |(h, m)| {
                (h.get_mut(l3..), m.get_mut(..icmp_len))
            })
        else {
            return Err(DropReason::Unsupported);
        };
        if let Some(body) = message.get_mut(8..) {
            body.copy_from_slice(quote);
        }
        if flow.v6 {
            ipv6::Ipv6Repr {
                src: addr16(me),
                dst: flow.src,
                next_header: proto::ICMPV6,
                payload_len: icmp_len as u16,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(head);
            let (t, code, rest) = match kind {
                IcmpError::TooBig(mtu) => (icmpv6::PACKET_TOO_BIG, 0, (mtu as u32).to_be_bytes()),
                IcmpError::PortUnreachable => (
                    icmpv6::DEST_UNREACHABLE,
                    icmpv6::CODE_PORT_UNREACHABLE,
                    [0; 4],
                ),
                IcmpError::TimeExceeded => (icmpv6::TIME_EXCEEDED, 0, [0; 4]),
            };
            icmp::emit_header(message, t, code, rest);
            let pseudo = checksum::pseudo_v6(addr16(me), flow.src, proto::ICMPV6, icmp_len as u32);
            if let Ok(mut m) = Icmpv6Packet::new_checked(message) {
                m.fill_checksum(pseudo);
            }
        } else {
            ipv4::Ipv4Repr {
                src: addr_bytes4(me),
                dst: low4(&flow.src),
                protocol: proto::ICMP,
                payload_len: icmp_len as u16,
                ttl: 64,
                ident: 0,
                dont_fragment: false,
                dscp_ecn: 0,
            }
            .emit(head);
            let (t, code, rest) = match kind {
                IcmpError::TooBig(mtu) => (
                    icmp::DEST_UNREACHABLE,
                    icmp::CODE_FRAG_NEEDED,
                    [0, 0, (mtu >> 8) as u8, mtu as u8],
                ),
                IcmpError::PortUnreachable => {
                    (icmp::DEST_UNREACHABLE, icmp::CODE_PORT_UNREACHABLE, [0; 4])
                }
                IcmpError::TimeExceeded => (icmp::TIME_EXCEEDED, 0, [0; 4]),
            };
            icmp::emit_header(message, t, code, rest);
            if let Ok(mut m) = IcmpPacket::new_checked(message) {
                m.fill_checksum();
            }
        }
        self.counters.icmp_errors_sent.add(1);
        if hop_mac.is_none() {
            return Ok(self.hold_and_solicit(snap, now, (out_port, Fit::Whole), hop, frame));
        }
        Ok(Verdict::Forward { port: out_port })
    }
}
