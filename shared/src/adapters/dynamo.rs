//! The single DynamoDB table. Every item of a participant shares one partition,
//! `P#{program}#{participant}`, so an award's transaction touches one partition and a
//! participant's state is one Query away. See docs/data-model.md for every access pattern.

use super::cache::TtlCache;
use super::port_error;
use crate::domain::counters::MonthStats;
use crate::domain::engine::{BUDGET_SPENT, Guard, Op, Reads, Scope, Write};
use crate::domain::ledger::{EntryStatus, EventRecord, Expired, MonthDelta, Plan, Slot};
use crate::domain::participant::{Decision, Enrolling, Outcome, Profile, Status, Stored};
use crate::domain::program::{Program, ProgramVersions};
use crate::ports::{
    AwardStore, Consumed, EnrolmentStore, Loaded, ParkedEvent, ParticipantState, PortError,
    ProgramReader, ProgramWriter, StatsReader,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ConsumedCapacity, KeysAndAttributes, Put,
    ReturnConsumedCapacity, TransactWriteItem, Update,
};
use jiff::Timestamp;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PROFILE: &str = "PROFILE";
pub(crate) const EVENT: &str = "E#";
pub(crate) const MONTH: &str = "M#";
const PARKED: &str = "PARKED#";
const CONFIG: &str = "CONFIG";
const BUDGET: &str = "BUDGET";
/// The partition listing every program with a stored configuration.
pub(crate) const PROGRAMS: &str = "PROGRAMS";
/// Per-type counters on a month item are attributes named `n:{event type}`.
pub(crate) const COUNT: &str = "n:";

pub(crate) fn participant_pk(program: &str, participant: &str) -> String {
    format!("P#{program}#{participant}")
}

/// The roster index partition of a participant: the close lists a program shard by shard.
pub(crate) fn roster_key(program: &str, participant: &str) -> String {
    format!(
        "{program}#{:02}",
        crate::domain::standings::board_shard(participant)
    )
}

fn program_pk(program: &str) -> String {
    format!("PROGRAM#{program}")
}

/// Budget shards are program-wide: each its own partition, so none is hot.
fn budget_key(program: &str, shard: &str) -> Item {
    key(format!("{BUDGET}#{program}#{shard}"), BUDGET.to_owned())
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: String, sk: String) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> PortError {
    PortError::Permanent(format!("stored {what} is unreadable: {error}"))
}

/// Capacity units of a call that only writes (or only reads): the total is what it consumed.
fn total_units(capacity: &[ConsumedCapacity]) -> f64 {
    capacity.iter().filter_map(|c| c.capacity_units()).sum()
}

