//! The pure domain: no AWS types, no I/O. Everything here is deterministic given its inputs.

pub mod counters;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod ledger;
pub mod money;
pub mod participant;
pub mod period;
pub mod program;
pub mod queued;
pub mod rules;
pub mod signature;
pub mod wallet;
