//! BFD control packets from the network: any bytes are read or refused, and whatever is
//! read drives a session (its timers run after) without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::bfd::packet::Control;
use rvs_control::bfd::session::Session;
use rvs_control::bfd::BfdInstance;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let conf = BfdInstance::new("f", std::net::IpAddr::from([10, 0, 0, 2]));
    let mut s = Session::new(conf, 7, t0);
    // Several packets in one input: 24-byte slices, each a step of 10 ms.
    for (k, chunk) in data.chunks(24).enumerate() {
        let now = t0 + Duration::from_millis(10 * k as u64);
        if let Ok(c) = Control::parse(chunk) {
            s.receive(&c, now);
        }
        while let Some(d) = s.deadline().filter(|d| *d <= now) {
            let _ = s.tick(d);
            if s.deadline() == Some(d) {
                break;
            }
        }
        let _ = s.tick(now);
        s.said.clear();
    }
});
