//! The console's `sysctl`: the kernel settings an LVS director is tuned by, read and
//! written under sysctl(8)'s names and syntax (`sysctl -w net.ipv4.vs.expire_nodest_conn=1`),
//! applied to the running configuration at once. A reload takes the files' values again,
//! as a reboot takes sysctl.conf's (sync_version, which no file sets, stays).

use super::*;
use crate::director::Director;
use rvs_core::sched::CacheExpiration;

/// A setting: its name, how it is read and written.
struct Key {
    name: &'static str,
    get: fn(&Appliance) -> i64,
    /// The value, already parsed; an error in sysctl's words after "setting key".
    set: fn(&Appliance, i64) -> Result<(), String>,
}

/// A switch of the model (any integer, non-zero on: the kernel's proc_dointvec).
fn switch(a: &Appliance, field: fn(&mut Director) -> &mut bool, v: i64) -> Result<(), String> {
    a.change_with(|d| {
        *field(d) = v != 0;
        Ok(())
    })
}

fn flag(a: &Appliance, field: fn(&Director) -> bool) -> i64 {
    i64::from(field(&a.director.lock()))
}

/// Seconds of the model (the kernel's proc_dointvec_jiffies, here 0 to
/// [`CacheExpiration::MAX_S`]).
fn seconds(a: &Appliance, field: fn(&mut Director) -> &mut u32, v: i64) -> Result<(), String> {
    let v = u32::try_from(v)
        .ok()
        .filter(|v| *v <= CacheExpiration::MAX_S)
        .ok_or_else(|| "Invalid argument".to_string())?;
    a.change_with(|d| {
        *field(d) = v;
        Ok(())
    })
}

/// A defence's mode: 0 to 3, as the kernel's proc_do_defense_mode; the defences are judged
/// again at once.
fn defence(a: &Appliance, field: fn(&mut Director) -> &mut u8, v: i64) -> Result<(), String> {
    let v = u8::try_from(v)
        .ok()
        .filter(|v| *v <= 3)
        .ok_or_else(|| "Invalid argument".to_string())?;
    a.change_with(|d| {
        *field(d) = v;
        Ok(())
    })?;
    a.update_defence();
    Ok(())
}

