//! `vault backup` / `vault restore` and break-glass recovery, through the
//! built binary: a backup taken while a console answers helpdesk codes
//! holds every code answered before it began, verifies and restores;
//! recovery shares make a new admin, survive a rekey and are stored
//! nowhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use oathdesk_otp::Secret;
use serde_json::{Value, json};

mod common;
use common::console::*;

const ADMIN: (&str, &str) = ("ada", "ada's long password");
const SEED: &[u8] = b"12345678901234567890";
const SERIAL: &str = "2100555001";
const USER: &str = "bob@contoso.com";
const CHEAP: [&str; 4] = ["--kdf-memory-mib", "1", "--kdf-iterations", "1"];

/// Runs the binary on the vault `file` as `operator`, with `stdin`.
fn run_as(file: &Path, operator: (&str, &str), args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .arg("--vault")
        .arg(file)
        .args(args)
        .env_remove("OATHDESK_DATABASE_URL")
        .env_remove("OATHDESK_VAULT")
        .env_remove("OATHDESK_SERVER")
        .env_remove("OATHDESK_TOKEN")
        .env_remove("OATHDESK_NEW_PASSPHRASE")
        .env("OATHDESK_OPERATOR", operator.0)
        .env("OATHDESK_PASSPHRASE", operator.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn run(file: &Path, args: &[&str]) -> Output {
    run_as(file, ADMIN, args, "")
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: Output) -> String {
    assert!(
        !output.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn init(file: &Path) {
    let mut args = vec!["vault", "init"];
    args.extend(CHEAP);
    ok(run(file, &args));
}

/// The tickets of the `helpdesk.code` entries of a vault's audit log.
fn code_tickets(file: &Path) -> Vec<String> {
    let list: Value = serde_json::from_str(&ok(run(file, &["audit", "list", "--json"]))).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "helpdesk.code" && e["outcome"] == "granted")
        .filter_map(|e| e["ticket"].as_str().map(str::to_owned))
        .collect()
}

const EVIDENCE: &str = "called the mobile on file, Bob answered and confirmed";

fn code_request(ticket: &str) -> Option<Value> {
    Some(json!({
        "user": USER,
        "verifications": [{"method": "call-back", "confirmed": [true, true], "evidence": EVIDENCE}],
        "ticket": ticket,
    }))
}

/// A vault with USER, their phone on file and a shipped token, and a
/// console on it with the admin signed in.
fn console_with_a_shipped_token(dir: &Path, file: &Path) -> (Server, Caller) {
    init(file);
    ok(run(
        file,
        &["vault", "set", "helpdesk.codes_per_hour", "100000"],
    ));
    let vault = vec!["--vault".to_owned(), file.display().to_string()];
    let server = Server::start("backup", &vault, dir);
    let admin = signed_in(&send(
        &server,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"operator": ADMIN.0, "passphrase": ADMIN.1})),
    ));
    let user = send(
        &server,
        &admin,
        "POST",
        "/api/v1/users",
        Some(json!({"upn": USER})),
    );
    assert_eq!(user.status, 201, "{}", user.body);
    let base32 = Secret::from_bytes(SEED.to_vec()).to_base32();
    let token = send(
        &server,
        &admin,
        "POST",
        "/api/v1/tokens",
        Some(json!({
            "serial": SERIAL, "kind": "classic", "model": "C202",
            "credential": {"secret": base32.as_str()}, "user": USER, "state": "stock",
        })),
    );
    assert_eq!(token.status, 201, "{}", token.body);
    let csv = dir.join("directory.csv");
    std::fs::write(&csv, format!("UPN,Mobile Phone\n{USER},+44 7700 900123\n")).unwrap();
    ok(run(file, &["user", "import", csv.to_str().unwrap()]));
    let shipped = send(
        &server,
        &admin,
        "POST",
        &format!("/api/v1/tokens/{SERIAL}/state"),
        Some(json!({"state": "shipped", "note": "DHL"})),
    );
    assert_eq!(shipped.status, 200, "{}", shipped.body);
    (server, admin)
}

