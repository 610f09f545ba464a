//! keepalived's health semantics, pure: a checker's up/down state from its results, a real
//! server's life from its checkers, and a virtual server's server set from its live servers
//! (inhibit_on_failure, quorum with hysteresis, sorry server). No I/O, no clock.

use crate::keepalived::{RealServer, VirtualServer};
use std::time::Duration;

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Up,
    Down(String),
    /// MISC_CHECK with misc_dynamic: up, with this weight.
    UpWithWeight(u32),
}

/// A checker's state: up until `retry + 1` consecutive failures, then down until one
/// success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerState {
    pub up: bool,
    pub failures: u32,
    pub retry: u32,
    /// From misc_dynamic.
    pub weight: Option<u32>,
    pub last_error: Option<String>,
}

/// What the checker loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// The state changed (up <-> down).
    pub changed: bool,
    /// Wait before the next probe: delay_before_retry while retrying, else delay_loop.
    pub wait: Duration,
}

impl CheckerState {
    pub fn new(retry: u32, up: bool) -> CheckerState {
        CheckerState {
            up,
            failures: 0,
            retry,
            weight: None,
            last_error: None,
        }
    }

    /// Takes a probe's outcome.
    pub fn record(
        &mut self,
        o: Outcome,
        delay_loop: Duration,
        delay_before_retry: Duration,
    ) -> Next {
        let was = self.up;
        match o {
            Outcome::Up | Outcome::UpWithWeight(_) => {
                self.failures = 0;
                self.up = true;
                self.last_error = None;
                if let Outcome::UpWithWeight(w) = o {
                    self.weight = Some(w);
                }
                Next {
                    changed: !was,
                    wait: delay_loop,
                }
            }
            Outcome::Down(why) => {
                self.last_error = Some(why);
                if !self.up {
                    return Next {
                        changed: false,
                        wait: delay_loop,
                    };
                }
                self.failures += 1;
                if self.failures > self.retry {
                    self.up = false;
                    self.failures = 0;
                    Next {
                        changed: true,
                        wait: delay_loop,
                    }
                } else {
                    Next {
                        changed: false,
                        wait: delay_before_retry,
                    }
                }
            }
        }
    }
}

/// A real server's part in its service: alive only while every checker is up (a server
/// without checkers is always alive); weight from misc_dynamic if a checker set one.
pub fn server_alive(checkers: &[CheckerState]) -> bool {
    checkers.iter().all(|c| c.up)
}

/// The servers a virtual service should list, as keepalived keeps them in IPVS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSet {
    /// (server index, weight): live servers at their weight, inhibit_on_failure ones out
    /// of service at weight 0.
    pub servers: Vec<(usize, u32)>,
    /// The sorry server's weight when it is listed: 1 while it serves (quorum lost), 0
    /// while it waits with sorry_server_inhibit.
    pub sorry: Option<u32>,
}

/// Quorum state carried between evaluations (hysteresis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    pub up: bool,
    /// The live servers' weight at the last evaluation (keepalived's weight_sum).
    pub weight: u64,
}

