//! Self-service delivery links through the vault library, on both
//! databases: a right code delivers and purges, a released code is refused
//! with `token deliver`'s words, wrong codes lock the link, links expire
//! and work once, and every record is signed.

mod common;

use common::*;

use oathdesk_vault::model::{Custody, State};
use oathdesk_vault::{Error, LinkProblem, Vault};

on_both_backends!(
    a_link_confirms_a_delivery_once,
    a_released_code_is_refused_and_counted,
    wrong_codes_lock_the_link,
    links_expire_and_a_new_one_replaces_the_old,
    an_altered_link_is_refused,
);

const SECRET_SEED: &[u8] = b"the users own token!";

/// Ada's token 2200001 is shipped to her; alice holds the console key.
fn shipped(backend: Backend) -> (Fixture, oathdesk_vault::crypto::VaultKey) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_user("ada@contoso.com", Some("Ada Lovelace"), NOW)
        .unwrap();
    s.add_token(
        token("2200001", None, SECRET_SEED, Some("ada@contoso.com")),
        NOW,
    )
    .unwrap();
    s.transition(&serial("2200001"), State::Shipped, None, NOW)
        .unwrap();
    let key = s.unseal_key("test", NOW).unwrap();
    (f, key)
}

fn page(
    f: &Fixture,
    key: &oathdesk_vault::crypto::VaultKey,
    secret: &str,
    now: u64,
) -> Result<oathdesk_vault::LinkPage, LinkProblem> {
    Vault::open_at(&f.location)
        .unwrap()
        .delivery_link_page(key, secret, now)
        .unwrap()
        .0
}

fn redeem(
    f: &Fixture,
    key: &oathdesk_vault::crypto::VaultKey,
    secret: &str,
    code: &str,
    now: u64,
) -> Result<oathdesk_vault::Delivery, Error> {
    Vault::open_at(&f.location)
        .unwrap()
        .redeem_delivery_link(key, secret, code, now)
        .0
}

fn a_link_confirms_a_delivery_once(backend: Backend) {
    let (f, key) = shipped(backend);
    let link = session(&f.location)
        .create_delivery_link(&serial("2200001"), NOW)
        .unwrap();
    assert_eq!(link.first_name.as_deref(), Some("Ada"));
    assert_eq!(link.expires_at, NOW + 14 * 86_400, "the default lifetime");
    assert!(
        !format!("{link:?}").contains(&link.secret),
        "Debug hides it"
    );
    let shown = page(&f, &key, &link.secret, NOW + 60).unwrap();
    assert_eq!(shown.first_name.as_deref(), Some("Ada"));
    assert_eq!(shown.serial, "2200001");
    assert_eq!(shown.attempts_left, 5);
    // Typed in capitals with dashes, it is the same link.
    let typed = link
        .secret
        .to_uppercase()
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("-");
    let delivery = redeem(&f, &key, &typed, &code_at(SECRET_SEED, NOW + 60), NOW + 60).unwrap();
    assert!(delivery.purged);
    let mut s = session(&f.location);
    let (token, events) = s.token(&serial("2200001")).unwrap();
    assert_eq!(token.state, State::Delivered);
    assert_eq!(token.custody, Custody::Purged);
    let actor = format!("self-service link {}", link.handle);
    assert!(events.iter().any(|e| e.operator == actor), "{events:?}");
    let entries = s.audit_entries().unwrap();
    let delivered = entries
        .iter()
        .find(|e| e.action == "token.deliver" && e.outcome == "ok")
        .expect("audited like a helpdesk delivery");
    assert_eq!(delivered.operator, actor);
    assert_eq!(delivered.user.as_deref(), Some("ada@contoso.com"));
    // The audit log never holds the link's secret.
    assert!(
        entries
            .iter()
            .all(|e| !format!("{e:?}").contains(&link.secret))
    );
    drop(s);
    // Once only.
    assert_eq!(
        page(&f, &key, &link.secret, NOW + 90),
        Err(LinkProblem::Used)
    );
    let again = redeem(
        &f,
        &key,
        &link.secret,
        &code_at(SECRET_SEED, NOW + 90),
        NOW + 90,
    );
    assert!(
        matches!(again, Err(Error::DeliveryLink(LinkProblem::Used))),
        "{again:?}"
    );
    assert!(session(&f.location).verify_rows().unwrap().bad.is_empty());
}

