//! The rvs control library: everything that is not per packet and needs no DPDK (the
//! `rvs` daemon in `control/daemon` wires it to the data plane; `rvsadm` builds from here).
//!
//! * [`config`]: the TOML model, parsed and validated with file/line/field errors.
//! * [`appliance`]: the command layer shared by the console and the control [`socket`].
//! * [`ports`]: what commands may ask of a data port.
//! * [`director`]: the live model of services and real servers; builds snapshots.
//! * [`ipvsadm`]: ipvsadm's command syntax; [`listing`]: its output formats.
//! * [`report`]: testpmd-style statistics text.

#![forbid(unsafe_code)]

pub mod appliance;
pub mod bfd;
pub mod config;
pub mod console;
pub mod datagrams;
pub mod director;
pub mod health;
pub mod iproute;
pub mod ipvsadm;
pub mod keepalived;
pub mod listing;
pub mod log;
pub mod mail;
pub mod metrics_http;
pub mod ports;
pub mod preview;
pub mod report;
pub mod rss_types;
pub mod scripts;
pub mod socket;
pub mod sync;
pub mod vrrp;
