//! One BFD session's state machine and timers (RFC 5880 section 6.8), as keepalived's BFD
//! process runs it: asynchronous mode, no echo, no demand mode of its own; the time is
//! given, so it is tested without sockets.

use super::packet::{BfdState, Control, DIAG_EXPIRED, DIAG_NEIGHBOR_DOWN};
use super::BfdInstance;
use crate::log::Level;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Session {
    pub conf: BfdInstance,
    pub local: BfdState,
    pub remote: BfdState,
    pub local_discr: u32,
    pub remote_discr: u32,
    pub local_diag: u8,
    pub remote_diag: u8,
    remote_min_rx: u32,
    remote_min_tx: u32,
    remote_mult: u8,
    remote_demand: bool,
    poll: bool,
    final_: bool,
    /// The interval packets leave at (microseconds).
    pub tx_interval: u32,
    remote_tx_interval: u32,
    /// The time without a packet after which the session is down (microseconds).
    pub detect_time: u64,
    next_tx: Option<Instant>,
    expire_at: Option<Instant>,
    reset_at: Option<Instant>,
    send_now: Option<Instant>,
    last_seen: Option<Instant>,
    /// The tracking event last sent: true after Up, false after a fall (not one the
    /// neighbour asked for with AdminDown) and at the start.
    pub tracked_up: bool,
    /// Times it came Up; packets received (valid, of this session) and sent.
    pub ups: u64,
    pub received: u64,
    pub sent: u64,
    /// What happened, in keepalived's words, for the log (with its level).
    pub said: Vec<(Level, String)>,
}

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

impl Session {
    /// A new session in Down (keepalived's bfd_init_state); not passive ones send at once.
    pub fn new(conf: BfdInstance, discr: u32, now: Instant) -> Session {
        let mut s = Session {
            local: BfdState::Down,
            remote: BfdState::Down,
            local_discr: discr,
            remote_discr: 0,
            local_diag: 0,
            remote_diag: 0,
            remote_min_rx: 0,
            remote_min_tx: 0,
            remote_mult: 0,
            remote_demand: false,
            poll: false,
            final_: false,
            tx_interval: conf.idle_tx,
            remote_tx_interval: 0,
            detect_time: 0,
            next_tx: None,
            expire_at: None,
            reset_at: None,
            send_now: None,
            last_seen: None,
            tracked_up: false,
            ups: 0,
            received: 0,
            sent: 0,
            said: Vec::new(),
            conf,
        };
        if !s.conf.passive {
            s.schedule_tx(now);
            s.send_now = Some(now);
        }
        s
    }

    /// A reload's session of the same name: the state carries over, and changed timers
    /// start a poll sequence (keepalived's bfd_complete_init).
    pub fn carry(mut self, conf: BfdInstance) -> Session {
        let timers_moved = (conf.min_rx, conf.min_tx, conf.idle_tx, conf.multiplier)
            != (
                self.conf.min_rx,
                self.conf.min_tx,
                self.conf.idle_tx,
                self.conf.multiplier,
            );
        self.conf = conf;
        if timers_moved {
            self.set_poll();
        }
        self
    }

    /// The socket to the neighbour cannot be opened: the session stays AdminDown, silent.
    pub fn admin_down(&mut self) {
        self.local = BfdState::AdminDown;
        self.local_diag = 7;
        self.next_tx = None;
        self.send_now = None;
        self.said.push((
            Level::Warning,
            format!("({}) Entering AdminDown state", self.conf.name),
        ));
        self.fall(false);
    }

    /// The socket opened after all: Down, sending unless passive.
    pub fn enable(&mut self, now: Instant) {
        if self.local == BfdState::AdminDown {
            self.local = BfdState::Down;
            if !self.conf.passive {
                self.schedule_tx(now);
            }
        }
    }

    fn jitter(&self) -> u32 {
        // RFC 5880 6.8.7: reduced by up to 25% (keepalived: by 10 to 25%).
        let (lo, hi) = (self.tx_interval / 10, self.tx_interval / 4);
        lo + rand::random::<u32>() % (hi - lo + 1)
    }

