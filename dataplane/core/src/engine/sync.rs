//! The engine's side of connection sync: a master's worker notes new connections,
//! templates and TCP state changes ([`crate::sync::SyncChannel::note`]); a backup's worker
//! installs what the master sent, bound to the same real server, so that its packets find
//! their connection after a failover.

use super::*;
use crate::sync::{ipvs_flags, SyncConn, SyncLocal};

impl Engine {
    /// Notes connection `id` for the sync daemon, when a master daemon runs.
    #[inline]
    pub(super) fn sync_note(&mut self, id: crate::conn::ConnId, now: u32) {
        if self.sync.as_deref().is_some_and(|c| c.is_sending()) {
            self.sync_note_now(id, now);
        }
    }

    #[inline(never)]
    fn sync_note_now(&mut self, id: crate::conn::ConnId, now: u32) {
        let Some(c) = self.table.get(id) else {
            return;
        };
        // Not while embryonic (as IPVS, which syncs a TCP connection from ESTABLISHED on):
        // a flood's entries never reach a backup. A template goes with its first
        // connection that does.
        if c.flags & flags::EMBRYONIC != 0 {
            return;
        }
        let template = c.template_id().filter(|_| !c.is_template());
        if let Some(t) = template {
            if self.table.get(t).is_some_and(|t| t.synced_at == 0) {
                self.sync_one(t, now);
            }
        }
        // sync_persist_mode: a backup with sloppy TCP/SCTP follows the template instead.
        if self.sync_templates_only && template.is_some() {
            return;
        }
        self.sync_one(id, now);
    }

    /// Sends entry `id` (noted as sent at `now`; never 0, which means not yet sent).
    fn sync_one(&mut self, id: crate::conn::ConnId, now: u32) {
        let Some(ch) = self.sync.as_deref() else {
            return;
        };
        let local = self.table.local(id).copied();
        let shift = self.table.app_state(id).and_then(ftp::synced_shift);
        let Some(note) = self.table.get(id).map(|c| self.sync_conn(c, local, shift)) else {
            return;
        };
        if let Some(c) = self.table.get_mut(id) {
            c.synced_at = now.max(1);
        }
        ch.note(note);
    }

    /// A packet refreshed connection `id`'s timer: a master sends it again once half of
    /// `timeout` has passed since it last did, so a backup never lets a long, quiet
    /// connection expire (IPVS resends on a packet count unless sync_refresh_period is
    /// set; rvs on time), or with sync_refresh_period once that period has passed, if
    /// sooner (half the timeout counted as 10 s at least, as the kernel counts it).
    #[inline]
    pub(super) fn sync_refresh(&mut self, id: crate::conn::ConnId, now: u32, timeout: u32) {
        if !self.sync.as_deref().is_some_and(|c| c.is_sending()) {
            return;
        }
        let half = timeout / 2;
        let every = match self.sync_refresh_period {
            0 => half.max(1),
            period => period.min(half.max(10)),
        };
        let due = self
            .table
            .get(id)
            .is_some_and(|c| now.wrapping_sub(c.synced_at) >= every);
        if due {
            self.sync_note_now(id, now);
        }
    }

    fn sync_conn(
        &self,
        c: &Conn,
        local: Option<crate::conn::Local>,
        out_seq: Option<crate::sync::SyncSeq>,
    ) -> SyncConn {
        let template = c.is_template();
        let fwd = match c.method {
            _ if c.dest == BYPASS_DEST => ipvs_flags::BYPASS,
            _ if c.flags & flags::LOCAL != 0 => ipvs_flags::LOCALNODE,
            ForwardMethod::Nat => ipvs_flags::MASQ,
            ForwardMethod::Dr => ipvs_flags::DROUTE,
            ForwardMethod::Tun => ipvs_flags::TUNNEL,
        };
        let mut f = fwd;
        if template {
            f |= ipvs_flags::TEMPLATE;
        }
        if c.flags & flags::ONE_PACKET != 0 {
            f |= ipvs_flags::ONE_PACKET;
        }
        if !template && !state_is_active(c.proto, c.state) {
            f |= ipvs_flags::INACTIVE;
        }
        // A group's (firewall mark's) template: IPVS sends the mark as the address.
        let (vaddr, fwmark) = match group_of(&c.vaddr) {
            Some(mark) if template => (addr16(IpAddr::from(mark.to_be_bytes())), mark),
            _ => (c.vaddr, 0),
        };
        let timeout = if template {
            TemplateService::of(&self.templates, c.service).timeout
        } else {
            self.timeouts.of(c.proto, c.state)
        };
        SyncConn {
            proto: c.proto,
            v6: crate::conn::mapped_v4(&c.caddr).is_none(),
            flags: f,
            // A template's is IPVS's template state (ASSURED or not); UDP's marks are
            // this node's (IPVS's UDP has one state).
            state: if template {
                u16::from(c.assured)
            } else if c.proto == proto::UDP {
                0
            } else {
                u16::from(c.state)
            },
            cport: c.cport,
            vport: c.vport,
            dport: c.dport,
            fwmark,
            timeout,
            caddr: c.caddr,
            vaddr,
            daddr: c.daddr,
            // A full-NAT or SNAT entry's local end and PROXY state, in rvs's option.
            local: local
                .filter(|_| c.flags & flags::FULL_NAT != 0)
                .map(|l| SyncLocal {
                    addr: l.addr,
                    port: l.port,
                    snat: c.service == SNAT_SERVICE,
                    proxy: l.proxy,
                    proxy_seq: l.proxy_seq,
                }),
            out_seq: out_seq.filter(|_| !template),
        }
    }

