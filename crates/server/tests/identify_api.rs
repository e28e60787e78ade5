//! `POST /api/v1/identify` keeps its index between requests: the second
//! search opens no secret, and a change by another process is seen by the
//! next one (counted with the cache's own counter, not timed).

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// A signed-in helpdesk operator: session cookie and CSRF token.
struct Desk {
    app: Router,
    cookie: String,
    csrf: String,
}

async fn send(
    app: &Router,
    cookie: Option<&str>,
    csrf: Option<&str>,
    path: &str,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    if let Some(csrf) = csrf {
        request = request.header("x-csrf-token", csrf);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        cookie,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl Desk {
    async fn sign_in(app: Router) -> Desk {
        let (status, cookie, body) = send(
            &app,
            None,
            None,
            "/api/v1/login",
            json!({"name": HELPDESK.0, "password": HELPDESK.1}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Desk {
            app,
            cookie: cookie.unwrap(),
            csrf: body["csrf"].as_str().unwrap().to_owned(),
        }
    }

    /// The references of the credentials that show `seed`'s codes at `at`.
    async fn identify(&self, seed: &[u8], at: u64) -> Vec<String> {
        let first = totp(seed).generate_at(at).unwrap().to_string();
        let second = totp(seed).generate_at(at + 30).unwrap().to_string();
        let (status, _, body) = send(
            &self.app,
            Some(&self.cookie),
            Some(&self.csrf),
            "/api/v1/identify",
            json!({"codes": [first, second], "at": at, "window": 1}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["credential"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn seed(n: u8) -> Vec<u8> {
    vec![n; 20]
}

#[tokio::test]
async fn identify_keeps_its_index_and_sees_other_processes_changes() {
    let fixture = staffed();
    for n in 1..=3u8 {
        ship_token(
            &fixture,
            &format!("21000000{n}"),
            &format!("u{n}@contoso.com"),
            &seed(n),
        );
    }
    let desk = Desk::sign_in(fixture.app()).await;
    let at = now();
    assert_eq!(desk.identify(&seed(2), at).await, ["210000002"]);
    assert_eq!(fixture.state.identify.secrets_opened(), 3);
    assert_eq!(desk.identify(&seed(3), at).await, ["210000003"]);
    // The second search opened no secret: the index was kept.
    assert_eq!(fixture.state.identify.secrets_opened(), 3);

    // Another process adds a token and purges one.
    ship_token(&fixture, "210000004", "u4@contoso.com", &seed(4));
    assert_eq!(desk.identify(&seed(4), at).await, ["210000004"]);
    assert_eq!(fixture.state.identify.secrets_opened(), 4);
    admin_session(&fixture)
        .purge(&"210000001".parse().unwrap(), now())
        .unwrap();
    assert!(desk.identify(&seed(1), at).await.is_empty());
    assert_eq!(fixture.state.identify.len(), 3);

    // Sealing drops the index.
    fixture.state.seal();
    assert_eq!(fixture.state.identify.generation(), None);
    assert_eq!(fixture.state.identify.memory_bytes(), 0);
}
