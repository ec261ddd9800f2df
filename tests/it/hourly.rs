//! The per-hour view and `suggest-schedule`: the minute history restored
//! and served by `/api/v1/hourly`, saved at shutdown, suggestions from it
//! and from the bundled trace, replayed against the current schedule, and
//! the TOML fragment merged into the example config passing check-config.

use std::process::Command;
use std::time::Duration;

use crate::harness::{bin, Daemon};

const TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/nasa_jul95_week2.csv.gz"
);

/// The replay lines of the report: (current, suggested at the p99 chosen by
/// default); the columns are current, p90, p95, p99.
fn replay_figures(report: &str, row: &str) -> (f64, f64) {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(row))
        .unwrap_or_else(|| panic!("no {row:?} line in:\n{report}"));
    let numbers: Vec<f64> = line[row.len() + 1..]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 4, "current and three quantiles: {line}");
    (numbers[0], numbers[3])
}

fn suggest(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("suggest-schedule")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn suggestions_on_the_bundled_trace_beat_a_flat_schedule_in_replay() {
    let dir = tempfile::tempdir().unwrap();
    // The schedule operators leave behind after a surge: one high floor
    // all day.
    let flat = dir.path().join("flat.toml");
    std::fs::write(
        &flat,
        format!(
            "state_dir = \"{}\"\n[ingest.statsd]\nlisten = \"127.0.0.1:0\"\nrequests = [\"http.requests\"]\n[[dynamodb.tables]]\nname = \"posts\"\nread = {{ target = 0.7, min = 1500, max = 5000, per_request = 1 }}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let fragment = dir.path().join("fragment.toml");
    let report = suggest(&[
        "--config",
        flat.to_str().unwrap(),
        "--trace",
        TRACE,
        "--scale",
        "200",
        "--days",
        "1",
        "--out",
        fragment.to_str().unwrap(),
    ]);
    let (cost_now, cost_suggested) = replay_figures(&report, "cost (USD)");
    let (throttled_now, throttled_suggested) = replay_figures(&report, "throttled units");
    assert!(
        cost_suggested < cost_now * 0.9,
        "cost {cost_now} -> {cost_suggested}:\n{report}"
    );
    assert!(
        throttled_suggested <= throttled_now + 0.01 * throttled_now.max(100.0),
        "throttled {throttled_now} -> {throttled_suggested}:\n{report}"
    );
    // Capacity mode: the replay's provisioned cost against every request
    // unit of the same day billed on demand ($0.125 per million reads).
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("posts read "))
        .unwrap_or_else(|| panic!("no capacity-mode line:\n{report}"));
    let figures: Vec<f64> = line["posts read".len() + 1..]
        .split_whitespace()
        .take(3)
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(
        (figures[0] - cost_now).abs() < 0.011,
        "{line} vs {cost_now}"
    );
    let trace = rapidscale::replay::trace::load(
        std::path::Path::new(TRACE),
        &rapidscale::replay::trace::TraceOptions::default(),
    )
    .unwrap();
    let units: f64 = trace.requests[..86_400].iter().sum::<f64>() * 200.0;
    let on_demand = units * 0.125 / 1e6;
    assert!(
        (figures[1] - on_demand).abs() < 0.011,
        "{line} vs {on_demand:.2}"
    );
    assert!(
        figures[2] > 0.0,
        "a typical day from the per-hour profile: {line}"
    );
    assert!(report.contains("provisioned to on-demand at most 4 times in a rolling 24 hours"));
    // The fragment is in the report and in the file, and the night is lower
    // than the day.
    let text = std::fs::read_to_string(&fragment).unwrap();
    assert!(report.contains(&text));
    assert!(text.contains("[[dynamodb.tables.hours]]"), "{text}");
    let config = rapidscale::config::Config::parse("fragment", &format!(
        "state_dir = \"x\"\n[ingest.statsd]\nlisten = \"127.0.0.1:0\"\nrequests = [\"http.requests\"]\n{text}"
    ))
    .unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let hours = &config.dynamodb.tables[0].read.as_ref().unwrap().hours;
    let (lowest, highest) = (
        hours.iter().map(|l| l.min).min().unwrap(),
        hours.iter().map(|l| l.min).max().unwrap(),
    );
    assert!(lowest < highest && highest < 1500, "{hours:?}");
}

#[test]
fn the_fragment_merged_into_the_example_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rapidscale.toml");
    let merged = dir.path().join("merged.toml");
    let report = suggest(&[
        "--config",
        example,
        "--trace",
        TRACE,
        "--scale",
        "100",
        "--days",
        "1",
        "--merged",
        merged.to_str().unwrap(),
    ]);
    assert!(report.contains("group: min instances per hour"), "{report}");
    assert!(
        report.contains("Hours set by hand in the config were kept (posts write, group)"),
        "{report}"
    );
    assert!(report.contains("(p99 chosen, --quantile)"), "{report}");
    // The group is replayed with each schedule: its figures side by side.
    let (hours_now, hours_p99) = replay_figures(&report, "instance-hours");
    assert!(hours_now > 0.0 && hours_p99 > 0.0, "{report}");
    let (failed_now, failed_p99) = replay_figures(&report, "group failed req");
    assert!(failed_now >= 0.0 && failed_p99 >= 0.0, "{report}");
    let check = Command::new(bin())
        .arg("check-config")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&check.stderr),
        std::fs::read_to_string(&merged).unwrap()
    );
    // The merged file has the suggested hours and no trace of the old ones.
    let text = std::fs::read_to_string(&merged).unwrap();
    assert_eq!(text.matches("name = \"posts\"").count(), 1, "{text}");
    assert!(text.contains("[[asg.hours]]"));
    assert!(text.contains("[[dynamodb.tables.indexes.hours]]"));
    // The hard limits and the hand-set hours hold: asg.min = 2 in every
    // hour, and posts write keeps its 14-15 h min of 500.
    let config = rapidscale::config::Config::load(&merged, |_| None).unwrap();
    let asg = config.asg.as_ref().unwrap();
    assert!(asg.hours.iter().all(|h| h.min >= 2), "{:?}", asg.hours);
    let write = config.dynamodb.tables[0].write.as_ref().unwrap();
    assert_eq!((write.hours[14].min, write.hours[15].min), (500, 500));
    assert_eq!(write.hours[14].target, 0.6);
}

