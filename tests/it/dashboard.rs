//! The dashboard in a real headless Chromium (Debian's chromium and
//! chromium-driver, driven over the WebDriver protocol): it fills from
//! Server-Sent Events and shows the same numbers as /api/v1/status.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::Daemon;

const CHROME_ARGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1366,768",
];

struct Driver {
    child: tokio::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Driver {
    async fn start() -> Driver {
        let driver = std::env::var("RAPIDSCALE_TEST_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("RAPIDSCALE_TEST_CHROMIUM")
            .unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&driver).exists() && std::path::Path::new(&chromium).exists(),
            "the browser test needs Debian's chromium and chromium-driver (scripts/test installs them)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": CHROME_ARGS}
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Driver {
            child,
            base,
            session,
            http,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let r: Value = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["value"].clone()
    }

    async fn script(&self, js: &str) -> Value {
        self.post("execute/sync", json!({"script": js, "args": []}))
            .await
    }

    /// The WebDriver id of the element `css` selects.
    async fn find(&self, css: &str) -> String {
        let found = self
            .post("element", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// A real click (WebDriver's pointer), not a script's.
    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("element/{id}/click"), json!({})).await;
    }

    /// Clicks the element `css` selects; WebDriver's error when the page
    /// replaced it between finding and clicking (a stale element).
    async fn try_click(&self, css: &str) -> Result<(), Value> {
        let id = self.find(css).await;
        let r = self.post(&format!("element/{id}/click"), json!({})).await;
        match r.get("error") {
            Some(_) => Err(r),
            None => Ok(()),
        }
    }

    /// Types `text` into the element `css` selects.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("element/{id}/value"), json!({"text": text}))
            .await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let r: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(r["value"].as_str().unwrap())
            .unwrap()
    }

    async fn quit(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        let _ = self.child.kill().await;
    }
}

