// The advisor's pure pieces: gates and the choice of demand source.
use super::*;

fn state() -> TableState<'static> {
    TableState {
        billing_mode: BillingMode::Provisioned,
        table_status: "ACTIVE",
        resource_status: "ACTIVE",
        described_recently: true,
        update_in_flight: false,
    }
}

#[track_caller]
fn check_gate(s: TableState, expected: Option<&str>) {
    let got = gate(&s);
    match expected {
        None => assert_eq!(got, None),
        Some(fragment) => assert!(
            got.as_deref().is_some_and(|g| g.contains(fragment)),
            "{got:?} lacks {fragment:?}"
        ),
    }
}

#[test]
fn an_active_provisioned_table_may_change() {
    check_gate(state(), None);
}

#[test]
fn no_action_while_updating() {
    check_gate(
        TableState {
            table_status: "UPDATING",
            ..state()
        },
        Some("table is UPDATING"),
    );
    check_gate(
        TableState {
            resource_status: "UPDATING",
            ..state()
        },
        Some("index is UPDATING"),
    );
}

#[test]
fn on_demand_tables_are_never_changed() {
    check_gate(
        TableState {
            billing_mode: BillingMode::PayPerRequest,
            ..state()
        },
        Some("on-demand"),
    );
}

#[test]
fn old_table_state_holds() {
    check_gate(
        TableState {
            described_recently: false,
            ..state()
        },
        Some("AWS unavailable"),
    );
}

#[test]
fn one_call_per_table_at_a_time() {
    check_gate(
        TableState {
            update_in_flight: true,
            ..state()
        },
        Some("in flight"),
    );
}

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

#[test]
fn each_index_has_its_own_ledger() {
    use crate::actuator::resource_key;
    use crate::policy::dynamodb::{plan, Evidence, Rule};
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut book = crate::state::BudgetStore::empty(std::path::Path::new("/nonexistent"));
    // The table has spent its burst; the index has spent nothing.
    for m in 0..4 {
        book.ledger_mut(&resource_key("posts", None))
            .record(now - chrono::TimeDelta::minutes(30 - m));
    }
    let down = [(
        Op::Read,
        100,
        OpVerdict::Down {
            to: 40,
            rule: Rule::LowDemand,
            evidence: Evidence {
                demand: Some(10.0),
                threshold: Some(31.5),
                window_s: 900,
            },
            worth_it: true,
        },
    )];
    let p = crate::config::DynamoPolicy::default();
    assert!(matches!(
        plan(&down, &book.ledger("posts"), now, &p),
        Plan::WaitForBudget { .. }
    ));
    assert!(matches!(
        plan(
            &down,
            &book.ledger(&resource_key("posts", Some("by_user"))),
            now,
            &p
        ),
        Plan::Update { decrease: true, .. }
    ));
}

#[test]
fn no_decrease_on_an_estimated_fleet() {
    use crate::policy::dynamodb::{Evidence, HoldReason, Rule};
    let down = OpVerdict::Down {
        to: 10,
        rule: Rule::LowDemand,
        evidence: Evidence {
            demand: Some(1.0),
            threshold: Some(5.0),
            window_s: 900,
        },
        worth_it: true,
    };
    let estimated = Some(FleetScale {
        factor: 1.5,
        estimated: true,
    });
    assert_eq!(
        hold_decreases_on_estimates(down.clone(), estimated),
        OpVerdict::Hold {
            reason: HoldReason::FleetEstimated
        }
    );
    let exact = Some(FleetScale {
        factor: 3.0,
        estimated: false,
    });
    assert_eq!(hold_decreases_on_estimates(down.clone(), exact), down);
    assert_eq!(hold_decreases_on_estimates(down.clone(), None), down);
    let up = OpVerdict::Hold {
        reason: HoldReason::InBand,
    };
    assert_eq!(hold_decreases_on_estimates(up.clone(), estimated), up);
}
