//! One month closed: boards frozen and their bonuses credited once, the drawing published and
//! verifiable, the report written; a rerun changes nothing.

use super::{AWARD_IDLE, Rep, Tenant, expected_rows, past_months, rows, text};
use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use carrot::domain::drawing::{DrawingRecord, verify};
use carrot::ports::StatsReader;
use carrot_local::deployment::Deployment;
use carrot_local::stack::LocalStack;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const PROGRAM: &str = "close-month";

/// Ten reps over three locations in `m1`. r03 and r04 tie for third place with 220 points;
/// r04 got there on day 4, r03 only on day 20, so r04 takes the third place's 200 points
/// although r03 sorts first by name.
fn reps(m1: &super::Month) -> Vec<Rep> {
    vec![
        Rep::new("r01", "north", true)
            .deals(m1, &[2, 3, 4, 5, 6, 7])
            .logins(m1, &[2, 3, 4, 5]),
        Rep::new("r02", "north", false)
            .deals(m1, &[2, 3, 4, 5, 6])
            .logins(m1, &[2, 3]),
        Rep::new("r03", "south", true)
            .deals(m1, &[3, 5, 8, 20])
            .logins(m1, &[3, 5, 8, 20]),
        Rep::new("r04", "west", false)
            .deals(m1, &[1, 2, 3, 4])
            .logins(m1, &[1, 2, 3, 4]),
        Rep::new("r05", "south", false)
            .deals(m1, &[10, 11, 12])
            .logins(m1, &[10, 11, 12]),
        Rep::new("r06", "west", false)
            .deals(m1, &[5, 6])
            .logins(m1, &[5, 6, 7, 8, 9])
            .evening_login(m1, 5),
        Rep::new("r07", "north", true)
            .deals(m1, &[15])
            .logins(m1, &[15]),
        Rep::new("r08", "south", false).logins(m1, &[1, 2, 3]),
        Rep::new("r09", "west", true),
        Rep::new("r10", "south", false).deals(m1, &[9, 10]),
    ]
}

/// The drawing record as stored in the table (its only page), and the item's key.
async fn stored_drawing(
    deployment: &Deployment,
    period: &str,
) -> anyhow::Result<(
    aws_sdk_dynamodb::Client,
    [(String, AttributeValue); 2],
    String,
)> {
    let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
    let key = [
        (
            "pk".to_owned(),
            AttributeValue::S(format!("CLOSE#{PROGRAM}#{period}")),
        ),
        (
            "sk".to_owned(),
            AttributeValue::S("DOC#drawing#monthly-draw#00000".into()),
        ),
    ];
    let item = dynamodb
        .get_item()
        .table_name(deployment.resources.table())
        .set_key(Some(key.clone().into_iter().collect()))
        .consistent_read(true)
        .send()
        .await?
        .item
        .context("the drawing record is stored")?;
    let text = match item.get("text") {
        Some(AttributeValue::S(text)) => text.clone(),
        other => anyhow::bail!("the drawing record's text is {other:?}"),
    };
    Ok((dynamodb, key, text))
}

async fn store_drawing_text(
    deployment: &Deployment,
    dynamodb: &aws_sdk_dynamodb::Client,
    key: &[(String, AttributeValue); 2],
    text: &str,
) -> anyhow::Result<()> {
    dynamodb
        .update_item()
        .table_name(deployment.resources.table())
        .set_key(Some(key.clone().into_iter().collect()))
        .update_expression("SET #text = :text")
        .expression_attribute_names("#text", "text")
        .expression_attribute_values(":text", AttributeValue::S(text.to_owned()))
        .send()
        .await?;
    Ok(())
}

