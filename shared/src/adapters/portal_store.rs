//! Quizzes, leads and spins in the table (docs/data-model.md):
//!
//! - quiz definitions in the program's quiz partition, `QUIZ#{program}` / `{quiz}`;
//! - per participant, `QUIZ#{quiz}` (the attempt counter) and `QATT#{quiz}#{attempt}`;
//! - per participant, `LEAD#{lead}` and `LEADCO#{company}` (one open tip per company), plus
//!   the administrators' list `LEADS#{program}#{status}` / `{submitted ms}#{participant}#{lead}`;
//! - per participant, `SPIN#{spin}` (the audit record) and `SPINS#{period}` (spins made in
//!   the limit's period), plus the prize budget `SPINBUDGET#{program}#{period}` / `BUDGET`.
//!
//! Records are kept as JSON text (`record`) beside the few attributes conditions test.

use super::dynamo::{DynamoStore, Expr, Item, key, n, participant_pk, s};
use super::port_error;
use crate::domain::quiz::{Attempt, Quiz};
use crate::domain::spin::{Spin, Used};
use crate::domain::wallet::Holder;
use crate::ports::PortError;
use crate::service::lead::{Lead, LeadStatus, LeadStore};
use crate::service::quiz::QuizStore;
use crate::service::spin::{SpinStore, SpinWrite};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

const QUIZ: &str = "QUIZ#";
const ATTEMPT: &str = "QATT#";
const LEAD: &str = "LEAD#";
const COMPANY: &str = "LEADCO#";
const RECORD: &str = "record";

fn quiz_pk(program: &str) -> String {
    format!("{QUIZ}{program}")
}

fn leads_pk(program: &str, status: LeadStatus) -> String {
    format!("LEADS#{program}#{}", status.as_str())
}

/// A lead's place in its status list: submission time (milliseconds, fixed width so text
/// order is time order), then participant and lead.
fn position(lead: &Lead) -> String {
    let millis = lead
        .submitted_at
        .parse::<Timestamp>()
        .map_or(0, |t| t.as_millisecond());
    format!("{millis:015}#{}#{}", lead.participant, lead.id)
}

fn json_text(value: &impl Serialize) -> AttributeValue {
    s(serde_json::to_string(value).expect("records serialize"))
}

fn record<T: DeserializeOwned>(item: &Item, what: &str) -> Result<T, PortError> {
    match item.get(RECORD) {
        Some(AttributeValue::S(text)) => {
            serde_json::from_str(text).map_err(|e| super::dynamo::corrupt(what, e))
        }
        _ => Err(super::dynamo::corrupt(what, "no record")),
    }
}

fn with_record(mut item: Item, value: &impl Serialize) -> Item {
    item.insert(RECORD.into(), json_text(value));
    item
}

impl DynamoStore {
    fn replace_item(&self, item: Item) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    }

    fn delete_key(&self, key: Item) -> TransactWriteItem {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .build()
            .expect("table and key are set");
        TransactWriteItem::builder().delete(delete).build()
    }

    fn lead_item(&self, program: &str, lead: &Lead) -> Item {
        let mut item = key(
            participant_pk(program, &lead.participant),
            format!("{LEAD}{}", lead.id),
        );
        item.insert("status".into(), s(lead.status.as_str()));
        with_record(item, lead)
    }

    fn listed_item(&self, program: &str, lead: &Lead) -> Item {
        with_record(key(leads_pk(program, lead.status), position(lead)), lead)
    }

    fn company_key(&self, program: &str, lead: &Lead) -> Item {
        key(
            participant_pk(program, &lead.participant),
            format!("{COMPANY}{}", lead.company_key()),
        )
    }
}

impl QuizStore for DynamoStore {
    async fn put_quiz(
        &self,
        program: &str,
        quiz: &Quiz,
        by: &str,
        now: Timestamp,
    ) -> Result<bool, PortError> {
        let mut item = with_record(key(quiz_pk(program), quiz.id.clone()), quiz);
        item.insert("updated_at".into(), s(now.to_string()));
        item.insert("updated_by".into(), s(by));
        let output = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(port_error)?;
        Ok(output.attributes().is_none_or(|old| old.is_empty()))
    }

    async fn quiz(&self, program: &str, quiz: &str) -> Result<Option<Quiz>, PortError> {
        self.get_item(key(quiz_pk(program), quiz.to_owned()))
            .await?
            .map(|item| record(&item, "quiz"))
            .transpose()
    }

    async fn quizzes(&self, program: &str) -> Result<Vec<Quiz>, PortError> {
        self.query_partition(quiz_pk(program))
            .await?
            .iter()
            .map(|item| record(item, "quiz"))
            .collect()
    }

