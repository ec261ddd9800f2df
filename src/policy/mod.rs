//! Decisions: (demand, state, limits, now) -> what capacity should be.
//!
//! Pure and synchronous. Policy never awaits, never reads a clock, and never
//! sees an AWS type: callers pass `now`, the demand view and the last known
//! capacity. Everything here is tested by table.

pub mod asg;
pub mod budget;
pub mod burst;
pub mod calibrate;
pub mod demand;
pub mod dynamodb;
