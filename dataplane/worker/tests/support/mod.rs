//! Two `net_ring` ports wired for one worker lcore (a port's tx queue i loops to its rx
//! queue i): the test thread sends on port A's tx queue 0, the worker polls A's rx queue
//! 0 and sends on its own tx queue of port B, and the test thread reads B's rx queue 0.

use dpdk::{Eal, Mbuf, Mempool, Port, PortConf, RxQueue, TxQueue};
use rvs_worker::{RxAssignment, WorkerQueues};

/// The ports and the test thread's ends of them.
pub struct RingWire {
    pub a: Port,
    pub b: Port,
    /// The test thread sends here (A's tx queue 0)...
    pub tx: TxQueue,
    /// ...and reads what the worker forwarded here (B's rx queue 0).
    pub rx: RxQueue,
    /// The queues neither side uses, kept until the ports close.
    spare: (Vec<RxQueue>, Vec<TxQueue>),
}

impl RingWire {
    /// Opens and starts `net_ring0` and `net_ring1`; the queues of a worker on lcore 1
    /// forwarding A to B (`stage_cycles`: its per-stage cycle counts on).
    pub fn open(eal: &Eal, pool: Mempool, stage_cycles: bool) -> (RingWire, WorkerQueues) {
        let a_id = eal.attach("net_ring0").unwrap()[0];
        let b_id = eal.attach("net_ring1").unwrap()[0];
        let two_tx = PortConf {
            tx_queues: 2,
            ..PortConf::default()
        };
        let mut a = Port::configure(eal, a_id, &two_tx, pool).unwrap();
        let mut b = Port::configure(eal, b_id, &PortConf::default(), pool).unwrap();
        let (mut a_rx, mut a_tx) = a.take_queues().unwrap();
        let (mut b_rx, mut b_tx) = b.take_queues().unwrap();
        a.start().unwrap();
        b.start().unwrap();
        let (tx, rx) = (a_tx.remove(0), b_rx.remove(0));
        let queues = WorkerQueues {
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
            stage_cycles,
        };
        let spare = (
            a_rx.into_iter().chain(b_rx).collect(),
            a_tx.into_iter().chain(b_tx).collect(),
        );
        let wire = RingWire {
            a,
            b,
            tx,
            rx,
            spare,
        };
        (wire, queues)
    }

    /// Drops the test's queues and closes both ports (the worker joined first).
    pub fn close(self) {
        drop((self.tx, self.rx, self.spare));
        self.a.close().unwrap();
        self.b.close().unwrap();
    }
}

/// A buffer from `pool` holding `bytes`.
pub fn mbuf_of(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("mbuf");
    m.append(bytes.len() as u16)
        .expect("tailroom")
        .copy_from_slice(bytes);
    m
}
