//! Partner journeys (attract, activate, accelerate): each participant's own timeline of steps
//! counted from their enrolment date, milestones with a congratulation and an award, a nudge
//! when they go quiet, near-miss nudges toward a drawing or their personal target, and
//! catch-up offers for late joiners and dormant reps.
//!
//! Pure: `plan` decides one member's actions for one day from their figures and the marks
//! kept between runs (`JourneyState`). Every action's id is its cause, so a run repeated from
//! the same state produces the same ids and the sender and the award path drop the repeats.
//! The reference is docs/journeys.md.

use super::close::DrawingConfig;
use super::envelope::check_event_type;
use super::error::FieldErrors;
use super::message::Channel;
use super::money::json_kind;
use super::program::MAX_POINTS_PER_EVENT;
use super::rules::{Fields, Period};
use super::standings::{Metric, Totals};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A step more than this many days past its day is marked done without being sent, so that
/// turning a journey on in a running program does not flood long-time reps with their
/// onboarding; a late-join catch-up offer is made within this many days of enrolment.
pub const BACKLOG_DAYS: i64 = 30;

/// The segment name of the daily segmentation that makes a rep eligible for a dormancy
/// catch-up offer.
pub const DORMANT_SEGMENT: &str = "dormant";

/// The program's `journeys` section: a list of journeys, each for some roles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JourneysConfig {
    pub journeys: Vec<Journey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    pub id: String,
    pub title: String,
    /// `None`: every role that no other journey lists.
    pub roles: Option<Vec<String>>,
    pub steps: Vec<Step>,
    pub milestones: Vec<Milestone>,
    pub dormant: Option<Dormant>,
    pub catch_up: Option<CatchUp>,
    pub near_miss: Option<NearMiss>,
}

/// A message on a day counted from the participant's own enrolment date.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    /// Days after enrolment (0: the enrolment day).
    pub day: i64,
    pub kind: StepKind,
    pub channel: Channel,
    /// A milestone of the same journey: once reached, the step is not sent.
    pub unless: Option<String>,
    pub question: Option<String>,
    pub url: Option<String>,
    /// Text per locale (`en`, `sv`) shown in the message.
    pub note: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Welcome,
    WelcomeQuiz,
    FirstActionNudge,
    ProfilePrompt,
    PulseSurvey,
    Tip,
}

impl StepKind {
    pub const NAMES: [(&'static str, StepKind); 6] = [
        ("journey.welcome", StepKind::Welcome),
        ("journey.welcome_quiz", StepKind::WelcomeQuiz),
        ("journey.first_action_nudge", StepKind::FirstActionNudge),
        ("journey.profile_prompt", StepKind::ProfilePrompt),
        ("journey.pulse_survey", StepKind::PulseSurvey),
        ("journey.tip", StepKind::Tip),
    ];

    /// The message kind (the template).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .expect("every kind is named")
    }

    /// Prompts and surveys ask something: they need a question and where to answer it.
    fn asks(self) -> bool {
        matches!(self, StepKind::ProfilePrompt | StepKind::PulseSurvey)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Milestone {
    pub id: String,
    pub title: String,
    pub goal: Goal,
    /// Bonus points credited once when reached (0: a congratulation only).
    pub award: i64,
    pub survey: Option<Prompt>,
    pub prompt: Option<Prompt>,
}

/// A question and where to answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prompt {
    pub question: String,
    pub url: String,
}

/// What a milestone or a catch-up offer asks for, counted over the participant's lifetime
/// (a catch-up offer counts from its start). Stored and shown in messages as configured:
/// `{event, count}`, `{login_days}` or `{points}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "GoalText", into = "GoalText")]
pub enum Goal {
    /// At least `count` events of the type.
    Events {
        event: String,
        count: i64,
    },
    LoginDays(i64),
    Points(i64),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum GoalText {
    Events { event: String, count: i64 },
    LoginDays { login_days: i64 },
    Points { points: i64 },
}

impl From<GoalText> for Goal {
    fn from(text: GoalText) -> Goal {
        match text {
            GoalText::Events { event, count } => Goal::Events { event, count },
            GoalText::LoginDays { login_days } => Goal::LoginDays(login_days),
            GoalText::Points { points } => Goal::Points(points),
        }
    }
}

impl From<Goal> for GoalText {
    fn from(goal: Goal) -> GoalText {
        match goal {
            Goal::Events { event, count } => GoalText::Events { event, count },
            Goal::LoginDays(login_days) => GoalText::LoginDays { login_days },
            Goal::Points(points) => GoalText::Points { points },
        }
    }
}

impl Goal {
    /// The participant's value of what the goal counts.
    pub fn value(&self, totals: &Totals) -> i64 {
        match self {
            Goal::Events { event, .. } => totals.counts.get(event).copied().unwrap_or(0),
            Goal::LoginDays(_) => totals.login_days,
            Goal::Points(_) => totals.points,
        }
    }

    pub fn need(&self) -> i64 {
        match self {
            Goal::Events { count, .. } => *count,
            Goal::LoginDays(n) | Goal::Points(n) => *n,
        }
    }

    fn data(&self) -> Value {
        json!(self)
    }
}

/// A nudge after `after_days` without a milestone.
#[derive(Debug, Clone, PartialEq)]
pub struct Dormant {
    pub after_days: i64,
    pub channel: Channel,
}

/// Offers of a goal to reach within some days for an award.
#[derive(Debug, Clone, PartialEq)]
pub struct CatchUp {
    /// Participants enrolled on or after this date are offered it when they join.
    pub late_join_after: Option<Date>,
    /// A participant who enters the dormant segment is offered it, once per dormant spell.
    pub dormant: bool,
    pub goal: Goal,
    pub within_days: i64,
    pub award: i64,
    pub channel: Channel,
}

/// Nudges in the last days of a month toward a drawing or the personal target.
#[derive(Debug, Clone, PartialEq)]
pub struct NearMiss {
    pub drawings: bool,
    pub target: bool,
    /// Most login days or events missing for a nudge.
    pub missing_at_most: i64,
    /// Most points missing for a nudge toward a points threshold; `None`: no such nudges.
    pub missing_points_at_most: Option<i64>,
    pub days_left_at_most: i64,
    pub channel: Channel,
}

/// Parses the `journeys` section of a program document; absent: no journeys. Errors carry
/// the document's paths.
pub(crate) fn parse(document: &Value, errors: &mut FieldErrors) -> JourneysConfig {
    let items = match document.get("journeys") {
        None | Some(Value::Null) => return JourneysConfig::default(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            errors.push(
                "journeys",
                format!("must be a list of journeys, got {}", json_kind(other)),
            );
            return JourneysConfig::default();
        }
    };
    let parsed: Vec<(String, Journey)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, j)| {
            let path = format!("journeys[{i}]");
            Journey::parse(j, &path, errors).map(|j| (path, j))
        })
        .collect();
    // The first journey (its path) with each id, each role, and without roles.
    let mut ids: BTreeMap<&str, &str> = BTreeMap::new();
    let mut roles: BTreeMap<&str, &str> = BTreeMap::new();
    let mut every_role: Option<&str> = None;
    for (path, journey) in &parsed {
        let first = *ids.entry(&journey.id).or_insert(path);
        if first != path {
            errors.push(
                format!("{path}.id"),
                format!("the id {:?} is also {first}'s", journey.id),
            );
        }
        let Some(listed) = &journey.roles else {
            match every_role {
                Some(first) => errors.push(
                    format!("{path}.roles"),
                    format!("is required: {first} already takes every role without a journey"),
                ),
                None => every_role = Some(path),
            }
            continue;
        };
        for (j, role) in listed.iter().enumerate() {
            let first = *roles.entry(role).or_insert(path);
            if first != path || listed[..j].contains(role) {
                errors.push(
                    format!("{path}.roles[{j}]"),
                    format!("the role {role:?} is already in {first}: a role follows one journey"),
                );
            }
        }
    }
    JourneysConfig {
        journeys: parsed.into_iter().map(|(_, j)| j).collect(),
    }
}

