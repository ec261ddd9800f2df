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
/// many steps: the record at its start is the audit's (`dispose`), its
/// end is logged once with the count, so a gate that holds for an hour is
/// two log lines, not one a tick.
#[derive(Debug, Default)]
pub(crate) struct HeldBy {
    current: std::collections::HashMap<String, (String, DateTime<Utc>, u64)>,
}

impl HeldBy {
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
        }
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
