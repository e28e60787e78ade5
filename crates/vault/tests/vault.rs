//! The vault through its public API, on both databases: every test here
//! runs once on a SQLite file and once in a scratch PostgreSQL schema
//! (`cargo test -p oathdesk-vault sqlite::` or `postgres::` picks one).

mod common;

use std::path::Path;

use common::*;

use oathdesk_otp::{Kind, Window};
use oathdesk_vault::model::State;
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::store::{CredentialFilter, OperatorRow, Store, StoreTx};
use oathdesk_vault::testing::ScratchSchema;
use oathdesk_vault::{AnyStore, Error, Location, NewOperator, NewToken, Role, Unlock, Vault};

on_both_backends!(
    wrong_passphrase_is_refused_and_writes_nothing,
    lifecycle_with_history_and_refused_transitions,
    multi_profile_devices_need_slots,
    helpdesk_codes_need_verification_and_obey_the_rate_limit,
    lost_and_purged_tokens_get_no_helpdesk_codes,
    delivery_records_drift_and_purge_overwrites_the_secret,
    grace_period_purges_later,
    a_ciphertext_moved_to_another_row_does_not_open,
    audit_tampering_is_found_and_named,
    operators_and_rekey,
    identify_finds_the_token_and_its_drift,
    bulk_add_is_all_or_nothing,
    a_batch_is_checked_as_a_whole,
    concurrent_writers_lose_nothing,
    hotp_tokens_are_stored_with_their_counter,
    control_characters_are_refused_in_names,
    concurrent_helpdesk_requests_cannot_pass_the_rate_limit,
    a_new_vault_records_every_migration,
    a_vault_from_a_newer_oathdesk_is_refused,
    creating_over_a_vault_is_refused,
    upns_are_case_insensitive_and_listed_alphabetically,
    entra_links_are_kept_per_tenant_with_unique_serials_and_audited,
    a_burn_is_recorded_before_it_happens_and_finished_after,
    burning_an_occupied_slot_needs_replace_and_retires_the_old_credential,
    an_interrupted_burn_is_superseded_without_replace,
    an_export_audits_what_it_wrote_and_no_more,
    serials_that_collide_with_references_are_refused_at_every_entry,
    serials_from_before_the_rule_are_named_and_addressed_by_id,
    a_file_with_problems_is_imported_only_when_told_to_skip_them,
);

