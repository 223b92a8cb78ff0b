//! An in-memory store with the DynamoDB adapters' semantics: a plan applies atomically and
//! only if every guard holds, else nothing changes and the caller re-plans. The backtest
//! replays history through it (touching no table), the property tests check the laws of the
//! award path against it, and the notification sender's tests run on its notification items
//! (`NotifyStore`'s semantics).

use crate::adapters::notify_store::{
    deferral_key, due_bound, newest_first, stats_month, suppression_reason,
};
use crate::domain::counters::MonthStats;
use crate::domain::engine::{Counters, Guard, Op, Reads, Scope, Write};
use crate::domain::ledger::{EntryStatus, EventRecord, MonthDelta, Plan, Slot};
use crate::domain::message::FeedbackEvent;
use crate::domain::participant::Profile;
use crate::domain::program::ProgramVersions;
use crate::ports::{
    AwardStore, Claim, Consumed, DeferralStore, Deferred, DeliveryEntry, DeliveryStatus,
    DeliveryStore, Feedback, FeedbackStore, KindStats, Loaded, ParticipantState, PortError,
    PreferenceStore, Preferences, ProgramReader,
};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;

/// One participant's items.
#[derive(Debug, Clone)]
pub struct Account {
    pub state: ParticipantState,
    /// Numeric attributes of the profile item other than the balance: rule counters, lots.
    pub counters: HashMap<String, i64>,
    pub months: BTreeMap<String, Month>,
    pub records: BTreeMap<String, EventRecord>,
}

#[derive(Debug, Clone, Default)]
pub struct Month {
    pub stats: MonthStats,
    /// The rules' counters on the month item.
    pub counters: HashMap<String, i64>,
}

#[derive(Debug, Default)]
pub struct Memory {
    /// By `(program, participant)`.
    pub accounts: BTreeMap<(String, String), Account>,
    /// By `(program, shard)`.
    pub budgets: HashMap<(String, String), i64>,
    /// Events of participants not enrolled, by `(program, participant)`.
    pub parked: BTreeMap<(String, String), Vec<(String, String)>>,
    pub notifications: Notifications,
}

/// The notification sender's items, with `NotifyStore`'s semantics.
#[derive(Debug, Default)]
pub struct Notifications {
    /// Delivery log entries by `(program, participant)`, then request id.
    pub deliveries: BTreeMap<(String, String), BTreeMap<String, DeliveryEntry>>,
    /// By `(program, participant)`; absent means the defaults.
    pub preferences: BTreeMap<(String, String), Preferences>,
    /// Nudges counted by `(program, participant, week)`.
    pub nudges: BTreeMap<(String, String, String), u32>,
    /// Deferred requests by program, then key (`{until}#{id}`, in time order).
    pub deferred: BTreeMap<String, BTreeMap<String, String>>,
    /// Message statistics by `(program, month, kind)`.
    pub stats: BTreeMap<(String, String, String), KindStats>,
}

impl Notifications {
    fn entry(&self, program: &str, participant: &str, id: &str) -> Option<&DeliveryEntry> {
        self.deliveries
            .get(&(program.to_owned(), participant.to_owned()))
            .and_then(|log| log.get(id))
    }

    /// Whether `id`'s entry may be written: none yet, or a deferred one.
    fn replaceable(&self, program: &str, participant: &str, id: &str) -> bool {
        self.entry(program, participant, id)
            .is_none_or(|e| matches!(e.status, DeliveryStatus::Deferred { .. }))
    }

    fn put(&mut self, program: &str, participant: &str, entry: &DeliveryEntry) {
        self.deliveries
            .entry((program.to_owned(), participant.to_owned()))
            .or_default()
            .insert(entry.id.clone(), entry.clone());
    }

    fn count(&mut self, program: &str, month: String, kind: &str) -> &mut KindStats {
        self.stats
            .entry((program.to_owned(), month, kind.to_owned()))
            .or_insert_with(|| KindStats {
                kind: kind.to_owned(),
                ..KindStats::default()
            })
    }
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    pub memory: Mutex<Memory>,
}

