//! Enrolment: create or update a participant, then release the events parked for them.

use crate::domain::participant::Profile;
use crate::ports::{EnrolmentStore, EventQueue, PortError, QueueMessage};
use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrolment {
    pub participant: String,
    pub created: bool,
    /// Parked events put back on the queue by this call.
    pub released_events: usize,
}

/// Idempotent: calling it again updates the profile and releases whatever is still parked.
/// A parked event is deleted only after the queue took it back, so none is lost; if the
/// queue fails, the error asks the caller to retry and the event stays parked.
pub async fn enrol<S: EnrolmentStore, Q: EventQueue>(
    store: &S,
    queue: &Q,
    program: &str,
    participant: &str,
    profile: &Profile,
    now: Timestamp,
) -> Result<Enrolment, PortError> {
    let created = store.enrol(program, participant, profile, now).await?;
    let parked = store.parked(program, participant).await?;
    let messages: Vec<QueueMessage> = parked
        .iter()
        .enumerate()
        .map(|(i, p)| QueueMessage {
            id: i.to_string(),
            body: p.message.clone(),
        })
        .collect();
    let mut released = 0;
    let mut failure = None;
    for (parked, sent) in parked.iter().zip(queue.send(&messages).await) {
        match sent {
            Ok(()) => {
                store
                    .release(program, participant, &parked.event_id)
                    .await?;
                released += 1;
            }
            Err(error) => failure = Some(error),
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    tracing::info!(program, participant, created, released, "enrolled");
    Ok(Enrolment {
        participant: participant.to_owned(),
        created,
        released_events: released,
    })
}
