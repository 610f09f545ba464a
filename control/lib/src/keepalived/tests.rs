use super::*;

/// log_all_failures: the checker's own or global_defs' checker_log_all_failures (either
/// says so, as keepalived tests them).
#[test]
fn log_all_failures_as_keepalived_reads_it() {
    let flags = |globals: &str, checks: &str| -> Vec<bool> {
        let text = format!(
                "global_defs {{\n{globals}\n}}\nvirtual_server 10.0.0.1 80 {{\n protocol TCP\n{checks}\n}}\n"
            );
        let k = KeepalivedConf::parse("l.conf", &text).unwrap();
        assert!(k.warnings.is_empty(), "{:?}", k.warnings);
        k.virtual_servers[0]
            .real_servers
            .iter()
            .map(|r| r.checkers[0].log_all_failures)
            .collect()
    };
    let checks = " real_server 10.0.0.2 80 { TCP_CHECK { } }\n real_server 10.0.0.3 80 { TCP_CHECK { log_all_failures false } }\n real_server 10.0.0.4 80 { TCP_CHECK { log_all_failures } }";
    assert_eq!(flags("", checks), [false, false, true]);
    assert_eq!(
        flags(" checker_log_all_failures", checks),
        [true, true, true]
    );
    assert_eq!(
        flags(" checker_log_all_failures false", checks),
        [false, false, true]
    );
}

/// UDP_CHECK's hex strings and reply test as keepalived's check_udp.c: words joined,
/// a lone digit an octet, x/X wildcard nibbles in require_reply only, a reply shorter
/// than the pattern compared as far as it goes, the lengths only with a pattern;
/// invalid hex named with keepalived's consequence.
#[test]
fn udp_check_as_keepalived_reads_and_matches_it() {
    let words = |t: &str| t.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        hex_string(&words("00 01 02"), false),
        Some((vec![0, 1, 2], vec![0; 3]))
    );
    assert_eq!(
        hex_string(&words("0001 2"), false),
        Some((vec![0, 1, 2], vec![0; 3]))
    );
    assert_eq!(hex_string(&words("4f5054"), false).unwrap().0, b"OPT");
    assert_eq!(
        hex_string(&words("12 3x"), false),
        None,
        "no wildcard in a payload"
    );
    assert_eq!(hex_string(&words("rvs"), false), None);
    assert_eq!(
        hex_string(&words("12 3x XX"), true),
        Some((vec![0x12, 0x30, 0], vec![0, 0x0f, 0xff]))
    );
    let conf = |check: &str| {
        KeepalivedConf::parse(
                "u.conf",
                &format!("virtual_server 10.0.0.1 53 {{\n protocol UDP\n real_server 10.0.0.2 53 {{\n  UDP_CHECK {{\n{check}\n  }}\n }}\n}}\n"),
            )
            .unwrap()
    };
    let kind = |k: &KeepalivedConf| {
        k.virtual_servers[0].real_servers[0].checkers[0]
            .kind
            .clone()
    };
    let k = conf("payload 00 01 02\nmin_reply_length 2\nrequire_reply 12 3x\nmax_reply_length 4");
    let CheckKind::Udp {
        payload,
        require_reply: Some(r),
    } = kind(&k)
    else {
        panic!("{:?}", kind(&k))
    };
    assert_eq!(payload, [0, 1, 2]);
    assert_eq!((r.min_len, r.max_len), (2, 4));
    assert!(r.accepts(&[0x12, 0x35]));
    assert!(r.accepts(&[0x12, 0x3f, 9, 9]));
    assert!(!r.accepts(&[0x12, 0x45]), "the digit that is no wildcard");
    assert!(!r.accepts(&[0x12]), "shorter than min_reply_length");
    assert!(
        !r.accepts(&[0x12, 0x30, 0, 0, 0]),
        "longer than max_reply_length"
    );
    let short = UdpReply {
        min_len: 0,
        ..r.clone()
    };
    assert!(short.accepts(&[0x12]), "compared as far as the reply goes");
    let any = UdpReply {
        data: Vec::new(),
        wildcard: Vec::new(),
        ..r
    };
    assert!(
        any.accepts(&[7; 9]),
        "no pattern: any reply, whatever its length"
    );
    let k = conf("payload zz\nrequire_reply 1g");
    let CheckKind::Udp {
        payload,
        require_reply: Some(r),
    } = kind(&k)
    else {
        panic!()
    };
    assert!(payload.is_empty() && r.data.is_empty() && r.max_len == 255);
    for said in [
        "u.conf:5: UDP_CHECK payload: invalid hex string; none sent",
        "u.conf:6: UDP_CHECK require_reply: invalid hex string; any reply will do",
    ] {
        assert!(
            k.warnings.iter().any(|w| w.contains(said)),
            "{said:?} in {:?}",
            k.warnings
        );
    }
    let k = conf("require_reply 00\nmin_reply_length 9\nmax_reply_length 3");
    assert!(
        k.warnings
            .iter()
            .any(|w| w.contains("min_reply_length 9 > max_reply_length 3 - will always fail")),
        "{:?}",
        k.warnings
    );
}

fn load(name: &str) -> KeepalivedConf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/keepalived")
        .join(name);
    KeepalivedConf::load(&path).unwrap()
}

