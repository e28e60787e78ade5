//! Running the console: `/healthz`, `/readyz` and `/metrics` — who may
//! read them, what they say when the console is sealed or its database is
//! gone, and that a scrape, parsed as Prometheus parses it, counts what
//! happened and names no one.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use oathdesk_server::{AppState, Settings, prepare, router};
use oathdesk_vault::AnyStore;
use oathdesk_vault::store::{Store, StoreTx};
use oathdesk_vault::testing::ScratchSchema;
use serde_json::{Value, json};
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8080";

struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
    set_cookie: Option<String>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// One request: `headers` as given, `peer` as the connection's address.
async fn send(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
    peer: Option<&str>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    if let Some(peer) = peer {
        let peer = SocketAddr::new(peer.parse().unwrap(), 40000);
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        set_cookie,
    }
}

async fn get(app: &Router, path: &str) -> Answer {
    send(app, Method::GET, path, None, &[], None).await
}

/// A signed-in account's cookie and CSRF token.
struct Signed {
    cookie: String,
    csrf: String,
}

impl Signed {
    async fn login(app: &Router, (name, password): (&str, &str)) -> Signed {
        let answer = send(
            app,
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": name, "password": password})),
            &[],
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let csrf = answer.json()["csrf"].as_str().unwrap().to_owned();
        Signed {
            cookie: answer.set_cookie.unwrap(),
            csrf,
        }
    }

    async fn send(&self, app: &Router, method: Method, path: &str, body: Option<Value>) -> Answer {
        let headers = [
            ("cookie", self.cookie.as_str()),
            ("x-csrf-token", self.csrf.as_str()),
        ];
        send(app, method, path, body, &headers, None).await
    }

    /// A new API token of this account with `scopes`.
    async fn token(&self, app: &Router, scopes: &[&str]) -> Answer {
        self.send(
            app,
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "prometheus", "scopes": scopes, "days": 1})),
        )
        .await
    }
}

async fn with_token(app: &Router, path: &str, token: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str())];
    send(app, Method::GET, path, None, &headers, None).await
}

async fn readyz(app: &Router) -> (StatusCode, Value) {
    let answer = get(app, "/readyz").await;
    (answer.status, answer.json())
}

fn not_ready(reason: &str) -> (StatusCode, Value) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unready", "reason": reason}),
    )
}

fn ready() -> (StatusCode, Value) {
    (StatusCode::OK, json!({"status": "ready"}))
}

#[tokio::test]
async fn healthz_answers_anyone_every_time() {
    let fixture = staffed();
    let app = fixture.app();
    // A load balancer probing often is never throttled or asked to sign in.
    for _ in 0..50 {
        let answer = get(&app, "/healthz").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text, "ok");
    }
    // Sealed, it is still alive.
    let sealed = router(Arc::new(AppState::new(fixture.path.clone(), settings())));
    assert_eq!(get(&sealed, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_waits_for_the_unseal_and_notices_the_database_going() {
    let fixture = staffed();
    // A console just started: the database is fine, the key is not there.
    let state = Arc::new(AppState::new(fixture.path.clone(), settings()));
    let app = router(state.clone());
    assert_eq!(readyz(&app).await, not_ready("sealed"));
    let unsealed = send(
        &app,
        Method::POST,
        "/api/v1/unseal",
        Some(json!({"name": ADMIN.0, "password": ADMIN.1})),
        &[],
        None,
    )
    .await;
    assert_eq!(unsealed.status, StatusCode::OK, "{}", unsealed.text);
    assert_eq!(readyz(&app).await, ready());

    // The file is moved away (a restore gone wrong): pooled connections
    // would still read the old one, but the console is not ready.
    let moved = fixture.dir.path().join("moved.db");
    std::fs::rename(&fixture.path, &moved).unwrap();
    assert_eq!(readyz(&app).await, not_ready("database"));
    std::fs::rename(&moved, &fixture.path).unwrap();
    assert_eq!(readyz(&app).await, ready());

    // A newer oathdesk migrated the vault past this build.
    let sqlite = rusqlite::Connection::open(&fixture.path).unwrap();
    sqlite
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) \
             VALUES ((SELECT max(version) + 1 FROM schema_migrations), 'from the future', 0)",
            [],
        )
        .unwrap();
    assert_eq!(readyz(&app).await, not_ready("migrations"));
    sqlite
        .execute(
            "DELETE FROM schema_migrations WHERE name = 'from the future'",
            [],
        )
        .unwrap();
    assert_eq!(readyz(&app).await, ready());
}

