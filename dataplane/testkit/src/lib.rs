//! The rvs test kit, shared by every crate's tests and the benchmark's correctness check.
//!
//! * [`invariants`]: structure-aware frames and the engine's invariants (property tests,
//!   fuzz targets).
//! * [`fixtures`]: the one table of cases (input, verdict, output) every layer runs.
//! * [`lab`]: the engine's two-port appliance (services for every method and family,
//!   routes, neighbours) and frame builders.
//! * [`bins`]: the workspace's binaries for tests of another crate.
//! * [`netns`]: namespace labs; [`proc`]: programs and scratch space; [`pcap`]: capture
//!   files; [`wait`]: bounded waits; [`smtp`]: a mail server for alerts.
#![allow(clippy::too_many_arguments)]

pub mod bins;
pub mod fixtures;
pub mod invariants;
pub mod lab;
pub mod netns;
pub mod pcap;
pub mod proc;
pub mod smtp;
pub mod wait;

pub use lab::*;