impl MemoryStore {
    /// Enrols (or updates) a participant; `enrolled_at` is kept from the first enrolment.
    pub fn enrol(&self, program: &str, participant: &str, profile: Profile, at: Timestamp) {
        let mut memory = self.memory.lock().expect("not poisoned");
        let key = (program.to_owned(), participant.to_owned());
        match memory.accounts.get_mut(&key) {
            Some(account) => account.state.profile = profile,
            None => {
                memory.accounts.insert(
                    key,
                    Account {
                        state: ParticipantState {
                            participant: participant.to_owned(),
                            profile,
                            status: "active".into(),
                            enrolled_at: at.to_string(),
                            balance: 0,
                            segment: None,
                        },
                        counters: HashMap::new(),
                        months: BTreeMap::new(),
                        records: BTreeMap::new(),
                    },
                );
            }
        }
    }

    /// Sets the segment rules match on (the daily segmentation's job on a real table).
    pub fn set_segment(&self, program: &str, participant: &str, segment: Option<String>) {
        let mut memory = self.memory.lock().expect("not poisoned");
        if let Some(account) = memory
            .accounts
            .get_mut(&(program.to_owned(), participant.to_owned()))
        {
            account.state.segment = segment;
        }
    }

    /// A copy of every account, for reports and assertions.
    pub fn accounts(&self) -> BTreeMap<(String, String), Account> {
        self.memory.lock().expect("not poisoned").accounts.clone()
    }

    pub fn budget_spent(&self) -> HashMap<(String, String), i64> {
        self.memory.lock().expect("not poisoned").budgets.clone()
    }

    pub fn parked_count(&self) -> usize {
        let memory = self.memory.lock().expect("not poisoned");
        memory.parked.values().map(Vec::len).sum()
    }
}

fn stored(value: Option<&i64>) -> i64 {
    value.copied().unwrap_or(0)
}

fn guard_holds(guard: Guard, value: i64) -> bool {
    match guard {
        Guard::Free => true,
        Guard::AtMost(x) => value <= x,
        Guard::AtLeast(x) => value >= x,
        Guard::Equals(x) => value == x,
    }
}

impl Memory {
    fn counter(&self, program: &str, account: &Account, write: &Write) -> i64 {
        match &write.scope {
            Scope::Profile => stored(account.counters.get(&write.name)),
            Scope::Month(m) => stored(
                account
                    .months
                    .get(m)
                    .and_then(|month| month.counters.get(&write.name)),
            ),
            Scope::Budget(b) => stored(self.budgets.get(&(program.to_owned(), b.clone()))),
        }
    }

    fn apply_writes(&mut self, program: &str, key: &(String, String), writes: &[Write]) {
        for write in writes {
            let slot = match &write.scope {
                Scope::Budget(b) => self
                    .budgets
                    .entry((program.to_owned(), b.clone()))
                    .or_default(),
                scope => {
                    let account = self.accounts.get_mut(key).expect("checked enrolled");
                    match scope {
                        Scope::Profile => account.counters.entry(write.name.clone()).or_default(),
                        Scope::Month(m) => account
                            .months
                            .entry(m.clone())
                            .or_default()
                            .counters
                            .entry(write.name.clone())
                            .or_default(),
                        Scope::Budget(_) => unreachable!("matched above"),
                    }
                }
            };
            match write.op {
                Op::Add(by) => *slot += by,
                Op::Set(value) => *slot = value,
            }
        }
    }
}

/// The reversal whose placeholder a reversal's record replaces becomes ignored.
fn displace(account: &mut Account, slot: &Slot) {
    if let Slot::Displacing { reversal_id, note } = slot {
        let ignored = account.records.get_mut(reversal_id).expect("checked");
        ignored.status = EntryStatus::ReversalIgnored;
        ignored.note = Some(note.clone());
    }
}

fn count_month(account: &mut Account, delta: &MonthDelta) {
    let month = account.months.entry(delta.month.clone()).or_default();
    month.stats.month = delta.month.clone();
    month.stats.points += delta.points;
    if let Some((event_type, by)) = &delta.count {
        *month.stats.counts.entry(event_type.clone()).or_default() += by;
    }
    if let Some(day) = delta.login_day {
        month.stats.login_days.insert(day);
    }
}

