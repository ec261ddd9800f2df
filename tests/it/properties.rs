//! Property tests (proptest) for every input rapidscale takes from outside:
//! StatsD packets, access-log formats and lines, config files, and the
//! API's JSON and query inputs. Arbitrary input never panics and is either
//! accepted correctly or counted and dropped; well-formed input is read
//! exactly. The coverage-guided counterparts are in `fuzz/`
//! (docs/fuzzing.md); the inputs they found are kept below as regression
//! cases.

use proptest::prelude::*;
use rapidscale::config::{Config, ConfigError};
use rapidscale::ingest::access_log::format::LogFormat;
use rapidscale::ingest::selector::MetricSelector;
use rapidscale::ingest::statsd::parser::{parse_line, MetricKind};
use rapidscale::ingest::statsd::StatsdRouter;
use rapidscale::ingest::SourceCounters;
use rapidscale::series::{SeriesStore, StoreConfig, StreamKind};

const NOW: i64 = 1_700_000_000;

struct Statsd {
    store: SeriesStore,
    router: StatsdRouter,
    counters: std::sync::Arc<SourceCounters>,
    requests: rapidscale::series::StreamId,
}

fn statsd() -> Statsd {
    let mut store = SeriesStore::new(StoreConfig {
        seconds_kept: 120,
        minutes_kept: 10,
        ..StoreConfig::default()
    });
    let requests = store.register("http.requests", StreamKind::Push);
    let units = store.register("ddb.units", StreamKind::Push);
    let router = StatsdRouter::new([
        (MetricSelector::parse("http.requests").unwrap(), requests),
        (
            MetricSelector::parse("ddb.units{table:posts,op:read}").unwrap(),
            units,
        ),
    ]);
    Statsd {
        store,
        router,
        counters: SourceCounters::new("statsd"),
        requests,
    }
}

