//! `rvs preview`: the server each client would get, in order, from rules in ipvsadm's
//! syntax — no daemon, no NIC, but the workers' own path: the rules go through the live
//! model ([`Director`]) into the snapshot the daemon would publish, and each
//! client's first packet (a TCP SYN, or a UDP datagram) goes through an [`Engine`] that
//! adopted it, so scheduler state, persistence templates and connection
//! accounting are the data plane's. Each client's connection stays open: a TCP one counts
//! as active, a UDP one as inactive. A client without a port gets one of its own
//! (1024 + its line number).

use crate::director::{Director, FwmarkRule, Limits};
use crate::ipvsadm::{parse_endpoint, parse_line, Protocol};
use rvs_core::conn::{addr16, InKey};
use rvs_core::engine::{Engine, EngineConfig, PortInfo, Route, Verdict};
use rvs_core::sched::DestLoad;
use rvs_wire::emit::opening_frame;
use rvs_wire::VecFrame;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The preview appliance's one port and the MAC its synthetic neighbours have.
const PORT_MAC: [u8; 6] = [2, 0x70, 0x72, 0x65, 0x76, 0x00];
const NEIGHBOUR_MAC: [u8; 6] = [2, 0x70, 0x72, 0x65, 0x76, 0x01];
const CLIENT_MAC: [u8; 6] = [2, 0x70, 0x72, 0x65, 0x76, 0x02];

/// Where a `fwmark:N` client line sends its packet: an address of the reserved range
/// (240/4, and fd00::/8 for IPv6) marked N for the preview.
fn mark_address(mark: u32, ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0x5e,
            0,
            0,
            0,
            0,
            (mark >> 16) as u16,
            mark as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::from(0xf000_0000 | (mark & 0x0fff_ffff)))
    }
}
const MARK_PORT: u16 = 1;

struct Client {
    line: usize,
    text: String,
    addr: IpAddr,
    port: u16,
    proto: Protocol,
    dest: Dest,
}

enum Dest {
    Addr(IpAddr, u16),
    Mark(u32),
}

