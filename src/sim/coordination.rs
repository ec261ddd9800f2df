//! The simulator's coordination table: the same items and the same
//! conditions as `cloud::aws::coordination` writes to DynamoDB, kept in
//! memory, so a simulated fleet of sidecars elects one leader and sums its
//! heartbeats exactly as a real one does.

use std::collections::BTreeMap;

use crate::cloud::coordination::HEARTBEAT_TTL_S;
use crate::cloud::{Heartbeat, Lease};

/// The lease item of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseItem {
    pub holder: String,
    pub fencing: u64,
    pub until_ms: i64,
}

/// One coordination table.
#[derive(Debug, Clone, Default)]
pub struct SimCoordinationTable {
    /// (cluster, instance) -> newest heartbeat.
    pub heartbeats: BTreeMap<(String, String), Heartbeat>,
    /// cluster -> lease.
    pub leases: BTreeMap<String, LeaseItem>,
    /// (cluster, id) -> announced surge.
    pub announcements: BTreeMap<(String, String), crate::cloud::AnnouncementItem>,
}

impl SimCoordinationTable {
    pub fn put_heartbeat(&mut self, cluster: &str, hb: &Heartbeat) {
        self.heartbeats
            .insert((cluster.to_string(), hb.instance_id.clone()), hb.clone());
    }

    /// The cluster's heartbeats; items past their TTL are gone, as DynamoDB's
    /// TTL would (eventually) delete them.
    pub fn query_heartbeats(&mut self, cluster: &str, now_ms: i64) -> Vec<Heartbeat> {
        self.heartbeats
            .retain(|_, hb| hb.sent_ms / 1000 + HEARTBEAT_TTL_S > now_ms / 1000);
        self.heartbeats
            .iter()
            .filter(|((c, _), _)| c == cluster)
            .map(|(_, hb)| hb.clone())
            .collect()
    }

    /// `SET until_ms` if held by `me` with the same token, or `SET holder,
    /// until_ms ADD fencing 1` if free or expired; None when the condition fails.
    pub fn take_or_renew(
        &mut self,
        cluster: &str,
        me: &str,
        held: Option<Lease>,
        now_ms: i64,
        lease_ms: i64,
    ) -> Option<Lease> {
        let until_ms = now_ms + lease_ms;
        let item = self.leases.get_mut(cluster);
        match (held, item) {
            (Some(l), Some(item)) if item.holder == me && item.fencing == l.fencing => {
                item.until_ms = until_ms;
                Some(Lease {
                    fencing: item.fencing,
                    until_ms,
                })
            }
            (Some(_), _) => None,
            (None, Some(item)) if item.until_ms < now_ms => {
                item.holder = me.to_string();
                item.fencing += 1;
                item.until_ms = until_ms;
                Some(Lease {
                    fencing: item.fencing,
                    until_ms,
                })
            }
            (None, Some(_)) => None,
            (None, None) => {
                self.leases.insert(
                    cluster.to_string(),
                    LeaseItem {
                        holder: me.to_string(),
                        fencing: 1,
                        until_ms,
                    },
                );
                Some(Lease {
                    fencing: 1,
                    until_ms,
                })
            }
        }
    }

    /// `holder = me AND fencing = token AND until_ms > must_outlive_ms`.
    pub fn verify(&self, cluster: &str, me: &str, lease: Lease, must_outlive_ms: i64) -> bool {
        self.leases.get(cluster).is_some_and(|item| {
            item.holder == me && item.fencing == lease.fencing && item.until_ms > must_outlive_ms
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_the_token_rises_with_each_new_holder() {
        let mut t = SimCoordinationTable::default();
        let a = t.take_or_renew("c", "i-a", None, 0, 10_000).expect("free");
        assert_eq!(a.fencing, 1);
        assert_eq!(t.take_or_renew("c", "i-b", None, 5_000, 10_000), None);
        // Renewal keeps the token; a stale belief of holding fails.
        let a2 = t
            .take_or_renew("c", "i-a", Some(a), 5_000, 10_000)
            .expect("ours");
        assert_eq!((a2.fencing, a2.until_ms), (1, 15_000));
        assert_eq!(t.take_or_renew("c", "i-b", Some(a), 6_000, 10_000), None);
        assert!(t.verify("c", "i-a", a2, 12_000));
        assert!(!t.verify("c", "i-a", a2, 15_000), "must outlive the margin");
        assert!(!t.verify("c", "i-b", a2, 0));
        // Expired: the next taker gets token 2, and the old holder's check fails.
        let b = t
            .take_or_renew("c", "i-b", None, 15_001, 10_000)
            .expect("expired");
        assert_eq!(b.fencing, 2);
        assert!(!t.verify("c", "i-a", a2, 15_002));
        // Clusters are independent.
        assert_eq!(
            t.take_or_renew("d", "i-a", None, 0, 10_000)
                .map(|l| l.fencing),
            Some(1)
        );
    }

    #[test]
    fn heartbeats_are_kept_per_cluster_and_expire_with_their_ttl() {
        let mut t = SimCoordinationTable::default();
        let hb = |id: &str, sent_ms: i64| Heartbeat {
            instance_id: id.into(),
            lifecycle: "InService".into(),
            seq: 1,
            sent_ms,
            first_second: sent_ms / 1000 - 5,
            counts: BTreeMap::new(),
        };
        t.put_heartbeat("c", &hb("i-a", 1_000));
        t.put_heartbeat("c", &hb("i-b", 2_000));
        t.put_heartbeat("c", &hb("i-b", 3_000));
        t.put_heartbeat("other", &hb("i-z", 3_000));
        let beats = t.query_heartbeats("c", 4_000);
        assert_eq!(beats.len(), 2);
        assert_eq!(beats[1].sent_ms, 3_000, "the newest beat wins");
        let later = (HEARTBEAT_TTL_S + 2) * 1000;
        assert_eq!(t.query_heartbeats("c", later).len(), 1, "i-a expired");
    }
}
