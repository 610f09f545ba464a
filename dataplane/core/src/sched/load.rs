//! Per-real-server connection counters shared by all workers, and the overload flag
//! driven by the upper/lower thresholds (ipvsadm `-x` / `-y`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Upper and lower connection thresholds; 0 = none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub upper: u32,
    pub lower: u32,
}

fn total_of(counts: u64) -> u32 {
    ((counts >> 32) as u32).saturating_add(counts as u32)
}

/// Live counters of one real server, indexed by its stable id. Shared by every worker (as
/// IPVS's), each server's on a cache line of its own: workers binding connections to
/// neighbouring servers do not contend for one line (packed three to a line, they did:
/// `cargo bench -p rvs-core --bench sched -- dest_load`).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct DestLoad {
    /// Active connections in the high half, inactive in the low: a connection's move
    /// between them is one atomic change of the line, not two.
    counts: AtomicU64,
    persistent: AtomicU32,
    overloaded: AtomicBool,
    upper: AtomicU32,
    lower: AtomicU32,
}

impl DestLoad {
    pub fn active(&self) -> u32 {
        (self.counts.load(Relaxed) >> 32) as u32
    }

    pub fn inactive(&self) -> u32 {
        self.counts.load(Relaxed) as u32
    }

    pub fn persistent(&self) -> u32 {
        self.persistent.load(Relaxed)
    }

    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Relaxed)
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            upper: self.upper.load(Relaxed),
            lower: self.lower.load(Relaxed),
        }
    }

    /// Sets the thresholds (control side); the flag is re-evaluated at the next bind or
    /// unbind, as in IPVS.
    pub fn set_thresholds(&self, t: Thresholds) {
        self.upper.store(t.upper, Relaxed);
        self.lower.store(t.lower, Relaxed);
    }

    /// Changes the counts by `f` (active, inactive) in one atomic step; nothing when it
    /// gives None. Returns the counts as the step left them.
    fn change(&self, f: impl Fn(u32, u32) -> Option<(u32, u32)>) -> u64 {
        let step =
            |v: u64| f((v >> 32) as u32, v as u32).map(|(a, i)| u64::from(a) << 32 | u64::from(i));
        match self.counts.fetch_update(Relaxed, Relaxed, step) {
            Ok(before) => step(before).unwrap_or(before),
            Err(unchanged) => unchanged,
        }
    }

    /// A new connection binds: counted inactive; the flag is set when the total reaches
    /// the upper threshold.
    pub fn bind(&self) {
        // One add, no compare loop: the low half cannot carry into the high one, since a
        // server never holds 2^32 connections (entry ids are 32-bit).
        let before = self.counts.fetch_add(1, Relaxed);
        self.judge_growth(total_of(before).saturating_add(1));
    }

    /// A connection goes away, counted active or not. The flag clears when the total drops
    /// below the lower threshold, or (without one) below 3/4 of the upper, or (without
    /// thresholds) at once.
    pub fn unbind(&self, was_active: bool) {
        let after = self.change(|a, i| match was_active {
            true => Some((a.checked_sub(1)?, i)),
            false => Some((a, i.checked_sub(1)?)),
        });
        self.judge_shrink(total_of(after));
    }

    /// Whether connection thresholds are set (the flag is then judged per connection).
    pub fn has_thresholds(&self) -> bool {
        self.upper.load(Relaxed) != 0
    }

    /// A worker's net changes to the counts (see [`super::PendingLoads`]) in one atomic
    /// step, each half kept at zero or above; the flag judged as binds (when the total
    /// grew) and unbinds (when any connection went) would judge it.
    pub fn apply(&self, active: i32, inactive: i32, removed: bool) {
        // Connections that came and went within a pass leave the line unwritten.
        let after = if active == 0 && inactive == 0 {
            self.counts.load(Relaxed)
        } else {
            self.change(|a, i| {
                Some((
                    a.saturating_add_signed(active),
                    i.saturating_add_signed(inactive),
                ))
            })
        };
        let total = total_of(after);
        if active.saturating_add(inactive) > 0 {
            self.judge_growth(total);
        }
        if removed {
            self.judge_shrink(total);
        }
    }

    fn judge_growth(&self, total: u32) {
        let upper = self.upper.load(Relaxed);
        if upper != 0 && total >= upper {
            self.overloaded.store(true, Relaxed);
        }
    }

    fn judge_shrink(&self, total: u32) {
        let (upper, lower) = (self.upper.load(Relaxed), self.lower.load(Relaxed));
        let total = u64::from(total);
        let clear = if lower != 0 {
            total < u64::from(lower)
        } else if upper != 0 {
            total * 4 < u64::from(upper) * 3
        } else {
            true
        };
        // Read first: a store of what is there already would still take the line from
        // the other workers.
        if clear && self.overloaded.load(Relaxed) {
            self.overloaded.store(false, Relaxed);
        }
    }

    /// A TCP connection entered (true) or left (false) an active state.
    pub fn set_active(&self, active: bool) {
        self.change(|a, i| match active {
            true => Some((a.checked_add(1)?, i.checked_sub(1)?)),
            false => Some((a.checked_sub(1)?, i.checked_add(1)?)),
        });
    }

    pub fn add_persistent(&self) {
        self.persistent.fetch_add(1, Relaxed);
    }

    pub fn remove_persistent(&self) {
        let _ = self
            .persistent
            .fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1));
    }

    /// Forces counters (tests, previews).
    pub fn set_counts(&self, active: u32, inactive: u32) {
        self.counts
            .store(u64::from(active) << 32 | u64::from(inactive), Relaxed);
    }

    pub fn set_overloaded(&self, on: bool) {
        self.overloaded.store(on, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_threshold_sets_and_lower_clears() {
        let d = DestLoad::default();
        d.set_thresholds(Thresholds { upper: 3, lower: 1 });
        d.bind();
        d.bind();
        assert!(!d.overloaded());
        d.bind();
        assert!(d.overloaded(), "3 >= upper 3");
        d.unbind(false);
        assert!(d.overloaded(), "2 is not below lower 1");
        d.unbind(false);
        assert!(d.overloaded(), "1 is not below lower 1");
        d.unbind(false);
        assert!(!d.overloaded(), "0 < lower 1");
    }

    #[test]
    fn without_lower_clears_below_three_quarters_of_upper() {
        let d = DestLoad::default();
        d.set_thresholds(Thresholds { upper: 8, lower: 0 });
        for _ in 0..8 {
            d.bind();
        }
        assert!(d.overloaded());
        d.unbind(false); // 7: 28 < 24? no
        d.unbind(false); // 6: 24 < 24? no
        assert!(d.overloaded());
        d.unbind(false); // 5: 20 < 24
        assert!(!d.overloaded());
    }

    #[test]
    fn without_thresholds_any_unbind_clears() {
        let d = DestLoad::default();
        d.bind();
        d.set_overloaded(true);
        d.unbind(false);
        assert!(!d.overloaded());
    }

    #[test]
    fn active_transitions_move_counts() {
        let d = DestLoad::default();
        d.bind();
        d.set_active(true);
        assert_eq!((d.active(), d.inactive()), (1, 0));
        d.set_active(false);
        assert_eq!((d.active(), d.inactive()), (0, 1));
        d.unbind(false);
        d.unbind(false); // never below zero
        assert_eq!((d.active(), d.inactive()), (0, 0));
    }

    #[test]
    fn a_move_from_an_empty_count_changes_nothing() {
        let d = DestLoad::default();
        d.set_counts(5, 0);
        d.set_active(true);
        assert_eq!(
            (d.active(), d.inactive()),
            (5, 0),
            "no inactive one to move"
        );
        d.set_counts(0, 7);
        d.set_active(false);
        assert_eq!((d.active(), d.inactive()), (0, 7), "no active one to move");
        d.unbind(true);
        assert_eq!(
            (d.active(), d.inactive()),
            (0, 7),
            "the inactive count is not borrowed"
        );
        d.set_counts(u32::MAX, 1);
        d.unbind(false);
        assert_eq!((d.active(), d.inactive()), (u32::MAX, 0));
    }

    #[test]
    fn net_changes_apply_in_one_step_and_judge_the_flag() {
        let d = DestLoad::default();
        d.apply(3, 2, false);
        assert_eq!((d.active(), d.inactive()), (3, 2));
        d.apply(-1, 1, false);
        assert_eq!((d.active(), d.inactive()), (2, 3));
        d.apply(-5, -1, true);
        assert_eq!((d.active(), d.inactive()), (0, 2), "halves stop at zero");
        d.set_overloaded(true);
        d.apply(0, 0, true);
        assert!(!d.overloaded(), "without thresholds a removal clears");
        d.set_thresholds(Thresholds { upper: 4, lower: 1 });
        d.apply(2, 0, false);
        assert!(d.overloaded(), "4 >= upper 4");
        d.apply(-2, -1, true);
        assert!(d.overloaded(), "1 is not below lower 1");
        d.apply(0, -1, true);
        assert!(!d.overloaded(), "0 < lower 1");
    }
}
