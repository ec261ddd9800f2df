//! The command line: exit codes, config refusal before any socket, and a
//! clean stop on SIGTERM.

use std::process::Command;
use std::time::Duration;

use crate::harness::{bin, Daemon};

#[test]
fn check_config_accepts_the_example() {
    let out = Command::new(bin())
        .args(["check-config", "config/rapidscale.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("table posts write (metric ddb.consumed{table:posts,op:write})"),
        "{stdout}"
    );
    // The 14-15 override shows in the effective hour table.
    assert!(stdout.contains("  14     500     1000    0.60"), "{stdout}");
    assert!(stdout.contains("  13       5     1000    0.70"), "{stdout}");
    // `--config FILE`, as every other command takes it, says the same.
    let flag = Command::new(bin())
        .args(["check-config", "--config", "config/rapidscale.toml"])
        .output()
        .unwrap();
    assert_eq!(flag.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&flag.stdout), stdout);
    // Neither: a usage error.
    let none = Command::new(bin()).arg("check-config").output().unwrap();
    assert_eq!(none.status.code(), Some(2));
}

#[test]
fn bad_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "mode = \"often\"\n[schedule]\ntimezone = \"Atlantis/Deep\"\n[[dynamodb.tables]]\nname = \"t\"\nread = { target = 3, min = 9, max = 1 }\n",
    )
    .unwrap();
    for args in [
        vec!["check-config", path.to_str().unwrap()],
        vec!["run", "--config", path.to_str().unwrap()],
    ] {
        let out = Command::new(bin()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for expected in [
            "bad.toml:1:8: mode:",
            "bad.toml:3:12: schedule.timezone: unknown time zone",
            "dynamodb.tables[0].read.target: target must be in (0, 1]",
            "dynamodb.tables[0].read.min: min 9 > max 1",
            "dynamodb.tables[0].read: neither `per_request` nor `metric`",
        ] {
            assert!(
                stderr.contains(expected),
                "{args:?} missing {expected:?} in:\n{stderr}"
            );
        }
    }
}

#[test]
fn run_refuses_a_bad_config_before_binding() {
    // The port stays free: the daemon never bound it.
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    drop(holder);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!("[ingest.statsd]\nlisten = \"127.0.0.1:{port}\"\nrequests = [\"x\"]\nbogus = 1\n"),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ingest.statsd.bogus: unknown key"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("StatsD listening"));
}

#[test]
fn missing_config_file_exits_2() {
    let out = Command::new(bin())
        .args(["check-config", "/nonexistent/rapidscale.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read config /nonexistent/rapidscale.toml")
    );
}

