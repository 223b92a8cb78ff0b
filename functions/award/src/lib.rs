//! SQS-triggered award: each message is awarded exactly once; only the messages that failed
//! are reported, so SQS redelivers those alone and, past maxReceiveCount, moves them to the
//! dead-letter queue.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use carrot::domain::queued::QueuedEvent;
use carrot::ports::{AwardStore, Clock, ProgramReader};
use carrot::service::award::{AwardError, award_message};
use futures_util::future::join_all;

/// The program and participant a message is for.
type Recipient = (String, String);

pub struct Award<S, P, C> {
    pub store: S,
    pub programs: P,
    pub clock: C,
}

impl<S: AwardStore, P: ProgramReader, C: Clock> Award<S, P, C> {
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        // One participant's messages are awarded one after another, in the batch's order
        // (each decides on what the one before wrote); different participants' at once, so a
        // batch takes about as long as its busiest participant's messages, not all of them.
        let mut lanes: Vec<(Option<Recipient>, Vec<SqsMessage>)> = Vec::new();
        for record in event.records {
            let for_whom = QueuedEvent::participant_of(record.body.as_deref().unwrap_or_default());
            let lane = for_whom
                .as_ref()
                .and_then(|whom| lanes.iter().position(|(w, _)| w.as_ref() == Some(whom)));
            match lane {
                Some(lane) => lanes[lane].1.push(record),
                None => lanes.push((for_whom, vec![record])),
            }
        }
        let failures = join_all(lanes.into_iter().map(|(_, lane)| self.award_lane(lane))).await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures.into_iter().flatten().collect();
        response
    }

    /// Awards messages in order; the failed ones are returned, for SQS to deliver again.
    async fn award_lane(&self, lane: Vec<SqsMessage>) -> Vec<BatchItemFailure> {
        let mut failures = Vec::new();
        for record in lane {
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
                    failures.push(failure);
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carrot::adapters::clock::FixedClock;
    use carrot::adapters::memory::{MemoryStore, StaticPrograms};
    use carrot::domain::envelope::parse_event;
    use carrot::domain::participant::Profile;
    use carrot::domain::program::{Program, ProgramVersions};
    use jiff::Timestamp;
    use serde_json::json;

    const PROGRAM: &str = "program: acme\nname: ACME\ntime_zone: Europe/Stockholm\nrules:\n  - id: daily-login\n    version: 1\n    description: Once a day\n    when: { type: portal.login }\n    award: { points: 5 }\n    caps: [{ per: day, times: 1 }]\n";

    fn message(id: &str, participant: &str, occurred_at: &str) -> SqsMessage {
        let received_at: Timestamp = "2026-11-10T12:00:00Z".parse().unwrap();
        let envelope = json!({"id": id, "participant": participant, "type": "portal.login",
            "occurred_at": occurred_at});
        let mut message = SqsMessage::default();
        message.message_id = Some(id.to_owned());
        message.body = Some(
            QueuedEvent {
                program: "acme".into(),
                received_at,
                event: parse_event(&envelope, "", received_at).unwrap(),
            }
            .to_message(),
        );
        message
    }

    #[tokio::test]
    async fn a_batch_awards_each_participants_messages_in_order_and_reports_only_failures() {
        let program = Program::parse(PROGRAM, 1).unwrap();
        let store = MemoryStore::default();
        let profile = Profile::from_json(&json!({"name": "R", "email": "r@example.com",
            "locale": "en", "time_zone": "Europe/Stockholm", "role": "seller",
            "distributor": "d", "location": "l"}))
        .unwrap();
        for rep in ["rep-a", "rep-b"] {
            store.enrol("acme", rep, profile.clone(), Timestamp::UNIX_EPOCH);
        }
        let award = Award {
            store,
            programs: StaticPrograms::of(ProgramVersions::single(program, Timestamp::UNIX_EPOCH)),
            clock: FixedClock::at("2026-11-10T12:00:00Z".parse().unwrap()),
        };
        let mut garbage = SqsMessage::default();
        garbage.message_id = Some("garbage".into());
        garbage.body = Some("{\"not\": \"an event\"}".into());
        // Interleaved: each rep's first login of the day earns, the later ones are capped.
        let mut batch = SqsEvent::default();
        batch.records = vec![
            message("a-1", "rep-a", "2026-11-10T08:00:00Z"),
            message("b-1", "rep-b", "2026-11-10T08:30:00Z"),
            garbage,
            message("a-2", "rep-a", "2026-11-10T09:00:00Z"),
            message("b-2", "rep-b", "2026-11-10T10:00:00Z"),
            message("a-3", "rep-a", "2026-11-10T11:00:00Z"),
        ];
        let response = award.handle(batch).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["garbage"]);
        let accounts = award.store.accounts();
        let points =
            |rep: &str, id: &str| accounts[&("acme".to_owned(), rep.to_owned())].records[id].points;
        // In the batch's order within each rep: the first login is the one that earned.
        assert_eq!(
            [
                points("rep-a", "a-1"),
                points("rep-a", "a-2"),
                points("rep-a", "a-3")
            ],
            [5, 0, 0]
        );
        assert_eq!([points("rep-b", "b-1"), points("rep-b", "b-2")], [5, 0]);
    }
}
