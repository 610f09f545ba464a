//! The console's `show` renderers and the connection listing: ports, forwarding
//! statistics, workers, connections, neighbours, routes.

use super::*;

impl Appliance {
    /// Connection entries of all workers (at most [`CONN_LISTING_LIMIT`] each), each with
    /// its seconds left. Workers hand them over a slice of their table per pass; all are
    /// asked at once, so stalled ones cost one wait, not one each.
    /// What the listing lacks goes to the second part: a worker that did not answer (not
    /// polling), one whose entries passed the limit.
    pub(super) fn connections(&self) -> (Vec<(rvs_core::conn::Conn, u32)>, String) {
        let mut all = Vec::new();
        let mut lacking = String::new();
        let answers: Vec<_> = std::thread::scope(|s| {
            let asked: Vec<_> = (self.workers.iter())
                .map(|w| {
                    s.spawn(|| {
                        w.stats.request_connections(
                            CONN_LISTING_CHUNK,
                            CONN_LISTING_LIMIT,
                            Duration::from_secs(1),
                        )
                    })
                })
                .collect();
            asked.into_iter().map(|a| a.join().ok().flatten()).collect()
        });
        for (w, listed) in self.workers.iter().zip(answers) {
            let Some((now, conns)) = listed else {
                let _ = writeln!(
                    lacking,
                    "worker {} (lcore {}) did not answer within 1 s: its connections are not listed",
                    w.index, w.lcore
                );
                continue;
            };
            if conns.len() >= CONN_LISTING_LIMIT {
                let _ = writeln!(
                    lacking,
                    "worker {} (lcore {}): listed up to the limit, {CONN_LISTING_LIMIT} entries; any beyond are not",
                    w.index, w.lcore
                );
            }
            all.extend(
                conns
                    .into_iter()
                    .map(|c| (c, c.expires.saturating_sub(now))),
            );
        }
        (merge_templates(all), lacking)
    }

    pub(super) fn port_indices(&self, which: &str) -> Result<Vec<usize>, String> {
        if which == "all" {
            return Ok((0..self.ports.lock().len()).collect());
        }
        self.port_index(which).map(|i| vec![i])
    }

    /// One port by its number.
    fn port_index(&self, which: &str) -> Result<usize, String> {
        let n = self.ports.lock().len();
        match which.parse::<usize>() {
            Ok(i) if i < n => Ok(i),
            _ => Err(format!(
                "Invalid port {which} (ports: 0..{})",
                n.saturating_sub(1)
            )),
        }
    }

