//! Spending and crediting points in DynamoDB: the one mechanism behind orders, refunds,
//! transfers and spins. The API, for a feature store that adds its own items:
//!
//! - [`DynamoStore::holder`]: one consistent read of the participant's profile item: status,
//!   who they are (role, tier, distributor, account kind), balance and wallet lots. Decide
//!   with `holder.debit(today, points)` (`Wallet::debit`).
//! - [`DynamoStore::debit_items`]: the ledger record (put only if new: the record's id is
//!   the spend's cause, so a retry writes nothing) and the profile update `balance -=
//!   points` on the conditions `balance >= floor`, status `active`, and each expiry lot still
//!   holding what the spend takes from it. The record's `adds` must be `debit.lots`. Credits
//!   of the same participant in the same transaction (a prize) go in its `credits`.
//! - [`DynamoStore::credit_items`]: the same for a credit (`record.points > 0`, its `adds` the
//!   lots it gives back or passes on); the participant must exist, `holding` adds more
//!   conditions on the profile (e.g. the same distributor).
//!
//! Put the items in one transaction with the feature's own items and commit with
//! [`DynamoStore::commit_spend`]. `PortError::ConditionFailed` means something read has
//! changed (or the record exists already): read again and decide again.
//! `PortError::Transient` includes a conflict with a concurrent transaction on the same
//! participant: retry after a jittered pause, a bounded number of times
//! (`service::redeem::{retry_pause, SPEND_ATTEMPTS}`).

use super::dynamo::{
    DynamoStore, Expr, Item, PROFILE, corrupt, key, n, numbers, participant_pk, s,
};
use crate::domain::ledger::EventRecord;
use crate::domain::wallet::{Debit, Holder};
use crate::ports::PortError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use std::collections::BTreeMap;

/// Conditions a credit puts on the receiving profile.
#[derive(Debug, Clone, Default)]
pub struct Holding<'a> {
    /// The receiver must be active.
    pub active: bool,
    /// The receiver must belong to this distributor.
    pub distributor: Option<&'a str>,
    /// The receiver must not be a partner account.
    pub individual: bool,
}

