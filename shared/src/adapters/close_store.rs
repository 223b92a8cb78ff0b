//! The period close's items in the Carrot table. A close of program `p` and period `2026-11`
//! keeps everything in one partition, `CLOSE#p#2026-11`:
//!
//! - `STATE`: the run whose frozen outcome counts, effects applied, done;
//! - `RUN#{run}#{part}`: the frozen outcome (JSON text in parts of at most 300 KB);
//! - `DOC#{name}#{page}`: published documents (report, standings, lists, drawings, entrants).
//!
//! Participants are listed from the `Roster` index (`roster` = `{program}#{shard}`), and read
//! with their month items in batches. See docs/data-model.md.

use super::dynamo::{
    DynamoStore, Item, MONTH, PROFILE, PROGRAMS, corrupt, key, month_stats, n, numbers,
    participant_pk, s,
};
use super::port_error;
use crate::domain::close::{ClosePeriod, Member};
use crate::domain::envelope::LOGIN_TYPE;
use crate::domain::standings::{BOARD_SHARDS, Metric, Totals, month_shard_key};
use crate::ports::{CloseState, CloseStore, LiveIndex, PortError};
use crate::service::close::frozen_parts;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use std::collections::HashMap;
use std::time::Duration;

/// Participant ids per roster page.
const ROSTER_PAGE: i32 = 1_000;
const STATE: &str = "STATE";

fn close_pk(program: &str, period: &str) -> String {
    format!("CLOSE#{program}#{period}")
}

