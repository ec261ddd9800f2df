//! The daemon counts requests from all three sources, end to end over real
//! sockets and files.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::harness::{stream_total, Daemon};

fn ingest_counter(status: &serde_json::Value, source: &str) -> serde_json::Value {
    status["ingest"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == source)
        .cloned()
        .unwrap_or_else(|| panic!("no counters for {source}: {status:#}"))
}

fn dropped(counter: &serde_json::Value, reason: &str) -> u64 {
    counter["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d[0] == reason)
        .map_or(0, |d| d[1].as_u64().unwrap())
}

#[tokio::test]
async fn statsd_counts_requests_with_sample_rates_and_drops_garbage() {
    let d = Daemon::start(
        r#"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests", "http.latency"]
[api]
listen = "127.0.0.1:0"
"#,
    )
    .await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = d.statsd.unwrap();
    // 100 plain counts, 50 at rate 0.5 (= 100), 20 timers (= 20), and garbage.
    for _ in 0..100 {
        socket.send_to(b"http.requests:1|c", target).await.unwrap();
    }
    for _ in 0..10 {
        socket
            .send_to(b"http.requests:1|c|@0.5\nhttp.requests:1|c|@0.5\nhttp.requests:1|c|@0.5\nhttp.requests:1|c|@0.5\nhttp.requests:1|c|@0.5", target)
            .await
            .unwrap();
    }
    for i in 0..20 {
        socket
            .send_to(
                format!("http.latency:{}|ms|#route:/home", 10 + i).as_bytes(),
                target,
            )
            .await
            .unwrap();
    }
    socket
        .send_to(
            b"this is not statsd\nhttp.requests:abc|c\nhttp.requests:1|c|@9",
            target,
        )
        .await
        .unwrap();
    socket
        .send_to(&[0xff, 0xfe, b':', b'1', b'|', b'c'], target)
        .await
        .unwrap();
    socket
        .send_to(&vec![b'x'; 70_000][..65_000], target)
        .await
        .unwrap();

    let status = d
        .wait_for_status(Duration::from_secs(10), "StatsD samples sealed", |s| {
            let c = ingest_counter(s, "statsd");
            // The garbage datagrams were sent last: wait until they are counted too.
            c["accepted"].as_u64() == Some(170)
                && s["streams"][0]["samples_total"].as_u64() == Some(170)
                && dropped(&c, "not_utf8") == 1
                && dropped(&c, "no_value") == 2
        })
        .await;
    let counter = ingest_counter(&status, "statsd");
    assert_eq!(dropped(&counter, "no_value"), 2, "{counter:#}"); // the sentence, and the 65,000 x's
    assert_eq!(dropped(&counter, "bad_value"), 1, "{counter:#}");
    assert_eq!(dropped(&counter, "bad_sample_rate"), 1, "{counter:#}");
    assert_eq!(dropped(&counter, "not_utf8"), 1, "{counter:#}");
    // Wait for the grace window to seal every second that got samples.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let total = stream_total(&d, "statsd", 60).await;
    assert_eq!(total, 220.0);
    let (exit, _) = d.terminate().await;
    assert!(exit.success());
}

fn time_local(t: chrono::DateTime<Utc>) -> String {
    t.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

fn combined_line(t: chrono::DateTime<Utc>, status: u16) -> String {
    format!(
        "10.0.0.1 - - [{}] \"GET /posts HTTP/1.1\" {status} 512 \"-\" \"test\"\n",
        time_local(t)
    )
}

#[tokio::test]
async fn access_log_follows_rotation_and_truncation_and_drops_late_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, combined_line(Utc::now(), 200).repeat(5)).unwrap();
    let d = Daemon::start(&format!(
        r#"
[ingest]
grace = "2s"
[[ingest.access_log]]
path = "{}"
format = "combined"
poll_interval = "50ms"
[api]
listen = "127.0.0.1:0"
"#,
        log.display()
    ))
    .await;
    let append = |text: String| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    // The 5 lines present at start-up are history (start_at = "end").
    append(combined_line(Utc::now(), 200).repeat(10));
    append("not a log line\n".to_string());
    // A line from 30 s ago: its second is sealed.
    append(combined_line(
        Utc::now() - chrono::TimeDelta::seconds(30),
        200,
    ));
    d.wait_for_status(Duration::from_secs(10), "first lines", |s| {
        ingest_counter(s, "access_log:access_log")["accepted"] == 10
    })
    .await;

    // logrotate: rename, then the server reopens a new file.
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    append(combined_line(Utc::now(), 200).repeat(7));
    d.wait_for_status(Duration::from_secs(10), "lines after rotation", |s| {
        ingest_counter(s, "access_log:access_log")["accepted"] == 17
    })
    .await;

    // copytruncate: the file is cut to zero, then written from the start.
    std::fs::write(&log, "").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(combined_line(Utc::now(), 503).repeat(3));
    let status = d
        .wait_for_status(Duration::from_secs(10), "lines after truncation", |s| {
            ingest_counter(s, "access_log:access_log")["accepted"] == 20
        })
        .await;
    let counter = ingest_counter(&status, "access_log:access_log");
    assert_eq!(dropped(&counter, "format_mismatch"), 1, "{counter:#}");
    assert_eq!(dropped(&counter, "late"), 1, "{counter:#}");
    // Sealed once their grace window passes (later on a loaded machine).
    crate::harness::eventually(
        Duration::from_secs(15),
        "the 20 accepted lines in the series",
        || stream_total(&d, "access_log", 120),
        |total| *total == 20.0,
    )
    .await;
    d.terminate().await;
}

