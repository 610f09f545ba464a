//! lblcr (lblc with replication): each destination address maps to a set of servers. Pick
//! the least loaded member (wlc rule); when it is overloaded (lblc's sense) or none is
//! usable, add wlc's choice over the whole service to the set and use it. A set unchanged
//! for 24 h (`lblcr_expiration`, which also reaps a set unused that long) sheds its most
//! loaded member.
//!
//! Sets are unbounded, as IPVS's (a set never holds a server twice, so it is bounded by
//! the service's servers): up to 16 members live inline; a set that grows past that moves
//! to the heap once, the one allocation of a worker, on lblcr's new-connection path with
//! more than 16 servers. With one worker the cache is its own; with several, the sets live
//! on the workers' shared board ([`pick_shared`]), so that a destination's set is one
//! whichever worker its clients reach, as the kernel's one table.

use super::lblc::{index_of, lb_overloaded};
use super::{wlc, View};
use crate::engine::{BoardKey, SharedTemplates};
use hashbrown::HashMap;
use std::net::IpAddr;

pub const MAX_ENTRIES: usize = 16384;
const INLINE: usize = 16;

#[derive(Debug, Clone)]
struct DestSet {
    /// Stable server ids, newest first, while the set fits.
    inline: [usize; INLINE],
    len: usize,
    /// All members, newest first, once the set has outgrown `inline`.
    spilled: Vec<usize>,
    last_mod: u64,
    last_use: u64,
}

impl DestSet {
    fn new(id: usize, now: u64) -> DestSet {
        let mut inline = [0; INLINE];
        inline[0] = id;
        DestSet {
            inline,
            len: 1,
            spilled: Vec::new(),
            last_mod: now,
            last_use: now,
        }
    }

    fn members(&self) -> &[usize] {
        if self.spilled.is_empty() {
            self.inline.get(..self.len).unwrap_or_default()
        } else {
            &self.spilled
        }
    }

    fn len(&self) -> usize {
        self.members().len()
    }

    fn insert(&mut self, id: usize, now: u64) {
        if self.members().contains(&id) {
            return;
        }
        if self.spilled.is_empty() && self.len < INLINE {
            self.inline.copy_within(0..self.len, 1);
            self.inline[0] = id;
            self.len += 1;
        } else {
            if self.spilled.is_empty() {
                self.spilled.reserve(2 * INLINE);
                let inline = self.inline.get(..self.len).unwrap_or_default();
                self.spilled.extend_from_slice(inline);
            }
            self.spilled.insert(0, id);
        }
        self.last_mod = now;
    }

    fn erase(&mut self, id: usize, now: u64) {
        let Some(p) = self.members().iter().position(|&m| m == id) else {
            return;
        };
        if self.spilled.is_empty() {
            // The members after it move up one.
            if let Some(from_it) = self.inline.get_mut(p..self.len) {
                from_it.rotate_left(1.min(from_it.len()));
                self.len -= 1;
            }
        } else if p < self.spilled.len() {
            self.spilled.remove(p);
        }
        self.last_mod = now;
    }
}

#[derive(Debug)]
pub struct LblcrCache {
    map: HashMap<IpAddr, DestSet>,
    next_check: u64,
}

impl Default for LblcrCache {
    fn default() -> Self {
        Self::new()
    }
}

impl LblcrCache {
    pub fn new() -> LblcrCache {
        LblcrCache {
            map: HashMap::with_capacity(MAX_ENTRIES),
            next_check: super::lblc::CHECK_INTERVAL_S,
        }
    }

