//! Bad input and abuse against the real local API: a catalogue of hostile requests, each
//! answered with a precise 4xx naming the field at fault and writing nothing (every item of
//! every table and the events queue unchanged); replayed and re-used signatures refused.
//! Isolation between programs is proven by `portal::isolation`; the parsers' fuzz harness is
//! `carrot::domain::fuzz_tests`; the scan of every log line for personal data and secrets is
//! `scripts/scan-logs.py`, run by `scripts/test.sh` after the tests.

use crate::{PROGRAM_YAML, Setup, options, post_signed, problem_fields, profile, setup};
use aws_sdk_dynamodb::types::AttributeValue;
use carrot::domain::signature::TOLERANCE_SECS;
use carrot::ports::StatsReader;
use carrot_local::deployment::{ApiClient, Deployment, Response, signed_headers};
use carrot_local::stack::LocalStack;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Who sends a request: the CRM's events key, the admin key, the shop's key (orders, reads),
/// or a rep's portal JWT (`/v1/me/…`).
enum Sender {
    Crm,
    Admin,
    Shop,
    Rep,
}

/// One hostile request and the refusal it must get: the status and the fields the problem
/// names (in `errors[]`, or in `results[].errors[]` for a batch or an import).
struct Hostile {
    what: &'static str,
    sender: Sender,
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    fields: &'static [&'static str],
}

/// The refusal a request must get: its status and the fields the problem names.
type Refusal = (u16, &'static [&'static str]);

fn request(
    what: &'static str,
    sender: Sender,
    method: &'static str,
    path: &str,
    body: Value,
    status: u16,
    fields: &'static [&'static str],
) -> Hostile {
    let body = body.to_string().into_bytes();
    raw(
        what,
        sender,
        method,
        path,
        "application/json",
        body,
        (status, fields),
    )
}

fn raw(
    what: &'static str,
    sender: Sender,
    method: &'static str,
    path: &str,
    content_type: &'static str,
    body: Vec<u8>,
    (status, fields): Refusal,
) -> Hostile {
    Hostile {
        what,
        sender,
        method,
        path: path.to_owned(),
        content_type,
        body,
        status,
        fields,
    }
}

/// A valid event with `changes` merged in (a `null` removes the member).
fn event(changes: Value) -> Value {
    let mut event = json!({"id": "h-1", "participant": "rep-anna", "type": "contract.started",
        "occurred_at": "2026-11-02T08:00:00+01:00",
        "attributes": {"contract_id": "K-1", "financed_volume": 250000, "currency": "SEK"}});
    merge(&mut event, changes);
    event
}

fn merge(into: &mut Value, changes: Value) {
    for (key, value) in changes.as_object().expect("an object of changes") {
        match (into.get_mut(key), value) {
            (_, Value::Null) => {
                into.as_object_mut().expect("an object").remove(key);
            }
            (Some(existing @ Value::Object(_)), Value::Object(_)) => merge(existing, value.clone()),
            _ => {
                into[key] = value.clone();
            }
        }
    }
}

fn profile_with(changes: Value) -> Value {
    let mut profile = profile("rep-anna");
    merge(&mut profile, changes);
    profile
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// A CSV import file: the required header and one row with `email` in place.
fn csv_row(email: &str) -> String {
    format!(
        "participant,name,email,locale,time_zone,role,distributor,location\r\n\
         rep-csv,Csv Rep,\"{email}\",sv-SE,Europe/Stockholm,sales_rep,nordic,nordic-sthlm\r\n"
    )
}

fn quiz(questions: usize) -> Value {
    let questions: Vec<Value> = (1..=questions)
        .map(|i| {
            json!({"id": format!("q{i}"), "text": "Which?",
                "options": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}], "answer": "a"})
        })
        .collect();
    json!({"title": "Hostile", "questions": questions})
}

