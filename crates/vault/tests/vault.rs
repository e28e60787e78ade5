//! The vault through its public API, on real SQLite files.

use std::path::{Path, PathBuf};

use oathdesk_otp::{Credential, Kind, Secret, TimeStep, Totp, Verifier, Window};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::model::{DeviceKind, State, TokenRef};
use oathdesk_vault::store::{CredentialFilter, Store, StoreTx};
use oathdesk_vault::{Error, HelpdeskRequest, NewOperator, NewToken, Session, Unlock, Vault};

/// Cheap Argon2id for tests; the default costs half a second per unlock.
const TEST_KDF: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};
const NOW: u64 = 1_750_000_000;
const SEED: &[u8] = b"12345678901234567890";

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    Vault::create(&path, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    Fixture { _dir: dir, path }
}

fn session(path: &Path) -> Session {
    Vault::open(path)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"alice pass"))
        .unwrap()
}

fn token(serial: &str, slot: Option<u32>, seed: &[u8], user: Option<&str>) -> NewToken {
    NewToken {
        serial: Some(serial.into()),
        slot,
        device_kind: if slot.is_some() {
            DeviceKind::MultiProfile
        } else {
            DeviceKind::SingleProfile
        },
        manufacturer: Some("Token2".into()),
        model: Some(
            if slot.is_some() {
                "Molto-2"
            } else {
                "miniOTP-2"
            }
            .into(),
        ),
        device_slots: if slot.is_some() { 100 } else { 1 },
        credential: Credential::totp(Secret::from_bytes(seed.to_vec())),
        label: None,
        user: user.map(str::to_owned),
        state: State::Burned,
    }
}

fn serial(s: &str) -> TokenRef {
    s.parse().unwrap()
}

fn code_at(seed: &[u8], time: u64) -> String {
    Totp::new(
        &Secret::from_bytes(seed.to_vec()),
        Default::default(),
        Default::default(),
        TimeStep::DEFAULT,
    )
    .generate_at(time)
    .unwrap()
    .to_string()
}

fn helpdesk(user: &str) -> HelpdeskRequest {
    HelpdeskRequest {
        user: user.into(),
        verified_by: "call-back to number on file".into(),
        ticket: "INC-1001".into(),
        token: None,
        valid_for: None,
        verifier: Verifier::Entra,
    }
}

fn refusal(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn wrong_passphrase_is_refused_and_writes_nothing() {
    let f = fixture();
    let before = std::fs::read(&f.path).unwrap();
    let err = Vault::open(&f.path)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"guess"))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "wrong passphrase for operator 'alice'; nothing was changed"
    );
    let err = Vault::open(&f.path)
        .unwrap()
        .unlock("bob", Unlock::Passphrase(b"alice pass"))
        .err()
        .unwrap();
    assert!(matches!(err, Error::UnknownOperator(ref name) if name == "bob"));
    assert_eq!(std::fs::read(&f.path).unwrap(), before);
    assert!(matches!(
        Vault::open(&f.path.with_extension("nope")).err().unwrap(),
        Error::NoVault { .. }
    ));
}

#[test]
fn lifecycle_with_history_and_refused_transitions() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_user("bob@contoso.com", Some("Bob"), NOW).unwrap();
    s.add_token(token("2100001", None, SEED, None), NOW)
        .unwrap();
    let t = serial("2100001");
    let err = refusal(s.transition(&t, State::Shipped, None, NOW));
    assert_eq!(
        err,
        "2100001: a credential that is burned cannot become shipped; from burned it can become assigned, lost, retired"
    );
    s.assign(&t, "bob@contoso.com", NOW + 1).unwrap();
    s.transition(&t, State::Shipped, Some("DHL 123"), NOW + 2)
        .unwrap();
    let (info, history) = s.token(&t).unwrap();
    assert_eq!(info.state, State::Shipped);
    assert_eq!(info.user.as_deref(), Some("bob@contoso.com"));
    let states: Vec<State> = history.iter().map(|e| e.to_state).collect();
    assert_eq!(states, vec![State::Burned, State::Assigned, State::Shipped]);
    assert_eq!(history[2].operator, "alice");
    assert_eq!(history[2].note.as_deref(), Some("DHL 123"));
    s.transition(&t, State::Retired, None, NOW + 3).unwrap();
    assert!(refusal(s.transition(&t, State::Assigned, None, NOW + 4)).contains("final"));
}