    pub(super) fn show_port(&self, what: &str, which: &str) -> Reply {
        let ids = match self.port_indices(which) {
            Ok(v) => v,
            Err(e) => return Reply::fail(2, e),
        };
        let ports = self.ports.lock();
        let mut out = String::new();
        if what == "summary" {
            out.push_str(&summary_header(ports.len()));
        }
        for i in ids {
            let p = &ports[i];
            match what {
                "info" => out.push_str(&port_info(i, &p.name, &p.port.describe())),
                "summary" => out.push_str(&summary_line(i, &p.name, &p.port.describe())),
                "stats" => match p.port.counters() {
                    Ok(s) => {
                        out.push_str(&report::port_stats(i as u16, &p.name, &s));
                        for (q, (rx, tx)) in s.q_ipackets.iter().zip(&s.q_opackets).enumerate() {
                            if *rx + *tx > 0 {
                                let _ = writeln!(
                                    out,
                                    "  Queue {q:<2} RX-packets: {rx:<14} TX-packets: {tx}"
                                );
                            }
                        }
                        let now = Instant::now();
                        let mut last = self.last_port_show.lock();
                        let (pps, bps) = match last.get(&i) {
                            Some((t, before)) => {
                                let secs = now.duration_since(*t).as_secs_f64().max(0.001);
                                let r = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs) as u64;
                                (
                                    (
                                        r(s.ipackets, before.ipackets),
                                        r(s.opackets, before.opackets),
                                    ),
                                    (
                                        r(s.ibytes, before.ibytes) * 8,
                                        r(s.obytes, before.obytes) * 8,
                                    ),
                                )
                            }
                            None => ((0, 0), (0, 0)),
                        };
                        let _ = writeln!(
                            out,
                            "  Throughput (since last show)\n  Rx-pps: {:>12}          Rx-bps: {:>12}\n  Tx-pps: {:>12}          Tx-bps: {:>12}",
                            pps.0, bps.0, pps.1, bps.1
                        );
                        last.insert(i, (now, s));
                    }
                    Err(e) => return Reply::fail(1, format!("port {i}: {e}")),
                },
                "xstats" => match p.port.extended_counters() {
                    Ok(v) => {
                        let _ = writeln!(out, "###### NIC extended statistics for port {i:<2}");
                        let hide_zero = self.xstats_hide_zero.load(Ordering::Relaxed);
                        for (name, value) in v.iter().filter(|(_, v)| *v != 0 || !hide_zero) {
                            let _ = writeln!(out, "{name}: {value}");
                        }
                    }
                    Err(e) => return Reply::fail(1, format!("port {i}: {e}")),
                },
                other => {
                    return Reply::fail(
                        2,
                        format!("show port {other}: info, summary, stats or xstats"),
                    )
                }
            }
        }
        Reply::ok(out)
    }

    pub(super) fn clear_port_stats(&self, which: &str) -> Reply {
        let ids = match self.port_indices(which) {
            Ok(v) => v,
            Err(e) => return Reply::fail(2, e),
        };
        let ports = self.ports.lock();
        let mut out = String::new();
        for i in ids {
            if let Err(e) = ports[i].port.reset_counters() {
                return Reply::fail(1, format!("port {i}: {e}"));
            }
            self.last_port_show.lock().remove(&i);
            let _ = writeln!(out, "\n  NIC statistics for port {i} cleared");
        }
        Reply::ok(out)
    }

    /// testpmd's `clear port xstats all|N`: quiet, a driver's refusal in testpmd's words.
    pub(super) fn clear_port_xstats(&self, which: &str) -> Reply {
        let ids = match self.port_indices(which) {
            Ok(v) => v,
            Err(e) => return Reply::fail(2, e),
        };
        let ports = self.ports.lock();
        for i in ids {
            if let Err(e) = ports[i].port.reset_extended_counters() {
                return Reply::fail(
                    1,
                    format!("nic_xstats_clear: Error: failed to reset xstats (port {i}): {e}"),
                );
            }
            self.last_port_show.lock().remove(&i);
        }
        Reply::ok("")
    }

    /// testpmd's `set link-up|link-down port N`: quiet, or testpmd's failure line and the
    /// driver's reason. A VRRP instance on a port whose link is down goes to FAULT, as
    /// keepalived's on an interface that goes down.
    pub(super) fn set_link(&self, up: bool, which: &str) -> Reply {
        // One port (testpmd's takes no `all`).
        let i = match self.port_index(which) {
            Ok(i) => i,
            Err(e) => return Reply::fail(2, e),
        };
        let ports = self.ports.lock();
        match ports[i].port.set_link(up) {
            Ok(()) => Reply::ok(""),
            Err(e) => Reply::fail(
                1,
                format!(
                    "\nSet link {} fail.\nport {i} ({}): {e}",
                    if up { "up" } else { "down" },
                    ports[i].name
                ),
            ),
        }
    }

    /// testpmd's `set promisc|allmulti (port_id|all) (on|off)`. Multicast (VRRP adverts,
    /// IPv6 neighbour discovery) must still arrive: a port that leaves promiscuous mode
    /// takes all-multicast mode (or, its device without the mode, stays promiscuous), one
    /// that is not promiscuous keeps it, and one a use_vmac VRRP instance speaks on stays
    /// promiscuous (frames to its virtual router MAC).
    pub(super) fn set_port_mode(&self, mode: &str, which: &str, on: &str) -> Reply {
        let promisc = mode == "promisc";
        let on = match on {
            "on" => true,
            "off" => false,
            _ => return Reply::fail(2, format!("Bad argument {on:?}: on or off")),
        };
        let ids = match self.port_indices(which) {
            Ok(v) => v,
            Err(e) => return Reply::fail(2, e),
        };
        let ports = self.ports.lock();
        if !on {
            let rows = self.vrrp.lock().clone();
            let rows = rows.map(|r| r.lock().clone()).unwrap_or_default();
            for &i in &ids {
                let p = &ports[i];
                let speaks_on = |r: &&crate::vrrp::InstanceStatus| {
                    r.vmac.is_some()
                        && (r.interface == p.name || p.twin.as_ref() == Some(&r.interface))
                };
                let refusal = match rows.iter().find(speaks_on) {
                    Some(r) if promisc => Some(format!(
                        "vrrp_instance {} uses a VMAC (use_vmac), whose frames need promiscuous mode",
                        r.name
                    )),
                    _ if !promisc && !p.port.describe().promiscuous => Some(
                        "not promiscuous, so VRRP adverts and IPv6 neighbour discovery need all-multicast mode"
                            .to_string(),
                    ),
                    _ => None,
                };
                if let Some(why) = refusal {
                    return Reply::fail(1, format!("port {i} ({}): {why}: left on", p.name));
                }
            }
        }
        let (mut out, mut err) = (String::new(), String::new());
        let verb = if on { "enabling" } else { "disabling" };
        for i in ids {
            let port = &ports[i].port;
            if !promisc {
                if let Err(e) = port.set_allmulticast(on) {
                    let _ = writeln!(
                        err,
                        "Error during {verb} all-multicast mode for port {i}: {e} - ignore"
                    );
                }
                continue;
            }
            if let Err(e) = port.set_promiscuous(on) {
                let _ = writeln!(
                    err,
                    "Error during {verb} promiscuous mode for port {i}: {e} - ignore"
                );
                continue;
            }
            if !on && !port.describe().allmulticast {
                match port.set_allmulticast(true) {
                    Ok(()) => {
                        let _ = writeln!(
                            out,
                            "port {i}: all-multicast mode on (VRRP adverts and IPv6 neighbour discovery are multicast)"
                        );
                    }
                    // A device without the mode keeps taking every frame.
                    Err(e) => {
                        let back = port.set_promiscuous(true).map_or_else(
                            |e| format!("and promiscuous mode did not come back on: {e}"),
                            |()| "promiscuous mode left on (VRRP adverts and IPv6 neighbour discovery are multicast)".into(),
                        );
                        let _ = writeln!(
                            err,
                            "Error during enabling all-multicast mode for port {i}: {e} - {back}"
                        );
                    }
                }
            }
        }
        Reply {
            status: i32::from(!err.is_empty()),
            out,
            err,
        }
    }

    /// The one port `which` names (not `all`), for a command of `usage`.
    fn one_port(&self, which: &str, usage: &str) -> Result<(usize, Arc<dyn PortDevice>), Reply> {
        match self.port_indices(which) {
            Ok(v) if v.len() == 1 => Ok((v[0], self.ports.lock()[v[0]].port.clone())),
            Ok(_) => Err(Reply::fail(2, format!("one port: {usage}"))),
            Err(e) => Err(Reply::fail(2, e)),
        }
    }

    /// testpmd's `show rxq|txq info N QUEUE`: the queue as its driver describes it, in
    /// testpmd's words; a driver's refusal as testpmd reports it.
    pub(super) fn show_queue_info(&self, rx: bool, which: &str, queue: &str) -> Reply {
        let usage = "show rxq|txq info N QUEUE";
        let (i, port) = match self.one_port(which, usage) {
            Ok(p) => p,
            Err(r) => return r,
        };
        let Ok(q) = queue.parse::<u16>() else {
            return Reply::fail(2, format!("{usage}: {queue:?} is not a queue number"));
        };
        let kind = if rx { "RX" } else { "TX" };
        match port.queue_info(rx, q) {
            Ok(info) => Reply::ok(queue_info_text(i, q, rx, &info)),
            Err((reason, errno)) => Reply::fail(
                1,
                format!(
                    "Failed to retrieve information for port: {i}, {kind} queue: {q}\nerror desc: {reason}(-{errno})"
                ),
            ),
        }
    }

    /// testpmd's `show port N rss reta [SIZE (MASK[,MASK]...)]`: the redirection table's
    /// entries (all of them, or those the 64-entry groups' masks select), a line each.
    pub(super) fn show_rss_reta(&self, which: &str, selection: &[&str]) -> Reply {
        let (i, port) = match self.one_port(which, "show port N rss reta [SIZE (MASK,...)]") {
            Ok(p) => p,
            Err(r) => return r,
        };
        let size = usize::from(port.describe().reta_size);
        if size == 0 {
            return Reply::fail(1, format!("port {i}: no RSS redirection table"));
        }
        let masks: Vec<u64> = match selection {
            [] => vec![u64::MAX; size.div_ceil(64)],
            [n, masks] => {
                if n.parse::<usize>().ok() != Some(size) {
                    return Reply::fail(
                        1,
                        format!("Invalid redirection table size: {n} (the port's: {size})"),
                    );
                }
                let parsed: Result<Vec<u64>, _> = masks
                    .trim_matches(|c| c == '(' || c == ')')
                    .split(',')
                    .map(|m| u64::from_str_radix(m.trim().trim_start_matches("0x"), 16))
                    .collect();
                match parsed {
                    Ok(m) if !m.is_empty() && m.len() <= size.div_ceil(64) => m,
                    _ => {
                        return Reply::fail(
                            2,
                            format!("Invalid masks {masks:?}: hex, one per 64 entries"),
                        )
                    }
                }
            }
            _ => return Reply::fail(2, "show port N rss reta [SIZE (MASK,...)]"),
        };
        match port.rss_reta() {
            Err(e) => Reply::fail(1, format!("Failed to get RSS RETA info: {e}")),
            Ok(table) => {
                let mut out = String::new();
                for (i, q) in table.iter().enumerate() {
                    if masks.get(i / 64).is_some_and(|m| m & (1 << (i % 64)) != 0) {
                        let _ = writeln!(out, "RSS RETA configuration: hash index={i}, queue={q}");
                    }
                }
                Reply::ok(out)
            }
        }
    }

    /// testpmd's `show port N ptypes`: the packet types the driver can classify, layer by
    /// layer. rvs reads none of them (it parses each frame itself) and asks the driver at
    /// start to classify none, so these are what it could, not what it does.
    pub(super) fn show_ptypes(&self, which: &str) -> Reply {
        let port = match self.one_port(which, "show port N ptypes") {
            Ok((_, p)) => p,
            Err(r) => return r,
        };
        let mut out = String::new();
        for (mask, layer) in crate::ports::PTYPE_LAYERS {
            match port.supported_ptypes(mask) {
                Ok(names) if !names.is_empty() => {
                    let _ = writeln!(out, "Supported {layer} ptypes:");
                    for n in names {
                        let _ = writeln!(out, "{n}");
                    }
                }
                Ok(_) => {
                    let _ = writeln!(out, "{layer} ptypes unsupported");
                }
                Err(e) => return Reply::fail(1, format!("{e}\n")),
            }
        }
        Reply::ok(out)
    }

    /// testpmd's `dump mempool|ring [NAME]`, `dump memzone|physmem|lcores|devargs|log_types`:
    /// DPDK's own dump of the object, as testpmd prints it.
    pub(super) fn dump_eal(&self, what: &str, name: Option<&&str>) -> Reply {
        use crate::ports::DumpObject;
        let (object, named) = match what {
            "mempool" => (DumpObject::Mempool, true),
            "ring" => (DumpObject::Ring, true),
            "memzone" => (DumpObject::Memzone, false),
            "physmem" => (DumpObject::Physmem, false),
            "lcores" => (DumpObject::Lcores, false),
            "devargs" => (DumpObject::Devargs, false),
            "log_types" => (DumpObject::LogTypes, false),
            _ => return Reply::fail(2, format!("Bad arguments: {DUMP_USAGE}, not {what:?}\n")),
        };
        if name.is_some() && !named {
            return Reply::fail(2, format!("Bad arguments: {DUMP_USAGE}\n"));
        }
        let Some(memory) = &self.memory else {
            return Reply::fail(1, "no EAL in this process: nothing to dump\n");
        };
        match memory.dump(object, name.copied()) {
            Ok(Some(text)) => Reply::ok(text),
            Ok(None) => Reply::fail(1, format!("Cannot find {what}\n")),
            Err(e) => Reply::fail(1, format!("{e}\n")),
        }
    }

    /// testpmd's `dump socket_mem`: each NUMA socket's heap and their total, in MiB, and
    /// from the second call on the change since the last.
    pub(super) fn dump_socket_mem(&self) -> Reply {
        let Some(memory) = &self.memory else {
            return Reply::fail(1, "no EAL in this process: nothing to dump\n");
        };
        let heaps = memory.socket_memory();
        let mut last = self.socket_mem_last.lock();
        let (text, totals) = socket_mem_text(&heaps, *last);
        *last = Some(totals);
        Reply::ok(text)
    }

    /// testpmd's `show port N rss-hash [key]`: the hash types in use (testpmd's names,
    /// groups too), and the key.
    pub(super) fn show_rss_hash(&self, which: &str, key: bool) -> Reply {
        let port = match self.one_port(which, "show port N rss-hash [key]") {
            Ok((_, p)) => p,
            Err(r) => return r,
        };
        if port.describe().hash_key_size == 0 {
            return Reply::fail(1, "dev_info did not provide a valid hash key size");
        }
        match port.rss_hash() {
            Err(e) => Reply::fail(1, format!("operation failed - {e}")),
            Ok((0, _)) => Reply::ok("RSS disabled\n"),
            Ok((hf, bytes)) => {
                let mut out = String::from("RSS functions:\n ");
                for f in crate::rss_types::in_use(hf) {
                    out.push_str(f);
                    out.push(' ');
                }
                out.push('\n');
                if key {
                    out.push_str("RSS key:\n");
                    for b in bytes {
                        let _ = write!(out, "{b:02X}");
                    }
                    out.push('\n');
                }
                Reply::ok(out)
            }
        }
    }

    /// `show config cores`: the workers' lcores, as testpmd lists its forwarding ones.
    pub(super) fn cores_config(&self) -> String {
        let lcores: String = self
            .workers
            .iter()
            .map(|w| format!(" {:>2}", w.lcore))
            .collect();
        format!("List of forwarding lcores:{lcores}\n")
    }

    /// `show config rxtx`: the mode and burst, then each port's queues and its first
    /// queues' ring settings and offloads, in testpmd's words.
    pub(super) fn rxtx_config(&self) -> String {
        let mode = ForwardMode::from_code(self.fwd_mode.load(Ordering::Relaxed));
        let ports = self.ports.lock();
        let described: Vec<crate::ports::PortDescription> =
            ports.iter().map(|p| p.port.describe()).collect();
        let burst = self.burst.load(Ordering::Relaxed);
        rxtx_text(&mode.to_string(), burst, self.workers.len(), &described)
    }

    /// `show config fwd` (and `start`'s answer): the mode and each worker's streams, as
    /// testpmd prints them.
    pub(super) fn fwd_config(&self) -> String {
        let mode = ForwardMode::from_code(self.fwd_mode.load(Ordering::Relaxed));
        let ports = self.ports.lock().len();
        // NUMA support as testpmd's: each port's pool and rings on its own socket.
        let mut out = format!(
            "{mode} packet forwarding - ports={ports} - cores={} - streams={} - NUMA support enabled, MP allocation mode: native\n",
            self.workers.len(),
            self.streams.len()
        );
        for w in &self.workers {
            let mine: Vec<&super::FwdStream> = self
                .streams
                .iter()
                .filter(|s| s.worker == w.index)
                .collect();
            let socket = self.worker_sockets.get(w.index).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "Logical Core {} (socket {socket}) forwards packets on {} streams:",
                w.lcore,
                mine.len()
            );
            for s in mine {
                // A device that does not say is shown on socket 0, as testpmd shows it.
                let _ = writeln!(
                    out,
                    "  RX P={}/Q={} (socket {}) -> TX P={}/Q={} (socket {}){}",
                    s.rx_port,
                    s.rx_queue,
                    s.rx_socket.unwrap_or(0),
                    s.tx_port,
                    s.tx_queue,
                    s.tx_socket.unwrap_or(0),
                    if mode == ForwardMode::Lb {
                        " (lb: each frame leaves by its verdict's port)"
                    } else {
                        ""
                    }
                );
            }
        }
        out
    }

    /// testpmd's `clear fwd stats all` (and its `start`): `show fwd stats` counts from
    /// now. The ports' counters, Prometheus' and `ipvsadm --stats` keep theirs.
    pub(super) fn clear_fwd_stats(&self) {
        *self.fwd_since.lock() = self
            .workers
            .iter()
            .map(|w| (w.stats.read(), w.stats.read_engine()))
            .collect();
    }

    /// testpmd's `set record-burst-stats on|off`: `show fwd stats` shows each worker's burst
    /// sizes, counted from now (once each worker has published them; one that does not
    /// poll is not waited for longer than a change is).
    pub(super) fn record_burst_stats(&self, on: bool) {
        for w in &self.workers {
            w.stats.set_recording_bursts(on);
        }
        if !on {
            return;
        }
        let polls: Vec<u64> = self.workers.iter().map(|w| w.stats.read().polls).collect();
        let deadline = Instant::now() + super::ADOPTION_LIMIT;
        let published = || {
            self.workers
                .iter()
                .zip(&polls)
                .all(|(w, &p)| w.stats.read().polls >= p + 2)
        };
        while !published() && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let mut since = self.fwd_since.lock();
        if since.len() != self.workers.len() {
            // Never started nor cleared: the other counters still count from boot.
            *since = vec![Default::default(); self.workers.len()];
        }
        for (w, (base, _)) in self.workers.iter().zip(since.iter_mut()) {
            let now = w.stats.read();
            base.rx_bursts = now.rx_bursts;
            base.tx_bursts = now.tx_bursts;
        }
    }

    /// `show fwd stats`: the workers' counters since the last `start` or `clear fwd stats`.
    pub(super) fn fwd_stats(&self) -> String {
        let mut out = String::new();
        let mut total = rvs_core::WorkerCounters::default();
        let since = self.fwd_since.lock().clone();
        for (i, w) in self.workers.iter().enumerate() {
            let (c, e) = match since.get(i) {
                Some((worker, engine)) => (
                    w.stats.read().since(worker),
                    w.stats.read_engine().since(engine),
                ),
                None => (w.stats.read(), w.stats.read_engine()),
            };
            let bursts = w.stats.recording_bursts();
            out.push_str(&report::worker_stats(w.index, w.lcore, &c, bursts));
            out.push_str(&report::engine_stats(&e));
            total.rx_packets += c.rx_packets;
            total.tx_packets += c.tx_packets;
            total.tx_dropped += c.tx_dropped;
            total.busy_cycles += c.busy_cycles;
        }
        let _ = writeln!(
            out,
            "\n  {:+^76}\n  RX-packets: {:<14} TX-packets: {:<14} TX-dropped: {:<14}\n  {}",
            " Accumulated forward statistics for all workers ",
            total.rx_packets,
            total.tx_packets,
            total.tx_dropped,
            "+".repeat(76)
        );
        // testpmd's record-core-cycles: the cycles of the passes that found frames, per
        // frame received (none received: no line, where testpmd's would divide by zero).
        let received = total.rx_packets;
        if self.record_core_cycles.load(Ordering::Relaxed) && received > 0 {
            let mode = ForwardMode::from_code(self.fwd_mode.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "\n  CPU cycles/packet={:.2} (total cycles={} / total {mode} packets={received}) at {} MHz Clock",
                total.busy_cycles as f64 / received as f64,
                total.busy_cycles,
                self.tsc_hz / 1_000_000
            );
        }
        out
    }

    pub(super) fn show_workers(&self) -> String {
        let mut out = format!(
            "{:<7}{:<7}{:>14}{:>8}{:>14}{:>14}{:>10}{:>12}{:>10}{:>10}  drops\n",
            "worker", "lcore", "polls", "busy", "rx", "tx", "hand-offs", "conns", "sleeps", "slept"
        );
        for w in &self.workers {
            let c = w.stats.read();
            let e = w.stats.read_engine();
            let drops: u64 = e.drops.iter().sum();
            let _ = writeln!(
                out,
                "{:<7}{:<7}{:>14}{:>7.1}%{:>14}{:>14}{:>10}{:>12}{:>10}{:>8}ms  {}",
                w.index,
                w.lcore,
                c.polls,
                c.busy_share() * 100.0,
                c.rx_packets,
                c.tx_packets,
                c.handoffs,
                w.stats.connections(),
                c.sleeps,
                c.slept_us / 1000,
                drops + c.malformed
            );
        }
        // With `[dataplane] stage_cycles`: where a packet's cycles go, since start.
        for w in &self.workers {
            let c = w.stats.read();
            if c.rx_packets == 0 || c.stage_cycles.iter().all(|&s| s == 0) {
                continue;
            }
            let stages: Vec<String> = rvs_core::stats::STAGES
                .iter()
                .zip(c.stage_cycles)
                .map(|(name, cycles)| format!("{name} {:.0}", cycles as f64 / c.rx_packets as f64))
                .collect();
            let _ = writeln!(
                out,
                "worker {} cycles per packet: {}",
                w.index,
                stages.join(", ")
            );
        }
        out
    }

    pub(super) fn show_conn(&self, filter: &[&str]) -> Reply {
        // The filter judged before the workers are asked (a listing may wait for them).
        let only = match filter {
            [] => None,
            [f] => match f.parse::<std::net::IpAddr>() {
                Ok(addr) => Some(rvs_core::conn::addr16(addr)),
                Err(_) => return Reply::fail(2, format!("show conn: {f:?} is not an address")),
            },
            _ => return Reply::fail(2, "show conn: one address at most (show conn [ADDR])"),
        };
        let (mut conns, lacking) = self.connections();
        if let Some(a) = only {
            conns.retain(|(c, _)| c.caddr == a || c.vaddr == a || c.daddr == a);
        }
        let calls = self.sync_daemons().map(|d| d.sip_calls());
        Reply {
            err: lacking,
            ..Reply::ok(listing::connections(
                &conns,
                (true, false),
                calls.as_deref(),
            ))
        }
    }

    pub(super) fn show_neighbours(&self) -> String {
        let d = self.director.lock();
        let mut out =
            String::from("Address                                  HWaddress          Source\n");
        for (a, m) in &d.neighbours {
            let mac = m
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            let _ = writeln!(out, "{:<40} {mac}  static", a.to_string());
        }
        out.push_str("(addresses learned from ARP / neighbour discovery live in each worker)\n");
        out
    }

    pub(super) fn show_routes(&self) -> String {
        let d = self.director.lock();
        let names: Vec<String> = self.ports.lock().iter().map(|p| p.name.clone()).collect();
        let mut out = String::from(
            "Destination                              Gateway                  Port\n",
        );
        let snap = d.snapshot();
        for r in &snap.routes {
            let port = names
                .get(usize::from(r.port))
                .cloned()
                .unwrap_or_else(|| r.port.to_string());
            let table = match r.table {
                rvs_core::engine::MAIN_TABLE => String::new(),
                t => format!(" table {t}"),
            };
            let _ = writeln!(
                out,
                "{:<40} {:<24} {port}{table}",
                format!("{}/{}", r.prefix, r.len),
                r.gateway
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "on-link".into())
            );
        }
        // Policy rules, as `ip rule` lists them (the kernel's own among them).
        for r in snap.rules() {
            let family = if r.ipv6 { "IPv6" } else { "IPv4" };
            let _ = writeln!(out, "rule {family} {}: {}", r.priority, r.words());
        }
        out
    }
}

