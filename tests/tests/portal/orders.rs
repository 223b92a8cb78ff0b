//! Redemption on the local stack: the catalog, orders under heavy concurrency against one
//! balance, idempotency keys, cancellation and its refund, fulfilment, the wallet's pending,
//! expired and expiring points, the outbound events and their outbox, and partner transfers.

use crate::{PROGRAM, options, profile, setup, write_units};
use aws_sdk_dynamodb::types::AttributeValue;
use carrot::adapters::sns::SnsOutbound;
use carrot::domain::ledger::EntryStatus;
use carrot::ports::{Outbound, PortError, ProgramReader, StatsReader};
use carrot::service::redeem::{Redeem, drain};
use carrot_local::deployment::{ApiClient, Deployment, Response, item_size};
use carrot_local::stack::LocalStack;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A program with a catalog, a shop key (orders, reads) and an admin key.
struct Shop {
    deployment: Deployment,
    admin: ApiClient,
    shop: Arc<ApiClient>,
}

async fn shop(name: &str) -> anyhow::Result<Shop> {
    let setup = setup(name, options(10, 0.0)).await?;
    let shop = setup
        .deployment
        .create_key(
            "acme-shop",
            PROGRAM,
            &["redemptions:write", "participants:read"],
        )
        .await?;
    Ok(Shop {
        deployment: setup.deployment,
        admin: setup.admin,
        shop: Arc::new(shop),
    })
}

impl Shop {
    async fn item(&self, item: &str, definition: Value) -> anyhow::Result<()> {
        let stored = self
            .admin
            .send_json("PUT", &format!("/catalog/{item}"), definition)
            .await?;
        anyhow::ensure!(stored.status == 200, "item not stored: {stored:?}");
        Ok(())
    }

    /// Enrols each participant and credits them `points` through the award path.
    async fn enrol(&self, participants: &[(&str, Value)], points: i64) -> anyhow::Result<()> {
        for (participant, profile) in participants {
            let path = format!("/participants/{participant}");
            let enrolled = self.admin.send_json("PUT", &path, profile.clone()).await?;
            anyhow::ensure!(enrolled.status < 300, "not enrolled: {enrolled:?}");
            if points > 0 {
                let adjusted = self
                    .admin
                    .send_json(
                        "POST",
                        &format!("{path}/adjustments"),
                        json!({"id": "seed", "points": points, "reason": "opening balance"}),
                    )
                    .await?;
                anyhow::ensure!(adjusted.status < 300, "not adjusted: {adjusted:?}");
            }
        }
        self.deployment
            .award
            .wait_idle(Duration::from_secs(30))
            .await?;
        for (participant, _) in participants {
            anyhow::ensure!(self.balance(participant).await? == points);
        }
        Ok(())
    }

    async fn balance(&self, participant: &str) -> anyhow::Result<i64> {
        self.deployment.balance(PROGRAM, participant).await
    }

    /// The ledger's sum and its entries of `event_type`.
    async fn ledger(&self, participant: &str, event_type: &str) -> anyhow::Result<(i64, usize)> {
        let ledger = self.deployment.store.ledger(PROGRAM, participant).await?;
        let sum = ledger.iter().map(|r| r.points).sum();
        let count = ledger
            .iter()
            .filter(|r| r.event_type.as_deref() == Some(event_type))
            .count();
        Ok((sum, count))
    }

    /// Orders until the answer is not 503 (a contended spend: safe to retry with the same
    /// key); returns the answer and how many 503s came first.
    async fn order(&self, participant: &str, body: Value) -> anyhow::Result<(Response, usize)> {
        order_on(&self.shop, participant, body).await
    }

