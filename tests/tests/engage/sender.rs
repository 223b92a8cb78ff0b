//! The notification sender on requests queued as other jobs queue them: quiet hours in the
//! recipient's own time zone, STOP and SMS opt-outs, the one-click unsubscribe link, a
//! redelivered request, and SES feedback (a hard bounce suppresses the address; opens give
//! the read rate).

use super::{IDLE, Rep, emails_to, log, setup, sms_to};
use anyhow::Context;
use carrot::domain::message::{NotificationRequest, email_tags};
use carrot_local::mail::header;
use carrot_local::runner::http_request;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};

const REPS: [Rep; 3] = [
    Rep {
        id: "nyc",
        zone: "America/New_York",
        phone: Some("+12125550100"),
        enrolled_days_ago: 400,
        role: "sales_manager",
    },
    // moto's SNS reports numbers ending in 99 as opted out (a STOP reply).
    Rep {
        id: "stop",
        zone: "Europe/Stockholm",
        phone: Some("+46701234599"),
        enrolled_days_ago: 400,
        role: "sales_manager",
    },
    Rep {
        id: "mail",
        zone: "Europe/Stockholm",
        phone: None,
        enrolled_days_ago: 400,
        role: "sales_manager",
    },
];

/// A request as the engagement run or the close queues it.
fn request(
    program: &str,
    id: &str,
    participant: &str,
    kind: &str,
    channel: &str,
    essential: bool,
    data: Value,
) -> NotificationRequest {
    serde_json::from_value(
        json!({"id": format!("{program}:{id}:{participant}"), "program": program,
        "participant": participant, "kind": kind, "channel": channel, "essential": essential,
        "period": "2026-11", "data": data, "created_at": Timestamp::now().to_string()}),
    )
    .expect("a valid request")
}

fn dormant(program: &str, participant: &str, id: &str) -> NotificationRequest {
    request(
        program,
        id,
        participant,
        "journey.dormant",
        "sms",
        false,
        json!({"journey": "onboarding", "days_inactive": 31}),
    )
}

fn near_target(program: &str, participant: &str, id: &str) -> NotificationRequest {
    request(
        program,
        id,
        participant,
        "near_miss.target",
        "email",
        false,
        json!({"target": 300, "have": 260, "missing": 40, "days_left": 5, "metric": "points"}),
    )
}

fn notice(program: &str, participant: &str, id: &str) -> NotificationRequest {
    request(
        program,
        id,
        participant,
        "non_use.notice",
        "email",
        true,
        json!({"verdict": "notice"}),
    )
}

