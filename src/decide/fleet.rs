//! How the deciders read the whole fleet's demand from what this rapidscale
//! sees, the same way for tables and the group (`[fleet]`, see
//! `config::FleetView`): a factor that turns its own demand into the
//! fleet's, whether that factor is exact, and, when this rapidscale cannot
//! see the fleet at all, why (nothing is applied then).

use serde::Serialize;

use crate::config::FleetView;
use crate::coord::task::FleetScale;

/// The fleet as the deciders read it at one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetReading {
    pub view: FleetView,
    /// Own demand x factor is the fleet's demand.
    pub factor: f64,
    /// False when the factor is an estimate: no decrease and no scale-in
    /// is made on it, and it is labelled as an estimate everywhere.
    pub exact: bool,
    /// Why the fleet cannot be seen now: in apply mode nothing is applied
    /// (the `fleet` gate) and `/readyz` says so.
    pub unseen: Option<String>,
    /// Why the factor is an estimate, when it is.
    pub estimate: Option<String>,
}

impl FleetReading {
    /// A reading for this rapidscale's own traffic only (nothing else to read).
    pub fn own() -> FleetReading {
        FleetReading {
            view: FleetView::Central,
            factor: 1.0,
            exact: true,
            unseen: None,
            estimate: None,
        }
    }
}

/// Reads the fleet. `serving`: the group's InService and Healthy instances,
/// when a group is tracked; `scale`: with coordination, the leader's
/// factor from the heartbeats (None: not read yet, or a follower);
/// `leads`: whether this sidecar holds the lease.
pub(crate) fn read_fleet(
    view: FleetView,
    serving: Option<u32>,
    scale: Option<FleetScale>,
    leads: bool,
) -> FleetReading {
    let by_serving = serving.unwrap_or(1).max(1) as f64;
    match view {
        FleetView::Central => FleetReading {
            view,
            factor: 1.0,
            exact: true,
            unseen: None,
            estimate: None,
        },
        FleetView::Single => match serving {
            Some(n) if n > 1 => FleetReading {
                view,
                factor: n as f64,
                exact: false,
                unseen: Some(format!(
                    "[fleet] view = \"single\" sees one instance's traffic, but {n} instances serve; {}",
                    crate::config::FLEET_FIX
                )),
                estimate: Some(format!(
                    "this instance's traffic x {n} serving instances (assumes an even spread)"
                )),
            },
            _ => FleetReading {
                view,
                factor: 1.0,
                exact: true,
                unseen: None,
                estimate: None,
            },
        },
        FleetView::Sidecar => match scale {
            Some(s) => FleetReading {
                view,
                factor: s.factor,
                exact: !s.estimated,
                unseen: None,
                estimate: s
                    .estimated
                    .then(|| "a sidecar is silent: its share is estimated".to_string()),
            },
            None if leads => FleetReading {
                view,
                factor: by_serving,
                exact: false,
                unseen: Some(
                    "the fleet's total is not known yet (no heartbeat round read, or this sidecar had no traffic in the fleet's newest second)"
                        .to_string(),
                ),
                estimate: Some("this instance's traffic x serving instances".to_string()),
            },
            None => FleetReading {
                view,
                factor: by_serving,
                exact: false,
                unseen: None,
                estimate: Some(
                    "follower: the leader reads the fleet; this instance's traffic x serving instances"
                        .to_string(),
                ),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_is_its_own_traffic_and_exact() {
        let r = read_fleet(FleetView::Central, Some(7), None, false);
        assert_eq!((r.factor, r.exact, r.unseen), (1.0, true, None));
    }

    #[test]
    fn single_is_exact_on_one_instance_and_unseen_on_more() {
        let one = read_fleet(FleetView::Single, Some(1), None, false);
        assert_eq!((one.factor, one.exact, one.unseen), (1.0, true, None));
        let no_group = read_fleet(FleetView::Single, None, None, false);
        assert!(no_group.exact);
        let three = read_fleet(FleetView::Single, Some(3), None, false);
        assert_eq!((three.factor, three.exact), (3.0, false));
        assert!(three.unseen.unwrap().contains("but 3 instances serve"));
        assert!(three.estimate.unwrap().contains("x 3 serving instances"));
    }

    #[test]
    fn sidecars_read_the_heartbeats_and_a_leader_without_them_is_unseen() {
        let exact = read_fleet(
            FleetView::Sidecar,
            Some(4),
            Some(FleetScale {
                factor: 3.9,
                estimated: false,
            }),
            true,
        );
        assert_eq!((exact.factor, exact.exact, exact.unseen), (3.9, true, None));
        let silent = read_fleet(
            FleetView::Sidecar,
            Some(4),
            Some(FleetScale {
                factor: 4.2,
                estimated: true,
            }),
            true,
        );
        assert!(!silent.exact && silent.unseen.is_none());
        let leader = read_fleet(FleetView::Sidecar, Some(4), None, true);
        assert_eq!((leader.factor, leader.exact), (4.0, false));
        assert!(leader.unseen.is_some());
        let follower = read_fleet(FleetView::Sidecar, Some(4), None, false);
        assert!(!follower.exact && follower.unseen.is_none());
        assert!(follower.estimate.unwrap().starts_with("follower"));
    }
}
