//! Full NAT and SNAT: connections whose source is replaced by a local address and port, so
//! the other end answers to rvs whatever its routes. A service's full NAT (DPVS's FNAT, the
//! seed's `SNAT --to-source VIP` after IPVS's NAT) does it towards its NAT servers; SNAT
//! rules do it for traffic rvs routes (`-j SNAT` / `MASQUERADE`), an entry whose "server"
//! is the flow's own destination. Each worker gives out only local ports whose replies it
//! owns ([`owner_of`] of the local end), so no lock is needed and replies come back to it.
//!
//! PROXY protocol v2 (full NAT, TCP): the header goes before the client's first data byte,
//! after which the client's sequence numbers towards the server are shifted by its length
//! and the server's acknowledgements (and SACK edges) back; the server's MSS is lowered by
//! as much, so the client's segments still fit with the header.

use super::segment::*;
use super::*;
use crate::conn::{proxy, Local};
use rvs_wire::proxy as proxy_v2;

/// Candidates a local-port search looks at, per worker, before it gives up.
const PORT_TRIES_PER_WORKER: u32 = 64;
/// Full NAT's local ports.
const FULL_NAT_PORTS: (u16, u16) = (1024, 65535);
/// The service id and server id of an SNAT entry (no service, no server).
pub(super) const SNAT_SERVICE: u16 = u16::MAX;
pub(super) const SNAT_DEST: u32 = u32::MAX;
/// The server id of a cache-bypass entry (no server: its packets go to their own
/// destination; service [`SNAT_SERVICE`]).
pub(super) const BYPASS_DEST: u32 = u32::MAX - 1;

/// Whether an entry's server id names a real server (not an SNAT or cache-bypass entry's).
#[inline]
pub(super) fn of_a_server(dest: u32) -> bool {
    dest < BYPASS_DEST
}

/// `cursor` one step round `0..span` (a compare, no division; a cursor past a smaller span
/// starts again at 0): the next candidate's place.
fn step_round(cursor: &mut u32, span: u32) -> u32 {
    *cursor = cursor.wrapping_add(1);
    if *cursor >= span {
        *cursor = 0;
    }
    *cursor
}

impl Engine {
    /// This worker's place among `workers`: the local ports it gives out are those whose
    /// replies are steered to it.
    pub fn set_owner(&mut self, index: usize, workers: usize) {
        self.owner = (index, workers.max(1));
        self.next_ident = index as u16;
        self.next_ident6 = index as u32;
    }

    /// The identification for the next IPv6 datagram this worker fragments (the workers
    /// take turns as with IPv4's, over 32 bits).
    pub fn fragment_ident6(&mut self) -> u32 {
        self.next_ident6 = self.next_ident6.wrapping_add(self.owner.1 as u32);
        self.next_ident6
    }

    /// The local end of a full-NAT (or SNAT) entry.
    #[inline]
    pub(super) fn full_nat_end(
        &self,
        id: crate::conn::ConnId,
        conn: &Binding,
    ) -> Option<(IpAddr, u16)> {
        if conn.flags & flags::FULL_NAT == 0 {
            return None;
        }
        self.table.local(id).map(|l| (ip_of(&l.addr), l.port))
    }

    /// A free local port on `local` towards `(daddr, dport)` in `range` that this worker
    /// owns, `prefer` first when it qualifies; None when the search finds none.
    fn local_port(
        &mut self,
        proto_num: u8,
        local: IpAddr,
        (daddr, dport): (Addr16, u16),
        (first, last): (u16, u16),
        prefer: Option<u16>,
    ) -> Option<u16> {
        let (me, workers) = self.owner;
        let caddr = addr16(local);
        let free = |table: &ConnTable, p: u16| {
            (workers <= 1 || owner_of(local, p, workers) == me)
                && table
                    .lookup_out(&OutKey {
                        proto: proto_num,
                        daddr,
                        dport,
                        caddr,
                        cport: p,
                    })
                    .is_none()
        };
        if let Some(p) = prefer.filter(|p| (first..=last).contains(p)) {
            if free(&self.table, p) {
                return Some(p);
            }
        }
        let span = u32::from(last.saturating_sub(first)) + 1;
        let tries = span.min(PORT_TRIES_PER_WORKER.saturating_mul(workers as u32));
        for _ in 0..tries {
            let p = first.wrapping_add(step_round(&mut self.port_cursor, span) as u16);
            if free(&self.table, p) {
                return Some(p);
            }
        }
        None
    }