fn order(changes: Value) -> Value {
    let mut order = json!({"idempotency_key": "h-order-1", "item": "mug", "quantity": 1,
        "shipping": {"name": "Anna Berg", "line1": "Storgatan 1", "city": "Lund",
                     "postal_code": "222 21", "country": "SE"}});
    merge(&mut order, changes);
    order
}

/// The catalogue. Paths are relative to `/v1/programs/acme` except for the rep's `/v1/me/…`.
// A table: one request a line (or a few) reads better than rustfmt's one argument a line.
#[rustfmt::skip]
fn catalogue() -> Vec<Hostile> {
    use Sender::*;
    let json_type = "application/json";
    let events = |what, body: Value, fields| request(what, Crm, "POST", "/events", body, 400, fields);
    let events_bytes = |what, body: Vec<u8>, status, fields| {
        raw(what, Crm, "POST", "/events", json_type, body, (status, fields))
    };
    let enrol = |what, body: Value, fields| {
        request(what, Admin, "PUT", "/participants/rep-anna", body, 400, fields)
    };
    let adjustment = |what, changes: Value, fields| {
        let mut body = json!({"id": "h-adj-1", "points": 500, "reason": "hostile"});
        merge(&mut body, changes);
        let path = "/participants/rep-anna/adjustments";
        request(what, Admin, "POST", path, body, 400, fields)
    };
    let program = |what, yaml: Vec<u8>, status, fields| {
        raw(what, Admin, "PUT", "", "application/yaml", yaml, (status, fields))
    };
    let import = |what, mode, content_type, body: Vec<u8>, status, fields| {
        let path = format!("/imports?mode={mode}");
        raw(what, Admin, "POST", &path, content_type, body, (status, fields))
    };
    let item = |what, body: Value, fields| {
        request(what, Admin, "PUT", "/catalog/h-item", body, 400, fields)
    };
    let place = |what, changes: Value, fields| {
        let path = "/participants/rep-anna/orders";
        request(what, Shop, "POST", path, order(changes), 400, fields)
    };
    let alias_bomb = (1..=9).fold("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_owned(), |doc, level| {
        let row = vec![format!("*a{}", level - 1); 9].join(", ");
        format!("{doc}a{level}: &a{level} [{row}]\n")
    });
    let mut wrong_answer_key = quiz(5);
    wrong_answer_key["questions"][0]["answer"] = json!("z");
    vec![
        // Events: the body.
        events_bytes("truncated JSON", b"{\"id\": \"h-1\",".to_vec(), 400, &["$"]),
        events_bytes("invalid UTF-8 in a string", b"{\"id\": \"h-\xff\xfe\"}".to_vec(), 400, &["$"]),
        events_bytes("a lone surrogate escape", br#"{"id": "h-\ud800"}"#.to_vec(), 400, &["$"]),
        events_bytes("an empty body", Vec::new(), 400, &["$"]),
        events("a JSON array", json!([event(json!({}))]), &["$"]),
        events("JSON null", Value::Null, &["$"]),
        events("events not an array", json!({"events": {"0": event(json!({}))}}), &["events"]),
        events("an empty batch", json!({"events": []}), &["events"]),
        events("a batch with another member", json!({"events": [event(json!({}))], "program": "globex"}), &["program"]),
        events_bytes("nesting deeper than the parser's limit",
            format!(r#"{{"id":"h-1","attributes":{{"x":{}}}}}"#, nested(200)).into_bytes(), 400, &["$"]),
        events_bytes("a number beyond f64",
            event(json!({})).to_string().replace("250000", "1e309").into_bytes(), 400, &["$"]),
        events_bytes("a body over 1 MiB",
            format!("{}{}", event(json!({})), " ".repeat(1024 * 1024 + 1)).into_bytes(), 413, &[]),
        // Events: the envelope.
        events("id a number", event(json!({"id": 7})), &["id"]),
        events("id with CR/LF", event(json!({"id": "h-1\r\nX-Injected: 1"})), &["id"]),
        events("id with a NUL byte", event(json!({"id": "h-\u{0}1"})), &["id"]),
        events("id of 10,000 characters", event(json!({"id": "h".repeat(10_000)})), &["id"]),
        events("an empty participant", event(json!({"participant": ""})), &["participant"]),
        events("participant with a space and #", event(json!({"participant": "rep anna#1"})), &["participant"]),
        events("participant an object", event(json!({"participant": {"id": "rep-anna"}})), &["participant"]),
        events("type in upper case", event(json!({"type": "Contract.Started"})), &["type"]),
        events("type NaN", event(json!({"type": "NaN"})), &["type"]),
        events("reserved type points.adjusted", json!({"id": "h-1", "participant": "rep-anna",
            "type": "points.adjusted", "occurred_at": "2026-11-02T08:00:00Z",
            "attributes": {"points": 1_000_000, "reason": "free points"}}), &["type"]),
        events("reserved id prefix", event(json!({"id": "adj:h-1"})), &["id"]),
        events("program in the envelope", event(json!({"program": "globex"})), &["program"]),
        events("an unknown envelope member", event(json!({"__proto__": {"admin": true}})), &["__proto__"]),
        events("attributes a string", event(json!({"attributes": "{}"})), &["attributes"]),
        events("occurred_at NaN", event(json!({"occurred_at": "NaN"})), &["occurred_at"]),
        events("occurred_at a Unix number", event(json!({"occurred_at": 1_795_000_000})), &["occurred_at"]),
        events("occurred_at without an offset", event(json!({"occurred_at": "2026-11-02T08:00:00"})), &["occurred_at"]),
        events("occurred_at with a zone name",
            event(json!({"occurred_at": "2026-11-02T08:00:00+01:00[Europe/Stockholm]"})), &["occurred_at"]),
        events("occurred_at offset +25:00", event(json!({"occurred_at": "2026-11-02T08:00:00+25:00"})), &["occurred_at"]),
        events("occurred_at 30 February", event(json!({"occurred_at": "2026-02-30T08:00:00Z"})), &["occurred_at"]),
        events("occurred_at in year 9999", event(json!({"occurred_at": "9999-12-31T23:59:59Z"})), &["occurred_at"]),
        events("occurred_at in year 1", event(json!({"occurred_at": "0001-01-01T00:00:00Z"})), &["occurred_at"]),
        events("occurred_at at the Unix epoch", event(json!({"occurred_at": "1970-01-01T00:00:00Z"})), &["occurred_at"]),
        events("occurred_at ending in a multi-byte character",
            event(json!({"occurred_at": "2026-11-02T08:00:00€1234"})), &["occurred_at"]),
        events("financed_volume NaN", event(json!({"attributes": {"financed_volume": "NaN"}})), &["attributes.financed_volume"]),
        events("financed_volume Infinity",
            event(json!({"attributes": {"financed_volume": "Infinity"}})), &["attributes.financed_volume"]),
        events("financed_volume 1e30", event(json!({"attributes": {"financed_volume": 1e30}})), &["attributes.financed_volume"]),
        events("financed_volume negative", event(json!({"attributes": {"financed_volume": -1}})), &["attributes.financed_volume"]),
        events("financed_volume a boolean",
            event(json!({"attributes": {"financed_volume": true}})), &["attributes.financed_volume"]),
        events("currency not ISO 4217", event(json!({"attributes": {"currency": "kr"}})), &["attributes.currency"]),
        events("a reversal naming itself", json!({"id": "h-2", "participant": "rep-anna",
            "type": "contract.cancelled", "occurred_at": "2026-11-02T08:00:00Z",
            "attributes": {"original_event": "h-2"}}), &["attributes.original_event"]),
        events("every event of a batch invalid",
            json!({"events": [event(json!({"id": 1})), event(json!({"occurred_at": "soon"}))]}),
            &["events[0].id", "events[1].occurred_at"]),
        // Enrolment.
        enrol("e-mail with a CR/LF header injection",
            profile_with(json!({"email": "anna@dealer.example\r\nBcc: all@evil.example"})), &["email"]),
        enrol("e-mail with a bare LF", profile_with(json!({"email": "anna@dealer.example\nCc: x@evil.example"})), &["email"]),
        enrol("e-mail with a NUL byte", profile_with(json!({"email": "anna@dealer.example\u{0}"})), &["email"]),
        enrol("manager e-mail with a header injection",
            profile_with(json!({"manager": {"name": "Erik", "email": "erik@dealer.example\r\nBcc: x@evil.example"}})),
            &["manager.email"]),
        enrol("phone not E.164", profile_with(json!({"phone": "070-123 45 67"})), &["phone"]),
        enrol("phone NaN", profile_with(json!({"phone": "NaN"})), &["phone"]),
        enrol("time zone an offset", profile_with(json!({"time_zone": "+01:00"})), &["time_zone"]),
        enrol("time zone a path", profile_with(json!({"time_zone": "../../etc/localtime"})), &["time_zone"]),
        enrol("name a number", profile_with(json!({"name": 42})), &["name"]),
        enrol("name of 100,000 characters", profile_with(json!({"name": "A".repeat(100_000)})), &["name"]),
        enrol("enrolled_at in year 9999", profile_with(json!({"enrolled_at": "9999-01-01"})), &["enrolled_at"]),
        enrol("status not a status", profile_with(json!({"status": "superuser"})), &["status"]),
        enrol("account not an account", profile_with(json!({"account": "admin"})), &["account"]),
        enrol("an unknown member", profile_with(json!({"is_admin": true})), &["is_admin"]),
        request("participant id with a space", Admin, "PUT", "/participants/rep%20anna",
            profile("rep-anna"), 400, &["participant"]),
        request("participant id of 200 characters", Admin, "PUT", &format!("/participants/{}", "r".repeat(200)),
            profile("rep-anna"), 400, &["participant"]),
        // Adjustments.
        adjustment("points over a million", json!({"points": 1_000_001}), &["points"]),
        adjustment("adjustment id with a space", json!({"id": "adj 1"}), &["id"]),
        adjustment("points fractional", json!({"points": 1.5}), &["points"]),
        adjustment("points a string", json!({"points": "500"}), &["points"]),
        adjustment("points beyond i64", json!({"points": 9_223_372_036_854_775_808_u64}), &["points"]),
        adjustment("points zero", json!({"points": 0}), &["points"]),
        adjustment("reason blank", json!({"reason": " \t "}), &["reason"]),
        adjustment("reason of 300 characters", json!({"reason": "r".repeat(300)}), &["reason"]),
        adjustment("id with #", json!({"id": "h#1"}), &["id"]),
        // Program configuration.
        program("a billion-laughs alias bomb", alias_bomb.into_bytes(), 400, &["$"]),
        program("nesting 10,000 deep", format!("program: {}", nested(10_000)).into_bytes(), 400, &["$"]),
        program("a time zone that does not exist",
            PROGRAM_YAML.replace("Europe/Stockholm", "Mars/Olympus_Mons").into_bytes(), 400, &["time_zone"]),
        program("points of 1e20",
            b"program: acme\nname: x\ntime_zone: UTC\npoints:\n  portal.login: 1e20\n".to_vec(),
            400, &["points[\"portal.login\"]"]),
        program("a configuration that is not UTF-8",
            b"program: acme\nname: \xc3\x28\ntime_zone: UTC\n".to_vec(), 400, &["$"]),
        program("another program's id in the configuration",
            PROGRAM_YAML.replace("program: acme", "program: globex").into_bytes(), 403, &[]),
        // Imports (all or nothing, so a bad row writes nothing).
        import("an import with an unknown column", "all-or-nothing", "text/csv",
            b"participant,colour\r\nrep-x,red\r\n".to_vec(), 400, &["$"]),
        import("an import that is not UTF-8", "all-or-nothing", "text/csv",
            b"participant,name\r\nrep-x,\xff\xfe\r\n".to_vec(), 400, &["$"]),
        import("an import row with an e-mail header injection", "all-or-nothing", "text/csv",
            csv_row("csv@dealer.example\r\nBcc: all@evil.example").into_bytes(), 400, &["email"]),
        import("an import mode that does not exist", "yolo", "text/csv",
            csv_row("csv@dealer.example").into_bytes(), 400, &["mode"]),
        import("an import as XML", "per-row", "application/xml", b"<participants/>".to_vec(), 415, &[]),
        // Catalog and orders.
        item("an item of zero points", json!({"title": "Mug", "points": 0, "fulfilment": "digital"}), &["points"]),
        item("an unknown fulfilment", json!({"title": "Mug", "points": 10, "fulfilment": "drone"}), &["fulfilment"]),
        item("available until before from", json!({"title": "Mug", "points": 10, "fulfilment": "digital",
            "available_from": "2026-12-31", "available_until": "2026-12-01"}), &["available_until"]),
        item("available from 30 February", json!({"title": "Mug", "points": 10, "fulfilment": "digital",
            "available_from": "2026-02-30"}), &["available_from"]),
        place("quantity zero", json!({"quantity": 0}), &["quantity"]),
        place("quantity a string", json!({"quantity": "1"}), &["quantity"]),
        place("quantity beyond u64", json!({"quantity": 1e20}), &["quantity"]),
        place("idempotency key with a space", json!({"idempotency_key": "h order"}), &["idempotency_key"]),
        place("an item not in the catalog", json!({"item": "no-such-item"}), &["item"]),
        place("shipping country in lower case", json!({"shipping": {"country": "se"}}), &["shipping.country"]),
        place("shipping with a member that is not an address field",
            json!({"shipping": {"instructions": "leave at the door"}}), &["shipping.instructions"]),
        request("a rep's order of quantity -1", Rep, "POST", "/v1/me/orders",
            order(json!({"quantity": -1})), 400, &["quantity"]),
        // Quizzes.
        request("a quiz of four questions", Admin, "PUT", "/quizzes/hostile", quiz(4), 400, &["questions"]),
        request("a quiz id in upper case", Admin, "PUT", "/quizzes/Hostile", quiz(5), 400, &["quiz"]),
        request("a quiz answer key not an option", Admin, "PUT", "/quizzes/hostile",
            wrong_answer_key, 400, &["questions[0].answer"]),
        request("quiz answers not an object", Crm, "POST", "/participants/rep-anna/quizzes/welcome/attempts",
            json!({"id": "att-1", "answers": ["a", "b"]}), 400, &["answers"]),
    ]
}

/// Every field a refusal names: its `errors[]`, and those of each `results[]` entry.
fn fields_named(response: &Response) -> Vec<String> {
    let mut fields = problem_fields(response);
    for result in response.body["results"].as_array().into_iter().flatten() {
        for error in result["errors"].as_array().into_iter().flatten() {
            fields.extend(error["field"].as_str().map(str::to_owned));
        }
    }
    fields
}

/// Whether each field at fault is named once in the problem's `errors[]` and once in each
/// `results[]` entry (a batch answers both: every error, and each event's own).
fn named_once(response: &Response) -> bool {
    let distinct = |errors: &Value| {
        let fields: Vec<&str> = errors
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str())
            .collect();
        fields.iter().collect::<HashSet<_>>().len() == fields.len()
    };
    distinct(&response.body["errors"])
        && response.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|result| distinct(&result["errors"]))
}

