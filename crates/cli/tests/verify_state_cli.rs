//! `oathdesk verify --state`: each code accepted once, older codes refused,
//! the window following the drift, no rollback after kill -9, and exactly
//! one winner among concurrent verifiers. Runs the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use oathdesk_otp::{Algorithm, Digits, Hotp, Secret};

const RFC_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// A step far from zero, so ±windows never touch counter 0.
const BASE_STEP: u64 = 60_000_000;

struct Setup {
    _dir: tempfile::TempDir,
    state: PathBuf,
    key: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("verify.key");
    std::fs::write(&key, "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    Setup {
        state: dir.path().join("verify.state"),
        key,
        _dir: dir,
    }
}

fn code_for(step: u64) -> String {
    let secret = Secret::from_base32(RFC_B32).unwrap();
    Hotp::new(&secret, Algorithm::Sha1, Digits::new(6).unwrap())
        .generate(step)
        .to_string()
}

fn command(setup: &Setup, code: &str, at_step: u64, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oathdesk"));
    cmd.env("OATHDESK_SECRET", RFC_B32)
        .env_remove("OATHDESK_STATE_KEY")
        .arg("verify")
        .arg(code)
        .arg("--at")
        .arg((at_step * 30).to_string())
        .arg("--state")
        .arg(&setup.state)
        .arg("--state-key-file")
        .arg(&setup.key)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn verify(setup: &Setup, code_step: u64, at_step: u64, extra: &[&str]) -> Output {
    command(setup, &code_for(code_step), at_step, extra)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_code_is_accepted_once_and_older_codes_never() {
    let s = setup();
    let now = BASE_STEP;
    let first = verify(&s, now, now, &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim(), "0");
    assert_eq!(
        std::fs::metadata(&s.state).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let again = verify(&s, now, now, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("already accepted"),
        "{}",
        stderr(&again)
    );

    let older = verify(&s, now - 1, now, &["--json"]);
    assert_eq!(older.status.code(), Some(2));
    assert!(stderr(&older).contains("older"), "{}", stderr(&older));
    let json: serde_json::Value = serde_json::from_slice(&older.stdout).unwrap();
    assert_eq!(json["reason"], "older");
    assert_eq!(json["valid"], false);

    let next = verify(&s, now + 1, now, &[]);
    assert_eq!(next.status.code(), Some(0), "{}", stderr(&next));
}

#[test]
fn the_window_follows_a_drifting_token() {
    let s = setup();
    let mut now = BASE_STEP;
    // The token gains one step every 100: at ±1 a stateless verifier loses
    // it after 200 steps, the stateful one follows.
    for ahead in 1..=5u64 {
        now += 100;
        let output = verify(&s, now + ahead, now, &["--window", "1", "--json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["offset"], ahead as i64);
        assert_eq!(json["drift"], ahead as i64);
    }
    let stateless = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .env("OATHDESK_SECRET", RFC_B32)
        .args(["verify", &code_for(now + 6), "--window", "1", "--at"])
        .arg(((now + 100) * 30).to_string())
        .output()
        .unwrap();
    assert_eq!(stateless.status.code(), Some(2));
    let stateful = verify(&s, now + 106, now + 100, &["--window", "1"]);
    assert_eq!(stateful.status.code(), Some(0), "{}", stderr(&stateful));
}

#[test]
fn a_wrong_key_or_an_open_file_is_refused_with_the_fix() {
    let s = setup();
    assert_eq!(verify(&s, BASE_STEP, BASE_STEP, &[]).status.code(), Some(0));
    let other_key = s.key.with_file_name("other.key");
    std::fs::write(&other_key, "00".repeat(32)).unwrap();
    std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .env("OATHDESK_SECRET", RFC_B32)
        .args(["verify", &code_for(BASE_STEP + 1), "--at"])
        .arg((BASE_STEP * 30).to_string())
        .arg("--state")
        .arg(&s.state)
        .arg("--state-key-file")
        .arg(&other_key)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("cannot be opened with this key"),
        "{}",
        stderr(&wrong)
    );

    std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open_key = verify(&s, BASE_STEP + 1, BASE_STEP, &[]);
    assert_eq!(open_key.status.code(), Some(1));
    assert!(
        stderr(&open_key).contains("chmod 600"),
        "{}",
        stderr(&open_key)
    );

    let no_key = Command::new(env!("CARGO_BIN_EXE_oathdesk"))
        .env("OATHDESK_SECRET", RFC_B32)
        .env_remove("OATHDESK_STATE_KEY")
        .args(["verify", "123456", "--state"])
        .arg(&s.state)
        .output()
        .unwrap();
    assert_eq!(no_key.status.code(), Some(1));
    assert!(
        stderr(&no_key).contains("--state-key-file"),
        "{}",
        stderr(&no_key)
    );
}

#[test]
fn concurrent_verifiers_accept_a_code_exactly_once() {
    let s = setup();
    for round in 0..3u64 {
        let step = BASE_STEP + round;
        let children: Vec<Child> = (0..8)
            .map(|_| command(&s, &code_for(step), step, &[]).spawn().unwrap())
            .collect();
        let codes: Vec<Option<i32>> = children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap().status.code())
            .collect();
        let accepted = codes.iter().filter(|c| **c == Some(0)).count();
        let refused = codes.iter().filter(|c| **c == Some(2)).count();
        assert_eq!((accepted, refused), (1, 7), "round {round}: {codes:?}");
    }
}

/// Kill delays spread over 0 .. 1.5 × `span_us` by a tiny deterministic
/// generator (the delay of a failing run is in its message).
fn delays(count: usize, span_us: u64) -> Vec<u64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % (span_us * 3 / 2).max(1)
        })
        .collect()
}

