//! The earning rules of a program configuration, as validated: what matches, what it earns,
//! how it is shaped (quality factors, campaigns, rounding) and bounded (caps, budgets, once,
//! milestones, streaks). Parsing reports every error with its path (`rules[3].award.per`).
//! Evaluation lives in `engine`.

use super::envelope::parse_rfc3339;
use super::error::FieldErrors;
use super::money::json_kind;
use super::program::MAX_POINTS_PER_EVENT;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::str::FromStr;

/// The calendar periods caps, budgets and streaks count in (in the program's time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
    Quarter,
    Year,
    Lifetime,
}

impl Period {
    const NAMES: [(&'static str, Period); 6] = [
        ("day", Period::Day),
        ("week", Period::Week),
        ("month", Period::Month),
        ("quarter", Period::Quarter),
        ("year", Period::Year),
        ("lifetime", Period::Lifetime),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(n, _)| *n)
            .expect("every period is named")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Toward zero: 12.9 → 12, −12.9 → −12.
    Down,
    /// Away from zero: 12.1 → 13.
    Up,
    /// To the nearest, halves away from zero: 12.5 → 13.
    Nearest,
    /// To the nearest, halves to the even neighbour: 12.5 → 12, 13.5 → 14.
    HalfEven,
}

/// What a matching event earns before quality, campaigns, rounding and caps.
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    Fixed(i64),
    /// `points` for every `every` units of `attribute` (1 point per 1,000 SEK).
    Proportional {
        attribute: String,
        every: Decimal,
        points: Decimal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Points(i64),
    Times(i64),
}

impl Limit {
    pub fn value(self) -> i64 {
        match self {
            Limit::Points(n) | Limit::Times(n) => n,
        }
    }

    /// `points` or `times`.
    pub fn unit(self) -> &'static str {
        match self {
            Limit::Points(_) => "points",
            Limit::Times(_) => "times",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub per: Period,
    pub limit: Limit,
}

/// When a matching event earns at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Every,
    /// When the participant's count of matching events reaches one of these.
    Milestone(Vec<i64>),
    /// When the participant's run of consecutive periods with a matching event reaches a
    /// multiple of `length`.
    Streak {
        per: Period,
        length: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// When Carrot received the event.
    Received,
    /// The event's `attributes.recorded_at` (when the CRM recorded it), else when received.
    RecordedAt,
}

/// CRM data quality: full points when recorded promptly and completely, less otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    pub measured_from: Measured,
    /// `(within_days, factor)` in increasing days: the first step the delay fits applies.
    pub factors: Vec<(i64, Decimal)>,
    pub otherwise: Decimal,
    pub require: Vec<String>,
    pub incomplete: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Equals(Value),
    In(Vec<Value>),
    Range {
        gt: Option<Decimal>,
        gte: Option<Decimal>,
        lt: Option<Decimal>,
        lte: Option<Decimal>,
    },
    Exists(bool),
}

/// The participant facts a rule or campaign can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trait {
    Role,
    Segment,
    Tier,
    Distributor,
    Location,
    Region,
    Status,
    /// Whole days from enrolment to the event.
    TenureDays,
}

