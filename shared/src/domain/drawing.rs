//! Auditable prize drawings. Before the draw the close job commits to the sorted entrant list
//! (its SHA-256) and to a secret 32-byte seed (its SHA-256); the draw then picks winners from
//! an HMAC-SHA256 stream keyed by the seed and bound to the list, and reveals the seed. Anyone
//! with the record and the list can recompute every step: the algorithm, `carrot-draw-v1`, is
//! specified in docs/drawings.md. The seed is an input: choosing it is the caller's business.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt::Write as _;

/// The name of the algorithm below, recorded with every drawing.
pub const ALGORITHM: &str = "carrot-draw-v1";

/// A participant in a drawing and how many tickets they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entrant {
    pub participant: String,
    pub entries: u64,
}

/// One prize, won by one participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prize {
    pub name: String,
    #[serde(default)]
    pub points: i64,
}

/// Who won a prize, and with which ticket (counted among the tickets still in at that prize).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Winner {
    pub prize: String,
    pub points: i64,
    pub participant: String,
    pub ticket: u64,
}

/// Everything stored before the draw (committed) and after it (seed revealed, winners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawingRecord {
    pub program: String,
    pub drawing: String,
    pub period: String,
    pub algorithm: String,
    pub entrant_count: u64,
    pub ticket_count: u64,
    /// Lowercase hex of the SHA-256 of the canonical entrant list (see [`entrants_sha256`]).
    pub entrants_sha256: String,
    /// Lowercase hex of the SHA-256 of the 32-byte seed.
    pub seed_commitment: String,
    pub prizes: Vec<Prize>,
    /// RFC 3339.
    pub committed_at: String,
    /// Lowercase hex of the seed, revealed when drawn.
    pub seed: Option<String>,
    pub drawn_at: Option<String>,
    /// One per awarded prize, in prize order; prizes left when no entrant remains have none.
    #[serde(default)]
    pub winners: Vec<Winner>,
}

/// Why an entrant list cannot be drawn from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrawError {
    #[error(
        "participant id {0:?} is empty or has a control character (the canonical list is tab- and newline-separated)"
    )]
    InvalidParticipant(String),
    #[error("participant {0:?} has 0 entries: leave out whoever has none")]
    NoEntries(String),
    #[error("participant {0:?} is listed twice: give one entrant per participant with their total")]
    Duplicate(String),
    #[error(
        "participant {after:?} follows {before:?}: the list is not sorted bytewise by participant"
    )]
    Unsorted { before: String, after: String },
    #[error("the entries add up to more than {} tickets", u64::MAX)]
    TooManyTickets,
}

/// Sorts (bytewise by participant), merges nothing: duplicate participant ids or 0 entries are
/// an error (the caller builds one entry per participant with entries >= 1).
pub fn prepare(mut entrants: Vec<Entrant>) -> Result<Vec<Entrant>, DrawError> {
    entrants.sort_unstable_by(|a, b| a.participant.cmp(&b.participant));
    ticket_total(&entrants)?;
    Ok(entrants)
}

/// Lowercase hex of the SHA-256 of the canonical list: `"{participant}\t{entries}\n"` per
/// entrant, in order, entries in decimal. Streams into the hasher: a million entrants never
/// become one string.
pub fn entrants_sha256(entrants: &[Entrant]) -> String {
    struct Hashing(Sha256);
    impl std::fmt::Write for Hashing {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            self.0.update(text.as_bytes());
            Ok(())
        }
    }
    let mut hashing = Hashing(Sha256::new());
    for entrant in entrants {
        writeln!(hashing, "{}\t{}", entrant.participant, entrant.entries)
            .expect("hashing cannot fail");
    }
    hex::encode(hashing.0.finalize())
}

/// Lowercase hex of the SHA-256 of the seed: published before the draw, it fixes the seed
/// without revealing it.
pub fn seed_commitment(seed: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(seed))
}