/// The server set for `vs` given each real server's state (alive, dynamic weight), as
/// keepalived 2.2 programs IPVS: a dead server is left out, or kept at weight 0 with
/// inhibit_on_failure. Quorum: the sum of live weights must reach `quorum + hysteresis` to
/// come up and stay at `quorum - hysteresis` or more to stay up. While it is down and a
/// sorry server exists, the sorry server serves alone: the inhibit_on_failure servers stay
/// listed at weight 0, the others leave. A sorry server with sorry_server_inhibit is listed
/// at weight 0 while it does not serve (unless it is one of the real servers).
pub fn server_set(vs: &VirtualServer, states: &[(bool, Option<u32>)], q: &mut Quorum) -> ServerSet {
    let weight_of = |rs: &RealServer, dynamic: Option<u32>| dynamic.unwrap_or(rs.weight);
    let live: u64 = vs
        .real_servers
        .iter()
        .zip(states)
        .filter(|(_, s)| s.0)
        .map(|(rs, s)| u64::from(weight_of(rs, s.1)))
        .sum();
    q.weight = live;
    let quorum = u64::from(vs.quorum);
    let hysteresis = u64::from(vs.hysteresis);
    q.up = if q.up {
        live + hysteresis >= quorum
    } else {
        live >= quorum + hysteresis
    };
    let sorry_serves = !q.up && vs.sorry_server.is_some();
    let mut servers = Vec::new();
    for (i, (rs, s)) in vs.real_servers.iter().zip(states).enumerate() {
        if s.0 && !sorry_serves {
            servers.push((i, weight_of(rs, s.1)));
        } else if rs.inhibit_on_failure {
            servers.push((i, 0));
        }
    }
    let is_real_server = |(addr, port): (std::net::IpAddr, u16)| {
        vs.real_servers
            .iter()
            .any(|rs| rs.addr == addr && rs.port == port)
    };
    let sorry = match vs.sorry_server {
        Some(_) if sorry_serves => Some(1),
        Some(s) if vs.sorry_server_inhibit && !is_real_server(s) => Some(0),
        _ => None,
    };
    ServerSet { servers, sorry }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::KeepalivedConf;

    const LOOP: Duration = Duration::from_secs(10);
    const RETRY: Duration = Duration::from_secs(2);

    #[test]
    fn up_server_goes_down_after_retry_plus_one_failures() {
        let mut c = CheckerState::new(2, true);
        let down = || Outcome::Down("refused".into());
        assert_eq!(
            c.record(down(), LOOP, RETRY),
            Next {
                changed: false,
                wait: RETRY
            }
        );
        assert_eq!(
            c.record(down(), LOOP, RETRY),
            Next {
                changed: false,
                wait: RETRY
            }
        );
        assert_eq!(
            c.record(down(), LOOP, RETRY),
            Next {
                changed: true,
                wait: LOOP
            }
        );
        assert!(!c.up);
        assert_eq!(
            c.record(down(), LOOP, RETRY),
            Next {
                changed: false,
                wait: LOOP
            }
        );
        assert_eq!(
            c.record(Outcome::Up, LOOP, RETRY),
            Next {
                changed: true,
                wait: LOOP
            }
        );
        assert!(c.up);
        // A success in between resets the count.
        c.record(down(), LOOP, RETRY);
        c.record(Outcome::Up, LOOP, RETRY);
        c.record(down(), LOOP, RETRY);
        c.record(down(), LOOP, RETRY);
        assert!(c.up);
    }

    #[test]
    fn retry_zero_goes_down_at_once_and_dynamic_weight_sticks() {
        let mut c = CheckerState::new(0, true);
        assert!(c.record(Outcome::Down("x".into()), LOOP, RETRY).changed);
        assert!(c.record(Outcome::UpWithWeight(7), LOOP, RETRY).changed);
        assert_eq!(c.weight, Some(7));
    }

    fn vs(extra: &str) -> VirtualServer {
        let text = format!(
            "virtual_server 10.0.0.1 80 {{\n{extra}\nreal_server 10.0.1.1 80 {{\nweight 2\n}}\nreal_server 10.0.1.2 80 {{\nweight 1\ninhibit_on_failure\n}}\n}}\n"
        );
        KeepalivedConf::parse("t", &text)
            .unwrap()
            .virtual_servers
            .remove(0)
    }

    #[test]
    fn dead_servers_leave_or_are_inhibited() {
        let v = vs("");
        let mut q = Quorum {
            up: true,
            weight: 0,
        };
        let listed = |servers: Vec<(usize, u32)>| ServerSet {
            servers,
            sorry: None,
        };
        assert_eq!(
            server_set(&v, &[(true, None), (true, None)], &mut q),
            listed(vec![(0, 2), (1, 1)])
        );
        assert_eq!(
            server_set(&v, &[(false, None), (false, None)], &mut q),
            listed(vec![(1, 0)])
        );
        assert_eq!(
            server_set(&v, &[(true, Some(9)), (true, None)], &mut q),
            listed(vec![(0, 9), (1, 1)])
        );
    }

    #[test]
    fn quorum_with_hysteresis_switches_to_the_sorry_server_and_back() {
        let v = vs("quorum 3\nhysteresis 1\nsorry_server 127.0.0.1 80");
        let mut q = Quorum {
            up: true,
            weight: 0,
        };
        let both = [(true, None), (true, None)];
        let first = [(true, None), (false, None)];
        let none = [(false, None), (false, None)];
        let serves = |set: ServerSet| set.sorry == Some(1);
        assert!(!serves(server_set(&v, &both, &mut q)));
        // 2 live + hysteresis 1 >= 3: still up.
        assert!(!serves(server_set(&v, &first, &mut q)));
        // Down: the sorry server alone, the inhibit_on_failure server kept at weight 0.
        let sorry_alone = ServerSet {
            servers: vec![(1, 0)],
            sorry: Some(1),
        };
        assert_eq!(server_set(&v, &none, &mut q), sorry_alone);
        // Back only at quorum + hysteresis = 4 live weight: 3 is not enough.
        assert_eq!(server_set(&v, &both, &mut q), sorry_alone);
        assert!(!serves(server_set(
            &v,
            &[(true, Some(3)), (true, None)],
            &mut q
        )));
    }

    #[test]
    fn an_inhibited_sorry_server_waits_at_weight_zero() {
        let v = vs("quorum 3\nsorry_server 127.0.0.1 80\nsorry_server_inhibit");
        let mut q = Quorum {
            up: true,
            weight: 0,
        };
        let both = [(true, Some(2)), (true, None)];
        assert_eq!(
            server_set(&v, &both, &mut q),
            ServerSet {
                servers: vec![(0, 2), (1, 1)],
                sorry: Some(0)
            }
        );
        assert_eq!(server_set(&v, &[(false, None); 2], &mut q).sorry, Some(1));
        // A sorry server that is one of the real servers is listed as that server.
        let same = vs("sorry_server 10.0.1.1 80\nsorry_server_inhibit");
        assert_eq!(server_set(&same, &both, &mut q).sorry, None);
    }
}
