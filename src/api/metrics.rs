//! `GET /metrics`: Prometheus text exposition (prometheus-client).
//!
//! Gauges and totals are read from the same snapshots as `/api/v1/status`
//! at scrape time, into a fresh registry; the AWS call counters and the
//! latency histogram live in [`CallMetrics`] and are registered as they
//! are (their families share state across scrapes).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::{ApiState, Status};
use crate::coord::task::CoordinationStatus;
use crate::policy::asg::GroupVerdict;

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabels {
    stream: String,
    quantile: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CapacityLabels {
    table: String,
    index: String,
    operation: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    table: String,
    index: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupStateLabels {
    group: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    service: String,
    resource: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    source: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    table: String,
    index: String,
    operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

fn op_labels(resource: &str, op: crate::policy::dynamodb::Op) -> OpLabels {
    let (table, index) = resource.split_once('/').unwrap_or((resource, ""));
    OpLabels {
        table: table.to_string(),
        index: index.to_string(),
        operation: op.as_str().to_string(),
    }
}

/// Publishing, calibration, leads over CloudWatch and throttling it reported.
fn register_cloudwatch(r: &mut Registry, status: &super::Status) {
    if let Some(p) = &status.cloudwatch {
        let sent = Counter::<u64>::default();
        sent.inc_by(p.sent);
        r.register("cloudwatch_datums_sent", "Datums CloudWatch accepted", sent);
        let dropped = Counter::<u64>::default();
        dropped.inc_by(p.dropped);
        r.register(
            "cloudwatch_datums_dropped",
            "Datums dropped from the full buffer while CloudWatch could not be reached",
            dropped,
        );
        let buffered = Gauge::<i64>::default();
        buffered.set(p.buffered as i64);
        r.register(
            "cloudwatch_datums_buffered",
            "Datums waiting to be sent",
            buffered,
        );
    }

    let per_request = Family::<CapacityLabels, FloatGauge>::default();
    let r2 = Family::<OpLabels, FloatGauge>::default();
    let samples = Family::<OpLabels, Gauge>::default();
    let fitted = Family::<OpLabels, Gauge>::default();
    for c in &status.calibration {
        let l = op_labels(&c.resource, c.op);
        let kinded = |kind: &str| CapacityLabels {
            table: l.table.clone(),
            index: l.index.clone(),
            operation: l.operation.clone(),
            kind: kind.to_string(),
        };
        if let Some(v) = c.per_request {
            per_request.get_or_create(&kinded("in_effect")).set(v);
        }
        if let Some(v) = c.fallback {
            per_request.get_or_create(&kinded("fallback")).set(v);
        }
        if let Some(f) = c.fit {
            per_request
                .get_or_create(&kinded("fitted"))
                .set(f.per_request);
            r2.get_or_create(&l).set(f.r2);
            samples.get_or_create(&l).set(f.samples as i64);
        }
        fitted.get_or_create(&l).set(i64::from(c.fitted));
    }
    r.register(
        "per_request_units",
        "per_request = \"auto\": units per request in effect, fitted and fallback",
        per_request,
    );
    r.register(
        "calibration_r2",
        "R^2 of the newest units-per-request fit",
        r2,
    );
    r.register(
        "calibration_samples",
        "Minutes the newest units-per-request fit paired",
        samples,
    );
    r.register(
        "calibration_fitted",
        "1 when the fit is good enough and in effect, 0 on the fallback",
        fitted,
    );

    let w = &status.cloudwatch_watch;
    let surges = Family::<OutcomeLabels, Counter>::default();
    for (outcome, n) in [
        ("seen", w.surges_seen),
        ("unseen", w.surges_unseen),
        ("no_rise", w.surges_no_rise),
    ] {
        surges
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc_by(n);
    }
    r.register(
        "cloudwatch_surges",
        "Increases rapidscale acted on, by whether CloudWatch's consumed capacity later showed the rise",
        surges,
    );
    let lead_sum = Counter::<f64, std::sync::atomic::AtomicU64>::default();
    lead_sum.inc_by(w.lead_s_sum);
    r.register_with_unit(
        "cloudwatch_lead",
        "Sum over the seen surges of how many seconds rapidscale acted before CloudWatch showed the rise (divide by cloudwatch_surges_total{outcome=\"seen\"})",
        Unit::Seconds,
        lead_sum,
    );
    let last_lead = Family::<OpLabels, FloatGauge>::default();
    for lead in w.leads.iter().rev() {
        last_lead
            .get_or_create(&op_labels(&lead.resource, lead.op))
            .set(lead.lead_s);
    }
    r.register_with_unit(
        "cloudwatch_last_lead",
        "The newest lead over CloudWatch per table/index and operation",
        Unit::Seconds,
        last_lead,
    );
    let throttled = Family::<KindLabels, Counter>::default();
    for (kind, n) in [
        ("foreseen", w.throttled_minutes_foreseen),
        ("unforeseen", w.throttled_minutes_unforeseen),
        ("failed_hold", w.throttled_minutes_failed_hold),
    ] {
        throttled
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc_by(n);
    }
    r.register(
        "cloudwatch_throttled_minutes",
        "Minutes with DynamoDB throttle events in CloudWatch, by whether rapidscale had decided an increase in or just before them",
        throttled,
    );
}

/// Renders every metric in the text format.
pub(crate) fn render(s: &ApiState) -> String {
    let mut r = Registry::with_prefix("rapidscale");
    let status = s.status();
    register_streams(&mut r, s, &status);
    register_health(&mut r, s, &status);
    register_dynamodb(&mut r, &status);
    register_group(&mut r, &status);
    register_decisions_and_ingest(&mut r, s, &status);
    register_cloudwatch(&mut r, &status);
    register_aws_calls(&mut r, s);
    if let Some(c) = &status.coordination {
        register_coordination(&mut r, c);
    }
    register_mode(&mut r, &status);
    register_notifications(&mut r, &status);
    let mut out = String::new();
    if encode(&mut out, &r).is_err() {
        out.clear();
    }
    out
}

/// Requests/s, latency, staleness per stream.
fn register_streams(r: &mut Registry, s: &ApiState, status: &Status) {
    let now = status.now.timestamp();
    let rps = Family::<StreamLabels, FloatGauge>::default();
    let latency = Family::<QuantileLabels, FloatGauge>::default();
    let age = Family::<StreamLabels, Gauge>::default();
    for st in &status.streams {
        let l = StreamLabels {
            stream: st.name.clone(),
        };
        if let Some(v) = st.last_value {
            rps.get_or_create(&l).set(v);
        }
        for (q, v) in [("0.5", st.p50_ms), ("0.95", st.p95_ms), ("0.99", st.p99_ms)] {
            if let Some(ms) = v {
                latency
                    .get_or_create(&QuantileLabels {
                        stream: st.name.clone(),
                        quantile: q.to_string(),
                    })
                    .set(ms / 1000.0);
            }
        }
        if let Some(last) = st.last_sample_second {
            age.get_or_create(&l).set((now - last).max(0));
        }
    }
    r.register(
        "requests_per_second",
        "Requests in the newest sealed second, per stream",
        rps,
    );
    r.register_with_unit(
        "request_latency",
        "Request latency quantiles of the newest second, per stream",
        Unit::Seconds,
        latency,
    );
    r.register_with_unit(
        "data_age",
        "Seconds since the newest sample of each stream (staleness)",
        Unit::Seconds,
        age,
    );
    let stale = Family::<StreamLabels, Gauge>::default();
    for st in &status.streams {
        if let Some(last) = st.last_sample_second {
            let silent = now - last > s.config.ingest.stale_after.as_secs() as i64;
            stale
                .get_or_create(&StreamLabels {
                    stream: st.name.clone(),
                })
                .set(i64::from(silent));
        }
    }
    r.register(
        "stream_stale",
        "1 while a stream that had samples has been silent longer than ingest.stale_after: decisions on it hold",
        stale,
    );
}

/// The age of AWS state, the audit log, readiness.
fn register_health(r: &mut Registry, s: &ApiState, status: &Status) {
    let now = status.now.timestamp();
    let aws_age = Family::<KindLabels, Gauge>::default();
    for (name, t) in &status.cloud.tables {
        if let Some(ok) = t.last_ok {
            aws_age
                .get_or_create(&KindLabels {
                    kind: format!("table/{name}"),
                })
                .set((now - ok.timestamp()).max(0));
        }
    }
    if let Some(ok) = status.cloud.group.as_ref().and_then(|g| g.last_ok) {
        aws_age
            .get_or_create(&KindLabels {
                kind: "group".into(),
            })
            .set((now - ok.timestamp()).max(0));
    }
    r.register_with_unit(
        "aws_state_age",
        "Seconds since each table's and the group's last successful describe (kind = table/NAME or group)",
        Unit::Seconds,
        aws_age,
    );
    let writable = Gauge::<i64>::default();
    writable.set(i64::from(s.audit.unavailable().is_none()));
    r.register(
        "audit_writable",
        "0 while the audit log cannot be written: nothing is applied meanwhile",
        writable,
    );
    let ready = Gauge::<i64>::default();
    ready.set(i64::from(s.not_ready().is_empty()));
    r.register(
        "ready",
        "1 when /readyz answers 200: sources up, AWS state fresh, ingestion not silent",
        ready,
    );
}

/// Capacity, limits and decreases of every table and index.
fn register_dynamodb(r: &mut Registry, status: &Status) {
    let capacity = Family::<CapacityLabels, FloatGauge>::default();
    let limits = Family::<CapacityLabels, FloatGauge>::default();
    let decreases = Family::<ResourceLabels, Gauge>::default();
    for a in &status.dynamodb {
        let index = a.index.clone().unwrap_or_default();
        for o in &a.ops {
            let labels = |kind: &str| CapacityLabels {
                table: a.table.clone(),
                index: index.clone(),
                operation: o.op.as_str().to_string(),
                kind: kind.to_string(),
            };
            capacity
                .get_or_create(&labels("provisioned"))
                .set(o.provisioned as f64);
            if let Some(d) = o.demand {
                capacity.get_or_create(&labels("consumed")).set(d);
            }
            let rec = a.recommended(o.op, o.provisioned);
            capacity
                .get_or_create(&labels("recommended"))
                .set(rec as f64);
            limits
                .get_or_create(&labels("min"))
                .set(o.limits.min as f64);
            limits
                .get_or_create(&labels("max"))
                .set(o.limits.max as f64);
        }
        for (state, n) in [
            ("used", a.decreases_used_today),
            ("left", a.decreases_left_today),
        ] {
            decreases
                .get_or_create(&ResourceLabels {
                    table: a.table.clone(),
                    index: index.clone(),
                    state: state.to_string(),
                })
                .set(n as i64);
        }
    }
    r.register(
        "dynamodb_capacity_units",
        "DynamoDB capacity units per second: consumed (demand), provisioned and recommended",
        capacity,
    );
    r.register(
        "dynamodb_capacity_limit_units",
        "The hour's min and max capacity units",
        limits,
    );
    r.register(
        "dynamodb_decreases",
        "Capacity decreases used and still achievable in the current UTC day",
        decreases,
    );
}

/// The group (and each ECS service, `group="cluster/service"`, tasks as
/// instances) by state, its desired and recommended size.
fn register_group(r: &mut Registry, status: &Status) {
    let instances = Family::<GroupStateLabels, Gauge>::default();
    let desired = Family::<GroupLabels, Gauge>::default();
    let recommended_size = Family::<GroupLabels, Gauge>::default();
    for g in status.asg.iter().chain(status.ecs_services.iter()) {
        let c = &g.counts;
        for (state, n) in [
            ("serving", c.serving),
            ("settling", c.settling),
            ("warming", c.warming),
            ("pending_too_long", c.pending_too_long),
            ("leaving", c.leaving),
            ("standby", c.standby),
            ("warm_pool", c.warm_pool),
            ("unhealthy", c.unhealthy),
        ] {
            instances
                .get_or_create(&GroupStateLabels {
                    group: g.group.clone(),
                    state: state.to_string(),
                })
                .set(n as i64);
        }
        let l = GroupLabels {
            group: g.group.clone(),
        };
        desired.get_or_create(&l).set(g.desired as i64);
        let rec = match g.verdict {
            GroupVerdict::Set { to, .. } => to,
            GroupVerdict::Hold { .. } => g.desired,
        };
        recommended_size.get_or_create(&l).set(rec as i64);
    }
    r.register("group_instances", "Group instances by state", instances);
    r.register(
        "group_desired_instances",
        "The group's desired capacity",
        desired,
    );
    r.register(
        "group_recommended_instances",
        "The desired capacity rapidscale recommends",
        recommended_size,
    );
}

/// Audit records by outcome, and every source's counters.
fn register_decisions_and_ingest(r: &mut Registry, s: &ApiState, status: &Status) {
    let decisions = Family::<DecisionLabels, Counter>::default();
    for ((service, resource, outcome), n) in s.audit.counts() {
        let outcome = serde_json::to_value(outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        decisions
            .get_or_create(&DecisionLabels {
                service,
                resource,
                outcome,
            })
            .inc_by(n);
    }
    r.register(
        "decisions",
        "Audit records written, by service, resource and outcome",
        decisions,
    );

    let up = Family::<SourceLabels, Gauge>::default();
    for c in &status.ingest {
        up.get_or_create(&SourceLabels {
            source: c.source.clone(),
        })
        .set(i64::from(c.up));
    }
    r.register(
        "ingest_source_up",
        "1 when the source can take input (socket bound, log open, status page answering)",
        up,
    );
    let accepted = Family::<SourceLabels, Counter>::default();
    let unmatched = Family::<SourceLabels, Counter>::default();
    let dropped = Family::<DropLabels, Counter>::default();
    for c in &status.ingest {
        let l = SourceLabels {
            source: c.source.clone(),
        };
        accepted.get_or_create(&l).inc_by(c.accepted);
        unmatched.get_or_create(&l).inc_by(c.unmatched);
        for (reason, n) in &c.dropped {
            dropped
                .get_or_create(&DropLabels {
                    source: c.source.clone(),
                    reason: reason.to_string(),
                })
                .inc_by(*n);
        }
    }
    r.register(
        "ingest_accepted",
        "Lines, packets or polls accepted, per source",
        accepted,
    );
    r.register(
        "ingest_unmatched",
        "Metrics that parsed but matched no selector, per source",
        unmatched,
    );
    r.register(
        "ingest_dropped",
        "Input dropped, per source and reason",
        dropped,
    );
}

/// Every call of the cloud port, by operation and outcome.
fn register_aws_calls(r: &mut Registry, s: &ApiState) {
    r.register(
        "aws_calls",
        "AWS API calls by operation and outcome",
        s.call_metrics.calls.clone(),
    );
    r.register_with_unit(
        "aws_call_duration",
        "AWS API call latency by operation",
        Unit::Seconds,
        s.call_metrics.latency.clone(),
    );
}

/// Fleet totals, sidecars, mismatches, the lease.
fn register_coordination(r: &mut Registry, c: &CoordinationStatus) {
    let fleet_rps = Family::<StreamLabels, FloatGauge>::default();
    let instances = Family::<StateLabels, Gauge>::default();
    let mismatches = Family::<KindLabels, Gauge>::default();
    if let Some(f) = &c.fleet {
        for (stream, v) in &f.totals {
            fleet_rps
                .get_or_create(&StreamLabels {
                    stream: stream.clone(),
                })
                .set(*v);
        }
        for (state, n) in [
            ("responsive", f.responsive.len()),
            ("silent", f.silent.len()),
        ] {
            instances
                .get_or_create(&StateLabels {
                    state: state.to_string(),
                })
                .set(n as i64);
        }
    }
    if let Some(r) = &c.reconciliation {
        for (kind, n) in [
            (
                "in_service_without_sidecar",
                r.in_service_without_sidecar.len(),
            ),
            (
                "sidecar_outside_the_group",
                r.sidecars_outside_the_group.len(),
            ),
        ] {
            mismatches
                .get_or_create(&KindLabels {
                    kind: kind.to_string(),
                })
                .set(n as i64);
        }
    }
    r.register(
        "fleet_requests_per_second",
        "Fleet-wide requests per second from all sidecars' heartbeats (estimated when one is silent)",
        fleet_rps,
    );
    r.register(
        "fleet_sidecars",
        "Sidecars by heartbeat state: responsive or silent",
        instances,
    );
    r.register(
        "fleet_mismatches",
        "Group membership vs heartbeats: InService instances without a sidecar, sidecars outside the group",
        mismatches,
    );
    let (leader, fencing) = match c.role {
        crate::coord::task::Role::Leader { fencing, .. } => (1, fencing as i64),
        crate::coord::task::Role::Follower => (0, 0),
    };
    let g = Gauge::<i64>::default();
    g.set(leader);
    r.register("leader", "1 while this sidecar holds the fleet's lease", g);
    let t = Gauge::<i64>::default();
    t.set(fencing);
    r.register(
        "fencing_token",
        "The fencing token of the lease held (0: follower)",
        t,
    );
}

/// The global mode in effect.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifyLabels {
    target: String,
    outcome: String,
}

/// `[[notify]]`: messages per target by outcome, and the newest latency.
fn register_notifications(r: &mut Registry, status: &Status) {
    if status.notifications.is_empty() {
        return;
    }
    let total = Family::<NotifyLabels, Counter>::default();
    let latency = Family::<TargetLabels, FloatGauge>::default();
    for t in &status.notifications {
        for (outcome, n) in [
            ("sent", t.sent),
            ("failed", t.failed),
            ("retried", t.retried),
            ("dropped", t.dropped),
            ("limited", t.limited),
            ("folded", t.folded),
        ] {
            total
                .get_or_create(&NotifyLabels {
                    target: t.name.clone(),
                    outcome: outcome.into(),
                })
                .inc_by(n);
        }
        if let Some(s) = t.last_latency_s {
            latency
                .get_or_create(&TargetLabels {
                    target: t.name.clone(),
                })
                .set(s);
        }
    }
    r.register(
        "notifications",
        "Notifications per target: sent, failed after retries, retried attempts, dropped (queue full), limited (max_per_minute), folded into a follow-up",
        total,
    );
    r.register_with_unit(
        "notification_latency",
        "From the event to the target's answer, newest message",
        Unit::Seconds,
        latency,
    );
}

fn register_mode(r: &mut Registry, status: &Status) {
    let mode = Family::<ModeLabels, Gauge>::default();
    for m in ["dry-run", "apply", "paused"] {
        mode.get_or_create(&ModeLabels {
            mode: m.to_string(),
        })
        .set(i64::from(status.effective_mode == m));
    }
    r.register("mode", "1 for the global mode in effect", mode);
}
