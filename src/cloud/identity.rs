//! Who am I: this instance's id from the EC2 instance metadata service
//! (IMDSv2: a session token, then `instance-id`), and in ECS the task's
//! identity from the task metadata endpoint v4. The group then comes from
//! DescribeAutoScalingInstances (see `Capacity::group_of_instance`).
//!
//! ECS on EC2 exposes IMDS to containers, so the instance id comes from
//! IMDS there too; the task metadata adds the cluster and task ARN for the
//! logs. Fargate tasks have no Auto Scaling group (set `asg.name`) and no
//! IMDS: there the task's id is the sidecar's id (`task_identity`).

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Identity {
    pub instance_id: String,
    /// From ECS task metadata v4, when running as an ECS task.
    pub ecs_cluster: Option<String>,
    pub ecs_task_arn: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    #[error("instance metadata at {endpoint}: {reason}")]
    Metadata { endpoint: String, reason: String },
}

/// Reads the instance id over IMDSv2 from `endpoint` (normally
/// `http://169.254.169.254`), and the ECS task identity from
/// `ecs_metadata_uri` (the value of `ECS_CONTAINER_METADATA_URI_V4`) when given.
pub(crate) async fn discover(
    endpoint: &str,
    ecs_metadata_uri: Option<&str>,
) -> Result<Identity, IdentityError> {
    let err = |reason: String| IdentityError::Metadata {
        endpoint: endpoint.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let token = client
        .put(format!("{endpoint}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| err(format!("token: {e}")))?
        .text()
        .await
        .map_err(|e| err(format!("token: {e}")))?;
    let instance_id = client
        .get(format!("{endpoint}/latest/meta-data/instance-id"))
        .header("X-aws-ec2-metadata-token", token.trim())
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| err(format!("instance-id: {e}")))?
        .text()
        .await
        .map_err(|e| err(format!("instance-id: {e}")))?
        .trim()
        .to_string();
    if !instance_id.starts_with("i-") {
        return Err(err(format!("{instance_id:?} is not an instance id")));
    }
    let (mut ecs_cluster, mut ecs_task_arn) = (None, None);
    if let Some(uri) = ecs_metadata_uri {
        match client
            .get(format!("{}/task", uri.trim_end_matches('/')))
            .send()
            .await
            .and_then(|r| r.error_for_status())
        {
            Ok(resp) => {
                let body = resp.text().await.unwrap_or_default();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    ecs_cluster = v["Cluster"].as_str().map(str::to_string);
                    ecs_task_arn = v["TaskARN"].as_str().map(str::to_string);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "ECS task metadata unavailable; continuing with the instance id alone.")
            }
        }
    }
    Ok(Identity {
        instance_id,
        ecs_cluster,
        ecs_task_arn,
    })
}

/// This task's identity from the ECS task metadata endpoint v4 alone
/// (`ECS_CONTAINER_METADATA_URI_V4`), for tasks without instance metadata
/// (Fargate): the task's id (the last part of its ARN) stands for the
/// instance id.
pub(crate) async fn task_identity(ecs_metadata_uri: &str) -> Result<Identity, IdentityError> {
    let err = |reason: String| IdentityError::Metadata {
        endpoint: ecs_metadata_uri.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let body = client
        .get(format!("{}/task", ecs_metadata_uri.trim_end_matches('/')))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| err(format!("task: {e}")))?
        .text()
        .await
        .map_err(|e| err(format!("task: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| err(format!("task: {e}")))?;
    let arn = v["TaskARN"]
        .as_str()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| err("task: no TaskARN".into()))?;
    Ok(Identity {
        instance_id: arn.rsplit('/').next().unwrap_or(arn).to_string(),
        ecs_cluster: v["Cluster"].as_str().map(str::to_string),
        ecs_task_arn: Some(arn.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(body: &'static str) -> String {
        let app =
            axum::Router::new().route("/v4/task", axum::routing::get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/v4")
    }

    #[tokio::test]
    async fn a_fargate_task_is_known_by_its_task_id() {
        let uri = serve(r#"{"Cluster":"arn:aws:ecs:us-east-1:1:cluster/prod","TaskARN":"arn:aws:ecs:us-east-1:1:task/prod/0f1e2d3c"}"#).await;
        let id = task_identity(&uri).await.unwrap();
        assert_eq!(id.instance_id, "0f1e2d3c");
        assert_eq!(
            id.ecs_task_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:1:task/prod/0f1e2d3c")
        );
        assert!(id.ecs_cluster.unwrap().ends_with("cluster/prod"));
        // No task ARN: an error naming the endpoint, never an empty id.
        let uri = serve(r#"{"Cluster":"prod"}"#).await;
        let e = task_identity(&uri).await.unwrap_err();
        assert!(e.to_string().contains("no TaskARN"), "{e}");
    }
}
