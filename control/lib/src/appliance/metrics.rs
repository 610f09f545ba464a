//! The Prometheus text exposition of what the appliance counts (`[metrics] listen`): per
//! service and real server the names and labels node_exporter's ipvs collector uses (so
//! its dashboards work unchanged), per worker and port rvs's own, and the VRRP instances'
//! state as the keepalived exporter names it. Counters are the raw running totals (an
//! `ipvsadm -Z` does not reset them, as Prometheus counters must not go back).

use super::*;
use crate::listing::Stats;
use rvs_core::sched::DestLoad;
use rvs_core::RealServer;

/// One metric family: its help and type lines, then the samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            let parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.out, "{{{}}}", parts.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// node_exporter's labels of a service: address, port, protocol, or the mark.
fn service_labels(key: ServiceKey) -> Vec<(&'static str, String)> {
    match key {
        ServiceKey::Addr(p, a) => vec![
            ("local_address", a.ip().to_string()),
            ("local_port", a.port().to_string()),
            ("local_mark", String::new()),
            ("proto", p.name().trim().to_string()),
        ],
        ServiceKey::Fwmark { mark, .. } => vec![
            ("local_address", String::new()),
            ("local_port", "0".into()),
            ("local_mark", mark.to_string()),
            ("proto", "FWM".into()),
        ],
    }
}

/// node_exporter's labels of a real server: its service's, then its address and port.
fn backend_labels(key: ServiceKey, r: &RealServer) -> Vec<(&'static str, String)> {
    let mut labels = service_labels(key);
    labels.push(("remote_address", r.addr.to_string()));
    labels.push(("remote_port", r.port.to_string()));
    labels
}