#[tokio::test]
async fn the_dashboard_shows_live_data_in_chromium() {
    // The simulator backend with built-in traffic and a surge every 10 s.
    let d = Daemon::start_demo(&["--listen", "127.0.0.1:0", "--surge-every", "10"]).await;
    let api = d.api.unwrap();
    let page = reqwest::get(format!("http://{api}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("src=\"//"),
        "the page loads nothing from elsewhere"
    );

    let browser = Driver::start().await;
    browser
        .post("url", json!({"url": format!("http://{api}/")}))
        .await;
    // At least three Server-Sent Events arrive and are drawn.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ticks = browser
            .script("return window.__rapidscale ? window.__rapidscale.ticks : 0")
            .await;
        if ticks.as_u64().unwrap_or(0) >= 8 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "ticks: {ticks}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = browser
        .script(
            r#"const q = s => document.querySelector(s);
            const card = q('[data-resource="posts:read"]');
            return {
              rps: Number(q('#rps').dataset.points),
              latency: Number(q('#latency').dataset.points),
              card: card ? Number(card.querySelector('canvas').dataset.points) : 0,
              cards: document.querySelectorAll('#tables .card').length,
              group: Number(q('#group-chart').dataset.points),
              mode: q('#mode').textContent,
              rpsNow: q('#rps-now').textContent,
              provisioned: card ? Number(card.querySelector('[data-field="provisioned"]').textContent) : null,
              desired: q('#group-desired') ? Number(q('#group-desired').textContent) : null,
              decisions: document.querySelectorAll('#decisions div').length,
              calibration: (q('[data-resource="posts/by_user:read"] [data-field="calibration"]') || {}).textContent,
              scroll: document.documentElement.scrollHeight <= window.innerHeight + 1,
            };"#,
        )
        .await;
    assert!(seen["rps"].as_u64().unwrap() > 0, "{seen}");
    assert!(seen["latency"].as_u64().unwrap() > 0, "{seen}");
    assert!(seen["card"].as_u64().unwrap() >= 3, "{seen}");
    assert!(seen["group"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(
        seen["cards"], 3,
        "posts read, posts write, posts/by_user read: {seen}"
    );
    // by_user's reads are `per_request = "auto"`; the simulator has no
    // CloudWatch, so the card shows the fallback and why.
    assert_eq!(
        seen["calibration"], "per request 0.200 (fallback: not calibrated yet)",
        "{seen}"
    );
    // The traffic is shown as it arrives (the first sealed second may still be pending).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = browser
            .script("return document.querySelector('#rps-now').textContent")
            .await;
        if now
            .as_str()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests/s shown: {now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        seen["scroll"], true,
        "the main view fits a 1366x768 window: {seen}"
    );

    // The numbers shown are the API's: compare until a tick lands between the
    // two reads (a generous deadline: the suite loads the machine).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = d.get_json("/api/v1/status").await;
        let shown = browser
            .script(
                r#"const card = document.querySelector('[data-resource="posts:read"]');
                return {
                  mode: document.querySelector('#mode').textContent,
                  provisioned: Number(card.querySelector('[data-field="provisioned"]').textContent),
                  gate: card.querySelector('[data-field="gate"]').textContent,
                  desired: Number(document.querySelector('#group-desired').textContent),
                };"#,
            )
            .await;
        let posts = status["dynamodb"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "posts")
            .unwrap();
        let api_prov = posts["ops"][0]["provisioned"].clone();
        // The card shows why nothing is done now (the gate), as the API does
        // (a planned decrease names instants that move with every tick).
        let digitless = |s: &str| {
            s.chars()
                .filter(|c| !c.is_ascii_digit())
                .collect::<String>()
        };
        let api_gate = digitless(posts["gate"].as_str().unwrap_or(""));
        let shown_gate = digitless(shown["gate"].as_str().unwrap_or(""));
        let matches = shown["mode"] == status["effective_mode"]
            && shown["provisioned"] == api_prov
            && shown_gate == api_gate
            && shown["desired"] == status["asg"]["desired"];
        if matches {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "page {shown} vs API mode {} provisioned {api_prov} desired {}",
            status["effective_mode"],
            status["asg"]["desired"]
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());

    // A reload keeps the charts: the server's history is drawn before the
    // first live tick, on a local-time axis.
    browser.post("refresh", json!({})).await;
    let after = until(
        &browser,
        Duration::from_secs(10),
        "the history drawn after a reload",
        r#"const s = window.__rapidscale;
        const card = document.querySelector('[data-resource="posts:read"] canvas');
        if (!s || !s.historyPoints || !card) return null;
        return { ticks: s.ticks, history: s.historyPoints, card: Number(card.dataset.points),
                 group: Number(document.querySelector('#group-chart').dataset.points),
                 axis: card.dataset.axis, legend: document.querySelectorAll('[data-resource="posts:read"] .legend span').length };"#,
    )
    .await;
    let history = after["history"].as_u64().unwrap();
    assert!(history >= 5, "{after}");
    assert!(
        after["card"].as_u64().unwrap() >= 2 * history,
        "provisioned and recommended of every second of history: {after}"
    );
    assert!(after["group"].as_u64().unwrap() > 0, "{after}");
    assert_eq!(after["axis"], "time");
    assert_eq!(
        after["legend"], 5,
        "consumed, provisioned, recommended, the hour's band, marks"
    );
    // Decisions are marked on their charts; with coordination the leader
    // shows every sidecar's load and state.
    until(
        &browser,
        Duration::from_secs(20),
        "decisions marked on the posts card",
        "return Number(document.querySelector('[data-resource=\"posts:read\"] canvas').dataset.marks || 0)",
    )
    .await;
    let status = d.get_json("/api/v1/status").await;
    if status["coordination"]["role"]["role"] == "leader" {
        let shown = until(
            &browser,
            Duration::from_secs(20),
            "the fleet view",
            "return document.querySelectorAll('#fleet [data-instance]').length",
        )
        .await;
        assert!(shown.as_u64().unwrap() >= 2, "two sidecars: {shown}");
    }
    let png = browser.screenshot().await;
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-reloaded.png"),
        &png,
    )
    .unwrap();

    // The per-hour view: the demo's recorded week, one line per day, the
    // schedule over it, compared with /api/v1/hourly (the profile of a week
    // of minutes: slow in a debug build on a loaded machine).
    browser
        .script("document.getElementById('hourly-toggle').click(); return true;")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let hourly = loop {
        let shown = browser
            .script(
                r#"const c = document.getElementById('hourly');
                return {
                  visible: !document.getElementById('hourly-view').hidden,
                  points: Number(c.dataset.points),
                  days: Number(c.dataset.days),
                  what: document.getElementById('hourly-what').textContent,
                  tz: document.getElementById('hourly-tz').textContent,
                };"#,
            )
            .await;
        if shown["days"].as_u64().unwrap_or(0) > 0 {
            break shown;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hourly view: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let api = d.get_json("/api/v1/hourly").await;
    let days = api["profile"]["requests"]["days"].as_array().unwrap().len() as u64;
    assert!(days >= 7, "the seeded week: {days} days");
    assert_eq!(hourly["visible"], true);
    assert_eq!(hourly["days"], days, "{hourly}");
    // A line per day (24 hours each, at most) and the schedule's 24.
    assert!(
        hourly["points"].as_u64().unwrap() >= days * 20 + 24,
        "{hourly}"
    );
    assert_eq!(hourly["what"], "group min x target_rps_per_instance");
    let png = browser.screenshot().await;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-hourly.png");
    std::fs::write(&out, &png).unwrap();
    browser.quit().await;
    d.terminate().await;
}

/// Waits until `js` returns something truthy; returns it.
async fn until(browser: &Driver, within: Duration, what: &str, js: &str) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = browser.script(js).await;
        let truthy = !(v.is_null() || v == false || v == 0 || v == "");
        if truthy {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn pressing_apply_on_a_recommendation_changes_the_capacity() {
    use rapidscale::cloud::Capacity;
    let table = crate::aws::unique("apply");
    let moto = crate::aws::cloud().await;
    crate::aws::create_table(&moto, &table).await; // read 10
    let config = format!(
        r#"
mode = "dry-run"
state_dir = "{{dir}}/state"
[aws]
region = "us-east-1"
endpoint_url = "{}"
[api]
listen = "127.0.0.1:0"
token = "s3cret"
[ingest.statsd]
listen = "127.0.0.1:0"
requests = ["http.requests"]
[dynamodb]
poll_interval = "1s"
burst_share = 0.0
[[dynamodb.tables]]
name = "{table}"
read = {{ target = 0.5, min = 1, max = 5000, per_request = 1 }}
"#,
        crate::harness::moto_url()
    );
    let d = Daemon::start(&config).await;
    let statsd = d.statsd.unwrap();
    // One packet of 20 requests every 100 ms: a steady 200 requests/s.
    let sender = tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let _ = socket.send_to(b"http.requests:20|c", statsd).await;
        }
    });
    // An announced surge is shown in the header.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/announce", d.api.unwrap()))
        .bearer_auth("s3cret")
        .json(&json!({"in": "30m", "rps": 900, "for": "10m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let browser = Driver::start().await;
    browser
        .post("url", json!({"url": format!("http://{}/", d.api.unwrap())}))
        .await;
    let announced = until(
        &browser,
        Duration::from_secs(20),
        "the announcement in the header",
        "return document.getElementById('announced').textContent",
    )
    .await;
    assert!(
        announced.as_str().unwrap().contains("surge 900 req/s"),
        "{announced}"
    );
    // Pressing Apply asks for the token once (kept in the page), then
    // applies; a recommendation that moved gets the API's 409 and the
    // operator presses the new one.
    // A button replaced by a newer recommendation between finding and
    // clicking is not pressed (WebDriver says the element is stale): the
    // test looks for the newest one again.
    let (mut presses, mut stale) = (0, 0);
    let applied = loop {
        until(
            &browser,
            Duration::from_secs(30),
            "a recommendation with an Apply button",
            "return document.querySelectorAll('#pending button').length",
        )
        .await;
        if let Err(e) = browser.try_click("#pending button").await {
            stale += 1;
            assert!(stale < 10, "the Apply button cannot be clicked: {e}");
            continue;
        }
        presses += 1;
        if presses == 1 {
            until(
                &browser,
                Duration::from_secs(5),
                "the token form",
                "return !document.getElementById('token-form').hidden",
            )
            .await;
            browser.type_into("#token", "s3cret").await;
            browser.click("#token-form button").await;
        }
        let status = until(
            &browser,
            Duration::from_secs(10),
            "the answer",
            "const r = document.getElementById('apply-result'); return r.dataset.status || ''",
        )
        .await;
        let text = browser
            .script("const r = document.getElementById('apply-result'); delete r.dataset.status; return r.textContent")
            .await;
        if status == "202" {
            break text;
        }
        assert_eq!(status, "409", "{text}");
        assert!(presses < 6, "{text}");
    };
    let to: u64 = applied
        .as_str()
        .unwrap()
        .rsplit("read 10 -> ")
        .next()
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{applied}"));
    assert!(to > 100, "{applied}");
    crate::harness::eventually(
        Duration::from_secs(10),
        "the capacity applied from the dashboard",
        || async {
            moto.describe_table(&table)
                .await
                .unwrap()
                .provisioned
                .unwrap()
                .read
        },
        |c| *c == to,
    )
    .await;
    let token_kept = browser
        .script("return [localStorage.length, sessionStorage.length, document.cookie]")
        .await;
    assert_eq!(
        token_kept,
        json!([0, 0, ""]),
        "the token is in the page's memory only"
    );
    let png = browser.screenshot().await;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-apply.png");
    std::fs::write(&out, &png).unwrap();
    sender.abort();
    browser.quit().await;
    d.terminate().await;
}
