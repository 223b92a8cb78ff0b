//! A fuzz-equivalent harness (cargo-fuzz needs a nightly toolchain; this runs on stable with
//! `cargo test`): arbitrary bytes, arbitrary JSON trees and mutations of the valid sample
//! documents, thrown at the parsers that face the outside world — the event envelope and the
//! ingest body, the signature headers, the program configuration. Each must answer with a
//! valid result or a clean error naming a field, and never panic (a panic in a handler is a
//! 500 and, in the award worker, a message retried until it reaches the dead-letter queue).
//!
//! `CARROT_FUZZ_CASES` sets the number of cases per target (default 2,000); for a long run,
//! e.g. `CARROT_FUZZ_CASES=200000 cargo test -p carrot --lib fuzz_tests --release`.

use crate::domain::envelope::{MAX_EVENT_BYTES, parse_event};
use crate::domain::error::FieldError;
use crate::domain::program::Program;
use crate::domain::queued::QueuedEvent;
use crate::domain::signature::{SignatureError, TOLERANCE_SECS, sign, verify};
use crate::http::Caller;
use crate::ports::{EventQueue, PortError, QueueMessage};
use crate::service::ingest::ingest;
use jiff::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use std::sync::Mutex;

const SAMPLE_PROGRAM: &str = include_str!("../../../events/admin/program.yaml");
const SAMPLE_POINTS_TABLE: &str = include_str!("../../../events/admin/program-points-table.yaml");
const SAMPLE_BATCH: &str = include_str!("../../../events/ingest/batch_all_types.json");

fn runner() -> TestRunner {
    let cases = std::env::var("CARROT_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn now() -> Timestamp {
    Timestamp::from_second(1_795_000_000).expect("in range")
}

/// Strings that have broken parsers before: number-like words, extremes, offsets, control
/// and multi-byte characters next to the byte positions the timestamp check indexes.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NaN".to_owned()),
        Just("-Infinity".to_owned()),
        Just("1e309".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("0x1F".to_owned()),
        Just("2026-11-03T08:02:11+01:00".to_owned()),
        Just("2026-11-03T08:02:11€1234".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        Just("-009999-01-01T00:00:00Z".to_owned()),
        Just("2026-02-30T08:00:00+25:00".to_owned()),
        Just("rep-anna\r\nBcc: all@example.com".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("\u{0}\u{202e}\u{feff}".to_owned()),
        "[a-z]{1,8}\\.[a-z_]{1,12}",
        "[0-9T:+Z.-]{18,30}",
        // A well-formed date and time, then anything: where the offset check reads bytes.
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\PC{0,7}",
        "\\PC{0,40}",
        any::<String>(),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        hostile_string().prop_map(Value::String),
    ]
}

/// Object keys: mostly the names the parsers look for, so trees reach past the first check.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "participant",
            "type",
            "occurred_at",
            "attributes",
            "events",
            "program",
            "name",
            "time_zone",
            "points",
            "rules",
            "when",
            "award",
            "original_event",
            "financed_volume",
            "currency",
        ])
        .prop_map(str::to_owned),
        hostile_string(),
    ]
}

fn arbitrary_json() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((json_key(), inner), 0..8)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

/// One edit of a document: at the `at`-th node (in document order, modulo the node count),
/// replace it, remove it from its parent, or add a member or element next to it.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Insert(usize, String, Value),
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        (any::<usize>(), arbitrary_json()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), json_key(), arbitrary_json())
            .prop_map(|(at, k, v)| Mutation::Insert(at, k, v)),
    ]
    .boxed()
}

/// JSON pointers of every node of `value`, the root first.
fn pointers(value: &Value, at: String, into: &mut Vec<String>) {
    into.push(at.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), into);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), into);
            }
        }
        _ => {}
    }
}

