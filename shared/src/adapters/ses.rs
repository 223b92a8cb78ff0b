//! Email through Amazon SES (API v2): the MIME message goes out as built (`Content::Raw`),
//! under a configuration set whose event destination reports deliveries, opens, bounces and
//! complaints, with the message tags those events echo back.

use super::port_error;
use crate::ports::{Mailer, OutgoingEmail, PortError};
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};

pub struct SesMailer {
    client: Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn from_sdk(config: &aws_config::SdkConfig, configuration_set: Option<String>) -> Self {
        Self::new(Client::new(config), configuration_set)
    }

    /// `configuration_set`: the SES configuration set whose event destination reports the
    /// messages' feedback (`None`: no feedback is reported).
    pub fn new(client: Client, configuration_set: Option<String>) -> Self {
        Self {
            client,
            configuration_set,
        }
    }
}

impl Mailer for SesMailer {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, PortError> {
        let raw = RawMessage::builder()
            .data(Blob::new(email.raw_mime.clone()))
            .build()
            .map_err(|e| PortError::Permanent(e.to_string()))?;
        let tags = email
            .tags
            .iter()
            .map(|(name, value)| {
                MessageTag::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .map_err(|e| PortError::Permanent(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_email_tags(Some(tags))
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(mail_error)?;
        output
            .message_id()
            .map(str::to_owned)
            .ok_or_else(|| PortError::Transient("SES returned no message id".into()))
    }
}

/// Like `port_error`, with SES's account-wide stops as transient: sending paused or the
/// account's quota used up for now. Nothing is wrong with the message, so the queue's retries
/// and then its dead-letter queue keep it until sending resumes. A message SES rejects
/// (`MessageRejected`, an unverified sender or MAIL FROM domain, a bad request) is permanent.
fn mail_error<E: ProvideErrorMetadata + std::fmt::Debug>(error: SdkError<E>) -> PortError {
    let service = error.as_service_error();
    match service.and_then(ProvideErrorMetadata::code) {
        Some(
            code @ ("SendingPausedException"
            | "AccountSuspendedException"
            | "LimitExceededException"),
        ) => PortError::Transient(format!(
            "{code}: {}",
            service
                .and_then(ProvideErrorMetadata::message)
                .unwrap_or_default()
        )),
        _ => port_error(error),
    }
}
