//! Quizzes, leads and spin to win on the local stack, through the portal function: grading
//! on the server, attempts limited under concurrency, the answer key kept back, the welcome
//! quiz offered after the first login, points awarded once by the rules; leads pending until
//! decided, approved once; spins debited once, never overdrawn, within the prize budget,
//! each with its audit record, and refused while the program has them off.

use crate::{PROGRAM, options, profile, setup_with};
use carrot::domain::ledger::EntryStatus;
use carrot::ports::StatsReader;
use carrot_local::deployment::{ApiClient, Deployment, Response};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The sample program: `product-knowledge` pays 20 per correct answer to new reps,
/// `welcome-quiz` 200 once for quiz `welcome`, `lead-tip` 75 per approved lead.
const SAMPLE: &str = include_str!("../../../events/admin/program.yaml");

struct Portal {
    deployment: Deployment,
    admin: ApiClient,
    crm: ApiClient,
    /// A portal backend's key: reads, activity, spending.
    portal: Arc<ApiClient>,
}

async fn portal(name: &str, program_yaml: &str) -> anyhow::Result<Portal> {
    let setup = setup_with(name, options(2, 0.0), program_yaml).await?;
    let portal = setup
        .deployment
        .create_key(
            "acme-portal",
            PROGRAM,
            &["participants:read", "events:write", "redemptions:write"],
        )
        .await?;
    Ok(Portal {
        deployment: setup.deployment,
        admin: setup.admin,
        crm: setup.crm,
        portal: Arc::new(portal),
    })
}

/// Five questions; the key is `a` for odd and `b` for even questions.
fn quiz(title: &str, attempts: u32, welcome: bool) -> Value {
    let questions: Vec<Value> = (1..=5)
        .map(|i| {
            json!({"id": format!("q{i}"), "text": format!("Question {i}?"),
                "options": [{"id": "a", "text": "Alpha"}, {"id": "b", "text": "Bravo"}, {"id": "c", "text": "Charlie"}],
                "answer": if i % 2 == 0 { "b" } else { "a" }})
        })
        .collect();
    json!({"title": title, "questions": questions, "attempts": attempts, "welcome": welcome})
}

/// Answers with the first `right` questions correct and the rest wrong.
fn answers(right: usize) -> Value {
    let answers: serde_json::Map<String, Value> = (1..=5)
        .map(|i| {
            let key = if i % 2 == 0 { "b" } else { "a" };
            (format!("q{i}"), json!(if i <= right { key } else { "c" }))
        })
        .collect();
    Value::Object(answers)
}

impl Portal {
    async fn enrol(&self, participant: &str) -> anyhow::Result<()> {
        let enrolled = self.admin.enrol(participant, &profile(participant)).await?;
        anyhow::ensure!(enrolled.status < 300, "not enrolled: {enrolled:?}");
        Ok(())
    }

    async fn settle(&self) -> anyhow::Result<()> {
        self.deployment
            .award
            .wait_idle(Duration::from_secs(60))
            .await
    }

    async fn balance(&self, participant: &str) -> anyhow::Result<i64> {
        self.deployment.balance(PROGRAM, participant).await
    }

    /// The participant's ledger records whose event id starts with `prefix`, and the check
    /// that the balance is the sum of the whole ledger.
    async fn records(&self, participant: &str, prefix: &str) -> anyhow::Result<Vec<(String, i64)>> {
        let ledger = self.deployment.store.ledger(PROGRAM, participant).await?;
        let sum: i64 = ledger.iter().map(|r| r.points).sum();
        assert_eq!(
            self.balance(participant).await?,
            sum,
            "balance = sum of the ledger"
        );
        Ok(ledger
            .into_iter()
            .filter(|r| r.event_id.starts_with(prefix))
            .map(|r| {
                assert_eq!(r.status, EntryStatus::Awarded, "{}", r.event_id);
                (r.event_id, r.points)
            })
            .collect())
    }

    /// What the calculator says `event` would earn the participant now.
    async fn quote(
        &self,
        participant: &str,
        event_type: &str,
        attributes: Value,
    ) -> anyhow::Result<i64> {
        let quoted = self
            .portal
            .calculate(
                &json!({"participant": participant, "type": event_type, "attributes": attributes}),
            )
            .await?;
        anyhow::ensure!(quoted.status == 200, "{quoted:?}");
        Ok(quoted.body["points"].as_i64().unwrap())
    }
}