/// The Carrot table. Implements every store port; each function is handed only the port it
/// needs, and its IAM policy allows only the actions that port uses.
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoStore {
    pub fn from_sdk(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(config), table)
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub(crate) fn record_item(
        &self,
        program: &str,
        record: &EventRecord,
    ) -> Result<Item, PortError> {
        let mut item = to_item(record).map_err(|e| PortError::Permanent(e.to_string()))?;
        item.extend(key(
            participant_pk(program, &record.participant),
            format!("{EVENT}{}", record.event_id),
        ));
        Ok(item)
    }

    pub(crate) fn put_new(&self, item: Item) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    }

    /// Writes a record over the placeholder its reversal left when that came first.
    fn fill_placeholder(
        &self,
        program: &str,
        record: &EventRecord,
    ) -> Result<TransactWriteItem, PortError> {
        let fill = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.record_item(program, record)?))
            .condition_expression("#status = :placeholder")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":placeholder",
                to_status(EntryStatus::CancelledBeforeArrival),
            )
            .build()
            .expect("table and item are set");
        Ok(TransactWriteItem::builder().put(fill).build())
    }

    /// A reversal's own record, in the slot the plan found it: new, or over the placeholder of
    /// a reversal that named it, which is then marked ignored on the condition it is still a
    /// reversal waiting for its original.
    fn put_own(
        &self,
        program: &str,
        pk: &str,
        record: &EventRecord,
        slot: &Slot,
    ) -> Result<Vec<TransactWriteItem>, PortError> {
        let Slot::Displacing { reversal_id, note } = slot else {
            return Ok(vec![self.put_new(self.record_item(program, record)?)]);
        };
        let mark_ignored = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), format!("{EVENT}{reversal_id}"))))
            .update_expression("SET #status = :ignored, note = :note")
            .condition_expression("#status = :reversal")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ignored", to_status(EntryStatus::ReversalIgnored))
            .expression_attribute_values(":reversal", to_status(EntryStatus::Reversal))
            .expression_attribute_values(":note", s(note))
            .build()
            .expect("table, key and expression are set");
        Ok(vec![
            self.fill_placeholder(program, record)?,
            TransactWriteItem::builder().update(mark_ignored).build(),
        ])
    }

    /// One update of one item: every change and guard on it, in one expression.
    pub(crate) fn update(&self, item: Item, expr: Expr) -> TransactWriteItem {
        let update = expr
            .apply(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(item)),
            )
            .build()
            .expect("table, key and expression are set");
        TransactWriteItem::builder().update(update).build()
    }

    /// The updates of an award or reversal: the profile (balance, lots, profile counters), the
    /// event's month item (counters and the rules' month counters), and any other month or
    /// budget item a rule counts on.
    fn counter_updates(&self, program: &str, pk: &str, changes: Changes) -> Vec<TransactWriteItem> {
        let Changes {
            points,
            month,
            writes,
            tidy,
            expiries,
        } = changes;
        let mut profile = Expr::default();
        let expired: i64 = expiries.iter().map(|e| e.record.points).sum();
        profile.add("balance", n(points + expired));
        // An expired lot goes only if it is still what the plan read: a concurrent expiry of
        // the same lot makes this transaction fail and the event is decided again.
        for expiry in expiries {
            profile.remove_if_equal(&expiry.lot, expiry.stored);
        }
        // The participant must still be enrolled (never re-create a deleted profile).
        profile.condition("attribute_exists(pk)".into());
        for lot in tidy {
            profile.remove(lot);
        }
        let mut months: BTreeMap<String, Expr> = BTreeMap::new();
        months.insert(month.month.clone(), month_expr(month));
        let mut budgets: BTreeMap<String, Expr> = BTreeMap::new();
        for write in writes {
            let expr = match &write.scope {
                Scope::Profile => &mut profile,
                Scope::Month(m) => months.entry(m.clone()).or_default(),
                Scope::Budget(b) => budgets.entry(b.clone()).or_default(),
            };
            expr.write(write);
        }
        let mut items = vec![self.update(key(pk.to_owned(), PROFILE.to_owned()), profile)];
        for (month, expr) in months {
            items.push(self.update(key(pk.to_owned(), format!("{MONTH}{month}")), expr));
        }
        for (shard, expr) in budgets {
            items.push(self.update(budget_key(program, &shard), expr));
        }
        items
    }

    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Consumed, PortError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Consumed {
                write_units: total_units(output.consumed_capacity()),
                read_units: 0.0,
            }),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    error.as_service_error()
                {
                    let codes: Vec<&str> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .filter_map(|r| r.code())
                        .filter(|c| *c != "None")
                        .collect();
                    if codes.contains(&"ConditionalCheckFailed") {
                        return Err(PortError::ConditionFailed);
                    }
                    return Err(PortError::Transient(format!(
                        "transaction cancelled: {codes:?}"
                    )));
                }
                Err(port_error(error))
            }
        }
    }

    /// One item, strongly consistent; `None` when there is none.
    pub(crate) async fn get_item(&self, key: Item) -> Result<Option<Item>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(port_error)?;
        Ok(output.item().cloned())
    }

    pub(crate) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Item>, PortError> {
        self.query_paged(pk, Some(prefix)).await
    }

    /// Every item of a partition, consistent, page after page.
    pub(crate) async fn query_partition(&self, pk: String) -> Result<Vec<Item>, PortError> {
        self.query_paged(pk, None).await
    }

    async fn query_paged(&self, pk: String, prefix: Option<&str>) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk.clone()));
            let query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let output = query
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(port_error)?;
            items.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(items),
            }
        }
    }
}

