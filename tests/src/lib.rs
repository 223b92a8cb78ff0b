pub mod deployment;
pub mod runner;
pub mod stack;
pub mod template;
pub mod workload;
