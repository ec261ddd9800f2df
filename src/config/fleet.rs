//! `[fleet]`: how this rapidscale sees the whole fleet's demand. A policy
//! that reads one instance's traffic as the fleet's decides N times too
//! little, so the choice is explicit and checked (docs/coordination.md):
//!
//! - `single`: the application runs on one instance; this rapidscale's own
//!   traffic is all of it. The default without `[coordination]`.
//! - `central`: one rapidscale receives every instance's StatsD or logs, so
//!   its own stream is the fleet's.
//! - `sidecar`: one rapidscale per instance, coordinated through
//!   `[coordination]`: the fleet's total comes from the heartbeats. The
//!   default with `[coordination]`.
//!
//! Refused at start (exit 2): `sidecar` without `[coordination]`, and
//! `single` in apply mode with a group whose hours keep more than one
//! instance. While running, a `single` rapidscale whose group serves on more
//! than one instance does not apply (the deciders' `fleet` gate) and says
//! why in `/readyz`.

use super::reader::{enum_value, Problems, TableReader};
use super::{AsgConfig, CoordinationConfig, DynamoDbConfig, Mode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetView {
    Single,
    Central,
    Sidecar,
}

impl FleetView {
    pub fn as_str(self) -> &'static str {
        match self {
            FleetView::Single => "single",
            FleetView::Central => "central",
            FleetView::Sidecar => "sidecar",
        }
    }

    fn parse(s: &str) -> Option<FleetView> {
        match s {
            "single" => Some(FleetView::Single),
            "central" => Some(FleetView::Central),
            "sidecar" => Some(FleetView::Sidecar),
            _ => None,
        }
    }
}

/// The fix named wherever a fleet cannot be seen.
pub const FLEET_FIX: &str = "set [fleet] view = \"sidecar\" with [coordination] (one rapidscale per instance, totals from heartbeats), or view = \"central\" if this rapidscale receives every instance's traffic";

/// Reads `[fleet]` and checks it against the sections it depends on.
pub(super) fn read(
    root: &mut TableReader,
    p: &mut Problems,
    mode: Mode,
    dynamodb: &DynamoDbConfig,
    fleets: &[&AsgConfig],
    coordination: Option<&CoordinationConfig>,
) -> FleetView {
    let default = if coordination.is_some() {
        FleetView::Sidecar
    } else {
        FleetView::Single
    };
    let (view, located) = match root.table(p, "fleet") {
        Some(mut t) => {
            let v = t.string(p, "view");
            let view = v
                .as_ref()
                .and_then(|v| {
                    enum_value(
                        p,
                        v,
                        FleetView::parse,
                        "\"single\", \"central\" or \"sidecar\"",
                    )
                })
                .unwrap_or(default);
            let located = v.map(|v| (v.span, v.key));
            t.finish(p);
            (view, located)
        }
        None => (default, None),
    };
    if view == FleetView::Sidecar && coordination.is_none() {
        let (span, key) = located
            .clone()
            .unwrap_or((root.span(), "fleet.view".to_string()));
        p.push(
            span,
            &key,
            "\"sidecar\" needs [coordination]: the fleet's total comes from the sidecars' heartbeats",
        );
    }
    let applies = mode == Mode::Apply
        || dynamodb.tables.iter().any(|t| t.mode == Some(Mode::Apply))
        || fleets.iter().any(|a| a.mode == Some(Mode::Apply));
    let fleet_min = fleets
        .iter()
        .flat_map(|a| a.hours.iter().map(|h| h.min))
        .max()
        .unwrap_or(0);
    if view == FleetView::Single && applies && fleet_min > 1 {
        let (span, key) = located.unwrap_or_else(|| {
            (
                root.span_of("asg")
                    .or_else(|| root.span_of("ecs"))
                    .unwrap_or(root.span()),
                "fleet.view".to_string(),
            )
        });
        p.push(
            span,
            &key,
            format!(
                "\"single\" (the default without [coordination]) sees one instance's traffic, but the group (or an ECS service) keeps at least {fleet_min} instances (tasks) and rapidscale applies: its decisions would be about {fleet_min}x too small; {FLEET_FIX}"
            ),
        );
    }
    view
}
