//! Message templates: every kind of message in every built-in locale, each with a subject,
//! a plain text, an HTML body and an SMS, compiled into the binary from `shared/templates/`.
//!
//! A kind's file (`{locale}/{kind}.jinja`) holds the four parts as blocks; the HTML part is
//! rendered with HTML autoescaping, so every value from the request's data or the profile is
//! escaped there, and the layouts (`layout.html`, `layout.txt`, `layout.sms`) wrap the parts
//! with the header, the footer and the unsubscribe link. The subject and the SMS are one
//! line of text, whatever the data holds. The data each kind reads is listed in
//! docs/notifications.md; `samples.json` has a realistic example of each.

use super::message::{LOCALES, NotificationRequest, NotificationsConfig, Recipient, is_https_url};
use super::participant::Profile;
use minijinja::value::{Serde, Value as Jinja};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, context};
use serde::Serialize;
use serde_json::Value;
use std::sync::LazyLock;

/// One kind of message: who receives it and whether its producer marks it essential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub recipient: Recipient,
    /// As the producer sends it: the close's notices are essential, everything else a nudge.
    pub essential: bool,
}

const fn kind(name: &'static str, recipient: Recipient, essential: bool) -> Kind {
    Kind {
        name,
        recipient,
        essential,
    }
}

/// Every kind with templates.
pub const KINDS: [Kind; 20] = [
    kind("non_use.notice", Recipient::Participant, true),
    kind("non_use.first_strike", Recipient::Participant, true),
    kind("non_use.suspended", Recipient::Participant, true),
    kind("non_use.terminated", Recipient::Participant, true),
    kind("non_use.manager", Recipient::Manager, true),
    kind("drawing.won", Recipient::Participant, true),
    kind("journey.welcome", Recipient::Participant, false),
    kind("journey.welcome_quiz", Recipient::Participant, false),
    kind("journey.first_action_nudge", Recipient::Participant, false),
    kind("journey.profile_prompt", Recipient::Participant, false),
    kind("journey.pulse_survey", Recipient::Participant, false),
    kind("journey.tip", Recipient::Participant, false),
    kind("journey.milestone", Recipient::Participant, false),
    kind("journey.dormant", Recipient::Participant, false),
    kind("journey.catch_up", Recipient::Participant, false),
    kind("journey.catch_up_done", Recipient::Participant, false),
    kind("near_miss.drawing", Recipient::Participant, false),
    kind("near_miss.target", Recipient::Participant, false),
    kind("segment.entered", Recipient::Participant, false),
    kind("digest", Recipient::Participant, false),
];

pub fn kind_of(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The files of one locale, by name within the locale: each kind's `.jinja`, the layouts
/// and the shared phrases.
macro_rules! locale_files {
    ($locale:literal) => {
        locale_files!(@ $locale;
            "non_use.notice.jinja" "non_use.first_strike.jinja" "non_use.suspended.jinja"
            "non_use.terminated.jinja" "non_use.manager.jinja" "drawing.won.jinja"
            "journey.welcome.jinja" "journey.welcome_quiz.jinja"
            "journey.first_action_nudge.jinja" "journey.profile_prompt.jinja"
            "journey.pulse_survey.jinja" "journey.tip.jinja" "journey.milestone.jinja"
            "journey.dormant.jinja" "journey.catch_up.jinja" "journey.catch_up_done.jinja"
            "near_miss.drawing.jinja" "near_miss.target.jinja" "segment.entered.jinja"
            "digest.jinja" "layout.html" "layout.txt" "layout.sms" "phrases.jinja")
    };
    (@ $locale:literal; $($file:literal)*) => {
        [$(($file, include_str!(concat!("../../templates/", $locale, "/", $file)))),*]
    };
}

const FILES: [(&str, [(&str, &str); 24]); 2] =
    [("en", locale_files!("en")), ("sv", locale_files!("sv"))];

const SAMPLES: &str = include_str!("../../templates/samples.json");

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters"),
    );
    // Data a producer leaves out renders as nothing; the templates test for what they need.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    for (locale, files) in FILES {
        for (file, source) in files {
            let add = |env: &mut Environment<'static>, name: String| {
                env.add_template_owned(name.clone(), source)
                    .unwrap_or_else(|e| panic!("template {name}: {e:#}"));
            };
            match file.strip_suffix(".jinja") {
                // Autoescape follows the name: the HTML block is rendered from `.html`.
                Some(kind) if kind != "phrases" => {
                    add(&mut env, format!("{locale}/{kind}.html"));
                    add(&mut env, format!("{locale}/{kind}.txt"));
                }
                Some(phrases) => add(&mut env, format!("{locale}/{phrases}")),
                None => add(&mut env, format!("{locale}/{file}")),
            }
        }
    }
    env.add_filter("number", number);
    env.add_filter("period", period);
    env.add_filter("date", date);
    env.add_filter("localized", localized);
    env.add_filter("link", link);
    env.add_filter("share", share);
    env.add_filter("verdict", verdict);
    env.add_filter("sentence", sentence);
    env
});