    async fn stock(&self, item: &str) -> anyhow::Result<Option<i64>> {
        let page = self.shop.get("/catalog?limit=100").await?;
        let items = page.body["items"].as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .find(|i| i["item"] == item)
            .and_then(|i| i["stock"].as_i64()))
    }

    async fn profile_item(
        &self,
        participant: &str,
    ) -> anyhow::Result<HashMap<String, AttributeValue>> {
        let stack = LocalStack::start_or_reuse().await?;
        let found = stack
            .dynamodb_client()
            .get_item()
            .table_name(self.deployment.resources.table())
            .key(
                "pk",
                AttributeValue::S(format!("P#{PROGRAM}#{participant}")),
            )
            .key("sk", AttributeValue::S("PROFILE".into()))
            .consistent_read(true)
            .send()
            .await?;
        Ok(found.item().cloned().unwrap_or_default())
    }

    /// Stored items by sort key with their billed sizes.
    async fn sized(&self, keys: &[(String, &str)]) -> anyhow::Result<Vec<(String, usize)>> {
        let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
        let mut sized = Vec::new();
        for (pk, sk) in keys {
            let item = dynamodb
                .get_item()
                .table_name(self.deployment.resources.table())
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S((*sk).to_owned()))
                .send()
                .await?
                .item
                .unwrap_or_default();
            sized.push(((*sk).to_owned(), item_size(&item)));
        }
        Ok(sized)
    }

    async fn outbox_len(&self) -> anyhow::Result<usize> {
        let stack = LocalStack::start_or_reuse().await?;
        let found = stack
            .dynamodb_client()
            .query()
            .table_name(self.deployment.resources.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("OUTBOX#{PROGRAM}")))
            .consistent_read(true)
            .send()
            .await?;
        Ok(found.items().len())
    }
}

