use super::*;
use crate::director::Limits;

mod console_input;
use rvs_core::sched::DestLoad;

fn appliance() -> Arc<Appliance> {
    appliance_with_ports(Vec::new())
}

/// An appliance of one worker over `ports`.
fn appliance_with_ports(ports: Vec<PortView>) -> Arc<Appliance> {
    appliance_with(ports, 1)
}

/// An appliance with these ports and `workers` fake workers (lcores 1..), which never poll.
fn appliance_with(ports: Vec<PortView>, workers: usize) -> Arc<Appliance> {
    appliance_with_lcores(ports, workers, workers)
}

/// As [`appliance_with`], the EAL having `lcores` lcores besides the main one (more than
/// the workers under `--nb-cores`).
fn appliance_with_lcores(ports: Vec<PortView>, workers: usize, lcores: usize) -> Arc<Appliance> {
    let mut a = unshared_appliance(ports, workers);
    a.worker_lcores = lcores;
    a.shared()
}

/// An appliance with `workers` workers on lcores 1, 2..., its fields still to be set.
fn unshared_appliance(ports: Vec<PortView>, workers: usize) -> Appliance {
    let loads = Arc::new((0..8).map(|_| DestLoad::default()).collect());
    let d = Director::new(
        Limits {
            entries: 8,
            dests: 8,
        },
        loads,
    );
    let cell = Arc::new(SnapshotCell::new(d.snapshot()));
    let workers = (0..workers)
        .map(|index| WorkerView {
            index,
            lcore: index as u32 + 1,
            stats: Arc::new(rvs_core::WorkerStats::default()),
        })
        .collect();
    Appliance::new(d, cell, workers, ports, 1024)
}

/// A port as the console sees one, its promiscuous mode a switch (`refuse`: the
/// device's error for any change).
#[derive(Debug, Default)]
struct FakePort {
    promiscuous: std::sync::atomic::AtomicBool,
    allmulticast: std::sync::atomic::AtomicBool,
    refuse: bool,
    /// A device with promiscuous mode but no all-multicast mode (AF_XDP's).
    no_allmulti: bool,
    /// The RSS hash types it uses and its key (none: a device without RSS).
    rss: Option<(u64, Vec<u8>)>,
    /// The driver's preferred rx burst (0: none).
    rx_burst_size: u16,
    link_down: std::sync::atomic::AtomicBool,
    stopped: std::sync::atomic::AtomicBool,
}

impl PortDevice for FakePort {
    fn link_up(&self) -> Option<bool> {
        Some(!self.link_down.load(Ordering::Relaxed))
    }

    fn describe(&self) -> crate::ports::PortDescription {
        crate::ports::PortDescription {
            promiscuous: self.promiscuous.load(Ordering::Relaxed),
            allmulticast: self.allmulticast.load(Ordering::Relaxed),
            hash_key_size: self.rss.as_ref().map_or(0, |r| r.1.len() as u8),
            reta_size: if self.rss.is_some() { 128 } else { 0 },
            // ipv4, ipv4-tcp, ipv4-udp and l3-src-only where it has RSS.
            rss_offloads: if self.rss.is_some() {
                (1 << 2) | (1 << 4) | (1 << 5) | (1 << 63)
            } else {
                0
            },
            rss_hf: self.rss.as_ref().map_or(0, |r| r.0),
            driver: "net_fake".into(),
            link: if self.link_down.load(Ordering::Relaxed) {
                "Link down".into()
            } else {
                "Link up at 10 Gbps FDX Autoneg".into()
            },
            link_up: !self.link_down.load(Ordering::Relaxed),
            mtu: Some(1500),
            devargs: Some("iface=fake0".into()),
            vlan_offload: Some(1),
            limits: crate::ports::PortLimits {
                max_mac_addrs: 1,
                min_rx_bufsize: 64,
                max_rx_pktlen: 9018,
                rx_desc: crate::ports::DescLimits {
                    max: 4096,
                    min: 64,
                    align: 32,
                    ..Default::default()
                },
                tx_desc: crate::ports::DescLimits {
                    max: 4096,
                    min: 64,
                    align: 32,
                    seg_max: 40,
                    mtu_seg_max: 8,
                },
                rx_burst_size: self.rx_burst_size,
                ..Default::default()
            },
            dev_capa: 0x3,
            capabilities: vec![
                "RUNTIME_RX_QUEUE_SETUP".into(),
                "RUNTIME_TX_QUEUE_SETUP".into(),
            ],
            rx_queues: 1,
            tx_queues: 1,
            max_rx_queues: 4,
            max_tx_queues: 4,
            ..Default::default()
        }
    }
    fn started(&self) -> bool {
        !self.stopped.load(Ordering::Relaxed)
    }
    fn stop(&self) -> Result<(), String> {
        if self.refuse {
            return Err("worker 0 did not confirm within 2000 ms that it left its queues".into());
        }
        self.stopped.store(true, Ordering::Relaxed);
        self.link_down.store(true, Ordering::Relaxed);
        Ok(())
    }
    fn start(&self) -> Result<(), String> {
        self.stopped.store(false, Ordering::Relaxed);
        self.link_down.store(false, Ordering::Relaxed);
        Ok(())
    }
    fn counters(&self) -> Result<crate::ports::PortCounters, String> {
        Ok(Default::default())
    }
    fn extended_counters(&self) -> Result<Vec<(String, u64)>, String> {
        Ok(vec![("rx_good_packets".into(), 7), ("rx_errors".into(), 0)])
    }
    fn reset_counters(&self) -> Result<(), String> {
        Ok(())
    }
    fn reset_extended_counters(&self) -> Result<(), String> {
        if self.refuse {
            return Err("Operation not supported".into());
        }
        Ok(())
    }
    fn set_promiscuous(&self, on: bool) -> Result<(), String> {
        if self.refuse {
            return Err("Operation not supported".into());
        }
        self.promiscuous.store(on, Ordering::Relaxed);
        Ok(())
    }
    fn set_link(&self, up: bool) -> Result<(), String> {
        if self.refuse {
            return Err("Operation not supported".into());
        }
        self.link_down.store(!up, Ordering::Relaxed);
        Ok(())
    }
    fn set_allmulticast(&self, on: bool) -> Result<(), String> {
        if self.refuse || self.no_allmulti {
            return Err("Operation not supported".into());
        }
        self.allmulticast.store(on, Ordering::Relaxed);
        Ok(())
    }
    fn rss_hash(&self) -> Result<(u64, Vec<u8>), String> {
        self.rss
            .clone()
            .ok_or_else(|| "Operation not supported".into())
    }
    fn rss_reta(&self) -> Result<Vec<u16>, String> {
        match self.rss {
            Some(_) => Ok((0..128).map(|i| i % 3).collect()),
            None => Err("Operation not supported".into()),
        }
    }
    fn supported_ptypes(&self, layer: u32) -> Result<Vec<String>, String> {
        let names: &[&str] = match layer {
            0x0f if !self.refuse => &["L2_ETHER", "L2_ETHER_ARP"],
            0xf0 if !self.refuse => &["L3_IPV4", "L3_IPV6_EXT_UNKNOWN"],
            0xf00 => &["L4_TCP"],
            _ => &[],
        };
        Ok(names.iter().map(|n| n.to_string()).collect())
    }
    fn queue_info(
        &self,
        rx: bool,
        queue: u16,
    ) -> Result<crate::ports::QueueInfo, crate::ports::Refusal> {
        if self.refuse {
            return Err(("Operation not supported".into(), 95));
        }
        if queue > 0 {
            return Err(("Invalid argument".into(), 22));
        }
        let settings = crate::ports::QueueSettings {
            desc: 1024,
            free_thresh: 32,
            wthresh: if rx { 0 } else { 1 },
            rs_thresh: if rx { 0 } else { 32 },
            ..Default::default()
        };
        Ok(crate::ports::QueueInfo {
            settings,
            mempool: rx.then(|| "rvs_pool_0".to_string()),
            state: 1,
            buf_size: if rx { 2048 } else { 0 },
            burst_mode: Some("Vector AVX2".into()),
            ..Default::default()
        })
    }
}

/// An appliance over two fake ports: `lan` (0), and `odd` (1), whose device refuses.
#[test]
fn set_burst_takes_1_to_the_most_or_the_drivers_preference() {
    let with_preference = |size| {
        let port = Arc::new(FakePort {
            rx_burst_size: size,
            ..Default::default()
        });
        let view = PortView {
            name: "lan".into(),
            port,
            twin: None,
        };
        appliance_with_ports(vec![view])
    };
    let a = with_preference(0);
    let burst = |a: &Appliance| a.burst.load(Ordering::Relaxed);
    assert_eq!(burst(&a), 32);
    let r = a.console("set burst 8");
    assert_eq!(
        (r.status, r.out.as_str()),
        (0, "Number of packets per burst set to 8\n")
    );
    assert_eq!(burst(&a), 8);
    let rxtx = a.console("show config rxtx").out;
    assert!(
        rxtx.starts_with("  lb packet forwarding packets/burst=8\n"),
        "{rxtx}"
    );
    // Refused, leaving 8: more than the workers' arrays, not a number, no preference.
    for (line, err) in [
        (
            "set burst 33",
            "nb pkt per burst: 33 > 32 (maximum packet per burst)  ignored\n",
        ),
        (
            "set burst many",
            "set burst N: N is 1 to 32, not \"many\"\n",
        ),
        (
            "set burst 0",
            "PMD does not recommend a burst size.\nUser provided value must be between 1 and 32\n",
        ),
    ] {
        let r = a.console(line);
        assert_eq!((r.status, r.err.as_str()), (2, err), "{line}");
        assert_eq!(burst(&a), 8, "{line}");
    }
    let a = with_preference(16);
    let r = a.console("set burst 0");
    assert_eq!(r.out, "Using PMD-provided burst value of 16\n");
    assert_eq!(burst(&a), 16);
    // testpmd's other spelling: silent when taken, its own words when not.
    let r = a.console("port config all burst 4");
    assert_eq!((r.status, r.out.as_str(), r.err.as_str()), (0, "", ""));
    assert_eq!(burst(&a), 4);
    for (line, err) in [
        ("port config all burst 33", "burst must be >= 1 && <= 32\n"),
        (
            "port config all burst -1",
            "port config all burst N: N is 0 to 32, not \"-1\"\n",
        ),
    ] {
        let r = a.console(line);
        assert_eq!((r.status, r.err.as_str()), (2, err), "{line}");
        assert_eq!(burst(&a), 4, "{line}");
    }
    let r = a.console("port config all burst 0");
    assert_eq!(r.out, "Using PMD-provided burst value of 16\n");
    assert_eq!(burst(&a), 16);
    let a = with_preference(64);
    let r = a.console("set burst 0");
    assert_eq!(
        r.err,
        "PMD recommended burst size of 64 exceeds maximum value of 32\n"
    );
    assert_eq!(burst(&a), 32);
}

#[test]
fn set_link_down_is_what_vrrp_tracks() {
    use crate::vrrp::Host;
    let a = lan_and_refusing_port();
    let host = ha::VrrpHost(a.clone());
    assert!(host.link_up(0));
    assert!(a
        .console("show port info 0")
        .out
        .contains("Link status: up"));
    let r = a.console("set link-down port 0");
    assert_eq!((r.status, r.out.as_str(), r.err.as_str()), (0, "", ""));
    assert!(!host.link_up(0), "VRRP sees the link down");
    assert!(a
        .console("show port info 0")
        .out
        .contains("Link status: down"));
    assert_eq!(a.console("set link-up port 0").status, 0);
    assert!(host.link_up(0));
    let r = a.console("set link-down port 1");
    assert_eq!(
        (r.status, r.err.as_str()),
        (
            1,
            "\nSet link down fail.\nport 1 (odd): Operation not supported\n"
        )
    );
    for bad in ["all", "2", "x"] {
        let r = a.console(&format!("set link-up port {bad}"));
        assert_eq!(
            (r.status, r.err),
            (2, format!("Invalid port {bad} (ports: 0..1)\n"))
        );
    }
}

/// testpmd's `port stop|start`: only with forwarding stopped, in its words; a stopped
/// port's link is down (VRRP goes to FAULT) and forwarding waits for every port.
#[test]
fn port_stop_and_start_are_testpmds() {
    use crate::vrrp::Host;
    let a = lan_and_refusing_port();
    let host = ha::VrrpHost(a.clone());
    let up = "Link up at 10 Gbps FDX Autoneg";
    let forwarding = |a: &Appliance| a.forwarding.load(Ordering::Relaxed);
    let r = a.console("port stop all");
    assert_eq!(
        (r.status, r.out.as_str(), r.err.as_str()),
        (
            1,
            "",
            "Stopping ports...\n\
             Please remove port 0 from forwarding configuration.\n\
             Please remove port 1 from forwarding configuration.\n\
             (every rvs port forwards: stop packet forwarding first, with `stop`)\n\
             Done\n"
        )
    );
    assert!(host.link_up(0) && forwarding(&a));
    assert_eq!(a.console("stop").status, 0);
    let r = a.console("port stop 0");
    assert_eq!((r.status, r.err.as_str()), (0, ""), "{}", r.err);
    assert_eq!(
        r.out,
        format!(
            "Stopping ports...\nChecking link statuses...\nPort 0 Link down\nPort 1 {up}\nDone\n"
        )
    );
    assert!(!host.link_up(0), "VRRP sees the link down");
    let r = a.console("start");
    assert_eq!(
        (r.status, r.err.as_str()),
        (1, "Not all ports were started\n")
    );
    assert!(!forwarding(&a));
    // A port that cannot be stopped says why and stays started.
    let r = a.console("port stop 1");
    assert_eq!(
        (r.status, r.out.as_str(), r.err.as_str()),
        (
            1,
            "",
            "Stopping ports...\n\
             Port 1 can not be set into stopped: worker 0 did not confirm within 2000 ms that it left its queues\n\
             Done\n"
        )
    );
    let r = a.console("port start all");
    assert_eq!((r.status, r.out.as_str()), (1, ""));
    assert_eq!(
        r.err,
        format!("Port 0: 00:00:00:00:00:00\nPort 1 is now not stopped\nChecking link statuses...\nPort 0 {up}\nPort 1 {up}\nDone\n")
    );
    assert!(host.link_up(0));
    let r = a.console("port start 0");
    assert_eq!(
        (r.status, r.out.as_str(), r.err.as_str()),
        (
            1,
            "",
            "Port 0 is now not stopped\nPlease stop the ports first\nDone\n"
        )
    );
    let r = a.console("start");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(forwarding(&a));
    for bad in ["2", "x"] {
        let r = a.console(&format!("port start {bad}"));
        assert_eq!(
            (r.status, r.err),
            (2, format!("Invalid port {bad} (ports: 0..1)\n"))
        );
    }
}

