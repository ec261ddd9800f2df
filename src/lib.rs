//! rapidscale: seconds-fast scaling of DynamoDB capacity and EC2 Auto
//! Scaling groups from an application's own per-second traffic.
//!
//! Data flows one way: `ingest` -> `series` -> (policy) -> (actuator) ->
//! `cloud`; `api` reads snapshots. See ARCHITECTURE.md.
#![forbid(unsafe_code)]
// No function over 120 lines (.clippy.toml), test tables aside.
#![warn(clippy::too_many_lines)]
// `pub` is for what the binary, the benches, the integration tests and the
// fuzz targets use; everything else is `pub(crate)`.
#![warn(unreachable_pub)]

pub(crate) mod actuator;
pub mod announce;
pub mod api;
pub mod app;
pub mod audit;
pub(crate) mod board;
pub mod clock;
pub mod cloud;
pub mod cloudwatch;
pub mod config;
pub mod coord;
pub(crate) mod decide;
pub mod demo;
pub mod ingest;
pub(crate) mod mode;
pub(crate) mod notify;
pub mod policy;
pub mod profile;
pub mod replay;
pub mod series;
pub mod sim;
pub(crate) mod slot;
pub(crate) mod state;
