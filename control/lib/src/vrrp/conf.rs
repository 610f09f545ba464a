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
mod tests;
