//! VRRP configuration: keepalived.conf's `vrrp_instance`, `vrrp_script`, `vrrp_sync_group`
//! and the `global_defs` that concern them, read from keepalived's statement tree (the TOML
//! sections of the same names are turned into that tree first). Errors name file and line.

use crate::keepalived::syntax::Statement;
use std::net::IpAddr;
use std::time::Duration;

/// A script keepalived would run, and the user it runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub command: String,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    /// `notify`: called with `INSTANCE|GROUP name state priority` on every change.
    pub any: Option<Script>,
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
    /// `notify_master_rx_lower_pri`: run (without arguments) when a MASTER hears a lower
    /// priority.
    pub master_rx_lower_pri: Option<Script>,
    /// `notify_deleted [SCRIPT]`: an instance a reload removes is notified as DELETED
    /// (with this script, if given); without it keepalived notifies it as FAULT.
    pub deleted: Option<Script>,
    pub notify_deleted: bool,
}

impl Notify {
    /// Takes a `notify*` statement; false when it is not one.
    fn take(&mut self, s: &Statement) -> Result<bool, String> {
        let slot = match s.keyword.as_str() {
            "notify" => &mut self.any,
            "notify_master" => &mut self.master,
            "notify_backup" => &mut self.backup,
            "notify_fault" => &mut self.fault,
            "notify_stop" => &mut self.stop,
            "notify_master_rx_lower_pri" => &mut self.master_rx_lower_pri,
            "notify_deleted" => {
                self.notify_deleted = true;
                if s.args.is_empty() {
                    return Ok(true);
                }
                &mut self.deleted
            }
            _ => return Ok(false),
        };
        *slot = Some(Script {
            command: s.arg(0)?.to_string(),
            user: s.args.get(1).cloned(),
        });
        Ok(true)
    }
}

/// A `virtual_ipaddress` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// file:line of the entry.
    pub at: String,
    pub addr: IpAddr,
    pub len: u8,
    /// `dev IF`: the interface it goes on (else the instance's).
    pub dev: Option<String>,
    pub label: Option<String>,
    /// `no_track`: its `dev` going down does not fault the instance.
    pub no_track: bool,
}

/// `use_ipvlan`'s words as keepalived reads them: `bridge`, `private` or `vepa` (the mode
/// between ipvlans of one port: nothing to rvs), an address (with its prefix length), an
/// interface name; a second of a kind is ignored with keepalived's message.
fn use_ipvlan(c: &Statement, name: &str, warnings: &mut Vec<String>) -> Ipvlan {
    let mut v = Ipvlan {
        name: None,
        address: None,
    };
    let mut mode_given = false;
    let mut said =
        |what: String| warnings.push(format!("{}: vrrp_instance {name}: {what}", c.at()));
    for w in &c.args {
        match w.as_str() {
            "bridge" | "private" | "vepa" if mode_given => {
                said(format!("ipvlan type already specified - ignoring '{w}'"))
            }
            "bridge" | "private" | "vepa" => mode_given = true,
            _ => match address(c, w) {
                Ok(_) if v.address.is_some() => {
                    said(format!("ipvlan address already specified - ignoring '{w}'"))
                }
                Ok((addr, len)) => {
                    v.address = Some(VirtualAddress {
                        at: c.at(),
                        addr,
                        len,
                        dev: None,
                        label: None,
                        no_track: false,
                    })
                }
                Err(_) if v.name.is_some() => said(format!(
                    "IPVLAN interface already specified - ignoring '{w}'"
                )),
                Err(_) if w.len() >= 16 => {
                    said(format!("IPVLAN interface name '{w}' too long - ignoring"))
                }
                Err(_) => v.name = Some(w.clone()),
            },
        }
    }
    v
}

/// An instance's `use_ipvlan`: the interface's name and its address, if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipvlan {
    pub name: Option<String>,
    pub address: Option<VirtualAddress>,
}

/// A `static_routes` or `virtual_routes` entry as rvs's data plane installs it: a
/// destination prefix through a gateway, out of a data port, in a routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRoute {
    /// file:line of the entry.
    pub at: String,
    pub prefix: IpAddr,
    pub len: u8,
    pub via: Option<IpAddr>,
    /// `table N` (main without one): another table is looked in by policy rules only.
    pub table: u32,
    /// `dev IF`: a data port or its host twin by name.
    pub dev: Option<String>,
    /// The data port it leaves by, once resolved ([`VrrpConf::resolve_routes`]).
    pub port: Option<u16>,
    /// `no_track`: its `dev` going down does not fault the instance.
    pub no_track: bool,
}

impl VrrpRoute {
    /// The data plane's route, once resolved.
    pub fn installed(&self) -> Option<rvs_core::engine::Route> {
        Some(rvs_core::engine::Route {
            prefix: self.prefix,
            len: self.len,
            gateway: self.via,
            port: self.port?,
            table: self.table,
        })
    }
}

/// A `static_rules` or `virtual_rules` entry: a policy rule (ip rule's words) as rvs's
/// data plane applies it to what it routes; the host gets it too, as keepalived puts it
/// in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRule {
    /// file:line of the entry.
    pub at: String,
    pub rule: rvs_core::engine::Rule,
    /// The host's names for the interfaces the rule names that are data ports (their
    /// twins'), once resolved.
    pub host_devs: Vec<(String, String)>,
}

impl VrrpRule {
    /// `ip` arguments to `verb` (add, del) the rule on the host; keepalived's protocol
    /// (18) marks the host's copy as VRRP's.
    pub fn ip_args(&self, verb: &str) -> Vec<String> {
        let family = if self.rule.ipv6 { "-6" } else { "-4" };
        let mut args: Vec<String> = vec![family.into(), "rule".into(), verb.into()];
        let host_name = |d: &rvs_core::engine::RuleDev| {
            let name = d.name();
            self.host_devs
                .iter()
                .find(|(n, _)| n == name)
                .map_or_else(|| name.to_string(), |(_, host)| host.clone())
        };
        args.extend(
            self.rule
                .words_with(host_name)
                .split_whitespace()
                .map(String::from),
        );
        args.extend(["priority".to_string(), self.rule.priority.to_string()]);
        args.extend(["protocol".to_string(), "18".to_string()]);
        args
    }
}

/// As `ip rule` lists it: `PREFERENCE: SELECTOR ACTION`.
impl std::fmt::Display for VrrpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule.priority, self.rule.words())
    }
}

/// The rules to apply: the static ones and the virtual_rules of the instances that are
/// MASTER.
pub fn installed_rules<'a>(
    static_rules: &'a [VrrpRule],
    masters: impl Iterator<Item = &'a Instance>,
) -> Vec<rvs_core::engine::Rule> {
    static_rules
        .iter()
        .chain(masters.flat_map(|i| &i.rules))
        .map(|r| r.rule)
        .collect()
}

/// Preferences keepalived gives rules without one: from 16384 down, per family, in the
/// order the files hold them.
pub(crate) struct RulePreferences([u32; 2]);

impl Default for RulePreferences {
    fn default() -> Self {
        RulePreferences([16384; 2])
    }
}

/// One `static_rules` / `virtual_rules` line as keepalived reads it (vrrp_iprule.c): a
/// rule it would refuse (or the kernel would) is left out with its message; one whose
/// selector rvs's data plane cannot apply (user ids, realms, suppressors, tunnel ids,
/// l3mdev) is left out with a warning, as a route rvs cannot install.
pub(crate) fn rule_entry(
    s: &Statement,
    next: &mut RulePreferences,
    warnings: &mut Vec<String>,
) -> Option<VrrpRule> {
    let mut read_past = Vec::new();
    let rule = read_rule(s, next, warnings, &mut read_past)?;
    warnings.extend(read_past.into_iter().map(|(_, said)| said));
    warnings.extend(selector_notes(s, &rule));
    Some(rule)
}

/// What a rule's selectors select nothing of in rvs's data plane (its host copy goes in).
pub(crate) fn selector_notes(s: &Statement, r: &VrrpRule) -> Vec<String> {
    let line = std::iter::once(s.keyword.as_str())
        .chain(s.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let select = &r.rule.select;
    let mut notes = Vec::new();
    if select.fwmark.is_some_and(|(v, m)| v & m != 0) {
        notes.push(format!(
            "{}: rule {line:?}: rvs's packets carry the marks of its [[fwmark]] rules alone (iptables' MARK rules do not see them): the rule selects what those mark (the host's copy is installed)",
            s.at()
        ));
    }
    if select.oif.is_some() {
        notes.push(format!(
            "{}: rule {line:?}: rvs binds no lookup to an output interface: the rule selects nothing rvs routes (the host's copy is installed)",
            s.at()
        ));
    }
    notes
}

/// [`rule_entry`]'s reading: refusals and keepalived's own warnings go to `warnings`;
/// what keepalived says and reads past (the rule kept without it) to `read_past`, by the
/// selector's key.
pub(crate) fn read_rule(
    s: &Statement,
    next: &mut RulePreferences,
    warnings: &mut Vec<String>,
    read_past: &mut Vec<(&'static str, String)>,
) -> Option<VrrpRule> {
    use rvs_core::engine::{Rule, RuleAction};
    let words: Vec<&str> = std::iter::once(s.keyword.as_str())
        .chain(s.args.iter().map(String::as_str))
        .collect();
    let line = words.join(" ");
    let mut refused = |why: String| {
        warnings.push(format!("{}: rule {line:?}: {why}; ignored", s.at()));
        None
    };
    let (mut family, mut from, mut to, mut priority, mut action) =
        (None::<bool>, None, None, None, None);
    let mut invert = false;
    let mut goto_target = None;
    let mut select = rvs_core::engine::RuleSelectors::default();
    // keepalived's "all" and prefixes; the family agrees with what came before.
    let mut family_of = |ipv6: bool| -> Result<(), String> {
        match family {
            Some(f) if f != ipv6 => Err("rule specification has mixed IPv4 and IPv6".into()),
            _ => {
                family = Some(ipv6);
                Ok(())
            }
        }
    };
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        let value = words.get(i).copied();
        match w {
            "inet" | "inet6" => {
                if family_of(w == "inet6").is_err() {
                    let other = if w == "inet6" { 4 } else { 6 };
                    return refused(format!("{w} specified for IPv{other} rule"));
                }
            }
            "from" | "to" => {
                i += 1;
                let Some(v) = value else {
                    return refused(format!("Invalid rule {w} address (none)"));
                };
                let prefix = if v == "all" {
                    None
                } else {
                    match address(s, v) {
                        Ok((a, len)) if rvs_core::engine::masked(a, len) == a => Some((a, len)),
                        _ => return refused(format!("Invalid rule {w} address {v}")),
                    }
                };
                if let Some((a, _)) = prefix {
                    if let Err(e) = family_of(a.is_ipv6()) {
                        return refused(e);
                    }
                }
                if w == "from" {
                    from = prefix;
                } else {
                    to = prefix;
                }
            }
            "table" | "lookup" => {
                i += 1;
                let Some(t) = value.and_then(crate::iproute::table_number) else {
                    return refused(format!(
                        "Routing table {} not found for rule",
                        value.unwrap_or("")
                    ));
                };
                if t == 0 {
                    return refused("Table 0 is not valid".into());
                }
                if action.is_some() {
                    return refused("Cannot specify more than one of table/nop/goto/blackhole/prohibit/unreachable for rule".into());
                }
                action = Some(RuleAction::Table(t));
            }
            "not" => invert = true,
            "preference" | "order" | "priority" => {
                i += 1;
                match value.and_then(|v| v.parse::<u32>().ok()) {
                    Some(p) => priority = Some(p),
                    None => {
                        return refused(format!(
                            "Invalid rule preference {} specified",
                            value.unwrap_or("")
                        ))
                    }
                }
            }
            "no_track" => {}
            // keepalived marks its rules with its own protocol whatever this says.
            "protocol" => i += 1,
            "tos" | "dsfield" => {
                i += 1;
                match value.and_then(crate::iproute::dsfield_number) {
                    Some(t) => select.tos = Some(t),
                    None => {
                        return refused(format!("TOS value {} is invalid", value.unwrap_or("")))
                    }
                }
            }
            "fwmark" => {
                i += 1;
                let v = value.unwrap_or("");
                match fwmark(v) {
                    Some(m) => select.fwmark = Some(m),
                    None => return refused(format!("Invalid rule fwmark {v} specified")),
                }
            }
            "dev" | "iif" | "oif" => {
                i += 1;
                let Some(dev) = value.and_then(rvs_core::engine::RuleDev::new) else {
                    return refused(format!(
                        "WARNING - interface {} for rule doesn't exist",
                        value.unwrap_or("")
                    ));
                };
                if w == "oif" {
                    select.oif = Some(dev);
                } else {
                    select.iif = Some(dev);
                }
            }
            // keepalived says what it cannot read and keeps the rule without it.
            "ipproto" => {
                i += 1;
                match value.and_then(crate::iproute::protocol_number) {
                    Some(p) => select.ipproto = Some(p),
                    None => read_past.push((
                        "ipproto",
                        format!(
                            "{}: rule {line:?}: Invalid ipproto {}",
                            s.at(),
                            value.unwrap_or("")
                        ),
                    )),
                }
            }
            "sport" | "dport" => {
                i += 1;
                let v = value.unwrap_or("");
                match port_range(v) {
                    // The kernel's refusal (a range from 0, or to 65535, or backwards).
                    Some((a, b)) if a == 0 || b == u16::MAX || a > b => {
                        return refused(format!("Invalid {w} range {v} (the kernel refuses it)"))
                    }
                    Some(r) if w == "sport" => select.sport = Some(r),
                    Some(r) => select.dport = Some(r),
                    // keepalived 2.2.7 reads `N-M` only: a single port is said invalid and
                    // the rule goes in without it.
                    None => read_past.push((
                        if w == "sport" { "sport" } else { "dport" },
                        format!(
                            "{}: rule {line:?}: invalid {w} range {v} (keepalived 2.2.7 reads a range only: write {v}-{v}); the rule selects any {w}",
                            s.at()
                        ),
                    )),
                }
            }
            "realms"
            | "suppress_prefixlength"
            | "sup_pl"
            | "suppress_ifgroup"
            | "sup_group"
            | "tunnel-id"
            | "uidrange"
            | "track_group" => {
                warnings.push(format!(
                    "{}: rule {line:?}: {w}: rvs's data plane cannot select by it; not installed",
                    s.at()
                ));
                return None;
            }
            "l3mdev" => {
                warnings.push(format!(
                    "{}: rule {line:?}: l3mdev: rvs has no VRFs; not installed",
                    s.at()
                ));
                return None;
            }
            w => {
                let w = if w == "type" {
                    i += 1;
                    value.unwrap_or("")
                } else {
                    w
                };
                let this = match w {
                    "goto" => {
                        let target = words.get(i).and_then(|v| v.parse::<u32>().ok());
                        i += 1;
                        let Some(target) = target else {
                            return refused(format!("Invalid target {w} specified"));
                        };
                        goto_target = Some(target);
                        RuleAction::Goto(target)
                    }
                    "nop" => RuleAction::Nop,
                    "blackhole" => RuleAction::Blackhole,
                    "unreachable" => RuleAction::Unreachable,
                    "prohibit" => RuleAction::Prohibit,
                    "unicast" | "local" | "broadcast" | "anycast" | "multicast" | "throw"
                    | "nat" | "xresolve" => return refused(format!("Invalid rule action {w}")),
                    _ => return refused(format!("Unknown rule option {w}")),
                };
                if action.is_some() {
                    return refused("Cannot specify more than one of table/nop/goto/blackhole/prohibit/unreachable/l3mdev for rule".into());
                }
                action = Some(this);
            }
        }
    }
    if let Some(target) = goto_target {
        match priority {
            Some(p) if p >= target => {
                return refused(format!(
                    "Invalid rule - preference {p} >= goto target {target}"
                ))
            }
            Some(_) => {}
            None => {
                return refused(format!(
                    "Invalid rule - goto target {target} specified without preference"
                ))
            }
        }
    }
    let Some(action) = action else {
        return refused("No action specified for rule".into());
    };
    let ipv6 = family.unwrap_or(false);
    // The kernel's refusals of a rule's TOS.
    if let Some(t) = select.tos {
        if ipv6 && t & 0x03 != 0 {
            return refused(format!(
                "TOS value {t:#04x}: ECN bits must be 0 (the kernel refuses it)"
            ));
        }
        if !ipv6 && rvs_core::engine::tos_key(false, t) != t {
            return refused(format!(
                "TOS value {t:#04x} is invalid for IPv4 (the kernel takes the bits 0x1c)"
            ));
        }
    }
    let priority = priority.unwrap_or_else(|| {
        let p = &mut next.0[usize::from(ipv6)];
        let given = *p;
        *p = p.saturating_sub(1);
        warnings.push(format!(
            "{}: rule {line:?}: Rule has no preference specified - setting to {given}. This is probably not what you want.",
            s.at()
        ));
        given
    });
    Some(VrrpRule {
        at: s.at(),
        rule: Rule {
            priority,
            ipv6,
            from,
            to,
            select,
            invert,
            action,
        },
        host_devs: Vec::new(),
    })
}

/// `fwmark N[/M]` as keepalived reads it (C's base prefixes; the mask all ones when
/// absent, as the kernel takes it).
fn fwmark(v: &str) -> Option<(u32, u32)> {
    let number = |t: &str| -> Option<u32> {
        if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            u32::from_str_radix(h, 16).ok()
        } else if t.len() > 1 && t.starts_with('0') {
            u32::from_str_radix(&t[1..], 8).ok()
        } else {
            t.parse().ok()
        }
    };
    match v.split_once('/') {
        Some((value, mask)) => Some((number(value)?, number(mask)?)),
        None => Some((number(v)?, u32::MAX)),
    }
}

/// `N-M` (keepalived 2.2.7 takes no single port).
fn port_range(v: &str) -> Option<(u16, u16)> {
    let (a, b) = v.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The routes to install: the static ones and the virtual_routes of the instances that
/// are MASTER, resolved.
pub fn installed_routes<'a>(
    static_routes: &'a [VrrpRoute],
    masters: impl Iterator<Item = &'a Instance>,
) -> Vec<rvs_core::engine::Route> {
    static_routes
        .iter()
        .chain(masters.flat_map(|i| &i.routes))
        .filter_map(VrrpRoute::installed)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub name: String,
    /// Overrides the script's or file's weight (track_script, track_file) or the
    /// interface's 0 (track_interface).
    pub weight: Option<i32>,
    /// `weight W reverse`: the weight's sign swapped.
    pub reverse: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    /// file:line of the `vrrp_instance`.
    pub at: String,
    pub initial_master: bool,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds.
    pub advert_cs: u16,
    pub version: u8,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// Version 2's password: the PASS text, or AH's HMAC key (`auth_ah`).
    pub auth_pass: Option<String>,
    /// `auth_type AH`: adverts carry IPsec AH (HMAC-MD5-96 keyed with `auth_pass`).
    pub auth_ah: bool,
    pub addresses: Vec<VirtualAddress>,
    /// Managed like the others but not listed in adverts.
    pub excluded: Vec<VirtualAddress>,
    /// `unicast_src_ip` or `mcast_src_ip` (keepalived reads both alike): the source of its
    /// adverts instead of the port's address.
    pub unicast_src: Option<IpAddr>,
    /// `track_src_ip`: while that source is not on the port's host twin, the instance is
    /// in FAULT (without it, a configured source is not watched).
    pub track_src: bool,
    /// Why it stays in FAULT whatever its tracking says (`unicast_fault_no_peer` with no
    /// peer).
    pub config_fault: Option<String>,
    pub unicast_peers: Vec<IpAddr>,
    /// Each unicast peer's `min_ttl` and `max_ttl` (keepalived's 0 and 255 by default), in
    /// the order of `unicast_peers`.
    pub unicast_peer_ttls: Vec<(u8, u8)>,
    /// `unicast_ttl`: the TTL (hop limit) of unicast adverts (255 unless set).
    pub unicast_ttl: Option<u8>,
    /// `lower_prio_no_advert` (global_defs' `vrrp_lower_prio_no_advert`): as MASTER, stay
    /// silent on hearing a lower priority instead of advertising at once.
    pub lower_prio_no_advert: bool,
    /// `higher_prio_send_advert` (global_defs' `vrrp_higher_prio_send_advert`): a MASTER
    /// hearing a higher priority advertises once more before it yields.
    pub higher_prio_send_advert: bool,
    /// `check_unicast_src` (global_defs' `vrrp_check_unicast_src`; set too by a peer's
    /// `min_ttl`/`max_ttl`, as keepalived does): a unicast advert must come from one of the
    /// `unicast_peer`s.
    pub check_unicast_src: bool,
    /// `skip_check_adv_addr` (global_defs' `vrrp_skip_check_adv_addr`): a BACKUP does not
    /// check the address list of adverts from the master it heard last.
    pub skip_check_adv_addr: bool,
    /// `dont_track_primary`: its own interface going down does not fault it (nor do its
    /// addresses there).
    pub dont_track_primary: bool,
    /// `notify_priority_changes` (else its sync group's, else global_defs'
    /// `vrrp_notify_priority_changes`): a priority change writes MASTER_PRIORITY or
    /// BACKUP_PRIORITY to the notify FIFOs. None only while parsing.
    pub notify_priority_changes: Option<bool>,
    /// `smtp_alert`: its states are mailed (unset: global_defs' smtp_alert_vrrp, else
    /// smtp_alert, else not).
    pub smtp_alert: Option<bool>,
    pub track_interfaces: Vec<Tracked>,
    pub track_scripts: Vec<Tracked>,
    /// `track_file { NAME [weight W [reverse]] }`.
    pub track_files: Vec<Tracked>,
    /// `track_process { NAME [weight W [reverse]] }`.
    pub track_processes: Vec<Tracked>,
    /// `track_bfd { NAME [weight W [reverse|noreverse]] }`.
    pub track_bfds: Vec<Tracked>,
    pub notify: Notify,
    pub garp_master_delay: Duration,
    pub garp_master_repeat: u32,
    /// `garp_master_refresh`: while MASTER, gratuitous ARPs (unsolicited NAs) again this
    /// often (zero: never), `garp_master_refresh_repeat` of them each time.
    pub garp_refresh: Duration,
    pub garp_refresh_repeat: u32,
    /// `garp_lower_prio_repeat` gratuitous ARPs (unsolicited NAs) when a MASTER hears a
    /// lower priority, again after `garp_lower_prio_delay` (zero: not again); by default
    /// global_defs' `vrrp_garp_lower_prio_*`, else `vrrp_garp_master_*`, as keepalived.
    pub garp_lower_prio_repeat: u32,
    pub garp_lower_prio_delay: Duration,
    /// `mcast_dst_ip` (or global_defs' `vrrp_mcast_group4`/`vrrp_mcast_group6`): the group
    /// its adverts go to and come from, instead of 224.0.0.18 / ff02::12.
    pub mcast_group: Option<IpAddr>,
    /// `virtual_routes`: installed in the data plane while MASTER.
    pub routes: Vec<VrrpRoute>,
    /// `virtual_rules`: applied while MASTER.
    pub rules: Vec<VrrpRule>,
    /// `strict_mode` (global_defs' `vrrp_strict`): RFC compliance as keepalived enforces
    /// it (settings it forbids are reset with a warning; unicast peers are refused).
    pub strict: bool,
    /// Accept mode (`accept`/`no_accept`; by default on but in strict mode, always for the
    /// address owner): while MASTER, traffic to its addresses is taken; without it it is
    /// dropped, as keepalived's firewall drops it.
    pub accept: bool,
    /// `down_timer_adverts` (global_defs' `vrrp_down_timer_adverts`): adverts missed before
    /// a BACKUP takes over (3).
    pub down_timer_adverts: u8,
    /// `use_vmac [NAME] [MAC]`: while MASTER its addresses on its interface are answered
    /// (ARP, neighbour discovery, gratuitous ARPs) by this MAC, RFC 5798's virtual router
    /// MAC (00:00:5e:00:01:VRID, IPv6 00:00:5e:00:02:VRID) unless one is given, and its
    /// adverts leave from it (unless `vmac_xmit_base`).
    pub vmac: Option<[u8; 6]>,
    /// `use_vmac`'s interface name (keepalived's macvlan; rvs makes none: shown only).
    pub vmac_name: Option<String>,
    /// `use_ipvlan [NAME] [ADDRESS] [bridge|private|vepa]`: keepalived's L2 ipvlan shares
    /// the port's MAC, so its addresses are answered as without it; its ADDRESS is on the
    /// interface while rvs runs (a static address) and the adverts' source unless one is
    /// configured. The interface's name (rvs makes none: shown only), if given.
    pub ipvlan: Option<Ipvlan>,
    /// `vmac_xmit_base`: adverts leave from the interface's own MAC.
    pub vmac_xmit_base: bool,
    /// `garp_extra_if [all] SECONDS` (global_defs' `vrrp_garp_extra_if`): while MASTER,
    /// one gratuitous ARP (NA) this often on each other interface its addresses are on
    /// (with `all`; without it only on VMAC interfaces of those, which rvs does not make),
    /// keeping switches' MAC caches. None: off.
    pub garp_extra_if: Option<(Duration, bool)>,
    /// keepalived 1.3.6 and before checksummed unicast VRRPv3 adverts as if sent to the
    /// IPv4 group: `old_unicast_checksum` sends so from the start, `... never` never;
    /// by default (Debian's keepalived is built with OLD_CHKSUM_COMPAT) an advert that
    /// passes only so switches the instance to it.
    pub old_checksum: OldChecksum,
    /// `promote_secondaries`: the interface's kernel keeps its other addresses of a subnet
    /// when the first goes (keepalived sets it itself for a VMAC; rvs for use_vmac on the
    /// twin that holds its addresses).
    pub promote_secondaries: bool,
    /// The group that old checksum takes (global_defs' `vrrp_mcast_group4`, else
    /// 224.0.0.18; not the instance's `mcast_dst_ip`).
    pub old_checksum_group: std::net::Ipv4Addr,
}

