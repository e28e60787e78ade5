//! Secret decoders on arbitrary UTF-8: no panic, and what decodes is not
//! empty and encodes back to something that decodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_otp::{Encoding, Secret, SecretError};

fn check(decoded: Result<Secret, SecretError>, encoding: Encoding) {
    if let Ok(secret) = decoded {
        assert!(!secret.is_empty());
        let again = Secret::decode(&secret.encode(encoding), encoding).expect("re-decodes");
        assert_eq!(again, secret);
    }
}

fuzz_target!(|text: &str| {
    check(Secret::from_base32(text), Encoding::Base32);
    check(Secret::from_hex(text), Encoding::Hex);
    check(Secret::from_base64(text), Encoding::Base64);
    let unspecified = Secret::from_unspecified(text);
    if unspecified.is_ok() {
        assert_eq!(unspecified, Secret::from_base32(text));
    }
    check(unspecified, Encoding::Base32);
    // Error messages must never quote the input; rendering them must not panic.
    for e in [
        Secret::from_base32(text),
        Secret::from_hex(text),
        Secret::from_base64(text),
    ]
    .into_iter()
    .filter_map(Result::err)
    {
        let _ = e.to_string();
    }
});
