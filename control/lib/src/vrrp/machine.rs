//! One VRRP instance's state machine (RFC 5798 section 6.4, RFC 3768 for version 2), with
//! keepalived's choices: `state MASTER` starts as master, `nopreempt` and `preempt_delay`,
//! FAULT from tracking, priority 0 when leaving master. Time is passed in; no I/O, so every
//! transition is tested here.

use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
    Stop,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
            State::Stop => "STOP",
        }
    }
}

/// What the machine wants done, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority.
    Advertise(u8),
    /// The state changed to this one (take or give up the addresses, notify).
    Enter(State),
    /// A MASTER heard a lower priority (keepalived then sends `garp_lower_prio_repeat`
    /// gratuitous ARPs, and again after `garp_lower_prio_delay`).
    HeardLower,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub priority: u8,
    pub advert_cs: u16,
    pub version: u8,
    pub initial_master: bool,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// The address adverts leave from: the tie-breaker on equal priority.
    pub own_addr: IpAddr,
    /// keepalived's `lower_prio_no_advert`: a MASTER hearing a lower priority stays
    /// silent (RFC 3768/5798) instead of advertising at once (keepalived's default, which
    /// ends a split brain sooner).
    pub lower_prio_no_advert: bool,
    /// keepalived's `higher_prio_send_advert`: a MASTER hearing a higher priority
    /// advertises its own once more as it yields.
    pub higher_prio_send_advert: bool,
    /// keepalived's `down_timer_adverts`: the adverts missed before a BACKUP takes over
    /// (RFC 3768/5798's 3).
    pub down_timer_adverts: u8,
}

#[derive(Debug, Clone)]
pub struct Machine {
    p: Params,
    pub state: State,
    /// The priority now (tracking adds its weights to the configured one).
    pub priority: u8,
    /// The master's advertisement interval (learned from its adverts in version 3).
    pub master_adver_cs: u16,
    down_at: Option<Instant>,
    advert_at: Option<Instant>,
    started: Option<Instant>,
    /// Since when a lower-priority master has been heard (preempt_delay counts from it).
    lower_since: Option<Instant>,
    /// The master last heard (backup) and its priority.
    pub master_seen: Option<(IpAddr, u8)>,
    /// vrrp_startup_delay: until then no BACKUP timer runs out.
    hold: Option<Instant>,
}

fn cs(v: u32) -> Duration {
    Duration::from_millis(u64::from(v) * 10)
}

impl Machine {
    pub fn new(p: Params) -> Machine {
        Machine {
            priority: p.priority,
            master_adver_cs: p.advert_cs,
            p,
            state: State::Init,
            down_at: None,
            advert_at: None,
            started: None,
            lower_since: None,
            master_seen: None,
            hold: None,
        }
    }

    /// keepalived's `vrrp_startup_delay`: until `until` no BACKUP timer runs out, so an
    /// instance takes over only a Master_Down_Interval after it (a `state MASTER` one at
    /// it) unless it hears a master; adverts are heard meanwhile.
    pub fn hold_until(&mut self, until: Instant) {
        self.hold = Some(until);
    }

    /// When a BACKUP waiting `wait` from `now` times out (not before the hold's end).
    fn down_after(&self, now: Instant, wait: Duration) -> Instant {
        match self.hold {
            Some(h) if now < h => h + wait,
            _ => now + wait,
        }
    }

    pub fn params(&self) -> &Params {
        &self.p
    }

    /// Skew_Time: lower priorities wait longer.
    pub fn skew(&self) -> Duration {
        cs((256 - u32::from(self.priority)) * u32::from(self.master_adver_cs) / 256)
    }

    /// Master_Down_Interval: `down_timer_adverts` (3) advertisements missed, plus the skew.
    pub fn master_down_interval(&self) -> Duration {
        cs(u32::from(self.p.down_timer_adverts) * u32::from(self.master_adver_cs)) + self.skew()
    }

    fn advert_interval(&self) -> Duration {
        cs(u32::from(self.p.advert_cs))
    }

