use super::*;
use rvs_wire::vrrp::VrrpPacket;

const NO_FILES: TrackedFiles = TrackedFiles {
    defs: &[],
    values: &[],
    processes: &[],
    process_up: &[],
    bfds: &[],
    bfd_up: &|_: &str| false,
};

/// track_bfd as keepalived: weight 0 faults while the session is down (up, with
/// reverse); a positive weight counts while up, a negative one while down, reverse
/// negating it; the bfd_instance's weight is the default; a sync group's weighted
/// session is dropped from a member without sync_group_tracking_weight, a group's own
/// one reaches its members; names of no bfd_instance (or one only for the checkers)
/// are dropped with a warning.
#[test]
fn tracked_bfds_move_the_priority_or_fault_as_keepalived() {
    let k = crate::keepalived::KeepalivedConf::parse(
            "b.conf",
            "bfd_instance gw {\n neighbor_ip 10.0.0.9\n}\n\
             bfd_instance up {\n neighbor_ip 10.0.0.8\n weight 15\n}\n\
             bfd_instance rs {\n neighbor_ip 10.0.0.7\n checker\n}\n\
             vrrp_sync_group G {\n group {\n S\n }\n track_bfd {\n gw\n }\n}\n\
             vrrp_instance V {\n interface lan\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.1 }\n\
             track_bfd {\n gw\n up\n rs\n nosuch\n }\n}\n\
             vrrp_instance W {\n interface lan\n virtual_router_id 2\n priority 100\n virtual_ipaddress { 10.0.0.2 }\n\
             track_bfd {\n gw weight -30\n up weight 20 reverse\n }\n}\n\
             vrrp_instance S {\n interface lan\n virtual_router_id 3\n priority 100\n virtual_ipaddress { 10.0.0.3 }\n\
             track_bfd {\n up\n gw weight 0 reverse\n }\n}\n",
        )
        .unwrap();
    let w = k.warnings.join("\n");
    for want in [
        "track_bfd \"rs\": no bfd_instance of that name, ignored",
        "track_bfd \"nosuch\": no bfd_instance of that name, ignored",
        "vrrp_instance S: ignoring tracked bfd up with weight 15 due to SYNC group",
    ] {
        assert!(w.contains(want), "{want}\n{w}");
    }
    let conf = k.vrrp_conf;
    let prio = |i: &Instance, gw: bool, up: bool| {
        let bfd_up = move |name: &str| if name == "gw" { gw } else { up };
        let files = TrackedFiles {
            bfds: &conf.bfd_instances,
            bfd_up: &bfd_up,
            ..NO_FILES
        };
        tracked_priority(i, &conf.scripts, &[], &files, true, |_: &str| true)
    };
    let (v, w, s) = (&conf.instances[0], &conf.instances[1], &conf.instances[2]);
    assert_eq!(
        prio(v, true, true),
        (115, vec![]),
        "up's own weight 15 while up"
    );
    assert_eq!(prio(v, true, false), (100, vec![]));
    assert_eq!(prio(v, false, true).1, ["BFD gw down"]);
    assert_eq!(prio(w, true, true), (80, vec![]), "20 reversed while up");
    assert_eq!(prio(w, false, false), (70, vec![]), "-30 while down");
    // S: its weighted `up` dropped; its own gw (weight 0 reverse) kept over the group's.
    assert_eq!(prio(s, false, true), (100, vec![]));
    assert_eq!(prio(s, true, true).1, ["BFD gw up"]);
}

