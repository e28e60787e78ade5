//! PSKC (RFC 6030): the RFC's figures, encryption and MACs, round trips and
//! hostile input.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use data_encoding::{BASE64, HEXLOWER};
use oathdesk_formats::pskc::{self, Encryption, WriteOptions};
use oathdesk_formats::{Keys, Location, Record};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use proptest::prelude::*;
use zeroize::Zeroizing;

const FIGURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/vectors/pskc/rfc6030/"
);

fn figure(n: u32) -> String {
    let path = format!("{FIGURES}figure{n}.pskcxml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn no_keys() -> Keys {
    Keys::default()
}

fn with_key(hex: &str) -> Keys {
    Keys {
        password: None,
        key: Some(Zeroizing::new(HEXLOWER.decode(hex.as_bytes()).unwrap())),
    }
}

fn with_password(password: &str) -> Keys {
    Keys {
        password: Some(Zeroizing::new(password.to_owned())),
        key: None,
    }
}

const FIG6_KEY: &str = "12345678901234567890123456789012";
const FIG7_DERIVED: &str = "651e63cd57008476af1ff6422cd02e41";

fn secret_text(record: &Record) -> String {
    String::from_utf8(record.credential.secret.as_bytes().to_vec()).unwrap()
}

fn package(n: usize) -> Location {
    Location::element(format!("KeyPackage {n}"))
}

/// Replaces a base64 value in a file with the same bytes, one bit flipped.
fn flip_base64(text: &str, value: &str, byte: usize) -> String {
    let mut bytes = BASE64.decode(value.as_bytes()).unwrap();
    bytes[byte] ^= 0x01;
    assert!(text.contains(value));
    text.replace(value, &BASE64.encode(&bytes))
}

#[test]
fn figures_are_found() {
    assert!(
        std::path::Path::new(FIGURES)
            .join("figure2.pskcxml")
            .is_file(),
        "{FIGURES}"
    );
}

#[test]
fn figure2_basic_container() {
    let records = pskc::read(figure(2).as_bytes(), &no_keys()).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(secret_text(r), "1234");
    assert_eq!(r.credential.issuer.as_deref(), Some("Issuer-A"));
    assert_eq!(r.credential.kind, Kind::Hotp { counter: 0 });
    assert_eq!(r.credential.algorithm, Algorithm::Sha1);
    assert_eq!(r.credential.digits, Digits::SIX);
    assert_eq!(r.serial, None);
    assert_eq!(r.location, package(1));
}

#[test]
fn figure3_supplementary_data() {
    let records = pskc::read(figure(3).as_bytes(), &no_keys()).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(secret_text(r), "12345678901234567890");
    assert_eq!(r.serial.as_deref(), Some("987654321"));
    assert_eq!(r.manufacturer.as_deref(), Some("Manufacturer"));
    // Key/UserId wins over DeviceInfo/UserId.
    assert_eq!(r.user.as_deref(), Some("UID=jsmith,DC=example-bank,DC=net"));
    assert_eq!(r.credential.issuer.as_deref(), Some("Issuer"));
    assert_eq!(r.credential.digits, Digits::EIGHT);
    assert_eq!(r.credential.kind, Kind::Hotp { counter: 0 });
    // The RFC 4226 key gives the RFC 4226 codes (8 digits here).
    assert_eq!(r.credential.hotp().generate(0).to_string(), "84755224");
}

#[test]
fn figure3_device_user_when_key_has_none() {
    let text = figure(3).replace("<UserId>UID=jsmith,DC=example-bank,DC=net</UserId>", "");
    let records = pskc::read(text.as_bytes(), &no_keys()).unwrap();
    assert_eq!(records[0].user.as_deref(), Some("DC=example-bank,DC=net"));
}

#[test]
fn figure4_derived_key_is_refused_with_reason() {
    let error = pskc::read(figure(4).as_bytes(), &no_keys()).unwrap_err();
    assert_eq!(error.location, package(1));
    assert_eq!(error.field.as_deref(), Some("Secret"));
    assert!(error.message.contains("MasterKeyLabel"), "{error}");
}

#[test]
fn figure5_pin_key_is_left_out() {
    let records = pskc::read(figure(5).as_bytes(), &no_keys()).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(secret_text(r), "12345678901234567890");
    assert_eq!(r.serial.as_deref(), Some("987654321"));
    assert_eq!(r.credential.digits, Digits::EIGHT);
    assert_eq!(r.credential.kind, Kind::Hotp { counter: 0 });
}

#[test]
fn figure6_pre_shared_key_and_mac() {
    let records = pskc::read(figure(6).as_bytes(), &with_key(FIG6_KEY)).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(secret_text(r), "12345678901234567890");
    assert_eq!(r.serial.as_deref(), Some("987654321"));
    assert_eq!(r.manufacturer.as_deref(), Some("Manufacturer"));
    assert_eq!(r.credential.issuer.as_deref(), Some("Issuer"));
    assert_eq!(r.credential.digits, Digits::EIGHT);
    assert_eq!(r.credential.kind, Kind::Hotp { counter: 0 });
}

#[test]
fn figure6_missing_key_says_which_option() {
    let error = pskc::read(figure(6).as_bytes(), &no_keys()).unwrap_err();
    assert_eq!(
        error.message,
        "this file is encrypted with a pre-shared key named 'Pre-shared-key'; give the key with \
         --key-file"
    );
    let error = pskc::read(figure(6).as_bytes(), &with_password("qwerty")).unwrap_err();
    assert!(error.message.contains("--key-file"), "{error}");
}

#[test]
fn figure6_wrong_key_is_an_error() {
    for wrong in [
        "12345678901234567890123456789013",
        "00000000000000000000000000000000",
        "ffeeddccbbaa99887766554433221100",
    ] {
        assert!(
            pskc::read(figure(6).as_bytes(), &with_key(wrong)).is_err(),
            "{wrong}"
        );
    }
    // A 32-byte key for an aes128-cbc file.
    let error = pskc::read(
        figure(6).as_bytes(),
        &with_key(&format!("{FIG6_KEY}{FIG6_KEY}")),
    )
    .unwrap_err();
    assert!(error.message.contains("16 bytes"), "{error}");
}

#[test]
fn figure6_flipped_value_mac_is_an_error() {
    let text = flip_base64(&figure(6), "Su+NvtQfmvfJzF6bmQiJqoLRExc=", 5);
    let error = pskc::read(text.as_bytes(), &with_key(FIG6_KEY)).unwrap_err();
    assert_eq!(error.location, package(1));
    assert_eq!(error.field.as_deref(), Some("Secret ValueMAC"));
    assert!(error.message.contains("does not match"), "{error}");
}

#[test]
fn figure6_flipped_cipher_value_is_an_error() {
    let value = "AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv";
    // In the IV, the ciphertext and its last block.
    for byte in [0, 20, 47] {
        let text = flip_base64(&figure(6), value, byte);
        let error = pskc::read(text.as_bytes(), &with_key(FIG6_KEY)).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("Secret ValueMAC"), "{byte}");
    }
}