fn mutate(mut document: Value, mutations: &[Mutation]) -> Value {
    for mutation in mutations {
        let mut all = Vec::new();
        pointers(&document, String::new(), &mut all);
        let (Mutation::Replace(at, _) | Mutation::Remove(at) | Mutation::Insert(at, ..)) = mutation;
        let pointer = &all[at % all.len()];
        let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", ""));
        let last = last.replace("~1", "/").replace("~0", "~");
        match mutation {
            Mutation::Replace(_, value) => {
                *document.pointer_mut(pointer).expect("listed") = value.clone();
            }
            Mutation::Remove(_) => match document.pointer_mut(parent) {
                Some(Value::Object(map)) if !pointer.is_empty() => {
                    map.remove(&last);
                }
                Some(Value::Array(items)) if !pointer.is_empty() => {
                    items.remove(last.parse::<usize>().expect("an index"));
                }
                _ => document = Value::Null,
            },
            Mutation::Insert(_, key, value) => match document.pointer_mut(pointer) {
                Some(Value::Object(map)) => {
                    map.insert(key.clone(), value.clone());
                }
                Some(Value::Array(items)) => items.push(value.clone()),
                Some(leaf) => *leaf = json!([leaf.take(), value.clone()]),
                None => unreachable!("listed"),
            },
        }
    }
    document
}

fn sample_batch() -> Value {
    let request: Value = serde_json::from_str(SAMPLE_BATCH).expect("the sample parses");
    serde_json::from_str(request["body"].as_str().expect("a body")).expect("the body parses")
}

fn sample_programs() -> Vec<Value> {
    [SAMPLE_PROGRAM, SAMPLE_POINTS_TABLE]
        .iter()
        .map(|text| serde_yaml_ng::from_str(text).expect("the sample parses"))
        .collect()
}

/// A clean refusal: at least one error, each saying why. (The field is the path of the
/// offending member, which is empty for a member named `""`.)
fn assert_clean(errors: &[FieldError]) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "refused without a reason");
    for error in errors {
        prop_assert!(
            !error.reason.is_empty(),
            "an error gives no reason: {error:?}"
        );
    }
    Ok(())
}

/// A valid event survives its own queue message unchanged, within the size limit.
fn check_envelope(value: &Value) -> Result<(), TestCaseError> {
    match parse_event(value, "", now()) {
        Ok(event) => {
            prop_assert!(event.to_json().to_string().len() <= MAX_EVENT_BYTES);
            let reparsed = parse_event(&event.to_json(), "", now());
            prop_assert_eq!(reparsed.map(|e| e.to_json()), Ok(event.to_json()));
        }
        Err(errors) => assert_clean(&errors)?,
    }
    Ok(())
}

#[test]
fn the_envelope_parser_answers_every_tree_and_mutated_sample_cleanly() {
    let events: Vec<Value> = sample_batch()["events"]
        .as_array()
        .expect("a batch")
        .clone();
    let mutated = (
        prop::sample::select(events),
        prop::collection::vec(mutation(), 1..4),
    )
        .prop_map(|(event, mutations)| mutate(event, &mutations));
    let inputs = prop_oneof![arbitrary_json(), mutated];
    runner()
        .run(&inputs, |value| check_envelope(&value))
        .unwrap();
}

/// Records what ingest queues, and accepts it all.
#[derive(Default)]
struct RecordingQueue(Mutex<Vec<QueueMessage>>);

impl EventQueue for RecordingQueue {
    async fn send(&self, messages: &[QueueMessage]) -> Vec<Result<(), PortError>> {
        self.0.lock().unwrap().extend_from_slice(messages);
        messages.iter().map(|_| Ok(())).collect()
    }
}

