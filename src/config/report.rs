//! Human-readable rendering of a valid config: the effective 24-row hour
//! table of every managed resource, as `check-config` prints it.

use std::fmt::Write;

use super::{CapacitySpec, Config};

pub fn effective_tables(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mode: {:?}, time zone: {}, state_dir: {}",
        config.mode,
        config.schedule.timezone,
        config.state_dir.display()
    );
    for t in &config.dynamodb.tables {
        let resources = [
            (format!("table {} read", t.name), &t.read),
            (format!("table {} write", t.name), &t.write),
        ]
        .into_iter()
        .chain(t.indexes.iter().flat_map(|i| {
            [
                (format!("table {} index {} read", t.name, i.name), &i.read),
                (format!("table {} index {} write", t.name, i.name), &i.write),
            ]
        }));
        for (label, spec) in resources {
            if let Some(spec) = spec {
                capacity_table(&mut out, &label, spec);
            }
        }
    }
    if let Some(asg) = &config.asg {
        let _ = writeln!(
            out,
            "\ngroup {}",
            asg.name.as_deref().unwrap_or("(discovered at start-up)")
        );
        let _ = writeln!(out, "  hour   min   max  rps/instance");
        for (h, row) in asg.hours.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {h:02}  {:>5} {:>5}  {:>12}",
                row.min, row.max, row.target_rps_per_instance
            );
        }
    }
    out
}

fn capacity_table(out: &mut String, label: &str, spec: &CapacitySpec) {
    let per_request = match (spec.auto, spec.per_request) {
        (true, Some(p)) => Some(format!(
            "units per request fitted from CloudWatch (until the fit is good: {p})"
        )),
        (true, None) => Some(
            "units per request fitted from CloudWatch (until the fit is good: unknown, hold)"
                .to_string(),
        ),
        (false, Some(p)) => Some(format!("{p} unit(s) per request")),
        (false, None) => None,
    };
    let demand = match (&spec.metric, per_request) {
        (Some(m), Some(p)) => format!("metric {m}, else {p}"),
        (Some(m), None) => format!("metric {m}"),
        (None, Some(p)) => p,
        (None, None) => "no demand source".to_string(),
    };
    let _ = writeln!(out, "\n{label} ({demand})");
    let _ = writeln!(out, "  hour     min      max  target");
    for (h, row) in spec.hours.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {h:02}  {:>6}  {:>7}  {:>6.2}",
            row.min, row.max, row.target
        );
    }
}