    /// A synced entry's lifetime in seconds: the master's timeout, or (a version-0 entry
    /// carries none) the state's own, three minutes for a template, as the kernel's backup.
    fn synced_timeout(&self, s: &SyncConn, state: u8) -> u32 {
        let timeout = match s.timeout {
            0 if s.flags & ipvs_flags::TEMPLATE != 0 => 180,
            0 => self.timeouts.of(s.proto, state),
            t => t,
        };
        timeout.clamp(1, 31 * 24 * 3600)
    }

    /// Installs (or refreshes) an SNAT entry (`local`) or a cache-bypass entry a master
    /// sent: no service or server to find.
    fn install_synced_unbound(&mut self, now: u32, s: &SyncConn, local: Option<SyncLocal>) -> bool {
        let key = InKey {
            proto: s.proto,
            caddr: s.caddr,
            cport: s.cport,
            vaddr: s.vaddr,
            vport: s.vport,
        };
        let state = synced_state(s);
        let expires = now.saturating_add(self.synced_timeout(s, state));
        if let Some(id) = self.table.lookup_in(&key) {
            if let Some(c) = self.table.get_mut(id) {
                c.state = state;
                c.in_pkts = super::defence::SYNCED_IN_PKTS;
            }
            self.table.set_expires(id, expires);
            return true;
        }
        let Some(l) = local else {
            let one_packet = s.flags & ipvs_flags::ONE_PACKET != 0;
            let mut c = super::routed::bypass_entry(key, s.daddr, state, one_packet);
            c.in_pkts = super::defence::SYNCED_IN_PKTS;
            return self.table.insert(c, expires).is_ok();
        };
        let mut c = Conn::new(
            key,
            s.daddr,
            s.dport,
            SNAT_SERVICE,
            SNAT_DEST,
            ForwardMethod::Nat,
            flags::REPLY_INDEXED,
        );
        c.state = state;
        c.in_pkts = super::defence::SYNCED_IN_PKTS;
        let local = crate::conn::Local {
            addr: l.addr,
            port: l.port,
            ..crate::conn::Local::default()
        };
        self.table.insert_full_nat(&c, local, expires).is_ok()
    }

