//! Quizzes: a definition of 5 to 10 questions whose answer key stays on the server, and the
//! grading of an attempt. What a quiz earns is not here: a graded attempt becomes a
//! `quiz.completed` event and the program's rules decide the points.

use super::error::{FieldError, FieldErrors, check_identifier};
use super::money::json_kind;
use super::rules::{Fields, check_rule_id};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

pub const MIN_QUESTIONS: usize = 5;
pub const MAX_QUESTIONS: usize = 10;
pub const MAX_OPTIONS: usize = 6;
pub const MAX_ATTEMPTS: u32 = 10;

/// The prefix of a quiz attempt's event id: `quiz:{quiz}:{attempt}`.
pub const EVENT_PREFIX: &str = "quiz:";

const FIELDS: [&str; 7] = [
    "title",
    "description",
    "questions",
    "attempts",
    "welcome",
    "roles",
    "active",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiz {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub questions: Vec<Question>,
    /// Attempts a participant may make.
    pub attempts: u32,
    /// The welcome quiz, offered once the participant has logged in.
    pub welcome: bool,
    /// Only participants of these roles may take it (`None`: everyone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub text: String,
    pub options: Vec<Choice>,
    /// The id of the correct option: the answer key, never shown to participants before
    /// their last attempt is used.
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub text: String,
}

/// One question of a graded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marked {
    pub question: String,
    pub answer: String,
    pub correct: bool,
}

/// A graded attempt: what the `quiz.completed` event carries, and each question's mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grading {
    pub questions: u32,
    pub correct: u32,
    pub marks: Vec<Marked>,
}

/// One attempt of a participant at a quiz, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub quiz: String,
    /// The caller's id for the attempt: a retry reuses it.
    pub id: String,
    /// 1 for the participant's first attempt at this quiz.
    pub number: u32,
    /// As submitted: `{question id: option id}`.
    pub answers: Value,
    #[serde(flatten)]
    pub grading: Grading,
    /// The `quiz.completed` event the attempt queued.
    pub event_id: String,
    pub at: String,
}

impl Attempt {
    pub fn score(&self) -> Score {
        Score {
            correct: self.grading.correct,
            questions: self.grading.questions,
        }
    }
}

/// Correct answers out of the questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Score {
    pub correct: u32,
    pub questions: u32,
}