impl AwardStore for DynamoStore {
    async fn load(
        &self,
        program: &str,
        participant: &str,
        event_ids: &[&str],
        reads: &Reads,
    ) -> Result<Loaded, PortError> {
        let pk = participant_pk(program, participant);
        let mut keys: Vec<Item> = vec![key(pk.clone(), PROFILE.to_owned())];
        keys.extend(
            event_ids
                .iter()
                .map(|id| key(pk.clone(), format!("{EVENT}{id}"))),
        );
        keys.extend(
            reads
                .months
                .iter()
                .map(|m| key(pk.clone(), format!("{MONTH}{m}"))),
        );
        keys.extend(reads.budgets.iter().map(|b| budget_key(program, b)));
        let mut loaded = Loaded::default();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .expect("keys are set");
        // BatchGetItem may return part of the keys under load; ask again for the rest.
        for _ in 0..8 {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(port_error)?;
            loaded.consumed.read_units += total_units(output.consumed_capacity());
            for item in output
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                let sk = match item.get("sk") {
                    Some(AttributeValue::S(sk)) => sk.as_str(),
                    _ => "",
                };
                if sk == PROFILE {
                    loaded.counters.profile = numbers(item);
                    loaded.participant =
                        Some(from_item(item.clone()).map_err(|e| corrupt("participant", e))?);
                } else if let Some(month) = sk.strip_prefix(MONTH) {
                    loaded
                        .counters
                        .months
                        .insert(month.to_owned(), numbers(item));
                    loaded
                        .counters
                        .login_days
                        .insert(month.to_owned(), login_days(item)?);
                } else if sk == BUDGET {
                    let shard = match item.get("pk") {
                        Some(AttributeValue::S(pk)) => pk
                            .strip_prefix(&format!("{BUDGET}#{program}#"))
                            .unwrap_or_default(),
                        _ => "",
                    };
                    let spent = numbers(item).get(BUDGET_SPENT).copied().unwrap_or(0);
                    loaded.counters.budgets.insert(shard.to_owned(), spent);
                } else {
                    loaded
                        .records
                        .push(from_item(item.clone()).map_err(|e| corrupt("event record", e))?);
                }
            }
            match output.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                Some(rest) if !rest.keys().is_empty() => {
                    request = rest.clone();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return Ok(loaded),
            }
        }
        Err(PortError::Transient(
            "BatchGetItem kept returning unprocessed keys".into(),
        ))
    }

    async fn commit(
        &self,
        program: &str,
        participant: &str,
        plan: &Plan,
    ) -> Result<Consumed, PortError> {
        let pk = participant_pk(program, participant);
        let items = match plan {
            Plan::Duplicate => return Ok(Consumed::default()),
            Plan::Award {
                record,
                month,
                writes,
                tidy,
                expiries,
            } => {
                let mut items = vec![self.put_new(self.record_item(program, record)?)];
                for expired in expiries {
                    items.push(self.put_new(self.record_item(program, &expired.record)?));
                }
                items.extend(self.counter_updates(
                    program,
                    &pk,
                    Changes {
                        points: record.points,
                        month,
                        writes,
                        tidy,
                        expiries,
                    },
                ));
                items
            }
            Plan::Reverse {
                reversal,
                slot,
                original_id,
                month,
                writes,
            } => {
                let mark_reversed = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk.clone(), format!("{EVENT}{original_id}"))))
                    .update_expression("SET #status = :reversed, reversed_by = :by")
                    .condition_expression("#status = :awarded")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":reversed", to_status(EntryStatus::Reversed))
                    .expression_attribute_values(":awarded", to_status(EntryStatus::Awarded))
                    .expression_attribute_values(":by", s(&reversal.event_id))
                    .build()
                    .expect("table, key and expression are set");
                let mut items = self.put_own(program, &pk, reversal, slot)?;
                items.push(TransactWriteItem::builder().update(mark_reversed).build());
                items.extend(self.counter_updates(
                    program,
                    &pk,
                    Changes {
                        points: reversal.points,
                        month,
                        writes,
                        tidy: &[],
                        expiries: &[],
                    },
                ));
                items
            }
            Plan::ReverseBeforeOriginal {
                reversal,
                slot,
                placeholder,
            } => {
                let mut items = self.put_own(program, &pk, reversal, slot)?;
                items.push(self.put_new(self.record_item(program, placeholder)?));
                items
            }
            Plan::ArriveCancelled { record, month } => {
                let mut items = vec![self.fill_placeholder(program, record)?];
                items.extend(month.iter().map(|m| {
                    self.update(
                        key(pk.clone(), format!("{MONTH}{}", m.month)),
                        month_expr(m),
                    )
                }));
                items
            }
            Plan::IgnoreReversal { record, slot } => self.put_own(program, &pk, record, slot)?,
        };
        self.transact(items).await
    }

    async fn park(
        &self,
        program: &str,
        participant: &str,
        event_id: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<Consumed, PortError> {
        let pk = participant_pk(program, participant);
        let not_enrolled = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), PROFILE.to_owned())))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table, key and condition are set");
        let mut item = key(pk, format!("{PARKED}{event_id}"));
        item.insert("event_id".into(), s(event_id));
        item.insert("message".into(), s(message));
        item.insert("parked_at".into(), s(now.to_string()));
        let park = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .expect("table and item are set");
        self.transact(vec![
            TransactWriteItem::builder()
                .condition_check(not_enrolled)
                .build(),
            TransactWriteItem::builder().put(park).build(),
        ])
        .await
    }
}