impl JourneysConfig {
    /// The journey a participant of `role` follows: the one listing the role, else the one
    /// without roles.
    pub fn for_role(&self, role: &str) -> Option<&Journey> {
        self.journeys
            .iter()
            .find(|j| {
                j.roles
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|x| x == role))
            })
            .or_else(|| self.journeys.iter().find(|j| j.roles.is_none()))
    }
}

impl Journey {
    fn parse(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Journey> {
        let f = Fields::of(
            value,
            path,
            &[
                "id",
                "title",
                "roles",
                "steps",
                "milestones",
                "dormant",
                "catch_up",
                "near_miss",
            ],
            errors,
        )?;
        let id = f.id("id", errors);
        let title = f.text("title", false, errors);
        let roles = f.texts("roles", errors);

        let listed = f.list("milestones", errors);
        let milestones: Vec<Milestone> = listed
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                Milestone::parse(m, &format!("{}[{i}]", f.at("milestones")), errors)
            })
            .collect();
        // Ids as written, so a step naming a milestone that failed to parse is not refused too.
        let written = ids_at(listed);
        unique_ids(&written, &f.at("milestones"), errors);
        let milestone_ids: Vec<&str> = written.iter().map(|(_, id)| *id).collect();

        let listed_steps = f.list("steps", errors);
        let steps: Vec<Step> = listed_steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                Step::parse(
                    s,
                    &format!("{}[{i}]", f.at("steps")),
                    &milestone_ids,
                    errors,
                )
            })
            .collect();
        unique_ids(&ids_at(listed_steps), &f.at("steps"), errors);

        let dormant = f.get("dormant").and_then(|v| {
            let g = Fields::of(v, &f.at("dormant"), &["after_days", "channel"], errors)?;
            let after_days = g.int("after_days", 1..=365, true, errors);
            let channel = channel(&g, Channel::Sms, errors);
            if listed.is_empty() {
                errors.push(
                    f.at("dormant"),
                    "needs milestones: the nudge points to the next one to reach",
                );
            }
            Some(Dormant {
                after_days: after_days?,
                channel,
            })
        });
        let catch_up = f
            .get("catch_up")
            .and_then(|v| CatchUp::parse(v, &f.at("catch_up"), errors));
        let near_miss = f
            .get("near_miss")
            .and_then(|v| NearMiss::parse(v, &f.at("near_miss"), errors));
        Some(Journey {
            title: title.unwrap_or_else(|| id.clone().unwrap_or_default()),
            id: id?,
            roles,
            steps,
            milestones,
            dormant,
            catch_up,
            near_miss,
        })
    }
}

/// The `id` of each listed object that has one, with its index.
fn ids_at(listed: &[Value]) -> Vec<(usize, &str)> {
    listed
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.get("id").and_then(Value::as_str).map(|id| (i, id)))
        .collect()
}

fn unique_ids(ids: &[(usize, &str)], list: &str, errors: &mut FieldErrors) {
    for (n, (i, id)) in ids.iter().enumerate() {
        if let Some((first, _)) = ids[..n].iter().find(|(_, other)| other == id) {
            errors.push(
                format!("{list}[{i}].id"),
                format!("the id {id:?} is also {list}[{first}]'s"),
            );
        }
    }
}

impl Step {
    fn parse(
        value: &Value,
        path: &str,
        milestones: &[&str],
        errors: &mut FieldErrors,
    ) -> Option<Step> {
        let f = Fields::of(
            value,
            path,
            &[
                "id", "day", "kind", "channel", "unless", "question", "url", "note",
            ],
            errors,
        )?;
        let id = f.id("id", errors);
        let day = f.int("day", 0..=365, true, errors);
        let names: Vec<&str> = StepKind::NAMES.iter().map(|(n, _)| *n).collect();
        let kind = match f.get("kind") {
            None => {
                errors.push(f.at("kind"), format!("is required (one of {names:?})"));
                None
            }
            Some(v) => {
                let kind = StepKind::NAMES
                    .iter()
                    .find(|(n, _)| Some(*n) == v.as_str())
                    .map(|(_, k)| *k);
                if kind.is_none() {
                    errors.push(f.at("kind"), format!("must be one of {names:?}, got {v}"));
                }
                kind
            }
        };
        let channel = channel(&f, Channel::Email, errors);
        let unless = f.text("unless", false, errors);
        if let Some(unless) = &unless
            && !milestones.contains(&unless.as_str())
        {
            errors.push(
                f.at("unless"),
                format!("must name a milestone of this journey, got {unless:?}"),
            );
        }
        let question = f.text("question", false, errors);
        let url = https(&f, "url", errors);
        if let Some(kind) = kind.filter(|k| k.asks()) {
            for (key, given) in [("question", question.is_some()), ("url", url.is_some())] {
                if !given && f.get(key).is_none() {
                    errors.push(
                        f.at(key),
                        format!(
                            "is required for {}: what to ask and where to answer",
                            kind.name()
                        ),
                    );
                }
            }
        }
        let note = f
            .get("note")
            .map_or_else(BTreeMap::new, |v| note(v, &f.at("note"), errors));
        Some(Step {
            id: id?,
            day: day?,
            kind: kind?,
            channel,
            unless,
            question,
            url,
            note,
        })
    }
}

