//! `rapidscale init` creates the coordination table in moto, once.

use std::process::Command;

use aws_sdk_dynamodb::types::{BillingMode, TimeToLiveStatus};

use crate::aws::{cloud, unique};
use crate::harness::{bin, moto_url};

#[tokio::test]
async fn init_creates_the_coordination_table_once() {
    let table = unique("coord");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("init.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}/state\"\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n[coordination]\ntable = \"{table}\"\n",
            dir.path().display(),
            moto_url()
        ),
    )
    .unwrap();
    let run = || {
        Command::new(bin())
            .args(["init", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains("created (on-demand billing, key pk/sk); TTL on expires_at turned on"),
        "{out}"
    );
    let second = run();
    assert!(second.status.success());
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.contains("already exists; TTL on expires_at already on"),
        "{out}"
    );

    let ddb = cloud().await.dynamodb;
    let t = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let t = t.table().unwrap();
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let keys: Vec<(&str, &str)> = t
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, [("pk", "HASH"), ("sk", "RANGE")]);
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    // A config without [coordination] has nothing to create: exit 2.
    std::fs::write(&path, "state_dir = \"/tmp/x\"\n").unwrap();
    assert_eq!(run().status.code(), Some(2));
}
