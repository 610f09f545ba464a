//! IPVS's FTP helper (`modprobe ip_vs_ftp ports=21`) for NAT connections to the ports
//! [`EngineConfig::ftp_ports`] names. A client's PASV or EPSV is noted; the server's 227 or
//! 229 reply is rewritten to name the VIP (and the port) instead of the real server, and
//! the data connection the client then opens to VIP:port is expected: it goes to the same
//! server, whatever services the VIP has. A client's PORT or EPRT makes the server's
//! connection from its port below the control port expected, sent on from the VIP. Where a
//! rewrite changes the reply's length, the server's later sequence numbers are shifted and
//! the client's acknowledgements (and SACK edges) shifted back, as long as the control
//! connection lives.
//!
//! Expected connections wait two minutes (the kernel's LISTEN state) on a board all
//! workers share ([`SharedTemplates`]): a data connection is a different flow from its
//! control connection and may reach another worker. The first connection that matches
//! takes the expectation.
//!
//! A control connection does not expire while its data connections (or expected ones)
//! live: it is kept a minute at a time (the kernel's `n_control`), so the server's reply
//! after a long transfer over a quiet control connection still reaches the client. Data
//! connections note their deadlines on the board whenever their timers find them alive,
//! under a key of their client's address, the VIP and the server.

use super::segment::*;
use super::*;
use crate::conn::AppState;
use crate::ftp::{self, Command, PassiveReply, REPLACEMENT_MAX};
use crate::sync::{ipvs_flags, SyncConn, SyncSeq};

/// Ports the helper can watch (IPVS's IP_VS_APP_MAX_PORTS).
pub const FTP_PORTS_MAX: usize = 8;
/// How long an expected data connection waits (seconds).
const EXPECT_TIMEOUT: u32 = 120;
/// Board slots of a single worker's own board.
const OWN_BOARD_SLOTS: usize = 4096;
/// The protocol byte of the board's keys for expected connections (the lblc cache's have
/// bit 7 set): passive ones by client, VIP and port; active ones by the client's address
/// and port and the server's address and port.
const PASSIVE_KEY: u8 = 0x40 | proto::TCP;
const ACTIVE_KEY: u8 = 0x20 | proto::TCP;
/// The protocol byte of the key data connections hold their control connection under.
const LINK_KEY: u8 = 0x10 | proto::TCP;
/// The protocol byte of the keys of an address an expectation carries (the host a 227 or
/// 229 reply named when it is not the server, an active one's VIP), 16 bits of it per key
/// (a board entry holds 20 bits): this, or'ed with the part's number (0 to 7).
const NAMED_KEY: u8 = 0x08;
/// How long a control connection due to expire is kept while its data connections live
/// (the kernel's re-armed timer, seconds).
const CONTROL_KEPT: u32 = 60;
/// Expected connections a worker lists and counts at once (those it made or a master
/// sent it); more still wait on the board, unlisted and uncounted.
const EXPECTED_LISTED: usize = 256;

/// [`AppState::mode`] bits: the passive mode the client asked for and the server has not
/// answered yet; the kind of the last rewritten reply (its retransmission is rewritten
/// again); sequence numbers shifted since a rewrite.
mod mode {
    pub(super) const ASKED_PASV: u8 = 0x01;
    pub(super) const ASKED_EPSV: u8 = 0x02;
    pub(super) const ASKED: u8 = ASKED_PASV | ASKED_EPSV;
    pub(super) const REWROTE_PASV: u8 = 0x04;
    pub(super) const REWROTE_EPSV: u8 = 0x08;
    pub(super) const REWROTE: u8 = REWROTE_PASV | REWROTE_EPSV;
    /// A data connection (its control connection is held while it lives).
    pub(super) const DATA: u8 = 0x10;
    pub(super) const SHIFTED: u8 = 0x80;
}

/// The helper's ports and the board its expected connections wait on.
#[derive(Debug)]
pub(super) struct FtpHelper {
    ports: [u16; FTP_PORTS_MAX],
    board: Arc<SharedTemplates>,
    /// The expected connections this worker made, as `-L -c` lists them (the kernel's
    /// LISTEN entries) until taken or expired; each counts as an inactive connection of
    /// its server meanwhile.
    expected: Vec<ExpectedEntry>,
    /// When `expected` was last looked over (seconds).
    looked_at: u32,
}

/// An expected connection as listed, its place on the board and whether its server's
/// inactive count includes it yet.
#[derive(Debug, Clone, Copy)]
struct ExpectedEntry {
    listed: Conn,
    key: BoardKey,
    counted: bool,
}

