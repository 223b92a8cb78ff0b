//! Carrot deployed on the local stack: resources from the template, the real handlers behind
//! the local API Gateway and SQS event source, and a client that signs requests like a CRM.

use crate::runner::{
    BoxFut, HttpApiServer, HttpHandler, SqsEventSource, SqsEventSourceOptions, SqsHandler,
    http_request, local_jwt, queue_counts,
};
use crate::stack::{LocalStack, Resources};
use admin::Admin;
use anyhow::Context;
use award::Award;
use carrot::adapters::clock::{FixedClock, SystemClock};
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore};
use carrot::adapters::notify_store::NotifyStore;
use carrot::adapters::secrets::{SecretsKeyStore, SecretsTokenSecret};
use carrot::adapters::ses::SesMailer;
use carrot::adapters::sns::{SnsOutbound, SnsSms};
use carrot::adapters::sqs::SqsEventQueue;
pub use carrot::http::signed_headers;
use carrot::service::close::CloseJob;
use carrot::service::engage::EngageJob;
use carrot::service::notify::Sender;
use close::{Close, os_seed};
use engage::Engage;
use ingest::Ingest;
use notify::Notify;
use portal::Portal;
use rand::Rng;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The close function as deployed: the real handler over the stack's table, queues and topic.
pub type CloseFunction = Close<
    DynamoStore,
    CachedPrograms<DynamoStore>,
    SqsEventQueue,
    SqsEventQueue,
    SnsOutbound,
    SystemClock,
>;

/// The engagement run as deployed, on the deployment's clock.
pub type EngageFunction = Engage<
    DynamoStore,
    NotifyStore,
    CachedPrograms<DynamoStore>,
    SqsEventQueue,
    SqsEventQueue,
    SnsOutbound,
    Arc<FixedClock>,
>;

/// The notification sender as deployed, on the deployment's clock.
pub type NotifyFunction = Notify<
    NotifyStore,
    CachedPrograms<DynamoStore>,
    SesMailer,
    SnsSms,
    SecretsTokenSecret,
    Arc<FixedClock>,
>;

/// One isolated deployment: its own table, queues and key namespace.
pub struct Deployment {
    pub resources: Resources,
    pub api: HttpApiServer,
    pub award: SqsEventSource,
    /// The period close, invoked as the scheduler would (`tick`) or for one period (`close`).
    pub close: Arc<CloseFunction>,
    /// The daily engagement run, invoked as the scheduler would (`engage`).
    pub engage: Arc<EngageFunction>,
    /// The notification sender; its queues are polled once `start_sender` is called.
    pub notify: Arc<NotifyFunction>,
    sender: Vec<SqsEventSource>,
    /// The clock of the engagement run and the sender (ingest and award keep the system
    /// clock: signatures and events are checked against real time). Starts at real time.
    pub clock: Arc<FixedClock>,
    /// Direct access to the table, for reading results.
    pub store: DynamoStore,
    pub sqs: aws_sdk_sqs::Client,
    secrets: aws_sdk_secretsmanager::Client,
    key_prefix: String,
}

impl Deployment {
    /// Provisions from the template and starts the handlers. `program_ttl` is how long the
    /// award function caches a program configuration (a minute in production).
    pub async fn start(
        stack: &LocalStack,
        name: &str,
        options: SqsEventSourceOptions,
        program_ttl: Duration,
    ) -> anyhow::Result<Self> {
        Self::start_through(stack, stack, name, options, program_ttl).await
    }

