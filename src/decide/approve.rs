//! One-click approval of a dry-run recommendation
//! (`POST /api/v1/recommendations/{id}/apply`).
//!
//! The API hands the recommendation's audit record to the deciders' loop.
//! At its next step the resource's decider acts in apply mode for that one
//! step *if* its plan still is what the record recommended: the same
//! operations, each moving the same way, each approved capacity within
//! [`CLOSE`] of what it would set now (per-second demand moves the exact
//! figure every second; an operator cannot click that fast). The approved
//! figures are then applied exactly, through the same gates, actuator and
//! audit records as in apply mode. Otherwise the answer is the decider's
//! current view.

use serde::Serialize;
use tokio::sync::oneshot;

use super::run::Decisions;
use super::{Disposition, GroupAction, TableAction};
use crate::audit::AuditRecord;

/// What the API sends the loop.
pub(crate) struct Approval {
    pub record: AuditRecord,
    pub reply: oneshot::Sender<Result<Accepted, Refused>>,
}

/// The recommendation an operator approved, as the deciders compare it
/// with their plan this step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Approved {
    /// A table, `table/index`, or the fleet's key.
    pub resource: String,
    /// (op, from, to) of every change: "read", "write" or "desired".
    pub changes: Vec<(String, u64, u64)>,
}

/// How far an approved capacity may be from the current plan's (a share
/// of the current figure, at least one unit or instance).
pub(crate) const CLOSE: f64 = 0.1;

impl Approved {
    pub(crate) fn of(record: &AuditRecord) -> Approved {
        let mut changes: Vec<(String, u64, u64)> = record
            .changes
            .iter()
            .map(|c| (c.op.clone(), c.from, c.to))
            .collect();
        changes.sort();
        Approved {
            resource: record.resource.clone(),
            changes,
        }
    }

    /// Whether a plan of `resource` with these (op, from, to) is still the
    /// approved one: the same operations, the same direction, each `to`
    /// within [`CLOSE`]. Some: the approved `to` of each operation.
    pub(crate) fn matches(
        &self,
        resource: &str,
        changes: &[(String, u64, u64)],
    ) -> Option<Vec<(String, u64)>> {
        let mut now = changes.to_vec();
        now.sort();
        if self.resource != resource || now.len() != self.changes.len() || now.is_empty() {
            return None;
        }
        let close = |approved: u64, current: u64| {
            let slack = (current as f64 * CLOSE).max(1.0);
            (approved as f64 - current as f64).abs() <= slack
        };
        self.changes
            .iter()
            .zip(&now)
            .map(|((op_a, from_a, to_a), (op, from, to))| {
                let same_way = (to_a > from_a) == (to > from) && to_a != from;
                (op_a == op && same_way && close(*to_a, *to)).then(|| (op.clone(), *to_a))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Accepted {
    pub resource: String,
    pub applying: String,
}

/// 409: what rapidscale would do now instead (its advice), or the gate
/// that holds the change.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Refused {
    pub error: String,
    pub current: serde_json::Value,
}

/// The answer to an approval, from the step's actions and advice.
pub(crate) fn outcome(
    approved: &Approved,
    tables: &[TableAction],
    fleets: &[GroupAction],
    decisions: &Decisions,
) -> Result<Accepted, Refused> {
    for a in tables
        .iter()
        .filter(|a| a.disposition == Disposition::Apply)
    {
        if a.update.members.iter().any(|m| {
            crate::actuator::resource_key(&a.update.table, m.index.as_deref()) == approved.resource
        }) {
            return Ok(Accepted {
                resource: approved.resource.clone(),
                applying: a.update.describe(),
            });
        }
    }
    for a in fleets
        .iter()
        .filter(|a| a.disposition == Disposition::Apply)
    {
        if a.change.fleet.key() == approved.resource {
            return Ok(Accepted {
                resource: approved.resource.clone(),
                applying: format!("desired {} -> {}", a.change.from, a.change.to),
            });
        }
    }
    let table = decisions
        .tables
        .read(|t| t.iter().find(|r| r.resource == approved.resource).cloned());
    if let Some(advice) = table {
        let error = match &advice.gate {
            Some(g) => format!("held by a gate: {g}"),
            None => "no longer what rapidscale recommends: see current".to_string(),
        };
        return Err(Refused {
            error,
            current: serde_json::to_value(&advice).unwrap_or_default(),
        });
    }
    let fleet = decisions
        .group
        .get()
        .into_iter()
        .chain(decisions.services.get())
        .find(|g| g.group == approved.resource);
    match fleet {
        Some(advice) => Err(Refused {
            error: match &advice.gate {
                Some(g) => format!("held by a gate: {g}"),
                None => "no longer what rapidscale recommends: see current".to_string(),
            },
            current: serde_json::to_value(&advice).unwrap_or_default(),
        }),
        None => Err(Refused {
            error: format!("{} is not decided on now", approved.resource),
            current: serde_json::Value::Null,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved(changes: &[(&str, u64, u64)]) -> Approved {
        Approved {
            resource: "posts".into(),
            changes: changes
                .iter()
                .map(|(o, f, t)| (o.to_string(), *f, *t))
                .collect(),
        }
    }

    fn now(changes: &[(&str, u64, u64)]) -> Vec<(String, u64, u64)> {
        changes
            .iter()
            .map(|(o, f, t)| (o.to_string(), *f, *t))
            .collect()
    }

    #[test]
    fn an_approval_stands_while_the_plan_moves_the_same_way_and_stays_close() {
        let a = approved(&[("read", 10, 800), ("write", 5, 40)]);
        assert_eq!(
            a.matches("posts", &now(&[("write", 5, 42), ("read", 10, 760)])),
            Some(vec![("read".into(), 800), ("write".into(), 40)]),
            "the approved figures, within 10 %"
        );
        assert_eq!(
            a.matches("posts", &now(&[("read", 10, 700), ("write", 5, 40)])),
            None,
            "moved 12.5 %"
        );
        assert_eq!(
            a.matches("posts", &now(&[("read", 10, 800)])),
            None,
            "another set of operations"
        );
        assert_eq!(
            a.matches("other", &now(&[("read", 10, 800), ("write", 5, 40)])),
            None
        );
        let down = approved(&[("read", 800, 400)]);
        assert_eq!(
            down.matches("posts", &now(&[("read", 300, 400)])),
            None,
            "now an increase"
        );
        assert_eq!(down.matches("posts", &now(&[])), None, "nothing to do now");
        let one = approved(&[("desired", 4, 5)]);
        assert!(
            one.matches("posts", &now(&[("desired", 4, 6)])).is_some(),
            "one instance of slack"
        );
    }
}
