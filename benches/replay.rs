//! Replay speed: 24 hours of the bundled per-second trace (x200, 6 surges)
//! through the simulator with both policies (rapidscale's and the AWS
//! native model), with the example config. The goal is <= 2 s per day.
//!
//! cargo bench --bench replay

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use rapidscale::config::Config;
use rapidscale::replay::surges::{overlay, SurgeSpec};
use rapidscale::replay::trace::{load, TraceOptions};
use rapidscale::sim::SimSettings;

fn replay_one_day(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        Config::load(&root.join("config/rapidscale.toml"), |_| None).expect("example config");
    let trace = load(
        &root.join("tests/data/nasa_jul95_week2.csv.gz"),
        &TraceOptions::default(),
    )
    .expect("bundled trace");
    let mut day: Vec<f64> = trace.requests[..86_400].iter().map(|r| r * 200.0).collect();
    let known_peak = rapidscale::replay::peak_minute_rps(&day);
    overlay(
        &mut day,
        &SurgeSpec {
            per_day: 6,
            amplitude: 5.0,
            seed: 1,
            announced: Vec::new(),
        },
    );
    let settings = SimSettings::replay(1);
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.bench_function("24h_per_second_both_policies", |b| {
        b.iter(|| {
            let (outcome, _) = rapidscale::replay::run_scratch(
                &config,
                &settings,
                &rapidscale::replay::FleetModel::default(),
                trace.start,
                day.clone(),
                Some(known_peak),
                |_| {},
            );
            assert_eq!(outcome.targets.len(), 2);
            outcome
        })
    });
    group.finish();
}

criterion_group!(benches, replay_one_day);
criterion_main!(benches);