    /// Installs (or refreshes) a connection a master sent. False when this box has no such
    /// service or server, or no room.
    pub fn install_synced(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        s: &SyncConn,
    ) -> bool {
        if let Some(l) = s.local.filter(|l| l.snat) {
            return self.install_synced_unbound(now, s, Some(l));
        }
        let template = s.flags & ipvs_flags::TEMPLATE != 0;
        if !template && s.flags & ipvs_flags::FWD_MASK == ipvs_flags::BYPASS {
            return self.install_synced_unbound(now, s, None);
        }
        if s.flags & ipvs_flags::NO_CPORT != 0 {
            return self.install_synced_expectation(snap, now, s);
        }
        let group = (template && s.fwmark != 0).then_some(s.fwmark);
        let mut ftp_data = false;
        let entry = match group {
            Some(mark) => snap.services.iter().find(|x| x.group == Some(mark)),
            None => snap.service_for_packet(s.proto, ip_of(&s.caddr), ip_of(&s.vaddr), s.vport),
        };
        let of_service = entry.and_then(|entry| {
            let svc = snap.scheduling_service(entry);
            let server = svc
                .servers
                .iter()
                .find(|r| addr16(r.addr) == s.daddr && (r.port == s.dport || r.port == 0));
            server.map(|server| (entry, server))
        });
        let (entry, server) = match of_service {
            Some(found) => found,
            // An FTP data connection (its port no service's, or a firewall mark's that
            // takes it as well).
            None if !template => match self.ftp_data_server(snap, s) {
                Some(found) => {
                    ftp_data = true;
                    found
                }
                None => return false,
            },
            None => return false,
        };
        let key = InKey {
            proto: s.proto,
            caddr: s.caddr,
            cport: s.cport,
            vaddr: group.map_or(s.vaddr, group_addr),
            vport: if group.is_some() { 0 } else { s.vport },
        };
        let state = synced_state(s);
        let active = state_is_active(s.proto, state);
        let expires = now.saturating_add(self.synced_timeout(s, state));
        let load = loads.get(server.id);
        if let Some(id) = self.table.lookup_in(&key) {
            let same = self
                .table
                .get(id)
                .is_some_and(|c| c.dest == server.id as u32);
            if !same && template {
                // Rebound on the master (its server deleted): in place, as the
                // connections it controls point at it.
                let own = self
                    .table
                    .get(id)
                    .is_some_and(|t| t.flags & flags::TEMPLATE_COPY == 0);
                self.rebind_template(id, (server, s.dport), own, loads);
                self.table.set_expires(id, expires);
                return true;
            } else if !same {
                // Rebound on the master: start over with the new server.
                self.release(id, loads);
            } else {
                if let Some(c) = self.table.get_mut(id) {
                    c.in_pkts = super::defence::SYNCED_IN_PKTS;
                    c.assured |= template && s.state & TEMPLATE_ASSURED != 0;
                    if !template && c.state != state {
                        if let Some(l) = load {
                            account_active(l, state_is_active(c.proto, c.state), active);
                        }
                        c.state = state;
                        c.flags = if active {
                            c.flags | flags::ACTIVE
                        } else {
                            c.flags & !flags::ACTIVE
                        };
                    }
                }
                // The PROXY header may have gone out since the entry was first sent, or
                // the FTP helper shifted the server's sequence numbers.
                if let (Some(l), Some(mine)) = (s.local, self.table.local_mut(id)) {
                    mine.proxy = l.proxy;
                    mine.proxy_seq = l.proxy_seq;
                }
                if let (Some(seq), Some(mine)) = (s.out_seq, self.table.app_state_mut(id)) {
                    *mine = ftp::shift_from_sync(&seq);
                }
                self.table.set_expires(id, expires);
                return true;
            }
        }
        // Every worker gets the master's templates; the first counts them on their servers.
        let mut f = if template && self.owner.0 > 0 {
            flags::TEMPLATE | flags::TEMPLATE_COPY
        } else if template {
            flags::TEMPLATE
        } else if s.flags & ipvs_flags::ONE_PACKET != 0 {
            flags::ONE_PACKET
        } else if server.method == ForwardMethod::Nat {
            flags::REPLY_INDEXED
        } else {
            0
        };
        if !template && snap.is_local_server(server) {
            f |= flags::LOCAL;
        }
        if !template && active {
            f |= flags::ACTIVE;
        }
        // (An FTP data connection may go to another host than its server.)
        let daddr = if ftp_data {
            Self::ftp_data_host(snap, s, server)
        } else {
            addr16(server.addr)
        };
        let mut c = Conn::new(
            key,
            daddr,
            s.dport,
            entry.id,
            server.id as u32,
            server.method,
            f,
        );
        c.tunnel = server.tunnel;
        c.in_pkts = super::defence::SYNCED_IN_PKTS;
        c.assured = template && s.state & TEMPLATE_ASSURED != 0;
        if !template {
            c.state = state;
        }
        let inserted = match s.local.filter(|_| !template) {
            Some(l) => self.table.insert_full_nat(
                &c,
                crate::conn::Local {
                    addr: l.addr,
                    port: l.port,
                    proxy: l.proxy,
                    proxy_len: super::full_nat::proxy_header_len(
                        l.proxy,
                        (ip_of(&s.caddr), s.cport),
                        (ip_of(&s.vaddr), s.vport),
                    ),
                    proxy_seq: l.proxy_seq,
                },
                expires,
            ),
            // As on the master: a finished connection holding the reply side gives it up.
            None => match self.table.insert(c, expires) {
                Err(crate::conn::InsertError::Clash)
                    if !template && self.end_reply_clash(&c, loads) =>
                {
                    self.table.insert(c, expires)
                }
                done => done,
            },
        };
        let Ok(id) = inserted else {
            return false;
        };
        if let (Some(seq), Some(mine)) = (s.out_seq, self.table.app_state_mut(id)) {
            *mine = ftp::shift_from_sync(&seq);
        }
        if ftp_data {
            self.ftp_data_opened(id, now, expires);
        }
        if let Some(l) = load {
            if template {
                if f & flags::TEMPLATE_COPY == 0 {
                    l.add_persistent();
                }
            } else {
                l.bind();
                account_active(l, false, active);
            }
        }
        true
    }
}

/// IPVS's template state bit ASSURED (`IP_VS_CTPL_S_ASSURED`).
const TEMPLATE_ASSURED: u16 = 1;

/// A synced entry's state; one the protocol does not have reads as NONE.
fn synced_state(s: &SyncConn) -> u8 {
    match s.proto {
        proto::TCP => TcpState::ALL.get(usize::from(s.state)).map(|&t| t as u8),
        proto::SCTP => SctpState::ALL.get(usize::from(s.state)).map(|&t| t as u8),
        _ => None,
    }
    .unwrap_or(0)
}

/// The mark of a group's template address ([`group_addr`]), if it is one.
fn group_of(a: &crate::conn::Addr16) -> Option<u32> {
    (a[0] == 0xfd && a[1..12].iter().all(|&b| b == 0))
        .then(|| u32::from_be_bytes([a[12], a[13], a[14], a[15]]))
}