#[test]
fn track_files_move_the_priority_or_fault_as_keepalived() {
    let dir = rvs_testkit::proc::scratch_dir("vrrp-track-file");
    let (maint, load) = (dir.join("maint"), dir.join("load"));
    let text = format!(
        "track_file maint {{\n file {}\n weight 0\n}}\n\
             vrrp_track_file load {{\n file {}\n weight -10\n init_file 2\n}}\n\
             vrrp_instance V {{\n interface lan\n virtual_router_id 1\n priority 100\n \
             virtual_ipaddress {{ 10.0.0.1 }}\n track_file {{\n maint\n load\n nosuch\n }}\n}}\n\
             vrrp_instance W {{\n interface lan\n virtual_router_id 2\n priority 100\n \
             virtual_ipaddress {{ 10.0.0.2 }}\n track_file {{\n load weight 5 reverse\n }}\n}}\n",
        maint.display(),
        load.display()
    );
    let k = crate::keepalived::KeepalivedConf::parse("f.conf", &text).unwrap();
    assert!(k
        .warnings
        .iter()
        .any(|w| w.contains("track_file \"nosuch\": no track_file of that name")));
    let conf = k.vrrp_conf;
    let (v, w) = (&conf.instances[0], &conf.instances[1]);
    let read = |defs: &[crate::keepalived::TrackFile], init: bool| -> Vec<Option<i64>> {
        defs.iter()
            .map(|f| {
                crate::health::probe::read_track_file(&f.path, if init { f.init } else { None })
            })
            .collect()
    };
    let up = |_: &str| true;
    let prio = |i: &Instance, values: &[Option<i64>]| {
        let files = TrackedFiles {
            defs: &conf.track_files,
            values,
            processes: &[],
            process_up: &[],
            bfds: &[],
            bfd_up: &|_: &str| false,
        };
        tracked_priority(i, &conf.scripts, &[], &files, true, up)
    };
    // maint missing reads 0 (fine); load starts at its init_file value 2: 2 x -10.
    let values = read(&conf.track_files, true);
    assert_eq!(values, [Some(0), Some(2)]);
    assert_eq!(prio(v, &values), (80, vec![]));
    // The instance's own weight, reversed: 2 x -5.
    assert_eq!(prio(w, &values), (90, vec![]));
    // Weight 0: any number but 0 is a FAULT.
    std::fs::write(&maint, "1\n").unwrap();
    let values = read(&conf.track_files, false);
    assert_eq!(prio(v, &values).1, ["track file maint is 1"]);
    // Below -253 after the weight: a FAULT; above 253: 253 at most.
    std::fs::write(&load, "26").unwrap();
    std::fs::write(&maint, "0").unwrap();
    let values = read(&conf.track_files, false);
    assert_eq!(prio(v, &values).1, ["track file load is 26"]);
    std::fs::write(&load, "-0x20").unwrap();
    let values = read(&conf.track_files, false);
    assert_eq!(
        prio(v, &values),
        (254, vec![]),
        "100 + 253, kept within 254"
    );
    assert_eq!(prio(w, &values), (254, vec![]), "-32 x 5 reversed: +160");
    std::fs::write(&load, "30").unwrap();
    let values = read(&conf.track_files, false);
    assert_eq!(prio(w, &values), (1, vec![]), "30 x 5 reversed: -150");
}

/// track_process as keepalived: weight 0 is a FAULT while the process is down (up with
/// reverse); a weight moves the priority as a script's does; the instance's own weight
/// replaces the definition's.
#[test]
fn tracked_processes_move_the_priority_or_fault() {
    let k = crate::keepalived::KeepalivedConf::parse(
            "k.conf",
            "vrrp_track_process web {\n process nginx\n}\n\
             vrrp_track_process lb {\n process haproxy\n weight -20\n}\n\
             vrrp_track_process debug {\n process gdb\n weight 0 reverse\n}\n\
             vrrp_instance V {\n interface lan\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.1 }\n\
             track_process {\n web\n lb\n debug\n nosuch\n }\n}\n\
             vrrp_instance W {\n interface lan\n virtual_router_id 2\n priority 100\n virtual_ipaddress { 10.0.0.2 }\n\
             track_process {\n lb weight 30\n }\n}\n",
        )
        .unwrap();
    assert!(k.warnings.iter().any(
        |w| w.contains("track_process \"nosuch\": no vrrp_track_process of that name, ignored")
    ));
    let conf = k.vrrp_conf;
    let prio = |i: &Instance, process_up: &[bool]| {
        let files = TrackedFiles {
            defs: &[],
            values: &[],
            processes: &conf.processes,
            process_up,
            bfds: &[],
            bfd_up: &|_: &str| false,
        };
        tracked_priority(i, &conf.scripts, &[], &files, true, |_: &str| true)
    };
    let (v, w) = (&conf.instances[0], &conf.instances[1]);
    assert_eq!(prio(v, &[true, true, false]), (100, vec![]));
    assert_eq!(prio(v, &[true, false, false]), (80, vec![]));
    assert_eq!(
        prio(v, &[false, true, false]).1,
        ["process web not running"]
    );
    assert_eq!(prio(v, &[true, true, true]).1, ["process debug running"]);
    assert_eq!(prio(w, &[true, true, false]), (130, vec![]));
    assert_eq!(prio(w, &[true, false, false]), (100, vec![]));
}

