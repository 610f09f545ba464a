use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Source {
        file: "t.toml".into(),
        text: text.into(),
    })
}

const TWO_PORTS: &str = r#"
[eal]
lcores = "0-2"
hugepages = false

[[port]]
name = "a"
device = "net_ring0"
rx_queues = 2

[[port]]
name = "b"
device = "net_ring1"
"#;

/// A tunnel carries IPv4 to an IPv6 server (IPVS allows it, so does keepalived); any
/// other method with a server of the other family is refused at the field.
#[test]
fn only_a_tun_server_may_be_of_the_other_family() {
    let service = |method: &str| {
        format!("{TWO_PORTS}\n[[service]]\nprotocol = \"udp\"\naddress = \"192.0.2.1\"\nport = 9001\n\n[[service.server]]\naddress = \"2001:db8::12\"\nmethod = \"{method}\"\n")
    };
    let c = parse(&service("tun")).unwrap();
    let loads = (0..c.limits.dests)
        .map(|_| rvs_core::sched::DestLoad::default())
        .collect();
    let d =
        c.lb.director(c.limits, std::sync::Arc::new(loads), Vec::new())
            .unwrap();
    assert!(d.services[0].has_mixed_family());
    for method in ["nat", "dr"] {
        let e = parse(&service(method)).unwrap_err();
        assert!(
            e.to_string().contains("service[0].server[0].address")
                && e.to_string().contains("only a tun server's may"),
            "{e}"
        );
    }
}

/// IPVS's lblc_expiration and lblcr_expiration: seconds, 24 h unless set; past rvs's
/// limit an error names the field and its line.
#[test]
fn lblc_and_lblcr_expiration_are_seconds_up_to_a_limit() {
    let lb = parse(&format!("[dataplane]\nlblc_expiration = 60\n{TWO_PORTS}"))
        .unwrap()
        .lb;
    assert_eq!(
        (lb.cache_expiration.lblc, lb.cache_expiration.lblcr),
        (60, 86_400)
    );
    let bad = format!("[dataplane]\nlblcr_expiration = 1000001\n{TWO_PORTS}");
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.field, "dataplane.lblcr_expiration", "{e}");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("at most 1000000"), "{e}");
}

/// IPVS's secure_tcp (0 to 3) and amemthresh (pages): bad values named with their line.
#[test]
fn secure_tcp_and_amemthresh_are_read_in_range() {
    let read = |dataplane: &str| parse(&format!("[dataplane]\n{dataplane}\n{TWO_PORTS}"));
    let lb = read("").unwrap().lb;
    assert_eq!((lb.secure_tcp, lb.amemthresh), (0, 1024));
    let lb = read("secure_tcp = 3\namemthresh = 2048").unwrap().lb;
    assert_eq!((lb.secure_tcp, lb.amemthresh), (3, 2048));
    let e = read("\nsecure_tcp = 4").unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("dataplane.secure_tcp", Some(3)),
        "{e}"
    );
    let e = read("amemthresh = 0").unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("dataplane.amemthresh", Some(2)),
        "{e}"
    );
    // drop_entry and drop_packet in the same modes; am_droprate at least 1.
    assert_eq!((lb.drop_entry, lb.drop_packet, lb.am_droprate), (0, 0, 10));
    let lb = read("drop_entry = 1\ndrop_packet = 3\nam_droprate = 5")
        .unwrap()
        .lb;
    assert_eq!((lb.drop_entry, lb.drop_packet, lb.am_droprate), (1, 3, 5));
    for (bad, field) in [
        ("drop_entry = 4", "dataplane.drop_entry"),
        ("drop_packet = 9", "dataplane.drop_packet"),
        ("am_droprate = 3000000000", "dataplane.am_droprate"),
    ] {
        let e = read(bad).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), (field, Some(2)), "{e}");
    }
}

/// IPVS's sync_refresh_period: seconds, unset (0) unless given, up to the same limit.
#[test]
fn sync_refresh_period_is_seconds_up_to_a_limit() {
    let read = |dataplane: &str| parse(&format!("[dataplane]\n{dataplane}\n{TWO_PORTS}"));
    assert_eq!(read("").unwrap().lb.sync_refresh_period, 0);
    let lb = read("sync_refresh_period = 30").unwrap().lb;
    assert_eq!(lb.sync_refresh_period, 30);
    let e = read("\nsync_refresh_period = 1000001").unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.line),
        ("dataplane.sync_refresh_period", Some(3)),
        "{e}"
    );
}

/// `ecmp` makes TCP and SCTP sloppy (a node takes over flows another node had) and
/// schedules ICMP errors (one about a flow another node carries); `sloppy_sctp` alone
/// only SCTP; `pmtu_disc` is on unless set off.
#[test]
fn ecmp_makes_tcp_and_sctp_sloppy_and_schedules_icmp() {
    let with = |dataplane: &str| {
        let lb = parse(&format!("[dataplane]\n{dataplane}\n{TWO_PORTS}"))
            .unwrap()
            .lb;
        (
            lb.sloppy_tcp,
            lb.sloppy_sctp,
            !lb.pmtu_disc_off,
            lb.schedule_icmp,
        )
    };
    assert_eq!(with(""), (false, false, true, false));
    assert_eq!(with("ecmp = true"), (true, true, true, true));
    assert_eq!(with("sloppy_sctp = true"), (false, true, true, false));
    assert_eq!(with("pmtu_disc = false"), (false, false, false, false));
    assert_eq!(with("schedule_icmp = true"), (false, false, true, true));
}

