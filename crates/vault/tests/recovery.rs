//! Break-glass recovery and backups in the vault library, on SQLite and
//! PostgreSQL: shares open a vault after a rekey, a slot written into the
//! database by hand is refused, a role without the admin permission makes
//! no recovery set, and a PostgreSQL vault's backup points at pg_dump.

mod common;

use common::*;
use oathdesk_vault::recovery::{ParsedShare, parse_share};
use oathdesk_vault::{Error, Role, Unlock, Vault};

on_both_backends!(
    any_threshold_of_shares_opens_the_vault_after_a_rekey,
    a_hand_written_recovery_slot_is_caught,
    only_admins_make_a_recovery_set
);

fn parsed(kit: &oathdesk_vault::recovery::RecoveryKit, which: &[usize]) -> Vec<ParsedShare> {
    which
        .iter()
        .map(|i| parse_share(&format!("share {i}"), &kit.shares[*i].words).unwrap())
        .collect()
}

fn any_threshold_of_shares_opens_the_vault_after_a_rekey(backend: Backend) {
    let f = Fixture::empty(backend);
    Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    let mut alice = session(&f.location);
    let kit = alice.recovery_create(5, 3, NOW).unwrap();
    assert_eq!(kit.shares.len(), 5);
    assert!(!kit.replaced);
    assert_eq!(
        kit.shares.iter().map(|s| s.number).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    alice.rekey(NOW + 1).unwrap();
    drop(alice);

    let vault = Vault::open_at(&f.location).unwrap();
    let refused = vault
        .recover(
            &parsed(&kit, &[0, 4]),
            "rita",
            b"rita pass",
            TEST_KDF,
            NOW + 2,
        )
        .err()
        .unwrap();
    assert!(matches!(
        refused,
        Error::NotEnoughShares {
            given: 2,
            threshold: 3
        }
    ));
    let mut rita = Vault::open_at(&f.location)
        .unwrap()
        .recover(
            &parsed(&kit, &[0, 2, 4]),
            "rita",
            b"rita pass",
            TEST_KDF,
            NOW + 2,
        )
        .unwrap();
    assert_eq!(rita.role(), Role::Admin);
    assert!(rita.verify_vault().unwrap().intact);
    drop(rita);
    let again = Vault::open_at(&f.location)
        .unwrap()
        .unlock("rita", Unlock::Passphrase(b"rita pass"))
        .unwrap();
    assert_eq!(again.role(), Role::Admin);
    let status = Vault::open_at(&f.location)
        .unwrap()
        .recovery_status()
        .unwrap()
        .unwrap();
    assert_eq!((status.shares, status.threshold), (5, 3));
    assert_eq!(status.created_by, "alice");
}

fn a_hand_written_recovery_slot_is_caught(backend: Backend) {
    let f = Fixture::empty(backend);
    Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    let mut alice = session(&f.location);
    alice.recovery_create(3, 2, NOW).unwrap();
    drop(alice);
    // Someone with the database swaps in their own recipient, hoping a
    // rekey wraps the next key to it.
    let (mine, _) = oathdesk_vault::crypto::new_identity();
    let theirs = oathdesk_vault::crypto::parse_identity(&mine)
        .unwrap()
        .to_public()
        .to_string();
    let find = match backend {
        Backend::Sqlite => "instr(body, 'age1')",
        Backend::Postgres => "strpos(body, 'age1')",
    };
    f.execute(&format!(
        "UPDATE records SET body = replace(body, substr(body, {find}, 62), '{theirs}') \
         WHERE kind = 'recovery_slot'"
    ));
    let mut alice = session(&f.location);
    let report = alice.verify_vault().unwrap();
    assert!(!report.intact);
    assert_eq!(report.rows.bad[0].kind, "recovery_slot");
    assert!(matches!(alice.rekey(NOW + 1), Err(Error::Altered { .. })));
}

fn only_admins_make_a_recovery_set(backend: Backend) {
    let f = Fixture::empty(backend);
    Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    let mut alice = session(&f.location);
    alice
        .add_operator(
            "pat",
            oathdesk_vault::NewOperator::Passphrase(b"pat pass", TEST_KDF),
            Role::Provisioner,
            NOW,
        )
        .unwrap();
    let backup_target = std::env::temp_dir().join(format!("never-{}.db", std::process::id()));
    match backend {
        Backend::Postgres => {
            let refused = alice.backup_to(&backup_target, false, NOW).unwrap_err();
            assert!(
                refused.to_string().contains("pg_dump")
                    && refused
                        .to_string()
                        .contains("vault copy --to sqlite://FILE"),
                "{refused}"
            );
        }
        Backend::Sqlite => {}
    }
    assert!(!backup_target.exists());
    drop(alice);
    let mut pat = Vault::open_at(&f.location)
        .unwrap()
        .unlock("pat", Unlock::Passphrase(b"pat pass"))
        .unwrap();
    assert!(matches!(
        pat.recovery_create(3, 2, NOW),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        pat.backup_to(&backup_target, false, NOW),
        Err(Error::Forbidden { .. })
    ));
}
