//! An independent reference model of what the ledger must show after a stream of events under
//! a points-table program (`events/admin/program-points-table.yaml`): balances, ledger entries
//! and month counters. It is written from docs/events.md alone, without the domain code, so a
//! mistake there cannot hide in both.
//!
//! Only reversals make the outcome depend on the order events are processed in (a reversal
//! that comes first leaves the original nothing to earn), so the model takes, with each unique
//! event, the round its first copy reaches the award function: events of one round may be
//! processed in any order, rounds one after the other. For each original and its reversals it
//! keeps every ledger such an order can leave; balances and month counters are the same in all.

use anyhow::Context;
use carrot::domain::counters::MonthStats;
use carrot::domain::ledger::EntryStatus;
use carrot::ports::{EnrolmentStore, StatsReader};
use jiff::tz::TimeZone;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A ledger entry as the model sees it: its status and what it moved on the balance.
pub type Entry = (EntryStatus, i64);

/// One participant's ledger: event id → entry.
pub type Ledger = BTreeMap<String, Entry>;

const LOGIN: &str = "portal.login";

fn is_reversal(event: &Value) -> bool {
    event["type"]
        .as_str()
        .is_some_and(|kind| kind.ends_with(".cancelled"))
}

/// A string field of an event, empty when absent.
pub fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field].as_str().unwrap_or_default()
}

/// A points-table program: a fixed award per event type, in a time zone.
pub struct Reference {
    points: HashMap<String, i64>,
    zone: TimeZone,
}

impl Reference {
    /// Reads the `points` table and `time_zone` of a program configuration.
    pub fn of_points_table(program_yaml: &str) -> anyhow::Result<Self> {
        let document: Value = serde_yaml_ng::from_str(program_yaml)?;
        let points = document["points"]
            .as_object()
            .context("the program has no points table")?
            .iter()
            .map(|(kind, points)| Ok((kind.clone(), points.as_i64().context("points")?)))
            .collect::<anyhow::Result<_>>()?;
        let zone = TimeZone::get(document["time_zone"].as_str().context("time_zone")?)?;
        Ok(Self { points, zone })
    }

    /// What the ledger must show once every event of `arrivals` (each unique event with the
    /// round its first copy is processed in) has been processed, however often each was
    /// delivered. A reversal names an original of its own participant, which may itself be a
    /// reversal.
    pub fn expect(&self, arrivals: &[(Value, u32)]) -> anyhow::Result<Expected> {
        let round_of: HashMap<&str, u32> = arrivals
            .iter()
            .map(|(event, round)| (text(event, "id"), *round))
            .collect();
        let is_reversal_id = |participant: &str, id: &str| {
            arrivals.iter().any(|(e, _)| {
                text(e, "id") == id && text(e, "participant") == participant && is_reversal(e)
            })
        };
        let mut expected = Expected::default();
        let mut reversals: BTreeMap<(&str, &str), Vec<(&str, u32)>> = BTreeMap::new();
        for (event, round) in arrivals.iter().filter(|(e, _)| is_reversal(e)) {
            let original = event["attributes"]["original_event"]
                .as_str()
                .context("a reversal names its original")?;
            let (id, participant) = (text(event, "id"), text(event, "participant"));
            // A reversal cannot be reversed: one naming a reversal is recorded and ignored,
            // whichever of the two comes first, and changes nothing else.
            if is_reversal_id(participant, original) {
                expected
                    .fixed
                    .entry(participant.to_owned())
                    .or_default()
                    .insert(id.to_owned(), (EntryStatus::ReversalIgnored, 0));
                continue;
            }
            reversals
                .entry((participant, original))
                .or_default()
                .push((id, *round));
        }

        for (event, _) in arrivals.iter().filter(|(e, _)| !is_reversal(e)) {
            let (id, participant, kind) = (
                text(event, "id"),
                text(event, "participant"),
                text(event, "type"),
            );
            let at: jiff::Timestamp = text(event, "occurred_at").parse()?;
            let local = at.to_zoned(self.zone.clone());
            let month = local.strftime("%Y-%m").to_string();
            let stats = expected
                .months
                .entry((participant.to_owned(), month.clone()))
                .or_default();
            stats.month = month;
            // A login's day counts even when the login itself is cancelled.
            if kind == LOGIN {
                stats.login_days.insert(local.day() as u8);
            }
            let earned = self.points.get(kind).copied().unwrap_or(0);
            if reversals.contains_key(&(participant, id)) {
                continue;
            }
            stats.points += earned;
            *stats.counts.entry(kind.to_owned()).or_default() += 1;
            *expected.balances.entry(participant.to_owned()).or_default() += earned;
            expected
                .fixed
                .entry(participant.to_owned())
                .or_default()
                .insert(id.to_owned(), (EntryStatus::Awarded, earned));
        }
        for ((participant, original), reversals) in reversals {
            let earned = arrivals
                .iter()
                .find(|(e, _)| text(e, "id") == original && text(e, "participant") == participant)
                .map(|(e, _)| self.points.get(text(e, "type")).copied().unwrap_or(0));
            let mut members: Vec<(Option<&str>, u32)> = reversals
                .iter()
                .map(|(id, round)| (Some(*id), *round))
                .collect();
            if earned.is_some() {
                members.push((None, round_of[original]));
            }
            let mut outcomes: Vec<Ledger> = Vec::new();
            for order in orders(&members) {
                let ledger = process(original, earned.unwrap_or(0), &order);
                if !outcomes.contains(&ledger) {
                    outcomes.push(ledger);
                }
            }
            expected
                .groups
                .entry(participant.to_owned())
                .or_default()
                .push(outcomes);
        }
        expected.months.retain(|_, stats| !is_empty(stats));
        for stats in expected.months.values_mut() {
            stats.counts.retain(|_, n| *n != 0);
        }
        Ok(expected)
    }
}