/// What an award or reversal changes beyond its records.
struct Changes<'a> {
    points: i64,
    month: &'a MonthDelta,
    writes: &'a [Write],
    tidy: &'a [String],
    expiries: &'a [Expired],
}

/// The numeric attributes of an item: the counters rules read.
pub(crate) fn numbers(item: &Item) -> HashMap<String, i64> {
    item.iter()
        .filter_map(|(name, value)| match value {
            AttributeValue::N(text) => text.parse().ok().map(|v| (name.clone(), v)),
            _ => None,
        })
        .collect()
}

/// The month item's own counters: points (toward the leaderboards), reversed and bonus points,
/// the count of the event's type, and the login day. A login on a new day adds one to `days`
/// on the condition that the day is still new, so concurrent logins count it once. `lb` lists
/// the item in the live leaderboard index.
fn month_expr(delta: &MonthDelta) -> Expr {
    let mut expr = Expr::default();
    expr.add("points", n(delta.points));
    for (name, value) in [("reversed", delta.reversed), ("bonus", delta.bonus)] {
        if value != 0 {
            expr.add(name, n(value));
        }
    }
    if let Some((event_type, by)) = &delta.count {
        expr.add(&format!("{COUNT}{event_type}"), n(by));
    }
    if let Some(day) = delta.login_day {
        expr.add("login_days", AttributeValue::Ns(vec![day.to_string()]));
        if delta.new_login_day {
            expr.add("days", n(1));
            let (set, day) = (expr.name("login_days"), expr.value(n(day)));
            expr.condition(format!("NOT contains({set}, {day})"));
        }
    }
    if let Some(board) = &delta.board_key {
        let (name, value) = (expr.name("lb"), expr.value(s(board)));
        expr.set.push(format!("{name} = {value}"));
    }
    expr
}

/// An update expression under construction: ADD, SET and REMOVE clauses and the conditions
/// that guard them, with every attribute name and value as a placeholder (counter names hold
/// `:` and `@`).
#[derive(Default)]
pub(crate) struct Expr {
    add: Vec<String>,
    set: Vec<String>,
    remove: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(crate) fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#a{}", self.names.len());
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(crate) fn add(&mut self, attribute: &str, by: AttributeValue) {
        let (name, value) = (self.name(attribute), self.value(by));
        self.add.push(format!("{name} {value}"));
    }

    fn remove(&mut self, attribute: &str) {
        let name = self.name(attribute);
        self.remove.push(name);
    }

