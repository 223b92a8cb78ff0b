//! Event envelope v1: what CRMs and portals post, validated field by field.
//!
//! One parser serves ingest (which answers the caller) and award (which re-reads the queued
//! envelope), so the two can never disagree on what an event means.

use super::error::{FieldError, FieldErrors, check_identifier};
use super::money::{Currency, json_kind, parse_amount};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};

/// Largest serialized event; keeps every queued message far below SQS's 256 KB limit.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// How far `occurred_at` may lie ahead of the receiving clock (source clocks drift a little).
pub const MAX_FUTURE_SKEW: SignedDuration = SignedDuration::from_mins(5);
/// The earliest `occurred_at` taken: no program ran before it, and an older time (year 1, the
/// Unix epoch) is a source system's default value, not when something happened.
pub const EARLIEST_OCCURRED_AT: Timestamp = Timestamp::constant(946_684_800, 0);

const ENVELOPE_FIELDS: [&str; 5] = ["id", "participant", "type", "occurred_at", "attributes"];

/// The event types Carrot knows. Any other well-formed type is accepted and recorded, and
/// earns nothing unless the program's rules name it.
pub const KNOWN_TYPES: [&str; 14] = [
    "portal.login",
    "deal.registered",
    "contract.started",
    "sale.closed",
    "quiz.completed",
    "lead.submitted",
    "training.completed",
    "profile.completed",
    "survey.answered",
    "crm.activity_logged",
    "deal.cancelled",
    "contract.cancelled",
    "points.adjusted",
    "points.bonus",
];

/// A portal login: distinct login days are counted per month.
pub const LOGIN_TYPE: &str = "portal.login";

/// The type of an administrator's manual adjustment: made through the admin API only, never
/// accepted from `POST /v1/events`.
pub const ADJUSTMENT_TYPE: &str = "points.adjusted";

/// The type of a bonus the period close credits (a leaderboard place, a drawing prize): made
/// by the close job only. Its points go to the balance, not to the month's leaderboard points.
pub const BONUS_TYPE: &str = "points.bonus";

/// Types only Carrot itself records; `POST /v1/events` refuses them.
pub const RESERVED_TYPES: [&str; 2] = [ADJUSTMENT_TYPE, BONUS_TYPE];

/// The id namespaces of the ledger entries Carrot makes itself (adjustments, close bonuses and
/// drawings, journey awards, orders, refunds, transfers, spins, graded quizzes, approved
/// leads): `POST /v1/events` refuses ids in them, so no incoming event can take or block one.
pub const RESERVED_ID_PREFIXES: [&str; 11] = [
    "adj:",
    "close:",
    "draw:",
    "milestone:",
    "catch_up:",
    "order:",
    "refund:",
    "transfer:",
    "spin:",
    "quiz:",
    "lead:",
];

/// A validated activity event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub participant: String,
    pub event_type: String,
    pub occurred_at: Timestamp,
    pub attributes: Attributes,
    /// The attributes object as received: kept on the activity record for audit and rules.
    pub raw_attributes: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub sku: String,
    pub quantity: u32,
}

/// Attributes typed per event type.
#[derive(Debug, Clone, PartialEq)]
pub enum Attributes {
    PortalLogin,
    DealRegistered {
        deal_id: String,
        amount: Option<(Decimal, Currency)>,
    },
    ContractStarted {
        contract_id: String,
        financed_volume: Decimal,
        currency: Currency,
    },
    SaleClosed {
        amount: Decimal,
        currency: Currency,
        products: Vec<Product>,
    },
    QuizCompleted {
        quiz_id: String,
        correct: u32,
        questions: u32,
    },
    LeadSubmitted {
        lead_id: String,
        company: String,
    },
    TrainingCompleted {
        course_id: String,
    },
    ProfileCompleted,
    SurveyAnswered {
        survey_id: String,
    },
    CrmActivityLogged {
        activity: String,
        recorded_at: Timestamp,
    },
    /// `deal.cancelled` / `contract.cancelled`: claws back what the named event earned.
    Reversal {
        original_event: String,
    },
    /// `points.adjusted` (an administrator's credit or debit) or `points.bonus` (the period
    /// close's credit), with the reason.
    Adjustment {
        points: i64,
        reason: String,
    },
    /// A type Carrot does not know: attributes are kept as received.
    Other,
}

