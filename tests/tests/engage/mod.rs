//! Engagement on the local stack: the daily run (segments, journeys, nudges, digest) through
//! the engage function, and every message through the notification sender to moto's SES
//! and SNS, which record what was sent.

mod journeys;
mod sender;

use crate::close::{Tenant, enrol_as_of};
use anyhow::Context;
use carrot_local::deployment::Deployment;
use carrot_local::mail::mime_part;
use carrot_local::runner::SqsEventSourceOptions;
use carrot_local::stack::{LocalStack, SentEmail, SentSms};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::time::Duration;

const ZONE: &str = "Europe/Stockholm";
const DEAL_POINTS: i64 = 50;
const LOGIN_POINTS: i64 = 5;
const FIRST_DEAL_AWARD: i64 = 100;
/// How long the award function and the sender may take to drain their queues.
const IDLE: Duration = Duration::from_secs(120);

/// The program of the engagement tests: a monthly drawing at 100 points, one journey for
/// reps (a dormant nudge after 100 days without a milestone, a catch-up offer for reps
/// enrolled from 3 days ago), quiet hours from 21:00 to 08:00, two nudges a week, and the
/// digest on `weekday`.
fn program_yaml(program: &str, weekday: &str) -> String {
    let late_join_after = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get(ZONE).expect("a known zone"))
        .date()
        .checked_sub(jiff::ToSpan::days(3))
        .expect("within the calendar");
    format!(
        r#"program: {program}
name: Engage test {program}
time_zone: {ZONE}
locale: en
points:
  portal.login: {LOGIN_POINTS}
  deal.registered: {DEAL_POINTS}
drawings:
  - {{id: monthly-draw, title: Monthly draw, period: month, metric: points, at_least: 100, prizes: [{{prize: "Gift card"}}]}}
segments: {{run_hour: 0}}
journeys:
  - id: onboarding
    title: Onboarding
    roles: [rep]
    steps:
      - {{id: welcome, day: 0, kind: journey.welcome}}
      - {{id: welcome_quiz, day: 0, kind: journey.welcome_quiz, url: "https://portal.example.com/quiz"}}
      - {{id: first_action, day: 7, kind: journey.first_action_nudge, unless: first_deal, channel: sms}}
      - {{id: profile, day: 14, kind: journey.profile_prompt, question: "Which product lines do you sell?", url: "https://portal.example.com/profile"}}
    milestones:
      - {{id: first_deal, title: First deal, when: {{event: deal.registered, count: 1}}, award: {FIRST_DEAL_AWARD}}}
    dormant: {{after_days: 100, channel: sms}}
    catch_up: {{late_join_after: {late_join_after}, goal: {{login_days: 3}}, within_days: 14, award: 200}}
    near_miss: {{missing_points_at_most: 30, days_left_at_most: 31}}
notifications:
  quiet_hours: {{from: "21:00", to: "08:00"}}
  frequency_cap: {{nudges_per_week: 2}}
  digest:
    weekday: {weekday}
    offers:
      - {{title: Cinema voucher, points: 800}}
"#
    )
}

/// A rep of the tests: enrolled `days` ago in `zone`, with an optional phone.
struct Rep {
    id: &'static str,
    zone: &'static str,
    phone: Option<&'static str>,
    enrolled_days_ago: i64,
    role: &'static str,
}

impl Rep {
    fn email(&self, program: &str) -> String {
        format!("{}.{program}@dealer.example", self.id)
    }