/// The metrics' gauges follow `stop`, `port stop|start` and the links.
#[test]
fn port_and_forwarding_gauges_follow_the_console() {
    let a = lan_and_refusing_port();
    let gauges = |a: &Appliance| {
        a.metrics()
            .lines()
            .filter(|l| {
                ["rvs_port_started{", "rvs_port_link_up{", "rvs_forwarding "]
                    .iter()
                    .any(|g| l.starts_with(g))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        gauges(&a),
        "rvs_port_started{port=\"lan\"} 1\nrvs_port_started{port=\"odd\"} 1\n\
         rvs_port_link_up{port=\"lan\"} 1\nrvs_port_link_up{port=\"odd\"} 1\n\
         rvs_forwarding 1"
    );
    assert!(a.metrics().contains("# TYPE rvs_port_started gauge\n"));
    assert_eq!(a.console("stop").status, 0);
    assert_eq!(a.console("port stop 0").status, 0);
    assert_eq!(
        gauges(&a),
        "rvs_port_started{port=\"lan\"} 0\nrvs_port_started{port=\"odd\"} 1\n\
         rvs_port_link_up{port=\"lan\"} 0\nrvs_port_link_up{port=\"odd\"} 1\n\
         rvs_forwarding 0"
    );
    assert_eq!(a.console("port start 0").status, 0);
    assert_eq!(a.console("start").status, 0);
    assert!(gauges(&a).ends_with("rvs_port_link_up{port=\"odd\"} 1\nrvs_forwarding 1"));
    assert!(gauges(&a).starts_with("rvs_port_started{port=\"lan\"} 1\n"));
}

/// testpmd's `set nbcore N`: forwarding stopped first; every worker forwards.
#[test]
fn set_nbcore_takes_the_workers() {
    let a = appliance_with(Vec::new(), 2);
    let r = a.console("set nbcore 2");
    assert_eq!(
        (r.status, r.err.as_str()),
        (1, "Please stop forwarding first\n")
    );
    assert_eq!(a.console("stop").status, 0);
    let r = a.console("set nbcore 2");
    assert_eq!(
        (r.status, r.out.as_str()),
        (0, "Number of forwarding cores set to 2\n")
    );
    for (line, status, err) in [
        (
            "set nbcore 3",
            1,
            "nb fwd cores 3 > 2 (max. number of configured lcores) - ignored\n",
        ),
        (
            "set nbcore 1",
            1,
            "rvs forwards on all its 2 worker(s): each owns the flows the NIC puts on its queues (its connection table); another count needs other workers (eal.lcores, [[worker]], or the command line's --nb-cores) and a restart\n",
        ),
        (
            "set nbcore x",
            2,
            "Bad arguments: set nbcore N (a core count), not \"x\"\n",
        ),
    ] {
        let r = a.console(line);
        assert_eq!((r.status, r.err.as_str()), (status, err), "{line}");
    }
    // Two workers of three lcores (--nb-cores=2): testpmd's bound is the lcores.
    let b = appliance_with_lcores(Vec::new(), 2, 3);
    assert_eq!(b.console("stop").status, 0);
    let r = b.console("set nbcore 4");
    assert_eq!(
        r.err,
        "nb fwd cores 4 > 3 (max. number of configured lcores) - ignored\n"
    );
    let r = b.console("set nbcore 3");
    assert!(
        r.status == 1 && r.err.starts_with("rvs forwards on all its 2 worker(s)"),
        "{}",
        r.err
    );
}

/// testpmd's `port config all rxq|txq N`: with every port stopped, the count rvs was
/// started with is taken; another is refused with where it is set.
#[test]
fn port_queue_counts_are_the_configurations() {
    let view = PortView {
        name: "lan".into(),
        port: Arc::new(FakePort::default()),
        twin: None,
    };
    let a = appliance_with_ports(vec![view]);
    let r = a.console("port config all rxq 1");
    assert_eq!(
        (r.status, r.err.as_str()),
        (1, "Please stop all ports first\n")
    );
    assert_eq!(a.console("stop").status, 0);
    assert_eq!(a.console("port stop all").status, 0);
    for line in ["port config all rxq 1", "port config all txq 1"] {
        let r = a.console(line);
        assert_eq!(
            (r.status, r.out.as_str(), r.err.as_str()),
            (0, "", ""),
            "{line}"
        );
    }
    for (line, status, err) in [
        (
            "port config all rxq 2",
            1,
            "port 0 (lan) has 1 rx queue(s), set when rvs starts (ports[].rx_queues, each queue polled by the worker whose rx list names it): change the configuration and restart rvs\n",
        ),
        (
            "port config all txq 3",
            1,
            "port 0 (lan) has 1 tx queue(s), set when rvs starts (one per worker): change the configuration and restart rvs\n",
        ),
        (
            "port config all rxq 5",
            1,
            "Fail: input rxq (5) can't be greater than max_rx_queues (4) of port 0\n",
        ),
        (
            "port config all txq many",
            2,
            "Bad arguments: port config all txq N (a queue count)\n",
        ),
    ] {
        let r = a.console(line);
        assert_eq!((r.status, r.err.as_str()), (status, err), "{line}");
    }
}

#[test]
fn show_config_fwd_gives_the_numa_sockets_and_a_remote_port_is_warned_of() {
    let views = ["lan", "wan"]
        .into_iter()
        .map(|name| PortView {
            name: name.into(),
            port: Arc::new(FakePort::default()),
            twin: None,
        })
        .collect();
    let mut a = unshared_appliance(views, 2);
    // Port 0 on socket 1, port 1 on a device that does not say; worker 0 on socket 0.
    let stream = |worker: usize, rx: u16, q: u16, tx: u16| FwdStream {
        worker,
        lcore: worker as u32 + 1,
        rx_port: rx,
        rx_queue: q,
        rx_socket: [Some(1), None][usize::from(rx)],
        tx_port: tx,
        tx_queue: worker as u16,
        tx_socket: [Some(1), None][usize::from(tx)],
    };
    a.streams = vec![
        stream(0, 0, 0, 1),
        stream(0, 0, 2, 1),
        stream(0, 1, 0, 0),
        stream(1, 0, 1, 1),
    ];
    a.worker_sockets = vec![0, 1];
    let names = ["lan".to_string(), "wan".to_string()];
    assert_eq!(
        remote_numa_notices(&a.streams, &a.worker_sockets, &names),
        ["port 0 (\"lan\") is on NUMA socket 1, polled (rx queue 0, 2) by worker 0 on lcore 1 of socket 0: performance will not be optimal (give it lcores of socket 1)"]
    );
    let a = a.shared();
    assert_eq!(a.console("set fwd io").status, 0);
    let r = a.console("show config fwd");
    assert_eq!(
        r.out,
        "io packet forwarding - ports=2 - cores=2 - streams=4 - NUMA support enabled, MP allocation mode: native\n\
         Logical Core 1 (socket 0) forwards packets on 3 streams:\n\
         \x20 RX P=0/Q=0 (socket 1) -> TX P=1/Q=0 (socket 0)\n\
         \x20 RX P=0/Q=2 (socket 1) -> TX P=1/Q=0 (socket 0)\n\
         \x20 RX P=1/Q=0 (socket 0) -> TX P=0/Q=0 (socket 1)\n\
         Logical Core 2 (socket 1) forwards packets on 1 streams:\n\
         \x20 RX P=0/Q=1 (socket 1) -> TX P=1/Q=1 (socket 0)\n"
    );
}

fn lan_and_refusing_port() -> Arc<Appliance> {
    let views = ["lan", "odd"]
        .into_iter()
        .map(|name| PortView {
            name: name.into(),
            port: Arc::new(FakePort {
                refuse: name == "odd",
                ..Default::default()
            }),
            twin: None,
        })
        .collect();
    appliance_with_ports(views)
}

/// testpmd's `show rxq|txq info N QUEUE`: the driver's description in testpmd's words,
/// The EAL's memory as a test gives it: one pool, two sockets' heaps, the second growing
/// by 1 MiB at each read.
#[derive(Debug, Default)]
struct FakeMemory {
    reads: Mutex<u64>,
}

impl crate::ports::EalMemory for FakeMemory {
    fn dump(
        &self,
        what: crate::ports::DumpObject,
        name: Option<&str>,
    ) -> Result<Option<String>, String> {
        Ok(match (what, name) {
            (crate::ports::DumpObject::Mempool, None | Some("pool_a")) => {
                Some("mempool <pool_a>@0x1\n  size=4095\n".into())
            }
            (crate::ports::DumpObject::Mempool, Some(_)) => None,
            (other, _) => Some(format!("{other:?}\n")),
        })
    }
    fn socket_memory(&self) -> Vec<crate::ports::SocketMemory> {
        let mut reads = self.reads.lock();
        *reads += 1;
        let mib = 1024 * 1024;
        vec![
            crate::ports::SocketMemory {
                socket: 0,
                total_bytes: 256 * mib,
                alloc_bytes: 64 * mib,
                free_bytes: 192 * mib,
                alloc_count: 40,
                free_count: 1,
            },
            crate::ports::SocketMemory {
                socket: 1,
                total_bytes: 128 * mib,
                alloc_bytes: *reads * mib,
                free_bytes: (128 - *reads) * mib,
                alloc_count: 3,
                free_count: 0,
            },
        ]
    }
    fn pools(&self) -> Vec<crate::ports::PoolFill> {
        vec![crate::ports::PoolFill {
            name: "pool_a".into(),
            socket: 1,
            size: 4095,
            available: 4000,
        }]
    }
}

/// testpmd's `dump` commands: DPDK's own text passed on, testpmd's words where a name
/// matches nothing, each socket's heap and the change since the last call; the pools'
/// gauges on the metrics page.
#[test]
fn dump_commands_and_the_pools_metrics() {
    let bare = appliance();
    assert_eq!(
        bare.console("dump mempool").err,
        "no EAL in this process: nothing to dump\n"
    );
    assert!(!bare.metrics().contains("rvs_mbuf_pool"));
    let mut a = unshared_appliance(Vec::new(), 1);
    a.memory = Some(Arc::new(FakeMemory::default()));
    let a = a.shared();
    let r = a.console("dump mempool pool_a");
    assert_eq!(
        (r.status, r.out.as_str()),
        (0, "mempool <pool_a>@0x1\n  size=4095\n")
    );
    let r = a.console("dump mempool other");
    assert_eq!((r.status, r.err.as_str()), (1, "Cannot find mempool\n"));
    assert_eq!(a.console("dump log_types").out, "LogTypes\n");
    for bad in ["dump memzone x", "dump nothing", "dump"] {
        assert_eq!(a.console(bad).status, 2, "{bad}");
    }
    let first = a.console("dump socket_mem").out;
    assert_eq!(
        first,
        "Socket 0: size(M) total: 256.000000 alloc: 64.000000(25.000%) free: 192.000000 \tcount alloc: 40   free: 1\n\
         Socket 1: size(M) total: 128.000000 alloc: 1.000000(0.781%) free: 127.000000 \tcount alloc: 3    free: 0\n\
         Total   : size(M) total: 384.000000 alloc: 65.000000(16.927%) free: 319.000000 \tcount alloc: 43   free: 1\n"
    );
    let second = a.console("dump socket_mem").out;
    assert!(
        second.ends_with("Memory total change: 0.000000(M), allocation change: 1.000000(M)\n"),
        "{second}"
    );
    let page = a.metrics();
    for line in [
        "rvs_mbuf_pool_size{pool=\"pool_a\",socket=\"1\"} 4095\n",
        "rvs_mbuf_pool_available{pool=\"pool_a\",socket=\"1\"} 4000\n",
        "rvs_mbuf_pool_in_use{pool=\"pool_a\",socket=\"1\"} 95\n",
    ] {
        assert!(page.contains(line), "{line} in {page}");
    }
}

/// testpmd's `show port N ptypes`: each layer's types, or that it has none.
#[test]
fn show_port_ptypes_lists_each_layer_as_testpmd() {
    let a = lan_and_refusing_port();
    assert_eq!(
        a.console("show port 0 ptypes").out,
        "Supported L2 ptypes:\nL2_ETHER\nL2_ETHER_ARP\nSupported L3 ptypes:\nL3_IPV4\n\
         L3_IPV6_EXT_UNKNOWN\nSupported L4 ptypes:\nL4_TCP\nTunnel ptypes unsupported\n\
         Inner L2 ptypes unsupported\nInner L3 ptypes unsupported\nInner L4 ptypes unsupported\n"
    );
    assert!(a
        .console("show port 1 ptypes")
        .out
        .starts_with("L2 ptypes unsupported\nL3 ptypes unsupported\nSupported L4 ptypes:\n"));
    let r = a.console("show port 7 ptypes");
    assert_eq!(r.status, 2, "{r:?}");
}

/// its refusal as testpmd reports it.
#[test]
fn queue_info_is_testpmds() {
    let a = lan_and_refusing_port();
    assert_eq!(
        a.console("show rxq info 0 0").out,
        "\n********************* Infos for port 0 , RX queue 0  *********************\n\
             Mempool: rvs_pool_0\nRX prefetch threshold: 0\nRX host threshold: 0\n\
             RX writeback threshold: 0\nRX free threshold: 32\nRX drop packets: off\n\
             RX deferred start: off\nRX scattered packets: off\nRx queue state: started\n\
             RX buffer size: 2048\nNumber of RXDs: 1024\nBurst mode: Vector AVX2\n"
    );
    assert_eq!(
        a.console("show txq info 0 0").out,
        "\n********************* Infos for port 0 , TX queue 0  *********************\n\
             TX prefetch threshold: 0\nTX host threshold: 0\nTX writeback threshold: 1\n\
             TX RS threshold: 32\nTX free threshold: 32\nTX deferred start: off\n\
             Number of TXDs: 1024\nTx queue state: started\nBurst mode: Vector AVX2\n"
    );
    let r = a.console("show rxq info 0 3");
    assert_eq!(
            (r.status, r.err.as_str()),
            (
                1,
                "Failed to retrieve information for port: 0, RX queue: 3\nerror desc: Invalid argument(-22)\n"
            )
        );
    let r = a.console("show txq info 1 0");
    assert!(
        r.err
            .ends_with("TX queue: 0\nerror desc: Operation not supported(-95)\n"),
        "{}",
        r.err
    );
    assert_eq!(a.console("show rxq info 5 0").status, 2);
    assert_eq!(a.console("show rxq info 0 x").status, 2);
}

/// testpmd's `set promisc` and `set allmulti`: all ports or one, on and off, quiet on
/// success; a device's refusal in testpmd's words; a port leaving promiscuous mode
/// takes all-multicast mode, which it keeps while not promiscuous; a port a use_vmac
/// VRRP instance speaks on (by its name or its twin's) stays promiscuous; `show config
/// rxtx` lists each port; `show port N rss-hash [key]` as testpmd's.
/// testpmd's `clear fwd stats all`: `show fwd stats` counts from then, the engine's
/// counters with the worker's; `start` does the same.
#[test]
fn clear_fwd_stats_counts_from_now() {
    let a = appliance();
    let stats = a.workers[0].stats.clone();
    let engine = Arc::new(rvs_core::engine::CounterSlots::new(8, 8));
    stats.attach_engine(engine.clone());
    let mut c = rvs_core::WorkerCounters {
        rx_packets: 10,
        tx_packets: 9,
        ..Default::default()
    };
    stats.publish(&c);
    engine.new_conns.add(4);
    engine.dropped(rvs_core::engine::DropReason::NoService);
    let before = a.console("show fwd stats all").out;
    assert!(before.contains("RX-packets: 10 "), "{before}");
    assert!(before.contains("New-conns: 4 "), "{before}");
    let cleared = a.console("clear fwd stats all");
    assert_eq!((cleared.status, cleared.out.as_str()), (0, ""));
    let zero = a.console("show fwd stats");
    assert!(zero.out.contains("RX-packets: 0 "), "{}", zero.out);
    assert!(zero.out.contains("New-conns: 0 "), "{}", zero.out);
    c.rx_packets = 15;
    c.tx_packets = 13;
    stats.publish(&c);
    engine.new_conns.add(1);
    let after = a.console("show fwd stats").out;
    assert!(after.contains("RX-packets: 5 "), "{after}");
    assert!(after.contains("TX-packets: 4 "), "{after}");
    assert!(after.contains("New-conns: 1 "), "{after}");
    // The ports' and ipvsadm's counters are not the console's to clear.
    assert_eq!(engine.read().new_conns, 5);
    assert_eq!(a.console("clear fwd stats").status, 0);
    assert!(a.console("show fwd stats").out.contains("New-conns: 0 "));
}

#[test]
fn record_core_cycles_ends_show_fwd_stats_with_cycles_per_packet() {
    let mut a = appliance();
    Arc::get_mut(&mut a).unwrap().tsc_hz = 2_100_000_000;
    a.workers[0].stats.publish(&rvs_core::WorkerCounters {
        rx_packets: 40,
        tx_packets: 38,
        busy_cycles: 12_346,
        cycles: 99_999,
        ..Default::default()
    });
    assert!(!a.console("show fwd stats").out.contains("CPU cycles"));
    let r = a.console("set record-core-cycles on");
    assert_eq!((r.status, r.out.as_str()), (0, ""));
    let text = a.console("show fwd stats").out;
    assert!(
            text.ends_with("++\n\n  CPU cycles/packet=308.65 (total cycles=12346 / total lb packets=40) at 2100 MHz Clock\n"),
            "{text}"
        );
    // Nothing received nor sent since the last clear: no line.
    assert_eq!(a.console("clear fwd stats").status, 0);
    assert!(!a.console("show fwd stats").out.contains("CPU cycles"));
    assert_eq!(a.console("set record-core-cycles off").status, 0);
    assert_eq!(a.console("set record-core-cycles yes").status, 2);
}

#[test]
fn record_burst_stats_counts_from_on() {
    let a = appliance();
    let stats = a.workers[0].stats.clone();
    let mut c = rvs_core::WorkerCounters::default();
    c.rx_bursts.0[0] = 50;
    c.rx_bursts.0[32] = 10;
    // A polling worker with bursts counted before recording starts.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (stats, stop, mut c) = (stats.clone(), stop.clone(), c);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                c.polls += 1;
                stats.publish(&c);
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            c
        })
    };
    assert!(!a.console("show fwd stats").out.contains("bursts"));
    let r = a.console("set record-burst-stats on");
    assert_eq!((r.status, r.out.as_str()), (0, ""));
    stop.store(true, Ordering::Relaxed);
    c = worker.join().unwrap();
    c.rx_bursts.0[0] += 6;
    c.rx_bursts.0[32] += 3;
    c.rx_bursts.0[5] += 1;
    c.tx_bursts.0[32] += 3;
    stats.publish(&c);
    let text = a.console("show fwd stats").out;
    assert!(
            text.contains(
                "  RX-bursts : 10 [60% of 0 pkts + 30% of 32 pkts + 10% of 5 pkts]\n  TX-bursts : 3 [0% of 0 pkts + 100% of 32 pkts]\n"
            ),
            "{text}"
        );
    assert_eq!(a.console("set record-burst-stats off").status, 0);
    assert!(!a.console("show fwd stats").out.contains("bursts"));
    assert_eq!(a.console("set record-burst-stats maybe").status, 2);
}