/// The TOML's VRRP instances are read as keepalived.conf's: a VMAC name an earlier
/// instance took is ignored with keepalived's message.
#[test]
fn a_toml_instances_vmac_name_in_use_is_ignored() {
    let instance = |n: u8| {
        format!("[[vrrp_instance]]\nname = \"V{n}\"\ninterface = \"a\"\nvirtual_router_id = {n}\nuse_vmac = \"vm60\"\nvirtual_ipaddress = [\"10.0.0.{n}\"]\n")
    };
    let ports = TWO_PORTS.replace("rx_queues = 2\n", "rx_queues = 2\npromiscuous = true\n");
    let text = format!("{ports}{}{}", instance(60), instance(61));
    let vrrp = parse(&text).unwrap().vrrp;
    assert_eq!(vrrp.instances[0].vmac_name.as_deref(), Some("vm60"));
    assert!(vrrp.instances[0].vmac.is_some());
    assert!(vrrp.instances[1].vmac.is_some(), "the VMAC stays");
    assert_eq!(vrrp.instances[1].vmac_name, None, "its name does not");
    assert!(
        vrrp.warnings.len() == 1
            && vrrp.warnings[0]
                .ends_with("(V61) VRRP instance V60 is already using vm60 - ignoring name"),
        "{:?}",
        vrrp.warnings
    );
}

/// A port hashes the end its traffic comes from unless told otherwise, so that both
/// directions of a flow reach the queue of its owner.
#[test]
fn ports_hash_the_client_end() {
    let c = parse(&TWO_PORTS.replace("name = \"b\"", "name = \"b\"\nfaces = \"servers\"")).unwrap();
    assert_eq!(c.ports[0].rss_hash, DEFAULT_RSS_FIELDS.map(String::from));
    assert_eq!(
        c.ports[1].rss_hash,
        SERVER_SIDE_RSS_FIELDS.map(String::from)
    );
    let c = parse(&TWO_PORTS.replace("rx_queues = 2", "rss_hash = [\"ip\"]\nfaces = \"servers\""))
        .unwrap();
    assert_eq!(c.ports[0].rss_hash, ["ip"], "rss_hash says it all");
}

