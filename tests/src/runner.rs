//! The local runner: plays API Gateway (HTTP API, payload format 2.0) and the Lambda SQS event
//! source for the real handlers, which run in-process.
//!
//! - [`HttpApiServer`]: HTTP/1.1 on `127.0.0.1`, routes from the template, each request turned
//!   into an `ApiGatewayV2httpRequest` the way API Gateway builds it, the handler's
//!   `ApiGatewayV2httpResponse` turned back into HTTP.
//! - [`SqsEventSource`]: pollers that receive batches, invoke the handler with an `SqsEvent`
//!   like Lambda's, and delete only the records not reported in `batchItemFailures`; a panic,
//!   a timeout or an invalid response fails the whole batch. Failed messages come back after
//!   the visibility timeout and the queue's redrive policy moves them to the dead-letter queue
//!   (moto implements redrive).

use base64::Engine;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::task::{JoinHandle, JoinSet};

use crate::stack::{ACCOUNT_ID, REGION, Resources};
use crate::template::{HttpRoute, Template, match_route};

pub type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;
pub type HttpHandler =
    Arc<dyn Fn(ApiGatewayV2httpRequest) -> BoxFut<ApiGatewayV2httpResponse> + Send + Sync>;
pub type SqsHandler = Arc<dyn Fn(SqsEvent) -> BoxFut<SqsBatchResponse> + Send + Sync>;

/// Wraps an async closure as an [`HttpHandler`].
pub fn http_handler<F, Fut>(f: F) -> HttpHandler
where
    F: Fn(ApiGatewayV2httpRequest) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ApiGatewayV2httpResponse> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// Wraps an async closure as an [`SqsHandler`].
pub fn sqs_handler<F, Fut>(f: F) -> SqsHandler
where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = SqsBatchResponse> + Send + 'static,
{
    Arc::new(move |ev| Box::pin(f(ev)))
}

/// API Gateway HTTP APIs refuse request bodies over 10 MB.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;

// ============================================================================ HTTP API

/// A local HTTP API in front of in-process handlers. Stops when dropped.
pub struct HttpApiServer {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

struct HttpState {
    routes: Vec<HttpRoute>,
    handlers: HashMap<String, HttpHandler>,
    port: u16,
}

impl HttpApiServer {
    /// Serves `routes` on a free port of 127.0.0.1, calling `handlers[route.function]`.
    /// Every handler must belong to a route's function; a route whose function has no handler
    /// answers 500. The server runs on the current tokio runtime.
    pub async fn start(
        routes: &[HttpRoute],
        handlers: HashMap<String, HttpHandler>,
    ) -> anyhow::Result<HttpApiServer> {
        for f in handlers.keys() {
            if !routes.iter().any(|r| &r.function == f) {
                bail!("a handler is given for {f}, which serves no route of the template");
            }
        }
        let std_listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .context("HttpApiServer::start must run inside a tokio runtime")?;
        let state = Arc::new(HttpState {
            routes: routes.to_vec(),
            handlers,
            port: addr.port(),
        });
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let (stream, peer) = match accepted {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        };
                        let state = state.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| {
                                let state = state.clone();
                                async move { Ok::<_, Infallible>(handle_http(state, req, peer).await) }
                            });
                            if let Err(e) = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await
                            {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(HttpApiServer {
            addr,
            task: Some(task),
        })
    }

    /// Serves every HTTP route of `template`.
    pub async fn start_from_template(
        template: &Template,
        handlers: HashMap<String, HttpHandler>,
    ) -> anyhow::Result<HttpApiServer> {
        Self::start(&template.http_routes, handlers).await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and drops open connections (as dropping it does).
    pub fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Sends one request to this server (a small HTTP/1.1 client for tests and the demo).
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> anyhow::Result<HttpResponse> {
        http_request(
            method,
            &format!("{}{}", self.base_url(), path_and_query),
            headers,
            body,
        )
        .await
    }
}

impl Drop for HttpApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A response read by [`http_request`].
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response body is not JSON: {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one HTTP/1.1 request to a loopback URL and reads the whole response.
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> anyhow::Result<HttpResponse> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
    match uri.host() {
        Some("127.0.0.1") | Some("localhost") => {}
        other => bail!("refusing a request to {other:?}: the local runner talks to loopback only"),
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.into())))?;
    let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .map_err(|_| anyhow!("no response from {url} within 60 s"))??;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn json_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "message": message }).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle_http(
    state: Arc<HttpState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let request_id = random_id();
    let mut resp = handle_http_inner(&state, req, peer, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("apigw-requestid", v);
    }
    resp
}