async fn order_on(
    client: &ApiClient,
    participant: &str,
    body: Value,
) -> anyhow::Result<(Response, usize)> {
    let path = format!("/participants/{participant}/orders");
    let mut contended = 0;
    loop {
        let answer = client.send_json("POST", &path, body.clone()).await?;
        if answer.status != 503 {
            return Ok((answer, contended));
        }
        contended += 1;
        anyhow::ensure!(contended < 50, "still contended: {answer:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn address() -> Value {
    json!({"name": "Rep One", "line1": "Storgatan 1", "city": "Lund",
        "postal_code": "22100", "country": "SE"})
}

fn gift_card(points: i64) -> Value {
    json!({"title": "Gift card", "points": points, "fulfilment": "gift_card"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_hundred_concurrent_orders_against_one_balance_never_overdraw() -> anyhow::Result<()> {
    let shop = shop("portal-orders-race").await?;
    shop.item("gift-70", gift_card(70)).await?;
    shop.item(
        "cap",
        json!({"title": "Cap", "points": 10, "stock": 7, "fulfilment": "physical"}),
    )
    .await?;
    let reps = ["rep-1", "rep-2", "rep-3"];
    let enrolled: Vec<(&str, Value)> = reps.iter().map(|r| (*r, profile(r))).collect();
    shop.enrol(&enrolled, 1_000).await?;

    let started = std::time::Instant::now();
    let orders = (0..200).map(|i| {
        let client = shop.shop.clone();
        tokio::spawn(async move {
            let body = json!({"idempotency_key": format!("race-{i}"), "item": "gift-70"});
            order_on(&client, "rep-1", body).await
        })
    });
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut contended = 0;
    for order in orders.collect::<Vec<_>>() {
        let (answer, retries) = order.await??;
        contended += retries;
        if answer.status == 409 {
            assert_eq!(
                answer.body["type"],
                "https://carrot.dev/problems/insufficient-points"
            );
            assert!(answer.body["points"]["available"].as_i64().unwrap() < 70);
        }
        *statuses.entry(answer.status).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let expected = 1_000 / 70;
    assert_eq!(
        statuses,
        HashMap::from([(201, expected), (409, 200 - expected)]),
        "exactly floor(1000 / 70) orders succeed"
    );
    let balance = shop.balance("rep-1").await?;
    assert_eq!(balance, 1_000 - 70 * expected as i64);
    let (sum, redeemed) = shop.ledger("rep-1", "points.redeemed").await?;
    assert_eq!((sum, redeemed), (balance, expected));
    let listed = shop
        .shop
        .get("/participants/rep-1/orders?limit=100")
        .await?;
    assert_eq!(listed.body["orders"].as_array().unwrap().len(), expected);
    println!(
        "200 concurrent orders: {expected} placed, {} refused, {contended} contended answers retried, {elapsed:?}",
        200 - expected
    );

    // Stock: 60 concurrent orders of two reps with points to spare for 7 caps.
    let orders = (0..60).map(|i| {
        let client = shop.shop.clone();
        let rep = reps[1 + i % 2];
        tokio::spawn(async move {
            let body = json!({"idempotency_key": format!("cap-{i}"), "item": "cap",
                "shipping": address()});
            order_on(&client, rep, body).await
        })
    });
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for order in orders.collect::<Vec<_>>() {
        let (answer, _) = order.await??;
        if answer.status == 409 {
            assert_eq!(
                answer.body["type"],
                "https://carrot.dev/problems/out-of-stock"
            );
        }
        *statuses.entry(answer.status).or_default() += 1;
    }
    assert_eq!(statuses, HashMap::from([(201, 7), (409, 53)]));
    assert_eq!(shop.stock("cap").await?, Some(0), "never below zero");
    for rep in reps {
        let (sum, _) = shop.ledger(rep, "points.redeemed").await?;
        assert_eq!(sum, shop.balance(rep).await?);
    }
    shop.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_order_with_the_same_key_is_one_order() -> anyhow::Result<()> {
    let shop = shop("portal-orders-idem").await?;
    shop.item("gift-100", gift_card(100)).await?;
    shop.enrol(&[("rep-1", profile("rep-1"))], 1_000).await?;

    let body = json!({"idempotency_key": "k-1", "item": "gift-100", "quantity": 2});
    let (first, _) = shop.order("rep-1", body.clone()).await?;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["points"], 200);
    assert_eq!(first.body["status"], "placed");
    let (again, _) = shop.order("rep-1", body).await?;
    assert_eq!((again.status, &again.body), (200, &first.body));
    // The same key for a different order is refused, and writes nothing.
    let (reused, _) = shop
        .order(
            "rep-1",
            json!({"idempotency_key": "k-1", "item": "gift-100", "quantity": 3}),
        )
        .await?;
    assert_eq!(reused.status, 422, "{reused:?}");
    assert_eq!(shop.balance("rep-1").await?, 800);

    // Twenty at once with one fresh key: one order, one debit.
    let body = json!({"idempotency_key": "k-2", "item": "gift-100"});
    let tries = (0..20).map(|_| {
        let client = shop.shop.clone();
        let body = body.clone();
        tokio::spawn(async move { order_on(&client, "rep-1", body).await })
    });
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    for attempt in tries.collect::<Vec<_>>() {
        let (answer, _) = attempt.await??;
        statuses.push(answer.status);
        bodies.push(answer.body);
    }
    statuses.sort();
    assert_eq!(statuses, [[200; 19].as_slice(), &[201]].concat());
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every answer is the one order"
    );
    assert_eq!(shop.balance("rep-1").await?, 700);
    let (sum, redeemed) = shop.ledger("rep-1", "points.redeemed").await?;
    assert_eq!((sum, redeemed), (700, 2));

    // A single order reads back; unknown ones are 404.
    let one = shop.shop.get("/participants/rep-1/orders/k-2").await?;
    assert_eq!((one.status, &one.body), (200, &bodies[0]));
    let missing = shop.shop.get("/participants/rep-1/orders/nope").await?;
    assert_eq!(missing.status, 404);
    shop.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalog_offers_each_participant_what_they_may_order() -> anyhow::Result<()> {
    let shop = shop("portal-catalog").await?;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Stockholm")?)
        .date();
    // Bad definitions name every field at fault and store nothing.
    let bad = shop
        .admin
        .send_json(
            "PUT",
            "/catalog/mug",
            json!({"points": -5, "fulfilment": "drone", "roles": "seller"}),
        )
        .await?;
    assert_eq!(bad.status, 400, "{bad:?}");
    let mut fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["fulfilment", "points", "roles", "title"]);
    shop.item("gift-100", gift_card(100)).await?;
    shop.item("gift-900", gift_card(900)).await?;
    shop.item(
        "gold-only",
        json!({"title": "Gold", "points": 10, "tiers": ["gold"], "fulfilment": "digital"}),
    )
    .await?;
    shop.item(
        "managers",
        json!({"title": "Dinner", "points": 10, "roles": ["manager"], "fulfilment": "experience"}),
    )
    .await?;
    shop.item(
        "next-year",
        json!({"title": "Later", "points": 10, "fulfilment": "digital",
            "available_from": (today + jiff::Span::new().days(30)).to_string()}),
    )
    .await?;
    shop.item(
        "retired",
        json!({"title": "Old", "points": 10, "fulfilment": "digital", "active": false}),
    )
    .await?;
    shop.item(
        "sold-out",
        json!({"title": "Gone", "points": 10, "stock": 0, "fulfilment": "digital"}),
    )
    .await?;
    shop.enrol(&[("rep-1", profile("rep-1"))], 500).await?;

    // Every item, two a page, each exactly once.
    let mut seen = Vec::new();
    let mut path = "/catalog?limit=2".to_owned();
    loop {
        let page = shop.shop.get(&path).await?;
        assert_eq!(page.status, 200, "{page:?}");
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["item"].as_str().unwrap().to_owned());
        }
        match page.body["next"].as_str() {
            Some(next) => path = format!("/catalog?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "gift-100",
            "gift-900",
            "gold-only",
            "managers",
            "next-year",
            "retired",
            "sold-out"
        ]
    );
    // What rep-1 (a sales rep without a tier, 500 points) may order.
    let offered = shop.shop.get("/catalog?participant=rep-1").await?;
    let offered: Vec<(&str, bool)> = offered.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["item"].as_str().unwrap(),
                i["affordable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(offered, [("gift-100", true), ("gift-900", false)]);
    // Ordering what is not offered is a 409 naming why, and writes nothing.
    for item in ["gold-only", "managers", "next-year", "retired"] {
        let (refused, _) = shop
            .order(
                "rep-1",
                json!({"idempotency_key": format!("try-{item}"), "item": item}),
            )
            .await?;
        assert_eq!(refused.status, 409, "{item}: {refused:?}");
        assert_eq!(
            refused.body["type"],
            "https://carrot.dev/problems/not-offered"
        );
    }
    let (unknown, _) = shop
        .order(
            "rep-1",
            json!({"idempotency_key": "u-1", "item": "unicorn"}),
        )
        .await?;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["errors"][0]["field"], "item");
    let (unshipped, _) = shop
        .order(
            "rep-1",
            json!({"idempotency_key": "u-2", "item": "gift-100", "shipping": address()}),
        )
        .await?;
    assert_eq!(unshipped.status, 400);
    assert_eq!(unshipped.body["errors"][0]["field"], "shipping");
    assert_eq!(shop.balance("rep-1").await?, 500);
    let listed = shop.shop.get("/participants/rep-1/orders").await?;
    assert_eq!(listed.body["orders"], json!([]));

    // A portal calling with the rep's JWT sees and orders for that rep only.
    let me = async |method: &str, path: &str, body: Option<Value>| {
        let deployment = &shop.deployment;
        deployment
            .as_rep(PROGRAM, "rep-1", method, path, body.as_ref())
            .await
    };
    let mine = me("GET", "/v1/me/catalog", None).await?;
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 2);
    let body = json!({"idempotency_key": "me-1", "item": "gift-100"});
    let ordered = me("POST", "/v1/me/orders", Some(body)).await?;
    assert_eq!(ordered.status, 201, "{ordered:?}");
    assert_eq!(ordered.body["placed_by"], "jwt:portal-user-rep-1");
    let listed = me("GET", "/v1/me/orders", None).await?;
    assert_eq!(listed.body["orders"][0]["order"], "me-1");
    assert_eq!(shop.balance("rep-1").await?, 400);
    shop.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancellation_refunds_once_and_fulfilment_follows_the_order_of_things() -> anyhow::Result<()>
{
    let shop = shop("portal-orders-cancel").await?;
    shop.item(
        "mug",
        json!({"title": "Mug", "points": 150, "stock": 10, "fulfilment": "physical"}),
    )
    .await?;
    shop.enrol(&[("rep-1", profile("rep-1"))], 1_000).await?;
    let place = async |key: &str| -> anyhow::Result<Response> {
        let body =
            json!({"idempotency_key": key, "item": "mug", "quantity": 2, "shipping": address()});
        Ok(shop.order("rep-1", body).await?.0)
    };
    assert_eq!(place("o-1").await?.status, 201);
    assert_eq!(shop.balance("rep-1").await?, 700);
    assert_eq!(shop.stock("mug").await?, Some(8));

    // Cancelled twice, refunded once.
    for _ in 0..2 {
        let cancelled = shop
            .shop
            .send_json("POST", "/participants/rep-1/orders/o-1/cancel", json!({}))
            .await?;
        assert_eq!(cancelled.status, 200, "{cancelled:?}");
        assert_eq!(cancelled.body["status"], "cancelled");
    }
    assert_eq!(shop.balance("rep-1").await?, 1_000);
    assert_eq!(shop.stock("mug").await?, Some(10));
    let (sum, refunds) = shop.ledger("rep-1", "points.refunded").await?;
    assert_eq!((sum, refunds), (1_000, 1));
    // A cancelled order is never fulfilled.
    let ship = json!({"status": "shipped", "carrier": "PostNord", "tracking": "PN1"});
    let path = "/participants/rep-1/orders/o-1/fulfilment";
    let refused = shop.admin.send_json("PUT", path, ship.clone()).await?;
    assert_eq!(refused.status, 409, "{refused:?}");

    // Placed → shipped → delivered; a shipped order is never cancelled.
    let placed = place("o-2").await?;
    assert_eq!(placed.status, 201);
    // What the order's transaction wrote (the outbox item is gone: sized from its event).
    let participant = format!("P#{PROGRAM}#rep-1");
    let mut items = shop
        .sized(&[
            (participant.clone(), "E#order:o-2"),
            (participant.clone(), "PROFILE"),
            (participant, "ORDER#o-2"),
            (format!("CATALOG#{PROGRAM}"), "ITEM#mug"),
        ])
        .await?;
    let event = json!({"id": "acme:rep-1:o-2:order.placed", "type": "order.placed",
        "program": PROGRAM, "participant": "rep-1", "order": placed.body,
        "occurred_at": placed.body["placed_at"]});
    items.push(("OUTBOX".into(), event.to_string().len() + 150));
    println!(
        "an order of a physical item: {items:?} → {} WCU by AWS's rule",
        write_units(&items)
    );
    assert_eq!(write_units(&items), 10, "five items under 1 KB each");
    let path = "/participants/rep-1/orders/o-2/fulfilment";
    let bad = shop
        .admin
        .send_json("PUT", path, json!({"status": "lost"}))
        .await?;
    assert_eq!(
        (bad.status, &bad.body["errors"][0]["field"]),
        (400, &json!("status"))
    );
    let forbidden = shop.shop.send_json("PUT", path, ship.clone()).await?;
    assert_eq!(forbidden.status, 403, "fulfilment is for administrators");
    let shipped = shop.admin.send_json("PUT", path, ship.clone()).await?;
    assert_eq!(shipped.status, 200, "{shipped:?}");
    assert_eq!(
        (&shipped.body["status"], &shipped.body["tracking"]),
        (&json!("shipped"), &json!("PN1"))
    );
    let again = shop.admin.send_json("PUT", path, ship).await?;
    assert_eq!((again.status, &again.body), (200, &shipped.body));
    let cancel = shop
        .shop
        .send_json("POST", "/participants/rep-1/orders/o-2/cancel", json!({}))
        .await?;
    assert_eq!(cancel.status, 409, "{cancel:?}");
    let delivered = shop
        .admin
        .send_json("PUT", path, json!({"status": "delivered"}))
        .await?;
    assert_eq!(delivered.body["status"], "delivered");
    assert_eq!(delivered.body["tracking"], "PN1", "tracking kept");
    let back = shop
        .admin
        .send_json("PUT", path, json!({"status": "shipped"}))
        .await?;
    assert_eq!(back.status, 409);
    assert_eq!(shop.balance("rep-1").await?, 700);

    // Newest first, paged.
    let page = shop.shop.get("/participants/rep-1/orders?limit=1").await?;
    assert_eq!(page.body["orders"][0]["order"], "o-2");
    let next = page.body["next"].as_str().unwrap();
    let page = shop
        .shop
        .get(&format!("/participants/rep-1/orders?limit=1&after={next}"))
        .await?;
    assert_eq!(page.body["orders"][0]["order"], "o-1");
    assert_eq!(page.body["next"], Value::Null);
    shop.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_and_expired_points_are_not_spent_and_expiring_lots_go_oldest_first()
-> anyhow::Result<()> {
    let shop = shop("portal-orders-wallet").await?;
    shop.item("gift-50", gift_card(50)).await?;
    shop.enrol(&[("rep-1", profile("rep-1"))], 0).await?;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Stockholm")?)
        .date();
    let day = |days: i64| (today + jiff::Span::new().days(days)).to_string();
    let (pending, expired, soon, later) = (
        format!("pend@{}", day(5)),
        format!("exp@{}", day(-40)),
        format!("exp@{}", day(30)),
        format!("exp@{}", day(60)),
    );
    // The wallet as awards would leave it: 1,000 points, of which 300 pending, 200 expired
    // (not yet written off), 100 expiring in a month, 400 in two months.
    let stack = LocalStack::start_or_reuse().await?;
    stack
        .dynamodb_client()
        .update_item()
        .table_name(shop.deployment.resources.table())
        .key("pk", AttributeValue::S(format!("P#{PROGRAM}#rep-1")))
        .key("sk", AttributeValue::S("PROFILE".into()))
        .update_expression("SET balance = :b, #p = :p, #e = :e, #s = :s, #l = :l")
        .expression_attribute_names("#p", &pending)
        .expression_attribute_names("#e", &expired)
        .expression_attribute_names("#s", &soon)
        .expression_attribute_names("#l", &later)
        .expression_attribute_values(":b", AttributeValue::N("1000".into()))
        .expression_attribute_values(":p", AttributeValue::N("300".into()))
        .expression_attribute_values(":e", AttributeValue::N("200".into()))
        .expression_attribute_values(":s", AttributeValue::N("100".into()))
        .expression_attribute_values(":l", AttributeValue::N("400".into()))
        .send()
        .await?;

    let (refused, _) = shop
        .order(
            "rep-1",
            json!({"idempotency_key": "too-much", "item": "gift-50", "quantity": 11}),
        )
        .await?;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert_eq!(
        refused.body["points"],
        json!({"available": 500, "needed": 550})
    );
    let offered = shop.shop.get("/catalog?participant=rep-1").await?;
    assert_eq!(offered.body["items"][0]["affordable"], true);

    let (placed, _) = shop
        .order(
            "rep-1",
            json!({"idempotency_key": "o-1", "item": "gift-50", "quantity": 5}),
        )
        .await?;
    assert_eq!(placed.status, 201, "{placed:?}");
    let profile = shop.profile_item("rep-1").await?;
    let lots = |profile: &HashMap<String, AttributeValue>| {
        [&pending, &expired, &soon, &later].map(|lot| number(profile, lot).unwrap_or(0))
    };
    assert_eq!(
        lots(&profile),
        [300, 200, 0, 250],
        "the soonest expiring first"
    );
    assert_eq!(number(&profile, "balance"), Some(750));
    // What is left is exactly what was available less the order.
    let (refused, _) = shop
        .order(
            "rep-1",
            json!({"idempotency_key": "o-2", "item": "gift-50", "quantity": 6}),
        )
        .await?;
    assert_eq!(
        refused.body["points"],
        json!({"available": 250, "needed": 300})
    );

    // A refund gives the same lots back.
    let cancelled = shop
        .shop
        .send_json("POST", "/participants/rep-1/orders/o-1/cancel", json!({}))
        .await?;
    assert_eq!(cancelled.status, 200);
    let profile = shop.profile_item("rep-1").await?;
    assert_eq!(lots(&profile), [300, 200, 100, 400]);
    assert_eq!(number(&profile, "balance"), Some(1_000));
    shop.deployment.stop().await
}

/// An outbound topic that is down.
struct Down;

impl Outbound for Down {
    async fn publish(&self, _kind: &str, _event: &str) -> Result<(), PortError> {
        Err(PortError::Transient("topic unavailable".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_order_event_is_published_once_and_the_outbox_drains_what_publishing_missed()
-> anyhow::Result<()> {
    let stack = LocalStack::start_or_reuse().await?;
    let shop = shop("portal-orders-outbox").await?;
    let topic_queue = stack
        .subscribe_queue(&shop.deployment.resources, "OutboundTopic")
        .await?;
    shop.item("gift-100", gift_card(100)).await?;
    shop.enrol(&[("rep-1", profile("rep-1"))], 1_000).await?;
    let body = json!({"idempotency_key": "o-1", "item": "gift-100"});
    assert_eq!(shop.order("rep-1", body.clone()).await?.0.status, 201);
    assert_eq!(shop.order("rep-1", body).await?.0.status, 200);
    let cancelled = shop
        .shop
        .send_json("POST", "/participants/rep-1/orders/o-1/cancel", json!({}))
        .await?;
    assert_eq!(cancelled.status, 200);
    assert_eq!(shop.outbox_len().await?, 0, "published and deleted");
    let events: Vec<Value> = shop
        .deployment
        .drain_queue(&topic_queue)
        .await?
        .iter()
        .map(|body| serde_json::from_str(body))
        .collect::<Result<_, _>>()?;
    let mut seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
                e["order"]["status"].as_str().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "acme:rep-1:o-1:order.cancelled",
                "order.cancelled",
                "cancelled"
            ),
            ("acme:rep-1:o-1:order.placed", "order.placed", "placed"),
        ]
    );

    // The topic is down when an order is placed: the order stands, its event waits in the
    // outbox, and the drain publishes it once it is a minute old.
    let program = shop
        .deployment
        .store
        .versions(PROGRAM)
        .await?
        .expect("stored")
        .latest()
        .clone();
    let now = jiff::Timestamp::now();
    let service = Redeem {
        store: &shop.deployment.store,
        outbound: &Down,
        program: &program,
        now,
        actor: "test",
    };
    let request = carrot::domain::catalog::OrderRequest::from_json(
        json!({"idempotency_key": "o-2", "item": "gift-100"})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    assert!(service.place("rep-1", &request).await?.created);
    assert_eq!(shop.outbox_len().await?, 1);
    let topic = SnsOutbound::new(
        stack.sns_client(),
        shop.deployment.resources.topic_arn("OutboundTopic"),
    );
    assert_eq!(
        drain(&shop.deployment.store, &topic, PROGRAM, now).await?,
        0,
        "too young"
    );
    // The hourly engagement run drains it, once.
    shop.deployment
        .clock
        .set(now + jiff::SignedDuration::from_secs(61));
    let run = shop
        .deployment
        .engage
        .handle(json!({"program": PROGRAM}))
        .await?;
    assert_eq!(run["runs"][0]["published"], 1, "{run}");
    let run = shop
        .deployment
        .engage
        .handle(json!({"program": PROGRAM}))
        .await?;
    assert_eq!(run["runs"][0]["published"], 0, "{run}");
    assert_eq!(shop.outbox_len().await?, 0);
    let events = shop.deployment.drain_queue(&topic_queue).await?;
    assert_eq!(events.len(), 1);
    let event: Value = serde_json::from_str(&events[0])?;
    assert_eq!(event["id"], "acme:rep-1:o-2:order.placed");
    assert_eq!(event["order"]["shipping"], Value::Null);
    shop.deployment.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partner_account_transfers_to_its_team_once_and_never_overdraws() -> anyhow::Result<()> {
    let shop = shop("portal-transfers").await?;
    let mut partner = profile("partner");
    partner["account"] = json!("partner");
    let mut elsewhere = profile("elsewhere");
    elsewhere["distributor"] = json!("other-dealer");
    shop.enrol(
        &[
            ("partner", partner),
            ("rep-1", profile("rep-1")),
            ("elsewhere", elsewhere),
        ],
        500,
    )
    .await?;
    let transfer = async |from: &str, body: Value| {
        shop.shop
            .send_json("POST", &format!("/participants/{from}/transfers"), body)
            .await
    };
    let body = json!({"id": "t-1", "to": "rep-1", "points": 200, "note": "Q4 split"});
    let first = transfer("partner", body.clone()).await?;
    assert_eq!(first.status, 201, "{first:?}");
    let again = transfer("partner", body).await?;
    assert_eq!((again.status, &again.body), (200, &first.body));
    assert_eq!(shop.balance("partner").await?, 300);
    assert_eq!(shop.balance("rep-1").await?, 700);
    let reused = transfer(
        "partner",
        json!({"id": "t-1", "to": "rep-1", "points": 250}),
    )
    .await?;
    assert_eq!(reused.status, 422);

    let refusals = [
        (
            "partner",
            json!({"id": "t-2", "to": "rep-1", "points": 301}),
            409,
            "insufficient-points",
        ),
        (
            "partner",
            json!({"id": "t-3", "to": "elsewhere", "points": 10}),
            409,
            "not-allowed",
        ),
        (
            "rep-1",
            json!({"id": "t-4", "to": "partner", "points": 10}),
            409,
            "not-allowed",
        ),
        (
            "partner",
            json!({"id": "t-5", "to": "nobody", "points": 10}),
            400,
            "invalid-request",
        ),
        (
            "partner",
            json!({"id": "t-6", "to": "partner", "points": 10}),
            400,
            "invalid-request",
        ),
        (
            "partner",
            json!({"id": "t 7", "to": "rep-1", "points": 0}),
            400,
            "invalid-request",
        ),
    ];
    for (from, body, status, kind) in refusals {
        let refused = transfer(from, body.clone()).await?;
        assert_eq!(refused.status, status, "{body}: {refused:?}");
        assert_eq!(
            refused.body["type"],
            format!("https://carrot.dev/problems/{kind}")
        );
    }
    // Concurrent transfers of 50 from the 300 left: exactly six go through.
    let tries = (0..20).map(|i| {
        let client = shop.shop.clone();
        tokio::spawn(async move {
            loop {
                let body = json!({"id": format!("c-{i}"), "to": "rep-1", "points": 50});
                let answer = client
                    .send_json("POST", "/participants/partner/transfers", body)
                    .await?;
                if answer.status != 503 {
                    return anyhow::Ok(answer.status);
                }
            }
        })
    });
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for attempt in tries.collect::<Vec<_>>() {
        *statuses.entry(attempt.await??).or_default() += 1;
    }
    assert_eq!(statuses, HashMap::from([(201, 6), (409, 14)]));
    assert_eq!(shop.balance("partner").await?, 0);
    assert_eq!(shop.balance("rep-1").await?, 1_000);
    for participant in ["partner", "rep-1"] {
        let ledger = shop.deployment.store.ledger(PROGRAM, participant).await?;
        assert!(ledger.iter().all(|r| r.status == EntryStatus::Awarded));
        assert_eq!(
            ledger.iter().map(|r| r.points).sum::<i64>(),
            shop.balance(participant).await?
        );
    }
    shop.deployment.stop().await
}