    fn remove_if_equal(&mut self, attribute: &str, stored: i64) {
        let (name, value) = (self.name(attribute), self.value(n(stored)));
        self.remove.push(name.clone());
        self.conditions.push(format!("{name} = {value}"));
    }

    pub(crate) fn condition(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// A counter change and its guard. An absent counter counts as 0.
    fn write(&mut self, write: &Write) {
        let name = self.name(&write.name);
        match write.op {
            Op::Add(by) => {
                let by = self.value(n(by));
                self.add.push(format!("{name} {by}"));
            }
            Op::Set(to) => {
                let to = self.value(n(to));
                self.set.push(format!("{name} = {to}"));
            }
        }
        let (operator, bound, zero_passes) = match write.guard {
            Guard::Free => return,
            Guard::AtMost(x) => ("<=", x, 0 <= x),
            Guard::AtLeast(x) => (">=", x, 0 >= x),
            Guard::Equals(x) => ("=", x, x == 0),
        };
        let bound = self.value(n(bound));
        self.conditions.push(if zero_passes {
            format!("(attribute_not_exists({name}) OR {name} {operator} {bound})")
        } else {
            format!("{name} {operator} {bound}")
        });
    }

    fn expression(&self) -> String {
        let mut clauses = Vec::new();
        for (keyword, parts) in [
            ("ADD", &self.add),
            ("SET", &self.set),
            ("REMOVE", &self.remove),
        ] {
            if !parts.is_empty() {
                clauses.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        clauses.join(" ")
    }

    fn apply(self, update: UpdateBuilder) -> UpdateBuilder {
        let mut update = update
            .update_expression(self.expression())
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values));
        if !self.conditions.is_empty() {
            update = update.condition_expression(self.conditions.join(" AND "));
        }
        update
    }
}

fn to_status(status: EntryStatus) -> AttributeValue {
    to_attribute_value(status).expect("statuses serialize")
}

impl EnrolmentStore for DynamoStore {
    async fn enrol(
        &self,
        program: &str,
        participant: &str,
        enrolling: &Enrolling,
        now: Timestamp,
    ) -> Result<Decision, PortError> {
        let pk = participant_pk(program, participant);
        // Each write is conditioned on what was read: a concurrent enrolment, sanction or
        // reinstatement in between fails it, and the enrolment is decided again.
        for _ in 0..ENROL_ATTEMPTS {
            let stored = self.stored_enrolment(&pk).await?;
            let decision = enrolling.decide(stored.as_ref());
            let written = match (&stored, decision.outcome) {
                (_, Outcome::Unchanged) => return Ok(decision),
                (None, _) => {
                    self.create_participant(program, participant, enrolling, &decision, now)
                        .await
                }
                (Some(stored), _) => {
                    self.update_participant(&pk, enrolling, stored, &decision, now)
                        .await
                }
            };
            match written {
                Ok(()) => return Ok(decision),
                Err(PortError::ConditionFailed) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(PortError::Transient(format!(
            "participant {participant:?} kept changing during {ENROL_ATTEMPTS} enrolment attempts"
        )))
    }

    async fn parked(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Vec<ParkedEvent>, PortError> {
        let items = self
            .query_prefix(participant_pk(program, participant), PARKED)
            .await?;
        items
            .into_iter()
            .map(|item| match (item.get("event_id"), item.get("message")) {
                (Some(AttributeValue::S(event_id)), Some(AttributeValue::S(message))) => {
                    Ok(ParkedEvent {
                        event_id: event_id.clone(),
                        message: message.clone(),
                    })
                }
                _ => Err(corrupt("parked event", "event_id or message missing")),
            })
            .collect()
    }

    async fn release(
        &self,
        program: &str,
        participant: &str,
        event_id: &str,
    ) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(
                participant_pk(program, participant),
                format!("{PARKED}{event_id}"),
            )))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }
}

/// Reads, decisions and writes an enrolment makes before giving up to a concurrent writer.
const ENROL_ATTEMPTS: usize = 5;

/// What an enrolment reads of a participant besides the profile.
const ENROLMENT_STATE: [&str; 3] = ["status", "sanctioned_for", "updated_at"];

impl DynamoStore {
    /// The profile, status and sanction of a participant, consistent (`None`: not enrolled).
    async fn stored_enrolment(&self, pk: &str) -> Result<Option<Stored>, PortError> {
        let mut projection = Expr::default();
        let names: Vec<String> = Profile::FIELDS
            .iter()
            .chain(&ENROLMENT_STATE)
            .map(|field| projection.name(field))
            .collect();
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PROFILE.to_owned())))
            .projection_expression(names.join(", "))
            .set_expression_attribute_names(Some(projection.names))
            .consistent_read(true)
            .send()
            .await
            .map_err(port_error)?;
        output
            .item()
            .map(|item| from_item(item.clone()).map_err(|e| corrupt("participant", e)))
            .transpose()
    }

    async fn create_participant(
        &self,
        program: &str,
        participant: &str,
        enrolling: &Enrolling,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<(), PortError> {
        let mut item =
            to_item(&enrolling.profile).map_err(|e| PortError::Permanent(e.to_string()))?;
        item.extend(key(
            participant_pk(program, participant),
            PROFILE.to_owned(),
        ));
        let status = decision.status.unwrap_or(Status::Active);
        let enrolled_at = enrolling.enrolled_at.unwrap_or(now);
        for (name, value) in [
            ("participant", s(participant)),
            ("program", s(program)),
            ("updated_at", s(now.to_string())),
            ("status", s(status.as_str())),
            ("enrolled_at", s(enrolled_at.to_string())),
            ("balance", n(0)),
            ("roster", s(roster_key(program, participant))),
        ] {
            item.insert(name.to_owned(), value);
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    /// Writes the profile as sent (optional fields left out are removed) and the decided
    /// status, if what was read is still what is stored.
    async fn update_participant(
        &self,
        pk: &str,
        enrolling: &Enrolling,
        stored: &Stored,
        decision: &Decision,
        now: Timestamp,
    ) -> Result<(), PortError> {
        let fields =
            to_item(&enrolling.profile).map_err(|e| PortError::Permanent(e.to_string()))?;
        let mut expr = Expr::default();
        for optional in Profile::OPTIONAL_FIELDS {
            if !fields.contains_key(optional) {
                expr.remove(optional);
            }
        }
        for (field, value) in fields {
            let (name, value) = (expr.name(&field), expr.value(value));
            expr.set.push(format!("{name} = {value}"));
        }
        let now = s(now.to_string());
        let set = |expr: &mut Expr, attribute: &str, value: AttributeValue| {
            let (name, value) = (expr.name(attribute), expr.value(value));
            expr.set.push(format!("{name} = {value}"));
        };
        set(&mut expr, "updated_at", now.clone());
        if let Some(status) = decision.status {
            set(&mut expr, "status", s(status.as_str()));
            set(&mut expr, "status_changed_at", now);
        }
        let mut unchanged_since_read = |attribute: &str, read: Option<&str>| {
            let name = expr.name(attribute);
            let condition = match read {
                Some(read) => format!("{name} = {}", expr.value(s(read))),
                None => format!("attribute_not_exists({name})"),
            };
            expr.condition(condition);
        };
        unchanged_since_read("status", Some(&stored.status));
        unchanged_since_read("sanctioned_for", stored.sanctioned_for.as_deref());
        unchanged_since_read("updated_at", stored.updated_at.as_deref());
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk.to_owned(), PROFILE.to_owned())))
            .update_expression(expr.expression())
            .condition_expression(expr.conditions.join(" AND "))
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }
}

