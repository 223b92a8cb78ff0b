//! Notifications: the request other jobs put on the notifications queue, the delivery log
//! that makes each request one message at most, preferences and provider feedback.
//!
//! Requests carry ids and figures, never an e-mail address or a phone number: the sender
//! reads those from the participant when it sends.

use super::error::FieldErrors;
use super::mime;
use super::money::json_kind;
use super::participant::{Profile, is_e164};
use super::period::{Periods, time_zone};
use super::rules::Fields;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One message to send, as queued. `id` is the idempotency key: the cause of the message
/// (`{program}:{period}:{kind}:{recipient}:{participant}` for a notice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    pub id: String,
    pub program: String,
    pub participant: String,
    /// Who receives it: the participant, or their manager (about the participant).
    #[serde(default)]
    pub recipient: Recipient,
    /// The template: `non_use.notice`, `journey.welcome`, `digest`, ...
    pub kind: String,
    #[serde(default)]
    pub channel: Channel,
    /// Essential messages (notices of the stick) ignore frequency caps and nudge opt-outs.
    #[serde(default)]
    pub essential: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// What the template shows (figures, names of boards): never contact details.
    #[serde(default)]
    pub data: Value,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    #[default]
    Participant,
    Manager,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Email,
    Sms,
}

/// What a participant chose, and what bounces and complaints decided for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// No nudges, journeys or digests by email (essential notices still go).
    #[serde(default)]
    pub email_unsubscribed: bool,
    /// No SMS at all.
    #[serde(default)]
    pub sms_opted_out: bool,
    /// SHA-256 (hex, lower-case) of an address that bounced permanently or complained; mail
    /// to that address is suppressed, a new address is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_reason: Option<String>,
}

/// Where a request stands in the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed; the provider may or may not have accepted it yet.
    Sending {
        since: String,
    },
    Sent {
        at: String,
        provider_id: String,
    },
    /// Final: not sent, for `reason` (`opted_out`, `unsubscribed`, `suppressed`, `capped`,
    /// `no_phone`, `not_enrolled`, `inactive`, `no_manager`).
    Skipped {
        reason: String,
    },
    /// Held until the recipient's quiet hours end.
    Deferred {
        until: String,
    },
}

/// One request in a participant's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryEntry {
    pub id: String,
    pub kind: String,
    pub channel: Channel,
    pub recipient: Recipient,
    #[serde(flatten)]
    pub status: DeliveryStatus,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounced_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complained_at: Option<String>,
}

/// The outcome of claiming a request for sending.
// Returned once per message and matched at once: boxing the entry would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Claimed,
    /// An entry exists (sent, sending, skipped): this delivery is a duplicate.
    Exists(DeliveryEntry),
    /// The week's nudges are used up.
    CapReached,
}

/// What the provider reported about a sent email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub program: String,
    pub participant: String,
    /// The request id (from the message's tags).
    pub id: String,
    pub kind: String,
    pub event: FeedbackEvent,
    pub at: String,
    /// SHA-256 (hex) of the address concerned, for suppression.
    pub address_sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackEvent {
    Delivery,
    Open,
    /// `permanent`: a hard bounce, which suppresses the address.
    Bounce {
        permanent: bool,
    },
    Complaint,
}

/// Counts per message kind in a month (the read rate is `opened / delivered`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindStats {
    pub kind: String,
    pub sent: u64,
    pub delivered: u64,
    pub opened: u64,
    pub bounced: u64,
    pub complained: u64,
}

// ---------------------------------------------------------------------------------------
// The program's `notifications` section.

/// The locales with built-in templates (`shared/templates/{locale}/`).
pub const LOCALES: [&str; 2] = ["en", "sv"];

/// What the sender reads of the program: who mail is from, where the portal is, when SMS
/// wait, how many nudges a week, when the digest goes and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// The display name mail is sent under; `None`: the program's name.
    pub from_name: Option<String>,
    /// The call to action in every message (an https URL).
    pub portal_url: Option<String>,
    /// SMS wait while it is quiet time where the participant is.
    pub quiet_hours: QuietHours,
    /// Nudges (non-essential messages) per participant per ISO week, local time.
    pub nudges_per_week: u32,
    pub digest: DigestConfig,
    /// The built-in locales this program sends in, a subset of [`LOCALES`].
    pub locales: Vec<String>,
}

/// A daily window of local time, `from` inclusive, `to` exclusive; `from > to` runs over
/// midnight (21:00 to 08:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: Time,
    pub to: Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    /// The digests go out with the daily engagement run of this weekday (program time).
    pub weekday: Weekday,
    /// Rewards the digest shows.
    pub offers: Vec<Offer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub title: String,
    pub points: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            from_name: None,
            portal_url: None,
            quiet_hours: QuietHours {
                from: Time::constant(21, 0, 0, 0),
                to: Time::constant(8, 0, 0, 0),
            },
            nudges_per_week: 2,
            digest: DigestConfig {
                weekday: Weekday::Monday,
                offers: Vec::new(),
            },
            locales: LOCALES.iter().map(|l| (*l).to_owned()).collect(),
        }
    }
}

const MAX_OFFERS: usize = 10;

impl NotificationsConfig {
    /// The template locale for a participant who reads `wanted` (`sv-SE`): their language if
    /// the program sends in it, else the program's locale's, else English.
    pub fn locale_for(&self, wanted: &str, program_locale: &str) -> &'static str {
        [wanted, program_locale]
            .iter()
            .find_map(|tag| {
                let language = tag.split(['-', '_']).next().unwrap_or("").to_lowercase();
                LOCALES
                    .iter()
                    .find(|l| **l == language && self.locales.iter().any(|k| k == *l))
            })
            .copied()
            .unwrap_or("en")
    }
}

