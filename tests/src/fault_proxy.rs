//! A fault-injecting HTTP proxy on loopback, in front of DynamoDB Local or moto: at a rate set
//! at run time, a request is answered with a fault instead of the service's answer; every
//! other request and its answer pass unchanged. It counts what it injected, by kind.
//!
//! The faults are those AWS clients meet in production: throttling (400 with the service's
//! error code, in the request's protocol), 500 and 503, and a connection closed either before
//! the request reaches the service or after the service carried it out (the caller cannot
//! tell whether it happened: the case that tests idempotence).
//!
//! Point clients at it with [`LocalStack::connect`](crate::stack::LocalStack::connect)`(dynamodb
//! proxy endpoint, moto proxy endpoint)` while the rate is 0, then raise the rate.

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::{JoinHandle, JoinSet};

/// One kind of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// 400 with a throttling code: DynamoDB's `ProvisionedThroughputExceededException` or
    /// `ThrottlingException` (alternately), `ThrottlingException` for the other JSON services,
    /// `Throttling` for the query (XML) ones.
    Throttled,
    /// 500 `InternalServerError`.
    InternalError,
    /// 503 `ServiceUnavailable`.
    Unavailable,
    /// The connection closes before the request is forwarded: the service never sees it.
    DroppedBeforeService,
    /// The request is forwarded and carried out, then the connection closes without the
    /// answer.
    DroppedAfterService,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Throttled,
        Fault::InternalError,
        Fault::Unavailable,
        Fault::DroppedBeforeService,
        Fault::DroppedAfterService,
    ];
}

/// What a proxy did since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests answered by the service through the proxy, unchanged.
    pub forwarded: u64,
    /// Requests faulted, by kind (`DroppedAfterService` ones were also carried out).
    pub injected: BTreeMap<Fault, u64>,
    /// Requests the proxy could not forward (the service was unreachable): answered 502.
    pub upstream_errors: u64,
}

impl FaultCounts {
    pub fn total_injected(&self) -> u64 {
        self.injected.values().sum()
    }
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

struct ProxyState {
    upstream: String,
    kinds: Vec<Fault>,
    /// The fault rate in millionths (an atomic, so a test changes it while traffic flows).
    rate_ppm: AtomicU64,
    forwarded: AtomicU64,
    injected: [AtomicU64; Fault::ALL.len()],
    upstream_errors: AtomicU64,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Why the proxy closes a connection instead of answering (hyper closes a connection whose
/// service fails).
#[derive(Debug)]
struct DroppedConnection;

impl std::fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedConnection {}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream`
    /// (`http://127.0.0.1:PORT`), injecting faults of `kinds`, chosen evenly. The rate starts
    /// at 0: set it with [`FaultProxy::set_rate`].
    pub async fn start(upstream: &str, kinds: &[Fault]) -> anyhow::Result<FaultProxy> {
        anyhow::ensure!(!kinds.is_empty(), "a fault proxy needs at least one kind");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the fault proxy to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            kinds: kinds.to_vec(),
            rate_ppm: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            injected: Default::default(),
            upstream_errors: AtomicU64::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let state = serving.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |request| {
                                let state = state.clone();
                                async move { state.answer(request).await }
                            });
                            // A dropped connection ends here with its error, as intended.
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(FaultProxy { addr, state, task })
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults this fraction (0.0..=1.0) of the requests from now on.
    pub fn set_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u64;
        self.state.rate_ppm.store(ppm, Ordering::SeqCst);
    }

