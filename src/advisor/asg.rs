//! Auto Scaling group advisor: every `DECIDE_EVERY`, estimate the fleet's
//! requests/s, count serving and warming instances, ask the group policy,
//! and record (dry-run) or apply the new desired capacity.
//!
//! Single-sidecar estimate: fleet requests/s = this instance's requests/s x
//! serving instances. It assumes the load balancer spreads requests evenly.
//! It is wrong when it does not: sticky sessions, a new instance that the
//! load balancer has not yet weighted in (slow start), an instance taken
//! out of the target group but still InService, or a sidecar on an
//! instance that receives no traffic (it sees 0 and holds, since its
//! source goes silent). Fleet coordination replaces the estimate with an
//! exact sum. Instances that just became InService are not counted in the
//! multiplier until `settle` has passed (the load balancer is still moving
//! traffic to them); meanwhile they count as capacity on its way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actuator::{Actuator, GroupChange};
use crate::clock::SharedClock;
use crate::cloud::members::{GroupCounts, MembershipEvent};
use crate::cloud::tracker::{self, SharedView};
use crate::cloud::CloudBackend;
use crate::config::{Config, GroupLimits, Mode};
use crate::ingest::{lock, SharedStore};
use crate::policy::asg::{decide_group, GroupContext, GroupState, GroupVerdict};
use crate::policy::demand::DemandView;

#[derive(Debug, Clone, Serialize)]
pub struct GroupAdvice {
    pub group: String,
    pub mode: Mode,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub counts: GroupCounts,
    /// This instance's requests/s (newest known second or rate so far).
    pub own_rps: Option<f64>,
    /// The fleet estimate: own x serving.
    pub fleet_rps: Option<f64>,
    pub fleet_estimated: bool,
    pub limits: GroupLimits,
    pub verdict: GroupVerdict,
    pub gate: Option<String>,
    /// The group's own scaling policies, which may fight rapidscale.
    pub foreign_policies: Vec<String>,
    pub recent_events: Vec<MembershipEvent>,
}

pub type SharedGroupAdvice = Arc<RwLock<Option<GroupAdvice>>>;

/// A silent sidecar's traffic is estimated, never zero: no scale-in on an estimate.
pub fn hold_scale_in_on_estimates(
    verdict: GroupVerdict,
    desired: u32,
    scale: Option<crate::coord::task::FleetScale>,
) -> GroupVerdict {
    match verdict {
        GroupVerdict::Set { to, .. } if to < desired && scale.is_some_and(|f| f.estimated) => {
            GroupVerdict::Hold {
                reason: crate::policy::asg::GroupHold::FleetEstimated,
            }
        }
        v => v,
    }
}

pub struct GroupAdvisor<C> {
    pub config: Arc<Config>,
    pub group: String,
    pub store: SharedStore,
    pub view: SharedView,
    pub clock: SharedClock,
    pub actuator: Arc<Actuator<C>>,
    pub advice: SharedGroupAdvice,
    pub tasks: TaskTracker,
    pub foreign_policies: Vec<String>,
    /// Operator overrides of the mode (`POST /api/v1/mode`).
    pub modes: Arc<crate::mode::ModeSwitch>,
    /// With fleet coordination: only the lease holder applies.
    pub leadership: Option<crate::coord::task::SharedRole>,
    /// With fleet coordination: the fleet's totals from heartbeats.
    pub coordination: Option<crate::coord::task::SharedCoordination>,
    in_flight: Arc<AtomicBool>,
    /// The pause after changes whose retries all failed.
    cooldown: super::Cooldown,
    last_recorded: Option<String>,
}

/// Local hour limits and the prewarm min at `now`.
pub fn group_context(config: &Config, now: DateTime<Utc>) -> Option<GroupContext> {
    let asg = config.asg.as_ref()?;
    let limits = asg.hours[config.schedule.local_hour(now) as usize];
    let ahead = now + chrono::TimeDelta::from_std(asg.policy.prewarm).unwrap_or_default();
    let next = asg.hours[config.schedule.local_hour(ahead) as usize];
    Some(GroupContext {
        limits,
        prewarm_min: (next.min > limits.min).then_some(next.min),
    })
}

