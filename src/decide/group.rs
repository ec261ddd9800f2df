//! The Auto Scaling group decider: read the fleet's requests/s (own demand
//! x the fleet factor, see `fleet.rs`), count serving and warming
//! instances, ask the group policy, and say what to do with its verdict.
//!
//! Instances that just became InService are not counted as serving until
//! `settle` has passed (the load balancer is still moving traffic to
//! them); meanwhile they count as capacity on its way.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cooldown::Cooldown;
use super::fleet::FleetReading;
use super::gate::{first_gate, GateInputs};
use super::{dispose, labelled, Common, Disposition, GroupAction};
use crate::actuator::GroupChange;
use crate::audit::Outcome;
use crate::cloud::members::{GroupCounts, MembershipEvent};
use crate::cloud::tracker::CloudView;
use crate::cloud::FleetId;
use crate::config::{AsgConfig, Config, GroupLimits, Mode};
use crate::policy::asg::{
    decide_group, GroupContext, GroupHold, GroupState, GroupVerdict, PastChange,
};
use crate::policy::demand::DemandView;
use crate::series::SeriesStore;

#[derive(Debug, Clone, Serialize)]
pub struct GroupAdvice {
    /// The group's name, or `cluster/service`.
    pub group: String,
    /// Which kind of fleet: the Auto Scaling group, or an ECS service.
    pub resource: FleetId,
    pub mode: Mode,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    pub counts: GroupCounts,
    /// The warm-up in effect: learnt from the group's own boots once
    /// enough were seen (`warmup_learned`), else `asg.warmup`.
    pub warmup_s: f64,
    pub warmup_learned: bool,
    /// This instance's requests/s (newest known second or rate so far).
    pub own_rps: Option<f64>,
    /// The fleet's requests/s as read (own x the fleet factor).
    pub fleet_rps: Option<f64>,
    /// The fleet's figure is an estimate (see `fleet`).
    pub fleet_estimated: bool,
    pub fleet: FleetReading,
    pub limits: GroupLimits,
    pub verdict: GroupVerdict,
    pub gate: Option<String>,
    /// The group's own scaling policies, which may fight rapidscale.
    pub foreign_policies: Vec<String>,
    pub recent_events: Vec<MembershipEvent>,
}

/// A fleet read as an estimate is not exact: no scale-in on it.
pub(crate) fn hold_scale_in_on_estimates(
    verdict: GroupVerdict,
    desired: u32,
    fleet: &FleetReading,
) -> GroupVerdict {
    match verdict {
        GroupVerdict::Set { to, .. } if to < desired && !fleet.exact => GroupVerdict::Hold {
            reason: GroupHold::FleetEstimated,
        },
        v => v,
    }
}

/// Local hour limits and the prewarm min at `now`.
pub(crate) fn group_context(
    config: &Config,
    asg: &AsgConfig,
    now: DateTime<Utc>,
    warmup: std::time::Duration,
) -> GroupContext {
    let limits = config.schedule.row(&asg.hours, now);
    let ahead = now + chrono::TimeDelta::from_std(asg.policy.prewarm).unwrap_or_default();
    let next = config.schedule.row(&asg.hours, ahead);
    GroupContext {
        limits,
        prewarm_min: (next.min > limits.min).then_some(next.min),
        announced_min: None,
        warmup_s: warmup.as_secs_f64(),
    }
}

/// Changes older than this are forgotten (longer than any rate rule's
/// period or warm-up anyone sets).
const HISTORY_KEPT_S: i64 = 3600;

/// What one step decided.
#[derive(Debug, Default)]
pub(crate) struct GroupStep {
    pub advice: Option<GroupAdvice>,
    pub action: Option<GroupAction>,
}

pub(crate) struct GroupDecider {
    config: Arc<Config>,
    /// The group, or the ECS service, this decider sizes.
    fleet: FleetId,
    /// Its key (the group's name, or `cluster/service`).
    group: String,
    /// `[asg]`, or the service's `[[ecs.services]]` block.
    settings: AsgConfig,
    foreign_policies: Vec<String>,
    last_recorded: Option<String>,
    /// A SetDesiredCapacity call not answered yet.
    in_flight: bool,
    /// The pause after changes whose retries all failed.
    cooldown: Cooldown,
    /// The change in flight (from, to), and the changes made (when, from,
    /// to), newest last: what the rate rules and the warm-up count.
    sent: Option<(u32, u32)>,
    made: std::collections::VecDeque<(DateTime<Utc>, u32, u32)>,
    /// The gate holding its decisions now (its end is logged once).
    held: super::HeldBy,
}

impl GroupDecider {
    /// The decider of a fleet (the group, or an ECS service), with its
    /// own settings (`[asg]`, or the service's block).
    pub(crate) fn new(
        config: Arc<Config>,
        fleet: FleetId,
        settings: AsgConfig,
        foreign_policies: Vec<String>,
    ) -> Self {
        Self {
            config,
            group: fleet.key(),
            held: super::HeldBy::new(fleet.aws_service()),
            fleet,
            settings,
            foreign_policies,
            last_recorded: None,
            in_flight: false,
            cooldown: Cooldown::default(),
            sent: None,
            made: Default::default(),
        }
    }