/// The record stored before the draw. `entrants` is the list as [`prepare`] returns it.
pub fn commit(
    program: &str,
    drawing: &str,
    period: &str,
    entrants: &[Entrant],
    prizes: Vec<Prize>,
    seed: &[u8; 32],
    committed_at: &str,
) -> DrawingRecord {
    DrawingRecord {
        program: program.to_owned(),
        drawing: drawing.to_owned(),
        period: period.to_owned(),
        algorithm: ALGORITHM.to_owned(),
        entrant_count: entrants.len() as u64,
        // A prepared list's total fits; saturating keeps a misused one from wrapping silently
        // (verify then reports the overflow).
        ticket_count: entrants
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.entries)),
        entrants_sha256: entrants_sha256(entrants),
        seed_commitment: seed_commitment(seed),
        prizes,
        committed_at: committed_at.to_owned(),
        seed: None,
        drawn_at: None,
        winners: Vec::new(),
    }
}

/// Draws the winners from the committed record, reveals the seed. Pure and deterministic.
/// `entrants` and `seed` are the ones committed in `record`; [`verify`] checks that they were.
pub fn draw(
    record: &DrawingRecord,
    entrants: &[Entrant],
    seed: &[u8; 32],
    drawn_at: &str,
) -> DrawingRecord {
    DrawingRecord {
        seed: Some(hex::encode(seed)),
        drawn_at: Some(drawn_at.to_owned()),
        winners: winners(&record.prizes, entrants, seed, &record.entrants_sha256),
        ..record.clone()
    }
}

/// What [`verify`] recomputed, check by check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }
}

/// One recomputed fact: `name` is stable (`algorithm`, `entrants`, `entrant_count`,
/// `ticket_count`, `entrants_sha256`, `seed_commitment`, `winners`), `detail` says what was
/// compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Recomputes: entrants sorted & unique, counts, SHA-256 of the list, SHA-256(seed) ==
/// commitment, algorithm known, and the winners re-drawn from seed + list equal the recorded
/// ones.
pub fn verify(record: &DrawingRecord, entrants: &[Entrant]) -> Verification {
    let mut checks = Vec::new();
    let mut check = |name: &str, passed: bool, detail: String| {
        checks.push(Check {
            name: name.to_owned(),
            passed,
            detail,
        });
    };

    let known = record.algorithm == ALGORITHM;
    check(
        "algorithm",
        known,
        if known {
            ALGORITHM.to_owned()
        } else {
            format!(
                "{:?} is not known here, only {ALGORITHM:?}",
                record.algorithm
            )
        },
    );

    let tickets = ticket_total(entrants);
    check(
        "entrants",
        tickets.is_ok(),
        match &tickets {
            Ok(_) => "sorted bytewise by participant, each once with at least 1 entry".to_owned(),
            Err(error) => error.to_string(),
        },
    );

    let count = entrants.len() as u64;
    check(
        "entrant_count",
        record.entrant_count == count,
        format!("recorded {}, the list has {count}", record.entrant_count),
    );

    let sum = entrants
        .iter()
        .try_fold(0u64, |sum, e| sum.checked_add(e.entries));
    check(
        "ticket_count",
        sum == Some(record.ticket_count),
        match sum {
            Some(sum) => format!(
                "recorded {}, the list's entries add up to {sum}",
                record.ticket_count
            ),
            None => format!(
                "recorded {}, the list's entries add up to more than {}",
                record.ticket_count,
                u64::MAX
            ),
        },
    );

    let hash = entrants_sha256(entrants);
    check(
        "entrants_sha256",
        hash == record.entrants_sha256,
        if hash == record.entrants_sha256 {
            format!("the list hashes to the recorded {hash}")
        } else {
            format!(
                "recorded {}, the list hashes to {hash}",
                record.entrants_sha256
            )
        },
    );

    let seed = revealed_seed(record);
    check(
        "seed_commitment",
        seed.as_ref()
            .is_ok_and(|s| seed_commitment(s) == record.seed_commitment),
        match &seed {
            Ok(seed) if seed_commitment(seed) == record.seed_commitment => format!(
                "SHA-256 of the revealed seed is the commitment {}",
                record.seed_commitment
            ),
            Ok(seed) => format!(
                "SHA-256 of the revealed seed is {}, the commitment is {}",
                seed_commitment(seed),
                record.seed_commitment
            ),
            Err(problem) => problem.clone(),
        },
    );

    let (passed, detail) = match (&seed, &tickets) {
        _ if !known => (false, "cannot re-draw with an unknown algorithm".to_owned()),
        (Err(problem), _) => (false, format!("cannot re-draw: {problem}")),
        (_, Err(error)) => (false, format!("cannot re-draw from this list: {error}")),
        (Ok(seed), Ok(_)) => {
            let redrawn = winners(&record.prizes, entrants, seed, &record.entrants_sha256);
            compare_winners(&record.winners, &redrawn, record.prizes.len())
        }
    };
    check("winners", passed, detail);

    Verification { checks }
}

