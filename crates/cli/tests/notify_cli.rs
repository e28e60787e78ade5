//! `oathdesk notify send`: the user is told that the helpdesk released a
//! code in their name, through a signed webhook, with nothing secret in it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use assert_cmd::Command;

const SECRET_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const HOOK_SECRET: &str = "a signing secret of 32 characters";

/// One HTTP request as received: its headers (lower-case names) and body.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A loopback receiver that answers `statuses` in turn, one per request.
fn receiver(statuses: Vec<u16>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_lowercase(), value.trim().to_owned()));
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            send.send(Received { headers, body }).unwrap();
        }
    });
    (url, receive)
}

#[test]
fn a_release_is_told_to_the_user_through_a_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let oathdesk = || {
        let mut command = Command::cargo_bin("oathdesk").unwrap();
        command
            .env("OATHDESK_VAULT", dir.path().join("vault.db"))
            .env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice passphrase long")
            .env_remove("OATHDESK_DATABASE_URL")
            .env_remove("OATHDESK_SERVER")
            .env_remove("OATHDESK_WEBHOOK_SECRET");
        command
    };
    oathdesk()
        .args(["vault", "init", "--kdf-memory-mib", "1"])
        .assert()
        .success();
    let sheet = dir.path().join("sheet.csv");
    std::fs::write(
        &sheet,
        format!("username,secret,serial,mobile,mail\ncarol@contoso.com,{SECRET_SEED},2100001,+44 7700 900123,carol@example.org\n"),
    )
    .unwrap();
    oathdesk()
        .args(["import", "spreadsheet"])
        .arg(&sheet)
        .assert()
        .success();
    let (url, requests) = receiver(vec![503, 200]);
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        serde_json::json!({
            "notify": {"on_release": true, "channel": "webhook", "webhook_url": url,
                       "report_to": "security@contoso.com"}
        })
        .to_string(),
    )
    .unwrap();
    oathdesk()
        .args(["helpdesk", "policy", "set"])
        .arg(&policy)
        .assert()
        .success();
    let out = oathdesk()
        .args([
            "helpdesk",
            "code",
            "--user",
            "carol@contoso.com",
            "--method",
            "call-back",
            "--confirm",
            "all",
            "--evidence",
            "called the mobile on file, Carol answered",
            "--ticket",
            "INC0012345",
            "--json",
        ])
        .assert()
        .success();
    let grant: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let code = grant["code"].as_str().unwrap().to_owned();

    // Without the secret nothing is sent, and it says where the secret goes.
    oathdesk()
        .args(["notify", "send"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("OATHDESK_WEBHOOK_SECRET"));
    let out = oathdesk()
        .args(["notify", "send"])
        .env("OATHDESK_WEBHOOK_SECRET", HOOK_SECRET)
        .assert()
        .success();
    assert!(
        String::from_utf8_lossy(&out.get_output().stdout).contains("1 notice(s) sent"),
        "{out:?}"
    );
    // The first attempt met a 503; the retry carried the same delivery id.
    let first = requests.recv().unwrap();
    let second = requests.recv().unwrap();
    let header = |r: &Received, name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(
        header(&first, "x-oathdesk-delivery"),
        header(&second, "x-oathdesk-delivery")
    );
    oathdesk_notify::verify_signature(
        HOOK_SECRET.as_bytes(),
        &header(&second, "x-oathdesk-timestamp"),
        &second.body,
        &header(&second, "x-oathdesk-signature"),
        oathdesk_notify_now(),
        oathdesk_notify::DEFAULT_TOLERANCE,
    )
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(body["event"], "code_released");
    assert_eq!(body["user_upn"], "carol@contoso.com");
    assert_eq!(body["ticket"], "INC0012345");
    assert_eq!(body["operator"], "alice");
    assert_eq!(body["report_to"], "security@contoso.com");
    let text = String::from_utf8_lossy(&second.body);
    assert!(!text.contains(&code), "no code in the notice: {text}");
    assert!(!text.contains("900123") && !text.contains(SECRET_SEED));
    // Sent once: nothing is queued any more, and the audit log says so.
    let out = oathdesk()
        .args(["notify", "list", "--json"])
        .assert()
        .success();
    let listed: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(listed[0]["state"], "sent");
    assert_eq!(listed[0]["attempts"], 2);
    oathdesk()
        .args(["notify", "send"])
        .env("OATHDESK_WEBHOOK_SECRET", HOOK_SECRET)
        .assert()
        .success()
        .stdout(predicates::str::contains("0 notice(s) sent"));
}

fn oathdesk_notify_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_misspelt_policy_field_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let oathdesk = || {
        let mut command = Command::cargo_bin("oathdesk").unwrap();
        command
            .env("OATHDESK_VAULT", dir.path().join("vault.db"))
            .env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice passphrase long")
            .env_remove("OATHDESK_DATABASE_URL")
            .env_remove("OATHDESK_SERVER");
        command
    };
    oathdesk()
        .args(["vault", "init", "--kdf-memory-mib", "1"])
        .assert()
        .success();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, r#"{"four_eyes": {"alway": true}}"#).unwrap();
    oathdesk()
        .args(["helpdesk", "policy", "set"])
        .arg(&policy)
        .assert()
        .failure()
        .stderr(predicates::str::contains("unknown field `alway`"));
}