/// Ingest either queues every accepted event as a message the award function can read, or
/// refuses with a 4xx naming the fields, and queues nothing.
fn check_ingest(runtime: &tokio::runtime::Runtime, body: &[u8]) -> Result<(), TestCaseError> {
    let queue = RecordingQueue::default();
    let caller = Caller {
        key_id: "acme-crm".into(),
        program: "acme".into(),
    };
    let answer = runtime.block_on(ingest(&queue, &caller, body, now()));
    let queued = queue.0.into_inner().unwrap();
    match answer {
        Ok(report) => {
            prop_assert!(report.accepted >= 1);
            prop_assert_eq!(
                report.accepted + report.duplicates_in_batch + report.rejected,
                report.results.len()
            );
            prop_assert_eq!(queued.len(), report.accepted);
            for message in &queued {
                let event = QueuedEvent::from_message(&message.body);
                prop_assert!(event.is_ok(), "unreadable message: {:?}", event.err());
            }
        }
        Err(problem) => {
            prop_assert!(queued.is_empty(), "a refused body queued {queued:?}");
            prop_assert!(
                matches!(problem.status, 400 | 413),
                "status {}",
                problem.status
            );
            if problem.status == 400 {
                assert_clean(&problem.errors)?;
            }
        }
    }
    Ok(())
}

#[test]
fn the_ingest_body_parser_answers_every_byte_string_and_mutated_batch_cleanly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let batch = sample_batch();
    let mutated_batch = prop::collection::vec(mutation(), 1..5)
        .prop_map(move |mutations| mutate(batch.clone(), &mutations).to_string().into_bytes())
        .boxed();
    let inputs = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        arbitrary_json().prop_map(|v| v.to_string().into_bytes()),
        mutated_batch.clone(),
        // A valid document with bytes flipped: invalid UTF-8 and broken syntax near valid ones.
        (
            mutated_batch,
            prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)
        )
            .prop_map(|(mut body, flips)| {
                for (at, byte) in flips {
                    let len = body.len();
                    body[at % len] = byte;
                }
                body
            }),
    ];
    runner()
        .run(&inputs, |body: Vec<u8>| check_ingest(&runtime, &body))
        .unwrap();
}

#[test]
fn deeply_nested_bodies_are_refused_not_overflowed() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    for depth in [64, 129, 10_000, 100_000] {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        check_ingest(&runtime, body.as_bytes()).unwrap();
        let nested_attribute = format!(
            r#"{{"id":"e-1","participant":"rep-1","type":"acme.nested","occurred_at":"2026-11-03T08:00:00Z","attributes":{{"a":{}1{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        check_ingest(&runtime, nested_attribute.as_bytes()).unwrap();
    }
}

/// The signature headers: whatever the caller sends, the answer is a verdict, never a panic,
/// and only the MAC of this exact timestamp and body under an active secret passes.
fn check_signature(
    timestamp: &str,
    signature: &str,
    body: &[u8],
    secret: &str,
) -> Result<(), TestCaseError> {
    let verdict = verify(&[secret], timestamp, signature, body, now());
    if verdict.is_ok() {
        prop_assert_eq!(
            signature.trim(),
            sign(secret.as_bytes(), timestamp.trim(), body)
        );
    }
    Ok(())
}

#[test]
fn the_signature_check_answers_every_header_and_passes_only_the_exact_mac() {
    let timestamp = prop_oneof![
        hostile_string(),
        any::<i64>().prop_map(|s| s.to_string()),
        (-2 * TOLERANCE_SECS..2 * TOLERANCE_SECS)
            .prop_map(|skew| (now().as_second() + skew).to_string()),
    ];
    let signature = prop_oneof![
        hostile_string(),
        "v1=[0-9a-fA-F]{0,70}",
        " ?v1=[0-9a-f]{64} ?",
    ];
    let inputs = (
        timestamp,
        signature,
        prop::collection::vec(any::<u8>(), 0..256),
        "[A-Za-z0-9]{40}",
    );
    runner()
        .run(&inputs, |(timestamp, signature, body, secret)| {
            check_signature(&timestamp, &signature, &body, &secret)
        })
        .unwrap();
}

