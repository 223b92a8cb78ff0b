//! The daily run on reps at known points of their journey: each step on its day, the
//! milestone's congratulation and award, a near-miss nudge, the frequency cap, the weekly
//! digest and the segments; a second run and a redelivered request send nothing more.

use super::{
    DEAL_POINTS, FIRST_DEAL_AWARD, IDLE, LOGIN_POINTS, Rep, ZONE, emails_to, kinds, log, post,
    setup, sms_to, text_part,
};
use carrot::ports::StatsReader;
use jiff::Timestamp;
use std::collections::BTreeMap;

const REPS: [Rep; 5] = [
    // Day 0: the welcome, the quiz, and the late joiner's catch-up offer.
    Rep {
        id: "newbie",
        zone: ZONE,
        phone: None,
        enrolled_days_ago: 0,
        role: "rep",
    },
    // Day 8 with a deal: the first-action nudge is skipped (its milestone is reached), the
    // milestone is congratulated and credited.
    Rep {
        id: "dealer",
        zone: ZONE,
        phone: Some("+46701234501"),
        enrolled_days_ago: 8,
        role: "rep",
    },
    // Day 8 without a deal: the first-action nudge by SMS (Tokyo: no quiet hours at noon).
    Rep {
        id: "idle",
        zone: "Asia/Tokyo",
        phone: Some("+81312345602"),
        enrolled_days_ago: 8,
        role: "rep",
    },
    // Long enrolled without a milestone (dormant nudge, by email without a phone), and 80
    // points this month: 20 short of the drawing.
    Rep {
        id: "close",
        zone: ZONE,
        phone: None,
        enrolled_days_ago: 200,
        role: "rep",
    },
    // Day 15 at 80 points: the first-action nudge, the profile prompt and the near-miss are
    // three nudges, and the cap lets two through.
    Rep {
        id: "busy",
        zone: ZONE,
        phone: None,
        enrolled_days_ago: 15,
        role: "rep",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_rep_gets_their_step_milestone_and_nudges_once() -> anyhow::Result<()> {
    // The digest goes out on the weekday of the run's day in the program's zone.
    let weekday = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get(ZONE)?)
        .weekday();
    let weekday = format!("{weekday:?}").to_lowercase();
    let (stack, deployment, tenant) = setup("engage-journeys", &weekday, &REPS).await?;
    let program = tenant.id.clone();
    // Noon in Tokyo: outside its quiet hours whatever the real time is.
    let noon_in_tokyo: Timestamp = "2026-11-23T03:00:00Z".parse()?;
    post(
        &deployment,
        &tenant,
        &[
            ("dealer", "deal.registered", 1),
            ("close", "portal.login", 16),
            ("busy", "portal.login", 16),
        ],
    )
    .await?;

    let answer = deployment.engage().await?;
    let run = &answer["runs"][0];
    assert_eq!(run["program"], program.as_str(), "{answer}");
    assert_eq!(run["members"], 5, "{answer}");
    deployment.award.wait_idle(IDLE).await?;
    deployment.clock.set(noon_in_tokyo);
    deployment.wait_sender_idle(IDLE).await?;

    let sent = |kinds: &[&str]| kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    // Day 0.
    let newbie = log(&tenant, "newbie").await?;
    assert_eq!(
        kinds(&newbie, "sent"),
        sent(&[
            "digest",
            "journey.catch_up",
            "journey.welcome",
            "journey.welcome_quiz"
        ]),
        "{newbie:?} {answer}"
    );
    // The first deal: congratulated, credited once, and the nudge it makes moot skipped.
    let dealer = log(&tenant, "dealer").await?;
    assert_eq!(
        kinds(&dealer, "sent"),
        sent(&[
            "digest",
            "journey.milestone",
            "journey.welcome",
            "journey.welcome_quiz"
        ]),
        "{dealer:?}"
    );
    let ledger = deployment.store.ledger(&program, "dealer").await?;
    let awards: Vec<i64> = ledger
        .iter()
        .filter(|r| r.event_id.starts_with("milestone:"))
        .map(|r| r.points)
        .collect();
    assert_eq!(awards, [FIRST_DEAL_AWARD], "{ledger:?}");
    let dealer_state = deployment
        .store
        .participant(&program, "dealer")
        .await?
        .expect("enrolled");
    assert_eq!(dealer_state.balance, DEAL_POINTS + FIRST_DEAL_AWARD);
    assert!(sms_to(stack, "+46701234501").await?.is_empty());
    // The first-action nudge by SMS.
    let idle = log(&tenant, "idle").await?;
    assert!(
        kinds(&idle, "sent").contains(&"journey.first_action_nudge".to_owned()),
        "{idle:?}"
    );
    let texts = sms_to(stack, "+81312345602").await?;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].message.contains("Idle"), "{}", texts[0].message);
    // 20 points short of the drawing, told so in their own figures.
    let close = log(&tenant, "close").await?;
    assert_eq!(
        kinds(&close, "sent"),
        sent(&["digest", "journey.dormant", "near_miss.drawing"]),
        "{close:?}"
    );
    let near_miss = emails_to(stack, &REPS[3].email(&program))
        .await?
        .into_iter()
        .map(|e| text_part(&e.raw))
        .find(|text| text.contains("Monthly draw"))
        .expect("the near-miss email");
    assert!(near_miss.contains("20"), "{near_miss}");
    // Three nudges, two sent, one capped; the welcome, quiz and digest are not nudges.
    let busy = log(&tenant, "busy").await?;
    let nudges = [
        "journey.first_action_nudge",
        "journey.profile_prompt",
        "near_miss.drawing",
    ];
    let outcome: BTreeMap<&str, &str> = busy
        .iter()
        .filter(|e| nudges.contains(&e.kind.as_str()))
        .map(|e| (e.kind.as_str(), e.status.as_str()))
        .collect();
    assert_eq!(outcome.len(), 3, "{busy:?}");
    assert_eq!(
        outcome.values().filter(|s| **s == "sent").count(),
        2,
        "{busy:?}"
    );
    assert!(
        busy.iter()
            .any(|e| e.status == "skipped" && e.detail == "capped"),
        "{busy:?}"
    );

    // Every email went out once: as many emails as sent entries in the logs.
    let mut sent_emails = 0;
    for rep in &REPS {
        let entries = log(&tenant, rep.id).await?;
        let emails = emails_to(stack, &rep.email(&program)).await?;
        let logged = entries
            .iter()
            .filter(|e| e.status == "sent" && e.channel == "email")
            .count();
        assert_eq!(emails.len(), logged, "{}: {entries:?}", rep.id);
        sent_emails += emails.len();
    }

    // The digest carries the rep's own figures.
    let digest = emails_to(stack, &REPS[1].email(&program))
        .await?
        .into_iter()
        .map(|e| text_part(&e.raw))
        .find(|text| text.contains("Cinema voucher"))
        .expect("the dealer's digest");
    assert!(
        digest.contains(&(DEAL_POINTS + FIRST_DEAL_AWARD).to_string())
            || digest.contains(&DEAL_POINTS.to_string()),
        "{digest}"
    );

    // Segments: the two reps without any activity never activated; the others are active
    // for the first time this month (rising from nothing).
    assert_eq!(
        run["segments"],
        serde_json::json!({"never_activated": 2, "rising": 3}),
        "{answer}"
    );
    let history = tenant.get("/participants/newbie/segments").await?;
    assert_eq!(history["segment"], "never_activated", "{history}");
    assert_eq!(history["history"].as_array().map(Vec::len), Some(1));

    // A second run the same day, and a second invocation, send and credit nothing more.
    let again = deployment.engage().await?;
    assert_eq!(again["runs"][0]["members"], 0, "{again}");
    deployment.award.wait_idle(IDLE).await?;
    deployment.wait_sender_idle(IDLE).await?;
    let mut after = 0;
    for rep in &REPS {
        after += emails_to(stack, &rep.email(&program)).await?.len();
    }
    assert_eq!(after, sent_emails);
    let balance = deployment
        .store
        .participant(&program, "dealer")
        .await?
        .expect("enrolled")
        .balance;
    assert_eq!(balance, DEAL_POINTS + FIRST_DEAL_AWARD);
    let close = deployment
        .store
        .participant(&program, "close")
        .await?
        .expect("enrolled");
    assert_eq!(close.balance, 16 * LOGIN_POINTS, "no award for a near miss");
    deployment.stop().await
}
