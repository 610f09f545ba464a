//! `rvs preview`: the server each client would get, in order, from rules in ipvsadm's
//! syntax — no packets, no daemon. Services are built as `ipvsadm -R` builds them (created
//! empty, then one server at a time, so the list runs newest first). Each client opens a
//! connection that stays open: a TCP one counts as active (it is assumed to complete its
//! handshake), a UDP one as inactive. Persistence templates (-p, -M) are honoured.

use crate::ipvsadm::{
    parse_endpoint, parse_line, Command, Protocol, ServerSpec, ServiceKey, ServiceSpec,
};
use rvs_core::sched::{self, build_table, Dest, DestLoad, Request, SchedState, SchedTable};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

struct Service {
    spec: ServiceSpec,
    /// Newest first.
    servers: Vec<ServerSpec>,
    dests: Vec<Dest>,
    table: SchedTable,
    state: SchedState,
    templates: HashMap<IpAddr, usize>,
}

impl Service {
    fn rebuild(
        &mut self,
        loads: &mut Vec<DestLoad>,
        ids: &mut HashMap<(ServiceKey, IpAddr, u16), usize>,
    ) {
        self.dests = self
            .servers
            .iter()
            .map(|s| {
                let next = ids.len();
                let id = *ids.entry((self.spec.key, s.addr, s.port)).or_insert(next);
                if id >= loads.len() {
                    loads.push(DestLoad::default());
                }
                loads[id].set_thresholds(sched::Thresholds {
                    upper: s.upper,
                    lower: s.lower,
                });
                Dest {
                    id,
                    addr: s.addr,
                    port: s.port,
                    weight: s.weight,
                    last_weight: s.weight,
                }
            })
            .collect();
        self.table = build_table(&self.spec.scheduler, &self.dests);
        self.state.list_changed(&self.table);
    }
}

fn find(services: &mut [Service], key: ServiceKey) -> Option<&mut Service> {
    services.iter_mut().find(|s| s.spec.key == key)
}

fn mask(addr: IpAddr, prefix: Option<u8>) -> IpAddr {
    let full = if addr.is_ipv4() { 32 } else { 128 };
    rvs_core::engine::masked(addr, prefix.unwrap_or(full))
}

