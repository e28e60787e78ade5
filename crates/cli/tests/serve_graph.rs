//! The console wired to Entra by `oathdesk serve --tenant …` (the Graph
//! simulator): a Temporary Access Pass from the helpdesk page's API, with
//! the vault deciding and Entra's refusals passed on; and the notices a
//! release queues sent by the console itself, by mail through Graph.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::console::*;
use oathdesk_entra_sim::{Simulator, TapPolicy, permissions};
use serde_json::{Value, json};

const CLIENT_ID: &str = "0a1b2c3d-0000-4000-8000-00000000c0de";
const CLIENT_SECRET: &str = "console~secret.value";
const ADA: (&str, &str) = ("ada", "ada's long passphrase");
const BOB: &str = "bob@contoso.com";

fn oathdesk(vault: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("oathdesk").unwrap();
    cmd.env_remove("OATHDESK_SERVER")
        .env_remove("OATHDESK_DATABASE_URL")
        .env("OATHDESK_VAULT", vault)
        .env("OATHDESK_OPERATOR", ADA.0)
        .env("OATHDESK_PASSPHRASE", ADA.1)
        .args(args);
    cmd
}

/// The caller, verified by calling back the number on file.
fn verified(ticket: &str, evidence: &str) -> Value {
    json!({
        "user": BOB,
        "verifications": [{"method": "call-back", "confirmed": [true, true], "evidence": evidence}],
        "ticket": ticket,
    })
}

const EVIDENCE: &str = "called the mobile on file, Bob answered";