/// `show config rxtx`'s text, as testpmd prints it (its first queues only, as testpmd's).
fn rxtx_text(
    mode: &str,
    burst: u16,
    cores: usize,
    ports: &[crate::ports::PortDescription],
) -> String {
    let mut out = format!(
        "  {mode} packet forwarding packets/burst={burst}\n  nb forwarding cores={cores} - nb forwarding ports={}\n",
        ports.len()
    );
    for (i, p) in ports.iter().enumerate() {
        let (rx, tx) = (&p.rxq, &p.txq);
        let _ = write!(
            out,
            "  port {i}: RX queue number: {} Tx queue number: {}\n    Rx offloads={:#x} Tx offloads={:#x}\n\
             \x20   RX queue: 0\n      RX desc={} - RX free threshold={}\n\
             \x20     RX threshold registers: pthresh={} hthresh={}  wthresh={}\n      RX Offloads={:#x}\n\
             \x20   TX queue: 0\n      TX desc={} - TX free threshold={}\n\
             \x20     TX threshold registers: pthresh={} hthresh={}  wthresh={}\n\
             \x20     TX offloads={:#x} - TX RS bit threshold={}\n",
            p.rx_queues,
            p.tx_queues,
            p.rx_offloads,
            p.tx_offloads,
            rx.desc,
            rx.free_thresh,
            rx.pthresh,
            rx.hthresh,
            rx.wthresh,
            rx.offloads,
            tx.desc,
            tx.free_thresh,
            tx.pthresh,
            tx.hthresh,
            tx.wthresh,
            tx.offloads,
            tx.rs_thresh,
        );
    }
    out
}

