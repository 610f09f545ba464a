//! The safe layer against a real EAL (`--no-huge`, virtual devices only). EAL initialises
//! once per process, so this file is one test run in steps.

use dpdk::{mbuf_ring, Eal, EalArgs, Mbuf, MbufBurst, Mempool, Port, PortConf};

fn eal_args() -> Vec<String> {
    EalArgs::scratch("0,1", "test-eal", 256).to_vec()
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn fill(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("pool has mbufs");
    m.append(bytes.len() as u16)
        .expect("tailroom")
        .copy_from_slice(bytes);
    m
}

#[test]
fn safe_layer_over_a_real_eal() {
    let eal = Eal::init(&eal_args()).expect("EAL init");
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert!(!eal.has_hugepages());

    // A second init is refused with a readable error, not a crash.
    let again = Eal::init(&eal_args()).unwrap_err();
    assert!(again.to_string().contains("EAL initialisation"), "{again}");

    mbufs(&eal);
    bulk_and_burst(&eal);
    rings(&eal);
    lcores(&eal);
    ports(&eal);
    non_eal_thread(&eal);
}

fn mbufs(eal: &Eal) {
    let pool = Mempool::new(eal, "t_mbufs", 1023, 0, 2048 + 128, 0).unwrap();
    let before = pool.available();
    let mut m = fill(&pool, &frame(60, 1));
    assert_eq!(pool.available(), before - 1);
    assert_eq!(m.data(), &frame(60, 1)[..]);
    assert_eq!(m.len(), 60);
    assert_eq!(m.pkt_len(), 60);
    assert!(m.is_contiguous());
    assert_eq!(m.headroom(), 128);

    // Encapsulate: 20 bytes in front, then take them off again.
    let head = m.headroom();
    m.prepend(20).unwrap().fill(0xee);
    assert_eq!(m.len(), 80);
    assert_eq!(m.headroom(), head - 20);
    assert_eq!(&m.data()[..20], &[0xee; 20]);
    assert_eq!(&m.data()[20..], &frame(60, 1)[..]);
    assert!(m.adj(20));
    assert_eq!(m.data(), &frame(60, 1)[..]);
    assert!(m
        .prepend(u16::try_from(m.headroom() + 1).unwrap())
        .is_none());
    assert_eq!(m.len(), 60, "a failed prepend changes nothing");
    assert!(!m.adj(61));
    assert!(m.trim(10));
    assert_eq!(m.data(), &frame(60, 1)[..50]);
    assert!(!m.trim(51));
    m.data_mut()[0] = 0xaa;
    assert_eq!(m.data()[0], 0xaa);
    drop(m);
    assert_eq!(pool.available(), before, "drop frees the mbuf");
}

fn bulk_and_burst(eal: &Eal) {
    let pool = Mempool::new(eal, "t_bulk", 255, 0, 2048 + 128, 0).unwrap();
    let total = pool.available();
    let mut burst: MbufBurst = MbufBurst::new();
    assert!(pool.alloc_bulk(&mut burst, 32));
    assert!(burst.is_full());
    assert_eq!(pool.in_use(), 32);
    // Asking for more than the pool holds gets nothing and changes nothing.
    let mut big: MbufBurst<512> = MbufBurst::new();
    assert!(!pool.alloc_bulk(&mut big, 300));
    assert!(big.is_empty());
    let one = burst.pop().unwrap();
    assert_eq!(burst.len(), 31);
    burst.push(one).unwrap();
    let extra = pool.alloc().unwrap();
    assert!(
        burst.push(extra).is_err(),
        "a full burst gives the mbuf back"
    );
    let mut seen = 0;
    let freed = burst.retain(|_| {
        seen += 1;
        seen % 2 == 0
    });
    assert_eq!((freed, burst.len(), pool.in_use()), (16, 16, 16));
    burst.truncate(10);
    assert_eq!(pool.in_use(), 10);
    drop(burst);
    assert_eq!(pool.available(), total, "bulk free on drop");
}

fn rings(eal: &Eal) {
    let pool = Mempool::new(eal, "t_ring", 1023, 0, 2048 + 128, 0).unwrap();
    let (mut tx, mut rx) = mbuf_ring(eal, "t_ring", 64, 0).unwrap();
    let mut burst: MbufBurst = MbufBurst::new();
    for i in 0..32u8 {
        burst.push(fill(&pool, &frame(64, i))).unwrap();
    }
    assert_eq!(tx.enqueue_burst(&mut burst), 32);
    assert!(burst.is_empty());
    assert_eq!(rx.len(), 32);
    let mut out: MbufBurst = MbufBurst::new();
    assert_eq!(rx.dequeue_burst(&mut out), 32);
    for (i, m) in out.as_slice().iter().enumerate() {
        assert_eq!(
            m.data(),
            &frame(64, i as u8)[..],
            "ring keeps order and bytes"
        );
    }
    // Capacity is count - 1: enqueueing 2 x 32 into a 64 ring leaves one behind.
    let mut more: MbufBurst<64> = MbufBurst::new();
    assert!(pool.alloc_bulk(&mut more, 64));
    assert_eq!(tx.enqueue_burst(&mut more), 63);
    assert_eq!(more.len(), 1);
    drop(more);
    drop(out);
    drop((tx, rx)); // frees the 63 mbufs still in the ring
    assert_eq!(pool.in_use(), 0);
}

fn lcores(eal: &Eal) {
    let h = eal.launch(1, || dpdk::current_lcore() * 10).unwrap();
    assert_eq!(h.join().unwrap(), 10);

    let h = eal
        .launch(1, || -> u32 { panic!("worker exploded") })
        .unwrap();
    let err = h.join().unwrap_err();
    assert_eq!(err.lcore, 1);
    assert!(err.message.contains("worker exploded"), "{err}");

    // The lcore is usable again after a panic.
    assert_eq!(eal.launch(1, || 7).unwrap().join().unwrap(), 7);
    assert!(
        eal.launch(0, || ()).is_err(),
        "the main lcore cannot be launched on"
    );
    assert!(
        eal.launch(5, || ()).is_err(),
        "a disabled lcore cannot be launched on"
    );
}

fn ports(eal: &Eal) {
    let err = eal.attach("net_nonexistent0").unwrap_err();
    assert!(err.to_string().contains("net_nonexistent0"), "{err}");

    let pool = Mempool::new(eal, "t_ports", 4095, 0, 2048 + 128, 0).unwrap();
    let ids = eal.attach("net_ring0").unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(eal.port_name(ids[0]).as_deref(), Some("net_ring0"));
    assert_eq!(
        eal.attach("net_ring0").unwrap(),
        ids,
        "attaching twice finds the port"
    );
    let conf = PortConf {
        rx_queues: 2,
        tx_queues: 2,
        ..PortConf::default()
    };
    let mut port = Port::configure(eal, ids[0], &conf, pool).unwrap();
    assert_eq!(port.info().driver, "net_ring");
    let (mut rxq, mut txq) = port.take_queues().unwrap();
    assert!(port.take_queues().is_none());
    port.start().unwrap();
    assert!(port.link().unwrap().up);
    port.set_link(false).unwrap();
    assert!(!port.link().unwrap().up, "set link down");
    port.set_link(true).unwrap();
    assert!(port.link().unwrap().up, "set link up");
    // A net_ring port loops tx queue i to rx queue i.
    let mut burst: MbufBurst = MbufBurst::new();
    for i in 0..5u8 {
        burst.push(fill(&pool, &frame(100, i))).unwrap();
    }
    assert_eq!(txq[1].tx_burst(&mut burst), 5);
    let mut got: MbufBurst = MbufBurst::new();
    assert_eq!(rxq[0].rx_burst(&mut got), 0);
    assert_eq!(rxq[1].rx_burst(&mut got), 5);
    assert_eq!(got.as_slice()[4].data(), &frame(100, 4)[..]);
    let stats = port.stats().unwrap();
    assert_eq!((stats.opackets, stats.ipackets), (5, 5));
    assert_eq!(
        (stats.obytes, stats.ibytes),
        (0, 0),
        "net_ring counts no bytes"
    );
    assert!(!port.xstats().unwrap().is_empty());
    port.reset_stats().unwrap();
    assert_eq!(port.stats().unwrap().ipackets, 0);
    drop(got);

    // Bad requests get errors naming the problem.
    let bad = Port::configure(
        eal,
        ids[0],
        &PortConf {
            rx_queues: 200,
            ..PortConf::default()
        },
        pool,
    )
    .unwrap_err();
    assert!(bad.to_string().contains("rx queues"), "{bad}");

    assert!(port.stop().is_err(), "queues still out: stop refused");
    drop((rxq.pop(), txq.pop()));
    drop((rxq, txq));
    port.close().unwrap();
    assert_eq!(pool.in_use(), 0, "closing the port returned its rx buffers");
}

fn non_eal_thread(eal: &Eal) {
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(dpdk::current_lcore(), u32::MAX);
            let reg = dpdk::register_thread(eal).unwrap();
            assert_eq!(dpdk::current_lcore(), reg.lcore());
            assert!(reg.lcore() < 128);
            drop(reg);
            assert_eq!(dpdk::current_lcore(), u32::MAX);
        });
    });
}
