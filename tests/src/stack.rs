//! The local AWS stack: AWS's DynamoDB Local (Java) and `moto_server` (SQS, Secrets Manager,
//! SES v2, SNS, Scheduler), on loopback only, with the project's resources created from
//! `infra/template.yaml`.
//!
//! - [`LocalStack::start_or_reuse`]: one stack per process (tests in one test binary share it).
//!   Reuses `CARROT_DYNAMODB_ENDPOINT` and `CARROT_MOTO_ENDPOINT` when both are set.
//! - [`LocalStack::start_owned`]: a stack of its own, stopped when dropped (the demo).
//! - [`LocalStack::provision`]: every table, queue, topic (with its queue subscriptions),
//!   secret and SES configuration set of the template under a unique prefix, and a verified
//!   sender address of its own, so tests run in parallel against one stack. Schedules are not
//!   created: the local runner plays the scheduler and invokes their targets itself.
//! - [`LocalStack::sent_emails`] and [`LocalStack::sent_sms`]: what moto's SES v2 and SNS
//!   recorded as sent.
//! - [`LocalStack::subscribe_queue`]: a queue subscribed to a topic, so tests read what is
//!   published there with plain SQS ReceiveMessage.
//! - Every log line of the process (the handlers' included) is also written as JSON to
//!   `target/test-logs/{binary}-{pid}.jsonl` from the first `start_or_reuse` on, for
//!   `scripts/scan-logs.py` to check that none carries an e-mail address, phone or secret.
//!
//! The server processes never outlive the process that started them: each runs under a small
//! `sh` watchdog that kills it once the parent process is gone (even when statics are never
//! dropped, on a panic, or on SIGKILL of the parent), and an owned stack kills them on drop.
//!
//! Tools come from `scripts/setup-local.sh`: `.local/venv/bin/moto_server` and the directory of
//! `DynamoDBLocal.jar` named in `.local/dynamodb-local.path` (overridable with
//! `CARROT_MOTO_SERVER` and `CARROT_DYNAMODB_LOCAL_DIR`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use aws_config::identity::IdentityCache;
// The non-deprecated names live in aws-runtime, which is not a direct dependency.
#[allow(deprecated)]
use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_sqs::types::QueueAttributeName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::template::{IndexDef, KeyElement, SecretValue, Template, TemplateValue, Throughput};
use rand::Rng;

/// The region every local client uses.
pub const REGION: &str = "eu-north-1";
/// moto's account id (it appears in ARNs and queue URLs).
pub const ACCOUNT_ID: &str = "123456789012";
/// Environment variable naming a running DynamoDB Local endpoint to reuse.
pub const ENV_DYNAMODB_ENDPOINT: &str = "CARROT_DYNAMODB_ENDPOINT";
/// Environment variable naming a running moto endpoint to reuse.
pub const ENV_MOTO_ENDPOINT: &str = "CARROT_MOTO_ENDPOINT";

const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running local stack (or endpoints of one started elsewhere).
#[derive(Debug)]
pub struct LocalStack {
    dynamodb_endpoint: String,
    moto_endpoint: String,
    sdk_config: SdkConfig,
    processes: Vec<ManagedProcess>,
    startup: Duration,
}

static SHARED: tokio::sync::OnceCell<LocalStack> = tokio::sync::OnceCell::const_new();

