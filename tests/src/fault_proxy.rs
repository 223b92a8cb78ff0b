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
//!
//! It also counts every request by operation ([`FaultProxy::traffic`]): the `X-Amz-Target` of
//! the JSON services (`DynamoDB.TransactWriteItems`, `SQS.SendMessageBatch`,
//! `SecretsManager.GetSecretValue`), the `Action` of the query ones (`sns.Publish`), the method
//! and path of the REST ones. A proxy started with [`FaultProxy::counting`] (no faults) can also
//! ask DynamoDB for `ReturnConsumedCapacity` on every request that can carry it and sum the
//! `ConsumedCapacity` of the answers by operation and by index: the bench
//! `pipeline_bench` measures the units and requests per event with it.

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// What DynamoDB is asked to report of the capacity each request consumed (the request's
/// `ReturnConsumedCapacity`), when the request does not ask for it itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CapacityReport {
    /// Requests pass as they are; only the `ConsumedCapacity` the clients asked for is summed.
    #[default]
    AsSent,
    /// `TOTAL` on every request that lacks `ReturnConsumedCapacity`.
    Total,
    /// `INDEXES` on every request that lacks it or asks for `TOTAL` (the total is the same;
    /// the answer also splits it between the table and each index).
    Indexes,
}

/// DynamoDB operations that take `ReturnConsumedCapacity`.
const CAPACITY_OPERATIONS: [&str; 11] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
    "ExecuteStatement",
];

/// DynamoDB's `ConsumedCapacity` summed over answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Capacity {
    /// `CapacityUnits`: everything the request consumed, table and indexes.
    pub units: f64,
    /// `ReadCapacityUnits` and `WriteCapacityUnits`, where the answer splits them.
    pub read_units: f64,
    pub write_units: f64,
    /// The base table's part (`Table.CapacityUnits`; with `INDEXES` only).
    pub table_units: f64,
    /// Each global or local secondary index's part (with `INDEXES` only).
    pub indexes: BTreeMap<String, f64>,
}

impl Capacity {
    fn add(&mut self, other: &Capacity, sign: f64) {
        self.units += sign * other.units;
        self.read_units += sign * other.read_units;
        self.write_units += sign * other.write_units;
        self.table_units += sign * other.table_units;
        for (index, units) in &other.indexes {
            *self.indexes.entry(index.clone()).or_default() += sign * units;
        }
        self.indexes.retain(|_, units| units.abs() > 1e-9);
    }

    /// The part of `units` that the indexes took.
    pub fn index_units(&self) -> f64 {
        self.indexes.values().sum()
    }

    /// Sums one answer's `ConsumedCapacity` (an object, or a list of them).
    fn add_answer(&mut self, consumed: &Value) {
        let units = |v: &Value, name: &str| v.get(name).and_then(Value::as_f64).unwrap_or(0.0);
        let each = match consumed {
            Value::Array(list) => list.iter().collect(),
            other => vec![other],
        };
        for capacity in each {
            self.units += units(capacity, "CapacityUnits");
            self.read_units += units(capacity, "ReadCapacityUnits");
            self.write_units += units(capacity, "WriteCapacityUnits");
            if let Some(table) = capacity.get("Table") {
                self.table_units += units(table, "CapacityUnits");
            }
            for kind in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
                if let Some(Value::Object(indexes)) = capacity.get(kind) {
                    for (index, used) in indexes {
                        *self.indexes.entry(index.clone()).or_default() +=
                            units(used, "CapacityUnits");
                    }
                }
            }
        }
    }
}

/// Requests of one operation through a proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperationTraffic {
    /// Requests received (a client's retry counts again; injected faults count too).
    pub requests: u64,
    /// Of those, answered with anything but 2xx (by the service or by fault injection), or not
    /// answered.
    pub failed: u64,
    /// Items the DynamoDB requests named, counted on a proxy that reads capacity (see
    /// [`FaultProxy::counting`]): the keys of a `BatchGetItem`, the actions of a
    /// `TransactWriteItems` or `TransactGetItems`, the requests of a `BatchWriteItem`, 1 for a
    /// single-item operation, 0 for `Query` and `Scan`.
    pub items: u64,
    /// Time from receiving each request whole to having its answer, summed, in seconds.
    pub seconds: f64,
    /// The `ConsumedCapacity` of the answers (DynamoDB only).
    pub capacity: Capacity,
}

/// Requests through a proxy by operation, e.g. `DynamoDB.TransactWriteItems`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traffic {
    pub operations: BTreeMap<String, OperationTraffic>,
}