#[test]
fn multi_profile_devices_need_slots() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_token(token("MOLTO-7", Some(0), b"seed zero seed zero", None), NOW)
        .unwrap();
    s.add_token(token("MOLTO-7", Some(1), b"seed one seed one..", None), NOW)
        .unwrap();
    let err = s
        .add_token(token("MOLTO-7", Some(1), SEED, None), NOW)
        .unwrap_err();
    assert_eq!(err.to_string(), "a credential in MOLTO-7:1 already exists");
    let err = s
        .add_token(token("MOLTO-7", Some(100), SEED, None), NOW)
        .unwrap_err();
    assert!(err.to_string().contains("slot 100 does not exist"), "{err}");
    let err = s.token(&serial("MOLTO-7")).unwrap_err();
    assert!(err.to_string().contains("MOLTO-7:SLOT"), "{err}");
    assert_eq!(s.token(&serial("MOLTO-7:1")).unwrap().0.slot, Some(1));
}

#[test]
fn helpdesk_codes_need_verification_and_obey_the_rate_limit() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_token(token("2100002", None, SEED, Some("carol@contoso.com")), NOW)
        .unwrap();

    let mut missing = helpdesk("carol@contoso.com");
    missing.verified_by = " ".into();
    assert_eq!(
        refusal(s.helpdesk_code(&missing, NOW)),
        "identity verification is required: say how the caller was verified (--verified-by) and give the ticket (--ticket)"
    );
    let mut no_ticket = helpdesk("carol@contoso.com");
    no_ticket.ticket = String::new();
    assert!(
        refusal(s.helpdesk_code(&no_ticket, NOW)).starts_with("identity verification is required")
    );
    assert_eq!(
        refusal(s.helpdesk_code(&helpdesk("nobody@contoso.com"), NOW)),
        "no user 'nobody@contoso.com' in the vault"
    );

    for i in 0..5 {
        let grant = s
            .helpdesk_code(&helpdesk("carol@contoso.com"), NOW + i)
            .unwrap();
        assert_eq!(grant.code, code_at(SEED, NOW + i));
        assert_eq!(grant.serial.as_deref(), Some("2100002"));
        assert_eq!(grant.remaining_this_hour, 4 - i);
    }
    assert_eq!(
        refusal(s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 10)),
        "rate limit: carol@contoso.com already had 5 helpdesk code(s) in the last hour (limit 5); \
         wait, or raise 'helpdesk.codes_per_hour' with 'oathdesk vault set'"
    );
    // An hour later the window has moved on.
    assert!(
        s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 3601)
            .is_ok()
    );

    // A code that must last: Entra keeps accepting it for at least 2 minutes.
    let mut lasting = helpdesk("carol@contoso.com");
    lasting.valid_for = Some(120);
    let grant = s.helpdesk_code(&lasting, NOW + 3602).unwrap();
    assert!(grant.accepted_until >= NOW + 3602 + 120);

    // Every call is audited: granted and refused, with ticket and reason.
    let entries = s.audit_entries().unwrap();
    let helpdesk: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "helpdesk.code")
        .collect();
    assert_eq!(helpdesk.len(), 3 + 5 + 1 + 1 + 1);
    let refused = helpdesk.iter().filter(|e| e.outcome == "refused").count();
    assert_eq!(refused, 4);
    let rate = helpdesk
        .iter()
        .find(|e| e.detail.contains("rate limit"))
        .unwrap();
    assert_eq!(rate.ticket.as_deref(), Some("INC-1001"));
    assert_eq!(rate.credential.as_deref(), Some("2100002"));
    assert_eq!(rate.operator, "alice");
    assert!(
        entries
            .iter()
            .all(|e| !e.detail.contains(&code_at(SEED, NOW))),
        "codes are not written to the audit log"
    );
}

