//! 100,000 packets through a real worker lcore between two `net_ring` ports, checked
//! byte for byte and against the ports' statistics; the second half with the worker's
//! burst set to 4 (the console's `set burst 4`), which it then takes at most per poll, as
//! its burst sizes (`set record-burst-stats on`) show.
//!
//! The wiring is `support::RingWire`: the test thread (main lcore) sends on port A, the
//! worker forwards to port B, whose frames the test thread reads.

mod support;

use dpdk::{Eal, EalArgs, MbufBurst, Mempool};
use rvs_core::ForwardMode;
use rvs_worker::WorkerSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{mbuf_of, RingWire};

const PACKETS: u64 = 100_000;
const IN_FLIGHT: u64 = 512;
/// The second half's burst.
const SMALL_BURST: u16 = 4;

/// A frame of 60..=1514 bytes whose contents depend on its sequence number.
fn frame(seq: u64) -> Vec<u8> {
    let len = 60 + (seq.wrapping_mul(2654435761) % 1455) as usize;
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xa]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    f[14..22].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[22..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8).wrapping_mul(31);
    }
    f
}

#[test]
fn hundred_thousand_packets_arrive_byte_identical() {
    let eal = Eal::init(&EalArgs::scratch("0,1", "test-ringfwd", 256).to_vec()).expect("EAL init");
    let pool = Mempool::new(&eal, "fwd_pool", 8191, 256, 2048 + 128, 0).unwrap();
    let (mut wire, queues) = RingWire::open(&eal, pool, true);
    let (workers, launched) = WorkerSet::launch(&eal, ForwardMode::Io, vec![queues], None);
    launched.unwrap();
    let stats = workers.workers[0].stats.clone();
    stats.set_recording_bursts(true);

    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut out: MbufBurst = MbufBurst::new();
    let mut back: MbufBurst = MbufBurst::new();
    // The worker's counters once its burst is small (None: the first half).
    let mut small_from = None;
    while received < PACKETS {
        assert!(
            Instant::now() < deadline,
            "timed out: sent {sent}, received {received}, worker {:?}",
            stats.read()
        );
        if received == PACKETS / 2 && small_from.is_none() {
            // Nothing in flight: the next passes find no frame, so once two have passed
            // the worker polls with the small burst.
            workers.burst.store(SMALL_BURST, Ordering::Relaxed);
            let polls = stats.read().polls;
            while stats.read().polls < polls + 2 {
                assert!(Instant::now() < deadline, "the worker stopped polling");
                std::thread::yield_now();
            }
            small_from = Some(stats.read());
        }
        let half = if small_from.is_some() {
            PACKETS
        } else {
            PACKETS / 2
        };
        while sent < half && sent - received < IN_FLIGHT && !out.is_full() {
            out.push(mbuf_of(&pool, &frame(sent))).unwrap();
            sent += 1;
        }
        wire.tx.tx_burst(&mut out);
        // What the ring did not take stays in `out` and goes first next time; the sequence
        // numbers are already counted, so order is kept.
        back.clear();
        wire.rx.rx_burst(&mut back);
        for m in back.as_slice() {
            assert_eq!(m.data(), &frame(received)[..], "packet {received} differs");
            received += 1;
        }
        if back.is_empty() {
            std::thread::yield_now();
        }
    }
    assert!(out.is_empty());
    back.clear();
    assert_eq!(wire.rx.rx_burst(&mut back), 0, "no extra packets");

    let outcome = workers.stop_and_join().remove(0);
    assert_eq!(outcome.failure, None, "worker ran without panicking");
    let counters = outcome.counters;
    let small_from = small_from.expect("the second half ran");
    let (frames, busy) = (
        counters.rx_packets - small_from.rx_packets,
        counters.busy_polls - small_from.busy_polls,
    );
    assert_eq!(frames, PACKETS / 2);
    assert!(
        frames <= busy * u64::from(SMALL_BURST),
        "{frames} frames in {busy} polls that found some: more than {SMALL_BURST} a poll"
    );
    // Every poll's rx call by its size (empty ones too), every frame sent by its tx call.
    let (rx, tx) = (counters.rx_bursts, counters.tx_bursts);
    assert_eq!((rx.bursts(), rx.frames()), (counters.polls, PACKETS));
    assert_eq!(tx.frames(), PACKETS);
    let small = rx.since(&small_from.rx_bursts);
    assert_eq!(small.frames(), PACKETS / 2);
    assert!(
        small.0[usize::from(SMALL_BURST) + 1..]
            .iter()
            .all(|&n| n == 0),
        "bursts over {SMALL_BURST} frames: {small:?}"
    );
    assert!(
        rx.0[usize::from(SMALL_BURST) + 1..].iter().any(|&n| n > 0),
        "the first half's bursts were never over {SMALL_BURST} frames: {rx:?}"
    );
    assert_eq!(counters.rx_packets, PACKETS);
    assert_eq!(counters.tx_packets, PACKETS);
    assert_eq!(counters.tx_dropped + counters.malformed, 0);
    assert_eq!(
        stats.read(),
        counters,
        "published counters are the final ones"
    );

    let (sa, sb) = (wire.a.stats().unwrap(), wire.b.stats().unwrap());
    assert_eq!(
        (sa.opackets, sa.ipackets),
        (PACKETS, PACKETS),
        "port A {sa:?}"
    );
    assert_eq!(
        (sb.opackets, sb.ipackets),
        (PACKETS, PACKETS),
        "port B {sb:?}"
    );
    assert_eq!(
        sa.ierrors + sa.oerrors + sb.ierrors + sb.oerrors + sa.rx_nombuf,
        0
    );

    wire.close();
    assert_eq!(pool.in_use(), 0, "every mbuf went back to the pool");
}
