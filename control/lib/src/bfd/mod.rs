//! BFD (RFC 5880, single hop RFC 5881, multihop by TTL), as keepalived's BFD process runs
//! it: keepalived.conf's `bfd_instance` blocks, asynchronous mode on UDP 3784 from a port
//! of 49152-65535, TTL 255 (hop limit 64) checked against `max_hops`, no echo, no
//! authentication. A session's Up and Down reach VRRP's `track_bfd` and the checkers'
//! `BFD_CHECK` through the [`Board`].

pub mod packet;
pub mod run;
pub mod session;

use crate::keepalived::syntax::Statement;
use parking_lot::Mutex;
use std::net::IpAddr;
use std::sync::OnceLock;

pub use packet::BfdState;
pub use run::BfdRuntime;

/// The UDP port of single-hop control packets (RFC 5881).
pub const CONTROL_PORT: u16 = 3784;

/// A `bfd_instance NAME { ... }`. Intervals in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdInstance {
    pub name: String,
    pub at: String,
    pub neighbor: IpAddr,
    pub source: Option<IpAddr>,
    pub min_rx: u32,
    pub min_tx: u32,
    pub idle_tx: u32,
    pub multiplier: u8,
    pub passive: bool,
    /// The TTL (hop limit) it sends with: 255 for IPv4, 64 for IPv6 unless set.
    pub ttl: u8,
    /// Received packets need a TTL of at least `ttl - max_hops` (255: not checked).
    pub max_hops: u8,
    /// `weight W [reverse]`: the default of VRRP's `track_bfd` of it.
    pub weight: i32,
    pub reverse: bool,
    /// `vrrp` / `checker`: only those get its events (neither said: both).
    pub to_vrrp: bool,
    pub to_checker: bool,
}

impl BfdInstance {
    /// keepalived's defaults: 10 ms receive and transmit, 1 s idle, multiplier 5.
    pub fn new(name: &str, neighbor: IpAddr) -> BfdInstance {
        BfdInstance {
            name: name.to_string(),
            at: String::new(),
            neighbor,
            source: None,
            min_rx: 10_000,
            min_tx: 10_000,
            idle_tx: 1_000_000,
            multiplier: 5,
            passive: false,
            ttl: if neighbor.is_ipv4() { 255 } else { 64 },
            max_hops: 0,
            weight: 0,
            reverse: false,
            to_vrrp: true,
            to_checker: true,
        }
    }

    /// Whether a packet that arrived with `ttl` may be this session's (RFC 5881's GTSM,
    /// widened by `max_hops`).
    pub fn ttl_ok(&self, ttl: Option<u8>) -> bool {
        match ttl {
            Some(t) if self.max_hops != u8::MAX => {
                u16::from(t) + u16::from(self.max_hops) >= u16::from(self.ttl)
            }
            _ => true,
        }
    }
}

/// An interval in milliseconds with up to three decimals, in microseconds, within
/// `lo..=hi` milliseconds.
fn millis(text: &str, lo: u32, hi: u32) -> Option<u32> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 3
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac_us: u64 = format!("{frac:0<3}").parse().ok()?;
    let us = whole.parse::<u64>().unwrap_or(0).checked_mul(1000)? + frac_us;
    (u64::from(lo) * 1000..=u64::from(hi) * 1000)
        .contains(&us)
        .then_some(us as u32)
}

/// Reads the top-level `bfd_instance` blocks as keepalived does: what it refuses is a
/// warning naming file and line and the instance (or setting) is ignored.
pub fn from_statements(top: &[Statement], warnings: &mut Vec<String>) -> Vec<BfdInstance> {
    let mut out: Vec<BfdInstance> = Vec::new();
    for s in top.iter().filter(|s| s.keyword == "bfd_instance") {
        let Some(name) = s.args.first() else {
            warnings.push(format!("{}: bfd_instance without a name, ignored", s.at()));
            continue;
        };
        if name.len() >= 32 {
            warnings.push(format!(
                "{}: BFD instance {name} name too long (maximum length is 31 characters) - ignoring",
                s.at()
            ));
            continue;
        }
        if out.iter().any(|b| &b.name == name) {
            warnings.push(format!(
                "{}: BFD instance {name} already configured - ignoring",
                s.at()
            ));
            continue;
        }
        if let Some(b) = instance(s, name, warnings) {
            if out.iter().any(|o| {
                o.neighbor == b.neighbor
                    && (o.source == b.source || o.source.is_none() || b.source.is_none())
            }) {
                warnings.push(format!(
                    "{}: BFD instance {name} has duplicate neighbor address {}, ignoring instance",
                    s.at(),
                    b.neighbor
                ));
                continue;
            }
            out.push(b);
        }
    }
    out
}

