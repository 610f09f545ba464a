//! Persistence across workers. IPVS keeps one template per (masked client, service) for the
//! whole box; rvs's workers keep their own tables, and a client's connections reach
//! whichever worker owns each of its endpoints. So every worker with several peers also
//! shares its templates' choices on a board: one 64-bit word per slot holding a fingerprint
//! of the template's key, the real server's id and the template's deadline. A worker that
//! has no template of its own for a key takes the board's choice; one that schedules anew
//! offers its choice with a compare-and-swap, and whoever loses a race for the same key
//! takes the winner's, so connections that open at once on two workers agree. Two ways per
//! set; a set with two other live keys loses the one that ends sooner.
//!
//! A slot: fingerprint (20 bits, never 0) | server id (20 bits) | deadline (24 bits of the
//! workers' clock in seconds, compared with wrapping). Its index comes from other bits of
//! the same hash, so a false match needs 20 + log2(slots) bits to agree. Deadlines more
//! than 2^22 s ahead are cut to that (the template lives on in its worker's table).

use crate::conn::InKey;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Server ids the board holds (the most servers a configuration may have).
pub const BOARD_DEST_LIMIT: u32 = 1 << 20;
const FP_SHIFT: u32 = 44;
const DEST_SHIFT: u32 = 24;
const TIME_MASK: u32 = (1 << 24) - 1;
/// The farthest deadline a slot holds, seconds ahead.
const HORIZON: u32 = 1 << 22;
/// Compare-and-swap attempts before a worker keeps its own choice unpublished.
const ATTEMPTS: usize = 4;

/// The templates' shared choices (see the module's notes).
#[derive(Debug)]
pub struct SharedTemplates {
    /// Sets of two ways.
    sets: Box<[[AtomicU64; 2]]>,
}

/// A template key's place on the board: the same on every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardKey {
    set: usize,
    fp: u64,
}

impl SharedTemplates {
    /// A board of at least `slots` slots (a power of two, 1,024 at least).
    pub fn new(slots: usize) -> SharedTemplates {
        let n = slots.clamp(1024, 1 << 26).next_power_of_two();
        SharedTemplates {
            sets: (0..n / 2).map(|_| Default::default()).collect(),
        }
    }

    pub fn slots(&self) -> usize {
        self.sets.len() * 2
    }

    /// Where a template's key sits.
    pub fn key(&self, k: &InKey) -> BoardKey {
        let h = key_hash(k);
        let fp = (h >> FP_SHIFT).max(1);
        BoardKey {
            set: (h as usize) & (self.sets.len() - 1),
            fp,
        }
    }

    /// The server a live template of `key` is bound to.
    pub fn find(&self, key: BoardKey, now: u32) -> Option<u32> {
        self.ways(key).find_map(|s| {
            let v = s.load(Relaxed);
            (fp_of(v) == key.fp && live(v, now)).then(|| dest_of(v))
        })
    }

    /// The server and deadline of `key`'s live entry.
    pub fn find_until(&self, key: BoardKey, now: u32) -> Option<(u32, u32)> {
        self.ways(key).find_map(|s| {
            let v = s.load(Relaxed);
            (fp_of(v) == key.fp && live(v, now))
                .then(|| (dest_of(v), now.saturating_add(ahead(v, now))))
        })
    }

    /// Offers `dest` for `key` until `expires`: a live entry of the key whose server
    /// `usable` accepts stays and its server is returned (another worker chose first);
    /// otherwise `dest` takes the key's way (or a free, ended or sooner-ending one) and is
    /// returned. Gives `dest` back unpublished if the set keeps changing under it.
    pub fn offer(
        &self,
        key: BoardKey,
        now: u32,
        dest: u32,
        expires: u32,
        usable: impl Fn(u32) -> bool,
    ) -> u32 {
        if dest >= BOARD_DEST_LIMIT {
            return dest;
        }
        let new = word(key.fp, dest, now, expires);
        for _ in 0..ATTEMPTS {
            let Some((slot, cur)) = self.way_for(key, now) else {
                break;
            };
            if fp_of(cur) == key.fp && live(cur, now) && usable(dest_of(cur)) {
                return dest_of(cur);
            }
            if slot.compare_exchange(cur, new, Relaxed, Relaxed).is_ok() {
                return dest;
            }
        }
        dest
    }