#[test]
fn lost_and_purged_tokens_get_no_helpdesk_codes() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_token(token("LOST-1", None, SEED, Some("dave@contoso.com")), NOW)
        .unwrap();
    s.transition(&serial("LOST-1"), State::Lost, None, NOW)
        .unwrap();
    assert_eq!(
        refusal(s.helpdesk_code(&helpdesk("dave@contoso.com"), NOW)),
        "LOST-1 is reported lost: no codes are given for a lost token"
    );
    s.add_token(
        token(
            "DONE-1",
            None,
            b"another secret seed.",
            Some("erin@contoso.com"),
        ),
        NOW,
    )
    .unwrap();
    s.purge(&serial("DONE-1"), NOW).unwrap();
    assert_eq!(
        refusal(s.helpdesk_code(&helpdesk("erin@contoso.com"), NOW)),
        "the secret of DONE-1 was purged after delivery: the user reads the code off their own token"
    );
}

#[test]
fn delivery_records_drift_and_purge_overwrites_the_secret() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_token(token("SHIP-1", None, SEED, Some("frank@contoso.com")), NOW)
        .unwrap();
    s.transition(&serial("SHIP-1"), State::Shipped, None, NOW)
        .unwrap();
    let sealed = {
        let mut store = oathdesk_vault::sqlite::SqliteStore::open(&f.path).unwrap();
        let tx = store.read().unwrap();
        tx.credentials(&CredentialFilter::default()).unwrap()[0]
            .sealed_secret
            .clone()
            .unwrap()
    };
    let err = refusal(s.deliver(&serial("SHIP-1"), "000000", NOW));
    assert!(err.starts_with("the code does not match SHIP-1"), "{err}");
    // The token is two steps behind.
    let delivered = s
        .deliver(&serial("SHIP-1"), &code_at(SEED, NOW - 60), NOW)
        .unwrap();
    assert_eq!(delivered.drift_steps, -2);
    assert!(delivered.purged);
    let (info, _) = s.token(&serial("SHIP-1")).unwrap();
    assert_eq!(info.state, State::Delivered);
    assert_eq!(info.drift_steps, Some(-2));
    assert_eq!(info.custody, oathdesk_vault::model::Custody::Purged);
    drop(s);
    // Neither the database nor its WAL holds the ciphertext any more.
    for file in [f.path.clone(), f.path.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(sealed.len()).any(|w| w == sealed.as_slice()),
                "{} still holds the sealed secret",
                file.display()
            );
        }
    }
}

#[test]
fn grace_period_purges_later() {
    let f = fixture();
    let mut s = session(&f.path);
    s.set_setting("purge.grace_seconds", 600, NOW).unwrap();
    s.add_token(token("GRACE-1", None, SEED, Some("gina@contoso.com")), NOW)
        .unwrap();
    let delivered = s
        .deliver(&serial("GRACE-1"), &code_at(SEED, NOW), NOW)
        .unwrap();
    assert!(!delivered.purged);
    assert_eq!(delivered.purge_after, Some(NOW + 600));
    assert_eq!(s.purge_due(NOW + 599).unwrap(), 0);
    assert_eq!(s.purge_due(NOW + 600).unwrap(), 1);
    assert!(s.reveal(&serial("GRACE-1")).is_err());
    let err = s.set_setting("helpdesk.codes", 1, NOW).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown setting 'helpdesk.codes'"),
        "{err}"
    );
}

#[test]
fn a_ciphertext_moved_to_another_row_does_not_open() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_token(token("A-1", None, SEED, Some("hank@contoso.com")), NOW)
        .unwrap();
    s.add_token(
        token(
            "B-1",
            None,
            b"a different secret!!",
            Some("ivy@contoso.com"),
        ),
        NOW,
    )
    .unwrap();
    drop(s);
    let connection = rusqlite_connection(&f.path);
    connection
        .execute(
            "UPDATE credentials SET sealed_secret = (SELECT sealed_secret FROM credentials WHERE id = 1) WHERE id = 2",
            [],
        )
        .unwrap();
    drop(connection);
    let mut s = session(&f.path);
    let err = s
        .helpdesk_code(&helpdesk("ivy@contoso.com"), NOW)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the secret of credential 2 does not decrypt: its ciphertext was altered or moved from another credential"
    );
    assert!(s.helpdesk_code(&helpdesk("hank@contoso.com"), NOW).is_ok());
}

