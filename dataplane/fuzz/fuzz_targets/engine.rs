//! The engine on structure-aware frames (sequences of `testkit::invariants::FrameSpec` on
//! one appliance); the invariants are checked after every frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = rvs_testkit::invariants::run_bytes(data) {
        panic!("invariant broken: {e}");
    }
    if let Err(e) = rvs_testkit::invariants::staged_agrees(data) {
        panic!("staged burst differs: {e}");
    }
});