impl FtpHelper {
    /// None when `ports` names none.
    pub(super) fn new(ports: [u16; FTP_PORTS_MAX]) -> Option<FtpHelper> {
        ports.iter().any(|&p| p != 0).then(|| FtpHelper {
            ports,
            board: Arc::new(SharedTemplates::new(OWN_BOARD_SLOTS)),
            expected: Vec::with_capacity(EXPECTED_LISTED),
            looked_at: 0,
        })
    }

    /// Expected connections go on `board`, which every worker shares.
    pub(super) fn share(&mut self, board: Arc<SharedTemplates>) {
        self.board = board;
    }

    /// Whether `c` is a control connection the helper watches: NAT (not full NAT, not to
    /// the appliance itself), TCP, to one of its ports.
    #[inline]
    fn watches(&self, c: &Conn) -> bool {
        c.proto == proto::TCP
            && c.method == ForwardMethod::Nat
            && c.flags & (flags::TEMPLATE | flags::FULL_NAT | flags::LOCAL) == 0
            && c.vport != 0
            && self.ports.contains(&c.vport)
    }

    /// Holds the control connection between `caddr` and `vaddr` to server `dest` until
    /// `until` (a later hold wins).
    fn hold_control(&self, (caddr, vaddr): Link, dest: u32, now: u32, until: u32) {
        let k = self.board.key(&link_key((caddr, vaddr), dest));
        self.board.extend(k, now, dest, until);
    }

    /// A watched control connection due to expire while one of its data connections (or
    /// an expected one) lives: kept another minute; its new deadline.
    pub(super) fn control_kept(&self, c: &Conn, now: u32) -> Option<u32> {
        if !self.watches(c) {
            return None;
        }
        let k = self.board.key(&link_key((c.caddr, c.vaddr), c.dest));
        (self.board.find(k, now) == Some(c.dest)).then(|| now.saturating_add(CONTROL_KEPT))
    }

    /// Whether expected connection `e` still waits on the board.
    fn waits(&self, e: &ExpectedEntry, now: u32) -> bool {
        e.listed.expires > now && self.board.find(e.key, now) == Some(e.listed.dest)
    }

    /// The expected connections still waiting, as `-L -c` lists them.
    pub(super) fn waiting(&self, now: u32) -> impl Iterator<Item = Conn> + '_ {
        self.expected
            .iter()
            .filter(move |e| self.waits(e, now))
            .map(|e| e.listed)
    }

    /// Notes expected connection `listed` (on the board at `key`): one of the same key is
    /// replaced; with no room it stays unlisted.
    fn note_expected(&mut self, listed: Conn, key: BoardKey) {
        if let Some(e) = self.expected.iter_mut().find(|e| e.key == key) {
            if e.listed.dest == listed.dest {
                e.listed = listed;
                return;
            }
        }
        if self.expected.len() < self.expected.capacity() {
            self.expected.push(ExpectedEntry {
                listed,
                key,
                counted: false,
            });
        }
    }

    /// Once a second: expected connections noted since are counted inactive on their
    /// servers; those taken by their data connection (on any worker) or expired are
    /// counted off and forgotten.
    fn look_over(&mut self, now: u32, pending: &mut PendingLoads, loads: &[DestLoad]) {
        if now == self.looked_at {
            return;
        }
        self.looked_at = now;
        let mut i = 0;
        while let Some(&e) = self.expected.get(i) {
            let dest = e.listed.dest as usize;
            if self.waits(&e, now) {
                if !e.counted {
                    pending.open(loads, dest, false);
                    if let Some(e) = self.expected.get_mut(i) {
                        e.counted = true;
                    }
                }
                i += 1;
                continue;
            }
            if e.counted {
                pending.closed(loads, dest, false);
            }
            if i < self.expected.len() {
                self.expected.swap_remove(i);
            }
        }
    }

    /// A connection its timer found alive: a data connection holds its control
    /// connection past its own deadline.
    pub(super) fn found_alive(&self, c: &Conn, app: &AppState, now: u32) {
        if app.mode & mode::DATA != 0 {
            let until = c.expires.saturating_add(CONTROL_KEPT);
            self.hold_control((c.caddr, c.vaddr), c.dest, now, until);
        }
    }
}

/// A control connection's client address and VIP.
type Link = (crate::conn::Addr16, crate::conn::Addr16);

