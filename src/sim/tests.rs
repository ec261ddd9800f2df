use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-11-29T{s}Z"))
        .unwrap()
        .with_timezone(&Utc)
}

fn tp(read: u64, write: u64) -> Throughput {
    Throughput { read, write }
}

fn world() -> SimWorld {
    let mut w = SimWorld::new(SimSettings::default());
    w.add_table("posts", tp(100, 50), &[("by_user", tp(20, 10))]);
    w
}

#[test]
fn update_takes_effect_after_the_delay_and_the_table_is_updating_meanwhile() {
    let mut w = world();
    w.update_capacity("posts", None, tp(200, 50), t("10:00:00"))
        .unwrap();
    let d = w.describe_table("posts", t("10:00:14")).unwrap();
    assert_eq!(d.status, "UPDATING");
    assert_eq!(d.provisioned, Some(tp(100, 50)), "not yet in effect");
    let busy = w
        .update_capacity("posts", Some("by_user"), tp(40, 10), t("10:00:10"))
        .unwrap_err();
    assert_eq!(busy.kind, CloudErrorKind::ResourceBusy);
    let d = w.describe_table("posts", t("10:00:15")).unwrap();
    assert_eq!(d.status, "ACTIVE");
    assert_eq!(d.provisioned, Some(tp(200, 50)));
    assert_eq!(d.last_increase, Some(t("10:00:00")));
}

#[test]
fn an_index_update_marks_the_index_updating() {
    let mut w = world();
    w.update_capacity("posts", Some("by_user"), tp(40, 10), t("10:00:00"))
        .unwrap();
    let d = w.describe_table("posts", t("10:00:01")).unwrap();
    assert_eq!(d.indexes[0].status, "UPDATING");
    assert_eq!(d.status, "UPDATING");
    let d = w.describe_table("posts", t("10:00:15")).unwrap();
    assert_eq!(d.indexes[0].provisioned, Some(tp(40, 10)));
    assert_eq!(d.indexes[0].status, "ACTIVE");
}

#[test]
fn burst_absorbs_spikes_up_to_300_seconds_of_unused_capacity() {
    let mut c = Capacity {
        provisioned: 100,
        burst: 0.0,
    };
    // 10 s at half use banks 500 units.
    for _ in 0..10 {
        assert_eq!(c.serve(50.0, 300.0).throttled, 0.0);
    }
    assert_eq!(c.burst, 500.0);
    // A spike of 400/s: 300 over, the bank covers it once, then 200 of the next are throttled.
    assert_eq!(
        c.serve(400.0, 300.0),
        Served {
            consumed: 400.0,
            throttled: 0.0
        }
    );
    assert_eq!(
        c.serve(400.0, 300.0),
        Served {
            consumed: 300.0,
            throttled: 100.0
        }
    );
    assert_eq!(c.burst, 0.0);
    // The bank is capped at 300 s of the provisioned rate.
    for _ in 0..1000 {
        c.serve(0.0, 300.0);
    }
    assert_eq!(c.burst, 30_000.0);
}

#[test]
fn demand_beyond_provisioned_and_burst_is_throttled() {
    let mut w = world();
    // A fresh table has a full bucket (100 x 300): drain it in 11 s at
    // 2,900/s (one partition serves at most 3,000/s).
    let mut throttled = 0.0;
    for s in 0..11 {
        throttled += w
            .serve(
                "posts",
                None,
                2_900.0,
                0.0,
                t("00:00:00") + TimeDelta::seconds(s),
            )
            .0
            .throttled;
    }
    assert_eq!(throttled, 11.0 * 2_800.0 - 30_000.0);
    let (r, wr) = w.serve("posts", None, 150.0, 60.0, t("00:00:11"));
    assert_eq!(r.consumed, 100.0);
    assert_eq!(r.throttled, 50.0);
    assert_eq!(wr.throttled, 0.0, "write has its own bucket");
}