async fn handle_http_inner(
    state: &HttpState,
    req: Request<Incoming>,
    peer: SocketAddr,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let raw_path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();

    let Some((route, path_params)) = match_route(&state.routes, &method, &raw_path) else {
        return json_response(StatusCode::NOT_FOUND, "Not Found");
    };

    let declared_too_large = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_REQUEST_BODY as u64);
    let (parts, body) = req.into_parts();
    let body = match read_body(body, declared_too_large).await {
        BodyRead::Complete(b) => b,
        BodyRead::TooLarge => {
            return json_response(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
        }
        BodyRead::Failed => return json_response(StatusCode::BAD_REQUEST, "Bad Request"),
    };

    let Some(handler) = state.handlers.get(&route.function).cloned() else {
        tracing::warn!(function = %route.function, route = %route.route_key(), "no handler for the route's function");
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };

    // Stands in for API Gateway's JWT authorizer: a route that names one needs a valid token.
    let claims = match &route.authorizer {
        None => None,
        Some(_) => match parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(verify_local_jwt)
        {
            Some(claims) => Some(claims),
            None => return json_response(StatusCode::UNAUTHORIZED, "Unauthorized"),
        },
    };
    let event = match build_apigw_request(
        route,
        path_params,
        claims,
        &parts,
        &raw_path,
        &raw_query,
        &body,
        peer,
        state.port,
        request_id,
    ) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "building the API Gateway event");
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };

    // Run the handler as its own task so that a panic is an invocation error (API Gateway
    // answers 500), not a dropped connection.
    let out = tokio::spawn(handler(event)).await;
    match out {
        Ok(resp) => match to_http_response(resp) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(function = %route.function, error = %format!("{e:#}"), "invalid handler response");
                json_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
        Err(e) => {
            tracing::error!(function = %route.function, error = %e, "handler panicked");
            json_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

enum BodyRead {
    Complete(Bytes),
    TooLarge,
    Failed,
}

/// Reads a request body of at most [`MAX_REQUEST_BODY`] bytes. A larger one is read on and
/// discarded (up to a bound) before the 413 goes out, so that the client, still sending, sees
/// the answer rather than a reset connection.
async fn read_body(mut body: Incoming, mut too_large: bool) -> BodyRead {
    const DRAIN_LIMIT: usize = 8 * MAX_REQUEST_BODY;
    let read = async {
        let mut buf: Vec<u8> = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return if too_large {
                    BodyRead::TooLarge
                } else {
                    BodyRead::Failed
                };
            };
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > MAX_REQUEST_BODY {
                    too_large = true;
                    buf = Vec::new();
                }
                if too_large {
                    if seen > DRAIN_LIMIT {
                        break;
                    }
                } else {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if too_large {
            BodyRead::TooLarge
        } else {
            BodyRead::Complete(Bytes::from(buf))
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or(if too_large {
            BodyRead::TooLarge
        } else {
            BodyRead::Failed
        })
}

/// The key the local runner signs and verifies rep JWTs with (HS256). API Gateway verifies
/// the identity provider's RS256 tokens against its published keys; locally, tests mint
/// tokens with [`local_jwt`] and the runner checks them the same way: signature, then expiry.
const LOCAL_JWT_KEY: &[u8] = b"carrot local runner: rep tokens, loopback only";

/// A rep JWT the local runner accepts: `claims` (an object; `exp` in Unix seconds) signed
/// with the runner's key.
pub fn local_jwt(claims: &Value) -> String {
    use hmac::Mac;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = url.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = url.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let signature = url.encode(jwt_mac(&signing_input).finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn jwt_mac(signing_input: &str) -> hmac::Hmac<sha2::Sha256> {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(LOCAL_JWT_KEY).expect("any key length");
    mac.update(signing_input.as_bytes());
    mac
}

/// The claims of a token signed with the runner's key and not expired, as strings (API
/// Gateway passes every claim as a string).
fn verify_local_jwt(token: &str) -> Option<BTreeMap<String, String>> {
    use hmac::Mac;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (_, payload) = signing_input.split_once('.')?;
    jwt_mac(signing_input)
        .verify_slice(&url.decode(signature).ok()?)
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&url.decode(payload).ok()?).ok()?;
    let exp = claims.get("exp").and_then(Value::as_i64)?;
    if exp <= jiff::Timestamp::now().as_second() {
        return None;
    }
    Some(
        claims
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(s) => (name, s),
                other => (name, other.to_string()),
            })
            .collect(),
    )
}

#[allow(clippy::too_many_arguments)]
fn build_apigw_request(
    route: &HttpRoute,
    path_params: BTreeMap<String, String>,
    claims: Option<BTreeMap<String, String>>,
    parts: &hyper::http::request::Parts,
    raw_path: &str,
    raw_query: &str,
    body: &[u8],
    peer: SocketAddr,
    port: u16,
    request_id: &str,
) -> anyhow::Result<ApiGatewayV2httpRequest> {
    // Headers: lower-case names (hyper's already are), repeated headers joined with commas,
    // cookies moved to `cookies`, as API Gateway does.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == hyper::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let source_ip = peer.ip().to_string();
    headers
        .entry("x-forwarded-for".into())
        .or_insert_with(|| source_ip.clone());
    headers.insert("x-forwarded-port".into(), port.to_string());
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert(
        "x-amzn-trace-id".into(),
        format!(
            "Root=1-{:08x}-{}",
            jiff::Timestamp::now().as_second(),
            &random_id()[..24]
        ),
    );

    // Query string: percent-decoded, repeated keys joined with commas.
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = form_decode(k);
        let v = form_decode(v);
        query
            .entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }

    let now = jiff::Timestamp::now();
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| format!("127.0.0.1:{port}"));
    let domain_prefix = host.split('.').next().unwrap_or("").to_string();
    let route_key = route.route_key();

    let mut ev = Map::new();
    ev.insert("version".into(), json!("2.0"));
    ev.insert("routeKey".into(), json!(route_key));
    ev.insert("rawPath".into(), json!(raw_path));
    ev.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        ev.insert("cookies".into(), json!(cookies));
    }
    ev.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        ev.insert("queryStringParameters".into(), json!(query));
    }
    if !path_params.is_empty() {
        ev.insert("pathParameters".into(), json!(path_params));
    }
    ev.insert(
        "requestContext".into(),
        json!({
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": host,
            "domainPrefix": domain_prefix,
            "http": {
                "method": parts.method.as_str(),
                "path": raw_path,
                "protocol": format!("{:?}", parts.version),
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.as_millisecond(),
        }),
    );
    if let Some(claims) = claims {
        ev["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(s) => {
                ev.insert("body".into(), json!(s));
                ev.insert("isBase64Encoded".into(), json!(false));
            }
            Err(_) => {
                ev.insert("body".into(), json!(base64_encode(body)));
                ev.insert("isBase64Encoded".into(), json!(true));
            }
        }
    } else {
        ev.insert("isBase64Encoded".into(), json!(false));
    }
    serde_json::from_value(Value::Object(ev)).context("ApiGatewayV2httpRequest from JSON")
}

