//! Bounded waits: every loop in a test has a deadline.

use std::time::{Duration, Instant};

/// Polls `ok` every 50 ms until it holds; panics naming `what` after `within`. Returns how
/// long it took.
pub fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}
