//! HTTP edge shared by the API functions: request signature authentication, request bodies,
//! and RFC 9457 problem responses that name the field at fault.

use crate::domain::error::FieldError;
use crate::domain::signature::{self, SignatureError};
use crate::ports::{KeyStore, PortError};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;
use base64::Engine;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

pub const KEY_HEADER: &str = "x-carrot-key";
pub const TIMESTAMP_HEADER: &str = "x-carrot-timestamp";
pub const SIGNATURE_HEADER: &str = "x-carrot-signature";
const PROBLEM_BASE: &str = "https://carrot.dev/problems/";

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, and the fields at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub status: u16,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Extra members (for example the per-event results of a batch).
    pub extra: Option<Box<(&'static str, Value)>>,
}

impl Problem {
    pub fn new(
        status: u16,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            extra: None,
        }
    }

    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(400, "invalid-request", "The request is not valid", detail)
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            401,
            "unauthorized",
            "The request is not authenticated",
            detail,
        )
    }

    pub fn unavailable(error: &PortError) -> Self {
        tracing::warn!(%error, "dependency unavailable");
        Self::new(
            503,
            "unavailable",
            "Temporarily unavailable",
            "a dependency did not answer; retry with the same request, it is idempotent",
        )
    }

    pub fn with(mut self, name: &'static str, value: Value) -> Self {
        self.extra = Some(Box::new((name, value)));
        self
    }

    pub fn into_response(self) -> ApiGatewayV2httpResponse {
        let mut body = json!({
            "type": format!("{PROBLEM_BASE}{}", self.kind),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        if let Some(extra) = self.extra {
            let (name, value) = *extra;
            body[name] = value;
        }
        respond(self.status, "application/problem+json", body.to_string())
    }
}

pub fn json_response(status: u16, body: &impl Serialize) -> ApiGatewayV2httpResponse {
    let text = serde_json::to_string(body).expect("response bodies serialize");
    respond(status, "application/json", text)
}

/// A page for people (the HTML report).
pub fn html_response(status: u16, page: String) -> ApiGatewayV2httpResponse {
    respond(status, "text/html; charset=utf-8", page)
}

fn respond(status: u16, content_type: &'static str, body: String) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status.into();
    response.body = Some(Body::Text(body));
    response
        .headers
        .insert("content-type", HeaderValue::from_static(content_type));
    response
}

/// A path parameter of the request, empty when its route has none of that name.
pub fn path_parameter<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> &'a str {
    request
        .path_parameters
        .get(name)
        .map(String::as_str)
        .unwrap_or_default()
}

/// The answer to a route key a function does not serve.
pub fn no_route(route_key: &str) -> Problem {
    Problem::new(
        404,
        "not-found",
        "No such route",
        format!("{route_key:?} is not served here"),
    )
}

pub fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The raw request body; API Gateway base64-encodes bodies it considers binary.
pub fn body_bytes(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, Problem> {
    let body = request.body.as_deref().unwrap_or_default();
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| Problem::invalid("the body is not valid base64", Vec::new()))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// The headers of a signed request as a client sends them (content type, key, timestamp,
/// signature): the CLI and the test clients sign with this, the functions verify.
pub fn signed_headers(
    key_id: &str,
    secret: &str,
    timestamp: i64,
    body: &[u8],
    content_type: &str,
) -> [(&'static str, String); 4] {
    let timestamp = timestamp.to_string();
    let signature = signature::sign(secret.as_bytes(), &timestamp, body);
    [
        ("content-type", content_type.to_owned()),
        (KEY_HEADER, key_id.to_owned()),
        (TIMESTAMP_HEADER, timestamp),
        (SIGNATURE_HEADER, signature),
    ]
}

/// What a key may do. A key holds a set of these; none includes another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Post activity: events, quiz attempts, lead tips.
    EventsWrite,
    /// Read what a portal shows reps: statements, ledgers, leaderboards, the catalog.
    ParticipantsRead,
    /// Spend a participant's points: orders, cancellations, transfers, spins.
    RedemptionsWrite,
    /// Run the program: configuration, enrolment, closes, catalog and quiz definitions.
    Admin,
}

impl Permission {
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::EventsWrite => "events:write",
            Permission::ParticipantsRead => "participants:read",
            Permission::RedemptionsWrite => "redemptions:write",
            Permission::Admin => "admin",
        }
    }
}

