//! The rvs packet path.
//!
//! * [`forward`]: pure per-frame decisions over byte buffers (testable without EAL).
//! * [`worker`]: the poll-mode loop of one lcore, the I/O adapter between DPDK queues and
//!   the pure core.
//! * [`publish`]: RCU-style snapshot publication from the control thread to the workers.
//! * [`stats`]: per-worker counters, written by their worker, read by the control side.

// Only the I/O adapter may opt out, block by block, each with a `// SAFETY:` comment.
#![deny(unsafe_code)]

pub mod conn;
pub mod engine;
pub mod forward;
pub mod publish;
pub mod sched;
pub mod stats;
pub mod wire;
pub mod worker;

pub use forward::ForwardMode;
pub use stats::{WorkerCounters, WorkerStats};
pub use worker::{RxAssignment, WorkerPlan};
