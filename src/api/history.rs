//! The dashboard's history: once a second, what the capacity and group
//! charts draw, kept for the last 15 minutes so a reloaded page draws
//! them again at once (`GET /api/v1/history`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::ApiState;

/// Seconds kept: the dashboard's window.
pub(crate) const KEPT_S: usize = 900;

/// One operation of one table or index in one second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct OpPoint {
    pub resource: String,
    pub op: &'static str,
    pub consumed: Option<f64>,
    pub provisioned: u64,
    pub recommended: u64,
    pub min: u64,
    pub max: u64,
}

/// A fleet (the group, or an ECS service) in one second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct FleetPoint {
    pub group: String,
    pub desired: u32,
    pub recommended: u32,
    pub serving: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Point {
    /// Unix seconds.
    pub t: i64,
    pub ops: Vec<OpPoint>,
    pub fleets: Vec<FleetPoint>,
}

/// The last [`KEPT_S`] seconds.
#[derive(Clone, Default)]
pub(crate) struct History(Arc<Mutex<VecDeque<Point>>>);

impl History {
    pub(crate) fn push(&self, p: Point) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.back().is_some_and(|last| last.t >= p.t) {
            return;
        }
        h.push_back(p);
        while h.len() > KEPT_S {
            h.pop_front();
        }
    }

    pub(crate) fn since(&self, seconds: usize) -> Vec<Point> {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let skip = h.len().saturating_sub(seconds);
        h.iter().skip(skip).cloned().collect()
    }
}

impl ApiState {
    /// What the charts draw now.
    pub(crate) fn history_point(&self) -> Point {
        let b = &self.board;
        let ops = b
            .decisions
            .tables
            .get()
            .iter()
            .flat_map(|a| {
                a.ops.iter().map(move |o| OpPoint {
                    resource: a.resource.clone(),
                    op: o.op.as_str(),
                    consumed: o.demand,
                    provisioned: o.provisioned,
                    recommended: a.recommended(o.op, o.provisioned),
                    min: o.limits.min,
                    max: o.limits.max,
                })
            })
            .collect();
        let fleets = b
            .decisions
            .group
            .get()
            .into_iter()
            .chain(b.decisions.services.get())
            .map(|g| FleetPoint {
                recommended: match g.verdict {
                    crate::policy::asg::GroupVerdict::Set { to, .. } => to,
                    _ => g.desired,
                },
                group: g.group,
                desired: g.desired,
                serving: g.counts.serving,
            })
            .collect();
        Point {
            t: self.clock.now().timestamp(),
            ops,
            fleets,
        }
    }
}

/// Records a point every second until `stop`.
pub(crate) async fn record(
    state: ApiState,
    history: History,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => history.push(state.history_point()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_fifteen_minutes_in_order() {
        let h = History::default();
        for t in 0..1000 {
            h.push(Point {
                t,
                ops: Vec::new(),
                fleets: Vec::new(),
            });
        }
        h.push(Point {
            t: 5,
            ops: Vec::new(),
            fleets: Vec::new(),
        });
        let all = h.since(10_000);
        assert_eq!(all.len(), KEPT_S);
        assert_eq!((all[0].t, all[KEPT_S - 1].t), (100, 999));
        assert_eq!(
            h.since(3).iter().map(|p| p.t).collect::<Vec<_>>(),
            vec![997, 998, 999]
        );
    }
}
