//! The scripts a keepalived.conf names (MISC_CHECK, vrrp_script, notify): the user they run
//! as (their own `user`, else `global_defs { script_user }`, else `keepalived_script` when
//! that user exists, else root) and keepalived's safety check of a script run as root (its
//! file and every directory above it owned by root and not writable by others), which
//! `enable_script_security` turns from a warning into the script being disabled.

use crate::keepalived::syntax::Statement;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// uid and gid of `user` (and of `group` when given) from /etc/passwd and /etc/group.
pub fn ids(user: &str, group: Option<&str>) -> Option<(u32, u32)> {
    let field = |path: &str, name: &str, at: usize| -> Option<u32> {
        std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(at)?.parse().ok())
                .flatten()
        })
    };
    let uid = field("/etc/passwd", user, 2)?;
    let gid = match group {
        Some(g) => field("/etc/group", g, 2)?,
        None => field("/etc/passwd", user, 3)?,
    };
    Some((uid, gid))
}

/// The uid this process runs as.
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// `script_user` and `enable_script_security` from `global_defs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptPolicy {
    pub user: Option<(String, Option<String>)>,
    pub security: bool,
}

/// What the check of one script found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsafe {
    pub warning: String,
    /// With `enable_script_security`: the script is not run.
    pub disabled: bool,
}

impl ScriptPolicy {
    pub fn from_global_defs(defs: &[Statement]) -> ScriptPolicy {
        let mut p = ScriptPolicy::default();
        for s in defs {
            match s.keyword.as_str() {
                "script_user" => {
                    if let Some(u) = s.args.first() {
                        p.user = Some((u.clone(), s.args.get(1).cloned()));
                    }
                }
                "enable_script_security" => p.security = true,
                _ => {}
            }
        }
        p
    }

    /// The uid and gid a script runs as; an unknown user is an error.
    pub fn resolve(&self, own: Option<(&str, Option<&str>)>) -> Result<(u32, u32), String> {
        let named = own.or(self.user.as_ref().map(|(u, g)| (u.as_str(), g.as_deref())));
        match named {
            Some((u, g)) => ids(u, g).ok_or_else(|| {
                format!(
                    "script user {u}{} not found",
                    g.map(|g| format!(":{g}")).unwrap_or_default()
                )
            }),
            None => Ok(ids("keepalived_script", None).unwrap_or((0, 0))),
        }
    }

    /// keepalived's check of a script about to run as `uid` (its path with symbolic links
    /// resolved, as keepalived's realpath): None when it is safe (or not run as root).
    pub fn check(&self, command: &str, uid: u32) -> Option<Unsafe> {
        let first = command.split_whitespace().next()?;
        if uid != 0 {
            return None;
        }
        // A script not there (yet) is the run's failure to report, not a permission matter.
        let path = resolve_path(first).and_then(|p| std::fs::canonicalize(p).ok())?;
        let unsafe_part = unsafe_component(&path)?;
        let warning = if self.security {
            format!("Unsafe permissions found for script '{first}' ({unsafe_part}) - disabling (as keepalived with enable_script_security)")
        } else {
            format!("Unsafe permissions found for script '{first}' ({unsafe_part}); it runs as root and enable_script_security is not set")
        };
        Some(Unsafe {
            warning,
            disabled: self.security,
        })
    }
}

/// A bare name is looked up in PATH, as the shell would.
fn resolve_path(first: &str) -> Option<PathBuf> {
    if first.contains('/') {
        return Some(PathBuf::from(first));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .map(|d| Path::new(d).join(first))
        .find(|p| p.exists())
}

/// The first part of `path` (from `/` down to the file) that a non-root user could change:
/// not owned by root, or writable by a non-root group or by others (a directory with the
/// sticky bit excepted).
fn unsafe_component(path: &Path) -> Option<String> {
    let mut parts: Vec<PathBuf> = path.ancestors().map(Path::to_path_buf).collect();
    parts.reverse();
    for p in parts.iter().filter(|p| !p.as_os_str().is_empty()) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return Some(format!("{} cannot be read", p.display()));
        };
        let mode = m.mode();
        let sticky_dir = m.is_dir() && mode & 0o1000 != 0;
        let writable = (m.gid() != 0 && mode & 0o020 != 0) || mode & 0o002 != 0;
        if m.uid() != 0 || (!sticky_dir && writable) {
            return Some(format!("{} is writable by a non-root user", p.display()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_the_safety_check() {
        assert_eq!(ids("root", None), Some((0, 0)));
        assert_eq!(ids("no-such-user-here", None), None);
        let p = ScriptPolicy {
            user: Some(("nobody".into(), None)),
            security: true,
        };
        let (uid, _) = p.resolve(None).unwrap();
        assert_ne!(uid, 0);
        assert_eq!(p.resolve(Some(("root", None))).unwrap(), (0, 0));
        assert!(p.resolve(Some(("no-such-user-here", None))).is_err());
        // /bin/true is root's; a script in a world-writable, non-sticky directory is not safe.
        assert_eq!(p.check("/bin/true", 0), None);
        assert_eq!(p.check("true --x", 0), None);
        let dir = std::env::temp_dir().join(format!("rvs-scripts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("check.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let verdict = p.check(&format!("{} arg", script.display()), 0);
        let _ = std::fs::remove_dir_all(&dir);
        let u = verdict.expect("unsafe");
        assert!(u.disabled && u.warning.contains("disabling"), "{u:?}");
        // Run as another user, keepalived does not check.
        assert_eq!(p.check("/tmp/x", 1000), None);
    }
}
