//! The use cases: each drives the pure domain through the ports it needs.

pub mod award;
pub mod backtest;
pub mod calculator;
pub mod close;
pub mod engage;
pub mod enrol;
pub mod ingest;
pub mod lead;
pub mod leaderboard;
pub mod notify;
pub mod quiz;
pub mod redeem;
pub mod replay;
pub mod spin;
pub mod statement;

use crate::domain::envelope::{BONUS_TYPE, parse_event};
use crate::domain::error::FieldError;
use crate::domain::queued::QueuedEvent;
use crate::http::Problem;
use crate::ports::{
    AwardStore, EventQueue, ParticipantState, PortError, ProgramReader, QueueMessage, StatsReader,
};
use crate::service::award::AwardError;
use crate::service::calculator::{QuoteError, quote};
use jiff::Timestamp;
use serde_json::{Value, json};

/// The events-queue message of an event Carrot makes itself (`envelope` as the API takes it):
/// a bonus credit, a graded quiz, an approved lead. The award function records each event id
/// once, so queueing it again credits nothing more.
pub(crate) fn own_event_message(
    program: &str,
    envelope: &Value,
    now: Timestamp,
) -> Result<String, String> {
    let event = parse_event(envelope, "", now).map_err(|e| format!("{e:?}"))?;
    Ok(QueuedEvent {
        program: program.to_owned(),
        received_at: now,
        event,
    }
    .to_message())
}

/// The events-queue message of a bonus credit (`points.bonus`).
pub(crate) fn bonus_message(
    program: &str,
    participant: &str,
    event_id: &str,
    points: i64,
    reason: &str,
    occurred_at: Timestamp,
    now: Timestamp,
) -> Result<String, String> {
    let envelope = json!({
        "id": event_id,
        "participant": participant,
        "type": BONUS_TYPE,
        "occurred_at": occurred_at.to_string(),
        "attributes": {"points": points, "reason": reason},
    });
    own_event_message(program, &envelope, now).map_err(|e| format!("a bonus credit: {e}"))
}

/// Sends every message or fails: a job's checkpoint moves only past what was sent.
pub(crate) trait SendAll: Sync {
    fn send_all(
        &self,
        messages: Vec<QueueMessage>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), PortError>> + Send + '_>>;
}

impl<Q: EventQueue> SendAll for Q {
    fn send_all(
        &self,
        messages: Vec<QueueMessage>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), PortError>> + Send + '_>> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(());
            }
            for result in self.send(&messages).await {
                result?;
            }
            Ok(())
        })
    }
}

// What the portal's services (quizzes, leads, spins) share.

/// How often a write is decided again when a concurrent one moved what it read, or a
/// transaction conflict (a concurrent transaction on the same item) is retried.
pub(crate) const ATTEMPTS: u32 = 12;

/// Why a portal request is refused; each maps to one problem status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// 400: the fields at fault.
    #[error("the request is not valid")]
    Invalid(String, Vec<FieldError>),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409: the state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// 422: an id used again with a different request.
    #[error("{0}")]
    Mismatch(String),
    /// 503: retry with the same request.
    #[error(transparent)]
    Unavailable(#[from] PortError),
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Problem {
        match refusal {
            Refusal::Invalid(detail, errors) => Problem::invalid(detail, errors),
            Refusal::NotFound(detail) => Problem::new(404, "not-found", "Not found", detail),
            Refusal::Conflict(detail) => Problem::new(
                409,
                "not-allowed",
                "Not allowed in the current state",
                detail,
            ),
            Refusal::Mismatch(detail) => Problem::new(
                422,
                "idempotency-key-reused",
                "The key was used for a different request",
                detail,
            ),
            Refusal::Unavailable(error) => Problem::unavailable(&error),
        }
    }
}

pub(crate) fn not_enrolled(participant: &str) -> Refusal {
    Refusal::NotFound(format!(
        "participant {participant:?} is not enrolled in this program"
    ))
}

/// The enrolled participant, or 404.
pub(crate) async fn enrolled<S: StatsReader>(
    store: &S,
    program: &str,
    participant: &str,
) -> Result<ParticipantState, Refusal> {
    store
        .participant(program, participant)
        .await?
        .ok_or_else(|| not_enrolled(participant))
}

/// Queues an event Carrot makes on a participant's behalf (`envelope` as the API takes it);
/// the award function records each event id once, so queueing it again is harmless.
pub(crate) async fn queue_event<Q: EventQueue>(
    queue: &Q,
    program: &str,
    envelope: &Value,
    now: Timestamp,
) -> Result<(), Refusal> {
    let message = QueueMessage {
        id: "0".into(),
        body: own_event_message(program, envelope, now)
            .map_err(|e| PortError::Permanent(format!("an event Carrot made is invalid: {e}")))?,
    };
    match queue.send(&[message]).await.into_iter().next() {
        Some(Err(error)) => Err(error.into()),
        _ => Ok(()),
    }
}

/// What the program's rules would award `participant` for an event of `event_type` with
/// `attributes` now: `None` when the program has no configuration yet.
pub(crate) async fn quoted<S: AwardStore, P: ProgramReader>(
    store: &S,
    programs: &P,
    program: &str,
    participant: &str,
    event_type: &str,
    attributes: Value,
    now: Timestamp,
) -> Result<Option<i64>, Refusal> {
    let envelope = json!({"id": "quote", "participant": participant, "type": event_type,
        "occurred_at": now.to_string(), "attributes": attributes});
    let event = parse_event(&envelope, "", now)
        .map_err(|errors| PortError::Permanent(format!("a quoted event is invalid: {errors:?}")))?;
    match quote(store, programs, program, &event, now).await {
        Ok(quote) => Ok(Some(quote.evaluation.points)),
        Err(QuoteError::Award(AwardError::NoProgram(_))) => Ok(None),
        Err(QuoteError::NotEnrolled(participant)) => Err(not_enrolled(&participant)),
        Err(QuoteError::Award(AwardError::Store(error))) => Err(error.into()),
        Err(QuoteError::Award(other)) => Err(PortError::Transient(other.to_string()).into()),
    }
}
