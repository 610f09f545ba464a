//! The console's `sysctl`: the kernel settings an LVS director is tuned by, read and
//! written under sysctl(8)'s names and syntax (`sysctl -w net.ipv4.vs.expire_nodest_conn=1`),
//! applied to the running configuration at once. A reload takes the files' values again,
//! as a reboot takes sysctl.conf's.

use super::*;
use crate::director::Director;

/// A setting: its name, how it reads from and writes to the model.
struct Key {
    name: &'static str,
    get: fn(&Director) -> bool,
    set: fn(&mut Director, bool),
}

const KEYS: [Key; 4] = [
    Key {
        name: "net.ipv4.ip_forward",
        get: |d| d.ip_forward,
        set: |d, v| d.ip_forward = v,
    },
    Key {
        name: "net.ipv4.vs.sloppy_tcp",
        get: |d| d.sloppy_tcp,
        set: |d, v| d.sloppy_tcp = v,
    },
    Key {
        name: "net.ipv4.vs.expire_nodest_conn",
        get: |d| d.expire_nodest_conn,
        set: |d, v| d.expire_nodest_conn = v,
    },
    Key {
        name: "net.ipv4.vs.expire_quiescent_template",
        get: |d| d.expire_quiescent_template,
        set: |d, v| d.expire_quiescent_template = v,
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
            let d = self.director.lock();
            let all: String = KEYS
                .iter()
                .map(|k| format!("{} = {}\n", k.name, u8::from((k.get)(&d))))
                .collect();
            return Reply::ok(all);
        }
        let mut out = String::new();
        for arg in args {
            let result = match arg.split_once('=') {
                None => key(arg).map(|k| {
                    let v = (k.get)(&self.director.lock());
                    format!("{} = {}\n", k.name, u8::from(v))
                }),
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
        // The kernel's proc_dointvec: any integer, non-zero on.
        let n: i64 = value
            .parse()
            .map_err(|_| format!("sysctl: setting key \"{}\": Invalid argument", k.name))?;
        self.change_with(|d| {
            (k.set)(d, n != 0);
            Ok(())
        })
        .map_err(|e| format!("sysctl: setting key \"{}\": {e}", k.name))?;
        Ok(format!("{} = {value}\n", k.name))
    }
}
