//! Audit entries to a SIEM, through the real binary: `OATHDESK_AUDIT_SINK`
//! for commands and `serve --audit-sink` for the console. The sinks hold
//! every entry, in order, with the chain head `audit verify` agrees with,
//! and none of the vault's secrets (seeds in base32 and hex, passphrases,
//! codes given out or typed).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use oathdesk_vault::testing::ScratchSchema;
use serde_json::{Value, json};

mod common;
use common::console::*;

const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const SEED_TWO: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const PASSPHRASE: &str = "sink test passphrase 4417";
const CAROL_PASSPHRASE: &str = "carol's own words 9902";

/// A vault on SQLite or PostgreSQL, and where its commands ship entries.
struct Desk {
    dir: tempfile::TempDir,
    schema: Option<ScratchSchema>,
    sinks: String,
}

impl Desk {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"));
        match &self.schema {
            Some(schema) => cmd
                .env("OATHDESK_DATABASE_URL", schema.url())
                .env_remove("OATHDESK_VAULT"),
            None => cmd
                .env("OATHDESK_VAULT", self.file("vault.db"))
                .env_remove("OATHDESK_DATABASE_URL"),
        };
        cmd.env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", PASSPHRASE)
            .env("OATHDESK_AUDIT_SINK", &self.sinks)
            .env_remove("OATHDESK_AUDIT_HEAD_FILE")
            .args(args);
        Command::from_std(cmd)
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// Collects RFC 6587 octet-counted frames sent to a loopback port.
fn syslog_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = frames.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&buffer[..n]);
                    while let Some(space) = bytes.iter().position(|b| *b == b' ') {
                        let length: usize = std::str::from_utf8(&bytes[..space])
                            .unwrap()
                            .parse()
                            .unwrap();
                        if bytes.len() < space + 1 + length {
                            break;
                        }
                        let frame = bytes[space + 1..space + 1 + length].to_vec();
                        bytes.drain(..space + 1 + length);
                        sink.lock().unwrap().push(String::from_utf8(frame).unwrap());
                    }
                }
            });
        }
    });
    (address, frames)
}

/// The JSON of a syslog message: what follows `[meta sequenceId="N"] `.
fn message_json(frame: &str) -> Value {
    assert!(
        frame.starts_with("<85>1 ") || frame.starts_with("<84>1 "),
        "{frame}"
    );
    let start = frame.find("] {").expect("structured data, then the JSON") + 2;
    serde_json::from_str(&frame[start..]).unwrap()
}

/// Base32 (RFC 4648, no padding) to lower-case hex, for the hex form of a seed.
fn base32_hex(text: &str) -> String {
    let mut bits = 0u64;
    let mut count = 0;
    let mut hex = String::new();
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        bits = (bits << 5) | u64::from(value);
        count += 5;
        if count >= 8 {
            count -= 8;
            hex.push_str(&format!("{:02x}", (bits >> count) & 0xff));
        }
    }
    hex
}

/// Whether `needle` stands in `text` on its own (not inside a longer run of
/// letters and digits, where six digits can occur by chance in a hash).
fn stands_in(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !stands_in(&text.to_lowercase(), &secret.to_lowercase()),
            "{what} holds the secret {secret}"
        );
    }
}