#[test]
fn figure6_flipped_mac_key_is_an_error() {
    let value = "ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX";
    for byte in [0, 20, 47] {
        let text = flip_base64(&figure(6), value, byte);
        assert!(
            pskc::read(text.as_bytes(), &with_key(FIG6_KEY)).is_err(),
            "{byte}"
        );
    }
}

#[test]
fn figure6_missing_value_mac_is_an_error() {
    let text = figure(6);
    let start = text.find("<ValueMAC>").unwrap();
    let end = text.find("</ValueMAC>").unwrap() + "</ValueMAC>".len();
    let text = format!("{}{}", &text[..start], &text[end..]);
    let error = pskc::read(text.as_bytes(), &with_key(FIG6_KEY)).unwrap_err();
    assert_eq!(error.location, package(1));
    assert_eq!(error.field.as_deref(), Some("Secret ValueMAC"));
}

#[test]
fn figure7_password() {
    let records = pskc::read(figure(7).as_bytes(), &with_password("qwerty")).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(secret_text(r), "12345678901234567890");
    assert_eq!(r.serial.as_deref(), Some("987654321"));
    assert_eq!(r.manufacturer.as_deref(), Some("TokenVendorAcme"));
    assert_eq!(r.credential.issuer.as_deref(), Some("Example-Issuer"));
    assert_eq!(r.credential.digits, Digits::EIGHT);
}

