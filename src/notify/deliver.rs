//! The notifier task and one sender task per target.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{event_of, render, Condition, Conditions, Message, Pacer, Rendered};
use crate::audit::AuditRecord;
use crate::clock::SharedClock;
use crate::cloud::Notifications;
use crate::config::{NotifyEvent, NotifyKind, NotifyTarget};
use crate::slot::Slot;

/// Messages waiting for one target; more are dropped and counted.
const QUEUE: usize = 64;
/// Attempts per message, with backoff and jitter between them.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// One attempt's bound.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// One target's counters, for `/metrics` and `/api/v1/status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct TargetStatus {
    pub name: String,
    pub kind: &'static str,
    pub sent: u64,
    /// Messages whose every attempt failed.
    pub failed: u64,
    /// Attempts after the first.
    pub retried: u64,
    /// Dropped: the target's queue was full.
    pub dropped: u64,
    /// Refused by the target's `max_per_minute`.
    pub limited: u64,
    /// Events folded into a follow-up instead of a message of their own.
    pub folded: u64,
    pub last_error: Option<String>,
    /// From the event (the audit record's time) to the target's answer.
    pub last_latency_s: Option<f64>,
}

/// Reads the audit records and the conditions; paces and queues messages.
pub(crate) struct Notifier<P> {
    pub targets: Vec<NotifyTarget>,
    pub records: broadcast::Receiver<AuditRecord>,
    /// The conditions that hold now (read once a second).
    pub conditions: Box<dyn Fn() -> Vec<Condition> + Send>,
    pub publisher: Option<Arc<P>>,
    pub status: Slot<Vec<TargetStatus>>,
    pub clock: SharedClock,
}

impl<P: Notifications> Notifier<P> {
    pub(crate) async fn run(mut self, tasks: TaskTracker, stop: CancellationToken) {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        self.status.set(
            self.targets
                .iter()
                .map(|t| TargetStatus {
                    name: t.name.clone(),
                    kind: kind_name(&t.kind),
                    ..TargetStatus::default()
                })
                .collect(),
        );
        let mut queues = Vec::new();
        let mut pacers = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let (tx, rx) = mpsc::channel(QUEUE);
            queues.push(tx);
            pacers.push(Pacer::new(t.coalesce, t.max_per_minute));
            let sender = Sender {
                index: i,
                target: t.clone(),
                client: client.clone(),
                publisher: self.publisher.clone(),
                status: self.status.clone(),
                clock: self.clock.clone(),
            };
            tasks.spawn(sender.run(rx, stop.clone()));
        }
        let mut conditions = Conditions::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let mut events = Vec::new();
            tokio::select! {
                _ = stop.cancelled() => return,
                r = self.records.recv() => match r {
                    Ok(record) => events.extend(event_of(&record)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "Notifications fell behind the audit log; some records were not considered.");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let now = self.clock.now();
                    for (i, pacer) in pacers.iter_mut().enumerate() {
                        for m in pacer.due(now) {
                            self.queue(i, &queues[i], m);
                        }
                    }
                    // Each target has its own budget threshold: filtered below.
                    events.extend(conditions.update((self.conditions)(), now));
                }
            }
            let now = self.clock.now();
            for e in events {
                for (i, t) in self.targets.iter().enumerate() {
                    if !t.events.contains(&e.kind) {
                        continue;
                    }
                    if e.kind == NotifyEvent::BudgetLow && !e.resolved && !budget_reached(&e, t) {
                        continue;
                    }
                    let before = pacers[i].limited;
                    let folded_before = self.folded(i);
                    match pacers[i].offer(e.clone(), now) {
                        Some(m) => self.queue(i, &queues[i], m),
                        None if pacers[i].limited > before => {
                            self.status.update(|s| s[i].limited += 1);
                        }
                        None => self.status.update(|s| s[i].folded = folded_before + 1),
                    }
                }
            }
        }
    }

    fn folded(&self, i: usize) -> u64 {
        self.status.read(|s| s[i].folded)
    }

    fn queue(&self, i: usize, q: &mpsc::Sender<Message>, m: Message) {
        if q.try_send(m).is_err() {
            self.status.update(|s| s[i].dropped += 1);
        }
    }
}

/// `budget_low` events carry the decreases left as their summary's first number.
fn budget_reached(e: &super::Event, t: &NotifyTarget) -> bool {
    let left = e
        .summary
        .split_whitespace()
        .find_map(|w| w.parse::<usize>().ok());
    left.is_none_or(|n| n <= t.budget_low)
}

fn kind_name(k: &NotifyKind) -> &'static str {
    match k {
        NotifyKind::Slack { .. } => "slack",
        NotifyKind::Webhook { .. } => "webhook",
        NotifyKind::Sns { .. } => "sns",
    }
}

/// Sends one target's messages in order.
struct Sender<P> {
    index: usize,
    target: NotifyTarget,
    client: reqwest::Client,
    publisher: Option<Arc<P>>,
    status: Slot<Vec<TargetStatus>>,
    clock: SharedClock,
}

impl<P: Notifications> Sender<P> {
    async fn run(self, mut rx: mpsc::Receiver<Message>, stop: CancellationToken) {
        loop {
            let m = tokio::select! {
                _ = stop.cancelled() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let link = self.target.link.clone().unwrap_or_default();
            let body = render(&m, &self.target, &link);
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = self.deliver(&body) => r,
            };
            let i = self.index;
            let latency = (self.clock.now() - m.event.time).as_seconds_f64();
            match result {
                Ok(()) => self.status.update(|s| {
                    s[i].sent += 1;
                    s[i].last_latency_s = Some(latency);
                }),
                Err(e) => {
                    tracing::warn!(target = %self.target.name, error = %e, "A notification could not be delivered.");
                    self.status.update(|s| {
                        s[i].failed += 1;
                        s[i].last_error = Some(e);
                    });
                }
            }
        }
    }

    /// Up to [`ATTEMPTS`] tries, backing off with jitter between them.
    async fn deliver(&self, body: &Rendered) -> Result<(), String> {
        let mut wait = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                self.status.update(|s| s[self.index].retried += 1);
                let jitter = 0.5 + fastrand::f64();
                tokio::time::sleep(wait.mul_f64(jitter)).await;
                wait *= 2;
            }
            match self.attempt(body).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn attempt(&self, body: &Rendered) -> Result<(), String> {
        match &self.target.kind {
            NotifyKind::Slack { url } | NotifyKind::Webhook { url } => {
                let r = self
                    .client
                    .post(url)
                    .json(&body.json)
                    .send()
                    .await
                    .map_err(|e| without_url(&e))?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status()))
                }
            }
            NotifyKind::Sns { topic_arn } => {
                let p = self
                    .publisher
                    .as_ref()
                    .ok_or_else(|| "no AWS client".to_string())?;
                p.publish_notification(topic_arn, &body.subject, &body.json.to_string())
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// A reqwest error without its URL (a webhook URL is a secret).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    kind.to_string()
}