#[test]
fn decreases_follow_the_daily_rule_with_limit_exceeded() {
    let mut w = world();
    let mut cap = 100;
    let mut at = t("00:10:00");
    // Four at any time of the day, hours apart or seconds apart.
    for gap in [0, 180, 10, 10] {
        at += TimeDelta::minutes(gap);
        w.advance(at);
        cap -= 1;
        w.update_capacity("posts", None, tp(cap, 50), at).unwrap();
    }
    at += TimeDelta::minutes(10);
    cap -= 1;
    let e = w
        .update_capacity("posts", None, tp(cap, 50), at)
        .unwrap_err();
    assert_eq!(e.kind, CloudErrorKind::LimitExceeded);
    // The next one needs an hour without a decrease (the 4th was at 03:30).
    w.advance(t("04:29:59"));
    assert!(w
        .update_capacity("posts", None, tp(cap, 50), t("04:29:59"))
        .is_err());
    w.update_capacity("posts", None, tp(cap, 50), t("04:30:00"))
        .unwrap();
    // An increase is never limited, even right after.
    w.advance(t("04:31:00"));
    w.update_capacity("posts", None, tp(500, 50), t("04:31:00"))
        .unwrap();
    // Each index has its own budget.
    w.advance(t("04:42:00"));
    w.update_capacity("posts", Some("by_user"), tp(10, 10), t("04:42:00"))
        .unwrap();
    let d = w.describe_table("posts", t("04:43:00")).unwrap();
    assert_eq!(d.decreases_today, Some(5));
    assert_eq!(d.indexes[0].decreases_today, Some(1));
}

#[test]
fn at_most_27_decreases_a_day() {
    let mut w = world();
    let mut cap = 1000;
    w.add_table("big", tp(cap, 10), &[]);
    let mut made = 0;
    let mut at = t("00:00:00");
    while at < t("23:59:59") {
        if w.update_capacity("big", None, tp(cap - 1, 10), at).is_ok() {
            cap -= 1;
            made += 1;
        }
        at += TimeDelta::minutes(1);
        w.advance(at);
    }
    assert_eq!(made, 27);
    // A new UTC day starts over.
    let next_day = t("23:59:59") + TimeDelta::seconds(60);
    w.advance(next_day);
    assert!(w
        .update_capacity("big", None, tp(cap - 1, 10), next_day)
        .is_ok());
}

#[test]
fn new_instances_boot_before_serving() {
    let mut w = SimWorld::new(SimSettings::default());
    w.add_group("web", 2, 1, 10, t("10:00:00"));
    assert_eq!(w.serve_requests("web", 1000.0), (700.0, 300.0));
    w.set_desired_capacity("web", 4, t("10:00:00")).unwrap();
    let d = w.describe_group("web", t("10:01:59")).unwrap();
    assert_eq!(d.desired, 4);
    assert_eq!(
        d.instances
            .iter()
            .filter(|i| i.lifecycle_state == "Pending")
            .count(),
        2
    );
    assert_eq!(w.serve_requests("web", 1000.0).1, 300.0, "still booting");
    let d = w.describe_group("web", t("10:02:00")).unwrap();
    assert_eq!(d.serving(), 4);
    assert_eq!(w.serve_requests("web", 1000.0), (1000.0, 0.0));
    // Scale-in removes pending first, then the newest.
    w.set_desired_capacity("web", 5, t("10:03:00")).unwrap();
    w.set_desired_capacity("web", 3, t("10:03:01")).unwrap();
    let d = w.describe_group("web", t("10:03:02")).unwrap();
    assert_eq!(d.serving(), 3);
    assert_eq!(d.instances.len(), 3);
    let id = d.instances[0].id.clone();
    assert_eq!(
        w.group_of_instance(&id, t("10:03:03")).unwrap().as_deref(),
        Some("web")
    );
    assert!(w.set_desired_capacity("web", 11, t("10:04:00")).is_err());
}

