//! The helpdesk through Microsoft Graph (the simulator): a Temporary Access
//! Pass for a verified caller, printed once and kept nowhere but in Entra;
//! and the user told by mail.

use assert_cmd::Command;
use oathdesk_entra_sim::{Simulator, TapPolicy, permissions};
use serde_json::Value;

const CLIENT_ID: &str = "0a1b2c3d-0000-4000-8000-00000000c11e";
const CLIENT_SECRET: &str = "cli~secret.value";

mod common;

/// A desk whose vault talks to the Graph simulator as app `CLIENT_ID`.
struct Desk {
    desk: common::desk::Desk,
    sim: Simulator,
}

impl Desk {
    fn new(sim: Simulator) -> Desk {
        Desk {
            desk: common::desk::Desk::new(),
            sim,
        }
    }

    fn run(&self, args: &[&str]) -> Command {
        let mut cmd = self.desk.run(args);
        cmd.env("OATHDESK_GRAPH_URL", self.sim.url())
            .env("OATHDESK_AUTHORITY_URL", self.sim.url())
            .env("OATHDESK_ENTRA_TENANT", self.sim.tenant())
            .env("OATHDESK_ENTRA_CLIENT_ID", CLIENT_ID)
            .env("OATHDESK_ENTRA_CLIENT_SECRET", CLIENT_SECRET)
            .env(
                "OATHDESK_ENTRA_TOKEN_CACHE",
                self.desk.file("entra-tokens.json"),
            );
        cmd
    }

    fn write(&self, name: &str, text: &str) -> String {
        self.desk.write(name, text)
    }
}

const TAP: [&str; 11] = [
    "helpdesk",
    "tap",
    "--user",
    "bob@contoso.com",
    "--method",
    "call-back",
    "--confirm",
    "all",
    "--evidence",
    "called the mobile on file, Bob answered",
    "--ticket",
];

#[test]
fn a_verified_caller_gets_a_pass_that_is_kept_nowhere() {
    let sim = Simulator::start();
    sim.add_app(CLIENT_ID, CLIENT_SECRET, &permissions::ALL);
    sim.add_user("bob@contoso.com", false);
    let desk = Desk::new(sim);
    desk.run(&["user", "add", "bob@contoso.com"])
        .assert()
        .success();
    let people = desk.write("people.csv", "upn,mobile\nbob@contoso.com,+1 555 0100\n");
    desk.run(&["user", "import", &people]).assert().success();

    // The vault's policy has passes off by default.
    let mut args = TAP.to_vec();
    args.push("INC0012345");
    let out = desk.run(&args).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("Temporary Access Passes are off in the helpdesk policy"),
        "{err}"
    );
    let policy = desk.write(
        "policy.json",
        r#"{"tap": {"enabled": true, "lifetime_minutes": 60, "usable_once": true}}"#,
    );
    desk.run(&["helpdesk", "policy", "set", &policy])
        .assert()
        .success();
    // Verification is the same as for a code: "x" is not evidence.
    let mut x = TAP.to_vec();
    x[9] = "x";
    x.push("INC0012345");
    desk.run(&x).assert().failure();

    let mut json = args.clone();
    json.push("--json");
    let out = desk.run(&json).assert().success();
    let issued: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let pass = issued["temporary_access_pass"].as_str().unwrap().to_owned();
    assert!(pass.len() >= 8);
    assert_eq!(issued["lifetime_minutes"], 60);
    assert_eq!(issued["usable_once"], true);
    let held = desk.sim.temporary_access_pass("bob@contoso.com").unwrap();
    assert_eq!(held.lifetime_in_minutes, 60);

    // Entra's own policy off: its reason is shown and audited.
    desk.sim.set_tap_policy(TapPolicy {
        enabled: false,
        ..TapPolicy::default()
    });
    let out = desk.run(&args).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("Entra refused"), "{err}");

    let out = desk.run(&["audit", "list", "--json"]).assert().success();
    let log = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(!log.contains(&pass), "the pass is never in the audit log");
    let entries: Value = serde_json::from_str(&log).unwrap();
    let taps: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "helpdesk.tap")
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        taps,
        [
            "refused",
            "refused",
            "requested",
            "granted",
            "requested",
            "refused"
        ]
    );
}

#[test]
fn the_user_is_told_by_mail_through_graph() {
    let sim = Simulator::start();
    sim.add_app(CLIENT_ID, CLIENT_SECRET, &permissions::ALL);
    sim.add_user("helpdesk@contoso.com", false);
    let desk = Desk::new(sim);
    let sheet = desk.write(
        "sheet.csv",
        "username,secret,serial,mobile,mail\n\
         bob@contoso.com,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,2100001,+1 555 0100,bob@example.org\n",
    );
    desk.run(&["import", "spreadsheet", &sheet])
        .assert()
        .success();
    let policy = desk.write(
        "policy.json",
        r#"{"notify": {"on_release": true, "channel": "mail", "mail_from": "helpdesk@contoso.com",
             "organisation": "Contoso IT", "report_to": "+1 555 0199"}}"#,
    );
    desk.run(&["helpdesk", "policy", "set", &policy])
        .assert()
        .success();
    let out = desk
        .run(&[
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
            "INC0012345",
            "--json",
        ])
        .assert()
        .success();
    let grant: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let code = grant["code"].as_str().unwrap();
    // A passing Exchange outage: the first sendMail answers 503 and the
    // client's retry carries the notice through, sent once.
    desk.sim.fail_next_sends(1);
    desk.run(&["notify", "send"])
        .assert()
        .success()
        .stdout(predicates::str::contains("1 notice(s) sent"));
    let mail = desk.sim.sent_mail();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, ["bob@example.org"]);
    assert!(mail[0].body.contains("INC0012345"), "{}", mail[0].body);
    assert!(
        mail[0].body.contains("If you did not call the helpdesk"),
        "{}",
        mail[0].body
    );
    assert!(mail[0].body.contains("+1 555 0199"));
    assert!(!mail[0].body.contains(code) && !mail[0].subject.contains(code));
}
