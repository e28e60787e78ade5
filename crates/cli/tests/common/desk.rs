//! A vault of the test's own and the `oathdesk` commands an operator runs
//! against it: real processes, the passphrase from the environment, nothing
//! of the developer's own environment (their vault, server or token) let in.
//!
//! Test files add what only they need as a local trait on [`Desk`].
#![allow(dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;
use oathdesk_vault::testing::ScratchSchema;
use serde_json::Value;

/// The seed the tests put on their tokens.
pub const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Where a desk's vault lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A vault (created with a cheap key derivation, for speed) with operator
/// alice, and a folder for the files a test writes.
pub struct Desk {
    pub dir: tempfile::TempDir,
    /// The vault file (SQLite; also where `vault copy` tests write one).
    pub vault: PathBuf,
    /// The scratch schema of a PostgreSQL desk, dropped with the desk.
    schema: Option<ScratchSchema>,
    /// Given to every command as `OATHDESK_SECRET`, if set.
    secret_env: Option<&'static str>,
}

impl Desk {
    /// A desk on a SQLite file.
    pub fn new() -> Desk {
        Desk::on(Backend::Sqlite)
    }

    /// A desk on `backend`.
    pub fn on(backend: Backend) -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.db");
        let schema = (backend == Backend::Postgres).then(ScratchSchema::new);
        let desk = Desk {
            dir,
            vault,
            schema,
            secret_env: None,
        };
        desk.run(&[
            "vault",
            "init",
            "--kdf-memory-mib",
            "1",
            "--kdf-iterations",
            "1",
        ])
        .assert()
        .success();
        desk
    }

    /// Every later command gets `secret` in `OATHDESK_SECRET` (what
    /// `code`, `token add` and friends read when no `--secret` is given).
    pub fn with_secret_env(mut self, secret: &'static str) -> Desk {
        self.secret_env = Some(secret);
        self
    }

    /// A file in the test's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the test's folder and returns its path as text.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.file(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// The environment that points oathdesk at this vault, and at nothing
    /// else of the developer's.
    pub fn point_at_vault(&self, cmd: &mut std::process::Command) {
        match &self.schema {
            Some(schema) => cmd
                .env("OATHDESK_DATABASE_URL", schema.url())
                .env_remove("OATHDESK_VAULT"),
            None => cmd
                .env("OATHDESK_VAULT", &self.vault)
                .env_remove("OATHDESK_DATABASE_URL"),
        };
        cmd.env_remove("OATHDESK_SERVER")
            .env_remove("OATHDESK_TOKEN");
        match self.secret_env {
            Some(secret) => cmd.env("OATHDESK_SECRET", secret),
            None => cmd.env_remove("OATHDESK_SECRET"),
        };
    }

    /// `oathdesk ARGS` as operator alice.
    pub fn run(&self, args: &[&str]) -> Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("oathdesk"));
        self.point_at_vault(&mut cmd);
        cmd.env("OATHDESK_OPERATOR", "alice")
            .env("OATHDESK_PASSPHRASE", "alice's passphrase")
            .args(args);
        Command::from_std(cmd)
    }

    /// `oathdesk ARGS`, which must succeed, read as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Changes the vault behind oathdesk's back, as someone with write
    /// access to the database but no key could.
    pub fn edit(&self, sql: &str) {
        match &self.schema {
            Some(schema) => schema.execute(sql),
            None => rusqlite::Connection::open(&self.vault)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
        }
    }
}
