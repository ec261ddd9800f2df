//! DynamoDB's daily budget of capacity decreases, per table and separately
//! per global secondary index, as AWS documents it (Developer Guide,
//! "Service, account, and table quotas", *Decreasing provisioned
//! throughput*):
//!
//! - a UTC day starts with no decreases;
//! - up to 4 decreases are allowed at any time of the day;
//! - beyond those, one more is allowed whenever there has been no decrease
//!   in the past hour (the last one at least an hour ago);
//! - never more than the account's quota in one UTC day (27 by default: 4
//!   plus one for each of the 23 hours left; the quota can be raised in
//!   Service Quotas).
//!
//! [`DecreaseRule`] holds the two numbers; the simulator, the native model
//! and the daemon's ledger all go through [`rule_next`]. A
//! [`DecreaseLedger`] is the history of one resource; it is pure data
//! (serde) so the state directory can persist it. Planning on top of the
//! rule: [`DecreaseLedger::left_after_spending`] tells how many decreases
//! would still be achievable before UTC midnight.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

const HOUR: TimeDelta = TimeDelta::hours(1);

/// DynamoDB's decrease rule: `anytime` decreases at any time of the UTC
/// day, then one whenever the past hour had none, `quota` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecreaseRule {
    pub anytime: usize,
    pub quota: usize,
}

impl DecreaseRule {
    /// AWS's defaults.
    pub const AWS: DecreaseRule = DecreaseRule {
        anytime: 4,
        quota: 27,
    };

    /// AWS's rule with another daily quota (raised in Service Quotas).
    /// The rule for a policy's configured quota.
    pub fn of(p: &crate::config::DynamoPolicy) -> DecreaseRule {
        DecreaseRule::with_quota(p.decrease_quota as usize)
    }

    pub fn with_quota(quota: usize) -> DecreaseRule {
        DecreaseRule {
            anytime: DecreaseRule::AWS.anytime.min(quota),
            quota,
        }
    }
}

impl Default for DecreaseRule {
    fn default() -> Self {
        Self::AWS
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecreaseLedger {
    /// The UTC day `decreases` belong to.
    pub day: Option<NaiveDate>,
    /// Decreases made that day, oldest first.
    pub decreases: Vec<DateTime<Utc>>,
    /// AWS refused a decrease: none is tried before this instant.
    pub blocked_until: Option<DateTime<Utc>>,
}

pub(crate) fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now
        .date_naive()
        .succ_opt()
        .expect("dates before year 262143");
    tomorrow
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// What the rule looks at: the day's decreases, by count, and the last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tally {
    pub count: usize,
    pub last: Option<DateTime<Utc>>,
}

impl Tally {
    fn spend(&mut self, at: DateTime<Utc>) {
        self.count += 1;
        self.last = Some(at);
    }
}

/// DynamoDB's rule, in one place: the earliest instant at or after `now`
/// (before `midnight`, the end of the tally's day; `midnight` itself when
/// no more are allowed that day) at which a decrease is allowed. "No
/// decrease in the past hour" is read as: the last one at least an hour
/// before.
pub(crate) fn rule_next(
    t: &Tally,
    now: DateTime<Utc>,
    midnight: DateTime<Utc>,
    rule: DecreaseRule,
) -> DateTime<Utc> {
    if t.count >= rule.quota {
        return midnight;
    }
    match t.last {
        _ if t.count < rule.anytime => now,
        Some(last) => (last + HOUR).max(now).min(midnight),
        None => now,
    }
}

impl DecreaseLedger {
    /// Decreases made on `now`'s UTC day.
    pub fn today(&self, now: DateTime<Utc>) -> &[DateTime<Utc>] {
        if self.day == Some(now.date_naive()) {
            &self.decreases
        } else {
            &[]
        }
    }

    pub fn used_today(&self, now: DateTime<Utc>) -> usize {
        self.today(now).len()
    }

    pub(crate) fn tally(&self, now: DateTime<Utc>) -> Tally {
        let today = self.today(now);
        Tally {
            count: today.len(),
            last: today.last().copied(),
        }
    }

    fn blocked_at(&self, now: DateTime<Utc>) -> bool {
        self.blocked_until.is_some_and(|b| now < b)
    }

    /// Whether DynamoDB's rule allows a decrease at `now`.
    pub fn allowed_at(&self, now: DateTime<Utc>, rule: DecreaseRule) -> bool {
        !self.blocked_at(now) && rule_next(&self.tally(now), now, next_midnight(now), rule) == now
    }

