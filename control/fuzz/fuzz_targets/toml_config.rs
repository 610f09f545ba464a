//! The TOML loader: any text gets a configuration or an error naming the file and field,
//! never a panic or a runaway allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_control::config::{Config, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A rules file named by the configuration would be read from disk; not here.
    if text.contains("rules") {
        return;
    }
    let source = Source {
        file: "fuzz.toml".into(),
        text: text.into(),
    };
    if let Err(e) = Config::parse(source) {
        assert_eq!(e.file, "fuzz.toml");
        assert!(!e.field.is_empty() || e.line.is_some(), "{e}");
    }
});