fn offered<'a>(list: &'a Response, quiz: &str) -> &'a Value {
    list.body["quizzes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == quiz)
        .unwrap_or_else(|| panic!("{quiz} not listed: {}", list.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quizzes_are_graded_here_keep_their_key_and_award_once() -> anyhow::Result<()> {
    let p = portal("portal-quizzes", SAMPLE).await?;
    p.enrol("rep-1").await?;
    p.enrol("rep-2").await?;

    // Definitions: created, then replaced; an invalid one names its fields and stores nothing.
    let created = p
        .admin
        .send_json("PUT", "/quizzes/welcome", quiz("Welcome", 1, true))
        .await?;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        created.body["questions"][0]["answer"], "a",
        "the admin sees the key"
    );
    let replaced = p
        .admin
        .send_json("PUT", "/quizzes/welcome", quiz("Welcome aboard", 1, true))
        .await?;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let mut bad = quiz("Bad", 0, false);
    bad["questions"][1]["answer"] = json!("z");
    bad["questions"].as_array_mut().unwrap().truncate(4);
    let refused = p.admin.send_json("PUT", "/quizzes/mx-500", bad).await?;
    assert_eq!(refused.status, 400, "{refused:?}");
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["questions", "questions[1].answer", "attempts"],
        "{refused:?}"
    );
    let product = p
        .admin
        .send_json("PUT", "/quizzes/mx-500", quiz("MX-500", 2, false))
        .await?;
    assert_eq!(product.status, 201, "{product:?}");
    // A key without admin may not define quizzes.
    let forbidden = p
        .portal
        .send_json("PUT", "/quizzes/mx-500", quiz("MX-500", 2, false))
        .await?;
    assert_eq!(forbidden.status, 403);

    // The list: no answer key; what a perfect attempt earns is what the calculator says;
    // the welcome quiz is not offered before the first login.
    let list = p.portal.get("/participants/rep-1/quizzes").await?;
    assert_eq!(list.status, 200, "{list:?}");
    let text = list.body.to_string();
    assert!(
        !text.contains("\"answer\"") && !text.contains("\"key\""),
        "{text}"
    );
    let welcome = offered(&list, "welcome");
    assert_eq!(welcome["title"], "Welcome aboard");
    assert_eq!(
        (welcome["offered"].clone(), welcome["attempts_left"].clone()),
        (json!(false), json!(1))
    );
    let perfect = p
        .quote(
            "rep-1",
            "quiz.completed",
            json!({"quiz_id": "welcome", "questions": 5, "correct": 5}),
        )
        .await?;
    assert!(
        perfect > 200,
        "welcome-quiz and product-knowledge both pay: {perfect}"
    );
    assert_eq!(welcome["perfect_attempt_points"], perfect);
    assert_eq!(offered(&list, "mx-500")["attempts_left"], 2);
    assert_eq!(
        p.portal.get("/participants/nobody/quizzes").await?.status,
        404
    );

    // The first login: the welcome quiz is offered (and listed first), also to the rep's JWT.
    let login = json!({"events": [{"id": "login-1", "participant": "rep-1", "type": "portal.login",
        "occurred_at": jiff::Timestamp::now().to_string()}]});
    assert_eq!(p.crm.post_events(&login).await?.status, 202);
    p.settle().await?;
    let list = p.portal.get("/participants/rep-1/quizzes").await?;
    assert_eq!(list.body["quizzes"][0]["id"], "welcome");
    assert_eq!(list.body["quizzes"][0]["offered"], true);
    let own = p
        .deployment
        .as_rep(PROGRAM, "rep-1", "GET", "/v1/me/quizzes", None)
        .await?;
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(own.body["quizzes"][0]["offered"], true);
    assert_eq!(
        offered(
            &p.portal.get("/participants/rep-2/quizzes").await?,
            "welcome"
        )["offered"],
        false
    );

    // A half-filled form uses no attempt.
    let path = "/participants/rep-1/quizzes/welcome/attempts";
    let mut partial = answers(5);
    partial.as_object_mut().unwrap().remove("q5");
    partial["q9"] = json!("a");
    let refused = p
        .portal
        .send_json("POST", path, json!({"id": "w-1", "answers": partial}))
        .await?;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.body["errors"][0]["field"], "answers.q9");
    assert_eq!(refused.body["errors"][1]["field"], "answers.q5");

    // Graded here: 4 of 5. The only attempt is used, so the key is shown with it.
    let graded = p
        .portal
        .send_json("POST", path, json!({"id": "w-1", "answers": answers(4)}))
        .await?;
    assert_eq!(graded.status, 201, "{graded:?}");
    assert_eq!(
        (
            graded.body["correct"].clone(),
            graded.body["questions"].clone()
        ),
        (json!(4), json!(5))
    );
    assert_eq!(
        graded.body["marks"][4],
        json!({"question": "q5", "answer": "c", "correct": false})
    );
    assert_eq!(graded.body["attempts_left"], 0);
    assert_eq!(graded.body["key"]["q5"], "a");
    assert_eq!(graded.body["event_id"], "quiz:welcome:w-1");
    // The same attempt again is the same attempt; other answers under its id are refused.
    let again = p
        .portal
        .send_json("POST", path, json!({"id": "w-1", "answers": answers(4)}))
        .await?;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, graded.body);
    let other = p
        .portal
        .send_json("POST", path, json!({"id": "w-1", "answers": answers(5)}))
        .await?;
    assert_eq!(other.status, 422, "{other:?}");
    // The same problem types as orders and transfers use for the same refusals.
    assert_eq!(
        other.body["type"],
        "https://carrot.dev/problems/idempotency-key-reused"
    );
    let extra = p
        .portal
        .send_json("POST", path, json!({"id": "w-2", "answers": answers(5)}))
        .await?;
    assert_eq!(extra.status, 409, "{extra:?}");
    assert_eq!(
        extra.body["type"],
        "https://carrot.dev/problems/not-allowed"
    );

    // A retake-able quiz keeps its key while attempts are left.
    let path = "/participants/rep-1/quizzes/mx-500/attempts";
    let first = p
        .portal
        .send_json("POST", path, json!({"id": "m-1", "answers": answers(2)}))
        .await?;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["attempts_left"], 1);
    assert!(first.body.get("key").is_none(), "{first:?}");
    let second = p
        .portal
        .send_json("POST", path, json!({"id": "m-2", "answers": answers(5)}))
        .await?;
    assert_eq!(
        (second.status, second.body["attempts_left"].clone()),
        (201, json!(0))
    );
    assert_eq!(second.body["key"]["q2"], "b");

    // The rules awarded each attempt once; the list shows the attempts and the best score.
    p.settle().await?;
    let records = p.records("rep-1", "quiz:").await?;
    let ids: HashSet<&str> = records.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        HashSet::from(["quiz:welcome:w-1", "quiz:mx-500:m-1", "quiz:mx-500:m-2"])
    );
    let welcome_points = records
        .iter()
        .find(|(id, _)| id == "quiz:welcome:w-1")
        .unwrap()
        .1;
    assert!(
        welcome_points >= 200 + 4 * 20,
        "welcome-quiz and 4 correct: {welcome_points}"
    );
    let list = p.portal.get("/participants/rep-1/quizzes").await?;
    let welcome = offered(&list, "welcome");
    assert_eq!(welcome["offered"], false, "taken");
    assert_eq!(welcome["best"], json!({"correct": 4, "questions": 5}));
    assert_eq!(
        offered(&list, "mx-500")["best"],
        json!({"correct": 5, "questions": 5})
    );
    assert_eq!(offered(&list, "mx-500")["attempts_used"], 2);
    p.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_attempts_never_exceed_the_attempts_allowed() -> anyhow::Result<()> {
    let p = portal("portal-quiz-race", SAMPLE).await?;
    p.enrol("rep-1").await?;
    let created = p
        .admin
        .send_json("PUT", "/quizzes/mx-500", quiz("MX-500", 3, false))
        .await?;
    assert_eq!(created.status, 201);
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = p.portal.clone();
        tasks.push(tokio::spawn(async move {
            // Every attempt twice: a retry racing its original is still one attempt.
            let body = json!({"id": format!("race-{}", i / 2), "answers": answers(3)});
            client
                .send_json("POST", "/participants/rep-1/quizzes/mx-500/attempts", body)
                .await
        }));
    }
    let mut made = HashSet::new();
    let mut statuses = Vec::new();
    for task in tasks {
        let response = task.await??;
        statuses.push(response.status);
        match response.status {
            200 | 201 => {
                made.insert(response.body["number"].as_u64().unwrap());
            }
            409 => {}
            other => panic!("unexpected {other}: {response:?}"),
        }
    }
    assert_eq!(made, HashSet::from([1, 2, 3]), "{statuses:?}");
    p.settle().await?;
    assert_eq!(p.records("rep-1", "quiz:mx-500:").await?.len(), 3);
    p.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lead_is_pending_until_approved_once_or_rejected() -> anyhow::Result<()> {
    let p = portal("portal-leads", SAMPLE).await?;
    for rep in ["rep-1", "rep-2"] {
        p.enrol(rep).await?;
    }
    let tip = |id: &str, company: &str| json!({"id": id, "company": company, "contact": "Eva Ek, +46701234567", "note": "Looking for 20 forklifts"});

    // Tipped: pending, with what approval would earn.
    let path = "/participants/rep-1/leads";
    let tipped = p
        .portal
        .send_json("POST", path, tip("L-1", "Nordic Forklift AB"))
        .await?;
    assert_eq!(tipped.status, 201, "{tipped:?}");
    assert_eq!(tipped.body["status"], "pending");
    let quote = p
        .quote(
            "rep-1",
            "lead.submitted",
            json!({"lead_id": "L-1", "company": "Nordic Forklift AB"}),
        )
        .await?;
    assert!(quote >= 75);
    assert_eq!(tipped.body["points_on_approval"], quote);
    // The same tip again is the same lead; its id with another tip is refused; the same
    // company under another id (other case and spacing) is a duplicate.
    let again = p
        .portal
        .send_json("POST", path, tip("L-1", "Nordic Forklift AB"))
        .await?;
    assert_eq!(again.status, 200);
    assert_eq!(
        p.portal
            .send_json("POST", path, tip("L-1", "Other AB"))
            .await?
            .status,
        422
    );
    let duplicate = p
        .portal
        .send_json("POST", path, tip("L-9", "nordic  forklift ab."))
        .await?;
    assert_eq!(duplicate.status, 409, "{duplicate:?}");
    let invalid = p
        .portal
        .send_json(
            "POST",
            path,
            json!({"id": "L 2", "company": " ", "colour": 1}),
        )
        .await?;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.body["errors"].as_array().unwrap().len(),
        3,
        "{invalid:?}"
    );
    assert_eq!(
        p.portal
            .send_json("POST", "/participants/nobody/leads", tip("L-1", "X"))
            .await?
            .status,
        404
    );
    for (rep, id, company) in [
        ("rep-1", "L-2", "Baltic Lift"),
        ("rep-2", "L-3", "Nordic Forklift AB"),
        ("rep-2", "L-4", "Lift & Co"),
    ] {
        let r = p
            .portal
            .send_json(
                "POST",
                &format!("/participants/{rep}/leads"),
                tip(id, company),
            )
            .await?;
        assert_eq!(r.status, 201, "{r:?}");
    }

    // The administrators' queue, two at a time: every pending lead exactly once, oldest first.
    let mut seen = Vec::new();
    let mut query = "/leads?status=pending&limit=2".to_owned();
    loop {
        let page = p.admin.get(&query).await?;
        assert_eq!(page.status, 200, "{page:?}");
        seen.extend(
            page.body["leads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_owned()),
        );
        match page.body["next"].as_str() {
            Some(next) => query = format!("/leads?status=pending&limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["L-1", "L-2", "L-3", "L-4"]);
    assert_eq!(p.admin.get("/leads?status=open").await?.status, 400);
    assert_eq!(p.admin.get("/leads?after=%21%21").await?.status, 400);
    assert_eq!(p.portal.get("/leads").await?.status, 403, "admins only");

    // Approved once: a second approval or a rejection afterwards is a 409.
    let approve = "/participants/rep-1/leads/L-1/approve";
    let approved = p.admin.send_json("POST", approve, json!({})).await?;
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(approved.body["status"], "approved");
    assert_eq!(approved.body["decided_by"], "acme-admin");
    assert_eq!(
        p.admin.send_json("POST", approve, json!({})).await?.status,
        409
    );
    let late = p
        .admin
        .send_json(
            "POST",
            "/participants/rep-1/leads/L-1/reject",
            json!({"reason": "late"}),
        )
        .await?;
    assert_eq!(late.status, 409);
    assert_eq!(
        p.admin
            .send_json("POST", "/participants/rep-1/leads/L-404/approve", json!({}))
            .await?
            .status,
        404
    );
    assert_eq!(
        p.portal.send_json("POST", approve, json!({})).await?.status,
        403
    );

    // Rejected with a reason (required); the company may then be tipped again.
    let reject = "/participants/rep-1/leads/L-2/reject";
    assert_eq!(
        p.admin.send_json("POST", reject, json!({})).await?.status,
        400
    );
    let rejected = p
        .admin
        .send_json("POST", reject, json!({"reason": "Already a partner"}))
        .await?;
    assert_eq!(
        (rejected.status, rejected.body["status"].clone()),
        (200, json!("rejected"))
    );
    assert_eq!(
        p.admin
            .send_json("POST", reject, json!({"reason": "again"}))
            .await?
            .status,
        409
    );
    assert_eq!(
        p.portal
            .send_json("POST", path, tip("L-5", "Baltic Lift"))
            .await?
            .status,
        201
    );

    // The lists follow the decisions.
    let own = p.portal.get(path).await?;
    let statuses: Vec<(String, String)> = own.body["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().into(),
                l["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("L-5".into(), "pending".into()),
            ("L-2".into(), "rejected".into()),
            ("L-1".into(), "approved".into())
        ]
    );
    let approved_list = p.admin.get("/leads?status=approved").await?;
    assert_eq!(approved_list.body["leads"][0]["id"], "L-1");
    let pending = p.admin.get("/leads").await?;
    let ids: Vec<&str> = pending.body["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["L-3", "L-4", "L-5"]);

    // The approved lead earned its points once; the rejected and pending ones nothing.
    p.settle().await?;
    assert_eq!(
        p.records("rep-1", "lead:").await?,
        [("lead:rep-1:L-1".to_owned(), quote)]
    );
    assert!(p.records("rep-2", "lead:").await?.is_empty());
    p.deployment.stop().await
}

/// The sample program with spins on: 10 points a spin, a certain 50-point prize, at most
/// 200 prize points a month (four prizes), 12 spins a day per participant.
fn with_spins() -> String {
    format!(
        "{SAMPLE}\nspin:\n  enabled: true\n  cost: 10\n  prizes:\n    - {{ id: fifty, name: 50 bonus points, points: 50, odds: 1 }}\n  budget: {{ per: month, points: 200 }}\n  limit: {{ per: day, spins: 12 }}\n"
    )
}

impl Portal {
    /// Enrols the participant with an opening balance credited through the award path.
    async fn enrol_with(&self, participant: &str, points: i64) -> anyhow::Result<()> {
        self.enrol(participant).await?;
        let path = format!("/participants/{participant}/adjustments");
        let body = json!({"id": "opening", "points": points, "reason": "opening balance"});
        let adjusted = self.admin.send_json("POST", &path, body).await?;
        anyhow::ensure!(adjusted.status == 202, "{adjusted:?}");
        Ok(())
    }

    /// Spins `n` times at once with ids `{prefix}-{i}`: the responses.
    async fn spin_all(
        &self,
        participant: &str,
        prefix: &str,
        n: usize,
    ) -> anyhow::Result<Vec<Response>> {
        let mut tasks = Vec::new();
        for i in 0..n {
            let client = self.portal.clone();
            let path = format!("/participants/{participant}/spins");
            let body = json!({"id": format!("{prefix}-{i}")});
            tasks.push(tokio::spawn(async move {
                client.send_json("POST", &path, body).await
            }));
        }
        let mut responses = Vec::new();
        for task in tasks {
            responses.push(task.await??);
        }
        Ok(responses)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spins_are_refused_while_the_program_has_them_off() -> anyhow::Result<()> {
    let p = portal("portal-spins-off", SAMPLE).await?;
    p.enrol_with("rep-1", 100).await?;
    p.settle().await?;
    let refused = p
        .portal
        .send_json("POST", "/participants/rep-1/spins", json!({"id": "s-1"}))
        .await?;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(refused.body["detail"].as_str().unwrap().contains("off"));
    assert_eq!(p.balance("rep-1").await?, 100);
    assert!(p.records("rep-1", "spin:").await?.is_empty());
    assert_eq!(
        p.portal.get("/participants/rep-1/spins").await?.body["spins"],
        json!([])
    );
    p.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spins_debit_once_never_overdraw_stay_within_budget_and_limit_and_are_audited()
-> anyhow::Result<()> {
    let p = portal("portal-spins", &with_spins()).await?;
    p.enrol_with("rep-1", 1000).await?;
    p.enrol_with("rep-2", 1000).await?;
    p.enrol_with("rep-3", 55).await?;
    p.settle().await?;

    // One spin: debited, drawn, credited in one go, and its audit record.
    let path = "/participants/rep-1/spins";
    let first = p
        .portal
        .send_json("POST", path, json!({"id": "s-first"}))
        .await?;
    assert_eq!(first.status, 201, "{first:?}");
    let spin = &first.body;
    assert_eq!(
        (spin["outcome"].clone(), spin["prize"]["id"].clone()),
        (json!("won"), json!("fifty"))
    );
    assert_eq!(
        (spin["cost"].clone(), spin["config_version"].clone()),
        (json!(10), json!(1))
    );
    assert!(spin["random"].as_u64().unwrap() < spin["scale"].as_u64().unwrap());
    assert_eq!(
        spin["odds"],
        json!([{"prize": "fifty", "odds": "1", "from": 0, "to": 1_000_000_000_000u64}])
    );
    assert_eq!(spin["budget_left"], json!({"points": 200, "prizes": null}));
    assert_eq!(p.balance("rep-1").await?, 1000 - 10 + 50);
    let mut records = p.records("rep-1", "spin:").await?;
    records.sort();
    assert_eq!(
        records,
        [
            ("spin:s-first".to_owned(), -10),
            ("spin:s-first:prize".to_owned(), 50)
        ]
    );
    // The same id is the same spin, debited once.
    let again = p
        .portal
        .send_json("POST", path, json!({"id": "s-first"}))
        .await?;
    assert_eq!((again.status, &again.body), (200, &first.body));
    assert_eq!(p.balance("rep-1").await?, 1040);
    let invalid = p
        .portal
        .send_json("POST", path, json!({"id": "a b", "bet": 5}))
        .await?;
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.body["errors"].as_array().unwrap().len(),
        2,
        "{invalid:?}"
    );
    assert_eq!(
        p.portal
            .send_json("POST", "/participants/nobody/spins", json!({"id": "x"}))
            .await?
            .status,
        404
    );
    assert_eq!(
        p.admin
            .send_json("POST", path, json!({"id": "s-admin"}))
            .await?
            .status,
        403
    );

    // Two reps spin at once, 14 and 15 more times: each gets the day's 12 and no more; the
    // month's budget pays four prizes in all, then spins say the budget is spent.
    let (one, two) = tokio::join!(p.spin_all("rep-1", "a", 14), p.spin_all("rep-2", "b", 15));
    let mut won = 1;
    for (rep, responses, made) in [("rep-1", one?, 11), ("rep-2", two?, 12)] {
        let ok: Vec<&Response> = responses.iter().filter(|r| r.status == 201).collect();
        let refused = responses.iter().filter(|r| r.status == 409).count();
        assert_eq!(
            (ok.len(), refused),
            (made, responses.len() - made),
            "{rep}: {responses:?}"
        );
        won += ok.iter().filter(|r| r.body["outcome"] == "won").count();
        for r in &ok {
            let outcome = r.body["outcome"].as_str().unwrap();
            assert!(
                outcome == "won" || (outcome == "budget_spent" && r.body["drawn"] == "fifty"),
                "{r:?}"
            );
        }
    }
    assert_eq!(won, 4, "200 budget points pay four 50-point prizes");
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let month = jiff::Timestamp::now()
        .to_zoned(zone)
        .strftime("%Y-%m")
        .to_string();
    let dynamodb = carrot_local::stack::LocalStack::start_or_reuse()
        .await?
        .dynamodb_client();
    let budget = dynamodb
        .get_item()
        .table_name(p.deployment.resources.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("SPINBUDGET#{PROGRAM}#{month}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("BUDGET".into()),
        )
        .consistent_read(true)
        .send()
        .await?;
    let budget = budget.item().expect("the budget counter");
    assert_eq!(budget["points"].as_n().unwrap(), "200");
    let mut prize_points = 0;
    for rep in ["rep-1", "rep-2"] {
        let records = p.records(rep, "spin:").await?;
        prize_points += records
            .iter()
            .filter(|(id, _)| id.ends_with(":prize"))
            .map(|(_, points)| points)
            .sum::<i64>();
        assert_eq!(
            records
                .iter()
                .filter(|(id, _)| !id.ends_with(":prize"))
                .count(),
            12
        );
    }
    assert_eq!(prize_points, 200);

    // 55 points buy five spins, however many are tried at once; the budget is spent, so no
    // prize tops the balance up.
    let responses = p.spin_all("rep-3", "c", 12).await?;
    let ok = responses.iter().filter(|r| r.status == 201).count();
    assert_eq!(ok, 5, "{responses:?}");
    let short = responses.iter().find(|r| r.status == 409).unwrap();
    assert_eq!(
        short.body["detail"],
        "not enough points: 5 available, 10 needed"
    );
    assert_eq!(p.balance("rep-3").await?, 5);

    // The list: newest first, each spin with its audit record.
    let list = p.portal.get("/participants/rep-1/spins").await?;
    let spins = list.body["spins"].as_array().unwrap();
    assert_eq!(spins.len(), 12);
    assert_eq!(spins.last().unwrap()["id"], "s-first");
    assert!(
        spins
            .iter()
            .all(|s| s["odds"].is_array() && s["random"].is_u64() && s["budget_period"] == month)
    );
    p.deployment.stop().await
}

/// The store's conditions on their own: an attempt counter moves only from what was read and
/// an attempt id is taken once; a company is tipped once while open and a lead decided once;
/// a spin is refused whole when the budget has no room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_writes_only_from_the_state_it_was_decided_on() -> anyhow::Result<()> {
    use carrot::domain::quiz::{Attempt, Quiz};
    use carrot::ports::PortError;
    use carrot::service::lead::{Lead, LeadStatus, LeadStore};
    use carrot::service::quiz::QuizStore;
    use carrot::service::spin::SpinStore;

    let p = portal("portal-store", &with_spins()).await?;
    p.enrol_with("rep-1", 100).await?;
    p.settle().await?;
    let store = &p.deployment.store;

    let quiz = Quiz::from_json("mx-500", &quiz("MX-500", 2, false)).unwrap();
    assert!(
        store
            .put_quiz(PROGRAM, &quiz, "test", jiff::Timestamp::now())
            .await?
    );
    assert!(
        !store
            .put_quiz(PROGRAM, &quiz, "test", jiff::Timestamp::now())
            .await?
    );
    let attempt = |id: &str, number: u32| Attempt {
        quiz: "mx-500".into(),
        id: id.into(),
        number,
        answers: answers(5),
        grading: quiz.grade(&answers(5)).unwrap(),
        event_id: format!("quiz:mx-500:{id}"),
        at: jiff::Timestamp::now().to_string(),
    };
    store
        .record_attempt(PROGRAM, "rep-1", &attempt("a", 1))
        .await?;
    for (id, number) in [("b", 1), ("b", 3), ("a", 2)] {
        let refused = store
            .record_attempt(PROGRAM, "rep-1", &attempt(id, number))
            .await;
        assert_eq!(refused, Err(PortError::ConditionFailed), "{id} as {number}");
    }
    store
        .record_attempt(PROGRAM, "rep-1", &attempt("b", 2))
        .await?;
    let made = store.attempts(PROGRAM, "rep-1", Some("mx-500")).await?;
    assert_eq!(
        made.iter()
            .map(|a| (a.id.as_str(), a.number))
            .collect::<Vec<_>>(),
        [("a", 1), ("b", 2)]
    );

    let lead = |id: &str, company: &str| Lead {
        id: id.into(),
        participant: "rep-1".into(),
        company: company.into(),
        contact: None,
        note: None,
        status: LeadStatus::Pending,
        submitted_at: jiff::Timestamp::now().to_string(),
        decided_at: None,
        decided_by: None,
        reason: None,
        event_id: format!("lead:rep-1:{id}"),
        queued_at: None,
    };
    store.submit(PROGRAM, &lead("L-1", "Baltic Lift")).await?;
    assert_eq!(
        store.submit(PROGRAM, &lead("L-2", "BALTIC lift!")).await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(
        store.submit(PROGRAM, &lead("L-1", "Other")).await,
        Err(PortError::ConditionFailed)
    );
    let rejected = Lead {
        status: LeadStatus::Rejected,
        reason: Some("no".into()),
        ..lead("L-1", "Baltic Lift")
    };
    store.decide(PROGRAM, &rejected).await?;
    let approved = Lead {
        status: LeadStatus::Approved,
        ..lead("L-1", "Baltic Lift")
    };
    assert_eq!(
        store.decide(PROGRAM, &approved).await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(
        store.lead(PROGRAM, "rep-1", "L-1").await?.unwrap().status,
        LeadStatus::Rejected
    );
    store.submit(PROGRAM, &lead("L-2", "BALTIC lift!")).await?;

    // A spin decided on an empty budget, written after the budget filled up, writes nothing.
    let response = p
        .portal
        .send_json("POST", "/participants/rep-1/spins", json!({"id": "s-1"}))
        .await?;
    assert_eq!(response.status, 201, "{response:?}");
    let before = p.balance("rep-1").await?;
    let (used, spins) = store
        .usage(
            PROGRAM,
            "rep-1",
            response.body["budget_period"].as_str().unwrap(),
            None,
        )
        .await?;
    assert_eq!((used.points, used.prizes, spins), (50, 1, 0));
    let spin: carrot::domain::spin::Spin = serde_json::from_value(response.body.clone())?;
    assert_eq!(
        store.spin(PROGRAM, "rep-1", "s-1").await?,
        Some(spin.clone())
    );
    assert_eq!(before, 100 - 10 + 50);
    let now = jiff::Timestamp::now();
    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let cost = carrot::domain::wallet::Entry {
        event_id: "spin:s-2".into(),
        participant: "rep-1",
        points: -10,
        event_type: "spin.played",
        lots: Vec::new(),
        attributes: serde_json::Map::new(),
        note: None,
    }
    .record(now, &zone);
    let late = carrot::service::spin::SpinWrite {
        spin: carrot::domain::spin::Spin {
            id: "s-2".into(),
            ..spin.clone()
        },
        cost,
        debit: carrot::domain::wallet::Debit {
            points: 10,
            floor: 10,
            lots: Vec::new(),
        },
        prize: None,
        // Decided when the budget had 40 points used at most: it has 50 now.
        budget: Some(carrot::service::spin::BudgetWrite {
            period: spin.budget_period.clone(),
            points: 50,
            points_room: Some(40),
            prizes_room: None,
        }),
        limit: None,
        announcement: None,
    };
    assert_eq!(
        store.record_spin(PROGRAM, &late).await,
        Err(PortError::ConditionFailed)
    );
    assert_eq!(store.spin(PROGRAM, "rep-1", "s-2").await?, None);
    assert_eq!(p.balance("rep-1").await?, before, "nothing debited");
    assert!(p.records("rep-1", "spin:s-2").await?.is_empty());
    p.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_physical_prize_goes_out_for_fulfilment_once() -> anyhow::Result<()> {
    let stack = carrot_local::stack::LocalStack::start_or_reuse().await?;
    let program = format!(
        "{SAMPLE}\nspin:\n  enabled: true\n  cost: 25\n  prizes:\n    - {{ id: headphones, name: Headphones, item: HP-200, odds: \"1/1\" }}\n  budget: {{ per: year, prizes: 1 }}\n"
    );
    let p = portal("portal-spin-item", &program).await?;
    let fulfilment = stack
        .subscribe_queue(&p.deployment.resources, "OutboundTopic")
        .await?;
    p.enrol_with("rep-1", 100).await?;
    p.settle().await?;
    let path = "/participants/rep-1/spins";
    let won = p
        .portal
        .send_json("POST", path, json!({"id": "s-1"}))
        .await?;
    assert_eq!(won.status, 201, "{won:?}");
    assert_eq!(won.body["prize"]["item"], "HP-200");
    assert_eq!(
        p.portal
            .send_json("POST", path, json!({"id": "s-1"}))
            .await?
            .status,
        200
    );
    let spent = p
        .portal
        .send_json("POST", path, json!({"id": "s-2"}))
        .await?;
    assert_eq!(
        (
            spent.body["outcome"].clone(),
            spent.body["budget_left"]["prizes"].clone()
        ),
        (json!("budget_spent"), json!(0))
    );
    // Points only moved for the two costs: an item is not credited.
    assert_eq!(p.balance("rep-1").await?, 100 - 2 * 25);
    let events: Vec<Value> = p
        .deployment
        .drain_queue(&fulfilment)
        .await?
        .iter()
        .map(|body| serde_json::from_str(body))
        .collect::<Result<_, _>>()?;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["id"], "acme:rep-1:s-1:spin.won");
    assert_eq!(
        (events[0]["type"].clone(), events[0]["item"].clone()),
        (json!("spin.won"), json!("HP-200"))
    );
    p.deployment.stop().await
}
