//! Redemption: the catalog a program offers, orders placed against it, their fulfilment, and
//! transfers from a partner account to its team. Validation and the rules of each change
//! live here; spending points is `Wallet::debit`.

use super::error::{FieldError, FieldErrors, check_identifier};
use super::money::json_kind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most units of one item in one order.
pub const MAX_QUANTITY: i64 = 100;
const TEXT_LIMIT: usize = 2_000;
/// The ledger entry types of spends and credits.
pub const REDEEMED: &str = "points.redeemed";
pub const REFUNDED: &str = "points.refunded";
pub const TRANSFERRED: &str = "points.transferred";
pub const RECEIVED: &str = "points.received";

/// How an item reaches the participant: a `physical` item is shipped and needs an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    Physical,
    GiftCard,
    Digital,
    Experience,
}

const FULFILMENTS: [&str; 4] = ["physical", "gift_card", "digital", "experience"];

/// One item of a program's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub item: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The cost of one unit, in points.
    pub points: i64,
    /// Units left; `None` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    /// Who may order it: any role (tier) when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<String>,
    /// First and last day it can be ordered (program time zone), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_until: Option<String>,
    pub active: bool,
    pub fulfilment: Fulfilment,
}

const ITEM_FIELDS: [&str; 10] = [
    "title",
    "description",
    "points",
    "stock",
    "roles",
    "tiers",
    "available_from",
    "available_until",
    "active",
    "fulfilment",
];

/// Who is asking for an item, as far as availability goes.
#[derive(Debug, Clone, Copy)]
pub struct Orderer<'a> {
    pub role: &'a str,
    pub tier: Option<&'a str>,
}

impl CatalogItem {
    /// Validates a catalog item definition (`PUT …/catalog/{item}`), every error at once.
    pub fn from_json(item: &str, body: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        check_identifier(&mut errors, "item", item);
        unknown_fields(&mut errors, body, &ITEM_FIELDS);
        let title = text(&mut errors, body, "title", true);
        let description = text(&mut errors, body, "description", false);
        let points = integer(&mut errors, body, "points", 1..=10_000_000, true);
        let stock = integer(&mut errors, body, "stock", 0..=10_000_000, false);
        let roles = names(&mut errors, body, "roles");
        let tiers = names(&mut errors, body, "tiers");
        let available_from = date(&mut errors, body, "available_from");
        let available_until = date(&mut errors, body, "available_until");
        if let (Some(from), Some(until)) = (&available_from, &available_until)
            && from > until
        {
            errors.push("available_until", "must not be before available_from");
        }
        let active = match body.get("active") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                errors.push(
                    "active",
                    format!("must be true or false, got {}", json_kind(other)),
                );
                true
            }
        };
        let fulfilment = match body.get("fulfilment") {
            Some(value @ Value::String(kind)) if FULFILMENTS.contains(&kind.as_str()) => {
                serde_json::from_value(value.clone()).ok()
            }
            None => {
                errors.push("fulfilment", format!("is required, one of {FULFILMENTS:?}"));
                None
            }
            Some(other) => {
                errors.push(
                    "fulfilment",
                    format!("must be one of {FULFILMENTS:?}, got {other}"),
                );
                None
            }
        };
        match (title, points, fulfilment) {
            (Some(title), Some(points), Some(fulfilment)) if errors.is_empty() => Ok(Self {
                item: item.to_owned(),
                title,
                description,
                points,
                stock,
                roles,
                tiers,
                available_from,
                available_until,
                active,
                fulfilment,
            }),
            _ => Err(errors.0),
        }
    }

    /// Why `orderer` may not order the item on `today` (`2026-11-22`), if they may not.
    pub fn unavailable(&self, orderer: Orderer, today: &str) -> Option<String> {
        if !self.active {
            return Some(format!("{} is not offered at the moment", self.item));
        }
        if let Some(from) = &self.available_from
            && today < from.as_str()
        {
            return Some(format!("{} can be ordered from {from}", self.item));
        }
        if let Some(until) = &self.available_until
            && today > until.as_str()
        {
            return Some(format!("{} could be ordered until {until}", self.item));
        }
        if !self.roles.is_empty() && !self.roles.iter().any(|r| r == orderer.role) {
            return Some(format!("{} is offered to {:?} only", self.item, self.roles));
        }
        if !self.tiers.is_empty()
            && !orderer
                .tier
                .is_some_and(|tier| self.tiers.iter().any(|t| t == tier))
        {
            return Some(format!(
                "{} is offered to the tiers {:?} only",
                self.item, self.tiers
            ));
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// An order for `quantity` units of one item, keyed by the caller's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The idempotency key the order was placed with: one order per key and participant.
    pub order: String,
    pub participant: String,
    pub item: String,
    pub title: String,
    pub fulfilment: Fulfilment,
    pub quantity: i64,
    /// Points per unit when placed, and the total debited.
    pub unit_points: i64,
    pub points: i64,
    pub status: OrderStatus,
    /// Where a physical item goes: personal data, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<String>,
    pub placed_at: String,
    pub updated_at: String,
    /// Who placed the order, and who last changed it (key id or `jwt:{sub}`).
    pub placed_by: String,
    pub updated_by: String,
}

/// `POST …/orders`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRequest {
    pub idempotency_key: String,
    pub item: String,
    pub quantity: i64,
    pub shipping: Option<Map<String, Value>>,
}