    /// When [`Machine::tick`] has something to do next.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Backup => self.down_at,
            State::Master => self.advert_at,
            _ => None,
        }
    }

    pub fn start(&mut self, now: Instant, fault: bool) -> Vec<Action> {
        self.started = Some(now);
        if fault {
            return self.enter_fault(false);
        }
        if self.p.initial_master || self.priority == 255 {
            match self.hold.filter(|h| now < *h) {
                // Held: BACKUP until the delay ends, then MASTER unless a master is heard.
                Some(h) => {
                    let out = self.become_backup(now);
                    self.down_at = Some(h);
                    out
                }
                None => self.become_master(now),
            }
        } else {
            self.become_backup(now)
        }
    }

    /// Goes on in `state` after a reload (keepalived keeps a matched instance's state), with
    /// no transition: a MASTER advertises at once, a BACKUP waits a Master_Down_Interval
    /// for the master it heard.
    pub fn resume(&mut self, now: Instant, state: State, master: Option<(IpAddr, u8)>) {
        self.started = Some(now);
        if state == State::Master {
            self.state = State::Master;
            self.advert_at = Some(now);
        } else {
            self.state = State::Backup;
            self.master_seen = master;
            self.down_at = Some(now + self.master_down_interval());
        }
    }

    fn become_master(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::Master;
        self.down_at = None;
        self.master_seen = None;
        self.advert_at = Some(now + self.advert_interval());
        vec![
            Action::Advertise(self.priority),
            Action::Enter(State::Master),
        ]
    }

    fn become_backup(&mut self, now: Instant) -> Vec<Action> {
        let was = self.state;
        self.state = State::Backup;
        self.advert_at = None;
        self.master_adver_cs = self.p.advert_cs;
        self.down_at = Some(self.down_after(now, self.master_down_interval()));
        if was == State::Backup {
            Vec::new()
        } else {
            vec![Action::Enter(State::Backup)]
        }
    }

    fn enter_fault(&mut self, announce_leaving: bool) -> Vec<Action> {
        let mut out = Vec::new();
        if announce_leaving && self.state == State::Master {
            out.push(Action::Advertise(0));
        }
        self.state = State::Fault;
        self.down_at = None;
        self.advert_at = None;
        out.push(Action::Enter(State::Fault));
        out
    }

    /// Timers: a backup that heard no master for Master_Down_Interval takes over; a master
    /// advertises every interval.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        match (self.state, self.deadline()) {
            (State::Backup, Some(t)) if now >= t => self.become_master(now),
            (State::Master, Some(t)) if now >= t => {
                // The next one an interval after this one, or from now after a stall.
                let next = t + self.advert_interval();
                self.advert_at = Some(if next > now {
                    next
                } else {
                    now + self.advert_interval()
                });
                vec![Action::Advertise(self.priority)]
            }
            _ => Vec::new(),
        }
    }

    /// A valid advertisement for this instance from `from` (not this box).
    pub fn advert(
        &mut self,
        now: Instant,
        from: IpAddr,
        priority: u8,
        interval_cs: u16,
    ) -> Vec<Action> {
        match self.state {
            State::Backup => {
                if priority == 0 {
                    // The master is leaving: take over after the skew only.
                    self.down_at = Some(self.down_after(now, self.skew()));
                    return Vec::new();
                }
                let lower = priority < self.priority;
                let hold_off = lower && self.p.preempt && {
                    let since = *self.lower_since.get_or_insert(now);
                    let from_start = self.started.unwrap_or(now);
                    now < from_start + self.p.preempt_delay || now < since + self.p.preempt_delay
                };
                if !self.p.preempt || !lower || hold_off {
                    if !lower {
                        self.lower_since = None;
                    }
                    if self.p.version == 3 && interval_cs > 0 {
                        self.master_adver_cs = interval_cs;
                    }
                    self.master_seen = Some((from, priority));
                    self.down_at = Some(self.down_after(now, self.master_down_interval()));
                }
                // Otherwise discarded: the timer runs out and this box preempts.
                Vec::new()
            }
            State::Master => {
                if priority == 0 {
                    self.advert_at = Some(now + self.advert_interval());
                    return vec![Action::Advertise(self.priority)];
                }
                let wins = priority > self.priority
                    || (priority == self.priority && addr_key(from) > addr_key(self.p.own_addr));
                if wins {
                    let mut out = self.become_backup(now);
                    if self.p.version == 3 && interval_cs > 0 {
                        self.master_adver_cs = interval_cs;
                        self.down_at = Some(self.down_after(now, self.master_down_interval()));
                    }
                    self.master_seen = Some((from, priority));
                    out.retain(|a| *a != Action::Advertise(0));
                    if self.p.higher_prio_send_advert {
                        out.insert(0, Action::Advertise(self.priority));
                    }
                    out
                } else if self.p.lower_prio_no_advert {
                    vec![Action::HeardLower]
                } else {
                    // keepalived: answer the lower master at once ("forcing new election").
                    self.advert_at = Some(now + self.advert_interval());
                    vec![Action::Advertise(self.priority), Action::HeardLower]
                }
            }
            _ => Vec::new(),
        }
    }

    /// The priority after tracking changed it (1-254 unless configured 255).
    pub fn set_priority(&mut self, priority: u8) {
        self.priority = priority;
    }

    /// Tracking says the instance is (or is no longer) in fault.
    pub fn set_fault(&mut self, now: Instant, fault: bool) -> Vec<Action> {
        match (fault, self.state) {
            (true, State::Backup | State::Master | State::Init) => self.enter_fault(true),
            (false, State::Fault) => self.become_backup(now),
            _ => Vec::new(),
        }
    }

    /// Its sync group moved: follow (master or backup; fault is [`Machine::set_fault`]).
    pub fn follow(&mut self, now: Instant, to: State) -> Vec<Action> {
        match (to, self.state) {
            (State::Master, State::Backup) => self.become_master(now),
            (State::Backup, State::Master) => {
                let mut out = vec![Action::Advertise(0)];
                out.extend(self.become_backup(now));
                out
            }
            _ => Vec::new(),
        }
    }

    /// keepalived's answer to one of a MASTER's addresses removed by hand: it leaves
    /// (priority 0) and, a BACKUP, takes over again after the skew alone unless a peer
    /// does first (which then puts the address back).
    pub fn step_down(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Master {
            return Vec::new();
        }
        let mut out = vec![Action::Advertise(0)];
        out.extend(self.become_backup(now));
        self.down_at = Some(now + self.skew());
        out
    }

    /// Clean shutdown: a master says priority 0 so a backup takes over at once.
    pub fn stop(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Master {
            out.push(Action::Advertise(0));
        }
        self.state = State::Stop;
        self.down_at = None;
        self.advert_at = None;
        out.push(Action::Enter(State::Stop));
        out
    }
}

