//! `entra users sync` through the library: Entra's profiles become the
//! vault's data on file, page by page, with their source; a user without a
//! manager, users the vault does not have, and values Entra dropped.

use std::time::Duration;

use oathdesk_entra::auth::{Authenticator, ClientCredential, Endpoints, SignIn, TokenCache};
use oathdesk_entra::directory::{SOURCE, sync_users};
use oathdesk_entra::graph::Graph;
use oathdesk_entra::http::{Http, RetryPolicy};
use oathdesk_entra_sim::{Simulator, UserProfile, permissions};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::{Unlock, Vault};
use zeroize::Zeroizing;

const APP: &str = "11111111-2222-4333-8444-555555555555";
const SECRET: &str = "app secret";
const NOW: u64 = 1_750_000_000;

#[test]
fn directory_profiles_become_data_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let kdf = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    Vault::create(&path, "alice", b"pass", kdf, NOW).unwrap();
    let mut session = Vault::open(&path)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"pass"))
        .unwrap();
    let sim = Simulator::start();
    sim.add_app(APP, SECRET, &permissions::ALL);
    // 250 directory users: the vault knows the first 120.
    let mut ids = Vec::new();
    for i in 0..250 {
        let profile = UserProfile {
            display_name: Some(format!("User {i}")),
            mobile_phone: (i != 7).then(|| format!("+1 555 01{i:03}")),
            business_phones: vec![format!("+1 425 02{i:03}")],
            employee_id: Some(format!("E{i:05}")),
            department: Some("Sales".into()),
            ..UserProfile::default()
        };
        ids.push(sim.add_user_with_profile(&format!("user{i}@contoso.com"), &profile));
        if i < 120 {
            session
                .add_user(&format!("user{i}@contoso.com"), None, NOW)
                .unwrap();
        }
    }
    // Everyone but user0 (the boss) and user3 (manager missing) reports to user0.
    for (i, id) in ids.iter().enumerate().skip(1) {
        if i != 3 {
            assert!(sim.set_manager(id, Some(&ids[0])));
        }
    }
    let http = Http::new(RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    });
    let sign_in = SignIn::new(
        &http,
        Endpoints::new(&sim.url(), &sim.url(), sim.tenant()).unwrap(),
        APP,
        Some(ClientCredential::Secret(Zeroizing::new(SECRET.into()))),
    )
    .unwrap();
    let auth = Authenticator::new(sign_in, false, TokenCache::default());
    let graph = Graph::new(&http, &auth);

    let report = sync_users(&mut session, &graph, false, Some(100), &|| NOW).unwrap();
    assert_eq!(report.directory_users, 250);
    assert!(report.pages >= 3, "{report:?}");
    assert_eq!(report.facts.updated, 120);
    assert_eq!(report.facts.not_in_vault.len(), 130);
    assert!(
        report
            .facts
            .not_in_vault
            .contains(&"user249@contoso.com".to_owned())
    );
    assert_eq!(report.without_manager, 2, "user0 and user3");

    let facts = session.user_facts("user5@contoso.com", NOW).unwrap();
    assert_eq!(facts["mobile_phone"].value, "+1 555 01005");
    assert_eq!(facts["office_phone"].value, "+1 425 02005");
    assert_eq!(facts["manager"].value, "user0@contoso.com");
    assert_eq!(facts["mobile_phone"].source, SOURCE);
    assert!(!facts.contains_key("mail"));
    let user3 = session.user_facts("user3@contoso.com", NOW).unwrap();
    assert!(!user3.contains_key("manager"), "{user3:?}");
    assert!(
        !session
            .user_facts("user7@contoso.com", NOW)
            .unwrap()
            .contains_key("mobile_phone")
    );

    // Run again: nothing changed. Then Entra drops user5's mobile: so does the vault.
    let again = sync_users(&mut session, &graph, false, None, &|| NOW + 60).unwrap();
    assert_eq!((again.facts.updated, again.facts.unchanged), (0, 120));
    let five = UserProfile {
        mobile_phone: None,
        business_phones: vec!["+1 425 02005".into()],
        employee_id: Some("E00005".into()),
        department: Some("Sales".into()),
        display_name: Some("User 5".into()),
        ..UserProfile::default()
    };
    assert!(sim.set_profile(&ids[5], &five));
    let third = sync_users(&mut session, &graph, true, None, &|| NOW + 120).unwrap();
    assert_eq!(third.facts.updated, 1 + 130, "user5, and the created ones");
    assert_eq!(third.facts.created, 130);
    assert!(
        !session
            .user_facts("user5@contoso.com", NOW)
            .unwrap()
            .contains_key("mobile_phone")
    );
    assert_eq!(session.users().unwrap().len(), 250);
}
