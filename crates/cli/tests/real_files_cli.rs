//! Issue 16, seed files: real-world-shaped app backups, draft PSKC, the
//! linter on spreadsheet damage, previews, and conversions that lose data.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

const ENTRA: &str = "upn,serial number,secret key,time interval,manufacturer,model\n\
                     helga@contoso.com,1234567,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,60,Contoso,HardwareKey\n\
                     bob@contoso.com,1234568,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP,30,Contoso,HardwareKey\n";

fn oathdesk(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("oathdesk").unwrap();
    cmd.env_remove("OATHDESK_SECRET")
        .env_remove("OATHDESK_FILE_PASSWORD")
        .env_remove("OATHDESK_FILE_KEY")
        .env("OATHDESK_VAULT", dir.join("vault.db"))
        .env("OATHDESK_OPERATOR", "alice")
        .env("OATHDESK_PASSPHRASE", "pw");
    cmd
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../formats/tests/data")
        .join(name)
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let output = cmd.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
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

const SECRETS: [&str; 4] = [
    "GEZDGNBVGY3TQOJQ",
    "LA2V6KMCGYMWWVEW",
    "6DE3WGBLYX3OTRJD",
    "KRSXG5CTMVRXEZLU",
];

#[test]
fn convert_keeps_every_totp_and_hotp_entry_of_mixed_app_backups() {
    let dir = tempfile::tempdir().unwrap();
    let password = write(dir.path(), "pw.txt", "test\n");
    for (file, keyed) in [
        ("aegis_mixed_plain.json", false),
        ("aegis_mixed_encrypted.json", true),
        ("andotp_mixed_plain.json", false),
        ("andotp_mixed_encrypted.bin", true),
    ] {
        let mut cmd = oathdesk(dir.path());
        cmd.arg("convert")
            .arg(data(file))
            .args(["--to", "otpauth", "--plaintext"]);
        if keyed {
            cmd.arg("--password-file").arg(&password);
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 2, "{file}: {err}");
        assert_eq!(out.lines().count(), 2, "{file}: {out}");
        assert!(out.contains("Contoso:alice@contoso.com") && out.contains("Fabrikam:bob"));
        assert!(
            err.contains(
                "not read: entries[1] (issuer \"Steam\", account \"gamer42\"): a Steam entry; \
                 oathdesk handles TOTP and HOTP only (show its codes with 'oathdesk code --steam')"
            ),
            "{file}: {err}"
        );
        if file.starts_with("aegis") {
            assert!(err.contains("entries[2] (issuer \"Yandex\""), "{err}");
            assert!(err.contains("entries[3] (issuer \"Legacy VPN\""), "{err}");
            assert!(err.contains("3 entries of"), "{err}");
        } else {
            assert!(err.contains("1 entry of"), "{err}");
        }
        for secret in SECRETS {
            assert!(!err.contains(secret), "{file}: a secret in {err}");
        }
    }
}

#[test]
fn import_of_a_mixed_backup_imports_the_rest_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    init_vault(dir.path());
    let password = write(dir.path(), "pw.txt", "test\n");
    let file = data("aegis_mixed_encrypted.json");
    // The preview lists every record, secrets masked, and every finding.
    let (code, out, err) = run(oathdesk(dir.path())
        .args(["import", "aegis", "--dry-run", "--password-file"])
        .arg(&password)
        .arg(&file));
    assert_eq!(code, 2, "{err}");
    assert!(
        out.contains(
            "entries[0], \"Contoso: alice@contoso.com\", totp 30 s, sha1, 6 digits, secret \
             ******** (10 bytes)"
        ),
        "{out}"
    );
    assert!(
        out.contains("entries[4], \"Fabrikam: bob\", hotp counter 7"),
        "{out}"
    );
    assert!(
        out.contains("warning: entries[0], secret: a 10-byte key is shorter"),
        "{out}"
    );
    assert!(
        out.contains(
            "warning: entries[2] (issuer \"Yandex\", account \"ivan\"): left out: a Yandex entry"
        ),
        "{out}"
    );
    assert!(
        out.contains("2 record(s) read as aegis, 3 entries left out; nothing imported"),
        "{out}"
    );
    for secret in SECRETS.iter().chain(&["JBSWY3DPEHPK3PXP"]) {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }
    let (code, out, err) = run(oathdesk(dir.path())
        .args(["import", "aegis", "--password-file"])
        .arg(&password)
        .arg(&file));
    assert_eq!(code, 2, "{err}");
    assert!(out.contains("imported 2 credential(s)"), "{out}");
    assert!(err.contains("entries[1] (issuer \"Steam\""), "{err}");
}