impl Quiz {
    /// Validates an administrator's definition of quiz `id`, naming every error by its path.
    pub fn from_json(id: &str, value: &Value) -> Result<Quiz, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        if let Err(reason) = check_rule_id(id) {
            errors.push("quiz", reason);
        }
        let Some(f) = Fields::of(value, "", &FIELDS, &mut errors) else {
            return Err(errors.0);
        };
        let title = f.text("title", true, &mut errors);
        let description = f.text("description", false, &mut errors);
        let listed = f.list("questions", &mut errors);
        if f.get("questions").is_none() {
            errors.push("questions", "is required");
        } else if !(MIN_QUESTIONS..=MAX_QUESTIONS).contains(&listed.len()) {
            errors.push(
                "questions",
                format!(
                    "must hold {MIN_QUESTIONS} to {MAX_QUESTIONS} questions, got {}",
                    listed.len()
                ),
            );
        }
        let mut seen = HashSet::new();
        let questions: Vec<Question> = listed
            .iter()
            .enumerate()
            .filter_map(|(i, q)| {
                let path = format!("questions[{i}]");
                // Checked on every written id, so an earlier invalid question still counts.
                if let Some(id) = q.get("id").and_then(Value::as_str)
                    && !seen.insert(id)
                {
                    errors.push(
                        format!("{path}.id"),
                        format!("{id:?} is the id of an earlier question"),
                    );
                }
                parse_question(q, &path, &mut errors)
            })
            .collect();
        let attempts = f
            .int("attempts", 1..=i64::from(MAX_ATTEMPTS), false, &mut errors)
            .map_or(1, |n| n as u32);
        let welcome = f.flag("welcome", &mut errors);
        let active = f.get("active").is_none() || f.flag("active", &mut errors);
        let roles = f.texts("roles", &mut errors);
        let quiz = errors.is_empty().then(|| Quiz {
            id: id.to_owned(),
            title: title.expect("checked"),
            description,
            questions,
            attempts,
            welcome,
            roles,
            active,
        });
        errors.into_result(()).map(|()| quiz.expect("checked"))
    }

    /// Whether a participant of `role` may take the quiz.
    pub fn open_to(&self, role: &str) -> bool {
        self.active
            && self
                .roles
                .as_ref()
                .is_none_or(|roles| roles.iter().any(|r| r == role))
    }

    /// The quiz as participants see it: questions and options, no answer key.
    pub fn public(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "welcome": self.welcome,
            "attempts_allowed": self.attempts,
            "questions": self.questions.iter().map(|q| json!({
                "id": q.id,
                "text": q.text,
                "options": q.options,
            })).collect::<Vec<_>>(),
        })
    }

    /// Grades `answers` (`{question id: option id}`): every question must be answered with
    /// one of its options, so a half-filled form never uses up an attempt.
    pub fn grade(&self, answers: &Value) -> Result<Grading, Vec<FieldError>> {
        let mut errors = FieldErrors::default();
        let Some(answers) = answers.as_object() else {
            return Err(vec![FieldError::new(
                "answers",
                format!(
                    "is required: an object of question id to option id, got {}",
                    json_kind(answers)
                ),
            )]);
        };
        for key in answers
            .keys()
            .filter(|k| !self.questions.iter().any(|q| &q.id == *k))
        {
            errors.push(format!("answers.{key}"), "is not a question of this quiz");
        }
        let mut marks = Vec::with_capacity(self.questions.len());
        for question in &self.questions {
            let field = format!("answers.{}", question.id);
            match answers.get(&question.id) {
                Some(Value::String(answer)) if question.options.iter().any(|o| &o.id == answer) => {
                    marks.push(Marked {
                        question: question.id.clone(),
                        answer: answer.clone(),
                        correct: *answer == question.answer,
                    })
                }
                None | Some(Value::Null) => {
                    errors.push(field, "is required: every question is answered")
                }
                Some(other) => errors.push(
                    field,
                    format!(
                        "must be one of the options {:?}, got {other}",
                        question.options.iter().map(|o| &o.id).collect::<Vec<_>>()
                    ),
                ),
            }
        }
        errors.into_result(())?;
        Ok(Grading {
            questions: self.questions.len() as u32,
            correct: marks.iter().filter(|m| m.correct).count() as u32,
            marks,
        })
    }

    /// The correct option of each question (shown once no attempt is left).
    pub fn key(&self) -> Map<String, Value> {
        self.questions
            .iter()
            .map(|q| (q.id.clone(), Value::String(q.answer.clone())))
            .collect()
    }
}

/// The event id of an attempt; errors name `id` when it does not fit in an event id.
pub fn attempt_event_id(quiz: &str, attempt: &str) -> Result<String, Vec<FieldError>> {
    let mut errors = FieldErrors::default();
    check_identifier(&mut errors, "id", attempt);
    let event_id = format!("{EVENT_PREFIX}{quiz}:{attempt}");
    if errors.is_empty() && event_id.len() > 128 {
        errors.push(
            "id",
            format!(
                "must be at most {} characters for this quiz",
                128 - (event_id.len() - attempt.len())
            ),
        );
    }
    errors.into_result(event_id)
}

