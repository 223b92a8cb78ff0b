//! The pure domain: no AWS types, no I/O. Everything here is deterministic given its inputs.

pub mod catalog;
pub mod close;
pub mod counters;
pub mod describe;
pub mod drawing;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod import;
pub mod journey;
pub mod ledger;
pub mod message;
pub mod mime;
pub mod money;
pub mod participant;
pub mod period;
pub mod program;
pub mod queued;
pub mod quiz;
pub mod report;
pub mod rules;
pub mod segments;
pub mod signature;
pub mod spin;
pub mod standings;
pub mod stick;
pub mod template;
pub mod wallet;

#[cfg(test)]
mod fuzz_tests;
