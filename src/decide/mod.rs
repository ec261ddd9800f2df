//! The deciders: one synchronous step per resource kind, the same for the
//! daemon, the demo and the replay.
//!
//! A step takes a snapshot (the series store, the cloud view, what both
//! deciders share this tick in [`Common`]), its own state and the time, and
//! returns what it thinks of every resource (advice, for the API) and what
//! to do (actions, for the actuator). Gates are one closed type evaluated
//! in one place ([`gate::first_gate`]); the fleet is read one way for
//! both ([`fleet::read_fleet`]). Nothing here awaits or calls AWS: the
//! async loop around the deciders is `run.rs`.

pub(crate) mod approve;
pub(crate) mod cooldown;
pub(crate) mod fleet;
pub(crate) mod gate;
pub(crate) mod group;
pub(crate) mod run;
pub(crate) mod table;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::actuator::{GroupChange, TableUpdate};
use crate::audit::Outcome;
use crate::config::Mode;
use crate::mode::Overrides;
use crate::policy::calibrate::Calibration;
use fleet::FleetReading;
use gate::Gate;

/// How often decisions are taken. Faster than once a second so that the
/// current second's rate so far can trigger an increase before it ends.
pub(crate) const DECIDE_EVERY: Duration = Duration::from_millis(250);

/// What both deciders read besides the store and the cloud view, gathered
/// once per tick.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub now: DateTime<Utc>,
    /// Operator overrides of the mode (`POST /api/v1/mode`).
    pub overrides: Overrides,
    /// With coordination: whether this sidecar holds the lease and may act
    /// now. None: no coordination.
    pub may_act: Option<bool>,
    /// Why the audit log cannot be written, if it cannot.
    pub audit_unavailable: Option<String>,
    pub fleet: FleetReading,
    /// `per_request = "auto"`: the units per request in effect.
    pub calibration: Vec<Calibration>,
    /// Throttled minutes CloudWatch reported: resource, operation, minute (unix s).
    pub cloudwatch_throttled: Vec<ReportedThrottle>,
    /// Announced surges (`announce`), cancelled ones included.
    pub announcements: Vec<crate::announce::Announcement>,
    /// A dry-run recommendation an operator approved: applied this step
    /// if the plan is still exactly it.
    pub approved: Option<approve::Approved>,
}

/// A throttled minute CloudWatch reported: resource, operation, minute (unix s).
pub(crate) type ReportedThrottle = (String, crate::policy::dynamodb::Op, i64);

