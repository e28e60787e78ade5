//! `token check`, `fleet drift`, `fleet eol` and `forensic` as an admin
//! runs them: a real process on a SQLite vault (the vault's own tests run
//! the same operations on PostgreSQL too).

use predicates::prelude::*;

mod common;
use common::desk::{Desk, SECRET};

/// The code of the desk's token seed at `at`, from `oathdesk code`.
fn code_at(desk: &Desk, at: u64) -> String {
    let output = desk
        .run(&["code", "--at", &at.to_string()])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_checked_token_shows_in_the_drift_report_and_forensic_answers_for_the_past() {
    let desk = Desk::new().with_secret_env(SECRET);
    desk.run(&[
        "token",
        "add",
        "2100000001",
        "--kind",
        "classic",
        "--user",
        "ann@contoso.com",
    ])
    .assert()
    .success();

    // Three steps fast, whatever the second within the step: the middle of
    // the step shown is 75–105 s ahead, outside Entra's ±1 minute. (Two
    // steps were 45–75 s, inside or out by the moment the test ran.)
    let code = code_at(&desk, now() + 90);
    desk.run(&["token", "check", "2100000001", &code])
        .assert()
        .success()
        .stdout(predicate::str::contains("3 step(s) ahead"));
    desk.run(&["token", "check", "2100000001", "000000"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not match 2100000001"));

    let report = desk.json(&["fleet", "drift", "--json"]);
    let line = &report["tokens"][0];
    assert_eq!(line["credential"], "2100000001", "{report}");
    assert_eq!(line["standing"], "outside", "{report}");
    assert_eq!(
        line["advice"],
        "replace it: a classic token's clock cannot be set"
    );
    desk.run(&["fleet", "drift", "--csv"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "token,serial,user,model,device_kind",
        ))
        .stdout(predicate::str::contains(
            "2100000001,2100000001,ann@contoso.com",
        ));
    desk.run(&["fleet", "drift", "--verifier", "okta"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown verifier"));
    // Days whose seconds overflow u64 (and anything past a century) are
    // refused, not wrapped round to a short horizon.
    for days in ["36526", "213503982334602", "18446744073709551615"] {
        desk.run(&["fleet", "drift", "--horizon-days", days])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("--horizon-days"))
            .stderr(predicate::str::contains("more than a century"));
    }
    let longest = desk.json(&["fleet", "drift", "--horizon-days", "36525", "--json"]);
    assert_eq!(longest["horizon_days"], 36525, "{longest}");

    // The battery is due five years on; 100 months ahead lists it.
    let due = desk.json(&["fleet", "eol", "--months", "100", "--json"]);
    assert_eq!(due[0]["serial"], "2100000001", "{due}");
    let due = desk.json(&["fleet", "eol", "--months", "6", "--json"]);
    assert_eq!(due, serde_json::json!([]));
    desk.run(&["token", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("BATTERY"));

    let then = now() - 86_400;
    let old = code_at(&desk, then);
    let found = desk.json(&[
        "forensic",
        &old,
        "--serial",
        "2100000001",
        "--from",
        &(then - 600).to_string(),
        "--to",
        &(then + 600).to_string(),
        "--json",
    ]);
    let step = then - then % 30;
    assert!(
        found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["current_from"] == step),
        "{found}"
    );
    desk.run(&[
        "forensic",
        &code,
        "--user",
        "ann@contoso.com",
        "--from",
        &(now() - 600).to_string(),
        "--to",
        "now",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains("at least 10 minutes ago"));
}
