//! Why a decision cannot be carried out now: one closed type, evaluated in
//! one place and one order for tables, indexes and groups.
//!
//! The order goes from the operator's word to the resource's state:
//! paused, follower, fleet unseen, audit log, AWS's own auto scaling,
//! cooldown, stale state, on-demand billing, not ACTIVE, a call in flight.
//! The first that holds is the gate; the apply-only ones (follower, fleet,
//! audit log, AWS auto scaling, cooldown) do not stop a dry run from
//! recommending.

use chrono::{DateTime, Utc};

use crate::policy::spend::Wait;
use serde::Serialize;

use crate::config::Mode;
use crate::mode::RuntimeMode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub(crate) enum Gate {
    /// An operator paused this resource (or everything).
    Paused,
    /// With coordination: another sidecar holds the lease.
    Follower,
    /// This rapidscale cannot see the whole fleet's demand (`[fleet]`).
    FleetUnseen { why: String },
    /// Without a writable audit log nothing is applied.
    AuditUnavailable { why: String },
    /// Application Auto Scaling manages the capacity (or that cannot be
    /// told): applying would fight it and spend its decrease budget.
    AwsAutoScaling { why: String },
    /// Changes whose retries all failed: the next waits.
    Cooldown { failures: u32, wait_s: i64 },
    /// The resource was last described more than 3 poll intervals ago.
    StateStale { what: &'static str },
    /// On-demand tables are reported, never changed.
    OnDemand,
    /// The table or index is not ACTIVE (UPDATING, CREATING, ...).
    NotActive { what: &'static str, status: String },
    /// A call for the same table or group has not been answered yet.
    InFlight { what: &'static str },
    /// A worthwhile decrease waits for DynamoDB's decrease budget, or is
    /// kept for a better use of it.
    Budget {
        until: DateTime<Utc>,
        why: crate::policy::spend::Wait,
    },
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gate::Paused => write!(f, "paused by an operator"),
            Gate::Follower => write!(f, "follower: the leader acts"),
            Gate::FleetUnseen { why } => write!(f, "fleet not seen: {why}"),
            Gate::AuditUnavailable { why } => {
                write!(f, "audit log unavailable ({why}): recommending only")
            }
            Gate::AwsAutoScaling { why } => write!(f, "{why}: recommending only"),
            Gate::Cooldown { failures, wait_s } => write!(
                f,
                "{failures} change(s) in a row failed: next attempt in {wait_s}s"
            ),
            Gate::StateStale { what } => write!(
                f,
                "{what} state is older than 3 poll intervals: AWS unavailable?"
            ),
            Gate::OnDemand => write!(f, "on-demand table: reported, never changed"),
            Gate::NotActive { what, status } => {
                write!(f, "{what} is {status}: waiting for ACTIVE")
            }
            Gate::InFlight { what } => write!(f, "an update of this {what} is in flight"),
            Gate::Budget {
                until,
                why: Wait::Rule,
            } => write!(
                f,
                "waiting for the decrease budget until {}",
                until.to_rfc3339()
            ),
            Gate::Budget { until, why } => {
                write!(f, "decrease planned for {}: {why}", until.to_rfc3339())
            }
        }
    }
}

/// Everything the gates look at for one resource at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateInputs<'a> {
    /// The mode after operator overrides.
    pub runtime: RuntimeMode,
    /// The mode it acts in (`runtime`, or the configured one when paused).
    pub mode: Mode,
    /// With coordination: this sidecar may act now.
    pub may_act: Option<bool>,
    pub fleet_unseen: Option<&'a str>,
    pub audit_unavailable: Option<&'a str>,
    /// Why Application Auto Scaling keeps rapidscale from applying (tables).
    pub aws_auto_scaling: Option<&'a str>,
    /// (failures in a row, seconds left) while a cooldown runs.
    pub cooldown: Option<(u32, i64)>,
    /// "table" or "group".
    pub what: &'static str,
    pub described_recently: bool,
    pub on_demand: bool,
    /// The table's status, then the changed index's (tables only).
    pub statuses: [Option<(&'static str, &'a str)>; 2],
    pub in_flight: bool,
}

