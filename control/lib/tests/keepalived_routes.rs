//! keepalived.conf's `static_routes`, `virtual_routes`, `static_rules` and `virtual_rules`
//! read as keepalived 2.2.7 installs them. Debian's keepalived runs the file's VRRP side in
//! a namespace of its own (eth0 and eth1 with addresses; the instance MASTER at once) and
//! the kernel's tables and rules are read back; rvs's reading of the same file must install
//! exactly the single-gateway routes keepalived put there (in the same tables), and name
//! with a warning every other line: the ones keepalived did not install (the kernel refused
//! them) and the ones it installed where rvs's data plane has nothing alike (a blackhole,
//! several next hops); rvs's rules, put in another namespace as rvs puts them on its host,
//! read back the same as keepalived's, every selector included (what rvs's data plane
//! selects nothing by, named). Needs root.

use rvs_control::keepalived::KeepalivedConf;
use rvs_control::vrrp::conf::installed_routes;
use rvs_testkit::netns::Netns;
use rvs_testkit::wait::wait_for;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

const CONF: &str = "static_routes {
    10.1.0.0/16 via 192.168.200.254
    src 192.168.200.1 10.2.0.0/16 via 192.168.100.254 dev eth1
    10.3.0.0/16 dev eth1 scope link
    10.4.0.0/16 via 192.168.200.254 table 100
    blackhole 10.5.0.0/16
    10.6.1.0/16 via 192.168.200.254
    to 10.7.0.0/16 via inet 192.168.200.254 metric 10
    10.8.0.0/16 via 192.168.200.254 or 192.168.200.253
    2001:db8:9::/48 via 2001:db8:200::fe
    default via 2001:db8:200::fd
}
static_rules {
    from 192.168.28.0/24 table 100 priority 100
    to 10.1.0.0/16 lookup main
    from 2001:db8::/32 table 100
    from all to 10.2.0.0/16 preference 200 blackhole
    not from 10.3.0.0/16 order 32800 type unreachable
    from 10.4.0.0/16 priority 10 goto 30
    priority 30 nop
    from 10.5.0.0/16 priority 40 table 100 fwmark 7
    from 10.6.0.0/16 priority 41 table 100 fwmark 0x10/0xff tos 0x10 iif eth1
    to 10.7.0.0/16 priority 42 table 100 oif eth0 ipproto tcp dport 80-90
    from 10.8.0.0/16 priority 43 table 100 ipproto udp sport 53
    dev eth1 priority 44 lookup main dport 8080-8080 sport 1024-65534
    from 2001:db8:1::/48 priority 45 table 100 ipproto ipv6-icmp dsfield 0x20
    from 10.10.0.0/16 priority 47 table 100 ipproto tcp sport 1-65535
}
vrrp_instance V {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 255
    advert_int 1
    virtual_ipaddress {
        192.168.200.16/24
    }
    virtual_routes {
        0.0.0.0/0 via 192.168.200.254
        10.11.0.0/16 dev eth1
        10.12.0.0/16 via 192.168.100.254 dev eth1 onlink
        10.13.0.0/16 via 10.99.0.1
        unreachable 10.14.0.0/16
        10.15.0.0/16 via 192.168.100.253 mtu lock 1400 proto static
    }
    virtual_rules {
        from 192.168.200.16 table 100 priority 1000
    }
}
";

