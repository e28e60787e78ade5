//! PSKC interoperability with a reader and writer nobody here wrote:
//! python-pskc (PyPI `python-pskc`), the reference implementation of
//! RFC 6030 that privacyIDEA and LinOTP use.
//!
//! Files written by the real `oathdesk` binary with every option (plain,
//! password, pre-shared AES-128/192/256 key; HOTP with a counter; TOTP with
//! a 60-second period, SHA-256 and 8 digits; manufacturer, serial, model,
//! user) are decrypted and read by python-pskc, which must find every field
//! and verify every MAC; files python-pskc writes (plain, PBKDF2 password,
//! pre-shared keys, encrypted counters) are read by oathdesk.
//!
//! The tests need `OATHDESK_PSKC_PYTHON`: a Python with python-pskc
//! installed. `.ci/run` sets it up; without it these tests FAIL, saying how.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const SETUP: &str = "python3 -m venv target/pskc-venv && \
                     target/pskc-venv/bin/pip install python-pskc==1.4 && \
                     export OATHDESK_PSKC_PYTHON=$PWD/target/pskc-venv/bin/python";

/// The Python that has python-pskc, or a failure that says how to get one.
fn python() -> PathBuf {
    let Some(python) = std::env::var_os("OATHDESK_PSKC_PYTHON").filter(|p| !p.is_empty()) else {
        panic!(
            "OATHDESK_PSKC_PYTHON is not set. The PSKC interoperability tests check oathdesk's \
             files against python-pskc, the reference reader, and fail (never skip) without it; \
             .ci/run sets it up. By hand: {SETUP}"
        );
    };
    let python = PathBuf::from(python);
    let probe = Command::new(&python)
        .args(["-c", "import pskc; print(pskc.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "OATHDESK_PSKC_PYTHON={} cannot be run ({e}); set it up with: {SETUP}",
                python.display()
            )
        });
    assert!(
        probe.status.success(),
        "OATHDESK_PSKC_PYTHON={} has no python-pskc ({}); set it up with: {SETUP}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    python
}

/// Reads a PSKC file with python-pskc: argv = path, mode (plain, password,
/// key), password or hex key. Prints what it found as JSON.
const PY_READ: &str = r#"
import json, sys
import pskc
from pskc.key import EncryptedValue
path, mode, secret = sys.argv[1:4]
p = pskc.PSKC(path)
if mode == "password":
    p.encryption.derive_key(secret)
elif mode == "key":
    p.encryption.key = bytes.fromhex(secret)
mac_key = getattr(p.mac, "_key", None)
out = {
    "version": p.version,
    "derivation": p.encryption.derivation.algorithm,
    "mac_algorithm": p.mac.algorithm,
    "mac_key_encrypted": isinstance(mac_key, EncryptedValue),
    "mac_key_algorithm": mac_key.algorithm if isinstance(mac_key, EncryptedValue) else None,
    "keys": [],
}
for k in p.keys:
    raw = getattr(k, "_secret", None)
    out["keys"].append({
        "id": k.id,
        "algorithm": k.algorithm,
        "secret": k.secret.hex(),
        "secret_algorithm": raw.algorithm if isinstance(raw, EncryptedValue) else None,
        "secret_mac": isinstance(raw, EncryptedValue) and raw.mac_value is not None,
        "check": k.check(),
        "suite": k.algorithm_suite,
        "digits": k.response_length,
        "encoding": k.response_encoding,
        "counter": k.counter,
        "time_interval": k.time_interval,
        "time_offset": k.time_offset,
        "serial": k.serial,
        "manufacturer": k.manufacturer,
        "model": k.model,
        "userid": k.userid,
        "issuer": k.issuer,
        "friendly_name": k.friendly_name,
    })
print(json.dumps(out))
"#;

/// Writes a PSKC file with python-pskc: argv = path, mode (plain,
/// password, key), password or hex key, cipher, encrypted fields.
const PY_WRITE: &str = r#"
import sys
import pskc
path, mode, secret, algorithm, fields = sys.argv[1:6]
p = pskc.PSKC()
p.add_key(
    id="py-hotp", algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp",
    secret=bytes.fromhex("3132333435363738393031323334353637383930"), counter=42,
    response_length=6, response_encoding="DECIMAL", issuer="Contoso",
    friendly_name="helga@contoso.com", key_userid="helga@contoso.com",
    manufacturer="Token2", serial="PY-HOTP-1", model="C301")