const KEYS: [Key; 22] = [
    Key {
        name: "net.ipv4.ip_forward",
        get: |a| flag(a, |d| d.ip_forward),
        set: |a, v| switch(a, |d| &mut d.ip_forward, v),
    },
    Key {
        name: "net.ipv4.vs.sloppy_tcp",
        get: |a| flag(a, |d| d.sloppy_tcp),
        set: |a, v| switch(a, |d| &mut d.sloppy_tcp, v),
    },
    Key {
        name: "net.ipv4.vs.sloppy_sctp",
        get: |a| flag(a, |d| d.sloppy_sctp),
        set: |a, v| switch(a, |d| &mut d.sloppy_sctp, v),
    },
    Key {
        name: "net.ipv4.vs.expire_nodest_conn",
        get: |a| flag(a, |d| d.expire_nodest_conn),
        set: |a, v| switch(a, |d| &mut d.expire_nodest_conn, v),
    },
    Key {
        name: "net.ipv4.vs.expire_quiescent_template",
        get: |a| flag(a, |d| d.expire_quiescent_template),
        set: |a, v| switch(a, |d| &mut d.expire_quiescent_template, v),
    },
    Key {
        name: "net.ipv4.vs.pmtu_disc",
        get: |a| flag(a, |d| d.pmtu_disc),
        set: |a, v| switch(a, |d| &mut d.pmtu_disc, v),
    },
    Key {
        name: "net.ipv4.vs.backup_only",
        get: |a| flag(a, |d| d.backup_only),
        set: |a, v| switch(a, |d| &mut d.backup_only, v),
    },
    Key {
        name: "net.ipv4.vs.nat_icmp_send",
        get: |a| flag(a, |d| d.nat_icmp_send),
        set: |a, v| switch(a, |d| &mut d.nat_icmp_send, v),
    },
    Key {
        name: "net.ipv4.vs.schedule_icmp",
        get: |a| flag(a, |d| d.schedule_icmp),
        set: |a, v| switch(a, |d| &mut d.schedule_icmp, v),
    },
    Key {
        name: "net.ipv4.vs.cache_bypass",
        get: |a| flag(a, |d| d.cache_bypass),
        set: |a, v| switch(a, |d| &mut d.cache_bypass, v),
    },
    Key {
        name: "net.ipv4.vs.run_estimation",
        get: |a| flag(a, |d| d.run_estimation),
        set: |a, v| switch(a, |d| &mut d.run_estimation, v),
    },
    Key {
        name: "net.ipv4.vs.sync_persist_mode",
        get: |a| flag(a, |d| d.sync_persist_mode),
        set: |a, v| switch(a, |d| &mut d.sync_persist_mode, v),
    },
    Key {
        name: "net.ipv4.vs.sync_refresh_period",
        get: |a| i64::from(a.director.lock().sync_refresh_period),
        set: |a, v| seconds(a, |d| &mut d.sync_refresh_period, v),
    },
    Key {
        name: "net.ipv4.vs.lblc_expiration",
        get: |a| i64::from(a.director.lock().cache_expiration.lblc),
        set: |a, v| seconds(a, |d| &mut d.cache_expiration.lblc, v),
    },
    Key {
        name: "net.ipv4.vs.lblcr_expiration",
        get: |a| i64::from(a.director.lock().cache_expiration.lblcr),
        set: |a, v| seconds(a, |d| &mut d.cache_expiration.lblcr, v),
    },
    // A bitmap (bits 1 and 2 are read).
    Key {
        name: "net.ipv4.vs.conn_reuse_mode",
        get: |a| i64::from(a.director.lock().conn_reuse_mode),
        set: |a, v| {
            let v = u8::try_from(v).map_err(|_| "Invalid argument".to_string())?;
            a.change_with(|d| {
                d.conn_reuse_mode = v;
                Ok(())
            })
        },
    },
    Key {
        name: "net.ipv4.vs.secure_tcp",
        get: |a| i64::from(a.director.lock().secure_tcp),
        set: |a, v| defence(a, |d| &mut d.secure_tcp, v),
    },
    Key {
        name: "net.ipv4.vs.drop_entry",
        get: |a| i64::from(a.director.lock().drop_entry),
        set: |a, v| defence(a, |d| &mut d.drop_entry, v),
    },
    Key {
        name: "net.ipv4.vs.drop_packet",
        get: |a| i64::from(a.director.lock().drop_packet),
        set: |a, v| defence(a, |d| &mut d.drop_packet, v),
    },
    // drop_packet's rate at 3 (0: none dropped).
    Key {
        name: "net.ipv4.vs.am_droprate",
        get: |a| i64::from(a.director.lock().am_droprate),
        set: |a, v| {
            let v = u32::try_from(v)
                .ok()
                .filter(|v| *v <= i32::MAX as u32)
                .ok_or_else(|| "Invalid argument".to_string())?;
            a.change_with(|d| {
                d.am_droprate = v;
                Ok(())
            })
        },
    },
    // Pages.
    Key {
        name: "net.ipv4.vs.amemthresh",
        get: |a| i64::from(a.director.lock().amemthresh),
        set: |a, v| {
            let v = u32::try_from(v)
                .ok()
                .filter(|v| (1..=crate::config::MAX_AMEMTHRESH).contains(v))
                .ok_or_else(|| "Invalid argument".to_string())?;
            a.change_with(|d| {
                d.amemthresh = v;
                Ok(())
            })?;
            a.update_defence();
            Ok(())
        },
    },
    // 0 or 1 only, as the kernel's proc_do_sync_mode.
    Key {
        name: "net.ipv4.vs.sync_version",
        get: |a| a.sync_daemons().map_or(1, |d| i64::from(d.version())),
        set: |a, v| match (a.sync_daemons(), u8::try_from(v)) {
            (Some(d), Ok(v @ (0 | 1))) => {
                d.set_version(v);
                Ok(())
            }
            (None, _) => Err("no connection sync here (forward = \"lb\" only)".into()),
            _ => Err("Invalid argument".into()),
        },
    },
];