fn rusqlite_connection(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn audit_tampering_is_found_and_named() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_user("judy@contoso.com", None, NOW).unwrap();
    s.add_user("ken@contoso.com", None, NOW + 1).unwrap();
    s.add_user("liz@contoso.com", None, NOW + 2).unwrap();
    let report = s.audit_verify().unwrap();
    assert_eq!(report.first_bad, None);
    assert_eq!(report.entries, 4);
    drop(s);

    let edit = |sql: &str| {
        let f2 = fixture_copy(&f.path);
        rusqlite_connection(&f2.1).execute_batch(sql).unwrap();
        let report = session(&f2.1).audit_verify().unwrap();
        report.first_bad.expect("tampering must be found")
    };
    let (seq, why) = edit("UPDATE audit SET user = 'mallory@contoso.com' WHERE seq = 3");
    assert_eq!(seq, 3);
    assert!(why.contains("does not match its MAC"), "{why}");
    let (seq, why) = edit("DELETE FROM audit WHERE seq = 2");
    assert_eq!(seq, 3);
    assert!(why.contains("missing or reordered"), "{why}");
    let (seq, why) =
        edit("UPDATE audit SET seq = 99 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3;");
    assert_eq!(seq, 2);
    assert!(
        why.contains("does not chain") || why.contains("MAC"),
        "{why}"
    );
}

/// Copies a vault file to a new folder (for destructive edits).
fn fixture_copy(path: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("vault.db");
    // Checkpoint first so the copy holds everything.
    rusqlite_connection(path)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    std::fs::copy(path, &copy).unwrap();
    (dir, copy)
}

#[test]
fn operators_and_rekey() {
    let f = fixture();
    let mut s = session(&f.path);
    s.add_operator("bob", NewOperator::Passphrase(b"bob pass", TEST_KDF), NOW)
        .unwrap();
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    s.add_operator("carl", NewOperator::Recipient(&recipient), NOW)
        .unwrap();
    s.add_token(token("R-1", None, SEED, Some("mia@contoso.com")), NOW)
        .unwrap();
    drop(s);

    // Bob keeps a copy of the vault key from before he leaves.
    let identity_text = {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_owned()
    };
    let mut as_carl = Vault::open(&f.path)
        .unwrap()
        .unlock("carl", Unlock::Identity(&identity_text))
        .unwrap();
    assert!(as_carl.reveal(&serial("R-1")).is_ok());
    assert!(matches!(
        Vault::open(&f.path)
            .unwrap()
            .unlock("carl", Unlock::Passphrase(b"x"))
            .err()
            .unwrap(),
        Error::NeedsIdentity(_)
    ));
    drop(as_carl);
    let bob_slot_before = slot_of(&f.path, "bob");

    let mut s = session(&f.path);
    s.remove_operator("bob", NOW).unwrap();
    assert_eq!(s.rekey(NOW + 1).unwrap(), 1);
    s.add_token(token("R-2", None, b"written after rekey!", None), NOW + 2)
        .unwrap();
    assert_eq!(
        s.audit_verify().unwrap().first_bad,
        None,
        "the chain spans the rekey"
    );
    drop(s);

    // Bob's old slot, put back by someone with file access, opens nothing new.
    let connection = rusqlite_connection(&f.path);
    connection
        .execute(
            "INSERT INTO operators VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                bob_slot_before.0,
                bob_slot_before.1,
                bob_slot_before.2,
                bob_slot_before.3,
                bob_slot_before.4,
                bob_slot_before.5,
                NOW,
                "alice"
            ],
        )
        .unwrap();
    drop(connection);
    let err = Vault::open(&f.path)
        .unwrap()
        .unlock("bob", Unlock::Passphrase(b"bob pass"))
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Crypto(_) | Error::Tampered { .. }),
        "the old vault key must not open the new audit keys: {err}"
    );
    // Carl's slot was re-wrapped: still fine.
    let mut as_carl = Vault::open(&f.path)
        .unwrap()
        .unlock("carl", Unlock::Identity(&identity_text))
        .unwrap();
    assert!(as_carl.reveal(&serial("R-2")).is_ok());
    let err = session(&f.path).remove_operator("nobody", NOW).unwrap_err();
    assert!(matches!(err, Error::UnknownOperator(_)));
}

type SlotColumns = (
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<u8>,
);

