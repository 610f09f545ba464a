//! lblc (locality-based least-connection): a per-destination-address cache. A hit is used
//! unless that server is unavailable, weight 0, or overloaded in lblc's sense (active >
//! weight while some server has active * 2 < weight); otherwise wlc picks and the cache is
//! updated. Entries idle 24 h (`lblc_expiration`) are reaped; over the maximum, those idle
//! 6 min go first.
//!
//! With one worker rvs keeps the cache, sized at creation; when it is full a new
//! destination is served without being cached (IPVS grows the table until its next sweep).
//! With several, the cache is the workers' shared board ([`pick_shared`]), so that a
//! destination keeps one server whichever worker its clients reach, as the kernel's one
//! table keeps it.

use super::{wlc, View};
use crate::engine::{BoardKey, SharedTemplates};
use hashbrown::HashMap;
use std::net::IpAddr;

pub const MAX_ENTRIES: usize = 16384;
pub const IDLE_WHEN_FULL_S: u64 = 6 * 60;
pub const CHECK_INTERVAL_S: u64 = 60;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Stable server id.
    dest: usize,
    last_use: u64,
}

#[derive(Debug)]
pub struct LblcCache {
    map: HashMap<IpAddr, Entry>,
    next_check: u64,
}

impl Default for LblcCache {
    fn default() -> Self {
        Self::new()
    }
}

