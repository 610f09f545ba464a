//! An FTP control connection through the FTP helper, its segments' lines and bytes drawn
//! from the input (`testkit::invariants::ftp_session`): every segment forwarded intact, the
//! streams each side sees contiguous however the helper rewrote the replies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = rvs_testkit::invariants::ftp_session(data) {
        panic!("FTP session broken: {e}");
    }
});
