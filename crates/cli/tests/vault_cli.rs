//! The vault commands as an operator uses them: real processes, a real
//! vault file, passphrases from the environment.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

struct Desk {
    _dir: tempfile::TempDir,
    vault: PathBuf,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        let desk = Desk { _dir: dir, vault };
        desk.run(&[
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ])
        .assert()
        .success();
        desk
    }

    fn run(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("oathdesk").unwrap();
        cmd.env_remove("OATHDESK_SECRET")
            .env("OATHDESK_VAULT", &self.vault)
            .env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice's passphrase")
            .args(args);
        cmd
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn current_code(secret: &str) -> String {
    let output = Command::cargo_bin("oathdesk")
        .unwrap()
        .args(["code", secret])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_token_from_stock_to_delivery() {
    let desk = Desk::new();
    desk.run(&["user", "add", "bob@contoso.com", "--name", "Bob"])
        .assert()
        .success();
    desk.run(&[
        "token",
        "add",
        "2100001",
        "--secret",
        "-",
        "--user",
        "bob@contoso.com",
    ])
    .write_stdin(format!("{SECRET}\n"))
    .assert()
    .success();
    desk.run(&["token", "ship", "2100001", "--note", "DHL 4711"])
        .assert()
        .success();

    // Helpdesk: refused without verification, granted with it.
    desk.run(&["helpdesk", "code", "--user", "bob@contoso.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "identity verification is required",
        ));
    let grant = desk.json(&[
        "helpdesk",
        "code",
        "--user",
        "bob@contoso.com",
        "--verified-by",
        "call-back",
        "--ticket",
        "INC-1",
        "--valid-for",
        "60",
        "--json",
    ]);
    assert_eq!(grant["user"], "bob@contoso.com");
    assert_eq!(grant["serial"], "2100001");
    assert_eq!(grant["slot"], Value::Null);
    assert_eq!(grant["code"].as_str().unwrap().len(), 6);
    assert!(grant["valid_until"].as_u64().is_some());

    // Delivery: the user reads the code off the token.
    let code = current_code(SECRET);
    let delivered = desk.json(&["token", "deliver", "2100001", "--code", &code, "--json"]);
    assert_eq!(delivered["purged"], true);
    let shown = desk.json(&["token", "show", "2100001", "--json"]);
    assert_eq!(shown["token"]["state"], "delivered");
    assert_eq!(shown["token"]["custody"], "purged");
    let history: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(history, vec!["assigned", "shipped", "delivered"]);
    desk.run(&[
        "helpdesk",
        "code",
        "--user",
        "bob@contoso.com",
        "--verified-by",
        "call-back",
        "--ticket",
        "INC-2",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains("was purged after delivery"));

    // The audit log holds all of it, and is intact.
    let audit = desk.json(&["audit", "list", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "vault.init",
            "user.add",
            "token.add",
            "token.shipped",
            "helpdesk.code",
            "helpdesk.code",
            "token.deliver",
            "helpdesk.code"
        ]
    );
    desk.run(&["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("audit log intact: 8 entries"));
}

#[test]
fn wrong_passphrase_and_missing_vault_are_clear() {
    let desk = Desk::new();
    desk.run(&["token", "list"])
        .env("OATHDESK_PASSPHRASE", "not it")
        .assert()
        .code(1)
        .stderr("oathdesk: error: wrong passphrase for operator 'alice'; nothing was changed\n");
    desk.run(&["token", "list"])
        .env("OATHDESK_VAULT", desk.vault.with_extension("missing"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "create one with 'oathdesk vault init'",
        ));
    // No passphrase and no terminal: say how to give one.
    desk.run(&["token", "list"])
        .env_remove("OATHDESK_PASSPHRASE")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("set OATHDESK_PASSPHRASE"));
}

#[test]
fn audit_verify_names_a_tampered_entry() {
    let desk = Desk::new();
    desk.run(&["user", "add", "carol@contoso.com"])
        .assert()
        .success();
    desk.run(&["user", "add", "dave@contoso.com"])
        .assert()
        .success();
    let head = desk.json(&["audit", "verify", "--json"])["head"]
        .as_str()
        .unwrap()
        .to_owned();
    desk.run(&["user", "add", "erin@contoso.com"])
        .assert()
        .success();
    desk.run(&["audit", "verify", "--expect-head", &head])
        .assert()
        .success();
    edit(
        &desk.vault,
        "UPDATE audit SET user = 'mallory@contoso.com' WHERE seq = 2",
    );
    desk.run(&["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("audit entry 2 is bad"));
}

#[test]
fn removing_the_newest_entries_is_caught_with_the_kept_head() {
    let desk = Desk::new();
    desk.run(&["user", "add", "carol@contoso.com"])
        .assert()
        .success();
    let head = desk.json(&["audit", "verify", "--json"])["head"]
        .as_str()
        .unwrap()
        .to_owned();
    edit(&desk.vault, "DELETE FROM audit WHERE seq = 2");
    desk.run(&["audit", "verify", "--expect-head", &head])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "entries were removed from its end",
        ));
}

/// Changes the vault file behind oathdesk's back, as someone with write
/// access to the file but no key could.
fn edit(vault: &Path, sql: &str) {
    rusqlite::Connection::open(vault)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

#[test]
fn two_processes_changing_the_vault_lose_nothing() {
    let desk = Desk::new();
    let spawn = |prefix: &str| {
        let mut children = Vec::new();
        for i in 0..6 {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"));
            cmd.env("OATHDESK_VAULT", &desk.vault)
                .env("OATHDESK_OPERATOR", "alice")
                .env("OATHDESK_PASSPHRASE", "alice's passphrase")
                .args(["user", "add", &format!("{prefix}{i}@contoso.com")]);
            children.push(cmd.spawn().unwrap());
        }
        children
    };
    let mut children = spawn("a");
    children.extend(spawn("b"));
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let users = desk.json(&["user", "list", "--json"]);
    assert_eq!(users.as_array().unwrap().len(), 12);
    desk.run(&["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("13 entries"));
}

#[test]
fn spreadsheet_import_is_all_or_nothing() {
    let desk = Desk::new();
    let sheet = desk.vault.with_file_name("helpdesk.csv");
    std::fs::write(
        &sheet,
        "Username,Secret,Serial\n\
         carol@contoso.com,JBSW Y3DP EHPK 3PXP,T-1\n\
         dave@contoso.com,3132333435363738393031323334353637383930,T-2\n",
    )
    .unwrap();
    desk.run(&["import", "spreadsheet", sheet.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("line 3, secret: looks like hex"))
        .stderr(predicate::str::contains("nothing was imported"));
    assert_eq!(
        desk.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    desk.run(&[
        "import",
        "spreadsheet",
        sheet.to_str().unwrap(),
        "--skip-bad",
    ])
    .assert()
    .success()
    .stdout("imported 1 credential(s) from ".to_owned() + sheet.to_str().unwrap() + ", 1 skipped\n")
    .stderr(predicate::str::contains("Destroy the plaintext file"));
    // The imported token answers identify.
    let code = current_code("JBSWY3DPEHPK3PXP");
    let found = desk.json(&["identify", &code, "--json"]);
    assert_eq!(found["matches"][0]["credential"], "T-1");
    assert_eq!(found["matches"][0]["user"], "carol@contoso.com");
}

#[test]
fn a_second_operator_and_rekey() {
    let desk = Desk::new();
    let bob_pass = desk.vault.with_file_name("bob.pass");
    std::fs::write(&bob_pass, "bob's passphrase\n").unwrap();
    desk.run(&[
        "operator",
        "add",
        "bob",
        "--new-passphrase-file",
        bob_pass.to_str().unwrap(),
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ])
    .assert()
    .success();
    let as_bob = |args: &[&str]| {
        let mut cmd = desk.run(args);
        cmd.env("OATHDESK_OPERATOR", "bob")
            .env("OATHDESK_PASSPHRASE", "bob's passphrase");
        cmd
    };
    as_bob(&["user", "add", "frank@contoso.com"])
        .assert()
        .success();
    let operators = desk.json(&["operator", "list", "--json"]);
    assert_eq!(operators.as_array().unwrap().len(), 2);
    desk.run(&["operator", "remove", "bob"]).assert().success();
    desk.run(&["vault", "rekey"]).assert().success();
    as_bob(&["user", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no operator named 'bob'"));
    desk.run(&["audit", "verify"]).assert().success();
}