impl Appliance {
    /// The metrics page, as `GET /metrics` serves it.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let mut f = Family { out: &mut out };
        let fig = self.raw_figures();
        let d = self.director.lock();
        let loads = d.loads();
        // node_exporter's totals (/proc/net/ip_vs_stats).
        let total = d.services.iter().fold(Stats::default(), |acc, vs| {
            acc.plus(&fig.service(vs, false))
        });
        for (name, help, v) in [
            (
                "node_ipvs_connections_total",
                "The total number of connections made.",
                total.conns,
            ),
            (
                "node_ipvs_incoming_packets_total",
                "The total number of incoming packets.",
                total.inpkts,
            ),
            (
                "node_ipvs_outgoing_packets_total",
                "The total number of outgoing packets.",
                total.outpkts,
            ),
            (
                "node_ipvs_incoming_bytes_total",
                "The total amount of incoming data.",
                total.inbytes,
            ),
            (
                "node_ipvs_outgoing_bytes_total",
                "The total amount of outgoing data.",
                total.outbytes,
            ),
        ] {
            f.head(name, "counter", help);
            f.sample(name, &[], v);
        }
        // Per real server, with node_exporter's labels.
        type Pick = fn(&DestLoad, &RealServer) -> u64;
        let backend: [(&str, &str, &str, Pick); 3] = [
            (
                "node_ipvs_backend_connections_active",
                "gauge",
                "The current active connections by local and remote address.",
                |l, _| u64::from(l.active()),
            ),
            (
                "node_ipvs_backend_connections_inactive",
                "gauge",
                "The current inactive connections by local and remote address.",
                |l, _| u64::from(l.inactive()),
            ),
            (
                "node_ipvs_backend_weight",
                "gauge",
                "The current backend weight by local and remote address.",
                |_, r| u64::from(r.weight),
            ),
        ];
        for (name, kind, help, pick) in backend {
            f.head(name, kind, help);
            for vs in &d.services {
                for r in &vs.dests {
                    let v = loads.get(r.id).map_or(0, |l| pick(l, r));
                    f.sample(name, &backend_labels(vs.spec.key, r), v);
                }
            }
        }
        // rvs's per service and per real server counters.
        type Field = fn(&Stats) -> u64;
        let fields: [(&str, &str, Field); 5] = [
            ("connections_total", "Connections scheduled.", |s| s.conns),
            ("incoming_packets_total", "Packets from clients.", |s| {
                s.inpkts
            }),
            (
                "outgoing_packets_total",
                "Packets to clients (NAT replies).",
                |s| s.outpkts,
            ),
            ("incoming_bytes_total", "Bytes from clients.", |s| s.inbytes),
            (
                "outgoing_bytes_total",
                "Bytes to clients (NAT replies).",
                |s| s.outbytes,
            ),
        ];
        for (suffix, help, field) in fields {
            let name = format!("rvs_service_{suffix}");
            f.head(&name, "counter", help);
            for vs in &d.services {
                let s = fig.service(vs, false);
                f.sample(&name, &service_labels(vs.spec.key), field(&s));
            }
            let name = format!("rvs_backend_{suffix}");
            f.head(&name, "counter", help);
            for vs in &d.services {
                for r in &vs.dests {
                    f.sample(
                        &name,
                        &backend_labels(vs.spec.key, r),
                        field(&fig.dest(r, false)),
                    );
                }
            }
        }
        drop(d);
        // Workers.
        type WorkerField = fn(&rvs_core::WorkerCounters) -> u64;
        let worker: [(&str, &str, &str, WorkerField); 8] = [
            (
                "rvs_worker_rx_packets_total",
                "counter",
                "Packets the worker received.",
                |c| c.rx_packets,
            ),
            (
                "rvs_worker_tx_packets_total",
                "counter",
                "Packets the worker sent.",
                |c| c.tx_packets,
            ),
            (
                "rvs_worker_tx_dropped_total",
                "counter",
                "Packets a full tx queue did not take.",
                |c| c.tx_dropped,
            ),
            (
                "rvs_worker_checksums_completed_total",
                "counter",
                "TCP/UDP checksums a kernel sender left partial, completed on arrival (AF_XDP, AF_PACKET).",
                |c| c.checksums_completed,
            ),
            (
                "rvs_worker_handoffs_total",
                "counter",
                "Frames handed to the worker owning their flow.",
                |c| c.handoffs,
            ),
            (
                "rvs_worker_polls_total",
                "counter",
                "Passes over the rx queues.",
                |c| c.polls,
            ),
            (
                "rvs_worker_busy_polls_total",
                "counter",
                "Passes that found packets.",
                |c| c.busy_polls,
            ),
            (
                "rvs_worker_sleeps_total",
                "counter",
                "Idle sleeps (adaptive polling).",
                |c| c.sleeps,
            ),
        ];
        let reads: Vec<_> = self.workers.iter().map(|w| (w, w.stats.read())).collect();
        for (name, kind, help, field) in worker {
            f.head(name, kind, help);
            for (w, c) in &reads {
                f.sample(name, &[("worker", w.index.to_string())], field(c));
            }
        }
        f.head(
            "rvs_worker_busy_ratio",
            "gauge",
            "Share of the worker's time in passes that found packets, since start.",
        );
        for (w, c) in &reads {
            f.sample(
                "rvs_worker_busy_ratio",
                &[("worker", w.index.to_string())],
                c.busy_share(),
            );
        }
        f.head(
            "rvs_worker_connections",
            "gauge",
            "Entries in the worker's connection table.",
        );
        for w in &self.workers {
            f.sample(
                "rvs_worker_connections",
                &[("worker", w.index.to_string())],
                w.stats.connections(),
            );
        }
        f.head(
            "rvs_worker_drops_total",
            "counter",
            "Packets the worker's engine dropped, by reason.",
        );
        for w in &self.workers {
            let e = w.stats.read_engine();
            for r in rvs_core::engine::DropReason::ALL {
                let labels = [
                    ("worker", w.index.to_string()),
                    ("reason", r.name().to_string()),
                ];
                f.sample("rvs_worker_drops_total", &labels, e.drops[r as usize]);
            }
        }
        f.head(
            "rvs_worker_fragmented_total",
            "counter",
            "IPv4 datagrams larger than their out port's MTU (without DF) the worker sent in fragments, the fragments it sent for them, and later fragments it kept until their first came.",
        );
        for w in &self.workers {
            let e = w.stats.read_engine();
            for (what, n) in [
                ("datagrams", e.fragmented),
                ("fragments", e.fragments_sent),
                ("waited_for_first", e.fragments_waited),
            ] {
                let labels = [("worker", w.index.to_string()), ("count", what.into())];
                f.sample("rvs_worker_fragmented_total", &labels, n);
            }
        }
        f.head(
            "rvs_worker_evictions_total",
            "counter",
            "Embryonic connections (TCP before its handshake ends, SCTP before its association is up, UDP before the client's second datagram) the flood defence evicted to make room for a new SYN or SCTP INIT (for=\"syn\") or a new UDP flow (for=\"udp\").",
        );
        for w in &self.workers {
            let e = w.stats.read_engine();
            for (opening, n) in [("syn", e.syn_evictions), ("udp", e.udp_evictions)] {
                let labels = [("worker", w.index.to_string()), ("for", opening.into())];
                f.sample("rvs_worker_evictions_total", &labels, n);
            }
        }
        f.head(
            "rvs_worker_reply_key_takeovers_total",
            "counter",
            "Finished connections (TCP TIME_WAIT or CLOSE, SCTP CLOSED, UDP flows) ended for a new connection from the same client port to the same server through another VIP or port, whose reply-side key they held.",
        );
        for w in &self.workers {
            f.sample(
                "rvs_worker_reply_key_takeovers_total",
                &[("worker", w.index.to_string())],
                w.stats.read_engine().reply_key_takeovers,
            );
        }
        f.head(
            "rvs_worker_neighbours_ignored_total",
            "counter",
            "ARP and neighbour discovery messages about a next hop heard on another port than the one its routes lead out of (not learned).",
        );
        for w in &self.workers {
            f.sample(
                "rvs_worker_neighbours_ignored_total",
                &[("worker", w.index.to_string())],
                w.stats.read_engine().neighbours_ignored,
            );
        }
        f.head(
            "rvs_worker_icmp_scheduled_total",
            "counter",
            "Connections made for ICMP errors about flows the worker had none for (schedule_icmp).",
        );
        for w in &self.workers {
            f.sample(
                "rvs_worker_icmp_scheduled_total",
                &[("worker", w.index.to_string())],
                w.stats.read_engine().icmp_scheduled,
            );
        }
        f.head(
            "rvs_worker_cache_bypass_conns_total",
            "counter",
            "Connections of firewall-mark services with no server available sent on to their own destination (cache_bypass).",
        );
        for w in &self.workers {
            f.sample(
                "rvs_worker_cache_bypass_conns_total",
                &[("worker", w.index.to_string())],
                w.stats.read_engine().bypass_conns,
            );
        }
        f.head(
            "rvs_worker_dropped_entries_total",
            "counter",
            "Connection entries IPVS's drop_entry defence dropped while connection memory was short.",
        );
        for w in &self.workers {
            f.sample(
                "rvs_worker_dropped_entries_total",
                &[("worker", w.index.to_string())],
                w.stats.read_engine().dropped_entries,
            );
        }
        f.head(
            "rvs_worker_ftp_total",
            "counter",
            "The FTP helper's work: replies rewritten to name the VIP, data connections it opened, control connections kept for their data connections.",
        );
        for w in &self.workers {
            let e = w.stats.read_engine();
            for (event, n) in [
                ("reply_rewritten", e.ftp_rewrites),
                ("data_connection", e.ftp_data_conns),
                ("control_kept", e.ftp_controls_kept),
            ] {
                let labels = [("worker", w.index.to_string()), ("event", event.into())];
                f.sample("rvs_worker_ftp_total", &labels, n);
            }
        }
        f.head(
            "rvs_snapshot_adoption_timeouts_total",
            "counter",
            "Changes that returned before every worker ran them (a worker stalled or not polling).",
        );
        f.sample(
            "rvs_snapshot_adoption_timeouts_total",
            &[],
            self.adoption_timeouts(),
        );
        // Ports.
        type PortField = fn(&PortCounters) -> u64;
        let port: [(&str, &str, PortField); 6] = [
            (
                "rvs_port_rx_packets_total",
                "Packets the port received.",
                |c| c.ipackets,
            ),
            ("rvs_port_tx_packets_total", "Packets the port sent.", |c| {
                c.opackets
            }),
            ("rvs_port_rx_bytes_total", "Bytes the port received.", |c| {
                c.ibytes
            }),
            ("rvs_port_tx_bytes_total", "Bytes the port sent.", |c| {
                c.obytes
            }),
            (
                "rvs_port_rx_missed_total",
                "Packets the port dropped for want of rx descriptors.",
                |c| c.imissed,
            ),
            (
                "rvs_port_rx_errors_total",
                "Erroneous packets the port received.",
                |c| c.ierrors,
            ),
        ];
        /// One port as the metrics read it (counters absent where the driver fails).
        struct PortRow {
            name: String,
            counters: Option<PortCounters>,
            started: bool,
            link_up: Option<bool>,
        }
        let rows: Vec<PortRow> = self
            .ports
            .lock()
            .iter()
            .map(|p| PortRow {
                name: p.name.clone(),
                counters: p.port.counters().ok(),
                started: p.port.started(),
                link_up: p.port.link_up(),
            })
            .collect();
        for (name, help, field) in port {
            f.head(name, "counter", help);
            for row in &rows {
                if let Some(c) = &row.counters {
                    f.sample(name, &[("port", row.name.clone())], field(c));
                }
            }
        }
        f.head(
            "rvs_port_started",
            "gauge",
            "1 while the port is started (the console's port stop|start).",
        );
        for row in &rows {
            f.sample(
                "rvs_port_started",
                &[("port", row.name.clone())],
                u8::from(row.started),
            );
        }
        f.head(
            "rvs_port_link_up",
            "gauge",
            "1 while the port's link is up, as VRRP sees it (absent where the driver cannot tell).",
        );
        for row in &rows {
            if let Some(up) = row.link_up {
                f.sample(
                    "rvs_port_link_up",
                    &[("port", row.name.clone())],
                    u8::from(up),
                );
            }
        }
        // The packet-buffer pools: one that runs dry drops what arrives (rx_nombuf).
        let pools = self.memory.as_ref().map(|m| m.pools()).unwrap_or_default();
        type PoolGauge = (
            &'static str,
            &'static str,
            fn(&crate::ports::PoolFill) -> u32,
        );
        let gauges: [PoolGauge; 3] = [
            ("rvs_mbuf_pool_size", "Mbufs the pool holds in all.", |p| {
                p.size
            }),
            (
                "rvs_mbuf_pool_available",
                "Mbufs free in the pool, its per-lcore caches' included.",
                |p| p.available,
            ),
            (
                "rvs_mbuf_pool_in_use",
                "Mbufs taken from the pool: in rx rings, in flight, waiting in the workers.",
                |p| p.size.saturating_sub(p.available),
            ),
        ];
        for (name, help, value) in gauges.iter().filter(|_| !pools.is_empty()) {
            f.head(name, "gauge", help);
            for p in &pools {
                let labels = [("pool", p.name.clone()), ("socket", p.socket.to_string())];
                f.sample(name, &labels, value(p));
            }
        }
        f.head(
            "rvs_forwarding",
            "gauge",
            "1 while packet forwarding runs (the console's start and stop).",
        );
        f.sample(
            "rvs_forwarding",
            &[],
            u8::from(self.forwarding.load(Ordering::Relaxed)),
        );
        // Connection sync, when its daemons run.
        if let Some(sync) = self.sync_daemons() {
            for (name, v) in sync.totals() {
                let name = format!("rvs_sync_{name}_total");
                f.head(
                    &name,
                    "counter",
                    "Connection sync (ipvsadm --start-daemon), as `show sync` counts it.",
                );
                f.sample(&name, &[], v);
            }
        }
        // VRRP, as the keepalived exporter has it (0 init, 1 backup, 2 master, 3 fault).
        if let Some(status) = self.vrrp.lock().clone() {
            f.head(
                "keepalived_vrrp_state",
                "gauge",
                "State of the VRRP instance (0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT).",
            );
            for i in status.lock().iter() {
                let state = match i.state.as_str() {
                    "BACKUP" => 1,
                    "MASTER" => 2,
                    "FAULT" => 3,
                    _ => 0,
                };
                let labels = [
                    ("iname", i.name.clone()),
                    ("intf", i.interface.clone()),
                    ("vrid", i.vrid.to_string()),
                    ("ip_address", i.addresses.join(",")),
                ];
                f.sample("keepalived_vrrp_state", &labels, state);
            }
        }
        // BFD sessions (bfd_instance).
        let sessions = crate::bfd::board().rows();
        if !sessions.is_empty() {
            f.head(
                "rvs_bfd_session_state",
                "gauge",
                "State of the BFD session (0 AdminDown, 1 Down, 2 Init, 3 Up).",
            );
            for b in &sessions {
                let labels = [
                    ("instance", b.name.clone()),
                    ("neighbor", b.neighbor.to_string()),
                ];
                f.sample("rvs_bfd_session_state", &labels, b.local as u64);
            }
            f.head(
                "rvs_bfd_session_up_total",
                "counter",
                "Times the BFD session came up.",
            );
            for b in &sessions {
                f.sample(
                    "rvs_bfd_session_up_total",
                    &[("instance", b.name.clone())],
                    b.ups,
                );
            }
        }
        if let Some(rt) = self.bfd.lock().as_ref() {
            f.head(
                "rvs_bfd_packets_discarded_total",
                "counter",
                "BFD packets discarded: malformed, of no session, or below the TTL check.",
            );
            f.sample(
                "rvs_bfd_packets_discarded_total",
                &[],
                rt.discarded.load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        // keepalived's e-mail alerts, once configured.
        let (sent, failed, dropped) = crate::mail::counts();
        if crate::mail::current().enabled() || sent + failed + dropped > 0 {
            f.head(
                "rvs_mail_alerts_total",
                "counter",
                "E-mail alerts (smtp_server): delivered, given up (server absent or refusing), dropped (queue full).",
            );
            for (result, n) in [("sent", sent), ("failed", failed), ("dropped", dropped)] {
                f.sample("rvs_mail_alerts_total", &[("result", result.into())], n);
            }
        }
        // Scale-out: what this node asks its routing daemon to announce.
        let announced = self.announcements();
        if !announced.is_empty() {
            f.head(
                "rvs_vip_announced",
                "gauge",
                "1 while the VIP's route is in the table the routing daemon announces ([announce]).",
            );
            for a in &announced {
                f.sample(
                    "rvs_vip_announced",
                    &[("vip", a.vip.to_string())],
                    u64::from(a.announced),
                );
            }
            f.head(
                "rvs_vip_announce_changes_total",
                "counter",
                "Announcements and withdrawals of the VIP.",
            );
            for a in &announced {
                f.sample(
                    "rvs_vip_announce_changes_total",
                    &[("vip", a.vip.to_string())],
                    a.changes,
                );
            }
        }
        out
    }
}