impl Traffic {
    /// What happened after `earlier` (a snapshot of the same proxy).
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        let mut operations = BTreeMap::new();
        for (name, now) in &self.operations {
            let mut delta = now.clone();
            if let Some(before) = earlier.operations.get(name) {
                delta.requests -= before.requests;
                delta.failed -= before.failed;
                delta.items -= before.items;
                delta.seconds -= before.seconds;
                delta.capacity.add(&before.capacity, -1.0);
            }
            if delta.requests > 0 {
                operations.insert(name.clone(), delta);
            }
        }
        Traffic { operations }
    }

    /// Requests of `operation` (0 if none).
    pub fn requests(&self, operation: &str) -> u64 {
        self.operations.get(operation).map_or(0, |o| o.requests)
    }

    pub fn total_requests(&self) -> u64 {
        self.operations.values().map(|o| o.requests).sum()
    }

    /// The requests of the operations whose name starts with `service` (`"DynamoDB."`).
    pub fn of_service(&self, service: &str) -> Traffic {
        Traffic {
            operations: self
                .operations
                .iter()
                .filter(|(name, _)| name.starts_with(service))
                .map(|(name, o)| (name.clone(), o.clone()))
                .collect(),
        }
    }

    /// The capacity of every operation, summed.
    pub fn capacity(&self) -> Capacity {
        let mut total = Capacity::default();
        for operation in self.operations.values() {
            total.add(&operation.capacity, 1.0);
        }
        total
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
    capacity: CapacityReport,
    traffic: Mutex<Traffic>,
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
        Self::start_with(upstream, kinds, CapacityReport::AsSent).await
    }

    /// Starts a proxy that injects nothing and counts: every request by operation, and, as
    /// `capacity` says, the `ConsumedCapacity` DynamoDB reports (see [`FaultProxy::traffic`]).
    /// Adding `ReturnConsumedCapacity` changes the request body after the client signed it:
    /// DynamoDB Local does not check signatures; AWS would refuse it.
    pub async fn counting(upstream: &str, capacity: CapacityReport) -> anyhow::Result<FaultProxy> {
        Self::start_with(upstream, &[], capacity).await
    }

    async fn start_with(
        upstream: &str,
        kinds: &[Fault],
        capacity: CapacityReport,
    ) -> anyhow::Result<FaultProxy> {
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
            capacity,
            traffic: Mutex::new(Traffic::default()),
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

    /// Faults this fraction (0.0..=1.0) of the requests from now on (nothing on a proxy made
    /// by [`FaultProxy::counting`]).
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

    /// Every request so far by operation, with the capacity DynamoDB reported. Take two
    /// snapshots and [`Traffic::since`] for what happened in between.
    pub fn traffic(&self) -> Traffic {
        self.state
            .traffic
            .lock()
            .expect("the traffic lock is never poisoned")
            .clone()
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
        if rate == 0 || self.kinds.is_empty() || rand::random_range(0..1_000_000) >= rate {
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

    /// Counts what [`ProxyState::forward`] made of a request.
    async fn answer(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, DroppedConnection> {
        let (mut parts, body) = request.into_parts();
        // A request whose body cannot be read was cut by the client: nothing to answer.
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return Err(DroppedConnection);
        };
        let operation = operation(&parts.headers, &parts.method, parts.uri.path(), &body);
        let (body, items) = match operation.strip_prefix("DynamoDB.") {
            Some(name) if CAPACITY_OPERATIONS.contains(&name) && self.capacity_wanted() => {
                self.ask_for_capacity(&mut parts.headers, body)
            }
            _ => (body, 0),
        };
        let dynamodb = operation.starts_with("DynamoDB.");
        let started = std::time::Instant::now();
        let answer = self.forward(parts, body, dynamodb).await;
        let seconds = started.elapsed().as_secs_f64();
        let mut traffic = self
            .traffic
            .lock()
            .expect("the traffic lock is never poisoned");
        let counted = traffic.operations.entry(operation).or_default();
        counted.requests += 1;
        counted.items += items;
        counted.seconds += seconds;
        match &answer {
            Ok((response, capacity)) => {
                if !response.status().is_success() {
                    counted.failed += 1;
                }
                if let Some(consumed) = capacity {
                    counted.capacity.add_answer(consumed);
                }
            }
            Err(_) => counted.failed += 1,
        }
        answer.map(|(response, _)| response)
    }

    /// The request body with `ReturnConsumedCapacity` as `self.capacity` asks (and its
    /// `content-length` to match; unchanged when it is not JSON), and the items it names.
    fn ask_for_capacity(&self, headers: &mut hyper::HeaderMap, body: Bytes) -> (Bytes, u64) {
        let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&body) else {
            return (body, 0);
        };
        let items = items_named(&request);
        let wanted = match self.capacity {
            CapacityReport::AsSent => return (body, items),
            CapacityReport::Total => "TOTAL",
            CapacityReport::Indexes => "INDEXES",
        };
        let asked = request
            .get("ReturnConsumedCapacity")
            .and_then(Value::as_str);
        let replace = match asked {
            None | Some("NONE") => true,
            Some("TOTAL") => wanted == "INDEXES",
            Some(_) => false,
        };
        if !replace {
            return (body, items);
        }
        request.insert("ReturnConsumedCapacity".into(), Value::from(wanted));
        let body = Bytes::from(Value::Object(request).to_string());
        headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        (body, items)
    }

    /// Forwards a request, or answers it with the fault drawn for it; also returns the
    /// `ConsumedCapacity` of a DynamoDB answer (`dynamodb`), if it has one.
    async fn forward(
        &self,
        parts: hyper::http::request::Parts,
        body: Bytes,
        dynamodb: bool,
    ) -> Result<(Response<Full<Bytes>>, Option<Value>), DroppedConnection> {
        let fault = self.draw();
        let protocol = Protocol::of(&parts.headers);
        match fault {
            Some(Fault::DroppedBeforeService) => return Err(DroppedConnection),
            Some(Fault::Throttled) => return Ok((protocol.throttled(), None)),
            Some(Fault::InternalError) => {
                let error = protocol.error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "injected internal error",
                );
                return Ok((error, None));
            }
            Some(Fault::Unavailable) => {
                let error = protocol.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "injected unavailability",
                );
                return Ok((error, None));
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
                let error = protocol.error(StatusCode::BAD_GATEWAY, "BadGateway", "upstream");
                return Ok((error, None));
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
        let capacity = if dynamodb && parts.status.is_success() && self.capacity_wanted() {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|mut answer| answer.get_mut("ConsumedCapacity").map(Value::take))
        } else {
            None
        };
        // The body is whole now: hyper frames it with its own content-length.
        parts.headers.remove(hyper::header::TRANSFER_ENCODING);
        parts.headers.remove(hyper::header::CONNECTION);
        Ok((Response::from_parts(parts, Full::new(body)), capacity))
    }

    /// Whether answers are read for their `ConsumedCapacity`: on a counting proxy, or when a
    /// client asked for it itself.
    fn capacity_wanted(&self) -> bool {
        self.kinds.is_empty() || self.capacity != CapacityReport::AsSent
    }
}

