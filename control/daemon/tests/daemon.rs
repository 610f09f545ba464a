//! The `rvs` binary end to end: configuration errors, and packets through `net_pcap` files.

use rvs_testkit::pcap::{read_pcap, write_pcap};
use rvs_testkit::proc::{interrupt, scratch_dir};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The daemon, with a control socket of its own so tests can run side by side.
/// rvs on a TOML (and a keepalived.conf), its output piped.
fn rvs_on(config: &Path, keepalived: Option<&Path>) -> std::process::Child {
    let mut c = rvs();
    c.arg("--config").arg(config);
    if let Some(k) = keepalived {
        c.arg("--keepalived-conf").arg(k);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn rvs() -> Command {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut c = Command::new(env!("CARGO_BIN_EXE_rvs"));
    c.env(
        "RVS_SOCKET",
        std::env::temp_dir().join(format!("rvs-test-{}-{n}.sock", std::process::id())),
    );
    c
}

/// Runs rvs on `config` until `done()` holds (at most 30 s), stops it with SIGINT and gives
/// its standard output; the run must end successfully.
fn run_until(config: &Path, done: impl Fn() -> bool) -> String {
    let child = rvs_on(config, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    interrupt(child)
}

/// Runs rvs on a config that must fail to start; killed after 30 s if it does start.
fn run_config(dir: &Path, text: &str) -> Output {
    let path = dir.join("rvs.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = rvs()
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("rvs started although it should have refused {text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A failed start: non-zero exit, one line on stderr, no panic or backtrace.
fn assert_one_line_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "exit status {:?}", out.status);
    assert_eq!(stderr.lines().count(), 1, "one line expected:\n{stderr}");
    assert!(stderr.starts_with("rvs: error: "), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{stderr:?} lacks {n:?}");
    }
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{stderr}");
    }
    stderr
}

const BASE: &str =
    "[eal]\nlcores = \"0,1\"\nhugepages = false\nmemory_mb = 256\n\n[[port]]\nname = \"wire\"\n";

#[test]
fn missing_config_file() {
    let out = rvs()
        .args(["--config", "/nonexistent/rvs.toml"])
        .output()
        .unwrap();
    assert_one_line_error(
        &out,
        &["/nonexistent/rvs.toml", "cannot read the config file"],
    );
}

#[test]
fn unknown_field() {
    let dir = scratch_dir("unknown");
    let out = run_config(
        &dir,
        &format!("{BASE}device = \"net_ring0\"\nspeed = 100\n"),
    );
    let path = dir.join("rvs.toml").display().to_string();
    assert_one_line_error(
        &out,
        &[&format!("{path}:9: port[0].speed: unknown field `speed`")],
    );
}

#[test]
fn bad_value() {
    let dir = scratch_dir("badvalue");
    let out = run_config(
        &dir,
        &format!("{BASE}device = \"net_ring0\"\nrx_queues = -1\n"),
    );
    let path = dir.join("rvs.toml").display().to_string();
    assert_one_line_error(&out, &[&format!("{path}:9: port[0].rx_queues:")]);
    let out = run_config(
        &dir,
        &BASE
            .replace("\"0,1\"", "\"0,0\"")
            .replace("[[port]]", "[[port]]\ndevice = \"net_ring0\""),
    );
    assert_one_line_error(
        &out,
        &[&format!("{path}:2: eal.lcores: an lcore is listed twice")],
    );
}

#[test]
fn device_dpdk_rejects() {
    let dir = scratch_dir("baddev");
    let out = run_config(&dir, &format!("{BASE}device = \"net_nosuchdriver0,x=1\"\n"));
    let path = dir.join("rvs.toml").display().to_string();
    assert_one_line_error(
        &out,
        &[&format!("{path}:7: port[0].device:"), "net_nosuchdriver0"],
    );
    // A real driver that cannot open what it is given.
    let out = run_config(
        &dir,
        &format!("{BASE}device = \"net_pcap0,rx_pcap=/nonexistent/in.pcap,tx_pcap=/tmp/x.pcap\"\n"),
    );
    assert_one_line_error(
        &out,
        &[
            &format!("{path}:7: port[0].device:"),
            "net_pcap0",
            "/nonexistent/in.pcap",
        ],
    );
}

#[test]
fn check_mode_validates_without_starting() {
    let dir = scratch_dir("check");
    let path = dir.join("rvs.toml");
    std::fs::write(&path, format!("{BASE}device = \"net_ring0\"\n")).unwrap();
    let out = rvs()
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("configuration OK (1 port(s), 1 worker(s), forward io, 0 VRRP instance(s))"));
}

/// testpmd's `--nb-cores` on the command line: the workers `--check` counts, and its
/// bound, named as testpmd names it.
#[test]
fn nb_cores_sets_the_forwarding_cores() {
    let dir = scratch_dir("nb-cores");
    let path = dir.join("rvs.toml");
    let text = BASE.replace("lcores = \"0,1\"", "lcores = \"0-3\"");
    std::fs::write(
        &path,
        format!("{text}device = \"net_ring0\"\nrx_queues = 3\n"),
    )
    .unwrap();
    let check = |extra: &[&str]| {
        rvs()
            .arg("--config")
            .arg(&path)
            .arg("--check")
            .args(extra)
            .output()
            .unwrap()
    };
    for (extra, workers) in [
        (&[][..], 3),
        (&["--nb-cores=2"][..], 2),
        (&["--nb-cores", "1"][..], 1),
    ] {
        let out = check(extra);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!("1 port(s), {workers} worker(s)")),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = check(&["--nb-cores=4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("rvs.toml:2: eal.lcores: --nb-cores=4: nb-cores should be > 0 and <= 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--check` reads the VRRP sections (the seed's level-1 file, which it used to drop
/// silently) and refuses an instance on a port without a host twin, naming it.
#[test]
fn check_mode_reads_vrrp() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let check = |toml: &std::path::Path, keepalived: &str| {
        rvs()
            .arg("--config")
            .arg(toml)
            .arg("--keepalived-conf")
            .arg(format!("{root}/{keepalived}"))
            .arg("--check")
            .output()
            .unwrap()
    };
    let seed = std::path::PathBuf::from(format!("{root}/configs/dns-cluster.toml"));
    let out = check(&seed, "configs/keepalived/dns-cluster-level1.conf");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 VRRP instance(s)"));
    let dir = scratch_dir("check-vrrp");
    let no_twin = dir.join("rvs.toml");
    let text = std::fs::read_to_string(&seed)
        .unwrap()
        .replace("host_tap = \"rvs-lan\"\n", "");
    std::fs::write(&no_twin, text).unwrap();
    let out = check(&no_twin, "configs/keepalived/dns-cluster-level1.conf");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dns-cluster-level1.conf:13: vrrp_instance VI_1: interface \"lan\" is no data port with a host twin"),
        "{err}"
    );
}

/// Frames of many sizes with distinct contents.
fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let len = 60 + (i * 37) % 1455;
            let mut f: Vec<u8> = (0..len).map(|j| (i * 13 + j) as u8).collect();
            f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            f
        })
        .collect()
}

/// Runs rvs (with `args`) over a net_pcap port until `expected` packets are in the output
/// file (or 30 s passed), stops it with `signal` and returns (output packets, stdout).
fn pcap_run(
    name: &str,
    (forward, args): (&str, &[&str]),
    input: &[Vec<u8>],
    expected: usize,
    signal: &str,
) -> (Vec<Vec<u8>>, String) {
    let dir = scratch_dir(name);
    let (rx, tx) = (dir.join("in.pcap"), dir.join("out.pcap"));
    write_pcap(&rx, input);
    let config = format!(
        "{BASE}device = \"net_pcap0,rx_pcap={},tx_pcap={}\"\n\n[dataplane]\nforward = \"{forward}\"\n",
        rx.display(),
        tx.display()
    );
    let path = dir.join("rvs.toml");
    std::fs::write(&path, config).unwrap();
    let child = rvs()
        .arg("--config")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_pcap(&tx).len() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "rvs failed: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    (read_pcap(&tx), stdout)
}

#[test]
fn io_forwarding_copies_a_pcap_packet_for_packet() {
    let input = frames(500);
    let (output, stdout) = pcap_run("pcap-io", ("io", &[]), &input, input.len(), "-INT");
    assert_eq!(output.len(), input.len());
    for (i, (a, b)) in input.iter().zip(&output).enumerate() {
        assert_eq!(a, b, "packet {i} differs");
    }
    let bytes: usize = input.iter().map(Vec::len).sum();
    assert!(
        stdout.contains(&format!(
            "RX-packets: {:<10} RX-missed: 0          RX-bytes:  {bytes}",
            500
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "TX-packets: {:<10} TX-errors: 0          TX-bytes:  {bytes}",
            500
        )),
        "{stdout}"
    );
    assert!(stdout.contains("TX-dropped: 0"), "{stdout}");
    assert!(stdout.contains("rvs: bye"), "{stdout}");
}

/// The mode and burst from testpmd's options, over the configuration's io.
#[test]
fn macswap_forwarding_swaps_addresses_and_drops_runts() {
    let mut input = frames(200);
    input.insert(50, vec![1, 2, 3, 4, 5]); // shorter than an Ethernet header
    let expected: Vec<Vec<u8>> = input
        .iter()
        .filter(|f| f.len() >= 14)
        .map(|f| {
            let mut g = f.clone();
            g[..6].copy_from_slice(&f[6..12]);
            g[6..12].copy_from_slice(&f[..6]);
            g
        })
        .collect();
    let options = ("io", &["--forward-mode=macswap", "--burst", "4"][..]);
    let (output, stdout) = pcap_run("pcap-macswap", options, &input, expected.len(), "-TERM");
    assert_eq!(output, expected);
    assert!(stdout.contains("Malformed: 1 "), "{stdout}");
    assert!(
        stdout.contains("rvs: --burst=4: Number of packets per burst set to 4\n"),
        "{stdout}"
    );
    assert!(stdout.contains("forward macswap"), "{stdout}");
}

#[test]
fn shipped_example_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let (mut checked, mut announcing) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = rvs()
            .arg("--config")
            .arg(&path)
            .arg("--check")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
        // A node of an ECMP group: both routing daemons' sides generate.
        if std::fs::read_to_string(&path)
            .unwrap()
            .contains("\n[announce]")
        {
            for flag in ["--bird-config", "--frr-config"] {
                let out = rvs().arg("--config").arg(&path).arg(flag).output().unwrap();
                assert!(
                    out.status.success()
                        && (out.stdout.starts_with(b"# BIRD") || out.stdout.starts_with(b"! FRR")),
                    "{} {flag}: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            announcing += 1;
        }
    }
    assert!(announcing >= 1, "no example of an ECMP node");
    assert!(
        checked >= 3,
        "only {checked} configs found in {}",
        dir.display()
    );
}

#[test]
fn preview_prints_the_server_each_client_gets() {
    let dir = scratch_dir("preview");
    let rules = dir.join("rules");
    std::fs::write(
        &rules,
        "-A -t 10.1.1.254:80 -s wrr\n-a -t 10.1.1.254:80 -r 10.1.1.2 -g -w 2\n-a -t 10.1.1.254:80 -r 10.1.1.3 -g -w 1\n",
    )
    .unwrap();
    let clients = dir.join("clients");
    let lines: String = (1..=6)
        .map(|i| format!("192.0.2.{i}:4000 10.1.1.254:80\n"))
        .collect();
    std::fs::write(&clients, lines).unwrap();
    let out = rvs()
        .arg("preview")
        .arg("--rules")
        .arg(&rules)
        .arg("--clients")
        .arg(&clients)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let picks: Vec<&str> = text
        .lines()
        .map(|l| l.rsplit("=> ").next().unwrap())
        .collect();
    // Newest first (.3, .2), filled one at a time: one round, then the 2:1 cycle.
    assert_eq!(
        picks,
        vec![
            "10.1.1.3:80 (Route)",
            "10.1.1.2:80 (Route)",
            "10.1.1.2:80 (Route)",
            "10.1.1.3:80 (Route)",
            "10.1.1.2:80 (Route)",
            "10.1.1.2:80 (Route)"
        ]
    );
    std::fs::write(&rules, "-A -t 10.1.1.254:80 -s nosuch\n").unwrap();
    let out = rvs()
        .arg("preview")
        .arg("--rules")
        .arg(&rules)
        .arg("--clients")
        .arg(&clients)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("rvs: error: rules line 1: Scheduler or persistence engine not found"),
        "{err}"
    );
}

/// A scratch directory `name` with the fixture table's load-balancing configuration on
/// net_pcap0 reading `input`: the directory, the configuration's path, the output pcap.
fn lb_on_pcap(
    name: &str,
    input: &[Vec<u8>],
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch_dir(name);
    let (rx, tx) = (dir.join("in.pcap"), dir.join("out.pcap"));
    write_pcap(&rx, input);
    let path = dir.join("rvs.toml");
    let device = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        rx.display(),
        tx.display()
    );
    std::fs::write(&path, rvs_testkit::fixtures::daemon_config(&device)).unwrap();
    (dir, path, tx)
}

/// The fixture table through the binary: every case's inputs in one pcap on one port that
/// carries both sides, the frames that leave in the output pcap, in order, and the final
/// statistics counting each drop by its reason.
#[test]
fn lb_mode_runs_the_fixture_table_through_the_binary() {
    use rvs_core::engine::DropReason;
    use rvs_testkit::fixtures::{cases, Net};
    let port_mac = [2, 0x70, 0x63, 0x61, 0x70, 0x00]; // net_pcap0's MAC, checked below
    let table = cases(&Net::one_port(port_mac));
    let steps: Vec<_> = table.iter().flat_map(|c| &c.steps).collect();
    let input: Vec<Vec<u8>> = steps.iter().map(|s| s.input.clone()).collect();
    let expected: Vec<Vec<u8>> = steps
        .iter()
        .flat_map(|s| s.frames_out())
        .map(|(_, f)| f)
        .collect();
    let (_, path, tx) = lb_on_pcap("pcap-lb", &input);
    let stdout = run_until(&path, || read_pcap(&tx).len() >= expected.len());
    assert!(stdout.contains("MAC 02:70:63:61:70:00"), "{stdout}");
    let output = read_pcap(&tx);
    assert_eq!(output.len(), expected.len(), "{stdout}");
    for (i, (got, want)) in output.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "output frame {i}");
    }
    // NAT, DR, TUN (its datagram sent in fragments later goes by the same connection),
    // and the SYN whose TTL ran out: as in IPVS, the connection is made before the
    // transmit path finds the TTL spent.
    let new_conns = 4;
    assert!(
        stdout.contains("Fragmented: 1 ") && stdout.contains("Fragments-sent: 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("New-conns: {new_conns} ")),
        "{stdout}"
    );
    for r in DropReason::ALL {
        let n = rvs_testkit::fixtures::drops(steps.iter().copied(), r);
        if n > 0 {
            assert!(
                stdout.contains(&format!("{}: {n}", r.name())),
                "{r:?}: {stdout}"
            );
        }
    }
}

/// Two workers: every frame arrives at worker 0's queue; flows whose client hashes to worker
/// 1 are handed over and must still be balanced and NAT'd both ways.
#[test]
fn lb_mode_with_two_workers_hands_flows_to_their_owner() {
    use etherparse::PacketBuilder;
    use rvs_core::sched::{fold_addr, hash_32};
    let owner = |c: [u8; 4], port: u16| {
        hash_32(fold_addr(c.into()) ^ u32::from(port).rotate_left(16), 16) % 2
    };
    let (client_mac, rs_mac, gw_mac) = (
        [2, 0xcc, 0, 0, 0, 1],
        [2, 0xaa, 0, 0, 0, 2],
        [2, 0xbb, 0, 0, 0, 1],
    );
    let port_mac = [2, 0x70, 0x63, 0x61, 0x70, 0x00];
    let tcp4 = |smac, dmac, src: [u8; 4], dst: [u8; 4], ttl, sport, dport, synack: bool| {
        let b = PacketBuilder::ethernet2(smac, dmac)
            .ipv4(src, dst, ttl)
            .tcp(sport, dport, 7, 1000)
            .syn();
        let b = if synack { b.ack(8) } else { b };
        let mut v = Vec::new();
        b.write(&mut v, b"").unwrap();
        v
    };
    // One client owned by each worker.
    let client = [198, 51, 100, 7];
    let p0 = (1000..2000).find(|&p| owner(client, p) == 0).unwrap();
    let p1 = (1000..2000).find(|&p| owner(client, p) == 1).unwrap();
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for p in [p0, p1] {
        input.push(tcp4(
            client_mac,
            port_mac,
            client,
            [192, 168, 1, 100],
            64,
            p,
            80,
            false,
        ));
        input.push(tcp4(
            rs_mac,
            port_mac,
            [10, 0, 0, 2],
            client,
            64,
            8080,
            p,
            true,
        ));
        expected.push(tcp4(
            port_mac,
            rs_mac,
            client,
            [10, 0, 0, 2],
            63,
            p,
            8080,
            false,
        ));
        expected.push(tcp4(
            port_mac,
            gw_mac,
            [192, 168, 1, 100],
            client,
            63,
            80,
            p,
            true,
        ));
    }
    let dir = scratch_dir("pcap-lb2");
    let (rx0, rx1, tx0, tx1) = (
        dir.join("in0.pcap"),
        dir.join("in1.pcap"),
        dir.join("out0.pcap"),
        dir.join("out1.pcap"),
    );
    write_pcap(&rx0, &input);
    write_pcap(&rx1, &[]);
    let device = format!(
        "net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={},tx_pcap={}",
        rx0.display(),
        rx1.display(),
        tx0.display(),
        tx1.display()
    );
    let config = rvs_testkit::fixtures::daemon_config_with_workers(
        &device,
        "0@0,1@1,2@1",
        &[(1, "wire:0"), (2, "wire:1")],
    );
    let path = dir.join("rvs.toml");
    std::fs::write(&path, config).unwrap();
    let outputs = || {
        let mut all = read_pcap(&tx0);
        all.extend(read_pcap(&tx1));
        all
    };
    let stdout = run_until(&path, || outputs().len() >= expected.len());
    let mut got = outputs();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{stdout}");
    // Worker 1 transmitted the flow it owns, handed over by worker 0.
    assert_eq!(read_pcap(&tx1).len(), 2, "{stdout}");
    assert!(stdout.contains("Hand-offs: 2 "), "{stdout}");
}

/// IPv6 end to end through the binary: a client's SYN is NAT'd to the IPv6 real server (hop
/// limit down by one), the server's SYN-ACK goes back from the VIP through the default
/// gateway; outputs compared with etherparse-built goldens.
#[test]
fn lb_mode_ipv6_nat_end_to_end() {
    use etherparse::PacketBuilder;
    let client_mac = [2, 0xcc, 0, 0, 0, 6];
    let rs_mac = [2, 0xaa, 0, 0, 0, 6];
    let gw_mac = [2, 0xbb, 0, 0, 0, 6];
    let port_mac = [2, 0x70, 0x63, 0x61, 0x70, 0x00];
    let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let (client, vip, rs) = (
        v6("2001:db8:ff::7"),
        v6("2001:db8:1::100"),
        v6("2001:db8:2::2"),
    );
    let tcp6 = |smac, dmac, src, dst, hops, sport, dport, synack: bool| {
        let b = PacketBuilder::ethernet2(smac, dmac)
            .ipv6(src, dst, hops)
            .tcp(sport, dport, 7, 1000)
            .syn();
        let b = if synack { b.ack(8) } else { b };
        let mut v = Vec::new();
        b.write(&mut v, b"").unwrap();
        v
    };
    let input = vec![
        tcp6(client_mac, port_mac, client, vip, 64, 40000, 80, false),
        tcp6(rs_mac, port_mac, rs, client, 64, 8080, 40000, true),
    ];
    let expected = vec![
        tcp6(port_mac, rs_mac, client, rs, 63, 40000, 8080, false),
        tcp6(port_mac, gw_mac, vip, client, 63, 80, 40000, true),
    ];
    let dir = scratch_dir("pcap-lb6");
    let (rx, tx) = (dir.join("in.pcap"), dir.join("out.pcap"));
    write_pcap(&rx, &input);
    let config = format!(
        r#"[eal]
lcores = "0,1"
hugepages = false
memory_mb = 256

[[port]]
name = "wire"
device = "net_pcap0,rx_pcap={},tx_pcap={}"
addresses = ["2001:db8:1::1", "2001:db8:2::1"]

[[route]]
prefix = "2001:db8:2::/64"
port = "wire"

[[route]]
prefix = "::/0"
via = "fe80::1"
port = "wire"

[[neighbour]]
address = "2001:db8:2::2"
mac = "02:aa:00:00:00:06"

[[neighbour]]
address = "fe80::1"
mac = "02:bb:00:00:00:06"

[[service]]
address = "2001:db8:1::100"
port = 80
scheduler = "rr"

[[service.server]]
address = "2001:db8:2::2"
port = 8080
"#,
        rx.display(),
        tx.display()
    );
    let path = dir.join("rvs.toml");
    std::fs::write(&path, config).unwrap();
    let stdout = run_until(&path, || read_pcap(&tx).len() >= expected.len());
    assert_eq!(read_pcap(&tx), expected, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed scenarios' configurations: each TOML with its keepalived.conf passes `--check`
/// (services, servers and checkers applied as at start-up) without warnings.
#[test]
fn seed_scenario_configs_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (toml, conf, services) in [
        (
            "configs/dns-cluster.toml",
            "configs/keepalived/dns-cluster-level2.conf",
            2,
        ),
        (
            "configs/dns-cluster.toml",
            "configs/keepalived/dns-cluster-level3.conf",
            2,
        ),
        (
            "configs/communigate.toml",
            "configs/keepalived/communigate-frontends.conf",
            6,
        ),
    ] {
        let out = rvs()
            .arg("--check")
            .arg("--config")
            .arg(root.join(toml))
            .arg("--keepalived-conf")
            .arg(root.join(conf))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{toml} + {conf}: {stderr}");
        assert!(stderr.is_empty(), "{conf}: {stderr}");
        let k = rvs_control::keepalived::KeepalivedConf::load(&root.join(conf)).unwrap();
        assert_eq!(k.virtual_servers.len(), services, "{conf}");
    }
    use rvs_control::keepalived::{CheckKind, KeepalivedConf};
    let k =
        KeepalivedConf::load(&root.join("configs/keepalived/communigate-frontends.conf")).unwrap();
    let kinds: Vec<&CheckKind> = k
        .virtual_servers
        .iter()
        .map(|v| &v.real_servers[0].checkers[0].kind)
        .collect();
    assert_eq!(kinds[0], &CheckKind::Tcp);
    assert!(matches!(kinds[2], CheckKind::Smtp { .. }));
    assert_eq!(kinds[3], &CheckKind::Sip { tcp: false });
    assert_eq!(kinds[4], &CheckKind::Sip { tcp: true });
    let CheckKind::Http { urls, .. } = kinds[5] else {
        panic!("{:?}", kinds[5])
    };
    assert_eq!(
        urls[0].status_codes,
        vec![(200, 200), (301, 301), (302, 302)]
    );
}

/// keepalived's startup_script and shutdown_script: the first is waited for before the
/// checkers start (a MISC_CHECK writes after it), the second runs once they stopped (no
/// check after it); a startup script that outlives startup_script_timeout is killed and
/// the start goes on.
#[test]
fn startup_and_shutdown_scripts_frame_the_checkers() {
    let (dir, path, _) = lb_on_pcap("start-stop-scripts", &[]);
    let order = dir.join("order");
    let kconf = dir.join("keepalived.conf");
    std::fs::write(
        &kconf,
        format!(
            "global_defs {{
  startup_script \"/bin/sh -c 'sleep 0.5; echo start >> {order}; sleep 30'\"
  startup_script_timeout 2
  shutdown_script \"/bin/sh -c 'echo stop >> {order}'\"
}}
virtual_server 192.0.2.50 80 {{
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 127.0.0.1 80 {{
    MISC_CHECK {{
      misc_path \"/bin/sh -c 'echo check >> {order}'\"
    }}
  }}
}}
",
            order = order.display()
        ),
    )
    .unwrap();
    let child = rvs_on(&path, Some(&kconf));
    let lines = || {
        std::fs::read_to_string(&order)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines().iter().filter(|l| *l == "check").count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stdout = interrupt(child);
    std::thread::sleep(Duration::from_millis(1500));
    let got = lines();
    assert_eq!(
        got.first().map(String::as_str),
        Some("start"),
        "{got:?}\n{stdout}"
    );
    assert_eq!(
        got.last().map(String::as_str),
        Some("stop"),
        "{got:?}\n{stdout}"
    );
    let checks = got.iter().filter(|l| *l == "check").count();
    assert!(checks >= 2 && got.len() == checks + 2, "{got:?}\n{stdout}");
}

/// keepalived's `log_all_failures`: each failed attempt a live server survives (its
/// retries) is logged before the one that takes it down; without it, only the change.
#[test]
fn log_all_failures_says_every_attempt_a_live_server_survives() {
    let run = |name: &str, log_all: bool| -> String {
        let (dir, path, _) = lb_on_pcap(name, &[]);
        let flag = dir.join("up");
        std::fs::write(&flag, "").unwrap();
        let kconf = dir.join("keepalived.conf");
        std::fs::write(
            &kconf,
            format!(
                "virtual_server 192.0.2.50 80 {{
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 127.0.0.1 80 {{
    MISC_CHECK {{
      misc_path \"/bin/test -e {}\"
      retry 2
      delay_before_retry 1
      {}
    }}
  }}
}}
",
                flag.display(),
                if log_all { "log_all_failures" } else { "" },
            ),
        )
        .unwrap();
        let child = rvs_on(&path, Some(&kconf));
        // Up at the first check (a second after the start), then failing: down after its
        // two retries.
        std::thread::sleep(Duration::from_millis(2500));
        std::fs::remove_file(&flag).unwrap();
        // Three failed checks about a second apart: down within 4 s; room for a slow host.
        std::thread::sleep(Duration::from_millis(7000));
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        // Info on stdout, warnings (the DOWN) on stderr.
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let with = run("log-all-failures", true);
    let attempts: Vec<&str> = with
        .lines()
        .filter(|l| l.contains("MISC_CHECK") && l.contains(" failed ("))
        .collect();
    assert!(
        attempts.len() == 2
            && attempts[0].ends_with("; retry 1 of 2")
            && attempts[1].ends_with("; retry 2 of 2"),
        "{with}"
    );
    assert!(with.contains("MISC_CHECK DOWN"), "{with}");
    let without = run("log-failures-changes-only", false);
    assert!(!without.contains(" failed ("), "{without}");
    assert!(without.contains("MISC_CHECK DOWN"), "{without}");
}

/// keepalived's mail alerts from the checkers: a real server's MISC_CHECK failing mails
/// its service's lost quorum, then the server's DOWN (keepalived's order), and the way
/// back up the same, with keepalived's subjects and bodies; at the stop, omega mails the
/// live servers that mail (not the one with `smtp_alert off`) and the service.
#[test]
fn checker_and_quorum_changes_are_mailed_as_keepalived_mails_them() {
    let sink = rvs_testkit::smtp::Sink::start("127.0.0.1:0");
    let (dir, path, _) = lb_on_pcap("mail-alerts", &[]);
    let flag = dir.join("up");
    std::fs::write(&flag, "").unwrap();
    let kconf = dir.join("keepalived.conf");
    std::fs::write(
        &kconf,
        format!(
            "global_defs {{
  router_id LB_TEST
  notification_email {{
    ops@example.com
  }}
  notification_email_from lb@example.com
  smtp_server 127.0.0.1 {port}
  smtp_helo_name lb.example.com
  smtp_connect_timeout 5
}}
virtual_server 192.0.2.50 80 {{
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
  smtp_alert
  omega
  quorum 2
  real_server 127.0.0.1 80 {{
    MISC_CHECK {{
      misc_path \"/bin/test -e {flag}\"
    }}
  }}
  real_server 127.0.0.2 80 {{
    smtp_alert off
    MISC_CHECK {{
      misc_path /bin/true
    }}
  }}
}}
",
            port = sink.addr.port(),
            flag = flag.display(),
        ),
    )
    .unwrap();
    let child = rvs_on(&path, Some(&kconf));
    let subjects = |n: usize, within: u64| -> Vec<(String, String)> {
        sink.wait_for(n, Duration::from_secs(within))
            .iter()
            .map(|m| {
                use rvs_testkit::smtp::{body, subject};
                (subject(m).to_string(), body(m).to_string())
            })
            .collect()
    };
    // The start: quorum gained.
    let started = subjects(1, 15);
    std::fs::remove_file(&flag).unwrap();
    let down = subjects(3, 15);
    std::fs::write(&flag, "").unwrap();
    let up = subjects(5, 15);
    let stdout = interrupt(child);
    let all = subjects(7, 10);
    let vs = "[192.0.2.50]:tcp:80";
    let rs = "[127.0.0.1]:tcp:80";
    let expect: Vec<(String, String)> = [
        (
            format!("[LB_TEST] Virtualserver {vs} - UP"),
            "=> Starting with quorum up 2+0=2 <= 2 <=".to_string(),
        ),
        (
            format!("[LB_TEST] Virtualserver {vs} - DOWN"),
            "=> Lost quorum 2+0=2 <= 1 <=".into(),
        ),
        (
            format!("[LB_TEST] Realserver {rs} of virtual server {vs} - DOWN"),
            "=> MISC CHECK failed on service <=".into(),
        ),
        (
            format!("[LB_TEST] Virtualserver {vs} - UP"),
            "=> Gained quorum 2+0=2 <= 2 <=".into(),
        ),
        (
            format!("[LB_TEST] Realserver {rs} of virtual server {vs} - UP"),
            "=> MISC CHECK succeeded on service <=".into(),
        ),
        (
            format!("[LB_TEST] Realserver {rs} of virtual server {vs} - DOWN"),
            "=> Shutting down <=".into(),
        ),
        (
            format!("[LB_TEST] Virtualserver {vs} - DOWN"),
            "=> Shutting down <=".into(),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(started, expect[..1], "{stdout}");
    assert_eq!(down, expect[..3], "{stdout}");
    assert_eq!(up, expect[..5], "{stdout}");
    assert_eq!(all, expect, "{stdout}");
    let first = &sink.mails()[0];
    assert!(
        first.starts_with("HELO lb.example.com\r\nMAIL FROM:<lb@example.com>\r\nRCPT TO:<ops@example.com>\r\nDATA\r\n"),
        "{first}"
    );
}
