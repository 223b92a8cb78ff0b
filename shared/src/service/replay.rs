//! Replays events through the real award path against the in-memory store, touching no
//! table: the backtest's engine, and the harness of the rules' tests and property tests.

use super::award::{AwardError, Outcome, award_message};
use super::calculator::{Quote, QuoteError, quote};
use crate::adapters::clock::FixedClock;
use crate::adapters::memory::{MemoryStore, StaticPrograms};
use crate::domain::envelope::Event;
use crate::domain::participant::Profile;
use crate::domain::program::ProgramVersions;
use crate::domain::queued::QueuedEvent;
use jiff::Timestamp;

pub struct Replay {
    pub store: MemoryStore,
    pub programs: StaticPrograms,
    pub clock: FixedClock,
    pub program: String,
}

impl Replay {
    pub fn new(versions: ProgramVersions) -> Self {
        let program = versions.latest().id.clone();
        Self {
            store: MemoryStore::default(),
            programs: StaticPrograms::of(versions),
            clock: FixedClock::at(Timestamp::UNIX_EPOCH),
            program,
        }
    }

    pub fn enrol(&self, participant: &str, profile: Profile, at: Timestamp) {
        self.store.enrol(&self.program, participant, profile, at);
    }

    /// Awards `event` as if it arrived at `received_at` (the clock stands there meanwhile),
    /// through the same queue message and award function as production.
    pub async fn deliver(
        &self,
        event: Event,
        received_at: Timestamp,
    ) -> Result<Outcome, AwardError> {
        self.clock.set(received_at);
        let message = QueuedEvent {
            program: self.program.clone(),
            received_at,
            event,
        }
        .to_message();
        award_message(&self.store, &self.programs, &self.clock, &message)
            .await
            .map(|(outcome, _)| outcome)
    }

    /// What `event` would earn now, as the calculator says.
    pub async fn quote(&self, event: &Event, received_at: Timestamp) -> Result<Quote, QuoteError> {
        self.clock.set(received_at);
        quote(
            &self.store,
            &self.programs,
            &self.program,
            event,
            received_at,
        )
        .await
    }
}
