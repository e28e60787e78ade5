//! `oathdesk verify --state FILE`: a verifier that accepts each code once.
//! The state file (crates/vault `verify_state`) is locked for the whole
//! check, and the new state is on disk before "accepted" is printed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use oathdesk_otp::{Credential, Kind, Outcome, Window, verify_remembering};
use oathdesk_vault::verify_state::{StateFile, StateKey};
use serde::Serialize;

/// Where the state key comes from: a file or OATHDESK_STATE_KEY (never argv).
pub fn load_key(key_file: Option<&Path>) -> Result<StateKey> {
    if let Some(path) = key_file {
        return Ok(StateKey::from_file(path)?);
    }
    match std::env::var("OATHDESK_STATE_KEY") {
        Ok(text) => Ok(StateKey::parse(&text)?),
        Err(_) => bail!(
            "--state needs its key: --state-key-file FILE or OATHDESK_STATE_KEY (32 random bytes \
             in base64; make one with: head -c 32 /dev/urandom | base64 > verify.key && chmod 600 verify.key)"
        ),
    }
}

/// Everything that makes two credentials' codes differ, for the state name.
fn parameters(credential: &Credential) -> String {
    let kind = match credential.kind {
        Kind::Hotp { .. } => "hotp".to_owned(),
        Kind::Totp { step } => format!("totp {} {}", step.period(), step.t0()),
    };
    format!(
        "{kind} {} {}",
        credential.algorithm.uri_name(),
        credential.digits.get()
    )
}

#[derive(Serialize)]
struct StateJson {
    valid: bool,
    offset: Option<i64>,
    counter: Option<u64>,
    /// Why a code was refused: replay, older, no-match.
    reason: Option<&'static str>,
    /// The drift the next window is centred on (TOTP).
    drift: Option<i64>,
}

/// One code to check: for TOTP `expected` is the step at `now`, for HOTP
/// the counter given.
pub struct Check<'a> {
    pub credential: &'a Credential,
    pub code: &'a str,
    pub expected: u64,
    pub window: Window,
    pub now: u64,
}

/// Checks the code and, when accepted, stores the new state before answering.
pub fn run(state_path: &Path, key: &StateKey, check: Check<'_>, json: bool) -> Result<ExitCode> {
    let Check {
        credential,
        code,
        expected,
        window,
        now,
    } = check;
    let name = key.credential_name(&parameters(credential), credential.secret.as_bytes());
    let mut state = StateFile::open(state_path, key)?;
    let remembered = state.get(&name);
    let learn_drift = matches!(credential.kind, Kind::Totp { .. });
    let outcome = verify_remembering(
        &credential.hotp(),
        code,
        expected,
        window,
        remembered,
        learn_drift,
    )
    .map_err(|e| anyhow!("{e}"))?;
    if let Outcome::Accepted { remember, .. } = outcome {
        state
            .commit(key, &name, remember, now)
            .context("the code matched but its state could not be stored, so it is not accepted")?;
    }
    drop(state);
    report(outcome, json)
}

fn report(outcome: Outcome, json: bool) -> Result<ExitCode> {
    let (answer, message) = match outcome {
        Outcome::Accepted {
            counter,
            offset,
            remember,
        } => (
            StateJson {
                valid: true,
                offset: Some(offset),
                counter: Some(counter),
                reason: None,
                drift: Some(remember.drift),
            },
            None,
        ),
        Outcome::Replay { counter } => (
            refused("replay"),
            Some(format!(
                "code not accepted: it was already accepted (counter {counter}); each code is accepted once"
            )),
        ),
        Outcome::Older { counter, last } => (
            refused("older"),
            Some(format!(
                "code not accepted: it is older (counter {counter}) than the last accepted code (counter {last})"
            )),
        ),
        Outcome::NoMatch { from, to } => (
            refused("no-match"),
            Some(format!(
                "code not accepted: no code matches counters {from} .. {to} (the window around the learned drift)"
            )),
        ),
    };
    if json {
        println!("{}", serde_json::to_string(&answer)?);
    } else if let Some(offset) = answer.offset {
        println!("{offset}");
    }
    if let Some(message) = message {
        eprintln!("oathdesk: {message}");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn refused(reason: &'static str) -> StateJson {
    StateJson {
        valid: false,
        offset: None,
        counter: None,
        reason: Some(reason),
        drift: None,
    }
}
