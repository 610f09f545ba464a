//! keepalived's notify FIFOs (global_defs `notify_fifo` and `vrrp_notify_fifo`, each with an
//! optional `*_script` reading it): one line per VRRP event, as keepalived writes them:
//! `INSTANCE "VI_1" MASTER 150`, `GROUP "G" BACKUP 0`, and `MASTER_RX_LOWER_PRI`, `DELETED`.
//! As keepalived: a missing FIFO is made (mode 644, owned by its user) and removed at the
//! end only if rvs made it; its script starts, with the FIFO's name as its last argument,
//! before rvs opens it; a write never blocks (a FIFO nobody reads loses lines).

use super::conf::Script;
use crate::keepalived::syntax::Statement;
use crate::log::{log, Level};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::process::{Child, Command, Stdio};

/// A `notify_fifo` or `vrrp_notify_fifo`, with its `*_script`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyFifo {
    /// file:line of the statement.
    pub at: String,
    pub path: String,
    /// `[username [groupname]]`: the FIFO's owner, when rvs makes it.
    pub owner: Vec<String>,
    pub script: Option<Script>,
}

impl NotifyFifo {
    /// Configured alike (wherever the lines are): a reload keeps such a FIFO open.
    pub fn same_as(&self, other: &NotifyFifo) -> bool {
        (&self.path, &self.owner, &self.script) == (&other.path, &other.owner, &other.script)
    }
}

/// Whether two lists of FIFOs are configured alike, in order.
pub fn same_fifos(a: &[NotifyFifo], b: &[NotifyFifo]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
}

struct Open {
    path: String,
    /// None once closed.
    file: Option<File>,
    made: bool,
    reader: Option<Child>,
}

/// The FIFOs open for writing.
#[derive(Default)]
pub struct Fifos(Vec<Open>);

impl std::fmt::Debug for Fifos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.0.iter().map(|o| o.path.as_str()).collect();
        write!(f, "Fifos({paths:?})")
    }
}

/// global_defs' `{prefix}notify_fifo PATH [USER [GROUP]]` and its
/// `{prefix}notify_fifo_script COMMAND [USER]` (the last of each counts); with a warning
/// for a script without its FIFO, which keepalived does not run.
pub fn from_global_defs(
    defs: &[Statement],
    prefix: &str,
) -> Result<(Option<NotifyFifo>, Option<String>), String> {
    let (mut fifo, mut script) = (None, None);
    for s in defs {
        match s.keyword.strip_prefix(prefix) {
            Some("notify_fifo") => {
                s.arg(0)?;
                fifo = Some(s);
            }
            Some("notify_fifo_script") => {
                script = Some((
                    s,
                    Script {
                        command: s.arg(0)?.to_string(),
                        user: s.args.get(1).cloned(),
                    },
                ))
            }
            _ => {}
        }
    }
    Ok(match (fifo, script) {
        (Some(f), script) => (
            Some(NotifyFifo {
                at: f.at(),
                path: f.args[0].clone(),
                owner: f.args[1..].to_vec(),
                script: script.map(|(_, s)| s),
            }),
            None,
        ),
        (None, Some((s, _))) => (
            None,
            Some(format!(
                "{}: {}: without {prefix}notify_fifo, not run",
                s.at(),
                s.keyword
            )),
        ),
        (None, None) => (None, None),
    })
}

/// A virtual server as keepalived's checkers name it in a FIFO line: `[ADDR]:tcp:PORT`,
/// `FWM MARK`, `[GROUP]:0` for a virtual_server_group.
pub fn virtual_server_name(vs: &crate::keepalived::VirtualServer) -> String {
    use crate::ipvsadm::ServiceKey;
    match (&vs.group, vs.keys.first()) {
        (Some(g), _) => format!("[{g}]:0"),
        (None, Some(ServiceKey::Fwmark { mark, .. })) => format!("FWM {mark}"),
        (None, Some(ServiceKey::Addr(proto, addr))) => {
            format!(
                "[{}]:{}:{}",
                addr.ip(),
                proto.name().to_ascii_lowercase(),
                addr.port()
            )
        }
        (None, None) => String::new(),
    }
}

/// keepalived's checker lines: `VS NAME UP|DOWN` (its quorum), `RS [ADDR]:tcp:PORT NAME
/// UP|DOWN` (a real server of it).
pub fn checker_line(
    vs: &crate::keepalived::VirtualServer,
    rs: Option<&crate::keepalived::RealServer>,
    up: bool,
) -> String {
    let state = if up { "UP" } else { "DOWN" };
    let name = virtual_server_name(vs);
    match rs {
        None => format!("VS {name} {state}\n"),
        Some(rs) => format!("RS {} {name} {state}\n", real_server_name(vs, rs)),
    }
}