impl StatsReader for DynamoStore {
    async fn participant(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Option<ParticipantState>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(
                participant_pk(program, participant),
                PROFILE.to_owned(),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(port_error)?;
        output
            .item()
            .map(|item| from_item(item.clone()).map_err(|e| corrupt("participant", e)))
            .transpose()
    }

    async fn months(&self, program: &str, participant: &str) -> Result<Vec<MonthStats>, PortError> {
        let items = self
            .query_prefix(participant_pk(program, participant), MONTH)
            .await?;
        items.iter().map(month_stats).collect()
    }

    async fn ledger(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Vec<EventRecord>, PortError> {
        let items = self
            .query_prefix(participant_pk(program, participant), EVENT)
            .await?;
        items
            .into_iter()
            .map(|item| from_item(item).map_err(|e| corrupt("event record", e)))
            .collect()
    }
}

/// The days of a month item's login-day set.
fn login_days(item: &Item) -> Result<BTreeSet<u8>, PortError> {
    match item.get("login_days") {
        Some(AttributeValue::Ns(days)) => days
            .iter()
            .map(|d| d.parse().map_err(|e| corrupt("login day", e)))
            .collect(),
        _ => Ok(BTreeSet::new()),
    }
}

pub(crate) fn month_stats(item: &Item) -> Result<MonthStats, PortError> {
    let number = |value: &AttributeValue| -> Result<i64, PortError> {
        match value {
            AttributeValue::N(text) => text.parse().map_err(|e| corrupt("counter", e)),
            _ => Err(corrupt("counter", "not a number")),
        }
    };
    let mut stats = MonthStats::default();
    for (name, value) in item {
        match name.as_str() {
            "sk" => {
                if let AttributeValue::S(sk) = value {
                    stats.month = sk.trim_start_matches(MONTH).to_owned();
                }
            }
            "points" => stats.points = number(value)?,
            "login_days" => stats.login_days = login_days(item)?,
            other => {
                if let Some(event_type) = other.strip_prefix(COUNT) {
                    stats.counts.insert(event_type.to_owned(), number(value)?);
                }
            }
        }
    }
    Ok(stats)
}

impl ProgramReader for DynamoStore {
    async fn versions(&self, program: &str) -> Result<Option<Arc<ProgramVersions>>, PortError> {
        let items = self
            .query_prefix(program_pk(program), &format!("{CONFIG}#v"))
            .await?;
        let mut versions = Vec::with_capacity(items.len());
        for item in &items {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(s)) => Some(s.as_str()),
                _ => None,
            };
            let (Some(AttributeValue::N(version)), Some(document), Some(from)) = (
                item.get("version"),
                text("document"),
                text("effective_from").or(text("stored_at")),
            ) else {
                return Err(corrupt(
                    "program configuration",
                    "version, document or effective_from missing",
                ));
            };
            let version: u32 = version.parse().map_err(|e| corrupt("program version", e))?;
            let from: Timestamp = from.parse().map_err(|e| corrupt("effective_from", e))?;
            let document =
                serde_json::from_str(document).map_err(|e| corrupt("program document", e))?;
            let parsed = Program::from_document(document, version)
                .map_err(|errors| corrupt("program configuration", format!("{errors:?}")))?;
            versions.push((from, Arc::new(parsed)));
        }
        Ok(ProgramVersions::new(versions).map(Arc::new))
    }
}

