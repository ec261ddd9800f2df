//! DynamoDB's daily budget of capacity decreases, per table and separately
//! per global secondary index, modelled exactly:
//!
//! - a UTC day starts with no decreases;
//! - the first decrease of the day opens a one-hour window in which up to
//!   4 decreases may be made in all;
//! - after that, one more decrease is allowed whenever the preceding hour
//!   had none;
//! - never more than 27 in one UTC day.
//!
//! A [`DecreaseLedger`] is the history of one resource; it is pure data
//! (serde) so the state directory can persist it. Planning on top of the
//! rule: [`DecreaseLedger::left_after_spending`] tells how many decreases
//! would still be achievable before UTC midnight, so the policy can keep a
//! reserve for the largest savings.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const MAX_PER_DAY: usize = 27;
pub(crate) const INITIAL_BURST: usize = 4;
const HOUR: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecreaseLedger {
    /// The UTC day `decreases` belong to.
    pub day: Option<NaiveDate>,
    /// Decreases made that day, oldest first.
    pub decreases: Vec<DateTime<Utc>>,
    /// AWS refused a decrease: none is tried before this instant.
    pub blocked_until: Option<DateTime<Utc>>,
}

fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now
        .date_naive()
        .succ_opt()
        .expect("dates before year 262143");
    tomorrow
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// What the rule looks at: the day's decreases, by count, first and last.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tally {
    count: usize,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Tally {
    fn spend(&mut self, at: DateTime<Utc>) {
        self.count += 1;
        self.first.get_or_insert(at);
        self.last = Some(at);
    }
}

