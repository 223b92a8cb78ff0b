//! Award: turn one queued event into exactly one effect on the ledger.

use crate::domain::envelope::Event;
use crate::domain::ledger::{Plan, Standing, plan};
use crate::domain::period::Periods;
use crate::domain::program::Program;
use crate::domain::queued::QueuedEvent;
use crate::ports::{AwardStore, Clock, Consumed, Loaded, PortError, ProgramReader};
use std::sync::Arc;

/// How often a plan is re-made when a concurrent writer changed the state under it, or a
/// transient failure (a transaction conflict, throttling) is retried in place. Past that the
/// message is reported failed and SQS redelivers it.
const ATTEMPTS: u32 = 5;

/// Backoff before attempt `n` after a transient failure: 10, 20, 40, 80 ms.
fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(10 << attempt.min(6))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Awarded {
        points: i64,
    },
    Duplicate,
    Reversed {
        points: i64,
    },
    ReversalAwaitingOriginal,
    ArrivedCancelled,
    ReversalIgnored,
    /// The participant is not enrolled: kept, applied on enrolment.
    Parked,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AwardError {
    /// The message can never be processed (left for the DLQ).
    #[error("unprocessable message: {0}")]
    Unprocessable(String),
    #[error("program {0} has no configuration")]
    NoProgram(String),
    #[error(transparent)]
    Store(#[from] PortError),
    #[error("the participant's state kept changing; retry later")]
    Contended,
}

/// Awards one queue message. Safe to call any number of times with the same message.
pub async fn award_message<S: AwardStore, P: ProgramReader, C: Clock>(
    store: &S,
    programs: &P,
    clock: &C,
    message: &str,
) -> Result<(Outcome, Consumed), AwardError> {
    let queued = QueuedEvent::from_message(message).map_err(AwardError::Unprocessable)?;
    let program = program_at(programs, &queued.program, &queued.event).await?;
    let event = &queued.event;
    let ids: Vec<&str> = std::iter::once(event.id.as_str())
        .chain(event.reverses())
        .collect();
    for attempt in 0..ATTEMPTS {
        match attempt_once(store, &program, &queued, message, clock, &ids).await {
            Ok(done) => return Ok(done),
            // Another delivery or an enrolment changed the state: decide again.
            Err(PortError::ConditionFailed) => {}
            Err(PortError::Transient(_)) if attempt + 1 < ATTEMPTS => {
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(AwardError::Contended)
}

/// The program version in force when `event` occurred.
pub async fn program_at<P: ProgramReader>(
    programs: &P,
    program: &str,
    event: &Event,
) -> Result<Arc<Program>, AwardError> {
    let versions = programs
        .versions_for(program, event.occurred_at)
        .await?
        .ok_or_else(|| AwardError::NoProgram(program.to_owned()))?;
    Ok(versions.at(event.occurred_at).clone())
}

/// Everything an evaluation of `event` reads: the participant, the records named by `ids`
/// and the counters the matching rules count on.
pub async fn load<S: AwardStore>(
    store: &S,
    program: &Program,
    event: &Event,
    ids: &[&str],
) -> Result<Loaded, PortError> {
    let periods = Periods::of(event.occurred_at, &program.time_zone);
    let reads = program.reads(event, &periods);
    store
        .load(&program.id, &event.participant, ids, &reads)
        .await
}

/// Loads, plans and commits once; `ConditionFailed` means the state moved under the plan.
async fn attempt_once<S: AwardStore, C: Clock>(
    store: &S,
    program: &Program,
    queued: &QueuedEvent,
    message: &str,
    clock: &C,
    ids: &[&str],
) -> Result<(Outcome, Consumed), PortError> {
    let event = &queued.event;
    let loaded = load(store, program, event, ids).await?;
    let mut consumed = loaded.consumed;
    let Some(participant) = &loaded.participant else {
        consumed += store
            .park(
                &program.id,
                &event.participant,
                &event.id,
                message,
                clock.now(),
            )
            .await?;
        return Ok((Outcome::Parked, consumed));
    };
    let today = Periods::of(clock.now(), &program.time_zone).day;
    let standing = Standing {
        subject: participant.subject(),
        balance: participant.balance,
        counters: &loaded.counters,
        today: &today,
    };
    let own = loaded.record(&event.id);
    let original = event.reverses().and_then(|id| loaded.record(id));
    let plan = plan(program, event, queued.received_at, own, original, &standing);
    let outcome = match &plan {
        Plan::Duplicate => return Ok((Outcome::Duplicate, consumed)),
        Plan::Award { record, .. } => Outcome::Awarded {
            points: record.points,
        },
        Plan::Reverse { reversal, .. } => Outcome::Reversed {
            points: reversal.points,
        },
        Plan::ReverseBeforeOriginal { .. } => Outcome::ReversalAwaitingOriginal,
        Plan::ArriveCancelled { .. } => Outcome::ArrivedCancelled,
        Plan::IgnoreReversal { .. } => Outcome::ReversalIgnored,
    };
    consumed += store.commit(&program.id, &event.participant, &plan).await?;
    Ok((outcome, consumed))
}
