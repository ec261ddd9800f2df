//! Soak and load: the release daemon for `--seconds` (default 600) under
//! 50,000 StatsD lines/s (25 lines a datagram, on loopback) and 5,000
//! nginx access-log lines/s (appended every 10 ms), with no AWS behind it.
//!
//! Reports, after a `--warmup` (default 60 s): RSS sampled every 10 s (its
//! spread around the median), the daemon's CPU as a share of one core, and
//! loss: lines sent or written against lines the daemon accepted, and the
//! requests its series counted.
//!
//! cargo bench --bench soak [-- --seconds 600 --warmup 60 --statsd 50000 --log 5000]

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Write;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{arg, cpu_seconds, rss_kib, start, status};

/// Paces `per_second` units of work in 1 ms (or `slice_ms`) slices until
/// `stop`; `work(n)` does n units. Returns the units done.
fn paced(per_second: u64, slice_ms: u64, stop: &AtomicBool, mut work: impl FnMut(u64)) -> u64 {
    let begin = Instant::now();
    let mut done = 0u64;
    let mut slice = 0u64;
    while !stop.load(Ordering::Relaxed) {
        slice += 1;
        let due = begin + Duration::from_millis(slice * slice_ms);
        let target = per_second * slice * slice_ms / 1000;
        work(target - done);
        done = target;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
    done
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let seconds = arg("--seconds", 600);
    let warmup = arg("--warmup", 60).min(seconds / 2);
    let statsd_rate = arg("--statsd", 50_000);
    let log_rate = arg("--log", 5_000);

    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    std::fs::File::create(&log_path).unwrap();
    let config = dir.path().join("soak.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{state}"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[[ingest.access_log]]
path = "{log}"
format = "combined"
[api]
listen = "127.0.0.1:0"
"#,
            state = dir.path().join("state").display(),
            log = log_path.display()
        ),
    )
    .unwrap();
    let d = start(&config, &[]);
    let pid = d.child.id();
    let target = d.statsd.expect("statsd bound");
    let api = d.api.expect("api bound");
    let stop = Arc::new(AtomicBool::new(false));

    // StatsD: 25 lines a datagram, as a client batching to the MTU would.
    let statsd_sent = Arc::new(AtomicU64::new(0));
    let statsd = {
        let (stop, sent) = (stop.clone(), statsd_sent.clone());
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let line = "http.requests:1|c|#route:/feed\n";
            let packet = line.repeat(25);
            let mut owed = 0u64;
            paced(statsd_rate, 1, &stop, |n| {
                owed += n;
                while owed >= 25 {
                    if socket.send_to(packet.as_bytes(), target).is_ok() {
                        sent.fetch_add(25, Ordering::Relaxed);
                    }
                    owed -= 25;
                }
            });
        })
    };
    // Access log: appended every 10 ms, stamped with the current second.
    let log_written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), log_written.clone());
        let path = log_path.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            paced(log_rate, 10, &stop, |n| {
                let t = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
                let line = format!(
                    "10.0.0.7 - - [{t}] \"GET /feed?page=2 HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0\"\n"
                );
                let chunk = line.repeat(n as usize);
                file.write_all(chunk.as_bytes()).unwrap();
                written.fetch_add(n, Ordering::Relaxed);
            });
        })
    };

    // Warm-up, then RSS every 10 s and CPU over the measured span.
    std::thread::sleep(Duration::from_secs(warmup));
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut rss = Vec::new();
    while t0.elapsed() < Duration::from_secs(seconds - warmup) {
        std::thread::sleep(Duration::from_secs(10));
        rss.push(rss_kib(pid));
    }
    let cpu = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    statsd.join().unwrap();
    writer.join().unwrap();
    // Let the tail and the grace window take the last lines.
    std::thread::sleep(Duration::from_secs(5));

    let s = status(api);
    let accepted = |source: &str| {
        s["ingest"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["source"].as_str().is_some_and(|n| n.starts_with(source)))
            .map(|c| (c["accepted"].as_u64().unwrap_or(0), c["dropped"].clone()))
            .unwrap()
    };
    let (statsd_accepted, statsd_dropped) = accepted("statsd");
    let (log_accepted, log_dropped) = accepted("access_log");
    let sent = statsd_sent.load(Ordering::Relaxed);
    let written = log_written.load(Ordering::Relaxed);

    let mut sorted = rss.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2] as f64;
    let (lo, hi) = (sorted[0] as f64, sorted[sorted.len() - 1] as f64);
    let first_half: f64 = rss[..rss.len() / 2].iter().sum::<u64>() as f64 / (rss.len() / 2) as f64;
    let second_half: f64 =
        rss[rss.len() / 2..].iter().sum::<u64>() as f64 / (rss.len() - rss.len() / 2) as f64;
    println!(
        "soak: {seconds} s ({warmup} s warm-up), {statsd_rate} StatsD lines/s + {log_rate} access-log lines/s"
    );
    println!(
        "soak: RSS over {} samples: median {:.1} MiB, min {:+.1} %, max {:+.1} % of it; mean of the second half {:+.2} % against the first",
        rss.len(),
        median / 1024.0,
        100.0 * (lo / median - 1.0),
        100.0 * (hi / median - 1.0),
        100.0 * (second_half / first_half - 1.0)
    );
    println!("soak: daemon CPU {:.1} % of one core", 100.0 * cpu);
    println!(
        "soak: StatsD lines sent {sent}, accepted {statsd_accepted} ({} lost), dropped {statsd_dropped}",
        sent as i64 - statsd_accepted as i64
    );
    println!(
        "soak: access-log lines written {written}, accepted {log_accepted} ({} lost), dropped {log_dropped}",
        written as i64 - log_accepted as i64
    );
}