/// What a message says to whom: everything a template reads besides the locale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageContext {
    /// The program's name.
    pub program: String,
    pub portal_url: Option<String>,
    /// The recipient's first name (the manager's, for mail to a manager).
    pub first_name: String,
    /// The participant's full name, in mail to their manager.
    pub rep_name: Option<String>,
    /// The participant's unsubscribe link; `None` for essential mail, which has none.
    pub unsubscribe_url: Option<String>,
    /// The period a notice is about (`2026-11`).
    pub period: Option<String>,
    pub essential: bool,
    /// The request's figures.
    pub data: Value,
}

impl MessageContext {
    /// The context of `request` for `profile`. A digest without `offers` of its own shows
    /// the program's (`notifications.digest.offers`).
    pub fn new(
        program_name: &str,
        config: &NotificationsConfig,
        profile: &Profile,
        request: &NotificationRequest,
        unsubscribe_url: Option<String>,
    ) -> Self {
        let to_manager = request.recipient == Recipient::Manager;
        let addressee = match (&profile.manager, to_manager) {
            (Some(manager), true) => manager.name.as_str(),
            _ => profile.name.as_str(),
        };
        let mut data = request.data.clone();
        if request.kind == "digest"
            && !config.digest.offers.is_empty()
            && let Value::Object(map) = &mut data
            && !map.contains_key("offers")
        {
            map.insert(
                "offers".into(),
                serde_json::to_value(&config.digest.offers).expect("offers serialize"),
            );
        }
        Self {
            program: program_name.to_owned(),
            portal_url: config.portal_url.clone(),
            first_name: first_name(addressee).to_owned(),
            rep_name: to_manager.then(|| profile.name.clone()),
            unsubscribe_url,
            period: request.period.clone(),
            essential: request.essential,
            data,
        }
    }
}

/// The first word of a name (`Anna` of `Anna Berg`).
pub fn first_name(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or(name)
}

/// A message ready to send: the subject and SMS are one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub sms: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    #[error("{kind} is not sent to a {recipient}")]
    WrongRecipient {
        kind: String,
        recipient: &'static str,
    },
    #[error("no templates in locale {0:?} (built in: en, sv)")]
    UnknownLocale(String),
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
}

/// Renders `kind` for `recipient` in `locale` (one of [`LOCALES`], as
/// `NotificationsConfig::locale_for` picks it).
pub fn render(
    kind: &str,
    recipient: Recipient,
    locale: &str,
    context: &MessageContext,
) -> Result<Rendered, RenderError> {
    let known = kind_of(kind).ok_or_else(|| RenderError::UnknownKind(kind.to_owned()))?;
    if known.recipient != recipient {
        return Err(RenderError::WrongRecipient {
            kind: kind.to_owned(),
            recipient: match recipient {
                Recipient::Participant => "participant",
                Recipient::Manager => "manager",
            },
        });
    }
    if !LOCALES.contains(&locale) {
        return Err(RenderError::UnknownLocale(locale.to_owned()));
    }
    let env = &*TEMPLATES;
    let values = Jinja::from(Serde(context));
    let ctx = context! { locale => locale, ..values };
    let failed = |name: &str| {
        let name = name.to_owned();
        move |e: Error| RenderError::Template {
            name,
            reason: format!("{e:#}"),
        }
    };
    // Each block of the kind's file, from the template whose name sets its escaping.
    let blocks = |name: String, blocks: &[&str]| {
        env.get_template(&name)
            .and_then(|t| t.render_captured(ctx.clone()))
            .and_then(|mut captured| {
                captured
                    .with_state_mut(|state| blocks.iter().map(|b| state.render_block(b)).collect())
            })
            .map_err(failed(&name))
    };
    let parts: Vec<String> = blocks(format!("{locale}/{kind}.txt"), &["subject", "text", "sms"])?;
    let [subject, text, sms] = [&parts[0], &parts[1], &parts[2]].map(String::as_str);
    let (subject, text, sms) = (one_line(subject), tidy(text), one_line(sms));
    let html = blocks(format!("{locale}/{kind}.html"), &["html"])?.remove(0);
    let wrap = |layout: &str, body: Jinja| {
        let name = format!("{locale}/{layout}");
        env.get_template(&name)
            .and_then(|t| t.render(context! { body => body, subject => &subject, ..ctx.clone() }))
            .map_err(failed(&name))
    };
    Ok(Rendered {
        html: wrap("layout.html", Jinja::from_safe_string(html))?,
        text: tidy(&wrap("layout.txt", Jinja::from(text))?),
        sms: gsm_safe(&one_line(&wrap("layout.sms", Jinja::from(sms))?)),
        subject,
    })
}