/// An attribute value with map members in key order, so two scans compare equal.
fn canonical(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(map) => {
            let sorted: BTreeMap<_, _> = map.iter().map(|(k, v)| (k, canonical(v))).collect();
            format!("{sorted:?}")
        }
        AttributeValue::L(items) => {
            format!("{:?}", items.iter().map(canonical).collect::<Vec<_>>())
        }
        other => format!("{other:?}"),
    }
}

/// Every item of every table of the deployment, canonical and sorted.
async fn snapshot(deployment: &Deployment) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let dynamodb = LocalStack::start_or_reuse().await?.dynamodb_client();
    let mut tables = BTreeMap::new();
    for table in deployment.resources.tables().values() {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            items.extend(
                page.items()
                    .iter()
                    .map(|item| canonical(&AttributeValue::M(item.clone()))),
            );
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        items.sort();
        tables.insert(table.clone(), items);
    }
    Ok(tables)
}

/// The keys of the deployment a hostile request is sent with.
struct Clients {
    crm: ApiClient,
    admin: ApiClient,
    shop: ApiClient,
}

async fn send(
    deployment: &Deployment,
    clients: &Clients,
    hostile: &Hostile,
) -> anyhow::Result<Response> {
    let client = match hostile.sender {
        Sender::Crm => &clients.crm,
        Sender::Admin => &clients.admin,
        Sender::Shop => &clients.shop,
        Sender::Rep => {
            let body: Value = serde_json::from_slice(&hostile.body)?;
            let (method, path) = (hostile.method, &hostile.path);
            return deployment
                .as_rep(crate::PROGRAM, "rep-anna", method, path, Some(&body))
                .await;
        }
    };
    let body = hostile.body.clone();
    client
        .send(hostile.method, &hostile.path, body, hostile.content_type)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_of_the_catalogue_gets_a_precise_4xx_and_writes_nothing()
-> anyhow::Result<()> {
    let Setup {
        deployment,
        crm,
        admin,
    } = setup("hostile", options(2, 0.0)).await?;
    let shop = deployment
        .create_key(
            "acme-shop",
            crate::PROGRAM,
            &["redemptions:write", "participants:read"],
        )
        .await?;
    // Something to aim at: an enrolled rep with points, a physical item, a quiz.
    assert_eq!(
        admin.enrol("rep-anna", &profile("rep-anna")).await?.status,
        201
    );
    let seeded = admin
        .adjust(
            "rep-anna",
            &json!({"id": "seed", "points": 10_000, "reason": "opening balance"}),
        )
        .await?;
    assert_eq!(seeded.status, 202, "{seeded:?}");
    let mug = json!({"title": "Mug", "points": 300, "fulfilment": "physical"});
    assert_eq!(
        admin.send_json("PUT", "/catalog/mug", mug).await?.status,
        200
    );
    assert_eq!(
        admin
            .send_json("PUT", "/quizzes/welcome", quiz(5))
            .await?
            .status,
        201
    );
    deployment.award.wait_idle(Duration::from_secs(60)).await?;

    let clients = Clients { crm, admin, shop };
    let catalogue = catalogue();
    let mut wrong = Vec::new();
    let mut before = snapshot(&deployment).await?;
    for hostile in &catalogue {
        let response = send(&deployment, &clients, hostile).await?;
        let fields = fields_named(&response);
        let named = hostile.fields.iter().all(|f| fields.iter().any(|n| n == f));
        let once = named_once(&response);
        let mut faults = Vec::new();
        if response.status != hostile.status
            || response.content_type != "application/problem+json"
            || !named
            || !once
        {
            faults.push(format!(
                "expected {} naming {:?}, got {} {} naming {fields:?}: {}",
                hostile.status,
                hostile.fields,
                response.status,
                response.content_type,
                response.body["detail"]
            ));
        }
        // The queue first: a message the award function has already taken and deleted was
        // written to the table before its delete, so the snapshot after sees it.
        let queued = deployment
            .queue_depth(deployment.resources.events_queue_url())
            .await?;
        if queued != 0 {
            faults.push(format!("queued {queued} message(s)"));
            deployment.award.wait_idle(Duration::from_secs(60)).await?;
        }
        let after = snapshot(&deployment).await?;
        if after != before {
            faults.push("wrote to the table".to_owned());
            before = after;
        }
        if !faults.is_empty() {
            wrong.push(format!("{}: {}", hostile.what, faults.join("; ")));
        }
    }
    println!(
        "hostile requests tried: {}, refused as expected: {}",
        catalogue.len(),
        catalogue.len() - wrong.len()
    );
    assert!(
        catalogue.len() >= 50,
        "the catalogue holds {} requests",
        catalogue.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} hostile requests were not refused cleanly:\n{}",
        wrong.len(),
        catalogue.len(),
        wrong.join("\n")
    );
    deployment.stop().await
}

