use super::*;
use crate::audit::{AuditChange, AuditRecord, Outcome, Phase};
use crate::config::{Mode, NotifyKind};

fn at(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000 + s, 0).unwrap()
}

fn record(id: &str, outcome: Outcome, phase: Phase, to: u64, t: i64) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        time: at(t),
        phase,
        service: "dynamodb".into(),
        resource: "posts".into(),
        mode: Mode::DryRun,
        outcome,
        changes: vec![AuditChange {
            resource: None,
            op: "read".into(),
            from: 100,
            to,
            rule: "surge".into(),
            demand: Some(190.0),
            threshold: Some(55.0),
            window_s: 2,
        }],
        decrease: false,
        reason: None,
        error: None,
        fencing: None,
        observed: None,
    }
}

fn target(kind: NotifyKind) -> NotifyTarget {
    NotifyTarget {
        name: "t".into(),
        kind,
        events: NotifyEvent::ALL.to_vec(),
        coalesce: Duration::from_secs(60),
        max_per_minute: 3,
        link: Some("http://rs:9470".into()),
        budget_low: 1,
    }
}

#[test]
fn records_become_events_and_operator_records_do_not() {
    let rec = record("r1", Outcome::Recommended, Phase::Decided, 400, 0);
    let e = event_of(&rec).unwrap();
    assert_eq!(e.kind, NotifyEvent::Recommendation);
    assert_eq!(
        e.summary,
        "posts recommends read 100 -> 400 (surge, demand 190/s)"
    );
    let applied = record("r2", Outcome::Applied, Phase::Completed, 400, 1);
    assert_eq!(event_of(&applied).unwrap().kind, NotifyEvent::Applied);
    let pending = record("r2", Outcome::Pending, Phase::Decided, 400, 1);
    assert_eq!(event_of(&pending), None, "the call's start is not news");
    let mut mode = record("m", Outcome::Applied, Phase::Completed, 0, 1);
    mode.service = "mode".into();
    assert_eq!(event_of(&mode), None);
}

#[test]
fn one_surge_gives_one_message_then_one_follow_up_with_its_outcome() {
    let mut p = Pacer::new(Duration::from_secs(60), 10);
    let first = event_of(&record("r1", Outcome::Recommended, Phase::Decided, 400, 0)).unwrap();
    assert_eq!(p.offer(first.clone(), at(0)).unwrap().folded, 0);
    for (i, to) in [600, 800, 900].into_iter().enumerate() {
        let e = event_of(&record(
            "rx",
            Outcome::Recommended,
            Phase::Decided,
            to,
            i as i64 + 1,
        ))
        .unwrap();
        assert_eq!(p.offer(e, at(i as i64 + 1)), None, "folded");
    }
    let outcome = event_of(&record("r9", Outcome::Applied, Phase::Completed, 900, 10)).unwrap();
    assert_eq!(p.offer(outcome, at(10)), None);
    assert!(p.due(at(59)).is_empty());
    let follow = p.due(at(60));
    assert_eq!(follow.len(), 1);
    assert_eq!(follow[0].folded, 4);
    assert_eq!(
        follow[0].event.kind,
        NotifyEvent::Applied,
        "the newest: the outcome"
    );
    assert!(p.due(at(200)).is_empty(), "a quiet window closes");
    assert!(
        p.offer(first, at(201)).is_some(),
        "a new surge is news again"
    );
}

#[test]
fn the_rate_limit_counts_what_it_refuses() {
    let mut p = Pacer::new(Duration::from_secs(60), 2);
    let mut sent = 0;
    for i in 0..5 {
        let mut e = event_of(&record("r", Outcome::Recommended, Phase::Decided, 400, 0)).unwrap();
        e.resource = format!("t{i}");
        sent += p.offer(e, at(i)).is_some() as u32;
    }
    assert_eq!((sent, p.limited), (2, 3));
    let mut e = event_of(&record("r", Outcome::Recommended, Phase::Decided, 400, 0)).unwrap();
    e.resource = "later".into();
    assert!(
        p.offer(e, at(61)).is_some(),
        "a minute later there is room again"
    );
}

#[test]
fn conditions_are_told_when_they_start_and_when_they_end() {
    let mut c = Conditions::default();
    let silent = Condition {
        kind: NotifyEvent::IngestionSilent,
        resource: "http.requests".into(),
        summary: "no sample for 12s".into(),
    };
    let started = c.update(vec![silent.clone()], at(0));
    assert_eq!(started.len(), 1);
    assert!(!started[0].resolved);
    assert!(c.update(vec![silent], at(1)).is_empty(), "told once");
    let ended = c.update(vec![], at(2));
    assert!(ended[0].resolved);
    assert!(ended[0].summary.starts_with("resolved: "));
}

#[test]
fn bodies_carry_the_apply_link_for_a_recommendation() {
    let e = event_of(&record("r1", Outcome::Recommended, Phase::Decided, 400, 0)).unwrap();
    let m = Message {
        event: e,
        folded: 2,
    };
    let slack = render(
        &m,
        &target(NotifyKind::Slack {
            url: "http://x".into(),
        }),
        "http://rs:9470",
    );
    let text = slack.json["text"].as_str().unwrap();
    assert!(text.contains("posts recommends read 100 -> 400"), "{text}");
    assert!(text.contains("(+2 more since the last message)"), "{text}");
    assert!(
        text.contains("<http://rs:9470/#rec-r1|Review and apply>"),
        "{text}"
    );
    let hook = render(
        &m,
        &target(NotifyKind::Webhook {
            url: "http://x".into(),
        }),
        "http://rs:9470",
    );
    assert_eq!(hook.json["event"], "recommendation");
    assert_eq!(
        hook.json["apply"]["url"],
        "http://rs:9470/api/v1/recommendations/r1/apply"
    );
    assert_eq!(hook.json["record"]["id"], "r1");
    assert_eq!(hook.subject, "rapidscale recommendation: posts");
}