    pub fn counts(&self) -> FaultCounts {
        let state = &self.state;
        FaultCounts {
            forwarded: state.forwarded.load(Ordering::SeqCst),
            injected: Fault::ALL
                .iter()
                .zip(&state.injected)
                .filter(|(kind, _)| state.kinds.contains(kind))
                .map(|(kind, count)| (*kind, count.load(Ordering::SeqCst)))
                .collect(),
            upstream_errors: state.upstream_errors.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProxyState {
    /// The fault to inject into the next request, if any.
    fn draw(&self) -> Option<Fault> {
        let rate = self.rate_ppm.load(Ordering::SeqCst);
        if rate == 0 || rand::random_range(0..1_000_000) >= rate {
            return None;
        }
        let fault = self.kinds[rand::random_range(0..self.kinds.len())];
        let index = Fault::ALL
            .iter()
            .position(|k| *k == fault)
            .expect("every fault is in ALL");
        self.injected[index].fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }

    async fn answer(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, DroppedConnection> {
        let fault = self.draw();
        let (parts, body) = request.into_parts();
        // A request whose body cannot be read was cut by the client: nothing to answer.
        let body = body
            .collect()
            .await
            .map_err(|_| DroppedConnection)?
            .to_bytes();
        let protocol = Protocol::of(&parts.headers);
        match fault {
            Some(Fault::DroppedBeforeService) => return Err(DroppedConnection),
            Some(Fault::Throttled) => return Ok(protocol.throttled()),
            Some(Fault::InternalError) => {
                return Ok(protocol.error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "injected internal error",
                ));
            }
            Some(Fault::Unavailable) => {
                return Ok(protocol.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "injected unavailability",
                ));
            }
            Some(Fault::DroppedAfterService) | None => {}
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut forwarded = Request::builder()
            .method(parts.method)
            .uri(format!("{}{path}", self.upstream))
            .version(hyper::Version::HTTP_11);
        for (name, value) in &parts.headers {
            forwarded = forwarded.header(name, value);
        }
        let forwarded = forwarded
            .body(Full::new(body))
            .expect("a request rebuilt from a valid one is valid");
        let answer = match self.client.request(forwarded).await {
            Ok(answer) => answer,
            Err(error) => {
                self.upstream_errors.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    upstream = %self.upstream,
                    %error,
                    "fault proxy: upstream unreachable"
                );
                return Ok(protocol.error(StatusCode::BAD_GATEWAY, "BadGateway", "upstream"));
            }
        };
        let (mut parts, body) = answer.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|_| DroppedConnection)?
            .to_bytes();
        if fault == Some(Fault::DroppedAfterService) {
            return Err(DroppedConnection);
        }
        self.forwarded.fetch_add(1, Ordering::SeqCst);
        // The body is whole now: hyper frames it with its own content-length.
        parts.headers.remove(hyper::header::TRANSFER_ENCODING);
        parts.headers.remove(hyper::header::CONNECTION);
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

/// How a request's service speaks, so a fault reads like that service's own error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// DynamoDB (awsJson1_0, `X-Amz-Target: DynamoDB_20120810.*`).
    DynamoDb,
    /// The other JSON services (SQS, Secrets Manager, SES v2).
    Json,
    /// The query protocol with XML answers (SNS).
    Query,
}

impl Protocol {
    fn of(headers: &hyper::HeaderMap) -> Protocol {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        if header("x-amz-target").starts_with("DynamoDB_") {
            Protocol::DynamoDb
        } else if header(CONTENT_TYPE.as_str()).starts_with("application/x-www-form-urlencoded") {
            Protocol::Query
        } else {
            Protocol::Json
        }
    }

    fn throttled(self) -> Response<Full<Bytes>> {
        let code = match self {
            // DynamoDB answers either; alternate so both reach the clients.
            Protocol::DynamoDb if rand::random::<bool>() => {
                "ProvisionedThroughputExceededException"
            }
            Protocol::DynamoDb | Protocol::Json => "ThrottlingException",
            Protocol::Query => "Throttling",
        };
        self.error(StatusCode::BAD_REQUEST, code, "Rate exceeded (injected)")
    }

    fn error(self, status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
        let (content_type, body) = match self {
            Protocol::DynamoDb => (
                "application/x-amz-json-1.0",
                serde_json::json!({
                    "__type": format!("com.amazonaws.dynamodb.v20120810#{code}"),
                    "message": message,
                })
                .to_string(),
            ),
            Protocol::Json => (
                "application/x-amz-json-1.0",
                serde_json::json!({"__type": code, "message": message}).to_string(),
            ),
            Protocol::Query => (
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code>\
                     <Message>{message}</Message></Error>\
                     <RequestId>fault-proxy</RequestId></ErrorResponse>",
                    if status.is_server_error() {
                        "Receiver"
                    } else {
                        "Sender"
                    }
                ),
            ),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_str(code).expect("error codes are ASCII"),
        );
        response
    }
}
