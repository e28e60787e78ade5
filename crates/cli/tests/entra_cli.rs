//! `oathdesk entra` as an admin runs it: the real binary, a real vault
//! file, and the Graph simulator on loopback in this test process.

use std::path::PathBuf;

use assert_cmd::Command;
use oathdesk_entra_sim::{FaultKind, Simulator, permissions, roles};
use predicates::prelude::*;
use serde_json::Value;

const CLIENT_ID: &str = "0a1b2c3d-0000-4000-8000-00000000c11e";
const CLIENT_SECRET: &str = "cli~secret.value";
const SEED_1: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SEED_2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

mod common;

/// A desk whose vault talks to the Graph simulator as app `CLIENT_ID`.
struct Desk {
    desk: common::desk::Desk,
    cache: PathBuf,
    sim: Simulator,
}

impl Desk {
    fn new(permissions: &[&str]) -> Desk {
        let sim = Simulator::start();
        sim.add_app(CLIENT_ID, CLIENT_SECRET, permissions);
        sim.add_user("bob@contoso.com", false);
        let desk = common::desk::Desk::new();
        let cache = desk.file("cache").join("entra-tokens.json");
        Desk { desk, cache, sim }
    }

    /// The command with the vault and the simulator configured, no secret.
    fn bare(&self, args: &[&str]) -> Command {
        let mut cmd = self.desk.run(args);
        cmd.env_remove("OATHDESK_ENTRA_CLIENT_SECRET")
            .env_remove("OATHDESK_ENTRA_CERTIFICATE")
            .env("OATHDESK_GRAPH_URL", self.sim.url())
            .env("OATHDESK_AUTHORITY_URL", self.sim.url())
            .env("OATHDESK_ENTRA_TENANT", self.sim.tenant())
            .env("OATHDESK_ENTRA_CLIENT_ID", CLIENT_ID)
            .env("OATHDESK_ENTRA_TOKEN_CACHE", &self.cache);
        cmd
    }

    /// With the app's client secret in the environment.
    fn run(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare(args);
        cmd.env("OATHDESK_ENTRA_CLIENT_SECRET", CLIENT_SECRET);
        cmd
    }

    fn add(&self, token: &str, secret: &str, extra: &[&str]) {
        let mut args = vec!["token", "add", token, "--secret", secret];
        args.extend_from_slice(extra);
        self.run(&args).assert().success();
    }
}

