//! `docs/openapi.yaml` describes exactly the HTTP API the code serves: every route of the
//! functions' route tables is an operation of the file and a route of the template, served by
//! the function the code says, under the permission the code checks, and only the `/v1/me`
//! aliases take a rep's JWT. No local stack: these read the tables, the file and the template.

use carrot_local::template::Template;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];
/// The names the file gives the security schemes.
const SIGNATURE_SCHEMES: [&str; 3] = ["carrotKey", "carrotTimestamp", "carrotSignature"];
const JWT_SCHEME: &str = "portalJwt";
/// The template's JWT authorizer of the `/v1/me` routes.
const JWT_AUTHORIZER: &str = "PortalJwt";
const ME_PREFIX: &str = "/v1/me";

/// How a route's caller proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// A signed request by a key holding this permission.
    Key(&'static str),
    /// A rep's JWT, verified by API Gateway.
    Jwt,
    /// The unsubscribe link's token.
    Token,
}

#[derive(Debug, Clone, Copy)]
struct Served {
    function: &'static str,
    auth: Auth,
}

/// Every route key the code serves, the function serving it and how it is authenticated.
fn served() -> BTreeMap<String, Served> {
    let mut routes = BTreeMap::new();
    let mut add = |key: String, function: &'static str, auth: Auth| {
        let previous = routes.insert(key.clone(), Served { function, auth });
        assert!(
            previous.is_none(),
            "{key} is listed twice in the route tables"
        );
    };
    for route in admin::ROUTES {
        let auth = Auth::Key(route.permission.as_str());
        add(route.key.to_owned(), "AdminFunction", auth);
    }
    for key in admin::TOKEN_ROUTES {
        add((*key).to_owned(), "AdminFunction", Auth::Token);
    }
    for route in ingest::ROUTES {
        let auth = Auth::Key(route.permission.as_str());
        add(route.key.to_owned(), "IngestFunction", auth);
    }
    // `::portal`: the crate (`local_stack` also has a test module named `portal`).
    let keyed = ::portal::routes();
    for route in &keyed {
        let auth = Auth::Key(route.permission.as_str());
        add(route.key.to_owned(), "PortalFunction", auth);
    }
    // The rest of the portal's route keys are the aliases a rep's JWT calls.
    for key in ::portal::route_keys() {
        if !keyed.iter().any(|route| route.key == key) {
            add(key, "PortalFunction", Auth::Jwt);
        }
    }
    routes
}

fn is_me(key: &str) -> bool {
    key.split_once(' ')
        .is_some_and(|(_, path)| path == ME_PREFIX || path.starts_with(&format!("{ME_PREFIX}/")))
}

/// One operation of the OpenAPI file.
#[derive(Debug)]
struct Operation {
    permission: Option<String>,
    /// The security requirements in force: the operation's, else the document's. Each
    /// requirement is the set of schemes that must all be satisfied.
    security: Vec<BTreeSet<String>>,
    /// Status code → the media types of its content (references resolved).
    responses: BTreeMap<String, BTreeSet<String>>,
}

fn openapi() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not YAML: {e}"))
}

/// A local `$ref` (`#/components/responses/NotFound`) resolved in `doc`, else `value` itself.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
        return value;
    };
    let target = reference
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("{reference} is not a reference into the file"))
        .split('/')
        .try_fold(doc, |node, name| node.get(name))
        .unwrap_or_else(|| panic!("{reference} names nothing in the file"));
    resolve(doc, target)
}

fn security(requirements: &Value) -> Vec<BTreeSet<String>> {
    let list = requirements.as_sequence().expect("security is a list");
    list.iter()
        .map(|requirement| {
            let schemes = requirement
                .as_mapping()
                .expect("a security requirement is a map");
            schemes
                .keys()
                .map(|k| k.as_str().expect("scheme names are strings").to_owned())
                .collect()
        })
        .collect()
}