#[test]
fn seed_dns_cluster_level2_loads_unchanged() {
    let k = load("dns-cluster-level2.conf");
    assert!(k.warnings.is_empty(), "{:?}", k.warnings);
    assert_eq!(k.vrrp.len(), 1);
    assert_eq!(k.vrrp[0].keyword, "vrrp_instance");
    assert_eq!(k.virtual_servers.len(), 2);
    let udp = &k.virtual_servers[0];
    assert_eq!(
        udp.keys,
        vec![ServiceKey::Addr(
            Protocol::Udp,
            "10.2.1.5:53".parse().unwrap()
        )]
    );
    assert_eq!(udp.sched, SchedKind::Rr);
    let rs = &udp.real_servers[0];
    assert_eq!(
        (rs.addr.to_string(), rs.port, rs.method),
        ("10.2.1.2".into(), 53, ForwardMethod::Nat)
    );
    let c = &rs.checkers[0];
    assert_eq!(
        c.kind,
        CheckKind::Dns {
            qtype: "TXT".into(),
            name: "health.load.balance.".into()
        }
    );
    assert_eq!(
        (
            c.delay_loop,
            c.retry,
            c.delay_before_retry,
            c.connect_timeout
        ),
        (
            Duration::from_secs(10),
            3,
            Duration::from_secs(10),
            Duration::from_secs(5)
        )
    );
    let tcp = &k.virtual_servers[1].real_servers[1].checkers[0];
    assert_eq!(tcp.kind, CheckKind::Tcp);
    assert_eq!(tcp.connect_timeout, Duration::from_secs(3));
    assert_eq!(tcp.target, "10.2.1.3:53".parse().unwrap());
    let cmds = k.commands();
    assert_eq!(cmds.len(), 6);
}

#[test]
fn seed_dns_cluster_level3_checks_other_addresses() {
    let k = load("dns-cluster-level3.conf");
    assert!(k.warnings.is_empty(), "{:?}", k.warnings);
    let rs = &k.virtual_servers[0].real_servers[0];
    assert_eq!(rs.addr.to_string(), "10.2.1.6");
    assert_eq!(rs.checkers[0].target, "10.2.1.2:53".parse().unwrap());
    let rs = &k.virtual_servers[1].real_servers[1];
    assert_eq!(rs.checkers[0].target, "10.2.1.3:53".parse().unwrap());
}

/// keepalived's defaults where a value is missing: UDP without `protocol` (with its
/// warning), the service's port for a real or sorry server without one, 360 s for a
/// bare `persistence_timeout`.
#[test]
fn keepalived_defaults_for_missing_values() {
    let k = KeepalivedConf::parse(
            "t.conf",
            "virtual_server 10.0.0.1 8080 {\n    persistence_timeout\n    sorry_server 10.0.0.9\n    real_server 10.0.0.2 {\n        FILE_CHECK {\n        }\n        TCPCHECK {\n        }\n    }\n}\n",
        )
        .unwrap();
    assert!(
        k.warnings
            .iter()
            .any(|w| w.starts_with("t.conf:5: FILE_CHECK has no track_file specified")),
        "{:?}",
        k.warnings
    );
    assert!(
        k.warnings
            .iter()
            .any(|w| w.starts_with("t.conf:7: unknown keyword \"TCPCHECK\"")),
        "{:?}",
        k.warnings
    );
    let vs = &k.virtual_servers[0];
    assert_eq!(
        vs.keys,
        [ServiceKey::Addr(
            Protocol::Udp,
            "10.0.0.1:8080".parse().unwrap()
        )]
    );
    assert_eq!(vs.persistence, Some(360));
    assert_eq!(vs.sorry_server, Some(("10.0.0.9".parse().unwrap(), 8080)));
    assert_eq!(vs.real_servers[0].port, 8080);
    assert!(
        k.warnings[0].contains("no protocol set - defaulting to UDP"),
        "{:?}",
        k.warnings
    );
}

