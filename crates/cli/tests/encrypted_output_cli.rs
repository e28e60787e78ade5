//! Encrypted outputs are what they say (issue 20): a password or key for
//! the output is honoured or refused, never dropped for a plaintext file —
//! in `convert`, in `export` from the vault and in the console's export
//! API; `--out-key-file` writes PSKC encrypted with a pre-shared AES key as
//! RFC 6030 figure 6 shows; a key of the wrong length is refused with the
//! reason, and never shown.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const RECORDS: &str = r#"[
 {"type":"hotp","secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","counter":42,"issuer":"Contoso",
  "account":"helga@contoso.com","serial":"HOTP-0001","manufacturer":"Token2","model":"C301",
  "user":"helga@contoso.com"},
 {"type":"totp","secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA","algorithm":"sha256",
  "digits":8,"period":60,"account":"bob@contoso.com","serial":"2100123456","manufacturer":"Token2",
  "model":"C202","user":"bob@contoso.com"}
]"#;

const KEY_32: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn oathdesk(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oathdesk"));
    command
        .env_remove("OATHDESK_SECRET")
        .env_remove("OATHDESK_FILE_PASSWORD")
        .env_remove("OATHDESK_FILE_KEY")
        .env_remove("OATHDESK_SERVER")
        .env_remove("OATHDESK_DATABASE_URL")
        .env("OATHDESK_VAULT", dir.join("vault.db"))
        .env("OATHDESK_OPERATOR", "alice")
        .env("OATHDESK_PASSPHRASE", "alice's passphrase")
        .stdin(Stdio::null());
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    oathdesk(dir).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(output: Output) -> Output {
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

fn file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Refused with exit 1, nothing on stdout and no output file; stderr says
/// each of `words`.
fn refused(output: &Output, out: &Path, words: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(output.stdout.is_empty(), "{text}");
    assert!(!out.exists(), "{} was written: {text}", out.display());
    for word in words {
        assert!(text.contains(word), "'{word}' not in: {text}");
    }
}

/// The checks of RFC 6030 figure 6 on a PSKC text: an encrypted MAC key,
/// and an encrypted secret with a ValueMAC in every key package.
fn assert_figure6(text: &str, bits: u32, packages: usize) {
    let cbc = format!("Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes{bits}-cbc\"");
    assert_eq!(text.matches("<pskc:MACMethod ").count(), 1, "{text}");
    let mac_key = &text[text.find("<pskc:MACKey>").expect("a MACKey")..];
    let mac_key = &mac_key[..mac_key.find("</pskc:MACKey>").unwrap()];
    assert!(mac_key.contains(&cbc) && mac_key.contains("<xenc:CipherValue>"));
    assert!(!text.contains("DerivedKey"), "{text}");
    assert_eq!(text.matches("<pskc:KeyPackage>").count(), packages);
    assert_eq!(text.matches("<pskc:EncryptedValue>").count(), packages);
    assert_eq!(text.matches("<pskc:ValueMAC>").count(), packages);
    assert_eq!(text.matches(&cbc).count(), packages + 1);
    // Counters and periods stay plain; no secret does.
    let secrets: Vec<&str> = text.split("<pskc:Secret>").skip(1).collect();
    assert!(secrets.iter().all(|s| {
        let s = &s[..s.find("</pskc:Secret>").unwrap()];
        !s.contains("PlainValue") && s.contains("<pskc:ValueMAC>")
    }));
}

/// Reads a PSKC file back as oathdesk JSON.
fn read_back(dir: &Path, pskc: &str, key_args: &[&str]) -> Value {
    let mut args = vec!["convert", pskc];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["--to", "oathdesk", "--plaintext"]);
    serde_json::from_slice(&ok(run(dir, &args)).stdout).unwrap()
}

/// The records read are those of [`RECORDS`] (in any order).
fn assert_same_records(read: &Value) {
    let expected: Value = serde_json::from_str(RECORDS).unwrap();
    let read = read.as_array().unwrap();
    assert_eq!(read.len(), 2);
    for expected in expected.as_array().unwrap() {
        let read = read
            .iter()
            .find(|r| r["serial"] == expected["serial"])
            .expect("every record is read back");
        for field in [
            "type",
            "secret",
            "counter",
            "period",
            "digits",
            "serial",
            "manufacturer",
            "model",
            "user",
            "account",
        ] {
            if expected.get(field).is_some() {
                assert_eq!(read[field], expected[field], "{field}: {read}");
            }
        }
        assert_eq!(
            read["algorithm"],
            expected.get("algorithm").cloned().unwrap_or(json!("sha1"))
        );
    }
}

#[test]
fn convert_refuses_a_password_or_key_together_with_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = file(d, "tokens.json", RECORDS);
    let pw = file(d, "pw.txt", "correct horse\n");
    let key = file(d, "key.hex", KEY_32);
    let out = d.join("out.file");
    let out_arg = out.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 6] = [
        // The issue's case: before, every secret was written as PlainValue.
        (
            &["--to", "pskc", "--out-password-file", &pw, "--plaintext"],
            &["--out-password-file", "--plaintext", "encrypted pskc file"],
        ),
        (
            &["--to", "pskc", "--out-key-file", &key, "--plaintext"],
            &["--out-key-file", "--plaintext"],
        ),
        (
            &["--to", "aegis", "--out-password-file", &pw, "--plaintext"],
            &["--out-password-file", "--plaintext", "encrypted aegis file"],
        ),
        (
            &[
                "--to",
                "entra-csv",
                "--out-password-file",
                &pw,
                "--plaintext",
            ],
            &["entra-csv files cannot be encrypted", "--out-password-file"],
        ),
        (
            &["--to", "aegis", "--out-key-file", &key],
            &[
                "--out-key-file",
                "only pskc takes a key",
                "--out-password-file",
            ],
        ),
        (
            &[
                "--to",
                "pskc",
                "--out-key-file",
                &key,
                "--out-password-file",
                &pw,
            ],
            &["--out-password-file and --out-key-file", "give only one"],
        ),
    ];
    for (args, words) in cases {
        let mut all = vec!["convert", input.as_str()];
        all.extend_from_slice(args);
        refused(&run(d, &all), &out, words);
        all.extend_from_slice(&["--out", out_arg]);
        refused(&run(d, &all), &out, words);
    }
    // Without --plaintext the same request encrypts.
    ok(run(
        d,
        &[
            "convert",
            &input,
            "--to",
            "pskc",
            "--out-password-file",
            &pw,
            "--out",
            out_arg,
        ],
    ));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("<xenc11:DerivedKey>") && !text.contains("<pskc:PlainValue>MTIz"));
    assert_same_records(&read_back(d, out_arg, &["--password-file", &pw]));
}

