//! The daily engagement run, invoked by EventBridge Scheduler every hour with
//! `{"job": "engage"}`: for every program, due quiet-hours deferrals go back on the
//! notifications queue, and once a day (at `segments.run_hour`, program time) the members are
//! segmented and their journeys, nudges and digests planned. An operator runs one program
//! with `{"program": "acme"}`; a rerun on the same day resumes and changes nothing done.

use carrot::ports::{
    Clock, CloseStore, DeferralStore, EngageStore, EventQueue, Outbound, PortError, ProgramReader,
    StatsReader,
};
use carrot::service::engage::{EngageError, EngageJob};
use carrot::service::redeem::RedeemStore;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum EngageFailure {
    #[error("expected {{\"job\": \"engage\"}} or {{\"program\": …}}, got {0}")]
    BadInput(String),
    #[error(transparent)]
    Run(#[from] EngageError),
}

pub struct Engage<S, D, P, Q, N, O, C> {
    pub job: EngageJob<S, D, P, Q, N, O, C>,
}

impl<S, D, P, Q, N, O, C> Engage<S, D, P, Q, N, O, C>
where
    S: EngageStore + CloseStore + StatsReader + RedeemStore + Clone + 'static,
    D: DeferralStore,
    P: ProgramReader,
    Q: EventQueue + 'static,
    N: EventQueue + 'static,
    O: Outbound,
    C: Clock,
{
    /// Runs what the payload names. An error fails the invocation, so the scheduler's retry
    /// policy runs it again: every step is idempotent.
    pub async fn handle(&self, payload: Value) -> Result<Value, EngageFailure> {
        let text = |name: &str| payload.get(name).and_then(Value::as_str);
        let programs = match (text("job"), text("program")) {
            (Some("engage"), None) => self
                .job
                .store
                .programs()
                .await
                .map_err(|e: PortError| EngageFailure::Run(e.into()))?,
            (None, Some(program)) => vec![program.to_owned()],
            _ => return Err(EngageFailure::BadInput(payload.to_string())),
        };
        let (summaries, error) = self.job.tick(&programs).await;
        match error {
            Some(error) => Err(error.into()),
            None => Ok(json!({"runs": summaries})),
        }
    }
}