/// Two days of minutes at 12 requests/s, 36 during 09:00-09:59 UTC.
fn seed(state: &std::path::Path) -> i64 {
    std::fs::create_dir_all(state).unwrap();
    let end = chrono::Utc::now().timestamp().div_euclid(86_400) * 86_400;
    let start = end - 2 * 86_400;
    let mut csv = String::from("stream,minute,sum,peak,known_seconds\n");
    for m in (start..end).step_by(60) {
        let rate = if (m % 86_400) / 3600 == 9 { 36.0 } else { 12.0 };
        csv.push_str(&format!("statsd,{m},{},{rate},60\n", rate * 60.0));
    }
    std::fs::write(state.join("minutes.csv"), csv).unwrap();
    start
}

#[tokio::test]
async fn the_hourly_view_serves_the_restored_history_and_it_is_saved_at_shutdown() {
    let state = tempfile::tempdir().unwrap();
    let start = seed(state.path());
    let config = format!(
        "state_dir = \"{}\"\n[ingest.statsd]\nlisten = \"127.0.0.1:0\"\nrequests = [\"http.requests\"]\n[api]\nlisten = \"127.0.0.1:0\"\n[[dynamodb.tables]]\nname = \"posts\"\nread = {{ target = 0.5, min = 10, max = 1000, per_request = 2 }}\n[[dynamodb.tables.hours]]\nhours = \"9\"\nread = {{ min = 200 }}\n",
        state.path().display()
    );
    let d = Daemon::start(&config).await;
    let h = d.get_json("/api/v1/hourly").await;
    let req = &h["profile"]["requests"];
    assert_eq!(req["days"].as_array().unwrap().len(), 2, "{h}");
    let row = |hour: u64| {
        req["hours"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["hour"] == hour && r["days"] == "all")
            .unwrap()
            .clone()
    };
    assert_eq!(row(9)["mean"], 36.0);
    assert_eq!(row(9)["day_count"], 2);
    assert_eq!(row(10)["p99"], 12.0);
    // Units of the read capacity: requests x per_request.
    let units = &h["profile"]["units"][0];
    assert_eq!(units["source"], "requests");
    assert_eq!(units["profile"]["hours"][0]["mean"], 24.0);
    // The schedule's capacity in requests/s: min x target / per_request.
    let cap = h["schedule"]["requests_per_second"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(cap[9], 50.0);
    assert_eq!(cap[10], 2.5);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (exit, _) = d.terminate().await;
    assert!(exit.success());

    // Saved again at shutdown: the history is intact for the next start.
    let back = rapidscale::profile::history::load(state.path()).unwrap();
    let rows = &back["statsd"];
    assert_eq!(rows.first().unwrap().0, start);
    assert!(rows.len() >= 2 * 1440, "{}", rows.len());

    // And `suggest-schedule --from-state` reads it: the rest of the day
    // needs 12 x 2 / 0.5 = 48 units; hour 9 is set by hand (min 200) and
    // kept, unless --replace-overrides: then 36 x 2 / 0.5 = 144 (150 at two
    // significant digits).
    let path = state.path().join("rapidscale.toml");
    std::fs::write(&path, &config).unwrap();
    let report = suggest(&["--config", path.to_str().unwrap(), "--from-state"]);
    assert!(report.contains("      9: 200 -> 200"), "{report}");
    assert!(report.contains("0-8: 10 -> 48"), "{report}");
    assert!(report.contains("cost (USD)"), "{report}");
    let report = suggest(&[
        "--config",
        path.to_str().unwrap(),
        "--from-state",
        "--replace-overrides",
    ]);
    assert!(report.contains("      9: 200 -> 150"), "{report}");
    assert!(report.contains("0-8: 10 -> 48"), "{report}");
}