fn wrong_passphrase_is_refused_and_writes_nothing(backend: Backend) {
    let f = fixture(backend);
    let file = || f.path().map(|path| std::fs::read(path).unwrap());
    let (before, rows_before) = (file(), f.dump());
    assert!(rows_before.len() > 5, "{rows_before:?}");
    let err = Vault::open_at(&f.location)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"guess"))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "wrong passphrase for operator 'alice'; nothing was changed"
    );
    let err = Vault::open_at(&f.location)
        .unwrap()
        .unlock("bob", Unlock::Passphrase(b"alice pass"))
        .err()
        .unwrap();
    assert!(matches!(err, Error::UnknownOperator(ref name) if name == "bob"));
    assert_eq!(file(), before);
    assert_eq!(f.dump(), rows_before);
    let nowhere = Fixture::empty(backend);
    let err = Vault::open_at(&nowhere.location).err().unwrap();
    assert!(matches!(err, Error::NoVault { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with(": create one with 'oathdesk vault init'"),
        "{err}"
    );
}

fn lifecycle_with_history_and_refused_transitions(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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

fn multi_profile_devices_need_slots(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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

fn helpdesk_codes_need_verification_and_obey_the_rate_limit(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("2100002", None, SEED, Some("carol@contoso.com")), NOW)
        .unwrap();

    let mut missing = helpdesk("carol@contoso.com");
    missing.verifications.clear();
    assert!(
        refusal(s.helpdesk_code(&missing, NOW))
            .starts_with("say how the caller was verified: choose a method (call-back, manager,")
    );
    let mut no_ticket = helpdesk("carol@contoso.com");
    no_ticket.ticket = String::new();
    assert_eq!(
        refusal(s.helpdesk_code(&no_ticket, NOW)),
        "give the ticket id of this call (--ticket)"
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
    // A typed refusal: front-ends answer 429 / Retry-After without reading words.
    match s.helpdesk_code(&helpdesk("carol@contoso.com"), NOW + 10) {
        Err(Error::RateLimited {
            reason, retry_at, ..
        }) => {
            assert_eq!(
                reason,
                format!(
                    "rate limit: carol@contoso.com already had 5 helpdesk code(s) in the last hour (limit 5); \
                     next code allowed at {}",
                    oathdesk_vault_clock(NOW + 3600)
                )
            );
            // When the oldest of the hour's grants ages out.
            assert_eq!(retry_at, NOW + 3600);
        }
        other => panic!("expected the rate limit, got {other:?}"),
    }
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

fn lost_and_purged_tokens_get_no_helpdesk_codes(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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

fn delivery_records_drift_and_purge_overwrites_the_secret(backend: Backend) {
    // VACUUM keeps row versions that a transaction anywhere in the same
    // database could still see; in a database of its own, no other test's
    // transaction can hold back the purge's VACUUM.
    let f = Fixture::empty_in_own_database(backend);
    Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    let mut s = session(&f.location);
    s.add_token(token("SHIP-1", None, SEED, Some("frank@contoso.com")), NOW)
        .unwrap();
    s.transition(&serial("SHIP-1"), State::Shipped, None, NOW)
        .unwrap();
    let sealed = {
        let mut store = AnyStore::open(&f.location).unwrap();
        let tx = store.read().unwrap();
        tx.credentials(&CredentialFilter::default()).unwrap()[0]
            .sealed_secret
            .clone()
            .unwrap()
    };
    match s.deliver(&serial("SHIP-1"), "000000", NOW) {
        Err(Error::CodeMismatch { credential, .. }) => {
            assert_eq!(credential, "SHIP-1");
        }
        other => panic!("expected a code mismatch, got {other:?}"),
    }
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
    // No row holds the ciphertext any more, nor any old row version.
    assert!(!f.dump().concat().contains(&hex(&sealed)));
    match &f.location {
        Location::Sqlite(path) => {
            for file in [path.clone(), path.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    assert!(
                        !bytes.windows(sealed.len()).any(|w| w == sealed.as_slice()),
                        "{} still holds the sealed secret",
                        file.display()
                    );
                }
            }
        }
        Location::Postgres(_) => {
            // The purge's VACUUM pruned the old row versions: nothing else
            // runs in this database that could have held it back. (Pruned
            // bytes may stay in the page's free space until it is reused;
            // docs/src/postgresql.md: rekey makes such leftovers unreadable.)
            let schema = f.schema.as_ref().unwrap();
            assert_eq!(
                row_versions_holding(schema, "credentials", &sealed),
                0,
                "a row version in the credentials table still holds the sealed secret"
            );
        }
    }
}

/// How many row versions of a PostgreSQL table, live or dead, hold
/// `needle` (read from the table's pages with the `pageinspect` extension).
fn row_versions_holding(schema: &ScratchSchema, table: &str, needle: &[u8]) -> i64 {
    let mut client = schema.client();
    let installed = |client: &mut ::postgres::Client| {
        client
            .query_opt(
                "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pageinspect'",
                &[],
            )
            .unwrap()
            .map(|row| row.get::<_, String>(0))
    };
    let namespace = match installed(&mut client) {
        Some(namespace) => namespace,
        None => {
            // Other test processes may install it at the same moment.
            let _ = client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS pageinspect WITH SCHEMA public");
            installed(&mut client).expect("the pageinspect extension (postgresql-contrib)")
        }
    };
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM generate_series(0, pg_relation_size('{table}') / 8192 - 1) AS page, \
                 LATERAL {namespace}.heap_page_items({namespace}.get_raw_page('{table}', page::int)) AS item \
                 WHERE position($1::bytea IN item.t_data) > 0"
            ),
            &[&needle],
        )
        .unwrap()
        .get(0)
}

fn grace_period_purges_later(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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

fn a_ciphertext_moved_to_another_row_does_not_open(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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
    f.execute(
        "UPDATE credentials SET sealed_secret = (SELECT sealed_secret FROM credentials WHERE id = 1) WHERE id = 2",
    );
    let mut s = session(&f.location);
    let err = s
        .helpdesk_code(&helpdesk("ivy@contoso.com"), NOW)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the secret of credential 2 does not decrypt: its ciphertext was altered or moved from another credential"
    );
    assert!(s.helpdesk_code(&helpdesk("hank@contoso.com"), NOW).is_ok());
}

fn audit_tampering_is_found_and_named(backend: Backend) {
    // A fresh vault of five entries for each edit (init, the signing of
    // its rows, three users).
    let edit = |sql: &str| {
        let f = fixture(backend);
        let mut s = session(&f.location);
        s.add_user("judy@contoso.com", None, NOW).unwrap();
        s.add_user("ken@contoso.com", None, NOW + 1).unwrap();
        s.add_user("liz@contoso.com", None, NOW + 2).unwrap();
        let report = s.audit_verify().unwrap();
        assert_eq!(report.first_bad, None);
        assert_eq!(report.entries, 6, "init, signing, policy, 3 users");
        drop(s);
        f.execute(sql);
        let report = session(&f.location).audit_verify().unwrap();
        report.first_bad.expect("tampering must be found")
    };
    // ("user" is quoted: a reserved word in PostgreSQL.)
    let (seq, why) = edit("UPDATE audit SET \"user\" = 'mallory@contoso.com' WHERE seq = 3");
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

fn operators_and_rekey(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_operator(
        "bob",
        NewOperator::Passphrase(b"bob pass", TEST_KDF),
        Role::Admin,
        NOW,
    )
    .unwrap();
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    s.add_operator(
        "carl",
        NewOperator::Recipient(&recipient),
        Role::Provisioner,
        NOW,
    )
    .unwrap();
    s.add_token(token("R-1", None, SEED, Some("mia@contoso.com")), NOW)
        .unwrap();
    drop(s);

    // Bob keeps a copy of the vault key from before he leaves.
    let identity_text = {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_owned()
    };
    let mut as_carl = Vault::open_at(&f.location)
        .unwrap()
        .unlock("carl", Unlock::Identity(&identity_text))
        .unwrap();
    assert!(as_carl.reveal(&serial("R-1")).is_ok());
    assert!(matches!(
        Vault::open_at(&f.location)
            .unwrap()
            .unlock("carl", Unlock::Passphrase(b"x"))
            .err()
            .unwrap(),
        Error::NeedsIdentity(_)
    ));
    drop(as_carl);
    let bob_slot_before = slot_of(&f.location, "bob");

    let mut s = session(&f.location);
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

    // Bob's old slot, put back by someone with database access, opens
    // nothing new.
    assert_eq!(slot_of(&f.location, "bob"), None);
    {
        let mut store = AnyStore::open(&f.location).unwrap();
        let tx = store.write().unwrap();
        tx.operator_put(&bob_slot_before.unwrap()).unwrap();
        tx.commit().unwrap();
    }
    let err = Vault::open_at(&f.location)
        .unwrap()
        .unlock("bob", Unlock::Passphrase(b"bob pass"))
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::Crypto(_) | Error::Tampered { .. }),
        "the old vault key must not open the new audit keys: {err}"
    );
    // Carl's slot was re-wrapped: still fine.
    let mut as_carl = Vault::open_at(&f.location)
        .unwrap()
        .unlock("carl", Unlock::Identity(&identity_text))
        .unwrap();
    assert!(as_carl.reveal(&serial("R-2")).is_ok());
    let err = session(&f.location)
        .remove_operator("nobody", NOW)
        .unwrap_err();
    assert!(matches!(err, Error::UnknownOperator(_)));
}

/// An operator's key slot, read straight from the database.
fn slot_of(location: &Location, name: &str) -> Option<OperatorRow> {
    let mut store = AnyStore::open(location).unwrap();
    let tx = store.read().unwrap();
    tx.operator(name).unwrap()
}

fn identify_finds_the_token_and_its_drift(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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

fn bulk_add_is_all_or_nothing(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let batch = vec![
        token("BULK-1", None, SEED, Some("n1@contoso.com")),
        token("BULK-2", None, SEED, Some("n2@contoso.com")),
        token("BULK-1", None, SEED, Some("n3@contoso.com")),
    ];
    assert!(s.add_tokens(batch, NOW, "import").is_err());
    assert!(s.tokens(&CredentialFilter::default()).unwrap().is_empty());
    assert!(s.users().unwrap().is_empty());
}

fn a_batch_is_checked_as_a_whole(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(
        token("MOLTO-1", Some(0), &[1; 20], Some("Amy@contoso.com")),
        NOW,
    )
    .unwrap();
    let batch = vec![
        token("MOLTO-1", Some(1), &[2; 20], Some("amy@contoso.com")),
        token("MOLTO-2", Some(0), &[3; 20], None),
        token("MOLTO-2", Some(5), &[4; 20], Some("AMY@CONTOSO.COM")),
        token("NFC-1", None, &[5; 20], Some("bob@contoso.com")),
        token("MOLTO-1", Some(2), &[6; 20], Some("bob@contoso.com")),
    ];
    let rows = s.add_tokens(batch, NOW, "import").unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, [2, 3, 4, 5, 6]);
    // Every secret went to its own token, bound to its id.
    for (reference, seed) in [
        ("MOLTO-1:1", 2u8),
        ("MOLTO-2:0", 3),
        ("MOLTO-2:5", 4),
        ("NFC-1", 5),
        ("MOLTO-1:2", 6),
    ] {
        let (info, credential) = s.reveal(&serial(reference)).unwrap();
        assert_eq!(credential.secret.as_bytes(), [seed; 20], "{reference}");
        assert_eq!(info.reference(), reference);
    }
    let users: Vec<String> = s.users().unwrap().into_iter().map(|u| u.upn).collect();
    assert_eq!(users, ["Amy@contoso.com", "bob@contoso.com"]);
    let amy = s
        .tokens(&CredentialFilter {
            user_upn: Some("amy@contoso.com".into()),
            ..CredentialFilter::default()
        })
        .unwrap();
    assert_eq!(amy.len(), 3);
    let (_, history) = s.token(&serial("MOLTO-2:5")).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].to_state, State::Assigned);

    // A slot taken before, or twice in one batch, refuses the whole batch.
    for (batch, expected) in [
        (
            vec![
                token("MOLTO-3", Some(0), SEED, None),
                token("MOLTO-2", Some(5), SEED, None),
            ],
            "a credential in MOLTO-2:5 already exists",
        ),
        (
            vec![
                token("MOLTO-3", Some(7), SEED, None),
                token("MOLTO-3", Some(7), SEED, None),
            ],
            "a credential in MOLTO-3:7 already exists",
        ),
        (
            vec![
                token("NFC-2", None, SEED, Some("carol@contoso.com")),
                token("MOLTO-1", None, SEED, None),
            ],
            "device MOLTO-1 has 100 profiles: give the slot as MOLTO-1:SLOT",
        ),
    ] {
        let err = s.add_tokens(batch, NOW, "import").unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
    assert_eq!(s.tokens(&CredentialFilter::default()).unwrap().len(), 6);
    assert_eq!(s.users().unwrap().len(), 2);
    let next = s
        .add_token(token("AFTER-1", None, SEED, None), NOW)
        .unwrap();
    assert!(next.id > 6, "{}", next.id);
}

