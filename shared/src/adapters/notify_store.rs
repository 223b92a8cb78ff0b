//! The notification sender's items in the Carrot table. Under the participant's partition
//! (`P#{program}#{participant}`), next to the profile:
//!
//! - `MSG#{id}`: the delivery log entry of request `id` (its idempotency key);
//! - `PREFS`: the participant's preferences and suppression;
//! - `CAP#{week}`: nudges counted in an ISO week (`n`), kept five weeks (`expires_at`, TTL).
//!
//! Program-wide:
//!
//! - `DEFER#{program}` / `{until}#{id}`: a request held until `until` (UTC, whole seconds, so
//!   the sort key orders by time), the queue message in `request`;
//! - `MSGSTATS#{program}#{yyyy-mm}` / `{kind}`: counters `sent`, `delivered`, `opened`,
//!   `bounced`, `complained` of the messages of a kind, by the UTC month of each event.
//!
//! See docs/data-model.md.

use super::dynamo::{DynamoStore, Item, PROFILE, corrupt, key, n, numbers, participant_pk, s};
use super::port_error;
use crate::domain::message::FeedbackEvent;
use crate::ports::{
    Claim, DeferralStore, Deferred, DeliveryEntry, DeliveryStatus, DeliveryStore, Feedback,
    FeedbackStore, KindStats, ParticipantState, PortError, PreferenceStore, Preferences,
};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

const MESSAGE: &str = "MSG#";
const PREFERENCES: &str = "PREFS";
const CAP: &str = "CAP#";
/// How long a week's nudge counter is kept: long past the week it counts.
const CAP_KEPT_SECS: i64 = 5 * 7 * 24 * 3600;

/// A log entry may be written over only while it is deferred: a deferred request comes back
/// to be sent (or skipped, or deferred again); any other entry is final or in progress.
const REPLACEABLE: &str = "attribute_not_exists(pk) OR #status = :deferred";

fn deferral_pk(program: &str) -> String {
    format!("DEFER#{program}")
}

fn stats_key(program: &str, month: &str, kind: &str) -> Item {
    key(format!("MSGSTATS#{program}#{month}"), kind.to_owned())
}

/// A time as a sort key: UTC, whole seconds, fixed width (`2026-11-02T06:00:00Z`).
fn key_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parse_time(what: &str, text: &str) -> Result<Timestamp, PortError> {
    text.parse()
        .map_err(|e| PortError::Permanent(format!("{what} {text:?} is not a timestamp: {e}")))
}

/// The UTC month (`yyyy-mm`) of an RFC 3339 time, the month a statistic counts in.
pub(crate) fn stats_month(what: &str, at: &str) -> Result<String, PortError> {
    Ok(parse_time(what, at)?.strftime("%Y-%m").to_string())
}

/// The key of a request deferred until `until` (RFC 3339): the time rounded up to the second,
/// so that a request is never released before its time.
pub(crate) fn deferral_key(until: &str, id: &str) -> Result<String, PortError> {
    let until = parse_time("deferral time", until)?
        .round(
            TimestampRound::new()
                .smallest(Unit::Second)
                .mode(RoundMode::Ceil),
        )
        .map_err(|e| PortError::Permanent(e.to_string()))?;
    Ok(format!("{}#{id}", key_time(until)))
}

/// Every deferral key due at `now` sorts below this bound: `{until}#{id}` with `until` at or
/// before `now` sorts below `{now}$` (`$` follows `#`), a later one above it.
pub(crate) fn due_bound(now: Timestamp) -> String {
    format!("{}$", key_time(now))
}

/// What a kind of feedback stamps on the log entry, and the statistic it counts in.
fn feedback_fields(event: FeedbackEvent) -> (&'static str, &'static str) {
    match event {
        FeedbackEvent::Delivery => ("delivered_at", "delivered"),
        FeedbackEvent::Open => ("opened_at", "opened"),
        FeedbackEvent::Bounce { .. } => ("bounced_at", "bounced"),
        FeedbackEvent::Complaint => ("complained_at", "complained"),
    }
}

/// Why feedback suppresses the address, if it does: a permanent bounce or a complaint.
pub(crate) fn suppression_reason(event: FeedbackEvent) -> Option<&'static str> {
    match event {
        FeedbackEvent::Bounce { permanent: true } => Some("bounce"),
        FeedbackEvent::Complaint => Some("complaint"),
        _ => None,
    }
}