const ORDER_FIELDS: [&str; 4] = ["idempotency_key", "item", "quantity", "shipping"];
const SHIPPING_FIELDS: [&str; 8] = [
    "name",
    "company",
    "line1",
    "line2",
    "city",
    "region",
    "postal_code",
    "country",
];
const SHIPPING_REQUIRED: [&str; 5] = ["name", "line1", "city", "postal_code", "country"];

impl OrderRequest {
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        unknown_fields(&mut errors, body, &ORDER_FIELDS);
        let key = identifier(&mut errors, body, "idempotency_key");
        let item = identifier(&mut errors, body, "item");
        let quantity = integer(&mut errors, body, "quantity", 1..=MAX_QUANTITY, false);
        let shipping = match body.get("shipping") {
            None | Some(Value::Null) => None,
            Some(Value::Object(address)) => {
                shipping_address(&mut errors, address);
                Some(address.clone())
            }
            Some(other) => {
                errors.push(
                    "shipping",
                    format!("must be an object, got {}", json_kind(other)),
                );
                None
            }
        };
        match (key, item) {
            (Some(idempotency_key), Some(item)) if errors.is_empty() => Ok(Self {
                idempotency_key,
                item,
                quantity: quantity.unwrap_or(1),
                shipping,
            }),
            _ => Err(errors.0),
        }
    }

    /// Whether an order is the one this request placed (a retry), not a different request
    /// reusing its key.
    pub fn placed(&self, order: &Order) -> bool {
        order.item == self.item
            && order.quantity == self.quantity
            && order.shipping == self.shipping
    }

    /// The order it places for `participant` from `item` as read. A physical item needs a
    /// shipping address; nothing else takes one.
    pub fn order(
        &self,
        participant: &str,
        item: &CatalogItem,
        at: &str,
        by: &str,
    ) -> Result<Order, Vec<FieldError>> {
        match (item.fulfilment, &self.shipping) {
            (Fulfilment::Physical, None) => {
                return Err(vec![FieldError::new(
                    "shipping",
                    format!("is required: {} is shipped", item.item),
                )]);
            }
            (Fulfilment::Physical, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(vec![FieldError::new(
                    "shipping",
                    format!("must be left out: {} is not shipped", item.item),
                )]);
            }
        }
        Ok(Order {
            order: self.idempotency_key.clone(),
            participant: participant.to_owned(),
            item: item.item.clone(),
            title: item.title.clone(),
            fulfilment: item.fulfilment,
            quantity: self.quantity,
            unit_points: item.points,
            points: item.points * self.quantity,
            status: OrderStatus::Placed,
            shipping: self.shipping.clone(),
            carrier: None,
            tracking: None,
            placed_at: at.to_owned(),
            updated_at: at.to_owned(),
            placed_by: by.to_owned(),
            updated_by: by.to_owned(),
        })
    }
}