impl Event {
    /// The event this one reverses, if it is a reversal.
    pub fn reverses(&self) -> Option<&str> {
        match &self.attributes {
            Attributes::Reversal { original_event } => Some(original_event),
            _ => None,
        }
    }

    /// The envelope as JSON, in its canonical form (`occurred_at` in UTC).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "participant": self.participant,
            "type": self.event_type,
            "occurred_at": self.occurred_at.to_string(),
            "attributes": self.raw_attributes,
        })
    }
}

/// Validates one envelope. `path` prefixes field names in errors (`events[3]`), `now` is the
/// receiving clock used to refuse events from the future.
pub fn parse_event(value: &Value, path: &str, now: Timestamp) -> Result<Event, Vec<FieldError>> {
    let at = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let mut errors = FieldErrors::default();
    let Some(object) = value.as_object() else {
        let field = if path.is_empty() { "$" } else { path };
        return Err(vec![FieldError::new(
            field,
            format!("must be an event object, got {}", json_kind(value)),
        )]);
    };
    for key in object.keys() {
        if !ENVELOPE_FIELDS.contains(&key.as_str()) {
            let reason = if key == "program" {
                "is not part of the envelope: the program is implied by the signing key".into()
            } else {
                format!("is not an envelope field (expected one of {ENVELOPE_FIELDS:?})")
            };
            errors.push(at(key), reason);
        }
    }
    let id = required_string(object, "id", &at("id"), &mut errors);
    if let Some(id) = &id {
        check_identifier(&mut errors, &at("id"), id);
    }
    let participant = required_string(object, "participant", &at("participant"), &mut errors);
    if let Some(participant) = &participant {
        check_identifier(&mut errors, &at("participant"), participant);
    }
    let event_type = required_string(object, "type", &at("type"), &mut errors);
    if let Some(event_type) = &event_type
        && let Err(reason) = check_event_type(event_type)
    {
        errors.push(at("type"), reason);
    }
    let occurred_at = required_string(object, "occurred_at", &at("occurred_at"), &mut errors)
        .and_then(|text| match parse_rfc3339(&text) {
            Ok(instant) if instant > now + MAX_FUTURE_SKEW => {
                errors.push(
                    at("occurred_at"),
                    format!("{text} is in the future (receiving clock: {now})"),
                );
                None
            }
            Ok(instant) if instant < EARLIEST_OCCURRED_AT => {
                errors.push(
                    at("occurred_at"),
                    format!(
                        "{text} is before {EARLIEST_OCCURRED_AT}: not a time an event happened"
                    ),
                );
                None
            }
            Ok(instant) => Some(instant),
            Err(reason) => {
                errors.push(at("occurred_at"), reason);
                None
            }
        });
    // Attributes that are not an object are one error, not one per attribute they lack.
    let (raw_attributes, readable) = match object.get("attributes") {
        None => (Map::new(), true),
        Some(Value::Object(map)) => (map.clone(), true),
        Some(other) => {
            errors.push(
                at("attributes"),
                format!("must be an object, got {}", json_kind(other)),
            );
            (Map::new(), false)
        }
    };
    let attributes = event_type
        .as_deref()
        .filter(|_| readable)
        .and_then(|event_type| {
            let mut reader = AttributeReader {
                map: &raw_attributes,
                path: at("attributes"),
                errors: &mut errors,
            };
            reader.parse(event_type)
        });
    if let (Some(id), Some(Attributes::Reversal { original_event })) = (&id, &attributes)
        && id == original_event
    {
        errors.push(
            at("attributes.original_event"),
            "a reversal cannot name itself",
        );
    }
    if errors.is_empty() {
        let event = Event {
            id: id.expect("checked"),
            participant: participant.expect("checked"),
            event_type: event_type.expect("checked"),
            occurred_at: occurred_at.expect("checked"),
            attributes: attributes.expect("checked"),
            raw_attributes,
        };
        if event.to_json().to_string().len() > MAX_EVENT_BYTES {
            errors.push(
                if path.is_empty() { "$" } else { path },
                format!("event is larger than {MAX_EVENT_BYTES} bytes"),
            );
            return Err(errors.0);
        }
        return Ok(event);
    }
    Err(errors.0)
}

