// The table decider: the choice of demand source, budgets per index, no
// decrease on an estimate, and whole steps over a store and a cloud view.
use std::collections::BTreeMap;

use super::*;
use crate::cloud::tracker::Tracked;
use crate::cloud::IndexDescription;
use crate::config::FleetView;
use crate::mode::{Overrides, RuntimeMode};
use crate::policy::dynamodb::{Evidence, Rule};
use crate::policy::spend::Outlook;
use crate::series::{StoreConfig, StreamKind};

fn view(value: f64, silent_for: Option<i64>) -> DemandView {
    DemandView {
        seconds: vec![value; 10],
        partial_rate: None,
        silent_for,
    }
}

#[test]
fn reported_units_win_while_fresh() {
    let (v, source) = pick_demand(Some(view(7.0, Some(0))), Some(view(50.0, Some(0))), 10, 5);
    assert_eq!((source, v.seconds[0]), (DemandSource::Metric, 7.0));
}

#[test]
fn requests_take_over_when_reported_units_go_stale() {
    let (v, source) = pick_demand(Some(view(7.0, Some(60))), Some(view(50.0, Some(0))), 10, 5);
    assert_eq!((source, v.seconds[0]), (DemandSource::Requests, 50.0));
}

#[test]
fn nothing_fresh_is_nothing_known() {
    let (v, source) = pick_demand(Some(view(7.0, Some(60))), Some(view(50.0, None)), 10, 5);
    assert_eq!(source, DemandSource::None);
    assert!(
        v.is_stale(5),
        "the stale view goes to the policy, which holds"
    );
    let (v, source) = pick_demand(None, None, 10, 5);
    assert_eq!((source, v.seconds.len()), (DemandSource::None, 10));
    assert!(v.seconds.iter().all(|x| x.is_nan()));
}

fn down(to: u64) -> OpVerdict {
    OpVerdict::Down {
        to,
        rule: Rule::LowDemand,
        evidence: Evidence {
            demand: Some(1.0),
            threshold: Some(5.0),
            window_s: 900,
        },
        worth_it: true,
    }
}

fn reading(exact: bool) -> FleetReading {
    FleetReading {
        view: FleetView::Sidecar,
        factor: 1.5,
        exact,
        unseen: None,
        estimate: None,
    }
}

#[test]
fn no_decrease_on_an_estimated_fleet() {
    assert_eq!(
        hold_decreases_on_estimates(down(10), &reading(false)),
        OpVerdict::Hold {
            reason: HoldReason::FleetEstimated
        }
    );
    assert_eq!(
        hold_decreases_on_estimates(down(10), &reading(true)),
        down(10)
    );
    let hold = OpVerdict::Hold {
        reason: HoldReason::InBand,
    };
    assert_eq!(
        hold_decreases_on_estimates(hold.clone(), &reading(false)),
        hold
    );
}

const T0: i64 = 1_764_410_400; // 2025-11-29T10:00:00Z

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + s, 0).unwrap()
}

/// A config in `mode` with StatsD requests, `burst_share` and `tables`
/// (TOML from `[[dynamodb.tables]]` on).
fn parsed(mode: &str, burst_share: f64, tables: &str) -> Arc<Config> {
    let text = format!(
        "mode = \"{mode}\"\n[ingest.statsd]\nlisten = \"127.0.0.1:0\"\nrequests = [\"http.requests\"]\n[dynamodb]\nburst_share = {burst_share}\n{tables}"
    );
    Arc::new(Config::parse("t.toml", &text).unwrap())
}

fn config(mode: &str) -> Arc<Config> {
    parsed(
        mode,
        0.0,
        r#"
[[dynamodb.tables]]
name = "posts"
read = { target = 0.5, min = 1, max = 10000, per_request = 1 }
[[dynamodb.tables.indexes]]
name = "by_user"
read = { target = 0.5, min = 1, max = 10000, per_request = 1 }
"#,
    )
}

/// The actions of a step that call AWS.
fn calls(step: &TableStep) -> Vec<&TableAction> {
    step.actions
        .iter()
        .filter(|a| a.disposition == Disposition::Apply)
        .collect()
}

