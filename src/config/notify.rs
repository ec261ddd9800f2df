//! `[[notify]]`: where rapidscale tells people what it recommends and does
//! (a Slack-compatible webhook, a generic JSON webhook, or an SNS topic).

use std::time::Duration;

use super::reader::{enum_value, Problems, TableReader};

/// The body a target gets.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyKind {
    /// `{"text": "..."}`: Slack incoming webhooks, Mattermost, Teams' Slack-compatible hooks.
    Slack { url: String },
    /// The event as JSON (`docs/notifications.md`).
    Webhook { url: String },
    /// SNS Publish: the subject line, and the event's JSON as the message.
    Sns { topic_arn: String },
}

/// What a target is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// Dry run: what rapidscale would do (with the link to apply it).
    Recommendation,
    /// A change was made.
    Applied,
    /// A change failed after its retries.
    Failed,
    /// A change was not made: a gate held it (the gate is named).
    Refused,
    /// A table's or index's decreases left today fell to `budget_low`.
    BudgetLow,
    /// The requests stream went silent: decisions hold.
    IngestionSilent,
    /// AWS state is stale: nothing is changed.
    AwsUnavailable,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 7] = [
        NotifyEvent::Recommendation,
        NotifyEvent::Applied,
        NotifyEvent::Failed,
        NotifyEvent::Refused,
        NotifyEvent::BudgetLow,
        NotifyEvent::IngestionSilent,
        NotifyEvent::AwsUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Recommendation => "recommendation",
            NotifyEvent::Applied => "applied",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Refused => "refused",
            NotifyEvent::BudgetLow => "budget_low",
            NotifyEvent::IngestionSilent => "ingestion_silent",
            NotifyEvent::AwsUnavailable => "aws_unavailable",
        }
    }

    fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NotifyTarget {
    /// A name for logs and `/metrics` (default: the kind and its index).
    pub name: String,
    pub kind: NotifyKind,
    pub events: Vec<NotifyEvent>,
    /// One message per resource and this interval: later events of the
    /// same resource are folded into one follow-up at its end.
    pub coalesce: Duration,
    /// At most this many messages a minute to this target; more are dropped and counted.
    pub max_per_minute: u32,
    /// The dashboard's address as people reach it, for links in messages
    /// (default: `http://` + `api.listen`).
    pub link: Option<String>,
    /// Decreases left today at or below which `budget_low` is sent.
    pub budget_low: usize,
}

pub(super) const DEFAULT_COALESCE: Duration = Duration::from_secs(60);
pub(super) const DEFAULT_MAX_PER_MINUTE: u32 = 10;
pub(super) const DEFAULT_BUDGET_LOW: usize = 1;

/// Reads `[[notify]]`; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> Vec<NotifyTarget> {
    let mut out = Vec::new();
    for (i, mut t) in root.tables(p, "notify").into_iter().enumerate() {
        let kind_s = t.string(p, "kind");
        let url = t.string(p, "url");
        let topic = t.string(p, "topic_arn");
        let kind = kind_s.as_ref().and_then(|k| {
            enum_value(
                p,
                k,
                |v| {
                    ["slack", "webhook", "sns"]
                        .contains(&v)
                        .then(|| v.to_string())
                },
                "\"slack\", \"webhook\" or \"sns\"",
            )
        });
        if kind_s.is_none() && !t.has("kind") {
            p.push(
                t.span(),
                &t.key_path("kind"),
                "missing: \"slack\", \"webhook\" or \"sns\"",
            );
        }
        let kind = match (kind.as_deref(), url, topic) {
            (Some("sns"), None, Some(arn)) if arn.value.starts_with("arn:") => {
                Some(NotifyKind::Sns {
                    topic_arn: arn.value,
                })
            }
            (Some("sns"), _, arn) => {
                let span = arn.map_or(t.span(), |a| a.span);
                p.push(
                    span,
                    &t.key_path("topic_arn"),
                    "an SNS target needs topic_arn = \"arn:aws:sns:...\" (and no url)",
                );
                None
            }
            (Some(k @ ("slack" | "webhook")), Some(u), None)
                if u.value.starts_with("http://") || u.value.starts_with("https://") =>
            {
                Some(if k == "slack" {
                    NotifyKind::Slack { url: u.value }
                } else {
                    NotifyKind::Webhook { url: u.value }
                })
            }
            (Some("slack" | "webhook"), u, _) => {
                let span = u.map_or(t.span(), |u| u.span);
                p.push(
                    span,
                    &t.key_path("url"),
                    "a webhook target needs url = \"https://...\" (and no topic_arn)",
                );
                None
            }
            _ => None,
        };
        let events = match t.string_array(p, "events") {
            None => NotifyEvent::ALL.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(|e| {
                    let allowed = NotifyEvent::ALL.map(|e| e.as_str()).join(", ");
                    enum_value(p, e, NotifyEvent::parse, &allowed)
                })
                .collect(),
        };
        let coalesce = t
            .duration(p, "coalesce")
            .map_or(DEFAULT_COALESCE, |d| d.value);
        let max_per_minute = t
            .uint(p, "max_per_minute")
            .map_or(DEFAULT_MAX_PER_MINUTE as u64, |v| v.value)
            .clamp(1, 600) as u32;
        let budget_low = t
            .uint(p, "budget_low")
            .map_or(DEFAULT_BUDGET_LOW as u64, |v| v.value) as usize;
        let link = t
            .string(p, "link")
            .map(|l| l.value.trim_end_matches('/').to_string());
        let name = t.string(p, "name").map(|n| n.value);
        t.finish(p);
        if let Some(kind) = kind {
            let default_name = match &kind {
                NotifyKind::Slack { .. } => "slack",
                NotifyKind::Webhook { .. } => "webhook",
                NotifyKind::Sns { .. } => "sns",
            };
            out.push(NotifyTarget {
                name: name.unwrap_or_else(|| format!("{default_name}-{i}")),
                kind,
                events,
                coalesce,
                max_per_minute,
                link,
                budget_low,
            });
        }
    }
    out
}