#[test]
fn addresses_and_routes_track_their_interfaces_as_keepalived() {
    let conf = |extra: &str| {
        crate::keepalived::KeepalivedConf::parse(
                "k.conf",
                &format!(
                    "vrrp_instance V {{\n interface lan\n virtual_router_id 1\n priority 100\n{extra}\n virtual_ipaddress {{\n 10.0.0.1\n 10.1.0.1 dev wan\n 10.2.0.1 dev dmz no_track\n }}\n virtual_routes {{\n 10.9.0.0/16 via 10.1.0.254 dev wan\n 10.8.0.0/16 dev mgmt\n 10.7.0.0/16 dev backup no_track\n }}\n}}\n"
                ),
            )
            .unwrap()
            .vrrp_conf
    };
    let c = conf("");
    let i = &c.instances[0];
    let faults =
        |own: bool, up: &dyn Fn(&str) -> bool| tracked_priority(i, &[], &[], &NO_FILES, own, up).1;
    assert!(faults(true, &|_| true).is_empty());
    // wan (an address and a route) once, mgmt (a route); dmz and backup say no_track.
    assert_eq!(
        faults(true, &|n| !matches!(n, "wan" | "mgmt" | "dmz" | "backup")),
        [
            "interface mgmt down (its addresses or routes)",
            "interface wan down (its addresses or routes)"
        ]
    );
    assert_eq!(faults(false, &|_| true), ["interface lan down"]);
    // dont_track_primary: the own interface is not tracked; the others still are.
    let c = conf(" dont_track_primary");
    let i = &c.instances[0];
    assert!(tracked_priority(i, &[], &[], &NO_FILES, false, |_| true)
        .1
        .is_empty());
    assert_eq!(
        tracked_priority(i, &[], &[], &NO_FILES, true, |n| n != "wan").1,
        ["interface wan down (its addresses or routes)"]
    );
}

#[test]
fn tracking_weights_and_faults_as_keepalived() {
    let conf = crate::keepalived::KeepalivedConf::parse(
        "k.conf",
        r#"
vrrp_script up { script "true"
 weight 10 }
vrrp_script down { script "false"
 weight -30 }
vrrp_script must { script "true" }
vrrp_instance V {
 interface lan
 virtual_router_id 1
 priority 100
 virtual_ipaddress { 10.0.0.1 }
 track_script { up
 down
 must }
 track_interface { wan weight -20
 mgmt }
}
"#,
    )
    .unwrap()
    .vrrp_conf;
    let i = &conf.instances[0];
    let all_up = |_: &str| true;
    // Scripts fine, interfaces up: +10 only.
    assert_eq!(
        tracked_priority(
            i,
            &conf.scripts,
            &[true, true, true],
            &NO_FILES,
            true,
            all_up
        ),
        (110, vec![])
    );
    // "down" failing: -30; "wan" down: -20.
    let wan_down = |n: &str| n != "wan";
    assert_eq!(
        tracked_priority(
            i,
            &conf.scripts,
            &[true, false, true],
            &NO_FILES,
            true,
            wan_down
        ),
        (60, vec![])
    );
    // No weight: a failing script or interface is a FAULT, with its reason.
    let (_, why) = tracked_priority(
        i,
        &conf.scripts,
        &[true, true, false],
        &NO_FILES,
        true,
        |n| n != "mgmt",
    );
    assert_eq!(why, ["script must failing", "interface mgmt down"]);
    let (_, why) = tracked_priority(
        i,
        &conf.scripts,
        &[true, true, true],
        &NO_FILES,
        false,
        all_up,
    );
    assert_eq!(why, ["interface lan down"]);
    // Never below 1.
    let mut low = i.clone();
    low.priority = 5;
    assert_eq!(
        tracked_priority(
            &low,
            &conf.scripts,
            &[false, false, true],
            &NO_FILES,
            true,
            |_| false
        )
        .0,
        1
    );
}