/// The seed the record reveals, or why there is none to use.
fn revealed_seed(record: &DrawingRecord) -> Result<[u8; 32], String> {
    let text = record
        .seed
        .as_deref()
        .ok_or("the seed is not revealed: the drawing has not been drawn")?;
    hex::decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| format!("the seed must be 64 hex digits, got {text:?}"))
}

fn compare_winners(recorded: &[Winner], redrawn: &[Winner], prizes: usize) -> (bool, String) {
    let unawarded = prizes - redrawn.len();
    let describe = |w: &Winner| format!("{} (ticket {})", w.participant, w.ticket);
    if let Some((i, (was, is))) = recorded
        .iter()
        .zip(redrawn)
        .enumerate()
        .find(|(_, (was, is))| was != is)
    {
        let detail = if was.prize == is.prize && was.points == is.points {
            format!(
                "prize {} ({:?}): recorded {}, re-drawn {}",
                i + 1,
                is.prize,
                describe(was),
                describe(is)
            )
        } else {
            format!(
                "prize {}: recorded {:?} ({} points), the record's prizes give {:?} ({} points)",
                i + 1,
                was.prize,
                was.points,
                is.prize,
                is.points
            )
        };
        return (false, detail);
    }
    if recorded.len() != redrawn.len() {
        return (
            false,
            format!(
                "recorded {} winners, re-drawn {}",
                recorded.len(),
                redrawn.len()
            ),
        );
    }
    let mut detail = format!(
        "the {} re-drawn from the seed and the list match the record",
        plural(redrawn.len(), "winner")
    );
    if unawarded > 0 {
        let _ = write!(
            detail,
            "; {} not awarded: no entrant left",
            plural(unawarded, "prize")
        );
    }
    (true, detail)
}

fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Checks that the list is drawable as it stands (valid ids, sorted strictly, entries >= 1)
/// and returns its number of tickets.
fn ticket_total(entrants: &[Entrant]) -> Result<u64, DrawError> {
    let mut tickets = 0u64;
    for (i, entrant) in entrants.iter().enumerate() {
        let id = &entrant.participant;
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err(DrawError::InvalidParticipant(id.clone()));
        }
        if let Some(before) = i.checked_sub(1).map(|j| &entrants[j].participant) {
            match before.cmp(id) {
                Ordering::Less => {}
                Ordering::Equal => return Err(DrawError::Duplicate(id.clone())),
                Ordering::Greater => {
                    return Err(DrawError::Unsorted {
                        before: before.clone(),
                        after: id.clone(),
                    });
                }
            }
        }
        if entrant.entries == 0 {
            return Err(DrawError::NoEntries(id.clone()));
        }
        tickets = tickets
            .checked_add(entrant.entries)
            .ok_or(DrawError::TooManyTickets)?;
    }
    Ok(tickets)
}

/// `carrot-draw-v1`: for each prize in order, a ticket uniform below the tickets still in;
/// its holder wins and leaves. Stops when nobody is left. `entrants` is a checked list.
fn winners(
    prizes: &[Prize],
    entrants: &[Entrant],
    seed: &[u8; 32],
    entrants_sha256: &str,
) -> Vec<Winner> {
    let mut tickets = Tickets::new(entrants);
    let mut stream = Stream::new(seed, entrants_sha256);
    prizes
        .iter()
        .map_while(|prize| {
            let total = tickets.total;
            (total > 0).then(|| {
                let ticket = stream.below(total);
                let holder = tickets.holder(ticket);
                tickets.remove(holder, entrants[holder].entries);
                Winner {
                    prize: prize.name.clone(),
                    points: prize.points,
                    participant: entrants[holder].participant.clone(),
                    ticket,
                }
            })
        })
        .collect()
}