/// `show port summary`'s head, as testpmd's.
fn summary_header(ports: usize) -> String {
    format!(
        "Number of available ports: {ports}\n{:<4} {:<17} {:<12} {:<14} {:<8} Link\n",
        "Port", "MAC Address", "Name", "Driver", "Status"
    )
}

/// A port's line of `show port summary`, as testpmd's.
fn summary_line(i: usize, name: &str, d: &crate::ports::PortDescription) -> String {
    format!(
        "{i:<4} {} {name:<12} {:<14} {:<8} {}\n",
        mac_text(d.mac),
        d.driver,
        if d.link_up { "up" } else { "down" },
        speed_text(d.link_speed_mbps),
    )
}

/// A MAC as testpmd prints one (upper-case hex).
pub(super) fn mac_text(mac: Option<[u8; 6]>) -> String {
    mac.map(|m| {
        m.iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    })
    .unwrap_or_else(|| "00:00:00:00:00:00".into())
}

/// A link speed as DPDK's rte_eth_link_speed_to_str words it.
fn speed_text(mbps: u32) -> String {
    match mbps {
        0 => "None".to_string(),
        m if m % 1000 == 0 => format!("{} Gbps", m / 1000),
        m => format!("{m} Mbps"),
    }
}

/// testpmd's `show rxq|txq info` text for queue `q` of port `i`.
/// `dump`'s objects, for its usage line.
const DUMP_USAGE: &str =
    "dump mempool|ring [NAME] | dump memzone|physmem|lcores|devargs|log_types|socket_mem";

