//! The demo's portal step: what a dealer portal does with the participant API. A rep reads
//! their statement and redeems (an order retried with its idempotency key is one order; the
//! fulfilment event goes out), a new rep takes the welcome quiz their first login unlocked,
//! a lead is tipped and approved once, a partner account shares points with its team, and
//! the same rep signs in to a portal that calls with their JWT.

use crate::{PROGRAM, get_ok};
use anyhow::Context;
use carrot_local::deployment::{ApiClient, Deployment};
use carrot_local::stack::LocalStack;
use carrot_local::workload::{Behaviour, Rep};
use serde_json::{Value, json};
use std::time::Duration;

pub struct PortalStep<'a> {
    pub stack: &'a LocalStack,
    pub deployment: &'a Deployment,
    pub admin: &'a ApiClient,
    pub reps: &'a [Rep],
    /// The reps who enrolled after the months (none has taken the welcome quiz).
    pub late: &'a [Rep],
}

/// A request that must succeed with `status`.
async fn expect(
    client: &ApiClient,
    method: &str,
    path: &str,
    body: Value,
    status: u16,
) -> anyhow::Result<Value> {
    let r = client.send_json(method, path, body).await?;
    anyhow::ensure!(
        r.status == status,
        "{method} {path}: {} {}",
        r.status,
        r.body
    );
    Ok(r.body)
}

/// The quiz a new rep is offered once they have logged in: five questions on the product.
fn welcome_quiz() -> Value {
    const CHOICES: [&str; 3] = ["a", "b", "c"];
    let question = |id: &str, text: &str, options: [&str; 3], answer: usize| {
        let options: Vec<Value> = options
            .iter()
            .zip(CHOICES)
            .map(|(text, id)| json!({"id": id, "text": text}))
            .collect();
        let answer = CHOICES[answer];
        json!({"id": id, "text": text, "options": options, "answer": answer})
    };
    json!({
        "title": "Welcome to ACME Channel Stars",
        "description": "Five questions on how the program pays: 20 points a correct answer, 200 for taking it",
        "welcome": true,
        "attempts": 1,
        "questions": [
            question("contracts", "What earns points on a financing contract?", ["Only the signature", "The contract and its financed volume", "Nothing until it is paid"], 1),
            question("pending", "When do contract points become spendable?", ["At once", "After the weekly deposit", "At year end"], 1),
            question("calculator", "Where do you see what a contract will earn before it closes?", ["The points calculator", "The monthly report", "Nowhere"], 0),
            question("drawing", "What enters you in the monthly drawing?", ["Logging in on enough days", "Selling the most", "Asking your manager"], 0),
            question("leads", "What happens to a lead you tip?", ["Points at once", "Points when an administrator approves it", "Nothing"], 1),
        ],
    })
}