#[test]
fn keepalived_s_corrections_with_its_warnings() {
    let k = KeepalivedConf::parse(
            "c.conf",
            "global_defs {\n  lvs_timeouts tcp 7200 udp x bogus 3\n}\n\
             virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_kind DR\n  quorum 10\n  hysteresis 12\n  delay_loop 0\n  connect_timeout 0\n  persistence_timeout 9999999\n  weight 3\n  sorry_server 10.0.0.9 8080\n\
               real_server 10.0.0.2 8080 {\n    weight 2\n    HTTP_GET {\n      nb_get_retry 4\n    }\n  }\n\
               real_server 10.0.0.3 {\n    TCP_CHECK {\n      nb_get_retry 4\n    }\n  }\n\
               real_server 10.0.0.4 81 {\n    lb_kind NAT\n    weight 4294967295\n  }\n}\n\
             virtual_server fwmark 5 {\n  lb_kind TUN\n  persistence_granularity 255.255.255.0\n  real_server 10.0.0.5 443 {\n  }\n}\n",
        )
        .unwrap();
    let w = k.warnings.join("\n");
    for want in [
            "c.conf:2: Invalid lvs_timeout udp (x) - ignoring",
            "c.conf:2: Unknown option 3 specified for lvs_timeouts",
            "c.conf:9: delay_loop '0' invalid - ignoring",
            "c.conf:10: connect_timeout '0' invalid - ignoring",
            "c.conf:11: persistence_timeout invalid - ignoring",
            "c.conf:4: Warning - quorum 10 for 10.0.0.1 80 exceeds total weight of real servers 8, reducing quorum to 8",
            "c.conf:4: Virtual server 10.0.0.1 80: hysteresis 12 >= quorum 8; setting hysteresis to 7",
            "c.conf:14: WARNING - virtual server 10.0.0.1 80 and real server 10.0.0.2 ports don't match - resetting",
            "c.conf:4: WARNING - virtual server 10.0.0.1 80 and sorry server ports don't match - resetting",
            "c.conf:17: nb_get_retry is deprecated - please use 'retry'",
            "c.conf:22: unknown keyword \"nb_get_retry\" ignored",
            "c.conf:27: Real server weight 4294967295 is outside range 0-2147483647 - ignoring",
            "c.conf:33: WARNING - fwmark virtual server fwmark 5, real server 10.0.0.5 has port specified - clearing",
        ] {
            assert!(w.contains(want), "{want}\n---\n{w}");
        }
    assert_eq!(k.lvs_timeouts, (7200, 0, 0));
    assert!(matches!(
        k.commands()[0],
        Command::SetTimeouts {
            tcp: 7200,
            tcpfin: 0,
            udp: 0
        }
    ));
    let vs = &k.virtual_servers[0];
    assert_eq!((vs.quorum, vs.hysteresis, vs.persistence), (8, 7, None));
    assert_eq!(vs.sorry_server.unwrap().1, 80);
    let ports: Vec<(u16, u32)> = vs.real_servers.iter().map(|r| (r.port, r.weight)).collect();
    // DR servers take the service's port; the NAT one keeps its own; the vs weight is
    // the default; an out-of-range weight is ignored.
    assert_eq!(ports, [(80, 2), (80, 3), (81, 3)]);
    let check = &vs.real_servers[0].checkers[0];
    assert_eq!(check.retry, 4);
    let mark = &k.virtual_servers[1];
    assert_eq!((mark.persistence, mark.granularity), (Some(360), Some(24)));
    assert_eq!(mark.real_servers[0].port, 0);
}

#[test]
fn group_ranges_as_keepalived_writes_them() {
    let k = KeepalivedConf::parse(
            "g.conf",
            "virtual_server_group G {\n  10.0.0.1-3 80\n  10.0.1.0/30 0\n  10.0.2.254-10.0.3.1 443\n  2001:db8::8-a 53\n  2001:db8::100/127\n  fwmark 7 inet6\n}\n\
             virtual_server group G {\n  protocol TCP\n  lb_kind TUN\n  real_server 10.1.0.1 80 {\n  }\n}\n\
             virtual_server 10.0.0.9 5000 {\n  protocol SCTP\n  real_server 10.1.0.1 5000 {\n  }\n}\n",
        )
        .unwrap();
    let keys: Vec<String> = k.virtual_servers[0]
        .keys
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "-t 10.0.0.1:80",
            "-t 10.0.0.2:80",
            "-t 10.0.0.3:80",
            "-t 10.0.1.0:0",
            "-t 10.0.1.1:0",
            "-t 10.0.1.2:0",
            "-t 10.0.1.3:0",
            "-t 10.0.2.254:443",
            "-t 10.0.2.255:443",
            "-t 10.0.3.0:443",
            "-t 10.0.3.1:443",
            "-t [2001:db8::8]:53",
            "-t [2001:db8::9]:53",
            "-t [2001:db8::a]:53",
            "-t [2001:db8::100]:0",
            "-t [2001:db8::101]:0",
            "-f 7 -6"
        ]
    );
    let sctp: Vec<String> = k.virtual_servers[1]
        .keys
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(sctp, ["--sctp-service 10.0.0.9:5000"]);
    assert!(k.warnings.iter().all(|w| !w.contains("SCTP")));
    for bad in [
        "10.0.0.5-5",
        "10.0.0.1/24",
        "2001:db8::1-10000",
        "10.0.0.9-10.0.0.1",
    ] {
        let e = KeepalivedConf::parse(
                "b.conf",
                &format!("virtual_server_group B {{\n  {bad} 80\n}}\nvirtual_server group B {{\n  protocol TCP\n}}\n"),
            )
            .unwrap_err();
        assert!(e.starts_with("b.conf:2: "), "{bad}: {e}");
    }
    let e = KeepalivedConf::parse(
            "big.conf",
            "virtual_server_group B {\n  10.0.0.0/8 80\n}\nvirtual_server group B {\n  protocol TCP\n}\n",
        )
        .unwrap_err();
    assert!(e.contains("more than 65536 addresses"), "{e}");
}

