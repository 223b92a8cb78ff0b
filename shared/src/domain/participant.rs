//! Participants as enrolled by the program: who they are, where they sell, how to reach them.

use super::error::{FieldError, FieldErrors};
use super::money::json_kind;
use super::period::time_zone;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The enrolment profile of a rep. Contact details are personal data: never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub locale: String,
    pub time_zone: String,
    pub role: String,
    pub distributor: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The program tier (e.g. `gold`) the program assigns; rules may match on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<Manager>,
}

/// The distributor sales manager who hears about the rep's notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    pub name: String,
    pub email: String,
}

const PROFILE_FIELDS: [&str; 11] = [
    "name",
    "email",
    "phone",
    "locale",
    "time_zone",
    "role",
    "distributor",
    "location",
    "region",
    "tier",
    "manager",
];

impl Profile {
    /// The fields a profile may leave out; an update that leaves one out removes it.
    pub const OPTIONAL_FIELDS: [&str; 4] = ["phone", "region", "tier", "manager"];

    /// Validates an enrolment body, reporting every error with its path.
    pub fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let Some(object) = value.as_object() else {
            return Err(vec![FieldError::new(
                "$",
                format!("must be an object, got {}", json_kind(value)),
            )]);
        };
        for key in object
            .keys()
            .filter(|k| !PROFILE_FIELDS.contains(&k.as_str()))
        {
            errors.push(
                key.clone(),
                format!("is not a profile field (expected one of {PROFILE_FIELDS:?})"),
            );
        }
        let name = text(object, "name", "name", true, &mut errors);
        let email = text(object, "email", "email", true, &mut errors);
        if let Some(email) = &email {
            check_email(&mut errors, "email", email);
        }
        let phone = text(object, "phone", "phone", false, &mut errors);
        if let Some(phone) = &phone
            && !is_e164(phone)
        {
            errors.push(
                "phone",
                format!("must be an E.164 number like +46701234567, got {phone:?}"),
            );
        }
        let locale = text(object, "locale", "locale", true, &mut errors);
        let zone = text(object, "time_zone", "time_zone", true, &mut errors);
        if let Some(zone) = &zone
            && let Err(reason) = time_zone(zone)
        {
            errors.push("time_zone", reason);
        }
        let role = text(object, "role", "role", true, &mut errors);
        let distributor = text(object, "distributor", "distributor", true, &mut errors);
        let location = text(object, "location", "location", true, &mut errors);
        let region = text(object, "region", "region", false, &mut errors);
        let tier = text(object, "tier", "tier", false, &mut errors);
        let manager = match object.get("manager") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let name = text(m, "name", "manager.name", true, &mut errors);
                let email = text(m, "email", "manager.email", true, &mut errors);
                if let Some(email) = &email {
                    check_email(&mut errors, "manager.email", email);
                }
                name.zip(email).map(|(name, email)| Manager { name, email })
            }
            Some(other) => {
                errors.push(
                    "manager",
                    format!(
                        "must be an object with name and email, got {}",
                        json_kind(other)
                    ),
                );
                None
            }
        };
        let profile = errors.is_empty().then(|| Profile {
            name: name.expect("checked"),
            email: email.expect("checked"),
            phone,
            locale: locale.expect("checked"),
            time_zone: zone.expect("checked"),
            role: role.expect("checked"),
            distributor: distributor.expect("checked"),
            location: location.expect("checked"),
            region,
            tier,
            manager,
        });
        errors.into_result(()).map(|()| profile.expect("checked"))
    }
}

fn text(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<String> {
    match object.get(key) {
        None | Some(Value::Null) if required => {
            errors.push(field, "is required");
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(field, "must not be empty");
            None
        }
        Some(Value::String(s)) if s.chars().count() > 200 => {
            errors.push(field, "must be at most 200 characters");
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(other) => {
            errors.push(field, format!("must be a string, got {}", json_kind(other)));
            None
        }
    }
}

/// A deliberately plain check: one `@`, a dotted domain, no spaces. Deliverability is SES's job.
fn check_email(errors: &mut FieldErrors, field: &str, email: &str) {
    let valid = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.ends_with('.')
        });
    if !valid {
        errors.push(field, "must be an e-mail address like rep@dealer.example");
    }
}

/// E.164: `+`, a non-zero country digit, 7 to 15 digits in all.
pub fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_profile_parses() {
        let profile = Profile::from_json(&json!({
            "name": "Anna Berg", "email": "anna@nordic-dealer.example", "phone": "+46701234567",
            "locale": "sv-SE", "time_zone": "Europe/Stockholm", "role": "sales_rep",
            "distributor": "nordic", "location": "nordic-sthlm", "region": "nordics",
            "manager": {"name": "Erik Lund", "email": "erik@nordic-dealer.example"}
        }))
        .unwrap();
        assert_eq!(profile.manager.unwrap().name, "Erik Lund");
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = Profile::from_json(&json!({
            "name": "", "email": "not-an-address", "phone": "0701234567", "locale": "en",
            "time_zone": "Nowhere/City", "role": 3, "distributor": "d", "location": "l",
            "manager": {"email": "m@x"}, "shoe_size": 44
        }))
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "shoe_size",
                "name",
                "email",
                "phone",
                "time_zone",
                "role",
                "manager.name",
                "manager.email"
            ]
        );
    }

    #[test]
    fn e164() {
        assert!(is_e164("+46701234567"));
        assert!(!is_e164("+0701234567"));
        assert!(!is_e164("46701234567"));
        assert!(!is_e164("+4670123456789012"));
    }
}
