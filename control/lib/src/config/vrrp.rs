//! The TOML form of keepalived's VRRP sections: `[[vrrp_instance]]`, `[[vrrp_script]]`,
//! `[[vrrp_track_process]]`, `[[vrrp_sync_group]]`, `[[bfd_instance]]` (keys named as keepalived
//! names them, `name` for the block's name), `[[garp_group]]` (`garp_interval`, `gna_interval`, `interface` or
//! `interfaces = [...]`; no name) and `[vrrp]` (`version`, `garp_master_delay`, `garp_master_repeat`,
//! `lvs_sync_daemon`, `notify_fifo`, `notify_fifo_script`, `fifo_write_states_on_reload`,
//! `notify_priority_changes`, `startup_delay`, `log_unknown_vrids`, `strict`,
//! `down_timer_adverts`, `garp_interval`, `gna_interval`, `min_garp`, `garp_extra_if`
//! (`"100 all"`), `startup_script`, `shutdown_script` and their `_timeout`s: global_defs'
//! keywords), `[[rule]]` (a static_rules line by keys).
//! Each table becomes keepalived's statement tree, so both files mean
//! exactly the same; errors name the table's line.

use super::source::{ConfigError, Source};
use crate::keepalived::syntax::Statement;
use crate::vrrp::VrrpConf;
use toml::{Table, Value};

/// Keys whose array is a block of lines (one statement per element).
const BLOCKS: &[&str] = &[
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "virtual_routes",
    "unicast_peer",
    "track_interface",
    "track_script",
    "track_process",
    "track_bfd",
    "virtual_rules",
    "group",
    "interfaces",
];

#[derive(Debug, Default)]
pub(super) struct RawVrrp {
    pub instances: Vec<Table>,
    pub scripts: Vec<Table>,
    pub processes: Vec<Table>,
    pub groups: Vec<Table>,
    pub garp_groups: Vec<Table>,
    pub bfd_instances: Vec<Table>,
    /// `[[rule]]`: keepalived's static_rules.
    pub rules: Vec<Table>,
    pub globals: Option<Table>,
    /// `[mail]`: global_defs' e-mail alert keywords.
    pub mail: Option<Table>,
}

/// `[mail]`'s keys: global_defs' keywords of the same names.
const MAIL_KEYS: &[&str] = &[
    "smtp_server",
    "notification_email",
    "notification_email_from",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "router_id",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
    "no_email_faults",
    "no_checker_emails",
];

/// `[mail]` as global_defs statements; what keepalived would warn about and ignore is an
/// error naming the key.
fn mail_statements(source: &Source, table: &Table) -> Result<Vec<Statement>, ConfigError> {
    let line = header_line(source, "[mail]", 0);
    let err = |key: &str, message: String| ConfigError {
        file: source.file.clone(),
        line: Some(line),
        field: format!("mail.{key}"),
        message,
    };
    let mut out = Vec::new();
    for (key, value) in table {
        if !MAIL_KEYS.contains(&key.as_str()) {
            return Err(err(key, format!("unknown key ({})", MAIL_KEYS.join(", "))));
        }
        let st = |keyword: &str, args: Vec<String>, block: Option<Vec<Statement>>| Statement {
            keyword: keyword.to_string(),
            args,
            block,
            file: source.file.clone(),
            line,
        };
        let statement = match (key.as_str(), value) {
            ("notification_email", Value::Array(items)) => {
                let mut block = Vec::new();
                for item in items {
                    let Some(address) = item.as_str() else {
                        return Err(err(key, "addresses (strings) expected".into()));
                    };
                    block.push(st(address, Vec::new(), None));
                }
                st(key, Vec::new(), Some(block))
            }
            ("notification_email", _) => {
                return Err(err(key, "a list of addresses expected".into()))
            }
            ("no_email_faults", Value::Boolean(false)) => continue,
            (_, Value::Boolean(b)) => st(key, vec![b.to_string()], None),
            (_, v) => {
                let text = scalar(v)
                    .ok_or_else(|| err(key, "a string, number or boolean expected".into()))?;
                st(
                    key,
                    text.split_whitespace().map(String::from).collect(),
                    None,
                )
            }
        };
        let mut warnings = Vec::new();
        crate::mail::MailConf::from_global_defs(std::slice::from_ref(&statement), &mut warnings);
        if let Some(w) = warnings.first() {
            let at = format!("{}:{line}: ", source.file);
            return Err(err(key, w.strip_prefix(&at).unwrap_or(w).to_string()));
        }
        out.push(statement);
    }
    Ok(out)
}

