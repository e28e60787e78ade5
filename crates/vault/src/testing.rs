//! Scratch PostgreSQL schemas for tests (feature `testing`).
//!
//! Tests that need PostgreSQL use the server at [`DEFAULT_URL`] (or
//! `OATHDESK_TEST_DATABASE_URL`), which other test runs share: each test
//! takes a [`ScratchSchema`] of its own, with a name no other test uses,
//! and the schema is dropped when it goes out of scope. A test that cannot
//! reach the server fails and says so: PostgreSQL tests are never skipped.
//!
//! A test whose outcome depends on what *other* sessions do in the
//! database — VACUUM, for one, cannot prune row versions that a
//! transaction anywhere in the same database might still see — takes
//! [`ScratchSchema::in_own_database`]: a schema in a database made for it
//! alone, dropped with it.
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
    /// A database made for this schema alone: its name, and the URL of the
    /// test database to drop it from.
    own_database: Option<(String, String)>,
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
            crate::store::postgres::describe(&e)
        )
    })
}

impl ScratchSchema {
    /// A fresh schema name in the test database (the schema itself is made
    /// by whatever creates the vault). Panics if the database is unreachable.
    pub fn new() -> ScratchSchema {
        let base = database_url();
        let mut client = connect(&base);
        sweep_once(&mut client);
        ScratchSchema {
            base,
            name: unique_name(),
            own_database: None,
        }
    }

    /// A fresh schema in a database of its own (created from `template0`),
    /// which no other test's sessions use; the database is dropped with
    /// the schema. Panics if the server is unreachable or refuses.
    pub fn in_own_database() -> ScratchSchema {
        let admin = database_url();
        let mut client = connect(&admin);
        sweep_once(&mut client);
        let database = unique_name();
        // The name is made of [a-z0-9_] only.
        client
            .batch_execute(&format!(
                "CREATE DATABASE \"{database}\" TEMPLATE template0"
            ))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a test database: {} (the test role needs CREATEDB)",
                    crate::store::postgres::describe(&e)
                )
            });
        let base = with_database(&admin, &database);
        ScratchSchema {
            base,
            name: unique_name(),
            own_database: Some((database, admin)),
        }
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

    /// Copies the rows of `tables` (parents first) from an SQLite vault
    /// file as they are — no migration, no key — into this schema, which
    /// must be at the same schema version: fixtures of old vaults for
    /// PostgreSQL. Identity columns continue after the copied ids.
    pub fn load_sqlite_rows(&self, path: &std::path::Path, tables: &[&str]) {
        use crate::store::copy::Value;
        let source =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open the SQLite fixture");
        let mut client = self.client();
        for table in tables {
            let columns: Vec<String> = source
                .prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .unwrap()
                .query_map([table], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let list = columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let mut select = source
                .prepare(&format!("SELECT {list} FROM \"{table}\""))
                .unwrap();
            let rows: Vec<Vec<Value>> = select
                .query_map([], |row| {
                    Ok((0..columns.len())
                        .map(|i| Value::from_sqlite(row.get_ref(i).unwrap(), &columns[i]).unwrap())
                        .collect())
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let placeholders = (1..=columns.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let insert = format!("INSERT INTO \"{table}\" ({list}) VALUES ({placeholders})");
            for row in &rows {
                let params: Vec<&(dyn ::postgres::types::ToSql + Sync)> = row
                    .iter()
                    .map(|v| v as &(dyn ::postgres::types::ToSql + Sync))
                    .collect();
                client.execute(&insert, &params).unwrap_or_else(|e| {
                    panic!("{insert}: {}", crate::store::postgres::describe(&e))
                });
            }
            if columns.iter().any(|c| c == "id") && *table != "web_grants" {
                client
                    .batch_execute(&format!(
                        "SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), \
                         (SELECT coalesce(max(id), 0) + 1 FROM \"{table}\"), false)"
                    ))
                    .unwrap();
            }
        }
    }

    /// Runs SQL statements in this schema.
    pub fn execute(&self, sql: &str) {
        self.client()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", crate::store::postgres::describe(&e)));
    }
}

impl Default for ScratchSchema {
    fn default() -> ScratchSchema {
        ScratchSchema::new()
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        if let Some((database, admin)) = &self.own_database {
            if let Ok(mut client) = ::postgres::Client::connect(admin, ::postgres::NoTls) {
                let _ = client.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                ));
            }
            return;
        }
        if let Ok(mut client) = ::postgres::Client::connect(&self.base, ::postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.name
            ));
        }
    }
}

/// `oathdesk_t_PID_COUNTER_NANOS`: unique on this machine, and it names
/// the process that made it.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{PREFIX}{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with its database replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (address, query) = match url.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (url, None),
    };
    let scheme_end = address.find("://").map_or(0, |i| i + 3);
    let host_part = match address[scheme_end..].find('/') {
        Some(slash) => &address[..scheme_end + slash],
        None => address,
    };
    match query {
        Some(query) => format!("{host_part}/{database}?{query}"),
        None => format!("{host_part}/{database}"),
    }
}

fn sweep_once(client: &mut ::postgres::Client) {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| sweep_abandoned(client));
}

/// Whether the process that made a scratch name is gone from this machine.
fn abandoned(name: &str) -> bool {
    let pid = name[PREFIX.len()..].split('_').next().unwrap_or_default();
    !pid.is_empty()
        && cfg!(target_os = "linux")
        && !std::path::Path::new("/proc").join(pid).exists()
}

/// Drops the schemas and databases of test processes that died before
/// cleaning up.
fn sweep_abandoned(client: &mut ::postgres::Client) {
    if let Ok(rows) = client.query(
        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)",
        &[&PREFIX],
    ) {
        for row in rows {
            let name: String = row.get(0);
            if abandoned(&name) {
                let _ = client.batch_execute(&format!(
                    "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                ));
            }
        }
    }
    if let Ok(rows) = client.query(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
        &[&PREFIX],
    ) {
        for row in rows {
            let name: String = row.get(0);
            if abandoned(&name) {
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn another_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5433/test?sslmode=disable", "x"),
            "postgres://u:p@db:5433/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://db", "x"), "postgres://db/x");
    }
}
