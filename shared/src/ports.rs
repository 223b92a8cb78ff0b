//! The ports: one small trait per capability a function needs, so each function gets only
//! the reader or writer it uses (and IAM to match). Adapters live in `crate::adapters`.

use crate::domain::counters::MonthStats;
use crate::domain::engine::{Counters, Reads, Subject};
use crate::domain::ledger::{EventRecord, Plan};
use crate::domain::participant::{Decision, Enrolling, Profile};
use crate::domain::program::{Program, ProgramVersions};
use jiff::Timestamp;
use std::future::Future;
use std::sync::Arc;

/// Failures of an adapter, told apart by what the caller should do about them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortError {
    /// A conditional write found the state changed: re-read and decide again.
    #[error("a condition on the stored state failed")]
    ConditionFailed,
    /// Throttling, a timeout, a transaction conflict: the same call may succeed later.
    #[error("temporarily unavailable: {0}")]
    Transient(String),
    /// Retrying will not help (bad request, missing permission, corrupt item).
    #[error("{0}")]
    Permanent(String),
}

impl PortError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, PortError::Permanent(_))
    }
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// One message for the events queue. `id` is unique within one send call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub body: String,
}

pub trait EventQueue: Send + Sync {
    /// Sends every message; the result says, per message in order, whether it was accepted.
    fn send(
        &self,
        messages: &[QueueMessage],
    ) -> impl Future<Output = Vec<Result<(), PortError>>> + Send;
}

/// A machine client's key: the program it belongs to, what it may do, and its active secrets
/// (two during a rotation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub program: String,
    pub scopes: Vec<String>,
    pub secrets: Vec<String>,
}

pub trait KeyStore: Send + Sync {
    /// `Ok(None)` when no such key exists.
    fn key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<KeyRecord>>, PortError>> + Send;
}

pub trait ProgramReader: Send + Sync {
    /// Every stored version of the program's configuration, `Ok(None)` if it has none.
    fn versions(
        &self,
        program: &str,
    ) -> impl Future<Output = Result<Option<Arc<ProgramVersions>>, PortError>> + Send;

    /// Versions complete for an event that occurred at `at`: a cache answers only when no
    /// version it has not seen could be in force at `at`.
    fn versions_for(
        &self,
        program: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<Option<Arc<ProgramVersions>>, PortError>> + Send {
        let _ = at;
        self.versions(program)
    }
}

pub trait ProgramWriter: Send + Sync {
    /// Stores `program` as the next version after `previous` (0 for the first), in force for
    /// events from `effective_from`; `ConditionFailed` when someone else stored a version in
    /// between.
    fn put(
        &self,
        program: &Program,
        previous: u32,
        effective_from: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Write and read units one operation consumed, as DynamoDB reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Consumed {
    pub write_units: f64,
    pub read_units: f64,
}

impl std::ops::AddAssign for Consumed {
    fn add_assign(&mut self, other: Self) {
        self.write_units += other.write_units;
        self.read_units += other.read_units;
    }
}

/// What the award function knows before it decides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// `None` when the participant is not enrolled.
    pub participant: Option<ParticipantState>,
    pub records: Vec<EventRecord>,
    /// The counters of the profile and of the items `Reads` named.
    pub counters: Counters,
    pub consumed: Consumed,
}

impl Loaded {
    pub fn record(&self, event_id: &str) -> Option<&EventRecord> {
        self.records.iter().find(|r| r.event_id == event_id)
    }
}

impl ParticipantState {
    /// The participant as rules see them.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            role: Some(self.profile.role.as_str()),
            segment: self.segment.as_deref(),
            tier: self.profile.tier.as_deref(),
            distributor: Some(self.profile.distributor.as_str()),
            location: Some(self.profile.location.as_str()),
            region: self.profile.region.as_deref(),
            status: &self.status,
            enrolled_at: self.enrolled_at.parse().unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }
}

pub trait AwardStore: Send + Sync {
    /// Strongly consistent read of the participant (profile and its counters), the named
    /// event records and the counter items `reads` names.
    fn load(
        &self,
        program: &str,
        participant: &str,
        event_ids: &[&str],
        reads: &Reads,
    ) -> impl Future<Output = Result<Loaded, PortError>> + Send;