/// A tun server's GUE/GRE encapsulation and a service's SIP persistence in TOML.
#[test]
fn tunnels_and_the_sip_engine() {
    let c = parse(&format!(
            "{TWO_PORTS}[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.1\"\nport = 5060\npersistence = 60\npe = \"sip\"\n\
             [[service.server]]\naddress = \"10.1.0.1\"\nmethod = \"tun\"\ntunnel = \"gue\"\ntunnel_port = 6080\ntunnel_csum = \"csum\"\n"
        ))
        .unwrap();
    let (cmds, _) = c.lb.commands();
    let crate::ipvsadm::Command::AddService(svc) = &cmds[0] else {
        panic!()
    };
    assert_eq!(svc.pe.as_deref(), Some("sip"));
    let crate::ipvsadm::Command::AddServer(srv) = &cmds[1] else {
        panic!()
    };
    assert_eq!(
        srv.tunnel,
        rvs_core::Tunnel {
            kind: rvs_core::TunnelKind::Gue,
            port: 6080,
            csum: rvs_core::TunnelCsum::Csum
        }
    );
    for (bad, field) in [
        (
            "method = \"tun\"\ntunnel = \"gue\"",
            "service[0].server[0].tunnel_port",
        ),
        (
            "method = \"tun\"\ntunnel = \"vxlan\"",
            "service[0].server[0].tunnel",
        ),
        (
            "method = \"dr\"\ntunnel = \"gre\"",
            "service[0].server[0].tunnel",
        ),
    ] {
        let e = parse(&format!(
                "{TWO_PORTS}[[service]]\naddress = \"10.0.0.1\"\nport = 80\n[[service.server]]\naddress = \"10.1.0.1\"\n{bad}\n"
            ))
            .unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}

/// An IPv4-mapped IPv6 address anywhere an address is configured is refused at its
/// field, with the IPv4 form to write (no packet carries one: it would only alias).
#[test]
fn ipv4_mapped_addresses_are_refused_at_their_field() {
    let service = "[[service]]\naddress = \"10.0.0.1\"\nport = 80\n\
                       [[service.server]]\naddress = \"10.1.0.1\"\n";
    let text = format!("{TWO_PORTS}{service}");
    assert!(parse(&text).is_ok());
    let line_of = |t: &str, needle: &str| t[..t.find(needle).unwrap()].matches('\n').count() + 1;
    for (from, to, field) in [
        (
            "address = \"10.0.0.1\"",
            "address = \"::ffff:10.0.0.1\"",
            "service[0].address",
        ),
        (
            "address = \"10.1.0.1\"",
            "address = \"::ffff:10.1.0.1\"",
            "service[0].server[0].address",
        ),
        (
            "device = \"net_ring1\"",
            "device = \"net_ring1\"\naddresses = [\"::ffff:10.1.0.254/24\"]",
            "port[1].addresses",
        ),
    ] {
        let bad = text.replace(from, to);
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert_eq!(e.line, Some(line_of(&bad, "::ffff:")), "{e}");
        assert!(
            e.message.contains("IPv4-mapped") && e.message.contains("write 10."),
            "{e}"
        );
    }
    let route = format!("{text}[[route]]\nprefix = \"::ffff:10.9.0.0/112\"\nport = \"b\"\n");
    assert_eq!(parse(&route).unwrap_err().field, "route[0].prefix");
}

/// `[[outgoing]]` member ranges, `[[vip]] unserved` and `ip_forward` reach the
/// snapshot; bad values name the field and line.
#[test]
fn router_settings_reach_the_snapshot() {
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let c = parse(&format!(
            "{TWO_PORTS}[dataplane]\nip_forward = true\nexpire_nodest_conn = true\n\
             [[outgoing]]\nvip = \"10.0.0.1\"\nports = \"33000-33999\"\nmember = \"10.1.0.1\"\n\
             [[outgoing]]\nvip = \"10.0.0.1\"\nports = \"34000-34999\"\nmember = \"10.1.0.2\"\nmethod = \"nat\"\n\
             [[vip]]\naddress = \"10.0.0.9\"\nunserved = \"drop\"\n\
             [[snat]]\nsource = \"10.1.0.0/24\"\nout_port = \"b\"\nto_source = \"10.0.0.7\"\nports = \"20000-29999\"\n\
             [[service]]\naddress = \"10.0.0.1\"\nport = 80\nproxy_protocol = true\n[[service.server]]\naddress = \"10.1.0.5\"\n\
             [[fwmark]]\nmark = 5\nprotocol = \"any\"\naddress = \"10.3.0.0/16\"\nports = \"1000-1999\"\nsource = \"192.0.2.0/24\"\n\
             [[service]]\naddress = \"10.3.0.1\"\nport = 7\ngroup = 5\n[[service.server]]\naddress = \"10.1.0.6\"\n"
        ))
        .unwrap();
    assert!(c.full_nat, "a full-NAT service makes room for local ends");
    let snap = c.lb.snapshot(Vec::new());
    let rule = snap.snat[0];
    assert_eq!(
        (rule.out_port, rule.ports, rule.proto),
        (Some(1), (20000, 29999), None)
    );
    assert!(rule.matches(17, ip("10.1.0.3"), ip("192.0.2.1"), 1));
    assert!(!rule.matches(17, ip("10.2.0.3"), ip("192.0.2.1"), 1));
    assert!(snap.is_local_end(ip("10.0.0.7")));
    let marked = snap
        .service_for_packet(17, ip("192.0.2.9"), ip("10.3.44.1"), 1500)
        .unwrap();
    assert_eq!(marked.group, Some(5));
    assert!(snap
        .service_for_packet(17, ip("192.0.3.9"), ip("10.3.44.1"), 1500)
        .is_none());
    let fnat = snap.services[0].full_nat.as_ref().unwrap();
    assert!(fnat.proxy_protocol && !fnat.proxy_v1 && fnat.locals().is_empty());
    // The version by name; another value is refused at its field.
    let with = |v: &str| {
        parse(&format!(
                "{TWO_PORTS}[[service]]\naddress = \"10.0.0.1\"\nport = 25\nproxy_protocol = {v}\n[[service.server]]\naddress = \"10.1.0.5\"\n"
            ))
    };
    let v1 = with("\"v1\"").unwrap().lb.snapshot(Vec::new());
    let fnat = v1.services[0].full_nat.as_ref().unwrap();
    assert!(fnat.proxy_protocol && fnat.proxy_v1);
    let v2 = with("\"v2\"").unwrap().lb.snapshot(Vec::new());
    assert!(!v2.services[0].full_nat.as_ref().unwrap().proxy_v1);
    assert!(with("false").unwrap().lb.snapshot(Vec::new()).services[0]
        .full_nat
        .is_none());
    let e = with("\"v3\"").unwrap_err().to_string();
    assert!(
        e.contains("service[0].proxy_protocol") && e.contains("\"v3\""),
        "{e}"
    );
    assert!(snap.ip_forward);
    assert!(snap.expire_nodest_conn && !snap.expire_quiescent_template);
    assert!(snap.is_vip(ip("10.0.0.1")));
    let m = snap.member_for(6, ip("10.0.0.1"), 34500).unwrap();
    assert_eq!((m.member, m.nat), (ip("10.1.0.2"), true));
    assert_eq!(
        snap.member_for(6, ip("10.0.0.1"), 33000).unwrap().member,
        ip("10.1.0.1")
    );
    assert!(snap.member_for(17, ip("10.0.0.1"), 33000).is_none());
    assert!(snap.drops_unserved(ip("10.0.0.9")));
    assert!(!snap.drops_unserved(ip("10.0.0.1")));
    for (bad, field) in [
            ("[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"34000\"\nmember = \"10.1.0.1\"\n", "outgoing[0].ports"),
            ("[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"1-9\"\nmember = \"10.1.0.1\"\nmethod = \"tun\"\n", "outgoing[0].method"),
            ("[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"1-9\"\nmember = \"10.1.0.1\"\n[[outgoing]]\nvip = \"10.0.0.1\"\nports = \"9-20\"\nmember = \"10.1.0.2\"\n", "outgoing[1].ports"),
            ("[[vip]]\naddress = \"10.0.0.9\"\nunserved = \"reject\"\n", "vip[0].unserved"),
            ("[[snat]]\nout_port = \"c\"\n", "snat[0].out_port"),
            ("[[fwmark]]\nmark = 1\naddress = \"10.0.0.0/8\"\nports = \"5-1\"\n", "fwmark[0].ports"),
            ("[[fwmark]]\nmark = 1\naddress = \"10.0.0.0/8\"\nsource = \"::/0\"\n", "fwmark[0].source"),
            ("[[snat]]\nports = \"9-1\"\n", "snat[0].ports"),
            ("[[snat]]\nsource = \"10.0.0.0/33\"\n", "snat[0].source"),
        ] {
            let e = parse(&format!("{TWO_PORTS}{bad}")).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.line.is_some(), "{e}");
        }
}

