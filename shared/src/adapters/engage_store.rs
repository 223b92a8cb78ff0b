//! The daily engagement run's items in the Carrot table:
//!
//! - on the participant's `PROFILE` item: `segment`, and the run's state as JSON text in
//!   `engagement` and `journey` (only the run writes them);
//! - `SEG#{date}` under the participant: one item per change of segment (the history);
//! - `ENGAGE#{program}` / `RUN#{date}`: how far a day's run got, so a rerun resumes.
//!
//! Members are listed from the `Roster` index and read with their month items in batches,
//! as the period close reads them. See docs/data-model.md.

use super::dynamo::{
    DynamoStore, Item, MONTH, PROFILE, corrupt, key, month_stats, numbers, participant_pk, s,
};
use super::port_error;
use crate::ports::{
    CloseStore, EngageMember, EngageRun, EngageStore, ParticipantState, PortError, SegmentChange,
};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde_dynamo::from_item;
use std::collections::HashMap;

const SEGMENT: &str = "SEG#";

fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn run_key(program: &str, day: &str) -> Item {
    key(format!("ENGAGE#{program}"), format!("RUN#{day}"))
}

impl EngageStore for DynamoStore {
    async fn roster(
        &self,
        program: &str,
        shard: u8,
        after: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), PortError> {
        CloseStore::roster(self, program, shard, after).await
    }

    async fn members(
        &self,
        program: &str,
        participants: &[String],
        months: &[String],
    ) -> Result<Vec<EngageMember>, PortError> {
        let mut keys = Vec::with_capacity(participants.len() * (months.len() + 1));
        for participant in participants {
            let pk = participant_pk(program, participant);
            keys.push(key(pk.clone(), PROFILE.to_owned()));
            for month in months {
                keys.push(key(pk.clone(), format!("{MONTH}{month}")));
            }
        }
        let items = self.batch_get(keys).await?;
        let mut by_pk: HashMap<String, (Option<Item>, Vec<Item>)> = HashMap::new();
        for item in items {
            let (Some(pk), Some(sk)) = (text(&item, "pk"), text(&item, "sk")) else {
                continue;
            };
            let entry = by_pk.entry(pk).or_default();
            if sk == PROFILE {
                entry.0 = Some(item);
            } else {
                entry.1.push(item);
            }
        }
        let mut members = Vec::with_capacity(by_pk.len());
        for (profile, month_items) in by_pk.into_values() {
            let Some(profile) = profile else { continue };
            let mut months = month_items
                .iter()
                .map(month_stats)
                .collect::<Result<Vec<_>, _>>()?;
            months.sort_by(|a, b| a.month.cmp(&b.month));
            let state: ParticipantState =
                from_item(profile.clone()).map_err(|e| corrupt("participant", e))?;
            members.push(EngageMember {
                counters: numbers(&profile),
                engagement: text(&profile, "engagement"),
                journey: text(&profile, "journey"),
                months,
                state,
            });
        }
        members.sort_by(|a, b| a.state.participant.cmp(&b.state.participant));
        Ok(members)
    }

    async fn save(
        &self,
        program: &str,
        participant: &str,
        engagement: &str,
        journey: &str,
        change: Option<&SegmentChange>,
    ) -> Result<(), PortError> {
        let pk = participant_pk(program, participant);
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk.clone(), PROFILE.to_owned())))
            // Only an enrolled participant is updated: never create a bare profile.
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":engagement", s(engagement))
            .expression_attribute_values(":journey", s(journey));
        let mut items = Vec::with_capacity(2);
        match change {
            Some(change) => {
                update = update
                    .update_expression(
                        "SET engagement = :engagement, journey = :journey, #segment = :segment",
                    )
                    .expression_attribute_names("#segment", "segment")
                    .expression_attribute_values(":segment", s(&change.to));
                let mut history = key(pk, format!("{SEGMENT}{}", change.date));
                history.insert("to".into(), s(&change.to));
                if let Some(from) = &change.from {
                    history.insert("from".into(), s(from));
                }
                history.insert("date".into(), s(&change.date));
                items.push(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(history))
                                .build()
                                .map_err(|e| PortError::Permanent(e.to_string()))?,
                        )
                        .build(),
                );
            }
            None => {
                update =
                    update.update_expression("SET engagement = :engagement, journey = :journey")
            }
        }
        items.push(
            TransactWriteItem::builder()
                .update(
                    update
                        .build()
                        .map_err(|e| PortError::Permanent(e.to_string()))?,
                )
                .build(),
        );
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn segment_history(
        &self,
        program: &str,
        participant: &str,
    ) -> Result<Vec<SegmentChange>, PortError> {
        let items = self
            .query_prefix(participant_pk(program, participant), SEGMENT)
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(SegmentChange {
                    date: text(item, "date")?,
                    from: text(item, "from"),
                    to: text(item, "to")?,
                })
            })
            .collect())
    }

    async fn run(&self, program: &str, day: &str) -> Result<Option<EngageRun>, PortError> {
        let item = self.get_item(run_key(program, day)).await?;
        Ok(item.map(|item| EngageRun {
            shards: match item.get("shards") {
                Some(AttributeValue::Ns(shards)) => {
                    shards.iter().filter_map(|n| n.parse().ok()).collect()
                }
                _ => Default::default(),
            },
            done: matches!(item.get("done"), Some(AttributeValue::Bool(true))),
        }))
    }

    async fn checkpoint(&self, program: &str, day: &str, shard: u8) -> Result<(), PortError> {
        // ADD to a number set: shards finishing at once all land, and a repeat is harmless.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(program, day)))
            .update_expression("ADD shards :shard")
            .expression_attribute_values(":shard", AttributeValue::Ns(vec![shard.to_string()]))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn finish(&self, program: &str, day: &str) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(run_key(program, day)))
            .update_expression("SET done = :done")
            .expression_attribute_values(":done", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }
}
