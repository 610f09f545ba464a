//! Strict mode and accept mode read as keepalived 2.2.7 reads them. Debian's keepalived runs
//! a battery of VRRP instances in a namespace of its own (eth0 up with an address); its own
//! dump of what it runs (SIGUSR1: keepalived.data in $TMPDIR) gives, per instance, the
//! state it starts in, accept mode, strict mode, authentication, preempt_delay,
//! down_timer_adverts and the lower/higher-priority settings strict mode resets, and the
//! addresses it keeps of each address line. rvs's reading of the same file must give each
//! the same. Needs root.

use rvs_control::keepalived::KeepalivedConf;
use rvs_control::vrrp::conf::OldChecksum;
use rvs_testkit::netns::Netns;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const CONF: &str = "global_defs {
    vrrp_strict
    vrrp_garp_lower_prio_repeat 3
    vrrp_higher_prio_send_advert
    vrrp_down_timer_adverts 4
}
vrrp_instance DEFAULT_SHAPE {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        192.168.200.16
    }
}
vrrp_instance OWNER {
    interface eth0
    virtual_router_id 52
    priority 255
    no_accept
    virtual_ipaddress {
        192.168.200.17
    }
}
vrrp_instance RESETS {
    interface eth0
    virtual_router_id 53
    priority 90
    preempt_delay 10
    accept
    lower_prio_no_advert false
    higher_prio_send_advert true
    garp_lower_prio_delay 5
    garp_lower_prio_repeat 2
    down_timer_adverts 5
    virtual_ipaddress {
        192.168.200.18
    }
}
vrrp_instance V3_ACCEPT {
    interface eth0
    virtual_router_id 54
    version 3
    accept
    virtual_ipaddress {
        192.168.200.19
    }
}
vrrp_instance NOT_STRICT {
    strict_mode off
    state MASTER
    interface eth0
    virtual_router_id 55
    priority 100
    down_timer_adverts 2
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        192.168.200.20
    }
}
vrrp_instance NOT_STRICT_NO_ACCEPT {
    strict_mode false
    interface eth0
    virtual_router_id 56
    no_accept
    garp_lower_prio_delay 7
    virtual_ipaddress {
        192.168.200.21
    }
}
";

/// Per instance: the settings compared, as "key=value" lines.
type Settings = BTreeMap<String, Vec<String>>;

/// keepalived's dump, read into the compared settings. Accept is the effective one: the
/// address owner takes its traffic whatever `accept` says (no firewall rule for it).
fn keepalived_settings(dump: &str) -> Settings {
    let mut out = Settings::new();
    let mut blocks = dump.split("\n VRRP Instance = ").skip(1);
    for block in blocks.by_ref() {
        let name = block.lines().next().unwrap_or("").trim().to_string();
        let value = |key: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(key).map(str::trim))
                .unwrap_or("")
                .to_string()
        };
        let owner = value("Priority =") == "255";
        out.insert(
            name,
            vec![
                format!("wantstate={}", value("Wantstate =")),
                format!(
                    "strict={}",
                    block.contains("Enforcing strict VRRP compliance")
                ),
                format!("accept={}", owner || value("Accept =") == "enabled"),
                // Not said for version 3 (which has none).
                format!(
                    "auth={}",
                    !matches!(value("Authentication type =").as_str(), "none" | "")
                ),
                format!(
                    "preempt_delay={}",
                    value("Preempt delay =")
                        .trim_end_matches(" secs")
                        .parse::<f64>()
                        .unwrap_or(0.0)
                ),
                format!("down_timer_adverts={}", value("Down timer adverts =")),
                format!(
                    "garp_lower_prio={}/{}",
                    value("Gratuitous ARP lower priority repeat ="),
                    value("Gratuitous ARP lower priority delay =")
                ),
                format!(
                    "advert_on_lower={}",
                    value("Send advert after receive lower priority advert =")
                ),
                format!(
                    "advert_on_higher={}",
                    value("Send advert after receive higher priority advert =")
                ),
            ],
        );
    }
    out
}