/// Lines that look like StatsD, so the generator reaches past the first `:`.
fn statsd_like() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("http.requests".to_string()),
        Just("ddb.units".to_string()),
        "[a-z.]{0,12}",
    ];
    let value = prop_oneof![
        any::<f64>().prop_map(|v| v.to_string()),
        "[-+0-9.eE:]{0,10}",
        Just("NaN".to_string()),
        Just("inf".to_string()),
    ];
    let kind = prop_oneof![
        Just("c"),
        Just("g"),
        Just("ms"),
        Just("h"),
        Just("d"),
        Just("s"),
        Just("x"),
        Just("")
    ];
    let extra = proptest::collection::vec(
        prop_oneof![
            "@[-0-9.e]{0,6}",
            "#[a-z:,]{0,16}",
            "T[-0-9]{0,12}",
            "c:[a-z0-9]{0,8}",
            "[^|\n]{0,8}"
        ],
        0..4,
    );
    (name, value, kind, extra).prop_map(|(n, v, k, e)| {
        let mut line = format!("{n}:{v}|{k}");
        for x in e {
            line.push('|');
            line.push_str(&x);
        }
        line
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_packet_is_counted_and_never_adds_a_stream(packet in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut s = statsd();
        let accepted = s.router.ingest(&packet, NOW, &mut s.store, &s.counters);
        let lines = packet.split(|b| *b == b'\n').count();
        prop_assert!(accepted <= lines);
        // Names never seen in the config take no memory: the streams are
        // the configured ones, whatever arrives.
        prop_assert_eq!(s.store.stream_ids().count(), 2);
        let c = s.counters.snapshot();
        prop_assert_eq!(c.accepted, accepted as u64);
    }

    #[test]
    fn statsd_like_lines_parse_or_are_dropped_with_a_reason(
        lines in proptest::collection::vec(statsd_like(), 1..20)
    ) {
        let mut s = statsd();
        let packet = lines.join("\n");
        let accepted = s.router.ingest(packet.as_bytes(), NOW, &mut s.store, &s.counters);
        let c = s.counters.snapshot();
        let dropped_malformed: u64 = c.dropped.iter()
            .filter(|(reason, _)| !matches!(*reason, "late" | "future"))
            .map(|(_, n)| n)
            .sum();
        let nonempty = lines.iter().filter(|l| !l.is_empty()).count() as u64;
        // Every line is either accepted or dropped as malformed.
        prop_assert_eq!(accepted as u64 + dropped_malformed, nonempty, "{:?}", c);
        // An accepted value is never NaN or infinite in the store.
        s.store.seal(NOW + 5);
        for (_, p) in s.store.seconds(s.requests, 10) {
            prop_assert!(p.value.is_nan() || p.value.is_finite());
        }
    }

    #[test]
    fn well_formed_counters_are_read_exactly(
        name in "[a-z][a-z0-9_.]{0,20}",
        value in 0.0f64..1e9,
        rate in prop_oneof![Just(None), (0.001f64..=1.0).prop_map(Some)],
        tags in proptest::collection::vec("[a-z]{1,5}:[a-z0-9]{1,5}", 0..3),
        ts in proptest::option::of(1_000_000_000i64..2_000_000_000),
    ) {
        let mut line = format!("{name}:{value}|c");
        if let Some(r) = rate {
            line.push_str(&format!("|@{r}"));
        }
        if !tags.is_empty() {
            line.push_str(&format!("|#{}", tags.join(",")));
        }
        if let Some(t) = ts {
            line.push_str(&format!("|T{t}"));
        }
        let l = parse_line(&line).unwrap();
        prop_assert_eq!(l.name, name.as_str());
        prop_assert_eq!(l.kind, MetricKind::Counter);
        prop_assert_eq!(l.values.parse::<f64>().unwrap(), value);
        prop_assert_eq!(l.sample_rate, rate.unwrap_or(1.0));
        prop_assert_eq!(l.tags, tags.join(","));
        prop_assert_eq!(l.timestamp, ts);
    }

    #[test]
    fn routed_counters_add_up_in_their_second(values in proptest::collection::vec(0u32..10_000, 1..50)) {
        let mut s = statsd();
        let packet: String = values.iter().map(|v| format!("http.requests:{v}|c\n")).collect();
        s.router.ingest(packet.as_bytes(), NOW, &mut s.store, &s.counters);
        s.store.seal(NOW + 5);
        let point = s.store.point(s.requests, NOW).unwrap();
        let total: u64 = values.iter().map(|v| *v as u64).sum();
        prop_assert!((point.value as f64 - total as f64).abs() <= total as f64 * 1e-6);
    }

    #[test]
    fn any_log_format_string_compiles_or_is_refused(format in "[ -~]{0,80}", line in "[ -~]{0,120}") {
        if let Ok(f) = LogFormat::from_config(&format) {
            let _ = f.parse(line.as_bytes());
        }
    }

    #[test]
    fn nginx_like_formats_compile_or_are_refused(
        parts in proptest::collection::vec(prop_oneof![
            Just("$remote_addr"), Just("$time_local"), Just("$time_iso8601"), Just("$msec"),
            Just("$status"), Just("$request_time"), Just("$upstream_response_time"),
            Just("$request"), Just("$body_bytes_sent"), Just("$http_user_agent"),
            Just("\""), Just("["), Just("]"), Just(" "), Just(" - "), Just("$"), Just("${status}"),
        ], 0..12),
        line in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let format: String = parts.concat();
        if let Ok(f) = LogFormat::from_config(&format) {
            let _ = f.parse(&line);
        }
    }

    #[test]
    fn combined_lines_are_read_exactly(
        ip in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        second in 946_684_800i64..2_000_000_000,
        path in "/[a-z0-9/._-]{0,30}",
        status in 100u16..600,
        bytes in 0u64..10_000_000,
        agent in "[ -!#-~]{0,40}",
    ) {
        let t = chrono::DateTime::from_timestamp(second, 0).unwrap();
        let line = format!(
            "{ip} - - [{}] \"GET {path} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\"",
            t.format("%d/%b/%Y:%H:%M:%S +0000")
        );
        let r = LogFormat::from_config("combined").unwrap().parse(line.as_bytes()).unwrap();
        prop_assert_eq!(r.second, second);
        prop_assert_eq!(r.status, Some(status));
    }

    #[test]
    fn any_bytes_against_each_format_never_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        for f in ["combined", "common", "json"] {
            let _ = LogFormat::from_config(f).unwrap().parse(&line);
        }
    }

    #[test]
    fn a_mangled_example_config_loads_or_lists_problems_on_real_lines(
        line_no in 0usize..200,
        replacement in prop_oneof![
            "[ -~]{0,40}",
            Just("[[dynamodb.tables]]".to_string()),
            Just("read = { max = -1 }".to_string()),
            Just("mode = 3".to_string()),
            Just("hours = \"25-3\"".to_string()),
            Just("= =".to_string()),
        ],
    ) {
        let example = include_str!("../../config/rapidscale.toml");
        let mut lines: Vec<&str> = example.lines().collect();
        let i = line_no % lines.len();
        lines[i] = &replacement;
        let text = lines.join("\n");
        check_config(&text)?;
    }

    #[test]
    fn arbitrary_config_text_loads_or_lists_problems(text in "[\\[\\]a-z_.=\"{}, 0-9\n#-]{0,200}") {
        check_config(&text)?;
    }

    #[test]
    fn any_mode_body_parses_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = serde_json::from_slice::<rapidscale::api::ModeRequest>(&body);
    }
}