/// An advert from the virtual router MAC (use_vmac): to the group's multicast MAC, an
/// IPv4 header as keepalived's (TOS 0xc0, TTL 255, protocol 112, a valid checksum),
/// the advert after it.
#[test]
fn an_advert_frame_from_the_virtual_router_mac() {
    let vmac = [0, 0, 0x5e, 0, 1, 30];
    let repr = VrrpRepr {
        version: 2,
        vrid: 30,
        priority: 150,
        interval_cs: 100,
        auth_pass: None,
    };
    let vip = [10u8, 130, 0, 100];
    let mut frame = [0u8; 1514];
    let n = advert_frame_v4(
        &mut frame,
        vmac,
        Ipv4Addr::new(10, 130, 0, 2),
        Ipv4Addr::new(224, 0, 0, 18),
        7,
        &repr,
        &[&vip[..]],
    );
    assert_eq!(n, 14 + 20 + 20);
    assert_eq!(&frame[..6], &[0x01, 0x00, 0x5e, 0, 0, 18]);
    assert_eq!(&frame[6..12], &vmac);
    let ip = rvs_wire::ipv4::Ipv4Packet::new_checked(&frame[14..n]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        (ip.dscp_ecn(), ip.ttl(), ip.protocol(), ip.ident()),
        (0xc0, 255, 112, 7)
    );
    assert_eq!((ip.src(), ip.dst()), ([10, 130, 0, 2], [224, 0, 0, 18]));
    let advert = VrrpPacket::new_checked(ip.payload(), 4).unwrap();
    assert_eq!((advert.vrid(), advert.priority()), (30, 150));
}

#[test]
fn gratuitous_arp_is_keepalived_s() {
    let f = gratuitous_arp([2, 0, 0, 0, 0, 9], Ipv4Addr::new(10, 2, 1, 5));
    let a = rvs_wire::ArpPacket::new_checked(&f[14..]).unwrap();
    assert_eq!(a.op(), rvs_wire::arp::OP_REQUEST);
    assert_eq!(a.sender_ip(), [10, 2, 1, 5]);
    assert_eq!(a.target_ip(), [10, 2, 1, 5]);
    assert_eq!(a.sender_mac(), [2, 0, 0, 0, 0, 9]);
    assert_eq!(&f[..6], &[0xff; 6]);
    assert_eq!(f.len(), 60);
}

/// Two ports: lan (port 0) and wan (port 1, twin wan-host).
fn lan_and_wan() -> [Link; 2] {
    [
        link([2, 0, 0, 0, 0, 1]),
        Link {
            name: "wan".into(),
            twin: "wan-host".into(),
            port: 1,
            ..link([2, 0, 0, 0, 0, 2])
        },
    ]
}

fn link(mac: [u8; 6]) -> Link {
    Link {
        name: "lan".into(),
        port: 0,
        twin: "lan-host".into(),
        mac,
        addr: None,
        router: false,
    }
}

/// garp_lower_prio_*: the instance's, else global_defs' vrrp_garp_lower_prio_*, else
/// vrrp_garp_master_* (keepalived's defaults: 5 now and 5 after 5 s); 0 sends none.
#[test]
fn lower_priority_answers_as_keepalived() {
    let conf = |globals: &str, own: &str| {
        let text = format!(
                "global_defs {{\n{globals}}}\nvrrp_instance V {{\n interface lan\n virtual_router_id 1\n virtual_ipaddress {{ 10.0.0.1 }}\n{own}}}\n"
            );
        crate::keepalived::KeepalivedConf::parse("k.conf", &text)
            .unwrap()
            .vrrp_conf
            .instances
            .remove(0)
    };
    let t0 = Instant::now();
    let s = Duration::from_secs;
    assert_eq!(
        lower_prio_bursts(&conf("", ""), t0),
        [(t0, 5), (t0 + s(5), 5)]
    );
    let masters = " vrrp_garp_master_repeat 2\n vrrp_garp_master_delay 7\n";
    assert_eq!(
        lower_prio_bursts(&conf(masters, ""), t0),
        [(t0, 2), (t0 + s(7), 2)]
    );
    let lowers = " vrrp_garp_lower_prio_repeat 3\n vrrp_garp_lower_prio_delay 0\n";
    assert_eq!(
        lower_prio_bursts(&conf(&format!("{masters}{lowers}"), ""), t0),
        [(t0, 3)]
    );
    let own = " garp_lower_prio_repeat 1\n garp_lower_prio_delay 2\n";
    assert_eq!(
        lower_prio_bursts(&conf(lowers, own), t0),
        [(t0, 1), (t0 + s(2), 1)]
    );
    assert!(lower_prio_bursts(&conf("", " garp_lower_prio_repeat 0\n"), t0).is_empty());
}

