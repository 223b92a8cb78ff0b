//! Participants as enrolled by the program: who they are, where they sell, how to reach them,
//! and what an enrolment (one API call or one imported row) changes about a stored one.

use super::envelope::parse_rfc3339;
use super::error::{FieldError, FieldErrors};
use super::money::json_kind;
use super::period::time_zone;
use jiff::Timestamp;
use jiff::civil::Date;
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
    /// A partner account holds the partner's points, which its admin transfers to the team.
    #[serde(default, skip_serializing_if = "AccountKind::is_individual")]
    pub account: AccountKind,
}

/// Release Points' two levels: a rep's own account, or a partner's account whose points the
/// partner's admin distributes to the reps of the same distributor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    #[default]
    Individual,
    Partner,
}

impl AccountKind {
    pub fn is_individual(&self) -> bool {
        *self == AccountKind::Individual
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Individual => "individual",
            AccountKind::Partner => "partner",
        }
    }
}

/// The distributor sales manager who hears about the rep's notices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    pub name: String,
    pub email: String,
}

const PROFILE_FIELDS: [&str; 12] = [
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
    "account",
];

impl Profile {
    /// Every field of a profile, as stored on the participant.
    pub const FIELDS: [&str; 12] = PROFILE_FIELDS;

    /// The fields a profile may leave out; an update that leaves one out removes it.
    pub const OPTIONAL_FIELDS: [&str; 5] = ["phone", "region", "tier", "manager", "account"];

    /// Validates an enrolment body, reporting every error with its path.
    pub fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        let object = object_of(value)?;
        let mut errors = FieldErrors::default();
        for key in object
            .keys()
            .filter(|k| !PROFILE_FIELDS.contains(&k.as_str()))
        {
            errors.push(
                key.clone(),
                format!("is not a profile field (expected one of {PROFILE_FIELDS:?})"),
            );
        }
        let profile = Self::fields(object, &mut errors);
        errors.into_result(()).map(|()| profile.expect("checked"))
    }

    /// The profile's fields of `object` (other keys are the caller's to check).
    fn fields(object: &Map<String, Value>, errors: &mut FieldErrors) -> Option<Self> {
        let errors_before = errors.0.len();
        let name = text(object, "name", "name", true, errors);
        let email = text(object, "email", "email", true, errors);
        if let Some(email) = &email {
            check_email(errors, "email", email);
        }
        let phone = text(object, "phone", "phone", false, errors);
        if let Some(phone) = &phone
            && !is_e164(phone)
        {
            errors.push(
                "phone",
                format!("must be an E.164 number like +46701234567, got {phone:?}"),
            );
        }
        let locale = text(object, "locale", "locale", true, errors);
        let zone = text(object, "time_zone", "time_zone", true, errors);
        if let Some(zone) = &zone
            && let Err(reason) = time_zone(zone)
        {
            errors.push("time_zone", reason);
        }
        let role = text(object, "role", "role", true, errors);
        let distributor = text(object, "distributor", "distributor", true, errors);
        let location = text(object, "location", "location", true, errors);
        let region = text(object, "region", "region", false, errors);
        let tier = text(object, "tier", "tier", false, errors);
        let manager = match object.get("manager") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let name = text(m, "name", "manager.name", true, errors);
                let email = text(m, "email", "manager.email", true, errors);
                if let Some(email) = &email {
                    check_email(errors, "manager.email", email);
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
        let account = match text(object, "account", "account", false, errors).as_deref() {
            None | Some("individual") => AccountKind::Individual,
            Some("partner") => AccountKind::Partner,
            Some(other) => {
                errors.push(
                    "account",
                    format!("must be individual or partner, got {other:?}"),
                );
                AccountKind::Individual
            }
        };
        (errors.0.len() == errors_before).then(|| Profile {
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
            account,
        })
    }
}

