//! Integration tests: one binary, one module per scenario. They run the real
//! daemon; AWS is moto's server, started by scripts/test.

mod announce;
mod api;
mod approve;
mod architecture;
mod asg;
mod aws;
mod cloudwatch;
mod coordination;
mod dashboard;
mod demo;
mod deploy;
mod dynamodb;
mod ecs;
mod faults;
mod harness;
mod hourly;
mod ingest;
mod lifecycle;
mod notify;
mod properties;
mod replay;
mod web;