/// testpmd's `clear port xstats all|N`: quiet; a driver's refusal in testpmd's words.
#[test]
fn clear_port_xstats_is_quiet_or_the_drivers_refusal() {
    let a = lan_and_refusing_port();
    let r = a.console("clear port xstats 0");
    assert_eq!((r.status, r.out.as_str(), r.err.as_str()), (0, "", ""));
    let r = a.console("clear port xstats all");
    assert_eq!(r.status, 1);
    assert_eq!(
        r.err.trim_end(),
        "nic_xstats_clear: Error: failed to reset xstats (port 1): Operation not supported"
    );
    assert_eq!(a.console("clear port xstats 7").status, 2);
    // testpmd's set xstats-hide-zero.
    let all = "###### NIC extended statistics for port 0 \nrx_good_packets: 7\nrx_errors: 0\n";
    assert_eq!(a.console("show port xstats 0").out, all);
    assert_eq!(a.console("set xstats-hide-zero on").status, 0);
    assert_eq!(
        a.console("show port xstats 0").out,
        "###### NIC extended statistics for port 0 \nrx_good_packets: 7\n"
    );
    assert_eq!(a.console("set xstats-hide-zero off").status, 0);
    assert_eq!(a.console("show port xstats 0").out, all);
    assert_eq!(a.console("set xstats-hide-zero maybe").status, 2);
}

/// `show port info 0` of the fake `lan` port below.
const PORT_INFO_GOLDEN: &str = "\n********************* Infos for port 0  *********************\nMAC address: \nDevice name: lan\nDriver name: net_fake\nFirmware-version: not available\nDevargs: iface=fake0\nConnect to socket: 0\nmemory allocation on the socket: 0\nLink status: up\nLink speed: None\nLink duplex: half-duplex\nAutoneg status: Off\nMTU: 1500\nPromiscuous mode: disabled\nAllmulticast mode: enabled\nMaximum number of MAC addresses: 1\nMaximum number of MAC addresses of hash filtering: 0\nVLAN offload: \n  strip on, filter off, extend off, qinq strip off\nHash key size in bytes: 4\nRedirection table size: 128\nSupported RSS offload flow types:\n  ipv4\n  ipv4-tcp\n  ipv4-udp\n  l3-src-only\nMinimum size of RX buffer: 64\nMaximum configurable length of RX packet: 9018\nMaximum configurable size of LRO aggregated packet: 0\nCurrent number of RX queues: 1\nMax possible RX queues: 4\nMax possible number of RXDs per queue: 4096\nMin possible number of RXDs per queue: 64\nRXDs number alignment: 32\nCurrent number of TX queues: 1\nMax possible TX queues: 4\nMax possible number of TXDs per queue: 4096\nMin possible number of TXDs per queue: 64\nTXDs number alignment: 32\nMax segment number per packet: 40\nMax segment number per MTU/TSO: 8\nDevice capabilities: 0x3( RUNTIME_RX_QUEUE_SETUP RUNTIME_TX_QUEUE_SETUP )\nRSS hash types in use:\n  ipv4 ipv4-frag ipv4-tcp ipv4-other ipv6 ipv6-frag ipv6-tcp ipv6-other ipv6-ex ipv6-tcp-ex ip tcp\nNumber of RXDs per queue: 0\nNumber of TXDs per queue: 0\nMinimum MTU: 0\nMaximum MTU: 0\n";

#[test]
fn promiscuous_mode_by_port_except_under_a_vmac() {
    let bits = |name| crate::rss_types::bits(name).unwrap();
    let lan = Arc::new(FakePort {
        rss: Some((bits("ip") | bits("tcp"), vec![0x6d, 0x5a, 0x56, 0xda])),
        ..Default::default()
    });
    let wan = Arc::new(FakePort {
        rss: Some((0, vec![0; 40])),
        ..Default::default()
    });
    let odd = Arc::new(FakePort {
        refuse: true,
        ..Default::default()
    });
    let xdp = Arc::new(FakePort {
        no_allmulti: true,
        rss: Some((
            bits("ipv4-udp") | bits("l3-src-only") | bits("l4-src-only"),
            vec![0; 40],
        )),
        ..Default::default()
    });
    let views = vec![
        PortView {
            name: "lan".into(),
            port: lan.clone(),
            twin: Some("rvs-lan".into()),
        },
        PortView {
            name: "wan".into(),
            port: wan.clone(),
            twin: None,
        },
        PortView {
            name: "odd".into(),
            port: odd,
            twin: None,
        },
        PortView {
            name: "xdp".into(),
            port: xdp.clone(),
            twin: None,
        },
    ];
    let a = appliance_with_ports(views);
    let on = |p: &FakePort| p.promiscuous.load(Ordering::Relaxed);
    let r = a.console("set promisc 1 on");
    assert_eq!((r.status, r.out.as_str(), r.err.as_str()), (0, "", ""));
    assert!(on(&wan) && !on(&lan));
    let r = a.console("set promisc all on");
    assert_eq!(r.status, 1);
    assert_eq!(
        r.err,
        "Error during enabling promiscuous mode for port 2: Operation not supported - ignore\n"
    );
    assert!(on(&lan) && on(&wan), "the others still done");
    let r = a.console("set promisc 0 off");
    assert_eq!(
            (r.status, r.out.as_str()),
            (
                0,
                "port 0: all-multicast mode on (VRRP adverts and IPv6 neighbour discovery are multicast)\n"
            )
        );
    let multi = |p: &FakePort| p.allmulticast.load(Ordering::Relaxed);
    assert!(!on(&lan) && multi(&lan));
    let r = a.console("set allmulti 0 off");
    assert_eq!(r.status, 1);
    assert_eq!(
            r.err,
            "port 0 (lan): not promiscuous, so VRRP adverts and IPv6 neighbour discovery need all-multicast mode: left on\n"
        );
    assert!(multi(&lan));
    assert_eq!(a.console("set allmulti 1 on").status, 0);
    assert_eq!(
        a.console("set allmulti 1 off").status,
        0,
        "promiscuous: may go"
    );
    assert!(!multi(&wan));
    let info = a.console("show port info 0").out;
    assert!(
        info.contains("Promiscuous mode: disabled\nAllmulticast mode: enabled\n"),
        "{info}"
    );
    // testpmd's fields in its order and words (RSS types a line each), then rvs's.
    assert_eq!(info, PORT_INFO_GOLDEN);
    let info = a.console("show port info 2").out;
    assert!(
        !info.contains("Redirection table size")
            && !info.contains("Hash key size")
            && info.contains("\nNo RSS offload flow type is supported.\nMinimum size of RX"),
        "{info}"
    );
    assert_eq!(
        a.console("show port 0 rss-hash key").out,
        "RSS functions:\n ipv4 ipv4-frag ipv4-tcp ipv4-other ipv6 ipv6-frag ipv6-tcp \
             ipv6-other ipv6-ex ipv6-tcp-ex ip tcp \nRSS key:\n6D5A56DA\n"
    );
    assert_eq!(
        a.console("show port 3 rss-hash").out,
        "RSS functions:\n ipv4-udp l3-src-only l4-src-only \n"
    );
    assert_eq!(a.console("show port 1 rss-hash").out, "RSS disabled\n");
    // The redirection table: whole, or by testpmd's size and masks.
    let reta = a.console("show port 0 rss reta").out;
    assert_eq!(reta.lines().count(), 128);
    assert!(reta.starts_with(
            "RSS RETA configuration: hash index=0, queue=0\nRSS RETA configuration: hash index=1, queue=1\n"
        ));
    assert_eq!(
        a.console("show port 0 rss reta 128 (0x5,0x1)").out,
        "RSS RETA configuration: hash index=0, queue=0\n\
             RSS RETA configuration: hash index=2, queue=2\n\
             RSS RETA configuration: hash index=64, queue=1\n"
    );
    assert_eq!(a.console("show port 0 rss reta 64 (0x1)").status, 1);
    assert_eq!(a.console("show port 0 rss reta 128 (zz)").status, 2);
    assert_eq!(a.console("show port 2 rss reta").status, 1);
    let r = a.console("show port 2 rss-hash");
    assert_eq!(
        (r.status, r.err.as_str()),
        (1, "dev_info did not provide a valid hash key size\n")
    );
    for bad in ["set promisc 4 on", "set promisc 0 maybe"] {
        assert_eq!(a.console(bad).status, 2, "{bad}");
    }
    // A use_vmac instance on lan's twin: lan stays promiscuous, wan may go.
    assert_eq!(a.console("set promisc 0 on").status, 0);
    let rows = vec![crate::vrrp::InstanceStatus {
        name: "VI_1".into(),
        interface: "rvs-lan".into(),
        vmac: Some(([0, 0, 0x5e, 0, 1, 51], false)),
        ..Default::default()
    }];
    *a.vrrp.lock() = Some(Arc::new(Mutex::new(rows)));
    let r = a.console("set promisc all off");
    assert_eq!(r.status, 1);
    assert_eq!(
            r.err,
            "port 0 (lan): vrrp_instance VI_1 uses a VMAC (use_vmac), whose frames need promiscuous mode: left on\n"
        );
    assert!(on(&lan) && on(&wan), "refused before any change");
    assert_eq!(a.console("set promisc 1 off").status, 0);
    assert!(on(&lan) && !on(&wan));
    let rxtx = a.console("show config rxtx").out;
    assert!(rxtx.contains("nb forwarding ports=4\n"), "{rxtx}");
    assert_eq!(
        rxtx.matches("RX queue number: 1 Tx queue number: 1")
            .count(),
        4
    );
    // A device without all-multicast mode stays promiscuous.
    let r = a.console("set promisc 3 off");
    assert_eq!(
            (r.status, r.err.as_str()),
            (
                1,
                "Error during enabling all-multicast mode for port 3: Operation not supported - promiscuous mode left on (VRRP adverts and IPv6 neighbour discovery are multicast)\n"
            )
        );
    assert!(on(&xdp));
}

/// A VIP is announced while a service of it has a server of weight above 0 and the
/// workers forward and none stalled; each refusal says why.
#[test]
fn announce_plan_follows_live_servers() {
    let a = appliance();
    let vip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        a.ipvsadm(&["-A", "-t", "192.0.2.1:80", "-s", "mh"], "")
            .status,
        0
    );
    assert_eq!(
        a.ipvsadm(
            &[
                "-a",
                "-t",
                "192.0.2.1:80",
                "-r",
                "10.0.0.2",
                "-g",
                "-w",
                "0"
            ],
            ""
        )
        .status,
        0
    );
    assert_eq!(
        a.announce_plan(None, None),
        vec![(vip, Some("no live server".into()))]
    );
    assert_eq!(
        a.ipvsadm(
            &[
                "-e",
                "-t",
                "192.0.2.1:80",
                "-r",
                "10.0.0.2",
                "-g",
                "-w",
                "1"
            ],
            ""
        )
        .status,
        0
    );
    assert_eq!(a.announce_plan(None, None), vec![(vip, None)]);
    assert_eq!(
        a.announce_plan(None, Some("worker 0 stalled")),
        vec![(vip, Some("worker 0 stalled".into()))]
    );
    let other: std::net::IpAddr = "192.0.2.9".parse().unwrap();
    assert_eq!(
        a.announce_plan(Some(&[other]), None),
        vec![(other, Some("no service".into()))]
    );
    a.forwarding.store(false, Ordering::Relaxed);
    assert_eq!(
        a.announce_plan(None, None),
        vec![(vip, Some("forwarding stopped".into()))]
    );
    assert!(a.console("show announce").out.contains("nothing announced"));
}

