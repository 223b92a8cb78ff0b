//! What the in-memory benches (`close`, `engage`) share: a global allocator counting the heap,
//! the timing of a step over `RUNS` runs with its peak and kept heap, the markdown table of the
//! steps, and `--members N`. Included with `mod harness;`: in a subdirectory, cargo does not
//! take it for a bench of its own.

// Each bench uses only part of it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Each step runs this many times: the table gives the best and the worst.
pub const RUNS: usize = 3;

/// Whether cargo runs the bench as a test (`cargo test --all-targets`, which does not pass
/// `--bench`): then it is a smoke test, one run over a small program, not a measurement.
pub fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// Runs of each step: `RUNS` when measuring, one in a smoke test.
fn runs() -> usize {
    if smoke() { 1 } else { RUNS }
}

/// The system allocator, counting the bytes live on the heap and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes live on the heap now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// One step's figures over its runs.
pub struct Step {
    pub name: String,
    pub times: Vec<Duration>,
    /// Most heap live at once during a run, above what was live before it.
    pub peak: usize,
    /// Heap still held after a run by what it returned.
    pub kept: usize,
    pub note: String,
}

/// Runs `f` `RUNS` times, timing each run and watching the heap; returns the last result.
pub fn measure<T>(name: &str, mut f: impl FnMut() -> T) -> (T, Step) {
    measure_timed(name, || {
        let start = Instant::now();
        let value = black_box(f());
        (value, start.elapsed())
    })
}

/// Runs `f` `RUNS` times, watching the heap; `f` returns its result and the time its work
/// took. Returns the last result.
pub fn measure_timed<T>(name: &str, mut f: impl FnMut() -> (T, Duration)) -> (T, Step) {
    let mut step = Step {
        name: name.to_owned(),
        times: Vec::new(),
        peak: 0,
        kept: 0,
        note: String::new(),
    };
    let mut result = None;
    for _ in 0..runs() {
        // The previous run's result is dropped first, so each run starts from the same heap.
        drop(result.take());
        let before = live();
        PEAK.store(before, Ordering::Relaxed);
        let (value, time) = black_box(f());
        step.times.push(time);
        step.peak = step.peak.max(PEAK.load(Ordering::Relaxed) - before);
        step.kept = live().saturating_sub(before);
        result = Some(value);
    }
    (result.expect("at least one run"), step)
}

/// Bytes in MiB.
pub fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Bytes in KiB below 1 MiB, in MiB above.
pub fn kib_or_mib(bytes: usize) -> String {
    if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        mib(bytes)
    }
}

pub fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// How the table of the steps is printed.
pub struct Table {
    /// With a column of the best time per member, for this many members.
    pub per_member: Option<usize>,
    /// How the heap columns write bytes.
    pub bytes: fn(usize) -> String,
}

/// The steps as a markdown table.
pub fn print_table(steps: &[Step], table: &Table) {
    let (per_member_head, per_member_rule) = match table.per_member {
        Some(_) => (" per member (best) |", " --- |"),
        None => ("", ""),
    };
    println!(
        "| step | best of {} | worst |{per_member_head} peak heap | kept | notes |\n| --- | --- | --- |{per_member_rule} --- | --- | --- |",
        runs()
    );
    for step in steps {
        let best = step.times.iter().min().copied().unwrap_or_default();
        let worst = step.times.iter().max().copied().unwrap_or_default();
        let per_member = table.per_member.map_or_else(String::new, |count| {
            format!(
                " {:.2} µs |",
                best.as_secs_f64() * 1e6 / count.max(1) as f64
            )
        });
        println!(
            "| {} | {} | {} |{per_member} {} | {} | {} |",
            step.name,
            seconds(best),
            seconds(worst),
            (table.bytes)(step.peak),
            (table.bytes)(step.kept),
            step.note
        );
    }
}

/// `--members N` (1,000,000 without it); cargo also passes `--bench`, which is ignored.
pub fn member_count() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--members")
        .map(|i| {
            args.get(i + 1)
                .and_then(|n| n.replace('_', "").parse().ok())
                .expect("--members takes a whole number")
        })
        .unwrap_or(if smoke() { 2_000 } else { 1_000_000 })
}

/// The id of the bench's member `i`.
pub fn participant(i: usize) -> String {
    format!("rep-{i:07}")
}

/// The role of the bench's member `i`: every tenth is a manager.
pub fn role(i: usize) -> &'static str {
    if i.is_multiple_of(10) {
        "sales_manager"
    } else {
        "sales_rep"
    }
}
