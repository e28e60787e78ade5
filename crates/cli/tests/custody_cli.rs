//! Custody of serial ranges and self-service delivery links as an operator
//! uses them: real processes on a SQLite vault.

use std::str::FromStr;

use predicates::prelude::*;
use serde_json::Value;

mod common;
use common::desk::{Desk, SECRET};

#[test]
fn a_range_is_exported_to_a_recipient_checked_and_retired_in_one_entry() {
    let desk = Desk::new().with_secret_env(SECRET);
    for serial in ["OATH0001", "OATH0002", "OATH0003", "OATH0010", "TOKN0002"] {
        desk.run(&["token", "add", serial, "--kind", "classic"])
            .assert()
            .success();
    }
    let chosen = desk.json(&[
        "custody",
        "select",
        "--serial",
        "OATH0001..OATH0003",
        "--json",
    ]);
    let serials: Vec<&str> = chosen
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, ["OATH0001", "OATH0002", "OATH0003"]);
    desk.run(&["custody", "select", "--serial", "OATH0003..OATH0001"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "the first serial comes after the last",
        ));

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let out = desk.file("batch.csv.age");
    let exported = desk.json(&[
        "custody",
        "export",
        "--serial",
        "OATH*",
        "--recipient",
        &recipient,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(exported["tokens"].as_array().unwrap().len(), 4);
    // The recipient opens it; it holds the four serials and their secrets.
    let plain = age::decrypt(&identity, &std::fs::read(&out).unwrap()).unwrap();
    let text = String::from_utf8(plain).unwrap();
    for serial in ["OATH0001", "OATH0002", "OATH0003", "OATH0010"] {
        assert!(text.contains(serial), "{text}");
    }
    assert!(!text.contains("TOKN0002"));
    // A bad recipient is refused before anything is written.
    desk.run(&[
        "custody",
        "export",
        "--serial",
        "OATH*",
        "--recipient",
        "age1nope",
        "--out",
        desk.file("x.age").to_str().unwrap(),
    ])
    .assert()
    .failure();
    assert!(!desk.file("x.age").exists());

    let checked = desk.json(&["custody", "check", out.to_str().unwrap(), "--json"]);
    let entries = checked["tokens"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e["recipient"] == recipient.as_str()));
    assert_eq!(checked["file_sha256"], exported["file_sha256"]);
    // A changed file matches no record: exit 2.
    let mut bytes = std::fs::read(&out).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let altered = desk.file("altered.age");
    std::fs::write(&altered, bytes).unwrap();
    desk.run(&["custody", "check", altered.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not a file this vault exported",
        ));

    desk.run(&[
        "token",
        "retire",
        "--serial",
        "OATH0001..OATH0003",
        "--note",
        "batch recalled",
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains(
        "3 token(s) retired (one audit entry)",
    ));
    let audit = desk.json(&["audit", "list", "--json"]);
    let retired: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.retired")
        .collect();
    assert_eq!(retired.len(), 1, "{audit}");
    assert_eq!(
        retired[0]["detail"]["credentials"],
        serde_json::json!(["OATH0001", "OATH0002", "OATH0003"])
    );
    let exports: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "custody.export")
        .collect();
    assert_eq!(exports.len(), 1);
    let _ = age::x25519::Recipient::from_str(&recipient).unwrap();
}