impl Trait {
    pub const NAMES: [(&'static str, Trait); 8] = [
        ("role", Trait::Role),
        ("segment", Trait::Segment),
        ("tier", Trait::Tier),
        ("distributor", Trait::Distributor),
        ("location", Trait::Location),
        ("region", Trait::Region),
        ("status", Trait::Status),
        ("tenure_days", Trait::TenureDays),
    ];
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Match {
    /// Event types; empty matches every type (campaigns only).
    pub types: Vec<String>,
    pub attributes: Vec<(String, Predicate)>,
    pub participant: Vec<(Trait, Predicate)>,
    /// Whole days between `occurred_at` and when the activity was recorded.
    pub late_days: Option<Predicate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub version: u32,
    pub description: Option<String>,
    pub when: Match,
    pub amount: Amount,
    pub rounding: Rounding,
    pub caps: Vec<Cap>,
    pub trigger: Trigger,
    pub quality: Option<Quality>,
    pub from: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// The rule as written (without `version`): a change without a version bump is refused.
    pub definition: Value,
}

/// A time-boxed (or enrolment-relative) multiplier on positive awards.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: String,
    pub version: u32,
    pub description: Option<String>,
    pub from: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Days since the participant's own enrolment: `[from, until)`.
    pub enrolment_days: Option<(i64, Option<i64>)>,
    /// Rule ids it multiplies; `None` for every rule.
    pub rules: Option<Vec<String>>,
    pub participant: Vec<(Trait, Predicate)>,
    pub multiplier: Decimal,
    /// How its factor is named on a rule's line: `campaign:{id}@{version}`.
    pub source: String,
    pub definition: Value,
}

/// A program-wide ceiling on the points some rules award per period, split into shards so
/// no single item is hot; each shard holds its share of the ceiling.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub id: String,
    pub description: Option<String>,
    pub rules: Option<Vec<String>>,
    pub per: Period,
    pub points: i64,
    pub shards: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub lock_days: i64,
    /// Deposits happen on this ISO weekday (1 = Monday) on or after the lock ends.
    pub post_on: Option<i8>,
    pub rules: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expiry {
    /// At the end of the `after_months`th month after the month earned.
    Rolling { after_months: i64 },
    /// On `month`-`day` of the year earned plus `after_years`.
    Fixed {
        month: i8,
        day: i8,
        after_years: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Wallet {
    pub pending: Option<Pending>,
    pub expiry: Option<Expiry>,
}

pub const MAX_RULES: usize = 500;
/// One cap per period and unit (points or times): at most this many on a rule.
pub const MAX_CAPS: usize = 12;
pub const MAX_SHARDS: u16 = 64;
const DEFAULT_SHARDS: u16 = 4;

/// Rule, campaign and budget ids appear in counter names: short lower-case words.
pub fn check_rule_id(id: &str) -> Result<(), String> {
    let ok = (1..=48).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    ok.then_some(()).ok_or_else(|| {
        format!(
            "must be 1 to 48 lower-case letters, digits, '-' or '_', starting with a letter, got {id:?}"
        )
    })
}

/// Reads one object of the document, recording every problem under its path.
pub(crate) struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    pub path: String,
}

impl<'a> Fields<'a> {
    /// `None` (with the error recorded) when `value` is not an object.
    pub fn of(
        value: &'a Value,
        path: &str,
        allowed: &[&str],
        errors: &mut FieldErrors,
    ) -> Option<Self> {
        let Some(map) = value.as_object() else {
            errors.push(
                display(path),
                format!("must be an object, got {}", json_kind(value)),
            );
            return None;
        };
        for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            errors.push(
                join(path, key),
                format!("is not a field here (expected one of {allowed:?})"),
            );
        }
        Some(Self {
            map,
            path: path.to_owned(),
        })
    }

    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn text(&self, key: &str, required: bool, errors: &mut FieldErrors) -> Option<String> {
        match self.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            None if !required => None,
            None => {
                errors.push(self.at(key), "is required");
                None
            }
            Some(other) => {
                errors.push(
                    self.at(key),
                    format!("must be a non-empty string, got {}", json_kind(other)),
                );
                None
            }
        }
    }

    /// A required id (`check_rule_id`); an ill-formed one is reported and still returned, so
    /// references to it are not reported as well.
    pub fn id(&self, key: &str, errors: &mut FieldErrors) -> Option<String> {
        let id = self.text(key, true, errors);
        if let Some(id) = &id
            && let Err(reason) = check_rule_id(id)
        {
            errors.push(self.at(key), reason);
        }
        id
    }

    pub fn int(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        required: bool,
        errors: &mut FieldErrors,
    ) -> Option<i64> {
        let value = self.get(key);
        match value.and_then(Value::as_i64) {
            Some(n) if range.contains(&n) => Some(n),
            _ if value.is_none() && !required => None,
            _ if value.is_none() => {
                errors.push(self.at(key), "is required");
                None
            }
            _ => {
                errors.push(
                    self.at(key),
                    format!(
                        "must be a whole number from {} to {}, got {}",
                        range.start(),
                        range.end(),
                        value.expect("present")
                    ),
                );
                None
            }
        }
    }