#[test]
fn script_user_and_script_security() {
    let dir = std::env::temp_dir().join(format!("rvs-ka-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bad = dir.join("check.sh");
    std::fs::write(&bad, "#!/bin/sh\nexit 0\n").unwrap();
    let conf = |security: &str| {
        format!(
                "global_defs {{\n  script_user nobody\n  {security}\n}}\n\
                 vrrp_script chk {{\n  script \"{bad} x\"\n  user root\n}}\n\
                 virtual_server 10.0.0.1 80 {{\n  protocol TCP\n\
                   real_server 10.0.0.2 80 {{\n    MISC_CHECK {{\n      misc_path \"{bad}\"\n      user root\n    }}\n    MISC_CHECK {{\n      misc_path /bin/true\n    }}\n  }}\n}}\n",
                bad = bad.display()
            )
    };
    let strict = KeepalivedConf::parse("s.conf", &conf("enable_script_security")).unwrap();
    let lax = KeepalivedConf::parse("l.conf", &conf("")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let checks = |k: &KeepalivedConf| -> Vec<(String, u32)> {
        k.virtual_servers[0].real_servers[0]
            .checkers
            .iter()
            .map(|c| match &c.kind {
                CheckKind::Misc { path, uid, .. } => (path.clone(), *uid),
                _ => panic!(),
            })
            .collect()
    };
    let nobody = crate::scripts::ids("nobody", None).unwrap().0;
    // Unsafe and run as root: disabled with enable_script_security, else only said.
    assert_eq!(checks(&strict), [("/bin/true".to_string(), nobody)]);
    assert_eq!(checks(&lax).len(), 2);
    assert_eq!(checks(&lax)[0].1, 0);
    assert!(strict.vrrp_conf.scripts.is_empty());
    assert_eq!(lax.vrrp_conf.scripts.len(), 1);
    let w = strict.warnings.join("\n");
    assert!(
        w.contains("s.conf:12: Unsafe permissions found for script") && w.contains("disabling"),
        "{w}"
    );
    assert!(w.contains("vrrp_script chk: Unsafe permissions"), "{w}");
    assert!(lax
        .warnings
        .join("\n")
        .contains("enable_script_security is not set"));
    let e = KeepalivedConf::parse(
            "u.conf",
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    MISC_CHECK {\n      misc_path /bin/true\n      user no-such-user-here\n    }\n  }\n}\n",
        )
        .unwrap_err();
    assert!(
        e.contains("u.conf:4: MISC_CHECK: script user no-such-user-here not found"),
        "{e}"
    );
}

/// BFD_CHECK as keepalived's check_bfd.c reads it: one name of a bfd_instance the
/// checkers hear of, once per server.
#[test]
fn bfd_checks_name_their_sessions() {
    let k = KeepalivedConf::parse(
            "b.conf",
            "bfd_instance rs1 {\n neighbor_ip 10.0.0.2\n}\nbfd_instance gw {\n neighbor_ip 10.0.0.1\n vrrp\n}\n\
             virtual_server 10.0.0.100 80 {\n  protocol TCP\n\
               real_server 10.0.0.2 80 {\n    BFD_CHECK {\n      name rs1\n      alpha\n    }\n    BFD_CHECK {\n      name rs1\n    }\n\
                 BFD_CHECK {\n      name gw\n    }\n    BFD_CHECK {\n      name a b\n    }\n  }\n}\n",
        )
        .unwrap();
    let rs = &k.virtual_servers[0].real_servers[0];
    assert_eq!(rs.checkers.len(), 1);
    assert_eq!(rs.checkers[0].kind, CheckKind::Bfd { name: "rs1".into() });
    assert_eq!(rs.checkers[0].retry, 0);
    let w = k.warnings.join("\n");
    for want in [
        "b.conf:16: (10.0.0.2:80) BFD_CHECK - RS already monitoring rs1",
        "b.conf:19: (10.0.0.2:80) BFD_CHECK - BFD gw not configured",
        "b.conf:22: (10.0.0.2:80) BFD_CHECK - No or too many names specified",
    ] {
        assert!(w.contains(want), "{want}\n{w}");
    }
}

#[test]
fn file_checks_on_track_files() {
    let k = KeepalivedConf::parse(
            "f.conf",
            "track_file maint {\n  file /run/maint\n  weight -2 reverse\n  init_file 3 overwrite\n}\n\
             virtual_server 10.0.0.1 80 {\n  protocol TCP\n  weight 4\n\
               real_server 10.0.0.2 80 {\n    FILE_CHECK {\n      track_file maint\n    }\n    BFD_CHECK {\n    }\n  }\n\
               real_server 10.0.0.3 80 {\n    FILE_CHECK {\n      track_file maint\n      weight 0\n    }\n    FILE_CHECK {\n      track_file nosuch\n    }\n\
                 SMTP_CHECK {\n      host {\n        connect_ip 10.0.0.7\n        connect_port 2525\n      }\n      host {\n      }\n    }\n  }\n}\n",
        )
        .unwrap();
    let rs = &k.virtual_servers[0].real_servers;
    assert_eq!(
        rs[0].checkers[0].kind,
        CheckKind::File {
            path: "/run/maint".into(),
            weight: -2,
            reverse: true,
            base: 4,
            init: Some((3, true))
        }
    );
    assert!(matches!(
        rs[1].checkers[0].kind,
        CheckKind::File {
            weight: 0,
            reverse: false,
            ..
        }
    ));
    // The unknown track file's FILE_CHECK is dropped; SMTP's host blocks are checkers.
    let smtp: Vec<SocketAddr> = rs[1].checkers[1..].iter().map(|c| c.target).collect();
    assert_eq!(
        smtp,
        [
            "10.0.0.7:2525".parse().unwrap(),
            "10.0.0.3:80".parse().unwrap()
        ]
    );
    let w = k.warnings.join("\n");
    for want in [
        "f.conf:13: (10.0.0.2:80) No name has been specified for BFD_CHECKER - skipping",
        "f.conf:22: track_file nosuch not found",
        "f.conf:21: FILE_CHECK has no track_file specified",
        "f.conf:24: The SMTP_CHECK host block is deprecated",
    ] {
        assert!(w.contains(want), "{want}\n{w}");
    }
}

#[test]
fn global_defs_typos_are_warned() {
    let k = KeepalivedConf::parse(
            "t.conf",
            "global_defs {\n  router_id lb1\n  routr_id lb1\n  smtp_server 10.0.0.1\n  enable_script_security\n}\n",
        )
        .unwrap();
    assert_eq!(
        k.warnings,
        ["t.conf:3: unknown keyword \"routr_id\" ignored",]
    );
}

/// What keepalived would do and rvs does not is named; keepalived's own tuning
/// (process names, priorities, buffers) passes without a word.
#[test]
fn global_defs_not_applied_are_named() {
    let k = KeepalivedConf::parse(
        "t.conf",
        "global_defs {
  vrrp_garp_extra_if 10
  enable_snmp_vrrp
  vrrp_priority -10
  checker_process_name kc
  smtp_alert
  vrrp_garp_master_repeat 2
}
",
    )
    .unwrap();
    let named: Vec<&str> = k
        .warnings
        .iter()
        .map(|w| w.split(": ").nth(2).unwrap_or(w))
        .collect();
    assert_eq!(named, ["enable_snmp_vrrp"]);
}

