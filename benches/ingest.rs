//! Parser throughput on one core: StatsD parse + route + aggregate into the
//! store, and access-log parsing (combined format).
//!
//! cargo bench --bench ingest

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rapidscale::ingest::access_log::format::LogFormat;
use rapidscale::ingest::selector::MetricSelector;
use rapidscale::ingest::statsd::StatsdRouter;
use rapidscale::ingest::SourceCounters;
use rapidscale::series::{SeriesStore, StoreConfig, StreamKind};

const NOW: i64 = 1_700_000_000;

/// A realistic mix: request counters (some sampled), timers with tags,
/// DynamoDB unit counters with tags, and metrics nobody selected.
fn statsd_packets() -> (Vec<Vec<u8>>, usize) {
    let lines = [
        "http.requests:1|c",
        "http.requests:1|c|@0.1",
        "http.latency:12.5|ms|#route:/posts,method:GET",
        "ddb.consumed:4|c|#table:posts,op:write",
        "ddb.consumed:0.5|c|#table:posts,op:read,index:by_user",
        "php.memory:1048576|g",
        "http.requests:1|c|#env:prod,az:us-east-1a",
        "http.latency:3|h|@0.5|#route:/home",
    ];
    // 20 lines per packet, as a StatsD client buffering to ~1 KB would send.
    let mut packets = Vec::new();
    let mut count = 0;
    for p in 0..64 {
        let mut packet = String::new();
        for i in 0..20 {
            if i > 0 {
                packet.push('\n');
            }
            packet.push_str(lines[(p + i) % lines.len()]);
            count += 1;
        }
        packets.push(packet.into_bytes());
    }
    (packets, count)
}

fn statsd(c: &mut Criterion) {
    let (packets, lines) = statsd_packets();
    let mut store = SeriesStore::new(StoreConfig::default());
    let requests = store.register("statsd", StreamKind::Push);
    let writes = store.register("units:posts:write", StreamKind::Push);
    let reads = store.register("units:posts/by_user:read", StreamKind::Push);
    let sel = |s: &str| MetricSelector::parse(s).unwrap();
    let router = StatsdRouter::new([
        (sel("http.requests"), requests),
        (sel("http.latency"), requests),
        (sel("ddb.consumed{table:posts,op:write}"), writes),
        (
            sel("ddb.consumed{table:posts,op:read,index:by_user}"),
            reads,
        ),
    ]);
    let counters = SourceCounters::new("bench");
    let mut group = c.benchmark_group("statsd");
    group.throughput(Throughput::Elements(lines as u64));
    group.bench_function("parse_and_aggregate", |b| {
        b.iter(|| {
            for p in &packets {
                black_box(router.ingest(p, NOW, &mut store, &counters));
            }
        })
    });
    group.finish();
}

fn access_log(c: &mut Criterion) {
    let format = LogFormat::from_config("combined").unwrap();
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"203.0.113.{} - - [29/Nov/2026:09:{:02}:{:02} +0900] "GET /posts/{i}?page=2 HTTP/1.1" 200 {} "https://example.com/feed" "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15""#,
                i % 250,
                (i / 60) % 60,
                i % 60,
                1000 + i
            )
        })
        .collect();
    let mut group = c.benchmark_group("access_log");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse_combined", |b| {
        b.iter_batched(
            || (),
            |_| {
                for l in &lines {
                    black_box(format.parse(l.as_bytes()).unwrap());
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, statsd, access_log);
criterion_main!(benches);
