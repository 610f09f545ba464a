//! Reloading VRRP as keepalived reloads it: an instance of the new configuration that
//! matches a running one (keepalived's `vrrp_exist`: the same VRID, family and interface,
//! unicast or not, and the same unicast source or multicast group; the name may change)
//! keeps its state, counters and AH sequence, and its addresses and routes change by their
//! difference; a running instance the new configuration lacks is deleted (a MASTER
//! advertises priority 0 and gives its addresses and routes up; it is notified DELETED with
//! `notify_deleted`, else FAULT, as keepalived); a new one starts as at start-up.

use super::conf::{Instance, VirtualAddress, VrrpRoute};
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
    /// Notify scripts still running.
    pub children: Vec<std::process::Child>,
}

impl Carried {
    /// Takes the running instance `key` names, if any.
    pub fn take(&mut self, key: &InstanceKey) -> Option<CarriedInstance> {
        let at = self.instances.iter().position(|c| &c.key == key)?;
        Some(self.instances.remove(at))
    }

    /// A script's verdict before the reload (a new script starts as fine).
    pub fn script_ok(&self, name: &str) -> bool {
        self.scripts
            .iter()
            .find(|(n, _)| n == name)
            .is_none_or(|(_, ok)| *ok)
    }
}

/// The same address, wherever in the file it is written.
pub fn same_address(a: &VirtualAddress, b: &VirtualAddress) -> bool {
    (a.addr, a.len, &a.dev, &a.label) == (b.addr, b.len, &b.dev, &b.label)
}

/// The same route, wherever in the file it is written.
pub fn same_route(a: &VrrpRoute, b: &VrrpRoute) -> bool {
    (a.prefix, a.len, a.via, a.port) == (b.prefix, b.len, b.via, b.port)
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

fn addresses<'a>(v: impl Iterator<Item = &'a VirtualAddress>) -> Vec<String> {
    v.map(|a| format!("{}/{}", a.addr, a.len)).collect()
}

fn routes<'a>(v: impl Iterator<Item = &'a VrrpRoute>) -> Vec<String> {
    v.map(|r| format!("{}/{}", r.prefix, r.len)).collect()
}

/// The difference a reload makes, one line per change, and how many instances keep their
/// state; read before the new runtime takes the carried instances (`keys`: the new
/// instances' keys, in order; `statics`: the new static addresses and routes).
pub fn report(
    carried: &Carried,
    new: &[Instance],
    keys: &[InstanceKey],
    statics: (&[VirtualAddress], &[VrrpRoute]),
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
        let changes: Vec<String> = [
            listed(
                "address(es) added",
                addresses(lacking(&na, &oa, same_address)),
            ),
            listed(
                "address(es) removed",
                addresses(lacking(&oa, &na, same_address)),
            ),
            listed(
                "route(s) added",
                routes(lacking(&i.routes, &old.conf.routes, same_route)),
            ),
            listed(
                "route(s) removed",
                routes(lacking(&old.conf.routes, &i.routes, same_route)),
            ),
        ]
        .into_iter()
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
    let (sa, sr) = statics;
    out.extend(
        [
            listed(
                "static_ipaddress added",
                addresses(lacking(sa, &carried.static_addresses, same_address)),
            ),
            listed(
                "static_ipaddress removed",
                addresses(lacking(&carried.static_addresses, sa, same_address)),
            ),
            listed(
                "static_routes added",
                routes(lacking(sr, &carried.static_routes, same_route)),
            ),
            listed(
                "static_routes removed",
                routes(lacking(&carried.static_routes, sr, same_route)),
            ),
        ]
        .into_iter()
        .flatten(),
    );
    (out, kept)
}