fn state_bytes(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

#[test]
fn kill_9_mid_update_never_loses_or_rolls_back_the_last_step() {
    let s = setup();
    let mut interrupted = 0;
    let mut interrupted_after_commit = 0;
    // How long one verification takes here and now (the machine is shared):
    // the kills are spread over that, so some land before the lock, some
    // between write and rename, some after.
    let started = std::time::Instant::now();
    for step in BASE_STEP - 3..BASE_STEP {
        assert_eq!(verify(&s, step, step, &[]).status.code(), Some(0));
    }
    let span_us = (started.elapsed().as_micros() / 3) as u64;
    let mut last_accepted: Option<u64> = Some(BASE_STEP - 1);
    for (i, delay) in delays(60, span_us).into_iter().enumerate() {
        let step = BASE_STEP + i as u64;
        let mut child = command(&s, &code_for(step), step, &[]).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(delay));
        let finished = child.try_wait().unwrap();
        if finished.is_none() {
            child.kill().unwrap(); // SIGKILL
            interrupted += 1;
        }
        let status = child.wait().unwrap();
        let reported_accepted = status.code() == Some(0);
        // The state file is always whole: the same code again is either
        // accepted now (the killed run had not committed) or a replay.
        let again = verify(&s, step, step, &[]);
        assert!(
            matches!(again.status.code(), Some(0) | Some(2)),
            "run {i} (delay {delay} µs): {}",
            stderr(&again)
        );
        if finished.is_none() && again.status.code() == Some(2) {
            interrupted_after_commit += 1;
        }
        if reported_accepted {
            assert_eq!(
                again.status.code(),
                Some(2),
                "run {i}: an accepted step was lost"
            );
        }
        // Whatever happened, `step` is now the last accepted one: the
        // previous step must stay refused (no rollback).
        if let Some(previous) = last_accepted {
            let older = verify(&s, previous, step, &[]);
            assert_eq!(
                older.status.code(),
                Some(2),
                "run {i}: rolled back to {previous}"
            );
        }
        last_accepted = Some(step);
        assert!(state_bytes(&s.state).is_some());
    }
    // The loop must actually have interrupted some verifiers mid-flight.
    eprintln!(
        "killed {interrupted} of 60 verifiers (one takes {span_us} µs), {interrupted_after_commit} after their commit"
    );
    assert!(
        interrupted > 0,
        "no verifier was killed; the test proved nothing"
    );
}