/// An example request of each kind, as its producer sends it: `(period, data)`.
pub fn sample(kind: &str) -> Option<(Option<String>, Value)> {
    let samples: Value = serde_json::from_str(SAMPLES).expect("samples.json is JSON");
    let sample = samples.get(kind)?;
    Some((
        sample
            .get("period")
            .and_then(Value::as_str)
            .map(str::to_owned),
        sample.get("data").cloned().unwrap_or(Value::Null),
    ))
}

/// One line: control characters (CR, LF above all) and runs of white space become one space;
/// the no-break spaces that group digits stay.
fn one_line(text: &str) -> String {
    text.split(|c: char| {
        (c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{202f}')) || c.is_control()
    })
    .filter(|w| !w.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}

/// Plain text: no trailing spaces, at most one blank line in a row, no blank start or end.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in text.trim().lines().map(str::trim_end) {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

/// The GSM 03.38 basic character set: an SMS of these alone is sent 7-bit, 160 to a part.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Characters of the extension table, two septets each.
const GSM_EXTENDED: &str = "\u{c}^{}\\[~]|€";

/// Septets `text` takes as a 7-bit SMS, or `None` when a character needs UCS-2 (70 to a part).
pub fn gsm7_length(text: &str) -> Option<usize> {
    text.chars().try_fold(0, |n, c| {
        if GSM_BASIC.contains(c) {
            Some(n + 1)
        } else if GSM_EXTENDED.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    })
}

/// Typography that would force an SMS into UCS-2, replaced by its GSM look-alike.
fn gsm_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{a0}' | '\u{2009}' | '\u{202f}' => out.push(' '),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => out.push('-'),
            '\u{2018}' | '\u{2019}' => out.push('\''),
            '\u{201c}' | '\u{201d}' => out.push('"'),
            '\u{2026}' => out.push_str("..."),
            c => out.push(c),
        }
    }
    out
}

fn locale_of(state: &State) -> String {
    state
        .lookup("locale")
        .and_then(|l| l.as_str().map(str::to_owned))
        .unwrap_or_else(|| "en".to_owned())
}

/// `1,234` in English, `1 234` (no-break space) in Swedish; fractions are rounded.
fn number(state: &State, value: Jinja) -> Result<String, Error> {
    let n = match (value.as_i64(), f64::try_from(value.clone())) {
        (Some(n), _) => n,
        (None, Ok(f)) if f.is_finite() => f.round() as i64,
        _ if value.is_undefined() || value.is_none() => return Ok(String::new()),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("number: not a number: {value}"),
            ));
        }
    };
    let separator = if locale_of(state) == "sv" {
        '\u{a0}'
    } else {
        ','
    };
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(separator);
        }
        out.push(d);
    }
    Ok(out)
}

const MONTHS_SV: [&str; 12] = [
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
];

fn month_name(state: &State, month: i8) -> &'static str {
    let names = if locale_of(state) == "sv" {
        &MONTHS_SV
    } else {
        &super::report::MONTHS
    };
    names[(month as usize).clamp(1, 12) - 1]
}