fn to_http_response(r: ApiGatewayV2httpResponse) -> anyhow::Result<Response<Full<Bytes>>> {
    let status = u16::try_from(r.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| s.as_u16() >= 100)
        .ok_or_else(|| anyhow!("invalid statusCode {}", r.status_code))?;
    let body: Vec<u8> = match r.body {
        None | Some(Body::Empty) => Vec::new(),
        Some(Body::Text(t)) if r.is_base64_encoded => base64_decode(&t)
            .ok_or_else(|| anyhow!("isBase64Encoded but the body is not base64"))?,
        Some(Body::Text(t)) => t.into_bytes(),
        Some(Body::Binary(b)) => b,
        // `Body` is non-exhaustive.
        #[allow(unreachable_patterns)]
        Some(_) => bail!("unsupported body kind"),
    };
    let body_is_empty = body.is_empty();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (name, value) in &r.headers {
        h.insert(name.clone(), value.clone());
    }
    for (name, value) in &r.multi_value_headers {
        h.append(name.clone(), value.clone());
    }
    for c in &r.cookies {
        h.append(
            hyper::header::SET_COOKIE,
            HeaderValue::from_str(c).context("cookie is not a valid header value")?,
        );
    }
    if !body_is_empty && !h.contains_key(hyper::header::CONTENT_TYPE) {
        // API Gateway answers JSON when the function names no content type.
        h.insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(resp)
}

/// Decodes an `application/x-www-form-urlencoded` component (`+` is a space).
fn form_decode(s: &str) -> String {
    crate::template::percent_decode(&s.replace('+', " "))
}

fn random_id() -> String {
    let a: u128 = rand::random();
    format!("{a:032x}")
}

fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

// ============================================================================ SQS source

/// How an [`SqsEventSource`] polls and what faults it injects.
#[derive(Clone, Debug)]
pub struct SqsEventSourceOptions {
    /// Pollers running at once (each invokes the handler with its own batches). Default 2.
    pub concurrency: usize,
    /// Messages per batch, at most 10. `None`: 10 (or the template's `BatchSize`).
    pub batch_size: Option<u32>,
    /// `VisibilityTimeout` of each ReceiveMessage. `None`: the queue's own (created from the
    /// template's `VisibilityTimeout`). Tests pass a short one, e.g. 2.
    pub visibility_timeout_secs: Option<u32>,
    /// Long-poll wait of each ReceiveMessage. Default 1.
    pub wait_time_secs: u32,
    /// Honour `batchItemFailures` (the template's `ReportBatchItemFailures`). `None`: true.
    /// When false, any successful invocation deletes the whole batch, as Lambda does.
    pub report_batch_item_failures: Option<bool>,
    /// An invocation running longer fails (the whole batch is retried), like a Lambda timeout.
    pub handler_timeout: Option<Duration>,
    /// Fault injection: this fraction (0.0..=1.0) of the messages a batch handled successfully
    /// on their first delivery is not deleted, so SQS delivers them again (a crash after
    /// processing). Redeliveries are deleted, so the fault never pushes a message to the DLQ.
    pub skip_delete_ratio: f64,
    /// `awsRegion` of the records.
    pub aws_region: String,
}

impl Default for SqsEventSourceOptions {
    fn default() -> Self {
        SqsEventSourceOptions {
            concurrency: 2,
            batch_size: None,
            visibility_timeout_secs: None,
            wait_time_secs: 1,
            report_batch_item_failures: None,
            handler_timeout: None,
            skip_delete_ratio: 0.0,
            aws_region: REGION.to_string(),
        }
    }
}

/// Counters of an [`SqsEventSource`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqsEventSourceStats {
    /// Messages received (each delivery counts).
    pub received: u64,
    /// Handler invocations (one per non-empty batch).
    pub invocations: u64,
    /// Messages deleted after a successful invocation.
    pub deleted: u64,
    /// Items reported in `batchItemFailures` (left for redelivery).
    pub failures_reported: u64,
    /// Successful messages left undeleted by `skip_delete_ratio`.
    pub skipped_deletes: u64,
    /// Invocations that failed whole: panic, timeout, or an invalid `batchItemFailures` entry.
    pub failed_invocations: u64,
    /// ReceiveMessage / DeleteMessageBatch calls that failed.
    pub sqs_errors: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    invocations: AtomicU64,
    deleted: AtomicU64,
    failures_reported: AtomicU64,
    skipped_deletes: AtomicU64,
    failed_invocations: AtomicU64,
    sqs_errors: AtomicU64,
    in_flight: AtomicUsize,
}

