//! `oathdesk device …` and `oathdesk enroll` end to end: real processes, a
//! real vault, and simulated tokens in files (`--transport sim:FILE`). The
//! token's display is read with `device sim show` and compared with the
//! code the vault computes for the helpdesk.

mod common;
mod device_desk;

use device_desk::*;
use predicates::prelude::*;
use serde_json::Value;

#[test]
fn burn_records_first_and_the_token_shows_the_vaults_code() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    desk.run(&[
        "device",
        "burn",
        "--slot",
        "3",
        SECRET,
        "--title",
        "Contoso",
        "--user",
        "bob@contoso.com",
        "--transport",
        &sim,
        "--factory-key",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains(format!(
        "burned {MOLTO}:3 (sha1, 6 digits, 30 s); vault: assigned"
    )))
    .stderr(predicate::str::contains(
        "still has the factory customer key",
    ));
    assert_eq!(
        desk.tokens(),
        vec![(
            format!("{MOLTO}:3"),
            "assigned".into(),
            "bob@contoso.com".into()
        )]
    );
    desk.assert_same_code("molto.json", 3, "bob@contoso.com");
    let history = desk.json(&["token", "show", &format!("{MOLTO}:3"), "--json"]);
    let states: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["burning", "burned", "assigned"]);
    // The slot listing needs no key.
    desk.run(&["device", "slots", "--transport", &sim])
        .assert()
        .success()
        .stdout(predicate::str::contains("   3  yes   Contoso"));
}

#[test]
fn refused_parameters_touch_neither_token_nor_vault() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    for (flags, message) in [
        (
            vec!["--algorithm", "sha512"],
            "the Molto-2 computes HMAC-SHA1 or HMAC-SHA256 only: SHA-512 cannot be programmed",
        ),
        (
            vec!["--digits", "7"],
            "the Molto-2 shows 4, 6, 8 or 10 digits: 7 digits cannot be programmed",
        ),
        (
            vec!["--period", "45"],
            "the Molto-2 steps every 30 or 60 seconds: a 45 s period cannot be programmed",
        ),
        (
            vec!["--title", "far too long a title"],
            "a Molto-2 title is 1 to 12 bytes of UTF-8; 'far too long a title' has 20",
        ),
    ] {
        let mut args = vec![
            "device",
            "burn",
            "--slot",
            "0",
            SECRET,
            "--transport",
            &sim,
            "--factory-key",
        ];
        args.extend(flags);
        let stderr = desk.stderr(&args);
        assert!(stderr.contains(message), "{stderr}");
    }
    // An HOTP URI does not become TOTP because --period is given.
    let stderr = desk.stderr(&[
        "device",
        "burn",
        "--slot",
        "0",
        "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=3",
        "--period",
        "30",
        "--transport",
        &sim,
        "--factory-key",
    ]);
    assert_eq!(
        stderr,
        "oathdesk: error: the URI is for an HOTP (counter) credential; --period and --t0 apply to TOTP only\n"
    );
    assert!(desk.tokens().is_empty());
    // Only the info command and the v1/v2 probe of each attempt reached the token.
    assert_eq!(sim_apdus(&desk.path("molto.json")), 8);
}

#[test]
fn wrong_customer_key_reports_attempts_and_writes_nothing() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    let stderr = desk.stderr_env(
        &["device", "burn", "--slot", "0", SECRET, "--transport", &sim],
        "not the key",
    );
    assert_eq!(
        stderr,
        "oathdesk: error: wrong customer key: the token refused it and allows 4 more attempt(s) before it locks \
         (a factory reset is the only way back from a lost key); nothing was written\n"
    );
    assert!(desk.tokens().is_empty());
    // Without any key source and no terminal, oathdesk asks for one.
    let stderr = desk.stderr(&["device", "burn", "--slot", "0", SECRET, "--transport", &sim]);
    assert!(
        stderr.contains("no customer key: pass --key-file FILE, set OATHDESK_DEVICE_KEY"),
        "{stderr}"
    );
}

impl Desk {
    fn stderr_env(&self, args: &[&str], key: &str) -> String {
        let output = self
            .run(args)
            .env("OATHDESK_DEVICE_KEY", key)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?} should fail");
        String::from_utf8(output.stderr).unwrap()
    }
}