/// The board key data connections hold their control connection under: its client's
/// address, the VIP and the server.
fn link_key((caddr, vaddr): Link, dest: u32) -> InKey {
    InKey {
        proto: LINK_KEY,
        caddr,
        cport: (dest >> 16) as u16,
        vaddr,
        vport: dest as u16,
    }
}

/// A sync note of a connection control connection `c` expects, to be completed: NAT, TCP,
/// LISTEN (inactive), two minutes, between its client and server.
fn expected_note(c: &Conn) -> SyncConn {
    SyncConn {
        proto: proto::TCP,
        v6: crate::conn::mapped_v4(&c.caddr).is_none(),
        flags: ipvs_flags::MASQ | ipvs_flags::INACTIVE,
        state: TcpState::Listen as u16,
        timeout: EXPECT_TIMEOUT,
        caddr: c.caddr,
        vaddr: c.vaddr,
        daddr: c.daddr,
        ..SyncConn::default()
    }
}

/// An expected connection as `-L -c` lists it (the kernel's entry in LISTEN, inactive):
/// NAT, TCP, of `service` to server `dest`, from client to VIP to server.
fn expected_entry(
    (service, dest): (u16, u32),
    (caddr, cport): (crate::conn::Addr16, u16),
    (vaddr, vport): (crate::conn::Addr16, u16),
    (daddr, dport): (crate::conn::Addr16, u16),
) -> Conn {
    let key = InKey {
        proto: proto::TCP,
        caddr,
        cport,
        vaddr,
        vport,
    };
    let mut c = Conn::new(key, daddr, dport, service, dest, ForwardMethod::Nat, 0);
    c.state = TcpState::Listen as u8;
    c
}

/// The board key of a passive data connection from `caddr` (any port) to `vaddr:port`.
fn passive_key(caddr: crate::conn::Addr16, vaddr: crate::conn::Addr16, port: u16) -> InKey {
    InKey {
        proto: PASSIVE_KEY,
        caddr,
        cport: 0,
        vaddr,
        vport: port,
    }
}

/// The key of part `part` (16 bits, from the first; 0 to 7) of the address expectation
/// `expected` carries.
fn named_key(expected: &InKey, part: u16) -> InKey {
    InKey {
        proto: NAMED_KEY | (part & 7) as u8,
        ..*expected
    }
}

/// The 16-bit parts of an address the board holds for a family: IPv4's last two of its
/// mapped form, IPv6's eight.
fn named_parts(v6: bool) -> std::ops::Range<u16> {
    if v6 {
        0..8
    } else {
        6..8
    }
}

/// Whether a data connection may go to `a`, a host a passive reply (or a master) named:
/// never a martian address, a VIP or the appliance's own (the server's is taken instead).
fn may_take_data(snap: &Snapshot, a: &crate::conn::Addr16) -> bool {
    let class = snap.class_of_mapped(a);
    !martian_mapped(a) && !class.is_vip() && !class.is_local()
}

/// The server an expected connection goes to: its id, and the address the data connection
/// goes to (the server's, or the one its reply named).
#[derive(Debug, Clone, Copy)]
struct Expected {
    id: usize,
    addr: IpAddr,
}

/// `a` is after `b` in sequence space.
fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The sequence shift a backup needs to go on with a control connection; None while no
/// rewrite changed a length.
pub(super) fn synced_shift(a: &AppState) -> Option<SyncSeq> {
    (a.mode & mode::SHIFTED != 0).then_some(SyncSeq {
        init_seq: a.init_seq,
        delta: a.delta as u32,
        previous_delta: a.previous_delta as u32,
    })
}

/// A control connection's helper state from the shift its master sent.
pub(super) fn shift_from_sync(seq: &SyncSeq) -> AppState {
    AppState {
        mode: mode::SHIFTED,
        init_seq: seq.init_seq,
        delta: seq.delta as i32,
        previous_delta: seq.previous_delta as i32,
    }
}

/// The server (and its service) with id `dest`, if it is still configured.
fn server_by_id(snap: &Snapshot, dest: u32) -> Option<(&Service, &RealServer)> {
    snap.services.iter().find_map(|s| {
        s.servers
            .iter()
            .find(|r| r.id as u32 == dest)
            .map(|r| (s, r))
    })
}

impl Engine {
    /// Whether connection `c` is one the FTP helper watches (the fast lane leaves it).
    #[inline]
    pub(super) fn ftp_watches(&self, c: &Conn) -> bool {
        self.ftp.as_ref().is_some_and(|h| h.watches(c))
    }

