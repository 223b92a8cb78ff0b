//! Redemption: the catalog, orders and their cancellation and fulfilment, and transfers from
//! a partner account to its team.
//!
//! Every spend is one transaction keyed by its cause (`order:{key}`, `transfer:{id}`), with
//! a conditional debit that never overdraws available points (`Wallet::debit`). A spend that
//! loses a race (a concurrent spend on the same participant, a change of the item) reads
//! again and decides again, a bounded number of times. Outbound events are written in the
//! same transaction as an outbox item, published after the commit and the item deleted; the
//! hourly engagement run publishes what is left (`drain`). Delivery is at least once:
//! subscribers dedupe by the event `id`.

use crate::domain::catalog::{
    CatalogItem, Order, OrderRequest, OrderStatus, Orderer, RECEIVED, REDEEMED, REFUNDED,
    StatusChange, TRANSFERRED, TransferRequest, Transition,
};
use crate::domain::engine::Added;
use crate::domain::error::FieldError;
use crate::domain::ledger::EventRecord;
use crate::domain::period::Periods;
use crate::domain::program::Program;
use crate::domain::wallet::{Debit, Entry, Holder, Shortfall};
use crate::ports::{Outbound, PortError};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::time::Duration;

/// How many times a spend is decided and written before it gives up (503, safe to retry).
pub const SPEND_ATTEMPTS: u32 = 25;

/// The pause before attempt `attempt` (1-based) of a contended spend: exponential, capped,
/// fully jittered so concurrent spenders spread out.
pub fn retry_pause(attempt: u32) -> Duration {
    let ceiling = (10u64 << attempt.min(6)).min(400);
    Duration::from_millis(rand::random_range(1..=ceiling))
}

/// Outbox items younger than this are left to the request that wrote them.
pub const OUTBOX_GRACE: SignedDuration = SignedDuration::from_secs(60);

/// An outbound event waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The event's id, subscribers' dedupe key: `{program}:{participant}:{order}:{kind}`.
    pub id: String,
    pub kind: String,
    /// The event, JSON.
    pub body: String,
    pub created_at: String,
}

impl Outgoing {
    /// The event `kind` of `participant` about `subject` (an order or spin id), with the
    /// fields of `details` beside the envelope's.
    pub fn new(
        program: &str,
        participant: &str,
        subject: &str,
        kind: &str,
        details: serde_json::Map<String, serde_json::Value>,
        at: Timestamp,
    ) -> Self {
        let id = format!("{program}:{participant}:{subject}:{kind}");
        let mut body = json!({
            "id": id,
            "type": kind,
            "program": program,
            "participant": participant,
            "occurred_at": at.to_string(),
        });
        body.as_object_mut().expect("an object").extend(details);
        Self {
            id,
            kind: kind.to_owned(),
            body: body.to_string(),
            created_at: at.to_string(),
        }
    }

    fn of(program: &str, order: &Order, kind: &str, at: Timestamp) -> Self {
        let details = json!({"order": order});
        let details = details.as_object().expect("an object").clone();
        Self::new(program, &order.participant, &order.order, kind, details, at)
    }
}

/// Stock the order takes from the item: the condition its write carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stock {
    /// The item must still be unlimited.
    Unlimited,
    /// The item must still have at least this many units; they are taken.
    Take(i64),
}

/// Everything an order writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Placement {
    pub order: Order,
    pub record: EventRecord,
    pub debit: Debit,
    pub stock: Stock,
    pub outgoing: Outgoing,
}

/// Everything a cancellation writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Cancellation {
    pub order: Order,
    pub refund: EventRecord,
    /// Units back to the item's stock, when it still counts stock.
    pub restock: Option<i64>,
    pub outgoing: Outgoing,
}

/// Everything a transfer writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub debit_record: EventRecord,
    pub debit: Debit,
    pub credit_record: EventRecord,
    /// The distributor the receiver must still belong to.
    pub distributor: String,
}

/// A page of the catalog and the cursor of the next.
#[derive(Debug, Clone, Default)]
pub struct CatalogPage {
    pub items: Vec<CatalogItem>,
    pub next: Option<String>,
}

