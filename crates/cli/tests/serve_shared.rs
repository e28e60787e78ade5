//! Two `oathdesk serve` processes on one database behave as one console:
//! real processes of the built binary, spoken to over HTTP, on one
//! PostgreSQL schema and on one SQLite file. A session, its CSRF token, an
//! API token, a logout, the sign-in lockout and the helpdesk rate limit
//! made on one server hold on the other, and both write one audit chain.

use std::path::Path;
use std::process::{Command, Stdio};

use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp};
use oathdesk_vault::testing::ScratchSchema;
use serde_json::{Value, json};

mod common;
use common::console::*;

const ADMIN: (&str, &str) = ("ada", "ada's long password");
const HELPDESK: (&str, &str) = ("hal", "hal's first password");
const HAL_OWN: &str = "hal's own long password";
const SEED: &[u8] = b"12345678901234567890";
const SERIAL: &str = "2100555001";
const USER: &str = "bob@contoso.com";

fn totp() -> Totp {
    Totp::new(
        &Secret::from_bytes(SEED.to_vec()),
        Algorithm::Sha1,
        Digits::new(6).unwrap(),
        TimeStep::DEFAULT,
    )
}

/// A call-back verification, as the default policy asks for it.
const EVIDENCE: &str = "called the mobile on file, Bob answered and confirmed";

fn code_request(ticket: &str) -> Option<Value> {
    Some(json!({
        "user": USER,
        "verifications": [{"method": "call-back", "confirmed": [true, true], "evidence": EVIDENCE}],
        "ticket": ticket,
    }))
}

/// `helpdesk code` arguments for USER, verified by a call-back.
fn code_args(ticket: &str) -> Vec<&str> {
    vec![
        "helpdesk",
        "code",
        "--user",
        USER,
        "--method",
        "call-back",
        "--confirm",
        "all",
        "--evidence",
        EVIDENCE,
        "--ticket",
        ticket,
    ]
}