fn rvs_settings(k: &KeepalivedConf) -> Settings {
    k.vrrp_conf
        .instances
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                vec![
                    format!(
                        "wantstate={}",
                        if i.initial_master { "MASTER" } else { "BACKUP" }
                    ),
                    format!("strict={}", i.strict),
                    format!("accept={}", i.accept),
                    format!("auth={}", i.auth_pass.is_some()),
                    format!("preempt_delay={}", i.preempt_delay.as_secs_f64()),
                    format!("down_timer_adverts={}", i.down_timer_adverts),
                    format!(
                        "garp_lower_prio={}/{}",
                        i.garp_lower_prio_repeat,
                        i.garp_lower_prio_delay.as_secs()
                    ),
                    format!("advert_on_lower={}", !i.lower_prio_no_advert),
                    format!("advert_on_higher={}", i.higher_prio_send_advert),
                ],
            )
        })
        .collect()
}

/// Runs Debian's keepalived (VRRP only) on `conf` in a namespace with eth0 and eth1 up
/// and gives its dump (SIGUSR1) once it lists `instances` instances, with the file's path.
fn keepalived_dump(ns: &str, conf: &str, instances: usize) -> (String, String, Netns) {
    let mut lab = Netns::new(ns);
    for (dev, addr) in [("eth0", "192.168.200.1/24"), ("eth1", "192.168.100.1/24")] {
        assert!(lab.exec(&format!(
            "ip link add {dev} type veth peer name {dev}p && ip addr add {addr} dev {dev} && ip link set {dev} up && ip link set {dev}p up"
        )));
    }
    let path = lab.start_keepalived(conf);
    let dump = lab.dir.join("keepalived.data");
    let pid = lab.dir.join("k.pid");
    // The VRRP child is up once its pid file is; the parent passes SIGUSR1 on.
    let dumped = || {
        let Ok(pid) = std::fs::read_to_string(&pid) else {
            return false;
        };
        if !lab.dir.join("k-vrrp.pid").exists() {
            return false;
        }
        let _ = Command::new("kill").args(["-USR1", pid.trim()]).status();
        std::thread::sleep(Duration::from_millis(200));
        std::fs::read_to_string(&dump)
            .is_ok_and(|d| d.matches(" VRRP Instance = ").count() == instances)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !dumped() {
        assert!(
            Instant::now() < deadline,
            "timed out after 15 s waiting for keepalived's dump; keepalived said:\n{}",
            lab.log("keepalived")
        );
    }
    let text = std::fs::read_to_string(&dump).unwrap();
    (text, path.display().to_string(), lab)
}

#[test]
fn strict_and_accept_mode_as_keepalived_reads_them() {
    let (dump, path, _lab) = keepalived_dump("rvsks", CONF, 6);
    let keepalived = keepalived_settings(&dump);
    let k = KeepalivedConf::parse(&path, CONF).unwrap();
    let rvs = rvs_settings(&k);
    assert_eq!(keepalived.len(), 6, "{keepalived:#?}");
    for (name, theirs) in &keepalived {
        assert_eq!(
            rvs.get(name),
            Some(theirs),
            "instance {name}: rvs (left), keepalived (right)"
        );
    }
    // Each reset is said, as keepalived says it.
    for said in [
        "DEFAULT_SHAPE: strict mode: state MASTER needs",
        "DEFAULT_SHAPE: strict mode has no authentication",
        "RESETS: preempt_delay is incompatible with strict mode",
        "RESETS: accept (VRRP version 2",
        "RESETS: lower_prio_no_advert false is incompatible",
        "RESETS: higher_prio_send_advert is incompatible",
        "RESETS: garp_lower_prio_delay is incompatible",
        "RESETS: garp_lower_prio_repeat is incompatible",
        "RESETS: down_timer_adverts (other than 3) is incompatible",
        "NOT_STRICT_NO_ACCEPT: no accept mode",
    ] {
        assert!(
            k.warnings.iter().any(|w| w.contains(said)),
            "{said:?} not in {:#?}",
            k.warnings
        );
    }
}

const SYNC: &str = "bfd_instance bfd_w {
    neighbor_ip 192.168.200.2
    weight -15
}
bfd_instance bfd_0 {
    neighbor_ip 192.168.200.3
}
bfd_instance bfd_r {
    neighbor_ip 192.168.200.4
    weight 6 reverse
}
vrrp_script chk_w {
    script /bin/true
    weight -20
}
vrrp_script chk_0 {
    script /bin/true
}
vrrp_sync_group G {
    group {
        VI_A
    }
}
vrrp_sync_group GW {
    group {
        VI_B
    }
    sync_group_tracking_weight
}
vrrp_instance VI_A {
    interface eth0
    virtual_router_id 61
    priority 100
    track_interface {
        eth1 weight -10
    }
    track_script {
        chk_w
        chk_0
    }
    track_bfd {
        bfd_w
        bfd_0 weight 4
        bfd_r
    }
    virtual_ipaddress {
        192.168.200.61
    }
}
vrrp_instance VI_B {
    interface eth0
    virtual_router_id 62
    priority 100
    track_interface {
        eth1 weight -10
    }
    track_script {
        chk_w
        chk_0
    }
    track_bfd {
        bfd_w
        bfd_0 weight 4
        bfd_r weight 0
    }
    virtual_ipaddress {
        192.168.200.62
    }
}
vrrp_instance VI_O {
    interface eth0
    virtual_router_id 63
    priority 255
    track_interface {
        eth1 weight -5
    }
    track_script {
        chk_w
        chk_0 weight 3
    }
    track_bfd {
        bfd_w weight 3 reverse
        bfd_0
    }
    virtual_ipaddress {
        192.168.200.63
    }
}
";

