//! Seed provenance: a generated seed's RNG, operator, command and time are
//! in its `token.add` audit entry and in a signed record read with one
//! lookup; imported seeds have none; a vault from before the records reads
//! its audit log until its first generated seed copies them over. On both
//! databases.

mod common;

use common::*;

use oathdesk_vault::model::TokenRef;
use oathdesk_vault::{Error, SEED_RNG};

on_both_backends!(
    generated_seeds_say_where_they_came_from,
    a_slot_burned_twice_in_one_second_keeps_each_seeds_provenance,
    a_vault_from_before_the_records_reads_its_audit_log_then_migrates_once,
);

/// Edits the provenance records behind the vault's back.
fn forge_provenance(f: &Fixture) {
    f.execute(
        "UPDATE records SET body = replace(body, '\"alice\"', '\"mallory\"') \
         WHERE kind = 'seed_provenance'",
    );
}

fn generated_seeds_say_where_they_came_from(backend: Backend) {
    let f = fixture(backend);
    let mut session = session(&f.location);
    let mut generated = token("OATH0001", None, SEED, None);
    generated.credential.secret =
        oathdesk_vault::defaults::generated_secret(Default::default()).unwrap();
    session
        .add_generated_token(generated, "oathdesk token add --generate", NOW + 5)
        .unwrap();
    session
        .add_token(token("OATH0002", None, SEED, None), NOW + 6)
        .unwrap();

    let seed = session
        .seed_provenance(&serial("OATH0001"))
        .unwrap()
        .expect("a generated seed has a provenance");
    assert_eq!(seed.rng, SEED_RNG);
    assert_eq!(seed.operator, "alice");
    assert_eq!(seed.command, "oathdesk token add --generate");
    assert_eq!(seed.generated_at, NOW + 5);
    assert_eq!(session.seed_provenance(&serial("OATH0002")).unwrap(), None);

    // The audit entry carries it (and no secret).
    let entry = session
        .audit_entries()
        .unwrap()
        .into_iter()
        .find(|e| e.action == "token.add" && e.credential.as_deref() == Some("OATH0001"))
        .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap();
    assert_eq!(detail["seed"]["operator"], "alice");
    assert_eq!(detail["seed"]["rng"], SEED_RNG);
    assert_eq!(session.audit_verify().unwrap().first_bad, None);
    assert!(session.verify_rows().unwrap().bad.is_empty());
    drop(session);

    // Read from the signed record, not the audit log: an edited record is
    // refused by name, whatever the audit entry says.
    forge_provenance(&f);
    let mut session = common::session(&f.location);
    match session.seed_provenance(&serial("OATH0001")) {
        Err(Error::Altered { row }) => assert!(row.contains("seed provenance"), "{row}"),
        other => panic!("expected an altered record, got {other:?}"),
    }
    // The imported token reads no audit log either: still none.
    assert_eq!(session.seed_provenance(&serial("OATH0002")).unwrap(), None);
}

fn a_slot_burned_twice_in_one_second_keeps_each_seeds_provenance(backend: Backend) {
    let f = fixture(backend);
    let mut session = session(&f.location);
    let first = session
        .begin_generated_burn(
            token("826658719844499", Some(3), SEED, None),
            false,
            "oathdesk device burn --generate (first)",
            NOW,
        )
        .unwrap();
    // Cut short, burned again in the same second with another seed.
    let second = session
        .begin_generated_burn(
            token("826658719844499", Some(3), b"abcdefghijabcdefghij", None),
            true,
            "oathdesk device burn --generate (second)",
            NOW,
        )
        .unwrap();
    assert_ne!(first.id, second.id);
    let of = |session: &mut oathdesk_vault::Session, id: i64| {
        session
            .seed_provenance(&TokenRef::Id(id))
            .unwrap()
            .unwrap()
            .command
    };
    assert_eq!(
        of(&mut session, first.id),
        "oathdesk device burn --generate (first)"
    );
    assert_eq!(
        of(&mut session, second.id),
        "oathdesk device burn --generate (second)"
    );
    assert!(session.verify_rows().unwrap().bad.is_empty());
}

/// The records and their signatures removed make the vault look like one
/// from before them: provenance comes from the audit log; the next seed
/// generated copies it into records once, and from then on the record is
/// what is read.
fn a_vault_from_before_the_records_reads_its_audit_log_then_migrates_once(backend: Backend) {
    let f = fixture(backend);
    let mut session = session(&f.location);
    let mut generated = token("OLD0001", None, SEED, None);
    generated.credential.secret =
        oathdesk_vault::defaults::generated_secret(Default::default()).unwrap();
    session
        .add_generated_token(generated, "oathdesk token add --generate", NOW)
        .unwrap();
    session
        .add_token(token("OLD0002", None, b"abcdefghijabcdefghij", None), NOW)
        .unwrap();
    drop(session);
    f.execute(
        "DELETE FROM records WHERE kind = 'seed_provenance'; \
         DELETE FROM row_macs WHERE kind = 'seed_provenance';",
    );
    let mut session = common::session(&f.location);
    let old = session
        .seed_provenance(&serial("OLD0001"))
        .unwrap()
        .unwrap();
    assert_eq!(old.command, "oathdesk token add --generate");
    assert_eq!(session.seed_provenance(&serial("OLD0002")).unwrap(), None);

    let mut next = token("NEW0001", None, b"ABCDEFGHIJABCDEFGHIJ", None);
    next.credential.secret =
        oathdesk_vault::defaults::generated_secret(Default::default()).unwrap();
    session
        .add_generated_token(next, "POST /api/v1/tokens generate", NOW + 60)
        .unwrap();
    assert_eq!(
        session.seed_provenance(&serial("OLD0001")).unwrap(),
        Some(old)
    );
    assert_eq!(session.seed_provenance(&serial("OLD0002")).unwrap(), None);
    assert!(session.verify_rows().unwrap().bad.is_empty());
    drop(session);
    // The old token's provenance is a record now (an edit of it is seen).
    forge_provenance(&f);
    let mut session = common::session(&f.location);
    assert!(matches!(
        session.seed_provenance(&serial("OLD0001")),
        Err(Error::Altered { .. })
    ));
}