fn concurrent_writers_lose_nothing(backend: Backend) {
    let f = fixture(backend);
    let threads: Vec<_> = (0..4)
        .map(|worker| {
            let location = f.location.clone();
            std::thread::spawn(move || {
                let mut s = session(&location);
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
    let mut s = session(&f.location);
    assert_eq!(s.users().unwrap().len(), 100);
    let report = s.audit_verify().unwrap();
    assert_eq!(report.first_bad, None);
    assert_eq!(report.entries, 103, "init, signing, policy, 100 users");
}

fn hotp_tokens_are_stored_with_their_counter(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let mut t = token("EVT-1", None, SEED, None);
    t.credential.kind = Kind::Hotp { counter: 5 };
    s.add_token(t, NOW).unwrap();
    let (info, credential) = s.reveal(&serial("EVT-1")).unwrap();
    assert_eq!(info.counter, Some(5));
    assert_eq!(credential.kind, Kind::Hotp { counter: 5 });
    assert_eq!(credential.secret.as_bytes(), SEED);
}

fn control_characters_are_refused_in_names(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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

fn concurrent_helpdesk_requests_cannot_pass_the_rate_limit(backend: Backend) {
    let f = fixture(backend);
    {
        let mut s = session(&f.location);
        s.set_setting("helpdesk.codes_per_hour", 3, NOW).unwrap();
        s.add_token(token("RACE-1", None, SEED, Some("olga@contoso.com")), NOW)
            .unwrap();
    }
    // All workers unlock first, then ask at once: the race is real.
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let location = f.location.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let mut s = session(&location);
                start.wait();
                (0..3)
                    .filter(|_| s.helpdesk_code(&helpdesk("olga@contoso.com"), NOW).is_ok())
                    .count()
            })
        })
        .collect();
    let granted: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(granted, 3, "12 concurrent requests, limit 3 per hour");
    let mut s = session(&f.location);
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

// ----- schema versions -------------------------------------------------------

fn migrations_recorded(f: &Fixture) -> Vec<String> {
    f.dump()
        .into_iter()
        .filter(|row| row.starts_with("schema_migrations: "))
        .collect()
}

fn a_new_vault_records_every_migration(backend: Backend) {
    let f = fixture(backend);
    let recorded = migrations_recorded(&f);
    assert_eq!(
        recorded.len(),
        oathdesk_vault::migrations::MIGRATIONS.len(),
        "{recorded:?}"
    );
    // The dump's order is the database's (text order puts 10 before 2).
    for migration in oathdesk_vault::migrations::MIGRATIONS {
        let version = migration.version;
        let row = recorded.iter().find(|row| {
            row.starts_with(&format!("schema_migrations: ({version},"))
                || row.starts_with(&format!("schema_migrations: {version}|"))
        });
        assert!(
            row.is_some_and(|row| row.contains(migration.name)),
            "migration {} in {recorded:?}",
            migration.version
        );
    }
    // Opening again applies nothing twice.
    drop(session(&f.location));
    assert_eq!(migrations_recorded(&f), recorded);
}

fn a_vault_from_a_newer_oathdesk_is_refused(backend: Backend) {
    let f = fixture(backend);
    f.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'from the future', 0)");
    let err = Vault::open_at(&f.location).err().unwrap();
    assert!(matches!(err, Error::NotAVault { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "its schema version is 99, and this oathdesk knows versions up to {}: upgrade oathdesk",
            oathdesk_vault::migrations::LATEST
        )),
        "{err}"
    );
}

fn creating_over_a_vault_is_refused(backend: Backend) {
    let f = fixture(backend);
    let err = Vault::create_at(&f.location, "mallory", b"pass", TEST_KDF, NOW)
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::VaultExists { .. } | Error::Exists(_)),
        "{err}"
    );
    // The first vault is untouched (its init, the signing of its rows and
    // the tests' policy).
    assert_eq!(session(&f.location).audit_verify().unwrap().entries, 3);
}

