//! What a participant sees of their standing: the statement (wallet, this month's and this
//! quarter's figures, progress toward the monthly drawings and the personal target) and the
//! ledger, newest first, page by page.

use super::engage::{EngageError, fold};
use crate::domain::close::DrawingConfig;
use crate::domain::counters::MonthStats;
use crate::domain::ledger::{EntryStatus, EventRecord, RuleLine};
use crate::domain::program::Program;
use crate::domain::rules::Period;
use crate::domain::segments::{Month, personal_target};
use crate::domain::standings::{Metric, Totals};
use crate::domain::wallet::Wallet;
use crate::ports::{EngageMember, EngageStore, PortError, ProgramReader, StatsReader};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far ahead the statement lists expiring points.
pub const EXPIRING_WITHIN_DAYS: i64 = 90;
/// Ledger entries per page unless the caller asks for fewer or more.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("program {0:?} has no configuration yet")]
    NoProgram(String),
    #[error("participant {0:?} is not enrolled in this program")]
    NotEnrolled(String),
    #[error("the cursor is not one this ledger gave")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] PortError),
    #[error("corrupt state: {0}")]
    Corrupt(String),
}

impl From<EngageError> for StatementError {
    fn from(error: EngageError) -> Self {
        match error {
            EngageError::Store(error) => StatementError::Store(error),
            EngageError::Corrupt(what) => StatementError::Corrupt(what),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub participant: String,
    pub name: String,
    pub status: String,
    /// `individual` or `partner` (a partner account's points go to its team).
    pub account: &'static str,
    pub role: String,
    pub distributor: String,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    pub enrolled_at: String,
    /// The program's date the figures are for.
    pub today: String,
    pub wallet: WalletView,
    pub month: Figures,
    pub quarter: Figures,
    /// Days of this month left, today included.
    pub days_left_in_month: i64,
    pub drawings: Vec<DrawingProgress>,
    /// `None` until the participant has had an active month to set it from.
    pub target: Option<TargetProgress>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalletView {
    pub balance: i64,
    pub available: i64,
    pub pending: i64,
    /// When pending points become available.
    pub deposits: Vec<Lot>,
    /// Points past their expiry date that the ledger has not recorded as expired yet (they
    /// are no longer available).
    pub expired: i64,
    /// Points expiring within `EXPIRING_WITHIN_DAYS`, and on which dates.
    pub expiring_soon: i64,
    pub expiring: Vec<Lot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lot {
    pub date: String,
    pub points: i64,
}

/// A period's figures so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// `2026-11` or `2026-Q4`.
    pub period: String,
    pub points: i64,
    pub login_days: i64,
    pub events: i64,
    pub events_by_type: BTreeMap<String, i64>,
}

/// Where the participant stands toward a monthly drawing's entry condition, as the
/// engagement run's near-miss nudge sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrawingProgress {
    pub drawing: String,
    pub title: String,
    pub metric: Metric,
    pub need: i64,
    pub have: i64,
    pub entered: bool,
    pub missing: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetProgress {
    pub metric: Metric,
    pub target: i64,
    pub have: i64,
    pub reached: bool,
    pub missing: i64,
}

/// The participant's statement now, or `NotEnrolled`.
pub async fn statement<S, P>(
    store: &S,
    programs: &P,
    program_id: &str,
    participant: &str,
    now: Timestamp,
) -> Result<Statement, StatementError>
where
    S: EngageStore + StatsReader,
    P: ProgramReader,
{
    let program = programs
        .versions(program_id)
        .await?
        .ok_or_else(|| StatementError::NoProgram(program_id.to_owned()))?
        .latest()
        .clone();
    let current = Month::of(now, &program.time_zone);
    // The months the target reads and the quarter's (the current one included).
    let quarter = quarter_months(current);
    let mut months: Vec<String> = (0..=program.segments.months_needed() as i32)
        .map(|back| current.back(back).label())
        .chain(quarter.iter().cloned())
        .collect();
    months.sort();
    months.dedup();
    let member = store
        .members(program_id, &[participant.to_owned()], &months)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StatementError::NotEnrolled(participant.to_owned()))?;
    let (engagement, current_stats) = fold(store, &program, &member, current).await?;
    let target = personal_target(&program.segments, &engagement, current);
    Ok(summary(
        &program,
        &member,
        &current_stats,
        target.map(|t| t.value),
        now,
    ))
}

/// The statement of a member read with the quarter's months, given this month's figures and
/// the personal target.
fn summary(
    program: &Program,
    member: &EngageMember,
    current_stats: &MonthStats,
    target: Option<i64>,
    now: Timestamp,
) -> Statement {
    let local = now.to_zoned(program.time_zone.clone());
    let today = local.date();
    let today_text = today.to_string();
    let current = Month::of(now, &program.time_zone);
    let wallet = Wallet::of(member.state.balance, &member.counters, &today_text);
    let horizon = today
        .checked_add(EXPIRING_WITHIN_DAYS.days())
        .unwrap_or(today)
        .to_string();
    let expiring: Vec<Lot> = wallet
        .expiring
        .iter()
        .filter(|(date, _)| **date <= horizon)
        .map(|(date, points)| Lot {
            date: date.clone(),
            points: *points,
        })
        .collect();
    let quarter = quarter_months(current);
    let quarter_stats: Vec<&MonthStats> = member
        .months
        .iter()
        .filter(|m| quarter.contains(&m.month))
        .collect();
    let month_totals = Totals::from(current_stats);
    let state = &member.state;
    Statement {
        participant: state.participant.clone(),
        name: state.profile.name.clone(),
        status: state.status.clone(),
        account: state.profile.account.as_str(),
        role: state.profile.role.clone(),
        distributor: state.profile.distributor.clone(),
        location: state.profile.location.clone(),
        segment: state.segment.clone(),
        enrolled_at: state.enrolled_at.clone(),
        today: today_text,
        wallet: WalletView {
            balance: wallet.balance,
            available: wallet.available,
            pending: wallet.pending,
            deposits: wallet
                .deposits
                .iter()
                .map(|(date, points)| Lot {
                    date: date.clone(),
                    points: *points,
                })
                .collect(),
            expired: wallet.expired,
            expiring_soon: expiring.iter().map(|l| l.points).sum(),
            expiring,
        },
        month: figures(current.label(), [current_stats]),
        quarter: figures(quarter_label(current), quarter_stats),
        days_left_in_month: i64::from(today.days_in_month() - today.day()) + 1,
        drawings: program
            .close
            .drawings
            .iter()
            .filter(|d| is_monthly_for(d, &state.profile.role))
            .map(|d| {
                let have = d.metric.of(&month_totals);
                DrawingProgress {
                    drawing: d.id.clone(),
                    title: d.title.clone(),
                    metric: d.metric.clone(),
                    need: d.at_least,
                    have,
                    entered: have >= d.at_least,
                    missing: (d.at_least - have).max(0),
                }
            })
            .collect(),
        target: target.map(|value| {
            let have = program.segments.value_of(current_stats);
            TargetProgress {
                metric: program.segments.metric.clone(),
                target: value,
                have,
                reached: have >= value,
                missing: (value - have).max(0),
            }
        }),
    }
}

/// A monthly drawing the role may enter.
fn is_monthly_for(drawing: &DrawingConfig, role: &str) -> bool {
    drawing.period == Period::Month
        && drawing
            .roles
            .as_ref()
            .is_none_or(|roles| roles.iter().any(|r| r == role))
}

/// The calendar quarter's months up to the current one.
fn quarter_months(current: Month) -> Vec<String> {
    let label = current.label();
    let month: i32 = label[5..].parse().unwrap_or(1);
    (0..=(month - 1) % 3)
        .rev()
        .map(|back| current.back(back).label())
        .collect()
}

fn quarter_label(current: Month) -> String {
    let label = current.label();
    let month: i32 = label[5..].parse().unwrap_or(1);
    format!("{}-Q{}", &label[..4], (month - 1) / 3 + 1)
}

fn figures<'a>(period: String, months: impl IntoIterator<Item = &'a MonthStats>) -> Figures {
    let mut figures = Figures {
        period,
        points: 0,
        login_days: 0,
        events: 0,
        events_by_type: BTreeMap::new(),
    };
    for month in months {
        let totals = Totals::from(month);
        figures.points += totals.points;
        figures.login_days += totals.login_days;
        for (event_type, count) in totals.counts {
            figures.events += count;
            *figures.events_by_type.entry(event_type).or_default() += count;
        }
    }
    figures
}

/// One ledger entry as the participant sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerEntry {
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    pub status: EntryStatus,
    pub points: i64,
    pub rules: Vec<RuleLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverses: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerPage {
    pub entries: Vec<LedgerEntry>,
    /// The cursor of the next page (`?after=`), `None` on the last.
    pub next: Option<String>,
}

/// Where an entry sits in the ledger's order: newest first by when it occurred (when it was
/// received without one), ties by event id. A cursor is the position of a page's last
/// entry, so entries recorded meanwhile (newer ones) never shift a later page: every entry
/// is on exactly one page.
fn position(record: &EventRecord) -> (String, String) {
    let at = record
        .occurred_at
        .as_deref()
        .or(record.received_at.as_deref())
        .and_then(|at| at.parse::<Timestamp>().ok())
        // Fixed width, so the text orders as the instant does.
        .map_or_else(String::new, |at| {
            format!("{:012}.{:09}", at.as_second(), at.subsec_nanosecond())
        });
    (at, record.event_id.clone())
}

fn encode_cursor(position: &(String, String)) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).expect("strings serialize"))
}

