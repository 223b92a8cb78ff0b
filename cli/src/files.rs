//! The backtest's input files. Events and roster are each JSON Lines (`.jsonl`, one object
//! per line) or CSV (`.csv`, a header row naming the columns), read into one JSON object per
//! record by `carrot::domain::import` (which the enrolment import reads with too). A bad
//! record is reported with its line and never stops the run; a file that cannot be read or a
//! CSV header that is wrong does.

use anyhow::{Context, bail};
use carrot::domain::envelope::{MAX_FUTURE_SKEW, parse_event, parse_rfc3339};
use carrot::domain::error::{FieldErrors, check_identifier};
use carrot::domain::import::{Columns, Record, csv_records, json_lines};
use carrot::domain::money::json_kind;
use carrot::service::backtest::{History, HistoryEvent, Member, Rejected};
use jiff::Timestamp;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// The CSV columns of events: `attributes` holds the attributes object as JSON text.
const EVENT_COLUMNS: Columns = Columns {
    required: &["id", "participant", "type", "occurred_at"],
    optional: &["received_at", "attributes"],
    json: &["attributes"],
};

const ROSTER_COLUMNS: Columns = Columns {
    required: &["participant", "enrolled_at", "role"],
    optional: &[
        "distributor",
        "location",
        "region",
        "tier",
        "segment",
        "name",
        "email",
    ],
    json: &[],
};

/// Reads the events and, if given, the roster.
pub fn history(events: &Path, roster: Option<&Path>) -> anyhow::Result<History> {
    let (events, rejected) = events_of(records(events, &EVENT_COLUMNS)?);
    let mut history = History {
        events,
        rejected,
        ..History::default()
    };
    let mut listed: HashMap<String, usize> = HashMap::new();
    for (line, record) in roster
        .map(|r| records(r, &ROSTER_COLUMNS))
        .transpose()?
        .into_iter()
        .flatten()
    {
        let member = record
            .and_then(member)
            .and_then(|m| match listed.get(&m.participant) {
                Some(first) => Err(format!(
                    "participant {:?} is already listed on line {first}",
                    m.participant
                )),
                None => Ok(m),
            });
        match member {
            Ok(member) => {
                listed.insert(member.participant.clone(), line);
                history.roster.push(member);
            }
            Err(reason) => history.roster_rejected.push(Rejected { line, reason }),
        }
    }
    Ok(history)
}

/// The records that are events, and the lines of those that are not.
fn events_of(records: Vec<Record>) -> (Vec<HistoryEvent>, Vec<Rejected>) {
    let (mut events, mut rejected) = (Vec::new(), Vec::new());
    for (line, record) in records {
        match record.and_then(|object| history_event(line, object)) {
            Ok(event) => events.push(event),
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    (events, rejected)
}

/// An envelope plus an optional `received_at` (default: when it occurred). Without it there
/// is no receiving clock, so an event is not refused for lying in the future.
fn history_event(line: usize, mut object: Map<String, Value>) -> Result<HistoryEvent, String> {
    let received_at = match object.remove("received_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(parse_rfc3339(&text).map_err(|reason| format!("received_at: {reason}"))?)
        }
        Some(other) => {
            return Err(format!(
                "received_at: must be a string, got {}",
                json_kind(&other)
            ));
        }
    };
    let now = received_at.unwrap_or(Timestamp::MAX - MAX_FUTURE_SKEW);
    let event = parse_event(&Value::Object(object), "", now).map_err(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        errors.join("; ")
    })?;
    Ok(HistoryEvent {
        line,
        received_at: received_at.unwrap_or(event.occurred_at),
        event,
    })
}