fn parse_question(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<Question> {
    let before = errors.0.len();
    let f = Fields::of(value, path, &["id", "text", "options", "answer"], errors)?;
    let id = f.id("id", errors);
    let text = f.text("text", true, errors);
    let listed = f.list("options", errors);
    if !(2..=MAX_OPTIONS).contains(&listed.len()) {
        errors.push(
            f.at("options"),
            format!("must hold 2 to {MAX_OPTIONS} options, got {}", listed.len()),
        );
    }
    let mut options: Vec<Choice> = Vec::new();
    for (i, option) in listed.iter().enumerate() {
        let path = format!("{}[{i}]", f.at("options"));
        let Some(g) = Fields::of(option, &path, &["id", "text"], errors) else {
            continue;
        };
        let (id, text) = (g.id("id", errors), g.text("text", true, errors));
        if let Some(id) = &id
            && options.iter().any(|o| &o.id == id)
        {
            errors.push(g.at("id"), format!("{id:?} is the id of an earlier option"));
        }
        if let (Some(id), Some(text)) = (id, text) {
            options.push(Choice { id, text });
        }
    }
    let answer = f.text("answer", true, errors);
    if let Some(answer) = &answer
        && !listed.is_empty()
        && !options.iter().any(|o| &o.id == answer)
    {
        errors.push(
            f.at("answer"),
            format!("must be the id of one of the options, got {answer:?}"),
        );
    }
    (errors.0.len() == before).then(|| Question {
        id: id.expect("checked"),
        text: text.expect("checked"),
        options,
        answer: answer.expect("checked"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn definition(questions: usize) -> Value {
        let questions: Vec<Value> = (1..=questions)
            .map(|i| {
                json!({"id": format!("q{i}"), "text": format!("Question {i}?"),
                    "options": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}, {"id": "c", "text": "C"}],
                    "answer": if i % 2 == 0 { "b" } else { "a" }})
            })
            .collect();
        json!({"title": "Product knowledge", "questions": questions, "attempts": 2})
    }

    #[test]
    fn a_definition_parses_with_its_defaults() {
        let quiz = Quiz::from_json("mx-500", &definition(5)).unwrap();
        assert_eq!(quiz.attempts, 2);
        assert!(quiz.active && !quiz.welcome && quiz.roles.is_none());
        assert!(quiz.open_to("sales_rep"));
        let public = quiz.public().to_string();
        assert!(!public.contains("answer"), "{public}");
    }

    #[test]
    fn every_bad_field_is_named_by_its_path() {
        let mut bad = definition(4);
        bad["questions"][0]["answer"] = json!("z");
        bad["questions"][1]["id"] = json!("q1");
        bad["questions"][2]["options"] = json!([{"id": "a", "text": "A"}, {"id": "a", "text": ""}]);
        bad["attempts"] = json!(0);
        bad["colour"] = json!("red");
        let errors = Quiz::from_json("Bad Id", &bad).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "quiz",
            "colour",
            "questions",
            "questions[0].answer",
            "questions[1].id",
            "questions[2].options[1].id",
            "questions[2].options[1].text",
            "attempts",
        ] {
            assert!(fields.contains(&expected), "{expected} not in {fields:?}");
        }
        assert!(Quiz::from_json("q", &definition(11)).is_err());
        assert!(Quiz::from_json("q", &json!({"title": "T"})).is_err());
    }

    #[test]
    fn grading_counts_correct_answers_and_refuses_incomplete_or_unknown_ones() {
        let quiz = Quiz::from_json("mx-500", &definition(5)).unwrap();
        let graded = quiz
            .grade(&json!({"q1": "a", "q2": "b", "q3": "b", "q4": "b", "q5": "c"}))
            .unwrap();
        assert_eq!((graded.questions, graded.correct), (5, 3));
        assert!(graded.marks[0].correct && !graded.marks[2].correct);
        let errors = quiz
            .grade(&json!({"q1": "a", "q2": "x", "q9": "a", "q3": 1}))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "answers.q9",
                "answers.q2",
                "answers.q3",
                "answers.q4",
                "answers.q5"
            ]
        );
        assert_eq!(quiz.grade(&json!([])).unwrap_err()[0].field, "answers");
    }

    #[test]
    fn an_attempt_id_must_fit_in_an_event_id() {
        assert_eq!(
            attempt_event_id("welcome", "a-1").unwrap(),
            "quiz:welcome:a-1"
        );
        assert_eq!(
            attempt_event_id("welcome", &"x".repeat(120)).unwrap_err()[0].field,
            "id"
        );
        assert!(attempt_event_id("welcome", "a#1").is_err());
    }

    proptest! {
        /// Grading counts exactly the questions whose answer is the key, whatever is chosen.
        #[test]
        fn grading_matches_the_key(choices in proptest::collection::vec(0usize..3, 5..=10)) {
            let quiz = Quiz::from_json("q", &definition(choices.len())).unwrap();
            let answers: Map<String, Value> = choices.iter().enumerate()
                .map(|(i, c)| (format!("q{}", i + 1), json!(["a", "b", "c"][*c])))
                .collect();
            let graded = quiz.grade(&Value::Object(answers.clone())).unwrap();
            let expected = quiz.questions.iter()
                .filter(|q| answers[&q.id] == json!(q.answer)).count() as u32;
            prop_assert_eq!(graded.correct, expected);
            prop_assert_eq!(graded.questions as usize, choices.len());
        }
    }
}
