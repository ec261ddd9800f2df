//! Window statistics over per-second values: max, mean, percentiles and a
//! least-squares trend. Pure functions over slices.

/// Statistics of a window of known seconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct WindowStats {
    /// Known seconds in the window.
    pub seconds: usize,
    pub sum: f64,
    pub mean: f64,
    pub max: f64,
    pub p90: f64,
    pub p99: f64,
}

impl WindowStats {
    pub fn of(values: &[f64]) -> Option<WindowStats> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let sum: f64 = values.iter().sum();
        Some(WindowStats {
            seconds: values.len(),
            sum,
            mean: sum / values.len() as f64,
            max: sorted[sorted.len() - 1],
            p90: percentile(&sorted, 0.90),
            p99: percentile(&sorted, 0.99),
        })
    }
}

/// Nearest-rank percentile of sorted values (q in [0, 1]).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A fitted line `value = slope * x + intercept`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Trend {
    /// Change per second.
    pub slope: f64,
    pub intercept: f64,
    pub points: usize,
    /// Coefficient of determination: 1 is a perfect line, 0 no better than the mean.
    pub r2: f64,
}

impl Trend {
    pub fn at(&self, x: f64) -> f64 {
        self.slope * x + self.intercept
    }
}

/// Ordinary least squares over (x, y); None with fewer than two distinct x.
pub fn least_squares(points: &[(f64, f64)]) -> Option<Trend> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    Some(Trend {
        slope,
        intercept: mean_y - slope * mean_x,
        points: points.len(),
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_of_values() {
        let w = WindowStats::of(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
        assert_eq!(
            (w.seconds, w.sum, w.mean, w.max, w.p90, w.p99),
            (10, 55.0, 5.5, 10.0, 9.0, 10.0)
        );
        assert_eq!(WindowStats::of(&[]), None);
    }

    #[test]
    fn percentile_nearest_rank() {
        let v = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(percentile(&v, 0.0), 10.0);
        assert_eq!(percentile(&v, 0.5), 20.0);
        assert_eq!(percentile(&v, 0.51), 30.0);
        assert_eq!(percentile(&v, 1.0), 40.0);
    }

    #[test]
    fn exact_line() {
        let t = least_squares(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((t.slope - 2.0).abs() < 1e-12);
        assert!((t.intercept - 1.0).abs() < 1e-12);
        assert!((t.at(10.0) - 21.0).abs() < 1e-9);
        assert!((t.r2 - 1.0).abs() < 1e-12);
        let noisy = least_squares(&[(0.0, 1.0), (1.0, 5.0), (2.0, 1.0), (3.0, 5.0)]).unwrap();
        assert!(noisy.r2 < 0.3, "{noisy:?}");
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(least_squares(&[(1.0, 1.0)]), None);
        assert_eq!(least_squares(&[(1.0, 1.0), (1.0, 5.0)]), None);
    }
}
