//! Live standings during a period, read from the write-sharded month index without scanning.
//!
//! A month board is the index's top entries. A quarter or year board sums months, so its top
//! is found with the threshold algorithm (Fagin et al.): take each month's top `k` (with its
//! ties), read the candidates' exact totals, and stop when the n-th best total reaches the sum
//! of the months' k-th scores, which every participant not seen yet stays under. Otherwise
//! `k` doubles. The candidates' profiles are read too: suspended participants do not compete.

use crate::domain::close::ClosePeriod;
use crate::domain::standings::{Board, Standings};
use crate::ports::{LiveIndex, PortError};
use std::collections::BTreeSet;

/// Past this depth per month the board is returned as it stands, marked as not exact.
const MAX_DEPTH: usize = 20_000;

/// Live standings of a board over a period, and whether they are exact.
pub async fn live_standings<I: LiveIndex>(
    index: &I,
    program: &str,
    board: &Board,
    period: &ClosePeriod,
) -> Result<(Standings, bool), PortError> {
    let show = board.show as usize;
    let mut k = show.max(10);
    loop {
        let mut candidates = BTreeSet::new();
        let mut bound = 0;
        let mut exhausted = true;
        for month in &period.months {
            let top = index.top(program, month, &board.metric, k).await?;
            if top.len() >= k {
                exhausted = false;
                // The list holds every tie of its last score: everyone outside it scored less.
                bound += top.last().map_or(0, |(_, score)| *score);
            }
            candidates.extend(top.into_iter().map(|(participant, _)| participant));
        }
        let ids: Vec<String> = candidates.into_iter().collect();
        let members = index.members(program, &ids, period).await?;
        let standings = board
            .standings(&members)
            .into_iter()
            .next()
            .unwrap_or_else(|| Standings {
                board: board.id.clone(),
                within: None,
                rows: Vec::new(),
            });
        // Anyone not seen in any month's list totals less than `bound`.
        let nth = standings.rows.get(show.saturating_sub(1)).map(|r| r.score);
        let settled = exhausted || nth.is_some_and(|score| score >= bound.into());
        if settled || k >= MAX_DEPTH {
            return Ok((standings, settled));
        }
        k *= 2;
    }
}