#[test]
fn a_backup_during_a_stream_of_helpdesk_codes_holds_every_answered_one_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.db");
    let (server, admin) = console_with_a_shipped_token(dir.path(), &file);
    let server = Arc::new(server);

    // A stream of helpdesk codes from the running console.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (server, admin, answered, stop) = (
            server.clone(),
            admin.clone(),
            answered.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let ticket = format!("INC-{n:05}");
                let granted = send(
                    &server,
                    &admin,
                    "POST",
                    "/api/v1/helpdesk/code",
                    code_request(&ticket),
                );
                assert_eq!(granted.status, 200, "{ticket}: {}", granted.body);
                assert!(granted.body["code"].as_str().is_some(), "{}", granted.body);
                answered.lock().unwrap().push(ticket);
            }
        })
    };
    while answered.lock().unwrap().len() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let backup = dir.path().join("backup.db");
    let before: Vec<String> = answered.lock().unwrap().clone();
    let out = ok(run(
        file.as_path(),
        &["vault", "backup", backup.to_str().unwrap()],
    ));
    assert!(out.starts_with("backed up to"), "{out}");
    // The stream went on while the backup was taken.
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    stream.join().unwrap();
    let all = answered.lock().unwrap().clone();
    assert!(
        all.len() > before.len(),
        "the stream ran on while the backup was taken"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup is owner-only");
    }
    // One whole file: no WAL beside it, no partial copy left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("backup.db-") || n.contains(".partial-")),
        "{names:?}"
    );
    // The copy verifies and holds every code answered before it began.
    let verified = ok(run(&backup, &["vault", "verify"]));
    assert!(verified.starts_with("vault intact"), "{verified}");
    let in_backup = code_tickets(&backup);
    for ticket in &before {
        assert!(
            in_backup.contains(ticket),
            "{ticket} is missing from the backup"
        );
    }
    // The vault recorded the backup with the copy's head.
    let list = ok(run(&file, &["audit", "list", "--json"]));
    assert!(list.contains("\"vault.backup\""), "{list}");
    // A second backup to the same file needs --force.
    let again = failed(run(&file, &["vault", "backup", backup.to_str().unwrap()]));
    assert!(again.contains("already exists: pass --force"), "{again}");

    // Restore refuses while the console has the vault open.
    let busy = failed(run(&file, &["vault", "restore", backup.to_str().unwrap()]));
    assert!(busy.contains("is in use"), "{busy}");
    drop(Arc::try_unwrap(server).ok().expect("the stream has ended"));

    // A tampered backup is refused, naming what failed; nothing replaced.
    let tampered = dir.path().join("tampered.db");
    std::fs::copy(&backup, &tampered).unwrap();
    let db = rusqlite::Connection::open(&tampered).unwrap();
    db.execute(
        "UPDATE audit SET ticket = 'INC-FORGED' WHERE seq = (SELECT min(seq) FROM audit WHERE action = 'helpdesk.code')",
        [],
    )
    .unwrap();
    drop(db);
    let refused = failed(run(
        &file,
        &["vault", "restore", tampered.to_str().unwrap()],
    ));
    assert!(
        refused.contains("tampered.db does not verify: audit entry")
            && refused.contains("nothing was replaced"),
        "{refused}"
    );
    let forged_role = dir.path().join("forged-role.db");
    std::fs::copy(&backup, &forged_role).unwrap();
    let db = rusqlite::Connection::open(&forged_role).unwrap();
    db.execute("UPDATE credentials SET state = 'delivered'", [])
        .unwrap();
    drop(db);
    let refused = failed(run(
        &file,
        &["vault", "restore", forged_role.to_str().unwrap()],
    ));
    assert!(
        refused.contains("does not verify") && refused.contains("credential"),
        "{refused}"
    );

    // The restore works and verifies; the replaced vault is kept.
    let restored = ok(run(&file, &["vault", "restore", backup.to_str().unwrap()]));
    assert!(
        restored.contains("the vault it replaced is kept as"),
        "{restored}"
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("vault.db.before-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(code_tickets(&kept[0]), all, "the replaced vault is intact");
    let verified = ok(run(&file, &["vault", "verify"]));
    assert!(verified.starts_with("vault intact"), "{verified}");
    assert_eq!(code_tickets(&file), in_backup);
    let list = ok(run(&file, &["audit", "list", "--json"]));
    assert!(list.contains("\"vault.restore\""), "{list}");
}

/// The share files `recovery create --out-dir` wrote, by number.
fn share_files(dir: &Path) -> Vec<PathBuf> {
    (1..=5)
        .map(|i| dir.join(format!("share-{i}-of-5.txt")))
        .collect()
}

fn use_shares(file: &Path, name: &str, shares: &[&PathBuf], stdin: &str) -> Output {
    let passphrase = file.with_file_name(format!("{name}.pass"));
    std::fs::write(&passphrase, format!("{name}'s new passphrase\n")).unwrap();
    let mut args: Vec<String> = ["vault", "recovery", "use", "--name", name]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for share in shares {
        args.push("--share-file".into());
        args.push(share.display().to_string());
    }
    args.push("--new-passphrase-file".into());
    args.push(passphrase.display().to_string());
    args.extend(CHEAP.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_as(file, ("nobody", ""), &args, stdin)
}

/// The words of a share file, on one line.
fn words_of(share: &Path) -> String {
    std::fs::read_to_string(share)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter(|w| !w.ends_with('.'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn recovery_shares_make_a_new_admin_survive_a_rekey_and_are_stored_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.db");
    init(&file);
    let base32 = Secret::from_bytes(SEED.to_vec()).to_base32();
    ok(run(&file, &["token", "add", SERIAL, "--secret", &base32]));
    let status = ok(run(&file, &["vault", "recovery", "status"]));
    assert!(status.starts_with("no recovery slot"), "{status}");

    let shares_dir = dir.path().join("shares");
    let created = run(
        &file,
        &[
            "vault",
            "recovery",
            "create",
            "--shares",
            "5",
            "--threshold",
            "3",
            "--out-dir",
            shares_dir.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
    ok(created);
    assert!(stderr.contains("5 shares, any 3 open it"), "{stderr}");
    let shares = share_files(&shares_dir);
    for (i, share) in shares.iter().enumerate() {
        let text = std::fs::read_to_string(share).unwrap();
        assert!(
            text.starts_with(&format!(
                "# oathdesk recovery share {} of 5, threshold 3, vault {}",
                i + 1,
                file.display()
            )),
            "{text}"
        );
        assert_eq!(words_of(share).split(' ').count(), 24);
        assert!(share.with_extension("png").exists());
    }
    let listed = ok(run(&file, &["operator", "list"]));
    assert!(listed.contains("(recovery)"), "{listed}");
    assert!(listed.contains("5 shares, any 3 open it"), "{listed}");

    // Two shares are not enough; a garbled word is named by its position.
    let two = failed(use_shares(&file, "carol", &[&shares[0], &shares[1]], ""));
    assert!(
        two.contains("2 share(s) given, the recovery slot needs 3"),
        "{two}"
    );
    let garbled = dir.path().join("garbled.txt");
    let mut words: Vec<String> = words_of(&shares[2]).split(' ').map(str::to_owned).collect();
    words[6] = "qqqq".into();
    std::fs::write(&garbled, words.join(" ")).unwrap();
    let named = failed(use_shares(&file, "carol", &[&shares[0], &garbled], ""));
    assert!(
        named.contains("garbled.txt: word 7 is not in the word list"),
        "{named}"
    );

    // Any three of five: shares 1, 2 and 4 from files ...
    ok(use_shares(
        &file,
        "carol",
        &[&shares[0], &shares[1], &shares[3]],
        "",
    ));
    let carol = ("carol", "carol's new passphrase");
    let exported = ok(run_as(
        &file,
        carol,
        &["export", "otpauth", "--plaintext"],
        "",
    ));
    assert!(
        exported.contains(base32.as_str()),
        "carol reads the secrets"
    );

    // ... and, after a rekey, shares 3 and 5 typed plus 2 from a file.
    ok(run_as(&file, carol, &["vault", "rekey"], ""));
    let typed = format!("{}\n{}\n", words_of(&shares[2]), words_of(&shares[4]));
    ok(use_shares(&file, "dave", &[&shares[1]], &typed));
    let dave = ("dave", "dave's new passphrase");
    let exported = ok(run_as(
        &file,
        dave,
        &["export", "otpauth", "--plaintext"],
        "",
    ));
    assert!(exported.contains(base32.as_str()), "dave reads the secrets");
    let verified = ok(run_as(&file, dave, &["vault", "verify"], ""));
    assert!(verified.starts_with("vault intact"), "{verified}");

    // The audit log has the events.
    let list: Value =
        serde_json::from_str(&ok(run_as(&file, dave, &["audit", "list", "--json"], ""))).unwrap();
    let actions: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["operator"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(actions.contains(&("recovery.create".into(), "ada".into())));
    assert!(actions.contains(&("recovery.use".into(), "carol".into())));
    assert!(actions.contains(&("recovery.use".into(), "dave".into())));
    assert!(actions.contains(&("vault.rekey".into(), "carol".into())));

    // A new set replaces the old: its shares open nothing now.
    ok(run_as(
        &file,
        dave,
        &[
            "vault",
            "recovery",
            "create",
            "--shares",
            "3",
            "--threshold",
            "2",
        ],
        "",
    ));
    let old = failed(use_shares(
        &file,
        "erin",
        &[&shares[0], &shares[1], &shares[2]],
        "",
    ));
    assert!(
        old.contains("these shares do not rebuild this vault's recovery key"),
        "{old}"
    );

    // The shares are nowhere in the database: neither their words nor their bytes.
    let mut bytes = std::fs::read(&file).unwrap();
    let wal = dir.path().join("vault.db-wal");
    if wal.exists() {
        bytes.extend(std::fs::read(&wal).unwrap());
    }
    let text = String::from_utf8_lossy(&bytes);
    for share in &shares {
        let words = words_of(share);
        assert!(!text.contains(&words), "the words of a share are stored");
        let mnemonic = bip39_entropy(&words);
        assert!(
            !bytes
                .windows(mnemonic.len())
                .any(|w| w == mnemonic.as_slice()),
            "the bytes of a share are stored"
        );
    }
}

/// A share's bytes, from its words (the BIP-39 English list).
fn bip39_entropy(words: &str) -> Vec<u8> {
    bip39::Mnemonic::parse_in_normalized(bip39::Language::English, words)
        .unwrap()
        .to_entropy()
}
