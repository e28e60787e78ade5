//! Real-world-shaped files (issue 16): app backups mixing TOTP/HOTP with
//! Steam, Yandex and mOTP entries; a PSKC file in the pre-RFC draft form;
//! conversions that drop data saying so.

use oathdesk_formats::format::{self, Format};
use oathdesk_formats::{Keys, Record};
use oathdesk_otp::{Kind, Secret, TimeStep};
use zeroize::Zeroizing;

const AEGIS_PLAIN: &[u8] = include_bytes!("data/aegis_mixed_plain.json");
const AEGIS_ENCRYPTED: &[u8] = include_bytes!("data/aegis_mixed_encrypted.json");
const ANDOTP_PLAIN: &[u8] = include_bytes!("data/andotp_mixed_plain.json");
const ANDOTP_ENCRYPTED: &[u8] = include_bytes!("data/andotp_mixed_encrypted.bin");
const PSKC_DRAFT: &[u8] = include_bytes!("data/pskc_draft_encrypted.pskcxml");

fn password(p: &str) -> Keys {
    Keys {
        password: Some(Zeroizing::new(p.into())),
        key: None,
    }
}

fn accounts(records: &[Record]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r.credential.account.as_str())
        .collect()
}

#[test]
fn aegis_backups_with_steam_yandex_motp_read_every_totp_and_hotp() {
    for (bytes, keys) in [
        (AEGIS_PLAIN, Keys::default()),
        (AEGIS_ENCRYPTED, password("test")),
    ] {
        let read = format::read_all(Format::Aegis, bytes, &keys).unwrap();
        assert_eq!(accounts(&read.records), ["alice@contoso.com", "bob"]);
        let skipped: Vec<String> = read
            .skipped
            .iter()
            .map(|s| format!("{} {}: {}", s.index, s.reference, s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                "1 entries[1] (issuer \"Steam\", account \"gamer42\"): a Steam entry; oathdesk \
                 handles TOTP and HOTP only (show its codes with 'oathdesk code --steam')",
                "2 entries[2] (issuer \"Yandex\", account \"ivan\"): a Yandex entry; oathdesk \
                 handles TOTP and HOTP only",
                "3 entries[3] (issuer \"Legacy VPN\", account \"vpn\"): an mOTP entry; oathdesk \
                 handles TOTP and HOTP only",
            ]
        );
        for text in &skipped {
            assert!(
                !text.contains("GEZDGNBV") && !text.contains("LA2V6KMC"),
                "{text}"
            );
        }
        // The strict reader still refuses, at the first such entry.
        let error = format::read(Format::Aegis, bytes, &keys).unwrap_err();
        assert_eq!(
            error.to_string(),
            "entries[1]: a Steam entry; oathdesk handles TOTP and HOTP only"
        );
    }
}

#[test]
fn andotp_backups_with_steam_read_the_rest() {
    for (bytes, keys) in [
        (ANDOTP_PLAIN, Keys::default()),
        (ANDOTP_ENCRYPTED, password("test")),
    ] {
        let read = format::read_all(Format::AndOtp, bytes, &keys).unwrap();
        assert_eq!(accounts(&read.records), ["alice@contoso.com", "bob"]);
        assert_eq!(read.skipped.len(), 1);
        assert_eq!(read.skipped[0].index, 1);
        assert_eq!(
            read.skipped[0].reference,
            "entries[1] (issuer \"Steam\", account \"gamer42\")"
        );
    }
}

#[test]
fn draft_pskc_with_an_encrypted_key_is_read() {
    let keys = Keys {
        password: None,
        key: Some(Zeroizing::new(
            Secret::from_hex("12345678901234567890123456789012")
                .unwrap()
                .as_bytes()
                .to_vec(),
        )),
    };
    let records = format::read(Format::Pskc, PSKC_DRAFT, &keys).unwrap();
    assert_eq!(records.len(), 2);
    let totp = &records[0];
    assert_eq!(totp.serial.as_deref(), Some("2100012345"));
    assert_eq!(totp.credential.secret.as_bytes(), b"12345678901234567890");
    assert_eq!(totp.credential.digits.get(), 8);
    assert_eq!(
        totp.credential.kind,
        Kind::Totp {
            step: TimeStep::DEFAULT
        }
    );
    assert_eq!(totp.location.describe().as_deref(), Some("Device 1"));
    // RFC 6238's SHA-1 vector.
    let code = totp
        .credential
        .totp_generator()
        .unwrap()
        .generate_at(59)
        .unwrap();
    assert_eq!(code.to_string(), "94287082");
    assert_eq!(records[1].credential.kind, Kind::Hotp { counter: 5 });
    assert_eq!(records[1].credential.digits.get(), 6);
    // A wrong key is found by the draft's MACAlgorithm check.
    let wrong = Keys {
        password: None,
        key: Some(Zeroizing::new(vec![0x11; 16])),
    };
    let error = format::read(Format::Pskc, PSKC_DRAFT, &wrong).unwrap_err();
    assert!(error.to_string().contains("ValueMAC"), "{error}");
}