/// The draw's random words: block i is HMAC-SHA256(seed, "carrot-draw-v1" 0x00
/// entrants_sha256 0x00 i as 8 big-endian bytes), read as four big-endian u64 words. The list's
/// hash in the message makes the same seed draw differently on a different list.
struct Stream {
    /// Keyed, with everything before the block number absorbed.
    prefix: Hmac<Sha256>,
    block: u64,
    words: [u64; 4],
    used: usize,
}

impl Stream {
    fn new(seed: &[u8; 32], entrants_sha256: &str) -> Self {
        let mut prefix =
            Hmac::<Sha256>::new_from_slice(seed).expect("HMAC takes keys of any length");
        prefix.update(ALGORITHM.as_bytes());
        prefix.update(&[0]);
        prefix.update(entrants_sha256.as_bytes());
        prefix.update(&[0]);
        Self {
            prefix,
            block: 0,
            words: [0; 4],
            used: 4,
        }
    }

    fn next_word(&mut self) -> u64 {
        if self.used == self.words.len() {
            let mut mac = self.prefix.clone();
            mac.update(&self.block.to_be_bytes());
            let bytes = mac.finalize().into_bytes();
            for (word, chunk) in self.words.iter_mut().zip(bytes.chunks_exact(8)) {
                *word = u64::from_be_bytes(chunk.try_into().expect("chunks of 8 bytes"));
            }
            self.block += 1;
            self.used = 0;
        }
        self.used += 1;
        self.words[self.used - 1]
    }

    fn below(&mut self, n: u64) -> u64 {
        uniform_below(n, || self.next_word())
    }
}

/// Words below this are accepted for a draw below `n` (>= 1): the largest multiple of `n`
/// that is at most `u64::MAX`, so each remainder comes from exactly `limit / n` words.
fn rejection_limit(n: u64) -> u64 {
    u64::MAX - u64::MAX % n
}

/// A number uniform in `0..n` without modulo bias: words at or above the limit are skipped.
fn uniform_below(n: u64, mut next_word: impl FnMut() -> u64) -> u64 {
    let limit = rejection_limit(n);
    loop {
        let word = next_word();
        if word < limit {
            return word % n;
        }
    }
}

/// The tickets of the entrants still in, as a Fenwick tree over the sorted list: finding a
/// ticket's holder and removing a winner take O(log n), so many prizes over a million
/// entrants stay fast.
struct Tickets {
    /// 1-based: `tree[i]` sums the entries of entrants `i - lowbit(i) + 1 ..= i`.
    tree: Vec<u64>,
    total: u64,
}

impl Tickets {
    /// `entrants` is a checked list, so every sum fits in a u64.
    fn new(entrants: &[Entrant]) -> Self {
        let mut tree = Vec::with_capacity(entrants.len() + 1);
        tree.push(0);
        tree.extend(entrants.iter().map(|e| e.entries));
        for i in 1..tree.len() {
            let parent = i + lowbit(i);
            if parent < tree.len() {
                tree[parent] += tree[i];
            }
        }
        let total = entrants.iter().map(|e| e.entries).sum();
        Self { tree, total }
    }

    /// The index of the entrant whose range holds `ticket` (< total): the entrants still in,
    /// in list order, hold consecutive ranges of tickets starting at 0.
    fn holder(&self, ticket: u64) -> usize {
        let size = self.tree.len() - 1;
        let (mut position, mut rest) = (0, ticket);
        // Descend to the longest prefix whose tickets are all below `ticket`.
        let mut step = if size == 0 { 0 } else { 1 << size.ilog2() };
        while step > 0 {
            let next = position + step;
            if next <= size && self.tree[next] <= rest {
                position = next;
                rest -= self.tree[next];
            }
            step >>= 1;
        }
        position
    }

    fn remove(&mut self, index: usize, entries: u64) {
        let mut i = index + 1;
        while i < self.tree.len() {
            self.tree[i] -= entries;
            i += lowbit(i);
        }
        self.total -= entries;
    }
}