fn shipping_address(errors: &mut FieldErrors, address: &Map<String, Value>) {
    for key in address.keys() {
        if !SHIPPING_FIELDS.contains(&key.as_str()) {
            errors.push(
                format!("shipping.{key}"),
                format!("is not an address field (expected one of {SHIPPING_FIELDS:?})"),
            );
        }
    }
    for field in SHIPPING_FIELDS {
        match address.get(field) {
            None if SHIPPING_REQUIRED.contains(&field) => {
                errors.push(format!("shipping.{field}"), "is required")
            }
            None => {}
            Some(Value::String(s))
                if field == "country"
                    && !(s.len() == 2 && s.chars().all(|c| c.is_ascii_uppercase())) =>
            {
                errors.push(
                    "shipping.country",
                    "must be an ISO 3166-1 alpha-2 code like SE",
                );
            }
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => {}
            Some(_) => errors.push(
                format!("shipping.{field}"),
                "must be a non-empty string of at most 200 characters",
            ),
        }
    }
}

/// A change of an order's status (`PUT …/orders/{order}/fulfilment`, or a cancellation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub carrier: Option<String>,
    pub tracking: Option<String>,
}

/// What a status change does to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The order is already so (a retry): nothing to write.
    Already,
    /// Write the order in its new state, on the condition it is still in `from`.
    To {
        order: Box<Order>,
        from: OrderStatus,
    },
    /// Not allowed from the order's status; the reason.
    Refused(String),
}

impl StatusChange {
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        unknown_fields(&mut errors, body, &["status", "carrier", "tracking"]);
        let status = match body.get("status").and_then(Value::as_str) {
            Some("shipped") => Some(OrderStatus::Shipped),
            Some("delivered") => Some(OrderStatus::Delivered),
            _ => {
                errors.push("status", "is required: \"shipped\" or \"delivered\"");
                None
            }
        };
        let carrier = text(&mut errors, body, "carrier", false);
        let tracking = text(&mut errors, body, "tracking", false);
        match status {
            Some(status) if errors.is_empty() => Ok(Self {
                status,
                carrier,
                tracking,
            }),
            _ => Err(errors.0),
        }
    }

    pub fn cancel() -> Self {
        Self {
            status: OrderStatus::Cancelled,
            carrier: None,
            tracking: None,
        }
    }

    /// placed → shipped → delivered, or placed → delivered (nothing to ship); placed →
    /// cancelled. A cancelled order is never fulfilled, a shipped one never cancelled.
    pub fn apply(&self, order: &Order, at: &str, by: &str) -> Transition {
        use OrderStatus::*;
        let tracking_same = self.carrier.is_none() && self.tracking.is_none()
            || (self.carrier == order.carrier && self.tracking == order.tracking);
        if order.status == self.status && tracking_same {
            return Transition::Already;
        }
        let allowed = matches!(
            (order.status, self.status),
            (Placed, Shipped | Delivered | Cancelled) | (Shipped, Shipped | Delivered)
        );
        if !allowed {
            return Transition::Refused(format!(
                "order {} is {}: it cannot be {}",
                order.order,
                order.status.as_str(),
                self.status.as_str()
            ));
        }
        let mut changed = order.clone();
        changed.status = self.status;
        if self.carrier.is_some() {
            changed.carrier = self.carrier.clone();
        }
        if self.tracking.is_some() {
            changed.tracking = self.tracking.clone();
        }
        changed.updated_at = at.to_owned();
        changed.updated_by = by.to_owned();
        Transition::To {
            order: Box::new(changed),
            from: order.status,
        }
    }
}

/// `POST …/participants/{partner}/transfers`: points from a partner account to a member of
/// its team, once per `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub id: String,
    pub to: String,
    pub points: i64,
    pub note: Option<String>,
}

