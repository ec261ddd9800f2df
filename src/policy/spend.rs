//! When to spend a decrease: DynamoDB allows only so many a UTC day (4 at
//! any time, then one an hour, [`super::budget`]), so a decrease spent now
//! can cost a larger one later. Pure: the ledger, the decreases wanted now
//! and an [`Outlook`] in, a verdict out.
//!
//! A worthwhile decrease is spent now unless one of these says wait:
//!
//! - **the rule**: DynamoDB would refuse it (or a LimitExceeded blocks it);
//! - **the reserve**: spending it would leave fewer than `reserve`
//!   decreases achievable before UTC midnight, and it saves less than twice
//!   `min_decrease` (the day's last decreases go to the largest savings);
//! - **the schedule**: the per-hour schedule lowers a limit later today (a
//!   hour with a lower `min` or `max` begins), and spending now would leave
//!   no decrease allowed at that instant;
//! - **a larger decrease ahead**: spending now blocks the next decrease for
//!   an hour, and demand is on its way down (the trajectory of the newest
//!   minutes, toward the level seen before them): the capacity saved by
//!   waiting for the lower level over the rest of the hour is larger than
//!   what the decrease now saves over the whole hour (by [`LARGER_BY`]).
//!
//! A decrease that enforces the hour's `max` never waits for the reserve,
//! the schedule or a larger one.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::budget::{next_midnight, rule_next, DecreaseLedger, DecreaseRule};
use super::dynamodb::{Change, Op, Rule};
use crate::config::DynamoPolicy;

/// Waiting for a larger decrease must save this much more than spending now.
pub(crate) const LARGER_BY: f64 = 1.25;

/// What is expected ahead for one table or index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outlook {
    /// Per operation: the capacity demand is expected to allow, and by when
    /// (demand falling toward the level it had before).
    pub lower: Vec<(Op, u64, DateTime<Utc>)>,
    /// Instants before UTC midnight at which the per-hour schedule lowers a
    /// limit of this resource.
    pub schedule_needs: Vec<DateTime<Utc>>,
}

/// Why a worthwhile decrease waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Wait {
    /// DynamoDB's rule allows none yet.
    Rule,
    /// Kept for the day's largest savings.
    Reserve,
    /// Kept for a decrease the per-hour schedule needs at `at`.
    Schedule { at: DateTime<Utc> },
    /// Kept for a larger decrease expected by `by`.
    Larger { by: DateTime<Utc> },
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::Rule => write!(f, "DynamoDB's decrease rule"),
            Wait::Reserve => write!(f, "the day's last decreases kept for larger savings"),
            Wait::Schedule { at } => {
                write!(f, "a decrease kept for the schedule at {}", at.to_rfc3339())
            }
            Wait::Larger { by } => write!(
                f,
                "kept for a larger decrease expected by {}",
                by.to_rfc3339()
            ),
        }
    }
}

/// Whether `downs` (the decreases wanted of one resource) may be spent at
/// `now`; the reason to wait otherwise.
pub(crate) fn may_spend(
    ledger: &DecreaseLedger,
    now: DateTime<Utc>,
    p: &DynamoPolicy,
    downs: &[Change],
    outlook: &Outlook,
) -> Result<(), Wait> {
    let rule = DecreaseRule::of(p);
    let Some(left) = ledger.left_after_spending(now, rule) else {
        return Err(Wait::Rule);
    };
    if downs.iter().any(|c| c.rule == Rule::HourMax) {
        return Ok(());
    }
    let big = downs
        .iter()
        .any(|c| (c.from - c.to.min(c.from)) as f64 >= 2.0 * p.min_decrease * c.from as f64);
    if left < p.reserve as usize && !big {
        return Err(Wait::Reserve);
    }
    if let Some(at) = schedule_left_short(ledger, now, rule, &outlook.schedule_needs) {
        return Err(Wait::Schedule { at });
    }
    if blocks_the_next(ledger, now, rule) {
        if let Some(by) = larger_ahead(now, downs, outlook) {
            return Err(Wait::Larger { by });
        }
    }
    Ok(())
}

/// Whether spending a decrease at `now` makes the next one wait.
fn blocks_the_next(ledger: &DecreaseLedger, now: DateTime<Utc>, rule: DecreaseRule) -> bool {
    let mut tally = ledger.tally(now);
    tally.count += 1;
    tally.last = Some(now);
    rule_next(&tally, now, next_midnight(now), rule) > now
}

/// The first schedule need that a decrease spent at `now` would leave
/// without an allowed decrease, when it would have had one otherwise.
fn schedule_left_short(
    ledger: &DecreaseLedger,
    now: DateTime<Utc>,
    rule: DecreaseRule,
    needs: &[DateTime<Utc>],
) -> Option<DateTime<Utc>> {
    let midnight = next_midnight(now);
    let first_short = |spend_now: bool| {
        let mut tally = ledger.tally(now);
        if spend_now {
            tally.count += 1;
            tally.last = Some(now);
        }
        for &at in needs.iter().filter(|t| **t > now && **t < midnight) {
            if rule_next(&tally, at, midnight, rule) != at {
                return Some(at);
            }
            tally.count += 1;
            tally.last = Some(at);
        }
        None
    };
    match (first_short(true), first_short(false)) {
        (Some(at), None) => Some(at),
        _ => None,
    }
}