/// A fake nginx's request counter: 100 requests/s of traffic since it
/// (re)started, plus every fetch of its status page, as nginx counts them.
struct FakeCounter {
    started: tokio::time::Instant,
    base: u64,
    fetches: u64,
}

impl FakeCounter {
    fn read(&mut self) -> u64 {
        self.fetches += 1;
        self.base + (self.started.elapsed().as_secs_f64() * 100.0) as u64 + self.fetches
    }

    /// nginx restarts: its counter starts over from zero.
    fn restart(&mut self) {
        *self = FakeCounter {
            started: tokio::time::Instant::now(),
            base: 0,
            fetches: 0,
        };
    }
}

/// Serves an nginx stub_status page with the counter.
async fn fake_nginx(counter: Arc<std::sync::Mutex<FakeCounter>>) -> std::net::SocketAddr {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/nginx_status",
        get(move || {
            let c = counter.lock().unwrap().read();
            async move { format!("Active connections: 3 \nserver accepts handled requests\n 10 10 {c} \nReading: 0 Writing: 1 Waiting: 2 \n") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn status_page_deltas_become_requests_per_second() {
    let counter = Arc::new(std::sync::Mutex::new(FakeCounter {
        started: tokio::time::Instant::now(),
        base: 5_000,
        fetches: 0,
    }));
    let addr = fake_nginx(counter.clone()).await;
    let d = Daemon::start(&format!(
        r#"
[[ingest.status_page]]
url = "http://{addr}/nginx_status"
kind = "nginx"
[[ingest.status_page]]
url = "http://127.0.0.1:1/fpm-status"
kind = "php-fpm"
timeout = "200ms"
[api]
listen = "127.0.0.1:0"
"#
    ))
    .await;
    d.wait_for_status(Duration::from_secs(15), "four polls", |s| {
        ingest_counter(s, "status_page:status_page")["accepted"].as_u64() >= Some(4)
    })
    .await;
    // The nginx restarts: its counter starts over from a small number.
    counter.lock().unwrap().restart();
    let status = d
        .wait_for_status(Duration::from_secs(15), "polls after the reset", |s| {
            ingest_counter(s, "status_page:status_page")["accepted"].as_u64() >= Some(12)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let points = d
        .get_json("/api/v1/series?stream=status_page&seconds=60")
        .await;
    let known: Vec<f64> = points
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .collect();
    assert!(known.len() >= 4, "{points:#}");
    // Every known second saw the 100 requests of traffic and not the polls,
    // across the counter reset too, but for the second of the restart: the
    // requests served between the last poll and the restart are lost with
    // the old counter (as with a real nginx), so it may hold fewer.
    // The polls (two a second) are not counted: 100 a second, not 102,
    // on average and, within 5 on a busy machine, every second.
    let mut sorted = known.clone();
    sorted.sort_by(f64::total_cmp);
    let rest = &sorted[1..];
    let mean = rest.iter().sum::<f64>() / rest.len() as f64;
    assert!((mean - 100.0).abs() <= 1.0, "{known:?}");
    assert!(rest.iter().all(|v| (v - 100.0).abs() <= 5.0), "{known:?}");
    assert!(sorted[0] <= 105.0, "{known:?}");
    // The unreachable php-fpm page is unknown, never zero.
    let fpm = d
        .get_json("/api/v1/series?stream=status_page_1&seconds=60")
        .await;
    assert!(
        fpm.as_array().unwrap().iter().all(|p| p["value"].is_null()),
        "{fpm:#}"
    );
    assert!(
        dropped(
            &ingest_counter(&status, "status_page:status_page_1"),
            "poll_failed"
        ) >= 2
    );
    d.terminate().await;
}

/// The README's StatsD examples are all counted by the example config
/// (none is unmatched).
#[test]
fn the_example_config_counts_the_readmes_statsd_lines() {
    use rapidscale::ingest::statsd::StatsdRouter;
    use rapidscale::ingest::SourceCounters;
    use rapidscale::series::{Arrival, SeriesStore, StoreConfig, StreamKind};
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let block = readme
        .split("**StatsD / DogStatsD over UDP**")
        .nth(1)
        .and_then(|rest| rest.split("```text\n").nth(1))
        .and_then(|b| b.split("```").next())
        .expect("the README's StatsD example block");
    let lines: Vec<&str> = block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(lines.len() >= 4, "{lines:?}");
    let text = std::fs::read_to_string(format!("{root}/config/rapidscale.toml")).unwrap();
    let config = rapidscale::config::Config::parse("config/rapidscale.toml", &text).unwrap();
    let mut store = SeriesStore::new(StoreConfig::default());
    let routes: Vec<_> = config
        .statsd_routes()
        .into_iter()
        .map(|(sel, stream)| (sel, store.register(&stream, StreamKind::Push)))
        .collect();
    let router = StatsdRouter::new(routes);
    let counters = SourceCounters::new("statsd");
    for line in &lines {
        let before = counters.snapshot();
        router.ingest(
            line.as_bytes(),
            Arrival::at(Utc::now()),
            &mut store,
            &counters,
        );
        let after = counters.snapshot();
        assert_eq!(after.unmatched, before.unmatched, "{line} is unmatched");
        assert!(after.accepted > before.accepted, "{line} is not counted");
    }
}

/// A daemon that reads late (stopped here for 1.5 s, as a CPU-starved
/// host can stall it) still counts each datagram in the second it arrived:
/// the kernel's receive time, not the time of reading.
#[tokio::test]
async fn statsd_datagrams_read_late_count_in_the_second_they_arrived() {
    let d = Daemon::start(
        r#"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[api]
listen = "127.0.0.1:0"
"#,
    )
    .await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = d.statsd.unwrap();
    // 100 ms into a second: stop the daemon; at 300 ms send 100 datagrams;
    // at 1.6 s (the next second) let it read them.
    let now = chrono::Utc::now();
    let into = Duration::from_nanos(u64::from(now.timestamp_subsec_nanos()));
    tokio::time::sleep(Duration::from_millis(1100) - into).await;
    d.signal("STOP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = chrono::Utc::now().timestamp();
    for _ in 0..100 {
        socket.send_to(b"http.requests:1|c", target).await.unwrap();
    }
    assert_eq!(
        chrono::Utc::now().timestamp(),
        second,
        "sent within one second"
    );
    let into = Duration::from_nanos(u64::from(chrono::Utc::now().timestamp_subsec_nanos()));
    tokio::time::sleep(Duration::from_millis(1600).saturating_sub(into)).await;
    d.signal("CONT");
    let read = chrono::Utc::now().timestamp();
    // Read in a later second, before the grace (2 s) sealed theirs.
    assert!(
        read > second && read <= second + 2,
        "{second} read at {read}"
    );
    // Both seconds sealed (grace 2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let points = d.get_json("/api/v1/series?stream=statsd&seconds=30").await;
    let value = |s: i64| {
        points
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["second"] == s)
            .and_then(|p| p["value"].as_f64())
    };
    assert_eq!(value(second), Some(100.0), "{points:#}");
    assert_ne!(value(second + 1), Some(100.0), "{points:#}");
    d.terminate().await;
}
