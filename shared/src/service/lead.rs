//! Leads: a rep tips a lead on a new partner; it stays pending until an administrator
//! approves or rejects it. Approval queues one `lead.submitted` event (id
//! `lead:{participant}:{lead}`), so the program's rules award the points exactly once.
//!
//! A rep cannot tip the same company twice while an earlier tip of it is pending or
//! approved (names compared by their words, case-insensitively); after a rejection they may.

use super::redeem::retry_pause;
use super::{ATTEMPTS, Refusal, enrolled, queue_event, quoted};
use crate::domain::error::{FieldErrors, check_identifier};
use crate::domain::money::json_kind;
use crate::ports::{AwardStore, EventQueue, PortError, ProgramReader, StatsReader};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::future::Future;

/// The prefix of a lead's event id: `lead:{participant}:{lead}`.
pub const EVENT_PREFIX: &str = "lead:";
/// Most leads one page of the administrators' list holds.
pub const MAX_PAGE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    Pending,
    Approved,
    Rejected,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::Pending => "pending",
            LeadStatus::Approved => "approved",
            LeadStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A lead as stored. `contact` may hold personal data: never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    pub id: String,
    pub participant: String,
    pub company: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub status: LeadStatus,
    pub submitted_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The `lead.submitted` event approval queues.
    pub event_id: String,
    /// When the approval's event reached the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
}

impl Lead {
    /// The company as duplicates are told apart: its words, lower-case.
    pub fn company_key(&self) -> String {
        company_key(&self.company)
    }
}