fn instance(s: &Statement, name: &str, warnings: &mut Vec<String>) -> Option<BfdInstance> {
    let mut b = BfdInstance::new(name, IpAddr::from([0, 0, 0, 0]));
    b.at = s.at();
    let mut neighbor = None;
    let mut ttl = None;
    let mut max_hops: i32 = 0;
    let (mut to_vrrp, mut to_checker) = (false, false);
    for c in s.children() {
        let arg = c.args.first().map(String::as_str).unwrap_or("");
        let mut bad =
            |what: String| warnings.push(format!("{}: BFD instance {name} {what}", c.at()));
        match c.keyword.as_str() {
            "neighbor_ip" | "neighbour_ip" => match arg.parse::<IpAddr>() {
                Ok(a) => neighbor = Some(a),
                Err(_) => {
                    bad(format!(
                        "has malformed neighbor address {arg}, ignoring instance"
                    ));
                    return None;
                }
            },
            "source_ip" => match arg.parse::<IpAddr>() {
                Ok(a) => b.source = Some(a),
                Err(_) => bad(format!("has malformed source address {arg}, ignoring")),
            },
            k @ ("min_rx" | "min_tx" | "idle_tx") => {
                let lo = if k == "idle_tx" { 1000 } else { 1 };
                match millis(arg, lo, u32::MAX / 1000) {
                    Some(us) => {
                        *match k {
                            "min_rx" => &mut b.min_rx,
                            "min_tx" => &mut b.min_tx,
                            _ => &mut b.idle_tx,
                        } = us;
                        if us > 10_000_000 {
                            bad(format!(
                                "{k} value {arg} is larger than max sensible (10000)"
                            ));
                        }
                    }
                    None => bad(format!(
                        "{k} value {arg} is not valid (must be in range [{lo}-{}]), ignoring",
                        u32::MAX / 1000
                    )),
                }
            }
            "multiplier" => match arg.parse::<u8>() {
                Ok(m) if m >= 1 => b.multiplier = m,
                _ => bad(format!(
                    "multiplier value {arg} not valid (must be in range [1-255]), ignoring"
                )),
            },
            "passive" => b.passive = true,
            "ttl" | "hoplimit" => match arg.parse::<u8>() {
                Ok(t) if t >= 1 => ttl = Some(t),
                _ => bad(format!(
                    "ttl/hoplimit value {arg} not valid (must be in range [1-255]), ignoring"
                )),
            },
            "max_hops" => match arg.parse::<i32>() {
                Ok(h) if (-1..=255).contains(&h) => max_hops = h,
                _ => bad(format!(
                    "max_hops value {arg} not valid (must be in range [-1-255]), ignoring"
                )),
            },
            "weight" => match arg.parse::<i32>() {
                Ok(w) if (-253..=253).contains(&w) => {
                    b.weight = w;
                    match c.args.get(1).map(String::as_str) {
                        None => {}
                        Some("reverse") => b.reverse = true,
                        Some(o) => bad(format!("unknown weight option {o}")),
                    }
                }
                _ => bad(format!(
                    "weight value {arg} not valid (must be in range [-253-253]), ignoring"
                )),
            },
            "vrrp" => to_vrrp = true,
            "checker" => to_checker = true,
            k => bad(format!("unknown keyword {k:?} ignored")),
        }
    }
    let Some(neighbor) = neighbor else {
        warnings.push(format!(
            "{}: BFD instance {name} has no neighbor address set, disabling instance",
            s.at()
        ));
        return None;
    };
    b.neighbor = neighbor;
    if b.source
        .is_some_and(|src| src.is_ipv4() != neighbor.is_ipv4())
    {
        warnings.push(format!(
            "{}: BFD instance {name} source address {} and neighbor address {neighbor} are not of the same family, disabling instance",
            s.at(),
            b.source.unwrap_or(neighbor)
        ));
        return None;
    }
    b.ttl = ttl.unwrap_or(if neighbor.is_ipv4() { 255 } else { 64 });
    // keepalived stores -1 in a byte: 255, no check.
    b.max_hops = if max_hops < 0 {
        u8::MAX
    } else {
        max_hops as u8
    };
    if b.max_hops > b.ttl {
        warnings.push(format!(
            "{}: BFD instance {name}: max_hops exceeds ttl/hoplimit - setting to ttl/hoplimit",
            s.at()
        ));
        b.max_hops = b.ttl;
    }
    if to_vrrp || to_checker {
        (b.to_vrrp, b.to_checker) = (to_vrrp, to_checker);
    }
    Some(b)
}