/// A store whose requests stream has had `rps` every second up to `upto`.
fn store(rps: f64, upto: i64) -> SeriesStore {
    let mut s = SeriesStore::new(StoreConfig::default());
    let id = s.register("statsd", StreamKind::Push);
    for t in 0..upto {
        s.observe(id, T0 + t, Observation::Count(rps), T0 + t)
            .unwrap();
        s.seal(T0 + t);
    }
    s
}

/// The table and its index at read 10, described at `described`.
fn cloud(status: &str, described: i64) -> CloudView {
    let desc = TableDescription {
        name: "posts".into(),
        status: status.into(),
        billing_mode: BillingMode::Provisioned,
        provisioned: Some(Throughput { read: 10, write: 5 }),
        indexes: vec![IndexDescription {
            name: "by_user".into(),
            status: "ACTIVE".into(),
            provisioned: Some(Throughput { read: 10, write: 5 }),
            decreases_today: None,
            last_decrease: None,
            warm: None,
            on_demand_max: None,
        }],
        decreases_today: None,
        last_increase: None,
        last_decrease: None,
        warm: None,
        on_demand_max: None,
    };
    CloudView {
        tables: BTreeMap::from([(
            "posts".to_string(),
            Tracked {
                current: Some(desc),
                last_ok: Some(at(described)),
                last_error: None,
            },
        )]),
        auto_scaling: Tracked {
            current: Some(Vec::new()),
            last_ok: Some(at(described)),
            last_error: None,
        },
        ..CloudView::default()
    }
}

fn common(now: i64, unseen: Option<&str>) -> Common {
    Common {
        now: at(now),
        overrides: Overrides::default(),
        may_act: None,
        audit_unavailable: None,
        fleet: FleetReading {
            unseen: unseen.map(str::to_string),
            ..FleetReading::own()
        },
        calibration: Vec::new(),
        cloudwatch_throttled: Vec::new(),
        announcements: Vec::new(),
        approved: None,
    }
}

use crate::series::Observation;

#[test]
fn table_and_index_increases_go_in_one_call() {
    let mut d = TableDecider::new(config("apply"));
    let s = store(100.0, 40);
    let mut budget = BudgetStore::in_memory();
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &common(30, None));
    // Both the table and the index want 200+ units: one UpdateTable call
    // carries both.
    let applied = calls(&step);
    assert_eq!(applied.len(), 1, "{:?}", step.actions);
    let call = &applied[0].update;
    assert_eq!(call.resource(), "posts");
    let members: Vec<_> = call.members.iter().map(|m| m.index.clone()).collect();
    assert_eq!(members, [None, Some("by_user".to_string())]);
    assert!(!call.decrease);
    assert!(call
        .members
        .iter()
        .all(|m| m.changes.iter().all(|c| c.to > c.from)));
    // While the call is in flight both wait, each recorded once.
    let waiting = Disposition::Record {
        outcome: Outcome::Skipped,
        reason: Some("an update of this table is in flight".into()),
    };
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &common(30, None));
    let got: Vec<_> = step
        .actions
        .iter()
        .map(|a| (a.update.resource(), a.disposition.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("posts".to_string(), waiting.clone()),
            ("posts/by_user".to_string(), waiting)
        ]
    );
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &common(30, None));
    assert!(step.actions.is_empty(), "{:?}", step.actions);
    d.completed("posts", Outcome::Applied, at(30));
}