/// Parses the program's `notifications` section (absent: the defaults); errors carry the
/// document's paths.
pub(crate) fn parse(document: &Value, errors: &mut FieldErrors) -> NotificationsConfig {
    let mut config = NotificationsConfig::default();
    let Some(section) = document.get("notifications").filter(|v| !v.is_null()) else {
        return config;
    };
    let Some(f) = Fields::of(
        section,
        "notifications",
        &[
            "from_name",
            "portal_url",
            "quiet_hours",
            "frequency_cap",
            "digest",
            "locales",
        ],
        errors,
    ) else {
        return config;
    };
    if let Some(name) = f.text("from_name", false, errors) {
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            errors.push(
                f.at("from_name"),
                "must be at most 100 characters on one line",
            );
        } else {
            config.from_name = Some(name.trim().to_owned());
        }
    }
    config.portal_url = f
        .text("portal_url", false, errors)
        .filter(|url| check_url(url, &f.at("portal_url"), errors));
    if let Some(quiet) = f.get("quiet_hours")
        && let Some(g) = Fields::of(quiet, &f.at("quiet_hours"), &["from", "to"], errors)
    {
        let from = clock_time(&g, "from", errors);
        let to = clock_time(&g, "to", errors);
        let window = QuietHours {
            from: from.unwrap_or(config.quiet_hours.from),
            to: to.unwrap_or(config.quiet_hours.to),
        };
        if window.from == window.to {
            errors.push(
                f.at("quiet_hours"),
                "from and to must differ (the window would be empty or the whole day)",
            );
        }
        config.quiet_hours = window;
    }
    if let Some(cap) = f.get("frequency_cap")
        && let Some(g) = Fields::of(cap, &f.at("frequency_cap"), &["nudges_per_week"], errors)
        && let Some(n) = g.int("nudges_per_week", 0..=50, false, errors)
    {
        config.nudges_per_week = n as u32;
    }
    if let Some(digest) = f.get("digest")
        && let Some(g) = Fields::of(digest, &f.at("digest"), &["weekday", "offers"], errors)
    {
        if let Some(day) = g.get("weekday") {
            match day.as_str().and_then(weekday) {
                Some(day) => config.digest.weekday = day,
                None => errors.push(
                    g.at("weekday"),
                    format!("must be a weekday name in lower case (monday … sunday), got {day}"),
                ),
            }
        }
        let offers = g.list("offers", errors);
        if offers.len() > MAX_OFFERS {
            errors.push(
                g.at("offers"),
                format!(
                    "must list at most {MAX_OFFERS} offers, got {}",
                    offers.len()
                ),
            );
        }
        config.digest.offers = offers
            .iter()
            .enumerate()
            .filter_map(|(i, offer)| {
                parse_offer(offer, &format!("{}[{i}]", g.at("offers")), errors)
            })
            .collect();
    }
    if let Some(value) = f.get("locales") {
        match value.as_array().filter(|a| !a.is_empty()) {
            None => errors.push(
                f.at("locales"),
                format!(
                    "must be a non-empty list of locales {LOCALES:?}, got {}",
                    json_kind(value)
                ),
            ),
            Some(items) => {
                let mut locales: Vec<String> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{}[{i}]", f.at("locales"));
                    match item.as_str().filter(|l| LOCALES.contains(l)) {
                        Some(l) if locales.iter().any(|k| k == l) => {
                            errors.push(at, format!("{l:?} is listed twice"))
                        }
                        Some(l) => locales.push(l.to_owned()),
                        None => errors.push(
                            at,
                            format!(
                                "must be a locale with built-in templates {LOCALES:?}, got {item}"
                            ),
                        ),
                    }
                }
                if !locales.is_empty() {
                    config.locales = locales;
                }
            }
        }
    }
    config
}

