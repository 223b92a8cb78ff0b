//! The period close, exactly once however often it runs:
//!
//! 1. **Decide**: read every participant of the program (the roster index, shard by shard,
//!    and their profiles and month items), rank the boards, pick the drawings' entrants, judge
//!    the stick, commit each drawing to its entrant list and a fresh seed.
//! 2. **Freeze**: store that outcome under a new run id, then the close's state naming the
//!    run (only if no state exists). A crash before this point leaves nothing that counts; a
//!    rerun decides again. After it, every rerun reads the frozen outcome and decides nothing.
//! 3. **Draw** from the frozen commitments (deterministic given the seed), store the records.
//! 4. **Apply** the effects in the frozen order, checkpointing how many are done: bonus
//!    credits (events keyed by board or drawing and period, so the award function records each
//!    once), strikes and sanctions (conditional on the participant's stored state), notices
//!    (requests keyed by their cause), outbound events (keyed by cause).
//! 5. **Publish** the standings, lists and report documents, and mark the close done.

use super::{SendAll, bonus_message};
use crate::domain::close::{BoardOutcome, ClosePeriod, Decision, Judged, Member, decide};
use crate::domain::drawing::{self, DrawingRecord};
use crate::domain::envelope::{BONUS_TYPE, LOGIN_TYPE};
use crate::domain::ledger::{EntryStatus, EventRecord};
use crate::domain::program::Program;
use crate::domain::report::{
    BoardReport, BoardRow, DrawingReport, DrawingWinner, HistoryPoint, NoticeSummary,
    Participation, PeriodKind, PointsSummary, Report,
};
use crate::domain::rules::Period;
use crate::domain::standings::{BOARD_SHARDS, Contribution, Metric, Placed, Placing, reached_at};
use crate::domain::stick::{Sanction, Verdict};
use crate::ports::{
    Clock, CloseState, CloseStore, EventQueue, Outbound, PortError, ProgramReader, QueueMessage,
    StatsReader,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Effects applied between checkpoints.
const CHECKPOINT_EVERY: usize = 200;
/// Entries of a list document per page, so each page stays far under DynamoDB's 400 KB.
pub const LIST_PAGE: usize = 2_000;
/// Bytes of the frozen outcome per stored part.
const FROZEN_PART: usize = 300 * 1024;

/// What the close uses.
pub struct CloseJob<S, P, Q, N, O, C> {
    pub store: S,
    pub programs: P,
    /// The events queue: bonus credits go through the award function like any event.
    pub events: Q,
    /// The notifications queue: notices to reps and managers.
    pub notifications: N,
    pub outbound: O,
    pub clock: C,
    /// Where each drawing's seed comes from (the OS's randomness in production).
    pub seed: fn() -> [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("program {0:?} has no configuration")]
    NoProgram(String),
    #[error("period {period:?} has not ended plus the close delay ({delay_hours} h) yet")]
    NotDue { period: String, delay_hours: i64 },
    #[error("{0}")]
    BadPeriod(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("the frozen outcome is unreadable: {0}")]
    Corrupt(String),
}

/// What a close did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Closed {
    pub program: String,
    pub period: String,
    pub participants: u64,
    pub effects: u64,
    /// Effects applied by this run (0 when an earlier run had finished them).
    pub applied_now: u64,
    pub resumed: bool,
}

/// A board's awarded places, per group it is drawn up within.
type BoardPlacings = (String, Vec<(Option<String>, Vec<Placing>)>);

/// The outcome a close freezes: decided once, read back by every rerun.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Frozen {
    decision: Decision,
    /// Per board, per group (`within`): the awarded places.
    placings: Vec<BoardPlacings>,
    /// Committed drawings and the seeds they commit to (hex), kept out of the API until drawn.
    drawings: Vec<(DrawingRecord, String)>,
    /// The members of each placed group (`{board}#{group}`): each gets the group's award.
    group_members: std::collections::BTreeMap<String, Vec<String>>,
}

