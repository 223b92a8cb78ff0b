pub mod deployment;
pub mod fault_proxy;
pub mod mail;
pub mod reference;
pub mod runner;
pub mod stack;
pub mod template;
pub mod workload;