fn code_at(secret: &str, at: u64) -> String {
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"))
        .args(["code", secret, "--at", &at.to_string()])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn every_entry_reaches_every_sink_and_no_secret_does(schema: Option<ScratchSchema>) {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("audit.jsonl");
    let (address, frames) = syslog_receiver();
    let desk = Desk {
        sinks: format!("file:{},syslog+tcp://{address}", jsonl.display()),
        dir,
        schema,
    };
    desk.ok(&[
        "vault",
        "init",
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ]);
    let carol = desk.file("carol.pass");
    std::fs::write(&carol, format!("{CAROL_PASSPHRASE}\n")).unwrap();
    desk.ok(&[
        "operator",
        "add",
        "carol",
        "--role",
        "helpdesk",
        "--new-passphrase-file",
        carol.to_str().unwrap(),
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ]);
    desk.ok(&["user", "add", "bob@contoso.com"]);
    let phones = desk.file("phones.csv");
    std::fs::write(
        &phones,
        "upn,mobile_phone\nbob@contoso.com,+44 7700 900123\n",
    )
    .unwrap();
    desk.ok(&["user", "import", phones.to_str().unwrap()]);
    for (serial, seed) in [("2100001", SEED), ("2100002", SEED_TWO)] {
        desk.run(&[
            "token",
            "add",
            serial,
            "--secret",
            "-",
            "--user",
            "bob@contoso.com",
        ])
        .write_stdin(format!("{seed}\n"))
        .assert()
        .success();
    }
    desk.ok(&["token", "ship", "2100001"]);
    let grant: Value = serde_json::from_str(&desk.ok(&[
        "helpdesk",
        "code",
        "--user",
        "bob@contoso.com",
        "--serial",
        "2100001",
        "--method",
        "call-back",
        "--confirm",
        "all",
        "--evidence",
        "called the mobile on file",
        "--ticket",
        "INC0042",
        "--json",
    ]))
    .unwrap();
    let released = grant["code"].as_str().unwrap().to_owned();
    let typed = code_at(SEED, (grant["counter"].as_u64().unwrap() + 1) * 30);
    desk.ok(&["token", "deliver", "2100001", "--code", &typed]);

    // The vault's own view.
    let entries: Value = serde_json::from_str(&desk.ok(&["audit", "list", "--json"])).unwrap();
    let entries = entries.as_array().unwrap().clone();
    let head = desk.ok(&["audit", "verify"]);
    let head = head.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(entries.len() >= 10, "{entries:?}");

    // The file: every entry, in order, the same fields, the same head.
    let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), entries.len());
    for (line, entry) in lines.iter().zip(&entries) {
        assert_eq!(line["schema"], "oathdesk.audit/1");
        for field in [
            "seq",
            "at",
            "operator",
            "action",
            "outcome",
            "user",
            "credential",
            "ticket",
            "detail",
            "epoch",
            "hash",
        ] {
            assert_eq!(line[field], entry[field], "{field} of {line}");
        }
        assert_eq!(
            line["audit_head"],
            format!("{}:{}", entry["seq"], entry["hash"].as_str().unwrap())
        );
    }
    assert_eq!(lines.last().unwrap()["audit_head"], head.as_str());
    let expect = format!("@{}", jsonl.display());
    desk.ok(&["audit", "verify", "--expect-head", &expect]);

    // Syslog: one message per entry, in seq order.
    let deadline = Instant::now() + Duration::from_secs(10);
    while frames.lock().unwrap().len() < entries.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let frames = frames.lock().unwrap().clone();
    let seqs: Vec<i64> = frames
        .iter()
        .map(|f| message_json(f)["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=entries.len() as i64).collect::<Vec<_>>());

    // `audit ship` sends the same lines again.
    let shipped = desk.file("shipped.jsonl");
    let to = format!("file:{}", shipped.display());
    desk.run(&["audit", "ship", "--to", &to, "--from", "3"])
        .env_remove("OATHDESK_AUDIT_SINK")
        .assert()
        .success();
    let again: Vec<Value> = std::fs::read_to_string(&shipped)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(again, lines[2..]);

    // Nothing secret in any of it.
    let secrets = vec![
        SEED.to_owned(),
        SEED_TWO.to_owned(),
        base32_hex(SEED),
        base32_hex(SEED_TWO),
        PASSPHRASE.to_owned(),
        CAROL_PASSPHRASE.to_owned(),
        released,
        typed,
    ];
    assert_eq!(base32_hex(SEED), "3132333435363738393031323334353637383930");
    assert_no_secret(
        "the JSON-lines file",
        &std::fs::read_to_string(&jsonl).unwrap(),
        &secrets,
    );
    assert_no_secret("the syslog messages", &frames.join("\n"), &secrets);
    // The check can fail: the file holds the seq and operator it should.
    assert!(stands_in(
        &std::fs::read_to_string(&jsonl).unwrap(),
        "alice"
    ));
}

#[test]
fn sqlite_every_entry_reaches_every_sink_and_no_secret_does() {
    every_entry_reaches_every_sink_and_no_secret_does(None);
}

#[test]
fn postgres_every_entry_reaches_every_sink_and_no_secret_does() {
    every_entry_reaches_every_sink_and_no_secret_does(Some(ScratchSchema::new()));
}

#[test]
fn a_bad_sink_is_refused_with_the_forms_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"))
        .env("OATHDESK_VAULT", dir.path().join("vault.db"))
        .env("OATHDESK_AUDIT_SINK", "syslog://127.0.0.1")
        .args(["user", "list"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "OATHDESK_AUDIT_SINK: audit sink 'syslog://127.0.0.1' is not one of: file:PATH"
        ),
        "{stderr}"
    );
}

fn wait_for_line(path: &Path, action: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.iter().any(|l| l["action"] == action) {
            return lines;
        }
        assert!(Instant::now() < deadline, "no {action} line in {lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_console_ships_its_entries_as_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk {
        sinks: String::new(),
        dir,
        schema: None,
    };
    desk.ok(&[
        "vault",
        "init",
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ]);
    let key = desk.file("unseal.key");
    desk.ok(&[
        "operator",
        "add",
        "console",
        "--role",
        "admin",
        "--new-identity-file",
        key.to_str().unwrap(),
    ]);
    let jsonl = desk.file("console.jsonl");
    let sink = format!("file:{}", jsonl.display());
    let vault = vec![format!("--vault={}", desk.file("vault.db").display())];
    let server = Server::start_with(
        "sink",
        &vault,
        desk.dir.path(),
        &[
            "--audit-sink",
            &sink,
            "--unseal-key-file",
            key.to_str().unwrap(),
        ],
    );
    let lines = wait_for_line(&jsonl, "console.unseal");
    // The first web sign-in, as the operator: its entry follows.
    let setup = send(
        &server,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"operator": "alice", "passphrase": PASSPHRASE})),
    );
    assert_eq!(setup.status / 100, 2, "{}", setup.body);
    let before = lines.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    let lines = loop {
        let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() > before || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(lines.len() > before, "the setup wrote no entry: {lines:?}");
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    drop(server);
    // The console's last line is the vault's head.
    let head = desk.ok(&["audit", "verify"]);
    assert!(
        head.trim()
            .ends_with(lines.last().unwrap()["audit_head"].as_str().unwrap()),
        "{head} vs {:?}",
        lines.last()
    );
    desk.ok(&[
        "audit",
        "verify",
        "--expect-head",
        &format!("@{}", jsonl.display()),
    ]);
    let text = std::fs::read_to_string(&jsonl).unwrap();
    assert_no_secret("the console's sink", &text, &[PASSPHRASE.to_owned()]);
    assert!(!text.contains("AGE-SECRET-KEY"));
}
