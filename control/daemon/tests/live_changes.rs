//! RCU proof: 10,000 configuration changes (servers added and removed, weights edited,
//! schedulers swapped), each published as a new snapshot through the same command layer
//! rvsadm uses, while TCP traffic flows through a real load-balancing worker lcore between
//! two `net_ring` ports. Every packet sent comes out (none lost), every packet goes to a
//! real server of the service (none misrouted), and every connection stays on the server
//! it was scheduled to. The long flows open before the changes begin, on the two servers
//! that are never deleted: IPVS drops the packets of a deleted server's connections
//! (`server_removal` in the core's tests), which is no loss of the publication.

use dpdk::{Eal, EalArgs, Mbuf, MbufBurst, Mempool, Port, PortConf};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvs_control::appliance::{Appliance, WorkerView};
use rvs_control::director::{Director, Limits};
use rvs_core::engine::{EngineConfig, PortInfo, Route};
use rvs_core::publish::SnapshotCell;
use rvs_core::sched::DestLoad;
use rvs_core::ForwardMode;
use rvs_worker::{LbShared, RxAssignment, WorkerQueues, WorkerSet};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHANGES: usize = 10_000;
const LONG_FLOWS: u16 = 64;
const IN_FLIGHT: u64 = 256;
const VIP: [u8; 4] = [192, 168, 1, 100];
const GW: [u8; 4] = [10, 0, 255, 254];
const GW_MAC: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0xcc, 0, 0, 0, 1];

fn tcp_frame(dst_mac: [u8; 6], client: [u8; 4], cport: u16, syn: bool, seq: u32) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, dst_mac)
        .ipv4(client, VIP, 64)
        .tcp(cport, 80, seq, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let payload: &[u8] = if syn { &[] } else { b"data" };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

fn mbuf_of(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("mbuf");
    m.append(bytes.len() as u16)
        .expect("tailroom")
        .copy_from_slice(bytes);
    m
}

/// (client, client port) -> server of a forwarded frame; None if it is not a NAT'd TCP
/// frame from a client to port 80.
fn decode(frame: &[u8]) -> Option<((Ipv4Addr, u16), Ipv4Addr)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        return None;
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        return None;
    };
    (t.destination_port() == 80).then(|| {
        (
            (ip.header().source_addr(), t.source_port()),
            ip.header().destination_addr(),
        )
    })
}

