//! IPVS's defences (secure_tcp, drop_entry, drop_packet). The kernel turns them on while
//! available memory is below amemthresh pages; rvs's connections live in per-worker tables of fixed size, so the
//! memory that runs short is a table's room: the fullest worker's free entries, in pages.

use super::*;
use crate::director::{defence_step, Director};

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
    /// one of its sysctls at once.
    pub fn update_defence(&self) {
        self.defence_with(self.pages_left());
    }

    /// The step with `pages_left` of connection memory (IPVS's update_defense_level): short
    /// below amemthresh. The automatic modes move between 1 and 2; the workers take the
    /// secure TCP tables and drop entries from 2 up, and drop one in N opening packets at
    /// drop_packet 2 (N = amemthresh / (amemthresh - pages left)) and 3 (am_droprate).
    pub(super) fn defence_with(&self, pages_left: u64) {
        let moved = {
            let d = self.director.lock();
            defence_after(&d, pages_left) != defence_of(&d)
        };
        if moved {
            let _ = self.change_with(|d| {
                let (levels, rate) = defence_after(d, pages_left);
                [d.secure_tcp, d.drop_entry, d.drop_packet] = levels;
                d.drop_rate = rate;
                Ok(())
            });
        }
    }
}

/// The defences' levels (secure_tcp, drop_entry, drop_packet) and drop_packet's rate.
type Defences = ([u8; 3], u32);

fn defence_of(d: &Director) -> Defences {
    ([d.secure_tcp, d.drop_entry, d.drop_packet], d.drop_rate)
}

/// [`defence_of`] after a step with `pages_left`.
fn defence_after(d: &Director, pages_left: u64) -> Defences {
    let threshold = u64::from(d.amemthresh);
    let short = pages_left < threshold;
    let levels = [d.secure_tcp, d.drop_entry, d.drop_packet].map(|l| defence_step(l, short));
    let rate = match levels[2] {
        2 if short => u32::try_from(threshold / (threshold - pages_left)).unwrap_or(u32::MAX),
        _ => 0,
    };
    (levels, rate)
}
