//! Issue 16, items 5, 7 and 9 through the real binary, a real vault file and
//! the Graph simulator: lost tokens reaching Entra by the `entra.on_lost`
//! policy, the "I uploaded the CSV we exported" path, and one Argon2id
//! minimum.

use std::path::PathBuf;

use assert_cmd::Command;
use oathdesk_entra_sim::{Simulator, permissions};
use predicates::prelude::*;
use serde_json::Value;

const CLIENT_ID: &str = "0a1b2c3d-0000-4000-8000-00000000c11e";
const CLIENT_SECRET: &str = "cli~secret.value";
const SEED_1: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SEED_2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SEED_3: &str = "KRUGS4ZANFZSAYJAOR2XA3DFEBZWKZLE";

struct Desk {
    dir: tempfile::TempDir,
    vault: PathBuf,
    cache: PathBuf,
    sim: Simulator,
}

impl Desk {
    fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        let cache = dir.path().join("cache").join("entra-tokens.json");
        let sim = Simulator::start();
        sim.add_app(CLIENT_ID, CLIENT_SECRET, &permissions::ALL);
        sim.add_user("bob@contoso.com", false);
        let desk = Desk {
            dir,
            vault,
            cache,
            sim,
        };
        desk.init(&desk.vault);
        desk
    }

    fn init(&self, vault: &PathBuf) {
        self.run(&[
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ])
        .env("OATHDESK_VAULT", vault)
        .assert()
        .success();
    }

    /// The vault configured, Graph not (no tenant, app or secret): what an
    /// admin's laptop without the Entra app looks like.
    fn offline(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("oathdesk").unwrap();
        cmd.env_remove("OATHDESK_SECRET")
            .env_remove("OATHDESK_ENTRA_CLIENT_SECRET")
            .env_remove("OATHDESK_ENTRA_CERTIFICATE")
            .env_remove("OATHDESK_ENTRA_TENANT")
            .env_remove("OATHDESK_ENTRA_CLIENT_ID")
            .env("OATHDESK_VAULT", &self.vault)
            .env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice's passphrase")
            .args(args);
        cmd
    }

    /// With the simulator and the app's client secret configured.
    fn run(&self, args: &[&str]) -> Command {
        let mut cmd = self.offline(args);
        cmd.env("OATHDESK_GRAPH_URL", self.sim.url())
            .env("OATHDESK_AUTHORITY_URL", self.sim.url())
            .env("OATHDESK_ENTRA_TENANT", self.sim.tenant())
            .env("OATHDESK_ENTRA_CLIENT_ID", CLIENT_ID)
            .env("OATHDESK_ENTRA_TOKEN_CACHE", &self.cache)
            .env("OATHDESK_ENTRA_CLIENT_SECRET", CLIENT_SECRET);
        cmd
    }

    fn add(&self, token: &str, secret: &str, extra: &[&str]) {
        let mut args = vec!["token", "add", token, "--secret", secret];
        args.extend_from_slice(extra);
        self.run(&args).assert().success();
    }

    fn status_of(&self, serial: &str) -> Option<(String, Option<String>)> {
        self.sim
            .devices()
            .into_iter()
            .find(|d| d.serial == serial)
            .map(|d| (d.status, d.assigned_to))
    }

    fn audit_actions(&self) -> Vec<String> {
        let out = self
            .run(&["audit", "list", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let entries: Value = serde_json::from_slice(&out).unwrap();
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn a_lost_token_is_reported_then_unassigned_or_deleted_by_the_on_lost_policy() {
    let desk = Desk::new();
    let bob = ["--user", "bob@contoso.com"];
    desk.add(
        "MOLTO:1",
        SEED_1,
        &[&["--kind", "multi-profile"][..], &bob].concat(),
    );
    desk.add("MOLTO:2", SEED_2, &bob);
    desk.add("MOLTO:3", SEED_3, &bob);
    desk.run(&["entra", "push", "--activate"])
        .assert()
        .success();
    assert_eq!(desk.status_of("MOLTO-01").unwrap().0, "activated");

    // Default policy `report`: Entra is left alone, and both the command
    // and every sync say so (before this change: "3 in sync, 0 differences").
    desk.run(&["token", "lost", "MOLTO:1"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("still assigned in Entra")
                .and(predicate::str::contains("entra.on_lost is 'report'")),
        );
    assert_eq!(desk.status_of("MOLTO-01").unwrap().0, "activated");
    let sync = desk.run(&["entra", "sync"]).assert().code(2);
    let out = text(&sync.get_output().stdout);
    let lost_line = out
        .lines()
        .find(|l| l.starts_with("lost"))
        .unwrap_or_else(|| panic!("no 'lost' difference in:\n{out}"));
    assert!(
        lost_line.contains("MOLTO:1") && lost_line.contains("MOLTO-01"),
        "{out}"
    );
    assert!(text(&sync.get_output().stderr).contains("1 difference(s)"));

    // The policy is a signed vault setting, set by name and shown by name.
    desk.run(&["vault", "set", "entra.on_lost", "unassign"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "entra.on_lost set to unassign (audited)",
        ));
    desk.run(&["vault", "set", "entra.on_lost", "shred"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("report, unassign or delete"));
    desk.run(&["vault", "settings"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"entra\.on_lost +unassign").unwrap());

    // Without Graph configured the work is queued (and audited) ...
    desk.offline(&["token", "retire", "MOLTO:2"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "entra.on_lost = unassign is queued",
        ));
    assert_eq!(desk.status_of("MOLTO-02").unwrap().0, "activated");
    assert!(
        desk.audit_actions()
            .iter()
            .any(|a| a == "entra.on_lost.queued")
    );

    // ... and the next sync does it, for the queued token and the one lost
    // under `report` alike; nothing is left to report afterwards.
    let sync = desk.run(&["entra", "sync"]).assert().success();
    let out = text(&sync.get_output().stdout);
    assert!(
        out.contains("MOLTO:1") && out.contains("unassigned"),
        "{out}"
    );
    assert!(out.contains("MOLTO:2"), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("lost")), "{out}");
    for serial in ["MOLTO-01", "MOLTO-02"] {
        let (status, user) = desk.status_of(serial).unwrap();
        assert_eq!((status.as_str(), user), ("available", None), "{serial}");
    }
    desk.run(&["entra", "sync"])
        .assert()
        .success()
        .stderr(predicate::str::contains("0 difference(s)"));

    // With Graph configured, `token lost` acts at once: here, delete.
    desk.run(&["vault", "set", "entra.on_lost", "delete"])
        .assert()
        .success();
    desk.run(&["token", "lost", "MOLTO:3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("deleted"));
    assert!(desk.status_of("MOLTO-03").is_none(), "still in Entra");
    assert_eq!(desk.status_of("MOLTO-01").unwrap().0, "available");
}

#[test]
fn an_uploaded_csv_export_is_this_vaults_and_reimports_with_device_and_slot() {
    let desk = Desk::new();
    desk.add(
        "M2SERIAL:7",
        SEED_1,
        &["--kind", "multi-profile", "--user", "bob@contoso.com"],
    );
    desk.add("2100123456", SEED_2, &["--user", "bob@contoso.com"]);
    let csv = desk.dir.path().join("entra.csv");
    desk.run(&[
        "export",
        "entra-csv",
        "--plaintext",
        "--out",
        csv.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains("export written"));
    let file = std::fs::read_to_string(&csv).unwrap();
    assert!(file.contains("M2SERIAL-07"), "{file}");

    // The admin uploads the file in the Entra admin center.
    for line in file.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        desk.sim
            .seed_device(fields[1], fields[2], fields[3].parse().unwrap());
    }

    // Sync already tells them apart from a stranger's tokens.
    desk.run(&["entra", "sync"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains(
            "uploaded from this vault's Entra CSV export: 'oathdesk entra push' links it",
        ));

    // The push knows these tokens as its own: no --adopt, no refusal.
    let push = desk
        .run(&["entra", "push", "--activate"])
        .assert()
        .success();
    let out = text(&push.get_output().stdout);
    assert!(
        out.contains("uploaded from this vault's Entra CSV export"),
        "{out}"
    );
    assert!(!out.contains("refused"), "{out}");
    for serial in ["M2SERIAL-07", "2100123456"] {
        let (status, user) = desk.status_of(serial).unwrap();
        assert_eq!(status, "activated", "{serial}");
        assert!(user.is_some(), "{serial}");
    }
    assert_eq!(desk.sim.devices().len(), 2, "nothing created twice");

    // A second vault that did not export them is still asked for --adopt.
    let other = desk.dir.path().join("other.db");
    desk.init(&other);
    desk.run(&["token", "add", "2100123456", "--secret", SEED_2])
        .env("OATHDESK_VAULT", &other)
        .assert()
        .success();
    desk.run(&["entra", "push"])
        .env("OATHDESK_VAULT", &other)
        .assert()
        .code(2)
        .stdout(predicate::str::contains("--adopt"));

    // Importing the file restores the device and slot of the profile.
    let fresh = desk.dir.path().join("fresh.db");
    desk.init(&fresh);
    desk.run(&["import", "entra-csv", csv.to_str().unwrap()])
        .env("OATHDESK_VAULT", &fresh)
        .assert()
        .success()
        .stderr(predicate::str::contains("read as device and slot"));
    let list = desk
        .run(&["token", "list", "--json"])
        .env("OATHDESK_VAULT", &fresh)
        .assert()
        .success();
    let tokens: Value = serde_json::from_slice(&list.get_output().stdout).unwrap();
    let tokens = tokens.as_array().unwrap();
    assert!(
        tokens
            .iter()
            .any(|t| t["serial"] == "M2SERIAL" && t["slot"] == 7),
        "{tokens:?}"
    );
    assert!(
        tokens.iter().all(|t| t["serial"] != "M2SERIAL-07"),
        "{tokens:?}"
    );
}

#[test]
fn vault_init_refuses_argon2id_memory_below_the_one_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let vault = dir.path().join("weak.db");
    let init = |mib: &str| {
        let mut cmd = Command::cargo_bin("oathdesk").unwrap();
        cmd.env_remove("OATHDESK_SECRET")
            .env("OATHDESK_VAULT", &vault)
            .env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice's passphrase")
            .args([
                "vault",
                "init",
                "--kdf-iterations",
                "1",
                "--kdf-memory-mib",
                mib,
            ]);
        cmd
    };
    // 8 MiB was accepted by `vault init` while `serve` wanted 19.
    init("8")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("below the minimum of 19 MiB"));
    assert!(!vault.exists(), "nothing is created");
    init("18").assert().code(1);
    init("19").assert().success();
}
