//! A close killed at an arbitrary point (its future dropped at whatever await it had reached)
//! and run again ends as if it had never been killed.

use super::{AWARD_IDLE, Month, Notice, Rep, Tenant, notices_of, past_months, won};
use anyhow::Context;
use carrot::domain::drawing::DrawingRecord;
use carrot::ports::CloseStore;
use carrot_local::deployment::Deployment;
use carrot_local::stack::LocalStack;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// When each killed close is dropped, in percent of how long the uninterrupted close took:
/// spread over deciding, freezing, drawing, applying and publishing whatever the machine's
/// speed (where each kill landed is printed).
const KILL_AT_PERCENT: [u32; 9] = [0, 5, 10, 20, 30, 40, 50, 65, 80];

/// Twenty reps over four locations: none, a few or many login days, some deals, some with a
/// manager. Every program gets the same ones.
fn reps(m1: &Month) -> Vec<Rep> {
    let days: Vec<i8> = (1..=28).collect();
    (0..20)
        .map(|i: usize| {
            let location = ["north", "south", "west", "east"][i % 4];
            let logins = i % 5;
            let deals = i % 3;
            let first = (i % 7) as i8 * 3;
            Rep::new(&format!("rep-{i:02}"), location, i.is_multiple_of(3))
                .logins(m1, &days[first as usize..first as usize + logins])
                .deals(m1, &days[i..i + deals])
        })
        .collect()
}

/// What a close left that must not depend on when it was killed.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Per board: its frozen standings and awarded places.
    boards: BTreeMap<String, (Value, Value)>,
    lists: BTreeMap<String, Vec<String>>,
    /// Per rep: the boards' credits (event id → points) and the balance without the drawing's.
    credits: BTreeMap<String, (BTreeMap<String, i64>, i64)>,
    /// The notification requests other than the drawing's.
    notices: BTreeSet<Notice>,
}

/// Reads the outcome, checking what depends on the program's own drawing: its record verifies,
/// its gift card winner (only) got the prize's points once, and its winners (only) were told.
async fn outcome(
    deployment: &Deployment,
    tenant: &Tenant,
    reps: &[Rep],
    label: &str,
    notices: &BTreeMap<String, Notice>,
) -> anyhow::Result<(Outcome, DrawingRecord)> {
    let mut boards = BTreeMap::new();
    for board in ["monthly-top", "best-location"] {
        let frozen = tenant
            .get(&format!("/leaderboards/{board}?period={label}"))
            .await?;
        anyhow::ensure!(frozen["final"] == true, "{frozen}");
        boards.insert(
            board.to_owned(),
            (frozen["standings"].clone(), frozen["awards"].clone()),
        );
    }
    let mut lists = BTreeMap::new();
    for list in ["zero-logins", "notices", "to-be-suspended", "sanctioned"] {
        lists.insert(list.to_owned(), tenant.list(label, list).await?);
    }
    let (record, entrants) = tenant.drawing("monthly-draw", label).await?;
    let verification = carrot::domain::drawing::verify(&record, &entrants);
    anyhow::ensure!(verification.passed(), "{}: {verification:?}", tenant.id);
    let draw = format!("draw:{label}:monthly-draw");
    let prize = record
        .winners
        .first()
        .map(|w| (w.participant.clone(), w.points));
    let mut credits = BTreeMap::new();
    for rep in reps {
        let (mut bonuses, balance) = tenant.bonuses(deployment, &rep.id).await?;
        let drawn = bonuses.remove(&draw);
        let expected = prize
            .as_ref()
            .filter(|(winner, _)| *winner == rep.id)
            .map(|(_, points)| *points);
        anyhow::ensure!(
            drawn == expected,
            "{}: {} has {draw} {drawn:?}",
            tenant.id,
            rep.id
        );
        let without_draw = balance - drawn.unwrap_or(0);
        anyhow::ensure!(
            without_draw == rep.points() + bonuses.values().sum::<i64>(),
            "{}: the balance of {} is {balance}",
            tenant.id,
            rep.id
        );
        credits.insert(rep.id.clone(), (bonuses, without_draw));
    }
    let mut others = BTreeSet::new();
    let mut told = BTreeSet::new();
    for (id, notice) in notices {
        let expected_id = format!(
            "{}:{}:{}:{}:{}",
            tenant.id, notice.period, notice.kind, notice.recipient, notice.participant
        );
        anyhow::ensure!(*id == expected_id, "request {id} is {notice:?}");
        if notice.kind == "drawing.won" {
            told.insert(notice.clone());
        } else {
            others.insert(notice.clone());
        }
    }
    anyhow::ensure!(told == won(&record), "{}: winners told {told:?}", tenant.id);
    Ok((
        Outcome {
            boards,
            lists,
            credits,
            notices: others,
        },
        record,
    ))
}

