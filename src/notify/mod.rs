//! Notifications (`[[notify]]`): audit records and conditions become
//! messages to a Slack-compatible webhook, a generic JSON webhook or an
//! SNS topic.
//!
//! - this module, pure: which record or condition is which event
//!   ([`event_of`]), the per-target [`Pacer`] (one message per resource
//!   and `coalesce` interval, later events folded into one follow-up; at
//!   most `max_per_minute`), and the bodies ([`render`]).
//! - `deliver.rs`: the async side. The notifier task reads audit records
//!   as they are appended (a broadcast channel: a decision never waits
//!   for it) and the conditions once a second; each target has its own
//!   queue and sender task, retrying with backoff and jitter, so a slow
//!   or dead target delays nothing but its own messages.

pub(crate) mod deliver;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{AuditRecord, Outcome, Phase};
use crate::config::{NotifyEvent, NotifyTarget};

/// One thing worth telling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Event {
    pub kind: NotifyEvent,
    /// A table, `table/index`, a fleet, or the condition's subject.
    pub resource: String,
    pub summary: String,
    pub time: DateTime<Utc>,
    /// The audit record behind it (its id is the recommendation's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<AuditRecord>,
    /// A condition that ended.
    pub resolved: bool,
}

/// The event an audit record is, if any: a dry-run recommendation, an
/// applied, failed or refused change. Operator records (mode changes,
/// announcements), bets on burst and observations are not sent.
pub(crate) fn event_of(r: &AuditRecord) -> Option<Event> {
    if !matches!(r.service.as_str(), "dynamodb" | "asg" | "ecs") {
        return None;
    }
    let kind = match (r.outcome, r.phase) {
        (Outcome::Recommended, _) => NotifyEvent::Recommendation,
        (Outcome::Applied, Phase::Completed) => NotifyEvent::Applied,
        (Outcome::Failed, _) => NotifyEvent::Failed,
        (Outcome::Skipped, _) if r.mode == crate::config::Mode::Apply => NotifyEvent::Refused,
        _ => return None,
    };
    let changes = r
        .changes
        .iter()
        .map(|c| {
            let member = c
                .resource
                .as_deref()
                .map(|m| format!("{m} "))
                .unwrap_or_default();
            let demand = c
                .demand
                .map(|d| format!(", demand {d:.0}/s"))
                .unwrap_or_default();
            format!(
                "{member}{} {} -> {} ({}{demand})",
                c.op, c.from, c.to, c.rule
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let verb = match kind {
        NotifyEvent::Recommendation => "recommends",
        NotifyEvent::Applied => "changed",
        NotifyEvent::Failed => "failed to change",
        _ => "did not change",
    };
    let why = r
        .reason
        .as_deref()
        .or(r.error.as_deref())
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    Some(Event {
        kind,
        resource: r.resource.clone(),
        summary: format!("{} {verb} {changes}{why}", r.resource),
        time: r.time,
        record: Some(r.clone()),
        resolved: false,
    })
}

/// A condition that holds now (ingestion silent, AWS unavailable, a low
/// decrease budget), as the notifier reads it each second.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub kind: NotifyEvent,
    pub resource: String,
    /// For `budget_low`, starts with the decreases left today (each
    /// target compares it with its own threshold).
    pub summary: String,
}

/// What to send: the event, and how many events of the same resource
/// were folded into it since the last message (0: the first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Message {
    pub event: Event,
    pub folded: u32,
}

/// One target's pacing: per resource, one message and then a quiet
/// window of `coalesce`; what happens in the window is folded into one
/// follow-up (the newest event, which tells the outcome) at its end.
#[derive(Debug)]
pub(crate) struct Pacer {
    coalesce: chrono::TimeDelta,
    max_per_minute: usize,
    windows: HashMap<String, Window>,
    sent: VecDeque<DateTime<Utc>>,
    /// Messages refused by the rate limit.
    pub limited: u64,
}

#[derive(Debug)]
struct Window {
    until: DateTime<Utc>,
    pending: Option<Event>,
    folded: u32,
}

impl Pacer {
    pub(crate) fn new(coalesce: Duration, max_per_minute: u32) -> Pacer {
        Pacer {
            coalesce: chrono::TimeDelta::from_std(coalesce).unwrap_or_default(),
            max_per_minute: max_per_minute.max(1) as usize,
            windows: HashMap::new(),
            sent: VecDeque::new(),
            limited: 0,
        }
    }

    /// An event: sent now when its resource is quiet, else folded.
    pub(crate) fn offer(&mut self, event: Event, now: DateTime<Utc>) -> Option<Message> {
        let key = format!("{}|{}", event.resource, family(event.kind));
        match self.windows.get_mut(&key) {
            Some(w) if now < w.until => {
                w.pending = Some(event);
                w.folded += 1;
                None
            }
            _ => {
                self.windows.insert(
                    key,
                    Window {
                        until: now + self.coalesce,
                        pending: None,
                        folded: 0,
                    },
                );
                self.limit(Message { event, folded: 0 }, now)
            }
        }
    }

    /// The follow-ups of windows that ended by `now`.
    pub(crate) fn due(&mut self, now: DateTime<Utc>) -> Vec<Message> {
        let mut out = Vec::new();
        let coalesce = self.coalesce;
        self.windows.retain(|_, w| {
            if now < w.until {
                return true;
            }
            match w.pending.take() {
                Some(event) => {
                    out.push(Message {
                        event,
                        folded: w.folded,
                    });
                    w.folded = 0;
                    w.until = now + coalesce;
                    true
                }
                None => false,
            }
        });
        out.sort_by_key(|m| m.event.time);
        out.into_iter().filter_map(|m| self.limit(m, now)).collect()
    }

    fn limit(&mut self, m: Message, now: DateTime<Utc>) -> Option<Message> {
        while self
            .sent
            .front()
            .is_some_and(|t| now - *t >= chrono::TimeDelta::minutes(1))
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.max_per_minute {
            self.limited += 1;
            return None;
        }
        self.sent.push_back(now);
        Some(m)
    }
}

/// Events of one family share a resource's window: a recommendation and
/// the change that follows it are one story.
fn family(kind: NotifyEvent) -> &'static str {
    match kind {
        NotifyEvent::Recommendation
        | NotifyEvent::Applied
        | NotifyEvent::Failed
        | NotifyEvent::Refused => "change",
        other => other.as_str(),
    }
}