/// Top-level blocks: keepalived's process handling passes, what rvs does not do is
/// named with why, a typo is an unknown keyword.
#[test]
fn top_level_blocks_not_applied_are_named() {
    let k = KeepalivedConf::parse(
            "r.conf",
            "instance lb1\nuse_pid_dir\nchild_wait_time 5\nnet_namespace blue\n\
             static_rules {\n from 10.0.0.0/8 table 100\n}\nbfd_instance b {\n neighbor_ip 10.0.0.2\n}\nvirtual_srever 10.0.0.1 80 {\n}\n",
        )
        .unwrap();
    assert_eq!(
            k.warnings,
            [
                "r.conf:4: net_namespace: rvs runs in the namespace it is started in (ip netns exec); ignored",
                "r.conf:11: unknown keyword \"virtual_srever\" ignored",
                "r.conf:6: rule \"from 10.0.0.0/8 table 100\": Rule has no preference specified - setting to 16384. This is probably not what you want.",
            ]
        );
}

/// notify_fifo and vrrp_notify_fifo carry VRRP's lines (with their scripts and owners),
/// notify_fifo and lvs_notify_fifo the checkers', in keepalived's order; a script
/// without its FIFO is named.
#[test]
fn notify_fifos_as_keepalived_reads_them() {
    let k = KeepalivedConf::parse(
        "t.conf",
        "global_defs {
  notify_fifo /run/all.fifo
  vrrp_notify_fifo /run/vrrp.fifo nobody nogroup
  vrrp_notify_fifo_script /bin/cat
  lvs_notify_fifo /run/lvs.fifo
}
",
    )
    .unwrap();
    let f = &k.vrrp_conf.fifos;
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].path.as_str(), f[0].script.is_none()),
        ("/run/all.fifo", true)
    );
    assert_eq!(f[1].path, "/run/vrrp.fifo");
    assert_eq!(f[1].owner, ["nobody", "nogroup"]);
    assert_eq!(f[1].script.as_ref().unwrap().command, "/bin/cat");
    assert_eq!(f[0].at, "t.conf:2");
    assert!(k.warnings.is_empty(), "{:?}", k.warnings);
    let checkers: Vec<String> = k.checker_fifos().into_iter().map(|f| f.path).collect();
    assert_eq!(checkers, ["/run/all.fifo", "/run/lvs.fifo"]);
    let k = KeepalivedConf::parse("t.conf", "global_defs {\n notify_fifo_script /bin/cat\n}\n")
        .unwrap();
    assert!(k.vrrp_conf.fifos.is_empty());
    assert!(
        k.warnings
            .iter()
            .any(|w| w.contains("without notify_fifo, not run")),
        "{:?}",
        k.warnings
    );
}

/// Each of `wanted` begins one of the warnings of `k`.
fn assert_warned(k: &KeepalivedConf, wanted: &[&str]) {
    for want in wanted {
        assert!(
            k.warnings.iter().any(|w| w.starts_with(want)),
            "{want}\n{:#?}",
            k.warnings
        );
    }
}

#[test]
fn duplicates_ops_and_zero_ports_are_corrected_as_keepalived() {
    let k = KeepalivedConf::parse(
            "c.conf",
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  ops\n  real_server 10.0.1.1 80 {\n  }\n  real_server 10.0.1.1 80 {\n    weight 9\n  }\n}\n\
             virtual_server 10.0.0.2 0 {\n  protocol UDP\n  ops\n  lb_kind DR\n  real_server 10.0.1.2 0 {\n  }\n}\n",
        )
        .unwrap();
    let (tcp, udp) = (&k.virtual_servers[0], &k.virtual_servers[1]);
    assert_eq!((tcp.real_servers.len(), tcp.real_servers[0].weight), (1, 1));
    assert_eq!((tcp.one_packet, tcp.persistence), (false, None));
    assert_eq!((udp.one_packet, udp.persistence), (true, Some(360)));
    assert_warned(&k, &[
            "c.conf:6: VS 10.0.0.1 80: real server 10.0.1.1:80 is duplicated - removing second rs",
            "c.conf:1: Virtual server 10.0.0.1 80: one packet scheduling requires UDP - resetting",
            "c.conf:10: Virtual server 10.0.0.2 0: zero port only valid for persistent services - setting",
        ]);
}