    /// Like [`Deployment::start`], but the handlers and the award function's SQS event source
    /// reach the services at `services`' endpoints (e.g. a [`crate::fault_proxy::FaultProxy`]
    /// in front of `stack`, joined with [`LocalStack::connect`]). Provisioning, `store`, `sqs`,
    /// key creation and cleanup keep `stack`'s own endpoints, so the test's setup and its
    /// reading of the results are not faulted.
    pub async fn start_through(
        stack: &LocalStack,
        services: &LocalStack,
        name: &str,
        options: SqsEventSourceOptions,
        program_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let resources = stack.provision(&Resources::unique_prefix(name)).await?;
        let key_prefix = format!("carrot/{}/keys/", resources.prefix());
        let store = DynamoStore::new(services.dynamodb_client(), resources.table());
        let queue = || SqsEventQueue::new(services.sqs_client(), resources.events_queue_url());
        let keys = || SecretsKeyStore::new(services.secrets_client(), key_prefix.clone());
        let notify_store = || NotifyStore::new(services.dynamodb_client(), resources.table());

        let ingest = Arc::new(Ingest {
            keys: keys(),
            queue: queue(),
            clock: SystemClock,
        });
        let outbound = || {
            SnsOutbound::new(
                services.sns_client(),
                resources.topic_arn("OutboundTopic").to_owned(),
            )
        };
        let admin = Arc::new(Admin {
            keys: keys(),
            store: store.clone(),
            queue: queue(),
            clock: SystemClock,
            outbound: outbound(),
            config_lead: program_ttl,
            messages: notify_store(),
            unsubscribe: SecretsTokenSecret::new(
                services.secrets_client(),
                resources.unsubscribe_secret_arn(),
            ),
        });
        let portal = Arc::new(Portal {
            keys: keys(),
            store: store.clone(),
            queue: queue(),
            outbound: outbound(),
            programs: CachedPrograms::new(store.clone(), program_ttl),
            clock: SystemClock,
        });
        let close = Arc::new(Close {
            job: CloseJob {
                store: store.clone(),
                programs: CachedPrograms::new(store.clone(), program_ttl),
                events: queue(),
                notifications: SqsEventQueue::new(
                    services.sqs_client(),
                    resources.queue_url("NotificationsQueue"),
                ),
                outbound: outbound(),
                clock: SystemClock,
                seed: os_seed,
            },
        });
        let award = Arc::new(Award {
            store: store.clone(),
            programs: CachedPrograms::new(store.clone(), program_ttl),
            clock: SystemClock,
        });
        let clock = Arc::new(FixedClock::at(jiff::Timestamp::now()));
        let notifications = || {
            SqsEventQueue::new(
                services.sqs_client(),
                resources.queue_url("NotificationsQueue"),
            )
        };
        let engage = Arc::new(Engage {
            job: EngageJob {
                store: store.clone(),
                deferrals: notify_store(),
                programs: CachedPrograms::new(store.clone(), program_ttl),
                events: Arc::new(queue()),
                notifications: Arc::new(notifications()),
                outbound: outbound(),
                clock: clock.clone(),
            },
        });
        let notify = Arc::new(Notify {
            sender: Sender {
                store: notify_store(),
                programs: CachedPrograms::new(store.clone(), program_ttl),
                mailer: SesMailer::new(
                    services.sesv2_client(),
                    Some(resources.email_configuration_set().to_owned()),
                ),
                sms: SnsSms::new(services.sns_client(), None),
                secret: SecretsTokenSecret::new(
                    services.secrets_client(),
                    resources.unsubscribe_secret_arn(),
                ),
                clock: clock.clone(),
                from_email: resources.sender_email().to_owned(),
                api_base_url: String::new(),
            },
            email_events_queue_arn: resources.email_events_queue_arn().to_owned(),
        });

        let mut http: HashMap<String, HttpHandler> = HashMap::new();
        http.insert(
            "IngestFunction".into(),
            Arc::new(move |request| -> BoxFut<_> {
                let ingest = ingest.clone();
                Box::pin(async move { ingest.handle(request).await })
            }),
        );
        http.insert(
            "AdminFunction".into(),
            Arc::new(move |request| -> BoxFut<_> {
                let admin = admin.clone();
                Box::pin(async move { admin.handle(request).await })
            }),
        );
        http.insert(
            "PortalFunction".into(),
            Arc::new(move |request| -> BoxFut<_> {
                let portal = portal.clone();
                Box::pin(async move { portal.handle(request).await })
            }),
        );
        let api = HttpApiServer::start(resources.template().routes(), http).await?;
        let mut notify = notify;
        // Unsubscribe links point at the local API.
        Arc::get_mut(&mut notify)
            .expect("not shared yet")
            .sender
            .api_base_url = api.base_url().trim_end_matches('/').to_owned();
        let award_handler: SqsHandler = Arc::new(move |event| -> BoxFut<_> {
            let award = award.clone();
            Box::pin(async move { award.handle(event).await })
        });
        // The test reads results directly, never through `services`.
        let direct_store = DynamoStore::new(stack.dynamodb_client(), resources.table());
        let award = SqsEventSource::start(
            services.sqs_client(),
            resources.events_queue_url(),
            resources.events_queue_arn(),
            award_handler,
            options,
        );
        Ok(Self {
            resources,
            api,
            award,
            close,
            engage,
            notify,
            sender: Vec::new(),
            clock,
            store: direct_store,
            sqs: stack.sqs_client(),
            secrets: stack.secrets_client(),
            key_prefix,
        })
    }