fn upns_are_case_insensitive_and_listed_alphabetically(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    for upn in ["bob@contoso.com", "Zoe@contoso.com", "amy@contoso.com"] {
        s.add_user(upn, None, NOW).unwrap();
    }
    let err = s.add_user("BOB@contoso.com", None, NOW).unwrap_err();
    assert_eq!(err.to_string(), "user 'BOB@contoso.com' already exists");
    let upns: Vec<String> = s.users().unwrap().into_iter().map(|u| u.upn).collect();
    assert_eq!(
        upns,
        ["amy@contoso.com", "bob@contoso.com", "Zoe@contoso.com"]
    );
    s.add_token(token("CASE-1", None, SEED, Some("ZOE@CONTOSO.COM")), NOW)
        .unwrap();
    assert_eq!(s.users().unwrap().len(), 3, "the token went to Zoe");
    let grant = s.helpdesk_code(&helpdesk("zoe@contoso.com"), NOW).unwrap();
    assert_eq!(grant.serial.as_deref(), Some("CASE-1"));
    assert_eq!(grant.remaining_this_hour, 4);
    let grant = s.helpdesk_code(&helpdesk("ZOE@contoso.com"), NOW).unwrap();
    assert_eq!(grant.remaining_this_hour, 3, "the rate limit ignores case");
}

