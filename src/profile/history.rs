//! The minute history on disk: `state_dir/minutes.csv`, written every
//! `SAVE_EVERY` and at shutdown (to a temporary file, then renamed), read
//! back at start so the per-hour view and `suggest-schedule --from-state`
//! survive restarts.
//!
//! One row per stream and minute: `stream,minute,sum,peak,known_seconds`,
//! `minute` in unix seconds. Only minutes with at least one known second are
//! written. The store keeps 8 days per stream (`series.minutes_kept`), so
//! the file is bounded: at most 11,520 rows per stream, about 35 bytes each
//! (some 400 KB per stream).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::series::{MinutePoint, SeriesStore};

pub const FILE: &str = "minutes.csv";
pub const SAVE_EVERY: Duration = Duration::from_secs(300);
const HEADER: &str = "stream,minute,sum,peak,known_seconds";

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Every stream's sealed minutes, by stream name.
pub fn snapshot(store: &SeriesStore) -> BTreeMap<String, Vec<(i64, MinutePoint)>> {
    let kept = store.config().minutes_kept;
    store
        .stream_ids()
        .map(|id| (store.name(id).to_string(), store.minutes(id, kept)))
        .collect()
}

/// Writes the snapshot (atomically: a temporary file, then a rename).
pub fn save(
    state_dir: &Path,
    minutes: &BTreeMap<String, Vec<(i64, MinutePoint)>>,
) -> Result<(), HistoryError> {
    let target = path(state_dir);
    let tmp = state_dir.join(format!("{FILE}.tmp"));
    let io = |source| HistoryError::Io {
        path: target.display().to_string(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(io)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    writeln!(out, "{HEADER}").map_err(io)?;
    for (stream, rows) in minutes {
        for (minute, p) in rows.iter().filter(|(_, p)| p.known_seconds > 0) {
            writeln!(
                out,
                "{stream},{minute},{},{},{}",
                p.sum, p.peak, p.known_seconds
            )
            .map_err(io)?;
        }
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_data().map_err(io)?;
    std::fs::rename(&tmp, &target).map_err(io)
}

/// Reads the file back (empty when there is none yet).
pub fn load(state_dir: &Path) -> Result<BTreeMap<String, Vec<(i64, MinutePoint)>>, HistoryError> {
    let target = path(state_dir);
    let name = target.display().to_string();
    let text = match std::fs::read_to_string(&target) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(HistoryError::Io { path: name, source }),
    };
    let mut out: BTreeMap<String, Vec<(i64, MinutePoint)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let bad = |reason: &str| HistoryError::Parse {
            path: name.clone(),
            line: i + 1,
            reason: reason.to_string(),
        };
        let f: Vec<&str> = line.split(',').collect();
        let [stream, minute, sum, peak, known] = f[..] else {
            return Err(bad("expected 5 columns"));
        };
        let point = MinutePoint {
            sum: sum.parse().map_err(|_| bad("sum"))?,
            peak: peak.parse().map_err(|_| bad("peak"))?,
            known_seconds: known
                .parse()
                .ok()
                .filter(|k| *k <= 60)
                .ok_or_else(|| bad("known_seconds"))?,
        };
        let minute: i64 = minute.parse().map_err(|_| bad("minute"))?;
        out.entry(stream.to_string())
            .or_default()
            .push((minute, point));
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|(m, _)| *m);
        rows.dedup_by_key(|(m, _)| *m);
    }
    Ok(out)
}

/// Puts a loaded history back into the store's streams (by name); streams
/// the config no longer has are ignored.
pub fn restore(store: &mut SeriesStore, history: &BTreeMap<String, Vec<(i64, MinutePoint)>>) {
    for (name, rows) in history {
        if let Some(id) = store.id(name) {
            store.restore_minutes(id, rows);
        }
    }
}