/// DynamoDB's rule, in one place: the earliest instant at or after `now`
/// (before `midnight`, the end of the tally's day; `midnight` itself when
/// no more are allowed that day) at which a decrease is allowed.
fn rule_next(t: &Tally, now: DateTime<Utc>, midnight: DateTime<Utc>) -> DateTime<Utc> {
    if t.count >= MAX_PER_DAY {
        return midnight;
    }
    match (t.first, t.last) {
        (Some(first), Some(_)) if now < first + HOUR && t.count < INITIAL_BURST => now,
        (Some(_), Some(last)) => (last + HOUR).max(now).min(midnight),
        _ => now,
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

    fn tally(&self, now: DateTime<Utc>) -> Tally {
        let today = self.today(now);
        Tally {
            count: today.len(),
            first: today.first().copied(),
            last: today.last().copied(),
        }
    }

    fn blocked_at(&self, now: DateTime<Utc>) -> bool {
        self.blocked_until.is_some_and(|b| now < b)
    }

    /// Whether DynamoDB's rule allows a decrease at `now`.
    pub fn allowed_at(&self, now: DateTime<Utc>) -> bool {
        !self.blocked_at(now) && rule_next(&self.tally(now), now, next_midnight(now)) == now
    }

    /// The earliest instant at or after `now` when a decrease is allowed.
    pub fn next_allowed(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let by_rule = rule_next(&self.tally(now), now, next_midnight(now));
        match self.blocked_until {
            // Blocked past the rule's time: the rule still applies then.
            Some(b) if b > by_rule => rule_next(&self.tally(b), b, next_midnight(b)).max(b),
            _ => by_rule,
        }
    }

    /// How many more decreases the rule still allows before UTC midnight,
    /// spending each at the earliest moment.
    pub fn left_today(&self, now: DateTime<Utc>) -> usize {
        let first = self.next_allowed(now);
        Self::left_from(self.tally(now), first, next_midnight(now))
    }

    /// Decreases achievable before `midnight` from `tally`, the first at `first`.
    fn left_from(mut tally: Tally, first: DateTime<Utc>, midnight: DateTime<Utc>) -> usize {
        let mut at = first;
        let mut n = 0;
        while n < MAX_PER_DAY && at < midnight {
            tally.spend(at);
            n += 1;
            at = rule_next(&tally, at, midnight);
        }
        n
    }

    /// How many decreases would remain achievable before UTC midnight after
    /// spending one now (None: the rule does not allow one now).
    pub fn left_after_spending(&self, now: DateTime<Utc>) -> Option<usize> {
        if !self.allowed_at(now) {
            return None;
        }
        let midnight = next_midnight(now);
        let mut tally = self.tally(now);
        tally.spend(now);
        let next = rule_next(&tally, now, midnight);
        Some(Self::left_from(tally, next, midnight))
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
        while (self.decreases.len() as u64) < aws_count.min(MAX_PER_DAY as u64) {
            self.decreases.push(at);
        }
        self.decreases.sort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn first_decrease_of_the_day_is_allowed() {
        assert!(DecreaseLedger::default().allowed_at(t("05:00:00")));
    }

    #[test]
    fn four_within_the_first_hour() {
        let l = ledger(&["05:00:00", "05:10:00", "05:20:00"]);
        assert!(l.allowed_at(t("05:30:00")), "4th inside the first hour");
        let l = ledger(&["05:00:00", "05:10:00", "05:20:00", "05:30:00"]);
        assert!(!l.allowed_at(t("05:40:00")), "a 5th inside the first hour");
        assert!(
            !l.allowed_at(t("06:20:00")),
            "the preceding hour had a decrease (05:30)"
        );
        assert!(l.allowed_at(t("06:30:00")));
        assert_eq!(l.next_allowed(t("05:40:00")), t("06:30:00"));
    }

    #[test]
    fn burst_window_closes_after_an_hour() {
        // Two in the first hour, then the window is over: the hourly rule applies.
        let l = ledger(&["05:00:00", "05:50:00"]);
        assert!(!l.allowed_at(t("06:10:00")));
        assert!(l.allowed_at(t("06:50:00")));
    }

    #[test]
    fn one_per_hour_after_the_burst() {
        let mut l = ledger(&["00:00:00", "00:01:00", "00:02:00", "00:03:00"]);
        let mut at = t("01:03:00");
        for _ in 0..10 {
            assert!(l.allowed_at(at), "{at}");
            l.record(at);
            assert!(!l.allowed_at(at + TimeDelta::minutes(59)));
            at += HOUR;
        }
        assert_eq!(l.used_today(at), 14);
    }

    #[test]
    fn the_27th_is_allowed_and_the_28th_is_not() {
        let mut l = ledger(&["00:00:00", "00:01:00", "00:02:00", "00:03:00"]);
        let mut at = t("01:03:00");
        for _ in 0..22 {
            l.record(at);
            at += HOUR;
        }
        assert_eq!(l.used_today(at), 26);
        assert_eq!(at, t("23:03:00"));
        assert!(l.allowed_at(at), "the 27th");
        l.record(at);
        assert!(!l.allowed_at(t("23:59:59")), "a 28th");
        assert_eq!(l.left_today(t("23:59:00")), 0);
        // A new UTC day starts over.
        let tomorrow = t("23:59:59") + TimeDelta::seconds(1);
        assert!(l.allowed_at(tomorrow));
        assert_eq!(l.used_today(tomorrow), 0);
        assert_eq!(l.next_allowed(t("23:30:00")), tomorrow);
    }

    #[test]
    fn left_today_counts_what_the_rule_still_allows() {
        assert_eq!(
            DecreaseLedger::default().left_today(t("00:00:00")),
            MAX_PER_DAY
        );
        // At 20:00 with nothing spent: 4 in the burst hour, then 20:59? no: 4 + 3 hourly (21:00, 22:00, 23:00).
        assert_eq!(DecreaseLedger::default().left_today(t("20:00:00")), 7);
        assert_eq!(ledger(&["20:00:00"]).left_today(t("20:30:00")), 6);
    }

    #[test]
    fn left_after_spending_counts_the_rest_of_the_day() {
        // 24 used by 21:00; the rule allows one more at 22:00 and at 23:00.
        let mut l = ledger(&["00:00:00", "00:01:00", "00:02:00", "00:03:00"]);
        let mut at = t("01:03:00");
        for _ in 0..20 {
            l.record(at);
            at += HOUR;
        }
        assert_eq!(l.used_today(at), 24);
        // Spending at 21:30 leaves 22:30 and 23:30.
        assert_eq!(l.left_after_spending(t("21:30:00")), Some(2));
        assert_eq!(
            l.left_after_spending(t("21:00:00")),
            None,
            "20:03 is within the preceding hour"
        );
        // Early in a fresh day: 26 more after the first.
        assert_eq!(
            DecreaseLedger::default().left_after_spending(t("00:00:00")),
            Some(26)
        );
        assert_eq!(
            ledger(&["22:00:00"]).left_after_spending(t("23:10:00")),
            Some(0)
        );
    }

    #[test]
    fn limit_exceeded_blocks_until_the_given_time() {
        let mut l = DecreaseLedger::default();
        l.block_until(t("07:00:00"));
        assert!(!l.allowed_at(t("06:59:59")));
        assert!(l.allowed_at(t("07:00:00")));
        assert_eq!(l.next_allowed(t("06:00:00")), t("07:00:00"));
    }

    #[test]
    fn resync_adopts_higher_aws_counts() {
        let mut l = ledger(&["03:00:00"]);
        l.resync(t("09:00:00"), t("08:59:59"), Some(3), Some(t("08:30:00")));
        assert_eq!(l.used_today(t("09:00:00")), 3);
        assert!(
            !l.allowed_at(t("09:00:00")),
            "the preceding hour had AWS's decrease at 08:30"
        );
        assert!(l.allowed_at(t("09:30:00")));
        // A lower count (or none) never forgets what rapidscale did itself.
        l.resync(t("09:00:00"), t("09:00:00"), Some(1), None);
        l.resync(t("09:00:00"), t("09:00:00"), None, None);
        assert_eq!(l.used_today(t("09:00:00")), 3);
    }

    #[test]
    fn yesterdays_count_is_not_todays() {
        // Described at 23:59:59 with 16 decreases that day; read again at
        // midnight before the next description: today has none yet.
        let mut l = DecreaseLedger::default();
        let midnight = t("23:59:59") + TimeDelta::seconds(1);
        l.resync(midnight, t("23:59:59"), Some(16), Some(t("23:10:00")));
        assert_eq!(l.used_today(midnight), 0);
        assert!(l.allowed_at(midnight));
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