/// Every order of `members` (an original is `None`, a reversal its id) that processes the
/// rounds one after the other.
fn orders<'a>(members: &[(Option<&'a str>, u32)]) -> Vec<Vec<Option<&'a str>>> {
    if members.is_empty() {
        return vec![Vec::new()];
    }
    let first_round = members.iter().map(|(_, round)| *round).min().unwrap_or(0);
    let mut all = Vec::new();
    for (i, (member, round)) in members.iter().enumerate() {
        if *round != first_round {
            continue;
        }
        let mut rest = members.to_vec();
        rest.remove(i);
        for mut tail in orders(&rest) {
            tail.insert(0, *member);
            all.push(tail);
        }
    }
    all
}

/// The entries an original (earning `earned`) and its reversals leave when processed in
/// `order`, as docs/events.md describes reversals.
fn process(original: &str, earned: i64, order: &[Option<&str>]) -> Ledger {
    let mut ledger = Ledger::new();
    for member in order {
        let stored = ledger.get(original).map(|(status, _)| *status);
        match member {
            None => {
                let entry = match stored {
                    Some(EntryStatus::CancelledBeforeArrival) => (EntryStatus::Cancelled, 0),
                    _ => (EntryStatus::Awarded, earned),
                };
                ledger.insert(original.to_owned(), entry);
            }
            Some(reversal) => {
                let entry = match stored {
                    None => {
                        ledger.insert(
                            original.to_owned(),
                            (EntryStatus::CancelledBeforeArrival, 0),
                        );
                        (EntryStatus::Reversal, 0)
                    }
                    Some(EntryStatus::Awarded) => {
                        ledger.insert(original.to_owned(), (EntryStatus::Reversed, earned));
                        (EntryStatus::Reversal, -earned)
                    }
                    Some(_) => (EntryStatus::ReversalIgnored, 0),
                };
                ledger.insert((*reversal).to_owned(), entry);
            }
        }
    }
    ledger
}

fn is_empty(stats: &MonthStats) -> bool {
    stats.points == 0 && stats.login_days.is_empty() && stats.counts.values().all(|n| *n == 0)
}

/// A participant's stored months as the model states them: a month with nothing in it is the
/// same as no month (an original cancelled before it arrived writes none, one reversed after
/// it counted leaves zeros), and a count of zero the same as none.
fn normalised_months(months: Vec<MonthStats>) -> BTreeMap<String, MonthStats> {
    months
        .into_iter()
        .filter(|stats| !is_empty(stats))
        .map(|mut stats| {
            stats.counts.retain(|_, n| *n != 0);
            (stats.month.clone(), stats)
        })
        .collect()
}