fn text(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> i64 {
    numbers(item).get(name).copied().unwrap_or(0)
}

impl DynamoStore {
    /// Reads every key, asking again for what DynamoDB leaves unprocessed under load.
    pub(crate) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .build()
                .expect("keys are set");
            let mut attempt = 0;
            loop {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(port_error)?;
                if let Some(found) = output.responses().and_then(|r| r.get(&self.table)) {
                    items.extend(found.iter().cloned());
                }
                match output.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() && attempt < 10 => {
                        request = rest.clone();
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                    }
                    Some(rest) if !rest.keys().is_empty() => {
                        return Err(PortError::Transient(
                            "BatchGetItem kept returning unprocessed keys".into(),
                        ));
                    }
                    _ => break,
                }
            }
        }
        Ok(items)
    }

    async fn put(&self, item: Item) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    /// An update whose failed condition means "already so": `Ok(false)`.
    async fn update_if(
        &self,
        item: Item,
        expression: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, PortError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item))
            .update_expression(expression)
            .condition_expression(condition);
        if expression.contains("#status") || condition.contains("#status") {
            update = update.expression_attribute_names("#status", "status");
        }
        for (name, value) in values {
            update = update.expression_attribute_values(*name, value.clone());
        }
        match update.send().await.map_err(port_error) {
            Ok(_) => Ok(true),
            Err(PortError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

/// A member from its profile item and month items.
fn member(profile: &Item, months: &[&Item], period: &ClosePeriod) -> Result<Member, PortError> {
    let field = |name: &str| text(profile, name).unwrap_or_default();
    let enrolled_at = field("enrolled_at")
        .parse()
        .map_err(|e| corrupt("enrolment time", e))?;
    let mut totals = Totals::default();
    let mut reversed = 0;
    for item in months {
        let stats = month_stats(item)?;
        totals.points += stats.points;
        totals.login_days += stats.login_days.len() as i64;
        for (event_type, count) in stats.counts {
            *totals.counts.entry(event_type).or_default() += count;
        }
        reversed += number(item, "reversed");
    }
    totals.counts.retain(|_, n| *n != 0);
    let counters = numbers(profile);
    // Points still locked after the period: lots deposited after its last day.
    let after = format!("pend@{}", period.ends_on);
    let pending = counters
        .iter()
        .filter(|(name, _)| name.starts_with("pend@") && name.as_str() > after.as_str())
        .map(|(_, points)| *points)
        .sum();
    Ok(Member {
        participant: field("participant"),
        role: field("role"),
        distributor: field("distributor"),
        location: field("location"),
        region: text(profile, "region"),
        status: field("status"),
        enrolled_at,
        has_manager: profile.contains_key("manager"),
        segment: text(profile, "segment"),
        logins: totals.counts.get(LOGIN_TYPE).copied().unwrap_or(0),
        totals,
        strikes: counters.get("strikes").copied().unwrap_or(0),
        last_strike: text(profile, "last_strike"),
        balance: counters.get("balance").copied().unwrap_or(0),
        pending,
        reversed,
    })
}

impl CloseStore for DynamoStore {
    async fn roster(
        &self,
        program: &str,
        shard: u8,
        after: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), PortError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("Roster")
            .expression_attribute_values(":roster", s(format!("{program}#{shard:02}")))
            .limit(ROSTER_PAGE);
        query = match &after {
            Some(after) => query
                .key_condition_expression("roster = :roster AND participant > :after")
                .expression_attribute_values(":after", s(after)),
            None => query.key_condition_expression("roster = :roster"),
        };
        let output = query.send().await.map_err(port_error)?;
        let ids: Vec<String> = output
            .items()
            .iter()
            .filter_map(|item| text(item, "participant"))
            .collect();
        let more = output
            .last_evaluated_key()
            .is_some_and(|last| !last.is_empty());
        let next = more.then(|| ids.last().cloned()).flatten();
        Ok((ids, next))
    }

    async fn members(
        &self,
        program: &str,
        participants: &[String],
        period: &ClosePeriod,
    ) -> Result<Vec<Member>, PortError> {
        let mut keys = Vec::new();
        for participant in participants {
            let pk = participant_pk(program, participant);
            keys.push(key(pk.clone(), PROFILE.to_owned()));
            for month in &period.months {
                keys.push(key(pk.clone(), format!("{MONTH}{month}")));
            }
        }
        let items = self.batch_get(keys).await?;
        let mut by_pk: HashMap<String, (Option<&Item>, Vec<&Item>)> = HashMap::new();
        for item in &items {
            let (Some(pk), Some(sk)) = (text(item, "pk"), text(item, "sk")) else {
                continue;
            };
            let entry = by_pk.entry(pk).or_default();
            if sk == PROFILE {
                entry.0 = Some(item);
            } else {
                entry.1.push(item);
            }
        }
        by_pk
            .values()
            .filter_map(|(profile, months)| profile.map(|p| member(p, months, period)))
            .collect()
    }

    async fn state(&self, program: &str, period: &str) -> Result<Option<CloseState>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(close_pk(program, period), STATE.to_owned())))
            .consistent_read(true)
            .send()
            .await
            .map_err(port_error)?;
        Ok(output.item().map(|item| CloseState {
            run: text(item, "run").unwrap_or_default(),
            config_version: number(item, "config_version") as u32,
            frozen_at: text(item, "frozen_at").unwrap_or_default(),
            applied: number(item, "applied") as u64,
            done: matches!(item.get("done"), Some(AttributeValue::Bool(true))),
        }))
    }

    async fn freeze(
        &self,
        program: &str,
        period: &str,
        config_version: u32,
        frozen_at: &str,
        frozen: &str,
    ) -> Result<CloseState, PortError> {
        let pk = close_pk(program, period);
        // A fresh run id: parts of a run that crashed before its state was stored never count.
        let run = format!("{}-{:08x}", frozen_at, rand::random::<u32>());
        let parts = frozen_parts(frozen);
        for (i, part) in parts.iter().enumerate() {
            let mut item = key(pk.clone(), format!("RUN#{run}#{i:05}"));
            item.insert("part".into(), s(part));
            self.put(item).await?;
        }
        let mut state = key(pk.clone(), STATE.to_owned());
        state.insert("run".into(), s(&run));
        state.insert("parts".into(), n(parts.len()));
        state.insert("config_version".into(), n(config_version));
        state.insert("frozen_at".into(), s(frozen_at));
        state.insert("applied".into(), n(0));
        state.insert("done".into(), AttributeValue::Bool(false));
        let stored = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(state))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(port_error);
        match stored {
            Ok(_) | Err(PortError::ConditionFailed) => self
                .state(program, period)
                .await?
                .ok_or_else(|| PortError::Transient("the close state vanished".into())),
            Err(other) => Err(other),
        }
    }

    async fn frozen(
        &self,
        program: &str,
        period: &str,
        state: &CloseState,
    ) -> Result<String, PortError> {
        let items = self
            .query_prefix(close_pk(program, period), &format!("RUN#{}#", state.run))
            .await?;
        // Parts sort by their zero-padded index.
        Ok(items.iter().filter_map(|item| text(item, "part")).collect())
    }

    async fn checkpoint(&self, program: &str, period: &str, applied: u64) -> Result<(), PortError> {
        self.update_if(
            key(close_pk(program, period), STATE.to_owned()),
            "SET applied = :applied",
            "applied < :applied",
            &[(":applied", n(applied))],
        )
        .await
        .map(|_| ())
    }

    async fn put_document(
        &self,
        program: &str,
        period: &str,
        name: &str,
        pages: &[String],
    ) -> Result<(), PortError> {
        for (i, page) in pages.iter().enumerate() {
            let mut item = key(close_pk(program, period), format!("DOC#{name}#{i:05}"));
            item.insert("text".into(), s(page));
            item.insert("pages".into(), n(pages.len()));
            self.put(item).await?;
        }
        Ok(())
    }

    async fn document(
        &self,
        program: &str,
        period: &str,
        name: &str,
        page: u32,
    ) -> Result<Option<(String, u32)>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(
                close_pk(program, period),
                format!("DOC#{name}#{page:05}"),
            )))
            .send()
            .await
            .map_err(port_error)?;
        Ok(output
            .item()
            .and_then(|item| Some((text(item, "text")?, number(item, "pages") as u32))))
    }

    async fn finish(&self, program: &str, period: &str) -> Result<(), PortError> {
        self.update_if(
            key(close_pk(program, period), STATE.to_owned()),
            "SET done = :done",
            "attribute_exists(pk)",
            &[(":done", AttributeValue::Bool(true))],
        )
        .await
        .map(|_| ())
    }

    async fn strike(
        &self,
        program: &str,
        participant: &str,
        period: &str,
    ) -> Result<bool, PortError> {
        self.update_if(
            key(participant_pk(program, participant), PROFILE.to_owned()),
            "SET strikes = :one, last_strike = :period",
            "#status = :active AND (attribute_not_exists(last_strike) OR last_strike < :period)",
            &[
                (":one", n(1)),
                (":period", s(period)),
                (":active", s("active")),
            ],
        )
        .await
    }

    async fn sanction(
        &self,
        program: &str,
        participant: &str,
        status: &str,
        period: &str,
    ) -> Result<bool, PortError> {
        self.update_if(
            key(participant_pk(program, participant), PROFILE.to_owned()),
            "SET #status = :status, strikes = :two, last_strike = :period, sanctioned_for = :period",
            "#status = :active",
            &[
                (":status", s(status)),
                (":two", n(2)),
                (":period", s(period)),
                (":active", s("active")),
            ],
        )
        .await
    }

    async fn reinstate(
        &self,
        program: &str,
        participant: &str,
        at: &str,
    ) -> Result<bool, PortError> {
        self.update_if(
            key(participant_pk(program, participant), PROFILE.to_owned()),
            "SET #status = :active, reinstated_at = :at REMOVE strikes, last_strike, sanctioned_for",
            "#status IN (:suspended, :terminated)",
            &[
                (":active", s("active")),
                (":at", s(at)),
                (":suspended", s("suspended")),
                (":terminated", s("terminated")),
            ],
        )
        .await
    }

    async fn programs(&self) -> Result<Vec<String>, PortError> {
        let mut programs = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(PROGRAMS))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(port_error)?;
            programs.extend(output.items().iter().filter_map(|item| text(item, "sk")));
            match output.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(programs),
            }
        }
    }
}

