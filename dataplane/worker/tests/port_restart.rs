//! testpmd's `port stop` and `port start` under a running worker lcore, between two
//! `net_ring` ports (a port's tx queue i loops to its rx queue i): forwarding stopped, the
//! worker confirms it left its queues, both ports stop (links down) and start again with
//! their queues still out, and frames flow again, byte for byte.

mod support;

use dpdk::{Eal, EalArgs, MbufBurst, Mempool};
use rvs_core::ForwardMode;
use rvs_worker::WorkerSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{mbuf_of, RingWire};

const FRAMES: u64 = 1_000;

fn frame(seq: u64) -> Vec<u8> {
    let mut f = vec![0u8; 60 + (seq % 200) as usize];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f[14..22].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Sends frames `from..from + FRAMES` on `tx` and checks each comes out of `rx` as sent.
fn round(pool: &Mempool, wire: &mut RingWire, from: u64) -> Result<(), String> {
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
        wire.tx.tx_burst(&mut out);
        back.clear();
        wire.rx.rx_burst(&mut back);
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
    let (mut wire, queues) = RingWire::open(&eal, pool, false);
    let (workers, launched) = WorkerSet::launch(&eal, ForwardMode::Io, vec![queues], None);
    launched.unwrap();
    let stats = workers.workers[0].stats.clone();
    // Every rx call published, an empty one too.
    stats.set_recording_bursts(true);
    round(&pool, &mut wire, 0).unwrap();

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
        for p in [&wire.a, &wire.b] {
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
        for p in [&wire.a, &wire.b] {
            p.start_idle(&idle).unwrap();
            assert!(p.is_started() && p.link().unwrap().up);
        }
    }
    workers.forwarding.store(true, Ordering::Relaxed);
    round(&pool, &mut wire, FRAMES).unwrap();

    let outcome = workers.stop_and_join().remove(0);
    assert_eq!(outcome.failure, None);
    assert_eq!(outcome.counters.rx_packets, 2 * FRAMES);
    assert_eq!(outcome.counters.tx_packets, 2 * FRAMES);
    wire.close();
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}