/// A period label in words: `2026-11` November 2026, `2026-Q4` Q4 2026, `2026-W47` week 47.
fn period(state: &State, label: String) -> String {
    let sv = locale_of(state) == "sv";
    match label.split_once('-') {
        Some((year, rest)) if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) => {
            if let Ok(month) = rest.parse::<i8>()
                && (1..=12).contains(&month)
                && rest.len() == 2
            {
                format!("{} {year}", month_name(state, month))
            } else if let Some(week) = rest.strip_prefix('W').and_then(|w| w.parse::<u8>().ok()) {
                format!("{} {week}", if sv { "vecka" } else { "week" })
            } else if rest.starts_with('Q') {
                format!("{rest} {year}")
            } else {
                label
            }
        }
        _ => label,
    }
}

/// A date (or the date of an RFC 3339 time) in words: 31 December 2026, 31 december 2026.
fn date(state: &State, text: String) -> String {
    match text
        .get(..10)
        .and_then(|d| d.parse::<jiff::civil::Date>().ok())
    {
        Some(d) => format!("{} {} {}", d.day(), month_name(state, d.month()), d.year()),
        None => text,
    }
}

/// A text given per locale (`{en: …, sv: …}`) in the message's locale, else English, else
/// any; a plain string as it is.
fn localized(state: &State, value: Jinja) -> Jinja {
    if value.as_str().is_some() {
        return value;
    }
    for key in [locale_of(state).as_str(), "en"] {
        if let Ok(text) = value.get_attr(key)
            && text.as_str().is_some()
        {
            return text;
        }
    }
    value
        .try_iter()
        .ok()
        .and_then(|mut keys| keys.next())
        .and_then(|key| value.get_item(&key).ok())
        .filter(|text| text.as_str().is_some())
        .unwrap_or(Jinja::UNDEFINED)
}

/// The URL when it is an https link, else nothing: data never puts a `javascript:` link in
/// an `href`. In HTML it comes out as is but for `&` (an https URL here holds no quotes or
/// angle brackets), not with every `/` escaped as the autoescape would.
fn link(state: &State, value: Jinja) -> Jinja {
    match value.as_str() {
        _ if value.is_safe() => value,
        Some(url) if is_https_url(url) => match state.auto_escape() {
            minijinja::AutoEscape::None => value,
            _ => Jinja::from_safe_string(url.replace('&', "&amp;")),
        },
        _ => Jinja::UNDEFINED,
    }
}

