//! On-demand tables: when to raise warm throughput.
//!
//! An on-demand table or index serves at once up to the higher of its warm
//! throughput and double its previous peak (DynamoDB's "instant capacity":
//! traffic past double the previous peak within 30 minutes may be
//! throttled while it adapts). rapidscale raises warm throughput, never
//! lowers it (AWS does not allow lowering, and every raise is paid for
//! once), when:
//!
//! - an announced surge needs more than the table serves at once
//!   (`announced`), to the announced units per second; or
//! - per-second demand reaches `trigger` (the spec's `target`) of what the
//!   table serves at once (`warm_trend`), to twice the newest demand, so
//!   the next doubling is covered too.
//!
//! Both are capped by the spec's `max` for the hour.

use serde::Serialize;

use super::demand::DemandView;

/// Seconds of demand the trend rule averages.
pub const WARM_WINDOW_S: usize = 5;

/// What a raise is sized to, past the newest demand.
pub const WARM_HEADROOM: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarmRule {
    Announced,
    WarmTrend,
}

impl WarmRule {
    pub fn as_str(self) -> &'static str {
        match self {
            WarmRule::Announced => "announced",
            WarmRule::WarmTrend => "warm_trend",
        }
    }
}

/// One operation of an on-demand resource now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmContext {
    /// Its warm throughput (units/s).
    pub warm: u64,
    /// The highest second of the last 30 minutes (units/s).
    pub previous_peak: f64,
    /// Raise when demand reaches this share of what it serves at once.
    pub trigger: f64,
    /// The hour's `max`: never raised past it.
    pub ceiling: u64,
    /// The units/s an announced surge holding now needs.
    pub announced: Option<f64>,
}

impl WarmContext {
    /// Units/s served at once: warm throughput or double the previous peak.
    pub fn instant(&self) -> f64 {
        (self.warm as f64).max(2.0 * self.previous_peak)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum WarmVerdict {
    Hold,
    Raise {
        to: u64,
        rule: WarmRule,
        demand: f64,
    },
}

/// Whether to raise one operation's warm throughput, and to what.
pub fn decide_warm(view: &DemandView, ctx: &WarmContext, stale_after_s: i64) -> WarmVerdict {
    let cap = |v: f64| (v.ceil().max(0.0) as u64).min(ctx.ceiling);
    let raise = |to: u64, rule, demand| {
        if to > ctx.warm {
            WarmVerdict::Raise { to, rule, demand }
        } else {
            WarmVerdict::Hold
        }
    };
    if let Some(units) = ctx.announced.filter(|u| *u > ctx.instant()) {
        if let v @ WarmVerdict::Raise { .. } = raise(cap(units), WarmRule::Announced, units) {
            return v;
        }
    }
    if view.is_stale(stale_after_s) {
        return WarmVerdict::Hold;
    }
    let Some(recent) = view.known_mean(WARM_WINDOW_S) else {
        return WarmVerdict::Hold;
    };
    let now = recent.max(
        view.newest(1)
            .first()
            .copied()
            .filter(|v| !v.is_nan())
            .unwrap_or(0.0),
    );
    if now >= ctx.trigger * ctx.instant() {
        return raise(cap(now * WARM_HEADROOM), WarmRule::WarmTrend, now);
    }
    WarmVerdict::Hold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(seconds: &[f64]) -> DemandView {
        DemandView {
            seconds: seconds.to_vec(),
            partial_rate: None,
            silent_for: Some(0),
        }
    }

    const CTX: WarmContext = WarmContext {
        warm: 4000,
        previous_peak: 1000.0,
        trigger: 0.7,
        ceiling: 40_000,
        announced: None,
    };

    #[test]
    fn demand_nearing_what_the_table_serves_at_once_raises_warm_throughput() {
        // Serves 4000 at once (warm 4000 > 2 x 1000): 2000 units/s holds.
        assert_eq!(
            decide_warm(&view(&[2000.0; 10]), &CTX, 5),
            WarmVerdict::Hold
        );
        // 3000 >= 0.7 x 4000: raised to twice the demand.
        assert_eq!(
            decide_warm(&view(&[3000.0; 10]), &CTX, 5),
            WarmVerdict::Raise {
                to: 6000,
                rule: WarmRule::WarmTrend,
                demand: 3000.0
            }
        );
        // A previous peak of 3000 serves 6000 at once: 3000 holds.
        let peaked = WarmContext {
            previous_peak: 3000.0,
            ..CTX
        };
        assert_eq!(
            decide_warm(&view(&[3000.0; 10]), &peaked, 5),
            WarmVerdict::Hold
        );
    }

    #[test]
    fn never_lowered_never_past_the_hours_max_and_held_on_stale_data() {
        let high = WarmContext {
            warm: 50_000,
            ..CTX
        };
        assert_eq!(decide_warm(&view(&[10.0; 10]), &high, 5), WarmVerdict::Hold);
        let capped = WarmContext {
            ceiling: 5000,
            ..CTX
        };
        assert!(matches!(
            decide_warm(&view(&[3500.0; 10]), &capped, 5),
            WarmVerdict::Raise { to: 5000, .. }
        ));
        let at_cap = WarmContext {
            warm: 5000,
            ..capped
        };
        assert_eq!(
            decide_warm(&view(&[4900.0; 10]), &at_cap, 5),
            WarmVerdict::Hold
        );
        let silent = DemandView {
            silent_for: Some(30),
            ..view(&[3900.0; 10])
        };
        assert_eq!(decide_warm(&silent, &CTX, 5), WarmVerdict::Hold);
    }

    #[test]
    fn an_announced_surge_is_warmed_for_ahead_of_time() {
        let announced = WarmContext {
            announced: Some(12_000.0),
            ..CTX
        };
        assert_eq!(
            decide_warm(&view(&[100.0; 10]), &announced, 5),
            WarmVerdict::Raise {
                to: 12_000,
                rule: WarmRule::Announced,
                demand: 12_000.0
            }
        );
        let small = WarmContext {
            announced: Some(3000.0),
            ..CTX
        };
        assert_eq!(
            decide_warm(&view(&[100.0; 10]), &small, 5),
            WarmVerdict::Hold,
            "served at once already"
        );
    }
}
