//! The points calculator: what a hypothetical event would earn a participant now, rule by
//! rule, with any cap or budget that bites. It reads exactly what the award function reads
//! and evaluates with the same engine, and writes nothing.

use super::award::{AwardError, load, program_at};
use crate::domain::engine::Evaluation;
use crate::domain::envelope::Event;
use crate::domain::period::Periods;
use crate::ports::{AwardStore, PortError, ProgramReader};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quote {
    pub participant: String,
    /// The configuration version the event would be evaluated under.
    pub config_version: u32,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuoteError {
    #[error("participant {0} is not enrolled")]
    NotEnrolled(String),
    #[error(transparent)]
    Award(#[from] AwardError),
}

impl From<PortError> for QuoteError {
    fn from(error: PortError) -> Self {
        QuoteError::Award(error.into())
    }
}

pub async fn quote<S: AwardStore, P: ProgramReader>(
    store: &S,
    programs: &P,
    program: &str,
    event: &Event,
    received_at: jiff::Timestamp,
) -> Result<Quote, QuoteError> {
    let program = program_at(programs, program, event).await?;
    let loaded = load(store, &program, event, &[]).await?;
    let participant = loaded
        .participant
        .as_ref()
        .ok_or_else(|| QuoteError::NotEnrolled(event.participant.clone()))?;
    let periods = Periods::of(event.occurred_at, &program.time_zone);
    let evaluation = program.evaluate(
        event,
        received_at,
        &periods,
        &participant.subject(),
        &loaded.counters,
    );
    Ok(Quote {
        participant: event.participant.clone(),
        config_version: program.version,
        evaluation,
    })
}
