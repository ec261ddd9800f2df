//! The coordination table on DynamoDB (docs/coordination.md): created by
//! `rapidscale init` with on-demand billing, a `pk`/`sk` string key and
//! TTL on `expires_at`; heartbeats are items under `hb#CLUSTER`, the lease
//! one item under `lease#CLUSTER`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{classify, AwsCloud};
use crate::cloud::coordination::{HEARTBEAT_TTL_S, TTL_ATTRIBUTE};
use crate::cloud::{
    AnnouncementItem, CloudError, CloudErrorKind, Coordination, Heartbeat, InitReport, Lease,
};

impl AwsCloud {
    /// Every item under partition key `pk` (strongly consistent Query,
    /// paged past 1 MB).
    async fn query_all(
        &self,
        table: &str,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, CloudError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let r = self
                .dynamodb
                .query()
                .table_name(table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| classify("Query", table, e))?;
            out.extend(r.items().iter().cloned());
            match r.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

impl Coordination for AwsCloud {
    async fn ensure_coordination_table(&self, name: &str) -> Result<InitReport, CloudError> {
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

    async fn put_heartbeat(
        &self,
        table: &str,
        cluster: &str,
        hb: &Heartbeat,
    ) -> Result<(), CloudError> {
        let counts = hb
            .counts
            .iter()
            .map(|(stream, values)| {
                let list = values
                    .iter()
                    .map(|v| match v {
                        Some(x) if x.is_finite() => n(x),
                        _ => AttributeValue::Null(true),
                    })
                    .collect();
                (stream.clone(), AttributeValue::L(list))
            })
            .collect();
        self.dynamodb
            .put_item()
            .table_name(table)
            .item("pk", s(format!("hb#{cluster}")))
            .item("sk", s(&hb.instance_id))
            .item("lifecycle", s(&hb.lifecycle))
            .item("seq", n(hb.seq))
            .item("sent_ms", n(hb.sent_ms))
            .item("first_second", n(hb.first_second))
            .item("counts", AttributeValue::M(counts))
            .item(TTL_ATTRIBUTE, n(hb.sent_ms / 1000 + HEARTBEAT_TTL_S))
            .send()
            .await
            .map_err(|e| classify("PutItem", table, e))?;
        Ok(())
    }

    /// Paged past 1 MB.
    async fn query_heartbeats(
        &self,
        table: &str,
        cluster: &str,
    ) -> Result<Vec<Heartbeat>, CloudError> {
        let items = self.query_all(table, &format!("hb#{cluster}")).await?;
        Ok(items.iter().filter_map(heartbeat_from).collect())
    }

    async fn put_announcement(
        &self,
        table: &str,
        cluster: &str,
        item: &AnnouncementItem,
    ) -> Result<(), CloudError> {
        self.dynamodb
            .put_item()
            .table_name(table)
            .item("pk", s(format!("ann#{cluster}")))
            .item("sk", s(&item.id))
            .item("body", s(&item.body))
            .item(TTL_ATTRIBUTE, n(item.expires_at_s))
            .send()
            .await
            .map_err(|e| classify("PutItem", table, e))?;
        Ok(())
    }

    /// Paged past 1 MB.
    async fn query_announcements(
        &self,
        table: &str,
        cluster: &str,
    ) -> Result<Vec<AnnouncementItem>, CloudError> {
        let items = self.query_all(table, &format!("ann#{cluster}")).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some(AnnouncementItem {
                    id: text("sk")?,
                    body: text("body")?,
                    expires_at_s: num(item, TTL_ATTRIBUTE).unwrap_or(0.0) as i64,
                })
            })
            .collect())
    }

    async fn take_or_renew_lease(
        &self,
        table: &str,
        cluster: &str,
        me: &str,
        held: Option<Lease>,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Lease>, CloudError> {
        let until = now_ms + lease_ms;
        let req = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(format!("lease#{cluster}")))
            .key("sk", s("lease"))
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":until", n(until))
            .return_values(ReturnValue::AllNew);
        let req = match held {
            Some(l) => req
                .update_expression("SET until_ms = :until")
                .condition_expression("holder = :me AND fencing = :token")
                .expression_attribute_values(":token", n(l.fencing)),
            None => req
                .update_expression("SET holder = :me, until_ms = :until ADD fencing :one")
                .condition_expression("attribute_not_exists(holder) OR until_ms < :now")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now_ms)),
        };
        match req.send().await {
            Ok(r) => {
                let fencing = r
                    .attributes()
                    .and_then(|a| num(a, "fencing"))
                    .ok_or_else(|| CloudError {
                        operation: "UpdateItem",
                        resource: table.to_string(),
                        kind: CloudErrorKind::Other,
                        message: "the lease item has no fencing token".into(),
                    })?;
                Ok(Some(Lease {
                    fencing: fencing as u64,
                    until_ms: until,
                }))
            }
            Err(e) => {
                let e = classify("UpdateItem", table, e);
                if e.kind == CloudErrorKind::ConditionFailed {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn verify_lease(
        &self,
        table: &str,
        cluster: &str,
        me: &str,
        lease: Lease,
        must_outlive_ms: i64,
    ) -> Result<bool, CloudError> {
        let r = self
            .dynamodb
            .update_item()
            .table_name(table)
            .key("pk", s(format!("lease#{cluster}")))
            .key("sk", s("lease"))
            .update_expression("SET holder = :me")
            .condition_expression("holder = :me AND fencing = :token AND until_ms > :edge")
            .expression_attribute_values(":me", s(me))
            .expression_attribute_values(":token", n(lease.fencing))
            .expression_attribute_values(":edge", n(must_outlive_ms))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = classify("UpdateItem", table, e);
                if e.kind == CloudErrorKind::ConditionFailed {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn num(item: &HashMap<String, AttributeValue>, key: &str) -> Option<f64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}

fn heartbeat_from(item: &HashMap<String, AttributeValue>) -> Option<Heartbeat> {
    let counts = item
        .get("counts")?
        .as_m()
        .ok()?
        .iter()
        .map(|(stream, values)| {
            let values = values
                .as_l()
                .map(|l| {
                    l.iter()
                        .map(|v| v.as_n().ok().and_then(|x| x.parse().ok()))
                        .collect()
                })
                .unwrap_or_default();
            (stream.clone(), values)
        })
        .collect::<BTreeMap<String, Vec<Option<f64>>>>();
    Some(Heartbeat {
        instance_id: item.get("sk")?.as_s().ok()?.clone(),
        lifecycle: item
            .get("lifecycle")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
        seq: num(item, "seq")? as u64,
        sent_ms: num(item, "sent_ms")? as i64,
        first_second: num(item, "first_second")? as i64,
        counts,
    })
}
