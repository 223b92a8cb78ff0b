//! Spin to win: a participant spends `spin.cost` points for a chance at a prize. One spin is
//! one transaction: the cost debited (never overdrawing the available points), the spin's
//! audit record, the participant's spin counter and, for a prize, the program's budget
//! counter (never past the budget) and the prize's credit. The number is drawn once per
//! request from the OS random source and kept across retries: a retry after a concurrent
//! spin decides the same draw against the budget as it is then.

use super::redeem::{Outgoing, RedeemStore, SPEND_ATTEMPTS, publish_committed, retry_pause};
use super::{Refusal, enrolled};
use crate::domain::engine::{Added, EXPIRY_LOT, Scope, expiry_date};
use crate::domain::error::{FieldErrors, check_identifier};
use crate::domain::ledger::EventRecord;
use crate::domain::period::Periods;
use crate::domain::program::Program;
use crate::domain::spin::{
    Outcome, RECORD_PREFIX, Reward, SCALE, Spin, SpinConfig, Used, period_label,
};
use crate::domain::wallet::{Debit, Entry, Holder};
use crate::ports::{Outbound, PortError, ProgramReader, StatsReader};
use jiff::Timestamp;
use rand::TryRngCore;
use serde_json::{Map, Value, json};
use std::future::Future;

/// The event type of a spin's cost and of its points prize in the ledger.
pub const COST_TYPE: &str = "spin.played";
pub const PRIZE_TYPE: &str = "spin.won";

/// The writes of one spin, all in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct SpinWrite {
    pub spin: Spin,
    /// The cost's ledger record (`spin:{id}`) and how it is debited.
    pub cost: EventRecord,
    pub debit: Debit,
    /// A points prize's ledger record (`spin:{id}:prize`), credited in the same update.
    pub prize: Option<EventRecord>,
    /// The budget counter a prize adds to, with the most it may hold before the addition.
    pub budget: Option<BudgetWrite>,
    /// The participant's spin counter of the limit's period, and the most it may hold
    /// before this spin.
    pub limit: Option<(String, i64)>,
    /// A physical prize's `spin.won` event for fulfilment, committed to the outbox with the
    /// spin and published after it (the hourly drain publishes what a crash left).
    pub announcement: Option<Outgoing>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetWrite {
    pub period: String,
    pub points: i64,
    /// The budget's points minus this prize's points, when the budget limits points.
    pub points_room: Option<i64>,
    /// The budget's prizes minus one, when the budget limits prizes.
    pub prizes_room: Option<i64>,
}

