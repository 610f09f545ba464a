//! ipvsadm rules (as `-R` reads them) through the parser and the live model: applied all or
//! nothing, and the snapshot built from the result is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::director::{Director, Limits};
use rvs_control::ipvsadm::parse_line;
use rvs_core::sched::DestLoad;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loads: Arc<Vec<DestLoad>> = Arc::new((0..64).map(|_| DestLoad::default()).collect());
    let mut d = Director::new(
        Limits {
            entries: 32,
            dests: 64,
        },
        loads,
    );
    let mut cmds = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if let Ok(Some(c)) = parse_line(line) {
            cmds.push((format!("line {}", n + 1), c));
        }
    }
    let before = d.services.len();
    match d.apply_all(&cmds) {
        Ok(()) => {
            let snap = d.snapshot();
            let entries: usize = d.services.iter().map(|s| s.entries.len()).sum();
            assert_eq!(snap.services.len(), entries);
            for s in &snap.services {
                assert!(s.servers.iter().all(|r| r.id < 64));
            }
        }
        Err(_) => assert_eq!(d.services.len(), before, "all or nothing"),
    }
});