#[test]
fn faults_in_a_window_and_for_the_next_calls() {
    let mut w = world();
    w.add_fault(Fault {
        kind: FaultKind::Outage,
        operation: None,
        when: FaultWhen::Window {
            from: t("10:00:00"),
            until: t("10:05:00"),
        },
    });
    w.add_fault(Fault {
        kind: FaultKind::Throttled,
        operation: Some("UpdateTable"),
        when: FaultWhen::NextCalls(2),
    });
    let e = w.describe_table("posts", t("10:04:59")).unwrap_err();
    assert_eq!(e.kind, CloudErrorKind::Unavailable);
    assert!(w.describe_table("posts", t("10:05:00")).is_ok());
    for _ in 0..2 {
        let e = w
            .update_capacity("posts", None, tp(200, 50), t("10:06:00"))
            .unwrap_err();
        assert_eq!(e.kind, CloudErrorKind::Throttled);
        assert!(e.is_retryable());
    }
    w.update_capacity("posts", None, tp(200, 50), t("10:06:00"))
        .unwrap();
    w.add_fault(Fault {
        kind: FaultKind::LimitExceeded,
        operation: Some("UpdateTable"),
        when: FaultWhen::NextCalls(1),
    });
    let e = w
        .update_capacity("posts", None, tp(300, 50), t("10:07:00"))
        .unwrap_err();
    assert_eq!(e.kind, CloudErrorKind::LimitExceeded);
    assert_eq!(w.calls["UpdateTable"], 4);
    assert_eq!(w.calls["DescribeTable"], 2);
}

#[tokio::test(start_paused = true)]
async fn the_backend_hangs_on_a_timeout_fault_then_fails() {
    use crate::clock::TokioClock;
    use crate::cloud::Capacity;
    let clock = Arc::new(TokioClock::starting_at(t("10:00:00")));
    let cloud = cloud::SimCloud::new(world(), clock);
    cloud.world().add_fault(Fault {
        kind: FaultKind::Timeout,
        operation: Some("DescribeTable"),
        when: FaultWhen::NextCalls(1),
    });
    let start = tokio::time::Instant::now();
    let e = cloud.describe_table("posts").await.unwrap_err();
    assert_eq!(e.kind, CloudErrorKind::Unavailable);
    assert_eq!(start.elapsed(), cloud.timeout);
    let d = cloud.describe_table("posts").await.unwrap();
    assert_eq!(d.provisioned, Some(tp(100, 50)));
    cloud
        .update_table(
            "posts",
            &[crate::cloud::MemberCapacity {
                index: None,
                capacity: tp(120, 50),
            }],
        )
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(15)).await;
    let d = cloud.describe_table("posts").await.unwrap();
    assert_eq!(d.provisioned, Some(tp(120, 50)));
}

#[test]
fn maintenance_drains_empty_the_buckets_at_random_instants() {
    let settings = SimSettings {
        drains_per_day: 24.0,
        seed: 7,
        ..SimSettings::default()
    };
    let mut w = SimWorld::new(settings.clone());
    w.add_table("posts", tp(100, 50), &[]);
    let start = t("00:00:00");
    // Quiet: the bucket stays full except when a drain empties it.
    let mut drained_at = Vec::new();
    for s in 0..86_400 {
        let now = start + TimeDelta::seconds(s);
        let before = w.table("posts").unwrap().base.read.burst;
        w.serve("posts", None, 0.0, 0.0, now);
        let after = w.table("posts").unwrap().base.read.burst;
        if after < before {
            drained_at.push(s);
        }
    }
    // About 24 a day (a Poisson process): well within 10 .. 40.
    assert!((10..=40).contains(&drained_at.len()), "{drained_at:?}");
    // The same seed drains at the same instants.
    let mut again = SimWorld::new(settings);
    again.add_table("posts", tp(100, 50), &[]);
    let mut first = None;
    for s in 0..86_400 {
        let before = again.table("posts").unwrap().base.read.burst;
        again.serve("posts", None, 0.0, 0.0, start + TimeDelta::seconds(s));
        if again.table("posts").unwrap().base.read.burst < before {
            first = Some(s);
            break;
        }
    }
    assert_eq!(first, drained_at.first().copied());
}