fn member(object: Map<String, Value>) -> Result<Member, String> {
    let mut errors = FieldErrors::default();
    let mut texts: HashMap<&str, String> = HashMap::new();
    for (key, value) in &object {
        let Some(column) = ROSTER_COLUMNS
            .required
            .iter()
            .chain(ROSTER_COLUMNS.optional)
            .find(|c| **c == key)
        else {
            errors.push(key.clone(), "is not a roster field");
            continue;
        };
        match value {
            Value::Null => {}
            Value::String(text) if text.trim().is_empty() => {}
            Value::String(text) => {
                texts.insert(column, text.trim().to_owned());
            }
            other => errors.push(
                key.clone(),
                format!("must be a string, got {}", json_kind(other)),
            ),
        }
    }
    for column in ROSTER_COLUMNS.required {
        if !texts.contains_key(column) && !errors.0.iter().any(|e| e.field == *column) {
            errors.push(*column, "is required");
        }
    }
    if let Some(participant) = texts.get("participant") {
        check_identifier(&mut errors, "participant", participant);
    }
    let enrolled_at = texts.get("enrolled_at").and_then(|text| {
        parse_rfc3339(text)
            .map_err(|reason| errors.push("enrolled_at", reason))
            .ok()
    });
    if !errors.is_empty() {
        let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        return Err(errors.join("; "));
    }
    let mut take = |column: &str| texts.remove(column);
    Ok(Member {
        participant: take("participant").expect("checked"),
        enrolled_at: enrolled_at.expect("checked"),
        role: take("role").expect("checked"),
        distributor: take("distributor"),
        location: take("location"),
        region: take("region"),
        tier: take("tier"),
        segment: take("segment"),
        name: take("name"),
        email: take("email"),
    })
}

/// Every record of a JSON Lines or CSV file, by its extension. Blank lines are skipped.
fn records(path: &Path, columns: &Columns) -> anyhow::Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    match extension.to_ascii_lowercase().as_str() {
        "jsonl" | "ndjson" => Ok(json_lines(&text)),
        "csv" => csv_records(&text, columns)
            .map_err(|reason| anyhow::anyhow!("reading {}: {reason}", path.display())),
        _ => bail!(
            "{}: expected a .jsonl or .csv file, got {extension:?}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_events_read_like_json_lines_and_bad_rows_name_their_line() {
        let text = "id,participant,type,occurred_at,received_at,attributes\n\
            q-1,ann,quiz.completed,2026-10-05T08:00:00Z,,\"{\"\"quiz_id\"\":\"\"welcome\"\",\"\"correct\"\":3,\"\"questions\"\":4}\"\n\
            l-1,ann,portal.login,2026-10-05T09:00:00Z,2026-10-06T09:00:00Z,\n\
            l-2,ann,portal.login,yesterday,,\n\
            l-3,ann,portal.login,2026-10-05T09:00:00Z,2026-10-05T08:00:00Z,\n\
            l-4,ann\n";
        let (events, rejected) = events_of(csv_records(text, &EVENT_COLUMNS).unwrap());
        let read: Vec<(usize, &str, String)> = events
            .iter()
            .map(|e| (e.line, e.event.id.as_str(), e.received_at.to_string()))
            .collect();
        assert_eq!(
            read,
            [
                (2, "q-1", "2026-10-05T08:00:00Z".to_owned()),
                (3, "l-1", "2026-10-06T09:00:00Z".to_owned())
            ]
        );
        assert_eq!(events[0].event.raw_attributes["correct"], 3);
        let rejected: Vec<(usize, &str)> = rejected
            .iter()
            .map(|r| (r.line, r.reason.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            rejected,
            [
                (4, "occurred_at"),
                (5, "occurred_at"),
                (6, "has 2 cells, the header 6")
            ]
        );
    }

    #[test]
    fn a_csv_header_with_an_unknown_or_missing_column_is_refused() {
        let unknown = csv_records("id,participant,type,occurred_at,colour\n", &EVENT_COLUMNS);
        assert!(unknown.unwrap_err().to_string().contains("\"colour\""));
        let missing = csv_records("participant,role\n", &ROSTER_COLUMNS);
        assert!(missing.unwrap_err().to_string().contains("\"enrolled_at\""));
    }

    #[test]
    fn roster_rows_need_participant_enrolment_and_role() {
        let object = |v: Value| v.as_object().unwrap().clone();
        let member = member(object(serde_json::json!({"participant": "ann",
            "enrolled_at": "2026-01-01T00:00:00+01:00", "role": "seller", "segment": "gold", "tier": ""})))
        .unwrap();
        assert_eq!(member.enrolled_at.to_string(), "2025-12-31T23:00:00Z");
        assert_eq!(member.segment.as_deref(), Some("gold"));
        assert_eq!(member.tier, None, "an empty cell is absent");
        let errors = super::member(object(serde_json::json!({"participant": "a b",
            "enrolled_at": "soon", "colour": "red"})))
        .unwrap_err();
        for field in [
            "colour: ",
            "role: is required",
            "participant: ",
            "enrolled_at: ",
        ] {
            assert!(errors.contains(field), "{field} missing from {errors}");
        }
    }
}
