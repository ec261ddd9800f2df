//! `[[notify]] kind = "sns"`: one Publish per message.

use super::{classify, AwsCloud};
use crate::cloud::CloudError;

impl crate::cloud::Notifications for AwsCloud {
    async fn publish_notification(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> Result<(), CloudError> {
        self.sns
            .publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| classify("Publish", topic_arn, e))?;
        Ok(())
    }
}