#[test]
fn figure7_derived_key_is_the_rfc_key() {
    // The RFC's derived key, given as the key itself, opens the file and
    // passes the MAC: so PBKDF2("qwerty") above produced exactly this key.
    let records = pskc::read(figure(7).as_bytes(), &with_key(FIG7_DERIVED)).unwrap();
    assert_eq!(secret_text(&records[0]), "12345678901234567890");
    // And a different key does not.
    assert!(pskc::read(figure(7).as_bytes(), &with_key(FIG6_KEY)).is_err());
}

#[test]
fn figure7_wrong_or_missing_password() {
    assert!(pskc::read(figure(7).as_bytes(), &with_password("qwertz")).is_err());
    assert!(pskc::read(figure(7).as_bytes(), &with_password("")).is_err());
    let error = pskc::read(figure(7).as_bytes(), &no_keys()).unwrap_err();
    assert!(error.message.contains("--password-file"), "{error}");
    assert!(error.message.contains("My Password 1"), "{error}");
}

#[test]
fn figure7_flipped_value_mac_is_an_error() {
    let text = flip_base64(&figure(7), "LP6xMvjtypbfT9PdkJhBZ+D6O4w=", 0);
    let error = pskc::read(text.as_bytes(), &with_password("qwerty")).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("Secret ValueMAC"));
}

#[test]
fn figure10_bulk() {
    let records = pskc::read(figure(10).as_bytes(), &no_keys()).unwrap();
    let serials: Vec<_> = records.iter().map(|r| r.serial.as_deref()).collect();
    assert_eq!(
        serials,
        [
            Some("654321"),
            Some("123456"),
            Some("9999999"),
            Some("9999999")
        ]
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(secret_text(r), "12345678901234567890");
        assert_eq!(r.manufacturer.as_deref(), Some("TokenVendorAcme"));
        assert_eq!(r.credential.issuer.as_deref(), Some("Issuer"));
        assert_eq!(r.credential.digits, Digits::EIGHT);
        assert_eq!(r.credential.kind, Kind::Hotp { counter: 0 });
        assert_eq!(r.location, package(i + 1));
    }
}

const TOTP_FILE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Feitian</Manufacturer><SerialNo>2600124809778</SerialNo><Model>c200</Model></DeviceInfo>
    <Key Id="2600124809778" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp">
      <AlgorithmParameters>
        <Suite>HMAC-SHA256</Suite>
        <ResponseFormat Length="6" Encoding="DECIMAL"/>
      </AlgorithmParameters>
      <Data>
        <Secret><PlainValue>MRffGnGNJKmo8uSW313HCvGNIYM=</PlainValue></Secret>
        <Time><PlainValue>0</PlainValue></Time>
        <TimeInterval><PlainValue>60</PlainValue></TimeInterval>
        <TimeDrift><PlainValue>-1</PlainValue></TimeDrift>
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>
"#;