struct Poller {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    handler: SqsHandler,
    batch_size: i32,
    visibility_timeout: Option<i32>,
    wait_time: i32,
    report_failures: bool,
    handler_timeout: Option<Duration>,
    skip_delete_ratio: f64,
    aws_region: String,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

/// Plays Lambda's SQS event source mapping for one queue and one in-process handler.
pub struct SqsEventSource {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    pollers: Vec<JoinHandle<()>>,
}

impl SqsEventSource {
    /// Starts `options.concurrency` pollers on the current tokio runtime.
    pub fn start(
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        queue_arn: impl Into<String>,
        handler: SqsHandler,
        options: SqsEventSourceOptions,
    ) -> SqsEventSource {
        let queue_url = queue_url.into();
        let queue_arn = queue_arn.into();
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let batch_size = options.batch_size.unwrap_or(10).clamp(1, 10) as i32;
        let pollers = (0..options.concurrency.max(1))
            .map(|_| {
                let p = Poller {
                    sqs: sqs.clone(),
                    queue_url: queue_url.clone(),
                    queue_arn: queue_arn.clone(),
                    handler: handler.clone(),
                    batch_size,
                    visibility_timeout: options.visibility_timeout_secs.map(|v| v as i32),
                    wait_time: options.wait_time_secs.min(20) as i32,
                    report_failures: options.report_batch_item_failures.unwrap_or(true),
                    handler_timeout: options.handler_timeout,
                    skip_delete_ratio: options.skip_delete_ratio.clamp(0.0, 1.0),
                    aws_region: options.aws_region.clone(),
                    counters: counters.clone(),
                    stop: stop.clone(),
                };
                tokio::spawn(p.run())
            })
            .collect();
        SqsEventSource {
            sqs,
            queue_url,
            counters,
            stop,
            pollers,
        }
    }

    /// Starts the event source of `function` as the template declares it (queue, batch size,
    /// ReportBatchItemFailures; the function's Timeout as handler timeout), on the queue
    /// created in `resources`. Fields set in `options` win over the template's.
    pub fn start_for_function(
        sqs: aws_sdk_sqs::Client,
        resources: &Resources,
        function: &str,
        handler: SqsHandler,
        mut options: SqsEventSourceOptions,
    ) -> anyhow::Result<SqsEventSource> {
        let template = resources.template();
        let src = template
            .sqs_source_of(function)
            .ok_or_else(|| anyhow!("the template gives {function} no SQS event"))?;
        let queue = resources
            .queue(&src.queue)
            .ok_or_else(|| anyhow!("queue {} was not provisioned", src.queue))?;
        options.batch_size.get_or_insert(src.batch_size);
        options
            .report_batch_item_failures
            .get_or_insert(src.report_batch_item_failures);
        if options.handler_timeout.is_none() {
            options.handler_timeout = template
                .function(function)
                .and_then(|f| f.timeout_secs)
                .map(|s| Duration::from_secs(u64::from(s)));
        }
        Ok(Self::start(
            sqs,
            queue.url.clone(),
            queue.arn.clone(),
            handler,
            options,
        ))
    }

    pub fn stats(&self) -> SqsEventSourceStats {
        let c = &self.counters;
        SqsEventSourceStats {
            received: c.received.load(Ordering::SeqCst),
            invocations: c.invocations.load(Ordering::SeqCst),
            deleted: c.deleted.load(Ordering::SeqCst),
            failures_reported: c.failures_reported.load(Ordering::SeqCst),
            skipped_deletes: c.skipped_deletes.load(Ordering::SeqCst),
            failed_invocations: c.failed_invocations.load(Ordering::SeqCst),
            sqs_errors: c.sqs_errors.load(Ordering::SeqCst),
        }
    }