#[test]
fn ten_thousand_changes_under_traffic_lose_and_misroute_nothing() {
    let eal = Eal::init(&EalArgs::scratch("0,1", "test-live", 512).to_vec()).expect("EAL init");
    let pool = Mempool::new(&eal, "live_pool", 16383, 256, 2048 + 128, 0).unwrap();
    let a_id = eal.attach("net_ring0").unwrap()[0];
    let b_id = eal.attach("net_ring1").unwrap()[0];
    let two_tx = PortConf {
        tx_queues: 2,
        ..PortConf::default()
    };
    let mut a = Port::configure(&eal, a_id, &two_tx, pool).unwrap();
    let mut b = Port::configure(&eal, b_id, &PortConf::default(), pool).unwrap();
    let (mut a_rx, mut a_tx) = a.take_queues().unwrap();
    let (mut b_rx, mut b_tx) = b.take_queues().unwrap();
    a.start().unwrap();
    b.start().unwrap();
    let a_mac = a.mac_addr().unwrap();

    // The appliance: clients on port 0, servers behind a gateway on port 1.
    let limits = Limits {
        entries: 16,
        dests: 8192,
    };
    let loads: Arc<Vec<DestLoad>> =
        Arc::new((0..limits.dests).map(|_| DestLoad::default()).collect());
    let mut director = Director::new(limits, loads.clone());
    director.ports = vec![
        PortInfo {
            mac: a_mac,
            addrs: vec![IpAddr::from([192, 168, 1, 1])],
            mtu: 1500,
            ip_checksum_offload: false,
        },
        PortInfo {
            mac: b.mac_addr().unwrap(),
            addrs: vec![IpAddr::from([10, 0, 0, 1])],
            mtu: 1500,
            ip_checksum_offload: false,
        },
    ];
    director.routes = vec![Route {
        prefix: IpAddr::from([10, 0, 0, 0]),
        len: 16,
        gateway: Some(IpAddr::from(GW)),
        port: 1,
        table: rvs_core::engine::MAIN_TABLE,
    }];
    director.neighbours = vec![(IpAddr::from(GW), GW_MAC)];
    let cell = Arc::new(SnapshotCell::new(director.snapshot()));
    // A packet capture of what the worker receives runs through the whole test.
    let capture = rvs_core::capture::Capture::new(4096);
    let shared = LbShared {
        cell: cell.clone(),
        loads,
        engine: EngineConfig {
            conn_capacity: 1 << 18,
            max_services: limits.entries,
            max_dests: limits.dests,
            neighbour_capacity: 64,
            ..EngineConfig::default()
        },
        solicit_pool: None,
        pool: None,
        ring_prefix: "live_ho".into(),
        socket: -1,
        sync: Vec::new(),
        capture: Some(capture.clone()),
    };
    let queues = vec![WorkerQueues {
        lcore: 1,
        rx: vec![RxAssignment {
            rx: a_rx.remove(0),
            out_port: 1,
            in_port: 0,
            from_host: false,
            complete_checksums: false,
        }],
        tx: vec![a_tx.remove(1), b_tx.remove(0)],
        host: Vec::new(),
        idle_sleep_max_us: rvs_worker::idle::DEFAULT_SLEEP_MAX_US,
        stage_cycles: false,
    }];
    let (workers, launched) = WorkerSet::launch(&eal, ForwardMode::Lb, queues, Some(&shared));
    launched.unwrap();
    let stats = workers.workers[0].stats.clone();
    let appliance = Arc::new(Appliance::new(
        director,
        cell.clone(),
        vec![WorkerView {
            index: 0,
            lcore: 1,
            stats: stats.clone(),
        }],
        Vec::new(),
        1 << 16,
    ));
    let setup = "-A -t 192.168.1.100:80 -s wrr\n-a -t 192.168.1.100:80 -r 10.0.0.2:80 -m -w 3\n-a -t 192.168.1.100:80 -r 10.0.0.3:80 -m -w 1\n";
    assert_eq!(appliance.ipvsadm(&["-R"], setup).status, 0);
    appliance.set_capture(capture);
    let pcapng = std::env::temp_dir().join(format!("rvs-live-{}.pcapng", std::process::id()));
    let r = appliance.console(&format!(
        "capture start 0 rx tcp port 80 {}",
        pcapng.display()
    ));
    assert_eq!(r.status, 0, "{}", r.err);

    // The control thread: 10,000 changes through the ipvsadm command layer, once the long
    // flows are placed.
    let placed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changer = {
        let appliance = appliance.clone();
        let placed = placed.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(30);
            while !placed.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            let started = Instant::now();
            let scheds = ["rr", "wrr", "wlc", "lc", "sed", "nq", "sh", "mh"];
            let mut added: Vec<String> = Vec::new();
            let mut servers_ever: HashSet<Ipv4Addr> = ["10.0.0.2", "10.0.0.3"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
            for i in 0..CHANGES {
                let line = match i % 4 {
                    0 => {
                        let s = format!("10.0.{}.{}", 1 + (i / 4) / 250 % 200, 1 + (i / 4) % 250);
                        servers_ever.insert(s.parse().unwrap());
                        added.push(s.clone());
                        format!("-a -t 192.168.1.100:80 -r {s}:80 -m -w {}", 1 + i % 5)
                    }
                    1 => format!("-e -t 192.168.1.100:80 -r 10.0.0.2:80 -m -w {}", 1 + i % 7),
                    2 => format!(
                        "-E -t 192.168.1.100:80 -s {}",
                        scheds[(i / 4) % scheds.len()]
                    ),
                    _ => {
                        let s = added.pop().unwrap();
                        format!("-d -t 192.168.1.100:80 -r {s}:80")
                    }
                };
                let words: Vec<&str> = line.split_whitespace().collect();
                let r = appliance.ipvsadm(&words, "");
                assert_eq!(r.status, 0, "{line}: {}", r.err);
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            (servers_ever, started.elapsed())
        })
    };

    let mut test_tx = a_tx.remove(0);
    let mut test_rx = b_rx.remove(0);
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut out: MbufBurst = MbufBurst::new();
    let mut back: MbufBurst = MbufBurst::new();
    let mut flow_server: HashMap<(Ipv4Addr, u16), Ipv4Addr> = HashMap::new();
    let mut moved = Vec::new();
    let mut destinations: HashSet<Ipv4Addr> = HashSet::new();
    let mut long_started = 0u16;
    let mut new_flows = 0u32;
    let mut changes_done = None;
    let mut step = 0u64;
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out: sent {sent}, received {received}, worker {:?}",
            stats.read()
        );
        if changes_done.is_none() && changer.is_finished() {
            changes_done = Some(sent);
        }
        // Keep traffic flowing a while after the last change.
        let enough = changes_done.is_some_and(|at| sent >= at + 20_000);
        if enough && received == sent {
            break;
        }
        while !enough && sent - received < IN_FLIGHT && !out.is_full() {
            step += 1;
            let frame = if long_started < LONG_FLOWS {
                long_started += 1;
                tcp_frame(a_mac, [172, 16, 0, 1], 10_000 + long_started - 1, true, 0)
            } else if step.is_multiple_of(16) {
                new_flows += 1;
                let n = new_flows;
                tcp_frame(
                    a_mac,
                    [172, 17, (n >> 14) as u8, (n >> 6) as u8],
                    20_000 + (n & 63) as u16,
                    true,
                    0,
                )
            } else {
                let f = (step % u64::from(LONG_FLOWS)) as u16;
                tcp_frame(a_mac, [172, 16, 0, 1], 10_000 + f, false, step as u32)
            };
            out.push(mbuf_of(&pool, &frame)).unwrap();
            sent += 1;
        }
        test_tx.tx_burst(&mut out);
        back.clear();
        test_rx.rx_burst(&mut back);
        for m in back.as_slice() {
            received += 1;
            let (flow, server) = decode(m.data()).expect("a NAT'd TCP frame");
            destinations.insert(server);
            match flow_server.get(&flow) {
                Some(&s) if s != server => moved.push((flow, s, server)),
                Some(_) => {}
                None => {
                    flow_server.insert(flow, server);
                }
            }
        }
        // The worker forwards in order: the first frames back are the long flows' SYNs.
        if received >= u64::from(LONG_FLOWS) {
            placed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if back.is_empty() {
            std::thread::yield_now();
        }
    }
    // The capture holds every frame received, or counts it dropped (the worker never
    // waits for the writer); tcpdump reads the file.
    let r = appliance.console("capture stop");
    assert_eq!(r.status, 0, "{}", r.err);
    let words: Vec<&str> = r.out.split_whitespace().collect();
    let written: u64 = words[1].parse().unwrap();
    let dropped: u64 = words[words.iter().position(|w| *w == "dropped").unwrap() - 1]
        .parse()
        .unwrap();
    assert_eq!(written + dropped, sent, "{}", r.out);
    assert!(written > 0);
    let file = std::fs::File::open(&pcapng).unwrap();
    let mut reader = pcap_file::pcapng::PcapNgReader::new(file).unwrap();
    let mut frames = 0u64;
    while let Some(block) = reader.next_block() {
        if let pcap_file::pcapng::Block::EnhancedPacket(p) = block.unwrap() {
            assert_eq!(&p.data[36..38], &80u16.to_be_bytes(), "TCP to port 80");
            frames += 1;
        }
    }
    assert_eq!(frames, written);
    if let Ok(o) = std::process::Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcapng)
        .args(["-c", "1"])
        .output()
    {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("> 192.168.1.100.80: Flags"),
            "tcpdump: {text} {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let _ = std::fs::remove_file(&pcapng);
    // The metrics page counts what was sent: every packet in by the worker and through the
    // service, every connection the traffic opened, the weights as set.
    let metric = |text: &str, line_start: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let until = Instant::now() + Duration::from_secs(5);
    let mut page = appliance.metrics();
    while metric(&page, "rvs_worker_rx_packets_total{worker=\"0\"}") != Some(sent)
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(20));
        page = appliance.metrics();
    }
    assert_eq!(
        metric(&page, "rvs_worker_rx_packets_total{worker=\"0\"}"),
        Some(sent),
        "{page}"
    );
    assert_eq!(
        metric(&page, "node_ipvs_incoming_packets_total "),
        Some(sent)
    );
    assert_eq!(metric(&page, "node_ipvs_outgoing_packets_total "), Some(0));
    assert_eq!(
        metric(&page, "node_ipvs_connections_total "),
        Some(u64::from(LONG_FLOWS) + u64::from(new_flows))
    );
    assert_eq!(
        metric(&page, "rvs_service_incoming_packets_total{local_address=\"192.168.1.100\",local_port=\"80\",local_mark=\"\",proto=\"TCP\"}"),
        Some(sent)
    );
    assert!(page.contains("node_ipvs_backend_weight{local_address=\"192.168.1.100\",local_port=\"80\",local_mark=\"\",proto=\"TCP\",remote_address=\"10.0.0.3\",remote_port=\"80\"} 1\n"), "{page}");
    assert_eq!(
        metric(
            &page,
            "rvs_worker_drops_total{worker=\"0\",reason=\"malformed\"}"
        ),
        Some(0)
    );
    // The FTP helper's counters are there (no helper here: zero).
    assert_eq!(
        metric(
            &page,
            "rvs_worker_ftp_total{worker=\"0\",event=\"reply_rewritten\"}"
        ),
        Some(0)
    );
    // `set fwd` at run time: the same worker forwards as testpmd's macswap, then io (to the
    // peer port), then balances again.
    for (mode, swapped) in [(ForwardMode::MacSwap, true), (ForwardMode::Io, false)] {
        workers
            .mode
            .store(mode.code(), std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        let frame = tcp_frame(a_mac, [172, 18, 0, 1], 30_000, true, 0);
        out.push(mbuf_of(&pool, &frame)).unwrap();
        test_tx.tx_burst(&mut out);
        let until = Instant::now() + Duration::from_secs(10);
        back.clear();
        while back.is_empty() && Instant::now() < until {
            test_rx.rx_burst(&mut back);
        }
        let got = back
            .as_slice()
            .first()
            .expect("the frame came out")
            .data()
            .to_vec();
        let mut want = frame.clone();
        if swapped {
            want[..6].copy_from_slice(&CLIENT_MAC);
            want[6..12].copy_from_slice(&a_mac);
        }
        assert_eq!(got, want, "{mode}");
    }
    back.clear();
    workers
        .mode
        .store(ForwardMode::Lb.code(), std::sync::atomic::Ordering::Relaxed);
    // testpmd's `stop`, `port stop all`, `port start all`, `start` under the balancing
    // worker: it confirms it left its queues, the ports stop (links down) and start, and
    // a new connection's SYN goes to a server again.
    workers
        .forwarding
        .store(false, std::sync::atomic::Ordering::Relaxed);
    {
        let idle = workers
            .quiet
            .idle(Duration::from_secs(2))
            .expect("the worker left its queues");
        for p in [&a, &b] {
            p.stop_idle(&idle).unwrap();
            assert!(!p.link().unwrap().up, "a stopped port's link is down");
        }
        for p in [&a, &b] {
            p.start_idle(&idle).unwrap();
        }
    }
    workers
        .forwarding
        .store(true, std::sync::atomic::Ordering::Relaxed);
    out.push(mbuf_of(
        &pool,
        &tcp_frame(a_mac, [172, 18, 0, 2], 30_001, true, 0),
    ))
    .unwrap();
    test_tx.tx_burst(&mut out);
    let until = Instant::now() + Duration::from_secs(10);
    while back.is_empty() && Instant::now() < until {
        test_rx.rx_burst(&mut back);
    }
    let restarted = back.as_slice().first().map(|m| decode(m.data()));
    assert!(
        matches!(restarted, Some(Some(((c, 30_001), _))) if c == Ipv4Addr::new(172, 18, 0, 2)),
        "after the ports' restart: {restarted:?}"
    );
    back.clear();
    let (servers_ever, change_time) = changer.join().expect("every change accepted");
    std::thread::sleep(Duration::from_millis(100));
    let outcome = workers.stop_and_join().remove(0);
    assert_eq!(outcome.failure, None, "worker ran without panicking");
    let (counters, engine) = (outcome.counters, outcome.engine.expect("a load balancer"));

    assert!(
        cell.generation() > CHANGES as u64,
        "{} publications",
        cell.generation()
    );
    assert_eq!(received, sent, "every packet came out");
    assert_eq!(counters.tx_dropped + counters.malformed, 0, "{counters:?}");
    assert_eq!(engine.drops.iter().sum::<u64>(), 0, "{:?}", engine.drops);
    assert!(
        moved.is_empty(),
        "connections changed server: {:?}",
        &moved[..moved.len().min(5)]
    );
    let stray: Vec<_> = destinations.difference(&servers_ever).collect();
    assert!(stray.is_empty(), "packets to non-servers: {stray:?}");
    assert!(
        destinations.len() > 10,
        "new connections reached the servers added on the fly: {}",
        destinations.len()
    );
    assert_eq!(cell.reclaim(), 0, "every retired snapshot was freed");
    println!(
        "{sent} packets, {} connections, {} snapshots in {change_time:?}, {} servers reached",
        flow_server.len(),
        cell.generation(),
        destinations.len(),
    );

    drop((test_tx, test_rx, a_rx, a_tx, b_rx, b_tx));
    a.close().unwrap();
    b.close().unwrap();
}