fn check_config(text: &str) -> Result<(), TestCaseError> {
    match Config::parse("p.toml", text) {
        Ok(c) => {
            let _ = rapidscale::config::report::effective_tables(&c);
        }
        Err(ConfigError::Invalid(problems)) => {
            prop_assert!(!problems.is_empty());
            let n = text.split('\n').count().max(1);
            for p in &problems {
                prop_assert!(p.line >= 1 && p.line <= n, "{} of {} lines", p, n);
                prop_assert!(!p.reason.is_empty());
            }
        }
        Err(e) => prop_assert!(false, "{}", e),
    }
    Ok(())
}

/// The API's inputs against a running daemon: arbitrary bodies and query
/// strings get a JSON answer, never a 5xx; a mode change happens only for a
/// valid request, and each one is audited; the daemon stays healthy.
#[test]
fn the_api_answers_any_input_with_json_and_never_fails() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = rt.block_on(crate::harness::Daemon::start(
        "state_dir = \"{dir}/state\"\n[ingest.statsd]\nlisten = \"127.0.0.1:0\"\nrequests = [\"http.requests\"]\n[api]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n",
    ));
    let base = format!("http://{}", d.api.unwrap());
    let client = reqwest::Client::new();
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(|b| b),
        (
            prop_oneof![
                Just("\"apply\""),
                Just("\"dry-run\""),
                Just("\"paused\""),
                Just("\"APPLY\""),
                Just("1"),
                Just("null"),
                Just("\"\"")
            ],
            proptest::option::of(prop_oneof![
                Just("\"*\"".to_string()),
                "\"[ -~]{0,12}\"",
                Just("3".to_string())
            ]),
        )
            .prop_map(|(m, r)| match r {
                Some(r) => format!("{{\"mode\":{m},\"resource\":{r}}}").into_bytes(),
                None => format!("{{\"mode\":{m}}}").into_bytes(),
            }),
    ];
    let query = "[ -~]{0,30}";
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let accepted = std::cell::Cell::new(0u64);
    runner
        .run(&(body, query), |(body, query)| {
            rt.block_on(async {
                let r = client
                    .post(format!("{base}/api/v1/mode"))
                    .bearer_auth("t")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                prop_assert!(status < 500, "{} {}", status, text);
                let json: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{status}: {text}: {e}")))?;
                if status == 200 {
                    let req: rapidscale::api::ModeRequest = serde_json::from_slice(&body)
                        .map_err(|e| TestCaseError::fail(format!("200 for {body:?}: {e}")))?;
                    prop_assert_eq!(json["mode"].as_str(), Some(req.mode.as_str()));
                    accepted.set(accepted.get() + 1);
                }
                for path in ["/api/v1/decisions", "/api/v1/series", "/api/v1/status"] {
                    let url = format!("{base}{path}?{}", query.replace('#', "%23"));
                    let r = client.get(url).send().await.unwrap();
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap();
                    prop_assert!(status < 500, "{} {}: {}", path, status, text);
                    prop_assert!(
                        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                        "{} {}: {}",
                        path,
                        status,
                        text
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(async {
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        // Each accepted change is in the audit log.
        let records = rapidscale::audit::read_file(&d.state_dir().join("audit.jsonl")).unwrap();
        let modes = records.iter().filter(|r| r.service == "mode").count() as u64;
        assert_eq!(modes, accepted.get());
        assert!(accepted.get() > 0, "no valid request was generated");
        d.terminate().await;
    });
}