/// A plain test with its own runtime: PostgreSQL's synchronous client
/// (the scratch schema, `prepare`) must not run on the runtime's thread.
#[test]
fn readyz_on_postgresql_says_database_when_the_schema_is_dropped() {
    let schema = ScratchSchema::new();
    prepare(&schema.location(), KDF, now()).unwrap();
    let app = router(Arc::new(AppState::new(schema.location(), settings())));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Reachable and current, but no admin has unsealed it yet.
    assert_eq!(runtime.block_on(readyz(&app)), not_ready("sealed"));
    schema
        .client()
        .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", schema.name()))
        .unwrap();
    assert_eq!(runtime.block_on(readyz(&app)), not_ready("database"));
    assert_eq!(
        runtime.block_on(get(&app, "/healthz")).status,
        StatusCode::OK
    );
    // The pooled connections close on the runtime's threads.
    drop(app);
    drop(runtime);
}

#[tokio::test]
async fn metrics_need_the_metrics_scope_or_an_allowed_address() {
    let fixture = staffed();
    let app = fixture.app();
    // Nobody.
    let anonymous = get(&app, "/metrics").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(!anonymous.text.contains("oathdesk_"));

    // The helpdesk role has no metrics permission, so no token of theirs does.
    let hal = Signed::login(&app, HELPDESK).await;
    let refused = hal.token(&app, &["metrics"]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let helpdesk_token = hal.token(&app, &["helpdesk.code"]).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        with_token(&app, "/metrics", &helpdesk_token).await.status,
        StatusCode::FORBIDDEN
    );

    // An auditor's token: only with the scope.
    let aud = Signed::login(&app, AUDITOR).await;
    let audit_only = aud.token(&app, &["audit.read"]).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let without_scope = with_token(&app, "/metrics", &audit_only).await;
    assert_eq!(without_scope.status, StatusCode::FORBIDDEN);
    assert!(!without_scope.text.contains("oathdesk_"));
    let made = aud.token(&app, &["metrics"]).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let scrape_token = made.json()["token"].as_str().unwrap().to_owned();
    let scraped = with_token(&app, "/metrics", &scrape_token).await;
    assert_eq!(scraped.status, StatusCode::OK, "{}", scraped.text);
    assert!(
        scraped
            .content_type
            .starts_with("application/openmetrics-text")
    );
    assert!(scraped.text.contains("oathdesk_http_requests_total"));

    // From configured addresses, without a token; the client address is the
    // one a trusted proxy forwarded for.
    let from = |allowed: &[&str]| Settings {
        metrics_from: allowed.iter().map(|a| a.parse().unwrap()).collect(),
        trusted_proxies: vec!["192.168.0.1".parse().unwrap()],
        ..settings()
    };
    let configured = router(Arc::new(AppState::new(
        fixture.path.clone(),
        from(&["10.0.0.0/8", "2001:db8::7"]),
    )));
    for (peer, forwarded, expected) in [
        ("10.1.2.3", None, StatusCode::OK),
        ("2001:db8::7", None, StatusCode::OK),
        ("11.0.0.1", None, StatusCode::UNAUTHORIZED),
        // A client cannot name an allowed address itself...
        ("11.0.0.1", Some("10.1.2.3"), StatusCode::UNAUTHORIZED),
        // ...but the trusted proxy can.
        ("192.168.0.1", Some("10.1.2.3"), StatusCode::OK),
        ("192.168.0.1", Some("11.0.0.1"), StatusCode::UNAUTHORIZED),
    ] {
        let headers: Vec<(&str, &str)> = forwarded
            .map(|f| vec![("x-forwarded-for", f)])
            .unwrap_or_default();
        let answer = send(
            &configured,
            Method::GET,
            "/metrics",
            None,
            &headers,
            Some(peer),
        )
        .await;
        assert_eq!(answer.status, expected, "{peer} forwarding {forwarded:?}");
    }
}

