//! OpenID Connect sign-in: mappings decide the role, only roles without a
//! key, accounts made once and found again by the provider's subject.

mod common;

use common::{Backend, Fixture, NOW, TEST_KDF as KDF};
use oathdesk_vault::crypto::VaultKey;
use oathdesk_vault::oidc::OidcIdentity;
use oathdesk_vault::web::SETUP_OPERATOR;
use oathdesk_vault::{Error, Session, Unlock, Vault};

const DAY: u64 = 86_400;

on_both_backends!(
    a_mapped_group_signs_in_once_made_and_then_found,
    no_mapping_no_access_and_key_roles_never_map,
    a_mapping_written_without_the_key_is_caught,
);

fn set_up(backend: Backend) -> (Fixture, Session, VaultKey) {
    let fixture = Fixture::empty(backend);
    Vault::create_at(&fixture.location, SETUP_OPERATOR, b"setup-code", KDF, NOW).unwrap();
    let mut setup = Vault::open_at(&fixture.location)
        .unwrap()
        .unlock(SETUP_OPERATOR, Unlock::Passphrase(b"setup-code"))
        .unwrap();
    setup
        .complete_setup("ada", b"ada's long password", KDF, DAY, NOW)
        .unwrap();
    let mut admin = Vault::open_at(&fixture.location)
        .unwrap()
        .unlock("ada", Unlock::Passphrase(b"ada's long password"))
        .unwrap();
    let key = admin.unseal_key("test", NOW).unwrap();
    (fixture, admin, key)
}

fn identity(subject: &str, username: &str, groups: &[&str]) -> OidcIdentity {
    OidcIdentity {
        issuer: "https://login.example/tenant/v2.0".into(),
        subject: subject.into(),
        username: username.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        app_roles: Vec::new(),
        expires_at: NOW + 3600,
    }
}

fn sign_in(fixture: &Fixture, who: &OidcIdentity, key: &VaultKey) -> Result<[u8; 32], Error> {
    Vault::open_at(&fixture.location)
        .unwrap()
        .oidc_sign_in(who, key, DAY, NOW)
        .map(|(secret, _)| *secret)
}

fn a_mapped_group_signs_in_once_made_and_then_found(backend: Backend) {
    let (fixture, mut admin, key) = set_up(backend);
    admin.oidc_map("g-helpdesk", "helpdesk", NOW).unwrap();
    let bob = identity("sub-bob", "bob@example.org", &["g-other", "g-helpdesk"]);
    let (secret, grant) = Vault::open_at(&fixture.location)
        .unwrap()
        .oidc_sign_in(&bob, &key, DAY, NOW)
        .unwrap();
    assert_eq!(grant.role, "helpdesk");
    assert_eq!(grant.account, "bob@example.org");
    // The session ends with the provider's token, not a day later.
    assert_eq!(grant.expires_at, NOW + 3600);
    // It opens only at a console holding the key, in the mapped role.
    let opened = Vault::open_at(&fixture.location).unwrap().open_grant(
        &secret,
        Some(1800),
        NOW + 1,
        Some(&key),
    );
    let (session, _) = opened.unwrap();
    assert_eq!(session.role().name(), "helpdesk");
    assert!(matches!(
        Vault::open_at(&fixture.location)
            .unwrap()
            .open_grant(&secret, Some(1800), NOW + 1, None),
        Err(Error::Sealed)
    ));
    // Nothing unlocks the operator the sign-in made.
    assert!(
        Vault::open_at(&fixture.location)
            .unwrap()
            .unlock("bob@example.org", Unlock::Passphrase(b"anything"))
            .is_err()
    );
    // Same subject under a new name: the same account, the role follows
    // the mapping, and it is audited.
    admin.oidc_map("g-audit", "auditor", NOW).unwrap();
    admin.oidc_unmap("g-helpdesk", NOW).unwrap();
    let renamed = identity("sub-bob", "robert@example.org", &["g-audit"]);
    let (_, grant) = Vault::open_at(&fixture.location)
        .unwrap()
        .oidc_sign_in(&renamed, &key, DAY, NOW)
        .unwrap();
    assert_eq!(grant.account, "bob@example.org");
    assert_eq!(grant.role, "auditor");
    let accounts = admin.web_accounts().unwrap();
    assert_eq!(
        accounts.iter().filter(|a| a.created_by == "oidc").count(),
        1
    );
    let actions: Vec<String> = admin
        .audit_entries()
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {}", e.operator, e.action, e.outcome))
        .collect();
    assert!(
        actions.contains(&"bob@example.org web.account.add ok".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"bob@example.org web.account.update ok".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"ada oidc.map ok".to_owned()),
        "{actions:?}"
    );
}