    async fn attempts(
        &self,
        program: &str,
        participant: &str,
        quiz: Option<&str>,
    ) -> Result<Vec<Attempt>, PortError> {
        let prefix = match quiz {
            Some(quiz) => format!("{ATTEMPT}{quiz}#"),
            None => ATTEMPT.to_owned(),
        };
        let mut attempts: Vec<Attempt> = self
            .query_prefix(participant_pk(program, participant), &prefix)
            .await?
            .iter()
            .map(|item| record(item, "quiz attempt"))
            .collect::<Result<_, _>>()?;
        attempts.sort_by(|a, b| (&a.quiz, a.number).cmp(&(&b.quiz, b.number)));
        Ok(attempts)
    }

    async fn record_attempt(
        &self,
        program: &str,
        participant: &str,
        attempt: &Attempt,
    ) -> Result<(), PortError> {
        let pk = participant_pk(program, participant);
        let mut stored = with_record(
            key(
                pk.clone(),
                format!("{ATTEMPT}{}#{}", attempt.quiz, attempt.id),
            ),
            attempt,
        );
        stored.insert("number".into(), n(attempt.number));
        let counter = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk, format!("{QUIZ}{}", attempt.quiz))))
            .update_expression("SET attempts = :number")
            .expression_attribute_values(":number", n(attempt.number));
        // The counter moves from exactly what was read: a concurrent attempt cancels this one.
        let counter = if attempt.number <= 1 {
            counter.condition_expression("attribute_not_exists(attempts)")
        } else {
            counter
                .condition_expression("attempts = :previous")
                .expression_attribute_values(":previous", n(attempt.number - 1))
        };
        self.transact(vec![
            self.put_new(stored),
            TransactWriteItem::builder()
                .update(counter.build().expect("table, key and expression are set"))
                .build(),
        ])
        .await
        .map(|_| ())
    }
}

impl LeadStore for DynamoStore {
    async fn submit(&self, program: &str, lead: &Lead) -> Result<(), PortError> {
        let mut company = self.company_key(program, lead);
        company.insert("lead".into(), s(&lead.id));
        self.transact(vec![
            self.put_new(self.lead_item(program, lead)),
            self.put_new(company),
            self.put_new(self.listed_item(program, lead)),
        ])
        .await
        .map(|_| ())
    }

    async fn lead(
        &self,
        program: &str,
        participant: &str,
        lead: &str,
    ) -> Result<Option<Lead>, PortError> {
        self.get_item(key(
            participant_pk(program, participant),
            format!("{LEAD}{lead}"),
        ))
        .await?
        .map(|item| record(&item, "lead"))
        .transpose()
    }

    async fn leads(&self, program: &str, participant: &str) -> Result<Vec<Lead>, PortError> {
        let mut leads: Vec<Lead> = self
            .query_prefix(participant_pk(program, participant), LEAD)
            .await?
            .iter()
            .map(|item| record(item, "lead"))
            .collect::<Result<_, _>>()?;
        leads.sort_by_key(|lead| std::cmp::Reverse(position(lead)));
        Ok(leads)
    }

    async fn page(
        &self,
        program: &str,
        status: LeadStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Lead>, Option<String>), PortError> {
        let pk = leads_pk(program, status);
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk.clone()))
            .set_exclusive_start_key(after.map(|sk| key(pk, sk.to_owned())))
            .limit(limit as i32)
            .send()
            .await
            .map_err(port_error)?;
        let leads = output
            .items()
            .iter()
            .map(|item| record(item, "lead"))
            .collect::<Result<_, _>>()?;
        let next = output
            .last_evaluated_key()
            .and_then(|last| match last.get("sk") {
                Some(AttributeValue::S(sk)) => Some(sk.clone()),
                _ => None,
            });
        Ok((leads, next))
    }

    async fn decide(&self, program: &str, decided: &Lead) -> Result<(), PortError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                participant_pk(program, &decided.participant),
                format!("{LEAD}{}", decided.id),
            )))
            .update_expression("SET #status = :decided, #record = :record")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#record", RECORD)
            .expression_attribute_values(":decided", s(decided.status.as_str()))
            .expression_attribute_values(":pending", s(LeadStatus::Pending.as_str()))
            .expression_attribute_values(":record", json_text(decided))
            .build()
            .expect("table, key and expression are set");
        let mut items = vec![
            TransactWriteItem::builder().update(update).build(),
            self.delete_key(key(
                leads_pk(program, LeadStatus::Pending),
                position(decided),
            )),
            self.replace_item(self.listed_item(program, decided)),
        ];
        // A rejected company may be tipped again.
        if decided.status == LeadStatus::Rejected {
            items.push(self.delete_key(self.company_key(program, decided)));
        }
        self.transact(items).await.map(|_| ())
    }

    async fn mark_queued(
        &self,
        program: &str,
        lead: &Lead,
        at: Timestamp,
    ) -> Result<(), PortError> {
        let queued = Lead {
            queued_at: Some(at.to_string()),
            ..lead.clone()
        };
        self.transact(vec![
            self.replace_item(self.lead_item(program, &queued)),
            self.replace_item(self.listed_item(program, &queued)),
        ])
        .await
        .map(|_| ())
    }
}

