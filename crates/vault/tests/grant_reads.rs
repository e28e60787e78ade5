//! The console's read of a grant in one statement (PostgreSQL) means what
//! the store's reads one by one mean: the grant, its account and operator
//! slot, the audit keys and the MACs the session checks. Read with a
//! helpdesk request's rows, it means the two reads; a session opened so
//! decides its helpdesk code on those rows, for that user only, and not
//! after a change of its own.

mod common;

use common::{
    Backend, Fixture, NOW, SEED, TEST_KDF as KDF, boris_token, code_at, desk_policy, helpdesk,
    helpdesk_query, refusal, serial, token,
};
use oathdesk_vault::model::State;
use oathdesk_vault::store::grant::read_one_by_one;
use oathdesk_vault::store::{GrantRows, HelpdeskRows, Store, StoreTx};
use oathdesk_vault::web::SETUP_OPERATOR;
use oathdesk_vault::{AnyStore, NewToken, Session};
use oathdesk_vault::{Unlock, Vault};

const DAY: u64 = 86_400;

on_both_backends!(
    the_one_statement_grant_read_agrees_with_the_reads_one_by_one,
    a_session_opened_for_a_helpdesk_code_decides_on_what_it_read,
    reads_made_together_by_concurrent_stores_agree_with_reads_made_alone,
);

/// A vault whose first admin, ada, signed in: her session's secret.
fn ada(f: &Fixture) -> [u8; 32] {
    Vault::create_at(&f.location, SETUP_OPERATOR, b"setup-code", KDF, NOW).unwrap();
    let (secret, _) = Vault::open_at(&f.location)
        .unwrap()
        .unlock(SETUP_OPERATOR, Unlock::Passphrase(b"setup-code"))
        .unwrap()
        .complete_setup("ada", b"ada's long password", KDF, DAY, NOW)
        .unwrap();
    *secret
}

/// Ada's session with the helpdesk policy set and anna's and boris's
/// tokens added (and `more`).
fn desk(f: &Fixture, secret: &[u8; 32], more: Vec<NewToken>) -> Session {
    let (mut admin, _) = Vault::open_at(&f.location)
        .unwrap()
        .open_grant(secret, Some(1800), NOW + 10, None)
        .unwrap();
    admin.set_helpdesk_policy(&desk_policy(), NOW + 10).unwrap();
    let mut tokens = vec![
        token("ANNA1", None, SEED, Some("anna@contoso.com")),
        boris_token(),
    ];
    tokens.extend(more);
    admin.add_tokens(tokens, NOW + 10, "test").unwrap();
    admin
}

fn sorted(mut rows: GrantRows) -> GrantRows {
    rows.macs.sort();
    rows
}

fn the_one_statement_grant_read_agrees_with_the_reads_one_by_one(backend: Backend) {
    let f = Fixture::empty(backend);
    let secret = ada(&f);
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
        // Read with a helpdesk request's rows: the same, and the same rows.
        let (grant_part, helpdesk_part) = tx
            .grant_and_helpdesk_rows(&grant.id, &helpdesk_query("ada@contoso.com"))
            .unwrap();
        assert_eq!(sorted(grant_part), together);
        assert_eq!(
            helpdesk_part,
            tx.helpdesk_rows(&helpdesk_query("ada@contoso.com"))
                .unwrap()
        );
    }
    let (grant_part, _) = tx
        .grant_and_helpdesk_rows(&[0u8; 32], &helpdesk_query("ada@contoso.com"))
        .unwrap();
    assert_eq!(grant_part, GrantRows::default());
    let unknown = tx.grant_rows(&[0u8; 32]).unwrap();
    assert_eq!(unknown, GrantRows::default());
    assert_eq!(read_one_by_one(&tx, &[0u8; 32]).unwrap(), unknown);
    drop(tx);
    // And as the console reads it: a read of one statement.
    let single = store.read_single().unwrap();
    let read = single.grant_rows(&grants[0].id).unwrap();
    assert_eq!(read.grant.as_ref(), Some(&grants[0]));
}