/// A route a function serves (`"GET /v1/programs/{program}/…"`, as API Gateway names it) and
/// the permission a key needs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub key: &'static str,
    pub permission: Permission,
}

/// The claims a portal's identity provider puts in a rep's JWT: the program and the
/// participant the token speaks for. API Gateway's JWT authorizer has verified the token.
pub const JWT_PROGRAM_CLAIM: &str = "carrot_program";
pub const JWT_PARTICIPANT_CLAIM: &str = "carrot_participant";

/// A rep signed in to a portal that calls Carrot directly (`/v1/me/…` routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rep {
    pub program: String,
    pub participant: String,
    /// The token's subject, for audit fields.
    pub subject: String,
}

/// The rep a verified JWT speaks for, from the claims API Gateway's authorizer passed on.
pub fn jwt_rep(request: &ApiGatewayV2httpRequest) -> Result<Rep, Problem> {
    let claims = request
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .ok_or_else(|| Problem::unauthorized("a bearer token is required"))?;
    let claim = |name: &str| {
        claims
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| Problem::unauthorized(format!("the token has no {name:?} claim")))
    };
    Ok(Rep {
        program: claim(JWT_PROGRAM_CLAIM)?,
        participant: claim(JWT_PARTICIPANT_CLAIM)?,
        subject: claim("sub")?,
    })
}

/// The body as a JSON object, or a 400 naming what is wrong with it.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Problem> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Problem::invalid(
            "the body must be a JSON object",
            vec![FieldError::new(
                "$",
                format!(
                    "must be an object, got {}",
                    crate::domain::money::json_kind(&other)
                ),
            )],
        )),
        Err(e) => Err(Problem::invalid(
            "the body is not valid JSON",
            vec![FieldError::new("$", e.to_string())],
        )),
    }
}

/// Who signed a request: the key, its program, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub program: String,
}

/// Verifies the request signature against the key's active secrets, that the key holds
/// `permission`, and that the program the path names is the key's. Nothing is written before
/// this passes.
pub async fn authenticate<K: KeyStore>(
    keys: &K,
    request: &ApiGatewayV2httpRequest,
    body: &[u8],
    now: Timestamp,
    permission: Permission,
) -> Result<Caller, Problem> {
    let scope = permission.as_str();
    let missing = |name: &str| Problem::unauthorized(format!("the {name} header is required"));
    let key_id = header(request, KEY_HEADER).ok_or_else(|| missing("X-Carrot-Key"))?;
    let timestamp =
        header(request, TIMESTAMP_HEADER).ok_or_else(|| missing("X-Carrot-Timestamp"))?;
    let signature =
        header(request, SIGNATURE_HEADER).ok_or_else(|| missing("X-Carrot-Signature"))?;
    // The timestamp is checked before any key lookup, so stale replays cost nothing.
    signature::check_timestamp(timestamp, now)
        .map_err(|error| Problem::unauthorized(error.to_string()))?;
    let valid_key_id = key_id.len() <= 128
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let mismatch =
        || Problem::unauthorized(format!("{} for key {key_id:?}", SignatureError::Mismatch));
    if !valid_key_id {
        return Err(mismatch());
    }
    let key = keys
        .key(key_id)
        .await
        .map_err(|e| Problem::unavailable(&e))?
        .ok_or_else(mismatch)?;
    signature::verify(&key.secrets, timestamp, signature, body, now).map_err(
        |error| match error {
            SignatureError::Mismatch => mismatch(),
            other => Problem::unauthorized(other.to_string()),
        },
    )?;
    if !key.scopes.iter().any(|s| s == scope) {
        return Err(Problem::new(
            403,
            "forbidden",
            "The key may not do this",
            format!("key {key_id:?} lacks the {scope:?} permission"),
        ));
    }
    if let Some(program) = request.path_parameters.get("program")
        && *program != key.program
    {
        return Err(Problem::new(
            403,
            "forbidden",
            "The key may not do this",
            format!("key {key_id:?} belongs to another program than {program:?}"),
        ));
    }
    Ok(Caller {
        key_id: key_id.to_owned(),
        program: key.program.clone(),
    })
}
