//! Sessions: new connections through the scheduler (with persistence templates), the TCP
//! state tracked per packet, release of a server's load, and incremental expiry.

use super::*;

/// What forwarding needs of a connection, copied out of its entry (not all of it: the
/// packet path reads a few fields), with the address and port it rewrites to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Binding {
    pub(super) method: ForwardMethod,
    pub(super) tunnel: crate::model::Tunnel,
    pub(super) flags: u8,
    pub(super) state: u8,
    pub(super) service: u16,
    pub(super) dest: u32,
    pub(super) addr: crate::conn::Addr16,
    pub(super) port: u16,
    /// Its client packets so far (up to [`IN_PKTS_KEPT`]).
    pub(super) in_pkts: u8,
}

impl Binding {
    #[inline]
    pub(super) fn of(c: &Conn, addr: crate::conn::Addr16, port: u16) -> Binding {
        Binding {
            method: c.method,
            tunnel: c.tunnel,
            flags: c.flags,
            state: c.state,
            service: c.service,
            dest: c.dest,
            addr,
            port,
            in_pkts: c.in_pkts,
        }
    }
}

/// Most entries one [`Engine::expire`] call visits.
pub const EXPIRE_BUDGET_MAX: usize = 256;

/// How long a template of a service no longer known lives on while it controls connections.
pub(super) const TEMPLATE_REARM: u32 = 60;

/// What opens a connection: a client's packet (an opening one; with sloppy TCP or SCTP
/// any but a RST or ABORT), or an ICMP error that quotes a reply of a flow this node has
/// no connection for (IPVS's schedule_icmp: scheduled whatever it quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opener {
    Packet,
    IcmpError,
}

/// What a new connection that may evict an embryonic one opens with (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opening {
    /// A TCP SYN or an SCTP INIT.
    Syn,
    /// A UDP flow's first datagram.
    Datagram,
}

/// How long a connection an ICMP error made lives without packets of its own (IPVS's
/// initial timeout of a new connection, which no state change replaced).
pub(super) const ICMP_OPENED_TIMEOUT: u32 = 3;

/// Whether a packet's state change has been made on its connection already (the opening
/// packet's is, as [`Engine::new_conn`] makes the entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tracked {
    No,
    Yes,
}

/// The direction IPVS's state tables take a client's packet in: NAT sees both ways, DR and
/// TUN only the client's.
#[inline]
pub(super) fn client_direction(method: ForwardMethod) -> Direction {
    if method == ForwardMethod::Nat {
        Direction::Input
    } else {
        Direction::InputOnly
    }
}

/// The state a packet moves a connection in state `from` to; None for an SCTP packet
/// without chunks, which changes neither state nor timer (as IPVS).
#[inline(always)]
pub(super) fn state_after(
    tables: &crate::conn::TcpTables,
    dir: Direction,
    flow: &Flow,
    from: u8,
) -> Option<u8> {
    match flow.proto {
        // The common case, told without the table: an established connection's segment
        // without SYN, FIN or RST keeps its state in every direction's table.
        proto::TCP
            if from == TcpState::Established as u8
                && flow.tcp_flags & (tcp::SYN | tcp::FIN | tcp::RST) == 0 =>
        {
            Some(from)
        }
        proto::TCP => {
            Some(
                crate::conn::transition_by(tables, dir, TcpState::from_u8(from), flow.tcp_flags)
                    as u8,
            )
        }
        proto::SCTP => flow
            .sctp_chunk
            .map(|chunk| sctp_transition(dir, SctpState::from_u8(from), chunk) as u8),
        // A datagram from the client leaves UDP's first-datagram state (off the embryonic
        // list); one from its server marks it answered.
        proto::UDP => Some(match dir {
            Direction::Output => from | crate::conn::UDP_ANSWERED,
            _ => from & !crate::conn::UDP_FIRST_DATAGRAM,
        }),
        // Other protocols here have no state but 0.
        _ => Some(0),
    }
}

/// The state an opening packet (a SYN, an INIT; sloppily any segment or chunk) gives a new
/// connection, as tracking it on an entry in no state would.
#[inline]
pub(super) fn opening_state(
    tables: &crate::conn::TcpTables,
    flow: &Flow,
    method: ForwardMethod,
) -> u8 {
    state_after(tables, client_direction(method), flow, 0).unwrap_or(0)
}

