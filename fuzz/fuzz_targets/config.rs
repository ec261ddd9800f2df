//! Config text through the loader: a config or a list of problems, each
//! with a line inside the text, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rapidscale::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse("fuzz.toml", text) {
        Ok(config) => {
            let _ = rapidscale::config::report::effective_tables(&config);
        }
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty());
            let lines = text.split('\n').count().max(1);
            for p in &problems {
                assert!(p.line >= 1 && p.line <= lines, "{p} (of {lines} lines)");
                let _ = p.to_string();
            }
        }
        Err(e) => panic!("parse returned {e}"),
    }
});