#[test]
fn totp_vendor_file() {
    let records = pskc::read(TOTP_FILE.as_bytes(), &no_keys()).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        r.credential.secret.as_bytes(),
        BASE64.decode(b"MRffGnGNJKmo8uSW313HCvGNIYM=").unwrap()
    );
    assert_eq!(
        r.credential.kind,
        Kind::Totp {
            step: TimeStep::new(60, 0).unwrap()
        }
    );
    assert_eq!(r.credential.algorithm, Algorithm::Sha256);
    assert_eq!(r.serial.as_deref(), Some("2600124809778"));
    assert_eq!(r.model.as_deref(), Some("c200"));
    assert_eq!(r.manufacturer.as_deref(), Some("Feitian"));
}

#[test]
fn totp_defaults_and_hash_spellings() {
    let text = TOTP_FILE
        .replace(
            "<TimeInterval><PlainValue>60</PlainValue></TimeInterval>",
            "",
        )
        .replace("HMAC-SHA256", "hmac-sha512");
    let records = pskc::read(text.as_bytes(), &no_keys()).unwrap();
    assert_eq!(
        records[0].credential.kind,
        Kind::Totp {
            step: TimeStep::DEFAULT
        }
    );
    assert_eq!(records[0].credential.algorithm, Algorithm::Sha512);
    // The `#totp` spelling of the algorithm.
    let text = TOTP_FILE.replace("pskc:totp", "pskc#totp");
    assert_eq!(pskc::read(text.as_bytes(), &no_keys()).unwrap().len(), 1);
}

#[test]
fn field_errors_name_package_and_field() {
    let cases = [
        (
            TOTP_FILE.replace("Encoding=\"DECIMAL\"", "Encoding=\"HEXADECIMAL\""),
            "ResponseFormat Encoding",
        ),
        (
            TOTP_FILE.replace("Length=\"6\"", "Length=\"12\""),
            "ResponseFormat Length",
        ),
        (TOTP_FILE.replace("HMAC-SHA256", "HMAC-MD5"), "Suite"),
        (
            TOTP_FILE.replace("<PlainValue>60</PlainValue>", "<PlainValue>0</PlainValue>"),
            "TimeInterval",
        ),
        (
            TOTP_FILE.replace("<PlainValue>60</PlainValue>", "<PlainValue>x</PlainValue>"),
            "TimeInterval",
        ),
        (
            TOTP_FILE.replace("MRffGnGNJKmo8uSW313HCvGNIYM=", "not base64!"),
            "Secret",
        ),
        (TOTP_FILE.replace("pskc:totp", "pskc:ocra"), "Key Algorithm"),
        (
            TOTP_FILE.replace(
                "Encoding=\"DECIMAL\"",
                "Encoding=\"DECIMAL\" CheckDigits=\"true\"",
            ),
            "ResponseFormat CheckDigits",
        ),
    ];
    for (text, field) in cases {
        // The failing package is the second one.
        let two = text.replacen(
            "<KeyPackage>",
            "<KeyPackage><Key Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:hotp\"><Data><Secret><PlainValue>MTIzNA==</PlainValue></Secret></Data></Key></KeyPackage>\n<KeyPackage>",
            1,
        );
        let error = pskc::read(two.as_bytes(), &no_keys()).unwrap_err();
        assert_eq!(error.location, package(2), "{field}: {error}");
        assert_eq!(error.field.as_deref(), Some(field), "{error}");
        assert!(error.to_string().starts_with("KeyPackage 2, "), "{error}");
    }
}

#[test]
fn not_pskc_and_bad_xml() {
    for text in [
        "",
        "hello",
        "<html><body/></html>",
        "<KeyContainer Version=\"1.0\"><KeyPackage>",
        "<KeyContainer Version=\"2.0\"/>",
        "<KeyContainer/><KeyContainer/>",
        "<KeyContainer>&nbsp;</KeyContainer>",
    ] {
        assert!(pskc::read(text.as_bytes(), &no_keys()).is_err(), "{text}");
    }
    assert!(pskc::read(b"\xff\xfe<\x00", &no_keys()).is_err());
    // An empty container is not an error.
    assert_eq!(
        pskc::read(b"<KeyContainer Version=\"1.0\"/>", &no_keys()).unwrap(),
        []
    );
}

