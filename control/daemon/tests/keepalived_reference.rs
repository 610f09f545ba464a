//! keepalived.conf read as keepalived programs IPVS.
//!
//! The reference is Debian's keepalived 2.2.7 itself: its checker process (`keepalived -C`)
//! reads each file and programs the IPVS stand-in (`ipvsadm_reference/ipvs_kernel.c`, loaded
//! with LD_PRELOAD) inside a namespace of its own; Debian's ipvsadm then saves that table
//! (`ipvsadm -S -n`). rvs starts on the same file (`--keepalived-conf`) and rvsadm saves its
//! table; the two must be equal, line for line. Both are read before any first check (each
//! waits a second after the start, keepalived's BOOTSTRAP_DELAY), so the table is the
//! configuration's: servers, weights, methods, schedulers and their flags, persistence,
//! thresholds, inhibited and sorry servers, quorum and alpha at start.
//!
//! The files: this test's battery (`keepalived_reference/*.conf`), rvs's corpus of
//! operators' set-ups (`configs/keepalived/corpus`) and Debian's samples
//! (/usr/share/doc/keepalived/samples). For a file with VRRP instances rvs runs in a
//! namespace of its own with a data port (and host twin) named as each interface the file
//! names, as an operator's appliance would have them. (`scripts/lab ha` runs keepalived as
//! rvs's VRRP peer.)

mod support;

use rvs_testkit::netns::{keepalived_pid_files, Netns, KEEPALIVED};
use rvs_testkit::pcap::write_pcap;
use rvs_testkit::proc::{interrupt, scratch_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IPVSADM: &str = "/usr/sbin/ipvsadm";
const SAMPLES: &str = "/usr/share/doc/keepalived/samples";

fn files() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = |dir: &Path, keep: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(keep))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let conf = |n: &str| n.ends_with(".conf");
    let mut all = listed(&manifest.join("tests/keepalived_reference"), &conf);
    all.extend(listed(
        &manifest.join("../../configs/keepalived/corpus"),
        &conf,
    ));
    all.extend(listed(Path::new(SAMPLES), &|n: &str| {
        n.starts_with("keepalived.conf.") && !n.ends_with(".gz")
    }));
    all
}

fn runs_vrrp(text: &str) -> bool {
    text.contains("vrrp_instance") || text.contains("vrrp_sync_group")
}

/// The interfaces a file names (the samples' and the corpus's `ethN` and `ethN.M`), in order
/// of first mention.
fn interfaces(text: &str) -> Vec<String> {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let is_interface = |w: &str| match w.strip_prefix("eth").map(|r| r.split_once('.')) {
        Some(Some((port, vlan))) => digits(port) && digits(vlan),
        Some(None) => digits(&w[3..]),
        None => false,
    };
    let mut found: Vec<String> = Vec::new();
    for w in text
        .lines()
        .map(|l| l.split(['#', '!']).next().unwrap_or(""))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '{' || c == '}'))
    {
        if is_interface(w) && !found.iter().any(|f| f == w) {
            found.push(w.to_string());
        }
    }
    found
}