impl Milestone {
    fn parse(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Milestone> {
        let f = Fields::of(
            value,
            path,
            &["id", "title", "when", "award", "survey", "prompt"],
            errors,
        )?;
        let id = f.id("id", errors);
        let title = f.text("title", false, errors);
        let goal = goal(f.get("when"), &f.at("when"), errors);
        let award = f
            .int("award", 0..=MAX_POINTS_PER_EVENT, false, errors)
            .unwrap_or(0);
        let survey = f
            .get("survey")
            .and_then(|v| prompt(v, &f.at("survey"), errors));
        let prompt = f
            .get("prompt")
            .and_then(|v| prompt(v, &f.at("prompt"), errors));
        Some(Milestone {
            title: title.unwrap_or_else(|| id.clone().unwrap_or_default()),
            id: id?,
            goal: goal?,
            award,
            survey,
            prompt,
        })
    }
}

impl CatchUp {
    fn parse(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<CatchUp> {
        let f = Fields::of(
            value,
            path,
            &[
                "late_join_after",
                "dormant",
                "goal",
                "within_days",
                "award",
                "channel",
            ],
            errors,
        )?;
        let late_join_after = f.get("late_join_after").and_then(|v| {
            let date = v.as_str().and_then(parse_date);
            if date.is_none() {
                errors.push(
                    f.at("late_join_after"),
                    format!("must be a date like 2026-03-01, got {v}"),
                );
            }
            date
        });
        let dormant = f.flag("dormant", errors);
        // A `dormant` that is not a boolean is reported by itself.
        let offered_to_dormant = f.get("dormant").is_some_and(|d| d != &Value::Bool(false));
        if f.get("late_join_after").is_none() && !offered_to_dormant {
            errors.push(
                path,
                "offers to nobody: set late_join_after, dormant: true, or both",
            );
        }
        let goal = goal(f.get("goal"), &f.at("goal"), errors);
        let within_days = f.int("within_days", 1..=365, false, errors).unwrap_or(14);
        let award = f
            .int("award", 0..=MAX_POINTS_PER_EVENT, false, errors)
            .unwrap_or(0);
        let channel = channel(&f, Channel::Email, errors);
        Some(CatchUp {
            late_join_after,
            dormant,
            goal: goal?,
            within_days,
            award,
            channel,
        })
    }
}

impl NearMiss {
    fn parse(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<NearMiss> {
        let f = Fields::of(
            value,
            path,
            &[
                "drawings",
                "target",
                "missing_at_most",
                "missing_points_at_most",
                "days_left_at_most",
                "channel",
            ],
            errors,
        )?;
        let flag_or_true =
            |key: &str, errors: &mut FieldErrors| f.get(key).is_none() || f.flag(key, errors);
        let drawings = flag_or_true("drawings", errors);
        let target = flag_or_true("target", errors);
        let off = Some(&Value::Bool(false));
        if f.get("drawings") == off && f.get("target") == off {
            errors.push(path, "nudges toward nothing: set drawings or target");
        }
        let missing_at_most = f
            .int("missing_at_most", 1..=1000, false, errors)
            .unwrap_or(2);
        let missing_points_at_most =
            f.int("missing_points_at_most", 1..=1_000_000_000, false, errors);
        let days_left_at_most = f
            .int("days_left_at_most", 1..=31, false, errors)
            .unwrap_or(7);
        let channel = channel(&f, Channel::Email, errors);
        Some(NearMiss {
            drawings,
            target,
            missing_at_most,
            missing_points_at_most,
            days_left_at_most,
            channel,
        })
    }

    /// How much is missing of `need` when that is close enough for a nudge with `days_left`
    /// days left: login days can be had at most one a day.
    fn missing(&self, metric: &Metric, need: i64, have: i64, days_left: i64) -> Option<i64> {
        let missing = need - have;
        let at_most = match metric {
            Metric::Points => self.missing_points_at_most?,
            Metric::LoginDays => self.missing_at_most.min(days_left),
            Metric::Events(_) => self.missing_at_most,
        };
        (missing > 0 && missing <= at_most).then_some(missing)
    }
}

/// `when` of a milestone, `goal` of a catch-up offer: exactly one of `{event, count}`,
/// `{login_days}`, `{points}`.
fn goal(value: Option<&Value>, path: &str, errors: &mut FieldErrors) -> Option<Goal> {
    let Some(value) = value else {
        errors.push(
            path,
            "is required: one of {event, count}, {login_days} or {points}",
        );
        return None;
    };
    let f = Fields::of(
        value,
        path,
        &["event", "count", "login_days", "points"],
        errors,
    )?;
    let given: Vec<&str> = ["event", "login_days", "points"]
        .into_iter()
        .filter(|k| f.get(k).is_some())
        .collect();
    if f.get("count").is_some() && !given.contains(&"event") {
        errors.push(f.at("count"), "is only for event: how many of them");
    }
    match given[..] {
        ["event"] => {
            let event = f.text("event", true, errors);
            if let Some(event) = &event
                && let Err(reason) = check_event_type(event)
            {
                errors.push(f.at("event"), reason);
                return None;
            }
            let count = f.int("count", 1..=1_000_000, false, errors).unwrap_or(1);
            Some(Goal::Events {
                event: event?,
                count,
            })
        }
        ["login_days"] => f
            .int("login_days", 1..=100_000, true, errors)
            .map(Goal::LoginDays),
        ["points"] => f
            .int("points", 1..=1_000_000_000, true, errors)
            .map(Goal::Points),
        _ => {
            errors.push(
                path,
                "must have exactly one of event (with count), login_days or points",
            );
            None
        }
    }
}

fn prompt(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Prompt> {
    let f = Fields::of(value, path, &["question", "url"], errors)?;
    let question = f.text("question", true, errors);
    let url = https(&f, "url", errors);
    if f.get("url").is_none() {
        errors.push(f.at("url"), "is required: where to answer");
    }
    Some(Prompt {
        question: question?,
        url: url?,
    })
}

/// An optional `https://` link with a host, without spaces.
fn https(f: &Fields, key: &str, errors: &mut FieldErrors) -> Option<String> {
    let url = f.text(key, false, errors)?;
    let host = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .filter(|host| !host.is_empty());
    if host.is_none()
        || url.len() > 2000
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        errors.push(
            f.at(key),
            format!(
                "must be an https:// link of at most 2000 characters without spaces, got {url:?}"
            ),
        );
        return None;
    }
    Some(url)
}

/// `{en: "...", sv: "..."}`: a non-blank text of at most 1000 characters per locale.
fn note(value: &Value, path: &str, errors: &mut FieldErrors) -> BTreeMap<String, String> {
    let Some(map) = value.as_object().filter(|m| !m.is_empty()) else {
        errors.push(
            path,
            format!(
                "must map locales to texts, like {{en: \"...\", sv: \"...\"}}, got {}",
                json_kind(value)
            ),
        );
        return BTreeMap::new();
    };
    let mut texts = BTreeMap::new();
    for (locale, text) in map {
        let at = format!("{path}.{locale}");
        if !is_locale(locale) {
            errors.push(&at, "must be a locale like en, sv or sv-SE");
            continue;
        }
        match text.as_str() {
            Some(t) if !t.trim().is_empty() && t.chars().count() <= 1000 => {
                texts.insert(locale.clone(), t.to_owned());
            }
            _ => errors.push(
                at,
                format!("must be a non-blank text of at most 1000 characters, got {text}"),
            ),
        }
    }
    texts
}

/// A BCP 47 language tag's common shape: `en`, `sv-SE`, `zh-Hant-TW`.
fn is_locale(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn channel(f: &Fields, default: Channel, errors: &mut FieldErrors) -> Channel {
    match f.get("channel").map(|v| (v, v.as_str())) {
        None => default,
        Some((_, Some("email"))) => Channel::Email,
        Some((_, Some("sms"))) => Channel::Sms,
        Some((v, _)) => {
            errors.push(
                f.at("channel"),
                format!("must be \"email\" or \"sms\", got {v}"),
            );
            default
        }
    }
}

/// `2026-03-01` exactly (jiff alone would also take other ISO 8601 forms).
fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    (b.len() == 10 && b[4] == b'-' && b[7] == b'-')
        .then(|| text.parse().ok())
        .flatten()
}

// ---------------------------------------------------------------------------------------
// Planning

/// One participant as the daily run sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyMember<'a> {
    pub program: &'a str,
    pub participant: &'a str,
    pub role: &'a str,
    /// The enrolment date, in the participant's time zone.
    pub enrolled_on: Date,
    /// Since enrolment, the current month so far included.
    pub lifetime: Totals,
    /// The current month so far (the program's month of the run's date).
    pub month: Totals,
    /// The segment of today's segmentation, if any (`dormant`, `rising`, ...).
    pub segment: Option<&'a str>,
    /// Whether the profile has a phone number (SMS falls back to email without one).
    pub has_phone: bool,
    pub target: Option<MonthTarget<'a>>,
}

/// The participant's personal target for the month and where they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthTarget<'a> {
    /// The segmentation's activity metric, which the target is in.
    pub metric: &'a Metric,
    pub value: i64,
    /// This month's value of the metric so far.
    pub have: i64,
}

/// What a participant's journeys have done, kept on the participant between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyState {
    /// Per journey id (a participant whose role changes keeps the marks of each journey).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub journeys: BTreeMap<String, JourneyMarks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near_miss: Option<NearMissMarks>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyMarks {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, StepMark>,
    /// Milestone id → the day it was reached.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "date_map")]
    pub milestones: BTreeMap<String, Date>,
    /// The start of the quiet spell last nudged (one nudge per spell).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "option_date")]
    pub dormant_nudged: Option<Date>,
    #[serde(default, skip_serializing_if = "CatchUpMarks::is_empty")]
    pub catch_up: CatchUpMarks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMark {
    #[serde(with = "date")]
    pub on: Date,
    pub outcome: StepOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Sent,
    /// Its `unless` milestone was reached first.
    Unless,
    /// More than `BACKLOG_DAYS` past its day when first due.
    Overdue,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUpMarks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Offer>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late_join_offered: bool,
    /// Offered in the current dormant spell; cleared when the segment is no longer dormant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dormancy_offered: bool,
    /// Offers made and how they ended, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<Settled>,
}

impl CatchUpMarks {
    fn is_empty(&self) -> bool {
        self == &CatchUpMarks::default()
    }
}

/// A catch-up offer under way: its terms as offered, whatever the configuration says later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    #[serde(with = "date")]
    pub started_on: Date,
    pub reason: OfferReason,
    pub goal: Goal,
    /// The goal's value when offered: the offer counts what comes after.
    pub baseline: i64,
    /// The last day that counts.
    #[serde(with = "date")]
    pub deadline: Date,
    pub award: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferReason {
    LateJoin,
    Dormancy,
}

impl OfferReason {
    fn name(self) -> &'static str {
        match self {
            OfferReason::LateJoin => "late_join",
            OfferReason::Dormancy => "dormancy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    #[serde(with = "date")]
    pub started_on: Date,
    pub reason: OfferReason,
    pub completed: bool,
    #[serde(with = "date")]
    pub on: Date,
}

/// Near-miss nudges sent in `month`: drawing ids, and whether the target's was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearMissMarks {
    pub month: String,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub drawings: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub target: bool,
}

/// What the daily run does for one member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum JourneyAction {
    /// A notification request (never essential: journeys are nudges).
    Send {
        id: String,
        kind: String,
        channel: Channel,
        data: Value,
    },
    /// A `points.bonus` event for the member with this id, credited once.
    Award {
        id: String,
        points: i64,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<JourneyAction>,
    /// To store on the participant once the actions are queued.
    pub state: JourneyState,
}

/// The member's journey actions for `today` (the program's date of the run), and the state to
/// keep. Planning again from the returned state on the same day plans nothing.
pub fn plan(
    journeys: &JourneysConfig,
    drawings: &[DrawingConfig],
    member: &JourneyMember<'_>,
    state: &JourneyState,
    today: Date,
) -> Plan {
    let mut state = state.clone();
    let mut run = Run {
        member,
        today,
        actions: Vec::new(),
    };
    if let Some(journey) = journeys.for_role(member.role) {
        let mut marks = state.journeys.remove(&journey.id).unwrap_or_default();
        run.milestones(journey, &mut marks);
        run.steps(journey, &mut marks);
        run.catch_up(journey, &mut marks.catch_up);
        run.dormant(journey, &mut marks);
        if marks != JourneyMarks::default() {
            state.journeys.insert(journey.id.clone(), marks);
        }
        if let Some(near_miss) = &journey.near_miss {
            run.near_miss(near_miss, drawings, &mut state.near_miss);
        }
    }
    Plan {
        actions: run.actions,
        state,
    }
}

struct Run<'a> {
    member: &'a JourneyMember<'a>,
    today: Date,
    actions: Vec<JourneyAction>,
}

