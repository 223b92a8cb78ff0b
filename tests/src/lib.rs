pub mod deployment;
pub mod mail;
pub mod runner;
pub mod stack;
pub mod template;
pub mod workload;
