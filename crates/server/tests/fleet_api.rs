//! The fleet API through a real server on a loopback port (issue 18, item
//! 1): a simulated fleet with known drift rates comes back over REST
//! within the stated tolerance, as JSON and CSV; one token's sightings for
//! its plot; the batteries due; and forensic searches, which only admins
//! and auditors may run, with the code in the body and never in the log.

mod common;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The stated tolerance: a simulated token's fitted rate is within this
/// many seconds per year of the rate it was made with (20 sightings over
/// three years, ±3 s of jitter, ±15 s of quantisation per sighting).
const TOLERANCE_S_PER_YEAR: f64 = 8.0;

const DAY: u64 = 86_400;

/// Three years of sightings up to a week ago. The moments are whole days
/// plus fixed offsets, so that each sighting falls at the same phase of its
/// time step on every run: the steps seen, and so the fit, never change.
fn span() -> (u64, u64) {
    let today = now() - now() % DAY;
    (today - 3 * 365 * DAY, today - 7 * DAY)
}

/// Tokens that stand, three years on (now), outside Entra's ±60 s window
/// (…102, …106), near its edge within a year (…101 in about two months,
/// …105 in about seven) and inside (…104, …103).
const FLEET: &[Drifting] = &[
    Drifting {
        serial: "2100000101",
        user: "ann@contoso.com",
        rate_s_per_year: -95.0,
        initial_s: 240.0,
    },
    Drifting {
        serial: "2100000102",
        user: "bob@contoso.com",
        rate_s_per_year: -35.0,
        initial_s: 30.0,
    },
    Drifting {
        serial: "2100000103",
        user: "cy@contoso.com",
        rate_s_per_year: -8.0,
        initial_s: 10.0,
    },
    Drifting {
        serial: "2100000104",
        user: "dee@contoso.com",
        rate_s_per_year: 12.0,
        initial_s: -20.0,
    },
    Drifting {
        serial: "2100000105",
        user: "eve@contoso.com",
        rate_s_per_year: 48.0,
        initial_s: -110.0,
    },
    Drifting {
        serial: "2100000106",
        user: "fay@contoso.com",
        rate_s_per_year: 110.0,
        initial_s: -200.0,
    },
];

/// A signed-in account talking HTTP to the served console.
struct Api {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
    bearer: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.bytes)))
    }

    fn text(&self) -> String {
        String::from_utf8(self.bytes.to_vec()).unwrap()
    }
}