    /// Client -> server on a watched control connection (after its state followed the
    /// packet): acknowledgements of the server's shifted data shifted back; PASV and EPSV
    /// noted; a PORT's or EPRT's data connection expected.
    pub(super) fn ftp_from_client<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        id: crate::conn::ConnId,
        flow: &Flow,
        frame: &mut F,
    ) {
        let Some(c) = self.table.get(id).filter(|c| self.ftp_watches(c)).copied() else {
            return;
        };
        if flow.frag != Frag::Whole {
            return;
        }
        let app = self.table.app_state(id).copied().unwrap_or_default();
        if app.mode & mode::SHIFTED != 0 {
            let unshift = |v: u32| {
                if seq_after(v, app.init_seq.wrapping_add(app.delta as u32)) {
                    v.wrapping_sub(app.delta as u32)
                } else {
                    v.wrapping_sub(app.previous_delta as u32)
                }
            };
            if flow.tcp_flags & tcp::ACK != 0 {
                if let Some(ack) = tcp_u32(frame.bytes(), flow, 8) {
                    set_u32_field(frame.bytes_mut(), flow, 8, unshift(ack));
                }
            }
            adjust_options(frame.bytes_mut(), flow, |kind, value: &mut [u8]| {
                if kind == tcp_option::SACK {
                    for edge in value.as_chunks_mut::<4>().0 {
                        *edge = unshift(u32::from_be_bytes(*edge)).to_be_bytes();
                    }
                }
            });
        }
        if c.state != TcpState::Established as u8 {
            return;
        }
        let Some((_, data_at)) = tcp_seq_and_data(frame.bytes(), flow) else {
            return;
        };
        let data = frame.bytes().get(data_at..flow.end()).unwrap_or_default();
        let Some(command) = ftp::client_command(data, flow.v6) else {
            return;
        };
        let asked = match command {
            Command::Passive => mode::ASKED_PASV,
            Command::ExtendedPassive => mode::ASKED_EPSV,
            Command::Active(addr, port) => {
                // The server connects from its port below the control port.
                let key = InKey {
                    proto: ACTIVE_KEY,
                    caddr: addr16(addr),
                    cport: port,
                    vaddr: c.daddr,
                    vport: c.dport.wrapping_sub(1),
                };
                // Listed as the kernel's entry: from the client's address and port to the
                // VIP's port below the control port.
                let listed = expected_entry(
                    (c.service, c.dest),
                    (addr16(addr), port),
                    (c.vaddr, c.vport.wrapping_sub(1)),
                    (c.daddr, c.dport.wrapping_sub(1)),
                );
                let link = (c.caddr, c.vaddr);
                self.ftp_expect(&key, link, listed, now, EXPECT_TIMEOUT);
                // It leaves from the control connection's VIP, which a service by firewall
                // mark may not have (only then is it noted: it takes board slots).
                let addressless = snap
                    .services
                    .iter()
                    .find(|s| s.id == c.service)
                    .is_none_or(|s| s.vaddr.is_unspecified());
                if addressless {
                    self.ftp_note_named(&key, Some(c.vaddr), flow.v6, now);
                }
                // A backup holds it as the kernel's does: a connection in LISTEN from the
                // VIP's port below the control port.
                self.sync_expected(SyncConn {
                    cport: port,
                    vport: c.vport.wrapping_sub(1),
                    dport: c.dport.wrapping_sub(1),
                    caddr: addr16(addr),
                    ..expected_note(&c)
                });
                0
            }
        };
        if let Some(a) = self.table.app_state_mut(id) {
            a.mode = a.mode & !mode::ASKED | asked;
        }
    }

    /// Server -> client on a watched control connection: sequence numbers shifted past
    /// earlier rewrites; the reply to a PASV or EPSV rewritten to name the VIP, its data
    /// connection expected. `flow.end()` follows a segment that changed length. False when
    /// the frame cannot take the longer text.
    pub(super) fn ftp_from_server<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        id: crate::conn::ConnId,
        flow: &mut Flow,
        frame: &mut F,
    ) -> bool {
        let Some(c) = self.table.get(id).filter(|c| self.ftp_watches(c)).copied() else {
            return true;
        };
        if flow.frag != Frag::Whole {
            return true;
        }
        let Some((seq, data_at)) = tcp_seq_and_data(frame.bytes(), flow) else {
            return true;
        };
        let app = self.table.app_state(id).copied().unwrap_or_default();
        if app.mode & mode::SHIFTED != 0 {
            let delta = if seq_after(seq, app.init_seq) {
                app.delta
            } else {
                app.previous_delta
            };
            set_u32_field(frame.bytes_mut(), flow, 4, seq.wrapping_add(delta as u32));
        }
        if c.state != TcpState::Established as u8 || data_at >= flow.end() {
            return true;
        }
        // The retransmission of the reply last rewritten: rewritten as it was. Anything
        // else from before it is left as it was first sent; after it, a reply the client
        // asked for is rewritten.
        let shifted = app.mode & mode::SHIFTED != 0;
        let again = shifted && seq == app.init_seq && app.mode & mode::REWROTE != 0;
        if shifted && !again && !seq_after(seq, app.init_seq) {
            return true;
        }
        let extended = if again {
            app.mode & mode::REWROTE_EPSV != 0
        } else if app.mode & mode::ASKED != 0 {
            app.mode & mode::ASKED_EPSV != 0
        } else {
            return true;
        };
        let data = frame.bytes().get(data_at..flow.end()).unwrap_or_default();
        let Some(PassiveReply { addr, port, span }) = ftp::passive_reply(data, extended, flow.v6)
        else {
            return true;
        };
        // The client connects to the VIP it reached, at the server's port; the data
        // connection goes to the address the reply named (the server's, as a rule), still
        // counted as the control connection's server's (the kernel's binding).
        let key = passive_key(c.caddr, c.vaddr, port);
        let daddr = addr
            .map(addr16)
            .filter(|a| may_take_data(snap, a))
            .unwrap_or(c.daddr);
        // (A retransmission's data connection was expected already, and may be open.)
        if !again {
            // Listed as the kernel's entry without a client port.
            let listed = expected_entry(
                (c.service, c.dest),
                (c.caddr, 0),
                (c.vaddr, port),
                (daddr, port),
            );
            self.ftp_expect(&key, (c.caddr, c.vaddr), listed, now, EXPECT_TIMEOUT);
            self.ftp_note_named(&key, (daddr != c.daddr).then_some(daddr), flow.v6, now);
            // The kernel's entry without a client port.
            self.sync_expected(SyncConn {
                flags: expected_note(&c).flags | ipvs_flags::NO_CPORT,
                vport: port,
                dport: port,
                daddr,
                ..expected_note(&c)
            });
        }
        let mut text = [0u8; REPLACEMENT_MAX];
        let vip = match ip_of(&c.vaddr) {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
        };
        let n = ftp::write_passive(&mut text, extended, vip, port);
        let (from, to) = (data_at + span.0, data_at + span.1);
        let Some(text) = text.get(..n) else {
            return false;
        };
        if !replace_data(frame, flow, (from, to), text) {
            return false;
        }
        let diff = n as i32 - (to - from) as i32;
        self.counters.ftp_rewrites.add(1);
        if let Some(a) = self.table.app_state_mut(id) {
            let rewrote = if extended {
                mode::REWROTE_EPSV
            } else {
                mode::REWROTE_PASV
            };
            // (A retransmission changes nothing: a reply still asked for stays asked.)
            if !again {
                a.previous_delta = a.delta;
                a.delta = a.delta.wrapping_add(diff);
                a.init_seq = seq;
                a.mode = (a.mode & !(mode::ASKED | mode::REWROTE)) | rewrote | mode::SHIFTED;
                // A backup must shift the same way after a failover.
                if diff != 0 {
                    self.sync_note(id, now);
                }
            }
        }
        true
    }

    /// Where a synced FTP data connection to server `server` goes: the host its master
    /// named, unless no data connection may go there.
    pub(super) fn ftp_data_host(
        snap: &Snapshot,
        s: &SyncConn,
        server: &RealServer,
    ) -> crate::conn::Addr16 {
        Some(s.daddr)
            .filter(|a| may_take_data(snap, a))
            .unwrap_or(addr16(server.addr))
    }

    /// A synced connection no service takes may be an FTP data connection (to a port the
    /// control connection's reply named, or from the server's port 20): the service at
    /// the VIP on a watched port with a NAT server at its address, and that server. One to
    /// a host that is no server went where a passive reply named: it is counted on the
    /// first NAT server of the VIP's watched service (the message does not say whose
    /// control connection it was).
    pub(super) fn ftp_data_server<'s>(
        &self,
        snap: &'s Snapshot,
        s: &SyncConn,
    ) -> Option<(&'s Service, &'s RealServer)> {
        let h = self.ftp.as_ref()?;
        if s.proto != proto::TCP || s.flags & crate::sync::ipvs_flags::FWD_MASK != 0 {
            return None;
        }
        // A firewall mark's service without an address of its own watches the VIP if
        // the mark takes the VIP at a watched port.
        let by_mark = |svc: &Service| {
            svc.vaddr.is_unspecified()
                && h.ports.iter().any(|&p| {
                    p != 0
                        && snap
                            .service_for_mapped(proto::TCP, &s.caddr, &s.vaddr, p)
                            .is_some_and(|m| m.id == svc.id)
                })
        };
        let watched = || {
            snap.services.iter().filter(move |svc| {
                svc.proto == proto::TCP
                    && ((addr16(svc.vaddr) == s.vaddr && h.ports.contains(&svc.vport))
                        || by_mark(svc))
            })
        };
        let nat = |r: &&RealServer| r.method == ForwardMethod::Nat;
        let at_daddr = watched().find_map(|svc| {
            let server = svc
                .servers
                .iter()
                .filter(nat)
                .find(|r| addr16(r.addr) == s.daddr);
            server.map(|r| (svc, r))
        });
        at_daddr
            .or_else(|| watched().find_map(|svc| svc.servers.iter().find(nat).map(|r| (svc, r))))
    }

    /// Puts an expected connection for `key` to `listed`'s server on the board for
    /// `timeout` seconds, listed as `listed`; the control connection of `link` is held
    /// meanwhile.
    fn ftp_expect(&mut self, key: &InKey, link: Link, mut listed: Conn, now: u32, timeout: u32) {
        if let Some(h) = &mut self.ftp {
            let k = h.board.key(key);
            let until = now.saturating_add(timeout);
            h.board.offer(k, now, listed.dest, until, |_| false);
            h.hold_control(link, listed.dest, now, until);
            listed.expires = until;
            h.note_expected(listed, k);
        }
    }

    /// Notes on the board the address `named` (None: none) the data connection of
    /// `expected` (a passive or active expectation's key) carries, while it is expected.
    fn ftp_note_named(
        &self,
        expected: &InKey,
        named: Option<crate::conn::Addr16>,
        v6: bool,
        now: u32,
    ) {
        let Some(h) = &self.ftp else {
            return;
        };
        let Some(named) = named else {
            // An older reply's address, if any, is not this one's (its parts are read only
            // with the first).
            let first = named_parts(v6).start;
            h.board.take(h.board.key(&named_key(expected, first)), now);
            return;
        };
        let until = now.saturating_add(EXPECT_TIMEOUT);
        for part in named_parts(v6) {
            let at = usize::from(part) * 2;
            let bits = rvs_wire::array_at(&named, at).map_or(0, u16::from_be_bytes);
            let k = h.board.key(&named_key(expected, part));
            h.board.put(k, now, u32::from(bits), until);
        }
    }

    /// The address the data connection of `expected` carries, taken off the board; None
    /// when it carries none (or a part of it was lost).
    fn ftp_take_named(&self, expected: &InKey, v6: bool, now: u32) -> Option<IpAddr> {
        let h = self.ftp.as_ref()?;
        let mut addr = addr16(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let mut whole = true;
        for part in named_parts(v6) {
            let at = usize::from(part) * 2;
            match h.board.take(h.board.key(&named_key(expected, part)), now) {
                Some(bits) => {
                    if let Some(to) = rvs_wire::array_mut::<2>(&mut addr, at) {
                        *to = (bits as u16).to_be_bytes();
                    }
                }
                None => whole = false,
            }
        }
        whole.then(|| ip_of(&addr))
    }

    /// The expected connections this worker made that still wait, as `-L -c` lists them.
    pub fn ftp_expected(&self, now: u32) -> impl Iterator<Item = Conn> + '_ {
        self.ftp.iter().flat_map(move |h| h.waiting(now))
    }

    /// Once a second: the expected connections' counts on their servers brought up to
    /// date (their data connections may have come on another worker).
    pub(super) fn ftp_look_over(&mut self, now: u32, loads: &[DestLoad]) {
        if let Some(h) = &mut self.ftp {
            h.look_over(now, &mut self.pending_loads, loads);
        }
    }

    /// Connection `id` (expiring at `expires`) is an FTP data connection: its control
    /// connection is held while it lives.
    pub(super) fn ftp_data_opened(&mut self, id: crate::conn::ConnId, now: u32, expires: u32) {
        let Some(h) = &self.ftp else {
            return;
        };
        if let Some(c) = self.table.get(id) {
            let until = expires.saturating_add(CONTROL_KEPT);
            h.hold_control((c.caddr, c.vaddr), c.dest, now, until);
        }
        if let Some(a) = self.table.app_state_mut(id) {
            a.mode = mode::DATA;
        }
    }

    /// Tells a backup of an expected connection, when a master sync daemon runs.
    fn sync_expected(&self, note: SyncConn) {
        if let Some(ch) = self.sync.as_deref().filter(|c| c.is_sending()) {
            ch.note(note);
        }
    }

    /// A passive expectation a master sent (IPVS's entry without a client port): put on
    /// this box's board, to the server the VIP's FTP service has at its address. False
    /// when there is no such server (or no helper).
    pub(super) fn install_synced_expectation(
        &mut self,
        snap: &Snapshot,
        now: u32,
        s: &SyncConn,
    ) -> bool {
        let Some((service, server)) = self.ftp_data_server(snap, s) else {
            return false;
        };
        let key = passive_key(s.caddr, s.vaddr, s.vport);
        let timeout = s.timeout.clamp(1, EXPECT_TIMEOUT);
        let daddr = Self::ftp_data_host(snap, s, server);
        let listed = expected_entry(
            (service.id, server.id as u32),
            (s.caddr, 0),
            (s.vaddr, s.vport),
            (daddr, s.dport),
        );
        self.ftp_expect(&key, (s.caddr, s.vaddr), listed, now, timeout);
        let named = (daddr != addr16(server.addr)).then_some(daddr);
        self.ftp_note_named(&key, named, s.v6, now);
        true
    }

    /// The expectation of `key` taken off the board: its server, still configured, and
    /// the server's service.
    fn ftp_take(&self, snap: &Snapshot, key: &InKey, now: u32) -> Option<(u16, Expected)> {
        let h = self.ftp.as_ref()?;
        let dest = h.board.take(h.board.key(key), now)?;
        server_by_id(snap, dest).map(|(s, r)| {
            (
                s.id,
                Expected {
                    id: r.id,
                    addr: r.addr,
                },
            )
        })
    }

    /// A client's SYN to VIP:port a 227 or 229 reply named: the passive data connection,
    /// to the control connection's server at that port. None: not expected.
    /// (Inlined: without an FTP service, as most connections, only its first test.)
    #[inline(always)]
    pub(super) fn ftp_passive_data(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        key: InKey,
        flow: &Flow,
    ) -> Option<Result<crate::conn::ConnId, DropReason>> {
        self.ftp.as_ref()?;
        self.ftp_passive_data_expected(snap, loads, now, key, flow)
    }

    #[inline(never)]
    fn ftp_passive_data_expected(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        key: InKey,
        flow: &Flow,
    ) -> Option<Result<crate::conn::ConnId, DropReason>> {
        if flow.proto != proto::TCP || !opens_connection(flow) {
            return None;
        }
        let expected = passive_key(key.caddr, key.vaddr, key.vport);
        let (service, mut server) = self.ftp_take(snap, &expected, now)?;
        if let Some(named) = self.ftp_take_named(&expected, flow.v6, now) {
            server.addr = named;
        }
        Some(self.open_data_conn(loads, now, (key, service), (server, key.vport), flow))
    }

    /// A server's SYN from its port below the control port to the address and port a
    /// PORT or EPRT named: the active data connection, sent on from the VIP. None: not
    /// expected.
    pub(super) fn ftp_active_data<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        if self.ftp.is_none()
            || flow.proto != proto::TCP
            || flow.tcp_flags & (tcp::SYN | tcp::ACK) != tcp::SYN
        {
            return None;
        }
        let expected = InKey {
            proto: ACTIVE_KEY,
            caddr: flow.dst,
            cport: flow.dport,
            vaddr: flow.src,
            vport: flow.sport,
        };
        let (service, server) = self.ftp_take(snap, &expected, now)?;
        let svc = snap.services.iter().find(|s| s.id == service)?;
        let own_vip = (!svc.vaddr.is_unspecified()).then_some(svc.vaddr);
        let vip = self.ftp_take_named(&expected, flow.v6, now).or(own_vip);
        let vip = vip.filter(|v| v.is_ipv4() == server.addr.is_ipv4())?;
        if addr16(server.addr) != flow.src {
            return None;
        }
        // The VIP's port below the control port (the server's when the service has none).
        let vport = match svc.vport {
            0 => flow.sport,
            p => p.wrapping_sub(1),
        };
        let key = InKey {
            proto: proto::TCP,
            caddr: flow.dst,
            cport: flow.dport,
            vaddr: addr16(vip),
            vport,
        };
        let id = match self.open_data_conn(loads, now, (key, service), (server, flow.sport), flow) {
            Ok(id) => id,
            Err(r) => return Some(self.drop(r)),
        };
        Some(self.forward_to_client(snap, loads, now, id, flow, frame))
    }

    /// A data connection `key` of `service` to `server` at `dport` (NAT), in the state its
    /// opening packet gives it: a client's SYN here, a server's SYN when the reply
    /// direction tracks it.
    fn open_data_conn(
        &mut self,
        loads: &[DestLoad],
        now: u32,
        (key, service): (InKey, u16),
        (server, dport): (Expected, u16),
        flow: &Flow,
    ) -> Result<crate::conn::ConnId, DropReason> {
        let from_client = key.caddr == flow.src;
        if from_client {
            self.make_room_for_syn(loads, flow.src, proto::TCP)?;
        }
        let state = if from_client {
            opening_state(self.tcp_tables, flow, ForwardMethod::Nat)
        } else {
            0
        };
        let active = state_is_active(proto::TCP, state);
        let mut f = flags::REPLY_INDEXED;
        if active {
            f |= flags::ACTIVE;
        }
        let mut c = Conn::new(
            key,
            addr16(server.addr),
            dport,
            service,
            server.id as u32,
            ForwardMethod::Nat,
            f,
        );
        c.state = state;
        let expires = now.saturating_add(self.timeouts.of(proto::TCP, state));
        let id = self.table.insert(c, expires).map_err(drop_reason)?;
        if from_client && state != TcpState::Established as u8 {
            self.table.mark_embryonic(id);
        }
        self.pending_loads.open(loads, server.id, active);
        self.counters.connection(usize::from(service), server.id);
        self.counters.ftp_data_conns.add(1);
        self.ftp_data_opened(id, now, expires);
        self.sync_note(id, now);
        Ok(id)
    }
}