    /// The earliest instant at or after `now` when a decrease is allowed.
    pub fn next_allowed(&self, now: DateTime<Utc>, rule: DecreaseRule) -> DateTime<Utc> {
        let by_rule = rule_next(&self.tally(now), now, next_midnight(now), rule);
        match self.blocked_until {
            // Blocked past the rule's time: the rule still applies then.
            Some(b) if b > by_rule => rule_next(&self.tally(b), b, next_midnight(b), rule).max(b),
            _ => by_rule,
        }
    }

    /// How many more decreases the rule still allows before UTC midnight,
    /// spending each at the earliest moment.
    pub fn left_today(&self, now: DateTime<Utc>, rule: DecreaseRule) -> usize {
        let first = self.next_allowed(now, rule);
        left_from(self.tally(now), first, next_midnight(now), rule)
    }

    /// How many decreases would remain achievable before UTC midnight after
    /// spending one now (None: the rule does not allow one now).
    pub fn left_after_spending(&self, now: DateTime<Utc>, rule: DecreaseRule) -> Option<usize> {
        if !self.allowed_at(now, rule) {
            return None;
        }
        let midnight = next_midnight(now);
        let mut tally = self.tally(now);
        tally.spend(now);
        let next = rule_next(&tally, now, midnight, rule);
        Some(left_from(tally, next, midnight, rule))
    }