/// Sorts a delivery log newest first: sent entries by their sending, others by their request.
pub(crate) fn newest_first(entries: &mut [DeliveryEntry]) {
    fn time(entry: &DeliveryEntry) -> Option<Timestamp> {
        let text = match &entry.status {
            DeliveryStatus::Sent { at, .. } => at,
            _ => &entry.created_at,
        };
        text.parse().ok()
    }
    entries.sort_by(|a, b| time(b).cmp(&time(a)).then_with(|| a.id.cmp(&b.id)));
}

/// The notification items of the Carrot table. Implements `DeliveryStore` (the sender),
/// `DeferralStore` (the hourly release of deferred requests), `FeedbackStore` (SES events)
/// and `PreferenceStore` (the admin API and the unsubscribe link).
#[derive(Clone)]
pub struct NotifyStore {
    /// The table's client and name, and its paged prefix query.
    table: DynamoStore,
}

impl NotifyStore {
    pub fn from_sdk(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), table)
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            table: DynamoStore::new(client, table),
        }
    }

    fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.table.client
    }

    fn name(&self) -> &str {
        &self.table.table
    }

    fn entry_item(&self, pk: &str, entry: &DeliveryEntry) -> Result<Item, PortError> {
        let mut item = to_item(entry).map_err(|e| PortError::Permanent(e.to_string()))?;
        item.extend(key(pk.to_owned(), format!("{MESSAGE}{}", entry.id)));
        Ok(item)
    }

    /// Writes `entry` in a transaction, unless a log entry other than a deferred one exists.
    fn put_entry(&self, pk: &str, entry: &DeliveryEntry) -> Result<TransactWriteItem, PortError> {
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(self.entry_item(pk, entry)?))
            .condition_expression(REPLACEABLE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":deferred", s("deferred"))
            .build()
            .expect("table and item are set");
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes `entry` alone, unless a log entry other than a deferred one exists
    /// (`ConditionFailed`).
    async fn write_entry(&self, pk: &str, entry: &DeliveryEntry) -> Result<(), PortError> {
        self.client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(self.entry_item(pk, entry)?))
            .condition_expression(REPLACEABLE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":deferred", s("deferred"))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    fn update(&self, key: Item, expression: &str) -> UpdateParts {
        UpdateParts {
            update: Update::builder()
                .table_name(self.name())
                .set_key(Some(key))
                .update_expression(expression),
        }
    }

    /// Runs a transaction. `Ok(Err(failed))` when it was cancelled because conditions failed:
    /// `failed[i]` says whether the i-th item's condition was one of them.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<bool>>, PortError> {
        let result = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(error) = result else {
            return Ok(Ok(()));
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let codes: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None"))
                .collect();
            if codes.contains(&"ConditionalCheckFailed") {
                return Ok(Err(codes
                    .iter()
                    .map(|c| *c == "ConditionalCheckFailed")
                    .collect()));
            }
            // A conflict with a concurrent transaction, throttling: try again later.
            return Err(PortError::Transient(format!(
                "transaction cancelled: {codes:?}"
            )));
        }
        Err(port_error(error))
    }

    /// The entry an unsuccessful claim found.
    async fn existing(
        &self,
        program: &str,
        participant: &str,
        id: &str,
    ) -> Result<Claim, PortError> {
        match self.delivery(program, participant, id).await? {
            Some(entry) => Ok(Claim::Exists(entry)),
            // Given back (unclaimed) between the claim and this read: claim again.
            None => Err(PortError::Transient(format!(
                "delivery {id} changed while being claimed"
            ))),
        }
    }
}

/// An update's builder, so that names and values are added where they are used.
struct UpdateParts {
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
}

impl UpdateParts {
    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.update = self
            .update
            .expression_attribute_names(placeholder, attribute);
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.update = self.update.expression_attribute_values(placeholder, value);
        self
    }

    fn condition(mut self, condition: &str) -> Self {
        self.update = self.update.condition_expression(condition);
        self
    }

    fn item(self) -> TransactWriteItem {
        TransactWriteItem::builder()
            .update(
                self.update
                    .build()
                    .expect("table, key and expression are set"),
            )
            .build()
    }
}

fn entry_from(item: Item) -> Result<DeliveryEntry, PortError> {
    from_item(item).map_err(|e| corrupt("delivery entry", e))
}

fn preferences_from(item: Item) -> Result<Preferences, PortError> {
    from_item(item).map_err(|e| corrupt("preferences", e))
}