    /// Empties the cache, keeping its room (a scheduler bound anew).
    pub fn clear(&mut self) {
        self.map.clear();
        self.next_check = super::lblc::CHECK_INTERVAL_S;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Members of the set for `dst` (tests, console).
    pub fn members(&self, dst: IpAddr) -> Vec<usize> {
        self.map
            .get(&dst)
            .map(|s| s.members().to_vec())
            .unwrap_or_default()
    }

    fn reap(&mut self, (now, expiration): (u64, u64)) {
        if now < self.next_check {
            return;
        }
        self.next_check = now + super::lblc::CHECK_INTERVAL_S;
        self.map
            .retain(|_, s| now.saturating_sub(s.last_use) < expiration);
        if self.map.len() >= MAX_ENTRIES {
            self.map
                .retain(|_, s| now.saturating_sub(s.last_use) < super::lblc::IDLE_WHEN_FULL_S);
        }
    }
}

/// The least loaded usable member of `members` (server ids; first with weight > 0, then
/// strictly better per weight).
fn set_min(v: &View, members: &[usize]) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for &id in members {
        let Some(i) = index_of(v, id) else { continue };
        if v.overloaded(i) {
            continue;
        }
        match least {
            None if v.weight(i) > 0 => least = Some((i, v.overhead(i))),
            None => {}
            Some((l, loh)) => {
                let doh = v.overhead(i);
                if loh * v.weight(i) > doh * v.weight(l) {
                    least = Some((i, doh));
                }
            }
        }
    }
    least.map(|(i, _)| i)
}

/// The most loaded member with weight > 0.
fn set_max(v: &View, members: &[usize]) -> Option<usize> {
    let mut most: Option<(usize, i64)> = None;
    for &id in members {
        let Some(i) = index_of(v, id) else { continue };
        if v.weight(i) <= 0 {
            continue;
        }
        let doh = v.overhead(i);
        match most {
            None => most = Some((i, doh)),
            Some((m, moh)) => {
                if moh * v.weight(i) < doh * v.weight(m) {
                    most = Some((i, doh));
                }
            }
        }
    }
    most.map(|(i, _)| i)
}

pub(crate) fn pick(
    v: &View,
    cache: &mut LblcrCache,
    dst: IpAddr,
    (now, expiration): (u64, u64),
) -> Option<usize> {
    cache.reap((now, expiration));
    if let Some(set) = cache.map.get_mut(&dst) {
        set.last_use = now;
        let chosen = set_min(v, set.members());
        if set.len() > 1 && now.saturating_sub(set.last_mod) > expiration {
            if let Some(id) = set_max(v, set.members()).and_then(|m| v.id(m)) {
                set.erase(id, now);
            }
        }
        if let Some(i) = chosen {
            if !lb_overloaded(v, i) {
                return Some(i);
            }
        }
        let i = wlc::pick(v)?;
        set.insert(v.id(i)?, now);
        return Some(i);
    }
    let i = wlc::pick(v)?;
    if cache.map.len() < MAX_ENTRIES {
        cache.map.insert(dst, DestSet::new(v.id(i)?, now));
    }
    Some(i)
}

/// Members a destination's set holds on the shared board (a set would grow past them only
/// with every member overloaded in turn; the next is then used uncached).
pub const SHARED_MEMBERS: usize = 8;
/// The bits of the clock a set's last-change stamp keeps on the board (12 days, past the
/// expiration its age is compared with, at most [`super::CacheExpiration::MAX_S`]).
const STAMP_MASK: u32 = (1 << 20) - 1;

/// Where a destination's set lives on the board: a slot per member, then the set's
/// last-change stamp. Each entry lives `lblcr_expiration` from the set's last use.
#[derive(Debug, Clone, Copy)]
pub struct SharedSet {
    pub members: [BoardKey; SHARED_MEMBERS],
    pub stamp: BoardKey,
}

