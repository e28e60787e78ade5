//! Verifying callers on the command line, as the vault's protocol decides
//! it: users' data on file from CSV, the steps a method shows (the number
//! to call back, masked), weak verifications refused in the vault's words,
//! the policy as a JSON file, and four eyes through a console with two
//! helpdesk accounts. Real processes of the built binary on SQLite vaults.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp};
use predicates::prelude::*;
use serde_json::{Value, json};

mod common;
use common::desk::{Desk, SECRET};

const PHONE: &str = "+44 7700 900123";
const EVIDENCE: &str = "called the mobile on file, Bob answered and confirmed";
const DEFAULT_PATTERN: &str = "^[A-Za-z]{0,12}[-_#]?[0-9][0-9-]{2,}$";

/// What these tests do at a desk besides running commands.
trait VerificationDesk {
    fn token(&self, serial: &str, user: &str);
    fn import(&self, name: &str, csv: &str);
    fn call_back(&self, user: &str, ticket: &str, extra: &[&str]) -> Command;
    fn audit(&self) -> Vec<Value>;
}

impl VerificationDesk for Desk {
    /// Adds a token for `user` (created if new).
    fn token(&self, serial: &str, user: &str) {
        self.run(&["token", "add", serial, "--secret", SECRET, "--user", user])
            .assert()
            .success();
    }

    /// Imports a directory CSV.
    fn import(&self, name: &str, csv: &str) {
        let path = self.write(name, csv);
        self.run(&["user", "import", &path]).assert().success();
    }

    /// `helpdesk code` for `user`, verified by a call-back, with `extra`.
    fn call_back(&self, user: &str, ticket: &str, extra: &[&str]) -> Command {
        let mut args = vec![
            "helpdesk",
            "code",
            "--user",
            user,
            "--method",
            "call-back",
            "--confirm",
            "all",
            "--evidence",
            EVIDENCE,
            "--ticket",
            ticket,
        ];
        args.extend(extra);
        self.run(&args)
    }

