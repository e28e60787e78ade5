//! What comes back from Entra, on arbitrary bytes: Graph error bodies,
//! `Retry-After` values, sign-in errors, the token cache file and Graph's
//! device payloads. No panic, and nothing read back is longer than a
//! message should be.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_entra::auth::{TokenCache, explain_sign_in_error};
use oathdesk_entra::http::parse_retry_after;
use oathdesk_entra::GraphError;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let error = GraphError::parse(400, &text);
    let _ = error.to_string();
    let _ = parse_retry_after(&text, std::time::UNIX_EPOCH);
    let _ = explain_sign_in_error(&text, &text);
    let _ = TokenCache::from_bytes(data).to_bytes();
    let _ = serde_json::from_slice::<oathdesk_formats::entra::GraphPayload>(data);
});