/// Whether a packet that is no opening one opens all the same: IPVS's sloppy_tcp (any
/// segment but a RST), sloppy_sctp (any first chunk but an ABORT).
#[inline]
fn sloppy_opens(snap: &Snapshot, flow: &Flow) -> bool {
    let sloppy = match flow.proto {
        proto::TCP => snap.sloppy_tcp,
        // (An SCTP packet without chunks opens nothing.)
        proto::SCTP => snap.sloppy_sctp && flow.sctp_chunk.is_some(),
        _ => false,
    };
    sloppy && !aborts(flow)
}

/// The drop a refused insert counts as.
pub(super) fn drop_reason(e: crate::conn::InsertError) -> DropReason {
    match e {
        crate::conn::InsertError::Full => DropReason::TableFull,
        crate::conn::InsertError::Clash => DropReason::Clash,
    }
}

/// Whether a persistence template bound to `server` is followed: not with IPVS's
/// expire_quiescent_template once its weight is 0.
fn followable(snap: &Snapshot, server: &RealServer) -> bool {
    server.weight > 0 || !snap.expire_quiescent_template
}

/// The address a group (firewall mark) persists under in its templates' keys: fd00:: with
/// the mark as its last four bytes.
pub(super) fn group_addr(mark: u32) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[12..].copy_from_slice(&mark.to_be_bytes());
    a
}

impl Engine {
    /// Runs the connection timers, visiting at most `budget` (<= [`EXPIRE_BUDGET_MAX`]) entries. Expired
    /// connections leave their server's counters and their template's count; a template
    /// lives on while it still controls connections.
    pub fn expire(&mut self, now: u32, budget: usize, loads: &[DestLoad]) -> usize {
        self.forget_failed_neighbours(now);
        // Templates that lost a connection (kept across calls: no per-poll zeroing).
        let released = &mut self.released;
        released.clear();
        let templates = &self.templates;
        let pending = &mut self.pending_loads;
        let shared = self.shared.as_deref();
        let ftp = self.ftp.as_ref();
        // FTP control connections kept for their data connections (a backup is told).
        let kept = &mut self.kept;
        kept.clear();
        let budget = budget.min(released.capacity()).min(kept.capacity());
        let visited = self.table.expire_watching(
            now,
            budget,
            |id, c| {
                if let Some(later) = ftp.and_then(|h| h.control_kept(c, now)) {
                    kept.push(id.0);
                    return Some(later);
                }
                if c.is_template() {
                    if c.controls > 0 {
                        let rearm = TemplateService::of(templates, c.service).timeout;
                        let until = now.saturating_add(rearm);
                        // Other workers' new connections keep following it meanwhile.
                        if let Some(b) = shared {
                            b.extend(b.key(&c.in_key()), now, c.dest, until);
                        }
                        return Some(until);
                    }
                    if c.flags & flags::TEMPLATE_COPY == 0 {
                        // Another worker's newer connection of the client keeps IPVS's one
                        // template alive: the counted one lives as long (without
                        // extending the board itself).
                        let elsewhere = shared
                            .and_then(|b| b.find_until(b.key(&c.in_key()), now))
                            .filter(|&(dest, until)| dest == c.dest && until > now);
                        if let Some((_, until)) = elsewhere {
                            return Some(until);
                        }
                        if let Some(l) = loads.get(c.dest as usize) {
                            l.remove_persistent();
                        }
                    }
                    return None;
                }
                pending.closed(loads, c.dest as usize, c.flags & flags::ACTIVE != 0);
                if let Some(t) = c.template_id() {
                    released.push(t.0);
                }
                None
            },
            |c, app| {
                if let Some(h) = ftp {
                    h.found_alive(c, app, now);
                }
            },
        );
        for &t in &self.released {
            if let Some(t) = self.table.get_mut(crate::conn::ConnId(t)) {
                t.controls = t.controls.saturating_sub(1);
            }
        }
        self.counters.ftp_controls_kept.add(self.kept.len() as u64);
        for i in 0..self.kept.len() {
            if let Some(&id) = self.kept.get(i) {
                self.sync_note(crate::conn::ConnId(id), now);
            }
        }
        self.ftp_look_over(now, loads);
        visited
    }