/// A request captured on the wire, replayed later or with another body, is refused; replayed
/// within the window it re-posts the same event, which is awarded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_reused_signatures_are_refused_and_a_replay_in_the_window_awards_once()
-> anyhow::Result<()> {
    let Setup {
        deployment,
        crm,
        admin,
    } = setup("abuse", options(2, 0.0)).await?;
    assert_eq!(
        admin.enrol("rep-anna", &profile("rep-anna")).await?.status,
        201
    );
    let login = json!({"id": "abuse-1", "participant": "rep-anna", "type": "portal.login",
        "occurred_at": "2026-11-02T08:00:00+01:00"})
    .to_string()
    .into_bytes();
    let now = jiff::Timestamp::now().as_second();
    let captured = signed_headers(crm.key_id(), crm.secret(), now, &login, "application/json");

    // Replayed as captured, five times within the window: accepted, the same event each time.
    for _ in 0..5 {
        let r = crm
            .send_raw("POST", "/events", login.clone(), &captured)
            .await?;
        assert_eq!(r.status, 202, "{r:?}");
    }
    // A request captured just over the window ago, or stamped ahead of it (with a margin for
    // the time this request takes to arrive), or at either end of time: refused.
    let skewed = |skew: i64| jiff::Timestamp::now().as_second() + skew;
    for timestamp in [
        skewed(-TOLERANCE_SECS - 1),
        skewed(-3_600),
        skewed(TOLERANCE_SECS + 10),
        i64::MIN,
        i64::MAX,
    ] {
        let r = post_signed(&crm, crm.key_id(), crm.secret(), timestamp, &login).await?;
        assert_eq!(r.status, 401, "timestamp {timestamp}: {r:?}");
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("tolerance"),
            "{r:?}"
        );
    }
    // The captured signature on another body: another event, the same event with more
    // points, the same bytes with a trailing space.
    let other_event = String::from_utf8(login.clone())?.replace("abuse-1", "abuse-2");
    let more_points = String::from_utf8(login.clone())?.replace("portal.login", "deal.won");
    let mut trailing_space = login.clone();
    trailing_space.push(b' ');
    for body in [
        other_event.into_bytes(),
        more_points.into_bytes(),
        trailing_space,
    ] {
        let r = crm.send_raw("POST", "/events", body, &captured).await?;
        assert_eq!(r.status, 401, "{r:?}");
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("does not match"),
            "{r:?}"
        );
    }
    // The captured signature presented under another key id.
    let mut other_key = captured.clone();
    other_key[1].1 = admin.key_id().to_owned();
    let r = crm
        .send_raw("POST", "/events", login.clone(), &other_key)
        .await?;
    assert_eq!(r.status, 401, "{r:?}");

    deployment.award.wait_idle(Duration::from_secs(60)).await?;
    let state = deployment
        .store
        .participant(crate::PROGRAM, "rep-anna")
        .await?
        .expect("enrolled");
    let points: Value = serde_yaml_ng::from_str(PROGRAM_YAML)?;
    assert_eq!(
        Some(state.balance),
        points["points"]["portal.login"].as_i64(),
        "the login was awarded once and nothing else was"
    );
    deployment.stop().await
}