    /// The gates that stopped holding since the last call.
    pub(crate) fn take_gate_ends(&mut self) -> Vec<super::GateEnded> {
        self.held.take_ended()
    }

    /// Decides on `config` from now on (a `SIGHUP` re-read): the group's
    /// `[asg]` or the service's block from it, when it is still there.
    pub(crate) fn use_config(&mut self, config: Arc<Config>) {
        let settings = match &self.fleet {
            FleetId::Group { .. } => config.asg.clone(),
            FleetId::Service { cluster, service } => config
                .ecs_services
                .iter()
                .find(|s| &s.cluster == cluster && &s.service == service)
                .map(|s| s.fleet.clone()),
        };
        if let Some(s) = settings {
            // The group's name may have come from instance metadata.
            let name = self.settings.name.clone();
            self.settings = AsgConfig { name, ..s };
        }
        self.config = config;
    }

    pub(crate) fn fleet(&self) -> &FleetId {
        &self.fleet
    }

    /// The change sent to the actuator ended with `outcome`.
    pub(crate) fn completed(&mut self, outcome: Outcome, now: DateTime<Utc>) {
        self.in_flight = false;
        self.cooldown.record(&self.group, outcome, now);
        if let (Outcome::Applied, Some((from, to))) = (outcome, self.sent.take()) {
            self.made.push_back((now, from, to));
        }
        while self
            .made
            .front()
            .is_some_and(|(at, _, _)| (now - *at).num_seconds() > HISTORY_KEPT_S)
        {
            self.made.pop_front();
        }
    }

    /// The changes made, as the policy reads them at `now`.
    fn history(&self, now: DateTime<Utc>) -> Vec<PastChange> {
        self.made
            .iter()
            .map(|(at, from, to)| PastChange {
                age_s: (now - *at).num_milliseconds() as f64 / 1000.0,
                from: *from,
                to: *to,
            })
            .collect()
    }

    /// Decides the group's size at `common.now`.
    pub(crate) fn step(
        &mut self,
        store: &SeriesStore,
        cloud: &CloudView,
        common: &Common,
    ) -> GroupStep {
        let config = self.config.clone();
        let settings = self.settings.clone();
        let asg = &settings;
        let Some((tracked, members)) = cloud.fleet(&self.fleet) else {
            return GroupStep::default();
        };
        let Some(desc) = &tracked.current else {
            return GroupStep::default();
        };
        let now = common.now;
        // The group's own boot times, once seen, replace the configured warm-up.
        let warmup = members.warmup(asg.policy.warmup);
        // Instances out of the warm pool are faster capacity: shorter warm-up.
        let warm_warmup = members.warm_warmup(asg.policy.warm_pool_warmup, warmup);
        let counts = members.counts(desc, now, (warmup, warm_warmup), asg.policy.settle);
        let mut ctx = group_context(&config, asg, now, warmup);
        ctx.announced_min = self.announced(store, common, &ctx, warmup + asg.policy.settle);
        let stale_s = config.ingest.stale_after.as_secs() as i64;
        let own = self.own_demand(store, asg, now);
        let own_rps = own.newest(1).first().copied().filter(|v| !v.is_nan());
        let fleet = &common.fleet;
        let state = GroupState {
            desired: desc.desired,
            group_min: desc.min,
            group_max: desc.max,
            serving: counts.serving,
            warming: counts.warming + counts.settling,
        };
        let history = self.history(now);
        let verdict = decide_group(
            &own.scaled(fleet.factor),
            &state,
            &ctx,
            &asg.policy,
            stale_s,
            &history,
        );
        let mut verdict = hold_scale_in_on_estimates(verdict, desc.desired, fleet);
        let configured = asg.mode.unwrap_or(config.mode);
        let runtime = common.overrides.effective(&[&self.group], configured);
        let acting = runtime.acting().unwrap_or(configured);
        let mode = self.approved(acting, &mut verdict, desc.desired, common);
        let within = chrono::TimeDelta::from_std(asg.poll_interval * 3).unwrap_or_default();
        let aws_auto_scaling: Option<String>;
        let gate = first_gate(&GateInputs {
            runtime,
            mode,
            may_act: common.may_act,
            fleet_unseen: fleet.unseen.as_deref(),
            audit_unavailable: common.audit_unavailable.as_deref(),
            aws_auto_scaling: match &self.fleet {
                FleetId::Service { cluster, service } => {
                    aws_auto_scaling = cloud.ecs_auto_scaling(cluster, service);
                    aws_auto_scaling.as_deref()
                }
                FleetId::Group { .. } => None,
            },
            cooldown: self.cooldown.wait(&self.group, now),
            what: "group",
            described_recently: tracked.last_ok.is_some_and(|t| now - t <= within),
            on_demand: false,
            statuses: [None, None],
            in_flight: self.in_flight,
        });
        let action = match &verdict {
            GroupVerdict::Set { to, rule, evidence } => {
                let change = GroupChange {
                    fleet: self.fleet.clone(),
                    from: desc.desired,
                    to: *to,
                    rule: rule.as_str(),
                    fleet_rps: evidence.fleet_rps,
                    needed: evidence.needed,
                    window_s: evidence.window_s,
                    mode,
                };
                let fingerprint = format!("{}|{}->{}", mode.as_str(), change.from, change.to);
                dispose(&mut self.last_recorded, mode, fingerprint, gate.as_ref()).map(|d| {
                    GroupAction {
                        change,
                        disposition: labelled(d, fleet),
                    }
                })
            }
            GroupVerdict::Hold { .. } => {
                self.last_recorded = None;
                None
            }
        };
        if let Some(a) = action
            .as_ref()
            .filter(|a| a.disposition == Disposition::Apply)
        {
            self.in_flight = true;
            self.sent = Some((a.change.from, a.change.to));
        }
        let shown_gate = gate.filter(|_| matches!(verdict, GroupVerdict::Set { .. }));
        self.held.see(&self.group, shown_gate.as_ref(), now);
        let advice = GroupAdvice {
            group: self.group.clone(),
            resource: self.fleet.clone(),
            mode,
            warmup_s: warmup.as_secs_f64(),
            warmup_learned: members.boots_s.len() >= crate::cloud::members::BOOTS_TO_LEARN,
            desired: desc.desired,
            min: desc.min,
            max: desc.max,
            counts,
            own_rps,
            fleet_rps: own_rps.map(|r| r * fleet.factor),
            fleet_estimated: !fleet.exact,
            fleet: fleet.clone(),
            limits: ctx.limits,
            verdict,
            gate: shown_gate.map(|g| g.to_string()),
            foreign_policies: self.foreign_policies.clone(),
            recent_events: members.events.iter().rev().take(20).cloned().collect(),
        };
        GroupStep {
            advice: Some(advice),
            action,
        }
    }