fn key(name: &str) -> Result<&'static Key, String> {
    let dotted = name.replace('/', ".");
    KEYS.iter().find(|k| k.name == dotted).ok_or_else(|| {
        format!(
            "sysctl: cannot stat /proc/sys/{}: No such file or directory",
            dotted.replace('.', "/")
        )
    })
}

/// The directories `sysctl --system` reads `*.conf` files from, in procps's order, and the
/// file it reads last.
const SYSTEM_DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];
const SYSCTL_CONF: &str = "/etc/sysctl.conf";

/// The files `sysctl --system` loads: the `*.conf` files of `dirs` in the order of their
/// names (a name in an earlier directory masks the same name in later ones), then `last`
/// if it exists.
fn system_files(dirs: &[&str], last: &str) -> Vec<String> {
    let mut by_name: Vec<(String, String)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".conf"))
            .collect();
        names.sort();
        for name in names {
            if !by_name.iter().any(|(n, _)| *n == name) {
                let path = std::path::Path::new(dir).join(&name);
                by_name.push((name, path.display().to_string()));
            }
        }
    }
    by_name.sort();
    let mut files: Vec<String> = by_name.into_iter().map(|(_, path)| path).collect();
    if std::path::Path::new(last).exists() {
        files.push(last.to_string());
    }
    files
}

/// What `sysctl -p` was asked: its files (none: /etc/sysctl.conf), `-e`, `-q`; with
/// `--system` the system's files, each announced.
struct Load {
    files: Vec<String>,
    system: bool,
    ignore_unknown: bool,
    quiet: bool,
}

/// `sysctl [-e] [-q] -p [FILE]...` (also `-pFILE`, `--load[=FILE]`, `-f`) or `sysctl
/// --system`: None when the line loads no file.
fn load_args(args: &[&str]) -> Option<Load> {
    let mut load = Load {
        files: Vec::new(),
        system: false,
        ignore_unknown: false,
        quiet: false,
    };
    let mut loading = false;
    for &a in args {
        match a {
            "-e" | "--ignore" => load.ignore_unknown = true,
            "-q" | "--quiet" => load.quiet = true,
            "-w" | "--write" => {}
            "-p" | "-f" | "--load" => loading = true,
            // As procps: --system implies --ignore.
            "--system" => (loading, load.system, load.ignore_unknown) = (true, true, true),
            _ => match ["--load=", "-p", "-f"]
                .iter()
                .find_map(|flag| a.strip_prefix(flag))
            {
                Some(file) => {
                    loading = true;
                    load.files.push(file.to_string());
                }
                None if loading => load.files.push(a.to_string()),
                None => return None,
            },
        }
    }
    loading.then_some(load)
}