/// `[dataplane] ftp_ports`: the helper's ports; bad lists name the field and line.
#[test]
fn ftp_ports_are_read_and_checked() {
    let c = parse(TWO_PORTS).unwrap();
    assert_eq!(c.ftp_ports, [0; rvs_core::engine::FTP_PORTS_MAX]);
    let c = parse(&format!("{TWO_PORTS}[dataplane]\nftp_ports = [21, 2121]\n")).unwrap();
    assert_eq!(c.ftp_ports[..3], [21, 2121, 0]);
    for (bad, says) in [
        ("[21, 0]", "port 0"),
        ("[21, 21]", "named twice"),
        ("[1, 2, 3, 4, 5, 6, 7, 8, 9]", "at most 8"),
    ] {
        let e = parse(&format!("{TWO_PORTS}[dataplane]\nftp_ports = {bad}\n")).unwrap_err();
        assert_eq!(e.field, "dataplane.ftp_ports", "{e}");
        assert!(e.line.is_some() && e.to_string().contains(says), "{e}");
    }
}

/// The TOML VRRP sections mean what keepalived.conf's do; errors name the table.
#[test]
fn vrrp_sections_read_as_keepalived_reads_them() {
    let toml_text = format!(
        r#"{TWO_PORTS}
[vrrp]
version = 3
lvs_sync_daemon = "a VI_1 id 9"
garp_extra_if = "100 all"
startup_script = "/bin/true"
startup_script_timeout = 5

[mail]
smtp_server = "192.168.200.1 2525"
notification_email = ["ops@example.com", "noc@example.com"]
notification_email_from = "lvs@example.com"
smtp_connect_timeout = 10
router_id = "LVS_1"
smtp_alert_vrrp = true
no_email_faults = true
no_checker_emails = false

[[vrrp_script]]
name = "chk"
script = "/bin/nc -z 127.0.0.1 53"
interval = 2
weight = -20

[[vrrp_instance]]
name = "VI_1"
state = "MASTER"
interface = "a"
virtual_router_id = 5
priority = 150
advert_int = 1
preempt_delay = 10
virtual_ipaddress = ["10.2.1.5/24 dev a", "10.2.1.6"]
track_script = ["chk weight -30"]
track_bfd = ["gw weight 0"]
notify = ["/etc/keepalived/notify.sh", "root"]
virtual_rules = ["from 10.2.1.5 table 100 priority 100"]
smtp_alert = false

[[bfd_instance]]
name = "gw"
neighbor_ip = "10.2.1.1"
min_rx = 50
multiplier = 3
weight = [-20, "reverse"]

[[vrrp_sync_group]]
name = "G"
group = ["VI_1"]

[[garp_group]]
garp_interval = 0.1
interfaces = ["a", "b"]

[[rule]]
from = "10.9.0.0/16"
not = true
priority = 50
table = "main"
"#
    );
    let keepalived_text = r#"
global_defs {
    vrrp_version 3
    lvs_sync_daemon a VI_1 id 9
    vrrp_garp_extra_if 100 all
    startup_script /bin/true
    startup_script_timeout 5
    smtp_server 192.168.200.1 2525
    notification_email {
        ops@example.com
        noc@example.com
    }
    notification_email_from lvs@example.com
    smtp_connect_timeout 10
    router_id LVS_1
    smtp_alert_vrrp
    no_email_faults
    no_checker_emails false
}
vrrp_script chk {
    script "/bin/nc -z 127.0.0.1 53"
    interval 2
    weight -20
}
vrrp_instance VI_1 {
    state MASTER
    interface a
    virtual_router_id 5
    priority 150
    advert_int 1
    preempt_delay 10
    virtual_ipaddress {
        10.2.1.5/24 dev a
        10.2.1.6
    }
    track_script { chk weight -30 }
    track_bfd { gw weight 0 }
    notify /etc/keepalived/notify.sh root
    virtual_rules {
        from 10.2.1.5 table 100 priority 100
    }
    smtp_alert off
}
bfd_instance gw {
    neighbor_ip 10.2.1.1
    min_rx 50
    multiplier 3
    weight -20 reverse
}
static_rules {
    not from 10.9.0.0/16 priority 50 table main
}
vrrp_sync_group G { group { VI_1 } }
garp_group {
    garp_interval 0.1
    interfaces {
        a
        b
    }
}
"#;
    let mut from_toml = parse(&toml_text).unwrap().vrrp;
    // keepalived drops the weighted script of a sync group's member; the TOML's VRRP
    // keeps its warnings, the keepalived.conf's are the file's.
    assert_eq!(
            from_toml.warnings,
            ["t.toml:38: vrrp_instance VI_1: ignoring tracked script chk with weight -30 due to SYNC group"]
        );
    from_toml.warnings.clear();
    let mut from_keepalived = crate::keepalived::KeepalivedConf::parse("k.conf", keepalived_text)
        .unwrap()
        .vrrp_conf;
    // Where each came from differs; what they say must not.
    let i = &mut from_keepalived.instances[0];
    i.at = from_toml.instances[0].at.clone();
    for (a, t) in i
        .addresses
        .iter_mut()
        .zip(&from_toml.instances[0].addresses)
    {
        a.at = t.at.clone();
    }
    from_keepalived.bfd_instances[0].at = from_toml.bfd_instances[0].at.clone();
    from_keepalived.instances[0].rules[0].at = from_toml.instances[0].rules[0].at.clone();
    from_keepalived.static_rules[0].at = from_toml.static_rules[0].at.clone();
    assert_eq!(from_toml, from_keepalived);
    assert_eq!(
        from_toml.static_rules[0].to_string(),
        "50: not from 10.9.0.0/16 table 254"
    );
    let start = from_toml.startup_script.as_ref().unwrap();
    assert_eq!(
        (start.script.command.as_str(), start.timeout.as_secs()),
        ("/bin/true", 5)
    );
    // One startup_script: the TOML's and the keepalived.conf's may not both name one.
    let scripted = || crate::vrrp::VrrpConf {
        startup_script: from_toml.startup_script.clone(),
        ..Default::default()
    };
    let e = scripted().merge(scripted()).unwrap_err();
    assert!(e.contains("startup_script: set in both files"), "{e}");
    // Mail: read alike (an instance's explicit no included); one file configures it.
    assert_eq!(
        from_toml.mail.server,
        Some("192.168.200.1:2525".parse().unwrap())
    );
    assert_eq!(from_toml.instances[0].smtp_alert, Some(false));
    let mailing = || crate::vrrp::VrrpConf {
        mail: from_toml.mail.clone(),
        ..Default::default()
    };
    let e = mailing().merge(mailing()).unwrap_err();
    assert!(e.contains("e-mail alerts"), "{e}");
    for (line, field, said) in [
        (
            "smtp_server = \"10.0.0.1 x\"",
            "mail.smtp_server",
            "Invalid smtp server 10.0.0.1 x",
        ),
        (
            "smtp_alert = \"maybe\"",
            "mail.smtp_alert",
            "Invalid value 'maybe'",
        ),
        (
            "notification_email = \"a@b\"",
            "mail.notification_email",
            "a list of addresses",
        ),
        (
            "smtp_sever = \"10.0.0.1\"",
            "mail.smtp_sever",
            "unknown key",
        ),
    ] {
        let e = parse(&format!("{TWO_PORTS}\n[mail]\n{line}\n")).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains(said) && e.line.is_some(), "{e}");
    }
    assert!(from_toml.instances[0].at.starts_with("t.toml:"));
    let b = &from_toml.bfd_instances[0];
    assert_eq!(
        (b.min_rx, b.multiplier, b.weight, b.reverse),
        (50_000, 3, -20, true)
    );
    // Weight 0 stays in a sync group; without `noreverse` the definition's reverse.
    let t = &from_toml.instances[0].track_bfds[0];
    assert_eq!(
        (t.name.as_str(), t.weight, t.reverse),
        ("gw", Some(0), true)
    );
    assert_eq!(from_toml.garp_groups[0].interfaces, ["a", "b"]);
    assert!(from_toml.instances[0].garp_extra_if.is_some());
    let e = parse(&format!(
            "{TWO_PORTS}\n[[vrrp_instance]]\nname = \"V\"\ninterface = \"a\"\nvirtual_router_id = 300\nvirtual_ipaddress = [\"10.0.0.1\"]\n"
        ))
        .unwrap_err();
    assert_eq!(e.line, Some(15), "the table's line: {e}");
    assert!(e.to_string().contains("virtual_router_id"), "{e}");
    let e = parse(&format!(
        "{TWO_PORTS}\n[[vrrp_instance]]\ninterface = \"a\"\n"
    ))
    .unwrap_err();
    assert!(e.to_string().contains("vrrp_instance[0]: a name"), "{e}");
    // A [[rule]] names its field; what keepalived would leave out is an error.
    for (rule, field, message) in [
        (
            "from = \"10.0.0.0/8\"\ntable = 100",
            "rule[0].priority",
            "a preference is required",
        ),
        ("priority = 5\ntable = 0", "rule[0]", "Table 0 is not valid"),
        (
            "priority = 5\ntable = 100\nfwmark = \"3/y\"",
            "rule[0]",
            "Invalid rule fwmark 3/y",
        ),
        (
            "priority = 5\ntable = 100\nipproto = \"nonesuch\"",
            "rule[0].ipproto",
            "Invalid ipproto nonesuch",
        ),
        (
            "priority = 5\ntable = 100\nsport = 0",
            "rule[0]",
            "Invalid sport range 0-0",
        ),
        (
            "priority = 5\ntable = 100\nuidrange = \"0-1\"",
            "rule[0].uidrange",
            "unknown key",
        ),
        (
            "priority = 5\naction = \"drop\"",
            "rule[0].action",
            "expected \"nop\"",
        ),
        (
            "priority = 5\nfrom = \"10.0.0.0/8\"",
            "rule[0]",
            "No action specified",
        ),
    ] {
        let e = parse(&format!("{TWO_PORTS}\n[[rule]]\n{rule}\n")).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), (field, Some(15)), "{e}");
        assert!(e.to_string().contains(message), "{e}");
    }
    // A route in another table: by number or by rt_tables name.
    let c = parse(&format!(
            "{TWO_PORTS}\n[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"10.0.0.254\"\nport = \"a\"\ntable = 100\n\n[[route]]\nprefix = \"10.8.0.0/16\"\nvia = \"10.0.0.254\"\nport = \"a\"\ntable = \"main\"\n"
        ))
        .unwrap();
    let tables: Vec<u32> = c.lb.routes.iter().map(|r| r.table).collect();
    assert_eq!(tables, [100, 254]);
    let e = parse(&format!(
        "{TWO_PORTS}\n[[route]]\nprefix = \"0.0.0.0/0\"\nport = \"a\"\ntable = \"no_such_table\"\n"
    ))
    .unwrap_err();
    assert_eq!(e.field, "route[0].table", "{e}");
}