/// A vault written by oathdesk before schema migrations were tracked
/// (schema version 1 in `PRAGMA user_version`), kept as the file it wrote:
/// operator alice (passphrase "alice pass"), user bob, token 2100001
/// shipped, one helpdesk code, five audit entries.
#[test]
fn a_sqlite_vault_of_version_1_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vault-v1.sqlite"),
        &path,
    )
    .unwrap();
    let version = |path: &Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&path), 1);
    let f = Fixture {
        location: Location::Sqlite(path.clone()),
        _dir: Some(dir),
        schema: None,
    };
    let rows_before = f.dump();

    let mut s = session(&f.location);
    assert_eq!(version(&path), oathdesk_vault::migrations::LATEST);
    let recorded = migrations_recorded(&f);
    assert_eq!(recorded.len(), oathdesk_vault::migrations::MIGRATIONS.len());
    // Every row the old vault held is still there, unchanged.
    let rows_after = f.dump();
    for row in rows_before
        .iter()
        .filter(|r| !r.starts_with("schema_migrations"))
    {
        // (A later migration may add columns at the end: operators got a role.)
        assert!(
            rows_after
                .iter()
                .any(|after| after == row || after.starts_with(&format!("{row}|"))),
            "{row} was lost"
        );
    }
    let report = s.audit_verify().unwrap();
    // The five old entries, and the signing of the old rows by alice, an
    // admin since the migration (she could do everything before roles).
    assert_eq!((report.entries, report.first_bad), (6, None));
    assert_eq!(s.role(), Role::Admin);
    let rows = s.verify_rows().unwrap();
    assert!(rows.signed && rows.bad.is_empty(), "{rows:?}");
    let entries = s.audit_entries().unwrap();
    let signing = entries.last().unwrap();
    assert_eq!(signing.action, "vault.sign_rows");
    assert!(
        signing.detail.contains("became admin"),
        "{}",
        signing.detail
    );
    let (token, history) = s.token(&serial("2100001")).unwrap();
    assert_eq!(token.state, State::Shipped);
    assert_eq!(history.len(), 2);
    // The rate limit counts the code granted before the migration.
    s.set_helpdesk_policy(&desk_policy(), NOW).unwrap();
    let grant = s.helpdesk_code(&helpdesk("bob@contoso.com"), NOW).unwrap();
    assert_eq!(grant.code, code_at(b"12345678901234567890", NOW));
    // Version 2's index serves the rate-limit count in full.
    let plan: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM audit WHERE action = 'a' AND outcome = 'b' \
             AND user = 'c' COLLATE NOCASE AND at >= 5",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("user=? AND at>?"), "{plan}");
}