/// The items a DynamoDB request names (see [`OperationTraffic::items`]).
fn items_named(request: &serde_json::Map<String, Value>) -> u64 {
    let length = |v: Option<&Value>| v.and_then(Value::as_array).map_or(0, Vec::len) as u64;
    if let Some(Value::Object(tables)) = request.get("RequestItems") {
        // BatchGetItem: {table: {Keys: [...]}}; BatchWriteItem: {table: [requests]}.
        return tables
            .values()
            .map(|table| match table {
                Value::Array(requests) => requests.len() as u64,
                other => length(other.get("Keys")),
            })
            .sum();
    }
    if request.contains_key("TransactItems") {
        return length(request.get("TransactItems"));
    }
    u64::from(request.contains_key("Key") || request.contains_key("Item"))
}

/// The operation a request calls: `{service}.{operation}` from `X-Amz-Target` (awsJson
/// services), `{service}.{Action}` for the query protocol (the service from the signature's
/// credential scope), else `{service} {METHOD} {path}` (REST).
fn operation(
    headers: &hyper::HeaderMap,
    method: &hyper::Method,
    path: &str,
    body: &[u8],
) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    if let Some((prefix, name)) = header("x-amz-target").split_once('.') {
        let service = match prefix {
            p if p.starts_with("DynamoDB_") => "DynamoDB",
            "AmazonSQS" => "SQS",
            "secretsmanager" => "SecretsManager",
            other => other,
        };
        return format!("{service}.{name}");
    }
    // `Credential=AKID/20261123/eu-north-1/sns/aws4_request`: the fourth part is the service.
    let service = header("authorization")
        .split("Credential=")
        .nth(1)
        .and_then(|credential| credential.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    let action = std::str::from_utf8(body).ok().and_then(|form| {
        form.split('&')
            .find_map(|pair| pair.strip_prefix("Action="))
            .map(str::to_owned)
    });
    match action {
        Some(action) if header(CONTENT_TYPE.as_str()).starts_with("application/x-www-form") => {
            format!("{service}.{action}")
        }
        _ => format!("{service} {method} {path}"),
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