/// Addresses compared as numbers (the higher primary address wins a tie).
fn addr_key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(priority: u8) -> Params {
        Params {
            priority,
            advert_cs: 100,
            version: 2,
            initial_master: false,
            preempt: true,
            preempt_delay: Duration::ZERO,
            own_addr: "10.0.0.1".parse().unwrap(),
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
            down_timer_adverts: 3,
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    const PEER: &str = "10.0.0.2";

    fn peer() -> IpAddr {
        PEER.parse().unwrap()
    }

    /// vrrp_startup_delay: no BACKUP timer runs out before the delay's end, and a
    /// `state MASTER` instance waits for it as BACKUP (keepalived's vrrp_init_instance_sands).
    #[test]
    fn a_startup_delay_holds_every_takeover() {
        let t0 = Instant::now();
        let mut b = Machine::new(params(100));
        b.hold_until(ms(t0, 5000));
        assert_eq!(b.start(t0, false), vec![Action::Enter(State::Backup)]);
        assert_eq!(b.tick(ms(t0, 3700)), Vec::new());
        // The delay, then Master_Down_Interval (3 s and a skew of 0.6 s).
        assert_eq!(b.tick(ms(t0, 8590)), Vec::new());
        assert_eq!(
            b.tick(ms(t0, 8600)),
            vec![Action::Advertise(100), Action::Enter(State::Master)]
        );
        let mut m = Machine::new(Params {
            initial_master: true,
            ..params(100)
        });
        m.hold_until(ms(t0, 5000));
        assert_eq!(m.start(t0, false), vec![Action::Enter(State::Backup)]);
        assert_eq!(m.tick(ms(t0, 4990)), Vec::new());
        assert_eq!(
            m.tick(ms(t0, 5000)),
            vec![Action::Advertise(100), Action::Enter(State::Master)]
        );
        // A master heard during the delay: its adverts keep the instance BACKUP.
        let mut h = Machine::new(Params {
            initial_master: true,
            ..params(100)
        });
        h.hold_until(ms(t0, 5000));
        h.start(t0, false);
        assert_eq!(h.advert(ms(t0, 2000), peer(), 150, 100), Vec::new());
        assert_eq!(h.tick(ms(t0, 8000)), Vec::new());
        assert_eq!(h.state, State::Backup);
        // Past the delay, timers run as usual.
        assert_eq!(h.advert(ms(t0, 9000), peer(), 150, 100), Vec::new());
        assert_eq!(h.tick(ms(t0, 12_500)), Vec::new());
        assert_eq!(h.tick(ms(t0, 12_700)).len(), 2);
    }

    /// An address removed by hand: the MASTER says priority 0, is BACKUP, and takes over
    /// again after the skew alone (150: 0.41 s), not a Master_Down_Interval; a peer's
    /// higher priority heard meanwhile keeps it BACKUP. Nothing for a BACKUP.
    #[test]
    fn a_master_steps_down_for_the_skew_alone() {
        let t0 = Instant::now();
        let mut m = Machine::new(params(150));
        m.start(t0, false);
        m.tick(ms(t0, 3000));
        assert_eq!(m.state, State::Backup, "150 waits 3.41 s");
        assert_eq!(m.tick(ms(t0, 3410)).len(), 2);
        assert_eq!(
            m.step_down(ms(t0, 4000)),
            vec![Action::Advertise(0), Action::Enter(State::Backup)]
        );
        assert_eq!(m.tick(ms(t0, 4400)), Vec::new());
        assert_eq!(
            m.tick(ms(t0, 4410)),
            vec![Action::Advertise(150), Action::Enter(State::Master)]
        );
        m.step_down(ms(t0, 5000));
        assert_eq!(m.advert(ms(t0, 5100), peer(), 200, 100), Vec::new());
        assert_eq!(m.tick(ms(t0, 5500)), Vec::new(), "the peer is heard");
        assert_eq!(m.state, State::Backup);
        assert_eq!(m.step_down(ms(t0, 5600)), Vec::new());
    }

    /// Carried over a reload: a MASTER goes on without a transition, advertising at once;
    /// a BACKUP keeps the master it heard and takes over only after a Master_Down_Interval
    /// without it (a fresh start would enter BACKUP, notify and wait again).
    #[test]
    fn a_resumed_instance_goes_on_in_its_state() {
        let t0 = Instant::now();
        let mut m = Machine::new(params(150));
        m.resume(t0, State::Master, None);
        assert_eq!(m.state, State::Master);
        assert_eq!(m.tick(t0), vec![Action::Advertise(150)]);
        assert_eq!(m.tick(ms(t0, 500)), Vec::new());
        assert_eq!(m.tick(ms(t0, 1000)), vec![Action::Advertise(150)]);

        let mut b = Machine::new(params(100));
        b.resume(t0, State::Backup, Some((peer(), 150)));
        assert_eq!(
            (b.state, b.master_seen),
            (State::Backup, Some((peer(), 150)))
        );
        // Master_Down_Interval: 3 s and a skew of (256 - 100) / 256 s.
        assert_eq!(b.tick(ms(t0, 3000)), Vec::new());
        assert_eq!(b.advert(ms(t0, 3000), peer(), 150, 100), Vec::new());
        assert_eq!(b.tick(ms(t0, 6000)), Vec::new());
        assert_eq!(
            b.tick(ms(t0, 6700)),
            vec![Action::Advertise(100), Action::Enter(State::Master)]
        );
    }

    /// A MASTER hearing a higher priority yields at once; with higher_prio_send_advert it
    /// advertises its own priority once first, as keepalived.
    #[test]
    fn a_master_yields_to_a_higher_one_advertising_once_if_told() {
        let t0 = Instant::now();
        for once in [false, true] {
            let mut m = Machine::new(Params {
                higher_prio_send_advert: once,
                initial_master: true,
                ..params(100)
            });
            m.start(t0, false);
            assert_eq!(m.state, State::Master);
            let heard = m.advert(ms(t0, 400), peer(), 150, 100);
            let expected = if once {
                vec![Action::Advertise(100), Action::Enter(State::Backup)]
            } else {
                vec![Action::Enter(State::Backup)]
            };
            assert_eq!(heard, expected);
            assert_eq!(m.state, State::Backup);
        }
    }

    /// A MASTER hearing a lower priority (or an equal one from a lower address) advertises
    /// at once and restarts its advert timer, as keepalived; with lower_prio_no_advert it
    /// stays silent, as the RFC.
    #[test]
    fn a_master_answers_a_lower_master_unless_told_not_to() {
        let t0 = Instant::now();
        for quiet in [false, true] {
            let mut m = Machine::new(Params {
                lower_prio_no_advert: quiet,
                initial_master: true,
                ..params(150)
            });
            m.start(t0, false);
            assert_eq!(m.state, State::Master);
            let heard = m.advert(ms(t0, 400), peer(), 100, 100);
            let equal_lower_addr = m.advert(ms(t0, 500), "10.0.0.0".parse().unwrap(), 150, 100);
            if quiet {
                assert_eq!(heard, vec![Action::HeardLower]);
                assert_eq!(equal_lower_addr, vec![Action::HeardLower]);
                assert_eq!(m.tick(ms(t0, 1000)), vec![Action::Advertise(150)]);
            } else {
                let answer = vec![Action::Advertise(150), Action::HeardLower];
                assert_eq!(heard, answer);
                assert_eq!(equal_lower_addr, answer);
                // The next regular advert one interval after the last answer.
                assert!(m.tick(ms(t0, 1499)).is_empty());
                assert_eq!(m.tick(ms(t0, 1500)), vec![Action::Advertise(150)]);
            }
            assert_eq!(m.state, State::Master);
        }
    }

    #[test]
    fn timers_follow_the_rfc() {
        let m = Machine::new(params(100));
        // Skew = (256-100)/256 s = 609 ms (in centiseconds: 60), down = 3 s + skew.
        assert_eq!(m.skew(), Duration::from_millis(600));
        assert_eq!(m.master_down_interval(), Duration::from_millis(3600));
        let m = Machine::new(params(254));
        assert_eq!(m.master_down_interval(), Duration::from_millis(3000));
        // keepalived's down_timer_adverts: fewer (or more) adverts missed.
        let m = Machine::new(Params {
            down_timer_adverts: 1,
            ..params(100)
        });
        assert_eq!(m.master_down_interval(), Duration::from_millis(1600));
    }

    #[test]
    fn a_lone_backup_becomes_master_after_master_down_interval() {
        let t0 = Instant::now();
        let mut m = Machine::new(params(100));
        assert_eq!(m.start(t0, false), vec![Action::Enter(State::Backup)]);
        assert!(m.tick(ms(t0, 3599)).is_empty());
        assert_eq!(
            m.tick(ms(t0, 3600)),
            vec![Action::Advertise(100), Action::Enter(State::Master)]
        );
        // Then one advert per interval.
        assert!(m.tick(ms(t0, 4599)).is_empty());
        assert_eq!(m.tick(ms(t0, 4600)), vec![Action::Advertise(100)]);
        assert_eq!(m.tick(ms(t0, 5600)), vec![Action::Advertise(100)]);
    }

    #[test]
    fn adverts_hold_a_backup_and_priority_zero_hands_over_after_the_skew() {
        let t0 = Instant::now();
        let mut m = Machine::new(params(100));
        m.start(t0, false);
        for s in 1..10 {
            assert!(m.advert(ms(t0, s * 1000), peer(), 150, 100).is_empty());
            assert!(m.tick(ms(t0, s * 1000 + 999)).is_empty());
        }
        assert_eq!(m.master_seen, Some((peer(), 150)));
        assert!(m.advert(ms(t0, 10_000), peer(), 0, 100).is_empty());
        assert!(m.tick(ms(t0, 10_599)).is_empty());
        assert_eq!(m.tick(ms(t0, 10_600))[1], Action::Enter(State::Master));
    }

    #[test]
    fn preemption_nopreempt_and_preempt_delay() {
        let t0 = Instant::now();
        // Preempt (default): a lower-priority master's adverts are ignored, so this
        // higher-priority backup takes over when its timer runs out.
        let mut m = Machine::new(params(150));
        m.start(t0, false);
        m.advert(ms(t0, 1000), peer(), 100, 100);
        assert_eq!(m.tick(ms(t0, 3000 + 414))[1], Action::Enter(State::Master));
        // nopreempt: the lower master is kept.
        let mut m = Machine::new(Params {
            preempt: false,
            ..params(150)
        });
        m.start(t0, false);
        for s in 1..20 {
            m.advert(ms(t0, s * 1000), peer(), 100, 100);
            assert!(m.tick(ms(t0, s * 1000 + 500)).is_empty());
        }
        assert_eq!(m.state, State::Backup);
        // preempt_delay 5 s: the lower master is accepted for 5 s from the first advert.
        let mut m = Machine::new(Params {
            preempt_delay: Duration::from_secs(5),
            ..params(150)
        });
        m.start(t0, false);
        for s in 1..=5 {
            m.advert(ms(t0, s * 1000), peer(), 100, 100);
            assert!(m.tick(ms(t0, s * 1000 + 500)).is_empty(), "second {s}");
        }
        // From 6 s on its adverts are ignored: master at 5 s + 3.4 s.
        m.advert(ms(t0, 6000), peer(), 100, 100);
        assert!(m.tick(ms(t0, 8000)).is_empty());
        assert_eq!(m.tick(ms(t0, 8500))[1], Action::Enter(State::Master));
    }

    #[test]
    fn a_master_yields_to_higher_priority_and_to_a_higher_address_on_a_tie() {
        let t0 = Instant::now();
        let mut m = Machine::new(Params {
            initial_master: true,
            ..params(100)
        });
        assert_eq!(
            m.start(t0, false),
            vec![Action::Advertise(100), Action::Enter(State::Master)]
        );
        // Lower priority, or equal from a lower address: still master (answered at once,
        // a_master_answers_a_lower_master_unless_told_not_to).
        m.advert(ms(t0, 100), peer(), 99, 100);
        m.advert(ms(t0, 100), "10.0.0.0".parse().unwrap(), 100, 100);
        assert_eq!(m.state, State::Master);
        // Equal from a higher address: backup.
        assert_eq!(
            m.advert(ms(t0, 200), peer(), 100, 100),
            vec![Action::Enter(State::Backup)]
        );
        // Priority 0 from a leaving peer, heard as master: answered at once.
        let mut m = Machine::new(Params {
            initial_master: true,
            ..params(100)
        });
        m.start(t0, false);
        assert_eq!(
            m.advert(ms(t0, 300), peer(), 0, 100),
            vec![Action::Advertise(100)]
        );
    }

    #[test]
    fn version_3_learns_the_masters_interval() {
        let t0 = Instant::now();
        let mut m = Machine::new(Params {
            version: 3,
            ..params(100)
        });
        m.start(t0, false);
        m.advert(ms(t0, 0), peer(), 200, 50);
        // Down interval = 3 * 0.5 s + (156 * 50 / 256) cs = 1.5 s + 0.3 s.
        assert!(m.tick(ms(t0, 1799)).is_empty());
        assert_eq!(m.tick(ms(t0, 1800))[1], Action::Enter(State::Master));
    }

    #[test]
    fn fault_and_stop() {
        let t0 = Instant::now();
        let mut m = Machine::new(Params {
            initial_master: true,
            ..params(100)
        });
        m.start(t0, false);
        assert_eq!(
            m.set_fault(ms(t0, 10), true),
            vec![Action::Advertise(0), Action::Enter(State::Fault)]
        );
        assert!(m.tick(ms(t0, 100_000)).is_empty(), "no timers in fault");
        assert_eq!(
            m.set_fault(ms(t0, 20), false),
            vec![Action::Enter(State::Backup)]
        );
        assert_eq!(m.tick(ms(t0, 3620))[1], Action::Enter(State::Master));
        assert_eq!(
            m.stop(),
            vec![Action::Advertise(0), Action::Enter(State::Stop)]
        );
        let mut m = Machine::new(params(100));
        assert_eq!(m.start(t0, true), vec![Action::Enter(State::Fault)]);
        assert_eq!(m.stop(), vec![Action::Enter(State::Stop)]);
    }

    #[test]
    fn sync_group_members_follow() {
        let t0 = Instant::now();
        let mut m = Machine::new(params(100));
        m.start(t0, false);
        assert_eq!(
            m.follow(ms(t0, 5), State::Master),
            vec![Action::Advertise(100), Action::Enter(State::Master)]
        );
        assert_eq!(
            m.follow(ms(t0, 6), State::Backup),
            vec![Action::Advertise(0), Action::Enter(State::Backup)]
        );
    }
}