    /// With `expire_nodest_conn`, after servers were deleted: ends their connections in
    /// the background, `budget` (<= [`EXPIRE_BUDGET_MAX`]) table slots a call, as kernels
    /// since 5.9 flush them: with each connection its template once that controls no
    /// other, and templates found controlling none. Does nothing when no sweep is due.
    /// True while one runs.
    pub fn sweep_removed(&mut self, snap: &Snapshot, loads: &[DestLoad], budget: usize) -> bool {
        let Some(from) = self.nodest_sweep else {
            return false;
        };
        let mut ids = std::mem::take(&mut self.swept);
        ids.clear();
        let removed = |c: &Conn| of_a_server(c.dest) && !snap.has_server(c.dest);
        let next = self
            .table
            .select_live(from, budget.min(ids.capacity()), &mut ids, |c| {
                removed(c) && (!c.is_template() || c.controls == 0)
            });
        for &id in &ids {
            let Some(c) = self.table.get(id).copied() else {
                continue;
            };
            if c.is_template() {
                self.release_template(id, loads);
                continue;
            }
            self.release(id, loads);
            let idle = c.template_id().filter(|&t| {
                self.table
                    .get(t)
                    .is_some_and(|t| t.is_template() && t.controls == 0 && removed(t))
            });
            if let Some(t) = idle {
                self.release_template(t, loads);
            }
        }
        self.swept = ids;
        self.nodest_sweep = (next < self.table.capacity()).then_some(next);
        self.nodest_sweep.is_some()
    }

    /// TCP state and timer upkeep for a packet of a connection (inlined: most packets
    /// change no state and only move the timer).
    #[inline(always)]
    pub(super) fn track(
        &mut self,
        id: crate::conn::ConnId,
        conn: &Binding,
        dir: Direction,
        flow: &Flow,
        now: u32,
        loads: &[DestLoad],
    ) {
        let from = conn.state;
        let Some(to) = state_after(self.tcp_tables, dir, flow, from) else {
            return;
        };
        if to != from {
            self.change_state(id, conn.dest, flow.proto, (from, to), now, loads);
        }
        let timeout = self.timeouts.of(flow.proto, to);
        let client = dir != Direction::Output && conn.in_pkts < IN_PKTS_KEPT;
        self.table.touch(id, now.saturating_add(timeout), client);
        self.sync_refresh(id, now, timeout);
    }

    /// A connection's state moves `from` -> `to`: embryonic no more once established, its
    /// server's active/inactive counts, its entry, and a sync message.
    #[inline(never)]
    fn change_state(
        &mut self,
        id: crate::conn::ConnId,
        dest: u32,
        proto_num: u8,
        (from, to): (u8, u8),
        now: u32,
        loads: &[DestLoad],
    ) {
        if crate::conn::leaves_embryonic(proto_num, to) {
            self.table.clear_embryonic(id);
        }
        if crate::conn::assures(proto_num, from, to) {
            let template = self.table.get(id).and_then(|c| c.template_id());
            if let Some(t) = template.and_then(|t| self.table.get_mut(t)) {
                t.assured = true;
                // Sent again (with this connection) so that a backup has it ASSURED too.
                t.synced_at = 0;
            }
        }
        let active = state_is_active(proto_num, to);
        let was_active = state_is_active(proto_num, from);
        self.pending_loads
            .moved(loads, dest as usize, was_active, active);
        if let Some(c) = self.table.get_mut(id) {
            c.state = to;
            c.flags = if active {
                c.flags | flags::ACTIVE
            } else {
                c.flags & !flags::ACTIVE
            };
        }
        // (A UDP flow leaving the embryonic list is synced for the first time.)
        self.sync_note(id, now);
    }

