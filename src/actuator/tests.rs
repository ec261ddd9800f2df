// Error paths moto cannot produce (throttling, LimitExceededException),
// driven through the real SDK client with aws-smithy-mocks responses.
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::operation::update_table::UpdateTableOutput;
use aws_sdk_dynamodb::types::{TableDescription as SdkTable, TableStatus};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use chrono::DateTime;

use super::*;
use crate::audit::read_file;
use crate::clock::{Clock, TokioClock};
use crate::cloud::aws::AwsCloud;
use crate::policy::budget::DecreaseRule;
use crate::policy::dynamodb::{Evidence, Rule as PolicyRule};
use crate::slot::Slot;

fn throttled() -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
        ),
    )
}

fn describe_ok() -> Rule {
    mock!(aws_sdk_dynamodb::Client::describe_table).then_output(|| {
        DescribeTableOutput::builder()
            .table(
                SdkTable::builder()
                    .table_name("posts")
                    .table_status(TableStatus::Active)
                    .build(),
            )
            .build()
    })
}

struct Fixture {
    actuator: Actuator<AwsCloud>,
    _dir: tempfile::TempDir,
}

fn fixture(rules: &[&Rule], state_dir_ok: bool) -> Fixture {
    let ddb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let cloud = AwsCloud::from_sdk_config(&sdk).with_dynamodb(ddb);
    let dir = tempfile::tempdir().unwrap();
    let state = if state_dir_ok {
        dir.path().to_path_buf()
    } else {
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        blocker
    };
    let clock = Arc::new(TokioClock::starting_at(
        DateTime::from_timestamp(1_764_403_200, 0).unwrap(),
    ));
    let (audit, _) = AuditLog::open(&state, clock.now());
    let budget = BudgetStore::load(dir.path()).unwrap();
    Fixture {
        actuator: Actuator {
            cloud: Arc::new(cloud),
            audit: Arc::new(audit),
            budget: Arc::new(Mutex::new(budget)),
            view: Slot::default(),
            clock,
            retry: RetryPolicy::default(),
            fence: None,
            calls_in_flight: Default::default(),
        },
        _dir: dir,
    }
}

fn update(decrease: bool) -> TableUpdate {
    let (from, to) = if decrease { (100, 40) } else { (100, 300) };
    TableUpdate::single(
        "posts",
        None,
        Throughput {
            read: 100,
            write: 50,
        },
        vec![Change {
            op: Op::Read,
            from,
            to,
            rule: if decrease {
                PolicyRule::LowDemand
            } else {
                PolicyRule::Surge
            },
            evidence: Evidence {
                demand: Some(20.0),
                threshold: Some(31.5),
                window_s: 900,
            },
        }],
        decrease,
        Mode::Apply,
    )
}

