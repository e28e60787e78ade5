//! The REST API in process: sign-in, setup, sessions, CSRF, throttling,
//! tokens and scopes, the role table on every route, headers.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
#[allow(unused_imports)]
use common::Fixture;
use common::*;
use http_body_util::BodyExt;
use oathdesk_server::{API_ROUTES, Permission, Role};
use serde_json::{Value, json};
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8080";

/// A browser-like client: keeps the session cookie and sends the CSRF token.
struct Client {
    app: Router,
    cookie: Option<String>,
    csrf: Option<String>,
    bearer: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Client {
    fn new(app: Router) -> Client {
        Client {
            app,
            cookie: None,
            csrf: None,
            bearer: None,
        }
    }

    async fn send(&mut self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_with(method, path, body, &[]).await
    }

    async fn send_with(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, HOST);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(csrf) = &self.csrf
            && method != Method::GET
        {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(token) = &self.bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(cookie) = headers.get(header::SET_COOKIE) {
            let pair = cookie
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            self.cookie = Some(pair);
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if let Some(csrf) = body.get("csrf").and_then(Value::as_str) {
            self.csrf = Some(csrf.to_owned());
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn login(app: Router, (name, password): (&str, &str)) -> Client {
        let mut client = Client::new(app);
        let answer = client
            .send(
                Method::POST,
                "/api/v1/login",
                Some(json!({"name": name, "password": password})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        client
    }
}

/// A route's path with its parameters filled in.
fn example_path(path: &str) -> String {
    path.replace("{handle}", "0011223344556677")
        .replace("{name}", "ada")
        .replace("{ref}", "2100123456")
        .replace("{id}", "A-0011223344")
}

fn error(answer: &Answer) -> &str {
    answer.body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn setup_with_the_code_creates_the_admin_once() {
    let (fixture, code) = fresh();
    let mut client = Client::new(fixture.app());
    let state = client.send(Method::GET, "/api/v1/setup", None).await;
    assert_eq!(state.body, json!({"open": true, "mode": "code"}));
    let wrong = client
        .send(
            Method::POST,
            "/api/v1/setup",
            Some(json!({"code": "AAAA", "name": "ada", "password": ADMIN.1})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let weak = client
        .send(
            Method::POST,
            "/api/v1/setup",
            Some(json!({"code": code, "name": "ada", "password": "short"})),
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(error(&weak).contains("10 characters"), "{}", error(&weak));
    let done = client
        .send(
            Method::POST,
            "/api/v1/setup",
            Some(json!({"code": code, "name": "ada", "password": ADMIN.1})),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["role"], "admin");
    let cookie = done.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let me = client.send(Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.body["account"], "ada");
    // Once only.
    let again = Client::new(fixture.app())
        .send(
            Method::POST,
            "/api/v1/setup",
            Some(json!({"code": code, "name": "eve", "password": "eve's long password"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_out() {
    let fixture = staffed();
    let app = fixture.app();
    for _ in 0..2 {
        let answer = Client::new(app.clone())
            .send(
                Method::POST,
                "/api/v1/login",
                Some(json!({"name": "hal", "password": "not hal's password"})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error(&answer), "wrong account name or password");
    }
    // An unknown name gets the same answer.
    let unknown = Client::new(app.clone())
        .send(
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": "nobody", "password": "whatever it is"})),
        )
        .await;
    assert_eq!(error(&unknown), "wrong account name or password");
    let third = Client::new(app.clone())
        .send(
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": "hal", "password": "still not it"})),
        )
        .await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers.contains_key(header::RETRY_AFTER));
    // Locked: even the right password waits.
    let right = Client::new(app.clone())
        .send(
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": "hal", "password": HELPDESK.1})),
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // Another account is not locked.
    Client::login(app, PROVISIONER).await;
}

#[tokio::test]
async fn state_changes_need_the_csrf_token_and_the_same_origin() {
    let fixture = staffed();
    let mut client = Client::login(fixture.app(), ADMIN).await;
    let body = json!({"secret": "JBSWY3DPEHPK3PXP"});
    let ok = client
        .send(Method::POST, "/api/v1/toolset/codes", Some(body.clone()))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let csrf = client.csrf.take();
    let missing = client
        .send(Method::POST, "/api/v1/toolset/codes", Some(body.clone()))
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(error(&missing).contains("CSRF"));
    client.csrf = Some("forged".into());
    let forged = client
        .send(Method::POST, "/api/v1/toolset/codes", Some(body.clone()))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    client.csrf = csrf;
    let cross = client
        .send_with(
            Method::POST,
            "/api/v1/toolset/codes",
            Some(body.clone()),
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert!(error(&cross).contains("cross-site"));
    let cross_login = Client::new(fixture.app())
        .send_with(
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": ADMIN.0, "password": ADMIN.1})),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(cross_login.status, StatusCode::FORBIDDEN);
}

/// Every route that needs a permission refuses every role without it —
/// one request per (route, role) pair, each asserted on its own.
#[tokio::test]
async fn every_route_refuses_every_role_without_its_permission() {
    let fixture = staffed();
    let app = fixture.app();
    let mut denied = 0;
    for (role, account) in [
        (Role::Helpdesk, HELPDESK),
        (Role::Provisioner, PROVISIONER),
        (Role::Auditor, AUDITOR),
    ] {
        let mut client = Client::login(app.clone(), account).await;
        for route in API_ROUTES {
            let Some(permission) = route.permission else {
                continue;
            };
            if role.permits(permission) {
                continue;
            }
            let path = example_path(route.path);
            let method: Method = route.method.parse().unwrap();
            let body = (method != Method::GET).then(|| json!({}));
            let answer = client.send(method, &path, body).await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{} {} as {}: {}",
                route.method,
                route.path,
                role.name(),
                answer.body
            );
            assert_eq!(
                error(&answer),
                format!("the {} role may not {}", role.name(), permission.describe())
            );
            denied += 1;
        }
    }
    // Each of the three roles is refused every admin route at least.
    let admin_routes = API_ROUTES
        .iter()
        .filter(|r| r.permission == Some(Permission::Admin))
        .count();
    assert!(denied >= 3 * admin_routes && admin_routes > 0);
    // Without a session, every protected route answers 401.
    let mut anonymous = Client::new(app);
    for route in API_ROUTES.iter().filter(|r| r.permission.is_some()) {
        let path = example_path(route.path);
        let method: Method = route.method.parse().unwrap();
        let answer = anonymous.send(method, &path, Some(json!({}))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", route.path);
    }
}

#[tokio::test]
async fn api_tokens_act_within_their_scopes_and_the_role() {
    let fixture = staffed();
    let app = fixture.app();
    let mut hal = Client::login(app.clone(), HELPDESK).await;
    let refused = hal
        .send(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "too much", "scopes": ["admin"]})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let made = hal
        .send(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "script", "scopes": ["toolset"], "days": 7})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let token = made.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("odk_"));
    let handle = made.body["grant"]["handle"].as_str().unwrap().to_owned();

    let mut script = Client::new(app.clone());
    script.bearer = Some(token.clone());
    // No CSRF token needed: a bearer token is not sent by browsers on their own.
    let codes = script
        .send(
            Method::POST,
            "/api/v1/toolset/codes",
            Some(json!({"secret": "JBSWY3DPEHPK3PXP"})),
        )
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.body);
    let me = script.send(Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.status, StatusCode::FORBIDDEN);
    assert!(error(&me).contains("API tokens cannot manage accounts"));

    let listed = hal.send(Method::GET, "/api/v1/me/tokens", None).await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        2,
        "session and token"
    );
    let revoked = hal
        .send(Method::DELETE, &format!("/api/v1/me/tokens/{handle}"), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = script
        .send(
            Method::POST,
            "/api/v1/toolset/codes",
            Some(json!({"secret": "JBSWY3DPEHPK3PXP"})),
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session_in_the_database() {
    let fixture = staffed();
    let mut client = Client::login(fixture.app(), AUDITOR).await;
    let cookie = client.cookie.clone();
    let out = client.send(Method::POST, "/api/v1/logout", None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie, replayed, opens nothing.
    client.cookie = cookie;
    let me = client.send(Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let fixture = staffed();
    let app = fixture.app();
    let mut first = Client::login(app.clone(), PROVISIONER).await;
    let mut second = Client::login(app.clone(), PROVISIONER).await;
    let wrong = first
        .send(
            Method::POST,
            "/api/v1/me/password",
            Some(json!({"current": "not it at all", "new": "pia's new password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(error(&wrong), "the current password is wrong");
    let changed = first
        .send(
            Method::POST,
            "/api/v1/me/password",
            Some(json!({"current": PROVISIONER.1, "new": "pia's new password"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        first.send(Method::GET, "/api/v1/me", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        second.send(Method::GET, "/api/v1/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    Client::login(app, ("pia", "pia's new password")).await;
}

#[tokio::test]
async fn toolset_answers_like_oathdesk_code() {
    let fixture = staffed();
    let mut client = Client::login(fixture.app(), AUDITOR).await;
    let answer = client
        .send(
            Method::POST,
            "/api/v1/toolset/codes",
            Some(json!({
                "secret": "3132333435363738393031323334353637383930", "encoding": "hex",
                "digits": 8, "at": 1_234_567_890u64, "past": 1, "future": 1, "verifier": "entra"
            })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // The book's example (docs/src/command-line.md) of `oathdesk code … --verifier entra`.
    let codes: Vec<&str> = answer.body["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["39980357", "89005924", "38590587"]);
    assert_eq!(answer.body["codes"][1]["accepted_until"], 1_234_567_980u64);
    let hex_refused = client
        .send(
            Method::POST,
            "/api/v1/toolset/codes",
            Some(json!({"secret": "3132333435363738393031323334353637383930"})),
        )
        .await;
    assert_eq!(hex_refused.status, StatusCode::BAD_REQUEST);
    assert!(
        error(&hex_refused).contains("hex"),
        "{}",
        error(&hex_refused)
    );
    assert!(!error(&hex_refused).contains("3132"), "no secret in errors");
    let drift = client
        .send(
            Method::POST,
            "/api/v1/toolset/verify",
            Some(
                json!({"secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "digits": 8,
                        "code": "39980357", "at": 1_234_567_890u64}),
            ),
        )
        .await;
    assert_eq!(drift.body["offset"], -1);
    assert_eq!(drift.body["drift_seconds"], -30);
    let converted = client
        .send(
            Method::POST,
            "/api/v1/toolset/convert",
            Some(json!({"value": "1669EBDCC7108C272FD876ED6E7F562583BE16A9", "from": "hex", "to": "base32"})),
        )
        .await;
    assert_eq!(converted.body["value"], "CZU6XXGHCCGCOL6YO3WW472WEWB34FVJ");
    let seed = client
        .send(
            Method::POST,
            "/api/v1/toolset/seed",
            Some(json!({"algorithm": "sha256"})),
        )
        .await;
    assert_eq!(seed.body["bytes"], 32);
    assert_eq!(seed.body["base32"].as_str().unwrap().len(), 52);
    let qr = client
        .send(
            Method::POST,
            "/api/v1/toolset/qr",
            Some(json!({"secret": "JBSWY3DPEHPK3PXP", "issuer": "Contoso", "account": "a@contoso.com"})),
        )
        .await;
    assert!(
        qr.body["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Contoso:a@contoso.com?")
    );
    assert!(qr.body["svg"].as_str().unwrap().contains("<svg"));
    let csv = client
        .send(
            Method::POST,
            "/api/v1/toolset/entra-csv",
            Some(
                json!({"rows": [{"upn": "a@contoso.com", "serial": "2100123456",
                                  "secret": "JBSWY3DPEHPK3PXP", "period": 30,
                                  "manufacturer": "Token2", "model": "C202"}]}),
            ),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    let text = csv.body["csv"].as_str().unwrap();
    assert!(text.starts_with("upn,serial number,secret key,time interval,manufacturer,model"));
    assert!(text.contains("a@contoso.com,2100123456,JBSWY3DPEHPK3PXP,30,Token2,C202"));
    let bad_row = client
        .send(
            Method::POST,
            "/api/v1/toolset/entra-csv",
            Some(json!({"rows": [{"upn": "a@contoso.com", "serial": "1", "secret": "JBSWY3DPEHPK3PX1"}]})),
        )
        .await;
    assert_eq!(bad_row.status, StatusCode::BAD_REQUEST);
    assert!(
        error(&bad_row).starts_with("row 1, secret:"),
        "{}",
        error(&bad_row)
    );
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let fixture = staffed();
    let mut client = Client::new(fixture.app());
    for path in ["/login", "/api/v1/setup", "/assets/app.js", "/nothing-here"] {
        let answer = client.send(Method::GET, path, None).await;
        let csp = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(answer.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(answer.headers[header::REFERRER_POLICY], "no-referrer");
    }
    // A page without a session sends the browser to sign in.
    let page = client.send(Method::GET, "/toolset", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/login");
    // No page has an inline script.
    let login = client.send(Method::GET, "/login", None).await;
    let html = login.body.as_str().unwrap();
    assert!(!html.contains("<script>") && html.contains("<script src="));
}

#[test]
fn every_permission_is_a_route_requirement_or_the_admin_s() {
    // The route table and the permission list stay in step.
    for permission in [Permission::Toolset, Permission::Account, Permission::Admin] {
        assert!(API_ROUTES.iter().any(|r| r.permission == Some(permission)));
    }
}

#[tokio::test]
async fn helpdesk_codes_need_verification_and_a_ticket_and_are_rate_limited() {
    let fixture = staffed();
    ship_token(&fixture, "2100123456", "bob@contoso.com", SEED);
    give_facts(
        &fixture,
        "bob@contoso.com",
        &[("mobile_phone", "+44 7700 900123")],
    );
    let mut hal = Client::login(fixture.app(), HELPDESK).await;
    let unverified = hal
        .send(
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(json!({"user": "bob@contoso.com", "verifications": [], "ticket": "INC0012345"})),
        )
        .await;
    assert_eq!(unverified.status, StatusCode::CONFLICT);
    assert_eq!(unverified.body["kind"], "refused");
    assert!(
        error(&unverified).starts_with("say how the caller was verified"),
        "{}",
        error(&unverified)
    );
    let granted = hal
        .send(
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(
                json!({"user": "bob@contoso.com", "verifications": call_back(EVIDENCE),
                        "ticket": "INC0012345", "valid_for": 120}),
            ),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    let counter = granted.body["counter"].as_u64().unwrap();
    assert_eq!(
        granted.body["code"],
        totp(SEED).hotp().generate(counter).to_string()
    );
    let time = granted.body["time"].as_u64().unwrap();
    assert!(granted.body["accepted_until"].as_u64().unwrap() >= time + 120);
    assert_eq!(granted.body["serial"], "2100123456");
    for _ in 0..4 {
        let again = hal
            .send(
                Method::POST,
                "/api/v1/helpdesk/code",
                Some(
                    json!({"user": "bob@contoso.com", "verifications": call_back(EVIDENCE),
                            "ticket": "INC0012345", "serial": "2100123456"}),
                ),
            )
            .await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    }
    let limited = hal
        .send(
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(
                json!({"user": "bob@contoso.com", "verifications": call_back(EVIDENCE),
                        "ticket": "INC0012345"}),
            ),
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["kind"], "rate_limited");
    assert!(error(&limited).starts_with("rate limit"));
    assert!(
        error(&limited).contains("next code allowed at"),
        "{}",
        error(&limited)
    );
    // The console's advice names its own page, not a command line.
    assert!(
        error(&limited).contains("Operators page")
            && !error(&limited).contains("oathdesk vault set"),
        "{}",
        error(&limited)
    );
    assert!(limited.headers.contains_key(header::RETRY_AFTER));

    // Identify the token from its current code, then confirm its delivery.
    let code = totp(SEED).generate_at(now()).unwrap().to_string();
    let hits = hal
        .send(
            Method::POST,
            "/api/v1/identify",
            Some(json!({"codes": [code]})),
        )
        .await;
    assert_eq!(hits.status, StatusCode::OK, "{}", hits.body);
    assert_eq!(hits.body[0]["credential"], "2100123456");
    // Where the code stands, apart from the token's drift (none recorded yet).
    assert_eq!(hits.body[0]["offset"], 0);
    assert!(hits.body[0]["drift_steps"].is_null(), "{}", hits.body);
    // The current code was read out by the helpdesk: it proves nothing
    // about the token's arrival.
    let refused = hal
        .send(
            Method::POST,
            "/api/v1/tokens/2100123456/deliver",
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(error(&refused).starts_with("this code was given out by the helpdesk"));
    // A code of a step nobody was given does.
    let current = now() / 30;
    let unreleased = (current + 1..).find(|c| *c != counter).unwrap();
    let code = totp(SEED).hotp().generate(unreleased).to_string();
    let delivered = hal
        .send(
            Method::POST,
            "/api/v1/tokens/2100123456/deliver",
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.body);
    assert_eq!(delivered.body["purged"], true);

    // The audit log has every request, refused ones too, with the ticket.
    let mut auditor = Client::login(fixture.app(), AUDITOR).await;
    let log = auditor
        .send(
            Method::GET,
            "/api/v1/audit?action=helpdesk.code&outcome=refused",
            None,
        )
        .await;
    assert_eq!(log.body["total"], 2, "{}", log.body);
    let granted_log = auditor
        .send(
            Method::GET,
            "/api/v1/audit?action=helpdesk&subject=bob",
            None,
        )
        .await;
    assert_eq!(granted_log.body["total"], 7);
    assert_eq!(granted_log.body["entries"][0]["ticket"], "INC0012345");
    assert_eq!(granted_log.body["entries"][0]["operator"], "hal");
    let verified = auditor
        .send(Method::GET, "/api/v1/audit/verify", None)
        .await;
    assert_eq!(verified.body["intact"], true, "{}", verified.body);
    let head = verified.body["head"].as_str().unwrap().to_owned();
    let kept = auditor
        .send(
            Method::GET,
            &format!("/api/v1/audit/verify?expect_head={head}"),
            None,
        )
        .await;
    assert_eq!(kept.body["intact"], true);

    // An entry edited in the database is found.
    rusqlite_edit(
        &fixture,
        "UPDATE audit SET ticket = 'INC0099999' WHERE ticket = 'INC0012345'",
    );
    let broken = auditor
        .send(Method::GET, "/api/v1/audit/verify", None)
        .await;
    assert_eq!(broken.body["intact"], false);
    assert!(
        broken.body["problem"]
            .as_str()
            .unwrap()
            .contains("edited or forged")
    );
}

fn rusqlite_edit(fixture: &Fixture, sql: &str) {
    let connection = rusqlite::Connection::open(&fixture.path).unwrap();
    connection.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn inventory_lifecycle_bulk_import_and_export() {
    let fixture = staffed();
    let mut pia = Client::login(fixture.app(), PROVISIONER).await;
    let csv = "upn,serial number,secret key,time interval,manufacturer,model\r\n\
               a@contoso.com,2100000001,JBSWY3DPEHPK3PXP,30,Token2,C202\r\n\
               b@contoso.com,2100000002,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30,Token2,C202\r\n";
    let content = data_encoding::BASE64.encode(csv.as_bytes());
    let preview = pia
        .send(
            Method::POST,
            "/api/v1/import/preview",
            Some(json!({"content": content})),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["format"], "entra-csv");
    assert_eq!(preview.body["records"], 2);
    assert!(
        !preview.body.to_string().contains("JBSWY3DPEHPK3PXP"),
        "no secret in a preview"
    );
    // A broken file: the error names the line, and nothing is imported.
    let broken = format!("{csv}c@contoso.com,2100000003,JBSWY3DPEHPK3PX1,30,Token2,C202\r\n");
    let refused = pia
        .send(
            Method::POST,
            "/api/v1/import",
            Some(json!({"content": data_encoding::BASE64.encode(broken.as_bytes())})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(error(&refused).contains("line 4"), "{}", error(&refused));
    let listed = pia.send(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(listed.body["total"], 0);
    let imported = pia
        .send(
            Method::POST,
            "/api/v1/import",
            Some(json!({"content": content})),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    assert_eq!(imported.body["imported"], 2);

    // Bulk: all or nothing.
    let stock = pia
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"kind": "classic", "serial": "2100000009", "generate": true})),
        )
        .await;
    assert_eq!(stock.status, StatusCode::CREATED, "{}", stock.body);
    assert_eq!(stock.body["state"], "stock");
    let mixed = pia
        .send(
            Method::POST,
            "/api/v1/tokens/bulk",
            Some(
                json!({"tokens": ["2100000001", "2100000009"], "state": "shipped", "note": "DHL"}),
            ),
        )
        .await;
    assert_eq!(mixed.status, StatusCode::CONFLICT);
    assert!(error(&mixed).contains("2100000009"));
    let shipped = pia
        .send(
            Method::POST,
            "/api/v1/tokens/bulk",
            Some(
                json!({"tokens": ["2100000001", "2100000002"], "state": "shipped", "note": "DHL"}),
            ),
        )
        .await;
    assert_eq!(shipped.body["moved"], 2, "{}", shipped.body);
    let filtered = pia
        .send(
            Method::GET,
            "/api/v1/tokens?state=shipped&q=b%40contoso",
            None,
        )
        .await;
    assert_eq!(filtered.body["total"], 1);
    let detail = pia
        .send(Method::GET, "/api/v1/tokens/2100000002", None)
        .await;
    assert_eq!(detail.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(detail.body["events"][1]["note"], "DHL");
    let devices = pia.send(Method::GET, "/api/v1/devices", None).await;
    assert_eq!(devices.body["devices"].as_array().unwrap().len(), 3);

    // Export: plaintext only when asked; audited.
    let refused = pia
        .send(
            Method::POST,
            "/api/v1/export",
            Some(json!({"format": "entra-csv"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let exported = pia
        .send(
            Method::POST,
            "/api/v1/export",
            Some(json!({"format": "entra-csv", "plaintext": true, "user": "a@contoso.com"})),
        )
        .await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.body);
    let file = data_encoding::BASE64
        .decode(exported.body["content"].as_str().unwrap().as_bytes())
        .unwrap();
    let file = String::from_utf8(file).unwrap();
    assert!(file.contains("a@contoso.com,2100000001,JBSWY3DPEHPK3PXP,30,Token2,C202"));
    assert!(!file.contains("b@contoso.com"));
    let mut admin = Client::login(fixture.app(), ADMIN).await;
    let log = admin
        .send(Method::GET, "/api/v1/audit?action=export", None)
        .await;
    assert_eq!(
        log.body["entries"][0]["detail"]["credentials"],
        json!(["2100000001"])
    );
    assert_eq!(log.body["entries"][0]["operator"], "pia");
}

#[tokio::test]
async fn admins_manage_accounts_and_new_accounts_change_their_password_first() {
    let fixture = staffed();
    let app = fixture.app();
    let mut ada = Client::login(app.clone(), ADMIN).await;
    let made = ada
        .send(
            Method::POST,
            "/api/v1/accounts",
            Some(json!({"name": "nia", "role": "helpdesk", "password": "nia's first password"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["must_change_password"], true);
    let mut nia = Client::login(app.clone(), ("nia", "nia's first password")).await;
    let blocked = nia
        .send(Method::POST, "/api/v1/toolset/seed", Some(json!({})))
        .await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    assert!(error(&blocked).contains("choose your own"));
    let changed = nia
        .send(
            Method::POST,
            "/api/v1/me/password",
            Some(json!({"current": "nia's first password", "new": "nia's own password"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let works = nia
        .send(Method::POST, "/api/v1/toolset/seed", Some(json!({})))
        .await;
    assert_eq!(works.status, StatusCode::OK);

    // Disabling ends her session at once.
    let disabled = ada
        .send(
            Method::PATCH,
            "/api/v1/accounts/nia",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!(
        nia.send(Method::GET, "/api/v1/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The last admin stays an admin.
    let demote = ada
        .send(
            Method::PATCH,
            "/api/v1/accounts/ada",
            Some(json!({"role": "auditor"})),
        )
        .await;
    assert_eq!(demote.status, StatusCode::CONFLICT);
    let listed = ada.send(Method::GET, "/api/v1/accounts", None).await;
    assert_eq!(listed.body["accounts"].as_array().unwrap().len(), 5);
    let removed = ada.send(Method::DELETE, "/api/v1/accounts/nia", None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let settings = ada
        .send(
            Method::PUT,
            "/api/v1/settings",
            Some(json!({"name": "helpdesk.codes_per_hour", "value": 9})),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK);
    let read = ada.send(Method::GET, "/api/v1/settings", None).await;
    assert_eq!(read.body["helpdesk.codes_per_hour"], 9);
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_request_schema() {
    let fixture = staffed();
    let mut client = Client::new(fixture.app());
    let answer = client.send(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.body;
    assert_eq!(document["openapi"], "3.1.0");
    for route in API_ROUTES {
        let operation = &document["paths"][route.path][route.method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{} {} missing",
            route.method,
            route.path
        );
        if let Some(permission) = route.permission {
            assert_eq!(operation["x-permission"], permission.name());
        }
        let takes_body = matches!(route.method, "POST" | "PUT" | "PATCH")
            && !route.path.ends_with("/purge")
            && !route.path.ends_with("/collect")
            && !route.path.ends_with("/delivery-link")
            && route.path != "/api/v1/logout";
        assert_eq!(
            operation["requestBody"].is_object(),
            takes_body,
            "{} {}",
            route.method,
            route.path
        );
    }
    let schemas = &document["components"]["schemas"];
    let code = &schemas["CodeRequest"];
    // The free-text verification is gone: methods, steps and evidence.
    assert!(code["properties"]["verified_by"].is_null(), "{code}");
    assert!(code["properties"]["verifications"].is_object(), "{code}");
    assert!(code["properties"]["serial"].is_object(), "{code}");
    let required = code["required"].as_array().unwrap();
    assert!(required.contains(&json!("ticket")) && required.contains(&json!("user")));
    let input = &schemas["VerificationInput"]["properties"];
    for field in ["method", "confirmed", "evidence"] {
        assert!(input[field].is_object(), "{field}: {input}");
    }
    // A request held for four eyes is documented as 202.
    let held = &document["paths"]["/api/v1/helpdesk/code"]["post"]["responses"]["202"];
    assert_eq!(
        held["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ApprovalRequired"
    );
    assert!(
        schemas["ApprovalRequired"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("id"))
    );
    // The policy's body is the vault's type, read off an example of it.
    let policy = &schemas["HelpdeskPolicy"]["properties"];
    for field in [
        "methods",
        "accepted",
        "ticket_pattern",
        "four_eyes",
        "approval_expires_minutes",
    ] {
        assert!(policy[field].is_object(), "{field}: {policy}");
    }
    assert_eq!(
        document["paths"]["/api/v1/helpdesk/verification"]["get"]["parameters"][0]["schema"]["$ref"],
        "#/components/schemas/VerificationQuery"
    );
}

#[tokio::test]
async fn guessing_the_current_password_locks_the_account_like_failed_sign_ins() {
    let fixture = staffed();
    let mut pia = Client::login(fixture.app(), PROVISIONER).await;
    let guess = json!({"current": "a wrong guess", "new": "pia's new password"});
    for _ in 0..2 {
        let answer = pia
            .send(Method::POST, "/api/v1/me/password", Some(guess.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    let third = pia
        .send(Method::POST, "/api/v1/me/password", Some(guess.clone()))
        .await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.body
    );
    // The lockout holds for the right password and for signing in.
    let right = pia
        .send(
            Method::POST,
            "/api/v1/me/password",
            Some(json!({"current": PROVISIONER.1, "new": "pia's new password"})),
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    let login = Client::new(fixture.app())
        .send(
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": PROVISIONER.0, "password": PROVISIONER.1})),
        )
        .await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Promise 2 of the threat model: a restarted console holds no key, so
/// helpdesk and auditor accounts — who hold none of their own — can do
/// nothing until an admin unseals it; then the same session works.
#[tokio::test]
async fn a_sealed_console_serves_helpdesk_accounts_once_an_admin_unsealed_it() {
    let fixture = staffed();
    ship_token(&fixture, "2100123456", "bob@contoso.com", SEED);
    give_facts(
        &fixture,
        "bob@contoso.com",
        &[("mobile_phone", "+44 7700 900123")],
    );
    // A session started before the restart.
    let mut hal = Client::login(fixture.app(), HELPDESK).await;
    // The console restarts: same database, nothing in memory.
    let restarted = std::sync::Arc::new(oathdesk_server::AppState::new(
        fixture.path.clone(),
        settings(),
    ));
    let app = oathdesk_server::router(restarted.clone());
    hal.app = app.clone();
    let mut anyone = Client::new(app.clone());
    let state = anyone.send(Method::GET, "/api/v1/unseal", None).await;
    assert_eq!(state.body, json!({"sealed": true}));
    let refused = hal.send(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert!(error(&refused).starts_with("the console is sealed"));
    let login = anyone
        .send(
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": HELPDESK.0, "password": HELPDESK.1})),
        )
        .await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        login.body
    );
    // A helpdesk password does not unseal; a wrong admin password neither.
    let by_helpdesk = anyone
        .send(
            Method::POST,
            "/api/v1/unseal",
            Some(json!({"name": HELPDESK.0, "password": HELPDESK.1})),
        )
        .await;
    assert_eq!(
        by_helpdesk.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_helpdesk.body
    );
    let wrong = anyone
        .send(
            Method::POST,
            "/api/v1/unseal",
            Some(json!({"name": ADMIN.0, "password": "not ada's password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!restarted.is_unsealed());
    // The admin unseals: the old session works again, and sign-in too.
    let unsealed = anyone
        .send(
            Method::POST,
            "/api/v1/unseal",
            Some(json!({"name": ADMIN.0, "password": ADMIN.1})),
        )
        .await;
    assert_eq!(unsealed.status, StatusCode::OK, "{}", unsealed.body);
    assert_eq!(unsealed.body, json!({"sealed": false}));
    let works = hal.send(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(works.status, StatusCode::OK, "{}", works.body);
    let code = hal
        .send(
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(
                json!({"user": "bob@contoso.com", "verifications": call_back(EVIDENCE),
                        "ticket": "INC-4711"}),
            ),
        )
        .await;
    assert_eq!(code.status, StatusCode::OK, "{}", code.body);
    // Each unsealing is in the audit log (and an auditor can sign in now).
    let mut auditor = Client::login(app, AUDITOR).await;
    let log = auditor
        .send(Method::GET, "/api/v1/audit?action=console.unseal", None)
        .await;
    assert!(log.body["total"].as_u64().unwrap() >= 2, "{}", log.body);
}

/// A rekey elsewhere (another console, the command line) makes this
/// console's key stale: it notices, seals itself instead of failing, and an
/// admin's next sign-in unseals it with the new key.
#[tokio::test]
async fn a_rekey_elsewhere_seals_the_console_until_an_admin_signs_in() {
    let fixture = staffed();
    let app = fixture.app();
    Client::login(app.clone(), HELPDESK).await;
    oathdesk_vault::Vault::open(&fixture.path)
        .unwrap()
        .unlock(
            ADMIN.0,
            oathdesk_vault::Unlock::Passphrase(ADMIN.1.as_bytes()),
        )
        .unwrap()
        .rekey(now())
        .unwrap();
    let mut anyone = Client::new(app.clone());
    let login = anyone
        .send(
            Method::POST,
            "/api/v1/login",
            Some(json!({"name": HELPDESK.0, "password": HELPDESK.1})),
        )
        .await;
    assert_eq!(
        login.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        login.body
    );
    assert_eq!(login.body["kind"], "sealed");
    let state = anyone.send(Method::GET, "/api/v1/unseal", None).await;
    assert_eq!(state.body, json!({"sealed": true}));
    Client::login(app.clone(), ADMIN).await;
    assert!(fixture.state.is_unsealed());
    let mut hal = Client::login(app.clone(), HELPDESK).await;
    let tokens = hal.send(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
}

/// The console's refusals are the vault's: decided by its table, answered
/// with the typed kind, and in the audit log like the command line's.
#[tokio::test]
async fn a_console_refusal_is_audited_like_the_command_lines() {
    let fixture = staffed();
    let app = fixture.app();
    let mut hal = Client::login(app.clone(), HELPDESK).await;
    let refused = hal.send(Method::GET, "/api/v1/audit", None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.body["kind"], "forbidden");
    assert_eq!(
        error(&refused),
        "the helpdesk role may not read the audit log"
    );
    let mut auditor = Client::login(app, AUDITOR).await;
    let log = auditor
        .send(Method::GET, "/api/v1/audit?action=forbidden", None)
        .await;
    assert_eq!(log.body["total"], 1, "{}", log.body);
    assert_eq!(log.body["entries"][0]["operator"], HELPDESK.0);
    assert_eq!(log.body["entries"][0]["detail"]["permission"], "audit.read");
}

/// A second helpdesk operator, for four eyes.
const HELPDESK_B: (&str, &str) = ("hel", "hel's long password");

async fn ask_code(client: &mut Client, user: &str, verifications: Value, ticket: &str) -> Answer {
    client
        .send(
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(json!({"user": user, "verifications": verifications, "ticket": ticket})),
        )
        .await
}

/// Promise 4: "x" is no verification. The vault refuses a ticket or
/// evidence that means nothing, an unconfirmed step, a method whose data is
/// not on file; the console answers with the vault's words and kind, and
/// shows the operator each method's steps with the data on file, masked.
#[tokio::test]
async fn a_verification_that_means_nothing_is_refused() {
    let fixture = staffed();
    ship_token(&fixture, "2100123456", "bob@contoso.com", SEED);
    ship_token(&fixture, "2100123457", "carol@contoso.com", SEED);
    give_facts(
        &fixture,
        "bob@contoso.com",
        &[("mobile_phone", "+44 7700 900123")],
    );
    let mut hal = Client::login(fixture.app(), HELPDESK).await;
    let bob = "bob@contoso.com";

    let ticket_x = ask_code(&mut hal, bob, call_back(EVIDENCE), "x").await;
    assert_eq!(ticket_x.status, StatusCode::CONFLICT, "{}", ticket_x.body);
    assert_eq!(ticket_x.body["kind"], "refused");
    assert!(
        error(&ticket_x).starts_with("'x' is not a ticket id"),
        "{}",
        error(&ticket_x)
    );
    let evidence_x = ask_code(&mut hal, bob, call_back("x"), "INC0012345").await;
    assert_eq!(
        evidence_x.status,
        StatusCode::CONFLICT,
        "{}",
        evidence_x.body
    );
    assert_eq!(evidence_x.body["kind"], "refused");
    assert!(
        error(&evidence_x).contains("write what you saw or heard"),
        "{}",
        error(&evidence_x)
    );
    let half = json!([{"method": "call-back", "confirmed": [true, false], "evidence": EVIDENCE}]);
    let unconfirmed = ask_code(&mut hal, bob, half, "INC0012345").await;
    assert_eq!(unconfirmed.status, StatusCode::CONFLICT);
    assert_eq!(unconfirmed.body["kind"], "refused");
    assert!(
        error(&unconfirmed).starts_with("step 2 of 'call-back' is not confirmed"),
        "{}",
        error(&unconfirmed)
    );
    let unknown = json!([{"method": "horoscope", "confirmed": [true], "evidence": EVIDENCE}]);
    let unknown = ask_code(&mut hal, bob, unknown, "INC0012345").await;
    assert_eq!(unknown.status, StatusCode::CONFLICT);
    assert!(
        error(&unknown).starts_with("no verification method 'horoscope'"),
        "{}",
        error(&unknown)
    );
    // Carol has no number on file: a call-back cannot be done for her.
    let carol = ask_code(
        &mut hal,
        "carol@contoso.com",
        call_back(EVIDENCE),
        "INC0012345",
    )
    .await;
    assert_eq!(carol.status, StatusCode::CONFLICT, "{}", carol.body);
    assert_eq!(carol.body["kind"], "refused");
    assert!(
        error(&carol).contains("has no mobile phone or office phone on file"),
        "{}",
        error(&carol)
    );
    // The free text of old is refused with what to send instead.
    let old = hal
        .send(
            Method::POST,
            "/api/v1/helpdesk/code",
            Some(json!({"user": bob, "verified_by": "call-back", "ticket": "INC0012345"})),
        )
        .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST);
    assert!(
        error(&old).contains("send verifications"),
        "{}",
        error(&old)
    );

    // What the operator sees: the steps, the number on file (masked).
    let view = hal
        .send(
            Method::GET,
            "/api/v1/helpdesk/verification?user=bob%40contoso.com&method=call-back",
            None,
        )
        .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(view.body["unusable"], Value::Null);
    assert_eq!(view.body["evidence_required"], true);
    assert_eq!(view.body["steps"].as_array().unwrap().len(), 2);
    let shown = &view.body["steps"][0]["data"][0];
    assert_eq!(shown["name"], "mobile_phone");
    assert_eq!(shown["shown"], "•••••••••0123");
    assert_eq!(shown["source"], "csv:users.csv");
    assert!(!view.body.to_string().contains("7700"), "masked");
    let unusable = hal
        .send(
            Method::GET,
            "/api/v1/helpdesk/verification?user=carol%40contoso.com&method=call-back",
            None,
        )
        .await;
    assert_eq!(unusable.status, StatusCode::OK, "{}", unusable.body);
    assert!(
        unusable.body["unusable"]
            .as_str()
            .unwrap()
            .contains("has no mobile phone or office phone on file"),
        "{}",
        unusable.body
    );
    let missing = hal
        .send(
            Method::GET,
            "/api/v1/helpdesk/verification?user=bob%40contoso.com",
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let nobody = hal
        .send(
            Method::GET,
            "/api/v1/helpdesk/verification?user=nobody%40contoso.com&method=call-back",
            None,
        )
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.body);
    let policy = hal.send(Method::GET, "/api/v1/helpdesk/policy", None).await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    assert_eq!(policy.body["methods"][0]["name"], "call-back");
    assert_eq!(policy.body["four_eyes"]["always"], false);

    // Every refusal is in the audit log, and each view of data on file.
    let mut auditor = Client::login(fixture.app(), AUDITOR).await;
    let refused = auditor
        .send(
            Method::GET,
            "/api/v1/audit?action=helpdesk.code&outcome=refused",
            None,
        )
        .await;
    assert_eq!(refused.body["total"], 5, "{}", refused.body);
    let views = auditor
        .send(
            Method::GET,
            "/api/v1/audit?action=helpdesk.verification_view",
            None,
        )
        .await;
    assert_eq!(views.body["total"], 2, "{}", views.body);
}

/// The command line's `--server` mode works with an API token scoped to
/// helpdesk.code: the steps, the code, the approvals and collecting.
#[tokio::test]
async fn a_helpdesk_code_token_works_the_helpdesk_routes() {
    let fixture = staffed();
    ship_token(&fixture, "2100123456", "bob@contoso.com", SEED);
    give_facts(
        &fixture,
        "bob@contoso.com",
        &[("mobile_phone", "+44 7700 900123")],
    );
    add_account(&fixture, HELPDESK_B, "helpdesk");
    let app = fixture.app();
    let mut hal = Client::login(app.clone(), HELPDESK).await;
    let made = hal
        .send(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "cli", "scopes": ["helpdesk.code"], "days": 1})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let mut script = Client::new(app.clone());
    script.bearer = Some(made.body["token"].as_str().unwrap().to_owned());
    let view = script
        .send(
            Method::GET,
            "/api/v1/helpdesk/verification?user=bob%40contoso.com&method=call-back",
            None,
        )
        .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    let code = ask_code(
        &mut script,
        "bob@contoso.com",
        call_back(EVIDENCE),
        "INC-4711",
    )
    .await;
    assert_eq!(code.status, StatusCode::OK, "{}", code.body);
    let listed = script
        .send(Method::GET, "/api/v1/helpdesk/approvals", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["approvals"], json!([]));
    // The policy is readable with the helpdesk.code scope alone (what the
    // CLI's --server mode reads first to count each method's steps).
    let policy = script
        .send(Method::GET, "/api/v1/helpdesk/policy", None)
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    assert_eq!(policy.body["methods"][0]["name"], "call-back");

    // Four eyes through the token: asked, approved by hel, collected.
    let mut ada = Client::login(app.clone(), ADMIN).await;
    let set = ada
        .send(
            Method::PUT,
            "/api/v1/helpdesk/policy",
            Some(json!({"four_eyes": {"always": true}})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let held = ask_code(
        &mut script,
        "bob@contoso.com",
        call_back(EVIDENCE),
        "INC-4712",
    )
    .await;
    assert_eq!(held.status, StatusCode::ACCEPTED, "{}", held.body);
    let id = held.body["id"].as_str().unwrap().to_owned();
    let mut hel = Client::login(app.clone(), HELPDESK_B).await;
    let approved = hel
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/approve"),
            Some(json!({})),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let collected = script
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/collect"),
            None,
        )
        .await;
    assert_eq!(collected.status, StatusCode::OK, "{}", collected.body);
    assert_eq!(
        collected.body["code"],
        totp(SEED)
            .hotp()
            .generate(collected.body["counter"].as_u64().unwrap())
            .to_string()
    );
}

/// Four eyes: with a policy that asks for a second operator, a release
/// waits (202 with the request's id); nobody approves their own; another
/// operator approves; the requester collects the code once; a denied or
/// expired request gives none.
#[tokio::test]
async fn four_eyes_hold_a_code_until_another_operator_approves() {
    let fixture = staffed();
    ship_token(&fixture, "2100123456", "bob@contoso.com", SEED);
    give_facts(
        &fixture,
        "bob@contoso.com",
        &[("mobile_phone", "+44 7700 900123")],
    );
    add_account(&fixture, HELPDESK_B, "helpdesk");
    let app = fixture.app();
    let mut ada = Client::login(app.clone(), ADMIN).await;
    let mut hal = Client::login(app.clone(), HELPDESK).await;
    let mut hel = Client::login(app.clone(), HELPDESK_B).await;
    let bob = "bob@contoso.com";

    // Only an admin sets the policy; the vault checks it.
    let four_eyes = json!({"four_eyes": {"always": true}, "approval_expires_minutes": 20});
    let by_helpdesk = hal
        .send(
            Method::PUT,
            "/api/v1/helpdesk/policy",
            Some(four_eyes.clone()),
        )
        .await;
    assert_eq!(by_helpdesk.status, StatusCode::FORBIDDEN);
    assert_eq!(by_helpdesk.body["kind"], "forbidden");
    let misspelt = ada
        .send(
            Method::PUT,
            "/api/v1/helpdesk/policy",
            Some(json!({"four_eye": {"always": true}})),
        )
        .await;
    assert_eq!(misspelt.status, StatusCode::BAD_REQUEST);
    assert!(
        error(&misspelt).contains("four_eye"),
        "{}",
        error(&misspelt)
    );
    let nested = ada
        .send(
            Method::PUT,
            "/api/v1/helpdesk/policy",
            Some(json!({"four_eyes": {"alway": true}})),
        )
        .await;
    assert_eq!(nested.status, StatusCode::BAD_REQUEST);
    assert!(
        error(&nested).contains("unknown field `alway`"),
        "{}",
        error(&nested)
    );
    let invalid = ada
        .send(
            Method::PUT,
            "/api/v1/helpdesk/policy",
            Some(json!({"ticket_pattern": "^(INC"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(
        error(&invalid).starts_with("ticket_pattern does not compile"),
        "{}",
        error(&invalid)
    );
    let set = ada
        .send(Method::PUT, "/api/v1/helpdesk/policy", Some(four_eyes))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["four_eyes"]["always"], true);
    assert_eq!(set.body["approval_expires_minutes"], 20);
    let read = hal.send(Method::GET, "/api/v1/helpdesk/policy", None).await;
    assert_eq!(read.body, set.body);

    // hal asks: the request waits.
    let held = ask_code(&mut hal, bob, call_back(EVIDENCE), "INC0012345").await;
    assert_eq!(held.status, StatusCode::ACCEPTED, "{}", held.body);
    assert_eq!(held.body["kind"], "approval_required");
    assert!(held.body.get("code").is_none(), "no code while it waits");
    assert!(held.body.get("error").is_none(), "{}", held.body);
    let id = held.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("A-"), "{id}");
    let expires_at = held.body["expires_at"].as_u64().unwrap();
    assert!(expires_at > now() + 19 * 60 && expires_at <= now() + 20 * 60);
    assert!(
        held.body["reason"]
            .as_str()
            .unwrap()
            .contains("second operator")
    );
    assert!(held.body["message"].as_str().unwrap().contains(&id));
    assert!(held.body["until"].as_str().unwrap().ends_with("UTC"));

    // Not by himself; and no code before another operator approved.
    let own = hal
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/approve"),
            Some(json!({"note": "looks fine to me"})),
        )
        .await;
    assert_eq!(own.status, StatusCode::CONFLICT, "{}", own.body);
    assert_eq!(own.body["kind"], "refused");
    assert!(error(&own).contains("yourself"), "{}", error(&own));
    let early = hal
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/collect"),
            None,
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert!(
        error(&early).contains("waits for another operator's approval"),
        "{}",
        error(&early)
    );

    // hel sees it, approves it; only hal collects, once.
    let pending = hel
        .send(
            Method::GET,
            "/api/v1/helpdesk/approvals?state=pending",
            None,
        )
        .await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    let listed = &pending.body["approvals"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["requester"], HELPDESK.0);
    assert_eq!(listed["user"], bob);
    assert_eq!(listed["methods"], json!(["call-back"]));
    let approved = hel
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/approve"),
            Some(json!({"note": "call-back record checked"})),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["state"], "approved");
    assert_eq!(approved.body["decided_by"], HELPDESK_B.0);
    assert_eq!(approved.body["note"], "call-back record checked");
    let not_hers = hel
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/collect"),
            None,
        )
        .await;
    assert_eq!(not_hers.status, StatusCode::CONFLICT, "{}", not_hers.body);
    assert!(
        error(&not_hers).contains("only they collect"),
        "{}",
        error(&not_hers)
    );
    let collected = hal
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/collect"),
            None,
        )
        .await;
    assert_eq!(collected.status, StatusCode::OK, "{}", collected.body);
    let counter = collected.body["counter"].as_u64().unwrap();
    assert_eq!(
        collected.body["code"],
        totp(SEED).hotp().generate(counter).to_string()
    );
    assert!(collected.body["time"].as_u64().is_some());
    let twice = hal
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/collect"),
            None,
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    assert_eq!(twice.body["kind"], "refused");
    let late = hel
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{id}/deny"),
            Some(json!({})),
        )
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    let used = hal
        .send(Method::GET, "/api/v1/helpdesk/approvals?state=used", None)
        .await;
    assert_eq!(used.body["approvals"][0]["id"], id.as_str());

    // A denied request gives no code.
    let again = ask_code(&mut hal, bob, call_back(EVIDENCE), "INC0012346").await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    let second = again.body["id"].as_str().unwrap().to_owned();
    let denied = hel
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{second}/deny"),
            Some(json!({"note": "the caller hung up on the call-back"})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::OK, "{}", denied.body);
    assert_eq!(denied.body["state"], "denied");
    let refused = hal
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{second}/collect"),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(error(&refused).contains("denied"), "{}", error(&refused));
    let unknown = hel
        .send(
            Method::POST,
            "/api/v1/helpdesk/approvals/A-0000000000/approve",
            Some(json!({})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

    // An expired request cannot be approved. The console reads the wall
    // clock, so the request is made at the library an hour ago (its 20
    // minutes are over), and approved through the console now.
    let stale = admin_session(&fixture).helpdesk_code(
        &oathdesk_vault::HelpdeskRequest {
            user: bob.into(),
            verifications: vec![oathdesk_vault::verification::Verification {
                method: "call-back".into(),
                confirmed: vec![true, true],
                evidence: EVIDENCE.into(),
            }],
            ticket: "INC0012347".into(),
            token: None,
            valid_for: None,
            verifier: "entra".parse().unwrap(),
        },
        now() - 3600,
    );
    let Err(oathdesk_vault::Error::ApprovalRequired { id: stale, .. }) = stale else {
        panic!("the request should wait for approval: {stale:?}");
    };
    let expired = hel
        .send(
            Method::POST,
            &format!("/api/v1/helpdesk/approvals/{stale}/approve"),
            Some(json!({})),
        )
        .await;
    assert_eq!(expired.status, StatusCode::CONFLICT, "{}", expired.body);
    assert_eq!(expired.body["kind"], "refused");
    assert!(error(&expired).contains("expired"), "{}", error(&expired));
    let listed = hel
        .send(
            Method::GET,
            "/api/v1/helpdesk/approvals?state=expired",
            None,
        )
        .await;
    assert_eq!(listed.body["approvals"][0]["id"], stale.as_str());

    // Each request, decision and collection is in the audit log.
    let mut auditor = Client::login(app, AUDITOR).await;
    for (action, total) in [
        ("helpdesk.approval_request", 3),
        ("helpdesk.approve", 3),
        ("helpdesk.deny", 2),
    ] {
        let log = auditor
            .send(Method::GET, &format!("/api/v1/audit?action={action}"), None)
            .await;
        assert_eq!(log.body["total"], total, "{action}: {}", log.body);
    }
}

// ----- issue 14: security findings and imports -------------------------------------

/// An API token of `account`, made outside the console (as an older
/// console or a script could have): the vault's own call.
fn token_of(fixture: &Fixture, (name, password): (&str, &str), scopes: &[&str]) -> String {
    let console = fixture.state.console_key().unwrap();
    let mut session = oathdesk_vault::Vault::open(&fixture.path)
        .unwrap()
        .unlock_with(
            name,
            oathdesk_vault::Unlock::Passphrase(password.as_bytes()),
            &console,
        )
        .unwrap();
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (secret, _) = session
        .create_api_token("made earlier", &scopes, 86_400, now())
        .unwrap();
    format!(
        "odk_{}",
        data_encoding::BASE64URL_NOPAD.encode(secret.as_slice())
    )
}

#[tokio::test]
async fn a_password_an_admin_set_opens_nothing_but_its_own_change() {
    let fixture = staffed();
    let app = fixture.app();
    let mut ada = Client::login(app.clone(), ADMIN).await;
    let first = ("nia", "nia's first password");
    let made = ada
        .send(
            Method::POST,
            "/api/v1/accounts",
            Some(json!({"name": first.0, "role": "helpdesk", "password": first.1})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    // A token the account got before its first sign-in (the account still
    // has the password an admin set).
    let earlier = token_of(&fixture, first, &["inventory.read", "helpdesk.code"]);
    let mut nia = Client::login(app.clone(), first).await;
    let me = nia.send(Method::GET, "/api/v1/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["must_change_password"], true);
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "mine", "scopes": ["inventory.read"]})),
        ),
        (Method::GET, "/api/v1/me/tokens", None),
        (Method::GET, "/api/v1/users", None),
        (Method::GET, "/api/v1/tokens", None),
    ] {
        let refused = nia.send(method.clone(), path, body).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(
            refused.body["kind"], "password_change_required",
            "{method} {path}: {}",
            refused.body
        );
    }
    // The token is held back as well.
    let mut script = Client::new(app.clone());
    script.bearer = Some(earlier.clone());
    for path in ["/api/v1/users", "/api/v1/tokens"] {
        let refused = script.send(Method::GET, path, None).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.body
        );
        assert_eq!(refused.body["kind"], "password_change_required");
    }
    // Signing out works (another session of the same account).
    let mut other = Client::login(app.clone(), first).await;
    assert_eq!(
        other
            .send(Method::POST, "/api/v1/logout", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // The change itself works, and then the account works.
    let changed = nia
        .send(
            Method::POST,
            "/api/v1/me/password",
            Some(json!({"current": first.1, "new": "nia's own password"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["must_change_password"], false);
    let token = nia
        .send(
            Method::POST,
            "/api/v1/me/tokens",
            Some(json!({"name": "mine", "scopes": ["inventory.read"]})),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
    assert_eq!(
        nia.send(Method::GET, "/api/v1/users", None).await.status,
        StatusCode::OK
    );
    // The change ended every earlier grant of the account.
    assert_eq!(
        script.send(Method::GET, "/api/v1/users", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_serial_that_would_collide_with_a_reference_is_refused_at_every_entry() {
    let fixture = staffed();
    let mut pia = Client::login(fixture.app(), PROVISIONER).await;
    // token add
    for serial in ["CONF:1", "S3javascript:alert(4)", "a/b", "#7", "two words"] {
        let refused = pia
            .send(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"kind": "classic", "serial": serial, "generate": true})),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{serial}");
        assert_eq!(refused.body["kind"], "invalid_serial", "{}", refused.body);
        assert!(error(&refused).contains(serial), "{}", error(&refused));
    }
    // import, every format: the preview names the row, the import refuses it.
    let csv = "upn,serial number,secret key,time interval,manufacturer,model\r\n\
               a@contoso.com,2100000001,JBSWY3DPEHPK3PXP,30,Token2,C202\r\n\
               b@contoso.com,S3javascript:alert(4),GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30,Token2,C202\r\n";
    let content = data_encoding::BASE64.encode(csv.as_bytes());
    let preview = pia
        .send(
            Method::POST,
            "/api/v1/import/preview",
            Some(json!({"content": content})),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["importable"], 1, "{}", preview.body);
    assert_eq!(preview.body["skipped"][0]["location"], "line 3");
    let refused = pia
        .send(
            Method::POST,
            "/api/v1/import",
            Some(json!({"content": content})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("line 3: serial: serial 'S3javascript:alert(4)' is refused"),
        "{}",
        refused.body
    );
    // the helpdesk's spreadsheet
    let sheet = "username,secret,serial\nbob@contoso.com,JBSWY3DPEHPK3PXP,CONF:1\n";
    let refused = pia
        .send(
            Method::POST,
            "/api/v1/import",
            Some(json!({"content": data_encoding::BASE64.encode(sheet.as_bytes()), "format": "spreadsheet"})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(error(&refused).contains("'CONF:1'"), "{}", refused.body);
    assert_eq!(
        pia.send(Method::GET, "/api/v1/tokens", None).await.body["total"],
        0
    );
}

#[tokio::test]
async fn serials_from_before_the_rule_stay_addressable_and_never_name_another_token() {
    use oathdesk_otp::{Credential, Secret};
    use oathdesk_vault::NewToken;
    use oathdesk_vault::model::{DeviceKind, State};
    let fixture = staffed();
    let new = |serial: &str, slot: Option<u32>, kind: DeviceKind, user: &str| NewToken {
        serial: Some(serial.into()),
        slot,
        device_kind: kind,
        manufacturer: Some("Token2".into()),
        model: None,
        device_slots: if kind == DeviceKind::MultiProfile {
            100
        } else {
            1
        },
        credential: Credential::totp(Secret::from_bytes(SEED.to_vec())),
        label: None,
        user: Some(user.into()),
        state: State::Assigned,
    };
    let mut admin = admin_session(&fixture);
    let molto = admin
        .add_token(
            new(
                "CONF",
                Some(1),
                DeviceKind::MultiProfile,
                "carol@contoso.com",
            ),
            now(),
        )
        .unwrap();
    let classic = admin
        .add_token_from_before_the_serial_rule(
            new("CONF:1", None, DeviceKind::Classic, "bob@contoso.com"),
            now(),
        )
        .unwrap();
    let script = admin
        .add_token_from_before_the_serial_rule(
            new(
                "S3javascript:alert(4)",
                None,
                DeviceKind::Classic,
                "eve@contoso.com",
            ),
            now(),
        )
        .unwrap();
    // vault verify names them, and how to address them.
    let report = admin.verify_vault().unwrap();
    assert_eq!(report.serials.len(), 2, "{:?}", report.serials);
    assert!(
        report
            .serials
            .iter()
            .any(|s| s.serial == "CONF:1" && s.references == vec![format!("#{}", classic.id)])
    );
    drop(admin);

    let mut pia = Client::login(fixture.app(), PROVISIONER).await;
    let listed = pia.send(Method::GET, "/api/v1/tokens", None).await;
    let references: Vec<&str> = listed.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reference"].as_str().unwrap())
        .collect();
    assert!(references.contains(&"CONF:1"), "{references:?}");
    assert!(references.contains(&format!("#{}", classic.id).as_str()));
    assert!(references.contains(&format!("#{}", script.id).as_str()));
    // CONF:1 is the Molto-2's slot 1, and only that.
    let marked = pia
        .send(
            Method::POST,
            "/api/v1/tokens/CONF%3A1/state",
            Some(json!({"state": "lost"})),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.body);
    let molto_now = pia
        .send(
            Method::GET,
            &format!("/api/v1/tokens/%23{}", molto.id),
            None,
        )
        .await;
    assert_eq!(
        molto_now.body["token"]["state"], "lost",
        "{}",
        molto_now.body
    );
    let classic_now = pia
        .send(
            Method::GET,
            &format!("/api/v1/tokens/%23{}", classic.id),
            None,
        )
        .await;
    assert_eq!(classic_now.status, StatusCode::OK, "{}", classic_now.body);
    assert_eq!(classic_now.body["token"]["state"], "assigned");
    // The other stuck serial is addressable by its id.
    let script_now = pia
        .send(
            Method::POST,
            &format!("/api/v1/tokens/%23{}/state", script.id),
            Some(json!({"state": "retired"})),
        )
        .await;
    assert_eq!(script_now.status, StatusCode::OK, "{}", script_now.body);
}

/// One request over a real connection; the status code.
async fn raw_post(address: std::net::SocketAddr, path: &str, body: &Value) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_sign_ins_gets_no_more_tries_than_the_lockout() {
    let fixture = staffed();
    let (address, _stop) = fixture.serve().await;
    let limit = settings().account_throttle.max_failures as usize;
    // Twenty wrong passwords at once. (A right one inside the burst would
    // make the outcome depend on arrival order: a success rightly clears
    // the account's failures, and attempts after it count afresh.)
    let mut burst = Vec::new();
    for i in 0..20 {
        let password = format!("wrong password number {i}");
        burst.push(tokio::spawn(async move {
            raw_post(
                address,
                "/api/v1/login",
                &json!({"name": HELPDESK.0, "password": password}),
            )
            .await
        }));
    }
    let mut statuses = Vec::new();
    for request in burst {
        statuses.push(request.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        checked <= limit,
        "{checked} passwords checked with a lockout of {limit}: {statuses:?}"
    );
    assert_eq!(checked + refused, 20, "{statuses:?}");
    // The account is locked now: even the right password waits.
    let right = raw_post(
        address,
        "/api/v1/login",
        &json!({"name": HELPDESK.0, "password": HELPDESK.1}),
    )
    .await;
    assert_eq!(right, 429);
}

#[tokio::test]
async fn an_import_with_problems_needs_an_explicit_skip_of_the_bad_rows() {
    let fixture = staffed();
    let mut pia = Client::login(fixture.app(), PROVISIONER).await;
    // A rounded serial and two rows sharing one secret: the file reads, but
    // two of its rows are wrong.
    let csv = "upn,serial number,secret key,time interval,manufacturer,model\r\n\
               a@contoso.com,2100000001,JBSWY3DPEHPK3PXP,30,Token2,C202\r\n\
               b@contoso.com,2.10012E+09,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,30,Token2,C202\r\n\
               c@contoso.com,2100000003,JBSWY3DPEHPK3PXP,30,Token2,C202\r\n";
    let content = data_encoding::BASE64.encode(csv.as_bytes());
    let preview = pia
        .send(
            Method::POST,
            "/api/v1/import/preview",
            Some(json!({"content": content})),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["records"], 3);
    assert_eq!(preview.body["importable"], 1, "{}", preview.body);
    let skipped: Vec<&str> = preview.body["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["location"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["line 3", "line 4"], "{}", preview.body);
    let refused = pia
        .send(
            Method::POST,
            "/api/v1/import",
            Some(json!({"content": content})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["kind"], "import_problems");
    assert_eq!(refused.body["importable"], 1);
    let problems: Vec<&str> = refused.body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems.iter().any(|p| p.starts_with("line 3: serial:")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("line 4: secret")),
        "{problems:?}"
    );
    assert!(error(&refused).contains("nothing was imported"));
    assert_eq!(
        pia.send(Method::GET, "/api/v1/tokens", None).await.body["total"],
        0
    );
    let imported = pia
        .send(
            Method::POST,
            "/api/v1/import",
            Some(json!({"content": content, "skip_bad": true})),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    assert_eq!(imported.body["imported"], 1);
    assert_eq!(imported.body["skipped"].as_array().unwrap().len(), 2);
    let listed = pia.send(Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["tokens"][0]["serial"], "2100000001");
}

/// A connection from `from` (any loopback address) to the server.
async fn connect_from(from: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closes `stream` within `within` (whatever it says first).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(within, stream.read_to_end(&mut sink)).await,
        Ok(Ok(_) | Err(_))
    )
}

/// A whole request over a new connection from `from`; the status code.
async fn get_from(from: &str, to: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = connect_from(from, to).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_one_address_cannot_take_every_connection() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    let fixture = staffed();
    let limits = oathdesk_server::listen::ConnectionLimits {
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(2),
        per_address: 60,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(oathdesk_server::listen::serve(
        listener,
        fixture.app(),
        None,
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    let started = Instant::now();
    // 50 connections that send half their headers...
    let mut half_headers = Vec::new();
    for _ in 0..50 {
        let mut stream = connect_from("127.0.0.1", address).await;
        stream
            .write_all(b"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
            .await
            .unwrap();
        half_headers.push(stream);
    }
    // ...and 10 that announce a body and never send it: 60, the cap.
    let mut no_body = Vec::new();
    for _ in 0..10 {
        let mut stream = connect_from("127.0.0.1", address).await;
        stream
            .write_all(
                b"POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                  Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
            )
            .await
            .unwrap();
        no_body.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Over the cap: closed at once.
    for _ in 0..5 {
        let mut over = connect_from("127.0.0.1", address).await;
        assert!(
            closed_within(&mut over, Duration::from_millis(500)).await,
            "a connection over the cap was not refused quickly"
        );
    }
    // Another address is served meanwhile.
    assert_eq!(get_from("127.0.0.2", address, "/api/v1/setup").await, 200);
    // The slow ones are closed after their time-outs (2 s), not held.
    for stream in half_headers.iter_mut().chain(no_body.iter_mut()) {
        let left = Duration::from_secs(6).saturating_sub(started.elapsed());
        assert!(
            closed_within(stream, left).await,
            "a slow connection was held after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "closed before the time-out"
    );
    // Their places are free again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get_from("127.0.0.1", address, "/api/v1/setup").await, 200);
}

#[tokio::test]
async fn an_app_backup_with_a_steam_entry_imports_the_rest_and_names_it() {
    // A real-world-shaped Aegis export: TOTP and HOTP entries mixed with
    // Steam, Yandex and mOTP ones. The console imports what the vault can
    // take and names each entry left out, with its reason, as the command
    // line does; before, the whole file was refused.
    let fixture = staffed();
    let mut pia = Client::login(fixture.app(), PROVISIONER).await;
    let file = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../formats/tests/data/aegis_mixed_plain.json"),
    )
    .unwrap();
    let content = data_encoding::BASE64.encode(&file);
    let preview = pia
        .send(
            Method::POST,
            "/api/v1/import/preview",
            Some(json!({"content": content, "format": "aegis"})),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let left_out = preview.body["left_out"].as_array().unwrap().clone();
    assert!(!left_out.is_empty(), "{}", preview.body);
    assert!(
        left_out
            .iter()
            .any(|entry| entry["reference"].as_str().unwrap().contains("Steam")),
        "{left_out:?}"
    );
    let readable = preview.body["records"].as_u64().unwrap();
    assert!(readable > 0, "{}", preview.body);
    let imported = pia
        .send(
            Method::POST,
            "/api/v1/import",
            Some(json!({"content": content, "format": "aegis"})),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.body);
    assert_eq!(imported.body["imported"].as_u64(), Some(readable));
    assert_eq!(imported.body["left_out"].as_array().unwrap(), &left_out);
}