#[test]
fn doctype_and_entities_are_refused() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><Issuer>&lol2;</Issuer><Data><Secret><PlainValue>MTIzNA==</PlainValue></Secret></Data></Key></KeyPackage></KeyContainer>"#;
    let error = pskc::read(bomb.as_bytes(), &no_keys()).unwrap_err();
    assert!(error.message.contains("DOCTYPE"), "{error}");
    let external =
        r#"<!DOCTYPE KeyContainer SYSTEM "file:///etc/passwd"><KeyContainer Version="1.0"/>"#;
    assert!(pskc::read(external.as_bytes(), &no_keys()).is_err());
    // An entity reference without a DTD.
    let undeclared = TOTP_FILE.replace("<Model>c200</Model>", "<Model>&xxe;</Model>");
    assert!(pskc::read(undeclared.as_bytes(), &no_keys()).is_err());
    // The five predefined entities and character references are fine.
    let fine = TOTP_FILE.replace("<Model>c200</Model>", "<Model>a&amp;b&#x3c;&#62;</Model>");
    assert_eq!(
        pskc::read(fine.as_bytes(), &no_keys()).unwrap()[0]
            .model
            .as_deref(),
        Some("a&b<>")
    );
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!(
        "<KeyContainer>{}{}</KeyContainer>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert!(pskc::read(text.as_bytes(), &no_keys()).is_err());
}

fn cbc128(key: &[u8], iv: [u8; 16], plaintext: &[u8]) -> String {
    let ct = cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
        .unwrap()
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut data = iv.to_vec();
    data.extend_from_slice(&ct);
    BASE64.encode(&data)
}

fn encrypted_file(secret_method: &str, secret_value: &str, counter_value: &str) -> String {
    format!(
        r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
    xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <KeyPackage><Key Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp"><Data>
    <Secret><EncryptedValue>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#{secret_method}"/>
      <xenc:CipherData><xenc:CipherValue>{secret_value}</xenc:CipherValue></xenc:CipherData>
    </EncryptedValue></Secret>
    <Counter><EncryptedValue>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData><xenc:CipherValue>{counter_value}</xenc:CipherValue></xenc:CipherData>
    </EncryptedValue></Counter>
  </Data></Key></KeyPackage>
</KeyContainer>"#
    )
}

#[test]
fn key_wrap_and_encrypted_counters() {
    let key = HEXLOWER.decode(FIG6_KEY.as_bytes()).unwrap();
    let secret = b"0123456789abcdef01234567"; // 24 bytes: whole 8-byte blocks
    let kek = aes_kw::KekAes128::try_from(key.as_slice()).unwrap();
    let wrapped = BASE64.encode(&kek.wrap_vec(secret).unwrap());
    // Counter as a big-endian integer, then as ASCII digits (python-pskc).
    for (counter_plain, expected) in [(&[0x01, 0x00][..], 256), (b"42", 42)] {
        let counter = cbc128(&key, [7; 16], counter_plain);
        let text = encrypted_file("kw-aes128", &wrapped, &counter);
        let records = pskc::read(text.as_bytes(), &with_key(FIG6_KEY)).unwrap();
        assert_eq!(records[0].credential.secret.as_bytes(), secret);
        assert_eq!(records[0].credential.kind, Kind::Hotp { counter: expected });
    }
    // The key-wrap integrity check catches a wrong key and a flipped byte.
    let counter = cbc128(&key, [7; 16], b"1");
    let text = encrypted_file("kw-aes128", &wrapped, &counter);
    assert!(
        pskc::read(
            text.as_bytes(),
            &with_key("00112233445566778899aabbccddeeff")
        )
        .is_err()
    );
    let flipped = flip_base64(&text, &wrapped, 3);
    let error = pskc::read(flipped.as_bytes(), &with_key(FIG6_KEY)).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("Secret EncryptedValue"));
    // Without a MAC, CBC still rejects a wrong key by its padding (here).
    let cbc_secret = cbc128(&key, [9; 16], b"12345678901234567890");
    let text = encrypted_file("aes128-cbc", &cbc_secret, &counter);
    assert_eq!(
        pskc::read(text.as_bytes(), &with_key(FIG6_KEY)).unwrap()[0]
            .credential
            .secret
            .as_bytes(),
        b"12345678901234567890"
    );
    // Unsupported cipher.
    let text = encrypted_file("tripledes-cbc", &cbc_secret, &counter);
    let error = pskc::read(text.as_bytes(), &with_key(FIG6_KEY)).unwrap_err();
    assert_eq!(error.field.as_deref(), Some("Secret EncryptionMethod"));
}