#[test]
fn a_hot_key_is_limited_to_one_partition_and_burst_does_not_help_it() {
    let settings = SimSettings {
        hot_key_share: 0.5,
        ..SimSettings::default()
    };
    let mut w = SimWorld::new(settings);
    // 10,000 RCU: four partitions (10,000 / 3,000, rounded up).
    w.add_table("posts", tp(10_000, 50), &[]);
    assert_eq!(w.table("posts").unwrap().base.partitions(), 4.0);
    // 8,000 units/s: the hot key's partition gets 4,000 + 4,000 / 4 = 5,000,
    // 2,000 over its 3,000 limit, although the table has capacity to spare.
    let (r, _) = w.serve("posts", None, 8_000.0, 0.0, t("00:00:00"));
    assert_eq!(r.throttled, 2_000.0);
    assert_eq!(r.consumed, 6_000.0);
    // Without a hot key the same demand is spread and served.
    let mut w = world();
    w.set_highest("posts", None, tp(10_000, 50));
    w.update_capacity("posts", None, tp(10_000, 50), t("00:00:00"))
        .unwrap();
    w.advance(t("00:00:15"));
    let (r, _) = w.serve("posts", None, 8_000.0, 0.0, t("00:00:15"));
    assert_eq!(r.throttled, 0.0);
}

#[test]
fn an_index_short_of_write_capacity_throttles_the_tables_writes() {
    let mut w = world();
    let start = t("00:00:00");
    // Drain the index's write bucket (10 x 300) in 4 s.
    for s in 0..4 {
        w.serve_table(
            "posts",
            &[(Some("by_user"), 0.0, 1_000.0)],
            start + TimeDelta::seconds(s),
        );
    }
    // The table writes 40/s, all projected onto the index (10 WCU): 30 of
    // 40 index writes are refused, and so are 3/4 of the table's.
    let out = w.serve_table(
        "posts",
        &[(None, 0.0, 40.0), (Some("by_user"), 0.0, 40.0)],
        start + TimeDelta::seconds(4),
    );
    assert_eq!(out[1].1.throttled, 30.0);
    assert_eq!(out[0].1.throttled, 30.0);
    assert_eq!(out[0].1.consumed, 10.0);
    let mut off = SimWorld::new(SimSettings {
        gsi_back_pressure: false,
        ..SimSettings::default()
    });
    off.add_table("posts", tp(100, 50), &[("by_user", tp(20, 10))]);
    for s in 0..4 {
        off.serve_table(
            "posts",
            &[(Some("by_user"), 0.0, 1_000.0)],
            start + TimeDelta::seconds(s),
        );
    }
    let out = off.serve_table(
        "posts",
        &[(None, 0.0, 40.0), (Some("by_user"), 0.0, 40.0)],
        start + TimeDelta::seconds(4),
    );
    assert_eq!(out[1].1.throttled, 30.0);
    assert_eq!(out[0].1.throttled, 0.0);
}

#[test]
fn update_delays_spread_and_an_increase_past_the_highest_ever_takes_longer() {
    let settings = SimSettings {
        update_spread: 0.3,
        new_high_factor: 4.0,
        seed: 3,
        ..SimSettings::default()
    };
    let mut w = SimWorld::new(settings);
    w.add_table("posts", tp(100, 50), &[]);
    w.set_highest("posts", None, tp(1_000, 50));
    let mut delays = Vec::new();
    let mut at = t("00:00:00");
    let mut cap = 100;
    // Increases within the highest ever (1,000): about 15 s each.
    for _ in 0..40 {
        cap += 10;
        w.update_capacity("posts", None, tp(cap, 50), at).unwrap();
        let due = w.table("posts").unwrap().base.pending.unwrap().0;
        delays.push((due - at).as_seconds_f64());
        at = due;
        w.advance(at);
    }
    delays.sort_by(f64::total_cmp);
    let median = delays[delays.len() / 2];
    assert!((11.0..20.0).contains(&median), "{delays:?}");
    assert!(
        delays[0] < 14.0 && delays[delays.len() - 1] > 16.0,
        "{delays:?}"
    );
    // Past it: four times the median, give or take.
    w.update_capacity("posts", None, tp(2_000, 50), at).unwrap();
    let due = w.table("posts").unwrap().base.pending.unwrap().0;
    assert!(
        (due - at).as_seconds_f64() > 25.0,
        "{}",
        (due - at).as_seconds_f64()
    );
    assert_eq!(w.table("posts").unwrap().base.highest.read, 2_000);
}