#[test]
fn convert_encrypts_the_output_only_with_the_output_options() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = file(d, "tokens.json", RECORDS);
    let pw = file(d, "pw.txt", "vendor password\n");
    let out = d.join("out.pskcxml");
    let out_arg = out.to_str().unwrap();
    // The input's password does not encrypt the output (before, it did).
    refused(
        &run(
            d,
            &[
                "convert",
                &input,
                "--password-file",
                &pw,
                "--to",
                "pskc",
                "--out",
                out_arg,
            ],
        ),
        &out,
        &[
            "give --out-password-file or --out-key-file",
            "open the input only",
        ],
    );
    // An encrypted input with its password, to a plaintext output: fine.
    let vendor = d.join("vendor.pskcxml");
    let vendor_arg = vendor.to_str().unwrap();
    ok(run(
        d,
        &[
            "convert",
            &input,
            "--to",
            "pskc",
            "--out-password-file",
            &pw,
            "--out",
            vendor_arg,
        ],
    ));
    let uris = ok(run(
        d,
        &[
            "convert",
            vendor_arg,
            "--password-file",
            &pw,
            "--to",
            "otpauth",
            "--plaintext",
        ],
    ));
    let uris = String::from_utf8(uris.stdout).unwrap();
    assert!(
        uris.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"),
        "{uris}"
    );
    // Re-encrypting with another key is said explicitly.
    let key = file(d, "key.hex", KEY_32);
    ok(run(
        d,
        &[
            "convert",
            vendor_arg,
            "--password-file",
            &pw,
            "--to",
            "pskc",
            "--out-key-file",
            &key,
            "--out",
            out_arg,
        ],
    ));
    assert_figure6(&std::fs::read_to_string(&out).unwrap(), 256, 2);
}

