//! Durable state in `state_dir` other than the audit log: the DynamoDB
//! decrease ledgers, so a restart never forgets the day's decreases
//! (moto and other emulators report none, and AWS reports only counts).
//!
//! Writes are atomic: a temporary file, fsync, rename, fsync of the folder.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::policy::budget::DecreaseLedger;

/// Ledgers by resource key (`posts`, `posts/by_user`).
pub(crate) struct BudgetStore {
    /// None: kept in memory only (a replay).
    path: Option<PathBuf>,
    pub ledgers: BTreeMap<String, DecreaseLedger>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl BudgetStore {
    pub(crate) const FILE: &'static str = "dynamodb-decreases.json";

    /// Loads the ledgers; a missing file is an empty store. A file that
    /// cannot be read or parsed is an error: the caller must not pretend the
    /// day's budget is untouched.
    pub(crate) fn load(state_dir: &Path) -> Result<BudgetStore, StateError> {
        let path = state_dir.join(Self::FILE);
        let ledgers = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
                path: path.display().to_string(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Ok(BudgetStore {
            path: Some(path),
            ledgers,
        })
    }

    /// An empty store that saves to `state_dir`.
    pub(crate) fn empty(state_dir: &Path) -> BudgetStore {
        BudgetStore {
            path: Some(state_dir.join(Self::FILE)),
            ledgers: BTreeMap::new(),
        }
    }

    /// An empty store that is never written (a replay's).
    pub(crate) fn in_memory() -> BudgetStore {
        BudgetStore {
            path: None,
            ledgers: BTreeMap::new(),
        }
    }

    pub(crate) fn ledger(&self, key: &str) -> DecreaseLedger {
        self.ledgers.get(key).cloned().unwrap_or_default()
    }

    pub(crate) fn ledger_mut(&mut self, key: &str) -> &mut DecreaseLedger {
        self.ledgers.entry(key.to_string()).or_default()
    }

    pub(crate) fn save(&self) -> Result<(), StateError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let err = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(&self.ledgers).expect("ledgers serialize");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&json).and_then(|_| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn ledgers_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = BudgetStore::load(dir.path()).unwrap();
        assert!(store.ledgers.is_empty());
        let at: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        store.ledger_mut("posts").record(at);
        store.ledger_mut("posts/by_user").record(at);
        store
            .ledger_mut("posts/by_user")
            .record(at + chrono::TimeDelta::minutes(5));
        store.save().unwrap();
        let again = BudgetStore::load(dir.path()).unwrap();
        assert_eq!(again.ledger("posts").used_today(at), 1);
        assert_eq!(again.ledger("posts/by_user").used_today(at), 2);
        assert_eq!(again.ledger("other").used_today(at), 0);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(BudgetStore::FILE), "{not json").unwrap();
        assert!(matches!(
            BudgetStore::load(dir.path()),
            Err(StateError::Parse { .. })
        ));
    }
}
