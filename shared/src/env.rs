//! Typed configuration from the environment, read once at cold start. A missing variable
//! fails the start with its name, not a panic deep inside a handler.

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} {problem}")]
pub struct EnvError {
    name: &'static str,
    problem: &'static str,
}

pub fn required(name: &'static str) -> Result<String, EnvError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        Ok(_) => Err(EnvError {
            name,
            problem: "is empty",
        }),
        Err(_) => Err(EnvError {
            name,
            problem: "is not set",
        }),
    }
}

/// An optional variable: `None` when unset or empty (a template parameter left blank).
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