fn required_string(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<String> {
    match object.get(key) {
        None | Some(Value::Null) => {
            errors.push(field, "is required");
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(field, format!("must be a string, got {}", json_kind(other)));
            None
        }
    }
}

/// Event types are dotted lower-case names: `deal.registered`, `acme.webinar_attended`.
pub fn check_event_type(event_type: &str) -> Result<(), String> {
    let well_formed = event_type.len() <= 64
        && event_type.split('.').count() >= 2
        && event_type.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_lowercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "must be a dotted lower-case name like \"deal.registered\" (at most 64 characters), got {event_type:?}"
        ))
    }
}

/// RFC 3339 with an explicit offset (`Z` or `+01:00`); a local time without offset is refused
/// because its period would depend on a guess.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    let refused = || {
        format!(
            "must be an RFC 3339 timestamp with an offset, like 2026-11-03T09:15:00+01:00, got {text:?}"
        )
    };
    // RFC 3339 proper: `T` between date and time, seconds present, an offset of at most
    // ±23:59 or `Z`, nothing after it (jiff alone would also take ISO 8601 variants).
    let bytes = text.as_bytes();
    let shaped = bytes.len() >= 20
        && matches!(bytes[10], b'T' | b't')
        && bytes[13] == b':'
        && bytes[16] == b':'
        && !text.contains('[');
    let offset_ok = if text.ends_with(['Z', 'z']) {
        true
    } else {
        // `get`: the last six bytes may start inside a multi-byte character (then no offset).
        let offset = text.get(text.len().saturating_sub(6)..).unwrap_or_default();
        let b = offset.as_bytes();
        b.len() == 6
            && matches!(b[0], b'+' | b'-')
            && b[3] == b':'
            && offset[1..3].parse::<u8>().is_ok_and(|h| h <= 23)
            && offset[4..6].parse::<u8>().is_ok_and(|m| m <= 59)
    };
    if !shaped || !offset_ok {
        return Err(refused());
    }
    text.parse::<Timestamp>()
        .map_err(|e| format!("{} ({e})", refused()))
}

struct AttributeReader<'a> {
    map: &'a Map<String, Value>,
    path: String,
    errors: &'a mut FieldErrors,
}

impl<'a> AttributeReader<'a> {
    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    /// Reads the attributes of `event_type`. Every field is read before any `?`, so one call
    /// reports all of the event's attribute errors.
    fn parse(&mut self, event_type: &str) -> Option<Attributes> {
        let attributes = match event_type {
            "portal.login" => Attributes::PortalLogin,
            "deal.registered" => {
                let deal_id = self.id("deal_id");
                let amount = match self.map.contains_key("amount") {
                    true => {
                        let (amount, currency) = (self.amount("amount"), self.currency());
                        Some((amount?, currency?))
                    }
                    false => None,
                };
                Attributes::DealRegistered {
                    deal_id: deal_id?,
                    amount,
                }
            }
            "contract.started" => {
                let contract_id = self.id("contract_id");
                let financed_volume = self.amount("financed_volume");
                let currency = self.currency();
                Attributes::ContractStarted {
                    contract_id: contract_id?,
                    financed_volume: financed_volume?,
                    currency: currency?,
                }
            }
            "sale.closed" => {
                let amount = self.amount("amount");
                let currency = self.currency();
                let products = self.products();
                Attributes::SaleClosed {
                    amount: amount?,
                    currency: currency?,
                    products: products?,
                }
            }
            "quiz.completed" => {
                let quiz_id = self.id("quiz_id");
                let questions = self.count("questions", 1, 50);
                let correct = self.count("correct", 0, 50);
                let (questions, correct) = (questions?, correct?);
                if correct > questions {
                    let field = self.field("correct");
                    let reason = format!("must not exceed questions ({questions}), got {correct}");
                    self.errors.push(field, reason);
                }
                Attributes::QuizCompleted {
                    quiz_id: quiz_id?,
                    correct,
                    questions,
                }
            }
            "lead.submitted" => {
                let lead_id = self.id("lead_id");
                let company = self.text("company");
                Attributes::LeadSubmitted {
                    lead_id: lead_id?,
                    company: company?,
                }
            }
            "training.completed" => Attributes::TrainingCompleted {
                course_id: self.id("course_id")?,
            },
            "profile.completed" => Attributes::ProfileCompleted,
            "survey.answered" => Attributes::SurveyAnswered {
                survey_id: self.id("survey_id")?,
            },
            "crm.activity_logged" => {
                let activity = self.text("activity");
                let recorded_at = self.timestamp("recorded_at");
                Attributes::CrmActivityLogged {
                    activity: activity?,
                    recorded_at: recorded_at?,
                }
            }
            "deal.cancelled" | "contract.cancelled" => Attributes::Reversal {
                original_event: self.id("original_event")?,
            },
            ADJUSTMENT_TYPE | BONUS_TYPE => {
                let points = self.points("points");
                let reason = self.text("reason");
                Attributes::Adjustment {
                    points: points?,
                    reason: reason?,
                }
            }
            _ => Attributes::Other,
        };
        Some(attributes)
    }