fn decode_cursor(cursor: &str) -> Result<(String, String), StatementError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(StatementError::BadCursor)
}

/// A page of at most `limit` entries after the cursor `after`.
pub async fn ledger<S: StatsReader>(
    store: &S,
    program: &str,
    participant: &str,
    limit: usize,
    after: Option<&str>,
) -> Result<LedgerPage, StatementError> {
    let after = after.map(decode_cursor).transpose()?;
    if store.participant(program, participant).await?.is_none() {
        return Err(StatementError::NotEnrolled(participant.to_owned()));
    }
    let records = store.ledger(program, participant).await?;
    Ok(page(records, limit, after))
}

fn page(records: Vec<EventRecord>, limit: usize, after: Option<(String, String)>) -> LedgerPage {
    let mut records: Vec<((String, String), EventRecord)> = records
        .into_iter()
        .map(|r| (position(&r), r))
        .filter(|(at, _)| after.as_ref().is_none_or(|after| at < after))
        .collect();
    records.sort_by(|a, b| b.0.cmp(&a.0));
    let more = records.len() > limit;
    records.truncate(limit);
    let next = more
        .then(|| records.last().map(|(at, _)| encode_cursor(at)))
        .flatten();
    LedgerPage {
        entries: records
            .into_iter()
            .map(|(_, r)| LedgerEntry {
                event_id: r.event_id,
                event_type: r.event_type,
                status: r.status,
                points: r.points,
                rules: r.rules,
                occurred_at: r.occurred_at,
                pending_until: r.pending_until,
                expires_on: r.expires_on,
                reverses: r.reverses,
                reversed_by: r.reversed_by,
                note: r.note,
            })
            .collect(),
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, occurred_at: &str) -> EventRecord {
        serde_json::from_value(serde_json::json!({
            "event_id": id, "participant": "rep-1", "status": "awarded", "points": 10,
            "occurred_at": occurred_at
        }))
        .unwrap()
    }

    #[test]
    fn ledger_pages_go_newest_first_and_hold_every_entry_once() {
        let mut records: Vec<EventRecord> = (0..23)
            .map(|i| {
                // Offsets vary: order is by instant, not by the text.
                record(
                    &format!("e-{:02}", i % 7),
                    &format!("2026-11-{:02}T10:00:00+0{}:00", 1 + i / 2, i % 3),
                )
            })
            .collect();
        for (i, r) in records.iter_mut().enumerate() {
            r.event_id = format!("{}-{i}", r.event_id);
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = page(records.clone(), 5, after.clone());
            assert!(page.entries.len() <= 5);
            seen.extend(page.entries.iter().map(|e| {
                (
                    e.occurred_at.clone().unwrap().parse::<Timestamp>().unwrap(),
                    e.event_id.clone(),
                )
            }));
            match page.next {
                Some(next) => after = Some(decode_cursor(&next).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 23);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "newest first");
        sorted.dedup();
        assert_eq!(sorted.len(), 23, "each once");
        assert!(matches!(
            decode_cursor("not a cursor"),
            Err(StatementError::BadCursor)
        ));
    }

    #[test]
    fn quarters_hold_their_months_so_far() {
        let month = |label: &str| Month::parse(label).unwrap();
        assert_eq!(quarter_months(month("2026-11")), ["2026-10", "2026-11"]);
        assert_eq!(quarter_months(month("2026-01")), ["2026-01"]);
        assert_eq!(
            quarter_months(month("2026-09")),
            ["2026-07", "2026-08", "2026-09"]
        );
        assert_eq!(quarter_label(month("2026-11")), "2026-Q4");
        assert_eq!(quarter_label(month("2026-03")), "2026-Q1");
    }
}
