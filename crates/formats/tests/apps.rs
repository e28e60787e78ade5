//! Tests of the authenticator-app backup formats: `aegis`, `twofas`,
//! `andotp`. Conformance files come from the Aegis importer tests (see
//! `tests/data/README-apps.md`).

use oathdesk_formats::{FormatError, Keys, Location, Record, aegis, andotp, twofas};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use serde_json::{Value, json};
use zeroize::Zeroizing;

const AEGIS_ENCRYPTED: &[u8] = include_bytes!("data/aegis_encrypted.json");
const TWOFAS_V2_ENCRYPTED: &[u8] = include_bytes!("data/2fas_authenticator_encrypted.2fas");
const TWOFAS_V4_ENCRYPTED: &[u8] = include_bytes!("data/2fas_authenticator_encrypted_v4.2fas");
const ANDOTP_PLAIN: &[u8] = include_bytes!("data/andotp_plain.json");
const ANDOTP_PYTHON: &[u8] = include_bytes!("data/andotp_encrypted_python.bin");

const WRONG_PASSWORD: &str =
    "wrong password (or the file is damaged): the AES-GCM tag does not verify";
/// A cheap Aegis scrypt cost for tests (N = 2^10).
const TEST_LOG_N: u8 = 10;
/// A cheap andOTP PBKDF2 cost for tests.
const TEST_ITERATIONS: u32 = 1_000;

fn keys(password: &str) -> Keys {
    Keys {
        password: Some(Zeroizing::new(password.to_owned())),
        key: None,
    }
}

fn no_keys() -> Keys {
    Keys::default()
}

/// The Aegis test vectors (DatabaseImporterTest.java), without the Steam one:
/// (issuer, account, Base32 secret, algorithm, digits, kind).
fn vectors() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Algorithm,
    u8,
    Kind,
)> {
    let totp = |period| Kind::Totp {
        step: TimeStep::new(period, 0).unwrap(),
    };
    let hotp = |counter| Kind::Hotp { counter };
    vec![
        (
            "Deno",
            "Mason",
            "4SJHB4GSD43FZBAI7C2HLRJGPQ",
            Algorithm::Sha1,
            6,
            totp(30),
        ),
        (
            "SPDX",
            "James",
            "5OM4WOOGPLQEF6UGN3CPEOOLWU",
            Algorithm::Sha256,
            7,
            totp(20),
        ),
        (
            "Airbnb",
            "Elijah",
            "7ELGJSGXNCCTV3O6LKJWYFV2RA",
            Algorithm::Sha512,
            8,
            totp(50),
        ),
        (
            "Issuu",
            "James",
            "YOOMIXWS5GN6RTBPUFFWKTW5M4",
            Algorithm::Sha1,
            6,
            hotp(1),
        ),
        (
            "Air Canada",
            "Benjamin",
            "KUVJJOM753IHTNDSZVCNKL7GII",
            Algorithm::Sha256,
            7,
            hotp(50),
        ),
        (
            "WWE",
            "Mason",
            "5VAML3X35THCEBVRLV24CGBKOY",
            Algorithm::Sha512,
            8,
            hotp(10300),
        ),
    ]
}

fn vector(issuer: &str) -> Credential {
    let (issuer, account, secret, algorithm, digits, kind) =
        vectors().into_iter().find(|v| v.0 == issuer).unwrap();
    Credential {
        secret: Secret::from_base32(secret).unwrap(),
        kind,
        algorithm,
        digits: Digits::new(digits.into()).unwrap(),
        issuer: Some(issuer.to_owned()),
        account: account.to_owned(),
        label_issuer: None,
    }
}

fn credentials(records: &[Record]) -> Vec<Credential> {
    records.iter().map(|r| r.credential.clone()).collect()
}

