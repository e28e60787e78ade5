//! The command line as a contract: outputs, exit codes and error messages
//! that scripts rely on. Runs the real binary.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

const RFC_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const RFC_HEX: &str = "3132333435363738393031323334353637383930";
const RFC_HEX_32: &str = "3132333435363738393031323334353637383930313233343536373839303132";
const RFC_HEX_64: &str = "31323334353637383930313233343536373839303132333435363738393031323334353637383930313233343536373839303132333435363738393031323334";

fn oathdesk() -> Command {
    let mut cmd = Command::cargo_bin("oathdesk").unwrap();
    cmd.env_remove("OATHDESK_SECRET");
    cmd
}

fn stdout_of(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "exit {:?}, stderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json_of(cmd: &mut Command) -> Value {
    serde_json::from_str(&stdout_of(cmd)).unwrap()
}

#[test]
fn code_matches_rfc6238_for_every_algorithm() {
    let cases = [
        (RFC_HEX, "sha1", "59", "94287082"),
        (RFC_HEX_32, "sha256", "59", "46119246"),
        (RFC_HEX_64, "sha512", "59", "90693936"),
        (RFC_HEX, "sha1", "20000000000", "65353130"),
        (RFC_HEX_32, "sha256", "2033-05-18T03:33:20Z", "90698825"),
        (RFC_HEX_64, "sha512", "20000000000", "47863826"),
    ];
    for (key, algorithm, at, expected) in cases {
        let out = stdout_of(oathdesk().args([
            "code",
            "--hex",
            key,
            "--algorithm",
            algorithm,
            "--digits",
            "8",
            "--at",
            at,
        ]));
        assert_eq!(out, format!("{expected}\n"), "{algorithm} at {at}");
    }
}

