//! testpmd's `port stop|start (port_id|all)`, `port config all rxq|txq N` and `set
//! nbcore N` on the running appliance, and `start`'s check that every port is started.
//!
//! A port is stopped only while forwarding is (testpmd asks for its forwarding ports to
//! be taken out first, and every rvs port forwards); the device then drops what arrives
//! and its link goes down, so a VRRP instance on it goes to FAULT as on a link lost.
//! The ports lock is held while forwarding is switched on and while a port changes state,
//! so forwarding never comes on under a port being stopped or started.

use super::*;

impl Appliance {
    /// testpmd's `start`: refused while a port is stopped.
    pub(super) fn start_forwarding(&self) -> Reply {
        let ports = self.ports.lock();
        if ports.iter().any(|p| !p.port.started()) {
            return Reply::fail(1, "Not all ports were started");
        }
        let already = self.forwarding.swap(true, Ordering::Relaxed);
        drop(ports);
        if already {
            return Reply::ok("Packet forwarding already started\n");
        }
        self.clear_fwd_stats();
        Reply::ok(self.fwd_config())
    }

    /// testpmd's `port start|stop (port_id|all)`, in its words and order: the whole
    /// transcript on the error stream when any port was refused.
    pub(super) fn port_start_stop(&self, start: bool, which: &str) -> Reply {
        let ids = match self.port_indices(which) {
            Ok(v) => v,
            Err(e) => return Reply::fail(2, e),
        };
        let ports = self.ports.lock();
        let (mut text, mut failed) = (String::new(), false);
        if !start {
            text.push_str("Stopping ports...\n");
        }
        let forwarding = self.forwarding.load(Ordering::Relaxed);
        let (mut changed, mut all_started) = (false, true);
        for &i in &ids {
            let Some(p) = ports.get(i) else { continue };
            let port = &p.port;
            let line = if start {
                if port.started() {
                    Some(format!("Port {i} is now not stopped"))
                } else {
                    all_started = false;
                    match port.start() {
                        Ok(()) => {
                            changed = true;
                            let mac = show::mac_text(port.describe().mac);
                            let _ = writeln!(text, "Port {i}: {mac}");
                            None
                        }
                        // Started, but not as it was (its redirection table).
                        Err(e) if port.started() => {
                            changed = true;
                            Some(format!("Port {i}: {e}"))
                        }
                        Err(e) => Some(format!("Fail to start port {i}: {e}")),
                    }
                }
            } else if forwarding {
                Some(format!(
                    "Please remove port {i} from forwarding configuration."
                ))
            } else if port.started() {
                match port.stop() {
                    Ok(()) => {
                        changed = true;
                        None
                    }
                    Err(e) => Some(format!("Port {i} can not be set into stopped: {e}")),
                }
            } else {
                None
            };
            if let Some(line) = line {
                failed = true;
                let _ = writeln!(text, "{line}");
            }
        }
        if !start && forwarding {
            text.push_str("(every rvs port forwards: stop packet forwarding first, with `stop`)\n");
        }
        if changed {
            text.push_str("Checking link statuses...\n");
            for (i, p) in ports.iter().enumerate() {
                let _ = writeln!(text, "Port {i} {}", p.port.describe().link);
            }
        } else if start && all_started {
            failed = true;
            text.push_str("Please stop the ports first\n");
        }
        text.push_str("Done\n");
        if failed {
            Reply::fail(1, text)
        } else {
            Reply::ok(text)
        }
    }

    /// testpmd's `set nbcore N`, in its words. Every rvs worker owns the flows the NIC
    /// puts on its queues (its connection table), so all of them forward: their number is
    /// taken, another (up to the EAL's lcores) refused with where it is set.
    pub(super) fn set_nbcore(&self, n: &str) -> Reply {
        let Ok(n) = n.parse::<usize>() else {
            return Reply::fail(
                2,
                format!("Bad arguments: set nbcore N (a core count), not {n:?}"),
            );
        };
        if self.forwarding.load(Ordering::Relaxed) {
            return Reply::fail(1, "Please stop forwarding first");
        }
        let workers = self.workers.len();
        let lcores = self.worker_lcores.max(workers);
        if n > lcores {
            return Reply::fail(
                1,
                format!("nb fwd cores {n} > {lcores} (max. number of configured lcores) - ignored"),
            );
        }
        if n != workers {
            return Reply::fail(
                1,
                format!("rvs forwards on all its {workers} worker(s): each owns the flows the NIC puts on its queues (its connection table); another count needs other workers (eal.lcores, [[worker]], or the command line's --nb-cores) and a restart"),
            );
        }
        Reply::ok(format!("Number of forwarding cores set to {n}\n"))
    }

    /// testpmd's `port config all rxq|txq N`. rvs's queues are fixed when it starts
    /// (a port's rx queues are those the configuration's workers poll, its tx queues one
    /// per worker): with every port stopped, the count each port already has is taken,
    /// another is refused with where it is set.
    pub(super) fn port_config_queues(&self, which: &str, n: &str) -> Reply {
        let rx = which == "rxq";
        let Ok(n) = n.parse::<u16>() else {
            return Reply::fail(
                2,
                format!("Bad arguments: port config all {which} N (a queue count)"),
            );
        };
        let ports = self.ports.lock();
        if ports.iter().any(|p| p.port.started()) {
            return Reply::fail(1, "Please stop all ports first");
        }
        let side = if rx { "rx" } else { "tx" };
        for (i, p) in ports.iter().enumerate() {
            let d = p.port.describe();
            let (have, max) = if rx {
                (d.rx_queues, d.max_rx_queues)
            } else {
                (d.tx_queues, d.max_tx_queues)
            };
            if n > max {
                return Reply::fail(
                    1,
                    format!("Fail: input {which} ({n}) can't be greater than max_{side}_queues ({max}) of port {i}"),
                );
            }
            if n != have {
                let set_by = if rx {
                    "ports[].rx_queues, each queue polled by the worker whose rx list names it"
                } else {
                    "one per worker"
                };
                return Reply::fail(
                    1,
                    format!("port {i} ({}) has {have} {side} queue(s), set when rvs starts ({set_by}): change the configuration and restart rvs", p.name),
                );
            }
        }
        Reply::ok("")
    }
}