impl Appliance {
    /// `sysctl -p FILE`: each `NAME = VALUE` line of the files set, in order, as sysctl(8)
    /// loads sysctl.conf (`#` and `;` comments, blank lines; a line starting with `-` may
    /// fail quietly); a name rvs does not have is reported and skipped (`-e`: silently),
    /// so an LVS director's /etc/sysctl.d file loads whole; each setting set is echoed
    /// (`-q`: not). Status 1 when a line failed, as sysctl's. `--system` loads the files
    /// of [`system_files`], each announced as procps does (`* Applying FILE ...`).
    fn sysctl_load(&self, load: &Load) -> Reply {
        let (mut out, mut err, mut failed) = (String::new(), String::new(), false);
        let files = if load.system {
            system_files(&SYSTEM_DIRS, SYSCTL_CONF)
        } else if load.files.is_empty() {
            vec![SYSCTL_CONF.to_string()]
        } else {
            load.files.clone()
        };
        for file in &files {
            if load.system && !load.quiet {
                out.push_str(&format!("* Applying {file} ...\n"));
            }
            let text = match read_command_file(file) {
                Ok(t) => t,
                Err(e) => {
                    err.push_str(&format!("sysctl: cannot open \"{file}\": {e}\n"));
                    failed = true;
                    continue;
                }
            };
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                    continue;
                }
                let (quiet_failure, line) = match line.strip_prefix('-') {
                    Some(rest) => (true, rest.trim_start()),
                    None => (false, line),
                };
                let Some((name, value)) = line.split_once('=') else {
                    err.push_str(&format!(
                        "sysctl: {file}: line \"{line}\": missing '=' after the name\n"
                    ));
                    failed = true;
                    continue;
                };
                let name = name.trim();
                let unknown = key(name).is_err();
                match self.sysctl_write(name, value.trim()) {
                    Ok(set) if !load.quiet => out.push_str(&set),
                    Ok(_) => {}
                    Err(_) if quiet_failure || (unknown && load.ignore_unknown) => {}
                    Err(e) => {
                        err.push_str(&e);
                        err.push('\n');
                        failed = true;
                    }
                }
            }
        }
        Reply {
            status: if failed { 1 } else { 0 },
            out,
            err,
        }
    }

    /// `sysctl [-a]`, `sysctl NAME...`, `sysctl [-w] NAME=VALUE...`: each setting read or
    /// written is echoed as `NAME = VALUE`; the first unknown name or bad value stops there.
    /// `sysctl -p FILE` loads a sysctl.conf ([`Appliance::sysctl_load`]).
    pub(super) fn sysctl_verb(&self, args: &[&str]) -> Reply {
        if let Some(load) = load_args(args) {
            return self.sysctl_load(&load);
        }
        let args: Vec<&str> = args.iter().copied().filter(|a| *a != "-w").collect();
        if args.is_empty() || args == ["-a"] {
            let all: String = KEYS
                .iter()
                .map(|k| format!("{} = {}\n", k.name, (k.get)(self)))
                .collect();
            return Reply::ok(all);
        }
        let mut out = String::new();
        for arg in args {
            let result = match arg.split_once('=') {
                None => key(arg).map(|k| format!("{} = {}\n", k.name, (k.get)(self))),
                Some((name, value)) => self.sysctl_write(name.trim(), value.trim()),
            };
            match result {
                Ok(line) => out.push_str(&line),
                Err(e) => {
                    let mut r = Reply::fail(REFUSED, e);
                    r.out = out;
                    return r;
                }
            }
        }
        Reply::ok(out)
    }

    fn sysctl_write(&self, name: &str, value: &str) -> Result<String, String> {
        let k = key(name)?;
        let setting = |e: String| format!("sysctl: setting key \"{}\": {e}", k.name);
        let n: i64 = value
            .parse()
            .map_err(|_| setting("Invalid argument".into()))?;
        (k.set)(self, n).map_err(setting)?;
        Ok(format!("{} = {value}\n", k.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--system` reads the directories' `*.conf` files by name, an earlier directory's
    /// masking a later one's of the same name, and the last file only if it exists.
    #[test]
    fn system_files_follow_procps_order() {
        let root = std::env::temp_dir().join(format!("rvs-sysctl-system-{}", std::process::id()));
        let (etc, lib) = (root.join("etc"), root.join("lib"));
        for d in [&etc, &lib] {
            std::fs::create_dir_all(d).unwrap();
        }
        for f in [
            etc.join("60-ipvs.conf"),
            etc.join("README"),
            lib.join("60-ipvs.conf"),
            lib.join("50-pid-max.conf"),
            lib.join("99-z.conf"),
            root.join("sysctl.conf"),
        ] {
            std::fs::write(f, "").unwrap();
        }
        let path = |p: std::path::PathBuf| p.display().to_string();
        let (etc_s, lib_s) = (path(etc.clone()), path(lib.clone()));
        let last = path(root.join("sysctl.conf"));
        let missing = path(root.join("missing"));
        assert_eq!(
            system_files(&[&etc_s, &missing, &lib_s], &last),
            [
                path(lib.join("50-pid-max.conf")),
                path(etc.join("60-ipvs.conf")),
                path(lib.join("99-z.conf")),
                last.clone(),
            ]
        );
        assert_eq!(
            system_files(&[&lib_s], &missing),
            [
                path(lib.join("50-pid-max.conf")),
                path(lib.join("60-ipvs.conf")),
                path(lib.join("99-z.conf")),
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn system_implies_ignore() {
        let load = load_args(&["--system"]).unwrap();
        assert!(load.system && load.ignore_unknown && !load.quiet);
        assert!(load_args(&["-q", "--system"]).unwrap().quiet);
        assert!(load_args(&["net.ipv4.vs.pmtu_disc"]).is_none());
    }
}