impl LocalStack {
    /// The process-wide stack: started on first use (or taken from `CARROT_DYNAMODB_ENDPOINT`
    /// and `CARROT_MOTO_ENDPOINT`), shared by every caller after that. Its servers stop when
    /// the process ends.
    pub async fn start_or_reuse() -> anyhow::Result<&'static LocalStack> {
        record_logs_once();
        SHARED
            .get_or_try_init(|| async {
                match (
                    std::env::var(ENV_DYNAMODB_ENDPOINT).ok(),
                    std::env::var(ENV_MOTO_ENDPOINT).ok(),
                ) {
                    (Some(d), Some(m)) if !d.is_empty() && !m.is_empty() => {
                        Self::connect(&d, &m).await.with_context(|| {
                            format!(
                                "reusing the stack named by {ENV_DYNAMODB_ENDPOINT}={d} and \
                                 {ENV_MOTO_ENDPOINT}={m}"
                            )
                        })
                    }
                    _ => Self::start_owned().await,
                }
            })
            .await
    }

    /// Starts a stack of its own (always new processes); they are killed when it is dropped
    /// (or, at the latest, when this process ends).
    pub async fn start_owned() -> anyhow::Result<LocalStack> {
        let tools = Tools::locate()?;
        let timeout = std::env::var("CARROT_STACK_START_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_START_TIMEOUT);
        let mut last_err = None;
        // A port picked free may be taken before the server binds it: try again with new ones.
        for _attempt in 0..3 {
            match Self::start_once(&tools, timeout).await {
                Ok(stack) => return Ok(stack),
                Err(e) => {
                    let retry = e.downcast_ref::<ExitedEarly>().is_some();
                    tracing::warn!(error = %format!("{e:#}"), "local stack did not start");
                    last_err = Some(e);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    async fn start_once(tools: &Tools, timeout: Duration) -> anyhow::Result<LocalStack> {
        let started = Instant::now();
        let [ddb_port, moto_port] = free_ports::<2>()?;
        let log_dir = log_dir()?;
        let seq = NEXT_STACK.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{seq}", std::process::id());

        // moto starts while the DynamoDB Local launcher compiles (first time only).
        let moto = tools.spawn_moto(moto_port, &log_dir.join(format!("{tag}-moto.log")))?;
        let launcher = {
            let (tools, base) = (tools.clone(), log_dir.clone());
            tokio::task::spawn_blocking(move || tools.compiled_launcher(&base))
                .await
                .context("compiling the DynamoDB Local launcher")?
        };
        let ddb = tools.spawn_dynamodb(
            ddb_port,
            &log_dir.join(format!("{tag}-dynamodb.log")),
            launcher.as_deref(),
        )?;
        let mut processes = vec![ddb, moto];

        let deadline = Instant::now() + timeout;
        {
            let (ddb, rest) = processes.split_at_mut(1);
            tokio::try_join!(
                wait_ready(&mut ddb[0], ddb_port, deadline),
                wait_ready(&mut rest[0], moto_port, deadline)
            )?;
        }

        let dynamodb_endpoint = format!("http://127.0.0.1:{ddb_port}");
        let moto_endpoint = format!("http://127.0.0.1:{moto_port}");
        let sdk_config = build_sdk_config(&dynamodb_endpoint, &moto_endpoint).await?;
        let stack = LocalStack {
            dynamodb_endpoint,
            moto_endpoint,
            sdk_config,
            processes: std::mem::take(&mut processes),
            startup: Duration::ZERO,
        };
        stack.check_services().await?;
        let startup = started.elapsed();
        tracing::info!(
            dynamodb = %stack.dynamodb_endpoint,
            moto = %stack.moto_endpoint,
            startup_ms = startup.as_millis() as u64,
            "local stack started"
        );
        Ok(LocalStack { startup, ..stack })
    }

    /// Uses a stack that is already running at these endpoints (loopback only).
    pub async fn connect(dynamodb_endpoint: &str, moto_endpoint: &str) -> anyhow::Result<Self> {
        let started = Instant::now();
        let dynamodb_endpoint = loopback_endpoint(dynamodb_endpoint)?;
        let moto_endpoint = loopback_endpoint(moto_endpoint)?;
        let sdk_config = build_sdk_config(&dynamodb_endpoint, &moto_endpoint).await?;
        let stack = LocalStack {
            dynamodb_endpoint,
            moto_endpoint,
            sdk_config,
            processes: Vec::new(),
            startup: Duration::ZERO,
        };
        stack.check_services().await?;
        Ok(LocalStack {
            startup: started.elapsed(),
            ..stack
        })
    }

    async fn check_services(&self) -> anyhow::Result<()> {
        self.dynamodb_client()
            .list_tables()
            .limit(1)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))
            .with_context(|| format!("DynamoDB Local at {} answers", self.dynamodb_endpoint))?;
        self.sqs_client()
            .list_queues()
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            .with_context(|| format!("moto (SQS) at {} answers", self.moto_endpoint))?;
        Ok(())
    }

    /// `http://127.0.0.1:PORT` of DynamoDB Local.
    pub fn dynamodb_endpoint(&self) -> &str {
        &self.dynamodb_endpoint
    }

    /// `http://127.0.0.1:PORT` of moto (SQS, Secrets Manager, SES v2, SNS, Scheduler, ...).
    pub fn moto_endpoint(&self) -> &str {
        &self.moto_endpoint
    }

    /// The environment variables that let another process reuse this stack.
    pub fn env_vars(&self) -> [(&'static str, String); 2] {
        [
            (ENV_DYNAMODB_ENDPOINT, self.dynamodb_endpoint.clone()),
            (ENV_MOTO_ENDPOINT, self.moto_endpoint.clone()),
        ]
    }

    /// Time from the call to the stack answering (start, or connect when reused).
    pub fn startup_duration(&self) -> Duration {
        self.startup
    }

    /// Whether this value started (and owns) the server processes.
    pub fn owns_processes(&self) -> bool {
        !self.processes.is_empty()
    }

    /// Shared SDK configuration: dummy static credentials, region `eu-north-1`, standard
    /// retries (3 attempts), bounded timeouts, and per-service endpoints: any client built
    /// from it (`aws_sdk_dynamodb::Client::new(&cfg)`) reaches DynamoDB Local for DynamoDB and
    /// moto for every other service.
    ///
    /// It holds no connections: build clients in the tokio runtime that uses them.
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config.clone()
    }

    /// A new DynamoDB client for DynamoDB Local.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config)
            .endpoint_url(&self.dynamodb_endpoint)
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// A new SQS client for moto.
    pub fn sqs_client(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(&self.sdk_config)
            .endpoint_url(&self.moto_endpoint)
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    /// A new SNS client for moto.
    pub fn sns_client(&self) -> aws_sdk_sns::Client {
        let conf = aws_sdk_sns::config::Builder::from(&self.sdk_config)
            .endpoint_url(&self.moto_endpoint)
            .build();
        aws_sdk_sns::Client::from_conf(conf)
    }

    /// A new Secrets Manager client for moto.
    pub fn secrets_client(&self) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::config::Builder::from(&self.sdk_config)
            .endpoint_url(&self.moto_endpoint)
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    /// A new SES (API v2) client for moto.
    pub fn sesv2_client(&self) -> aws_sdk_sesv2::Client {
        let conf = aws_sdk_sesv2::config::Builder::from(&self.sdk_config)
            .endpoint_url(&self.moto_endpoint)
            .build();
        aws_sdk_sesv2::Client::from_conf(conf)
    }

    /// Every email moto's SES accepted since it started, in sending order, from every
    /// deployment on this stack: pick a deployment's by its sender
    /// ([`Resources::sender_email`]).
    pub async fn sent_emails(&self) -> anyhow::Result<Vec<SentEmail>> {
        let data = self.moto_data().await?;
        data["ses"]["RawMessage"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let text = |name: &str| {
                    m[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow!("moto's SES RawMessage has no {name}: {m}"))
                };
                let mut to: Vec<String> = Vec::new();
                // moto adds the message's To header to the API's destinations: keep each
                // address once, without a display name.
                for destination in m["destinations"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    let address = bare_address(destination.as_str().unwrap_or_default());
                    if !address.is_empty() && !to.contains(&address) {
                        to.push(address);
                    }
                }
                Ok(SentEmail {
                    id: text("id")?,
                    from: text("source")?,
                    to,
                    raw: text("raw_data")?,
                })
            })
            .collect()
    }

    /// Every text message moto's SNS accepted since it started, in sending order, from every
    /// deployment on this stack: pick a test's by its phone numbers.
    pub async fn sent_sms(&self) -> anyhow::Result<Vec<SentSms>> {
        let data = self.moto_data().await?;
        data["sns"]["SMS"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let text = |name: &str| {
                    m[name]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow!("moto's SNS SMS has no {name}: {m}"))
                };
                Ok(SentSms {
                    id: text("message_id")?,
                    phone: text("phone_number")?,
                    message: text("message")?,
                })
            })
            .collect()
    }

    /// moto's whole in-memory state (`/moto-api/data.json`): every model instance of every
    /// service, as JSON.
    async fn moto_data(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/moto-api/data.json", self.moto_endpoint);
        let response = crate::runner::http_request("GET", &url, &[], Vec::new()).await?;
        anyhow::ensure!(
            response.status == 200,
            "GET {url}: {} {}",
            response.status,
            response.text()
        );
        response.json().with_context(|| format!("GET {url}"))
    }

    /// Creates every resource of `infra/template.yaml` the local stack serves, named
    /// `"{prefix}-{LogicalId}"`.
    pub async fn provision(&self, prefix: &str) -> anyhow::Result<Resources> {
        let template = Template::load()?;
        self.provision_template(&template, prefix).await
    }

    /// Creates every table, queue, topic, queue subscription, secret and SES configuration
    /// set of `template`, named `"{prefix}-{LogicalId}"`, with the queues' redrive policies
    /// pointing at the created dead-letter queues. When the template takes a `SenderEmail`,
    /// the prefix gets a sender address of its own, verified in SES.
    pub async fn provision_template(
        &self,
        template: &Template,
        prefix: &str,
    ) -> anyhow::Result<Resources> {
        validate_prefix(prefix)?;
        let mut res = Resources {
            prefix: prefix.to_string(),
            tables: BTreeMap::new(),
            queues: BTreeMap::new(),
            topics: BTreeMap::new(),
            subscription_queue_urls: Mutex::new(Vec::new()),
            secrets: BTreeMap::new(),
            configuration_sets: BTreeMap::new(),
            parameters: BTreeMap::new(),
            sender_identity: None,
            template: template.clone(),
            dynamodb: self.dynamodb_client(),
            sqs: self.sqs_client(),
            sns: self.sns_client(),
            secrets_manager: self.secrets_client(),
            sesv2: self.sesv2_client(),
            cleaned: AtomicBool::new(false),
        };
        match create_all(&mut res, template).await {
            Ok(()) => Ok(res),
            Err(e) => {
                if let Err(c) = res.cleanup().await {
                    tracing::warn!(error = %format!("{c:#}"), "cleanup after failed provision");
                }
                Err(e.context(format!("provisioning the template under prefix {prefix:?}")))
            }
        }
    }

    /// Creates a queue (cleaned up with `resources`) subscribed to the topic with raw message
    /// delivery, so that each message published to the topic arrives as a plain SQS message
    /// whose body is the published message. Returns the queue's URL.
    pub async fn subscribe_queue(
        &self,
        resources: &Resources,
        topic_logical_id: &str,
    ) -> anyhow::Result<String> {
        let topic = resources.topics.get(topic_logical_id).ok_or_else(|| {
            anyhow!("the template has no topic {topic_logical_id} to subscribe to")
        })?;
        let seq = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{topic_logical_id}-sub{seq}", resources.prefix);
        if name.len() > 80 {
            bail!("queue name {name:?} is longer than SQS's 80 characters: use a shorter prefix");
        }
        let sqs = self.sqs_client();
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            .with_context(|| format!("creating queue {name}"))?
            .queue_url
            .ok_or_else(|| anyhow!("CreateQueue {name} returned no URL"))?;
        // Registered before anything else can fail, so that cleanup finds it.
        resources
            .subscription_queue_urls
            .lock()
            .expect("subscription queue list is not poisoned")
            .push(url.clone());
        let queue_arn = queue_arn(&sqs, &url).await?;
        // moto delivers without a queue policy allowing the topic to send (AWS would need one).
        self.sns_client()
            .subscribe()
            .topic_arn(&topic.arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sns::error::DisplayErrorContext(e)))
            .with_context(|| format!("subscribing {name} to {}", topic.arn))?;
        Ok(url)
    }

    /// Stops the servers now (an owned stack also does so when dropped).
    pub fn shutdown(mut self) {
        self.processes.clear();
    }
}

