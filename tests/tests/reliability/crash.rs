//! Crash injection: the award worker and the notification sender killed at their worst
//! moments, then their messages delivered again, as SQS does after a crash. Each ends as if
//! it had never crashed: no double award, nothing missing, each email once. (The period close
//! killed at any point and rerun is `close::crash`.)
//!
//! A crashed invocation never answers: the wrappers below end it with `resume_unwind`, which
//! the local SQS event source sees as a failed invocation, so nothing of its batch is deleted
//! and SQS delivers the batch again after its visibility timeout. (`resume_unwind` skips the
//! panic hook, so a crash prints no backtrace.)

use crate::close::{Tenant, enrol_as_of};
use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use carrot::adapters::clock::SystemClock;
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore};
use carrot::adapters::notify_store::NotifyStore;
use carrot::adapters::secrets::SecretsTokenSecret;
use carrot::adapters::ses::SesMailer;
use carrot::adapters::sns::SnsSms;
use carrot::domain::message::DeliveryStatus;
use carrot::ports::{DeliveryStore, Mailer, OutgoingEmail, PortError, SmsSender};
use carrot::service::notify::Sender;
use carrot_local::deployment::Deployment;
use carrot_local::reference::Reference;
use carrot_local::runner::{BoxFut, SqsEventSource, SqsEventSourceOptions, SqsHandler};
use carrot_local::stack::LocalStack;
use carrot_local::workload::{month_of_events, roster};
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

/// How long the award function and the sender may take to drain their queues.
const IDLE: Duration = Duration::from_secs(300);

/// Seeded rounds of the award test: `CARROT_RELIABILITY_CASES` (default 1). Each round is a
/// program of its own with its own reps, month of events and crashes.
fn rounds() -> u64 {
    std::env::var("CARROT_RELIABILITY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Ends a crashed invocation: it never answers.
fn die() -> ! {
    std::panic::resume_unwind(Box::new("crash injected"))
}

// ------------------------------------------------------------------------------ award

/// A killed award worker, counted by where it died.
#[derive(Default)]
struct AwardCrashes {
    /// After the real handler returned: every message of the batch committed to DynamoDB,
    /// none deleted from the queue.
    after_commit: AtomicU64,
    /// While the handler ran: its future dropped at an await, possibly with a DynamoDB
    /// request sent and its answer lost.
    mid_batch: AtomicU64,
    /// Batches handled and answered.
    survived: AtomicU64,
}

/// Polls `inner` at most `polls` times, then gives up on it: a process killed at whatever
/// await it had reached (`None`).
struct KillAfterPolls<F> {
    inner: Pin<Box<F>>,
    polls_left: u32,
}

impl<F: Future> Future for KillAfterPolls<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if self.polls_left == 0 {
            return Poll::Ready(None);
        }
        self.polls_left -= 1;
        self.inner.as_mut().poll(cx).map(Some)
    }
}

/// What becomes of an award invocation.
enum Fate {
    Survive,
    /// Killed once the handler has returned.
    AfterCommit,
    /// Killed after this many polls of the handler.
    KillAfter(u32),
}