/// A file that is not the one exported — decrypted, cut down, a serial
/// renamed, a token added — is still recognised token by token by its
/// secrets, and an import of a returned token says where it went before.
#[test]
fn a_changed_file_is_matched_by_its_tokens_and_an_import_says_so() {
    let desk = Desk::new().with_secret_env(SECRET);
    for serial in ["OATH0101", "OATH0102", "OATH0103"] {
        desk.run(&["token", "add", serial, "--kind", "classic", "--generate"])
            .assert()
            .success();
    }
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let out = desk.file("batch.csv.age");
    desk.run(&[
        "custody",
        "export",
        "--serial",
        "OATH01*",
        "--recipient",
        &recipient,
        "--out",
        out.to_str().unwrap(),
    ])
    .assert()
    .success();
    let plain = age::decrypt(&identity, &std::fs::read(&out).unwrap()).unwrap();
    let text = String::from_utf8(plain).unwrap();
    // Two of the three, one renamed, and a token of elsewhere.
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('#') || l.contains("OATH0101") || l.contains("OATH0102"))
        .map(|l| l.replace("OATH0102", "RETURNED02"))
        .collect();
    let returned = lines
        .iter()
        .find(|l| l.contains("RETURNED02"))
        .unwrap()
        .clone();
    lines.push("FOREIGN1,3132333435363738393031323334353637383930,TOTP,6,30".into());
    let changed = desk.file("changed.csv");
    std::fs::write(&changed, lines.join("\n") + "\n").unwrap();

    let checked = desk.json(&[
        "custody",
        "check",
        changed.to_str().unwrap(),
        "--format",
        "oath-csv",
        "--json",
    ]);
    assert_eq!(
        checked["tokens"],
        serde_json::json!([]),
        "not the file exported"
    );
    let content = &checked["content"];
    assert_eq!(content["total"], 3, "{checked}");
    let found: Vec<(&str, &str, &str)> = content["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["token"].as_str().unwrap(),
                f["matched_by"].as_str().unwrap(),
                f["custody"]["credential"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("OATH0101", "secret", "OATH0101"),
            ("RETURNED02", "secret", "OATH0102")
        ],
        "{checked}"
    );
    assert_eq!(content["not_found"], serde_json::json!(["FOREIGN1"]));
    assert_eq!(checked["batches"][0]["tokens"], 2);
    assert_eq!(checked["batches"][0]["recipient"], recipient.as_str());
    // The custody record keeps a fingerprint, never the secret.
    let audit = desk.json(&["audit", "list", "--json"]);
    assert!(!audit.to_string().contains("3132333435"), "{audit}");
    desk.run(&[
        "custody",
        "check",
        changed.to_str().unwrap(),
        "--format",
        "oath-csv",
    ])
    .assert()
    .success()
    .stderr(predicate::str::contains("2 of 3 token(s) were exported on"))
    .stderr(predicate::str::contains(recipient.as_str()));
    // A file with none of them: exit 2.
    let foreign = desk.file("foreign.csv");
    std::fs::write(
        &foreign,
        "FOREIGN2,3132333435363738393031323334353637383931,TOTP,6,30\n",
    )
    .unwrap();
    desk.run(&[
        "custody",
        "check",
        foreign.to_str().unwrap(),
        "--format",
        "oath-csv",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains(
        "none of its 1 token(s) has a custody record",
    ));

    // The returned token imported again: the import says where it went.
    let back = desk.file("returned.csv");
    let header: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    let mut file = header.join("\n");
    if !file.is_empty() {
        file.push('\n');
    }
    std::fs::write(&back, file + &returned + "\n").unwrap();
    // The same token in the helpdesk's spreadsheet, as a Base32 secret:
    // that import says so too (before it imports).
    let hex = returned.split(',').nth(1).unwrap().trim();
    let output = desk
        .run(&["seed", "convert", "--hex", "-", "--to", "base32"])
        .write_stdin(hex)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let base32 = String::from_utf8(output.stdout).unwrap();
    let sheet = desk.write(
        "helpdesk.csv",
        &format!("username,secret\nbob@contoso.com,{}\n", base32.trim()),
    );
    let output = desk
        .run(&["import", "spreadsheet", &sheet])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1 of 1 token(s) were exported on") && stderr.contains(&recipient),
        "{stderr}"
    );
    assert!(
        !stderr.contains(base32.trim()),
        "never the secret: {stderr}"
    );

    desk.run(&["import", "oath-csv", back.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("1 of 1 token(s) were exported on"))
        .stderr(predicate::str::contains(recipient.as_str()));
}

#[test]
fn a_delivery_link_is_printed_and_never_audited() {
    let desk = Desk::new().with_secret_env(SECRET);
    desk.run(&["user", "add", "ada@contoso.com", "--name", "Ada Lovelace"])
        .assert()
        .success();
    desk.run(&[
        "token",
        "add",
        "2400001",
        "--kind",
        "classic",
        "--user",
        "ada@contoso.com",
    ])
    .assert()
    .success();
    desk.run(&["token", "delivery-link", "2400001"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--base-url is needed"));
    desk.run(&["token", "ship", "2400001"]).assert().success();
    let link = desk.json(&[
        "token",
        "delivery-link",
        "2400001",
        "--base-url",
        "https://otp.example.com/",
        "--json",
    ]);
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://otp.example.com/d/") && url.len() == 26 + 24,
        "{url}"
    );
    let secret = url.rsplit('/').next().unwrap();
    let audit = desk.run(&["audit", "list", "--json"]).output().unwrap();
    let audit = String::from_utf8(audit.stdout).unwrap();
    assert!(audit.contains("delivery_link.create"));
    assert!(
        !audit.contains(secret),
        "the audit log holds the link's secret"
    );
}