/// A PostgreSQL vault made at schema version 1 (with data) is migrated
/// when opened: the rows of the version-1 SQLite file, loaded as they are
/// into a PostgreSQL schema made at version 1.
#[test]
fn a_postgres_vault_of_version_1_is_migrated() {
    let f = Fixture::empty(Backend::Postgres);
    let Location::Postgres(url) = &f.location else {
        unreachable!()
    };
    drop(oathdesk_vault::postgres::PgStore::create_at_version(url, 1).unwrap());
    f.schema.as_ref().unwrap().load_sqlite_rows(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vault-v1.sqlite"),
        &[
            "meta",
            "operators",
            "audit_keys",
            "users",
            "devices",
            "credentials",
            "events",
            "audit",
        ],
    );
    assert_eq!(migrations_recorded(&f).len(), 1);
    let index = |f: &Fixture| -> String {
        f.schema
            .as_ref()
            .unwrap()
            .client()
            .query_one(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'audit_rate'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert!(!index(&f).contains("lower"), "{}", index(&f));

    let mut s = session(&f.location);
    assert_eq!(
        migrations_recorded(&f).len(),
        oathdesk_vault::migrations::MIGRATIONS.len()
    );
    assert!(index(&f).contains("lower"), "{}", index(&f));
    assert_eq!(s.audit_verify().unwrap().first_bad, None);
    let rows = s.verify_rows().unwrap();
    assert!(rows.signed && rows.bad.is_empty(), "{rows:?}");
    s.set_helpdesk_policy(&desk_policy(), NOW).unwrap();
    let grant = s.helpdesk_code(&helpdesk("BOB@contoso.com"), NOW).unwrap();
    assert_eq!(grant.remaining_this_hour, 3);
}

// ----- Microsoft Entra links ---------------------------------------------------

fn entra_link(credential_id: i64, serial: &str, status: &str) -> oathdesk_vault::model::EntraLink {
    oathdesk_vault::model::EntraLink {
        tenant: "contoso.onmicrosoft.com".into(),
        credential_id,
        serial: serial.into(),
        device_id: None,
        user_id: None,
        user_upn: None,
        method_id: None,
        status: status.into(),
        last_counter: None,
        last_sync: None,
        last_error: None,
        updated_at: NOW,
    }
}

fn entra_links_are_kept_per_tenant_with_unique_serials_and_audited(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let a = s
        .add_token(token("MOLTO", Some(1), SEED, None), NOW)
        .unwrap();
    let b = s
        .add_token(token("MOLTO", Some(2), SEED, None), NOW)
        .unwrap();
    let event = |n: usize| {
        oathdesk_vault::audit::AuditEvent::ok("entra.push")
            .detail(serde_json::json!({"credentials": n}))
    };
    s.entra_record(
        &[entra_link(a.id, "MOLTO-01", "pending")],
        &[],
        event(1),
        NOW,
    )
    .unwrap();
    let mut linked = entra_link(a.id, "MOLTO-01", "activated");
    linked.device_id = Some("d-1".into());
    linked.user_id = Some("u-1".into());
    linked.user_upn = Some("bob@contoso.com".into());
    linked.method_id = Some("m-1".into());
    linked.last_counter = Some(58_333_333);
    linked.last_sync = Some(NOW + 5);
    linked.last_error = Some("an earlier failure".into());
    s.entra_record(&[linked.clone()], &[], event(1), NOW + 1)
        .unwrap();
    assert_eq!(
        s.entra_links("contoso.onmicrosoft.com").unwrap(),
        vec![linked.clone()]
    );
    assert_eq!(
        s.entra_link("contoso.onmicrosoft.com", a.id).unwrap(),
        Some(linked)
    );
    assert_eq!(s.entra_link("contoso.onmicrosoft.com", b.id).unwrap(), None);
    assert_eq!(
        s.entra_link("fabrikam.onmicrosoft.com", a.id).unwrap(),
        None
    );
    assert!(
        s.entra_links("fabrikam.onmicrosoft.com")
            .unwrap()
            .is_empty()
    );
    // A second credential cannot take the same Entra serial in the tenant,
    // and the failed step leaves neither link nor audit entry behind.
    let entries = s.audit_entries().unwrap().len();
    let clash = s.entra_record(
        &[entra_link(b.id, "MOLTO-01", "pending")],
        &[],
        event(1),
        NOW,
    );
    assert!(clash.is_err());
    drop(s);
    let mut s = session(&f.location);
    assert_eq!(s.audit_entries().unwrap().len(), entries);
    assert_eq!(s.entra_links("contoso.onmicrosoft.com").unwrap().len(), 1);
    // Forget one, add another, in one step.
    s.entra_record(
        &[entra_link(b.id, "MOLTO-02", "pending")],
        &[("contoso.onmicrosoft.com".into(), a.id)],
        event(1),
        NOW,
    )
    .unwrap();
    let links = s.entra_links("contoso.onmicrosoft.com").unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].serial, "MOLTO-02");
    assert_eq!(s.audit_verify().unwrap().first_bad, None);
    // Control characters never reach the link table.
    assert!(
        s.entra_record(
            &[entra_link(a.id, "X\u{1b}[2J", "pending")],
            &[],
            event(1),
            NOW
        )
        .is_err()
    );
}

// ----- device burns -----------------------------------------------------------

fn burning(serial: &str, slot: Option<u32>, seed: &[u8], user: Option<&str>) -> NewToken {
    NewToken {
        state: State::Burning,
        ..token(serial, slot, seed, user)
    }
}