    pub fn decimal(
        &self,
        key: &str,
        min: Decimal,
        max: Decimal,
        required: bool,
        errors: &mut FieldErrors,
    ) -> Option<Decimal> {
        let value = self.get(key);
        match value.map(decimal_of) {
            None if !required => None,
            None => {
                errors.push(self.at(key), "is required");
                None
            }
            Some(Some(d)) if d >= min && d <= max => Some(d),
            Some(_) => {
                errors.push(
                    self.at(key),
                    format!(
                        "must be a number from {min} to {max}, got {}",
                        value.expect("present")
                    ),
                );
                None
            }
        }
    }

    pub fn flag(&self, key: &str, errors: &mut FieldErrors) -> bool {
        match self.get(key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                errors.push(
                    self.at(key),
                    format!("must be true or false, got {}", json_kind(other)),
                );
                false
            }
        }
    }

    pub fn time(&self, key: &str, errors: &mut FieldErrors) -> Option<Timestamp> {
        let text = self.get(key)?;
        // YAML reads an unquoted timestamp as a string: both forms arrive as text here.
        match text.as_str().map(parse_rfc3339) {
            Some(Ok(t)) => Some(t),
            Some(Err(reason)) => {
                errors.push(self.at(key), reason);
                None
            }
            None => {
                errors.push(
                    self.at(key),
                    format!(
                        "must be an RFC 3339 timestamp with offset, got {}",
                        json_kind(text)
                    ),
                );
                None
            }
        }
    }

    pub fn ids(&self, key: &str, errors: &mut FieldErrors) -> Option<Vec<String>> {
        let value = self.get(key)?;
        let Some(items) = value.as_array().filter(|a| !a.is_empty()) else {
            errors.push(
                self.at(key),
                format!("must be a non-empty list of ids, got {}", json_kind(value)),
            );
            return None;
        };
        let mut ids = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str().map(|s| (s, check_rule_id(s))) {
                Some((s, Ok(()))) => ids.push(s.to_owned()),
                Some((_, Err(reason))) => errors.push(format!("{}[{i}]", self.at(key)), reason),
                None => errors.push(
                    format!("{}[{i}]", self.at(key)),
                    format!("must be an id, got {}", json_kind(item)),
                ),
            }
        }
        Some(ids)
    }

    /// A non-empty list of non-empty texts of at most 200 characters (roles as enrolled).
    pub fn texts(&self, key: &str, errors: &mut FieldErrors) -> Option<Vec<String>> {
        let value = self.get(key)?;
        let Some(items) = value.as_array().filter(|a| !a.is_empty()) else {
            errors.push(
                self.at(key),
                format!(
                    "must be a non-empty list of texts, got {}",
                    json_kind(value)
                ),
            );
            return None;
        };
        let mut texts = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(t) if !t.trim().is_empty() && t.chars().count() <= 200 => {
                    texts.push(t.to_owned())
                }
                _ => errors.push(
                    format!("{}[{i}]", self.at(key)),
                    format!("must be a non-blank text of at most 200 characters, got {item}"),
                ),
            }
        }
        Some(texts)
    }

    pub fn period(
        &self,
        key: &str,
        allowed: &[Period],
        errors: &mut FieldErrors,
    ) -> Option<Period> {
        let names: Vec<&str> = allowed.iter().map(|p| p.name()).collect();
        match self.get(key) {
            None => {
                errors.push(self.at(key), format!("is required (one of {names:?})"));
                None
            }
            Some(value) => match Period::NAMES
                .iter()
                .find(|(n, p)| Some(*n) == value.as_str() && allowed.contains(p))
            {
                Some((_, p)) => Some(*p),
                None => {
                    errors.push(
                        self.at(key),
                        format!("must be one of {names:?}, got {value}"),
                    );
                    None
                }
            },
        }
    }

    pub fn list(&self, key: &str, errors: &mut FieldErrors) -> &'a [Value] {
        match self.get(key) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                errors.push(
                    self.at(key),
                    format!("must be a list, got {}", json_kind(other)),
                );
                &[]
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "$".into()
    } else {
        path.into()
    }
}

