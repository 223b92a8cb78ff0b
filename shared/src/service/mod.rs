//! The use cases: each drives the pure domain through the ports it needs.

pub mod award;
pub mod backtest;
pub mod calculator;
pub mod close;
pub mod enrol;
pub mod ingest;
pub mod leaderboard;
pub mod replay;
