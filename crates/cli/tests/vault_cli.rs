//! The vault commands as an operator uses them: real processes, a real
//! vault, passphrases from the environment. Every test runs on a SQLite file
//! (`sqlite::NAME`) and on PostgreSQL (`postgres::NAME`).

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::desk::{Backend, Desk, SECRET};
use oathdesk_vault::testing::ScratchSchema;

/// How the helpdesk verified the caller, as the default policy asks: the
/// call-back method, both steps confirmed, what was heard.
const CALL_BACK: [&str; 6] = [
    "--method",
    "call-back",
    "--confirm",
    "all",
    "--evidence",
    "called the mobile on file, the user answered and confirmed",
];

/// Generates `sqlite::NAME` and `postgres::NAME` tests from each
/// `fn NAME(backend: Backend)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Backend::Postgres) })*
        }
    };
}

on_both_backends!(
    a_token_from_stock_to_delivery,
    wrong_passphrase_and_missing_vault_are_clear,
    audit_verify_names_a_tampered_entry,
    removing_the_newest_entries_is_caught_with_the_kept_head,
    the_head_file_catches_a_cut_without_a_hand_kept_head,
    rows_edited_in_the_database_are_refused_and_listed,
    two_processes_changing_the_vault_lose_nothing,
    spreadsheet_import_is_all_or_nothing,
    a_second_operator_and_rekey,
    the_command_line_decides_by_the_vaults_table,
    racing_processes_keep_one_history,
);

/// What these tests do at a desk besides running commands.
trait VaultDesk {
    fn on_file(&self, users: &[&str]);
    fn helpdesk_code(&self, user: &str, ticket: &str, extra: &[&str]) -> Command;
}

impl VaultDesk for Desk {
    /// Gives users a mobile phone on file (`user import`), which the
    /// call-back method needs.
    fn on_file(&self, users: &[&str]) {
        let csv = self.file("directory.csv");
        let mut text = String::from("upn,mobile_phone\n");
        for (i, user) in users.iter().enumerate() {
            text.push_str(&format!("{user},+44 7700 90{i:04}\n"));
        }
        std::fs::write(&csv, text).unwrap();
        self.run(&["user", "import", csv.to_str().unwrap()])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!(
                "{} user(s) updated",
                users.len()
            )));
    }

    /// `helpdesk code` for `user` with a call-back verification and `extra`.
    fn helpdesk_code(&self, user: &str, ticket: &str, extra: &[&str]) -> Command {
        let mut args = vec!["helpdesk", "code", "--user", user];
        args.extend(CALL_BACK);
        args.extend(["--ticket", ticket]);
        args.extend(extra);
        self.run(&args)
    }
}