    fn schedule_tx(&mut self, now: Instant) {
        let us = self.tx_interval - self.jitter();
        self.next_tx = Some(now + micros(u64::from(us)));
    }

    fn set_poll(&mut self) {
        if !self.final_ {
            self.poll = true;
        }
    }

    fn update_tx_interval(&mut self) {
        self.tx_interval = self.conf.min_tx.max(self.remote_min_rx);
    }

    fn idle_tx_interval(&mut self) {
        self.tx_interval = self.conf.idle_tx.max(self.remote_min_rx);
    }

    fn fall(&mut self, send_event: bool) {
        self.idle_tx_interval();
        self.expire_at = None;
        if send_event && self.remote != BfdState::AdminDown {
            self.tracked_up = false;
        }
    }

    fn down(&mut self, diag: u8, now: Instant) {
        let was = self.local;
        if was == BfdState::Up {
            self.said.push((
                Level::Warning,
                format!(
                    "({}) Entering Down state (Local diagnostic - {}, Remote diagnostic - {})",
                    self.conf.name,
                    super::packet::diag_name(diag),
                    super::packet::diag_name(self.remote_diag)
                ),
            ));
        }
        self.local = BfdState::Down;
        self.local_diag = diag;
        self.reset_at = Some(now + micros(self.detect_time));
        if self.conf.passive {
            self.next_tx = None;
        }
        self.fall(was == BfdState::Up);
    }

    fn rise(&mut self, now: Instant) {
        self.local_diag = 0;
        if self.local == BfdState::Up {
            self.said.push((
                Level::Info,
                format!("({}) Entering Up state", self.conf.name),
            ));
        }
        self.reset_at = None;
        if self.expire_at.is_none() {
            self.expire_at = Some(now + micros(self.detect_time));
        }
    }

    fn up(&mut self, now: Instant) {
        self.local = BfdState::Up;
        self.rise(now);
        if self.conf.idle_tx != self.conf.min_tx {
            self.set_poll();
        }
        self.tracked_up = true;
        self.ups += 1;
    }

    fn init(&mut self, now: Instant) {
        self.local = BfdState::Init;
        self.rise(now);
        if self.conf.passive && self.next_tx.is_none() {
            self.schedule_tx(now);
        }
    }

    /// A valid packet of this session (found and TTL-checked by the caller).
    pub fn receive(&mut self, c: &Control, now: Instant) {
        if self.local == BfdState::AdminDown {
            return;
        }
        self.received += 1;
        let old_tx = self.tx_interval;
        let old_detect = self.detect_time;
        self.remote_discr = c.my_discr;
        self.remote = c.state;
        self.remote_diag = c.diag;
        self.remote_min_rx = c.min_rx;
        self.remote_min_tx = c.min_tx;
        self.remote_demand = c.demand;
        self.remote_mult = c.detect_mult;
        if c.final_ {
            self.poll = false;
        }
        if self.local != BfdState::Up || c.poll || c.final_ {
            if self.remote == BfdState::Up && matches!(self.local, BfdState::Init | BfdState::Up) {
                self.update_tx_interval();
            } else {
                self.idle_tx_interval();
            }
            self.remote_tx_interval = self.conf.min_rx.max(self.remote_min_tx);
        }
        self.detect_time = u64::from(self.remote_mult) * u64::from(self.remote_tx_interval);
        if self.tx_interval < old_tx && self.next_tx.is_some() {
            self.schedule_tx(now);
        }
        if self.detect_time != old_detect {
            self.said.push((
                Level::Info,
                format!(
                    "({}) Detection time is {} us (was {} us)",
                    self.conf.name, self.detect_time, old_detect
                ),
            ));
        }
        match (self.local, self.remote) {
            (l, BfdState::AdminDown) if l != BfdState::Down => self.down(DIAG_NEIGHBOR_DOWN, now),
            (_, BfdState::AdminDown) => {}
            (BfdState::Down, BfdState::Down) => self.init(now),
            (BfdState::Down, BfdState::Init) | (BfdState::Init, BfdState::Init | BfdState::Up) => {
                self.up(now)
            }
            (BfdState::Up, BfdState::Down) => self.down(DIAG_NEIGHBOR_DOWN, now),
            _ => {}
        }
        let both_up = self.local == BfdState::Up && self.remote == BfdState::Up;
        if self.remote_demand && both_up {
            self.next_tx = None;
        } else if self.next_tx.is_none() {
            self.schedule_tx(now);
        }
        if c.poll {
            self.final_ = true;
            self.send_now = Some(now);
        }
        self.last_seen = Some(now);
        if self.local == BfdState::Up && self.expire_at.is_some() {
            self.expire_at = Some(now + micros(self.detect_time));
        }
    }

