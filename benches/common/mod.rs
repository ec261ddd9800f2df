//! What the whole-daemon benches share: start the release binary, read
//! its CPU time and RSS from /proc, read its status, parse a flag.

// Bench binaries outside tokio: plain thread sleeps are the right tool here.
#![allow(clippy::disallowed_methods, dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

pub struct Running {
    pub child: Child,
    pub statsd: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `rapidscale run --config PATH`, once it logged that it started.
pub fn start(config_path: &std::path::Path, extra_env: &[(&str, &str)]) -> Running {
    let path = config_path.as_os_str();
    spawn(&["run".as_ref(), "--config".as_ref(), path], extra_env)
}

/// The release binary with `args` (JSON logs), once it logged that it
/// started; its addresses are read from that line.
pub fn spawn(args: &[&std::ffi::OsStr], extra_env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rapidscale"))
        .args(["--log-format", "json"])
        .args(args)
        .envs(extra_env.iter().copied())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rapidscale");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let started = loop {
        let line = lines
            .next()
            .expect("daemon exited before starting")
            .expect("read log");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "rapidscale started." {
            break v;
        }
    };
    // Keep draining the log so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    // Logged as the address, or "off".
    let addr = |k: &str| started[k].as_str().and_then(|s| s.parse().ok());
    Running {
        statsd: addr("statsd"),
        api: addr("api"),
        child,
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS")
}

/// A `kB` field of /proc/PID/status: `VmRSS`, `RssAnon` (heap and stacks),
/// `RssFile` (the binary's and libraries' pages in memory).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

pub fn status(api: SocketAddr) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::get(format!("http://{api}/api/v1/status"))
            .await
            .expect("GET status")
            .json()
            .await
            .expect("JSON")
    })
}

pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
