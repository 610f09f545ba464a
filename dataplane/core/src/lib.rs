//! The rvs forwarding core, pure and DPDK-free: `(snapshot, now, port, frame) -> verdict`.
//!
//! * [`model`]: a real server and its forwarding method, as every layer names them.
//! * [`engine`]: the load balancer's per-frame decisions, split by concern.
//! * [`conn`]: per-worker connection tables and the IPVS TCP state machine.
//! * [`sched`]: the IPVS schedulers over a snapshot's real servers.
//! * [`forward`]: testpmd's diagnostic forwarding modes over byte buffers.
//! * [`ftp`]: FTP's control commands and replies, as IPVS's FTP helper reads them.
//! * [`publish`]: RCU-style snapshot publication from the control thread to the workers.
//! * [`rss`]: the Toeplitz hash and redirection table a NIC steers flows by.
//! * [`stats`]: per-worker counters, written by their worker, read by the control side.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod bpf;
pub mod capture;
pub mod conn;
pub mod engine;
pub mod forward;
pub mod ftp;
pub mod model;
pub mod publish;
pub mod rss;
pub mod sched;
pub mod sip;
pub mod stats;
pub mod sync;

pub use forward::ForwardMode;
pub use model::{ForwardMethod, RealServer, Tunnel, TunnelCsum, TunnelKind};
pub use stats::{WorkerCounters, WorkerStats, WorkerView};