fn parse_offer(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Offer> {
    let g = Fields::of(value, path, &["title", "points", "url"], errors)?;
    let title = g.text("title", true, errors);
    if let Some(title) = &title
        && (title.chars().count() > 200 || title.chars().any(char::is_control))
    {
        errors.push(g.at("title"), "must be at most 200 characters on one line");
    }
    let points = g.int("points", 0..=100_000_000, true, errors);
    let url = g
        .text("url", false, errors)
        .filter(|url| check_url(url, &g.at("url"), errors));
    Some(Offer {
        title: title?,
        points: points?,
        url,
    })
}

/// Links in messages are https URLs without spaces or quotes (they go into `href`s).
fn check_url(url: &str, field: &str, errors: &mut FieldErrors) -> bool {
    let ok = is_https_url(url);
    if !ok {
        errors.push(
            field,
            format!("must be an https URL without spaces, like https://portal.example/rewards, got {url:?}"),
        );
    }
    ok
}

/// `https://host...` of at most 2,000 printable ASCII characters, without quotes, angle
/// brackets or backslashes.
pub fn is_https_url(url: &str) -> bool {
    url.len() <= 2000
        && url.strip_prefix("https://").is_some_and(|rest| {
            rest.split(['/', '?', '#'])
                .next()
                .is_some_and(|h| !h.is_empty())
        })
        && url
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`'))
}

/// `HH:MM`, 00:00 to 23:59.
fn clock_time(g: &Fields, key: &str, errors: &mut FieldErrors) -> Option<Time> {
    let value = g.get(key)?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let parsed = value.as_str().and_then(|text| {
        let (h, m) = text.split_once(':')?;
        if !digits(h, 1..=2) || !digits(m, 2..=2) {
            return None;
        }
        Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
    });
    if parsed.is_none() {
        errors.push(
            g.at(key),
            format!("must be a time of day as \"HH:MM\" (00:00 to 23:59), got {value}"),
        );
    }
    parsed
}

fn weekday(name: &str) -> Option<Weekday> {
    const NAMES: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let i = NAMES.iter().position(|n| *n == name)?;
    Weekday::from_monday_one_offset(i as i8 + 1).ok()
}

// ---------------------------------------------------------------------------------------
// Unsubscribe links.

fn token_mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// The token of a participant's unsubscribe link: `base64url(program \n participant)`, a
/// dot, and `base64url(HMAC-SHA256(secret, program \n participant))`. It never expires: a
/// link in an old email still works.
pub fn unsubscribe_token(secret: &[u8], program: &str, participant: &str) -> String {
    let payload = format!("{program}\n{participant}");
    let mut mac = token_mac(secret);
    mac.update(payload.as_bytes());
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// `(program, participant)` of a token made with `secret`; `None` for anything else.
pub fn verify_unsubscribe_token(secret: &[u8], token: &str) -> Option<(String, String)> {
    let (payload, tag) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    let mut mac = token_mac(secret);
    mac.update(&payload);
    // Constant time: the comparison does not tell how much of a forged tag was right.
    mac.verify_slice(&tag).ok()?;
    let text = String::from_utf8(payload).ok()?;
    let (program, participant) = text.split_once('\n')?;
    (!program.is_empty() && !participant.is_empty() && !participant.contains('\n'))
        .then(|| (program.to_owned(), participant.to_owned()))
}

// ---------------------------------------------------------------------------------------
// Quiet hours and the weekly nudge cap.

/// Messages the participant did not ask for and can do without: reminders, prompts,
/// near-misses, offers, segment news. The weekly cap holds them. Not nudges: essential
/// notices, and what a participant expects to get whatever the week brought (the welcome and
/// the welcome quiz on their first day, a milestone's congratulation and award, a completed
/// catch-up, the weekly digest they subscribed to).
pub fn is_nudge(request: &NotificationRequest) -> bool {
    const EXPECTED: [&str; 5] = [
        "journey.welcome",
        "journey.welcome_quiz",
        "journey.milestone",
        "journey.catch_up_done",
        "digest",
    ];
    !request.essential && !EXPECTED.contains(&request.kind.as_str())
}

/// When the quiet time `now` falls in ends, or `None` when it is not quiet in `zone` now.
///
/// The end is the first instant the local clock shows `quiet.to` after `now`: on a day the
/// clocks go back, the later of the two (the clock passes `to` twice and the second time
/// ends the quiet); when `to` falls in the hour skipped in spring, the instant after the gap.
pub fn quiet_until(now: Timestamp, zone: &TimeZone, quiet: &QuietHours) -> Option<Timestamp> {
    let local = now.to_zoned(zone.clone());
    let (date, time) = (local.date(), local.time());
    let end_date = if quiet.from < quiet.to {
        (quiet.from <= time && time < quiet.to).then_some(date)?
    } else if time >= quiet.from {
        date.tomorrow().ok()?
    } else if time < quiet.to {
        date
    } else {
        return None;
    };
    let end = end_date.to_datetime(quiet.to);
    let ambiguous = zone.to_ambiguous_timestamp(end);
    match ambiguous.offset() {
        // The clocks jump over `to`: quiet ends at the jump, the first instant past it.
        AmbiguousOffset::Gap { after, .. } => zone
            .following(after.to_timestamp(end).ok()?)
            .next()
            .map(|transition| transition.timestamp()),
        _ => ambiguous.later().ok(),
    }
}

/// The ISO week (`2026-W47`) `now` falls in, in `zone`: the nudge counter's key.
pub fn cap_week(now: Timestamp, zone: &TimeZone) -> String {
    Periods::of(now, zone).week
}

// ---------------------------------------------------------------------------------------
// Whether, where and when to send.

/// What the sender does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send to `address` (e-mail or E.164 phone); with `cap = Some((week, max))` the claim
    /// counts one nudge in that week, at most `max`.
    Send {
        address: String,
        cap: Option<(String, u32)>,
    },
    Skip(SkipReason),
    /// Quiet hours where the participant is: try again at this instant.
    Defer(Timestamp),
}

/// Why a request is not sent (stored as `DeliveryStatus::Skipped { reason }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Nudges by email were unsubscribed.
    Unsubscribed,
    /// No SMS at all.
    OptedOut,
    /// The address bounced permanently or complained.
    Suppressed,
    /// An SMS to a participant without a valid E.164 number (or to a manager).
    NoPhone,
    /// A message for the manager of a participant without one.
    NoManager,
    /// Suspended or terminated participants get only the non-use notices.
    Inactive,
    /// The address cannot be put on an email safely.
    InvalidAddress,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unsubscribed => "unsubscribed",
            SkipReason::OptedOut => "opted_out",
            SkipReason::Suppressed => "suppressed",
            SkipReason::NoPhone => "no_phone",
            SkipReason::NoManager => "no_manager",
            SkipReason::Inactive => "inactive",
            SkipReason::InvalidAddress => "invalid_address",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SHA-256 (hex) of an address, lower-cased: how suppressed addresses are kept.
pub fn address_sha256(address: &str) -> String {
    hex::encode(Sha256::digest(address.trim().to_lowercase().as_bytes()))
}

/// Decides a request for `profile` (whose status is `status`) with their preferences.
///
/// Essential messages (the close's notices) ignore the email unsubscribe and the weekly
/// cap, never a suppressed address or an SMS opt-out. Mail to a manager goes to the
/// manager's address, by email only, and neither the participant's unsubscribe nor their
/// cap applies to it. The provider's own SMS opt-out list (STOP) is the sender's to check.
pub fn decide(
    request: &NotificationRequest,
    profile: &Profile,
    status: &str,
    prefs: &Preferences,
    config: &NotificationsConfig,
    now: Timestamp,
) -> Decision {
    if status != "active" && !request.kind.starts_with("non_use.") {
        return Decision::Skip(SkipReason::Inactive);
    }
    // Profiles are validated at enrolment; a zone that no longer resolves counts as UTC.
    let zone = time_zone(&profile.time_zone).unwrap_or(TimeZone::UTC);
    let cap = (is_nudge(request) && request.recipient == Recipient::Participant)
        .then(|| (cap_week(now, &zone), config.nudges_per_week));
    match (request.recipient, request.channel) {
        (Recipient::Manager, Channel::Sms) => Decision::Skip(SkipReason::NoPhone),
        (Recipient::Manager, Channel::Email) => match &profile.manager {
            None => Decision::Skip(SkipReason::NoManager),
            Some(manager) => email_to(&manager.email, prefs, None),
        },
        (Recipient::Participant, Channel::Email)
            if prefs.email_unsubscribed && !request.essential =>
        {
            Decision::Skip(SkipReason::Unsubscribed)
        }
        (Recipient::Participant, Channel::Email) => email_to(&profile.email, prefs, cap),
        (Recipient::Participant, Channel::Sms) => {
            let Some(phone) = profile.phone.as_deref().filter(|p| is_e164(p)) else {
                return Decision::Skip(SkipReason::NoPhone);
            };
            if prefs.sms_opted_out {
                return Decision::Skip(SkipReason::OptedOut);
            }
            match quiet_until(now, &zone, &config.quiet_hours) {
                Some(until) => Decision::Defer(until),
                None => Decision::Send {
                    address: phone.to_owned(),
                    cap,
                },
            }
        }
    }
}

fn email_to(address: &str, prefs: &Preferences, cap: Option<(String, u32)>) -> Decision {
    if !mime::is_sendable_address(address) {
        Decision::Skip(SkipReason::InvalidAddress)
    } else if prefs.suppressed_email.as_deref() == Some(address_sha256(address).as_str()) {
        Decision::Skip(SkipReason::Suppressed)
    } else {
        Decision::Send {
            address: address.to_owned(),
            cap,
        }
    }
}

// ---------------------------------------------------------------------------------------
// SES message tags and events.

const TAG_PROGRAM: &str = "carrot_program";
const TAG_PARTICIPANT: &str = "carrot_participant";
const TAG_ID: &str = "carrot_id";
const TAG_KIND: &str = "carrot_kind";
/// SES takes tag values of at most 256 characters; a longer value goes on in
/// `{name}_1`, `{name}_2`, ...
const TAG_VALUE_MAX: usize = 256;

/// The SES message tags that name a request in its delivery, open, bounce and complaint
/// events: base64url without padding, since tag values are `[A-Za-z0-9_-]`.
pub fn email_tags(request: &NotificationRequest) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    for (name, value) in [
        (TAG_PROGRAM, &request.program),
        (TAG_PARTICIPANT, &request.participant),
        (TAG_ID, &request.id),
        (TAG_KIND, &request.kind),
    ] {
        let encoded = URL_SAFE_NO_PAD.encode(value);
        for (i, chunk) in encoded.as_bytes().chunks(TAG_VALUE_MAX).enumerate() {
            let name = if i == 0 {
                name.to_owned()
            } else {
                format!("{name}_{i}")
            };
            let chunk = std::str::from_utf8(chunk).expect("base64 is ASCII");
            tags.push((name, chunk.to_owned()));
        }
    }
    tags
}

/// Reads one SES event, as SNS delivers it to the email-events queue (the SNS envelope
/// around the event, or the bare event with raw message delivery). `Ok(None)`: nothing to
/// record (another event type, an SNS subscription message, mail without Carrot's tags).
/// `Err`: the message is not an SES event at all.
pub fn parse_ses_event(body: &str) -> Result<Option<Feedback>, String> {
    let Some((event_type, event)) = ses_event(body)? else {
        return Ok(None);
    };
    let (what, section) = match event_type.as_str() {
        "Delivery" => (FeedbackEvent::Delivery, "delivery"),
        "Open" => (FeedbackEvent::Open, "open"),
        "Complaint" => (FeedbackEvent::Complaint, "complaint"),
        "Bounce" => {
            let bounce_type = event
                .pointer("/bounce/bounceType")
                .and_then(Value::as_str)
                .ok_or("a Bounce event without bounce.bounceType")?;
            (
                FeedbackEvent::Bounce {
                    permanent: bounce_type == "Permanent",
                },
                "bounce",
            )
        }
        _ => return Ok(None),
    };
    let mail = mail_of(&event)?;
    let Some([program, participant, id, kind]) = request_tags(mail)? else {
        return Ok(None);
    };
    let at = event_time(
        event.get(section).and_then(|s| s.get("timestamp")),
        mail,
        &event_type,
    )?;
    let address_sha256 = mail
        .pointer("/destination/0")
        .and_then(Value::as_str)
        .map(|to| address_sha256(bare_address(to)));
    Ok(Some(Feedback {
        program,
        participant,
        id,
        kind,
        event: what,
        at,
        address_sha256,
    }))
}

/// SES took one of Carrot's emails for sending: its `Send` event, published when SES accepts
/// the message. It proves the email went out even when the sender died before logging it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub program: String,
    pub participant: String,
    /// The request id (from the message's tags).
    pub id: String,
    /// SES's message id: what `SendEmail` returned.
    pub message_id: String,
    /// When SES accepted the message.
    pub at: String,
}