#[test]
fn defaults_pair_ports_and_spread_queues() {
    let c = parse(TWO_PORTS).unwrap();
    assert_eq!(c.eal.lcores, vec![0, 1, 2]);
    assert_eq!(c.eal.hugepages, Hugepages::Off);
    assert_eq!(c.forward, ForwardMode::Io);
    assert_eq!((c.ports[0].peer, c.ports[1].peer), (1, 0));
    assert_eq!(
        c.workers,
        vec![
            WorkerConfig {
                lcore: 1,
                rx: vec![(0, 0), (1, 0)]
            },
            WorkerConfig {
                lcore: 2,
                rx: vec![(0, 1)]
            },
        ]
    );
    assert_eq!(c.ports[1].line, 12);
}

/// `af_xdp:IFACE` becomes DPDK's devargs with a queue per worker and 4,096-entry
/// rings; ports reading kernel devices complete partial checksums unless told not to.
#[test]
fn af_xdp_ports_take_their_shape_from_the_workers() {
    let text = "[eal]\nlcores = \"0-2\"\nhugepages = false\n\n[[port]]\nname = \"out\"\ndevice = \"af_xdp:eth1\"\n\n[[port]]\nname = \"in\"\ndevice = \"net_af_packet0,iface=eth2\"\nrx_queues = 2\ncomplete_checksums = false\n";
    let c = parse(text).unwrap();
    let out = &c.ports[0];
    assert_eq!(
        out.device,
        "net_af_xdp0,iface=eth1,start_queue=0,queue_count=2"
    );
    assert_eq!((out.rx_queues, out.rx_desc, out.tx_desc), (2, 4096, 4096));
    assert_eq!(
        out.kernel,
        Some(KernelDevice {
            socket: KernelSocket::AfXdp,
            iface: "eth1".into()
        })
    );
    assert!(out.complete_checksums);
    let inside = &c.ports[1];
    assert_eq!(
        inside.kernel.as_ref().map(|k| k.socket),
        Some(KernelSocket::AfPacket)
    );
    assert_eq!((inside.rx_desc, inside.complete_checksums), (1024, false));
    assert!(!parse(TWO_PORTS).unwrap().ports[0].complete_checksums);

    // DPDK's own devargs get the queue count the workers need.
    let devargs = text.replace("af_xdp:eth1", "net_af_xdp0,iface=eth1");
    assert_eq!(
        parse(&devargs).unwrap().ports[0].device,
        "net_af_xdp0,iface=eth1,queue_count=2"
    );

    let e = parse(&text.replace(
        "device = \"af_xdp:eth1\"",
        "device = \"af_xdp:eth1\"\nrx_queues = 1",
    ))
    .unwrap_err();
    assert_eq!(e.field, "port[0].rx_queues");
    assert!(
        e.message.contains("2 worker(s) need 2 rx queue(s), not 1"),
        "{e}"
    );
    let e = parse(&text.replace(
        "device = \"af_xdp:eth1\"",
        "device = \"af_xdp:eth1\"\nrx_desc = 3000",
    ))
    .unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(8), "port[0].rx_desc"));
    assert!(e.message.contains("power of two"), "{e}");
    let e = parse(&text.replace("af_xdp:eth1", "af_xdp:eth 1")).unwrap_err();
    assert_eq!(e.field, "port[0].device");
}