/// interface_up_down_delays as keepalived's update_interface_flags applies them: a
/// change counts once it has lasted its delay, a return before that cancels it, the
/// first up counts at once, a zero delay at once; delays of at least
/// (down_timer_adverts - 1) advert intervals are cut below that.
#[test]
fn link_changes_wait_their_delays_as_keepalived() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let delays = (Duration::from_millis(1500), Duration::from_millis(700));
    let mut d = Debounce::default();
    assert!(
        d.step(false, true, delays, ms(0)),
        "the first up counts at once"
    );
    assert!(d.step(true, false, delays, ms(100)), "down waits 1.5 s");
    assert!(d.step(true, false, delays, ms(1500)));
    assert!(d.step(true, true, delays, ms(1550)), "back up: cancelled");
    assert!(d.step(true, false, delays, ms(2000)));
    assert!(!d.step(true, false, delays, ms(3500)), "down after 1.5 s");
    assert!(!d.step(false, true, delays, ms(3600)), "up waits 0.7 s");
    assert!(d.step(false, true, delays, ms(4300)));
    let mut none = Debounce::default();
    assert!(!none.step(true, false, (Duration::ZERO, Duration::ZERO), ms(0)));
    let text = "interface_up_down_delays {\n lan 5 1.5\n wan 0.25\n}\n\
                    vrrp_instance V {\n interface lan\n virtual_router_id 1\n advert_int 1\n virtual_ipaddress { 10.0.0.1 }\n}\n";
    let k = crate::keepalived::KeepalivedConf::parse("d.conf", text).unwrap();
    let v = &k.vrrp_conf;
    assert_eq!(
        (
            v.link_delays[1].interface.as_str(),
            v.link_delays[1].down,
            v.link_delays[1].up
        ),
        ("wan", Duration::from_millis(250), Duration::ZERO),
        "up 0 when not given, as keepalived 2.2.7's parser"
    );
    let links = lan_and_wan();
    // lan's 5 s is cut below 2 advert intervals (2 s - 1/256 s); wan has no instance.
    assert_eq!(
        link_delays(v, &links),
        [
            (
                Duration::from_nanos(1_996_093_750),
                Duration::from_millis(1500)
            ),
            (Duration::from_millis(250), Duration::ZERO)
        ]
    );
}

/// garp_extra_if as keepalived applies it: the instance's, else global_defs'
/// vrrp_garp_extra_if; only with `all` and an address on another link; one GARP per
/// other link (the first address there), the own link too with use_vmac and
/// vmac_xmit_base; the deprecated names warned, bad values ignored with a warning.
#[test]
fn garp_extra_if_as_keepalived_applies_it() {
    let links = lan_and_wan();
    let parse = |globals: &str, own: &str| {
        let text = format!(
                "global_defs {{\n{globals}}}\nvrrp_instance V {{\n interface lan\n virtual_router_id 1\n virtual_ipaddress {{\n 10.0.0.1\n 10.1.0.1 dev wan\n 10.1.0.2 dev wan-host\n 10.0.0.2\n }}\n{own}}}\n"
            );
        let mut k = crate::keepalived::KeepalivedConf::parse("k.conf", &text).unwrap();
        (k.vrrp_conf.instances.remove(0), k.warnings)
    };
    let every = |globals: &str, own: &str| extra_garp_interval(&parse(globals, own).0, &links, 0);
    let secs = |n| Some(Duration::from_secs(n));
    assert_eq!(every(" vrrp_garp_extra_if 100 all\n", ""), secs(100));
    assert_eq!(
        every(" vrrp_garp_extra_if all 100\n", " garp_extra_if 30 all\n"),
        secs(30)
    );
    assert_eq!(
        every(" vrrp_garp_extra_if 100\n", ""),
        None,
        "VMAC interfaces only"
    );
    assert_eq!(
        every(" vrrp_garp_extra_if 100 all\n", " garp_extra_if 0\n"),
        None
    );
    assert_eq!(every("", ""), None);
    let (only_own, _) = parse("", "");
    let mut only_own = only_own;
    only_own.addresses.retain(|a| a.dev.is_none());
    only_own.garp_extra_if = Some((Duration::from_secs(9), true));
    assert_eq!(
        extra_garp_interval(&only_own, &links, 0),
        None,
        "no other link"
    );
    let addrs = |i: &Instance| -> Vec<String> {
        extra_garp_addresses(i, &links, 0)
            .iter()
            .map(|a| a.addr.to_string())
            .collect()
    };
    assert_eq!(addrs(&parse("", " garp_extra_if 5 all\n").0), ["10.1.0.1"]);
    let vmac = parse("", " garp_extra_if 5 all\n use_vmac\n vmac_xmit_base\n").0;
    assert_eq!(addrs(&vmac), ["10.0.0.1", "10.1.0.1"]);
    let (old, warnings) = parse(" vrrp_vmac_garp_intvl 20 all\n", "");
    assert_eq!(old.garp_extra_if, Some((Duration::from_secs(20), true)));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("vrrp_vmac_garp_intvl is deprecated, use vrrp_garp_extra_if")),
        "{warnings:?}"
    );
    let (bad, warnings) = parse(" vrrp_garp_extra_if 100 all\n", " garp_extra_if soon\n");
    assert_eq!(bad.garp_extra_if, Some((Duration::from_secs(100), true)));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("garp_extra_if \"soon\" invalid; ignored")),
        "{warnings:?}"
    );
}