/// The line of the `n`th `[[header]]` (or `[header]`) of the text.
fn header_line(source: &Source, header: &str, n: usize) -> usize {
    source
        .text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == header)
        .nth(n)
        .map_or(1, |(i, _)| i + 1)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

fn statements(
    table: &Table,
    file: &str,
    line: usize,
    field: &str,
) -> Result<Vec<Statement>, String> {
    let st = |keyword: &str, args: Vec<String>, block: Option<Vec<Statement>>| Statement {
        keyword: keyword.to_string(),
        args,
        block,
        file: file.to_string(),
        line,
    };
    let mut out = Vec::new();
    for (key, value) in table {
        if key == "name" {
            continue;
        }
        let bad = || format!("{field}.{key}: unexpected value {value}");
        match value {
            Value::Boolean(true) => out.push(st(key, Vec::new(), None)),
            // An explicit no where the default comes from elsewhere (global_defs).
            Value::Boolean(false) if key == "smtp_alert" => {
                out.push(st(key, vec!["false".into()], None))
            }
            Value::Boolean(false) => {}
            Value::Table(t) => out.push(st(
                key,
                Vec::new(),
                Some(statements(t, file, line, &format!("{field}.{key}"))?),
            )),
            Value::Array(items) if BLOCKS.contains(&key.as_str()) => {
                let mut block = Vec::new();
                for item in items {
                    let text = scalar(item).ok_or_else(bad)?;
                    let mut words = text.split_whitespace().map(String::from);
                    let Some(first) = words.next() else {
                        return Err(format!("{field}.{key}: an empty entry"));
                    };
                    block.push(st(&first, words.collect(), None));
                }
                out.push(st(key, Vec::new(), Some(block)));
            }
            Value::Array(items) => {
                let args = items
                    .iter()
                    .map(scalar)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                out.push(st(key, args, None));
            }
            v => out.push(st(key, vec![scalar(v).ok_or_else(bad)?], None)),
        }
    }
    Ok(out)
}