    /// The earliest time `tick` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        [self.send_now, self.next_tx, self.expire_at, self.reset_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now`; returns the packet to send, if one is due.
    pub fn tick(&mut self, now: Instant) -> Option<Control> {
        if self.expire_at.is_some_and(|t| t <= now) {
            self.expire_at = None;
            let dead = self
                .last_seen
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            if self.local == BfdState::Up {
                self.said.push((
                    Level::Warning,
                    format!(
                        "({}) Expired after {} ms ({} usec overdue)",
                        self.conf.name,
                        dead.as_millis(),
                        (dead.as_micros() as u64).saturating_sub(self.detect_time)
                    ),
                ));
            }
            self.remote_discr = 0;
            self.down(DIAG_EXPIRED, now);
        }
        if self.reset_at.is_some_and(|t| t <= now) {
            // keepalived's bfd_reset_state: what the neighbour told is forgotten.
            self.reset_at = None;
            self.remote = BfdState::Down;
            self.remote_discr = 0;
            self.remote_diag = 0;
            self.remote_demand = false;
            self.poll = false;
            self.final_ = false;
            self.idle_tx_interval();
        }
        if self.local == BfdState::AdminDown {
            // Silent: nothing is due (a pending packet included).
            self.send_now = None;
            return None;
        }
        let timed = self.next_tx.is_some_and(|t| t <= now);
        if !(timed || self.send_now.is_some()) {
            return None;
        }
        self.send_now = None;
        if self.poll && self.final_ {
            self.poll = false;
        }
        let c = Control {
            diag: self.local_diag,
            state: self.local,
            poll: self.poll,
            final_: self.final_,
            demand: false,
            detect_mult: self.conf.multiplier,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            min_tx: if self.local == BfdState::Up {
                self.conf.min_tx
            } else {
                self.conf.idle_tx
            },
            min_rx: self.conf.min_rx,
        };
        self.final_ = false;
        if timed {
            self.schedule_tx(now);
        }
        self.sent += 1;
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(passive: bool) -> BfdInstance {
        BfdInstance {
            passive,
            ..BfdInstance::new("b", "10.0.0.2".parse().unwrap())
        }
    }

    fn peer(state: BfdState, my: u32, your: u32) -> Control {
        Control {
            diag: 0,
            state,
            poll: false,
            final_: false,
            demand: false,
            detect_mult: 3,
            my_discr: my,
            your_discr: your,
            // As keepalived: the idle second until Up.
            min_tx: if state == BfdState::Up {
                20_000
            } else {
                1_000_000
            },
            min_rx: 30_000,
        }
    }

    #[test]
    fn a_session_comes_up_through_the_three_way_handshake_and_expires() {
        let t0 = Instant::now();
        let mut s = Session::new(conf(false), 7, t0);
        // Sent at once, Down, idle interval advertised.
        let first = s.tick(t0).expect("a packet at start");
        assert_eq!(
            (first.state, first.my_discr, first.your_discr),
            (BfdState::Down, 7, 0)
        );
        assert_eq!(
            (first.min_tx, first.min_rx, first.detect_mult),
            (1_000_000, 10_000, 5)
        );
        // The next one between 75% and 90% of the idle second.
        let next = s.deadline().unwrap() - t0;
        assert!(
            next >= Duration::from_millis(750) && next <= Duration::from_millis(900),
            "{next:?}"
        );
        s.receive(&peer(BfdState::Down, 99, 0), t0);
        assert_eq!(s.local, BfdState::Init);
        assert!(!s.tracked_up);
        let t1 = t0 + Duration::from_millis(5);
        s.receive(&peer(BfdState::Init, 99, 7), t1);
        assert_eq!(s.local, BfdState::Up);
        assert!(s.tracked_up);
        assert_eq!(s.ups, 1);
        // Up with the neighbour Init: still the idle interval until it says Up.
        s.receive(&peer(BfdState::Up, 99, 7), t1);
        // Its poll (min_tx differs from idle_tx) then the neighbour's final: the fast rate.
        let poll = s.tick(s.deadline().unwrap()).unwrap();
        assert!(poll.poll && poll.state == BfdState::Up && poll.min_tx == 10_000);
        let mut fin = peer(BfdState::Up, 99, 7);
        fin.final_ = true;
        s.receive(&fin, t1);
        assert_eq!(
            s.tx_interval, 30_000,
            "the neighbour's min_rx is the larger"
        );
        assert_eq!(
            s.detect_time,
            3 * 20_000,
            "its multiplier times its (larger) min_tx"
        );
        assert_eq!(
            (s.sent, s.received),
            (2, 4),
            "the first packet and the poll; four heard"
        );
        // Silence for the detection time: Down, Control Detection Time Expired.
        let t2 = t1 + Duration::from_millis(61);
        while let Some(d) = s.deadline().filter(|d| *d <= t2) {
            s.tick(d.max(t1));
        }
        s.tick(t2);
        assert_eq!(
            (s.local, s.local_diag, s.remote_discr),
            (BfdState::Down, 1, 0)
        );
        assert!(!s.tracked_up);
        assert!(
            s.said
                .iter()
                .any(|(_, l)| l == "(b) Expired after 60 ms (0 usec overdue)"),
            "{:?}",
            s.said
        );
    }

    #[test]
    fn admin_down_from_the_neighbour_is_no_failure_to_trackers() {
        let t0 = Instant::now();
        let mut s = Session::new(conf(false), 7, t0);
        s.receive(&peer(BfdState::Init, 99, 7), t0);
        assert!(s.tracked_up);
        s.receive(&peer(BfdState::AdminDown, 99, 7), t0);
        assert_eq!((s.local, s.local_diag), (BfdState::Down, 3));
        assert!(
            s.tracked_up,
            "keepalived sends no event for the neighbour's AdminDown"
        );
        s.receive(&peer(BfdState::Down, 99, 7), t0);
        assert_eq!(s.local, BfdState::Init);
        s.receive(&peer(BfdState::Up, 99, 7), t0);
        s.receive(&peer(BfdState::Down, 99, 7), t0);
        assert_eq!((s.local, s.local_diag), (BfdState::Down, 3));
        assert!(!s.tracked_up, "the neighbour's Down is a failure");
    }

    /// Without its socket a session is AdminDown and silent: nothing falls due (a runner
    /// would spin on a deadline in the past), packets change nothing; enabled, it sends.
    #[test]
    fn an_admin_down_session_is_silent_until_enabled() {
        let t0 = Instant::now();
        let mut s = Session::new(conf(false), 7, t0);
        s.admin_down();
        assert_eq!(s.deadline(), None);
        assert!(s.tick(t0).is_none());
        s.receive(&peer(BfdState::Down, 99, 0), t0);
        assert_eq!(s.local, BfdState::AdminDown);
        s.enable(t0);
        assert_eq!(s.local, BfdState::Down);
        let next = s.deadline().expect("sending again");
        assert!(s.tick(next).is_some());
    }

    #[test]
    fn a_passive_session_waits_to_be_spoken_to_and_answers_polls_at_once() {
        let t0 = Instant::now();
        let mut s = Session::new(conf(true), 7, t0);
        assert_eq!(s.deadline(), None, "passive: silent");
        let mut p = peer(BfdState::Down, 99, 0);
        p.poll = true;
        s.receive(&p, t0);
        assert_eq!(s.local, BfdState::Init);
        let answer = s.tick(t0).expect("the final at once");
        assert!(answer.final_ && !answer.poll);
        assert_eq!(answer.your_discr, 99);
        assert!(s.tick(t0).is_none());
        assert!(s.deadline().is_some(), "then at its rate");
    }
}
