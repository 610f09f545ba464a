//! Policy rules as the kernel's fib rules select: a static_rules block read by rvs, its
//! host copies put in a namespace whose tables hold one default route each, then every
//! lookup of a grid (input from each port and output, sources, destinations, DS fields,
//! protocols and ports, firewall marks) asked of the kernel (`ip route get`) and of rvs's data plane
//! (`Snapshot::route_for`): the same next hop each time. Needs root.

use rvs_control::keepalived::KeepalivedConf;
use rvs_core::engine::{Route, RouteQuery, Snapshot, MAIN_TABLE};
use rvs_testkit::netns::Netns;
use std::net::IpAddr;
use std::process::Command;

const RULES: &str = "static_rules {
    from 10.9.0.0/16 priority 10 table 100
    to 192.0.2.0/24 priority 11 table 200
    iif eth1 to 198.51.100.0/24 priority 20 table 200
    not iif eth0 to 203.0.113.0/24 priority 21 table 100
    tos 0x10 priority 30 table 100
    ipproto udp dport 53-53 priority 40 table 100
    ipproto tcp sport 1000-2000 priority 41 table 200
    iif lo ipproto tcp dport 8080-8090 priority 42 table 100
    fwmark 0/0xff to 198.51.100.0/24 priority 43 table 100
    fwmark 1 priority 44 table 200
    oif eth1 priority 45 table 200
    from 2001:db8:9::/48 priority 50 table 100
    inet6 dsfield 0x20 priority 51 table 200
    inet6 iif eth1 ipproto ipv6-icmp priority 52 table 100
}
";

const PORTS: [&str; 2] = ["eth0", "eth1"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The kernel's answer: the next hop's port and address (None: no route).
fn kernel(ns: &str, ipv6: bool, args: &str) -> Option<(u16, IpAddr)> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip -n {ns} {} route get {args}",
            if ipv6 { "-6" } else { "-4" }
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |w: &str| {
        words
            .iter()
            .position(|x| *x == w)
            .and_then(|i| words.get(i + 1))
    };
    let port = PORTS.iter().position(|p| after("dev") == Some(p))? as u16;
    Some((port, after("via")?.parse().ok()?))
}

#[test]
fn rules_select_as_the_kernel_s_fib_rules() {
    let lab = Netns::new("rvspk");
    let ns = lab.ns.clone();
    for cmd in [
        "ip link add eth0 type veth peer name eth1",
        "ip link set eth0 up && ip link set eth1 up",
        "ip addr add 10.0.0.1/24 dev eth0 && ip addr add 10.1.0.1/24 dev eth1",
        "ip addr add 2001:db8::1/64 dev eth0 nodad && ip addr add 2001:db8:1::1/64 dev eth1 nodad",
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0",
    ] {
        assert!(lab.exec(cmd), "{cmd}");
    }
    // One default route a table, each with its own next hop.
    let tables: [(u32, &str, &str, u16); 5] = [
        (MAIN_TABLE, "10.0.0.254", "eth0", 0),
        (100, "10.1.0.254", "eth1", 1),
        (200, "10.0.0.253", "eth0", 0),
        (MAIN_TABLE, "2001:db8::fe", "eth0", 0),
        (100, "2001:db8:1::fe", "eth1", 1),
    ];
    let mut routes = Vec::new();
    for (table, via, dev, port) in tables {
        let gateway = ip(via);
        let family = if gateway.is_ipv6() { "-6" } else { "-4" };
        let any = if gateway.is_ipv6() {
            "::/0"
        } else {
            "0.0.0.0/0"
        };
        assert!(lab.exec(&format!(
            "ip {family} route add {any} via {via} dev {dev} table {table}"
        )));
        routes.push(Route {
            prefix: ip(any.split('/').next().unwrap()),
            len: 0,
            gateway: Some(gateway),
            port,
            table,
        });
    }

    let mut k = KeepalivedConf::parse("k.conf", RULES).unwrap();
    let unknown = k.vrrp_conf.resolve_rule_devices(
        |name| PORTS.iter().position(|p| *p == name).map(|i| i as u16),
        |_| None,
        |_| false,
    );
    assert!(unknown.is_empty(), "{unknown:#?}");
    let rules = &k.vrrp_conf.static_rules;
    assert_eq!(rules.len(), 14, "{:#?}", k.warnings);
    for r in rules {
        let args = r.ip_args("add").join(" ");
        assert!(lab.exec(&format!("ip {args}")), "{args}");
    }
    let mut snap = Snapshot::new(Vec::new(), Vec::new(), routes, Default::default());
    snap.set_rules(rules.iter().map(|r| r.rule).collect());

    // Flows: (ip route get words, protocol, source port, destination port).
    let flows: [(&str, u8, u16, u16); 5] = [
        ("", 0, 0, 0),
        ("ipproto udp sport 5000 dport 53", 17, 5000, 53),
        ("ipproto tcp sport 1500 dport 80", 6, 1500, 80),
        ("ipproto tcp sport 999 dport 8085", 6, 999, 8085),
        ("ipproto icmp", 1, 0, 0),
    ];
    let mut asked = 0;
    let mut differ = Vec::new();
    let mut hops = std::collections::BTreeSet::new();
    let mut ask = |q: RouteQuery, words: String, ipv6: bool| {
        let theirs = kernel(&ns, ipv6, &words);
        let ours = snap.route_for(&q);
        asked += 1;
        hops.insert(ours);
        if theirs != ours {
            differ.push(format!("{words}: kernel {theirs:?}, rvs {ours:?}"));
        }
    };
    for (v6, srcs, dsts, tos_values) in [
        (
            false,
            ["10.9.1.1", "10.5.5.5"],
            &["8.8.8.8", "192.0.2.9", "198.51.100.7", "203.0.113.5"][..],
            &[0u8, 0x10, 0x30, 0x14][..],
        ),
        (
            true,
            ["2001:db8:9::5", "2001:db8:5::5"],
            &["2001:db8:7::1"][..],
            &[0u8, 0x20, 0x21, 0x60][..],
        ),
    ] {
        let icmp = if v6 {
            ("ipproto ipv6-icmp", 58)
        } else {
            ("ipproto icmp", 1)
        };
        for dst in dsts {
            for &tos in tos_values {
                for &(words, proto, sport, dport) in &flows {
                    for mark in [0u32, 1, 0x100, 0x101] {
                        let (words, proto) = if proto == 1 { icmp } else { (words, proto) };
                        let query = |src: Option<&str>, iif: Option<u16>| RouteQuery {
                            src: src.map(ip),
                            dst: ip(dst),
                            iif,
                            tos,
                            proto,
                            sport,
                            dport,
                            mark,
                        };
                        let words = format!("tos {tos:#x} mark {mark:#x} {words}");
                        for src in srcs {
                            for (port, name) in PORTS.iter().enumerate() {
                                ask(
                                    query(Some(src), Some(port as u16)),
                                    format!("{dst} from {src} iif {name} {words}"),
                                    v6,
                                );
                            }
                        }
                        // The appliance's own lookup, before a source is chosen.
                        ask(query(None, None), format!("{dst} {words}"), v6);
                    }
                }
            }
        }
    }
    assert!(asked >= 1600, "{asked}");
    // Every table's next hop was some lookup's answer.
    assert_eq!(hops.len(), 5, "{hops:?}");
    assert!(
        differ.is_empty(),
        "{} of {asked} lookups differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