impl ProgramWriter for DynamoStore {
    async fn put(
        &self,
        program: &Program,
        previous: u32,
        effective_from: Timestamp,
        now: Timestamp,
    ) -> Result<(), PortError> {
        let version = previous + 1;
        let pk = program_pk(&program.id);
        let document = program.document.to_string();
        let item = |sk: String| {
            let mut item = key(pk.clone(), sk);
            item.insert("version".into(), n(version));
            item.insert("document".into(), s(&document));
            item.insert("effective_from".into(), s(effective_from.to_string()));
            item.insert("stored_at".into(), s(now.to_string()));
            item
        };
        let current = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(CONFIG.to_owned())));
        let current = if previous == 0 {
            current.condition_expression("attribute_not_exists(pk)")
        } else {
            current
                .condition_expression("version = :previous")
                .expression_attribute_values(":previous", n(previous))
        };
        // Every version is kept: events are evaluated under the version in force when they
        // occurred, and the rule version a ledger entry names can be read back.
        let history = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item(format!("{CONFIG}#v{version:06}"))))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .expect("table and item are set");
        // The registry the hourly close job lists programs from.
        let mut listed = key(PROGRAMS.to_owned(), program.id.clone());
        listed.insert("program".into(), s(&program.id));
        let registry = Put::builder()
            .table_name(&self.table)
            .set_item(Some(listed))
            .build()
            .expect("table and item are set");
        self.transact(vec![
            TransactWriteItem::builder()
                .put(current.build().expect("table and item are set"))
                .build(),
            TransactWriteItem::builder().put(history).build(),
            TransactWriteItem::builder().put(registry).build(),
        ])
        .await
        .map(|_| ())
    }
}