impl TransferRequest {
    pub fn from_json(body: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        unknown_fields(&mut errors, body, &["id", "to", "points", "note"]);
        let id = identifier(&mut errors, body, "id");
        let to = identifier(&mut errors, body, "to");
        let points = integer(&mut errors, body, "points", 1..=10_000_000, true);
        let note = text(&mut errors, body, "note", false);
        match (id, to, points) {
            (Some(id), Some(to), Some(points)) if errors.is_empty() => Ok(Self {
                id,
                to,
                points,
                note,
            }),
            _ => Err(errors.0),
        }
    }

    /// The ledger entry attributes of both sides; a retry must match them.
    pub fn attributes(&self, from: &str) -> Map<String, Value> {
        let mut attributes = Map::new();
        attributes.insert("transfer".into(), Value::from(self.id.clone()));
        attributes.insert("from".into(), Value::from(from));
        attributes.insert("to".into(), Value::from(self.to.clone()));
        attributes
    }
}

fn unknown_fields(errors: &mut FieldErrors, body: &Map<String, Value>, known: &[&str]) {
    for key in body.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(
            key.clone(),
            format!("is not a field here (expected {known:?})"),
        );
    }
}

fn text(
    errors: &mut FieldErrors,
    body: &Map<String, Value>,
    field: &str,
    required: bool,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) if required => {
            errors.push(field, "is required");
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= TEXT_LIMIT => Some(s.clone()),
        Some(_) => {
            errors.push(
                field,
                format!("must be a non-empty string of at most {TEXT_LIMIT} characters"),
            );
            None
        }
    }
}

fn identifier(errors: &mut FieldErrors, body: &Map<String, Value>, field: &str) -> Option<String> {
    match body.get(field) {
        Some(Value::String(s)) => {
            let before = errors.0.len();
            check_identifier(errors, field, s);
            (errors.0.len() == before).then(|| s.clone())
        }
        None => {
            errors.push(field, "is required");
            None
        }
        Some(other) => {
            errors.push(field, format!("must be a string, got {}", json_kind(other)));
            None
        }
    }
}