/// A node whose data port's link is down withdraws its VIPs; one whose link its driver
/// cannot tell keeps them.
#[test]
fn announce_plan_withdraws_while_a_port_link_is_down() {
    let a = lan_and_refusing_port();
    for line in [
        "ipvsadm -A -t 192.0.2.1:80 -s mh",
        "ipvsadm -a -t 192.0.2.1:80 -r 10.0.0.2 -g -w 1",
    ] {
        assert_eq!(a.console(line).status, 0, "{line}");
    }
    let vip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(a.announce_plan(None, None), vec![(vip, None)]);
    assert_eq!(a.console("set link-down port 0").status, 0);
    assert_eq!(
        a.announce_plan(None, None),
        vec![(vip, Some("port 0 (lan): link down".into()))]
    );
    assert_eq!(a.console("set link-up port 0").status, 0);
    assert_eq!(a.announce_plan(None, None), vec![(vip, None)]);
}

/// The reload tests' TOML: one port, load balancing.
const RELOAD_BASE: &str = "[eal]\nlcores = \"0,1\"\n\n[dataplane]\nforward = \"lb\"\n\n[[port]]\nname = \"a\"\ndevice = \"net_ring0\"\n";

/// The process has one mailer: a start or reload from files sets it, and checkers
/// alert through it, so the tests that start appliances from files take turns.
static MAILER_TESTS: parking_lot::Mutex<()> = parking_lot::const_mutex(());