    /// Removes template `id`; this worker's own leaves its server's persistent count.
    pub(super) fn release_template(&mut self, id: crate::conn::ConnId, loads: &[DestLoad]) {
        let taken = self.table.remove_with(id, |c| (c.dest, c.flags));
        if let Some((dest, _)) = taken.filter(|(_, f)| f & flags::TEMPLATE_COPY == 0) {
            if let Some(l) = loads.get(dest as usize) {
                l.remove_persistent();
            }
        }
    }

    /// A connection ends before its timer (rescheduled SYN): counters and template.
    pub(super) fn release(&mut self, id: crate::conn::ConnId, loads: &[DestLoad]) {
        let taken = self
            .table
            .remove_with(id, |c| (c.dest, c.flags, c.template_id()));
        if let Some((dest, conn_flags, template)) = taken {
            self.pending_loads
                .closed(loads, dest as usize, conn_flags & flags::ACTIVE != 0);
            if let Some(t) = template.and_then(|t| self.table.get_mut(t)) {
                t.controls = t.controls.saturating_sub(1);
            }
        }
    }

    pub(super) fn new_conn(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        (now, opener): (u32, Opener),
        key: &InKey,
        flow: &Flow,
        frame: &[u8],
    ) -> Result<crate::conn::ConnId, DropReason> {
        let Some(entry) = snap.service_for_mapped(flow.proto, &flow.src, &flow.dst, flow.dport)
        else {
            return Err(DropReason::NoService);
        };
        let entry_id = entry.id;
        let svc = snap.scheduling_service(entry);
        // Only an opening packet schedules: a TCP SYN, an SCTP INIT; with sloppy TCP any
        // segment but a RST, with sloppy SCTP any packet whose first chunk is no ABORT.
        if opener == Opener::Packet && !opens_connection(flow) && !sloppy_opens(snap, flow) {
            return Err(DropReason::NoConnection);
        }
        // IPVS's drop_packet, where its schedulers would take the packet.
        if opener == Opener::Packet && self.defence.drops_packet() {
            return Err(DropReason::Defence);
        }
        match flow.proto {
            proto::TCP => self.make_room_for_syn(loads, flow.src, proto::TCP)?,
            proto::SCTP => self.make_room_for_syn(loads, flow.src, proto::SCTP)?,
            proto::UDP if !svc.one_packet => self.make_room_for_datagram(loads, flow.src)?,
            _ => {}
        }
        // Persistence: a template per (masked client, service or group).
        let mut template = None;
        let mut chosen = None;
        if let Some((timeout, mask)) = svc.persistence {
            // With the SIP persistence engine the template follows the Call-ID (any client
            // address); a datagram without one persists by address as usual.
            let call_id = if svc.pe_sip && flow.proto == proto::UDP {
                frame
                    .get(flow.l4() + 8..flow.end())
                    .and_then(crate::sip::call_id)
            } else {
                None
            };
            let client = match (flow.src_ip(), svc.persist_mask_v4) {
                (IpAddr::V4(v), Some(m)) => addr16(IpAddr::V4((u32::from(v) & m).into())),
                _ => addr16(masked(flow.src_ip(), mask)),
            };
            let tkey = InKey {
                proto: flow.proto,
                caddr: match call_id {
                    Some(id) => crate::sip::template_addr(id, &client),
                    None => client,
                },
                cport: 0,
                vaddr: match svc.group {
                    Some(mark) => group_addr(mark),
                    None => addr16(svc.vaddr),
                },
                vport: if svc.group.is_some() { 0 } else { svc.vport },
            };
            let expires = now.saturating_add(timeout);
            if let Some(id) = call_id {
                self.keep_sip_call(&tkey.caddr, client, id);
            }
            let board_key = self.shared.as_ref().map(|b| b.key(&tkey));
            if let Some(tid) = self.table.lookup_in(&tkey) {
                // By address and port: services of one group list the same servers.
                let dest = self.table.get(tid).map(|t| (t.daddr, t.dport));
                let same = |s: &&RealServer, (a, p): (crate::conn::Addr16, u16)| {
                    addr16(s.addr) == a && s.port == p
                };
                // A quiesced server's template is not followed with expire_quiescent_template.
                let followed = |i: &usize| svc.servers.get(*i).is_some_and(|s| followable(snap, s));
                let found = dest.and_then(|d| svc.servers.iter().position(|s| same(&s, d)));
                let i = match found.filter(followed) {
                    Some(i) => {
                        if let (Some(b), Some(k), Some(s)) =
                            (&self.shared, board_key, svc.servers.get(i))
                        {
                            b.extend(k, now, s.id as u32, expires);
                        }
                        i
                    }
                    None => {
                        // Its server was deleted (or quiesced, above): rebind the template
                        // (it stays in place for the connections it already controls) to
                        // another worker's new choice, or reschedule.
                        let (i, own) = self.choose_persistent(
                            snap,
                            svc,
                            loads,
                            flow,
                            now,
                            (board_key, expires),
                        )?;
                        let s = svc.servers.get(i).ok_or(DropReason::NoServer)?;
                        self.rebind_template(tid, (s, s.port), own, loads);
                        i
                    }
                };
                template = Some(tid);
                chosen = Some(i);
                self.table.set_expires(tid, expires);
                self.sync_refresh(tid, now, timeout);
            }
            if chosen.is_none() {
                let (i, own) =
                    self.choose_persistent(snap, svc, loads, flow, now, (board_key, expires))?;
                let s = svc.servers.get(i).ok_or(DropReason::NoServer)?;
                let mut t = Conn::new(
                    tkey,
                    addr16(s.addr),
                    s.port,
                    entry_id,
                    s.id as u32,
                    s.method,
                    if own {
                        flags::TEMPLATE
                    } else {
                        flags::TEMPLATE | flags::TEMPLATE_COPY
                    },
                );
                t.tunnel = s.tunnel;
                let tid = self.table.insert(t, expires).map_err(drop_reason)?;
                if let Some(l) = loads.get(s.id).filter(|_| own) {
                    l.add_persistent();
                }
                // (Synced with its first connection that is.)
                template = Some(tid);
                chosen = Some(i);
            }
        }
        let i = match chosen {
            Some(i) => i,
            None => self
                .schedule(svc, loads, flow, now)
                .ok_or(DropReason::NoServer)?,
        };
        let s = svc.servers.get(i).ok_or(DropReason::NoServer)?;
        let dport = if s.port == 0 { flow.dport } else { s.port };
        let mut f = if svc.one_packet && flow.proto == proto::UDP {
            flags::ONE_PACKET
        } else if s.method == ForwardMethod::Nat {
            flags::REPLY_INDEXED
        } else {
            0
        };
        // Decided once per connection, not per packet.
        if snap.is_local_server(s) {
            f |= flags::LOCAL;
        }
        // The opening packet's own state change is made here, with the entry (the caller
        // does not track this packet again).
        let udp_embryonic = flow.proto == proto::UDP && f & flags::ONE_PACKET == 0;
        let first = if udp_embryonic {
            crate::conn::UDP_FIRST_DATAGRAM
        } else {
            opening_state(self.tcp_tables, flow, s.method)
        };
        let active = state_is_active(flow.proto, first);
        if active {
            f |= flags::ACTIVE;
        }
        let mut c = Conn::new(
            *key,
            addr16(s.addr),
            dport,
            entry_id,
            s.id as u32,
            s.method,
            f,
        );
        c.tunnel = s.tunnel;
        c.state = first;
        c.in_pkts = u8::from(opener == Opener::Packet);
        if let Some(t) = template {
            c.template = t.0;
        }
        // The server's next hop, when another connection found it in this epoch.
        if let Some(index) = self.dest_hop(crate::conn::addr_word(s.addr)) {
            c.hop_epoch = self.hop_epoch;
            c.hop_to_server = index;
        }
        let expires = now.saturating_add(self.timeouts.of(flow.proto, first));
        let full_nat = svc
            .full_nat
            .as_ref()
            .filter(|_| s.method == ForwardMethod::Nat && f & flags::LOCAL == 0);
        let nat = s.method == ForwardMethod::Nat && f & flags::LOCAL == 0;
        // SNAT rules see balanced NAT traffic too, after its destination is rewritten
        // (iptables' POSTROUTING after IPVS): the seed's `-d LAN -j SNAT --to VIP`.
        let snat = match full_nat {
            None if nat && !snap.snat.is_empty() => self.snat_local(snap, flow, (s.addr, dport))?,
            _ => None,
        };
        let id = match (full_nat, snat) {
            (Some(fnat), _) => {
                let local = self.full_nat_local(snap, fnat, flow, (s.addr, dport))?;
                self.table.insert_full_nat(&c, local, expires)
            }
            (None, Some(local)) => self.table.insert_full_nat(&c, local, expires),
            // The caller looked the key up and found nothing; only a template made here
            // (a client port 0 can give it the same key) could clash since.
            (None, None) => {
                let insert = |table: &mut crate::conn::ConnTable| match flow.in_hash() {
                    Some(h) if template.is_none() => table.insert_absent(&c, h, expires),
                    Some(h) => table.insert_hashed(&c, h, expires),
                    None => table.insert(c, expires),
                };
                match insert(&mut self.table) {
                    Err(crate::conn::InsertError::Clash) if self.end_reply_clash(&c, loads) => {
                        insert(&mut self.table)
                    }
                    done => done,
                }
            }
        }
        .map_err(drop_reason)?;
        // Not yet established: a TCP connection before its handshake ends, an SCTP one
        // before its association is up, a UDP one before the client's second datagram
        // (what a flood of any leaves behind).
        let established = crate::conn::leaves_embryonic(flow.proto, first);
        if let Some(t) = template.and_then(|t| self.table.get_mut(t)) {
            t.controls += 1;
            t.assured |= crate::conn::assures(flow.proto, 0, first);
        }
        if !established {
            self.table.mark_embryonic(id);
        }
        self.pending_loads.open(loads, s.id, active);
        self.counters.connection(usize::from(entry_id), s.id);
        // TCP and SCTP are noted once they have a state (as at any later change); one an
        // ICMP error made is not (IPVS syncs on a packet's state change).
        let stateful = flow.proto == proto::TCP || flow.proto == proto::SCTP;
        if opener == Opener::Packet && (first != 0 || !stateful) {
            self.sync_note(id, now);
        }
        Ok(id)
    }