/// Records covering what the formats must carry: HOTP with a counter, TOTP
/// with 60 s, SHA-256, 8 digits, non-ASCII issuer and account, no issuer.
fn sample() -> Vec<Record> {
    let hotp = Credential {
        secret: Secret::from_bytes(b"12345678901234567890".to_vec()),
        kind: Kind::Hotp { counter: 42 },
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        issuer: Some("Ünïcødé Bank".into()),
        account: "jörg@example.com".into(),
        label_issuer: None,
    };
    let totp = Credential {
        secret: Secret::from_bytes((0u8..32).collect::<Vec<_>>()),
        kind: Kind::Totp {
            step: TimeStep::new(60, 0).unwrap(),
        },
        algorithm: Algorithm::Sha256,
        digits: Digits::EIGHT,
        issuer: Some("東京 Services - Ops".into()),
        account: "用户 - 1".into(),
        label_issuer: None,
    };
    let bare = Credential {
        secret: Secret::from_bytes(vec![0xA5; 20]),
        kind: Kind::Totp {
            step: TimeStep::DEFAULT,
        },
        algorithm: Algorithm::Sha512,
        digits: Digits::new(7).unwrap(),
        issuer: None,
        account: "no-issuer".into(),
        label_issuer: None,
    };
    vec![Record::new(hotp), Record::new(totp), Record::new(bare)]
}

fn expect_err<T: std::fmt::Debug>(result: Result<T, FormatError>) -> FormatError {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e,
    }
}

fn assert_missing_password(error: &FormatError) {
    assert!(error.message.contains("--password-file FILE"), "{error}");
    assert!(error.message.contains("OATHDESK_FILE_PASSWORD"), "{error}");
}

// ---------------------------------------------------------------- Aegis ---

#[test]
fn aegis_test_vault_unlocks_and_decrypts() {
    let master = aegis::master_key(AEGIS_ENCRYPTED, &keys("test")).unwrap();
    assert_eq!(
        data_encoding::HEXLOWER.encode(master.as_slice()),
        "5bf3eea657754b176d076ea07078e22a8df3e2ca5abc886e2e25f7cef24d11a6"
    );

    let db: Value =
        serde_json::from_slice(&aegis::decrypt(AEGIS_ENCRYPTED, &keys("test")).unwrap()).unwrap();
    let entries = db["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 7);
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["totp", "totp", "totp", "hotp", "hotp", "hotp", "steam"]
    );
    assert_eq!(entries[1]["issuer"], "SPDX");
    assert_eq!(entries[4]["name"], "Benjamin");
    assert_eq!(entries[6]["issuer"], "Boeing");

    // The whole read fails on the Steam entry, naming it.
    let error = expect_err(aegis::read(AEGIS_ENCRYPTED, &keys("test")));
    assert_eq!(error.location, Location::element("entries[6]"));
    assert_eq!(
        error.to_string(),
        "entries[6]: a Steam entry; oathdesk handles TOTP and HOTP only"
    );

    // Without it, every entry reads as Aegis's importer test expects.
    let mut plain = db.clone();
    plain["entries"].as_array_mut().unwrap().pop();
    let file = json!({"version": 1, "header": {"slots": null, "params": null}, "db": plain});
    let records = aegis::read(&serde_json::to_vec(&file).unwrap(), &no_keys()).unwrap();
    assert_eq!(records.len(), 6);
    for (record, (issuer, ..)) in records.iter().zip(vectors()) {
        assert_eq!(record.credential, vector(issuer));
    }
    assert_eq!(records[3].location, Location::element("entries[3]"));
}

#[test]
fn aegis_round_trip_plain_and_encrypted() {
    let input = sample();
    let plain = aegis::write(&input, None).unwrap();
    assert!(plain.skipped.is_empty());
    let file: Value = serde_json::from_slice(&plain.bytes).unwrap();
    assert_eq!(file["version"], 1);
    assert!(file["header"]["slots"].is_null() && file["header"]["params"].is_null());
    assert_eq!(file["db"]["version"], 1);
    let uuid = file["db"]["entries"][0]["uuid"].as_str().unwrap();
    assert_uuid_v4(uuid);
    assert_eq!(file["db"]["entries"][0]["type"], "hotp");
    assert_eq!(file["db"]["entries"][0]["info"]["counter"], 42);
    assert_eq!(file["db"]["entries"][1]["info"]["period"], 60);
    assert_eq!(file["db"]["entries"][1]["info"]["algo"], "SHA256");
    assert_eq!(file["db"]["entries"][2]["issuer"], "");
    let read = aegis::read(&plain.bytes, &no_keys()).unwrap();
    assert_eq!(credentials(&read), credentials(&input));

    let encrypted = aegis::write_with_log_n(&input, Some("pässwörd"), TEST_LOG_N).unwrap();
    let file: Value = serde_json::from_slice(&encrypted.bytes).unwrap();
    assert!(file["db"].is_string());
    assert_eq!(file["header"]["slots"][0]["n"], 1 << TEST_LOG_N);
    let read = aegis::read(&encrypted.bytes, &keys("pässwörd")).unwrap();
    assert_eq!(credentials(&read), credentials(&input));
    assert_eq!(read[2].location, Location::element("entries[2]"));
}