/// The keepalived statements of the TOML's VRRP tables, read as keepalived.conf would be.
pub(super) fn validate(source: &Source, raw: &RawVrrp) -> Result<VrrpConf, ConfigError> {
    let err = |line: usize, field: String, message: String| ConfigError {
        file: source.file.clone(),
        line: Some(line),
        field,
        message,
    };
    let mut top = Vec::new();
    for (kind, tables) in [
        ("vrrp_script", &raw.scripts),
        ("vrrp_track_process", &raw.processes),
        ("vrrp_sync_group", &raw.groups),
        ("vrrp_instance", &raw.instances),
        ("bfd_instance", &raw.bfd_instances),
    ] {
        for (n, t) in tables.iter().enumerate() {
            let line = header_line(source, &format!("[[{kind}]]"), n);
            let field = format!("{kind}[{n}]");
            let name = t
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| err(line, field.clone(), "a name (string) is required".into()))?;
            let block = statements(t, &source.file, line, &field)
                .map_err(|m| err(line, field.clone(), m))?;
            top.push(Statement {
                keyword: kind.into(),
                args: vec![name.to_string()],
                block: Some(block),
                file: source.file.clone(),
                line,
            });
        }
    }
    for (n, t) in raw.garp_groups.iter().enumerate() {
        let line = header_line(source, "[[garp_group]]", n);
        let field = format!("garp_group[{n}]");
        let block =
            statements(t, &source.file, line, &field).map_err(|m| err(line, field.clone(), m))?;
        top.push(Statement {
            keyword: "garp_group".into(),
            args: Vec::new(),
            block: Some(block),
            file: source.file.clone(),
            line,
        });
    }
    let mut globals = Vec::new();
    if let Some(g) = &raw.globals {
        let line = header_line(source, "[vrrp]", 0);
        for (key, value) in g {
            let keyword = match key.as_str() {
                "version" => "vrrp_version",
                "garp_master_delay" => "vrrp_garp_master_delay",
                "garp_master_repeat" => "vrrp_garp_master_repeat",
                "lvs_sync_daemon" => "lvs_sync_daemon",
                "notify_fifo" => "vrrp_notify_fifo",
                "notify_fifo_script" => "vrrp_notify_fifo_script",
                "fifo_write_states_on_reload" => "fifo_write_vrrp_states_on_reload",
                "notify_priority_changes" => "vrrp_notify_priority_changes",
                "startup_delay" => "vrrp_startup_delay",
                "log_unknown_vrids" => "log_unknown_vrids",
                "strict" => "vrrp_strict",
                "down_timer_adverts" => "vrrp_down_timer_adverts",
                "garp_interval" => "vrrp_garp_interval",
                "gna_interval" => "vrrp_gna_interval",
                "min_garp" => "vrrp_min_garp",
                "garp_extra_if" => "vrrp_garp_extra_if",
                "startup_script" => "startup_script",
                "startup_script_timeout" => "startup_script_timeout",
                "shutdown_script" => "shutdown_script",
                "shutdown_script_timeout" => "shutdown_script_timeout",
                k => return Err(err(
                    line,
                    format!("vrrp.{k}"),
                    "unknown key (version, garp_master_delay, garp_master_repeat, lvs_sync_daemon, notify_fifo, notify_fifo_script, fifo_write_states_on_reload, notify_priority_changes, startup_delay, log_unknown_vrids, strict, down_timer_adverts, garp_interval, gna_interval, min_garp, garp_extra_if, startup_script, startup_script_timeout, shutdown_script, shutdown_script_timeout)"
                        .into(),
                )),
            };
            let text = match value {
                Value::Boolean(b) => Some(b.to_string()),
                v => scalar(v),
            }
            .ok_or_else(|| {
                err(
                    line,
                    format!("vrrp.{key}"),
                    "a string, number or boolean".into(),
                )
            })?;
            // A script is one command line, as keepalived's quoted string.
            let args = if keyword.ends_with("_script") {
                vec![text]
            } else {
                text.split_whitespace().map(String::from).collect()
            };
            globals.push(Statement {
                keyword: keyword.into(),
                args,
                block: None,
                file: source.file.clone(),
                line,
            });
        }
    }
    if let Some(m) = &raw.mail {
        globals.extend(mail_statements(source, m)?);
    }
    let mut bfd_warnings = Vec::new();
    let bfds = crate::bfd::from_statements(&top, &mut bfd_warnings);
    let mut conf = VrrpConf::from_statements(&top, &globals, &[], &bfds).map_err(|m| {
        // keepalived's messages start with file:line; split them for ConfigError.
        let rest = m
            .strip_prefix(&format!("{}:", source.file))
            .and_then(|r| r.split_once(": "));
        match rest {
            Some((line, msg)) => err(line.parse().unwrap_or(1), "vrrp".into(), msg.to_string()),
            None => ConfigError {
                file: source.file.clone(),
                line: None,
                field: "vrrp".into(),
                message: m,
            },
        }
    })?;
    conf.warnings.extend(bfd_warnings);
    for (n, t) in raw.rules.iter().enumerate() {
        let line = header_line(source, "[[rule]]", n);
        let field = format!("rule[{n}]");
        let (rule, warnings) = static_rule(source, t, line).map_err(|(key, m)| {
            let field = key.map_or(field.clone(), |k| format!("{field}.{k}"));
            err(line, field, m)
        })?;
        conf.static_rules.push(rule);
        conf.warnings.extend(warnings);
    }
    Ok(conf)
}

