//! Migration links on arbitrary strings and payloads on arbitrary bytes: no
//! panic, and a decoded batch either encodes back to itself or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_otp::migration;

fn round_trip(batch: &migration::MigrationBatch) {
    if let Ok(bytes) = migration::encode_payload(batch) {
        let again = migration::decode_payload(&bytes).expect("encoded payload decodes");
        assert_eq!(&again, batch);
    }
}

fuzz_target!(|data: &[u8]| {
    match migration::decode_payload(data) {
        Ok(batch) => round_trip(&batch),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        match migration::parse(text) {
            Ok(batch) => round_trip(&batch),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