/// A static address goes on its dev's twin, else the first port with one; without
/// such a port the file is refused, naming the entry's file and line.
#[test]
fn a_static_address_needs_a_port_with_a_twin() {
    let conf = |text: &str| {
        crate::keepalived::KeepalivedConf::parse("k.conf", text)
            .unwrap()
            .vrrp_conf
    };
    let named = conf("static_ipaddress {\n 10.0.0.9/24 dev wan\n}\n");
    let lan = [link([2, 0, 0, 0, 0, 1])];
    assert_eq!(
        VrrpRuntime::check(&named, &lan).unwrap_err(),
        "k.conf:2: static_ipaddress 10.0.0.9: dev wan: no data port with a host twin of that name"
    );
    assert!(VrrpRuntime::check(
        &conf("static_ipaddress {\n 10.0.0.9/24 dev lan-host\n}\n"),
        &lan
    )
    .is_ok());
    let first = conf("static_ipaddress {\n 10.0.0.10/24\n}\n");
    assert_eq!(
        VrrpRuntime::check(&first, &[]).unwrap_err(),
        "k.conf:2: static_ipaddress 10.0.0.10: no data port with a host twin (host_tap) to hold it"
    );
    assert_eq!(
        static_twin(&lan, &first.static_addresses[0]).map(|l| &l.twin[..]),
        Some("lan-host")
    );
    assert_eq!(
        all_standby(&first),
        [Floating::held("10.0.0.10".parse().unwrap())]
    );
}

