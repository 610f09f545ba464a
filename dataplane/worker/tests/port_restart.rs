//! testpmd's `port stop` and `port start` under a running worker lcore, between two
//! `net_ring` ports (a port's tx queue i loops to its rx queue i): forwarding stopped, the
//! worker confirms it left its queues, both ports stop (links down) and start again with
//! their queues still out, and frames flow again, byte for byte.

use dpdk::{Eal, EalArgs, Mbuf, MbufBurst, Mempool, Port, PortConf};
use rvs_core::ForwardMode;
use rvs_worker::{RxAssignment, WorkerQueues, WorkerSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const FRAMES: u64 = 1_000;

fn frame(seq: u64) -> Vec<u8> {
    let mut f = vec![0u8; 60 + (seq % 200) as usize];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f[14..22].copy_from_slice(&seq.to_be_bytes());
    f
}

fn mbuf_of(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("mbuf");
    m.append(bytes.len() as u16)
        .expect("tailroom")
        .copy_from_slice(bytes);
    m
}

/// Sends frames `from..from + FRAMES` on `tx` and checks each comes out of `rx` as sent.
fn round(
    pool: &Mempool,
    tx: &mut dpdk::TxQueue,
    rx: &mut dpdk::RxQueue,
    from: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut sent, mut received) = (from, from);
    let (mut out, mut back): (MbufBurst, MbufBurst) = (MbufBurst::new(), MbufBurst::new());
    while received < from + FRAMES {
        if Instant::now() > deadline {
            return Err(format!(
                "sent {}, received {}",
                sent - from,
                received - from
            ));
        }
        while sent < from + FRAMES && sent - received < 256 && !out.is_full() {
            out.push(mbuf_of(pool, &frame(sent))).unwrap();
            sent += 1;
        }
        tx.tx_burst(&mut out);
        back.clear();
        rx.rx_burst(&mut back);
        for m in back.as_slice() {
            if m.data() != &frame(received)[..] {
                return Err(format!("frame {received} differs"));
            }
            received += 1;
        }
        if back.is_empty() {
            std::thread::yield_now();
        }
    }
    Ok(())
}

#[test]
fn ports_stop_and_start_under_a_running_worker() {
    let eal = Eal::init(&EalArgs::scratch("0,1", "test-restart", 256).to_vec()).expect("EAL init");
    let pool = Mempool::new(&eal, "restart_pool", 4095, 256, 2048 + 128, 0).unwrap();
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
    let mut test_tx = a_tx.remove(0);
    let mut test_rx = b_rx.remove(0);
    let queues = vec![WorkerQueues {
        lcore: 1,
        rx: vec![RxAssignment {
            rx: a_rx.remove(0),
            out_port: 1,
            in_port: 0,
            from_host: false,
            complete_checksums: false,
        }],
        tx: vec![a_tx.remove(0), b_tx.remove(0)],
        host: Vec::new(),
        idle_sleep_max_us: rvs_worker::idle::DEFAULT_SLEEP_MAX_US,
        stage_cycles: false,
    }];
    let (workers, launched) = WorkerSet::launch(&eal, ForwardMode::Io, queues, None);
    launched.unwrap();
    let stats = workers.workers[0].stats.clone();
    // Every rx call published, an empty one too.
    stats.set_recording_bursts(true);
    round(&pool, &mut test_tx, &mut test_rx, 0).unwrap();

    let wait = Duration::from_secs(2);
    let e = workers.quiet.idle(wait).unwrap_err();
    assert!(e.contains("forwarding runs"), "{e}");
    workers.forwarding.store(false, Ordering::Relaxed);
    // The proof is used while forwarding stays off.
    {
        let idle = workers
            .quiet
            .idle(wait)
            .expect("the worker left its queues");
        for p in [&a, &b] {
            p.stop_idle(&idle).unwrap();
            assert!(!p.is_started());
            assert!(!p.link().unwrap().up, "a stopped port's link is down");
        }
        // The worker goes on passing, touching no queue.
        let before = stats.read();
        let until = Instant::now() + Duration::from_secs(10);
        while stats.read().polls < before.polls + 20 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let after = stats.read();
        assert!(
            after.polls >= before.polls + 20,
            "the worker stopped passing"
        );
        assert_eq!(
            after.rx_bursts, before.rx_bursts,
            "no rx call while stopped"
        );
        for p in [&a, &b] {
            p.start_idle(&idle).unwrap();
            assert!(p.is_started() && p.link().unwrap().up);
        }
    }
    workers.forwarding.store(true, Ordering::Relaxed);
    round(&pool, &mut test_tx, &mut test_rx, FRAMES).unwrap();

    let outcome = workers.stop_and_join().remove(0);
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.counters.rx_packets, 2 * FRAMES);
    assert_eq!(outcome.counters.tx_packets, 2 * FRAMES);
    drop((test_tx, test_rx, a_rx, a_tx, b_rx, b_tx));
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}
