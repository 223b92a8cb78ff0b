//! SQS-triggered award: each message is awarded exactly once; only the messages that failed
//! are reported, so SQS redelivers those alone and, past maxReceiveCount, moves them to the
//! dead-letter queue.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use carrot::ports::{AwardStore, Clock, ProgramReader};
use carrot::service::award::{AwardError, award_message};

pub struct Award<S, P, C> {
    pub store: S,
    pub programs: P,
    pub clock: C,
}

impl<S: AwardStore, P: ProgramReader, C: Clock> Award<S, P, C> {
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
            match award_message(&self.store, &self.programs, &self.clock, &body).await {
                Ok((outcome, consumed)) => tracing::info!(
                    message_id,
                    ?outcome,
                    write_units = consumed.write_units,
                    read_units = consumed.read_units,
                    "awarded"
                ),
                Err(error) => {
                    match &error {
                        AwardError::Unprocessable(reason) => tracing::error!(
                            message_id,
                            receive_count,
                            reason,
                            "unprocessable message; it goes to the dead-letter queue after maxReceiveCount"
                        ),
                        other => {
                            tracing::warn!(message_id, receive_count, error = %other, "award failed; will be retried")
                        }
                    }
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = message_id;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        response
    }
}
