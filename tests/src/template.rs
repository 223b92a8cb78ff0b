//! Reads `infra/template.yaml` (AWS SAM) into typed descriptions of what the local stack must
//! create and wire: DynamoDB tables, SQS queues (with their redrive policies), SNS topics and
//! their queue subscriptions, Secrets Manager secrets, SES configuration sets, the HTTP API
//! routes and the SQS event sources of the functions, and the EventBridge Scheduler schedules
//! (which the local runner plays itself).
//!
//! The template is the single definition of the infrastructure; the local stack reads it so
//! that it cannot drift from what is deployed. CloudFormation intrinsics are understood in both
//! their short (`!Ref X`, `!GetAtt X.Arn`, `!Sub ...`) and long (`Ref: X`, `Fn::GetAtt: [X, Arn]`)
//! forms; `!Ref Parameter` resolves to the parameter's `Default` where a literal is needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde_yaml_ng::{Mapping, Value};

/// Every resource of the template the local stack cares about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template {
    /// `Parameters`: logical name → `Default` rendered as a string (if any).
    pub parameters: BTreeMap<String, Option<String>>,
    /// `AWS::DynamoDB::Table` resources, in template order.
    pub tables: Vec<TableDef>,
    /// `AWS::SQS::Queue` resources, in template order.
    pub queues: Vec<QueueDef>,
    /// `AWS::SNS::Topic` resources, in template order.
    pub topics: Vec<TopicDef>,
    /// `AWS::SNS::Subscription` resources of a queue to a topic, in template order.
    pub subscriptions: Vec<SubscriptionDef>,
    /// `AWS::SecretsManager::Secret` resources, in template order.
    pub secrets: Vec<SecretDef>,
    /// `AWS::SES::ConfigurationSet` resources, in template order.
    pub configuration_sets: Vec<ConfigurationSetDef>,
    /// `AWS::Scheduler::Schedule` resources that invoke a function, in template order.
    pub schedules: Vec<ScheduleDef>,
    /// `AWS::Serverless::Function` resources, in template order.
    pub functions: Vec<FunctionDef>,
    /// Every `HttpApi` event of every function.
    pub http_routes: Vec<HttpRoute>,
    /// Every `SQS` event of every function.
    pub sqs_sources: Vec<SqsSourceDef>,
}

/// One `AWS::DynamoDB::Table`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableDef {
    pub logical_id: String,
    pub key_schema: Vec<KeyElement>,
    pub attribute_definitions: Vec<AttributeDef>,
    pub global_secondary_indexes: Vec<IndexDef>,
    pub local_secondary_indexes: Vec<IndexDef>,
    /// `PAY_PER_REQUEST` or `PROVISIONED` (CloudFormation's default when absent).
    pub billing_mode: String,
    pub provisioned_throughput: Option<Throughput>,
    /// `TimeToLiveSpecification.AttributeName` when `Enabled: true`.
    pub ttl_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType`, if streams are on.
    pub stream_view_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeDef {
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexDef {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
    pub provisioned_throughput: Option<Throughput>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throughput {
    pub read_capacity_units: i64,
    pub write_capacity_units: i64,
}

/// One `AWS::SQS::Queue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDef {
    pub logical_id: String,
    /// `VisibilityTimeout` in seconds (SQS's default, 30, when absent).
    pub visibility_timeout_secs: u32,
    pub message_retention_secs: Option<u32>,
    pub delay_secs: Option<u32>,
    pub receive_wait_time_secs: Option<u32>,
    pub fifo: bool,
    pub content_based_deduplication: bool,
    pub redrive: Option<RedriveDef>,
}

/// A queue's `RedrivePolicy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedriveDef {
    /// Logical id of the dead-letter queue (from `!GetAtt Dlq.Arn`).
    pub dead_letter_queue: String,
    pub max_receive_count: u32,
}

/// One `AWS::SNS::Topic`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDef {
    pub logical_id: String,
    /// `FifoTopic`.
    pub fifo: bool,
}

/// One `AWS::SNS::Subscription` of a queue of the template to a topic of the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionDef {
    pub logical_id: String,
    /// Logical id of the topic (from `TopicArn: !Ref Topic`).
    pub topic: String,
    /// Logical id of the queue (from `Endpoint: !GetAtt Queue.Arn`).
    pub queue: String,
    /// `RawMessageDelivery`: the body is the message itself rather than SNS's JSON envelope.
    pub raw_message_delivery: bool,
}

/// One `AWS::SecretsManager::Secret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretDef {
    pub logical_id: String,
    pub value: SecretValue,
}

/// What a secret holds when it is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretValue {
    /// `SecretString`.
    Literal(String),
    /// `GenerateSecretString`: random, `PasswordLength` characters (Secrets Manager's default,
    /// 32, when absent).
    Generated { length: u32 },
}

/// Secrets Manager's default length of a generated secret.
pub const DEFAULT_SECRET_LENGTH: u32 = 32;

/// One `AWS::SES::ConfigurationSet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigurationSetDef {
    pub logical_id: String,
}

/// One `AWS::Scheduler::Schedule` whose target is a function of the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleDef {
    pub logical_id: String,
    /// `ScheduleExpression`, e.g. `cron(15 * * * ? *)` or `rate(1 hour)`.
    pub expression: String,
    /// `ScheduleExpressionTimezone` (a parameter resolves to its default); EventBridge
    /// Scheduler's default is UTC.
    pub timezone: Option<String>,
    /// Logical id of the function invoked (from `Target.Arn: !GetAtt <Function>.Arn`).
    pub function: String,
    /// `Target.Input`: the invocation's payload (JSON text), if any.
    pub input: Option<String>,
}

/// One `AWS::Serverless::Function` (what the local runner needs of it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionDef {
    pub logical_id: String,
    /// `Environment.Variables`, with `Globals.Function.Environment.Variables` merged under it.
    pub environment: BTreeMap<String, TemplateValue>,
    pub timeout_secs: Option<u32>,
    pub memory_mb: Option<u32>,
}

/// A property value that may be a CloudFormation intrinsic.
#[derive(Clone, Debug, PartialEq)]
pub enum TemplateValue {
    /// A plain scalar, rendered as a string.
    Literal(String),
    /// `!Ref X`.
    Ref(String),
    /// `!GetAtt X.Attr`.
    GetAtt(String, String),
    /// `!Sub "..."` (the format string; variables of the list form are kept out).
    Sub(String),
    /// Anything else (another intrinsic, a list, a map), as YAML.
    Other(Value),
}

/// One HTTP API route (`Type: HttpApi` event of a function).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    /// Upper-case HTTP method, or `ANY`.
    pub method: String,
    /// Path pattern such as `/v1/participants/{participant}` (or `$default`).
    pub path: String,
    /// Logical id of the function that serves it.
    pub function: String,
    /// Name of the event inside the function's `Events`.
    pub event_name: String,
    /// The HTTP API authorizer the route names (`Auth: Authorizer:`), if any.
    pub authorizer: Option<String>,
}