    /// Creates a key in Secrets Manager, the way an operator would, and returns a client
    /// that signs with it.
    pub async fn create_key(
        &self,
        key_id: &str,
        program: &str,
        scopes: &[&str],
    ) -> anyhow::Result<ApiClient> {
        let secret: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        let record = serde_json::json!({"program": program, "scopes": scopes, "secrets": [secret]});
        self.secrets
            .create_secret()
            .name(format!("{}{key_id}", self.key_prefix))
            .secret_string(record.to_string())
            .send()
            .await
            .context("creating a key secret")?;
        Ok(self.client(program, key_id, &secret))
    }

    /// A client of `program`'s routes signing with the key `key_id`.
    pub fn client(&self, program: &str, key_id: &str, secret: &str) -> ApiClient {
        ApiClient {
            base_url: self.api.base_url(),
            program: program.to_owned(),
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// `method path` (absolute, e.g. `/v1/me/orders`) as a portal calling with a rep's JWT:
    /// a token for `participant` of `program`, valid for ten minutes, that the local API's
    /// stand-in for the JWT authorizer verifies.
    pub async fn as_rep(
        &self,
        program: &str,
        participant: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        let token = local_jwt(&serde_json::json!({
            "sub": format!("portal-user-{participant}"),
            "carrot_program": program,
            "carrot_participant": participant,
            "exp": jiff::Timestamp::now().as_second() + 600,
        }));
        let authorization = format!("Bearer {token}");
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let url = format!("{}{path}", self.api.base_url());
        let headers = [
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        Response::from(http_request(method, &url, &headers, body).await?)
    }

    /// A participant's balance as stored, 0 when not enrolled.
    pub async fn balance(&self, program: &str, participant: &str) -> anyhow::Result<i64> {
        use carrot::ports::StatsReader;
        let state = self.store.participant(program, participant).await?;
        Ok(state.map_or(0, |s| s.balance))
    }

    /// Messages waiting or in flight on a queue.
    pub async fn queue_depth(&self, queue_url: &str) -> anyhow::Result<u64> {
        Ok(queue_counts(&self.sqs, queue_url).await?.iter().sum())
    }

    /// Every item in the table (test assertions on "nothing was written").
    pub async fn item_count(&self, client: &aws_sdk_dynamodb::Client) -> anyhow::Result<usize> {
        let mut count = 0;
        let mut start = None;
        loop {
            let output = client
                .scan()
                .table_name(self.resources.table())
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            count += output.count() as usize;
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(count),
            }
        }
    }

    /// What the hourly schedule does: invokes the close function with the template's input.
    pub async fn tick(&self) -> anyhow::Result<Value> {
        let schedule = self
            .resources
            .template()
            .schedule("CloseSchedule")
            .context("the template has no CloseSchedule")?;
        let input: Value = serde_json::from_str(schedule.input.as_deref().unwrap_or("{}"))?;
        Ok(self.close.handle(input).await?)
    }

    /// Closes (or resumes the close of) one period, as an operator's invocation would.
    pub async fn close_period(&self, program: &str, period: &str) -> anyhow::Result<Value> {
        Ok(self
            .close
            .handle(serde_json::json!({"program": program, "period": period}))
            .await?)
    }

    /// Receives every message of a queue until it is empty (nothing visible, in flight or
    /// delayed), deletes them, and returns their bodies in the order received. Fails if the
    /// queue still holds messages it cannot receive after a minute.
    pub async fn drain_queue(&self, queue_url: &str) -> anyhow::Result<Vec<String>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut bodies = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(60)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
                .context("receiving from a queue to drain it")?;
            let messages = received.messages();
            if messages.is_empty() {
                let depth = self.queue_depth(queue_url).await?;
                if depth == 0 {
                    return Ok(bodies);
                }
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "queue {queue_url} still holds {depth} messages it does not deliver"
                );
                continue;
            }
            for message in messages {
                bodies.push(message.body().unwrap_or_default().to_owned());
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e))
                        })
                        .context("deleting a drained message")?;
                }
            }
        }
    }

    /// Starts polling the notifications and email-events queues with the sender, as the
    /// deployed event source mappings do. Tests of the close drain the notifications queue
    /// themselves, so the sender is not started by default.
    pub fn start_sender(&mut self, stack: &LocalStack, options: SqsEventSourceOptions) {
        for (url, arn) in [
            (
                self.resources.queue_url("NotificationsQueue").to_owned(),
                self.resources.queue_arn("NotificationsQueue").to_owned(),
            ),
            (
                self.resources.email_events_queue_url().to_owned(),
                self.resources.email_events_queue_arn().to_owned(),
            ),
        ] {
            let notify = self.notify.clone();
            let handler: SqsHandler = Arc::new(move |event| -> BoxFut<_> {
                let notify = notify.clone();
                Box::pin(async move { notify.handle(event).await })
            });
            self.sender.push(SqsEventSource::start(
                stack.sqs_client(),
                url,
                arn,
                handler,
                options.clone(),
            ));
        }
    }

    /// Returns once the sender's queues have stayed empty (see `SqsEventSource::wait_idle`).
    pub async fn wait_sender_idle(&self, timeout: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(!self.sender.is_empty(), "the sender was not started");
        for source in &self.sender {
            source.wait_idle(timeout).await?;
        }
        Ok(())
    }

    /// What the hourly engagement schedule does, at the deployment's clock.
    pub async fn engage(&self) -> anyhow::Result<Value> {
        let schedule = self
            .resources
            .template()
            .schedule("EngageSchedule")
            .context("the template has no EngageSchedule")?;
        let input: Value = serde_json::from_str(schedule.input.as_deref().unwrap_or("{}"))?;
        Ok(self.engage.handle(input).await?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        for source in self.sender {
            source.shutdown().await;
        }
        self.award.shutdown().await;
        self.api.shutdown();
        self.resources.cleanup().await
    }
}

