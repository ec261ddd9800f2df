//! `[series]`: how long the per-second and per-minute history is kept.

use std::time::Duration;

use super::reader::{Problems, TableReader};

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesConfig {
    /// How long per-second points are kept.
    pub per_second: Duration,
    /// How long per-minute points are kept.
    pub per_minute: Duration,
}

impl SeriesConfig {
    pub const DEFAULT: SeriesConfig = SeriesConfig {
        per_second: Duration::from_secs(3600),
        per_minute: Duration::from_secs(8 * 86_400),
    };
}

impl Default for SeriesConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Reads its section; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> SeriesConfig {
    match root.table(p, "series") {
        Some(mut t) => {
            let d = SeriesConfig::default();
            let s = SeriesConfig {
                per_second: t
                    .duration(p, "per_second")
                    .map(|d| d.value)
                    .unwrap_or(d.per_second),
                per_minute: t
                    .duration(p, "per_minute")
                    .map(|d| d.value)
                    .unwrap_or(d.per_minute),
            };
            t.finish(p);
            s
        }
        None => SeriesConfig::default(),
    }
}
