//! Redemption's items in the Carrot table (see docs/data-model.md):
//!
//! - `CATALOG#{program}` / `ITEM#{item}`: a catalog item; `stock` is the units left (absent:
//!   unlimited), decremented by each order's transaction on the condition it stays >= 0.
//! - `P#{program}#{participant}` / `ORDER#{order}`: an order, keyed by its idempotency key.
//!   Its ledger record `E#order:{order}` (and `E#refund:{order}` when cancelled) sits beside.
//! - `OUTBOX#{program}` / `{created ms, 13 digits}#{event id}`: an outbound event committed
//!   with its order (or a spin's physical prize) and not yet published.

use super::dynamo::{DynamoStore, EVENT, Expr, Item, corrupt, key, n, participant_pk, s};
use super::port_error;
use super::spend::Holding;
use crate::domain::catalog::{CatalogItem, Order, OrderStatus};
use crate::domain::ledger::EventRecord;
use crate::domain::wallet::Holder;
use crate::ports::PortError;
use crate::service::redeem::{
    Cancellation, CatalogPage, Outgoing, Placement, RedeemStore, Stock, Transfer,
};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::collections::HashMap;

const ITEM: &str = "ITEM#";
const ORDER: &str = "ORDER#";

fn catalog_pk(program: &str) -> String {
    format!("CATALOG#{program}")
}

fn outbox_pk(program: &str) -> String {
    format!("OUTBOX#{program}")
}

/// Outbox sort keys order by creation: milliseconds since the epoch, zero-padded.
fn outbox_time(at: Timestamp) -> String {
    format!("{:013}", at.as_millisecond().max(0))
}

fn outbox_sk(outgoing: &Outgoing) -> String {
    let at = outgoing
        .created_at
        .parse::<Timestamp>()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    format!("{}#{}", outbox_time(at), outgoing.id)
}

fn text(item: &Item, name: &str) -> Result<String, PortError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(corrupt("outbox item", format!("{name} missing"))),
    }
}

fn with_key(value: &impl Serialize, pk: String, sk: String) -> Result<Item, PortError> {
    let mut item = to_item(value).map_err(|e| PortError::Permanent(e.to_string()))?;
    item.extend(key(pk, sk));
    Ok(item)
}

/// The names and values of the catalog item's condition: still active, at the price read.
fn as_read(order: &Order) -> (HashMap<String, String>, Item) {
    let names = [
        ("#points", "points"),
        ("#active", "active"),
        ("#stock", "stock"),
    ]
    .map(|(placeholder, name)| (placeholder.to_owned(), name.to_owned()));
    let values = [
        (":price".to_owned(), n(order.unit_points)),
        (":yes".to_owned(), AttributeValue::Bool(true)),
    ];
    (names.into(), values.into())
}

fn parse<T: DeserializeOwned>(item: Item, what: &str) -> Result<T, PortError> {
    from_item(item).map_err(|e| corrupt(what, e))
}

impl DynamoStore {
    fn order_item(&self, program: &str, order: &Order) -> Result<Item, PortError> {
        with_key(
            order,
            participant_pk(program, &order.participant),
            format!("{ORDER}{}", order.order),
        )
    }

    /// An outbound event, written in the transaction of what it announces.
    pub(crate) fn outbox_put(&self, program: &str, outgoing: &Outgoing) -> TransactWriteItem {
        let mut item = key(outbox_pk(program), outbox_sk(outgoing));
        item.insert("id".into(), s(&outgoing.id));
        item.insert("kind".into(), s(&outgoing.kind));
        item.insert("body".into(), s(&outgoing.body));
        item.insert("created_at".into(), s(&outgoing.created_at));
        self.put_new(item)
    }

    fn catalog_key(program: &str, item: &str) -> Item {
        key(catalog_pk(program), format!("{ITEM}{item}"))
    }

    /// The item as the order read it: still active, at the same price, with the stock the
    /// order takes (or still unlimited).
    fn stock_item(&self, program: &str, placement: &Placement) -> TransactWriteItem {
        let order = &placement.order;
        let catalog_key = Self::catalog_key(program, &order.item);
        let condition = "#points = :price AND #active = :yes";
        match placement.stock {
            Stock::Take(units) => {
                let (names, mut values) = as_read(order);
                values.insert(":taken".into(), n(-units));
                values.insert(":units".into(), n(units));
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(catalog_key))
                    .update_expression("ADD #stock :taken")
                    .condition_expression(format!("{condition} AND #stock >= :units"))
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .expect("table, key and expression are set");
                TransactWriteItem::builder().update(update).build()
            }
            Stock::Unlimited => {
                let (names, values) = as_read(order);
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(catalog_key))
                    .condition_expression(format!("{condition} AND attribute_not_exists(#stock)"))
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .expect("table, key and condition are set");
                TransactWriteItem::builder().condition_check(check).build()
            }
        }
    }

    /// The order replaced by its new state, if it is still `from`.
    fn order_change(
        &self,
        program: &str,
        order: &Order,
        from: OrderStatus,
    ) -> Result<Put, PortError> {
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.order_item(program, order)?))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .build()
            .expect("table and item are set"))
    }
}