/// Where a killed close stopped, from what it left in the table.
async fn stopped_at(
    deployment: &Deployment,
    tenant: &Tenant,
    label: &str,
    effects: u64,
) -> anyhow::Result<(String, Option<DrawingRecord>)> {
    let state = deployment.store.state(&tenant.id, label).await?;
    let drawn = tenant
        .admin
        .get(&format!("/drawings/monthly-draw/{label}"))
        .await?;
    let record = match drawn.status {
        200 => Some(serde_json::from_value(drawn.body["record"].clone())?),
        _ => None,
    };
    let stage = match (&state, &record) {
        (None, _) => "before freezing: nothing counts yet".to_owned(),
        (Some(s), _) if s.done => "done, killed before it returned".to_owned(),
        (Some(_), None) => "frozen, not drawn".to_owned(),
        (Some(s), Some(_)) if s.applied == 0 => {
            "frozen and drawn, no effect checkpointed (killed before or while applying)".to_owned()
        }
        (Some(s), Some(_)) if s.applied < effects => {
            format!("mid-apply: {} of {effects} effects checkpointed", s.applied)
        }
        (Some(_), Some(_)) => "every effect applied, not published or not marked done".to_owned(),
    };
    Ok((stage, record))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_killed_at_any_point_and_rerun_gives_the_same_result() -> anyhow::Result<()> {
    let [m1, ..] = past_months()?;
    let label = m1.label.as_str();
    let stack = LocalStack::start_or_reuse().await?;
    let deployment = Deployment::start(
        stack,
        "close-crash",
        super::super::options(10, 0.0),
        super::super::PROGRAM_TTL,
    )
    .await?;
    let reps = reps(&m1);
    let mut tenants = vec![Tenant::create(&deployment, "crash-reference").await?];
    for percent in KILL_AT_PERCENT {
        tenants.push(Tenant::create(&deployment, &format!("crash-killed-at-{percent}")).await?);
    }
    for tenant in &tenants {
        tenant.enrol(&reps, &m1).await?;
        tenant.post(&reps).await?;
    }
    deployment.award.wait_idle(AWARD_IDLE).await?;

    let (reference, killed) = tenants.split_first().context("the reference program")?;
    let started = Instant::now();
    let closed = reference.close(&deployment, label).await?;
    let uninterrupted = started.elapsed();
    eprintln!(
        "an uninterrupted close of {} reps with {} effects took {uninterrupted:?}",
        reps.len(),
        closed["effects"],
    );
    let effects = closed["effects"].as_u64().context("effects")?;
    let mut records = BTreeMap::new();
    for (tenant, percent) in killed.iter().zip(KILL_AT_PERCENT) {
        let delay = uninterrupted * percent / 100;
        let run = tokio::time::timeout(delay, tenant.close(&deployment, label)).await;
        let (stage, drawn) = stopped_at(&deployment, tenant, label, effects).await?;
        let stage = match run {
            Ok(finished) => format!("finished before the kill ({})", finished?["applied_now"]),
            Err(_) => stage,
        };
        eprintln!("killed after {delay:?} ({percent}%): {stage}");
        let rerun = tenant.close(&deployment, label).await?;
        assert_eq!(
            rerun["effects"], closed["effects"],
            "{}: {rerun}",
            tenant.id
        );
        let (record, _) = tenant.drawing("monthly-draw", label).await?;
        if let Some(drawn) = drawn {
            assert_eq!(
                record, drawn,
                "{}: drawn once, by the killed run",
                tenant.id
            );
        }
        let again = tenant.close(&deployment, label).await?;
        assert_eq!(again["applied_now"], 0, "{}: {again}", tenant.id);
        let (unchanged, _) = tenant.drawing("monthly-draw", label).await?;
        assert_eq!(unchanged, record, "{}: not drawn again", tenant.id);
        records.insert(tenant.id.clone(), record);
    }
    deployment.award.wait_idle(AWARD_IDLE).await?;

    let bodies = deployment
        .drain_queue(deployment.resources.queue_url("NotificationsQueue"))
        .await?;
    let (notices, received) = notices_of(&bodies, &reference.id)?;
    assert_eq!(
        received,
        notices.len(),
        "an uninterrupted close queues each request once"
    );
    let (expected, reference_record) =
        outcome(&deployment, reference, &reps, label, &notices).await?;
    assert!(
        !expected.notices.is_empty() && !reference_record.winners.is_empty(),
        "the close has notices and winners to compare"
    );
    for tenant in killed {
        let (notices, received) = notices_of(&bodies, &tenant.id)?;
        if received > notices.len() {
            eprintln!(
                "{}: {} requests sent again by the rerun (the kill fell after sending, before the checkpoint)",
                tenant.id,
                received - notices.len()
            );
        }
        let (got, record) = outcome(&deployment, tenant, &reps, label, &notices).await?;
        assert_eq!(
            got, expected,
            "{} against the uninterrupted close",
            tenant.id
        );
        assert_eq!(
            record, records[&tenant.id],
            "{}: the record after the reruns",
            tenant.id
        );
    }

    deployment.stop().await
}