/// [`reloadable`]'s appliance, holding the mailer's turn while it lives.
struct Reloadable {
    appliance: Arc<Appliance>,
    _turn: parking_lot::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Reloadable {
    type Target = Arc<Appliance>;
    fn deref(&self) -> &Arc<Appliance> {
        &self.appliance
    }
}

/// An appliance started as the daemon starts one from the TOML at `toml` (and the
/// keepalived.conf at `keepalived`, its checkers running), which `reload` reads again.
fn reloadable(toml: &std::path::Path, keepalived: Option<&std::path::Path>) -> Reloadable {
    reloadable_with_cores(toml, keepalived, None)
}

/// As [`reloadable`], started with the command line's `--nb-cores`.
fn reloadable_with_cores(
    toml: &std::path::Path,
    keepalived: Option<&std::path::Path>,
    nb_cores: Option<usize>,
) -> Reloadable {
    let turn = MAILER_TESTS.lock();
    let cfg = crate::config::Config::load_with_cores(toml, nb_cores).unwrap();
    let loads = Arc::new((0..cfg.limits.dests).map(|_| DestLoad::default()).collect());
    let d = cfg.lb.director(cfg.limits, loads, Vec::new()).unwrap();
    let cell = Arc::new(SnapshotCell::new(d.snapshot()));
    let a = Appliance::new(d, cell, Vec::new(), Vec::new(), 1024).shared();
    let keepalived_text = keepalived.map(|p| std::fs::read_to_string(p).unwrap());
    if let Some(text) = &keepalived_text {
        let conf = KeepalivedConf::parse("keepalived.conf", text).unwrap();
        a.load_keepalived(&conf).unwrap();
    }
    a.set_reload_source(ReloadSource {
        config: toml.to_path_buf(),
        keepalived: keepalived.map(std::path::Path::to_path_buf),
        fixed: restart_only(&cfg),
        nb_cores,
        keepalived_text,
    });
    Reloadable {
        appliance: a,
        _turn: turn,
    }
}

/// A reload whose VRRP cannot run (an instance on an interface that is no port with a
/// twin) changes nothing, services included, and names the file and line.
#[test]
fn a_reload_with_an_impossible_vrrp_instance_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("rvs-reload-vrrp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (toml, kconf) = (dir.join("rvs.toml"), dir.join("keepalived.conf"));
    std::fs::write(&toml, RELOAD_BASE).unwrap();
    std::fs::write(
        &kconf,
        "virtual_server 192.0.2.20 80 {\n  protocol TCP\n}\n",
    )
    .unwrap();
    let a = reloadable(&toml, Some(&kconf));
    let before = a.director.lock().services.len();
    std::fs::write(
            &kconf,
            "virtual_server 192.0.2.20 80 {\n  protocol TCP\n}\nvirtual_server 192.0.2.21 80 {\n  protocol TCP\n}\n\
             vrrp_instance VI_1 {\n  interface eth9\n  virtual_router_id 1\n  virtual_ipaddress { 192.0.2.20 }\n}\n",
        )
        .unwrap();
    let r = a.console("reload");
    assert_ne!(r.status, 0);
    assert!(
        r.err.contains("keepalived.conf:7: vrrp_instance VI_1"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("eth9") && r.err.contains("(nothing changed)"),
        "{}",
        r.err
    );
    assert_eq!(a.director.lock().services.len(), before);
    assert!(a.vrrp_conf().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// lvs_notify_fifo gets keepalived's checker lines: the quorum gained at start, then a
/// real server's checker failing; with rs_init_notifies the servers alive at start first.
#[test]
fn checkers_write_keepalived_s_fifo_lines() {
    checker_lines("", "");
    checker_lines(
            "  rs_init_notifies\n",
            "RS [10.0.0.1]:tcp:80 [192.0.2.20]:tcp:80 UP\nRS [10.0.0.2]:tcp:80 [192.0.2.20]:tcp:80 UP\n",
        );
}

fn checker_lines(global: &str, first: &str) {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(format!(
        "rvs-lvs-fifo-{}-{}",
        std::process::id(),
        global.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (toml, kconf, fifo, all) = (
        dir.join("rvs.toml"),
        dir.join("keepalived.conf"),
        dir.join("lvs.fifo"),
        dir.join("all.fifo"),
    );
    std::fs::write(&toml, RELOAD_BASE).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    std::fs::write(
            &kconf,
            format!(
                "global_defs {{\n  lvs_notify_fifo {}\n  notify_fifo {}\n{global}}}\nvirtual_server 192.0.2.20 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.0.1 80 {{\n  }}\n  real_server 10.0.0.2 80 {{\n    TCP_CHECK {{\n      connect_ip 127.0.0.1\n      connect_port {port}\n      connect_timeout 1\n      retry 0\n      warmup 0\n    }}\n  }}\n}}\n",
                fifo.display(),
                all.display()
            ),
        )
        .unwrap();
    let a = reloadable(&toml, Some(&kconf));
    let open = |path: &std::path::Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap()
    };
    let (mut reader, mut all_reader) = (open(&fifo), open(&all));
    let want = format!(
        "{first}VS [192.0.2.20]:tcp:80 UP\nRS [10.0.0.2]:tcp:80 [192.0.2.20]:tcp:80 DOWN\n"
    );
    // Both lvs_notify_fifo and the global notify_fifo get the checkers' lines.
    for r in [&mut reader, &mut all_reader] {
        let mut got = String::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.len() < want.len() && std::time::Instant::now() < deadline {
            let mut buf = [0u8; 256];
            match r.read(&mut buf) {
                Ok(n) => got.push_str(std::str::from_utf8(&buf[..n]).unwrap()),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
        assert_eq!(got, want);
    }
    // A reload of a changed file configuring the FIFO alike: the new checkers write on
    // to the open FIFO; its reader never sees it closed (a read of 0 bytes).
    let text = std::fs::read_to_string(&kconf).unwrap();
    std::fs::write(&kconf, format!("# changed\n{text}")).unwrap();
    let r = a.console("reload");
    assert!(r.err.is_empty(), "{}", r.err);
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        let mut buf = [0u8; 256];
        if let Ok(n) = reader.read(&mut buf) {
            assert!(n > 0, "the FIFO was closed by the reload");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    a.stop_health();
    assert!(
        !fifo.exists() && !all.exists(),
        "a FIFO rvs made outlived its checkers"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reload reads the file under the `--nb-cores` rvs started with: the same file changes
/// nothing that needs a restart; one with too few lcores for it is refused whole.
#[test]
fn a_reload_reads_the_file_under_the_command_lines_nb_cores() {
    let dir = std::env::temp_dir().join(format!("rvs-reload-cores-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("rvs.toml");
    let with_lcores = |l: &str| {
        RELOAD_BASE.replace("lcores = \"0,1\"", &format!("lcores = \"{l}\"")) + "rx_queues = 3\n"
    };
    std::fs::write(&toml, with_lcores("0-3")).unwrap();
    let a = reloadable_with_cores(&toml, None, Some(2));
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(!r.out.contains("next restart"), "{}", r.out);
    std::fs::write(&toml, with_lcores("0-1")).unwrap();
    let r = a.console("reload");
    assert_ne!(r.status, 0);
    assert!(
        r.err
            .contains("--nb-cores=2: nb-cores should be > 0 and <= 1")
            && r.err.contains("(nothing changed)"),
        "{}",
        r.err
    );
    drop(a);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Mail settings a reload brings are in use at once, and restart nothing else.
#[test]
fn a_reload_takes_new_mail_settings_into_use() {
    let dir = std::env::temp_dir().join(format!("rvs-reload-mail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("rvs.toml");
    std::fs::write(&toml, RELOAD_BASE).unwrap();
    let a = reloadable(&toml, None);
    let sink = rvs_testkit::smtp::Sink::start("127.0.0.1:0");
    std::fs::write(
            &toml,
            format!(
                "{RELOAD_BASE}\n[mail]\nsmtp_server = \"127.0.0.1 {}\"\nnotification_email = [\"ops@example.com\"]\nrouter_id = \"R\"\n",
                sink.addr.port()
            ),
        )
        .unwrap();
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(r.out.starts_with("reload: 0 change(s)"), "{}", r.out);
    let mailer = crate::mail::current();
    assert_eq!(mailer.conf().server, Some(sink.addr));
    mailer.vrrp_state(false, Some(true), "VI_R", "MASTER");
    mailer.flush(std::time::Duration::from_secs(10));
    let mails = sink.wait_for(1, std::time::Duration::from_secs(10));
    assert!(
        mails.len() == 1
            && mails[0].contains("Subject: [R] VRRP Instance VI_R - Entering MASTER state\r\n"),
        "{mails:?}"
    );
    let shown = a.console("show mail").out;
    assert!(
            shown.starts_with(&format!(
                "mail: smtp_server [127.0.0.1]:{}, router_id R, timeout 30 s\n  to: ops@example.com\n  smtp_alert unset, smtp_alert_vrrp unset, smtp_alert_checker unset\n  alerts sent ",
                sink.addr.port()
            )),
            "{shown}"
        );
    // Taken out again: no mailer.
    std::fs::write(&toml, RELOAD_BASE).unwrap();
    assert_eq!(a.console("reload").status, 0);
    assert!(!crate::mail::current().enabled());
    assert!(a.console("show mail").out.starts_with("mail: off"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a reload removes is notified as keepalived's clear_diff_services does: a live
/// real server gone from a kept virtual server, and each live one of a virtual server
/// gone, run notify_down and mail "=> Removing <="; the gone virtual server loses its
/// quorum (quorum_down, the mail); what stays says nothing, a kept service without
/// checkers included (its quorum carried, not gained anew).
#[test]
fn a_reload_notifies_what_it_removes() {
    let dir = std::env::temp_dir().join(format!("rvs-reload-gone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (toml, kconf, said) = (
        dir.join("rvs.toml"),
        dir.join("keepalived.conf"),
        dir.join("said"),
    );
    std::fs::write(&toml, RELOAD_BASE).unwrap();
    let sink = rvs_testkit::smtp::Sink::start("127.0.0.1:0");
    let echo = |what: &str| format!("\"/bin/sh -c 'echo {what} >> {}'\"", said.display());
    let server = |n: u8| {
        format!(
                "  real_server 10.0.0.{n} 80 {{\n    notify_down {}\n    MISC_CHECK {{\n      misc_path /bin/true\n    }}\n  }}\n",
                echo(&format!("down-{n}"))
            )
    };
    let service = |vip: u8, servers: &[u8]| {
        format!(
                "virtual_server 192.0.2.{vip} 80 {{\n  delay_loop 60\n  protocol TCP\n  smtp_alert\n  quorum_down {}\n{}}}\n",
                echo(&format!("qdown-{vip}")),
                servers.iter().map(|&n| server(n)).collect::<String>()
            )
    };
    let mail = format!(
            "global_defs {{\n  router_id R\n  notification_email {{\n    ops@example.com\n  }}\n  smtp_server 127.0.0.1 {}\n}}\n",
            sink.addr.port()
        );
    let unchecked = format!(
            "virtual_server 192.0.2.32 80 {{\n  protocol TCP\n  smtp_alert\n  quorum_up {}\n  real_server 10.0.0.4 80 {{\n  }}\n}}\n",
            echo("qup-32")
        );
    std::fs::write(
        &kconf,
        format!(
            "{mail}{}{}{unchecked}",
            service(30, &[1, 2]),
            service(31, &[3])
        ),
    )
    .unwrap();
    let a = reloadable(&toml, Some(&kconf));
    std::fs::write(&kconf, format!("{mail}{}{unchecked}", service(30, &[2]))).unwrap();
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    crate::mail::current().flush(std::time::Duration::from_secs(10));
    let mails: Vec<String> = sink
        .wait_for(4, std::time::Duration::from_secs(3))
        .iter()
        .map(|m| {
            use rvs_testkit::smtp::{body, subject};
            format!("{} | {}", subject(m), body(m))
        })
        .collect();
    assert_eq!(
            mails,
            [
                "[R] Realserver [10.0.0.1]:tcp:80 of virtual server [192.0.2.30]:tcp:80 - DOWN | => Removing <=",
                "[R] Realserver [10.0.0.3]:tcp:80 of virtual server [192.0.2.31]:tcp:80 - DOWN | => Removing <=",
                "[R] Virtualserver [192.0.2.31]:tcp:80 - DOWN | => Lost quorum 1+0=1 <= 0 <=",
            ]
        );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let lines = || {
        let mut l: Vec<String> = std::fs::read_to_string(&said)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        l.sort();
        l
    };
    while lines().len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // qup-32 once: at the start.
    assert_eq!(lines(), ["down-1", "down-3", "qdown-31", "qup-32"]);
    a.stop_health();
    crate::mail::set_current(crate::mail::Mailer::default());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A changed keepalived.conf keeps the verdicts of checkers configured as before: a
/// server found dead stays out across the reload (never put back for a moment), while a
/// checker whose configuration changed starts afresh.
#[test]
fn reload_keeps_unchanged_checkers_state() {
    let dir = std::env::temp_dir().join(format!("rvs-reload-hc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (toml, kconf) = (dir.join("rvs.toml"), dir.join("keepalived.conf"));
    std::fs::write(&toml, RELOAD_BASE).unwrap();
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (open_port, closed_port) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    drop(closed);
    let check = |port: u16| {
        format!("    TCP_CHECK {{\n      connect_ip 127.0.0.1\n      connect_port {port}\n      connect_timeout 1\n      retry 0\n      delay_before_retry 1\n      warmup 0\n    }}\n")
    };
    let conf_text = |comment: &str, dead_check_port: u16| {
        format!(
                "# {comment}\nvirtual_server 192.0.2.20 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.0.1 80 {{\n{}  }}\n  real_server 10.0.0.2 80 {{\n{}  }}\n}}\n",
                check(open_port),
                check(dead_check_port)
            )
    };
    let first = conf_text("first", closed_port);
    std::fs::write(&kconf, &first).unwrap();
    let a = reloadable(&toml, Some(&kconf));
    let servers = |a: &Appliance| -> Vec<String> {
        let d = a.director.lock();
        d.services
            .first()
            .map(|s| s.dests.iter().map(|r| r.addr.to_string()).collect())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while servers(&a).contains(&"10.0.0.2".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead server's checker never failed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Only a comment changed: both checkers keep their verdicts; 10.0.0.2 stays out.
    std::fs::write(&kconf, conf_text("second", closed_port)).unwrap();
    let g = a.cell().generation();
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(
        r.out
            .contains("2 of 2 configured as before keep their state"),
        "{}",
        r.out
    );
    // One publication, the reload's: the new checkers' first evaluation had nothing to
    // take back out.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(servers(&a), vec!["10.0.0.1"]);
    assert_eq!(a.cell().generation(), g + 1);
    let health = a.console("show health").out;
    assert!(
        health
            .lines()
            .any(|l| l.contains("10.0.0.2:80") && l.contains("DOWN")),
        "{health}"
    );
    // The dead server's checker now probes the open port: it starts afresh (up).
    std::fs::write(&kconf, conf_text("third", open_port)).unwrap();
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(
        r.out
            .contains("1 of 2 configured as before keep their state"),
        "{}",
        r.out
    );
    let mut now = servers(&a);
    now.sort();
    assert_eq!(now, vec!["10.0.0.1", "10.0.0.2"]);
    a.stop_health();
    drop(open);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload applies the file's difference in one snapshot and keeps what is the same;
/// a bad file changes nothing and says where; restart-only changes are reported.
#[test]
fn reload_applies_the_difference() {
    let dir = std::env::temp_dir().join(format!("rvs-reload-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rvs.toml");
    let base = RELOAD_BASE;
    let service = |weight: u32, extra: &str| {
        format!(
                "{base}\n[[service]]\nprotocol = \"tcp\"\naddress = \"192.0.2.10\"\nport = 80\nscheduler = \"rr\"\n\n[[service.server]]\naddress = \"10.0.0.1\"\nmethod = \"nat\"\nweight = {weight}\n\n[[service.server]]\naddress = \"10.0.0.2\"\nmethod = \"nat\"\n{extra}"
            )
    };
    let first = service(1, "");
    std::fs::write(&path, &first).unwrap();
    let a = reloadable(&path, None);
    let id_of = |a: &Appliance, addr: &str| {
        let d = a.director.lock();
        d.services[0]
            .dests
            .iter()
            .find(|r| r.addr.to_string() == addr)
            .map(|r| (r.id, r.weight))
    };
    let kept = id_of(&a, "10.0.0.2").unwrap();
    // Unchanged: nothing to do.
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(r.out.starts_with("reload: 0 change(s)"), "{}", r.out);
    // A weight edited, a server added: two lines, one snapshot; 10.0.0.2 untouched.
    std::fs::write(
        &path,
        service(
            5,
            "\n[[service.server]]\naddress = \"10.0.0.3\"\nmethod = \"nat\"\n",
        ),
    )
    .unwrap();
    let g = a.cell().generation();
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(r.out.starts_with("reload: 2 change(s)"), "{}", r.out);
    assert!(
        r.out.contains("-e -t 192.0.2.10:80 -r 10.0.0.1:80 -m -w 5"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("-a -t 192.0.2.10:80 -r 10.0.0.3:80 -m -w 1"),
        "{}",
        r.out
    );
    assert_eq!(a.cell().generation(), g + 1, "one snapshot");
    assert_eq!(id_of(&a, "10.0.0.1").map(|(_, w)| w), Some(5));
    assert_eq!(id_of(&a, "10.0.0.2"), Some(kept), "kept as it was");
    // A bad file: nothing changes, the error says where.
    std::fs::write(
        &path,
        first.replace("scheduler = \"rr\"", "scheduler = \"fastest\""),
    )
    .unwrap();
    let r = a.console("reload");
    assert_eq!(r.status, 1);
    assert!(
        r.err.contains("rvs.toml:") && r.err.contains("nothing changed"),
        "{}",
        r.err
    );
    assert_eq!(a.cell().generation(), g + 1);
    // Back to the first file, with another port: applied, and the port change reported.
    std::fs::write(&path, first.replace("net_ring0", "net_ring1")).unwrap();
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(
        r.out.contains("-d -t 192.0.2.10:80 -r 10.0.0.3:80"),
        "{}",
        r.out
    );
    assert!(r.out.contains("next restart"), "{}", r.out);
    assert_eq!(id_of(&a, "10.0.0.3"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload applies and reports the settings beside the rules: member ranges, a VIP's
/// unserved traffic, forwarding, routes, timeouts; each a line of the report.
#[test]
fn reload_applies_and_reports_the_settings() {
    let dir = std::env::temp_dir().join(format!("rvs-reload-set-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rvs.toml");
    let base = RELOAD_BASE.replace("forward = \"lb\"\n", "forward = \"lb\"\nFORWARD\n");
    let service = "\n[[service]]\nprotocol = \"tcp\"\naddress = \"192.0.2.10\"\nport = 80\n\n[[service.server]]\naddress = \"10.0.0.1\"\nmethod = \"nat\"\n";
    let first = format!("{}{service}", base.replace("FORWARD", ""));
    std::fs::write(&path, &first).unwrap();
    let a = reloadable(&path, None);
    let second = format!(
            "{}{service}\n[[vip]]\naddress = \"192.0.2.10\"\nunserved = \"drop\"\n\n[[outgoing]]\nvip = \"192.0.2.10\"\nports = \"33000-33999\"\nmember = \"10.0.0.1\"\n\n[[route]]\nprefix = \"0.0.0.0/0\"\nport = \"a\"\nvia = \"192.0.2.1\"\n\n[timeouts]\ntcp = 600\n",
            base.replace(
                "FORWARD",
                "ip_forward = true\npmtu_disc = false\nnat_icmp_send = true\nschedule_icmp = true\ncache_bypass = true\nsecure_tcp = 3\ndrop_entry = 3\ndrop_packet = 3\nam_droprate = 5\namemthresh = 2048\nsync_persist_mode = true\nsync_refresh_period = 30\nlblc_expiration = 3600"
            )
        );
    std::fs::write(&path, &second).unwrap();
    let g = a.cell().generation();
    let r = a.console("reload");
    assert_eq!(r.status, 0, "{}", r.err);
    for line in [
        "reload: 17 change(s)",
        "  drop_entry 3\n",
        "  drop_packet 3\n",
        "  am_droprate 5\n",
        "  sync_refresh_period 30 s\n",
        "  lblc_expiration 3600 s\n",
        "  pmtu_disc off\n",
        "  nat_icmp_send on\n",
        "  schedule_icmp on\n",
        "  cache_bypass on\n",
        "  secure_tcp 3\n",
        "  amemthresh 2048 pages\n",
        "  sync_persist_mode on\n",
        "  routes: 0 -> 1\n",
        "  [[outgoing]] member ranges: 0 -> 1\n",
        "  [[vip]] unserved = \"drop\" addresses: 0 -> 1\n",
        "  ip_forward on\n",
        "  timeouts (tcp tcpfin udp) 600 120 300\n",
    ] {
        assert!(r.out.contains(line), "{line:?} in {}", r.out);
    }
    assert_eq!(a.cell().generation(), g + 1, "one snapshot");
    {
        let d = a.director.lock();
        assert_eq!(d.member_ports.len(), 1);
        assert_eq!(
            d.unserved_drop,
            vec!["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(d.ip_forward);
    }
    let snap = a.cell().load();
    assert!(
        snap.ip_forward
            && !snap.pmtu_disc
            && snap.nat_icmp_send
            && snap.schedule_icmp
            && snap.cache_bypass
            && snap.secure_tcp,
        "in the workers' snapshot"
    );
    assert_eq!(snap.cache_expiration.lblc, 3600);
    assert_eq!(snap.sync_refresh_period, 30);
    assert!(snap.drop_entry);
    assert_eq!(snap.drop_rate, 5, "drop_packet 3: am_droprate");
    // And back: each goes again.
    std::fs::write(&path, &first).unwrap();
    let r = a.console("reload");
    assert!(r.out.starts_with("reload: 17 change(s)"), "{}", r.out);
    assert!(r.out.contains("  drop_packet 0\n"), "{}", r.out);
    assert!(r.out.contains("  secure_tcp 0\n"), "{}", r.out);
    assert!(r.out.contains("  cache_bypass off\n"), "{}", r.out);
    assert!(r.out.contains("  sync_refresh_period 0 s\n"), "{}", r.out);
    assert!(r.out.contains("  lblc_expiration 86400 s\n"), "{}", r.out);
    assert!(r.out.contains("  nat_icmp_send off\n"), "{}", r.out);
    assert!(r.out.contains("  schedule_icmp off\n"), "{}", r.out);
    assert!(r.out.contains("  ip_forward off\n"), "{}", r.out);
    assert!(r.out.contains("  pmtu_disc on\n"), "{}", r.out);
    assert!(a.cell().load().pmtu_disc);
    assert!(a.director.lock().member_ports.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The capture verbs' answers: usage, ports, filters, one capture at a time.
#[test]
fn capture_verbs() {
    let a = appliance();
    let file = std::env::temp_dir().join(format!("rvs-cap-{}.pcapng", std::process::id()));
    let f = file.display().to_string();
    let r = a.console(&format!("capture start all {f}"));
    assert!(
        r.status == 1 && r.err.contains("forward = \"lb\""),
        "{}",
        r.err
    );
    a.set_capture(rvs_core::capture::Capture::new(8));
    assert_eq!(a.console("capture").status, 2);
    let r = a.console(&format!("capture start wan {f}"));
    assert!(
        r.status == 2 && r.err.contains("no port \"wan\""),
        "{}",
        r.err
    );
    let r = a.console(&format!("capture start all rx port 53 or {f}"));
    assert!(
        r.status == 2 && r.err.starts_with("capture: filter \"port 53 or\": "),
        "{}",
        r.err
    );
    let r = a.console(&format!("capture start all both udp port 53 or not ip {f}"));
    assert_eq!(r.status, 0, "{}", r.err);
    let shown = a.console("show capture").out;
    assert!(
        shown.contains("running into") && shown.contains("(filter: udp port 53 or not ip)"),
        "{shown}"
    );
    assert_eq!(
        a.console(&format!("capture start all {f}")).status,
        1,
        "one at a time"
    );
    let r = a.console("capture stop");
    assert!(
        r.out.starts_with("capture: 0 frame(s) written"),
        "{}",
        r.out
    );
    assert_eq!(a.console("capture stop").status, 1);
    // An empty capture is still a pcapng file with its interface.
    let mut reader =
        pcap_file::pcapng::PcapNgReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    assert!(matches!(
        reader.next_block().unwrap().unwrap(),
        pcap_file::pcapng::Block::InterfaceDescription(_)
    ));
    let _ = std::fs::remove_file(&file);
}

/// The metrics page: node_exporter's names for a service and its servers, the
/// keepalived exporter's VRRP state, valid text-format lines throughout.
#[test]
fn the_metrics_page() {
    let a = appliance();
    assert_eq!(a.ipvsadm(&["-A", "-f", "7", "-s", "rr"], "").status, 0);
    assert_eq!(
        a.ipvsadm(&["-a", "-f", "7", "-r", "10.1.0.1", "-g", "-w", "4"], "")
            .status,
        0
    );
    a.set_vrrp_status(Arc::new(Mutex::new(vec![crate::vrrp::InstanceStatus {
        name: "VI_1".into(),
        interface: "eth0".into(),
        vrid: 51,
        state: "MASTER".into(),
        addresses: vec!["192.0.2.1".into()],
        ..Default::default()
    }])));
    let page = a.metrics();
    assert!(page.contains("node_ipvs_backend_weight{local_address=\"\",local_port=\"0\",local_mark=\"7\",proto=\"FWM\",remote_address=\"10.1.0.1\",remote_port=\"0\"} 4\n"), "{page}");
    assert!(page.contains("keepalived_vrrp_state{iname=\"VI_1\",intf=\"eth0\",vrid=\"51\",ip_address=\"192.0.2.1\"} 2\n"), "{page}");
    assert!(page.contains("node_ipvs_connections_total 0\n"));
    assert!(page.contains("rvs_worker_rx_packets_total{worker=\"0\"} 0\n"));
    assert!(page.contains("rvs_worker_cache_bypass_conns_total{worker=\"0\"} 0\n"));
    assert!(page.contains("rvs_worker_dropped_entries_total{worker=\"0\"} 0\n"));
    for made_by in ["syn", "udp"] {
        let line = format!("rvs_worker_evictions_total{{worker=\"0\",for=\"{made_by}\"}} 0\n");
        assert!(page.contains(&line), "{line} in {page}");
    }
    // Every line is a comment or `name{labels} value`.
    for l in page.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()),
            "{l}"
        );
    }
}

/// `--json` lists the services as JSON (rvsadm and the socket), and only that.
#[test]
fn json_listings() {
    let a = appliance();
    assert_eq!(
        a.ipvsadm(&["-A", "-t", "10.0.0.1:80", "-s", "rr"], "")
            .status,
        0
    );
    assert_eq!(
        a.ipvsadm(
            &["-a", "-t", "10.0.0.1:80", "-r", "10.1.0.1", "-m", "-w", "5"],
            ""
        )
        .status,
        0
    );
    let r = a.ipvsadm(&["-L", "-n", "--json"], "");
    assert_eq!(r.status, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["size"], 1024);
    assert_eq!(v["services"][0]["address"], "10.0.0.1:80");
    assert_eq!(v["services"][0]["servers"][0]["address"], "10.1.0.1:80");
    assert_eq!(v["services"][0]["servers"][0]["weight"], 5);
    let one = a.ipvsadm(&["--json", "-L", "-t", "10.0.0.1:80"], "");
    assert_eq!(one.status, 0);
    for bad in [
        &["-L", "-c", "--json"][..],
        &["-L", "--timeout", "--json"],
        &["-A", "-t", "10.0.0.2:80", "--json"],
    ] {
        let r = a.ipvsadm(bad, "");
        assert_eq!(r.status, 2, "{bad:?}");
        assert!(r.err.contains("--json: only with -L"), "{}", r.err);
    }
    assert_eq!(a.director.lock().services.len(), 1, "nothing added");
    let missing = a.ipvsadm(&["-L", "-t", "10.9.9.9:80", "--json"], "");
    assert_eq!((missing.status, missing.err.trim()), (1, "No such service"));
}

#[test]
fn changes_publish_snapshots_and_failures_publish_nothing() {
    let a = appliance();
    let g0 = a.cell().generation();
    assert_eq!(
        a.ipvsadm(&["-A", "-t", "10.0.0.1:80", "-s", "rr"], "")
            .status,
        0
    );
    assert_eq!(
        a.ipvsadm(&["-a", "-t", "10.0.0.1:80", "-r", "10.1.0.1", "-m"], "")
            .status,
        0
    );
    assert_eq!(a.cell().generation(), g0 + 2);
    let r = a.ipvsadm(&["-a", "-t", "10.0.0.9:80", "-r", "10.1.0.1"], "");
    assert_eq!(
        (r.status, r.err.as_str()),
        (REFUSED, "Service not defined\n")
    );
    let r = a.ipvsadm(
        &["-a", "-t", "10.0.0.1:80", "-r", "10.1.0.1", "-w", "x"],
        "",
    );
    assert_eq!(
        (r.status, r.err.as_str()),
        (2, "illegal weight specified\n")
    );
    assert_eq!(a.cell().generation(), g0 + 2);
    let snap = a.cell().load();
    assert_eq!(snap.services[0].servers.len(), 1);
    assert_eq!(snap.services[0].sched.name(), "rr");
}

#[test]
fn a_change_returns_once_the_workers_run_it() {
    let a = appliance();
    assert_eq!(
        a.ipvsadm(&["-A", "-t", "10.0.0.1:80", "-s", "rr"], "")
            .status,
        0
    );
    // A worker that polls every 5 ms: `-E` answers only after it took the new rules, so
    // a client's next packet is scheduled by sh (the lab's flake: ipvsadm -E, then one
    // connection still scheduled by rr).
    let stop = Arc::new(AtomicBool::new(false));
    let mut reader = rvs_core::publish::SnapshotReader::new(a.cell().clone());
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(5));
                reader.refresh();
            }
            reader
        })
    };
    for sched in ["sh", "rr", "sh"] {
        assert_eq!(
            a.ipvsadm(&["-E", "-t", "10.0.0.1:80", "-s", sched], "")
                .status,
            0
        );
        // Checked at once, without waiting: the worker already runs the new rules.
        let g = a.cell().generation();
        assert!(
            a.cell().wait_adopted(g, std::time::Duration::ZERO),
            "after -E -s {sched}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let reader = worker.join().unwrap();
    assert_eq!(reader.get().services[0].sched.name(), "sh");
    // A worker that stopped polling delays a change by the bound only.
    let stalled = rvs_core::publish::SnapshotReader::new(a.cell().clone());
    let t = std::time::Instant::now();
    assert_eq!(
        a.ipvsadm(&["-E", "-t", "10.0.0.1:80", "-s", "wrr"], "")
            .status,
        0
    );
    assert!(t.elapsed() >= ADOPTION_LIMIT && t.elapsed() < ADOPTION_LIMIT * 20);
    assert_eq!(a.adoption_timeouts(), 1, "the late change is counted");
    assert!(a
        .metrics()
        .contains("\nrvs_snapshot_adoption_timeouts_total 1\n"));
    drop(stalled);
}

#[test]
fn save_restore_round_trips_and_restore_runs_line_by_line() {
    let a = appliance();
    let rules = "-A -t 10.0.0.1:80 -s wrr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 3\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1\n";
    assert_eq!(a.ipvsadm(&["-R"], rules).status, 0);
    let saved = a.ipvsadm(&["-S", "-n"], "").out;
    let b = appliance();
    assert_eq!(b.ipvsadm(&["-R"], &saved).status, 0);
    assert_eq!(b.ipvsadm(&["-S", "-n"], "").out, saved);
    // As ipvsadm: a refused line is reported and the next runs (the status is the last
    // line's); a line it cannot parse stops the restore there. One snapshot for all.
    let g = b.cell().generation();
    let r = b.ipvsadm(
        &["-R"],
        "-A -t 10.0.0.2:80\n-a -t 10.0.0.3:80 -r 10.1.0.1\n-A -t 10.0.0.4:80\n",
    );
    assert_eq!((r.status, r.err.as_str()), (0, "Service not defined\n"));
    assert_eq!(b.cell().generation(), g + 1);
    let r = b.ipvsadm(
        &["-R"],
        "-A -t 10.0.0.5:80\n-A -t 10.0.0.6:80 -w 2\n-A -t 10.0.0.7:80\n",
    );
    assert_eq!(
        (r.status, r.err.as_str()),
        (
            2,
            "Illegal 'weight' option with the 'add-service' command\n"
        )
    );
    let listed = b.ipvsadm(&["-S", "-n"], "").out;
    assert!(listed.contains("10.0.0.5:80") && !listed.contains("10.0.0.7:80"));
}

#[test]
fn every_verb_of_the_table_is_dispatched_and_in_the_help() {
    let a = appliance();
    let help = a.console("help").out;
    for v in verbs::VERBS {
        assert!(help.contains(v.usage), "{}", v.usage);
        for p in v.phrases.iter().filter(|p| !["quit", "load "].contains(p)) {
            let r = a.console(p);
            assert!(!r.err.starts_with("Bad arguments"), "{p}: {}", r.err);
            assert!(verbs::is_verb(p.split_whitespace().next().unwrap()));
        }
    }
    assert!(!verbs::is_verb("frobnicate"));
}

#[test]
fn console_verbs_and_ipvsadm_lines_share_the_layer() {
    let a = appliance();
    assert_eq!(a.console("ipvsadm -A -u 10.0.0.1:53 -s rr").status, 0);
    assert_eq!(a.console("-a -u 10.0.0.1:53 -r 10.1.0.5 -m -w 2").status, 0);
    let out = a.console("show service").out;
    assert!(out.contains("UDP  10.0.0.1:53 rr"), "{out}");
    assert!(
        out.contains("  -> 10.1.0.5:53                  Masq    2"),
        "{out}"
    );
    assert!(a.console("help").out.contains("show port info"));
    let r = a.console("frobnicate");
    assert_eq!(r.status, 2);
    assert!(r.err.contains("help"));
    assert_eq!(a.console("show port stats 3").status, 2);
    assert!(a.console("stop").out.ends_with("Done.\n"));
    assert_eq!(a.console("stop").out, "Packet forwarding not started\n");
    assert!(!a.forwarding.load(Ordering::Relaxed));
    a.console("start");
    assert!(a.forwarding.load(Ordering::Relaxed));
    assert!(a.console("show worker").out.contains("lcore"));
    assert_eq!(a.console("ipvsadm --set 100 10 20").status, 0);
    assert_eq!(
        a.console("ipvsadm -L --timeout").out,
        "Timeout (tcp tcpfin udp): 100 10 20\n"
    );
    assert_eq!(a.cell().load().timeouts.udp, 20);
    a.console("quit");
    assert!(a.quit.load(Ordering::Relaxed));
}

#[test]
fn keepalived_apply_errors_name_the_file_line_and_limit() {
    let a = appliance();
    let conf = crate::keepalived::KeepalivedConf::parse(
            "big.conf",
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.1.0.1 80 {\n  }\n  real_server 10.1.0.2 80 {\n  }\n  real_server 10.1.0.3 80 {\n  }\n  real_server 10.1.0.4 80 {\n  }\n  real_server 10.1.0.5 80 {\n  }\n  real_server 10.1.0.6 80 {\n  }\n  real_server 10.1.0.7 80 {\n  }\n  real_server 10.1.0.8 80 {\n  }\n  real_server 10.1.0.9 80 {\n  }\n}\n",
        )
        .unwrap();
    let e = a.load_keepalived(&conf).unwrap_err();
    assert_eq!(
            e,
            "big.conf:19: Memory allocation problem (all 8 real-server slots in use: raise [dataplane] servers) (nothing applied)"
        );
    assert!(a.director.lock().services.is_empty());
}

#[test]
fn load_runs_a_file_and_stops_at_the_first_error() {
    let a = appliance();
    let dir = std::env::temp_dir().join(format!("rvs-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("cmds");
    // Rules only: all or nothing.
    std::fs::write(
        &f,
        "# setup\nipvsadm -A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.9:80 -r 10.1.0.1 -m\n",
    )
    .unwrap();
    let r = a.console(&format!("load {}", f.display()));
    assert_eq!(r.status, 1);
    assert!(
        r.err
            .contains("cmds:3: Service not defined (nothing applied)"),
        "{}",
        r.err
    );
    assert_eq!(a.director().services.len(), 0);
    // A syntax error anywhere: nothing runs.
    std::fs::write(&f, "ipvsadm -A -t 10.0.0.1:80 -s rr\nbogus\n").unwrap();
    let r = a.console(&format!("load {}", f.display()));
    assert!(r.err.contains(":2: Bad arguments"), "{}", r.err);
    assert_eq!(a.director().services.len(), 0);
    // A keepalived.conf: its checkers run, its mail settings are said to be left.
    std::fs::write(
            &f,
            "global_defs {\n  smtp_server 127.0.0.1 1\n  notification_email {\n    ops@example.com\n  }\n}\nvirtual_server 10.0.0.3 80 {\n  protocol TCP\n  real_server 10.1.0.3 80 {\n  }\n}\n",
        )
        .unwrap();
    let b = appliance();
    let r = b.console(&format!("load {}", f.display()));
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(r.out.contains("1 virtual server(s)"), "{}", r.out);
    assert!(
        r.err.contains("its mail settings are not applied by load"),
        "{}",
        r.err
    );
    assert_eq!(b.director().services.len(), 1);
    // A file that loads itself ends.
    std::fs::write(&f, format!("load {}\n", f.display())).unwrap();
    assert!(a
        .console(&format!("load {}", f.display()))
        .err
        .contains("nested"));
    // Mixed: in order, stopping at the first failure.
    std::fs::write(
        &f,
        "ipvsadm -A -t 10.0.0.1:80 -s rr\nshow service\n-D -t 10.0.0.7:80\n-A -t 10.0.0.2:80\n",
    )
    .unwrap();
    let r = a.console(&format!("load {}", f.display()));
    assert_eq!(r.status, REFUSED, "the failing line's own status");
    assert!(r.err.contains(":3: No such service"), "{}", r.err);
    assert!(r.out.contains("TCP  10.0.0.1:80 rr"), "{}", r.out);
    assert_eq!(a.director().services.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The command sequences of the seed lvs-cluster-howto (NAT rr -> wrr 3:1, DR wlc 2:1,
/// PPC -p 600 and 3600, PCC port 0, PNMPP firewall mark 10), typed as the howto types
/// them, on one director; listings as ipvsadm prints them.
#[test]
fn lvs_howto_sequences_run_unchanged() {
    let a = appliance_with_marks(&[(10, 80), (10, 23)]);
    let run = |lines: &str| {
        for l in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let r = a.console(l.trim_start_matches("# "));
            assert_eq!(r.status, 0, "{l}: {}", r.err);
        }
    };
    let list = |key: &str| {
        let args: Vec<&str> = ["-L", "-n"].into_iter().chain(key.split(' ')).collect();
        let out = a.ipvsadm(&args, "").out;
        out.lines().skip(2).collect::<Vec<_>>().join("\n")
    };
    run("# ipvsadm -A -t 10.1.1.1:80 -s rr
             # ipvsadm -a -t 10.1.1.1:80 -r 192.168.1.2 -m
             # ipvsadm -a -t 10.1.1.1:80 -r 192.168.1.3 -m");
    assert_eq!(
            list("-t 10.1.1.1:80"),
            "TCP  10.1.1.1:80 rr\n  -> 192.168.1.2:80               Masq    1      0          0         \n  -> 192.168.1.3:80               Masq    1      0          0         "
        );
    run("# ipvsadm -E -t 10.1.1.1:80 -s wrr
             # ipvsadm -e -t 10.1.1.1:80 -r 192.168.1.2 -m -w 3
             # ipvsadm -e -t 10.1.1.1:80 -r 192.168.1.3 -m -w 1
             # ipvsadm -Z -t 10.1.1.1:80");
    assert!(list("-t 10.1.1.1:80")
        .starts_with("TCP  10.1.1.1:80 wrr\n  -> 192.168.1.2:80               Masq    3"));
    run("# ipvsadm -A -t 10.1.1.254:80 -s wrr
             # ipvsadm -a -t 10.1.1.254:80 -r 10.1.1.2 -g -w 2
             # ipvsadm -a -t 10.1.1.254:80 -r 10.1.1.3 -g -w 1
             ipvsadm -C
             ipvsadm -A -t 10.1.1.254:80 -s wlc
             ipvsadm -a -t 10.1.1.254:80 -r 10.1.1.2 -g -w 2
             ipvsadm -a -t 10.1.1.254:80 -r 10.1.1.3 -g -w 1
             # ipvsadm -E -t 10.1.1.254:80 -s rr
             # ipvsadm -E -t 10.1.1.254:80 -s rr -p 600");
    assert_eq!(
            list("-t 10.1.1.254:80"),
            "TCP  10.1.1.254:80 rr persistent 600\n  -> 10.1.1.2:80                  Route   2      0          0         \n  -> 10.1.1.3:80                  Route   1      0          0         "
        );
    run("# ipvsadm -A -t 10.1.1.254:23 -s rr -p 3600
             # ipvsadm -a -t 10.1.1.254:23 -r 10.1.1.2 -g -w 2
             # ipvsadm -a -t 10.1.1.254:23 -r 10.1.1.3 -g -w 2
             # ipvsadm -A -t 10.1.1.254:0 -s rr -p 600
             # ipvsadm -a -t 10.1.1.254:0 -r 10.1.1.2 -g -w 2
             # ipvsadm -a -t 10.1.1.254:0 -r 10.1.1.3 -g -w 2
             # ipvsadm -A -f 10 -s rr
             # ipvsadm -a -f 10 -r 10.1.1.2 -g -w 2
             # ipvsadm -a -f 10 -r 10.1.1.3 -g -w 1
             # ipvsadm -E -f 10 -p 600");
    // -E without -s falls back to wlc, as the howto's listing shows.
    assert_eq!(
            list("-f 10"),
            "FWM  10 wlc persistent 600\n  -> 10.1.1.2:0                   Route   2      0          0         \n  -> 10.1.1.3:0                   Route   1      0          0         "
        );
    let snap = a.cell().load();
    let at = |port| {
        let ip = |s: &str| s.parse().unwrap();
        snap.service_for_packet(6, ip("192.0.2.1"), ip("10.1.1.254"), port)
            .unwrap()
    };
    assert_eq!(at(80).group, Some(10), "the mark wins over 10.1.1.254:80");
    assert_eq!(at(23).group, Some(10));
    assert_eq!(
        (at(22).vport, at(22).persistence),
        (0, Some((600, 32))),
        "PCC"
    );
    let saved = a.ipvsadm(&["-S", "-n"], "").out;
    let b = appliance_with_marks(&[(10, 80), (10, 23)]);
    assert_eq!(b.ipvsadm(&["-R"], &saved).status, 0);
    assert_eq!(b.ipvsadm(&["-S", "-n"], "").out, saved);
}

/// Firewall-mark rules by protocol, VIP prefix, port range and source, added and
/// removed at run time from the console (each change one snapshot); the last matching
/// rule decides, as iptables' MARK does; bad rules get a message and change nothing.
#[test]
fn marks_change_at_run_time_by_prefix_ports_and_source() {
    let a = appliance_with_marks(&[]);
    let ok = |l: &str| {
        let r = a.console(l);
        assert_eq!(r.status, 0, "{l}: {}", r.err);
    };
    ok("-A -f 1 -s rr");
    ok("-a -f 1 -r 10.0.0.1 -m");
    ok("-A -f 2 -s rr");
    ok("-a -f 2 -r 10.0.0.2 -m");
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let mark_of = |proto: u8, src: &str, dst: &str, port: u16| {
        let snap = a.cell().load();
        let svc = snap.service_for_packet(proto, ip(src), ip(dst), port)?;
        snap.scheduling_service(svc).group
    };
    assert_eq!(mark_of(6, "192.0.2.1", "10.9.0.7", 1500), None);
    ok("mark add 1 tcp 10.9.0.0/24:1000-2000");
    assert_eq!(mark_of(6, "192.0.2.1", "10.9.0.7", 1500), Some(1));
    assert!(
        a.cell().load().is_vip(ip("10.9.0.200")),
        "the prefix's addresses are VIPs"
    );
    assert_eq!(
        mark_of(6, "192.0.2.1", "10.9.0.7", 2001),
        None,
        "outside the range"
    );
    assert_eq!(mark_of(17, "192.0.2.1", "10.9.0.7", 1500), None, "not UDP");
    // A later, narrower rule by source wins for its clients only.
    ok("mark add 2 any 10.9.0.0/24:1000-2000 from 198.51.100.0/24");
    assert_eq!(mark_of(6, "198.51.100.9", "10.9.0.7", 1500), Some(2));
    assert_eq!(mark_of(17, "198.51.100.9", "10.9.0.7", 1500), Some(2));
    assert_eq!(mark_of(6, "192.0.2.1", "10.9.0.7", 1500), Some(1));
    // A single VIP:port rule gives the service its own entry (counted on its own).
    ok("mark add 1 udp 10.8.0.1:53");
    assert_eq!(mark_of(17, "192.0.2.1", "10.8.0.1", 53), Some(1));
    assert!(a
        .director()
        .find(ServiceKey::Fwmark {
            mark: 1,
            ipv6: false
        })
        .unwrap()
        .entries
        .iter()
        .any(|e| e.port == 53));
    let shown = a.console("show mark").out;
    assert_eq!(
        shown,
        "mark 1 tcp 10.9.0.0/24:1000-2000  (FWM service 1)\n\
             mark 2 any 10.9.0.0/24:1000-2000 from 198.51.100.0/24  (FWM service 2)\n\
             mark 1 udp 10.8.0.1:53  (FWM service 1)\n"
    );
    ok("mark del 2 any 10.9.0.0/24:1000-2000 from 198.51.100.0/24");
    assert_eq!(mark_of(6, "198.51.100.9", "10.9.0.7", 1500), Some(1));
    for bad in [
        "mark add 0 tcp 10.0.0.1",
        "mark add 1 icmp 10.0.0.1",
        "mark add 1 tcp 10.0.0.0/33",
        "mark add 1 tcp 10.0.0.1:9-1",
        "mark add 1 tcp 10.0.0.1 from 2001:db8::/64",
        "mark del 3 tcp 10.0.0.1",
    ] {
        let before = a.console("show mark").out;
        let r = a.console(bad);
        assert_ne!(r.status, 0, "{bad}");
        assert!(r.err.starts_with("mark "), "{bad}: {}", r.err);
        assert_eq!(a.console("show mark").out, before, "{bad} changed nothing");
    }
    // IPv6, written in brackets.
    ok("-A -f 3 -6 -s rr");
    ok("-a -f 3 -6 -r [2001:db8::2]:443 -m");
    ok("mark add 3 tcp [2001:db8:1::/64]:443");
    assert_eq!(mark_of(6, "2001:db8:9::1", "2001:db8:1::7", 443), Some(3));
}

/// Full NAT set and cleared on a running service from the console (`rvsadm
/// --full-nat`); it survives an ipvsadm edit of the service; bad lines change nothing.
#[test]
fn full_nat_on_and_off_at_run_time() {
    let a = appliance_with_marks(&[]);
    for l in [
        "-A -t 10.1.1.1:80 -s rr",
        "-a -t 10.1.1.1:80 -r 10.0.0.2:8080 -m",
    ] {
        assert_eq!(a.console(l).status, 0, "{l}");
    }
    let fnat = || a.cell().load().services[0].full_nat.clone();
    assert_eq!(fnat(), None);
    let r = a.console("fullnat on tcp 10.1.1.1:80 laddr 10.0.0.201,10.0.0.202 proxy");
    assert_eq!(r.status, 0, "{}", r.err);
    let f = fnat().unwrap();
    assert_eq!(f.locals().len(), 2);
    assert!(f.proxy_protocol);
    assert_eq!(a.console("-E -t 10.1.1.1:80 -s wlc").status, 0);
    assert!(fnat().is_some(), "kept across -E");
    assert_eq!(
        a.console("show fullnat").out,
        "tcp 10.1.1.1:80: from 10.0.0.201,10.0.0.202, PROXY v2\n"
    );
    for bad in [
        "fullnat on tcp 10.1.1.9:80",
        "fullnat on tcp 10.1.1.1:80 laddr nowhere",
        "fullnat on icmp 10.1.1.1:80",
        "fullnat off tcp 10.1.1.1:80 proxy",
    ] {
        let r = a.console(bad);
        assert_ne!(r.status, 0, "{bad}");
        assert!(fnat().is_some(), "{bad} changed nothing");
    }
    // Version 1 by its word; shown as such.
    let r = a.console("fullnat on tcp 10.1.1.1:80 proxy-v1");
    assert_eq!(r.status, 0, "{}", r.err);
    let f = fnat().unwrap();
    assert!(f.proxy_protocol && f.proxy_v1);
    assert_eq!(
        a.console("show fullnat").out,
        "tcp 10.1.1.1:80: from the out port's own address, PROXY v1\n"
    );
    assert_eq!(a.console("fullnat off tcp 10.1.1.1:80").status, 0);
    assert_eq!(fnat(), None);
}

/// SNAT rules added and removed at run time (`rvsadm --snat`), listed as they are
/// written; bad rules change nothing.
#[test]
fn snat_rules_change_at_run_time() {
    let a = appliance_with_marks(&[]);
    assert_eq!(a.console("show snat").out, "No SNAT rules\n");
    let add = "snat add source 10.100.0.0/24 to_source 192.0.2.1 ports 20000-29999";
    assert_eq!(a.console(add).status, 0, "{}", a.console(add).err);
    assert_eq!(
        a.console("snat add protocol udp destination 10.2.1.0/24")
            .status,
        0
    );
    assert_eq!(
            a.console("show snat").out,
            "snat source 10.100.0.0/24 destination 0.0.0.0/0 to_source 192.0.2.1 ports 20000-29999\n\
             snat protocol udp source 0.0.0.0/0 destination 10.2.1.0/24 to_source masquerade ports 1024-65535\n"
        );
    let snap = a.cell().load();
    assert_eq!(snap.snat.len(), 2);
    assert!(snap.is_local_end("192.0.2.1".parse().unwrap()));
    for bad in [
        "snat add source",
        "snat add source 10.0.0.0/40",
        "snat add ports 9-1",
        "snat add out_port nowhere",
        "snat add source 10.0.0.0/8 to_source 2001:db8::1",
        "snat del source 10.9.9.0/24",
    ] {
        let r = a.console(bad);
        assert_ne!(r.status, 0, "{bad}");
        assert!(r.err.starts_with("snat "), "{bad}: {}", r.err);
        assert_eq!(a.cell().load().snat.len(), 2, "{bad} changed nothing");
    }
    assert_eq!(
        a.console("snat del protocol udp destination 10.2.1.0/24")
            .status,
        0
    );
    assert_eq!(a.cell().load().snat.len(), 1);
}

/// Members' outgoing ranges and a VIP's unserved traffic changed at run time (`rvsadm
/// --outgoing`, `--vip`), listed as written and in the workers' snapshot; bad lines
/// (overlaps, another family, no such range) change nothing.
#[test]
fn member_ranges_and_vip_settings_change_at_run_time() {
    let a = appliance_with_marks(&[]);
    let vip: std::net::IpAddr = "10.1.1.1".parse().unwrap();
    let ok = |l: &str| {
        let r = a.console(l);
        assert_eq!(r.status, 0, "{l}: {}", r.err);
        r
    };
    ok("-A -t 10.1.1.1:80 -s rr");
    ok("-a -t 10.1.1.1:80 -r 10.0.0.2:80 -g");
    assert_eq!(a.console("show outgoing").out, "No member ranges\n");
    ok("outgoing add tcp 10.1.1.1 33000-33999 10.0.0.2");
    ok("outgoing add tcp 10.1.1.1 34000-34999 10.0.0.3 nat");
    ok("outgoing add udp 10.1.1.5 33000-33999 10.0.0.3 nat");
    assert_eq!(
        a.console("show outgoing").out,
        "outgoing tcp 10.1.1.1 33000-33999 10.0.0.2 dr\n\
             outgoing tcp 10.1.1.1 34000-34999 10.0.0.3 nat\n\
             outgoing udp 10.1.1.5 33000-33999 10.0.0.3 nat\n"
    );
    let member = |proto: u8, vip: &str, port: u16| {
        a.cell()
            .load()
            .member_for(proto, vip.parse().unwrap(), port)
            .map(|r| (r.member.to_string(), r.nat))
    };
    assert_eq!(
        member(6, "10.1.1.1", 33500),
        Some(("10.0.0.2".into(), false))
    );
    assert_eq!(
        member(6, "10.1.1.1", 34999),
        Some(("10.0.0.3".into(), true))
    );
    assert_eq!(
        member(17, "10.1.1.5", 33000),
        Some(("10.0.0.3".into(), true))
    );
    assert_eq!(member(6, "10.1.1.5", 33000), None);
    assert!(a.cell().load().is_vip("10.1.1.5".parse().unwrap()));
    for bad in [
        "outgoing add tcp 10.1.1.1 33999-34000 10.0.0.4",
        "outgoing add tcp 10.1.1.1 35000-35999 2001:db8::4",
        "outgoing add tcp 10.1.1.1 35000-34999 10.0.0.4",
        "outgoing add icmp 10.1.1.1 35000-35999 10.0.0.4",
        "outgoing add tcp 10.1.1.1 35000-35999 10.0.0.4 tun",
        "outgoing add tcp 10.1.1.1 35000-35999",
        "outgoing del tcp 10.1.1.1 33000-33998",
        "outgoing del tcp 10.1.1.1 33000-33999 10.0.0.2",
    ] {
        let r = a.console(bad);
        assert_ne!(r.status, 0, "{bad}");
        assert!(r.err.starts_with("outgoing "), "{bad}: {}", r.err);
        assert_eq!(
            a.director.lock().member_ports.len(),
            3,
            "{bad} changed nothing"
        );
    }
    ok("outgoing del tcp 10.1.1.1 33000-33999");
    assert_eq!(member(6, "10.1.1.1", 33500), None);
    assert_eq!(
        member(6, "10.1.1.1", 34000),
        Some(("10.0.0.3".into(), true))
    );

    // Unserved traffic: the host's by default, dropped when set, back again.
    assert!(!a.cell().load().drops_unserved(vip));
    let r = ok("vip 10.1.1.1 unserved drop");
    assert_eq!(r.err, "");
    assert!(a.cell().load().drops_unserved(vip));
    let r = ok("vip 10.9.9.9 unserved drop");
    assert!(r.err.contains("10.9.9.9 is no VIP yet"), "{}", r.err);
    let shown = a.console("show vip").out;
    let rows: Vec<Vec<&str>> = shown
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["VIP", "Services", "Ranges", "Unserved", "VRRP", "Host-twin"],
            vec!["10.1.1.1", "1", "1", "drop", "-", "no"],
            vec!["10.1.1.5", "0", "1", "host", "-", "no"],
            vec!["10.9.9.9", "0", "0", "drop", "-", "no"],
        ],
        "{shown}"
    );
    // VRRP's addresses: a VIP's state, and a floating gateway listed after the VIPs.
    a.change_with(|d| {
        d.floating = vec![
            rvs_core::engine::Floating::held(vip),
            rvs_core::engine::Floating::held("10.1.1.254".parse().unwrap()),
        ];
        Ok(())
    })
    .unwrap();
    let shown = a.console("show vip").out;
    let rows: Vec<Vec<&str>> = shown
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["10.1.1.1", "1", "1", "drop", "held", "no"],
            vec!["10.1.1.5", "0", "1", "host", "-", "no"],
            vec!["10.9.9.9", "0", "0", "drop", "-", "no"],
            vec!["10.1.1.254", "0", "0", "-", "held", "no"],
        ],
        "{shown}"
    );
    ok("vip 10.1.1.1 unserved host");
    assert!(!a.cell().load().drops_unserved(vip));
    for bad in ["vip 10.1.1 unserved drop", "vip 10.1.1.1 unserved reject"] {
        let r = a.console(bad);
        assert_ne!(r.status, 0, "{bad}");
        assert!(
            !a.cell().load().drops_unserved(vip),
            "{bad} changed nothing"
        );
    }
}

/// `sysctl -p FILE` loads an LVS director's sysctl.conf as sysctl(8) does: comments and
/// blank lines skipped, each setting echoed and applied, a name rvs does not have
/// reported (status 1) and the rest still loaded; `-e` and a leading `-` keep quiet about
/// it, `-q` echoes nothing; a missing file is named.
#[test]
fn sysctl_p_loads_a_directors_sysctl_conf() {
    let a = appliance_with_marks(&[]);
    let dir = std::env::temp_dir().join(format!("rvs-sysctl-p-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ipvs.conf");
    std::fs::write(
            &file,
            "# LVS director\n; tuned\n\nnet.ipv4.vs.conn_reuse_mode = 0\n net.ipv4.vs.expire_nodest_conn=1 \n\
             net.core.somaxconn = 4096\n-net.ipv4.vs.sync_retries = 0\nnet.ipv4.vs.sloppy_tcp = yes\n\
             net.ipv4.ip_forward = 1\n",
        )
        .unwrap();
    let f = file.display().to_string();
    let r = a.console(&format!("sysctl -p {f}"));
    assert_eq!(r.status, 1, "two lines failed");
    assert_eq!(
            r.out,
            "net.ipv4.vs.conn_reuse_mode = 0\nnet.ipv4.vs.expire_nodest_conn = 1\nnet.ipv4.ip_forward = 1\n"
        );
    assert_eq!(
        r.err,
        "sysctl: cannot stat /proc/sys/net/core/somaxconn: No such file or directory\n\
             sysctl: setting key \"net.ipv4.vs.sloppy_tcp\": Invalid argument\n"
    );
    let snap = a.cell().load();
    assert!(snap.expire_nodest_conn && snap.ip_forward && !snap.sloppy_tcp);
    assert_eq!(snap.conn_reuse_mode, 0);
    // -e: unknown names quiet (a bad value is still an error); -q: nothing echoed.
    let r = a.console(&format!("sysctl -e -q -p {f}"));
    assert_eq!((r.status, r.out.as_str()), (1, ""));
    assert_eq!(
        r.err,
        "sysctl: setting key \"net.ipv4.vs.sloppy_tcp\": Invalid argument\n"
    );
    let r = a.console(&format!("sysctl --load={f}.missing"));
    assert_eq!(r.status, 1);
    assert!(
        r.err
            .starts_with(&format!("sysctl: cannot open \"{f}.missing\": ")),
        "{}",
        r.err
    );
    // --system: this machine's sysctl.d files and sysctl.conf, the kernel's names in
    // them skipped without a word.
    let r = a.console("sysctl --system");
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(
        r.out
            .lines()
            .all(|l| l.starts_with("* Applying ") || l.contains(" = ")),
        "{}",
        r.out
    );
    assert!(a.console("sysctl -q --system").out.is_empty());
    // Plain reads and writes are unchanged.
    assert_eq!(
        a.console("sysctl net.ipv4.vs.conn_reuse_mode").out,
        "net.ipv4.vs.conn_reuse_mode = 0\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The kernel's update_defense_level for secure_tcp: 1 becomes 2 (on) while memory is
/// short and 2 goes back to 1 after; 0 and 3 never move. The workers' snapshot
/// follows.
#[test]
fn secure_tcp_follows_connection_memory() {
    let a = appliance();
    let level = |a: &Arc<Appliance>| {
        (
            a.console("sysctl net.ipv4.vs.secure_tcp").out,
            a.cell().load().secure_tcp,
        )
    };
    let at = |n: u8| (format!("net.ipv4.vs.secure_tcp = {n}\n"), n >= 2);
    assert_eq!(level(&a), at(0));
    a.defence_with(0);
    assert_eq!(level(&a), at(0), "off stays off");
    assert_eq!(a.console("sysctl -w net.ipv4.vs.secure_tcp=1").status, 0);
    a.defence_with(u64::MAX);
    assert_eq!(level(&a), at(1));
    a.defence_with(0);
    assert_eq!(level(&a), at(2), "short: on");
    a.defence_with(0);
    assert_eq!(level(&a), at(2));
    a.defence_with(u64::MAX);
    assert_eq!(level(&a), at(1), "room again: off");
    assert_eq!(a.console("sysctl -w net.ipv4.vs.secure_tcp=3").status, 0);
    a.defence_with(u64::MAX);
    assert_eq!(level(&a), at(3), "always");
    assert_ne!(a.console("sysctl -w net.ipv4.vs.secure_tcp=4").status, 0);
    assert_eq!(level(&a), at(3), "a bad value changes nothing");
    // amemthresh: the one worker's table (1,024 entries) has less than 2^24 pages left
    // and more than 1: short, then not, as the sysctl writes judge it again.
    assert_eq!(a.console("sysctl -w net.ipv4.vs.secure_tcp=1").status, 0);
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.amemthresh=16777216")
            .status,
        0
    );
    assert_eq!(level(&a), at(2));
    assert_eq!(a.console("sysctl -w net.ipv4.vs.amemthresh=1").status, 0);
    assert_eq!(level(&a), at(1));
}

/// IPVS's drop_entry and drop_packet move as secure_tcp does; drop_packet's rate at 2
/// is amemthresh / (amemthresh - pages left), at 3 am_droprate.
#[test]
fn drop_defences_follow_connection_memory() {
    let a = appliance();
    let state = |a: &Arc<Appliance>| {
        let snap = a.cell().load();
        (
            a.console("sysctl net.ipv4.vs.drop_entry net.ipv4.vs.drop_packet")
                .out,
            snap.drop_entry,
            snap.drop_rate,
        )
    };
    let at = |entry: u8, packet: u8, on: bool, rate: u32| {
        (
            format!("net.ipv4.vs.drop_entry = {entry}\nnet.ipv4.vs.drop_packet = {packet}\n"),
            on,
            rate,
        )
    };
    assert_eq!(state(&a), at(0, 0, false, 0));
    a.defence_with(0);
    assert_eq!(state(&a), at(0, 0, false, 0), "off stays off");
    let w = a.console("sysctl -w net.ipv4.vs.drop_entry=1 net.ipv4.vs.drop_packet=1");
    assert_eq!(w.status, 0, "{}", w.err);
    a.defence_with(u64::MAX);
    assert_eq!(state(&a), at(1, 1, false, 0));
    // amemthresh 1024: 1023 pages left drops 1 in 1024, none left every one.
    a.defence_with(1023);
    assert_eq!(state(&a), at(2, 2, true, 1024));
    a.defence_with(512);
    assert_eq!(state(&a), at(2, 2, true, 2));
    a.defence_with(0);
    assert_eq!(state(&a), at(2, 2, true, 1));
    a.defence_with(1024);
    assert_eq!(state(&a), at(1, 1, false, 0), "room again: off");
    // 3: always, at am_droprate (10 unless set). (A write judges memory again: this
    // 1,024-entry table is short of 1,024 pages, not of 1.)
    assert_eq!(a.console("sysctl -w net.ipv4.vs.amemthresh=1").status, 0);
    assert_eq!(a.console("sysctl -w net.ipv4.vs.drop_packet=3").status, 0);
    assert_eq!(state(&a), at(1, 3, false, 10));
    assert_eq!(a.console("sysctl -w net.ipv4.vs.am_droprate=7").status, 0);
    assert_eq!(state(&a), at(1, 3, false, 7));
    for bad in ["drop_packet=4", "drop_entry=-1", "am_droprate=-1"] {
        let r = a.console(&format!("sysctl -w net.ipv4.vs.{bad}"));
        assert_ne!(r.status, 0, "{bad}");
        assert!(r.err.contains("Invalid argument"), "{}", r.err);
    }
    assert_eq!(state(&a), at(1, 3, false, 7), "a bad value changes nothing");
    // A step that changes nothing publishes nothing.
    let g = a.cell().generation();
    a.defence_with(u64::MAX);
    assert_eq!(a.cell().generation(), g);
}

/// The IPVS settings by their sysctl names: read, written (any integer, non-zero on),
/// published; unknown names and bad values with sysctl(8)'s words, changing nothing.
#[test]
fn sysctl_names_read_and_set_the_ipvs_settings() {
    let a = appliance_with_marks(&[]);
    assert_eq!(
            a.console("sysctl -a").out,
            "net.ipv4.ip_forward = 0\nnet.ipv4.vs.sloppy_tcp = 0\nnet.ipv4.vs.sloppy_sctp = 0\n\
             net.ipv4.vs.expire_nodest_conn = 0\nnet.ipv4.vs.expire_quiescent_template = 0\n\
             net.ipv4.vs.pmtu_disc = 1\nnet.ipv4.vs.backup_only = 0\nnet.ipv4.vs.nat_icmp_send = 0\nnet.ipv4.vs.schedule_icmp = 0\nnet.ipv4.vs.cache_bypass = 0\nnet.ipv4.vs.run_estimation = 1\n\
             net.ipv4.vs.sync_persist_mode = 0\n\
             net.ipv4.vs.sync_refresh_period = 0\nnet.ipv4.vs.lblc_expiration = 86400\nnet.ipv4.vs.lblcr_expiration = 86400\n\
             net.ipv4.vs.conn_reuse_mode = 1\nnet.ipv4.vs.secure_tcp = 0\nnet.ipv4.vs.drop_entry = 0\n\
             net.ipv4.vs.drop_packet = 0\nnet.ipv4.vs.am_droprate = 10\nnet.ipv4.vs.amemthresh = 1024\n\
             net.ipv4.vs.sync_version = 1\n"
        );
    // Seconds, as the kernel's (proc_dointvec_jiffies); a value out of range changes
    // nothing.
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.lblc_expiration=600 net.ipv4.vs.lblcr_expiration=900")
            .status,
        0
    );
    let snap = a.cell().load();
    assert_eq!(
        (snap.cache_expiration.lblc, snap.cache_expiration.lblcr),
        (600, 900)
    );
    for bad in ["-1", "1000001", "1h"] {
        let r = a.console(&format!("sysctl -w net.ipv4.vs.lblc_expiration={bad}"));
        assert_eq!(
            r.err, "sysctl: setting key \"net.ipv4.vs.lblc_expiration\": Invalid argument\n",
            "{bad}"
        );
    }
    assert_eq!(a.cell().load().cache_expiration.lblc, 600);
    assert_eq!(
        a.console("sysctl net.ipv4.vs.lblc_expiration").out,
        "net.ipv4.vs.lblc_expiration = 600\n"
    );
    assert!(a.cell().load().pmtu_disc, "on by default, as the kernel's");
    assert_eq!(a.console("sysctl -w net.ipv4.vs.pmtu_disc=0").status, 0);
    assert!(!a.cell().load().pmtu_disc);
    assert_eq!(a.console("sysctl -w net.ipv4.vs.pmtu_disc=1").status, 0);
    assert!(a.cell().load().pmtu_disc);
    assert!(
        !a.cell().load().nat_icmp_send,
        "off by default, as the kernel's"
    );
    assert_eq!(a.console("sysctl -w net.ipv4.vs.nat_icmp_send=1").status, 0);
    assert!(a.cell().load().nat_icmp_send);
    assert!(!a.cell().load().schedule_icmp, "off by default");
    assert_eq!(a.console("sysctl -w net.ipv4.vs.schedule_icmp=1").status, 0);
    assert!(a.cell().load().schedule_icmp);
    assert!(!a.cell().load().cache_bypass, "off by default");
    assert_eq!(a.console("sysctl -w net.ipv4.vs.cache_bypass=1").status, 0);
    assert!(a.cell().load().cache_bypass);
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.sync_persist_mode=1")
            .status,
        0
    );
    assert!(a.cell().load().sync_persist_mode);
    assert_eq!(a.cell().load().sync_refresh_period, 0, "unset by default");
    let r = a.console("sysctl -w net.ipv4.vs.sync_refresh_period=30");
    assert_eq!(
        (r.status, r.out.as_str()),
        (0, "net.ipv4.vs.sync_refresh_period = 30\n")
    );
    assert_eq!(a.cell().load().sync_refresh_period, 30);
    assert_eq!(a.console("sysctl -w net.ipv4.vs.sloppy_sctp=1").status, 0);
    assert!(a.cell().load().sloppy_sctp && !a.cell().load().sloppy_tcp);
    assert_eq!(a.console("sysctl -w net.ipv4.vs.sloppy_sctp=0").status, 0);
    let r = a.console(
        "sysctl -w net.ipv4.vs.expire_nodest_conn=1 net/ipv4/vs/expire_quiescent_template=2",
    );
    assert_eq!(
        (r.status, r.out.as_str()),
        (
            0,
            "net.ipv4.vs.expire_nodest_conn = 1\nnet.ipv4.vs.expire_quiescent_template = 2\n"
        )
    );
    let snap = a.cell().load();
    assert!(snap.expire_nodest_conn && snap.expire_quiescent_template && !snap.sloppy_tcp);
    assert_eq!(
        a.console("sysctl net.ipv4.vs.expire_nodest_conn").out,
        "net.ipv4.vs.expire_nodest_conn = 1\n"
    );
    let r = a.console("sysctl net.ipv4.vs.sync_retries");
    assert_eq!(r.status, REFUSED);
    assert_eq!(
        r.err,
        "sysctl: cannot stat /proc/sys/net/ipv4/vs/sync_retries: No such file or directory\n"
    );
    let r = a.console("sysctl -w net.ipv4.vs.sloppy_tcp=yes");
    assert_eq!(
        r.err,
        "sysctl: setting key \"net.ipv4.vs.sloppy_tcp\": Invalid argument\n"
    );
    assert!(!a.cell().load().sloppy_tcp);
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.expire_nodest_conn=0")
            .status,
        0
    );
    assert!(!a.cell().load().expire_nodest_conn);
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.conn_reuse_mode=2").status,
        0
    );
    assert_eq!(a.cell().load().conn_reuse_mode, 2);
    // sync_version belongs to the sync daemons (none in this appliance): 0 or 1 only.
    let key = "sysctl: setting key \"net.ipv4.vs.sync_version\"";
    let r = a.console("sysctl -w net.ipv4.vs.sync_version=0");
    assert!(
        r.err
            .starts_with(&format!("{key}: no connection sync here")),
        "{}",
        r.err
    );
    a.set_sync(Arc::new(crate::sync::SyncDaemons::new(
        Vec::new(),
        Vec::new(),
    )));
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.sync_version=2").err,
        format!("{key}: Invalid argument\n")
    );
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.sync_version=0").out,
        "net.ipv4.vs.sync_version = 0\n"
    );
    assert_eq!(a.sync_daemons().unwrap().version(), 0);
}

/// IPVS's backup_only: set, the workers' snapshot pauses the director while a backup
/// sync daemon runs (ipvsadm's --start-daemon backup, or keepalived's lvs_sync_daemon
/// in BACKUP), and only then.
#[test]
fn backup_only_pauses_the_director_while_a_backup_daemon_runs() {
    let a = appliance_with_marks(&[]);
    let lo = crate::vrrp::Link {
        name: "lo".into(),
        port: 0,
        twin: "lo".into(),
        mac: [0; 6],
        addr: Some(std::net::Ipv4Addr::LOCALHOST),
        router: false,
    };
    a.set_sync(Arc::new(crate::sync::SyncDaemons::new(
        vec![Arc::new(rvs_core::sync::SyncChannel::default())],
        vec![lo],
    )));
    // A unicast "group" on lo (as keepalived's lvs_sync_daemon may name one; ipvsadm
    // takes multicast only), a port of its own: nothing else hears it. The port stays
    // held (shared as the backup daemons share it) so that no socket of this or another
    // test is given it between a daemon's stop and the next start.
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    held.set_reuse_address(true).unwrap();
    held.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], 0)).into())
        .unwrap();
    let port = held
        .local_addr()
        .unwrap()
        .as_socket()
        .map(|a| a.port())
        .unwrap();
    use crate::sync::{DaemonSettings, Role};
    let settings = DaemonSettings {
        group: Some(std::net::Ipv4Addr::LOCALHOST.into()),
        port: Some(port),
        ..DaemonSettings::new("lo", 0)
    };
    let start = |role| {
        let r = a.start_sync(role, settings.clone());
        assert_eq!(r.status, 0, "{}", r.err);
    };
    let stop = |role| assert_eq!(a.stop_sync(role).status, 0);
    let paused = || a.cell().load().director_paused;
    start(Role::Backup);
    assert!(!paused(), "backup_only is off by default");
    assert_eq!(
        a.console("sysctl -w net.ipv4.vs.backup_only=1").out,
        "net.ipv4.vs.backup_only = 1\n"
    );
    assert!(paused(), "set while a backup daemon runs");
    assert!(
        a.console("show sync")
            .out
            .contains("backup_only: the director is paused"),
        "{}",
        a.console("show sync").out
    );
    assert_eq!(a.ipvsadm(&["--stop-daemon", "backup"], "").status, 0);
    assert!(!paused(), "no backup daemon");
    assert!(!a.console("show sync").out.contains("paused"));
    start(Role::Master);
    assert!(!paused(), "a master daemon does not pause it");
    start(Role::Backup);
    assert!(
        paused(),
        "a backup beside the master does, as IPVS's sync_state"
    );
    assert_eq!(a.console("sysctl -w net.ipv4.vs.backup_only=0").status, 0);
    assert!(!paused());
    stop(Role::Master);
    stop(Role::Backup);
    drop(held);
}

fn appliance_with_marks(marks: &[(u32, u16)]) -> Arc<Appliance> {
    let loads = Arc::new((0..16).map(|_| DestLoad::default()).collect());
    let mut d = Director::new(
        Limits {
            entries: 16,
            dests: 16,
        },
        loads,
    );
    for &(mark, port) in marks {
        d.marks.push(crate::director::FwmarkRule::exact(
            mark,
            crate::ipvsadm::Protocol::Tcp,
            "10.1.1.254".parse().unwrap(),
            port,
        ));
    }
    let cell = Arc::new(SnapshotCell::new(d.snapshot()));
    Appliance::new(d, cell, Vec::new(), Vec::new(), 4096).shared()
}
