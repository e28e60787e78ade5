//! The readers of Entra's answers (also the `entra` fuzz target) on hostile
//! and random input: no panic, short messages, no surprises.

use std::time::{Duration, UNIX_EPOCH};

use oathdesk_entra::GraphError;
use oathdesk_entra::auth::{TokenCache, explain_sign_in_error};
use oathdesk_entra::http::parse_retry_after;

fn read_everything(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let error = GraphError::parse(400, &text);
    assert!(error.message.chars().count() <= 200);
    let _ = error.to_string();
    let _ = parse_retry_after(&text, UNIX_EPOCH);
    let _ = explain_sign_in_error(&text, &text);
    let _ = TokenCache::from_bytes(data).to_bytes();
    let _ = serde_json::from_slice::<oathdesk_formats::entra::GraphPayload>(data);
}

#[test]
fn edge_cases() {
    for case in [
        &b""[..],
        b"99999999999999999999999",
        b"-1",
        b"Fri, 31 Dec 9999 23:59:59 GMT",
        b"{\"error\":{\"code\":5}}",
        b"{\"error\":null}",
        b"{\"tokens\":{\"k\":{\"access_token\":\"x\",\"expires_at\":-1}}}",
        b"AADSTS:::\r\n\r\n",
        b"\xff\xfe\x00{\"value\":[{\"timeIntervalInSeconds\":1e309}]}",
    ] {
        read_everything(case);
    }
    assert_eq!(
        parse_retry_after("99999999999999999999999", UNIX_EPOCH),
        None
    );
    assert_eq!(
        parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", UNIX_EPOCH),
        Some(Duration::from_secs(10))
    );
    let long = "x".repeat(10_000);
    assert_eq!(GraphError::parse(500, &long).message.len(), 200);
}

#[test]
fn random_bytes() {
    // A fixed xorshift stream: the same inputs on every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"{}[]\":,0123456789 abcdefghijklmnopqrstuvwxyzGMT\\\n\xff";
    for _ in 0..2000 {
        let len = (next() % 96) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        read_everything(&data);
    }
}
