//! Enrolment and statements on the local stack: bulk import (CSV and JSON Lines, per row and
//! all or nothing, backdating, statuses, parked events), the enrolment store's decisions
//! under concurrency and the stick's sanction, the statement's figures against a known
//! history, the ledger page by page, and the rules in plain terms.

use carrot::domain::participant::{Enrolling, Outcome, Profile, Status};
use carrot::ports::{CloseStore, EnrolmentStore, StatsReader};
use carrot_local::deployment::{ApiClient, Deployment};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const PROGRAM: &str = "acme";
const IDLE: Duration = Duration::from_secs(120);

/// Logins earn 5 points at once; a started contract 200, pending for 30 days; every point
/// expires at the end of the month after it was earned; a monthly drawing needs 10 login days.
const PROGRAM_YAML: &str = "\
program: acme
name: ACME Channel Stars
time_zone: Europe/Stockholm
locale: sv-SE
wallet:
  pending: { lock_days: 30, rules: [contract] }
  expiry: { after_months: 1 }
rules:
  - id: login
    version: 1
    when: { type: portal.login }
    award: { points: 5 }
  - id: contract
    version: 1
    when: { type: contract.started }
    award: { points: 200 }
    caps: [{ per: month, times: 20 }]
drawings:
  - id: monthly-logins
    title: Monthly login drawing
    period: month
    metric: login_days
    at_least: 10
    prizes: [{ prize: Tablet }]
";

struct Tenant {
    deployment: Deployment,
    crm: ApiClient,
    admin: ApiClient,
    portal: ApiClient,
}

async fn tenant(name: &str) -> anyhow::Result<Tenant> {
    let super::super::Setup {
        deployment,
        crm,
        admin,
    } = super::super::setup_with(name, super::super::options(30, 0.0), PROGRAM_YAML).await?;
    let portal = deployment
        .create_key("acme-portal", PROGRAM, &["participants:read"])
        .await?;
    // Events must occur after the configuration takes effect.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Tenant {
        deployment,
        crm,
        admin,
        portal,
    })
}

impl Tenant {
    async fn import(&self, body: &str, content_type: &str, query: &str) -> anyhow::Result<Value> {
        let response = self
            .admin
            .send(
                "POST",
                &format!("/imports{query}"),
                body.as_bytes().to_vec(),
                content_type,
            )
            .await?;
        Ok(json!({"status": response.status, "body": response.body}))
    }

    async fn statement(&self, participant: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .portal
            .get(&format!("/participants/{participant}"))
            .await?;
        Ok((response.status, response.body))
    }

    /// Posts the events and waits until the award function has recorded them.
    async fn post(&self, events: Vec<Value>) -> anyhow::Result<()> {
        let response = self.crm.post_events(&json!({"events": events})).await?;
        anyhow::ensure!(response.status == 202, "{response:?}");
        self.deployment.award.wait_idle(IDLE).await
    }
}

fn event(id: &str, participant: &str, event_type: &str, occurred_at: Timestamp) -> Value {
    json!({"id": id, "participant": participant, "type": event_type,
        "occurred_at": occurred_at.to_string()})
}