#[test]
fn aegis_public_writer_uses_aegis_scrypt_cost() {
    let input = &sample()[..1];
    let written = aegis::write(input, Some("test")).unwrap();
    let file: Value = serde_json::from_slice(&written.bytes).unwrap();
    let slot = &file["header"]["slots"][0];
    assert_eq!(slot["type"], 1);
    assert_eq!(
        (slot["n"].as_u64(), slot["r"].as_u64(), slot["p"].as_u64()),
        (Some(32768), Some(8), Some(1))
    );
    assert_eq!(slot["salt"].as_str().unwrap().len(), 64);
    assert_eq!(slot["key"].as_str().unwrap().len(), 64);
    assert_eq!(slot["key_params"]["nonce"].as_str().unwrap().len(), 24);
    assert_eq!(file["header"]["params"]["tag"].as_str().unwrap().len(), 32);
    assert_uuid_v4(slot["uuid"].as_str().unwrap());
    let read = aegis::read(&written.bytes, &keys("test")).unwrap();
    assert_eq!(credentials(&read), credentials(input));
}

#[test]
fn aegis_password_errors_and_tampering() {
    let input = sample();
    let written = aegis::write_with_log_n(&input, Some("right"), TEST_LOG_N).unwrap();

    assert_eq!(
        expect_err(aegis::read(&written.bytes, &keys("wrong"))).message,
        WRONG_PASSWORD
    );
    assert_missing_password(&expect_err(aegis::read(&written.bytes, &no_keys())));

    // A flipped bit in the db ciphertext: the slot opens, db does not.
    let mut file: Value = serde_json::from_slice(&written.bytes).unwrap();
    let db = file["db"].as_str().unwrap();
    let mut raw = data_encoding::BASE64.decode(db.as_bytes()).unwrap();
    raw[5] ^= 1;
    file["db"] = data_encoding::BASE64.encode(&raw).into();
    let error = expect_err(aegis::read(
        &serde_json::to_vec(&file).unwrap(),
        &keys("right"),
    ));
    assert!(error.message.contains("damaged"), "{error}");
    assert!(error.message.contains("AES-GCM tag"), "{error}");

    // A changed wrapped key: no slot opens.
    let mut file: Value = serde_json::from_slice(&written.bytes).unwrap();
    let key = file["header"]["slots"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if key.starts_with('0') { "1" } else { "0" };
    file["header"]["slots"][0]["key"] = format!("{flipped}{}", &key[1..]).into();
    assert_eq!(
        expect_err(aegis::read(
            &serde_json::to_vec(&file).unwrap(),
            &keys("right")
        ))
        .message,
        WRONG_PASSWORD
    );

    // Only a biometric slot: says so.
    let mut file: Value = serde_json::from_slice(&written.bytes).unwrap();
    file["header"]["slots"][0]["type"] = 2.into();
    let error = expect_err(aegis::read(
        &serde_json::to_vec(&file).unwrap(),
        &keys("right"),
    ));
    assert!(error.message.contains("no password slot"), "{error}");
    assert!(error.message.contains("biometric"), "{error}");

    // Empty password refused on writing.
    assert!(aegis::write(&input, Some("")).is_err());
}

#[test]
fn aegis_refuses_hostile_scrypt_parameters() {
    let written = aegis::write_with_log_n(&sample(), Some("x"), TEST_LOG_N).unwrap();
    let with = |n: u64, r: u64, p: u64| {
        let mut file: Value = serde_json::from_slice(&written.bytes).unwrap();
        let slot = &mut file["header"]["slots"][0];
        slot["n"] = n.into();
        slot["r"] = r.into();
        slot["p"] = p.into();
        aegis::read(&serde_json::to_vec(&file).unwrap(), &keys("x"))
    };
    let error = expect_err(with(1 << 21, 8, 1));
    assert!(error.message.contains("refused"), "{error}");
    assert_eq!(error.field.as_deref(), Some("header.slots[0].n"));
    assert!(expect_err(with(1 << 20, 8, 1)).message.contains("refused"));
    assert!(
        expect_err(with(1 << 10, 1 << 30, 1))
            .message
            .contains("refused")
    );
    assert!(
        expect_err(with(1 << 15, 8, 1 << 20))
            .message
            .contains("refused")
    );
    assert!(
        expect_err(with(1000, 8, 1))
            .message
            .contains("power of two")
    );
    assert!(
        expect_err(with(1 << 10, 0, 1))
            .message
            .contains("at least 1")
    );
    assert!(expect_err(with(1 << 15, 8, 17)).message.contains("refused"));
    // More password slots than oathdesk tries (each costs one scrypt).
    let mut file: Value = serde_json::from_slice(&written.bytes).unwrap();
    let slot = file["header"]["slots"][0].clone();
    let mut wrong = slot.clone();
    wrong["salt"] = "00".repeat(32).into();
    file["header"]["slots"] = json!([wrong, wrong, wrong, wrong, slot]);
    let error = expect_err(aegis::read(&serde_json::to_vec(&file).unwrap(), &keys("x")));
    assert!(
        error.message.contains("more than 4 password slots"),
        "{error}"
    );
    // The cost actually written still works.
    assert_eq!(with(1 << TEST_LOG_N, 8, 1).unwrap().len(), 3);
}

#[test]
fn aegis_reads_tolerantly_and_reports_fields() {
    let file = json!({
        "version": 1,
        "header": {"slots": null, "params": null},
        "db": {
            "version": 3,
            "entries": [{
                "type": "totp", "uuid": "x", "name": "alice", "issuer": "Example",
                "note": "n", "favorite": true, "icon": "AAAA", "icon_mime": "image/png",
                "groups": ["d8b5bd5c-0b1e-4c5d-8b1e-2f2d1f3c9a10"], "archived": false,
                "info": {"secret": "JBSWY3DPEHPK3PXP", "algo": "SHA1", "digits": 6, "period": 30}
            }],
            "groups": [{"uuid": "d8b5bd5c-0b1e-4c5d-8b1e-2f2d1f3c9a10", "name": "Work"}],
            "icons_optimized": true
        }
    });
    let records = aegis::read(&serde_json::to_vec(&file).unwrap(), &no_keys()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].credential.account, "alice");
    assert_eq!(records[0].credential.issuer.as_deref(), Some("Example"));

    // A bad secret: the entry and field are named, the secret is not quoted.
    let mut bad = file.clone();
    bad["db"]["entries"][0]["info"]["secret"] = "JBSWY3DP1HPK3PXP".into();
    let error = expect_err(aegis::read(&serde_json::to_vec(&bad).unwrap(), &no_keys()));
    assert_eq!(error.location, Location::element("entries[0]"));
    assert_eq!(error.field.as_deref(), Some("info.secret"));
    assert!(!error.to_string().contains("JBSWY3DP"), "{error}");

    let mut bad = file.clone();
    bad["db"]["entries"][0]["info"]["digits"] = 11.into();
    let error = expect_err(aegis::read(&serde_json::to_vec(&bad).unwrap(), &no_keys()));
    assert_eq!(error.field.as_deref(), Some("info.digits"));

    let mut bad = file.clone();
    bad["db"]["entries"][0]["type"] = "yandex".into();
    let error = expect_err(aegis::read(&serde_json::to_vec(&bad).unwrap(), &no_keys()));
    assert!(error.message.contains("Yandex"), "{error}");

    let mut bad = file.clone();
    bad["version"] = 2.into();
    assert!(
        expect_err(aegis::read(&serde_json::to_vec(&bad).unwrap(), &no_keys()))
            .message
            .contains("newer")
    );
}