/// The store redemption needs (DynamoDB: `adapters::redeem_store`).
pub trait RedeemStore: Send + Sync {
    /// Stores the item's definition, replacing any earlier one (its stock too).
    fn put_item(
        &self,
        program: &str,
        item: &CatalogItem,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    fn item(
        &self,
        program: &str,
        item: &str,
    ) -> impl Future<Output = Result<Option<CatalogItem>, PortError>> + Send;
    /// Items by id, after `after`, at most `limit`.
    fn items(
        &self,
        program: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<CatalogPage, PortError>> + Send;
    fn holder(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Option<Holder>, PortError>> + Send;
    fn record(
        &self,
        program: &str,
        participant: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<EventRecord>, PortError>> + Send;
    fn order(
        &self,
        program: &str,
        participant: &str,
        order: &str,
    ) -> impl Future<Output = Result<Option<Order>, PortError>> + Send;
    /// Every order of the participant, in no particular order.
    fn orders(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<Order>, PortError>> + Send;
    fn place(
        &self,
        program: &str,
        placement: &Placement,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    fn cancel(
        &self,
        program: &str,
        cancellation: &Cancellation,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Writes the order in its new state if it is still `from`.
    fn fulfil(
        &self,
        program: &str,
        order: &Order,
        from: OrderStatus,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    fn transfer(
        &self,
        program: &str,
        transfer: &Transfer,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Outbox items written before `before`, oldest first, at most `limit`.
    fn outbox(
        &self,
        program: &str,
        before: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Outgoing>, PortError>> + Send;
    /// Deletes a published outbox item.
    fn sent(
        &self,
        program: &str,
        outgoing: &Outgoing,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    /// The idempotency key (or transfer id) was used for a different request.
    #[error("{0}")]
    KeyReused(String),
    #[error("{} points needed, {} available", .0.needed, .0.available)]
    Insufficient(Shortfall),
    #[error("{item} has {left} left")]
    OutOfStock { item: String, left: i64 },
    /// The item is not offered to this participant now.
    #[error("{0}")]
    NotOffered(String),
    /// The change is not allowed in the current state.
    #[error("{0}")]
    Refused(String),
    /// Concurrent spends kept winning: safe to retry with the same request.
    #[error("too many concurrent changes; retry")]
    Contended,
    #[error(transparent)]
    Store(#[from] PortError),
}

/// An order as answered: `created` is false when the request repeated an earlier one.
#[derive(Debug, Clone)]
pub struct Placed {
    pub order: Order,
    pub created: bool,
}

/// A transfer as answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferView {
    pub id: String,
    pub from: String,
    pub to: String,
    pub points: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub at: String,
    #[serde(skip)]
    pub created: bool,
}

/// A catalog entry for one participant: whether they can afford it now.
#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    #[serde(flatten)]
    pub item: CatalogItem,
    pub affordable: bool,
}

/// The redemption service for one request.
pub struct Redeem<'a, S, O> {
    pub store: &'a S,
    pub outbound: &'a O,
    pub program: &'a Program,
    pub now: Timestamp,
    /// Who acts (key id or `jwt:{sub}`), for the orders' audit fields.
    pub actor: &'a str,
}

fn today(program: &Program, now: Timestamp) -> String {
    Periods::of(now, &program.time_zone).day
}

/// After a failed write: when something read changed or a concurrent transaction held the
/// participant, pauses before the spend is decided again; any other failure is final.
async fn lost_race(attempt: u32, error: PortError) -> Result<(), RedeemError> {
    match error {
        PortError::ConditionFailed | PortError::Transient(_) => {
            tracing::debug!(attempt, %error, "lost a race; deciding again");
            tokio::time::sleep(retry_pause(attempt)).await;
            Ok(())
        }
        error => Err(error.into()),
    }
}

fn inverse(lots: &[Added]) -> Vec<Added> {
    lots.iter()
        .map(|lot| Added {
            by: -lot.by,
            ..lot.clone()
        })
        .collect()
}

fn attributes(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

impl<S: RedeemStore, O: Outbound> Redeem<'_, S, O> {
    fn id(&self) -> &str {
        &self.program.id
    }

    fn at(&self) -> String {
        self.now.to_string()
    }

    pub async fn put_item(&self, item: &CatalogItem) -> Result<(), RedeemError> {
        Ok(self.store.put_item(self.id(), item, self.now).await?)
    }

    /// A page of the catalog; with `participant`, only what they may order today, each
    /// with whether they can afford it.
    pub async fn catalog(
        &self,
        participant: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Value>, Option<String>), RedeemError> {
        let page = self.store.items(self.id(), after, limit).await?;
        let Some(participant) = participant else {
            let items = page.items.iter().map(|i| json!(i)).collect();
            return Ok((items, page.next));
        };
        let holder = self.holder(participant).await?;
        let today = today(self.program, self.now);
        let available = holder.wallet(&today).available;
        let orderer = Orderer {
            role: &holder.role,
            tier: holder.tier.as_deref(),
        };
        let items = page
            .items
            .into_iter()
            .filter(|item| item.unavailable(orderer, &today).is_none())
            .filter(|item| item.stock.is_none_or(|left| left > 0))
            .map(|item| {
                json!(Offer {
                    affordable: item.points <= available,
                    item,
                })
            })
            .collect();
        Ok((items, page.next))
    }

    async fn holder(&self, participant: &str) -> Result<Holder, RedeemError> {
        self.store
            .holder(self.id(), participant)
            .await?
            .ok_or_else(|| RedeemError::NotFound(format!("participant {participant}")))
    }

    /// Places an order once per idempotency key: a repeat answers the order it placed.
    pub async fn place(
        &self,
        participant: &str,
        request: &OrderRequest,
    ) -> Result<Placed, RedeemError> {
        let today = today(self.program, self.now);
        for attempt in 1..=SPEND_ATTEMPTS {
            let (existing, holder, item) = tokio::try_join!(
                self.store
                    .order(self.id(), participant, &request.idempotency_key),
                self.store.holder(self.id(), participant),
                self.store.item(self.id(), &request.item),
            )?;
            if let Some(order) = existing {
                return if request.placed(&order) {
                    Ok(Placed {
                        order,
                        created: false,
                    })
                } else {
                    Err(RedeemError::KeyReused(format!(
                        "idempotency key {} placed a different order (item {}, quantity {})",
                        order.order, order.item, order.quantity
                    )))
                };
            }
            let holder = holder
                .ok_or_else(|| RedeemError::NotFound(format!("participant {participant}")))?;
            if !holder.is_active() {
                return Err(RedeemError::Refused(format!(
                    "participant {participant} is {}: only active participants redeem",
                    holder.status
                )));
            }
            let item = item.ok_or_else(|| {
                RedeemError::Invalid(vec![FieldError::new(
                    "item",
                    format!("{} is not in the catalog", request.item),
                )])
            })?;
            let orderer = Orderer {
                role: &holder.role,
                tier: holder.tier.as_deref(),
            };
            if let Some(why) = item.unavailable(orderer, &today) {
                return Err(RedeemError::NotOffered(why));
            }
            let order = request
                .order(participant, &item, &self.at(), self.actor)
                .map_err(RedeemError::Invalid)?;
            let stock = match item.stock {
                None => Stock::Unlimited,
                Some(left) if left < order.quantity => {
                    return Err(RedeemError::OutOfStock {
                        item: item.item,
                        left,
                    });
                }
                Some(_) => Stock::Take(order.quantity),
            };
            let debit = holder
                .debit(&today, order.points)
                .map_err(RedeemError::Insufficient)?;
            let record = Entry {
                event_id: format!("order:{}", order.order),
                participant,
                points: -order.points,
                event_type: REDEEMED,
                lots: debit.lots.clone(),
                attributes: attributes(&[
                    ("order", json!(order.order)),
                    ("item", json!(order.item)),
                    ("quantity", json!(order.quantity)),
                ]),
                note: Some(format!("{} × {}", order.quantity, order.title)),
            }
            .record(self.now, &self.program.time_zone);
            let placement = Placement {
                outgoing: Outgoing::of(self.id(), &order, "order.placed", self.now),
                order,
                record,
                debit,
                stock,
            };
            match self.store.place(self.id(), &placement).await {
                Ok(()) => {
                    self.publish(&placement.outgoing).await;
                    return Ok(Placed {
                        order: placement.order,
                        created: true,
                    });
                }
                Err(error) => lost_race(attempt, error).await?,
            }
        }
        Err(RedeemError::Contended)
    }

    /// The participant's orders, newest first, after the order `after` (a cursor from the
    /// previous page), at most `limit`.
    pub async fn orders(
        &self,
        participant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<String>), RedeemError> {
        let mut orders = self.store.orders(self.id(), participant).await?;
        if orders.is_empty() {
            self.holder(participant).await?;
        }
        orders.sort_by(|a, b| (&b.placed_at, &b.order).cmp(&(&a.placed_at, &a.order)));
        let start = match after {
            None => 0,
            Some(cursor) => {
                orders
                    .iter()
                    .position(|o| o.order == cursor)
                    .ok_or_else(|| {
                        RedeemError::Invalid(vec![FieldError::new(
                            "after",
                            "is not a cursor from a previous page",
                        )])
                    })?
                    + 1
            }
        };
        let page: Vec<Order> = orders.into_iter().skip(start).take(limit + 1).collect();
        let next = (page.len() > limit).then(|| page[limit - 1].order.clone());
        Ok((page.into_iter().take(limit).collect(), next))
    }

    /// One order of the participant.
    pub async fn order(&self, participant: &str, order: &str) -> Result<Order, RedeemError> {
        self.store
            .order(self.id(), participant, order)
            .await?
            .ok_or_else(|| RedeemError::NotFound(format!("order {order}")))
    }

    /// Cancels a placed order once: the points back (the same expiry lots), the stock back.
    pub async fn cancel(&self, participant: &str, order: &str) -> Result<Order, RedeemError> {
        for attempt in 1..=SPEND_ATTEMPTS {
            let current = self.order(participant, order).await?;
            let cancelled = match StatusChange::cancel().apply(&current, &self.at(), self.actor) {
                Transition::Already => return Ok(current),
                Transition::Refused(why) => return Err(RedeemError::Refused(why)),
                Transition::To { order, .. } => order,
            };
            let debit_id = format!("order:{order}");
            let (debit, item) = tokio::try_join!(
                self.store.record(self.id(), participant, &debit_id),
                self.store.item(self.id(), &current.item),
            )?;
            let debit = debit.ok_or_else(|| {
                PortError::Permanent(format!("order {order} has no ledger record {debit_id}"))
            })?;
            let refund = Entry {
                event_id: format!("refund:{order}"),
                participant,
                points: current.points,
                event_type: REFUNDED,
                lots: inverse(&debit.adds),
                attributes: attributes(&[("order", json!(order))]),
                note: Some(format!("order {order} cancelled")),
            }
            .record(self.now, &self.program.time_zone);
            let cancellation = Cancellation {
                outgoing: Outgoing::of(self.id(), &cancelled, "order.cancelled", self.now),
                restock: item.and_then(|i| i.stock).map(|_| current.quantity),
                order: *cancelled,
                refund,
            };
            match self.store.cancel(self.id(), &cancellation).await {
                Ok(()) => {
                    self.publish(&cancellation.outgoing).await;
                    return Ok(cancellation.order);
                }
                Err(error) => lost_race(attempt, error).await?,
            }
        }
        Err(RedeemError::Contended)
    }

    /// Records shipping or delivery.
    pub async fn fulfil(
        &self,
        participant: &str,
        order: &str,
        change: &StatusChange,
    ) -> Result<Order, RedeemError> {
        for attempt in 1..=SPEND_ATTEMPTS {
            let current = self.order(participant, order).await?;
            match change.apply(&current, &self.at(), self.actor) {
                Transition::Already => return Ok(current),
                Transition::Refused(why) => return Err(RedeemError::Refused(why)),
                Transition::To { order, from } => {
                    match self.store.fulfil(self.id(), &order, from).await {
                        Ok(()) => return Ok(*order),
                        Err(error) => lost_race(attempt, error).await?,
                    }
                }
            }
        }
        Err(RedeemError::Contended)
    }

    /// Moves points from a partner account to an active member of its distributor, once per
    /// transfer id. The points keep their expiry dates.
    pub async fn transfer(
        &self,
        partner: &str,
        request: &TransferRequest,
    ) -> Result<TransferView, RedeemError> {
        if request.to == partner {
            return Err(RedeemError::Invalid(vec![FieldError::new(
                "to",
                "must be another participant than the partner account",
            )]));
        }
        let today = today(self.program, self.now);
        let event_id = format!("transfer:{}", request.id);
        let expected = request.attributes(partner);
        for attempt in 1..=SPEND_ATTEMPTS {
            let (existing, from, to) = tokio::try_join!(
                self.store.record(self.id(), partner, &event_id),
                self.store.holder(self.id(), partner),
                self.store.holder(self.id(), &request.to),
            )?;
            if let Some(record) = existing {
                let same = record.attributes.as_ref() == Some(&expected)
                    && record.points == -request.points
                    && record.note == request.note;
                return if same {
                    Ok(TransferView {
                        id: request.id.clone(),
                        from: partner.to_owned(),
                        to: request.to.clone(),
                        points: request.points,
                        note: record.note,
                        at: record.occurred_at.unwrap_or_default(),
                        created: false,
                    })
                } else {
                    Err(RedeemError::KeyReused(format!(
                        "transfer {} moved {} points with different details",
                        request.id, -record.points
                    )))
                };
            }
            let from =
                from.ok_or_else(|| RedeemError::NotFound(format!("participant {partner}")))?;
            if !from.is_partner() {
                return Err(RedeemError::Refused(format!(
                    "{partner} is not a partner account: only partner accounts transfer points"
                )));
            }
            if !from.is_active() {
                return Err(RedeemError::Refused(format!(
                    "{partner} is {}: only active accounts transfer points",
                    from.status
                )));
            }
            let to = to.ok_or_else(|| {
                RedeemError::Invalid(vec![FieldError::new(
                    "to",
                    format!("{} is not enrolled in the program", request.to),
                )])
            })?;
            if to.distributor != from.distributor {
                return Err(RedeemError::Refused(format!(
                    "{} belongs to another distributor than {partner}",
                    request.to
                )));
            }
            if !to.is_active() || to.is_partner() {
                return Err(RedeemError::Refused(format!(
                    "{} is not an active member of the team",
                    request.to
                )));
            }
            let debit = from
                .debit(&today, request.points)
                .map_err(RedeemError::Insufficient)?;
            let entry = |participant, points, event_type, lots| Entry {
                event_id: event_id.clone(),
                participant,
                points,
                event_type,
                lots,
                attributes: expected.clone(),
                note: request.note.clone(),
            };
            let transfer = Transfer {
                debit_record: entry(partner, -request.points, TRANSFERRED, debit.lots.clone())
                    .record(self.now, &self.program.time_zone),
                credit_record: entry(&request.to, request.points, RECEIVED, inverse(&debit.lots))
                    .record(self.now, &self.program.time_zone),
                debit,
                distributor: from.distributor.clone(),
            };
            match self.store.transfer(self.id(), &transfer).await {
                Ok(()) => {
                    return Ok(TransferView {
                        id: request.id.clone(),
                        from: partner.to_owned(),
                        to: request.to.clone(),
                        points: request.points,
                        note: request.note.clone(),
                        at: self.at(),
                        created: true,
                    });
                }
                Err(error) => lost_race(attempt, error).await?,
            }
        }
        Err(RedeemError::Contended)
    }

    /// Publishes an event just committed and deletes its outbox item. A failure is left to
    /// the drain: the order stands either way.
    async fn publish(&self, outgoing: &Outgoing) {
        publish_committed(self.store, self.outbound, self.id(), outgoing).await
    }
}

/// Publishes an outbound event its transaction just committed to the outbox, and deletes its
/// outbox item; a failure leaves it to the hourly drain.
pub async fn publish_committed<S: RedeemStore, O: Outbound>(
    store: &S,
    outbound: &O,
    program: &str,
    outgoing: &Outgoing,
) {
    if let Err(error) = send(store, outbound, program, outgoing).await {
        tracing::warn!(id = outgoing.id, %error, "outbound event left to the outbox drain");
    }
}

async fn send<S: RedeemStore, O: Outbound>(
    store: &S,
    outbound: &O,
    program: &str,
    outgoing: &Outgoing,
) -> Result<(), PortError> {
    outbound.publish(&outgoing.kind, &outgoing.body).await?;
    store.sent(program, outgoing).await
}

/// Outbox items published per drain (the next hour takes the rest).
const DRAIN_LIMIT: usize = 1_000;

/// Publishes the program's outbound events whose request did not (older than
/// `OUTBOX_GRACE`): returns how many were published. Stops at the first failure.
pub async fn drain<S: RedeemStore, O: Outbound>(
    store: &S,
    outbound: &O,
    program: &str,
    now: Timestamp,
) -> Result<usize, PortError> {
    let before = now.checked_sub(OUTBOX_GRACE).unwrap_or(now);
    let waiting = store.outbox(program, before, DRAIN_LIMIT).await?;
    for outgoing in &waiting {
        send(store, outbound, program, outgoing).await?;
    }
    Ok(waiting.len())
}