impl AwardStore for MemoryStore {
    async fn load(
        &self,
        program: &str,
        participant: &str,
        event_ids: &[&str],
        reads: &Reads,
    ) -> Result<Loaded, PortError> {
        let memory = self.memory.lock().expect("not poisoned");
        let mut loaded = Loaded::default();
        let Some(account) = memory
            .accounts
            .get(&(program.to_owned(), participant.to_owned()))
        else {
            return Ok(loaded);
        };
        loaded.participant = Some(account.state.clone());
        loaded.records = event_ids
            .iter()
            .filter_map(|id| account.records.get(*id).cloned())
            .collect();
        let mut counters = Counters {
            profile: account.counters.clone(),
            ..Counters::default()
        };
        for m in &reads.months {
            if let Some(month) = account.months.get(m) {
                counters.months.insert(m.clone(), month.counters.clone());
                counters
                    .login_days
                    .insert(m.clone(), month.stats.login_days.clone());
            }
        }
        for b in &reads.budgets {
            if let Some(spent) = memory.budgets.get(&(program.to_owned(), b.clone())) {
                counters.budgets.insert(b.clone(), *spent);
            }
        }
        loaded.counters = counters;
        Ok(loaded)
    }

    async fn commit(
        &self,
        program: &str,
        participant: &str,
        plan: &Plan,
    ) -> Result<Consumed, PortError> {
        let mut memory = self.memory.lock().expect("not poisoned");
        let key = (program.to_owned(), participant.to_owned());
        let Some(account) = memory.accounts.get(&key) else {
            return Err(PortError::ConditionFailed);
        };
        let record_is = |id: &str, status: Option<EntryStatus>| {
            account.records.get(id).map(|r| r.status) == status
        };
        let slot_holds = |id: &str, slot: &Slot| match slot {
            Slot::New => record_is(id, None),
            Slot::Displacing { reversal_id, .. } => {
                record_is(id, Some(EntryStatus::CancelledBeforeArrival))
                    && record_is(reversal_id, Some(EntryStatus::Reversal))
            }
        };
        // A login planned as a new day must still be one (DynamoDB's `NOT contains`).
        let day_still_new = |month: &MonthDelta| {
            !month.new_login_day
                || month.login_day.is_none_or(|day| {
                    account
                        .months
                        .get(&month.month)
                        .is_none_or(|m| !m.stats.login_days.contains(&day))
                })
        };
        // Every condition first, as one transaction: nothing applies unless all hold.
        let holds = match plan {
            Plan::Duplicate => return Ok(Consumed::default()),
            Plan::Award {
                record,
                month,
                writes,
                expiries,
                ..
            } => {
                record_is(&record.event_id, None)
                    && day_still_new(month)
                    && writes
                        .iter()
                        .all(|w| guard_holds(w.guard, memory.counter(program, account, w)))
                    && expiries.iter().all(|e| {
                        record_is(&e.record.event_id, None)
                            && account.counters.get(&e.lot) == Some(&e.stored)
                    })
            }
            Plan::Reverse {
                reversal,
                slot,
                original_id,
                ..
            } => {
                slot_holds(&reversal.event_id, slot)
                    && record_is(original_id, Some(EntryStatus::Awarded))
            }
            Plan::ReverseBeforeOriginal {
                reversal,
                slot,
                placeholder,
            } => slot_holds(&reversal.event_id, slot) && record_is(&placeholder.event_id, None),
            Plan::ArriveCancelled { record, month } => {
                record_is(&record.event_id, Some(EntryStatus::CancelledBeforeArrival))
                    && month.as_ref().is_none_or(day_still_new)
            }
            Plan::IgnoreReversal { record, slot } => slot_holds(&record.event_id, slot),
        };
        if !holds {
            return Err(PortError::ConditionFailed);
        }
        match plan {
            Plan::Duplicate => {}
            Plan::Award {
                record,
                month,
                writes,
                tidy,
                expiries,
            } => {
                memory.apply_writes(program, &key, writes);
                let account = memory.accounts.get_mut(&key).expect("checked");
                account.state.balance += record.points;
                for lot in tidy {
                    account.counters.remove(lot);
                }
                for expired in expiries {
                    account.state.balance += expired.record.points;
                    account.counters.remove(&expired.lot);
                    account
                        .records
                        .insert(expired.record.event_id.clone(), expired.record.clone());
                }
                count_month(account, month);
                account
                    .records
                    .insert(record.event_id.clone(), record.clone());
            }
            Plan::Reverse {
                reversal,
                slot,
                original_id,
                month,
                writes,
            } => {
                memory.apply_writes(program, &key, writes);
                let account = memory.accounts.get_mut(&key).expect("checked");
                displace(account, slot);
                account.state.balance += reversal.points;
                count_month(account, month);
                let original = account.records.get_mut(original_id).expect("checked");
                original.status = EntryStatus::Reversed;
                original.reversed_by = Some(reversal.event_id.clone());
                account
                    .records
                    .insert(reversal.event_id.clone(), reversal.clone());
            }
            Plan::ReverseBeforeOriginal {
                reversal,
                slot,
                placeholder,
            } => {
                let account = memory.accounts.get_mut(&key).expect("checked");
                displace(account, slot);
                account
                    .records
                    .insert(reversal.event_id.clone(), reversal.clone());
                account
                    .records
                    .insert(placeholder.event_id.clone(), placeholder.clone());
            }
            Plan::ArriveCancelled { record, month } => {
                let account = memory.accounts.get_mut(&key).expect("checked");
                if let Some(month) = month {
                    count_month(account, month);
                }
                account
                    .records
                    .insert(record.event_id.clone(), record.clone());
            }
            Plan::IgnoreReversal { record, slot } => {
                let account = memory.accounts.get_mut(&key).expect("checked");
                displace(account, slot);
                account
                    .records
                    .insert(record.event_id.clone(), record.clone());
            }
        }
        Ok(Consumed::default())
    }