/// [`pick`] with the sets on the workers' shared board: the same rules, each member in a
/// slot of its own that workers fill and empty with compare-and-swap (a worker that added
/// a member at the same moment may have taken the slot: the next free one is tried).
pub(crate) fn pick_shared(
    v: &View,
    board: &SharedTemplates,
    set: &SharedSet,
    (now, expiration): (u32, u32),
) -> Option<usize> {
    let until = now.saturating_add(expiration);
    let stamp_now = now & STAMP_MASK;
    let mut ids = [0usize; SHARED_MEMBERS];
    let mut slot_of = [0usize; SHARED_MEMBERS];
    let mut n = 0;
    for (slot, key) in set.members.iter().enumerate() {
        let Some(d) = board.find(*key, now) else {
            continue;
        };
        if let (Some(id), Some(s)) = (ids.get_mut(n), slot_of.get_mut(n)) {
            (*id, *s) = (d as usize, slot);
            n += 1;
        }
    }
    let ids = ids.get(..n).unwrap_or_default();
    let slot_of = slot_of.get(..n).unwrap_or_default();
    let member = |slot: usize| set.members.get(slot).copied();
    if n == 0 {
        let i = wlc::pick(v)?;
        let usable = |d: u32| index_of(v, d as usize).is_some_and(|j| v.weight(j) > 0);
        let got = board.offer(set.members[0], now, v.id(i)? as u32, until, usable);
        board.put(set.stamp, now, stamp_now, until);
        return Some(index_of(v, got as usize).unwrap_or(i));
    }
    // Used: the set lives on.
    for (&id, key) in ids.iter().zip(slot_of.iter().filter_map(|&s| member(s))) {
        board.extend(key, now, id as u32, until);
    }
    let stamp = board.find(set.stamp, now).unwrap_or(stamp_now);
    board.extend(set.stamp, now, stamp, until);
    let chosen = set_min(v, ids);
    let age = stamp_now.wrapping_sub(stamp) & STAMP_MASK;
    if n > 1 && age > expiration {
        let max = set_max(v, ids).and_then(|m| v.id(m));
        let k = max.and_then(|max| ids.iter().position(|&id| id == max));
        if let Some(key) = k.and_then(|k| slot_of.get(k)).and_then(|&s| member(s)) {
            board.take(key, now);
            board.put(set.stamp, now, stamp_now, until);
        }
    }
    if let Some(i) = chosen.filter(|&i| !lb_overloaded(v, i)) {
        return Some(i);
    }
    let i = wlc::pick(v)?;
    let id = v.id(i)?;
    if !ids.contains(&id) {
        let free = (0..SHARED_MEMBERS).filter(|s| !slot_of.contains(s));
        for key in free.filter_map(member) {
            if board.offer(key, now, id as u32, until, |_| true) == id as u32 {
                board.put(set.stamp, now, stamp_now, until);
                break;
            }
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use std::net::IpAddr;

    fn r(now: u64) -> Request {
        Request {
            client: crate::conn::v4_mapped([1, 1, 1, 1]),
            client_port: 1,
            dst: crate::conn::v4_mapped([8, 8, 8, 8]),
            now,
            expiration: CacheExpiration::default(),
        }
    }

    /// Grows under overload; sheds its most loaded member once unchanged for
    /// lblcr_expiration (a day by default, or as set).
    #[test]
    fn grows_the_set_under_overload_and_sheds_after_its_expiration() {
        for expiration in [CacheExpiration::DEFAULT_S, 300] {
            grows_and_sheds_after(expiration);
        }
    }

    fn grows_and_sheds_after(expiration: u32) {
        let r = |now| Request {
            expiration: CacheExpiration {
                lblc: CacheExpiration::DEFAULT_S,
                lblcr: expiration,
            },
            ..r(now)
        };
        let kind = SchedKind::Lblcr;
        let d = dests(&[2, 2, 2]);
        let l = loads(3);
        let t = build_table(&kind, &d);
        let mut s = SchedState::new(&kind, &t);
        assert_eq!(pick(&kind, &t, &mut s, &d, &l, &r(0)), Some(0));
        // A overloaded in lblc's sense: B joins the set.
        l[0].set_counts(3, 0);
        assert_eq!(pick(&kind, &t, &mut s, &d, &l, &r(1)), Some(1));
        let dst = IpAddr::from([8, 8, 8, 8]);
        assert_eq!(s.lblcr.as_ref().unwrap().members(dst), vec![1, 0]);
        // The least loaded member is used while it is fine.
        l[1].set_counts(1, 0);
        assert_eq!(pick(&kind, &t, &mut s, &d, &l, &r(2)), Some(1));
        // The expiration later, the most loaded member (A) leaves.
        // Keep C busy so B stays the best choice (and the cache entry fresh).
        l[2].set_counts(5, 0);
        let later = 2 + u64::from(expiration) + 1;
        assert_eq!(pick(&kind, &t, &mut s, &d, &l, &r(later - 60)), Some(1));
        assert_eq!(
            s.lblcr.as_ref().unwrap().members(dst),
            vec![1, 0],
            "not yet unchanged for {expiration} s"
        );
        assert_eq!(pick(&kind, &t, &mut s, &d, &l, &r(later)), Some(1));
        assert_eq!(s.lblcr.as_ref().unwrap().members(dst), vec![1]);
    }

    /// The workers' shared sets follow the same rules as a worker's own: step for step the
    /// same choices and the same members (any worker asking the board sees them).
    #[test]
    fn shared_sets_grow_and_shed_as_a_worker_s_own() {
        use crate::engine::SharedTemplates;
        let board = SharedTemplates::new(1024);
        let key = |slot: usize| {
            board.key(&crate::conn::InKey {
                proto: 0xc6,
                caddr: crate::conn::v4_mapped([8, 8, 8, 8]),
                cport: slot as u16,
                vaddr: crate::conn::v4_mapped([192, 0, 2, 1]),
                vport: 80,
            })
        };
        let set = super::SharedSet {
            members: std::array::from_fn(&key),
            stamp: key(super::SHARED_MEMBERS),
        };
        let members = |now: u32| {
            let mut m: Vec<usize> = set
                .members
                .iter()
                .filter_map(|k| board.find(*k, now).map(|d| d as usize))
                .collect();
            m.sort();
            m
        };
        let kind = SchedKind::Lblcr;
        let d = dests(&[2, 2, 2]);
        let l = loads(3);
        let t = build_table(&kind, &d);
        let mut own = SchedState::new(&kind, &t);
        let dst = IpAddr::from([8, 8, 8, 8]);
        let mut step = |now: u64| {
            let mine = pick(&kind, &t, &mut own, &d, &l, &r(now));
            let shared = super::pick_shared(
                &view(&d, &l),
                &board,
                &set,
                (now as u32, CacheExpiration::DEFAULT_S),
            );
            let mut theirs = own.lblcr.as_ref().unwrap().members(dst);
            theirs.sort();
            assert_eq!(shared, mine, "at {now}");
            assert_eq!(members(now as u32), theirs, "at {now}");
            shared
        };
        assert_eq!(step(0), Some(0));
        l[0].set_counts(3, 0);
        assert_eq!(step(1), Some(1), "B joins");
        l[1].set_counts(1, 0);
        assert_eq!(step(2), Some(1), "the least loaded member");
        l[2].set_counts(5, 0);
        let later = 2 + u64::from(CacheExpiration::DEFAULT_S) + 1;
        assert_eq!(step(later - 60), Some(1));
        assert_eq!(step(later), Some(1), "A leaves after a day");
        assert_eq!(members(later as u32), vec![1]);
        // Unused for a day: the set is gone; the next pick starts one.
        l[1].set_counts(3, 0);
        let gone = later + u64::from(CacheExpiration::DEFAULT_S) + 120;
        assert_eq!(members(gone as u32), Vec::<usize>::new());
    }

    /// As in IPVS a set has no size limit: with 20 servers, each overloaded in turn, the
    /// set grows to all 20 (past the 16 held inline), newest first, and sheds one again.
    #[test]
    fn a_set_grows_past_sixteen_members() {
        let kind = SchedKind::Lblcr;
        let d = dests(&[2; 20]);
        let l = loads(20);
        let t = build_table(&kind, &d);
        let mut s = SchedState::new(&kind, &t);
        let mut chosen = Vec::new();
        for now in 0..20 {
            let i = pick(&kind, &t, &mut s, &d, &l, &r(now)).unwrap();
            assert!(!chosen.contains(&i), "{i} chosen twice");
            chosen.push(i);
            l[i].set_counts(3, 0);
        }
        let dst = IpAddr::from([8, 8, 8, 8]);
        let members = s.lblcr.as_ref().unwrap().members(dst);
        let newest_first: Vec<usize> = chosen.iter().rev().map(|&i| d[i].id).collect();
        assert_eq!(members, newest_first);
        // Everyone overloaded and nobody idle: the set's least loaded member serves.
        assert!(pick(&kind, &t, &mut s, &d, &l, &r(21)).is_some());
        assert_eq!(s.lblcr.as_ref().unwrap().members(dst).len(), 20);
        // A day unchanged: the most loaded member leaves the spilled set.
        l[chosen[5]].set_counts(9, 0);
        let later = 19 + u64::from(CacheExpiration::DEFAULT_S) + 1;
        pick(&kind, &t, &mut s, &d, &l, &r(later));
        let after = s.lblcr.as_ref().unwrap().members(dst);
        assert_eq!(after.len(), 19);
        assert!(!after.contains(&d[chosen[5]].id));
    }
}
