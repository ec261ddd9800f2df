//! Decisions: (demand, state, limits, now) -> what capacity should be.
//!
//! Pure and synchronous. Policy never awaits, never reads a clock, and never
//! sees an AWS type: callers pass `now`, the demand view and the last known
//! capacity. Everything here is tested by table.

pub(crate) mod asg;
pub(crate) mod budget;
pub(crate) mod burst;
pub mod calibrate;
pub(crate) mod demand;
pub mod dynamodb;
pub mod ondemand;
pub(crate) mod spend;