/// An HTTP response as a CRM sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Response {
    /// A JSON answer (`null` when the body is empty).
    fn from(response: crate::runner::HttpResponse) -> anyhow::Result<Self> {
        let content_type = response
            .header("content-type")
            .unwrap_or_default()
            .to_owned();
        let body = if response.body.is_empty() {
            Value::Null
        } else {
            response.json()?
        };
        Ok(Response {
            status: response.status,
            content_type,
            body,
        })
    }
}

/// A machine client holding one key of one program: signs every request with `X-Carrot-*`
/// headers. Paths are relative to the program's root, `/v1/programs/{program}`.
pub struct ApiClient {
    base_url: String,
    program: String,
    key_id: String,
    secret: String,
}

impl ApiClient {
    pub async fn post_events(&self, body: &Value) -> anyhow::Result<Response> {
        self.send(
            "POST",
            "/events",
            body.to_string().into_bytes(),
            "application/json",
        )
        .await
    }

    pub async fn put_program(&self, yaml: &str) -> anyhow::Result<Response> {
        self.send("PUT", "", yaml.as_bytes().to_vec(), "application/yaml")
            .await
    }

    pub async fn get_program(&self) -> anyhow::Result<Response> {
        self.send("GET", "", Vec::new(), "application/json").await
    }

    pub async fn enrol(&self, participant: &str, profile: &Value) -> anyhow::Result<Response> {
        let path = format!("/participants/{participant}");
        self.send(
            "PUT",
            &path,
            profile.to_string().into_bytes(),
            "application/json",
        )
        .await
    }

