//! Issue 15 through the command line: Molto-2 v1, partial writes, clocks
//! set to a given time, the display time-out a clock write keeps, and an
//! enrolment that checks whose QR code it is and whether the vault knows
//! its secret already.

mod common;
mod device_desk;

use device_desk::*;
use serde_json::Value;

fn sim_file(desk: &Desk, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(desk.path(name)).unwrap()).unwrap()
}

fn ok(desk: &Desk, args: &[&str]) -> String {
    let output = desk.run(args).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Item 15: two new simulators are two tokens.
#[test]
fn new_simulators_get_fresh_serials() {
    let desk = Desk::new();
    desk.run(&["device", "sim", "new", "a.json"])
        .assert()
        .success();
    desk.run(&["device", "sim", "new", "b.json"])
        .assert()
        .success();
    let a = sim_file(&desk, "a.json")["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = sim_file(&desk, "b.json")["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(a, b);
    assert_eq!(a.len(), 15);
}

/// Item 5: a v1 offers 50 slots, and a sync of all carries on and reports.
#[test]
fn molto2_v1_has_fifty_slots() {
    let desk = Desk::new();
    let sim = desk.sim("v1.json", &["--option", "profiles=50"]);
    let info = desk.json(&["device", "info", "--json", "--transport", &sim]);
    assert_eq!(info["profiles"], 50);
    let stdout = ok(
        &desk,
        &[
            "device",
            "sync-time",
            "--all",
            "--transport",
            &sim,
            "--factory-key",
        ],
    );
    assert!(
        stdout.contains("set the clock of 50 of 50 slot(s)"),
        "{stdout}"
    );
    let stderr = desk.stderr(&[
        "device",
        "burn",
        SECRET,
        "--slot",
        "60",
        "--transport",
        &sim,
    ]);
    assert!(
        stderr.contains("slot 60 does not exist: this token has slots 0 to 49"),
        "{stderr}"
    );
}

/// Items 6 and 7: config only, title only, and a clock set to a given time.
#[test]
fn configure_title_and_a_clock_at_a_given_time() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    let key = "--factory-key";
    ok(
        &desk,
        &[
            "device",
            "burn",
            SECRET,
            "--slot",
            "2",
            "--user",
            "dan@contoso.com",
            "--transport",
            &sim,
            key,
        ],
    );
    let stdout = ok(
        &desk,
        &[
            "device",
            "configure",
            "--slot",
            "2",
            "--period",
            "60",
            "--display-timeout",
            "120",
            "--transport",
            &sim,
            key,
        ],
    );
    assert!(
        stdout.contains("configured 826658719844499:2: sha1, 6 digits, 60 s, display 120 s"),
        "{stdout}"
    );
    let slot = &sim_file(&desk, "molto.json")["profiles"][2];
    assert_eq!(slot["config"]["step"], 60);
    assert_eq!(slot["config"]["display_timeout"], 3);
    assert!(slot["seed"].is_string(), "the seed stays");
    // The vault follows: the helpdesk code is the token's.
    desk.assert_same_code("molto.json", 2, "dan@contoso.com");
    ok(
        &desk,
        &[
            "device",
            "title",
            "--slot",
            "2",
            "Fabrikam",
            "--transport",
            &sim,
            key,
        ],
    );
    let slots = ok(&desk, &["device", "slots", "--transport", &sim]);
    assert!(slots.contains("   2  yes   Fabrikam"), "{slots}");
    let audit = ok(&desk, &["audit", "list", "--json"]);
    assert!(
        audit.contains("device.config") && audit.contains("device.title"),
        "history records both"
    );
    // Item 7: slot 2's clock set to 2030-01-01.
    ok(
        &desk,
        &[
            "device",
            "sync-time",
            "--slot",
            "2",
            "--at",
            "2030-01-01T00:00:00Z",
            "--transport",
            &sim,
            key,
        ],
    );
    let slots = desk.json(&["device", "slots", "--json", "--transport", &sim]);
    assert_eq!(slots[0]["last_set"], 1_893_456_000u64);
    // The vault recorded the clock set: the drift report starts the
    // profile's history again from it (and the history says so).
    let report = desk.json(&["fleet", "drift", "--json"]);
    let line = &report["tokens"][0];
    assert_eq!(line["credential"], "826658719844499:2", "{report}");
    assert_eq!(line["sightings"], 0, "{report}");
    assert!(line["resynced_at"].is_u64(), "{report}");
    assert!(
        line["resync_note"]
            .as_str()
            .unwrap()
            .ends_with("0 sightings since"),
        "{report}"
    );
    assert!(audit_clock_entries(&desk) >= 1);
    // Without the vault the clock is set and nothing is recorded.
    let before = audit_clock_entries(&desk);
    let output = desk
        .run(&[
            "device",
            "sync-time",
            "--slot",
            "2",
            "--no-vault",
            "--transport",
            &sim,
            key,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--no-vault"));
    assert_eq!(audit_clock_entries(&desk), before);
}

/// `device.clock` entries of the audit log that restarted a drift history.
fn audit_clock_entries(desk: &Desk) -> usize {
    let audit = desk.json(&["audit", "list", "--json"]);
    audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "device.clock")
        .filter(|e| e["detail"].to_string().contains("drift_history_reset"))
        .count()
}

/// Item 8: a single-profile clock write keeps the display time-out burned.
#[test]
fn single_profile_sync_keeps_the_display_timeout() {
    let desk = Desk::new();
    let sim = desk.sim(
        "c302.json",
        &["--family", "single-profile", "--serial", "86596320000017"],
    );
    ok(
        &desk,
        &[
            "device",
            "burn",
            SECRET,
            "--display-timeout",
            "120",
            "--transport",
            &sim,
        ],
    );
    assert_eq!(sim_file(&desk, "c302.json")["display_timeout"], 3);
    let stdout = ok(
        &desk,
        &[
            "device",
            "sync-time",
            "--transport",
            &sim,
            "--at",
            "1893456000",
        ],
    );
    assert!(stdout.contains("display time-out 120 s kept"), "{stdout}");
    let token = sim_file(&desk, "c302.json");
    assert_eq!(token["display_timeout"], 3, "not reset to 30 s");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let offset = token["clock_offset"].as_i64().unwrap();
    assert!((offset - (1_893_456_000 - now)).abs() < 30, "{offset}");
    // Seed only: the clock set above stays.
    ok(
        &desk,
        &[
            "device",
            "burn",
            "GEZDGNBVGY3TQOJQGEZDGNBV",
            "--seed-only",
            "--overwrite",
            "--transport",
            &sim,
        ],
    );
    assert_eq!(sim_file(&desk, "c302.json")["clock_offset"], offset);
}

fn qr(desk: &Desk, account: &str, secret: &str, png: &str) {
    let uri = format!("otpauth://totp/Contoso:{account}?secret={secret}&issuer=Microsoft");
    ok(desk, &["qr", "show", &uri, "--png", png]);
}

/// Items 11–13: another user's QR code, the QR code's label kept, and a
/// secret the vault holds already.
#[test]
fn enroll_checks_whose_qr_code_and_whose_secret() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    qr(&desk, "alice@contoso.com", SECRET, "alice.png");
    let enroll = |user: &str, png: &str, force: bool| {
        let mut args = vec![
            "enroll",
            "--user",
            user,
            "--qr",
            png,
            "--transport",
            &sim,
            "--factory-key",
        ];
        if force {
            args.push("--force");
        }
        desk.run(&args).output().unwrap()
    };
    let refused = enroll("bob@contoso.com", "alice.png", false);
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(
        stderr.contains("the QR code is for alice@contoso.com, not bob@contoso.com"),
        "{stderr}"
    );
    assert!(desk.tokens().is_empty(), "nothing recorded");
    assert_eq!(
        sim_apdus(&desk.path("molto.json")),
        0,
        "the token untouched"
    );
    // Alice's own enrolment: the vault keeps Microsoft's issuer and the label.
    assert!(
        enroll("alice@contoso.com", "alice.png", false)
            .status
            .success()
    );
    let tokens = desk.json(&["token", "list", "--json"]);
    assert_eq!(tokens[0]["issuer"], "Microsoft");
    assert_eq!(tokens[0]["label"], "Contoso:alice@contoso.com");
    let slots = ok(&desk, &["device", "slots", "--transport", &sim]);
    assert!(slots.contains("   0  yes   Contos alice"), "{slots}");
    // The same secret again, for another account: refused without --force.
    qr(&desk, "carol@contoso.com", SECRET, "carol.png");
    let again = enroll("carol@contoso.com", "carol.png", false);
    assert!(!again.status.success());
    let stderr = String::from_utf8(again.stderr).unwrap();
    assert!(
        stderr.contains("the vault holds this secret on 826658719844499:0 already"),
        "{stderr}"
    );
    assert_eq!(desk.tokens().len(), 1);
    let forced = enroll("carol@contoso.com", "carol.png", true);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_eq!(desk.tokens().len(), 2);
}