async fn create_all(res: &mut Resources, template: &Template) -> anyhow::Result<()> {
    for table in &template.tables {
        let name = format!("{}-{}", res.prefix, table.logical_id);
        create_table(&res.dynamodb, &name, table)
            .await
            .with_context(|| format!("creating table {name}"))?;
        res.tables.insert(table.logical_id.clone(), name);
    }
    for q in template.queues_in_creation_order() {
        let mut name = format!("{}-{}", res.prefix, q.logical_id);
        if q.fifo {
            name.push_str(".fifo");
        }
        if name.len() > 80 {
            bail!("queue name {name:?} is longer than SQS's 80 characters: use a shorter prefix");
        }
        let mut req = res.sqs.create_queue().queue_name(&name).attributes(
            QueueAttributeName::VisibilityTimeout,
            q.visibility_timeout_secs.to_string(),
        );
        if let Some(v) = q.message_retention_secs {
            req = req.attributes(QueueAttributeName::MessageRetentionPeriod, v.to_string());
        }
        if let Some(v) = q.delay_secs {
            req = req.attributes(QueueAttributeName::DelaySeconds, v.to_string());
        }
        if let Some(v) = q.receive_wait_time_secs {
            req = req.attributes(
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                v.to_string(),
            );
        }
        if q.fifo {
            req = req.attributes(QueueAttributeName::FifoQueue, "true");
            if q.content_based_deduplication {
                req = req.attributes(QueueAttributeName::ContentBasedDeduplication, "true");
            }
        }
        if let Some(r) = &q.redrive {
            let dlq = res.queues.get(&r.dead_letter_queue).ok_or_else(|| {
                anyhow!("dead-letter queue {} was not created", r.dead_letter_queue)
            })?;
            let policy = serde_json::json!({
                "deadLetterTargetArn": dlq.arn,
                "maxReceiveCount": r.max_receive_count,
            });
            req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let out = req
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            .with_context(|| format!("creating queue {name}"))?;
        let url = out
            .queue_url
            .ok_or_else(|| anyhow!("CreateQueue {name} returned no URL"))?;
        let arn = queue_arn(&res.sqs, &url).await?;
        res.queues
            .insert(q.logical_id.clone(), QueueInfo { name, url, arn });
    }
    for topic in &template.topics {
        let mut name = format!("{}-{}", res.prefix, topic.logical_id);
        let mut req = res.sns.create_topic();
        if topic.fifo {
            name.push_str(".fifo");
            req = req.attributes("FifoTopic", "true");
        }
        let arn = req
            .name(&name)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sns::error::DisplayErrorContext(e)))
            .with_context(|| format!("creating topic {name}"))?
            .topic_arn
            .ok_or_else(|| anyhow!("CreateTopic {name} returned no ARN"))?;
        res.topics
            .insert(topic.logical_id.clone(), TopicInfo { name, arn });
    }
    for subscription in &template.subscriptions {
        let topic = &res.topics[&subscription.topic].arn;
        let queue = &res.queues[&subscription.queue].arn;
        // moto delivers without the queue policy that lets the topic send (AWS needs it).
        // Deleting the topic deletes the subscription.
        res.sns
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(queue)
            .attributes(
                "RawMessageDelivery",
                subscription.raw_message_delivery.to_string(),
            )
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sns::error::DisplayErrorContext(e)))
            .with_context(|| format!("subscribing {queue} to {topic}"))?;
    }
    for secret in &template.secrets {
        let name = format!("{}-{}", res.prefix, secret.logical_id);
        let value = match &secret.value {
            SecretValue::Literal(value) => value.clone(),
            SecretValue::Generated { length } => rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(*length as usize)
                .map(char::from)
                .collect(),
        };
        let arn = res
            .secrets_manager
            .create_secret()
            .name(&name)
            .secret_string(&value)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))
            .with_context(|| format!("creating secret {name}"))?
            .arn
            .ok_or_else(|| anyhow!("CreateSecret {name} returned no ARN"))?;
        res.secrets
            .insert(secret.logical_id.clone(), SecretInfo { name, arn, value });
    }
    for set in &template.configuration_sets {
        let name = format!("{}-{}", res.prefix, set.logical_id);
        res.sesv2
            .create_configuration_set()
            .configuration_set_name(&name)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sesv2::error::DisplayErrorContext(e)))
            .with_context(|| format!("creating SES configuration set {name}"))?;
        res.configuration_sets.insert(set.logical_id.clone(), name);
    }
    // The template leaves the sender's SES identity to the operator: here each prefix sends
    // from an address of its own (so a test finds its deployment's emails by sender), which
    // CreateEmailIdentity verifies at once on moto.
    if template.parameters.contains_key(SENDER_EMAIL_PARAMETER) {
        let sender = format!("carrot@{}.local.test", res.prefix.to_ascii_lowercase());
        res.sesv2
            .create_email_identity()
            .email_identity(&sender)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sesv2::error::DisplayErrorContext(e)))
            .with_context(|| format!("verifying the sender {sender} in SES"))?;
        res.sender_identity = Some(sender.clone());
        res.parameters
            .insert(SENDER_EMAIL_PARAMETER.to_owned(), sender);
    }
    // `template.schedules` are deliberately not created: moto's scheduler stores schedules but
    // never fires them. The local runner plays the scheduler and invokes the target function
    // with the schedule's input itself.
    Ok(())
}

/// The template's parameter naming the address notification emails come from.
const SENDER_EMAIL_PARAMETER: &str = "SenderEmail";

/// `carrot@example.com` of `Name <carrot@example.com>`.
fn bare_address(address: &str) -> String {
    match (address.rfind('<'), address.rfind('>')) {
        (Some(start), Some(end)) if start < end => address[start + 1..end].trim().to_owned(),
        _ => address.trim().to_owned(),
    }
}

/// An email as moto's SES recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentEmail {
    /// The message id SES returned to the sender.
    pub id: String,
    pub from: String,
    /// The recipients' addresses.
    pub to: Vec<String>,
    /// The whole MIME message.
    pub raw: String,
}

/// A text message as moto's SNS recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentSms {
    /// The message id SNS returned to the sender.
    pub id: String,
    pub phone: String,
    pub message: String,
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
        .with_context(|| format!("reading the ARN of {url}"))?;
    out.attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("queue {url} has no QueueArn attribute"))
}

fn key_schema(keys: &[KeyElement]) -> anyhow::Result<Vec<ddb::KeySchemaElement>> {
    keys.iter()
        .map(|k| {
            Ok(ddb::KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(ddb::KeyType::from(k.key_type.as_str()))
                .build()?)
        })
        .collect()
}

fn throughput(t: &Option<Throughput>) -> anyhow::Result<Option<ddb::ProvisionedThroughput>> {
    t.map(|t| {
        Ok(ddb::ProvisionedThroughput::builder()
            .read_capacity_units(t.read_capacity_units)
            .write_capacity_units(t.write_capacity_units)
            .build()?)
    })
    .transpose()
}

fn projection(ix: &IndexDef) -> ddb::Projection {
    let mut p = ddb::Projection::builder()
        .projection_type(ddb::ProjectionType::from(ix.projection_type.as_str()));
    for a in &ix.non_key_attributes {
        p = p.non_key_attributes(a);
    }
    p.build()
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    t: &crate::template::TableDef,
) -> anyhow::Result<()> {
    let provisioned = t.billing_mode != "PAY_PER_REQUEST";
    let default_tp = Some(Throughput {
        read_capacity_units: 5,
        write_capacity_units: 5,
    });
    let mut req = client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(key_schema(&t.key_schema)?))
        .billing_mode(ddb::BillingMode::from(t.billing_mode.as_str()));
    for a in &t.attribute_definitions {
        req = req.attribute_definitions(
            ddb::AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ddb::ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()?,
        );
    }
    if provisioned {
        req = req.set_provisioned_throughput(throughput(if t.provisioned_throughput.is_some() {
            &t.provisioned_throughput
        } else {
            &default_tp
        })?);
    }
    for ix in &t.global_secondary_indexes {
        let mut g = ddb::GlobalSecondaryIndex::builder()
            .index_name(&ix.index_name)
            .set_key_schema(Some(key_schema(&ix.key_schema)?))
            .projection(projection(ix));
        if provisioned {
            g = g.set_provisioned_throughput(throughput(if ix.provisioned_throughput.is_some() {
                &ix.provisioned_throughput
            } else {
                &default_tp
            })?);
        }
        req = req.global_secondary_indexes(g.build()?);
    }
    for ix in &t.local_secondary_indexes {
        req = req.local_secondary_indexes(
            ddb::LocalSecondaryIndex::builder()
                .index_name(&ix.index_name)
                .set_key_schema(Some(key_schema(&ix.key_schema)?))
                .projection(projection(ix))
                .build()?,
        );
    }
    if let Some(view) = &t.stream_view_type {
        req = req.stream_specification(
            ddb::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(ddb::StreamViewType::from(view.as_str()))
                .build()?,
        );
    }
    req.send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
    if let Some(attr) = &t.ttl_attribute {
        // DynamoDB Local accepts the setting (it does not expire items).
        let spec = ddb::TimeToLiveSpecification::builder()
            .attribute_name(attr)
            .enabled(true)
            .build()?;
        if let Err(e) = client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            tracing::warn!(
                table = name,
                error = %aws_sdk_dynamodb::error::DisplayErrorContext(e),
                "DynamoDB Local did not take the TTL setting"
            );
        }
    }
    Ok(())
}

fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    if prefix.is_empty()
        || prefix.len() > 40
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!(
            "resource prefix {prefix:?} must be 1 to 40 characters of [A-Za-z0-9_-] \
             (SQS queue names allow no more)"
        );
    }
    Ok(())
}

/// A created queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// A created topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub arn: String,
}

/// A created secret, with the value it was created with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub arn: String,
    pub value: String,
}

/// The resources created by [`LocalStack::provision`] for one prefix (and the queues
/// [`LocalStack::subscribe_queue`] adds).
///
/// Call [`Resources::cleanup`] at the end; dropping it without doing so deletes them in the
/// background when a tokio runtime is at hand (best effort).
#[derive(Debug)]
pub struct Resources {
    prefix: String,
    tables: BTreeMap<String, String>,
    queues: BTreeMap<String, QueueInfo>,
    topics: BTreeMap<String, TopicInfo>,
    /// Queues created by [`LocalStack::subscribe_queue`], deleted with the rest.
    subscription_queue_urls: Mutex<Vec<String>>,
    secrets: BTreeMap<String, SecretInfo>,
    /// SES configuration sets: logical id → name.
    configuration_sets: BTreeMap<String, String>,
    /// Values of template parameters that have no default (the sender address).
    parameters: BTreeMap<String, String>,
    /// The SES identity verified for this prefix's sender.
    sender_identity: Option<String>,
    template: Template,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    secrets_manager: aws_sdk_secretsmanager::Client,
    sesv2: aws_sdk_sesv2::Client,
    cleaned: AtomicBool,
}

