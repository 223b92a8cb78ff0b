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
use crate::domain::queued::QueuedEvent;
use crate::ports::{EventQueue, PortError, QueueMessage};
use jiff::Timestamp;
use serde_json::json;

/// The events-queue message of a bonus credit (`points.bonus`): the award function records
/// each `event_id` once, so a job that queues it again credits nothing more.
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
    let event = parse_event(&envelope, "", now).map_err(|e| format!("a bonus credit: {e:?}"))?;
    Ok(QueuedEvent {
        program: program.to_owned(),
        received_at: now,
        event,
    }
    .to_message())
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
