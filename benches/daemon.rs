//! Whole-daemon figures, measured on the release binary:
//! 1. StatsD over loopback: 1,000,000 packets sent at 200,000 packets/s to a
//!    running daemon; reports received/sent and the daemon's CPU time.
//! 2. Idle RSS of `rapidscale run` with the example config.
//!
//! cargo bench --bench daemon [-- --packets N --rate R]

// A bench binary outside tokio: plain thread sleeps are the right tool here.
#![allow(clippy::disallowed_methods)]

use std::net::UdpSocket;
use std::time::Duration;

mod common;
use common::{arg, cpu_seconds, rss_kib, start, status};

fn loopback(packets: u64, rate: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        "[ingest.statsd]\nlisten = \"127.0.0.1:0\"\nrequests = [\"http.requests\"]\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let d = start(&config, &[]);
    let target = d.statsd.expect("statsd bound");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pid = d.child.id();
    let cpu_before = cpu_seconds(pid);
    // Pace in slices of 1 ms: send the slice's share, then wait for the next slice.
    let per_ms = (rate / 1000).max(1);
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut send_errors = 0u64;
    let packet = b"http.requests:1|c|#env:bench";
    while sent < packets {
        let slice = sent / per_ms;
        let due = start + Duration::from_millis(slice);
        while tokio::time::Instant::now() < due {
            std::hint::spin_loop();
        }
        for _ in 0..per_ms.min(packets - sent) {
            if socket.send_to(packet, target).is_err() {
                send_errors += 1;
            }
            sent += 1;
        }
    }
    let elapsed = start.elapsed();
    // Let the grace window seal the last seconds.
    std::thread::sleep(Duration::from_secs(4));
    let cpu = cpu_seconds(pid) - cpu_before;
    let s = status(d.api.expect("api bound"));
    let received = s["ingest"][0]["accepted"].as_u64().unwrap_or(0);
    let counted = s["streams"][0]["samples_total"].as_u64().unwrap_or(0);
    println!("statsd_loopback: sent {sent} packets in {:.3} s ({:.0} packets/s, {send_errors} send errors)", elapsed.as_secs_f64(), sent as f64 / elapsed.as_secs_f64());
    println!(
        "statsd_loopback: received {received} ({:.3} %), counted in series {counted}; daemon CPU {:.2} s over the run",
        100.0 * received as f64 / sent as f64,
        cpu
    );
}

fn idle_rss() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rapidscale.toml");
    let state = tempfile::tempdir().unwrap();
    // Same config; only the API port and state dir move so a running daemon does not collide.
    let d = start(
        &example,
        &[
            ("RAPIDSCALE_API_LISTEN", "127.0.0.1:0"),
            ("RAPIDSCALE_STATE_DIR", state.path().to_str().unwrap()),
        ],
    );
    let pid = d.child.id();
    let mut samples = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(rss_kib(pid));
    }
    samples.sort_unstable();
    let anon = common::proc_status_kib(pid, "RssAnon");
    let file = common::proc_status_kib(pid, "RssFile");
    println!(
        "idle_rss: example config, 10 samples over 10 s: median {:.1} MiB, max {:.1} MiB; at the end {:.1} MiB anonymous (heap, stacks) + {:.1} MiB file-backed (code pages)",
        samples[samples.len() / 2] as f64 / 1024.0,
        samples[samples.len() - 1] as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
}

fn main() {
    // `cargo test --benches` runs bench targets in test mode: keep that cheap.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let packets = arg("--packets", 1_000_000);
    let rate = arg("--rate", 200_000);
    loopback(packets, rate);
    idle_rss();
}