#[test]
fn occupied_slots_need_overwrite() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    let burn = |extra: &[&str]| {
        let mut args = vec![
            "device",
            "burn",
            "--slot",
            "5",
            "--generate",
            "--user",
            "carol@contoso.com",
            "--transport",
            &sim,
            "--factory-key",
        ];
        args.extend_from_slice(extra);
        desk.run(&args).output().unwrap()
    };
    assert!(burn(&[]).status.success());
    let second = burn(&[]);
    assert_eq!(
        error_part(&String::from_utf8(second.stderr).unwrap()),
        "oathdesk: error: slot 5 already holds a seed: pass --overwrite to delete it first, or choose an empty slot\n"
    );
    assert_eq!(desk.tokens().len(), 1);
    assert!(burn(&["--overwrite"]).status.success());
    let tokens = desk.tokens();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.contains(&(
        format!("{MOLTO}:5"),
        "assigned".into(),
        "carol@contoso.com".into()
    )));
    assert!(tokens.iter().any(|(_, state, _)| state == "retired"));
    desk.assert_same_code("molto.json", 5, "carol@contoso.com");
}

#[test]
fn delete_of_an_empty_slot_says_so() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    assert_eq!(
        desk.stderr(&["device", "delete", "--slot", "9", "--transport", &sim]),
        "oathdesk: error: slot 9 holds no seed: nothing to delete (the token answered 6A83)\n"
    );
}

#[test]
fn a_burn_cut_short_is_marked_burning_and_finished_by_a_rerun() {
    let desk = Desk::new();
    desk.sim("molto.json", &[]);
    // info, challenge, answer, read, config, then the seed write is carried
    // out but its answer lost.
    let args = |transport: &'static str| {
        vec![
            "device",
            "burn",
            "--slot",
            "2",
            SECRET,
            "--user",
            "dave@contoso.com",
            "--transport",
            transport,
            "--factory-key",
        ]
    };
    let stderr = desk.stderr(&args("sim:molto.json?cut-after=5"));
    assert_eq!(
        error_part(&stderr),
        format!(
            "oathdesk: error: the connection to the token was lost: the USB device is gone (injected fault)\n\
             the vault marks {MOLTO}:2 as burning: the token may hold the new seed, the old one or none; run the \
             same command again to finish the burn\n"
        )
    );
    assert_eq!(
        desk.tokens(),
        vec![(
            format!("{MOLTO}:2"),
            "burning".into(),
            "dave@contoso.com".into()
        )]
    );
    // The re-run rewrites the slot (its content is unknown) without --overwrite.
    desk.run(&args("sim:molto.json")).assert().success();
    let tokens = desk.tokens();
    assert!(tokens.contains(&(
        format!("{MOLTO}:2"),
        "assigned".into(),
        "dave@contoso.com".into()
    )));
    assert_eq!(tokens.iter().filter(|t| t.1 == "retired").count(), 1);
    desk.assert_same_code("molto.json", 2, "dave@contoso.com");
    desk.run(&["audit", "verify"]).assert().success();
}

#[test]
fn restricted_sync_models_get_their_seed_again() {
    let desk = Desk::new();
    for (file, serial, restricted) in [
        ("p2.json", "86596220000001", true),
        ("c302.json", "86596320000017", false),
    ] {
        let sim = desk.sim(file, &["--family", "single-profile", "--serial", serial]);
        let user = format!("{serial}@contoso.com");
        // One secret on both tokens: --force (the vault would refuse it).
        let output = desk
            .run(&[
                "device",
                "burn",
                SECRET,
                "--user",
                &user,
                "--transport",
                &sim,
                "--force",
            ])
            .output()
            .unwrap();
        assert!(output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(
            stderr.contains(
                "has restricted time sync: any later clock or configuration write clears its seed"
            ),
            restricted,
            "{stderr}"
        );
        desk.assert_same_code(file, 0, &user);
        let output = desk
            .run(&["device", "sync-time", "--transport", &sim])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            stdout.contains("its seed was written again from the vault"),
            restricted,
            "{stdout}"
        );
        desk.assert_same_code(file, 0, &user);
    }
    // A token outside the model table is read, never written.
    let sim = desk.sim(
        "odd.json",
        &["--family", "single-profile", "--serial", "86596990000001"],
    );
    let stderr = desk.stderr(&[
        "device",
        "burn",
        SECRET,
        "--transport",
        &sim,
        "--family",
        "single-profile",
    ]);
    assert!(
        stderr.starts_with("oathdesk: error: serial 86596990000001 is not a known programmable single-profile model"),
        "{stderr}"
    );
    assert_eq!(desk.tokens().len(), 2);
}