#[test]
fn aegis_skips_what_it_cannot_carry() {
    let mut input = sample();
    input[1].credential.kind = Kind::Totp {
        step: TimeStep::new(30, 100).unwrap(),
    };
    input[1].serial = Some("TOK-1".into());
    let written = aegis::write(&input, None).unwrap();
    assert_eq!(written.skipped.len(), 1);
    assert_eq!(written.skipped[0].index, 1);
    assert_eq!(written.skipped[0].reference, "TOK-1");
    assert!(
        written.skipped[0].reason.contains("T0"),
        "{:?}",
        written.skipped
    );
    assert_eq!(aegis::read(&written.bytes, &no_keys()).unwrap().len(), 2);
}

fn assert_uuid_v4(uuid: &str) {
    let groups: Vec<&str> = uuid.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{uuid}"
    );
    assert!(
        uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{uuid}"
    );
    assert!(groups[2].starts_with('4'), "{uuid}");
    assert!(
        matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
        "{uuid}"
    );
}

// ----------------------------------------------------------------- 2FAS ---

#[test]
fn twofas_schema4_test_backup_decrypts() {
    let services: Value =
        serde_json::from_slice(&twofas::decrypt(TWOFAS_V4_ENCRYPTED, &keys("test")).unwrap())
            .unwrap();
    let services = services.as_array().unwrap().clone();
    assert_eq!(services.len(), 5);
    assert_eq!(services[4]["otp"]["tokenType"], "STEAM");

    let error = expect_err(twofas::read(TWOFAS_V4_ENCRYPTED, &keys("test")));
    assert_eq!(
        error.to_string(),
        "services[4]: a Steam entry; oathdesk handles TOTP and HOTP only"
    );

    let plain = json!({"schemaVersion": 4, "services": &services[..4]});
    let records = twofas::read(&serde_json::to_vec(&plain).unwrap(), &no_keys()).unwrap();
    let expected: Vec<Credential> = ["Deno", "Issuu", "Air Canada", "WWE"]
        .into_iter()
        .map(vector)
        .collect();
    assert_eq!(credentials(&records), expected);
    assert_eq!(records[2].location, Location::element("services[2]"));
}

