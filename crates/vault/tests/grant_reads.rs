//! The console's read of a grant in one statement (PostgreSQL) means what
//! the store's reads one by one mean: the grant, its account and operator
//! slot, the audit keys and the MACs the session checks.

mod common;

use common::{Backend, Fixture, NOW, TEST_KDF as KDF};
use oathdesk_vault::AnyStore;
use oathdesk_vault::store::grant::read_one_by_one;
use oathdesk_vault::store::{GrantRows, Store, StoreTx};
use oathdesk_vault::web::SETUP_OPERATOR;
use oathdesk_vault::{Unlock, Vault};

const DAY: u64 = 86_400;

on_both_backends!(the_one_statement_grant_read_agrees_with_the_reads_one_by_one);

fn sorted(mut rows: GrantRows) -> GrantRows {
    rows.macs.sort();
    rows
}

fn the_one_statement_grant_read_agrees_with_the_reads_one_by_one(backend: Backend) {
    let f = Fixture::empty(backend);
    Vault::create_at(&f.location, SETUP_OPERATOR, b"setup-code", KDF, NOW).unwrap();
    let (secret, _) = Vault::open_at(&f.location)
        .unwrap()
        .unlock(SETUP_OPERATOR, Unlock::Passphrase(b"setup-code"))
        .unwrap()
        .complete_setup("ada", b"ada's long password", KDF, DAY, NOW)
        .unwrap();
    let (mut session, _) = Vault::open_at(&f.location)
        .unwrap()
        .open_grant(&secret, Some(1800), NOW + 10, None)
        .unwrap();
    // A second audit epoch (the keys come back in epoch order); the rekey
    // ends the session's grant, so two tokens are made after it.
    session.rekey(NOW + 20).unwrap();
    for (name, scope) in [("ci", "helpdesk.code"), ("ops", "toolset")] {
        session
            .create_api_token(name, &[scope.into()], 7 * DAY, NOW + 30)
            .unwrap();
    }
    drop(session);

    let mut store = AnyStore::open(&f.location).unwrap();
    let tx = store.read().unwrap();
    let grants = tx.web_grants(None).unwrap();
    assert_eq!(grants.len(), 2, "ada's two tokens");
    for grant in &grants {
        let together = sorted(tx.grant_rows(&grant.id).unwrap());
        let one_by_one = sorted(read_one_by_one(&tx, &grant.id).unwrap());
        assert_eq!(together, one_by_one, "{}", grant.kind);
        assert_eq!(together.grant.as_ref(), Some(grant));
        assert_eq!(together.account.as_ref().unwrap().name, "ada");
        assert_eq!(together.operator.as_ref().unwrap().name, "ada");
        let epochs: Vec<i64> = together.audit_keys.iter().map(|(e, _)| *e).collect();
        assert_eq!(epochs, [1, 2]);
        // The signed-rows marker and ada's signature.
        let kinds: Vec<&str> = together.macs.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(kinds, ["operator", "vault"]);
    }
    let unknown = tx.grant_rows(&[0u8; 32]).unwrap();
    assert_eq!(unknown, GrantRows::default());
    assert_eq!(read_one_by_one(&tx, &[0u8; 32]).unwrap(), unknown);
    drop(tx);
    // And as the console reads it: a read of one statement.
    let single = store.read_single().unwrap();
    let read = single.grant_rows(&grants[0].id).unwrap();
    assert_eq!(read.grant.as_ref(), Some(&grants[0]));
}
