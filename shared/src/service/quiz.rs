//! Quizzes: definitions (answer key server-side), what a participant may take, and attempts
//! graded on the server. A graded attempt is a `quiz.completed` event on the events queue, so
//! the program's rules award its points, exactly once per attempt id.

use super::{ATTEMPTS, Refusal, enrolled, queue_event, quoted};
use crate::domain::error::FieldError;
use crate::domain::quiz::{Attempt, Quiz, Score, attempt_event_id};
use crate::ports::{AwardStore, EventQueue, PortError, ProgramReader, StatsReader};
use crate::service::redeem::retry_pause;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use std::future::Future;

/// Quiz definitions and attempts as stored.
pub trait QuizStore: Send + Sync {
    /// Stores the definition; true when it is new.
    fn put_quiz(
        &self,
        program: &str,
        quiz: &Quiz,
        by: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;

    fn quiz(
        &self,
        program: &str,
        quiz: &str,
    ) -> impl Future<Output = Result<Option<Quiz>, PortError>> + Send;

    fn quizzes(&self, program: &str) -> impl Future<Output = Result<Vec<Quiz>, PortError>> + Send;

    /// The participant's attempts, of one quiz or of all, oldest first per quiz.
    fn attempts(
        &self,
        program: &str,
        participant: &str,
        quiz: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Attempt>, PortError>> + Send;

    /// Stores the attempt and moves the participant's attempt counter of the quiz from
    /// `attempt.number - 1` to `attempt.number`, atomically: `ConditionFailed` when the
    /// counter moved meanwhile or the attempt id exists.
    fn record_attempt(
        &self,
        program: &str,
        participant: &str,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// `PUT …/quizzes/{quiz}`: the definition as stored (with its answer key: an admin route).
pub async fn put_quiz<S: QuizStore>(
    store: &S,
    program: &str,
    id: &str,
    body: &Value,
    by: &str,
    now: Timestamp,
) -> Result<(Quiz, bool), Refusal> {
    let quiz = Quiz::from_json(id, body)
        .map_err(|errors| Refusal::Invalid("the quiz is not valid".into(), errors))?;
    let created = store.put_quiz(program, &quiz, by, now).await?;
    tracing::info!(program, quiz = id, created, "quiz stored");
    Ok((quiz, created))
}

/// A quiz as one participant sees it in their list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    #[serde(flatten)]
    pub quiz: Value,
    pub attempts_used: u32,
    pub attempts_left: u32,
    /// The best attempt so far: correct answers out of the questions.
    pub best: Option<Score>,
    /// What a perfect attempt would earn now under the program's rules.
    pub perfect_attempt_points: Option<i64>,
    /// The welcome quiz, once the participant has logged in and not yet taken it.
    pub offered: bool,
}

/// `GET …/participants/{participant}/quizzes`: the quizzes open to the participant's role,
/// the offered welcome quiz first, without answers.
pub async fn offers<S, P>(
    store: &S,
    programs: &P,
    program: &str,
    participant: &str,
    now: Timestamp,
) -> Result<Vec<Offer>, Refusal>
where
    S: QuizStore + StatsReader + AwardStore,
    P: ProgramReader,
{
    let state = enrolled(store, program, participant).await?;
    let attempts = store.attempts(program, participant, None).await?;
    let logged_in = store
        .months(program, participant)
        .await?
        .iter()
        .any(|m| !m.login_days.is_empty());
    let mut offers = Vec::new();
    for quiz in store.quizzes(program).await? {
        if !quiz.open_to(&state.profile.role) {
            continue;
        }
        let own: Vec<&Attempt> = attempts.iter().filter(|a| a.quiz == quiz.id).collect();
        let used = own.len() as u32;
        let questions = quiz.questions.len();
        let perfect = quoted(
            store,
            programs,
            program,
            participant,
            "quiz.completed",
            json!({"quiz_id": quiz.id, "questions": questions, "correct": questions}),
            now,
        )
        .await?;
        offers.push(Offer {
            quiz: quiz.public(),
            attempts_used: used,
            attempts_left: quiz.attempts.saturating_sub(used),
            best: own.iter().map(|a| a.score()).max_by_key(|s| s.correct),
            perfect_attempt_points: perfect,
            offered: quiz.welcome && logged_in && used == 0,
        });
    }
    offers.sort_by_key(|o| !o.offered);
    Ok(offers)
}

/// An attempt as the participant sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graded {
    #[serde(flatten)]
    pub attempt: Attempt,
    pub attempts_allowed: u32,
    pub attempts_left: u32,
    /// The answer key, only once no attempt is left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Map<String, Value>>,
}

impl Graded {
    fn of(quiz: &Quiz, attempt: Attempt) -> Self {
        let left = quiz.attempts.saturating_sub(attempt.number);
        Graded {
            attempt,
            attempts_allowed: quiz.attempts,
            attempts_left: left,
            key: (left == 0).then(|| quiz.key()),
        }
    }
}

/// `POST …/participants/{participant}/quizzes/{quiz}/attempts`: grades `{id, answers}`,
/// stores the attempt if one is left (atomically), and queues its `quiz.completed` event.
/// The same id again answers the stored attempt (true: it is new) and queues the event again
/// (the award function records it once).
pub async fn attempt<S, Q>(
    store: &S,
    queue: &Q,
    program: &str,
    participant: &str,
    quiz_id: &str,
    body: &serde_json::Map<String, Value>,
    now: Timestamp,
) -> Result<(Graded, bool), Refusal>
where
    S: QuizStore + StatsReader,
    Q: EventQueue,
{
    let mut errors: Vec<FieldError> = body
        .keys()
        .filter(|k| !["id", "answers"].contains(&k.as_str()))
        .map(|k| FieldError::new(k.clone(), "is not an attempt field (expected id, answers)"))
        .collect();
    let id = match body.get("id") {
        Some(Value::String(id)) => id.clone(),
        _ => {
            errors.push(FieldError::new(
                "id",
                "is required: a unique id for this attempt (a retry reuses it)",
            ));
            String::new()
        }
    };
    let event_id = match attempt_event_id(quiz_id, &id) {
        Ok(event_id) => event_id,
        Err(more) => {
            errors.extend(more.into_iter().filter(|_| !id.is_empty()));
            String::new()
        }
    };
    let state = enrolled(store, program, participant).await?;
    let quiz = store
        .quiz(program, quiz_id)
        .await?
        .filter(|q| q.open_to(&state.profile.role))
        .ok_or_else(|| {
            Refusal::NotFound(format!(
                "quiz {quiz_id:?} is not open to participant {participant:?}"
            ))
        })?;
    let answers = body.get("answers").cloned().unwrap_or(Value::Null);
    let grading = quiz.grade(&answers);
    if let Err(more) = &grading {
        errors.extend(more.iter().cloned());
    }
    if !errors.is_empty() {
        return Err(Refusal::Invalid("the attempt is not valid".into(), errors));
    }
    let grading = grading.expect("checked");
    for round in 1..=ATTEMPTS {
        let attempts = store.attempts(program, participant, Some(quiz_id)).await?;
        if let Some(done) = attempts.iter().find(|a| a.id == id) {
            if done.answers != answers {
                return Err(Refusal::Mismatch(format!(
                    "attempt {id:?} was made with other answers"
                )));
            }
            send(queue, program, participant, &quiz, done, now).await?;
            return Ok((Graded::of(&quiz, done.clone()), false));
        }
        let used = attempts.len() as u32;
        if used >= quiz.attempts {
            return Err(Refusal::Conflict(format!(
                "no attempt left: {used} of {} used",
                quiz.attempts
            )));
        }
        let attempt = Attempt {
            quiz: quiz.id.clone(),
            id: id.clone(),
            number: used + 1,
            answers: answers.clone(),
            grading: grading.clone(),
            event_id: event_id.clone(),
            at: now.to_string(),
        };
        match store.record_attempt(program, participant, &attempt).await {
            Ok(()) => {
                tracing::info!(
                    program,
                    participant,
                    quiz = quiz_id,
                    number = attempt.number,
                    "quiz attempt"
                );
                send(queue, program, participant, &quiz, &attempt, now).await?;
                return Ok((Graded::of(&quiz, attempt), true));
            }
            // A concurrent attempt moved the counter (or took this id): read again.
            Err(PortError::ConditionFailed) => {}
            Err(PortError::Transient(_)) => tokio::time::sleep(retry_pause(round)).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(PortError::Transient("concurrent attempts kept conflicting".into()).into())
}

/// The attempt's `quiz.completed` event, occurring when the attempt was made.
async fn send<Q: EventQueue>(
    queue: &Q,
    program: &str,
    participant: &str,
    quiz: &Quiz,
    attempt: &Attempt,
    now: Timestamp,
) -> Result<(), Refusal> {
    let envelope = json!({
        "id": attempt.event_id,
        "participant": participant,
        "type": "quiz.completed",
        "occurred_at": attempt.at,
        "attributes": {
            "quiz_id": quiz.id,
            "questions": attempt.grading.questions,
            "correct": attempt.grading.correct,
            "attempt": attempt.number,
        },
    });
    queue_event(queue, program, &envelope, now).await
}
