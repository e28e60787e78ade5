//! `oathdesk serve --metrics-from`: the flag as a person types it, on the
//! built binary — a loopback Prometheus reads /metrics without a token,
//! the probes answer anyone, and a wrong address is refused at start with
//! what to write instead.

use std::process::Command;

mod common;
use common::console::*;

fn get_text(server: &Server, path: &str) -> (u16, String) {
    let mut response = agent()
        .get(format!("{}{path}", server.url))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

#[test]
fn metrics_from_lets_a_configured_address_scrape_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vec![format!("--vault={}", dir.path().join("vault.db").display())];

    let open = Server::start_with("M", &vault, dir.path(), &["--metrics-from", "127.0.0.0/8"]);
    let (status, text) = get_text(&open, "/healthz");
    assert_eq!((status, text.as_str()), (200, "ok"));
    let (status, text) = get_text(&open, "/readyz");
    assert_eq!(status, 503, "a new vault's console is sealed: {text}");
    assert!(text.contains("\"sealed\""), "{text}");
    let (status, text) = get_text(&open, "/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("oathdesk_http_requests_total{"), "{text}");
    assert!(
        text.contains("route=\"/healthz\""),
        "the probes before are counted: {text}"
    );
    drop(open);

    // Not from 10.0.0.0/8: loopback must bring a token.
    let closed = Server::start_with("N", &vault, dir.path(), &["--metrics-from", "10.0.0.0/8"]);
    let (status, text) = get_text(&closed, "/metrics");
    assert_eq!(status, 401, "{text}");
    assert!(!text.contains("oathdesk_http"), "{text}");
}

#[test]
fn a_wrong_metrics_from_address_is_refused_with_the_form_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .arg(format!("--vault={}", dir.path().join("vault.db").display()))
        .args(["serve", "--metrics-from", "prometheus.local"])
        .env_remove("OATHDESK_DATABASE_URL")
        .env_remove("OATHDESK_VAULT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--metrics-from")
            && stderr.contains("'prometheus.local' is not an address or network like 10.0.0.7"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("vault.db").exists(),
        "nothing is created before the arguments are right"
    );
}