pub trait SpinStore: Send + Sync {
    /// The participant as a spender: status, balance and wallet lots.
    fn spender(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Option<Holder>, PortError>> + Send;

    fn spin(
        &self,
        program: &str,
        participant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Spin>, PortError>> + Send;

    /// The participant's spins, newest first.
    fn spins(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<Spin>, PortError>> + Send;

    /// The budget used in `budget_period`, and the participant's spins in `limit_period`.
    fn usage(
        &self,
        program: &str,
        participant: &str,
        budget_period: &str,
        limit_period: Option<&str>,
    ) -> impl Future<Output = Result<(Used, i64), PortError>> + Send;

    /// Writes the spin in one transaction: `ConditionFailed` when anything read changed (or
    /// the spin exists).
    fn record_spin(
        &self,
        program: &str,
        write: &SpinWrite,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A uniform number in `0..SCALE` from the OS random source (rejection sampling: no bias).
fn draw_number() -> Result<u64, PortError> {
    let zone = u64::MAX - u64::MAX % SCALE;
    loop {
        let x = rand::rngs::OsRng
            .try_next_u64()
            .map_err(|e| PortError::Transient(format!("the OS random source failed: {e}")))?;
        if x < zone {
            return Ok(x % SCALE);
        }
    }
}

/// `POST …/participants/{participant}/spins` `{id}`: the spin, and whether it is new (the
/// same id again answers the stored spin).
pub async fn spin<S, P, O>(
    store: &S,
    programs: &P,
    outbound: &O,
    program: &str,
    participant: &str,
    body: &Map<String, Value>,
    now: Timestamp,
) -> Result<(Spin, bool), Refusal>
where
    S: SpinStore + RedeemStore,
    P: ProgramReader,
    O: Outbound,
{
    let id = spin_id(body)?;
    if let Some(done) = store.spin(program, participant, &id).await? {
        return Ok((done, false));
    }
    let versions = programs.versions_for(program, now).await?;
    let config = versions.as_ref().map(|v| v.at(now).clone());
    let Some(config) = config.filter(|p| p.spin.enabled) else {
        return Err(Refusal::Conflict(
            "spin to win is off in this program (spin.enabled is not true)".into(),
        ));
    };
    let number = draw_number()?;
    for round in 1..=SPEND_ATTEMPTS {
        let write = decide(store, &config, participant, &id, number, now).await?;
        match store.record_spin(program, &write).await {
            Ok(()) => {
                tracing::info!(program, participant, spin = %id, outcome = outcome_name(&write.spin.outcome), "spin");
                if let Some(announcement) = &write.announcement {
                    publish_committed(store, outbound, program, announcement).await;
                }
                return Ok((write.spin, true));
            }
            Err(PortError::ConditionFailed) => {
                if let Some(done) = store.spin(program, participant, &id).await? {
                    return Ok((done, false));
                }
            }
            Err(PortError::Transient(_)) => tokio::time::sleep(retry_pause(round)).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(PortError::Transient("concurrent spends kept conflicting".into()).into())
}

fn spin_id(body: &Map<String, Value>) -> Result<String, Refusal> {
    let mut errors = FieldErrors::default();
    for key in body.keys().filter(|k| k.as_str() != "id") {
        errors.push(key.clone(), "is not a spin field (expected id)");
    }
    let id = match body.get("id") {
        Some(Value::String(id)) => {
            check_identifier(&mut errors, "id", id);
            let longest = format!("{RECORD_PREFIX}{id}:prize");
            if longest.len() > 128 && id.len() <= 128 {
                errors.push(
                    "id",
                    format!(
                        "must be at most {} characters",
                        128 - (longest.len() - id.len())
                    ),
                );
            }
            id.clone()
        }
        _ => {
            errors.push(
                "id",
                "is required: a unique id for this spin (a retry reuses it)",
            );
            String::new()
        }
    };
    errors
        .into_result(id)
        .map_err(|errors| Refusal::Invalid("the spin is not valid".into(), errors))
}

/// Reads the participant and the budget and decides the spin's writes.
async fn decide<S: SpinStore>(
    store: &S,
    program: &Program,
    participant: &str,
    id: &str,
    number: u64,
    now: Timestamp,
) -> Result<SpinWrite, Refusal> {
    let config: &SpinConfig = &program.spin;
    let holder = store
        .spender(&program.id, participant)
        .await?
        .ok_or_else(|| super::not_enrolled(participant))?;
    if !holder.is_active() {
        return Err(Refusal::Conflict(format!(
            "participant {participant:?} is {}: only an active participant spins",
            holder.status
        )));
    }
    let periods = Periods::of(now, &program.time_zone);
    let budget_period = period_label(
        config
            .budget
            .per
            .expect("a valid spin section has a budget period"),
        &periods,
    );
    let limit_period = config.limit.map(|l| period_label(l.per, &periods));
    let (used, spins) = store
        .usage(
            &program.id,
            participant,
            &budget_period,
            limit_period.as_deref(),
        )
        .await?;
    if let Some(limit) = config.limit
        && spins >= limit.spins
    {
        return Err(Refusal::Conflict(format!(
            "no spin left: {} a {} allowed",
            limit.spins,
            limit.per.name()
        )));
    }
    let debit = holder.debit(&periods.day, config.cost).map_err(|short| {
        Refusal::Conflict(format!(
            "not enough points: {} available, {} needed",
            short.available, short.needed
        ))
    })?;
    let outcome = config.draw(number, used);
    let spin = Spin {
        id: id.to_owned(),
        participant: participant.to_owned(),
        at: now.to_string(),
        cost: config.cost,
        config_version: program.version,
        random: number,
        scale: SCALE,
        odds: config.table(),
        budget_period: budget_period.clone(),
        budget_left: config.left(used),
        outcome,
    };
    let entry = |suffix: &str, points: i64, event_type, lots| Entry {
        event_id: format!("{RECORD_PREFIX}{id}{suffix}"),
        participant,
        points,
        event_type,
        lots,
        attributes: json!({"spin": id}).as_object().cloned().unwrap_or_default(),
        note: None,
    };
    let cost =
        entry("", -config.cost, COST_TYPE, debit.lots.clone()).record(now, &program.time_zone);
    let prize = match &spin.outcome {
        Outcome::Won { prize } => Some(prize),
        _ => None,
    };
    let prize_record = prize.and_then(|prize| match prize.reward {
        Reward::Points(points) => {
            // Prize points expire like any points the program awards.
            let expires_on = program.wallet.expiry.as_ref().map(|expiry| {
                expiry_date(now.to_zoned(program.time_zone.clone()).date(), expiry).to_string()
            });
            let lots = expires_on
                .iter()
                .map(|on| Added {
                    scope: Scope::Profile,
                    name: format!("{EXPIRY_LOT}{on}"),
                    by: points,
                })
                .collect();
            let mut record =
                entry(":prize", points, PRIZE_TYPE, lots).record(now, &program.time_zone);
            record.expires_on = expires_on;
            record.attributes = Some(
                json!({"spin": id, "prize": prize.id, "name": prize.name})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            Some(record)
        }
        Reward::Item(_) => None,
    });
    let budget = prize.map(|_| BudgetWrite {
        period: budget_period,
        points: spin.prize_points(),
        points_room: config.budget.points.map(|max| max - spin.prize_points()),
        prizes_room: config.budget.prizes.map(|max| max - 1),
    });
    Ok(SpinWrite {
        limit: limit_period.zip(config.limit.map(|l| l.spins)),
        announcement: announcement(&program.id, &spin),
        spin,
        cost,
        debit,
        prize: prize_record,
        budget,
    })
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Won { .. } => "won",
        Outcome::NoPrize => "no_prize",
        Outcome::BudgetSpent { .. } => "budget_spent",
    }
}

/// A physical prize goes out for fulfilment as an outbound `spin.won` event (subscribers
/// dedupe by its id); points prizes are credited in the spin's own transaction.
fn announcement(program: &str, spin: &Spin) -> Option<Outgoing> {
    let Outcome::Won { prize } = &spin.outcome else {
        return None;
    };
    let Reward::Item(item) = &prize.reward else {
        return None;
    };
    let details = json!({"spin": spin.id, "prize": prize.id, "name": prize.name, "item": item});
    let at = spin.at.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    Some(Outgoing::new(
        program,
        &spin.participant,
        &spin.id,
        PRIZE_TYPE,
        details.as_object().expect("an object").clone(),
        at,
    ))
}

/// `GET …/participants/{participant}/spins`: newest first, each with its audit record.
pub async fn spins<S: SpinStore + StatsReader>(
    store: &S,
    program: &str,
    participant: &str,
) -> Result<Vec<Spin>, Refusal> {
    enrolled(store, program, participant).await?;
    Ok(store.spins(program, participant).await?)
}