#[test]
fn backoff_is_exponential_with_full_jitter_and_capped() {
    let r = RetryPolicy::default();
    assert_eq!(r.delay(0, 0.0), Duration::ZERO);
    assert_eq!(r.delay(0, 0.5), Duration::from_millis(100));
    assert_eq!(r.delay(3, 0.5), Duration::from_millis(800));
    assert_eq!(r.delay(10, 0.99), Duration::from_secs(10).mul_f64(0.99));
    assert_eq!(r.delay(40, 1.0), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_then_applied() {
    let update_rule = mock!(aws_sdk_dynamodb::Client::update_table)
        .sequence()
        .http_response(throttled)
        .times(2)
        .output(|| UpdateTableOutput::builder().build())
        .build();
    let describe = describe_ok();
    let f = fixture(&[&update_rule, &describe], true);
    let outcome = f
        .actuator
        .apply(update(false), CancellationToken::new())
        .await;
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(update_rule.num_calls(), 3);
    let records = read_file(f.actuator.audit.path()).unwrap();
    let phases: Vec<(Phase, Outcome)> = records.iter().map(|r| (r.phase, r.outcome)).collect();
    assert_eq!(
        phases,
        vec![
            (Phase::Decided, Outcome::Pending),
            (Phase::Completed, Outcome::Applied)
        ]
    );
    assert_eq!(records[0].id, records[1].id);
    assert_eq!(records[0].changes[0].to, 300);
    // The table was read back right after the call.
    assert!(describe.num_calls() >= 1);
    assert!(f.actuator.view.read(|v| v.tables.contains_key("posts")));
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded() {
    let update_rule = mock!(aws_sdk_dynamodb::Client::update_table)
        .sequence()
        .http_response(throttled)
        .repeatedly()
        .build();
    let f = fixture(&[&update_rule], true);
    let start = tokio::time::Instant::now();
    let outcome = f
        .actuator
        .apply(update(false), CancellationToken::new())
        .await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        update_rule.num_calls(),
        RetryPolicy::default().max_attempts as usize
    );
    // Four pauses of at most 0.2, 0.4, 0.8 and 1.6 s.
    assert!(
        start.elapsed() <= Duration::from_millis(3000),
        "{:?}",
        start.elapsed()
    );
    let records = read_file(f.actuator.audit.path()).unwrap();
    let last = records.last().unwrap();
    assert_eq!(last.outcome, Outcome::Failed);
    // The audit (and the log) carry the code and the service's message in
    // one line, not the SDK's error chain.
    assert_eq!(
        last.error.as_deref(),
        Some("ThrottlingException: Rate of requests exceeds the allowed throughput."),
        "{last:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn limit_exceeded_blocks_decreases_for_an_hour() {
    let update_rule = mock!(aws_sdk_dynamodb::Client::update_table).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"{"__type":"com.amazonaws.dynamodb.v20120810#LimitExceededException","message":"Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day."}"#),
        )
    });
    let f = fixture(&[&update_rule], true);
    let outcome = f
        .actuator
        .apply(update(true), CancellationToken::new())
        .await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(update_rule.num_calls(), 1, "a limit is not retried");
    let now = f.actuator.clock.now();
    let ledger = f.actuator.budget.lock().unwrap().ledger("posts");
    assert!(!ledger.allowed_at(now + chrono::TimeDelta::minutes(59), DecreaseRule::AWS));
    assert!(ledger.allowed_at(now + chrono::TimeDelta::minutes(61), DecreaseRule::AWS));
    // And it is persisted.
    let reloaded = BudgetStore::load(f._dir.path()).unwrap();
    assert!(!reloaded.ledger("posts").allowed_at(now, DecreaseRule::AWS));
}

