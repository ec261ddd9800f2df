// Table tests for config loading: the example is valid, and every kind of
// mistake is reported with its key, position and reason, all at once.
use super::*;
use std::time::Duration;

const EXAMPLE: &str = include_str!("../../config/rapidscale.toml");

fn problems(text: &str) -> Vec<ConfigProblem> {
    match Config::parse("test.toml", text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid(p)) => p,
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Asserts that `text` is rejected with a problem at `line` naming `key`
/// whose reason contains `fragment`.
#[track_caller]
fn check_rejects(text: &str, line: usize, key: &str, fragment: &str) {
    let found = problems(text);
    assert!(
        found
            .iter()
            .any(|p| p.line == line && p.key == key && p.reason.contains(fragment)),
        "expected {key} at line {line} with {fragment:?}; got:\n{}",
        found
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

const MINIMAL_TABLE: &str = r#"
[ingest.statsd]
listen = "127.0.0.1:8125"
requests = ["http.requests"]
[api]
listen = "127.0.0.1:9470"
[[dynamodb.tables]]
name = "posts"
read = { target = 0.7, min = 5, max = 100, per_request = 1 }
"#;

#[test]
fn example_config_is_valid() {
    let c = Config::parse("rapidscale.toml", EXAMPLE).expect("example is valid");
    assert_eq!(c.mode, Mode::DryRun);
    assert_eq!(c.schedule.timezone, chrono_tz::Asia::Seoul);
    let posts = &c.dynamodb.tables[0];
    let write = posts.write.as_ref().unwrap();
    assert_eq!(
        write.hours[13],
        CapacityLimits {
            target: 0.7,
            min: 5,
            max: 1000
        }
    );
    assert_eq!(
        write.hours[14],
        CapacityLimits {
            target: 0.6,
            min: 500,
            max: 1000
        }
    );
    assert_eq!(
        write.hours[15],
        CapacityLimits {
            target: 0.6,
            min: 500,
            max: 1000
        }
    );
    assert_eq!(write.metric.as_ref().unwrap().name, "ddb.consumed");
    assert_eq!(
        posts.indexes[0].read.as_ref().unwrap().per_request,
        Some(0.2)
    );
    let asg = c.asg.as_ref().unwrap();
    assert_eq!(
        (asg.hours[9].min, asg.hours[14].min, asg.hours[14].max),
        (2, 10, 40)
    );
    assert_eq!(c.ingest.grace, Duration::from_secs(2));
    assert_eq!(c.ingest.access_logs[0].stream, "access_log");
    assert_eq!(c.ingest.status_pages[0].kind, StatusKind::Nginx);
    let streams: Vec<String> = c.statsd_routes().into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        streams,
        vec!["statsd".to_string(), "units:posts:write".to_string()]
    );
}

#[test]
fn minimal_files_are_valid() {
    let c = Config::parse("t.toml", MINIMAL_TABLE).expect("statsd + api + one table");
    assert_eq!(
        c.schedule.timezone,
        chrono_tz::UTC,
        "schedule defaults to UTC"
    );
    assert_eq!(c.aws, AwsConfig::default());
    let only_asg = "[asg]\nname = \"web\"\ntarget_rps_per_instance = 100\nmax = 10\n";
    let c = Config::parse("t.toml", only_asg).expect("only [asg]");
    assert_eq!(
        c.asg.unwrap().hours[0],
        GroupLimits {
            min: 0,
            max: 10,
            target_rps_per_instance: 100.0
        }
    );
    Config::parse("t.toml", "").expect("an empty file is valid");
}

#[test]
fn unknown_key() {
    check_rejects(
        "mode = \"dry-run\"\nmodee = 1\n",
        2,
        "modee",
        "unknown key; did you mean `mode`?",
    );
    check_rejects(
        &format!("{MINIMAL_TABLE}\n[api.extra]\n"),
        11,
        "api.extra",
        "unknown key",
    );
    check_rejects("[[dynamodb.tables]]\nname = \"t\"\nread = { min = 1, max = 2, per_request = 1, tagret = 0.5 }\n", 3, "dynamodb.tables[0].read.tagret", "did you mean `target`?");
    check_rejects(
        "[asg]\nname = \"w\"\ntarget_rps_per_instance = 1\nmax = 2\nstabilisation_down = \"1m\"\n",
        5,
        "asg.stabilisation_down",
        "did you mean `stabilization_down`?",
    );
    // Nothing close: no guess.
    let found = problems("zzzzzz = 1\n");
    assert!(found.iter().any(|p| p.reason == "unknown key"), "{found:?}");
}

#[test]
fn wrong_type() {
    check_rejects("mode = 3\n", 1, "mode", "expected a string, found integer");
    check_rejects(
        "[ingest.statsd]\nlisten = \"127.0.0.1:1\"\nrequests = \"http.requests\"\n",
        3,
        "ingest.statsd.requests",
        "expected an array",
    );
    check_rejects(
        "[asg]\nname = \"w\"\ntarget_rps_per_instance = 10\nmax = \"ten\"\n",
        4,
        "asg.max",
        "expected a non-negative integer, found string",
    );
}

#[test]
fn min_greater_than_max() {
    check_rejects(
        "[[dynamodb.tables]]\nname = \"t\"\nwrite = { min = 50, max = 10, per_request = 1 }\n",
        3,
        "dynamodb.tables[0].write.min",
        "min 50 > max 10",
    );
    let hourly = "[[dynamodb.tables]]\nname = \"t\"\nwrite = { min = 5, max = 100, per_request = 1 }\n[[dynamodb.tables.hours]]\nhours = \"9-10\"\nwrite = { min = 500 }\n";
    check_rejects(
        hourly,
        6,
        "dynamodb.tables[0].hours[0].write.min",
        "min 500 > max 100 (hour 09)",
    );
    check_rejects(
        "[asg]\nname = \"w\"\ntarget_rps_per_instance = 10\nmin = 20\nmax = 10\n",
        4,
        "asg.min",
        "min 20 > max 10",
    );
}

#[test]
fn target_outside_unit_interval() {
    for bad in ["0", "1.5", "-0.2"] {
        let text = format!("[[dynamodb.tables]]\nname = \"t\"\nread = {{ target = {bad}, max = 10, per_request = 1 }}\n");
        check_rejects(
            &text,
            3,
            "dynamodb.tables[0].read.target",
            "must be in (0, 1]",
        );
    }
    Config::parse(
        "t",
        "[[dynamodb.tables]]\nname = \"t\"\nread = { target = 1, max = 10, per_request = 1 }\n",
    )
    .expect("1.0 is allowed");
}

#[test]
fn hour_ranges() {
    let base = "[[dynamodb.tables]]\nname = \"t\"\nwrite = { max = 100, per_request = 1 }\n";
    check_rejects(
        &format!("{base}[[dynamodb.tables.hours]]\nhours = \"20-24\"\nwrite = {{ min = 5 }}\n"),
        5,
        "dynamodb.tables[0].hours[0].hours",
        "outside 0-23",
    );
    let overlapping = format!(
        "{base}[[dynamodb.tables.hours]]\nhours = \"8-12\"\nwrite = {{ min = 5 }}\n[[dynamodb.tables.hours]]\nhours = \"12-13\"\nwrite = {{ min = 6 }}\n"
    );
    check_rejects(
        &overlapping,
        8,
        "dynamodb.tables[0].hours[1].hours",
        "overlap",
    );
    check_rejects("[asg]\nname = \"w\"\ntarget_rps_per_instance = 1\nmax = 9\n[[asg.hours]]\nhours = \"1-3\"\nmin=1\n[[asg.hours]]\nhours = \"3\"\nmin=2\n", 9, "asg.hours[1].hours", "overlap");
}

#[test]
fn unknown_time_zone() {
    check_rejects(
        "[schedule]\ntimezone = \"Mars/Olympus\"\n",
        2,
        "schedule.timezone",
        "unknown time zone",
    );
}

#[test]
fn demand_source_required() {
    check_rejects(
        "[[dynamodb.tables]]\nname = \"t\"\nread = { max = 10 }\n",
        3,
        "dynamodb.tables[0].read",
        "neither `per_request` nor `metric`",
    );
    check_rejects(
        "[[dynamodb.tables]]\nname = \"t\"\nread = { max = 10, metric = \"m\" }\n",
        3,
        "dynamodb.tables[0].read.metric",
        "needs [ingest.statsd]",
    );
}

#[test]
fn unparsable_log_format() {
    let text = "[[ingest.access_log]]\npath = \"/tmp/x.log\"\nformat = \"$remote_addr $status\"\n";
    check_rejects(text, 3, "ingest.access_log[0].format", "no $time_local");
}

#[test]
fn durations_addresses_and_enums() {
    check_rejects(
        "[ingest]\ngrace = \"soon\"\n",
        2,
        "ingest.grace",
        "invalid duration",
    );
    check_rejects(
        "[ingest]\ngrace = 2\n",
        2,
        "ingest.grace",
        "expected a string",
    );
    check_rejects(
        "[ingest.statsd]\nlisten = \"localhost\"\n",
        2,
        "ingest.statsd.listen",
        "not an address",
    );
    check_rejects("mode = \"yolo\"\n", 1, "mode", "\"dry-run\" or \"apply\"");
    check_rejects(
        "[[ingest.status_page]]\nurl = \"http://x/\"\nkind = \"apache\"\n",
        3,
        "ingest.status_page[0].kind",
        "\"nginx\" or \"php-fpm\"",
    );
    check_rejects(
        "[ingest.statsd]\nlisten = \"127.0.0.1:1\"\nrequests = [\"a{b\"]\n",
        3,
        "ingest.statsd.requests[0]",
        "missing closing",
    );
}

#[test]
fn the_decrease_quota_is_checked_and_caps_the_reserve() {
    check_rejects(
        "[dynamodb]\ndecrease_quota = 0\n",
        2,
        "dynamodb.decrease_quota",
        "1 to 1000",
    );
    let text = format!("[dynamodb]\ndecrease_quota = 3\nreserve = 9\n{MINIMAL_TABLE}");
    let c = Config::parse("t.toml", &text).expect("valid");
    assert_eq!(c.dynamodb.policy.decrease_quota, 3);
    assert_eq!(c.dynamodb.policy.reserve, 3);
    assert_eq!(
        Config::parse("t.toml", MINIMAL_TABLE)
            .unwrap()
            .dynamodb
            .policy
            .decrease_quota,
        27
    );
}

#[test]
fn missing_required_keys() {
    check_rejects(
        "[[dynamodb.tables]]\nread = { max = 10, per_request = 1 }\n",
        1,
        "dynamodb.tables[0].name",
        "missing",
    );
    check_rejects(
        "[[dynamodb.tables]]\nname = \"t\"\nread = { per_request = 1 }\n",
        3,
        "dynamodb.tables[0].read.max",
        "missing",
    );
    check_rejects(
        "[asg]\nname = \"w\"\nmax = 3\n",
        1,
        "asg.target_rps_per_instance",
        "missing",
    );
}

#[test]
fn every_problem_is_listed_in_file_order() {
    let text = r#"mode = "sometimes"
[schedule]
timezone = "Nowhere/Special"
[[dynamodb.tables]]
name = "posts"
read = { target = 2.0, min = 10, max = 5, per_request = 1 }
write = { max = 10 }
colour = "blue"
"#;
    let found = problems(text);
    let keys: Vec<(&str, usize)> = found.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        keys,
        vec![
            ("mode", 1),
            ("schedule.timezone", 3),
            ("dynamodb.tables[0].read.target", 6),
            ("dynamodb.tables[0].read.min", 6),
            ("dynamodb.tables[0].write", 7),
            ("dynamodb.tables[0].colour", 8),
        ]
    );
    let first = found[0].to_string();
    assert_eq!(
        first,
        "test.toml:1:8: mode: expected \"dry-run\" or \"apply\", got \"sometimes\""
    );
}

#[test]
fn syntax_errors_are_located() {
    let found = problems("mode = \"dry-run\"\n[api\nlisten = 1\n");
    assert!(!found.is_empty());
    assert_eq!(found[0].line, 2, "{found:?}");
}

#[test]
fn duplicate_streams_and_tables() {
    let text = "[ingest.statsd]\nlisten = \"127.0.0.1:1\"\nstream = \"web\"\n[[ingest.access_log]]\npath = \"/x\"\nstream = \"web\"\n";
    check_rejects(
        text,
        6,
        "ingest.access_log[0].stream",
        "used by another source",
    );
    let tables = "[[dynamodb.tables]]\nname = \"t\"\nread = { max = 1, per_request = 1 }\n[[dynamodb.tables]]\nname = \"t\"\nread = { max = 1, per_request = 1 }\n";
    check_rejects(tables, 4, "dynamodb.tables[1].name", "configured twice");
}

#[test]
fn environment_overrides() {
    let env = |k: &str| match k {
        "RAPIDSCALE_AWS_ENDPOINT_URL" => Some("http://127.0.0.1:4566".to_string()),
        "RAPIDSCALE_API_TOKEN" => Some("s3cret".to_string()),
        "RAPIDSCALE_MODE" => Some("apply".to_string()),
        _ => None,
    };
    let mut c = Config::parse("t", MINIMAL_TABLE).unwrap();
    c.apply_env(env).unwrap();
    assert_eq!(c.aws.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
    assert_eq!(c.api.as_ref().unwrap().token.as_deref(), Some("s3cret"));
    assert_eq!(c.mode, Mode::Apply);
    let bad = |k: &str| (k == "RAPIDSCALE_MODE").then(|| "maybe".to_string());
    let errs = c.apply_env(bad).unwrap_err();
    assert_eq!(errs[0].key, "mode");
    assert_eq!(errs[0].file, "$RAPIDSCALE_MODE");
}

#[test]
fn coordination_needs_a_table_and_defaults_the_cluster_to_the_group() {
    check_rejects(
        "[coordination]\ncluster = \"web\"\n",
        1,
        "coordination.table",
        "missing: the DynamoDB table",
    );
    let c = Config::parse(
        "t.toml",
        "[asg]\nname = \"web\"\ntarget_rps_per_instance = 100\nmax = 4\n[coordination]\ntable = \"coord\"\n",
    )
    .unwrap();
    assert_eq!(
        c.coordination,
        Some(CoordinationConfig {
            table: "coord".into(),
            cluster: "web".into(),
            instance_id: None,
            stale_after: std::time::Duration::from_secs(3),
            lease: std::time::Duration::from_secs(10),
            renew_every: std::time::Duration::from_secs(2),
        })
    );
    let c = Config::parse("t.toml", "[coordination]\ntable = \"coord\"\n").unwrap();
    assert_eq!(c.coordination.unwrap().cluster, "default");
}

#[test]
fn pricing_defaults_to_the_us_east_1_list_price_and_rejects_negatives() {
    let c = Config::parse("t.toml", "").unwrap();
    assert_eq!(c.pricing, Pricing::default());
    assert_eq!(c.pricing.read_unit_hour, 0.00013);
    check_rejects(
        "[pricing]\nread_unit_hour = -1.0\n",
        2,
        "pricing.read_unit_hour",
        "must be a price >= 0",
    );
}

#[test]
fn cloudwatch_publishing_is_off_by_default_and_dimensions_are_name_value() {
    let c = Config::parse("t.toml", "").unwrap();
    assert!(!c.cloudwatch.publish);
    assert_eq!(
        c.cloudwatch.publish_interval,
        std::time::Duration::from_secs(10)
    );
    let c = Config::parse(
        "t.toml",
        "[cloudwatch]\npublish = true\nnamespace = \"app\"\ndimensions = [\"Env=prod\"]\n",
    )
    .unwrap();
    assert_eq!(c.cloudwatch.namespace, "app");
    assert_eq!(
        c.cloudwatch.dimensions,
        [("Env".to_string(), "prod".to_string())]
    );
    check_rejects(
        "[cloudwatch]\ndimensions = [\"Env\"]\n",
        2,
        "cloudwatch.dimensions[0]",
        "expected \"Name=Value\"",
    );
}

#[test]
fn per_request_auto_takes_a_fallback_and_the_fit_thresholds_are_checked() {
    let c = Config::parse(
        "t.toml",
        "[[dynamodb.tables]]\nname = \"t\"\nread = { max = 10, per_request = \"auto\", per_request_fallback = 0.5 }\nwrite = { max = 10, per_request = \"auto\" }\n",
    )
    .unwrap();
    let t = &c.dynamodb.tables[0];
    let (read, write) = (t.read.as_ref().unwrap(), t.write.as_ref().unwrap());
    assert!(read.auto && write.auto);
    assert_eq!((read.per_request, write.per_request), (Some(0.5), None));
    assert!(c.cloudwatch.observe);
    assert_eq!(c.cloudwatch.min_samples, 30);
    check_rejects(
        "[[dynamodb.tables]]\nname = \"t\"\nread = { max = 10, per_request = \"often\" }\n",
        3,
        "dynamodb.tables[0].read.per_request",
        "expected a number or \"auto\"",
    );
    check_rejects(
        "[[dynamodb.tables]]\nname = \"t\"\nread = { max = 10, per_request = 1, per_request_fallback = 0.5 }\n",
        3,
        "dynamodb.tables[0].read.per_request_fallback",
        "only meaningful with per_request = \"auto\"",
    );
    check_rejects(
        "[cloudwatch]\nmin_r2 = 1.5\nmin_samples = 2\ncalibrate_window = \"1m\"\n",
        2,
        "cloudwatch.min_r2",
        "between 0 and 1",
    );
    check_rejects(
        "[cloudwatch]\nmin_r2 = 1.5\nmin_samples = 2\ncalibrate_window = \"1m\"\n",
        3,
        "cloudwatch.min_samples",
        "at least 3",
    );
    check_rejects(
        "[cloudwatch]\nmin_r2 = 1.5\nmin_samples = 2\ncalibrate_window = \"1m\"\n",
        4,
        "cloudwatch.calibrate_window",
        "between 10 minutes and 8 days",
    );
}

/// A group of at least `min` instances, with `extra` config lines first.
fn fleet_config(extra: &str, min: u32) -> String {
    format!(
        r#"{extra}
[ingest.statsd]
listen = "127.0.0.1:8125"
requests = ["http.requests"]
[asg]
name = "web"
min = {min}
max = 10
target_rps_per_instance = 100
"#
    )
}

#[test]
fn a_fleet_that_cannot_be_seen_is_refused_in_apply_mode() {
    // Single (the default without [coordination]) in apply mode, with a
    // group that keeps two instances: decisions would be half the need.
    check_rejects(
        &fleet_config("mode = \"apply\"", 2),
        5,
        "fleet.view",
        "sees one instance's traffic, but the group (or an ECS service) keeps at least 2 instances",
    );
    check_rejects(
        &fleet_config("mode = \"apply\"\n[fleet]\nview = \"single\"", 3),
        3,
        "fleet.view",
        "set [fleet] view = \"sidecar\" with [coordination]",
    );
    // The mode of one resource is enough.
    let text = fleet_config("", 2).replace("name = \"web\"", "name = \"web\"\nmode = \"apply\"");
    check_rejects(&text, 5, "fleet.view", "about 2x too small");
    // Dry run, a group of one, or a central view: accepted.
    assert!(problems(&fleet_config("", 2)).is_empty());
    assert!(problems(&fleet_config("mode = \"apply\"", 1)).is_empty());
    let c = Config::parse(
        "t.toml",
        &fleet_config("mode = \"apply\"\n[fleet]\nview = \"central\"", 2),
    )
    .unwrap();
    assert_eq!(c.fleet, FleetView::Central);
}

#[test]
fn the_fleet_view_defaults_to_sidecar_with_coordination_and_needs_it() {
    let c = Config::parse(
        "t.toml",
        &fleet_config("mode = \"apply\"\n[coordination]\ntable = \"coord\"", 2),
    )
    .unwrap();
    assert_eq!(c.fleet, FleetView::Sidecar);
    let c = Config::parse("t.toml", &fleet_config("", 2)).unwrap();
    assert_eq!(c.fleet, FleetView::Single);
    check_rejects(
        &fleet_config("[fleet]\nview = \"sidecar\"", 1),
        2,
        "fleet.view",
        "needs [coordination]",
    );
    check_rejects(
        &fleet_config("[fleet]\nview = \"everyone\"", 1),
        2,
        "fleet.view",
        "expected \"single\", \"central\" or \"sidecar\"",
    );
}

#[test]
fn group_rate_rules_tolerance_and_renamed_windows() {
    let text = "[asg]\nname = \"w\"\ntarget_rps_per_instance = 100\nmax = 50\ntolerance = 0.05\nstabilization_up = \"10s\"\nstabilization_down = \"120s\"\nscale_up_select = \"min\"\n[[asg.scale_up]]\ninstances = 4\nper = \"15s\"\n[[asg.scale_up]]\npercent = 100\nper = \"15s\"\n[[asg.scale_down]]\npercent = 50\nper = \"60s\"\n";
    let c = Config::parse("t.toml", text).expect("valid");
    let p = c.asg.unwrap().policy;
    assert_eq!(p.tolerance, 0.05);
    assert_eq!(p.up_window, Duration::from_secs(10));
    assert_eq!(p.stabilization, Duration::from_secs(120));
    assert_eq!(p.scale_up.select, Select::Min);
    assert_eq!(
        p.scale_up.rules,
        [
            RateRule {
                amount: RateAmount::Instances(4),
                period: Duration::from_secs(15)
            },
            RateRule {
                amount: RateAmount::Percent(100.0),
                period: Duration::from_secs(15)
            }
        ]
    );
    assert_eq!(p.scale_down.rules[0].amount, RateAmount::Percent(50.0));
    // Defaults: no scale-up limit, 10 % per 15 s down, 10 % tolerance;
    // the older names still read.
    let old = "[asg]\nname = \"w\"\ntarget_rps_per_instance = 100\nmax = 50\nup_window = \"7s\"\nstabilization = \"90s\"\nmax_step_in = 0.2\n";
    let p = Config::parse("t.toml", old)
        .expect("valid")
        .asg
        .unwrap()
        .policy;
    assert_eq!(
        (p.up_window, p.stabilization),
        (Duration::from_secs(7), Duration::from_secs(90))
    );
    assert!(p.scale_up.rules.is_empty());
    assert_eq!(p.scale_down.rules[0].amount, RateAmount::Percent(20.0));
    assert_eq!(p.tolerance, 0.1);
    // Mistakes, all at once, each at its line.
    let bad = "[asg]\nname = \"w\"\ntarget_rps_per_instance = 100\nmax = 50\nup_window = \"7s\"\nstabilization_up = \"9s\"\nscale_down_select = \"most\"\n[[asg.scale_up]]\ninstances = 0\nper = \"15s\"\n[[asg.scale_up]]\npercent = 10\n";
    check_rejects(bad, 5, "asg.up_window", "older name of `stabilization_up`");
    check_rejects(bad, 7, "asg.scale_down_select", "max");
    check_rejects(bad, 9, "asg.scale_up[0].instances", "at least 1");
    check_rejects(bad, 11, "asg.scale_up[1].per", "missing");
}

#[test]
fn ecs_services_are_read_with_their_hours_and_checked() {
    let text = "[ingest.statsd]\nlisten = \"127.0.0.1:8125\"\nrequests = [\"http.requests\"]\n[[ecs.services]]\ncluster = \"app\"\nservice = \"web\"\ntarget_rps_per_task = 50\nmin = 2\nmax = 30\nstabilization_down = \"120s\"\n[[ecs.services.hours]]\nhours = \"9-18\"\nmin = 6\n";
    let c = Config::parse("t.toml", text).expect("valid");
    let s = &c.ecs_services[0];
    assert_eq!((s.cluster.as_str(), s.service.as_str()), ("app", "web"));
    assert_eq!(s.fleet.hours[10].min, 6);
    assert_eq!(s.fleet.hours[3].min, 2);
    assert_eq!(s.fleet.hours[3].target_rps_per_instance, 50.0);
    assert_eq!(s.fleet.policy.stabilization, Duration::from_secs(120));
    // Missing keys, a group's keys on a service, a service listed twice,
    // and "single" in apply mode with a service of 2 tasks or more.
    let bad = "mode = \"apply\"\n[ingest.statsd]\nlisten = \"127.0.0.1:8125\"\nrequests = [\"http.requests\"]\n[[ecs.services]]\ncluster = \"app\"\nname = \"web\"\nmax = 3\n[[ecs.services]]\ncluster = \"app\"\nservice = \"api\"\ntarget_rps_per_task = 50\nmin = 2\nmax = 10\n[[ecs.services]]\ncluster = \"app\"\nservice = \"api\"\ntarget_rps_per_task = 50\nmax = 10\n";
    check_rejects(bad, 5, "ecs.services[0].service", "missing");
    check_rejects(bad, 5, "ecs.services[0].target_rps_per_task", "missing");
    check_rejects(bad, 7, "ecs.services[0].name", "unknown key");
    check_rejects(bad, 17, "ecs.services[2].service", "listed twice");
    check_rejects(bad, 5, "fleet.view", "an ECS service");
}
