//! A StatsD packet (UDP datagram or HTTP body) through the router into the
//! store: no panic, and no more lines accepted than the packet has.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rapidscale::ingest::selector::MetricSelector;
use rapidscale::ingest::statsd::StatsdRouter;
use rapidscale::ingest::SourceCounters;
use rapidscale::series::{SeriesStore, StoreConfig, StreamKind};

fuzz_target!(|data: &[u8]| {
    let mut store = SeriesStore::new(StoreConfig {
        seconds_kept: 120,
        minutes_kept: 10,
        ..StoreConfig::default()
    });
    let requests = store.register("http.requests", StreamKind::Push);
    let units = store.register("ddb.units", StreamKind::Push);
    let latency = store.register("http.latency", StreamKind::Push);
    let router = StatsdRouter::new([
        (MetricSelector::parse("http.requests").unwrap(), requests),
        (
            MetricSelector::parse("ddb.units{table:posts,op:read}").unwrap(),
            units,
        ),
        (MetricSelector::parse("http.latency").unwrap(), latency),
    ]);
    let counters = SourceCounters::new("statsd");
    let now = 1_700_000_000;
    let accepted = router.ingest(data, now, &mut store, &counters);
    let lines = data.split(|b| *b == b'\n').count();
    assert!(accepted <= lines);
    store.seal(now + 5);
    for id in store.stream_ids() {
        let _ = store.summary(id);
    }
});
