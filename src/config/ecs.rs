//! `[[ecs.services]]`: ECS services whose desired count rapidscale sizes,
//! each with the group's per-hour limits and policy (`asg.rs`), per task.

use super::asg::read_fleet;
use super::reader::{Problems, TableReader};
use super::AsgConfig;

/// One ECS service: its cluster and name, and the fleet settings (per-hour
/// `min`/`max`/`target_rps_per_task`, the policy, `mode`, `poll_interval`).
#[derive(Debug, Clone, PartialEq)]
pub struct EcsService {
    pub cluster: String,
    pub service: String,
    pub fleet: AsgConfig,
}

/// Reads `[[ecs.services]]`; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> Vec<EcsService> {
    let Some(mut ecs) = root.table(p, "ecs") else {
        return Vec::new();
    };
    let mut out: Vec<EcsService> = Vec::new();
    for mut s in ecs.tables(p, "services") {
        let mut required = |p: &mut Problems, key: &str, what: &str| match s.string(p, key) {
            Some(v) if !v.value.trim().is_empty() => Some(v),
            Some(v) => {
                p.push(v.span, &v.key, format!("empty: {what}"));
                None
            }
            None => {
                if !s.has(key) {
                    p.push(s.span(), &s.key_path(key), format!("missing: {what}"));
                }
                None
            }
        };
        let cluster = required(p, "cluster", "the ECS cluster's name or ARN");
        let service = required(p, "service", "the ECS service's name");
        let fleet = read_fleet(&mut s, p, "target_rps_per_task", false);
        if let (Some(c), Some(v)) = (cluster, service) {
            if out
                .iter()
                .any(|o| o.cluster == c.value && o.service == v.value)
            {
                p.push(
                    v.span,
                    &v.key,
                    format!("service {}/{} is listed twice", c.value, v.value),
                );
            } else {
                out.push(EcsService {
                    cluster: c.value,
                    service: v.value,
                    fleet,
                });
            }
        }
        s.finish(p);
    }
    ecs.finish(p);
    out
}
