//! The host's network configuration through iproute2's `ip` (host twins, VIPs on them, the
//! announce table, AF_XDP interfaces): control side only, never on a worker.

/// Runs `ip ARGS...`; the error names the command and carries what `ip` said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A routing table's number from its name as iproute2 knows it (`ip route ... table
/// NAME`): a number, `main`, `local`, `default`, `unspec`, or a name in
/// /etc/iproute2/rt_tables (and rt_tables.d/*.conf), as keepalived reads them.
pub fn table_number(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let builtin = match name {
        "unspec" => Some(0),
        "default" => Some(253),
        "main" => Some(254),
        "local" => Some(255),
        _ => None,
    };
    builtin.or_else(|| {
        let mut files = vec![std::path::PathBuf::from("/etc/iproute2/rt_tables")];
        for dir in [
            "/etc/iproute2/rt_tables.d",
            "/usr/share/iproute2/rt_tables.d",
        ] {
            if let Ok(entries) = std::fs::read_dir(dir) {
                let mut confs: Vec<_> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                    .collect();
                confs.sort();
                files.extend(confs);
            }
        }
        files.push("/usr/share/iproute2/rt_tables".into());
        files.iter().find_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            table_in(&text, name)
        })
    })
}

/// A DS field's value as `ip rule ... tos` takes it: a number (decimal or 0x hex) up to
/// 255, or a name in rt_dsfield (`CS1`, `AF11`, `EF`...), as keepalived reads it.
pub fn dsfield_number(name: &str) -> Option<u8> {
    let number = name
        .strip_prefix("0x")
        .map_or_else(|| name.parse().ok(), |h| u8::from_str_radix(h, 16).ok());
    number.or_else(|| {
        ["/etc/iproute2/rt_dsfield", "/usr/share/iproute2/rt_dsfield"]
            .iter()
            .find_map(|f| table_in(&std::fs::read_to_string(f).ok()?, name))
            .and_then(|n| u8::try_from(n).ok())
    })
}

/// An IP protocol's number as `ip rule ... ipproto` takes it: a number up to 255 or a
/// name of /etc/protocols (`tcp`, `udp`, `sctp`, `ipv6-icmp`...).
pub fn protocol_number(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let listed = std::fs::read_to_string("/etc/protocols")
        .ok()
        .and_then(|text| {
            text.lines()
                .map(|l| l.split('#').next().unwrap_or(""))
                .find_map(|l| {
                    let mut words = l.split_whitespace();
                    let first = words.next()?;
                    let number: u8 = words.next()?.parse().ok()?;
                    (first == name || words.any(|alias| alias == name)).then_some(number)
                })
        });
    listed.or(match name {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "gre" => Some(47),
        "ipv6-icmp" => Some(58),
        "sctp" => Some(132),
        _ => None,
    })
}

/// `name`'s number in an rt_tables file's text (`NUMBER NAME` lines, `#` comments).
fn table_in(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .find_map(|l| {
            let mut words = l.split_whitespace();
            let number = words.next()?;
            (words.next() == Some(name)).then(|| {
                number
                    .strip_prefix("0x")
                    .map_or_else(|| number.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
            })?
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_by_number_builtin_name_and_rt_tables_line() {
        assert_eq!(table_number("100"), Some(100));
        assert_eq!(table_number("main"), Some(254));
        assert_eq!(table_number("default"), Some(253));
        let text =
            "#\n# reserved values\n255\tlocal\n254 main\n100 isp1 # first uplink\n0x65 isp2\n";
        assert_eq!(table_in(text, "isp1"), Some(100));
        assert_eq!(table_in(text, "isp2"), Some(101));
        assert_eq!(table_in(text, "first"), None);
        assert_eq!(table_in(text, "isp3"), None);
    }

    #[test]
    fn ds_fields_and_protocols_by_number_or_name() {
        assert_eq!(dsfield_number("0x10"), Some(0x10));
        assert_eq!(dsfield_number("32"), Some(32));
        assert_eq!(dsfield_number("0x100"), None);
        assert_eq!(dsfield_number("nonesuch"), None);
        assert_eq!(protocol_number("tcp"), Some(6));
        assert_eq!(protocol_number("ipv6-icmp"), Some(58));
        assert_eq!(protocol_number("132"), Some(132));
        assert_eq!(protocol_number("256"), None);
        assert_eq!(protocol_number("nonesuch"), None);
    }
}
