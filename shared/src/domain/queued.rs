//! The events queue's message: a validated envelope with the program its key implied and the
//! time ingest received it. Award re-validates it with the same parser ingest used.

use super::envelope::{Event, parse_event};
use super::program::check_program_id;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct QueuedEvent {
    pub program: String,
    pub received_at: Timestamp,
    pub event: Event,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u32,
    program: String,
    received_at: String,
    event: Value,
}

impl QueuedEvent {
    pub fn to_message(&self) -> String {
        serde_json::to_string(&Wire {
            v: VERSION,
            program: self.program.clone(),
            received_at: self.received_at.to_string(),
            event: self.event.to_json(),
        })
        .expect("queued events serialize")
    }

    /// The program and participant a message is for, read without validating the rest: the
    /// award function awards one participant's messages in order and different participants'
    /// at once. `None` when the message does not say (it will be refused on its own).
    pub fn participant_of(body: &str) -> Option<(String, String)> {
        #[derive(Deserialize)]
        struct Envelope {
            participant: String,
        }
        #[derive(Deserialize)]
        struct Addressed {
            program: String,
            event: Envelope,
        }
        let addressed: Addressed = serde_json::from_str(body).ok()?;
        Some((addressed.program, addressed.event.participant))
    }

    /// Reads a queue message; the error says why it can never be processed.
    pub fn from_message(body: &str) -> Result<Self, String> {
        let wire: Wire =
            serde_json::from_str(body).map_err(|e| format!("not a queued event: {e}"))?;
        if wire.v != VERSION {
            return Err(format!("unsupported message version {}", wire.v));
        }
        check_program_id(&wire.program).map_err(|e| format!("program {e}"))?;
        let received_at: Timestamp = wire
            .received_at
            .parse()
            .map_err(|e| format!("received_at: {e}"))?;
        let event = parse_event(&wire.event, "event", received_at).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(Self {
            program: wire.program,
            received_at,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_refusals() {
        let received_at: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let event = parse_event(
            &json!({"id": "e-1", "participant": "rep-1", "type": "portal.login",
                "occurred_at": "2026-11-22T08:00:00+01:00"}),
            "",
            received_at,
        )
        .unwrap();
        let queued = QueuedEvent {
            program: "acme".into(),
            received_at,
            event,
        };
        assert_eq!(
            QueuedEvent::from_message(&queued.to_message()).unwrap(),
            queued
        );
        assert!(
            QueuedEvent::from_message("{oops")
                .unwrap_err()
                .contains("not a queued event")
        );
        let unreadable = json!({"v": 1, "program": "acme", "received_at": "2026-11-22T12:00:00Z",
            "event": {"id": "e-1"}});
        assert!(
            QueuedEvent::from_message(&unreadable.to_string())
                .unwrap_err()
                .contains("event.participant: is required")
        );
    }
}
