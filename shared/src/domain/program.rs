//! Program configuration v1: identity, time zone, locale and the per-type points table.
//!
//! The points table is the seam the rules engine replaces: award code asks the program what
//! an event earns and under which rule and version, never the table directly.

use super::envelope::{Event, check_event_type};
use super::error::{FieldError, FieldErrors};
use super::money::json_kind;
use super::period::time_zone;
use jiff::tz::TimeZone;
use serde_json::Value;
use std::collections::BTreeMap;

/// Largest award (or penalty) one event may carry.
pub const MAX_POINTS_PER_EVENT: i64 = 1_000_000;
const FIELDS: [&str; 5] = ["program", "name", "time_zone", "locale", "points"];

#[derive(Debug, Clone)]
pub struct Program {
    pub id: String,
    pub name: String,
    pub time_zone: TimeZone,
    pub time_zone_name: String,
    pub locale: String,
    /// Stored version of this configuration; every ledger entry names it.
    pub version: u32,
    points: BTreeMap<String, i64>,
    /// The document as validated, stored verbatim so a version can be read back.
    pub document: Value,
}

/// Which rule, at which version, produced a ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleRef {
    pub id: String,
    pub version: u32,
}

/// What an event earns before any stored state is considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earning {
    pub points: i64,
    /// `None` when no rule names the event's type: recorded, earns nothing.
    pub rule: Option<RuleRef>,
}

impl Program {
    /// Parses a YAML or JSON document (YAML is a superset of JSON).
    pub fn parse(text: &str, version: u32) -> Result<Self, Vec<FieldError>> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
            vec![FieldError::new(
                "$",
                format!("is not valid YAML or JSON: {e}"),
            )]
        })?;
        Self::from_document(value, version)
    }

    /// Validates a document, reporting every error with its path.
    pub fn from_document(document: Value, version: u32) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let Some(object) = document.as_object() else {
            return Err(vec![FieldError::new(
                "$",
                format!("must be an object, got {}", json_kind(&document)),
            )]);
        };
        for key in object.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
            errors.push(
                key.clone(),
                format!("is not a program field (expected one of {FIELDS:?})"),
            );
        }
        let mut text = |key: &str, required: bool| match object.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            None if !required => None,
            Some(other) => {
                errors.push(
                    key,
                    format!("must be a non-empty string, got {}", json_kind(other)),
                );
                None
            }
            None => {
                errors.push(key, "is required");
                None
            }
        };
        let id = text("program", true);
        let name = text("name", true);
        let zone_name = text("time_zone", true);
        let locale = text("locale", false).unwrap_or_else(|| "en".to_owned());
        if let Some(id) = &id
            && let Err(reason) = check_program_id(id)
        {
            errors.push("program", reason);
        }
        let zone = zone_name.as_deref().and_then(|name| {
            time_zone(name)
                .map_err(|e| errors.push("time_zone", e))
                .ok()
        });
        let mut points = BTreeMap::new();
        match object.get("points") {
            None => {}
            Some(Value::Object(table)) => {
                for (event_type, value) in table {
                    let field = format!("points[{event_type:?}]");
                    if let Err(reason) = check_event_type(event_type) {
                        errors.push(field.clone(), reason);
                    }
                    match value.as_i64() {
                        Some(p) if p.abs() <= MAX_POINTS_PER_EVENT => {
                            points.insert(event_type.clone(), p);
                        }
                        _ => errors.push(
                            field,
                            format!(
                                "must be whole points from -{MAX_POINTS_PER_EVENT} to {MAX_POINTS_PER_EVENT}, got {value}"
                            ),
                        ),
                    }
                }
            }
            Some(other) => errors.push(
                "points",
                format!("must map event types to points, got {}", json_kind(other)),
            ),
        }
        for reversal in ["deal.cancelled", "contract.cancelled"] {
            if points.contains_key(reversal) {
                errors.push(
                    format!("points[{reversal:?}]"),
                    "reversals earn nothing themselves: they claw back what the original earned",
                );
            }
        }
        let program = errors.is_empty().then(|| Program {
            id: id.expect("checked"),
            name: name.expect("checked"),
            time_zone: zone.expect("checked"),
            time_zone_name: zone_name.expect("checked"),
            locale,
            version,
            points,
            document: document.clone(),
        });
        errors.into_result(()).map(|()| program.expect("checked"))
    }

    /// What `event` earns under this version of the program.
    pub fn earning(&self, event: &Event) -> Earning {
        match self.points.get(&event.event_type) {
            Some(&points) => Earning {
                points,
                rule: Some(RuleRef {
                    id: format!("points.{}", event.event_type),
                    version: self.version,
                }),
            },
            None => Earning {
                points: 0,
                rule: None,
            },
        }
    }
}

/// Program ids appear in keys and URLs: lower-case letters, digits and dashes.
pub fn check_program_id(id: &str) -> Result<(), String> {
    let ok = (2..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(())
        .ok_or_else(|| format!("must be 2 to 63 lower-case letters, digits or dashes, got {id:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::envelope::parse_event;
    use serde_json::json;

    const DEMO: &str = "
program: acme
name: ACME Channel Stars
time_zone: Europe/Stockholm
locale: sv-SE
points:
  portal.login: 5
  deal.registered: 50
";

    #[test]
    fn a_yaml_program_earns_by_type_and_names_its_rule_version() {
        let program = Program::parse(DEMO, 3).unwrap();
        let now = "2026-11-22T12:00:00Z".parse().unwrap();
        let login = parse_event(
            &json!({"id": "e", "participant": "p", "type": "portal.login", "occurred_at": "2026-11-01T08:00:00Z"}),
            "",
            now,
        )
        .unwrap();
        assert_eq!(
            program.earning(&login),
            Earning {
                points: 5,
                rule: Some(RuleRef {
                    id: "points.portal.login".into(),
                    version: 3
                })
            }
        );
        let other = parse_event(
            &json!({"id": "e", "participant": "p", "type": "acme.webinar", "occurred_at": "2026-11-01T08:00:00Z"}),
            "",
            now,
        )
        .unwrap();
        assert_eq!(program.earning(&other).points, 0);
        assert_eq!(program.earning(&other).rule, None);
    }

    #[test]
    fn every_error_is_listed_with_its_path() {
        let errors = Program::parse(
            "program: ACME\ntime_zone: Mars/Base\npoints:\n  Login: 5\n  deal.registered: lots\n  deal.cancelled: 1\ncolour: red\n",
            1,
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "colour",
            "name",
            "program",
            "time_zone",
            "points[\"Login\"]",
            "points[\"deal.registered\"]",
            "points[\"deal.cancelled\"]",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn malformed_yaml_is_one_clear_error() {
        let errors = Program::parse("program: [", 1).unwrap_err();
        assert_eq!(errors[0].field, "$");
    }
}
