//! The per-second decision loops: read the store and the cloud view, ask
//! the pure policy, hand changes to the actuator, publish what was decided
//! for the API. No AWS types, no policy arithmetic here: only plumbing and
//! the gates that need runtime state (calls in flight, table status, mode).

pub mod asg;
pub mod dynamodb;
