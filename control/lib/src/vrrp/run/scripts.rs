//! Scripts the VRRP runtime runs as keepalived does: tracking scripts (interval, fall,
//! rise, timeout), start-up and shut-down scripts, notify scripts as their user.

use super::*;

/// One thread per vrrp_script: runs it every interval, applies fall and rise, and reports
/// changes of its result.
pub(super) fn start_trackers(
    scripts: &[TrackScript],
    initial: &[bool],
    tx: &Sender<Event>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let mut out = Vec::new();
    for (index, t) in scripts.iter().enumerate() {
        let (t, tx, stop) = (t.clone(), tx.clone(), stop.clone());
        let first = initial.get(index).copied().unwrap_or(true);
        out.push(
            std::thread::Builder::new()
                .name("rvs-vrrp-script".into())
                .spawn(move || {
                    let (mut ok, mut run) = (first, 0u32);
                    while !stop.load(Ordering::Relaxed) {
                        let result = run_tracked(&t.script, t.timeout, &stop);
                        if result == ok {
                            run = 0;
                        } else {
                            run += 1;
                            let need = if ok { t.fall } else { t.rise };
                            if run >= need {
                                ok = result;
                                run = 0;
                                let _ = tx.send(Event::Script { index, ok });
                            }
                        }
                        let until = Instant::now() + t.interval;
                        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

/// Runs a tracking script; true when it exits 0 within `timeout`.
pub(super) fn run_tracked(s: &Script, timeout: Duration, stop: &AtomicBool) -> bool {
    let Some(mut child) = spawn(s, &[]) else {
        return false;
    };
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.success(),
            Ok(None) if Instant::now() < until && !stop.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// uid and gid of a user, from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

fn quote(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

/// A start-up or shut-down script (global_defs' `startup_script`, `shutdown_script`),
/// waited for at most `timeout` and killed then, as keepalived; a failure is logged, never
/// fatal.
pub fn run_waited(s: &Script, timeout: Duration, what: &str) {
    let Some(mut child) = spawn_grouped(s, &[], true) else {
        return;
    };
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return,
            Ok(Some(st)) => {
                log(
                    Level::Warning,
                    "scripts",
                    Some(&s.command),
                    format_args!("{what} {:?} failed, status {st}", s.command),
                );
                return;
            }
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                // The script and what it started, as keepalived kills its group.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(std::process::Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                log(
                    Level::Warning,
                    "scripts",
                    Some(&s.command),
                    format_args!(
                        "{what} {:?} still ran after {} s: killed",
                        s.command,
                        timeout.as_secs()
                    ),
                );
                return;
            }
        }
    }
}

/// Starts a script (through the shell, with `args` quoted), as its user.
pub(in crate::vrrp) fn spawn(s: &Script, args: &[&str]) -> Option<Child> {
    spawn_grouped(s, args, false)
}

/// As [`spawn`]; with `own_group`, in a process group of its own (what it forks can be
/// stopped with it).
fn spawn_grouped(s: &Script, args: &[&str], own_group: bool) -> Option<Child> {
    use std::os::unix::process::CommandExt;
    let mut line = s.command.clone();
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(line);
    cmd.stdin(std::process::Stdio::null());
    if own_group {
        cmd.process_group(0);
    }
    if let Some(u) = &s.user {
        match user_ids(u) {
            Some((uid, gid)) => {
                cmd.gid(gid).uid(uid);
            }
            None => {
                log(
                    Level::Warning,
                    "vrrp",
                    Some(&s.command),
                    format_args!("script {:?}: no user {u:?}; not run", s.command),
                );
                return None;
            }
        }
    }
    cmd.spawn()
        .map_err(|e| {
            log(
                Level::Warning,
                "vrrp",
                Some(&s.command),
                format_args!("script {:?}: {e}", s.command),
            )
        })
        .ok()
}
