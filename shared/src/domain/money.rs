//! Money-like amounts: exact decimals, never floats.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// An ISO 4217 currency code (three upper-case letters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code.to_owned()))
        } else {
            Err(format!(
                "must be an ISO 4217 code of three upper-case letters, got {code:?}"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Largest amount accepted from a source system (10^15): far above any real deal, far below
/// where decimal arithmetic could overflow.
const MAX_AMOUNT: u64 = 1_000_000_000_000_000;

/// Parses a non-negative decimal amount given as a JSON number or a string. Numbers are read
/// from their decimal text, so `1234.56` stays exactly 1234.56.
pub fn parse_amount(value: &serde_json::Value) -> Result<Decimal, String> {
    let text = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.trim().to_owned(),
        other => {
            return Err(format!(
                "must be a decimal amount (number or string), got {}",
                json_kind(other)
            ));
        }
    };
    let amount = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("must be a decimal amount, got {text:?}"))?;
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err("must not be negative".into());
    }
    if amount > Decimal::from(MAX_AMOUNT) {
        return Err("is implausibly large".into());
    }
    if amount.scale() > 6 {
        return Err("must have at most 6 decimal places".into());
    }
    Ok(amount.normalize())
}

pub fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_strings_parse_exactly() {
        assert_eq!(
            parse_amount(&json!(1234.56)).unwrap().to_string(),
            "1234.56"
        );
        assert_eq!(
            parse_amount(&json!("250000")).unwrap().to_string(),
            "250000"
        );
        assert_eq!(parse_amount(&json!(0)).unwrap(), Decimal::ZERO);
    }

    #[test]
    fn bad_amounts_are_refused_with_reason() {
        assert!(parse_amount(&json!(-1)).unwrap_err().contains("negative"));
        assert!(parse_amount(&json!("abc")).unwrap_err().contains("decimal"));
        assert!(parse_amount(&json!(true)).unwrap_err().contains("boolean"));
        assert!(
            parse_amount(&json!("0.0000001"))
                .unwrap_err()
                .contains("6 decimal")
        );
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("SEK").is_ok());
        assert!(Currency::parse("sek").is_err());
        assert!(Currency::parse("SEKK").is_err());
    }
}
