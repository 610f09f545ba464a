//! keepalived.conf's `static_routes` and `virtual_routes` read as keepalived 2.2.7 installs
//! them. Debian's keepalived runs the file's VRRP side in a namespace of its own (eth0 and
//! eth1 with addresses; the instance MASTER at once) and the kernel's main table is read
//! back; rvs's reading of the same file must install exactly the single-gateway routes
//! keepalived put there, and name with a warning every other line: the ones keepalived did
//! not install (the kernel refused them) and the ones it installed where rvs's data plane
//! has nothing alike (another table, a blackhole, several next hops). Needs root.

use rvs_control::keepalived::KeepalivedConf;
use rvs_control::vrrp::conf::installed_routes;
use rvs_testkit::netns::Netns;
use rvs_testkit::wait::wait_for;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

const KEEPALIVED: &str = "/usr/sbin/keepalived";

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
}
";

/// The kernel's routes of the main table that keepalived added (not the interfaces' own),
/// as "PREFIX via GATEWAY dev IF" (or "PREFIX dev IF"); other kinds whole, as listed.
fn kernel_routes(ns: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut single = BTreeSet::new();
    let mut other = Vec::new();
    for family in ["-4", "-6"] {
        let out = Command::new("ip")
            .args(["-n", ns, family, "-o", "route", "show", "table", "main"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.contains(&"kernel") || words.first().is_some_and(|w| w.starts_with("fe80")) {
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
                    single.insert(match via {
                        Some(g) => format!("{prefix} via {g} dev {dev}"),
                        None => format!("{prefix} dev {dev}"),
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
    assert!(
        std::path::Path::new(KEEPALIVED).exists(),
        "{KEEPALIVED} is missing (scripts/setup installs Debian's keepalived)"
    );
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
    let path = lab.dir.join("keepalived.conf");
    std::fs::write(&path, CONF).unwrap();
    let dir = lab.dir.display().to_string();
    lab.start(
        "keepalived",
        &format!(
            "{KEEPALIVED} -n -l -P -f {} -p {dir}/k.pid -r {dir}/k-vrrp.pid",
            path.display()
        ),
    );
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
                match r.gateway {
                    Some(g) => format!("{}/{} via {g} dev {dev}", r.prefix, r.len),
                    None => format!("{}/{} dev {dev}", r.prefix, r.len),
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
        "10.4.0.0/16",
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
    assert_eq!(named.len(), 7, "{named:#?}");
}
