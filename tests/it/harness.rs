//! Runs the real `rapidscale` binary with a config written to a temp dir,
//! learns its bound addresses from its JSON log, and stops it with SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Daemon {
    pub child: Child,
    pub statsd: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
    pub logs: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Holds the config file for the daemon's lifetime.
    _dir: tempfile::TempDir,
}

/// The moto server started by `scripts/test`.
pub fn moto_url() -> String {
    std::env::var("RAPIDSCALE_TEST_MOTO_URL").expect(
        "RAPIDSCALE_TEST_MOTO_URL is not set: run the tests with scripts/test, which starts moto",
    )
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rapidscale")
}

impl Daemon {
    /// Starts `rapidscale run` with `config` (TOML; `{dir}` is replaced by a
    /// fresh temporary directory) and waits until it logs "rapidscale started.".
    pub async fn start(config: &str) -> Daemon {
        Daemon::start_with_env(config, &[]).await
    }

    /// As `start`, with extra environment variables.
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config.replace("{dir}", &dir.path().display().to_string());
        let path = dir.path().join("rapidscale.toml");
        std::fs::write(&path, config).expect("write config");
        let args = vec!["run".into(), "--config".into(), path.into_os_string()];
        Daemon::spawn(args, dir, env).await
    }

    /// As `start`, with the config text in RAPIDSCALE_CONFIG_TOML and no file.
    pub async fn start_from_env(config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config.replace("{dir}", &dir.path().display().to_string());
        Daemon::spawn(
            vec!["run".into()],
            dir,
            &[("RAPIDSCALE_CONFIG_TOML", config.as_str())],
        )
        .await
    }

    /// Starts `rapidscale demo` with `args` (the built-in config unless they say otherwise).
    pub async fn start_demo(args: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut all: Vec<std::ffi::OsString> = vec!["demo".into()];
        all.extend(args.iter().map(|a| a.into()));
        Daemon::spawn(all, dir, &[]).await
    }

    async fn spawn(
        args: Vec<std::ffi::OsString>,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut child = Command::new(bin())
            .args(["--log-format", "json"])
            .args(&args)
            .env("RAPIDSCALE_LOG", "info")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn rapidscale");
        let stderr = child.stderr.take().expect("piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    eprintln!("daemon (not JSON): {line}");
                    continue;
                };
                if v["message"] == "rapidscale started." {
                    let _ = started_tx.send(v.clone());
                }
                sink.lock().unwrap().push(v);
            }
        });
        let started = tokio::time::timeout(Duration::from_secs(20), started_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("daemon did not start; logs: {:?}", logs.lock().unwrap()))
            .expect("daemon exited before starting");
        // Logged as the address, or "off".
        let addr = |key: &str| -> Option<SocketAddr> { started[key].as_str()?.parse().ok() };
        Daemon {
            statsd: addr("statsd"),
            api: addr("api"),
            child,
            logs,
            _dir: dir,
        }
    }

    /// `{dir}/state`, where configs written with `{dir}` keep their state.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("state")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let url = format!("http://{}{}", self.api.expect("api configured"), path);
        reqwest::get(&url)
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON body")
    }

    /// GET `path`: the status code and the body as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{}", self.api.expect("api configured"), path);
        let r = reqwest::get(&url).await.expect("GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.get_text("/metrics").await.1
    }

    /// The daemon's status until `pred` holds, or panics after `within`.
    pub async fn wait_for_status(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let status = self.get_json("/api/v1/status").await;
            if pred(&status) {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; last status: {status:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and returns the exit status and how long the exit took.
    /// Sends SIGTERM, and returns without waiting.
    pub fn signal_term(&self) {
        let pid = self.child.id().expect("running") as i32;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends `signal` ("HUP", ...) to the daemon.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running") as i32;
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The config file `start` wrote.
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("rapidscale.toml")
    }

    pub async fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let start = tokio::time::Instant::now();
        self.signal_term();
        let exit = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("daemon exits after SIGTERM")
            .expect("wait");
        (exit, start.elapsed())
    }

    pub fn logged(&self, message: &str) -> bool {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .any(|v| v["message"] == message)
    }

    /// Every line logged so far with this message.
    pub fn logs_with(&self, message: &str) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["message"] == message)
            .cloned()
            .collect()
    }

    /// Every WARN or ERROR line logged so far, as JSON text.
    pub fn warnings(&self) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["level"] == "WARN" || v["level"] == "ERROR")
            .map(|v| v.to_string())
            .collect()
    }
}

/// Sums the values of the last `seconds` sealed seconds of a stream.
pub async fn stream_total(d: &Daemon, stream: &str, seconds: usize) -> f64 {
    let points = d
        .get_json(&format!("/api/v1/series?stream={stream}&seconds={seconds}"))
        .await;
    points
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .sum()
}

/// Reads a value every 200 ms until `done` holds; panics with the last value after `within`.
pub async fn eventually<T, F, Fut>(
    within: Duration,
    what: &str,
    mut read: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let value = read().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} stayed at {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A moto server of a test's own, to stop and restart (fault injection).
pub struct OwnMoto {
    child: tokio::process::Child,
    pub port: u16,
}

impl OwnMoto {
    /// Starts moto on `port` (a free one when None) and waits until it answers.
    pub async fn start(port: Option<u16>) -> OwnMoto {
        let bin = std::env::var("RAPIDSCALE_TEST_MOTO_SERVER")
            .expect("RAPIDSCALE_TEST_MOTO_SERVER: run the tests through scripts/test");
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn moto_server");
        let moto = OwnMoto { child, port };
        let url = format!("{}/moto-api/", moto.url());
        eventually(
            Duration::from_secs(30),
            "moto answering",
            || async { reqwest::get(&url).await.map(|r| r.status().as_u16()).ok() },
            |s| *s == Some(200),
        )
        .await;
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash or a network cut would look.
    pub async fn kill(mut self) -> u16 {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
        self.port
    }
}

/// Sends `rate` requests/s to `target` until dropped; the rate can change.
pub struct Load {
    rate: std::sync::Arc<std::sync::atomic::AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(target: std::net::SocketAddr, rate: u32) -> Load {
        let rate = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(rate));
        let r = rate.clone();
        let task = tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
            loop {
                tick.tick().await;
                let each = r.load(std::sync::atomic::Ordering::SeqCst) as f64 / 50.0;
                let _ = sock
                    .send_to(format!("http.requests:{each}|c").as_bytes(), target)
                    .await;
            }
        });
        Load { rate, task }
    }

    pub fn set(&self, rate: u32) {
        self.rate.store(rate, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.task.abort();
    }
}