impl DeliveryStore for NotifyStore {
    async fn recipient(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Option<(ParticipantState, Preferences)>, PortError> {
        // One strongly consistent read of both items: no other item of a participant sorts
        // between `PREFS` and `PROFILE` (and any that did would be left aside below).
        let output = self
            .client()
            .query()
            .table_name(self.name())
            .key_condition_expression("pk = :pk AND sk BETWEEN :prefs AND :profile")
            .expression_attribute_values(":pk", s(participant_pk(program, participant)))
            .expression_attribute_values(":prefs", s(PREFERENCES))
            .expression_attribute_values(":profile", s(PROFILE))
            .consistent_read(true)
            .send()
            .await
            .map_err(port_error)?;
        let (mut state, mut preferences) = (None, Preferences::default());
        for item in output.items() {
            match item.get("sk") {
                Some(AttributeValue::S(sk)) if sk == PROFILE => {
                    let participant: ParticipantState =
                        from_item(item.clone()).map_err(|e| corrupt("participant", e))?;
                    state = Some(participant);
                }
                Some(AttributeValue::S(sk)) if sk == PREFERENCES => {
                    preferences = preferences_from(item.clone())?;
                }
                _ => {}
            }
        }
        Ok(state.map(|state| (state, preferences)))
    }

    async fn delivery(
        &self,
        program: &str,
        participant: &str,
        id: &str,
    ) -> Result<Option<DeliveryEntry>, PortError> {
        self.table
            .get_item(key(
                participant_pk(program, participant),
                format!("{MESSAGE}{id}"),
            ))
            .await?
            .map(entry_from)
            .transpose()
    }

    async fn claim(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        cap: Option<(&str, u32)>,
    ) -> Result<Claim, PortError> {
        let pk = participant_pk(program, participant);
        let Some((week, max)) = cap else {
            return match self.write_entry(&pk, entry).await {
                Ok(()) => Ok(Claim::Claimed),
                Err(PortError::ConditionFailed) => {
                    self.existing(program, participant, &entry.id).await
                }
                Err(other) => Err(other),
            };
        };
        let expires = Timestamp::now().as_second() + CAP_KEPT_SECS;
        let count = self
            .update(
                key(pk.clone(), format!("{CAP}{week}")),
                "ADD n :one SET expires_at = :expires",
            )
            .condition("attribute_not_exists(n) OR n < :max")
            .value(":one", n(1))
            .value(":expires", n(expires))
            .value(":max", n(max))
            .item();
        let items = vec![self.put_entry(&pk, entry)?, count];
        match self.transact(items).await? {
            Ok(()) => Ok(Claim::Claimed),
            // The entry exists: a duplicate, whatever the week's count.
            Err(failed) if failed[0] => self.existing(program, participant, &entry.id).await,
            Err(_) => Ok(Claim::CapReached),
        }
    }

    async fn unclaim(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        cap: Option<(&str, u32)>,
    ) -> Result<(), PortError> {
        let DeliveryStatus::Sending { since } = &entry.status else {
            return Err(PortError::Permanent(format!(
                "delivery {} is given back with its claim (sending), not {:?}",
                entry.id, entry.status
            )));
        };
        let pk = participant_pk(program, participant);
        let delete = Delete::builder()
            .table_name(self.name())
            .set_key(Some(key(pk.clone(), format!("{MESSAGE}{}", entry.id))))
            .condition_expression("#status = :sending AND since = :since")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":since", s(since))
            .build()
            .expect("table, key and condition are set");
        let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
        if let Some((week, _)) = cap {
            items.push(
                self.update(key(pk, format!("{CAP}{week}")), "ADD n :minus_one")
                    .value(":minus_one", n(-1))
                    .item(),
            );
        }
        // A claim no longer held (sent, or claimed anew after it expired) has nothing to give
        // back.
        self.transact(items).await.map(|_| ())
    }

