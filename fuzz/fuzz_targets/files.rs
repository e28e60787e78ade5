//! Every seed-file reader, format detection and the linter on arbitrary
//! bytes: none may panic, and what one reads must write and read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oathdesk_formats::format::{self, Format, WriteOptions};
use oathdesk_formats::{Keys, lint};

fuzz_target!(|data: &[u8]| {
    let keys = Keys::default();
    let _ = format::detect(data);
    let _ = lint::lint(data, None, &keys, Some(lint::Target::Entra));
    let _ = lint::lint_spreadsheet(data, Some(lint::Target::Entra));
    let _ = oathdesk_formats::comma_separated(data);
    for format in [Format::Aegis, Format::TwoFas, Format::AndOtp] {
        let _ = format::read_all(format, data, &keys);
    }
    for format in [
        Format::EntraCsv,
        Format::EntraJson,
        Format::PrivacyIdea,
        Format::PrivacyIdeaV2,
        Format::LinOtp,
        Format::Otpauth,
        Format::Oathdesk,
    ] {
        if let Ok(records) = format::read(format, data, &keys) {
            let written = format::write(format, &records, &WriteOptions::default())
                .expect("writing what was read works");
            let again = format::read(format, &written.bytes, &keys).expect("what was written reads back");
            assert_eq!(again.len(), records.len() - written.skipped.len());
        }
    }
});
