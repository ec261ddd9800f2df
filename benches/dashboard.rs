//! What serving the dashboard costs: the release daemon's CPU with no
//! client, and with 10 dashboard clients (each loads the page and the 15
//! minute series once, then holds the Server-Sent Events stream and fetches
//! /api/v1/status on every event, as the page does). The daemon runs
//! `demo` (simulated AWS, built-in traffic), so there is something to show.
//! Phases alternate, 20 s each, 3 rounds; medians are reported.
//!
//! cargo bench --bench dashboard

// A bench binary: plain thread sleeps and wall clocks are the right tools here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CLIENTS: usize = 10;
const PHASE: Duration = Duration::from_secs(20);
const ROUNDS: usize = 3;

mod common;
use common::{cpu_seconds, spawn, Running};

/// `rapidscale demo` on free ports, and its API address.
fn start_demo() -> (Running, SocketAddr) {
    let d = spawn(
        &["demo".as_ref(), "--listen".as_ref(), "127.0.0.1:0".as_ref()],
        &[],
    );
    let api = d.api.expect("api address");
    (d, api)
}

async fn client(api: SocketAddr, until: tokio::time::Instant) -> usize {
    let http = reqwest::Client::new();
    let base = format!("http://{api}");
    let _ = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await;
    let _ = http
        .get(format!("{base}/api/v1/series?stream=statsd&seconds=900"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await;
    let mut events = http
        .get(format!("{base}/api/v1/stream"))
        .send()
        .await
        .unwrap();
    let mut seen = 0;
    while tokio::time::Instant::now() < until {
        let next = tokio::time::timeout_at(until, events.chunk()).await;
        let Ok(Ok(Some(chunk))) = next else { break };
        if chunk.windows(10).any(|w| w == b"event: tic") {
            seen += 1;
            let _ = http
                .get(format!("{base}/api/v1/status"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await;
        }
    }
    seen
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let (demo, api) = start_demo();
    let pid = demo.child.id();
    std::thread::sleep(Duration::from_secs(10));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (mut idle, mut served) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (c0, t0) = (cpu_seconds(pid), Instant::now());
        std::thread::sleep(PHASE);
        let idle_share = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
        let (c0, t0) = (cpu_seconds(pid), Instant::now());
        let events: usize = rt.block_on(async {
            let until = tokio::time::Instant::now() + PHASE;
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| tokio::spawn(client(api, until)))
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            total
        });
        let served_share = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
        println!(
            "dashboard: round {round}: no client {:.2} % of a core, {CLIENTS} clients {:.2} % ({events} events received)",
            idle_share * 100.0,
            served_share * 100.0
        );
        idle.push(idle_share);
        served.push(served_share);
    }
    let (i, s) = (median(idle), median(served));
    println!(
        "dashboard: median over {ROUNDS} rounds: no client {:.2} %, {CLIENTS} clients {:.2} %, added {:.2} % of one core",
        i * 100.0,
        s * 100.0,
        (s - i) * 100.0
    );
}