/// One dump section's entries ("   Tracked scripts :" then "     NAME weight W" lines).
fn tracked(block: &str, header: &str) -> Vec<String> {
    let mut lines = block.lines().skip_while(|l| l.trim() != header.trim());
    lines.next();
    lines
        .take_while(|l| l.starts_with("     "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Weights in sync groups and for the address owner as keepalived applies them: a member
/// of a group without sync_group_tracking_weight tracks its interfaces unweighted and drops
/// its weighted scripts and BFD sessions; one with it keeps them; the owner drops weighted
/// interfaces, scripts and BFD sessions. keepalived's dump of each instance's tracking
/// against rvs's reading.
#[test]
fn sync_group_and_owner_weights_as_keepalived_applies_them() {
    let (dump, path, _lab) = keepalived_dump("rvskw", SYNC, 3);
    let k = KeepalivedConf::parse(&path, SYNC).unwrap();
    let script_weight = |name: &str| {
        k.vrrp_conf
            .scripts
            .iter()
            .find(|s| s.name == name)
            .map_or(0, |s| s.weight)
    };
    for block in dump.split("\n VRRP Instance = ").skip(1) {
        let name = block.lines().next().unwrap_or("").trim();
        let i = k
            .vrrp_conf
            .instances
            .iter()
            .find(|i| i.name == name)
            .unwrap();
        let interfaces: Vec<String> = i
            .track_interfaces
            .iter()
            .map(|t| format!("{} weight {}", t.name, t.weight.unwrap_or(0)))
            .collect();
        let scripts: Vec<String> = i
            .track_scripts
            .iter()
            .map(|t| {
                format!(
                    "{} weight {}",
                    t.name,
                    t.weight.unwrap_or_else(|| script_weight(&t.name))
                )
            })
            .collect();
        assert_eq!(
            interfaces,
            tracked(block, "Tracked interfaces :"),
            "{name}'s interfaces: rvs (left), keepalived (right)"
        );
        assert_eq!(
            scripts,
            tracked(block, "Tracked scripts :"),
            "{name}'s scripts: rvs (left), keepalived (right)"
        );
        let bfds: Vec<String> = i
            .track_bfds
            .iter()
            .map(|t| {
                let def = k.vrrp_conf.vrrp_bfd(&t.name).unwrap();
                let (w, r) = match t.weight {
                    Some(w) => (w, t.reverse),
                    None => (def.weight, def.reverse),
                };
                format!("{}: weight {w}{}", t.name, if r { " reverse" } else { "" })
            })
            .collect();
        assert_eq!(
            bfds,
            tracked(block, "Tracked BFDs :"),
            "{name}'s BFDs: rvs (left), keepalived (right)"
        );
    }
    assert!(
        k.warnings
            .iter()
            .any(|w| w
                .contains("VI_A: ignoring tracked script chk_w with weight -20 due to SYNC group")),
        "{:#?}",
        k.warnings
    );
}

const SOURCES: &str = "vrrp_instance MCAST_SRC {
    interface eth0
    virtual_router_id 71
    mcast_src_ip 192.168.200.1
    track_src_ip
    virtual_ipaddress {
        192.168.200.71
    }
}
vrrp_instance UNICAST_NO_PEER {
    interface eth0
    virtual_router_id 72
    unicast_src_ip 192.168.200.1
    virtual_ipaddress {
        192.168.200.72
    }
}
vrrp_instance FAULT_NO_PEER {
    interface eth0
    virtual_router_id 73
    unicast_fault_no_peer
    virtual_ipaddress {
        192.168.200.73
    }
}
vrrp_instance VMAC_UNICAST {
    interface eth0
    virtual_router_id 74
    use_vmac
    promote_secondaries
    unicast_peer {
        192.168.200.2
    }
    virtual_ipaddress {
        192.168.200.74
    }
}
vrrp_instance PORT_SRC {
    interface eth0
    virtual_router_id 75
    track_src_ip
    virtual_ipaddress {
        192.168.200.75
    }
}
vrrp_instance OLD_SUM {
    interface eth0
    virtual_router_id 76
    version 3
    old_unicast_checksum
    promote_secondaries
    unicast_peer {
        192.168.200.2
    }
    virtual_ipaddress {
        192.168.200.76
    }
}
vrrp_instance NEVER_OLD_SUM {
    interface eth0
    virtual_router_id 77
    version 3
    old_unicast_checksum never
    unicast_peer {
        192.168.200.2
    }
    virtual_ipaddress {
        192.168.200.77
    }
}
vrrp_instance NEW_SUM {
    interface eth0
    virtual_router_id 78
    version 3
    unicast_peer {
        192.168.200.2
    }
    virtual_ipaddress {
        192.168.200.78
    }
}
";

/// The advert source and the unicast keywords as keepalived reads them: `mcast_src_ip`
/// is `unicast_src_ip`'s equal ("Using src_ip = ... (from configuration)"); a unicast
/// keyword without peers means multicast, or a config fault with `unicast_fault_no_peer`;
/// unicast with use_vmac sets xmit_base; old_unicast_checksum's modes; promote_secondaries
/// (cleared for a VMAC). keepalived's dump against rvs's reading.
#[test]
fn advert_sources_and_unicast_keywords_as_keepalived_reads_them() {
    let (dump, path, _lab) = keepalived_dump("rvskc", SOURCES, 8);
    let k = KeepalivedConf::parse(&path, SOURCES).unwrap();
    for block in dump.split("\n VRRP Instance = ").skip(1) {
        let name = block.lines().next().unwrap_or("").trim();
        let value = |key: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(key).map(str::trim))
                .unwrap_or("")
                .to_string()
        };
        let i = k
            .vrrp_conf
            .instances
            .iter()
            .find(|i| i.name == name)
            .unwrap();
        let theirs = (
            value("Using src_ip =")
                .strip_suffix(" (from configuration)")
                .map(str::to_string),
            value("Number of config faults ="),
            value("Use VMAC,")
                .split("xmit_base = ")
                .nth(1)
                .map(str::to_string),
            block.contains("Unicast config option specified but using multicast"),
            value("Unicast checksum compatibility ="),
            value("Promote_secondaries ="),
        );
        let ours = (
            i.unicast_src.map(|a| a.to_string()),
            u8::from(i.config_fault.is_some()).to_string(),
            i.vmac.map(|_| i.vmac_xmit_base.to_string()),
            // Said as multicast with a warning, or the config fault.
            i.unicast_peers.is_empty()
                && (i.config_fault.is_some()
                    || k.warnings.iter().any(|w| {
                        w.contains(&format!(
                            "{name}: a unicast keyword without any unicast peers"
                        ))
                    })),
            if i.unicast_peers.is_empty() {
                ""
            } else {
                match i.old_checksum {
                    OldChecksum::Auto => "no",
                    OldChecksum::Never => "never",
                    OldChecksum::Always => "config",
                }
            }
            .to_string(),
            if i.promote_secondaries {
                "enabled"
            } else {
                "disabled"
            }
            .to_string(),
        );
        assert_eq!(ours, theirs, "{name}: rvs (left), keepalived (right)");
    }
    let track = |name: &str| {
        k.vrrp_conf
            .instances
            .iter()
            .find(|i| i.name == name)
            .is_some_and(|i| i.track_src)
    };
    // track_src_ip needs a configured source (keepalived clears it otherwise).
    assert!(track("MCAST_SRC") && !track("PORT_SRC"));
}