/// Every sample of a scrape: name, labels, value.
struct Scrape(Vec<prometheus_parse::Sample>);

impl Scrape {
    /// prometheus-parse 0.2 ends a label set at the first `}`, even inside a
    /// quoted value (which the format allows, and Prometheus reads): route
    /// templates such as `/api/v1/tokens/{ref}` are read with their braces
    /// inside quotes turned into `⟨⟩`, and looked up that way.
    fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|line| {
            let mut quoted = false;
            let mut escaped = false;
            let mut out = String::with_capacity(line.len());
            for c in line.chars() {
                out.push(match c {
                    '{' if quoted => '⟨',
                    '}' if quoted => '⟩',
                    _ => c,
                });
                quoted ^= c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
            }
            Ok(out)
        });
        Scrape(prometheus_parse::Scrape::parse(lines).unwrap().samples)
    }

    /// The value of the one sample named `name` with (at least) `labels`;
    /// 0 when there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self
            .0
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name}: not a number: {other:?}"),
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
        found.first().copied().unwrap_or(0.0)
    }

    /// How many observations the histogram `name` with `labels` holds.
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => buckets.last().map(|b| b.count),
                _ => None,
            })
            .sum()
    }

    /// Every label value of every sample.
    fn label_values(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|s| {
                let labels: &HashMap<String, String> = &s.labels;
                labels.values().cloned().collect::<Vec<_>>()
            })
            .collect()
    }
}