fn a_released_code_is_refused_and_counted(backend: Backend) {
    let (f, key) = shipped(backend);
    let mut s = session(&f.location);
    let link = s.create_delivery_link(&serial("2200001"), NOW).unwrap();
    let mut request = helpdesk("ada@contoso.com");
    request.token = Some(serial("2200001"));
    let grant = s.helpdesk_code(&request, NOW + 30).unwrap();
    drop(s);
    let err = redeem(&f, &key, &link.secret, &grant.code, NOW + 40).unwrap_err();
    assert!(matches!(err, Error::CodeReleased { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("this code was given out by the helpdesk")
    );
    assert_eq!(
        page(&f, &key, &link.secret, NOW + 40)
            .unwrap()
            .attempts_left,
        4
    );
    let (token, _) = session(&f.location).token(&serial("2200001")).unwrap();
    assert_eq!(token.state, State::Shipped);
    assert_eq!(token.custody, Custody::Held);
}

fn wrong_codes_lock_the_link(backend: Backend) {
    let (f, key) = shipped(backend);
    let mut s = session(&f.location);
    s.set_setting("selfservice.max_wrong_codes", 3, NOW)
        .unwrap();
    let link = s.create_delivery_link(&serial("2200001"), NOW).unwrap();
    drop(s);
    let right = code_at(SECRET_SEED, NOW + 100);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for attempt in 1..=2 {
        let err = redeem(&f, &key, &link.secret, wrong, NOW + 100).unwrap_err();
        assert!(
            matches!(err, Error::CodeMismatch { .. }),
            "{attempt}: {err:?}"
        );
    }
    // Letters are no attempt.
    let err = redeem(&f, &key, &link.secret, "12ab56", NOW + 100).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    let err = redeem(&f, &key, &link.secret, wrong, NOW + 100).unwrap_err();
    assert!(
        matches!(err, Error::DeliveryLink(LinkProblem::Locked)),
        "{err:?}"
    );
    // Locked: even the right code does nothing now.
    let err = redeem(&f, &key, &link.secret, &right, NOW + 100).unwrap_err();
    assert!(
        matches!(err, Error::DeliveryLink(LinkProblem::Locked)),
        "{err:?}"
    );
    let mut s = session(&f.location);
    assert_eq!(s.token(&serial("2200001")).unwrap().0.state, State::Shipped);
    let refusals = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "token.deliver" && e.outcome == "refused")
        .count();
    assert_eq!(refusals, 3, "each wrong code is audited");
}

fn links_expire_and_a_new_one_replaces_the_old(backend: Backend) {
    let (f, key) = shipped(backend);
    let mut s = session(&f.location);
    s.set_setting("selfservice.link_lifetime_seconds", 3600, NOW)
        .unwrap();
    let first = s.create_delivery_link(&serial("2200001"), NOW).unwrap();
    assert_eq!(first.expires_at, NOW + 3600);
    let late = NOW + 3600;
    assert_eq!(
        page(&f, &key, &first.secret, late),
        Err(LinkProblem::Expired)
    );
    let err = redeem(&f, &key, &first.secret, &code_at(SECRET_SEED, late), late).unwrap_err();
    assert!(
        matches!(err, Error::DeliveryLink(LinkProblem::Expired)),
        "{err:?}"
    );
    let second = s
        .create_delivery_link(&serial("2200001"), NOW + 10)
        .unwrap();
    let third = s
        .create_delivery_link(&serial("2200001"), NOW + 20)
        .unwrap();
    assert_eq!(
        page(&f, &key, &second.secret, NOW + 30),
        Err(LinkProblem::Used)
    );
    assert!(page(&f, &key, &third.secret, NOW + 30).is_ok());
    assert_eq!(
        page(&f, &key, "0000-0000-0000-0000-0000-0000", NOW),
        Err(LinkProblem::Unknown)
    );
    assert_eq!(page(&f, &key, "../etc", NOW), Err(LinkProblem::Unknown));
    // No link for a token that is not on its way to a user.
    s.add_token(token("2200002", None, SEED, None), NOW)
        .unwrap();
    let err = s.create_delivery_link(&serial("2200002"), NOW).unwrap_err();
    assert!(err.to_string().contains("cannot become delivered"), "{err}");
}

fn an_altered_link_is_refused(backend: Backend) {
    let (f, key) = shipped(backend);
    let link = session(&f.location)
        .create_delivery_link(&serial("2200001"), NOW)
        .unwrap();
    // Someone with database access pushes the expiry out and resets the count.
    f.execute(
        "UPDATE records SET body = replace(body, '\"wrong_codes\":0', '\"wrong_codes\":1') \
         WHERE kind = 'delivery_link'",
    );
    let outcome = Vault::open_at(&f.location)
        .unwrap()
        .delivery_link_page(&key, &link.secret, NOW);
    assert!(
        matches!(outcome, Err(Error::Altered { .. })),
        "{:?}",
        outcome.map(|o| o.0)
    );
}