    async fn park(
        &self,
        program: &str,
        participant: &str,
        event_id: &str,
        message: &str,
        _now: Timestamp,
    ) -> Result<Consumed, PortError> {
        let mut memory = self.memory.lock().expect("not poisoned");
        let key = (program.to_owned(), participant.to_owned());
        if memory.accounts.contains_key(&key) {
            return Err(PortError::ConditionFailed);
        }
        let parked = memory.parked.entry(key).or_default();
        if !parked.iter().any(|(id, _)| id == event_id) {
            parked.push((event_id.to_owned(), message.to_owned()));
        }
        Ok(Consumed::default())
    }
}

impl DeliveryStore for MemoryStore {
    async fn recipient(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Option<(ParticipantState, Preferences)>, PortError> {
        let memory = self.memory.lock().expect("not poisoned");
        let key = (program.to_owned(), participant.to_owned());
        Ok(memory.accounts.get(&key).map(|account| {
            let preferences = memory.notifications.preferences.get(&key).cloned();
            (account.state.clone(), preferences.unwrap_or_default())
        }))
    }

    async fn delivery(
        &self,
        program: &str,
        participant: &str,
        id: &str,
    ) -> Result<Option<DeliveryEntry>, PortError> {
        let memory = self.memory.lock().expect("not poisoned");
        Ok(memory
            .notifications
            .entry(program, participant, id)
            .cloned())
    }

    async fn claim(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        cap: Option<(&str, u32)>,
    ) -> Result<Claim, PortError> {
        let mut memory = self.memory.lock().expect("not poisoned");
        let notifications = &mut memory.notifications;
        if !notifications.replaceable(program, participant, &entry.id) {
            let existing = notifications.entry(program, participant, &entry.id);
            return Ok(Claim::Exists(existing.cloned().expect("not replaceable")));
        }
        if let Some((week, max)) = cap {
            let counted = notifications
                .nudges
                .entry((program.to_owned(), participant.to_owned(), week.to_owned()))
                .or_default();
            if *counted >= max {
                return Ok(Claim::CapReached);
            }
            *counted += 1;
        }
        notifications.put(program, participant, entry);
        Ok(Claim::Claimed)
    }

    async fn unclaim(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
        cap: Option<(&str, u32)>,
    ) -> Result<(), PortError> {
        if !matches!(entry.status, DeliveryStatus::Sending { .. }) {
            return Err(PortError::Permanent(format!(
                "delivery {} is given back with its claim (sending), not {:?}",
                entry.id, entry.status
            )));
        }
        let mut memory = self.memory.lock().expect("not poisoned");
        let notifications = &mut memory.notifications;
        // A claim no longer held has nothing to give back.
        let held = notifications
            .entry(program, participant, &entry.id)
            .is_some_and(|e| e.status == entry.status);
        if !held {
            return Ok(());
        }
        let key = (program.to_owned(), participant.to_owned());
        if let Some(log) = notifications.deliveries.get_mut(&key) {
            log.remove(&entry.id);
        }
        if let Some((week, _)) = cap
            && let Some(counted) = notifications
                .nudges
                .get_mut(&(key.0, key.1, week.to_owned()))
        {
            *counted = counted.saturating_sub(1);
        }
        Ok(())
    }

    async fn mark_sent(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
    ) -> Result<(), PortError> {
        let DeliveryStatus::Sent { at, .. } = &entry.status else {
            return Err(PortError::Permanent(format!(
                "delivery {} is marked sent with a sent status, not {:?}",
                entry.id, entry.status
            )));
        };
        let month = stats_month("sending time", at)?;
        let mut memory = self.memory.lock().expect("not poisoned");
        let notifications = &mut memory.notifications;
        let stored = notifications
            .deliveries
            .get_mut(&(program.to_owned(), participant.to_owned()))
            .and_then(|log| log.get_mut(&entry.id))
            .filter(|e| matches!(e.status, DeliveryStatus::Sending { .. }))
            .ok_or(PortError::ConditionFailed)?;
        stored.status = entry.status.clone();
        notifications.count(program, month, &entry.kind).sent += 1;
        Ok(())
    }

    async fn skip(
        &self,
        program: &str,
        participant: &str,
        entry: &DeliveryEntry,
    ) -> Result<(), PortError> {
        let mut memory = self.memory.lock().expect("not poisoned");
        let notifications = &mut memory.notifications;
        if !notifications.replaceable(program, participant, &entry.id) {
            return Err(PortError::ConditionFailed);
        }
        notifications.put(program, participant, entry);
        Ok(())
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
        let key = deferral_key(until, &entry.id)?;
        let mut memory = self.memory.lock().expect("not poisoned");
        let notifications = &mut memory.notifications;
        if !notifications.replaceable(program, participant, &entry.id) {
            return Err(PortError::ConditionFailed);
        }
        notifications.put(program, participant, entry);
        notifications
            .deferred
            .entry(program.to_owned())
            .or_default()
            .insert(key, request.to_owned());
        Ok(())
    }
}

impl DeferralStore for MemoryStore {
    async fn due(
        &self,
        program: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Deferred>, PortError> {
        let memory = self.memory.lock().expect("not poisoned");
        let bound = due_bound(now);
        Ok(memory
            .notifications
            .deferred
            .get(program)
            .into_iter()
            .flat_map(|held| held.range(..bound.clone()))
            .take(limit)
            .map(|(key, request)| Deferred {
                key: key.clone(),
                request: request.clone(),
            })
            .collect())
    }

    async fn release(&self, program: &str, deferred: &str) -> Result<(), PortError> {
        let mut memory = self.memory.lock().expect("not poisoned");
        if let Some(held) = memory.notifications.deferred.get_mut(program) {
            held.remove(deferred);
        }
        Ok(())
    }
}

impl FeedbackStore for MemoryStore {
    async fn record(&self, feedback: &Feedback) -> Result<(), PortError> {
        let month = stats_month("feedback time", &feedback.at)?;
        let mut memory = self.memory.lock().expect("not poisoned");
        let notifications = &mut memory.notifications;
        let key = (feedback.program.clone(), feedback.participant.clone());
        let Some(entry) = notifications
            .deliveries
            .get_mut(&key)
            .and_then(|log| log.get_mut(&feedback.id))
        else {
            return Ok(());
        };
        let stamp = match feedback.event {
            FeedbackEvent::Delivery => &mut entry.delivered_at,
            FeedbackEvent::Open => &mut entry.opened_at,
            FeedbackEvent::Bounce { .. } => &mut entry.bounced_at,
            FeedbackEvent::Complaint => &mut entry.complained_at,
        };
        if stamp.is_some() {
            return Ok(());
        }
        *stamp = Some(feedback.at.clone());
        let stats = notifications.count(&feedback.program, month, &feedback.kind);
        *match feedback.event {
            FeedbackEvent::Delivery => &mut stats.delivered,
            FeedbackEvent::Open => &mut stats.opened,
            FeedbackEvent::Bounce { .. } => &mut stats.bounced,
            FeedbackEvent::Complaint => &mut stats.complained,
        } += 1;
        if let (Some(reason), Some(address)) =
            (suppression_reason(feedback.event), &feedback.address_sha256)
        {
            let preferences = notifications.preferences.entry(key).or_default();
            preferences.suppressed_email = Some(address.clone());
            preferences.suppressed_reason = Some(reason.to_owned());
        }
        Ok(())
    }
}

impl PreferenceStore for MemoryStore {
    async fn preferences(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Preferences, PortError> {
        let memory = self.memory.lock().expect("not poisoned");
        Ok(memory
            .notifications
            .preferences
            .get(&(program.to_owned(), participant.to_owned()))
            .cloned()
            .unwrap_or_default())
    }

    async fn set_preferences(
        &self,
        program: &str,
        participant: &str,
        preferences: &Preferences,
    ) -> Result<(), PortError> {
        let mut memory = self.memory.lock().expect("not poisoned");
        let key = (program.to_owned(), participant.to_owned());
        if !memory.accounts.contains_key(&key) {
            return Err(PortError::ConditionFailed);
        }
        memory
            .notifications
            .preferences
            .insert(key, preferences.clone());
        Ok(())
    }

    async fn deliveries(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Vec<DeliveryEntry>, PortError> {
        let memory = self.memory.lock().expect("not poisoned");
        let mut entries: Vec<DeliveryEntry> = memory
            .notifications
            .deliveries
            .get(&(program.to_owned(), participant.to_owned()))
            .map(|log| log.values().cloned().collect())
            .unwrap_or_default();
        newest_first(&mut entries);
        Ok(entries)
    }

    async fn message_stats(&self, program: &str, month: &str) -> Result<Vec<KindStats>, PortError> {
        let memory = self.memory.lock().expect("not poisoned");
        Ok(memory
            .notifications
            .stats
            .iter()
            .filter(|((p, m, _), _)| p == program && m == month)
            .map(|(_, stats)| stats.clone())
            .collect())
    }
}

/// Program versions held in memory (a config file for the backtest, fixtures for tests).
#[derive(Debug, Default)]
pub struct StaticPrograms(pub Mutex<HashMap<String, Arc<ProgramVersions>>>);

impl StaticPrograms {
    pub fn of(versions: ProgramVersions) -> Self {
        let id = versions.latest().id.clone();
        Self(Mutex::new(HashMap::from([(id, Arc::new(versions))])))
    }

    pub fn replace(&self, versions: ProgramVersions) {
        let id = versions.latest().id.clone();
        self.0
            .lock()
            .expect("not poisoned")
            .insert(id, Arc::new(versions));
    }
}

impl ProgramReader for StaticPrograms {
    async fn versions(&self, program: &str) -> Result<Option<Arc<ProgramVersions>>, PortError> {
        Ok(self.0.lock().expect("not poisoned").get(program).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::{Channel, Recipient};
    use serde_json::json;

    const PROGRAM: &str = "acme";
    /// Two nudges a week.
    const CAP: Option<(&str, u32)> = Some(("2026-W10", 2));

    fn store() -> MemoryStore {
        let store = MemoryStore::default();
        let profile = Profile::from_json(&json!({"name": "A", "email": "a@example.com",
            "locale": "en", "time_zone": "UTC", "role": "seller", "distributor": "d",
            "location": "l"}))
        .unwrap();
        store.enrol(PROGRAM, "alice", profile, Timestamp::UNIX_EPOCH);
        store
    }

    fn entry(id: &str, status: DeliveryStatus) -> DeliveryEntry {
        DeliveryEntry {
            id: id.into(),
            kind: "journey.nudge".into(),
            channel: Channel::Email,
            recipient: Recipient::Participant,
            status,
            created_at: "2026-03-02T09:00:00Z".into(),
            delivered_at: None,
            opened_at: None,
            bounced_at: None,
            complained_at: None,
        }
    }

    fn sending() -> DeliveryStatus {
        DeliveryStatus::Sending {
            since: "2026-03-02T09:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn claims_are_once_and_within_the_weekly_cap() {
        let store = store();
        let (a, b, c) = (
            entry("a", sending()),
            entry("b", sending()),
            entry("c", sending()),
        );
        async fn claim(store: &MemoryStore, e: &DeliveryEntry) -> Result<Claim, PortError> {
            store.claim(PROGRAM, "alice", e, CAP).await
        }
        assert_eq!(claim(&store, &a).await, Ok(Claim::Claimed));
        assert_eq!(claim(&store, &a).await, Ok(Claim::Exists(a.clone())));
        assert_eq!(claim(&store, &b).await, Ok(Claim::Claimed));
        assert_eq!(claim(&store, &c).await, Ok(Claim::CapReached));
        assert_eq!(store.delivery(PROGRAM, "alice", "c").await, Ok(None));

        // Given back, a claim frees its place; a stale one changes nothing.
        let stale = entry(
            "a",
            DeliveryStatus::Sending {
                since: "2026-03-01T00:00:00Z".into(),
            },
        );
        store.unclaim(PROGRAM, "alice", &stale, CAP).await.unwrap();
        assert_eq!(claim(&store, &c).await, Ok(Claim::CapReached));
        store.unclaim(PROGRAM, "alice", &b, CAP).await.unwrap();
        assert_eq!(claim(&store, &c).await, Ok(Claim::Claimed));

        let done = DeliveryEntry {
            status: DeliveryStatus::Sent {
                at: "2026-03-02T09:00:01Z".into(),
                provider_id: "p".into(),
            },
            ..a.clone()
        };
        store.mark_sent(PROGRAM, "alice", &done).await.unwrap();
        assert_eq!(
            store.mark_sent(PROGRAM, "alice", &done).await,
            Err(PortError::ConditionFailed)
        );
        assert_eq!(
            store.skip(PROGRAM, "alice", &a).await,
            Err(PortError::ConditionFailed)
        );
        let stats = store.message_stats(PROGRAM, "2026-03").await.unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(
            (stats[0].kind.as_str(), stats[0].sent),
            ("journey.nudge", 1)
        );
    }

    #[tokio::test]
    async fn deferrals_come_due_in_time_order() {
        let store = store();
        for (id, until) in [
            ("late", "2026-03-03T07:00:00Z"),
            ("early", "2026-03-03T06:00:00Z"),
        ] {
            let deferred = entry(
                id,
                DeliveryStatus::Deferred {
                    until: until.into(),
                },
            );
            store.defer(PROGRAM, "alice", &deferred, id).await.unwrap();
        }
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let due = |now| store.due(PROGRAM, at(now), 10);
        assert!(due("2026-03-03T05:59:59Z").await.unwrap().is_empty());
        let all = due("2026-03-03T07:00:00Z").await.unwrap();
        let requests: Vec<_> = all.iter().map(|d| d.request.as_str()).collect();
        assert_eq!(requests, ["early", "late"]);
        store.release(PROGRAM, &all[0].key).await.unwrap();
        assert_eq!(due("2026-03-03T07:00:00Z").await.unwrap().len(), 1);
        // Back from the queue, a deferred request is claimed over its entry.
        assert_eq!(
            store
                .claim(PROGRAM, "alice", &entry("early", sending()), None)
                .await,
            Ok(Claim::Claimed)
        );
    }

    #[tokio::test]
    async fn feedback_counts_once_and_a_permanent_bounce_suppresses() {
        let store = store();
        let a = entry("a", sending());
        store.claim(PROGRAM, "alice", &a, None).await.unwrap();
        let bounce = Feedback {
            program: PROGRAM.into(),
            participant: "alice".into(),
            id: "a".into(),
            kind: "journey.nudge".into(),
            event: FeedbackEvent::Bounce { permanent: true },
            at: "2026-04-01T00:00:00Z".into(),
            address_sha256: Some("hash".into()),
        };
        store.record(&bounce).await.unwrap();
        store.record(&bounce).await.unwrap();
        let unknown = Feedback {
            id: "nope".into(),
            ..bounce.clone()
        };
        store.record(&unknown).await.unwrap();
        let stats = store.message_stats(PROGRAM, "2026-04").await.unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].bounced, 1);
        let preferences = store.preferences(PROGRAM, "alice").await.unwrap();
        assert_eq!(preferences.suppressed_email.as_deref(), Some("hash"));
        assert_eq!(preferences.suppressed_reason.as_deref(), Some("bounce"));
        assert_eq!(
            store
                .set_preferences(PROGRAM, "nobody", &Preferences::default())
                .await,
            Err(PortError::ConditionFailed)
        );
    }
}