    fn profile(&self, program: &str) -> Value {
        let mut profile = json!({"name": format!("{} Rep", capitalised(self.id)),
            "email": self.email(program), "locale": "en-GB", "time_zone": self.zone,
            "role": self.role, "distributor": "nordic-dealer", "location": "stockholm"});
        if let Some(phone) = self.phone {
            profile["phone"] = json!(phone);
        }
        profile
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A deployment with the sender polling, and a tenant whose reps are enrolled as of their
/// days.
async fn setup(
    name: &str,
    weekday: &str,
    reps: &[Rep],
) -> anyhow::Result<(&'static LocalStack, Deployment, Tenant)> {
    let stack = LocalStack::start_or_reuse().await?;
    let options = SqsEventSourceOptions {
        visibility_timeout_secs: Some(5),
        ..SqsEventSourceOptions::default()
    };
    let mut deployment =
        Deployment::start(stack, name, options.clone(), Duration::from_millis(0)).await?;
    deployment.start_sender(stack, options);
    let program = deployment.resources.prefix().replace('_', "-");
    let tenant = Tenant::create_with(&deployment, &program, &program_yaml(&program, weekday))
        .await
        .context("storing the engagement program")?;
    let now = Timestamp::now();
    for rep in reps {
        let at = now - SignedDuration::from_hours(24 * rep.enrolled_days_ago);
        enrol_as_of(&tenant.admin, rep.id, &rep.profile(&program), at).await?;
    }
    Ok((stack, deployment, tenant))
}

/// Posts events (`(participant, type, n)` each n times, a minute apart before now) and waits
/// until they are awarded.
async fn post(
    deployment: &Deployment,
    tenant: &Tenant,
    events: &[(&str, &str, usize)],
) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let mut batch = Vec::new();
    for (participant, event_type, n) in events {
        for i in 0..*n {
            let id = format!("{participant}-{event_type}-{i}");
            let mut event = json!({"id": id, "participant": participant, "type": event_type,
                "occurred_at": (now - SignedDuration::from_mins(1 + i as i64)).to_string()});
            if *event_type == "deal.registered" {
                event["attributes"] = json!({"deal_id": id});
            }
            batch.push(event);
        }
    }
    let response = tenant.crm.post_events(&json!({"events": batch})).await?;
    anyhow::ensure!(response.status == 202, "{response:?}");
    deployment.award.wait_idle(IDLE).await
}

/// The emails sent to `address`.
async fn emails_to(stack: &LocalStack, address: &str) -> anyhow::Result<Vec<SentEmail>> {
    Ok(stack
        .sent_emails()
        .await?
        .into_iter()
        .filter(|e| e.to.iter().any(|to| to == address))
        .collect())
}

async fn sms_to(stack: &LocalStack, phone: &str) -> anyhow::Result<Vec<SentSms>> {
    Ok(stack
        .sent_sms()
        .await?
        .into_iter()
        .filter(|m| m.phone == phone)
        .collect())
}

/// One entry of a participant's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    kind: String,
    status: String,
    channel: String,
    /// The reason of a skip, the end of a deferral, or the provider's id.
    detail: String,
}

/// The participant's delivery log, sorted by kind.
async fn log(tenant: &Tenant, participant: &str) -> anyhow::Result<Vec<Entry>> {
    let body = tenant
        .get(&format!("/participants/{participant}/messages"))
        .await?;
    let text = |m: &Value, name: &str| m[name].as_str().unwrap_or_default().to_owned();
    let mut entries: Vec<Entry> = body["messages"]
        .as_array()
        .context("a list of messages")?
        .iter()
        .map(|m| Entry {
            kind: text(m, "kind"),
            status: text(m, "status"),
            channel: text(m, "channel"),
            detail: m["reason"]
                .as_str()
                .or(m["until"].as_str())
                .or(m["provider_id"].as_str())
                .unwrap_or_default()
                .to_owned(),
        })
        .collect();
    entries.sort();
    Ok(entries)
}

/// The kinds in a log with the given status.
fn kinds(log: &[Entry], status: &str) -> Vec<String> {
    log.iter()
        .filter(|e| e.status == status)
        .map(|e| e.kind.clone())
        .collect()
}

/// The text part of an email the sender built, decoded.
fn text_part(raw: &str) -> String {
    mime_part(raw, "text/plain").unwrap_or_default()
}