/// The text with its first letter in upper case, the rest as it is (`CRM` stays `CRM`).
fn sentence(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// `have` as a whole percentage of `need`, 0 to 100.
fn share(have: Jinja, need: Jinja) -> i64 {
    match (have.as_i64(), need.as_i64()) {
        (Some(have), Some(need)) if need > 0 => (have.max(0) * 100 / need).min(100),
        _ => 0,
    }
}

/// The close's verdict (`notice`, `first_strike`, `{"sanctioned": "suspend"}`) as one word:
/// notice, first_strike, suspended or terminated.
fn verdict(value: Jinja) -> &'static str {
    match value.as_str() {
        Some("notice") => "notice",
        Some("first_strike") => "first_strike",
        _ => match value
            .get_attr("sanctioned")
            .ok()
            .as_ref()
            .and_then(Jinja::as_str)
        {
            Some("suspend") => "suspended",
            Some("terminate") => "terminated",
            _ => "",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::{Channel, Offer};
    use serde_json::json;

    const SEGMENTS: [&str; 9] = [
        "never_activated",
        "one_time",
        "dormant",
        "slipping",
        "steady",
        "rising",
        "top_10",
        "top_1",
        "superstar",
    ];

    fn context(kind: &Kind, data: Value, period: Option<String>) -> MessageContext {
        MessageContext {
            program: "ACME Channel Stars".into(),
            portal_url: Some("https://portal.acme.example".into()),
            first_name: if kind.recipient == Recipient::Manager {
                "Erik".into()
            } else {
                "Anna".into()
            },
            rep_name: (kind.recipient == Recipient::Manager).then(|| "Anna Berg".into()),
            unsubscribe_url: (!kind.essential)
                .then(|| "https://api.acme.example/v1/unsubscribe?token=abc.def".into()),
            period,
            essential: kind.essential,
            data,
        }
    }

    fn sample_context(kind: &Kind) -> MessageContext {
        let (period, data) = sample(kind.name).expect("every kind has a sample");
        context(kind, data, period)
    }

    fn rendered(name: &str, locale: &str, data: Value) -> Rendered {
        let kind = kind_of(name).unwrap();
        let (period, _) = sample(name).unwrap();
        render(name, kind.recipient, locale, &context(kind, data, period)).unwrap()
    }

    /// What no part of any message may show: template syntax, or a value that was missing.
    fn assert_clean(what: &str, text: &str) {
        for leftover in [
            "{{",
            "}}",
            "{%",
            "%}",
            "undefined",
            "None",
            "none",
            "  ",
            " .",
        ] {
            assert!(
                !text.contains(leftover),
                "{what} shows {leftover:?}: {text}"
            );
        }
    }

    #[test]
    fn every_kind_renders_in_every_locale_from_its_sample() {
        for kind in &KINDS {
            for locale in LOCALES {
                let what = format!("{} {locale}", kind.name);
                let message = render(kind.name, kind.recipient, locale, &sample_context(kind))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(!message.subject.is_empty(), "{what}: empty subject");
                assert!(
                    message.subject.chars().count() <= 120,
                    "{what}: {}",
                    message.subject
                );
                assert_clean(&format!("{what} subject"), &message.subject);
                assert_clean(&format!("{what} sms"), &message.sms);
                assert!(
                    message
                        .text
                        .starts_with(if locale == "sv" { "Hej " } else { "Hi " })
                );
                for line in message.text.lines() {
                    assert_clean(&format!("{what} text"), line);
                }
                let html = &message.html;
                assert!(html.starts_with("<!DOCTYPE html>"), "{what}");
                assert!(html.contains(&format!("<html lang=\"{locale}\"")), "{what}");
                assert!(
                    html.contains(&format!(
                        "<title>{}</title>",
                        message.subject.replace('\'', "&#x27;")
                    )),
                    "{what}: {html}"
                );
                for banned in [
                    "<script",
                    "<img",
                    "<style",
                    "<link",
                    "<iframe",
                    "javascript:",
                    "{{",
                    "{%",
                    "undefined",
                ] {
                    assert!(!html.contains(banned), "{what}: {banned} in {html}");
                }
                assert!(html.contains("ACME Channel Stars"), "{what}");
            }
        }
    }

    #[test]
    fn every_kind_renders_without_any_data() {
        for kind in &KINDS {
            for locale in LOCALES {
                for data in [json!({}), Value::Null] {
                    let message = render(
                        kind.name,
                        kind.recipient,
                        locale,
                        &context(kind, data, None),
                    )
                    .unwrap_or_else(|e| panic!("{} {locale}: {e}", kind.name));
                    assert_clean(&format!("{} {locale} subject", kind.name), &message.subject);
                    assert_clean(&format!("{} {locale} sms", kind.name), &message.sms);
                    assert!(!message.html.contains("undefined"));
                }
            }
        }
    }

    #[test]
    fn an_sms_fits_one_gsm_part_with_typical_data_and_is_never_long() {
        for kind in &KINDS {
            for locale in LOCALES {
                let message =
                    render(kind.name, kind.recipient, locale, &sample_context(kind)).unwrap();
                let septets = gsm7_length(&message.sms).unwrap_or_else(|| {
                    panic!("{} {locale} is not GSM-7: {}", kind.name, message.sms)
                });
                assert!(
                    septets <= 160,
                    "{} {locale}: {septets} septets: {}",
                    kind.name,
                    message.sms
                );
                assert!(message.sms.starts_with("ACME Channel Stars: "));
                assert_eq!(
                    message.sms.contains("STOP"),
                    !kind.essential,
                    "{} {locale}: nudges say how to stop them",
                    kind.name
                );
                assert!(
                    !message.sms.contains("http"),
                    "no links in SMS: {}",
                    message.sms
                );
            }
        }
        for segment in SEGMENTS {
            for locale in LOCALES {
                let sms = rendered("segment.entered", locale, json!({"segment": segment})).sms;
                assert!(
                    gsm7_length(&sms).is_some_and(|n| n < 300),
                    "{segment} {locale}: {sms}"
                );
            }
        }
    }

    #[test]
    fn every_segment_has_its_own_message() {
        for locale in LOCALES {
            let subjects: std::collections::BTreeSet<String> = SEGMENTS
                .iter()
                .map(|s| rendered("segment.entered", locale, json!({"segment": s})).subject)
                .collect();
            assert_eq!(subjects.len(), SEGMENTS.len(), "{locale}: {subjects:?}");
            let texts: std::collections::BTreeSet<String> = SEGMENTS
                .iter()
                .map(|s| rendered("segment.entered", locale, json!({"segment": s})).text)
                .collect();
            assert_eq!(texts.len(), SEGMENTS.len(), "{locale}");
        }
    }

    #[test]
    fn data_and_names_are_escaped_in_html_and_one_line_in_the_subject() {
        let kind = kind_of("journey.tip").unwrap();
        let mut hostile = context(
            kind,
            json!({"note": {"en": "<script>alert(1)</script> & \"quotes\""}, "url": "javascript:alert(1)"}),
            None,
        );
        hostile.first_name = "<b>Eve</b>\r\nBcc: victim@target.example".into();
        let message = render("journey.tip", Recipient::Participant, "en", &hostile).unwrap();
        assert!(!message.html.contains("<script>"), "{}", message.html);
        assert!(
            message.html.contains("&lt;script&gt;alert(1)&lt;"),
            "{}",
            message.html
        );
        assert!(message.html.contains("&amp; &quot;quotes&quot;"));
        assert!(message.html.contains("&lt;b&gt;Eve&lt;"));
        assert!(!message.html.contains("javascript:"), "the link is dropped");
        assert!(
            message
                .html
                .contains("href=\"https://portal.acme.example\""),
            "the portal instead"
        );
        assert!(
            !message.subject.contains(['\r', '\n']),
            "{}",
            message.subject
        );
        assert!(
            message
                .subject
                .contains("<b>Eve</b> Bcc: victim@target.example")
        );
        assert!(!message.sms.contains(['\r', '\n']));
        assert!(
            message.text.contains("<script>alert(1)</script>"),
            "plain text is not escaped"
        );
    }

    #[test]
    fn figures_read_as_the_locale_writes_them() {
        let data = json!({"week": "2026-W47", "points_week": 1250, "balance": 1234567,
            "available": 1234000, "pending": 567, "expiring": [{"date": "2027-01-31", "points": 2500}],
            "percentile": 72.4});
        let en = rendered("digest", "en", data.clone());
        assert!(
            en.text
                .contains("Your balance: 1,234,567 points (1,234,000 available, 567 pending)"),
            "{}",
            en.text
        );
        assert!(
            en.text.contains("2,500 points expire on 31 January 2027"),
            "{}",
            en.text
        );
        assert!(
            en.text.contains("more active than 72% of your peers"),
            "{}",
            en.text
        );
        assert_eq!(
            en.subject,
            "Anna, your week 47 in ACME Channel Stars: +1,250 points"
        );
        let sv = rendered("digest", "sv", data);
        assert!(sv.text.contains("Ditt saldo: 1\u{a0}234\u{a0}567 poäng (1\u{a0}234\u{a0}000 tillgängliga, 567 väntande)"), "{}", sv.text);
        assert!(
            sv.text
                .contains("2\u{a0}500 poäng förfaller den 31 januari 2027"),
            "{}",
            sv.text
        );
        assert_eq!(
            sv.subject,
            "Anna, din vecka 47 i ACME Channel Stars: +1\u{a0}250 poäng"
        );
        // The SMS keeps to GSM-7: a plain space groups the digits.
        assert!(sv.sms.contains("saldo 1 234 567"), "{}", sv.sms);
        // A low percentile is not shown: the digest never tells anyone they trail.
        let low = rendered(
            "digest",
            "en",
            json!({"week": "2026-W47", "percentile": 12}),
        );
        assert!(!low.text.contains("12%"), "{}", low.text);
    }

    #[test]
    fn the_notice_names_the_month_and_the_figures_when_the_close_sends_them() {
        let full = rendered("non_use.notice", "en", sample("non_use.notice").unwrap().1);
        assert_eq!(
            full.subject,
            "Anna, a note about your logins in November 2026"
        );
        assert!(full.text.contains("In November 2026 you logged in on 2 days in ACME Channel Stars. The program asks for at least 4 login days a month."), "{}", full.text);
        let bare = rendered("non_use.notice", "en", json!({"verdict": "notice"}));
        assert!(bare.text.contains("In November 2026 you logged in to ACME Channel Stars less often than the program asks."), "{}", bare.text);
        let sv = rendered("non_use.notice", "sv", sample("non_use.notice").unwrap().1);
        assert!(sv.text.contains("I november 2026 loggade du in 2 dagar i ACME Channel Stars. Programmet förutsätter minst 4 inloggningsdagar i månaden."), "{}", sv.text);
    }

    #[test]
    fn the_manager_hears_about_the_rep_for_every_verdict() {
        let verdicts = [
            (
                json!("notice"),
                "Anna Berg logged in less than the program asks in November 2026",
                "Anna Berg loggade in mindre än programmet förutsätter i november 2026",
            ),
            (
                json!("first_strike"),
                "Anna Berg did not log in in November 2026",
                "Anna Berg loggade inte in i november 2026",
            ),
            (
                json!({"sanctioned": "suspend"}),
                "Anna Berg's ACME Channel Stars account has been suspended",
                "Anna Bergs konto i ACME Channel Stars har stängts av",
            ),
            (
                json!({"sanctioned": "terminate"}),
                "Anna Berg's ACME Channel Stars membership has ended",
                "Anna Bergs medlemskap i ACME Channel Stars har upphört",
            ),
        ];
        for (verdict, en, sv) in verdicts {
            let message = rendered("non_use.manager", "en", json!({"verdict": verdict}));
            assert_eq!(message.subject, en);
            assert!(message.text.starts_with("Hi Erik,"), "{}", message.text);
            assert!(message.text.contains("Anna Berg"));
            assert!(
                message.text.contains("a member of your team"),
                "the footer says why"
            );
            assert_eq!(
                rendered("non_use.manager", "sv", json!({"verdict": verdict})).subject,
                sv
            );
        }
    }

    #[test]
    fn kinds_recipients_and_locales_are_checked() {
        let kind = kind_of("journey.tip").unwrap();
        let context = context(kind, json!({}), None);
        assert_eq!(
            render("journey.nope", Recipient::Participant, "en", &context),
            Err(RenderError::UnknownKind("journey.nope".into()))
        );
        assert!(matches!(
            render("journey.tip", Recipient::Manager, "en", &context),
            Err(RenderError::WrongRecipient { .. })
        ));
        assert!(matches!(
            render("non_use.manager", Recipient::Participant, "en", &context),
            Err(RenderError::WrongRecipient { .. })
        ));
        assert_eq!(
            render("journey.tip", Recipient::Participant, "de", &context),
            Err(RenderError::UnknownLocale("de".into()))
        );
    }

    #[test]
    fn the_unsubscribe_link_is_in_nudges_and_not_in_notices() {
        let tip = rendered("journey.tip", "en", json!({}));
        let link = "https://api.acme.example/v1/unsubscribe?token=abc.def";
        assert!(tip.html.contains(&format!("href=\"{link}\"")));
        assert!(
            tip.text
                .contains(&format!("Unsubscribe from these emails: {link}"))
        );
        let notice = rendered("non_use.notice", "en", json!({}));
        assert!(!notice.html.contains("unsubscribe"));
        assert!(!notice.text.contains("Unsubscribe"));
    }

    #[test]
    fn texts_given_per_locale_come_in_the_message_locale() {
        let note = json!({"note": {"en": "Log CRM activities the same day.", "sv": "Logga CRM-aktiviteter samma dag."}});
        assert!(
            rendered("journey.tip", "sv", note.clone())
                .text
                .contains("Logga CRM-aktiviteter samma dag.")
        );
        assert!(
            rendered("journey.tip", "en", note)
                .text
                .contains("Log CRM activities the same day.")
        );
        let english_only = json!({"note": {"en": "Log CRM activities the same day."}});
        assert!(
            rendered("journey.tip", "sv", english_only)
                .text
                .contains("Log CRM activities the same day.")
        );
        let plain = json!({"title": "Ten login days", "award": 100});
        assert_eq!(
            rendered("journey.milestone", "en", plain).subject,
            "Well done, Anna: Ten login days"
        );
    }

    #[test]
    fn catch_up_goals_and_dates_read_naturally() {
        let offer = |goal: Value| json!({"reason": "dormancy", "goal": goal, "award": 300, "deadline": "2026-12-06"});
        let en = rendered("journey.catch_up", "en", offer(json!({"login_days": 3})));
        assert!(en.text.contains("Your offer: log in on 3 different days by 6 December 2026 and we'll add 300 points to your balance."), "{}", en.text);
        let sv = rendered(
            "journey.catch_up",
            "sv",
            offer(json!({"event": "deal.registered", "count": 2})),
        );
        assert!(sv.text.contains("Ditt erbjudande: registrera 2 affärer senast 6 december 2026, så får du 300 poäng på ditt saldo."), "{}", sv.text);
        let within = rendered(
            "journey.catch_up",
            "en",
            json!({"goal": {"points": 200}, "within_days": 14}),
        );
        assert!(
            within.text.contains("earn 200 points within 14 days."),
            "{}",
            within.text
        );
    }

    #[test]
    fn the_context_addresses_the_recipient_and_adds_the_programs_offers_to_a_digest() {
        let profile = Profile::from_json(&json!({
            "name": "Anna Berg", "email": "anna@nordic-dealer.example", "locale": "sv-SE",
            "time_zone": "Europe/Stockholm", "role": "sales_rep", "distributor": "nordic",
            "location": "nordic-sthlm",
            "manager": {"name": "Erik Lund", "email": "erik@nordic-dealer.example"}
        }))
        .unwrap();
        let config = NotificationsConfig {
            portal_url: Some("https://portal.acme.example".into()),
            digest: crate::domain::message::DigestConfig {
                offers: vec![Offer {
                    title: "Mug".into(),
                    points: 100,
                    url: None,
                }],
                ..NotificationsConfig::default().digest
            },
            ..NotificationsConfig::default()
        };
        let request = |kind: &str, recipient, data: Value| NotificationRequest {
            id: "x".into(),
            program: "acme".into(),
            participant: "rep-anna".into(),
            recipient,
            kind: kind.into(),
            channel: Channel::Email,
            essential: false,
            period: Some("2026-11".into()),
            data,
            created_at: "2026-11-23T10:00:00Z".into(),
        };
        let digest = MessageContext::new(
            "ACME",
            &config,
            &profile,
            &request(
                "digest",
                Recipient::Participant,
                json!({"week": "2026-W47"}),
            ),
            None,
        );
        assert_eq!(digest.first_name, "Anna");
        assert_eq!(digest.rep_name, None);
        assert_eq!(digest.period.as_deref(), Some("2026-11"));
        assert_eq!(
            digest.portal_url.as_deref(),
            Some("https://portal.acme.example")
        );
        assert_eq!(
            digest.data["offers"],
            json!([{"title": "Mug", "points": 100}])
        );
        let own = MessageContext::new(
            "ACME",
            &config,
            &profile,
            &request("digest", Recipient::Participant, json!({"offers": []})),
            None,
        );
        assert_eq!(
            own.data["offers"],
            json!([]),
            "the request's own offers win"
        );
        let manager = MessageContext::new(
            "ACME",
            &config,
            &profile,
            &request("non_use.manager", Recipient::Manager, json!({})),
            None,
        );
        assert_eq!(manager.first_name, "Erik");
        assert_eq!(manager.rep_name.as_deref(), Some("Anna Berg"));
    }

    #[test]
    fn gsm_lengths() {
        assert_eq!(gsm7_length("Hej Åsa! Du har 1 234 poäng."), Some(28));
        assert_eq!(gsm7_length("5 € [x]"), Some(10));
        assert_eq!(gsm7_length("naïve"), None);
        assert_eq!(gsm7_length("1\u{a0}234"), None);
        assert_eq!(gsm_safe("1\u{a0}234 – “ok” …"), "1 234 - \"ok\" ...");
    }

    #[test]
    fn every_kind_has_a_sample() {
        let samples: Value = serde_json::from_str(SAMPLES).unwrap();
        let names: Vec<&str> = samples
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut kinds: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        kinds.sort();
        assert_eq!(names, kinds);
    }
}