/// Who reads a session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Vrrp,
    Checker,
}

/// A session as `show bfd` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdStatus {
    pub name: String,
    pub neighbor: IpAddr,
    pub source: Option<IpAddr>,
    pub local: BfdState,
    pub remote: BfdState,
    pub local_diag: u8,
    pub remote_diag: u8,
    pub local_discr: u32,
    pub remote_discr: u32,
    pub tx_interval: u32,
    pub detect_time: u64,
    pub ups: u64,
    pub received: u64,
    pub sent: u64,
    /// The state its trackers see (keepalived's events: Up, and Down after a fall the
    /// neighbour did not ask for with AdminDown).
    pub tracked_up: bool,
    pub to_vrrp: bool,
    pub to_checker: bool,
}

type Watcher = Box<dyn Fn() -> bool + Send>;

/// The sessions' states, published by the BFD runtime, read by VRRP and the checkers.
#[derive(Default)]
pub struct Board {
    rows: Mutex<Vec<BfdStatus>>,
    watchers: Mutex<Vec<Watcher>>,
}

/// The process's board (one BFD runtime per rvs, as keepalived has one BFD process).
pub fn board() -> &'static Board {
    static BOARD: OnceLock<Board> = OnceLock::new();
    BOARD.get_or_init(Board::default)
}

impl Board {
    /// Whether `name` is up as `reader` sees it: down when unknown or not sent to it.
    pub fn is_up(&self, name: &str, reader: Reader) -> bool {
        self.rows.lock().iter().any(|r| {
            r.name == name
                && r.tracked_up
                && match reader {
                    Reader::Vrrp => r.to_vrrp,
                    Reader::Checker => r.to_checker,
                }
        })
    }

    pub fn rows(&self) -> Vec<BfdStatus> {
        self.rows.lock().clone()
    }

    /// Calls `f` after each change of a tracked state until it returns false.
    pub fn watch(&self, f: impl Fn() -> bool + Send + 'static) {
        self.watchers.lock().push(Box::new(f));
    }

    /// The runtime's new rows; watchers are told when a tracked state moved.
    pub fn publish(&self, rows: Vec<BfdStatus>) {
        let moved = {
            let mut now = self.rows.lock();
            let tracked = |r: &[BfdStatus]| -> Vec<(String, bool)> {
                r.iter().map(|x| (x.name.clone(), x.tracked_up)).collect()
            };
            let moved = tracked(&now) != tracked(&rows);
            *now = rows;
            moved
        };
        if moved {
            self.watchers.lock().retain(|f| f());
        }
    }
}