    fn get(&mut self, name: &str) -> Option<&'a Value> {
        match self.map.get(name) {
            None | Some(Value::Null) => {
                let field = self.field(name);
                self.errors.push(field, "is required");
                None
            }
            Some(value) => Some(value),
        }
    }

    /// A required non-empty string of at most 256 characters.
    fn text(&mut self, name: &str) -> Option<String> {
        let field = self.field(name);
        match self.get(name)? {
            Value::String(s) if s.trim().is_empty() => {
                self.errors.push(field, "must not be empty");
                None
            }
            Value::String(s) if s.chars().count() > 256 => {
                self.errors.push(field, "must be at most 256 characters");
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                let reason = format!("must be a string, got {}", json_kind(other));
                self.errors.push(field, reason);
                None
            }
        }
    }

    /// A required identifier from the source system.
    fn id(&mut self, name: &str) -> Option<String> {
        let value = self.text(name)?;
        let before = self.errors.0.len();
        check_identifier(self.errors, &self.field(name), &value);
        (self.errors.0.len() == before).then_some(value)
    }

    fn amount(&mut self, name: &str) -> Option<Decimal> {
        let field = self.field(name);
        let value = self.get(name)?;
        parse_amount(value)
            .map_err(|reason| self.errors.push(field, reason))
            .ok()
    }

    fn currency(&mut self) -> Option<Currency> {
        let code = self.text("currency")?;
        Currency::parse(&code)
            .map_err(|reason| self.errors.push(self.field("currency"), reason))
            .ok()
    }

    fn count(&mut self, name: &str, min: u32, max: u32) -> Option<u32> {
        let field = self.field(name);
        let value = self.get(name)?;
        match value.as_u64() {
            Some(n) if (min as u64..=max as u64).contains(&n) => Some(n as u32),
            _ => {
                let reason = format!("must be a whole number from {min} to {max}, got {value}");
                self.errors.push(field, reason);
                None
            }
        }
    }

    /// Non-zero whole points within what one event may carry.
    fn points(&mut self, name: &str) -> Option<i64> {
        let field = self.field(name);
        let value = self.get(name)?;
        let max = super::program::MAX_POINTS_PER_EVENT;
        match value.as_i64() {
            Some(n) if n != 0 && n.abs() <= max => Some(n),
            _ => {
                let reason =
                    format!("must be non-zero whole points from -{max} to {max}, got {value}");
                self.errors.push(field, reason);
                None
            }
        }
    }

    fn timestamp(&mut self, name: &str) -> Option<Timestamp> {
        let text = self.text(name)?;
        parse_rfc3339(&text)
            .map_err(|reason| self.errors.push(self.field(name), reason))
            .ok()
    }

    fn products(&mut self) -> Option<Vec<Product>> {
        let field = self.field("products");
        let value = self.get("products")?;
        let Some(items) = value.as_array().filter(|items| !items.is_empty()) else {
            let reason = format!(
                "must be a non-empty array of {{\"sku\", \"quantity\"}}, got {}",
                json_kind(value)
            );
            self.errors.push(field, reason);
            return None;
        };
        let before = self.errors.0.len();
        let mut products = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_field = format!("{field}[{i}]");
            let sku = item
                .get("sku")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let quantity = match item.get("quantity") {
                None => Some(1),
                Some(q) => q.as_u64().filter(|q| (1..=1_000_000).contains(q)),
            };
            match (sku, quantity) {
                (Some(sku), Some(quantity)) => products.push(Product {
                    sku: sku.to_owned(),
                    quantity: quantity as u32,
                }),
                (None, _) => self.errors.push(
                    format!("{item_field}.sku"),
                    "is required (a non-empty string)",
                ),
                (_, None) => self.errors.push(
                    format!("{item_field}.quantity"),
                    "must be a whole number from 1 to 1000000",
                ),
            }
        }
        (self.errors.0.len() == before).then_some(products)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_contract_parses_with_exact_volume() {
        let event = parse_event(
            &json!({"id": "c-1", "participant": "rep-1", "type": "contract.started",
                "occurred_at": "2026-11-03T09:15:00+01:00",
                "attributes": {"contract_id": "K-9", "financed_volume": "250000.50", "currency": "SEK"}}),
            "",
            now(),
        )
        .unwrap();
        match event.attributes {
            Attributes::ContractStarted {
                financed_volume, ..
            } => assert_eq!(financed_volume.to_string(), "250000.5"),
            other => panic!("{other:?}"),
        }
        assert_eq!(event.occurred_at.to_string(), "2026-11-03T08:15:00Z");
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let errors = parse_event(
            &json!({"id": "", "participant": 7, "type": "Deal", "occurred_at": "2026-11-03 09:15",
                "program": "other"}),
            "events[2]",
            now(),
        )
        .unwrap_err();
        let mut got = fields(errors);
        got.sort();
        assert_eq!(
            got,
            [
                "events[2].id",
                "events[2].occurred_at",
                "events[2].participant",
                "events[2].program",
                "events[2].type"
            ]
        );
    }

    #[test]
    fn typed_attributes_are_checked() {
        let errors = parse_event(
            &json!({"id": "s-1", "participant": "rep-1", "type": "sale.closed",
                "occurred_at": "2026-11-03T09:15:00Z",
                "attributes": {"amount": "-3", "currency": "sek", "products": [{"quantity": 0}]}}),
            "",
            now(),
        )
        .unwrap_err();
        let got = fields(errors);
        assert!(got.contains(&"attributes.amount".to_owned()), "{got:?}");
        assert!(got.contains(&"attributes.currency".to_owned()), "{got:?}");
        assert!(
            got.contains(&"attributes.products[0].sku".to_owned()),
            "{got:?}"
        );
    }

    #[test]
    fn unknown_types_are_accepted_with_any_attributes() {
        let event = parse_event(
            &json!({"id": "w-1", "participant": "rep-1", "type": "acme.webinar_attended",
                "occurred_at": "2026-11-03T09:15:00Z", "attributes": {"webinar": 12}}),
            "",
            now(),
        )
        .unwrap();
        assert_eq!(event.attributes, Attributes::Other);
        assert_eq!(event.raw_attributes["webinar"], 12);
    }

    #[test]
    fn future_events_and_self_reversals_are_refused() {
        let errors = parse_event(
            &json!({"id": "d-1", "participant": "rep-1", "type": "deal.cancelled",
                "occurred_at": "2026-11-23T12:00:00Z", "attributes": {"original_event": "d-1"}}),
            "",
            now(),
        )
        .unwrap_err();
        let got = fields(errors);
        assert_eq!(got, ["occurred_at", "attributes.original_event"]);
    }

    #[test]
    fn quiz_scores_must_be_consistent() {
        let errors = parse_event(
            &json!({"id": "q-1", "participant": "rep-1", "type": "quiz.completed",
                "occurred_at": "2026-11-03T09:15:00Z",
                "attributes": {"quiz_id": "welcome", "questions": 5, "correct": 6}}),
            "",
            now(),
        )
        .unwrap_err();
        assert_eq!(fields(errors), ["attributes.correct"]);
    }

    #[test]
    fn canonical_json_round_trips() {
        let value = json!({"id": "l-1", "participant": "rep-1", "type": "portal.login",
            "occurred_at": "2026-11-03T09:15:00+01:00"});
        let event = parse_event(&value, "", now()).unwrap();
        let again = parse_event(&event.to_json(), "", now()).unwrap();
        assert_eq!(event, again);
    }

    #[test]
    fn offsets_are_required() {
        assert!(parse_rfc3339("2026-11-03T09:15:00").is_err());
        assert!(parse_rfc3339("2026-11-03T09:15:00-05:00").is_ok());
        assert!(parse_rfc3339("2026-11-03T09:15:00.123Z").is_ok());
        for lenient in [
            "2026-11-03 09:15:00Z",
            "2026-11-03T09:15Z",
            "2026-11-03T09:15:00+25:00",
            "2026-11-03T09:15:00+01:00[Europe/Stockholm]",
        ] {
            assert!(parse_rfc3339(lenient).is_err(), "{lenient}");
        }
    }
}