fn no_mapping_no_access_and_key_roles_never_map(backend: Backend) {
    let (fixture, mut admin, key) = set_up(backend);
    let eve = identity("sub-eve", "eve@example.org", &["g-x"]);
    assert!(matches!(
        sign_in(&fixture, &eve, &key),
        Err(Error::SignInRefused(_))
    ));
    // Unknown users make no account; the refusal is audited.
    assert_eq!(admin.web_accounts().unwrap().len(), 1);
    assert!(
        admin
            .audit_entries()
            .unwrap()
            .iter()
            .any(|e| e.action == "web.login"
                && e.outcome == "refused"
                && e.operator == "eve@example.org")
    );
    for role in ["admin", "provisioner"] {
        let refused = admin.oidc_map("g-x", role, NOW).unwrap_err();
        assert!(refused.to_string().contains("holds a key"), "{refused}");
    }
    // Two roles at once: refused rather than guessed.
    admin.oidc_map("g-x", "helpdesk", NOW).unwrap();
    admin.oidc_map("g-y", "auditor", NOW).unwrap();
    let both = identity("sub-eve", "eve@example.org", &["g-x", "g-y"]);
    let refused = sign_in(&fixture, &both, &key).unwrap_err();
    assert!(
        refused.to_string().contains("more than one role"),
        "{refused}"
    );
    // A name an operator has already is never taken over.
    let ada = identity("sub-mallory", "ada", &["g-x"]);
    let refused = sign_in(&fixture, &ada, &key).unwrap_err();
    assert!(refused.to_string().contains("exists already"), "{refused}");
    // An expired token opens nothing.
    let mut late = identity("sub-eve", "eve@example.org", &["g-x"]);
    late.expires_at = NOW;
    assert!(matches!(
        sign_in(&fixture, &late, &key),
        Err(Error::Unauthenticated(_))
    ));
    // A console with a key that is not this vault's is sealed.
    let other = VaultKey::generate().unwrap();
    let eve = identity("sub-eve", "eve@example.org", &["g-x"]);
    assert!(matches!(
        sign_in(&fixture, &eve, &other),
        Err(Error::Sealed)
    ));
    let listed: Vec<(String, String)> = admin
        .oidc_mappings()
        .unwrap()
        .into_iter()
        .map(|m| (m.claim, m.role))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("g-x".into(), "helpdesk".into()),
            ("g-y".into(), "auditor".into())
        ]
    );
    assert!(matches!(
        admin.oidc_unmap("g-z", NOW),
        Err(Error::NotFound(_))
    ));
}

fn a_mapping_written_without_the_key_is_caught(backend: Backend) {
    let (fixture, mut admin, key) = set_up(backend);
    admin.oidc_map("g-audit", "auditor", NOW).unwrap();
    // Someone with database access but no key promotes the group.
    fixture.execute(
        "UPDATE records SET body = replace(body, '\"auditor\"', '\"helpdesk\"') \
         WHERE kind = 'oidc_map'",
    );
    let who = identity("sub-x", "x@example.org", &["g-audit"]);
    assert!(matches!(
        sign_in(&fixture, &who, &key),
        Err(Error::Altered { .. })
    ));
}
