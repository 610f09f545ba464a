//! Adaptive polling (l3fwd-power's idea, VPP's adaptive mode): after a run of passes that
//! found nothing, the worker sleeps, twice as long after each further empty pass, up to a
//! bound; any work resets it. A worker under load never sleeps; idle ones let several rvs
//! instances (and their labs) share a small machine.

use std::time::Duration;

/// Empty passes in a row before the first sleep (tens of microseconds of polling: gaps in
/// steady traffic are shorter, so a loaded worker never sleeps).
pub const IDLE_PASSES: u32 = 1024;
/// The default bound of one sleep.
pub const DEFAULT_SLEEP_MAX_US: u32 = 100;

#[derive(Debug, Clone)]
pub struct Backoff {
    max_us: u32,
    idle: u32,
    next_us: u32,
}

impl Backoff {
    /// `max_us` 0 turns sleeping off.
    pub fn new(max_us: u32) -> Backoff {
        Backoff {
            max_us,
            idle: 0,
            next_us: 1,
        }
    }

    /// After a pass: how long to sleep now, if at all.
    #[inline]
    pub fn after_pass(&mut self, busy: bool) -> Option<Duration> {
        if busy || self.max_us == 0 {
            self.idle = 0;
            self.next_us = 1;
            return None;
        }
        self.idle = self.idle.saturating_add(1);
        if self.idle < IDLE_PASSES {
            return None;
        }
        let us = self.next_us;
        self.next_us = (self.next_us * 2).min(self.max_us);
        Some(Duration::from_micros(u64::from(us)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_grow_to_the_bound_and_work_resets_them() {
        let mut b = Backoff::new(100);
        for _ in 1..IDLE_PASSES {
            assert_eq!(b.after_pass(false), None);
        }
        let sleeps: Vec<u64> = (0..10)
            .map(|_| b.after_pass(false).unwrap().as_micros() as u64)
            .collect();
        assert_eq!(sleeps, [1, 2, 4, 8, 16, 32, 64, 100, 100, 100]);
        assert_eq!(b.after_pass(true), None);
        assert_eq!(
            b.after_pass(false),
            None,
            "a busy pass starts the count again"
        );
        let mut off = Backoff::new(0);
        assert!((0..1000).all(|_| off.after_pass(false).is_none()));
    }
}