#[test]
fn twofas_schema2_test_backup_reads() {
    // Schema 2 has no token types: 2FAS 3.8 stored everything as TOTP.
    let records = twofas::read(TWOFAS_V2_ENCRYPTED, &keys("test")).unwrap();
    let names: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.credential.issuer.as_deref().unwrap(),
                r.credential.account.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("Deno", "Mason"),
            ("Airbnb", "Elijah"),
            ("Issuu", "James"),
            ("WWE", "Mason")
        ]
    );
    assert_eq!(records[0].credential, vector("Deno"));
    assert_eq!(records[1].credential, vector("Airbnb"));
    let wwe = &records[3].credential;
    assert_eq!(
        wwe.kind,
        Kind::Totp {
            step: TimeStep::DEFAULT
        }
    );
    assert_eq!(wwe.algorithm, Algorithm::Sha512);
    assert_eq!(wwe.digits, Digits::EIGHT);
    assert_eq!(wwe.secret, vector("WWE").secret);
}

#[test]
fn twofas_round_trip_plain_and_encrypted() {
    let input = sample();
    let plain = twofas::write(&input, None).unwrap();
    assert!(plain.skipped.is_empty());
    let file: Value = serde_json::from_slice(&plain.bytes).unwrap();
    assert_eq!(file["schemaVersion"], 4);
    assert!(file.get("servicesEncrypted").is_none());
    assert_eq!(file["services"][0]["otp"]["tokenType"], "HOTP");
    assert_eq!(file["services"][0]["otp"]["counter"], 42);
    assert_eq!(file["services"][1]["otp"]["period"], 60);
    assert_eq!(file["services"][1]["order"]["position"], 1);
    assert_eq!(file["services"][2]["name"], "no-issuer");
    let read = twofas::read(&plain.bytes, &no_keys()).unwrap();
    assert_eq!(credentials(&read), credentials(&input));

    let encrypted = twofas::write(&input, Some("pässwörd")).unwrap();
    let file: Value = serde_json::from_slice(&encrypted.bytes).unwrap();
    assert_eq!(file["services"], json!([]));
    assert_eq!(file["schemaVersion"], 4);
    let parts: Vec<&str> = file["servicesEncrypted"]
        .as_str()
        .unwrap()
        .split(':')
        .collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        data_encoding::BASE64
            .decode(parts[2].as_bytes())
            .unwrap()
            .len(),
        12
    );
    assert_eq!(file["reference"].as_str().unwrap().split(':').count(), 3);
    let read = twofas::read(&encrypted.bytes, &keys("pässwörd")).unwrap();
    assert_eq!(credentials(&read), credentials(&input));

    // The reference decrypts, with the same key, to what 2FAS's files hold.
    let theirs: Value = serde_json::from_slice(TWOFAS_V4_ENCRYPTED).unwrap();
    let ours = file["reference"].as_str().unwrap();
    let reference_of = |text: &str, password: &str| {
        let parts: Vec<Vec<u8>> = text
            .split(':')
            .map(|p| data_encoding::BASE64.decode(p.as_bytes()).unwrap())
            .collect();
        // A services file whose "services" are the reference text as a JSON string.
        let fake = json!({"schemaVersion": 4, "services": [], "servicesEncrypted": text});
        let error = twofas::read(&serde_json::to_vec(&fake).unwrap(), &keys(password));
        (parts[1].clone(), error.map(|_| ()))
    };
    let (their_salt, their_result) = reference_of(theirs["reference"].as_str().unwrap(), "test");
    let (our_salt, our_result) = reference_of(ours, "pässwörd");
    assert_eq!(their_salt.len(), our_salt.len());
    // Both decrypt (the tag verifies) to text that is not a services array.
    for result in [their_result, our_result] {
        let error = result.unwrap_err();
        assert!(error.message.contains("not valid JSON"), "{error}");
    }
}

