//! Award: turn one queued event into exactly one effect on the ledger.

use crate::domain::ledger::{Plan, plan};
use crate::domain::queued::QueuedEvent;
use crate::ports::{AwardStore, Clock, Consumed, PortError, ProgramReader};

/// How often a plan is re-made when a concurrent writer changed the state under it.
const ATTEMPTS: usize = 4;

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
    let program = programs
        .current(&queued.program)
        .await?
        .ok_or_else(|| AwardError::NoProgram(queued.program.clone()))?;
    let event = &queued.event;
    let ids: Vec<&str> = std::iter::once(event.id.as_str())
        .chain(event.reverses())
        .collect();
    let mut consumed = Consumed::default();
    for _ in 0..ATTEMPTS {
        let loaded = store.load(&program.id, &event.participant, &ids).await?;
        consumed += loaded.consumed;
        if !loaded.enrolled {
            match store
                .park(
                    &program.id,
                    &event.participant,
                    &event.id,
                    message,
                    clock.now(),
                )
                .await
            {
                Ok(used) => {
                    consumed += used;
                    return Ok((Outcome::Parked, consumed));
                }
                Err(PortError::ConditionFailed) => continue, // enrolled meanwhile
                Err(other) => return Err(other.into()),
            }
        }
        let own = loaded.record(&event.id);
        let original = event.reverses().and_then(|id| loaded.record(id));
        let plan = plan(&program, event, queued.received_at, own, original);
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
        match store.commit(&program.id, &event.participant, &plan).await {
            Ok(used) => {
                consumed += used;
                return Ok((outcome, consumed));
            }
            Err(PortError::ConditionFailed) => continue, // another delivery got there first
            Err(other) => return Err(other.into()),
        }
    }
    Err(AwardError::Contended)
}