fn lowbit(i: usize) -> usize {
    i & i.wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entrant(participant: &str, entries: u64) -> Entrant {
        Entrant {
            participant: participant.to_owned(),
            entries,
        }
    }

    fn prize(name: &str, points: i64) -> Prize {
        Prize {
            name: name.to_owned(),
            points,
        }
    }

    /// A distinct seed per number, so statistical tests are deterministic.
    fn seed(n: u64) -> [u8; 32] {
        Sha256::digest(n.to_be_bytes()).into()
    }

    fn many(count: usize) -> Vec<Entrant> {
        (0..count)
            .map(|i| entrant(&format!("rep-{i:07}"), 1 + (i as u64 % 5)))
            .collect()
    }

    fn drawn(entrants: &[Entrant], prizes: Vec<Prize>, seed: &[u8; 32]) -> DrawingRecord {
        let record = commit(
            "acme",
            "monthly-login",
            "2026-05",
            entrants,
            prizes,
            seed,
            "2026-06-01T00:05:00Z",
        );
        draw(&record, entrants, seed, "2026-06-01T00:06:00Z")
    }

    fn failing(verification: &Verification) -> Vec<String> {
        verification
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.clone())
            .collect()
    }

    /// The draw as docs/drawings.md words it, without the tree: a linear scan over the
    /// entrants still in.
    fn reference_draw(
        prizes: &[Prize],
        entrants: &[Entrant],
        seed: &[u8; 32],
        hash: &str,
    ) -> Vec<Winner> {
        let mut stream = Stream::new(seed, hash);
        let mut left: Vec<&Entrant> = entrants.iter().collect();
        let mut winners = Vec::new();
        for prize in prizes {
            let total: u64 = left.iter().map(|e| e.entries).sum();
            if total == 0 {
                break;
            }
            let ticket = stream.below(total);
            let mut start = 0;
            let index = left
                .iter()
                .position(|e| {
                    start += e.entries;
                    ticket < start
                })
                .unwrap();
            let winner = left.remove(index);
            winners.push(Winner {
                prize: prize.name.clone(),
                points: prize.points,
                participant: winner.participant.clone(),
                ticket,
            });
        }
        winners
    }

    /// The example of docs/drawings.md: if this changes, so must the documentation.
    #[test]
    fn the_documented_example() {
        let entrants = prepare(vec![
            entrant("rep-3", 2),
            entrant("rep-1", 3),
            entrant("rep-2", 1),
            entrant("rep-4", 4),
        ])
        .unwrap();
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        let record = drawn(
            &entrants,
            vec![prize("Gift card", 500), prize("Mug", 0), prize("Cap", 0)],
            &seed,
        );
        assert_eq!((record.entrant_count, record.ticket_count), (4, 10));
        assert_eq!(
            record.entrants_sha256,
            hex::encode(Sha256::digest("rep-1\t3\nrep-2\t1\nrep-3\t2\nrep-4\t4\n"))
        );
        assert_eq!(
            record.entrants_sha256,
            "710428ebf0718113d4915df50ca359dab846956463696896d4789ff0ec5bc598"
        );
        assert_eq!(
            record.seed_commitment,
            "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
        );
        let mut stream = Stream::new(&seed, &record.entrants_sha256);
        assert_eq!(
            [(); 4].map(|()| stream.next_word()),
            [
                0xa735f63e2cf427c7,
                0xaaea8484682d33bc,
                0x11d7528bd9a68cc4,
                0x45b19eeda3b1a06d
            ]
        );
        let won: Vec<(&str, &str, u64)> = record
            .winners
            .iter()
            .map(|w| (w.prize.as_str(), w.participant.as_str(), w.ticket))
            .collect();
        assert_eq!(
            won,
            [
                ("Gift card", "rep-4", 9),
                ("Mug", "rep-1", 0),
                ("Cap", "rep-3", 2)
            ]
        );
        assert!(verify(&record, &entrants).passed());
    }

    #[test]
    fn prepare_sorts_bytewise_and_refuses_what_cannot_be_drawn() {
        let sorted = prepare(vec![
            entrant("b", 1),
            entrant("B", 2),
            entrant("a", 3),
            entrant("ä", 4),
        ])
        .unwrap();
        let ids: Vec<&str> = sorted.iter().map(|e| e.participant.as_str()).collect();
        assert_eq!(ids, ["B", "a", "b", "ä"]);

        let cases = [
            (
                vec![entrant("a", 1), entrant("b", 2), entrant("a", 3)],
                DrawError::Duplicate("a".to_owned()),
            ),
            (
                vec![entrant("a", 1), entrant("b", 0)],
                DrawError::NoEntries("b".to_owned()),
            ),
            (
                vec![entrant("a\tb", 1)],
                DrawError::InvalidParticipant("a\tb".to_owned()),
            ),
            (
                vec![entrant("", 1)],
                DrawError::InvalidParticipant(String::new()),
            ),
            (
                vec![entrant("a", u64::MAX), entrant("b", 1)],
                DrawError::TooManyTickets,
            ),
        ];
        for (entrants, error) in cases {
            assert_eq!(prepare(entrants), Err(error));
        }
        assert_eq!(prepare(Vec::new()), Ok(Vec::new()));
    }

    #[test]
    fn the_entrant_hash_is_of_the_canonical_text() {
        let entrants = [entrant("rep-1", 12), entrant("rep-é", 1)];
        assert_eq!(
            entrants_sha256(&entrants),
            hex::encode(Sha256::digest("rep-1\t12\nrep-é\t1\n".as_bytes()))
        );
        assert_eq!(
            entrants_sha256(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_same_inputs_draw_the_same_winners_and_a_different_seed_others() {
        let entrants = many(1000);
        let prizes = vec![
            prize("first", 1000),
            prize("second", 500),
            prize("third", 100),
        ];
        let once = drawn(&entrants, prizes.clone(), &seed(1));
        let again = drawn(&entrants, prizes.clone(), &seed(1));
        assert_eq!(once, again);
        assert_eq!(once.winners.len(), 3);
        assert_eq!(once.seed.as_deref(), Some(hex::encode(seed(1)).as_str()));
        let other = drawn(&entrants, prizes, &seed(2));
        assert_ne!(once.winners, other.winners);
    }

    #[test]
    fn the_same_seed_on_another_list_gives_another_stream() {
        let words = |hash: &str| {
            let mut stream = Stream::new(&seed(7), hash);
            (0..8).map(|_| stream.next_word()).collect::<Vec<_>>()
        };
        let one = entrants_sha256(&many(10));
        let other = entrants_sha256(&many(11));
        assert_ne!(words(&one), words(&other));
        assert_eq!(words(&one), words(&one));
    }

    #[test]
    fn the_rejection_limit_is_the_largest_multiple_of_n() {
        let large = [
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) + 1,
            (1 << 63) - 1,
            u64::MAX / 3,
            10_000_000_019,
        ];
        for n in (1..=10_000).chain(large) {
            let limit = rejection_limit(n);
            assert_eq!(limit % n, 0, "n = {n}");
            assert!(
                u128::from(limit) + u128::from(n) > u128::from(u64::MAX),
                "a larger multiple of {n} fits"
            );
        }
    }

    #[test]
    fn words_at_or_above_the_limit_are_skipped() {
        for n in [1, 2, 3, 7, 10, 1 << 40, (1 << 63) + 1, u64::MAX] {
            let limit = rejection_limit(n);
            let mut words = [limit, u64::MAX, limit - 1, 0].into_iter();
            assert_eq!(uniform_below(n, || words.next().unwrap()), (limit - 1) % n);
            assert_eq!(
                words.next(),
                Some(0),
                "n = {n}: exactly three words were read"
            );
        }
    }

    /// Pearson's statistic of observed counts against expected ones.
    fn chi_square(observed: &[u64], expected: &[f64]) -> f64 {
        observed
            .iter()
            .zip(expected)
            .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
            .sum()
    }

    #[test]
    fn uniform_draws_below_small_n_are_even() {
        let mut stream = Stream::new(&seed(3), &entrants_sha256(&[]));
        for n in [2u64, 3, 5, 6, 7, 10] {
            let draws = 60_000;
            let mut counts = vec![0u64; n as usize];
            for _ in 0..draws {
                counts[stream.below(n) as usize] += 1;
            }
            let expected = vec![draws as f64 / n as f64; n as usize];
            // Far above the 0.1% critical value for n - 1 <= 9 degrees of freedom (27.9):
            // the seed is fixed, so this only fails on a real bias.
            let statistic = chi_square(&counts, &expected);
            assert!(
                statistic < 40.0,
                "n = {n}: {counts:?}, chi-square {statistic}"
            );
        }
    }

    #[test]
    fn winners_follow_the_ticket_weights() {
        let entrants = [
            entrant("a", 1),
            entrant("b", 2),
            entrant("c", 3),
            entrant("d", 4),
        ];
        let hash = entrants_sha256(&entrants);
        let prizes = [prize("only", 0)];
        let rounds = 20_000u64;
        let mut counts = [0u64; 4];
        for n in 0..rounds {
            let won = &winners(&prizes, &entrants, &seed(n), &hash)[0];
            counts[(won.participant.as_bytes()[0] - b'a') as usize] += 1;
        }
        let expected: Vec<f64> = entrants
            .iter()
            .map(|e| rounds as f64 * e.entries as f64 / 10.0)
            .collect();
        // 3 degrees of freedom: the 0.1% critical value is 16.3.
        let statistic = chi_square(&counts, &expected);
        assert!(statistic < 25.0, "{counts:?}, chi-square {statistic}");
    }

    #[test]
    fn no_entrants_no_winners_and_no_more_winners_than_entrants() {
        let prizes = vec![prize("first", 10), prize("second", 5), prize("third", 1)];
        let empty = drawn(&[], prizes.clone(), &seed(1));
        assert_eq!((empty.entrant_count, empty.ticket_count), (0, 0));
        assert!(empty.winners.is_empty());
        let verification = verify(&empty, &[]);
        assert!(verification.passed(), "{verification:#?}");

        let two = [entrant("ann", 1), entrant("bob", 9)];
        let record = drawn(&two, prizes, &seed(1));
        let mut won: Vec<&str> = record
            .winners
            .iter()
            .map(|w| w.participant.as_str())
            .collect();
        assert_eq!(
            record
                .winners
                .iter()
                .map(|w| w.prize.as_str())
                .collect::<Vec<_>>(),
            ["first", "second"]
        );
        won.sort_unstable();
        assert_eq!(won, ["ann", "bob"]);
        let first = two
            .iter()
            .find(|e| e.participant == record.winners[0].participant)
            .unwrap();
        assert!(
            record.winners[1].ticket < 10 - first.entries,
            "the second ticket counts only the tickets still in"
        );
        let verification = verify(&record, &two);
        assert!(verification.passed(), "{verification:#?}");
        let winners = verification.checks.last().unwrap();
        assert!(
            winners.detail.contains("1 prize not awarded"),
            "{}",
            winners.detail
        );
    }

    #[test]
    fn tampering_is_caught_by_the_right_check() {
        let entrants = many(50);
        let record = drawn(
            &entrants,
            vec![prize("first", 100), prize("second", 50)],
            &seed(9),
        );
        assert!(verify(&record, &entrants).passed());

        let mut winner_changed = record.clone();
        winner_changed.winners[0].participant = "rep-0000049".to_owned();
        assert_eq!(failing(&verify(&winner_changed, &entrants)), ["winners"]);

        let mut points_changed = record.clone();
        points_changed.winners[1].points = 5000;
        assert_eq!(failing(&verify(&points_changed, &entrants)), ["winners"]);

        let removed: Vec<Entrant> = entrants
            .iter()
            .filter(|e| e.participant != "rep-0000010")
            .cloned()
            .collect();
        let failed = failing(&verify(&record, &removed));
        assert_eq!(
            failed[..3],
            ["entrant_count", "ticket_count", "entrants_sha256"]
        );

        let mut more = entrants.clone();
        more[3].entries += 1;
        let failed = failing(&verify(&record, &more));
        assert_eq!(failed[..2], ["ticket_count", "entrants_sha256"]);

        let mut reseeded = record.clone();
        reseeded.seed = Some(hex::encode(seed(10)));
        assert_eq!(
            failing(&verify(&reseeded, &entrants)),
            ["seed_commitment", "winners"]
        );

        let mut recommitted = record.clone();
        recommitted.seed_commitment = seed_commitment(&seed(10));
        assert_eq!(
            failing(&verify(&recommitted, &entrants)),
            ["seed_commitment"]
        );

        let mut unsorted = entrants.clone();
        unsorted.swap(0, 1);
        let verification = verify(&record, &unsorted);
        assert_eq!(failing(&verification)[..2], ["entrants", "entrants_sha256"]);
        assert!(verification.checks[1].detail.contains("not sorted"));

        let mut unknown = record.clone();
        unknown.algorithm = "carrot-draw-v0".to_owned();
        assert_eq!(
            failing(&verify(&unknown, &entrants)),
            ["algorithm", "winners"]
        );
    }

    #[test]
    fn an_undrawn_record_does_not_verify() {
        let entrants = many(5);
        let record = commit(
            "acme",
            "d",
            "2026-05",
            &entrants,
            vec![prize("p", 1)],
            &seed(1),
            "t",
        );
        let verification = verify(&record, &entrants);
        assert_eq!(failing(&verification), ["seed_commitment", "winners"]);
        assert!(verification.checks[5].detail.contains("not been drawn"));

        let mut garbled = draw(&record, &entrants, &seed(1), "t");
        garbled.seed = Some("zz".to_owned());
        assert_eq!(
            failing(&verify(&garbled, &entrants)),
            ["seed_commitment", "winners"]
        );
    }

    #[test]
    fn records_read_back_from_json_with_or_without_the_draw() {
        let entrants = many(3);
        let record = drawn(&entrants, vec![prize("p", 1)], &seed(1));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(
            serde_json::from_value::<DrawingRecord>(json).unwrap(),
            record
        );
        let committed = serde_json::json!({
            "program": "acme", "drawing": "d", "period": "2026-05", "algorithm": ALGORITHM,
            "entrant_count": 0, "ticket_count": 0, "entrants_sha256": entrants_sha256(&[]),
            "seed_commitment": seed_commitment(&seed(1)), "prizes": [{"name": "p"}],
            "committed_at": "2026-06-01T00:05:00Z"
        });
        let committed: DrawingRecord = serde_json::from_value(committed).unwrap();
        assert_eq!((committed.seed, committed.winners), (None, Vec::new()));
        assert_eq!(committed.prizes[0].points, 0);
    }

    #[test]
    fn a_million_entrants_are_drawn_and_verified() {
        let entrants = many(1_000_000);
        let prizes: Vec<Prize> = (0..100).map(|i| prize(&format!("prize {i}"), 10)).collect();
        let record = drawn(&entrants, prizes, &seed(4));
        assert_eq!(record.winners.len(), 100);
        assert!(verify(&record, &entrants).passed());
    }

    fn entrant_lists() -> impl Strategy<Value = Vec<Entrant>> {
        proptest::collection::btree_map("[a-z0-9-]{1,6}", 1u64..20, 0..40).prop_map(|map| {
            map.into_iter()
                .map(|(participant, entries)| Entrant {
                    participant,
                    entries,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn any_list_draws_like_the_reference_and_verifies(
            entrants in entrant_lists(),
            prize_count in 0usize..8,
            seed_bytes in any::<[u8; 32]>(),
            order in any::<u64>(),
        ) {
            // prepare sorts whatever order the caller built the list in.
            let mut shuffled = entrants.clone();
            shuffled.sort_by_key(|e| Sha256::digest(format!("{order}{}", e.participant)).to_vec());
            let prepared = prepare(shuffled).unwrap();
            prop_assert_eq!(&prepared, &entrants);

            let prizes: Vec<Prize> = (0..prize_count).map(|i| prize(&format!("p{i}"), i as i64)).collect();
            let record = drawn(&prepared, prizes.clone(), &seed_bytes);
            prop_assert_eq!(record.winners.len(), prize_count.min(prepared.len()));
            prop_assert_eq!(
                &record.winners,
                &reference_draw(&prizes, &prepared, &seed_bytes, &record.entrants_sha256)
            );
            let mut won: Vec<&str> = record.winners.iter().map(|w| w.participant.as_str()).collect();
            won.sort_unstable();
            won.dedup();
            prop_assert_eq!(won.len(), record.winners.len(), "one prize per participant");
            let verification = verify(&record, &prepared);
            prop_assert!(verification.passed(), "{:#?}", verification);
        }
    }
}