impl Api {
    fn new(address: SocketAddr) -> Api {
        Api {
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{address}"),
            cookie: None,
            csrf: None,
            bearer: None,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
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
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(body.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .http
            .request(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn sign_in(address: SocketAddr, (name, password): (&str, &str)) -> Api {
        let mut api = Api::new(address);
        let answer = api
            .post("/api/v1/login", json!({"name": name, "password": password}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
        api.cookie = Some(cookie.split(';').next().unwrap().to_owned());
        api.csrf = Some(answer.json()["csrf"].as_str().unwrap().to_owned());
        api
    }
}

fn truth(serial: &str) -> f64 {
    FLEET
        .iter()
        .find(|t| t.serial == serial)
        .unwrap_or_else(|| panic!("{serial} is not in the fleet"))
        .rate_s_per_year
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fleet_comes_back_over_rest_within_tolerance() {
    let fixture = staffed();
    let (from, until) = span();
    simulate_fleet(&fixture, FLEET, 20, from, until);
    let (address, _stop) = fixture.serve().await;
    // Reading the report is reading the inventory: every role may.
    let desk = Api::sign_in(address, HELPDESK).await;

    let answer = desk
        .get("/api/v1/fleet/drift?verifier=entra&horizon_days=365")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let report = answer.json();
    // The shape of `oathdesk fleet drift --json`: the library's report.
    let mut keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "at",
            "horizon_days",
            "tokens",
            "verifier",
            "without_sightings"
        ]
    );
    assert_eq!(report["verifier"], "entra");
    assert_eq!(report["horizon_days"], 365);
    assert_eq!(report["without_sightings"], 0);
    let tokens = report["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), FLEET.len(), "{report}");
    let mut worst = 0.0f64;
    for line in tokens {
        let serial = line["serial"].as_str().unwrap();
        let rate = line["rate_s_per_year"].as_f64().unwrap();
        let error = (rate - truth(serial)).abs();
        worst = worst.max(error);
        assert!(
            error < TOLERANCE_S_PER_YEAR,
            "{serial}: fitted {rate} s/year, made with {}",
            truth(serial)
        );
        assert_eq!(line["sightings"], 20, "{line}");
        assert_eq!(line["device_kind"], "classic");
    }
    eprintln!("worst rate error over REST: {worst:.1} s/year");
    // Worst first: outside, near the edge (soonest first), inside.
    let order: Vec<(&str, &str)> = tokens
        .iter()
        .map(|l| {
            (
                l["serial"].as_str().unwrap(),
                l["standing"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("2100000102", "outside"),
            ("2100000106", "outside"),
            ("2100000101", "near-edge"),
            ("2100000105", "near-edge"),
            ("2100000104", "inside"),
            ("2100000103", "inside"),
        ]
    );
    // Classic tokens' clocks cannot be set: replace them.
    assert!(tokens[0]["advice"].as_str().unwrap().starts_with("replace"));
    assert!(tokens[2]["outside_at"].as_u64().unwrap() < now() + 120 * DAY);

    // The same report as CSV, as `oathdesk fleet drift --csv` writes it.
    let csv = desk
        .get("/api/v1/fleet/drift.csv?verifier=entra&horizon_days=365")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let disposition = csv.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"oathdesk-drift-"),
        "{disposition}"
    );
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "token,serial,user,model,device_kind,sightings,resynced_on,sightings_before_resync,\
         span_days,rate_s_per_year,offset_s,edge_s,standing,outside_on,advice"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), FLEET.len());
    for (row, line) in rows.iter().zip(tokens) {
        assert_eq!(row[0], line["credential"].as_str().unwrap());
        assert_eq!(row[2], line["user"].as_str().unwrap());
        let rate: f64 = row[9].parse().unwrap();
        assert_eq!(rate, line["rate_s_per_year"].as_f64().unwrap());
    }

    // Another profile is another window: at ±3 steps only …106 is outside.
    let wide = desk
        .get("/api/v1/fleet/drift?verifier=steps=3")
        .await
        .json();
    assert_eq!(wide["verifier"], "steps=3");
    assert_eq!(wide["horizon_days"], 180);
    let outside = |r: &Value| {
        r["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["standing"] == "outside")
            .count()
    };
    assert_eq!((outside(&report), outside(&wide)), (2, 1), "{wide}");
    // A profile nobody knows is the caller's to fix.
    let unknown = desk.get("/api/v1/fleet/drift?verifier=okta").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown.json()["error"]
            .as_str()
            .unwrap()
            .contains("entra, exact, steps=K or seconds=S")
    );
    // Without a session there is nothing.
    let anonymous = Api::new(address);
    assert_eq!(
        anonymous.get("/api/v1/fleet/drift").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_sightings_are_the_plots_data() {
    let fixture = staffed();
    let (from, until) = span();
    simulate_fleet(&fixture, &FLEET[4..5], 20, from, until);
    let (address, _stop) = fixture.serve().await;
    let auditor = Api::sign_in(address, AUDITOR).await;
    let answer = auditor
        .get("/api/v1/tokens/2100000105/sightings?verifier=entra&horizon_days=365")
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let plot = answer.json();
    assert_eq!(plot["credential"], "2100000105");
    assert_eq!(plot["period"], 30);
    assert_eq!(plot["window"], json!({"behind_s": -60.0, "ahead_s": 60.0}));
    let sightings = plot["sightings"].as_array().unwrap();
    assert_eq!(sightings.len(), 20);
    let times: Vec<u64> = sightings
        .iter()
        .map(|s| s["at"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(times[0] >= from && times[19] <= until);
    for s in sightings {
        assert_eq!(s["source"], "check");
        // The midpoint of the step shown: the true offset lies within half
        // a period (plus the jitter) of it.
        let years = (s["at"].as_u64().unwrap() - from) as f64 / YEAR as f64;
        let made = FLEET[4].initial_s + FLEET[4].rate_s_per_year * years;
        let placed = s["offset_s"].as_f64().unwrap();
        assert!((placed - made).abs() <= 18.0, "{s} vs {made}");
        let steps = s["offset_steps"].as_i64().unwrap();
        assert!((-4..=3).contains(&steps), "{s}");
    }
    let rate = plot["fit"]["rate_s_per_year"].as_f64().unwrap();
    assert!((rate - 48.0).abs() < TOLERANCE_S_PER_YEAR, "{rate}");
    assert_eq!(plot["fit"]["reference"], times[19]);
    assert_eq!(plot["line"]["sightings"], 20);
    // The same token's line of the report.
    let report = auditor
        .get("/api/v1/fleet/drift?horizon_days=365")
        .await
        .json();
    assert_eq!(
        report["tokens"][0]["rate_s_per_year"],
        plot["line"]["rate_s_per_year"]
    );

    let missing = auditor.get("/api/v1/tokens/2199999999/sightings").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    let bad = auditor
        .get("/api/v1/tokens/2100000105/sightings?horizon=3")
        .await;
    assert_eq!(
        bad.status,
        StatusCode::BAD_REQUEST,
        "unknown parameters are refused"
    );
    // A horizon whose seconds would overflow is refused by the vault's rule
    // (at most a century), on the report and the plot alike.
    for path in [
        "/api/v1/fleet/drift?horizon_days=213503982334602",
        "/api/v1/fleet/drift.csv?horizon_days=36526",
        "/api/v1/tokens/2100000105/sightings?horizon_days=18446744073709551615",
    ] {
        let far = auditor.get(path).await;
        assert_eq!(
            far.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            far.text()
        );
        assert!(far.text().contains("century"), "{path}: {}", far.text());
    }
    let longest = auditor
        .get("/api/v1/fleet/drift?horizon_days=36525")
        .await
        .json();
    assert_eq!(longest["horizon_days"], 36525);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batteries_due_within_months() {
    let fixture = staffed();
    let now = now();
    // One token entered the vault five years less 40 days ago; one today.
    add_stock_token(&fixture, "2100000201", now - 5 * YEAR + 40 * DAY);
    add_stock_token(&fixture, "2100000202", now);
    let (address, _stop) = fixture.serve().await;
    let provisioner = Api::sign_in(address, PROVISIONER).await;
    let soon = provisioner.get("/api/v1/fleet/eol?months=2").await;
    assert_eq!(soon.status, StatusCode::OK, "{}", soon.text());
    let due = soon.json();
    let due = due.as_array().unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0]["serial"], "2100000201");
    assert_eq!(due[0]["due"], now - 5 * YEAR + 40 * DAY + 5 * YEAR);
    assert_eq!(due[0]["life_years"], "5–8");
    assert!(due[0]["source"].as_str().unwrap().contains("openT2OTP"));
    // Six months (the default) is the same; five years and more has both.
    assert_eq!(
        provisioner.get("/api/v1/fleet/eol").await.json(),
        soon.json()
    );
    let all = provisioner.get("/api/v1/fleet/eol?months=61").await.json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let century = provisioner.get("/api/v1/fleet/eol?months=1201").await;
    assert_eq!(century.status, StatusCode::BAD_REQUEST);
    assert!(
        century.json()["error"]
            .as_str()
            .unwrap()
            .contains("century")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forensic_is_for_admins_and_auditors_and_keeps_the_code_out_of_the_log() {
    let fixture = staffed();
    ship_token(&fixture, "2100000301", "gus@contoso.com", SEED);
    let (address, _stop) = fixture.serve().await;
    let now = now();
    // A code typed yesterday at 09:14:10 (UTC).
    let yesterday = now - now % DAY - DAY;
    let typed = yesterday + 9 * 3600 + 14 * 60 + 10;
    let code = totp(SEED).generate_at(typed).unwrap().to_string();
    let request = json!({
        "code": code, "user": "gus@contoso.com",
        "from": yesterday + 9 * 3600, "to": yesterday + 10 * 3600, "verifier": "entra",
    });

    for who in [HELPDESK, PROVISIONER] {
        let api = Api::sign_in(address, who).await;
        let refused = api.post("/api/v1/forensic", request.clone()).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", who.0);
        let body = refused.json();
        assert_eq!(body["kind"], "forbidden");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("may not search when a code was valid"),
            "{body}"
        );
    }

    let auditor = Api::sign_in(address, AUDITOR).await;
    let answer = auditor.post("/api/v1/forensic", request.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["searched"], json!(["2100000301"]));
    assert_eq!(report["verifier"], "entra");
    let step = typed - typed % 30;
    let hit = report["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["current_from"] == step)
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(hit["current_until"], step + 30);
    assert_eq!(hit["accepted_from"], step - 60);
    assert_eq!(hit["accepted_until"], step + 90);
    assert_eq!(hit["user"], "gus@contoso.com");

    // One token by serial, from an admin.
    let admin = Api::sign_in(address, ADMIN).await;
    let by_serial = admin
        .post(
            "/api/v1/forensic",
            json!({"code": code, "serial": "2100000301", "from": yesterday, "to": yesterday + DAY}),
        )
        .await;
    assert_eq!(by_serial.status, StatusCode::OK, "{}", by_serial.text());
    assert!(!by_serial.json()["hits"].as_array().unwrap().is_empty());

    // What is not a question: both targets, none, a range reaching now, an
    // empty range.
    let mut both = request.clone();
    both["serial"] = json!("2100000301");
    let mut none = request.clone();
    none.as_object_mut().unwrap().remove("user");
    let mut present = request.clone();
    present["to"] = json!(now);
    let mut empty = request.clone();
    empty["to"] = request["from"].clone();
    for (body, words) in [
        (both, "not both"),
        (none, "'user'"),
        (present, "minutes ago"),
        (empty, "end after it starts"),
    ] {
        let refused = auditor.post("/api/v1/forensic", body).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{words}");
        let error = refused.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(words), "{error}");
    }

    // The vault audited each search: who, whom, the range — never the code.
    let entries = admin_session(&fixture).audit_entries().unwrap();
    let searches: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "forensic" && e.outcome == "ok")
        .collect();
    assert_eq!(searches.len(), 2, "{searches:?}");
    assert_eq!(searches[0].operator, AUDITOR.0);
    assert_eq!(searches[0].user.as_deref(), Some("gus@contoso.com"));
    for entry in &searches {
        assert!(!entry.detail.contains(&code), "{}", entry.detail);
    }
    // The helpdesk's and provisioner's refusals are in the log too.
    assert!(
        entries
            .iter()
            .any(|e| e.outcome == "refused" && e.operator == HELPDESK.0),
        "{entries:?}"
    );

    // An API token acts within its scopes: inventory.read alone may read
    // the drift report but not search.
    let made = auditor
        .post(
            "/api/v1/me/tokens",
            json!({"name": "fleet script", "scopes": ["inventory.read"]}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let mut script = Api::new(address);
    script.bearer = Some(made.json()["token"].as_str().unwrap().to_owned());
    assert_eq!(
        script.get("/api/v1/fleet/drift").await.status,
        StatusCode::OK
    );
    assert_eq!(
        script.post("/api/v1/forensic", request).await.status,
        StatusCode::FORBIDDEN
    );
}