#[test]
fn a_lower_threshold_above_the_upper_leaves_the_server_out() {
    let k = KeepalivedConf::parse(
            "t.conf",
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    lthreshold 5\n  }\n  real_server 10.0.1.2 80 {\n    uthreshold 9\n    lthreshold 9\n  }\n}\n",
        )
        .unwrap();
    let servers: Vec<String> = k.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.addr.to_string())
        .collect();
    assert_eq!(servers, ["10.0.1.2"]);
    assert!(k.warnings[0]
        .starts_with("t.conf:3: real server 10.0.1.1: lthreshold 5 above uthreshold 0"));
}

#[test]
fn a_groups_marks_take_no_port_from_dr_servers() {
    let k = KeepalivedConf::parse(
            "g.conf",
            "virtual_server_group G {\n  10.0.0.1 80\n  fwmark 3\n}\n\
             virtual_server group G {\n  protocol TCP\n  lb_kind DR\n  real_server 10.0.1.1 80 {\n  }\n}\n",
        )
        .unwrap();
    let v = &k.virtual_servers[0];
    let ports: Vec<u16> = v
        .keys
        .iter()
        .map(|key| server_spec(*key, &v.real_servers[0], 1).port)
        .collect();
    assert_eq!(ports, [80, 0]);
    assert!(k.warnings.iter().any(|w| w.starts_with(
            "g.conf:8: WARNING - fwmark virtual server group G, real server 10.0.1.1 has port specified"
        )));
}

#[test]
fn address_families_settle_as_keepalived_settles_them() {
    let k = KeepalivedConf::parse(
            "f.conf",
            "virtual_server_group MIXED {\n  10.0.0.1 80\n  2001:db8::1 80\n}\n\
             virtual_server 10.0.0.1 80 {\n  protocol TCP\n  sorry_server 2001:db8::9 80\n  real_server 2001:db8::2 80 {\n  }\n  real_server 10.0.0.3 80 {\n  }\n}\n\
             virtual_server 10.0.0.1 81 {\n  protocol TCP\n  real_server 2001:db8::2 81 {\n  }\n}\n\
             virtual_server group MIXED {\n  protocol TCP\n  real_server 10.0.0.4 80 {\n  }\n}\n\
             virtual_server fwmark 5 {\n  real_server 10.0.0.5 0 {\n  }\n  ip_family inet6\n}\n\
             virtual_server fwmark 6 {\n  lb_kind TUN\n  real_server 2001:db8::6 0 {\n  }\n  real_server 10.0.0.6 0 {\n  }\n}\n\
             virtual_server fwmark 7 {\n  lb_kind TUN\n  real_server 2001:db8::7 0 {\n  }\n}\n\
             virtual_server fwmark 8 {\n  lb_kind TUN\n  real_server 10.0.0.8 0 {\n  }\n}\n",
        )
        .unwrap();
    let keys: Vec<String> = k
        .virtual_servers
        .iter()
        .map(|v| v.keys[0].to_string())
        .collect();
    // 81 has no real server left, the mixed group none of its family: both left out.
    assert_eq!(keys, ["-t 10.0.0.1:80", "-f 5", "-f 6", "-f 7 -6", "-f 8"]);
    let first = &k.virtual_servers[0];
    let servers: Vec<IpAddr> = first.real_servers.iter().map(|r| r.addr).collect();
    assert_eq!(servers, ["10.0.0.3".parse::<IpAddr>().unwrap()]);
    assert_eq!(first.sorry_server, None);
    assert_warned(&k, &[
            "f.conf:8: Address family of virtual server 10.0.0.1 80 and real server 2001:db8::2 don't match - skipping real server",
            "f.conf:7: Address family of virtual server 10.0.0.1 80 and sorry server 2001:db8::9 don't match - skipping sorry server",
            "f.conf:13: Virtual server 10.0.0.1 81 has no real servers - ignoring",
            "f.conf:18: virtual server group with IPv4 & IPv6 doesn't match virtual server group MIXED - ignoring",
            "f.conf:26: Virtual server specified family inet6 conflicts with server family - ignoring",
        ]);
}