impl RedeemStore for DynamoStore {
    async fn put_item(
        &self,
        program: &str,
        item: &CatalogItem,
        now: Timestamp,
    ) -> Result<(), PortError> {
        let mut stored = with_key(item, catalog_pk(program), format!("{ITEM}{}", item.item))?;
        stored.insert("updated_at".into(), s(now.to_string()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(stored))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn item(&self, program: &str, item: &str) -> Result<Option<CatalogItem>, PortError> {
        self.get_item(key(catalog_pk(program), format!("{ITEM}{item}")))
            .await?
            .map(|found| parse(found, "catalog item"))
            .transpose()
    }

    async fn items(
        &self,
        program: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CatalogPage, PortError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(catalog_pk(program)))
            .expression_attribute_values(":prefix", s(ITEM))
            .set_exclusive_start_key(after.map(|item| Self::catalog_key(program, item)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(port_error)?;
        let items: Vec<CatalogItem> = output
            .items()
            .iter()
            .map(|found| parse(found.clone(), "catalog item"))
            .collect::<Result<_, _>>()?;
        let next = output
            .last_evaluated_key()
            .filter(|last| !last.is_empty())
            .and_then(|_| items.last().map(|i| i.item.clone()));
        Ok(CatalogPage { items, next })
    }

    async fn holder(&self, program: &str, participant: &str) -> Result<Option<Holder>, PortError> {
        DynamoStore::holder(self, program, participant).await
    }

    async fn record(
        &self,
        program: &str,
        participant: &str,
        event_id: &str,
    ) -> Result<Option<EventRecord>, PortError> {
        self.get_item(key(
            participant_pk(program, participant),
            format!("{EVENT}{event_id}"),
        ))
        .await?
        .map(|found| parse(found, "event record"))
        .transpose()
    }

    async fn order(
        &self,
        program: &str,
        participant: &str,
        order: &str,
    ) -> Result<Option<Order>, PortError> {
        self.get_item(key(
            participant_pk(program, participant),
            format!("{ORDER}{order}"),
        ))
        .await?
        .map(|found| parse(found, "order"))
        .transpose()
    }

    async fn orders(&self, program: &str, participant: &str) -> Result<Vec<Order>, PortError> {
        self.query_prefix(participant_pk(program, participant), ORDER)
            .await?
            .into_iter()
            .map(|found| parse(found, "order"))
            .collect()
    }

    async fn place(&self, program: &str, placement: &Placement) -> Result<(), PortError> {
        let mut items = self.debit_items(program, &placement.record, &placement.debit, &[])?;
        items.push(self.put_new(self.order_item(program, &placement.order)?));
        items.push(self.stock_item(program, placement));
        items.push(self.outbox_put(program, &placement.outgoing));
        self.commit_spend(items).await
    }

    async fn cancel(&self, program: &str, cancellation: &Cancellation) -> Result<(), PortError> {
        let order = &cancellation.order;
        let mut items = vec![
            TransactWriteItem::builder()
                .put(self.order_change(program, order, OrderStatus::Placed)?)
                .build(),
        ];
        items.extend(self.credit_items(program, &cancellation.refund, &Holding::default())?);
        if let Some(units) = cancellation.restock {
            let mut expr = Expr::default();
            expr.add("stock", n(units));
            let stock = expr.name("stock");
            // An item made unlimited meanwhile stays unlimited (the cancellation decides again).
            expr.condition(format!("attribute_exists({stock})"));
            items.push(self.update(Self::catalog_key(program, &order.item), expr));
        }
        items.push(self.outbox_put(program, &cancellation.outgoing));
        self.commit_spend(items).await
    }

    async fn fulfil(
        &self,
        program: &str,
        order: &Order,
        from: OrderStatus,
    ) -> Result<(), PortError> {
        let put = self.order_change(program, order, from)?;
        self.commit_spend(vec![TransactWriteItem::builder().put(put).build()])
            .await
    }

    async fn transfer(&self, program: &str, transfer: &Transfer) -> Result<(), PortError> {
        let mut items = self.debit_items(program, &transfer.debit_record, &transfer.debit, &[])?;
        items.extend(self.credit_items(
            program,
            &transfer.credit_record,
            &Holding {
                active: true,
                distributor: Some(&transfer.distributor),
                individual: true,
            },
        )?);
        self.commit_spend(items).await
    }

    async fn outbox(
        &self,
        program: &str,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Outgoing>, PortError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk < :before")
            .expression_attribute_values(":pk", s(outbox_pk(program)))
            .expression_attribute_values(":before", s(outbox_time(before)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(port_error)?;
        output
            .items()
            .iter()
            .map(|item| {
                Ok(Outgoing {
                    id: text(item, "id")?,
                    kind: text(item, "kind")?,
                    body: text(item, "body")?,
                    created_at: text(item, "created_at")?,
                })
            })
            .collect()
    }

    async fn sent(&self, program: &str, outgoing: &Outgoing) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(outbox_pk(program), outbox_sk(outgoing))))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }
}