/// One segment of a route's path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Literal(String),
    /// `{name}`
    Param(String),
    /// `{name+}`: matches the rest of the path (one or more segments).
    Greedy(String),
}

/// One SQS event source mapping (`Type: SQS` event of a function).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsSourceDef {
    pub function: String,
    pub event_name: String,
    /// Logical id of the queue.
    pub queue: String,
    /// `BatchSize` (Lambda's default, 10, when absent).
    pub batch_size: u32,
    /// `FunctionResponseTypes` contains `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    pub maximum_batching_window_secs: Option<u32>,
    /// `ScalingConfig.MaximumConcurrency`.
    pub maximum_concurrency: Option<u32>,
    pub enabled: bool,
}

/// SQS's default visibility timeout.
pub const DEFAULT_VISIBILITY_TIMEOUT_SECS: u32 = 30;
/// Lambda's default SQS batch size.
pub const DEFAULT_SQS_BATCH_SIZE: u32 = 10;

impl Template {
    /// `<workspace>/infra/template.yaml`.
    pub fn default_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("infra")
            .join("template.yaml")
    }

    /// Reads and parses the project's template (see [`Template::default_path`]).
    pub fn load() -> anyhow::Result<Template> {
        Self::load_from(Self::default_path())
    }

    pub fn load_from(path: impl AsRef<Path>) -> anyhow::Result<Template> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading SAM template {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing SAM template {}", path.display()))
    }

    /// Parses a template's YAML text.
    pub fn parse(yaml: &str) -> anyhow::Result<Template> {
        let doc: Value = serde_yaml_ng::from_str(yaml).context("template is not valid YAML")?;
        let mut t = Template::default();

        if let Some(params) = doc.get("Parameters").and_then(Value::as_mapping) {
            for (k, v) in params {
                let name = key_str(k)?;
                let default = v.get("Default").and_then(scalar_string);
                t.parameters.insert(name, default);
            }
        }

        let globals_env: BTreeMap<String, TemplateValue> = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
            .map(env_map)
            .transpose()?
            .unwrap_or_default();

        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("template has no Resources mapping"))?;

        for (k, res) in resources {
            let id = key_str(k)?;
            let ty = res.get("Type").and_then(Value::as_str).unwrap_or_default();
            let empty = Value::Mapping(Mapping::new());
            let props = res.get("Properties").unwrap_or(&empty);
            match ty {
                "AWS::DynamoDB::Table" => {
                    let table = t
                        .parse_table(&id, props)
                        .with_context(|| format!("table {id}"))?;
                    t.tables.push(table);
                }
                "AWS::SQS::Queue" => {
                    let queue = t
                        .parse_queue(&id, props)
                        .with_context(|| format!("queue {id}"))?;
                    t.queues.push(queue);
                }
                "AWS::SNS::Topic" => {
                    let topic = TopicDef {
                        logical_id: id.clone(),
                        fifo: t
                            .bool_prop(props, "FifoTopic")
                            .with_context(|| format!("topic {id}"))?
                            .unwrap_or(false),
                    };
                    t.topics.push(topic);
                }
                "AWS::SNS::Subscription" => {
                    if let Some(subscription) = t
                        .parse_subscription(&id, props)
                        .with_context(|| format!("subscription {id}"))?
                    {
                        t.subscriptions.push(subscription);
                    }
                }
                "AWS::SecretsManager::Secret" => {
                    let secret = t
                        .parse_secret(&id, props)
                        .with_context(|| format!("secret {id}"))?;
                    t.secrets.push(secret);
                }
                "AWS::SES::ConfigurationSet" => {
                    t.configuration_sets.push(ConfigurationSetDef {
                        logical_id: id.clone(),
                    });
                }
                // moto keeps SES event destinations but never publishes an email's events: a
                // test publishes SES events to the destination's topic itself.
                "AWS::SES::ConfigurationSetEventDestination" => {}
                // moto does not enforce resource policies: topics deliver to queues without them.
                "AWS::SNS::TopicPolicy" | "AWS::SQS::QueuePolicy" => {}
                "AWS::Scheduler::Schedule" => {
                    let schedule = t
                        .parse_schedule(&id, props)
                        .with_context(|| format!("schedule {id}"))?;
                    t.schedules.push(schedule);
                }
                "AWS::Serverless::Function" => {
                    t.parse_function(&id, props, &globals_env)
                        .with_context(|| format!("function {id}"))?;
                }
                _ => {}
            }
        }

        t.validate()?;
        Ok(t)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for q in &self.queues {
            if let Some(r) = &q.redrive
                && self.queue(&r.dead_letter_queue).is_none()
            {
                bail!(
                    "queue {} redrives to {}, which is not a queue of the template",
                    q.logical_id,
                    r.dead_letter_queue
                );
            }
        }
        for s in &self.sqs_sources {
            if self.queue(&s.queue).is_none() {
                bail!(
                    "function {} reads queue {}, which is not a queue of the template",
                    s.function,
                    s.queue
                );
            }
        }
        for s in &self.subscriptions {
            if self.topic(&s.topic).is_none() || self.queue(&s.queue).is_none() {
                bail!(
                    "subscription {} connects {} to {}, which are not a topic and a queue of the \
                     template",
                    s.logical_id,
                    s.topic,
                    s.queue
                );
            }
        }
        for s in &self.schedules {
            if self.function(&s.function).is_none() {
                bail!(
                    "schedule {} targets {}, which is not a function of the template",
                    s.logical_id,
                    s.function
                );
            }
        }
        Ok(())
    }

    /// Every HTTP API route (what [`crate::runner::HttpApiServer::start`] serves).
    pub fn routes(&self) -> &[HttpRoute] {
        &self.http_routes
    }

    pub fn table(&self, logical_id: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.logical_id == logical_id)
    }

    pub fn queue(&self, logical_id: &str) -> Option<&QueueDef> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    pub fn function(&self, logical_id: &str) -> Option<&FunctionDef> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    pub fn topic(&self, logical_id: &str) -> Option<&TopicDef> {
        self.topics.iter().find(|t| t.logical_id == logical_id)
    }

    pub fn schedule(&self, logical_id: &str) -> Option<&ScheduleDef> {
        self.schedules.iter().find(|s| s.logical_id == logical_id)
    }

    pub fn secret(&self, logical_id: &str) -> Option<&SecretDef> {
        self.secrets.iter().find(|s| s.logical_id == logical_id)
    }

    /// The routes served by one function.
    pub fn routes_of(&self, function: &str) -> Vec<&HttpRoute> {
        self.http_routes
            .iter()
            .filter(|r| r.function == function)
            .collect()
    }

    /// The (first) SQS event source of a function.
    pub fn sqs_source_of(&self, function: &str) -> Option<&SqsSourceDef> {
        self.sqs_sources.iter().find(|s| s.function == function)
    }

    /// Every SQS event source of a function, in template order.
    pub fn sqs_sources_of(&self, function: &str) -> Vec<&SqsSourceDef> {
        self.sqs_sources
            .iter()
            .filter(|s| s.function == function)
            .collect()
    }

    /// Queues in an order where every dead-letter queue comes before the queues that
    /// redrive to it.
    pub fn queues_in_creation_order(&self) -> Vec<&QueueDef> {
        let mut out: Vec<&QueueDef> = Vec::with_capacity(self.queues.len());
        let mut pending: Vec<&QueueDef> = self.queues.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|q| {
                let ready = match &q.redrive {
                    None => true,
                    Some(r) => out.iter().any(|d| d.logical_id == r.dead_letter_queue),
                };
                if ready {
                    out.push(q);
                }
                !ready
            });
            if pending.len() == before {
                // A cycle (not valid CloudFormation either): keep template order.
                out.append(&mut pending);
            }
        }
        out
    }

    /// Renders a literal, or a `!Ref` to a parameter (its default), as a string.
    fn literal(&self, v: &Value) -> Option<String> {
        match TemplateValue::from_yaml(v) {
            TemplateValue::Literal(s) => Some(s),
            TemplateValue::Ref(name) => self.parameters.get(&name).cloned().flatten(),
            _ => None,
        }
    }

    fn u32_prop(&self, props: &Value, key: &str) -> anyhow::Result<Option<u32>> {
        match props.get(key) {
            None => Ok(None),
            Some(v) => {
                let s = self
                    .literal(v)
                    .ok_or_else(|| anyhow!("{key}: cannot resolve {v:?} to a number"))?;
                let n = s
                    .trim()
                    .parse::<u32>()
                    .with_context(|| format!("{key}: {s:?} is not a non-negative integer"))?;
                Ok(Some(n))
            }
        }
    }

    fn bool_prop(&self, props: &Value, key: &str) -> anyhow::Result<Option<bool>> {
        match props.get(key) {
            None => Ok(None),
            Some(v) => {
                let s = self
                    .literal(v)
                    .ok_or_else(|| anyhow!("{key}: cannot resolve {v:?} to a boolean"))?;
                match s.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(Some(true)),
                    "false" => Ok(Some(false)),
                    other => bail!("{key}: {other:?} is not a boolean"),
                }
            }
        }
    }

    fn str_prop(&self, props: &Value, key: &str) -> Option<String> {
        props.get(key).and_then(|v| self.literal(v))
    }

    fn parse_key_schema(&self, v: Option<&Value>) -> anyhow::Result<Vec<KeyElement>> {
        let Some(seq) = v.and_then(Value::as_sequence) else {
            bail!("KeySchema missing or not a list");
        };
        seq.iter()
            .map(|e| {
                Ok(KeyElement {
                    attribute_name: self
                        .str_prop(e, "AttributeName")
                        .ok_or_else(|| anyhow!("KeySchema element without AttributeName"))?,
                    key_type: self
                        .str_prop(e, "KeyType")
                        .ok_or_else(|| anyhow!("KeySchema element without KeyType"))?
                        .to_ascii_uppercase(),
                })
            })
            .collect()
    }

    fn parse_throughput(&self, v: Option<&Value>) -> anyhow::Result<Option<Throughput>> {
        let Some(v) = v else { return Ok(None) };
        Ok(Some(Throughput {
            read_capacity_units: self.u32_prop(v, "ReadCapacityUnits")?.unwrap_or(5) as i64,
            write_capacity_units: self.u32_prop(v, "WriteCapacityUnits")?.unwrap_or(5) as i64,
        }))
    }

    fn parse_indexes(&self, v: Option<&Value>) -> anyhow::Result<Vec<IndexDef>> {
        let Some(seq) = v.and_then(Value::as_sequence) else {
            return Ok(Vec::new());
        };
        seq.iter()
            .map(|ix| {
                let index_name = self
                    .str_prop(ix, "IndexName")
                    .ok_or_else(|| anyhow!("index without IndexName"))?;
                let key_schema = self
                    .parse_key_schema(ix.get("KeySchema"))
                    .with_context(|| format!("index {index_name}"))?;
                let projection = ix.get("Projection");
                let projection_type = projection
                    .and_then(|p| self.str_prop(p, "ProjectionType"))
                    .unwrap_or_else(|| "KEYS_ONLY".to_string());
                let non_key_attributes = projection
                    .and_then(|p| p.get("NonKeyAttributes"))
                    .and_then(Value::as_sequence)
                    .map(|s| s.iter().filter_map(|a| self.literal(a)).collect())
                    .unwrap_or_default();
                Ok(IndexDef {
                    index_name,
                    key_schema,
                    projection_type,
                    non_key_attributes,
                    provisioned_throughput: self
                        .parse_throughput(ix.get("ProvisionedThroughput"))?,
                })
            })
            .collect()
    }

    fn parse_table(&self, id: &str, props: &Value) -> anyhow::Result<TableDef> {
        let key_schema = self.parse_key_schema(props.get("KeySchema"))?;
        let attribute_definitions = props
            .get("AttributeDefinitions")
            .and_then(Value::as_sequence)
            .ok_or_else(|| anyhow!("AttributeDefinitions missing or not a list"))?
            .iter()
            .map(|a| {
                Ok(AttributeDef {
                    attribute_name: self
                        .str_prop(a, "AttributeName")
                        .ok_or_else(|| anyhow!("attribute definition without AttributeName"))?,
                    attribute_type: self
                        .str_prop(a, "AttributeType")
                        .ok_or_else(|| anyhow!("attribute definition without AttributeType"))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ttl_attribute = match props.get("TimeToLiveSpecification") {
            Some(spec) if self.bool_prop(spec, "Enabled")?.unwrap_or(false) => {
                self.str_prop(spec, "AttributeName")
            }
            _ => None,
        };
        let stream_view_type = props
            .get("StreamSpecification")
            .and_then(|s| self.str_prop(s, "StreamViewType"));
        Ok(TableDef {
            logical_id: id.to_string(),
            key_schema,
            attribute_definitions,
            global_secondary_indexes: self.parse_indexes(props.get("GlobalSecondaryIndexes"))?,
            local_secondary_indexes: self.parse_indexes(props.get("LocalSecondaryIndexes"))?,
            billing_mode: self
                .str_prop(props, "BillingMode")
                .unwrap_or_else(|| "PROVISIONED".to_string()),
            provisioned_throughput: self.parse_throughput(props.get("ProvisionedThroughput"))?,
            ttl_attribute,
            stream_view_type,
        })
    }

    fn parse_queue(&self, id: &str, props: &Value) -> anyhow::Result<QueueDef> {
        let redrive = match props.get("RedrivePolicy") {
            None => None,
            Some(rp) => {
                // Either a mapping, or (rarely) a JSON string.
                let rp = match rp.as_str() {
                    Some(s) => serde_yaml_ng::from_str::<Value>(s)
                        .context("RedrivePolicy string is not JSON")?,
                    None => rp.clone(),
                };
                let target = rp
                    .get("deadLetterTargetArn")
                    .ok_or_else(|| anyhow!("RedrivePolicy without deadLetterTargetArn"))?;
                let dead_letter_queue = match TemplateValue::from_yaml(target) {
                    TemplateValue::GetAtt(res, attr) if attr == "Arn" => res,
                    other => bail!(
                        "RedrivePolicy.deadLetterTargetArn must be !GetAtt <Queue>.Arn, got {other:?}"
                    ),
                };
                let max_receive_count = self
                    .u32_prop(&rp, "maxReceiveCount")?
                    .ok_or_else(|| anyhow!("RedrivePolicy without maxReceiveCount"))?;
                Some(RedriveDef {
                    dead_letter_queue,
                    max_receive_count,
                })
            }
        };
        Ok(QueueDef {
            logical_id: id.to_string(),
            visibility_timeout_secs: self
                .u32_prop(props, "VisibilityTimeout")?
                .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_SECS),
            message_retention_secs: self.u32_prop(props, "MessageRetentionPeriod")?,
            delay_secs: self.u32_prop(props, "DelaySeconds")?,
            receive_wait_time_secs: self.u32_prop(props, "ReceiveMessageWaitTimeSeconds")?,
            fifo: self.bool_prop(props, "FifoQueue")?.unwrap_or(false),
            content_based_deduplication: self
                .bool_prop(props, "ContentBasedDeduplication")?
                .unwrap_or(false),
            redrive,
        })
    }

    /// A queue's subscription to a topic; `None` for other protocols (e-mail, HTTPS), which
    /// reach outside the local stack.
    fn parse_subscription(
        &self,
        id: &str,
        props: &Value,
    ) -> anyhow::Result<Option<SubscriptionDef>> {
        if self.str_prop(props, "Protocol").as_deref() != Some("sqs") {
            return Ok(None);
        }
        let topic = match props.get("TopicArn").map(TemplateValue::from_yaml) {
            Some(TemplateValue::Ref(topic)) => topic,
            other => bail!("TopicArn must be !Ref <Topic>, got {other:?}"),
        };
        let queue = match props.get("Endpoint").map(TemplateValue::from_yaml) {
            Some(TemplateValue::GetAtt(queue, attr)) if attr == "Arn" => queue,
            other => {
                bail!("Endpoint of an sqs subscription must be !GetAtt <Queue>.Arn, got {other:?}")
            }
        };
        Ok(Some(SubscriptionDef {
            logical_id: id.to_string(),
            topic,
            queue,
            raw_message_delivery: self
                .bool_prop(props, "RawMessageDelivery")?
                .unwrap_or(false),
        }))
    }

    fn parse_secret(&self, id: &str, props: &Value) -> anyhow::Result<SecretDef> {
        let value = match (
            props.get("GenerateSecretString"),
            self.str_prop(props, "SecretString"),
        ) {
            (Some(generate), None) => SecretValue::Generated {
                length: self
                    .u32_prop(generate, "PasswordLength")?
                    .unwrap_or(DEFAULT_SECRET_LENGTH),
            },
            (None, Some(literal)) => SecretValue::Literal(literal),
            _ => bail!("a secret needs either GenerateSecretString or a literal SecretString"),
        };
        Ok(SecretDef {
            logical_id: id.to_string(),
            value,
        })
    }

    fn parse_schedule(&self, id: &str, props: &Value) -> anyhow::Result<ScheduleDef> {
        let expression = self
            .str_prop(props, "ScheduleExpression")
            .ok_or_else(|| anyhow!("ScheduleExpression missing or not a literal"))?;
        let target = props
            .get("Target")
            .ok_or_else(|| anyhow!("schedule without Target"))?;
        let target_arn = target
            .get("Arn")
            .ok_or_else(|| anyhow!("Target without Arn"))?;
        let function = match TemplateValue::from_yaml(target_arn) {
            TemplateValue::GetAtt(res, attr) if attr == "Arn" => res,
            other => bail!("Target.Arn must be !GetAtt <Function>.Arn, got {other:?}"),
        };
        Ok(ScheduleDef {
            logical_id: id.to_string(),
            expression,
            timezone: self.str_prop(props, "ScheduleExpressionTimezone"),
            function,
            input: self.str_prop(target, "Input"),
        })
    }

    fn parse_function(
        &mut self,
        id: &str,
        props: &Value,
        globals_env: &BTreeMap<String, TemplateValue>,
    ) -> anyhow::Result<()> {
        let mut environment = globals_env.clone();
        if let Some(vars) = props
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
        {
            environment.extend(env_map(vars)?);
        }
        self.functions.push(FunctionDef {
            logical_id: id.to_string(),
            environment,
            timeout_secs: self.u32_prop(props, "Timeout")?,
            memory_mb: self.u32_prop(props, "MemorySize")?,
        });

        let Some(events) = props.get("Events").and_then(Value::as_mapping) else {
            return Ok(());
        };
        for (k, ev) in events {
            let event_name = key_str(k)?;
            let ty = ev.get("Type").and_then(Value::as_str).unwrap_or_default();
            let empty = Value::Mapping(Mapping::new());
            let ep = ev.get("Properties").unwrap_or(&empty);
            match ty {
                "HttpApi" => {
                    // SAM: no Path/Method means the `$default` route for any method.
                    let path = self
                        .str_prop(ep, "Path")
                        .unwrap_or_else(|| "$default".to_string());
                    let method = self
                        .str_prop(ep, "Method")
                        .unwrap_or_else(|| "ANY".to_string())
                        .to_ascii_uppercase();
                    let method = if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
                        "ANY".to_string()
                    } else {
                        method
                    };
                    if path != "$default" && !path.starts_with('/') {
                        bail!("event {event_name}: HttpApi Path {path:?} must start with '/'");
                    }
                    let authorizer = ep
                        .get("Auth")
                        .and_then(|auth| self.str_prop(auth, "Authorizer"));
                    self.http_routes.push(HttpRoute {
                        method,
                        path,
                        function: id.to_string(),
                        event_name,
                        authorizer,
                    });
                }
                "SQS" => {
                    let queue_v = ep
                        .get("Queue")
                        .ok_or_else(|| anyhow!("event {event_name}: SQS event without Queue"))?;
                    let queue = match TemplateValue::from_yaml(queue_v) {
                        TemplateValue::GetAtt(res, attr) if attr == "Arn" => res,
                        other => bail!(
                            "event {event_name}: SQS Queue must be !GetAtt <Queue>.Arn, got {other:?}"
                        ),
                    };
                    let report_batch_item_failures = ep
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_sequence)
                        .is_some_and(|s| {
                            s.iter().any(|v| {
                                self.literal(v).as_deref() == Some("ReportBatchItemFailures")
                            })
                        });
                    let maximum_concurrency = match ep.get("ScalingConfig") {
                        Some(sc) => self.u32_prop(sc, "MaximumConcurrency")?,
                        None => None,
                    };
                    self.sqs_sources.push(SqsSourceDef {
                        function: id.to_string(),
                        event_name,
                        queue,
                        batch_size: self
                            .u32_prop(ep, "BatchSize")?
                            .unwrap_or(DEFAULT_SQS_BATCH_SIZE),
                        report_batch_item_failures,
                        maximum_batching_window_secs: self
                            .u32_prop(ep, "MaximumBatchingWindowInSeconds")?,
                        maximum_concurrency,
                        enabled: self.bool_prop(ep, "Enabled")?.unwrap_or(true),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl TableDef {
    pub fn hash_key(&self) -> Option<&str> {
        self.key_schema
            .iter()
            .find(|k| k.key_type == "HASH")
            .map(|k| k.attribute_name.as_str())
    }

    pub fn range_key(&self) -> Option<&str> {
        self.key_schema
            .iter()
            .find(|k| k.key_type == "RANGE")
            .map(|k| k.attribute_name.as_str())
    }

    pub fn gsi(&self, name: &str) -> Option<&IndexDef> {
        self.global_secondary_indexes
            .iter()
            .find(|i| i.index_name == name)
    }
}

impl HttpRoute {
    /// API Gateway's route key, e.g. `POST /v1/events` (or `$default`).
    pub fn route_key(&self) -> String {
        if self.path == "$default" {
            "$default".to_string()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }

    /// The path pattern's segments (empty for `$default` and `/`).
    pub fn segments(&self) -> Vec<PathSegment> {
        if self.path == "$default" {
            return Vec::new();
        }
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => match name.strip_suffix('+') {
                        Some(greedy) => PathSegment::Greedy(greedy.to_string()),
                        None => PathSegment::Param(name.to_string()),
                    },
                    None => PathSegment::Literal(s.to_string()),
                },
            )
            .collect()
    }

    /// Matches a request's method and path (already percent-decoded segments are not needed:
    /// matching is on the raw path, parameters are returned percent-decoded like API Gateway's
    /// `pathParameters`). Returns the path parameters on a match.
    pub fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if self.method != "ANY" && !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        if self.path == "$default" {
            return Some(BTreeMap::new());
        }
        let actual: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let pattern = self.segments();
        let mut params = BTreeMap::new();
        let mut i = 0;
        for seg in &pattern {
            match seg {
                PathSegment::Literal(l) => {
                    if actual.get(i) != Some(&l.as_str()) {
                        return None;
                    }
                    i += 1;
                }
                PathSegment::Param(name) => {
                    let v = actual.get(i)?;
                    params.insert(name.clone(), percent_decode(v));
                    i += 1;
                }
                PathSegment::Greedy(name) => {
                    if i >= actual.len() {
                        return None;
                    }
                    params.insert(name.clone(), percent_decode(&actual[i..].join("/")));
                    i = actual.len();
                }
            }
        }
        (i == actual.len()).then_some(params)
    }

    /// Ordering key for "most specific route wins" (higher is more specific): a method beats
    /// `ANY`, then literal segments beat parameters, which beat greedy ones; `$default` last.
    pub fn specificity(&self) -> (u8, usize, usize, u8) {
        if self.path == "$default" {
            return (0, 0, 0, 0);
        }
        let segs = self.segments();
        let literals = segs
            .iter()
            .filter(|s| matches!(s, PathSegment::Literal(_)))
            .count();
        let params = segs
            .iter()
            .filter(|s| matches!(s, PathSegment::Param(_)))
            .count();
        let greedy = segs.iter().any(|s| matches!(s, PathSegment::Greedy(_)));
        (
            1 + u8::from(!greedy),
            literals,
            params,
            u8::from(self.method != "ANY"),
        )
    }
}

/// Finds the most specific route for a request, with its path parameters.
pub fn match_route<'a>(
    routes: &'a [HttpRoute],
    method: &str,
    path: &str,
) -> Option<(&'a HttpRoute, BTreeMap<String, String>)> {
    routes
        .iter()
        .filter_map(|r| r.matches(method, path).map(|p| (r, p)))
        .max_by_key(|(r, _)| r.specificity())
}

impl TemplateValue {
    /// Interprets a YAML value as a literal or a CloudFormation intrinsic.
    pub fn from_yaml(v: &Value) -> TemplateValue {
        match v {
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let tag = tag.trim_start_matches('!');
                intrinsic(tag, &tagged.value).unwrap_or_else(|| TemplateValue::Other(v.clone()))
            }
            Value::Mapping(m) if m.len() == 1 => {
                let (k, inner) = m.iter().next().expect("one entry");
                match k.as_str() {
                    Some("Ref") => intrinsic("Ref", inner),
                    Some(other) if other.starts_with("Fn::") => {
                        intrinsic(other.trim_start_matches("Fn::"), inner)
                    }
                    _ => None,
                }
                .unwrap_or_else(|| TemplateValue::Other(v.clone()))
            }
            other => match scalar_string(other) {
                Some(s) => TemplateValue::Literal(s),
                None => TemplateValue::Other(other.clone()),
            },
        }
    }
}

fn intrinsic(name: &str, arg: &Value) -> Option<TemplateValue> {
    match name {
        "Ref" => arg.as_str().map(|s| TemplateValue::Ref(s.to_string())),
        "GetAtt" => match arg {
            Value::String(s) => {
                let (res, attr) = s.split_once('.')?;
                Some(TemplateValue::GetAtt(res.to_string(), attr.to_string()))
            }
            Value::Sequence(seq) if seq.len() == 2 => Some(TemplateValue::GetAtt(
                seq[0].as_str()?.to_string(),
                seq[1].as_str()?.to_string(),
            )),
            _ => None,
        },
        "Sub" => match arg {
            Value::String(s) => Some(TemplateValue::Sub(s.clone())),
            Value::Sequence(seq) if !seq.is_empty() => {
                Some(TemplateValue::Sub(seq[0].as_str()?.to_string()))
            }
            _ => None,
        },
        _ => None,
    }
}

fn env_map(vars: &Mapping) -> anyhow::Result<BTreeMap<String, TemplateValue>> {
    vars.iter()
        .map(|(k, v)| Ok((key_str(k)?, TemplateValue::from_yaml(v))))
        .collect()
}

fn key_str(k: &Value) -> anyhow::Result<String> {
    k.as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("expected a string key, got {k:?}"))
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are). `+` is kept: in a path it is
/// not a space.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
  EventsVisibility:
    Type: Number
    Default: 120
  ScheduleTimeZone:
    Type: String
    Default: Europe/Stockholm
Globals:
  Function:
    Environment:
      Variables:
        TABLE_NAME: !Ref CarrotTable
        LOG_LEVEL: info
Resources:
  CarrotTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub carrot-${Stage}
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - { AttributeName: pk, AttributeType: S }
        - { AttributeName: sk, AttributeType: S }
        - { AttributeName: gsi1pk, AttributeType: S }
        - { AttributeName: gsi1sk, AttributeType: N }
      KeySchema:
        - { AttributeName: pk, KeyType: HASH }
        - { AttributeName: sk, KeyType: RANGE }
      GlobalSecondaryIndexes:
        - IndexName: gsi1
          KeySchema:
            - { AttributeName: gsi1pk, KeyType: HASH }
            - { AttributeName: gsi1sk, KeyType: RANGE }
          Projection:
            ProjectionType: INCLUDE
            NonKeyAttributes: [points]
      TimeToLiveSpecification:
        AttributeName: expires_at
        Enabled: true
  EventsQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref EventsVisibility
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt EventsDeadLetterQueue.Arn
        maxReceiveCount: 5
  EventsDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
  HttpApi:
    Type: AWS::Serverless::HttpApi
  IngestFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          QUEUE_URL: !Ref EventsQueue
          LOG_LEVEL: debug
      Events:
        Post:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Path: /v1/events
            Method: post
  AdminFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Program:
          Type: HttpApi
          Properties: { ApiId: !Ref HttpApi, Path: /v1/program, Method: PUT }
        Participant:
          Type: HttpApi
          Properties: { ApiId: !Ref HttpApi, Path: "/v1/participants/{participant}", Method: PUT }
  AwardFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Events:
          Type: SQS
          Properties:
            Queue:
              Fn::GetAtt: [EventsQueue, Arn]
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
  OutboundTopic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub carrot-${Stage}-outbound
  OutboundToEvents:
    Type: AWS::SNS::Subscription
    Properties:
      TopicArn: !Ref OutboundTopic
      Protocol: sqs
      Endpoint: !GetAtt EventsQueue.Arn
      RawMessageDelivery: true
  OutboundToOps:
    Type: AWS::SNS::Subscription
    Properties: { TopicArn: !Ref OutboundTopic, Protocol: email, Endpoint: ops@example.com }
  SigningSecret:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString: { PasswordLength: 48, ExcludePunctuation: true }
  PlainSecret:
    Type: AWS::SecretsManager::Secret
    Properties: { SecretString: "{}" }
  MailSet:
    Type: AWS::SES::ConfigurationSet
  MailEvents:
    Type: AWS::SES::ConfigurationSetEventDestination
    Properties:
      ConfigurationSetName: !Ref MailSet
      EventDestination:
        MatchingEventTypes: [delivery]
        SnsDestination: { TopicARN: !Ref OutboundTopic }
  CloseSchedule:
    Type: AWS::Scheduler::Schedule
    Properties:
      ScheduleExpression: cron(15 * * * ? *)
      ScheduleExpressionTimezone: !Ref ScheduleTimeZone
      FlexibleTimeWindow: { Mode: "OFF" }
      Target:
        Arn: !GetAtt AwardFunction.Arn
        RoleArn: !GetAtt ScheduleRole.Arn
        Input: '{"job": "close-due"}'
"#;

    #[test]
    fn parses_fixture() {
        let t = Template::parse(FIXTURE).unwrap();
        assert_eq!(t.parameters["Stage"].as_deref(), Some("dev"));

        let table = t.table("CarrotTable").unwrap();
        assert_eq!(table.hash_key(), Some("pk"));
        assert_eq!(table.range_key(), Some("sk"));
        assert_eq!(table.billing_mode, "PAY_PER_REQUEST");
        assert_eq!(table.attribute_definitions.len(), 4);
        let gsi = table.gsi("gsi1").unwrap();
        assert_eq!(gsi.projection_type, "INCLUDE");
        assert_eq!(gsi.non_key_attributes, vec!["points".to_string()]);
        assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));

        let q = t.queue("EventsQueue").unwrap();
        assert_eq!(
            q.visibility_timeout_secs, 120,
            "resolved from the parameter"
        );
        let r = q.redrive.as_ref().unwrap();
        assert_eq!(r.dead_letter_queue, "EventsDeadLetterQueue");
        assert_eq!(r.max_receive_count, 5);
        let dlq = t.queue("EventsDeadLetterQueue").unwrap();
        assert_eq!(dlq.visibility_timeout_secs, DEFAULT_VISIBILITY_TIMEOUT_SECS);
        assert_eq!(dlq.message_retention_secs, Some(1_209_600));
        let order: Vec<_> = t
            .queues_in_creation_order()
            .iter()
            .map(|q| q.logical_id.as_str())
            .collect();
        assert_eq!(order, ["EventsDeadLetterQueue", "EventsQueue"]);

        assert_eq!(t.http_routes.len(), 3);
        let ingest = t.routes_of("IngestFunction");
        assert_eq!(ingest[0].route_key(), "POST /v1/events");

        let s = t.sqs_source_of("AwardFunction").unwrap();
        assert_eq!(s.queue, "EventsQueue");
        assert_eq!(s.batch_size, 10);
        assert!(s.report_batch_item_failures);
        assert!(s.enabled);

        let topic = t.topic("OutboundTopic").unwrap();
        assert!(!topic.fifo);
        assert_eq!(
            t.subscriptions,
            [SubscriptionDef {
                logical_id: "OutboundToEvents".into(),
                topic: "OutboundTopic".into(),
                queue: "EventsQueue".into(),
                raw_message_delivery: true,
            }],
            "the e-mail subscription reaches outside the local stack"
        );
        assert_eq!(
            t.secret("SigningSecret").unwrap().value,
            SecretValue::Generated { length: 48 }
        );
        assert_eq!(
            t.secret("PlainSecret").unwrap().value,
            SecretValue::Literal("{}".into())
        );
        assert_eq!(
            t.configuration_sets,
            [ConfigurationSetDef {
                logical_id: "MailSet".into()
            }]
        );

        let schedule = t.schedule("CloseSchedule").unwrap();
        assert_eq!(schedule.expression, "cron(15 * * * ? *)");
        assert_eq!(schedule.timezone.as_deref(), Some("Europe/Stockholm"));
        assert_eq!(schedule.function, "AwardFunction");
        assert_eq!(schedule.input.as_deref(), Some(r#"{"job": "close-due"}"#));

        let f = t.function("IngestFunction").unwrap();
        assert_eq!(
            f.environment["TABLE_NAME"],
            TemplateValue::Ref("CarrotTable".into())
        );
        assert_eq!(
            f.environment["QUEUE_URL"],
            TemplateValue::Ref("EventsQueue".into())
        );
        assert_eq!(
            f.environment["LOG_LEVEL"],
            TemplateValue::Literal("debug".into()),
            "function variables override the globals"
        );
    }

    #[test]
    fn route_matching() {
        let t = Template::parse(FIXTURE).unwrap();
        let routes = &t.http_routes;
        let (r, p) = match_route(routes, "PUT", "/v1/participants/p%2D1").unwrap();
        assert_eq!(r.function, "AdminFunction");
        assert_eq!(p["participant"], "p-1");
        assert!(match_route(routes, "GET", "/v1/participants/p1").is_none());
        assert!(match_route(routes, "PUT", "/v1/participants").is_none());
        assert!(match_route(routes, "PUT", "/v1/participants/a/b").is_none());
        assert!(match_route(routes, "POST", "/v1/events").is_some());
        assert!(match_route(routes, "POST", "/v1/events/").is_some());
        assert!(match_route(routes, "POST", "/v2/events").is_none());

        let mk = |m: &str, p: &str| HttpRoute {
            method: m.into(),
            path: p.into(),
            function: format!("{m} {p}"),
            event_name: "e".into(),
            authorizer: None,
        };
        let routes = vec![
            mk("ANY", "$default"),
            mk("ANY", "/a/{proxy+}"),
            mk("GET", "/a/{id}"),
            mk("GET", "/a/b"),
            mk("ANY", "/a/b"),
        ];
        let pick = |m, p| match_route(&routes, m, p).map(|(r, _)| r.function.clone());
        assert_eq!(pick("GET", "/a/b").unwrap(), "GET /a/b");
        assert_eq!(pick("POST", "/a/b").unwrap(), "ANY /a/b");
        assert_eq!(pick("GET", "/a/c").unwrap(), "GET /a/{id}");
        assert_eq!(pick("GET", "/a/c/d").unwrap(), "ANY /a/{proxy+}");
        let (_, p) = match_route(&routes, "GET", "/a/c/d").unwrap();
        assert_eq!(p["proxy"], "c/d");
        assert_eq!(pick("GET", "/zzz").unwrap(), "ANY $default");
    }

    #[test]
    fn rejects_dangling_references() {
        let bad = FIXTURE.replace(
            "!GetAtt EventsDeadLetterQueue.Arn",
            "!GetAtt NoSuchQueue.Arn",
        );
        let err = Template::parse(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("NoSuchQueue"), "{err:#}");
    }

    #[test]
    fn rejects_a_subscription_of_a_queue_the_template_lacks() {
        let bad = FIXTURE.replace(
            "Endpoint: !GetAtt EventsQueue.Arn",
            "Endpoint: !GetAtt NoSuchQueue.Arn",
        );
        let err = Template::parse(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("NoSuchQueue"), "{err:#}");
    }

    #[test]
    fn rejects_a_schedule_without_a_function_target() {
        let bad = FIXTURE.replace("!GetAtt AwardFunction.Arn", "!GetAtt NoSuchFunction.Arn");
        let err = Template::parse(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("NoSuchFunction"), "{err:#}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a+b"), "a+b");
    }

    /// The project's real template: the logical ids the local stack relies on.
    #[test]
    fn real_template() {
        let t = Template::load().expect("infra/template.yaml parses");

        let table = t.table("CarrotTable").expect("CarrotTable");
        assert_eq!(table.hash_key(), Some("pk"));
        assert_eq!(table.range_key(), Some("sk"));
        assert_eq!(table.billing_mode, "PAY_PER_REQUEST");
        for ix in &table.global_secondary_indexes {
            for k in &ix.key_schema {
                assert!(
                    table
                        .attribute_definitions
                        .iter()
                        .any(|a| a.attribute_name == k.attribute_name),
                    "index {} key {} has an attribute definition",
                    ix.index_name,
                    k.attribute_name
                );
            }
        }

        let q = t.queue("EventsQueue").expect("EventsQueue");
        let r = q.redrive.as_ref().expect("EventsQueue has a RedrivePolicy");
        assert_eq!(r.dead_letter_queue, "EventsDeadLetterQueue");
        assert_eq!(r.max_receive_count, 5);
        assert!(t.queue("EventsDeadLetterQueue").is_some());

        let (route, params) =
            match_route(&t.http_routes, "POST", "/v1/programs/acme/events").expect("ingest route");
        assert_eq!(route.function, "IngestFunction");
        assert_eq!(route.route_key(), "POST /v1/programs/{program}/events");
        assert_eq!(params["program"], "acme");
        let (route, _) =
            match_route(&t.http_routes, "PUT", "/v1/programs/acme").expect("program route");
        assert_eq!(route.function, "AdminFunction");
        let (route, params) = match_route(
            &t.http_routes,
            "PUT",
            "/v1/programs/acme/participants/alice",
        )
        .expect("participant");
        assert_eq!(route.function, "AdminFunction");
        assert_eq!(params["participant"], "alice");
        let (route, _) =
            match_route(&t.http_routes, "GET", "/v1/me/orders").expect("a rep's route");
        assert_eq!(route.function, "PortalFunction");
        assert_eq!(route.authorizer.as_deref(), Some("PortalJwt"));

        let s = t.sqs_source_of("AwardFunction").expect("AwardFunction SQS");
        assert_eq!(s.queue, "EventsQueue");
        assert_eq!(s.batch_size, 10);
        assert!(s.report_batch_item_failures);

        // The period close: its indexes, queues, topic, function, schedule and routes.
        let attribute_type = |name: &str| {
            table
                .attribute_definitions
                .iter()
                .find(|a| a.attribute_name == name)
                .map(|a| a.attribute_type.as_str())
        };
        for (index, hash, range, range_type) in [
            ("Roster", "roster", "participant", "S"),
            ("MonthPoints", "lb", "points", "N"),
            ("MonthLoginDays", "lb", "days", "N"),
        ] {
            let ix = table.gsi(index).unwrap_or_else(|| panic!("index {index}"));
            let keys: Vec<_> = ix
                .key_schema
                .iter()
                .map(|k| (k.attribute_name.as_str(), k.key_type.as_str()))
                .collect();
            assert_eq!(keys, [(hash, "HASH"), (range, "RANGE")], "{index}");
            assert_eq!(ix.projection_type, "KEYS_ONLY", "{index}");
            assert_eq!(attribute_type(hash), Some("S"), "{index}");
            assert_eq!(attribute_type(range), Some(range_type), "{index}");
        }

        let q = t.queue("NotificationsQueue").expect("NotificationsQueue");
        let r = q
            .redrive
            .as_ref()
            .expect("NotificationsQueue has a RedrivePolicy");
        assert_eq!(r.dead_letter_queue, "NotificationsDeadLetterQueue");
        assert!(t.queue("CloseScheduleDeadLetterQueue").is_some());
        assert!(t.topic("OutboundTopic").is_some());

        let close = t.function("CloseFunction").expect("CloseFunction");
        assert_eq!(close.timeout_secs, Some(900));
        for (var, value) in [
            ("TABLE_NAME", "CarrotTable"),
            ("EVENTS_QUEUE_URL", "EventsQueue"),
            ("NOTIFICATIONS_QUEUE_URL", "NotificationsQueue"),
            ("OUTBOUND_TOPIC_ARN", "OutboundTopic"),
        ] {
            assert_eq!(
                close.environment[var],
                TemplateValue::Ref(value.into()),
                "{var}"
            );
        }
        let schedule = t.schedule("CloseSchedule").expect("CloseSchedule");
        assert_eq!(schedule.function, "CloseFunction");
        assert_eq!(schedule.expression, "cron(15 * * * ? *)");
        assert_eq!(schedule.timezone.as_deref(), Some("UTC"));
        let input: serde_json::Value =
            serde_json::from_str(schedule.input.as_deref().expect("schedule input")).unwrap();
        assert_eq!(input, serde_json::json!({"job": "close-due"}));

        let admin = t.function("AdminFunction").expect("AdminFunction");
        // The admin function publishes reinstatements; it sends no notifications.
        assert!(admin.environment.contains_key("OUTBOUND_TOPIC_ARN"));
        assert!(!admin.environment.contains_key("NOTIFICATIONS_QUEUE_URL"));
        assert_eq!(
            admin.environment["UNSUBSCRIBE_SECRET_ARN"],
            TemplateValue::Ref("UnsubscribeSecret".into())
        );
        for (method, path, param, value) in [
            (
                "GET",
                "/v1/programs/acme/leaderboards/points",
                "board",
                "points",
            ),
            (
                "GET",
                "/v1/programs/acme/closes/2026-03",
                "period",
                "2026-03",
            ),
            (
                "GET",
                "/v1/programs/acme/reports/2026-03",
                "period",
                "2026-03",
            ),
            (
                "GET",
                "/v1/programs/acme/reports/2026-03/html",
                "period",
                "2026-03",
            ),
            (
                "GET",
                "/v1/programs/acme/drawings/monthly/2026-03",
                "drawing",
                "monthly",
            ),
            (
                "GET",
                "/v1/programs/acme/lists/2026-03/winners",
                "list",
                "winners",
            ),
            (
                "POST",
                "/v1/programs/acme/participants/alice/reinstate",
                "participant",
                "alice",
            ),
            (
                "GET",
                "/v1/programs/acme/participants/alice/messages",
                "participant",
                "alice",
            ),
            (
                "PUT",
                "/v1/programs/acme/participants/alice/preferences",
                "participant",
                "alice",
            ),
            (
                "GET",
                "/v1/programs/acme/messages/2026-03",
                "month",
                "2026-03",
            ),
        ] {
            let (route, params) =
                match_route(&t.http_routes, method, path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(route.function, "AdminFunction", "{path}");
            assert_eq!(params[param], value, "{path}");
        }

        for method in ["GET", "POST"] {
            let (route, _) = match_route(&t.http_routes, method, "/v1/unsubscribe")
                .unwrap_or_else(|| panic!("{method} /v1/unsubscribe"));
            assert_eq!(route.function, "AdminFunction");
        }
    }

    /// The notification sender, its email events, and the engagement run.
    #[test]
    fn real_template_notifications() {
        let t = Template::load().expect("infra/template.yaml parses");
        assert_eq!(
            t.table("CarrotTable").unwrap().ttl_attribute.as_deref(),
            Some("expires_at"),
            "weekly nudge counters expire"
        );

        let sources = t.sqs_sources_of("NotifyFunction");
        let queues: Vec<_> = sources.iter().map(|s| s.queue.as_str()).collect();
        assert_eq!(queues, ["NotificationsQueue", "EmailEventsQueue"]);
        for s in &sources {
            assert_eq!(s.batch_size, 10, "{}", s.queue);
            assert!(s.report_batch_item_failures, "{}", s.queue);
        }
        let r = t
            .queue("EmailEventsQueue")
            .and_then(|q| q.redrive.as_ref())
            .expect("EmailEventsQueue has a RedrivePolicy");
        assert_eq!(r.dead_letter_queue, "EmailEventsDeadLetterQueue");

        // The handler reads SNS's envelope around each SES event.
        assert_eq!(
            t.subscriptions,
            [SubscriptionDef {
                logical_id: "EmailEventsSubscription".into(),
                topic: "EmailEventsTopic".into(),
                queue: "EmailEventsQueue".into(),
                raw_message_delivery: false,
            }]
        );
        assert_eq!(
            t.configuration_sets,
            [ConfigurationSetDef {
                logical_id: "EmailConfigurationSet".into()
            }]
        );
        match t
            .secret("UnsubscribeSecret")
            .expect("UnsubscribeSecret")
            .value
        {
            SecretValue::Generated { length } => assert!(length >= 32, "{length}"),
            ref other => panic!("the unsubscribe secret is generated, not {other:?}"),
        }
        assert_eq!(t.parameters["SenderEmail"], None, "the sender is required");
        assert_eq!(t.parameters["SmsSenderId"].as_deref(), Some(""));

        let notify = t.function("NotifyFunction").expect("NotifyFunction");
        for (var, value) in [
            ("TABLE_NAME", TemplateValue::Ref("CarrotTable".into())),
            ("SENDER_EMAIL", TemplateValue::Ref("SenderEmail".into())),
            (
                "EMAIL_CONFIGURATION_SET",
                TemplateValue::Ref("EmailConfigurationSet".into()),
            ),
            ("SMS_SENDER_ID", TemplateValue::Ref("SmsSenderId".into())),
            (
                "UNSUBSCRIBE_SECRET_ARN",
                TemplateValue::Ref("UnsubscribeSecret".into()),
            ),
            (
                "EMAIL_EVENTS_QUEUE_ARN",
                TemplateValue::GetAtt("EmailEventsQueue".into(), "Arn".into()),
            ),
        ] {
            assert_eq!(notify.environment[var], value, "{var}");
        }
        assert!(
            matches!(&notify.environment["API_BASE_URL"], TemplateValue::Sub(url) if url.contains("${HttpApi}")),
            "{:?}",
            notify.environment["API_BASE_URL"]
        );

        let engage = t.function("EngageFunction").expect("EngageFunction");
        assert_eq!(engage.timeout_secs, Some(900));
        assert_eq!(engage.memory_mb, Some(2048));
        for (var, value) in [
            ("TABLE_NAME", "CarrotTable"),
            ("NOTIFICATIONS_QUEUE_URL", "NotificationsQueue"),
            ("EVENTS_QUEUE_URL", "EventsQueue"),
        ] {
            assert_eq!(
                engage.environment[var],
                TemplateValue::Ref(value.into()),
                "{var}"
            );
        }
        let schedule = t.schedule("EngageSchedule").expect("EngageSchedule");
        assert_eq!(schedule.function, "EngageFunction");
        assert_eq!(schedule.timezone.as_deref(), Some("UTC"));
        let input: serde_json::Value =
            serde_json::from_str(schedule.input.as_deref().expect("schedule input")).unwrap();
        assert_eq!(input, serde_json::json!({"job": "engage"}));
        assert!(t.queue("EngageScheduleDeadLetterQueue").is_some());
    }
}
