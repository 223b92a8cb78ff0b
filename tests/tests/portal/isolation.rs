//! Tenant isolation: a key of one program gets 403 on every route of another program (every
//! route the code serves with a key), and nothing is written; a key of the program without
//! the route's permission gets 403 too; a rep's JWT acts only on its own program and
//! participant.

use crate::{PROGRAM, options, setup};
use carrot::http::Route;
use serde_json::json;

/// Every route a key may call: the admin, ingest and portal functions' route tables.
fn keyed_routes() -> Vec<Route> {
    let mut routes: Vec<Route> = admin::ROUTES.to_vec();
    routes.extend_from_slice(ingest::ROUTES);
    routes.extend(portal::routes());
    routes
}

/// `route`'s path for `program`, with a plausible value in every other parameter.
fn path_of(route: &Route, program: &str) -> (String, String) {
    let (method, pattern) = route.key.split_once(' ').expect("METHOD /path");
    let path = pattern
        .split('/')
        .map(|segment| match segment {
            "{program}" => program.to_owned(),
            "{participant}" => "rep-1".to_owned(),
            "{period}" => "2026-11".to_owned(),
            "{month}" => "2026-11".to_owned(),
            "{board}" => "monthly-top".to_owned(),
            "{drawing}" => "monthly-draw".to_owned(),
            "{list}" => "notices".to_owned(),
            s if s.starts_with('{') => "x-1".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/");
    (method.to_owned(), path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_program_gets_403_on_every_route_and_writes_nothing() -> anyhow::Result<()>
{
    let setup = setup("isolation", options(2, 0.0)).await?;
    let deployment = &setup.deployment;
    let everything = [
        "events:write",
        "participants:read",
        "redemptions:write",
        "admin",
    ];
    let intruder = deployment
        .create_key("intruder", "other-program", &everything)
        .await?;
    let dynamodb = carrot_local::stack::LocalStack::start_or_reuse()
        .await?
        .dynamodb_client();
    let before = deployment.item_count(&dynamodb).await?;
    let routes = keyed_routes();
    assert!(routes.len() >= 40, "{} routes", routes.len());
    for route in &routes {
        let (method, path) = path_of(route, PROGRAM);
        let body = json!({"id": "x-1", "points": 10}).to_string().into_bytes();
        // The intruder's client is rooted at its own program: address acme's path directly.
        let r = intruder
            .send_absolute(&method, &path, body, "application/json")
            .await?;
        assert_eq!(r.status, 403, "{} answered {r:?}", route.key);
        assert_eq!(r.content_type, "application/problem+json", "{}", route.key);
        assert_eq!(r.body["type"], "https://carrot.dev/problems/forbidden");
    }
    assert_eq!(
        deployment.item_count(&dynamodb).await?,
        before,
        "nothing written"
    );

    // A key of the program lacking the route's permission: 403 as well.
    for permission in everything {
        let narrow: Vec<&str> = everything
            .iter()
            .copied()
            .filter(|p| *p != permission)
            .collect();
        let key = deployment
            .create_key(
                &format!("without-{}", permission.replace(':', "-")),
                PROGRAM,
                &narrow,
            )
            .await?;
        for route in routes
            .iter()
            .filter(|r| r.permission.as_str() == permission)
        {
            let (method, path) = path_of(route, PROGRAM);
            let r = key
                .send_absolute(&method, &path, b"{}".to_vec(), "application/json")
                .await?;
            assert_eq!(r.status, 403, "{} without {permission}: {r:?}", route.key);
            assert!(
                r.body["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(permission),
                "{r:?}"
            );
        }
    }
    assert_eq!(
        deployment.item_count(&dynamodb).await?,
        before,
        "nothing written"
    );

    // A rep's token names its own program and participant: there is no path to forge.
    let own = deployment
        .as_rep(PROGRAM, "rep-1", "GET", "/v1/me/orders", None)
        .await?;
    assert_ne!(own.status, 401, "{own:?}");
    let unsigned = carrot_local::runner::http_request(
        "GET",
        &format!("{}/v1/me/orders", deployment.api.base_url()),
        &[],
        Vec::new(),
    )
    .await?;
    assert_eq!(unsigned.status, 401);
    setup.deployment.stop().await
}