/// keepalived's checker process on `file` over the stand-in (state in `state`): the table
/// ipvsadm saves once its start is complete, or why there is none.
fn keepalived_table(
    lab: &mut Netns,
    stand_in: &Path,
    file: &Path,
    n: usize,
) -> Result<String, String> {
    let dir = lab.dir.clone();
    let state = dir.join(format!("ipvs-{n}.state"));
    let log = dir.join(format!("keepalived-{n}.log"));
    lab.start(
        "keepalived",
        &format!(
            "env LD_PRELOAD={} IPVS_STATE={} {KEEPALIVED} -n -l -D -C -f {} {} >{} 2>&1",
            stand_in.display(),
            state.display(),
            file.display(),
            keepalived_pid_files(&dir, &format!("k{n}")),
            log.display()
        ),
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    while !read_log().contains("Startup complete") {
        // Its checker process has nothing to do (VRRP only): the table stays empty.
        if read_log().contains("has no configuration to run") {
            lab.stop("keepalived");
            return Ok(String::new());
        }
        if start.elapsed() > Duration::from_secs(10) || read_log().contains("Stopped Keepalived") {
            lab.stop("keepalived");
            return Err(format!("keepalived did not start:\n{}", read_log()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(IPVSADM)
        .args(["-S", "-n"])
        .env("LD_PRELOAD", stand_in)
        .env("IPVS_STATE", &state)
        .output()
        .map_err(|e| e.to_string());
    lab.stop("keepalived");
    let out = out?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// rvs on `file`: the table rvsadm saves once its control socket is up, or why there is none.
/// With `vrrp` (its namespace and the file's interfaces) rvs runs there, a data port with a
/// host twin named as each interface.
fn rvs_table(
    dir: &Path,
    file: &Path,
    n: usize,
    vrrp: Option<(&str, &[String])>,
) -> Result<String, String> {
    let socket = dir.join(format!("rvs-{n}.sock"));
    let rx = dir.join("in.pcap");
    write_pcap(&rx, &[]);
    let config = dir.join(format!("rvs-{n}.toml"));
    let ports = match vrrp {
        None => format!(
            r#"[[port]]
name = "wire"
device = "net_pcap0,rx_pcap={rx},tx_pcap={tx}"
addresses = ["192.168.1.1", "10.0.0.1"]
"#,
            rx = rx.display(),
            tx = dir.join(format!("out-{n}.pcap")).display()
        ),
        Some((_, names)) => names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                format!(
                    r#"[[port]]
name = "{name}"
device = "net_pcap{i},rx_pcap={rx},tx_pcap={tx}"
addresses = ["10.{i}.0.1"]
host_tap = "twin{i}"

"#,
                    rx = rx.display(),
                    tx = dir.join(format!("out-{n}-{i}.pcap")).display()
                )
            })
            .collect(),
    };
    std::fs::write(
        &config,
        format!(
            r#"[eal]
lcores = "0,1"
hugepages = false
memory_mb = 256
file_prefix = "rvs-keepalived-ref-{pid}-{n}"

[dataplane]
connections = 4096

[control]
socket = "{socket}"

{ports}"#,
            pid = std::process::id(),
            socket = socket.display(),
        ),
    )
    .unwrap();
    let mut daemon = match vrrp {
        Some((ns, _)) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_rvs")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_rvs")),
    };
    let mut daemon = daemon
        .arg("--config")
        .arg(&config)
        .arg("--keepalived-conf")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !socket.exists() {
        if let Ok(Some(_)) = daemon.try_wait() {
            let out = daemon.wait_with_output().unwrap();
            return Err(format!(
                "rvs did not start:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "rvs's control socket did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rvsadm = rvs_testkit::bins::sibling(env!("CARGO_BIN_EXE_rvs"), "rvsadm");
    let out = Command::new(rvsadm)
        .args(["-S", "-n"])
        .env("RVS_SOCKET", &socket)
        .output()
        .unwrap();
    interrupt(daemon);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn rvs_programs_each_keepalived_conf_as_keepalived_does() {
    let installed = Path::new(IPVSADM).exists() && Path::new(KEEPALIVED).exists();
    let root = rvs_testkit::proc::sh("test $(id -u) = 0");
    if !installed || !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with keepalived and ipvsadm (scripts/setup installs them)"
        );
        eprintln!("skipped: needs root, {KEEPALIVED} and {IPVSADM} (scripts/setup installs them)");
        return;
    }
    let dir = scratch_dir("keepalived-ref");
    let stand_in = support::build_stand_in(&dir).expect("cc builds the IPVS stand-in");
    // keepalived in a namespace of its own, with the interfaces the samples name.
    let mut lab = Netns::new("rvskr");
    for i in 0..4 {
        assert!(lab.exec(&format!(
            "ip link add eth{i} type veth peer name peer{i} && ip link set eth{i} up"
        )));
    }
    // rvs for files with VRRP, its twins apart from keepalived's interfaces.
    let appliance = Netns::new("rvskv");
    let (mut same, mut vrrp, mut failures) = (0, 0, Vec::new());
    for (n, file) in files().iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let names = interfaces(&text);
        let with_vrrp = runs_vrrp(&text);
        vrrp += usize::from(with_vrrp);
        let reference = keepalived_table(&mut lab, &stand_in, file, n);
        let ours = rvs_table(
            &dir,
            file,
            n,
            with_vrrp.then_some((appliance.ns.as_str(), names.as_slice())),
        );
        match (&reference, &ours) {
            (Ok(r), Ok(o)) if r == o => {
                same += 1;
                println!(
                    "{}: identical ({} lines)",
                    file.display(),
                    r.lines().count()
                );
            }
            _ => failures.push(format!(
                "{}:\n--- keepalived:\n{}\n--- rvs:\n{}",
                file.display(),
                reference.unwrap_or_else(|e| e),
                ours.unwrap_or_else(|e| e)
            )),
        }
    }
    drop(lab);
    drop(appliance);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "keepalived reference: {} files ({vrrp} with VRRP), {same} identical, {} different",
        same + failures.len(),
        failures.len(),
    );
    assert!(same >= 10, "too few files compared: {same}");
    assert!(
        failures.is_empty(),
        "{} file(s) programmed differently from keepalived 2.2.7:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