    /// Binds template `tid` to `server` (at `dport`) in place, as the connections it
    /// controls point at it; `own`: this worker's choice, counted on its server (the old
    /// server's count dropped if it was), else a copy of another worker's.
    pub(super) fn rebind_template(
        &mut self,
        tid: crate::conn::ConnId,
        (server, dport): (&RealServer, u16),
        own: bool,
        loads: &[DestLoad],
    ) {
        let Some(t) = self.table.get_mut(tid) else {
            return;
        };
        if t.flags & flags::TEMPLATE_COPY == 0 {
            if let Some(l) = loads.get(t.dest as usize) {
                l.remove_persistent();
            }
        }
        if let Some(l) = loads.get(server.id).filter(|_| own) {
            l.add_persistent();
        }
        t.dest = server.id as u32;
        t.daddr = addr16(server.addr);
        t.dport = dport;
        t.method = server.method;
        t.tunnel = server.tunnel;
        t.flags = if own {
            t.flags & !flags::TEMPLATE_COPY
        } else {
            t.flags | flags::TEMPLATE_COPY
        };
    }

    /// A persistent client's server where this worker has no template to follow: the one
    /// another worker's live template chose (the shared board), else the scheduler's,
    /// offered on the board; a worker that chose for the same key at the same moment may
    /// have won, and its choice is taken. True: this worker's own choice.
    fn choose_persistent(
        &mut self,
        snap: &Snapshot,
        svc: &Service,
        loads: &[DestLoad],
        flow: &Flow,
        now: u32,
        (board_key, expires): (Option<BoardKey>, u32),
    ) -> Result<(usize, bool), DropReason> {
        let by_id = |id: u32| {
            svc.servers
                .iter()
                .position(|s| s.id as u32 == id && followable(snap, s))
        };
        if let (Some(b), Some(k)) = (&self.shared, board_key) {
            if let Some((id, i)) = b.find(k, now).and_then(|id| Some((id, by_id(id)?))) {
                b.extend(k, now, id, expires);
                return Ok((i, false));
            }
        }
        let i = self
            .schedule(svc, loads, flow, now)
            .ok_or(DropReason::NoServer)?;
        let (Some(b), Some(k)) = (&self.shared, board_key) else {
            return Ok((i, true));
        };
        let mine = svc.servers.get(i).ok_or(DropReason::NoServer)?.id as u32;
        match by_id(b.offer(k, now, mine, expires, |d| by_id(d).is_some())) {
            Some(j) if j != i => Ok((j, false)),
            _ => Ok((i, true)),
        }
    }