    async fn mark_sent(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
    ) -> Result<(), PortError> {
        let DeliveryStatus::Sent { at, provider_id } = &entry.status else {
            return Err(PortError::Permanent(format!(
                "delivery {} is marked sent with a sent status, not {:?}",
                entry.id, entry.status
            )));
        };
        let month = stats_month("sending time", at)?;
        let pk = participant_pk(program, participant);
        // Only the status changes: feedback recorded in the meantime stays.
        let sent = self
            .update(
                key(pk, format!("{MESSAGE}{}", entry.id)),
                "SET #status = :sent, #at = :at, provider_id = :provider REMOVE since",
            )
            .condition("#status = :sending")
            .name("#status", "status")
            .name("#at", "at")
            .value(":sent", s("sent"))
            .value(":sending", s("sending"))
            .value(":at", s(at))
            .value(":provider", s(provider_id))
            .item();
        let counted = self
            .update(stats_key(program, &month, &entry.kind), "ADD sent :one")
            .value(":one", n(1))
            .item();
        match self.transact(vec![sent, counted]).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(PortError::ConditionFailed),
        }
    }

    async fn skip(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
    ) -> Result<(), PortError> {
        self.write_entry(&participant_pk(program, participant), entry)
            .await
    }

    async fn defer(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        request: &str,
    ) -> Result<(), PortError> {
        let DeliveryStatus::Deferred { until } = &entry.status else {
            return Err(PortError::Permanent(format!(
                "delivery {} is deferred with a deferred status, not {:?}",
                entry.id, entry.status
            )));
        };
        let mut held = key(deferral_pk(program), deferral_key(until, &entry.id)?);
        held.insert("request".into(), s(request));
        let held = Put::builder()
            .table_name(self.name())
            .set_item(Some(held))
            .build()
            .expect("table and item are set");
        let entry = self.put_entry(&participant_pk(program, participant), entry)?;
        match self
            .transact(vec![entry, TransactWriteItem::builder().put(held).build()])
            .await?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(PortError::ConditionFailed),
        }
    }
}

impl DeferralStore for NotifyStore {
    async fn due(
        &self,
        program: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Deferred>, PortError> {
        let bound = due_bound(now);
        let mut due = Vec::new();
        let mut start = None;
        while due.len() < limit {
            let output = self
                .client()
                .query()
                .table_name(self.name())
                .key_condition_expression("pk = :pk AND sk < :bound")
                .expression_attribute_values(":pk", s(deferral_pk(program)))
                .expression_attribute_values(":bound", s(&bound))
                .limit(i32::try_from(limit - due.len()).unwrap_or(i32::MAX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(port_error)?;
            for item in output.items() {
                match (item.get("sk"), item.get("request")) {
                    (Some(AttributeValue::S(key)), Some(AttributeValue::S(request))) => {
                        due.push(Deferred {
                            key: key.clone(),
                            request: request.clone(),
                        })
                    }
                    _ => return Err(corrupt("deferred request", "sk or request missing")),
                }
            }
            match output.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => break,
            }
        }
        Ok(due)
    }

    async fn release(&self, program: &str, deferred: &str) -> Result<(), PortError> {
        self.client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(key(deferral_pk(program), deferred.to_owned())))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }
}

impl FeedbackStore for NotifyStore {
    async fn record(&self, feedback: &Feedback) -> Result<(), PortError> {
        let (stamp, counter) = feedback_fields(feedback.event);
        let month = stats_month("feedback time", &feedback.at)?;
        let pk = participant_pk(&feedback.program, &feedback.participant);
        // Once per kind of feedback per message, and only on a message of the log: the
        // transaction counts and suppresses only if this stamp is new.
        let stamped = self
            .update(
                key(pk.clone(), format!("{MESSAGE}{}", feedback.id)),
                "SET #stamp = :at",
            )
            .condition("attribute_exists(pk) AND attribute_not_exists(#stamp)")
            .name("#stamp", stamp)
            .value(":at", s(&feedback.at))
            .item();
        let counted = self
            .update(
                stats_key(&feedback.program, &month, &feedback.kind),
                "ADD #counter :one",
            )
            .name("#counter", counter)
            .value(":one", n(1))
            .item();
        let mut items = vec![stamped, counted];
        if let (Some(reason), Some(address)) =
            (suppression_reason(feedback.event), &feedback.address_sha256)
        {
            items.push(
                self.update(
                    key(pk, PREFERENCES.to_owned()),
                    "SET suppressed_email = :address, suppressed_reason = :reason",
                )
                .value(":address", s(address))
                .value(":reason", s(reason))
                .item(),
            );
        }
        // A failed condition: recorded before (a redelivered event), or not a message of the
        // log (another system's mail through the same configuration set): nothing to do.
        self.transact(items).await.map(|_| ())
    }
}

impl PreferenceStore for NotifyStore {
    async fn preferences(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Preferences, PortError> {
        match self
            .table
            .get_item(key(
                participant_pk(program, participant),
                PREFERENCES.to_owned(),
            ))
            .await?
        {
            Some(item) => preferences_from(item),
            None => Ok(Preferences::default()),
        }
    }

    async fn set_preferences(
        &self,
        program: &str,
        participant: &str,
        preferences: &Preferences,
    ) -> Result<(), PortError> {
        let pk = participant_pk(program, participant);
        let enrolled = ConditionCheck::builder()
            .table_name(self.name())
            .set_key(Some(key(pk.clone(), PROFILE.to_owned())))
            .condition_expression("attribute_exists(pk)")
            .build()
            .expect("table, key and condition are set");
        let mut item = to_item(preferences).map_err(|e| PortError::Permanent(e.to_string()))?;
        item.extend(key(pk, PREFERENCES.to_owned()));
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .build()
            .expect("table and item are set");
        match self
            .transact(vec![
                TransactWriteItem::builder()
                    .condition_check(enrolled)
                    .build(),
                TransactWriteItem::builder().put(put).build(),
            ])
            .await?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(PortError::ConditionFailed),
        }
    }

