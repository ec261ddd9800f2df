// Router tests: packets in, per-second values out.
use super::*;
use crate::ingest::SourceCounters;
use crate::series::{StoreConfig, StreamKind};

const T0: i64 = 1_700_000_000;

struct Fixture {
    store: SeriesStore,
    router: StatsdRouter,
    counters: std::sync::Arc<SourceCounters>,
    requests: StreamId,
    writes: StreamId,
}

fn fixture() -> Fixture {
    let mut store = SeriesStore::new(StoreConfig::default());
    let requests = store.register("statsd", StreamKind::Push);
    let writes = store.register("units:posts:write", StreamKind::Push);
    let sel = |s: &str| MetricSelector::parse(s).unwrap();
    let router = StatsdRouter::new([
        (sel("http.requests"), requests),
        (sel("http.latency"), requests),
        (sel("ddb.consumed{table:posts,op:write}"), writes),
    ]);
    Fixture {
        store,
        router,
        counters: SourceCounters::new("statsd"),
        requests,
        writes,
    }
}

/// Ingests `packets` at T0 and compares (requests at T0, writes at T0);
/// None: the stream never had a sample, so its second is unknown.
#[track_caller]
fn check(packets: &[&[u8]], expected: (Option<f32>, Option<f32>)) -> Fixture {
    let mut f = fixture();
    for p in packets {
        f.router.ingest(p, T0, &mut f.store, &f.counters);
    }
    f.store.seal(T0 + 3);
    let got = (
        f.store
            .point(f.requests, T0)
            .filter(|p| !p.is_gap())
            .map(|p| p.value),
        f.store
            .point(f.writes, T0)
            .filter(|p| !p.is_gap())
            .map(|p| p.value),
    );
    assert_eq!(got, expected);
    f
}

#[test]
fn counters_sum() {
    check(
        &[
            b"http.requests:1|c",
            b"http.requests:2|c\nhttp.requests:3|c",
        ],
        (Some(6.0), None),
    );
}

#[test]
fn sample_rate_scales_up() {
    check(
        &[b"http.requests:1|c|@0.1", b"http.requests:1|c|@0.5"],
        (Some(12.0), None),
    );
}

#[test]
fn timers_count_one_request_per_sample() {
    let f = check(
        &[b"http.latency:12|ms\nhttp.latency:30|ms|@0.5\nhttp.latency:1:2:3|d"],
        (Some(6.0), None),
    );
    assert!(!f.store.point(f.requests, T0).unwrap().p50_ms.is_nan());
}

#[test]
fn tags_select_the_units_stream() {
    check(
        &[b"ddb.consumed:5|c|#table:posts,op:write\nddb.consumed:7|c|#op:write,table:posts,env:prod\nddb.consumed:100|c|#table:posts,op:read"],
        (None, Some(12.0)),
    );
}

#[test]
fn malformed_lines_are_counted_and_the_rest_kept() {
    let f = check(&[b"http.requests:1|c\ngarbage\nhttp.requests:x|c\nhttp.requests:1|c|@7\n\r\nhttp.requests:2|c\r\n"], (Some(3.0), None));
    let snap = f.counters.snapshot();
    assert_eq!(snap.accepted, 2);
    assert_eq!(snap.dropped(crate::ingest::DropReason::NoValue), 1);
    assert_eq!(snap.dropped(crate::ingest::DropReason::BadValue), 1);
    assert_eq!(snap.dropped(crate::ingest::DropReason::BadSampleRate), 1);
}

#[test]
fn invalid_utf8_drops_only_the_bad_line() {
    let f = check(
        &[b"http.requests:1|c\n\xff\xfe:1|c\nhttp.requests:1|c"],
        (Some(2.0), None),
    );
    assert_eq!(
        f.counters
            .snapshot()
            .dropped(crate::ingest::DropReason::NotUtf8),
        1
    );
}

#[test]
fn unselected_metrics_are_counted_as_unmatched() {
    let f = check(
        &[b"other.metric:1|c\nddb.consumed:1|c|#table:other"],
        (None, None),
    );
    assert_eq!(f.counters.snapshot().unmatched, 2);
}

#[test]
fn dogstatsd_timestamps_bucket_into_their_second() {
    let mut f = fixture();
    f.router.ingest(
        format!("http.requests:4|c|T{}", T0 - 1).as_bytes(),
        T0,
        &mut f.store,
        &f.counters,
    );
    f.router.ingest(
        format!("http.requests:4|c|T{}", T0 - 100).as_bytes(),
        T0,
        &mut f.store,
        &f.counters,
    );
    f.store.seal(T0 + 3);
    assert_eq!(f.store.point(f.requests, T0 - 1).unwrap().value, 4.0);
    assert_eq!(
        f.counters
            .snapshot()
            .dropped(crate::ingest::DropReason::Late),
        1
    );
}

