//! The notification store (`NotifyStore`) on DynamoDB Local: claims that hold under
//! concurrency, the weekly nudge cap, deferrals, feedback once per kind, suppression,
//! preferences and statistics. Each test has a table of its own.

use carrot::adapters::dynamo::DynamoStore;
use carrot::adapters::notify_store::NotifyStore;
use carrot::domain::message::{Channel, FeedbackEvent, Recipient};
use carrot::domain::participant::{AccountKind, Profile};
use carrot::ports::{
    Claim, DeferralStore, DeliveryEntry, DeliveryStatus, DeliveryStore, EnrolmentStore, Feedback,
    FeedbackStore, KindStats, PortError, PreferenceStore, Preferences,
};
use carrot_local::stack::{LocalStack, Resources};
use carrot_local::template::Template;
use jiff::Timestamp;

const PROGRAM: &str = "acme";
const WEEK: &str = "2026-W10";

/// A table of its own (only the table: the store needs nothing else), and its store.
struct Table {
    resources: Resources,
    store: NotifyStore,
    enrolment: DynamoStore,
}

async fn table(name: &str) -> anyhow::Result<Table> {
    let stack = LocalStack::start_or_reuse().await?;
    let template = Template::load()?;
    let tables_only = Template {
        tables: template.tables.clone(),
        ..Template::default()
    };
    let resources = stack
        .provision_template(&tables_only, &Resources::unique_prefix(name))
        .await?;
    Ok(Table {
        store: NotifyStore::new(stack.dynamodb_client(), resources.table()),
        enrolment: DynamoStore::new(stack.dynamodb_client(), resources.table()),
        resources,
    })
}

impl Table {
    async fn enrol(&self, participant: &str) {
        let profile = Profile {
            name: participant.into(),
            email: format!("{participant}@dealer.example"),
            phone: Some("+46701234567".into()),
            locale: "sv-SE".into(),
            time_zone: "Europe/Stockholm".into(),
            role: "sales_rep".into(),
            distributor: "nordic-dealer".into(),
            location: "stockholm".into(),
            region: None,
            tier: None,
            manager: None,
            account: AccountKind::Individual,
        };
        self.enrolment
            .enrol(PROGRAM, participant, &(&profile).into(), Timestamp::now())
            .await
            .expect("enrolled");
    }

    async fn stats(&self, month: &str) -> Vec<KindStats> {
        let mut stats = self.store.message_stats(PROGRAM, month).await.unwrap();
        stats.sort_by(|a, b| a.kind.cmp(&b.kind));
        stats
    }
}

fn entry(id: &str, kind: &str, status: DeliveryStatus, created_at: &str) -> DeliveryEntry {
    DeliveryEntry {
        id: id.into(),
        kind: kind.into(),
        channel: Channel::Email,
        recipient: Recipient::Participant,
        status,
        created_at: created_at.into(),
        delivered_at: None,
        opened_at: None,
        bounced_at: None,
        complained_at: None,
    }
}

fn sending(since: &str) -> DeliveryStatus {
    DeliveryStatus::Sending {
        since: since.into(),
    }
}

fn sent(at: &str, provider_id: &str) -> DeliveryStatus {
    DeliveryStatus::Sent {
        at: at.into(),
        provider_id: provider_id.into(),
    }
}