    /// The local end of a new full-NAT connection to `server:dport`: the service's local
    /// addresses of the server's family in turn (the next when one has no port left), or
    /// the address of the port towards the server.
    pub(super) fn full_nat_local(
        &mut self,
        snap: &Snapshot,
        fnat: &FullNat,
        flow: &Flow,
        (server, dport): (IpAddr, u16),
    ) -> Result<Local, DropReason> {
        let proxy = if fnat.proxy_protocol && flow.proto == proto::TCP {
            proxy::PENDING | if fnat.proxy_v1 { proxy::V1 } else { 0 }
        } else {
            proxy::NONE
        };
        let proxy_len = proxy_header_len(
            proxy,
            (flow.src_ip(), flow.sport),
            (flow.dst_ip(), flow.dport),
        );
        let same_family = fnat.locals_of(server.is_ipv4());
        let n = same_family.len();
        let own = if fnat.locals().is_empty() {
            let (port, _) = snap.route(server).ok_or(DropReason::NoRoute)?;
            Some(snap.local_addr(port, server).ok_or(DropReason::NoRoute)?)
        } else {
            None
        };
        for _ in 0..n.max(1) {
            let addr = match own {
                Some(a) => a,
                None => {
                    let i = step_round(&mut self.local_cursor, n as u32) as usize;
                    *same_family.get(i).ok_or(DropReason::NoLocalPort)?
                }
            };
            let to = (addr16(server), dport);
            if let Some(port) = self.local_port(flow.proto, addr, to, FULL_NAT_PORTS, None) {
                return Ok(Local {
                    addr: addr16(addr),
                    port,
                    proxy,
                    proxy_len,
                    proxy_seq: 0,
                });
            }
        }
        Err(DropReason::NoLocalPort)
    }

    /// The local end an SNAT rule gives a balanced NAT connection from `flow`'s client to
    /// `server`; None when no rule matches.
    pub(super) fn snat_local(
        &mut self,
        snap: &Snapshot,
        flow: &Flow,
        (server, dport): (IpAddr, u16),
    ) -> Result<Option<Local>, DropReason> {
        let Some((out_port, _)) = snap.route(server) else {
            return Ok(None);
        };
        let Some(rule) = snap
            .snat
            .iter()
            .find(|r| r.matches(flow.proto, flow.src_ip(), server, out_port))
        else {
            return Ok(None);
        };
        let to = rule
            .to_source
            .or_else(|| snap.local_addr(out_port, server))
            .filter(|a| a.is_ipv4() == server.is_ipv4())
            .ok_or(DropReason::NoRoute)?;
        let port = self
            .local_port(
                flow.proto,
                to,
                (addr16(server), dport),
                rule.ports,
                Some(flow.sport),
            )
            .ok_or(DropReason::NoLocalPort)?;
        Ok(Some(Local {
            addr: addr16(to),
            port,
            ..Local::default()
        }))
    }