#[test]
fn twofas_password_errors_and_tampering() {
    let written = twofas::write(&sample(), Some("right")).unwrap();
    assert_eq!(
        expect_err(twofas::read(&written.bytes, &keys("wrong"))).message,
        WRONG_PASSWORD
    );
    assert_missing_password(&expect_err(twofas::read(&written.bytes, &no_keys())));
    assert_missing_password(&expect_err(twofas::read(TWOFAS_V4_ENCRYPTED, &no_keys())));

    let mut file: Value = serde_json::from_slice(&written.bytes).unwrap();
    let text = file["servicesEncrypted"].as_str().unwrap().to_owned();
    let mut parts: Vec<String> = text.split(':').map(str::to_owned).collect();
    let mut raw = data_encoding::BASE64.decode(parts[0].as_bytes()).unwrap();
    raw[3] ^= 0x80;
    parts[0] = data_encoding::BASE64.encode(&raw);
    file["servicesEncrypted"] = parts.join(":").into();
    assert_eq!(
        expect_err(twofas::read(
            &serde_json::to_vec(&file).unwrap(),
            &keys("right")
        ))
        .message,
        WRONG_PASSWORD
    );

    file["servicesEncrypted"] = "AAAA:BBBB".into();
    let error = expect_err(twofas::read(
        &serde_json::to_vec(&file).unwrap(),
        &keys("right"),
    ));
    assert_eq!(error.field.as_deref(), Some("servicesEncrypted"));
}

// --------------------------------------------------------------- andOTP ---

#[test]
fn andotp_test_backups_read() {
    let error = expect_err(andotp::read(ANDOTP_PLAIN, &no_keys()));
    assert_eq!(
        error.to_string(),
        "entries[6]: a Steam entry; oathdesk handles TOTP and HOTP only"
    );

    let mut entries: Value = serde_json::from_slice(ANDOTP_PLAIN).unwrap();
    entries.as_array_mut().unwrap().pop();
    let plain = andotp::read(&serde_json::to_vec(&entries).unwrap(), &no_keys()).unwrap();
    let expected: Vec<Credential> = vectors().into_iter().map(|v| vector(v.0)).collect();
    assert_eq!(credentials(&plain), expected);

    // Made by an independent implementation (Python cryptography).
    let encrypted = andotp::read(ANDOTP_PYTHON, &keys("test")).unwrap();
    assert_eq!(encrypted, plain);
    assert_eq!(
        expect_err(andotp::read(ANDOTP_PYTHON, &keys("tesT"))).message,
        WRONG_PASSWORD
    );
}