fn a_session_opened_for_a_helpdesk_code_decides_on_what_it_read(backend: Backend) {
    let f = Fixture::empty(backend);
    let secret = ada(&f);
    drop(desk(&f, &secret, vec![]));
    let at = NOW + 20;
    let open = |upn: &str| -> Session {
        Vault::open_at(&f.location)
            .unwrap()
            .open_grant_for_helpdesk(&secret, Some(1800), at, None, upn)
            .unwrap()
            .0
    };
    // Decided on the rows read with the grant: anna's token's code.
    let granted = open("anna@contoso.com")
        .helpdesk_code(&helpdesk("anna@contoso.com"), at)
        .unwrap();
    assert_eq!(
        (granted.serial.as_deref(), granted.code.as_str()),
        (Some("ANNA1"), code_at(SEED, at).as_str())
    );
    // Rows read for anna decide nothing for boris: his are read.
    let granted = open("anna@contoso.com")
        .helpdesk_code(&helpdesk("boris@contoso.com"), at)
        .unwrap();
    assert_eq!(granted.serial.as_deref(), Some("BORIS"));
    // A change through the session drops what was read before it: the
    // token it reported lost gives no code.
    let mut session = open("anna@contoso.com");
    session
        .transition(&serial("ANNA1"), State::Lost, Some("left on a train"), at)
        .unwrap();
    let refused = refusal(session.helpdesk_code(&helpdesk("anna@contoso.com"), at));
    assert!(refused.contains("lost"), "{refused}");
    // A bad secret opens nothing, whatever was asked for.
    let wrong = Vault::open_at(&f.location)
        .unwrap()
        .open_grant_for_helpdesk(&[9u8; 32], Some(1800), at, None, "anna@contoso.com");
    assert!(
        matches!(wrong, Err(oathdesk_vault::Error::Unauthenticated(_))),
        "{:?}",
        wrong.map(|_| ())
    );
}

fn sorted_both((grant, mut helpdesk): (GrantRows, HelpdeskRows)) -> (GrantRows, HelpdeskRows) {
    helpdesk.macs.sort();
    (sorted(grant), helpdesk)
}

/// The console's stores of one vault read concurrently; on PostgreSQL the
/// reads that queue are made in one statement for all of them
/// (`postgres/read_together.rs`): each request gets its own rows all the
/// same — its grant's (or none), its user's (or none).
fn reads_made_together_by_concurrent_stores_agree_with_reads_made_alone(backend: Backend) {
    let f = Fixture::empty(backend);
    let secret = ada(&f);
    let mut admin = desk(
        &f,
        &secret,
        vec![token(
            "ANNA2",
            None,
            b"anna's second seed 1",
            Some("anna@contoso.com"),
        )],
    );
    admin
        .create_api_token("desk", &["helpdesk.code".into()], 7 * DAY, NOW + 10)
        .unwrap();
    drop(admin);
    let mut store = AnyStore::open(&f.location).unwrap();
    let grants: Vec<Vec<u8>> = store
        .read()
        .unwrap()
        .web_grants(None)
        .unwrap()
        .into_iter()
        .map(|grant| grant.id)
        .chain([vec![0u8; 32]])
        .collect();
    assert_eq!(grants.len(), 3, "ada's session, her token, and no grant");
    let upns = [
        "anna@contoso.com",
        "BORIS@contoso.com",
        "nobody@contoso.com",
    ];
    let requests: Vec<(&[u8], &str)> = grants
        .iter()
        .flat_map(|grant| upns.iter().map(move |upn| (grant.as_slice(), *upn)))
        .collect();
    let alone: Vec<_> = requests
        .iter()
        .map(|(grant, upn)| {
            sorted_both(
                store
                    .read_single()
                    .unwrap()
                    .grant_and_helpdesk_rows(grant, &helpdesk_query(upn))
                    .unwrap(),
            )
        })
        .collect();
    assert!(alone[0].0.grant.is_some() && alone[0].1.candidates.len() == 2);
    assert!(alone[8].0.grant.is_none() && alone[8].1.user.is_none());
    const THREADS: usize = 8;
    let start = std::sync::Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for who in 0..THREADS {
            let (start, requests, alone, location) = (&start, &requests, &alone, &f.location);
            scope.spawn(move || {
                let mut store = AnyStore::open(location).unwrap();
                start.wait();
                for n in 0..40 {
                    let at = (who + n) % requests.len();
                    let (grant, upn) = requests[at];
                    let read = store
                        .grant_and_helpdesk(grant, &helpdesk_query(upn))
                        .unwrap();
                    assert_eq!(sorted_both(read), alone[at], "{upn} with grant {at}");
                }
            });
        }
    });
}
