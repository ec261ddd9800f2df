//! Group membership over time: when each instance was first seen and since
//! when it has been pending, the changes between two descriptions (joined,
//! became InService, left, turned Unhealthy), the group's own boot times
//! (Pending -> InService, as seen), and the derived counts the policy uses.
//! Pure: descriptions and instants in, state out.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::GroupDescription;

/// Events kept in memory.
pub(crate) const EVENTS_KEPT: usize = 1000;
/// Boot times kept (the newest).
pub(crate) const BOOTS_KEPT: usize = 20;
/// Boot times seen before the learned warm-up replaces the configured one.
pub(crate) const BOOTS_TO_LEARN: usize = 3;
/// The learned warm-up is the slowest recent boot with this margin.
pub(crate) const BOOT_MARGIN: f64 = 1.25;
/// A learned warm-up is never shorter than this (boots seen between two
/// polls look instant).
pub(crate) const MIN_LEARNED_WARMUP_S: f64 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    Joined,
    BecameInService,
    Left,
    TurnedUnhealthy,
}

impl MembershipChange {
    /// The logs' word for it (the API's, serde's).
    pub fn as_str(self) -> &'static str {
        match self {
            MembershipChange::Joined => "joined",
            MembershipChange::BecameInService => "became_in_service",
            MembershipChange::Left => "left",
            MembershipChange::TurnedUnhealthy => "turned_unhealthy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MembershipEvent {
    pub time: DateTime<Utc>,
    pub instance: String,
    pub change: MembershipChange,
    pub lifecycle_state: String,
}

/// Instances by what they mean for capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GroupCounts {
    /// InService and Healthy, and past `settle`: sharing the traffic.
    pub serving: u32,
    /// InService and Healthy for less than `settle`: the load balancer is
    /// still shifting traffic to them. Capacity on its way, like warming.
    pub settling: u32,
    /// Pending* for less than the warm-up: capacity on its way.
    pub warming: u32,
    /// Pending* for longer than the warm-up: not counted as capacity.
    pub pending_too_long: u32,
    /// Terminating*, Detaching, Terminated.
    pub leaving: u32,
    /// EnteringStandby, Standby.
    pub standby: u32,
    /// Warmed:* (warm pool).
    pub warm_pool: u32,
    /// InService but Unhealthy.
    pub unhealthy: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct InstanceTimes {
    pub first_seen: DateTime<Utc>,
    /// Since when the instance has been in a Pending* state, if it is.
    pub pending_since: Option<DateTime<Utc>>,
    /// Since when it has been InService, when rapidscale saw it become so
    /// (None: InService when first seen, or not InService).
    pub in_service_since: Option<DateTime<Utc>>,
    /// It joined after rapidscale's first description: its Pending time
    /// started when it launched, so its boot time can be learnt.
    pub joined_seen: bool,
    /// It came out of the group's warm pool (seen Warmed:* before): it
    /// boots faster, and its boot is learnt apart.
    pub from_warm_pool: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Membership {
    pub instances: BTreeMap<String, InstanceTimes>,
    pub events: VecDeque<MembershipEvent>,
    /// Seconds from Pending to InService of the newest instances seen
    /// making the whole transition (oldest first).
    pub boots_s: VecDeque<f64>,
    /// The same for instances that came out of the warm pool.
    pub warm_boots_s: VecDeque<f64>,
    #[serde(skip)]
    last: Option<GroupDescription>,
}

fn is_pending(state: &str) -> bool {
    state.starts_with("Pending")
}

impl Membership {
    /// Folds in a new description; returns the changes it brought.
    pub(crate) fn update(
        &mut self,
        desc: &GroupDescription,
        now: DateTime<Utc>,
    ) -> Vec<MembershipEvent> {
        let mut changes = Vec::new();
        let previous = self.last.take();
        let before = |id: &str| {
            previous
                .as_ref()
                .and_then(|p| p.instances.iter().find(|i| i.id == id))
        };
        for i in &desc.instances {
            let old = before(&i.id);
            let mut push = |change| {
                changes.push(MembershipEvent {
                    time: now,
                    instance: i.id.clone(),
                    change,
                    lifecycle_state: i.lifecycle_state.clone(),
                })
            };
            match old {
                None => {
                    // The first description is the starting point, not a wave of joins.
                    if previous.is_some() {
                        push(MembershipChange::Joined);
                    }
                }
                Some(o) => {
                    if o.lifecycle_state != "InService" && i.lifecycle_state == "InService" {
                        push(MembershipChange::BecameInService);
                    }
                    if o.health == "Healthy" && i.health == "Unhealthy" {
                        push(MembershipChange::TurnedUnhealthy);
                    }
                }
            }
            let seen_before = previous.is_some();
            let times = self.instances.entry(i.id.clone()).or_insert(InstanceTimes {
                first_seen: now,
                pending_since: None,
                in_service_since: None,
                joined_seen: seen_before,
                from_warm_pool: false,
            });
            let was_warm = old.is_some_and(|o| o.lifecycle_state.starts_with("Warmed"));
            if was_warm && !i.lifecycle_state.starts_with("Warmed") {
                // Out of the pool into the group: its boot starts now.
                times.from_warm_pool = true;
                times.joined_seen = true;
            }
            let was_in_service = old.is_some_and(|o| o.lifecycle_state == "InService");
            if i.lifecycle_state != "InService" {
                times.in_service_since = None;
            } else if !was_in_service && seen_before {
                times.in_service_since = Some(now);
                // A boot seen from its start: its time is the group's own.
                if let Some(since) = times.pending_since.filter(|_| times.joined_seen) {
                    let boots = if times.from_warm_pool {
                        &mut self.warm_boots_s
                    } else {
                        &mut self.boots_s
                    };
                    if boots.len() == BOOTS_KEPT {
                        boots.pop_front();
                    }
                    boots.push_back((now - since).as_seconds_f64());
                }
            }
            times.pending_since = match (is_pending(&i.lifecycle_state), times.pending_since) {
                (true, Some(since)) => Some(since),
                (true, None) => Some(now),
                (false, _) => None,
            };
        }
        if let Some(p) = &previous {
            for o in &p.instances {
                if !desc.instances.iter().any(|i| i.id == o.id) {
                    changes.push(MembershipEvent {
                        time: now,
                        instance: o.id.clone(),
                        change: MembershipChange::Left,
                        lifecycle_state: o.lifecycle_state.clone(),
                    });
                }
            }
        }
        self.instances
            .retain(|id, _| desc.instances.iter().any(|i| &i.id == id));
        for e in &changes {
            if self.events.len() == EVENTS_KEPT {
                self.events.pop_front();
            }
            self.events.push_back(e.clone());
        }
        self.last = Some(desc.clone());
        changes
    }

    /// How long an instance may stay Pending and still count as capacity on
    /// its way: the slowest of the group's recent boots x [`BOOT_MARGIN`]
    /// once [`BOOTS_TO_LEARN`] were seen, otherwise `configured`.
    pub(crate) fn warmup(&self, configured: Duration) -> Duration {
        learnt(&self.boots_s, configured)
    }

    /// The same for instances out of the warm pool (`configured`: the
    /// `warm_pool_warmup`), never longer than the cold warm-up.
    pub(crate) fn warm_warmup(&self, configured: Duration, cold: Duration) -> Duration {
        learnt(&self.warm_boots_s, configured).min(cold)
    }

    /// Counts by capacity meaning at `now`; an instance out of the warm
    /// pool is capacity on its way for `warmups.1`, any other for `warmups.0`.
    pub(crate) fn counts(
        &self,
        desc: &GroupDescription,
        now: DateTime<Utc>,
        warmups: (Duration, Duration),
        settle: Duration,
    ) -> GroupCounts {
        let mut c = GroupCounts::default();
        let delta = |d: Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
        let (cold, warm) = (delta(warmups.0), delta(warmups.1));
        let settle = chrono::TimeDelta::from_std(settle).unwrap_or(chrono::TimeDelta::MAX);
        for i in &desc.instances {
            let s = i.lifecycle_state.as_str();
            if is_pending(s) {
                let times = self.instances.get(&i.id);
                let since = times.and_then(|t| t.pending_since).unwrap_or(now);
                let warmup = if times.is_some_and(|t| t.from_warm_pool) {
                    warm
                } else {
                    cold
                };
                if now - since < warmup {
                    c.warming += 1;
                } else {
                    c.pending_too_long += 1;
                }
            } else if s == "InService" {
                if i.health == "Healthy" {
                    let since = self.instances.get(&i.id).and_then(|t| t.in_service_since);
                    if since.is_some_and(|t| now - t < settle) {
                        c.settling += 1;
                    } else {
                        c.serving += 1;
                    }
                } else {
                    c.unhealthy += 1;
                }
            } else if s.starts_with("Terminat") || s.starts_with("Detach") {
                c.leaving += 1;
            } else if s.contains("Standby") {
                c.standby += 1;
            } else if s.starts_with("Warmed") {
                c.warm_pool += 1;
            }
        }
        c
    }
}

/// The slowest of `boots` x [`BOOT_MARGIN`] (at least
/// [`MIN_LEARNED_WARMUP_S`]) once [`BOOTS_TO_LEARN`] were seen, otherwise
/// `configured`.
fn learnt(boots: &VecDeque<f64>, configured: Duration) -> Duration {
    if boots.len() < BOOTS_TO_LEARN {
        return configured;
    }
    let slowest = boots.iter().copied().fold(0.0, f64::max);
    Duration::from_secs_f64((slowest * BOOT_MARGIN).max(MIN_LEARNED_WARMUP_S))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::InstanceDescription;

    #[test]
    fn logs_use_the_apis_words() {
        use crate::cloud::CloudErrorKind as K;
        use MembershipChange as M;
        for c in [M::Joined, M::BecameInService, M::Left, M::TurnedUnhealthy] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        for k in [
            K::Throttled,
            K::LimitExceeded,
            K::NotFound,
            K::ResourceBusy,
            K::Unavailable,
            K::AccessDenied,
            K::ConditionFailed,
            K::Other,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn group(instances: &[(&str, &str, &str)]) -> GroupDescription {
        GroupDescription {
            name: "web".into(),
            desired: instances.len() as u32,
            min: 1,
            max: 10,
            instances: instances
                .iter()
                .map(|(id, state, health)| InstanceDescription {
                    id: id.to_string(),
                    lifecycle_state: state.to_string(),
                    health: health.to_string(),
                    availability_zone: None,
                })
                .collect(),
        }
    }

    #[test]
    fn changes_between_descriptions() {
        let mut m = Membership::default();
        assert!(
            m.update(&group(&[("i-1", "InService", "Healthy")]), t(0))
                .is_empty(),
            "the first view is the baseline"
        );
        let e = m.update(
            &group(&[
                ("i-1", "InService", "Healthy"),
                ("i-2", "Pending", "Healthy"),
            ]),
            t(5),
        );
        assert_eq!(
            e.iter()
                .map(|e| (e.instance.as_str(), e.change))
                .collect::<Vec<_>>(),
            vec![("i-2", MembershipChange::Joined)]
        );
        let e = m.update(
            &group(&[
                ("i-1", "InService", "Unhealthy"),
                ("i-2", "InService", "Healthy"),
            ]),
            t(10),
        );
        let got: Vec<_> = e.iter().map(|e| (e.instance.as_str(), e.change)).collect();
        assert_eq!(
            got,
            vec![
                ("i-1", MembershipChange::TurnedUnhealthy),
                ("i-2", MembershipChange::BecameInService)
            ]
        );
        let e = m.update(&group(&[("i-2", "InService", "Healthy")]), t(15));
        assert_eq!(e[0].change, MembershipChange::Left);
        assert_eq!(m.events.len(), 4);
        assert_eq!(m.instances.len(), 1);
    }

    #[test]
    fn pending_time_and_counts() {
        let mut m = Membership::default();
        let warmup = Duration::from_secs(180);
        let g = group(&[
            ("i-1", "InService", "Healthy"),
            ("i-2", "Pending", "Healthy"),
            ("i-3", "Pending:Wait", "Healthy"),
            ("i-4", "Terminating:Wait", "Healthy"),
            ("i-5", "Standby", "Healthy"),
            ("i-6", "Warmed:Stopped", "Healthy"),
            ("i-7", "InService", "Unhealthy"),
        ]);
        m.update(&g, t(0));
        let c = m.counts(&g, t(100), (warmup, warmup), Duration::from_secs(30));
        assert_eq!(
            c,
            GroupCounts {
                serving: 1,
                settling: 0,
                warming: 2,
                pending_too_long: 0,
                leaving: 1,
                standby: 1,
                warm_pool: 1,
                unhealthy: 1
            }
        );
        // Still pending after the warm-up: no longer capacity on its way.
        m.update(&g, t(150));
        assert_eq!(m.instances["i-2"].pending_since, Some(t(0)));
        let c = m.counts(&g, t(200), (warmup, warmup), Duration::from_secs(30));
        assert_eq!((c.warming, c.pending_too_long), (0, 2));
    }

    #[test]
    fn new_in_service_instances_settle_before_they_count_as_serving() {
        let mut m = Membership::default();
        let (warmup, settle) = (Duration::from_secs(180), Duration::from_secs(30));
        m.update(
            &group(&[
                ("i-1", "InService", "Healthy"),
                ("i-2", "Pending", "Healthy"),
            ]),
            t(0),
        );
        let g = group(&[
            ("i-1", "InService", "Healthy"),
            ("i-2", "InService", "Healthy"),
        ]);
        m.update(&g, t(60));
        let c = m.counts(&g, t(70), (warmup, warmup), settle);
        assert_eq!(
            (c.serving, c.settling),
            (1, 1),
            "i-1 was InService when first seen: settled"
        );
        let c = m.counts(&g, t(90), (warmup, warmup), settle);
        assert_eq!((c.serving, c.settling), (2, 0));
    }

    #[test]
    fn the_warm_up_is_learnt_from_the_groups_own_boots() {
        let mut m = Membership::default();
        let configured = Duration::from_secs(180);
        // Already Pending at the first description: its start is unknown,
        // so its boot is not learnt.
        m.update(&group(&[("i-0", "Pending", "Healthy")]), t(0));
        m.update(&group(&[("i-0", "InService", "Healthy")]), t(10));
        assert!(m.boots_s.is_empty());
        // Three instances launched and seen through: 40 s, 55 s, 48 s.
        let mut now = 100;
        for (id, boot) in [("i-1", 40), ("i-2", 55), ("i-3", 48)] {
            m.update(
                &group(&[("i-0", "InService", "Healthy"), (id, "Pending", "Healthy")]),
                t(now),
            );
            assert_eq!(m.warmup(configured), configured, "not learnt yet");
            m.update(
                &group(&[
                    ("i-0", "InService", "Healthy"),
                    (id, "InService", "Healthy"),
                ]),
                t(now + boot),
            );
            now += 200;
        }
        assert_eq!(Vec::from(m.boots_s.clone()), [40.0, 55.0, 48.0]);
        // The slowest recent boot with a 25 % margin.
        assert_eq!(m.warmup(configured), Duration::from_secs_f64(55.0 * 1.25));
        // An instance Pending for 70 s is now "pending too long", not capacity
        // on its way, though the configured warm-up (180 s) would count it.
        let g = group(&[
            ("i-0", "InService", "Healthy"),
            ("i-9", "Pending", "Healthy"),
        ]);
        m.update(&g, t(now));
        let c = m.counts(
            &g,
            t(now + 70),
            (m.warmup(configured), m.warmup(configured)),
            Duration::from_secs(30),
        );
        assert_eq!((c.warming, c.pending_too_long), (0, 1));
        let c = m.counts(
            &g,
            t(now + 70),
            (configured, configured),
            Duration::from_secs(30),
        );
        assert_eq!((c.warming, c.pending_too_long), (1, 0));
    }

    #[test]
    fn instances_out_of_the_warm_pool_boot_faster_and_are_learnt_apart() {
        let mut m = Membership::default();
        let cold = Duration::from_secs(180);
        let warm_configured = Duration::from_secs(60);
        m.update(
            &group(&[
                ("a", "InService", "Healthy"),
                ("p1", "Warmed:Stopped", "Healthy"),
            ]),
            t(0),
        );
        assert_eq!(
            m.counts(
                &group(&[
                    ("a", "InService", "Healthy"),
                    ("p1", "Warmed:Stopped", "Healthy")
                ]),
                t(0),
                (cold, warm_configured),
                Duration::ZERO
            )
            .warm_pool,
            1
        );
        // Three pool instances leave the pool and boot in 20 s each, one cold
        // instance in 120 s.
        for (k, id) in ["p1", "p2", "p3"].iter().enumerate() {
            let at = 100 * (k as i64 + 1);
            m.update(
                &group(&[
                    ("a", "InService", "Healthy"),
                    (id, "Warmed:Stopped", "Healthy"),
                ]),
                t(at),
            );
            m.update(
                &group(&[("a", "InService", "Healthy"), (id, "Pending", "Healthy")]),
                t(at + 1),
            );
            // Pending 70 s later: past the warm-pool warm-up, not capacity on its way.
            if k == 0 {
                let c = m.counts(
                    &group(&[("a", "InService", "Healthy"), (id, "Pending", "Healthy")]),
                    t(at + 71),
                    (cold, warm_configured),
                    Duration::ZERO,
                );
                assert_eq!((c.warming, c.pending_too_long), (0, 1));
            }
            m.update(
                &group(&[("a", "InService", "Healthy"), (id, "InService", "Healthy")]),
                t(at + 21),
            );
        }
        m.update(&group(&[("a", "InService", "Healthy")]), t(500));
        m.update(
            &group(&[("a", "InService", "Healthy"), ("c", "Pending", "Healthy")]),
            t(501),
        );
        m.update(
            &group(&[("a", "InService", "Healthy"), ("c", "InService", "Healthy")]),
            t(621),
        );
        assert_eq!(m.warm_boots_s.len(), 3);
        assert_eq!(m.boots_s.len(), 1);
        // The pool's warm-up is learnt (20 s x 1.25, at least 30 s); the
        // cold one is not yet (one boot).
        assert_eq!(
            m.warm_warmup(warm_configured, cold),
            Duration::from_secs(30)
        );
        assert_eq!(m.warmup(cold), cold);
    }
}