#[test]
fn andotp_round_trip_plain_and_encrypted() {
    let input = sample();
    let plain = andotp::write(&input, None).unwrap();
    let entries: Value = serde_json::from_slice(&plain.bytes).unwrap();
    assert_eq!(entries[0]["type"], "HOTP");
    assert_eq!(entries[0]["counter"], 42);
    assert_eq!(entries[1]["period"], 60);
    assert_eq!(entries[1]["algorithm"], "SHA256");
    // andOTP pads its Base32 (32 bytes: 52 characters and 4 "=").
    assert!(entries[1]["secret"].as_str().unwrap().ends_with("===="));
    let read = andotp::read(&plain.bytes, &no_keys()).unwrap();
    assert_eq!(credentials(&read), credentials(&input));

    let encrypted =
        andotp::write_with_iterations(&input, Some("pässwörd"), TEST_ITERATIONS).unwrap();
    assert_eq!(encrypted.bytes[..4], TEST_ITERATIONS.to_be_bytes());
    let read = andotp::read(&encrypted.bytes, &keys("pässwörd")).unwrap();
    assert_eq!(credentials(&read), credentials(&input));
}

#[test]
fn andotp_public_writer_uses_andotp_iterations() {
    let input = &sample()[..1];
    let written = andotp::write(input, Some("test")).unwrap();
    let iterations = u32::from_be_bytes(written.bytes[..4].try_into().unwrap());
    assert!((140_000..=160_000).contains(&iterations), "{iterations}");
    let read = andotp::read(&written.bytes, &keys("test")).unwrap();
    assert_eq!(credentials(&read), credentials(input));
}

#[test]
fn andotp_password_errors_and_tampering() {
    let written = andotp::write_with_iterations(&sample(), Some("right"), TEST_ITERATIONS).unwrap();
    assert_eq!(
        expect_err(andotp::read(&written.bytes, &keys("wrong"))).message,
        WRONG_PASSWORD
    );
    assert_missing_password(&expect_err(andotp::read(&written.bytes, &no_keys())));

    let mut tampered = written.bytes.clone();
    tampered[40] ^= 1;
    assert_eq!(
        expect_err(andotp::read(&tampered, &keys("right"))).message,
        WRONG_PASSWORD
    );

    // The fuzzer's slow unit: 5,995,298 iterations (ten seconds) is refused.
    for iterations in [5_995_298u32, 1_000_001, 0] {
        let mut hostile = written.bytes.clone();
        hostile[..4].copy_from_slice(&iterations.to_be_bytes());
        let error = expect_err(andotp::read(&hostile, &keys("right")));
        assert!(error.message.contains("iteration count"), "{error}");
    }
}

#[test]
fn andotp_label_without_issuer_is_split() {
    let entries = json!([{
        "secret": "JBSWY3DPEHPK3PXP", "label": "Example - alice", "digits": 6,
        "type": "totp", "algorithm": "SHA1", "period": 30
    }]);
    let records = andotp::read(&serde_json::to_vec(&entries).unwrap(), &no_keys()).unwrap();
    assert_eq!(records[0].credential.issuer.as_deref(), Some("Example"));
    assert_eq!(records[0].credential.account, "alice");
}

// ----------------------------------------------------------- all three ---

