//! An nginx `log_format` string (the first line) compiled, then the rest of
//! the input parsed with it: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rapidscale::ingest::access_log::format::LogFormat;

fuzz_target!(|data: &[u8]| {
    let (format, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(format) = std::str::from_utf8(format) else {
        return;
    };
    if let Ok(compiled) = LogFormat::from_config(format) {
        for line in rest.split(|b| *b == b'\n') {
            let _ = compiled.parse(line);
        }
    }
});