/// Waits until the simulator has accepted `count` messages.
fn mail_arrives(sim: &Simulator, count: usize) -> Vec<oathdesk_entra_sim::SentMail> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mail = sim.sent_mail();
        if mail.len() >= count || Instant::now() > deadline {
            return mail;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_console_issues_passes_and_tells_users_through_entra() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault.db");
    let sim = Simulator::start();
    sim.add_app(CLIENT_ID, CLIENT_SECRET, &permissions::ALL);
    sim.add_user(BOB, false);
    sim.add_user("helpdesk@contoso.com", false);
    oathdesk(
        &vault,
        &[
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ],
    )
    .assert()
    .success();
    let sheet = dir.path().join("sheet.csv");
    std::fs::write(
        &sheet,
        format!(
            "username,secret,serial,mobile,mail\n{BOB},GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,2100001,+1 555 0100,bob@example.org\n"
        ),
    )
    .unwrap();
    oathdesk(&vault, &["import", "spreadsheet", sheet.to_str().unwrap()])
        .assert()
        .success();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"tap": {"enabled": true, "lifetime_minutes": 60, "usable_once": true},
            "notify": {"on_release": true, "channel": "mail", "mail_from": "helpdesk@contoso.com",
                       "organisation": "Contoso IT"}}"#,
    )
    .unwrap();
    oathdesk(
        &vault,
        &["helpdesk", "policy", "set", policy.to_str().unwrap()],
    )
    .assert()
    .success();

    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, CLIENT_SECRET).unwrap();
    let vault_args = vec!["--vault".to_owned(), vault.display().to_string()];
    let cache = dir.path().join("tokens.json");
    let url = sim.url();
    let entra = [
        "--tenant",
        sim.tenant(),
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        secret.to_str().unwrap(),
        "--graph-url",
        &url,
        "--authority-url",
        &url,
        "--token-cache",
        cache.to_str().unwrap(),
    ];
    let server = Server::start_with("G", &vault_args, dir.path(), &entra);
    let setup = send(
        &server,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"operator": ADA.0, "passphrase": ADA.1})),
    );
    let ada = signed_in(&setup);

    let state = send(&server, &ada, "GET", "/api/v1/helpdesk/tap", None);
    assert_eq!(state.status, 200, "{}", state.body);
    assert_eq!(state.body["enabled"], true);
    assert_eq!(state.body["connected"], true);

    // The vault decides first: "x" is no evidence, and Entra is not asked.
    let refused = send(
        &server,
        &ada,
        "POST",
        "/api/v1/helpdesk/tap",
        Some(verified("INC0012345", "x")),
    );
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(sim.temporary_access_pass(BOB).is_none());
    // A pass is for the user, not a token.
    let mut with_serial = verified("INC0012345", EVIDENCE);
    with_serial["serial"] = json!("2100001");
    let wrong = send(
        &server,
        &ada,
        "POST",
        "/api/v1/helpdesk/tap",
        Some(with_serial),
    );
    assert_eq!(wrong.status, 400, "{}", wrong.body);

    let issued = send(
        &server,
        &ada,
        "POST",
        "/api/v1/helpdesk/tap",
        Some(verified("INC0012345", EVIDENCE)),
    );
    assert_eq!(issued.status, 200, "{}", issued.body);
    let pass = issued.body["temporary_access_pass"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pass.len() >= 8);
    assert_eq!(issued.body["user"], BOB);
    assert_eq!(issued.body["lifetime_minutes"], 60);
    assert_eq!(issued.body["usable_once"], true);
    assert!(issued.body.get("method_id").is_none());
    assert_eq!(
        sim.temporary_access_pass(BOB).unwrap().lifetime_in_minutes,
        60
    );

    // A code released: the console sends both notices (the pass's and the
    // code's) by mail through Graph, without `notify send`.
    let code = send(
        &server,
        &ada,
        "POST",
        "/api/v1/helpdesk/code",
        Some(verified("INC0012346", EVIDENCE)),
    );
    assert_eq!(code.status, 200, "{}", code.body);
    let mail = mail_arrives(&sim, 2);
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(mail.iter().all(|m| m.to == ["bob@example.org"]));
    let text: String = mail
        .iter()
        .map(|m| format!("{} {}", m.subject, m.body))
        .collect();
    assert!(
        text.contains("INC0012345") && text.contains("INC0012346"),
        "{text}"
    );
    assert!(!text.contains(&pass), "the pass is never in a notice");
    assert!(!text.contains(code.body["code"].as_str().unwrap()));

    // Entra's policy off: its reason reaches the operator, and is audited.
    sim.set_tap_policy(TapPolicy {
        enabled: false,
        ..TapPolicy::default()
    });
    let off = send(
        &server,
        &ada,
        "POST",
        "/api/v1/helpdesk/tap",
        Some(verified("INC0012347", EVIDENCE)),
    );
    assert_eq!(off.status, 502, "{}", off.body);
    assert_eq!(off.body["kind"], "entra_refused");
    assert!(
        off.error()
            .starts_with("Entra refused the Temporary Access Pass"),
        "{}",
        off.body
    );

    drop(server);
    let out = oathdesk(&vault, &["audit", "list", "--json"])
        .assert()
        .success();
    let log = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(!log.contains(&pass), "the pass is never in the audit log");
    let entries: Value = serde_json::from_str(&log).unwrap();
    let outcomes = |action: &str| -> Vec<String> {
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["outcome"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        outcomes("helpdesk.tap"),
        ["refused", "requested", "granted", "requested", "refused"]
    );
    assert_eq!(outcomes("notice.sent"), ["ok", "ok"]);
}

#[test]
fn a_console_without_entra_says_how_to_connect_it() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("vault.db");
    oathdesk(
        &vault,
        &[
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ],
    )
    .assert()
    .success();
    let vault_args = vec!["--vault".to_owned(), vault.display().to_string()];
    let server = Server::start_with("N", &vault_args, dir.path(), &[]);
    let setup = send(
        &server,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"operator": ADA.0, "passphrase": ADA.1})),
    );
    let ada = signed_in(&setup);
    let state = send(&server, &ada, "GET", "/api/v1/helpdesk/tap", None);
    assert_eq!(state.body["connected"], false, "{}", state.body);
    let asked = send(
        &server,
        &ada,
        "POST",
        "/api/v1/helpdesk/tap",
        Some(verified("INC0012345", EVIDENCE)),
    );
    assert_eq!(asked.status, 503, "{}", asked.body);
    assert!(asked.error().contains("--tenant"), "{}", asked.body);
}
