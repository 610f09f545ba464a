//! A thin safe layer over `dpdk-sys`.
//!
//! * [`Eal`]: EAL initialisation (once per process), device probing, lcore launch;
//!   [`EalArgs`]: every EAL command line rvs builds.
//! * [`Mempool`], [`Mbuf`], [`MbufBurst`]: packet buffers, freed on drop, bulk alloc/free.
//! * [`Port`], [`RxQueue`], [`TxQueue`]: ethdev configuration, statistics and bursts.
//!   Each queue handle has one owner, so DPDK's "one thread per queue" rule holds by type.
//! * [`PortsQuiet`]: the workers' confirmation that they left their queues, so that a
//!   port can be stopped and started under them (`port stop|start`).
//! * [`mbuf_ring`]: single-producer/single-consumer `rte_ring` of mbufs for hand-offs.
//! * [`log`]: EAL's log lines routed to a Rust sink.
//!
//! This crate and `dpdk-sys` are the only places in rvs that call C.

#![deny(clippy::undocumented_unsafe_blocks)]

mod eal;
mod eal_args;
mod error;
mod ethdev;
mod lcore;
pub mod log;
mod mbuf;
mod memory;
mod mempool;
mod quiet;
mod ring;

pub use eal::{prefetch, tsc_hz, tsc_now, Eal};
pub use eal_args::EalArgs;
pub use error::{Error, Result};
pub use ethdev::{
    capability_name, ptype_name, DescLimits, DevInfo, DevLimits, LinkStatus, Port, PortConf,
    PortId, PortStats, QueueInfo, QueueSettings, QueuesIdle, RssConf, RssField, RxQueue, TxQueue,
    XStat,
};
pub use lcore::{current_lcore, register_thread, LcoreHandle, LcorePanic, ThreadRegistration};
pub use mbuf::{Mbuf, MbufBurst, BURST};
pub use memory::{Dump, MemoryView, SocketHeap};
pub use mempool::Mempool;
pub use quiet::PortsQuiet;
pub use ring::{mbuf_ring, RingConsumer, RingProducer};