#[test]
fn a_dry_run_recommends_once_and_gates_record_why() {
    let mut d = TableDecider::new(config("dry-run"));
    let s = store(100.0, 40);
    let mut budget = BudgetStore::in_memory();
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &common(30, None));
    let recorded: Vec<_> = step.actions.iter().map(|a| a.disposition.clone()).collect();
    assert_eq!(
        recorded,
        vec![
            Disposition::Record {
                outcome: Outcome::Recommended,
                reason: None
            };
            2
        ]
    );
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &common(30, None));
    assert!(
        step.actions.is_empty(),
        "an unchanged recommendation is recorded once"
    );

    // In apply mode, a fleet that cannot be seen gates every change.
    let mut d = TableDecider::new(config("apply"));
    let step = d.step(
        &s,
        &cloud("ACTIVE", 29),
        &mut budget,
        &common(30, Some("3 serve")),
    );
    assert!(step.actions.iter().all(|a| matches!(
        &a.disposition,
        Disposition::Record { outcome: Outcome::Skipped, reason: Some(r) } if r == "fleet not seen: 3 serve"
    )));
    // UPDATING and old state gate too, in that order.
    let step = d.step(&s, &cloud("UPDATING", -1), &mut budget, &common(30, None));
    assert_eq!(
        step.advice[0].gate.as_deref(),
        Some("table state is older than 3 poll intervals: AWS unavailable?")
    );
    let step = d.step(&s, &cloud("UPDATING", 29), &mut budget, &common(30, None));
    assert_eq!(
        step.advice[0].gate.as_deref(),
        Some("table is UPDATING: waiting for ACTIVE")
    );
}

#[test]
fn an_operator_pause_and_a_failed_change_hold_the_resource() {
    let mut d = TableDecider::new(config("apply"));
    let s = store(100.0, 40);
    let mut budget = BudgetStore::in_memory();
    let mut c = common(30, None);
    c.overrides
        .resources
        .insert("posts".into(), RuntimeMode::Paused);
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &c);
    assert_eq!(
        step.advice[0].gate.as_deref(),
        Some("paused by an operator")
    );
    // The index follows its table's override.
    assert_eq!(
        step.advice[1].gate.as_deref(),
        Some("paused by an operator")
    );
    d.completed("posts", Outcome::Failed, at(30));
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &common(31, None));
    let gate = step.advice[0].gate.clone();
    assert!(
        gate.as_deref()
            .is_some_and(|g| g.starts_with("1 change(s) in a row failed")),
        "{gate:?}"
    );
}

#[test]
fn each_index_has_its_own_ledger() {
    let now = at(0);
    let mut book = BudgetStore::in_memory();
    // The table has spent its burst; the index has spent nothing.
    for m in 0..4 {
        book.ledger_mut("posts")
            .record(now - chrono::TimeDelta::minutes(30 - m));
    }
    let downs = [(Op::Read, 100, down(40))];
    let p = crate::config::DynamoPolicy::default();
    assert!(matches!(
        plan(&downs, &book.ledger("posts"), now, &p, &Outlook::default()),
        Plan::WaitForBudget { .. }
    ));
    assert!(matches!(
        plan(
            &downs,
            &book.ledger("posts/by_user"),
            now,
            &p,
            &Outlook::default()
        ),
        Plan::Update { decrease: true, .. }
    ));
}

#[test]
fn a_capacity_aws_auto_scales_is_recommended_never_applied() {
    let s = store(100.0, 40);
    let mut budget = BudgetStore::in_memory();
    // The index is registered with Application Auto Scaling; the table is not.
    let mut view = cloud("ACTIVE", 29);
    view.auto_scaling.current = Some(vec![crate::cloud::ScalableTarget {
        resource_id: "table/posts/index/by_user".into(),
        dimension: "dynamodb:index:ReadCapacityUnits".into(),
    }]);
    let mut d = TableDecider::new(config("apply"));
    let step = d.step(&s, &view, &mut budget, &common(30, None));
    let got: BTreeMap<String, Disposition> = step
        .actions
        .iter()
        .map(|a| (a.update.resource(), a.disposition.clone()))
        .collect();
    assert_eq!(got["posts"], Disposition::Apply, "{got:?}");
    // In apply mode the index's change is recorded as a recommendation,
    // with the reason it is not applied.
    let Disposition::Record {
        outcome: Outcome::Recommended,
        reason: Some(why),
    } = &got["posts/by_user"]
    else {
        panic!("the index is recommended, not applied: {got:?}")
    };
    assert!(
        why.contains("registered with Application Auto Scaling (ReadCapacityUnits)")
            && why.contains("recommending only"),
        "{why}"
    );
    let gates: Vec<_> = step.advice.iter().map(|a| a.gate.clone()).collect();
    assert!(
        gates[0].is_none() && gates[1].as_deref() == Some(why.as_str()),
        "{gates:?}"
    );

    // Before Application Auto Scaling has been read, nothing is applied.
    let mut unknown = cloud("ACTIVE", 29);
    unknown.auto_scaling.current = None;
    let mut d = TableDecider::new(config("apply"));
    let step = d.step(&s, &unknown, &mut budget, &common(30, None));
    assert!(
        step.actions
            .iter()
            .all(|a| a.disposition != Disposition::Apply),
        "{:?}",
        step.actions
    );

    // A dry run recommends both, as it would without AWS auto scaling.
    let mut d = TableDecider::new(config("dry-run"));
    let step = d.step(&s, &view, &mut budget, &common(30, None));
    assert!(step.actions.iter().all(|a| a.disposition
        == Disposition::Record {
            outcome: Outcome::Recommended,
            reason: None
        }));
    assert_eq!(step.actions.len(), 2);
}

