//! Amazon SNS: outbound events on a topic (a portal subscribes, HTTPS or a queue, and reacts,
//! e.g. disables a suspended account), and text messages to phone numbers.

use super::port_error;
use crate::ports::{Outbound, PortError, SmsSender};
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

/// Text messages published straight to phone numbers (E.164).
pub struct SnsSms {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSms {
    pub fn from_sdk(config: &aws_config::SdkConfig, sender_id: Option<String>) -> Self {
        Self::new(Client::new(config), sender_id)
    }

    /// `sender_id`: the alphanumeric sender shown where the destination country supports one
    /// (`None`: the account's default).
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        Self { client, sender_id }
    }
}

fn text_attribute(value: &str) -> Result<MessageAttributeValue, PortError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PortError::Permanent(e.to_string()))
}

impl SmsSender for SnsSms {
    async fn opted_out(&self, phone: &str) -> Result<bool, PortError> {
        let output = self
            .client
            .check_if_phone_number_is_opted_out()
            .phone_number(phone)
            .send()
            .await
            .map_err(port_error)?;
        Ok(output.is_opted_out())
    }

    async fn send_sms(
        &self,
        phone: &str,
        text: &str,
        promotional: bool,
    ) -> Result<String, PortError> {
        // SNS routes promotional texts the cheapest way, transactional ones the most reliable.
        let route = if promotional {
            "Promotional"
        } else {
            "Transactional"
        };
        let mut publish = self
            .client
            .publish()
            .phone_number(phone)
            .message(text)
            .message_attributes("AWS.SNS.SMS.SMSType", text_attribute(route)?);
        if let Some(sender_id) = &self.sender_id {
            publish =
                publish.message_attributes("AWS.SNS.SMS.SenderID", text_attribute(sender_id)?);
        }
        let output = publish.send().await.map_err(port_error)?;
        output
            .message_id()
            .map(str::to_owned)
            .ok_or_else(|| PortError::Transient("SNS returned no message id".into()))
    }
}