fn a_burn_is_recorded_before_it_happens_and_finished_after(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
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
    // No helpdesk codes for a secret the token may not hold yet.
    let request = oathdesk_vault::HelpdeskRequest {
        user: "bob@contoso.com".into(),
        verifications: common::desk_check(),
        ticket: "T-1001".into(),
        token: None,
        valid_for: None,
        verifier: oathdesk_otp::Verifier::Exact,
    };
    assert_eq!(
        refusal(s.helpdesk_code(&request, NOW)),
        "826658719844499:7 is still being burned (its burn was cut short): finish the burn before giving codes"
    );
    let done = s
        .finish_burn(begun.id, "verified on the token", NOW + 1)
        .unwrap();
    assert_eq!(done.state, State::Assigned);
    let (_, history) = s.token(&serial("826658719844499:7")).unwrap();
    let states: Vec<State> = history.iter().map(|e| e.to_state).collect();
    assert_eq!(states, vec![State::Burning, State::Burned, State::Assigned]);
    assert_eq!(history[1].note.as_deref(), Some("verified on the token"));
    assert_eq!(
        refusal(s.finish_burn(begun.id, "again", NOW + 2)),
        "826658719844499:7 is assigned, not burning: there is no burn to finish"
    );
    let actions: Vec<String> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.ends_with(&[
        "device.burn.begin".into(),
        "helpdesk.code".into(),
        "device.burn".into()
    ]));
    assert_eq!(s.audit_verify().unwrap().first_bad, None);
}

fn burning_an_occupied_slot_needs_replace_and_retires_the_old_credential(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let first = s
        .begin_burn(burning("M2", Some(3), SEED, None), false, NOW)
        .unwrap();
    s.finish_burn(first.id, "ok", NOW).unwrap();
    assert_eq!(
        refusal(s.begin_burn(
            burning("M2", Some(3), b"another seed 1234567", None),
            false,
            NOW
        )),
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
    assert_eq!(
        (old.serial, old.slot),
        (None, None),
        "detached from the device"
    );
    assert_eq!(old.custody, oathdesk_vault::model::Custody::Purged);
    assert_eq!(
        history.last().unwrap().note.as_deref(),
        Some("superseded by a new burn of M2:3")
    );
    let (now_in_slot, _) = s.token(&serial("M2:3")).unwrap();
    assert_eq!(now_in_slot.id, second.id);
    // A credential retired by hand still sits in its slot; a burn detaches it.
    s.finish_burn(second.id, "ok", NOW + 6).unwrap();
    s.transition(&serial("M2:3"), State::Retired, None, NOW + 7)
        .unwrap();
    let third = s
        .begin_burn(
            burning("M2", Some(3), b"third seed 123456789", None),
            false,
            NOW + 8,
        )
        .unwrap();
    assert_eq!(third.reference(), "M2:3");
}

fn an_interrupted_burn_is_superseded_without_replace(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let cut_short = s
        .begin_burn(burning("M2", Some(0), SEED, None), false, NOW)
        .unwrap();
    let again = s
        .begin_burn(burning("M2", Some(0), SEED, None), false, NOW + 1)
        .unwrap();
    assert_ne!(cut_short.id, again.id);
    let (old, _) = s.token(&TokenRef::Id(cut_short.id)).unwrap();
    assert_eq!(old.state, State::Retired);
    // A single-profile token programmed again keeps its serial.
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
    let (live, _) = s.token(&serial("86596220000001")).unwrap();
    assert_eq!(live.id, two.id);
    assert_eq!(live.state, State::Burning);
}

fn an_export_audits_what_it_wrote_and_no_more(backend: Backend) {
    use oathdesk_formats::format::{Format, WriteOptions};
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("TOTP-1", None, SEED, Some("ann@contoso.com")), NOW)
        .unwrap();
    // Entra takes no HOTP tokens: the writer skips this one.
    let mut hotp = token("EVT-1", None, SEED, Some("ann@contoso.com"));
    hotp.credential.kind = Kind::Hotp { counter: 5 };
    s.add_token(hotp, NOW).unwrap();
    s.add_token(token("TOTP-2", None, SEED, Some("ben@contoso.com")), NOW)
        .unwrap();
    let written = s
        .export(
            &CredentialFilter::default(),
            Format::EntraCsv,
            &WriteOptions::default(),
            NOW + 1,
        )
        .unwrap();
    let skipped: Vec<&str> = written.skipped.iter().map(|k| k.reason.as_str()).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("HOTP"), "{skipped:?}");
    let text = String::from_utf8(written.bytes).unwrap();
    assert!(text.contains("TOTP-1") && text.contains("TOTP-2") && !text.contains("EVT-1"));
    let entries = s.audit_entries().unwrap();
    let export = entries.last().unwrap();
    assert_eq!(export.action, "export");
    let detail: serde_json::Value = serde_json::from_str(&export.detail).unwrap();
    assert_eq!(detail["count"], 2);
    assert_eq!(
        detail["credentials"],
        serde_json::json!(["TOTP-1", "TOTP-2"])
    );
}

/// `14:05 UTC` of a Unix time, as refusals say it.
fn oathdesk_vault_clock(at: u64) -> String {
    let minutes = (at % 86_400) / 60;
    format!("{:02}:{:02} UTC", minutes / 60, minutes % 60)
}