impl Resources {
    /// `"{base}-{8 random hex digits}"`, a prefix no other test uses.
    pub fn unique_prefix(base: &str) -> String {
        format!("{base}-{:08x}", rand::random::<u32>())
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The template the resources were created from.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The created table's name, if the template has that table.
    pub fn try_table_name(&self, logical_id: &str) -> Option<&str> {
        self.tables.get(logical_id).map(String::as_str)
    }

    /// The created table's name. Panics when the template has no such table.
    pub fn table_name(&self, logical_id: &str) -> &str {
        self.try_table_name(logical_id)
            .unwrap_or_else(|| panic!("the template has no table {logical_id}"))
    }

    /// The created queue, if the template has it.
    pub fn queue(&self, logical_id: &str) -> Option<&QueueInfo> {
        self.queues.get(logical_id)
    }

    fn queue_or_panic(&self, logical_id: &str) -> &QueueInfo {
        self.queue(logical_id)
            .unwrap_or_else(|| panic!("the template has no queue {logical_id}"))
    }

    /// The created queue's URL. Panics when the template has no such queue.
    pub fn queue_url(&self, logical_id: &str) -> &str {
        &self.queue_or_panic(logical_id).url
    }

    /// The created queue's ARN. Panics when the template has no such queue.
    pub fn queue_arn(&self, logical_id: &str) -> &str {
        &self.queue_or_panic(logical_id).arn
    }

    /// The created topic's ARN. Panics when the template has no such topic.
    pub fn topic_arn(&self, logical_id: &str) -> &str {
        &self
            .topics
            .get(logical_id)
            .unwrap_or_else(|| panic!("the template has no topic {logical_id}"))
            .arn
    }

    /// Every created topic: logical id → topic.
    pub fn topics(&self) -> &BTreeMap<String, TopicInfo> {
        &self.topics
    }

    /// Every created table: logical id → name.
    pub fn tables(&self) -> &BTreeMap<String, String> {
        &self.tables
    }

    /// Every created queue: logical id → queue.
    pub fn queues(&self) -> &BTreeMap<String, QueueInfo> {
        &self.queues
    }

    /// `CarrotTable`'s name.
    pub fn table(&self) -> &str {
        self.table_name("CarrotTable")
    }

    pub fn events_queue_url(&self) -> &str {
        self.queue_url("EventsQueue")
    }

    pub fn events_queue_arn(&self) -> &str {
        self.queue_arn("EventsQueue")
    }

    pub fn events_dlq_url(&self) -> &str {
        self.queue_url("EventsDeadLetterQueue")
    }

    pub fn events_dlq_arn(&self) -> &str {
        self.queue_arn("EventsDeadLetterQueue")
    }

    /// The created secret. Panics when the template has no such secret.
    pub fn secret(&self, logical_id: &str) -> &SecretInfo {
        self.secrets
            .get(logical_id)
            .unwrap_or_else(|| panic!("the template has no secret {logical_id}"))
    }

    /// Every created secret: logical id → secret.
    pub fn secrets(&self) -> &BTreeMap<String, SecretInfo> {
        &self.secrets
    }

    /// The created SES configuration set's name. Panics when the template has no such set.
    pub fn configuration_set(&self, logical_id: &str) -> &str {
        self.configuration_sets
            .get(logical_id)
            .unwrap_or_else(|| panic!("the template has no configuration set {logical_id}"))
    }

    /// The address this prefix's notification emails come from, verified in moto's SES.
    /// Panics when the template takes no `SenderEmail`.
    pub fn sender_email(&self) -> &str {
        self.parameters
            .get(SENDER_EMAIL_PARAMETER)
            .expect("the template takes a SenderEmail")
    }

    /// `UnsubscribeSecret`'s ARN (what the functions get in `UNSUBSCRIBE_SECRET_ARN`).
    pub fn unsubscribe_secret_arn(&self) -> &str {
        &self.secret("UnsubscribeSecret").arn
    }

    /// `UnsubscribeSecret`'s value: the key that signs unsubscribe links.
    pub fn unsubscribe_secret(&self) -> &str {
        &self.secret("UnsubscribeSecret").value
    }

    /// `EmailConfigurationSet`'s name (what the notify function gets in
    /// `EMAIL_CONFIGURATION_SET`).
    pub fn email_configuration_set(&self) -> &str {
        self.configuration_set("EmailConfigurationSet")
    }

    pub fn email_events_queue_url(&self) -> &str {
        self.queue_url("EmailEventsQueue")
    }

    pub fn email_events_queue_arn(&self) -> &str {
        self.queue_arn("EmailEventsQueue")
    }

    /// `EmailEventsTopic`'s ARN: what SES publishes email events to (moto does not; a test
    /// publishes an SES event here and it reaches `EmailEventsQueue` in SNS's envelope).
    pub fn email_events_topic_arn(&self) -> &str {
        self.topic_arn("EmailEventsTopic")
    }

    /// What a template value evaluates to with these resources: `!Ref` of a table is its
    /// name, of a queue its URL, of a topic or a secret its ARN, of a configuration set its
    /// name, of a parameter its local value or else its default; `!GetAtt`
    /// `Arn`, `QueueName`, `QueueUrl`, `TopicArn`, `TopicName`; `!Sub` with those and
    /// `AWS::Region`, `AWS::AccountId`, `AWS::Partition`.
    pub fn resolve(&self, value: &TemplateValue) -> Option<String> {
        match value {
            TemplateValue::Literal(s) => Some(s.clone()),
            TemplateValue::Ref(name) => self.resolve_ref(name),
            TemplateValue::GetAtt(res, attr) => self.resolve_get_att(res, attr),
            TemplateValue::Sub(fmt) => {
                let mut out = String::new();
                let mut rest = fmt.as_str();
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let end = after.find('}')?;
                    let var = &after[..end];
                    if let Some(literal) = var.strip_prefix('!') {
                        out.push_str("${");
                        out.push_str(literal);
                        out.push('}');
                    } else {
                        let v = match var.split_once('.') {
                            Some((res, attr)) => self.resolve_get_att(res, attr)?,
                            None => self.resolve_ref(var)?,
                        };
                        out.push_str(&v);
                    }
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                Some(out)
            }
            TemplateValue::Other(_) => None,
        }
    }

    fn resolve_ref(&self, name: &str) -> Option<String> {
        match name {
            "AWS::Region" => Some(REGION.to_string()),
            "AWS::AccountId" => Some(ACCOUNT_ID.to_string()),
            "AWS::Partition" => Some("aws".to_string()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_string()),
            "AWS::StackName" => Some(self.prefix.clone()),
            _ => self
                .tables
                .get(name)
                .cloned()
                .or_else(|| self.queues.get(name).map(|q| q.url.clone()))
                .or_else(|| self.topics.get(name).map(|t| t.arn.clone()))
                .or_else(|| self.secrets.get(name).map(|s| s.arn.clone()))
                .or_else(|| self.configuration_sets.get(name).cloned())
                .or_else(|| self.parameters.get(name).cloned())
                .or_else(|| self.template.parameters.get(name).cloned().flatten()),
        }
    }

    fn resolve_get_att(&self, res: &str, attr: &str) -> Option<String> {
        if let Some(q) = self.queues.get(res) {
            return match attr {
                "Arn" => Some(q.arn.clone()),
                "QueueName" => Some(q.name.clone()),
                "QueueUrl" => Some(q.url.clone()),
                _ => None,
            };
        }
        if let Some(t) = self.topics.get(res) {
            return match attr {
                "TopicArn" => Some(t.arn.clone()),
                "TopicName" => Some(t.name.clone()),
                _ => None,
            };
        }
        if let Some(t) = self.tables.get(res) {
            return (attr == "Arn")
                .then(|| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{t}"));
        }
        None
    }

    /// A function's environment variables from the template, resolved against these
    /// resources (variables that cannot be resolved locally are left out).
    pub fn function_environment(&self, function: &str) -> BTreeMap<String, String> {
        self.template
            .function(function)
            .map(|f| {
                f.environment
                    .iter()
                    .filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Keeps the resources when this value is dropped (no background cleanup).
    pub fn keep(&self) {
        self.cleaned.store(true, Ordering::SeqCst);
    }

    /// Deletes every resource created for the prefix (those already gone are fine).
    pub async fn cleanup(&self) -> anyhow::Result<()> {
        self.cleaned.store(true, Ordering::SeqCst);
        delete_all(self.deletion()).await
    }

    /// What [`Resources::cleanup`] deletes, detached from `self` (for the background cleanup).
    fn deletion(&self) -> Deletion {
        let mut queue_urls: Vec<String> = self.queues.values().map(|q| q.url.clone()).collect();
        queue_urls.extend(
            self.subscription_queue_urls
                .lock()
                .expect("subscription queue list is not poisoned")
                .iter()
                .cloned(),
        );
        Deletion {
            dynamodb: self.dynamodb.clone(),
            sqs: self.sqs.clone(),
            sns: self.sns.clone(),
            secrets_manager: self.secrets_manager.clone(),
            sesv2: self.sesv2.clone(),
            tables: self.tables.values().cloned().collect(),
            queue_urls,
            topic_arns: self.topics.values().map(|t| t.arn.clone()).collect(),
            secret_arns: self.secrets.values().map(|s| s.arn.clone()).collect(),
            configuration_sets: self.configuration_sets.values().cloned().collect(),
            email_identities: self.sender_identity.iter().cloned().collect(),
        }
    }
}

/// Resources of one prefix to delete.
struct Deletion {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    secrets_manager: aws_sdk_secretsmanager::Client,
    sesv2: aws_sdk_sesv2::Client,
    tables: Vec<String>,
    queue_urls: Vec<String>,
    topic_arns: Vec<String>,
    secret_arns: Vec<String>,
    configuration_sets: Vec<String>,
    email_identities: Vec<String>,
}

async fn delete_all(deletion: Deletion) -> anyhow::Result<()> {
    let Deletion {
        dynamodb,
        sqs,
        sns,
        secrets_manager,
        sesv2,
        tables,
        queue_urls,
        topic_arns,
        secret_arns,
        configuration_sets,
        email_identities,
    } = deletion;
    let mut errors = Vec::new();
    for t in tables {
        if let Err(e) = dynamodb.delete_table().table_name(&t).send().await {
            let not_found = e
                .as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception());
            if !not_found {
                errors.push(format!(
                    "table {t}: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                ));
            }
        }
    }
    // Topics before queues: deleting a topic deletes its subscriptions to the queues.
    for arn in topic_arns {
        // DeleteTopic of a topic already gone succeeds.
        if let Err(e) = sns.delete_topic().topic_arn(&arn).send().await {
            errors.push(format!(
                "topic {arn}: {}",
                aws_sdk_sns::error::DisplayErrorContext(e)
            ));
        }
    }
    for url in queue_urls {
        if let Err(e) = sqs.delete_queue().queue_url(&url).send().await {
            let not_found = e
                .as_service_error()
                .is_some_and(|se| se.is_queue_does_not_exist());
            if !not_found {
                errors.push(format!(
                    "queue {url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ));
            }
        }
    }
    for arn in secret_arns {
        if let Err(e) = secrets_manager
            .delete_secret()
            .secret_id(&arn)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            let not_found = e
                .as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception());
            if !not_found {
                errors.push(format!(
                    "secret {arn}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                ));
            }
        }
    }
    if !configuration_sets.is_empty() {
        // Only the sets still there: moto fails (500) to delete one already gone.
        match existing_configuration_sets(&sesv2).await {
            Ok(existing) => {
                for name in configuration_sets.iter().filter(|n| existing.contains(*n)) {
                    if let Err(e) = sesv2
                        .delete_configuration_set()
                        .configuration_set_name(name)
                        .send()
                        .await
                    {
                        errors.push(format!(
                            "configuration set {name}: {}",
                            aws_sdk_sesv2::error::DisplayErrorContext(e)
                        ));
                    }
                }
            }
            Err(e) => errors.push(format!("listing configuration sets: {e:#}")),
        }
    }
    for identity in email_identities {
        if let Err(e) = sesv2
            .delete_email_identity()
            .email_identity(&identity)
            .send()
            .await
        {
            let not_found = e
                .as_service_error()
                .is_some_and(|se| se.is_not_found_exception());
            if !not_found {
                errors.push(format!(
                    "email identity {identity}: {}",
                    aws_sdk_sesv2::error::DisplayErrorContext(e)
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("cleanup failed: {}", errors.join("; "))
    }
}

/// The names of every SES configuration set.
async fn existing_configuration_sets(
    sesv2: &aws_sdk_sesv2::Client,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let mut names = std::collections::BTreeSet::new();
    let mut next = None;
    loop {
        let page = sesv2
            .list_configuration_sets()
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sesv2::error::DisplayErrorContext(e)))?;
        names.extend(page.configuration_sets().iter().cloned());
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => return Ok(names),
        }
    }
}

impl Drop for Resources {
    fn drop(&mut self) {
        if self.cleaned.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let fut = delete_all(self.deletion());
            handle.spawn(async move {
                if let Err(e) = fut.await {
                    tracing::debug!(error = %format!("{e:#}"), "background cleanup");
                }
            });
        }
    }
}

// ----------------------------------------------------------------------------- SDK config

#[allow(deprecated)]
async fn build_sdk_config(dynamodb: &str, moto: &str) -> anyhow::Result<SdkConfig> {
    // A profile held in memory carries the per-service endpoints, so that any client built
    // from the SdkConfig reaches the right server: DynamoDB Local for DynamoDB, moto for the
    // rest. No file of the machine is read.
    let profile = format!(
        "[profile carrot-local]\n\
         region = {REGION}\n\
         endpoint_url = {moto}\n\
         services = carrot-local\n\
         \n\
         [services carrot-local]\n\
         dynamodb =\n  endpoint_url = {dynamodb}\n"
    );
    let files = ProfileFiles::builder()
        .with_contents(ProfileFileKind::Config, profile)
        .build();
    let creds = aws_sdk_dynamodb::config::Credentials::new(
        "AKIDLOCALSTACK",
        "local-stack-secret",
        None,
        None,
        "carrot-local",
    );
    let cfg = aws_config::defaults(BehaviorVersion::latest())
        .profile_files(files)
        .profile_name("carrot-local")
        .region(Region::new(REGION))
        .credentials_provider(creds)
        .identity_cache(IdentityCache::no_cache())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(25))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await;
    Ok(cfg)
}

fn loopback_endpoint(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("endpoint {url:?} must be http://127.0.0.1:PORT"))?;
    let host = rest.rsplit_once(':').map(|(h, _)| h).unwrap_or(rest);
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("endpoint {url:?} is not on loopback; the local stack only talks to 127.0.0.1");
    }
    Ok(url.to_string())
}

// ----------------------------------------------------------------------------- processes

static NEXT_STACK: AtomicU32 = AtomicU32::new(0);
/// Numbers the queues of [`LocalStack::subscribe_queue`] within a prefix.
static NEXT_SUBSCRIPTION: AtomicU32 = AtomicU32::new(0);

/// Where the servers' binaries are.
#[derive(Clone, Debug)]
struct Tools {
    java: PathBuf,
    javac: PathBuf,
    dynamodb_dir: PathBuf,
    moto_server: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

impl Tools {
    fn locate() -> anyhow::Result<Tools> {
        let root = workspace_root();
        let hint =
            "run `bash scripts/setup-local.sh` (installs moto and DynamoDB Local under .local/)";
        let moto_server = std::env::var_os("CARROT_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".local/venv/bin/moto_server"));
        if !moto_server.is_file() {
            bail!("moto_server not found at {}: {hint}", moto_server.display());
        }
        let dynamodb_dir = match std::env::var_os("CARROT_DYNAMODB_LOCAL_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let path_file = root.join(".local/dynamodb-local.path");
                let text = std::fs::read_to_string(&path_file)
                    .with_context(|| format!("reading {}: {hint}", path_file.display()))?;
                PathBuf::from(text.trim())
            }
        };
        if !dynamodb_dir.join("DynamoDBLocal.jar").is_file()
            || !dynamodb_dir.join("DynamoDBLocal_lib").is_dir()
        {
            bail!(
                "{} does not hold DynamoDBLocal.jar and DynamoDBLocal_lib/: {hint}",
                dynamodb_dir.display()
            );
        }
        let java_home = std::env::var_os("JAVA_HOME").map(PathBuf::from);
        let jdk_tool = |name: &str| {
            java_home
                .as_ref()
                .map(|h| h.join("bin").join(name))
                .filter(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from(name))
        };
        Ok(Tools {
            java: jdk_tool("java"),
            javac: jdk_tool("javac"),
            dynamodb_dir,
            moto_server,
        })
    }

    fn spawn_dynamodb(
        &self,
        port: u16,
        log: &Path,
        launcher: Option<&Path>,
    ) -> anyhow::Result<ManagedProcess> {
        let dir = &self.dynamodb_dir;
        let lib = dir.join("DynamoDBLocal_lib");
        let mut args: Vec<OsString> = vec![format!("-Djava.library.path={}", lib.display()).into()];
        match launcher {
            Some(classes) => {
                args.push("-cp".into());
                args.push(
                    format!(
                        "{}:{}:{}/*",
                        classes.display(),
                        dir.join("DynamoDBLocal.jar").display(),
                        lib.display()
                    )
                    .into(),
                );
                args.push("LoopbackDynamoDbLocal".into());
            }
            None => {
                tracing::warn!(
                    "no javac: DynamoDB Local listens on all interfaces \
                     (install a JDK to bind it to 127.0.0.1 only)"
                );
                args.push("-jar".into());
                args.push(dir.join("DynamoDBLocal.jar").into());
            }
        }
        for a in ["-inMemory", "-port", &port.to_string(), "-disableTelemetry"] {
            args.push(a.into());
        }
        spawn_watched("DynamoDB Local", &self.java, &args, dir, log)
    }

    /// DynamoDB Local has no option for its listening address (it takes every interface): a
    /// small launcher sets 127.0.0.1 on its Jetty connector before starting it. Compiled once
    /// (per launcher text and DynamoDB Local directory) under `base`; `None` without `javac`.
    fn compiled_launcher(&self, base: &Path) -> Option<PathBuf> {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in LOOPBACK_LAUNCHER
            .bytes()
            .chain(self.dynamodb_dir.to_string_lossy().bytes())
        {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let dir = base.join(format!("launcher-{hash:016x}"));
        if dir.join("LoopbackDynamoDbLocal.class").is_file() {
            return Some(dir);
        }
        let tmp = base.join(format!("launcher-{hash:016x}.tmp{}", std::process::id()));
        let compiled = (|| -> anyhow::Result<()> {
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
            let src = tmp.join("LoopbackDynamoDbLocal.java");
            std::fs::write(&src, LOOPBACK_LAUNCHER)?;
            let lib = self.dynamodb_dir.join("DynamoDBLocal_lib");
            let out = Command::new(&self.javac)
                .arg("-nowarn")
                .arg("-cp")
                .arg(format!(
                    "{}:{}/*",
                    self.dynamodb_dir.join("DynamoDBLocal.jar").display(),
                    lib.display()
                ))
                .arg("-d")
                .arg(&tmp)
                .arg(&src)
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                bail!("javac: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            if std::fs::rename(&tmp, &dir).is_err()
                && !dir.join("LoopbackDynamoDbLocal.class").is_file()
            {
                bail!("could not move the compiled launcher to {}", dir.display());
            }
            Ok(())
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        match compiled {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "compiling the DynamoDB Local launcher");
                None
            }
        }
    }

    fn spawn_moto(&self, port: u16, log: &Path) -> anyhow::Result<ManagedProcess> {
        let args: Vec<OsString> = vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string().into(),
        ];
        spawn_watched(
            "moto_server",
            &self.moto_server,
            &args,
            log.parent().expect("log file has a directory"),
            log,
        )
    }
}

const LOOPBACK_LAUNCHER: &str = r#"import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/** Starts DynamoDB Local as its ServerRunner does, listening on 127.0.0.1 only. */
public class LoopbackDynamoDbLocal {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        if (proxy == null) {
            System.exit(2);
        }
        Field f = DynamoDBProxyServer.class.getDeclaredField("server");
        f.setAccessible(true);
        Server server = (Server) f.get(proxy);
        int n = 0;
        for (Connector c : server.getConnectors()) {
            if (c instanceof ServerConnector sc) {
                sc.setHost("127.0.0.1");
                n++;
            }
        }
        if (n == 0) {
            System.err.println("LoopbackDynamoDbLocal: no ServerConnector to bind to 127.0.0.1");
            System.exit(3);
        }
        proxy.start();
        System.err.println("LoopbackDynamoDbLocal: listening on 127.0.0.1");
        proxy.join();
    }
}
"#;

/// `$TMPDIR/carrot-local/`, where logs of processes no longer alive are pruned.
fn log_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join("carrot-local");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if name.ends_with(".log") && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(dir)
}

/// The filter of the recorded log lines when `CARROT_TEST_LOG` does not name one: what
/// production logs (INFO), and the project's own debug lines, which an operator may turn on.
const DEFAULT_RECORDED_LOGS: &str = "info,carrot=debug";

/// Installs, once per process, a subscriber writing every log line as JSON to
/// `{target}/test-logs/{binary}-{pid}.jsonl` and nowhere else, so what tests print is
/// unchanged. The scan after the tests reads these files; a subscriber installed before this
/// one (a test's own) wins and nothing is recorded.
fn record_logs_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = install_log_recorder() {
            eprintln!("test logs are not recorded: {e:#}");
        }
    });
}

fn install_log_recorder() -> anyhow::Result<()> {
    use lambda_runtime::tracing::subscriber::{self, EnvFilter};
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let binary = std::env::current_exe()?
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join(format!("{binary}-{}.jsonl", std::process::id()));
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let filter = std::env::var("CARROT_TEST_LOG").unwrap_or_else(|_| DEFAULT_RECORDED_LOGS.into());
    let recorder = subscriber::fmt()
        .json()
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_new(&filter)?)
        .with_writer(Mutex::new(file))
        .finish();
    tracing::subscriber::set_global_default(recorder)?;
    Ok(())
}

/// Binds `N` distinct free loopback ports and releases them.
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0"))
        .collect::<anyhow::Result<_>>()?;
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// A child server process, in its own process group with its watchdog. Dropping it kills
/// the group.
#[derive(Debug)]
struct ManagedProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// Runs the server in place of this shell (`exec`), after starting a watchdog subshell that
/// kills it once the parent process ($1) is gone. `$$` in the subshell is the server's pid.
const WATCHDOG: &str = r#"parent="$1"; shift
(
  while kill -0 "$parent" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 0.5; done
  if kill -0 $$ 2>/dev/null; then
    kill -TERM $$ 2>/dev/null; sleep 2; kill -KILL $$ 2>/dev/null
  fi
) </dev/null &
exec "$@"
"#;

fn spawn_watched(
    name: &'static str,
    program: &Path,
    args: &[OsString],
    cwd: &Path,
    log: &Path,
) -> anyhow::Result<ManagedProcess> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("carrot-local-watchdog")
        .arg(std::process::id().to_string())
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name} ({})", program.display()))?;
    Ok(ManagedProcess {
        name,
        child,
        log: log.to_path_buf(),
    })
}

