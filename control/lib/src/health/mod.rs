//! Health checks with keepalived's semantics: probes ([`probe`]) run concurrently as tasks of
//! one tokio runtime on their own thread (never a thread per check, never on the control
//! thread); their verdicts ([`state`]) become changes of the live configuration, published
//! as snapshots like any rvsadm command.

pub mod monitor;
pub mod probe;
pub mod state;