impl PortalStep<'_> {
    pub async fn run(&self, step: usize) -> anyhow::Result<()> {
        println!(
            "\n{step}. The portal: statements, the reward shop, a quiz, a lead, a partner account, and a rep signed in with a JWT"
        );
        let started = std::time::Instant::now();
        let portal = self
            .deployment
            .create_key(
                "acme-portal-backend",
                PROGRAM,
                &["participants:read", "events:write", "redemptions:write"],
            )
            .await?;
        let outbound = self
            .stack
            .subscribe_queue(&self.deployment.resources, "OutboundTopic")
            .await?;

        // The shop, as the program's administrator fills it.
        for (item, body) in [
            (
                "gift-card-500",
                json!({"title": "Gift card, 500 SEK", "points": 500, "fulfilment": "gift_card"}),
            ),
            (
                "rain-jacket",
                json!({"title": "ACME rain jacket", "points": 1_500, "stock": 5, "roles": ["sales_rep"], "fulfilment": "physical"}),
            ),
            (
                "trip-stockholm",
                json!({"title": "Top-seller weekend in Stockholm", "points": 40_000, "stock": 2, "fulfilment": "experience"}),
            ),
        ] {
            expect(self.admin, "PUT", &format!("/catalog/{item}"), body, 200).await?;
        }

        // The superstar with the most available points reads their statement.
        let mut best: Option<(i64, &Rep, Value)> = None;
        for rep in self
            .reps
            .iter()
            .filter(|r| r.behaviour == Behaviour::Superstar)
        {
            let statement = get_ok(&portal, &format!("/participants/{}", rep.id)).await?;
            let available = statement["wallet"]["available"].as_i64().unwrap_or(0);
            if best.as_ref().is_none_or(|(most, _, _)| available > *most) {
                best = Some((available, rep, statement));
            }
        }
        let (available, rep, statement) = best.context("the roster has superstars")?;
        let name = rep.profile["name"].as_str().unwrap_or(&rep.id);
        let wallet = &statement["wallet"];
        println!(
            "   GET …/participants/{} ({name}, {}): balance {}, available {available}, pending {} (deposits {}), expiring within 90 days {}; this quarter ({}) {} points on {} login days",
            rep.id,
            statement["segment"].as_str().unwrap_or("unsegmented"),
            wallet["balance"],
            wallet["pending"],
            lots(&wallet["deposits"]),
            wallet["expiring_soon"],
            statement["quarter"]["period"].as_str().unwrap_or_default(),
            statement["quarter"]["points"],
            statement["quarter"]["login_days"],
        );
        for drawing in statement["drawings"].as_array().into_iter().flatten() {
            println!(
                "     drawing {:?}: {} of {} {}, {}",
                drawing["title"].as_str().unwrap_or_default(),
                drawing["have"],
                drawing["need"],
                drawing["metric"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('_', " "),
                if drawing["entered"] == true {
                    "entered".to_owned()
                } else {
                    format!("{} to go", drawing["missing"])
                }
            );
        }
        let catalog = get_ok(&portal, &format!("/catalog?participant={}", rep.id)).await?;
        let offered: Vec<String> = catalog["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                format!(
                    "{} {} points{}",
                    i["item"].as_str().unwrap_or_default(),
                    i["points"],
                    if i["affordable"] == false {
                        " (not yet)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        println!(
            "   GET …/catalog?participant={}: {}",
            rep.id,
            offered.join(", ")
        );

        // An order, sent twice as a portal retrying after a timeout: one order, one debit.
        let order = json!({"idempotency_key": format!("{}-checkout-1", rep.id), "item": "gift-card-500", "quantity": 1});
        let path = format!("/participants/{}/orders", rep.id);
        let first = portal.send_json("POST", &path, order.clone()).await?;
        let retry = portal.send_json("POST", &path, order).await?;
        anyhow::ensure!(
            first.status == 201 && retry.status == 200,
            "orders: {first:?} {retry:?}"
        );
        anyhow::ensure!(
            first.body["order"] == retry.body["order"],
            "the retry is the same order"
        );
        let after = get_ok(&portal, &format!("/participants/{}", rep.id)).await?;
        println!(
            "   POST …/orders (gift-card-500), sent twice with one idempotency key: {} then {}, order {}; available {available} → {}",
            first.status,
            retry.status,
            first.body["order"].as_str().unwrap_or_default(),
            after["wallet"]["available"]
        );
        let trip = portal.send_json("POST", &path, json!({"idempotency_key": format!("{}-checkout-2", rep.id), "item": "trip-stockholm", "quantity": 1})).await?;
        println!(
            "   The weekend trip: {} {}: {}",
            trip.status,
            trip.body["title"].as_str().unwrap_or_default(),
            trip.body["detail"].as_str().unwrap_or_default()
        );
        let order_id = first.body["order"].as_str().context("an order id")?;
        let shipped = expect(
            self.admin,
            "PUT",
            &format!("/participants/{}/orders/{order_id}/fulfilment", rep.id),
            json!({"status": "delivered", "tracking": "GC-7731-5520"}),
            200,
        )
        .await?;
        let events: Vec<Value> = self
            .deployment
            .drain_queue(&outbound)
            .await?
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect();
        println!(
            "   Fulfilment: the outbound topic carried {} (the gift-card supplier subscribes); the administrator marks it {}",
            events
                .iter()
                .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
            shipped["status"].as_str().unwrap_or_default()
        );

        // A new rep's first login unlocked the welcome quiz.
        expect(self.admin, "PUT", "/quizzes/welcome", welcome_quiz(), 201).await?;
        let mut newcomer = None;
        for late in self.late {
            let statement = get_ok(&portal, &format!("/participants/{}", late.id)).await?;
            let quizzes = get_ok(&portal, &format!("/participants/{}/quizzes", late.id)).await?;
            let offered = quizzes["quizzes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|q| q["id"] == "welcome" && q["offered"] == true)
                .cloned();
            if let Some(quiz) = offered {
                newcomer = Some((late, statement, quiz));
                break;
            }
        }
        let (late, before, quiz) = newcomer.context("a late joiner who has logged in")?;
        let answers = json!({"contracts": "b", "pending": "b", "calculator": "a", "drawing": "a", "leads": "a"});
        let graded = expect(
            &portal,
            "POST",
            &format!("/participants/{}/quizzes/welcome/attempts", late.id),
            json!({"id": "welcome-1", "answers": answers}),
            201,
        )
        .await?;
        self.deployment
            .award
            .wait_idle(Duration::from_secs(120))
            .await?;
        let after = get_ok(&portal, &format!("/participants/{}", late.id)).await?;
        println!(
            "   {} ({}) logged in: GET …/quizzes offers the welcome quiz (a perfect attempt earns {}); graded on the server: {} of {} correct; awarded by the rules: balance {} → {}",
            late.profile["name"].as_str().unwrap_or(&late.id),
            late.id,
            quiz["perfect_attempt_points"],
            graded["correct"],
            graded["questions"],
            before["wallet"]["balance"],
            after["wallet"]["balance"]
        );

        // A lead tipped, approved once (a second approval is refused).
        let lead_path = format!("/participants/{}/leads", rep.id);
        let tipped = expect(&portal, "POST", &lead_path, json!({"id": "LEAD-2041", "company": "Oslo Truck & Lift AS", "note": "Fleet of 40, renewing next spring"}), 201).await?;
        let pending = get_ok(self.admin, "/leads?status=pending").await?;
        let approve = format!("{lead_path}/LEAD-2041/approve");
        let approved = self.admin.send_json("POST", &approve, json!({})).await?;
        let again = self.admin.send_json("POST", &approve, json!({})).await?;
        anyhow::ensure!(
            approved.status == 200 && again.status == 409,
            "{approved:?} {again:?}"
        );
        self.deployment
            .award
            .wait_idle(Duration::from_secs(120))
            .await?;
        let ledger = get_ok(&portal, &format!("/participants/{}/ledger?limit=3", rep.id)).await?;
        let lead_entry = ledger["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["event_type"] == "lead.submitted")
            .context("the approved lead is in the ledger")?;
        println!(
            "   POST …/leads (Oslo Truck & Lift AS): pending, {} points on approval; {} pending in the administrators' queue; approved (200), approved again ({}): the ledger credits {} points once",
            tipped["points_on_approval"],
            pending["leads"].as_array().map_or(0, Vec::len),
            again.status,
            lead_entry["points"]
        );

        // The partner level: the dealership's own account shares points with its team.
        let dealer = &rep.distributor;
        let hq = format!("{dealer}-hq");
        let row = json!({"participant": hq, "name": format!("{dealer} HQ"), "email": format!("points@{dealer}.example"),
            "locale": "en-GB", "time_zone": "Europe/Stockholm", "role": "partner_admin", "distributor": dealer,
            "location": rep.location, "account": "partner"});
        let imported = self
            .admin
            .send(
                "POST",
                "/imports",
                row.to_string().into_bytes(),
                "application/x-ndjson",
            )
            .await?;
        anyhow::ensure!(imported.status == 200, "{imported:?}");
        let credit = self.admin.adjust(&hq, &json!({"id": format!("{hq}-q-bonus"), "points": 3_000, "reason": "Partner volume bonus"})).await?;
        anyhow::ensure!(credit.status == 202, "{credit:?}");
        self.deployment
            .award
            .wait_idle(Duration::from_secs(120))
            .await?;
        let transfer = json!({"id": format!("{hq}-share-1"), "to": rep.id, "points": 1_000, "note": "Top seller of the month"});
        let moved = expect(
            &portal,
            "POST",
            &format!("/participants/{hq}/transfers"),
            transfer.clone(),
            201,
        )
        .await?;
        expect(
            &portal,
            "POST",
            &format!("/participants/{hq}/transfers"),
            transfer,
            200,
        )
        .await?;
        let partner = get_ok(&portal, &format!("/participants/{hq}")).await?;
        println!(
            "   A partner account ({hq}, imported with account = partner) got 3,000 points and shared {} with {} (sent twice, moved once): the partner has {} left",
            moved["points"], rep.id, partner["wallet"]["available"]
        );

        // The same rep in a portal that calls Carrot directly with their sign-in token.
        let me = self
            .deployment
            .as_rep(PROGRAM, &rep.id, "GET", "/v1/me", None)
            .await?;
        let orders = self
            .deployment
            .as_rep(PROGRAM, &rep.id, "GET", "/v1/me/orders", None)
            .await?;
        let stranger = self
            .deployment
            .create_key("globex-portal", "globex", &["participants:read"])
            .await?;
        let refused = stranger
            .send_absolute(
                "GET",
                &format!("/v1/programs/{PROGRAM}/participants/{}", rep.id),
                Vec::new(),
                "application/json",
            )
            .await?;
        println!(
            "   GET /v1/me with {name}'s JWT: {} (available {}), GET /v1/me/orders: {} order(s); another program's key on the same statement: {} {}",
            me.status,
            me.body["wallet"]["available"],
            orders.body["orders"].as_array().map_or(0, Vec::len),
            refused.status,
            refused.body["title"].as_str().unwrap_or_default()
        );
        println!(
            "   (the portal step took {:.0} s)",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// `2026-12-07: 300, …` or `none`.
fn lots(lots: &Value) -> String {
    let lots: Vec<String> = lots
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{}: {}",
                l["date"].as_str().unwrap_or_default(),
                l["points"]
            )
        })
        .collect();
    if lots.is_empty() {
        "none".to_owned()
    } else {
        lots.join(", ")
    }
}