#[tokio::test(start_paused = true)]
async fn an_applied_decrease_is_spent_and_persisted() {
    let update_rule = mock!(aws_sdk_dynamodb::Client::update_table)
        .then_output(|| UpdateTableOutput::builder().build());
    let describe = describe_ok();
    let f = fixture(&[&update_rule, &describe], true);
    assert_eq!(
        f.actuator
            .apply(update(true), CancellationToken::new())
            .await,
        Outcome::Applied
    );
    let now = f.actuator.clock.now();
    assert_eq!(
        BudgetStore::load(f._dir.path())
            .unwrap()
            .ledger("posts")
            .used_today(now),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn no_call_without_an_audit_record() {
    let update_rule = mock!(aws_sdk_dynamodb::Client::update_table)
        .then_output(|| UpdateTableOutput::builder().build());
    let f = fixture(&[&update_rule], false);
    assert_eq!(
        f.actuator
            .apply(update(false), CancellationToken::new())
            .await,
        Outcome::Skipped
    );
    assert_eq!(update_rule.num_calls(), 0);
    let in_memory = f.actuator.audit.recent(None, 10);
    assert_eq!(in_memory[0].outcome, Outcome::Skipped);
    assert_eq!(
        in_memory[0].reason.as_deref(),
        Some("audit log unavailable")
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_retrying() {
    let update_rule = mock!(aws_sdk_dynamodb::Client::update_table)
        .sequence()
        .http_response(throttled)
        .repeatedly()
        .build();
    let f = fixture(&[&update_rule], true);
    let token = CancellationToken::new();
    token.cancel();
    assert_eq!(
        f.actuator.apply(update(false), token).await,
        Outcome::Failed
    );
    assert_eq!(
        update_rule.num_calls(),
        1,
        "the call in flight finished; no new attempt started"
    );
    let last = read_file(f.actuator.audit.path()).unwrap().pop().unwrap();
    assert_eq!(last.reason.as_deref(), Some("shutting down"));
}

#[tokio::test(start_paused = true)]
async fn dry_run_records_a_recommendation_and_calls_nothing() {
    let update_rule = mock!(aws_sdk_dynamodb::Client::update_table)
        .then_output(|| UpdateTableOutput::builder().build());
    let f = fixture(&[&update_rule], true);
    let mut u = update(false);
    u.mode = Mode::DryRun;
    f.actuator.note(&u, Outcome::Recommended, None);
    assert_eq!(update_rule.num_calls(), 0);
    let records = read_file(f.actuator.audit.path()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].outcome, records[0].mode),
        (Outcome::Recommended, Mode::DryRun)
    );
}

#[tokio::test(start_paused = true)]
async fn scaling_activity_in_progress_is_retried_with_backoff() {
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_autoscaling::operation::set_desired_capacity::SetDesiredCapacityOutput;
    let busy = || {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(
                r#"<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>ScalingActivityInProgress</Code><Message>Scaling activity 1234 is in progress and blocks this action.</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"#,
            ),
        )
    };
    let set = mock!(aws_sdk_autoscaling::Client::set_desired_capacity)
        .sequence()
        .http_response(busy)
        .times(2)
        .output(|| SetDesiredCapacityOutput::builder().build())
        .build();
    let describe = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
    let asg = mock_client!(
        aws_sdk_autoscaling,
        RuleMode::MatchAny,
        [&set, &describe],
        |c| c.retry_config(aws_sdk_autoscaling::config::retry::RetryConfig::disabled())
    );
    let f = fixture(&[], true);
    let cloud = f.actuator.cloud.as_ref().clone().with_autoscaling(asg);
    let actuator = Actuator {
        cloud: Arc::new(cloud),
        audit: f.actuator.audit.clone(),
        budget: f.actuator.budget.clone(),
        view: f.actuator.view.clone(),
        clock: f.actuator.clock.clone(),
        retry: RetryPolicy::default(),
        fence: None,
        calls_in_flight: Default::default(),
    };
    let change = GroupChange {
        fleet: crate::cloud::FleetId::Group { name: "web".into() },
        from: 2,
        to: 6,
        rule: "surge",
        fleet_rps: Some(600.0),
        needed: Some(7),
        window_s: 5,
        mode: Mode::Apply,
    };
    assert_eq!(
        actuator.apply_group(change, CancellationToken::new()).await,
        Outcome::Applied
    );
    assert_eq!(set.num_calls(), 3);
    let records = read_file(actuator.audit.path()).unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        (
            last.service.as_str(),
            last.outcome,
            last.changes[0].op.as_str(),
            last.changes[0].to
        ),
        ("asg", Outcome::Applied, "desired", 6)
    );
}

// The same actuator on the simulator backend, driven by its fault modes.

use crate::sim::cloud::SimCloud;
use crate::sim::{Fault, FaultKind, FaultWhen, SimSettings, SimWorld};

struct SimFixture {
    actuator: Actuator<SimCloud>,
    cloud: SimCloud,
    _dir: tempfile::TempDir,
}