fn parse_with_cores(text: &str, n: usize) -> Result<Config, ConfigError> {
    Config::parse_with_cores(
        Source {
            file: "t.toml".into(),
            text: text.into(),
        },
        Some(n),
    )
}

/// testpmd's `--nb-cores`: the queues spread over the first N worker lcores; AF_XDP ports
/// take their queue count from them; out of range, or against [[worker]] sections, refused
/// with the line of what sets the cores.
#[test]
fn nb_cores_forward_on_the_first_worker_lcores() {
    let workers = |c: &Config| -> Vec<(u32, Vec<(usize, u16)>)> {
        c.workers.iter().map(|w| (w.lcore, w.rx.clone())).collect()
    };
    let all = parse(TWO_PORTS).unwrap();
    assert_eq!(
        workers(&all),
        vec![(1, vec![(0, 0), (1, 0)]), (2, vec![(0, 1)])]
    );
    let one = parse_with_cores(TWO_PORTS, 1).unwrap();
    assert_eq!(workers(&one), vec![(1, vec![(0, 0), (0, 1), (1, 0)])]);
    assert_eq!(
        workers(&parse_with_cores(TWO_PORTS, 2).unwrap()),
        workers(&all)
    );
    // The EAL keeps every lcore (the others idle, as testpmd's).
    assert_eq!(one.eal.lcores, vec![0, 1, 2]);

    for n in [0, 3] {
        let e = parse_with_cores(TWO_PORTS, n).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("t.toml:3: eal.lcores: --nb-cores={n}: nb-cores should be > 0 and <= 2 (the worker lcores here; the first lcore is the main one)")
        );
    }

    let af_xdp = "[eal]\nlcores = \"0-2\"\nhugepages = false\n\n[[port]]\nname = \"out\"\ndevice = \"af_xdp:eth1\"\n";
    let c = parse_with_cores(af_xdp, 1).unwrap();
    assert_eq!(c.ports[0].rx_queues, 1);
    assert_eq!(
        c.ports[0].device,
        "net_af_xdp0,iface=eth1,start_queue=0,queue_count=1"
    );
    assert_eq!(parse(af_xdp).unwrap().ports[0].rx_queues, 2);

    let listed = format!(
        "{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a\"]\n[[worker]]\nlcore = 2\nrx = [\"b:0\"]\n"
    );
    assert_eq!(
        workers(&parse_with_cores(&listed, 2).unwrap()),
        workers(&parse(&listed).unwrap())
    );
    let e = parse_with_cores(&listed, 1).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(16), "worker"));
    assert!(
        e.message
            .starts_with("--nb-cores=1: the [[worker]] sections give 2 forwarding core(s)"),
        "{e}"
    );
}

