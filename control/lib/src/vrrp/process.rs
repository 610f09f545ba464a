//! keepalived's `vrrp_track_process`: how many running processes match each definition,
//! read from /proc, and whether that number is within its quorum once the fork and
//! terminate delays have passed. keepalived follows the kernel's process events; rvs reads
//! /proc every half second (the VRRP thread's tracking tick).

use super::conf::{ParamMatch, TrackProcess};
use std::time::Instant;

/// One process as /proc shows it: its name (/proc/PID/stat's comm) and command line
/// (/proc/PID/cmdline, arguments NUL-terminated).
pub struct Proc {
    pub comm: String,
    pub cmdline: Vec<u8>,
}

/// Every live process (zombies left out, as keepalived does).
pub fn running() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        if stat.get(close + 2..close + 3) == Some("Z") {
            return None;
        }
        Some(Proc {
            comm: stat.get(open + 1..close)?.to_string(),
            cmdline: std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
        })
    })
    .collect()
}

/// Whether `p` is one of the processes `t` counts: its name (or, with `full_command` or
/// parameters, its command line's first word) is `process`, then its arguments as
/// `param_match` asks: all of them (exact), the configured ones first (partial), or those
/// with the last one only a beginning (initial).
pub fn matches(t: &TrackProcess, p: &Proc) -> bool {
    let (name, args): (&[u8], &[u8]) = if t.full_command {
        match p.cmdline.iter().position(|b| *b == 0) {
            Some(end) => (&p.cmdline[..end], &p.cmdline[end + 1..]),
            None => (&p.cmdline[..], &[]),
        }
    } else {
        (p.comm.as_bytes(), &[])
    };
    if name != t.process.as_bytes() {
        return false;
    }
    let wanted: Vec<u8> = t.params.iter().flat_map(|a| a.bytes().chain([0])).collect();
    match t.param_match {
        ParamMatch::None => true,
        ParamMatch::Exact => args == &wanted[..],
        ParamMatch::Partial => args.starts_with(&wanted),
        ParamMatch::Initial => {
            args.len() >= wanted.len()
                && args.starts_with(&wanted[..wanted.len().saturating_sub(1)])
        }
    }
}

/// A tracked process's status: up while the count is within quorum..=quorum_max, a
/// change taking effect once `fork_delay` (going up) or `terminate_delay` (going down)
/// has passed with it still so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStatus {
    pub up: bool,
    pending: Option<(bool, Instant)>,
}

impl ProcessStatus {
    /// The status at start: the count as it is, without delay.
    pub fn at_start(t: &TrackProcess, count: usize) -> ProcessStatus {
        ProcessStatus {
            up: t.quorum_holds(count),
            pending: None,
        }
    }

    /// Takes a new count; true when `up` changed.
    pub fn update(&mut self, t: &TrackProcess, count: usize, now: Instant) -> bool {
        let ok = t.quorum_holds(count);
        if ok == self.up {
            self.pending = None;
            return false;
        }
        let due = match self.pending {
            Some((to, at)) if to == ok => at,
            _ => {
                let at = now + if ok { t.fork_delay } else { t.terminate_delay };
                self.pending = Some((ok, at));
                at
            }
        };
        if now >= due {
            self.up = ok;
            self.pending = None;
            return true;
        }
        false
    }
}

