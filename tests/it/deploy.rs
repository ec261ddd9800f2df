//! The files in `deploy/`: they parse, carry what a deployment needs, agree
//! with each other and with the config they ship, and the IAM policy grants
//! exactly the AWS operations the code calls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rapidscale::config::Config;
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The host triple, as `rustc -vV` prints it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .expect("rustc -vV names the host")
}

/// The operations of each SDK crate, from its `src/operation/` modules
/// (located with `cargo metadata`).
///
/// `--filter-platform` keeps cargo to the packages the host build uses:
/// without it cargo loads the manifest of every package in the lock file,
/// for every platform, and a registry cache filled by `cargo build` alone
/// (a fresh machine) lacks the others, which `--offline` cannot fetch.
fn sdk_operations() -> BTreeMap<&'static str, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ops = BTreeMap::new();
    for (krate, service) in [
        ("aws-sdk-dynamodb", "dynamodb"),
        ("aws-sdk-autoscaling", "autoscaling"),
        ("aws-sdk-cloudwatch", "cloudwatch"),
        ("aws-sdk-applicationautoscaling", "application-autoscaling"),
        ("aws-sdk-ecs", "ecs"),
        ("aws-sdk-sns", "sns"),
    ] {
        let lock = read("Cargo.lock");
        // The version the binary links (dev-dependencies may pull others).
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains(&format!("name = \"{krate}\"")))
            .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
            .map(|l| {
                l.trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_string()
            })
            .unwrap();
        let manifest = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == krate && p["version"] == version.as_str())
            .unwrap_or_else(|| panic!("{krate} {version} in cargo metadata"))["manifest_path"]
            .as_str()
            .unwrap()
            .to_string();
        let dir = Path::new(&manifest).parent().unwrap().join("src/operation");
        let names: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.len() > 10, "{krate}: {names:?}");
        ops.insert(service, names);
    }
    ops
}

/// `.name()` calls in a source text.
fn empty_calls(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("()") {
        let before = &text[..i];
        let start = before
            .rfind(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .map_or(0, |j| j + 1);
        let name = &before[start..];
        let dotted = before[..start].trim_end().ends_with('.');
        if dotted && !name.is_empty() {
            out.insert(name.to_string());
        }
    }
    out
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every `.rs` file under `dir`, at any depth.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Every `service:Action` the code under `src/cloud/` calls.
fn called_actions() -> BTreeSet<String> {
    let ops = sdk_operations();
    let mut called = BTreeSet::new();
    for path in rust_files(&repo("src/cloud")) {
        let text = std::fs::read_to_string(&path).unwrap();
        // Only the code, not its tests (they build clients of their own).
        let code = text.split("#[cfg(test)]").next().unwrap();
        for name in empty_calls(code) {
            let services: Vec<&str> = ops
                .iter()
                .filter(|(_, names)| names.contains(&name))
                .map(|(s, _)| *s)
                .collect();
            match services.as_slice() {
                [] => {}
                [s] => {
                    called.insert(format!("{s}:{}", pascal(&name)));
                }
                many => panic!(
                    "{}: `{name}` is an operation of {many:?}; the policy check cannot tell which",
                    path.display()
                ),
            }
        }
    }
    called
}

fn policy_actions(policy: &Value) -> BTreeMap<String, BTreeSet<String>> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let actions = match &s["Action"] {
                Value::String(a) => [a.clone()].into(),
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                other => panic!("Action {other}"),
            };
            (s["Sid"].as_str().unwrap().to_string(), actions)
        })
        .collect()
}

#[test]
fn iam_policy_grants_exactly_what_the_code_calls() {
    let called = called_actions();
    // The calls this check must find, so that a broken scanner cannot pass.
    for a in [
        "dynamodb:UpdateTable",
        "autoscaling:SetDesiredCapacity",
        "cloudwatch:GetMetricData",
        "dynamodb:PutItem",
        "ecs:UpdateService",
        "ecs:ListTasks",
        "sns:Publish",
    ] {
        assert!(called.contains(a), "{a} not found in src/cloud: {called:?}");
    }
    let policy = json("deploy/iam/rapidscale-policy.json");
    assert_eq!(policy["Version"], "2012-10-17");
    let by_sid = policy_actions(&policy);
    let granted: BTreeSet<String> = by_sid.values().flatten().cloned().collect();
    let missing: Vec<_> = called.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&called).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "policy lacks {missing:?}; grants what the code never calls: {unused:?}"
    );
    // Whatever changes something is scoped to named resources.
    let mutating = [
        "dynamodb:UpdateTable",
        "dynamodb:CreateTable",
        "dynamodb:UpdateTimeToLive",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "autoscaling:SetDesiredCapacity",
        "ecs:UpdateService",
        "sns:Publish",
    ];
    for s in policy["Statement"].as_array().unwrap() {
        assert_eq!(s["Effect"], "Allow");
        let actions = &by_sid[s["Sid"].as_str().unwrap()];
        let wildcard = s["Resource"] == "*";
        for a in actions {
            if mutating.contains(&a.as_str()) {
                assert!(!wildcard, "{a} on every resource: {s}");
            }
            if a == "cloudwatch:PutMetricData" {
                assert_eq!(
                    s["Condition"]["StringEquals"]["cloudwatch:namespace"], "rapidscale",
                    "{s}"
                );
            }
        }
    }
    // The CloudFormation role carries the same statements.
    let template = yaml("deploy/cloudformation/iam-role.yaml");
    let doc = &template["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"];
    let doc: Value = serde_json::to_value(doc).unwrap();
    assert_eq!(policy_actions(&doc), by_sid);
}