#[test]
fn provision_resumes_after_an_interruption() {
    let desk = Desk::new();
    desk.sim("molto.json", &[]);
    std::fs::write(
        desk.path("users.csv"),
        "upn,title\n# the pilot group\nann@contoso.com\nben@contoso.com,Ben B\ncid@contoso.com\n",
    )
    .unwrap();
    let args = |transport: &'static str| {
        vec![
            "device",
            "provision",
            "--users",
            "users.csv",
            "--first-slot",
            "10",
            "--transport",
            transport,
            "--factory-key",
        ]
    };
    // 3 for the session, then 5 per user: ann is done, ben's seed write is cut.
    let stderr = desk.stderr(&args("sim:molto.json?cut-after=11"));
    assert!(
        stderr.contains(&format!("the vault marks {MOLTO}:11 as burning")),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "1 of 3 user(s) provisioned before this; run the same command again to resume"
        ),
        "{stderr}"
    );
    let output = desk.run(&args("sim:molto.json")).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("ann@contoso.com already has"), "{stderr}");
    assert!(
        stderr.contains("provisioned 2 user(s) on 826658719844499 (1 resumed, 1 already done)"),
        "{stderr}"
    );
    let live: Vec<_> = desk
        .tokens()
        .into_iter()
        .filter(|t| t.1 != "retired")
        .collect();
    assert_eq!(
        live,
        vec![
            (
                format!("{MOLTO}:10"),
                "assigned".into(),
                "ann@contoso.com".into()
            ),
            (
                format!("{MOLTO}:11"),
                "assigned".into(),
                "ben@contoso.com".into()
            ),
            (
                format!("{MOLTO}:12"),
                "assigned".into(),
                "cid@contoso.com".into()
            ),
        ]
    );
    for (slot, user) in [
        (10, "ann@contoso.com"),
        (11, "ben@contoso.com"),
        (12, "cid@contoso.com"),
    ] {
        desk.assert_same_code("molto.json", slot, user);
    }
    desk.run(&["device", "slots", "--transport", "sim:molto.json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("  11  yes   Ben B"));
    // A bad users file is refused by line, before anything happens.
    std::fs::write(
        desk.path("bad.csv"),
        "eve@contoso.com\nbad user\neve@contoso.com\n",
    )
    .unwrap();
    let stderr = desk.stderr(&[
        "device",
        "provision",
        "--users",
        "bad.csv",
        "--transport",
        "sim:molto.json",
    ]);
    assert!(
        stderr.contains("bad.csv: line 2: 'bad user' is not a UPN"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.csv: line 3: eve@contoso.com is listed twice"),
        "{stderr}"
    );
}

#[test]
fn enroll_from_a_qr_screenshot() {
    let desk = Desk::new();
    desk.sim("molto.json", &[]);
    let uri = format!("otpauth://totp/Contoso:erin@contoso.com?secret={SECRET}&issuer=Microsoft");
    desk.run(&["qr", "show", &uri, "--png", "setup.png"])
        .assert()
        .success();
    let output = desk
        .run(&[
            "enroll",
            "--user",
            "erin@contoso.com",
            "--qr",
            "setup.png",
            "--transport",
            "sim:molto.json",
            "--factory-key",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["token"], format!("{MOLTO}:0"));
    let seconds_left = result["seconds_left"].as_u64().unwrap();
    assert!(
        (10..=30).contains(&seconds_left),
        "never under 10 s left: {seconds_left}"
    );
    desk.assert_same_code("molto.json", 0, "erin@contoso.com");
    desk.run(&["device", "slots", "--transport", "sim:molto.json"])
        .assert()
        .stdout(predicate::str::contains("   0  yes   Contoso erin"));
}

#[test]
fn exec_bridge_to_a_simulator() {
    let desk = Desk::new();
    desk.sim("molto.json", &[]);
    let bin = assert_cmd::cargo::cargo_bin("oathdesk");
    let transport = format!("exec:{} device sim serve molto.json", bin.display());
    desk.run(&[
        "device",
        "burn",
        "--slot",
        "1",
        SECRET,
        "--user",
        "fay@contoso.com",
        "--transport",
        &transport,
        "--factory-key",
        "--trace",
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains(
        "> 84 C5 01 01 14 [20 bytes redacted: encrypted seed]",
    ))
    .stderr(predicate::str::contains(
        "> 80 CE 00 00 10 [16 bytes redacted: challenge answer",
    ));
    desk.assert_same_code("molto.json", 1, "fay@contoso.com");
}

#[test]
fn key_change_and_factory_reset_wait_for_the_button() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    desk.run(&[
        "device",
        "burn",
        "--slot",
        "0",
        "--generate",
        "--no-vault",
        "--transport",
        &sim,
        "--factory-key",
    ])
    .assert()
    .success();
    desk.run(&["device", "set-key", "--transport", &sim, "--factory-key"])
        .env("OATHDESK_DEVICE_NEW_KEY", "0123456789ABCDEF")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "press ▲ on the token to confirm the new customer key",
        ));
    desk.run(&["device", "lock", "--transport", &sim, "--factory-key"])
        .assert()
        .success();
    desk.run(&["device", "sim", "press", "molto.json"])
        .assert()
        .stdout("▲ pressed: the new customer key is in force\n");
    assert!(
        desk.stderr(&["device", "unlock", "--transport", &sim, "--factory-key"])
            .contains("allows 4 more attempt(s)")
    );
    desk.run(&["device", "unlock", "--transport", &sim])
        .env("OATHDESK_DEVICE_KEY", "0123456789ABCDEF")
        .assert()
        .success();
    desk.run(&["device", "reset", "--transport", &sim])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "press ▲ on the token to confirm the factory reset",
        ));
    desk.run(&["device", "sim", "press", "molto.json"])
        .assert()
        .success();
    assert!(
        desk.stderr(&["device", "sim", "show", "molto.json"])
            .contains("holds no seed")
    );
    desk.run(&["device", "lock", "--transport", &sim, "--factory-key"])
        .assert()
        .success();
}