#[test]
fn looks_like_recognises_each_format_only() {
    let input = sample();
    let outputs = [
        ("aegis", aegis::write(&input, None).unwrap().bytes),
        (
            "aegis",
            aegis::write_with_log_n(&input, Some("p"), TEST_LOG_N)
                .unwrap()
                .bytes,
        ),
        ("aegis", AEGIS_ENCRYPTED.to_vec()),
        ("twofas", twofas::write(&input, None).unwrap().bytes),
        ("twofas", twofas::write(&input, Some("p")).unwrap().bytes),
        ("twofas", TWOFAS_V2_ENCRYPTED.to_vec()),
        ("andotp", andotp::write(&input, None).unwrap().bytes),
        (
            "andotp",
            andotp::write_with_iterations(&input, Some("p"), TEST_ITERATIONS)
                .unwrap()
                .bytes,
        ),
        ("andotp", ANDOTP_PLAIN.to_vec()),
        ("andotp", ANDOTP_PYTHON.to_vec()),
    ];
    for (format, bytes) in &outputs {
        let found = [
            ("aegis", aegis::looks_like(bytes)),
            ("twofas", twofas::looks_like(bytes)),
            ("andotp", andotp::looks_like(bytes)),
        ];
        for (name, result) in found {
            assert_eq!(result, name == *format, "{name} on a {format} file");
        }
    }
    for other in [
        &b""[..],
        b"{}",
        b"[1,2]",
        b"username,secret\nalice,JBSWY3DPEHPK3PXP\n",
    ] {
        assert!(!aegis::looks_like(other));
        assert!(!twofas::looks_like(other));
        assert!(!andotp::looks_like(other));
    }
}

#[test]
fn readers_refuse_other_formats_and_garbage_without_panicking() {
    let input = sample();
    let files = [
        aegis::write(&input, None).unwrap().bytes,
        twofas::write(&input, None).unwrap().bytes,
        andotp::write(&input, None).unwrap().bytes,
    ];
    assert!(aegis::read(&files[1], &no_keys()).is_err());
    assert!(aegis::read(&files[2], &no_keys()).is_err());
    assert!(twofas::read(&files[0], &no_keys()).is_err());
    assert!(twofas::read(&files[2], &no_keys()).is_err());
    assert!(andotp::read(&files[0], &no_keys()).is_err());
    assert!(andotp::read(&files[1], &no_keys()).is_err());

    // Random bytes, and valid files cut short or with bytes changed.
    let encrypted = [
        aegis::write_with_log_n(&input, Some("x"), 4).unwrap().bytes,
        twofas::write(&input, Some("x")).unwrap().bytes,
        andotp::write_with_iterations(&input, Some("x"), 10)
            .unwrap()
            .bytes,
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let password = keys("x");
    for round in 0..300 {
        let len = (next() % 300) as usize;
        let mut random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 3 == 0 && !random.is_empty() {
            random[0] = 0; // a plausible andOTP iteration count
            if random.len() > 3 {
                random[1] = 0;
                random[2] = 0;
            }
        }
        assert!(aegis::read(&random, &password).is_err());
        assert!(twofas::read(&random, &password).is_err());
        if cheap_for_andotp(&random) {
            assert!(andotp::read(&random, &password).is_err());
        }

        let source = &[&files[..], &encrypted[..]].concat()[(next() % 6) as usize];
        let mut mutated = source.clone();
        match round % 3 {
            0 => mutated.truncate((next() as usize) % source.len()),
            1 => {
                let at = (next() as usize) % source.len();
                mutated[at] ^= 1 << (next() % 8);
            }
            _ => {
                let at = (next() as usize) % source.len();
                mutated[at] = next() as u8;
            }
        }
        // Any outcome but a panic; a flipped byte in a string may still read.
        let _ = aegis::read(&mutated, &password);
        let _ = twofas::read(&mutated, &password);
        if cheap_for_andotp(&mutated) {
            let _ = andotp::read(&mutated, &password);
        }
        let _ = (
            aegis::looks_like(&mutated),
            twofas::looks_like(&mutated),
            andotp::looks_like(&mutated),
        );
    }
}

/// False when the first four bytes ask for a PBKDF2 cost too slow for a
/// debug-build test loop (the bound itself is tested above).
fn cheap_for_andotp(bytes: &[u8]) -> bool {
    match bytes.get(..4) {
        Some(head) => {
            let iterations = u32::from_be_bytes(head.try_into().unwrap());
            !(10_000..=1_000_000).contains(&iterations)
        }
        None => true,
    }
}