    /// A new NAT connection's reply-side key (server and client endpoints) is taken: by a
    /// finished connection of the same client port through another VIP or port (a client
    /// picks its ports per destination), which ends now so the new one takes its key, as
    /// the newest IPVS entry shadows an old one for replies. A live one (the server could
    /// not tell the two apart) keeps it; false then.
    #[inline(never)]
    pub(super) fn end_reply_clash(&mut self, c: &Conn, loads: &[DestLoad]) -> bool {
        let Some(old) = self.table.lookup_out(&c.out_key()) else {
            return false;
        };
        let finished = self.table.get(old).is_some_and(|o| {
            // A UDP flow has no end: the newest takes the replies.
            !o.is_template()
                && (o.proto == proto::UDP || crate::conn::state_is_finished(o.proto, o.state))
        });
        if finished {
            self.release(old, loads);
            self.counters.reply_key_takeovers.add(1);
        }
        finished
    }

    /// Notes a SIP template's call for the sync daemon and the listing (once; again if the
    /// store let it go).
    #[inline(never)]
    fn keep_sip_call(&self, key: &crate::conn::Addr16, client: crate::conn::Addr16, id: &[u8]) {
        let Some(calls) = self.sync.as_deref().map(|c| &*c.sip_calls) else {
            return;
        };
        if calls.find(key).is_none() {
            if let Some(call) = crate::sip::SipCall::new(client, id) {
                calls.keep(key, &call);
            }
        }
    }