/// Runs the preview; errors name the input and line.
pub fn preview(rules: &str, clients: &str) -> Result<String, String> {
    let mut services: Vec<Service> = Vec::new();
    let mut loads: Vec<DestLoad> = Vec::new();
    let mut ids: HashMap<(ServiceKey, IpAddr, u16), usize> = HashMap::new();
    for (n, line) in rules.lines().enumerate() {
        let at = |m: String| format!("rules line {}: {m}", n + 1);
        let Some(cmd) = parse_line(line).map_err(at)? else {
            continue;
        };
        match cmd {
            Command::AddService(spec) => {
                if services.iter().any(|s| s.spec.key == spec.key) {
                    return Err(at("service already exists".into()));
                }
                let table = build_table(&spec.scheduler, &[]);
                let state = SchedState::new(&spec.scheduler, &table);
                services.push(Service {
                    spec,
                    servers: Vec::new(),
                    dests: Vec::new(),
                    table,
                    state,
                    templates: HashMap::new(),
                });
            }
            Command::AddServer(server) => {
                let svc = find(&mut services, server.service)
                    .ok_or_else(|| at("service not defined".into()))?;
                if svc
                    .servers
                    .iter()
                    .any(|r| r.addr == server.addr && r.port == server.port)
                {
                    return Err(at("destination already exists".into()));
                }
                svc.servers.insert(0, server);
                svc.rebuild(&mut loads, &mut ids);
            }
            Command::EditService(spec) => {
                let svc =
                    find(&mut services, spec.key).ok_or_else(|| at("no such service".into()))?;
                // A scheduler bound to a complete list starts afresh (wrr at cw = mw).
                svc.spec = spec;
                svc.table = build_table(&svc.spec.scheduler, &svc.dests);
                svc.state = SchedState::new(&svc.spec.scheduler, &svc.table);
                svc.templates.clear();
            }
            Command::DeleteService(key) => {
                let before = services.len();
                services.retain(|s| s.spec.key != key);
                if services.len() == before {
                    return Err(at("no such service".into()));
                }
            }
            Command::EditServer(server) => {
                let svc = find(&mut services, server.service)
                    .ok_or_else(|| at("no such service".into()))?;
                let slot = svc
                    .servers
                    .iter_mut()
                    .find(|r| r.addr == server.addr && r.port == server.port)
                    .ok_or_else(|| at("no such destination".into()))?;
                *slot = server;
                svc.rebuild(&mut loads, &mut ids);
            }
            Command::DeleteServer {
                service,
                addr,
                port,
            } => {
                let svc =
                    find(&mut services, service).ok_or_else(|| at("no such service".into()))?;
                let before = svc.servers.len();
                svc.servers.retain(|r| !(r.addr == addr && r.port == port));
                if svc.servers.len() == before {
                    return Err(at("no such destination".into()));
                }
                svc.rebuild(&mut loads, &mut ids);
            }
            Command::Clear => services.clear(),
            _ => return Err(at("not a rule (only -A -E -D -a -e -d -C)".into())),
        }
    }
    let mut out = String::new();
    for (n, line) in clients.lines().enumerate() {
        let at = |m: &str| format!("clients line {}: {m}", n + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let [client, dest, rest @ ..] = words.as_slice() else {
            return Err(at("expected CLIENT[:PORT] DESTINATION [tcp|udp]"));
        };
        let (caddr, cport) =
            parse_endpoint(client).ok_or_else(|| at("illegal client address[:port]"))?;
        let proto = match rest.first().copied() {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some(p) => return Err(at(&format!("unknown protocol {p:?}"))),
        };
        let (svc_index, dst_addr) = if let Some(mark) = dest.strip_prefix("fwmark:") {
            let mark: u32 = mark.parse().map_err(|_| at("illegal fwmark"))?;
            let i = services.iter().position(
                |s| matches!(s.spec.key, ServiceKey::Fwmark { mark: m, .. } if m == mark),
            );
            (i, caddr)
        } else {
            let (daddr, dport) =
                parse_endpoint(dest).ok_or_else(|| at("illegal destination address[:port]"))?;
            let exact = ServiceKey::Addr(proto, SocketAddr::new(daddr, dport.unwrap_or(0)));
            let all_ports = ServiceKey::Addr(proto, SocketAddr::new(daddr, 0));
            let i = services
                .iter()
                .position(|s| s.spec.key == exact)
                .or_else(|| services.iter().position(|s| s.spec.key == all_ports));
            (i, daddr)
        };
        let _ = write!(out, "{client} -> {dest}");
        let Some(si) = svc_index else {
            let _ = writeln!(out, " => no service");
            continue;
        };
        let svc = &mut services[si];
        let masked = mask(caddr, svc.spec.netmask);
        let templated = svc
            .spec
            .persistent
            .and_then(|_| svc.templates.get(&masked).copied())
            .and_then(|id| svc.dests.iter().position(|d| d.id == id));
        let chosen = templated.or_else(|| {
            let req = Request {
                client: caddr,
                client_port: cport.unwrap_or(0),
                dst: dst_addr,
                now: 0,
            };
            sched::pick(
                &svc.spec.scheduler,
                &svc.table,
                &mut svc.state,
                &svc.dests,
                &loads,
                &req,
            )
        });
        match chosen {
            Some(i) => {
                let d = &svc.dests[i];
                let load = &loads[d.id];
                load.bind();
                if proto == Protocol::Tcp {
                    load.set_active(true);
                }
                if svc.spec.persistent.is_some() && templated.is_none() {
                    svc.templates.insert(masked, d.id);
                    load.add_persistent();
                }
                let server = SocketAddr::new(d.addr, d.port);
                let how = svc.servers[i].method.word();
                let note = if templated.is_some() {
                    ", persistent"
                } else {
                    ""
                };
                let _ = writeln!(out, " => {server} ({how}{note})");
            }
            None => {
                let _ = writeln!(out, " => no server available");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrr_3_to_1_as_restored_by_ipvsadm_r() {
        let rules = "-A -t 192.168.1.100:80 -s wrr\n\
                     -a -t 192.168.1.100:80 -r 10.0.0.1:80 -m -w 3\n\
                     -a -t 192.168.1.100:80 -r 10.0.0.2:80 -m -w 1\n";
        let clients: String = (1..=9)
            .map(|i| format!("172.16.0.{i}:4000 192.168.1.100:80\n"))
            .collect();
        let out = preview(rules, &clients).unwrap();
        let servers: Vec<&str> = out
            .lines()
            .map(|l| l.split("=> ").nth(1).unwrap())
            .collect();
        // List order newest first: .2 then .1; filled one at a time -> cw = 1 first round.
        assert_eq!(
            servers,
            vec![
                "10.0.0.2:80 (Masq)",
                "10.0.0.1:80 (Masq)",
                "10.0.0.1:80 (Masq)",
                "10.0.0.1:80 (Masq)",
                "10.0.0.2:80 (Masq)",
                "10.0.0.1:80 (Masq)",
                "10.0.0.1:80 (Masq)",
                "10.0.0.1:80 (Masq)",
                "10.0.0.2:80 (Masq)",
            ]
        );
    }

    #[test]
    fn the_howto_sequence_rr_then_edited_to_wrr_3_to_1() {
        // lvs-cluster-howto: -A rr with two NAT servers, then -E wrr and -e weights 3:1.
        let rules = "ipvsadm -A -t 10.1.1.1:80 -s rr\n\
                     ipvsadm -a -t 10.1.1.1:80 -r 192.168.1.2 -m\n\
                     ipvsadm -a -t 10.1.1.1:80 -r 192.168.1.3 -m\n\
                     ipvsadm -E -t 10.1.1.1:80 -s wrr\n\
                     ipvsadm -e -t 10.1.1.1:80 -r 192.168.1.2 -m -w 3\n\
                     ipvsadm -e -t 10.1.1.1:80 -r 192.168.1.3 -m -w 1\n";
        let clients: String = (1..=8)
            .map(|i| format!("172.16.0.{i}:5000 10.1.1.1:80\n"))
            .collect();
        let out = preview(rules, &clients).unwrap();
        let picks: Vec<&str> = out
            .lines()
            .map(|l| l.split("=> ").nth(1).unwrap())
            .collect();
        let twos = picks
            .iter()
            .filter(|p| p.starts_with("192.168.1.2:80"))
            .count();
        assert_eq!(twos, 6, "3:1 over 8 connections: {picks:?}");
        assert!(preview("-d -t 1.1.1.1:80 -r 2.2.2.2\n", "")
            .unwrap_err()
            .contains("no such service"));
    }

    #[test]
    fn persistence_all_ports_and_no_service() {
        let rules = "-A -t 192.168.1.100:0 -s rr -p 600 -M 255.255.255.0\n\
                     -a -t 192.168.1.100:0 -r 10.0.0.1 -g\n\
                     -a -t 192.168.1.100:0 -r 10.0.0.2 -g\n";
        let clients = "172.16.0.1:1000 192.168.1.100:80\n\
                       172.16.0.2:1001 192.168.1.100:443\n\
                       172.16.1.1:1002 192.168.1.100:21\n\
                       172.16.0.1:1003 192.168.1.101:80\n";
        let out = preview(rules, clients).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "172.16.0.1:1000 -> 192.168.1.100:80 => 10.0.0.2:0 (Route)"
        );
        assert_eq!(
            lines[1],
            "172.16.0.2:1001 -> 192.168.1.100:443 => 10.0.0.2:0 (Route, persistent)"
        );
        assert_eq!(
            lines[2],
            "172.16.1.1:1002 -> 192.168.1.100:21 => 10.0.0.1:0 (Route)"
        );
        assert_eq!(
            lines[3],
            "172.16.0.1:1003 -> 192.168.1.101:80 => no service"
        );
    }

    #[test]
    fn lc_sees_connections_it_made_and_errors_name_lines() {
        let rules = "-A -u 10.1.1.1:53 -s lc\n-a -u 10.1.1.1:53 -r 10.0.0.1 -m\n-a -u 10.1.1.1:53 -r 10.0.0.2 -m\n";
        let out = preview(
            rules,
            "1.1.1.1:1 10.1.1.1:53 udp\n1.1.1.2:1 10.1.1.1:53 udp\n1.1.1.3:1 10.1.1.1:53 udp\n",
        )
        .unwrap();
        let servers: Vec<&str> = out
            .lines()
            .map(|l| l.split("=> ").nth(1).unwrap())
            .collect();
        assert_eq!(
            servers,
            vec![
                "10.0.0.2:53 (Masq)",
                "10.0.0.1:53 (Masq)",
                "10.0.0.2:53 (Masq)"
            ]
        );
        let e = preview("-A -t 1.1.1.1:80\n-a -t 1.1.1.1:80 -r 2.2.2.2 -w -1\n", "").unwrap_err();
        assert_eq!(e, "rules line 2: illegal weight specified");
        let e = preview("", "1.1.1.1\n").unwrap_err();
        assert!(e.starts_with("clients line 1:"), "{e}");
    }
}