/// The first gate that holds, in the one order.
pub(crate) fn first_gate(g: &GateInputs) -> Option<Gate> {
    let applying = g.mode == Mode::Apply;
    if g.runtime == RuntimeMode::Paused {
        return Some(Gate::Paused);
    }
    if applying && g.may_act == Some(false) {
        return Some(Gate::Follower);
    }
    if let Some(why) = g.fleet_unseen.filter(|_| applying) {
        return Some(Gate::FleetUnseen {
            why: why.to_string(),
        });
    }
    if let Some(why) = g.audit_unavailable.filter(|_| applying) {
        return Some(Gate::AuditUnavailable {
            why: why.to_string(),
        });
    }
    if let Some(why) = g.aws_auto_scaling.filter(|_| applying) {
        return Some(Gate::AwsAutoScaling {
            why: why.to_string(),
        });
    }
    if let Some((failures, wait_s)) = g.cooldown.filter(|_| applying) {
        return Some(Gate::Cooldown { failures, wait_s });
    }
    if !g.described_recently {
        return Some(Gate::StateStale { what: g.what });
    }
    if g.on_demand {
        return Some(Gate::OnDemand);
    }
    for (what, status) in g.statuses.iter().flatten() {
        if *status != "ACTIVE" {
            return Some(Gate::NotActive {
                what,
                status: status.to_string(),
            });
        }
    }
    if g.in_flight {
        return Some(Gate::InFlight { what: g.what });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(mode: Mode) -> GateInputs<'static> {
        GateInputs {
            runtime: mode.into(),
            mode,
            may_act: None,
            fleet_unseen: None,
            audit_unavailable: None,
            aws_auto_scaling: None,
            cooldown: None,
            what: "table",
            described_recently: true,
            on_demand: false,
            statuses: [Some(("table", "ACTIVE")), Some(("index", "ACTIVE"))],
            in_flight: false,
        }
    }

    #[track_caller]
    fn check(inputs: GateInputs, expected: Option<&str>) {
        assert_eq!(
            first_gate(&inputs).map(|g| g.to_string()).as_deref(),
            expected
        );
    }

    #[test]
    fn nothing_holds_an_open_resource() {
        check(open(Mode::Apply), None);
        check(open(Mode::DryRun), None);
    }

    #[test]
    fn each_gate_in_its_own_words() {
        let apply = open(Mode::Apply);
        check(
            GateInputs {
                runtime: RuntimeMode::Paused,
                ..apply
            },
            Some("paused by an operator"),
        );
        check(
            GateInputs {
                may_act: Some(false),
                ..apply
            },
            Some("follower: the leader acts"),
        );
        check(
            GateInputs {
                fleet_unseen: Some("3 instances serve"),
                ..apply
            },
            Some("fleet not seen: 3 instances serve"),
        );
        check(
            GateInputs {
                audit_unavailable: Some("disk full"),
                ..apply
            },
            Some("audit log unavailable (disk full): recommending only"),
        );
        check(
            GateInputs {
                aws_auto_scaling: Some(
                    "registered with Application Auto Scaling (ReadCapacityUnits)",
                ),
                ..apply
            },
            Some("registered with Application Auto Scaling (ReadCapacityUnits): recommending only"),
        );
        check(
            GateInputs {
                cooldown: Some((2, 9)),
                ..apply
            },
            Some("2 change(s) in a row failed: next attempt in 9s"),
        );
        check(
            GateInputs {
                described_recently: false,
                ..apply
            },
            Some("table state is older than 3 poll intervals: AWS unavailable?"),
        );
        check(
            GateInputs {
                on_demand: true,
                ..apply
            },
            Some("on-demand table: reported, never changed"),
        );
        check(
            GateInputs {
                statuses: [Some(("table", "ACTIVE")), Some(("index", "UPDATING"))],
                ..apply
            },
            Some("index is UPDATING: waiting for ACTIVE"),
        );
        check(
            GateInputs {
                in_flight: true,
                what: "group",
                statuses: [None, None],
                ..apply
            },
            Some("an update of this group is in flight"),
        );
    }

    #[test]
    fn apply_only_gates_let_a_dry_run_recommend() {
        let dry = GateInputs {
            may_act: Some(false),
            fleet_unseen: Some("unseen"),
            audit_unavailable: Some("disk full"),
            aws_auto_scaling: Some("registered"),
            cooldown: Some((1, 5)),
            ..open(Mode::DryRun)
        };
        check(dry, None);
        // Pause and state gates hold in both modes.
        check(
            GateInputs {
                described_recently: false,
                ..dry
            },
            Some("table state is older than 3 poll intervals: AWS unavailable?"),
        );
    }

    #[test]
    fn the_first_gate_wins_in_one_order() {
        let everything = GateInputs {
            runtime: RuntimeMode::Apply,
            may_act: Some(false),
            fleet_unseen: Some("unseen"),
            audit_unavailable: Some("disk full"),
            cooldown: Some((1, 5)),
            described_recently: false,
            on_demand: true,
            statuses: [Some(("table", "UPDATING")), None],
            in_flight: true,
            ..open(Mode::Apply)
        };
        check(everything, Some("follower: the leader acts"));
        check(
            GateInputs {
                may_act: Some(true),
                ..everything
            },
            Some("fleet not seen: unseen"),
        );
        check(
            GateInputs {
                may_act: None,
                fleet_unseen: None,
                audit_unavailable: None,
                cooldown: None,
                ..everything
            },
            Some("table state is older than 3 poll intervals: AWS unavailable?"),
        );
        check(
            GateInputs {
                described_recently: true,
                on_demand: false,
                may_act: None,
                fleet_unseen: None,
                audit_unavailable: None,
                cooldown: None,
                ..everything
            },
            Some("table is UPDATING: waiting for ACTIVE"),
        );
    }
}