#[test]
fn provision_leaves_seeds_the_vault_does_not_know_alone() {
    let desk = Desk::new();
    desk.sim("molto.json", &[]);
    desk.run(&[
        "device",
        "burn",
        "--slot",
        "0",
        "--generate",
        "--no-vault",
        "--transport",
        "sim:molto.json",
        "--factory-key",
    ])
    .assert()
    .success();
    std::fs::write(desk.path("users.txt"), "gil@contoso.com\n").unwrap();
    desk.run(&[
        "device",
        "provision",
        "--users",
        "users.txt",
        "--transport",
        "sim:molto.json",
        "--factory-key",
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains(
        "slot 0 holds a seed the vault does not know; left alone",
    ));
    assert_eq!(
        desk.tokens(),
        vec![(
            format!("{MOLTO}:1"),
            "assigned".into(),
            "gil@contoso.com".into()
        )]
    );
    desk.assert_same_code("molto.json", 1, "gil@contoso.com");
}

#[test]
fn simulator_options_from_the_command_line() {
    let desk = Desk::new();
    let sim = desk.sim(
        "m.json",
        &["--option", "attempts=2", "--option", "unlock_accepts=older"],
    );
    let stderr = desk.stderr_env(&["device", "lock", "--transport", &sim], "wrong");
    assert!(stderr.contains("allows 1 more attempt(s)"), "{stderr}");
    desk.run(&["device", "unlock", "--transport", &sim, "--factory-key"])
        .assert()
        .success();
    let stderr = desk.stderr(&["device", "sim", "new", "x.json", "--option", "colour=red"]);
    assert!(stderr.contains("unknown field `colour`"), "{stderr}");
    let stderr = desk.stderr(&["device", "sim", "new", "m.json"]);
    assert!(
        stderr.contains("m.json exists already (pass --force to replace it)"),
        "{stderr}"
    );
}

#[test]
fn a_generated_burn_records_the_seeds_provenance() {
    let desk = Desk::new();
    let sim = desk.sim("molto.json", &[]);
    let burn = |secret: Option<&str>, extra: &[&str]| {
        let mut args = vec!["device", "burn", "--slot", "4"];
        args.extend(secret.map_or(["--generate"], |s| [s]));
        args.extend_from_slice(&["--transport", &sim, "--factory-key"]);
        args.extend_from_slice(extra);
        desk.run(&args).assert().success();
    };
    burn(None, &[]);
    let shown = desk.json(&["token", "show", &format!("{MOLTO}:4"), "--json"]);
    let seed = &shown["seed"];
    assert_eq!(
        seed["command"], "oathdesk device burn --generate",
        "{shown}"
    );
    assert_eq!(seed["operator"], "alice");
    assert_eq!(seed["rng"], oathdesk_vault::SEED_RNG);
    assert!(seed["generated_at"].as_u64().unwrap() > 1_700_000_000);
    // The seed itself is never part of its provenance.
    assert!(!shown.to_string().contains("secret"), "{shown}");

    // A seed from elsewhere burned over it has no provenance: the earlier
    // burn's belongs to the retired credential.
    burn(Some(SECRET), &["--overwrite"]);
    let shown = desk.json(&["token", "show", &format!("{MOLTO}:4"), "--json"]);
    assert!(shown.get("seed").is_none(), "{shown}");
}
