//! Behind a load balancer: the per-address sign-in throttle counts the
//! client the trusted balancer forwarded for, not the balancer, and a
//! client that is not a trusted proxy cannot choose its address.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::*;
use oathdesk_server::{AppState, Settings, router};
use oathdesk_vault::web::ThrottlePolicy;
use serde_json::json;
use tower::ServiceExt;

async fn login(
    app: &axum::Router,
    peer: &str,
    forwarded_for: Option<&str>,
    (name, password): (&str, &str),
) -> StatusCode {
    let mut request = Request::builder()
        .method("POST")
        .uri("/api/v1/login")
        .header(header::HOST, "desk.contoso.com")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    let mut request = request
        .body(Body::from(
            json!({"name": name, "password": password}).to_string(),
        ))
        .unwrap();
    let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn the_address_throttle_counts_the_client_behind_a_trusted_balancer() {
    let fixture = staffed();
    let settings = Settings {
        client_throttle: ThrottlePolicy {
            max_failures: 3,
            window: 900,
            lockout: 900,
        },
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..settings()
    };
    let app = router(Arc::new(AppState::new(fixture.path.clone(), settings)));
    let balancer = "10.0.0.2";

    // Three failures from one client behind the balancer (different names,
    // so that no account's own throttle is reached) lock that client out...
    for name in ["nobody-1", "nobody-2"] {
        let status = login(&app, balancer, Some("203.0.113.5"), (name, "wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let third = login(&app, balancer, Some("203.0.113.5"), ("nobody-3", "wrong")).await;
    assert_eq!(third, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        login(&app, balancer, Some("203.0.113.5"), ADMIN).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but not the balancer's other clients, nor the balancer itself.
    assert_eq!(
        login(&app, balancer, Some("203.0.113.6"), ADMIN).await,
        StatusCode::OK
    );
    assert_eq!(
        login(&app, balancer, Some("1.2.3.4, 203.0.113.6"), HELPDESK).await,
        StatusCode::OK,
        "what the client wrote itself (1.2.3.4) is not its address"
    );
    assert_eq!(login(&app, balancer, None, AUDITOR).await, StatusCode::OK);

    // A peer that is not a trusted proxy is counted as itself, whatever
    // X-Forwarded-For it sends.
    let outsider = "198.51.100.1";
    for (i, claimed) in ["203.0.113.7", "203.0.113.8", "203.0.113.9"]
        .iter()
        .enumerate()
    {
        let name = format!("stranger-{i}");
        login(&app, outsider, Some(claimed), (&name, "wrong")).await;
    }
    assert_eq!(
        login(&app, outsider, Some("203.0.113.10"), PROVISIONER).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