    /// The SYN-flood defence, before a SYN (or an SCTP INIT, `proto`) is scheduled: a
    /// client address at its `syn_per_source` limit of the protocol is refused; then
    /// [`Engine::make_room`].
    pub(super) fn make_room_for_syn(
        &mut self,
        loads: &[DestLoad],
        caddr: crate::conn::Addr16,
        proto: u8,
    ) -> Result<(), DropReason> {
        let limit = self.syn_per_source;
        if limit > 0 && self.table.embryonic_from(&caddr, proto) >= limit {
            return Err(DropReason::SynLimit);
        }
        self.make_room(loads, Opening::Syn);
        Ok(())
    }

    /// The UDP-flood defence, before a new UDP flow is scheduled: a client address holding
    /// `udp_per_source` new flows is refused; then [`Engine::make_room`].
    fn make_room_for_datagram(
        &mut self,
        loads: &[DestLoad],
        caddr: crate::conn::Addr16,
    ) -> Result<(), DropReason> {
        let limit = self.udp_per_source;
        if limit > 0 && self.table.embryonic_from(&caddr, proto::UDP) >= limit {
            return Err(DropReason::UdpLimit);
        }
        self.make_room(loads, Opening::Datagram);
        Ok(())
    }

    /// The flood defence, before a new TCP, SCTP or UDP connection is scheduled: when
    /// embryonic connections (TCP before its handshake ends, SCTP before its association
    /// is up, UDP before the client's second datagram) hold their share of the table, or
    /// the table is full, the oldest of them makes room, so a flood of SYNs or of spoofed
    /// datagrams can neither lock new clients out nor touch established connections.
    #[inline]
    pub(super) fn make_room(&mut self, loads: &[DestLoad], opening: Opening) {
        // A template may be needed as well as the connection: room for two.
        let crowded = self.table.embryonic_len() >= self.embryonic_limit
            || self.table.len() + 2 > self.table.capacity();
        if crowded {
            self.evict_oldest_embryonic(loads, opening);
        }
    }

    /// [`Engine::make_room`]'s eviction (out of line: the common new connection finds
    /// room).
    #[inline(never)]
    fn evict_oldest_embryonic(&mut self, loads: &[DestLoad], opening: Opening) {
        self.evict_one_embryonic(loads, opening);
        // An assured template stays with its evicted attempt: one entry freed of two needed.
        if self.table.len() + 2 > self.table.capacity() {
            self.evict_one_embryonic(loads, opening);
        }
    }