pub fn company_key(company: &str) -> String {
    company
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One page of the administrators' list, and where the next starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub leads: Vec<Lead>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

pub trait LeadStore: Send + Sync {
    /// Stores a new pending lead: `ConditionFailed` when its id exists or the participant
    /// has a pending or approved lead on the same company.
    fn submit(
        &self,
        program: &str,
        lead: &Lead,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    fn lead(
        &self,
        program: &str,
        participant: &str,
        lead: &str,
    ) -> impl Future<Output = Result<Option<Lead>, PortError>> + Send;

    /// The participant's leads, newest first.
    fn leads(
        &self,
        program: &str,
        participant: &str,
    ) -> impl Future<Output = Result<Vec<Lead>, PortError>> + Send;

    /// The program's leads of one status, oldest first: at most `limit` after the position
    /// `after`, and the position of the last one when more may follow.
    fn page(
        &self,
        program: &str,
        status: LeadStatus,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<Lead>, Option<String>), PortError>> + Send;

    /// Records a decision on a lead that is still pending (`ConditionFailed` otherwise).
    fn decide(
        &self,
        program: &str,
        decided: &Lead,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Notes that the approved lead's event reached the queue.
    fn mark_queued(
        &self,
        program: &str,
        lead: &Lead,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A lead just tipped, with what its approval would earn now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tipped {
    #[serde(flatten)]
    pub lead: Lead,
    pub points_on_approval: Option<i64>,
}

/// `POST …/participants/{participant}/leads` `{id, company, contact?, note?}`. The same id
/// with the same tip answers the stored lead (false: not new); with another tip, 422.
pub async fn submit<S, P>(
    store: &S,
    programs: &P,
    program: &str,
    participant: &str,
    body: &Map<String, Value>,
    now: Timestamp,
) -> Result<(Tipped, bool), Refusal>
where
    S: LeadStore + StatsReader + AwardStore,
    P: ProgramReader,
{
    let mut errors = FieldErrors::default();
    for key in body
        .keys()
        .filter(|k| !["id", "company", "contact", "note"].contains(&k.as_str()))
    {
        errors.push(
            key.clone(),
            "is not a lead field (expected id, company, contact, note)",
        );
    }
    let id = text(body, "id", true, 128, &mut errors).unwrap_or_default();
    if !id.is_empty() {
        check_identifier(&mut errors, "id", &id);
    }
    let event_id = format!("{EVENT_PREFIX}{participant}:{id}");
    if event_id.len() > 128 && id.len() <= 128 {
        errors.push(
            "id",
            format!(
                "must be at most {} characters",
                128 - (event_id.len() - id.len())
            ),
        );
    }
    let company = text(body, "company", true, 200, &mut errors);
    if company
        .as_deref()
        .is_some_and(|c| company_key(c).is_empty())
    {
        errors.push("company", "must name the company with letters or digits");
    }
    let contact = text(body, "contact", false, 200, &mut errors);
    let note = text(body, "note", false, 1000, &mut errors);
    if !errors.is_empty() {
        return Err(Refusal::Invalid("the lead is not valid".into(), errors.0));
    }
    enrolled(store, program, participant).await?;
    let lead = Lead {
        id: id.clone(),
        participant: participant.to_owned(),
        company: company.expect("checked"),
        contact,
        note,
        status: LeadStatus::Pending,
        submitted_at: now.to_string(),
        decided_at: None,
        decided_by: None,
        reason: None,
        event_id,
        queued_at: None,
    };
    let created = match store.submit(program, &lead).await {
        Ok(()) => true,
        Err(PortError::ConditionFailed) => false,
        Err(error) => return Err(error.into()),
    };
    let lead = if created {
        tracing::info!(program, participant, lead = %id, "lead tipped");
        lead
    } else {
        match store.lead(program, participant, &id).await? {
            Some(stored) if same_tip(&stored, &lead) => stored,
            Some(_) => {
                return Err(Refusal::Mismatch(format!(
                    "lead {id:?} was tipped with other details"
                )));
            }
            None => {
                return Err(Refusal::Conflict(format!(
                    "participant {participant:?} already has a pending or approved lead on {:?}",
                    lead.company
                )));
            }
        }
    };
    let points = quoted(
        store,
        programs,
        program,
        participant,
        "lead.submitted",
        json!({"lead_id": lead.id, "company": lead.company}),
        now,
    )
    .await?;
    Ok((
        Tipped {
            lead,
            points_on_approval: points,
        },
        created,
    ))
}

fn same_tip(a: &Lead, b: &Lead) -> bool {
    (&a.company, &a.contact, &a.note) == (&b.company, &b.contact, &b.note)
}

/// `POST …/leads/{lead}/approve`: pending → approved, then its event is queued. Approving
/// an approved lead whose event never reached the queue (a failure after the decision)
/// finishes that approval; any other decided lead is a 409.
pub async fn approve<S: LeadStore, Q: EventQueue>(
    store: &S,
    queue: &Q,
    program: &str,
    participant: &str,
    id: &str,
    by: &str,
    now: Timestamp,
) -> Result<Lead, Refusal> {
    let mut lead = decide(store, program, participant, id, by, None, now).await;
    if let Err(Refusal::Conflict(_)) = &lead
        && let Some(stored) = store.lead(program, participant, id).await?
        && stored.status == LeadStatus::Approved
        && stored.queued_at.is_none()
    {
        lead = Ok(stored);
    }
    let mut lead = lead?;
    let decided_at = lead.decided_at.clone().unwrap_or_else(|| now.to_string());
    let envelope = json!({
        "id": lead.event_id,
        "participant": participant,
        "type": "lead.submitted",
        "occurred_at": decided_at,
        "attributes": {"lead_id": lead.id, "company": lead.company, "submitted_at": lead.submitted_at},
    });
    queue_event(queue, program, &envelope, now).await?;
    store.mark_queued(program, &lead, now).await?;
    lead.queued_at = Some(now.to_string());
    tracing::info!(program, participant, lead = id, "lead approved");
    Ok(lead)
}

/// `POST …/leads/{lead}/reject` `{reason}`: pending → rejected; nothing is awarded.
pub async fn reject<S: LeadStore>(
    store: &S,
    program: &str,
    participant: &str,
    id: &str,
    body: &Map<String, Value>,
    by: &str,
    now: Timestamp,
) -> Result<Lead, Refusal> {
    let mut errors = FieldErrors::default();
    for key in body.keys().filter(|k| k.as_str() != "reason") {
        errors.push(key.clone(), "is not a rejection field (expected reason)");
    }
    let reason = text(body, "reason", true, 500, &mut errors);
    if !errors.is_empty() {
        return Err(Refusal::Invalid(
            "the rejection is not valid".into(),
            errors.0,
        ));
    }
    let lead = decide(store, program, participant, id, by, reason, now).await?;
    tracing::info!(program, participant, lead = id, "lead rejected");
    Ok(lead)
}

/// Decides a pending lead: approved without a reason, rejected with one.
async fn decide<S: LeadStore>(
    store: &S,
    program: &str,
    participant: &str,
    id: &str,
    by: &str,
    reason: Option<String>,
    now: Timestamp,
) -> Result<Lead, Refusal> {
    for round in 1..=ATTEMPTS {
        let lead = store.lead(program, participant, id).await?.ok_or_else(|| {
            Refusal::NotFound(format!("participant {participant:?} has no lead {id:?}"))
        })?;
        if lead.status != LeadStatus::Pending {
            return Err(Refusal::Conflict(format!(
                "lead {id:?} is {} already: only a pending lead is decided",
                lead.status.as_str()
            )));
        }
        let decided = Lead {
            status: if reason.is_some() {
                LeadStatus::Rejected
            } else {
                LeadStatus::Approved
            },
            decided_at: Some(now.to_string()),
            decided_by: Some(by.to_owned()),
            reason: reason.clone(),
            ..lead
        };
        match store.decide(program, &decided).await {
            Ok(()) => return Ok(decided),
            // Decided meanwhile: read again and say how.
            Err(PortError::ConditionFailed) => {}
            Err(PortError::Transient(_)) => tokio::time::sleep(retry_pause(round)).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(PortError::Transient("the lead kept changing".into()).into())
}

/// `GET /v1/programs/{program}/leads?status=&after=&limit=`.
pub async fn page<S: LeadStore>(
    store: &S,
    program: &str,
    status: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
) -> Result<Page, Refusal> {
    let mut errors = FieldErrors::default();
    let status = match status {
        None => Some(LeadStatus::Pending),
        Some(text) => LeadStatus::parse(text).or_else(|| {
            errors.push(
                "status",
                format!("must be pending, approved or rejected, got {text:?}"),
            );
            None
        }),
    };
    let limit = match limit.map(str::parse::<usize>) {
        None => Some(50),
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => Some(n),
        Some(_) => {
            errors.push(
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE}"),
            );
            None
        }
    };
    // The cursor is opaque to clients: the position, base64url-encoded.
    let after = after.and_then(|cursor| {
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .or_else(|| {
                errors.push("after", "is not a cursor this list returned");
                None
            })
    });
    if !errors.is_empty() {
        return Err(Refusal::Invalid("the query is not valid".into(), errors.0));
    }
    let (leads, next) = store
        .page(
            program,
            status.expect("checked"),
            after.as_deref(),
            limit.expect("checked"),
        )
        .await?;
    Ok(Page {
        leads,
        next: next.map(|position| URL_SAFE_NO_PAD.encode(position)),
    })
}

/// A text field of at most `max` characters, trimmed.
fn text(
    body: &Map<String, Value>,
    key: &str,
    required: bool,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    match body.get(key) {
        None | Some(Value::Null) => {
            if required {
                errors.push(key, "is required");
            }
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(key, "must not be blank");
            None
        }
        Some(Value::String(s)) if s.chars().count() > max => {
            errors.push(key, format!("must be at most {max} characters"));
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(other) => {
            errors.push(key, format!("must be a string, got {}", json_kind(other)));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companies_are_told_apart_by_their_words_in_any_case() {
        assert_eq!(company_key("Nordic Forklift AB"), "nordic forklift ab");
        assert_eq!(company_key("  nordic  FORKLIFT ab. "), "nordic forklift ab");
        assert_eq!(company_key("Lift & Co"), "lift co");
        assert_eq!(company_key("Ärlig Truck"), "ärlig truck");
        assert_eq!(company_key("—"), "");
    }
}
