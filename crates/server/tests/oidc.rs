//! Sign-in through an OpenID Connect provider — the Entra simulator, for
//! real: discovery, PKCE, the code exchange, RS256 ID tokens and their
//! keys. Over HTTP for the refusals, in headless Chromium for the way a
//! person signs in and out.

mod common;
#[path = "common/browser.rs"]
mod kit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fantoccini::Locator;
use kit::{browser, click, driver, wait_for_path};
use oathdesk_entra::auth::ClientCredential;
use oathdesk_entra_sim::{IdTokenFault, Simulator};
use oathdesk_server::oidc::{OidcClient, OidcConfig};
use oathdesk_server::{Settings, router};
use zeroize::Zeroizing;

const CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";
const CLIENT_SECRET: &str = "sim-oidc-secret";
const HELPDESK_GROUP: &str = "0a1b2c3d-0000-4000-8000-00000000d35c";

struct Console {
    base: String,
    sim: Simulator,
    fixture: Fixture,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A staffed, unsealed console that signs in through the simulator; bob is
/// in the mapped helpdesk group, eve in no mapped group.
async fn console(refetch_every: Duration) -> Console {
    let sim = Simulator::start();
    sim.add_app(CLIENT_ID, CLIENT_SECRET, &[]);
    sim.add_user("bob@contoso.example", false);
    sim.add_user("eve@contoso.example", false);
    sim.set_groups("bob@contoso.example", &["some-other-group", HELPDESK_GROUP]);
    sim.set_groups("eve@contoso.example", &["some-other-group"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let base = format!("http://{address}");
    let mut client = OidcClient::new(OidcConfig {
        issuer: sim.oidc_issuer(),
        client_id: CLIENT_ID.into(),
        credential: Some(ClientCredential::Secret(Zeroizing::new(
            CLIENT_SECRET.into(),
        ))),
        redirect_url: format!("{base}/oidc/callback"),
    });
    client.refetch_every = refetch_every;
    let fixture = staffed().with_settings(Settings {
        oidc: Some(Arc::new(client)),
        ..settings()
    });
    admin_session(&fixture)
        .oidc_map(HELPDESK_GROUP, "helpdesk", now())
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(fixture.state.clone());
    tokio::spawn(async move {
        oathdesk_server::serve(listener, app, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Console {
        base,
        sim,
        fixture,
        _stop: stop,
    }
}

struct Answer {
    status: u16,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

/// One request, no redirects followed.
async fn get(url: String, cookie: Option<String>) -> Answer {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut request = agent.get(&url);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        let mut response = request.call().unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let location = header("location");
        let cookie = header("set-cookie").map(|c| c.split(';').next().unwrap().to_owned());
        Answer {
            status: response.status().as_u16(),
            location,
            cookie,
            body: response.body_mut().read_to_string().unwrap(),
        }
    })
    .await
    .unwrap()
}

/// The browser's part of a sign-in: to the provider and back; returns the
/// callback URL and the callback's answer.
async fn sign_in_as(console: &Console, upn: &str) -> (String, Answer) {
    console.sim.oidc_sign_in_as(upn);
    let start = get(format!("{}/oidc/login", console.base), None).await;
    assert_eq!(start.status, 303, "{}", start.body);
    let authorize = start.location.unwrap();
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce="));
    let provider = get(authorize, None).await;
    assert_eq!(provider.status, 302, "{}", provider.body);
    let callback = provider.location.unwrap();
    assert!(callback.starts_with(&format!("{}/oidc/callback?", console.base)));
    let answer = get(callback.clone(), None).await;
    (callback, answer)
}

async fn me(console: &Console, cookie: &str) -> serde_json::Value {
    let answer = get(format!("{}/api/v1/me", console.base), Some(cookie.into())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mapped_group_signs_in_with_its_role_and_others_are_refused() {
    let console = console(Duration::from_secs(60)).await;
    let (callback, answer) = sign_in_as(&console, "bob@contoso.example").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cookie = answer.cookie.expect("a session cookie");
    let who = me(&console, &cookie).await;
    assert_eq!(who["account"], "bob@contoso.example", "{who}");
    assert_eq!(who["role"], "helpdesk", "{who}");
    // The answer works once: its state is spent.
    let again = get(callback, None).await;
    assert_eq!(again.status, 403);
    assert!(again.body.contains("used already"), "{}", again.body);
    // Nobody mapped eve's groups: refused, and no account made.
    let (_, refused) = sign_in_as(&console, "eve@contoso.example").await;
    assert_eq!(refused.status, 403);
    assert!(refused.cookie.is_none());
    assert!(
        refused.body.contains("none of their groups"),
        "{}",
        refused.body
    );
    let accounts = admin_session(&console.fixture).web_accounts().unwrap();
    assert!(accounts.iter().any(|a| a.name == "bob@contoso.example"));
    assert!(!accounts.iter().any(|a| a.name == "eve@contoso.example"));
}

#[tokio::test(flavor = "multi_thread")]
async fn spoiled_id_tokens_are_refused() {
    let console = console(Duration::from_secs(60)).await;
    // A good sign-in first (its ID token is the one replayed below; the
    // keys are fetched now, so an unpublished key meets the rate limit).
    let (_, first) = sign_in_as(&console, "bob@contoso.example").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let key_fetches = || {
        console
            .sim
            .log()
            .iter()
            .filter(|l| l.path.contains("/discovery/v2.0/keys"))
            .count()
    };
    let fetched = key_fetches();
    for (fault, words) in [
        (IdTokenFault::Tampered, "signature does not match"),
        (IdTokenFault::Expired, "expired"),
        (IdTokenFault::WrongAudience, "another app"),
        (IdTokenFault::Replayed, "nonce does not match"),
        (IdTokenFault::UnpublishedKey, "does not publish"),
    ] {
        console.sim.spoil_next_id_token(fault);
        let (_, answer) = sign_in_as(&console, "bob@contoso.example").await;
        assert_eq!(answer.status, 403, "{fault:?}: {}", answer.body);
        assert!(answer.cookie.is_none(), "{fault:?}");
        assert!(answer.body.contains(words), "{fault:?}: {}", answer.body);
    }
    // An unknown kid within the minute did not fetch the keys again.
    assert_eq!(key_fetches(), fetched);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_signing_key_is_fetched_and_sessions_end_with_the_token() {
    let console = console(Duration::ZERO).await;
    let (_, first) = sign_in_as(&console, "bob@contoso.example").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let kid = console.sim.rotate_signing_key();
    assert_eq!(kid, console.sim.signing_kid());
    // A short-lived token: the session lasts no longer than it.
    console.sim.set_id_token_lifetime(90);
    let (_, second) = sign_in_as(&console, "bob@contoso.example").await;
    assert_eq!(second.status, 200, "{}", second.body);
    let cookie = second.cookie.unwrap();
    let who = me(&console, &cookie).await;
    let expires_at = who["expires_at"].as_u64().unwrap();
    assert!(expires_at <= now() + 90, "{who}");
    // Sign-out ends the provider's session too.
    let csrf = who["csrf"].as_str().unwrap().to_owned();
    let base = console.base.clone();
    let out: serde_json::Value = tokio::task::spawn_blocking(move || {
        let mut response = ureq::post(format!("{base}/api/v1/logout"))
            .header("Cookie", cookie)
            .header("X-CSRF-Token", csrf)
            .send_empty()
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&response.body_mut().read_to_string().unwrap())
            .unwrap()
    })
    .await
    .unwrap();
    let end = out["end_session"].as_str().unwrap();
    assert!(
        end.starts_with(&format!(
            "{}/{}/oauth2/v2.0/logout?",
            console.sim.url(),
            console.sim.tenant()
        )),
        "{end}"
    );
    assert!(end.contains("post_logout_redirect_uri="), "{end}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_console_signs_nobody_in() {
    let console = console(Duration::from_secs(60)).await;
    console.fixture.state.seal();
    let answer = get(format!("{}/oidc/login", console.base), None).await;
    assert_eq!(answer.status, 503);
    assert!(answer.body.contains("sealed"), "{}", answer.body);
}

// ----- in Chromium -------------------------------------------------------------

// The chromedriver and Chromium helpers are the shared kit's (`kit::`).

#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_staff_sign_in_and_out_through_their_organisation() {
    let console = console(Duration::from_secs(60)).await;
    let driver = driver();
    let client = browser(&driver).await;
    // Bob, in the mapped group, lands on the helpdesk page as helpdesk.
    console.sim.oidc_sign_in_as("bob@contoso.example");
    client
        .goto(&format!("{}/login", console.base))
        .await
        .unwrap();
    click(&client, "#oidc-sign-in").await;
    wait_for_path(&client, "/helpdesk").await;
    let page = client.source().await.unwrap();
    assert!(
        page.contains("bob@contoso.example"),
        "the page names who is signed in"
    );
    // Signing out ends the provider's session too and comes back to sign-in.
    click(&client, "#sign-out").await;
    wait_for_path(&client, "/login").await;
    assert_eq!(
        console.sim.oidc_sign_outs(),
        vec![format!("{}/login", console.base)]
    );
    // Eve's groups are not mapped: the page says so, and no session.
    console.sim.oidc_sign_in_as("eve@contoso.example");
    click(&client, "#oidc-sign-in").await;
    wait_for_path(&client, "/oidc/callback").await;
    let message = client
        .find(Locator::Css("#oidc-message"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(message.contains("none of their groups"), "{message}");
    client.goto(&format!("{}/", console.base)).await.unwrap();
    wait_for_path(&client, "/login").await;
    client.close().await.unwrap();
}