// --- Writing ---------------------------------------------------------------

fn sample_records() -> Vec<Record> {
    let mut hotp = Record::new(Credential {
        secret: Secret::from_bytes(b"12345678901234567890".to_vec()),
        kind: Kind::Hotp { counter: 41 },
        algorithm: Algorithm::Sha1,
        digits: Digits::EIGHT,
        issuer: Some("Acme & Co <IT>".into()),
        account: "alice@example.com".into(),
        label_issuer: None,
    });
    hotp.serial = Some("HOTP-0001".into());
    hotp.manufacturer = Some("Token2".into());
    hotp.model = Some("c202".into());
    hotp.user = Some("alice@example.com".into());
    let mut totp = Record::new(Credential {
        secret: Secret::from_bytes(vec![0xAB; 32]),
        kind: Kind::Totp {
            step: TimeStep::new(60, 1_000_000).unwrap(),
        },
        algorithm: Algorithm::Sha256,
        digits: Digits::SIX,
        issuer: None,
        account: String::new(),
        label_issuer: None,
    });
    totp.serial = Some("60234567".into());
    totp.user = Some("bob@example.com".into());
    let mut plain = Record::new(Credential::totp(Secret::from_bytes(vec![1, 2, 3, 4, 5])));
    plain.credential.algorithm = Algorithm::Sha512;
    plain.credential.digits = Digits::new(10).unwrap();
    vec![hotp, totp, plain]
}

/// What a record reads back as: located at its package, slot dropped.
fn as_read(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            r.location = package(i + 1);
            r.slot = None;
            r
        })
        .collect()
}

fn round_trip(options: &WriteOptions, keys: &Keys) -> String {
    let records = sample_records();
    let written = pskc::write(&records, options).unwrap();
    assert_eq!(written.skipped, []);
    let read = pskc::read(&written.bytes, keys).unwrap();
    assert_eq!(read, as_read(&records));
    String::from_utf8(written.bytes).unwrap()
}

#[test]
fn round_trip_plain() {
    let text = round_trip(&WriteOptions::default(), &no_keys());
    assert!(text.contains("<pskc:PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</pskc:PlainValue>"));
    assert!(text.contains("<pskc:Suite>HMAC-SHA256</pskc:Suite>"));
    assert!(text.contains("Length=\"8\" Encoding=\"DECIMAL\""));
    assert!(text.contains("<pskc:Time>"));
    assert!(!text.contains("MACMethod"));
    assert!(!text.contains("EncryptedValue"));
    assert!(text.contains("<pskc:Key Id=\"HOTP-0001\""));
}