/// Replaces the segment data at `from..to` with `text`, the frame grown or cut to fit:
/// lengths and checksums made anew, `flow.end()` moved. False when it cannot grow.
fn replace_data<F: Frame>(
    frame: &mut F,
    flow: &mut Flow,
    (from, to): (usize, usize),
    text: &[u8],
) -> bool {
    let end = flow.end();
    let Some(new_end) = (end + text.len()).checked_sub(to - from) else {
        return false;
    };
    let Ok(new_end16) = u16::try_from(new_end) else {
        return false;
    };
    frame.truncate(end);
    if new_end > end && !frame.append(new_end - end) {
        return false;
    }
    let b = frame.bytes_mut();
    if b.len() < new_end.max(end) {
        return false;
    }
    if !rvs_wire::move_within(b, to..end, from + text.len()) {
        return false;
    }
    let Some(replaced) = b.get_mut(from..from + text.len()) else {
        return false;
    };
    replaced.copy_from_slice(text);
    if new_end < end {
        frame.truncate(new_end);
    }
    flow.set_end(new_end16);
    segment_resized(frame.bytes_mut(), flow);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address a passive reply named goes on the board in 16-bit parts and comes back
    /// whole, once; a later reply naming the server itself leaves none to take.
    #[test]
    fn a_named_address_round_trips_through_the_board() {
        let mut ftp_ports = [0; FTP_PORTS_MAX];
        ftp_ports[0] = 21;
        let cfg = EngineConfig {
            conn_capacity: 1024,
            ftp_ports,
            ..EngineConfig::default()
        };
        let engine = Engine::new(cfg, 0);
        for (named, vip) in [("10.0.0.3", "192.0.2.1"), ("2001:db8:2::3", "2001:db8::1")] {
            let (named, vip): (IpAddr, IpAddr) = (named.parse().unwrap(), vip.parse().unwrap());
            let v6 = named.is_ipv6();
            let key = passive_key(addr16(vip), addr16(vip), 50000);
            engine.ftp_note_named(&key, Some(addr16(named)), v6, 1);
            assert_eq!(engine.ftp_take_named(&key, v6, 2), Some(named));
            assert_eq!(engine.ftp_take_named(&key, v6, 2), None, "taken once");
            engine.ftp_note_named(&key, Some(addr16(named)), v6, 1);
            engine.ftp_note_named(&key, None, v6, 3);
            assert_eq!(engine.ftp_take_named(&key, v6, 4), None);
            engine.ftp_note_named(&key, Some(addr16(named)), v6, 5);
            assert_eq!(
                engine.ftp_take_named(&key, v6, 6 + EXPECT_TIMEOUT),
                None,
                "expired"
            );
        }
    }
}