#[tokio::test]
async fn sigterm_stops_within_two_seconds() {
    let d = Daemon::start(
        r#"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[[ingest.status_page]]
url = "http://127.0.0.1:1/nginx_status"
[api]
listen = "127.0.0.1:0"
"#,
    )
    .await;
    // An open keep-alive connection must not hold the shutdown up.
    let client = reqwest::Client::new();
    let health: serde_json::Value = client
        .get(format!("http://{}/healthz", d.api.unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let logs = d.logs.clone();
    let (exit, took) = d.terminate().await;
    assert!(exit.success(), "{exit:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The log reader may be a moment behind the exit.
    crate::harness::eventually(
        Duration::from_secs(2),
        "the last log line",
        || async {
            logs.lock()
                .unwrap()
                .iter()
                .any(|v| v["message"] == "Stopped.")
        },
        |stopped| *stopped,
    )
    .await;
}

#[tokio::test]
async fn logs_requests_per_second_every_ten_seconds() {
    let d = Daemon::start(
        r#"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[api]
listen = "127.0.0.1:0"
"#,
    )
    .await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..50 {
        socket
            .send_to(b"http.requests:2|c", d.statsd.unwrap())
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !d.logged("Requests per second.") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no summary line within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let line = d
        .logs
        .lock()
        .unwrap()
        .iter()
        .find(|v| v["message"] == "Requests per second.")
        .cloned()
        .unwrap();
    assert!(
        line["streams"]
            .as_str()
            .unwrap()
            .starts_with("statsd last="),
        "{line}"
    );
    d.terminate().await;
}

#[tokio::test]
async fn config_text_from_the_environment_and_the_healthcheck_command() {
    let d = crate::harness::Daemon::start_from_env(
        "state_dir = \"{dir}/state\"\n[ingest.statsd]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .await;
    let url = format!("http://{}/healthz", d.api.unwrap());
    let check = |url: String| {
        std::process::Command::new(bin())
            .args(["healthcheck", "--url", &url])
            .output()
            .unwrap()
    };
    let ok = check(url.clone());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = check(format!("http://{}/nope", d.api.unwrap()));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let (exit, _) = d.terminate().await;
    assert!(exit.success());
    let down = check(url);
    assert_eq!(down.status.code(), Some(1));

    // A bad config in the environment is reported like a file's, exit 2.
    let out = Command::new(bin())
        .arg("run")
        .env("RAPIDSCALE_CONFIG_TOML", "mode = \"sometimes\"\n")
        .env_remove("RAPIDSCALE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("$RAPIDSCALE_CONFIG_TOML:1"), "{err}");
    assert!(err.contains("mode"), "{err}");
    // Neither a file nor text: exit 2, saying what to give.
    let out = Command::new(bin())
        .arg("run")
        .env_remove("RAPIDSCALE_CONFIG_TOML")
        .env_remove("RAPIDSCALE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RAPIDSCALE_CONFIG_TOML"));
}

#[tokio::test]
async fn sighup_reloads_what_decides_and_refuses_a_bad_config() {
    use std::time::Duration;
    let config = r#"
mode = "dry-run"
state_dir = "{dir}/state"
[api]
listen = "127.0.0.1:0"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
"#;
    let d = crate::harness::Daemon::start(config).await;
    let statsd = d.statsd.unwrap();
    let sender = tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        loop {
            let _ = socket.send_to(b"http.requests:10|c", statsd).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = crate::harness::stream_total(&d, "statsd", 60).await;
    assert!(before > 0.0);
    // A valid change: the mode changes live; the listen address is kept and named.
    let path = d.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text
        .replace("mode = \"dry-run\"", "mode = \"apply\"")
        .replace(
            "[api]\nlisten = \"127.0.0.1:0\"",
            "[api]\nlisten = \"127.0.0.1:1\"",
        );
    std::fs::write(&path, &changed).unwrap();
    d.signal("HUP");
    d.wait_for_status(Duration::from_secs(10), "the reloaded mode", |s| {
        s["mode"] == "apply"
    })
    .await;
    assert!(d.logged("Config reloaded."));
    assert!(d.logged("Config reloaded: these sections need a restart and keep their old values."));
    let records = rapidscale::audit::read_file(&d.state_dir().join("audit.jsonl")).unwrap();
    let reload = records
        .iter()
        .find(|r| r.service == "config")
        .expect("audited");
    assert_eq!(
        reload.reason.as_deref(),
        Some("config re-read: mode changed live; kept until a restart: api")
    );
    // An invalid one: every problem logged, the old config kept, still running.
    std::fs::write(
        &path,
        format!("{changed}\nmoed = \"dry-run\"\n[dynamodb]\npoll_interval = \"soon\"\n"),
    )
    .unwrap();
    d.signal("HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !d.logged("Reload refused: the config has problems; the old one is kept.") {
        assert!(tokio::time::Instant::now() < deadline, "no refusal logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let problems = d
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["message"] == "Config problem.")
        .count();
    assert_eq!(problems, 2, "every problem is logged");
    let status = d.get_json("/api/v1/status").await;
    assert_eq!(status["mode"], "apply", "the old (reloaded) config is kept");
    // Ingestion never stopped and the series kept their history.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = crate::harness::stream_total(&d, "statsd", 60).await;
    assert!(after > before, "{before} -> {after}");
    sender.abort();
    let (exit, _) = d.terminate().await;
    assert!(exit.success(), "{exit:?}");
}