#[test]
fn scheduler_flags_families_and_per_server_alpha() {
    let k = KeepalivedConf::parse(
            "s.conf",
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_algo mh\n  mh-port\n  mh-fallback\n  sorry_server 10.0.0.9 8080\n  sorry_server_lvs_method NAT\n  lb_kind DR\n\
               real_server 10.0.0.2 80 {\n    alpha\n    TCP_CHECK {\n    }\n  }\n  real_server 10.0.0.3 80 {\n    TCP_CHECK {\n    }\n  }\n}\n\
             virtual_server 10.0.0.1 81 {\n  protocol TCP\n  lb_algo wlc\n  flag-2\n  sh-port\n  real_server 10.0.0.4 81 {\n  }\n}\n\
             virtual_server fwmark 9 {\n  ip_family inet6\n  lb_algo rr\n  real_server 2001:db8::4 0 {\n  }\n}\n",
        )
        .unwrap();
    let v = &k.virtual_servers;
    assert_eq!(v[0].sched.flags(), ["mh-fallback", "mh-port"]);
    // The NAT sorry server keeps its own port; the DR servers take the service's.
    assert_eq!(v[0].sorry_method, ForwardMethod::Nat);
    assert_eq!(v[0].sorry_server.unwrap().1, 8080);
    assert_eq!(v[1].flag_bits, 2);
    assert!(k
        .warnings
        .iter()
        .any(|w| w.contains("sh-port does not apply to lb_algo wlc")));
    assert_eq!(
        v[2].keys,
        [ServiceKey::Fwmark {
            mark: 9,
            ipv6: true
        }]
    );
    // The alpha server starts down (not in the service); the other starts up.
    let servers: Vec<IpAddr> = k
        .commands()
        .iter()
        .filter_map(|c| match c {
            Command::AddServer(s) => Some(s.addr),
            _ => None,
        })
        .collect();
    let want: Vec<IpAddr> = ["10.0.0.3", "10.0.0.4", "2001:db8::4"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(servers, want);
}

/// DPVS's keepalived dialect for full NAT: `lb_kind FNAT`, `laddr_group_name` naming a
/// `local_address_group`, `proxy_protocol v2`; the servers are NAT servers.
#[test]
fn full_nat_in_dpvs_keepalived_syntax() {
    let k = KeepalivedConf::parse(
            "f.conf",
            "local_address_group laddr_g1 {\n  10.0.0.201 dpdk0\n  10.0.0.202 dpdk0\n}\n\
             virtual_server 192.0.2.10 80 {\n  protocol TCP\n  lb_kind FNAT\n  laddr_group_name laddr_g1\n  proxy_protocol v2\n\
               real_server 10.0.0.2 8080 {\n  }\n}\n\
             virtual_server 192.0.2.10 443 {\n  protocol TCP\n  lb_kind FNAT\n  real_server 10.0.0.2 443 {\n  }\n}\n\
             virtual_server 192.0.2.10 25 {\n  protocol TCP\n  lb_kind FNAT\n  proxy_protocol v1\n  real_server 10.0.0.2 25 {\n  }\n}\n\
             virtual_server 192.0.2.10 53 {\n  protocol UDP\n  lb_kind NAT\n  real_server 10.0.0.2 53 {\n  }\n}\n",
        )
        .unwrap();
    assert!(k.warnings.is_empty(), "{:?}", k.warnings);
    let f = k.full_nat();
    assert_eq!(f.len(), 3);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(f[0].1.locals(), &[ip("10.0.0.201"), ip("10.0.0.202")]);
    assert!(f[0].1.proxy_protocol && !f[0].1.proxy_v1);
    assert!(f[1].1.locals().is_empty() && !f[1].1.proxy_protocol);
    assert!(
        f[2].1.proxy_protocol && f[2].1.proxy_v1,
        "proxy_protocol v1"
    );
    assert_eq!(
        k.virtual_servers[0].real_servers[0].method,
        ForwardMethod::Nat
    );
    let e = KeepalivedConf::parse(
            "g.conf",
            "virtual_server 192.0.2.10 80 {\n  protocol TCP\n  lb_kind FNAT\n  laddr_group_name nope\n}\n",
        )
        .unwrap_err();
    assert!(
        e.contains("g.conf:4") && e.contains("no such local_address_group"),
        "{e}"
    );
}

#[test]
fn tunnel_types_from_lb_kind() {
    use rvs_core::{Tunnel, TunnelCsum, TunnelKind};
    let k = KeepalivedConf::parse(
            "t.conf",
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  lb_kind TUN type gue port 6080 csum\n\
               real_server 10.0.0.2 80 {\n  }\n  real_server 10.0.0.3 80 {\n    lb_kind TUN type gre\n  }\n\
               real_server 10.0.0.4 80 {\n    lb_kind TUN type gue\n  }\n}\n",
        )
        .unwrap();
    let t: Vec<Option<Tunnel>> = k.virtual_servers[0]
        .real_servers
        .iter()
        .map(|r| r.tunnel)
        .collect();
    let gue = Tunnel {
        kind: TunnelKind::Gue,
        port: 6080,
        csum: TunnelCsum::Csum,
    };
    let gre = Tunnel {
        kind: TunnelKind::Gre,
        ..Tunnel::default()
    };
    // The last one's statement is ignored (a GUE tunnel needs a port): the service's.
    assert_eq!(t, [Some(gue), Some(gre), Some(gue)]);
    assert!(k
        .warnings
        .iter()
        .any(|w| w.contains("t.conf:10: gue tunnels require port")));
}

