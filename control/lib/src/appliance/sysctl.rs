//! The console's `sysctl`: the kernel settings an LVS director is tuned by, read and
//! written under sysctl(8)'s names and syntax (`sysctl -w net.ipv4.vs.expire_nodest_conn=1`),
//! applied to the running configuration at once. A reload takes the files' values again,
//! as a reboot takes sysctl.conf's (sync_version, which no file sets, stays).

use super::*;
use crate::director::Director;

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

const KEYS: [Key; 8] = [
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

impl Appliance {
    /// `sysctl [-a]`, `sysctl NAME...`, `sysctl [-w] NAME=VALUE...`: each setting read or
    /// written is echoed as `NAME = VALUE`; the first unknown name or bad value stops there.
    pub(super) fn sysctl_verb(&self, args: &[&str]) -> Reply {
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