/// When a larger decrease expected within the hour is worth keeping the
/// slot for: by when it is expected.
fn larger_ahead(now: DateTime<Utc>, downs: &[Change], outlook: &Outlook) -> Option<DateTime<Utc>> {
    let hour = 3600.0;
    let mut now_saves = 0.0;
    let mut later_saves = 0.0;
    let mut by = now;
    for c in downs {
        let saving_now = c.from.saturating_sub(c.to) as f64;
        now_saves += saving_now * hour;
        let (to, at) = outlook
            .lower
            .iter()
            .find(|(op, _, _)| *op == c.op)
            .map(|(_, to, at)| (*to, *at))
            .filter(|(to, at)| *to < c.to && *at < now + TimeDelta::hours(1))
            .unwrap_or((c.to, now));
        let wait_s = (at - now).as_seconds_f64().max(0.0);
        later_saves += c.from.saturating_sub(to) as f64 * (hour - wait_s);
        by = by.max(at);
    }
    (by > now && later_saves > LARGER_BY * now_saves).then_some(by)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::dynamodb::Evidence;

    fn t(hms: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-29T{hms}Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn down(from: u64, to: u64, rule: Rule) -> Change {
        Change {
            op: Op::Read,
            from,
            to,
            rule,
            evidence: Evidence {
                demand: None,
                threshold: None,
                window_s: 900,
            },
        }
    }

    fn spent(times: &[&str]) -> DecreaseLedger {
        let mut l = DecreaseLedger::default();
        for s in times {
            l.record(t(s));
        }
        l
    }

    const FOUR: [&str; 4] = ["00:00:00", "00:10:00", "00:20:00", "00:30:00"];

    #[test]
    fn spending_waits_for_the_rule_and_keeps_the_reserve_for_large_savings() {
        let p = DynamoPolicy::default();
        let none = Outlook::default();
        let small = [down(100, 75, Rule::LowDemand)];
        let large = [down(100, 50, Rule::LowDemand)];
        assert_eq!(
            may_spend(&spent(&FOUR), t("01:00:00"), &p, &small, &none),
            Err(Wait::Rule)
        );
        assert_eq!(
            may_spend(&spent(&FOUR), t("01:30:00"), &p, &small, &none),
            Ok(())
        );
        // At 22:30, spending leaves one (23:30): below the reserve of 2.
        assert_eq!(
            may_spend(&spent(&FOUR), t("22:30:00"), &p, &small, &none),
            Err(Wait::Reserve)
        );
        assert_eq!(
            may_spend(&spent(&FOUR), t("22:30:00"), &p, &large, &none),
            Ok(())
        );
        // The hour's max is enforced whatever the reserve.
        assert_eq!(
            may_spend(
                &spent(&FOUR),
                t("22:30:00"),
                &p,
                &[down(100, 90, Rule::HourMax)],
                &none
            ),
            Ok(())
        );
    }

    #[test]
    fn a_decrease_the_schedule_needs_keeps_its_slot() {
        let p = DynamoPolicy::default();
        // The schedule lowers the min at 16:00; four spent, the last at 14:00.
        let needs = Outlook {
            schedule_needs: vec![t("16:00:00")],
            ..Outlook::default()
        };
        let ledger = spent(&["00:00:00", "00:10:00", "00:20:00", "14:00:00"]);
        let small = [down(100, 75, Rule::LowDemand)];
        // At 15:00 the next one is allowed at 16:00 exactly; at 15:10 it
        // would be 16:10, after the need.
        assert_eq!(
            may_spend(&ledger, t("15:00:00"), &p, &small, &needs),
            Ok(())
        );
        assert_eq!(
            may_spend(&ledger, t("15:10:00"), &p, &small, &needs),
            Err(Wait::Schedule { at: t("16:00:00") })
        );
        assert_eq!(
            may_spend(&ledger, t("16:00:01"), &p, &small, &needs),
            Ok(())
        );
        // With decreases of the four any-time ones left, nothing is blocked.
        let early = spent(&["00:00:00"]);
        assert_eq!(may_spend(&early, t("15:10:00"), &p, &small, &needs), Ok(()));
    }

    #[test]
    fn a_larger_decrease_expected_within_the_hour_keeps_the_slot() {
        let p = DynamoPolicy::default();
        let ledger = spent(&FOUR);
        let now = t("12:00:00");
        // 1,000 -> 700 now, or 1,000 -> 200 in 10 minutes: 300 x 60 min
        // against 800 x 50 min.
        let falling = Outlook {
            lower: vec![(Op::Read, 200, t("12:10:00"))],
            ..Outlook::default()
        };
        let now_down = [down(1000, 700, Rule::LowDemand)];
        assert_eq!(
            may_spend(&ledger, now, &p, &now_down, &falling),
            Err(Wait::Larger { by: t("12:10:00") })
        );
        // Not enough better, or too far: spend now.
        let slow = Outlook {
            lower: vec![(Op::Read, 650, t("12:10:00"))],
            ..Outlook::default()
        };
        assert_eq!(may_spend(&ledger, now, &p, &now_down, &slow), Ok(()));
        let late = Outlook {
            lower: vec![(Op::Read, 200, t("13:10:00"))],
            ..Outlook::default()
        };
        assert_eq!(may_spend(&ledger, now, &p, &now_down, &late), Ok(()));
        // With any-time decreases left, spending now blocks nothing.
        assert_eq!(
            may_spend(&spent(&["00:00:00"]), now, &p, &now_down, &falling),
            Ok(())
        );
    }
}
