use serde::Serialize;

/// One problem with one input field, named by its path (`events[3].occurred_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Collects every error of a document, so a caller sees them all at once, not the first only.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError::new(field, reason));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// Identifiers from outside systems (event ids, participant ids): printable ASCII without
/// `#`, which the data model uses as its key separator.
pub fn check_identifier(errors: &mut FieldErrors, field: &str, value: &str) {
    if value.is_empty() {
        errors.push(field, "must not be empty");
    } else if value.len() > 128 {
        errors.push(field, "must be at most 128 characters");
    } else if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic() || *c == '#') {
        errors.push(
            field,
            format!("must be printable ASCII without spaces or '#', found {c:?}"),
        );
    }
}