fn slot_of(path: &Path, name: &str) -> SlotColumns {
    rusqlite_connection(path)
        .query_row(
            "SELECT name, recipient, kdf, salt, sealed_identity, wrapped_vault_key FROM operators WHERE name = ?",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap()
}

#[test]
fn identify_finds_the_token_and_its_drift() {
    let f = fixture();
    let mut s = session(&f.path);
    let seeds: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 20]).collect();
    for (slot, seed) in seeds.iter().enumerate() {
        s.add_token(token("MOLTO-9", Some(slot as u32), seed, None), NOW)
            .unwrap();
    }
    let at = NOW;
    let first = code_at(&seeds[23], at + 30);
    let second = code_at(&seeds[23], at + 60);
    let hits = s
        .identify(&[&first, &second], at, Window::symmetric(1), at)
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].credential, "MOLTO-9:23");
    assert_eq!(hits[0].offset, 1);
    let last = s.audit_entries().unwrap().pop().unwrap();
    assert_eq!(last.action, "identify");
    assert!(last.detail.contains("MOLTO-9:23"));
}

#[test]
fn bulk_add_is_all_or_nothing() {
    let f = fixture();
    let mut s = session(&f.path);
    let batch = vec![
        token("BULK-1", None, SEED, Some("n1@contoso.com")),
        token("BULK-2", None, SEED, Some("n2@contoso.com")),
        token("BULK-1", None, SEED, Some("n3@contoso.com")),
    ];
    assert!(s.add_tokens(batch, NOW, "import").is_err());
    assert!(s.tokens(&CredentialFilter::default()).unwrap().is_empty());
    assert!(s.users().unwrap().is_empty());
}

#[test]
fn concurrent_writers_lose_nothing() {
    let f = fixture();
    let threads: Vec<_> = (0..4)
        .map(|worker| {
            let path = f.path.clone();
            std::thread::spawn(move || {
                let mut s = session(&path);
                for i in 0..25 {
                    s.add_user(&format!("w{worker}-u{i}@contoso.com"), None, NOW)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut s = session(&f.path);
    assert_eq!(s.users().unwrap().len(), 100);
    let report = s.audit_verify().unwrap();
    assert_eq!(report.first_bad, None);
    assert_eq!(report.entries, 101);
}

#[test]
fn hotp_tokens_are_stored_with_their_counter() {
    let f = fixture();
    let mut s = session(&f.path);
    let mut t = token("EVT-1", None, SEED, None);
    t.credential.kind = Kind::Hotp { counter: 5 };
    s.add_token(t, NOW).unwrap();
    let (info, credential) = s.reveal(&serial("EVT-1")).unwrap();
    assert_eq!(info.counter, Some(5));
    assert_eq!(credential.kind, Kind::Hotp { counter: 5 });
    assert_eq!(credential.secret.as_bytes(), SEED);
}

#[test]
fn control_characters_are_refused_in_names() {
    let f = fixture();
    let mut s = session(&f.path);
    let err = s
        .add_user("evil\u{1b}[2J@contoso.com", None, NOW)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the UPN contains a control character (a tab, line break or escape); remove it"
    );
    let mut t = token("OK-1", None, SEED, None);
    t.label = Some("line\nbreak".into());
    let err = s.add_token(t, NOW).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the label contains a control character"),
        "{err}"
    );
    assert!(s.users().unwrap().is_empty());
}

#[test]
fn concurrent_helpdesk_requests_cannot_pass_the_rate_limit() {
    let f = fixture();
    {
        let mut s = session(&f.path);
        s.set_setting("helpdesk.codes_per_hour", 3, NOW).unwrap();
        s.add_token(token("RACE-1", None, SEED, Some("olga@contoso.com")), NOW)
            .unwrap();
    }
    // All workers unlock first, then ask at once: the race is real.
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let path = f.path.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut s = session(&path);
                start.wait();
                (0..3)
                    .filter(|_| s.helpdesk_code(&helpdesk("olga@contoso.com"), NOW).is_ok())
                    .count()
            })
        })
        .collect();
    let granted: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(granted, 3, "12 concurrent requests, limit 3 per hour");
    let mut s = session(&f.path);
    let entries = s.audit_entries().unwrap();
    let outcomes: Vec<&str> = entries
        .iter()
        .filter(|e| e.action == "helpdesk.code")
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(outcomes.len(), 12, "every request is audited");
    assert_eq!(outcomes.iter().filter(|o| **o == "granted").count(), 3);
    assert_eq!(s.audit_verify().unwrap().first_bad, None);
}

// ----- device burns -----------------------------------------------------------

