//! IP fragments without reassembly: the first fragment of a datagram carries the ports, so
//! it goes through its connection as any packet does (NAT rewrites its L4 checksum for the
//! whole datagram: the sum is linear); the later fragments follow it by source,
//! destination, protocol and identification, with the same addresses, next hop or tunnel.
//! Each worker remembers where first fragments went in a small direct-mapped table (a
//! colliding datagram takes the slot over: memory stays fixed), for a few seconds. A later
//! fragment arriving before its first (reordered on the way, or sent last first) is kept a
//! moment, a copy in a small arena, and goes through once its first has (IPVS reassembles,
//! so it does not care about the order); one whose first never comes, or arriving after
//! its slot was taken, is dropped and counted.
//!
//! With several workers, the first fragment's owner is noted in [`FragOwners`], which every
//! worker reads to hand the later fragments (no ports to hash) to the same owner.

use super::*;
use crate::conn::ConnId;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A noted first fragment's "connection" when it was of a member's outgoing range (no
/// connection: the range, by the port kept in the low bits, is the state).
const MEMBER_RANGE: u32 = 0x8000_0000;

/// Datagrams in flight one worker remembers.
pub const FRAG_SLOTS: usize = 4096;
/// How long after its first fragment a datagram's later ones are taken (seconds).
pub const FRAG_TIMEOUT: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct FragKey {
    src: crate::conn::Addr16,
    dst: crate::conn::Addr16,
    proto: u8,
    id: u32,
}

impl FragKey {
    pub(super) fn of(flow: &Flow, id: u32) -> FragKey {
        FragKey {
            src: flow.src,
            dst: flow.dst,
            proto: flow.proto,
            id,
        }
    }

    /// A well-mixed hash (the same on every worker).
    fn hash(&self) -> u64 {
        let tail = u64::from(self.id) ^ u64::from(self.proto) << 32;
        crate::conn::table::mix_pair(&self.src, &self.dst, tail)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct FragEntry {
    key: FragKey,
    conn: u32,
    to_server: bool,
    expires: u32,
    used: bool,
}

/// Where a worker's first fragments went: the connection and the direction.
#[derive(Debug)]
pub(super) struct FragTable {
    slots: Vec<FragEntry>,
    /// First fragments noted so far (the later ones waiting look again when it moves).
    noted: u64,
}

impl FragTable {
    pub(super) fn new() -> FragTable {
        FragTable {
            slots: vec![FragEntry::default(); FRAG_SLOTS],
            noted: 0,
        }
    }

    fn slot(key: &FragKey) -> usize {
        key.hash() as usize & (FRAG_SLOTS - 1)
    }

    pub(super) fn note(&mut self, key: FragKey, conn: ConnId, to_server: bool, now: u32) {
        self.noted = self.noted.wrapping_add(1);
        if let Some(e) = self.slots.get_mut(Self::slot(&key)) {
            *e = FragEntry {
                key,
                conn: conn.0,
                to_server,
                expires: now.saturating_add(FRAG_TIMEOUT),
                used: true,
            };
        }
    }

    /// A first fragment of a member's outgoing range went to (`to_member`) or came from
    /// its member: the later ones follow by the range of `port` (its own port).
    pub(super) fn note_member(&mut self, key: FragKey, port: u16, to_member: bool, now: u32) {
        self.note(key, ConnId(MEMBER_RANGE | u32::from(port)), to_member, now);
    }

    pub(super) fn find(&self, key: &FragKey, now: u32) -> Option<(ConnId, bool)> {
        let e = self.slots.get(Self::slot(key))?;
        (e.used && e.key == *key && now <= e.expires).then_some((ConnId(e.conn), e.to_server))
    }
}

/// Later fragments one worker keeps for their first at most.
pub const EARLY_FRAGMENTS: usize = 32;
/// How long a later fragment waits for its first (seconds).
pub const EARLY_TIMEOUT_S: u32 = 2;

/// What a later fragment kept waits for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Early {
    key: FragKey,
    port: u16,
    since: u32,
}

/// Later fragments that came before their first (copies, a fixed arena per worker).
#[derive(Debug)]
pub(super) struct EarlyFragments {
    kept: super::frame_arena::FrameArena<Early>,
    /// What the last look saw: this worker's first fragments noted, all workers' owners
    /// noted, the second. Nothing moved: no look (a flood of orphans costs a compare).
    looked: (u64, u64, u32),
}

impl EarlyFragments {
    pub(super) fn new() -> EarlyFragments {
        EarlyFragments {
            kept: super::frame_arena::FrameArena::new(EARLY_FRAGMENTS),
            looked: (0, 0, 0),
        }
    }
}

/// Which worker took each datagram's first fragment, shared by all workers: slot = hash,
/// value = the hash's high 32 bits and the owner. Written by whichever worker classifies a
/// first fragment, read by any for the later ones; a lost race misroutes one datagram's
/// fragments (dropped and counted there), never more.
#[derive(Debug)]
pub struct FragOwners {
    slots: Box<[AtomicU64]>,
    /// Owners noted so far (a worker holding later fragments looks again when it moves).
    noted: AtomicU64,
}

impl Default for FragOwners {
    fn default() -> Self {
        FragOwners {
            slots: (0..FRAG_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            noted: AtomicU64::new(0),
        }
    }
}

impl FragOwners {
    pub(super) fn note(&self, key: &FragKey, owner: usize) {
        self.noted.fetch_add(1, Relaxed);
        let h = key.hash();
        if let Some(s) = self.slots.get(h as usize & (FRAG_SLOTS - 1)) {
            s.store((h >> 32) << 32 | (owner as u64 & 0xffff_ffff), Relaxed);
        }
    }

    pub(super) fn owner(&self, key: &FragKey) -> Option<usize> {
        let h = key.hash();
        let v = self.slots.get(h as usize & (FRAG_SLOTS - 1))?.load(Relaxed);
        (v != 0 && v >> 32 == h >> 32).then_some((v & 0xffff_ffff) as usize)
    }
}

impl Engine {
    /// Lets this engine keep later fragments that come before their first (its worker can
    /// send them again later from buffers of its own: [`Engine::release_early_fragments`]).
    pub fn set_keeping_early_fragments(&mut self, on: bool) {
        self.early.kept.enabled = on;
    }

    /// Later fragments waiting for their first now.
    pub fn early_fragments(&self) -> usize {
        self.early.kept.len()
    }

    /// The later fragments kept whose first has come since (to this worker, or to
    /// another of `owners`, where this one is `me`) go to `emit(port, frame)`, the port
    /// they arrived on, to be taken in again (false: it could not); those kept past
    /// [`EARLY_TIMEOUT_S`] are dropped as "fragment without its first". Cheap when none
    /// waits, or when no first fragment was noted since the last look in this second.
    pub fn release_early_fragments(
        &mut self,
        now: u32,
        owners: Option<(&FragOwners, usize)>,
        mut emit: impl FnMut(u16, &[u8]) -> bool,
    ) {
        if self.early.kept.len() == 0 {
            return;
        }
        let others = owners.map_or(0, |(o, _)| o.noted.load(Relaxed));
        let seen = (self.frags.noted, others, now);
        if seen == self.early.looked {
            return;
        }
        self.early.looked = seen;
        let elsewhere = |key: &FragKey| {
            owners.is_some_and(|(o, me)| o.owner(key).is_some_and(|owner| owner != me))
        };
        for i in 0..self.early.kept.slots() {
            let Some(w) = self.early.kept.get(i) else {
                continue;
            };
            let ready = self.frags.find(&w.key, now).is_some() || elsewhere(&w.key);
            if !ready && now.saturating_sub(w.since) <= EARLY_TIMEOUT_S {
                continue;
            }
            let sent = ready
                && self
                    .early
                    .kept
                    .frame_mut(i)
                    .is_some_and(|f| emit(w.port, f));
            if !sent {
                self.counters.dropped(DropReason::Fragment);
            }
            self.early.kept.free(i);
        }
    }

    /// A fragment at a non-zero offset: through the connection its first fragment took.
    #[inline(never)]
    pub(super) fn later_fragment<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        (now, port): (u32, u16),
        flow: Flow,
        id: u32,
        frame: &mut F,
    ) -> Verdict {
        let found = self.frags.find(&FragKey::of(&flow, id), now);
        // A member's outgoing range: the range the first fragment's port was in.
        if let Some((ConnId(c), to_member)) = found.filter(|(c, _)| c.0 & MEMBER_RANGE != 0) {
            let port16 = c as u16;
            let range = if to_member {
                snap.member_for(flow.proto, flow.dst_ip(), port16)
            } else {
                snap.member_range_of(flow.proto, flow.src_ip(), port16)
            };
            return match (range.copied(), to_member) {
                (Some(r), true) => self.forward_to_member(snap, (now, port), r, flow, frame),
                (Some(r), false) => self.forward_from_member(snap, (now, port), r, flow, frame),
                (None, _) => self.drop(DropReason::Fragment),
            };
        }
        let Some((conn, to_server)) = found else {
            // Not of a balanced datagram: the appliance's own, or not ours.
            let dst = snap.class_of_mapped(&flow.dst);
            if dst.is_local() && !dst.is_vip() {
                return Verdict::ToHost;
            }
            // Routed traffic needs no state: every fragment is routed alike.
            let ours = dst.is_vip() || dst.is_local() || dst.is_standby();
            if snap.ip_forward && !ours && super::routed::sent_to_port(snap, port, frame.bytes()) {
                return self.route_through(snap, (now, port), flow, frame);
            }
            // Perhaps before its first: kept a moment (the frame's buffer is free).
            let early = Early {
                key: FragKey::of(&flow, id),
                port,
                since: now,
            };
            if self.early.kept.keep(early, frame.bytes()) {
                self.counters.fragments_waited.add(1);
                return Verdict::Drop(DropReason::Held);
            }
            return self.drop(DropReason::Fragment);
        };
        // The slot may have been reused since: the entry must still join these addresses.
        let (src, dst) = (flow.src, flow.dst);
        // Under full NAT the reply goes to the local end, not the client.
        let local = self.table.local(conn).map(|l| l.addr);
        let same = self.table.get(conn).is_some_and(|c| {
            let reply_to = match local {
                Some(l) if c.flags & crate::conn::table::flags::FULL_NAT != 0 => l,
                _ => c.caddr,
            };
            c.proto == flow.proto
                && if to_server {
                    c.caddr == src && c.vaddr == dst
                } else {
                    c.daddr == src && reply_to == dst
                }
        });
        if !same {
            return self.drop(DropReason::Fragment);
        }
        if to_server {
            self.forward_conn_to_server(snap, loads, now, (conn, Tracked::No), &flow, frame)
        } else {
            self.forward_to_client(snap, loads, now, conn, &flow, frame)
        }
    }
}