const ADDRESSES: &str = "static_ipaddress {
    10.9.0.1/24 dev eth0
    10.9.0.2 use_vmac
}
vrrp_instance ADDRESSES {
    interface eth0
    virtual_router_id 61
    virtual_ipaddress {
        10.0.0.1/24 dev eth0 label eth0:1 brd + scope global
        10.0.0.2 preferred_lft forever mngtmpaddr -nodad no_track
        10.0.0.3 frobnicate
        10.0.0.4 dev eth0 dev eth0
        10.0.0.5 label
        10.0.0.300
        10.0.0.6 use_vmac
    }
    virtual_ipaddress_excluded {
        10.1.0.1 bogus
        10.1.0.2 scope
        2001:db8::7/64 dev eth1
    }
}
";

/// The addresses under a header of keepalived's dump (`Virtual IP (N):`...): the
/// address and its prefix length when it is not the whole address.
fn dumped_addresses(block: &str, header: &str) -> Vec<String> {
    block
        .split(header)
        .nth(1)
        .map(|rest| {
            rest.lines()
                .skip(1)
                .take_while(|l| l.starts_with("     "))
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Address lines as keepalived reads them (vrrp_ipaddress.c): its dump lists exactly the
/// addresses rvs keeps, virtual, excluded and static; the ones it skips rvs skips.
#[test]
fn address_lines_as_keepalived_reads_them() {
    let (dump, path, _lab) = keepalived_dump("rvska", ADDRESSES, 1);
    let k = KeepalivedConf::parse(&path, ADDRESSES).unwrap();
    let shown = |v: &[rvs_control::vrrp::conf::VirtualAddress]| -> Vec<String> {
        v.iter()
            .map(|a| {
                let full = if a.addr.is_ipv4() { 32 } else { 128 };
                if a.len == full {
                    a.addr.to_string()
                } else {
                    format!("{}/{}", a.addr, a.len)
                }
            })
            .collect()
    };
    let i = &k.vrrp_conf.instances[0];
    assert_eq!(
        shown(&i.addresses),
        dumped_addresses(&dump, "   Virtual IP ("),
        "{dump}"
    );
    assert_eq!(
        shown(&i.excluded),
        dumped_addresses(&dump, "   Virtual IP Excluded"),
        "{dump}"
    );
    assert_eq!(
        shown(&k.vrrp_conf.static_addresses),
        dumped_addresses(&dump, "------< Static Addresses >------"),
        "{dump}"
    );
    assert_eq!(i.addresses.len(), 4);
}