#[test]
fn login_caches_a_token_owner_only_and_never_the_secret() {
    let desk = Desk::new(&permissions::ALL);
    desk.run(&["entra", "login"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "signed in as app {CLIENT_ID}"
        )));
    let cache = std::fs::read_to_string(&desk.cache).unwrap();
    assert!(!cache.contains(CLIENT_SECRET));
    assert!(cache.contains("access_token"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&desk.cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The cached token serves the next command: no second sign-in.
    desk.sim.clear_log();
    let status = desk.run(&["entra", "status"]).assert().success();
    assert!(
        desk.sim.log().iter().all(|l| !l.path.contains("oauth2")),
        "{:?}",
        desk.sim.log()
    );
    let out = String::from_utf8(status.get_output().stdout.clone()).unwrap();
    assert!(out.contains("hardware OATH tokens enabled"), "{out}");
    assert!(out.contains("inventory  0 token(s)"), "{out}");
    // Secrets are never taken from the command line.
    desk.run(&["entra", "login", "--client-secret", CLIENT_SECRET])
        .assert()
        .code(1);
}

#[test]
fn push_activate_rerun_sync_unassign_delete() {
    let desk = Desk::new(&permissions::ALL);
    desk.add(
        "MOLTO:1",
        SEED_1,
        &["--kind", "multi-profile", "--user", "bob@contoso.com"],
    );
    desk.add("MOLTO:2", SEED_2, &["--user", "bob@contoso.com"]);
    let out = desk
        .run(&["entra", "push", "--activate"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("2 created")
                .not()
                .and(predicate::str::contains("2 activated")),
        )
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("MOLTO:1") && out.contains("MOLTO-01") && out.contains("activated"),
        "{out}"
    );
    let devices = desk.sim.devices();
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().all(|d| d.status == "activated"));

    // Again: nothing to do, nothing sent but reads.
    desk.sim.clear_log();
    let report: Value = serde_json::from_slice(
        &desk
            .run(&["entra", "push", "--activate", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        report["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["result"] == "present"),
        "{report}"
    );
    assert!(
        desk.sim
            .log()
            .iter()
            .all(|l| l.method == "GET" || l.path.contains("oauth2"))
    );
    assert_eq!(desk.sim.devices().len(), 2);

    desk.run(&["entra", "sync"])
        .assert()
        .success()
        .stderr(predicate::str::contains("2 in sync, 0 difference(s)"));
    desk.run(&["entra", "unassign", "MOLTO:1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("unassigned from bob@contoso.com"));
    desk.run(&["entra", "delete", "MOLTO:2"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--unassign"));
    desk.run(&["entra", "delete", "MOLTO:2", "MOLTO:1", "--unassign"])
        .assert()
        .success();
    assert!(desk.sim.devices().is_empty());
    // The audit log names every secret sent and every code computed, and is intact.
    let audit: Value = serde_json::from_slice(
        &desk
            .run(&["audit", "list", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("entra."))
        .collect();
    assert!(actions.contains(&"entra.push"), "{actions:?}");
    let computed = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "entra.activate")
        .unwrap()["detail"]
        .to_string();
    assert!(
        computed.contains("MOLTO:1") && computed.contains("MOLTO:2"),
        "{computed}"
    );
    assert!(!audit.to_string().contains(SEED_1));
    desk.run(&["audit", "verify"]).assert().success();
}

#[test]
fn refusals_exit_2_with_the_reason_and_failures_exit_1_then_resume() {
    let desk = Desk::new(&permissions::ALL);
    desk.add("EIGHT", SEED_1, &["--digits", "8"]);
    desk.add("GOOD-1", SEED_2, &[]);
    desk.add("GOOD-2", SEED_1, &[]);
    desk.sim.fault(
        Some("PATCH"),
        "hardwareOathDevices",
        20,
        FaultKind::Fail { status: 503 },
    );
    desk.run(&["entra", "push", "--batch", "1"])
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Entra takes 6-digit codes, not 8"))
        .stderr(predicate::str::contains(
            "run the same command again to resume",
        ));
    assert!(desk.sim.devices().is_empty());
    desk.sim.clear_faults();
    desk.run(&["entra", "push", "--batch", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("2 created, 1 refused"));
    assert_eq!(desk.sim.devices().len(), 2);
}

#[test]
fn a_missing_permission_names_it_and_the_least_role() {
    let desk = Desk::new(&[permissions::POLICY_READ]);
    desk.add("T-1", SEED_1, &[]);
    desk.run(&["entra", "push"]).assert().code(1).stderr(
        predicate::str::contains("Policy.ReadWrite.AuthenticationMethod").and(
            predicate::str::contains("Authentication Policy Administrator"),
        ),
    );
    // A wrong secret is explained without being echoed.
    let assert = desk
        .bare(&["entra", "login"])
        .env("OATHDESK_ENTRA_CLIENT_SECRET", "not-the-secret")
        .assert()
        .code(1);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("OATHDESK_ENTRA_CLIENT_SECRET") && !err.contains("not-the-secret"),
        "{err}"
    );
}

#[test]
fn an_admin_signs_in_with_a_device_code_and_later_commands_use_it() {
    let desk = Desk::new(&permissions::ALL);
    desk.sim.add_user("admin@contoso.com", true);
    desk.sim.set_roles(
        "admin@contoso.com",
        &[roles::AUTH_POLICY_ADMIN, roles::AUTH_ADMIN],
    );
    desk.sim.auto_approve("admin@contoso.com");
    desk.bare(&["entra", "login", "--device-code"])
        .assert()
        .success()
        .stderr(predicate::str::contains("enter the code SIM"))
        .stdout(predicate::str::contains("signed in as admin@contoso.com"));
    desk.add("T-1", SEED_1, &["--user", "bob@contoso.com"]);
    desk.bare(&["entra", "push", "--activate"])
        .assert()
        .success()
        .stderr(predicate::str::contains("1 activated"));
    desk.bare(&["entra", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("admin@contoso.com (delegated"));
}

/// The code a secret shows now (`oathdesk code`), for a delivery.
fn current_code(secret: &str) -> String {
    let output = Command::cargo_bin("oathdesk")
        .unwrap()
        .args(["code", secret])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn push_leaves_out_lost_retired_and_delivered_tokens_and_refuses_only_real_refusals() {
    let desk = Desk::new(&permissions::ALL);
    // Retired (and 8 digits: the reason given must be that it is retired).
    desk.add("OLD-8", SEED_1, &["--digits", "8"]);
    desk.run(&["token", "retire", "OLD-8"]).assert().success();
    desk.add("LOST-1", SEED_2, &[]);
    desk.run(&["token", "lost", "LOST-1"]).assert().success();
    // In Entra and assigned, then delivered: its secret is purged.
    desk.add("DELIV-1", SEED_1, &["--user", "bob@contoso.com"]);
    desk.run(&["entra", "push", "--assign"])
        .assert()
        .success()
        .stderr(predicate::str::contains("2 left out (--explain lists them"));
    desk.run(&["token", "ship", "DELIV-1"]).assert().success();
    desk.run(&[
        "token",
        "deliver",
        "DELIV-1",
        "--code",
        &current_code(SEED_1),
    ])
    .assert()
    .success();
    let shown: Value = serde_json::from_slice(
        &desk
            .run(&["token", "show", "DELIV-1", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(shown["token"]["custody"], "purged", "{shown}");

    // Nothing here is a refusal: exit 0, every run.
    for _ in 0..2 {
        desk.run(&["entra", "push", "--activate"])
            .assert()
            .success()
            .stderr(
                predicate::str::contains("3 left out")
                    .and(predicate::str::contains("refused").not()),
            );
    }
    let explained = desk
        .run(&["entra", "push", "--activate", "--explain"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let explained = String::from_utf8(explained).unwrap();
    let line = |reference: &str| {
        explained
            .lines()
            .find(|l| l.starts_with(reference))
            .unwrap_or_else(|| panic!("no line for {reference}: {explained}"))
            .to_owned()
    };
    assert!(
        line("OLD-8").contains("left out") && line("OLD-8").contains("retired"),
        "{explained}"
    );
    assert!(!line("OLD-8").contains("6-digit"), "{explained}");
    assert!(line("LOST-1").contains("lost"), "{explained}");
    assert!(
        line("DELIV-1").contains("purged after delivery"),
        "{explained}"
    );
    let report: Value = serde_json::from_slice(
        &desk
            .run(&["entra", "push", "--activate", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(report["left_out"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(desk.sim.devices().len(), 1);

    // A real refusal still exits 2.
    desk.add("EIGHT", SEED_2, &["--digits", "8"]);
    desk.run(&["entra", "push"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("Entra takes 6-digit codes, not 8"))
        .stderr(predicate::str::contains("1 refused"));
}

#[test]
fn dry_run_says_create_assign_or_activate_and_list_and_show_tell_the_link() {
    let desk = Desk::new(&permissions::ALL);
    desk.add("NEW-1", SEED_1, &["--user", "bob@contoso.com"]);
    desk.add("CREATED-1", SEED_2, &["--user", "bob@contoso.com"]);
    desk.run(&["entra", "push", "--serial", "CREATED-1"])
        .assert()
        .success();
    desk.sim.clear_log();
    let planned = desk
        .run(&["entra", "push", "--activate", "--dry-run"])
        .assert()
        .success()
        .stderr(predicate::str::contains("1 to create, 1 to activate"))
        .get_output()
        .stdout
        .clone();
    let planned = String::from_utf8(planned).unwrap();
    let line = |reference: &str| {
        planned
            .lines()
            .find(|l| l.starts_with(reference))
            .unwrap_or_else(|| panic!("no line for {reference}: {planned}"))
            .to_owned()
    };
    assert!(
        line("NEW-1").contains("to create")
            && line("NEW-1").contains("create, then assign to bob@contoso.com, then activate"),
        "{planned}"
    );
    assert!(
        line("CREATED-1").contains("to activate")
            && line("CREATED-1").contains("assign to bob@contoso.com, then activate"),
        "{planned}"
    );
    assert!(
        desk.sim
            .log()
            .iter()
            .all(|l| l.method == "GET" || l.path.contains("oauth2")),
        "a dry run sends nothing"
    );
    desk.run(&["entra", "push", "--assign", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("to assign"));
    assert_eq!(desk.sim.devices().len(), 1);

    // Push for real; bob also has an authenticator app.
    desk.run(&["entra", "push", "--activate"])
        .assert()
        .success();
    desk.sim.set_software_oath("bob@contoso.com", 1);
    let listed = desk
        .run(&["entra", "list", "--user", "bob@contoso.com"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "2 hardware token(s) and 1 authenticator app(s)",
        ))
        .get_output()
        .stdout
        .clone();
    let listed = String::from_utf8(listed).unwrap();
    assert!(
        listed.contains("NEW-1") && listed.contains("CREATED-1") && listed.contains("activated"),
        "{listed}"
    );
    assert!(listed.contains("software  authenticator app"), "{listed}");
    assert!(!listed.contains(SEED_1) && !listed.contains(SEED_2));
    let json: Value = serde_json::from_slice(
        &desk
            .run(&["entra", "list", "--user", "bob@contoso.com", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["hardware"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["software"].as_array().unwrap().len(), 1, "{json}");

    // token show names the link.
    let shown = desk
        .run(&["token", "show", "NEW-1"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let shown = String::from_utf8(shown).unwrap();
    assert!(
        shown.contains("entra")
            && shown.contains("serial NEW-1 activated")
            && shown.contains("user bob@contoso.com"),
        "{shown}"
    );
    let shown: Value = serde_json::from_slice(
        &desk
            .run(&["token", "show", "NEW-1", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(shown["entra"][0]["status"], "activated", "{shown}");
    assert_eq!(shown["entra"][0]["serial"], "NEW-1", "{shown}");
}