/// Gives USER a mobile phone on file with `user import`, as the operator
/// `as_admin` on the vault `vault` (the call-back method needs one).
fn give_user_a_phone(vault: &[String], dir: &Path, as_admin: (&str, &str)) {
    let csv = dir.join("directory.csv");
    std::fs::write(&csv, format!("UPN,Mobile Phone\n{USER},+44 7700 900123\n")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .args(vault)
        .args(["user", "import"])
        .arg(&csv)
        .env_remove("OATHDESK_DATABASE_URL")
        .env_remove("OATHDESK_VAULT")
        .env_remove("OATHDESK_SERVER")
        .env("OATHDESK_OPERATOR", as_admin.0)
        .env("OATHDESK_PASSPHRASE", as_admin.1)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 user(s) updated"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Runs `oathdesk ARGS` on `vault` as the admin; it must succeed.
fn as_cli_admin(vault: &[String], args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .args(vault)
        .args(args)
        .env_remove("OATHDESK_DATABASE_URL")
        .env_remove("OATHDESK_VAULT")
        .env_remove("OATHDESK_SERVER")
        .env("OATHDESK_OPERATOR", ADMIN.0)
        .env("OATHDESK_PASSPHRASE", ADMIN.1)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "oathdesk {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Everything one server does holds on the other. `admin` is signed in
/// (through setup on `b`).
fn behave_as_one(a: &Server, b: &Server, admin_from_setup: &Caller, vault: &[String], dir: &Path) {
    // The session made by setup on B opens A.
    let me = send(a, admin_from_setup, "GET", "/api/v1/me", None);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["account"], ADMIN.0);

    // Sign in on A; the cookie works on B, and so does A's CSRF token.
    let admin = signed_in(&login(a, ADMIN));
    let me = send(b, &admin, "GET", "/api/v1/me", None);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["role"], "admin");
    let forged = Caller {
        csrf: Some("not-the-token".into()),
        ..admin.clone()
    };
    let refused = send(
        b,
        &forged,
        "POST",
        "/api/v1/users",
        Some(json!({"upn": USER})),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.error().contains("CSRF"), "{}", refused.body);
    let hal = send(
        b,
        &admin,
        "POST",
        "/api/v1/accounts",
        Some(json!({"name": HELPDESK.0, "role": "helpdesk", "password": HELPDESK.1})),
    );
    assert_eq!(hal.status, 201, "{}", hal.body);

    // What A keeps (its identify index) follows the vault: A finds no
    // token for a code, B adds the token, and A finds it at once.
    let code_now = totp().generate_at(now()).unwrap().to_string();
    let none = send(
        a,
        &admin,
        "POST",
        "/api/v1/identify",
        Some(json!({"codes": [code_now]})),
    );
    assert_eq!(none.status, 200, "{}", none.body);
    assert_eq!(none.body, json!([]));
    let user = send(
        b,
        &admin,
        "POST",
        "/api/v1/users",
        Some(json!({"upn": USER})),
    );
    assert_eq!(user.status, 201, "{}", user.body);
    let base32 = Secret::from_bytes(SEED.to_vec()).to_base32();
    let token = send(
        b,
        &admin,
        "POST",
        "/api/v1/tokens",
        Some(json!({
            "serial": SERIAL, "kind": "classic", "model": "C202",
            "credential": {"secret": base32.as_str()}, "user": USER, "state": "stock",
        })),
    );
    assert_eq!(token.status, 201, "{}", token.body);
    // The user's data on file, from the command line: the call-back needs it.
    give_user_a_phone(vault, dir, ADMIN);
    let shipped = send(
        a,
        &admin,
        "POST",
        &format!("/api/v1/tokens/{SERIAL}/state"),
        Some(json!({"state": "shipped", "note": "DHL"})),
    );
    assert_eq!(shipped.status, 200, "{}", shipped.body);
    let code_now = totp().generate_at(now()).unwrap().to_string();
    let hits = send(
        a,
        &admin,
        "POST",
        "/api/v1/identify",
        Some(json!({"codes": [code_now]})),
    );
    assert_eq!(hits.status, 200, "{}", hits.body);
    assert_eq!(hits.body[0]["credential"], SERIAL, "{}", hits.body);
    // A change made with the command line is seen by A's next search too
    // (A keeps its identify index; the vault's change marker says when).
    let other_seed = b"abcdefghijabcdefghij";
    let other = Secret::from_bytes(other_seed.to_vec()).to_base32();
    as_cli_admin(vault, &["token", "add", "2100555009", "--secret", &other]);
    let identify_other = || {
        let code = Totp::new(
            &Secret::from_bytes(other_seed.to_vec()),
            Algorithm::Sha1,
            Digits::new(6).unwrap(),
            TimeStep::DEFAULT,
        )
        .generate_at(now())
        .unwrap()
        .to_string();
        let hits = send(
            a,
            &admin,
            "POST",
            "/api/v1/identify",
            Some(json!({"codes": [code]})),
        );
        assert_eq!(hits.status, 200, "{}", hits.body);
        hits.body
    };
    assert_eq!(identify_other()[0]["credential"], "2100555009");
    as_cli_admin(vault, &["token", "purge", "2100555009"]);
    assert_eq!(identify_other(), json!([]));
    let limit = send(
        a,
        &admin,
        "PUT",
        "/api/v1/settings",
        Some(json!({"name": "helpdesk.codes_per_hour", "value": 3})),
    );
    assert!(limit.status < 300, "{}", limit.body);

    // Hal signs in on B, must choose a password first, does so on A.
    let first = signed_in(&login(b, HELPDESK));
    let blocked = send(
        a,
        &first,
        "POST",
        "/api/v1/helpdesk/code",
        code_request("X-0000"),
    );
    assert_eq!(blocked.status, 403, "{}", blocked.body);
    let changed = send(
        a,
        &first,
        "POST",
        "/api/v1/me/password",
        Some(json!({"current": HELPDESK.1, "new": HAL_OWN})),
    );
    let hal = signed_in(&changed);
    let ended = send(b, &first, "GET", "/api/v1/me", None);
    assert_eq!(ended.status, 401, "the old session ended on B too");

    // The helpdesk rate limit (3 an hour) counts the codes of both servers.
    for (server, ticket) in [(a, "A-0001"), (b, "B-0002"), (a, "A-0003")] {
        let granted = send(
            server,
            &hal,
            "POST",
            "/api/v1/helpdesk/code",
            code_request(ticket),
        );
        assert_eq!(granted.status, 200, "{ticket}: {}", granted.body);
        let counter = granted.body["counter"].as_u64().unwrap();
        assert_eq!(
            granted.body["code"],
            totp().hotp().generate(counter).to_string()
        );
    }
    for (server, ticket) in [(b, "B-0004"), (a, "A-0005")] {
        let limited = send(
            server,
            &hal,
            "POST",
            "/api/v1/helpdesk/code",
            code_request(ticket),
        );
        assert_eq!(limited.status, 429, "{ticket}: {}", limited.body);
        assert!(
            limited.error().starts_with("rate limit"),
            "{}",
            limited.body
        );
    }

    // An API token made through A works on B, is listed there, and once
    // revoked on B it opens nothing on A.
    let created = send(
        a,
        &hal,
        "POST",
        "/api/v1/me/tokens",
        Some(json!({"name": "ticket bot", "scopes": ["inventory.read"], "days": 1})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let script = Caller {
        token: Some(created.body["token"].as_str().unwrap().to_owned()),
        ..Caller::default()
    };
    let handle = created.body["grant"]["handle"].as_str().unwrap().to_owned();
    let listed = send(b, &script, "GET", "/api/v1/tokens", None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.to_string().contains(SERIAL), "{}", listed.body);
    let grants = send(b, &hal, "GET", "/api/v1/me/tokens", None);
    assert!(
        grants
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["handle"] == handle),
        "{}",
        grants.body
    );
    let revoked = send(
        b,
        &hal,
        "DELETE",
        &format!("/api/v1/me/tokens/{handle}"),
        None,
    );
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let gone = send(a, &script, "GET", "/api/v1/tokens", None);
    assert_eq!(gone.status, 401, "{}", gone.body);

    // Wrong passwords spread over both servers lock the account on both
    // (5 failures), however right the next password is.
    for server in [a, b, a, b] {
        let wrong = login(server, (HELPDESK.0, "a wrong password"));
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    let fifth = login(a, (HELPDESK.0, "a wrong password"));
    assert_eq!(fifth.status, 429, "{}", fifth.body);
    for server in [b, a] {
        let locked = login(server, (HELPDESK.0, HAL_OWN));
        assert_eq!(locked.status, 429, "{}", locked.body);
        assert!(locked.error().contains("too many failed sign-ins"));
    }

    // A logout on A ends the session on B.
    let me = send(b, &hal, "GET", "/api/v1/me", None);
    assert_eq!(me.status, 200, "sessions outlive a lockout: {}", me.body);
    let out = send(a, &hal, "POST", "/api/v1/logout", None);
    assert_eq!(out.status, 204, "{}", out.body);
    let after = send(b, &hal, "GET", "/api/v1/me", None);
    assert_eq!(after.status, 401, "{}", after.body);

    // One audit chain holds both servers' entries, in the order they were
    // made, and verifies on both and on the command line.
    let log = send(b, &admin, "GET", "/api/v1/audit?action=helpdesk.code", None);
    let tickets: Vec<&str> = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["ticket"].as_str().unwrap())
        .collect();
    assert_eq!(
        tickets,
        ["A-0001", "B-0002", "A-0003", "B-0004", "A-0005"],
        "{}",
        log.body
    );
    let on_a = send(a, &admin, "GET", "/api/v1/audit/verify", None);
    let on_b = send(b, &admin, "GET", "/api/v1/audit/verify", None);
    assert_eq!(on_a.body["intact"], true, "{}", on_a.body);
    assert_eq!(on_b.body["intact"], true, "{}", on_b.body);
    assert_eq!(on_a.body["head"], on_b.body["head"]);
    let output = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .args(vault)
        .args(["audit", "verify", "--json"])
        .env_remove("OATHDESK_DATABASE_URL")
        .env_remove("OATHDESK_VAULT")
        .env("OATHDESK_OPERATOR", ADMIN.0)
        .env("OATHDESK_PASSPHRASE", ADMIN.1)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    let head = on_b.body["head"].as_str().unwrap();
    assert!(
        report.to_string().contains(head),
        "the command line sees the same head {head}: {report}"
    );
}

/// Two servers started at the same moment on an empty PostgreSQL schema
/// create one vault between them; its setup code, printed by one, sets
/// the console up on the other; from then on they behave as one.
#[test]
fn two_servers_on_one_postgresql_database_behave_as_one() {
    let schema = ScratchSchema::new();
    let dir = tempfile::tempdir().unwrap();
    let vault = vec!["--database".to_owned(), schema.url()];
    let (first, second) = std::thread::scope(|scope| {
        let one = scope.spawn(|| Server::start("A", &vault, dir.path()));
        let two = scope.spawn(|| Server::start("B", &vault, dir.path()));
        (one.join().unwrap(), two.join().unwrap())
    });
    // Exactly one made the vault and printed a code; the other waits for
    // that setup.
    let (a, b, code) = match (first.setup_code(), second.setup_code()) {
        (Some(code), None) => (first, second, code),
        (None, Some(code)) => (second, first, code),
        (one, two) => panic!(
            "one server should create the vault: {one:?} {two:?}\n{}\n{}",
            first.announcement(),
            second.announcement()
        ),
    };
    assert!(
        b.announcement()
            .contains("this vault waits for its first admin"),
        "{}",
        b.announcement()
    );
    let state = send(&b, &Caller::default(), "GET", "/api/v1/setup", None);
    assert_eq!(state.body["mode"], "code", "{}", state.body);
    let setup = send(
        &b,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"code": code, "name": ADMIN.0, "password": ADMIN.1})),
    );
    let admin = signed_in(&setup);
    let again = send(
        &a,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"code": code, "name": "eve", "password": "eve's long password"})),
    );
    assert_eq!(again.status, 409, "setup is done once: {}", again.body);
    behave_as_one(&a, &b, &admin, &vault, dir.path());
}

