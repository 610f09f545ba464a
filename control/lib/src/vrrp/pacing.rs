//! keepalived's pacing of gratuitous ARPs and unsolicited neighbour advertisements
//! (global_defs' `vrrp_garp_interval` / `vrrp_gna_interval`, `garp_group`): on an interface
//! (or the interfaces of one `garp_group`, which share it) two of a kind leave at least the
//! interval apart. One that may not leave yet is noted pending, once per address, as
//! keepalived notes it: a burst's repeats for an address already waiting add nothing. The
//! pending ones leave in order as the interval allows, while their instance is MASTER.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// ARPs (IPv4) or neighbour advertisements (IPv6).
fn kind(a: IpAddr) -> usize {
    usize::from(a.is_ipv6())
}

#[derive(Debug, Clone, Default)]
pub struct Pacer {
    /// The least time between two gratuitous ARPs, and between two unsolicited NAs (zero:
    /// no pacing).
    interval: [Duration; 2],
    /// When the next of each kind may leave.
    next: [Option<Instant>; 2],
    /// Waiting: the instance (its index) and the address.
    pending: VecDeque<(usize, IpAddr)>,
}

impl Pacer {
    pub fn new(garp_interval: Duration, gna_interval: Duration) -> Pacer {
        Pacer {
            interval: [garp_interval, gna_interval],
            ..Pacer::default()
        }
    }

    /// Whether one for `addr` (of instance `inst`) may leave now; if not, it is noted
    /// pending (once).
    pub fn may_send(&mut self, inst: usize, addr: IpAddr, now: Instant) -> bool {
        let k = kind(addr);
        if self.interval[k].is_zero() {
            return true;
        }
        if self.next[k].is_some_and(|t| now < t) {
            if !self.pending.contains(&(inst, addr)) {
                self.pending.push_back((inst, addr));
            }
            return false;
        }
        self.next[k] = Some(now + self.interval[k]);
        true
    }

    /// The pending ones that may leave now, in order, at most one of each kind (the
    /// interval then runs again); the others wait.
    pub fn due(&mut self, now: Instant) -> Vec<(usize, IpAddr)> {
        let mut out = Vec::new();
        let mut k = 0;
        while k < self.pending.len() {
            let (inst, addr) = self.pending[k];
            let kind = kind(addr);
            if self.next[kind].is_none_or(|t| now >= t) {
                self.next[kind] = Some(now + self.interval[kind]);
                out.push((inst, addr));
                self.pending.remove(k);
            } else {
                k += 1;
            }
        }
        out
    }

    /// When the first pending one may leave (None: nothing waits).
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .filter_map(|(_, a)| self.next[kind(*a)])
            .min()
    }

    /// Drops what instance `inst` has waiting (it left MASTER).
    pub fn forget(&mut self, inst: usize) {
        self.pending.retain(|(i, _)| *i != inst);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// A burst of 3 repeats for two IPv4 addresses and one IPv6 with 100 ms between ARPs
    /// and 50 ms between NAs: the first of each kind at once, the repeats of an address
    /// already waiting add nothing, the rest leave one interval apart, in order.
    #[test]
    fn paced_as_keepalived_paces() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::from_millis(100), Duration::from_millis(50));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let mut sent = Vec::new();
        for _ in 0..3 {
            for addr in [a, b, c] {
                if p.may_send(0, addr, t0) {
                    sent.push(addr);
                }
            }
        }
        assert_eq!(sent, [a, c]);
        assert_eq!(p.pending(), 3, "a, b and c wait once each");
        assert_eq!(p.deadline(), Some(ms(t0, 50)));
        assert_eq!(p.due(ms(t0, 50)), [(0, c)]);
        assert_eq!(p.due(ms(t0, 99)), []);
        assert_eq!(p.due(ms(t0, 100)), [(0, b)]);
        assert_eq!(p.deadline(), Some(ms(t0, 200)));
        assert_eq!(p.due(ms(t0, 200)), [(0, a)]);
        assert_eq!((p.pending(), p.deadline()), (0, None));
        // An instance that left MASTER: its waiting ones are dropped.
        assert!(!p.may_send(1, b, ms(t0, 210)));
        p.forget(1);
        assert_eq!(p.pending(), 0);
        // No pacing: always at once.
        let mut free = Pacer::new(Duration::ZERO, Duration::ZERO);
        assert!((0..10).all(|_| free.may_send(0, a, t0)));
    }
}