/// `old_unicast_checksum`'s three settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldChecksum {
    /// Switch to it when a peer's advert passes only with it.
    Auto,
    Never,
    Always,
}

/// `[vrrp_]garp_extra_if [all] SECONDS` (and the deprecated `[vrrp_]vmac_garp_intvl`), up
/// to a day; zero (instance only) turns it off. A warning (and nothing set) otherwise, as
/// keepalived.
fn garp_extra_if(
    s: &Statement,
    min: u64,
    warnings: &mut Vec<String>,
) -> Option<Option<(Duration, bool)>> {
    if s.keyword.ends_with("vmac_garp_intvl") {
        let now = s.keyword.replace("vmac_garp_intvl", "garp_extra_if");
        warnings.push(format!(
            "{}: {} is deprecated, use {now}",
            s.at(),
            s.keyword
        ));
    }
    let mut all = false;
    let mut secs = None;
    for w in &s.args {
        match (w.as_str(), w.parse::<u64>()) {
            ("all", _) => all = true,
            (_, Ok(n)) if (min..=86_400).contains(&n) => secs = Some(n),
            _ => {
                warnings.push(format!("{}: {} {w:?} invalid; ignored", s.at(), s.keyword));
                return None;
            }
        }
    }
    let Some(secs) = secs else {
        warnings.push(format!("{}: {} without a time; ignored", s.at(), s.keyword));
        return None;
    };
    Some((secs > 0).then(|| (Duration::from_secs(secs), all)))
}

/// What global_defs sets for every instance.
#[derive(Debug, Clone)]
struct Defaults {
    version: u8,
    garp_delay: Duration,
    garp_repeat: u32,
    garp_refresh: Duration,
    garp_refresh_repeat: u32,
    group4: Option<IpAddr>,
    group6: Option<IpAddr>,
    lower_prio_no_advert: bool,
    higher_prio_send_advert: bool,
    check_unicast_src: bool,
    skip_check_adv_addr: bool,
    garp_lower_prio_repeat: Option<u32>,
    garp_lower_prio_delay: Option<Duration>,
    strict: bool,
    down_timer_adverts: u8,
    garp_extra_if: Option<(Duration, bool)>,
}

/// keepalived's test of a VRRP group: IPv4 multicast, or IPv6 link-local multicast.
fn valid_group(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_multicast(),
        IpAddr::V6(v) => v.segments()[0] == 0xff02,
    }
}

impl Instance {
    /// Whether an advert from unicast peer `from` may carry TTL (hop limit) `ttl`: within
    /// its min_ttl and max_ttl (any for a multicast instance, which asks 255 itself).
    pub fn peer_ttl_ok(&self, from: IpAddr, ttl: u8) -> bool {
        self.unicast_peers
            .iter()
            .zip(&self.unicast_peer_ttls)
            .find(|(p, _)| **p == from)
            .is_none_or(|(_, (min, max))| (*min..=*max).contains(&ttl))
    }

    /// Whether a unicast advert from `from` is heard: from a `unicast_peer` when
    /// `check_unicast_src` says so (keepalived: "unicast source address ... not a unicast
    /// peer"); any source otherwise, and for a multicast instance.
    pub fn source_ok(&self, from: IpAddr) -> bool {
        !self.check_unicast_src
            || self.unicast_peers.is_empty()
            || self.unicast_peers.contains(&from)
    }

    /// The group its multicast adverts use.
    pub fn group(&self) -> IpAddr {
        self.mcast_group.unwrap_or(if self.is_ipv6() {
            IpAddr::from(rvs_wire::vrrp::GROUP_V6)
        } else {
            IpAddr::from(rvs_wire::vrrp::GROUP_V4)
        })
    }

    /// Every address the instance manages (advertised and excluded).
    pub fn all_addresses(&self) -> impl Iterator<Item = &VirtualAddress> {
        self.addresses.iter().chain(&self.excluded)
    }

    pub fn is_ipv6(&self) -> bool {
        self.addresses.first().is_some_and(|a| a.addr.is_ipv6())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    pub name: String,
    pub script: Script,
    pub interval: Duration,
    pub timeout: Duration,
    pub weight: i32,
    /// `weight N reverse`: the weight applies while the script fails.
    pub reverse: bool,
    pub fall: u32,
    pub rise: u32,
    /// `init_fail`: it starts as failed (until it succeeds `rise` times), not as fine.
    pub init_fail: bool,
}

/// How a tracked process's arguments must match (`param_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMatch {
    /// Not checked (only the name).
    None,
    /// All of them, no more.
    Exact,
    /// The configured ones first; more may follow.
    Partial,
    /// As partial, the last configured one only the beginning of the process's.
    Initial,
}

/// keepalived's `vrrp_track_process NAME { process P [ARGS...]; param_match M; weight W
/// [reverse]; quorum N; quorum_max N; fork_delay S; terminate_delay S; delay S;
/// full_command }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackProcess {
    pub name: String,
    pub process: String,
    pub params: Vec<String>,
    pub param_match: ParamMatch,
    /// Match the command line's first word instead of the process name (comm).
    pub full_command: bool,
    pub weight: i32,
    pub reverse: bool,
    pub quorum: usize,
    pub quorum_max: usize,
    pub fork_delay: Duration,
    pub terminate_delay: Duration,
}

