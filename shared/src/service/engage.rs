//! The daily engagement run, invoked hourly by the scheduler. For each program it first puts
//! back on the notifications queue every SMS whose quiet hours are over and publishes the
//! outbound events redemption left in its outbox (`service::redeem::drain`); then, once a day
//! at `segments.run_hour` in the program's time zone, it:
//!
//! 1. reads every member with the months the segmentation needs and computes each one's
//!    window score, for the population's ranks and peer percentiles (pass one);
//! 2. reads them again and, per member: folds complete months into their engagement state,
//!    assigns the segment, derives the personal target, plans the journey's steps,
//!    milestones and nudges, builds the weekly digest on its weekday, and queues the messages
//!    and milestone awards; then stores the state and any change of segment (pass two,
//!    checkpointed per roster shard).
//!
//! Every request and award carries its cause as its id, so a rerun after a crash (or a second
//! invocation) sends and credits nothing twice; the state it stores makes the plan of a member
//! already done empty.

use super::redeem::{RedeemStore, drain};
use super::{SendAll, bonus_message};
use crate::domain::counters::MonthStats;
use crate::domain::journey::{JourneyAction, JourneyMember, JourneyState, MonthTarget, plan};
use crate::domain::message::{Channel, NotificationRequest, Recipient, cap_week};
use crate::domain::period::time_zone;
use crate::domain::program::Program;
use crate::domain::rules::Period;
use crate::domain::segments::{
    Assessment, Engagement, Month, Population, Segment, Target, assess, personal_target,
};
use crate::domain::standings::{BOARD_SHARDS, Totals};
use crate::domain::wallet::Wallet;
use crate::ports::{
    Clock, DeferralStore, EngageMember, EngageRun, EngageStore, EventQueue, Outbound, PortError,
    ProgramReader, QueueMessage, SegmentChange, StatsReader,
};
use jiff::civil::Date;
use jiff::{Timestamp, Zoned};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Deferred requests released per program and invocation (the next hour takes the rest).
const RELEASE_LIMIT: usize = 5_000;
/// Participants read in one go (one page of a roster shard is up to 1,000).
const PAGE: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum EngageError {
    #[error(transparent)]
    Store(#[from] PortError),
    #[error("corrupt state: {0}")]
    Corrupt(String),
}

/// What one program's run did, for the log and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub program: String,
    pub released: usize,
    /// Outbound events whose request did not publish them, published now.
    pub published: usize,
    /// The local date of the daily run, when one ran.
    pub day: Option<String>,
    pub members: usize,
    pub segments: std::collections::BTreeMap<String, u64>,
    pub changes: usize,
    pub messages: usize,
    pub awards: usize,
}

impl RunSummary {
    /// Adds what one roster shard's part of the run did.
    fn absorb(&mut self, part: RunSummary) {
        self.members += part.members;
        self.changes += part.changes;
        self.messages += part.messages;
        self.awards += part.awards;
        for (segment, n) in part.segments {
            *self.segments.entry(segment).or_default() += n;
        }
    }
}

pub struct EngageJob<S, D, P, Q, N, O, C> {
    pub store: S,
    pub deferrals: D,
    pub programs: P,
    /// Shared by the roster shards' parallel tasks.
    pub events: Arc<Q>,
    pub notifications: Arc<N>,
    /// The outbound topic: order events left in the outbox.
    pub outbound: O,
    pub clock: C,
}