    fn audit(&self) -> Vec<Value> {
        self.json(&["audit", "list", "--json"])
            .as_array()
            .unwrap()
            .clone()
    }
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The code the test secret shows at `counter`.
fn code_at_counter(counter: u64) -> String {
    let secret = Secret::from_base32(SECRET).unwrap();
    Totp::new(&secret, Algorithm::Sha1, Digits::SIX, TimeStep::DEFAULT)
        .hotp()
        .generate(counter)
        .to_string()
}

#[test]
fn user_import_says_what_it_did_and_names_every_skipped_user_and_bad_line() {
    let desk = Desk::new();
    desk.run(&["user", "add", "bob@contoso.com", "--name", "Bob"])
        .assert()
        .success();
    desk.run(&["user", "add", "carol@contoso.com"])
        .assert()
        .success();
    let csv = desk.write(
        "users.csv",
        "UPN,Display Name,Mobile Phone,Manager,Cost Centre\n\
         bob@contoso.com,Bob,+44 7700 900123,carol@contoso.com,CC-4711\n\
         carol@contoso.com,Carol,+44 7700 900456,,\n\
         zed@contoso.com,Zed,+1 555 0100,,\n",
    );
    let report = |updated: u64, unchanged: u64, created: u64, not_in_vault: u64| {
        format!(
            "data on file from {csv}: {updated} user(s) updated, {unchanged} unchanged, \
             {created} created, {not_in_vault} not in the vault\n"
        )
    };
    let skipped =
        "oathdesk: zed@contoso.com is not in the vault: skipped (add them, or pass --create)";
    desk.run(&["user", "import", &csv])
        .assert()
        .success()
        .stdout(report(2, 0, 0, 1))
        .stderr(predicate::str::contains(skipped));
    // The same file again changes nothing, and says so.
    desk.run(&["user", "import", &csv])
        .assert()
        .success()
        .stdout(report(0, 2, 0, 1))
        .stderr(predicate::str::contains(skipped));

    // Each value with where it came from; an empty cell is nothing on file.
    let bob = desk.json(&["user", "facts", "bob@contoso.com", "--json"]);
    assert_eq!(bob["mobile_phone"]["value"], PHONE);
    assert_eq!(bob["mobile_phone"]["source"], "csv:users.csv");
    assert_eq!(bob["manager"]["value"], "carol@contoso.com");
    assert_eq!(
        bob["cost_centre"]["value"], "CC-4711",
        "a free column: {bob}"
    );
    let carol = desk.json(&["user", "facts", "carol@contoso.com", "--json"]);
    let names: Vec<&String> = carol.as_object().unwrap().keys().collect();
    assert_eq!(names, ["mobile_phone"], "{carol}");
    let text = desk
        .run(&["user", "facts", "bob@contoso.com"])
        .output()
        .unwrap();
    assert!(
        stdout(&text).contains("cost_centre") && stdout(&text).contains("from csv:users.csv at "),
        "{}",
        stdout(&text)
    );

    // A new number and an emptied cell change bob; --create adds zed.
    std::fs::write(
        &csv,
        "UPN,Display Name,Mobile Phone,Manager,Cost Centre\n\
         bob@contoso.com,Bob,+44 7700 900999,carol@contoso.com,\n\
         carol@contoso.com,Carol,+44 7700 900456,,\n\
         zed@contoso.com,Zed,+1 555 0100,,\n",
    )
    .unwrap();
    desk.run(&["user", "import", &csv, "--create"])
        .assert()
        .success()
        .stdout(report(2, 1, 1, 0))
        .stderr(predicate::str::contains("not in the vault").not());
    let bob = desk.json(&["user", "facts", "bob@contoso.com", "--json"]);
    assert_eq!(bob["mobile_phone"]["value"], "+44 7700 900999");
    assert!(bob.get("cost_centre").is_none(), "{bob}");
    let users = desk.json(&["user", "list", "--json"]);
    assert!(users.to_string().contains("zed@contoso.com"), "{users}");

    // A row without a user is named by its line, and nothing is imported...
    std::fs::write(
        &csv,
        "UPN,Display Name,Mobile Phone\n\
         bob@contoso.com,Bob,+44 7700 900111\n\
         ,Nobody,+44 7700 900222\n",
    )
    .unwrap();
    desk.run(&["user", "import", &csv])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{csv}: line 3, UPN: no user on this row; the row was not imported"
        )))
        .stderr(predicate::str::contains(format!(
            "1 problem(s) in {csv}; nothing was imported (fix them, or pass --skip-bad)"
        )));
    let bob = desk.json(&["user", "facts", "bob@contoso.com", "--json"]);
    assert_eq!(bob["mobile_phone"]["value"], "+44 7700 900999");
    // ...unless the good rows are wanted.
    desk.run(&["user", "import", &csv, "--skip-bad"])
        .assert()
        .success()
        .stdout(report(1, 0, 0, 0))
        .stderr(predicate::str::contains("line 3, UPN: no user on this row"));
    let bob = desk.json(&["user", "facts", "bob@contoso.com", "--json"]);
    assert_eq!(bob["mobile_phone"]["value"], "+44 7700 900111");

    // Imports and whole views are audited; no value goes into the log.
    let audit = desk.audit();
    let count = |action: &str| audit.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("user.facts_update"), 4);
    assert_eq!(count("user.facts_view"), 6);
    let log = serde_json::to_string(&audit).unwrap();
    // Not "7700" alone: the log's hex hashes can hold any four digits.
    for part in ["7700 9", "900111", "900123", "900456", "900999"] {
        assert!(!log.contains(part), "{part} in {log}");
    }
}

#[test]
fn a_spreadsheets_extra_columns_become_data_on_file() {
    let desk = Desk::new();
    let sheet = desk.write(
        "helpdesk.csv",
        "Username,Secret,Serial,Mobile,Employee ID\n\
         carol@contoso.com,JBSWY3DPEHPK3PXP,T-1,+44 7700 900456,E-1001\n",
    );
    desk.run(&["import", "spreadsheet", &sheet])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "imported 1 credential(s) from {sheet}, 0 skipped"
        )))
        .stdout(predicate::str::contains(format!(
            "data on file from {sheet}: 1 user(s) updated"
        )));
    let carol = desk.json(&["user", "facts", "carol@contoso.com", "--json"]);
    assert_eq!(carol["mobile_phone"]["value"], "+44 7700 900456");
    assert_eq!(carol["mobile_phone"]["source"], "csv:helpdesk.csv");
    assert_eq!(carol["employee_id"]["value"], "E-1001");
    let names: Vec<&String> = carol.as_object().unwrap().keys().collect();
    assert_eq!(names, ["employee_id", "mobile_phone"], "never the secret");
}