/// keepalived's name for a real server of `vs`: `[ADDR]:PROTO:PORT` (a fwmark service's:
/// tcp).
pub fn real_server_name(
    vs: &crate::keepalived::VirtualServer,
    rs: &crate::keepalived::RealServer,
) -> String {
    use crate::ipvsadm::ServiceKey;
    let proto = match vs.keys.first() {
        Some(ServiceKey::Addr(p, _)) => p.name().to_ascii_lowercase(),
        _ => "tcp".into(),
    };
    format!("[{}]:{proto}:{}", rs.addr, rs.port)
}

/// keepalived's line for an instance's or a group's event (a group's priority is 0).
pub fn line(group: bool, name: &str, event: &str, priority: u8) -> String {
    let kind = if group { "GROUP" } else { "INSTANCE" };
    format!("{kind} \"{name}\" {event} {priority}\n")
}

fn warn(f: &NotifyFifo, what: String) {
    log(
        Level::Warning,
        "vrrp",
        Some(&f.path),
        format_args!("{}: notify FIFO {}: {what}", f.at, f.path),
    );
}

impl Fifos {
    /// Makes (when missing) and opens each FIFO, starting its script first; one that cannot
    /// be opened is left out with a warning, as keepalived leaves it.
    pub fn open(confs: &[NotifyFifo]) -> Fifos {
        let mut out = Vec::new();
        for f in confs {
            let made = match std::fs::symlink_metadata(&f.path) {
                Ok(m) if m.file_type().is_fifo() => false,
                Ok(_) => {
                    warn(f, "exists and is not a FIFO; not used".into());
                    continue;
                }
                Err(_) => {
                    let ok = Command::new("mkfifo")
                        .args(["-m", "644", &f.path])
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    if !ok {
                        warn(f, "cannot be made; not used".into());
                        continue;
                    }
                    if let Some(user) = f.owner.first() {
                        let owner = match f.owner.get(1) {
                            Some(g) => format!("{user}:{g}"),
                            None => user.clone(),
                        };
                        let _ = Command::new("chown")
                            .args([&owner, &f.path])
                            .stderr(Stdio::null())
                            .status();
                    }
                    true
                }
            };
            let reader = f
                .script
                .as_ref()
                .and_then(|s| super::run::spawn(s, &[f.path.as_str()]));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&f.path);
            match file {
                Ok(file) => out.push(Open {
                    path: f.path.clone(),
                    file: Some(file),
                    made,
                    reader,
                }),
                Err(e) => {
                    warn(f, format!("cannot be opened: {e}; not used"));
                    if made {
                        let _ = std::fs::remove_file(&f.path);
                    }
                }
            }
        }
        Fifos(out)
    }

    /// Writes a line to every FIFO, never waiting (a full one loses it).
    pub fn write(&self, line: &str) {
        for o in &self.0 {
            if let Some(mut f) = o.file.as_ref() {
                let _ = f.write(line.as_bytes());
            }
        }
    }
}

impl Drop for Open {
    /// Closed, then removed if rvs made it (a reader reopening it in a loop finds none); its
    /// reader, at the end of what was written, gets a second to finish before it is killed.
    fn drop(&mut self) {
        self.file = None;
        if self.made {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Some(c) = &mut self.reader {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while matches!(c.try_wait(), Ok(None)) && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn lines_are_keepalived_s() {
        assert_eq!(
            line(false, "VI_1", "MASTER", 150),
            "INSTANCE \"VI_1\" MASTER 150\n"
        );
        assert_eq!(line(true, "G", "BACKUP", 0), "GROUP \"G\" BACKUP 0\n");
    }

    /// A missing FIFO is made, written without blocking, and removed at the end; one that
    /// exists is used and left; a plain file is refused.
    #[test]
    fn fifos_are_made_written_and_removed_as_keepalived() {
        let dir = std::env::temp_dir().join(format!("rvs-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vrrp.fifo").display().to_string();
        let conf = |path: &str| NotifyFifo {
            at: "k.conf:2".into(),
            path: path.into(),
            owner: Vec::new(),
            script: None,
        };
        let fifos = Fifos::open(&[conf(&path)]);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        fifos.write(&line(false, "VI_1", "MASTER", 150));
        // Nobody reading more: the pipe fills and the writes are lost, never blocking.
        for _ in 0..10_000 {
            fifos.write(&line(false, "VI_1", "BACKUP", 100));
        }
        let mut first = [0u8; 27];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"INSTANCE \"VI_1\" MASTER 150\n");
        drop(fifos);
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "made by rvs, removed"
        );
        // An existing FIFO stays; a plain file is not used.
        Command::new("mkfifo").arg(&path).status().unwrap();
        drop(Fifos::open(&[conf(&path)]));
        assert!(std::fs::symlink_metadata(&path).is_ok());
        let plain = dir.join("plain").display().to_string();
        std::fs::write(&plain, "").unwrap();
        assert_eq!(Fifos::open(&[conf(&plain)]).0.len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