#[test]
fn round_trip_pre_shared_aes128_and_aes256() {
    for (hex, uri) in [
        (FIG6_KEY, "aes128-cbc"),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "aes256-cbc",
        ),
        (
            "000102030405060708090a0b0c0d0e0f1011121314151617",
            "aes192-cbc",
        ),
    ] {
        let keys = with_key(hex);
        let options = WriteOptions::new(Encryption::PreSharedKey {
            key: keys.key.clone().unwrap(),
            key_name: Some("Pre-shared-key".into()),
        });
        assert!(options.mac);
        let text = round_trip(&options, &keys);
        assert!(text.contains(uri), "{uri}");
        assert!(text.contains("<ds:KeyName>Pre-shared-key</ds:KeyName>"));
        assert!(text.contains("hmac-sha256"));
        assert_eq!(text.matches("<pskc:ValueMAC>").count(), 3);
        assert!(!text.contains("PlainValue>MTIz"));
        // Without the key: the clear error; with another key: an error.
        let error = pskc::read(text.as_bytes(), &no_keys()).unwrap_err();
        assert!(error.message.contains("'Pre-shared-key'"), "{error}");
        let mut other = keys.key.clone().unwrap();
        other[0] ^= 1;
        let wrong = Keys {
            password: None,
            key: Some(other),
        };
        assert!(pskc::read(text.as_bytes(), &wrong).is_err());
    }
}

#[test]
fn round_trip_without_mac() {
    let keys = with_key(FIG6_KEY);
    let options = WriteOptions {
        encryption: Encryption::pre_shared(keys.key.clone().unwrap().to_vec()),
        mac: false,
    };
    let text = round_trip(&options, &keys);
    assert!(!text.contains("MACMethod"));
    assert!(!text.contains("ValueMAC"));
    assert!(!text.contains("EncryptionKey"));
    let error = pskc::read(text.as_bytes(), &no_keys()).unwrap_err();
    assert!(error.message.contains("--key-file"), "{error}");
}

#[test]
fn round_trip_password() {
    let options = WriteOptions::new(Encryption::password("correct horse"));
    let text = round_trip(&options, &with_password("correct horse"));
    assert!(text.contains("<IterationCount>100000</IterationCount>"));
    assert!(text.contains("aes256-cbc"));
    assert!(pskc::read(text.as_bytes(), &with_password("wrong horse")).is_err());
    let error = pskc::read(text.as_bytes(), &no_keys()).unwrap_err();
    assert!(error.message.contains("--password-file"), "{error}");
}

#[test]
fn two_writes_differ() {
    // Fresh IVs, MAC keys and salts every time.
    let options = WriteOptions::new(Encryption::Password {
        password: Zeroizing::new("pw".into()),
        iterations: 1000,
    });
    let a = pskc::write(&sample_records(), &options).unwrap();
    let b = pskc::write(&sample_records(), &options).unwrap();
    assert_ne!(a.bytes, b.bytes);
}

