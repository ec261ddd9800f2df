//! One access-log line against the built-in formats: a record or an error,
//! never a panic, and a record's status is a valid HTTP status.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rapidscale::ingest::access_log::format::LogFormat;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, line)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => "combined",
        1 => "common",
        2 => "json",
        _ => "$remote_addr [$time_local] \"$request\" $status $body_bytes_sent $request_time $msec",
    };
    let format = LogFormat::from_config(format).unwrap();
    if let Ok(r) = format.parse(line) {
        if let Some(s) = r.status {
            assert!((100..1000).contains(&s), "status {s}");
        }
        if let Some(ms) = r.latency_ms {
            assert!(ms.is_finite() && ms >= 0.0, "latency {ms}");
        }
    }
});