impl super::Config {
    /// The data port a keepalived route's `dev` names: by its name or its host twin's.
    pub fn port_named(&self, name: &str) -> Option<u16> {
        self.ports
            .iter()
            .position(|p| p.name == name || p.host_tap.as_deref() == Some(name))
            .and_then(|i| u16::try_from(i).ok())
    }

    /// The data port a gateway is reached by: the longest of the ports' own prefixes and
    /// the configuration's routes that holds it.
    pub fn port_towards(&self, gateway: std::net::IpAddr) -> Option<u16> {
        let connected = self.ports.iter().enumerate().flat_map(|(i, p)| {
            p.addresses
                .iter()
                .zip(&p.prefix_lens)
                .map(move |(a, len)| (rvs_core::engine::masked(*a, *len), *len, i))
        });
        let routed = self
            .lb
            .routes
            .iter()
            .map(|r| (r.prefix, r.len, usize::from(r.port)));
        connected
            .chain(routed)
            .filter(|(prefix, len, _)| rvs_core::engine::masked(gateway, *len) == *prefix)
            .max_by_key(|(_, len, _)| *len)
            .and_then(|(_, _, port)| u16::try_from(port).ok())
    }

    /// The data ports VRRP can speak on: those with a host twin (`macs`: the ports' MACs,
    /// when known).
    pub fn vrrp_links(&self, macs: &[[u8; 6]]) -> Vec<crate::vrrp::Link> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                Some(crate::vrrp::Link {
                    name: p.name.clone(),
                    port: i,
                    twin: p.host_tap.clone()?,
                    mac: macs.get(i).copied().unwrap_or([0; 6]),
                    addr: p.addresses.iter().find_map(|a| match a {
                        std::net::IpAddr::V4(v) => Some(*v),
                        std::net::IpAddr::V6(_) => None,
                    }),
                    router: self.lb.ip_forward,
                })
            })
            .collect()
    }

    /// VRRP as the TOML and the keepalived.conf configure it together, its routes
    /// resolved to ports and every instance checked against the ports (errors name the
    /// file and line); the warnings are the routes left out.
    pub fn vrrp_with(
        &self,
        keepalived: Option<&crate::keepalived::KeepalivedConf>,
    ) -> Result<(VrrpConf, Vec<String>), String> {
        let mut vrrp = self.vrrp.clone();
        if let Some(k) = keepalived {
            vrrp.merge(k.vrrp_conf.clone())?;
        }
        let mut warnings = vrrp.resolve_routes(|n| self.port_named(n), |g| self.port_towards(g));
        warnings.extend(vrrp.resolve_rule_devices(
            |n| self.port_named(n),
            |p| {
                self.ports
                    .get(usize::from(p))
                    .and_then(|port| port.host_tap.clone())
            },
            |n| std::path::Path::new("/sys/class/net").join(n).exists(),
        ));
        crate::vrrp::VrrpRuntime::check(&vrrp, &self.vrrp_links(&[]))
            .map_err(|e| format!("vrrp: {e}"))?;
        // The virtual router MAC's frames reach a port that takes every frame.
        for i in vrrp.instances.iter().filter(|i| i.vmac.is_some()) {
            let port = self.port_named(&i.interface).map(usize::from);
            if port
                .and_then(|p| self.ports.get(p))
                .is_some_and(|p| !p.promiscuous)
            {
                return Err(format!(
                    "{}: vrrp_instance {}: use_vmac needs port {:?} promiscuous (frames to the virtual router's MAC)",
                    i.at, i.name, i.interface
                ));
            }
        }
        Ok((vrrp, warnings))
    }
}