#[test]
fn a_key_of_the_wrong_length_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = file(d, "tokens.json", RECORDS);
    let out = d.join("out.pskcxml");
    for len in [1usize, 15, 20, 31, 33, 64] {
        let hex: String = (0..len).map(|i| format!("{:02x}", 0x40 + i % 64)).collect();
        let key = file(d, "key.hex", &hex);
        let reason = format!(
            "the key is {len} bytes ({} hex digits); a pre-shared AES key is 16, 24 or 32 bytes",
            len * 2
        );
        let output = run(
            d,
            &["convert", &input, "--to", "pskc", "--out-key-file", &key],
        );
        refused(&output, &out, &["--out-key-file", &reason]);
        assert!(!stderr(&output).contains(&hex), "the key is never shown");
        // Export checks it before opening the vault (there is none here).
        let output = run(d, &["export", "pskc", "--key-file", &key]);
        refused(&output, &out, &["--key-file", &reason]);
        assert!(!stderr(&output).contains(&hex));
    }
    let odd = file(d, "odd.hex", "000102030405060708090a0b0c0d0e0f0");
    refused(
        &run(
            d,
            &["convert", &input, "--to", "pskc", "--out-key-file", &odd],
        ),
        &out,
        &["--out-key-file: the key is not hex", "33"],
    );
    let not_hex = file(d, "bad.hex", "this is no key at all, but a sentence");
    let output = run(
        d,
        &[
            "convert",
            &input,
            "--to",
            "pskc",
            "--out-key-file",
            &not_hex,
        ],
    );
    refused(&output, &out, &["the key is not hex"]);
    assert!(!stderr(&output).contains("sentence"));
}

#[test]
fn out_key_file_writes_rfc6030_figure6_for_every_aes_key_length() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = file(d, "tokens.json", RECORDS);
    for (bits, hex) in [(128, &KEY_32[..32]), (192, &KEY_32[..48]), (256, KEY_32)] {
        let key = file(d, &format!("key{bits}.hex"), &format!("{hex}\n"));
        let out = d.join(format!("out{bits}.pskcxml"));
        let out_arg = out.to_str().unwrap();
        let output = ok(run(
            d,
            &[
                "convert",
                &input,
                "--to",
                "pskc",
                "--out-key-file",
                &key,
                "--out",
                out_arg,
            ],
        ));
        assert!(!stderr(&output).contains(hex) && output.stdout.is_empty());
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(!text.contains(hex));
        assert_figure6(&text, bits, 2);
        assert_same_records(&read_back(d, out_arg, &["--key-file", &key]));
        // A wrong key is found by the MAC.
        let wrong = file(d, "wrong.hex", &format!("ff{}", &hex[2..]));
        let output = run(
            d,
            &[
                "convert",
                out_arg,
                "--key-file",
                &wrong,
                "--to",
                "oathdesk",
                "--plaintext",
            ],
        );
        assert_eq!(output.status.code(), Some(1));
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn export_from_the_vault_is_encrypted_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ],
    ));
    let input = file(d, "tokens.json", RECORDS);
    ok(run(d, &["import", "oathdesk", &input]));
    let pw = file(d, "pw.txt", "export password\n");
    let key = file(d, "key.hex", &KEY_32[..48]);
    let out = d.join("export.file");
    let out_arg = out.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["pskc", "--password-file", &pw, "--plaintext"],
            &["--password-file", "--plaintext"],
        ),
        (
            &["pskc", "--key-file", &key, "--plaintext"],
            &["--key-file", "--plaintext"],
        ),
        // Before, these two wrote the secrets in plain text.
        (
            &["entra-csv", "--password-file", &pw, "--plaintext"],
            &["entra-csv files cannot be encrypted"],
        ),
        (
            &["aegis", "--key-file", &key],
            &["only pskc takes a key", "--password-file"],
        ),
        (&["pskc"], &["give --password-file or --key-file"]),
    ];
    for (args, words) in cases {
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--out", out_arg]);
        refused(&run(d, &all), &out, words);
    }
    // A password in the environment asks for encryption as the flag does.
    let output = oathdesk(d)
        .env("OATHDESK_FILE_PASSWORD", "from the environment")
        .args(["export", "pskc", "--plaintext", "--out", out_arg])
        .output()
        .unwrap();
    refused(
        &output,
        &out,
        &[
            "OATHDESK_FILE_PASSWORD (set in the environment)",
            "--plaintext",
        ],
    );

    ok(run(
        d,
        &["export", "pskc", "--key-file", &key, "--out", out_arg],
    ));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_figure6(&text, 192, 2);
    assert_same_records(&read_back(d, out_arg, &["--key-file", &key]));
    let audit: Value =
        serde_json::from_slice(&ok(run(d, &["audit", "list", "--json"])).stdout).unwrap();
    let exports: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export")
        .collect();
    assert_eq!(exports.len(), 1, "refused exports are not exports");
    assert_eq!(exports[0]["detail"]["encrypted"], true);
    assert_eq!(exports[0]["detail"]["format"], "pskc");
}

