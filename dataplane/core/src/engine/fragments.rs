//! IP fragments without reassembly: the first fragment of a datagram carries the ports, so
//! it goes through its connection as any packet does (NAT rewrites its L4 checksum for the
//! whole datagram: the sum is linear); the later fragments follow it by source,
//! destination, protocol and identification, with the same addresses, next hop or tunnel.
//! Each worker remembers where first fragments went in a small direct-mapped table (a
//! colliding datagram takes the slot over: memory stays fixed), for a few seconds. A later
//! fragment arriving before its first, or after its slot was taken, is dropped and counted.
//!
//! With several workers, the first fragment's owner is noted in [`FragOwners`], which every
//! worker reads to hand the later fragments (no ports to hash) to the same owner.

use super::*;
use crate::conn::ConnId;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

impl FragTable {
    pub(super) fn new() -> FragTable {
        FragTable {
            slots: vec![FragEntry::default(); FRAG_SLOTS],
        }
    }

    fn slot(key: &FragKey) -> usize {
        key.hash() as usize & (FRAG_SLOTS - 1)
    }

    pub(super) fn note(&mut self, key: FragKey, conn: ConnId, to_server: bool, now: u32) {
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

    pub(super) fn find(&self, key: &FragKey, now: u32) -> Option<(ConnId, bool)> {
        let e = self.slots.get(Self::slot(key))?;
        (e.used && e.key == *key && now <= e.expires).then_some((ConnId(e.conn), e.to_server))
    }
}

/// Which worker took each datagram's first fragment, shared by all workers: slot = hash,
/// value = the hash's high 32 bits and the owner. Written by whichever worker classifies a
/// first fragment, read by any for the later ones; a lost race misroutes one datagram's
/// fragments (dropped and counted there), never more.
#[derive(Debug)]
pub struct FragOwners {
    slots: Box<[AtomicU64]>,
}

impl Default for FragOwners {
    fn default() -> Self {
        FragOwners {
            slots: (0..FRAG_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl FragOwners {
    pub(super) fn note(&self, key: &FragKey, owner: usize) {
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
