//! The period close, invoked by EventBridge Scheduler every hour with `{"job": "close-due"}`:
//! every program's months (and the quarters and years its boards and drawings use) are closed
//! once they have ended in the program's time zone, plus the program's close delay. An
//! operator reruns or resumes one close with `{"program": "acme", "period": "2026-11"}`; a
//! rerun of a finished close changes nothing.

use carrot::ports::{Clock, CloseStore, EventQueue, Outbound, ProgramReader, StatsReader};
use carrot::service::close::{CloseError, CloseJob};
use serde_json::{Value, json};

pub struct Close<S, P, Q, N, O, C> {
    pub job: CloseJob<S, P, Q, N, O, C>,
}

/// The drawings' seeds: 32 bytes from a CSPRNG the OS seeds.
pub fn os_seed() -> [u8; 32] {
    rand::random()
}

impl<S, P, Q, N, O, C> Close<S, P, Q, N, O, C>
where
    S: CloseStore + StatsReader + Clone + 'static,
    P: ProgramReader,
    Q: EventQueue,
    N: EventQueue,
    O: Outbound,
    C: Clock,
{
    /// Runs the job the payload names. An error fails the invocation, so the scheduler's retry
    /// policy (and an operator) can run it again: every step is idempotent.
    pub async fn handle(&self, payload: Value) -> Result<Value, CloseError> {
        let text = |name: &str| payload.get(name).and_then(Value::as_str);
        match (text("job"), text("program"), text("period")) {
            (Some("close-due"), None, None) => {
                let closed = self.job.close_due().await?;
                Ok(json!({"closed": closed}))
            }
            (None, Some(program), Some(period)) => {
                let closed = self.job.close(program, period).await?;
                Ok(json!({"closed": [closed]}))
            }
            _ => Err(CloseError::BadPeriod(format!(
                "expected {{\"job\": \"close-due\"}} or {{\"program\": …, \"period\": …}}, got {payload}"
            ))),
        }
    }
}