#[test]
fn steps_show_the_step_texts_and_only_the_last_digits_of_the_phone() {
    let desk = Desk::new();
    desk.run(&["user", "add", "bob@contoso.com", "--name", "Bob"])
        .assert()
        .success();
    desk.run(&["user", "add", "carol@contoso.com"])
        .assert()
        .success();
    desk.import(
        "users.csv",
        &format!("upn,mobile_phone\nbob@contoso.com,{PHONE}\n"),
    );

    let output = desk
        .run(&[
            "helpdesk",
            "steps",
            "--user",
            "bob@contoso.com",
            "--method",
            "call-back",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for line in [
        "Call back the number on file — bob@contoso.com (Bob)",
        "  1. End the call. Dial the number on file — never a number the caller gives",
        "       mobile phone: •••••••••0123   (from csv:users.csv, ",
        "  2. The person who answers confirms they asked for a code",
        "  Then write what you saw or heard (--evidence).",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    for part in ["900123", "7700", "+44"] {
        assert!(!text.contains(part), "{part} shown:\n{text}");
    }
    let view = desk.json(&[
        "helpdesk",
        "steps",
        "--user",
        "bob@contoso.com",
        "--method",
        "call-back",
        "--json",
    ]);
    assert_eq!(view["method"], "call-back");
    assert_eq!(view["evidence_required"], true);
    assert_eq!(view["unusable"], Value::Null);
    assert_eq!(view["steps"].as_array().unwrap().len(), 2);
    assert_eq!(view["steps"][0]["data"][0]["name"], "mobile_phone");
    assert_eq!(view["steps"][0]["data"][0]["shown"], "•••••••••0123");
    assert!(!view.to_string().contains("900123"), "{view}");

    // A method whose data is not on file cannot be used, and says why.
    desk.run(&[
        "helpdesk",
        "steps",
        "--user",
        "carol@contoso.com",
        "--method",
        "call-back",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(
        "carol@contoso.com has no mobile phone or office phone on file: \
         this method cannot be used for them; choose another",
    ));
    desk.run(&[
        "helpdesk",
        "steps",
        "--user",
        "bob@contoso.com",
        "--method",
        "x",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(
        "no verification method 'x'; the policy accepts: call-back, manager, video-id, in-person",
    ));

    // Every view is audited: who saw which of whose data, never the value.
    let audit = desk.audit();
    let views: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "helpdesk.verification_view")
        .collect();
    assert_eq!(views.len(), 3, "{audit:?}");
    assert_eq!(views[0]["user"], "bob@contoso.com");
    assert_eq!(views[0]["operator"], "alice");
    assert_eq!(views[0]["detail"]["shown"], json!(["mobile_phone"]));
    assert_eq!(views[2]["user"], "carol@contoso.com");
    assert!(!serde_json::to_string(&audit).unwrap().contains("900123"));
}

#[test]
fn weak_verifications_are_refused_in_the_vaults_words() {
    let desk = Desk::new();
    desk.token("2100001", "bob@contoso.com");
    desk.token("2100002", "carol@contoso.com");
    desk.import(
        "users.csv",
        &format!(
            "upn,mobile_phone,employee_id\nbob@contoso.com,{PHONE},\ncarol@contoso.com,,E-1001\n"
        ),
    );
    let refused = |args: &[&str], words: &str| {
        let mut all = vec!["helpdesk", "code"];
        all.extend(args);
        let output = desk.run(&all).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(words),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty(), "no code: {}", stdout(&output));
    };
    let bob = ["--user", "bob@contoso.com", "--method", "call-back"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = bob.to_vec();
        args.extend(extra);
        args
    };
    // "x" is neither evidence nor a ticket.
    refused(
        &with(&[
            "--confirm",
            "all",
            "--evidence",
            "x",
            "--ticket",
            "INC0012345",
        ]),
        "call-back: write what you saw or heard (at least 12 characters and two words",
    );
    refused(
        &with(&[
            "--confirm",
            "all",
            "--evidence",
            "verified ok",
            "--ticket",
            "INC0012345",
        ]),
        "write what you saw or heard",
    );
    for ticket in ["x", "INC-1", "T-1"] {
        refused(
            &with(&[
                "--confirm",
                "all",
                "--evidence",
                EVIDENCE,
                "--ticket",
                ticket,
            ]),
            &format!(
                "'{ticket}' is not a ticket id: it must match {DEFAULT_PATTERN} (the policy's ticket_pattern)"
            ),
        );
    }
    refused(
        &with(&["--confirm", "all", "--evidence", EVIDENCE]),
        "give the ticket id of this call (--ticket)",
    );
    // Every step confirmed, or no code.
    refused(
        &with(&[
            "--confirm",
            "1",
            "--evidence",
            EVIDENCE,
            "--ticket",
            "INC0012345",
        ]),
        "step 2 of 'call-back' is not confirmed: The person who answers confirms they asked for a code",
    );
    refused(
        &with(&["--evidence", EVIDENCE, "--ticket", "INC0012345"]),
        "step 1 of 'call-back' is not confirmed",
    );
    refused(
        &with(&[
            "--confirm",
            "3",
            "--evidence",
            EVIDENCE,
            "--ticket",
            "INC0012345",
        ]),
        "--confirm: 'call-back' has steps 1 to 2, not 3",
    );
    // A call-back needs a number on file.
    refused(
        &[
            "--user",
            "carol@contoso.com",
            "--method",
            "call-back",
            "--confirm",
            "all",
            "--evidence",
            EVIDENCE,
            "--ticket",
            "INC0012345",
        ],
        "carol@contoso.com has no mobile phone or office phone on file, which 'call-back' needs",
    );

    // Done properly, each is granted: a call-back with evidence, and in
    // person with the badge (no evidence text needed).
    let output = desk
        .call_back("bob@contoso.com", "INC0012345", &["--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let grant: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        grant["code"],
        code_at_counter(grant["counter"].as_u64().unwrap())
    );
    desk.run(&[
        "helpdesk",
        "code",
        "--user",
        "carol@contoso.com",
        "--method",
        "in-person",
        "--confirm",
        "1",
        "--ticket",
        "SR-2024-0042",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(
        "  for carol@contoso.com (2100002)",
    ));

    // Every request that reached the vault is audited with its reason.
    let audit = desk.audit();
    let codes: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "helpdesk.code")
        .collect();
    let outcomes: Vec<&str> = codes
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    // The --confirm 3 mistake never left the command line.
    assert_eq!(
        outcomes,
        [
            "refused", "refused", "refused", "refused", "refused", "refused", "refused", "refused",
            "refused", "granted", "granted"
        ],
        "{codes:?}"
    );
    assert!(
        codes[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("write what you saw or heard"),
        "{}",
        codes[0]
    );
    assert_eq!(codes[9]["detail"]["evidence"], json!([EVIDENCE]));
    assert_eq!(codes[10]["detail"]["methods"], json!(["in-person"]));
    assert_eq!(codes[10]["ticket"], "SR-2024-0042");
}

#[test]
fn the_policy_round_trips_as_json_and_decides_at_once() {
    let desk = Desk::new();
    let shown = desk
        .run(&["helpdesk", "policy", "show", "--json"])
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", stderr(&shown));
    let default: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(default["ticket_pattern"], DEFAULT_PATTERN);
    assert_eq!(default["evidence_min_chars"], 12);
    assert_eq!(default["four_eyes"]["always"], false);
    let file = desk.write("policy.json", &stdout(&shown));
    desk.run(&["helpdesk", "policy", "set", &file])
        .assert()
        .success()
        .stdout(format!("the helpdesk policy is now {file}\n"));
    assert_eq!(
        desk.json(&["helpdesk", "policy", "show", "--json"]),
        default
    );
    desk.run(&["helpdesk", "policy", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "call-back — Call back the number on file (accepted, evidence)",
        ))
        .stdout(predicate::str::contains(
            "in-person — In person, with the company badge (accepted)",
        ))
        .stdout(predicate::str::contains(format!(
            "ticket ids match: {DEFAULT_PATTERN}"
        )))
        .stdout(predicate::str::contains("four eyes: never"));

    // Fields left out take their defaults.
    let partial = desk.write(
        "cases.json",
        r#"{"ticket_pattern": "^CASE-[0-9]{5}$", "accepted": ["call-back"]}"#,
    );
    desk.run(&["helpdesk", "policy", "set", &partial])
        .assert()
        .success();
    let policy = desk.json(&["helpdesk", "policy", "show", "--json"]);
    assert_eq!(policy["ticket_pattern"], "^CASE-[0-9]{5}$");
    assert_eq!(policy["accepted"], json!(["call-back"]));
    assert_eq!(policy["methods"], default["methods"]);
    assert_eq!(policy["four_eyes"], default["four_eyes"]);
    assert_eq!(policy["approval_expires_minutes"], 30);

    // The new policy decides the next request.
    desk.token("2100001", "bob@contoso.com");
    desk.import(
        "users.csv",
        &format!("upn,mobile_phone,employee_id\nbob@contoso.com,{PHONE},E-1\n"),
    );
    desk.call_back("bob@contoso.com", "INC0012345", &[])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "'INC0012345' is not a ticket id: it must match ^CASE-[0-9]{5}$",
        ));
    desk.run(&[
        "helpdesk",
        "code",
        "--user",
        "bob@contoso.com",
        "--method",
        "in-person",
        "--confirm",
        "all",
        "--ticket",
        "CASE-12345",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(
        "the policy does not accept verification by 'in-person'; accepted: call-back",
    ));
    desk.call_back("bob@contoso.com", "CASE-12345", &[])
        .assert()
        .success();

    // A policy that cannot work is refused with what to fix, and the
    // one in force stays.
    let broken = desk.write("broken.json", r#"{"ticket_pattern": "^(CASE"}"#);
    desk.run(&["helpdesk", "policy", "set", &broken])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("ticket_pattern does not compile"));
    let nobody = desk.write("nobody.json", r#"{"accepted": ["carrier-pigeon"]}"#);
    desk.run(&["helpdesk", "policy", "set", &nobody])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "accepted method 'carrier-pigeon' is not defined",
        ));
    let not_json = desk.write("not.json", "{\n  \"accepted\": [\"call-back\",]\n}");
    desk.run(&["helpdesk", "policy", "set", &not_json])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("{not_json}: line 2")));
    assert_eq!(desk.json(&["helpdesk", "policy", "show", "--json"]), policy);

    // Only admins set it.
    let pass = desk.file("pia.pass");
    std::fs::write(&pass, "pia's passphrase\n").unwrap();
    desk.run(&[
        "operator",
        "add",
        "pia",
        "--role",
        "provisioner",
        "--new-passphrase-file",
        pass.to_str().unwrap(),
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ])
    .assert()
    .success();
    desk.run(&["helpdesk", "policy", "set", &file])
        .env("OATHDESK_OPERATOR", "pia")
        .env("OATHDESK_PASSPHRASE", "pia's passphrase")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the provisioner role may not manage accounts, operators and settings",
        ));

    // Back to the default, byte for byte.
    desk.run(&["helpdesk", "policy", "set", &file])
        .assert()
        .success();
    assert_eq!(
        desk.json(&["helpdesk", "policy", "show", "--json"]),
        default
    );
    let audit = desk.audit();
    let changes: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "helpdesk.policy" && e["outcome"] == "ok")
        .collect();
    assert_eq!(changes.len(), 3, "{audit:?}");
    assert_eq!(changes[1]["detail"]["ticket_pattern"], "^CASE-[0-9]{5}$");
}