/// Reads an SES `Send` event, in the envelopes of [`parse_ses_event`]. `Ok(None)`: any other
/// event or message, or mail without Carrot's tags.
pub fn parse_ses_send(body: &str) -> Result<Option<Accepted>, String> {
    let Some((event_type, event)) = ses_event(body)? else {
        return Ok(None);
    };
    if event_type != "Send" {
        return Ok(None);
    }
    let mail = mail_of(&event)?;
    let Some([program, participant, id, _kind]) = request_tags(mail)? else {
        return Ok(None);
    };
    let message_id = mail
        .get("messageId")
        .and_then(Value::as_str)
        .ok_or("an SES Send event without mail.messageId")?;
    Ok(Some(Accepted {
        program,
        participant,
        id,
        message_id: message_id.to_owned(),
        at: event_time(None, mail, &event_type)?,
    }))
}

/// The SES event in an email-events message, with its `eventType`; `None` for an SNS message
/// that carries no event (a subscription confirmation).
fn ses_event(body: &str) -> Result<Option<(String, Value)>, String> {
    let outer: Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let event: Value = match outer.get("Type").and_then(Value::as_str) {
        Some("Notification") => {
            let message = outer
                .get("Message")
                .and_then(Value::as_str)
                .ok_or("an SNS notification without a Message")?;
            serde_json::from_str(message)
                .map_err(|e| format!("the SNS Message is not JSON: {e}"))?
        }
        Some(_) => return Ok(None),
        None => outer,
    };
    let event_type = event
        .get("eventType")
        .and_then(Value::as_str)
        .ok_or("not an SES event: no eventType")?
        .to_owned();
    Ok(Some((event_type, event)))
}

fn mail_of(event: &Value) -> Result<&Value, String> {
    event
        .get("mail")
        .filter(|m| m.is_object())
        .ok_or_else(|| "an SES event without mail".to_owned())
}

/// The program, participant, request id and kind the message's tags name; `None` for mail
/// Carrot did not send.
fn request_tags(mail: &Value) -> Result<Option<[String; 4]>, String> {
    let tags = mail.get("tags");
    let tag = |name: &str| read_tag(tags, name);
    Ok(
        match (
            tag(TAG_PROGRAM)?,
            tag(TAG_PARTICIPANT)?,
            tag(TAG_ID)?,
            tag(TAG_KIND)?,
        ) {
            (Some(program), Some(participant), Some(id), Some(kind)) => {
                Some([program, participant, id, kind])
            }
            _ => None,
        },
    )
}

