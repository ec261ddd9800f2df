// Table tests for the format compiler and line parsers.
use super::format::*;

const T0: i64 = 971_211_336; // 2000-10-10T20:55:36Z

#[track_caller]
fn check(format: &str, line: &str, expected: Result<(i64, Option<f64>, Option<u16>), LogLineError>) {
    let f = LogFormat::from_config(format).expect("format compiles");
    let got = f.parse(line.as_bytes()).map(|r| (r.second, r.latency_ms, r.status));
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
    check(fmt, r#"10.0.0.1 [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 rt=0.120 urt="0.100""#, Ok((T0, Some(120.0), Some(200))));
    // Without request_time the upstream time (summed over retries) is the latency.
    let fmt2 = r#"$msec $status ${upstream_response_time}"#;
    check(fmt2, "971211336.250 502 0.010, 0.020", Ok((T0, Some(30.000000000000004), Some(502))));
    check(fmt2, "971211336.250 499 -", Ok((T0, None, Some(499))));
}

#[test]
fn iso8601_format() {
    check("$time_iso8601 $status", "2000-10-10T13:55:36-07:00 200", Ok((T0, None, Some(200))));
    check("$time_iso8601 $status", "2000-10-10T20:55:36Z 200", Ok((T0, None, Some(200))));
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
    check("$msec $request_time", "971211336.2 fast", Err(LogLineError::BadNumber));
}

#[test]
fn json_lines() {
    check("json", r#"{"time_iso8601":"2000-10-10T20:55:36+00:00","status":"200","request_time":"0.005"}"#, Ok((T0, Some(5.0), Some(200))));
    check("json", r#"{"msec":971211336.9,"status":503,"request_time":1.5,"extra":[1,2]}"#, Ok((T0, Some(1500.0), Some(503))));
    check("json", r#"{"timestamp":"971211336","upstream_response_time":"0.002"}"#, Ok((T0, Some(2.0), None)));
    check("json", r#"{"status":200}"#, Err(LogLineError::BadTime));
    check("json", "not json", Err(LogLineError::NotJson));
    check("json", r#"{"msec":971211336,"request_time":"x"}"#, Err(LogLineError::BadNumber));
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
    assert_eq!(parse_time_local(b"29/Feb/2024:23:59:59 +0900"), Some(1_709_218_799));
    assert_eq!(parse_time_local(b"29/Feb/2024:23:59:59"), None);
    assert_eq!(parse_time_iso8601(b"2024-02-29T14:59:59.123Z"), Some(1_709_218_799));
    assert_eq!(parse_msec(b"1709218799.999"), Some(1_709_218_799));
    assert_eq!(parse_msec(b"12a.5"), None);
}