/// Program configurations cached per warm function for a minute: a new version is picked up
/// within a minute of being stored, without a redeploy.
///
/// A version stored at `t` takes effect no earlier than `t + PROGRAM_TTL` (the admin function
/// refuses sooner), so versions read at `loaded` are complete for every event that occurred
/// before `loaded + ttl`; a later event (a source clock running ahead) reads them again.
pub struct CachedPrograms<R> {
    inner: R,
    ttl: Duration,
    cache: TtlCache<(Timestamp, Option<Arc<ProgramVersions>>)>,
}

/// How long a function keeps program versions, and so how far ahead of its storing a new
/// version must take effect.
pub const PROGRAM_TTL: Duration = Duration::from_secs(60);

impl<R: ProgramReader> CachedPrograms<R> {
    pub fn new(inner: R, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            cache: TtlCache::new(ttl, 256),
        }
    }

    async fn load(&self, program: &str) -> Result<Option<Arc<ProgramVersions>>, PortError> {
        // Taken before the read: every version stored before it is in what the read returns.
        let loaded = Timestamp::now();
        let found = self.inner.versions(program).await?;
        self.cache.put(program, (loaded, found.clone()));
        Ok(found)
    }
}

impl<R: ProgramReader> ProgramReader for CachedPrograms<R> {
    async fn versions(&self, program: &str) -> Result<Option<Arc<ProgramVersions>>, PortError> {
        match self.cache.get(program) {
            Some((_, hit)) => Ok(hit),
            None => self.load(program).await,
        }
    }

    async fn versions_for(
        &self,
        program: &str,
        at: Timestamp,
    ) -> Result<Option<Arc<ProgramVersions>>, PortError> {
        let complete_until = |loaded: Timestamp| {
            loaded
                .checked_add(jiff::SignedDuration::try_from(self.ttl).unwrap_or_default())
                .unwrap_or(loaded)
        };
        match self.cache.get(program) {
            Some((loaded, hit)) if at < complete_until(loaded) => Ok(hit),
            _ => self.load(program).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::StaticPrograms;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the reads that reach the store.
    struct Counting(StaticPrograms, AtomicUsize);

    impl ProgramReader for Counting {
        async fn versions(&self, program: &str) -> Result<Option<Arc<ProgramVersions>>, PortError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.versions(program).await
        }
    }

    #[tokio::test]
    async fn cached_versions_answer_only_for_events_they_are_complete_for() {
        let program = Program::parse(
            "program: acme\nname: ACME\ntime_zone: UTC\npoints: {portal.login: 5}\n",
            1,
        )
        .unwrap();
        let store = Counting(
            StaticPrograms::of(ProgramVersions::single(program, Timestamp::UNIX_EPOCH)),
            AtomicUsize::new(0),
        );
        let cached = CachedPrograms::new(store, Duration::from_secs(60));
        let now = Timestamp::now();
        for _ in 0..3 {
            cached.versions_for("acme", now).await.unwrap().unwrap();
        }
        assert_eq!(
            cached.inner.1.load(Ordering::SeqCst),
            1,
            "one read serves events up to now"
        );
        // An event stamped beyond what the read can vouch for (a source clock running ahead)
        // reads again: a version stored after the read could be in force by then.
        let ahead = now + jiff::SignedDuration::from_secs(61);
        cached.versions_for("acme", ahead).await.unwrap().unwrap();
        assert_eq!(cached.inner.1.load(Ordering::SeqCst), 2);
    }
}