fn serials_that_collide_with_references_are_refused_at_every_entry(backend: Backend) {
    use oathdesk_formats::Record;
    use oathdesk_formats::format::Format;
    let f = fixture(backend);
    let mut s = session(&f.location);
    let refused = |result: Result<(), Error>, serial: &str| match result {
        Err(Error::InvalidSerial {
            serial: named,
            rule,
        }) => {
            assert_eq!(named, serial);
            assert!(!rule.is_empty());
        }
        other => panic!("{serial}: {other:?}"),
    };
    for serial in [
        "CONF:1",
        "S3javascript:alert(4)",
        "#12",
        "a/b",
        "50%",
        "a b",
    ] {
        // token add
        refused(
            s.add_token(token(serial, None, SEED, None), NOW).map(drop),
            serial,
        );
        // a batch (and every seed-file import, which adds through it)
        refused(
            s.add_tokens(
                vec![
                    token("OK-1", None, SEED, None),
                    token(serial, None, b"abcdefghijklmnopqrst", None),
                ],
                NOW,
                "import.test",
            )
            .map(drop),
            serial,
        );
        let mut record = Record::new(oathdesk_otp::Credential::totp(
            oathdesk_otp::Secret::from_bytes(SEED.to_vec()),
        ));
        record.serial = Some(serial.to_owned());
        refused(
            s.import_records(vec![record], Format::EntraCsv, NOW)
                .map(drop),
            serial,
        );
        // a burn
        refused(
            s.begin_burn(token(serial, Some(1), SEED, None), false, NOW)
                .map(drop),
            serial,
        );
    }
    // The helpdesk's spreadsheet: the row is named by line.
    let sheet = oathdesk_formats::spreadsheet::read(
        b"username,secret,serial\nbob@contoso.com,JBSWY3DPEHPK3PXP,CONF:1\n",
    )
    .unwrap();
    match s.import_sheet(sheet, false, NOW) {
        Err(Error::ImportProblems {
            problems,
            importable,
        }) => {
            assert_eq!(importable, Some(0));
            assert!(
                problems[0].starts_with("line 2: serial: serial 'CONF:1'"),
                "{problems:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(s.tokens(&CredentialFilter::default()).unwrap().is_empty());
}

fn serials_from_before_the_rule_are_named_and_addressed_by_id(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let molto = s
        .add_token(token("CONF", Some(1), SEED, Some("carol@contoso.com")), NOW)
        .unwrap();
    let classic = s
        .add_token_from_before_the_serial_rule(
            token(
                "CONF:1",
                None,
                b"abcdefghijklmnopqrst",
                Some("bob@contoso.com"),
            ),
            NOW,
        )
        .unwrap();
    assert_eq!(molto.reference(), "CONF:1");
    assert_eq!(classic.reference(), format!("#{}", classic.id));
    // 'CONF:1' names the Molto-2's slot, and only it.
    let (found, _) = s.token(&serial("CONF:1")).unwrap();
    assert_eq!(found.id, molto.id);
    let (found, _) = s.token(&serial(&format!("#{}", classic.id))).unwrap();
    assert_eq!(found.user.as_deref(), Some("bob@contoso.com"));
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "an old serial is not an alteration");
    assert_eq!(report.serials.len(), 1);
    assert_eq!(report.serials[0].serial, "CONF:1");
    assert_eq!(
        report.serials[0].references,
        vec![format!("#{}", classic.id)]
    );
}

fn a_file_with_problems_is_imported_only_when_told_to_skip_them(backend: Backend) {
    use oathdesk_formats::format::{self, Format};
    let f = fixture(backend);
    let mut s = session(&f.location);
    let file = b"upn,serial number,secret key,time interval,manufacturer,model\r\n\
        a@contoso.com,2100000001,JBSWY3DPEHPK3PXP,30,Token2,C202\r\n\
        b@contoso.com,2.10012E+09,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30,Token2,C202\r\n\
        c@contoso.com,2100000003,JBSWY3DPEHPK3PXP,30,Token2,C202\r\n";
    let keys = oathdesk_formats::Keys::default();
    let records = format::read(Format::EntraCsv, file, &keys).unwrap();
    let findings = oathdesk_formats::lint::lint(file, Some(Format::EntraCsv), &keys, None)
        .unwrap()
        .findings;
    let plan = oathdesk_vault::exchange::plan_records(&records, &findings);
    assert_eq!(plan.good, vec![0]);
    let places: Vec<&str> = plan.skipped.iter().map(|r| r.location.as_str()).collect();
    assert_eq!(places, ["line 3", "line 4"]);
    match s.import_file(records.clone(), &findings, Format::EntraCsv, false, NOW) {
        Err(Error::ImportProblems {
            problems,
            importable,
        }) => {
            assert_eq!(importable, Some(1));
            assert_eq!(problems.len(), 2, "{problems:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.tokens(&CredentialFilter::default()).unwrap().is_empty());
    let done = s
        .import_file(records, &findings, Format::EntraCsv, true, NOW)
        .unwrap();
    assert_eq!(done.imported, 1);
    assert_eq!(done.skipped.len(), 2);
    let tokens = s.tokens(&CredentialFilter::default()).unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].serial.as_deref(), Some("2100000001"));
}