/// The namespace's policy rules as `ip rule` lists them, but the kernel's own.
fn kernel_rules(ns: &str) -> BTreeSet<String> {
    let mut rules = BTreeSet::new();
    for family in ["-4", "-6"] {
        let out = Command::new("ip")
            .args(["-n", ns, family, "rule", "show"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if !["0:", "32766:", "32767:"]
                .iter()
                .any(|p| line.starts_with(p))
            {
                rules.insert(format!(
                    "{family} {}",
                    line.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
    rules
}

/// The kernel's routes of every table but local that keepalived added (not the
/// interfaces' own), as "PREFIX via GATEWAY dev IF" (or "PREFIX dev IF"), " table N" after
/// a table's other than main; other kinds whole, as listed.
fn kernel_routes(ns: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut single = BTreeSet::new();
    let mut other = Vec::new();
    for family in ["-4", "-6"] {
        let out = Command::new("ip")
            .args(["-n", ns, family, "-o", "route", "show", "table", "all"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.contains(&"kernel")
                || words
                    .first()
                    .is_some_and(|w| w.starts_with("fe80") || *w == "local" || *w == "multicast")
            {
                continue;
            }
            let value = |key: &str| {
                words
                    .iter()
                    .position(|w| *w == key)
                    .and_then(|i| words.get(i + 1))
            };
            match (words[0], value("via"), value("dev")) {
                ("default", via, Some(dev)) | (_, via, Some(dev))
                    if !words.contains(&"nexthop") =>
                {
                    let prefix = match words[0] {
                        "default" if family == "-6" => "::/0",
                        "default" => "0.0.0.0/0",
                        p => p,
                    };
                    let table = value("table").map_or(String::new(), |t| format!(" table {t}"));
                    single.insert(match via {
                        Some(g) => format!("{prefix} via {g} dev {dev}{table}"),
                        None => format!("{prefix} dev {dev}{table}"),
                    });
                }
                _ => other.push(line.to_string()),
            }
        }
    }
    (single, other)
}

#[test]
fn routes_as_keepalived_installs_them() {
    let mut lab = Netns::new("rvskr");
    for (dev, v4, v6) in [
        ("eth0", "192.168.200.1/24", Some("2001:db8:200::1/64")),
        ("eth1", "192.168.100.1/24", None),
    ] {
        assert!(lab.exec(&format!(
            "ip link add {dev} type veth peer name {dev}p && ip addr add {v4} dev {dev} && ip link set {dev} up && ip link set {dev}p up"
        )));
        if let Some(v6) = v6 {
            assert!(lab.exec(&format!("ip addr add {v6} dev {dev} nodad")));
        }
    }
    let path = lab.start_keepalived(CONF);
    let ns = lab.ns.clone();
    // MASTER: the VIP is on eth0 and the instance's routes go in with it.
    wait_for("keepalived MASTER", Duration::from_secs(15), || {
        let out = Command::new("ip")
            .args(["-n", &ns, "-o", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("192.168.200.16/24")
            && kernel_routes(&ns)
                .0
                .iter()
                .any(|r| r.starts_with("0.0.0.0/0"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let (keepalived, other) = kernel_routes(&ns);

    let file = path.display().to_string();
    let mut k = KeepalivedConf::parse(&file, CONF).unwrap();
    let names = ["eth0", "eth1"];
    let connected: [(IpAddr, u8, u16); 3] = [
        ("192.168.200.0".parse().unwrap(), 24, 0),
        ("192.168.100.0".parse().unwrap(), 24, 1),
        ("2001:db8:200::".parse().unwrap(), 64, 0),
    ];
    let unresolved = k.vrrp_conf.resolve_routes(
        |name| names.iter().position(|n| *n == name).map(|i| i as u16),
        |gateway| {
            connected
                .iter()
                .find(|(p, len, _)| rvs_core::engine::masked(gateway, *len) == *p)
                .map(|(_, _, port)| *port)
        },
    );
    let rvs: BTreeSet<String> =
        installed_routes(&k.vrrp_conf.static_routes, k.vrrp_conf.instances.iter())
            .iter()
            .map(|r| {
                let dev = names[usize::from(r.port)];
                let table = match r.table {
                    rvs_core::engine::MAIN_TABLE => String::new(),
                    t => format!(" table {t}"),
                };
                match r.gateway {
                    Some(g) => format!("{}/{} via {g} dev {dev}{table}", r.prefix, r.len),
                    None => format!("{}/{} dev {dev}{table}", r.prefix, r.len),
                }
            })
            .collect();
    assert_eq!(
        rvs, keepalived,
        "rvs installs (left) what keepalived installed (right); keepalived's other routes: {other:#?}"
    );
    // Every line neither installs is named: by keepalived's reading or by resolution.
    let named: Vec<String> = k
        .warnings
        .iter()
        .chain(&unresolved)
        .filter(|w| w.ends_with("not installed"))
        .cloned()
        .collect();
    for left_out in [
        "10.5.0.0/16",
        "10.6.1.0/16",
        "10.8.0.0/16",
        "10.13.0.0/16",
        "10.14.0.0/16",
        "10.15.0.0/16",
    ] {
        assert!(
            named.iter().any(|w| w.contains(left_out)),
            "{left_out} is not named: {named:#?}"
        );
    }
    assert_eq!(named.len(), 6, "{named:#?}");

    // The rules: rvs's, put in a namespace of their own as rvs puts them on its host, read
    // back as keepalived's are.
    let theirs = kernel_rules(&ns);
    let mine = Netns::new("rvskq");
    // The interfaces the rules name are the test's data ports (named alike on the host).
    assert!(mine.exec("ip link add eth0 type veth peer name eth1"));
    let devices = k.vrrp_conf.resolve_rule_devices(
        |name| names.iter().position(|n| *n == name).map(|i| i as u16),
        |_| None,
        |_| false,
    );
    assert!(devices.is_empty(), "{devices:#?}");
    let conf = &k.vrrp_conf;
    for r in conf
        .static_rules
        .iter()
        .chain(conf.instances.iter().flat_map(|i| &i.rules))
    {
        let o = Command::new("ip")
            .arg("-n")
            .arg(&mine.ns)
            .args(r.ip_args("add"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{r}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let ours = kernel_rules(&mine.ns);
    assert_eq!(ours, theirs, "rvs's rules (left), keepalived's (right)");
    // Every selector among them: the single sport keepalived 2.2.7 drops (the rule in
    // without it), the range the kernel refuses (neither installs it).
    assert_eq!(ours.len(), 14, "{ours:#?}");
    for selector in [
        "tos",
        "fwmark",
        "iif",
        "oif",
        "ipproto",
        "dport 80-90",
        "sport 1024",
    ] {
        assert!(
            ours.iter().any(|r| r.contains(selector)),
            "{selector}: {ours:#?}"
        );
    }
    assert!(!ours.iter().any(|r| r.contains("10.10.0.0")), "{ours:#?}");
    for (rule, said) in [
        ("10.5.0.0/16", "the marks of its [[fwmark]] rules alone"),
        ("10.6.0.0/16", "the marks of its [[fwmark]] rules alone"),
        ("10.7.0.0/16", "rvs binds no lookup to an output interface"),
        ("10.8.0.0/16", "invalid sport range 53"),
        (
            "10.10.0.0/16",
            "Invalid sport range 1-65535 (the kernel refuses it)",
        ),
    ] {
        assert!(
            k.warnings
                .iter()
                .any(|w| w.contains(rule) && w.contains(said)),
            "{rule}: {said}: {:#?}",
            k.warnings
        );
    }
}