impl LblcCache {
    pub fn new() -> LblcCache {
        LblcCache {
            map: HashMap::with_capacity(MAX_ENTRIES),
            next_check: CHECK_INTERVAL_S,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Empties the cache, keeping its room (a scheduler bound anew).
    pub fn clear(&mut self) {
        self.map.clear();
        self.next_check = CHECK_INTERVAL_S;
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The periodic sweep (at most once a minute): entries unused for `expiration` go.
    fn reap(&mut self, (now, expiration): (u64, u64)) {
        if now < self.next_check {
            return;
        }
        self.next_check = now + CHECK_INTERVAL_S;
        self.map
            .retain(|_, e| now.saturating_sub(e.last_use) < expiration);
        if self.map.len() >= MAX_ENTRIES {
            self.map
                .retain(|_, e| now.saturating_sub(e.last_use) < IDLE_WHEN_FULL_S);
        }
    }

    fn insert(&mut self, dst: IpAddr, dest: usize, now: u64) {
        if self.map.len() < MAX_ENTRIES || self.map.contains_key(&dst) {
            self.map.insert(
                dst,
                Entry {
                    dest,
                    last_use: now,
                },
            );
        }
    }
}

/// lblc's overload test.
pub(crate) fn lb_overloaded(v: &View, i: usize) -> bool {
    v.active(i) > v.weight(i) && (0..v.len()).any(|d| v.active(d) * 2 < v.weight(d))
}

pub(crate) fn index_of(v: &View, id: usize) -> Option<usize> {
    v.dests.iter().position(|d| d.id == id)
}

pub(crate) fn pick(
    v: &View,
    cache: &mut LblcCache,
    dst: IpAddr,
    (now, expiration): (u64, u64),
) -> Option<usize> {
    cache.reap((now, expiration));
    if let Some(e) = cache.map.get_mut(&dst) {
        e.last_use = now;
        // As the kernel: a hit stands unless the server has weight 0 or is overloaded in
        // lblc's sense; the `-x` threshold flag only keeps new picks away (wlc skips it).
        if let Some(i) = index_of(v, e.dest) {
            if v.weight(i) > 0 && !lb_overloaded(v, i) {
                return Some(i);
            }
        }
    }
    let i = wlc::pick(v)?;
    cache.insert(dst, v.id(i)?, now);
    Some(i)
}

/// [`pick`] with the cache on the workers' shared board: a live entry for the destination
/// stands unless its server has weight 0 or is overloaded in lblc's sense; else wlc picks
/// and offers its choice (a worker that chose for the same destination at the same moment
/// may have won: its choice is taken). Entries live `expiration` seconds from their last use.
pub(crate) fn pick_shared(
    v: &View,
    board: &SharedTemplates,
    key: BoardKey,
    (now, expiration): (u32, u32),
) -> Option<usize> {
    let usable = |i: &usize| v.weight(*i) > 0 && !lb_overloaded(v, *i);
    let until = now.saturating_add(expiration);
    let cached = board.find(key, now).and_then(|d| index_of(v, d as usize));
    let id_of = |i: usize| v.id(i).map(|id| id as u32);
    if let Some(i) = cached.filter(usable) {
        board.extend(key, now, id_of(i)?, until);
        return Some(i);
    }
    let i = wlc::pick(v)?;
    let got = board.offer(key, now, id_of(i)?, until, |d| {
        index_of(v, d as usize).is_some_and(|j| usable(&j))
    });
    Some(index_of(v, got as usize).filter(usable).unwrap_or(i))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    fn r(dst: [u8; 4], now: u64) -> Request {
        Request {
            client: crate::conn::v4_mapped([1, 1, 1, 1]),
            client_port: 1,
            dst: crate::conn::v4_mapped(dst),
            now,
            expiration: CacheExpiration::default(),
        }
    }

    /// The shared cache follows the same rules as a worker's own: a hit stands until its
    /// server is lblc-overloaded or at weight 0, then wlc's pick replaces it for everyone.
    #[test]
    fn the_shared_cache_keeps_and_moves_a_destination_as_the_worker_s_own() {
        use crate::engine::SharedTemplates;
        let board = SharedTemplates::new(1024);
        let shared = |d: &[RealServer], l: &[DestLoad], b, k, now| {
            super::pick_shared(&view(d, l), b, k, (now, CacheExpiration::DEFAULT_S))
        };
        let mut d = dests(&[2, 2]);
        let l = loads(2);
        let key = |dst| board_key(&board, dst);
        assert_eq!(shared(&d, &l, &board, key([8, 8, 8, 8]), 0), Some(0));
        l[0].set_counts(2, 0); // wlc would now pick B, the cache keeps A
        assert_eq!(shared(&d, &l, &board, key([8, 8, 8, 8]), 1), Some(0));
        assert_eq!(
            shared(&d, &l, &board, key([9, 9, 9, 9]), 1),
            Some(1),
            "new dst: wlc"
        );
        l[0].set_counts(3, 0);
        assert_eq!(
            shared(&d, &l, &board, key([8, 8, 8, 8]), 2),
            Some(1),
            "overloaded"
        );
        l[0].set_counts(0, 0);
        assert_eq!(
            shared(&d, &l, &board, key([8, 8, 8, 8]), 3),
            Some(1),
            "moved for all"
        );
        d[1].weight = 0;
        assert_eq!(
            shared(&d, &l, &board, key([8, 8, 8, 8]), 4),
            Some(0),
            "weight 0"
        );
        // Idle 24 h: the entry ends.
        d[1].weight = 2;
        l[0].set_counts(0, 5);
        let later = 4 + CacheExpiration::DEFAULT_S + 1;
        assert_eq!(
            shared(&d, &l, &board, key([8, 8, 8, 8]), later),
            Some(1),
            "ended: wlc"
        );
    }

    /// lblc_expiration: an entry unused that long goes (the next sweep), in a worker's
    /// own cache and on the shared board alike; the default keeps it.
    #[test]
    fn an_entry_unused_for_lblc_expiration_ends() {
        use crate::engine::SharedTemplates;
        let kind = SchedKind::Lblc;
        for (expiration, kept) in [(120, false), (CacheExpiration::DEFAULT_S, true)] {
            let d = dests(&[2, 2]);
            let l = loads(2);
            let t = build_table(&kind, &d);
            let mut s = SchedState::new(&kind, &t);
            let board = SharedTemplates::new(1024);
            let key = board_key(&board, [8, 8, 8, 8]);
            let at = |now: u64| Request {
                expiration: CacheExpiration {
                    lblc: expiration,
                    lblcr: CacheExpiration::DEFAULT_S,
                },
                ..r([8, 8, 8, 8], now)
            };
            let shared =
                |now: u32| super::pick_shared(&view(&d, &l), &board, key, (now, expiration));
            assert_eq!(pick(&kind, &t, &mut s, &d, &l, &at(0)), Some(0));
            assert_eq!(shared(0), Some(0));
            l[0].set_counts(2, 0); // wlc would pick B now
            assert_eq!(
                pick(&kind, &t, &mut s, &d, &l, &at(100)),
                Some(0),
                "used at 100 s"
            );
            assert_eq!(shared(100), Some(0));
            let want = if kept { Some(0) } else { Some(1) };
            assert_eq!(
                pick(&kind, &t, &mut s, &d, &l, &at(221)),
                want,
                "{expiration}"
            );
            assert_eq!(shared(221), want, "{expiration}");
        }
    }

    fn board_key(board: &crate::engine::SharedTemplates, dst: [u8; 4]) -> crate::engine::BoardKey {
        board.key(&crate::conn::InKey {
            proto: 0x86,
            caddr: crate::conn::v4_mapped(dst),
            cport: 0,
            vaddr: [0; 16],
            vport: 80,
        })
    }

    #[test]
    fn reuses_the_cached_server_until_overloaded() {
        let kind = SchedKind::Lblc;
        let d = dests(&[2, 2]);
        let l = loads(2);
        let t = build_table(&kind, &d);
        let mut s = SchedState::new(&kind, &t);
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 0)),
            Some(0)
        );
        l[0].set_counts(2, 0); // wlc would now pick B, the cache keeps A
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 1)),
            Some(0)
        );
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([9, 9, 9, 9], 1)),
            Some(1),
            "new dst: wlc"
        );
        // A: 3 active > weight 2 while B has 0 * 2 < 2: lblc-overloaded -> B, cached.
        l[0].set_counts(3, 0);
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 2)),
            Some(1)
        );
        l[0].set_counts(0, 0);
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 3)),
            Some(1),
            "cache updated"
        );
    }

    #[test]
    fn weight_zero_hit_reschedules_a_flagged_one_does_not_and_idle_entries_expire() {
        let kind = SchedKind::Lblc;
        let mut d = dests(&[1, 1]);
        let l = loads(2);
        let t = build_table(&kind, &d);
        let mut s = SchedState::new(&kind, &t);
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 0)),
            Some(0)
        );
        // Over its -x threshold: the kernel's lblc keeps a cached destination (it checks
        // weight and its own overload test only); a new destination avoids it.
        l[0].set_overloaded(true);
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 1)),
            Some(0),
            "the -x flag does not move a cached destination"
        );
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([7, 7, 7, 7], 1)),
            Some(1),
            "new destination: wlc skips the flagged server"
        );
        l[0].set_overloaded(false);
        d[0].weight = 0;
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 2)),
            Some(1),
            "weight 0 moves it"
        );
        d[0].weight = 1;
        d[1].weight = 0;
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([8, 8, 8, 8], 2)),
            Some(0)
        );
        assert_eq!(s.lblc.as_ref().unwrap().len(), 2);
        let later = 2 + u64::from(CacheExpiration::DEFAULT_S) + super::CHECK_INTERVAL_S;
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r([9, 9, 9, 9], later)),
            Some(0)
        );
        assert_eq!(
            s.lblc.as_ref().unwrap().len(),
            1,
            "the 24 h idle entry was reaped"
        );
    }
}
