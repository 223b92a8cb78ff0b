//! The events queue on Amazon SQS.

use super::port_error;
use crate::ports::{EventQueue, PortError, QueueMessage};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// SQS's limits for one SendMessageBatch call.
const MAX_ENTRIES: usize = 10;
const MAX_BATCH_BYTES: usize = 256 * 1024;

pub struct SqsEventQueue {
    client: Client,
    queue_url: String,
}

impl SqsEventQueue {
    pub fn from_sdk(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(aws_sdk_sqs::Client::new(config), queue_url)
    }

    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends one SQS batch; entries SQS refused for its own reasons are tried once more.
    async fn send_batch(&self, batch: &[&QueueMessage]) -> Vec<Result<(), PortError>> {
        let mut results: Vec<Result<(), PortError>> =
            vec![Err(PortError::Transient("not sent".into())); batch.len()];
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        for _ in 0..2 {
            if pending.is_empty() {
                break;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&batch[i].body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let output = match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => output,
                Err(error) => {
                    let error = port_error(error);
                    for &i in &pending {
                        results[i] = Err(error.clone());
                    }
                    return results;
                }
            };
            for ok in output.successful() {
                if let Ok(i) = ok.id().parse::<usize>() {
                    results[i] = Ok(());
                }
            }
            pending.clear();
            for failed in output.failed() {
                if let Ok(i) = failed.id().parse::<usize>() {
                    let message = format!(
                        "{}: {}",
                        failed.code(),
                        failed.message().unwrap_or_default()
                    );
                    if failed.sender_fault() {
                        results[i] = Err(PortError::Permanent(message));
                    } else {
                        results[i] = Err(PortError::Transient(message));
                        pending.push(i);
                    }
                }
            }
        }
        results
    }
}

impl EventQueue for SqsEventQueue {
    async fn send(&self, messages: &[QueueMessage]) -> Vec<Result<(), PortError>> {
        let mut results = Vec::with_capacity(messages.len());
        let mut batch: Vec<&QueueMessage> = Vec::new();
        let mut batch_bytes = 0;
        for message in messages {
            if batch.len() == MAX_ENTRIES || batch_bytes + message.body.len() > MAX_BATCH_BYTES {
                results.extend(self.send_batch(&batch).await);
                batch.clear();
                batch_bytes = 0;
            }
            batch_bytes += message.body.len();
            batch.push(message);
        }
        if !batch.is_empty() {
            results.extend(self.send_batch(&batch).await);
        }
        results
    }
}
