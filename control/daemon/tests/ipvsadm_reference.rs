//! rvsadm against the genuine ipvsadm, byte for byte.
//!
//! The reference is Debian's `/usr/sbin/ipvsadm` (1.31) over a stand-in for the kernel's
//! IPVS (`ipvsadm_reference/ipvs_kernel.c`, loaded with LD_PRELOAD: it answers libnl's
//! generic netlink socket with the kernel's checks and errno values and keeps its state in
//! a file). The battery (`ipvsadm_reference/battery.txt`) runs line by line through it and
//! through rvsadm against a running rvs; stdout, stderr and the exit status must be equal.
//! Both run as `ipvsadm` (argv[0]), as rvsadm does when installed under that name.
//!
//! Battery syntax: one command line per line (shell-style quoting); `<<<` then the standard
//! input with `\n` for new lines; a leading `~` marks a documented difference (README,
//! "Differences from ipvsadm"): it must still differ, so a fixed difference is noticed.

mod support;

use rvs_testkit::pcap::write_pcap;
use rvs_testkit::proc::{interrupt, scratch_dir};
use rvs_testkit::wait::wait_for;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const IPVSADM: &str = "/usr/sbin/ipvsadm";
const TABLE_SIZE: u32 = 4096;
/// The data port's host twin: the sync daemons' interface in the battery (the stand-in
/// knows it as its only interface).
const TWIN: &str = "rvsref0";

struct Run {
    stdout: String,
    stderr: String,
    status: i32,
}

fn run(cmd: &mut Command, stdin: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Run {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        status: o.status.code().unwrap_or(-1),
    }
}

/// Splits a battery line as a shell would (single and double quotes, no expansions).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn config(dir: &Path, socket: &Path) -> PathBuf {
    let rx = dir.join("in.pcap");
    write_pcap(&rx, &[]);
    let path = dir.join("rvs.toml");
    std::fs::write(
        &path,
        format!(
            r#"[eal]
lcores = "0,1"
hugepages = false
memory_mb = 256
file_prefix = "rvs-ipvsadm-ref-{pid}"

[dataplane]
connections = {TABLE_SIZE}

[control]
socket = "{socket}"

[[port]]
name = "wire"
device = "net_pcap0,rx_pcap={rx},tx_pcap={out}"
addresses = ["192.168.1.1", "10.0.0.1"]
host_tap = "{TWIN}"
"#,
            pid = std::process::id(),
            socket = socket.display(),
            rx = rx.display(),
            out = dir.join("out.pcap").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn rvsadm_matches_ipvsadm_line_by_line() {
    let dir = scratch_dir("ipvsadm-ref");
    if !Path::new(IPVSADM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{IPVSADM} is missing (scripts/setup installs it)"
        );
        eprintln!("skipped: {IPVSADM} is not installed (scripts/setup installs it)");
        return;
    }
    if !rvs_testkit::proc::sh("test $(id -u) = 0") {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: the sync daemons' interface is a host twin (a TAP), which needs root");
        return;
    }
    let stand_in = support::build_stand_in(&dir).expect("cc builds the IPVS stand-in");
    let state = dir.join("ipvs.state");
    let socket = dir.join("rvs.sock");
    let config = config(&dir, &socket);
    let daemon = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the control socket", Duration::from_secs(30), || {
        socket.exists()
    });
    let rvsadm = rvs_testkit::bins::sibling(env!("CARGO_BIN_EXE_rvs"), "rvsadm");

    let battery = include_str!("ipvsadm_reference/battery.txt");
    let (mut same, mut documented) = (0, 0);
    let mut failures = Vec::new();
    for (n, raw) in battery.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (expect_same, line) = match line.strip_prefix('~') {
            Some(rest) => (false, rest.trim()),
            None => (true, line),
        };
        let (args, stdin) = match line.split_once("<<<") {
            Some((a, s)) => (a, s.trim().replace("\\n", "\n") + "\n"),
            None => (line, String::new()),
        };
        let args = words(args);
        let reference = run(
            Command::new(IPVSADM)
                .arg0("ipvsadm")
                .args(&args)
                .env("LD_PRELOAD", &stand_in)
                .env("IPVS_STATE", &state)
                .env("IPVS_CONN_TAB_SIZE", TABLE_SIZE.to_string())
                .env("IPVS_INTERFACES", TWIN)
                .env("IPVS_LOCAL", "192.168.1.1,10.0.0.1"),
            &stdin,
        );
        let ours = run(
            Command::new(&rvsadm)
                .arg0("ipvsadm")
                .args(&args)
                .env("RVS_SOCKET", &socket),
            &stdin,
        );
        let equal = reference.stdout == ours.stdout
            && reference.stderr == ours.stderr
            && reference.status == ours.status;
        let report = || {
            format!(
                "line {}: ipvsadm {line}\n--- ipvsadm (exit {}):\n{}{}--- rvsadm (exit {}):\n{}{}",
                n + 1,
                reference.status,
                reference.stdout,
                reference.stderr,
                ours.status,
                ours.stdout,
                ours.stderr
            )
        };
        match (expect_same, equal) {
            (true, true) => same += 1,
            (false, false) => documented += 1,
            (true, false) => failures.push(report()),
            (false, true) => failures.push(format!(
                "line {}: marked as a documented difference but now identical: {line}",
                n + 1
            )),
        }
    }
    interrupt(daemon);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "ipvsadm reference: {} lines, {same} identical, {documented} documented differences, {} unexpected",
        same + documented + failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} line(s) differ from ipvsadm 1.31:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
