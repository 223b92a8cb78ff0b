//! Programs in plain terms: each rule, campaign and wallet policy in a sentence. The CLI
//! prints them (`carrot validate`) and the API serves them to participants
//! (`GET /v1/programs/{program}/rules`), so both say the same thing.

use super::program::{Program, ProgramVersions};
use super::rules::{
    Amount, Campaign, Expiry, Limit, Measured, Period, Predicate, Rounding, Rule, Trait, Trigger,
};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write;

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// When points earned become spendable.
pub fn pending_text(program: &Program) -> String {
    match &program.wallet.pending {
        Some(pending) => format!(
            "points of {} wait {} days{}",
            rules(&pending.rules),
            pending.lock_days,
            pending
                .post_on
                .map(|d| format!(", then until the next {}", WEEKDAYS[(d - 1) as usize]))
                .unwrap_or_default()
        ),
        None => "none, points can be spent at once".to_owned(),
    }
}

/// When points expire.
pub fn expiry_text(program: &Program) -> String {
    match &program.wallet.expiry {
        Some(Expiry::Rolling { after_months }) => format!(
            "at the end of the {} month after the month earned",
            ordinal(*after_months)
        ),
        Some(Expiry::Fixed {
            month,
            day,
            after_years,
        }) => format!("on {month:02}-{day:02} of the year earned plus {after_years}"),
        None => "none, points never expire".to_owned(),
    }
}