#[test]
fn pskc_with_keys_and_no_record_is_never_a_success() {
    // The 2007 draft's <Data Name="SECRET"> form: a stated refusal.
    let hoyer = br#"<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:container">
  <Device><DeviceId><SerialNo>1</SerialNo></DeviceId>
    <Key KeyAlgorithm="urn:ietf:params:xml:ns:keyprov:pskc#hotp" KeyId="1">
      <Data Name="SECRET"><Value>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</Value></Data>
    </Key>
  </Device>
</KeyContainer>"#;
    let error = format::read(Format::Pskc, hoyer, &Keys::default()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("Device 1, Secret: the key is in the 2007 draft form"),
        "{error}"
    );
    // Keys outside any package oathdesk knows.
    let odd = br#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <Token><Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><Data><Secret>
    <PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret></Data></Key></Token>
</KeyContainer>"#;
    let error = format::read(Format::Pskc, odd, &Keys::default()).unwrap_err();
    assert!(error.to_string().contains("nothing was read"), "{error}");
    // An empty container is still an empty success.
    let empty = br#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"/>"#;
    assert!(
        format::read(Format::Pskc, empty, &Keys::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn conversions_that_drop_data_say_so() {
    let mut record = Record::new(oathdesk_otp::Credential::totp(
        Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap(),
    ));
    record.serial = Some("2100012345".into());
    record.user = Some("alice@contoso.com".into());
    let notes = format::write_notes(Format::Aegis, std::slice::from_ref(&record));
    assert_eq!(
        notes,
        [
            "aegis files have no place for a token's serial, user: dropped from 1 record(s); \
          write pskc or oathdesk to keep them"
        ]
    );
    assert!(format::write_notes(Format::Pskc, &[record.clone()]).is_empty());

    record.credential.kind = Kind::Totp {
        step: TimeStep::new(60, 0).unwrap(),
    };
    let written = format::write(Format::Google, &[record], &Default::default()).unwrap();
    assert_eq!(written.skipped.len(), 1);
    let reason = &written.skipped[0].reason;
    assert!(
        reason.starts_with("its period is 60 s, and a Google Authenticator export has no period")
            && reason.contains("--to otpauth"),
        "{reason}"
    );
}

proptest::proptest! {
    /// Separator detection and the linters never panic on spreadsheet-like
    /// text, and a `;` file reads as its comma-separated self.
    #[test]
    fn separators_and_linters_never_panic(text in "[a-z0-9;,\t\"= \n\r#@.-]{0,200}") {
        let bytes = text.as_bytes();
        let _ = oathdesk_formats::comma_separated(bytes);
        let _ = format::candidates(bytes);
        let _ = oathdesk_formats::lint::lint(bytes, Some(Format::EntraCsv), &Keys::default(), None);
        let _ = oathdesk_formats::lint::lint_spreadsheet(bytes, None);
    }
}

#[test]
fn semicolon_entra_csv_reads_like_the_comma_one() {
    let comma = "upn,serial number,secret key,time interval,manufacturer,model\n\
                 a@contoso.com,2100001,JBSWY3DPEHPK3PXP,30,Token2,C202\n";
    let expected = format::read(Format::EntraCsv, comma.as_bytes(), &Keys::default()).unwrap();
    for separator in [";", "\t"] {
        let text = comma.replace(',', separator);
        assert_eq!(format::detect(text.as_bytes()).unwrap(), Format::EntraCsv);
        let records = format::read(Format::EntraCsv, text.as_bytes(), &Keys::default()).unwrap();
        assert_eq!(records, expected);
    }
}
