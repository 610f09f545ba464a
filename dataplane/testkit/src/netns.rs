//! Network-namespace labs: a namespace joined to the host by a veth pair, programs started
//! inside it, and everything removed on drop (also when the test fails half-way).

use crate::proc::sh;
use crate::wait::wait_for;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's keepalived, the reference tests compare rvs with.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// keepalived's pid-file options, every one in `dir` and named after `tag` (`TAG.pid`,
/// `TAG-vrrp.pid`, `TAG-checkers.pid`, `TAG-bfd.pid`): one left at its default would make
/// a keepalived of a test running beside it refuse to start ("daemon is already running").
pub fn keepalived_pid_files(dir: &std::path::Path, tag: &str) -> String {
    let d = dir.display();
    format!("-p {d}/{tag}.pid -r {d}/{tag}-vrrp.pid -c {d}/{tag}-checkers.pid -b {d}/{tag}-bfd.pid")
}

/// A namespace `ns`; with [`Netns::veth`], a link `host_if` on the host side and `eth0`
/// inside it.
pub struct Netns {
    pub ns: String,
    pub host_if: Option<String>,
    /// The programs' working directory (removed on drop).
    pub dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Netns {
    /// A new namespace named `{prefix}{pid}` with its loopback up.
    pub fn new(prefix: &str) -> Netns {
        let pid = std::process::id();
        let ns = format!("{prefix}{pid}");
        let dir = std::env::temp_dir().join(format!("rvs-{prefix}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("lab directory");
        let _ = sh(&format!("ip netns del {ns}"));
        let lab = Netns {
            ns,
            host_if: None,
            dir,
            children: Vec::new(),
        };
        lab.must(&format!("ip netns add {}", lab.ns));
        lab.must(&format!("ip -n {} link set lo up", lab.ns));
        lab
    }

    /// Joins the namespace to the host: `host_if` with `host_addr` (CIDR) on the host,
    /// `eth0` with `ns_addr` (CIDR) inside.
    pub fn veth(mut self, host_if: &str, host_addr: &str, ns_addr: &str) -> Netns {
        let _ = sh(&format!("ip link del {host_if}"));
        self.must(&format!(
            "ip link add {host_if} type veth peer name eth0 netns {}",
            self.ns
        ));
        self.host_if = Some(host_if.to_string());
        self.must(&format!("ip addr add {host_addr} dev {host_if}"));
        self.must(&format!("ip link set {host_if} up"));
        self.must(&format!("ip -n {} addr add {ns_addr} dev eth0", self.ns));
        self.must(&format!("ip -n {} link set eth0 up", self.ns));
        self
    }

    fn must(&self, cmd: &str) {
        assert!(sh(cmd), "{cmd}");
    }

    /// Runs `cmd` inside the namespace; whether it succeeded.
    pub fn exec(&self, cmd: &str) -> bool {
        sh(&format!(
            "ip netns exec {} sh -c '{}'",
            self.ns,
            cmd.replace('\'', "'\\''")
        ))
    }

    /// Starts `cmd` inside the namespace, in [`Netns::dir`], under `name`, in a process
    /// group of its own (what it forks goes with it).
    pub fn start(&mut self, name: &str, cmd: &str) {
        let log = std::fs::File::create(self.log_path(name)).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "sh", "-c"])
            .arg(format!("exec {cmd}"))
            .process_group(0)
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("ip netns exec");
        self.children.push((name.to_string(), child));
    }

    /// Starts Debian's keepalived (`-P`: its VRRP side, and BFD's) on `conf`, written to
    /// `keepalived.conf` in [`Netns::dir`] (the path is given back): in the foreground, its
    /// output in [`Netns::log`]`("keepalived")`, its pid files (`k.pid`, `k-vrrp.pid`,
    /// ...) and its dump (SIGUSR1, `keepalived.data`) in the directory.
    pub fn start_keepalived(&mut self, conf: &str) -> PathBuf {
        assert!(
            std::path::Path::new(KEEPALIVED).exists(),
            "{KEEPALIVED} is missing (scripts/setup installs Debian's keepalived)"
        );
        let path = self.dir.join("keepalived.conf");
        std::fs::write(&path, conf).expect("keepalived.conf");
        let cmd = format!(
            "env TMPDIR={} {KEEPALIVED} -n -l -P -f {} {}",
            self.dir.display(),
            path.display(),
            keepalived_pid_files(&self.dir, "k")
        );
        self.start("keepalived", &cmd);
        path
    }

    /// Where what [`Netns::start`] started under `name` writes its output.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// What [`Netns::start`] started under `name` has written so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Stops what [`Netns::start`] started under `name`.
    pub fn stop(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, c) = self.children.remove(i);
            stop_group(c);
        }
    }

    /// Waits (10 s at most) until something listens on `proto` ("tcp" or "udp") `port`
    /// inside the namespace.
    pub fn wait_port(&self, proto: &str, port: u16) {
        let flag = if proto == "udp" { "-uln" } else { "-tln" };
        wait_for(
            &format!("{proto} port {port} listening in {}", self.ns),
            Duration::from_secs(10),
            || {
                Command::new("ip")
                    .args(["netns", "exec", &self.ns, "ss", flag])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(":{port} ")))
                    .unwrap_or(false)
            },
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for (_, c) in self.children.drain(..) {
            stop_group(c);
        }
        if let Some(i) = &self.host_if {
            let _ = sh(&format!("ip link del {i}"));
        }
        let _ = sh(&format!("ip netns del {}", self.ns));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills a child's whole process group (socat's forked children too) and reaps it.
fn stop_group(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", c.id())])
        .stderr(Stdio::null())
        .status();
    let _ = c.kill();
    let _ = c.wait();
}

/// Deletes a network interface when dropped (a TAP a test made, even on failure).
pub struct LinkGuard(pub String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = sh(&format!("ip link del {}", self.0));
    }
}