impl<C: CloudBackend> GroupAdvisor<C> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        group: String,
        store: SharedStore,
        view: SharedView,
        clock: SharedClock,
        actuator: Arc<Actuator<C>>,
        advice: SharedGroupAdvice,
        tasks: TaskTracker,
        foreign_policies: Vec<String>,
    ) -> Self {
        Self {
            config,
            group,
            store,
            view,
            clock,
            actuator,
            advice,
            tasks,
            foreign_policies,
            in_flight: Arc::new(AtomicBool::new(false)),
            cooldown: super::Cooldown::default(),
            modes: Arc::new(crate::mode::ModeSwitch::default()),
            leadership: None,
            coordination: None,
            last_recorded: None,
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        super::decide_every(shutdown, |token| self.tick(token)).await;
    }

    fn tick(&mut self, shutdown: &CancellationToken) {
        let Some(asg) = self.config.asg.clone() else {
            return;
        };
        let now = self.clock.now();
        let (desc, last_ok, counts, events) = {
            let v = tracker::read(&self.view);
            let Some(tracked) = &v.group else { return };
            let Some(desc) = tracked.current.clone() else {
                return;
            };
            let counts = v
                .members
                .counts(&desc, now, asg.policy.warmup, asg.policy.settle);
            let events: Vec<MembershipEvent> =
                v.members.events.iter().rev().take(20).cloned().collect();
            (desc, tracked.last_ok, counts, events)
        };
        let Some(ctx) = group_context(&self.config, now) else {
            return;
        };
        let stale_s = self.config.ingest.stale_after.as_secs() as i64;
        let history = asg.policy.stabilization.max(asg.policy.up_window).as_secs() as usize + 2;
        let scale;
        let own = {
            let store = lock(&self.store);
            scale = self.coordination.as_ref().and_then(|c| {
                crate::coord::task::fleet_scale(
                    c,
                    &store,
                    self.config.ingest.requests_stream.as_deref(),
                )
            });
            match self
                .config
                .ingest
                .requests_stream
                .as_deref()
                .and_then(|n| store.id(n))
            {
                Some(id) => DemandView::from_store(
                    &store,
                    id,
                    now.timestamp_millis() as f64 / 1000.0,
                    history,
                ),
                None => DemandView {
                    seconds: vec![f64::NAN; history],
                    partial_rate: None,
                    silent_for: None,
                },
            }
        };
        let own_rps = own.newest(1).first().copied().filter(|v| !v.is_nan());
        // With coordination the heartbeats give the fleet's own total;
        // otherwise this instance's traffic x the serving instances.
        let factor = scale.map_or(counts.serving.max(1) as f64, |f| f.factor);
        let fleet = own.scaled(factor);
        let state = GroupState {
            desired: desc.desired,
            group_min: desc.min,
            group_max: desc.max,
            serving: counts.serving,
            warming: counts.warming + counts.settling,
        };
        let verdict = decide_group(&fleet, &state, &ctx, &asg.policy, stale_s);
        let verdict = hold_scale_in_on_estimates(verdict, desc.desired, scale);
        let configured = asg.mode.unwrap_or(self.config.mode);
        let runtime = self.modes.effective(&[&self.group], configured);
        let mode = runtime.acting().unwrap_or(configured);
        let fresh = last_ok.is_some_and(|t| {
            now - t <= chrono::TimeDelta::from_std(asg.poll_interval * 3).unwrap_or_default()
        });
        let follower = mode == Mode::Apply
            && self
                .leadership
                .as_ref()
                .is_some_and(|r| !crate::coord::task::may_act(r, now.timestamp_millis()));
        let gate = if runtime == crate::mode::RuntimeMode::Paused {
            Some("paused by an operator".to_string())
        } else if follower {
            Some("follower: the leader acts".to_string())
        } else if !fresh {
            Some("group state is older than 3 poll intervals: AWS unavailable?".to_string())
        } else if let Some(why) = self
            .actuator
            .audit
            .unavailable()
            .filter(|_| mode == Mode::Apply)
        {
            Some(format!("audit log unavailable ({why}): recommending only"))
        } else if let Some(wait) = self
            .cooldown
            .gate(&self.group, now)
            .filter(|_| mode == Mode::Apply)
        {
            Some(wait)
        } else if self.in_flight.load(Ordering::SeqCst) {
            Some("a change of this group is in flight".to_string())
        } else {
            None
        };
        let acted_gate = gate
            .clone()
            .filter(|_| matches!(verdict, GroupVerdict::Set { .. }));
        *self.advice.write().unwrap_or_else(|p| p.into_inner()) = Some(GroupAdvice {
            group: self.group.clone(),
            mode,
            desired: desc.desired,
            min: desc.min,
            max: desc.max,
            counts,
            own_rps,
            fleet_rps: own_rps.map(|r| r * factor),
            fleet_estimated: scale.is_none_or(|f| f.estimated),
            limits: ctx.limits,
            verdict: verdict.clone(),
            gate: acted_gate,
            foreign_policies: self.foreign_policies.clone(),
            recent_events: events,
        });
        let GroupVerdict::Set { to, rule, evidence } = verdict else {
            self.last_recorded = None;
            return;
        };
        if gate.is_some() {
            return;
        }
        let change = GroupChange {
            group: self.group.clone(),
            from: desc.desired,
            to,
            rule: rule.as_str(),
            fleet_rps: evidence.fleet_rps,
            needed: evidence.needed,
            window_s: evidence.window_s,
            mode,
        };
        match mode {
            Mode::DryRun => {
                let fingerprint = format!("{}->{}", change.from, change.to);
                if self.last_recorded.as_deref() == Some(fingerprint.as_str()) {
                    return;
                }
                self.last_recorded = Some(fingerprint);
                let actuator = self.actuator.clone();
                let token = shutdown.clone();
                self.tasks.spawn(async move {
                    actuator.apply_group(change, token).await;
                });
            }
            Mode::Apply => {
                self.last_recorded = None;
                self.in_flight.store(true, Ordering::SeqCst);
                let actuator = self.actuator.clone();
                let in_flight = self.in_flight.clone();
                let token = shutdown.clone();
                let cooldown = self.cooldown.clone();
                let clock = self.clock.clone();
                let group = self.group.clone();
                self.tasks.spawn(async move {
                    let outcome = actuator.apply_group(change, token).await;
                    cooldown.record(&group, outcome, clock.now());
                    in_flight.store(false, Ordering::SeqCst);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coord::task::FleetScale;
    use crate::policy::asg::{GroupEvidence, GroupHold, GroupRule};

    fn set(to: u32) -> GroupVerdict {
        GroupVerdict::Set {
            to,
            rule: GroupRule::Stabilized,
            evidence: GroupEvidence {
                fleet_rps: Some(100.0),
                needed: Some(to),
                window_s: 300,
            },
        }
    }

    #[test]
    fn no_scale_in_on_an_estimated_fleet() {
        let estimated = Some(FleetScale {
            factor: 2.0,
            estimated: true,
        });
        assert_eq!(
            hold_scale_in_on_estimates(set(3), 5, estimated),
            GroupVerdict::Hold {
                reason: GroupHold::FleetEstimated
            }
        );
        // Scale-out on an estimate goes ahead; an exact fleet scales in.
        assert_eq!(hold_scale_in_on_estimates(set(8), 5, estimated), set(8));
        let exact = Some(FleetScale {
            factor: 2.0,
            estimated: false,
        });
        assert_eq!(hold_scale_in_on_estimates(set(3), 5, exact), set(3));
        assert_eq!(hold_scale_in_on_estimates(set(3), 5, None), set(3));
    }
}
