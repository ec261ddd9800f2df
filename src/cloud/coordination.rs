//! The types that cross the [`super::Coordination`] port: heartbeats,
//! the leader lease, and what `init` did. The rules over them (the fleet's
//! totals, when a lease may act) are in `coord`.

use std::collections::BTreeMap;

use serde::Serialize;

/// The TTL attribute of every coordination item (unix seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Seconds a heartbeat item outlives its sidecar before TTL deletes it.
pub const HEARTBEAT_TTL_S: i64 = 3600;

/// One announced surge in the coordination table: its id, its JSON (the
/// `announce` module's), and when the item expires (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncementItem {
    pub id: String,
    pub body: String,
    pub expires_at_s: i64,
}

/// What `init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitReport {
    /// The table did not exist and was created.
    pub created: bool,
    /// TTL was off and has been turned on.
    pub ttl_turned_on: bool,
}

/// One sidecar's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heartbeat {
    pub instance_id: String,
    /// The instance's Auto Scaling lifecycle state, as the sidecar last saw it.
    pub lifecycle: String,
    pub seq: u64,
    /// Wall time of the write, unix milliseconds.
    pub sent_ms: i64,
    /// The unix second of the first value of every `counts` list.
    pub first_second: i64,
    /// Per stream, requests per second from `first_second` on (None: unknown).
    pub counts: BTreeMap<String, Vec<Option<f64>>>,
}

impl Heartbeat {
    /// The count of `stream` in `second`, when the heartbeat carries it.
    pub fn value(&self, stream: &str, second: i64) -> Option<f64> {
        let i = usize::try_from(second - self.first_second).ok()?;
        self.counts.get(stream)?.get(i).copied().flatten()
    }
}

/// A cluster's leader lease as its holder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub fencing: u64,
    /// When the lease ends, unix milliseconds (the holder's clock).
    pub until_ms: i64,
}
