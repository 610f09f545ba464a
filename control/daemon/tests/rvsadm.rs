//! `rvsadm` and the console against a running daemon: ipvsadm's listings, counters of real
//! traffic (a pcap replayed through a `net_pcap` port), live changes, save/restore, errors,
//! and `rvs -i` driven through a pseudo-terminal.

use etherparse::PacketBuilder;
use rvs_testkit::pcap::{read_pcap, write_pcap};
use rvs_testkit::proc::{interrupt, scratch_dir};
use rvs_testkit::wait::wait_for;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const SECS30: Duration = Duration::from_secs(30);
const PORT_MAC: [u8; 6] = [2, 0x70, 0x63, 0x61, 0x70, 0x00]; // net_pcap0's MAC
const CLIENT_MAC: [u8; 6] = [2, 0xcc, 0, 0, 0, 1];

struct Lab {
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    out: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn syn(client: [u8; 4], cport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT_MAC)
        .ipv4(client, [192, 168, 1, 100], 64)
        .tcp(cport, 80, 7, 1000)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

fn lab(name: &str, frames: &[Vec<u8>], rules: Option<&str>) -> Lab {
    let dir = scratch_dir(name);
    let (rx, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    write_pcap(&rx, frames);
    let socket = dir.join("ctl").join("rvs.sock");
    let control_rules = match rules {
        Some(text) => {
            std::fs::write(dir.join("rules"), text).unwrap();
            "rules = \"rules\"\n"
        }
        None => "",
    };
    let config = dir.join("rvs.toml");
    std::fs::write(
        &config,
        format!(
            r#"[eal]
lcores = "0,1"
hugepages = false
memory_mb = 256
file_prefix = "rvs-{name}-{pid}"

[dataplane]
connections = 1024

[control]
socket = "{socket}"
{control_rules}
[[port]]
name = "wire"
device = "net_pcap0,rx_pcap={rx},tx_pcap={out}"
addresses = ["192.168.1.1", "10.0.0.1"]

[[route]]
prefix = "10.0.0.0/24"
port = "wire"

[[neighbour]]
address = "10.0.0.2"
mac = "02:aa:00:00:00:02"

[[service]]
address = "192.168.1.100"
port = 80
scheduler = "rr"

[[service.server]]
address = "10.0.0.2"
port = 8080
"#,
            pid = std::process::id(),
            socket = socket.display(),
            rx = rx.display(),
            out = out.display()
        ),
    )
    .unwrap();
    Lab {
        dir,
        config,
        socket,
        out,
    }
}

fn frames_out(path: &Path) -> usize {
    read_pcap(path).len()
}

fn rvsadm(lab: &Lab, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(rvs_testkit::bins::sibling(
        env!("CARGO_BIN_EXE_rvs"),
        "rvsadm",
    ))
    .args(args)
    .env("RVS_SOCKET", &lab.socket)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_applies_the_rules_file() {
    let bad = lab("rules-bad", &[], Some("-a -t 1.2.3.4:80 -r 10.0.0.2\n"));
    let o = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args(["--check", "--config"])
        .arg(&bad.config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("control.rules") && err.contains("line 1: Service not defined"),
        "{err}"
    );
    let good = lab(
        "rules-good",
        &[],
        Some("-A -t 1.2.3.4:80 -s rr\n-a -t 1.2.3.4:80 -r 10.0.0.2 -m\n"),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args(["--check", "--config"])
        .arg(&good.config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn rvsadm_lists_counts_changes_and_restores_the_running_daemon() {
    let lab = lab("rvsadm", &[syn([198, 51, 100, 7], 40000)], None);
    let child = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .arg("--config")
        .arg(&lab.config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the SYN to be forwarded", SECS30, || {
        frames_out(&lab.out) == 1
    });
    wait_for("the control socket", SECS30, || lab.socket.exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&lab.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let l = rvsadm(&lab, &["-L", "-n"], "");
    assert!(l.status.success());
    assert_eq!(
        text(&l),
        "IP Virtual Server version 1.2.1 (size=1024)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  192.168.1.100:80 rr\n  \
         -> 10.0.0.2:8080                Masq    1      1          0         \n"
    );
    // The workers publish their counters every 50 ms.
    let mut stats = String::new();
    wait_for("per-service counters", SECS30, || {
        stats = text(&rvsadm(&lab, &["-Ln", "--stats", "--exact"], ""));
        stats.contains(
            "TCP  192.168.1.100:80                    1        1        0       40        0",
        )
    });
    assert!(
        stats.contains(
            "  -> 10.0.0.2:8080                       1        1        0       40        0"
        ),
        "{stats}"
    );
    let conns = text(&rvsadm(&lab, &["-lnc"], ""));
    assert!(
        (conns.contains("TCP 00:5") || conns.contains("TCP 01:00"))
            && conns.contains("SYN_RECV    198.51.100.7:40000 192.168.1.100:80   10.0.0.2:8080"),
        "{conns:?}"
    );

    // Live changes, then save, clear and restore.
    for args in [
        &["-A", "-u", "192.168.1.100:53", "-s", "wrr"][..],
        &[
            "-a",
            "-u",
            "192.168.1.100:53",
            "-r",
            "10.0.0.2",
            "-m",
            "-w",
            "3",
        ],
        &["-a", "-u", "192.168.1.100:53", "-r", "10.0.0.3", "-m"],
        &["-E", "-t", "192.168.1.100:80", "-s", "wlc", "-p", "600"],
    ] {
        let o = rvsadm(&lab, args, "");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let saved = text(&rvsadm(&lab, &["-S", "-n"], ""));
    assert_eq!(
        saved,
        "-A -t 192.168.1.100:80 -s wlc -p 600\n\
         -a -t 192.168.1.100:80 -r 10.0.0.2:8080 -m -w 1\n\
         -A -u 192.168.1.100:53 -s wrr\n\
         -a -u 192.168.1.100:53 -r 10.0.0.2:53 -m -w 3\n\
         -a -u 192.168.1.100:53 -r 10.0.0.3:53 -m -w 1\n"
    );
    assert!(rvsadm(&lab, &["-C"], "").status.success());
    assert_eq!(text(&rvsadm(&lab, &["-S", "-n"], "")), "");
    assert!(rvsadm(&lab, &["-R"], &saved).status.success());
    assert_eq!(text(&rvsadm(&lab, &["-S", "-n"], "")), saved);

    // Errors: ipvsadm's wording and exit status; nothing changes.
    let e = rvsadm(
        &lab,
        &["-d", "-u", "192.168.1.100:53", "-r", "10.0.0.9"],
        "",
    );
    assert_eq!(
        e.status.code(),
        Some(255),
        "ipvsadm exits 255 on a kernel refusal"
    );
    assert_eq!(String::from_utf8_lossy(&e.stderr), "No such destination\n");
    let e = rvsadm(
        &lab,
        &["-a", "-t", "192.168.1.100:80", "-r", "10.0.0.5", "-w", "-1"],
        "",
    );
    assert_eq!(e.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&e.stderr),
        "illegal weight specified\n"
    );
    // As ipvsadm: a refused line is reported and the others run.
    let e = rvsadm(
        &lab,
        &["-R"],
        "-A -t 1.1.1.1:80 -p\n-a -t 9.9.9.9:80 -r 10.0.0.2\n",
    );
    assert_eq!(String::from_utf8_lossy(&e.stderr), "Service not defined\n");
    assert_eq!(e.status.code(), Some(255));
    assert!(rvsadm(&lab, &["-D", "-t", "1.1.1.1:80"], "")
        .status
        .success());
    assert_eq!(text(&rvsadm(&lab, &["-S", "-n"], "")), saved);

    assert!(rvsadm(&lab, &["--set", "100", "20", "30"], "")
        .status
        .success());
    assert_eq!(
        text(&rvsadm(&lab, &["-L", "--timeout"], "")),
        "Timeout (tcp tcpfin udp): 100 20 30\n"
    );
    assert!(rvsadm(&lab, &["-Z"], "").status.success());
    let zeroed = text(&rvsadm(
        &lab,
        &["-L", "-n", "--stats", "-t", "192.168.1.100:80"],
        "",
    ));
    assert!(
        zeroed.contains(
            "TCP  192.168.1.100:80                    0        0        0        0        0"
        ),
        "{zeroed}"
    );
    interrupt(child);
    assert!(!lab.socket.exists(), "the socket is removed at exit");
    let e = rvsadm(&lab, &["-L", "-n"], "");
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr).contains("Is the rvs daemon running"));
}

/// `rvs -i` on a pseudo-terminal (python3's pty module): the prompt, a console verb, tab
/// completion, an ipvsadm line, a bad command, then `quit` stops the daemon cleanly.
#[test]
fn console_on_a_pseudo_terminal() {
    // Services also come from an ipvsadm rules file (`rvsadm -S` output) at start-up.
    let lab = lab(
        "console",
        &[syn([198, 51, 100, 8], 40001)],
        Some("-A -u 192.168.1.100:53 -s rr\n-a -u 192.168.1.100:53 -r 10.0.0.2:53 -m -w 1\n"),
    );
    let script = r#"
import os, pty, select, signal, sys, time
rvs, cfg = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(rvs, [rvs, "-i", "--config", cfg])
out = b""
def give_up(why):
    # The daemon is not left running after a failed step.
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    sys.exit(why)
def until(token, secs=30):
    global out
    end = time.time() + secs
    while token not in out:
        if time.time() > end:
            sys.stdout.write(out.decode(errors="replace")); give_up("timed out waiting for %r" % token)
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
until(b"rvs> ")
rules = sys.argv[3].encode()
steps = [(b"show service\r", b"InActConn"), (b"show wor\t\r", b"hand-offs"),
         (b"ipvsadm -A -t 192.168.1.100:81 -s sh\r", None),
         (b"ipvsadm -L -n\r", b"192.168.1.100:81 sh"), (b"bogus\r", b"Bad arguments"),
         (b"show ser\x03", None), (b"show port \t\t", b"xstats"), (b"\x03", None),
         (b"set fwd macswap\r", b"Set macswap packet forwarding mode"),
         (b"show config fwd\r", b"macswap packet forwarding - ports=1"),
         (b"show config cores\r", b"List of forwarding lcores:  1"),
         (b"set fwd lb\r", b"Set lb packet forwarding mode"),
         (b"port stop 0\r", b"Stopping ports...\r\nPlease remove port 0 from forwarding configuration."),
         (b"stop\r", b"Done."), (b"stop\r", b"Packet forwarding not started"),
         # testpmd's port stop and start, under the running worker.
         (b"port stop all\r", b"Checking link statuses...\r\nPort 0 Link down\r\nDone"),
         (b"start\r", b"Not all ports were started"),
         (b"set nbcore 1\r", b"Number of forwarding cores set to 1"),
         # net_pcap has one rx queue at most; the count rvs has is taken.
         (b"port config all rxq 2\r", b"can't be greater than max_rx_queues (1) of port 0"),
         (b"port config all rxq 1\r", None),
         (b"port config all txq 0\r", b"port 0 (wire) has 1 tx queue(s)"),
         (b"port start all\r", b"Port 0: 02:70:63:61:70:00\r\nChecking link statuses...\r\nPort 0 Link up"),
         (b"start\r", b"lb packet forwarding - ports=1"), (b"start\r", b"already started"),
         (b"show port info all\r", b"Promiscuous mode"),
         (b"show port summary all\r", b"Number of available ports: 1"),
         (b"show config rxtx\r", b"TX RS bit threshold="),
         (b"set burst 8\r", b"Number of packets per burst set to 8"),
         (b"show config rxtx\r", b"lb packet forwarding packets/burst=8"),
         # net_pcap states no preferred burst.
         (b"set burst 0\r", b"PMD does not recommend a burst size."),
         (b"set burst 33\r", b"nb pkt per burst: 33 > 32 (maximum packet per burst)  ignored"),
         (b"port config all burst 33\r", b"burst must be >= 1 && <= 32"),
         (b"port config all burst 16\r", None),
         (b"show config rxtx\r", b"lb packet forwarding packets/burst=16"),
         # net_pcap cannot take its link down: testpmd's line and the driver's reason.
         (b"set link-down port 0\r", b"Set link down fail.\r\nport 0 (wire): Operation not supported"),
         # net_pcap keeps promiscuous mode: testpmd's message, the mode unchanged.
         (b"set promisc all off\r",
          b"Error during disabling promiscuous mode for port 0: Operation not supported - ignore"),
         (b"set promisc 0 on\r", None),
         (b"show port info 0\r", b"Promiscuous mode: enabled\r\nAllmulticast mode: "),
         (b"set allmulti 0 on\r", None),
         # testpmd's fields from the driver: net_pcap tells no firmware version.
         (b"show port info 0\r", b"Firmware-version: not available\r\nDevargs: "),
         (b"show port info 0\r", b"Max segment number per MTU/TSO: "),
         # net_pcap has no RSS.
         (b"show port 0 rss-hash key\r", b"dev_info did not provide a valid hash key size"),
         (b"show port 0 rss reta\r", b"port 0: no RSS redirection table"),
         (b"clear port xstats all\r", None), (b"clear fwd stats all\r", None),
         (b"set xstats-hide-zero on\r", None),
         (b"show port xstats 0\r", b"NIC extended statistics for port 0"),
         # net_pcap does not describe its queues: testpmd's report of the refusal.
         (b"show rxq info 0 0\r",
          b"Failed to retrieve information for port: 0, RX queue: 0\r\nerror desc: Operation not supported(-95)"),
         (b"show fwd stats\r", b"Accumulated forward statistics for all workers"),
         # Each poll's rx call counted by its size: the idle worker's are empty (a pause
         # of 0.2 s: an idle worker polls every millisecond or so).
         (b"set record-burst-stats on\r", None), (b"", None),
         (b"show fwd stats\r", b"  RX-bursts : "),
         (b"set record-burst-stats off\r", None),
         (b"set record-core-cycles on\r", None),
         (b"show fwd stats\r", b"Accumulated forward statistics for all workers"),
         (b"ipvsadm -h\r", b"--tun-type"),
         (b"ipvsadm -R < " + rules + b"\r", None),
         (b"ipvsadm -L -n -t 192.168.1.100:82\r", b"192.168.1.100:82 wrr")]
def read_some():
    global out
    r, _, _ = select.select([fd], [], [], 0.2)
    if r: out += os.read(fd, 4096)
def ready():
    # A line editor is reading (bracketed paste turned on after the last line it took):
    # input written earlier could be flushed when it switches the terminal to raw mode.
    end = time.time() + 30
    while out.rfind(b"\x1b[?2004h") <= out.rfind(b"\x1b[?2004l") and time.time() < end:
        read_some()
for line, token in steps:
    if not line:
        time.sleep(0.2)
        continue
    ready()
    mark = len(out)
    os.write(fd, line)
    if token is None:
        token = b"\x1b[?2004l"  # the line was taken
    end = time.time() + 30
    while token not in out[mark:] and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r: out += os.read(fd, 4096)
    if token not in out[mark:]:
        sys.stdout.write(out.decode(errors="replace"))
        give_up("no %r after %r" % (token, line))
ready()
os.write(fd, b"quit\r")
end = time.time() + 30
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk: break
        out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let restore = lab.dir.join("restore.rules");
    std::fs::write(&restore, "-A -t 192.168.1.100:82 -s wrr\n").unwrap();
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_rvs"))
        .arg(&lab.config)
        .arg(&restore)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("rvs> "), "{out}");
    assert!(out.contains("TCP  192.168.1.100:80 rr"), "{out}");
    // Tab completed "wor" to "worker".
    assert!(out.contains("show worker"), "{out}");
    assert!(out.contains("worker lcore"), "{out}");
    assert!(out.contains("TCP  192.168.1.100:81 sh"), "{out}");
    assert!(out.contains("UDP  192.168.1.100:53 rr"), "{out}");
    assert!(out.contains("Bad arguments"), "{out}");
    // Ctrl-C cancelled a line (the daemon went on); Tab listed the choices; testpmd's
    // answers for set fwd, show config fwd, stop and start; -R read its rules from a file.
    assert!(
        out.lines()
            .any(|l| l.starts_with("info") && l.contains("stats") && l.contains("xstats")),
        "Tab lists the choices\n{out}"
    );
    for want in [
        "Set macswap packet forwarding mode",
        "macswap packet forwarding - ports=1 - cores=1 - streams=1 - NUMA support enabled, MP allocation mode: native",
        "Logical Core 1 (socket 0) forwards packets on 1 streams:",
        "RX P=0/Q=0 (socket 0) -> TX P=0/Q=0 (socket 0)",
        "Packet forwarding not started",
        "Packet forwarding already started",
        "Promiscuous mode: enabled",
        "Current number of RX queues: 1",
        "ipvsadm v1.31 2019/12/24",
        "TCP  192.168.1.100:82 wrr",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    assert!(out.contains("rvs: bye"), "{out}");
}