/// Two servers on one SQLite file (a vault made on the command line): an
/// operator becomes the first admin through B, and from then on they
/// behave as one.
#[test]
fn two_servers_on_one_sqlite_file_behave_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.db");
    let vault = vec!["--vault".to_owned(), file.display().to_string()];
    let init = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .args(&vault)
        .args([
            "vault",
            "init",
            "--kdf-memory-mib",
            "19",
            "--kdf-parallelism",
            "1",
        ])
        .env("OATHDESK_OPERATOR", ADMIN.0)
        .env("OATHDESK_PASSPHRASE", ADMIN.1)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let a = Server::start("A", &vault, dir.path());
    let b = Server::start("B", &vault, dir.path());
    for server in [&a, &b] {
        assert!(
            server
                .announcement()
                .contains("this vault has no web account yet"),
            "{}",
            server.announcement()
        );
    }
    let setup = send(
        &b,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"operator": ADMIN.0, "passphrase": ADMIN.1})),
    );
    let admin = signed_in(&setup);
    let done = send(&a, &Caller::default(), "GET", "/api/v1/setup", None);
    assert_eq!(done.body["open"], false, "{}", done.body);
    behave_as_one(&a, &b, &admin, &vault, dir.path());
}

/// Runs the oathdesk binary with `args` and the environment `env`.
fn oathdesk(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oathdesk"));
    command
        .args(args)
        .env_remove("OATHDESK_DATABASE_URL")
        .env_remove("OATHDESK_SERVER")
        .env_remove("OATHDESK_TOKEN")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// A helpdesk operator holds no key: their passphrase opens nothing on the
/// command line, and they work through a console unsealed at start with a
/// key file — with an API token, the same output and exit codes as local.
#[test]
fn a_helpdesk_operator_works_through_an_unsealed_console() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.db");
    let vault_arg = format!("--vault={}", file.display());
    let as_admin = [
        ("OATHDESK_OPERATOR", ADMIN.0),
        ("OATHDESK_PASSPHRASE", ADMIN.1),
    ];
    let cheap = ["--kdf-memory-mib", "19", "--kdf-parallelism", "1"];
    let ok = |output: std::process::Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    ok(oathdesk(
        &[
            &vault_arg, "vault", "init", cheap[0], cheap[1], cheap[2], cheap[3],
        ],
        &as_admin,
    ));
    let secret = Secret::from_bytes(SEED.to_vec()).to_base32();
    ok(oathdesk(
        &[
            &vault_arg, "token", "add", SERIAL, "--secret", &secret, "--user", USER,
        ],
        &as_admin,
    ));
    ok(oathdesk(
        &[
            &vault_arg, "operator", "add", HELPDESK.0, cheap[0], cheap[1], cheap[2], cheap[3],
        ],
        &[
            ("OATHDESK_OPERATOR", ADMIN.0),
            ("OATHDESK_PASSPHRASE", ADMIN.1),
            ("OATHDESK_NEW_PASSPHRASE", HAL_OWN),
        ],
    ));
    let hal_local = oathdesk(
        &[
            &vault_arg,
            "helpdesk",
            "code",
            "--user",
            USER,
            "--method",
            "call-back",
            "--confirm",
            "all",
            "--evidence",
            "x",
            "--ticket",
            "x",
        ],
        &[
            ("OATHDESK_OPERATOR", HELPDESK.0),
            ("OATHDESK_PASSPHRASE", HAL_OWN),
        ],
    );
    assert_eq!(hal_local.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&hal_local.stderr).contains("holds no key of the vault"),
        "{}",
        String::from_utf8_lossy(&hal_local.stderr)
    );
    give_user_a_phone(std::slice::from_ref(&vault_arg), dir.path(), ADMIN);
    let key_file = dir.path().join("unseal.key");
    let key_arg = key_file.display().to_string();
    ok(oathdesk(
        &[
            &vault_arg,
            "operator",
            "add",
            "console",
            "--role",
            "admin",
            "--new-identity-file",
            &key_arg,
        ],
        &as_admin,
    ));
    let vault = vec![vault_arg.clone()];
    let server = Server::start_with("U", &vault, dir.path(), &["--unseal-key-file", &key_arg]);
    assert!(
        server
            .log_text()
            .contains("console unsealed with the key file")
    );

    // The admin's first web sign-in (as the operator), then hal's account.
    let setup = send(
        &server,
        &Caller::default(),
        "POST",
        "/api/v1/setup",
        Some(json!({"operator": ADMIN.0, "passphrase": ADMIN.1})),
    );
    let admin = signed_in(&setup);
    let account = send(
        &server,
        &admin,
        "POST",
        "/api/v1/accounts",
        Some(json!({"name": HELPDESK.0, "role": "helpdesk"})),
    );
    assert_eq!(account.status, 201, "{}", account.body);
    let hal = signed_in(&login(&server, (HELPDESK.0, HAL_OWN)));
    let made = send(
        &server,
        &hal,
        "POST",
        "/api/v1/me/tokens",
        Some(json!({"name": "cli", "scopes": ["helpdesk.code", "identify", "inventory.read"]})),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let token = made.body["token"].as_str().unwrap().to_owned();
    let remote = [
        ("OATHDESK_SERVER", server.url.as_str()),
        ("OATHDESK_TOKEN", token.as_str()),
    ];

    let mut json_args = code_args("INC-0008");
    json_args.push("--json");
    let grant = ok(oathdesk(&json_args, &remote));
    let grant: Value = serde_json::from_slice(&grant.stdout).unwrap();
    let totp = Totp::new(
        &Secret::from_bytes(SEED.to_vec()),
        Algorithm::Sha1,
        Digits::SIX,
        TimeStep::DEFAULT,
    );
    let counter = grant["counter"].as_u64().unwrap();
    assert_eq!(grant["code"], totp.hotp().generate(counter).to_string());
    assert_eq!(grant["serial"], SERIAL);
    assert!(
        grant.get("time").is_none(),
        "the same JSON as the local command"
    );
    // The text is the local command's.
    let text = ok(oathdesk(&code_args("INC-0008"), &remote));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains(&format!("  for {USER} ({SERIAL}), accepted until "))
            && text.contains("(verifier entra); 3 more this hour"),
        "{text}"
    );
    let listed = ok(oathdesk(&["token", "list"], &remote));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(SERIAL));
    // What the role may not do is refused with the console's words, exit 1.
    let audit = oathdesk(&["audit", "verify"], &remote);
    assert_eq!(audit.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&audit.stderr)
            .contains("the helpdesk role may not read the audit log"),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let export = oathdesk(&["export", "entra-csv", "--plaintext"], &remote);
    assert_eq!(export.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&export.stderr).contains("not through --server"));
    // No token: told how to get one.
    let no_token = oathdesk(
        &["token", "list"],
        &[("OATHDESK_SERVER", server.url.as_str())],
    );
    assert_eq!(no_token.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("Account page"));
    // The offline tools stay local with a console named.
    ok(oathdesk(&["code", &secret], &remote));
}