    /// Returns once the queue has stayed empty (no visible, in-flight or delayed message,
    /// and no batch being handled) for about 1.5 s; errors at `timeout`.
    pub async fn wait_idle(&self, timeout: Duration) -> anyhow::Result<()> {
        let quiet_for = Duration::from_millis(1500);
        let deadline = Instant::now() + timeout;
        let mut idle_since: Option<Instant> = None;
        loop {
            let counts = queue_counts(&self.sqs, &self.queue_url).await;
            let in_flight = self.counters.in_flight.load(Ordering::SeqCst);
            let busy = match &counts {
                Ok(c) => c.iter().any(|&n| n > 0) || in_flight > 0,
                Err(_) => true,
            };
            let now = Instant::now();
            if busy {
                idle_since = None;
            } else if now.duration_since(*idle_since.get_or_insert(now)) >= quiet_for {
                return Ok(());
            }
            if now >= deadline {
                let counts = match counts {
                    Ok([v, nv, d]) => format!("visible {v}, not visible {nv}, delayed {d}"),
                    Err(e) => format!("attributes unreadable: {e:#}"),
                };
                bail!(
                    "queue {} not idle after {timeout:?}: {counts}, batches in flight {in_flight}; {:?}",
                    self.queue_url,
                    self.stats()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops polling: each poller finishes the batch it holds (handler and deletes) and ends.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for p in self.pollers.drain(..) {
            if let Err(e) = p.await
                && e.is_panic()
            {
                tracing::error!("an SQS poller panicked");
            }
        }
    }
}

impl Drop for SqsEventSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for p in &self.pollers {
            p.abort();
        }
    }
}

/// ApproximateNumberOfMessages, ...NotVisible, ...Delayed.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<[u64; 3]> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let attrs = out.attributes.unwrap_or_default();
    let get = |k: QueueAttributeName| -> u64 {
        attrs
            .get(&k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    Ok([
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    ])
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Poller {
    async fn run(self) {
        while !self.stop.load(Ordering::SeqCst) {
            let mut req = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(self.batch_size)
                .wait_time_seconds(self.wait_time)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All");
            if let Some(v) = self.visibility_timeout {
                req = req.visibility_timeout(v);
            }
            let messages = match req.send().await {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    self.counters.sqs_errors.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(
                        queue = %self.queue_url,
                        error = %aws_sdk_sqs::error::DisplayErrorContext(e),
                        "ReceiveMessage failed"
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            self.counters.in_flight.fetch_add(1, Ordering::SeqCst);
            let _guard = InFlight(&self.counters.in_flight);
            self.counters
                .received
                .fetch_add(messages.len() as u64, Ordering::SeqCst);
            self.handle_batch(messages).await;
        }
    }

    async fn handle_batch(&self, messages: Vec<aws_sdk_sqs::types::Message>) {
        // (message id, receipt handle, first delivery?)
        let receipts: Vec<(String, String, bool)> = messages
            .iter()
            .map(|m| {
                let receive_count = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .map_or("1", String::as_str);
                (
                    m.message_id().unwrap_or_default().to_string(),
                    m.receipt_handle().unwrap_or_default().to_string(),
                    receive_count == "1",
                )
            })
            .collect();
        let event = match self.build_event(&messages) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "building the SQS event");
                self.counters
                    .failed_invocations
                    .fetch_add(1, Ordering::SeqCst);
                return;
            }
        };

        self.counters.invocations.fetch_add(1, Ordering::SeqCst);
        let task = tokio::spawn((self.handler)(event));
        let abort = task.abort_handle();
        let outcome = match self.handler_timeout {
            Some(t) => match tokio::time::timeout(t, task).await {
                Ok(r) => r.map_err(|e| {
                    if e.is_panic() {
                        "the handler panicked".to_string()
                    } else {
                        "the handler was cancelled".to_string()
                    }
                }),
                Err(_) => {
                    abort.abort();
                    Err(format!("the handler timed out after {t:?}"))
                }
            },
            None => task.await.map_err(|e| {
                if e.is_panic() {
                    "the handler panicked".to_string()
                } else {
                    "the handler was cancelled".to_string()
                }
            }),
        };
        let response = match outcome {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(queue = %self.queue_url, messages = receipts.len(), "{why}: the whole batch will be retried");
                self.counters
                    .failed_invocations
                    .fetch_add(1, Ordering::SeqCst);
                return;
            }
        };

        let ids: HashSet<&str> = receipts.iter().map(|(id, _, _)| id.as_str()).collect();
        let mut failed: HashSet<String> = HashSet::new();
        if self.report_failures {
            for f in &response.batch_item_failures {
                if f.item_identifier.is_empty() || !ids.contains(f.item_identifier.as_str()) {
                    // Lambda treats an unknown or empty identifier as a failure of the batch.
                    tracing::warn!(
                        item = %f.item_identifier,
                        "batchItemFailures names no message of the batch: the whole batch will be retried"
                    );
                    self.counters
                        .failed_invocations
                        .fetch_add(1, Ordering::SeqCst);
                    return;
                }
                failed.insert(f.item_identifier.clone());
            }
        }
        self.counters
            .failures_reported
            .fetch_add(failed.len() as u64, Ordering::SeqCst);

        let mut to_delete = Vec::new();
        for (i, (id, receipt, first_delivery)) in receipts.iter().enumerate() {
            if failed.contains(id) {
                continue;
            }
            if *first_delivery
                && self.skip_delete_ratio > 0.0
                && rand::random::<f64>() < self.skip_delete_ratio
            {
                self.counters.skipped_deletes.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let entry = DeleteMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(receipt)
                .build();
            match entry {
                Ok(e) => to_delete.push(e),
                Err(e) => tracing::error!(error = %e, "delete entry"),
            }
        }
        if to_delete.is_empty() {
            return;
        }
        let n = to_delete.len();
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(to_delete))
            .send()
            .await
        {
            Ok(out) => {
                let failed = out.failed().len();
                if failed > 0 {
                    self.counters.sqs_errors.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(failed = ?out.failed(), "DeleteMessageBatch left messages");
                }
                self.counters
                    .deleted
                    .fetch_add(out.successful().len() as u64, Ordering::SeqCst);
            }
            Err(e) => {
                self.counters.sqs_errors.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    messages = n,
                    error = %aws_sdk_sqs::error::DisplayErrorContext(e),
                    "DeleteMessageBatch failed: the messages will be delivered again"
                );
            }
        }
    }