/// What the model expects.
#[derive(Debug, Default)]
pub struct Expected {
    balances: HashMap<String, i64>,
    /// (participant, month) → counters, empty months left out.
    months: HashMap<(String, String), MonthStats>,
    /// Per participant: the entries no processing order changes.
    fixed: HashMap<String, Ledger>,
    /// Per participant: for each reversed original, the ledgers of it and its reversals that
    /// some allowed processing order leaves.
    groups: HashMap<String, Vec<Vec<Ledger>>>,
}

impl Expected {
    pub fn balance(&self, participant: &str) -> i64 {
        self.balances.get(participant).copied().unwrap_or(0)
    }

    /// The participant's months, as `normalised_months` states stored ones.
    pub fn months(&self, participant: &str) -> BTreeMap<String, MonthStats> {
        self.months
            .iter()
            .filter(|((p, _), _)| p == participant)
            .map(|((_, month), stats)| (month.clone(), stats.clone()))
            .collect()
    }

    /// Participant-months with something in them.
    pub fn month_count(&self) -> usize {
        self.months.len()
    }

    /// Ledger entries the model knows of.
    pub fn entry_count(&self) -> usize {
        let fixed: usize = self.fixed.values().map(Ledger::len).sum();
        let grouped: usize = self
            .groups
            .values()
            .flatten()
            .map(|outcomes| outcomes[0].len())
            .sum();
        fixed + grouped
    }

    /// What `store` holds for `participants` of `program` that differs from the model: each
    /// balance, the ledger's sum against it, every ledger entry, every month counter, and
    /// events still parked. Also how many ledger entries were compared.
    pub async fn differences<S: StatsReader + EnrolmentStore>(
        &self,
        store: &S,
        program: &str,
        participants: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> anyhow::Result<(Vec<String>, usize)> {
        let mut differences = Vec::new();
        let mut compared = 0;
        for participant in participants {
            let participant = participant.as_ref();
            let state = store
                .participant(program, participant)
                .await?
                .with_context(|| format!("{participant} is enrolled"))?;
            if state.balance != self.balance(participant) {
                differences.push(format!(
                    "balance of {participant}: {}, expected {}",
                    state.balance,
                    self.balance(participant)
                ));
            }
            let ledger = store.ledger(program, participant).await?;
            let sum: i64 = ledger.iter().map(|r| r.points).sum();
            if sum != state.balance {
                differences.push(format!(
                    "ledger of {participant} sums to {sum}, balance {}",
                    state.balance
                ));
            }
            if let Err(difference) = self.check_ledger(participant, &entries(&ledger)) {
                differences.push(difference);
            }
            compared += ledger.len();
            let months = normalised_months(store.months(program, participant).await?);
            if months != self.months(participant) {
                differences.push(format!(
                    "months of {participant}: {months:?}, expected {:?}",
                    self.months(participant)
                ));
            }
            let parked = store.parked(program, participant).await?;
            if !parked.is_empty() {
                differences.push(format!(
                    "{} events of {participant} still parked",
                    parked.len()
                ));
            }
        }
        Ok((differences, compared))
    }

    /// Whether `stored` is a ledger the model allows for `participant`: every entry whose
    /// outcome is fixed as expected, each reversed original with its reversals as one allowed
    /// order leaves them, and nothing else. The error lists what differs.
    pub fn check_ledger(&self, participant: &str, stored: &Ledger) -> Result<(), String> {
        let mut rest = stored.clone();
        let mut differences = Vec::new();
        for outcomes in self.groups.get(participant).into_iter().flatten() {
            let found: Ledger = outcomes[0]
                .keys()
                .filter_map(|id| rest.remove_entry(id))
                .collect();
            if !outcomes.contains(&found) {
                differences.push(format!("{found:?} is none of {outcomes:?}"));
            }
        }
        let fixed = self.fixed.get(participant).cloned().unwrap_or_default();
        for (id, entry) in &fixed {
            match rest.remove(id) {
                Some(stored) if stored == *entry => {}
                stored => differences.push(format!("{id}: {stored:?}, expected {entry:?}")),
            }
        }
        differences.extend(
            rest.iter()
                .map(|(id, entry)| format!("{id}: unexpected {entry:?}")),
        );
        if differences.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "ledger of {participant}: {}",
                differences.join("; ")
            ))
        }
    }
}

/// A stored ledger as the model states it.
fn entries(records: &[carrot::domain::ledger::EventRecord]) -> Ledger {
    records
        .iter()
        .map(|r| (r.event_id.clone(), (r.status, r.points)))
        .collect()
}
