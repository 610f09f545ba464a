//! The rvs control plane: everything that is not per packet.
//!
//! * [`config`]: the TOML model, parsed and validated with file/line/field errors.
//! * [`runtime`]: EAL start-up, ports, worker launch, shutdown and final statistics.
//! * [`report`]: testpmd-style statistics text.

#![forbid(unsafe_code)]

pub mod config;
pub mod ipvsadm;
pub mod lbconfig;
pub mod preview;
pub mod report;
pub mod runtime;