/// Claims until the store answers for certain: a transaction that conflicts with a concurrent
/// one is transient, and the sender's queue would deliver the request again.
async fn claim(
    store: &NotifyStore,
    participant: &str,
    entry: &DeliveryEntry,
    cap: Option<(&str, u32)>,
) -> Claim {
    for _ in 0..50 {
        match store.claim(PROGRAM, participant, entry, cap).await {
            Ok(claim) => return claim,
            Err(PortError::Transient(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(other) => panic!("claim of {} failed: {other}", entry.id),
        }
    }
    panic!("claim of {} stayed transient", entry.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_store_claims_once_within_the_weekly_cap_under_concurrency() {
    let t = table("ns-claim").await.unwrap();
    t.enrol("alice").await;
    let at = "2026-03-02T09:00:00Z";

    // Twenty different nudges race for a cap of two: exactly two are claimed.
    let claims = (0..20).map(|i| {
        let store = t.store.clone();
        let nudge = entry(&format!("nudge-{i}"), "journey.nudge", sending(at), at);
        tokio::spawn(async move {
            let outcome = claim(&store, "alice", &nudge, Some((WEEK, 2))).await;
            (nudge, outcome)
        })
    });
    let mut claimed = Vec::new();
    let mut capped = 0;
    for handle in claims {
        let (nudge, outcome) = handle.await.unwrap();
        match outcome {
            Claim::Claimed => claimed.push(nudge),
            Claim::CapReached => capped += 1,
            Claim::Exists(existing) => panic!("no entry existed: {existing:?}"),
        }
    }
    assert_eq!((claimed.len(), capped), (2, 18));
    // A capped request left no entry behind.
    assert_eq!(t.store.deliveries(PROGRAM, "alice").await.unwrap().len(), 2);

    // The same request again is a duplicate, whatever the cap says.
    let again = claim(&t.store, "alice", &claimed[0], Some((WEEK, 2))).await;
    assert_eq!(again, Claim::Exists(claimed[0].clone()));
    // Another week has its own count; a notice (no cap) is not counted at all.
    let next_week = entry("nudge-next", "journey.nudge", sending(at), at);
    assert_eq!(
        claim(&t.store, "alice", &next_week, Some(("2026-W11", 2))).await,
        Claim::Claimed
    );
    let notice = entry("notice-1", "non_use.notice", sending(at), at);
    assert_eq!(
        claim(&t.store, "alice", &notice, None).await,
        Claim::Claimed
    );

    // Ten deliveries of one request: one claim, nine duplicates.
    let digest = entry("digest-1", "digest", sending(at), at);
    let racers = (0..10).map(|_| {
        let (store, digest) = (t.store.clone(), digest.clone());
        tokio::spawn(async move { claim(&store, "alice", &digest, None).await })
    });
    let mut outcomes = Vec::new();
    for handle in racers {
        outcomes.push(handle.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| **o == Claim::Claimed).count(), 1);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Claim::Exists(digest.clone()))
            .count(),
        9
    );

    // A claim given back (the provider refused) frees its place under the cap.
    t.store
        .unclaim(PROGRAM, "alice", &claimed[1], Some((WEEK, 2)))
        .await
        .unwrap();
    assert_eq!(
        t.store
            .delivery(PROGRAM, "alice", &claimed[1].id)
            .await
            .unwrap(),
        None
    );
    let late = entry("nudge-late", "journey.nudge", sending(at), at);
    assert_eq!(
        claim(&t.store, "alice", &late, Some((WEEK, 2))).await,
        Claim::Claimed
    );
    let later = entry("nudge-later", "journey.nudge", sending(at), at);
    assert_eq!(
        claim(&t.store, "alice", &later, Some((WEEK, 2))).await,
        Claim::CapReached
    );
    // Giving back a claim that is not held (another `since`) changes nothing.
    let stale = entry(
        &claimed[0].id,
        "journey.nudge",
        sending("2026-03-02T08:00:00Z"),
        at,
    );
    t.store
        .unclaim(PROGRAM, "alice", &stale, Some((WEEK, 2)))
        .await
        .unwrap();
    assert_eq!(
        t.store
            .delivery(PROGRAM, "alice", &claimed[0].id)
            .await
            .unwrap(),
        Some(claimed[0].clone())
    );

    // Sent: the entry says so, a later claim finds it, and the month counts it.
    let sent_at = "2026-03-02T09:00:05Z";
    let done = DeliveryEntry {
        status: sent(sent_at, "ses-1"),
        ..claimed[0].clone()
    };
    t.store.mark_sent(PROGRAM, "alice", &done).await.unwrap();
    assert_eq!(
        claim(&t.store, "alice", &claimed[0], Some((WEEK, 2))).await,
        Claim::Exists(done.clone())
    );
    assert_eq!(
        t.store.mark_sent(PROGRAM, "alice", &done).await,
        Err(PortError::ConditionFailed),
        "only a claimed entry is marked sent"
    );
    assert_eq!(
        t.stats("2026-03").await,
        [KindStats {
            kind: "journey.nudge".into(),
            sent: 1,
            ..KindStats::default()
        }]
    );
    // A final entry is not skipped or deferred over.
    let skipped = DeliveryEntry {
        status: DeliveryStatus::Skipped {
            reason: "capped".into(),
        },
        ..claimed[0].clone()
    };
    assert_eq!(
        t.store.skip(PROGRAM, "alice", &skipped).await,
        Err(PortError::ConditionFailed)
    );
    t.resources.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_store_deferrals_come_due_in_time_order_and_are_released() {
    let t = table("ns-defer").await.unwrap();
    t.enrol("bob").await;
    let created = "2026-03-02T21:30:00Z";
    // Held until 06:00:00.5 and 07:00 UTC (the first rounds up to 06:00:01).
    let first = entry(
        "sms-1",
        "journey.dormant",
        DeliveryStatus::Deferred {
            until: "2026-03-03T06:00:00.5Z".into(),
        },
        created,
    );
    let second = entry(
        "sms-2",
        "journey.dormant",
        DeliveryStatus::Deferred {
            until: "2026-03-03T07:00:00Z".into(),
        },
        created,
    );
    // Deferred in the reverse order: due lists them by time, not by writing.
    t.store
        .defer(PROGRAM, "bob", &second, r#"{"id":"sms-2"}"#)
        .await
        .unwrap();
    t.store
        .defer(PROGRAM, "bob", &first, r#"{"id":"sms-1"}"#)
        .await
        .unwrap();
    assert_eq!(
        t.store.delivery(PROGRAM, "bob", "sms-1").await.unwrap(),
        Some(first.clone())
    );

    let at = |text: &str| text.parse::<Timestamp>().unwrap();
    let requests = |due: Vec<carrot::ports::Deferred>| -> Vec<String> {
        due.into_iter().map(|d| d.request).collect()
    };
    assert!(
        t.store
            .due(PROGRAM, at("2026-03-03T06:00:00.9Z"), 10)
            .await
            .unwrap()
            .is_empty(),
        "never released before its time"
    );
    assert_eq!(
        requests(
            t.store
                .due(PROGRAM, at("2026-03-03T06:00:01Z"), 10)
                .await
                .unwrap()
        ),
        [r#"{"id":"sms-1"}"#]
    );
    let late = at("2026-03-03T09:00:00Z");
    assert_eq!(
        requests(t.store.due(PROGRAM, late, 1).await.unwrap()),
        [r#"{"id":"sms-1"}"#],
        "at most the limit, oldest first"
    );
    let due = t.store.due(PROGRAM, late, 10).await.unwrap();
    assert_eq!(
        requests(due.clone()),
        [r#"{"id":"sms-1"}"#, r#"{"id":"sms-2"}"#]
    );
    // Another program's deferrals are its own.
    assert!(t.store.due("other", late, 10).await.unwrap().is_empty());

    t.store.release(PROGRAM, &due[0].key).await.unwrap();
    assert_eq!(
        requests(t.store.due(PROGRAM, late, 10).await.unwrap()),
        [r#"{"id":"sms-2"}"#]
    );

    // Back from the queue, a deferred request is claimed (or deferred again) over its entry;
    // a claimed one is not deferred over.
    let now = "2026-03-03T06:05:00Z";
    let claiming = DeliveryEntry {
        status: sending(now),
        ..first.clone()
    };
    assert_eq!(
        claim(&t.store, "bob", &claiming, None).await,
        Claim::Claimed
    );
    assert_eq!(
        t.store
            .defer(PROGRAM, "bob", &first, r#"{"id":"sms-1"}"#)
            .await,
        Err(PortError::ConditionFailed)
    );
    let again = DeliveryEntry {
        status: DeliveryStatus::Deferred {
            until: "2026-03-03T08:00:00Z".into(),
        },
        ..second.clone()
    };
    t.store
        .defer(PROGRAM, "bob", &again, r#"{"id":"sms-2","again":true}"#)
        .await
        .unwrap();
    assert_eq!(
        t.store.delivery(PROGRAM, "bob", "sms-2").await.unwrap(),
        Some(again)
    );
    t.resources.cleanup().await.unwrap();
}

fn feedback(id: &str, kind: &str, event: FeedbackEvent, at: &str) -> Feedback {
    Feedback {
        program: PROGRAM.into(),
        participant: "carol".into(),
        id: id.into(),
        kind: kind.into(),
        event,
        at: at.into(),
        address_sha256: Some("ab12".repeat(16)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_store_records_feedback_once_and_suppresses_bounced_addresses() {
    let t = table("ns-feedback").await.unwrap();
    t.enrol("carol").await;
    for (id, kind) in [("welcome-1", "journey.welcome"), ("digest-1", "digest")] {
        let at = "2026-03-31T23:59:00Z";
        let claimed = entry(id, kind, sending(at), at);
        assert_eq!(
            claim(&t.store, "carol", &claimed, None).await,
            Claim::Claimed
        );
        let done = DeliveryEntry {
            status: sent(at, &format!("ses-{id}")),
            ..claimed
        };
        t.store.mark_sent(PROGRAM, "carol", &done).await.unwrap();
    }

    // SNS delivers at least once: each event arrives three times, concurrently.
    let events = [
        feedback(
            "welcome-1",
            "journey.welcome",
            FeedbackEvent::Delivery,
            "2026-04-01T00:00:10Z",
        ),
        feedback(
            "welcome-1",
            "journey.welcome",
            FeedbackEvent::Open,
            "2026-04-01T07:00:00Z",
        ),
        feedback(
            "digest-1",
            "digest",
            FeedbackEvent::Bounce { permanent: false },
            "2026-04-01T00:00:20Z",
        ),
    ];
    let deliveries = events.iter().flat_map(|event| {
        (0..3).map(|_| {
            let (store, event) = (t.store.clone(), event.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    match store.record(&event).await {
                        Err(PortError::Transient(_)) => {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await
                        }
                        other => return other,
                    }
                }
                panic!("recording stayed transient")
            })
        })
    });
    for handle in deliveries.collect::<Vec<_>>() {
        handle.await.unwrap().unwrap();
    }
    let welcome = t
        .store
        .delivery(PROGRAM, "carol", "welcome-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        welcome.delivered_at.as_deref(),
        Some("2026-04-01T00:00:10Z")
    );
    assert_eq!(welcome.opened_at.as_deref(), Some("2026-04-01T07:00:00Z"));
    assert_eq!(welcome.bounced_at, None);
    assert!(matches!(welcome.status, DeliveryStatus::Sent { .. }));
    // Sent in March, the feedback counts in April (UTC).
    assert_eq!(
        t.stats("2026-04").await,
        [
            KindStats {
                kind: "digest".into(),
                bounced: 1,
                ..KindStats::default()
            },
            KindStats {
                kind: "journey.welcome".into(),
                delivered: 1,
                opened: 1,
                ..KindStats::default()
            },
        ]
    );
    assert_eq!(
        t.stats("2026-03")
            .await
            .iter()
            .map(|s| (s.kind.as_str(), s.sent))
            .collect::<Vec<_>>(),
        [("digest", 1), ("journey.welcome", 1)]
    );
    // A transient bounce does not suppress the address.
    assert_eq!(
        t.store.preferences(PROGRAM, "carol").await.unwrap(),
        Preferences::default()
    );

    // A complaint does; the participant's own choices stay.
    t.store
        .set_preferences(
            PROGRAM,
            "carol",
            &Preferences {
                sms_opted_out: true,
                ..Preferences::default()
            },
        )
        .await
        .unwrap();
    t.store
        .record(&feedback(
            "welcome-1",
            "journey.welcome",
            FeedbackEvent::Complaint,
            "2026-04-02T10:00:00Z",
        ))
        .await
        .unwrap();
    assert_eq!(
        t.store.preferences(PROGRAM, "carol").await.unwrap(),
        Preferences {
            sms_opted_out: true,
            suppressed_email: Some("ab12".repeat(16)),
            suppressed_reason: Some("complaint".into()),
            ..Preferences::default()
        }
    );

    // Feedback on mail the log does not know (another sender on the configuration set, or an
    // unknown participant) is ignored: no entry, no statistic, no suppression.
    let stranger = Feedback {
        participant: "dave".into(),
        ..feedback(
            "welcome-1",
            "journey.welcome",
            FeedbackEvent::Bounce { permanent: true },
            "2026-04-03T00:00:00Z",
        )
    };
    t.store.record(&stranger).await.unwrap();
    t.store
        .record(&feedback(
            "no-such-message",
            "journey.welcome",
            FeedbackEvent::Bounce { permanent: true },
            "2026-04-03T00:00:00Z",
        ))
        .await
        .unwrap();
    assert_eq!(
        t.stats("2026-04")
            .await
            .iter()
            .map(|s| (s.kind.as_str(), s.bounced, s.complained))
            .collect::<Vec<_>>(),
        [("digest", 1, 0), ("journey.welcome", 0, 1)]
    );
    assert!(
        t.store
            .deliveries(PROGRAM, "dave")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        t.store.preferences(PROGRAM, "dave").await.unwrap(),
        Preferences::default()
    );
    t.resources.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_store_keeps_preferences_and_lists_the_log_newest_first() {
    let t = table("ns-prefs").await.unwrap();
    assert_eq!(t.store.recipient(PROGRAM, "erin").await.unwrap(), None);
    assert_eq!(
        t.store
            .set_preferences(PROGRAM, "erin", &Preferences::default())
            .await,
        Err(PortError::ConditionFailed),
        "preferences only for an enrolled participant"
    );
    t.enrol("erin").await;
    let (state, preferences) = t.store.recipient(PROGRAM, "erin").await.unwrap().unwrap();
    assert_eq!(state.participant, "erin");
    assert_eq!(state.profile.email, "erin@dealer.example");
    assert_eq!(state.status, "active");
    assert_eq!(preferences, Preferences::default());

    let chosen = Preferences {
        email_unsubscribed: true,
        sms_opted_out: false,
        suppressed_email: None,
        suppressed_reason: None,
    };
    t.store
        .set_preferences(PROGRAM, "erin", &chosen)
        .await
        .unwrap();
    assert_eq!(t.store.preferences(PROGRAM, "erin").await.unwrap(), chosen);
    assert_eq!(
        t.store.recipient(PROGRAM, "erin").await.unwrap().unwrap().1,
        chosen
    );
    // Whole: a later write replaces every field.
    t.store
        .set_preferences(PROGRAM, "erin", &Preferences::default())
        .await
        .unwrap();
    assert_eq!(
        t.store.preferences(PROGRAM, "erin").await.unwrap(),
        Preferences::default()
    );

    // The log, newest first: a sent entry by its sending, others by their request.
    let old_sent = entry(
        "a",
        "digest",
        sending("2026-03-01T08:00:00Z"),
        "2026-03-01T08:00:00Z",
    );
    assert_eq!(
        claim(&t.store, "erin", &old_sent, None).await,
        Claim::Claimed
    );
    let old_sent = DeliveryEntry {
        status: sent("2026-03-05T08:00:00Z", "ses-a"),
        ..old_sent
    };
    t.store.mark_sent(PROGRAM, "erin", &old_sent).await.unwrap();
    let skipped = entry(
        "b",
        "journey.nudge",
        DeliveryStatus::Skipped {
            reason: "unsubscribed".into(),
        },
        "2026-03-03T08:00:00Z",
    );
    t.store.skip(PROGRAM, "erin", &skipped).await.unwrap();
    let deferred = entry(
        "c",
        "journey.dormant",
        DeliveryStatus::Deferred {
            until: "2026-03-06T06:00:00Z".into(),
        },
        "2026-03-04T22:00:00Z",
    );
    t.store
        .defer(PROGRAM, "erin", &deferred, "{}")
        .await
        .unwrap();
    let ids: Vec<String> = t
        .store
        .deliveries(PROGRAM, "erin")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["a", "c", "b"]);
    t.resources.cleanup().await.unwrap();
}