/// `1st`, `2nd`, `3rd`, `24th`.
fn ordinal(n: impl Into<i64>) -> String {
    let n = n.into();
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The rules of the version in force, in plain terms, for participants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlainRules {
    pub program: String,
    pub name: String,
    pub time_zone: String,
    /// The version in force now and since when.
    pub version: u32,
    pub effective_from: String,
    /// A later version already scheduled: what is said here holds until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_version: Option<Scheduled>,
    /// What earns points, by activity (event type).
    pub activities: Vec<Activity>,
    pub campaigns: Vec<Described>,
    pub pending: String,
    pub expiry: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scheduled {
    pub version: u32,
    pub effective_from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    pub event_type: String,
    pub rules: Vec<Described>,
}

/// A rule or campaign: its id and version, the sentence, its window and whether it is on now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Described {
    pub id: String,
    pub version: u32,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Within its window now. Rules and campaigns that ended are left out; those that have
    /// not started yet are listed with `active: false`.
    pub active: bool,
}

/// The version in force at `now`, in plain terms.
pub fn plain_rules(versions: &ProgramVersions, now: Timestamp) -> PlainRules {
    let program = versions.at(now);
    let schedule = versions.schedule();
    let effective_from = schedule
        .iter()
        .filter(|(from, _)| *from <= now)
        .map(|(from, _)| *from)
        .next_back()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let next_version = schedule
        .iter()
        .find(|(from, _)| *from > now)
        .map(|(from, version)| Scheduled {
            version: *version,
            effective_from: local(program, *from),
        });
    let described = |id: &str,
                     version: u32,
                     text: String,
                     from: Option<Timestamp>,
                     until: Option<Timestamp>| {
        until.is_none_or(|until| until > now).then(|| Described {
            id: id.to_owned(),
            version,
            text,
            from: from.map(|f| local(program, f)),
            until: until.map(|u| local(program, u)),
            active: from.is_none_or(|f| f <= now),
        })
    };
    let mut activities: Vec<Activity> = Vec::new();
    for rule in &program.rules {
        let Some(entry) = described(
            &rule.id,
            rule.version,
            rule_text(program, rule),
            rule.from,
            rule.until,
        ) else {
            continue;
        };
        for event_type in &rule.when.types {
            match activities.iter_mut().find(|a| &a.event_type == event_type) {
                Some(activity) => activity.rules.push(entry.clone()),
                None => activities.push(Activity {
                    event_type: event_type.clone(),
                    rules: vec![entry.clone()],
                }),
            }
        }
    }
    PlainRules {
        program: program.id.clone(),
        name: program.name.clone(),
        time_zone: program.time_zone_name.clone(),
        version: program.version,
        effective_from: local(program, effective_from),
        next_version,
        activities,
        campaigns: program
            .campaigns
            .iter()
            .filter_map(|c| described(&c.id, c.version, campaign_text(program, c), c.from, c.until))
            .collect(),
        pending: pending_text(program),
        expiry: expiry_text(program),
    }
}

/// A rule in a sentence: what it awards, when, how often.
pub fn rule_text(program: &Program, rule: &Rule) -> String {
    let mut text = match &rule.amount {
        Amount::Fixed(points) => plural(*points, "point"),
        Amount::Proportional {
            attribute,
            every,
            points,
        } => {
            let rounding = match rule.rounding {
                Rounding::Down => "down",
                Rounding::Up => "up",
                Rounding::Nearest => "to the nearest",
                Rounding::HalfEven => "half to even",
            };
            let every = if *every == Decimal::ONE {
                String::new()
            } else {
                format!("{every} ")
            };
            let unit = if *points == Decimal::ONE {
                "point"
            } else {
                "points"
            };
            format!("{points} {unit} per {every}{attribute}, rounded {rounding}")
        }
    };
    match &rule.trigger {
        Trigger::Every => {}
        Trigger::Milestone(at) => {
            let at: Vec<String> = at.iter().map(ToString::to_string).collect();
            let _ = write!(text, " at match {}", at.join(", "));
        }
        Trigger::Streak { per, length } => {
            let _ = write!(text, " for every {length} {}s in a row", per.name());
        }
    }
    let mut conditions: Vec<String> = rule
        .when
        .attributes
        .iter()
        .map(|(name, p)| format!("{name} {}", predicate(p)))
        .collect();
    conditions.extend(
        rule.when
            .participant
            .iter()
            .map(|(t, p)| format!("{} {}", trait_name(*t), predicate(p))),
    );
    if let Some(p) = &rule.when.late_days {
        conditions.push(format!("late_days {}", predicate(p)));
    }
    if !conditions.is_empty() {
        let _ = write!(text, "; if {}", conditions.join(", "));
    }
    if let Some(quality) = &rule.quality {
        let from = match quality.measured_from {
            Measured::Received => "receipt",
            Measured::RecordedAt => "recording",
        };
        let steps: Vec<String> = quality
            .factors
            .iter()
            .map(|(days, factor)| format!("×{factor} within {}", plural(*days, "day")))
            .chain([format!("×{} later", quality.otherwise)])
            .collect();
        let _ = write!(text, "; by delay to {from}: {}", steps.join(", "));
    }
    let once = rule.caps.len() == 1
        && rule.caps[0].per == Period::Lifetime
        && rule.caps[0].limit == Limit::Times(1);
    if once {
        text.push_str("; once");
    } else if !rule.caps.is_empty() {
        let caps: Vec<String> = rule
            .caps
            .iter()
            .map(|cap| match cap.limit {
                Limit::Points(n) => format!("{} {}", plural(n, "point"), per(cap.per)),
                Limit::Times(n) => format!("{} {}", plural(n, "time"), per(cap.per)),
            })
            .collect();
        let label = if caps.len() == 1 { "cap" } else { "caps" };
        let _ = write!(text, "; {label}: {}", caps.join(", "));
    }
    text.push_str(&window(program, rule.from, rule.until));
    text
}

/// A campaign in a sentence: its multiplier, rules, dates and who it is for.
pub fn campaign_text(program: &Program, campaign: &Campaign) -> String {
    let mut text = format!("×{} on {}", campaign.multiplier, rules(&campaign.rules));
    text.push_str(&window(program, campaign.from, campaign.until));
    if let Some((from, until)) = campaign.enrolment_days {
        let until = until.map_or("on".to_owned(), |u| format!("to {u}"));
        let _ = write!(
            text,
            "; days {from} {until} of each participant's enrolment"
        );
    }
    if !campaign.participant.is_empty() {
        let traits: Vec<String> = campaign
            .participant
            .iter()
            .map(|(t, p)| format!("{} {}", trait_name(*t), predicate(p)))
            .collect();
        let _ = write!(text, "; for {}", traits.join(", "));
    }
    text
}

fn window(program: &Program, from: Option<Timestamp>, until: Option<Timestamp>) -> String {
    let mut text = String::new();
    if let Some(from) = from {
        let _ = write!(text, "; from {}", local(program, from));
    }
    if let Some(until) = until {
        let joint = if from.is_some() { " " } else { "; " };
        let _ = write!(text, "{joint}until {}", local(program, until));
    }
    text
}

/// `1 point`, `5 points`.
pub fn plural(n: i64, unit: &str) -> String {
    match n {
        1 | -1 => format!("{n} {unit}"),
        _ => format!("{n} {unit}s"),
    }
}

/// An instant in the program's time zone, as RFC 3339.
pub fn local(program: &Program, at: Timestamp) -> String {
    at.to_zoned(program.time_zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// `a month`, `in all`.
pub fn per(period: Period) -> String {
    match period.name() {
        "lifetime" => "in all".into(),
        name => format!("a {name}"),
    }
}

/// The rules a campaign, budget or pending lock names, or `every rule`.
pub fn rules(ids: &Option<Vec<String>>) -> String {
    ids.as_ref()
        .map_or("every rule".to_owned(), |ids| ids.join(", "))
}

fn trait_name(t: Trait) -> &'static str {
    Trait::NAMES
        .iter()
        .find(|(_, named)| *named == t)
        .map_or("?", |(name, _)| name)
}

fn predicate(p: &Predicate) -> String {
    match p {
        Predicate::Equals(v) => format!("= {}", scalar(v)),
        Predicate::In(options) => {
            let options: Vec<String> = options.iter().map(scalar).collect();
            format!("in [{}]", options.join(", "))
        }
        Predicate::Exists(true) => "present".into(),
        Predicate::Exists(false) => "absent".into(),
        Predicate::Range { gt, gte, lt, lte } => {
            let bounds: Vec<String> = [(">", gt), ("≥", gte), ("<", lt), ("≤", lte)]
                .iter()
                .filter_map(|(op, bound)| bound.map(|b| format!("{op} {b}")))
                .collect();
            bounds.join(" and ")
        }
    }
}

fn scalar(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