    async fn deliveries(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Vec<DeliveryEntry>, PortError> {
        let items = self
            .table
            .query_prefix(participant_pk(program, participant), MESSAGE)
            .await?;
        let mut entries = items
            .into_iter()
            .map(entry_from)
            .collect::<Result<Vec<_>, _>>()?;
        newest_first(&mut entries);
        Ok(entries)
    }

    async fn message_stats(&self, program: &str, month: &str) -> Result<Vec<KindStats>, PortError> {
        let items = self
            .table
            .query_partition(format!("MSGSTATS#{program}#{month}"))
            .await?;
        items
            .iter()
            .map(|item| {
                let Some(AttributeValue::S(kind)) = item.get("sk") else {
                    return Err(corrupt("message statistics", "sk missing"));
                };
                let counters = numbers(item);
                let count = |name: &str| {
                    counters
                        .get(name)
                        .map_or(0, |&v| u64::try_from(v).unwrap_or(0))
                };
                Ok(KindStats {
                    kind: kind.clone(),
                    sent: count("sent"),
                    delivered: count("delivered"),
                    opened: count("opened"),
                    bounced: count("bounced"),
                    complained: count("complained"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A deferred request is due exactly from the first whole second at or after its time:
        /// never before it, and at most a second after.
        #[test]
        fn a_deferral_is_due_from_its_time_rounded_up_to_the_second(
            until in 1_700_000_000_000_000_000i128..1_900_000_000_000_000_000i128,
            now in 1_700_000_000_000_000_000i128..1_900_000_000_000_000_000i128,
        ) {
            let until = Timestamp::from_nanosecond(until).unwrap();
            let now = Timestamp::from_nanosecond(now).unwrap();
            let key = deferral_key(&until.to_string(), "acme:2026-03:digest:participant:alice")
                .unwrap();
            let due = key < due_bound(now);
            let whole = |t: Timestamp| t.as_second();
            let rounded_up = whole(until) + i64::from(until.subsec_nanosecond() > 0);
            prop_assert_eq!(due, rounded_up <= whole(now));
            if due {
                prop_assert!(until <= now);
            }
        }
    }

    fn entry(id: &str, status: DeliveryStatus, created_at: &str) -> DeliveryEntry {
        DeliveryEntry {
            id: id.into(),
            kind: "digest".into(),
            channel: crate::domain::message::Channel::Email,
            recipient: crate::domain::message::Recipient::Participant,
            status,
            created_at: created_at.into(),
            delivered_at: None,
            opened_at: None,
            bounced_at: None,
            complained_at: None,
        }
    }

    #[test]
    fn the_log_lists_sent_entries_by_their_sending_and_others_by_their_request() {
        let mut entries = vec![
            entry(
                "sent-late",
                DeliveryStatus::Sent {
                    at: "2026-03-05T08:00:00Z".into(),
                    provider_id: "p".into(),
                },
                "2026-03-01T08:00:00Z",
            ),
            entry(
                "skipped",
                DeliveryStatus::Skipped {
                    reason: "capped".into(),
                },
                "2026-03-03T08:00:00.5Z",
            ),
            entry(
                "deferred",
                DeliveryStatus::Deferred {
                    until: "2026-03-09T06:00:00Z".into(),
                },
                "2026-03-03T08:00:00Z",
            ),
        ];
        newest_first(&mut entries);
        let ids: Vec<_> = entries.iter().map(|e| e.id.as_str()).collect();
        // Sub-second times order by time, not by text ('.' sorts before 'Z').
        assert_eq!(ids, ["sent-late", "skipped", "deferred"]);
    }

    #[test]
    fn statistics_count_in_the_utc_month() {
        assert_eq!(
            stats_month("t", "2026-03-31T23:30:00-02:00").unwrap(),
            "2026-04"
        );
        assert!(matches!(
            stats_month("t", "yesterday"),
            Err(PortError::Permanent(_))
        ));
    }
}
