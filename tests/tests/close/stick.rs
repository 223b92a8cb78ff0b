//! The stick over three closed months: a notice, first strikes, suspensions that stand until
//! an administrator reinstates, and the notifications and outbound events they cause.

use super::{AWARD_IDLE, Notice, Rep, Tenant, expected_rows, notices_of, past_months, rows, won};
use carrot_local::deployment::Deployment;
use carrot_local::stack::LocalStack;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const PROGRAM: &str = "close-stick";

fn notice(kind: &str, recipient: &str, participant: &str, period: &str) -> Notice {
    Notice {
        kind: kind.into(),
        recipient: recipient.into(),
        participant: participant.into(),
        period: period.into(),
    }
}

/// The outbound events drained from the topic's queue: (type, participant, period).
fn outbound(bodies: &[String]) -> anyhow::Result<Vec<(String, String, Option<String>)>> {
    let mut events = bodies
        .iter()
        .map(|body| {
            let event: Value = serde_json::from_str(body)?;
            anyhow::ensure!(event["program"] == PROGRAM, "{event}");
            Ok((
                super::text(&event["type"]),
                super::text(&event["participant"]),
                event["period"].as_str().map(str::to_owned),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    events.sort();
    Ok(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strike_ladder_runs_over_three_months() -> anyhow::Result<()> {
    let [m1, m2, m3] = past_months()?;
    let stack = LocalStack::start_or_reuse().await?;
    let deployment = Deployment::start(
        stack,
        "close-stick",
        super::super::options(10, 0.0),
        super::super::PROGRAM_TTL,
    )
    .await?;
    let topic_queue = stack
        .subscribe_queue(&deployment.resources, "OutboundTopic")
        .await?;
    let tenant = Tenant::create(&deployment, PROGRAM).await?;
    // A logs in every month; B once in the first month; C never (deals in the third month
    // would rank C, were C not suspended by then); D not in the first and third months.
    let reps = [
        Rep::new("rep-a", "north", true)
            .logins(&m1, &[2, 3, 4])
            .deals(&m1, &[2])
            .logins(&m2, &[2, 3, 4])
            .deals(&m2, &[2])
            .logins(&m3, &[2, 3, 4])
            .deals(&m3, &[2]),
        Rep::new("rep-b", "north", true)
            .logins(&m1, &[5])
            .logins(&m2, &[5, 6, 7])
            .logins(&m3, &[5, 6, 7]),
        Rep::new("rep-c", "south", true).deals(&m3, &[3, 4]),
        Rep::new("rep-d", "south", false).logins(&m2, &[5, 6, 7]),
    ];
    tenant.enrol(&reps, &m1).await?;
    tenant.post(&reps).await?;
    deployment.award.wait_idle(AWARD_IDLE).await?;
    let status = async |participant: &str| -> anyhow::Result<String> {
        Ok(tenant.standing(&deployment, participant).await?.0)
    };

    tenant.close(&deployment, &m1.label).await?;
    assert_eq!(
        tenant.list(&m1.label, "zero-logins").await?,
        ["rep-c", "rep-d"]
    );
    assert_eq!(
        tenant.list(&m1.label, "to-be-suspended").await?,
        ["rep-c", "rep-d"]
    );
    assert_eq!(tenant.list(&m1.label, "notices").await?, ["rep-b"]);
    assert!(tenant.list(&m1.label, "sanctioned").await?.is_empty());
    for rep in ["rep-c", "rep-d"] {
        assert_eq!(
            status(rep).await?,
            "active",
            "a first strike leaves {rep} active"
        );
    }

    tenant.close(&deployment, &m2.label).await?;
    assert_eq!(tenant.list(&m2.label, "zero-logins").await?, ["rep-c"]);
    assert_eq!(tenant.list(&m2.label, "sanctioned").await?, ["rep-c"]);
    assert!(tenant.list(&m2.label, "to-be-suspended").await?.is_empty());
    assert_eq!(status("rep-c").await?, "suspended");
    assert_eq!(
        status("rep-d").await?,
        "active",
        "D logged in in the second month"
    );

    tenant.close(&deployment, &m3.label).await?;
    // D's first-month strike still stands (no forgiveness configured); suspended C is neither
    // judged nor listed nor ranked.
    assert_eq!(status("rep-d").await?, "suspended");
    assert_eq!(tenant.list(&m3.label, "zero-logins").await?, ["rep-d"]);
    assert_eq!(tenant.list(&m3.label, "sanctioned").await?, ["rep-d"]);
    assert!(tenant.list(&m3.label, "notices").await?.is_empty());
    let top = tenant
        .get(&format!("/leaderboards/monthly-top?period={}", m3.label))
        .await?;
    assert_eq!(top["final"], json!(true), "{top}");
    assert_eq!(
        rows(&top["standings"][0]),
        expected_rows(&[(1, "rep-a", 65), (2, "rep-b", 15)]),
        "C's 100 points do not rank while C is suspended"
    );
    deployment.award.wait_idle(AWARD_IDLE).await?;

    let mut expected: BTreeSet<Notice> = [
        notice("non_use.notice", "participant", "rep-b", &m1.label),
        notice("non_use.manager", "manager", "rep-b", &m1.label),
        notice("non_use.first_strike", "participant", "rep-c", &m1.label),
        notice("non_use.manager", "manager", "rep-c", &m1.label),
        notice("non_use.first_strike", "participant", "rep-d", &m1.label),
        notice("non_use.suspended", "participant", "rep-c", &m2.label),
        notice("non_use.manager", "manager", "rep-c", &m2.label),
        notice("non_use.suspended", "participant", "rep-d", &m3.label),
    ]
    .into();
    for month in [&m1, &m2, &m3] {
        let (record, _) = tenant.drawing("monthly-draw", &month.label).await?;
        expected.extend(won(&record));
    }
    let bodies = deployment
        .drain_queue(deployment.resources.queue_url("NotificationsQueue"))
        .await?;
    let (notices, received) = notices_of(&bodies, PROGRAM)?;
    assert_eq!(
        received,
        notices.len(),
        "each request queued once, under its own id"
    );
    let got: BTreeSet<Notice> = notices.values().cloned().collect();
    assert_eq!(got.len(), notices.len(), "one id per request");
    assert_eq!(got, expected);

    let sanctions = outbound(&deployment.drain_queue(&topic_queue).await?)?;
    assert_eq!(
        sanctions,
        [
            (
                "participant.suspended".into(),
                "rep-c".into(),
                Some(m2.label.clone())
            ),
            (
                "participant.suspended".into(),
                "rep-d".into(),
                Some(m3.label.clone())
            ),
        ]
    );

    let reinstated = tenant.admin.reinstate("rep-c").await?;
    assert_eq!(reinstated.status, 200, "{reinstated:?}");
    assert_eq!(
        reinstated.body,
        json!({"participant": "rep-c", "status": "active"})
    );
    assert_eq!(status("rep-c").await?, "active");
    let again = tenant.admin.reinstate("rep-c").await?;
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(
        outbound(&deployment.drain_queue(&topic_queue).await?)?,
        [("participant.reinstated".into(), "rep-c".into(), None)]
    );

    deployment.stop().await
}
