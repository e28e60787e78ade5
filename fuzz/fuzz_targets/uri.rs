//! `uri::parse` on arbitrary strings: no panic, and a parsed credential
//! either formats and parses back to itself or is refused by `format`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_otp::uri;

fuzz_target!(|text: &str| {
    match uri::parse(text) {
        Ok(credential) => match uri::format(&credential) {
            Ok(written) => {
                let again = uri::parse(&written)
                    .unwrap_or_else(|e| panic!("{written:?} does not parse back: {e}"));
                assert_eq!(again, credential, "{written:?}");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        },
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