/// What becomes of one decision.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Disposition {
    /// Apply mode, no gate: the actuator makes the call.
    Apply,
    /// A record only: a dry-run recommendation, or a gated decision.
    Record {
        outcome: Outcome,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableAction {
    pub update: TableUpdate,
    pub disposition: Disposition,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WarmAction {
    pub change: crate::actuator::WarmChange,
    pub disposition: Disposition,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupAction {
    pub change: GroupChange,
    pub disposition: Disposition,
}

/// What to do with a decision, given its gate. A dry-run recommendation is
/// recorded once until it changes; a gated decision once per gate while it
/// holds. `last` remembers the one recorded.
fn dispose(
    last: &mut Option<String>,
    mode: Mode,
    fingerprint: String,
    gate: Option<&Gate>,
) -> Option<Disposition> {
    let (key, outcome, reason) = match (gate, mode) {
        // A gate is recorded when it starts holding a decision, not again
        // for every new figure the decision takes while it holds.
        // AWS's own auto scaling owns the capacity: what rapidscale would
        // do is still worth reading, as a recommendation with the reason.
        (Some(g @ Gate::AwsAutoScaling { .. }), _) => (
            format!("recommend|{}|{fingerprint}", g.stable_key()),
            Outcome::Recommended,
            Some(g.to_string()),
        ),
        (Some(g), _) => (
            format!("skip|{}", g.stable_key()),
            Outcome::Skipped,
            Some(g.to_string()),
        ),
        (None, Mode::DryRun) => (fingerprint, Outcome::Recommended, None),
        (None, Mode::Apply) => {
            *last = None;
            return Some(Disposition::Apply);
        }
    };
    if last.as_deref() == Some(key.as_str()) {
        return None;
    }
    *last = Some(key);
    Some(Disposition::Record { outcome, reason })
}

/// A recommendation made on an estimate of the fleet's demand says so.
fn labelled(d: Disposition, fleet: &FleetReading) -> Disposition {
    match d {
        Disposition::Record {
            outcome: Outcome::Recommended,
            reason: None,
        } if !fleet.exact => Disposition::Record {
            outcome: Outcome::Recommended,
            reason: Some(format!(
                "on an estimate of the fleet's demand: {}",
                fleet
                    .estimate
                    .as_deref()
                    .or(fleet.unseen.as_deref())
                    .unwrap_or("not every instance is seen")
            )),
        },
        d => d,
    }
}

/// Which gate holds each resource's decisions, since when and for how
/// many steps: the record at its start is the audit's (`dispose`), its end
/// is logged once and kept as a [`GateEnded`] for the audit, so a gate that
/// holds for an hour is two log lines and two records, not one a tick.
#[derive(Debug)]
pub(crate) struct HeldBy {
    /// "dynamodb", "asg" or "ecs": the audit's service of the resources.
    service: &'static str,
    current: std::collections::HashMap<String, (String, DateTime<Utc>, u64)>,
    ended: Vec<GateEnded>,
}

/// A gate that stopped holding a resource's decisions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GateEnded {
    pub service: &'static str,
    pub resource: String,
    pub gate: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// How many steps it held.
    pub decisions: u64,
}

impl GateEnded {
    /// The audit record's reason.
    pub(crate) fn reason(&self) -> String {
        format!(
            "no longer held: {} (held {} decisions over {} s)",
            self.gate,
            self.decisions,
            (self.until - self.since).num_seconds()
        )
    }
}

impl HeldBy {
    pub(crate) fn new(service: &'static str) -> Self {
        Self {
            service,
            current: Default::default(),
            ended: Vec::new(),
        }
    }

    /// This step's gate of `resource` (None: nothing held).
    pub(crate) fn see(&mut self, resource: &str, gate: Option<&Gate>, now: DateTime<Utc>) {
        let ended = match gate {
            Some(g) => {
                let key = g.stable_key();
                match self.current.get_mut(resource) {
                    Some(held) if held.0 == key => {
                        held.2 += 1;
                        None
                    }
                    _ => self.current.insert(resource.to_string(), (key, now, 1)),
                }
            }
            None => self.current.remove(resource),
        };
        if let Some((gate, since, steps)) = ended {
            tracing::info!(
                resource,
                gate = %gate,
                held_s = (now - since).num_seconds(),
                decisions_held = steps,
                "A gate stopped holding."
            );
            self.ended.push(GateEnded {
                service: self.service,
                resource: resource.to_string(),
                gate,
                since,
                until: now,
                decisions: steps,
            });
        }
    }

    /// The gates that ended since the last call, for the audit.
    pub(crate) fn take_ended(&mut self) -> Vec<GateEnded> {
        std::mem::take(&mut self.ended)
    }
}

impl Gate {
    /// The gate without what changes while it holds (the seconds left of a
    /// cooldown, the budget's next slot), so that one gate is recorded once.
    pub(crate) fn stable_key(&self) -> String {
        match self {
            Gate::Cooldown { failures, .. } => format!("cooldown {failures}"),
            // The budget's next slot moves with the decrease it would carry.
            Gate::Budget { .. } => "budget".to_string(),
            g => g.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_ends_once_with_how_long_and_how_many_decisions_it_held() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let at = |s| t0 + chrono::TimeDelta::seconds(s);
        let mut held = HeldBy::new("dynamodb");
        let busy = Gate::NotActive {
            what: "table",
            status: "UPDATING".into(),
        };
        for s in 0..8 {
            held.see("posts", Some(&busy), at(s));
        }
        assert!(held.take_ended().is_empty(), "still holding");
        held.see("posts", None, at(12));
        held.see("posts", None, at(13));
        let ended = held.take_ended();
        assert_eq!(ended.len(), 1, "{ended:?}");
        let e = &ended[0];
        assert_eq!((e.service, e.resource.as_str()), ("dynamodb", "posts"));
        assert_eq!((e.since, e.until, e.decisions), (at(0), at(12), 8));
        assert!(e.reason().starts_with("no longer held: "), "{}", e.reason());
        assert!(e.reason().ends_with("(held 8 decisions over 12 s)"));
        // Another gate taking over ends the first one too.
        held.see("posts", Some(&busy), at(20));
        held.see("posts", Some(&Gate::Paused), at(21));
        assert_eq!(held.take_ended().len(), 1);
        assert!(held.take_ended().is_empty(), "taken once");
    }

    #[test]
    fn an_unchanged_recommendation_or_gate_is_recorded_once() {
        let mut last = None;
        let rec = |o| {
            Some(Disposition::Record {
                outcome: o,
                reason: None,
            })
        };
        assert_eq!(
            dispose(&mut last, Mode::DryRun, "r:10".into(), None),
            rec(Outcome::Recommended)
        );
        assert_eq!(dispose(&mut last, Mode::DryRun, "r:10".into(), None), None);
        assert_eq!(
            dispose(&mut last, Mode::DryRun, "r:12".into(), None),
            rec(Outcome::Recommended)
        );
        let cooling = |wait_s| Gate::Cooldown {
            failures: 2,
            wait_s,
        };
        let first = dispose(&mut last, Mode::Apply, "r:12".into(), Some(&cooling(9)));
        assert!(matches!(
            first,
            Some(Disposition::Record {
                outcome: Outcome::Skipped,
                ..
            })
        ));
        assert_eq!(
            dispose(&mut last, Mode::Apply, "r:12".into(), Some(&cooling(8))),
            None,
            "the countdown is the same gate"
        );
        assert_eq!(
            dispose(&mut last, Mode::Apply, "r:12".into(), None),
            Some(Disposition::Apply)
        );
        assert_eq!(last, None, "an applied change is never deduplicated");
    }
}
#[cfg(test)]
mod fault_tests;