/// `show bfd`: one line per session.
pub fn show(rows: &[BfdStatus]) -> String {
    if rows.is_empty() {
        return "no BFD instances\n".into();
    }
    let mut out = format!(
        "{:<16} {:<24} {:<9} {:<9} {:>10} {:>10} {:>9} {:>11} {:>4} {:>9} {:>9}  diagnostic (local / remote)\n",
        "instance",
        "neighbor",
        "state",
        "remote",
        "local id",
        "remote id",
        "tx (us)",
        "detect (us)",
        "ups",
        "received",
        "sent"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:<24} {:<9} {:<9} {:>10} {:>10} {:>9} {:>11} {:>4} {:>9} {:>9}  {} / {}\n",
            r.name,
            r.neighbor.to_string(),
            r.local.name(),
            r.remote.name(),
            r.local_discr,
            r.remote_discr,
            r.tx_interval,
            r.detect_time,
            r.ups,
            r.received,
            r.sent,
            packet::diag_name(r.local_diag),
            packet::diag_name(r.remote_diag)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::syntax;

    #[test]
    fn bfd_instances_read_as_keepalived_reads_them() {
        let top = syntax::parse_text(
            "b.conf",
            "bfd_instance A {\n neighbor_ip 10.0.0.2\n source_ip 10.0.0.1\n min_rx 50\n min_tx 1.5\n idle_tx 2000\n multiplier 3\n weight -20 reverse\n vrrp\n}\n\
             bfd_instance B {\n neighbour_ip fe80::2\n max_hops -1\n idle_tx 10\n min_rx 0\n ttl 300\n}\n\
             bfd_instance C {\n source_ip 10.0.0.1\n}\n\
             bfd_instance D {\n neighbor_ip 10.0.0.2\n}\n\
             bfd_instance A {\n neighbor_ip 10.0.0.9\n}\n\
             bfd_instance E {\n neighbor_ip 10.0.0.3\n source_ip fe80::1\n}\n\
             bfd_instance F {\n neighbor_ip 10.0.0.4\n ttl 10\n max_hops 20\n passive\n checker\n}\n",
        )
        .unwrap();
        let mut w = Vec::new();
        let b = from_statements(&top, &mut w);
        let names: Vec<&str> = b.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "F"]);
        let a = &b[0];
        assert_eq!(
            (a.min_rx, a.min_tx, a.idle_tx, a.multiplier),
            (50_000, 1_500, 2_000_000, 3)
        );
        assert_eq!(
            (a.weight, a.reverse, a.to_vrrp, a.to_checker),
            (-20, true, true, false)
        );
        assert_eq!(
            (a.ttl, a.max_hops, a.source),
            (255, 0, Some("10.0.0.1".parse().unwrap()))
        );
        let v6 = &b[1];
        assert_eq!(
            (v6.ttl, v6.max_hops),
            (64, 64),
            "-1 is 255, cut to the hop limit"
        );
        assert_eq!(
            (v6.idle_tx, v6.min_rx),
            (1_000_000, 10_000),
            "bad values keep the defaults"
        );
        assert_eq!((b[2].ttl, b[2].max_hops, b[2].passive), (10, 10, true));
        assert!(!b[2].to_vrrp && b[2].to_checker);
        let w = w.join("\n");
        for want in [
            "b.conf:14: BFD instance B idle_tx value 10 is not valid (must be in range [1000-4294967]), ignoring",
            "b.conf:15: BFD instance B min_rx value 0 is not valid",
            "b.conf:16: BFD instance B ttl/hoplimit value 300 not valid",
            "b.conf:18: BFD instance C has no neighbor address set, disabling instance",
            "b.conf:21: BFD instance D has duplicate neighbor address 10.0.0.2, ignoring instance",
            "b.conf:24: BFD instance A already configured - ignoring",
            "b.conf:27: BFD instance E source address fe80::1 and neighbor address 10.0.0.3 are not of the same family",
            "b.conf:31: BFD instance F: max_hops exceeds ttl/hoplimit - setting to ttl/hoplimit",
        ] {
            assert!(w.contains(want), "{want}\n{w}");
        }
    }

    #[test]
    fn the_ttl_check_is_gtsm_widened_by_max_hops() {
        let mut b = BfdInstance::new("b", "10.0.0.2".parse().unwrap());
        assert!(b.ttl_ok(Some(255)) && !b.ttl_ok(Some(254)) && b.ttl_ok(None));
        b.max_hops = 2;
        assert!(b.ttl_ok(Some(253)) && !b.ttl_ok(Some(252)));
        b.max_hops = 255;
        assert!(b.ttl_ok(Some(1)));
    }

    #[test]
    fn watchers_hear_tracked_changes_only() {
        let board = Board::default();
        let heard = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = heard.clone();
        board.watch(move || {
            h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        });
        let row = |up: bool, ups: u64| BfdStatus {
            name: "A".into(),
            neighbor: "10.0.0.2".parse().unwrap(),
            source: None,
            local: BfdState::Up,
            remote: BfdState::Up,
            local_diag: 0,
            remote_diag: 0,
            local_discr: 1,
            remote_discr: 2,
            tx_interval: 10_000,
            detect_time: 50_000,
            ups,
            received: 0,
            sent: 0,
            tracked_up: up,
            to_vrrp: true,
            to_checker: false,
        };
        board.publish(vec![row(false, 0)]);
        board.publish(vec![row(true, 1)]);
        board.publish(vec![row(true, 1)]);
        assert_eq!(heard.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert!(board.is_up("A", Reader::Vrrp));
        assert!(
            !board.is_up("A", Reader::Checker),
            "not sent to the checkers"
        );
        assert!(!board.is_up("B", Reader::Vrrp));
    }
}