#[test]
fn explicit_workers_must_cover_every_queue_once() {
    let ok = format!(
        "{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a\"]\n[[worker]]\nlcore = 2\nrx = [\"b:0\"]\n"
    );
    let c = parse(&ok).unwrap();
    assert_eq!(c.workers[0].rx, vec![(0, 0), (0, 1)]);
    assert_eq!(c.workers[1].rx, vec![(1, 0)]);

    let missing = format!("{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a:0\", \"b:0\"]\n");
    let e = parse(&missing).unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.toml:9: port[0].rx_queues: rx queue a:1 is polled by no worker"
    );

    let twice = format!("{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a\", \"b\"]\n[[worker]]\nlcore = 2\nrx = [\"a:1\"]\n");
    let e = parse(&twice).unwrap_err();
    assert_eq!(e.line, Some(20));
    assert!(
        e.message.contains("a:1 is already polled by worker[0]"),
        "{e}"
    );

    let main = format!("{TWO_PORTS}\n[[worker]]\nlcore = 0\nrx = [\"a\", \"b\"]\n");
    let e = parse(&main).unwrap_err();
    assert_eq!(e.field, "worker[0].lcore");
    assert!(e.message.contains("main lcore"), "{e}");

    let bad_queue = format!("{TWO_PORTS}\n[[worker]]\nlcore = 1\nrx = [\"a:5\"]\n");
    assert!(parse(&bad_queue)
        .unwrap_err()
        .message
        .contains("has 2 rx queue(s)"));
}

