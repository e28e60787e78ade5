//! Self-service delivery in a real headless Chromium, driven through
//! chromedriver: the user opens their one-time link, types the code their
//! token shows, and the vault marks it delivered and purges the secret — or
//! refuses a released code, locks after wrong codes, and closes an expired
//! or used link. These tests fail (never skip) when the browser is missing.

mod common;
#[path = "common/browser.rs"]
mod kit;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, Locator};
use kit::{BROWSER, browser, driver, screenshot};
use oathdesk_otp::Verifier;
use oathdesk_vault::model::{Custody, State};

async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element '{css}' within 10 s: {e}"))
        .text()
        .await
        .unwrap()
}

/// Types a code into the page's form and sends it (a plain form post).
async fn type_code(client: &Client, code: &str) {
    let field = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#code"))
        .await
        .expect("the code field");
    field.clear().await.unwrap();
    field.send_keys(code).await.unwrap();
    client
        .find(Locator::Css("#d-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The answer is a new page: wait until the old field is gone.
    let started = Instant::now();
    while field.prop("id").await.is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "no answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const USER: &str = "bob@contoso.com";

/// A console with Bob's token shipped to him, serving on a loopback port.
async fn console(serial: &str) -> (Fixture, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let fixture = staffed();
    admin_session(&fixture)
        .add_user(USER, Some("Bob Builder"), now())
        .unwrap();
    ship_token(&fixture, serial, USER, SEED);
    let (address, stop) = fixture.serve().await;
    (fixture, address, stop)
}

/// A link for Bob's token, made by the admin (the API's route is tested
/// in `selfservice_api`).
fn link(fixture: &Fixture, base: &str, serial: &str) -> String {
    let link = admin_session(fixture)
        .create_delivery_link(&serial.parse().unwrap(), now())
        .unwrap();
    format!("{base}/d/{}", link.secret)
}

fn token_state(fixture: &Fixture, serial: &str) -> (State, Custody) {
    let (token, _) = admin_session(fixture)
        .token(&serial.parse().unwrap())
        .unwrap();
    (token.state, token.custody)
}

/// A code the token does not show now (nor ±10 steps around).
fn wrong_code() -> String {
    let totp = totp(SEED);
    let step = now() / 30;
    let near: Vec<String> = (step - 11..=step + 11)
        .map(|s| totp.at_counter(s, 0).code.to_string())
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_code_delivers_and_purges_and_the_link_works_once() {
    let _one = BROWSER.lock().await;
    let (fixture, address, _stop) = console("2300001").await;
    let base = format!("http://{address}");
    let url = link(&fixture, &base, "2300001");
    let driver = driver();
    let client = browser(&driver).await;
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&url).await.unwrap();
    assert_eq!(text_of(&client, "h1").await, "Hello Bob,");
    assert_eq!(text_of(&client, "#d-serial").await, "2300001");
    // Nothing else about Bob: not his address, not his full name.
    let page = client.source().await.unwrap();
    assert!(!page.contains(USER) && !page.contains("Builder"), "{page}");
    // On a phone the form fits: no sideways scrolling.
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than 390 px"
    );
    screenshot(&client, "self-service-390.png").await;
    client.set_window_size(1366, 900).await.unwrap();
    screenshot(&client, "self-service-1366.png").await;
    client.set_window_size(390, 844).await.unwrap();

    let code = totp(SEED).generate_at(now()).unwrap().to_string();
    type_code(&client, &code).await;
    assert!(
        text_of(&client, "#d-done")
            .await
            .contains("Your token is confirmed")
    );
    screenshot(&client, "self-service-done-390.png").await;
    assert_eq!(
        token_state(&fixture, "2300001"),
        (State::Delivered, Custody::Purged)
    );
    let entries = admin_session(&fixture).audit_entries().unwrap();
    let delivered = entries
        .iter()
        .find(|e| e.action == "token.deliver" && e.outcome == "ok")
        .unwrap();
    assert!(
        delivered.operator.starts_with("self-service link "),
        "{delivered:?}"
    );

    // The same link again: used.
    client.goto(&url).await.unwrap();
    assert!(
        text_of(&client, "#d-closed")
            .await
            .contains("was used already")
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_code_is_refused_and_wrong_codes_lock_the_link() {
    let _one = BROWSER.lock().await;
    let (fixture, address, _stop) = console("2300002").await;
    let base = format!("http://{address}");
    admin_session(&fixture)
        .set_setting("selfservice.max_wrong_codes", 3, now())
        .unwrap();
    let url = link(&fixture, &base, "2300002");
    // The code of this step was shown at the desk: it proves nothing.
    let released = admin_session(&fixture)
        .enrolment_code(&"2300002".parse().unwrap(), Verifier::Entra, now())
        .unwrap();
    let driver = driver();
    let client = browser(&driver).await;
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&url).await.unwrap();
    type_code(&client, &released.code).await;
    let said = text_of(&client, "#d-message").await;
    assert!(said.contains("was given out by the helpdesk"), "{said}");
    assert_eq!(
        token_state(&fixture, "2300002"),
        (State::Shipped, Custody::Held)
    );

    let wrong = wrong_code();
    type_code(&client, &wrong).await;
    assert!(
        text_of(&client, "#d-message")
            .await
            .contains("does not match")
    );
    assert!(
        text_of(&client, "#d-attempts")
            .await
            .contains("1 wrong code more")
    );
    screenshot(&client, "self-service-wrong-390.png").await;
    type_code(&client, &wrong).await;
    assert!(
        text_of(&client, "#d-closed")
            .await
            .contains("locked after too many wrong codes")
    );
    // Locked: the right code does nothing any more.
    client.goto(&url).await.unwrap();
    assert!(text_of(&client, "#d-closed").await.contains("locked"));
    assert_eq!(
        token_state(&fixture, "2300002"),
        (State::Shipped, Custody::Held)
    );
    let refusals = admin_session(&fixture)
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "token.deliver" && e.outcome == "refused")
        .count();
    assert_eq!(refusals, 3);
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_and_a_replaced_one_are_closed() {
    let _one = BROWSER.lock().await;
    let (fixture, address, _stop) = console("2300003").await;
    let base = format!("http://{address}");
    admin_session(&fixture)
        .set_setting("selfservice.link_lifetime_seconds", 1, now())
        .unwrap();
    let expired = link(&fixture, &base, "2300003");
    std::thread::sleep(Duration::from_millis(1100));
    let driver = driver();
    let client = browser(&driver).await;
    client.set_window_size(1366, 900).await.unwrap();
    client.goto(&expired).await.unwrap();
    assert!(text_of(&client, "#d-closed").await.contains("has expired"));
    screenshot(&client, "self-service-expired-1366.png").await;
    admin_session(&fixture)
        .set_setting("selfservice.link_lifetime_seconds", 3600, now())
        .unwrap();
    let first = link(&fixture, &base, "2300003");
    let second = link(&fixture, &base, "2300003");
    client.goto(&first).await.unwrap();
    assert!(text_of(&client, "#d-closed").await.contains("used already"));
    client.goto(&second).await.unwrap();
    assert_eq!(text_of(&client, "#d-serial").await, "2300003");
    client.goto(&format!("{base}/d/not-a-link")).await.unwrap();
    assert!(text_of(&client, "#d-closed").await.contains("not known"));
    // A console without the vault key cannot confirm, and says so.
    fixture.state.seal();
    client.goto(&second).await.unwrap();
    assert!(
        text_of(&client, "#d-closed").await.contains("Try again"),
        "sealed"
    );
    client.close().await.unwrap();
}