/// The event's own time (`stamp`), else the mail's, normalised.
fn event_time(stamp: Option<&Value>, mail: &Value, event_type: &str) -> Result<String, String> {
    let at = stamp
        .or_else(|| mail.get("timestamp"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("an SES {event_type} event without a timestamp"))?;
    let at: Timestamp = at
        .parse()
        .map_err(|e| format!("an SES {event_type} event with a bad timestamp {at:?}: {e}"))?;
    Ok(at.to_string())
}

/// A tag's value (SES gives each tag as a list of values), its continuations appended.
fn read_tag(tags: Option<&Value>, name: &str) -> Result<Option<String>, String> {
    let value = |name: &str| {
        tags.and_then(|t| t.get(name))
            .and_then(|v| v.get(0).or(Some(v)))
            .and_then(Value::as_str)
    };
    let Some(first) = value(name) else {
        return Ok(None);
    };
    let mut encoded = first.to_owned();
    for i in 1.. {
        match value(&format!("{name}_{i}")) {
            Some(more) => encoded.push_str(more),
            None => break,
        }
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(&encoded)
        .map_err(|e| format!("tag {name} is not base64url: {e}"))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("tag {name} is not UTF-8"))
}

/// `rep@x.example` of `Name <rep@x.example>` (or the text itself).
fn bare_address(to: &str) -> &str {
    match (to.rfind('<'), to.rfind('>')) {
        (Some(open), Some(close)) if open < close => &to[open + 1..close],
        _ => to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn config(section: Value) -> Result<NotificationsConfig, Vec<String>> {
        let mut errors = FieldErrors::default();
        let config = parse(&json!({ "notifications": section }), &mut errors);
        errors
            .into_result(config)
            .map_err(|e| e.into_iter().map(|e| e.field).collect())
    }

    fn time(h: i8, m: i8) -> Time {
        Time::new(h, m, 0, 0).unwrap()
    }

    #[test]
    fn the_section_is_optional_and_every_field_has_a_default() {
        let mut errors = FieldErrors::default();
        assert_eq!(
            parse(&json!({"program": "acme"}), &mut errors),
            NotificationsConfig::default()
        );
        assert!(errors.is_empty());
        let defaults = config(json!({})).unwrap();
        assert_eq!(defaults, NotificationsConfig::default());
        assert_eq!(defaults.quiet_hours.from, time(21, 0));
        assert_eq!(defaults.quiet_hours.to, time(8, 0));
        assert_eq!(defaults.nudges_per_week, 2);
        assert_eq!(defaults.digest.weekday, Weekday::Monday);
        assert_eq!(defaults.locales, ["en", "sv"]);
    }

    #[test]
    fn a_full_section_parses() {
        let parsed = config(json!({
            "from_name": "ACME Stars",
            "portal_url": "https://portal.acme.example/",
            "quiet_hours": {"from": "22:30", "to": "7:00"},
            "frequency_cap": {"nudges_per_week": 0},
            "digest": {"weekday": "friday", "offers": [
                {"title": "Cinema voucher", "points": 800, "url": "https://portal.acme.example/r/1"},
                {"title": "Headphones", "points": 4000}
            ]},
            "locales": ["sv"]
        }))
        .unwrap();
        assert_eq!(parsed.from_name.as_deref(), Some("ACME Stars"));
        assert_eq!(
            parsed.quiet_hours,
            QuietHours {
                from: time(22, 30),
                to: time(7, 0)
            }
        );
        assert_eq!(parsed.nudges_per_week, 0);
        assert_eq!(parsed.digest.weekday, Weekday::Friday);
        assert_eq!(parsed.digest.offers[1].url, None);
        assert_eq!(parsed.locales, ["sv"]);
    }

    #[test]
    fn every_bad_field_is_reported_at_its_path() {
        let fields = config(json!({
            "from_name": "ACME\r\nBcc: x@y.example",
            "portal_url": "http://portal.acme.example",
            "quiet_hours": {"from": "9pm", "to": "24:00"},
            "frequency_cap": {"nudges_per_week": 51},
            "digest": {"weekday": "Monday", "offers": [
                {"title": "", "points": -1, "url": "javascript:alert(1)"},
                {"points": 5, "colour": "red"}
            ]},
            "locales": ["sv", "de", "sv"],
            "channels": ["email"]
        }))
        .unwrap_err();
        for expected in [
            "notifications.channels",
            "notifications.from_name",
            "notifications.portal_url",
            "notifications.quiet_hours.from",
            "notifications.quiet_hours.to",
            "notifications.frequency_cap.nudges_per_week",
            "notifications.digest.weekday",
            "notifications.digest.offers[0].title",
            "notifications.digest.offers[0].points",
            "notifications.digest.offers[0].url",
            "notifications.digest.offers[1].colour",
            "notifications.digest.offers[1].title",
            "notifications.locales[1]",
            "notifications.locales[2]",
        ] {
            assert!(
                fields.iter().any(|f| f == expected),
                "{expected} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn a_quiet_window_must_not_be_empty_and_offers_are_at_most_ten() {
        assert_eq!(
            config(json!({"quiet_hours": {"from": "08:00"}})).unwrap_err(),
            ["notifications.quiet_hours"]
        );
        let offer = json!({"title": "Mug", "points": 100});
        assert_eq!(
            config(json!({"digest": {"offers": vec![offer.clone(); 11]}})).unwrap_err(),
            ["notifications.digest.offers"]
        );
        assert!(config(json!({"digest": {"offers": vec![offer; 10]}})).is_ok());
        assert_eq!(config(json!([])).unwrap_err(), ["notifications"]);
        assert_eq!(
            config(json!({"locales": []})).unwrap_err(),
            ["notifications.locales"]
        );
    }

    #[test]
    fn a_participant_reads_their_language_else_the_programs_else_english() {
        let both = NotificationsConfig::default();
        assert_eq!(both.locale_for("sv-SE", "en"), "sv");
        assert_eq!(both.locale_for("SV_se", "en"), "sv");
        assert_eq!(both.locale_for("de-DE", "sv-SE"), "sv");
        assert_eq!(both.locale_for("de-DE", "fr"), "en");
        assert_eq!(both.locale_for("", ""), "en");
        let english_only = NotificationsConfig {
            locales: vec!["en".into()],
            ..NotificationsConfig::default()
        };
        assert_eq!(english_only.locale_for("sv-SE", "sv-SE"), "en");
        let swedish_only = NotificationsConfig {
            locales: vec!["sv".into()],
            ..NotificationsConfig::default()
        };
        assert_eq!(swedish_only.locale_for("en-GB", "sv-SE"), "sv");
    }

    #[test]
    fn an_unsubscribe_token_names_its_participant_and_nothing_else_verifies() {
        let secret = b"unsubscribe secret";
        let token = unsubscribe_token(secret, "acme", "rep-anna");
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "URL-safe: {token}"
        );
        assert_eq!(
            verify_unsubscribe_token(secret, &token),
            Some(("acme".to_owned(), "rep-anna".to_owned()))
        );
        assert_eq!(verify_unsubscribe_token(b"another secret", &token), None);
        let (payload, mac) = token.split_once('.').unwrap();
        // Another participant's payload with this MAC, and this payload with theirs.
        let other = unsubscribe_token(secret, "acme", "rep-erik");
        let (other_payload, other_mac) = other.split_once('.').unwrap();
        assert_eq!(
            verify_unsubscribe_token(secret, &format!("{other_payload}.{mac}")),
            None
        );
        assert_eq!(
            verify_unsubscribe_token(secret, &format!("{payload}.{other_mac}")),
            None
        );
        // Every single changed character is refused.
        for i in 0..token.len() {
            let mut tampered = token.clone().into_bytes();
            tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            if tampered != token {
                assert_eq!(
                    verify_unsubscribe_token(secret, &tampered),
                    None,
                    "{tampered}"
                );
            }
        }
        for malformed in [
            "",
            ".",
            "abc",
            &format!("{token}.x"),
            &format!("{payload}=.{mac}"),
            &format!("{payload}.{}", &mac[..mac.len() - 2]),
            payload,
        ] {
            assert_eq!(
                verify_unsubscribe_token(secret, malformed),
                None,
                "{malformed}"
            );
        }
        // A payload without the separator cannot verify even with a correct MAC.
        let mut mac_only = token_mac(secret);
        mac_only.update(b"acme");
        let bare = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("acme"),
            URL_SAFE_NO_PAD.encode(mac_only.finalize().into_bytes())
        );
        assert_eq!(verify_unsubscribe_token(secret, &bare), None);
    }

    fn zone(name: &str) -> TimeZone {
        time_zone(name).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    const NIGHT: QuietHours = QuietHours {
        from: Time::constant(21, 0, 0, 0),
        to: Time::constant(8, 0, 0, 0),
    };

    #[test]
    fn quiet_hours_run_over_midnight_in_local_time() {
        let stockholm = zone("Europe/Stockholm");
        // 22:00 and 03:00 local are quiet until 08:00 local; 08:00 and 20:59 are not.
        assert_eq!(
            quiet_until(at("2026-11-23T21:00:00Z"), &stockholm, &NIGHT),
            Some(at("2026-11-24T07:00:00Z"))
        );
        assert_eq!(
            quiet_until(at("2026-11-24T02:00:00Z"), &stockholm, &NIGHT),
            Some(at("2026-11-24T07:00:00Z"))
        );
        assert_eq!(
            quiet_until(at("2026-11-24T07:00:00Z"), &stockholm, &NIGHT),
            None
        );
        assert_eq!(
            quiet_until(at("2026-11-23T19:59:00Z"), &stockholm, &NIGHT),
            None
        );
        assert_eq!(
            quiet_until(at("2026-11-23T20:00:00Z"), &stockholm, &NIGHT),
            Some(at("2026-11-24T07:00:00Z"))
        );
    }

    #[test]
    fn quiet_hours_across_the_stockholm_dst_changes() {
        let stockholm = zone("Europe/Stockholm");
        // 28 March 2026, 22:00 CET; the clocks go forward at 02:00, so 08:00 is CEST.
        assert_eq!(
            quiet_until(at("2026-03-28T21:00:00Z"), &stockholm, &NIGHT),
            Some(at("2026-03-29T06:00:00Z"))
        );
        // 24 October 2026, 22:00 CEST; the clocks go back at 03:00, so 08:00 is CET.
        assert_eq!(
            quiet_until(at("2026-10-24T20:00:00Z"), &stockholm, &NIGHT),
            Some(at("2026-10-25T07:00:00Z"))
        );
        // A window ending in the skipped hour ends when the clock jumps past it: 03:00 CEST.
        let early = QuietHours {
            from: time(1, 0),
            to: time(2, 30),
        };
        assert_eq!(
            quiet_until(at("2026-03-29T00:30:00Z"), &stockholm, &early),
            Some(at("2026-03-29T01:00:00Z"))
        );
        // A window ending in the repeated hour ends the second time the clock shows it:
        // 02:10 CEST (00:10 UTC) is quiet until 02:30 CET (01:30 UTC).
        let repeated = QuietHours {
            from: time(1, 0),
            to: time(2, 30),
        };
        assert_eq!(
            quiet_until(at("2026-10-25T00:10:00Z"), &stockholm, &repeated),
            Some(at("2026-10-25T01:30:00Z"))
        );
    }

    #[test]
    fn quiet_hours_in_new_york() {
        let new_york = zone("America/New_York");
        // 02:00 UTC is 21:00 EST the evening before: quiet until 08:00 EST, 13:00 UTC.
        assert_eq!(
            quiet_until(at("2026-11-23T02:00:00Z"), &new_york, &NIGHT),
            Some(at("2026-11-23T13:00:00Z"))
        );
        // The same instant is 03:00 in Stockholm, also quiet there, until 07:00 UTC.
        assert_eq!(
            quiet_until(
                at("2026-11-23T02:00:00Z"),
                &zone("Europe/Stockholm"),
                &NIGHT
            ),
            Some(at("2026-11-23T07:00:00Z"))
        );
        // 15:00 UTC is 10:00 in New York: not quiet.
        assert_eq!(
            quiet_until(at("2026-11-23T15:00:00Z"), &new_york, &NIGHT),
            None
        );
        // 7 March 2026, 22:00 EST; 8 March 08:00 is EDT (clocks forward at 02:00).
        assert_eq!(
            quiet_until(at("2026-03-08T03:00:00Z"), &new_york, &NIGHT),
            Some(at("2026-03-08T12:00:00Z"))
        );
    }

    #[test]
    fn a_daytime_window_is_quiet_only_inside_it() {
        let lunch = QuietHours {
            from: time(12, 0),
            to: time(13, 0),
        };
        assert_eq!(
            quiet_until(at("2026-11-23T11:59:00Z"), &TimeZone::UTC, &lunch),
            None
        );
        assert_eq!(
            quiet_until(at("2026-11-23T12:00:00Z"), &TimeZone::UTC, &lunch),
            Some(at("2026-11-23T13:00:00Z"))
        );
        assert_eq!(
            quiet_until(at("2026-11-23T13:00:00Z"), &TimeZone::UTC, &lunch),
            None
        );
    }

    proptest! {
        /// Where clocks do not change, a quiet instant stays quiet up to the end the function
        /// gives, and the end itself is not quiet.
        #[test]
        fn the_end_of_quiet_is_the_first_instant_not_quiet(
            seconds in 1_700_000_000i64..1_900_000_000,
            from in 0i8..24, to in 0i8..24, minutes in 0i8..60,
        ) {
            prop_assume!(from != to);
            let window = QuietHours { from: time(from, minutes), to: time(to, 0) };
            let now = Timestamp::from_second(seconds).unwrap();
            if let Some(end) = quiet_until(now, &TimeZone::UTC, &window) {
                prop_assert!(end > now);
                prop_assert!(end.duration_since(now) <= jiff::SignedDuration::from_hours(24));
                prop_assert_eq!(quiet_until(end, &TimeZone::UTC, &window), None);
                let just_before = end - jiff::SignedDuration::from_secs(1);
                prop_assert_eq!(quiet_until(just_before, &TimeZone::UTC, &window), Some(end));
            }
        }
    }

    #[test]
    fn the_cap_week_is_the_local_iso_week() {
        // Sunday 22 November 2026 23:30 UTC is Monday 00:30 in Stockholm: week 48 there.
        let late_sunday = at("2026-11-22T23:30:00Z");
        assert_eq!(cap_week(late_sunday, &TimeZone::UTC), "2026-W47");
        assert_eq!(cap_week(late_sunday, &zone("Europe/Stockholm")), "2026-W48");
        assert_eq!(
            cap_week(at("2026-11-23T03:00:00Z"), &zone("America/New_York")),
            "2026-W47"
        );
        // 1 January 2027 is a Friday of 2026's week 53.
        assert_eq!(
            cap_week(at("2027-01-01T12:00:00Z"), &TimeZone::UTC),
            "2026-W53"
        );
    }

    fn anna() -> Profile {
        Profile::from_json(&json!({
            "name": "Anna Berg", "email": "Anna@Nordic-Dealer.example", "phone": "+46701234567",
            "locale": "sv-SE", "time_zone": "Europe/Stockholm", "role": "sales_rep",
            "distributor": "nordic", "location": "nordic-sthlm",
            "manager": {"name": "Erik Lund", "email": "erik@nordic-dealer.example"}
        }))
        .unwrap()
    }

    fn request(
        kind: &str,
        recipient: Recipient,
        channel: Channel,
        essential: bool,
    ) -> NotificationRequest {
        NotificationRequest {
            id: format!("acme:{kind}:rep-anna"),
            program: "acme".into(),
            participant: "rep-anna".into(),
            recipient,
            kind: kind.into(),
            channel,
            essential,
            period: None,
            data: json!({}),
            created_at: "2026-11-23T10:00:00Z".into(),
        }
    }

    #[test]
    fn every_branch_of_the_decision() {
        use Channel::{Email, Sms};
        use Recipient::{Manager, Participant};
        let day = at("2026-11-23T10:00:00Z"); // 11:00 in Stockholm
        let night = at("2026-11-23T22:00:00Z"); // 23:00 in Stockholm
        let anna = anna();
        let no_phone = Profile {
            phone: None,
            ..anna.clone()
        };
        let bad_phone = Profile {
            phone: Some("0701234567".into()),
            ..anna.clone()
        };
        let no_manager = Profile {
            manager: None,
            ..anna.clone()
        };
        let bad_address = Profile {
            email: "anna@nordic-dealer".into(),
            ..anna.clone()
        };
        let none = Preferences::default();
        let unsubscribed = Preferences {
            email_unsubscribed: true,
            ..Preferences::default()
        };
        let opted_out = Preferences {
            sms_opted_out: true,
            ..Preferences::default()
        };
        let suppressed = Preferences {
            suppressed_email: Some(address_sha256("anna@nordic-dealer.example")),
            suppressed_reason: Some("bounce".into()),
            ..Preferences::default()
        };
        let suppressed_old = Preferences {
            suppressed_email: Some(address_sha256("old@nordic-dealer.example")),
            ..Preferences::default()
        };
        let send = |address: &str, cap: Option<&str>| Decision::Send {
            address: address.into(),
            cap: cap.map(|week| (week.to_owned(), 2)),
        };
        let email = "Anna@Nordic-Dealer.example";
        let phone = "+46701234567";
        let manager = "erik@nordic-dealer.example";
        let skip = Decision::Skip;
        let nudge = "journey.tip";
        let notice = "non_use.notice";
        /// (what, kind, recipient, channel, essential, profile, status, preferences, now, decision)
        type Case<'a> = (
            &'a str,
            &'a str,
            Recipient,
            Channel,
            bool,
            &'a Profile,
            &'a str,
            &'a Preferences,
            Timestamp,
            Decision,
        );
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("a nudge by email counts against the cap", nudge, Participant, Email, false, &anna, "active", &none, day, send(email, Some("2026-W48"))),
            ("an essential email is not capped", notice, Participant, Email, true, &anna, "active", &none, day, send(email, None)),
            ("an unsubscribed participant gets no nudges", nudge, Participant, Email, false, &anna, "active", &unsubscribed, day, skip(SkipReason::Unsubscribed)),
            ("but gets essential mail", notice, Participant, Email, true, &anna, "active", &unsubscribed, day, send(email, None)),
            ("a suppressed address gets nothing, whatever the case", nudge, Participant, Email, false, &anna, "active", &suppressed, day, skip(SkipReason::Suppressed)),
            ("not even essential mail", notice, Participant, Email, true, &anna, "active", &suppressed, day, skip(SkipReason::Suppressed)),
            ("a new address is not suppressed", nudge, Participant, Email, false, &anna, "active", &suppressed_old, day, send(email, Some("2026-W48"))),
            ("an address that cannot be sent to", nudge, Participant, Email, false, &bad_address, "active", &none, day, skip(SkipReason::InvalidAddress)),
            ("a suspended rep gets no nudges", nudge, Participant, Email, false, &anna, "suspended", &none, day, skip(SkipReason::Inactive)),
            ("nor a drawing's news", "drawing.won", Participant, Email, true, &anna, "terminated", &none, day, skip(SkipReason::Inactive)),
            ("but the non-use notices", "non_use.suspended", Participant, Email, true, &anna, "suspended", &none, day, send(email, None)),
            ("an SMS in the day", "journey.dormant", Participant, Sms, false, &anna, "active", &none, day, send(phone, Some("2026-W48"))),
            ("an SMS at night waits for the morning", "journey.dormant", Participant, Sms, false, &anna, "active", &none, night, Decision::Defer(at("2026-11-24T07:00:00Z"))),
            ("an essential SMS waits too", notice, Participant, Sms, true, &anna, "active", &none, night, Decision::Defer(at("2026-11-24T07:00:00Z"))),
            ("an SMS without a phone", "journey.dormant", Participant, Sms, false, &no_phone, "active", &none, day, skip(SkipReason::NoPhone)),
            ("an SMS to a number that is not E.164", "journey.dormant", Participant, Sms, false, &bad_phone, "active", &none, day, skip(SkipReason::NoPhone)),
            ("an SMS after opting out", "journey.dormant", Participant, Sms, false, &anna, "active", &opted_out, day, skip(SkipReason::OptedOut)),
            ("an essential SMS after opting out", notice, Participant, Sms, true, &anna, "active", &opted_out, night, skip(SkipReason::OptedOut)),
            ("the SMS opt-out does not stop email", nudge, Participant, Email, false, &anna, "active", &opted_out, day, send(email, Some("2026-W48"))),
            ("the email unsubscribe does not stop SMS", "journey.dormant", Participant, Sms, false, &anna, "active", &unsubscribed, day, send(phone, Some("2026-W48"))),
            ("the manager's mail goes to the manager, uncapped", "non_use.manager", Manager, Email, true, &anna, "active", &unsubscribed, day, send(manager, None)),
            ("about a suspended rep too", "non_use.manager", Manager, Email, true, &anna, "suspended", &none, day, send(manager, None)),
            ("no manager, no manager's mail", "non_use.manager", Manager, Email, true, &no_manager, "active", &none, day, skip(SkipReason::NoManager)),
            ("managers get email only", "non_use.manager", Manager, Sms, true, &anna, "active", &none, day, skip(SkipReason::NoPhone)),
        ];
        for (name, kind, recipient, channel, essential, profile, status, prefs, now, expected) in
            cases
        {
            let request = request(kind, recipient, channel, essential);
            let decided = decide(
                &request,
                profile,
                status,
                prefs,
                &NotificationsConfig::default(),
                now,
            );
            assert_eq!(decided, expected, "{name}");
        }
    }

    #[test]
    fn the_cap_and_the_quiet_hours_come_from_the_config() {
        let config = NotificationsConfig {
            nudges_per_week: 5,
            quiet_hours: QuietHours {
                from: time(10, 0),
                to: time(12, 0),
            },
            ..NotificationsConfig::default()
        };
        let day = at("2026-11-23T10:00:00Z"); // 11:00 in Stockholm
        let sms = request(
            "journey.dormant",
            Recipient::Participant,
            Channel::Sms,
            false,
        );
        assert_eq!(
            decide(
                &sms,
                &anna(),
                "active",
                &Preferences::default(),
                &config,
                day
            ),
            Decision::Defer(at("2026-11-23T11:00:00Z"))
        );
        let email = request("journey.tip", Recipient::Participant, Channel::Email, false);
        assert_eq!(
            decide(
                &email,
                &anna(),
                "active",
                &Preferences::default(),
                &config,
                day
            ),
            Decision::Send {
                address: "Anna@Nordic-Dealer.example".into(),
                cap: Some(("2026-W48".into(), 5))
            }
        );
    }

    /// The SNS envelope SES event publishing sends to the email-events queue.
    fn sns(event: &Value) -> String {
        json!({
            "Type": "Notification",
            "MessageId": "5d6c1b4e-8f5a-5a8e-9a7e-8c2f0a1b2c3d",
            "TopicArn": "arn:aws:sns:eu-north-1:123456789012:carrot-email-events",
            "Message": event.to_string(),
            "Timestamp": "2026-11-23T10:00:05.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertURL": "https://sns.eu-north-1.amazonaws.com/SimpleNotificationService-example.pem",
            "UnsubscribeURL": "https://sns.eu-north-1.amazonaws.com/?Action=Unsubscribe"
        })
        .to_string()
    }

    fn sent_request() -> NotificationRequest {
        NotificationRequest {
            data: json!({"journey": "reps"}),
            ..request("journey.tip", Recipient::Participant, Channel::Email, false)
        }
    }

    /// The `mail` object of an SES event (the documented shape), with the tags the sender
    /// put on the message alongside the ones SES adds.
    fn mail(tags: &[(String, String)]) -> Value {
        let mut all = json!({
            "ses:configuration-set": ["carrot"],
            "ses:source-ip": ["192.0.2.0"],
            "ses:from-domain": ["acme.example"],
            "ses:caller-identity": ["carrot-notify"]
        });
        for (name, value) in tags {
            all[name] = json!([value]);
        }
        json!({
            "timestamp": "2026-11-23T10:00:00.012Z",
            "source": "ACME Channel Stars <rewards@acme.example>",
            "sourceArn": "arn:aws:ses:eu-north-1:123456789012:identity/acme.example",
            "sendingAccountId": "123456789012",
            "messageId": "0102018f-example-000000",
            "destination": ["Anna@Nordic-Dealer.example"],
            "headersTruncated": false,
            "headers": [
                {"name": "From", "value": "ACME Channel Stars <rewards@acme.example>"},
                {"name": "To", "value": "Anna@Nordic-Dealer.example"},
                {"name": "Subject", "value": "A tip for ACME Channel Stars, Anna"}
            ],
            "commonHeaders": {
                "from": ["ACME Channel Stars <rewards@acme.example>"],
                "to": ["Anna@Nordic-Dealer.example"],
                "messageId": "0102018f-example-000000",
                "subject": "A tip for ACME Channel Stars, Anna"
            },
            "tags": all
        })
    }

    fn feedback(event: FeedbackEvent, at: &str) -> Feedback {
        Feedback {
            program: "acme".into(),
            participant: "rep-anna".into(),
            id: "acme:journey.tip:rep-anna".into(),
            kind: "journey.tip".into(),
            event,
            at: at.into(),
            address_sha256: Some(address_sha256("anna@nordic-dealer.example")),
        }
    }

    #[test]
    fn ses_events_read_back_the_tags_the_sender_put_on() {
        let tags = email_tags(&sent_request());
        for (name, value) in &tags {
            assert!(name.len() <= 256 && value.len() <= 256);
            assert!(
                value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{value}"
            );
        }
        let delivery = json!({
            "eventType": "Delivery",
            "mail": mail(&tags),
            "delivery": {
                "timestamp": "2026-11-23T10:00:01.133Z",
                "processingTimeMillis": 1121,
                "recipients": ["Anna@Nordic-Dealer.example"],
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "a8-70.smtp-out.amazonses.com"
            }
        });
        assert_eq!(
            parse_ses_event(&sns(&delivery)),
            Ok(Some(feedback(
                FeedbackEvent::Delivery,
                "2026-11-23T10:00:01.133Z"
            )))
        );
        let open = json!({
            "eventType": "Open",
            "mail": mail(&tags),
            "open": {
                "ipAddress": "192.0.2.1",
                "timestamp": "2026-11-23T12:31:19.652Z",
                "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
            }
        });
        assert_eq!(
            parse_ses_event(&sns(&open)),
            Ok(Some(feedback(
                FeedbackEvent::Open,
                "2026-11-23T12:31:19.652Z"
            )))
        );
        let bounce = |bounce_type: &str| {
            json!({
                "eventType": "Bounce",
                "bounce": {
                    "bounceType": bounce_type,
                    "bounceSubType": "General",
                    "bouncedRecipients": [{
                        "emailAddress": "Anna@Nordic-Dealer.example",
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                    }],
                    "timestamp": "2026-11-23T10:00:02.669Z",
                    "feedbackId": "0102018f-example-bounce-000000",
                    "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"
                },
                "mail": mail(&tags)
            })
        };
        for (bounce_type, permanent) in [
            ("Permanent", true),
            ("Transient", false),
            ("Undetermined", false),
        ] {
            assert_eq!(
                parse_ses_event(&sns(&bounce(bounce_type))),
                Ok(Some(feedback(
                    FeedbackEvent::Bounce { permanent },
                    "2026-11-23T10:00:02.669Z"
                ))),
                "{bounce_type}"
            );
        }
        let complaint = json!({
            "eventType": "Complaint",
            "complaint": {
                "feedbackId": "0102018f-example-complaint-000000",
                "complaintSubType": null,
                "complainedRecipients": [{"emailAddress": "Anna@Nordic-Dealer.example"}],
                "timestamp": "2026-11-24T08:15:00.000Z",
                "userAgent": "Mozilla/5.0",
                "complaintFeedbackType": "abuse",
                "arrivalDate": "2026-11-24T08:14:58.000Z"
            },
            "mail": mail(&tags)
        });
        assert_eq!(
            parse_ses_event(&sns(&complaint)),
            Ok(Some(feedback(
                FeedbackEvent::Complaint,
                "2026-11-24T08:15:00Z"
            )))
        );
        // With raw message delivery the queue gets the event itself.
        assert_eq!(
            parse_ses_event(&delivery.to_string()),
            Ok(Some(feedback(
                FeedbackEvent::Delivery,
                "2026-11-23T10:00:01.133Z"
            )))
        );
    }

    #[test]
    fn other_ses_events_and_sns_messages_are_nothing_to_record() {
        let tags = email_tags(&sent_request());
        for (event_type, section) in [
            ("Send", json!({})),
            ("Reject", json!({"reason": "Bad content"})),
            (
                "Click",
                json!({"timestamp": "2026-11-23T12:32:00.000Z", "link": "https://portal.acme.example"}),
            ),
            (
                "DeliveryDelay",
                json!({"delayType": "TransientCommunicationFailure"}),
            ),
            ("Rendering Failure", json!({"errorMessage": "x"})),
        ] {
            let key = event_type.to_lowercase();
            let event = json!({"eventType": event_type, "mail": mail(&tags), key: section});
            assert_eq!(parse_ses_event(&sns(&event)), Ok(None), "{event_type}");
        }
        let confirmation = json!({
            "Type": "SubscriptionConfirmation",
            "Message": "You have chosen to subscribe to the topic",
            "SubscribeURL": "https://sns.example/confirm"
        });
        assert_eq!(parse_ses_event(&confirmation.to_string()), Ok(None));
        // Mail sent by something else than Carrot carries none of its tags.
        let foreign = json!({
            "eventType": "Delivery",
            "mail": mail(&[]),
            "delivery": {"timestamp": "2026-11-23T10:00:01.133Z"}
        });
        assert_eq!(parse_ses_event(&sns(&foreign)), Ok(None));
    }

    #[test]
    fn a_message_that_is_no_ses_event_is_an_error() {
        let tags = email_tags(&sent_request());
        let mut broken_tag = tags.clone();
        broken_tag[2].1 = "not base64!".into();
        for body in [
            "not json".to_owned(),
            json!({"Type": "Notification"}).to_string(),
            json!({"Type": "Notification", "Message": "{"}).to_string(),
            sns(&json!({"mail": mail(&tags)})),
            sns(&json!({"eventType": "Bounce", "mail": mail(&tags), "bounce": {}})),
            sns(&json!({"eventType": "Delivery", "delivery": {}})),
            sns(
                &json!({"eventType": "Open", "mail": mail(&broken_tag), "open": {"timestamp": "2026-11-23T12:31:19Z"}}),
            ),
            sns(
                &json!({"eventType": "Open", "mail": mail(&tags), "open": {"timestamp": "yesterday"}}),
            ),
        ] {
            assert!(parse_ses_event(&body).is_err(), "{body}");
        }
    }

    #[test]
    fn a_send_event_names_the_request_ses_accepted() {
        let tags = email_tags(&sent_request());
        let send = json!({"eventType": "Send", "mail": mail(&tags), "send": {}});
        let accepted = Accepted {
            program: "acme".into(),
            participant: "rep-anna".into(),
            id: "acme:journey.tip:rep-anna".into(),
            message_id: "0102018f-example-000000".into(),
            at: "2026-11-23T10:00:00.012Z".into(),
        };
        assert_eq!(parse_ses_send(&sns(&send)), Ok(Some(accepted.clone())));
        assert_eq!(parse_ses_send(&send.to_string()), Ok(Some(accepted)));
        // Not feedback: it records nothing on the log entry.
        assert_eq!(parse_ses_event(&sns(&send)), Ok(None));
        let delivery = json!({"eventType": "Delivery", "mail": mail(&tags),
            "delivery": {"timestamp": "2026-11-23T10:00:01.133Z"}});
        assert_eq!(parse_ses_send(&sns(&delivery)), Ok(None));
        assert_eq!(
            parse_ses_send(&sns(
                &json!({"eventType": "Send", "mail": mail(&[]), "send": {}})
            )),
            Ok(None)
        );
        let mut no_id = mail(&tags);
        no_id.as_object_mut().unwrap().remove("messageId");
        assert!(parse_ses_send(&sns(&json!({"eventType": "Send", "mail": no_id}))).is_err());
    }

    proptest! {
        /// Whatever the ids (up to the longest the data model allows), the tags fit SES and
        /// the events give them back.
        #[test]
        fn tags_round_trip(
            program in "[a-z0-9-]{2,63}",
            participant in "[!-\"$-~]{1,128}",
            kind in "[a-z_.]{1,40}",
        ) {
            let request = NotificationRequest {
                id: format!("{program}:2026-11:{kind}:participant:{participant}"),
                program: program.clone(),
                participant: participant.clone(),
                kind: kind.clone(),
                ..sent_request()
            };
            let tags = email_tags(&request);
            prop_assert!(tags.len() <= 50);
            for (name, value) in &tags {
                prop_assert!(!value.is_empty() && value.len() <= TAG_VALUE_MAX);
                prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            }
            let event = json!({
                "eventType": "Open",
                "mail": mail(&tags),
                "open": {"timestamp": "2026-11-23T12:31:19.652Z"}
            });
            let feedback = parse_ses_event(&sns(&event)).unwrap().unwrap();
            prop_assert_eq!(feedback.program, program);
            prop_assert_eq!(feedback.participant, participant);
            prop_assert_eq!(feedback.id, request.id);
            prop_assert_eq!(feedback.kind, kind);
        }
    }
}