fn parse_clients(clients: &str) -> Result<Vec<Client>, String> {
    let mut out = Vec::new();
    for (n, line) in clients.lines().enumerate() {
        let at = |m: &str| format!("clients line {}: {m}", n + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let [client, target, rest @ ..] = words.as_slice() else {
            return Err(at("expected CLIENT[:PORT] DESTINATION [tcp|udp|sctp]"));
        };
        let (addr, port) =
            parse_endpoint(client).ok_or_else(|| at("illegal client address[:port]"))?;
        let proto = match rest.first().copied() {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some("sctp") => Protocol::Sctp,
            Some(p) => return Err(at(&format!("unknown protocol {p:?}"))),
        };
        let dest = match target.strip_prefix("fwmark:") {
            Some(mark) => Dest::Mark(mark.parse().map_err(|_| at("illegal fwmark"))?),
            None => {
                let (a, p) = parse_endpoint(target)
                    .ok_or_else(|| at("illegal destination address[:port]"))?;
                Dest::Addr(a, p.unwrap_or(0))
            }
        };
        out.push(Client {
            line: n + 1,
            text: format!("{client} -> {target}"),
            addr,
            port: port.unwrap_or(1024u16.saturating_add(n as u16)),
            proto,
            dest,
        });
    }
    Ok(out)
}

/// Runs the preview; errors name the input and line.
pub fn preview(rules: &str, clients: &str) -> Result<String, String> {
    let clients = parse_clients(clients)?;
    let limits = Limits {
        entries: 1024,
        dests: 8192,
    };
    let loads: Arc<Vec<DestLoad>> =
        Arc::new((0..limits.dests).map(|_| DestLoad::default()).collect());
    let mut director = Director::new(limits, loads.clone());
    director.ports = vec![PortInfo {
        mac: PORT_MAC,
        addrs: vec![
            IpAddr::from([198, 18, 255, 254]),
            IpAddr::from([0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0xfffe]),
        ],
        mtu: 9000,
        ip_checksum_offload: false,
    }];
    director.routes = [IpAddr::from([0u8; 4]), IpAddr::from([0u8; 16])]
        .into_iter()
        .map(|prefix| Route {
            prefix,
            len: 0,
            gateway: None,
            port: 0,
            table: rvs_core::engine::MAIN_TABLE,
        })
        .collect();
    // Marks the clients use, for both families and protocols.
    for c in &clients {
        if let Dest::Mark(mark) = c.dest {
            for ipv6 in [false, true] {
                for proto in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                    let rule = FwmarkRule::exact(mark, proto, mark_address(mark, ipv6), MARK_PORT);
                    if !director.marks.contains(&rule) {
                        director.marks.push(rule);
                    }
                }
            }
        }
    }
    let mut engine = Engine::new(
        EngineConfig {
            conn_capacity: (clients.len() * 2 + 64).next_power_of_two(),
            max_services: limits.entries,
            max_dests: limits.dests,
            neighbour_capacity: 64,
            // Nothing evicted: what is previewed is every client's choice.
            syn_share: 100,
            ..EngineConfig::default()
        },
        1,
    );
    for (n, line) in rules.lines().enumerate() {
        let at = |m: String| format!("rules line {}: {m}", n + 1);
        let Some(cmd) = parse_line(line).map_err(at)? else {
            continue;
        };
        if !cmd.is_rule() {
            return Err(at("not a rule (only -A -E -D -a -e -d -C)".into()));
        }
        director.apply(&cmd).map_err(at)?;
    }
    // Every server answers on the link.
    director.neighbours = director
        .services
        .iter()
        .flat_map(|s| s.dests.iter().map(|d| (d.addr, NEIGHBOUR_MAC)))
        .collect();
    // One snapshot: its scheduler change log brings the engine's state where applying the
    // rules one at a time would (changes no worker saw fold into their service's bind).
    let snap = director.snapshot();
    engine.adopt(&snap);

    let mut out = String::new();
    for c in &clients {
        let at = |m: &str| format!("clients line {}: {m}", c.line);
        let (daddr, dport) = match c.dest {
            Dest::Addr(a, p) => (a, p),
            Dest::Mark(mark) => (mark_address(mark, c.addr.is_ipv6()), MARK_PORT),
        };
        let l4 = c.proto.number();
        let frame = opening_frame((CLIENT_MAC, PORT_MAC), c.addr, daddr, l4, (c.port, dport))
            .ok_or_else(|| at("the client and destination are of different families"))?;
        let before = engine.table.len();
        let verdict = engine.process(&snap, &loads, 1, 0, &mut VecFrame::new(&frame));
        let key = InKey {
            proto: l4,
            caddr: addr16(c.addr),
            cport: c.port,
            vaddr: addr16(daddr),
            vport: dport,
        };
        let conn = engine
            .table
            .lookup_in(&key)
            .and_then(|id| engine.table.get(id));
        let _ = write!(out, "{}", c.text);
        let Some(conn) = conn else {
            let why = match verdict {
                Verdict::Drop(rvs_core::engine::DropReason::NoService)
                | Verdict::Drop(rvs_core::engine::DropReason::NotOurs) => "no service",
                Verdict::ToHost => "no service",
                _ if snap.is_vip(daddr) => "no server available",
                _ => "no service",
            };
            let _ = writeln!(out, " => {why}");
            continue;
        };
        let server = director
            .services
            .iter()
            .flat_map(|s| s.dests.iter())
            .find(|d| d.id == conn.dest as usize);
        // A reused template adds the connection alone; a new one adds itself too.
        let note = if conn.template_id().is_some() && engine.table.len() == before + 1 {
            ", persistent"
        } else {
            ""
        };
        match server {
            Some(d) => {
                let _ = writeln!(
                    out,
                    " => {} ({}{note})",
                    std::net::SocketAddr::new(d.addr, d.port),
                    d.method.ipvsadm_word()
                );
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
            .contains("rules line 1: Service not defined"));
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
    fn sctp_clients_open_associations_by_init() {
        let rules = "-A --sctp-service 10.1.1.1:5000 -s rr\n-a --sctp-service 10.1.1.1:5000 -r 10.0.0.1:5001 -m\n-a --sctp-service 10.1.1.1:5000 -r 10.0.0.2 -g\n";
        let out = preview(
            rules,
            "1.1.1.1:1 10.1.1.1:5000 sctp\n1.1.1.2:1 10.1.1.1:5000 sctp\n1.1.1.3:1 10.1.1.1:5000 tcp\n",
        )
        .unwrap();
        let servers: Vec<&str> = out
            .lines()
            .map(|l| l.split("=> ").nth(1).unwrap())
            .collect();
        assert_eq!(
            servers,
            // rr starts from the newest server, as the kernel's list does.
            vec![
                "10.0.0.2:5000 (Route)",
                "10.0.0.1:5001 (Masq)",
                "no service"
            ]
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
