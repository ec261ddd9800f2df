// Table tests for the format compiler and line parsers.
use super::format::*;

const T0: i64 = 971_211_336; // 2000-10-10T20:55:36Z

#[track_caller]
fn check(
    format: &str,
    line: &str,
    expected: Result<(i64, Option<f64>, Option<u16>), LogLineError>,
) {
    let f = LogFormat::from_config(format).expect("format compiles");
    let got = f
        .parse(line.as_bytes())
        .map(|r| (r.second, r.latency_ms, r.status));
    assert_eq!(got, expected, "{line:?}");
}

#[test]
fn combined_line() {
    check(
        "combined",
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
        Ok((T0, None, Some(200))),
    );
}

#[test]
fn combined_with_unusual_request() {
    check(
        "combined",
        r#"::1 - - [10/Oct/2000:20:55:36 +0000] "GET /a\x22b c HTTP/1.1" 404 0 "-" "curl/8""#,
        Ok((T0, None, Some(404))),
    );
}

#[test]
fn custom_format_with_timings() {
    let fmt = r#"$remote_addr [$time_local] "$request" $status rt=$request_time urt="$upstream_response_time""#;
    check(
        fmt,
        r#"10.0.0.1 [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 rt=0.120 urt="0.100""#,
        Ok((T0, Some(120.0), Some(200))),
    );
    // Without request_time the upstream time (summed over retries) is the latency.
    let fmt2 = r#"$msec $status ${upstream_response_time}"#;
    check(
        fmt2,
        "971211336.250 502 0.010, 0.020",
        Ok((T0, Some(30.0), Some(502))),
    );
    check(fmt2, "971211336.250 499 -", Ok((T0, None, Some(499))));
}

#[test]
fn iso8601_format() {
    check(
        "$time_iso8601 $status",
        "2000-10-10T13:55:36-07:00 200",
        Ok((T0, None, Some(200))),
    );
    check(
        "$time_iso8601 $status",
        "2000-10-10T20:55:36Z 200",
        Ok((T0, None, Some(200))),
    );
}

#[test]
fn mismatches() {
    check("combined", "garbage", Err(LogLineError::Mismatch));
    check("combined", "", Err(LogLineError::Mismatch));
    check(
        "combined",
        r#"1.2.3.4 - - [99/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 1 "-" "-""#,
        Err(LogLineError::BadTime),
    );
    check(
        "combined",
        r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" abc 1 "-" "-""#,
        Err(LogLineError::BadNumber),
    );
    check(
        "$msec $request_time",
        "971211336.2 fast",
        Err(LogLineError::BadNumber),
    );
}