fn sim_fixture(faults: Vec<Fault>) -> SimFixture {
    let clock = Arc::new(TokioClock::starting_at(
        DateTime::from_timestamp(1_764_403_200, 0).unwrap(),
    ));
    let mut world = SimWorld::new(SimSettings::default());
    world.add_table(
        "posts",
        Throughput {
            read: 100,
            write: 50,
        },
        &[],
    );
    for f in faults {
        world.add_fault(f);
    }
    let cloud = SimCloud::new(world, clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let (audit, _) = AuditLog::open(dir.path(), clock.now());
    SimFixture {
        actuator: Actuator {
            cloud: Arc::new(cloud.clone()),
            audit: Arc::new(audit),
            budget: Arc::new(Mutex::new(BudgetStore::load(dir.path()).unwrap())),
            view: Slot::default(),
            clock,
            retry: RetryPolicy::default(),
            fence: None,
            calls_in_flight: Default::default(),
        },
        cloud,
        _dir: dir,
    }
}

#[tokio::test(start_paused = true)]
async fn on_the_simulator_throttling_is_retried_and_the_change_lands_after_the_delay() {
    let f = sim_fixture(vec![Fault {
        kind: FaultKind::Throttled,
        operation: Some("UpdateTable"),
        when: FaultWhen::NextCalls(2),
    }]);
    let outcome = f
        .actuator
        .apply(update(false), CancellationToken::new())
        .await;
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(f.cloud.world().calls["UpdateTable"], 3);
    // Described once right after the call: the next decision sees UPDATING
    // (the tracker follows it from there).
    let seen = f.actuator.view.read(|v| v.tables["posts"].current.clone());
    assert_eq!(seen.unwrap().status, "UPDATING");
    // The change is in effect once the simulator's 15 s delay passed.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let d = f.cloud.describe_table("posts").await.unwrap();
    assert_eq!(
        (d.status.as_str(), d.provisioned.unwrap().read),
        ("ACTIVE", 300)
    );
    let records = read_file(f.actuator.audit.path()).unwrap();
    assert_eq!(records.last().unwrap().outcome, Outcome::Applied);
}

#[tokio::test(start_paused = true)]
async fn on_the_simulator_an_outage_costs_a_bounded_number_of_calls() {
    let now = DateTime::from_timestamp(1_764_403_200, 0).unwrap();
    let f = sim_fixture(vec![Fault {
        kind: FaultKind::Outage,
        operation: None,
        when: FaultWhen::Window {
            from: now,
            until: now + chrono::TimeDelta::hours(1),
        },
    }]);
    let outcome = f
        .actuator
        .apply(update(false), CancellationToken::new())
        .await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        f.cloud.world().calls["UpdateTable"],
        RetryPolicy::default().max_attempts as u64
    );
    let last = read_file(f.actuator.audit.path()).unwrap().pop().unwrap();
    assert!(last.error.unwrap().contains("simulated outage"));
}

#[tokio::test(start_paused = true)]
async fn on_the_simulator_the_decrease_rule_is_enforced_and_the_ledger_follows() {
    let f = sim_fixture(Vec::new());
    // Four decreases a minute apart are accepted (each from a fresh raise).
    for i in 0..4 {
        f.cloud
            .world()
            .update_capacity(
                "posts",
                None,
                Throughput {
                    read: 101 + i,
                    write: 50,
                },
                f.actuator.clock.now(),
            )
            .unwrap();
        tokio::time::advance(Duration::from_secs(16)).await;
        assert_eq!(
            f.actuator
                .apply(update(true), CancellationToken::new())
                .await,
            Outcome::Applied,
            "decrease {i}"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
    }
    // The fifth is refused by the simulated DynamoDB: not retried, and decreases wait an hour.
    f.cloud
        .world()
        .update_capacity(
            "posts",
            None,
            Throughput {
                read: 100,
                write: 50,
            },
            f.actuator.clock.now(),
        )
        .unwrap();
    tokio::time::advance(Duration::from_secs(16)).await;
    let calls = f.cloud.world().calls["UpdateTable"];
    assert_eq!(
        f.actuator
            .apply(update(true), CancellationToken::new())
            .await,
        Outcome::Failed
    );
    assert_eq!(f.cloud.world().calls["UpdateTable"], calls + 1);
    let now = f.actuator.clock.now();
    let ledger = f.actuator.budget.lock().unwrap().ledger("posts");
    assert_eq!(ledger.used_today(now), 4);
    assert!(!ledger.allowed_at(now + chrono::TimeDelta::minutes(59), DecreaseRule::AWS));
}