#[test]
fn a_valid_signature_fails_for_any_other_body_or_a_stale_time() {
    let inputs = (
        prop::collection::vec(any::<u8>(), 1..256),
        any::<usize>(),
        1u8..=255,
        "[A-Za-z0-9]{40}",
        TOLERANCE_SECS + 1..i64::from(u32::MAX),
    );
    runner()
        .run(&inputs, |(body, at, flip, secret, skew)| {
            let timestamp = now().as_second().to_string();
            let signature = sign(secret.as_bytes(), &timestamp, &body);
            prop_assert_eq!(
                verify(&[&secret], &timestamp, &signature, &body, now()),
                Ok(())
            );
            let mut other = body.clone();
            let len = other.len();
            other[at % len] ^= flip;
            prop_assert_eq!(
                verify(&[&secret], &timestamp, &signature, &other, now()),
                Err(SignatureError::Mismatch)
            );
            for stale in [now().as_second() - skew, now().as_second() + skew] {
                let stale = stale.to_string();
                let signature = sign(secret.as_bytes(), &stale, &body);
                prop_assert!(matches!(
                    verify(&[&secret], &stale, &signature, &body, now()),
                    Err(SignatureError::Stale(_))
                ));
            }
            Ok(())
        })
        .unwrap();
}

fn check_program(text: &str) -> Result<(), TestCaseError> {
    match Program::parse(text, 1) {
        Ok(program) => {
            // A stored program is also checked against its history and priced.
            program.check_versions(&[]);
            program.points_value_json();
        }
        Err(errors) => assert_clean(&errors)?,
    }
    Ok(())
}

#[test]
fn the_program_parser_answers_every_text_and_mutated_sample_cleanly() {
    let mutated = (
        prop::sample::select(sample_programs()),
        prop::collection::vec(mutation(), 1..5),
    )
        .prop_map(|(program, mutations)| mutate(program, &mutations))
        .boxed();
    let inputs = prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        arbitrary_json().prop_map(|v| v.to_string()),
        mutated.clone().prop_map(|v| v.to_string()),
        mutated.prop_map(|v| serde_yaml_ng::to_string(&v).expect("YAML of JSON")),
    ];
    runner()
        .run(&inputs, |text: String| check_program(&text))
        .unwrap();
}

#[test]
fn yaml_bombs_and_deep_nesting_are_refused_cleanly() {
    let laughs = (1..=9).fold(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
            .to_owned(),
        |doc, level| {
            let previous = format!("*a{}", level - 1);
            let row = vec![previous; 9].join(",");
            format!("{doc}a{level}: &a{level} [{row}]\n")
        },
    );
    let deep_flow = format!("program: {}x{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_block: String = (0..2_000)
        .map(|depth| format!("{}k:\n", " ".repeat(depth)))
        .collect();
    for text in [laughs, deep_flow, deep_block] {
        check_program(&text).unwrap();
        assert!(Program::parse(&text, 1).is_err());
    }
}

/// Inputs that crashed a parser once, kept so they are tried on every run whatever the seed.
#[test]
fn inputs_that_crashed_once_are_answered_cleanly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    // A multi-byte character across the last six bytes, where the offset was sliced.
    for occurred_at in ["2026-11-02T08:00:00€1234", "2026-11-02T08:00:00🕴12345"] {
        let event = json!({"id": "e-1", "participant": "rep-1", "type": "portal.login",
            "occurred_at": occurred_at});
        check_envelope(&event).unwrap();
        check_ingest(&runtime, event.to_string().as_bytes()).unwrap();
    }
    // Timestamps at the ends of i64, where the skew overflowed.
    for timestamp in [i64::MIN, i64::MAX] {
        let timestamp = timestamp.to_string();
        let signature = sign(b"secret", &timestamp, b"{}");
        assert!(matches!(
            verify(&["secret"], &timestamp, &signature, b"{}", now()),
            Err(SignatureError::Stale(_))
        ));
    }
}
