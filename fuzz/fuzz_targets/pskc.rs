//! PSKC files on arbitrary bytes: no panic, and whatever is read writes back
//! (plain) and reads again to the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_formats::pskc::{self, WriteOptions};
use oathdesk_formats::{Keys, Location};
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    // A pre-shared key (RFC 6030 figure 6's) but no password: PBKDF2 with a
    // file-chosen iteration count would only slow the fuzzer down.
    let keys = Keys {
        password: None,
        key: Some(Zeroizing::new(
            b"\x12\x34\x56\x78\x90\x12\x34\x56\x78\x90\x12\x34\x56\x78\x90\x12".to_vec(),
        )),
    };
    let records = match pskc::read(data, &keys) {
        Ok(records) => records,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let written = pskc::write(&records, &WriteOptions::default()).expect("plain write");
    let skipped: Vec<usize> = written.skipped.iter().map(|s| s.index).collect();
    let expected: Vec<_> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !skipped.contains(i))
        .enumerate()
        .map(|(n, (_, r))| {
            let mut r = r.clone();
            r.location = Location::element(format!("KeyPackage {}", n + 1));
            r
        })
        .collect();
    let again = pskc::read(&written.bytes, &Keys::default()).expect("written file reads");
    assert_eq!(again, expected);
});
