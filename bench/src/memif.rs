//! The two-process wiring: the generator (this process, memif server) and the device under
//! test in its own process (memif client) on its own core: `dpdk-testpmd` in io mode as
//! the yardstick, or the `rvs` daemon itself on a configuration written for the run.
//!
//! ```text
//!   generator --memif id 0--> DUT (testpmd io | rvs) --memif id 1--> generator
//! ```

use crate::gen::Kind;
use crate::generate::{generate, GenPorts};
use crate::run::{Method, Outcome, Scenario, VIP};
use dpdk::{Eal, EalArgs, Mempool, Port, PortConf};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The DUT's port MACs (set through the memif devargs).
const DUT_MAC: [&str; 2] = ["02:00:00:00:00:a0", "02:00:00:00:00:a1"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dut {
    Testpmd,
    Rvs,
}

fn rvs_config(s: &Scenario, socket: &Path, prefix: &str, lcore: u32) -> String {
    let proto = if s.kind == Kind::Udp { "udp" } else { "tcp" };
    let method = match s.method {
        Method::Dr => "dr",
        Method::Tun => "tun",
        _ => "nat",
    };
    let sock = socket.display();
    let mut c = format!(
        r#"# Written by rvs-bench for one memif run.
[eal]
lcores = "0,{lcore}"
hugepages = false
memory_mb = 1024
file_prefix = "{prefix}"
log_level = "error"

[dataplane]
forward = "lb"
connections = {conns}

[[port]]
name = "clients"
device = "net_memif0,role=client,id=0,socket={sock},mac={m0}"
addresses = ["192.0.2.1/24"]

[[port]]
name = "servers"
device = "net_memif1,role=client,id=1,socket={sock},mac={m1}"
addresses = ["10.1.0.254/24"]

[control]
socket = "{control}"

[[route]]
prefix = "10.1.0.0/24"
port = "servers"

[[route]]
prefix = "10.2.0.0/16"
port = "servers"
via = "10.1.0.253"

[[route]]
prefix = "0.0.0.0/0"
port = "clients"
via = "192.0.2.254"

[[neighbour]]
address = "10.1.0.253"
mac = "02:be:00:00:00:fe"

[[neighbour]]
address = "192.0.2.254"
mac = "02:be:00:00:00:fe"
"#,
        conns = s.conn_capacity,
        control = socket.with_file_name("rvs.sock").display(),
        m0 = DUT_MAC[0],
        m1 = DUT_MAC[1],
    );
    for i in 1..=4 {
        c += &format!("\n[[neighbour]]\naddress = \"10.1.0.{i}\"\nmac = \"02:5e:00:00:00:0{i}\"\n");
    }
    for v in 0..s.vips {
        let vip = std::net::Ipv4Addr::from(u32::from_be_bytes(VIP).wrapping_add(v));
        c += &format!(
            "\n[[service]]\nprotocol = \"{proto}\"\naddress = \"{vip}\"\nport = 80\nscheduler = \"rr\"\n"
        );
        for i in 1..=4 {
            let addr = if s.method == Method::Tun {
                format!("10.2.0.{i}")
            } else {
                format!("10.1.0.{i}")
            };
            c += &format!(
                "\n[[service.server]]\naddress = \"{addr}\"\nport = 80\nweight = 1\nmethod = \"{method}\"\n"
            );
        }
    }
    c
}

fn wait_link(ports: &[&Port], child: &mut Child, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if ports
            .iter()
            .all(|p| p.link().map(|l| l.up).unwrap_or(false))
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the device under test exited ({status})"));
        }
        if Instant::now() > deadline {
            return Err("memif links did not come up".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child, dut: Dut) {
    match dut {
        // testpmd leaves at a line on stdin (or its end).
        Dut::Testpmd => {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
        }
        Dut::Rvs => {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One run against a DUT process on `dut_lcore` (its main thread shares the generator's
/// CPU but only waits).
pub fn run(
    eal: &Eal,
    pool: Mempool,
    n: u32,
    s: &Scenario,
    dut: Dut,
    dut_lcore: u32,
    rvs_bin: &Path,
) -> Result<Outcome, String> {
    let dir = PathBuf::from(format!("/tmp/rvs-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let socket = dir.join("memif.sock");
    let log_path = dir.join("dut.log");
    let result = (|| {
        let err = |e: dpdk::Error| format!("{}: {e}", s.name);
        let sock = socket.display();
        let a_id = eal
            .attach(&format!(
                "net_memif{},role=server,id=0,socket={sock}",
                2 * n
            ))
            .map_err(err)?[0];
        let b_id = eal
            .attach(&format!(
                "net_memif{},role=server,id=1,socket={sock}",
                2 * n + 1
            ))
            .map_err(err)?[0];
        let mut a = Port::configure(eal, a_id, &PortConf::default(), pool).map_err(err)?;
        let mut b = Port::configure(eal, b_id, &PortConf::default(), pool).map_err(err)?;
        let (_a_rx, mut a_tx) = a.take_queues().ok_or("port A queues")?;
        let (mut b_rx, _b_tx) = b.take_queues().ok_or("port B queues")?;
        a.start().map_err(err)?;
        b.start().map_err(err)?;

        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let prefix = format!("rvs-bench-dut-{}-{n}", std::process::id());
        let mut cmd = match dut {
            Dut::Testpmd => {
                let mut c = Command::new("dpdk-testpmd");
                let mut eal = EalArgs::new(format!("0,{dut_lcore}"), prefix.clone());
                eal.log_level = "error".into();
                eal.memory_mb = Some(1024);
                eal.vdevs = (0..2)
                    .map(|i| {
                        format!(
                            "net_memif{i},role=client,id={i},socket={sock},mac={}",
                            DUT_MAC[i]
                        )
                    })
                    .collect();
                c.args(eal.to_vec());
                c.args([
                    "--",
                    &format!("--forward-mode={}", s.method.name()),
                    "--auto-start",
                    "--nb-cores=1",
                    "--rxq=1",
                    "--txq=1",
                    "--total-num-mbufs=32768",
                ]);
                c
            }
            Dut::Rvs => {
                let conf = dir.join("rvs.toml");
                std::fs::write(&conf, rvs_config(s, &socket, &prefix, dut_lcore))
                    .map_err(|e| e.to_string())?;
                let mut c = Command::new(rvs_bin);
                c.arg("--config").arg(&conf);
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: cannot start the device under test: {e}", s.name))?;
        if let Err(e) = wait_link(&[&a, &b], &mut child, Duration::from_secs(30)) {
            stop(child, dut);
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("{}: {e}\n{log}", s.name));
        }
        // rvs starts its workers after its ports; give it a moment.
        std::thread::sleep(Duration::from_millis(300));

        let traffic = s.traffic(parse_mac(DUT_MAC[0]));
        let mut out = Outcome::for_scenario(s, "memif");
        let ports = GenPorts {
            eal,
            pool: &pool,
            tx: &mut a_tx[..1],
            rx: &mut b_rx[..1],
            lane_cpus: &[],
        };
        let generated = generate(ports, traffic, s, &[], 0, &mut out);
        stop(child, dut);
        generated?;
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if std::env::var_os("RVS_BENCH_DUT_LOG").is_some() {
            eprint!("{log}");
        }
        let (drops, tx_dropped) = dut_drops(&log);
        out.drops = drops;
        if tx_dropped > 0 {
            out.drops.push(("DUT tx full".into(), tx_dropped));
        }
        out.sink_overflow = tx_dropped;
        drop((_a_rx, a_tx, b_rx, _b_tx));
        a.close().map_err(err)?;
        b.close().map_err(err)?;
        Ok(out)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The drops the device under test reported when it stopped: rvs's by reason ("Drops: no
/// route: 3, table full: 2   To-host: ..." per worker), and the last (accumulated)
/// "TX-dropped: N" of rvs or testpmd, given apart (its transmit ring towards the generator
/// was full). testpmd's "RX-dropped" counts as "DUT rx dropped".
fn dut_drops(log: &str) -> (Vec<(String, u64)>, u64) {
    let mut drops: Vec<(String, u64)> = Vec::new();
    let mut add = |name: &str, n: u64| match drops.iter_mut().find(|(r, _)| r == name) {
        Some((_, t)) => *t += n,
        None => drops.push((name.to_string(), n)),
    };
    let last = |key: &str| {
        log.lines()
            .rev()
            .find_map(|l| {
                let rest = &l[l.find(key)? + key.len()..];
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
            .unwrap_or(0)
    };
    for line in log.lines() {
        let Some(at) = line.find("Drops: ") else {
            continue;
        };
        let list = &line[at + 7..];
        let list = list.split("   ").next().unwrap_or("");
        for item in list.split(", ") {
            if let Some((name, n)) = item.rsplit_once(": ") {
                if let Ok(n) = n.trim().parse::<u64>() {
                    add(name.trim(), n);
                }
            }
        }
    }
    let rx_dropped = last("RX-dropped: ");
    if rx_dropped > 0 {
        add("DUT rx dropped", rx_dropped);
    }
    (drops, last("TX-dropped: "))
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, part) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duts_configuration_has_a_service_per_vip() {
        let mut s = crate::run::Scenario {
            name: "nat-tcp-64-1".into(),
            method: Method::Nat,
            kind: Kind::Tcp,
            flows: 1,
            vips: 3,
            size: 60,
            seconds: 1.0,
            rate: None,
            conn_capacity: 1 << 16,
            churn: 0,
            reloads: 0,
            listing: false,
            yardstick: None,
            wiring: crate::run::Wiring::Memif(Dut::Rvs),
            workers: None,
        };
        let text = rvs_config(&s, Path::new("/tmp/x.sock"), "p", 1);
        let source = rvs_control::config::Source {
            file: "bench.toml".into(),
            text,
        };
        let c = rvs_control::config::Config::parse(source).unwrap();
        let vips: Vec<String> = c.lb.services.iter().map(|v| v.addr.to_string()).collect();
        assert_eq!(vips, ["192.0.2.10", "192.0.2.11", "192.0.2.12"]);
        assert!(c.lb.services.iter().all(|v| v.servers.len() == 4));
        s.vips = 1;
        let one = rvs_config(&s, Path::new("/tmp/x.sock"), "p", 1);
        assert_eq!(one.matches("[[service]]").count(), 1);
    }

    #[test]
    fn the_duts_drops_are_read_from_its_exit_statistics() {
        let rvs = "  RX-packets: 9             TX-packets: 5             TX-dropped: 1\n\
                   \x20 Drops: no route: 3, table full: 2   To-host: 0 (to the port's host twin)\n\
                   \x20 Drops: 0   To-host: 4 (to the port's host twin)\n\
                   \x20 Drops: table full: 5   To-host: 0 (x)\n\
                   \x20 RX-packets: 20            TX-packets: 11            TX-dropped: 2\n";
        let (drops, tx) = dut_drops(rvs);
        assert_eq!(
            drops,
            [("no route".to_string(), 3), ("table full".to_string(), 7)]
        );
        assert_eq!(tx, 2, "the accumulated (last) figure");
        let testpmd = "  RX-packets: 100  RX-dropped: 4  RX-total: 104\n  TX-packets: 90  TX-dropped: 10  TX-total: 100\n";
        assert_eq!(
            dut_drops(testpmd),
            (vec![("DUT rx dropped".to_string(), 4)], 10)
        );
        assert_eq!(dut_drops(""), (vec![], 0));
    }
}