const SPIN: &str = "SPIN#";
const SPIN_COUNT: &str = "SPINS#";

/// The program's prize budget counter of a period: its own partition, written only when a
/// spin wins.
fn spin_budget_key(program: &str, period: &str) -> Item {
    key(
        format!("SPINBUDGET#{program}#{period}"),
        "BUDGET".to_owned(),
    )
}

fn number(item: Option<&Item>, name: &str) -> i64 {
    match item.and_then(|item| item.get(name)) {
        Some(AttributeValue::N(text)) => text.parse().unwrap_or(0),
        _ => 0,
    }
}

impl SpinStore for DynamoStore {
    async fn spender(&self, program: &str, participant: &str) -> Result<Option<Holder>, PortError> {
        self.holder(program, participant).await
    }

    async fn spin(
        &self,
        program: &str,
        participant: &str,
        id: &str,
    ) -> Result<Option<Spin>, PortError> {
        self.get_item(key(
            participant_pk(program, participant),
            format!("{SPIN}{id}"),
        ))
        .await?
        .map(|item| record(&item, "spin"))
        .transpose()
    }

    async fn spins(&self, program: &str, participant: &str) -> Result<Vec<Spin>, PortError> {
        let mut spins: Vec<Spin> = self
            .query_prefix(participant_pk(program, participant), SPIN)
            .await?
            .iter()
            .map(|item| record(item, "spin"))
            .collect::<Result<_, _>>()?;
        spins.sort_by_key(|spin| {
            std::cmp::Reverse(
                spin.at
                    .parse::<Timestamp>()
                    .unwrap_or(Timestamp::UNIX_EPOCH),
            )
        });
        Ok(spins)
    }

    async fn usage(
        &self,
        program: &str,
        participant: &str,
        budget_period: &str,
        limit_period: Option<&str>,
    ) -> Result<(Used, i64), PortError> {
        let budget = self.get_item(spin_budget_key(program, budget_period));
        let counter = async {
            match limit_period {
                Some(period) => {
                    self.get_item(key(
                        participant_pk(program, participant),
                        format!("{SPIN_COUNT}{period}"),
                    ))
                    .await
                }
                None => Ok(None),
            }
        };
        let (budget, counter) = tokio::try_join!(budget, counter)?;
        let used = Used {
            points: number(budget.as_ref(), "points"),
            prizes: number(budget.as_ref(), "prizes"),
        };
        Ok((used, number(counter.as_ref(), "n")))
    }

    async fn record_spin(&self, program: &str, write: &SpinWrite) -> Result<(), PortError> {
        let spin = &write.spin;
        let pk = participant_pk(program, &spin.participant);
        // The cost and any points prize: one profile update (see spend.rs).
        let credits: Vec<_> = write.prize.iter().collect();
        let mut items = self.debit_items(program, &write.cost, &write.debit, &credits)?;
        items.push(self.put_new(with_record(
            key(pk.clone(), format!("{SPIN}{}", spin.id)),
            spin,
        )));
        if let Some((period, most)) = &write.limit {
            let mut counter = Expr::default();
            counter.add("n", n(1));
            let (name, room) = (counter.name("n"), counter.value(n(most - 1)));
            counter.condition(format!(
                "(attribute_not_exists({name}) OR {name} <= {room})"
            ));
            items.push(self.update(key(pk, format!("{SPIN_COUNT}{period}")), counter));
        }
        if let Some(budget) = &write.budget {
            let mut counter = Expr::default();
            counter.add("points", n(budget.points));
            counter.add("prizes", n(1));
            for (attribute, room) in [
                ("points", budget.points_room),
                ("prizes", budget.prizes_room),
            ] {
                if let Some(room) = room {
                    let (name, room) = (counter.name(attribute), counter.value(n(room)));
                    counter.condition(format!(
                        "(attribute_not_exists({name}) OR {name} <= {room})"
                    ));
                }
            }
            items.push(self.update(spin_budget_key(program, &budget.period), counter));
        }
        if let Some(announcement) = &write.announcement {
            items.push(self.outbox_put(program, announcement));
        }
        self.transact(items).await.map(|_| ())
    }
}