    /// Applies a plan atomically, every write conditioned on the state the plan was made from.
    fn commit(
        &self,
        program: &str,
        participant: &str,
        plan: &Plan,
    ) -> impl Future<Output = Result<Consumed, PortError>> + Send;

    /// Keeps an event of a participant who is not enrolled; `ConditionFailed` if they are.
    fn park(
        &self,
        program: &str,
        participant: &str,
        event_id: &str,
        message: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Consumed, PortError>> + Send;
}

/// An event kept until its participant enrols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    pub event_id: String,
    /// The queue message exactly as it was received.
    pub message: String,
}

pub trait EnrolmentStore: Send + Sync {
    /// Creates or updates the participant as `Enrolling::decide` says (writing nothing when
    /// nothing changes); their balance and enrolment date survive updates.
    fn enrol(
        &self,
        program: &str,
        participant: &str,
        enrolling: &Enrolling,
        now: Timestamp,
    ) -> impl Future<Output = Result<Decision, PortError>> + Send;

    fn parked(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<ParkedEvent>, PortError>> + Send;

    /// Deletes a parked event once it is back on the queue.
    fn release(
        &self,
        program: &str,
        participant: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A participant as stored: profile, status and balance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParticipantState {
    pub participant: String,
    #[serde(flatten)]
    pub profile: Profile,
    pub status: String,
    pub enrolled_at: String,
    /// The sum of every ledger entry, pending points included (see `Wallet`).
    pub balance: i64,
    /// The behavioural segment the daily segmentation last assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

pub trait StatsReader: Send + Sync {
    fn participant(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Option<ParticipantState>, PortError>> + Send;

    fn months(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<MonthStats>, PortError>> + Send;

    fn ledger(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<EventRecord>, PortError>> + Send;
}

/// A close as stored: the run whose frozen outcome counts, and how far its effects got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseState {
    pub run: String,
    pub config_version: u32,
    pub frozen_at: String,
    /// Effects applied so far, in the frozen order.
    pub applied: u64,
    pub done: bool,
}

/// What the period close reads and writes in the table.
pub trait CloseStore: Send + Sync {
    /// One page of participant ids of a roster shard, after `after`, and where the next starts.
    fn roster(
        &self,
        program: &str,
        shard: u8,
        after: Option<String>,
    ) -> impl Future<Output = Result<(Vec<String>, Option<String>), PortError>> + Send;

    /// The members among `participants` with their counters over `period`'s months.
    fn members(
        &self,
        program: &str,
        participants: &[String],
        period: &crate::domain::close::ClosePeriod,
    ) -> impl Future<Output = Result<Vec<crate::domain::close::Member>, PortError>> + Send;

    fn state(
        &self,
        program: &str,
        period: &str,
    ) -> impl Future<Output = Result<Option<CloseState>, PortError>> + Send;

    /// Stores the frozen outcome (JSON) under a new run, then the state that names it, if no
    /// state exists. Returns the state that counts: this run's, or a concurrent run's.
    fn freeze(
        &self,
        program: &str,
        period: &str,
        config_version: u32,
        frozen_at: &str,
        frozen: &str,
    ) -> impl Future<Output = Result<CloseState, PortError>> + Send;

    /// The frozen outcome (JSON) of the state's run.
    fn frozen(
        &self,
        program: &str,
        period: &str,
        state: &CloseState,
    ) -> impl Future<Output = Result<String, PortError>> + Send;

    /// Records effects applied up to `applied` (never moves back).
    fn checkpoint(
        &self,
        program: &str,
        period: &str,
        applied: u64,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Stores a document of the close (`report`, `board#…`, `drawing#…`, `list#…`), split in
    /// pages as needed. Writing the same name again replaces it with the same content.
    fn put_document(
        &self,
        program: &str,
        period: &str,
        name: &str,
        pages: &[String],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// A page of a stored document (`None`: no such document or page) and the page count.
    fn document(
        &self,
        program: &str,
        period: &str,
        name: &str,
        page: u32,
    ) -> impl Future<Output = Result<Option<(String, u32)>, PortError>> + Send;

    /// Marks the close done.
    fn finish(
        &self,
        program: &str,
        period: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The first strike of `period`, once: `false` if it was already recorded.
    fn strike(
        &self,
        program: &str,
        participant: &str,
        period: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Sets an active participant's status to `status` for `period`: `false` if not active.
    fn sanction(
        &self,
        program: &str,
        participant: &str,
        status: &str,
        period: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Makes a suspended or terminated participant active again, strikes cleared: `false` if
    /// not enrolled or already active.
    fn reinstate(
        &self,
        program: &str,
        participant: &str,
        at: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Programs with a stored configuration (the hourly job closes each one's due periods).
    fn programs(&self) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
}

/// Events other systems subscribe to (a portal disabling a suspended account).
pub trait Outbound: Send + Sync {
    /// Publishes one event (JSON); `kind` goes in a message attribute for filtering.
    fn publish(
        &self,
        kind: &str,
        event: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The live leaderboard index over month items (write-sharded by participant).
pub trait LiveIndex: Send + Sync {
    /// The month's best entries of the metric: at least the top `k` (all of them when fewer),
    /// plus every entry tied with the k-th, best first.
    fn top(
        &self,
        program: &str,
        month: &str,
        metric: &crate::domain::standings::Metric,
        k: usize,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, PortError>> + Send;

    /// The members among `participants` with their counters over the months (random access).
    fn members(
        &self,
        program: &str,
        participants: &[String],
        period: &crate::domain::close::ClosePeriod,
    ) -> impl Future<Output = Result<Vec<crate::domain::close::Member>, PortError>> + Send;
}

// ---------------------------------------------------------------------------------------
// Notifications: the sender (`service::notify`), its feedback path, deferrals, preferences.

/// One email ready for the wire: the whole MIME message, headers included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub from: String,
    pub to: String,
    pub raw_mime: Vec<u8>,
    /// Message tags (SES), echoed in its bounce, complaint, delivery and open events. Names
    /// and values are `[A-Za-z0-9_-]`.
    pub tags: Vec<(String, String)>,
}

pub trait Mailer: Send + Sync {
    /// Hands the email to the provider; returns the provider's message id.
    fn send_email(
        &self,
        email: &OutgoingEmail,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
}

pub trait SmsSender: Send + Sync {
    /// Whether the number replied STOP (the provider's opt-out list).
    fn opted_out(&self, phone: &str) -> impl Future<Output = Result<bool, PortError>> + Send;

    /// Sends one text; `promotional` picks the provider's promotional route (nudges) over the
    /// transactional one (notices). Returns the provider's message id.
    fn send_sms(
        &self,
        phone: &str,
        text: &str,
        promotional: bool,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
}

pub use crate::domain::message::{
    Claim, DeliveryEntry, DeliveryStatus, Feedback, KindStats, Preferences,
};

/// What the sender reads and writes: the recipient, the delivery log (one entry per
/// request id: the idempotency key), the weekly nudge counter and deferrals.
pub trait DeliveryStore: Send + Sync {
    /// The participant (profile, status) and their preferences; `None` if not enrolled.
    fn recipient(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Option<(ParticipantState, Preferences)>, PortError>> + Send;

    fn delivery(
        &self,
        program: &str,
        participant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<DeliveryEntry>, PortError>> + Send;

    /// Claims `entry.id` for sending (status `Sending`): succeeds when no entry exists or the
    /// existing one is `Deferred`; with `cap = Some((week, max))` also counts one nudge in
    /// that week, only while fewer than `max` were counted, in the same transaction.
    fn claim(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        cap: Option<(&str, u32)>,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send;

    /// Gives a claim back after the provider refused or failed: deletes the `Sending` entry
    /// (only if it is still this claim, `entry.status`) and takes back the nudge it counted.
    fn unclaim(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        cap: Option<(&str, u32)>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Marks a claimed entry `Sent` and counts it in the program's message statistics.
    fn mark_sent(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Records a final `Skipped` entry unless an entry exists (then `ConditionFailed`).
    fn skip(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Records a `Deferred` entry and keeps `request` (the queue message) until `until`, in
    /// one transaction; `ConditionFailed` if an entry other than `Deferred` exists.
    fn defer(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        request: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A request kept until its quiet hours end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    /// The store's key for `release`.
    pub key: String,
    pub request: String,
}

pub trait DeferralStore: Send + Sync {
    /// Deferred requests of `program` due at `now`, oldest first, at most `limit`.
    fn due(
        &self,
        program: &str,
        now: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Deferred>, PortError>> + Send;

    /// Forgets a deferred request once it is back on the queue.
    fn release(
        &self,
        program: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

pub trait FeedbackStore: Send + Sync {
    /// Records a delivery, open, bounce or complaint on the message's log entry (once per
    /// kind of feedback), counts it in the statistics, and on a permanent bounce or a
    /// complaint suppresses the address.
    fn record(&self, feedback: &Feedback) -> impl Future<Output = Result<(), PortError>> + Send;
}

pub trait PreferenceStore: Send + Sync {
    fn preferences(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Preferences, PortError>> + Send;

    /// Stores the participant's preferences (whole); `ConditionFailed` if not enrolled.
    fn set_preferences(
        &self,
        program: &str,
        participant: &str,
        preferences: &Preferences,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The participant's delivery log, newest first.
    fn deliveries(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<DeliveryEntry>, PortError>> + Send;

    /// Sent, delivered, opened, bounced and complained counts per message kind in a month.
    fn message_stats(
        &self,
        program: &str,
        month: &str,
    ) -> impl Future<Output = Result<Vec<KindStats>, PortError>> + Send;
}

/// The secret that signs unsubscribe links (Secrets Manager in production).
pub trait TokenSecret: Send + Sync {
    fn secret(&self) -> impl Future<Output = Result<Arc<Vec<u8>>, PortError>> + Send;
}

// ---------------------------------------------------------------------------------------
// The daily engagement run (`service::engage`).

/// A member as the daily run sees them. The run's own state is kept as JSON documents on
/// the participant (`engagement`, `journey`), which only the run writes.
#[derive(Debug, Clone, PartialEq)]
pub struct EngageMember {
    pub state: ParticipantState,
    /// The profile's counters (wallet lots, strikes).
    pub counters: std::collections::HashMap<String, i64>,
    pub engagement: Option<String>,
    pub journey: Option<String>,
    /// The months asked for that have an item.
    pub months: Vec<MonthStats>,
}

/// A change of segment, kept in the participant's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentChange {
    /// The local date of the run that saw it.
    pub date: String,
    pub from: Option<String>,
    pub to: String,
}

/// Where a day's run stands: the roster shards whose members are done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngageRun {
    pub shards: std::collections::BTreeSet<u8>,
    pub done: bool,
}

pub trait EngageStore: Send + Sync {
    /// One page of participant ids of a roster shard (as `CloseStore::roster`).
    fn roster(
        &self,
        program: &str,
        shard: u8,
        after: Option<String>,
    ) -> impl Future<Output = Result<(Vec<String>, Option<String>), PortError>> + Send;

    /// The members among `participants`, with the month items of `months`.
    fn members(
        &self,
        program: &str,
        participants: &[String],
        months: &[String],
    ) -> impl Future<Output = Result<Vec<EngageMember>, PortError>> + Send;

    /// Stores the run's state on the participant, and a segment change with its history
    /// item, in one transaction.
    fn save(
        &self,
        program: &str,
        participant: &str,
        engagement: &str,
        journey: &str,
        change: Option<&SegmentChange>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The participant's segment changes, oldest first.
    fn segment_history(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<SegmentChange>, PortError>> + Send;

    fn run(
        &self,
        program: &str,
        day: &str,
    ) -> impl Future<Output = Result<Option<EngageRun>, PortError>> + Send;

    /// Records that a roster shard's members are done for the day (shards finish in any
    /// order, concurrently).
    fn checkpoint(
        &self,
        program: &str,
        day: &str,
        shard: u8,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Records that the day's run is done.
    fn finish(
        &self,
        program: &str,
        day: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