fn code_at(secret: &str, at: u64) -> String {
    let output = Command::cargo_bin("oathdesk")
        .unwrap()
        .args(["code", secret, "--at", &at.to_string()])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn current_code(secret: &str) -> String {
    let output = Command::cargo_bin("oathdesk")
        .unwrap()
        .args(["code", secret])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn a_token_from_stock_to_delivery(backend: Backend) {
    let desk = Desk::on(backend);
    desk.run(&["user", "add", "bob@contoso.com", "--name", "Bob"])
        .assert()
        .success();
    desk.on_file(&["bob@contoso.com"]);
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
    desk.run(&[
        "helpdesk",
        "code",
        "--user",
        "bob@contoso.com",
        "--ticket",
        "INC0001001",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(
        "say how the caller was verified: choose a method (call-back, manager, video-id, in-person)",
    ));
    let output = desk
        .helpdesk_code(
            "bob@contoso.com",
            "INC0001001",
            &["--valid-for", "60", "--json"],
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let grant: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(grant["user"], "bob@contoso.com");
    assert_eq!(grant["serial"], "2100001");
    assert_eq!(grant["slot"], Value::Null);
    assert_eq!(grant["code"].as_str().unwrap().len(), 6);
    assert!(grant["valid_until"].as_u64().is_some());

    // Delivery: the code the helpdesk gave out proves nothing about the
    // token (exit 2, like a code that did not verify)...
    let released = grant["code"].as_str().unwrap();
    desk.run(&["token", "deliver", "2100001", "--code", released])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "this code was given out by the helpdesk",
        ));
    // A code the token does not show (here: the one of 1970) did not
    // verify: exit 2, by the error's type, and nothing changes.
    let wrong = code_at(SECRET, 0);
    desk.run(&["token", "deliver", "2100001", "--code", &wrong])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the code does not match 2100001"));
    let shown = desk.json(&["token", "show", "2100001", "--json"]);
    assert_eq!(shown["token"]["state"], "shipped");
    // ...the next one the token shows does.
    let next = code_at(SECRET, (grant["counter"].as_u64().unwrap() + 1) * 30);
    let delivered = desk.json(&["token", "deliver", "2100001", "--code", &next, "--json"]);
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
    desk.helpdesk_code("bob@contoso.com", "INC0001002", &[])
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
            "vault.sign_rows",
            "user.add",
            "user.facts_update",
            "token.add",
            "token.shipped",
            "helpdesk.code",
            "helpdesk.code",
            "token.deliver",
            "token.deliver",
            "token.deliver",
            "helpdesk.code"
        ]
    );
    assert_eq!(audit[8]["outcome"], "refused", "the released code");
    assert_eq!(audit[9]["outcome"], "refused", "the wrong code");
    // The grant records how the caller was verified.
    assert_eq!(audit[7]["ticket"], "INC0001001");
    assert_eq!(
        audit[7]["detail"]["methods"],
        serde_json::json!(["call-back"])
    );
    assert_eq!(audit[7]["detail"]["evidence"][0], CALL_BACK[5]);
    desk.run(&["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("audit log intact: 12 entries"));
}

fn wrong_passphrase_and_missing_vault_are_clear(backend: Backend) {
    let desk = Desk::on(backend);
    desk.run(&["token", "list"])
        .env("OATHDESK_PASSPHRASE", "not it")
        .assert()
        .code(1)
        .stderr("oathdesk: error: wrong passphrase for operator 'alice'; nothing was changed\n");
    let elsewhere = ScratchSchema::new();
    let mut missing = desk.run(&["token", "list"]);
    match backend {
        Backend::Sqlite => missing.env("OATHDESK_VAULT", desk.file("missing.db")),
        Backend::Postgres => missing.env("OATHDESK_DATABASE_URL", elsewhere.url()),
    };
    missing.assert().code(1).stderr(predicate::str::contains(
        "create one with 'oathdesk vault init'",
    ));
    // No passphrase and no terminal: say how to give one.
    desk.run(&["token", "list"])
        .env_remove("OATHDESK_PASSPHRASE")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("set OATHDESK_PASSPHRASE"));
}

fn audit_verify_names_a_tampered_entry(backend: Backend) {
    let desk = Desk::on(backend);
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
    desk.edit("UPDATE audit SET \"user\" = 'mallory@contoso.com' WHERE seq = 2");
    desk.run(&["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("audit entry 2 is bad"));
}

fn removing_the_newest_entries_is_caught_with_the_kept_head(backend: Backend) {
    let desk = Desk::on(backend);
    desk.run(&["user", "add", "carol@contoso.com"])
        .assert()
        .success();
    let head = desk.json(&["audit", "verify", "--json"])["head"]
        .as_str()
        .unwrap()
        .to_owned();
    // Entries 1 and 2 are the vault's creation; 3 is carol's.
    desk.edit("DELETE FROM audit WHERE seq = 3");
    desk.run(&["audit", "verify", "--expect-head", &head])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "entries were removed from its end",
        ));
}

/// Every entry's head goes to OATHDESK_AUDIT_HEAD_FILE as it is written:
/// cutting the newest entries off is caught from that file alone.
fn the_head_file_catches_a_cut_without_a_hand_kept_head(backend: Backend) {
    let desk = Desk::on(backend);
    let heads = desk.file("heads.jsonl");
    let with_heads = |args: &[&str]| {
        let mut cmd = desk.run(args);
        cmd.env("OATHDESK_AUDIT_HEAD_FILE", &heads);
        cmd
    };
    with_heads(&["user", "add", "carol@contoso.com"])
        .assert()
        .success();
    with_heads(&["user", "add", "dan@contoso.com"])
        .assert()
        .success();
    let lines = std::fs::read_to_string(&heads).unwrap();
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per entry");
    assert_eq!(lines[1]["seq"], 4);
    assert_eq!(lines[1]["action"], "user.add");
    let verified = desk.json(&["audit", "verify", "--json"]);
    assert_eq!(verified["head"], lines[1]["audit_head"]);
    let expect = format!("@{}", heads.display());
    desk.run(&["audit", "verify", "--expect-head", &expect])
        .assert()
        .success();
    // A line copied from the log works as well.
    desk.run(&["audit", "verify", "--expect-head", &lines[1].to_string()])
        .assert()
        .success();
    desk.edit("DELETE FROM audit WHERE seq = 4");
    desk.run(&["audit", "verify", "--expect-head", &expect])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "entries were removed from its end",
        ));
    desk.run(&["audit", "verify", "--expect-head", "4:nothex"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a head"));
}

/// The red team's edit through the command line: refused with exit 2,
/// and 'vault verify' names the row (exit 2).
fn rows_edited_in_the_database_are_refused_and_listed(backend: Backend) {
    let desk = Desk::on(backend);
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
    desk.on_file(&["bob@contoso.com"]);
    desk.run(&["token", "lost", "2100001"]).assert().success();
    desk.run(&["vault", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("vault intact"));
    desk.edit("UPDATE credentials SET state = 'assigned'");
    desk.helpdesk_code("bob@contoso.com", "INC0001009", &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "credential 1 (serial 2100001) was altered outside oathdesk",
        ));
    desk.run(&["vault", "verify"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "credential 1 (serial 2100001): altered",
        ))
        .stdout(predicate::str::contains("VAULT ALTERED"));
    let report = desk.run(&["vault", "verify", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["rows"]["bad"][0]["kind"], "credential");
}

fn two_processes_changing_the_vault_lose_nothing(backend: Backend) {
    let desk = Desk::on(backend);
    let spawn = |prefix: &str| {
        let mut children = Vec::new();
        for i in 0..6 {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"));
            desk.point_at_vault(&mut cmd);
            cmd.env("OATHDESK_OPERATOR", "alice")
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
        .stdout(predicate::str::contains("14 entries"));
}

/// Twelve processes at once: helpdesk codes for one user (limit 3), the
/// same token shipped four times, users added. Exactly three codes, one
/// shipment, every user, and one verifiable chain with every request in it.
fn racing_processes_keep_one_history(backend: Backend) {
    let desk = Desk::on(backend);
    desk.run(&["vault", "set", "helpdesk.codes_per_hour", "3"])
        .assert()
        .success();
    for (serial, user) in [("T-1", "bob@contoso.com"), ("S-1", "carol@contoso.com")] {
        desk.run(&["token", "add", serial, "--secret", "-", "--user", user])
            .write_stdin(format!("{SECRET}\n"))
            .assert()
            .success();
    }
    desk.on_file(&["carol@contoso.com"]);
    let spawn = |args: &[&str]| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"));
        desk.point_at_vault(&mut cmd);
        cmd.env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice's passphrase")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        (args[0].to_owned(), cmd.spawn().unwrap())
    };
    let mut children = Vec::new();
    for i in 0..4 {
        let mut helpdesk = vec!["helpdesk", "code", "--user", "carol@contoso.com"];
        helpdesk.extend(CALL_BACK);
        helpdesk.extend(["--ticket", "INC0000009"]);
        children.push(spawn(&helpdesk));
        children.push(spawn(&["token", "ship", "T-1"]));
        children.push(spawn(&["user", "add", &format!("p{i}@contoso.com")]));
    }
    let mut succeeded: std::collections::HashMap<String, usize> = Default::default();
    for (command, child) in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            *succeeded.entry(command).or_default() += 1;
        } else {
            assert!(
                stderr.contains("rate limit") || stderr.contains("cannot become shipped"),
                "{command}: {stderr}"
            );
        }
    }
    assert_eq!(succeeded["helpdesk"], 3, "{succeeded:?}");
    assert_eq!(succeeded["token"], 1, "{succeeded:?}");
    assert_eq!(succeeded["user"], 4, "{succeeded:?}");
    let audit = desk.json(&["audit", "list", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let count = |action: &str| actions.iter().filter(|a| **a == action).count();
    // init, signing, set, 2 token.add, carol's data on file; then 4 codes
    // (granted or refused), 1 ship, 4 users.
    assert_eq!(actions.len(), 6 + 4 + 1 + 4, "{actions:?}");
    assert_eq!(count("helpdesk.code"), 4);
    assert_eq!(count("token.shipped"), 1);
    assert_eq!(count("user.add"), 4);
    desk.run(&["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("audit log intact: 15 entries"));
}

fn spreadsheet_import_is_all_or_nothing(backend: Backend) {
    let desk = Desk::on(backend);
    let sheet = desk.file("helpdesk.csv");
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

fn a_second_operator_and_rekey(backend: Backend) {
    let desk = Desk::on(backend);
    let bob_pass = desk.file("bob.pass");
    std::fs::write(&bob_pass, "bob's passphrase\n").unwrap();
    desk.run(&[
        "operator",
        "add",
        "bob",
        "--role",
        "provisioner",
        "--new-passphrase-file",
        bob_pass.to_str().unwrap(),
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains(
        "operator bob added as provisioner",
    ));
    let as_bob = |args: &[&str]| {
        let mut cmd = desk.run(args);
        cmd.env("OATHDESK_OPERATOR", "bob")
            .env("OATHDESK_PASSPHRASE", "bob's passphrase");
        cmd
    };
    as_bob(&["user", "add", "frank@contoso.com"])
        .assert()
        .success();
    // A provisioner may change the inventory, not the settings: the same
    // refusal as the console's, audited.
    as_bob(&["vault", "set", "helpdesk.codes_per_hour", "1000"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the provisioner role may not manage accounts, operators and settings",
        ));
    let operators = desk.json(&["operator", "list", "--json"]);
    assert_eq!(operators.as_array().unwrap().len(), 2);
    assert_eq!(operators[0]["role"], "admin");
    assert_eq!(operators[1]["role"], "provisioner");
    assert_eq!(operators[1]["key_slot"], true);
    // A helpdesk operator signs in with a passphrase but holds no key, and
    // the list says so rather than only "passphrase".
    let hana_pass = desk.file("hana.pass");
    std::fs::write(&hana_pass, "hana's passphrase\n").unwrap();
    desk.run(&[
        "operator",
        "add",
        "hana",
        "--role",
        "helpdesk",
        "--new-passphrase-file",
        hana_pass.to_str().unwrap(),
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ])
    .assert()
    .success();
    let operators = desk.json(&["operator", "list", "--json"]);
    assert_eq!(operators[2]["key_slot"], false);
    desk.run(&["operator", "list"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^hana +helpdesk +passphrase, no key ").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^bob +provisioner +passphrase +added").unwrap());
    desk.run(&["operator", "remove", "hana"]).assert().success();
    let audit = desk.json(&["audit", "list", "--json"]);
    let refusal = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "forbidden")
        .expect("the refusal is audited");
    assert_eq!(refusal["operator"], "bob");
    assert_eq!(refusal["outcome"], "refused");
    assert_eq!(refusal["detail"]["permission"], "admin");
    desk.run(&["operator", "remove", "bob"]).assert().success();
    desk.run(&["vault", "rekey"]).assert().success();
    as_bob(&["user", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no operator named 'bob'"));
    desk.run(&["audit", "verify"]).assert().success();
}

fn oathdesk() -> Command {
    let mut cmd = Command::cargo_bin("oathdesk").unwrap();
    cmd.env_remove("OATHDESK_VAULT")
        .env_remove("OATHDESK_DATABASE_URL")
        .env("OATHDESK_OPERATOR", "alice")
        .env("OATHDESK_PASSPHRASE", "alice's passphrase");
    cmd
}

#[test]
fn database_urls_name_a_file_or_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let url = format!("sqlite://{}", path.display());
    oathdesk()
        .args([
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ])
        .args(["--database", &url])
        .assert()
        .success()
        .stderr(format!(
            "oathdesk: created {} with operator alice\n",
            path.display()
        ));
    // The same vault as a plain path, an sqlite: URL and through --vault.
    oathdesk()
        .args(["user", "add", "bob@contoso.com", "--database"])
        .arg(&path)
        .assert()
        .success();
    oathdesk()
        .args(["user", "list", "--json"])
        .env(
            "OATHDESK_DATABASE_URL",
            format!("sqlite:{}", path.display()),
        )
        .assert()
        .success()
        .stdout(predicate::str::contains("bob@contoso.com"));
    oathdesk()
        .args(["user", "list", "--vault"])
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("bob@contoso.com"));

    // Two places at once is a mistake, said clearly.
    oathdesk()
        .args(["user", "list", "--vault"])
        .arg(&path)
        .args(["--database", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot be used with"));
    oathdesk()
        .args(["user", "list"])
        .env("OATHDESK_VAULT", &path)
        .env("OATHDESK_DATABASE_URL", &url)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "both OATHDESK_DATABASE_URL and OATHDESK_VAULT are set",
        ));
    oathdesk()
        .args(["user", "list", "--database", "mysql://db/vault"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown database 'mysql://'"));
}

#[test]
fn a_password_in_the_url_is_never_shown() {
    // Nothing listens on port 1: the connection fails, and says where to.
    oathdesk()
        .args([
            "token",
            "list",
            "--database",
            "postgres://alice:s3cret-pw@127.0.0.1:1/vault",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot connect to PostgreSQL at postgres://alice:***@127.0.0.1:1/vault",
        ))
        .stderr(predicate::str::contains("s3cret-pw").not());
}

#[test]
fn a_postgres_vault_lives_in_its_schema() {
    let schema = ScratchSchema::new();
    let url = schema.url();
    oathdesk()
        .args([
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ])
        .args(["--database", &url])
        .assert()
        .success()
        .stderr(format!("oathdesk: created {url} with operator alice\n"));
    oathdesk()
        .args(["vault", "init", "--database", &url])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    let tables: Vec<String> = schema
        .client()
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&schema.name()],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "audit",
            "audit_keys",
            "credentials",
            "devices",
            "drift_series",
            "drift_sightings",
            "entra_links",
            "events",
            "identify_gone",
            "identify_marker",
            "import_batches",
            "import_generations",
            "import_records",
            "meta",
            "operators",
            "records",
            "released_steps",
            "row_macs",
            "schema_migrations",
            "users",
            "web_accounts",
            "web_grants",
            "web_throttle"
        ]
    );
}

#[test]
fn vault_copy_there_and_back() {
    let desk = Desk::new();
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
    let tokens = desk.json(&["token", "list", "--json"]);
    let schema = ScratchSchema::new();
    let copied = desk.json(&["vault", "copy", "--to", &schema.url(), "--json"]);
    assert_eq!(copied["to"], schema.url());
    assert_eq!(copied["tables"]["credentials"], 1);
    assert_eq!(copied["audit_entries"], 4, "{copied}");
    desk.run(&["vault", "copy", "--to", &schema.url()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "already holds a vault: pass --replace",
        ));

    // Back from PostgreSQL into a new file: the same tokens, an intact log
    // whose newest entries are the two copies.
    let back = desk.file("back.db");
    desk.run(&[
        "vault",
        "copy",
        "--from",
        &schema.url(),
        "--to",
        back.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("audit log intact: 5 entries"));
    let in_file = |args: &[&str]| {
        let mut cmd = desk.run(args);
        cmd.env("OATHDESK_VAULT", &back);
        cmd
    };
    let output = in_file(&["token", "list", "--json"]).output().unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&output.stdout).unwrap(),
        tokens
    );
    in_file(&["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("audit log intact: 5 entries"));
    let audit: Value = serde_json::from_slice(
        &in_file(&["audit", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let copies: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "vault.copy")
        .map(|e| e["detail"]["to"].as_str().unwrap())
        .collect();
    assert_eq!(copies, [schema.url().as_str(), back.to_str().unwrap()]);
    desk.run(&["vault", "copy", "--to", desk.vault.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--from and --to are the same vault",
        ));
}

/// The command line asks the vault's permission table, like the console:
/// a provisioner's commands are allowed or refused exactly as
/// `Role::permits` says, with the console's words; helpdesk and auditor
/// operators hold no key, so their passphrase opens nothing here.
fn the_command_line_decides_by_the_vaults_table(backend: Backend) {
    use oathdesk_vault::{Permission, Role};
    let desk = Desk::on(backend);
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
    for (name, role) in [
        ("pia", "provisioner"),
        ("hal", "helpdesk"),
        ("aud", "auditor"),
    ] {
        let pass = desk.file(&format!("{name}.pass"));
        std::fs::write(&pass, format!("{name}'s passphrase\n")).unwrap();
        desk.run(&[
            "operator",
            "add",
            name,
            "--role",
            role,
            "--new-passphrase-file",
            pass.to_str().unwrap(),
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ])
        .assert()
        .success();
    }
    let as_op = |name: &str, args: &[&str]| {
        let mut cmd = desk.run(args);
        cmd.env("OATHDESK_OPERATOR", name)
            .env("OATHDESK_PASSPHRASE", format!("{name}'s passphrase"));
        cmd.output().unwrap()
    };
    let commands: [(Permission, &[&str]); 6] = [
        (Permission::InventoryRead, &["token", "list"]),
        (Permission::Export, &["export", "entra-csv", "--plaintext"]),
        (
            Permission::Admin,
            &["vault", "set", "helpdesk.codes_per_hour", "1000"],
        ),
        (Permission::AuditRead, &["audit", "list"]),
        (
            Permission::InventoryWrite,
            &["user", "add", "new@contoso.com"],
        ),
        (
            Permission::HelpdeskCode,
            &[
                "helpdesk",
                "code",
                "--user",
                "bob@contoso.com",
                "--method",
                "call-back",
                "--confirm",
                "all",
                "--evidence",
                "called the mobile on file, Bob answered",
                "--ticket",
                "INC0000001",
            ],
        ),
    ];
    for (permission, args) in commands {
        let output = as_op("pia", args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if Role::Provisioner.permits(permission) {
            assert!(output.status.success(), "{args:?}: {stderr}");
        } else {
            assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "the provisioner role may not {}",
                    permission.describe()
                )),
                "{args:?}: {stderr}"
            );
        }
        for name in ["hal", "aud"] {
            let output = as_op(name, args);
            assert_eq!(output.status.code(), Some(1), "{name} {args:?}");
            assert!(
                String::from_utf8_lossy(&output.stderr).contains("holds no key of the vault"),
                "{name} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    // Every refusal of the provisioner is in the audit log.
    let audit = desk.json(&["audit", "list", "--json"]);
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "forbidden" && e["operator"] == "pia")
        .count();
    let expected = commands
        .iter()
        .filter(|(p, _)| !Role::Provisioner.permits(*p))
        .count();
    assert_eq!(refused, expected);
}