#[test]
fn json_lines() {
    check(
        "json",
        r#"{"time_iso8601":"2000-10-10T20:55:36+00:00","status":"200","request_time":"0.005"}"#,
        Ok((T0, Some(5.0), Some(200))),
    );
    check(
        "json",
        r#"{"msec":971211336.9,"status":503,"request_time":1.5,"extra":[1,2]}"#,
        Ok((T0, Some(1500.0), Some(503))),
    );
    check(
        "json",
        r#"{"timestamp":"971211336","upstream_response_time":"0.002"}"#,
        Ok((T0, Some(2.0), None)),
    );
    check("json", r#"{"status":200}"#, Err(LogLineError::BadTime));
    check("json", "not json", Err(LogLineError::NotJson));
    check(
        "json",
        r#"{"msec":971211336,"request_time":"x"}"#,
        Err(LogLineError::BadNumber),
    );
}

#[test]
fn compile_errors_say_why() {
    for (fmt, fragment) in [
        ("", "empty"),
        ("$remote_addr $status", "no $time_local"),
        ("$time_local$status", "nothing between"),
        ("$time_local ${status", "unclosed"),
        ("$time_local $ x", "not followed by a variable"),
    ] {
        let err = LogFormat::from_config(fmt).expect_err(fmt);
        assert!(err.contains(fragment), "{fmt:?}: {err}");
    }
}

#[test]
fn time_parsers() {
    assert_eq!(parse_time_local(b"01/Jan/1970:00:00:00 +0000"), Some(0));
    assert_eq!(
        parse_time_local(b"29/Feb/2024:23:59:59 +0900"),
        Some(1_709_218_799)
    );
    assert_eq!(parse_time_local(b"29/Feb/2024:23:59:59"), None);
    assert_eq!(
        parse_time_iso8601(b"2024-02-29T14:59:59.123Z"),
        Some(1_709_218_799)
    );
    assert_eq!(parse_msec(b"1709218799.999"), Some(1_709_218_799));
    assert_eq!(parse_msec(b"12a.5"), None);
}

// Follower tests: a real file in a temporary directory, polled by hand.
mod follower {
    use std::io::Write;

    use super::super::{Follower, PollOutcome};
    use crate::config::StartAt;
    use crate::ingest::DropReason;

    struct Seen {
        lines: Vec<String>,
        drops: Vec<DropReason>,
        outcome: PollOutcome,
    }

    fn poll(f: &mut Follower) -> Seen {
        let mut lines = Vec::new();
        let mut drops = Vec::new();
        let outcome = f
            .poll(
                |l| lines.push(String::from_utf8_lossy(l).into_owned()),
                |r| drops.push(r),
            )
            .expect("poll");
        Seen {
            lines,
            drops,
            outcome,
        }
    }

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn start_at_end_skips_history_then_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        append(&path, "old 1\nold 2\n");
        let mut f = Follower::new(&path, StartAt::End, 1024);
        let first = poll(&mut f);
        assert!(first.outcome.opened);
        assert!(first.lines.is_empty());
        append(&path, "new 1\nnew 2\n");
        assert_eq!(poll(&mut f).lines, vec!["new 1", "new 2"]);
    }

    #[test]
    fn end_means_the_end_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        append(&path, "before start\n");
        let mut f = Follower::new(&path, StartAt::End, 1024);
        f.open_at_start().unwrap();
        append(&path, "after start\n");
        assert_eq!(poll(&mut f).lines, vec!["after start"]);
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut f = Follower::new(&path, StartAt::Beginning, 1024);
        append(&path, "one\ntw");
        assert_eq!(poll(&mut f).lines, vec!["one"]);
        append(&path, "o\r\n");
        assert_eq!(poll(&mut f).lines, vec!["two"]);
    }

    #[test]
    fn missing_file_is_waited_for_and_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later.log");
        let mut f = Follower::new(&path, StartAt::End, 1024);
        assert!(poll(&mut f).outcome.missing);
        append(&path, "a\n");
        // start_at only applies to a file that existed at start-up.
        assert_eq!(poll(&mut f).lines, vec!["a"]);
    }

    #[test]
    fn rotation_reads_the_old_file_to_its_end_then_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut f = Follower::new(&path, StartAt::Beginning, 1024);
        append(&path, "1\n");
        assert_eq!(poll(&mut f).lines, vec!["1"]);
        // logrotate: the writer appends once more, then the file is renamed and a new one created.
        append(&path, "2\n3");
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        append(&path, "4\n");
        let seen = poll(&mut f);
        assert!(seen.outcome.rotated);
        assert_eq!(seen.lines, vec!["2", "3", "4"]);
        append(&path, "5\n");
        assert_eq!(poll(&mut f).lines, vec!["5"]);
    }

    #[test]
    fn truncation_restarts_from_the_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut f = Follower::new(&path, StartAt::Beginning, 1024);
        append(&path, "aaaa\nbbbb\n");
        assert_eq!(poll(&mut f).lines.len(), 2);
        // copytruncate
        std::fs::write(&path, "c\n").unwrap();
        let seen = poll(&mut f);
        assert!(seen.outcome.truncated);
        assert_eq!(seen.lines, vec!["c"]);
    }

    #[test]
    fn over_long_lines_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut f = Follower::new(&path, StartAt::Beginning, 16);
        let long = "x".repeat(40);
        append(&path, &format!("short\n{long}\nafter\n"));
        let seen = poll(&mut f);
        assert_eq!(seen.lines, vec!["short", "after"]);
        assert_eq!(seen.drops, vec![DropReason::LineTooLong]);
        // A long line that arrives in pieces is dropped once, without buffering it whole.
        append(&path, &"y".repeat(20));
        let seen = poll(&mut f);
        assert_eq!(seen.drops, vec![DropReason::LineTooLong]);
        append(&path, &format!("{}\nok\n", "y".repeat(20)));
        let seen = poll(&mut f);
        assert_eq!(seen.lines, vec!["ok"]);
        assert!(seen.drops.is_empty());
    }
}

/// Found by the `access_log_line` fuzz target: a status of `2` was taken
/// as one. A status is three digits; anything else drops the line.
#[test]
fn a_status_outside_100_999_is_a_malformed_line() {
    let json = |status: &str| {
        format!(r#"{{"time":"2000-10-10T20:55:36+00:00","status":{status},"request_time":0.012}}"#)
    };
    check("json", &json("2"), Err(LogLineError::BadNumber));
    check("json", &json("200.5"), Err(LogLineError::BadNumber));
    check("json", &json("\"2\""), Err(LogLineError::BadNumber));
    check("json", &json("503"), Ok((T0, Some(12.0), Some(503))));
    check(
        "combined",
        r#"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 20 1 "-" "-""#,
        Err(LogLineError::BadNumber),
    );
}

/// Found by the `log_format` fuzz target: a `$msec` with a long fraction
/// overflowed the digit parser (a panic in debug builds, a wrong value in
/// release ones).
#[test]
fn a_very_long_number_is_malformed_not_an_overflow() {
    assert_eq!(parse_msec(b"1700000000.12345678901234567890"), None);
    assert_eq!(parse_msec(b"1700000000.123"), Some(1_700_000_000));
    let f = LogFormat::from_config("$msec $status").unwrap();
    assert!(f.parse(b"1700000000.99999999999999999999 200").is_err());
}