fn integer(
    errors: &mut FieldErrors,
    body: &Map<String, Value>,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    required: bool,
) -> Option<i64> {
    match body.get(field) {
        None | Some(Value::Null) => {
            if required {
                errors.push(field, "is required");
            }
            None
        }
        Some(value) => match value.as_i64().filter(|n| range.contains(n)) {
            Some(n) => Some(n),
            None => {
                errors.push(
                    field,
                    format!(
                        "must be a whole number from {} to {}, got {value}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        },
    }
}

fn names(errors: &mut FieldErrors, body: &Map<String, Value>, field: &str) -> Vec<String> {
    match body.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => {
            let mut names = Vec::new();
            for (i, value) in values.iter().enumerate() {
                match value.as_str().filter(|s| !s.is_empty()) {
                    Some(name) => names.push(name.to_owned()),
                    None => errors.push(format!("{field}[{i}]"), "must be a non-empty string"),
                }
            }
            names
        }
        Some(other) => {
            errors.push(
                field,
                format!("must be a list of names, got {}", json_kind(other)),
            );
            Vec::new()
        }
    }
}

fn date(errors: &mut FieldErrors, body: &Map<String, Value>, field: &str) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok() => {
            Some(s.clone())
        }
        Some(other) => {
            errors.push(
                field,
                format!("must be a date like 2026-12-31, got {other}"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn mug() -> CatalogItem {
        CatalogItem::from_json(
            "mug",
            &object(
                json!({"title": "Mug", "points": 300, "stock": 5, "roles": ["seller"],
                "tiers": ["gold"], "available_from": "2026-11-01", "available_until": "2026-12-31",
                "fulfilment": "physical"}),
            ),
        )
        .unwrap()
    }

    #[test]
    fn a_definition_reports_every_field_at_fault() {
        let errors = CatalogItem::from_json(
            "mug",
            &object(
                json!({"title": "", "points": 0, "stock": -1, "colour": "red",
                "available_from": "2026-12-31", "available_until": "2026-11-01",
                "fulfilment": "drone"}),
            ),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for field in [
            "title",
            "points",
            "stock",
            "colour",
            "available_until",
            "fulfilment",
        ] {
            assert!(fields.contains(&field), "{field} missing from {fields:?}");
        }
        assert!(mug().active, "active unless said otherwise");
    }

    #[test]
    fn availability_follows_role_tier_and_dates() {
        let item = mug();
        let gold_seller = Orderer {
            role: "seller",
            tier: Some("gold"),
        };
        assert_eq!(item.unavailable(gold_seller, "2026-11-22"), None);
        assert_eq!(item.unavailable(gold_seller, "2026-12-31"), None);
        assert!(item.unavailable(gold_seller, "2027-01-01").is_some());
        assert!(item.unavailable(gold_seller, "2026-10-31").is_some());
        let untiered = Orderer {
            role: "seller",
            tier: None,
        };
        assert!(item.unavailable(untiered, "2026-11-22").is_some());
        let manager = Orderer {
            role: "manager",
            tier: Some("gold"),
        };
        assert!(item.unavailable(manager, "2026-11-22").is_some());
    }

    #[test]
    fn a_physical_item_needs_an_address_and_others_take_none() {
        let request = OrderRequest::from_json(&object(json!({
            "idempotency_key": "k-1", "item": "mug", "quantity": 2
        })))
        .unwrap();
        let errors = request.order("rep-1", &mug(), "t", "key").unwrap_err();
        assert_eq!(errors[0].field, "shipping");
        let errors = OrderRequest::from_json(&object(json!({
            "idempotency_key": "k 1", "item": "mug", "quantity": 101,
            "shipping": {"name": "A", "line1": "Street 1", "city": "Lund", "country": "se"}
        })))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "idempotency_key",
                "quantity",
                "shipping.postal_code",
                "shipping.country"
            ]
        );
    }

    #[test]
    fn a_retry_is_told_from_a_reused_key() {
        let shipping = json!({"name": "A", "line1": "Street 1", "city": "Lund",
            "postal_code": "22100", "country": "SE"});
        let request = OrderRequest::from_json(&object(json!({
            "idempotency_key": "k-1", "item": "mug", "quantity": 2, "shipping": shipping
        })))
        .unwrap();
        let order = request.order("rep-1", &mug(), "t", "key").unwrap();
        assert_eq!(order.points, 600);
        assert!(request.placed(&order));
        let other = OrderRequest {
            quantity: 1,
            ..request
        };
        assert!(!other.placed(&order));
    }

    #[test]
    fn fulfilment_moves_forward_only_and_cancelled_orders_stay_cancelled() {
        let shipping = json!({"name": "A", "line1": "Street 1", "city": "Lund",
            "postal_code": "22100", "country": "SE"});
        let request = OrderRequest::from_json(&object(json!({
            "idempotency_key": "k-1", "item": "mug", "shipping": shipping
        })))
        .unwrap();
        let placed = request.order("rep-1", &mug(), "t0", "key").unwrap();
        let shipped = StatusChange {
            status: OrderStatus::Shipped,
            carrier: Some("PostNord".into()),
            tracking: Some("PN123".into()),
        };
        let Transition::To { order: sent, from } = shipped.apply(&placed, "t1", "admin") else {
            panic!("placed orders can be shipped")
        };
        assert_eq!(
            (from, sent.tracking.as_deref()),
            (OrderStatus::Placed, Some("PN123"))
        );
        assert_eq!(shipped.apply(&sent, "t2", "admin"), Transition::Already);
        assert!(matches!(
            StatusChange::cancel().apply(&sent, "t2", "rep"),
            Transition::Refused(_)
        ));
        let Transition::To {
            order: cancelled, ..
        } = StatusChange::cancel().apply(&placed, "t1", "rep")
        else {
            panic!("placed orders can be cancelled")
        };
        assert_eq!(
            StatusChange::cancel().apply(&cancelled, "t2", "rep"),
            Transition::Already
        );
        assert!(matches!(
            shipped.apply(&cancelled, "t2", "admin"),
            Transition::Refused(_)
        ));
    }
}
