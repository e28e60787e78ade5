//! An encrypted output is what it says: `format::write` honours a password
//! or key or refuses, `check_protection` refuses a plaintext request that
//! comes with one, and a pre-shared-key PSKC file has the layout of RFC 6030
//! figure 6 (an encrypted `MACKey`, a `ValueMAC` on every secret), checked
//! here with the RustCrypto primitives rather than with oathdesk's reader.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use oathdesk_formats::Keys;
use oathdesk_formats::format::{
    self, Format, Protection, ProtectionError, WriteOptions, check_protection,
};
use oathdesk_formats::record::Record;
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use zeroize::Zeroizing;

fn records() -> Vec<Record> {
    let mut hotp = Record::new(Credential {
        secret: Secret::from_bytes(b"12345678901234567890".to_vec()),
        kind: Kind::Hotp { counter: 7 },
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        issuer: None,
        account: "a@contoso.com".into(),
        label_issuer: None,
    });
    hotp.serial = Some("H1".into());
    let mut totp = Record::new(Credential {
        secret: Secret::from_bytes(vec![0x5A; 32]),
        kind: Kind::Totp {
            step: TimeStep::new(60, 0).unwrap(),
        },
        algorithm: Algorithm::Sha256,
        digits: Digits::EIGHT,
        issuer: None,
        account: "b@contoso.com".into(),
        label_issuer: None,
    });
    totp.serial = Some("T1".into());
    vec![hotp, totp]
}

fn with_password(password: &str) -> WriteOptions {
    WriteOptions {
        password: Some(Zeroizing::new(password.into())),
        ..WriteOptions::default()
    }
}

fn with_key(key: &[u8]) -> WriteOptions {
    WriteOptions {
        key: Some(Zeroizing::new(key.to_vec())),
        ..WriteOptions::default()
    }
}

#[test]
fn write_never_drops_a_password_or_key() {
    let cases: Vec<(Format, WriteOptions, &str)> = vec![
        // Before, these wrote the secrets in plain text.
        (Format::EntraCsv, with_password("pw"), "cannot be encrypted"),
        (Format::Otpauth, with_key(&[7; 16]), "cannot be encrypted"),
        (
            Format::Aegis,
            with_key(&[7; 32]),
            "only PSKC takes a pre-shared key",
        ),
        (
            Format::AndOtp,
            with_key(&[7; 32]),
            "only PSKC takes a pre-shared key",
        ),
        (
            Format::Pskc,
            WriteOptions {
                key: Some(Zeroizing::new(vec![7; 16])),
                ..with_password("pw")
            },
            "both a password and a pre-shared key",
        ),
        (Format::Pskc, with_key(&[7; 20]), "20 bytes long"),
        (Format::Pskc, with_password(""), "the password is empty"),
    ];
    for (format, options, message) in cases {
        let error = format::write(format, &records(), &options).unwrap_err();
        assert!(
            error.to_string().contains(message),
            "{format}: {error} (expected '{message}')"
        );
    }
    // The reason for a wrong length names the length and the right ones.
    let error = format::write(Format::Pskc, &records(), &with_key(&[1; 31])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the pre-shared key is 31 bytes long; an AES key is 16, 24 or 32 bytes (AES-128, -192, -256)"
    );
    // A key is never shown, even in Debug output of the refusal.
    assert!(!format!("{error:?}").contains("0101"));
}

#[test]
fn check_protection_refuses_encrypted_with_plaintext() {
    let asked = |password: bool, key_len: Option<usize>, plaintext: bool| Protection {
        password: password.then_some(false),
        key_len,
        plaintext,
    };
    use ProtectionError as E;
    let cases = [
        (
            Format::Pskc,
            asked(true, None, true),
            Err(E::EncryptedAndPlaintext(Format::Pskc)),
        ),
        (
            Format::Pskc,
            asked(false, Some(32), true),
            Err(E::EncryptedAndPlaintext(Format::Pskc)),
        ),
        (
            Format::Aegis,
            asked(true, None, true),
            Err(E::EncryptedAndPlaintext(Format::Aegis)),
        ),
        (
            Format::EntraCsv,
            asked(true, None, true),
            Err(E::CannotEncrypt(Format::EntraCsv)),
        ),
        (
            Format::EntraCsv,
            asked(false, None, false),
            Err(E::PlaintextNotAllowed(Format::EntraCsv)),
        ),
        (
            Format::Pskc,
            asked(false, None, false),
            Err(E::NoEncryption(Format::Pskc)),
        ),
        (
            Format::TwoFas,
            asked(false, Some(16), false),
            Err(E::KeyNeedsPskc(Format::TwoFas)),
        ),
        (
            Format::Pskc,
            asked(true, Some(16), false),
            Err(E::PasswordAndKey),
        ),
        (
            Format::Pskc,
            asked(false, Some(0), false),
            Err(E::KeyLength(0)),
        ),
        (
            Format::Pskc,
            asked(false, Some(33), false),
            Err(E::KeyLength(33)),
        ),
        (Format::Pskc, asked(false, Some(24), false), Ok(())),
        (Format::Pskc, asked(true, None, false), Ok(())),
        (Format::Pskc, asked(false, None, true), Ok(())),
        (Format::EntraCsv, asked(false, None, true), Ok(())),
    ];
    for (format, protection, expected) in cases {
        assert_eq!(
            check_protection(format, protection),
            expected,
            "{format} {protection:?}"
        );
    }
    let empty = Protection {
        password: Some(true),
        key_len: None,
        plaintext: false,
    };
    assert_eq!(
        check_protection(Format::Aegis, empty),
        Err(E::EmptyPassword)
    );
}