/// A `[[rule]]` (`from`, `to`, `not`, `priority`, the selectors `tos`, `fwmark`, `iif`,
/// `oif`, `ipproto`, `sport`, `dport`, then one of `table`, `goto` or `action` = "nop" /
/// "blackhole" / "unreachable" / "prohibit") read as keepalived reads the static_rules
/// line it stands for; the preference is required, and what keepalived would warn about
/// and leave out (or read past) is an error here. The warnings: what the rule selects
/// nothing of in rvs's data plane.
fn static_rule(
    source: &Source,
    t: &Table,
    line: usize,
) -> Result<(crate::vrrp::conf::VrrpRule, Vec<String>), (Option<String>, String)> {
    let mut words: Vec<String> = Vec::new();
    for (key, value) in t {
        let bad = |what: &str| (Some(key.clone()), format!("expected {what}"));
        match (key.as_str(), value) {
            ("from" | "to", Value::String(v)) => words.extend([key.clone(), v.clone()]),
            ("from" | "to", _) => return Err(bad("a prefix or \"all\"")),
            ("not", Value::Boolean(b)) => {
                if *b {
                    words.push("not".into())
                }
            }
            ("not", _) => return Err(bad("true or false")),
            ("priority" | "goto", Value::Integer(n)) if u32::try_from(*n).is_ok() => {
                words.extend([key.clone(), n.to_string()])
            }
            ("priority" | "goto", _) => return Err(bad("a number from 0 to 4294967295")),
            ("table", Value::Integer(_) | Value::String(_)) => {
                words.extend([key.clone(), scalar(value).unwrap_or_default()])
            }
            ("table", _) => return Err(bad("a table's number or rt_tables name")),
            ("action", Value::String(a))
                if matches!(a.as_str(), "nop" | "blackhole" | "unreachable" | "prohibit") =>
            {
                words.push(a.clone())
            }
            ("action", _) => {
                return Err(bad(
                    "\"nop\", \"blackhole\", \"unreachable\" or \"prohibit\"",
                ))
            }
            ("tos" | "fwmark" | "ipproto", Value::Integer(_) | Value::String(_)) => {
                words.extend([key.clone(), scalar(value).unwrap_or_default()])
            }
            ("tos", _) => return Err(bad("a DS field's number or rt_dsfield name")),
            ("fwmark", _) => return Err(bad("a mark, \"MARK/MASK\" as a string for a mask")),
            ("ipproto", _) => return Err(bad("a protocol's number or name")),
            ("iif" | "oif", Value::String(v)) => words.extend([key.clone(), v.clone()]),
            ("iif" | "oif", _) => return Err(bad("an interface's name")),
            // One port is a range of one here (keepalived's file needs N-N).
            ("sport" | "dport", Value::Integer(n)) => {
                words.extend([key.clone(), format!("{n}-{n}")])
            }
            ("sport" | "dport", Value::String(v)) => words.extend([key.clone(), v.clone()]),
            ("sport" | "dport", _) => return Err(bad("a port or \"FIRST-LAST\"")),
            (k, _) => {
                return Err((
                    Some(k.to_string()),
                    "unknown key (from, to, not, priority, table, goto, action, tos, fwmark, iif, oif, ipproto, sport, dport)".into(),
                ))
            }
        }
    }
    if !t.contains_key("priority") {
        return Err((
            Some("priority".into()),
            "a preference is required (keepalived would pick one from 16384 down)".into(),
        ));
    }
    let mut rest = words.into_iter();
    let statement = Statement {
        keyword: rest.next().unwrap_or_default(),
        args: rest.collect(),
        block: None,
        file: source.file.clone(),
        line,
    };
    let mut warnings = Vec::new();
    let mut preferences = crate::vrrp::conf::RulePreferences::default();
    let mut read_past = Vec::new();
    let rule =
        crate::vrrp::conf::read_rule(&statement, &mut preferences, &mut warnings, &mut read_past);
    // The warning without its place (the error has it) and without "ignored".
    let reason = |w: &str| {
        let why = w.split_once(": ").map_or(w, |(_, w)| w);
        why.trim_end_matches("; ignored")
            .trim_end_matches("; not installed")
            .to_string()
    };
    let Some(rule) = rule else {
        return Err((None, reason(&warnings.join("; "))));
    };
    if let Some((key, said)) = read_past.first() {
        return Err((Some(key.to_string()), reason(said)));
    }
    let notes = crate::vrrp::conf::selector_notes(&statement, &rule);
    Ok((rule, notes))
}
