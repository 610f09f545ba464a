//! keepalived.conf parsing: any text gets a configuration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::keepalived::KeepalivedConf;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `include` reads files from disk; the parser's own tests cover it.
    if text.contains("include") {
        return;
    }
    let _ = KeepalivedConf::parse("fuzz.conf", text);
});
