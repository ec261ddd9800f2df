//! `[cloudwatch]`: publishing rapidscale's per-second view, and reading
//! DynamoDB's own metrics back.

use std::time::Duration;

use super::reader::{Problems, TableReader};

/// `[cloudwatch]`: publishing rapidscale's per-second view.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudWatchConfig {
    pub publish: bool,
    pub namespace: String,
    pub publish_interval: Duration,
    /// Datums kept while CloudWatch cannot be reached (the oldest go first).
    pub buffer: usize,
    /// Extra dimensions on every datum ("Name=Value").
    pub dimensions: Vec<(String, String)>,
    /// Read DynamoDB's own metrics (consumed capacity, throttle events):
    /// calibration, lead over CloudWatch, unforeseen throttling.
    pub observe: bool,
    /// How often the consumed-capacity and throttle metrics are read.
    pub calibrate_every: Duration,
    /// The sliding window the units-per-request fit uses.
    pub calibrate_window: Duration,
    /// A fit is used only with at least this R^2 ...
    pub min_r2: f64,
    /// ... and this many minutes paired.
    pub min_samples: usize,
    /// While a surge has not shown in CloudWatch yet: how often to look.
    pub lead_poll: Duration,
}

impl CloudWatchConfig {
    pub const DEFAULT_NAMESPACE: &'static str = "rapidscale";
    pub const DEFAULT_PUBLISH_INTERVAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_BUFFER: usize = 100_000;
    pub const DEFAULT_CALIBRATE_EVERY: Duration = Duration::from_secs(300);
    pub const DEFAULT_CALIBRATE_WINDOW: Duration = Duration::from_secs(6 * 3600);
    pub const DEFAULT_MIN_R2: f64 = 0.8;
    pub const DEFAULT_MIN_SAMPLES: usize = 30;
    pub const DEFAULT_LEAD_POLL: Duration = Duration::from_secs(15);
}

impl Default for CloudWatchConfig {
    fn default() -> Self {
        Self {
            publish: false,
            namespace: Self::DEFAULT_NAMESPACE.into(),
            publish_interval: Self::DEFAULT_PUBLISH_INTERVAL,
            buffer: Self::DEFAULT_BUFFER,
            dimensions: Vec::new(),
            observe: true,
            calibrate_every: Self::DEFAULT_CALIBRATE_EVERY,
            calibrate_window: Self::DEFAULT_CALIBRATE_WINDOW,
            min_r2: Self::DEFAULT_MIN_R2,
            min_samples: Self::DEFAULT_MIN_SAMPLES,
            lead_poll: Self::DEFAULT_LEAD_POLL,
        }
    }
}

/// Reads its section; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> CloudWatchConfig {
    match root.table(p, "cloudwatch") {
        Some(mut t) => {
            let d = CloudWatchConfig::default();
            let publish = t.boolean(p, "publish").map_or(d.publish, |b| b.value);
            let namespace = t.string(p, "namespace").map_or(d.namespace, |s| s.value);
            let publish_interval = t
                .duration(p, "publish_interval")
                .map_or(d.publish_interval, |v| v.value);
            let buffer = t
                .uint(p, "buffer")
                .map_or(d.buffer, |v| v.value.max(1) as usize);
            let mut dimensions = Vec::new();
            for dim in t.string_array(p, "dimensions").unwrap_or_default() {
                match dim.value.split_once('=') {
                    Some((n, v)) if !n.is_empty() && !v.is_empty() => {
                        dimensions.push((n.to_string(), v.to_string()))
                    }
                    _ => p.push(
                        dim.span,
                        &dim.key,
                        format!("expected \"Name=Value\", got {:?}", dim.value),
                    ),
                }
            }
            let observe = t.boolean(p, "observe").map_or(d.observe, |b| b.value);
            let calibrate_every = t
                .duration(p, "calibrate_every")
                .map_or(d.calibrate_every, |v| v.value);
            let calibrate_window = match t.duration(p, "calibrate_window") {
                Some(w)
                    if w.value < Duration::from_secs(600)
                        || w.value > Duration::from_secs(8 * 86400) =>
                {
                    p.push(
                        w.span,
                        &w.key,
                        "between 10 minutes and 8 days (the minute history kept)",
                    );
                    d.calibrate_window
                }
                Some(w) => w.value,
                None => d.calibrate_window,
            };
            let min_r2 = match t.float(p, "min_r2") {
                Some(v) if !(0.0..=1.0).contains(&v.value) => {
                    p.push(v.span, &v.key, "R^2 is between 0 and 1");
                    d.min_r2
                }
                Some(v) => v.value,
                None => d.min_r2,
            };
            let min_samples = match t.uint(p, "min_samples") {
                Some(v) if v.value < 3 => {
                    p.push(v.span, &v.key, "a fit needs at least 3 minutes");
                    d.min_samples
                }
                Some(v) => v.value as usize,
                None => d.min_samples,
            };
            let lead_poll = t.duration(p, "lead_poll").map_or(d.lead_poll, |v| v.value);
            t.finish(p);
            CloudWatchConfig {
                publish,
                namespace,
                publish_interval,
                buffer,
                dimensions,
                observe,
                calibrate_every,
                calibrate_window,
                min_r2,
                min_samples,
                lead_poll,
            }
        }
        None => CloudWatchConfig::default(),
    }
}