impl Run<'_> {
    /// `{program}:{cause...}:{participant}`
    fn id(&self, cause: &[&str]) -> String {
        format!(
            "{}:{}:{}",
            self.member.program,
            cause.join(":"),
            self.member.participant
        )
    }

    /// SMS only to a member with a phone number; email otherwise.
    fn send(&mut self, id: String, kind: &str, channel: Channel, data: Value) {
        let channel = match channel {
            Channel::Sms if self.member.has_phone => Channel::Sms,
            _ => Channel::Email,
        };
        self.actions.push(JourneyAction::Send {
            id,
            kind: kind.to_owned(),
            channel,
            data,
        });
    }

    fn days_since(&self, date: Date) -> i64 {
        i64::from((self.today - date).get_days())
    }

    fn milestones(&mut self, journey: &Journey, marks: &mut JourneyMarks) {
        for m in &journey.milestones {
            if marks.milestones.contains_key(&m.id)
                || m.goal.value(&self.member.lifetime) < m.goal.need()
            {
                continue;
            }
            marks.milestones.insert(m.id.clone(), self.today);
            let mut data = journey_data(journey);
            data.insert("milestone".into(), json!(m.id));
            data.insert("title".into(), json!(m.title));
            data.insert("goal".into(), m.goal.data());
            data.insert("award".into(), json!(m.award));
            if let Some(survey) = &m.survey {
                data.insert("survey".into(), json!(survey));
            }
            if let Some(prompt) = &m.prompt {
                data.insert("prompt".into(), json!(prompt));
            }
            let id = self.id(&["milestone", &journey.id, &m.id]);
            self.send(id, "journey.milestone", Channel::Email, Value::Object(data));
            if m.award > 0 {
                self.actions.push(JourneyAction::Award {
                    id: format!("milestone:{}:{}", journey.id, m.id),
                    points: m.award,
                    reason: format!("Milestone reached: {}", m.title),
                });
            }
        }
    }

    fn steps(&mut self, journey: &Journey, marks: &mut JourneyMarks) {
        let enrolled_days = self.days_since(self.member.enrolled_on);
        for step in &journey.steps {
            if marks.steps.contains_key(&step.id) || enrolled_days < step.day {
                continue;
            }
            let outcome = if step
                .unless
                .as_ref()
                .is_some_and(|m| marks.milestones.contains_key(m))
            {
                StepOutcome::Unless
            } else if enrolled_days - step.day > BACKLOG_DAYS {
                StepOutcome::Overdue
            } else {
                let id = self.id(&["journey", &journey.id, &step.id]);
                self.send(id, step.kind.name(), step.channel, step_data(journey, step));
                StepOutcome::Sent
            };
            marks.steps.insert(
                step.id.clone(),
                StepMark {
                    on: self.today,
                    outcome,
                },
            );
        }
    }

    fn catch_up(&mut self, journey: &Journey, marks: &mut CatchUpMarks) {
        // An offer under way is settled on its own terms, even if the configuration changed.
        if let Some(offer) = marks.active.take() {
            let reached =
                offer.goal.value(&self.member.lifetime) - offer.baseline >= offer.goal.need();
            if reached {
                let start = offer.started_on.to_string();
                let mut data = journey_data(journey);
                data.insert("reason".into(), json!(offer.reason.name()));
                data.insert("goal".into(), offer.goal.data());
                data.insert("award".into(), json!(offer.award));
                data.insert("started_on".into(), json!(start));
                let id = self.id(&["catch_up_done", &journey.id, &start]);
                self.send(
                    id,
                    "journey.catch_up_done",
                    Channel::Email,
                    Value::Object(data),
                );
                if offer.award > 0 {
                    self.actions.push(JourneyAction::Award {
                        id: format!("catch_up:{}:{start}", journey.id),
                        points: offer.award,
                        reason: format!("Catch-up goal reached: {}", journey.title),
                    });
                }
            }
            // Settled at the first run after the deadline day, so that day counts in full.
            if reached || self.today > offer.deadline {
                marks.settled.push(Settled {
                    started_on: offer.started_on,
                    reason: offer.reason,
                    completed: reached,
                    on: self.today,
                });
            } else {
                marks.active = Some(offer);
            }
        }
        let dormant = self.member.segment == Some(DORMANT_SEGMENT);
        if !dormant {
            marks.dormancy_offered = false;
        }
        let Some(config) = &journey.catch_up else {
            return;
        };
        if marks.active.is_some() {
            return;
        }
        let enrolled_days = self.days_since(self.member.enrolled_on);
        let reason = if !marks.late_join_offered
            && config
                .late_join_after
                .is_some_and(|after| self.member.enrolled_on >= after)
            && (0..=BACKLOG_DAYS).contains(&enrolled_days)
        {
            marks.late_join_offered = true;
            OfferReason::LateJoin
        } else if config.dormant && dormant && !marks.dormancy_offered {
            marks.dormancy_offered = true;
            OfferReason::Dormancy
        } else {
            return;
        };
        let deadline = self
            .today
            .saturating_add(jiff::Span::new().days(config.within_days));
        let offer = Offer {
            started_on: self.today,
            reason,
            goal: config.goal.clone(),
            baseline: config.goal.value(&self.member.lifetime),
            deadline,
            award: config.award,
        };
        let start = offer.started_on.to_string();
        let mut data = journey_data(journey);
        data.insert("reason".into(), json!(reason.name()));
        data.insert("goal".into(), offer.goal.data());
        data.insert("within_days".into(), json!(config.within_days));
        data.insert("award".into(), json!(offer.award));
        data.insert("deadline".into(), json!(deadline.to_string()));
        let id = self.id(&["catch_up", &journey.id, &start]);
        self.send(id, "journey.catch_up", config.channel, Value::Object(data));
        marks.active = Some(offer);
    }

    fn dormant(&mut self, journey: &Journey, marks: &mut JourneyMarks) {
        let Some(config) = &journey.dormant else {
            return;
        };
        let since = marks
            .milestones
            .values()
            .copied()
            .chain([self.member.enrolled_on])
            .max()
            .expect("the enrolment date is there");
        let days_inactive = self.days_since(since);
        if days_inactive < config.after_days || marks.dormant_nudged == Some(since) {
            return;
        }
        // The nudge points to the next milestone: with all reached, there is nothing to ask.
        let Some(next) = journey
            .milestones
            .iter()
            .find(|m| !marks.milestones.contains_key(&m.id))
        else {
            return;
        };
        marks.dormant_nudged = Some(since);
        let have = next.goal.value(&self.member.lifetime);
        let mut data = journey_data(journey);
        data.insert("since".into(), json!(since.to_string()));
        data.insert("days_inactive".into(), json!(days_inactive));
        data.insert(
            "next".into(),
            json!({
                "milestone": next.id,
                "title": next.title,
                "goal": next.goal.data(),
                "have": have,
                "missing": next.goal.need() - have,
                "award": next.award,
            }),
        );
        let id = self.id(&["dormant", &journey.id, &since.to_string()]);
        self.send(id, "journey.dormant", config.channel, Value::Object(data));
    }

    fn near_miss(
        &mut self,
        config: &NearMiss,
        drawings: &[DrawingConfig],
        marks: &mut Option<NearMissMarks>,
    ) {
        let month = format!("{:04}-{:02}", self.today.year(), self.today.month());
        // Today counts: the run is early in the day.
        let days_left = i64::from(self.today.days_in_month() - self.today.day()) + 1;
        if days_left > config.days_left_at_most {
            return;
        }
        let mut sent = marks
            .take()
            .filter(|m| m.month == month)
            .unwrap_or_else(|| NearMissMarks {
                month: month.clone(),
                ..NearMissMarks::default()
            });
        let member = self.member;
        if config.drawings {
            for drawing in drawings {
                let eligible = drawing.period == Period::Month
                    && drawing
                        .roles
                        .as_ref()
                        .is_none_or(|roles| roles.iter().any(|r| r == member.role));
                if !eligible || sent.drawings.contains(&drawing.id) {
                    continue;
                }
                let have = drawing.metric.of(&member.month);
                let Some(missing) =
                    config.missing(&drawing.metric, drawing.at_least, have, days_left)
                else {
                    continue;
                };
                let mut data = metric_data(&drawing.metric);
                data.insert("drawing".into(), json!(drawing.id));
                data.insert("title".into(), json!(drawing.title));
                data.insert("month".into(), json!(month));
                data.insert("have".into(), json!(have));
                data.insert("need".into(), json!(drawing.at_least));
                data.insert("missing".into(), json!(missing));
                data.insert("days_left".into(), json!(days_left));
                let id = self.id(&["near_miss", &drawing.id, &month]);
                self.send(id, "near_miss.drawing", config.channel, Value::Object(data));
                sent.drawings.insert(drawing.id.clone());
            }
        }
        if config.target
            && !sent.target
            && let Some(target) = &member.target
            && let Some(missing) =
                config.missing(target.metric, target.value, target.have, days_left)
        {
            let mut data = metric_data(target.metric);
            data.insert("target".into(), json!(target.value));
            data.insert("month".into(), json!(month));
            data.insert("have".into(), json!(target.have));
            data.insert("missing".into(), json!(missing));
            data.insert("days_left".into(), json!(days_left));
            let id = self.id(&["near_target", &month]);
            self.send(id, "near_miss.target", config.channel, Value::Object(data));
            sent.target = true;
        }
        if sent
            != (NearMissMarks {
                month,
                ..NearMissMarks::default()
            })
        {
            *marks = Some(sent);
        }
    }
}