/// An SES event as SES publishes it to the configuration set's SNS topic.
fn ses_event(kind: &str, request: &NotificationRequest, address: &str, at: &str) -> String {
    let tags: serde_json::Map<String, Value> = email_tags(request)
        .into_iter()
        .map(|(name, value)| (name, json!([value])))
        .collect();
    let mail = json!({"timestamp": at, "source": "program@carrot.example",
        "messageId": "0100018c-test", "destination": [address], "tags": tags});
    let event = match kind {
        "Bounce" => json!({"eventType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "timestamp": at,
            "bouncedRecipients": [{"emailAddress": address}], "feedbackId": "0100-feedback"}}),
        "Delivery" => json!({"eventType": "Delivery", "mail": mail, "delivery": {
            "timestamp": at, "recipients": [address], "processingTimeMillis": 500,
            "smtpResponse": "250 ok"}}),
        _ => json!({"eventType": "Open", "mail": mail, "open": {
            "timestamp": at, "ipAddress": "192.0.2.1", "userAgent": "Mail"}}),
    };
    json!({"Type": "Notification", "MessageId": "sns-1", "TopicArn": "arn:aws:sns:eu-north-1:123456789012:email-events",
        "Message": event.to_string(), "Timestamp": at})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quiet_hours_opt_outs_unsubscribe_redelivery_and_bounces() -> anyhow::Result<()> {
    // Reps outside the journey's role, and the digest on another day: only the requests
    // queued here are sent.
    let digest_day = Timestamp::now()
        .to_zoned(TimeZone::UTC)
        .date()
        .checked_add(3.days())?
        .weekday();
    let digest_day = format!("{digest_day:?}").to_lowercase();
    let (stack, deployment, tenant) = setup("engage-sender", &digest_day, &REPS).await?;
    let program = tenant.id.clone();
    let queue = deployment
        .resources
        .queue_url("NotificationsQueue")
        .to_owned();
    let enqueue = async |request: &NotificationRequest| -> anyhow::Result<()> {
        deployment
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body(serde_json::to_string(request)?)
            .send()
            .await
            .context("queueing a request")?;
        Ok(())
    };
    // 03:00 UTC today: 22:00 or 23:00 the evening before in New York, in its quiet hours.
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let night = today.at(3, 0, 0, 0).to_zoned(TimeZone::UTC)?.timestamp();
    deployment.clock.set(night);
    let ends = night
        .to_zoned(TimeZone::get("America/New_York")?)
        .date()
        .checked_add(1.day())?
        .at(8, 0, 0, 0)
        .to_zoned(TimeZone::get("America/New_York")?)?
        .timestamp();
    let nudge = near_target(&program, "mail", "target-1");
    for request in [
        dormant(&program, "nyc", "dormant-1"),
        dormant(&program, "stop", "dormant-1"),
        nudge.clone(),
        notice(&program, "mail", "notice-1"),
    ] {
        enqueue(&request).await?;
    }
    deployment.wait_sender_idle(IDLE).await?;

    // New York: deferred to 08:00 its time, nothing sent yet.
    let nyc = log(&tenant, "nyc").await?;
    assert_eq!(nyc.len(), 1, "{nyc:?}");
    assert_eq!(
        (nyc[0].status.as_str(), nyc[0].detail.parse::<Timestamp>()?),
        ("deferred", ends)
    );
    assert!(sms_to(stack, "+12125550100").await?.is_empty());
    // STOP: never sent.
    let stop = log(&tenant, "stop").await?;
    assert_eq!(
        (stop[0].status.as_str(), stop[0].detail.as_str()),
        ("skipped", "opted_out")
    );
    assert!(sms_to(stack, "+46701234599").await?.is_empty());
    // Email is not held by quiet hours.
    let address = REPS[2].email(&program);
    assert_eq!(
        emails_to(stack, &address).await?.len(),
        2,
        "{:?}",
        log(&tenant, "mail").await?
    );

    // A redelivered request (the same id) sends nothing more.
    enqueue(&nudge).await?;
    deployment.wait_sender_idle(IDLE).await?;
    assert_eq!(emails_to(stack, &address).await?.len(), 2);

    // Before 08:00 in New York nothing is released; after it, the SMS goes out once.
    deployment.clock.set(ends - 1.minute());
    let answer = deployment.engage().await?;
    assert_eq!(answer["runs"][0]["released"], 0, "{answer}");
    deployment.clock.set(ends + 1.minute());
    let answer = deployment.engage().await?;
    assert_eq!(answer["runs"][0]["released"], 1, "{answer}");
    deployment.wait_sender_idle(IDLE).await?;
    let texts = sms_to(stack, "+12125550100").await?;
    assert_eq!(texts.len(), 1, "{texts:?}");
    let nyc = log(&tenant, "nyc").await?;
    assert_eq!(nyc[0].status, "sent", "{nyc:?}");
    let again = deployment.engage().await?;
    assert_eq!(again["runs"][0]["released"], 0, "{again}");

    // An SMS opt-out set through the API.
    let opted = tenant
        .admin
        .send(
            "PUT",
            "/participants/nyc/preferences",
            json!({"sms_opted_out": true}).to_string().into_bytes(),
            "application/json",
        )
        .await?;
    assert_eq!(opted.status, 200, "{opted:?}");
    enqueue(&dormant(&program, "nyc", "dormant-2")).await?;
    deployment.wait_sender_idle(IDLE).await?;
    assert_eq!(sms_to(stack, "+12125550100").await?.len(), 1);
    assert!(
        log(&tenant, "nyc")
            .await?
            .iter()
            .any(|e| e.status == "skipped" && e.detail == "opted_out")
    );

    // The nudge carries a one-click unsubscribe link; the notice, being essential, does not.
    let emails = emails_to(stack, &address).await?;
    let links: Vec<String> = emails
        .iter()
        .filter_map(|e| header(&e.raw, "List-Unsubscribe"))
        .collect();
    assert_eq!(links.len(), 1, "{emails:?}");
    assert!(
        emails
            .iter()
            .any(|e| header(&e.raw, "List-Unsubscribe-Post").as_deref()
                == Some("List-Unsubscribe=One-Click"))
    );
    let link = links[0].trim_matches(|c| c == '<' || c == '>').to_owned();
    let preferences = tenant.get("/participants/mail/preferences").await?;
    assert_eq!(preferences["email_unsubscribed"], false);
    // Following the link only shows a page; a changed token is refused.
    let page = http_request("GET", &link, &[], Vec::new()).await?;
    assert_eq!(page.status, 200);
    let tampered = http_request(
        "POST",
        &format!("{link}x"),
        &[],
        "List-Unsubscribe=One-Click",
    )
    .await?;
    assert_eq!(tampered.status, 400);
    assert_eq!(
        tenant.get("/participants/mail/preferences").await?["email_unsubscribed"],
        false
    );
    let one_click = http_request(
        "POST",
        &link,
        &[("content-type", "application/x-www-form-urlencoded")],
        "List-Unsubscribe=One-Click",
    )
    .await?;
    assert_eq!(one_click.status, 200, "{}", one_click.text());
    assert_eq!(
        tenant.get("/participants/mail/preferences").await?["email_unsubscribed"],
        true
    );
    enqueue(&near_target(&program, "mail", "target-2")).await?;
    let second_notice = notice(&program, "mail", "notice-2");
    enqueue(&second_notice).await?;
    deployment.wait_sender_idle(IDLE).await?;
    let mail = log(&tenant, "mail").await?;
    assert!(
        mail.iter()
            .any(|e| e.status == "skipped" && e.detail == "unsubscribed"),
        "{mail:?}"
    );
    assert_eq!(
        emails_to(stack, &address).await?.len(),
        3,
        "the notice still goes"
    );

    // SES feedback: a delivery and an open of the nudge, then a hard bounce of the notice.
    let events_queue = deployment.resources.email_events_queue_url().to_owned();
    let at = Timestamp::now().to_string();
    for body in [
        ses_event("Delivery", &nudge, &address, &at),
        ses_event("Open", &nudge, &address, &at),
        ses_event("Open", &nudge, &address, &at),
        ses_event("Bounce", &second_notice, &address, &at),
    ] {
        deployment
            .sqs
            .send_message()
            .queue_url(&events_queue)
            .message_body(body)
            .send()
            .await
            .context("publishing an SES event")?;
    }
    deployment.wait_sender_idle(IDLE).await?;
    let month = Timestamp::now()
        .to_zoned(TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string();
    let stats = tenant.get(&format!("/messages/{month}")).await?;
    let target = stats["kinds"]
        .as_array()
        .and_then(|kinds| kinds.iter().find(|k| k["kind"] == "near_miss.target"))
        .with_context(|| format!("no near_miss.target in {stats}"))?;
    assert_eq!(
        (
            &target["delivered"],
            &target["opened"],
            &target["read_rate"]
        ),
        (&json!(1), &json!(1), &json!(1.0)),
        "an open counts once: {stats}"
    );
    let preferences = tenant.get("/participants/mail/preferences").await?;
    assert_eq!(preferences["suppressed_reason"], "bounce", "{preferences}");
    enqueue(&notice(&program, "mail", "notice-3")).await?;
    deployment.wait_sender_idle(IDLE).await?;
    assert!(
        log(&tenant, "mail")
            .await?
            .iter()
            .any(|e| e.status == "skipped" && e.detail == "suppressed")
    );
    assert_eq!(emails_to(stack, &address).await?.len(), 3);
    deployment.stop().await
}