impl DynamoStore {
    /// Every entry of one index partition with a score of at least `floor`, best first, or the
    /// best `limit` of them.
    async fn index_page(
        &self,
        index: &str,
        score: &str,
        partition: String,
        floor: Option<i64>,
        limit: Option<i32>,
    ) -> Result<Vec<(String, i64)>, PortError> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .scan_index_forward(false)
                .expression_attribute_values(":lb", s(&partition))
                .set_limit(limit)
                .set_exclusive_start_key(start);
            query = match floor {
                Some(floor) => query
                    .key_condition_expression("lb = :lb AND #score >= :floor")
                    .expression_attribute_names("#score", score)
                    .expression_attribute_values(":floor", n(floor)),
                None => query.key_condition_expression("lb = :lb"),
            };
            let output = query.send().await.map_err(port_error)?;
            for item in output.items() {
                let participant =
                    text(item, "pk").and_then(|pk| pk.rsplit_once('#').map(|(_, p)| p.to_owned()));
                if let Some(participant) = participant {
                    entries.push((participant, number(item, score)));
                }
            }
            match output.last_evaluated_key() {
                Some(last) if !last.is_empty() && limit.is_none() => start = Some(last.clone()),
                _ => return Ok(entries),
            }
        }
    }
}

impl LiveIndex for DynamoStore {
    async fn top(
        &self,
        program: &str,
        month: &str,
        metric: &Metric,
        k: usize,
    ) -> Result<Vec<(String, i64)>, PortError> {
        let (index, score) = match metric {
            Metric::Points => ("MonthPoints", "points"),
            Metric::LoginDays => ("MonthLoginDays", "days"),
            Metric::Events(_) => {
                return Err(PortError::Permanent(
                    "event-count boards are published at close, not live".into(),
                ));
            }
        };
        let limit = i32::try_from(k).unwrap_or(i32::MAX);
        let mut shards = Vec::new();
        for shard in 0..BOARD_SHARDS {
            let partition = month_shard_key(program, month, shard);
            let page = self
                .index_page(index, score, partition, None, Some(limit))
                .await?;
            shards.push(page);
        }
        let mut merged: Vec<(String, i64)> = shards.iter().flatten().cloned().collect();
        merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let Some(cutoff) = merged.get(k.saturating_sub(1)).map(|(_, score)| *score) else {
            return Ok(merged);
        };
        // A full shard page may hide more entries tied with the cutoff: read them all.
        for (shard, page) in shards.iter().enumerate() {
            if page.len() == k && page.last().is_some_and(|(_, last)| *last >= cutoff) {
                let partition = month_shard_key(program, month, shard as u8);
                let ties = self
                    .index_page(index, score, partition, Some(cutoff), None)
                    .await?;
                merged.extend(ties.into_iter().skip(k));
            }
        }
        merged.retain(|(_, score)| *score >= cutoff);
        merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        // A participant is listed once (an award between two reads may have moved them).
        let mut seen = std::collections::HashSet::new();
        merged.retain(|(participant, _)| seen.insert(participant.clone()));
        Ok(merged)
    }

    async fn members(
        &self,
        program: &str,
        participants: &[String],
        period: &ClosePeriod,
    ) -> Result<Vec<Member>, PortError> {
        CloseStore::members(self, program, participants, period).await
    }
}