/// testpmd's `dump socket_mem` text for `heaps`, with the change since `last` (the total
/// and allocated bytes then); and the totals now.
fn socket_mem_text(
    heaps: &[crate::ports::SocketMemory],
    last: Option<(u64, u64)>,
) -> (String, (u64, u64)) {
    const MIB: f64 = 1024.0 * 1024.0;
    let line = |head: &str, total: u64, alloc: u64, free: u64, counts: (u32, u32)| {
        let share = if total == 0 {
            0.0
        } else {
            alloc as f64 * 100.0 / total as f64
        };
        format!(
            "{head}: size(M) total: {:.6} alloc: {:.6}({share:.3}%) free: {:.6} \tcount alloc: {:<4} free: {}\n",
            total as f64 / MIB,
            alloc as f64 / MIB,
            free as f64 / MIB,
            counts.0,
            counts.1,
        )
    };
    let mut out = String::new();
    let (mut total, mut alloc, mut free, mut n_alloc, mut n_free) = (0u64, 0u64, 0u64, 0u32, 0u32);
    for h in heaps {
        total += h.total_bytes;
        alloc += h.alloc_bytes;
        free += h.free_bytes;
        n_alloc = n_alloc.wrapping_add(h.alloc_count);
        n_free = n_free.wrapping_add(h.free_count);
        out.push_str(&line(
            &format!("Socket {}", h.socket),
            h.total_bytes,
            h.alloc_bytes,
            h.free_bytes,
            (h.alloc_count, h.free_count),
        ));
    }
    out.push_str(&line("Total   ", total, alloc, free, (n_alloc, n_free)));
    if let Some((last_total, last_alloc)) = last.filter(|&(_, a)| a != 0) {
        let _ = writeln!(
            out,
            "Memory total change: {:.6}(M), allocation change: {:.6}(M)",
            (total as f64 - last_total as f64) / MIB,
            (alloc as f64 - last_alloc as f64) / MIB
        );
    }
    (out, (total, alloc))
}