/// The real award handler, killed on a first delivery with probability 2/3: half of those
/// after it returned, half at a random await inside it. Redeliveries are handled in peace, so
/// no message reaches maxReceiveCount through crashes alone.
fn crashing_award(
    award: Arc<award::Award<DynamoStore, CachedPrograms<DynamoStore>, SystemClock>>,
    seed: u64,
    crashes: Arc<AwardCrashes>,
) -> SqsHandler {
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
    Arc::new(move |event: SqsEvent| -> BoxFut<SqsBatchResponse> {
        let first_delivery = event.records.iter().all(|record| {
            record
                .attributes
                .get("ApproximateReceiveCount")
                .is_some_and(|n| n == "1")
        });
        let fate = if first_delivery {
            let mut rng = rng.lock().expect("not poisoned");
            match rng.random_range(0..3) {
                0 => Fate::Survive,
                1 => Fate::AfterCommit,
                _ => Fate::KillAfter(rng.random_range(1..30)),
            }
        } else {
            Fate::Survive
        };
        let award = award.clone();
        let crashes = crashes.clone();
        Box::pin(async move {
            match fate {
                Fate::Survive => {
                    crashes.survived.fetch_add(1, Ordering::SeqCst);
                    award.handle(event).await
                }
                Fate::AfterCommit => {
                    award.handle(event).await;
                    crashes.after_commit.fetch_add(1, Ordering::SeqCst);
                    die()
                }
                Fate::KillAfter(polls) => {
                    let killed = KillAfterPolls {
                        inner: Box::pin(award.handle(event)),
                        polls_left: polls,
                    };
                    // A handler that finished within its polls dies after committing.
                    let counter = match killed.await {
                        Some(_) => &crashes.after_commit,
                        None => &crashes.mid_batch,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    die()
                }
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn award_workers_killed_after_commit_or_mid_batch_award_every_event_exactly_once()
-> anyhow::Result<()> {
    let stack = LocalStack::start_or_reuse().await?;
    let options = crate::options(2, 0.0);
    let mut deployment =
        Deployment::start(stack, "crash-award", options.clone(), crate::PROGRAM_TTL).await?;
    let crashes = Arc::new(AwardCrashes::default());
    let award = Arc::new(award::Award {
        store: deployment.store.clone(),
        programs: CachedPrograms::new(deployment.store.clone(), crate::PROGRAM_TTL),
        clock: SystemClock,
    });
    let seed = 8;
    let crashing = SqsEventSource::start(
        stack.sqs_client(),
        deployment.resources.events_queue_url(),
        deployment.resources.events_queue_arn(),
        crashing_award(award, seed, crashes.clone()),
        options,
    );
    // The deployment's own award worker stops; the crashing one takes the queue.
    std::mem::replace(&mut deployment.award, crashing)
        .shutdown()
        .await;

    let zone = jiff::tz::TimeZone::get("Europe/Stockholm")?;
    let last_month = Timestamp::now()
        .to_zoned(zone.clone())
        .date()
        .first_of_month()
        .checked_sub(1.month())?;
    let mut events_posted = 0;
    let mut entries_checked = 0;
    for round in 0..rounds() {
        let program = format!("crash-award-{round}");
        let yaml = crate::PROGRAM_YAML.replace("program: acme", &format!("program: {program}"));
        let tenant = Tenant::create_with(&deployment, &program, &yaml).await?;
        let reps = roster(20, seed + round);
        for rep in &reps {
            let enrolled = tenant.admin.enrol(&rep.id, &rep.profile).await?;
            anyhow::ensure!(enrolled.status == 201, "{enrolled:?}");
        }
        // Some deals and contracts are cancelled: a reversal and its original may be killed
        // in the same batch.
        let events = month_of_events(&reps, last_month, &zone, 0.1, seed + round);
        for chunk in events.chunks(250) {
            let response = tenant.crm.post_events(&json!({"events": chunk})).await?;
            anyhow::ensure!(
                response.status == 202
                    && response.body["accepted"].as_u64() == Some(chunk.len() as u64),
                "{response:?}"
            );
        }
        events_posted += events.len();
        deployment.award.wait_idle(IDLE).await?;

        let arrivals: Vec<(Value, u32)> = events.iter().map(|e| (e.clone(), 0)).collect();
        let expected = Reference::of_points_table(&yaml)?.expect(&arrivals)?;
        let (differences, compared) = expected
            .differences(&deployment.store, &program, reps.iter().map(|rep| &rep.id))
            .await?;
        assert!(
            differences.is_empty(),
            "{program}: {}",
            differences.join("\n")
        );
        entries_checked += compared;
    }
    let stats = deployment.award.stats();
    let (after_commit, mid_batch, survived) = (
        crashes.after_commit.load(Ordering::SeqCst),
        crashes.mid_batch.load(Ordering::SeqCst),
        crashes.survived.load(Ordering::SeqCst),
    );
    eprintln!(
        "award crash injection: {events_posted} events in {} rounds, {after_commit} workers killed \
         after commit, {mid_batch} mid-batch, {survived} batches answered, {entries_checked} \
         ledger entries checked; {stats:?}",
        rounds()
    );
    assert!(
        after_commit > 0 && mid_batch > 0,
        "both crash points were hit"
    );
    assert_eq!(
        stats.failed_invocations,
        after_commit + mid_batch,
        "every crash left its batch to be delivered again"
    );
    assert_eq!(
        deployment
            .queue_depth(deployment.resources.events_dlq_url())
            .await?,
        0,
        "nothing was dead-lettered"
    );
    deployment.stop().await
}

// ----------------------------------------------------------------------------- sender

/// Where a sender dies around its provider call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPoint {
    /// After the claim, before the provider is called: nothing went out.
    BeforeProvider,
    /// After the provider accepted the message, before the sender logs it sent.
    AfterProvider,
}

/// A provider (SES or SNS) in front of which the sender dies at its recipient's crash point,
/// the first time it sends to that recipient.
struct Crashing<P> {
    inner: P,
    /// Address or phone number → where the first message to it kills the sender.
    plan: HashMap<String, CrashPoint>,
    crashed: Mutex<HashSet<String>>,
    crashes: AtomicU64,
}

impl<P> Crashing<P> {
    fn new(inner: P, plan: HashMap<String, CrashPoint>) -> Self {
        Crashing {
            inner,
            plan,
            crashed: Mutex::new(HashSet::new()),
            crashes: AtomicU64::new(0),
        }
    }

    /// Where this message to `recipient` kills the sender, if it does.
    fn crash_point(&self, recipient: &str) -> Option<CrashPoint> {
        let point = *self.plan.get(recipient)?;
        self.crashed
            .lock()
            .expect("not poisoned")
            .insert(recipient.to_owned())
            .then_some(point)
    }

    async fn around<T>(
        &self,
        recipient: &str,
        call: impl Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        let point = self.crash_point(recipient);
        if point.is_some() {
            self.crashes.fetch_add(1, Ordering::SeqCst);
        }
        if point == Some(CrashPoint::BeforeProvider) {
            die()
        }
        let answer = call.await;
        if point == Some(CrashPoint::AfterProvider) {
            answer?;
            die()
        }
        answer
    }
}

impl<M: Mailer> Mailer for Crashing<M> {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, PortError> {
        self.around(&email.to, self.inner.send_email(email)).await
    }
}

impl<S: SmsSender> SmsSender for Crashing<S> {
    async fn opted_out(&self, phone: &str) -> Result<bool, PortError> {
        self.inner.opted_out(phone).await
    }

    async fn send_sms(
        &self,
        phone: &str,
        text: &str,
        promotional: bool,
    ) -> Result<String, PortError> {
        self.around(phone, self.inner.send_sms(phone, text, promotional))
            .await
    }
}

/// SES as deployed: the configuration set's event destination publishes a `Send` event for
/// every email SES accepts to the email-events topic (moto sends, but publishes no events).
struct SesWithSendEvents {
    ses: SesMailer,
    sns: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Mailer for SesWithSendEvents {
    async fn send_email(&self, email: &OutgoingEmail) -> Result<String, PortError> {
        let message_id = self.ses.send_email(email).await?;
        let tags: serde_json::Map<String, Value> = email
            .tags
            .iter()
            .map(|(name, value)| (name.clone(), json!([value])))
            .collect();
        let event = json!({"eventType": "Send", "send": {}, "mail": {
            "timestamp": Timestamp::now().to_string(), "source": email.from,
            "messageId": message_id, "destination": [email.to], "tags": tags}});
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .message(event.to_string())
            .send()
            .await
            .map_err(|e| PortError::Transient(format!("publishing the Send event: {e}")))?;
        Ok(message_id)
    }
}

type CrashingSender = notify::Notify<
    NotifyStore,
    CachedPrograms<DynamoStore>,
    Crashing<SesWithSendEvents>,
    Crashing<SnsSms>,
    SecretsTokenSecret,
    Arc<carrot::adapters::clock::FixedClock>,
>;

/// The deployment's sender with crashing providers, polling the notifications queue (one
/// request per invocation, so a crash takes down only its own request) and the email-events
/// queue.
fn start_crashing_sender(
    stack: &LocalStack,
    deployment: &Deployment,
    mail_plan: HashMap<String, CrashPoint>,
    sms_plan: HashMap<String, CrashPoint>,
) -> (Arc<CrashingSender>, Vec<SqsEventSource>) {
    let resources = &deployment.resources;
    let sender = Arc::new(notify::Notify {
        sender: Sender {
            store: NotifyStore::new(stack.dynamodb_client(), resources.table()),
            programs: CachedPrograms::new(deployment.store.clone(), Duration::ZERO),
            mailer: Crashing::new(
                SesWithSendEvents {
                    ses: SesMailer::new(
                        stack.sesv2_client(),
                        Some(resources.email_configuration_set().to_owned()),
                    ),
                    sns: stack.sns_client(),
                    topic_arn: resources.email_events_topic_arn().to_owned(),
                },
                mail_plan,
            ),
            sms: Crashing::new(SnsSms::new(stack.sns_client(), None), sms_plan),
            secret: SecretsTokenSecret::new(
                stack.secrets_client(),
                resources.unsubscribe_secret_arn(),
            ),
            clock: deployment.clock.clone(),
            from_email: resources.sender_email().to_owned(),
            api_base_url: deployment.api.base_url().trim_end_matches('/').to_owned(),
        },
        email_events_queue_arn: resources.email_events_queue_arn().to_owned(),
    });
    let options = SqsEventSourceOptions {
        visibility_timeout_secs: Some(5),
        ..SqsEventSourceOptions::default()
    };
    let queues = [("NotificationsQueue", Some(1)), ("EmailEventsQueue", None)];
    let sources = queues
        .into_iter()
        .map(|(queue, batch_size)| {
            let sender = sender.clone();
            let handler: SqsHandler = Arc::new(move |event| -> BoxFut<_> {
                let sender = sender.clone();
                Box::pin(async move { sender.handle(event).await })
            });
            SqsEventSource::start(
                stack.sqs_client(),
                resources.queue_url(queue),
                resources.queue_arn(queue),
                handler,
                SqsEventSourceOptions {
                    batch_size,
                    ..options.clone()
                },
            )
        })
        .collect();
    (sender, sources)
}

/// A rep of the sender test, with where their first message kills the sender.
struct Recipient {
    id: String,
    channel: &'static str,
    crash: CrashPoint,
    /// An essential notice, or a nudge (which counts against the weekly cap).
    essential: bool,
}

impl Recipient {
    fn email(&self, program: &str) -> String {
        format!("{}.{program}@dealer.example", self.id)
    }

    /// A number of its own in moto's shared SMS list (moto takes numbers ending in 99 as
    /// opted out).
    fn phone(&self, program: &str) -> String {
        let digits: u64 = self
            .id
            .bytes()
            .chain(program.bytes())
            .fold(7, |h, b| (h * 31 + u64::from(b)) % 9_000_000);
        format!("+4673{:07}", 1_000_000 + digits / 10 * 10)
    }

    fn request(&self, program: &str) -> Value {
        let (kind, data) = if self.essential {
            ("non_use.notice", json!({"verdict": "notice"}))
        } else {
            (
                "near_miss.target",
                json!({"target": 300, "have": 260, "missing": 40, "days_left": 5, "metric": "points"}),
            )
        };
        json!({"id": format!("{program}:2026-11:{kind}:participant:{}", self.id),
            "program": program, "participant": self.id, "kind": kind, "channel": self.channel,
            "essential": self.essential, "period": "2026-11", "data": data,
            "created_at": Timestamp::now().to_string()})
    }

    fn address(&self, program: &str) -> String {
        match self.channel {
            "sms" => self.phone(program),
            _ => self.email(program),
        }
    }
}

/// How many messages moto's SES and SNS took for `recipient`.
async fn sent_to(
    stack: &LocalStack,
    program: &str,
    recipient: &Recipient,
) -> anyhow::Result<usize> {
    let address = recipient.address(program);
    Ok(match recipient.channel {
        "sms" => stack
            .sent_sms()
            .await?
            .iter()
            .filter(|m| m.phone == address)
            .count(),
        _ => stack
            .sent_emails()
            .await?
            .iter()
            .filter(|m| m.to.contains(&address))
            .count(),
    })
}

/// Waits until the sender has crashed `count` times (the first delivery of each request).
async fn crashed(sender: &CrashingSender, count: u64) -> anyhow::Result<()> {
    let crashes = || {
        sender.sender.mailer.crashes.load(Ordering::SeqCst)
            + sender.sender.sms.crashes.load(Ordering::SeqCst)
    };
    for _ in 0..600 {
        if crashes() >= count {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the sender crashed {} times, not {count}", crashes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sender_killed_around_the_provider_call_sends_each_email_once() -> anyhow::Result<()> {
    use CrashPoint::{AfterProvider, BeforeProvider};
    let stack = LocalStack::start_or_reuse().await?;
    let deployment = Deployment::start(
        stack,
        "crash-sender",
        crate::options(5, 0.0),
        Duration::ZERO,
    )
    .await?;
    let program = deployment.resources.prefix().replace('_', "-");
    let yaml = crate::PROGRAM_YAML.replace("program: acme", &format!("program: {program}"));
    let tenant = Tenant::create_with(&deployment, &program, &yaml).await?;
    let recipient = |id: &str, channel, crash, essential| Recipient {
        id: id.to_owned(),
        channel,
        crash,
        essential,
    };
    // Emails killed after SES took them, and before: three notices and three nudges each.
    let accepted: Vec<Recipient> = (0..6)
        .map(|i| recipient(&format!("accepted-{i}"), "email", AfterProvider, i % 2 == 0))
        .collect();
    let unsent: Vec<Recipient> = (0..6)
        .map(|i| recipient(&format!("unsent-{i}"), "email", BeforeProvider, i % 2 == 0))
        .collect();
    // Texts: SNS publishes no event that proves a text went out.
    let texts = [
        recipient("text-accepted", "sms", AfterProvider, true),
        recipient("text-unsent", "sms", BeforeProvider, true),
    ];
    let everyone = || accepted.iter().chain(&unsent).chain(&texts);
    // Midday in Stockholm: no quiet hours hold the texts.
    let midday = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .at(11, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp();
    deployment.clock.set(midday);
    for rep in everyone() {
        let mut profile = crate::profile(&rep.id);
        profile["email"] = json!(rep.email(&program));
        profile["phone"] = json!(rep.phone(&program));
        enrol_as_of(
            &tenant.admin,
            &rep.id,
            &profile,
            midday - SignedDuration::from_hours(24 * 30),
        )
        .await?;
    }
    let plan = |channel: &str| {
        everyone()
            .filter(|rep| rep.channel == channel)
            .map(|rep| (rep.address(&program), rep.crash))
            .collect()
    };
    let (sender, sources) = start_crashing_sender(stack, &deployment, plan("email"), plan("sms"));
    let queue = deployment.resources.queue_url("NotificationsQueue");
    let enqueue = async |reps: &[Recipient]| -> anyhow::Result<()> {
        for rep in reps {
            deployment
                .sqs
                .send_message()
                .queue_url(queue)
                .message_body(rep.request(&program).to_string())
                .send()
                .await
                .context("queueing a request")?;
        }
        Ok(())
    };
    let idle = async || -> anyhow::Result<()> {
        for source in &sources {
            source.wait_idle(IDLE).await?;
        }
        Ok(())
    };
    let store = &sender.sender.store;
    let logged = async |rep: &Recipient| -> anyhow::Result<DeliveryStatus> {
        let id = rep.request(&program)["id"]
            .as_str()
            .context("an id")?
            .to_owned();
        Ok(store
            .delivery(&program, &rep.id, &id)
            .await?
            .with_context(|| format!("{} has no log entry", rep.id))?
            .status)
    };

    // Killed after SES took the email: its Send event marks the claim sent, so the
    // redelivery finds it sent, even long after the settle window.
    enqueue(&accepted).await?;
    crashed(&sender, 6).await?;
    idle().await?;
    let emails = stack.sent_emails().await?;
    for rep in &accepted {
        let address = rep.email(&program);
        let to_rep: Vec<_> = emails.iter().filter(|m| m.to.contains(&address)).collect();
        assert_eq!(to_rep.len(), 1, "{}: one email", rep.id);
        match logged(rep).await? {
            DeliveryStatus::Sent { provider_id, .. } => {
                assert_eq!(provider_id, to_rep[0].id, "{}: SES's message id", rep.id);
            }
            other => panic!("{}: logged {other:?}", rep.id),
        }
    }
    deployment.clock.set(midday + 1.hour());
    enqueue(&accepted).await?;
    idle().await?;

    // Killed before SES was called: the claim stays `sending` with no word from SES; once
    // the settle window has passed, the redelivery sends.
    enqueue(&unsent).await?;
    enqueue(&texts).await?;
    crashed(&sender, 6 + 6 + 2).await?;
    deployment
        .clock
        .set(midday + 1.hour() + SignedDuration::from_mins(3));
    idle().await?;

    for rep in everyone() {
        let status = logged(rep).await?;
        assert!(
            matches!(status, DeliveryStatus::Sent { .. }),
            "{}: logged {status:?}",
            rep.id
        );
        let sent = sent_to(stack, &program, rep).await?;
        // A text SNS took before the crash goes again: nothing tells the sender it went.
        let expected = match (rep.channel, rep.crash) {
            ("sms", AfterProvider) => 2,
            _ => 1,
        };
        assert_eq!(
            sent, expected,
            "{} ({} {:?})",
            rep.id, rep.channel, rep.crash
        );
    }
    assert_eq!(
        sources[0].stats().failed_invocations,
        (accepted.len() + unsent.len() + texts.len()) as u64,
        "each request's first delivery, and only it, died"
    );
    assert_eq!(
        deployment
            .queue_depth(
                deployment
                    .resources
                    .queue_url("NotificationsDeadLetterQueue")
            )
            .await?,
        0
    );
    eprintln!(
        "sender crash injection: {} emails and {} texts, {} crashes",
        accepted.len() + unsent.len(),
        texts.len(),
        sender.sender.mailer.crashes.load(Ordering::SeqCst)
            + sender.sender.sms.crashes.load(Ordering::SeqCst)
    );
    for source in sources {
        source.shutdown().await;
    }
    deployment.stop().await
}
