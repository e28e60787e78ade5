//! Running oathdesk like real software (issue 17): shell completions and
//! man pages from the built binary, `serve --config FILE` with the
//! environment in play, and the console's log as a log shipper reads it
//! (standard error to a file: no colour codes; with `--log-format json`,
//! one JSON object per line).
//!
//! The file's precedence for single, repeatable and switch flags is tested
//! against the command tree in src/config_tests.rs; here the environment,
//! which is the process's, takes part.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

fn oathdesk() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oathdesk"));
    for name in [
        "OATHDESK_CONFIG",
        "OATHDESK_LOG_FORMAT",
        "OATHDESK_UNSEAL_KEY_FILE",
        "OATHDESK_AUDIT_HEAD_FILE",
        "OATHDESK_DATABASE_URL",
        "OATHDESK_VAULT",
    ] {
        command.env_remove(name);
    }
    command.stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn completions_are_printed_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _oathdesk"),
        ("zsh", "#compdef oathdesk"),
        ("fish", "complete -c oathdesk"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[oathdesk]"),
    ] {
        let output = oathdesk().args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}: {}", text(&output.stderr));
        let script = text(&output.stdout);
        assert!(script.contains(marker), "{shell}: no {marker}");
        // Generated from the whole tree: nested commands and their flags.
        assert!(script.contains("trusted-proxy"), "{shell}");
        assert!(script.contains("log-format"), "{shell}");
    }
    let output = oathdesk().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("possible values"));
}

#[test]
fn man_pages_are_written_for_every_command_and_render() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("share/man/man1");
    let output = oathdesk()
        .args(["man", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed: Vec<PathBuf> = text(&output.stdout).lines().map(PathBuf::from).collect();
    for name in [
        "oathdesk.1",
        "oathdesk-serve.1",
        "oathdesk-token.1",
        "oathdesk-token-add.1",
        "oathdesk-helpdesk-policy-set.1",
        "oathdesk-completions.1",
    ] {
        let path = out.join(name);
        assert!(listed.contains(&path), "{name} not listed");
        assert!(path.is_file(), "{name} not written");
    }
    let on_disk = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(on_disk, listed.len());
    // groff, as man(1) runs it (-k: the pages are UTF-8).
    for name in ["oathdesk.1", "oathdesk-serve.1", "oathdesk-token-add.1"] {
        let rendered = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww"])
            .arg(out.join(name))
            .output()
            .expect("groff (Debian: groff-base) renders the pages");
        assert!(rendered.status.success(), "{name}");
        assert!(
            rendered.stderr.is_empty(),
            "{name}: {}",
            text(&rendered.stderr)
        );
        let page = text(&rendered.stdout);
        assert!(
            page.contains("SYNOPSIS") || page.contains("S\u{8}SY"),
            "{name}"
        );
    }
    let serve = std::fs::read_to_string(out.join("oathdesk-serve.1")).unwrap();
    assert!(serve.contains("config"), "the serve page lists --config");
    // Without --out: the top page on standard output.
    let output = oathdesk().arg("man").output().unwrap();
    assert!(output.status.success());
    let top = text(&output.stdout);
    assert!(
        top.contains(".TH oathdesk 1"),
        "{}",
        &top[..200.min(top.len())]
    );
    assert!(top.contains("serve"));
}

/// One `oathdesk serve` with standard error to a file; killed when dropped.
struct Console {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Console {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Console {
        let log = dir.join("serve.log");
        let mut command = oathdesk();
        command
            .arg("--vault")
            .arg(dir.join("vault.db"))
            .args(["serve", "--kdf-memory-mib", "19"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap());
        let mut child = command.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("oathdesk console on ") {
                        return Console {
                            child,
                            url: url.trim().to_owned(),
                            log,
                        };
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "serve ended ({status}): {}",
                            std::fs::read_to_string(&log).unwrap_or_default()
                        );
                    }
                    assert!(Instant::now() < deadline, "serve did not start");
                }
            }
        }
    }

    /// The log so far, after one request (which the log may or may not
    /// mention; the vault's creation has written audit heads already).
    fn log_after_a_request(&mut self) -> String {
        let status = common::console::agent()
            .get(format!("{}/api/v1/me", self.url))
            .call()
            .expect("the console answers")
            .status();
        assert!(status.as_u16() >= 200, "{status}");
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_json_lines(log: &str) {
    assert!(!log.contains("\x1b["), "colour codes in the log:\n{log}");
    let objects: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let head = objects
        .iter()
        .find(|o| o["message"] == "audit head")
        .unwrap_or_else(|| panic!("no audit head line:\n{log}"));
    // The head's fields are fields of the object, not words of a message.
    // SEQUENCE:SHA-256, as 'oathdesk audit verify --expect-head' takes it.
    let (sequence, hash) = head["audit_head"]
        .as_str()
        .unwrap()
        .split_once(':')
        .unwrap();
    assert!(sequence.parse::<u64>().is_ok(), "{head}");
    assert_eq!(hash.len(), 64, "{head}");
    assert!(head["action"].is_string(), "{head}");
    assert!(head["at"].is_u64(), "{head}");
    assert_eq!(head["level"], "INFO");
}

#[test]
fn the_text_log_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut console = Console::start(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let log = console.log_after_a_request();
    assert!(log.contains("audit head"), "{log}");
    assert!(!log.contains("\x1b["), "colour codes in the log:\n{log}");
    assert!(serde_json::from_str::<Value>(log.lines().next().unwrap()).is_err());
}

#[test]
fn the_json_log_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut console = Console::start(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--log-format", "json"],
        &[],
    );
    assert_json_lines(&console.log_after_a_request());
}