impl<S, D, P, Q, N, O, C> EngageJob<S, D, P, Q, N, O, C>
where
    S: EngageStore + StatsReader + RedeemStore + Clone + 'static,
    D: DeferralStore,
    P: ProgramReader,
    Q: EventQueue + 'static,
    N: EventQueue + 'static,
    O: Outbound,
    C: Clock,
{
    /// The hourly tick: every program with a stored configuration. One failing program does
    /// not hold up the others; the first error is returned after all have run.
    pub async fn tick(&self, programs: &[String]) -> (Vec<RunSummary>, Option<EngageError>) {
        let mut summaries = Vec::new();
        let mut first_error = None;
        for program in programs {
            match self.run(program).await {
                Ok(summary) => summaries.push(summary),
                Err(error) => {
                    tracing::error!(program, %error, "engagement run failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        (summaries, first_error)
    }

    /// One program: releases due deferrals, then the daily run if it is due and not done.
    pub async fn run(&self, program_id: &str) -> Result<RunSummary, EngageError> {
        let now = self.clock.now();
        let mut summary = RunSummary {
            program: program_id.to_owned(),
            released: self.release(program_id, now).await?,
            ..RunSummary::default()
        };
        // A topic that is down must not hold up the daily run: the next hour drains again.
        match drain(&self.store, &self.outbound, program_id, now).await {
            Ok(published) => summary.published = published,
            Err(error) => tracing::warn!(program_id, %error, "outbox drain failed"),
        }
        let Some(versions) = self.programs.versions(program_id).await? else {
            return Ok(summary);
        };
        let program = versions.latest().clone();
        // The day's run state says whether today's run finished, so no last run is passed.
        let Some(day) = program.segments.run_day(now, &program.time_zone, None) else {
            return Ok(summary);
        };
        let local = now.to_zoned(program.time_zone.clone());
        let run = self.store.run(program_id, &day).await?.unwrap_or_default();
        if run.done {
            return Ok(summary);
        }
        summary.day = Some(day.clone());
        self.daily(&program, &local, run, &mut summary).await?;
        Ok(summary)
    }

    /// Puts every due deferred request back on the notifications queue, then forgets it (a
    /// crash in between sends it twice to the queue, and the sender's log sends it once).
    async fn release(&self, program: &str, now: Timestamp) -> Result<usize, EngageError> {
        let due = self.deferrals.due(program, now, RELEASE_LIMIT).await?;
        for deferred in &due {
            self.notifications
                .send_all(vec![QueueMessage {
                    id: "0".into(),
                    body: deferred.request.clone(),
                }])
                .await?;
            self.deferrals.release(program, &deferred.key).await?;
        }
        Ok(due.len())
    }

    async fn daily(
        &self,
        program: &Program,
        local: &Zoned,
        run: EngageRun,
        summary: &mut RunSummary,
    ) -> Result<(), EngageError> {
        let day = local.date().to_string();
        let current = Month::of(local.timestamp(), local.time_zone());
        let months: Arc<Vec<String>> = Arc::new(
            (0..=program.segments.months_needed() as i32)
                .rev()
                .map(|back| current.back(back).label())
                .collect(),
        );
        let program = Arc::new(program.clone());
        // Pass one, every shard in parallel: each member's assessment, for the ranks of the
        // top tiers and the percentiles among peers of the same role.
        let mut shards = tokio::task::JoinSet::new();
        for shard in 0..BOARD_SHARDS {
            let (store, program, months) = (self.store.clone(), program.clone(), months.clone());
            shards.spawn(async move {
                let mut assessed = Vec::new();
                let mut pages = Pages::new(&store, &program.id, shard, &months);
                while let Some(members) = pages.next().await? {
                    for member in members.iter().filter(|m| is_active(m)) {
                        let (engagement, stats) = fold(&store, &program, member, current).await?;
                        let assessment = assess(&program.segments, &engagement, &stats, current);
                        assessed.push((member.state.profile.role.clone(), assessment));
                    }
                }
                Ok::<_, EngageError>(assessed)
            });
        }
        let mut assessed: Vec<(String, Assessment)> = Vec::new();
        while let Some(result) = shards.join_next().await {
            assessed.extend(result.map_err(|e| EngageError::Corrupt(e.to_string()))??);
        }
        let population = Population::new(&program.segments, assessed.iter().map(|(_, a)| a));
        let mut roles: Vec<&str> = assessed.iter().map(|(role, _)| role.as_str()).collect();
        roles.sort_unstable();
        roles.dedup();
        let peers: HashMap<String, Population> = roles
            .into_iter()
            .map(|role| {
                let of_role = assessed.iter().filter(|(r, _)| r == role).map(|(_, a)| a);
                (role.to_owned(), Population::new(&program.segments, of_role))
            })
            .collect();
        drop(assessed);
        let ranks = Arc::new((population, peers));
        // Pass two, the shards not done yet in parallel; each checkpoints when it is done, so
        // a run cut short resumes with the rest.
        let mut shards = tokio::task::JoinSet::new();
        for shard in (0..BOARD_SHARDS).filter(|s| !run.shards.contains(s)) {
            let store = self.store.clone();
            let (events, notifications) = (self.events.clone(), self.notifications.clone());
            let (program, months, ranks, local) = (
                program.clone(),
                months.clone(),
                ranks.clone(),
                local.clone(),
            );
            let day = day.clone();
            shards.spawn(async move {
                let mut summary = RunSummary::default();
                let mut pages = Pages::new(&store, &program.id, shard, &months);
                while let Some(members) = pages.next().await? {
                    let mut messages = Vec::new();
                    let mut awards = Vec::new();
                    let mut saves = Vec::new();
                    for member in members.iter().filter(|m| is_active(m)) {
                        let (engagement, stats) = fold(&store, &program, member, current).await?;
                        let planned = plan_member(
                            &program, &local, current, member, engagement, &stats, &ranks.0,
                            &ranks.1,
                        )?;
                        *summary
                            .segments
                            .entry(planned.segment.as_str().to_owned())
                            .or_default() += 1;
                        summary.members += 1;
                        messages.extend(planned.messages);
                        awards.extend(planned.awards);
                        saves.extend(planned.save);
                    }
                    summary.messages += messages.len();
                    summary.awards += awards.len();
                    // Ids are unique within one send call.
                    for (i, message) in messages.iter_mut().chain(awards.iter_mut()).enumerate() {
                        message.id = i.to_string();
                    }
                    // Messages and awards first, then the state: a crash in between queues
                    // them again (their ids make that harmless), never loses them.
                    notifications.send_all(messages).await?;
                    events.send_all(awards).await?;
                    for save in saves {
                        summary.changes += usize::from(save.change.is_some());
                        store
                            .save(
                                &program.id,
                                &save.participant,
                                &save.engagement,
                                &save.journey,
                                save.change.as_ref(),
                            )
                            .await?;
                    }
                }
                store.checkpoint(&program.id, &day, shard).await?;
                Ok::<_, EngageError>(summary)
            });
        }
        let mut first_error = None;
        while let Some(result) = shards.join_next().await {
            match result.map_err(|e| EngageError::Corrupt(e.to_string())) {
                Ok(Ok(part)) => summary.absorb(part),
                Ok(Err(error)) | Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        self.store.finish(&program.id, &day).await?;
        tracing::info!(
            program = %program.id,
            members = summary.members,
            changes = summary.changes,
            messages = summary.messages,
            awards = summary.awards,
            "engagement run done"
        );
        Ok(())
    }
}

/// The members of one roster shard, a page at a time.
struct Pages<'a, S> {
    store: &'a S,
    program: &'a str,
    shard: u8,
    months: &'a [String],
    /// Ids of the roster page being read, and where the next roster page starts.
    ids: std::vec::IntoIter<String>,
    after: Option<String>,
    exhausted: bool,
}

impl<'a, S: EngageStore> Pages<'a, S> {
    fn new(store: &'a S, program: &'a str, shard: u8, months: &'a [String]) -> Self {
        Pages {
            store,
            program,
            shard,
            months,
            ids: Vec::new().into_iter(),
            after: None,
            exhausted: false,
        }
    }

    /// The next members (at most `PAGE`), `None` once the shard is read.
    async fn next(&mut self) -> Result<Option<Vec<EngageMember>>, EngageError> {
        loop {
            let batch: Vec<String> = self.ids.by_ref().take(PAGE).collect();
            if !batch.is_empty() {
                return Ok(Some(
                    self.store
                        .members(self.program, &batch, self.months)
                        .await?,
                ));
            }
            if self.exhausted {
                return Ok(None);
            }
            let (ids, next) = self
                .store
                .roster(self.program, self.shard, self.after.take())
                .await?;
            self.exhausted = next.is_none();
            self.after = next;
            self.ids = ids.into_iter();
        }
    }
}

/// The member's stored engagement with every complete month folded in, and the current
/// month's figures so far. A member's first fold reads their whole month history, so
/// lifetime totals (which milestones read) miss nothing.
pub async fn fold<S: StatsReader>(
    store: &S,
    program: &Program,
    member: &EngageMember,
    current: Month,
) -> Result<(Engagement, MonthStats), EngageError> {
    let (mut engagement, history) = match &member.engagement {
        Some(text) => {
            let engagement = serde_json::from_str(text).map_err(|e| {
                EngageError::Corrupt(format!(
                    "engagement state of {}: {e}",
                    member.state.participant
                ))
            })?;
            (engagement, None)
        }
        None => (
            Engagement::default(),
            Some(store.months(&program.id, &member.state.participant).await?),
        ),
    };
    let months = history.as_deref().unwrap_or(&member.months);
    engagement.fold(months, current, &program.segments.metric);
    let label = current.label();
    let stats = months
        .iter()
        .find(|m| m.month == label)
        .cloned()
        .unwrap_or_else(|| MonthStats {
            month: label,
            ..MonthStats::default()
        });
    Ok((engagement, stats))
}

/// One member's plan for today: what to send, what to credit, what to store.
#[allow(clippy::too_many_arguments)]
fn plan_member(
    program: &Program,
    local: &Zoned,
    current: Month,
    member: &EngageMember,
    mut engagement: Engagement,
    current_stats: &MonthStats,
    population: &Population,
    peers: &HashMap<String, Population>,
) -> Result<Planned, EngageError> {
    let today = local.date();
    let now = local.timestamp();
    let id = &member.state.participant;
    let assessment = assess(&program.segments, &engagement, current_stats, current);
    let segment = assessment.segment(population);
    let transition = engagement.assign(segment, &today.to_string());
    let change = transition.as_ref().map(|t| SegmentChange {
        date: t.on.clone(),
        from: t.from.map(|s| s.as_str().to_owned()),
        to: t.to.as_str().to_owned(),
    });
    let target = personal_target(&program.segments, &engagement, current);
    let percentile = peers
        .get(member.state.profile.role.as_str())
        .map_or(0, |p| p.percentile(assessment.score));
    let mut requests = Vec::new();
    let request = |kind: &str, id: String, channel: Channel, data: Value| NotificationRequest {
        id,
        program: program.id.clone(),
        participant: member.state.participant.clone(),
        recipient: Recipient::Participant,
        kind: kind.to_owned(),
        channel,
        essential: false,
        period: Some(current.label()),
        data,
        created_at: now.to_string(),
    };
    if let Some(transition) = &transition
        && program.segments.announces(transition)
    {
        // At most one announcement of a segment a month, however often the member moves
        // in and out of it.
        requests.push(request(
            "segment.entered",
            format!("{}:segment:{}:{current}:{id}", program.id, transition.to),
            Channel::Email,
            json!({"segment": transition.to, "previous": transition.from}),
        ));
    }
    let journey_state: JourneyState = match &member.journey {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| EngageError::Corrupt(format!("journey state of {id}: {e}")))?,
        None => JourneyState::default(),
    };
    // Journeys run on the participant's own calendar: day 0 is their enrolment date where
    // they are.
    let own_zone =
        time_zone(&member.state.profile.time_zone).unwrap_or_else(|_| local.time_zone().clone());
    let enrolled_on = member
        .state
        .enrolled_at
        .parse::<Timestamp>()
        .map_err(|e| EngageError::Corrupt(format!("enrolment time of {id}: {e}")))?
        .to_zoned(own_zone)
        .date();
    let journey_member = journey_member(
        program,
        member_ids(member),
        enrolled_on,
        &engagement,
        current_stats,
        segment,
        target.as_ref(),
    );
    let planned = plan(
        &program.journeys,
        &program.close.drawings,
        &journey_member,
        &journey_state,
        today,
    );
    let mut awards = Vec::new();
    for action in planned.actions {
        match action {
            JourneyAction::Send {
                id,
                kind,
                channel,
                data,
            } => requests.push(request(&kind, id, channel, data)),
            JourneyAction::Award {
                id: event_id,
                points,
                reason,
            } => {
                let body = bonus_message(&program.id, id, &event_id, points, &reason, now, now)
                    .map_err(EngageError::Corrupt)?;
                awards.push(QueueMessage {
                    id: awards.len().to_string(),
                    body,
                });
            }
        }
    }
    if today.weekday() == program.notifications.digest.weekday {
        let week = cap_week(now, local.time_zone());
        let wallet = Wallet::of(member.state.balance, &member.counters, &today.to_string());
        let expiring: Vec<Value> = wallet
            .expiring
            .iter()
            .take(3)
            .map(|(date, points)| json!({"date": date, "points": points}))
            .collect();
        let drawings: Vec<Value> = program
            .close
            .drawings
            .iter()
            .filter(|d| d.period == Period::Month)
            .map(|d| json!({"title": d.title, "have": d.metric.of(&journey_member.month), "need": d.at_least}))
            .collect();
        requests.push(request(
            "digest",
            format!("{}:digest:{week}:{id}", program.id),
            Channel::Email,
            json!({
                "week": week,
                "points_week": engagement.points_since_digest(current_stats),
                "balance": wallet.balance,
                "available": wallet.available,
                "pending": wallet.pending,
                "expiring": expiring,
                "percentile": percentile,
                "drawings": drawings,
                "target": journey_member.target.as_ref().map(|t| json!({"target": t.value, "have": t.have})),
            }),
        ));
        engagement.digest_sent(current_stats);
    }
    let messages = requests
        .iter()
        .enumerate()
        .map(|(i, r)| QueueMessage {
            id: i.to_string(),
            body: serde_json::to_string(r).expect("a request serializes"),
        })
        .collect();
    let engagement = serde_json::to_string(&engagement).expect("state serializes");
    let journey = serde_json::to_string(&planned.state).expect("state serializes");
    // Most days change nothing of most members: only a changed state is written.
    let unchanged = change.is_none()
        && member.engagement.as_deref() == Some(engagement.as_str())
        && member.journey.as_deref() == Some(journey.as_str());
    Ok(Planned {
        segment,
        messages,
        awards,
        save: (!unchanged).then(|| Save {
            participant: id.clone(),
            engagement,
            journey,
            change,
        }),
    })
}

/// Who a member is, for the journey planner: participant, role, and whether they have a
/// phone.
pub struct MemberIds<'a> {
    pub participant: &'a str,
    pub role: &'a str,
    pub has_phone: bool,
}

fn member_ids<'a>(member: &'a EngageMember) -> MemberIds<'a> {
    MemberIds {
        participant: &member.state.participant,
        role: &member.state.profile.role,
        has_phone: member.state.profile.phone.is_some(),
    }
}

/// What the journey planner sees of a member today: their own calendar, lifetime and month
/// figures (the month's counters so far), today's segment and the personal target with the
/// progress toward it.
pub fn journey_member<'a>(
    program: &'a Program,
    ids: MemberIds<'a>,
    enrolled_on: Date,
    engagement: &Engagement,
    stats: &MonthStats,
    segment: Segment,
    target: Option<&Target>,
) -> JourneyMember<'a> {
    JourneyMember {
        program: &program.id,
        participant: ids.participant,
        role: ids.role,
        enrolled_on,
        lifetime: engagement.lifetime_with(stats),
        month: Totals::from(stats),
        segment: Some(segment.as_str()),
        has_phone: ids.has_phone,
        target: target.map(|t| MonthTarget {
            metric: &program.segments.metric,
            value: t.value,
            have: program.segments.value_of(stats),
        }),
    }
}

struct Planned {
    segment: Segment,
    messages: Vec<QueueMessage>,
    awards: Vec<QueueMessage>,
    save: Option<Save>,
}

struct Save {
    participant: String,
    engagement: String,
    journey: String,
    change: Option<SegmentChange>,
}

/// Suspended and terminated reps are neither segmented nor nudged.
fn is_active(member: &EngageMember) -> bool {
    member.state.status == "active"
}