    /// Moves the deadline of `key`'s entry for `dest` to `expires` if that is later; puts
    /// the entry back where its way is free or ended. Leaves a way another key or server
    /// holds live alone.
    pub fn extend(&self, key: BoardKey, now: u32, dest: u32, expires: u32) {
        if dest >= BOARD_DEST_LIMIT {
            return;
        }
        let new = word(key.fp, dest, now, expires);
        for _ in 0..ATTEMPTS {
            let Some((slot, cur)) = self.way_for(key, now) else {
                return;
            };
            let mine = fp_of(cur) == key.fp && dest_of(cur) == dest;
            let free = cur == 0 || !live(cur, now);
            if mine && ahead(cur, now) >= ahead(new, now) && live(cur, now) {
                return;
            }
            if !mine && !free {
                return;
            }
            if slot.compare_exchange(cur, new, Relaxed, Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Sets `key`'s entry to `value` until `expires`, whatever it held (its own way, else a
    /// free, ended or sooner-ending one). Gives up if the set keeps changing under it.
    pub fn put(&self, key: BoardKey, now: u32, value: u32, expires: u32) {
        if value >= BOARD_DEST_LIMIT {
            return;
        }
        let new = word(key.fp, value, now, expires);
        for _ in 0..ATTEMPTS {
            let Some((slot, cur)) = self.way_for(key, now) else {
                return;
            };
            if slot.compare_exchange(cur, new, Relaxed, Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Takes `key`'s live entry off the board and returns its server: one taker gets it,
    /// however many race for it.
    pub fn take(&self, key: BoardKey, now: u32) -> Option<u32> {
        self.ways(key).find_map(|s| {
            let v = s.load(Relaxed);
            let won = fp_of(v) == key.fp
                && live(v, now)
                && s.compare_exchange(v, 0, Relaxed, Relaxed).is_ok();
            won.then(|| dest_of(v))
        })
    }

    fn ways(&self, key: BoardKey) -> impl Iterator<Item = &AtomicU64> {
        self.sets.get(key.set).into_iter().flatten()
    }

    /// The way `key` should use and what it holds: the key's own, else a free or ended
    /// one, else the one that ends sooner.
    fn way_for(&self, key: BoardKey, now: u32) -> Option<(&AtomicU64, u64)> {
        let [a, b] = self.sets.get(key.set)?;
        let (va, vb) = (a.load(Relaxed), b.load(Relaxed));
        for (s, v) in [(a, va), (b, vb)] {
            if fp_of(v) == key.fp {
                return Some((s, v));
            }
        }
        for (s, v) in [(a, va), (b, vb)] {
            if v == 0 || !live(v, now) {
                return Some((s, v));
            }
        }
        Some(if ahead(va, now) <= ahead(vb, now) {
            (a, va)
        } else {
            (b, vb)
        })
    }
}

/// A well-mixed hash of a template key, the same on every worker (not the tables' seeded
/// hasher).
fn key_hash(k: &InKey) -> u64 {
    let tail = u64::from(k.proto) << 32 | u64::from(k.cport) << 16 | u64::from(k.vport);
    crate::conn::table::mix_pair(&k.caddr, &k.vaddr, tail)
}

fn word(fp: u64, dest: u32, now: u32, expires: u32) -> u64 {
    let at = expires.max(now).min(now.saturating_add(HORIZON)) & TIME_MASK;
    fp << FP_SHIFT | u64::from(dest) << DEST_SHIFT | u64::from(at)
}

fn fp_of(v: u64) -> u64 {
    v >> FP_SHIFT
}

fn dest_of(v: u64) -> u32 {
    (v >> DEST_SHIFT) as u32 & (BOARD_DEST_LIMIT - 1)
}

/// Seconds from `now` to the slot's deadline, if it is not past (24-bit wrapping time).
fn ahead(v: u64, now: u32) -> u32 {
    let d = (v as u32 & TIME_MASK).wrapping_sub(now & TIME_MASK) & TIME_MASK;
    if d < 1 << 23 {
        d
    } else {
        0
    }
}

/// The slot holds an entry whose deadline has not passed.
fn live(v: u64, now: u32) -> bool {
    v != 0 && {
        let d = (v as u32 & TIME_MASK).wrapping_sub(now & TIME_MASK) & TIME_MASK;
        d < 1 << 23
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::addr16;

    fn key(client: &str, vport: u16) -> InKey {
        InKey {
            proto: 6,
            caddr: addr16(client.parse().unwrap()),
            cport: 0,
            vaddr: addr16("10.0.0.100".parse().unwrap()),
            vport,
        }
    }

    #[test]
    fn the_first_offer_holds_and_later_ones_take_it() {
        let b = SharedTemplates::new(1024);
        let k = b.key(&key("192.0.2.1", 80));
        assert_eq!(b.find(k, 10), None);
        assert_eq!(b.offer(k, 10, 7, 370, |_| true), 7);
        assert_eq!(
            b.offer(k, 11, 9, 371, |_| true),
            7,
            "a later offer takes the first"
        );
        assert_eq!(b.find(k, 369), Some(7));
        assert_eq!(b.find(k, 371), None, "ended");
        assert_eq!(
            b.offer(k, 372, 9, 700, |_| true),
            9,
            "an ended entry gives way"
        );
        // A server that cannot be used (deleted) gives way too.
        assert_eq!(b.offer(k, 373, 3, 700, |d| d != 9), 3);
        assert_eq!(b.find(k, 373), Some(3));
    }

    #[test]
    fn extending_moves_only_the_own_entry_forward() {
        let b = SharedTemplates::new(1024);
        let k = b.key(&key("192.0.2.1", 80));
        b.offer(k, 10, 7, 20, |_| true);
        b.extend(k, 15, 7, 100);
        assert_eq!(b.find(k, 99), Some(7));
        b.extend(k, 16, 7, 50);
        assert_eq!(b.find(k, 99), Some(7), "never shortened");
        b.extend(k, 17, 8, 500);
        assert_eq!(
            b.find(k, 101),
            None,
            "another server's extension does not take it"
        );
        b.extend(k, 200, 8, 500);
        assert_eq!(b.find(k, 499), Some(8), "an ended entry is put back");
    }

    #[test]
    fn keys_share_sets_two_ways_and_the_sooner_ending_gives_way() {
        let b = SharedTemplates::new(1024);
        // Three keys of one set (searched for: the index bits agree).
        let base = b.key(&key("192.0.2.1", 80));
        let mut same: Vec<BoardKey> = (0..200_000u32)
            .map(|i| {
                b.key(&key(
                    &std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(),
                    80,
                ))
            })
            .filter(|k| k.set == base.set && k.fp != base.fp)
            .take(2)
            .collect();
        assert_eq!(same.len(), 2);
        let (k2, k3) = (same.remove(0), same.remove(0));
        b.offer(base, 0, 1, 100, |_| true);
        b.offer(k2, 0, 2, 50, |_| true);
        assert_eq!((b.find(base, 1), b.find(k2, 1)), (Some(1), Some(2)));
        b.offer(k3, 1, 3, 500, |_| true);
        assert_eq!(b.find(k3, 2), Some(3));
        assert_eq!(b.find(k2, 2), None, "the sooner-ending entry made room");
        assert_eq!(b.find(base, 2), Some(1));
    }

    #[test]
    fn deadlines_wrap_with_the_24_bit_clock() {
        let b = SharedTemplates::new(1024);
        let k = b.key(&key("192.0.2.9", 443));
        let now = (1 << 24) - 5;
        b.offer(k, now, 4, now + 360, |_| true);
        assert_eq!(b.find(k, now + 359), Some(4));
        assert_eq!(b.find(k, now + 361), None);
        // A far deadline is cut to the horizon, not read as past.
        let k = b.key(&key("192.0.2.10", 443));
        b.offer(k, 5, 4, u32::MAX, |_| true);
        assert_eq!(b.find(k, 5 + HORIZON - 1), Some(4));
    }

    #[test]
    fn an_entry_is_taken_once_by_racing_takers() {
        use std::sync::{Arc, Barrier};
        let b = SharedTemplates::new(1024);
        let k = b.key(&key("192.0.2.1", 50000));
        assert_eq!(b.take(k, 10), None);
        b.offer(k, 10, 7, 130, |_| false);
        assert_eq!(b.take(k, 131), None, "ended");
        b.offer(k, 10, 7, 130, |_| false);
        assert_eq!(b.take(k, 11), Some(7));
        assert_eq!((b.take(k, 11), b.find(k, 11)), (None, None));
        for round in 0..50u32 {
            let b = Arc::new(SharedTemplates::new(1024));
            b.offer(k, round, 9, round + 120, |_| false);
            let gate = Arc::new(Barrier::new(4));
            let taken = (0..4)
                .map(|_| {
                    let (b, gate) = (b.clone(), gate.clone());
                    std::thread::spawn(move || {
                        gate.wait();
                        b.take(k, round)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .filter_map(|t| t.join().unwrap())
                .count();
            assert_eq!(taken, 1, "round {round}");
        }
    }

    #[test]
    fn racing_offers_agree_on_one_server() {
        use std::sync::{Arc, Barrier};
        for round in 0..50u32 {
            let b = Arc::new(SharedTemplates::new(1024));
            let k = b.key(&key("198.51.100.7", 80));
            let gate = Arc::new(Barrier::new(4));
            let chosen: Vec<u32> = (0..4u32)
                .map(|w| {
                    let (b, gate) = (b.clone(), gate.clone());
                    std::thread::spawn(move || {
                        gate.wait();
                        b.offer(k, round, 100 + w, round + 360, |_| true)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert!(chosen.iter().all(|&d| d == chosen[0]), "{chosen:?}");
            assert_eq!(b.find(k, round), Some(chosen[0]));
        }
    }
}