#[test]
fn the_log_format_comes_from_the_file_unless_the_environment_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oathdesk.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlog-format = \"json\"\n").unwrap();
    let config = config.to_str().unwrap();
    // OATHDESK_CONFIG names the file as --config does.
    let mut console = Console::start(dir.path(), &[], &[("OATHDESK_CONFIG", config)]);
    assert_json_lines(&console.log_after_a_request());
    drop(console);
    // The environment beats the file.
    let mut console = Console::start(
        dir.path(),
        &["--config", config],
        &[("OATHDESK_LOG_FORMAT", "text")],
    );
    let log = console.log_after_a_request();
    assert!(log.contains("audit head"), "{log}");
    assert!(
        serde_json::from_str::<Value>(log.lines().next().unwrap()).is_err(),
        "{log}"
    );
}

/// `serve` with an unseal key file that does not exist: it stops at start
/// and names the file it tried, which tells whose setting won.
fn unseal_attempt(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = oathdesk()
        .arg("--vault")
        .arg(dir.join("vault.db"))
        .args(["serve", "--listen", "127.0.0.1:0", "--kdf-memory-mib", "19"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    text(&output.stderr)
}

#[test]
fn flag_beats_environment_beats_file_for_an_environment_backed_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oathdesk.toml");
    std::fs::write(
        &config,
        "unseal-key-file = \"/nonexistent/from-file.age\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let from_env = [("OATHDESK_UNSEAL_KEY_FILE", "/nonexistent/from-env.age")];

    let error = unseal_attempt(dir.path(), &["--config", config], &[]);
    assert!(error.contains("from-file.age"), "{error}");

    let error = unseal_attempt(dir.path(), &["--config", config], &from_env);
    assert!(error.contains("from-env.age"), "{error}");

    let error = unseal_attempt(
        dir.path(),
        &[
            "--config",
            config,
            "--unseal-key-file",
            "/nonexistent/from-flag.age",
        ],
        &from_env,
    );
    assert!(error.contains("from-flag.age"), "{error}");
}

#[test]
fn a_bad_config_file_stops_serve_with_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oathdesk.toml");
    std::fs::write(
        &config,
        "# the console\nlisten = \"127.0.0.1:0\"\nsesion-idle = 30\n",
    )
    .unwrap();
    let output = oathdesk()
        .arg("--vault")
        .arg(dir.path().join("vault.db"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error = text(&output.stderr);
    assert!(
        error.contains(&format!("{} line 3", config.display())),
        "{error}"
    );
    assert!(error.contains("'sesion-idle'"), "{error}");
    assert!(error.contains("did you mean 'session-idle'"), "{error}");
    // Nothing was created: the file is checked before the vault is touched.
    assert!(!dir.path().join("vault.db").exists());

    let output = oathdesk()
        .args(["serve", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("cannot read the config file"));
}
