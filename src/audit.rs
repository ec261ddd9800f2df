//! The audit log: one JSON line per decision in `state_dir/audit.jsonl`,
//! written and fsynced *before* any AWS call it describes, and a second
//! line with the same id once the call completed. The newest records are
//! also kept in memory for the API.
//!
//! Invariant: in apply mode no AWS call is made unless its `decided`
//! record reached the disk (see `actuator`).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Mode;

/// Records kept in memory.
pub const MEMORY: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Written before acting.
    Decided,
    /// Written after the call returned.
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Dry run: what rapidscale would have done.
    Recommended,
    /// Apply: the call is about to be made.
    Pending,
    Applied,
    /// Not attempted (table busy, budget, audit log unavailable, ...).
    Skipped,
    Failed,
    /// Not a decision: something learnt later about one (`observed`).
    Observed,
    /// Not a change: demand is above the band and burst capacity is
    /// counted on to carry it for now (a bet); the resource's next record
    /// tells how it ended.
    Held,
}

impl Outcome {
    /// The audit log's (and the logs') word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Recommended => "recommended",
            Outcome::Pending => "pending",
            Outcome::Applied => "applied",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::Observed => "observed",
            Outcome::Held => "held",
        }
    }
}

/// When CloudWatch showed the surge an earlier decision acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The id of the decision's records.
    pub refers_to: String,
    /// Start of the first one-minute datapoint that showed the rise.
    pub cloudwatch_minute: DateTime<Utc>,
    /// Seconds from the decision to rapidscale reading that datapoint.
    pub lead_s: f64,
    /// Seconds from the decision to the end of that datapoint's minute.
    pub minute_lead_s: f64,
}

/// One capacity change in a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditChange {
    /// The member (`posts`, `posts/by_user`) when the record covers a call
    /// for several members of a table; otherwise the record's resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// "read", "write" or "desired".
    pub op: String,
    pub from: u64,
    pub to: u64,
    pub rule: String,
    /// Demand figure the rule acted on (units/s or requests/s).
    pub demand: Option<f64>,
    pub threshold: Option<f64>,
    pub window_s: u64,
}

impl AuditChange {
    /// The table or index the change applies to, in a record of `record`.
    pub fn member<'a>(&'a self, record: &'a AuditRecord) -> &'a str {
        self.resource.as_deref().unwrap_or(&record.resource)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: String,
    pub time: DateTime<Utc>,
    pub phase: Phase,
    /// "dynamodb" or "asg".
    pub service: String,
    /// Table (`posts`), index (`posts/by_user`) or group name.
    pub resource: String,
    pub mode: Mode,
    pub outcome: Outcome,
    pub changes: Vec<AuditChange>,
    /// Whether the call lowers capacity (spends a DynamoDB decrease).
    pub decrease: bool,
    pub reason: Option<String>,
    pub error: Option<String>,
    /// With fleet coordination: the leader's fencing token the action was taken under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing: Option<u64>,
    /// Outcome `observed`: the lead over CloudWatch of the decision `refers_to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observation>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("open audit log {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("write audit log {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("audit log {path} is unavailable")]
    Unavailable { path: String },
}

/// When a record is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Each record is fsynced before `append` returns (the daemon).
    Fsync,
    /// Records are buffered and written by [`AuditLog::flush`] (a replay,
    /// where a crash loses nothing that cannot be replayed again).
    Buffered,
}

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
    durability: Durability,
    recent: Mutex<VecDeque<AuditRecord>>,
    id_prefix: String,
    next_id: AtomicU64,
    /// Records appended, by (service, resource, outcome): for `/metrics`.
    counts: Mutex<std::collections::BTreeMap<(String, String, Outcome), u64>>,
    /// Why the newest write failed (None after a write that succeeded).
    failing: Mutex<Option<String>>,
    /// Every record as it is appended, for notifications (never waits).
    appended: tokio::sync::broadcast::Sender<AuditRecord>,
}

impl AuditLog {
    /// Opens (creating) `state_dir/audit.jsonl`. When that fails the log
    /// still keeps records in memory, but [`AuditLog::append`] fails, so
    /// nothing is applied without a durable record.
    pub fn open(state_dir: &Path, now: DateTime<Utc>) -> (AuditLog, Option<AuditError>) {
        Self::open_with(state_dir, now, Durability::Fsync)
    }

    /// Like [`AuditLog::open`], with the durability given.
    pub fn open_with(
        state_dir: &Path,
        now: DateTime<Utc>,
        durability: Durability,
    ) -> (AuditLog, Option<AuditError>) {
        let path = state_dir.join("audit.jsonl");
        let opened = std::fs::create_dir_all(state_dir)
            .and_then(|_| OpenOptions::new().create(true).append(true).open(&path))
            .map_err(|source| AuditError::Open {
                path: path.display().to_string(),
                source,
            });
        let (file, err) = match opened {
            Ok(f) => (Some(BufWriter::new(f)), None),
            Err(e) => (None, Some(e)),
        };
        let failing = err.as_ref().map(|e| e.to_string());
        let log = AuditLog {
            path,
            file: Mutex::new(file),
            durability,
            recent: Mutex::new(VecDeque::new()),
            id_prefix: format!("{:x}", now.timestamp_millis()),
            next_id: AtomicU64::new(1),
            counts: Mutex::new(Default::default()),
            failing: Mutex::new(failing),
            appended: tokio::sync::broadcast::channel(1024).0,
        };
        (log, err)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new id, unique across restarts (start time + sequence).
    pub fn new_id(&self) -> String {
        format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Writes one record and fsyncs it; then keeps it in memory. The memory
    /// copy is kept even when the disk write fails.
    /// Every record appended from now on (a slow reader misses records,
    /// it never slows a writer).
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<AuditRecord> {
        self.appended.subscribe()
    }

    pub fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self.remember(record.clone());
        if self.appended.receiver_count() > 0 {
            let _ = self.appended.send(record.clone());
        }
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((
                record.service.clone(),
                record.resource.clone(),
                record.outcome,
            ))
            .or_default() += 1;
        let mut line = serde_json::to_vec(record).expect("audit records serialize");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = file.as_mut() else {
            return Err(AuditError::Unavailable {
                path: self.path.display().to_string(),
            });
        };
        let result = f
            .write_all(&line)
            .and_then(|_| match self.durability {
                Durability::Fsync => f.flush().and_then(|_| f.get_ref().sync_data()),
                Durability::Buffered => Ok(()),
            })
            .map_err(|source| AuditError::Write {
                path: self.path.display().to_string(),
                source,
            });
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) =
            result.as_ref().err().map(|e| e.to_string());
        result
    }

