//! Announced surges: "a surge starts at T, expect R requests/s (or M x the
//! hour's usual), for D", told by a push sender or a deploy script through
//! `POST /api/v1/announce` or `rapidscale announce`.
//!
//! An announcement raises each table, index and fleet *ahead* of T by its
//! own lead time (for capacity: `2 x update_time`; for a fleet: its learnt
//! warm-up plus `settle`) to what the announced rate needs, and holds that
//! floor until T + D; afterwards the normal policy brings capacity down
//! (decreases planned within the budget as always). The rules here are
//! pure; the [`Book`] keeps the list (on disk in `state_dir`, and with
//! `[coordination]` in the coordination table so the leader acts
//! whichever sidecar received it).

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::slot::Slot;

/// What is expected during the surge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Requests per second across the fleet.
    Rps(f64),
    /// A multiple of the usual rate of the surge's local hour.
    Times(f64),
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Rps(r) => write!(f, "{r} requests/s"),
            Expect::Times(m) => write!(f, "{m} x the hour's usual"),
        }
    }
}

/// One announced surge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    pub id: String,
    pub start: DateTime<Utc>,
    pub duration_s: u64,
    pub expect: Expect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The sidecar that received it.
    pub received_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl Announcement {
    pub fn end(&self) -> DateTime<Utc> {
        self.start + TimeDelta::seconds(self.duration_s as i64)
    }

    /// Whether its floor holds at `now` for a resource whose capacity takes
    /// `lead` to be in place: from `start - lead` to the end, unless cancelled.
    pub fn holds(&self, now: DateTime<Utc>, lead: std::time::Duration) -> bool {
        let lead = TimeDelta::from_std(lead).unwrap_or_default();
        self.cancelled_at.is_none_or(|c| c > now) && now >= self.start - lead && now < self.end()
    }

    /// The requests/s it announces, given the usual rate of its hour.
    pub fn rate(&self, usual: Option<f64>) -> Option<f64> {
        match self.expect {
            Expect::Rps(r) => Some(r),
            Expect::Times(m) => usual.map(|u| u * m),
        }
    }

    /// Cancelled, or over for a day: no longer listed as current.
    fn expired(&self, now: DateTime<Utc>) -> bool {
        now - self.end() > TimeDelta::days(1)
    }
}