// --- The console's export ----------------------------------------------------

/// One `oathdesk serve`, killed when dropped.
struct Console {
    child: Child,
    url: String,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Console {
    fn start(vault: &Path) -> Console {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
            .arg(format!("--vault={}", vault.display()))
            .args(["serve", "--listen", "127.0.0.1:0", "--kdf-memory-mib", "19"])
            .env_remove("OATHDESK_DATABASE_URL")
            .env_remove("OATHDESK_VAULT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start oathdesk serve");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let url = lines.lock().unwrap().iter().find_map(|line| {
                line.strip_prefix("oathdesk console on ")
                    .map(|u| u.trim().to_owned())
            });
            if let Some(url) = url {
                return Console { child, url };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("oathdesk serve ended ({status}) before it listened");
            }
            assert!(Instant::now() < deadline, "oathdesk serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// POSTs `body` (as the signed-in browser of `session`, if any):
    /// status, JSON body, session cookie.
    fn post(
        &self,
        path: &str,
        session: Option<&(String, String)>,
        body: Value,
    ) -> (u16, Value, Option<String>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut request = agent
            .post(format!("{}{path}", self.url))
            .header("Accept", "application/json");
        if let Some((cookie, csrf)) = session {
            request = request
                .header("Cookie", format!("oathdesk={cookie}"))
                .header("X-CSRF-Token", csrf.as_str());
        }
        let mut response = request
            .content_type("application/json")
            .send(serde_json::to_vec(&body).unwrap())
            .unwrap();
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("oathdesk="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            cookie,
        )
    }
}

#[test]
fn the_console_export_is_encrypted_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(run(
        d,
        &[
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ],
    ));
    ok(run(
        d,
        &["import", "oathdesk", &file(d, "tokens.json", RECORDS)],
    ));
    let console = Console::start(&d.join("vault.db"));
    let (status, body, cookie) = console.post(
        "/api/v1/setup",
        None,
        json!({"operator": "alice", "passphrase": "alice's passphrase"}),
    );
    assert_eq!(status, 200, "{body}");
    let session = (
        cookie.expect("a session cookie"),
        body["csrf"].as_str().unwrap().to_owned(),
    );
    let export = |body: Value| console.post("/api/v1/export", Some(&session), body);
    // Before, these answered 200 with the secrets in plain text.
    for format in ["pskc", "aegis"] {
        let (status, body, _) =
            export(json!({"format": format, "password": "pw", "plaintext": true}));
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("contradict"),
            "{body}"
        );
    }
    let (status, body, _) =
        export(json!({"format": "entra-csv", "password": "pw", "plaintext": true}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("contradict"),
        "{body}"
    );
    let (status, body, _) = export(json!({"format": "entra-csv", "password": "pw"}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot be encrypted"),
        "{body}"
    );
    // With the password alone it encrypts.
    let (status, body, _) = export(json!({"format": "pskc", "password": "pw"}));
    assert_eq!(status, 200, "{body}");
    let content = base64_decode(body["content"].as_str().unwrap());
    let text = String::from_utf8(content).unwrap();
    assert!(text.contains("<xenc11:DerivedKey>") && text.contains("<pskc:ValueMAC>"));
    assert!(!text.contains("<pskc:PlainValue>MTIz"));
}

/// Standard Base64 (the console's file), decoded without another dependency.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