fn outcomes(report: &Value) -> Vec<(u64, String)> {
    report["body"]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const CSV_HEADER: &str = "participant,name,email,locale,time_zone,role,distributor,location,manager_name,manager_email,account,enrolled_at,status\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_enrols_each_good_row_once_and_reports_the_bad_ones() -> anyhow::Result<()> {
    let t = tenant("portal-import").await?;
    // An event before its participant is enrolled is parked; the import releases it.
    t.post(vec![event(
        "early-1",
        "rep-late",
        "portal.login",
        Timestamp::now(),
    )])
    .await?;

    let csv = format!(
        "{CSV_HEADER}\
         rep-1,\"Berg, Anna\",anna@dealer.example,sv-SE,Europe/Stockholm,sales_rep,nordic,\"Stockholm, city\",Erik Lund,erik@dealer.example,,2026-03-01,\n\
         rep-late,Bo Ek,bo@dealer.example,sv-SE,Europe/Stockholm,sales_rep,nordic,sthlm,,,,,\n\
         rep-bad,Cai,not-an-address,sv-SE,Europe/Stockholm,sales_rep,nordic,sthlm,,,,,\n\
         partner-1,\"Nordic \"\"HQ\"\"\",hq@dealer.example,sv-SE,Europe/Stockholm,partner_admin,nordic,sthlm,,,partner,,\n"
    );
    let first = t.import(&csv, "text/csv", "").await?;
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(
        outcomes(&first),
        [
            (2, "created".to_owned()),
            (3, "created".to_owned()),
            (4, "error".to_owned()),
            (5, "created".to_owned())
        ]
    );
    let bad = &first["body"]["results"][2];
    assert_eq!(bad["participant"], "rep-bad");
    assert_eq!(bad["errors"][0]["field"], "email");
    assert_eq!(
        (
            first["body"]["created"].as_u64(),
            first["body"]["errors"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(first["body"]["results"][1]["released_events"], 1);
    // The bad row wrote nothing.
    assert_eq!(t.statement("rep-bad").await?.0, 404);

    let (status, anna) = t.statement("rep-1").await?;
    assert_eq!(status, 200, "{anna}");
    assert_eq!(anna["name"], "Berg, Anna");
    assert_eq!(anna["location"], "Stockholm, city");
    // Backdated to the first moment of 1 March in Stockholm.
    assert_eq!(anna["enrolled_at"], "2026-02-28T23:00:00Z");
    assert_eq!(anna["account"], "individual");
    assert_eq!(t.statement("partner-1").await?.1["account"], "partner");
    assert_eq!(t.statement("partner-1").await?.1["name"], "Nordic \"HQ\"");

    // The parked login was awarded once the import released it.
    t.deployment.award.wait_idle(IDLE).await?;
    assert_eq!(t.statement("rep-late").await?.1["wallet"]["balance"], 5);

    // The same file again changes nothing.
    let again = t.import(&csv, "text/csv", "").await?;
    assert_eq!(
        outcomes(&again),
        [
            (2, "unchanged".to_owned()),
            (3, "unchanged".to_owned()),
            (4, "error".to_owned()),
            (5, "unchanged".to_owned())
        ]
    );

    // JSON Lines: an update keeps the enrolment date (backdating applies on creation only).
    let jsonl = [
        json!({"participant": "rep-1", "name": "Berg, Anna", "email": "anna@dealer.example",
            "locale": "sv-SE", "time_zone": "Europe/Stockholm", "role": "sales_rep",
            "distributor": "nordic", "location": "gbg", "enrolled_at": "2020-01-01"}),
        json!({"participant": "rep-2", "name": "Dan", "email": "dan@dealer.example",
            "locale": "sv-SE", "time_zone": "UTC", "role": "sales_rep",
            "distributor": "nordic", "location": "gbg", "enrolled_at": "2026-06-15T08:00:00Z"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let update = t.import(&jsonl, "application/x-ndjson", "").await?;
    assert_eq!(
        outcomes(&update),
        [(1, "updated".to_owned()), (2, "created".to_owned())]
    );
    let anna = t.statement("rep-1").await?.1;
    assert_eq!(
        (anna["location"].as_str(), anna["enrolled_at"].as_str()),
        (Some("gbg"), Some("2026-02-28T23:00:00Z"))
    );
    assert_eq!(
        t.statement("rep-2").await?.1["enrolled_at"],
        "2026-06-15T08:00:00Z"
    );

    // All or nothing: one bad row and the good one is not written either.
    let mixed = format!(
        "{CSV_HEADER}\
         rep-3,Eva,eva@dealer.example,sv-SE,UTC,sales_rep,nordic,gbg,,,,,\n\
         rep-4,Fia,fia@dealer.example,sv-SE,UTC,sales_rep,nordic,gbg,,,,2999-01-01,\n"
    );
    let refused = t.import(&mixed, "text/csv", "?mode=all-or-nothing").await?;
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(refused["body"]["results"][0]["line"], 3);
    assert_eq!(
        refused["body"]["results"][0]["errors"][0]["field"],
        "enrolled_at"
    );
    assert_eq!(t.statement("rep-3").await?.0, 404);

    // Statuses: an administrator suspends, and lifts it.
    let status = |s: &str| {
        format!("{CSV_HEADER}rep-2,Dan,dan@dealer.example,sv-SE,UTC,sales_rep,nordic,gbg,,,,,{s}\n")
    };
    let suspended = t.import(&status("suspended"), "text/csv", "").await?;
    assert_eq!(outcomes(&suspended), [(2, "updated".to_owned())]);
    assert_eq!(t.statement("rep-2").await?.1["status"], "suspended");
    t.import(&status("active"), "text/csv", "").await?;
    assert_eq!(t.statement("rep-2").await?.1["status"], "active");

    // What cannot be imported at all.
    let json = t.import("{}", "application/json", "").await?;
    assert_eq!(json["status"], 415);
    let header = t.import("participant,colour\n", "text/csv", "").await?;
    assert_eq!(header["status"], 400);
    assert_eq!(header["body"]["errors"][0]["field"], "$");
    let mode = t.import(&csv, "text/csv", "?mode=some").await?;
    assert_eq!(mode["body"]["errors"][0]["field"], "mode");
    // Only administrators import.
    let response = t
        .portal
        .send("POST", "/imports", csv.into_bytes(), "text/csv")
        .await?;
    assert_eq!(response.status, 403);
    t.deployment.stop().await
}

fn anna() -> Profile {
    Profile::from_json(&super::super::profile("anna")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_enrolment_store_backdates_once_and_keeps_the_sticks_sanction() -> anyhow::Result<()> {
    let t = tenant("portal-enrol-store").await?;
    let store = &t.deployment.store;
    let now = Timestamp::now();
    let backdated: Timestamp = "2026-03-01T08:00:00Z".parse()?;
    let enrolling = |enrolled_at: Option<Timestamp>, status: Option<Status>| Enrolling {
        enrolled_at,
        status,
        ..Enrolling::from(&anna())
    };

    // Twenty enrolments of one new participant at once: one creates, the rest find it.
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, enrolling) = (store.clone(), enrolling(Some(backdated), None));
        attempts.spawn(async move { store.enrol(PROGRAM, "anna", &enrolling, now).await });
    }
    let mut outcomes = Vec::new();
    for decision in attempts.join_all().await {
        outcomes.push(decision?.outcome);
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Created).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.iter().all(|o| *o != Outcome::Updated));
    let stored = store.participant(PROGRAM, "anna").await?.unwrap();
    assert_eq!(stored.enrolled_at, backdated.to_string());

    // A later backdate of an enrolled participant is ignored.
    let later = store
        .enrol(
            PROGRAM,
            "anna",
            &enrolling(Some("2025-01-01T00:00:00Z".parse()?), None),
            now,
        )
        .await?;
    assert_eq!(later.outcome, Outcome::Unchanged);
    assert_eq!(
        store
            .participant(PROGRAM, "anna")
            .await?
            .unwrap()
            .enrolled_at,
        backdated.to_string()
    );

    // The stick suspends her; a CRM sync saying active does not undo it, reinstating does.
    assert!(
        store
            .sanction(PROGRAM, "anna", "suspended", "2026-10")
            .await?
    );
    let held = store
        .enrol(PROGRAM, "anna", &enrolling(None, Some(Status::Active)), now)
        .await?;
    assert_eq!(held.outcome, Outcome::Unchanged);
    assert!(held.note.unwrap().contains("reinstate"));
    assert_eq!(
        store.participant(PROGRAM, "anna").await?.unwrap().status,
        "suspended"
    );
    assert!(store.reinstate(PROGRAM, "anna", &now.to_string()).await?);
    // An administrator's termination, and its reversal, are theirs to make.
    for (status, stored) in [
        (Status::Terminated, "terminated"),
        (Status::Active, "active"),
    ] {
        let changed = store
            .enrol(PROGRAM, "anna", &enrolling(None, Some(status)), now)
            .await?;
        assert_eq!(changed.outcome, Outcome::Updated);
        assert_eq!(
            store.participant(PROGRAM, "anna").await?.unwrap().status,
            stored
        );
    }
    // The balance survives every update.
    t.post(vec![event(
        "login-1",
        "anna",
        "portal.login",
        Timestamp::now(),
    )])
    .await?;
    let mut moved = enrolling(None, None);
    moved.profile.location = "gbg".into();
    assert_eq!(
        store.enrol(PROGRAM, "anna", &moved, now).await?.outcome,
        Outcome::Updated
    );
    let stored = store.participant(PROGRAM, "anna").await?.unwrap();
    assert_eq!(
        (stored.balance, stored.profile.location.as_str()),
        (5, "gbg")
    );
    t.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_statement_shows_pending_available_expiring_and_progress() -> anyhow::Result<()> {
    let t = tenant("portal-statement").await?;
    assert_eq!(
        t.admin
            .enrol("rep-1", &super::super::profile("rep-1"))
            .await?
            .status,
        201
    );
    let now = Timestamp::now();
    let mut events: Vec<Value> = (0..3)
        .map(|i| {
            let at = now - SignedDuration::from_mins(1 + i);
            event(&format!("login-{i}"), "rep-1", "portal.login", at)
        })
        .collect();
    let mut contract = event("contract-1", "rep-1", "contract.started", now);
    contract["attributes"] =
        json!({"contract_id": "K-1", "financed_volume": "250000", "currency": "SEK"});
    events.push(contract);
    t.post(events).await?;

    let (status, statement) = t.statement("rep-1").await?;
    assert_eq!(status, 200, "{statement}");
    let wallet = &statement["wallet"];
    // 15 login points can be spent; the contract's 200 wait 30 days.
    assert_eq!(
        (
            wallet["balance"].as_i64(),
            wallet["available"].as_i64(),
            wallet["pending"].as_i64()
        ),
        (Some(215), Some(15), Some(200))
    );
    let today: jiff::civil::Date = statement["today"].as_str().unwrap().parse()?;
    let deposit = &wallet["deposits"][0];
    assert_eq!(deposit["points"], 200);
    assert!(deposit["date"].as_str().unwrap() > statement["today"].as_str().unwrap());
    // Every point expires at the end of next month: within 90 days.
    let horizon = (today + jiff::ToSpan::days(90)).to_string();
    let lots = wallet["expiring"].as_array().unwrap();
    assert!(!lots.is_empty());
    assert!(
        lots.iter()
            .all(|l| l["date"].as_str().unwrap() <= horizon.as_str())
    );
    let expiring: i64 = lots.iter().map(|l| l["points"].as_i64().unwrap()).sum();
    assert_eq!(wallet["expiring_soon"].as_i64(), Some(expiring));
    assert_eq!(expiring, 215);

    let month = &statement["month"];
    assert_eq!(month["events"], 4);
    assert_eq!(month["events_by_type"]["portal.login"], 3);
    assert_eq!(month["events_by_type"]["contract.started"], 1);
    assert_eq!(month["login_days"], 1);
    assert_eq!(month["points"], 215);
    let quarter = &statement["quarter"];
    assert!(quarter["period"].as_str().unwrap().contains("-Q"));
    assert!(quarter["points"].as_i64() >= month["points"].as_i64());

    let drawing = &statement["drawings"][0];
    assert_eq!(drawing["drawing"], "monthly-logins");
    assert_eq!(
        (
            drawing["have"].as_i64(),
            drawing["need"].as_i64(),
            drawing["missing"].as_i64()
        ),
        (Some(1), Some(10), Some(9))
    );
    assert_eq!(drawing["entered"], false);
    assert_eq!(
        statement["days_left_in_month"].as_i64(),
        Some(i64::from(today.days_in_month() - today.day()) + 1)
    );
    // No active month yet to set a personal target from.
    assert_eq!(statement["target"], Value::Null);
    assert_eq!(statement["status"], "active");

    // A rep calling with their JWT sees the same statement.
    let own = t
        .deployment
        .as_rep(PROGRAM, "rep-1", "GET", "/v1/me", None)
        .await?;
    assert_eq!(own.status, 200, "{:?}", own.body);
    assert_eq!(own.body["wallet"], statement["wallet"]);

    assert_eq!(t.statement("nobody").await?.0, 404);
    t.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_pages_hold_every_entry_once_newest_first() -> anyhow::Result<()> {
    let t = tenant("portal-ledger").await?;
    assert_eq!(
        t.admin
            .enrol("rep-1", &super::super::profile("rep-1"))
            .await?
            .status,
        201
    );
    let now = Timestamp::now();
    let events: Vec<Value> = (0..23)
        .map(|i| {
            // Ids in no particular order of time.
            let id = format!("e-{:02}", (i * 7) % 23);
            event(
                &id,
                "rep-1",
                "portal.login",
                now - SignedDuration::from_secs(60 * i),
            )
        })
        .collect();
    t.post(events).await?;

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &after {
            Some(cursor) => format!("?limit=5&after={cursor}"),
            None => "?limit=5".to_owned(),
        };
        let page = t
            .portal
            .get(&format!("/participants/rep-1/ledger{query}"))
            .await?;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let entries = page.body["entries"].as_array().unwrap();
        assert!(entries.len() <= 5);
        for entry in entries {
            assert_eq!(entry["points"], 5);
            assert_eq!(entry["status"], "awarded");
            assert_eq!(entry["event_type"], "portal.login");
            assert_eq!(entry["rules"][0]["id"], "login");
            assert!(entry["expires_on"].is_string());
            seen.push((
                entry["occurred_at"]
                    .as_str()
                    .unwrap()
                    .parse::<Timestamp>()?
                    .to_string(),
                entry["event_id"].as_str().unwrap().to_owned(),
            ));
        }
        pages += 1;
        match page.body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let unique: BTreeSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(
        (seen.len(), unique.len()),
        (23, 23),
        "every entry exactly once"
    );
    let times: Vec<Timestamp> = seen.iter().map(|(at, _)| at.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    for (query, field) in [
        ("?after=bogus", "after"),
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
    ] {
        let refused = t
            .portal
            .get(&format!("/participants/rep-1/ledger{query}"))
            .await?;
        assert_eq!(refused.status, 400, "{query}");
        assert_eq!(refused.body["errors"][0]["field"], field);
    }
    let unknown = t.portal.get("/participants/nobody/ledger").await?;
    assert_eq!(unknown.status, 404);
    t.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rules_are_told_in_plain_terms() -> anyhow::Result<()> {
    let t = tenant("portal-rules").await?;
    let rules = t.portal.get("/rules").await?;
    assert_eq!(rules.status, 200, "{:?}", rules.body);
    let body = &rules.body;
    assert_eq!(
        (body["program"].as_str(), body["version"].as_u64()),
        (Some(PROGRAM), Some(1))
    );
    let activity = |event_type: &str| {
        body["activities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["event_type"] == event_type)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let login = activity("portal.login");
    assert_eq!(login["rules"][0]["id"], "login");
    assert_eq!(login["rules"][0]["text"], "5 points");
    assert_eq!(login["rules"][0]["active"], true);
    assert_eq!(
        activity("contract.started")["rules"][0]["text"],
        "200 points; cap: 20 times a month"
    );
    assert_eq!(body["pending"], "points of contract wait 30 days");
    assert_eq!(
        body["expiry"],
        "at the end of the 1st month after the month earned"
    );
    t.deployment.stop().await
}
