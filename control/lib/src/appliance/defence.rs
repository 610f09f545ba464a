//! IPVS's secure_tcp defence. The kernel turns it on while available memory is below
//! amemthresh pages; rvs's connections live in per-worker tables of fixed size, so the
//! memory that runs short is a table's room: the fullest worker's free entries, in pages.

use super::*;
use crate::director::defence_step;

impl Appliance {
    /// Pages of connection memory the fullest worker has left (none: no worker, no limit).
    fn pages_left(&self) -> u64 {
        let capacity = self.conn_capacity as u64;
        self.workers
            .iter()
            .map(|w| {
                let free = capacity.saturating_sub(w.stats.connections());
                (free as f64 * self.entry_bytes / 4096.0) as u64
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// One step of IPVS's defence upkeep: the runtime calls it every second, a write of
    /// its sysctl at once.
    pub fn update_defence(&self) {
        let short = self.pages_left() < u64::from(self.director.lock().amemthresh);
        self.defence_with(short);
    }

    /// The step with connection memory `short` or not: the automatic modes move between
    /// 1 and 2, and the workers take the secure TCP tables from 2 up.
    pub(super) fn defence_with(&self, short: bool) {
        let level = self.director.lock().secure_tcp;
        if defence_step(level, short) != level {
            let _ = self.change_with(|d| {
                d.secure_tcp = defence_step(d.secure_tcp, short);
                Ok(())
            });
        }
    }
}