/// Four eyes on a vault of one's own: a code that stays accepted longer
/// than the policy allows (here a minute) waits (exit 3), and nobody
/// approves their own.
#[test]
fn a_long_lasting_code_waits_for_a_second_operator() {
    let desk = Desk::new();
    desk.token("2100001", "bob@contoso.com");
    desk.import(
        "users.csv",
        &format!("upn,mobile_phone\nbob@contoso.com,{PHONE}\n"),
    );
    let policy = desk.write(
        "policy.json",
        r#"{"four_eyes": {"valid_longer_than_minutes": 1}}"#,
    );
    desk.run(&["helpdesk", "policy", "set", &policy])
        .assert()
        .success();
    desk.run(&["helpdesk", "policy", "show"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "four eyes: codes valid longer than 1 min",
        ));
    // The current code, accepted to the end of its step: no second operator.
    desk.call_back("bob@contoso.com", "INC0012345", &["--verifier", "exact"])
        .assert()
        .success();
    let waiting = desk
        .call_back(
            "bob@contoso.com",
            "INC0012346",
            &["--valid-for", "100", "--json"],
        )
        .output()
        .unwrap();
    assert_eq!(waiting.status.code(), Some(3), "{}", stderr(&waiting));
    let answer: Value = serde_json::from_slice(&waiting.stdout).unwrap();
    assert_eq!(answer["kind"], "approval_required");
    let id = answer["id"].as_str().unwrap();
    assert!(
        answer["message"].as_str().unwrap().starts_with(
            "a code that stays accepted longer than 1 minute(s) needs a second operator's approval"
        ),
        "{answer}"
    );
    assert!(!waiting.stdout.is_empty() && !stdout(&waiting).contains("\"code\""));
    desk.run(&["helpdesk", "approve", id])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "you asked for {id} yourself: another operator must decide it"
        )));
    desk.run(&["helpdesk", "collect", id])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{id} waits for another operator's approval"
        )));
    let pending = desk.json(&["helpdesk", "approvals", "--state", "pending", "--json"]);
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["id"], id);
    assert_eq!(pending[0]["requester"], "alice");
    assert_eq!(pending[0]["valid_for"], 100);
}

