//! Enrolment: create or update a participant, then release the events parked for them.

use crate::domain::import::{ImportRow, RowError};
use crate::domain::participant::{Enrolling, Outcome};
use crate::ports::{EnrolmentStore, EventQueue, PortError, QueueMessage};
use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrolment {
    pub participant: String,
    pub created: bool,
    pub outcome: Outcome,
    /// Parked events put back on the queue by this call.
    pub released_events: usize,
    /// Why a status asked for was not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Idempotent: calling it again updates the profile and releases whatever is still parked.
/// A parked event is deleted only after the queue took it back, so none is lost; if the
/// queue fails, the error asks the caller to retry and the event stays parked.
pub async fn enrol<S: EnrolmentStore, Q: EventQueue>(
    store: &S,
    queue: &Q,
    program: &str,
    participant: &str,
    enrolling: impl Into<Enrolling>,
    now: Timestamp,
) -> Result<Enrolment, PortError> {
    let decision = store
        .enrol(program, participant, &enrolling.into(), now)
        .await?;
    let created = decision.outcome == Outcome::Created;
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
    tracing::info!(program, participant, outcome = ?decision.outcome, released, "enrolled");
    Ok(Enrolment {
        participant: participant.to_owned(),
        created,
        outcome: decision.outcome,
        released_events: released,
        note: decision.note,
    })
}

/// What became of one imported row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowResult {
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// `created`, `updated`, `unchanged` or `error`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_events: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::domain::error::FieldError>,
}

impl RowResult {
    pub fn rejected(error: RowError) -> Self {
        RowResult {
            line: error.line,
            participant: error.participant,
            outcome: "error",
            released_events: None,
            note: None,
            errors: error.errors,
        }
    }
}

/// Enrols the rows eight at a time (enough to finish 1,000 rows well within the API's
/// timeout, few enough not to throttle the table), each like one `enrol` call (so parked
/// events are released); a row the store failed on is an `error` row, and importing the
/// file again finishes it. Results are in the rows' order.
pub async fn import<S: EnrolmentStore, Q: EventQueue>(
    store: &S,
    queue: &Q,
    program: &str,
    rows: &[ImportRow],
    now: Timestamp,
) -> Vec<RowResult> {
    let next = std::sync::Mutex::new(rows.iter().enumerate());
    let worker = || async {
        let mut done = Vec::new();
        loop {
            let Some((i, row)) = next.lock().expect("not poisoned").next() else {
                return done;
            };
            let result = match enrol(
                store,
                queue,
                program,
                &row.participant,
                row.enrolling.clone(),
                now,
            )
            .await
            {
                Ok(enrolment) => RowResult {
                    line: row.line,
                    participant: Some(row.participant.clone()),
                    outcome: match enrolment.outcome {
                        Outcome::Created => "created",
                        Outcome::Updated => "updated",
                        Outcome::Unchanged => "unchanged",
                    },
                    released_events: Some(enrolment.released_events),
                    note: enrolment.note,
                    errors: Vec::new(),
                },
                Err(error) => {
                    tracing::warn!(program, line = row.line, %error, "import row failed");
                    RowResult {
                        line: row.line,
                        participant: Some(row.participant.clone()),
                        outcome: "error",
                        released_events: None,
                        note: None,
                        errors: vec![crate::domain::error::FieldError::new(
                            "$",
                            "the table was temporarily unavailable: import the file again (rows already imported come back unchanged)",
                        )],
                    }
                }
            };
            done.push((i, result));
        }
    };
    let (a, b, c, d, e, f, g, h) = tokio::join!(
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker(),
        worker()
    );
    let mut results: Vec<(usize, RowResult)> =
        [a, b, c, d, e, f, g, h].into_iter().flatten().collect();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