    /// Writes what is buffered and fsyncs it: the last step of a shutdown.
    pub fn flush(&self) -> Result<(), AuditError> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = file.as_mut() else {
            return Ok(());
        };
        f.flush()
            .and_then(|_| f.get_ref().sync_data())
            .map_err(|source| AuditError::Write {
                path: self.path.display().to_string(),
                source,
            })
    }

    /// Why records cannot be written, while they cannot (the newest write
    /// failed, or the file never opened). Nothing is applied meanwhile.
    pub fn unavailable(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remember(&self, record: AuditRecord) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        // The completion of a decision replaces its first record in memory.
        if let Some(existing) = recent.iter_mut().rev().take(64).find(|r| r.id == record.id) {
            *existing = record;
            return;
        }
        if recent.len() == MEMORY {
            recent.pop_front();
        }
        recent.push_back(record);
    }

    /// Records appended since start, by (service, resource, outcome).
    pub fn counts(&self) -> Vec<((String, String, Outcome), u64)> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The newest records at or after `since`, newest first, at most `limit`.
    pub fn recent(&self, since: Option<DateTime<Utc>>, limit: usize) -> Vec<AuditRecord> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .filter(|r| since.is_none_or(|s| r.time >= s))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Reads every record of an audit file (tests and tools).
pub fn read_file(path: &Path) -> std::io::Result<Vec<AuditRecord>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(log: &AuditLog, phase: Phase, outcome: Outcome) -> AuditRecord {
        AuditRecord {
            id: log.new_id(),
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            phase,
            service: "dynamodb".into(),
            resource: "posts".into(),
            mode: Mode::Apply,
            outcome,
            changes: vec![AuditChange {
                resource: None,
                op: "read".into(),
                from: 10,
                to: 50,
                rule: "surge".into(),
                demand: Some(30.0),
                threshold: Some(7.7),
                window_s: 2,
            }],
            decrease: false,
            reason: None,
            error: None,
            fencing: None,
            observed: None,
        }
    }

    #[test]
    fn records_reach_the_file_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (log, err) = AuditLog::open(dir.path(), Utc::now());
        assert!(err.is_none());
        let mut r = record(&log, Phase::Decided, Outcome::Pending);
        log.append(&r).unwrap();
        r.phase = Phase::Completed;
        r.outcome = Outcome::Applied;
        log.append(&r).unwrap();
        let on_disk = read_file(log.path()).unwrap();
        assert_eq!(on_disk.len(), 2, "both phases are on disk");
        assert_eq!(on_disk[0].outcome, Outcome::Pending);
        let in_memory = log.recent(None, 10);
        assert_eq!(in_memory.len(), 1, "memory keeps the completed record only");
        assert_eq!(in_memory[0].outcome, Outcome::Applied);
    }

    #[test]
    fn an_unwritable_state_dir_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "").unwrap();
        let (log, err) = AuditLog::open(&blocker, Utc::now());
        assert!(matches!(err, Some(AuditError::Open { .. })));
        let r = record(&log, Phase::Decided, Outcome::Pending);
        assert!(matches!(
            log.append(&r),
            Err(AuditError::Unavailable { .. })
        ));
        assert_eq!(log.recent(None, 10).len(), 1, "still visible in memory");
    }

    #[test]
    fn memory_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = AuditLog::open(dir.path(), Utc::now());
        for _ in 0..(MEMORY + 5) {
            log.remember(record(&log, Phase::Decided, Outcome::Recommended));
        }
        assert_eq!(log.recent(None, usize::MAX).len(), MEMORY);
    }

    /// A full disk: the file opens, every write fails (ENOSPC), and the
    /// log says so until a write succeeds again.
    #[test]
    fn a_full_disk_is_reported_until_a_write_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/full", dir.path().join("audit.jsonl")).unwrap();
        let (log, err) = AuditLog::open(dir.path(), Utc::now());
        assert!(err.is_none());
        assert_eq!(log.unavailable(), None);
        let r = record(&log, Phase::Decided, Outcome::Pending);
        assert!(matches!(log.append(&r), Err(AuditError::Write { .. })));
        let why = log.unavailable().expect("reported");
        assert!(why.contains("No space left"), "{why}");
        // The disk has room again (the file now a regular one).
        std::fs::remove_file(dir.path().join("audit.jsonl")).unwrap();
        *log.file.lock().unwrap() = Some(BufWriter::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("audit.jsonl"))
                .unwrap(),
        ));
        log.append(&r).unwrap();
        assert_eq!(log.unavailable(), None);
    }
}
