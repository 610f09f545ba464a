//! Traffic that is not balanced: members' outgoing port ranges on a VIP (stateless, both
//! ways), and routing between the ports for everything else (`ip_forward`), TTL and ICMP
//! as a router does.

use super::*;

impl Engine {
    /// A packet to `vip:port` in a member's outgoing range: to that member, by direct
    /// routing (MACs only) or NAT (its address, port kept).
    pub(super) fn forward_to_member<F: Frame>(
        &mut self,
        snap: &Snapshot,
        (now, port): (u32, u16),
        range: MemberPorts,
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        if let Frag::First(fid) = flow.frag {
            self.frags
                .note_member(FragKey::of(&flow, fid), flow.dport, true, now);
        }
        if range.nat {
            if flow.ttl <= 1 {
                return self.icmp_error(snap, now, flow, IcmpError::TimeExceeded, frame);
            }
            rewrite(
                frame.bytes_mut(),
                &flow,
                Side::Dst,
                addr16(range.member),
                flow.dport,
            );
        }
        self.counters.member_packets.add(1);
        self.send_routed(snap, (now, Some(port)), &flow, range.member, frame)
    }

    /// A NAT member's packet from its outgoing range: the VIP becomes its source.
    pub(super) fn forward_from_member<F: Frame>(
        &mut self,
        snap: &Snapshot,
        (now, port): (u32, u16),
        range: MemberPorts,
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        if let Frag::First(fid) = flow.frag {
            self.frags
                .note_member(FragKey::of(&flow, fid), flow.sport, false, now);
        }
        if flow.ttl <= 1 {
            return self.icmp_error(snap, now, flow, IcmpError::TimeExceeded, frame);
        }
        rewrite(
            frame.bytes_mut(),
            &flow,
            Side::Src,
            addr16(range.vip),
            flow.sport,
        );
        self.counters.member_packets.add(1);
        self.send_routed(snap, (now, Some(port)), &flow, flow.dst_ip(), frame)
    }

    /// A packet for neither a VIP nor the appliance, sent to this port's MAC: routed on by
    /// the routes, its TTL / hop limit decremented (ICMP time exceeded when it runs out).
    #[inline(never)]
    pub(super) fn route_through<F: Frame>(
        &mut self,
        snap: &Snapshot,
        (now, port): (u32, u16),
        flow: Flow,
        frame: &mut F,
    ) -> Verdict {
        if flow.ttl <= 1 {
            return self.icmp_error(snap, now, flow, IcmpError::TimeExceeded, frame);
        }
        rewrite_ip_only(frame.bytes_mut(), &flow, Side::Dst, flow.dst);
        self.counters.routed.add(1);
        self.send_routed(snap, (now, Some(port)), &flow, flow.dst_ip(), frame)
    }

    /// IPVS's cache_bypass: a new connection of a firewall-mark service with no server
    /// available, to an address that is neither a VIP of its own nor the appliance's
    /// (a transparent cache cluster's origin), gets an entry that sends it on to that
    /// destination unchanged, and keeps sending it there after servers come back, until it
    /// ends. None: not such a flow (no server: dropped, as before); Err: no entry.
    #[cold]
    #[inline(never)]
    pub(super) fn cache_bypass(
        &mut self,
        snap: &Snapshot,
        now: u32,
        key: InKey,
        flow: &Flow,
    ) -> Option<Result<crate::conn::ConnId, DropReason>> {
        if !snap.cache_bypass {
            return None;
        }
        let entry = snap.service_for_mapped(flow.proto, &flow.src, &flow.dst, flow.dport)?;
        let svc = snap.scheduling_service(entry);
        let dst = snap.class_of_mapped(&flow.dst);
        let unicast = match flow.dst_ip() {
            IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
            IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
        };
        if svc.group.is_none() || dst.is_exact_vip() || dst.is_local() || !unicast {
            return None;
        }
        let one_packet = svc.one_packet && flow.proto == proto::UDP;
        let first = match flow.proto {
            proto::UDP if !one_packet => crate::conn::UDP_FIRST_DATAGRAM,
            _ => opening_state(self.tcp_tables, flow, ForwardMethod::Dr),
        };
        let nowhere = if flow.v6 {
            [0; 16]
        } else {
            addr16(IpAddr::from([0, 0, 0, 0]))
        };
        let c = bypass_entry(key, nowhere, first, one_packet);
        let expires = now.saturating_add(self.timeouts.of(flow.proto, first));
        let made = match flow.in_hash() {
            Some(h) => self.table.insert_hashed(&c, h, expires),
            None => self.table.insert(c, expires),
        };
        let id = match made {
            Ok(id) => id,
            Err(e) => return Some(Err(drop_reason(e))),
        };
        if !crate::conn::leaves_embryonic(flow.proto, first) {
            self.table.mark_embryonic(id);
        }
        self.counters.bypass_conns.add(1);
        let stateful = flow.proto == proto::TCP || flow.proto == proto::SCTP;
        if first != 0 || !stateful {
            self.sync_note(id, now);
        }
        Some(Ok(id))
    }

