//! Webhook signatures: HMAC-SHA256 over `"{timestamp}.{body}"`, hex encoded, sent as
//! `X-Carrot-Signature: v1=<hex>` with `X-Carrot-Timestamp: <unix seconds>`. Binding the
//! timestamp into the MAC makes a captured request useless after the tolerance window.

use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use sha2::Sha256;

/// How far the caller's timestamp may be from ours, either way.
pub const TOLERANCE_SECS: i64 = 300;
const SCHEME: &str = "v1=";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Carrot-Timestamp must be whole seconds since the Unix epoch")]
    MalformedTimestamp,
    #[error(
        "X-Carrot-Timestamp is {0} s away from the server clock (tolerance {TOLERANCE_SECS} s)"
    )]
    Stale(i64),
    #[error("X-Carrot-Signature must look like v1=<64 hex digits>")]
    MalformedSignature,
    #[error("signature does not match any active secret of this key")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value a sender puts in `X-Carrot-Signature`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "{SCHEME}{}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks that the caller's timestamp is within the tolerance window of `now`.
pub fn check_timestamp(timestamp: &str, now: Timestamp) -> Result<(), SignatureError> {
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    // Saturating: a timestamp near i64::MIN or MAX is stale, not an overflow.
    let skew = now.as_second().saturating_sub(sent);
    if skew.saturating_abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale(skew));
    }
    Ok(())
}

/// Checks the timestamp window, then the MAC against each active secret in constant time.
pub fn verify<S: AsRef<[u8]>>(
    secrets: &[S],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(), SignatureError> {
    check_timestamp(timestamp, now)?;
    let tag = signature
        .trim()
        .strip_prefix(SCHEME)
        .and_then(|h| hex::decode(h).ok())
        .filter(|t| t.len() == 32)
        .ok_or(SignatureError::MalformedSignature)?;
    // Every secret is tried, whatever matches first, so timing says nothing about which did.
    let matched = secrets.iter().fold(false, |matched, secret| {
        mac(secret.as_ref(), timestamp.trim(), body)
            .verify_slice(&tag)
            .is_ok()
            | matched
    });
    matched.then_some(()).ok_or(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn either_active_secret_verifies() {
        let body = br#"{"id":"e-1"}"#;
        let ts = "1800000000";
        for secret in ["old-secret", "new-secret"] {
            let sig = sign(secret.as_bytes(), ts, body);
            assert_eq!(
                verify(&["new-secret", "old-secret"], ts, &sig, body, now()),
                Ok(())
            );
        }
        let sig = sign(b"retired", ts, body);
        assert_eq!(
            verify(&["new-secret", "old-secret"], ts, &sig, body, now()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_malformed_inputs() {
        let body = b"{}";
        let sig = sign(b"s", "1799999000", body);
        assert_eq!(
            verify(&["s"], "1799999000", &sig, body, now()),
            Err(SignatureError::Stale(1000))
        );
        assert_eq!(
            verify(&["s"], "yesterday", &sig, body, now()),
            Err(SignatureError::MalformedTimestamp)
        );
        assert_eq!(
            verify(&["s"], "1800000000", "sha256=abc", body, now()),
            Err(SignatureError::MalformedSignature)
        );
    }

    proptest! {
        #[test]
        fn any_change_to_body_or_timestamp_breaks_the_signature(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            flip in any::<prop::sample::Index>(),
            skew in -299i64..=300,
        ) {
            let ts = (1_800_000_000 + skew).to_string();
            let sig = sign(b"secret", &ts, &body);
            prop_assert_eq!(verify(&["secret"], &ts, &sig, &body, now()), Ok(()));
            if !body.is_empty() {
                let mut tampered = body.clone();
                tampered[flip.index(body.len())] ^= 1;
                prop_assert_eq!(
                    verify(&["secret"], &ts, &sig, &tampered, now()),
                    Err(SignatureError::Mismatch)
                );
            }
            let other_ts = (1_800_000_000 + skew - 1).to_string();
            prop_assert_eq!(
                verify(&["secret"], &other_ts, &sig, &body, now()),
                Err(SignatureError::Mismatch)
            );
        }
    }
}
