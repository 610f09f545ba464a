//! The host exception path: a data port (net_tap whose kernel side is moved into a
//! namespace, the "wire") with a host TAP twin. The host kernel owns the appliance's
//! address through the twin: it pings and opens TCP connections to a machine on the wire,
//! the machine pings the appliance's address, and a keepalived TCP_CHECK run by rvs reaches
//! a real server over the data port; a VRRP instance tracks a kernel interface (a veth)
//! with interface_up_down_delays. Needs root; every wait is bounded.

use rvs_testkit::netns::Netns;
use rvs_testkit::wait::wait_for;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Lab {
    netns: Netns,
    rvs: Option<Child>,
    helpers: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in self.helpers.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut c) = self.rvs.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

fn run(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

#[test]
fn the_host_kernel_reaches_the_wire_through_its_twin() {
    let pid = std::process::id();
    let (wire, twin) = (
        format!("rvsw{}", pid % 100_000),
        format!("rvsh{}", pid % 100_000),
    );
    let netns = Netns::new("rvstwin");
    let (ns, dir) = (netns.ns.clone(), netns.dir.clone());
    let mut lab = Lab {
        netns,
        rvs: None,
        helpers: Vec::new(),
    };
    // A kernel interface (no data port; a veth) an instance tracks, its downs counted after
    // 2 s.
    let tracked = format!("rvsdk{}", pid % 100_000);
    let _tracked_guard = rvs_testkit::netns::LinkGuard(tracked.clone());
    let o = run(&format!(
        "ip link add {tracked} type veth peer name {tracked}p && ip link set {tracked}p up && ip link set {tracked} up"
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Policy routing: a table and rule preferences of this test's own on the host.
    let (table, pref) = (21_000 + pid % 1000, 21_000 + pid % 1000);
    // Alerts: VK mails its states (its smtp_alert), VK2 none.
    let sink = rvs_testkit::smtp::Sink::start("127.0.0.1:0");
    let keepalived = dir.join("keepalived.conf");
    std::fs::write(
        &keepalived,
        format!(
            "global_defs {{\n  router_id TWIN\n  notification_email {{\n    ops@example.com\n  }}\n  smtp_server 127.0.0.1 {mail_port}\n}}\n\
             static_ipaddress {{\n  10.214.0.9/24\n}}\nstatic_routes {{\n  10.215.0.0/24 via 10.214.0.2\n  0.0.0.0/0 via 10.214.0.2 table {table}\n}}\n\
             static_rules {{\n  from 10.214.0.9 table {table} priority {pref}\n}}\n\
             virtual_server 192.0.2.50 80 {{\n  protocol TCP\n  alpha\n  delay_loop 1\n  connect_timeout 1\n  warmup 0\n  real_server 10.214.0.2 7000 {{\n    TCP_CHECK {{ }}\n  }}\n}}\n\
             interface_up_down_delays {{\n  {tracked} 2\n}}\n\
             vrrp_instance VK {{\n  interface wire\n  virtual_router_id 77\n  priority 100\n  advert_int 1\n  smtp_alert\n  virtual_ipaddress {{\n    10.214.0.77/24\n  }}\n  track_interface {{\n    {tracked}\n  }}\n  virtual_rules {{\n    from 10.214.0.77 table {table} priority {vpref}\n  }}\n}}\n\
             vrrp_instance VK2 {{\n  interface wire\n  virtual_router_id 78\n  priority 100\n  advert_int 1\n  mcast_src_ip 10.214.0.9\n  virtual_ipaddress {{\n    10.214.0.78/24\n  }}\n}}\n",
            vpref = pref + 1,
            mail_port = sink.addr.port(),
        ),
    )
    .unwrap();
    let config = dir.join("rvs.toml");
    let socket = dir.join("rvs.sock");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            r#"[eal]
lcores = "0,1"
hugepages = false
memory_mb = 256
file_prefix = "rvs-twin-{pid}"

[control]
socket = "{}"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[[port]]
name = "wire"
device = "net_tap{},iface={wire}"
addresses = ["10.214.0.1/24", "fd00:214::1/64"]
host_tap = "{twin}"
"#,
            socket.display(),
            pid % 1000
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("rvs.log")).unwrap();
    lab.rvs = Some(
        Command::new(env!("CARGO_BIN_EXE_rvs"))
            .arg("--config")
            .arg(&config)
            .arg("--keepalived-conf")
            .arg(&keepalived)
            // keepalived's dump files (its STATS signal) go here.
            .env("TMPDIR", &dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(dir.join("rvs.log")).unwrap_or_default();
    wait_for("rvs to forward", Duration::from_secs(30), || {
        log_text().contains("forwarding;")
    });
    assert!(
        log_text().contains(&format!("host twin {twin}")),
        "{}",
        log_text()
    );
    // The host never names a VIP it holds in an ARP request (arp_announce 2).
    let announce = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{twin}/arp_announce"));
    assert_eq!(announce.unwrap_or_default().trim(), "2");
    // Nothing heard on the segment changes the host's routes: no router advertisements,
    // no redirects.
    for key in [
        format!("/proc/sys/net/ipv4/conf/{twin}/accept_redirects"),
        format!("/proc/sys/net/ipv6/conf/{twin}/accept_ra"),
        format!("/proc/sys/net/ipv6/conf/{twin}/accept_redirects"),
        format!("/proc/sys/net/ipv6/conf/{twin}/accept_dad"),
    ] {
        let value = std::fs::read_to_string(&key).unwrap_or_default();
        assert_eq!(value.trim(), "0", "{key}");
    }
    // The twin's IPv6 addresses are usable at once (no detection keeps them tentative, so
    // a routing daemon's session never starts from the link-local address alone).
    let v6 = String::from_utf8_lossy(&run(&format!("ip -6 -o addr show dev {twin}")).stdout)
        .into_owned();
    assert!(
        v6.contains("fd00:214::1/64") && v6.contains("fe80::") && !v6.contains("tentative"),
        "{v6}"
    );
    // The wire's kernel side goes into the namespace, with a MAC of its own.
    for c in [
        format!("ip link set {wire} netns {ns}"),
        format!("ip -n {ns} link set {wire} address 02:de:00:00:ee:02"),
        format!("ip -n {ns} addr add 10.214.0.2/24 dev {wire}"),
        format!("ip -n {ns} link set {wire} up"),
        format!("ip -n {ns} link set lo up"),
    ] {
        let o = run(&c);
        assert!(
            o.status.success(),
            "{c}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The twin carries the appliance's address on the host.
    let addr = run(&format!("ip -o addr show dev {twin}"));
    assert!(
        String::from_utf8_lossy(&addr.stdout).contains("10.214.0.1/24"),
        "{}",
        String::from_utf8_lossy(&addr.stdout)
    );

    // keepalived's static_routes: in the data plane and on the twin, so the host reaches
    // a network behind the machine on the wire.
    let rvsadm_routes = Command::new(rvs_testkit::bins::sibling(
        env!("CARGO_BIN_EXE_rvs"),
        "rvsadm",
    ))
    .arg("--routes")
    .env("RVS_SOCKET", &socket)
    .output()
    .unwrap();
    let routes = String::from_utf8_lossy(&rvsadm_routes.stdout);
    assert!(
        routes.lines().any(|l| l
            .split_whitespace()
            .eq(["10.215.0.0/24", "10.214.0.2", "wire"])),
        "{routes}"
    );
    // testpmd's `show port N ptypes`: what the tap driver can classify (rvs asked it at
    // start to classify nothing; the driver has no such switch, and said so by success).
    // DPDK's names end in a space, which testpmd prints too.
    let ptypes = Command::new(rvs_testkit::bins::sibling(
        env!("CARGO_BIN_EXE_rvs"),
        "rvsadm",
    ))
    .args(["--console", "show", "port", "0", "ptypes"])
    .env("RVS_SOCKET", &socket)
    .output()
    .unwrap();
    let ptypes = String::from_utf8_lossy(&ptypes.stdout);
    assert!(
        ptypes.starts_with("Supported L2 ptypes:\nL2_ETHER \n")
            && ptypes.contains("Supported L3 ptypes:\nL3_IPV4 \n")
            && ptypes.contains("\nL4_TCP \n")
            && ptypes.contains("Tunnel ptypes unsupported\n"),
        "{ptypes}"
    );
    assert!(
        !log_text().contains("Failed to disable Ptype parsing"),
        "{}",
        log_text()
    );
    // testpmd's `dump mempool`: DPDK's own dump of the data pool.
    let dump = Command::new(rvs_testkit::bins::sibling(
        env!("CARGO_BIN_EXE_rvs"),
        "rvsadm",
    ))
    .args(["--console", "dump", "mempool", "rvs_mbufs_s0"])
    .env("RVS_SOCKET", &socket)
    .output()
    .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dump.starts_with("mempool <rvs_mbufs_s0>@") && dump.contains("\n  size="),
        "{dump}"
    );
    let kernel = run("ip route show 10.215.0.0/24");
    assert!(
        String::from_utf8_lossy(&kernel.stdout).contains(&format!("via 10.214.0.2 dev {twin}")),
        "{}",
        String::from_utf8_lossy(&kernel.stdout)
    );
    // Removed by hand, it is put back (keepalived's reinstate_static_route).
    let o = run("ip route del 10.215.0.0/24");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the static route put back", Duration::from_secs(5), || {
        String::from_utf8_lossy(&run("ip route show 10.215.0.0/24").stdout)
            .contains(&format!("via 10.214.0.2 dev {twin}"))
    });
    assert!(
        log_text().contains("static_routes 10.215.0.0/24: removed from the twin by hand; restored"),
        "{}",
        log_text()
    );
    let o = run(&format!("ip -n {ns} addr add 10.215.0.1/32 dev lo"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let behind = run("ping -c 2 -i 0.3 -W 2 10.215.0.1");
    assert!(
        behind.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&behind.stdout),
        log_text()
    );

    // keepalived's static_ipaddress: on the twin (the first data port's, none being named)
    // and answered on the wire (rvs answers ARP for it, the host's kernel the ping).
    let twin_addrs = run(&format!("ip -o addr show dev {twin}"));
    assert!(
        String::from_utf8_lossy(&twin_addrs.stdout).contains("10.214.0.9/24"),
        "{}",
        String::from_utf8_lossy(&twin_addrs.stdout)
    );
    let to_static = run(&format!(
        "ip netns exec {ns} ping -c 2 -i 0.3 -W 2 10.214.0.9"
    ));
    assert!(
        to_static.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&to_static.stdout),
        log_text()
    );
    // Removed by hand, it is put back (keepalived's reinstate_static_address).
    let o = run(&format!("ip addr del 10.214.0.9/24 dev {twin}"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for(
        "the static address put back",
        Duration::from_secs(5),
        || {
            String::from_utf8_lossy(&run(&format!("ip -o addr show dev {twin}")).stdout)
                .contains("10.214.0.9/24")
        },
    );
    assert!(
        log_text().contains(&format!(
            "static_ipaddress 10.214.0.9: removed from {twin} by hand; restored"
        )),
        "{}",
        log_text()
    );

    // Host -> wire: ping, then a TCP exchange.
    let ping = run("ping -c 3 -i 0.3 -W 2 10.214.0.2");
    assert!(
        ping.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&ping.stdout),
        log_text()
    );
    lab.netns.start(
        "echo",
        "socat TCP-LISTEN:7000,fork,reuseaddr 'SYSTEM:echo twin-ok'",
    );
    let mut answer = String::new();
    wait_for(
        "a TCP answer through the twin",
        Duration::from_secs(15),
        || {
            let o = run("socat -T 2 - TCP:10.214.0.2:7000,connect-timeout=2 </dev/null");
            answer = String::from_utf8_lossy(&o.stdout).into_owned();
            answer.contains("twin-ok")
        },
    );
    // Wire -> host: the machine pings the appliance's address; the kernel answers.
    let back = run(&format!(
        "ip netns exec {ns} ping -c 2 -i 0.3 -W 2 10.214.0.1"
    ));
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stdout)
    );

    // rvs's own health check goes the same way: the alpha service gets its server once
    // the TCP_CHECK over the data port succeeds.
    wait_for("the health-checked server", Duration::from_secs(20), || {
        let o = Command::new(rvs_testkit::bins::sibling(
            env!("CARGO_BIN_EXE_rvs"),
            "rvsadm",
        ))
        .args(["-S", "-n"])
        .env("RVS_SOCKET", &socket)
        .output()
        .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .contains("-a -t 192.0.2.50:80 -r 10.214.0.2:7000 -m -w 1")
    });

    // A local real server (the fall-back-to-this-box of the seeds): the VIP goes to the
    // host's stack through the twin, which answers from the VIP.
    let rvsadm = |args: &[&str]| {
        Command::new(rvs_testkit::bins::sibling(
            env!("CARGO_BIN_EXE_rvs"),
            "rvsadm",
        ))
        .args(args)
        .env("RVS_SOCKET", &socket)
        .output()
        .unwrap()
    };
    assert!(rvsadm(&["-A", "-t", "192.0.2.60:7080", "-s", "rr"])
        .status
        .success());
    assert!(
        rvsadm(&["-a", "-t", "192.0.2.60:7080", "-r", "10.214.0.1:7080", "-m"])
            .status
            .success()
    );
    let listing = String::from_utf8_lossy(&rvsadm(&["-L", "-n", "-t", "192.0.2.60:7080"]).stdout)
        .into_owned();
    assert!(
        listing.contains("  -> 10.214.0.1:7080              Local   1"),
        "{listing}"
    );
    // The same through rvsadm as JSON (an rvs extension).
    let json = rvsadm(&["-L", "-n", "--json", "-t", "192.0.2.60:7080"]);
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["services"][0]["servers"][0]["forward"], "Local", "{v}");
    wait_for("the VIP on the twin", Duration::from_secs(10), || {
        String::from_utf8_lossy(&run(&format!("ip -o addr show dev {twin}")).stdout)
            .contains("192.0.2.60/32")
    });
    lab.helpers.push(
        Command::new("socat")
            .args([
                "TCP-LISTEN:7080,bind=192.0.2.60,fork,reuseaddr",
                "SYSTEM:echo local-ok",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        run(&format!("ip -n {ns} route add 192.0.2.0/24 via 10.214.0.1"))
            .status
            .success()
    );
    wait_for(
        "an answer from the local server",
        Duration::from_secs(15),
        || {
            let o = run(&format!(
                "ip netns exec {ns} socat -T 2 - TCP:192.0.2.60:7080,connect-timeout=2 </dev/null"
            ));
            String::from_utf8_lossy(&o.stdout).contains("local-ok")
        },
    );

    // The metrics endpoint counts that connection and the port's packets.
    let scrape = |path: &str| {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(c, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut page = String::new();
        c.read_to_string(&mut page).unwrap();
        page
    };
    let page = scrape("/metrics");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    let value = |prefix: &str| -> u64 {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {page}"))
    };
    let svc = "local_address=\"192.0.2.60\",local_port=\"7080\",local_mark=\"\",proto=\"TCP\"";
    // VK's first state at least, mailed; none given up.
    assert!(
        value("rvs_mail_alerts_total{result=\"sent\"}") >= 1,
        "{page}"
    );
    assert_eq!(
        value("rvs_mail_alerts_total{result=\"failed\"}"),
        0,
        "{page}"
    );
    assert!(
        value(&format!("rvs_service_connections_total{{{svc}}}")) >= 1,
        "{page}"
    );
    assert!(
        value(&format!("rvs_service_incoming_packets_total{{{svc}}}")) >= 3,
        "{page}"
    );
    assert_eq!(
        value(&format!(
            "node_ipvs_backend_weight{{{svc},remote_address=\"10.214.0.1\",remote_port=\"7080\"}}"
        )),
        1
    );
    assert!(
        value("rvs_port_rx_packets_total{port=\"wire\"}") >= 3,
        "{page}"
    );
    // The data pool: its size as `dump mempool` gives it, the tap's rx ring holding
    // buffers from it, the rest free.
    let pool = "{pool=\"rvs_mbufs_s0\",socket=\"0\"}";
    let size = value(&format!("rvs_mbuf_pool_size{pool}"));
    let in_use = value(&format!("rvs_mbuf_pool_in_use{pool}"));
    assert!(
        dump.contains(&format!("\n  size={size}\n")),
        "{size}: {dump}"
    );
    assert!(in_use > 0 && in_use < size, "{page}");
    assert_eq!(
        value(&format!("rvs_mbuf_pool_available{pool}")) + in_use,
        size,
        "{page}"
    );
    assert!(scrape("/nothing").starts_with("HTTP/1.1 404"));

    // keepalived's STATS signal (SIGUSR2): its stats file in $TMPDIR, VK having advertised
    // as master; STATS_CLEAR writes it, then the counts start again; DATA (SIGUSR1) gets a
    // notice, and rvs runs on.
    let pid = lab.rvs.as_ref().unwrap().id().to_string();
    let stats_file = dir.join("keepalived.stats");
    let signal = |name: &str| {
        let n = String::from_utf8_lossy(
            &Command::new(env!("CARGO_BIN_EXE_rvs"))
                .arg(format!("--signum={name}"))
                .output()
                .unwrap()
                .stdout,
        )
        .trim()
        .to_string();
        let _ = std::fs::remove_file(&stats_file);
        assert!(Command::new("kill")
            .args(["-s", &n, &pid])
            .status()
            .unwrap()
            .success());
    };
    let sent = |text: &str| -> u64 {
        let vk = text
            .split("VRRP Instance: ")
            .find(|s| s.starts_with("VK\n"))
            .unwrap_or("");
        vk.lines()
            .find_map(|l| l.strip_prefix("    Sent: "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("VK's Sent in {text}"))
    };
    let read_stats = || {
        let mut text = String::new();
        wait_for("the stats file", Duration::from_secs(5), || {
            text = std::fs::read_to_string(&stats_file).unwrap_or_default();
            text.contains("VRRP Instance: VK2\n")
        });
        text
    };
    // Until VK has been master for a few adverts (it waits out Master_Down_Interval first).
    let mut stats = String::new();
    wait_for("VK to advertise as master", Duration::from_secs(15), || {
        signal("STATS");
        stats = read_stats();
        sent(&stats) >= 3
    });
    assert!(
        stats.contains("VRRP Instance: VK\n  Advertisements:\n    Received: 0\n")
            && stats.contains("  Became master: 1\n  Released master: 0\n"),
        "{stats}"
    );
    let before = sent(&stats);
    signal("STATS_CLEAR");
    assert!(sent(&read_stats()) >= before);
    signal("STATS");
    let after = sent(&read_stats());
    assert!(
        after < before,
        "{after} adverts since the clear, {before} before"
    );
    signal("DATA");
    wait_for("DATA's notice", Duration::from_secs(5), || {
        log_text().contains("DATA (SIGUSR1): keepalived.data is not written by rvs")
    });
    assert!(lab.rvs.as_mut().unwrap().try_wait().unwrap().is_none());

    // SIGHUP reloads both files: a service added to the TOML appears, the keepalived.conf's
    // stays, the one added with rvsadm (in neither file) goes, as keepalived reloads.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[[service]]\nprotocol = \"tcp\"\naddress = \"192.0.2.70\"\nport = 9000\nscheduler = \"wrr\"\n\n[[service.server]]\naddress = \"10.214.0.5\"\nmethod = \"dr\"\n");
    std::fs::write(&config, text).unwrap();
    let pid = lab.rvs.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("the reload", Duration::from_secs(10), || {
        let l = String::from_utf8_lossy(&rvsadm(&["-L", "-n"]).stdout).into_owned();
        l.contains("TCP  192.0.2.70:9000 wrr")
            && l.contains("TCP  192.0.2.50:80")
            && !l.contains("192.0.2.60:7080")
            && log_text().contains("reload: 3 change(s)")
    });
    // The keepalived.conf did not change: its checked server was left alone.
    let l =
        String::from_utf8_lossy(&rvsadm(&["-L", "-n", "-t", "192.0.2.50:80"]).stdout).into_owned();
    assert!(l.contains("  -> 10.214.0.2:7000"), "{l}");
    assert!(
        !log_text().contains("health checkers of the changed keepalived.conf"),
        "{}",
        log_text()
    );

    // keepalived's static_rules and the MASTER's virtual_rules: in the data plane (the
    // listing) and in the host's rules with keepalived's protocol; the table's route on the
    // twin (another table's default route too: only the rules reach it).
    let host_rules = || {
        let o = run(&format!(
            "ip -4 rule show | grep -E '^({pref}|{}):' || true",
            pref + 1
        ));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // VK's once it is MASTER.
    wait_for("VK's rule", Duration::from_secs(10), || {
        host_rules().contains(&format!(
            "{}:\tfrom 10.214.0.77 lookup {table} proto keepalived",
            pref + 1
        ))
    });
    let rules = host_rules();
    assert!(
        rules.contains(&format!(
            "{pref}:\tfrom 10.214.0.9 lookup {table} proto keepalived"
        )),
        "{rules}"
    );
    let routes = String::from_utf8_lossy(&rvsadm(&["--routes"]).stdout).into_owned();
    for line in [
        format!("0.0.0.0/0 10.214.0.2 wire table {table}"),
        format!("rule IPv4 {pref}: from 10.214.0.9/32 table {table}"),
        "rule IPv4 32766: from all table 254".to_string(),
    ] {
        assert!(
            routes
                .lines()
                .any(|l| l.split_whitespace().eq(line.split_whitespace())),
            "{line:?} not in {routes}"
        );
    }
    // Taken out by hand, the static rule is put back (keepalived's "Restoring deleted
    // static rule").
    let o = run(&format!("ip rule del priority {pref}"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the static rule back", Duration::from_secs(5), || {
        host_rules().contains(&format!("{pref}:\tfrom 10.214.0.9 lookup {table}"))
    });
    assert!(
        log_text().contains("removed from the host's rules by hand; restored"),
        "{}",
        log_text()
    );
    let kernel = run(&format!("ip route show table {table}"));
    assert!(
        String::from_utf8_lossy(&kernel.stdout)
            .contains(&format!("default via 10.214.0.2 dev {twin}")),
        "{}",
        String::from_utf8_lossy(&kernel.stdout)
    );
    // A table's route removed by hand is put back too.
    let o = run(&format!("ip route del default table {table}"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the table's route back", Duration::from_secs(5), || {
        String::from_utf8_lossy(&run(&format!("ip route show table {table}")).stdout)
            .contains(&format!("default via 10.214.0.2 dev {twin}"))
    });
    assert!(
        log_text().contains(&format!(
            "static_routes 0.0.0.0/0 table {table}: removed from the twin by hand; restored"
        )),
        "{}",
        log_text()
    );

    // The tracked kernel interface: down counts after its 2 s (not at once), up at once.
    let vk = || {
        String::from_utf8_lossy(&rvsadm(&["--vrrp"]).stdout)
            .lines()
            .find(|l| l.starts_with("VRRP instance VK:"))
            .unwrap_or("")
            .to_string()
    };
    wait_for("VK MASTER", Duration::from_secs(10), || {
        vk().contains(": MASTER for")
    });
    // Two instances on one port, two sources: each advert leaves from its own (one sending
    // socket per source; VRRPv3's checksum and peers' source checks depend on it).
    wait_for("VK2 MASTER", Duration::from_secs(5), || {
        String::from_utf8_lossy(&rvsadm(&["--vrrp"]).stdout)
            .contains("VRRP instance VK2: MASTER for")
    });
    let heard = run(&format!(
        "ip netns exec {ns} timeout 6 tcpdump -l -n -i {wire} -c 6 'ip proto 112' 2>/dev/null"
    ));
    let heard = String::from_utf8_lossy(&heard.stdout).into_owned();
    let from = |src: &str, vrid: &str| {
        heard.lines().any(|l| {
            l.contains(&format!("{src} > 224.0.0.18")) && l.contains(&format!("vrid {vrid},"))
        })
    };
    assert!(
        from("10.214.0.1", "77") && from("10.214.0.9", "78"),
        "{heard}"
    );
    assert!(
        !from("10.214.0.1", "78") && !from("10.214.0.9", "77"),
        "{heard}"
    );
    let o = run(&format!("ip link set {tracked} down"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let downed = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        vk().contains(": MASTER for"),
        "faulted before its delay: {}",
        vk()
    );
    wait_for("VK FAULT", Duration::from_secs(4), || {
        vk().contains(": FAULT for")
    });
    // Out of MASTER, its virtual_rules leave the host's rules (the static ones stay).
    wait_for("VK's rule out", Duration::from_secs(2), || {
        !host_rules().contains(&format!("{}:", pref + 1))
    });
    assert!(
        host_rules().contains(&format!("{pref}:")),
        "{}",
        host_rules()
    );
    let took = downed.elapsed();
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let o = run(&format!("ip link set {tracked} up"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("VK out of FAULT", Duration::from_secs(3), || {
        !vk().contains(": FAULT for")
    });
    wait_for(
        "VK MASTER again, its rule back",
        Duration::from_secs(5),
        || host_rules().contains(&format!("{}:", pref + 1)),
    );

    let mut rvs = lab.rvs.take().unwrap();
    Command::new("kill")
        .args(["-INT", &rvs.id().to_string()])
        .status()
        .unwrap();
    assert!(rvs.wait().unwrap().success(), "{}", log_text());
    assert!(log_text().contains("To-host"), "{}", log_text());
    // VK's states were mailed as it entered them, its stop's before rvs ended; VK2's not.
    let mailed: Vec<String> = sink
        .mails()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: [TWIN] VRRP "))
        })
        .map(String::from)
        .collect();
    let vk = |what: &str| format!("Instance VK - {what}");
    let mut wanted = vec![
        vk("Entering BACKUP state"),
        vk("Entering MASTER state"),
        vk("Entering FAULT state"),
        vk("Entering MASTER state"),
    ]
    .into_iter()
    .peekable();
    for m in &mailed {
        if wanted.peek() == Some(m) {
            wanted.next();
        }
    }
    assert!(
        wanted.peek().is_none() && mailed.first() == Some(&vk("Entering BACKUP state")),
        "{mailed:#?}"
    );
    assert_eq!(mailed.last(), Some(&vk("Stopping")), "{mailed:#?}");
    assert!(!mailed.iter().any(|m| m.contains("VK2")), "{mailed:#?}");
    // The host's rules outlive the twin: rvs took its own out at its end.
    assert_eq!(host_rules(), "", "rules left on the host");
}