    /// `POST …/participants/{participant}/adjustments` with `{id, points, reason}`.
    pub async fn adjust(&self, participant: &str, adjustment: &Value) -> anyhow::Result<Response> {
        let path = format!("/participants/{participant}/adjustments");
        self.send(
            "POST",
            &path,
            adjustment.to_string().into_bytes(),
            "application/json",
        )
        .await
    }

    /// `POST …/calculator`: what `event` (an envelope without id) would earn.
    pub async fn calculate(&self, event: &Value) -> anyhow::Result<Response> {
        self.send(
            "POST",
            "/calculator",
            event.to_string().into_bytes(),
            "application/json",
        )
        .await
    }

    /// `method path` with a JSON body.
    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Response> {
        self.send(
            method,
            path,
            body.to_string().into_bytes(),
            "application/json",
        )
        .await
    }

    /// `GET {path}` (a query string included) with a JSON answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Response> {
        self.send("GET", path, Vec::new(), "application/json").await
    }

    /// `GET {path}` of a page that is not JSON (the HTML report): its status, content type
    /// and text.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<(u16, String, String)> {
        let now = jiff::Timestamp::now().as_second();
        let headers = signed_headers(&self.key_id, &self.secret, now, &[], "application/json");
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let url = format!("{}{}", self.base_url, self.path(path));
        let response = http_request("GET", &url, &headers, Vec::new()).await?;
        let content_type = response
            .header("content-type")
            .unwrap_or_default()
            .to_owned();
        Ok((response.status, content_type, response.text()))
    }

    /// `POST …/participants/{participant}/reinstate`.
    pub async fn reinstate(&self, participant: &str) -> anyhow::Result<Response> {
        let path = format!("/participants/{participant}/reinstate");
        self.send("POST", &path, Vec::new(), "application/json")
            .await
    }

    /// Signs `body` now and sends it.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<Response> {
        self.send_absolute(method, &self.path(path), body, content_type)
            .await
    }

    /// Signs `body` now and sends it to an absolute `path` (another program's, in isolation
    /// tests).
    pub async fn send_absolute(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<Response> {
        let now = jiff::Timestamp::now().as_second();
        let headers = signed_headers(&self.key_id, &self.secret, now, &body, content_type);
        self.request(method, path, body, &headers).await
    }

    /// Sends exactly these headers: for tests of bad signatures and stale timestamps.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Response> {
        self.request(method, &self.path(path), body, headers).await
    }

    async fn request(
        &self,
        method: &str,
        absolute_path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Response> {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let url = format!("{}{absolute_path}", self.base_url);
        Response::from(http_request(method, &url, &headers, body).await?)
    }

    /// `path` under the program's root.
    fn path(&self, path: &str) -> String {
        format!("/v1/programs/{}{path}", self.program)
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// An item's size as DynamoDB bills it: attribute names plus values (strings in UTF-8 bytes,
/// numbers about one byte per two significant digits plus one, 3 bytes of overhead and 1 per
/// element for maps and lists). Write units are per started KB of it.
pub fn item_size(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    fn number(text: &str) -> usize {
        let digits = text.trim_start_matches('-').replace('.', "");
        let significant = digits
            .trim_start_matches('0')
            .trim_end_matches('0')
            .len()
            .max(1);
        significant.div_ceil(2) + 1
    }
    fn value(v: &V) -> usize {
        match v {
            V::S(s) => s.len(),
            V::N(n) => number(n),
            V::B(b) => b.as_ref().len(),
            V::Bool(_) | V::Null(_) => 1,
            V::Ss(items) => items.iter().map(String::len).sum(),
            V::Ns(items) => items.iter().map(|n| number(n)).sum(),
            V::L(items) => 3 + items.iter().map(|v| 1 + value(v)).sum::<usize>(),
            V::M(map) => {
                3 + map
                    .iter()
                    .map(|(k, v)| 1 + k.len() + value(v))
                    .sum::<usize>()
            }
            _ => 0,
        }
    }
    item.iter().map(|(name, v)| name.len() + value(v)).sum()
}
