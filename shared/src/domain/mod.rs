//! The pure domain: no AWS types, no I/O. Everything here is deterministic given its inputs.

pub mod close;
pub mod counters;
pub mod drawing;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod journey;
pub mod ledger;
pub mod message;
pub mod mime;
pub mod money;
pub mod participant;
pub mod period;
pub mod program;
pub mod queued;
pub mod report;
pub mod rules;
pub mod segments;
pub mod signature;
pub mod standings;
pub mod stick;
pub mod template;
pub mod wallet;