fn journey_data(journey: &Journey) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("journey".into(), json!(journey.id));
    data.insert("journey_title".into(), json!(journey.title));
    data
}

fn step_data(journey: &Journey, step: &Step) -> Value {
    let mut data = journey_data(journey);
    data.insert("step".into(), json!(step.id));
    data.insert("day".into(), json!(step.day));
    if let Some(question) = &step.question {
        data.insert("question".into(), json!(question));
    }
    if let Some(url) = &step.url {
        data.insert("url".into(), json!(url));
    }
    if !step.note.is_empty() {
        data.insert("note".into(), json!(step.note));
    }
    if let Some(m) = step
        .unless
        .as_ref()
        .and_then(|id| journey.milestones.iter().find(|m| &m.id == id))
    {
        data.insert(
            "unless".into(),
            json!({"milestone": m.id, "title": m.title, "goal": m.goal.data(), "award": m.award}),
        );
    }
    Value::Object(data)
}

/// `metric`, and `events` (the types counted) for the events metric.
fn metric_data(metric: &Metric) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("metric".into(), json!(metric.name()));
    if let Metric::Events(types) = metric {
        data.insert("events".into(), json!(types));
    }
    data
}

/// Dates in the stored state as `2026-11-03` (jiff's serde support is not enabled).
mod date {
    use jiff::civil::Date;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(date)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_date(&text).ok_or_else(|| D::Error::custom(format!("not a date: {text:?}")))
    }
}

