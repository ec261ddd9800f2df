//! Push-notification surges laid over a trace: everyone opens the app at once.
//!
//! Each surge lifts demand to `amplitude` x the hour's mean within 5 s (a
//! linear rise), then decays with a 300 s time constant; the extra
//! requests of each second are Poisson-distributed around that shape.
//! Times are uniformly random within each day of the trace, from `seed`.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};
use serde::Serialize;

pub const RISE_S: f64 = 5.0;
pub const DECAY_S: f64 = 300.0;
/// A surge is laid down until its extra demand has decayed to under 1 %.
const LENGTH_S: usize = (RISE_S + 5.0 * DECAY_S) as usize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurgeSpec {
    pub per_day: u32,
    pub amplitude: f64,
    pub seed: u64,
    /// Seconds of the trace where an announced surge starts (a push sent at
    /// a time known in advance), besides the random ones.
    pub announced: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Surge {
    /// Second of the trace where it starts.
    pub at: usize,
    /// Its time was known in advance (`--announced-surge`).
    pub announced: bool,
    /// The hour's mean requests/s it multiplies.
    pub hour_mean: f64,
    /// Extra requests/s at the top of the shape.
    pub extra_peak: f64,
}

/// The shape's extra requests/s `s` seconds into a surge of height `peak`.
pub fn shape(s: f64, peak: f64) -> f64 {
    let rise = ((s + 1.0) / RISE_S).min(1.0);
    let decay = (-(s - RISE_S).max(0.0) / DECAY_S).exp();
    peak * rise * decay
}

/// Adds `spec.per_day` surges to every day (every 86,400 s from the start)
/// of `requests`; returns them in time order.
pub fn overlay(requests: &mut [f64], spec: &SurgeSpec) -> Vec<Surge> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(spec.seed);
    let mut surges = Vec::new();
    for day_start in (0..requests.len()).step_by(86_400) {
        let day_len = (requests.len() - day_start).min(86_400);
        for _ in 0..spec.per_day {
            let at = day_start + rng.random_range(0..day_len);
            let hour_start = at - at % 3600;
            let hour = &requests[hour_start..(hour_start + 3600).min(requests.len())];
            let hour_mean = hour.iter().sum::<f64>() / hour.len() as f64;
            surges.push(Surge {
                at,
                announced: false,
                hour_mean,
                extra_peak: (spec.amplitude - 1.0).max(0.0) * hour_mean,
            });
        }
    }
    for &at in spec.announced.iter().filter(|&&a| a < requests.len()) {
        let hour_start = at - at % 3600;
        let hour = &requests[hour_start..(hour_start + 3600).min(requests.len())];
        let hour_mean = hour.iter().sum::<f64>() / hour.len() as f64;
        surges.push(Surge {
            at,
            announced: true,
            hour_mean,
            extra_peak: (spec.amplitude - 1.0).max(0.0) * hour_mean,
        });
    }
    surges.sort_by_key(|s| s.at);
    // Means are taken before any surge is added, so overlapping surges do not compound.
    for s in &surges {
        let end = (s.at + LENGTH_S).min(requests.len());
        for (i, r) in requests[s.at..end].iter_mut().enumerate() {
            let mean = shape(i as f64, s.extra_peak);
            if mean > 0.0 {
                *r += Poisson::new(mean)
                    .map(|p| p.sample(&mut rng))
                    .unwrap_or(mean);
            }
        }
    }
    surges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_rises_in_five_seconds_and_decays_over_300() {
        assert!((shape(4.0, 100.0) - 100.0).abs() < 1e-9);
        assert!(shape(0.0, 100.0) < 25.0);
        let after = shape(RISE_S + 300.0, 100.0);
        assert!((after - 100.0 / std::f64::consts::E).abs() < 1e-9);
    }

    #[test]
    fn surges_jump_to_the_amplitude_times_the_hour_mean() {
        let mut r = vec![100.0; 2 * 86_400];
        let spec = SurgeSpec {
            per_day: 3,
            amplitude: 5.0,
            seed: 7,
            announced: vec![3600 * 20],
        };
        let surges = overlay(&mut r, &spec);
        assert_eq!(surges.len(), 7);
        assert_eq!(surges.iter().filter(|s| s.at < 86_400).count(), 4);
        let announced: Vec<usize> = surges
            .iter()
            .filter(|s| s.announced)
            .map(|s| s.at)
            .collect();
        assert_eq!(announced, [72_000]);
        for s in &surges {
            assert_eq!(s.hour_mean, 100.0);
            assert_eq!(s.extra_peak, 400.0);
        }
        // Within 5 s of the start the level is about 5x (Poisson noise: sd 20).
        let s = surges[0];
        let top: f64 = r[s.at + 5..s.at + 15].iter().sum::<f64>() / 10.0;
        assert!((top - 500.0).abs() < 40.0, "{top}");
        // The same seed lays the same surges.
        let mut again = vec![100.0; 2 * 86_400];
        assert_eq!(overlay(&mut again, &spec), surges);
        assert_eq!(again, r);
    }
}
