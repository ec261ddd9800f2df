//! The per-second decision loops: read the store and the cloud view, ask
//! the pure policy, hand changes to the actuator, publish what was decided
//! for the API. No AWS types, no policy arithmetic here: only plumbing and
//! the gates that need runtime state (calls in flight, table status, mode).

pub mod asg;
pub mod dynamodb;

use tokio_util::sync::CancellationToken;

/// Calls `decide` every `dynamodb::DECIDE_EVERY` until `shutdown`.
pub async fn decide_every(shutdown: CancellationToken, mut decide: impl FnMut(&CancellationToken)) {
    let mut ticker = tokio::time::interval(dynamodb::DECIDE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        decide(&shutdown);
    }
}