#[test]
fn steam_guard_codes() {
    let dir = tempfile::tempdir().unwrap();
    // The RFC 4226 key; the code computed independently (see otp's steam.rs).
    oathdesk(dir.path())
        .args([
            "code",
            "--steam",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "--at",
            "59",
        ])
        .assert()
        .success()
        .stdout("PV9M4\n");
    oathdesk(dir.path())
        .args([
            "code",
            "--steam",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "--at",
            "59",
            "--algorithm",
            "sha256",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("Steam Guard codes use SHA-1"));
    // The URIs apps export for Steam entries imply --steam.
    for uri in [
        "otpauth://steam/Steam:gamer42?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Steam",
        "otpauth://totp/Steam:gamer42?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&encoder=steam",
    ] {
        oathdesk(dir.path())
            .args(["code", uri, "--at", "59"])
            .assert()
            .success()
            .stdout("PV9M4\n");
    }
}

#[test]
fn draft_pskc_converts_and_keys_without_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "psk.hex", "12345678901234567890123456789012\n");
    let (code, out, err) = run(oathdesk(dir.path())
        .arg("convert")
        .arg(data("pskc_draft_encrypted.pskcxml"))
        .args(["--to", "oathdesk", "--plaintext", "--key-file"])
        .arg(&key));
    assert_eq!(code, 0, "{err}");
    let records: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2, "{out}");
    let hoyer = write(
        dir.path(),
        "old.pskcxml",
        r#"<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:container">
  <Device><Key KeyAlgorithm="urn:ietf:params:xml:ns:keyprov:pskc#hotp" KeyId="1">
    <Data Name="SECRET"><Value>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</Value></Data></Key></Device>
</KeyContainer>"#,
    );
    oathdesk(dir.path())
        .arg("convert")
        .arg(&hoyer)
        .args(["--to", "oathdesk", "--plaintext"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("2007 draft form"));
}

#[test]
fn semicolon_files_are_read_and_every_finding_of_a_row_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let semicolons = write(dir.path(), "excel.csv", &ENTRA.replace(',', ";"));
    for from in [None, Some("entra-csv")] {
        let mut cmd = oathdesk(dir.path());
        cmd.arg("lint").arg(&semicolons);
        if let Some(from) = from {
            cmd.args(["--from", from]);
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            out.contains("warning: line 1: fields are separated by ';'"),
            "{out}"
        );
        assert!(
            out.contains("2 record(s) read as entra-csv, 1 finding(s)"),
            "{out}"
        );
    }
    let (code, out, err) = run(oathdesk(dir.path()).arg("convert").arg(&semicolons).args([
        "--to",
        "entra-csv",
        "--plaintext",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, ENTRA);

    // A bad secret on a row does not hide its duplicate serial.
    let duplicate = write(
        dir.path(),
        "dup.csv",
        &format!("{ENTRA}carol@contoso.com,1234568,NOT-BASE32-8,30,Contoso,HardwareKey\n"),
    );
    let (_, out, _) = run(oathdesk(dir.path()).arg("lint").arg(&duplicate));
    assert!(out.contains("error: line 4, secret key:"), "{out}");
    assert!(
        out.contains("error: line 4, serial: serial 1234568 is also at line 3"),
        "{out}"
    );

    // Hex secrets: the fix keeps the secret off the command line.
    let hex = "3132333435363738393031323334353637383930";
    let hexed = write(
        dir.path(),
        "hex.csv",
        &format!(
            "upn,serial number,secret key,time interval,manufacturer,model\n\
             a@contoso.com,1,{hex},30,X,Y\n"
        ),
    );
    let (_, out, _) = run(oathdesk(dir.path()).arg("lint").arg(&hexed));
    assert!(
        out.contains("'oathdesk seed convert --hex - --to base32'"),
        "{out}"
    );
    assert!(!out.contains("--hex VALUE") && !out.contains(hex), "{out}");
}

#[test]
fn lint_knows_the_spreadsheet_and_the_preview_shows_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sheet = write(
        dir.path(),
        "helpdesk.csv",
        "username;secret;serial\n\
         alice@contoso.com;JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP;2100001\n\
         bob@contoso.com;3132333435363738393031323334353637383930;2100001\n",
    );
    let (code, out, err) = run(oathdesk(dir.path())
        .args(["lint", "--from", "spreadsheet"])
        .arg(&sheet));
    assert_eq!(code, 2, "{err}");
    assert!(
        out.contains("error: line 3, secret: looks like hex"),
        "{out}"
    );
    assert!(
        out.contains("error: line 3, serial: 2100001 is also on line 2"),
        "{out}"
    );
    assert!(out.contains("1 record(s) read as spreadsheet"), "{out}");
    init_vault(dir.path());
    let (code, out, err) = run(oathdesk(dir.path())
        .args(["import", "spreadsheet", "--dry-run", "--skip-bad"])
        .arg(&sheet));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("line 2, user alice@contoso.com, serial 2100001, totp 30 s, secret ********"),
        "{out}"
    );
    assert!(!out.contains("JBSWY3DP") && !err.contains("JBSWY3DP"));
}

#[test]
fn conversions_that_drop_data_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let entra = write(dir.path(), "entra.csv", ENTRA);
    let (code, _, err) =
        run(oathdesk(dir.path())
            .arg("convert")
            .arg(&entra)
            .args(["--to", "aegis", "--plaintext"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "note: aegis files have no place for a token's serial, manufacturer, model, user: \
             dropped from 2 record(s)"
        ),
        "{err}"
    );
    let (code, out, err) = run(oathdesk(dir.path()).arg("convert").arg(&entra).args([
        "--to",
        "google",
        "--plaintext",
    ]));
    assert_eq!(code, 2, "{err}");
    assert_eq!(out.lines().count(), 1);
    assert!(
        err.contains("not written: 1234567: its period is 60 s, and a Google Authenticator export has no period"),
        "{err}"
    );
    assert!(err.contains("--to otpauth"), "{err}");
}