/// One effect of a close, in the frozen order.
#[derive(Debug, Clone, PartialEq)]
enum Effect {
    Credit {
        participant: String,
        event_id: String,
        points: i64,
        reason: String,
    },
    Strike {
        participant: String,
    },
    Sanction {
        participant: String,
        sanction: Sanction,
    },
    Notice {
        participant: String,
        kind: &'static str,
        to_manager: bool,
        data: Value,
    },
}

impl<S, P, Q, N, O, C> CloseJob<S, P, Q, N, O, C>
where
    S: CloseStore + StatsReader + Clone + 'static,
    P: ProgramReader,
    Q: EventQueue,
    N: EventQueue,
    O: Outbound,
    C: Clock,
{
    /// Closes every due period of every program (the hourly scheduled job). A program whose
    /// close fails does not hold the others up; the first failure fails the run, so the
    /// scheduler retries it (every close is idempotent).
    pub async fn close_due(&self) -> Result<Vec<Closed>, CloseError> {
        let now = self.clock.now();
        let mut closed = Vec::new();
        let mut failure = None;
        for program in self.store.programs().await? {
            match self.close_due_of(&program, now).await {
                Ok(mut done) => closed.append(&mut done),
                Err(error) => {
                    tracing::error!(program, %error, "close failed; the next run retries it");
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(closed),
        }
    }

    async fn close_due_of(&self, program: &str, now: Timestamp) -> Result<Vec<Closed>, CloseError> {
        let Some(versions) = self.programs.versions(program).await? else {
            return Ok(Vec::new());
        };
        let zone = &versions.latest().time_zone;
        let first = versions.schedule().first().map(|(from, _)| *from);
        let kinds: Vec<_> = versions
            .all()
            .iter()
            .flat_map(|v| v.close.kinds())
            .collect();
        let mut closed = Vec::new();
        for kind in [Period::Month, Period::Quarter, Period::Year] {
            if !kinds.contains(&kind) {
                continue;
            }
            // Each period by the version in force at its end: its delay, its boards.
            let guess = ClosePeriod::latest_due(kind, now, zone, 0);
            let version = versions.at(guess.last_instant(zone));
            let period = ClosePeriod::latest_due(kind, now, zone, version.close.delay_hours);
            let version = versions.at(period.last_instant(zone));
            let wanted = kind == Period::Month || version.close.kinds().contains(&kind);
            // Nothing to close before the program's first version applied.
            let started = first.is_some_and(|from| from <= period.last_instant(zone));
            if !wanted || !started {
                continue;
            }
            let done = self
                .store
                .state(program, &period.label)
                .await?
                .is_some_and(|s| s.done);
            if !done {
                closed.push(self.close(program, &period.label).await?);
            }
        }
        Ok(closed)
    }

    /// Closes one period of one program, or finishes a close a crash interrupted.
    pub async fn close(&self, program_id: &str, label: &str) -> Result<Closed, CloseError> {
        let period = ClosePeriod::parse(label).map_err(CloseError::BadPeriod)?;
        let versions = self
            .programs
            .versions(program_id)
            .await?
            .ok_or_else(|| CloseError::NoProgram(program_id.to_owned()))?;
        let zone = versions.latest().time_zone.clone();
        let program = versions.at(period.last_instant(&zone));
        let now = self.clock.now();
        let delay = program.close.delay_hours;
        if now < period.end(&zone) + jiff::SignedDuration::from_hours(delay) {
            return Err(CloseError::NotDue {
                period: label.to_owned(),
                delay_hours: delay,
            });
        }
        let existing = self.store.state(program_id, label).await?;
        let resumed = existing.is_some();
        let state = match existing {
            Some(state) => state,
            None => {
                let frozen = self.decide(program, &period, now).await?;
                let text = serde_json::to_string(&frozen).expect("frozen outcomes serialize");
                self.store
                    .freeze(program_id, label, program.version, &now.to_string(), &text)
                    .await?
            }
        };
        let text = self.store.frozen(program_id, label, &state).await?;
        let frozen: Frozen =
            serde_json::from_str(&text).map_err(|e| CloseError::Corrupt(e.to_string()))?;
        let drawn = self.draw(program, &period, &frozen, &state).await?;
        let effects = effects(program, &period, &frozen, &drawn);
        let mut applied = state.applied as usize;
        let start = applied;
        if !state.done {
            while applied < effects.len() {
                let end = (applied + CHECKPOINT_EVERY).min(effects.len());
                self.apply(program, &period, &effects[applied..end], &state)
                    .await?;
                applied = end;
                self.store
                    .checkpoint(program_id, label, applied as u64)
                    .await?;
            }
            self.publish(program, &period, &frozen, &drawn, &state)
                .await?;
            self.store.finish(program_id, label).await?;
        }
        tracing::info!(
            program = program_id,
            period = label,
            effects = effects.len(),
            applied_now = applied - start,
            resumed,
            "period closed"
        );
        Ok(Closed {
            program: program_id.to_owned(),
            period: label.to_owned(),
            participants: frozen.decision.figures.enrolled + frozen.decision.figures.terminated,
            effects: effects.len() as u64,
            applied_now: (applied - start) as u64,
            resumed,
        })
    }

    /// Reads every member and decides the close.
    async fn decide(
        &self,
        program: &Program,
        period: &ClosePeriod,
        now: Timestamp,
    ) -> Result<Frozen, CloseError> {
        let members = self.members(&program.id, period).await?;
        let mut decision = decide(program, period, &members);
        let mut placings = Vec::new();
        let mut group_members = std::collections::BTreeMap::new();
        for outcome in &decision.boards {
            let reached = self.reach_times(program, period, outcome, &members).await?;
            let placed = crate::domain::close::placings(program, outcome, &reached);
            let board = program.close.boards.iter().find(|b| b.id == outcome.board);
            if let Some((board, grouping)) = board.and_then(|b| Some((b, b.ranks?))) {
                for (_, places) in &placed {
                    for place in places {
                        let ids = members
                            .iter()
                            .filter(|m| board.admits(*m) && m.group(grouping) == Some(&place.name))
                            .map(|m| m.participant.clone())
                            .collect();
                        group_members.insert(format!("{}#{}", board.id, place.name), ids);
                    }
                }
            }
            placings.push((outcome.board.clone(), placed));
        }
        decision.keep_shown(program);
        let drawings = program
            .close
            .drawings
            .iter()
            .filter_map(|d| {
                let entrants = decision.entrants.get(&d.id)?;
                let seed = (self.seed)();
                let record = drawing::commit(
                    &program.id,
                    &d.id,
                    &period.label,
                    entrants,
                    d.prizes.clone(),
                    &seed,
                    &now.to_string(),
                );
                Some((record, hex::encode(seed)))
            })
            .collect();
        Ok(Frozen {
            decision,
            placings,
            drawings,
            group_members,
        })
    }

    /// Every enrolled participant, read shard by shard of the roster index in parallel.
    async fn members(
        &self,
        program: &str,
        period: &ClosePeriod,
    ) -> Result<Vec<Member>, CloseError> {
        let mut shards = tokio::task::JoinSet::new();
        for shard in 0..BOARD_SHARDS {
            let (store, program, period) = (self.store.clone(), program.to_owned(), period.clone());
            shards.spawn(async move {
                let mut members = Vec::new();
                let mut after = None;
                loop {
                    let (ids, next) = store.roster(&program, shard, after).await?;
                    for batch in ids.chunks(50) {
                        members.extend(store.members(&program, batch, &period).await?);
                    }
                    match next {
                        Some(next) => after = Some(next),
                        None => return Ok::<_, PortError>(members),
                    }
                }
            });
        }
        let mut members = Vec::new();
        while let Some(result) = shards.join_next().await {
            members.extend(result.map_err(|e| PortError::Transient(e.to_string()))??);
        }
        members.sort_by(|a, b| a.participant.cmp(&b.participant));
        Ok(members)
    }

    /// When each tied entry of an awarded place reached its score, from the ledgers.
    async fn reach_times(
        &self,
        program: &Program,
        period: &ClosePeriod,
        outcome: &BoardOutcome,
        members: &[Member],
    ) -> Result<HashMap<String, Timestamp>, CloseError> {
        let Some(board) = program.close.boards.iter().find(|b| b.id == outcome.board) else {
            return Ok(HashMap::new());
        };
        let mut reached = HashMap::new();
        for standings in &outcome.standings {
            for tie in standings.ties_to_break(board.awards.len()) {
                for name in tie {
                    // A group reaches its average when its last member reached theirs.
                    let participants: Vec<&Member> = match board.ranks {
                        None => members.iter().filter(|m| m.participant == name).collect(),
                        Some(g) => members
                            .iter()
                            .filter(|m| board.admits(*m) && m.group(g) == Some(&name))
                            .collect(),
                    };
                    let mut latest: Option<Timestamp> = None;
                    for m in participants {
                        let score = board.metric.of(&m.totals);
                        if score <= 0 {
                            continue;
                        }
                        let ledger = self.store.ledger(&program.id, &m.participant).await?;
                        let entries = contributions(&board.metric, period, &ledger);
                        if let Some(at) = reached_at(&board.metric, score, entries) {
                            latest = latest.max(Some(at));
                        }
                    }
                    if let Some(at) = latest {
                        reached.insert(name, at);
                    }
                }
            }
        }
        Ok(reached)
    }

    /// Draws every committed drawing not drawn yet; returns every drawn record.
    async fn draw(
        &self,
        program: &Program,
        period: &ClosePeriod,
        frozen: &Frozen,
        _state: &CloseState,
    ) -> Result<Vec<DrawingRecord>, CloseError> {
        let mut drawn = Vec::new();
        for (committed, seed) in &frozen.drawings {
            let name = format!("drawing#{}", committed.drawing);
            if let Some((text, _)) = self
                .store
                .document(&program.id, &period.label, &name, 0)
                .await?
            {
                let record: DrawingRecord =
                    serde_json::from_str(&text).map_err(|e| CloseError::Corrupt(e.to_string()))?;
                drawn.push(record);
                continue;
            }
            let entrants = frozen
                .decision
                .entrants
                .get(&committed.drawing)
                .map_or(&[][..], Vec::as_slice);
            let seed: [u8; 32] = hex::decode(seed)
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| CloseError::Corrupt("a drawing seed".into()))?;
            let record = drawing::draw(committed, entrants, &seed, &self.clock.now().to_string());
            // The entrant list first, then the record: a record is never served without it.
            self.store
                .put_document(
                    &program.id,
                    &period.label,
                    &format!("entrants#{}", committed.drawing),
                    &pages(entrants),
                )
                .await?;
            self.store
                .put_document(
                    &program.id,
                    &period.label,
                    &name,
                    &[serde_json::to_string(&record).expect("records serialize")],
                )
                .await?;
            drawn.push(record);
        }
        Ok(drawn)
    }

    /// Applies a chunk of effects in order; the chunk is done only when every one succeeded.
    async fn apply(
        &self,
        program: &Program,
        period: &ClosePeriod,
        effects: &[Effect],
        state: &CloseState,
    ) -> Result<(), CloseError> {
        let now = self.clock.now();
        let mut credits = Vec::new();
        let mut notices = Vec::new();
        for effect in effects {
            match effect {
                Effect::Credit {
                    participant,
                    event_id,
                    points,
                    reason,
                } => {
                    // The credit belongs to the last instant of the period it rewards.
                    let occurred_at = period.last_instant(&program.time_zone);
                    let body = bonus_message(
                        &program.id,
                        participant,
                        event_id,
                        *points,
                        reason,
                        occurred_at,
                        now,
                    )
                    .map_err(CloseError::Corrupt)?;
                    credits.push(QueueMessage {
                        id: credits.len().to_string(),
                        body,
                    });
                }
                Effect::Strike { participant } => {
                    self.store
                        .strike(&program.id, participant, &period.label)
                        .await?;
                }
                Effect::Sanction {
                    participant,
                    sanction,
                } => {
                    self.store
                        .sanction(&program.id, participant, sanction.status(), &period.label)
                        .await?;
                    let kind = format!("participant.{}", sanction.status());
                    let event = json!({
                        "id": format!("{}:{}:{kind}:{participant}", program.id, period.label),
                        "type": kind,
                        "program": program.id,
                        "participant": participant,
                        "status": sanction.status(),
                        "period": period.label,
                        "occurred_at": state.frozen_at,
                    });
                    self.outbound.publish(&kind, &event.to_string()).await?;
                }
                Effect::Notice {
                    participant,
                    kind,
                    to_manager,
                    data,
                } => {
                    let recipient = if *to_manager {
                        "manager"
                    } else {
                        "participant"
                    };
                    let request = json!({
                        "id": format!("{}:{}:{kind}:{recipient}:{participant}", program.id, period.label),
                        "program": program.id,
                        "participant": participant,
                        "recipient": recipient,
                        "kind": kind,
                        "period": period.label,
                        // Notices of the stick are not nudges: frequency caps do not hold them.
                        "essential": true,
                        "data": data,
                        "created_at": state.frozen_at,
                    });
                    notices.push(QueueMessage {
                        id: notices.len().to_string(),
                        body: request.to_string(),
                    });
                }
            }
        }
        for (queue, messages) in [
            (&self.events as &dyn SendAll, credits),
            (&self.notifications as &dyn SendAll, notices),
        ] {
            queue.send_all(messages).await?;
        }
        Ok(())
    }

    /// Stores the standings, the lists and the report.
    async fn publish(
        &self,
        program: &Program,
        period: &ClosePeriod,
        frozen: &Frozen,
        drawn: &[DrawingRecord],
        state: &CloseState,
    ) -> Result<(), CloseError> {
        let (id, label) = (&program.id, &period.label);
        let mut boards = Vec::new();
        for (outcome, (_, placed)) in frozen.decision.boards.iter().zip(&frozen.placings) {
            let board = program
                .close
                .boards
                .iter()
                .find(|b| b.id == outcome.board)
                .expect("frozen boards are the program's");
            let document = json!({
                "board": board.id,
                "title": board.title,
                "metric": board.metric.name(),
                "period": label,
                "ranks": board.ranks_name(),
                "final": true,
                "standings": outcome.standings.iter().map(|s| json!({
                    "within": s.within,
                    "rows": s.shown(board.show),
                })).collect::<Vec<_>>(),
                "awards": placed.iter().map(|(within, places)| json!({
                    "within": within,
                    "places": places.iter().zip(&board.awards).map(|(p, a)| json!({
                        "place": p.place, "rank": p.rank, "name": p.name,
                        "score": p.score, "award": a.describe(),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            self.store
                .put_document(
                    id,
                    label,
                    &format!("board#{}", board.id),
                    &[document.to_string()],
                )
                .await?;
            for (standings, (_, places)) in outcome.standings.iter().zip(placed) {
                let awards: HashMap<&str, String> = places
                    .iter()
                    .zip(&board.awards)
                    .map(|(p, a)| (p.name.as_str(), a.describe()))
                    .collect();
                boards.push(BoardReport {
                    board: board.id.clone(),
                    title: board.title.clone(),
                    metric: board.metric.name().to_owned(),
                    period: label.clone(),
                    ranks: board.ranks_name().to_owned(),
                    within: standings.within.clone(),
                    rows: standings
                        .shown(board.show)
                        .iter()
                        .map(|r| BoardRow {
                            rank: r.rank,
                            name: r.name.clone(),
                            score: r.score.to_string(),
                            award: awards.get(r.name.as_str()).cloned(),
                        })
                        .collect(),
                });
            }
        }
        let decision = &frozen.decision;
        let lists: [(&str, Vec<&str>); 4] = [
            (
                "zero-logins",
                decision.zero_logins.iter().map(String::as_str).collect(),
            ),
            ("notices", judged(decision, |v| v == Verdict::Notice)),
            (
                "to-be-suspended",
                judged(decision, |v| v == Verdict::FirstStrike),
            ),
            (
                "sanctioned",
                judged(decision, |v| matches!(v, Verdict::Sanctioned(_))),
            ),
        ];
        for (name, entries) in &lists {
            self.store
                .put_document(id, label, &format!("list#{name}"), &pages(entries))
                .await?;
        }
        let report = self
            .report(program, period, frozen, drawn, &boards, state)
            .await?;
        self.store
            .put_document(
                id,
                label,
                "report",
                &[serde_json::to_string(&report).expect("reports serialize")],
            )
            .await?;
        Ok(())
    }

    async fn report(
        &self,
        program: &Program,
        period: &ClosePeriod,
        frozen: &Frozen,
        drawn: &[DrawingRecord],
        boards: &[BoardReport],
        state: &CloseState,
    ) -> Result<Report, CloseError> {
        let f = &frozen.decision.figures;
        let count = |pred: fn(Verdict) -> bool| {
            frozen
                .decision
                .judged
                .iter()
                .filter(|j| pred(j.verdict))
                .count() as u64
        };
        let managers = program
            .close
            .non_use
            .as_ref()
            .is_some_and(|p| p.notify_manager);
        let kind = match period.kind.as_str() {
            "quarter" => PeriodKind::Quarter,
            "year" => PeriodKind::Year,
            _ => PeriodKind::Month,
        };
        let mut history = Vec::new();
        for earlier in previous_periods(period, 11) {
            if let Some((text, _)) = self
                .store
                .document(&program.id, &earlier, "report", 0)
                .await?
                && let Ok(report) = serde_json::from_str::<Report>(&text)
            {
                history.push(HistoryPoint {
                    period: earlier,
                    enrolled: report.participation.enrolled,
                    active: report.participation.active,
                    issued: report.points.issued,
                    liability: report.points.liability,
                });
            }
        }
        history.reverse();
        history.push(HistoryPoint {
            period: period.label.clone(),
            enrolled: f.enrolled,
            active: f.active,
            issued: f.issued,
            liability: f.liability,
        });
        let bonuses = effects(program, period, frozen, drawn)
            .iter()
            .map(|e| match e {
                Effect::Credit { points, .. } => *points,
                _ => 0,
            })
            .sum();
        Ok(Report {
            program: program.id.clone(),
            period: period.label.clone(),
            kind,
            starts_on: period.starts_on.to_string(),
            ends_on: period.ends_on.to_string(),
            time_zone: program.time_zone_name.clone(),
            config_version: state.config_version,
            closed_at: state.frozen_at.clone(),
            points_value: program.points_value.as_ref().map(|(v, _)| v.to_string()),
            currency: program
                .points_value
                .as_ref()
                .map(|(_, c)| c.as_str().to_owned()),
            participation: Participation {
                enrolled: f.enrolled,
                active: f.active,
                suspended: f.suspended,
                terminated: f.terminated,
                new: f.new,
            },
            login_day_distribution: f.login_day_distribution.clone(),
            points: PointsSummary {
                issued: f.issued,
                reversed: f.reversed,
                bonuses,
                liability: f.liability,
                pending: f.pending,
            },
            history,
            boards: boards.to_vec(),
            drawings: drawn
                .iter()
                .map(|d| DrawingReport {
                    drawing: d.drawing.clone(),
                    title: program
                        .close
                        .drawings
                        .iter()
                        .find(|c| c.id == d.drawing)
                        .map_or_else(|| d.drawing.clone(), |c| c.title.clone()),
                    entrants: d.entrant_count,
                    tickets: d.ticket_count,
                    entrants_sha256: d.entrants_sha256.clone(),
                    seed_commitment: d.seed_commitment.clone(),
                    seed: d.seed.clone(),
                    winners: d
                        .winners
                        .iter()
                        .map(|w| DrawingWinner {
                            prize: w.prize.clone(),
                            participant: w.participant.clone(),
                        })
                        .collect(),
                })
                .collect(),
            notices: NoticeSummary {
                below_threshold: count(|v| v == Verdict::Notice),
                manager_emails: if managers {
                    frozen
                        .decision
                        .judged
                        .iter()
                        .filter(|j| j.has_manager)
                        .count() as u64
                } else {
                    0
                },
                zero_logins: frozen.decision.zero_logins.len() as u64,
                first_strikes: count(|v| v == Verdict::FirstStrike),
                suspended: count(|v| v == Verdict::Sanctioned(Sanction::Suspend)),
                terminated: count(|v| v == Verdict::Sanctioned(Sanction::Terminate)),
            },
            segments: frozen.decision.figures.segments.clone(),
        })
    }
}

fn judged(decision: &Decision, pick: impl Fn(Verdict) -> bool) -> Vec<&str> {
    decision
        .judged
        .iter()
        .filter(|j| pick(j.verdict))
        .map(|j| j.participant.as_str())
        .collect()
}

/// A list split in pages of JSON arrays.
fn pages<T: Serialize>(entries: &[T]) -> Vec<String> {
    if entries.is_empty() {
        return vec!["[]".into()];
    }
    entries
        .chunks(LIST_PAGE)
        .map(|page| serde_json::to_string(page).expect("lists serialize"))
        .collect()
}

/// Splits the frozen outcome's text in parts that fit an item.
pub fn frozen_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(FROZEN_PART);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    parts
}

/// The labels of the `n` periods of the same kind before `period`, latest first.
fn previous_periods(period: &ClosePeriod, n: usize) -> Vec<String> {
    let mut labels = Vec::new();
    let mut current = period.starts_on;
    for _ in 0..n {
        let months = period.months.len() as i64;
        let Ok(earlier) = current.checked_sub(jiff::Span::new().months(months)) else {
            break;
        };
        current = earlier;
        let (y, m) = (earlier.year(), earlier.month());
        labels.push(match period.kind.as_str() {
            "quarter" => format!("{y:04}-Q{}", (m - 1) / 3 + 1),
            "year" => format!("{y:04}"),
            _ => format!("{y:04}-{m:02}"),
        });
    }
    labels
}

/// A participant's ledger entries that count toward a board's metric over the period.
fn contributions(
    metric: &Metric,
    period: &ClosePeriod,
    ledger: &[EventRecord],
) -> Vec<Contribution> {
    ledger
        .iter()
        .filter(|r| r.month.as_ref().is_some_and(|m| period.months.contains(m)))
        .filter(|r| r.event_type.as_deref() != Some(BONUS_TYPE))
        .filter_map(|r| {
            let occurred_at: Timestamp = r.occurred_at.as_deref()?.parse().ok()?;
            let counted = matches!(
                r.status,
                EntryStatus::Awarded | EntryStatus::Reversed | EntryStatus::Reversal
            );
            let amount = match metric {
                Metric::Points => r.points,
                Metric::LoginDays => 1,
                Metric::Events(types) => {
                    let of_type = r.event_type.as_ref().is_some_and(|t| types.contains(t));
                    match r.status {
                        _ if !of_type => 0,
                        EntryStatus::Reversal => -1,
                        _ => 1,
                    }
                }
            };
            let login_date = (r.event_type.as_deref() == Some(LOGIN_TYPE))
                .then(|| r.day.clone())
                .flatten();
            (counted || login_date.is_some()).then_some(Contribution {
                occurred_at,
                amount: if counted { amount } else { 0 },
                login_date,
            })
        })
        .collect()
}

/// The effects of a frozen close, in order: credits, then the stick participant by participant.
fn effects(
    program: &Program,
    period: &ClosePeriod,
    frozen: &Frozen,
    drawn: &[DrawingRecord],
) -> Vec<Effect> {
    let mut effects = Vec::new();
    let members_of = |board: &crate::domain::standings::Board, name: &str| -> Vec<String> {
        match board.ranks {
            None => vec![name.to_owned()],
            Some(_) => frozen
                .group_members
                .get(&format!("{}#{name}", board.id))
                .cloned()
                .unwrap_or_default(),
        }
    };
    for (board_id, placed) in &frozen.placings {
        let Some(board) = program.close.boards.iter().find(|b| &b.id == board_id) else {
            continue;
        };
        for (_, places) in placed {
            for (place, award) in places.iter().zip(&board.awards) {
                if award.points == 0 {
                    continue;
                }
                for participant in members_of(board, &place.name) {
                    effects.push(Effect::Credit {
                        event_id: format!("close:{}:{}", period.label, board.id),
                        participant,
                        points: award.points,
                        reason: format!(
                            "{} {}: place {} ({})",
                            board.title, period.label, place.place, place.name
                        ),
                    });
                }
            }
        }
    }
    for record in drawn {
        for (i, winner) in record.winners.iter().enumerate() {
            if winner.points > 0 {
                effects.push(Effect::Credit {
                    participant: winner.participant.clone(),
                    event_id: format!("draw:{}:{}", period.label, record.drawing),
                    points: winner.points,
                    reason: format!(
                        "drawing {} {}: prize {} ({})",
                        record.drawing,
                        period.label,
                        i + 1,
                        winner.prize
                    ),
                });
            }
            effects.push(Effect::Notice {
                participant: winner.participant.clone(),
                kind: "drawing.won",
                to_manager: false,
                data: json!({
                    "drawing": record.drawing,
                    "title": program
                        .close
                        .drawings
                        .iter()
                        .find(|d| d.id == record.drawing)
                        .map(|d| d.title.as_str()),
                    "prize": winner.prize,
                    "points": winner.points,
                }),
            });
        }
    }
    let policy = program.close.non_use.as_ref();
    let notify_manager = policy.is_some_and(|p| p.notify_manager);
    for Judged {
        participant,
        verdict,
        has_manager,
        used,
    } in &frozen.decision.judged
    {
        match verdict {
            Verdict::Notice => {}
            Verdict::FirstStrike => effects.push(Effect::Strike {
                participant: participant.clone(),
            }),
            Verdict::Sanctioned(sanction) => effects.push(Effect::Sanction {
                participant: participant.clone(),
                sanction: *sanction,
            }),
        }
        // What the rep's month was against the policy, for the message to say it plainly.
        let data = json!({
            "verdict": verdict,
            "usage": policy.map(|p| p.usage),
            "used": used,
            "needed": policy.map(|p| p.notice_below),
            "sanction": policy.map(|p| p.sanction),
        });
        effects.push(Effect::Notice {
            participant: participant.clone(),
            kind: verdict.notice_kind(),
            to_manager: false,
            data: data.clone(),
        });
        if notify_manager && *has_manager {
            effects.push(Effect::Notice {
                participant: participant.clone(),
                kind: "non_use.manager",
                to_manager: true,
                data,
            });
        }
    }
    effects
}
