//! The mode in effect, which the API may change at run time: the config's
//! mode unless an operator set another one globally or for one resource
//! (`POST /api/v1/mode`). `paused` stops recording and acting, not deciding.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::config::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeMode {
    DryRun,
    Apply,
    Paused,
}

impl RuntimeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeMode::DryRun => "dry-run",
            RuntimeMode::Apply => "apply",
            RuntimeMode::Paused => "paused",
        }
    }

    /// The configured mode this acts as, when it acts at all.
    pub fn acting(self) -> Option<Mode> {
        match self {
            RuntimeMode::DryRun => Some(Mode::DryRun),
            RuntimeMode::Apply => Some(Mode::Apply),
            RuntimeMode::Paused => None,
        }
    }
}

impl From<Mode> for RuntimeMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::DryRun => RuntimeMode::DryRun,
            Mode::Apply => RuntimeMode::Apply,
        }
    }
}

/// Operator overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Overrides {
    pub global: Option<RuntimeMode>,
    /// By table, `table/index` or group name.
    pub resources: BTreeMap<String, RuntimeMode>,
}

impl Overrides {
    /// The mode of `resources` (most specific first, e.g. `posts/by_user`
    /// then `posts`), given its configured mode.
    pub(crate) fn effective(&self, resources: &[&str], configured: Mode) -> RuntimeMode {
        resources
            .iter()
            .find_map(|r| self.resources.get(*r).copied())
            .or(self.global)
            .unwrap_or(configured.into())
    }
}

#[derive(Debug, Default)]
pub(crate) struct ModeSwitch {
    overrides: RwLock<Overrides>,
}

impl ModeSwitch {
    /// The mode of `resources` (most specific first, e.g. `posts/by_user`
    /// then `posts`), given its configured mode.
    pub(crate) fn effective(&self, resources: &[&str], configured: Mode) -> RuntimeMode {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .effective(resources, configured)
    }

    /// Sets an override; returns the one it replaced.
    pub(crate) fn set(&self, resource: Option<&str>, mode: RuntimeMode) -> Option<RuntimeMode> {
        let mut o = self.overrides.write().unwrap_or_else(|p| p.into_inner());
        match resource {
            Some(r) => o.resources.insert(r.to_string(), mode),
            None => o.global.replace(mode),
        }
    }

    pub(crate) fn snapshot(&self) -> Overrides {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_override_wins() {
        let s = ModeSwitch::default();
        assert_eq!(s.effective(&["posts"], Mode::DryRun), RuntimeMode::DryRun);
        assert_eq!(s.set(None, RuntimeMode::Apply), None);
        assert_eq!(s.effective(&["posts"], Mode::DryRun), RuntimeMode::Apply);
        s.set(Some("posts"), RuntimeMode::Paused);
        assert_eq!(
            s.effective(&["posts/by_user", "posts"], Mode::Apply),
            RuntimeMode::Paused
        );
        s.set(Some("posts/by_user"), RuntimeMode::DryRun);
        assert_eq!(
            s.effective(&["posts/by_user", "posts"], Mode::Apply),
            RuntimeMode::DryRun
        );
        assert_eq!(s.effective(&["web"], Mode::DryRun), RuntimeMode::Apply);
        assert_eq!(RuntimeMode::Paused.acting(), None);
        assert_eq!(
            serde_json::to_string(&RuntimeMode::DryRun).unwrap(),
            "\"dry-run\""
        );
    }
}