    /// A packet of cache-bypass entry `id` (with `conn_flags`): sent on to its own
    /// destination unchanged but for the MACs, as the kernel's bypass sends it (an output
    /// route: no input port for the policy rules; the TTL left, the packet having been
    /// taken in as the director's own).
    pub(super) fn forward_bypassed<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        (id, conn_flags): (crate::conn::ConnId, u8),
        flow: &Flow,
        frame: &mut F,
    ) -> Verdict {
        if conn_flags & flags::ONE_PACKET != 0 {
            if flow.frag == Frag::Whole {
                self.release(id, loads);
            } else {
                self.table.set_expires(id, now.saturating_add(FRAG_TIMEOUT));
            }
        }
        self.counters.routed.add(1);
        self.send_routed(snap, (now, None), flow, flow.dst_ip(), frame)
    }

    /// Out of the port the routes give for `dst` (from the packet's source as it came in
    /// on `in_port`, as the kernel routes before its source NAT, its policy rules seeing
    /// the flow's DS field, protocol and ports; no port: an output route), to its next
    /// hop's MAC (the frame waits for it when unknown); too big for that port: ICMP, as
    /// for balanced traffic.
    fn send_routed<F: Frame>(
        &mut self,
        snap: &Snapshot,
        (now, in_port): (u32, Option<u16>),
        flow: &Flow,
        dst: IpAddr,
        frame: &mut F,
    ) -> Verdict {
        let with_ports = matches!(flow.proto, proto::TCP | proto::UDP | proto::SCTP);
        let query = RouteQuery {
            src: Some(flow.src_ip()),
            dst,
            iif: in_port,
            tos: ds_field(flow, frame.bytes()),
            proto: flow.proto,
            sport: if with_ports { flow.sport } else { 0 },
            dport: if with_ports { flow.dport } else { 0 },
            // Marked as it came in (iptables' mangle PREROUTING, before any NAT).
            mark: snap.route_mark(flow.proto, &flow.src, &flow.dst, flow.dport),
        };
        let Some((port, hop)) = snap.route_for(&query) else {
            return self.drop(DropReason::NoRoute);
        };
        let Some((port_mac, mtu)) = snap.ports.get(usize::from(port)).map(|p| (p.mac, p.mtu))
        else {
            return self.drop(DropReason::NoRoute);
        };
        let fit = match self.fit_mtu(snap, now, flow, mtu, frame) {
            Ok(fit) => fit,
            Err(verdict) => return verdict,
        };
        match self.neighbour(snap, hop) {
            Some(mac) => {
                set_macs(frame.bytes_mut(), mac, port_mac);
                fit.out(port)
            }
            None if self.held_room() => {
                set_macs(frame.bytes_mut(), [0; 6], port_mac);
                self.hold_and_solicit(snap, now, (port, fit), hop, frame)
            }
            None => self.resolve(snap, now, port, hop, frame),
        }
    }
}

/// Whether the frame was sent to `port`'s own MAC (not flooded to it, nor broadcast).
pub(super) fn sent_to_port(snap: &Snapshot, port: u16, frame: &[u8]) -> bool {
    let Some(mac) = snap.ports.get(usize::from(port)).map(|p| p.mac) else {
        return false;
    };
    frame.get(..6) == Some(&mac[..]) || frame.get(..6).is_some_and(|d| snap.is_vmac(port, d))
}

/// A packet sent to this port from a NAT real server's address and port that no
/// connection took, and no TCP RST or SCTP ABORT: what IPVS's nat_icmp_send answers with
/// "port unreachable".
pub(super) fn stray_from_nat_server(snap: &Snapshot, port: u16, flow: &Flow, frame: &[u8]) -> bool {
    !aborts(flow)
        && snap.is_nat_server(flow.proto, &flow.src, flow.sport)
        && sent_to_port(snap, port, frame)
}

/// The packet's DS field (IPv4's TOS, IPv6's traffic class).
pub(super) fn ds_field(flow: &Flow, frame: &[u8]) -> u8 {
    let at = flow.l3();
    let byte = |i: usize| frame.get(at + i).copied().unwrap_or(0);
    if flow.v6 {
        (byte(0) << 4) | (byte(1) >> 4)
    } else {
        byte(1)
    }
}

/// A cache-bypass entry for `key` in `state` (destination `nowhere`, the unspecified
/// address): no service or server, seen from the client's side only, as a direct-routing
/// entry (input-only states).
pub(super) fn bypass_entry(key: InKey, nowhere: Addr16, state: u8, one_packet: bool) -> Conn {
    let mut c = Conn::new(
        key,
        nowhere,
        0,
        SNAT_SERVICE,
        BYPASS_DEST,
        ForwardMethod::Dr,
        if one_packet { flags::ONE_PACKET } else { 0 },
    );
    c.state = state;
    if state_is_active(key.proto, state) {
        c.flags |= flags::ACTIVE;
    }
    c
}