/// A participant's standing in the program. The non-use policy (the stick) suspends or
/// terminates; an administrator may too, through an enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Suspended,
    Terminated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Terminated => "terminated",
        }
    }

    fn parse(text: &str) -> Option<Status> {
        [Status::Active, Status::Suspended, Status::Terminated]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What one enrolment asks for: the profile, and optionally when the participant joined (kept
/// only when this creates them) and their status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolling {
    pub profile: Profile,
    /// Backdates a new participant (a rep who joined in March is in month 9 of their
    /// journey); ignored for an existing one, whose enrolment date never moves.
    pub enrolled_at: Option<Timestamp>,
    pub status: Option<Status>,
}

/// A bare profile: enrolled now if new, status untouched.
impl From<&Profile> for Enrolling {
    fn from(profile: &Profile) -> Self {
        Enrolling {
            profile: profile.clone(),
            enrolled_at: None,
            status: None,
        }
    }
}

/// The fields an enrolment adds to the profile's.
const ENROLMENT_FIELDS: [&str; 2] = ["enrolled_at", "status"];

impl Enrolling {
    /// Validates a profile with the optional `enrolled_at` (RFC 3339, or a date meaning its
    /// first moment in the participant's time zone; not after `now`) and `status`. Keys in
    /// `extra` are accepted and left to the caller (an import row's `participant`).
    pub fn from_json(
        value: &Value,
        extra: &[&str],
        now: Timestamp,
    ) -> Result<Self, Vec<FieldError>> {
        let object = object_of(value)?;
        let mut errors = FieldErrors::default();
        for key in object.keys().filter(|k| {
            !PROFILE_FIELDS.contains(&k.as_str())
                && !ENROLMENT_FIELDS.contains(&k.as_str())
                && !extra.contains(&k.as_str())
        }) {
            errors.push(
                key.clone(),
                format!(
                    "is not an enrolment field (expected one of {PROFILE_FIELDS:?} or {ENROLMENT_FIELDS:?})"
                ),
            );
        }
        let profile = Profile::fields(object, &mut errors);
        let enrolled_at =
            text(object, "enrolled_at", "enrolled_at", false, &mut errors).and_then(|text| {
                let zone = profile.as_ref().and_then(|p| time_zone(&p.time_zone).ok());
                // jiff reads a date out of a whole timestamp too: a date is exactly 10 long.
                let date = (text.len() == 10)
                    .then(|| text.parse::<Date>().ok())
                    .flatten();
                let at = match (date, zone) {
                    (Some(date), Some(zone)) => date
                        .to_zoned(zone)
                        .map(|z| z.timestamp())
                        .map_err(|e| e.to_string()),
                    (Some(_), None) => Err("a date needs a valid time_zone".to_owned()),
                    (None, _) => parse_rfc3339(&text)
                        .map_err(|reason| format!("{reason}, or a date like 2026-03-01")),
                };
                match at {
                    Ok(at) if at > now => {
                        errors.push("enrolled_at", format!("{text} is in the future"));
                        None
                    }
                    Ok(at) => Some(at),
                    Err(reason) => {
                        errors.push("enrolled_at", reason);
                        None
                    }
                }
            });
        let status = text(object, "status", "status", false, &mut errors).and_then(|text| {
            let status = Status::parse(&text);
            if status.is_none() {
                errors.push(
                    "status",
                    format!("must be active, suspended or terminated, got {text:?}"),
                );
            }
            status
        });
        errors.into_result(()).map(|()| Enrolling {
            profile: profile.expect("checked"),
            enrolled_at,
            status,
        })
    }

    /// What this enrolment changes about the stored participant (`None`: not enrolled).
    pub fn decide(&self, stored: Option<&Stored>) -> Decision {
        let Some(stored) = stored else {
            return Decision {
                outcome: Outcome::Created,
                status: Some(self.status.unwrap_or(Status::Active)),
                note: None,
            };
        };
        let mut note = None;
        let status = match self.status {
            Some(wanted) if wanted.as_str() == stored.status => None,
            // A CRM export says `active` for everyone: it must not undo the stick's sanction,
            // which only the reinstate route lifts (and tells the portal).
            Some(Status::Active) if stored.sanctioned_for.is_some() => {
                note = Some(format!(
                    "status stays {}: the non-use policy sanctioned the participant for {}; POST /v1/programs/{{program}}/participants/{{participant}}/reinstate makes them active again",
                    stored.status,
                    stored.sanctioned_for.as_deref().unwrap_or_default()
                ));
                None
            }
            wanted => wanted,
        };
        let outcome = if status.is_some() || stored.profile != self.profile {
            Outcome::Updated
        } else {
            Outcome::Unchanged
        };
        Decision {
            outcome,
            status,
            note,
        }
    }
}

/// A stored participant as an enrolment sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Stored {
    #[serde(flatten)]
    pub profile: Profile,
    pub status: String,
    /// The period the stick sanctioned them for, until they are reinstated.
    #[serde(default)]
    pub sanctioned_for: Option<String>,
    /// The last enrolment's time: a write is conditioned on it, so two enrolments of one
    /// participant never interleave.
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// What to write: nothing when unchanged; the profile, and the status when `Some`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub status: Option<Status>,
    /// Why a status asked for was not applied.
    pub note: Option<String>,
}