p.add_key(
    id="py-totp", algorithm="urn:ietf:params:xml:ns:keyprov:pskc:totp",
    secret=bytes(range(0x40, 0x60)), time_interval=60, time_offset=0,
    algorithm_suite="HMAC-SHA256", response_length=8, response_encoding="DECIMAL",
    friendly_name="bob@contoso.com", key_userid="bob@contoso.com",
    manufacturer="Token2", serial="2100123456", model="C202")
fields = fields.split(",")
if mode == "password":
    p.encryption.setup_pbkdf2(secret, algorithm=algorithm, fields=fields)
elif mode == "key":
    p.encryption.setup_preshared_key(
        key=bytes.fromhex(secret), algorithm=algorithm, key_name="Pre-shared-key", fields=fields)
p.write(path)
"#;

const HOTP_SECRET: &str = "3132333435363738393031323334353637383930";
const TOTP_SECRET: &str = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

/// oathdesk JSON with every field PSKC carries.
fn records() -> Value {
    json!([
        {"type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "algorithm": "sha1",
         "digits": 6, "counter": 42, "issuer": "Contoso", "account": "helga@contoso.com",
         "serial": "HOTP-0001", "manufacturer": "Token2", "model": "C301",
         "user": "helga@contoso.com"},
        {"type": "totp", "secret": "IBAUEQ2EIVDEOSCJJJFUYTKOJ5IFCUSTKRKVMV2YLFNFWXC5LZPQ",
         "algorithm": "sha256", "digits": 8, "period": 60, "account": "bob@contoso.com",
         "serial": "2100123456", "manufacturer": "Token2", "model": "C202",
         "user": "bob@contoso.com"}
    ])
}