/// `config` with betting on burst on, and the app's throttled reads of
/// `posts` counted.
fn betting_config() -> Arc<Config> {
    parsed(
        "apply",
        0.5,
        r#"
[[dynamodb.tables]]
name = "posts"
read = { target = 0.5, min = 1, max = 10000, per_request = 1, throttled = "ddb.throttled{table:posts,op:read}" }
"#,
    )
}

#[test]
fn a_bet_is_recorded_once_and_throttling_ends_it_within_a_second() {
    let mut d = TableDecider::new(betting_config());
    let mut budget = BudgetStore::in_memory();
    let mut s = SeriesStore::new(StoreConfig::default());
    let requests = s.register("statsd", StreamKind::Push);
    let throttled = s.register(&throttled_stream("posts", None, "read"), StreamKind::Push);
    let second = |s: &mut SeriesStore, t: i64, rps: f64| {
        s.observe(requests, T0 + t, Observation::Count(rps), T0 + t)
            .unwrap();
        s.seal(T0 + t);
    };
    // Ten minutes inside the band (read 10, band top 5.5) fill the bucket.
    for t in 0..600 {
        second(&mut s, t, 5.0);
    }
    d.step(&s, &cloud("ACTIVE", 599), &mut budget, &common(600, None));
    // Then 9 req/s: above the band, well within what half a full bucket
    // carries. Nothing is applied; the bet is recorded once, after 10 s.
    let mut held = Vec::new();
    for t in 600..625 {
        second(&mut s, t, 9.0);
        let step = d.step(&s, &cloud("ACTIVE", t), &mut budget, &common(t + 1, None));
        for a in step
            .actions
            .iter()
            .filter(|a| a.update.resource() == "posts")
        {
            assert_ne!(a.disposition, Disposition::Apply, "at {t}: {a:?}");
            if let Disposition::Record {
                outcome: Outcome::Held,
                ..
            } = a.disposition
            {
                held.push(t);
            }
        }
    }
    assert_eq!(held.len(), 1, "one record for one bet: {held:?}");
    let advice = |step: &TableStep| {
        step.advice
            .iter()
            .find(|a| a.resource == "posts")
            .map(|a| a.ops[0].betting_s)
            .unwrap()
    };
    second(&mut s, 625, 9.0);
    let step = d.step(&s, &cloud("ACTIVE", 625), &mut budget, &common(626, None));
    assert!(
        advice(&step).is_some_and(|b| b >= 20.0),
        "{:?}",
        step.advice
    );
    let trusted = |d: &mut TableDecider, second: i64| {
        d.burst
            .get_mut(&("posts".to_string(), Op::Read))
            .unwrap()
            .trust
            .seconds(at(second), std::time::Duration::from_secs(86_400))
    };
    assert_eq!(trusted(&mut d, 626), 300.0);

    // The app reports throttled reads in the current second: the next step
    // raises at once (rule `throttled`) and trusts a smaller bucket.
    s.observe(throttled, T0 + 626, Observation::Count(3.0), T0 + 626)
        .unwrap();
    let step = d.step(&s, &cloud("ACTIVE", 625), &mut budget, &common(626, None));
    let applied = calls(&step);
    assert_eq!(applied.len(), 1, "{:?}", step.actions);
    let change = &applied[0].update.members[0].changes[0];
    assert_eq!((change.op, change.rule), (Op::Read, Rule::Throttled));
    assert!(
        change.to >= 17,
        "sized to the 10-s rate / target: {change:?}"
    );
    assert!(trusted(&mut d, 626) < 300.0);
    assert!(trusted(&mut d, 626) >= 60.0);
}

