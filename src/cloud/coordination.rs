//! The coordination table (docs/coordination.md): created by
//! `rapidscale init` with on-demand billing, a `pk`/`sk` string key and
//! TTL on `expires_at`.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use super::aws::{classify, AwsCloud};
use super::{CloudError, CloudErrorKind};

/// The TTL attribute of every coordination item (unix seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// What `init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitReport {
    /// The table did not exist and was created.
    pub created: bool,
    /// TTL was off and has been turned on.
    pub ttl_turned_on: bool,
}

impl AwsCloud {
    /// Creates the coordination table when it is missing, waits for it to
    /// be ACTIVE, and turns TTL on when it is off. Safe to run again.
    pub async fn ensure_coordination_table(&self, name: &str) -> Result<InitReport, CloudError> {
        let ddb = &self.dynamodb;
        let exists = match ddb.describe_table().table_name(name).send().await {
            Ok(_) => true,
            Err(e) => {
                let e = classify("DescribeTable", name, e);
                if e.kind != CloudErrorKind::NotFound {
                    return Err(e);
                }
                false
            }
        };
        let string = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set")
        };
        let key = |n: &str, k: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(k)
                .build()
                .expect("name and type are set")
        };
        if !exists {
            ddb.create_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(string("pk"))
                .attribute_definitions(string("sk"))
                .key_schema(key("pk", KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .send()
                .await
                .map_err(|e| classify("CreateTable", name, e))?;
        }
        // Wait for ACTIVE (seconds on AWS; at once on emulators).
        for _ in 0..120 {
            let t = ddb
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", name, e))?;
            if t.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let ttl = ddb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("DescribeTimeToLive", name, e))?;
        let on = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if !on {
            ddb.update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(TTL_ATTRIBUTE)
                        .enabled(true)
                        .build()
                        .expect("name and flag are set"),
                )
                .send()
                .await
                .map_err(|e| classify("UpdateTimeToLive", name, e))?;
        }
        Ok(InitReport {
            created: !exists,
            ttl_turned_on: !on,
        })
    }
}
