//! The control socket's protocol: any request line gets a well-formed answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::appliance::Appliance;
use rvs_control::director::{Director, Limits};
use rvs_control::socket::answer;
use rvs_core::publish::SnapshotCell;
use rvs_core::sched::DestLoad;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    // `load FILE` reads files (the socket's limits are issue 18's); not here.
    if line.contains("load") {
        return;
    }
    let loads: Arc<Vec<DestLoad>> = Arc::new((0..64).map(|_| DestLoad::default()).collect());
    let d = Director::new(
        Limits {
            entries: 32,
            dests: 64,
        },
        loads,
    );
    let cell = Arc::new(SnapshotCell::new(d.snapshot()));
    let appliance = Appliance::new(d, cell, Vec::new(), Vec::new(), 1024).shared();
    let r = answer(&appliance, line);
    assert!(r.status == 0 || !r.stderr.is_empty(), "a failure says why");
});