fn queue_info_text(i: usize, q: u16, rx: bool, info: &crate::ports::QueueInfo) -> String {
    let border = "*********************";
    let on = |b: bool| if b { "on" } else { "off" };
    let state = match info.state {
        0 => "stopped",
        1 => "started",
        2 => "hairpin",
        _ => "unknown",
    };
    let s = &info.settings;
    let mut out = String::new();
    if rx {
        let _ = write!(
            out,
            "\n{border} Infos for port {i:<2}, RX queue {q:<2} {border}\n\
             Mempool: {}\n\
             RX prefetch threshold: {}\n\
             RX host threshold: {}\n\
             RX writeback threshold: {}\n\
             RX free threshold: {}\n\
             RX drop packets: {}\n\
             RX deferred start: {}\n\
             RX scattered packets: {}\n\
             Rx queue state: {state}\n",
            info.mempool.as_deref().unwrap_or("NULL"),
            s.pthresh,
            s.hthresh,
            s.wthresh,
            s.free_thresh,
            on(info.drop_en),
            on(info.deferred_start),
            on(info.scattered),
        );
        if info.buf_size != 0 {
            let _ = writeln!(out, "RX buffer size: {}", info.buf_size);
        }
        let _ = writeln!(out, "Number of RXDs: {}", s.desc);
    } else {
        let _ = write!(
            out,
            "\n{border} Infos for port {i:<2}, TX queue {q:<2} {border}\n\
             TX prefetch threshold: {}\n\
             TX host threshold: {}\n\
             TX writeback threshold: {}\n\
             TX RS threshold: {}\n\
             TX free threshold: {}\n\
             TX deferred start: {}\n\
             Number of TXDs: {}\n\
             Tx queue state: {state}\n",
            s.pthresh,
            s.hthresh,
            s.wthresh,
            s.rs_thresh,
            s.free_thresh,
            on(info.deferred_start),
            s.desc,
        );
    }
    if let Some(mode) = &info.burst_mode {
        let _ = writeln!(out, "Burst mode: {mode}");
    }
    out
}

/// `show port info`: testpmd's fields, in its order and words.
fn port_info(i: usize, name: &str, d: &crate::ports::PortDescription) -> String {
    let mac = d.mac.map(|m| mac_text(Some(m))).unwrap_or_default();
    let speed = speed_text(d.link_speed_mbps);
    let on = |b: bool| if b { "enabled" } else { "disabled" };
    let supported = match crate::rss_types::supported(d.rss_offloads) {
        v if v.is_empty() => "No RSS offload flow type is supported.\n".to_string(),
        v => {
            let lines: String = v.iter().map(|t| format!("  {t}\n")).collect();
            format!("Supported RSS offload flow types:\n{lines}")
        }
    };
    let in_use = match crate::rss_types::in_use(d.rss_hf) {
        v if v.is_empty() => "none".to_string(),
        v => v.join(" "),
    };
    let l = &d.limits;
    let socket = d.socket.max(0);
    let mut out = format!(
        "\n********************* Infos for port {i:<2} *********************\n\
         MAC address: {mac}\n\
         Device name: {name}\n\
         Driver name: {}\n\
         Firmware-version: {}\n",
        d.driver,
        d.fw_version.as_deref().unwrap_or("not available"),
    );
    if let Some(args) = &d.devargs {
        let _ = writeln!(out, "Devargs: {args}");
    }
    let _ = write!(
        out,
        "Connect to socket: {socket}\n\
         memory allocation on the socket: {socket}\n\
         Link status: {}\n\
         Link speed: {speed}\n\
         Link duplex: {}\n\
         Autoneg status: {}\n",
        if d.link_up { "up" } else { "down" },
        if d.full_duplex {
            "full-duplex"
        } else {
            "half-duplex"
        },
        if d.autoneg { "On" } else { "Off" },
    );
    if let Some(mtu) = d.mtu {
        let _ = writeln!(out, "MTU: {mtu}");
    }
    let _ = write!(
        out,
        "Promiscuous mode: {}\n\
         Allmulticast mode: {}\n\
         Maximum number of MAC addresses: {}\n\
         Maximum number of MAC addresses of hash filtering: {}\n",
        on(d.promiscuous),
        on(d.allmulticast),
        l.max_mac_addrs,
        l.max_hash_mac_addrs,
    );
    if let Some(v) = d.vlan_offload {
        let flag =
            |bit: u32, what: &str| format!("{what} {}", if v & bit != 0 { "on" } else { "off" });
        let _ = writeln!(
            out,
            "VLAN offload: \n  {}, {}, {}, {}",
            flag(1, "strip"),
            flag(2, "filter"),
            flag(4, "extend"),
            flag(8, "qinq strip")
        );
    }
    if d.hash_key_size > 0 {
        let _ = writeln!(out, "Hash key size in bytes: {}", d.hash_key_size);
    }
    if d.reta_size > 0 {
        let _ = writeln!(out, "Redirection table size: {}", d.reta_size);
    }
    out.push_str(&supported);
    let _ = write!(
        out,
        "Minimum size of RX buffer: {}\n\
         Maximum configurable length of RX packet: {}\n\
         Maximum configurable size of LRO aggregated packet: {}\n",
        l.min_rx_bufsize, l.max_rx_pktlen, l.max_lro_pkt_size,
    );
    if l.max_vfs > 0 {
        let _ = writeln!(out, "Maximum number of VFs: {}", l.max_vfs);
    }
    if l.max_vmdq_pools > 0 {
        let _ = writeln!(out, "Maximum number of VMDq pools: {}", l.max_vmdq_pools);
    }
    let capabilities: String = d.capabilities.iter().map(|c| format!(" {c}")).collect();
    let _ = write!(
        out,
        "Current number of RX queues: {}\n\
         Max possible RX queues: {}\n\
         Max possible number of RXDs per queue: {}\n\
         Min possible number of RXDs per queue: {}\n\
         RXDs number alignment: {}\n\
         Current number of TX queues: {}\n\
         Max possible TX queues: {}\n\
         Max possible number of TXDs per queue: {}\n\
         Min possible number of TXDs per queue: {}\n\
         TXDs number alignment: {}\n\
         Max segment number per packet: {}\n\
         Max segment number per MTU/TSO: {}\n\
         Device capabilities: {:#x}({capabilities} )\n",
        d.rx_queues,
        d.max_rx_queues,
        l.rx_desc.max,
        l.rx_desc.min,
        l.rx_desc.align,
        d.tx_queues,
        d.max_tx_queues,
        l.tx_desc.max,
        l.tx_desc.min,
        l.tx_desc.align,
        l.tx_desc.seg_max,
        l.tx_desc.mtu_seg_max,
        d.dev_capa,
    );
    // rvs's own lines after testpmd's.
    let _ = write!(
        out,
        "RSS hash types in use:\n  {in_use}\n\
         Number of RXDs per queue: {}\n\
         Number of TXDs per queue: {}\n\
         Minimum MTU: {}\n\
         Maximum MTU: {}\n",
        d.rx_desc, d.tx_desc, d.min_mtu, d.max_mtu,
    );
    out
}