/// How many of `procs` each definition counts.
pub fn counts(defs: &[TrackProcess], procs: &[Proc]) -> Vec<usize> {
    defs.iter()
        .map(|t| procs.iter().filter(|p| matches(t, p)).count())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::KeepalivedConf;
    use std::time::Duration;

    fn defs(text: &str) -> Vec<TrackProcess> {
        KeepalivedConf::parse("k.conf", text)
            .unwrap()
            .vrrp_conf
            .processes
    }

    fn proc(comm: &str, cmdline: &[&str]) -> Proc {
        Proc {
            comm: comm.into(),
            cmdline: cmdline.iter().flat_map(|a| a.bytes().chain([0])).collect(),
        }
    }

    /// keepalived's matching: the name (comm) alone; with parameters the command line,
    /// exactly, partially or initially.
    #[test]
    fn processes_match_as_keepalived_matches_them() {
        let d = defs(
            "vrrp_track_process name {\n process nginx\n}\n\
             vrrp_track_process exact {\n process /usr/sbin/nginx -g daemon\n}\n\
             vrrp_track_process partial {\n process /usr/sbin/nginx -g\n param_match partial\n}\n\
             vrrp_track_process initial {\n process /usr/sbin/nginx -g dae\n param_match initial\n}\n\
             vrrp_track_process bare {\n process /usr/sbin/nginx\n param_match\n}\n\
             vrrp_track_process full {\n process /usr/sbin/nginx\n full_command\n}\n",
        );
        let master = proc("nginx", &["/usr/sbin/nginx", "-g", "daemon"]);
        let worker = proc("nginx", &["/usr/sbin/nginx", "-g", "daemon", "off"]);
        let bare = proc("nginx", &["/usr/sbin/nginx"]);
        let other = proc("nginx-debug", &["/usr/sbin/nginx-debug", "-g", "daemon"]);
        let seen = |t: &TrackProcess| -> Vec<bool> {
            [&master, &worker, &bare, &other]
                .iter()
                .map(|p| matches(t, p))
                .collect()
        };
        assert_eq!(seen(&d[0]), [true, true, true, false]);
        assert_eq!(seen(&d[1]), [true, false, false, false]);
        assert_eq!(seen(&d[2]), [true, true, false, false]);
        assert_eq!(seen(&d[3]), [true, true, false, false]);
        assert_eq!(seen(&d[4]), [false, false, true, false]);
        assert_eq!(seen(&d[5]), [true, true, true, false]);
    }

    /// Up while the count is within quorum..=quorum_max; a change waits out fork_delay
    /// (up) or terminate_delay (down), and a bounce within it changes nothing.
    #[test]
    fn quorum_and_delays() {
        let d = defs(
            "vrrp_track_process two {\n process x\n quorum 2\n quorum_max 3\n fork_delay 1\n terminate_delay 2\n}\n\
             vrrp_track_process none {\n process x\n quorum_max 0\n}\n",
        );
        let (t, none) = (&d[0], &d[1]);
        assert!(!t.quorum_holds(1) && t.quorum_holds(2) && t.quorum_holds(3) && !t.quorum_holds(4));
        assert!(none.quorum_holds(0) && !none.quorum_holds(1));
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut s = ProcessStatus::at_start(t, 0);
        assert!(!s.up);
        assert!(!s.update(t, 2, at(0)));
        assert!(!s.update(t, 2, at(999)));
        assert!(s.update(t, 2, at(1000)) && s.up);
        // Down for less than terminate_delay: still up; then down for good.
        assert!(!s.update(t, 1, at(1500)));
        assert!(!s.update(t, 2, at(2000)) && s.up);
        assert!(!s.update(t, 4, at(2500)));
        assert!(!s.update(t, 4, at(4499)));
        assert!(s.update(t, 4, at(4500)) && !s.up);
    }

    /// A real process, found in /proc by its command line, and gone once it ends.
    #[test]
    fn a_running_process_is_counted() {
        let mut child = std::process::Command::new("sleep")
            .arg("29.371")
            .spawn()
            .unwrap();
        let d = defs("vrrp_track_process s {\n process sleep 29.371\n}\n");
        // Bounded (5 s): a scan racing the other tests' forks may see a moment's state.
        let counted = |n: usize| {
            (0..100).any(|_| {
                let seen = counts(&d, &running()) == [n];
                if !seen {
                    std::thread::sleep(Duration::from_millis(50));
                }
                seen
            })
        };
        let found = counted(1);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "the running sleep was not counted once");
        assert!(counted(0), "the ended sleep is still counted");
    }
}