/// A JSON number or numeric string as an exact decimal.
pub fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        // Whole numbers directly: rules test attributes on every event.
        Value::Number(n) if n.is_i64() => n.as_i64().map(Decimal::from),
        Value::Number(n) if n.is_u64() => n.as_u64().map(Decimal::from),
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .ok()
        }
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

const RULE_FIELDS: [&str; 12] = [
    "id",
    "version",
    "description",
    "when",
    "award",
    "caps",
    "once",
    "milestone",
    "streak",
    "quality",
    "from",
    "until",
];

pub(crate) fn parse_rule(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Rule> {
    let before = errors.0.len();
    let f = Fields::of(value, path, &RULE_FIELDS, errors)?;
    let id = f.id("id", errors);
    let version = f.int("version", 1..=1_000_000, false, errors).unwrap_or(1) as u32;
    let description = f.text("description", false, errors);
    let when = match f.get("when") {
        Some(w) => parse_match(w, &f.at("when"), true, errors),
        None => {
            errors.push(f.at("when"), "is required: which events the rule matches");
            None
        }
    };
    let (amount, rounding) = match f.get("award") {
        Some(a) => parse_award(a, &f.at("award"), errors).unzip(),
        None => {
            errors.push(f.at("award"), "is required: what a matching event earns");
            (None, None)
        }
    };
    let mut caps: Vec<Cap> = Vec::new();
    // Caps of one period and unit would share one counter and count every award twice.
    let twin = |caps: &[Cap], cap: &Cap| {
        caps.iter()
            .any(|c| c.per == cap.per && c.limit.unit() == cap.limit.unit())
    };
    for (i, cap) in f.list("caps", errors).iter().enumerate() {
        let path = format!("{}[{i}]", f.at("caps"));
        if let Some(cap) = parse_cap(cap, &path, errors) {
            if twin(&caps, &cap) {
                errors.push(
                    path,
                    format!(
                        "another cap already limits {} per {}: one cap per period and unit",
                        cap.limit.unit(),
                        cap.per.name()
                    ),
                );
            }
            caps.push(cap);
        }
    }
    if f.flag("once", errors) {
        let once = Cap {
            per: Period::Lifetime,
            limit: Limit::Times(1),
        };
        if twin(&caps, &once) {
            errors.push(
                f.at("once"),
                "once is a lifetime cap of 1 time, and a cap already limits times per lifetime",
            );
        }
        caps.push(once);
    }
    let milestone = f.get("milestone").and_then(|m| {
        let g = Fields::of(m, &f.at("milestone"), &["at"], errors)?;
        let at = g.list("at", errors);
        let mut counts = Vec::new();
        for (i, n) in at.iter().enumerate() {
            match n.as_i64() {
                Some(n) if n >= 1 && counts.last().is_none_or(|&last| n > last) => counts.push(n),
                _ => errors.push(
                    format!("{}[{i}]", g.at("at")),
                    format!("must be counts of at least 1 in increasing order, got {n}"),
                ),
            }
        }
        if at.is_empty() {
            errors.push(
                g.at("at"),
                "is required: the counts that earn, e.g. [1, 10, 50]",
            );
        }
        Some(Trigger::Milestone(counts))
    });
    let streak = f.get("streak").and_then(|s| {
        let g = Fields::of(s, &f.at("streak"), &["per", "length"], errors)?;
        let per = g.period("per", &[Period::Day, Period::Week, Period::Month], errors);
        let length = g.int("length", 2..=1000, true, errors);
        Some(Trigger::Streak {
            per: per?,
            length: length?,
        })
    });
    if milestone.is_some() && streak.is_some() {
        errors.push(
            f.at("streak"),
            "a rule is either a milestone or a streak, not both",
        );
    }
    let trigger = milestone.or(streak).unwrap_or(Trigger::Every);
    let quality = f
        .get("quality")
        .and_then(|q| parse_quality(q, &f.at("quality"), errors));
    let from = f.time("from", errors);
    let until = f.time("until", errors);
    if let (Some(from), Some(until)) = (from, until)
        && until <= from
    {
        errors.push(f.at("until"), "must be later than from");
    }
    let mut definition = value.clone();
    if let Some(map) = definition.as_object_mut() {
        map.remove("version");
    }
    (errors.0.len() == before).then(|| Rule {
        id: id.expect("checked"),
        version,
        description,
        when: when.expect("checked"),
        amount: amount.expect("checked"),
        rounding: rounding.expect("checked"),
        caps,
        trigger,
        quality,
        from,
        until,
        definition,
    })
}

fn parse_award(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<(Amount, Rounding)> {
    let f = Fields::of(value, path, &["points", "per", "rounding"], errors)?;
    let max = Decimal::from(MAX_POINTS_PER_EVENT);
    let rounding = match f.get("rounding") {
        None => Some(Rounding::Down),
        Some(r) => match r.as_str() {
            Some("down") => Some(Rounding::Down),
            Some("up") => Some(Rounding::Up),
            Some("nearest") => Some(Rounding::Nearest),
            Some("half_even") => Some(Rounding::HalfEven),
            _ => {
                errors.push(
                    f.at("rounding"),
                    format!(
                        "must be one of [\"down\", \"up\", \"nearest\", \"half_even\"], got {r}"
                    ),
                );
                None
            }
        },
    };
    let amount = match f.get("per") {
        None => f
            .int(
                "points",
                -MAX_POINTS_PER_EVENT..=MAX_POINTS_PER_EVENT,
                true,
                errors,
            )
            .map(Amount::Fixed),
        Some(per) => {
            let g = Fields::of(per, &f.at("per"), &["attribute", "every"], errors);
            let attribute = g.as_ref().and_then(|g| g.text("attribute", true, errors));
            let every = g.as_ref().map_or(Some(Decimal::ONE), |g| {
                g.get("every").map_or(Some(Decimal::ONE), |_| {
                    g.decimal(
                        "every",
                        Decimal::new(1, 6),
                        Decimal::from(1_000_000_000_000i64),
                        true,
                        errors,
                    )
                })
            });
            let points = f.decimal("points", -max, max, true, errors);
            Some(Amount::Proportional {
                attribute: attribute?,
                every: every?,
                points: points?,
            })
        }
    };
    Some((amount?, rounding?))
}

fn parse_cap(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Cap> {
    let f = Fields::of(value, path, &["per", "points", "times"], errors)?;
    let per = f.period("per", &Period::NAMES.map(|(_, p)| p), errors);
    let limit = match (f.get("points"), f.get("times")) {
        (Some(_), None) => f
            .int("points", 0..=i64::from(i32::MAX), true, errors)
            .map(Limit::Points),
        (None, Some(_)) => f
            .int("times", 1..=1_000_000, true, errors)
            .map(Limit::Times),
        _ => {
            errors.push(
                display(path),
                "needs exactly one of points (a ceiling on points) or times (a ceiling on awards)",
            );
            None
        }
    };
    Some(Cap {
        per: per?,
        limit: limit?,
    })
}

fn parse_quality(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Quality> {
    let f = Fields::of(
        value,
        path,
        &[
            "measured_from",
            "factors",
            "otherwise",
            "require",
            "incomplete",
        ],
        errors,
    )?;
    let factor_range = (Decimal::ZERO, Decimal::from(10));
    let measured_from = match f.get("measured_from").and_then(Value::as_str) {
        None | Some("received") => Measured::Received,
        Some("recorded_at") => Measured::RecordedAt,
        Some(other) => {
            errors.push(
                f.at("measured_from"),
                format!("must be \"received\" or \"recorded_at\", got {other:?}"),
            );
            Measured::Received
        }
    };
    let mut factors: Vec<(i64, Decimal)> = Vec::new();
    for (i, step) in f.list("factors", errors).iter().enumerate() {
        let path = format!("{}[{i}]", f.at("factors"));
        let Some(g) = Fields::of(step, &path, &["within_days", "factor"], errors) else {
            continue;
        };
        let days = g.int("within_days", 0..=3650, true, errors);
        let factor = g.decimal("factor", factor_range.0, factor_range.1, true, errors);
        if let (Some(days), Some(factor)) = (days, factor) {
            if factors.last().is_some_and(|(last, _)| days <= *last) {
                errors.push(g.at("within_days"), "steps must be in increasing days");
            }
            factors.push((days, factor));
        }
    }
    let otherwise = f
        .decimal("otherwise", factor_range.0, factor_range.1, false, errors)
        .unwrap_or(Decimal::ZERO);
    let require = f
        .list("require", errors)
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a.as_str() {
            Some(s) if !s.is_empty() => Some(s.to_owned()),
            _ => {
                errors.push(
                    format!("{}[{i}]", f.at("require")),
                    format!("must be an attribute name, got {a}"),
                );
                None
            }
        })
        .collect();
    let incomplete = f
        .decimal("incomplete", factor_range.0, factor_range.1, false, errors)
        .unwrap_or(Decimal::ZERO);
    Some(Quality {
        measured_from,
        factors,
        otherwise,
        require,
        incomplete,
    })
}

pub(crate) fn parse_match(
    value: &Value,
    path: &str,
    type_required: bool,
    errors: &mut FieldErrors,
) -> Option<Match> {
    let f = Fields::of(
        value,
        path,
        &["type", "attributes", "participant", "late_days"],
        errors,
    )?;
    let mut when = Match::default();
    match f.get("type") {
        Some(Value::String(t)) => when.types.push(t.clone()),
        Some(Value::Array(ts)) if !ts.is_empty() => {
            for (i, t) in ts.iter().enumerate() {
                match t.as_str() {
                    Some(t) => when.types.push(t.to_owned()),
                    None => errors.push(format!("{}[{i}]", f.at("type")), "must be an event type"),
                }
            }
        }
        None if !type_required => {}
        None => errors.push(
            f.at("type"),
            "is required: the event type (or list of types)",
        ),
        Some(other) => errors.push(
            f.at("type"),
            format!(
                "must be an event type or a list of them, got {}",
                json_kind(other)
            ),
        ),
    }
    for (i, t) in when.types.iter().enumerate() {
        if let Err(reason) = super::envelope::check_event_type(t) {
            errors.push(
                if when.types.len() == 1 {
                    f.at("type")
                } else {
                    format!("{}[{i}]", f.at("type"))
                },
                reason,
            );
        } else if matches!(
            t.as_str(),
            "deal.cancelled" | "contract.cancelled" | "points.adjusted" | "points.bonus"
        ) {
            errors.push(
                f.at("type"),
                format!("{t} cannot earn by rule: reversals claw back what the original earned, adjustments and bonuses carry their own points"),
            );
        } else if when.types[..i].contains(t) {
            // The rule would be indexed, and would award, twice for each such event.
            errors.push(
                format!("{}[{i}]", f.at("type")),
                format!("{t} is listed twice"),
            );
        }
    }
    if let Some(attributes) = f.get("attributes") {
        match attributes.as_object() {
            Some(map) => {
                for (name, p) in map {
                    let path = format!("{}.{name}", f.at("attributes"));
                    if let Some(p) = parse_predicate(p, &path, errors) {
                        when.attributes.push((name.clone(), p));
                    }
                }
            }
            None => errors.push(f.at("attributes"), "must map attribute names to conditions"),
        }
    }
    if let Some(p) = f.get("participant") {
        when.participant = parse_traits(p, &f.at("participant"), errors);
    }
    if f.get("late_days").is_some() {
        when.late_days = parse_predicate(&f.map["late_days"], &f.at("late_days"), errors);
    }
    Some(when)
}

pub(crate) fn parse_traits(
    value: &Value,
    path: &str,
    errors: &mut FieldErrors,
) -> Vec<(Trait, Predicate)> {
    let names: Vec<&str> = Trait::NAMES.iter().map(|(n, _)| *n).collect();
    let Some(f) = Fields::of(value, path, &names, errors) else {
        return Vec::new();
    };
    let mut traits = Vec::new();
    for (name, t) in Trait::NAMES {
        if let Some(p) = f.get(name)
            && let Some(p) = parse_predicate(p, &f.at(name), errors)
        {
            traits.push((t, p));
        }
    }
    traits
}

/// A condition: a plain value (equals), or one of `{eq}`, `{in: [..]}`, `{exists: bool}` or
/// a range of `gt`, `gte`, `lt`, `lte`.
pub(crate) fn parse_predicate(
    value: &Value,
    path: &str,
    errors: &mut FieldErrors,
) -> Option<Predicate> {
    let Some(map) = value.as_object() else {
        return match value {
            Value::Array(_) | Value::Null => {
                errors.push(
                    path,
                    "must be a value or a condition object ({in: [..]}, {gte: ..}, ...)",
                );
                None
            }
            scalar => Some(Predicate::Equals(scalar.clone())),
        };
    };
    let f = Fields::of(
        value,
        path,
        &["eq", "in", "exists", "gt", "gte", "lt", "lte"],
        errors,
    )?;
    let bounds: Vec<&str> = ["gt", "gte", "lt", "lte"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .collect();
    let kinds = ["eq", "in", "exists"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .count()
        + usize::from(!bounds.is_empty());
    if kinds != 1 {
        errors.push(
            path,
            "needs exactly one kind of condition: eq, in, exists, or a range (gt/gte/lt/lte)",
        );
        return None;
    }
    if let Some(v) = f.get("eq") {
        return Some(Predicate::Equals(v.clone()));
    }
    if let Some(v) = f.get("in") {
        return match v.as_array() {
            Some(items) if !items.is_empty() => Some(Predicate::In(items.clone())),
            _ => {
                errors.push(f.at("in"), "must be a non-empty list of values");
                None
            }
        };
    }
    if let Some(v) = f.get("exists") {
        return match v.as_bool() {
            Some(b) => Some(Predicate::Exists(b)),
            None => {
                errors.push(f.at("exists"), "must be true or false");
                None
            }
        };
    }
    let big = Decimal::from(1_000_000_000_000_000i64);
    let bound = |k: &str, errors: &mut FieldErrors| f.decimal(k, -big, big, false, errors);
    Some(Predicate::Range {
        gt: bound("gt", errors),
        gte: bound("gte", errors),
        lt: bound("lt", errors),
        lte: bound("lte", errors),
    })
}

const CAMPAIGN_FIELDS: [&str; 9] = [
    "id",
    "version",
    "description",
    "from",
    "until",
    "enrolment_days",
    "rules",
    "participant",
    "multiplier",
];

pub(crate) fn parse_campaign(
    value: &Value,
    path: &str,
    errors: &mut FieldErrors,
) -> Option<Campaign> {
    let before = errors.0.len();
    let f = Fields::of(value, path, &CAMPAIGN_FIELDS, errors)?;
    let id = f.id("id", errors);
    let version = f.int("version", 1..=1_000_000, false, errors).unwrap_or(1) as u32;
    let description = f.text("description", false, errors);
    let from = f.time("from", errors);
    let until = f.time("until", errors);
    if let (Some(from), Some(until)) = (from, until)
        && until <= from
    {
        errors.push(f.at("until"), "must be later than from");
    }
    let enrolment_days = f.get("enrolment_days").and_then(|e| {
        let g = Fields::of(e, &f.at("enrolment_days"), &["from", "until"], errors)?;
        let start = g.int("from", 0..=36_500, false, errors).unwrap_or(0);
        let end = g.int("until", 1..=36_500, false, errors);
        if end.is_some_and(|end| end <= start) {
            errors.push(g.at("until"), "must be greater than from");
        }
        Some((start, end))
    });
    if from.is_none() && until.is_none() && enrolment_days.is_none() {
        errors.push(
            display(path),
            "needs a window: from/until (dates) or enrolment_days (relative to each participant's enrolment)",
        );
    }
    let rules = f.ids("rules", errors);
    let participant = f
        .get("participant")
        .map(|p| parse_traits(p, &f.at("participant"), errors))
        .unwrap_or_default();
    let multiplier = f.decimal(
        "multiplier",
        Decimal::ZERO,
        Decimal::from(100),
        true,
        errors,
    );
    let mut definition = value.clone();
    if let Some(map) = definition.as_object_mut() {
        map.remove("version");
    }
    (errors.0.len() == before).then(|| {
        let id = id.expect("checked");
        Campaign {
            source: format!("campaign:{id}@{version}"),
            id,
            version,
            description,
            from,
            until,
            enrolment_days,
            rules,
            participant,
            multiplier: multiplier.expect("checked"),
            definition,
        }
    })
}

pub(crate) fn parse_budget(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Budget> {
    let before = errors.0.len();
    let f = Fields::of(
        value,
        path,
        &["id", "description", "rules", "per", "points", "shards"],
        errors,
    )?;
    let id = f.id("id", errors);
    let description = f.text("description", false, errors);
    let rules = f.ids("rules", errors);
    let per = f.period(
        "per",
        &[
            Period::Month,
            Period::Quarter,
            Period::Year,
            Period::Lifetime,
        ],
        errors,
    );
    let points = f.int("points", 1..=i64::from(i32::MAX) * 1000, true, errors);
    let shards = f
        .int("shards", 1..=i64::from(MAX_SHARDS), false, errors)
        .map_or(DEFAULT_SHARDS, |s| s as u16);
    if let Some(points) = points
        && points < i64::from(shards)
    {
        errors.push(
            f.at("points"),
            format!("must be at least the number of shards ({shards})"),
        );
    }
    (errors.0.len() == before).then(|| Budget {
        id: id.expect("checked"),
        description,
        rules,
        per: per.expect("checked"),
        points: points.expect("checked"),
        shards,
    })
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

pub(crate) fn parse_wallet(value: &Value, path: &str, errors: &mut FieldErrors) -> Wallet {
    let mut wallet = Wallet::default();
    let Some(f) = Fields::of(value, path, &["pending", "expiry"], errors) else {
        return wallet;
    };
    if let Some(p) = f.get("pending")
        && let Some(g) = Fields::of(
            p,
            &f.at("pending"),
            &["lock_days", "post_on", "rules"],
            errors,
        )
    {
        let lock_days = g.int("lock_days", 0..=365, true, errors);
        let post_on = g.get("post_on").and_then(|d| {
            match d
                .as_str()
                .and_then(|d| WEEKDAYS.iter().position(|w| *w == d))
            {
                Some(i) => Some(i as i8 + 1),
                None => {
                    errors.push(
                        g.at("post_on"),
                        format!("must be a weekday name in lower case (monday … sunday), got {d}"),
                    );
                    None
                }
            }
        });
        let rules = g.ids("rules", errors);
        wallet.pending = lock_days.map(|lock_days| Pending {
            lock_days,
            post_on,
            rules,
        });
    }
    if let Some(e) = f.get("expiry")
        && let Some(g) = Fields::of(
            e,
            &f.at("expiry"),
            &["after_months", "on", "after_years"],
            errors,
        )
    {
        wallet.expiry = match (g.get("after_months"), g.get("on")) {
            (Some(_), None) => g
                .int("after_months", 1..=240, true, errors)
                .map(|after_months| Expiry::Rolling { after_months }),
            (None, Some(on)) => {
                let after_years = g.int("after_years", 0..=20, false, errors).unwrap_or(1);
                let date = on.as_str().and_then(|s| {
                    let (m, d) = s.split_once('-')?;
                    let (m, d): (i8, i8) = (m.parse().ok()?, d.parse().ok()?);
                    jiff::civil::Date::new(2024, m, d).ok().map(|_| (m, d))
                });
                match date {
                    Some((month, day)) => Some(Expiry::Fixed {
                        month,
                        day,
                        after_years,
                    }),
                    None => {
                        errors.push(
                            g.at("on"),
                            format!("must be a month and day \"MM-DD\", got {on}"),
                        );
                        None
                    }
                }
            }
            _ => {
                errors.push(
                    display(&f.at("expiry")),
                    "needs after_months (rolling) or on with after_years (a fixed date)",
                );
                None
            }
        };
    }
    wallet
}