/// Every operation of the file by route key (`GET /v1/programs/{program}/catalog`).
fn operations(doc: &Value) -> BTreeMap<String, Operation> {
    let default_security = doc.get("security").map(security).unwrap_or_default();
    let paths = doc
        .get("paths")
        .and_then(Value::as_mapping)
        .expect("the file has paths");
    let mut operations = BTreeMap::new();
    for (path, item) in paths {
        let path = path.as_str().expect("paths are strings");
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let responses = operation
                .get("responses")
                .and_then(Value::as_mapping)
                .map(|responses| {
                    responses
                        .iter()
                        .map(|(status, response)| {
                            let status = match status {
                                Value::Number(n) => n.to_string(),
                                other => other.as_str().expect("status codes").to_owned(),
                            };
                            let types = resolve(doc, response)
                                .get("content")
                                .and_then(Value::as_mapping)
                                .map(|content| {
                                    content
                                        .keys()
                                        .filter_map(|k| k.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default();
                            (status, types)
                        })
                        .collect()
                })
                .unwrap_or_default();
            operations.insert(
                format!("{} {path}", method.to_uppercase()),
                Operation {
                    permission: operation
                        .get("x-carrot-permission")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    security: operation
                        .get("security")
                        .map(security)
                        .unwrap_or_else(|| default_security.clone()),
                    responses,
                },
            );
        }
    }
    operations
}

/// Fails listing every line of `problems` under `what`.
fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} disagreement(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn every_served_route_is_in_the_openapi_file_and_every_operation_is_served() {
    let served = served();
    let operations = operations(&openapi());
    let mut problems = Vec::new();
    for key in served.keys().filter(|k| !operations.contains_key(*k)) {
        problems.push(format!(
            "{key}: served by the code, missing in docs/openapi.yaml"
        ));
    }
    for key in operations.keys().filter(|k| !served.contains_key(*k)) {
        problems.push(format!(
            "{key}: in docs/openapi.yaml, served by no route table"
        ));
    }
    report("the code's routes against docs/openapi.yaml", &problems);
}

#[test]
fn the_template_routes_each_served_route_to_the_function_that_serves_it() {
    let served = served();
    let template = Template::load().expect("infra/template.yaml");
    let mut routes = BTreeMap::new();
    let mut problems = Vec::new();
    for route in template.routes() {
        if let Some(other) = routes.insert(route.route_key(), route) {
            problems.push(format!(
                "{}: routed twice in infra/template.yaml ({} and {})",
                route.route_key(),
                other.function,
                route.function
            ));
        }
    }
    for (key, served) in &served {
        match routes.get(key) {
            None => problems.push(format!(
                "{key}: served by {} in the code, missing in infra/template.yaml",
                served.function
            )),
            Some(route) if route.function != served.function => problems.push(format!(
                "{key}: served by {} in the code, routed to {} in infra/template.yaml",
                served.function, route.function
            )),
            Some(_) => {}
        }
    }
    for (key, route) in routes.iter().filter(|(k, _)| !served.contains_key(*k)) {
        problems.push(format!(
            "{key}: routed to {} in infra/template.yaml, served by no route table",
            route.function
        ));
    }
    report("the code's routes against infra/template.yaml", &problems);
}

#[test]
fn each_operation_names_the_permission_the_code_checks() {
    let served = served();
    let operations = operations(&openapi());
    let mut problems = Vec::new();
    for (key, served) in &served {
        let Some(operation) = operations.get(key) else {
            continue; // reported by the file's own test
        };
        let documented = operation.permission.as_deref();
        let checked = match served.auth {
            Auth::Key(permission) => Some(permission),
            Auth::Jwt | Auth::Token => None,
        };
        if documented != checked {
            problems.push(format!(
                "{key}: the code checks the permission {}, docs/openapi.yaml says \
                 x-carrot-permission {}",
                checked.unwrap_or("none"),
                documented.unwrap_or("none")
            ));
        }
    }
    report("x-carrot-permission against the code", &problems);
}

#[test]
fn only_the_me_routes_take_a_jwt_and_every_other_route_a_signature() {
    let served = served();
    let operations = operations(&openapi());
    let template = Template::load().expect("infra/template.yaml");
    let signature: BTreeSet<String> = SIGNATURE_SCHEMES.iter().map(|s| s.to_string()).collect();
    let jwt: BTreeSet<String> = [JWT_SCHEME.to_owned()].into();
    let mut problems = Vec::new();
    for (key, operation) in &operations {
        let Some(served) = served.get(key) else {
            continue; // reported by the file's own test
        };
        let expected = match served.auth {
            Auth::Key(_) => vec![signature.clone()],
            Auth::Jwt => vec![jwt.clone()],
            Auth::Token => Vec::new(),
        };
        if operation.security != expected {
            problems.push(format!(
                "{key}: docs/openapi.yaml requires {:?}, expected {expected:?}",
                operation.security
            ));
        }
    }
    for (key, served) in &served {
        if (served.auth == Auth::Jwt) != is_me(key) {
            problems.push(format!(
                "{key}: the code serves it {} a JWT, but only /v1/me routes take one",
                if served.auth == Auth::Jwt {
                    "with"
                } else {
                    "without"
                }
            ));
        }
    }
    for route in template.routes() {
        let key = route.route_key();
        let authorizer = route.authorizer.as_deref();
        let expected = is_me(&key).then_some(JWT_AUTHORIZER);
        if authorizer != expected {
            problems.push(format!(
                "{key}: infra/template.yaml names the authorizer {authorizer:?}, expected \
                 {expected:?}"
            ));
        }
    }
    report("authentication of the routes", &problems);
}

#[test]
fn every_error_response_is_a_problem() {
    let operations = operations(&openapi());
    let served = served();
    let problem: BTreeSet<String> = ["application/problem+json".to_owned()].into();
    let mut problems = Vec::new();
    for (key, operation) in &operations {
        if !operation.responses.keys().any(|s| s.starts_with('2')) {
            problems.push(format!("{key}: no 2xx response"));
        }
        // The unsubscribe link answers a person: its refusals are pages.
        let page = served
            .get(key)
            .is_some_and(|served| served.auth == Auth::Token);
        for (status, types) in &operation.responses {
            let error = status.starts_with('4') || status.starts_with('5');
            let html = page && types.iter().all(|t| t.starts_with("text/html"));
            if error && *types != problem && !html {
                problems.push(format!(
                    "{key}: {status} answers {types:?}, not application/problem+json"
                ));
            }
        }
    }
    report("error responses", &problems);
}

/// Every `$ref` of `value`, depth first.
fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), value.as_str()) {
                    (Some("$ref"), Some(reference)) => found.push(reference),
                    _ => references(value, found),
                }
            }
        }
        Value::Sequence(list) => list.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

/// The validator does not follow references into other files: this does, into the JSON
/// Schemas next to the file.
#[test]
fn every_reference_in_the_openapi_file_resolves() {
    let doc = openapi();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut found = Vec::new();
    references(&doc, &mut found);
    let mut problems = Vec::new();
    for reference in found.into_iter().collect::<BTreeSet<_>>() {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let target = if file.is_empty() {
            doc.clone()
        } else {
            match std::fs::read_to_string(docs.join(file)) {
                // JSON is YAML: one parser reads both.
                Ok(text) => serde_yaml_ng::from_str(&text).expect("the schema parses"),
                Err(e) => {
                    problems.push(format!("{reference}: {file} cannot be read: {e}"));
                    continue;
                }
            }
        };
        let resolved = pointer
            .split('/')
            .filter(|segment| !segment.is_empty())
            .try_fold(&target, |node, segment| {
                node.get(segment.replace("~1", "/").replace("~0", "~"))
            });
        if resolved.is_none() {
            problems.push(format!("{reference}: names nothing"));
        }
    }
    report("references in docs/openapi.yaml", &problems);
}