#[test]
fn an_index_writes_rise_with_its_table_in_the_same_call() {
    let config = parsed(
        "apply",
        0.0,
        r#"
[[dynamodb.tables]]
name = "posts"
write = { target = 0.5, min = 1, max = 10000, per_request = 1 }
[[dynamodb.tables.indexes]]
name = "by_user"
write = { target = 0.5, min = 1, max = 60, per_request = 0.01 }
"#,
    );
    let mut d = TableDecider::new(config);
    let s = store(100.0, 40);
    let mut budget = BudgetStore::in_memory();
    let step = d.step(&s, &cloud("ACTIVE", 29), &mut budget, &common(30, None));
    let applied = calls(&step);
    assert_eq!(applied.len(), 1, "{:?}", step.actions);
    let members = &applied[0].update.members;
    let change = |index: Option<&str>| {
        members
            .iter()
            .find(|m| m.index.as_deref() == index)
            .map(|m| m.changes[0])
            .unwrap_or_else(|| panic!("{index:?} in {members:?}"))
    };
    // The table's writes go 5 -> about 200 for 100 writes/s; the index's own
    // demand (1 write/s) asks nothing, but it takes the table's ratio, up to
    // its hour's max.
    let table = change(None);
    assert_eq!((table.op, table.from), (Op::Write, 5));
    assert!(table.to >= 200, "{table:?}");
    let index = change(Some("by_user"));
    assert_eq!(
        (index.op, index.from, index.to, index.rule),
        (Op::Write, 5, 60, Rule::WithTable)
    );
}

#[test]
fn a_decrease_waits_while_a_sibling_is_raised() {
    let config = parsed(
        "apply",
        0.0,
        r#"
[[dynamodb.tables]]
name = "posts"
read = { target = 0.5, min = 1, max = 10000, per_request = 1 }
[[dynamodb.tables.indexes]]
name = "by_user"
read = { target = 0.5, min = 1, max = 10000, per_request = 10 }
"#,
    );
    let mut d = TableDecider::new(config);
    // 20 req/s for 20 minutes: the table (read 1000) wants to come down to
    // about 40, the index (read 10, 200 units/s) wants to go up.
    let s = store(20.0, 1200);
    let mut view = cloud("ACTIVE", 1199);
    let tracked = view.tables.get_mut("posts").unwrap();
    let desc = tracked.current.as_mut().unwrap();
    desc.provisioned = Some(Throughput {
        read: 1000,
        write: 5,
    });
    let mut budget = BudgetStore::in_memory();
    let step = d.step(&s, &view, &mut budget, &common(1200, None));
    let applied = calls(&step);
    assert_eq!(applied.len(), 1, "{:?}", step.actions);
    let call = &applied[0].update;
    assert!(!call.decrease);
    let members: Vec<_> = call.members.iter().map(|m| m.index.clone()).collect();
    assert_eq!(members, [Some("by_user".to_string())], "{call:?}");
    let table_plan = step
        .advice
        .iter()
        .find(|a| a.resource == "posts")
        .and_then(|a| a.plan.clone());
    assert!(
        matches!(table_plan, Some(Plan::Update { decrease: true, .. })),
        "the table still plans its decrease: {table_plan:?}"
    );

    // Once the index's call is done (and the index raised), the decrease goes.
    d.completed("posts", Outcome::Applied, at(1201));
    let tracked = view.tables.get_mut("posts").unwrap();
    let desc = tracked.current.as_mut().unwrap();
    desc.indexes[0].provisioned = Some(Throughput {
        read: 400,
        write: 5,
    });
    tracked.last_ok = Some(at(1201));
    let step = d.step(&s, &view, &mut budget, &common(1202, None));
    let applied = calls(&step);
    assert_eq!(applied.len(), 1, "{:?}", step.actions);
    assert!(applied[0].update.decrease);
    assert_eq!(applied[0].update.resource(), "posts");
}
