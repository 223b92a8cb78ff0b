//! Ingest: validate a signed request's events and put the accepted ones on the queue.

use crate::domain::envelope::{ADJUSTMENT_TYPE, RESERVED_ID_PREFIXES, RESERVED_TYPES, parse_event};
use crate::domain::error::FieldError;
use crate::domain::money::json_kind;
use crate::domain::queued::QueuedEvent;
use crate::http::{Caller, Problem};
use crate::ports::{EventQueue, QueueMessage};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_BATCH_EVENTS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// On the queue: it will be recorded exactly once, however often it is posted.
    Accepted,
    /// Same id as an earlier event of this request: ignored.
    DuplicateInBatch,
    /// Invalid: see `errors`. Nothing was written for it.
    Rejected,
    /// Valid but the queue did not take it: post it again.
    NotQueued,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: EventStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates_in_batch: usize,
    pub rejected: usize,
    pub not_queued: usize,
    pub results: Vec<EventResult>,
}

impl IngestReport {
    /// The report of `results`, with the count of each status.
    fn of(results: Vec<EventResult>) -> Self {
        let count = |status| results.iter().filter(|r| r.status == status).count();
        Self {
            accepted: count(EventStatus::Accepted),
            duplicates_in_batch: count(EventStatus::DuplicateInBatch),
            rejected: count(EventStatus::Rejected),
            not_queued: count(EventStatus::NotQueued),
            results,
        }
    }
}

/// The events of a request body: a single event object, or `{"events": [...]}`.
fn events_of(body: &[u8]) -> Result<Vec<(String, Value)>, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            413,
            "payload-too-large",
            "The request is too large",
            format!(
                "the body has {} bytes; at most {MAX_BODY_BYTES} are accepted",
                body.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::invalid(
            "the body is not valid JSON",
            vec![FieldError::new("$", e.to_string())],
        )
    })?;
    let Value::Object(object) = value else {
        return Err(Problem::invalid(
            "expected an event object or {\"events\": [...]}",
            vec![FieldError::new(
                "$",
                format!("must be an object, got {}", json_kind(&value)),
            )],
        ));
    };
    if !object.contains_key("events") {
        return Ok(vec![(String::new(), Value::Object(object))]);
    }
    if let Some(extra) = object.keys().find(|k| *k != "events") {
        return Err(Problem::invalid(
            "a batch has only the events member",
            vec![FieldError::new(extra.clone(), "is not a batch field")],
        ));
    }
    let events = match object.into_iter().next().map(|(_, v)| v) {
        Some(Value::Array(events)) => events,
        Some(other) => {
            return Err(Problem::invalid(
                "events must be an array",
                vec![FieldError::new(
                    "events",
                    format!("must be an array, got {}", json_kind(&other)),
                )],
            ));
        }
        None => unreachable!("checked above"),
    };
    if events.is_empty() {
        return Err(Problem::invalid(
            "the batch is empty",
            vec![FieldError::new("events", "must hold at least one event")],
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        let problem = Problem::new(
            413,
            "payload-too-large",
            "The batch is too large",
            format!(
                "the batch has {} events; at most {MAX_BATCH_EVENTS} are accepted",
                events.len()
            ),
        );
        return Err(Problem {
            errors: vec![FieldError::new(
                "events",
                format!("must hold at most {MAX_BATCH_EVENTS} events"),
            )],
            ..problem
        });
    }
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("events[{i}]"), v))
        .collect())
}

/// Validates every event, queues the accepted ones, and reports per event. The response is
/// 202 when at least one event was accepted, 400 when none was valid, 503 when the queue
/// failed for any (posting the same request again is safe).
pub async fn ingest<Q: EventQueue>(
    queue: &Q,
    caller: &Caller,
    body: &[u8],
    now: Timestamp,
) -> Result<IngestReport, Problem> {
    let events = events_of(body)?;
    let mut results = Vec::with_capacity(events.len());
    let mut messages = Vec::new();
    let mut seen = HashSet::new();
    for (index, (path, value)) in events.iter().enumerate() {
        let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let (status, errors) = match parse_event(value, path, now) {
            Err(errors) => (EventStatus::Rejected, errors),
            Ok(event) if RESERVED_TYPES.contains(&event.event_type.as_str()) => (
                EventStatus::Rejected,
                vec![FieldError::new(
                    if path.is_empty() {
                        "type".to_owned()
                    } else {
                        format!("{path}.type")
                    },
                    if event.event_type == ADJUSTMENT_TYPE {
                        "points.adjusted is reserved for administrators: use POST /v1/programs/{program}/participants/{participant}/adjustments"
                    } else {
                        "points.bonus is reserved for the period close's credits"
                    },
                )],
            ),
            Ok(event) if RESERVED_ID_PREFIXES.iter().any(|p| event.id.starts_with(p)) => (
                EventStatus::Rejected,
                vec![FieldError::new(
                    if path.is_empty() {
                        "id".to_owned()
                    } else {
                        format!("{path}.id")
                    },
                    format!(
                        "must not start with {:?}: Carrot names its own ledger entries so ({})",
                        RESERVED_ID_PREFIXES
                            .iter()
                            .find(|p| event.id.starts_with(*p))
                            .expect("matched"),
                        RESERVED_ID_PREFIXES.join(", ")
                    ),
                )],
            ),
            Ok(event) if !seen.insert(event.id.clone()) => {
                (EventStatus::DuplicateInBatch, Vec::new())
            }
            Ok(event) => {
                let queued = QueuedEvent {
                    program: caller.program.clone(),
                    received_at: now,
                    event,
                };
                messages.push((
                    index,
                    QueueMessage {
                        id: index.to_string(),
                        body: queued.to_message(),
                    },
                ));
                (EventStatus::Accepted, Vec::new())
            }
        };
        results.push(EventResult {
            index,
            id,
            status,
            errors,
        });
    }
    let outgoing: Vec<QueueMessage> = messages.iter().map(|(_, m)| m.clone()).collect();
    for ((index, _), sent) in messages.iter().zip(queue.send(&outgoing).await) {
        if let Err(error) = sent {
            tracing::warn!(%error, index, "event not queued");
            results[*index].status = EventStatus::NotQueued;
        }
    }
    let report = IngestReport::of(results);
    tracing::info!(
        program = %caller.program,
        key = %caller.key_id,
        accepted = report.accepted,
        duplicates_in_batch = report.duplicates_in_batch,
        rejected = report.rejected,
        not_queued = report.not_queued,
        "ingested"
    );
    if report.not_queued > 0 {
        let problem = Problem::new(
            503,
            "queue-unavailable",
            "Some events were not queued",
            "post the same request again: accepted events are recorded once however often they are posted",
        );
        return Err(problem.with(
            "results",
            serde_json::to_value(&report).expect("serializes"),
        ));
    }
    if report.accepted == 0 {
        let errors = report
            .results
            .iter()
            .flat_map(|r| r.errors.clone())
            .collect();
        let problem = Problem::invalid("no event in the request is valid", errors);
        return Err(problem.with(
            "results",
            serde_json::to_value(&report.results).expect("serializes"),
        ));
    }
    Ok(report)
}