#[test]
fn write_refuses_bad_options() {
    for encryption in [
        Encryption::pre_shared(vec![0; 15]),
        Encryption::password(""),
        Encryption::Password {
            password: Zeroizing::new("x".into()),
            iterations: 0,
        },
    ] {
        assert!(pskc::write(&sample_records(), &WriteOptions::new(encryption)).is_err());
    }
    // Key material never shows in Debug output.
    let debug = format!(
        "{:?}",
        WriteOptions::new(Encryption::Password {
            password: Zeroizing::new("hunter2".into()),
            iterations: 5,
        })
    );
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn uncarriable_records_are_skipped_with_reasons() {
    let mut records = sample_records();
    records[0].credential.kind = Kind::Hotp { counter: u64::MAX };
    records[1].credential.kind = Kind::Totp {
        step: TimeStep::new(30, u64::from(u32::MAX)).unwrap(),
    };
    records[2].credential.issuer = Some("bell\u{7}".into());
    let mut empty = Record::new(Credential::totp(Secret::from_bytes(Vec::new())));
    empty.serial = Some("E1".into());
    records.push(empty);
    let keep = sample_records().remove(0);
    records.push(keep.clone());
    let written = pskc::write(&records, &WriteOptions::default()).unwrap();
    let skipped: Vec<_> = written.skipped.iter().map(|s| s.index).collect();
    assert_eq!(skipped, [0, 1, 2, 3]);
    assert_eq!(written.skipped[3].reference, "E1");
    assert!(written.skipped[0].reason.contains("counter"));
    assert!(written.skipped[1].reason.contains("T0"));
    assert!(written.skipped[2].reason.contains("issuer"));
    let read = pskc::read(&written.bytes, &no_keys()).unwrap();
    assert_eq!(read, as_read(&[keep]));
}

#[test]
fn duplicate_serials_get_unique_ids() {
    let mut records = sample_records();
    records[1].serial = records[0].serial.clone();
    records[0].slot = Some(1);
    records[1].slot = Some(2);
    let written = pskc::write(&records, &WriteOptions::default()).unwrap();
    let text = String::from_utf8(written.bytes.clone()).unwrap();
    assert!(text.contains("Id=\"1\""), "{text}");
    assert!(text.contains("Id=\"2\""), "{text}");
    assert!(text.contains("Id=\"3\""), "{text}");
    let read = pskc::read(&written.bytes, &no_keys()).unwrap();
    assert_eq!(read, as_read(&records));
}

// --- Properties --------------------------------------------------------------

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[A-Za-z0-9 .:@_&<>'\"=,ÄéЖ€-]{1,24}")
        .prop_map(|s| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
}

fn record() -> impl Strategy<Value = Record> {
    let kind = prop_oneof![
        (0..=i64::MAX as u64).prop_map(|counter| Kind::Hotp { counter }),
        (
            1..=i32::MAX as u64,
            prop_oneof![Just(0u64), 0..=i32::MAX as u64]
        )
            .prop_map(|(period, t0)| Kind::Totp {
                step: TimeStep::new(period, t0).unwrap()
            }),
    ];
    (
        proptest::collection::vec(any::<u8>(), 1..80),
        kind,
        prop::sample::select(Algorithm::ALL.to_vec()),
        4u64..=10,
        (text(), text(), text(), text(), text(), text()),
    )
        .prop_map(|(secret, kind, algorithm, digits, texts)| {
            let (issuer, account, serial, manufacturer, model, user) = texts;
            let mut r = Record::new(Credential {
                secret: Secret::from_bytes(secret),
                kind,
                algorithm,
                digits: Digits::new(digits).unwrap(),
                issuer,
                account: account.unwrap_or_default(),
                label_issuer: None,
            });
            r.serial = serial;
            r.manufacturer = manufacturer;
            r.model = model;
            r.user = user;
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_records_round_trip(records in proptest::collection::vec(record(), 0..6), encrypt in 0..3u8) {
        let key = vec![0x5A; 16 + 8 * usize::from(encrypt)];
        let (options, keys) = match encrypt {
            0 => (WriteOptions::default(), no_keys()),
            1 => (WriteOptions::new(Encryption::pre_shared(key.clone())), Keys { password: None, key: Some(Zeroizing::new(key)) }),
            _ => (
                WriteOptions::new(Encryption::Password { password: Zeroizing::new("pw €".into()), iterations: 10 }),
                with_password("pw €"),
            ),
        };
        let written = pskc::write(&records, &options).unwrap();
        prop_assert_eq!(&written.skipped, &[]);
        let read = pskc::read(&written.bytes, &keys).unwrap();
        prop_assert_eq!(read, as_read(&records));
    }

    #[test]
    fn random_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = pskc::read(&bytes, &with_key(FIG6_KEY));
    }

    #[test]
    fn mangled_figures_do_not_panic(n in prop::sample::select(vec![2u32, 3, 4, 5, 6, 7, 10]), at in any::<prop::sample::Index>(), cut in any::<bool>(), byte in any::<u8>()) {
        let mut bytes = figure(n).into_bytes();
        let i = at.index(bytes.len());
        if cut { bytes.truncate(i) } else { bytes[i] = byte }
        let _ = pskc::read(&bytes, &with_key(FIG6_KEY));
        let _ = pskc::read(&bytes, &Keys { password: Some(Zeroizing::new("qwerty".into())), key: None });
    }
}