/// Edge detection over conditions: what started and what ended since the
/// last reading.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    active: HashMap<(NotifyEvent, String), Condition>,
}

impl Conditions {
    pub(crate) fn update(&mut self, now_holding: Vec<Condition>, now: DateTime<Utc>) -> Vec<Event> {
        let mut out = Vec::new();
        let mut next = HashMap::new();
        for c in now_holding {
            let key = (c.kind, c.resource.clone());
            if !self.active.contains_key(&key) {
                out.push(Event {
                    kind: c.kind,
                    resource: c.resource.clone(),
                    summary: c.summary.clone(),
                    time: now,
                    record: None,
                    resolved: false,
                });
            }
            next.insert(key, c);
        }
        for ((kind, resource), c) in &self.active {
            if !next.contains_key(&(*kind, resource.clone())) {
                out.push(Event {
                    kind: *kind,
                    resource: resource.clone(),
                    summary: format!("resolved: {}", c.summary),
                    time: now,
                    record: None,
                    resolved: true,
                });
            }
        }
        self.active = next;
        out
    }
}

/// The body and, for SNS, the subject of a message to `target`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    pub subject: String,
    pub json: serde_json::Value,
}

/// The generic body: the event, the folded count, and links (the
/// dashboard, and for a recommendation the call that applies it).
pub(crate) fn render(m: &Message, target: &NotifyTarget, link: &str) -> Rendered {
    let e = &m.event;
    let apply = (e.kind == NotifyEvent::Recommendation)
        .then(|| {
            e.record
                .as_ref()
                .map(|r| format!("{link}/api/v1/recommendations/{}/apply", r.id))
        })
        .flatten();
    let dashboard = match e.record.as_ref() {
        Some(r) if e.kind == NotifyEvent::Recommendation => format!("{link}/#rec-{}", r.id),
        _ => format!("{link}/"),
    };
    let folded = if m.folded > 0 {
        format!(" (+{} more since the last message)", m.folded)
    } else {
        String::new()
    };
    let subject: String = format!("rapidscale {}: {}", e.kind.as_str(), e.resource)
        .chars()
        .take(100)
        .collect();
    let json = match target.kind {
        crate::config::NotifyKind::Slack { .. } => {
            let icon = match (e.kind, e.resolved) {
                (_, true) => ":white_check_mark:",
                (NotifyEvent::Recommendation, _) => ":bulb:",
                (NotifyEvent::Applied, _) => ":arrow_up_down:",
                _ => ":warning:",
            };
            let action = apply
                .as_ref()
                .map(|_| format!(" <{dashboard}|Review and apply>"))
                .unwrap_or_else(|| format!(" <{dashboard}|Dashboard>"));
            serde_json::json!({
                "text": format!("{icon} *rapidscale* {}{folded}.{action}", e.summary),
            })
        }
        _ => serde_json::json!({
            "source": "rapidscale",
            "event": e.kind,
            "resource": e.resource,
            "summary": format!("{}{folded}", e.summary),
            "time": e.time,
            "resolved": e.resolved,
            "folded": m.folded,
            "record": e.record,
            "dashboard": dashboard,
            "apply": apply.map(|url| serde_json::json!({
                "method": "POST",
                "url": url,
                "header": "Authorization: Bearer <api.token>",
            })),
        }),
    };
    Rendered { subject, json }
}

#[cfg(test)]
mod tests;
