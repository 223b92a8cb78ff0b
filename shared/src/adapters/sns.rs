//! Outbound events on an Amazon SNS topic: a portal subscribes (HTTPS or a queue) and reacts,
//! e.g. disables a suspended account.

use super::port_error;
use crate::ports::{Outbound, PortError};
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

pub struct SnsOutbound {
    client: Client,
    topic_arn: String,
}

impl SnsOutbound {
    pub fn from_sdk(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Self {
        Self::new(Client::new(config), topic_arn)
    }

    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl Outbound for SnsOutbound {
    async fn publish(&self, kind: &str, event: &str) -> Result<(), PortError> {
        let kind = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(kind)
            .build()
            .map_err(|e| PortError::Permanent(e.to_string()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(event)
            // Subscribers filter on the type without parsing the body.
            .message_attributes("type", kind)
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }
}
