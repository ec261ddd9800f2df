//! `[pricing]`: the prices `replay` reports cost with.

use super::reader::{Problems, TableReader};

/// Prices used by `replay` reports (`[pricing]`), in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// One provisioned read capacity unit for one hour.
    pub read_unit_hour: f64,
    /// One provisioned write capacity unit for one hour.
    pub write_unit_hour: f64,
    /// One instance of the Auto Scaling group for one hour.
    pub instance_hour: f64,
    /// On-demand: one million read request units.
    pub read_request_million: f64,
    /// On-demand: one million write request units.
    pub write_request_million: f64,
}

impl Pricing {
    /// DynamoDB provisioned capacity and on-demand requests, us-east-1
    /// list prices (Standard table class, on-demand as cut in November
    /// 2024); an m5.large On-Demand in us-east-1 (Linux).
    pub const DEFAULT: Pricing = Pricing {
        read_unit_hour: 0.00013,
        write_unit_hour: 0.00065,
        instance_hour: 0.096,
        read_request_million: 0.125,
        write_request_million: 0.625,
    };
}

impl Default for Pricing {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Reads its section; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> Pricing {
    match root.table(p, "pricing") {
        Some(mut t) => {
            let d = Pricing::default();
            let mut price = |p: &mut Problems, key: &str, default: f64| match t.float(p, key) {
                Some(v) if !(v.value >= 0.0 && v.value.is_finite()) => {
                    p.push(
                        v.span,
                        &v.key,
                        format!("must be a price >= 0, got {}", v.value),
                    );
                    default
                }
                Some(v) => v.value,
                None => default,
            };
            let pricing = Pricing {
                read_unit_hour: price(p, "read_unit_hour", d.read_unit_hour),
                write_unit_hour: price(p, "write_unit_hour", d.write_unit_hour),
                instance_hour: price(p, "instance_hour", d.instance_hour),
                read_request_million: price(p, "read_request_million", d.read_request_million),
                write_request_million: price(p, "write_request_million", d.write_request_million),
            };
            t.finish(p);
            pricing
        }
        None => Pricing::default(),
    }
}
