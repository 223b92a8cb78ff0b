//! Carrot's library: the pure domain, the ports it needs, the use cases over those ports, and
//! the AWS adapters behind them.

pub mod adapters;
pub mod domain;
pub mod env;
pub mod http;
pub mod ports;
pub mod service;