fn oathdesk(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .args(args)
        .env_remove("OATHDESK_FILE_PASSWORD")
        .env_remove("OATHDESK_FILE_KEY")
        .env_remove("OATHDESK_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "oathdesk {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn run_python(python: &Path, script: &str, args: &[&str]) -> Output {
    Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// What python-pskc reads from `path`.
fn python_reads(python: &Path, path: &str, mode: &str, secret: &str) -> Value {
    let output = run_python(python, PY_READ, &[path, mode, secret]);
    assert!(
        output.status.success(),
        "python-pskc could not read {path} ({mode}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every field python-pskc read matches what oathdesk was given.
fn assert_python_read_everything(read: &Value, encryption: Option<&str>) {
    let keys = read["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{read}");
    // In the order written: a convert keeps the input's, an export the vault's.
    let find = |kind: &str| {
        let urn = format!("urn:ietf:params:xml:ns:keyprov:pskc:{kind}");
        keys.iter()
            .find(|k| k["algorithm"] == urn.as_str())
            .expect(kind)
    };
    let (hotp, totp) = (find("hotp"), find("totp"));
    assert_eq!(read["version"], "1.0");
    assert_eq!(
        hotp["algorithm"],
        "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
    );
    assert_eq!(hotp["secret"], HOTP_SECRET);
    assert_eq!(hotp["suite"], Value::Null, "SHA-1 is the default suite");
    assert_eq!(hotp["digits"], 6);
    assert_eq!(hotp["encoding"], "DECIMAL");
    assert_eq!(hotp["counter"], 42);
    assert_eq!(hotp["serial"], "HOTP-0001");
    assert_eq!(hotp["manufacturer"], "Token2");
    assert_eq!(hotp["model"], "C301");
    assert_eq!(hotp["userid"], "helga@contoso.com");
    assert_eq!(hotp["issuer"], "Contoso");
    assert_eq!(hotp["friendly_name"], "helga@contoso.com");
    assert_eq!(hotp["id"], "HOTP-0001");
    assert_eq!(
        totp["algorithm"],
        "urn:ietf:params:xml:ns:keyprov:pskc:totp"
    );
    assert_eq!(totp["secret"], TOTP_SECRET);
    assert_eq!(totp["suite"], "HMAC-SHA256");
    assert_eq!(totp["digits"], 8);
    assert_eq!(totp["time_interval"], 60);
    assert_eq!(totp["counter"], Value::Null);
    assert!(matches!(totp["time_offset"].as_u64(), None | Some(0)));
    assert_eq!(totp["serial"], "2100123456");
    assert_eq!(totp["manufacturer"], "Token2");
    assert_eq!(totp["model"], "C202");
    assert_eq!(totp["userid"], "bob@contoso.com");
    assert_eq!(totp["friendly_name"], "bob@contoso.com");
    for key in keys {
        assert_eq!(key["check"], true);
        match encryption {
            None => {
                assert_eq!(key["secret_algorithm"], Value::Null);
                assert_eq!(key["secret_mac"], false);
            }
            Some(cipher) => {
                let uri = format!("http://www.w3.org/2001/04/xmlenc#{cipher}");
                assert_eq!(key["secret_algorithm"], uri.as_str(), "{key}");
                // python-pskc verified this MAC when it decrypted the secret.
                assert_eq!(key["secret_mac"], true, "{key}");
            }
        }
    }
    match encryption {
        None => assert_eq!(read["mac_algorithm"], Value::Null),
        Some(cipher) => {
            assert_eq!(
                read["mac_algorithm"],
                "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
            );
            assert_eq!(read["mac_key_encrypted"], true);
            assert_eq!(
                read["mac_key_algorithm"],
                format!("http://www.w3.org/2001/04/xmlenc#{cipher}").as_str()
            );
        }
    }
}

#[test]
fn python_pskc_reads_what_oathdesk_writes() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = file(d, "tokens.json", &records().to_string());
    let password = "correct horse battery staple";
    let pw = file(d, "pw.txt", &format!("{password}\n"));
    let key_hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    // Plain.
    let plain = d.join("plain.pskcxml").to_str().unwrap().to_owned();
    oathdesk(&[
        "convert",
        &input,
        "--to",
        "pskc",
        "--plaintext",
        "--out",
        &plain,
    ]);
    assert_python_read_everything(&python_reads(&python, &plain, "plain", ""), None);

    // A password: PBKDF2-HMAC-SHA-256, AES-256-CBC, HMAC-SHA-256.
    let sealed = d.join("password.pskcxml").to_str().unwrap().to_owned();
    oathdesk(&[
        "convert",
        &input,
        "--to",
        "pskc",
        "--out-password-file",
        &pw,
        "--out",
        &sealed,
    ]);
    let read = python_reads(&python, &sealed, "password", password);
    assert_eq!(
        read["derivation"],
        "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2"
    );
    assert_python_read_everything(&read, Some("aes256-cbc"));
    let wrong = run_python(&python, PY_READ, &[&sealed, "password", "wrong password"]);
    assert!(
        !wrong.status.success(),
        "python-pskc read it with a wrong password"
    );

    // Pre-shared keys of every AES length (RFC 6030 figure 6).
    for (bits, hex) in [(128, &key_hex[..32]), (192, &key_hex[..48]), (256, key_hex)] {
        let key = file(d, &format!("key{bits}.hex"), hex);
        let out = d
            .join(format!("psk{bits}.pskcxml"))
            .to_str()
            .unwrap()
            .to_owned();
        oathdesk(&[
            "convert",
            &input,
            "--to",
            "pskc",
            "--out-key-file",
            &key,
            "--out",
            &out,
        ]);
        let read = python_reads(&python, &out, "key", hex);
        assert_eq!(read["derivation"], Value::Null);
        assert_python_read_everything(&read, Some(&format!("aes{bits}-cbc")));
        let mut wrong_key = hex.to_owned();
        wrong_key.replace_range(..2, "ff");
        let wrong = run_python(&python, PY_READ, &[&out, "key", &wrong_key]);
        assert!(
            !wrong.status.success(),
            "python-pskc read it with a wrong key"
        );
    }

    // An export from the vault reads the same.
    let vault = d.join("vault.db");
    let vault_arg = format!("--vault={}", vault.display());
    let as_alice = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
            .arg(&vault_arg)
            .args(args)
            .env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice's passphrase")
            .env_remove("OATHDESK_DATABASE_URL")
            .env_remove("OATHDESK_FILE_PASSWORD")
            .env_remove("OATHDESK_FILE_KEY")
            .env_remove("OATHDESK_SERVER")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    as_alice(&[
        "vault",
        "init",
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
    ]);
    as_alice(&["import", "oathdesk", &input]);
    let key = file(d, "export.hex", &key_hex[..48]);
    let out = d.join("export.pskcxml").to_str().unwrap().to_owned();
    as_alice(&["export", "pskc", "--key-file", &key, "--out", &out]);
    let read = python_reads(&python, &out, "key", &key_hex[..48]);
    assert_python_read_everything(&read, Some("aes192-cbc"));
}

/// What oathdesk reads from a file python-pskc wrote, as oathdesk JSON.
fn oathdesk_reads(path: &str, key_args: &[&str]) -> Value {
    let mut args = vec!["convert", path, "--from", "pskc"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&["--to", "oathdesk", "--plaintext"]);
    serde_json::from_slice(&oathdesk(&args).stdout).unwrap()
}

fn assert_oathdesk_read_everything(read: &Value) {
    let expected = json!([
        {"type": "hotp", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "algorithm": "sha1",
         "digits": 6, "counter": 42, "issuer": "Contoso", "account": "helga@contoso.com",
         "serial": "PY-HOTP-1", "slot": null, "manufacturer": "Token2", "model": "C301",
         "user": "helga@contoso.com"},
        {"type": "totp", "secret": "IBAUEQ2EIVDEOSCJJJFUYTKOJ5IFCUSTKRKVMV2YLFNFWXC5LZPQ",
         "algorithm": "sha256", "digits": 8, "period": 60, "issuer": null,
         "account": "bob@contoso.com", "serial": "2100123456", "slot": null,
         "manufacturer": "Token2", "model": "C202", "user": "bob@contoso.com"}
    ]);
    assert_eq!(read, &expected);
}

#[test]
fn oathdesk_reads_what_python_pskc_writes() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, mode: &str, secret: &str, cipher: &str, fields: &str| {
        let path = d.join(name).to_str().unwrap().to_owned();
        let output = run_python(&python, PY_WRITE, &[&path, mode, secret, cipher, fields]);
        assert!(
            output.status.success(),
            "python-pskc could not write {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        path
    };

    let plain = write("plain.pskcxml", "plain", "", "", "secret");
    assert_oathdesk_read_everything(&oathdesk_reads(&plain, &[]));

    // python-pskc's defaults: PBKDF2-HMAC-SHA-1 (100,000 rounds), its MAC.
    let password = "correct horse battery staple";
    let pw = file(d, "pw.txt", password);
    for cipher in ["aes128-cbc", "aes256-cbc"] {
        let sealed = write("password.pskcxml", "password", password, cipher, "secret");
        let text = std::fs::read_to_string(&sealed).unwrap();
        assert!(
            text.contains("DerivedKey") && text.contains("ValueMAC"),
            "{text}"
        );
        assert_oathdesk_read_everything(&oathdesk_reads(&sealed, &["--password-file", &pw]));
    }

    // Pre-shared keys, HMAC-SHA-1 (as figure 6), the secret alone or with
    // the counter and time values encrypted too.
    let key_hex = "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff";
    for (bits, hex) in [(128, &key_hex[..32]), (192, &key_hex[..48]), (256, key_hex)] {
        let key = file(d, &format!("key{bits}.hex"), hex);
        for fields in ["secret", "secret,counter,time_offset,time_interval"] {
            let cipher = format!("aes{bits}-cbc");
            let sealed = write("psk.pskcxml", "key", hex, &cipher, fields);
            let text = std::fs::read_to_string(&sealed).unwrap();
            assert!(
                text.contains("MACKey") && text.contains("Pre-shared-key"),
                "{text}"
            );
            assert_oathdesk_read_everything(&oathdesk_reads(&sealed, &["--key-file", &key]));
            // With the wrong key oathdesk refuses rather than guesses.
            let wrong = file(d, "wrong.hex", &format!("00{}", &hex[2..]));
            let output = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
                .args(["convert", &sealed, "--key-file", &wrong, "--to", "oathdesk"])
                .arg("--plaintext")
                .env_remove("OATHDESK_FILE_KEY")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(1));
            assert!(output.stdout.is_empty());
        }
    }
}
