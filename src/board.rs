//! [`Board`]: the snapshots the daemon's parts publish for each other and
//! for the API, one [`Slot`] each. A part writes only its own slots; the
//! API only reads them (its two controls, the mode overrides and HTTP
//! ingestion, are handed to it separately).

use crate::cloud::tracker::CloudView;
use crate::cloudwatch::watch::WatchStatus;
use crate::cloudwatch::PublishStatus;
use crate::coord::task::{CoordinationStatus, Role};
use crate::decide::run::Decisions;
use crate::policy::calibrate::Calibration;
use crate::slot::Slot;

#[derive(Clone, Default)]
pub(crate) struct Board {
    /// The trackers' (and the actuator's) newest descriptions.
    pub cloud: Slot<CloudView>,
    /// The deciders' advice and fleet reading.
    pub decisions: Decisions,
    /// With coordination: this sidecar's role (the election's).
    pub role: Option<Slot<Role>>,
    /// With coordination: the heartbeat loop's fleet view.
    pub coordination: Slot<Option<CoordinationStatus>>,
    /// CloudWatch publishing.
    pub publish: Slot<Option<PublishStatus>>,
    /// `per_request = "auto"`: the fits in effect.
    pub calibration: Slot<Vec<Calibration>>,
    /// DynamoDB's own metrics read back: leads, throttling.
    pub watch: Slot<WatchStatus>,
    /// `[[notify]]`: each target's counters.
    pub notify: Slot<Vec<crate::notify::deliver::TargetStatus>>,
    /// The throttled minutes of `watch`, as the deciders read them.
    pub reported_throttles: Slot<Vec<crate::decide::ReportedThrottle>>,
}