#[test]
fn unknown_field_names_line_and_field() {
    let text = TWO_PORTS.replace("rx_queues = 2", "rx_queues = 2\nspeed = 10");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line, Some(10));
    assert_eq!(e.field, "port[0].speed");
    assert!(e.message.contains("unknown field `speed`"), "{e}");
}

#[test]
fn wrong_type_names_line_and_field() {
    let text = TWO_PORTS.replace("rx_queues = 2", "rx_queues = \"two\"");
    let e = parse(&text).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(9), "port[0].rx_queues"));
    assert!(e.message.contains("invalid type"), "{e}");
    let e = parse(&TWO_PORTS.replace("rx_queues = 2", "rx_queues = 70000")).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(9), "port[0].rx_queues"));
}

#[test]
fn bad_values_are_named() {
    let cases = [
            (
                TWO_PORTS.replace("0-2", "2-0"),
                "eal.lcores",
                "runs backwards",
            ),
            (
                TWO_PORTS.replace("0-2", "0"),
                "eal.lcores",
                "at least one worker",
            ),
            (
                TWO_PORTS.replace("hugepages = false", "hugepages = \"maybe\""),
                "eal.hugepages",
                "true, false or \"auto\"",
            ),
            (
                TWO_PORTS.replace("hugepages = false", "log_level = \"loud\""),
                "eal.log_level",
                "unknown level",
            ),
            (
                TWO_PORTS.replace("name = \"b\"", "name = \"a\""),
                "port[1].name",
                "used twice",
            ),
            (
                TWO_PORTS.replace("net_ring1", "net_ring0"),
                "port[1].device",
                "already port[0]",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "rx_queues = 0"),
                "port[0].rx_queues",
                "1..=64",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "peer = \"c\""),
                "port[0].peer",
                "no port named \"c\"",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "rss_hash = [\"ip\", \"mac\"]"),
                "port[0].rss_hash",
                "unknown hash field \"mac\"",
            ),
            (
                format!("{TWO_PORTS}[log]\nlevel = \"loud\"\n"),
                "log.level",
                "one of error, warning, notice, info, debug",
            ),
            (
                format!("{TWO_PORTS}[log]\ntarget = \"file\"\n"),
                "log.target",
                "\"stderr\" or \"syslog\"",
            ),
            (
                format!("{TWO_PORTS}[metrics]\nlisten = \"localhost\"\n"),
                "metrics.listen",
                "not an address and port",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "faces = \"routers\""),
                "port[0].faces",
                "\"clients\" or \"servers\"",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "rss_key = \"zz\""),
                "port[0].rss_key",
                "hex",
            ),
            (
                TWO_PORTS.replace("rx_queues = 2", "mtu = 20"),
                "port[0].mtu",
                "at least 68",
            ),
            (
                format!("{TWO_PORTS}[dataplane]\nforward = \"fast\"\n"),
                "dataplane.forward",
                "lb, io, macswap",
            ),
            (
                TWO_PORTS.replace("0-2", "0-4294967295"),
                "eal.lcores",
                "lcores go up to",
            ),
            (
                format!("{TWO_PORTS}[timeouts]\ntcp = 4294967295\n"),
                "timeouts.tcp",
                "at most 2678400 seconds",
            ),
            (
                format!("{TWO_PORTS}[[service]]\naddress = \"10.0.0.1\"\nport = 80\npersistence = 4294967295\n"),
                "service[0].persistence",
                "from 1 to 2678400 seconds",
            ),
        ];
    for (text, field, needle) in cases {
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains(needle), "{e} lacks {needle:?}");
        assert!(e.line.is_some(), "{e}");
    }
}

#[test]
fn missing_sections_and_files() {
    let e = parse("[eal]\nlcores = \"0,1\"\n").unwrap_err();
    assert!(e.message.contains("no [[port]]"), "{e}");
    let e = parse("[[port]]\nname = \"a\"\n").unwrap_err();
    assert!(e.message.contains("missing field `device`"), "{e}");
    assert_eq!(e.field, "port[0]");
    let e = Config::load(Path::new("/nonexistent/rvs.toml")).unwrap_err();
    assert_eq!(e.line, None);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/rvs.toml: cannot read the config file"),
        "{e}"
    );
}

#[test]
fn helpers() {
    assert_eq!(parse_lcore_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
    assert!(parse_lcore_list("1,1").is_err());
    assert!(parse_lcore_list("x").is_err());
    // Refused before anything is expanded (not four billion numbers first).
    let e = parse_lcore_list("0-4294967295").unwrap_err();
    assert_eq!(e, "lcores go up to 127");
    assert!(is_pci_address("0000:03:00.0"));
    assert!(is_pci_address("03:00.1"));
    assert!(!is_pci_address("net_ring0"));
    assert_eq!(parse_hex("6d:5a:01").unwrap(), vec![0x6d, 0x5a, 1]);
    assert!(parse_hex("abc").is_none());
}