    /// A routed flow's source NAT: its entry (found, or made when an opening packet matches
    /// a rule) and the packet forwarded by it; None when SNAT does not apply.
    pub(super) fn source_nat<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        flow: Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        let id = match self.table.lookup_in(&in_key(&flow)) {
            Some(id) => id,
            None => {
                // A SYN-ACK answers a connection from the other side (Linux's conntrack
                // sees a reply, which SNAT leaves): routed unchanged.
                let answer = flow.proto == proto::TCP && flow.tcp_flags & tcp::ACK != 0;
                if !opens_connection(&flow) || answer || flow.frag != Frag::Whole {
                    return None;
                }
                let (out_port, _) = snap.route(flow.dst_ip())?;
                let rule = *snap
                    .snat
                    .iter()
                    .find(|r| r.matches(flow.proto, flow.src_ip(), flow.dst_ip(), out_port))?;
                match self.new_snat(snap, now, &rule, out_port, &flow) {
                    Ok(id) => id,
                    Err(r) => return Some(self.drop(r)),
                }
            }
        };
        Some(self.forward_conn_to_server(snap, loads, now, (id, Tracked::No), &flow, frame))
    }

    fn new_snat(
        &mut self,
        snap: &Snapshot,
        now: u32,
        rule: &SnatRule,
        out_port: u16,
        flow: &Flow,
    ) -> Result<crate::conn::ConnId, DropReason> {
        let to = rule
            .to_source
            .or_else(|| snap.local_addr(out_port, flow.dst_ip()))
            .ok_or(DropReason::NoRoute)?;
        if to.is_ipv4() != flow.dst_ip().is_ipv4() {
            return Err(DropReason::NoRoute);
        }
        // As Linux's SNAT: the source port is kept when it is free (and this worker's).
        let far = (flow.dst, flow.dport);
        let port = self
            .local_port(flow.proto, to, far, rule.ports, Some(flow.sport))
            .ok_or(DropReason::NoLocalPort)?;
        let conn = Conn::new(
            in_key(flow),
            flow.dst,
            flow.dport,
            SNAT_SERVICE,
            SNAT_DEST,
            ForwardMethod::Nat,
            flags::REPLY_INDEXED,
        );
        let local = Local {
            addr: addr16(to),
            port,
            ..Local::default()
        };
        let expires = now.saturating_add(self.timeouts.of(flow.proto, 0));
        let id = self
            .table
            .insert_full_nat(&conn, local, expires)
            .map_err(|e| match e {
                crate::conn::InsertError::Full => DropReason::TableFull,
                crate::conn::InsertError::Clash => DropReason::Clash,
            })?;
        self.counters.snat_conns.add(1);
        // TCP and SCTP are noted at their first state change, which follows at once.
        if flow.proto != proto::TCP && flow.proto != proto::SCTP {
            self.sync_note(id, now);
        }
        Ok(id)
    }

    /// Client -> server under full NAT with PROXY protocol: the header before the first
    /// data byte (again on a retransmission of it), later segments' sequence numbers
    /// shifted. `flow.end()` follows a grown segment. False when the frame cannot grow.
    pub(super) fn proxy_towards_server<F: Frame>(
        &mut self,
        now: u32,
        id: crate::conn::ConnId,
        flow: &mut Flow,
        frame: &mut F,
    ) -> bool {
        let Some(local) = self.table.local(id).copied() else {
            return true;
        };
        if local.proxy == proxy::NONE || flow.proto != proto::TCP || flow.frag != Frag::Whole {
            return true;
        }
        let Some((seq, data_at)) = tcp_seq_and_data(frame.bytes(), flow) else {
            return true;
        };
        let has_data = data_at < flow.end();
        if flow.tcp_flags & tcp::SYN != 0 {
            if let Some(l) = self.table.local_mut(id) {
                l.proxy_seq = seq.wrapping_add(1);
            }
            return true;
        }
        let first = local.proxy_seq;
        let v1 = local.proxy & proxy::V1 != 0;
        if has_data && seq == first {
            if !insert_proxy_header(frame, flow, data_at, v1) {
                return false;
            }
            if let Some(l) = self.table.local_mut(id) {
                let first_time = !proxy::sent(l.proxy);
                l.proxy = (l.proxy & !proxy::STATE) | proxy::SENT;
                // A backup must shift sequence numbers from now on too.
                if first_time {
                    self.sync_note(id, now);
                }
            }
        } else if proxy::sent(local.proxy) && seq_after_or_eq(seq, first) {
            let delta = u32::from(local.proxy_len);
            set_u32_field(frame.bytes_mut(), flow, 4, seq.wrapping_add(delta));
        }
        true
    }

    /// Server -> client under full NAT with PROXY protocol: acknowledgements and SACK
    /// edges shifted back past the header; the MSS of a SYN-ACK lowered by its length.
    pub(super) fn proxy_towards_client<F: Frame>(
        &self,
        id: crate::conn::ConnId,
        flow: &Flow,
        frame: &mut F,
    ) {
        let Some(local) = self.table.local(id).copied() else {
            return;
        };
        if local.proxy == proxy::NONE || flow.proto != proto::TCP || flow.frag != Frag::Whole {
            return;
        }
        let delta = u32::from(local.proxy_len);
        let unshift = |v: u32| {
            if !proxy::sent(local.proxy) || !seq_after_or_eq(v, local.proxy_seq) {
                v
            } else if seq_after_or_eq(v, local.proxy_seq.wrapping_add(delta)) {
                v.wrapping_sub(delta)
            } else {
                local.proxy_seq
            }
        };
        if flow.tcp_flags & tcp::ACK != 0 {
            if let Some(ack) = tcp_u32(frame.bytes(), flow, 8) {
                set_u32_field(frame.bytes_mut(), flow, 8, unshift(ack));
            }
        }
        adjust_options(
            frame.bytes_mut(),
            flow,
            |kind, value: &mut [u8]| match kind {
                tcp_option::MSS if flow.tcp_flags & tcp::SYN != 0 => {
                    if let Some(v) = rvs_wire::array_mut::<2>(value, 0) {
                        let lower = u16::from_be_bytes(*v).saturating_sub(delta as u16).max(536);
                        *v = lower.to_be_bytes();
                    }
                }
                tcp_option::SACK => {
                    for edge in value.as_chunks_mut::<4>().0 {
                        *edge = unshift(u32::from_be_bytes(*edge)).to_be_bytes();
                    }
                }
                _ => {}
            },
        );
    }
}