#[test]
fn the_ecs_task_runs_the_sidecar_with_its_config_from_ssm() {
    let td = json("deploy/ecs/task-definition.json");
    assert_eq!(td["networkMode"], "awsvpc", "loopback is the task network");
    let containers = td["containerDefinitions"].as_array().unwrap();
    let by_name = |n: &str| containers.iter().find(|c| c["name"] == n).unwrap();
    let (app, rs) = (by_name("app"), by_name("rapidscale"));
    assert_eq!(app["essential"], true);
    assert_eq!(
        rs["essential"], false,
        "a rapidscale failure never stops the app"
    );
    for c in [app, rs] {
        assert_eq!(c["logConfiguration"]["logDriver"], "awslogs", "{c}");
        assert!(
            !c["image"].as_str().unwrap().ends_with(":latest"),
            "pinned images: {c}"
        );
    }
    let user = rs["user"].as_str().unwrap();
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    assert_eq!(rs["readonlyRootFilesystem"], true);
    let health: Vec<&str> = rs["healthCheck"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &health[..3],
        ["CMD", "/usr/local/bin/rapidscale", "healthcheck"]
    );
    let secret = rs["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "RAPIDSCALE_CONFIG_TOML")
        .expect("the config as a secret");
    assert!(secret["valueFrom"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:ssm:"));

    // The config shipped for it parses, and agrees with the mounts, the
    // app's StatsD target and the health check.
    let config = Config::parse(
        "deploy/ecs/rapidscale.toml",
        &read("deploy/ecs/rapidscale.toml"),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let mount = |path: &str| {
        rs["mountPoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| path.starts_with(m["containerPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{path} is on no volume"))
            .clone()
    };
    let state = config.state_dir.display().to_string();
    assert_ne!(
        mount(&state)["readOnly"],
        true,
        "state_dir {state} must be writable"
    );
    let log = config.ingest.access_logs[0].path.display().to_string();
    assert_eq!(mount(&log)["readOnly"], true);
    let env = |c: &Value, k: &str| {
        c["environment"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == k)
            .map(|e| e["value"].as_str().unwrap().to_string())
    };
    let statsd = config.ingest.statsd.as_ref().unwrap().listen;
    assert_eq!(env(app, "STATSD_HOST").as_deref(), Some("127.0.0.1"));
    assert_eq!(env(app, "STATSD_PORT"), Some(statsd.port().to_string()));
    let api = config.api.as_ref().unwrap().listen;
    assert!(health[4].contains(&format!("127.0.0.1:{}/healthz", api.port())));
}

/// `Key=Value` lines of a unit file, by key (a key may repeat).
fn unit_keys(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

#[test]
fn the_systemd_unit_is_sandboxed_and_verifies() {
    let text = read("deploy/ec2/rapidscale.service");
    let keys = unit_keys(&text);
    let one = |k: &str| keys.get(k).and_then(|v| v.last()).map(String::as_str);
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("StateDirectory", "rapidscale"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "2"),
        ("KillSignal", "SIGTERM"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one(k), Some(v), "{k}");
    }
    let exec = one("ExecStart").unwrap();
    assert!(
        exec.contains("run --config /etc/rapidscale/rapidscale.toml"),
        "{exec}"
    );
    // The config shipped for it keeps its state in the StateDirectory.
    let config = Config::parse(
        "deploy/ec2/rapidscale.toml",
        &read("deploy/ec2/rapidscale.toml"),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(config.state_dir, Path::new("/var/lib/rapidscale"));

    // systemd's own checks, where systemd-analyze is installed: the unit
    // verifies (with this build's binary in place of /usr/local/bin), and
    // its exposure score is at most 2 ("OK" is below 4).
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze not installed: only the unit's keys were checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("rapidscale.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/rapidscale", crate::harness::bin()),
    )
    .unwrap();
    let verify = std::process::Command::new(&analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = std::process::Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "{report}");
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("exposure level for rapidscale.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {report}"));
    assert!(score <= 2.0, "exposure {score}: {report}");
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn cloudformation_templates_define_the_coordination_table_and_the_role() {
    let table = yaml("deploy/cloudformation/coordination-table.yaml");
    assert_eq!(table["AWSTemplateFormatVersion"], "2010-09-09");
    let props = &table["Resources"]["CoordinationTable"]["Properties"];
    assert_eq!(
        table["Resources"]["CoordinationTable"]["Type"],
        "AWS::DynamoDB::Table"
    );
    assert_eq!(props["BillingMode"], "PAY_PER_REQUEST");
    let keys: Vec<(String, String)> = props["KeySchema"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_string(),
                k["KeyType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
    );
    assert_eq!(
        props["TimeToLiveSpecification"]["AttributeName"],
        rapidscale::cloud::coordination::TTL_ATTRIBUTE
    );
    let role = yaml("deploy/cloudformation/iam-role.yaml");
    assert_eq!(role["Resources"]["Role"]["Type"], "AWS::IAM::Role");
    assert_eq!(
        role["Resources"]["InstanceProfile"]["Type"],
        "AWS::IAM::InstanceProfile"
    );
    let principals = &role["Resources"]["Role"]["Properties"]["AssumeRolePolicyDocument"]
        ["Statement"][0]["Principal"]["Service"];
    let principals: Vec<&str> = principals
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(principals, ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]);
    for p in [
        "TableNames",
        "GroupName",
        "CoordinationTable",
        "MetricNamespace",
    ] {
        assert!(role["Parameters"].get(p).is_some(), "parameter {p}");
    }
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged() {
    let text = read("deploy/docker/Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .copied()
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let runtime = froms.last().unwrap();
    assert!(
        runtime.contains("distroless") && runtime.ends_with(":nonroot"),
        "{runtime}"
    );
    assert!(froms.iter().all(|f| !f.contains(":latest")), "{froms:?}");
    let user = lines.iter().rev().find(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains(" 0") && !user.contains("root"), "{user}");
    assert!(text.contains("cargo build --release --locked"));
    // A stripped binary ships, its symbols kept in the build stage.
    assert!(text.contains("ARG STRIP=true"), "{text}");
    assert!(text.contains("strip --strip-all /out/rapidscale"), "{text}");
    assert!(text.contains("objcopy --only-keep-debug"), "{text}");
    assert!(text.contains(r#"CMD ["/usr/local/bin/rapidscale", "healthcheck""#));
    // Everything the build stage copies exists in the repository.
    for l in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(repo(src).exists(), "{l}: {src} is missing");
        }
    }
}

/// Every `rapidscale_*` metric name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("rapidscale_") {
        let boundary = text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if !boundary {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[tokio::test]
async fn the_alert_rules_pass_promtool_and_every_metric_they_and_the_grafana_dashboard_name_is_exported(
) {
    let promtool =
        std::env::var("RAPIDSCALE_TEST_PROMTOOL").unwrap_or_else(|_| "/usr/bin/promtool".into());
    assert!(
        Path::new(&promtool).exists(),
        "the rules check needs Debian's prometheus package (promtool); scripts/test installs it"
    );
    let out = std::process::Command::new(&promtool)
        .args(["check", "rules"])
        .arg(repo("deploy/prometheus/alerts.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = read("deploy/prometheus/alerts.yml");
    let dashboard = read("deploy/grafana/rapidscale.json");
    let parsed: Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 8);
    let mut named = metric_names(&rules);
    named.extend(metric_names(&dashboard));
    assert!(named.len() >= 15, "{named:?}");

    // The demo runs every part: tables, the group, coordination; one
    // malformed datagram makes the drop counter appear.
    let d = crate::harness::Daemon::start_demo(&["--listen", "127.0.0.1:0"]).await;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(b"not statsd at all", d.statsd.unwrap())
        .unwrap();
    let exported = crate::harness::eventually(
        std::time::Duration::from_secs(30),
        "every named metric on /metrics",
        || d.metrics(),
        |m| {
            named.iter().all(|n| {
                m.lines()
                    .any(|l| l.starts_with(&format!("{n}{{")) || l.starts_with(&format!("{n} ")))
            })
        },
    )
    .await;
    assert!(exported.contains("rapidscale_ingest_dropped_total{"));
    d.terminate().await;
}
