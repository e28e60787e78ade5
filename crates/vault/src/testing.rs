//! Scratch PostgreSQL schemas for tests (feature `testing`).
//!
//! Tests that need PostgreSQL use the server at [`DEFAULT_URL`] (or
//! `OATHDESK_TEST_DATABASE_URL`), which other test runs share: each test
//! takes a [`ScratchSchema`] of its own, with a name no other test uses,
//! and the schema is dropped when it goes out of scope. A test that cannot
//! reach the server fails and says so: PostgreSQL tests are never skipped.
//!
//! ```no_run
//! # use oathdesk_vault::{testing::ScratchSchema, Vault, crypto::KdfParams};
//! let schema = ScratchSchema::new();
//! Vault::create_at(&schema.location(), "alice", b"pass", KdfParams::DEFAULT, 0).unwrap();
//! ```

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::location::Location;

/// The database tests use unless `OATHDESK_TEST_DATABASE_URL` says otherwise.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The environment variable that points tests at another database.
pub const URL_ENV: &str = "OATHDESK_TEST_DATABASE_URL";

const PREFIX: &str = "oathdesk_t_";

/// A schema of the test database that belongs to one test.
pub struct ScratchSchema {
    base: String,
    name: String,
}

/// The test database's URL.
pub fn database_url() -> String {
    std::env::var(URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

fn connect(url: &str) -> ::postgres::Client {
    ::postgres::Client::connect(url, ::postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {}: {}. The PostgreSQL tests need it: start it \
             (e.g. 'service postgresql start') or point {URL_ENV} at one. They are never skipped.",
            crate::location::mask_password(url),
            crate::postgres::describe(&e)
        )
    })
}

impl ScratchSchema {
    /// A fresh schema name in the test database (the schema itself is made
    /// by whatever creates the vault). Panics if the database is unreachable.
    pub fn new() -> ScratchSchema {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SWEEP: Once = Once::new();
        let base = database_url();
        let mut client = connect(&base);
        SWEEP.call_once(|| sweep_abandoned(&mut client));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{PREFIX}{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ScratchSchema { base, name }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the vault in this schema.
    pub fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={}", self.base, self.name)
    }

    /// The location of the vault in this schema.
    pub fn location(&self) -> Location {
        Location::Postgres(self.url())
    }

    /// A plain connection whose `search_path` is this schema, for tests that
    /// change the database behind oathdesk's back.
    pub fn client(&self) -> ::postgres::Client {
        let mut client = connect(&self.base);
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", self.name))
            .expect("set search_path");
        client
    }

    /// Runs SQL statements in this schema.
    pub fn execute(&self, sql: &str) {
        self.client()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", crate::postgres::describe(&e)));
    }
}

impl Default for ScratchSchema {
    fn default() -> ScratchSchema {
        ScratchSchema::new()
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = ::postgres::Client::connect(&self.base, ::postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.name
            ));
        }
    }
}

/// Drops the schemas of test processes that died before cleaning up
/// (their process id is gone from this machine).
fn sweep_abandoned(client: &mut ::postgres::Client) {
    let Ok(rows) = client.query(
        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)",
        &[&PREFIX],
    ) else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name[PREFIX.len()..].split('_').next().unwrap_or_default();
        let alive = std::path::Path::new("/proc").join(pid).exists();
        if !pid.is_empty() && !alive && cfg!(target_os = "linux") {
            let _ = client.batch_execute(&format!(
                "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            ));
        }
    }
}