/// The text of every `<tag>…</tag>` (prefix included in `tag`).
fn all_between<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let end = after.find(&close).expect("closed");
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

fn cbc_decrypt(key: &[u8], data: &[u8]) -> Vec<u8> {
    let (iv, ciphertext) = data.split_at(16);
    let mut buffer = ciphertext.to_vec();
    let len = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .unwrap()
            .decrypt_padded_mut::<Pkcs7>(&mut buffer)
            .unwrap()
            .len(),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .unwrap()
            .decrypt_padded_mut::<Pkcs7>(&mut buffer)
            .unwrap()
            .len(),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .unwrap()
            .decrypt_padded_mut::<Pkcs7>(&mut buffer)
            .unwrap()
            .len(),
    };
    buffer.truncate(len);
    buffer
}

#[test]
fn pre_shared_key_output_has_the_layout_of_rfc6030_figure6() {
    for (len, bits) in [(16, 128), (24, 192), (32, 256)] {
        let key: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0xA5).collect();
        let written = format::write(Format::Pskc, &records(), &with_key(&key)).unwrap();
        let text = String::from_utf8(written.bytes.clone()).unwrap();
        let cbc_uri = format!("http://www.w3.org/2001/04/xmlenc#aes{bits}-cbc");

        // No derived key, no plain secret.
        assert!(!text.contains("DerivedKey"), "{text}");
        assert!(!text.contains("MTIzNDU2"), "{text}");
        // One MACMethod, with a MACKey encrypted with the pre-shared key.
        assert_eq!(text.matches("<pskc:MACMethod ").count(), 1, "{text}");
        let mac_method = all_between(&text, "pskc:MACKey");
        assert_eq!(mac_method.len(), 1, "{text}");
        assert!(mac_method[0].contains(&format!("Algorithm=\"{cbc_uri}\"")));
        let mac_key_value = all_between(mac_method[0], "xenc:CipherValue")[0];
        let mac_key = cbc_decrypt(&key, &BASE64.decode(mac_key_value.as_bytes()).unwrap());
        assert_eq!(mac_key.len(), 32, "an HMAC-SHA-256 key");

        // Each Secret: an EncryptedValue and its ValueMAC over IV ‖ ciphertext.
        let secrets = all_between(&text, "pskc:Secret");
        assert_eq!(secrets.len(), 2);
        for (secret, record) in secrets.iter().zip(records()) {
            assert!(!secret.contains("PlainValue"), "{secret}");
            assert!(secret.contains(&format!("Algorithm=\"{cbc_uri}\"")));
            let data = BASE64
                .decode(all_between(secret, "xenc:CipherValue")[0].as_bytes())
                .unwrap();
            let value_mac = all_between(secret, "pskc:ValueMAC");
            assert_eq!(value_mac.len(), 1, "{secret}");
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&mac_key).unwrap();
            mac.update(&data);
            mac.verify_slice(&BASE64.decode(value_mac[0].as_bytes()).unwrap())
                .expect("the ValueMAC is HMAC-SHA-256(MACKey, IV ‖ ciphertext)");
            assert_eq!(
                cbc_decrypt(&key, &data),
                record.credential.secret.as_bytes()
            );
        }

        // And oathdesk reads it back with the key, and only with it.
        let keys = Keys {
            password: None,
            key: Some(Zeroizing::new(key.clone())),
        };
        let read = format::read(Format::Pskc, &written.bytes, &keys).unwrap();
        assert_eq!(read.len(), 2);
        let mut wrong = key.clone();
        wrong[0] ^= 1;
        let wrong = Keys {
            password: None,
            key: Some(Zeroizing::new(wrong)),
        };
        assert!(format::read(Format::Pskc, &written.bytes, &wrong).is_err());
    }
}