    /// Forgets decreases of earlier days.
    pub fn roll(&mut self, now: DateTime<Utc>) {
        if self.day != Some(now.date_naive()) {
            self.day = Some(now.date_naive());
            self.decreases.clear();
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }

    pub fn record(&mut self, at: DateTime<Utc>) {
        self.roll(at);
        self.decreases.push(at);
        self.decreases.sort();
    }

    /// AWS refused a decrease (LimitExceededException): try again no sooner than `until`.
    pub fn block_until(&mut self, until: DateTime<Utc>) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// Adopts AWS's own counters when it reports them. When AWS counts more
    /// decreases today than the ledger, the missing ones are assumed to have
    /// happened at AWS's last decrease time (the conservative choice: it
    /// delays the next one the longest). A description made on an earlier
    /// UTC day (`described_at`, the last one before midnight) counts that
    /// day's decreases, not today's, and is not adopted.
    pub fn resync(
        &mut self,
        now: DateTime<Utc>,
        described_at: DateTime<Utc>,
        aws_decreases_today: Option<u64>,
        aws_last_decrease: Option<DateTime<Utc>>,
    ) {
        self.roll(now);
        let Some(aws_count) = aws_decreases_today else {
            return;
        };
        if described_at.date_naive() != now.date_naive() {
            return;
        }
        let at = aws_last_decrease
            .filter(|t| t.date_naive() == now.date_naive())
            .unwrap_or(now);
        // A count past any quota is a counter gone wrong: bounded all the same.
        while (self.decreases.len() as u64) < aws_count.min(MAX_ADOPTED) {
            self.decreases.push(at);
        }
        self.decreases.sort();
    }
}

/// The most decreases of one day a ledger adopts from AWS's counter.
const MAX_ADOPTED: u64 = 1000;

/// Decreases achievable before `midnight` from `tally`, the first at `first`.
pub(crate) fn left_from(
    mut tally: Tally,
    first: DateTime<Utc>,
    midnight: DateTime<Utc>,
    rule: DecreaseRule,
) -> usize {
    let mut at = first;
    let mut n = 0;
    while tally.count < rule.quota && at < midnight {
        tally.spend(at);
        n += 1;
        at = rule_next(&tally, at, midnight, rule);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS: DecreaseRule = DecreaseRule::AWS;

    fn t(hms: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-11-29T{hms}Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ledger(times: &[&str]) -> DecreaseLedger {
        let mut l = DecreaseLedger::default();
        for s in times {
            l.record(t(s));
        }
        l
    }

    /// Four at 00:00-00:03, then one an hour at :03 until `n` in all.
    fn spent(n: usize) -> DecreaseLedger {
        let mut l = ledger(&["00:00:00", "00:01:00", "00:02:00", "00:03:00"]);
        l.decreases.truncate(n);
        for h in 1..n.saturating_sub(3) {
            l.record(t("00:03:00") + HOUR * h as i32);
        }
        assert_eq!(l.decreases.len(), n);
        l
    }

    #[test]
    fn the_rule_at_every_boundary() {
        // (decreases made today, instant, allowed, next allowed)
        let rows: &[(&[&str], &str, bool, &str)] = &[
            (&[], "00:00:00", true, "00:00:00"),
            (&[], "23:59:59", true, "23:59:59"),
            // Up to four at any time of the day, however close together.
            (&["05:00:00"], "05:00:01", true, "05:00:01"),
            (
                &["05:00:00", "05:10:00", "05:20:00"],
                "05:30:00",
                true,
                "05:30:00",
            ),
            // Two at 05:00 and 05:50: a third is allowed at 06:10 (AWS's
            // four any time), not only after 06:50.
            (&["05:00:00", "05:50:00"], "06:10:00", true, "06:10:00"),
            (
                &["01:00:00", "09:00:00", "17:00:00"],
                "17:00:01",
                true,
                "17:00:01",
            ),
            // The fifth needs an hour without one: the last at least an hour ago.
            (
                &["05:00:00", "05:10:00", "05:20:00", "05:30:00"],
                "05:40:00",
                false,
                "06:30:00",
            ),
            (
                &["05:00:00", "05:10:00", "05:20:00", "05:30:00"],
                "06:29:59",
                false,
                "06:30:00",
            ),
            (
                &["05:00:00", "05:10:00", "05:20:00", "05:30:00"],
                "06:30:00",
                true,
                "06:30:00",
            ),
            (
                &["01:00:00", "02:00:00", "03:00:00", "09:00:00"],
                "09:59:59",
                false,
                "10:00:00",
            ),
            (
                &["01:00:00", "02:00:00", "03:00:00", "09:00:00"],
                "12:00:00",
                true,
                "12:00:00",
            ),
        ];
        for (made, at, allowed, next) in rows {
            let l = ledger(made);
            assert_eq!(l.allowed_at(t(at), AWS), *allowed, "{made:?} at {at}");
            assert_eq!(l.next_allowed(t(at), AWS), t(next), "{made:?} at {at}");
        }
    }

    #[test]
    fn one_an_hour_after_the_four_up_to_the_quota() {
        let mut l = spent(4);
        let mut at = t("01:03:00");
        for _ in 0..10 {
            assert!(l.allowed_at(at, AWS), "{at}");
            l.record(at);
            assert!(!l.allowed_at(at + TimeDelta::minutes(59), AWS));
            at += HOUR;
        }
        assert_eq!(l.used_today(at), 14);
        let l = spent(26);
        assert_eq!(l.decreases.last(), Some(&t("22:03:00")));
        assert!(l.allowed_at(t("23:03:00"), AWS), "the 27th");
        let l = spent(27);
        assert!(!l.allowed_at(t("23:59:59"), AWS), "a 28th");
        assert_eq!(l.left_today(t("23:59:00"), AWS), 0);
        assert_eq!(l.left_after_spending(t("23:59:00"), AWS), None);
    }

    #[test]
    fn a_utc_day_starts_over_at_midnight() {
        let l = spent(27);
        let midnight = t("23:59:59") + TimeDelta::seconds(1);
        assert_eq!(l.next_allowed(t("23:30:00"), AWS), midnight);
        assert!(l.allowed_at(midnight, AWS));
        assert_eq!(l.used_today(midnight), 0);
        // Yesterday's last decrease at 23:59 does not hold today's first four.
        let l = ledger(&["23:00:00", "23:20:00", "23:40:00", "23:59:00"]);
        for s in 0..4 {
            assert!(l.allowed_at(midnight + TimeDelta::seconds(s), AWS));
        }
        assert_eq!(l.left_today(midnight, AWS), 27);
        // Spending runs to midnight, not past it.
        assert_eq!(spent(5).next_allowed(t("23:59:59"), AWS), t("23:59:59"));
    }

    #[test]
    fn a_day_that_starts_with_decreases_carried_over() {
        // A restart at 00:30: AWS counts 4 decreases today, the last at 00:20;
        // the ledger knew none of them.
        let mut l = DecreaseLedger::default();
        l.resync(t("00:30:00"), t("00:30:00"), Some(4), Some(t("00:20:00")));
        assert_eq!(l.used_today(t("00:30:00")), 4);
        assert!(!l.allowed_at(t("01:19:59"), AWS));
        assert_eq!(l.next_allowed(t("00:30:00"), AWS), t("01:20:00"));
        // 4 used, then 01:20 ... 23:20: 23 more.
        assert_eq!(l.left_today(t("00:30:00"), AWS), 23);
        // Two carried over leave two of the four any-time decreases.
        let mut l = DecreaseLedger::default();
        l.resync(t("00:30:00"), t("00:30:00"), Some(2), Some(t("00:25:00")));
        assert!(l.allowed_at(t("00:30:00"), AWS));
        assert_eq!(l.left_after_spending(t("00:30:00"), AWS), Some(24));
    }

    #[test]
    fn the_quota_is_configurable() {
        // Four any time and one an hour make 27 at most; a lower quota
        // stops the day sooner.
        let ten = DecreaseRule::with_quota(10);
        let l = spent(10);
        assert!(!l.allowed_at(t("23:59:59"), ten));
        assert!(l.allowed_at(t("23:59:59"), AWS));
        assert_eq!(spent(4).left_today(t("01:03:00"), ten), 6);
        let low = DecreaseRule::with_quota(3);
        assert_eq!(low.anytime, 3);
        let l = ledger(&["01:00:00", "02:00:00", "03:00:00"]);
        assert!(!l.allowed_at(t("12:00:00"), low));
        assert_eq!(DecreaseLedger::default().left_today(t("00:00:00"), low), 3);
    }

    #[test]
    fn left_today_counts_what_the_rule_still_allows() {
        let fresh = DecreaseLedger::default();
        assert_eq!(fresh.left_today(t("00:00:00"), AWS), 27);
        // At 20:00: four at once, then 21:00, 22:00, 23:00.
        assert_eq!(fresh.left_today(t("20:00:00"), AWS), 7);
        assert_eq!(ledger(&["20:00:00"]).left_today(t("20:30:00"), AWS), 6);
        // 05:00 and 05:50 spent, at 06:10: two any time, then 07:10 ... 23:10.
        assert_eq!(
            ledger(&["05:00:00", "05:50:00"]).left_today(t("06:10:00"), AWS),
            19
        );
    }

    #[test]
    fn left_after_spending_counts_the_rest_of_the_day() {
        // 24 spent, the last at 20:03: one at 21:30 leaves 22:30 and 23:30.
        let l = spent(24);
        assert_eq!(l.left_after_spending(t("21:30:00"), AWS), Some(2));
        assert_eq!(
            l.left_after_spending(t("21:00:00"), AWS),
            None,
            "20:03 is within the past hour"
        );
        assert_eq!(
            DecreaseLedger::default().left_after_spending(t("00:00:00"), AWS),
            Some(26)
        );
        // The fourth of the day at 23:10 leaves none: the past hour has one.
        assert_eq!(
            ledger(&["22:00:00", "22:30:00", "23:00:00"]).left_after_spending(t("23:10:00"), AWS),
            Some(0)
        );
    }

    #[test]
    fn limit_exceeded_blocks_until_the_given_time() {
        let mut l = DecreaseLedger::default();
        l.block_until(t("07:00:00"));
        assert!(!l.allowed_at(t("06:59:59"), AWS));
        assert!(l.allowed_at(t("07:00:00"), AWS));
        assert_eq!(l.next_allowed(t("06:00:00"), AWS), t("07:00:00"));
        // Blocked into the hour after a fifth: the rule still applies then.
        let mut l = spent(5);
        l.block_until(t("01:30:00"));
        assert_eq!(l.next_allowed(t("01:10:00"), AWS), t("02:03:00"));
    }

    #[test]
    fn resync_adopts_higher_aws_counts() {
        let mut l = ledger(&["03:00:00"]);
        l.resync(t("09:00:00"), t("08:59:59"), Some(5), Some(t("08:30:00")));
        assert_eq!(l.used_today(t("09:00:00")), 5);
        assert!(
            !l.allowed_at(t("09:00:00"), AWS),
            "five made, AWS's last at 08:30"
        );
        assert!(l.allowed_at(t("09:30:00"), AWS));
        // A lower count (or none) never forgets what rapidscale did itself.
        l.resync(t("09:00:00"), t("09:00:00"), Some(1), None);
        l.resync(t("09:00:00"), t("09:00:00"), None, None);
        assert_eq!(l.used_today(t("09:00:00")), 5);
    }

    #[test]
    fn yesterdays_count_is_not_todays() {
        // Described at 23:59:59 with 16 decreases that day; read again at
        // midnight before the next description: today has none yet.
        let mut l = DecreaseLedger::default();
        let midnight = t("23:59:59") + TimeDelta::seconds(1);
        l.resync(midnight, t("23:59:59"), Some(16), Some(t("23:10:00")));
        assert_eq!(l.used_today(midnight), 0);
        assert!(l.allowed_at(midnight, AWS));
        // The first description of the new day is adopted.
        l.resync(midnight, midnight, Some(2), None);
        assert_eq!(l.used_today(midnight), 2);
    }

    #[test]
    fn serde_round_trip() {
        let l = ledger(&["01:00:00", "02:00:00"]);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<DecreaseLedger>(&json).unwrap(), l);
    }
}