impl ManagedProcess {
    fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        let tail = String::from_utf8_lossy(&text[start..]);
        format!(
            "{} (log {}):\n{}",
            self.name,
            self.log.display(),
            tail.trim_end()
        )
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        // Both servers keep everything in memory: nothing to lose with SIGKILL.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server exited before answering (e.g. its port was taken).
#[derive(Debug)]
struct ExitedEarly;

impl std::fmt::Display for ExitedEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server exited during start-up")
    }
}

impl std::error::Error for ExitedEarly {}

async fn wait_ready(p: &mut ManagedProcess, port: u16, deadline: Instant) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Some(status) = p.child.try_wait()? {
            return Err(anyhow::Error::new(ExitedEarly).context(format!(
                "{} exited ({status}) before answering on {addr}; {}",
                p.name,
                p.log_tail()
            )));
        }
        if answers_http(addr).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not answer on {addr} in time; {}",
                p.name,
                p.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether something at `addr` answers an HTTP request with an HTTP response.
async fn answers_http(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.ok()?;
        buf.starts_with(b"HTTP/").then_some(())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_endpoints() {
        assert_eq!(
            loopback_endpoint("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert!(loopback_endpoint("http://localhost:8000").is_ok());
        assert!(loopback_endpoint("http://10.0.0.1:8000").is_err());
        assert!(loopback_endpoint("https://example.com").is_err());
    }

    #[test]
    fn prefixes() {
        let p = Resources::unique_prefix("t");
        assert!(p.starts_with("t-") && p.len() == 10, "{p}");
        assert_ne!(p, Resources::unique_prefix("t"));
        assert!(validate_prefix(&p).is_ok());
        assert!(validate_prefix("bad prefix").is_err());
        assert!(validate_prefix("").is_err());
    }

    async fn stack() -> &'static LocalStack {
        LocalStack::start_or_reuse()
            .await
            .expect("local stack starts (run `bash scripts/setup-local.sh` first)")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn provision_creates_template_resources_and_cleanup_removes_them() {
        let stack = stack().await;
        eprintln!("stack start-up: {:?}", stack.startup_duration());
        let res = stack
            .provision(&Resources::unique_prefix("stack"))
            .await
            .unwrap();

        let ddb = stack.dynamodb_client();
        let t = ddb
            .describe_table()
            .table_name(res.table())
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        assert_eq!(t.table_name(), Some(res.table()));
        let keys: Vec<_> = t
            .key_schema()
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_string(),
                    k.key_type().as_str().to_string(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("pk".to_string(), "HASH".to_string()),
                ("sk".to_string(), "RANGE".to_string())
            ]
        );
        assert_eq!(
            t.billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|b| b.as_str()),
            Some("PAY_PER_REQUEST")
        );
        // The template's indexes, with their projections and N-typed sort keys.
        let attribute_types: BTreeMap<&str, &str> = t
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name(), a.attribute_type().as_str()))
            .collect();
        let table_def = res.template().table("CarrotTable").unwrap();
        assert_eq!(
            t.global_secondary_indexes().len(),
            table_def.global_secondary_indexes.len()
        );
        for ix in &table_def.global_secondary_indexes {
            let created = t
                .global_secondary_indexes()
                .iter()
                .find(|g| g.index_name() == Some(ix.index_name.as_str()))
                .unwrap_or_else(|| panic!("index {} created", ix.index_name));
            assert_eq!(
                created
                    .projection()
                    .and_then(|p| p.projection_type())
                    .map(|p| p.as_str()),
                Some(ix.projection_type.as_str()),
                "{}",
                ix.index_name
            );
            for k in &ix.key_schema {
                let def = table_def
                    .attribute_definitions
                    .iter()
                    .find(|a| a.attribute_name == k.attribute_name)
                    .unwrap();
                assert_eq!(
                    attribute_types.get(k.attribute_name.as_str()).copied(),
                    Some(def.attribute_type.as_str()),
                    "{} key {}",
                    ix.index_name,
                    k.attribute_name
                );
            }
        }
        // A number-keyed index orders numerically: 9 before 10 descending from 100.
        for (sk, points) in [("M#a", 9), ("M#b", 100), ("M#c", 10)] {
            ddb.put_item()
                .table_name(res.table())
                .item("pk", ddb::AttributeValue::S("P#x".into()))
                .item("sk", ddb::AttributeValue::S(sk.into()))
                .item("lb", ddb::AttributeValue::S("prog#2026-03#00".into()))
                .item("points", ddb::AttributeValue::N(points.to_string()))
                .send()
                .await
                .unwrap();
        }
        let board = ddb
            .query()
            .table_name(res.table())
            .index_name("MonthPoints")
            .key_condition_expression("lb = :lb")
            .expression_attribute_values(":lb", ddb::AttributeValue::S("prog#2026-03#00".into()))
            .scan_index_forward(false)
            .send()
            .await
            .unwrap();
        let order: Vec<_> = board
            .items()
            .iter()
            .map(|i| i["sk"].as_s().unwrap().as_str())
            .collect();
        assert_eq!(order, ["M#b", "M#c", "M#a"]);

        // A client built from the shared SdkConfig alone reaches DynamoDB Local...
        let from_cfg = aws_sdk_dynamodb::Client::new(&stack.sdk_config());
        let names = from_cfg.list_tables().send().await.unwrap();
        assert!(names.table_names().iter().any(|n| n == res.table()));
        // ...and SQS goes to moto.
        let sqs_cfg = aws_sdk_sqs::Client::new(&stack.sdk_config());
        let urls = sqs_cfg
            .list_queues()
            .queue_name_prefix(res.prefix())
            .send()
            .await
            .unwrap();
        assert_eq!(urls.queue_urls().len(), res.queues().len());
        assert!(res.queue("NotificationsQueue").is_some());

        let sqs = stack.sqs_client();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(res.events_queue_url())
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let policy: serde_json::Value =
            serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(policy["deadLetterTargetArn"], res.events_dlq_arn());
        assert_eq!(policy["maxReceiveCount"].as_u64(), Some(5));
        let tmpl = res.template().queue("EventsQueue").unwrap();
        assert_eq!(
            attrs[&QueueAttributeName::VisibilityTimeout],
            tmpl.visibility_timeout_secs.to_string()
        );
        assert!(res.events_dlq_url().contains(res.prefix()));

        // Environment of a function, resolved against the created resources.
        let env = res.function_environment("AwardFunction");
        assert_eq!(env.get("TABLE_NAME").map(String::as_str), Some(res.table()));
        let env = res.function_environment("CloseFunction");
        assert_eq!(
            env.get("OUTBOUND_TOPIC_ARN").map(String::as_str),
            Some(res.topic_arn("OutboundTopic"))
        );
        assert_eq!(
            env.get("NOTIFICATIONS_QUEUE_URL").map(String::as_str),
            Some(res.queue_url("NotificationsQueue"))
        );

        // Secrets Manager answers too.
        stack
            .secrets_client()
            .list_secrets()
            .send()
            .await
            .expect("moto Secrets Manager answers");

        res.cleanup().await.unwrap();
        let gone = ddb.describe_table().table_name(res.table()).send().await;
        assert!(gone.is_err(), "table deleted");
        let left = sqs
            .list_queues()
            .queue_name_prefix(res.prefix())
            .send()
            .await
            .unwrap();
        assert!(left.queue_urls().is_empty(), "queues deleted: {left:?}");
        let topics = stack.sns_client().list_topics().send().await.unwrap();
        assert!(
            !topics
                .topics()
                .iter()
                .any(|t| t.topic_arn() == Some(res.topic_arn("OutboundTopic"))),
            "topic deleted"
        );
        // A second cleanup is harmless.
        res.cleanup().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscribed_queue_receives_what_is_published_to_a_topic() {
        let stack = stack().await;
        let res = stack
            .provision(&Resources::unique_prefix("sns"))
            .await
            .unwrap();
        let topic_arn = res.topic_arn("OutboundTopic");
        assert!(topic_arn.starts_with(&format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:")));
        assert!(topic_arn.ends_with(&format!("{}-OutboundTopic", res.prefix())));

        let queue_url = stack.subscribe_queue(&res, "OutboundTopic").await.unwrap();
        let event = r#"{"type":"participant.suspended","participant":"alice"}"#;
        stack
            .sns_client()
            .publish()
            .topic_arn(topic_arn)
            .message(event)
            .send()
            .await
            .unwrap();

        let sqs = stack.sqs_client();
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        let bodies: Vec<_> = received
            .messages()
            .iter()
            .filter_map(|m| m.body())
            .collect();
        assert_eq!(bodies, [event], "raw delivery: the body is the message");

        let err = stack
            .subscribe_queue(&res, "NoSuchTopic")
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("NoSuchTopic"), "{err:#}");

        res.cleanup().await.unwrap();
        let gone = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .send()
            .await;
        assert!(gone.is_err(), "subscribed queue deleted with the resources");
    }

    /// The notification side: the sender's verified address, the unsubscribe secret, the
    /// configuration set, SES events through the topic to their queue in SNS's envelope, and
    /// what the SES and SNS adapters send as moto records it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn provision_serves_email_and_sms_and_records_what_is_sent() {
        use carrot::adapters::ses::SesMailer;
        use carrot::adapters::sns::SnsSms;
        use carrot::ports::{Mailer, OutgoingEmail, SmsSender};

        let stack = stack().await;
        let res = stack
            .provision(&Resources::unique_prefix("mail"))
            .await
            .unwrap();
        let sender = res.sender_email().to_owned();
        assert!(sender.ends_with(".local.test"), "{sender}");

        // The functions' environment resolves against what was created.
        let env = res.function_environment("NotifyFunction");
        for (var, value) in [
            ("SENDER_EMAIL", sender.as_str()),
            ("EMAIL_CONFIGURATION_SET", res.email_configuration_set()),
            ("UNSUBSCRIBE_SECRET_ARN", res.unsubscribe_secret_arn()),
            ("EMAIL_EVENTS_QUEUE_ARN", res.email_events_queue_arn()),
            ("SMS_SENDER_ID", ""),
            ("TABLE_NAME", res.table()),
        ] {
            assert_eq!(env.get(var).map(String::as_str), Some(value), "{var}");
        }
        assert_eq!(
            res.function_environment("AdminFunction")
                .get("UNSUBSCRIBE_SECRET_ARN")
                .map(String::as_str),
            Some(res.unsubscribe_secret_arn())
        );

        // The secret holds a random key, as GenerateSecretString would make it.
        let stored = stack
            .secrets_client()
            .get_secret_value()
            .secret_id(res.unsubscribe_secret_arn())
            .send()
            .await
            .unwrap();
        assert_eq!(stored.secret_string(), Some(res.unsubscribe_secret()));
        assert!(res.unsubscribe_secret().len() >= 32);
        assert!(
            res.unsubscribe_secret()
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );

        // SES: the email goes out under the configuration set and is recorded as sent.
        let mailer = SesMailer::new(
            stack.sesv2_client(),
            Some(res.email_configuration_set().to_owned()),
        );
        let raw = format!(
            "From: Carrot <{sender}>\r\nTo: Alice <alice@dealer.example>\r\n\
             Subject: Hej\r\n\r\nHej Alice!\r\n"
        );
        let id = mailer
            .send_email(&OutgoingEmail {
                from: sender.clone(),
                to: "alice@dealer.example".into(),
                raw_mime: raw.clone().into_bytes(),
                tags: vec![("carrot_kind".into(), "ZGlnZXN0".into())],
            })
            .await
            .unwrap();
        let sent: Vec<_> = stack
            .sent_emails()
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.from == sender)
            .collect();
        assert_eq!(
            sent,
            [SentEmail {
                id,
                from: sender.clone(),
                to: vec!["alice@dealer.example".into()],
                raw,
            }]
        );
        // An address SES does not know as a sender is refused, for good.
        let refused = mailer
            .send_email(&OutgoingEmail {
                from: format!("other@{}", res.prefix()),
                to: "alice@dealer.example".into(),
                raw_mime: b"Subject: x\r\n\r\nx".to_vec(),
                tags: Vec::new(),
            })
            .await
            .unwrap_err();
        assert!(!refused.is_retryable(), "{refused}");

        // SNS: a text goes out, and moto's opt-out list (numbers ending in 99) answers.
        // A number of this test's own, ending in 00: not on moto's opt-out list.
        let phone = format!("+4670{:05}00", rand::random::<u32>() % 100_000);
        let sms = SnsSms::new(stack.sns_client(), Some("Carrot".into()));
        assert!(!sms.opted_out(&phone).await.unwrap());
        assert!(sms.opted_out("+46701234599").await.unwrap());
        let id = sms
            .send_sms(&phone, "2 more login days!", true)
            .await
            .unwrap();
        let texts: Vec<_> = stack
            .sent_sms()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.phone == phone)
            .collect();
        assert_eq!(
            texts,
            [SentSms {
                id,
                phone: phone.clone(),
                message: "2 more login days!".into(),
            }]
        );

        // An SES event published to the topic arrives on the queue in SNS's envelope.
        let event = r#"{"eventType":"Delivery","mail":{"tags":{}}}"#;
        stack
            .sns_client()
            .publish()
            .topic_arn(res.email_events_topic_arn())
            .message(event)
            .send()
            .await
            .unwrap();
        let received = stack
            .sqs_client()
            .receive_message()
            .queue_url(res.email_events_queue_url())
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        let bodies: Vec<serde_json::Value> = received
            .messages()
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect();
        assert_eq!(bodies.len(), 1);
        assert_eq!(bodies[0]["Type"], "Notification");
        assert_eq!(bodies[0]["Message"], event);

        res.cleanup().await.unwrap();
        let identities = stack
            .sesv2_client()
            .list_email_identities()
            .send()
            .await
            .unwrap();
        assert!(
            !identities
                .email_identities()
                .iter()
                .any(|i| i.identity_name() == Some(sender.as_str())),
            "sender identity deleted"
        );
        let gone = stack
            .secrets_client()
            .describe_secret()
            .secret_id(&res.secret("UnsubscribeSecret").arn)
            .send()
            .await;
        assert!(gone.is_err(), "secret deleted");
        assert!(
            !existing_configuration_sets(&stack.sesv2_client())
                .await
                .unwrap()
                .contains(res.email_configuration_set()),
            "configuration set deleted"
        );
        res.cleanup().await.unwrap();
    }

    #[test]
    fn bare_addresses() {
        assert_eq!(bare_address("Alice <alice@x.example>"), "alice@x.example");
        assert_eq!(bare_address(" alice@x.example "), "alice@x.example");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_prefixes_do_not_collide() {
        let stack = stack().await;
        let a = stack.provision(&Resources::unique_prefix("par")).await;
        let b = stack.provision(&Resources::unique_prefix("par")).await;
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.table(), b.table());
        assert_ne!(a.events_queue_url(), b.events_queue_url());
        a.cleanup().await.unwrap();
        b.cleanup().await.unwrap();
    }
}