    fn evict_one_embryonic(&mut self, loads: &[DestLoad], opening: Opening) {
        if let Some(oldest) = self.table.oldest_embryonic() {
            let template = self.table.get(oldest).and_then(|c| c.template_id());
            self.release(oldest, loads);
            // Its persistence template goes too when it controls nothing else and is not
            // ASSURED, as IPVS drops such a template with a connection it removes: each
            // spoofed source makes one, which would otherwise fill the table; a returning
            // client's stays.
            let idle = template.filter(|&t| {
                self.table
                    .get(t)
                    .is_some_and(|t| t.is_template() && t.controls == 0 && !t.assured)
            });
            if let Some(t) = idle {
                self.release_template(t, loads);
            }
            match opening {
                Opening::Syn => self.counters.syn_evictions.add(1),
                Opening::Datagram => self.counters.udp_evictions.add(1),
            }
            // The next one evicts the next oldest: its misses start now.
            self.table.prefetch_oldest_embryonic();
        }
    }

    pub(super) fn schedule(
        &mut self,
        svc: &Service,
        loads: &[DestLoad],
        flow: &Flow,
        now: u32,
    ) -> Option<usize> {
        // lblc's cache and lblcr's sets are one for all workers, as the kernel's one table
        // (made anew with each binding of the scheduler): keys apart from any template's
        // (those carry the real protocol) by the destination and the service.
        let Some(board) = self.shared.as_deref() else {
            return self.schedule_own(svc, loads, flow, now);
        };
        let key = |tag: u8, cport: u16| {
            board.key(&InKey {
                proto: tag | svc.proto,
                caddr: flow.dst,
                cport,
                vaddr: svc.group.map_or(addr16(svc.vaddr), group_addr),
                vport: svc.vport,
            })
        };
        let held = Some(&self.pending_loads);
        match svc.sched {
            sched::SchedKind::Lblc => {
                let k = key(0x80, svc.sched_epoch);
                let expiration = (now, self.cache_expiration.lblc);
                sched::pick_lblc_shared(&svc.servers, loads, held, (board, k), expiration)
            }
            // A slot per member, then the set's stamp.
            sched::SchedKind::Lblcr => {
                let slot = |i: usize| key(0xc0, (svc.sched_epoch << 4) | i as u16);
                let set = sched::SharedSet {
                    members: std::array::from_fn(slot),
                    stamp: slot(sched::SHARED_MEMBERS),
                };
                let expiration = (now, self.cache_expiration.lblcr);
                sched::pick_lblcr_shared(&svc.servers, loads, held, (board, &set), expiration)
            }
            _ => self.schedule_own(svc, loads, flow, now),
        }
    }

    /// [`Engine::schedule`] with the worker's own scheduler state.
    fn schedule_own(
        &mut self,
        svc: &Service,
        loads: &[DestLoad],
        flow: &Flow,
        now: u32,
    ) -> Option<usize> {
        let state = self.states.get_mut(usize::from(svc.id))?;
        let req = Request {
            client: flow.src,
            client_port: flow.sport,
            dst: flow.dst,
            now: u64::from(now),
            expiration: self.cache_expiration,
        };
        sched::pick_holding(
            &svc.sched,
            &svc.table,
            state,
            &svc.servers,
            loads,
            Some(&self.pending_loads),
            &req,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::conn::{state::transition, Direction, TcpState};
    use rvs_wire::tcp;

    /// What `state_after`'s shortcut relies on.
    #[test]
    fn an_established_segment_without_syn_fin_or_rst_keeps_its_state() {
        for dir in [Direction::Input, Direction::Output, Direction::InputOnly] {
            for flags in 0..=u8::MAX {
                if flags & (tcp::SYN | tcp::FIN | tcp::RST) == 0 {
                    assert_eq!(
                        transition(dir, TcpState::Established, flags),
                        TcpState::Established,
                        "{dir:?} {flags:#x}"
                    );
                }
            }
        }
    }
}