#[test]
fn the_link_local_source_is_the_kernel_s_eui64() {
    let l = link([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(
        l.link_local(),
        "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
    );
    let l = link([2, 0, 0, 0, 0, 9]);
    assert_eq!(
        l.link_local(),
        "fe80::ff:fe00:9".parse::<Ipv6Addr>().unwrap()
    );
}

/// RFC 5798 over IPv6 as keepalived sends it, read back by etherparse: to ff02::12 and
/// 33:33:00:00:00:12, hop limit 255, next header 112, the pseudo-header checksum.
#[test]
fn ipv6_adverts_are_rfc_5798_frames() {
    let mac = [2, 0, 0, 0, 0, 9];
    let src: Ipv6Addr = "fe80::ff:fe00:9".parse().unwrap();
    let vips: [Ipv6Addr; 2] = [
        "2001:db8::100".parse().unwrap(),
        "2001:db8::101".parse().unwrap(),
    ];
    let octets: Vec<[u8; 16]> = vips.iter().map(|v| v.octets()).collect();
    let refs: Vec<&[u8]> = octets.iter().map(|o| &o[..]).collect();
    let repr = VrrpRepr {
        version: 3,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        auth_pass: None,
    };
    let mut buf = [0u8; 1514];
    let group = Ipv6Addr::from(vrrp::GROUP_V6);
    let n = advert_frame_v6(&mut buf, mac, src, group, &repr, &refs);
    assert_eq!(n, 14 + 40 + 8 + 32);
    let frame = &buf[..n];
    let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no Ethernet header")
    };
    assert_eq!(eth.destination(), [0x33, 0x33, 0, 0, 0, 0x12]);
    assert_eq!(eth.source(), mac);
    let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
        panic!("not IPv6")
    };
    let h = ip.header();
    assert_eq!(h.hop_limit(), 255);
    assert_eq!(h.next_header(), etherparse::IpNumber(112));
    assert_eq!(h.source_addr(), src);
    assert_eq!(
        h.destination_addr(),
        "ff02::12".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(usize::from(h.payload_length()), 40);
    // What the receiving side reads, as a peer's advert would come in.
    let a = ipv6_vrrp(frame).unwrap();
    let (s, d) = (a.src, a.dst);
    assert_eq!((a.hop_limit, s, d), (255, src.octets(), vrrp::GROUP_V6));
    let v = VrrpPacket::new_checked(a.body, 16).unwrap();
    assert!(v.checksum_ok(&s, &d));
    assert_eq!(
        (v.version(), v.vrid(), v.priority(), v.interval_cs()),
        (3, 51, 150, 100)
    );
    assert_eq!((v.addr(0), v.addr(1)), (&octets[0][..], &octets[1][..]));
    // The checksum covers the pseudo-header: another source fails it.
    assert!(!v.checksum_ok(&Ipv6Addr::LOCALHOST.octets(), &d));
    let mut other = buf;
    other[30] ^= 1;
    assert!(
        ipv6_vrrp(&other[..n]).is_some_and(|a| !VrrpPacket::new_checked(a.body, 16)
            .unwrap()
            .checksum_ok(&a.src, &a.dst))
    );
    // Not VRRP, not IPv6, cut short: not an advert.
    let mut icmp = buf;
    icmp[20] = 58;
    assert!(ipv6_vrrp(&icmp[..n]).is_none());
    assert!(ipv6_vrrp(&gratuitous_arp(mac, Ipv4Addr::new(10, 0, 0, 1))).is_none());
    assert!(ipv6_vrrp(&frame[..n - 1]).is_none());
}

/// keepalived's unsolicited NA, read back by etherparse: from the VIP to all nodes,
/// Override (and Router when forwarding), the port's MAC as target link-layer address.
#[test]
fn unsolicited_neighbour_advertisements_are_keepalived_s() {
    let mac = [2, 0, 0, 0, 0, 9];
    let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
    for router in [false, true] {
        let mut f = [0u8; icmpv6::ND_FRAME_LEN];
        unsolicited_na(&mut f, mac, vip, router);
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
            panic!("not IPv6")
        };
        let h = ip.header();
        assert_eq!((h.hop_limit(), h.source_addr()), (255, vip));
        assert_eq!(h.destination_addr(), "ff02::1".parse::<Ipv6Addr>().unwrap());
        let Some(etherparse::TransportSlice::Icmpv6(m)) = &p.transport else {
            panic!("not ICMPv6")
        };
        let want = m
            .icmp_type()
            .calc_checksum(vip.octets(), h.destination_addr().octets(), m.payload())
            .unwrap();
        assert_eq!(m.checksum(), want);
        let na = rvs_wire::Icmpv6Packet::new_checked(m.slice()).unwrap();
        assert_eq!(na.msg_type(), icmpv6::NEIGHBOR_ADVERT);
        assert_eq!(na.nd_target(), vip.octets());
        assert_eq!(na.nd_lladdr(icmpv6::OPT_TARGET_LL), Some(mac));
        let flags = icmpv6::NA_OVERRIDE | if router { icmpv6::NA_ROUTER } else { 0 };
        assert_eq!(na.na_flags(), flags);
    }
}

#[test]
fn scripts_run_as_their_user_with_keepalived_s_arguments() {
    let dir = std::env::temp_dir().join(format!("rvs-vrrp-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    let script = dir.join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" > {}\n", out.display()),
    )
    .unwrap();
    let s = Script {
        command: format!("/bin/sh {}", script.display()),
        user: Some("root".into()),
    };
    let mut c = spawn(&s, &["INSTANCE", "VI_1", "MASTER", "100"]).unwrap();
    assert!(c.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "INSTANCE VI_1 MASTER 100\n"
    );
    let nobody = Script {
        command: "true".into(),
        user: Some("no-such-user-rvs".into()),
    };
    assert!(spawn(&nobody, &[]).is_none());
    assert!(run_tracked(
        &Script {
            command: "exit 0".into(),
            user: None
        },
        Duration::from_secs(5),
        &AtomicBool::new(false)
    ));
    assert!(!run_tracked(
        &Script {
            command: "sleep 5".into(),
            user: None
        },
        Duration::from_millis(100),
        &AtomicBool::new(false)
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
