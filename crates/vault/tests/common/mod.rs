//! What the vault's tests share: a vault on either database, and the
//! tokens and requests they put in it.
#![allow(dead_code)] // each test file uses a different part

use std::path::Path;

use oathdesk_otp::{Credential, Secret, TimeStep, Totp, Verifier};
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::model::{DeviceKind, State, TokenRef};
use oathdesk_vault::testing::ScratchSchema;
use oathdesk_vault::{Error, HelpdeskRequest, Location, NewToken, Session, Unlock, Vault};

/// Cheap Argon2id for tests; the default costs half a second per unlock.
pub const TEST_KDF: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};
pub const NOW: u64 = 1_750_000_000;
pub const SEED: &[u8] = b"12345678901234567890";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `sqlite::NAME` and `postgres::NAME` tests from each
/// `fn NAME(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Backend::Postgres) })*
        }
    };
}

/// A place for a vault on one backend: a temporary SQLite file or a
/// scratch PostgreSQL schema, removed when the fixture is dropped.
pub struct Fixture {
    pub location: Location,
    pub _dir: Option<tempfile::TempDir>,
    pub schema: Option<ScratchSchema>,
}

impl Fixture {
    /// Where a vault could be; nothing is created.
    pub fn empty(backend: Backend) -> Fixture {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Fixture {
                    location: Location::Sqlite(dir.path().join("vault.db")),
                    _dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let schema = ScratchSchema::new();
                Fixture {
                    location: schema.location(),
                    _dir: None,
                    schema: Some(schema),
                }
            }
        }
    }

    /// As [`Fixture::empty`], but a PostgreSQL vault gets a database of its
    /// own, so that no other test's sessions share it.
    pub fn empty_in_own_database(backend: Backend) -> Fixture {
        match backend {
            Backend::Sqlite => Fixture::empty(backend),
            Backend::Postgres => {
                let schema = ScratchSchema::in_own_database();
                Fixture {
                    location: schema.location(),
                    _dir: None,
                    schema: Some(schema),
                }
            }
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.location.sqlite_path()
    }

    /// Changes the database behind oathdesk's back, as someone with write
    /// access to it but no vault key could.
    pub fn execute(&self, sql: &str) {
        match (&self.location, &self.schema) {
            (Location::Sqlite(path), _) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            (_, Some(schema)) => schema.execute(sql),
            _ => unreachable!(),
        }
    }

    /// Every row of every table, to tell whether anything was written.
    pub fn dump(&self) -> Vec<String> {
        let tables = [
            "meta",
            "operators",
            "audit_keys",
            "users",
            "devices",
            "credentials",
            "events",
            "audit",
            "schema_migrations",
        ];
        let mut rows = Vec::new();
        match (&self.location, &self.schema) {
            (Location::Sqlite(path), _) => {
                let connection = rusqlite::Connection::open(path).unwrap();
                let exists = |table: &str| {
                    connection
                        .query_row(
                            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                            [table],
                            |r| r.get::<_, i64>(0),
                        )
                        .unwrap()
                        > 0
                };
                for table in tables.into_iter().filter(|t| exists(t)) {
                    use rusqlite::types::ValueRef;
                    let mut statement = connection
                        .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
                        .unwrap();
                    let columns = statement.column_count();
                    let mut result = statement.query([]).unwrap();
                    while let Some(row) = result.next().unwrap() {
                        let values: Vec<String> = (0..columns)
                            .map(|i| match row.get_ref(i).unwrap() {
                                ValueRef::Null => "NULL".to_owned(),
                                ValueRef::Integer(n) => n.to_string(),
                                ValueRef::Real(x) => x.to_string(),
                                ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
                                ValueRef::Blob(bytes) => hex(bytes),
                            })
                            .collect();
                        rows.push(format!("{table}: {}", values.join("|")));
                    }
                }
            }
            (_, Some(schema)) => {
                let mut client = schema.client();
                for table in tables {
                    for row in client
                        .query(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[])
                        .unwrap()
                    {
                        rows.push(format!("{table}: {}", row.get::<_, String>(0)));
                    }
                }
            }
            _ => unreachable!(),
        }
        rows
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new vault with operator alice.
pub fn fixture(backend: Backend) -> Fixture {
    let f = Fixture::empty(backend);
    Vault::create_at(&f.location, "alice", b"alice pass", TEST_KDF, NOW).unwrap();
    session(&f.location)
        .set_helpdesk_policy(&desk_policy(), NOW)
        .unwrap();
    f
}

/// The default policy and a method for tests that are about something
/// else than verification: one step, no data on file, no evidence text.
/// (tests/verification.rs tests the defaults.)
pub fn desk_policy() -> oathdesk_vault::verification::Policy {
    let mut policy = oathdesk_vault::verification::Policy::default();
    policy.methods.push(oathdesk_vault::verification::Method {
        name: DESK_CHECK.into(),
        title: "Checked at the desk (tests)".into(),
        steps: vec![oathdesk_vault::verification::Step {
            text: "The tester says so".into(),
            shows: Vec::new(),
        }],
        evidence_required: false,
        sufficient: true,
    });
    policy
}

pub const DESK_CHECK: &str = "desk-check";

/// A verification by the tests' own method.
pub fn desk_check() -> Vec<oathdesk_vault::verification::Verification> {
    vec![oathdesk_vault::verification::Verification {
        method: DESK_CHECK.into(),
        confirmed: vec![true],
        evidence: String::new(),
    }]
}

pub fn session(location: &Location) -> Session {
    Vault::open_at(location)
        .unwrap()
        .unlock("alice", Unlock::Passphrase(b"alice pass"))
        .unwrap()
}

/// Boris's token: a single-profile token of boris@contoso.com's, another
/// user's than the fixtures' Anna.
pub fn boris_token() -> NewToken {
    token(
        "BORIS",
        None,
        b"boris's seed 1234567",
        Some("boris@contoso.com"),
    )
}

pub fn token(serial: &str, slot: Option<u32>, seed: &[u8], user: Option<&str>) -> NewToken {
    NewToken {
        serial: Some(serial.into()),
        slot,
        device_kind: if slot.is_some() {
            DeviceKind::MultiProfile
        } else {
            DeviceKind::SingleProfile
        },
        manufacturer: Some("Token2".into()),
        model: Some(
            if slot.is_some() {
                "Molto-2"
            } else {
                "miniOTP-2"
            }
            .into(),
        ),
        device_slots: if slot.is_some() { 100 } else { 1 },
        credential: Credential::totp(Secret::from_bytes(seed.to_vec())),
        label: None,
        user: user.map(str::to_owned),
        state: State::Burned,
    }
}

pub fn serial(s: &str) -> TokenRef {
    s.parse().unwrap()
}

pub fn code_at(seed: &[u8], time: u64) -> String {
    Totp::new(
        &Secret::from_bytes(seed.to_vec()),
        Default::default(),
        Default::default(),
        TimeStep::DEFAULT,
    )
    .generate_at(time)
    .unwrap()
    .to_string()
}

pub fn helpdesk(user: &str) -> HelpdeskRequest {
    HelpdeskRequest {
        user: user.into(),
        verifications: desk_check(),
        ticket: "INC-1001".into(),
        token: None,
        valid_for: None,
        verifier: Verifier::Entra,
    }
}

/// What the helpdesk reads for `upn` at [`NOW`] (the store's own query).
pub fn helpdesk_query(upn: &str) -> oathdesk_vault::store::HelpdeskQuery<'_> {
    oathdesk_vault::store::HelpdeskQuery {
        upn,
        setting: "helpdesk.codes_per_hour",
        policy_id: "helpdesk",
        action: "helpdesk.code",
        outcome: "granted",
        since: NOW - 3600,
        since_day: NOW - 86_400,
    }
}

pub fn refusal(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
