//! A worker's changes to the servers' shared connection counts, held until the end of its
//! burst and then applied as one atomic step per server: a burst of new connections to a
//! few servers changes each server's shared cache line once, not two or three times a
//! connection (a bind and the move to active, later an unbind). The worker's own scheduler
//! sees its held changes at once (added in the scheduler's view); other workers see them a
//! burst later, as they would see a connection opened on another CPU a moment later under
//! IPVS. Servers with connection thresholds are counted at once: their overload flag is
//! judged connection by connection, as IPVS judges it.

use super::DestLoad;

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    active: i32,
    inactive: i32,
    /// A connection went (the overload flag is judged as an unbind would).
    removed: bool,
    /// On the touched list.
    listed: bool,
}

/// Held changes by server id; empty (the default) counts every change at once.
#[derive(Debug, Default)]
pub struct PendingLoads {
    held: Vec<Held>,
    touched: Vec<u32>,
}

impl PendingLoads {
    /// Holds changes for servers `0..servers` (allocated here, never on a packet's path).
    pub fn new(servers: usize) -> PendingLoads {
        PendingLoads {
            held: vec![Held::default(); servers],
            touched: Vec::with_capacity(servers),
        }
    }

    /// Where a change to `load` (server `id`) is held; None: count it at once. A server
    /// with changes held this pass keeps them together even if thresholds were set since
    /// (an unbind counted at once could find its connection's bind still held).
    #[inline]
    fn hold(&mut self, load: &DestLoad, id: usize) -> Option<&mut Held> {
        let h = self.held.get_mut(id)?;
        if !h.listed {
            if load.has_thresholds() {
                return None;
            }
            h.listed = true;
            self.touched.push(id as u32);
        }
        Some(h)
    }

    /// A connection opened on server `id`, counted active or inactive.
    #[inline]
    pub fn open(&mut self, loads: &[DestLoad], id: usize, active: bool) {
        let Some(load) = loads.get(id) else { return };
        match self.hold(load, id) {
            Some(h) if active => h.active += 1,
            Some(h) => h.inactive += 1,
            None => {
                load.bind();
                if active {
                    load.set_active(true);
                }
            }
        }
    }

    /// A connection on server `id` moved between active and inactive.
    #[inline]
    pub fn moved(&mut self, loads: &[DestLoad], id: usize, was_active: bool, is_active: bool) {
        if was_active == is_active {
            return;
        }
        let Some(load) = loads.get(id) else { return };
        let step = if is_active { 1 } else { -1 };
        match self.hold(load, id) {
            Some(h) => {
                h.active += step;
                h.inactive -= step;
            }
            None => load.set_active(is_active),
        }
    }

    /// A connection on server `id` went, counted active or not.
    #[inline]
    pub fn closed(&mut self, loads: &[DestLoad], id: usize, was_active: bool) {
        let Some(load) = loads.get(id) else { return };
        match self.hold(load, id) {
            Some(h) => {
                if was_active {
                    h.active -= 1;
                } else {
                    h.inactive -= 1;
                }
                h.removed = true;
            }
            None => load.unbind(was_active),
        }
    }

    /// The held change of server `id`'s active and inactive counts.
    #[inline]
    pub fn held(&self, id: usize) -> (i64, i64) {
        self.held
            .get(id)
            .map_or((0, 0), |h| (i64::from(h.active), i64::from(h.inactive)))
    }

    /// Applies every held change (the end of a burst).
    pub fn flush(&mut self, loads: &[DestLoad]) {
        for id in self.touched.drain(..) {
            let Some(h) = self.held.get_mut(id as usize) else {
                continue;
            };
            let h = std::mem::take(h);
            if let Some(load) = loads.get(id as usize) {
                if h.active != 0 || h.inactive != 0 || h.removed {
                    load.apply(h.active, h.inactive, h.removed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::Thresholds;

    fn loads(n: usize) -> Vec<DestLoad> {
        (0..n).map(|_| DestLoad::default()).collect()
    }

    fn counts(l: &DestLoad) -> (u32, u32) {
        (l.active(), l.inactive())
    }

    #[test]
    fn held_changes_reach_the_shared_counts_at_the_flush() {
        let l = loads(3);
        let mut p = PendingLoads::new(3);
        p.open(&l, 0, false);
        p.open(&l, 0, true);
        p.moved(&l, 0, false, true);
        p.open(&l, 2, false);
        assert_eq!(counts(&l[0]), (0, 0), "held");
        assert_eq!(p.held(0), (2, 0));
        assert_eq!(p.held(2), (0, 1));
        p.flush(&l);
        assert_eq!(
            (counts(&l[0]), counts(&l[1]), counts(&l[2])),
            ((2, 0), (0, 0), (0, 1))
        );
        assert_eq!(p.held(0), (0, 0), "nothing held after the flush");
        p.closed(&l, 0, true);
        p.moved(&l, 0, true, false);
        p.closed(&l, 2, false);
        p.flush(&l);
        assert_eq!((counts(&l[0]), counts(&l[2])), ((0, 1), (0, 0)));
        // A second flush changes nothing.
        p.flush(&l);
        assert_eq!(counts(&l[0]), (0, 1));
    }

    #[test]
    fn without_holding_or_with_thresholds_changes_count_at_once() {
        let l = loads(2);
        let mut at_once = PendingLoads::default();
        at_once.open(&l, 0, true);
        assert_eq!(counts(&l[0]), (1, 0));
        at_once.closed(&l, 0, true);
        assert_eq!(counts(&l[0]), (0, 0));

        let mut p = PendingLoads::new(2);
        l[1].set_thresholds(Thresholds { upper: 2, lower: 0 });
        p.open(&l, 1, false);
        p.open(&l, 1, true);
        assert_eq!(counts(&l[1]), (1, 1));
        assert!(l[1].overloaded(), "judged at the second connection");
        p.closed(&l, 1, false);
        assert!(!l[1].overloaded(), "1 < 3/4 of 2");
        assert_eq!(p.held(1), (0, 0));
    }

    #[test]
    fn thresholds_set_within_a_pass_leave_its_held_changes_together() {
        let l = loads(1);
        let mut p = PendingLoads::new(1);
        p.open(&l, 0, true);
        l[0].set_thresholds(Thresholds {
            upper: 10,
            lower: 0,
        });
        p.closed(&l, 0, true);
        p.flush(&l);
        assert_eq!(counts(&l[0]), (0, 0), "no count left behind");
        p.open(&l, 0, true);
        assert_eq!(counts(&l[0]), (1, 0), "the next pass counts at once");
    }

    #[test]
    fn a_removal_clears_the_flag_at_the_flush() {
        let l = loads(1);
        let mut p = PendingLoads::new(1);
        l[0].bind();
        l[0].set_overloaded(true);
        p.closed(&l, 0, false);
        assert!(l[0].overloaded());
        p.flush(&l);
        assert!(!l[0].overloaded());
        assert_eq!(counts(&l[0]), (0, 0));
    }

    #[test]
    fn ids_beyond_the_servers_are_ignored() {
        let l = loads(1);
        let mut p = PendingLoads::new(1);
        p.open(&l, 5, true);
        p.closed(&l, 5, true);
        p.flush(&l);
        assert_eq!(counts(&l[0]), (0, 0));
    }
}
