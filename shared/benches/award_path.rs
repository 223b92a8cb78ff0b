//! CPU per event on the award and ingest paths, I/O excluded (target: at most 20 µs per
//! event). Run: `cargo bench -p carrot --bench award_path`.

use carrot::domain::engine::{Counters, Subject};
use carrot::domain::envelope::parse_event;
use carrot::domain::ledger::{Standing, plan};
use carrot::domain::program::Program;
use carrot::domain::queued::QueuedEvent;
use carrot::http::Caller;
use carrot::ports::{EventQueue, PortError, QueueMessage};
use carrot::service::ingest::ingest;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

const PROGRAM: &str = include_str!("../../events/admin/program.yaml");

/// A queue that takes everything: the bench measures validation, not SQS.
struct AcceptingQueue;

impl EventQueue for AcceptingQueue {
    async fn send(&self, messages: &[QueueMessage]) -> Vec<Result<(), PortError>> {
        vec![Ok(()); messages.len()]
    }
}

fn contract(i: usize) -> serde_json::Value {
    json!({"id": format!("sf-contract-{i}"), "participant": format!("rep-{}", i % 200),
        "type": "contract.started", "occurred_at": "2026-10-14T10:15:00+02:00",
        "attributes": {"contract_id": format!("K-{i}"), "financed_volume": "250000.50", "currency": "SEK"}})
}

fn bench(c: &mut Criterion) {
    let program = Program::parse(PROGRAM, 1).unwrap();
    let now = "2026-11-22T12:00:00Z".parse().unwrap();
    let event = parse_event(&contract(1), "", now).unwrap();
    let message = QueuedEvent {
        program: "acme".into(),
        received_at: now,
        event,
    }
    .to_message();
    // A participant with no counters or points yet: every rule of the contract is evaluated
    // in full.
    let counters = Counters::default();
    let standing = Standing {
        balance: 0,
        subject: Subject {
            role: Some("sales_rep"),
            segment: None,
            tier: None,
            distributor: Some("nordic"),
            location: Some("nordic-sthlm"),
            region: Some("nordics"),
            status: "active",
            enrolled_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        },
        counters: &counters,
        today: "2026-11-22",
    };

    let mut group = c.benchmark_group("per event");
    group.throughput(Throughput::Elements(1));
    group.bench_function("award: decode queue message + plan", |b| {
        b.iter(|| {
            let queued = QueuedEvent::from_message(black_box(&message)).unwrap();
            black_box(plan(
                &program,
                &queued.event,
                queued.received_at,
                None,
                None,
                &standing,
            ))
        })
    });
    group.finish();

    let batch =
        serde_json::to_vec(&json!({"events": (0..500).map(contract).collect::<Vec<_>>()})).unwrap();
    let caller = Caller {
        key_id: "acme-crm".into(),
        program: "acme".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(500));
    group.bench_function("validate and encode a 500-event batch", |b| {
        b.iter(|| {
            let report = runtime
                .block_on(ingest(&AcceptingQueue, &caller, black_box(&batch), now))
                .unwrap();
            assert_eq!(report.accepted, 500);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
