//! Reloading VRRP as keepalived reloads it: an instance of the new configuration that
//! matches a running one (keepalived's `vrrp_exist`: the same VRID, family and interface,
//! unicast or not, and the same unicast source or multicast group; the name may change)
//! keeps its state, counters and AH sequence, and its addresses and routes change by their
//! difference; a running instance the new configuration lacks is deleted (a MASTER
//! advertises priority 0 and gives its addresses and routes up; it is notified DELETED with
//! `notify_deleted`, else FAULT, as keepalived); a new one starts as at start-up.

use super::conf::{Instance, VirtualAddress, VrrpRoute, VrrpRule};
use super::machine::State;
use super::run::InstanceStatus;
use std::net::IpAddr;

/// What makes two configurations' instances the same running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceKey {
    vrid: u8,
    ipv6: bool,
    link: usize,
    unicast: bool,
    /// A unicast instance's source address, a multicast one's group.
    addr: IpAddr,
    /// A multicast instance's use_vmac (keepalived matches no instance that changed it).
    vmac: bool,
}

impl InstanceKey {
    /// The key of `conf` running on link `link` from `src`.
    pub fn of(conf: &Instance, link: usize, src: IpAddr) -> InstanceKey {
        let unicast = !conf.unicast_peers.is_empty();
        InstanceKey {
            vrid: conf.vrid,
            ipv6: conf.is_ipv6(),
            link,
            unicast,
            addr: if unicast { src } else { conf.group() },
            vmac: !unicast && conf.vmac.is_some(),
        }
    }
}

/// A running instance handed to the reloaded runtime.
#[derive(Debug)]
pub struct CarriedInstance {
    pub key: InstanceKey,
    pub conf: Instance,
    pub state: State,
    pub status: InstanceStatus,
    pub ah_sequence: u32,
    pub ip_id: u16,
}

/// What a running VRRP controller hands over at a reload.
#[derive(Debug, Default)]
pub struct Carried {
    /// The instances the new configuration keeps.
    pub instances: Vec<CarriedInstance>,
    /// Instances deleted: name and the state they were in.
    pub deleted: Vec<(String, State)>,
    /// Each tracking script's verdict, by name.
    pub scripts: Vec<(String, bool)>,
    pub static_addresses: Vec<VirtualAddress>,
    pub static_routes: Vec<VrrpRoute>,
    pub static_rules: Vec<VrrpRule>,
    /// Notify scripts still running.
    pub children: Vec<std::process::Child>,
    /// Set for a reload (a start-up's is empty): vrrp_startup_delay applies only at start.
    pub reload: bool,
}

impl Carried {
    /// Takes the running instance `key` names, if any.
    pub fn take(&mut self, key: &InstanceKey) -> Option<CarriedInstance> {
        let at = self.instances.iter().position(|c| &c.key == key)?;
        Some(self.instances.remove(at))
    }

    /// A script's verdict before the reload (a new script starts as fine).
    /// The verdict a running script of that name had (None: none ran).
    pub fn script_ok(&self, name: &str) -> Option<bool> {
        self.scripts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ok)| *ok)
    }
}

/// The same address, wherever in the file it is written.
pub fn same_address(a: &VirtualAddress, b: &VirtualAddress) -> bool {
    (a.addr, a.len, &a.dev, &a.label) == (b.addr, b.len, &b.dev, &b.label)
}

/// The same route, wherever in the file it is written.
pub fn same_route(a: &VrrpRoute, b: &VrrpRoute) -> bool {
    (a.prefix, a.len, a.via, a.port, a.table) == (b.prefix, b.len, b.via, b.port, b.table)
}

/// The same rule, wherever in the file it is written.
pub fn same_rule(a: &VrrpRule, b: &VrrpRule) -> bool {
    a.rule == b.rule
}

/// `from`'s entries that `to` lacks.
pub fn lacking<'a, T>(
    from: impl IntoIterator<Item = &'a T>,
    to: &'a [T],
    same: fn(&T, &T) -> bool,
) -> impl Iterator<Item = &'a T> {
    from.into_iter()
        .filter(move |a| !to.iter().any(|b| same(a, b)))
}

fn listed(what: &str, items: Vec<String>) -> Option<String> {
    (!items.is_empty()).then(|| format!("{what} {}", items.join(", ")))
}