#[tokio::test]
async fn a_scrape_counts_routes_helpdesk_outcomes_and_sign_ins_and_names_no_one() {
    let fixture = staffed();
    ship_token(&fixture, "2100123456", "bob@contoso.com", SEED);
    give_facts(
        &fixture,
        "bob@contoso.com",
        &[("mobile_phone", "+44 7700 900123")],
    );
    admin_session(&fixture)
        .set_setting("helpdesk.codes_per_hour", 1, now())
        .unwrap();
    let app = fixture.app();
    let hal = Signed::login(&app, HELPDESK).await;
    let code = |verifications: Value| json!({"user": "bob@contoso.com", "verifications": verifications, "ticket": "INC0012345"});
    let granted = hal
        .send(
            &app,
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(code(call_back(EVIDENCE))),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    let released = granted.json()["code"].as_str().unwrap().to_owned();
    let unverified = hal
        .send(
            &app,
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(code(json!([]))),
        )
        .await;
    assert_eq!(unverified.status, StatusCode::CONFLICT);
    let limited = hal
        .send(
            &app,
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(code(call_back(EVIDENCE))),
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let token = hal
        .send(&app, Method::GET, "/api/v1/tokens/2100123456", None)
        .await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    let missing = hal
        .send(&app, Method::GET, "/api/v1/tokens/2100999999", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let wrong = send(
        &app,
        Method::POST,
        "/api/v1/login",
        Some(json!({"name": "bob@contoso.com", "password": "Winter2026!"})),
        &[],
        None,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&app, "/no/such/page/2100123456").await.status,
        StatusCode::NOT_FOUND
    );

    let aud = Signed::login(&app, AUDITOR).await;
    let scrape_token = aud.token(&app, &["metrics"]).await.json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = with_token(&app, "/metrics", &scrape_token).await;
    assert_eq!(answer.status, StatusCode::OK);
    let scrape = Scrape::parse(&answer.text);

    let requests = |method: &str, route: &str, status: &str| {
        scrape.value(
            "oathdesk_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", "/api/v1/helpdesk/code", "200"), 1.0);
    assert_eq!(requests("POST", "/api/v1/helpdesk/code", "409"), 1.0);
    assert_eq!(requests("POST", "/api/v1/helpdesk/code", "429"), 1.0);
    // The route's template, never the serial in the path.
    assert_eq!(requests("GET", "/api/v1/tokens/⟨ref⟩", "200"), 1.0);
    assert_eq!(requests("GET", "/api/v1/tokens/⟨ref⟩", "404"), 1.0);
    assert_eq!(requests("POST", "/api/v1/login", "200"), 2.0);
    assert_eq!(requests("POST", "/api/v1/login", "401"), 1.0);
    assert_eq!(requests("POST", "/api/v1/me/tokens", "201"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 1.0);
    assert_eq!(
        scrape.observations(
            "oathdesk_http_request_duration_seconds",
            &[("method", "POST"), ("route", "/api/v1/helpdesk/code")]
        ),
        3.0
    );

    let helpdesk =
        |outcome: &str| scrape.value("oathdesk_helpdesk_codes_total", &[("outcome", outcome)]);
    assert_eq!(helpdesk("granted"), 1.0);
    assert_eq!(helpdesk("refused"), 1.0);
    assert_eq!(helpdesk("rate_limited"), 1.0);
    let logins = |outcome: &str| scrape.value("oathdesk_logins_total", &[("outcome", outcome)]);
    assert_eq!(logins("succeeded"), 2.0);
    assert_eq!(logins("failed"), 1.0);
    assert_eq!(logins("locked_out"), 0.0);

    let head = AnyStore::open(&fixture.path.clone().into())
        .unwrap()
        .read()
        .unwrap()
        .audit_last()
        .unwrap()
        .unwrap()
        .seq;
    assert!(head > 0);
    assert_eq!(
        scrape.value("oathdesk_audit_head_sequence", &[]),
        head as f64
    );
    assert!(
        scrape.value(
            "oathdesk_db_connection_checkouts_total",
            &[("source", "pool")]
        ) > 0.0
    );

    // No label names a user, an account, a serial, a ticket, evidence, a
    // code, a password or a token.
    let secrets = [
        "bob@contoso.com",
        "2100123456",
        "2100999999",
        "INC0012345",
        EVIDENCE,
        released.as_str(),
        "Winter2026!",
        HELPDESK.1,
        AUDITOR.1,
        scrape_token.as_str(),
        "/no/such/page",
    ];
    let values = scrape.label_values();
    assert!(values.len() > 20, "{values:?}");
    for value in &values {
        for secret in secrets {
            assert!(
                !value.contains(secret),
                "label value {value:?} holds {secret:?}"
            );
        }
        for account in [ADMIN.0, HELPDESK.0, AUDITOR.0, PROVISIONER.0] {
            assert_ne!(value, account);
        }
    }
    assert!(!answer.text.contains("bob@contoso.com") && !answer.text.contains("2100123456"));
}

#[tokio::test]
async fn a_locked_account_s_sign_ins_count_as_lockouts() {
    let fixture = staffed().with_settings(Settings {
        metrics_from: vec!["127.0.0.1".parse().unwrap()],
        ..settings()
    });
    let app = fixture.app();
    // The fixture locks an account after three failures.
    for _ in 0..4 {
        send(
            &app,
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": HELPDESK.0, "password": "not it"})),
            &[],
            None,
        )
        .await;
    }
    let answer = send(&app, Method::GET, "/metrics", None, &[], Some("127.0.0.1")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let scrape = Scrape::parse(&answer.text);
    assert_eq!(
        scrape.value("oathdesk_logins_total", &[("outcome", "failed")]),
        3.0
    );
    assert_eq!(scrape.value("oathdesk_login_lockouts_total", &[]), 1.0);
    assert_eq!(
        scrape.value("oathdesk_logins_total", &[("outcome", "locked_out")]),
        1.0
    );
}