impl Appliance {
    /// `show mark`: the firewall-mark rules in order (the last that matches decides) and
    /// whether a service takes each mark.
    pub(super) fn show_marks(&self) -> String {
        let d = self.director.lock();
        if d.marks.is_empty() {
            return "No firewall-mark rules\n".into();
        }
        let mut out = String::new();
        for m in &d.marks {
            let served = d.services.iter().any(|s| {
                s.spec.key
                    == crate::ipvsadm::ServiceKey::Fwmark {
                        mark: m.mark,
                        ipv6: m.addr.is_ipv6(),
                    }
            });
            let state = if served {
                "FWM service"
            } else {
                "no FWM service"
            };
            out.push_str(&format!("mark {m}  ({state} {})\n", m.mark));
        }
        out
    }

    /// `show fullnat`: the services with full NAT, their local addresses and PROXY v2.
    pub(super) fn show_full_nat(&self) -> String {
        let d = self.director.lock();
        if d.full_nat.is_empty() {
            return "No full-NAT services\n".into();
        }
        let mut out = String::new();
        for (k, f) in &d.full_nat {
            let service = match k {
                crate::ipvsadm::ServiceKey::Addr(p, a) => format!("{} {a}", p.word()),
                crate::ipvsadm::ServiceKey::Fwmark { mark, ipv6 } => {
                    format!("fwmark {mark}{}", if *ipv6 { " v6" } else { "" })
                }
            };
            let locals = if f.locals().is_empty() {
                "the out port's own address".to_string()
            } else {
                f.locals()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let proxy = match (f.proxy_protocol, f.proxy_v1) {
                (false, _) => "",
                (true, false) => ", PROXY v2",
                (true, true) => ", PROXY v1",
            };
            out.push_str(&format!("{service}: from {locals}{proxy}\n"));
        }
        out
    }

    /// `show outgoing`: the members' outgoing ranges, as `outgoing add` takes them.
    pub(super) fn show_outgoing(&self) -> String {
        let d = self.director.lock();
        if d.member_ports.is_empty() {
            return "No member ranges\n".into();
        }
        let mut out = String::new();
        for r in &d.member_ports {
            let proto = crate::ipvsadm::Protocol::from_number(r.proto).map_or("?", |p| p.word());
            let method = if r.nat { "nat" } else { "dr" };
            out.push_str(&format!(
                "outgoing {proto} {} {}-{} {} {method}\n",
                r.vip, r.first, r.last, r.member
            ));
        }
        out
    }

    /// `show vip`: each VIP with its services, member ranges, what becomes of its unserved
    /// traffic, its VRRP state and whether the host twin holds it; then `[[vip]]` settings
    /// of addresses that are no VIP (yet), and VRRP's other addresses (a floating gateway:
    /// the appliance's own while held, so "Unserved" does not apply).
    pub(super) fn show_vips(&self) -> String {
        let d = self.director.lock();
        let vips = d.vips();
        let on_twin = self.host_vips.lock().clone();
        let mut out = format!(
            "{:<40} {:>8} {:>6} {:<8} {:<11} {}\n",
            "VIP", "Services", "Ranges", "Unserved", "VRRP", "Host-twin"
        );
        let waiting: Vec<std::net::IpAddr> = d
            .unserved_drop
            .iter()
            .copied()
            .filter(|a| !vips.contains(a))
            .collect();
        let listed: Vec<std::net::IpAddr> = vips.iter().chain(&waiting).copied().collect();
        let gateways: Vec<std::net::IpAddr> = d
            .floating
            .iter()
            .map(|f| f.addr)
            .filter(|a| !listed.contains(a))
            .collect();
        for vip in listed.iter().chain(&gateways) {
            let services = d
                .services
                .iter()
                .filter(|s| s.entries.iter().any(|e| e.addr == *vip))
                .count();
            let ranges = d.member_ports.iter().filter(|r| r.vip == *vip).count();
            let unserved = if d.unserved_drop.contains(vip) {
                "drop"
            } else if listed.contains(vip) {
                "host"
            } else {
                "-"
            };
            let vrrp = match d.floating.iter().find(|f| f.addr == *vip) {
                Some(f) if f.held => "held",
                Some(_) => "not held",
                None => "-",
            };
            let twin = if on_twin.contains(vip) || vrrp == "held" && !self.twins.is_empty() {
                "yes"
            } else {
                "no"
            };
            out.push_str(&format!(
                "{:<40} {services:>8} {ranges:>6} {unserved:<8} {vrrp:<11} {twin}\n",
                vip.to_string()
            ));
        }
        out
    }

    /// `show snat`: the SNAT rules in order, as `snat add` takes them.
    pub(super) fn show_snat(&self) -> String {
        let d = self.director.lock();
        if d.snat.is_empty() {
            return "No SNAT rules\n".into();
        }
        let names: Vec<String> = self.ports.lock().iter().map(|p| p.name.clone()).collect();
        let mut out = String::new();
        for r in &d.snat {
            let mut line = String::from("snat");
            if let Some(p) = r.proto.and_then(crate::ipvsadm::Protocol::from_number) {
                line.push_str(&format!(" protocol {}", p.word()));
            }
            line.push_str(&format!(
                " source {}/{} destination {}/{}",
                r.source.0, r.source.1, r.destination.0, r.destination.1
            ));
            if let Some(p) = r.out_port {
                let name = names
                    .get(usize::from(p))
                    .cloned()
                    .unwrap_or_else(|| p.to_string());
                line.push_str(&format!(" out_port {name}"));
            }
            match r.to_source {
                Some(a) => line.push_str(&format!(" to_source {a}")),
                None => line.push_str(" to_source masquerade"),
            }
            line.push_str(&format!(" ports {}-{}\n", r.ports.0, r.ports.1));
            out.push_str(&line);
        }
        out
    }
}

/// A client's template that several workers hold (their connections share its choice) is
/// one template, as in IPVS: listed once, with the most time left.
fn merge_templates(all: Vec<(rvs_core::conn::Conn, u32)>) -> Vec<(rvs_core::conn::Conn, u32)> {
    let mut first: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    let mut out: Vec<(rvs_core::conn::Conn, u32)> = Vec::with_capacity(all.len());
    for (c, left) in all {
        if !c.is_template() {
            out.push((c, left));
            continue;
        }
        let key = (c.proto, c.caddr, c.vaddr, c.vport, c.daddr, c.dport);
        match first.get(&key) {
            // One template for the box, as IPVS's: ASSURED if any worker's copy is.
            Some(&i) => {
                out[i].1 = out[i].1.max(left);
                out[i].0.assured |= c.assured;
            }
            None => {
                first.insert(key, out.len());
                out.push((c, left));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rvs_core::conn::{addr16, table::flags, Conn, InKey};
    use rvs_core::engine::ForwardMethod;

    /// testpmd's `show config rxtx`, line for line (its double space before wthresh too).
    #[test]
    fn rxtx_config_is_testpmds() {
        let port = crate::ports::PortDescription {
            rx_queues: 2,
            tx_queues: 3,
            tx_offloads: 0x2,
            rxq: crate::ports::QueueSettings {
                desc: 1024,
                free_thresh: 32,
                pthresh: 8,
                hthresh: 8,
                ..Default::default()
            },
            txq: crate::ports::QueueSettings {
                desc: 512,
                free_thresh: 32,
                pthresh: 32,
                offloads: 0x2,
                rs_thresh: 32,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            super::rxtx_text("io", 32, 1, &[port]),
            "  io packet forwarding packets/burst=32\n\
             \x20 nb forwarding cores=1 - nb forwarding ports=1\n\
             \x20 port 0: RX queue number: 2 Tx queue number: 3\n\
             \x20   Rx offloads=0x0 Tx offloads=0x2\n\
             \x20   RX queue: 0\n\
             \x20     RX desc=1024 - RX free threshold=32\n\
             \x20     RX threshold registers: pthresh=8 hthresh=8  wthresh=0\n\
             \x20     RX Offloads=0x0\n\
             \x20   TX queue: 0\n\
             \x20     TX desc=512 - TX free threshold=32\n\
             \x20     TX threshold registers: pthresh=32 hthresh=0  wthresh=0\n\
             \x20     TX offloads=0x2 - TX RS bit threshold=32\n"
        );
    }

    /// testpmd's `show port summary all`, column for column (its printf widths).
    #[test]
    fn port_summary_is_testpmds() {
        let port = |mac, driver: &str, up, mbps| crate::ports::PortDescription {
            mac,
            driver: driver.into(),
            link_up: up,
            link_speed_mbps: mbps,
            ..Default::default()
        };
        let out = super::summary_header(2)
            + &super::summary_line(
                0,
                "outside",
                &port(Some([2, 0xde, 0, 0, 1, 0xa]), "net_tap", true, 10_000),
            )
            + &super::summary_line(1, "inside", &port(None, "net_memif", false, 0));
        assert_eq!(
            out,
            "Number of available ports: 2\n\
             Port MAC Address       Name         Driver         Status   Link\n\
             0    02:DE:00:00:01:0A outside      net_tap        up       10 Gbps\n\
             1    00:00:00:00:00:00 inside       net_memif      down     None\n"
        );
    }

    fn entry(client: &str, cport: u16, server: &str, template: bool) -> Conn {
        let key = InKey {
            proto: 6,
            caddr: addr16(client.parse().unwrap()),
            cport,
            vaddr: addr16("192.168.100.100".parse().unwrap()),
            vport: 80,
        };
        let f = if template { flags::TEMPLATE } else { 0 };
        Conn::new(
            key,
            addr16(server.parse().unwrap()),
            8080,
            0,
            1,
            ForwardMethod::Nat,
            f,
        )
    }

    #[test]
    fn a_template_held_by_several_workers_is_listed_once() {
        let t = entry("192.0.2.1", 0, "10.0.0.2", true);
        let listed = super::merge_templates(vec![
            (t, 50),
            (entry("192.0.2.1", 1000, "10.0.0.2", false), 900),
            (t, 58),
            (entry("192.0.2.1", 1001, "10.0.0.2", false), 900),
            (entry("192.0.2.9", 0, "10.0.0.2", true), 10),
            (t, 40),
        ]);
        assert_eq!(listed.len(), 4);
        assert_eq!(
            listed[0],
            (t, 58),
            "the most time left, in the first one's place"
        );
        assert_eq!(listed.iter().filter(|(c, _)| c.is_template()).count(), 2);
        // ASSURED when one worker's copy is.
        let mut assured = t;
        assured.assured = true;
        let listed = super::merge_templates(vec![(t, 50), (assured, 40), (t, 30)]);
        assert_eq!(listed, vec![(assured, 50)]);
    }
}