fn burning(serial: &str, slot: Option<u32>, seed: &[u8], user: Option<&str>) -> NewToken {
    NewToken {
        state: State::Burning,
        ..token(serial, slot, seed, user)
    }
}

#[test]
fn a_burn_is_recorded_before_it_happens_and_finished_after() {
    let f = fixture();
    let mut s = session(&f.path);
    let begun = s
        .begin_burn(
            burning("826658719844499", Some(7), SEED, Some("bob@contoso.com")),
            false,
            NOW,
        )
        .unwrap();
    assert_eq!(begun.state, State::Burning);
    assert_eq!(begun.reference(), "826658719844499:7");
    assert_eq!(begun.user.as_deref(), Some("bob@contoso.com"));
    // Listed as burning until the token confirmed the write.
    let listed = s
        .tokens(&CredentialFilter {
            state: Some(State::Burning),
            ..CredentialFilter::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 1);
    let done = s
        .finish_burn(begun.id, "verified on the token", NOW + 1)
        .unwrap();
    assert_eq!(done.state, State::Assigned);
    let (_, history) = s
        .token(&TokenRef::Serial {
            serial: "826658719844499".into(),
            slot: Some(7),
        })
        .unwrap();
    let states: Vec<State> = history.iter().map(|e| e.to_state).collect();
    assert_eq!(states, vec![State::Burning, State::Burned, State::Assigned]);
    let err = s.finish_burn(begun.id, "again", NOW + 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "826658719844499:7 is assigned, not burning: there is no burn to finish"
    );
    let actions: Vec<String> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.ends_with(&["device.burn.begin".into(), "device.burn".into()]));
    assert_eq!(s.audit_verify().unwrap().first_bad, None);
}

#[test]
fn burning_an_occupied_slot_needs_replace_and_retires_the_old_credential() {
    let f = fixture();
    let mut s = session(&f.path);
    let first = s
        .begin_burn(burning("M2", Some(3), SEED, None), false, NOW)
        .unwrap();
    s.finish_burn(first.id, "ok", NOW).unwrap();
    let err = s
        .begin_burn(
            burning("M2", Some(3), b"another seed 1234567", None),
            false,
            NOW,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the vault records #{} in M2:3 (burned): pass --overwrite to replace it",
            first.id
        )
    );
    let second = s
        .begin_burn(
            burning("M2", Some(3), b"another seed 1234567", None),
            true,
            NOW + 5,
        )
        .unwrap();
    assert_eq!(second.reference(), "M2:3");
    let (old, history) = s.token(&TokenRef::Id(first.id)).unwrap();
    assert_eq!(old.state, State::Retired);
    assert_eq!(old.slot, None, "taken off the slot");
    assert_eq!(old.custody, oathdesk_vault::model::Custody::Purged);
    assert_eq!(
        history.last().unwrap().note.as_deref(),
        Some("superseded by a new burn of M2:3")
    );
    // M2:3 names the new credential.
    let (now_in_slot, _) = s
        .token(&TokenRef::Serial {
            serial: "M2".into(),
            slot: Some(3),
        })
        .unwrap();
    assert_eq!(now_in_slot.id, second.id);
}

#[test]
fn an_interrupted_burn_is_superseded_without_replace() {
    let f = fixture();
    let mut s = session(&f.path);
    let cut_short = s
        .begin_burn(burning("M2", Some(0), SEED, None), false, NOW)
        .unwrap();
    let again = s
        .begin_burn(burning("M2", Some(0), SEED, None), false, NOW + 1)
        .unwrap();
    assert_ne!(cut_short.id, again.id);
    let (old, _) = s.token(&TokenRef::Id(cut_short.id)).unwrap();
    assert_eq!(old.state, State::Retired);
    // A single-profile token programmed again keeps its serial; SERIAL names
    // the live credential.
    let one = s
        .begin_burn(burning("86596220000001", None, SEED, None), false, NOW)
        .unwrap();
    s.finish_burn(one.id, "ok", NOW).unwrap();
    let two = s
        .begin_burn(
            burning("86596220000001", None, b"second seed 12345678", None),
            true,
            NOW + 9,
        )
        .unwrap();
    let (live, _) = s
        .token(&"86596220000001".parse::<TokenRef>().unwrap())
        .unwrap();
    assert_eq!(live.id, two.id);
    assert_eq!(live.state, State::Burning);
}