    fn build_event(&self, messages: &[aws_sdk_sqs::types::Message]) -> anyhow::Result<SqsEvent> {
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: BTreeMap<&str, &str> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                    .unwrap_or_default();
                let message_attributes: BTreeMap<&str, Value> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                let mut attr = Map::new();
                                if let Some(s) = v.string_value() {
                                    attr.insert("stringValue".into(), json!(s));
                                }
                                if let Some(b) = v.binary_value() {
                                    attr.insert(
                                        "binaryValue".into(),
                                        json!(base64_encode(b.as_ref())),
                                    );
                                }
                                attr.insert(
                                    "stringListValues".into(),
                                    json!(v.string_list_values()),
                                );
                                attr.insert(
                                    "binaryListValues".into(),
                                    json!(
                                        v.binary_list_values()
                                            .iter()
                                            .map(|b| base64_encode(b.as_ref()))
                                            .collect::<Vec<_>>()
                                    ),
                                );
                                attr.insert("dataType".into(), json!(v.data_type()));
                                (k.as_str(), Value::Object(attr))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body().unwrap_or_default(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body(),
                    "md5OfMessageAttributes": m.md5_of_message_attributes(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.aws_region,
                })
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).context("SqsEvent from JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::LocalStack;
    use aws_lambda_events::sqs::BatchItemFailure;
    use std::sync::Mutex;

    fn echo_handler(name: &'static str) -> HttpHandler {
        http_handler(move |req: ApiGatewayV2httpRequest| async move {
            let body = json!({
                "function": name,
                "version": req.version,
                "routeKey": req.route_key,
                "rawPath": req.raw_path,
                "rawQueryString": req.raw_query_string,
                "method": req.request_context.http.method.as_str(),
                "sourceIp": req.request_context.http.source_ip,
                "pathParameters": req.path_parameters,
                "query": req.query_string_parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
                "headers": req.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect::<BTreeMap<_, _>>(),
                "cookies": req.cookies,
                "body": req.body,
                "isBase64Encoded": req.is_base64_encoded,
                "timeEpoch": req.request_context.time_epoch,
                "claims": req.request_context.authorizer.and_then(|a| a.jwt).map(|jwt| jwt.claims),
            });
            let mut resp = ApiGatewayV2httpResponse::default();
            resp.status_code = if name == "IngestFunction" { 202 } else { 200 };
            resp.headers
                .insert("x-echo", HeaderValue::from_static("yes"));
            resp.cookies = vec!["a=1; Path=/".to_string()];
            resp.body = Some(Body::Text(body.to_string()));
            resp
        })
    }

    #[tokio::test]
    async fn http_api_routes_requests_like_api_gateway() {
        let template = Template::load().unwrap();
        let mut handlers = HashMap::new();
        handlers.insert("IngestFunction".to_string(), echo_handler("IngestFunction"));
        handlers.insert("AdminFunction".to_string(), echo_handler("AdminFunction"));
        handlers.insert("PortalFunction".to_string(), echo_handler("PortalFunction"));
        let server = HttpApiServer::start_from_template(&template, handlers)
            .await
            .unwrap();
        assert!(server.base_url().starts_with("http://127.0.0.1:"));

        let r = server
            .send(
                "POST",
                "/v1/programs/acme/events?a=1&b=x%20y&a=2",
                &[
                    ("content-type", "application/json"),
                    ("X-Custom", "One"),
                    ("cookie", "s=abc; t=def"),
                ],
                r#"{"hello":"world"}"#,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.header("x-echo"), Some("yes"));
        assert_eq!(r.header("set-cookie"), Some("a=1; Path=/"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("apigw-requestid").is_some());
        let j = r.json().unwrap();
        assert_eq!(j["function"], "IngestFunction");
        assert_eq!(j["version"], "2.0");
        assert_eq!(j["routeKey"], "POST /v1/programs/{program}/events");
        assert_eq!(j["rawPath"], "/v1/programs/acme/events");
        assert_eq!(j["rawQueryString"], "a=1&b=x%20y&a=2");
        assert_eq!(j["method"], "POST");
        assert_eq!(j["sourceIp"], "127.0.0.1");
        assert_eq!(j["query"]["b"], "x y");
        assert_eq!(j["headers"]["x-custom"], "One");
        assert_eq!(j["headers"]["x-forwarded-proto"], "http");
        assert!(j["headers"].get("cookie").is_none());
        assert_eq!(j["cookies"], json!(["s=abc", "t=def"]));
        assert_eq!(j["body"], r#"{"hello":"world"}"#);
        assert_eq!(j["isBase64Encoded"], false);
        assert!(j["timeEpoch"].as_i64().unwrap() > 1_600_000_000_000);

        // Path parameters.
        let r = server
            .send(
                "PUT",
                "/v1/programs/acme/participants/alice%40example",
                &[],
                "{}",
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let j = r.json().unwrap();
        assert_eq!(j["function"], "AdminFunction");
        assert_eq!(
            j["routeKey"],
            "PUT /v1/programs/{program}/participants/{participant}"
        );
        assert_eq!(j["pathParameters"]["program"], "acme");
        assert_eq!(j["pathParameters"]["participant"], "alice@example");

        let r = server
            .send("PUT", "/v1/programs/acme", &[], "{}")
            .await
            .unwrap();
        assert_eq!(r.json().unwrap()["function"], "AdminFunction");

        // Binary bodies arrive base64-encoded.
        let r = server
            .send(
                "POST",
                "/v1/programs/acme/events",
                &[],
                vec![0xffu8, 0x00, 0x80],
            )
            .await
            .unwrap();
        let j = r.json().unwrap();
        assert_eq!(j["isBase64Encoded"], true);
        assert_eq!(j["body"], base64_encode(&[0xff, 0x00, 0x80]));

        // Unknown route, wrong method: API Gateway's 404.
        for (m, p) in [
            ("GET", "/v1/programs/acme/events"),
            ("POST", "/nope"),
            ("PUT", "/v1/programs/acme/participants"),
        ] {
            let r = server.send(m, p, &[], "").await.unwrap();
            assert_eq!(r.status, 404, "{m} {p}");
            assert_eq!(r.json().unwrap(), json!({"message": "Not Found"}));
        }

        // Over 10 MB: 413.
        let big = vec![b'a'; MAX_REQUEST_BODY + 1];
        let r = server
            .send("POST", "/v1/programs/acme/events", &[], big)
            .await
            .unwrap();
        assert_eq!(r.status, 413);

        // Routes behind the JWT authorizer: a valid, unexpired token of the runner's key, or
        // API Gateway's 401; its claims reach the function as strings.
        let claims = |exp: i64| json!({"sub": "u-1", "carrot_program": "acme", "carrot_participant": "rep-1", "exp": exp});
        let valid = local_jwt(&claims(jiff::Timestamp::now().as_second() + 60));
        let expired = local_jwt(&claims(jiff::Timestamp::now().as_second() - 1));
        let mut forged = valid.clone();
        forged.replace_range(forged.len() - 4.., "AAAA");
        for token in [None, Some(expired.as_str()), Some(forged.as_str())] {
            let authorization = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = authorization
                .iter()
                .map(|a| ("authorization", a.as_str()))
                .collect();
            let r = server.send("GET", "/v1/me", &headers, "").await.unwrap();
            assert_eq!(r.status, 401, "{token:?}");
            assert_eq!(r.json().unwrap(), json!({"message": "Unauthorized"}));
        }
        let bearer = format!("Bearer {valid}");
        let r = server
            .send("GET", "/v1/me", &[("authorization", bearer.as_str())], "")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().unwrap()["function"], "PortalFunction");
        assert_eq!(r.json().unwrap()["claims"]["carrot_participant"], "rep-1");
        assert!(r.json().unwrap()["claims"]["exp"].is_string());

        server.shutdown();
    }

    fn boom() -> ApiGatewayV2httpResponse {
        panic!("handler failure on purpose")
    }

    #[tokio::test]
    async fn http_api_handler_failures_are_500() {
        let routes = vec![
            HttpRoute {
                method: "GET".into(),
                path: "/panic".into(),
                function: "Panics".into(),
                event_name: "E".into(),
                authorizer: None,
            },
            HttpRoute {
                method: "GET".into(),
                path: "/nohandler".into(),
                function: "Missing".into(),
                event_name: "E".into(),
                authorizer: None,
            },
            HttpRoute {
                method: "GET".into(),
                path: "/binary".into(),
                function: "Binary".into(),
                event_name: "E".into(),
                authorizer: None,
            },
        ];
        let mut handlers: HashMap<String, HttpHandler> = HashMap::new();
        handlers.insert("Panics".into(), http_handler(|_req| async move { boom() }));
        handlers.insert(
            "Binary".into(),
            http_handler(|_req| async move {
                let mut r = ApiGatewayV2httpResponse::default();
                r.status_code = 200;
                r.is_base64_encoded = true;
                r.headers.insert(
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                r.body = Some(Body::Text(base64_encode(&[1, 2, 255])));
                r
            }),
        );
        let server = HttpApiServer::start(&routes, handlers).await.unwrap();
        let r = server.send("GET", "/panic", &[], "").await.unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(r.json().unwrap()["message"], "Internal Server Error");
        let r = server.send("GET", "/nohandler", &[], "").await.unwrap();
        assert_eq!(r.status, 500);
        let r = server.send("GET", "/binary", &[], "").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, vec![1, 2, 255]);

        // A handler for a function that serves no route is a mistake.
        let mut bad: HashMap<String, HttpHandler> = HashMap::new();
        bad.insert("Typo".into(), echo_handler("IngestFunction"));
        assert!(HttpApiServer::start(&routes, bad).await.is_err());
    }

    async fn dlq_bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for _ in 0..5 {
            let r = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let msgs = r.messages.unwrap_or_default();
            if msgs.is_empty() && !out.is_empty() {
                break;
            }
            for m in msgs {
                out.push((
                    m.message_id().unwrap_or_default().to_string(),
                    m.body().unwrap_or_default().to_string(),
                ));
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqs_source_deletes_successes_and_redrives_failures() {
        let stack = LocalStack::start_or_reuse().await.unwrap();
        let res = stack
            .provision(&Resources::unique_prefix("sqs"))
            .await
            .unwrap();
        let sqs = stack.sqs_client();
        let max_receive = res
            .template()
            .queue("EventsQueue")
            .unwrap()
            .redrive
            .as_ref()
            .unwrap()
            .max_receive_count as u64;

        let mut poison_id = String::new();
        for i in 0..8 {
            let out = sqs
                .send_message()
                .queue_url(res.events_queue_url())
                .message_body(format!("msg-{i}"))
                .message_attributes(
                    "kind",
                    aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(if i == 3 { "poison" } else { "ok" })
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            if i == 3 {
                poison_id = out.message_id.unwrap();
            }
        }

        #[derive(Default)]
        struct Seen {
            deliveries: HashMap<String, u64>,
            receive_counts: Vec<u64>,
            records_ok: bool,
        }
        let seen = Arc::new(Mutex::new(Seen {
            records_ok: true,
            ..Default::default()
        }));
        let arn = res.events_queue_arn().to_string();
        let handler = {
            let seen = seen.clone();
            let poison_id = poison_id.clone();
            sqs_handler(move |ev: SqsEvent| {
                let seen = seen.clone();
                let poison_id = poison_id.clone();
                let arn = arn.clone();
                async move {
                    let mut resp = SqsBatchResponse::default();
                    let mut s = seen.lock().unwrap();
                    assert!(!ev.records.is_empty() && ev.records.len() <= 10);
                    for r in &ev.records {
                        let id = r.message_id.clone().unwrap();
                        *s.deliveries.entry(id.clone()).or_default() += 1;
                        let ok = r.event_source.as_deref() == Some("aws:sqs")
                            && r.event_source_arn.as_deref() == Some(arn.as_str())
                            && r.aws_region.as_deref() == Some(REGION)
                            && r.receipt_handle.is_some()
                            && r.md5_of_body.is_some()
                            && r.attributes.contains_key("SentTimestamp")
                            && r.message_attributes.contains_key("kind");
                        s.records_ok &= ok;
                        if id == poison_id {
                            s.receive_counts
                                .push(r.attributes["ApproximateReceiveCount"].parse().unwrap());
                            let mut f = BatchItemFailure::default();
                            f.item_identifier = id;
                            resp.batch_item_failures.push(f);
                        }
                    }
                    resp
                }
            })
        };
        let source = SqsEventSource::start_for_function(
            sqs.clone(),
            &res,
            "AwardFunction",
            handler,
            SqsEventSourceOptions {
                visibility_timeout_secs: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        source.wait_idle(Duration::from_secs(60)).await.unwrap();
        let stats = source.stats();
        source.shutdown().await;

        {
            let s = seen.lock().unwrap();
            assert!(s.records_ok, "records look like Lambda's");
            assert_eq!(s.deliveries.len(), 8);
            for (id, n) in &s.deliveries {
                if *id == poison_id {
                    assert_eq!(
                        *n, max_receive,
                        "poison message delivered maxReceiveCount times"
                    );
                } else {
                    assert_eq!(*n, 1, "successful message {id} delivered once");
                }
            }
            assert_eq!(s.receive_counts, (1..=max_receive).collect::<Vec<_>>());
            assert_eq!(stats.deleted, 7);
            assert_eq!(stats.failures_reported, max_receive);
            assert_eq!(stats.received, 7 + max_receive);
            assert_eq!(stats.failed_invocations, 0);
        }

        let dlq = dlq_bodies(&sqs, res.events_dlq_url()).await;
        assert_eq!(dlq.len(), 1, "{dlq:?}");
        assert_eq!(dlq[0].0, poison_id);
        assert_eq!(dlq[0].1, "msg-3");
        res.cleanup().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqs_source_retries_whole_batch_on_panic_and_skips_deletes_on_request() {
        let stack = LocalStack::start_or_reuse().await.unwrap();
        let res = stack
            .provision(&Resources::unique_prefix("sqsp"))
            .await
            .unwrap();
        let sqs = stack.sqs_client();
        for i in 0..3 {
            sqs.send_message()
                .queue_url(res.events_queue_url())
                .message_body(format!("m{i}"))
                .send()
                .await
                .unwrap();
        }
        // The first invocation panics; the batch comes back whole and then succeeds.
        let calls = Arc::new(AtomicU64::new(0));
        let handler = {
            let calls = calls.clone();
            sqs_handler(move |_ev: SqsEvent| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("crash on purpose");
                    }
                    SqsBatchResponse::default()
                }
            })
        };
        let source = SqsEventSource::start(
            sqs.clone(),
            res.events_queue_url(),
            res.events_queue_arn(),
            handler,
            SqsEventSourceOptions {
                concurrency: 1,
                visibility_timeout_secs: Some(1),
                ..Default::default()
            },
        );
        source.wait_idle(Duration::from_secs(60)).await.unwrap();
        let stats = source.stats();
        source.shutdown().await;
        assert_eq!(stats.failed_invocations, 1);
        assert_eq!(stats.deleted, 3);
        assert!(stats.received >= 6, "{stats:?}");

        // skip_delete_ratio 1.0: the first delivery is left undeleted and comes back; the
        // redelivery is deleted.
        sqs.send_message()
            .queue_url(res.events_queue_url())
            .message_body("again")
            .send()
            .await
            .unwrap();
        let source = SqsEventSource::start(
            sqs.clone(),
            res.events_queue_url(),
            res.events_queue_arn(),
            sqs_handler(|_ev| async { SqsBatchResponse::default() }),
            SqsEventSourceOptions {
                concurrency: 1,
                visibility_timeout_secs: Some(1),
                skip_delete_ratio: 1.0,
                ..Default::default()
            },
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while source.stats().deleted < 1 {
            assert!(
                Instant::now() < deadline,
                "no redelivery: {:?}",
                source.stats()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stats = source.stats();
        source.shutdown().await;
        assert_eq!(
            (stats.received, stats.skipped_deletes, stats.deleted),
            (2, 1, 1)
        );
        res.cleanup().await.unwrap();
    }
}