/// The length of the PROXY header `proxy` ([`Local::proxy`]) asks for between `client`
/// and `vip`: version 2's for the family, version 1's text (at most 104 bytes); 0 for none.
pub(crate) fn proxy_header_len(proxy: u8, client: (IpAddr, u16), vip: (IpAddr, u16)) -> u8 {
    let n = if proxy == proxy::NONE {
        0
    } else if proxy & proxy::V1 != 0 {
        proxy_v2::v1_len(client, vip)
    } else {
        proxy_v2::header_len(client.0.is_ipv6())
    };
    n as u8
}

/// Puts the PROXY header (version 1 with `v1`, else 2) at `data_at` (the segment's data
/// grows by its length): IP lengths and checksums, and the TCP checksum computed anew.
fn insert_proxy_header<F: Frame>(frame: &mut F, flow: &mut Flow, data_at: usize, v1: bool) -> bool {
    let ends = ((flow.src_ip(), flow.sport), (flow.dst_ip(), flow.dport));
    let n = if v1 {
        proxy_v2::v1_len(ends.0, ends.1)
    } else {
        proxy_v2::header_len(flow.v6)
    };
    // (A frame stays within 64 KiB.)
    let Ok(new_end) = u16::try_from(flow.end() + n) else {
        return false;
    };
    frame.truncate(flow.end());
    if !frame.append(n) {
        return false;
    }
    let b = frame.bytes_mut();
    let end = flow.end();
    if !rvs_wire::move_within(b, data_at..end, data_at + n) {
        return false;
    }
    let at = b.get_mut(data_at..data_at + n).unwrap_or_default();
    let written = if v1 {
        proxy_v2::emit_tcp_v1(at, ends.0, ends.1)
    } else {
        proxy_v2::emit_tcp(at, ends.0, ends.1)
    };
    if written != n {
        return false;
    }
    flow.set_end(new_end);
    segment_resized(b, flow);
    true
}

#[cfg(test)]
mod tests {
    use super::step_round;

    /// The cursor visits every place of its span once a round, as `cursor % span` did for
    /// a cursor that stays in one span.
    #[test]
    fn a_cursor_steps_round_its_span_as_the_remainder_did() {
        for span in [1u32, 2, 3, 7, 64, 64_512] {
            let (mut cursor, mut by_remainder) = (0u32, 0u32);
            for _ in 0..3 * span {
                by_remainder = by_remainder.wrapping_add(1);
                assert_eq!(
                    step_round(&mut cursor, span),
                    by_remainder % span,
                    "span {span}"
                );
            }
        }
        // Left past a smaller span (another range, fewer local addresses): it starts again.
        let mut cursor = 40;
        assert_eq!(step_round(&mut cursor, 8), 0);
        assert_eq!(step_round(&mut cursor, 8), 1);
        let mut cursor = u32::MAX;
        assert_eq!(step_round(&mut cursor, 5), 0);
        // No span (no local address of the family): 0, never a division by zero.
        assert_eq!(step_round(&mut cursor, 0), 0);
    }
}
