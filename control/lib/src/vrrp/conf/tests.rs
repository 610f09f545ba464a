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
        c.warnings
            .iter()
            .any(|w| w
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
        Some("k.conf:2: vrrp_instance V: unicast peers are not supported in strict mode".into())
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
        let said = format!("({me}) VRRP instance {other} is already using {name} - ignoring name");
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
    let text = "static_ipaddress {\n 10.9.0.1/24 dev lan track_group G\n 10.9.0.2 use_vmac\n}\n\
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
    let installed =
        |masters: Vec<&Instance>| installed_rules(&conf.static_rules, masters.into_iter()).len();
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
