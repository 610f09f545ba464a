//! Health checks with keepalived's semantics: probes ([`probe`]) run concurrently as tasks of
//! one tokio runtime on their own thread (never a thread per check, never on the control
//! thread); their verdicts ([`state`]) become changes of the live configuration, published
//! as snapshots like any rvsadm command.

pub mod monitor;
pub mod probe;
pub mod state;

use crate::ipvsadm::{Command, ServiceKey};
use monitor::HealthRow;
use rvs_core::RealServer;

/// What health checks act on (the appliance, in the daemon): a service's current servers,
/// and the changes and checker states the checks report.
pub trait HealthTarget: Send + Sync {
    /// The service's real servers now (None: no such service).
    fn servers(&self, key: ServiceKey) -> Option<Vec<RealServer>>;
    /// Applies the checks' changes all or nothing.
    fn apply_health(&self, cmds: &[Command]) -> Result<(), String>;
    /// Every checker's state, for `show health`.
    fn set_health(&self, rows: Vec<HealthRow>);
}
