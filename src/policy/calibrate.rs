//! `per_request = "auto"`: what one request costs, fitted from DynamoDB's
//! own minute-level consumed-capacity metrics against rapidscale's own
//! per-minute request counts.
//!
//! The model is the one the advisor uses, demand = requests x per_request,
//! so the fit is a least-squares line through the origin. R^2 is measured
//! against the mean of the consumed units (the usual, centred R^2), so a
//! flat series that any ratio would "explain" does not score well. Only
//! minutes in which all 60 seconds of the request stream were known are
//! paired: a minute with a gap would under-count requests and bias the
//! ratio upwards.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::dynamodb::Op;
use crate::series::MinutePoint;

/// A least-squares fit of consumed units on requests.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fit {
    /// Units per request.
    pub per_request: f64,
    /// Coefficient of determination, centred (1 is a perfect fit).
    pub r2: f64,
    /// Minutes paired.
    pub samples: usize,
}

/// Fits y = k x through the origin over (requests, units) pairs. None when
/// there is nothing to fit (no pairs, or no requests at all).
pub fn fit_through_origin(pairs: &[(f64, f64)]) -> Option<Fit> {
    let sxx: f64 = pairs.iter().map(|(x, _)| x * x).sum();
    if pairs.is_empty() || sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = pairs.iter().map(|(x, y)| x * y).sum();
    let k = sxy / sxx;
    let n = pairs.len() as f64;
    let mean_y = pairs.iter().map(|(_, y)| y).sum::<f64>() / n;
    let ss_res: f64 = pairs.iter().map(|(x, y)| (y - k * x).powi(2)).sum();
    let ss_tot: f64 = pairs.iter().map(|(_, y)| (y - mean_y).powi(2)).sum();
    let r2 = if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else if ss_res == 0.0 {
        1.0
    } else {
        0.0
    };
    Some(Fit {
        per_request: k,
        r2,
        samples: pairs.len(),
    })
}

/// Pairs rapidscale's minutes (start second, point) with CloudWatch's
/// per-minute sums (start second, units). Only minutes whose 60 seconds
/// were all known are used. `factor` scales a minute's own requests to the
/// fleet's (coordination); a minute without a factor is left out when
/// `factor` is given.
pub fn pair_minutes(
    requests: &[(i64, MinutePoint)],
    consumed: &BTreeMap<i64, f64>,
    factor: Option<&BTreeMap<i64, f64>>,
) -> Vec<(f64, f64)> {
    requests
        .iter()
        .filter(|(_, p)| p.known_seconds == 60)
        .filter_map(|(minute, p)| {
            let units = *consumed.get(minute)?;
            let scale = match factor {
                Some(f) => *f.get(minute)?,
                None => 1.0,
            };
            Some((p.sum as f64 * scale, units))
        })
        .collect()
}

/// What the thresholds say about a fit.
pub fn judge(fit: Option<Fit>, min_r2: f64, min_samples: usize) -> Result<Fit, String> {
    match fit {
        None => Err("no minute with requests paired yet".into()),
        Some(f) if f.samples < min_samples => Err(format!(
            "{} minutes paired, {} needed",
            f.samples, min_samples
        )),
        Some(f) if f.r2 < min_r2 => Err(format!("R^2 {:.3} below {:.3}", f.r2, min_r2)),
        Some(f) if !(f.per_request > 0.0 && f.per_request.is_finite()) => {
            Err(format!("fitted ratio {} is not positive", f.per_request))
        }
        Some(f) => Ok(f),
    }
}

/// The calibration of one table or index and operation, for the advisor,
/// the API, `/metrics` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// `table` or `table/index`.
    pub resource: String,
    pub op: Op,
    /// The newest fit, good enough or not.
    pub fit: Option<Fit>,
    /// The units per request in effect: the fit when good, else the fallback.
    pub per_request: Option<f64>,
    /// Whether `per_request` is the fit.
    pub fitted: bool,
    /// The configured `per_request_fallback`.
    pub fallback: Option<f64>,
    /// Why the fallback is in effect.
    pub reason: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Calibration {
    /// Before any fit: the fallback, and why.
    pub fn initial(resource: String, op: Op, fallback: Option<f64>) -> Self {
        Self {
            resource,
            op,
            fit: None,
            per_request: fallback,
            fitted: false,
            fallback,
            reason: Some("not calibrated yet".into()),
            updated_at: None,
        }
    }

    /// Applies a new fit under the thresholds.
    pub fn update(
        &mut self,
        fit: Option<Fit>,
        min_r2: f64,
        min_samples: usize,
        now: DateTime<Utc>,
    ) {
        self.fit = fit;
        self.updated_at = Some(now);
        match judge(fit, min_r2, min_samples) {
            Ok(f) => {
                self.per_request = Some(f.per_request);
                self.fitted = true;
                self.reason = None;
            }
            Err(why) => {
                self.per_request = self.fallback;
                self.fitted = false;
                self.reason = Some(why);
            }
        }
    }

    /// Reading CloudWatch failed: the last verdict stands, with the error.
    pub fn failed(&mut self, error: &str) {
        let why = format!("CloudWatch read failed: {error}");
        self.reason = Some(match (&self.reason, self.fitted) {
            (_, true) => format!("{why}; keeping the last good fit"),
            _ => why,
        });
    }
}