mod option_date {
    use jiff::civil::Date;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(date: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        match date {
            Some(date) => super::date::serialize(date, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::date")] Date);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(date)| date))
    }
}

mod date_map {
    use jiff::civil::Date;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super::date")] Date);

    pub fn serialize<S: Serializer>(
        dates: &BTreeMap<String, Date>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(dates.iter().map(|(k, d)| (k, Wrapped(*d))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Date>, D::Error> {
        Ok(BTreeMap::<String, Wrapped>::deserialize(d)?
            .into_iter()
            .map(|(k, Wrapped(date))| (k, date))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const DOC: &str = include_str!("../../../docs/journeys.md");

    /// The first fenced block of `language` in docs/journeys.md.
    fn documented(language: &str) -> &'static str {
        let fence = format!("```{language}\n");
        let start = DOC.find(&fence).expect("a documented block") + fence.len();
        &DOC[start..start + DOC[start..].find("```").expect("a closed block")]
    }

    fn parsed(text: &str) -> (JourneysConfig, Vec<String>) {
        let document: Value = serde_yaml_ng::from_str(text).unwrap();
        let mut errors = FieldErrors::default();
        let config = parse(&document, &mut errors);
        let mut fields: Vec<String> = errors.0.into_iter().map(|e| e.field).collect();
        fields.sort();
        (config, fields)
    }

    fn example() -> JourneysConfig {
        let (config, errors) = parsed(documented("yaml"));
        assert!(errors.is_empty(), "{errors:?}");
        config
    }

    fn rep(enrolled_on: Date) -> JourneyMember<'static> {
        JourneyMember {
            program: "acme",
            participant: "p-1",
            role: "rep",
            enrolled_on,
            lifetime: Totals::default(),
            month: Totals::default(),
            segment: None,
            has_phone: true,
            target: None,
        }
    }

    fn deals(n: i64) -> Totals {
        Totals {
            counts: BTreeMap::from([("deal.registered".to_owned(), n)]),
            ..Totals::default()
        }
    }

    /// Plans `today` and checks that planning again from the new state plans nothing.
    fn run(
        config: &JourneysConfig,
        drawings: &[DrawingConfig],
        member: &JourneyMember<'_>,
        state: &mut JourneyState,
        today: Date,
    ) -> Vec<JourneyAction> {
        let first = plan(config, drawings, member, state, today);
        let again = plan(config, drawings, member, &first.state, today);
        assert_eq!(again.actions, [], "a rerun on {today} plans nothing new");
        assert_eq!(again.state, first.state);
        *state = first.state;
        first.actions
    }

    fn sends(actions: &[JourneyAction]) -> Vec<(&str, &str, Channel)> {
        actions
            .iter()
            .filter_map(|a| match a {
                JourneyAction::Send {
                    id, kind, channel, ..
                } => Some((id.as_str(), kind.as_str(), *channel)),
                JourneyAction::Award { .. } => None,
            })
            .collect()
    }

    fn data<'a>(actions: &'a [JourneyAction], kind: &str) -> &'a Value {
        actions
            .iter()
            .find_map(|a| match a {
                JourneyAction::Send { kind: k, data, .. } if k == kind => Some(data),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {kind} in {actions:?}"))
    }

    fn awards(actions: &[JourneyAction]) -> Vec<(&str, i64)> {
        actions
            .iter()
            .filter_map(|a| match a {
                JourneyAction::Award { id, points, .. } => Some((id.as_str(), *points)),
                JourneyAction::Send { .. } => None,
            })
            .collect()
    }

    fn drawing(id: &str, period: Period, metric: Metric, at_least: i64) -> DrawingConfig {
        DrawingConfig {
            id: id.into(),
            title: format!("The {id} drawing"),
            period,
            metric,
            at_least,
            entries_per_unit: false,
            roles: None,
            prizes: Vec::new(),
        }
    }

    #[test]
    fn the_example_parses_as_documented() {
        let config = example();
        let onboarding = &config.journeys[0];
        assert_eq!(onboarding.steps.len(), 5);
        assert_eq!(onboarding.steps[2].channel, Channel::Sms);
        assert_eq!(onboarding.steps[2].unless.as_deref(), Some("first_deal"));
        assert_eq!(onboarding.steps[3].note["sv"], "Det tar en minut.");
        assert_eq!(
            onboarding.milestones[0].goal,
            Goal::Events {
                event: "deal.registered".into(),
                count: 1
            }
        );
        assert_eq!(onboarding.milestones[2].goal, Goal::Points(1000));
        let catch_up = onboarding.catch_up.as_ref().unwrap();
        assert_eq!(catch_up.late_join_after, Some(date(2026, 3, 1)));
        assert!(catch_up.dormant);
        let near_miss = onboarding.near_miss.as_ref().unwrap();
        assert!(near_miss.drawings && near_miss.target);
        assert_eq!(near_miss.channel, Channel::Email);
        assert_eq!(
            onboarding.dormant,
            Some(Dormant {
                after_days: 30,
                channel: Channel::Sms
            })
        );
        assert_eq!(config.journeys[1].title, "For managers");
        assert_eq!(parsed("program: acme").0, JourneysConfig::default());
    }

    #[test]
    fn every_error_names_its_path() {
        let cases: [(&str, &[&str]); 12] = [
            ("journeys: {id: onboarding}", &["journeys"]),
            (
                "journeys: [{id: Onboarding}, {id: a, roles: [rep]}, {id: a, roles: [rep]}]",
                &["journeys[0].id", "journeys[2].id", "journeys[2].roles[0]"],
            ),
            (
                "journeys: [{id: a}, {id: b}, {id: c, colour: red}]",
                &[
                    "journeys[1].roles",
                    "journeys[2].colour",
                    "journeys[2].roles",
                ],
            ),
            (
                "journeys: [{id: a, steps: [{id: s, day: 366, kind: journey.poke, channel: push}]}]",
                &[
                    "journeys[0].steps[0].channel",
                    "journeys[0].steps[0].day",
                    "journeys[0].steps[0].kind",
                ],
            ),
            (
                "journeys: [{id: a, steps: [{id: s, day: 1, kind: journey.tip, unless: first_deal}, {id: s, kind: journey.tip}]}]",
                &[
                    "journeys[0].steps[0].unless",
                    "journeys[0].steps[1].day",
                    "journeys[0].steps[1].id",
                ],
            ),
            (
                "journeys: [{id: a, steps: [{id: p, day: 3, kind: journey.profile_prompt}, {id: q, day: 3, kind: journey.pulse_survey, question: Why?, url: 'http://x.example', note: {English: Hi, sv: ''}}]}]",
                &[
                    "journeys[0].steps[0].question",
                    "journeys[0].steps[0].url",
                    "journeys[0].steps[1].note.English",
                    "journeys[0].steps[1].note.sv",
                    "journeys[0].steps[1].url",
                ],
            ),
            (
                "journeys: [{id: a, milestones: [{id: m, when: {login_days: 3, points: 5}, award: -1}, {id: m, when: {count: 2, points: 5}, survey: {question: Why?}}]}]",
                &[
                    "journeys[0].milestones[0].award",
                    "journeys[0].milestones[0].when",
                    "journeys[0].milestones[1].id",
                    "journeys[0].milestones[1].survey.url",
                    "journeys[0].milestones[1].when.count",
                ],
            ),
            (
                "journeys: [{id: a, milestones: [{id: m, when: {event: Deal Won}, award: 1000001}, {id: n}]}]",
                &[
                    "journeys[0].milestones[0].award",
                    "journeys[0].milestones[0].when.event",
                    "journeys[0].milestones[1].when",
                ],
            ),
            (
                "journeys: [{id: a, dormant: {after_days: 0}}]",
                &["journeys[0].dormant", "journeys[0].dormant.after_days"],
            ),
            (
                "journeys: [{id: a, catch_up: {goal: {points: 100}}}, {id: b, roles: [x, x], catch_up: {dormant: false, late_join_after: March 1, within_days: 0}}]",
                &[
                    "journeys[0].catch_up",
                    "journeys[1].catch_up.goal",
                    "journeys[1].catch_up.late_join_after",
                    "journeys[1].catch_up.within_days",
                    "journeys[1].roles[1]",
                ],
            ),
            (
                "journeys: [{id: a, near_miss: {drawings: false, target: false, days_left_at_most: 40, when: soon}}]",
                &[
                    "journeys[0].near_miss",
                    "journeys[0].near_miss.days_left_at_most",
                    "journeys[0].near_miss.when",
                ],
            ),
            (
                "journeys: [{id: a, near_miss: {drawings: 'no', missing_points_at_most: 0, channel: email}}]",
                &[
                    "journeys[0].near_miss.drawings",
                    "journeys[0].near_miss.missing_points_at_most",
                ],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parsed(text).1, expected, "{text}");
        }
    }

    #[test]
    fn steps_follow_each_reps_own_enrolment() {
        let config = example();
        for enrolled in [date(2026, 1, 12), date(2026, 2, 20)] {
            let member = rep(enrolled);
            let mut state = JourneyState::default();
            let on = |days: i64| enrolled.saturating_add(jiff::Span::new().days(days));
            assert_eq!(
                sends(&run(&config, &[], &member, &mut state, on(0))),
                [
                    (
                        "acme:journey:onboarding:welcome:p-1",
                        "journey.welcome",
                        Channel::Email
                    ),
                    (
                        "acme:journey:onboarding:welcome_quiz:p-1",
                        "journey.welcome_quiz",
                        Channel::Email
                    ),
                ]
            );
            assert!(run(&config, &[], &member, &mut state, on(6)).is_empty());
            assert_eq!(
                sends(&run(&config, &[], &member, &mut state, on(7))),
                [(
                    "acme:journey:onboarding:first_action:p-1",
                    "journey.first_action_nudge",
                    Channel::Sms
                )]
            );
            let profile = run(&config, &[], &member, &mut state, on(15));
            assert_eq!(
                data(&profile, "journey.profile_prompt"),
                &json!({
                    "journey": "onboarding", "journey_title": "Onboarding", "step": "profile",
                    "day": 14, "question": "Which product lines do you sell?",
                    "url": "https://portal.example.com/profile",
                    "note": {"en": "It takes a minute.", "sv": "Det tar en minut."}
                })
            );
            assert_eq!(state.journeys["onboarding"].steps.len(), 4);
        }
    }

    #[test]
    fn sms_falls_back_to_email_without_a_phone() {
        let member = JourneyMember {
            has_phone: false,
            ..rep(date(2026, 1, 12))
        };
        let actions = run(
            &example(),
            &[],
            &member,
            &mut JourneyState::default(),
            date(2026, 1, 19),
        );
        assert!(
            sends(&actions)
                .iter()
                .all(|(_, _, channel)| *channel == Channel::Email)
        );
        assert_eq!(sends(&actions).len(), 3);
    }

    #[test]
    fn a_reached_milestone_cancels_its_step_and_is_congratulated_once() {
        let config = example();
        let mut member = rep(date(2026, 1, 12));
        let mut state = JourneyState::default();
        run(&config, &[], &member, &mut state, date(2026, 1, 12));
        member.lifetime = deals(1);
        let actions = run(&config, &[], &member, &mut state, date(2026, 1, 19));
        assert_eq!(
            sends(&actions),
            [(
                "acme:milestone:onboarding:first_deal:p-1",
                "journey.milestone",
                Channel::Email
            )]
        );
        assert_eq!(awards(&actions), [("milestone:onboarding:first_deal", 100)]);
        assert_eq!(
            data(&actions, "journey.milestone"),
            &json!({
                "journey": "onboarding", "journey_title": "Onboarding",
                "milestone": "first_deal", "title": "First deal",
                "goal": {"event": "deal.registered", "count": 1},
                "award": 100,
                "survey": {"question": "How was your first deal?",
                           "url": "https://portal.example.com/survey/first-deal"}
            })
        );
        assert_eq!(
            state.journeys["onboarding"].steps["first_action"],
            StepMark {
                on: date(2026, 1, 19),
                outcome: StepOutcome::Unless
            }
        );
        // Reversals take the count back down: a milestone stays reached.
        member.lifetime = deals(0);
        assert!(run(&config, &[], &member, &mut state, date(2026, 1, 20)).is_empty());
    }

    #[test]
    fn several_milestones_at_once_each_award_once() {
        let mut member = rep(date(2026, 1, 12));
        member.lifetime = Totals {
            points: 1200,
            login_days: 10,
            ..deals(2)
        };
        let mut state = JourneyState::default();
        let actions = run(&example(), &[], &member, &mut state, date(2026, 1, 12));
        let milestones: Vec<&str> = sends(&actions)
            .into_iter()
            .filter(|(_, kind, _)| *kind == "journey.milestone")
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(milestones.len(), 3);
        assert_eq!(
            awards(&actions),
            [
                ("milestone:onboarding:first_deal", 100),
                ("milestone:onboarding:points_1000", 50)
            ]
        );
        // The first action step is not sent: its milestone came first.
        assert!(
            sends(&actions)
                .iter()
                .all(|(_, kind, _)| *kind != "journey.first_action_nudge")
        );
    }

    #[test]
    fn long_time_reps_are_not_flooded_when_a_journey_starts() {
        let config = example();
        let cases = [
            // (enrolled, first run, steps sent)
            (date(2025, 6, 1), date(2026, 2, 1), 0),
            (date(2026, 1, 1), date(2026, 2, 1), 2), // day 0 and 7 at most 30 days late
            (date(2026, 1, 10), date(2026, 2, 1), 4),
        ];
        for (enrolled, first_run, sent) in cases {
            let mut state = JourneyState::default();
            let actions = run(&config, &[], &rep(enrolled), &mut state, first_run);
            let steps = sends(&actions)
                .into_iter()
                .filter(|(id, _, _)| id.starts_with("acme:journey:"))
                .count();
            assert_eq!(steps, sent, "enrolled {enrolled}");
            let marks = &state.journeys["onboarding"].steps;
            let overdue = marks
                .values()
                .filter(|m| m.outcome == StepOutcome::Overdue)
                .count();
            assert_eq!(sent + overdue, marks.len());
        }
    }

    #[test]
    fn a_quiet_spell_gets_one_nudge_toward_the_next_milestone() {
        let config = example();
        let mut member = rep(date(2026, 2, 10));
        let mut state = JourneyState::default();
        let dormant = |actions: &[JourneyAction]| -> Vec<(String, Channel)> {
            sends(actions)
                .into_iter()
                .filter(|(_, kind, _)| *kind == "journey.dormant")
                .map(|(id, _, channel)| (id.to_owned(), channel))
                .collect()
        };
        run(&config, &[], &member, &mut state, date(2026, 2, 10));
        assert_eq!(
            dormant(&run(&config, &[], &member, &mut state, date(2026, 3, 11))),
            []
        );
        let nudge = run(&config, &[], &member, &mut state, date(2026, 3, 12));
        assert_eq!(
            dormant(&nudge),
            [(
                "acme:dormant:onboarding:2026-02-10:p-1".to_owned(),
                Channel::Sms
            )]
        );
        assert_eq!(
            data(&nudge, "journey.dormant"),
            &json!({
                "journey": "onboarding", "journey_title": "Onboarding",
                "since": "2026-02-10", "days_inactive": 30,
                "next": {"milestone": "first_deal", "title": "First deal",
                         "goal": {"event": "deal.registered", "count": 1},
                         "have": 0, "missing": 1, "award": 100}
            })
        );
        assert_eq!(
            dormant(&run(&config, &[], &member, &mut state, date(2026, 3, 30))),
            []
        );
        // A milestone ends the spell; the next one starts that day.
        member.lifetime.login_days = 10;
        run(&config, &[], &member, &mut state, date(2026, 4, 2));
        member.has_phone = false;
        assert_eq!(
            dormant(&run(&config, &[], &member, &mut state, date(2026, 5, 2))),
            [(
                "acme:dormant:onboarding:2026-04-02:p-1".to_owned(),
                Channel::Email
            )]
        );
        // With every milestone reached there is nothing to nudge toward.
        member.lifetime = Totals {
            points: 1000,
            login_days: 10,
            ..deals(1)
        };
        run(&config, &[], &member, &mut state, date(2026, 5, 3));
        assert_eq!(
            dormant(&run(&config, &[], &member, &mut state, date(2026, 9, 1))),
            []
        );
    }

    #[test]
    fn near_misses_nudge_in_the_last_days_once_a_month() {
        let config = example();
        let drawings = [
            drawing("logins", Period::Month, Metric::LoginDays, 10),
            drawing("points", Period::Month, Metric::Points, 500),
            drawing(
                "deals",
                Period::Quarter,
                Metric::Events(vec!["deal.registered".into()]),
                3,
            ),
            DrawingConfig {
                roles: Some(vec!["manager".into()]),
                ..drawing("managers", Period::Month, Metric::LoginDays, 10)
            },
        ];
        let with_month = |login_days: i64, points: i64| JourneyMember {
            month: Totals {
                points,
                login_days,
                ..Totals::default()
            },
            ..rep(date(2025, 1, 1))
        };
        let near = |member: &JourneyMember, today: Date| -> Vec<String> {
            // A state with the steps done, so only near-miss nudges remain.
            let mut state = JourneyState::default();
            run(&config, &drawings, member, &mut state, date(2025, 1, 1));
            sends(&run(&config, &drawings, member, &mut state, today))
                .into_iter()
                .filter(|(_, kind, _)| kind.starts_with("near_miss."))
                .map(|(id, _, _)| id.to_owned())
                .collect()
        };
        let cases: [(i64, i64, Date, &[&str]); 7] = [
            (
                8,
                0,
                date(2026, 3, 25),
                &["acme:near_miss:logins:2026-03:p-1"],
            ),
            (7, 0, date(2026, 3, 25), &[]), // 3 missing
            (8, 0, date(2026, 3, 24), &[]), // 8 days left
            (8, 0, date(2026, 3, 31), &[]), // 2 missing, 1 day left
            (
                9,
                0,
                date(2026, 3, 31),
                &["acme:near_miss:logins:2026-03:p-1"],
            ),
            (
                10,
                450,
                date(2026, 2, 28),
                &["acme:near_miss:points:2026-02:p-1"],
            ),
            (10, 350, date(2026, 2, 28), &[]), // 150 points missing
        ];
        for (login_days, points, today, expected) in cases {
            assert_eq!(
                near(&with_month(login_days, points), today),
                expected,
                "{login_days} login days, {points} points on {today}"
            );
        }

        let mut member = with_month(8, 0);
        member.target = Some(MonthTarget {
            metric: &Metric::LoginDays,
            value: 9,
            have: 8,
        });
        let mut state = JourneyState::default();
        let actions = run(&config, &drawings, &member, &mut state, date(2026, 3, 26));
        assert_eq!(
            data(&actions, "near_miss.drawing"),
            &json!({"drawing": "logins", "title": "The logins drawing", "metric": "login_days",
                    "month": "2026-03", "have": 8, "need": 10, "missing": 2, "days_left": 6})
        );
        assert_eq!(
            data(&actions, "near_miss.target"),
            &json!({"target": 9, "metric": "login_days", "month": "2026-03", "have": 8,
                    "missing": 1, "days_left": 6})
        );
        assert!(run(&config, &drawings, &member, &mut state, date(2026, 3, 27)).is_empty());
        let april = run(&config, &drawings, &member, &mut state, date(2026, 4, 27));
        assert_eq!(
            sends(&april)
                .iter()
                .map(|(id, _, _)| *id)
                .collect::<Vec<_>>(),
            [
                "acme:near_miss:logins:2026-04:p-1",
                "acme:near_target:2026-04:p-1"
            ]
        );
    }

    #[test]
    fn a_late_joiner_is_offered_a_catch_up_and_rewarded_for_it() {
        let config = example();
        let mut member = rep(date(2026, 3, 5));
        member.lifetime.login_days = 1;
        let mut state = JourneyState::default();
        let offer = run(&config, &[], &member, &mut state, date(2026, 3, 5));
        assert!(sends(&offer).contains(&(
            "acme:catch_up:onboarding:2026-03-05:p-1",
            "journey.catch_up",
            Channel::Email
        )));
        assert_eq!(
            data(&offer, "journey.catch_up"),
            &json!({"journey": "onboarding", "journey_title": "Onboarding",
                    "reason": "late_join", "goal": {"login_days": 3},
                    "within_days": 14, "award": 200, "deadline": "2026-03-19"})
        );
        // Counted from the offer: 1 login day before it does not count.
        member.lifetime.login_days = 3;
        assert!(run(&config, &[], &member, &mut state, date(2026, 3, 10)).is_empty());
        member.lifetime.login_days = 4;
        let done = run(&config, &[], &member, &mut state, date(2026, 3, 20));
        assert_eq!(
            sends(&done)
                .into_iter()
                .filter(|(_, kind, _)| kind.starts_with("journey.catch_up"))
                .collect::<Vec<_>>(),
            [(
                "acme:catch_up_done:onboarding:2026-03-05:p-1",
                "journey.catch_up_done",
                Channel::Email
            )]
        );
        assert_eq!(awards(&done), [("catch_up:onboarding:2026-03-05", 200)]);
        let marks = &state.journeys["onboarding"].catch_up;
        assert_eq!(marks.active, None);
        assert_eq!(
            marks.settled,
            [Settled {
                started_on: date(2026, 3, 5),
                reason: OfferReason::LateJoin,
                completed: true,
                on: date(2026, 3, 20)
            }]
        );
    }

    #[test]
    fn a_dormant_rep_is_offered_a_catch_up_once_per_dormant_spell() {
        let config = example();
        let mut member = rep(date(2025, 1, 1));
        let mut state = JourneyState::default();
        let offers = |actions: &[JourneyAction]| -> Vec<String> {
            sends(actions)
                .into_iter()
                .filter(|(_, kind, _)| kind.starts_with("journey.catch_up"))
                .map(|(id, _, _)| id.to_owned())
                .collect()
        };
        // Enrolled before late_join_after: no late-join offer.
        assert_eq!(
            offers(&run(&config, &[], &member, &mut state, date(2026, 5, 1))),
            Vec::<String>::new()
        );
        member.segment = Some("dormant");
        assert_eq!(
            offers(&run(&config, &[], &member, &mut state, date(2026, 5, 2))),
            ["acme:catch_up:onboarding:2026-05-02:p-1"]
        );
        // Not reached by the deadline (16 May): it expires without a message, and the same
        // spell is not offered another.
        for day in [16, 17, 30] {
            assert_eq!(
                offers(&run(&config, &[], &member, &mut state, date(2026, 5, day))),
                Vec::<String>::new()
            );
        }
        assert_eq!(
            state.journeys["onboarding"].catch_up.settled,
            [Settled {
                started_on: date(2026, 5, 2),
                reason: OfferReason::Dormancy,
                completed: false,
                on: date(2026, 5, 17)
            }]
        );
        member.segment = Some("steady");
        run(&config, &[], &member, &mut state, date(2026, 6, 1));
        member.segment = Some("dormant");
        assert_eq!(
            offers(&run(&config, &[], &member, &mut state, date(2026, 8, 1))),
            ["acme:catch_up:onboarding:2026-08-01:p-1"]
        );
    }

    #[test]
    fn each_role_follows_its_own_journey() {
        let config = example();
        let manager = JourneyMember {
            role: "manager",
            ..rep(date(2026, 2, 10))
        };
        let mut state = JourneyState::default();
        assert_eq!(
            sends(&run(&config, &[], &manager, &mut state, date(2026, 2, 10))),
            [(
                "acme:journey:managers:welcome:p-1",
                "journey.welcome",
                Channel::Email
            )]
        );
        let only_reps = JourneysConfig {
            journeys: config.journeys[..1].to_vec(),
        };
        let before = JourneyState::default();
        let planned = plan(&only_reps, &[], &manager, &before, date(2026, 2, 10));
        assert_eq!((planned.actions, planned.state), (Vec::new(), before));
    }

    #[test]
    fn the_state_is_stored_as_plain_json() {
        let config = example();
        let mut member = rep(date(2026, 3, 5));
        let mut state = JourneyState::default();
        run(&config, &[], &member, &mut state, date(2026, 3, 5));
        member.lifetime = deals(1);
        run(&config, &[], &member, &mut state, date(2026, 3, 6));
        let stored = serde_json::to_value(&state).unwrap();
        assert_eq!(
            stored["journeys"]["onboarding"]["milestones"],
            json!({"first_deal": "2026-03-06"})
        );
        assert_eq!(
            stored["journeys"]["onboarding"]["steps"]["welcome"],
            json!({"on": "2026-03-05", "outcome": "sent"})
        );
        assert_eq!(
            stored["journeys"]["onboarding"]["catch_up"]["active"],
            json!({"started_on": "2026-03-05", "reason": "late_join",
                   "goal": {"login_days": 3}, "baseline": 0, "deadline": "2026-03-19",
                   "award": 200})
        );
        let read: JourneyState = serde_json::from_value(stored).unwrap();
        assert_eq!(read, state);
        assert_eq!(
            serde_json::from_value::<JourneyState>(json!({})).unwrap(),
            JourneyState::default()
        );
    }

    #[test]
    fn the_documented_state_reads_back_as_written() {
        let written: Value = serde_json::from_str(documented("json")).unwrap();
        let state: JourneyState = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(serde_json::to_value(&state).unwrap(), written);
        let offer = state.journeys["onboarding"]
            .catch_up
            .active
            .as_ref()
            .unwrap();
        assert_eq!(offer.deadline, date(2026, 3, 16));
    }

    /// One simulated day of a rep: logins, deals and points, and the day's segment.
    fn day() -> impl Strategy<Value = (bool, i64, i64, bool)> {
        (any::<bool>(), 0i64..2, 0i64..60, prop::bool::weighted(0.2))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Over 120 days of a rep's life, planning again from the returned state plans
        /// nothing, and no id (message or award) is ever planned twice.
        #[test]
        fn reruns_plan_nothing_and_each_id_comes_once(
            enrolled_days_before in 0i64..120,
            days in prop::collection::vec(day(), 120),
            has_phone in any::<bool>(),
            manager in prop::bool::weighted(0.2),
            target in 1i64..25,
        ) {
            let config = example();
            let drawings = [
                drawing("logins", Period::Month, Metric::LoginDays, 10),
                drawing("points", Period::Month, Metric::Points, 500),
                drawing("deals", Period::Month, Metric::Events(vec!["deal.registered".into()]), 2),
            ];
            let start = date(2026, 2, 1);
            let enrolled_on = start.saturating_sub(jiff::Span::new().days(enrolled_days_before));
            let mut member = JourneyMember {
                role: if manager { "manager" } else { "rep" },
                has_phone,
                ..rep(enrolled_on)
            };
            let mut state = JourneyState::default();
            let mut seen = HashSet::new();
            for (n, (login, deals, points, dormant)) in days.into_iter().enumerate() {
                let today = start.saturating_add(jiff::Span::new().days(n as i64));
                if today.day() == 1 {
                    member.month = Totals::default();
                }
                member.segment = dormant.then_some(DORMANT_SEGMENT);
                member.target = Some(MonthTarget {
                    metric: &Metric::LoginDays,
                    value: target,
                    have: member.month.login_days,
                });
                let planned = plan(&config, &drawings, &member, &state, today);
                for action in &planned.actions {
                    let id = match action {
                        JourneyAction::Send { id, .. } | JourneyAction::Award { id, .. } => id,
                    };
                    prop_assert!(seen.insert(id.clone()), "{id} planned twice (on {today})");
                }
                let again = plan(&config, &drawings, &member, &planned.state, today);
                prop_assert_eq!(again.actions, Vec::new());
                prop_assert_eq!(&again.state, &planned.state);
                state = planned.state;
                // The day's activity is seen by the next day's run.
                for totals in [&mut member.lifetime, &mut member.month] {
                    totals.login_days += i64::from(login);
                    totals.points += points;
                    *totals.counts.entry("deal.registered".into()).or_default() += deals;
                }
            }
        }
    }
}