impl DynamoStore {
    /// The participant's profile item, strongly consistent; `None` when not enrolled.
    pub(crate) async fn holder(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Option<Holder>, PortError> {
        let Some(item) = self
            .get_item(self.profile_key(program, participant))
            .await?
        else {
            return Ok(None);
        };
        let mut holder: Holder = from_item(item.clone()).map_err(|e| corrupt("participant", e))?;
        holder.counters = numbers(&item);
        Ok(Some(holder))
    }

    /// The record and profile update of a spend (see the module documentation). `credits`
    /// are records of the same participant credited in the same transaction (a spin's
    /// prize): a transaction updates an item once, so their points and lots are netted into
    /// the one profile update. The conditions hold on the profile as it was before.
    pub(crate) fn debit_items(
        &self,
        program: &str,
        record: &EventRecord,
        debit: &Debit,
        credits: &[&EventRecord],
    ) -> Result<Vec<TransactWriteItem>, PortError> {
        debug_assert_eq!(record.points, -debit.points);
        debug_assert_eq!(record.adds, debit.lots);
        let mut profile = Expr::default();
        let credited: i64 = credits.iter().map(|c| c.points).sum();
        profile.add("balance", n(credited - debit.points));
        let (balance, floor) = (profile.name("balance"), profile.value(n(debit.floor)));
        profile.condition(format!("{balance} >= {floor}"));
        let (status, active) = (profile.name("status"), profile.value(s("active")));
        profile.condition(format!("{status} = {active}"));
        let mut lots: BTreeMap<&str, i64> = BTreeMap::new();
        for lot in debit
            .lots
            .iter()
            .chain(credits.iter().flat_map(|c| &c.adds))
        {
            *lots.entry(&lot.name).or_default() += lot.by;
        }
        for (lot, by) in lots {
            profile.add(lot, n(by));
        }
        for lot in &debit.lots {
            let (name, held) = (profile.name(&lot.name), profile.value(n(-lot.by)));
            profile.condition(format!("{name} >= {held}"));
        }
        let mut items = vec![self.put_new(self.record_item(program, record)?)];
        for credit in credits {
            debug_assert_eq!(credit.participant, record.participant);
            items.push(self.put_new(self.record_item(program, credit)?));
        }
        items.push(self.update(self.profile_key(program, &record.participant), profile));
        Ok(items)
    }

    /// The record and profile update of a credit (see the module documentation).
    pub(crate) fn credit_items(
        &self,
        program: &str,
        record: &EventRecord,
        holding: &Holding,
    ) -> Result<Vec<TransactWriteItem>, PortError> {
        let mut profile = Expr::default();
        profile.add("balance", n(record.points));
        for lot in &record.adds {
            profile.add(&lot.name, n(lot.by));
        }
        // Never create a profile: the participant must be enrolled.
        let pk = profile.name("pk");
        profile.condition(format!("attribute_exists({pk})"));
        if holding.active {
            let (status, active) = (profile.name("status"), profile.value(s("active")));
            profile.condition(format!("{status} = {active}"));
        }
        if let Some(distributor) = holding.distributor {
            let (name, value) = (profile.name("distributor"), profile.value(s(distributor)));
            profile.condition(format!("{name} = {value}"));
        }
        if holding.individual {
            let (account, partner) = (profile.name("account"), profile.value(s("partner")));
            profile.condition(format!(
                "(attribute_not_exists({account}) OR {account} <> {partner})"
            ));
        }
        Ok(vec![
            self.put_new(self.record_item(program, record)?),
            self.update(self.profile_key(program, &record.participant), profile),
        ])
    }

    /// Writes a spend's items in one transaction.
    pub(crate) async fn commit_spend(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), PortError> {
        self.transact(items).await.map(|_| ())
    }

    fn profile_key(&self, program: &str, participant: &str) -> Item {
        key(participant_pk(program, participant), PROFILE.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::engine::{Added, Scope};
    use crate::domain::wallet::Entry;
    use serde_json::Map;

    fn store() -> DynamoStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "carrot")
    }

    fn lot(name: &str, by: i64) -> Added {
        Added {
            scope: Scope::Profile,
            name: name.to_owned(),
            by,
        }
    }

    fn record(id: &str, points: i64, lots: Vec<Added>) -> EventRecord {
        Entry {
            event_id: id.to_owned(),
            participant: "rep-1",
            points,
            event_type: "test",
            lots,
            attributes: Map::new(),
            note: None,
        }
        .record(jiff::Timestamp::UNIX_EPOCH, &jiff::tz::TimeZone::UTC)
    }

    /// The update expression with its placeholders resolved.
    fn readable(item: &TransactWriteItem) -> (String, String) {
        let update = item.update().expect("an update");
        let mut names: Vec<_> = update
            .expression_attribute_names()
            .unwrap()
            .iter()
            .collect();
        let mut values: Vec<_> = update
            .expression_attribute_values()
            .unwrap()
            .iter()
            .collect();
        // Longest placeholders first, so `#a1` does not eat the start of `#a10`.
        names.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        values.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        let resolve = |text: &str| {
            let mut text = text.to_owned();
            for (k, v) in &names {
                text = text.replace(k.as_str(), v);
            }
            for (k, v) in &values {
                text = text.replace(k.as_str(), v.as_n().unwrap_or(&format!("{v:?}")));
            }
            text
        };
        (
            resolve(update.update_expression()),
            resolve(update.condition_expression().unwrap_or_default()),
        )
    }

    #[test]
    fn a_spend_and_a_credit_of_one_participant_are_one_profile_update() {
        let debit = Debit {
            points: 100,
            floor: 400,
            lots: vec![lot("exp@2027-01-31", -60), lot("exp@2027-02-28", -40)],
        };
        let spent = record("spin:s-1", -100, debit.lots.clone());
        let prize = record("spin:s-1:prize", 50, vec![lot("exp@2027-02-28", 50)]);
        let items = store()
            .debit_items("acme", &spent, &debit, &[&prize])
            .unwrap();
        assert_eq!(items.len(), 3, "two records and one profile update");
        assert!(items[..2].iter().all(|i| i.put().is_some()));
        let (update, condition) = readable(&items[2]);
        assert_eq!(
            update,
            "ADD balance -50, exp@2027-01-31 -60, exp@2027-02-28 10"
        );
        assert_eq!(
            condition,
            "balance >= 400 AND status = S(\"active\") AND exp@2027-01-31 >= 60 AND exp@2027-02-28 >= 40"
        );
    }
}