/// Found by the property tests: a finite f64 beyond f32's range became an
/// infinite second in the store (and infinite demand).
#[test]
fn values_beyond_the_stored_range_are_dropped_and_sums_saturate() {
    assert_eq!(
        parser::parse_line("http.requests:1.474e113|c"),
        Err(parser::LineError::BadValue)
    );
    let mut f = fixture();
    // Each value fits; their sum (5e38) does not.
    f.router.ingest(
        "http.requests:1e38|c\n".repeat(5).as_bytes(),
        T0,
        &mut f.store,
        &f.counters,
    );
    f.store.seal(T0 + 3);
    assert_eq!(f.store.point(f.requests, T0).unwrap().value, f32::MAX);
}

/// A set counts distinct members per second, up to a bound: a sender that
/// invents members cannot grow memory without limit; the rest are counted.
#[test]
fn a_set_is_bounded_per_second_and_the_excess_is_counted() {
    let mut store = SeriesStore::new(StoreConfig::default());
    let users = store.register("users", StreamKind::Push);
    let router = StatsdRouter::new([(MetricSelector::parse("users").unwrap(), users)]);
    let counters = SourceCounters::new("statsd");
    let extra = 10;
    let packet: String = (0..crate::series::MAX_SET_MEMBERS + extra)
        .map(|i| format!("users:u{i}|s\n"))
        .collect();
    router.ingest(packet.as_bytes(), T0, &mut store, &counters);
    // A member already counted is still fine once the set is full.
    router.ingest(b"users:u1|s", T0, &mut store, &counters);
    store.seal(T0 + 3);
    assert_eq!(
        store.point(users, T0).unwrap().value,
        crate::series::MAX_SET_MEMBERS as f32
    );
    assert_eq!(
        counters
            .snapshot()
            .dropped(crate::ingest::DropReason::SetFull),
        extra as u64
    );
}

#[test]
fn a_datagrams_age_is_from_the_kernels_stamp_bounded() {
    let now = std::time::UNIX_EPOCH + Duration::from_secs(T0 as u64);
    let ms = Duration::from_millis;
    assert_eq!(age_at(Some(now - ms(250)), now), ms(250));
    assert_eq!(age_at(None, now), Duration::ZERO, "no stamp: read now");
    assert_eq!(age_at(Some(now + ms(5)), now), Duration::ZERO, "future");
    assert_eq!(
        age_at(Some(now - Duration::from_secs(3600)), now),
        Duration::from_secs(60),
        "a clock step"
    );
}

/// One datagram and its kernel stamp, read when the socket is readable.
#[cfg(target_os = "linux")]
async fn recv_stamped(
    socket: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
) -> (usize, Option<SystemTime>) {
    socket
        .async_io(Interest::READABLE, || stamps::recv(socket, buf, control))
        .await
        .unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_kernel_stamps_a_datagram_when_it_arrives_not_when_it_is_read() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stamps::enable(&socket).unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = [0u8; 64];
    let mut control = stamps::control_buffer();
    // Linux turns receive stamps on for the whole host from a work item
    // after the first socket asks (the `netstamp_needed` static key); until
    // it has run, which on a loaded host takes a while, a datagram is
    // stamped when it is read. Probe until stamps are taken on arrival.
    let mut on = false;
    for _ in 0..100 {
        let probe_sent = SystemTime::now();
        sender
            .send_to(b"probe:1|c", socket.local_addr().unwrap())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, stamp) = recv_stamped(&socket, &mut buf, &mut control).await;
        let stamp = stamp.expect("a kernel stamp");
        if stamp
            .duration_since(probe_sent)
            .is_ok_and(|d| d < Duration::from_millis(25))
        {
            on = true;
            break;
        }
    }
    assert!(on, "the kernel never stamped a datagram on arrival");
    let sent = SystemTime::now();
    sender
        .send_to(b"http.requests:1|c", socket.local_addr().unwrap())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (len, received) = recv_stamped(&socket, &mut buf, &mut control).await;
    assert_eq!(&buf[..len], b"http.requests:1|c");
    let received = received.expect("a kernel stamp");
    let after_send = received
        .duration_since(sent)
        .expect("stamped after sending");
    assert!(after_send < Duration::from_millis(100), "{after_send:?}");
    assert!(age(Some(received)) >= Duration::from_millis(300));
}