#[test]
fn code_reads_secret_from_stdin_file_env_and_uri() {
    let expected = "005924\n";
    let at = ["--at", "1234567890"];
    assert_eq!(
        stdout_of(
            oathdesk()
                .args(["code", "-"])
                .args(at)
                .write_stdin(format!("{RFC_B32}\n"))
        ),
        expected
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret.txt");
    std::fs::write(&file, format!("{RFC_HEX}\n")).unwrap();
    assert_eq!(
        stdout_of(
            oathdesk()
                .args(["code", "--hex", &format!("@{}", file.display())])
                .args(at)
        ),
        expected
    );
    assert_eq!(
        stdout_of(
            oathdesk()
                .arg("code")
                .args(at)
                .env("OATHDESK_SECRET", RFC_B32)
        ),
        expected
    );
    let uri = format!("otpauth://totp/ACME:bob?secret={RFC_B32}&digits=8&issuer=ACME");
    assert_eq!(
        stdout_of(oathdesk().args(["code", &uri]).args(at)),
        "89005924\n"
    );
    // Flags override the URI.
    assert_eq!(
        stdout_of(oathdesk().args(["code", &uri, "--digits", "6"]).args(at)),
        expected
    );
}

#[test]
fn code_table_json_has_exact_windows() {
    let json = json_of(oathdesk().args([
        "code",
        RFC_B32,
        "--at",
        "1234567890",
        "--past",
        "2",
        "--future",
        "1",
        "--json",
    ]));
    let codes = json["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 4);
    let offsets: Vec<i64> = codes
        .iter()
        .map(|c| c["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, vec![-2, -1, 0, 1]);
    let now = &codes[2];
    assert_eq!(now["code"], "005924");
    assert_eq!(now["counter"], 41152263);
    assert_eq!(now["valid_from"], 1234567890);
    assert_eq!(now["valid_until"], 1234567920);
    for pair in codes.windows(2) {
        assert_eq!(pair[0]["valid_until"], pair[1]["valid_from"]);
        assert_eq!(
            pair[0]["counter"].as_u64().unwrap() + 1,
            pair[1]["counter"].as_u64().unwrap()
        );
    }
}

#[test]
fn code_lists_at_most_a_hundred_thousand_codes_either_side() {
    // TOTP, HOTP and Steam Guard alike; refused before the secret is read,
    // instead of filling memory with rows.
    for (flag, extra) in [
        ("--past", &[][..]),
        ("--future", &[][..]),
        ("--future", &["--counter", "5"][..]),
        ("--past", &["--steam"][..]),
    ] {
        for count in ["100001", "18446744073709551615"] {
            oathdesk()
                .args(["code", RFC_B32, flag, count])
                .args(extra)
                .timeout(std::time::Duration::from_secs(20))
                .assert()
                .code(1)
                .stderr(predicate::str::contains(format!(
                    "{flag} {count}: at most 100000 codes"
                )));
        }
    }
    // The cap itself is allowed: 100,000 steps back from the third step of
    // time lists the three steps there are.
    let json =
        json_of(oathdesk().args(["code", RFC_B32, "--at", "60", "--past", "100000", "--json"]));
    let counters: Vec<u64> = json["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["counter"].as_u64().unwrap())
        .collect();
    assert_eq!(counters, [0, 1, 2]);
}

#[test]
fn code_valid_for_entra_picks_a_lasting_code() {
    // At t = 1234567890 (start of counter T), Entra (±2 steps) accepts the
    // code of T+1 until the end of T+3: 120 s from now.
    let json = json_of(oathdesk().args([
        "code",
        RFC_B32,
        "--at",
        "1234567890",
        "--valid-for",
        "2m",
        "--verifier",
        "entra",
        "--json",
    ]));
    let code = &json["codes"][0];
    assert_eq!(code["offset"], 1);
    assert_eq!(code["accepted_until"], 1234567890 + 120);
    let json = json_of(oathdesk().args([
        "code",
        RFC_B32,
        "--at",
        "1234567890",
        "--valid-for",
        "145",
        "--verifier",
        "entra",
        "--json",
    ]));
    let code = &json["codes"][0];
    assert_eq!(code["offset"], 2);
    assert_eq!(code["accepted_until"], 1234567890 + 150);
    // Three minutes is more than Entra ever allows for a 30 s token.
    oathdesk()
        .args(["code", RFC_B32, "--valid-for", "3m", "--verifier", "entra"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no code stays accepted for 180 s"));
    // 60 s tokens get ±2 minutes.
    let json = json_of(oathdesk().args([
        "code",
        RFC_B32,
        "--period",
        "60",
        "--at",
        "1234567860",
        "--valid-for",
        "4m",
        "--verifier",
        "entra",
        "--json",
    ]));
    assert_eq!(json["codes"][0]["offset"], 1);
    assert_eq!(json["codes"][0]["accepted_until"], 1234567860 + 240);
}

#[test]
fn hex_looking_and_broken_secrets_are_refused_without_echo() {
    oathdesk()
        .args(["code", RFC_HEX])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--hex"))
        .stderr(predicate::str::contains(RFC_HEX).not());
    let broken = "JBSWY3D8EHPK3PXPQQQQ";
    oathdesk()
        .args(["code", broken])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("character 8"))
        .stderr(predicate::str::contains("JBSW").not());
    oathdesk()
        .arg("code")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("OATHDESK_SECRET"));
}

#[test]
fn hotp_codes_and_tables() {
    assert_eq!(
        stdout_of(oathdesk().args(["code", RFC_B32, "--counter", "3"])),
        "969429\n"
    );
    let json =
        json_of(oathdesk().args(["code", RFC_B32, "--counter", "9", "--future", "1", "--json"]));
    assert_eq!(json["type"], "hotp");
    assert_eq!(json["codes"][1]["code"], "403154");
    assert_eq!(json["codes"][1]["valid_from"], Value::Null);
    assert_eq!(
        stdout_of(oathdesk().args(["code", RFC_B32, "--counter", "0", "--digits", "7"])),
        "4755224\n"
    );
}

#[test]
fn verify_prints_signed_offset_and_uses_exit_codes() {
    // HOTP: counter 3's code from expected counter 5 is two behind.
    let out = stdout_of(oathdesk().args([
        "verify",
        RFC_B32,
        "969429",
        "--counter",
        "5",
        "--window",
        "2",
    ]));
    assert_eq!(out, "-2\n");
    let out = stdout_of(oathdesk().args([
        "verify",
        RFC_B32,
        "969429",
        "--counter",
        "1",
        "--window",
        "2",
    ]));
    assert_eq!(out, "2\n");
    // TOTP at oathtool's example: -w 2 at T=10 accepts steps 8..12.
    let totp_code = |t: &str| stdout_of(oathdesk().args(["code", RFC_B32, "--at", t]));
    let step8 = totp_code("240");
    let out = stdout_of(oathdesk().args([
        "verify",
        RFC_B32,
        step8.trim(),
        "--at",
        "300",
        "--window",
        "2",
    ]));
    assert_eq!(out, "-2\n");
    let step13 = totp_code("390");
    oathdesk()
        .args([
            "verify",
            RFC_B32,
            step13.trim(),
            "--at",
            "300",
            "--window",
            "2",
        ])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("not accepted"));
    // Asymmetric windows.
    let step11 = totp_code("330");
    oathdesk()
        .args([
            "verify",
            RFC_B32,
            step11.trim(),
            "--at",
            "300",
            "--behind",
            "3",
            "--ahead",
            "0",
        ])
        .assert()
        .code(2);
    let json = json_of(oathdesk().args([
        "verify",
        RFC_B32,
        step11.trim(),
        "--at",
        "300",
        "--behind",
        "0",
        "--ahead",
        "1",
        "--json",
    ]));
    assert_eq!(
        json,
        serde_json::json!({"valid": true, "offset": 1, "counter": 11})
    );
    // Only CODE, with the secret in the environment.
    oathdesk()
        .args(["verify", step11.trim(), "--at", "330", "--json"])
        .env("OATHDESK_SECRET", RFC_B32)
        .assert()
        .code(0)
        .stdout("{\"valid\":true,\"offset\":0,\"counter\":11}\n");
    // A malformed code is an input error, not a mismatch.
    oathdesk()
        .args(["verify", RFC_B32, "12345"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("5 digits"));
    // Usage errors exit 1 (2 means "not verified").
    oathdesk().args(["verify", "--window"]).assert().code(1);
}

#[test]
fn seeds_new_and_convert() {
    let out = stdout_of(oathdesk().args(["seed", "new", "--count", "3", "--format", "hex"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l.len() == 40), "{lines:?}");
    assert_ne!(lines[0], lines[1]);
    let out = stdout_of(oathdesk().args(["seed", "new", "--algorithm", "sha256"]));
    assert_eq!(out.trim().len(), 52, "32 bytes = 52 Base32 characters");
    oathdesk()
        .args(["seed", "new", "--algorithm", "sha512"])
        .assert()
        .success()
        .stderr(predicate::str::contains("63 bytes"));
    assert_eq!(
        stdout_of(oathdesk().args(["seed", "convert", "--hex", RFC_HEX, "--to", "base32"])),
        format!("{RFC_B32}\n")
    );
    assert_eq!(
        stdout_of(oathdesk().args([
            "seed",
            "convert",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "--to",
            "base64"
        ])),
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=\n"
    );
}

#[test]
fn uri_build_and_show() {
    let uri = stdout_of(oathdesk().args([
        "uri",
        "build",
        RFC_B32,
        "--issuer",
        "ACME Co",
        "--account",
        "alice@acme.example",
        "--digits",
        "8",
        "--period",
        "60",
    ]));
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/ACME%20Co:alice@acme.example?secret={RFC_B32}&issuer=ACME%20Co&digits=8&period=60\n"
        )
    );
    let shown = stdout_of(oathdesk().args(["uri", "show", uri.trim()]));
    assert!(shown.contains("issuer     ACME Co"), "{shown}");
    assert!(shown.contains("period     60 s"), "{shown}");
    assert!(
        !shown.contains(RFC_B32),
        "the secret needs --reveal: {shown}"
    );
    let revealed = stdout_of(oathdesk().args(["uri", "show", "--reveal", uri.trim()]));
    assert!(revealed.contains(RFC_B32));
    // Microsoft's form: label organisation differs from issuer=Microsoft.
    let json = json_of(oathdesk().args([
        "uri", "show", "--json",
        "otpauth://totp/Some+Company%3Ame%40somecompany.net?secret=abcdefghijklmnop&issuer=Microsoft",
    ]));
    let c = &json["credentials"][0];
    assert_eq!(c["issuer"], "Microsoft");
    assert_eq!(c["label_issuer"], "Some Company");
    assert_eq!(c["account"], "me@somecompany.net");
    assert_eq!(c["secret"], Value::Null);
}

#[test]
fn migration_links_become_otpauth_uris() {
    let link = "otpauth-migration://offline?data=CjEKCkhlbGxvId6tvu8SGEV4YW1wbGU6YWxpY2VAZ29vZ2xlLmNvbRoHRXhhbXBsZTAC";
    let json = json_of(oathdesk().args(["uri", "show", "--reveal", "--json", link]));
    assert_eq!(
        json["credentials"][0]["uri"],
        "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example"
    );
    assert!(json["batch"].is_object(), "{json}");
    // A one-account export also works as a SECRET.
    let direct = stdout_of(oathdesk().args(["code", link, "--at", "0"]));
    let plain = stdout_of(oathdesk().args(["code", "JBSWY3DPEHPK3PXP", "--at", "0"]));
    assert_eq!(direct, plain);
}

#[test]
fn qr_png_round_trips_through_qr_read() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("enrol.png");
    oathdesk()
        .args([
            "qr",
            "show",
            RFC_B32,
            "--issuer",
            "ACME",
            "--account",
            "bob",
            "--png",
        ])
        .arg(&png)
        .assert()
        .success()
        .stderr(predicate::str::contains("delete it"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&png).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the PNG holds a secret: owner-only");
    }
    let out = stdout_of(oathdesk().args(["qr", "read"]).arg(&png));
    assert_eq!(
        out,
        format!("otpauth://totp/ACME:bob?secret={RFC_B32}&issuer=ACME\n")
    );
    let terminal = stdout_of(oathdesk().args(["qr", "show", RFC_B32, "--account", "bob"]));
    assert!(terminal.contains('█') || terminal.contains('▀') || terminal.contains('▄'));
    assert!(
        !terminal.contains(RFC_B32),
        "the terminal shows the code, not the secret"
    );
    let not_image = dir.path().join("notes.txt");
    std::fs::write(&not_image, "hello").unwrap();
    oathdesk()
        .args(["qr", "read"])
        .arg(&not_image)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("notes.txt"));
}

#[test]
fn selftest_passes_and_help_documents_the_contract() {
    oathdesk()
        .arg("selftest")
        .assert()
        .success()
        .stdout(predicate::str::contains("0 failed"));
    oathdesk()
        .args(["code", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("OATHDESK_SECRET"))
        .stdout(predicate::str::contains("--valid-for"));
    oathdesk().arg("--version").assert().success();
}

/// Runs `oathdesk ARGS` with its stdout a pipe that is closed before the
/// command has written it all (`oathdesk … | head -c1`), and returns how it
/// ended. `args` must print more than a pipe holds (64 KiB on Linux), so the
/// command meets the closed pipe whatever the timing.
#[cfg(unix)]
fn with_reader_gone(args: &[&str]) -> std::process::Output {
    use std::process::Stdio;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"))
        .args(args)
        .env_remove("OATHDESK_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// The one-shot `code` leaves SIGPIPE at its default (src/start.rs): a
/// reader that goes early ends it quietly, as it ends oathtool, rather than
/// with a panic about a failed print.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn code_ends_quietly_when_its_reader_leaves() {
    use std::os::unix::process::ExitStatusExt;
    const SIGPIPE: i32 = 13;
    let args = ["code", RFC_B32, "--at", "2000000000", "--past", "5000"];
    let output = with_reader_gone(&args);
    assert_eq!(
        output.status.signal(),
        Some(SIGPIPE),
        "{:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stderr.is_empty());
}

/// Every other command keeps std's start-up, which ignores SIGPIPE (the
/// console must outlive a client that hangs up): a closed pipe is an error
/// the command meets, never a signal that kills it. `completions` treats
/// that error as the end of its work (src/commands/ops.rs).
#[cfg(unix)]
#[test]
fn other_commands_are_not_killed_by_a_closed_pipe() {
    use std::os::unix::process::ExitStatusExt;
    let args = ["completions", "zsh"];
    let full = stdout_of(oathdesk().args(args));
    assert!(full.len() > 1 << 16, "{} bytes fit in a pipe", full.len());
    let output = with_reader_gone(&args);
    assert_eq!(output.status.signal(), None, "{:?}", output.status);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{:?}, stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