/// The units per request in effect for one resource and operation.
pub fn in_effect(calibrations: &[Calibration], resource: &str, op: Op) -> Option<f64> {
    calibrations
        .iter()
        .find(|c| c.resource == resource && c.op == op)
        .and_then(|c| c.per_request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(sum: f32, known: u8) -> MinutePoint {
        MinutePoint {
            sum,
            peak: sum / 60.0,
            known_seconds: known,
        }
    }

    #[test]
    fn an_exact_ratio_is_recovered_with_r2_one() {
        let pairs: Vec<(f64, f64)> = (1..=10)
            .map(|i| (i as f64 * 100.0, i as f64 * 50.0))
            .collect();
        let f = fit_through_origin(&pairs).unwrap();
        assert!((f.per_request - 0.5).abs() < 1e-12);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert_eq!(f.samples, 10);
    }

    #[test]
    fn r2_is_centred_so_unrelated_series_score_low() {
        // Requests rise, units do not follow: k fits, R^2 does not.
        let pairs = [(100.0, 80.0), (200.0, 20.0), (300.0, 90.0), (400.0, 10.0)];
        let f = fit_through_origin(&pairs).unwrap();
        // k = (8000 + 4000 + 27000 + 4000) / (10000 + 40000 + 90000 + 160000)
        assert!((f.per_request - 43000.0 / 300000.0).abs() < 1e-12);
        assert!(f.r2 < 0.0, "{f:?}");
        assert!(judge(Some(f), 0.8, 3).is_err());
    }

    #[test]
    fn nothing_to_fit_without_requests() {
        assert_eq!(fit_through_origin(&[]), None);
        assert_eq!(fit_through_origin(&[(0.0, 5.0)]), None);
    }

    #[test]
    fn only_whole_minutes_present_on_both_sides_are_paired() {
        let requests = [
            (0, minute(600.0, 60)),
            (60, minute(300.0, 59)),
            (120, minute(900.0, 60)),
            (180, minute(60.0, 60)),
        ];
        let consumed: BTreeMap<i64, f64> = [(0, 300.0), (60, 150.0), (120, 450.0)].into();
        assert_eq!(
            pair_minutes(&requests, &consumed, None),
            vec![(600.0, 300.0), (900.0, 450.0)]
        );
        // With coordination, a minute is scaled to the fleet, or left out.
        let factor: BTreeMap<i64, f64> = [(0, 3.0)].into();
        assert_eq!(
            pair_minutes(&requests, &consumed, Some(&factor)),
            vec![(1800.0, 300.0)]
        );
    }

    #[test]
    fn a_weak_or_short_fit_falls_back_and_says_why() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut c = Calibration::initial("posts".into(), Op::Read, Some(0.5));
        assert_eq!(c.per_request, Some(0.5));
        let good = Fit {
            per_request: 0.8,
            r2: 0.95,
            samples: 40,
        };
        c.update(Some(good), 0.8, 30, now);
        assert_eq!(
            (c.per_request, c.fitted, c.reason.clone()),
            (Some(0.8), true, None)
        );
        c.update(
            Some(Fit {
                samples: 10,
                ..good
            }),
            0.8,
            30,
            now,
        );
        assert_eq!((c.per_request, c.fitted), (Some(0.5), false));
        assert_eq!(c.reason.as_deref(), Some("10 minutes paired, 30 needed"));
        c.update(Some(Fit { r2: 0.5, ..good }), 0.8, 30, now);
        assert_eq!(c.reason.as_deref(), Some("R^2 0.500 below 0.800"));
        // Without a fallback, demand from requests stays unknown (hold).
        let mut none = Calibration::initial("posts".into(), Op::Write, None);
        none.update(None, 0.8, 30, now);
        assert_eq!(none.per_request, None);
    }
}
