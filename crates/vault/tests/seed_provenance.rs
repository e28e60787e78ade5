//! Seed provenance: a generated seed's RNG, operator, command and time are
//! in its `token.add` audit entry and readable for the token; imported
//! seeds have none. On both databases.

mod common;

use common::*;

use oathdesk_vault::SEED_RNG;

on_both_backends!(generated_seeds_say_where_they_came_from);

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
}
