//! The helpdesk's read in one statement (PostgreSQL) means what the
//! store's reads one by one mean, on the same snapshot; and a read of one
//! statement refuses a second.

mod common;

use common::*;

use oathdesk_vault::store::helpdesk::read_one_by_one;
use oathdesk_vault::store::{HelpdeskRows, Store, StoreTx};
use oathdesk_vault::{AnyStore, FactsUpdate};

on_both_backends!(
    the_one_statement_read_agrees_with_the_reads_one_by_one,
    a_read_of_one_statement_refuses_a_second,
);

fn sorted(mut rows: HelpdeskRows) -> HelpdeskRows {
    rows.macs.sort();
    rows
}

fn the_one_statement_read_agrees_with_the_reads_one_by_one(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.set_setting("helpdesk.codes_per_hour", 7, NOW).unwrap();
    s.add_tokens(
        // Stored in an order that is not the lists' (by serial): the
        // candidates must come in the lists' order all the same.
        vec![
            token(
                "MOLTO",
                Some(3),
                b"a slot of a molto 12",
                Some("anna@contoso.com"),
            ),
            token(
                "ANNA2",
                None,
                b"anna's second seed 1",
                Some("anna@contoso.com"),
            ),
            token("ANNA1", None, SEED, Some("anna@contoso.com")),
            boris_token(),
            token("SPARE", None, b"nobody's seed 123456", None),
        ],
        NOW,
        "test",
    )
    .unwrap();
    s.update_user_facts(
        vec![FactsUpdate {
            upn: "anna@contoso.com".into(),
            display_name: Some("Anna".into()),
            values: [("employee_id".to_owned(), Some("E1".to_owned()))].into(),
        }],
        "test",
        false,
        NOW,
    )
    .unwrap();
    // Codes granted an hour and a half ago (counted for the day only) and now.
    let mut request = helpdesk("boris@contoso.com");
    request.token = Some(serial("BORIS"));
    s.helpdesk_code(&request, NOW - 5400).unwrap();
    s.helpdesk_code(&request, NOW).unwrap();
    drop(s);

    let mut store = AnyStore::open(&f.location).unwrap();
    let tx = store.read().unwrap();
    for upn in [
        "anna@contoso.com",
        "ANNA@contoso.com",
        "boris@contoso.com",
        "nobody@contoso.com",
    ] {
        let together = sorted(tx.helpdesk_rows(&helpdesk_query(upn)).unwrap());
        let one_by_one = sorted(read_one_by_one(&tx, &helpdesk_query(upn)).unwrap());
        assert_eq!(together, one_by_one, "{upn}");
        // Read with a grant's rows (none here: no such grant), the same.
        let (grant, with_grant) = tx
            .grant_and_helpdesk_rows(&[0u8; 32], &helpdesk_query(upn))
            .unwrap();
        assert!(grant.grant.is_none());
        assert_eq!(sorted(with_grant), together, "{upn}");
    }
    let anna = tx
        .helpdesk_rows(&helpdesk_query("Anna@Contoso.com"))
        .unwrap();
    assert_eq!(anna.limit_text.as_deref(), Some("7"));
    let serials: Vec<Option<&str>> = anna
        .candidates
        .iter()
        .map(|c| c.serial.as_deref())
        .collect();
    assert_eq!(serials, [Some("ANNA1"), Some("ANNA2"), Some("MOLTO")]);
    assert!(anna.facts.is_some() && anna.policy.is_some());
    // The setting, the policy, the user, the data on file, three credentials.
    assert_eq!(anna.macs.len(), 7);
    let boris = tx
        .helpdesk_rows(&helpdesk_query("boris@contoso.com"))
        .unwrap();
    assert_eq!((boris.granted_last_hour, boris.granted_last_day), (1, 2));
    assert!(boris.facts.is_none());
    let nobody = tx
        .helpdesk_rows(&helpdesk_query("nobody@contoso.com"))
        .unwrap();
    assert!(nobody.user.is_none() && nobody.candidates.is_empty());
}

fn a_read_of_one_statement_refuses_a_second(backend: Backend) {
    let f = fixture(backend);
    let mut store = AnyStore::open(&f.location).unwrap();
    let tx = store.read_single().unwrap();
    let first = tx
        .helpdesk_rows(&helpdesk_query("anna@contoso.com"))
        .unwrap();
    assert!(first.user.is_none());
    let second = tx.meta_get("setting.helpdesk.codes_per_hour");
    match backend {
        // SQLite reads in a transaction anyway.
        Backend::Sqlite => assert!(second.is_ok()),
        Backend::Postgres => assert!(second.is_err(), "{second:?}"),
    }
}