/// The highest announced rate holding at `now` for a resource with lead
/// `lead`; `usual` gives the usual rate of an announcement's local hour.
pub fn floor_rate(
    list: &[Announcement],
    now: DateTime<Utc>,
    lead: std::time::Duration,
    usual: impl Fn(&Announcement) -> Option<f64>,
) -> Option<(f64, String)> {
    list.iter()
        .filter(|a| a.holds(now, lead))
        .filter_map(|a| a.rate(usual(a)).map(|r| (r, a.id.clone())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The usual requests (or units) per second of `at`'s local hour: the
/// mean over every recorded minute of that hour of day (the per-hour
/// profile's mean), else the newest 15 minutes' mean.
pub fn usual_rate(
    store: &crate::series::SeriesStore,
    stream: crate::series::StreamId,
    schedule: &crate::config::Schedule,
    at: DateTime<Utc>,
) -> Option<f64> {
    let hour = schedule.local_hour(at);
    let minutes = store.minutes(stream, usize::MAX);
    let of_hour = mean_of(minutes.iter().filter_map(|(start, m)| {
        let t = DateTime::<Utc>::from_timestamp(*start, 0)?;
        (schedule.local_hour(t) == hour).then_some(m)
    }));
    of_hour.or_else(|| recent_rate(store, stream))
}

/// The mean per second of the newest 15 sealed minutes.
pub fn recent_rate(
    store: &crate::series::SeriesStore,
    stream: crate::series::StreamId,
) -> Option<f64> {
    mean_of(store.minutes(stream, 15).iter().map(|(_, m)| m))
}

fn mean_of<'a>(minutes: impl Iterator<Item = &'a crate::series::MinutePoint>) -> Option<f64> {
    let (sum, known) = minutes
        .filter(|m| m.known_seconds > 0)
        .fold((0.0, 0u64), |(s, k), m| {
            (s + m.sum as f64, k + m.known_seconds as u64)
        });
    (known > 0).then(|| sum / known as f64)
}

/// A request to announce a surge, as the API and the CLI take it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceRequest {
    /// RFC 3339 start, or "now" (the default).
    #[serde(default)]
    pub at: Option<String>,
    /// Start this long from now ("10m"), instead of `at`.
    #[serde(default, rename = "in")]
    pub in_: Option<String>,
    /// Expected requests/s across the fleet.
    #[serde(default)]
    pub rps: Option<f64>,
    /// Expected multiple of the hour's usual rate.
    #[serde(default)]
    pub times: Option<f64>,
    /// How long the surge lasts ("15m").
    #[serde(rename = "for")]
    pub for_: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Why an announcement is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnnounceError {
    #[error("give exactly one of rps and times")]
    Expect,
    #[error("{0} must be a positive finite number")]
    NotPositive(&'static str),
    #[error("give at most one of at and in")]
    Start,
    #[error("at {0:?} is neither RFC 3339 nor \"now\"")]
    At(String),
    #[error("{key} {value:?} is not a duration (like 90s, 15m, 2h): {why}")]
    Duration {
        key: &'static str,
        value: String,
        why: String,
    },
    #[error("the surge ends in the past")]
    Past,
    #[error("a surge lasts at most 24h")]
    TooLong,
    #[error("no announcement {0:?}")]
    Unknown(String),
}

impl AnnounceRequest {
    /// Checks the request and makes the announcement it asks for.
    pub fn build(
        &self,
        id: String,
        now: DateTime<Utc>,
        received_by: &str,
    ) -> Result<Announcement, AnnounceError> {
        let positive = |v: f64, what| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(AnnounceError::NotPositive(what))
            }
        };
        let expect = match (self.rps, self.times) {
            (Some(r), None) => Expect::Rps(positive(r, "rps")?),
            (None, Some(m)) => Expect::Times(positive(m, "times")?),
            _ => return Err(AnnounceError::Expect),
        };
        let duration = |key, v: &str| {
            humantime::parse_duration(v.trim()).map_err(|e| AnnounceError::Duration {
                key,
                value: v.to_string(),
                why: e.to_string(),
            })
        };
        let start = match (self.at.as_deref(), self.in_.as_deref()) {
            (Some(_), Some(_)) => return Err(AnnounceError::Start),
            (None | Some("now"), None) => now,
            (Some(at), None) => DateTime::parse_from_rfc3339(at)
                .map_err(|_| AnnounceError::At(at.to_string()))?
                .with_timezone(&Utc),
            (None, Some(d)) => now + TimeDelta::from_std(duration("in", d)?).unwrap_or_default(),
        };
        let lasts = duration("for", &self.for_)?;
        if lasts.is_zero() {
            return Err(AnnounceError::NotPositive("for"));
        }
        if lasts > std::time::Duration::from_secs(86_400) {
            return Err(AnnounceError::TooLong);
        }
        let a = Announcement {
            id,
            start,
            duration_s: lasts.as_secs().max(1),
            expect,
            note: self.note.clone().filter(|n| !n.trim().is_empty()),
            created_at: now,
            received_by: received_by.to_string(),
            cancelled_at: None,
        };
        if a.end() <= now {
            return Err(AnnounceError::Past);
        }
        Ok(a)
    }
}

/// The announcements this sidecar knows: received here, or read from the
/// coordination table. Published on a [`Slot`] for the deciders and the
/// API; saved to `state_dir/announcements.json` on every change.
#[derive(Clone)]
pub(crate) struct Book {
    slot: Slot<Vec<Announcement>>,
    path: Option<PathBuf>,
    /// Ids (with their cancellation) not yet written to the coordination table.
    unsynced: Slot<Vec<Announcement>>,
}

impl Book {
    /// The book saved at `path` (None: kept in memory only).
    pub(crate) fn open(path: Option<PathBuf>) -> Book {
        let list: Vec<Announcement> = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Book {
            unsynced: Slot::new(list.clone()),
            slot: Slot::new(list),
            path,
        }
    }

    pub(crate) fn slot(&self) -> Slot<Vec<Announcement>> {
        self.slot.clone()
    }

    pub(crate) fn list(&self) -> Vec<Announcement> {
        self.slot.get()
    }

    fn save(&self, list: &[Announcement]) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(list)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "Cannot save the announcements.");
        }
    }

    fn publish(&self, mut list: Vec<Announcement>, now: DateTime<Utc>) {
        list.retain(|a| !a.expired(now));
        list.sort_by_key(|a| (a.start, a.id.clone()));
        self.save(&list);
        self.slot.set(list);
    }

    /// Adds a new announcement.
    pub(crate) fn add(&self, a: Announcement, now: DateTime<Utc>) {
        let mut list = self.list();
        list.retain(|x| x.id != a.id);
        list.push(a.clone());
        self.unsynced.update(|u| u.push(a));
        self.publish(list, now);
    }

    /// Cancels one; returns it as cancelled.
    pub(crate) fn cancel(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Announcement, AnnounceError> {
        let mut list = self.list();
        let a = list
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| AnnounceError::Unknown(id.to_string()))?;
        a.cancelled_at.get_or_insert(now);
        let a = a.clone();
        self.unsynced.update(|u| u.push(a.clone()));
        self.publish(list, now);
        Ok(a)
    }

    /// What has not been written to the coordination table yet (taken).
    pub(crate) fn take_unsynced(&self) -> Vec<Announcement> {
        let mut out = Vec::new();
        self.unsynced.update(|u| out = std::mem::take(u));
        out
    }

    /// Puts back what could not be written.
    pub(crate) fn return_unsynced(&self, back: Vec<Announcement>) {
        self.unsynced.update(|u| u.extend(back));
    }

    /// Merges what the coordination table holds: new ids are added, a
    /// cancellation anywhere wins. True when anything changed.
    pub(crate) fn merge(&self, read: Vec<Announcement>, now: DateTime<Utc>) -> bool {
        let mut list = self.list();
        let mut changed = false;
        for a in read {
            match list.iter_mut().find(|x| x.id == a.id) {
                Some(x) if x.cancelled_at.is_none() && a.cancelled_at.is_some() => {
                    x.cancelled_at = a.cancelled_at;
                    changed = true;
                }
                Some(_) => {}
                None if !a.expired(now) => {
                    list.push(a);
                    changed = true;
                }
                None => {}
            }
        }
        if changed {
            self.publish(list, now);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn req(json: serde_json::Value) -> AnnounceRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_request_becomes_an_announcement_or_says_what_is_wrong() {
        let now = t("2026-12-02T12:00:00Z");
        let a = req(serde_json::json!({"in": "10m", "rps": 5000, "for": "15m"}))
            .build("a1".into(), now, "i-1")
            .unwrap();
        assert_eq!(a.start, t("2026-12-02T12:10:00Z"));
        assert_eq!(a.end(), t("2026-12-02T12:25:00Z"));
        assert_eq!(a.expect, Expect::Rps(5000.0));
        let now_one = req(serde_json::json!({"times": 3, "for": "5m"}))
            .build("a2".into(), now, "i-1")
            .unwrap();
        assert_eq!(now_one.start, now);
        let err = |j| req(j).build("x".into(), now, "i-1").unwrap_err();
        assert_eq!(
            err(serde_json::json!({"rps": 1, "times": 2, "for": "1m"})),
            AnnounceError::Expect
        );
        assert_eq!(
            err(serde_json::json!({"rps": -1, "for": "1m"})),
            AnnounceError::NotPositive("rps")
        );
        assert_eq!(
            err(serde_json::json!({"rps": 1, "for": "1m", "at": "2026-12-02T10:00:00Z"})),
            AnnounceError::Past
        );
        assert_eq!(
            err(serde_json::json!({"rps": 1, "for": "2d"})),
            AnnounceError::TooLong
        );
        assert!(matches!(
            err(serde_json::json!({"rps": 1, "for": "soon"})),
            AnnounceError::Duration { key: "for", .. }
        ));
        assert!(serde_json::from_value::<AnnounceRequest>(
            serde_json::json!({"rps": 1, "for": "1m", "when": "now"})
        )
        .is_err());
    }

    #[test]
    fn the_floor_holds_from_the_lead_before_the_start_to_the_end() {
        let now = t("2026-12-02T12:00:00Z");
        let a = req(serde_json::json!({"in": "10m", "rps": 5000, "for": "15m"}))
            .build("a1".into(), now, "i-1")
            .unwrap();
        let lead = std::time::Duration::from_secs(120);
        let at = |m: i64| now + TimeDelta::minutes(m);
        assert!(!a.holds(at(7), lead), "more than the lead ahead");
        assert!(a.holds(at(8), lead), "within the lead");
        assert!(a.holds(at(24), lead));
        assert!(!a.holds(at(25), lead), "over");
        let usual = |_: &Announcement| Some(100.0);
        let b = req(serde_json::json!({"in": "9m", "times": 80, "for": "5m"}))
            .build("b".into(), now, "i-2")
            .unwrap();
        let list = vec![a.clone(), b];
        assert_eq!(
            floor_rate(&list, at(9), lead, usual),
            Some((8000.0, "b".to_string())),
            "the highest announced rate wins"
        );
        assert_eq!(floor_rate(&list, at(6), lead, usual), None);
        let mut cancelled = a;
        cancelled.cancelled_at = Some(at(9));
        assert!(!cancelled.holds(at(12), lead));
    }

    #[test]
    fn the_book_saves_merges_and_cancellation_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("announcements.json");
        let now = t("2026-12-02T12:00:00Z");
        let book = Book::open(Some(path.clone()));
        let a = req(serde_json::json!({"rps": 10, "for": "1h"}))
            .build("a1".into(), now, "i-1")
            .unwrap();
        book.add(a.clone(), now);
        assert_eq!(book.take_unsynced(), vec![a.clone()]);
        assert!(book.take_unsynced().is_empty());
        let reopened = Book::open(Some(path));
        assert_eq!(reopened.list(), vec![a.clone()], "kept across a restart");
        let mut elsewhere = a.clone();
        elsewhere.cancelled_at = Some(now);
        let other = req(serde_json::json!({"rps": 20, "for": "1h"}))
            .build("b1".into(), now, "i-2")
            .unwrap();
        assert!(book.merge(vec![elsewhere, other], now));
        assert!(!book.merge(book.list(), now), "nothing new");
        let list = book.list();
        assert_eq!(list.len(), 2);
        assert!(list
            .iter()
            .find(|x| x.id == "a1")
            .unwrap()
            .cancelled_at
            .is_some());
        assert_eq!(
            book.cancel("zz", now).unwrap_err(),
            AnnounceError::Unknown("zz".into())
        );
    }
}