impl TrackProcess {
    pub fn quorum_holds(&self, count: usize) -> bool {
        (self.quorum..=self.quorum_max).contains(&count)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGroup {
    pub name: String,
    pub members: Vec<String>,
    pub notify: Notify,
    /// `notify_priority_changes`: its members' unless they say.
    pub notify_priority_changes: Option<bool>,
    /// `smtp_alert`: its states are mailed (unset: global_defs' smtp_alert_vrrp, else
    /// smtp_alert, else not).
    pub smtp_alert: Option<bool>,
    /// `track_interface`, `track_script`, `track_file`, `track_process`: tracked by every
    /// member.
    pub track_interfaces: Vec<Tracked>,
    pub track_scripts: Vec<Tracked>,
    pub track_files: Vec<Tracked>,
    pub track_processes: Vec<Tracked>,
    pub track_bfds: Vec<Tracked>,
    /// `sync_group_tracking_weight` (or the older `global_tracking`): its members' weighted
    /// tracking moves their priorities (otherwise keepalived ignores those weights).
    pub tracking_weight: bool,
}

/// `global_defs lvs_sync_daemon IF INSTANCE [id N] [maxlen L] [port P] [ttl T] [group G]`:
/// the connection sync daemon follows the instance: master while it is MASTER, backup
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDaemonConf {
    pub instance: String,
    pub settings: crate::sync::DaemonSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VrrpConf {
    pub instances: Vec<Instance>,
    /// global_defs' e-mail alerts (`smtp_server`, `notification_email`, ...; the TOML's
    /// `[mail]`).
    pub mail: crate::mail::MailConf,
    pub scripts: Vec<TrackScript>,
    /// `vrrp_track_process` definitions.
    pub processes: Vec<TrackProcess>,
    /// keepalived's top-level `track_file` / `vrrp_track_file` definitions.
    pub track_files: Vec<crate::keepalived::TrackFile>,
    /// Every BFD session the files declare (the appliance runs them, whether or not VRRP
    /// or a checker tracks them); a `track_bfd` takes its `weight` by default.
    pub bfd_instances: Vec<crate::bfd::BfdInstance>,
    pub groups: Vec<SyncGroup>,
    pub sync_daemon: Option<SyncDaemonConf>,
    /// `static_routes`: installed in the data plane whatever the instances' states.
    pub static_routes: Vec<VrrpRoute>,
    /// `static_rules`: applied whatever the instances' states.
    pub static_rules: Vec<VrrpRule>,
    /// global_defs' `startup_script` (run before VRRP and the checkers start, waited for)
    /// and `shutdown_script` (after they stopped), each with its timeout.
    pub startup_script: Option<crate::keepalived::BoundedScript>,
    pub shutdown_script: Option<crate::keepalived::BoundedScript>,
    /// `static_ipaddress`: the appliance's own whatever the instances' states.
    pub static_addresses: Vec<VirtualAddress>,
    /// global_defs' `notify_fifo` and `vrrp_notify_fifo`.
    pub fifos: Vec<super::fifo::NotifyFifo>,
    /// global_defs' `fifo_write_vrrp_states_on_reload`: a reload writes each kept
    /// instance's (and group's) state to the FIFOs.
    pub fifo_states_on_reload: bool,
    /// global_defs' `vrrp_startup_delay`: at start-up no instance takes over before it
    /// has passed.
    pub startup_delay: Duration,
    /// global_defs' `log_unknown_vrids`: adverts of VRIDs no instance has are logged.
    pub log_unknown_vrids: bool,
    /// global_defs' `vrrp_garp_interval` and `vrrp_gna_interval`: the least time between
    /// two gratuitous ARPs (unsolicited NAs) on an interface (zero: none).
    pub garp_interval: Duration,
    pub gna_interval: Duration,
    /// `garp_group` blocks: their interfaces share one pacing of their own.
    pub garp_groups: Vec<GarpGroup>,
    /// `interface_up_down_delays { IF DOWN [UP] }`: a link change counts once it has
    /// lasted that long (UP 0 when not given, as keepalived 2.2.7's parser has it), with
    /// the entry's file:line.
    pub link_delays: Vec<LinkDelay>,
    pub warnings: Vec<String>,
}

/// One `interface_up_down_delays` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDelay {
    pub at: String,
    pub interface: String,
    pub down: Duration,
    pub up: Duration,
}

/// A `garp_group`: its interfaces' gratuitous ARPs and NAs are paced together, by its
/// intervals (one not given: none for that kind), not global_defs'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpGroup {
    pub garp_interval: Duration,
    pub gna_interval: Duration,
    pub interfaces: Vec<String>,
}

impl VrrpConf {
    /// The pacing of the interface `is_named` names: its garp_group's (and the group's
    /// index, shared by its interfaces), else global_defs'.
    pub fn pacing_of(
        &self,
        is_named: impl Fn(&str) -> bool,
    ) -> (Option<usize>, Duration, Duration) {
        match self
            .garp_groups
            .iter()
            .position(|g| g.interfaces.iter().any(|i| is_named(i)))
        {
            Some(g) => (
                Some(g),
                self.garp_groups[g].garp_interval,
                self.garp_groups[g].gna_interval,
            ),
            None => (None, self.garp_interval, self.gna_interval),
        }
    }
}

/// `lvs_sync_daemon` as read, before the instances are known.
struct PendingSyncDaemon {
    settings: crate::sync::DaemonSettings,
    instance: Option<String>,
    /// `id` given (else the instance's virtual_router_id, as keepalived).
    syncid: Option<u8>,
    /// From an instance's deprecated `lvs_sync_daemon_interface` (sync id 0, as keepalived).
    from_instance: bool,
}

impl PendingSyncDaemon {
    /// keepalived's end of configuration: the daemon follows its instance, its sync id
    /// that instance's virtual_router_id unless given; an instance no vrrp_instance has
    /// clears it with keepalived's message, and none named runs no daemon.
    fn resolve(self, instances: &[Instance], warnings: &mut Vec<String>) -> Option<SyncDaemonConf> {
        let Some(name) = self.instance else {
            warnings.push(format!(
                "lvs_sync_daemon {}: no vrrp instance named - no sync daemon runs",
                self.settings.interface
            ));
            return None;
        };
        let Some(i) = instances.iter().find(|i| i.name == name) else {
            warnings.push(format!(
                "Unable to find vrrp instance {name} for lvs_syncd - clearing lvs_syncd config"
            ));
            return None;
        };
        let mut settings = self.settings;
        settings.syncid = match (self.syncid, self.from_instance) {
            (Some(id), _) => id,
            (None, true) => 0,
            (None, false) => i.vrid,
        };
        Some(SyncDaemonConf {
            instance: name,
            settings,
        })
    }
}

/// `global_defs lvs_sync_daemon IF [inst INSTANCE] [id N] [maxlen L] [port P] [ttl T]
/// [group G]`, or the older `lvs_sync_daemon IF INSTANCE [N]`, read as keepalived 2.2.7
/// reads it: a bad or unknown option is ignored with its warning.
fn global_sync_daemon(
    s: &Statement,
    warnings: &mut Vec<String>,
) -> Result<PendingSyncDaemon, String> {
    let Some(interface) = s.args.first() else {
        return Err(format!("{}: lvs_sync_daemon requires interface", s.at()));
    };
    let mut p = PendingSyncDaemon {
        settings: crate::sync::DaemonSettings::new(interface, 0),
        instance: None,
        syncid: None,
        from_instance: false,
    };
    let mut warn = |m: String| warnings.push(format!("{}: {m}", s.at()));
    let mut i = 1;
    while let Some(w) = s.args.get(i) {
        let value = s.args.get(i + 1).map(String::as_str);
        let option = matches!(
            w.as_str(),
            "inst" | "id" | "maxlen" | "port" | "ttl" | "group"
        );
        match (w.as_str(), value) {
            (_, None) if option => {
                warn(format!(
                    "No value specified for lvs_sync_daemon {w} - ignoring"
                ));
                i += 1;
                continue;
            }
            ("inst", Some(v)) => match &p.instance {
                Some(had) => warn(format!(
                    "lvs_sync_daemon vrrp instance has already been specified as {had} - ignoring"
                )),
                None => p.instance = Some(v.to_string()),
            },
            ("id", Some(v)) => match v.parse::<u8>() {
                Ok(id) => p.syncid = Some(id),
                Err(_) => warn(format!("Invalid syncid ({v}) - defaulting to vrid")),
            },
            ("maxlen", Some(v)) => match v.parse::<u16>() {
                Ok(l) if (1..=65535 - 28).contains(&l) => p.settings.maxlen = Some(l),
                _ => warn(format!("Invalid lvs_sync_daemon maxlen ({v}) - ignoring")),
            },
            ("port", Some(v)) => match v.parse::<u16>() {
                Ok(port) if port > 0 => p.settings.port = Some(port),
                _ => warn(format!("Invalid lvs_sync_daemon port ({v}) - ignoring")),
            },
            ("ttl", Some(v)) => match v.parse::<u8>() {
                Ok(t) if t > 0 => p.settings.ttl = Some(t),
                _ => warn(format!("Invalid lvs_sync_daemon ttl ({v}) - ignoring")),
            },
            ("group", Some(v)) => match v.parse::<std::net::IpAddr>() {
                Ok(g) if g.is_multicast() => p.settings.group = Some(g),
                Ok(_) => warn(format!(
                    "lvs_sync_daemon group address {v} is not multicast - ignoring"
                )),
                Err(_) => warn(format!("Invalid lvs_sync_daemon group ({v}) - ignoring")),
            },
            // The older positional form: the instance, then the sync id.
            (other, _) if i == 1 => {
                p.instance = Some(other.to_string());
                i += 1;
                continue;
            }
            (other, _) if i == 2 => {
                match other.parse::<u8>() {
                    Ok(id) => {
                        warn("Please use keyword \"id\" before lvs_sync_daemon SYNCID".into());
                        p.syncid = Some(id);
                    }
                    Err(_) => warn(format!("Invalid syncid ({other}) - defaulting to vrid")),
                }
                i += 1;
                continue;
            }
            (other, _) => {
                warn(format!(
                    "Unknown option {other} specified for lvs_sync_daemon"
                ));
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Ok(p)
}

/// An instance's deprecated `lvs_sync_daemon_interface IF` (keepalived before 1.2.20): the
/// daemon follows that instance (sync id 0), unless global_defs named one already.
fn instance_sync_daemon(
    c: &Statement,
    instance: &str,
    sync_daemon: &mut Option<PendingSyncDaemon>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    warnings.push(format!(
        "{}: ({instance}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated. Please use global lvs_sync_daemon",
        c.at()
    ));
    if let Some(had) = sync_daemon {
        warnings.push(format!(
            "{}: ({instance}) lvs_sync_daemon_interface has already been specified as {} - ignoring",
            c.at(),
            had.settings.interface
        ));
        return Ok(());
    }
    *sync_daemon = Some(PendingSyncDaemon {
        settings: crate::sync::DaemonSettings::new(c.arg(0)?, 0),
        instance: Some(instance.to_string()),
        syncid: None,
        from_instance: true,
    });
    Ok(())
}

fn num<T: std::str::FromStr>(s: &Statement, i: usize, what: &str) -> Result<T, String> {
    let a = s.arg(i)?;
    a.parse()
        .map_err(|_| format!("{}: {}: {what} expected, got {a:?}", s.at(), s.keyword))
}

fn seconds(s: &Statement, max: f64) -> Result<Duration, String> {
    let v: f64 = num(s, 0, "seconds")?;
    if !(0.0..=max).contains(&v) {
        return Err(format!(
            "{}: {}: {v} is out of range (0 to {max} s)",
            s.at(),
            s.keyword
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// `script_user` as a script's default user, and keepalived's safety check of one that
/// runs as root: false when it is not to run (the warnings say why).
pub(crate) fn vet_script(
    policy: &crate::scripts::ScriptPolicy,
    script: &mut Script,
    what: &str,
    warnings: &mut Vec<String>,
) -> bool {
    if script.user.is_none() {
        script.user = policy.user.as_ref().map(|(u, _)| u.clone());
    }
    let uid = match policy.resolve(script.user.as_deref().map(|u| (u, None))) {
        Ok((uid, _)) => uid,
        Err(e) => {
            warnings.push(format!("{what}: {e}; not run"));
            return false;
        }
    };
    match policy.check(&script.command, uid) {
        Some(u) => {
            warnings.push(format!("{what}: {}", u.warning));
            !u.disabled
        }
        None => true,
    }
}

/// keepalived's optional boolean: none, true/on/yes, false/off/no.
fn flag(s: &Statement) -> Result<bool, String> {
    match s.args.first().map(|a| a.to_ascii_lowercase()) {
        None => Ok(true),
        Some(a) if matches!(a.as_str(), "true" | "on" | "yes") => Ok(true),
        Some(a) if matches!(a.as_str(), "false" | "off" | "no") => Ok(false),
        Some(a) => Err(format!(
            "{}: {}: {a:?}: true or false (on/off, yes/no) expected",
            s.at(),
            s.keyword
        )),
    }
}

/// Whole seconds, as keepalived reads `garp_master_refresh`.
fn whole_seconds(s: &Statement) -> Result<Duration, String> {
    Ok(Duration::from_secs(num(s, 0, "whole seconds")?))
}

fn address(s: &Statement, word: &str) -> Result<(IpAddr, u8), String> {
    let (a, len) = match word.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (word, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{}: {:?} is not an IP address", s.at(), word))?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&l| l <= full)
            .ok_or_else(|| format!("{}: {word:?}: bad prefix length", s.at()))?,
        None => full,
    };
    Ok((addr, len))
}

/// One `virtual_ipaddress` / `static_ipaddress` line as keepalived's vrrp_ipaddress.c
/// reads it: `ADDR[/LEN] [dev IF] [label L] [brd B] [scope S] ...`. What keepalived skips
/// with its message (an address it cannot read, a second `dev`, an option without its
/// value) is skipped with a warning; an option it does not know is said and ignored, the
/// address kept.
fn virtual_address(
    s: &Statement,
    static_addr: bool,
    warnings: &mut Vec<String>,
) -> Option<VirtualAddress> {
    let Ok((addr, len)) = address(s, &s.keyword) else {
        warnings.push(format!(
            "{}: VRRP parsed invalid IP {}. skipping IP...",
            s.at(),
            s.keyword
        ));
        return None;
    };
    let mut v = VirtualAddress {
        at: s.at(),
        addr,
        len,
        dev: None,
        label: None,
        no_track: false,
    };
    let mut words = s.args.iter();
    while let Some(w) = words.next() {
        let takes_value = matches!(
            w.as_str(),
            "dev" | "scope" | "broadcast" | "brd" | "label" | "peer" | "preferred_lft"
        ) || (static_addr && w == "track_group");
        if !takes_value {
            match w.as_str() {
                "no_track" => v.no_track = true,
                // Kernel address flags rvs has no use for.
                "home" | "-nodad" | "mngtmpaddr" | "noprefixroute" | "autojoin" => {}
                "use_vmac" if !static_addr => warnings.push(format!(
                    "{}: {addr}: use_vmac on one address: rvs answers with an instance's virtual router MAC on its own interface only; this address keeps its port's MAC",
                    s.at()
                )),
                _ => warnings.push(format!(
                    "{}: Unknown configuration entry '{w}' for ip address - ignoring",
                    s.at()
                )),
            }
            continue;
        }
        let Some(value) = words.next().cloned() else {
            warnings.push(format!(
                "{}: No {w} parameter specified for {}; address skipped",
                s.at(),
                s.keyword
            ));
            return None;
        };
        match w.as_str() {
            "dev" if v.dev.is_some() => {
                warnings.push(format!(
                    "{}: Cannot specify ipaddress device more than once for {}; address skipped",
                    s.at(),
                    s.keyword
                ));
                return None;
            }
            "dev" => v.dev = Some(value),
            "label" => v.label = Some(value),
            // Kernel address attributes rvs has no use for (brd, scope, peer, lifetimes,
            // static track groups).
            _ => {}
        }
    }
    Some(v)
}

/// One `static_routes`/`virtual_routes` line in ip route's words, as keepalived reads it:
/// `[src A] [to] PREFIX|default [via|gw A] [dev|oif IF] [table main] [metric N] ...`. A
/// route rvs cannot install as keepalived would (another table, a type other than unicast,
/// several next hops, a source or TOS selector) or cannot read is left out with a warning,
/// as keepalived leaves out a route it cannot read; attributes that only shape the host's
/// own connections (metric, mtu, scope...) are accepted, and `src` is said to be ignored.
fn route_entry(s: &Statement, warnings: &mut Vec<String>) -> Option<VrrpRoute> {
    let words: Vec<&str> = std::iter::once(s.keyword.as_str())
        .chain(s.args.iter().map(String::as_str))
        .collect();
    let line = words.join(" ");
    let mut left_out = |why: String| {
        warnings.push(format!("{}: route {line:?}: {why}; not installed", s.at()));
        None
    };
    let (mut dest, mut via, mut dev, mut src) = (None, None, None, None);
    let mut table = rvs_core::engine::MAIN_TABLE;
    let no_track = words.contains(&"no_track");
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        match w {
            // Flags.
            "inet" | "inet6" | "onlink" | "no_track" | "add" | "prepend" | "append" => continue,
            "from" | "tos" | "dsfield" => {
                return left_out(format!(
                    "{w}: rvs's routes select by destination (rules, by source)"
                ))
            }
            "or" | "nexthop" => return left_out("several next hops: rvs takes one".into()),
            "encap" => return left_out("encap: not supported".into()),
            _ => {}
        }
        let takes_value = matches!(
            w,
            "via"
                | "gw"
                | "dev"
                | "oif"
                | "src"
                | "as"
                | "table"
                | "vrf"
                | "protocol"
                | "scope"
                | "metric"
                | "priority"
                | "preference"
                | "mtu"
                | "hoplimit"
                | "advmss"
                | "rtt"
                | "rttvar"
                | "reordering"
                | "window"
                | "cwnd"
                | "ssthresh"
                | "realms"
                | "rto_min"
                | "initcwnd"
                | "initrwnd"
                | "features"
                | "quickack"
                | "congctl"
                | "pref"
                | "expires"
                | "fastopen_no_cookie"
                | "ttl-propagate"
                | "track_group"
        );
        if !takes_value {
            // As keepalived: `to`, then a route type, then the destination (a later one
            // replaces an earlier); a word that is none of them is an unknown keyword.
            let mut d = w;
            if d == "to" {
                d = words.get(i).copied().unwrap_or("");
                i += 1;
            }
            if matches!(
                d,
                "unicast"
                    | "local"
                    | "broadcast"
                    | "anycast"
                    | "multicast"
                    | "blackhole"
                    | "unreachable"
                    | "prohibit"
                    | "throw"
                    | "nat"
                    | "xresolve"
            ) {
                if d != "unicast" {
                    return left_out(format!(
                        "type {d}: rvs's data plane installs unicast routes"
                    ));
                }
                d = words.get(i).copied().unwrap_or("");
                i += 1;
            }
            if d != "default" && address(s, d).is_err() {
                return left_out(format!("unknown route keyword {d:?}"));
            }
            dest = Some(d);
            continue;
        }
        // `via inet6 A`, `as to A`, `mtu lock N`: the value is the word after.
        let mut value = words.get(i).copied();
        if matches!(
            (w, value),
            ("via" | "gw", Some("inet" | "inet6")) | ("as", Some("to"))
        ) || (w != "via" && w != "gw" && value == Some("lock"))
        {
            i += 1;
            value = words.get(i).copied();
        }
        i += 1;
        let Some(value) = value else {
            return left_out(format!("{w}: a value is missing"));
        };
        match w {
            "via" | "gw" => match value.parse::<IpAddr>() {
                Ok(a) => via = Some(a),
                Err(_) => return left_out(format!("via {value:?}: not an IP address")),
            },
            "dev" | "oif" => dev = Some(value.to_string()),
            "table" => match crate::iproute::table_number(value) {
                Some(0) | None => {
                    return left_out(format!("table {value}: no such routing table (rt_tables)"))
                }
                Some(t) => table = t,
            },
            "vrf" => return left_out(format!("vrf {value}: rvs has no VRFs")),
            "src" => src = Some(value),
            _ => {}
        }
    }
    let Some(dest) = dest else {
        return left_out("no destination".into());
    };
    let (prefix, len) = match dest {
        "default" if via.is_some_and(|v| v.is_ipv6()) => (IpAddr::from([0u16; 8]), 0),
        "default" => (IpAddr::from([0u8; 4]), 0),
        d => address(s, d).ok()?,
    };
    if via.is_some_and(|v| v.is_ipv4() != prefix.is_ipv4()) {
        return left_out("the gateway is of another family".into());
    }
    if rvs_core::engine::masked(prefix, len) != prefix {
        return left_out(format!("{prefix}/{len}: host bits set"));
    }
    if via.is_none() && dev.is_none() {
        return left_out("neither via nor dev".into());
    }
    if let Some(src) = src {
        warnings.push(format!(
            "{}: route {line:?}: src {src}: only the host's own connections would use it; ignored",
            s.at()
        ));
    }
    Some(VrrpRoute {
        at: s.at(),
        prefix,
        len,
        via,
        table,
        dev,
        port: None,
        no_track,
    })
}

/// keepalived: a `track_bfd` entry's `weight W` without `reverse` or `noreverse` keeps
/// the bfd_instance's reverse.
fn inherit_bfd_reverse(block: &Statement, list: &mut [Tracked], bfds: &[crate::bfd::BfdInstance]) {
    let entries = block
        .children()
        .iter()
        .filter(|c| c.keyword == "track_bfd")
        .flat_map(|c| c.children());
    for a in entries.filter(|a| a.args.len() == 2) {
        let def = bfds.iter().find(|b| b.name == a.keyword);
        if let (Some(t), Some(def)) = (list.iter_mut().find(|t| t.name == a.keyword), def) {
            t.reverse = def.reverse;
        }
    }
}

fn tracked(s: &Statement) -> Result<Tracked, String> {
    let weight = match s.args.first().map(String::as_str) {
        Some("weight") => {
            let w: i32 = num(s, 1, "a weight")?;
            if !(-253..=253).contains(&w) {
                return Err(format!("{}: weight {w}: -253 to 253", s.at()));
            }
            Some(w)
        }
        _ => None,
    };
    Ok(Tracked {
        name: s.keyword.clone(),
        weight,
        reverse: weight.is_some() && s.args.get(2).is_some_and(|a| a == "reverse"),
    })
}

impl VrrpConf {
    /// Reads the VRRP statements of a keepalived.conf (top level) and its `global_defs`.
    pub fn from_statements(
        top: &[Statement],
        global_defs: &[Statement],
        track_files: &[crate::keepalived::TrackFile],
        bfds: &[crate::bfd::BfdInstance],
    ) -> Result<Self, String> {
        let mut conf = VrrpConf {
            track_files: track_files.to_vec(),
            bfd_instances: bfds.to_vec(),
            ..VrrpConf::default()
        };
        let mut preferences = RulePreferences::default();
        let mut d = Defaults {
            version: 2,
            garp_delay: Duration::from_secs(5),
            garp_repeat: 5,
            garp_refresh: Duration::ZERO,
            garp_refresh_repeat: 1,
            group4: None,
            group6: None,
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
            check_unicast_src: false,
            skip_check_adv_addr: false,
            garp_lower_prio_repeat: None,
            garp_lower_prio_delay: None,
            strict: false,
            down_timer_adverts: 3,
            garp_extra_if: None,
        };
        let mut sync_daemon = None;
        let mut notify_priority_changes = false;
        conf.mail = crate::mail::MailConf::from_global_defs(global_defs, &mut conf.warnings);
        for s in global_defs {
            match s.keyword.as_str() {
                "vrrp_notify_priority_changes" => notify_priority_changes = flag(s)?,
                "fifo_write_vrrp_states_on_reload" => conf.fifo_states_on_reload = flag(s)?,
                "vrrp_startup_delay" => conf.startup_delay = seconds(s, 3600.0)?,
                "log_unknown_vrids" => conf.log_unknown_vrids = flag(s)?,
                "vrrp_version" => {
                    d.version = num(s, 0, "2 or 3")?;
                    if !matches!(d.version, 2 | 3) {
                        return Err(format!("{}: vrrp_version: 2 or 3", s.at()));
                    }
                }
                "vrrp_garp_master_delay" => d.garp_delay = seconds(s, 3600.0)?,
                "vrrp_garp_master_repeat" => d.garp_repeat = num(s, 0, "a count")?,
                "vrrp_garp_master_refresh" => d.garp_refresh = whole_seconds(s)?,
                "vrrp_garp_master_refresh_repeat" => {
                    d.garp_refresh_repeat = num::<u32>(s, 0, "a count")?.max(1)
                }
                "vrrp_lower_prio_no_advert" => d.lower_prio_no_advert = flag(s)?,
                "vrrp_higher_prio_send_advert" => d.higher_prio_send_advert = flag(s)?,
                "vrrp_check_unicast_src" => d.check_unicast_src = true,
                "vrrp_skip_check_adv_addr" => d.skip_check_adv_addr = flag(s)?,
                "vrrp_garp_lower_prio_repeat" => {
                    d.garp_lower_prio_repeat = Some(num(s, 0, "a count")?)
                }
                "vrrp_garp_lower_prio_delay" => d.garp_lower_prio_delay = Some(seconds(s, 3600.0)?),
                "vrrp_strict" => d.strict = flag(s)?,
                "vrrp_garp_extra_if" | "vrrp_vmac_garp_intvl" => {
                    if let Some(g) = garp_extra_if(s, 1, &mut conf.warnings) {
                        d.garp_extra_if = g;
                    }
                }
                "vrrp_garp_interval" => conf.garp_interval = seconds(s, 86_400.0)?,
                "vrrp_gna_interval" => conf.gna_interval = seconds(s, 86_400.0)?,
                // Bursts of one, no second burst nor refresh, but what is set already.
                "vrrp_min_garp" if flag(s)? => {
                    if d.garp_repeat == 5 {
                        d.garp_repeat = 1;
                    }
                    if d.garp_delay == Duration::from_secs(5) {
                        d.garp_delay = Duration::ZERO;
                    }
                    d.garp_refresh = Duration::ZERO;
                }
                "vrrp_down_timer_adverts" => match down_timer_adverts(s) {
                    Ok(n) => d.down_timer_adverts = n,
                    Err(w) => conf.warnings.push(w),
                },
                "vrrp_mcast_group4" | "vrrp_mcast_group6" => {
                    let a = address(s, s.arg(0)?)?.0;
                    let v6 = s.keyword.ends_with('6');
                    if a.is_ipv6() != v6 || !valid_group(a) {
                        conf.warnings.push(format!(
                            "{}: {} {a}: not an {} multicast group; ignored",
                            s.at(),
                            s.keyword,
                            if v6 { "IPv6 link-local" } else { "IPv4" }
                        ));
                    } else if v6 {
                        d.group6 = Some(a);
                    } else {
                        d.group4 = Some(a);
                    }
                }
                "lvs_sync_daemon" => match &sync_daemon {
                    Some(PendingSyncDaemon {
                        settings, instance, ..
                    }) => conf.warnings.push(format!(
                        "{}: lvs_sync_daemon has already been specified as {} {} - ignoring",
                        s.at(),
                        settings.interface,
                        instance.as_deref().unwrap_or("")
                    )),
                    None => sync_daemon = Some(global_sync_daemon(s, &mut conf.warnings)?),
                },
                _ => {}
            }
        }
        for s in top {
            match s.keyword.as_str() {
                // As keepalived: a script with no command, a group with no members, is
                // removed with a warning (the references to it then dangle, ignored).
                "vrrp_script" => match track_script(s, &mut conf.warnings)? {
                    t if t.script.command.is_empty() => conf.warnings.push(format!(
                        "{}: vrrp_script {}: no script set, removed",
                        s.at(),
                        t.name
                    )),
                    t => conf.scripts.push(t),
                },
                "vrrp_track_process" => {
                    if let Some(t) = track_process(s, &mut conf.warnings)? {
                        conf.processes.push(t);
                    }
                }
                "interface_up_down_delays" => {
                    for e in s.children() {
                        let delay = |k: usize| -> Result<Duration, String> {
                            let v: f64 = num(e, k, "seconds (0 to 255)")?;
                            if !(0.0..=255.0).contains(&v) {
                                return Err(format!(
                                    "{}: interface_up_down_delays {}: {v} is out of range (0 to 255 s)",
                                    e.at(),
                                    e.keyword
                                ));
                            }
                            Ok(Duration::from_secs_f64(v))
                        };
                        if e.args.is_empty() {
                            conf.warnings.push(format!(
                                "{}: No timeouts specified for {} up/down delays; ignored",
                                e.at(),
                                e.keyword
                            ));
                            continue;
                        }
                        conf.link_delays.push(LinkDelay {
                            at: e.at(),
                            interface: e.keyword.clone(),
                            down: delay(0)?,
                            up: if e.args.len() > 1 {
                                delay(1)?
                            } else {
                                Duration::ZERO
                            },
                        });
                    }
                }
                "garp_group" => match garp_group(s)? {
                    Some(g) => conf.garp_groups.push(g),
                    None => conf.warnings.push(format!(
                        "{}: garp_group has no garp_interval or gna_interval: removed",
                        s.at()
                    )),
                },
                "vrrp_sync_group" => match sync_group(s, &mut conf.warnings)? {
                    g if g.members.is_empty() => conf.warnings.push(format!(
                        "{}: vrrp_sync_group {}: no virtual router(s), removed",
                        s.at(),
                        g.name
                    )),
                    mut g => {
                        inherit_bfd_reverse(s, &mut g.track_bfds, &conf.bfd_instances);
                        conf.groups.push(g)
                    }
                },
                "vrrp_instance" => {
                    let mut i = instance(s, &d, &mut preferences, &mut conf.warnings)?;
                    if let Some(c) = s
                        .children()
                        .iter()
                        .find(|c| c.keyword == "lvs_sync_daemon_interface")
                    {
                        instance_sync_daemon(c, &i.name, &mut sync_daemon, &mut conf.warnings)?;
                    }
                    inherit_bfd_reverse(s, &mut i.track_bfds, &conf.bfd_instances);
                    // A VMAC's or ipvlan's name an earlier instance uses is ignored, as
                    // keepalived ignores it (the instance then gets a name of its own).
                    let taken = |n: &str| {
                        conf.instances
                            .iter()
                            .find(|o| {
                                o.vmac_name.as_deref() == Some(n)
                                    || o.ipvlan.as_ref().and_then(|v| v.name.as_deref()) == Some(n)
                            })
                            .map(|o| o.name.clone())
                    };
                    let vmac_taken = i
                        .vmac_name
                        .as_deref()
                        .and_then(|n| taken(n).map(|o| (n, o)));
                    let ipvlan_name = i.ipvlan.as_ref().and_then(|v| v.name.as_deref());
                    let ipvlan_taken = ipvlan_name.and_then(|n| taken(n).map(|o| (n, o)));
                    for (n, other) in vmac_taken.iter().chain(&ipvlan_taken) {
                        conf.warnings.push(format!(
                            "{}: ({}) VRRP instance {other} is already using {n} - ignoring name",
                            s.at(),
                            i.name
                        ));
                    }
                    if vmac_taken.is_some() {
                        i.vmac_name = None;
                    }
                    if let (true, Some(v)) = (ipvlan_taken.is_some(), i.ipvlan.as_mut()) {
                        v.name = None;
                    }
                    // The ipvlan's address is on the interface whatever the state.
                    let ipvlan_address = i.ipvlan.as_ref().and_then(|v| v.address.clone());
                    conf.static_addresses
                        .extend(ipvlan_address.map(|a| VirtualAddress {
                            dev: Some(i.interface.clone()),
                            ..a
                        }));
                    conf.instances.push(i);
                }
                // Read with the top-level track_file definitions (and BFD's apart).
                "vrrp_track_file" | "bfd_instance" => {}
                "static_ipaddress" => {
                    for a in s.children() {
                        conf.static_addresses
                            .extend(virtual_address(a, true, &mut conf.warnings));
                    }
                }
                "static_routes" => {
                    for r in s.children() {
                        if let Some(r) = route_entry(r, &mut conf.warnings) {
                            conf.static_routes.push(r);
                        }
                    }
                }
                "static_rules" => {
                    for r in s.children() {
                        if let Some(r) = rule_entry(r, &mut preferences, &mut conf.warnings) {
                            conf.static_rules.push(r);
                        }
                    }
                }
                k => conf
                    .warnings
                    .push(format!("{}: {k}: not supported, ignored", s.at())),
            }
        }
        conf.sync_daemon = sync_daemon.and_then(|p| p.resolve(&conf.instances, &mut conf.warnings));
        // An instance's own, else its sync group's, else the global one.
        for k in 0..conf.instances.len() {
            let group = conf.group_of(&conf.instances[k].name);
            let from_group = group.and_then(|g| g.notify_priority_changes);
            let i = &mut conf.instances[k];
            let own = i.notify_priority_changes;
            i.notify_priority_changes = Some(own.or(from_group).unwrap_or(notify_priority_changes));
        }
        for prefix in ["", "vrrp_"] {
            let (fifo, warning) = super::fifo::from_global_defs(global_defs, prefix)?;
            conf.fifos.extend(fifo);
            conf.warnings.extend(warning);
        }
        let policy = crate::scripts::ScriptPolicy::from_global_defs(global_defs);
        conf.apply_script_policy(&policy);
        for name in ["startup_script", "shutdown_script"] {
            let mut bounded = crate::keepalived::bounded_script(global_defs, name)?;
            if let Some(b) = &mut bounded {
                let what = format!("global_defs {name}");
                if !vet_script(&policy, &mut b.script, &what, &mut conf.warnings) {
                    bounded = None;
                }
            }
            if name == "startup_script" {
                conf.startup_script = bounded;
            } else {
                conf.shutdown_script = bounded;
            }
        }
        conf.sync_group_tracking();
        conf.drop_dangling();
        conf.check()?;
        Ok(conf)
    }

    /// `script_user` as the default user of every script, and keepalived's safety check of
    /// the ones that run as root: an unsafe script is said aloud and, with
    /// `enable_script_security`, not run (a vrrp_script so disabled is then no longer
    /// tracked, as keepalived does).
    fn apply_script_policy(&mut self, policy: &crate::scripts::ScriptPolicy) {
        let check = |script: &mut Script, what: &str, warnings: &mut Vec<String>| {
            vet_script(policy, script, what, warnings)
        };
        let warnings = &mut self.warnings;
        for f in &mut self.fifos {
            let what = format!("{}: notify FIFO {}'s script", f.at, f.path);
            if let Some(sc) = &mut f.script {
                if !check(sc, &what, warnings) {
                    f.script = None;
                }
            }
        }
        self.scripts.retain_mut(|t| {
            let what = format!("vrrp_script {}", t.name);
            check(&mut t.script, &what, warnings)
        });
        for i in &mut self.instances {
            let what = format!("{}: vrrp_instance {}", i.at, i.name);
            let n = &mut i.notify;
            for slot in [
                &mut n.any,
                &mut n.master,
                &mut n.backup,
                &mut n.fault,
                &mut n.stop,
                &mut n.master_rx_lower_pri,
                &mut n.deleted,
            ] {
                if let Some(sc) = slot {
                    if !check(sc, &what, warnings) {
                        *slot = None;
                    }
                }
            }
        }
    }

    /// What keepalived warns about and ignores: a track_script or sync group member of no
    /// such name (dropped here, with a warning).
    /// keepalived's weights in sync groups and for the address owner (vrrp.c's
    /// vrrp_complete_instance, sync_group_tracking_init): a member of a group without
    /// `sync_group_tracking_weight` tracks its interfaces without their weight (a fault
    /// when down) and drops its weighted scripts and track files (a file of the default
    /// weight 1 is tracked with weight 0); the address owner (priority 255) drops weighted
    /// interfaces, scripts and files. Then each group's own tracking is every member's
    /// (weights cleared if a member is the owner). Each change is said with a warning.
    fn sync_group_tracking(&mut self) {
        let script_weight = |name: &str| {
            self.scripts
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.weight)
        };
        let file_weight = |name: &str| {
            self.track_files
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.weight)
        };
        let process_weight = |name: &str| {
            self.processes
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.weight)
        };
        let bfds = &self.bfd_instances;
        let bfd_weight = |name: &str| {
            bfds.iter()
                .find(|b| b.name == name && b.to_vrrp)
                .map(|b| b.weight)
        };
        let mut warnings = Vec::new();
        let mut instances = std::mem::take(&mut self.instances);
        for i in &mut instances {
            let sync = self
                .groups
                .iter()
                .any(|g| !g.tracking_weight && g.members.contains(&i.name));
            if !sync && i.priority != 255 {
                continue;
            }
            let why = if sync { "SYNC group" } else { "address owner" };
            let name = i.name.clone();
            let mut said = |what: String| {
                warnings.push(format!(
                    "{}: vrrp_instance {name}: ignoring {what} due to {why}",
                    i.at
                ))
            };
            i.track_interfaces.retain_mut(|t| match t.weight {
                Some(w) if w != 0 => {
                    said(format!("the weight of tracked interface {}", t.name));
                    t.weight = None;
                    sync
                }
                _ => true,
            });
            i.track_scripts.retain(|t| {
                let w = t.weight.or_else(|| script_weight(&t.name)).unwrap_or(0);
                if w != 0 {
                    said(format!("tracked script {} with weight {w}", t.name));
                }
                w == 0
            });
            i.track_files.retain_mut(|t| {
                match t.weight.or_else(|| file_weight(&t.name)).unwrap_or(0) {
                    0 => true,
                    1 => {
                        said(format!(
                            "the weight of tracked file {} (weight 0 now)",
                            t.name
                        ));
                        t.weight = Some(0);
                        true
                    }
                    w => {
                        said(format!("tracked file {} with weight {w}", t.name));
                        false
                    }
                }
            });
            i.track_bfds.retain(|t| {
                let w = t.weight.or_else(|| bfd_weight(&t.name)).unwrap_or(0);
                if w != 0 {
                    said(format!("tracked bfd {} with weight {w}", t.name));
                }
                w == 0
            });
        }
        for g in &self.groups {
            let has_owner = instances
                .iter()
                .any(|i| i.priority == 255 && g.members.contains(&i.name));
            let clear = |list: &[Tracked],
                         weight_of: &dyn Fn(&str) -> Option<i32>,
                         warnings: &mut Vec<String>| {
                list.iter()
                    .map(|t| {
                        let mut t = t.clone();
                        if has_owner && t.weight.or_else(|| weight_of(&t.name)).unwrap_or(0) != 0 {
                            warnings.push(format!(
                                "vrrp_sync_group {}: weighted tracking of {} cleared: a member has priority 255",
                                g.name, t.name
                            ));
                            t.weight = Some(0);
                        }
                        t
                    })
                    .collect::<Vec<_>>()
            };
            let interfaces = clear(&g.track_interfaces, &|_| None, &mut warnings);
            let scripts = clear(&g.track_scripts, &script_weight, &mut warnings);
            let files = clear(&g.track_files, &file_weight, &mut warnings);
            let processes = clear(&g.track_processes, &process_weight, &mut warnings);
            let bfds = clear(&g.track_bfds, &bfd_weight, &mut warnings);
            for i in instances.iter_mut().filter(|i| g.members.contains(&i.name)) {
                // keepalived: one tracked on both takes the group's weight unless the
                // instance's is unweighted.
                for b in &bfds {
                    match i.track_bfds.iter_mut().find(|t| t.name == b.name) {
                        Some(t) => {
                            if t.weight.or_else(|| bfd_weight(&t.name)).unwrap_or(0) != 0 {
                                t.weight = b.weight.or_else(|| bfd_weight(&b.name));
                                t.reverse = b.reverse;
                            }
                        }
                        None => i.track_bfds.push(b.clone()),
                    }
                }
                i.track_interfaces.extend(interfaces.iter().cloned());
                i.track_scripts.extend(scripts.iter().cloned());
                i.track_files.extend(files.iter().cloned());
                i.track_processes.extend(processes.iter().cloned());
            }
        }
        self.instances = instances;
        self.warnings.extend(warnings);
    }

    fn drop_dangling(&mut self) {
        let scripts: Vec<String> = self.scripts.iter().map(|s| s.name.clone()).collect();
        let files: Vec<String> = self.track_files.iter().map(|f| f.name.clone()).collect();
        let bfds: Vec<String> = self
            .bfd_instances
            .iter()
            .filter(|b| b.to_vrrp)
            .map(|b| b.name.clone())
            .collect();
        let processes: Vec<String> = self.processes.iter().map(|p| p.name.clone()).collect();
        let names: Vec<String> = self.instances.iter().map(|i| i.name.clone()).collect();
        for i in &mut self.instances {
            let (at, name) = (i.at.clone(), i.name.clone());
            let warnings = &mut self.warnings;
            // Drops the references to no definition, each with keepalived's warning.
            let mut keep_known = |list: &mut Vec<Tracked>,
                                  known: &[String],
                                  what: &str,
                                  defined: &str| {
                list.retain(|t| {
                    let ok = known.contains(&t.name);
                    if !ok {
                        warnings.push(format!(
                            "{at}: vrrp_instance {name}: {what} {:?}: no {defined} of that name, ignored",
                            t.name
                        ));
                    }
                    ok
                })
            };
            keep_known(&mut i.track_files, &files, "track_file", "track_file");
            keep_known(&mut i.track_bfds, &bfds, "track_bfd", "bfd_instance");
            keep_known(
                &mut i.track_processes,
                &processes,
                "track_process",
                "vrrp_track_process",
            );
            keep_known(
                &mut i.track_scripts,
                &scripts,
                "track_script",
                "vrrp_script",
            );
        }
        for g in &mut self.groups {
            let warnings = &mut self.warnings;
            let group = g.name.clone();
            g.members.retain(|m| {
                let known = names.contains(m);
                if !known {
                    warnings.push(format!(
                        "vrrp_sync_group {group}: {m:?}: no vrrp_instance of that name, ignored"
                    ));
                }
                known
            });
        }
        let warnings = &mut self.warnings;
        self.groups.retain(|g| {
            if g.members.is_empty() {
                warnings.push(format!(
                    "vrrp_sync_group {}: no vrrp_instance of its group, removed",
                    g.name
                ));
            }
            !g.members.is_empty()
        });
    }

    /// Cross-references: names and (interface, VRID, family) are unique, a sync group
    /// member is in one group, the sync daemon's instance exists.
    fn check(&self) -> Result<(), String> {
        for (n, i) in self.instances.iter().enumerate() {
            if let Some(o) = self.instances[..n].iter().find(|o| o.name == i.name) {
                return Err(format!(
                    "{}: vrrp_instance {}: also defined at {}",
                    i.at, i.name, o.at
                ));
            }
            if let Some(o) = self.instances[..n].iter().find(|o| {
                o.interface == i.interface && o.vrid == i.vrid && o.is_ipv6() == i.is_ipv6()
            }) {
                return Err(format!(
                    "{}: vrrp_instance {}: virtual_router_id {} on {} is taken by {}",
                    i.at, i.name, i.vrid, i.interface, o.name
                ));
            }
        }
        for g in &self.groups {
            for m in &g.members {
                if let Some(o) = self
                    .groups
                    .iter()
                    .find(|o| o.name != g.name && o.members.contains(m))
                {
                    return Err(format!(
                        "vrrp_sync_group {}: {m} is also in vrrp_sync_group {}",
                        g.name, o.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Adds another source's sections (keepalived.conf after the TOML).
    pub fn merge(&mut self, other: VrrpConf) -> Result<(), String> {
        for b in &other.bfd_instances {
            if let Some(first) = self.bfd_instances.iter().find(|o| o.name == b.name) {
                return Err(format!(
                    "{}: bfd_instance {} is defined at {} too",
                    b.at, b.name, first.at
                ));
            }
        }
        self.instances.extend(other.instances);
        self.scripts.extend(other.scripts);
        self.processes.extend(other.processes);
        self.track_files.extend(other.track_files);
        self.bfd_instances.extend(other.bfd_instances);
        self.groups.extend(other.groups);
        self.static_routes.extend(other.static_routes);
        self.static_rules.extend(other.static_rules);
        for (mine, theirs, name) in [
            (
                &mut self.startup_script,
                other.startup_script,
                "startup_script",
            ),
            (
                &mut self.shutdown_script,
                other.shutdown_script,
                "shutdown_script",
            ),
        ] {
            match (mine.is_some(), theirs) {
                (true, Some(_)) => {
                    return Err(format!(
                        "{name}: set in both files (one script runs; name it in one)"
                    ))
                }
                (_, Some(t)) => *mine = Some(t),
                _ => {}
            }
        }
        if other.mail != crate::mail::MailConf::default() {
            if self.mail != crate::mail::MailConf::default() {
                return Err(
                    "e-mail alerts (smtp_server, notification_email, smtp_alert...): set in both files (configure them in one)"
                        .into(),
                );
            }
            self.mail = other.mail;
        }
        self.fifos.extend(other.fifos);
        self.fifo_states_on_reload |= other.fifo_states_on_reload;
        self.startup_delay = self.startup_delay.max(other.startup_delay);
        self.log_unknown_vrids |= other.log_unknown_vrids;
        self.garp_interval = self.garp_interval.max(other.garp_interval);
        self.gna_interval = self.gna_interval.max(other.gna_interval);
        self.garp_groups.extend(other.garp_groups);
        self.link_delays.extend(other.link_delays);
        self.static_addresses.extend(other.static_addresses);
        self.warnings.extend(other.warnings);
        if other.sync_daemon.is_some() {
            self.sync_daemon = other.sync_daemon;
        }
        self.drop_dangling();
        self.check()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The `bfd_instance` of that name whose state VRRP hears of (not one only for the
    /// checkers).
    pub fn vrrp_bfd(&self, name: &str) -> Option<&crate::bfd::BfdInstance> {
        self.bfd_instances
            .iter()
            .find(|b| b.name == name && b.to_vrrp)
    }

    /// The same without its mail settings (a change of those alone restarts nothing).
    pub fn without_mail(&self) -> VrrpConf {
        VrrpConf {
            mail: crate::mail::MailConf::default(),
            ..self.clone()
        }
    }

    /// No instance, static address, route or rule: nothing for VRRP to run.
    pub fn configures_nothing(&self) -> bool {
        self.is_empty()
            && self.static_addresses.is_empty()
            && self.static_routes.is_empty()
            && self.static_rules.is_empty()
    }

    /// Gives each static and virtual route its data port: `dev`'s (`port_named`: a port
    /// or its host twin), else the one `port_towards` reaches its gateway by (the
    /// configuration's routes). A route with neither is left out with a warning, as
    /// keepalived leaves out a route whose interface does not exist.
    pub fn resolve_routes(
        &mut self,
        port_named: impl Fn(&str) -> Option<u16>,
        port_towards: impl Fn(IpAddr) -> Option<u16>,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut resolve = |routes: &mut Vec<VrrpRoute>| {
            routes.retain_mut(|r| {
                let port = match (&r.dev, r.via) {
                    (Some(d), _) => port_named(d)
                        .ok_or_else(|| format!("dev {d}: no data port or host twin of that name")),
                    (None, Some(g)) => port_towards(g).ok_or_else(|| {
                        format!("no route of the rvs configuration reaches the gateway {g}")
                    }),
                    (None, None) => Err("neither via nor dev".into()),
                };
                match port {
                    Ok(p) => r.port = Some(p),
                    Err(why) => warnings.push(format!(
                        "{}: route {}/{}: {why}; not installed",
                        r.at, r.prefix, r.len
                    )),
                }
                r.port.is_some()
            })
        };
        resolve(&mut self.static_routes);
        for i in &mut self.instances {
            resolve(&mut i.routes);
        }
        warnings
    }

    /// The interfaces the rules name (`iif`/`dev`, `oif`): a data port, by its name or its
    /// twin's, selects what came in on it and is named on the host by its twin's name
    /// (`twin_of`); `lo` and the host's other interfaces (`host_has`) select the
    /// appliance's own lookups (lo) or nothing; a name neither knows leaves the rule out
    /// with keepalived's message. The warnings are the rules left out.
    pub fn resolve_rule_devices(
        &mut self,
        port_named: impl Fn(&str) -> Option<u16>,
        twin_of: impl Fn(u16) -> Option<String>,
        host_has: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut resolve = |rules: &mut Vec<VrrpRule>| {
            rules.retain_mut(|r| {
                let shown = r.to_string();
                let select = &mut r.rule.select;
                for dev in [&mut select.iif, &mut select.oif].into_iter().flatten() {
                    let name = dev.name().to_string();
                    dev.port = port_named(&name);
                    match dev.port {
                        Some(p) => {
                            if let Some(twin) = twin_of(p) {
                                r.host_devs.push((name, twin));
                            }
                        }
                        None if name == "lo" || host_has(&name) => {}
                        None => {
                            warnings.push(format!(
                                "{}: rule {shown}: WARNING - interface {name} for rule doesn't exist; not installed",
                                r.at
                            ));
                            return false;
                        }
                    }
                }
                true
            })
        };
        resolve(&mut self.static_rules);
        for i in &mut self.instances {
            resolve(&mut i.rules);
        }
        warnings
    }

    /// The sync group an instance belongs to.
    pub fn group_of(&self, instance: &str) -> Option<&SyncGroup> {
        self.groups
            .iter()
            .find(|g| g.members.iter().any(|m| m == instance))
    }
}

fn instance(
    s: &Statement,
    d: &Defaults,
    preferences: &mut RulePreferences,
    warnings: &mut Vec<String>,
) -> Result<Instance, String> {
    let name = s.arg(0)?.to_string();
    let mut i = Instance {
        name: name.clone(),
        at: s.at(),
        initial_master: false,
        interface: String::new(),
        vrid: 0,
        priority: 100,
        advert_cs: 100,
        version: d.version,
        preempt: true,
        preempt_delay: Duration::ZERO,
        auth_pass: None,
        auth_ah: false,
        addresses: Vec::new(),
        excluded: Vec::new(),
        unicast_src: None,
        track_src: false,
        config_fault: None,
        unicast_peers: Vec::new(),
        unicast_peer_ttls: Vec::new(),
        unicast_ttl: None,
        lower_prio_no_advert: false,
        higher_prio_send_advert: false,
        check_unicast_src: d.check_unicast_src,
        skip_check_adv_addr: d.skip_check_adv_addr,
        notify_priority_changes: None,
        smtp_alert: None,
        dont_track_primary: false,
        garp_lower_prio_repeat: 0,
        garp_lower_prio_delay: Duration::ZERO,
        track_interfaces: Vec::new(),
        track_scripts: Vec::new(),
        track_files: Vec::new(),
        track_processes: Vec::new(),
        track_bfds: Vec::new(),
        notify: Notify::default(),
        garp_master_delay: d.garp_delay,
        garp_master_repeat: d.garp_repeat,
        garp_refresh: d.garp_refresh,
        garp_refresh_repeat: d.garp_refresh_repeat,
        mcast_group: None,
        routes: Vec::new(),
        rules: Vec::new(),
        strict: d.strict,
        accept: true,
        down_timer_adverts: d.down_timer_adverts,
        vmac: None,
        vmac_name: None,
        ipvlan: None,
        vmac_xmit_base: false,
        garp_extra_if: d.garp_extra_if,
        old_checksum: OldChecksum::Auto,
        promote_secondaries: false,
        old_checksum_group: match d.group4 {
            Some(IpAddr::V4(g)) => g,
            _ => rvs_wire::vrrp::GROUP_V4.into(),
        },
    };
    // use_vmac, and the MAC it names (with its file:line): the whole MAC, or five octets
    // the VRID completes.
    let mut use_vmac: Option<(Option<Vec<u8>>, String)> = None;
    let mut mcast_dst: Option<(IpAddr, String)> = None;
    // keepalived's "unicast configured": a unicast keyword was given (where), and whether
    // `unicast_fault_no_peer` was.
    let mut unicast_word: Option<String> = None;
    let mut native_ipv6 = false;
    let mut fault_no_peer = false;
    // What strict mode resets, when the instance sets it (and where): else its default.
    let mut accept: Option<(bool, String)> = None;
    let mut lower_prio_no_advert: Option<(bool, String)> = None;
    let mut higher_prio_send_advert: Option<(bool, String)> = None;
    let mut garp_lower_prio_repeat: Option<(u32, String)> = None;
    let mut garp_lower_prio_delay: Option<(Duration, String)> = None;
    let mut down_timer_given: Option<String> = None;
    let mut advert: Option<(f64, String)> = None;
    let mut version_given: Option<String> = None;
    // `auth_type`: AH (true) or PASS, and where it was given.
    let mut auth_type: Option<(bool, String)> = None;
    for c in s.children() {
        if i.notify.take(c)? {
            continue;
        }
        match c.keyword.as_str() {
            "state" => {
                i.initial_master = match c.arg(0)?.to_ascii_uppercase().as_str() {
                    "MASTER" => true,
                    "BACKUP" => false,
                    other => return Err(format!("{}: state {other:?}: MASTER or BACKUP", c.at())),
                }
            }
            "interface" => i.interface = c.arg(0)?.to_string(),
            "virtual_router_id" => {
                i.vrid = num(c, 0, "a router id (1-255)")?;
                if i.vrid == 0 {
                    return Err(format!("{}: virtual_router_id: 1 to 255", c.at()));
                }
            }
            "priority" => {
                i.priority = num(c, 0, "a priority (1-255)")?;
                if i.priority == 0 {
                    return Err(format!("{}: priority: 1 to 255", c.at()));
                }
            }
            "advert_int" => {
                let v: f64 = num(c, 0, "seconds")?;
                if !(0.01..=40.95).contains(&v) {
                    return Err(format!("{}: advert_int {v}: 0.01 to 40.95 s", c.at()));
                }
                advert = Some((v, c.at()));
            }
            "version" => {
                let v: u8 = num(c, 0, "2 or 3")?;
                if !matches!(v, 2 | 3) {
                    return Err(format!("{}: version: 2 or 3", c.at()));
                }
                if v == 2 && i.is_ipv6() {
                    // keepalived: the family (IPv6) already deduced version 3.
                    warnings.push(format!(
                        "{}: vrrp_instance {name}: version 2 conflicts with IPv6's version 3; ignored",
                        c.at()
                    ));
                } else {
                    i.version = v;
                    version_given = Some(c.at());
                }
            }
            "nopreempt" => i.preempt = false,
            "preempt" => i.preempt = true,
            "preempt_delay" => i.preempt_delay = seconds(c, 1000.0)?,
            "authentication" => {
                for a in c.children() {
                    match a.keyword.as_str() {
                        // As keepalived: exactly PASS or AH; anything else is ignored.
                        "auth_type" => match a.arg(0)? {
                            "PASS" => auth_type = Some((false, a.at())),
                            "AH" => auth_type = Some((true, a.at())),
                            t => warnings.push(format!(
                                "{}: vrrp_instance {name}: unknown authentication type {t:?} ignored (PASS or AH)",
                                a.at()
                            )),
                        },
                        "auth_pass" => {
                            let p = a.arg(0)?;
                            if p.len() > 8 {
                                warnings.push(format!(
                                    "{}: auth_pass longer than 8 characters: only the first 8 are used",
                                    a.at()
                                ));
                            }
                            let mut end = p.len().min(8);
                            while !p.is_char_boundary(end) {
                                end -= 1;
                            }
                            i.auth_pass = Some(p[..end].to_string());
                        }
                        _ => warnings.push(format!(
                            "{}: unknown keyword {:?} ignored",
                            a.at(),
                            a.keyword
                        )),
                    }
                }
            }
            "virtual_ipaddress" => {
                for a in c.children() {
                    let Some(v) = virtual_address(a, false, warnings) else {
                        continue;
                    };
                    // The first address (or native_ipv6) sets the instance's family;
                    // keepalived ignores another family's here (virtual_ipaddress_excluded
                    // takes any).
                    let family6 = i
                        .addresses
                        .first()
                        .map(|f| f.addr.is_ipv6())
                        .or(native_ipv6.then_some(true));
                    match family6 {
                        Some(v6) if v6 != v.addr.is_ipv6() => {
                            warnings.push(format!(
                                "{}: vrrp_instance {name}: {} is not of the instance's family ({}); ignored (virtual_ipaddress_excluded takes either family)",
                                a.at(),
                                v.addr,
                                if v6 { "IPv6" } else { "IPv4" }
                            ));
                        }
                        _ => i.addresses.push(v),
                    }
                }
            }
            "virtual_ipaddress_excluded" => {
                for a in c.children() {
                    i.excluded.extend(virtual_address(a, false, warnings));
                }
            }
            "unicast_src_ip" | "mcast_src_ip" => {
                if c.keyword == "unicast_src_ip" {
                    unicast_word = Some(c.at());
                }
                i.unicast_src = Some(address(c, c.arg(0)?)?.0);
            }
            "track_src_ip" => i.track_src = true,
            "native_ipv6" => {
                if i.addresses.first().is_some_and(|a| a.addr.is_ipv4()) {
                    warnings.push(format!(
                        "{}: vrrp_instance {name}: Cannot specify native_ipv6 with IPv4 addresses; ignored (as keepalived)",
                        c.at()
                    ));
                } else {
                    native_ipv6 = true;
                }
            }
            // keepalived's own tuning: nothing for rvs to do.
            "debug" | "kernel_rx_buf_size" => {}
            "linkbeat_use_polling" => warnings.push(format!(
                "{}: vrrp_instance {name}: 'linkbeat_use_polling' in vrrp instance deprecated (rvs reads link state from the data port)",
                c.at()
            )),
            "promote_secondaries" => i.promote_secondaries = true,
            "old_unicast_checksum" => {
                unicast_word = Some(c.at());
                match c.args.first().map(String::as_str) {
                    None => i.old_checksum = OldChecksum::Always,
                    Some("never") => i.old_checksum = OldChecksum::Never,
                    Some(w) => warnings.push(format!(
                        "{}: vrrp_instance {name}: unknown old_unicast_checksum mode {w:?}; ignored",
                        c.at()
                    )),
                }
            }
            "garp_extra_if" | "vmac_garp_intvl" => {
                if let Some(g) = garp_extra_if(c, 0, warnings) {
                    i.garp_extra_if = g;
                }
            }
            "unicast_fault_no_peer" => {
                unicast_word = Some(c.at());
                fault_no_peer = true;
            }
            "unicast_peer" => {
                unicast_word = Some(c.at());
                for a in c.children() {
                    i.unicast_peers.push(address(a, &a.keyword)?.0);
                    let (mut min, mut max) = (0u8, 255u8);
                    let mut k = 0;
                    while let Some(w) = a.args.get(k) {
                        let ttl: u8 = num(a, k + 1, "a TTL (0-255)")?;
                        match w.as_str() {
                            "min_ttl" => min = ttl,
                            "max_ttl" => max = ttl,
                            other => {
                                return Err(format!(
                                "{}: unicast_peer {}: unknown option {other:?} (min_ttl, max_ttl)",
                                a.at(),
                                a.keyword
                            ))
                            }
                        }
                        k += 2;
                        // As keepalived: a TTL bound checks the source too.
                        i.check_unicast_src = true;
                    }
                    i.unicast_peer_ttls.push((min, max));
                }
            }
            "unicast_ttl" => {
                let ttl: u8 = num(c, 0, "a TTL (1-255)")?;
                if ttl == 0 {
                    return Err(format!("{}: unicast_ttl: 1 to 255", c.at()));
                }
                i.unicast_ttl = Some(ttl);
            }
            "track_interface" => {
                for a in c.children() {
                    i.track_interfaces.push(tracked(a)?);
                }
            }
            "track_script" => {
                for a in c.children() {
                    i.track_scripts.push(tracked(a)?);
                }
            }
            "track_file" => {
                for a in c.children() {
                    i.track_files.push(tracked(a)?);
                }
            }
            "track_process" => {
                for a in c.children() {
                    i.track_processes.push(tracked(a)?);
                }
            }
            "track_bfd" => {
                for a in c.children() {
                    i.track_bfds.push(tracked(a)?);
                }
            }
            "garp_master_delay" => i.garp_master_delay = seconds(c, 3600.0)?,
            // The sync daemon's (read by the caller, which knows the global one).
            "lvs_sync_daemon_interface" => {}
            "garp_master_repeat" => i.garp_master_repeat = num(c, 0, "a count")?,
            "garp_master_refresh" => i.garp_refresh = whole_seconds(c)?,
            "garp_master_refresh_repeat" => {
                i.garp_refresh_repeat = num::<u32>(c, 0, "a count")?.max(1)
            }
            "mcast_dst_ip" => mcast_dst = Some((address(c, c.arg(0)?)?.0, c.at())),
            "lower_prio_no_advert" => lower_prio_no_advert = Some((flag(c)?, c.at())),
            "higher_prio_send_advert" => higher_prio_send_advert = Some((flag(c)?, c.at())),
            "strict_mode" => i.strict = flag(c)?,
            "use_vmac" => {
                let mut mac = None;
                for w in c.args.iter().take(2) {
                    if w.contains(':') {
                        match vmac_address(w) {
                            Ok(m) => mac = Some(m),
                            Err(why) => {
                                warnings.push(format!("{}: use_vmac {w}: {why}; ignored", c.at()))
                            }
                        }
                    } else {
                        i.vmac_name = Some(w.clone());
                    }
                }
                use_vmac = Some((mac, c.at()));
            }
            "vmac_xmit_base" => i.vmac_xmit_base = true,
            "use_ipvlan" if i.ipvlan.is_some() => warnings.push(format!(
                "{}: vrrp_instance {name}: use_ipvlan already specified",
                c.at()
            )),
            "use_ipvlan" => i.ipvlan = Some(use_ipvlan(c, &name, warnings)),
            "accept" => accept = Some((true, c.at())),
            "no_accept" => accept = Some((false, c.at())),
            "down_timer_adverts" => match down_timer_adverts(c) {
                Ok(n) => {
                    i.down_timer_adverts = n;
                    down_timer_given = Some(c.at());
                }
                Err(w) => warnings.push(w),
            },
            "notify_priority_changes" => i.notify_priority_changes = Some(flag(c)?),
            "smtp_alert" => {
                let what = "vrrp_instance smtp_alert";
                i.smtp_alert = crate::mail::true_false(c, what, warnings).or(i.smtp_alert)
            }
            "dont_track_primary" => i.dont_track_primary = true,
            "skip_check_adv_addr" => i.skip_check_adv_addr = flag(c)?,
            "check_unicast_src" => {
                unicast_word = Some(c.at());
                i.check_unicast_src = true;
            }
            "garp_lower_prio_repeat" => {
                garp_lower_prio_repeat = Some((num(c, 0, "a count")?, c.at()))
            }
            "garp_lower_prio_delay" => garp_lower_prio_delay = Some((seconds(c, 3600.0)?, c.at())),
            "virtual_routes" => {
                for r in c.children() {
                    if let Some(r) = route_entry(r, warnings) {
                        i.routes.push(r);
                    }
                }
            }
            "virtual_rules" => {
                for r in c.children() {
                    if let Some(r) = rule_entry(r, preferences, warnings) {
                        i.rules.push(r);
                    }
                }
            }
            _ => warnings.push(format!(
                "{}: vrrp_instance {name}: keyword {:?} not supported, ignored",
                c.at(),
                c.keyword
            )),
        }
    }
    let missing = |what: &str| format!("{}: vrrp_instance {name}: no {what}", s.at());
    if i.interface.is_empty() {
        return Err(missing("interface"));
    }
    if i.vrid == 0 {
        return Err(missing("virtual_router_id"));
    }
    if i.addresses.is_empty() {
        return Err(missing("virtual_ipaddress"));
    }
    // As keepalived: tracking a source needs one configured.
    i.track_src &= i.unicast_src.is_some();
    match (&unicast_word, i.unicast_peers.is_empty()) {
        (Some(_), true) if fault_no_peer => {
            i.config_fault = Some("unicast without any peers (unicast_fault_no_peer)".into());
        }
        (Some(at), true) => warnings.push(format!(
            "{at}: vrrp_instance {name}: a unicast keyword without any unicast peers: multicast (keepalived: deprecated usage)"
        )),
        _ => {}
    }
    if i.unicast_ttl.is_some() && i.unicast_peers.is_empty() {
        warnings.push(format!(
            "{}: vrrp_instance {name}: unicast_ttl without unicast_peer; ignored",
            s.at()
        ));
        i.unicast_ttl = None;
    }
    // The group: mcast_dst_ip if it is a group of the instance's family (keepalived skips
    // it otherwise), else global_defs' for the family.
    i.mcast_group = if i.is_ipv6() { d.group6 } else { d.group4 };
    if let Some((a, at)) = mcast_dst {
        if a.is_ipv6() == i.is_ipv6() && valid_group(a) {
            i.mcast_group = Some(a);
        } else {
            warnings.push(format!(
                "{at}: vrrp_instance {name}: mcast_dst_ip {a}: not a multicast group of the instance's family; ignored"
            ));
        }
    }
    if i.is_ipv6() {
        // keepalived: an IPv6 instance is version 3 unless told 2 before its addresses
        // (then it sends version 2 over IPv6, which RFC 5798 does not define).
        match (i.version, &version_given) {
            (2, Some(at)) if i.strict => warnings.push(format!(
                "{at}: vrrp_instance {name}: strict mode: IPv6 cannot use VRRP version 2; version 3"
            )),
            (2, Some(at)) => {
                return Err(format!(
                "{at}: vrrp_instance {name}: version 2 with IPv6 addresses: rvs runs IPv6 instances with VRRP version 3 (RFC 5798)"
            ))
            }
            _ => {}
        }
        i.version = 3;
    }
    if let Some((v, at)) = advert {
        if i.version == 2 && v.fract() != 0.0 {
            return Err(format!(
                "{at}: advert_int {v}: VRRP version 2 advertises whole seconds"
            ));
        }
        i.advert_cs = (v * 100.0).round() as u16;
    }
    strict_mode(&mut i, s, warnings)?;
    if let Some(v) = &i.ipvlan {
        // keepalived's source: the ipvlan's address unless one is configured; an IPv4
        // instance without it, or one of the other family, is in FAULT.
        match &v.address {
            Some(a) if a.addr.is_ipv6() != i.is_ipv6() => {
                i.config_fault = Some(
                    "IPv4 ipvlan address family does not match instance. setting instance to fault state".into(),
                )
            }
            Some(a) => {
                i.unicast_src.get_or_insert(a.addr);
            }
            None if !i.is_ipv6() => {
                i.config_fault = Some(
                    "IPv4 ipvlan requires a source ip address to be configured. setting instance to fault state".into(),
                )
            }
            None => {}
        }
        if i.promote_secondaries {
            warnings.push(format!(
                "{}: vrrp_instance {name}: promote_secondaries is automatically set for vmacs - ignoring",
                s.at()
            ));
            i.promote_secondaries = false;
        }
    }
    if let Some((mac, at)) = use_vmac {
        let mut mac = mac;
        if i.strict && mac.is_some() {
            warnings.push(format!(
                "{at}: vrrp_instance {name}: a use_vmac MAC address is incompatible with strict mode; reset"
            ));
            mac = None;
        }
        if i.strict && i.vmac_xmit_base {
            warnings.push(format!(
                "{at}: vrrp_instance {name}: vmac_xmit_base is incompatible with strict mode; reset"
            ));
            i.vmac_xmit_base = false;
        }
        if unicast_word.is_some() && !i.vmac_xmit_base && !i.strict {
            warnings.push(format!(
                "{at}: vrrp_instance {name}: unicast with use_vmac requires vmac_xmit_base; set (as keepalived)"
            ));
            i.vmac_xmit_base = true;
        }
        if i.promote_secondaries {
            warnings.push(format!(
                "{at}: vrrp_instance {name}: promote_secondaries is automatically set for vmacs - ignoring"
            ));
            i.promote_secondaries = false;
        }
        let family = if i.is_ipv6() { 2 } else { 1 };
        i.vmac = Some(match mac.as_deref() {
            Some(&[a, b, c, d, e, f]) => [a, b, c, d, e, f],
            Some(&[a, b, c, d, e]) => [a, b, c, d, e, i.vrid],
            _ => [0, 0, 0x5e, 0, family, i.vrid],
        });
    } else if i.vmac_xmit_base {
        warnings.push(format!(
            "{}: vrrp_instance {name}: vmac_xmit_base without use_vmac; ignored",
            s.at()
        ));
        i.vmac_xmit_base = false;
    }
    // keepalived's order: without auth_type there is none (auth_pass alone authenticates
    // nothing); strict mode and version 3 (every IPv6 instance) have none; a type needs a
    // password.
    let ignored = |why: &str, at: &str, warnings: &mut Vec<String>| {
        warnings.push(format!(
            "{at}: vrrp_instance {name}: {why}; authentication ignored"
        ))
    };
    match auth_type {
        None => i.auth_pass = None,
        Some((_, at)) if i.strict => {
            ignored("strict mode has no authentication", &at, warnings);
            i.auth_pass = None;
        }
        Some((_, at)) if i.version == 3 => {
            ignored("VRRP version 3 has no authentication", &at, warnings);
            i.auth_pass = None;
        }
        Some((_, at)) if i.auth_pass.as_deref().is_none_or(str::is_empty) => {
            ignored("auth_type without auth_pass", &at, warnings);
            i.auth_pass = None;
        }
        Some((ah, _)) => i.auth_ah = ah,
    }
    if i.priority == 255 && !i.initial_master {
        warnings.push(format!(
            "{}: vrrp_instance {name}: priority 255 (the address owner) starts as MASTER",
            s.at()
        ));
        i.initial_master = true;
    }
    if i.auth_ah && i.initial_master && i.priority != 255 {
        // keepalived: a backup first learns the master's AH sequence number.
        warnings.push(format!(
            "{}: vrrp_instance {name}: state MASTER with AH authentication: starting as BACKUP",
            s.at()
        ));
        i.initial_master = false;
    }
    if !i.preempt && i.initial_master {
        warnings.push(format!(
            "{}: vrrp_instance {name}: nopreempt needs state BACKUP; starting as BACKUP",
            s.at()
        ));
        i.initial_master = false;
    }
    // What strict mode resets, else the instance's setting, else the default (strict
    // mode's own, or global_defs'), as keepalived's vrrp_complete_instance.
    let strict = i.strict;
    let mut reset = |at: &str, what: &str| {
        warnings.push(format!(
            "{at}: vrrp_instance {name}: {what} is incompatible with strict mode; reset"
        ))
    };
    let owner = i.priority == 255;
    i.accept = owner
        || match accept {
            None => !strict,
            Some((true, at)) if strict && i.version == 2 => {
                reset(&at, "accept (VRRP version 2 has no accept mode, RFC 3768)");
                false
            }
            Some((a, _)) => a,
        };
    i.lower_prio_no_advert = match lower_prio_no_advert {
        None => strict || d.lower_prio_no_advert,
        Some((false, at)) if strict => {
            reset(&at, "lower_prio_no_advert false");
            true
        }
        Some((v, _)) => v,
    };
    i.higher_prio_send_advert = match higher_prio_send_advert {
        None => !strict && d.higher_prio_send_advert,
        Some((true, at)) if strict => {
            reset(&at, "higher_prio_send_advert");
            false
        }
        Some((v, _)) => v,
    };
    i.garp_lower_prio_repeat = match garp_lower_prio_repeat {
        None if strict => 0,
        None => d.garp_lower_prio_repeat.unwrap_or(d.garp_repeat),
        Some((n, at)) if strict && n != 0 => {
            reset(&at, "garp_lower_prio_repeat");
            0
        }
        Some((n, _)) => n,
    };
    i.garp_lower_prio_delay = match garp_lower_prio_delay {
        None if strict => Duration::ZERO,
        None => d.garp_lower_prio_delay.unwrap_or(d.garp_delay),
        Some((t, at)) if strict && !t.is_zero() => {
            reset(&at, "garp_lower_prio_delay");
            Duration::ZERO
        }
        Some((t, _)) => t,
    };
    if strict && i.down_timer_adverts != 3 {
        let at = down_timer_given.unwrap_or_else(|| s.at());
        reset(&at, "down_timer_adverts (other than 3)");
        i.down_timer_adverts = 3;
    }
    if !i.accept {
        warnings.push(format!(
            "{}: vrrp_instance {name}: no accept mode: while MASTER it drops what is sent to its addresses (ARP and neighbour discovery are answered), virtual servers' traffic included, as keepalived's firewall drops it; `accept` takes it (with VRRP version 3 in strict mode)",
            s.at()
        ));
    }
    Ok(i)
}

/// What strict mode (keepalived's `vrrp_strict`, `strict_mode`) asks of an instance's
/// state, peers and timers, before its authentication is read: state MASTER only for the
/// address owner (priority 255), no unicast peers (an error, as keepalived's), no
/// preempt_delay, an IPv6 multicast instance's first address link-local (a warning).
fn strict_mode(i: &mut Instance, s: &Statement, warnings: &mut Vec<String>) -> Result<(), String> {
    if !i.strict {
        return Ok(());
    }
    let name = &i.name;
    if i.initial_master && i.priority != 255 {
        warnings.push(format!(
            "{}: vrrp_instance {name}: strict mode: state MASTER needs the address owner's priority 255; starting as BACKUP",
            s.at()
        ));
        i.initial_master = false;
    }
    if !i.unicast_peers.is_empty() {
        return Err(format!(
            "{}: vrrp_instance {name}: unicast peers are not supported in strict mode",
            s.at()
        ));
    }
    if !i.preempt_delay.is_zero() {
        warnings.push(format!(
            "{}: vrrp_instance {name}: preempt_delay is incompatible with strict mode; reset",
            s.at()
        ));
        i.preempt_delay = Duration::ZERO;
    }
    if let Some(first) = i.addresses.first().filter(|_| i.is_ipv6()) {
        let link_local = matches!(first.addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
        if !link_local {
            warnings.push(format!(
                "{}: vrrp_instance {name}: strict mode: the first IPv6 address ({}) must be link-local",
                first.at, first.addr
            ));
        }
    }
    Ok(())
}

/// A `garp_group { garp_interval S; gna_interval S; interface IF; interfaces { IF... } }`;
/// None without an interval (keepalived removes it).
fn garp_group(s: &Statement) -> Result<Option<GarpGroup>, String> {
    let mut g = GarpGroup {
        garp_interval: Duration::ZERO,
        gna_interval: Duration::ZERO,
        interfaces: Vec::new(),
    };
    let mut given = false;
    for c in s.children() {
        match c.keyword.as_str() {
            "garp_interval" => {
                g.garp_interval = seconds(c, 86_400.0)?;
                given = true;
            }
            "gna_interval" => {
                g.gna_interval = seconds(c, 86_400.0)?;
                given = true;
            }
            "interface" => g.interfaces.push(c.arg(0)?.to_string()),
            "interfaces" => g
                .interfaces
                .extend(c.children().iter().map(|i| i.keyword.clone())),
            k => return Err(format!("{}: garp_group: unknown keyword {k:?}", c.at())),
        }
    }
    Ok(given.then_some(g))
}

/// A `use_vmac` MAC address: six octets, or five the VRID completes; never multicast nor
/// RFC 5798's own (00:00:5e:00:01/02:XX), as keepalived refuses them.
fn vmac_address(word: &str) -> Result<Vec<u8>, &'static str> {
    let parts: Vec<&str> = word.trim_end_matches(':').split(':').collect();
    let octets: Vec<u8> = parts
        .iter()
        .map(|p| {
            (p.len() <= 2)
                .then(|| u8::from_str_radix(p, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()
        .ok_or("not a MAC address")?;
    if !matches!(octets.len(), 5 | 6) {
        return Err("not a MAC address (six octets, or five the VRID completes)");
    }
    if octets[0] & 1 != 0 {
        return Err("a multicast MAC address");
    }
    if octets[..4] == [0, 0, 0x5e, 0] && matches!(octets[4], 1 | 2) {
        return Err("RFC 5798's own virtual router MAC");
    }
    Ok(octets)
}

/// `down_timer_adverts N` (1 to 100); a warning (and the setting ignored) otherwise, as
/// keepalived.
fn down_timer_adverts(s: &Statement) -> Result<u8, String> {
    match s.args.first().and_then(|a| a.parse::<u8>().ok()) {
        Some(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!(
            "{}: {}: 1 to 100 expected, got {:?}; ignored",
            s.at(),
            s.keyword,
            s.args.first().map(String::as_str).unwrap_or("")
        )),
    }
}

fn track_script(s: &Statement, warnings: &mut Vec<String>) -> Result<TrackScript, String> {
    let name = s.arg(0)?.to_string();
    let mut t = TrackScript {
        name: name.clone(),
        script: Script {
            command: String::new(),
            user: None,
        },
        interval: Duration::from_secs(1),
        timeout: Duration::ZERO,
        weight: 0,
        reverse: false,
        fall: 1,
        rise: 1,
        init_fail: false,
    };
    for c in s.children() {
        match c.keyword.as_str() {
            "script" => t.script.command = c.arg(0)?.to_string(),
            "user" => t.script.user = Some(c.arg(0)?.to_string()),
            "interval" => t.interval = seconds(c, 86_400.0)?.max(Duration::from_millis(10)),
            "timeout" => t.timeout = seconds(c, 86_400.0)?,
            "weight" => {
                t.weight = num(c, 0, "a weight")?;
                if !(-253..=253).contains(&t.weight) {
                    return Err(format!("{}: weight: -253 to 253", c.at()));
                }
                t.reverse = c.args.get(1).is_some_and(|w| w == "reverse");
            }
            "fall" => t.fall = num::<u32>(c, 0, "a count")?.max(1),
            "rise" => t.rise = num::<u32>(c, 0, "a count")?.max(1),
            "init_fail" => t.init_fail = true,
            k => warnings.push(format!(
                "{}: vrrp_script {name}: unknown keyword {k:?} ignored",
                c.at()
            )),
        }
    }
    if t.timeout.is_zero() {
        t.timeout = t.interval;
    }
    Ok(t)
}

/// A `vrrp_track_process` block as keepalived reads it; None (with keepalived's warning)
/// for one without `process`.
fn track_process(
    s: &Statement,
    warnings: &mut Vec<String>,
) -> Result<Option<TrackProcess>, String> {
    let mut t = TrackProcess {
        name: s.arg(0)?.to_string(),
        process: String::new(),
        params: Vec::new(),
        param_match: ParamMatch::None,
        full_command: false,
        weight: 0,
        reverse: false,
        quorum: 1,
        quorum_max: usize::MAX,
        fork_delay: Duration::ZERO,
        terminate_delay: Duration::ZERO,
    };
    for c in s.children() {
        match c.keyword.as_str() {
            "process" => {
                t.process = c.arg(0)?.to_string();
                t.params = c.args[1..].to_vec();
                if !t.params.is_empty() {
                    if t.param_match == ParamMatch::None {
                        t.param_match = ParamMatch::Exact;
                    }
                    t.full_command = true;
                }
            }
            "param_match" => {
                t.param_match = match c.args.first().map(String::as_str) {
                    None => ParamMatch::Exact,
                    Some("initial") => ParamMatch::Initial,
                    Some("partial") => ParamMatch::Partial,
                    Some(other) => {
                        return Err(format!(
                            "{}: param_match {other:?}: initial or partial",
                            c.at()
                        ))
                    }
                };
                t.full_command = true;
            }
            "weight" => {
                t.weight = num(c, 0, "a weight")?;
                if !(-254..=254).contains(&t.weight) {
                    return Err(format!("{}: weight: -254 to 254", c.at()));
                }
                t.reverse = c.args.get(1).is_some_and(|w| w == "reverse");
            }
            "quorum" => t.quorum = num::<usize>(c, 0, "a count (1-65535)")?.clamp(1, 65535),
            "quorum_max" => {
                t.quorum_max = num(c, 0, "a count (0-65535)")?;
                if t.quorum_max == 0 {
                    t.quorum = 0;
                }
            }
            "fork_delay" => t.fork_delay = seconds(c, 3600.0)?,
            "terminate_delay" => t.terminate_delay = seconds(c, 3600.0)?,
            "delay" => {
                t.fork_delay = seconds(c, 3600.0)?;
                t.terminate_delay = t.fork_delay;
            }
            "full_command" => t.full_command = true,
            _ => warnings.push(format!(
                "{}: vrrp_track_process {}: unknown keyword {:?} ignored",
                c.at(),
                t.name,
                c.keyword
            )),
        }
    }
    if t.quorum > t.quorum_max {
        return Err(format!(
            "{}: vrrp_track_process {}: quorum {} above quorum_max {}",
            s.at(),
            t.name,
            t.quorum,
            t.quorum_max
        ));
    }
    if t.process.is_empty() {
        warnings.push(format!(
            "{}: vrrp_track_process {}: process name not specified, removed",
            s.at(),
            t.name
        ));
        return Ok(None);
    }
    Ok(Some(t))
}

fn sync_group(s: &Statement, warnings: &mut Vec<String>) -> Result<SyncGroup, String> {
    let mut g = SyncGroup {
        name: s.arg(0)?.to_string(),
        members: Vec::new(),
        notify: Notify::default(),
        notify_priority_changes: None,
        smtp_alert: None,
        track_interfaces: Vec::new(),
        track_scripts: Vec::new(),
        track_files: Vec::new(),
        track_processes: Vec::new(),
        track_bfds: Vec::new(),
        tracking_weight: false,
    };
    for c in s.children() {
        if g.notify.take(c)? {
            continue;
        }
        let list = match c.keyword.as_str() {
            "notify_priority_changes" => {
                g.notify_priority_changes = Some(flag(c)?);
                continue;
            }
            "smtp_alert" => {
                let what = "vrrp_sync_group smtp_alert";
                g.smtp_alert = crate::mail::true_false(c, what, warnings).or(g.smtp_alert);
                continue;
            }
            "group" => {
                for m in c.children() {
                    g.members.push(m.keyword.clone());
                    g.members.extend(m.args.iter().cloned());
                }
                g.members.extend(c.args.iter().cloned());
                continue;
            }
            "sync_group_tracking_weight" | "global_tracking" => {
                g.tracking_weight = true;
                continue;
            }
            "track_interface" => &mut g.track_interfaces,
            "track_script" => &mut g.track_scripts,
            "track_file" => &mut g.track_files,
            "track_process" => &mut g.track_processes,
            "track_bfd" => &mut g.track_bfds,
            k => {
                warnings.push(format!(
                    "{}: vrrp_sync_group {}: keyword {k:?} not supported, ignored",
                    c.at(),
                    g.name
                ));
                continue;
            }
        };
        for a in c.children() {
            list.push(tracked(a)?);
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warnings without their `file:line: `.
    fn reasons(warnings: &[String]) -> Vec<&str> {
        warnings
            .iter()
            .map(|w| w.split_once(": ").map_or(w.as_str(), |(_, r)| r))
            .collect()
    }
    use crate::keepalived::KeepalivedConf;

    fn parse(text: &str) -> Result<VrrpConf, String> {
        KeepalivedConf::parse("k.conf", text).map(|k| k.vrrp_conf)
    }

    /// lvs_sync_daemon as keepalived 2.2.7 reads it: the sync id defaults to the instance's
    /// virtual_router_id; `inst`, the older positional form and every option; a bad option
    /// or an instance no vrrp_instance has are warnings (the latter clears it); an
    /// instance's deprecated lvs_sync_daemon_interface (sync id 0) unless global_defs has one.
    #[test]
    fn lvs_sync_daemon_reads_as_keepalived() {
        let with = |global: &str, in_instance: &str| {
            KeepalivedConf::parse("k.conf", &format!(
                "global_defs {{\n{global}\n}}\n\
                 vrrp_instance VI_1 {{\n interface lan\n virtual_router_id 51\n{in_instance}\n virtual_ipaddress {{ 10.0.0.1 }}\n}}\n"
            ))
            .unwrap()
        };
        let daemon = |c: &KeepalivedConf| {
            c.vrrp_conf
                .sync_daemon
                .as_ref()
                .map(|d| (d.instance.clone(), d.settings.clone()))
        };
        let c = with("lvs_sync_daemon lan VI_1", "");
        let (name, d) = daemon(&c).unwrap();
        assert_eq!(
            (name.as_str(), d.interface.as_str(), d.syncid),
            ("VI_1", "lan", 51)
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = with(
            "lvs_sync_daemon lan inst VI_1 id 9 maxlen 1400 port 8849 ttl 2 group 224.0.0.99",
            "",
        );
        let (_, d) = daemon(&c).unwrap();
        assert_eq!(
            (d.syncid, d.maxlen, d.port, d.ttl, d.group),
            (
                9,
                Some(1400),
                Some(8849),
                Some(2),
                Some("224.0.0.99".parse().unwrap())
            )
        );
        let c = with("lvs_sync_daemon lan VI_1 5", "");
        assert_eq!(daemon(&c).unwrap().1.syncid, 5);
        assert_eq!(
            reasons(&c.warnings),
            ["Please use keyword \"id\" before lvs_sync_daemon SYNCID"]
        );
        let c = with("lvs_sync_daemon lan VI_1 id 300 group 10.0.0.9 weird", "");
        let (_, d) = daemon(&c).unwrap();
        assert_eq!((d.syncid, d.group), (51, None));
        assert_eq!(
            reasons(&c.warnings),
            [
                "Invalid syncid (300) - defaulting to vrid",
                "lvs_sync_daemon group address 10.0.0.9 is not multicast - ignoring",
                "Unknown option weird specified for lvs_sync_daemon",
            ]
        );
        let c = with("lvs_sync_daemon lan VI_X", "");
        assert!(daemon(&c).is_none());
        assert!(
            c.warnings.iter().any(|w| w
                == "Unable to find vrrp instance VI_X for lvs_syncd - clearing lvs_syncd config"),
            "{:?}",
            c.warnings
        );
        // The deprecated form in the instance.
        let c = with("", " lvs_sync_daemon_interface eth1");
        let (name, d) = daemon(&c).unwrap();
        assert_eq!(
            (name.as_str(), d.interface.as_str(), d.syncid),
            ("VI_1", "eth1", 0)
        );
        assert!(reasons(&c.warnings)[0].ends_with("Please use global lvs_sync_daemon"));
        let c = with(
            "lvs_sync_daemon lan VI_1 id 3",
            " lvs_sync_daemon_interface eth1",
        );
        let (_, d) = daemon(&c).unwrap();
        assert_eq!((d.interface.as_str(), d.syncid), ("lan", 3));
        assert!(reasons(&c.warnings)[1].ends_with("already been specified as lan - ignoring"));
    }

    /// notify_priority_changes: the instance's own, else its sync group's, else
    /// global_defs'; fifo_write_vrrp_states_on_reload read as a flag.
    #[test]
    fn priority_change_notices_as_keepalived_resolves_them() {
        let text = |global: &str| {
            format!(
                "global_defs {{\n{global}\n}}\n\
                 vrrp_sync_group G {{\n group {{ A B }}\n notify_priority_changes false\n}}\n\
                 vrrp_instance A {{\n interface lan\n virtual_router_id 1\n notify_priority_changes\n virtual_ipaddress {{ 10.0.0.1 }}\n}}\n\
                 vrrp_instance B {{\n interface lan\n virtual_router_id 2\n virtual_ipaddress {{ 10.0.0.2 }}\n}}\n\
                 vrrp_instance C {{\n interface lan\n virtual_router_id 3\n virtual_ipaddress {{ 10.0.0.3 }}\n}}\n"
            )
        };
        let changes = |v: &VrrpConf| -> Vec<Option<bool>> {
            v.instances
                .iter()
                .map(|i| i.notify_priority_changes)
                .collect()
        };
        let v = parse(&text(
            "vrrp_notify_priority_changes\nfifo_write_vrrp_states_on_reload\nvrrp_startup_delay 5.5\nlog_unknown_vrids",
        ))
        .unwrap();
        assert_eq!(changes(&v), [Some(true), Some(false), Some(true)]);
        assert!(v.fifo_states_on_reload && v.log_unknown_vrids);
        assert_eq!(v.startup_delay, Duration::from_millis(5500));
        let v = parse(&text("vrrp_version 2")).unwrap();
        assert_eq!(changes(&v), [Some(true), Some(false), Some(false)]);
        assert!(!v.fifo_states_on_reload);
    }

    #[test]
    fn the_seed_s_level_1_file() {
        let k = KeepalivedConf::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/keepalived/dns-cluster-level1.conf"
        )))
        .unwrap();
        let v = &k.vrrp_conf;
        assert_eq!(v.instances.len(), 1);
        let i = &v.instances[0];
        assert_eq!(
            (i.name.as_str(), i.interface.as_str(), i.vrid, i.priority),
            ("VI_1", "lan", 5, 100)
        );
        assert!(!i.initial_master && !i.preempt);
        assert_eq!(i.advert_cs, 100);
        assert_eq!(i.version, 2);
        assert_eq!(i.auth_pass.as_deref(), Some("KPSjXfRG"));
        assert_eq!(i.addresses[0].addr, "10.2.1.5".parse::<IpAddr>().unwrap());
        assert_eq!(i.addresses[0].len, 32);
        assert_eq!(
            i.notify.any,
            Some(Script {
                command: "/etc/keepalived/keepalived-notify.sh".into(),
                user: Some("root".into())
            })
        );
        assert_eq!(i.track_scripts[0].name, "myhealth");
        let s = &v.scripts[0];
        assert_eq!(s.script.command, "/bin/nc -z -w 2 127.0.0.1 53");
        assert_eq!(s.script.user.as_deref(), Some("nobody"));
        assert_eq!(s.interval, Duration::from_secs(10));
        assert_eq!((s.weight, s.fall, s.rise), (0, 1, 1));
        assert_eq!(
            (i.garp_master_delay, i.garp_master_repeat),
            (Duration::from_secs(5), 5)
        );
    }

    /// Strict mode as keepalived 2.2.7's vrrp_complete_instance applies it: RHEL's sample
    /// instance (state MASTER, priority 100, PASS) starts as BACKUP without authentication;
    /// accept mode is off but for the owner (and for version 3 when asked); what strict mode
    /// forbids is reset with a warning; strict_mode off (instance) overrides vrrp_strict;
    /// unicast peers are refused.
    #[test]
    fn strict_mode_as_keepalived_applies_it() {
        let k = KeepalivedConf::parse(
            "k.conf",
            r#"
global_defs {
    vrrp_strict
    vrrp_garp_lower_prio_repeat 3
    vrrp_higher_prio_send_advert
    vrrp_down_timer_adverts 4
}
vrrp_instance VI_1 {
    state MASTER
    interface lan
    virtual_router_id 51
    priority 100
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress { 192.168.200.16 }
    preempt_delay 10
    accept
    garp_lower_prio_delay 5
    lower_prio_no_advert false
}
vrrp_instance VI_2 {
    interface lan
    virtual_router_id 52
    priority 255
    no_accept
    virtual_ipaddress { 10.0.0.1 }
}
vrrp_instance VI_3 {
    strict_mode off
    interface lan
    virtual_router_id 53
    down_timer_adverts 2
    virtual_ipaddress { 10.0.0.2 }
}
vrrp_instance VI_4 {
    interface lan
    virtual_router_id 54
    version 3
    accept
    virtual_ipaddress { 10.0.0.3 }
}
"#,
        )
        .unwrap();
        let v = &k.vrrp_conf;
        let (one, owner, loose, three) = (
            &v.instances[0],
            &v.instances[1],
            &v.instances[2],
            &v.instances[3],
        );
        assert!(one.strict && !one.initial_master && one.auth_pass.is_none());
        assert_eq!(one.preempt_delay, Duration::ZERO);
        assert!(!one.accept && one.lower_prio_no_advert && !one.higher_prio_send_advert);
        assert_eq!(
            (one.garp_lower_prio_repeat, one.garp_lower_prio_delay),
            (0, Duration::ZERO)
        );
        assert_eq!(one.down_timer_adverts, 3);
        assert!(owner.accept && owner.initial_master);
        assert!(!loose.strict && loose.accept && !loose.lower_prio_no_advert);
        assert!(loose.higher_prio_send_advert);
        assert_eq!(
            (loose.garp_lower_prio_repeat, loose.down_timer_adverts),
            (3, 2)
        );
        assert!(three.strict && three.accept && three.version == 3);
        let said = |w: &str| k.warnings.iter().filter(|x| x.contains(w)).count();
        for (w, n) in [
            ("VI_1: strict mode: state MASTER needs", 1),
            ("VI_1: strict mode has no authentication", 1),
            ("VI_1: preempt_delay is incompatible with strict mode", 1),
            ("VI_1: accept (VRRP version 2", 1),
            ("VI_1: lower_prio_no_advert false is incompatible", 1),
            ("VI_1: garp_lower_prio_delay is incompatible", 1),
            ("down_timer_adverts (other than 3) is incompatible", 3),
        ] {
            assert_eq!(said(w), n, "{w:?} in {:#?}", k.warnings);
        }
        let unicast = KeepalivedConf::parse(
            "k.conf",
            "global_defs { vrrp_strict }\nvrrp_instance V { interface lan\nvirtual_router_id 9\nunicast_peer { 10.0.0.9 }\nvirtual_ipaddress { 10.0.0.4 }\n}\n",
        );
        assert_eq!(
            unicast.err().map(|e| e.to_string()),
            Some(
                "k.conf:2: vrrp_instance V: unicast peers are not supported in strict mode".into()
            )
        );
    }

    /// use_vmac as keepalived reads it: RFC 5798's MAC by family and VRID, or the one
    /// given (five octets the VRID completes); a multicast or RFC MAC is ignored with a
    /// warning; strict mode resets a given MAC and vmac_xmit_base.
    #[test]
    fn use_vmac_as_keepalived_reads_it() {
        let instance = |n: u8, body: &str| {
            format!("vrrp_instance V{n} {{\ninterface lan\nvirtual_router_id {n}\n{body}\n}}\n")
        };
        let text = [
            instance(30, "use_vmac\nvirtual_ipaddress { 10.0.0.1 }"),
            instance(31, "use_vmac vrrp.31\nvirtual_ipaddress { 2001:db8::1 }"),
            instance(
                32,
                "use_vmac vm32 02:11:22:33:44:55\nvmac_xmit_base\nvirtual_ipaddress { 10.0.0.2 }",
            ),
            instance(
                33,
                "use_vmac 02:aa:bb:cc:dd\nvirtual_ipaddress { 10.0.0.3 }",
            ),
            instance(
                34,
                "use_vmac 01:00:5e:00:00:01\nvirtual_ipaddress { 10.0.0.4 }",
            ),
            instance(
                35,
                "use_vmac 00:00:5e:00:01:07\nvirtual_ipaddress { 10.0.0.5 }",
            ),
            instance(36, "vmac_xmit_base\nvirtual_ipaddress { 10.0.0.6 }"),
        ]
        .concat();
        let k = KeepalivedConf::parse("k.conf", &text).unwrap();
        let vmacs: Vec<Option<[u8; 6]>> = k.vrrp_conf.instances.iter().map(|i| i.vmac).collect();
        assert_eq!(
            vmacs,
            [
                Some([0, 0, 0x5e, 0, 1, 30]),
                Some([0, 0, 0x5e, 0, 2, 31]),
                Some([2, 0x11, 0x22, 0x33, 0x44, 0x55]),
                Some([2, 0xaa, 0xbb, 0xcc, 0xdd, 33]),
                Some([0, 0, 0x5e, 0, 1, 34]),
                Some([0, 0, 0x5e, 0, 1, 35]),
                None,
            ]
        );
        let i = &k.vrrp_conf.instances;
        assert_eq!(i[1].vmac_name.as_deref(), Some("vrrp.31"));
        assert!(i[2].vmac_xmit_base && !i[6].vmac_xmit_base);
        for said in [
            "use_vmac 01:00:5e:00:00:01: a multicast MAC address; ignored",
            "use_vmac 00:00:5e:00:01:07: RFC 5798's own virtual router MAC; ignored",
            "vrrp_instance V36: vmac_xmit_base without use_vmac; ignored",
        ] {
            assert!(
                k.warnings.iter().any(|w| w.contains(said)),
                "{said:?} in {:#?}",
                k.warnings
            );
        }
        let strict = KeepalivedConf::parse(
            "k.conf",
            &format!(
                "global_defs {{ vrrp_strict }}\n{}",
                instance(
                    40,
                    "use_vmac 02:11:22:33:44:55\nvmac_xmit_base\nvirtual_ipaddress { 10.0.0.7 }"
                )
            ),
        )
        .unwrap();
        let i = &strict.vrrp_conf.instances[0];
        assert_eq!(
            (i.vmac, i.vmac_xmit_base),
            (Some([0, 0, 0x5e, 0, 1, 40]), false)
        );
    }

    /// use_ipvlan as keepalived reads it: mode, address and name in any order, a second of
    /// a kind ignored with keepalived's message; the address a static address of the
    /// instance's interface and the adverts' source unless one is configured; an IPv4
    /// instance without it, or one whose address is of the other family, in FAULT;
    /// promote_secondaries reset.
    /// A VMAC's or ipvlan's name an earlier instance took is ignored with keepalived's
    /// message (the names are one namespace); the instance keeps its VMAC or ipvlan.
    #[test]
    fn a_vmac_or_ipvlan_name_in_use_is_ignored() {
        let instance = |n: u8, body: &str| {
            format!("vrrp_instance V{n} {{\ninterface lan\nvirtual_router_id {n}\n{body}\nvirtual_ipaddress {{ 10.0.0.{n} }}\n}}\n")
        };
        let text = [
            instance(60, "use_vmac vm60"),
            instance(61, "use_ipvlan vm60 10.0.0.161/24"),
            instance(62, "use_vmac vm60"),
            instance(63, "use_ipvlan ipv63 10.0.0.163/24"),
            instance(64, "use_vmac ipv63"),
        ]
        .concat();
        let k = KeepalivedConf::parse("k.conf", &text).unwrap();
        let i = &k.vrrp_conf.instances;
        assert_eq!(i[0].vmac_name.as_deref(), Some("vm60"));
        let v = i[1].ipvlan.as_ref().unwrap();
        assert!(v.name.is_none() && v.address.is_some(), "{v:?}");
        assert!(i[2].vmac_name.is_none());
        assert_eq!(i[3].ipvlan.as_ref().unwrap().name.as_deref(), Some("ipv63"));
        assert!(i[4].vmac_name.is_none());
        let w = &k.warnings;
        for (me, other, name) in [
            ("V61", "V60", "vm60"),
            ("V62", "V60", "vm60"),
            ("V64", "V63", "ipv63"),
        ] {
            let said =
                format!("({me}) VRRP instance {other} is already using {name} - ignoring name");
            assert!(w.iter().any(|l| l.contains(&said)), "{said:?} in {w:?}");
        }
    }

    #[test]
    fn use_ipvlan_as_keepalived_reads_it() {
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        let instance = |n: u8, body: &str| {
            format!("vrrp_instance V{n} {{\ninterface lan\nvirtual_router_id {n}\n{body}\n}}\n")
        };
        let text = [
            instance(
                50,
                "use_ipvlan ipvl50 10.0.0.50/24 private vepa 10.0.0.51\npromote_secondaries\nvirtual_ipaddress { 10.0.0.100 }",
            ),
            instance(
                51,
                "mcast_src_ip 10.0.0.2\nuse_ipvlan 10.0.0.52\nuse_ipvlan 10.0.0.53\nvirtual_ipaddress { 10.0.0.101 }",
            ),
            instance(52, "use_ipvlan bridge\nvirtual_ipaddress { 10.0.0.102 }"),
            instance(53, "use_ipvlan\nvirtual_ipaddress { 2001:db8::53 }"),
            instance(
                54,
                "use_ipvlan 2001:db8::54/64 averyveryverylongname\nvirtual_ipaddress { 10.0.0.104 }",
            ),
        ]
        .concat();
        let k = KeepalivedConf::parse("k.conf", &text).unwrap();
        let i = &k.vrrp_conf.instances;
        let v = i[0].ipvlan.as_ref().unwrap();
        assert_eq!(v.name.as_deref(), Some("ipvl50"));
        let a = v.address.as_ref().unwrap();
        assert_eq!((a.addr, a.len), (ip("10.0.0.50"), 24));
        assert_eq!(
            i[0].unicast_src,
            Some(ip("10.0.0.50")),
            "the ipvlan's address sends"
        );
        assert!(!i[0].promote_secondaries);
        assert_eq!(
            i[1].unicast_src,
            Some(ip("10.0.0.2")),
            "a configured source wins"
        );
        let statics: Vec<_> = k
            .vrrp_conf
            .static_addresses
            .iter()
            .map(|a| (a.addr, a.len, a.dev.as_deref()))
            .collect();
        assert_eq!(
            statics,
            [
                (ip("10.0.0.50"), 24, Some("lan")),
                (ip("10.0.0.52"), 32, Some("lan")),
                (ip("2001:db8::54"), 64, Some("lan")),
            ]
        );
        let faults: Vec<_> = i.iter().map(|i| i.config_fault.as_deref()).collect();
        assert_eq!(
            faults,
            [
                None,
                None,
                Some("IPv4 ipvlan requires a source ip address to be configured. setting instance to fault state"),
                None,
                Some("IPv4 ipvlan address family does not match instance. setting instance to fault state"),
            ]
        );
        for said in [
            "vrrp_instance V50: ipvlan type already specified - ignoring 'vepa'",
            "vrrp_instance V50: ipvlan address already specified - ignoring '10.0.0.51'",
            "vrrp_instance V50: promote_secondaries is automatically set for vmacs - ignoring",
            "vrrp_instance V51: use_ipvlan already specified",
            "vrrp_instance V54: IPVLAN interface name 'averyveryverylongname' too long - ignoring",
        ] {
            assert!(
                k.warnings.iter().any(|w| w.contains(said)),
                "{said:?} in {:#?}",
                k.warnings
            );
        }
        assert!(!k.warnings.iter().any(|w| w.contains("unknown keyword")));
    }

    /// Gratuitous ARP pacing as keepalived reads it: global_defs' intervals for every
    /// interface but those of a garp_group (its own, shared; one it does not give: none); a
    /// group without an interval is removed; vrrp_min_garp makes single bursts unless the
    /// repeat or delay was set before it.
    #[test]
    fn garp_pacing_as_keepalived_reads_it() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "global_defs {
    vrrp_garp_interval 0.002
    vrrp_gna_interval 0.5
    vrrp_garp_master_repeat 3
    vrrp_min_garp
}
garp_group {
    garp_interval 0.1
    interfaces {
        wan
        dmz
    }
}
garp_group {
    interface backup
}
vrrp_instance V {
    interface lan
    virtual_router_id 9
    virtual_ipaddress { 10.0.0.1 }
}
",
        )
        .unwrap();
        let v = &k.vrrp_conf;
        let ms = Duration::from_millis;
        assert_eq!(v.pacing_of(|n| n == "lan"), (None, ms(2), ms(500)));
        assert_eq!(
            v.pacing_of(|n| n == "dmz"),
            (Some(0), ms(100), Duration::ZERO)
        );
        assert_eq!(
            v.pacing_of(|n| n == "wan"),
            (Some(0), ms(100), Duration::ZERO)
        );
        assert_eq!(v.pacing_of(|n| n == "backup"), (None, ms(2), ms(500)));
        assert!(k
            .warnings
            .iter()
            .any(|w| w.contains("garp_group has no garp_interval")));
        let i = &v.instances[0];
        assert_eq!(
            (i.garp_master_repeat, i.garp_master_delay),
            (3, Duration::ZERO)
        );
        assert_eq!(i.garp_refresh, Duration::ZERO);
    }

    /// A sync group's own tracking is every member's; with the owner among its members its
    /// weights are cleared; its other keywords are warned about.
    #[test]
    fn a_sync_group_s_tracking_is_its_members_own() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "vrrp_script chk {
    script /bin/true
    weight 5
}
vrrp_sync_group G {
    group { A B }
    track_interface { wan weight -10 }
    track_script { chk }
    smtp_alert
}
vrrp_sync_group O {
    group { C }
    track_script { chk weight 7 }
}
vrrp_instance A {
    interface lan
    virtual_router_id 1
    virtual_ipaddress { 10.0.0.1 }
}
vrrp_instance B {
    interface lan
    virtual_router_id 2
    virtual_ipaddress { 10.0.0.2 }
}
vrrp_instance C {
    interface lan
    virtual_router_id 3
    priority 255
    virtual_ipaddress { 10.0.0.3 }
}
",
        )
        .unwrap();
        let i = &k.vrrp_conf.instances;
        for member in &i[..2] {
            let t = (&member.track_interfaces[0], &member.track_scripts[0]);
            assert_eq!((t.0.name.as_str(), t.0.weight), ("wan", Some(-10)));
            assert_eq!((t.1.name.as_str(), t.1.weight), ("chk", None));
        }
        assert_eq!(
            i[2].track_scripts[0].weight,
            Some(0),
            "cleared: C is the owner"
        );
        let said = "vrrp_sync_group O: weighted tracking of chk cleared";
        assert!(
            k.warnings.iter().any(|w| w.contains(said)),
            "{said:?} in {:#?}",
            k.warnings
        );
        // smtp_alert read (the group's own word; mails go by it).
        assert_eq!(k.vrrp_conf.groups[0].smtp_alert, Some(true));
        assert_eq!(k.vrrp_conf.groups[1].smtp_alert, None);
    }

    #[test]
    fn every_instance_keyword() {
        let v = parse(
            r#"
global_defs {
    vrrp_version 3
    lvs_sync_daemon lan VI_2 id 7
}
vrrp_script chk { script "/bin/true"; }
vrrp_script chk2 {
    script "/bin/false"
    interval 2
    weight -20
    fall 3
    rise 2
    init_fail
}
vrrp_sync_group G {
    group { VI_1 VI_2 }
    notify_master "/bin/echo group"
    sync_group_tracking_weight
}
vrrp_instance VI_1 {
    state MASTER
    interface lan
    virtual_router_id 51
    priority 150
    advert_int 0.5
    preempt_delay 30
    virtual_ipaddress {
        192.168.1.100/24 dev lan label lan:vip
        192.168.1.101
    }
    virtual_ipaddress_excluded { 192.168.1.200 }
    unicast_src_ip 192.168.1.2
    unicast_peer { 192.168.1.3 }
    track_interface { lan weight -10 }
    track_script { chk2 weight 10 }
    notify_master "/bin/echo master"
    notify_backup /bin/true
    notify_fault /bin/true
    notify_stop /bin/true
    garp_master_delay 1
    garp_master_repeat 2
    notify_master_rx_lower_pri /bin/true
    notify_deleted /bin/true
}
vrrp_instance VI_2 {
    interface inside
    virtual_router_id 52
    version 2
    notify_deleted
    virtual_ipaddress { 10.0.0.254/24 }
}
"#
            .replace("; }", "\n}")
            .as_str(),
        )
        .unwrap();
        let i = &v.instances[0];
        assert!(i.initial_master && i.preempt);
        assert_eq!((i.version, i.advert_cs), (3, 50));
        assert_eq!(i.preempt_delay, Duration::from_secs(30));
        assert_eq!(i.addresses.len(), 2);
        assert_eq!(i.addresses[0].len, 24);
        assert_eq!(i.addresses[0].dev.as_deref(), Some("lan"));
        assert_eq!(i.addresses[0].label.as_deref(), Some("lan:vip"));
        assert_eq!(i.excluded.len(), 1);
        assert_eq!(i.all_addresses().count(), 3);
        assert_eq!(i.unicast_peers.len(), 1);
        assert_eq!(i.unicast_peer_ttls, [(0, 255)]);
        assert_eq!(i.track_interfaces[0].weight, Some(-10));
        assert_eq!(i.track_scripts[0].weight, Some(10));
        assert_eq!(
            i.notify.master.as_ref().unwrap().command,
            "/bin/echo master"
        );
        assert_eq!(
            (i.garp_master_delay, i.garp_master_repeat),
            (Duration::from_secs(1), 2)
        );
        assert_eq!(
            i.notify.master_rx_lower_pri.as_ref().unwrap().command,
            "/bin/true"
        );
        assert!(i.notify.notify_deleted && i.notify.deleted.is_some());
        let n = &v.instances[1].notify;
        assert!(n.notify_deleted && n.deleted.is_none());
        assert_eq!(v.instances[1].version, 2);
        assert_eq!(v.scripts[1].weight, -20);
        assert_eq!((v.scripts[1].fall, v.scripts[1].rise), (3, 2));
        assert!(v.scripts[1].init_fail && !v.scripts[0].init_fail);
        assert_eq!(v.groups[0].members, ["VI_1", "VI_2"]);
        assert_eq!(v.group_of("VI_2").unwrap().name, "G");
        assert_eq!(
            v.sync_daemon,
            Some(SyncDaemonConf {
                instance: "VI_2".into(),
                settings: crate::sync::DaemonSettings::new("lan", 7)
            })
        );
    }

    /// keepalived's removals (Debian's conditional_conf and vrrp.lvs_syncd samples): a
    /// vrrp_script with no script, a sync group with no virtual routers or none it names;
    /// the file still runs.
    #[test]
    fn what_keepalived_removes_is_removed_with_a_warning() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "vrrp_script gone {\n interval 1\n}\nvrrp_script kept {\n script /bin/true\n}\n\
             vrrp_sync_group EMPTY {\n VI_1\n VI_2\n}\n\
             vrrp_sync_group STRANGERS {\n group {\n VI_8\n VI_9\n }\n}\n\
             vrrp_instance VI_1 {\n interface lan\n virtual_router_id 5\n\
             virtual_ipaddress { 10.0.0.1 }\n track_script {\n gone\n kept\n }\n}\n",
        )
        .unwrap();
        let v = &k.vrrp_conf;
        let names: Vec<&str> = v.scripts.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["kept"]);
        let tracked: Vec<&str> = v.instances[0]
            .track_scripts
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(tracked, ["kept"]);
        assert!(v.groups.is_empty(), "{:?}", v.groups);
        for said in [
            "k.conf:1: vrrp_script gone: no script set, removed",
            "track_script \"gone\": no vrrp_script of that name, ignored",
            "k.conf:7: vrrp_sync_group EMPTY: no virtual router(s), removed",
            "vrrp_sync_group STRANGERS: no vrrp_instance of its group, removed",
        ] {
            assert!(
                k.warnings.iter().any(|w| w.contains(said)),
                "no warning {said:?} in {:?}",
                k.warnings
            );
        }
    }

    /// native_ipv6: the instance is IPv6 from the start (its IPv4 VIPs ignored, version
    /// 3); after an IPv4 address it is ignored with keepalived's message; keepalived's
    /// own tuning (debug, kernel_rx_buf_size) passes without a word.
    #[test]
    fn native_ipv6_as_keepalived_reads_it() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "vrrp_instance N {\n interface lan\n virtual_router_id 5\n native_ipv6\n virtual_ipaddress {\n 10.0.0.1\n 2001:db8::1/64\n }\n}\n\
             vrrp_instance L {\n interface lan\n virtual_router_id 6\n virtual_ipaddress {\n 10.0.0.2\n }\n native_ipv6\n debug 2\n kernel_rx_buf_size 4096\n}\n",
        )
        .unwrap();
        let (n, l) = (&k.vrrp_conf.instances[0], &k.vrrp_conf.instances[1]);
        assert!(n.is_ipv6() && n.version == 3);
        assert_eq!(n.addresses.len(), 1);
        assert!(!l.is_ipv6());
        assert_eq!(
            k.warnings,
            [
                "k.conf:6: vrrp_instance N: 10.0.0.1 is not of the instance's family (IPv6); ignored (virtual_ipaddress_excluded takes either family)",
                "k.conf:16: vrrp_instance L: Cannot specify native_ipv6 with IPv4 addresses; ignored (as keepalived)",
            ]
        );
    }

    /// keepalived's families: the first virtual_ipaddress sets the instance's, another
    /// family's there is ignored with a warning, virtual_ipaddress_excluded takes either; an
    /// IPv6 instance is version 3 whatever global_defs says, a `version 2` after its
    /// addresses ignored.
    #[test]
    fn address_families_as_keepalived_reads_them() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "global_defs {\n vrrp_version 2\n}\nvrrp_instance V4 {\n interface lan\n virtual_router_id 5\n virtual_ipaddress {\n 10.0.0.1/24\n 2001:db8::1/64\n 10.0.0.2/24\n }\n virtual_ipaddress_excluded {\n 2001:db8::2/64\n 10.0.0.3\n }\n}\nvrrp_instance V6 {\n interface lan\n virtual_router_id 5\n virtual_ipaddress {\n 2001:db8::5/64\n 10.0.0.5\n }\n version 2\n}\n",
        )
        .unwrap();
        let (v4, v6) = (&k.vrrp_conf.instances[0], &k.vrrp_conf.instances[1]);
        let addrs = |l: &[VirtualAddress]| l.iter().map(|a| a.addr.to_string()).collect::<Vec<_>>();
        assert_eq!(addrs(&v4.addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(addrs(&v4.excluded), ["2001:db8::2", "10.0.0.3"]);
        assert_eq!((v4.is_ipv6(), v4.version), (false, 2));
        assert_eq!(addrs(&v6.addresses), ["2001:db8::5"]);
        assert_eq!((v6.is_ipv6(), v6.version), (true, 3));
        assert_eq!(
            k.warnings,
            [
                "k.conf:9: vrrp_instance V4: 2001:db8::1 is not of the instance's family (IPv4); ignored (virtual_ipaddress_excluded takes either family)",
                "k.conf:22: vrrp_instance V6: 10.0.0.5 is not of the instance's family (IPv6); ignored (virtual_ipaddress_excluded takes either family)",
                "k.conf:24: vrrp_instance V6: version 2 conflicts with IPv6's version 3; ignored",
            ]
        );
    }

    /// keepalived's reading of `authentication`: exactly PASS or AH (anything else ignored),
    /// nothing without auth_type or without auth_pass, none in version 3, AH for IPv4 only
    /// and never starting as MASTER below priority 255.
    #[test]
    fn authentication_as_keepalived_reads_it() {
        let one = |body: &str, extra: &str| {
            let k = KeepalivedConf::parse(
                "k.conf",
                &format!("vrrp_instance V {{\n interface lan\n virtual_router_id 5\n{extra} virtual_ipaddress {{ 10.0.0.1 }}\n authentication {{\n{body}\n }}\n}}\n"),
            )
            .unwrap();
            let i = &k.vrrp_conf.instances[0];
            (i.auth_pass.clone(), i.auth_ah, i.initial_master, k.warnings)
        };
        let (pass, ah, _, w) = one(" auth_type AH\n auth_pass secret", "");
        assert_eq!((pass.as_deref(), ah), (Some("secret"), true), "{w:?}");
        assert!(w.is_empty(), "{w:?}");
        let (pass, ah, _, _) = one(" auth_type PASS\n auth_pass secret", "");
        assert_eq!((pass.as_deref(), ah), (Some("secret"), false));
        // auth_pass alone: keepalived's type stays NONE.
        let (pass, _, _, w) = one(" auth_pass secret", "");
        assert_eq!(pass, None);
        assert!(w.is_empty(), "{w:?}");
        // Case matters to keepalived; an unknown type is reported and ignored.
        let (pass, _, _, w) = one(" auth_type pass\n auth_pass secret", "");
        assert_eq!(pass, None);
        assert_eq!(
            w,
            ["k.conf:6: vrrp_instance V: unknown authentication type \"pass\" ignored (PASS or AH)"]
        );
        let (pass, _, _, w) = one(" auth_type AH", "");
        assert_eq!(pass, None);
        assert_eq!(
            w,
            ["k.conf:6: vrrp_instance V: auth_type without auth_pass; authentication ignored"]
        );
        let (pass, ah, _, w) = one(" auth_type AH\n auth_pass secret", " version 3\n");
        assert_eq!((pass, ah), (None, false));
        assert!(
            w[0].ends_with("VRRP version 3 has no authentication; authentication ignored"),
            "{w:?}"
        );
        let (_, ah, master, w) = one(
            " auth_type AH\n auth_pass secret",
            " state MASTER\n priority 200\n",
        );
        assert_eq!((ah, master), (true, false));
        assert_eq!(
            w,
            ["k.conf:1: vrrp_instance V: state MASTER with AH authentication: starting as BACKUP"]
        );
        let (_, ah, master, w) = one(
            " auth_type AH\n auth_pass secret",
            " state MASTER\n priority 255\n",
        );
        assert_eq!((ah, master), (true, true));
        assert!(w.is_empty(), "{w:?}");
        let k = KeepalivedConf::parse(
            "k.conf",
            "vrrp_instance V {\n interface lan\n virtual_router_id 5\n virtual_ipaddress { 2001:db8::1 }\n authentication {\n auth_type AH\n auth_pass secret\n }\n}\n",
        )
        .unwrap();
        assert_eq!(k.vrrp_conf.instances[0].auth_pass, None);
        assert!(
            k.warnings[0].ends_with("VRRP version 3 has no authentication; authentication ignored"),
            "{:?}",
            k.warnings
        );
    }

    /// garp_master_refresh and its repeat, mcast_dst_ip and global_defs' defaults for
    /// them, as keepalived reads them (a group of the other family, or no group, ignored).
    #[test]
    fn refresh_and_groups_as_keepalived_reads_them() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "global_defs {\n vrrp_garp_master_refresh 60\n vrrp_garp_master_refresh_repeat 0\n vrrp_mcast_group4 224.0.0.100\n vrrp_mcast_group6 ff02::112\n vrrp_mcast_group6 ff05::1\n}\n\
             vrrp_instance A {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n}\n\
             vrrp_instance B {\n interface lan\n virtual_router_id 2\n virtual_ipaddress { 10.0.0.2 }\n garp_master_refresh 10\n garp_master_refresh_repeat 3\n mcast_dst_ip 224.0.0.200\n}\n\
             vrrp_instance C {\n interface lan\n virtual_router_id 3\n virtual_ipaddress { 2001:db8::3 }\n mcast_dst_ip 224.0.0.201\n}\n\
             vrrp_instance D {\n interface lan\n virtual_router_id 4\n virtual_ipaddress { 10.0.0.4 }\n mcast_dst_ip 10.0.0.9\n}\n",
        )
        .unwrap();
        let i = &k.vrrp_conf.instances;
        let refresh = |n: usize| (i[n].garp_refresh.as_secs(), i[n].garp_refresh_repeat);
        assert_eq!((refresh(0), refresh(1)), ((60, 1), (10, 3)));
        let groups: Vec<String> = i.iter().map(|x| x.group().to_string()).collect();
        assert_eq!(
            groups,
            ["224.0.0.100", "224.0.0.200", "ff02::112", "224.0.0.100"]
        );
        assert_eq!(
            k.warnings,
            [
                "k.conf:6: vrrp_mcast_group6 ff05::1: not an IPv6 link-local multicast group; ignored",
                "k.conf:25: vrrp_instance C: mcast_dst_ip 224.0.0.201: not a multicast group of the instance's family; ignored",
                "k.conf:31: vrrp_instance D: mcast_dst_ip 10.0.0.9: not a multicast group of the instance's family; ignored",
            ]
        );
        // Without any: RFC 3768/5798's groups, no refresh.
        let k = KeepalivedConf::parse(
            "k.conf",
            "vrrp_instance A {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n}\n\
             vrrp_instance B {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 2001:db8::1 }\n}\n",
        )
        .unwrap();
        let i = &k.vrrp_conf.instances;
        assert_eq!(
            (i[0].group().to_string(), i[1].group().to_string()),
            ("224.0.0.18".into(), "ff02::12".into())
        );
        assert!(i[0].garp_refresh.is_zero());
        assert!(!i[0].lower_prio_no_advert);
        // lower_prio_no_advert: global default, instance word with or without a value.
        let k = KeepalivedConf::parse(
            "k.conf",
            "global_defs {\n vrrp_lower_prio_no_advert\n}\n\
             vrrp_instance A {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n}\n\
             vrrp_instance B {\n interface lan\n virtual_router_id 2\n virtual_ipaddress { 10.0.0.2 }\n lower_prio_no_advert off\n}\n",
        )
        .unwrap();
        let i = &k.vrrp_conf.instances;
        assert_eq!(
            (i[0].lower_prio_no_advert, i[1].lower_prio_no_advert),
            (true, false)
        );
    }

    /// unicast_ttl and each peer's min_ttl/max_ttl, as keepalived reads and applies them.
    #[test]
    fn unicast_ttls_as_keepalived_reads_them() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "vrrp_instance A {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n unicast_ttl 200\n unicast_peer {\n 10.0.0.2 min_ttl 250\n 10.0.0.3 max_ttl 64 min_ttl 10\n 10.0.0.4\n }\n}\n\
             vrrp_instance B {\n interface lan\n virtual_router_id 2\n virtual_ipaddress { 10.0.0.5 }\n unicast_ttl 9\n}\n",
        )
        .unwrap();
        let (a, b) = (&k.vrrp_conf.instances[0], &k.vrrp_conf.instances[1]);
        assert_eq!(a.unicast_ttl, Some(200));
        assert_eq!(a.unicast_peer_ttls, [(250, 255), (10, 64), (0, 255)]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(a.peer_ttl_ok(ip("10.0.0.2"), 255) && !a.peer_ttl_ok(ip("10.0.0.2"), 249));
        assert!(a.peer_ttl_ok(ip("10.0.0.3"), 64) && !a.peer_ttl_ok(ip("10.0.0.3"), 65));
        assert!(!a.peer_ttl_ok(ip("10.0.0.3"), 9));
        assert!(a.peer_ttl_ok(ip("10.0.0.4"), 1));
        assert_eq!(b.unicast_ttl, None);
        assert_eq!(
            k.warnings,
            ["k.conf:12: vrrp_instance B: unicast_ttl without unicast_peer; ignored"]
        );
        let e = KeepalivedConf::parse(
            "k.conf",
            "vrrp_instance A {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n unicast_peer {\n 10.0.0.2 ttl 5\n }\n}\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "k.conf:6: unicast_peer 10.0.0.2: unknown option \"ttl\" (min_ttl, max_ttl)"
        );
    }

    /// check_unicast_src: set by the word, by global_defs' vrrp_check_unicast_src, or by a
    /// peer's TTL bound (as keepalived); then only the peers are heard.
    #[test]
    fn unicast_sources_as_keepalived_checks_them() {
        let instance = |n: u8, extra: &str| {
            format!(
                "vrrp_instance I{n} {{\n interface lan\n virtual_router_id {n}\n virtual_ipaddress {{ 10.0.0.{n} }}\n unicast_peer {{\n 10.0.0.200{extra}\n }}\n}}\n"
            )
        };
        let text = format!(
            "{}{}vrrp_instance I3 {{\n interface lan\n virtual_router_id 3\n virtual_ipaddress {{ 10.0.0.3 }}\n check_unicast_src\n unicast_peer {{\n 10.0.0.200\n }}\n}}\n\
             vrrp_instance I4 {{\n interface lan\n virtual_router_id 4\n virtual_ipaddress {{ 10.0.0.4 }}\n check_unicast_src\n}}\n",
            instance(1, ""),
            instance(2, " max_ttl 250"),
        );
        let conf = parse(&text).unwrap();
        let checks: Vec<bool> = conf.instances.iter().map(|i| i.check_unicast_src).collect();
        assert_eq!(checks, [false, true, true, true]);
        let (peer, other) = ("10.0.0.200".parse().unwrap(), "10.0.0.201".parse().unwrap());
        let heard = |i: &Instance| (i.source_ok(peer), i.source_ok(other));
        assert_eq!(heard(&conf.instances[0]), (true, true));
        assert_eq!(heard(&conf.instances[1]), (true, false));
        assert_eq!(heard(&conf.instances[2]), (true, false));
        // A multicast instance has no peers to check against.
        assert_eq!(heard(&conf.instances[3]), (true, true));
        let global = parse(&format!(
            "global_defs {{\n vrrp_check_unicast_src\n}}\n{}",
            instance(1, "")
        ))
        .unwrap();
        assert_eq!(heard(&global.instances[0]), (true, false));
    }

    /// Debian's keepalived.conf.vrrp.routes, read as keepalived reads it: what rvs's data
    /// plane can install is kept, each route it cannot is named with its reason.
    #[test]
    fn routes_as_keepalived_reads_them() {
        let text = "static_routes {\n\
             src 192.168.100.1 192.168.209.0/24 via 192.168.200.254 dev eth0\n\
             192.168.212.0/24 dev eth3 scope site\n\
             to default via inet 10.0.0.254 metric 10 mtu lock 1400 onlink\n\
             2001:db8:9::/48 via 2001:db8::1\n\
             }\n\
             vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n\
             virtual_ipaddress {\n 192.168.200.16\n }\n\
             virtual_routes {\n\
             192.168.112.0/24 via 192.168.100.254\n\
             192.168.113.0/24 via 192.168.100.252 or 192.168.100.253\n\
             blackhole 192.168.113.1/32\n\
             0.0.0.0/0 gw 192.168.0.1 table 100 # to table 100\n\
             192.168.114.0/24 table main via 192.168.0.1\n\
             192.168.115.1/24 via 192.168.0.1\n\
             192.168.116.0/24 via 2001:db8::1\n\
             192.168.117.0/24\n\
             192.168.118.0/24 via 192.168.0.1 realm 3\n\
             10.20.0.0/16 via 192.168.0.1 table no_such_table\n\
             }\n}\n";
        let k = KeepalivedConf::parse("k.conf", text).unwrap();
        let route = |r: &VrrpRoute| {
            let table = match r.table {
                rvs_core::engine::MAIN_TABLE => String::new(),
                t => format!(" table {t}"),
            };
            format!(
                "{}/{} via {:?} dev {:?}{table}",
                r.prefix,
                r.len,
                r.via.map(|v| v.to_string()),
                r.dev
            )
        };
        let statics: Vec<_> = k.vrrp_conf.static_routes.iter().map(route).collect();
        assert_eq!(
            statics,
            [
                "192.168.209.0/24 via Some(\"192.168.200.254\") dev Some(\"eth0\")",
                "192.168.212.0/24 via None dev Some(\"eth3\")",
                "0.0.0.0/0 via Some(\"10.0.0.254\") dev None",
                "2001:db8:9::/48 via Some(\"2001:db8::1\") dev None",
            ]
        );
        let virtuals: Vec<_> = k.vrrp_conf.instances[0].routes.iter().map(route).collect();
        assert_eq!(
            virtuals,
            [
                "192.168.112.0/24 via Some(\"192.168.100.254\") dev None",
                "0.0.0.0/0 via Some(\"192.168.0.1\") dev None table 100",
                "192.168.114.0/24 via Some(\"192.168.0.1\") dev None",
            ]
        );
        assert_eq!(k.vrrp_conf.instances[0].routes[0].at, "k.conf:14");
        let reasons = reasons(&k.warnings);
        assert_eq!(
            reasons,
            [
                "route \"src 192.168.100.1 192.168.209.0/24 via 192.168.200.254 dev eth0\": src 192.168.100.1: only the host's own connections would use it; ignored",
                "route \"192.168.113.0/24 via 192.168.100.252 or 192.168.100.253\": several next hops: rvs takes one; not installed",
                "route \"blackhole 192.168.113.1/32\": type blackhole: rvs's data plane installs unicast routes; not installed",
                "route \"192.168.115.1/24 via 192.168.0.1\": 192.168.115.1/24: host bits set; not installed",
                "route \"192.168.116.0/24 via 2001:db8::1\": the gateway is of another family; not installed",
                "route \"192.168.117.0/24\": neither via nor dev; not installed",
                "route \"192.168.118.0/24 via 192.168.0.1 realm 3\": unknown route keyword \"realm\"; not installed",
                "route \"10.20.0.0/16 via 192.168.0.1 table no_such_table\": table no_such_table: no such routing table (rt_tables); not installed",
            ]
        );
    }

    /// Routes get their data port from `dev` or from the route to their gateway; one with
    /// neither is left out, named; static routes always, virtual ones only while MASTER.
    #[test]
    fn routes_resolve_to_ports_and_follow_the_state() {
        let mut conf = parse(
            "static_routes {\n 10.9.0.0/16 via 10.0.0.254\n 10.8.0.0/16 via 172.16.0.1\n}\n\
             vrrp_instance A {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n\
             virtual_routes {\n 0.0.0.0/0 via 192.0.2.1 dev wan\n 10.7.0.0/16 dev nowhere\n }\n}\n\
             vrrp_instance B {\n interface lan\n virtual_router_id 2\n virtual_ipaddress { 10.0.0.2 }\n\
             virtual_routes {\n 10.6.0.0/16 via 10.0.0.253\n }\n}\n",
        )
        .unwrap();
        let warnings = conf.resolve_routes(
            |name| match name {
                "lan" => Some(0),
                "wan" | "rvs-wan" => Some(1),
                _ => None,
            },
            |gateway| (gateway.to_string().starts_with("10.0.0.")).then_some(0),
        );
        assert_eq!(
            warnings,
            [
                "k.conf:3: route 10.8.0.0/16: no route of the rvs configuration reaches the gateway 172.16.0.1; not installed",
                "k.conf:11: route 10.7.0.0/16: dev nowhere: no data port or host twin of that name; not installed",
            ]
        );
        let (a, b) = (&conf.instances[0], &conf.instances[1]);
        let shown = |routes: Vec<rvs_core::engine::Route>| -> Vec<String> {
            routes
                .iter()
                .map(|r| format!("{}/{} {:?} {}", r.prefix, r.len, r.gateway, r.port))
                .collect()
        };
        assert_eq!(
            shown(installed_routes(&conf.static_routes, std::iter::empty())),
            ["10.9.0.0/16 Some(10.0.0.254) 0"]
        );
        assert_eq!(
            shown(installed_routes(&conf.static_routes, [a].into_iter())),
            [
                "10.9.0.0/16 Some(10.0.0.254) 0",
                "0.0.0.0/0 Some(192.0.2.1) 1"
            ]
        );
        assert_eq!(
            shown(installed_routes(&conf.static_routes, [b, a].into_iter())),
            [
                "10.9.0.0/16 Some(10.0.0.254) 0",
                "10.6.0.0/16 Some(10.0.0.253) 0",
                "0.0.0.0/0 Some(192.0.2.1) 1"
            ]
        );
    }

    /// Address lines as keepalived's vrrp_ipaddress.c reads them: what it skips (an address
    /// it cannot read, a second dev, an option without its value) is skipped, said; an
    /// unknown option is said and the address kept; the kernel's attributes pass.
    #[test]
    fn addresses_as_keepalived_reads_them() {
        let text =
            "static_ipaddress {\n 10.9.0.1/24 dev lan track_group G\n 10.9.0.2 use_vmac\n}\n\
             vrrp_instance VI_1 {\n interface lan\n virtual_router_id 51\n\
             virtual_ipaddress {\n\
             10.0.0.1/24 dev lan label lan:1 brd + scope global\n\
             10.0.0.2 preferred_lft forever mngtmpaddr -nodad no_track\n\
             10.0.0.3 frobnicate\n\
             10.0.0.4 dev lan dev wan\n\
             10.0.0.5 label\n\
             10.0.0.300\n\
             10.0.0.6 use_vmac\n\
             }\n}\n";
        let k = KeepalivedConf::parse("k.conf", text).unwrap();
        let conf = &k.vrrp_conf;
        let shown = |v: &[VirtualAddress]| -> Vec<String> {
            v.iter()
                .map(|a| {
                    format!(
                        "{}/{} {:?} {:?} {}",
                        a.addr, a.len, a.dev, a.label, a.no_track
                    )
                })
                .collect()
        };
        assert_eq!(
            shown(&conf.instances[0].addresses),
            [
                "10.0.0.1/24 Some(\"lan\") Some(\"lan:1\") false",
                "10.0.0.2/32 None None true",
                "10.0.0.3/32 None None false",
                "10.0.0.6/32 None None false",
            ]
        );
        assert_eq!(
            shown(&conf.static_addresses),
            [
                "10.9.0.1/24 Some(\"lan\") None false",
                "10.9.0.2/32 None None false"
            ]
        );
        let reasons = reasons(&k.warnings);
        assert_eq!(
            reasons,
            [
                "Unknown configuration entry 'use_vmac' for ip address - ignoring",
                "Unknown configuration entry 'frobnicate' for ip address - ignoring",
                "Cannot specify ipaddress device more than once for 10.0.0.4; address skipped",
                "No label parameter specified for 10.0.0.5; address skipped",
                "VRRP parsed invalid IP 10.0.0.300. skipping IP...",
                "10.0.0.6: use_vmac on one address: rvs answers with an instance's virtual router MAC on its own interface only; this address keeps its port's MAC",
            ]
        );
    }

    /// static_rules and virtual_rules read as keepalived's vrrp_iprule.c reads them: its
    /// refusals with its messages, its preferences from 16384 down per family for rules
    /// without one, its messages for what it reads past; selectors rvs's data plane cannot
    /// apply are left out, said; static rules always apply, virtual ones while MASTER; the
    /// host gets `ip rule` lines, a data port by its twin's name.
    #[test]
    fn rules_as_keepalived_reads_them() {
        let text = "static_rules {\n\
             from 192.168.28.0/24 table 1234 priority 100\n\
             to 10.1.0.0/16 lookup main\n\
             from 2001:db8::/32 table 100\n\
             from all to 10.2.0.0/16 preference 200 blackhole\n\
             not from 10.3.0.0/16 order 300 type unreachable\n\
             from 10.4.0.0/16 priority 10 goto 20\n\
             priority 30 nop\n\
             from 10.5.0.0/16 priority 40 table 100 fwmark 7\n\
             from 10.6.0.0/16 iif eth0 priority 41 table 100\n\
             from 10.7.0.0/16 priority 50\n\
             from 10.8.0.0/16 to 2001:db8::1 priority 51 table 100\n\
             from 10.9.0.0/16 priority 60 goto 60\n\
             from 10.10.0.0/16 goto 70\n\
             from 10.11.0.0/16 priority 61 table 0\n\
             from 10.12.0.0/16 priority 62 table 100 nop\n\
             from 10.13.0.1/16 priority 63 table 100\n\
             from 10.14.0.0/16 priority 64 table no_such_table\n\
             inet6 from 10.15.0.0/16 priority 65 table 100\n\
             from 10.16.0.0/16 priority 66 local\n\
             from 10.17.0.0/16 priority 67 frobnicate\n\
             from 10.18.0.0/16 priority 68 table 100 ipproto nonesuch sport 53 dport 5-1\n\
             from 10.19.0.0/16 priority 69 table 100 tos nonesuch\n\
             from 10.20.0.0/16 priority 70 table 100 fwmark 7/x\n\
             from 10.21.0.0/16 priority 71 table 100 uidrange 0-10\n\
             from 10.22.0.0/16 priority 72 table 100 ipproto udp sport 53 oif eth1\n\
             }\n\
             vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n\
             virtual_ipaddress {\n 192.168.200.16\n }\n\
             virtual_rules {\n from 192.168.200.16 table 100 priority 1000\n from 192.168.200.17\n }\n}\n";
        let k = KeepalivedConf::parse("k.conf", text).unwrap();
        let conf = &k.vrrp_conf;
        let shown: Vec<String> = conf.static_rules.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            shown,
            [
                "100: from 192.168.28.0/24 table 1234",
                "16384: from all to 10.1.0.0/16 table 254",
                "16384: from 2001:db8::/32 table 100",
                "200: from all to 10.2.0.0/16 blackhole",
                "300: not from 10.3.0.0/16 unreachable",
                "10: from 10.4.0.0/16 goto 20",
                "30: from all nop",
                "40: from 10.5.0.0/16 fwmark 0x7 table 100",
                "41: from 10.6.0.0/16 iif eth0 table 100",
                "72: from 10.22.0.0/16 oif eth1 ipproto udp table 100",
            ]
        );
        let r = &conf.static_rules;
        assert!(r[2].rule.ipv6 && !r[0].rule.ipv6 && !r[1].rule.ipv6);
        assert_eq!(r[0].at, "k.conf:2");
        assert_eq!(
            r[0].ip_args("add").join(" "),
            "-4 rule add from 192.168.28.0/24 table 1234 priority 100 protocol 18"
        );
        assert_eq!(
            r[4].ip_args("del").join(" "),
            "-4 rule del not from 10.3.0.0/16 unreachable priority 300 protocol 18"
        );
        let virtuals: Vec<String> = conf.instances[0]
            .rules
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(virtuals, ["1000: from 192.168.200.16/32 table 100",]);
        let reasons = reasons(&k.warnings);
        assert_eq!(
            reasons,
            [
                "rule \"to 10.1.0.0/16 lookup main\": Rule has no preference specified - setting to 16384. This is probably not what you want.",
                "rule \"from 2001:db8::/32 table 100\": Rule has no preference specified - setting to 16384. This is probably not what you want.",
                "rule \"from 10.5.0.0/16 priority 40 table 100 fwmark 7\": rvs's packets carry the marks of its [[fwmark]] rules alone (iptables' MARK rules do not see them): the rule selects what those mark (the host's copy is installed)",
                "rule \"from 10.7.0.0/16 priority 50\": No action specified for rule; ignored",
                "rule \"from 10.8.0.0/16 to 2001:db8::1 priority 51 table 100\": rule specification has mixed IPv4 and IPv6; ignored",
                "rule \"from 10.9.0.0/16 priority 60 goto 60\": Invalid rule - preference 60 >= goto target 60; ignored",
                "rule \"from 10.10.0.0/16 goto 70\": Invalid rule - goto target 70 specified without preference; ignored",
                "rule \"from 10.11.0.0/16 priority 61 table 0\": Table 0 is not valid; ignored",
                "rule \"from 10.12.0.0/16 priority 62 table 100 nop\": Cannot specify more than one of table/nop/goto/blackhole/prohibit/unreachable/l3mdev for rule; ignored",
                "rule \"from 10.13.0.1/16 priority 63 table 100\": Invalid rule from address 10.13.0.1/16; ignored",
                "rule \"from 10.14.0.0/16 priority 64 table no_such_table\": Routing table no_such_table not found for rule; ignored",
                "rule \"inet6 from 10.15.0.0/16 priority 65 table 100\": rule specification has mixed IPv4 and IPv6; ignored",
                "rule \"from 10.16.0.0/16 priority 66 local\": Invalid rule action local; ignored",
                "rule \"from 10.17.0.0/16 priority 67 frobnicate\": Unknown rule option frobnicate; ignored",
                "rule \"from 10.18.0.0/16 priority 68 table 100 ipproto nonesuch sport 53 dport 5-1\": Invalid dport range 5-1 (the kernel refuses it); ignored",
                "rule \"from 10.19.0.0/16 priority 69 table 100 tos nonesuch\": TOS value nonesuch is invalid; ignored",
                "rule \"from 10.20.0.0/16 priority 70 table 100 fwmark 7/x\": Invalid rule fwmark 7/x specified; ignored",
                "rule \"from 10.21.0.0/16 priority 71 table 100 uidrange 0-10\": uidrange: rvs's data plane cannot select by it; not installed",
                "rule \"from 10.22.0.0/16 priority 72 table 100 ipproto udp sport 53 oif eth1\": invalid sport range 53 (keepalived 2.2.7 reads a range only: write 53-53); the rule selects any sport",
                "rule \"from 10.22.0.0/16 priority 72 table 100 ipproto udp sport 53 oif eth1\": rvs binds no lookup to an output interface: the rule selects nothing rvs routes (the host's copy is installed)",
                "rule \"from 192.168.200.17\": No action specified for rule; ignored",
            ]
        );
        // Static rules always, an instance's while it is MASTER.
        let installed = |masters: Vec<&Instance>| {
            installed_rules(&conf.static_rules, masters.into_iter()).len()
        };
        assert_eq!(installed(Vec::new()), 10);
        assert_eq!(installed(vec![&conf.instances[0]]), 11);
        // A data port's name is its twin's on the host; an interface neither rvs's nor
        // the host's leaves the rule out.
        let mut conf = conf.clone();
        let left_out = conf.resolve_rule_devices(
            |name| (name == "eth0").then_some(3),
            |port| (port == 3).then(|| "rvs-eth0".to_string()),
            |_| false,
        );
        assert_eq!(
            left_out,
            ["k.conf:26: rule 72: from 10.22.0.0/16 oif eth1 ipproto udp table 100: WARNING - interface eth1 for rule doesn't exist; not installed"]
        );
        let by_iif = conf
            .static_rules
            .iter()
            .find(|r| r.rule.priority == 41)
            .unwrap();
        assert_eq!(by_iif.rule.select.iif.map(|d| d.port), Some(Some(3)));
        assert_eq!(
            by_iif.ip_args("add").join(" "),
            "-4 rule add from 10.6.0.0/16 iif rvs-eth0 table 100 priority 41 protocol 18"
        );
    }

    /// What rvs does not apply of a file's VRRP side is said, never dropped silently.
    #[test]
    fn top_level_vrrp_statements_are_applied_or_named() {
        let k = KeepalivedConf::parse(
            "k.conf",
            "static_ipaddress {\n 10.0.0.9 dev lan\n}\nstatic_routes {\n 10.9.0.0/24 via 10.0.0.254\n}\n\
             vrrp_track_process P {\n process nginx\n}\n\
             vrrp_track_file F {\n file /tmp/f\n}\n\
             vrrp_track_bfd B {\n}\n\
             vrrp_track_process Q {\n weight 2\n}\n\
             vrrp_instance A {\n interface lan\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n track_file { F }\n}\n",
        )
        .unwrap();
        assert_eq!(k.vrrp_conf.instances[0].track_files[0].name, "F");
        assert_eq!(k.vrrp_conf.static_routes.len(), 1);
        let a = &k.vrrp_conf.static_addresses;
        assert_eq!((a.len(), a[0].dev.as_deref()), (1, Some("lan")));
        let named: Vec<_> = k
            .warnings
            .iter()
            .map(|w| w.split(" (").next().unwrap())
            .collect();
        assert_eq!(k.vrrp_conf.processes.len(), 1);
        assert_eq!(
            named,
            [
                "k.conf:13: vrrp_track_bfd: not supported, ignored",
                "k.conf:15: vrrp_track_process Q: process name not specified, removed",
            ]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let base = "vrrp_instance V {\n interface lan\n virtual_router_id 5\n virtual_ipaddress { 10.0.0.1 }\n";
        let bad = |extra: &str| parse(&format!("{base}{extra}\n}}\n")).unwrap_err();
        assert!(
            bad(" priority 0").starts_with("k.conf:5: priority"),
            "{}",
            bad(" priority 0")
        );
        assert!(bad(" priority 256").contains("k.conf:5"));
        assert!(bad(" state LEADER").contains("MASTER or BACKUP"));
        assert!(bad(" advert_int 1.5").contains("whole seconds"));
        // An address keepalived cannot read is skipped with its message, not an error.
        let skipped = KeepalivedConf::parse(
            "k.conf",
            &format!("{base} virtual_ipaddress {{ 10.0.0.2/33 }}\n}}\n"),
        )
        .unwrap();
        assert!(
            skipped
                .warnings
                .iter()
                .any(|w| w == "k.conf:5: VRRP parsed invalid IP 10.0.0.2/33. skipping IP..."),
            "{:?}",
            skipped.warnings
        );
        let e = parse("vrrp_instance V {\n interface lan\n virtual_ipaddress { 10.0.0.1 }\n}\n")
            .unwrap_err();
        assert_eq!(e, "k.conf:1: vrrp_instance V: no virtual_router_id");
        let e = parse(&format!("{base}}}\n{base}}}\n")).unwrap_err();
        assert!(e.contains("also defined at k.conf:1"), "{e}");
        let e = parse(&format!(
            "{base}}}\n{}}}\n",
            base.replace("instance V", "instance W")
        ))
        .unwrap_err();
        assert!(
            e.contains("virtual_router_id 5 on lan is taken by V"),
            "{e}"
        );
        let v6 = parse("vrrp_instance V {\n interface lan\n virtual_router_id 5\n version 2\n virtual_ipaddress { 2001:db8::1 }\n}\n")
            .unwrap_err();
        assert!(
            v6.starts_with("k.conf:4: vrrp_instance V: version 2 with IPv6 addresses"),
            "{v6}"
        );
        // What keepalived warns about and runs anyway.
        let k = KeepalivedConf::parse(
            "k.conf",
            &format!("{base} track_script {{ missing }}\n authentication {{\n auth_type PASS\n auth_pass longerthan8\n }}\n}}\n"),
        )
        .unwrap();
        assert!(k.vrrp_conf.instances[0].track_scripts.is_empty());
        assert_eq!(
            k.vrrp_conf.instances[0].auth_pass.as_deref(),
            Some("longerth")
        );
        assert_eq!(k.warnings.len(), 2, "{:?}", k.warnings);
    }
}