#[test]
fn inheritance_defaults_and_every_checker() {
    let k = KeepalivedConf::parse(
        "t.conf",
        r#"
virtual_server_group web { 192.168.1.10-11 80 }
virtual_server group web {
    protocol TCP
    lb_algo wrr
    lb_kind DR
    persistence_timeout 600
    persistence_granularity 255.255.255.0
    delay_loop 6
    retry 2
    sorry_server 10.0.0.99 80
    quorum 3
    hysteresis 1
    alpha
    real_server 10.0.0.1 80 {
        weight 3
        inhibit_on_failure
        notify_down "/usr/local/bin/down 1"
        HTTP_GET {
            url {
                path /health
                digest 9e107d9d372bb6826bd81d3542a419d6
                status_code 200 204 300-399
            }
            connect_timeout 2
        }
        SMTP_CHECK { connect_port 25 helo_name lb.example }
    }
    real_server 10.0.0.2 80 {
        UDP_CHECK {
            connect_port 5060
            payload 4f5054
            require_reply
        }
        SIP_CHECK { connect_port 5060 }
        MISC_CHECK {
            misc_path "/bin/check 10.0.0.2"
            misc_timeout 4
            misc_dynamic
        }
        PING_CHECK { }
        bogus_setting 1
    }
}
vrrp_sync_group G { group { VI_1 } }
mystery { }
"#,
    )
    .unwrap();
    // keepalived ignores a sync group member of no such instance, with a warning, and
    // then the group left with none.
    assert_eq!(k.warnings.len(), 4, "{:?}", k.warnings);
    assert!(k.warnings[3].contains("G: no vrrp_instance of its group, removed"));
    assert!(
        k.warnings[2].contains("\"VI_1\": no vrrp_instance"),
        "{:?}",
        k.warnings
    );
    assert!(
        k.warnings[0].starts_with("t.conf:42: unknown keyword \"bogus_setting\""),
        "{:?}",
        k.warnings
    );
    assert!(k.warnings[1].starts_with("t.conf:46:"), "{:?}", k.warnings);
    let vs = &k.virtual_servers[0];
    assert_eq!(vs.keys.len(), 2);
    assert_eq!(
        (
            vs.persistence,
            vs.granularity,
            vs.quorum,
            vs.hysteresis,
            vs.alpha
        ),
        (Some(600), Some(24), 3, 1, true)
    );
    let a = &vs.real_servers[0];
    assert!(a.inhibit_on_failure);
    assert_eq!(a.method, ForwardMethod::Dr);
    assert_eq!(a.notify_down.as_deref(), Some("/usr/local/bin/down 1"));
    let http = &a.checkers[0];
    assert_eq!(
        (
            http.retry,
            http.delay_before_retry,
            http.connect_timeout,
            http.delay_loop
        ),
        (
            2,
            Duration::from_secs(3),
            Duration::from_secs(2),
            Duration::from_secs(6)
        )
    );
    let CheckKind::Http {
        urls, ssl: false, ..
    } = &http.kind
    else {
        panic!()
    };
    assert_eq!(
        urls[0].status_codes,
        vec![(200, 200), (204, 204), (300, 399)]
    );
    for bad in ["99", "600", "299-200", "2x0", "200-"] {
        assert_eq!(status_range(bad), None, "{bad}");
    }
    assert_eq!(a.checkers[1].target.port(), 25);
    let b = &vs.real_servers[1];
    assert_eq!(
        b.checkers[0].kind,
        CheckKind::Udp {
            payload: b"OPT".to_vec(),
            require_reply: Some(UdpReply {
                data: Vec::new(),
                wildcard: Vec::new(),
                min_len: 0,
                max_len: 255
            })
        }
    );
    assert_eq!(b.checkers[1].kind, CheckKind::Sip { tcp: false });
    assert_eq!(
        b.checkers[2].retry, 2,
        "retry inherited from the virtual server"
    );
    assert_eq!(
        b.checkers[2].kind,
        CheckKind::Misc {
            path: "/bin/check 10.0.0.2".into(),
            timeout: Some(Duration::from_secs(4)),
            dynamic: true,
            uid: crate::scripts::ids("keepalived_script", None).map_or(0, |i| i.0),
            gid: crate::scripts::ids("keepalived_script", None).map_or(0, |i| i.1),
        }
    );
    assert_eq!(b.checkers[3].kind, CheckKind::Ping);
    // alpha: services without servers until checks pass.
    assert_eq!(k.commands().len(), 2);
    assert_eq!(k.vrrp.len(), 1);
}

#[test]
fn malformed_files_name_the_line() {
    let e = |t: &str| KeepalivedConf::parse("bad.conf", t).unwrap_err();
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n hysteresis some\n}\n")
            .split(':')
            .take(2)
            .collect::<Vec<_>>(),
        vec!["bad.conf", "2"]
    );
    assert!(
        e("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.x 80 {\n }\n}\n")
            .starts_with("bad.conf:2:")
    );
    assert!(e("virtual_server 10.0.0.1 80 {\n delay_loop soon\n}\n").contains("seconds expected"));
    assert!(e("virtual_server 10.0.0.1 80 {\n").contains("missing closing brace"));
    assert!(e("virtual_server group nope {\n}\n").contains("no virtual_server_group"));
    // An unknown scheduler is ignored with keepalived's warning (wlc stays).
    let k = KeepalivedConf::parse(
        "s.conf",
        "virtual_server 10.0.0.1 80 {\n lvs_sched nope\n real_server 10.0.0.2 80 {\n }\n}\n",
    )
    .unwrap();
    assert_eq!(k.virtual_servers[0].sched.name(), "wlc");
    assert!(k.warnings[0].starts_with("s.conf:2: Invalid lvs_scheduler \"nope\""));
}
