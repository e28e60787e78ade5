//! `vault verify` names a row whose device, user or credential was deleted
//! behind oathdesk's back. Those three carry their MACs in their own rows,
//! so a deleted one leaves no MAC behind to say it was there; its children
//! do. (PostgreSQL's triggers and SQLite's foreign keys refuse such a
//! delete; a database administrator can switch them off, as here.)

mod common;

use common::*;

on_both_backends!(a_row_whose_parent_was_deleted_by_hand_is_named);

fn a_row_whose_parent_was_deleted_by_hand_is_named(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("2100001", None, SEED, Some("bob@contoso.com")), NOW)
        .unwrap();
    s.add_token(token("2100002", None, SEED, Some("carol@contoso.com")), NOW)
        .unwrap();
    let report = s.verify_vault().unwrap();
    assert!(report.intact, "{report:?}");

    let checks_off = match backend {
        Backend::Sqlite => "PRAGMA foreign_keys = OFF;",
        Backend::Postgres => "SET session_replication_role = replica;",
    };
    // Token 1's device and user go, and token 2's credential (its first
    // event stays).
    f.execute(&format!(
        "{checks_off} DELETE FROM devices WHERE id = 1; DELETE FROM users WHERE id = 1; \
         DELETE FROM credentials WHERE id = 2"
    ));
    let report = s.verify_vault().unwrap();
    assert!(!report.intact, "{report:?}");
    let found: Vec<(&str, &str)> = report
        .rows
        .bad
        .iter()
        .map(|bad| (bad.name.as_str(), bad.problem))
        .collect();
    for expected in [
        ("credential 1 (refers to device 1)", "its device is gone"),
        ("credential 1 (refers to user 1)", "its user is gone"),
    ] {
        assert!(found.contains(&expected), "{expected:?} not in {found:?}");
    }
    assert!(
        found
            .iter()
            .any(|(name, problem)| name.ends_with("(refers to credential 2)")
                && *problem == "its credential is gone"),
        "{found:?}"
    );
}
