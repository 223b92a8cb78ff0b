//! SQS-triggered notification sender. Two queues feed it: the notifications queue (requests
//! to send) and the email-events queue (SES deliveries, opens, bounces and complaints through
//! SNS); a record's source queue says which. Only failed records are reported, so SQS
//! redelivers those alone and, past maxReceiveCount, moves them to their dead-letter queue.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use carrot::ports::{
    Clock, DeliveryStore, FeedbackStore, Mailer, ProgramReader, SmsSender, TokenSecret,
};
use carrot::service::notify::{NotifyError, Sender};

pub struct Notify<S, P, M, T, K, C> {
    pub sender: Sender<S, P, M, T, K, C>,
    /// The ARN of the email-events queue; records from any other queue are requests.
    pub email_events_queue_arn: String,
}

impl<S, P, M, T, K, C> Notify<S, P, M, T, K, C>
where
    S: DeliveryStore + FeedbackStore,
    P: ProgramReader,
    M: Mailer,
    T: SmsSender,
    K: TokenSecret,
    C: Clock,
{
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in event.records {
            let message_id = record.message_id.unwrap_or_default();
            let body = record.body.unwrap_or_default();
            let receive_count = record
                .attributes
                .get("ApproximateReceiveCount")
                .map(String::as_str)
                .unwrap_or("1");
            let is_feedback =
                record.event_source_arn.as_deref() == Some(self.email_events_queue_arn.as_str());
            let result = if is_feedback {
                self.sender
                    .feedback(&body)
                    .await
                    .map(|recorded| tracing::info!(message_id, recorded, "email event"))
            } else {
                self.sender
                    .send(&body)
                    .await
                    .map(|outcome| tracing::info!(message_id, ?outcome, "notification"))
            };
            let Err(error) = result else { continue };
            match &error {
                NotifyError::Unprocessable(reason) => tracing::error!(
                    message_id,
                    receive_count,
                    reason,
                    "unprocessable message; it goes to the dead-letter queue after maxReceiveCount"
                ),
                NotifyError::InFlight(_) => {
                    tracing::info!(message_id, receive_count, %error, "retried later")
                }
                other => {
                    tracing::warn!(message_id, receive_count, error = %other, "failed; will be retried")
                }
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
        response
    }
}
