//! Issue 16, item 9: what the command line says on success and while
//! setting a key.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn oathdesk(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("oathdesk").unwrap();
    cmd.env_remove("OATHDESK_SECRET")
        .env_remove("OATHDESK_TRANSPORT")
        .env_remove("OATHDESK_DEVICE_KEY")
        .env_remove("OATHDESK_FILE_PASSWORD")
        .env_remove("OATHDESK_FILE_KEY")
        .env("OATHDESK_VAULT", dir.join("vault.db"))
        .env("OATHDESK_OPERATOR", "alice")
        .env("OATHDESK_PASSPHRASE", "pw")
        .current_dir(dir);
    cmd
}

fn init_vault(dir: &Path) {
    oathdesk(dir)
        .args([
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ])
        .assert()
        .success();
}

#[test]
fn set_key_does_not_ask_for_set_key() {
    let dir = tempfile::tempdir().unwrap();
    oathdesk(dir.path())
        .args(["device", "sim", "new", "molto.json"])
        .assert()
        .success();
    oathdesk(dir.path())
        .args([
            "device",
            "set-key",
            "--transport",
            "sim:molto.json",
            "--factory-key",
        ])
        .env("OATHDESK_DEVICE_NEW_KEY", "0123456789ABCDEF")
        .assert()
        .success()
        .stdout(predicate::str::contains("press ▲ on the token"))
        .stderr(predicate::str::contains("oathdesk device set-key").not());
}

#[test]
fn vault_set_and_export_say_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    init_vault(dir.path());
    oathdesk(dir.path())
        .args(["vault", "set", "purge.grace_seconds", "0"])
        .assert()
        .success()
        .stdout("purge.grace_seconds set to 0 (audited)\n");
    let out = dir.path().join("tokens.json");
    oathdesk(dir.path())
        .args(["export", "oathdesk", "--plaintext", "--out"])
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "oathdesk export written to {} (audited)",
            out.display()
        )));
    oathdesk(dir.path())
        .args(["export", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Formats: entra-csv, entra-json, pskc, privacyidea",
        ));
}

#[test]
fn a_helpdesk_code_longer_than_entra_accepts_is_refused_with_the_limit_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    init_vault(dir.path());
    oathdesk(dir.path())
        .args([
            "token",
            "add",
            "2100001",
            "--secret",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "--user",
            "bob@contoso.com",
        ])
        .assert()
        .success();
    let users = dir.path().join("users.csv");
    std::fs::write(
        &users,
        "upn,mobile_phone\nbob@contoso.com,+44 7700 900123\n",
    )
    .unwrap();
    oathdesk(dir.path())
        .args(["user", "import"])
        .arg(&users)
        .assert()
        .success();
    oathdesk(dir.path())
        .args([
            "helpdesk",
            "code",
            "--user",
            "bob@contoso.com",
            "--method",
            "call-back",
            "--confirm",
            "all",
            "--evidence",
            "called the mobile on file, Bob answered and confirmed",
            "--ticket",
            "INC0012345",
            "--valid-for",
            "10m",
            "--verifier",
            "entra",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no code stays accepted for 600 s under this verifier: with its window and this \
             token's time step, a code lasts at most 150 s (2½ min)",
        ));
    let audit = oathdesk(dir.path())
        .args(["audit", "list", "--json"])
        .output()
        .unwrap();
    let audit: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "refused" && e["detail"].to_string().contains("2½ min"));
    assert!(refused.is_some(), "{audit:#}");
}
