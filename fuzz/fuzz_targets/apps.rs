//! Aegis, 2FAS and andOTP backups on arbitrary bytes, with a password so the
//! decryption paths run: no panic, and whatever is read writes back (plain)
//! and reads again to the same credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_formats::{FormatError, Keys, Record, Written, aegis, andotp, twofas};
use zeroize::Zeroizing;

type Reader = fn(&[u8], &Keys) -> Result<Vec<Record>, FormatError>;
type Writer = fn(&[Record], Option<&str>) -> Result<Written, FormatError>;

fuzz_target!(|data: &[u8]| {
    let keys = Keys {
        password: Some(Zeroizing::new("x".to_owned())),
        key: None,
    };
    let formats: [(&str, Reader, Writer, fn(&[u8]) -> bool); 3] = [
        ("aegis", aegis::read, aegis::write, aegis::looks_like),
        ("2fas", twofas::read, twofas::write, twofas::looks_like),
        ("andotp", andotp::read, andotp::write, andotp::looks_like),
    ];
    for (name, read, write, looks_like) in formats {
        let _ = looks_like(data);
        let records = match read(data, &keys) {
            Ok(records) => records,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        let written = write(&records, None).expect("plain write");
        assert!(
            looks_like(&written.bytes),
            "{name}: own output not recognised"
        );
        let skipped: Vec<usize> = written.skipped.iter().map(|s| s.index).collect();
        let expected: Vec<_> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| !skipped.contains(i))
            .map(|(_, r)| r.credential.clone())
            .collect();
        let again: Vec<_> = read(&written.bytes, &Keys::default())
            .unwrap_or_else(|e| panic!("{name}: written file does not read: {e}"))
            .into_iter()
            .map(|r| r.credential)
            .collect();
        assert_eq!(again, expected, "{name}");
    }
});