fn address_name(a: &VirtualAddress) -> String {
    format!("{}/{}", a.addr, a.len)
}

/// `PREFIX/LEN`, and ` table N` for another table than main.
pub(crate) fn route_name(r: &VrrpRoute) -> String {
    match r.table {
        rvs_core::engine::MAIN_TABLE => format!("{}/{}", r.prefix, r.len),
        t => format!("{}/{} table {t}", r.prefix, r.len),
    }
}

/// "WHAT added ..." and "WHAT removed ...": the entries `new` has and `old` lacks, and
/// the other way round (None where there are none).
fn added_removed<T>(
    what: &str,
    (new, old): (&[T], &[T]),
    same: fn(&T, &T) -> bool,
    name: fn(&T) -> String,
) -> [Option<String>; 2] {
    let names = |from: &[T], to: &[T]| lacking(from, to, same).map(name).collect();
    [
        listed(&format!("{what} added"), names(new, old)),
        listed(&format!("{what} removed"), names(old, new)),
    ]
}

/// The difference a reload makes, one line per change, and how many instances keep their
/// state; read before the new runtime takes the carried instances (`keys`: the new
/// instances' keys, in order; `statics`: the new static addresses and routes).
pub fn report(
    carried: &Carried,
    new: &[Instance],
    keys: &[InstanceKey],
    statics: (&[VirtualAddress], &[VrrpRoute], &[VrrpRule]),
) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut kept = 0;
    let mut taken = vec![false; carried.instances.len()];
    for (i, key) in new.iter().zip(keys) {
        let old = carried
            .instances
            .iter()
            .enumerate()
            .find(|(k, c)| !taken[*k] && &c.key == key);
        let Some((k, old)) = old else {
            out.push(format!("vrrp_instance {}: new", i.name));
            continue;
        };
        taken[k] = true;
        kept += 1;
        let (oa, na): (Vec<_>, Vec<_>) = (
            old.conf.all_addresses().cloned().collect(),
            i.all_addresses().cloned().collect(),
        );
        let routes = (&i.routes[..], &old.conf.routes[..]);
        let rules = (&i.rules[..], &old.conf.rules[..]);
        let accept = (old.conf.accept != i.accept).then(|| {
            if i.accept {
                "accept mode on: traffic to its addresses taken".to_string()
            } else {
                "no accept mode: traffic to its addresses refused".to_string()
            }
        });
        let changes: Vec<String> =
            added_removed("address(es)", (&na, &oa), same_address, address_name)
                .into_iter()
                .chain(added_removed("route(s)", routes, same_route, route_name))
                .chain(added_removed(
                    "rule(s)",
                    rules,
                    same_rule,
                    VrrpRule::to_string,
                ))
                .chain([accept])
                .flatten()
                .collect();
        let renamed = if old.conf.name == i.name {
            String::new()
        } else {
            format!(" (was {})", old.conf.name)
        };
        if !changes.is_empty() || !renamed.is_empty() {
            out.push(format!(
                "vrrp_instance {}{renamed}: stays {}; {}",
                i.name,
                old.state.name(),
                if changes.is_empty() {
                    "same addresses and routes".to_string()
                } else {
                    changes.join("; ")
                }
            ));
        }
    }
    for (name, state) in &carried.deleted {
        out.push(format!(
            "vrrp_instance {name}: deleted (was {})",
            state.name()
        ));
    }
    let (sa, sr, srules) = statics;
    let old_routes = &carried.static_routes[..];
    out.extend(
        added_removed(
            "static_ipaddress",
            (sa, &carried.static_addresses),
            same_address,
            address_name,
        )
        .into_iter()
        .chain(added_removed(
            "static_routes",
            (sr, old_routes),
            same_route,
            route_name,
        ))
        .chain(added_removed(
            "static_rules",
            (srules, &carried.static_rules),
            same_rule,
            VrrpRule::to_string,
        ))
        .flatten(),
    );
    (out, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::KeepalivedConf;

    fn instances(text: &str) -> Vec<Instance> {
        KeepalivedConf::parse("k.conf", text)
            .unwrap()
            .vrrp_conf
            .instances
    }

    fn key(i: &Instance) -> InstanceKey {
        InstanceKey::of(i, 0, "10.0.0.2".parse().unwrap())
    }

    #[test]
    fn instances_match_as_keepalived_matches_them() {
        let base = "vrrp_instance VI_1 { interface lan\nvirtual_router_id 51\npriority 100\nvirtual_ipaddress { 10.0.0.100 }\n}";
        let was = key(&instances(base)[0]);
        let same = |text: &str| key(&instances(text)[0]) == was;
        // The name, priority, addresses and state may change.
        assert!(same(
            &base
                .replace("VI_1", "VI_WEB")
                .replace("priority 100", "priority 50\nstate MASTER")
        ));
        assert!(same(&base.replace("10.0.0.100", "10.0.0.100\n10.0.0.101")));
        // Not the VRID, the group, the family, unicast or not.
        assert!(!same(&base.replace("51", "52")));
        assert!(!same(&base.replace(
            "priority 100",
            "priority 100\nmcast_dst_ip 224.0.0.100"
        )));
        assert!(!same(&base.replace(
            "priority 100",
            "priority 100\nunicast_peer { 10.0.0.3 }"
        )));
        assert!(!same(
            &base.replace("priority 100", "priority 100\nuse_vmac")
        ));
        assert!(!same(&base.replace("10.0.0.100", "2001:db8::100")));
        // Another interface is another link.
        let i = &instances(base)[0];
        assert_ne!(InstanceKey::of(i, 1, "10.0.0.2".parse().unwrap()), was);
        // A unicast instance is its source's: the peers may change.
        let uni = base.replace("priority 100", "priority 100\nunicast_peer { 10.0.0.3 }");
        let u = key(&instances(&uni)[0]);
        let more = uni.replace("10.0.0.3 }", "10.0.0.3\n10.0.0.4 }");
        assert_eq!(key(&instances(&more)[0]), u);
        let moved = InstanceKey::of(&instances(&uni)[0], 0, "10.0.0.9".parse().unwrap());
        assert_ne!(moved, u);
    }

    #[test]
    fn the_report_names_each_change() {
        let old = instances(
            "vrrp_instance VI_1 { interface lan\nvirtual_router_id 51\nvirtual_ipaddress { 10.0.0.100/24\n10.0.0.101/24 }\nvirtual_routes { 10.9.0.0/16 via 10.0.0.254 }\n}\n\
             vrrp_instance VI_2 { interface lan\nvirtual_router_id 52\nvirtual_ipaddress { 10.0.0.200 }\n}\n\
             vrrp_instance VI_3 { interface lan\nvirtual_router_id 53\nvirtual_ipaddress { 10.0.0.30 }\n}",
        );
        let carried = |i: &Instance, state| CarriedInstance {
            key: key(i),
            conf: i.clone(),
            state,
            status: InstanceStatus::default(),
            ah_sequence: 0,
            ip_id: 0,
        };
        let c = Carried {
            instances: vec![
                carried(&old[0], State::Master),
                carried(&old[1], State::Backup),
            ],
            deleted: vec![("VI_3".into(), State::Master)],
            ..Carried::default()
        };
        let new = instances(
            "vrrp_instance VI_1 { interface lan\nvirtual_router_id 51\nvirtual_ipaddress { 10.0.0.100/24\n10.0.0.102/24 }\n}\n\
             vrrp_instance WEB { interface lan\nvirtual_router_id 52\nvirtual_ipaddress { 10.0.0.200 }\n}\n\
             vrrp_instance VI_4 { interface lan\nvirtual_router_id 54\nvirtual_ipaddress { 10.0.0.40 }\n}",
        );
        let keys: Vec<InstanceKey> = new.iter().map(key).collect();
        let (lines, kept) = report(&c, &new, &keys, (&[], &[], &[]));
        assert_eq!(kept, 2);
        assert_eq!(
            lines,
            [
                "vrrp_instance VI_1: stays MASTER; address(es) added 10.0.0.102/24; address(es) removed 10.0.0.101/24; route(s) removed 10.9.0.0/16",
                "vrrp_instance WEB (was VI_2): stays BACKUP; same addresses and routes",
                "vrrp_instance VI_4: new",
                "vrrp_instance VI_3: deleted (was MASTER)",
            ]
        );
        // Written elsewhere in the file, the same address is no change.
        let mut moved = old[0].addresses[0].clone();
        moved.at = "k.conf:99".into();
        assert!(same_address(&moved, &old[0].addresses[0]));
    }
}
