//! The webhook signature: `v1=` and the hex HMAC-SHA256, under the shared
//! secret, of `timestamp + "." + body`.
//!
//! The timestamp is inside the MAC so that a captured request cannot be
//! replayed later with a fresh timestamp; the receiver refuses timestamps
//! too far from its clock. The version prefix lets the scheme change
//! without a receiver mistaking one scheme for another.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The one signature version there is.
pub const SIGNATURE_VERSION: &str = "v1";

/// How far a timestamp may be from the receiver's clock, either way, by
/// default. Five minutes covers retries (each attempt is signed afresh)
/// and ordinary clock drift.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a signed request was refused. No variant echoes what the request
/// carried: the receiver's log should not become a channel for the sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no webhook secret is configured: a signature under an empty secret proves nothing")]
    NoSecret,
    #[error("the X-Oathdesk-Timestamp header is not a number of Unix seconds")]
    BadTimestamp,
    #[error("the X-Oathdesk-Signature header is not 'v1=' followed by 64 hex digits")]
    Malformed,
    #[error(
        "the X-Oathdesk-Signature header uses a signature version this receiver does not know (it knows v1)"
    )]
    UnknownVersion,
    #[error(
        "the signature does not match: the secret differs, or the body or timestamp was altered"
    )]
    Mismatch,
    /// The signature is genuine but the request is too old (a replay) or too
    /// far ahead (a clock out of step).
    #[error(
        "the request was signed at {timestamp}, {} s away from now ({now}), beyond the tolerance: \
         a replay, or a clock out of step",
        now.abs_diff(*timestamp)
    )]
    OutsideTolerance { timestamp: u64, now: u64 },
}

/// The `X-Oathdesk-Signature` value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!(
        "{SIGNATURE_VERSION}={}",
        data_encoding::HEXLOWER.encode(&tag)
    )
}

/// Checks a request as a receiver does: the signature over the timestamp
/// header exactly as sent and the raw body (before any JSON parsing), then
/// the timestamp against `now` (Unix seconds). The MAC is compared in
/// constant time. The timestamp is judged after the MAC, so that a stale
/// but genuine request is told apart from a forged one.
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now: u64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let timestamp_text = timestamp_header.trim();
    // Digits only: `u64::from_str` would also take a leading '+'.
    if timestamp_text.is_empty() || !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    let timestamp: u64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;

    let (version, hex) = signature_header
        .trim()
        .split_once('=')
        .ok_or(SignatureError::Malformed)?;
    if version != SIGNATURE_VERSION {
        return Err(SignatureError::UnknownVersion);
    }
    let tag = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|_| SignatureError::Malformed)?;
    if tag.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    mac(secret, timestamp_text, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)?;

    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::OutsideTolerance { timestamp, now });
    }
    Ok(())
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length (a long one is hashed first).
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"a":1}"#;
    /// Computed apart from this crate:
    /// `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac Jefe`.
    const JEFE: &str = "v1=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a";

    #[test]
    fn signs_as_openssl_does() {
        assert_eq!(sign(b"Jefe", 1_700_000_000, BODY), JEFE);
    }

    #[test]
    fn verifies_within_the_tolerance_either_way() {
        let ok = |now| verify_signature(b"Jefe", "1700000000", BODY, JEFE, now, DEFAULT_TOLERANCE);
        assert_eq!(ok(1_700_000_000), Ok(()));
        assert_eq!(ok(1_700_000_300), Ok(()));
        assert_eq!(ok(1_699_999_700), Ok(()));
        assert_eq!(
            ok(1_700_000_301),
            Err(SignatureError::OutsideTolerance {
                timestamp: 1_700_000_000,
                now: 1_700_000_301
            })
        );
        assert_eq!(
            ok(1_699_999_699),
            Err(SignatureError::OutsideTolerance {
                timestamp: 1_700_000_000,
                now: 1_699_999_699
            })
        );
        // Upper-case hex is the same signature.
        let upper = format!("v1={}", JEFE[3..].to_uppercase());
        assert_eq!(
            verify_signature(
                b"Jefe",
                "1700000000",
                BODY,
                &upper,
                1_700_000_000,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_what_it_cannot_vouch_for() {
        let check = |secret: &[u8], ts: &str, body: &[u8], sig: &str| {
            verify_signature(secret, ts, body, sig, 1_700_000_000, DEFAULT_TOLERANCE)
        };
        use SignatureError::*;
        assert_eq!(check(b"", "1700000000", BODY, JEFE), Err(NoSecret));
        assert_eq!(check(b"Jeff", "1700000000", BODY, JEFE), Err(Mismatch));
        assert_eq!(
            check(b"Jefe", "1700000000", br#"{"a":2}"#, JEFE),
            Err(Mismatch)
        );
        // The timestamp is signed: moving it breaks the MAC, even within
        // the tolerance.
        assert_eq!(check(b"Jefe", "1700000001", BODY, JEFE), Err(Mismatch));
        assert_eq!(check(b"Jefe", "+1700000000", BODY, JEFE), Err(BadTimestamp));
        assert_eq!(check(b"Jefe", "", BODY, JEFE), Err(BadTimestamp));
        assert_eq!(check(b"Jefe", "soon", BODY, JEFE), Err(BadTimestamp));
        assert_eq!(
            check(b"Jefe", "99999999999999999999999", BODY, JEFE),
            Err(BadTimestamp)
        );
        let v2 = JEFE.replacen("v1=", "v2=", 1);
        assert_eq!(check(b"Jefe", "1700000000", BODY, &v2), Err(UnknownVersion));
        assert_eq!(
            check(b"Jefe", "1700000000", BODY, &JEFE[3..]),
            Err(Malformed)
        );
        assert_eq!(
            check(b"Jefe", "1700000000", BODY, &JEFE[..JEFE.len() - 2]),
            Err(Malformed)
        );
        assert_eq!(check(b"Jefe", "1700000000", BODY, "v1=zz"), Err(Malformed));
    }
}