    /// This rapidscale's own requests/s over the window the policy needs.
    /// Apply mode for this step when an operator approved this change (at
    /// its approved size, through the same gates); else `mode`.
    fn approved(
        &self,
        mode: Mode,
        verdict: &mut GroupVerdict,
        desired: u32,
        common: &Common,
    ) -> Mode {
        if let (Mode::DryRun, GroupVerdict::Set { to, .. }, Some(a)) =
            (mode, verdict, common.approved.as_ref())
        {
            let now = [("desired".to_string(), desired as u64, *to as u64)];
            if let Some(approved) = a.matches(&self.group, &now) {
                *to = approved[0].1 as u32;
                return Mode::Apply;
            }
        }
        mode
    }

    /// The instances an announced surge holding now needs (`lead` ahead
    /// of it: the learnt warm-up and `settle`): its fleet requests/s, or
    /// the multiple of the hour's usual, at the hour's target per instance.
    fn announced(
        &self,
        store: &SeriesStore,
        common: &Common,
        ctx: &crate::policy::asg::GroupContext,
        lead: std::time::Duration,
    ) -> Option<u32> {
        if common.announcements.is_empty() {
            return None;
        }
        let requests = self
            .config
            .ingest
            .requests_stream
            .as_deref()
            .and_then(|n| store.id(n));
        let usual = |a: &crate::announce::Announcement| {
            let id = requests?;
            crate::announce::usual_rate(store, id, &self.config.schedule, a.start)
                .map(|u| u * common.fleet.factor)
        };
        let (rate, _) =
            crate::announce::floor_rate(&common.announcements, common.now, lead, usual)?;
        Some(crate::policy::asg::needed(
            rate,
            &ctx.limits,
            self.settings.policy.headroom,
        ))
    }

    fn own_demand(&self, store: &SeriesStore, asg: &AsgConfig, now: DateTime<Utc>) -> DemandView {
        let history = asg.policy.stabilization.max(asg.policy.up_window).as_secs() as usize + 2;
        match self
            .config
            .ingest
            .requests_stream
            .as_deref()
            .and_then(|n| store.id(n))
        {
            Some(id) => {
                DemandView::from_store(store, id, now.timestamp_millis() as f64 / 1000.0, history)
            }
            None => DemandView {
                seconds: vec![f64::NAN; history],
                partial_rate: None,
                silent_for: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FleetView;
    use crate::policy::asg::{GroupEvidence, GroupRule};

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

    fn reading(exact: bool) -> FleetReading {
        FleetReading {
            view: FleetView::Sidecar,
            factor: 2.0,
            exact,
            unseen: None,
            estimate: None,
        }
    }

    #[test]
    fn no_scale_in_on_an_estimated_fleet() {
        assert_eq!(
            hold_scale_in_on_estimates(set(3), 5, &reading(false)),
            GroupVerdict::Hold {
                reason: GroupHold::FleetEstimated
            }
        );
        // Scale-out on an estimate goes ahead; an exact fleet scales in.
        assert_eq!(
            hold_scale_in_on_estimates(set(8), 5, &reading(false)),
            set(8)
        );
        assert_eq!(
            hold_scale_in_on_estimates(set(3), 5, &reading(true)),
            set(3)
        );
    }
}