fn object_of(value: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    value.as_object().ok_or_else(|| {
        vec![FieldError::new(
            "$",
            format!("must be an object, got {}", json_kind(value)),
        )]
    })
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

/// A deliberately plain check: one `@`, a dotted domain, no spaces or control characters (a
/// NUL or an escape would be stored, then refused by every mail header). Deliverability is
/// SES's job.
fn check_email(errors: &mut FieldErrors, field: &str, email: &str) {
    let valid = email.len() <= 254
        && !email.contains(|c: char| c.is_whitespace() || c.is_control())
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

    fn anna() -> Profile {
        Profile::from_json(&json!({
            "name": "Anna Berg", "email": "anna@nordic-dealer.example", "locale": "sv-SE",
            "time_zone": "Europe/Stockholm", "role": "sales_rep", "distributor": "nordic",
            "location": "nordic-sthlm"
        }))
        .unwrap()
    }

    fn stored(status: &str, sanctioned_for: Option<&str>) -> Stored {
        Stored {
            profile: anna(),
            status: status.into(),
            sanctioned_for: sanctioned_for.map(Into::into),
            updated_at: Some("2026-11-01T00:00:00Z".into()),
        }
    }

    fn enrolling(status: Option<Status>) -> Enrolling {
        Enrolling {
            status,
            ..Enrolling::from(&anna())
        }
    }

    #[test]
    fn an_enrolment_creates_updates_or_changes_nothing() {
        let created = enrolling(None).decide(None);
        assert_eq!(
            (created.outcome, created.status),
            (Outcome::Created, Some(Status::Active))
        );
        let suspended_from_the_start = enrolling(Some(Status::Suspended)).decide(None);
        assert_eq!(suspended_from_the_start.status, Some(Status::Suspended));
        let same = enrolling(None).decide(Some(&stored("active", None)));
        assert_eq!((same.outcome, same.status), (Outcome::Unchanged, None));
        let same_status = enrolling(Some(Status::Active)).decide(Some(&stored("active", None)));
        assert_eq!(same_status.outcome, Outcome::Unchanged);
        let mut moved = enrolling(None);
        moved.profile.location = "nordic-gbg".into();
        assert_eq!(
            moved.decide(Some(&stored("active", None))).outcome,
            Outcome::Updated
        );
        let mut partner = enrolling(None);
        partner.profile.account = AccountKind::Partner;
        assert_eq!(
            partner.decide(Some(&stored("active", None))).outcome,
            Outcome::Updated
        );
    }

    #[test]
    fn only_the_reinstate_route_lifts_the_sticks_sanction() {
        // An administrator's suspension is lifted by an enrolment saying active...
        let lifted = enrolling(Some(Status::Active)).decide(Some(&stored("suspended", None)));
        assert_eq!(
            (lifted.outcome, lifted.status),
            (Outcome::Updated, Some(Status::Active))
        );
        // ...the non-use policy's is not (a CRM export says active for everyone).
        let held =
            enrolling(Some(Status::Active)).decide(Some(&stored("suspended", Some("2026-10"))));
        assert_eq!((held.outcome, held.status), (Outcome::Unchanged, None));
        assert!(held.note.unwrap().contains("reinstate"));
        // Going further is an administrator's call either way.
        let terminated =
            enrolling(Some(Status::Terminated)).decide(Some(&stored("suspended", Some("2026-10"))));
        assert_eq!(terminated.status, Some(Status::Terminated));
    }

    #[test]
    fn an_enrolment_may_backdate_and_set_a_status() {
        let now: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut body = json!({
            "name": "Anna Berg", "email": "anna@nordic-dealer.example", "locale": "sv-SE",
            "time_zone": "America/New_York", "role": "sales_rep", "distributor": "nordic",
            "location": "nordic-sthlm", "enrolled_at": "2026-03-01", "status": "terminated",
            "account": "partner"
        });
        let read = Enrolling::from_json(&body, &[], now).unwrap();
        assert_eq!(
            read.enrolled_at.unwrap().to_string(),
            "2026-03-01T05:00:00Z"
        );
        assert_eq!(read.status, Some(Status::Terminated));
        assert_eq!(read.profile.account, AccountKind::Partner);
        body["enrolled_at"] = json!("2026-12-01T00:00:00Z");
        body["status"] = json!("gone");
        body["account"] = json!("team");
        body["participant"] = json!("rep-1");
        let errors = Enrolling::from_json(&body, &[], now).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["participant", "account", "enrolled_at", "status"]);
        assert!(Profile::from_json(&json!({"enrolled_at": "2026-01-01"})).is_err());
    }

    #[test]
    fn e164() {
        assert!(is_e164("+46701234567"));
        assert!(!is_e164("+0701234567"));
        assert!(!is_e164("46701234567"));
        assert!(!is_e164("+4670123456789012"));
    }
}