// --- Four eyes through a console -------------------------------------------

const ADMIN: (&str, &str) = ("ada", "ada's long password");
const HAL: (&str, &str) = ("hal", "hal's own long password");
const HANA: (&str, &str) = ("hana", "hana's own long password");
const USER: &str = "bob@contoso.com";
const SERIAL: &str = "2100555001";

/// One `oathdesk serve` process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
    log: PathBuf,
}

impl Server {
    fn start(vault: &str, dir: &Path, extra: &[&str]) -> Server {
        let log = dir.join("serve.log");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oathdesk"))
            .arg(vault)
            .args(["serve", "--listen", "127.0.0.1:0", "--kdf-memory-mib", "19"])
            .args(extra)
            .env_remove("OATHDESK_DATABASE_URL")
            .env_remove("OATHDESK_VAULT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start oathdesk serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            child,
            url: String::new(),
            lines,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = server.lines.lock().unwrap().join("\n");
            // The last line of the announcement of a vault without web accounts.
            if text.contains("this vault has no web account yet")
                || text.contains("sign in at the address above")
            {
                let url = text
                    .lines()
                    .find_map(|line| line.strip_prefix("oathdesk console on "))
                    .expect("the announcement names the address");
                server.url = url.trim().to_owned();
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the server ended ({status}):\n{text}\n{}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed-in browser: the session cookie and the page's CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

/// Sends JSON to the console; the answer's status and body.
fn send(server: &Server, who: Option<&Browser>, path: &str, body: Value) -> (u16, Value, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut request = agent
        .post(format!("{}{path}", server.url))
        .header("Accept", "application/json");
    if let Some(browser) = who {
        request = request
            .header("Cookie", format!("oathdesk={}", browser.cookie))
            .header("X-CSRF-Token", browser.csrf.as_str());
    }
    let mut response = request
        .content_type("application/json")
        .send(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("oathdesk="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        cookie,
    )
}

fn signed_in((status, body, cookie): (u16, Value, String)) -> Browser {
    assert_eq!(status, 200, "{body}");
    Browser {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

/// An API token with the helpdesk.code scope for a helpdesk account.
fn api_token(server: &Server, (name, password): (&str, &str)) -> String {
    let browser = signed_in(send(
        server,
        None,
        "/api/v1/login",
        json!({"name": name, "password": password}),
    ));
    let (status, made, _) = send(
        server,
        Some(&browser),
        "/api/v1/me/tokens",
        json!({"name": "cli", "scopes": ["helpdesk.code"]}),
    );
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().unwrap().to_owned()
}

/// Runs oathdesk with `env` and nothing of the test's environment that
/// names a vault or a console.
fn oathdesk(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_oathdesk"));
    command
        .args(args)
        .env_remove("OATHDESK_DATABASE_URL")
        .env_remove("OATHDESK_VAULT")
        .env_remove("OATHDESK_SERVER")
        .env_remove("OATHDESK_TOKEN")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn ok(output: std::process::Output) -> std::process::Output {
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// The policy asks four eyes for every release: hal's request waits (exit
/// 3) with an id; hal can neither approve it nor collect it yet; hana
/// approves it; hal collects the code once. A denied request gives nothing.
/// Both work through a console with API tokens, as helpdesk operators do.
#[test]
fn four_eyes_through_a_console_with_two_helpdesk_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let vault = format!("--vault={}", dir.path().join("vault.db").display());
    let admin = [
        ("OATHDESK_OPERATOR", ADMIN.0),
        ("OATHDESK_PASSPHRASE", ADMIN.1),
    ];
    let cheap = ["--kdf-memory-mib", "19", "--kdf-parallelism", "1"];
    let as_admin = |args: &[&str]| {
        let mut all = vec![vault.as_str()];
        all.extend(args);
        oathdesk(&all, &admin)
    };
    ok(as_admin(&[
        "vault", "init", cheap[0], cheap[1], cheap[2], cheap[3],
    ]));
    ok(as_admin(&[
        "token", "add", SERIAL, "--secret", SECRET, "--user", USER,
    ]));
    let directory = dir.path().join("directory.csv");
    std::fs::write(&directory, format!("upn,mobile_phone\n{USER},{PHONE}\n")).unwrap();
    ok(as_admin(&["user", "import", directory.to_str().unwrap()]));
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"four_eyes": {"always": true}}"#).unwrap();
    ok(as_admin(&[
        "helpdesk",
        "policy",
        "set",
        policy.to_str().unwrap(),
    ]));
    for (name, password) in [HAL, HANA] {
        ok(oathdesk(
            &[
                &vault, "operator", "add", name, "--role", "helpdesk", cheap[0], cheap[1],
                cheap[2], cheap[3],
            ],
            &[
                ("OATHDESK_OPERATOR", ADMIN.0),
                ("OATHDESK_PASSPHRASE", ADMIN.1),
                ("OATHDESK_NEW_PASSPHRASE", password),
            ],
        ));
    }
    let key = dir.path().join("unseal.key");
    let key = key.to_str().unwrap();
    ok(as_admin(&[
        "operator",
        "add",
        "console",
        "--role",
        "admin",
        "--new-identity-file",
        key,
    ]));
    let server = Server::start(&vault, dir.path(), &["--unseal-key-file", key]);
    let ada = signed_in(send(
        &server,
        None,
        "/api/v1/setup",
        json!({"operator": ADMIN.0, "passphrase": ADMIN.1}),
    ));
    for name in [HAL.0, HANA.0] {
        let (status, body, _) = send(
            &server,
            Some(&ada),
            "/api/v1/accounts",
            json!({"name": name, "role": "helpdesk"}),
        );
        assert_eq!(status, 201, "{body}");
    }
    let hal_token = api_token(&server, HAL);
    let hana_token = api_token(&server, HANA);
    let hal = [
        ("OATHDESK_SERVER", server.url.as_str()),
        ("OATHDESK_TOKEN", hal_token.as_str()),
    ];
    let hana = [
        ("OATHDESK_SERVER", server.url.as_str()),
        ("OATHDESK_TOKEN", hana_token.as_str()),
    ];
    let code_args = |ticket: &'static str| {
        vec![
            "helpdesk",
            "code",
            "--user",
            USER,
            "--method",
            "call-back",
            "--confirm",
            "all",
            "--evidence",
            EVIDENCE,
            "--ticket",
            ticket,
        ]
    };

    // Hal's request waits, exit 3, with its id and what to do next.
    let waiting = oathdesk(&code_args("INC0012345"), &hal);
    assert_eq!(waiting.status.code(), Some(3), "{}", stderr(&waiting));
    assert!(stdout(&waiting).is_empty(), "no code: {}", stdout(&waiting));
    let message = stderr(&waiting);
    assert!(
        message.starts_with(
            "oathdesk: the policy asks a second operator to approve every release: request A-"
        ),
        "{message}"
    );
    let id = message
        .split_whitespace()
        .find(|w| w.starts_with("A-"))
        .unwrap()
        .to_owned();
    assert!(
        message.contains(&format!("oathdesk helpdesk collect {id}")),
        "{message}"
    );

    // Listed for the other operators, with who asked and why.
    let listed = ok(oathdesk(
        &["helpdesk", "approvals", "--state", "pending", "--json"],
        &hana,
    ));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["requester"], HAL.0);
    assert_eq!(listed[0]["user"], USER);
    assert_eq!(listed[0]["ticket"], "INC0012345");
    assert_eq!(listed[0]["methods"], json!(["call-back"]));

    // Nobody approves their own; nothing is collected before approval,
    // nor by anyone but the one who asked.
    let own = oathdesk(&["helpdesk", "approve", &id], &hal);
    assert_eq!(own.status.code(), Some(1));
    assert!(
        stderr(&own).contains(&format!(
            "you asked for {id} yourself: another operator must decide it"
        )),
        "{}",
        stderr(&own)
    );
    let early = oathdesk(&["helpdesk", "collect", &id], &hal);
    assert_eq!(early.status.code(), Some(1));
    assert!(
        stderr(&early).contains(&format!("{id} waits for another operator's approval")),
        "{}",
        stderr(&early)
    );
    let other = oathdesk(&["helpdesk", "collect", &id], &hana);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains(&format!(
            "{id} was asked for by hal: only they collect its code"
        )),
        "{}",
        stderr(&other)
    );

    // Hana approves; hal collects the code, once.
    let approved = ok(oathdesk(
        &["helpdesk", "approve", &id, "--note", "called back too"],
        &hana,
    ));
    assert_eq!(
        stdout(&approved),
        format!(
            "approved {id} for {USER} (hal): they collect the code with 'oathdesk helpdesk collect {id}'\n"
        )
    );
    let twice = oathdesk(&["helpdesk", "approve", &id], &hana);
    assert_eq!(twice.status.code(), Some(1));
    assert!(stderr(&twice).contains(&format!("{id} is approved already")));
    let collected = ok(oathdesk(&["helpdesk", "collect", &id, "--json"], &hal));
    let grant: Value = serde_json::from_slice(&collected.stdout).unwrap();
    assert_eq!(grant["user"], USER);
    assert_eq!(grant["serial"], SERIAL);
    assert_eq!(
        grant["code"],
        code_at_counter(grant["counter"].as_u64().unwrap())
    );
    let again = oathdesk(&["helpdesk", "collect", &id], &hal);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains(&format!("{id} is used: no code comes from it")),
        "{}",
        stderr(&again)
    );
    assert!(stdout(&again).is_empty());

    // A denied request gives nothing.
    let mut json_args = code_args("INC0012346");
    json_args.push("--json");
    let second = oathdesk(&json_args, &hal);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    let second: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second["kind"], "approval_required");
    let second = second["id"].as_str().unwrap();
    let denied = ok(oathdesk(&["helpdesk", "deny", second], &hana));
    assert_eq!(stdout(&denied), format!("denied {second} for {USER}\n"));
    let refused = oathdesk(&["helpdesk", "collect", second], &hal);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(&format!("{second} is denied: no code comes from it")),
        "{}",
        stderr(&refused)
    );
    let all = ok(oathdesk(&["helpdesk", "approvals", "--json"], &hana));
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    let states: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(id.as_str(), "used")), "{states:?}");
    assert!(states.contains(&(second, "denied")), "{states:?}");
    drop(server);

    // The audit log holds who asked, who approved and the one release.
    let audit = ok(as_admin(&["audit", "list", "--json"]));
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let entries = audit.as_array().unwrap();
    let of = |action: &str, outcome: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .collect()
    };
    assert_eq!(of("helpdesk.approval_request", "requested").len(), 2);
    let approvals = of("helpdesk.approve", "ok");
    assert_eq!(approvals.len(), 1, "{audit}");
    assert_eq!(approvals[0]["operator"], HANA.0);
    assert_eq!(approvals[0]["detail"]["note"], "called back too");
    assert_eq!(of("helpdesk.approve", "refused").len(), 2, "own, twice");
    assert_eq!(of("helpdesk.deny", "ok").len(), 1);
    let granted = of("helpdesk.code", "granted");
    assert_eq!(granted.len(), 1, "one code, once: {audit}");
    assert_eq!(granted[0]["operator"], HAL.0);
    assert_eq!(granted[0]["detail"]["approved_by"], HANA.0);
    assert_eq!(granted[0]["detail"]["approval"], id.as_str());
    ok(as_admin(&["audit", "verify"]));
}
