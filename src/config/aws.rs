//! `[aws]`: where and as whom rapidscale reaches AWS.

use super::reader::{Problems, TableReader};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
}

/// Reads its section; every problem goes to `p`.
pub(super) fn read(root: &mut TableReader, p: &mut Problems) -> AwsConfig {
    match root.table(p, "aws") {
        Some(mut t) => {
            let aws = AwsConfig {
                region: t.string(p, "region").map(|s| s.value),
                endpoint_url: t.string(p, "endpoint_url").map(|s| s.value),
                profile: t.string(p, "profile").map(|s| s.value),
            };
            if let Some(url) = &aws.endpoint_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    p.push(
                        t.span(),
                        "aws.endpoint_url",
                        "must start with http:// or https://",
                    );
                }
            }
            t.finish(p);
            aws
        }
        None => AwsConfig::default(),
    }
}