/// The names of the checks a verification failed.
fn failed_checks(
    record: &DrawingRecord,
    entrants: &[carrot::domain::drawing::Entrant],
) -> Vec<String> {
    verify(record, entrants)
        .checks
        .into_iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_month_credits_its_bonuses_once_and_publishes_a_verifiable_drawing()
-> anyhow::Result<()> {
    let [m1, ..] = past_months()?;
    let stack = LocalStack::start_or_reuse().await?;
    let deployment = Deployment::start(
        stack,
        "close-month",
        super::super::options(10, 0.0),
        super::super::PROGRAM_TTL,
    )
    .await?;
    let tenant = Tenant::create(&deployment, PROGRAM).await?;
    let reps = reps(&m1);
    tenant.enrol(&reps, &m1).await?;
    tenant.post(&reps).await?;
    deployment.award.wait_idle(AWARD_IDLE).await?;
    let label = m1.label.as_str();
    let base: BTreeMap<&str, i64> = reps.iter().map(|r| (r.id.as_str(), r.points())).collect();

    // Before the close: the live standings, ties sharing a rank.
    let monthly_rows = expected_rows(&[
        (1, "r01", 320),
        (2, "r02", 260),
        (3, "r03", 220),
        (3, "r04", 220),
        (5, "r05", 165),
        (6, "r06", 130),
        (7, "r10", 100),
        (8, "r07", 55),
        (9, "r08", 15),
    ]);
    let live = tenant
        .get(&format!("/leaderboards/monthly-top?period={label}"))
        .await?;
    assert_eq!(
        (&live["final"], &live["exact"]),
        (&json!(false), &json!(true)),
        "{live}"
    );
    assert_eq!(rows(&live["standings"][0]), monthly_rows);
    let quarter = tenant
        .get(&format!(
            "/leaderboards/quarter-logins?period={}",
            m1.quarter()
        ))
        .await?;
    assert_eq!(quarter["final"], json!(false), "{quarter}");
    // Five shown, and the ties at the edge with them.
    assert_eq!(
        rows(&quarter["standings"][0]),
        expected_rows(&[
            (1, "r06", 5),
            (2, "r01", 4),
            (2, "r03", 4),
            (2, "r04", 4),
            (5, "r05", 3),
            (5, "r08", 3),
        ])
    );
    let open = tenant.get(&format!("/closes/{label}")).await?;
    assert_eq!(open["status"], "open");

    let closed = tenant.close(&deployment, label).await?;
    // Credits: 3 on the top board, 3 for north's members, 1 gift card. Notices: 2 drawing
    // winners; r02 and r07 below 3 login days (r07's manager told), r09 and r10 without a
    // login: strikes (r09's manager told).
    assert_eq!(
        (
            &closed["participants"],
            &closed["effects"],
            &closed["applied_now"],
            &closed["resumed"]
        ),
        (&json!(10), &json!(17), &json!(17), &json!(false)),
        "{closed}"
    );
    deployment.award.wait_idle(AWARD_IDLE).await?;

    let state = tenant.get(&format!("/closes/{label}")).await?;
    assert_eq!(
        (&state["status"], &state["effects_applied"]),
        (&json!("closed"), &json!(17)),
        "{state}"
    );

    let frozen = tenant
        .get(&format!("/leaderboards/monthly-top?period={label}"))
        .await?;
    assert_eq!(frozen["final"], json!(true), "{frozen}");
    assert_eq!(rows(&frozen["standings"][0]), monthly_rows);
    let places: Vec<(u64, u64, String, String)> = frozen["awards"][0]["places"]
        .as_array()
        .context("awarded places")?
        .iter()
        .map(|p| {
            (
                p["place"].as_u64().unwrap_or(0),
                p["rank"].as_u64().unwrap_or(0),
                text(&p["name"]),
                text(&p["award"]),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            (1, 1, "r01".to_owned(), "500 points".to_owned()),
            (2, 2, "r02".to_owned(), "300 points".to_owned()),
            (3, 3, "r04".to_owned(), "200 points".to_owned()),
        ],
        "the tie for third goes to the rep who reached 220 first"
    );
    let locations = tenant
        .get(&format!("/leaderboards/best-location?period={label}"))
        .await?;
    assert_eq!(locations["final"], json!(true), "{locations}");
    let ranked: Vec<(u64, String)> = rows(&locations["standings"][0])
        .into_iter()
        .map(|(rank, name, _)| (rank, name))
        .collect();
    // Averages per member: north 635/3, south 500/4, west 350/3 (r09's 0 counts).
    assert_eq!(
        ranked,
        [(1, "north".into()), (2, "south".into()), (3, "west".into())]
    );
    assert_eq!(rows(&locations["standings"][0])[1].2, "125");
    assert_eq!(
        (
            text(&locations["awards"][0]["places"][0]["name"]),
            text(&locations["awards"][0]["places"][0]["award"])
        ),
        ("north".to_owned(), "100 points".to_owned())
    );

    let (record, entrants) = tenant.drawing("monthly-draw", label).await?;
    let entrant_ids: Vec<&str> = entrants.iter().map(|e| e.participant.as_str()).collect();
    assert_eq!(
        entrant_ids,
        ["r01", "r03", "r04", "r05", "r06", "r08"],
        "3 login days or more"
    );
    assert!(entrants.iter().all(|e| e.entries == 1));
    let verification = verify(&record, &entrants);
    assert!(verification.passed(), "{verification:?}");
    let prizes: Vec<(&str, i64)> = record
        .winners
        .iter()
        .map(|w| (w.prize.as_str(), w.points))
        .collect();
    assert_eq!(prizes, [("Gift card", 250), ("Mug", 0)]);
    let gift_card = record.winners[0].participant.clone();

    // Every bonus once, with the bonus rule; the balances are the events' points plus them.
    let top = format!("close:{label}:monthly-top");
    let location = format!("close:{label}:best-location");
    let draw = format!("draw:{label}:monthly-draw");
    let mut expected: BTreeMap<&str, BTreeMap<String, i64>> = reps
        .iter()
        .map(|r| (r.id.as_str(), BTreeMap::new()))
        .collect();
    for (rep, event, points) in [
        ("r01", &top, 500),
        ("r02", &top, 300),
        ("r04", &top, 200),
        ("r01", &location, 100),
        ("r02", &location, 100),
        ("r07", &location, 100),
        (gift_card.as_str(), &draw, 250),
    ] {
        expected
            .get_mut(rep)
            .context("a rep")?
            .insert(event.clone(), points);
    }
    let mut balances = BTreeMap::new();
    for rep in &reps {
        let (bonuses, balance) = tenant.bonuses(&deployment, &rep.id).await?;
        assert_eq!(bonuses, expected[rep.id.as_str()], "bonuses of {}", rep.id);
        assert_eq!(
            balance,
            base[rep.id.as_str()] + bonuses.values().sum::<i64>(),
            "balance of {}",
            rep.id
        );
        balances.insert(rep.id.clone(), (balance, bonuses));
        // The month's points are what its events earned: a bonus is not a result.
        let months = deployment.store.months(PROGRAM, &rep.id).await?;
        let points = months
            .iter()
            .find(|m| m.month == label)
            .map_or(0, |m| m.points);
        assert_eq!(points, rep.points_in(&m1), "{label} points of {}", rep.id);
    }
    let ledger = deployment.store.ledger(PROGRAM, "r04").await?;
    let third = ledger
        .iter()
        .find(|r| r.event_id == top)
        .context("r04's bonus")?;
    let note = third.note.as_deref().unwrap_or_default();
    assert!(
        note.contains("Monthly top sellers") && note.contains(label) && note.contains("place 3"),
        "{note}"
    );

    // A record altered after the draw no longer verifies: the winners are recomputed.
    let (dynamodb, key, original) = stored_drawing(&deployment, label).await?;
    let mut altered: Value = serde_json::from_str(&original)?;
    let loser = entrant_ids
        .iter()
        .find(|id| record.winners.iter().all(|w| w.participant != **id))
        .context("an entrant who did not win")?;
    altered["winners"][0]["participant"] = json!(loser);
    store_drawing_text(&deployment, &dynamodb, &key, &altered.to_string()).await?;
    let (tampered, entrants_again) = tenant.drawing("monthly-draw", label).await?;
    assert_eq!(failed_checks(&tampered, &entrants_again), ["winners"]);
    store_drawing_text(&deployment, &dynamodb, &key, &original).await?;

    // A rerun finds the close done: nothing applied again, nothing drawn again.
    let rerun = tenant.close(&deployment, label).await?;
    assert_eq!(
        (&rerun["applied_now"], &rerun["resumed"]),
        (&json!(0), &json!(true)),
        "{rerun}"
    );
    deployment.award.wait_idle(AWARD_IDLE).await?;
    for rep in &reps {
        let (bonuses, balance) = tenant.bonuses(&deployment, &rep.id).await?;
        assert_eq!(
            (balance, bonuses),
            balances[&rep.id],
            "{} after the rerun",
            rep.id
        );
    }
    let (redrawn, _) = tenant.drawing("monthly-draw", label).await?;
    assert_eq!(redrawn, record);

    let report = tenant.get(&format!("/reports/{label}")).await?;
    assert_eq!(report["program"], PROGRAM);
    assert_eq!(
        report["participation"],
        json!({"enrolled": 10, "active": 9, "suspended": 0, "terminated": 0, "new": 0})
    );
    let issued: i64 = base.values().sum();
    assert_eq!(
        (
            &report["points"]["issued"],
            &report["points"]["bonuses"],
            &report["points"]["liability"]
        ),
        (&json!(issued), &json!(1_550), &json!(issued)),
        "{}",
        report["points"]
    );
    // Reps by login days: r09 and r10 none, r07 1, r02 2, r05 and r08 3, r01, r03, r04 4, r06 5.
    let distribution: Vec<u64> = serde_json::from_value(report["login_day_distribution"].clone())?;
    assert_eq!(distribution[..6], [2, 1, 1, 2, 3, 1]);
    assert!(distribution[6..].iter().all(|n| *n == 0));
    assert_eq!(
        report["notices"],
        json!({"below_threshold": 2, "manager_emails": 2, "zero_logins": 2, "first_strikes": 2,
            "suspended": 0, "terminated": 0})
    );
    let drawing = &report["drawings"][0];
    assert_eq!(
        (
            &drawing["drawing"],
            &drawing["entrants"],
            &drawing["tickets"]
        ),
        (&json!("monthly-draw"), &json!(6), &json!(6))
    );
    assert_eq!(drawing["seed"].as_str(), record.seed.as_deref());
    assert_eq!(
        drawing["winners"][0],
        json!({"prize": "Gift card", "participant": gift_card})
    );
    let boards: Vec<String> = report["boards"]
        .as_array()
        .context("boards")?
        .iter()
        .map(|b| text(&b["board"]))
        .collect();
    assert_eq!(
        boards,
        ["monthly-top", "best-location"],
        "the month's boards"
    );

    let (status, content_type, page) = tenant
        .admin
        .get_text(&format!("/reports/{label}/html"))
        .await?;
    assert_eq!(status, 200, "{page}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(
        page.contains(PROGRAM) && page.contains("Monthly top sellers"),
        "{page}"
    );

    deployment.stop().await
}
