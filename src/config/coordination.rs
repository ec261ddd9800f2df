//! `[coordination]`: the DynamoDB table a fleet of sidecars shares.

use std::time::Duration;

use super::reader::{Problems, TableReader};
use super::AsgConfig;

/// `[coordination]`: the DynamoDB table sidecars of one group share
/// (docs/coordination.md).
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinationConfig {
    pub table: String,
    /// Which sidecars belong together: the group's name unless set.
    pub cluster: String,
    /// This sidecar's instance id; None: from instance metadata.
    pub instance_id: Option<String>,
    /// A heartbeat older than this is silent.
    pub stale_after: Duration,
    /// How long the leader's lease lasts, and how often it is renewed.
    pub lease: Duration,
    pub renew_every: Duration,
}

impl CoordinationConfig {
    /// A heartbeat older than this is silent, unless `stale_after` says otherwise.
    pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3);
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
    pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_secs(2);
}

/// Reads its section; every problem goes to `p`.
pub(super) fn read(
    root: &mut TableReader,
    p: &mut Problems,
    asg: Option<&AsgConfig>,
) -> Option<CoordinationConfig> {
    root.table(p, "coordination").and_then(|mut t| {
        let table = t.string(p, "table");
        if table.is_none() && !t.has("table") {
            p.push(
                t.span(),
                &t.key_path("table"),
                "missing: the DynamoDB table the sidecars share",
            );
        }
        let cluster = t.string(p, "cluster").map(|c| c.value).unwrap_or_else(|| {
            asg.as_ref()
                .and_then(|a| a.name.clone())
                .unwrap_or_else(|| "default".to_string())
        });
        let instance_id = t.string(p, "instance_id").map(|s| s.value);
        let stale_after = t
            .duration(p, "stale_after")
            .map(|d| d.value)
            .unwrap_or(CoordinationConfig::DEFAULT_STALE_AFTER);
        let lease = t.duration(p, "lease");
        let renew = t.duration(p, "renew_every");
        let (lease_v, renew_v) = (
            lease
                .as_ref()
                .map_or(CoordinationConfig::DEFAULT_LEASE, |d| d.value),
            renew
                .as_ref()
                .map_or(CoordinationConfig::DEFAULT_RENEW_EVERY, |d| d.value),
        );
        if renew_v * 2 > lease_v || lease_v < Duration::from_secs(4) {
            let (span, key) = match (&renew, &lease) {
                (Some(r), _) => (r.span.clone(), r.key.clone()),
                (None, Some(l)) => (l.span.clone(), l.key.clone()),
                (None, None) => (t.span(), t.key_path("lease")),
            };
            p.push(
                span,
                &key,
                format!(
                    "the lease ({}) must be at least 4 s and at least twice renew_every ({}), so a leader renews before the skew margin",
                    humantime::format_duration(lease_v),
                    humantime::format_duration(renew_v)
                ),
            );
        }
        t.finish(p);
        table.map(|table| CoordinationConfig {
            table: table.value,
            cluster,
            instance_id,
            stale_after,
            lease: lease_v,
            renew_every: renew_v,
        })
    })
}
