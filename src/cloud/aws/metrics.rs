//! CloudWatch through the SDK (aws-sdk-cloudwatch 1.99, the Query protocol).

use std::collections::BTreeMap;

use super::{classify, AwsCloud};
use crate::cloud::{CloudError, Datum, DynamoMetric, MetricUnit, Metrics};

impl Metrics for AwsCloud {
    async fn put_metric_data(&self, namespace: &str, datums: &[Datum]) -> Result<(), CloudError> {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
        let data: Vec<MetricDatum> = datums
            .iter()
            .map(|d| {
                MetricDatum::builder()
                    .metric_name(&d.name)
                    .set_dimensions(Some(
                        d.dimensions
                            .iter()
                            .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                            .collect(),
                    ))
                    .timestamp(aws_smithy_types::DateTime::from_secs(d.second))
                    .value(d.value)
                    .unit(match d.unit {
                        MetricUnit::CountPerSecond => StandardUnit::CountSecond,
                        MetricUnit::Count => StandardUnit::Count,
                    })
                    .storage_resolution(1)
                    .build()
            })
            .collect();
        self.cloudwatch
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(|e| classify("PutMetricData", namespace, e))?;
        Ok(())
    }

    /// GetMetricData takes at most 500 queries a call; pages are followed.
    async fn dynamodb_minute_sums(
        &self,
        metrics: &[DynamoMetric],
        start: i64,
        end: i64,
    ) -> Result<Vec<BTreeMap<i64, f64>>, CloudError> {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
        let mut out = vec![BTreeMap::new(); metrics.len()];
        for (chunk_no, chunk) in metrics.chunks(500).enumerate() {
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut metric = Metric::builder()
                        .namespace("AWS/DynamoDB")
                        .metric_name(m.name)
                        .dimensions(
                            Dimension::builder()
                                .name("TableName")
                                .value(&m.table)
                                .build(),
                        );
                    if let Some(index) = &m.index {
                        metric = metric.dimensions(
                            Dimension::builder()
                                .name("GlobalSecondaryIndexName")
                                .value(index)
                                .build(),
                        );
                    }
                    if let Some(op) = m.operation {
                        metric = metric
                            .dimensions(Dimension::builder().name("Operation").value(op).build());
                    }
                    MetricDataQuery::builder()
                        .id(format!("m{i}"))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(metric.build())
                                .period(60)
                                .stat("Sum")
                                .build(),
                        )
                        .return_data(true)
                        .build()
                })
                .collect();
            let mut token: Option<String> = None;
            loop {
                let r = self
                    .cloudwatch
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(aws_smithy_types::DateTime::from_secs(start))
                    .end_time(aws_smithy_types::DateTime::from_secs(end))
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| classify("GetMetricData", "AWS/DynamoDB", e))?;
                for result in r.metric_data_results() {
                    let Some(i) = result
                        .id()
                        .and_then(|id| id.strip_prefix('m'))
                        .and_then(|n| n.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    let map = &mut out[chunk_no * 500 + i.min(chunk.len() - 1)];
                    for (t, v) in result.timestamps().iter().zip(result.values()) {
                        let minute = t.secs().div_euclid(60) * 60;
                        *map.entry(minute).or_insert(0.0) += v;
                    }
                }
                match r.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}
