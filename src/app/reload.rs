//! `SIGHUP`: a config re-read while the daemon runs.
//!
//! What decides changes live: the mode, `[schedule]`, `[dynamodb]` (its
//! policy and each table's and index's specs, modes and hours), `[asg]` and
//! `[[ecs.services]]` (limits, policy, mode), `[pricing]`. Everything that
//! was bound, opened or spawned at start keeps its old value and is named
//! in the log: listen addresses and sources (`[api]`, `[ingest]`),
//! `[series]`, `[aws]`, `state_dir`, `[coordination]`, `[cloudwatch]`,
//! `[fleet]`, `[[notify]]`, and which tables, indexes, group and services
//! there are (tracked from start), and their poll intervals.

use crate::config::Config;

/// The config to run on after a reload, and the sections kept as they were.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Merged {
    pub config: Config,
    /// Sections that changed live.
    pub changed: Vec<&'static str>,
    /// Sections that differ in the file but need a restart (kept).
    pub kept: Vec<&'static str>,
}

/// `old` with the live parts of `new`.
pub(crate) fn merge(old: &Config, new: &Config) -> Merged {
    let mut config = old.clone();
    let mut changed = Vec::new();
    let mut kept = Vec::new();
    let mut live = |name, differs: bool, apply: &mut dyn FnMut(&mut Config)| {
        if differs {
            apply(&mut config);
            changed.push(name);
        }
    };
    live("mode", old.mode != new.mode, &mut |c| c.mode = new.mode);
    live("schedule", old.schedule != new.schedule, &mut |c| {
        c.schedule = new.schedule
    });
    live("pricing", old.pricing != new.pricing, &mut |c| {
        c.pricing = new.pricing
    });
    let same_tables = table_names(old) == table_names(new);
    let polls_same = old.dynamodb.poll_interval == new.dynamodb.poll_interval;
    live(
        "dynamodb",
        same_tables && old.dynamodb != new.dynamodb,
        &mut |c| {
            c.dynamodb = new.dynamodb.clone();
            c.dynamodb.poll_interval = old.dynamodb.poll_interval;
        },
    );
    if !same_tables {
        kept.push("dynamodb tables (added or removed)");
    } else if !polls_same {
        kept.push("dynamodb.poll_interval");
    }
    let same_group = old.asg.as_ref().map(|a| &a.name) == new.asg.as_ref().map(|a| &a.name);
    live("asg", same_group && old.asg != new.asg, &mut |c| {
        let poll = c.asg.as_ref().map(|a| a.poll_interval);
        c.asg = new.asg.clone();
        if let (Some(a), Some(p)) = (c.asg.as_mut(), poll) {
            a.poll_interval = p;
        }
    });
    if !same_group {
        kept.push("asg (added, removed or renamed)");
    }
    let services = |c: &Config| {
        c.ecs_services
            .iter()
            .map(|s| (s.cluster.clone(), s.service.clone()))
            .collect::<Vec<_>>()
    };
    let same_services = services(old) == services(new);
    live(
        "ecs.services",
        same_services && old.ecs_services != new.ecs_services,
        &mut |c| c.ecs_services = new.ecs_services.clone(),
    );
    if !same_services {
        kept.push("ecs.services (added or removed)");
    }
    for (name, differs) in [
        ("state_dir", old.state_dir != new.state_dir),
        ("aws", old.aws != new.aws),
        ("series", old.series != new.series),
        ("ingest", old.ingest != new.ingest),
        ("api", old.api != new.api),
        ("coordination", old.coordination != new.coordination),
        ("cloudwatch", old.cloudwatch != new.cloudwatch),
        ("fleet", old.fleet != new.fleet),
        ("notify", old.notify != new.notify),
    ] {
        if differs {
            kept.push(name);
        }
    }
    Merged {
        config,
        changed,
        kept,
    }
}

fn table_names(c: &Config) -> Vec<(String, Vec<String>)> {
    c.dynamodb
        .tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.indexes.iter().map(|i| i.name.clone()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse("test.toml", text).unwrap()
    }

    const BASE: &str = r#"
mode = "dry-run"
state_dir = "/tmp/x"
[api]
listen = "127.0.0.1:9470"
[ingest.statsd]
listen = "127.0.0.1:8125"
requests = ["http.requests"]
[[dynamodb.tables]]
name = "posts"
read = { target = 0.7, min = 5, max = 100, per_request = 1 }
"#;

    #[test]
    fn what_decides_changes_live_and_what_was_bound_is_kept_and_named() {
        let old = parse(BASE);
        let new = parse(
            &BASE
                .replace("dry-run", "apply")
                .replace("max = 100", "max = 900")
                .replace("127.0.0.1:9470", "127.0.0.1:9999"),
        );
        let m = merge(&old, &new);
        assert_eq!(m.changed, vec!["mode", "dynamodb"]);
        assert_eq!(m.kept, vec!["api"]);
        assert_eq!(m.config.mode, new.mode);
        assert_eq!(m.config.dynamodb, new.dynamodb);
        assert_eq!(m.config.api, old.api, "the listen address is kept");
    }

    #[test]
    fn a_new_table_needs_a_restart_and_nothing_of_dynamodb_changes() {
        let old = parse(BASE);
        let new = parse(&format!(
            "{BASE}[[dynamodb.tables]]\nname = \"users\"\nread = {{ target = 0.7, min = 5, max = 100, per_request = 1 }}\n"
        ));
        let m = merge(&old, &new);
        assert!(m.changed.is_empty(), "{m:?}");
        assert_eq!(m.kept, vec!["dynamodb tables (added or removed)"]);
        assert_eq!(m.config, old);
        assert!(merge(&old, &old).changed.is_empty() && merge(&old, &old).kept.is_empty());
    }
}
