//! The store chosen at run time: SQLite or PostgreSQL behind one type.
//!
//! [`AnyStore`] is the default store of [`Vault`](crate::Vault) and
//! [`Session`](crate::Session), so code written against `Vault` and
//! `Session` works with either database without being generic. Each call
//! is one `match`; next to a database round trip it costs nothing.
//!
//! A new [`StoreTx`] method is added in three places: the trait, each of
//! the two stores, and the `forward!` list below (the compiler points at
//! each one that is missing).

use crate::error::Result;
use crate::location::Location;
use crate::model::{CredentialRow, Device, EntraLink, Event, User};
use crate::store::postgres::{PgStore, PgTx};
use crate::store::sqlite::{SqliteStore, SqliteTx};
use crate::store::{
    AuditCount, AuditRow, CredentialFilter, GrantRow, GrantRows, HeldSecret, HelpdeskQuery,
    HelpdeskRows, IdTops, IdentifyChanges, IdsWanted, ImportGuard, ImportRanges, OperatorRow,
    Orphan, RecordRow, Release, Released, ReleasedStep, SightingRow, SignedRecords, Store, StoreTx,
    ThrottleRow, WebAccountRow,
};

/// A vault's database, whichever it is.
// A few hundred bytes, held once per open vault: not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// A transaction of an [`AnyStore`].
// One lives at a time, on the stack of the change it serves: boxing the
// PostgreSQL side would cost an allocation per transaction for nothing.
#[allow(clippy::large_enum_variant)]
pub enum AnyTx<'a> {
    Sqlite(SqliteTx<'a>),
    Postgres(PgTx<'a>),
}

impl AnyStore {
    /// Creates the tables of a new vault (an empty file or schema).
    pub fn create(location: &Location) -> Result<AnyStore> {
        Ok(match location {
            Location::Sqlite(path) => AnyStore::Sqlite(SqliteStore::create(path)?),
            Location::Postgres(url) => AnyStore::Postgres(PgStore::create(url)?),
        })
    }

    /// Opens a vault, migrating its schema if it is older.
    pub fn open(location: &Location) -> Result<AnyStore> {
        Ok(match location {
            Location::Sqlite(path) => AnyStore::Sqlite(SqliteStore::open(path)?),
            Location::Postgres(url) => AnyStore::Postgres(PgStore::open(url)?),
        })
    }

    /// The schema version the database holds now, read on this connection
    /// and never migrated: `Some(0)` when the vault's tables are gone,
    /// `None` for tables of something else. A readiness probe compares it
    /// with [`LATEST`](crate::migrations::LATEST): another server may have
    /// migrated the database past this one since the connection opened.
    pub fn schema_version(&mut self) -> Result<Option<i64>> {
        match self {
            AnyStore::Sqlite(store) => store.version(),
            AnyStore::Postgres(store) => store.version(),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

impl From<SqliteStore> for AnyStore {
    fn from(store: SqliteStore) -> AnyStore {
        AnyStore::Sqlite(store)
    }
}

impl From<PgStore> for AnyStore {
    fn from(store: PgStore) -> AnyStore {
        AnyStore::Postgres(store)
    }
}

impl Store for AnyStore {
    type Tx<'a> = AnyTx<'a>;

    fn write(&mut self) -> Result<AnyTx<'_>> {
        Ok(match self {
            AnyStore::Sqlite(store) => AnyTx::Sqlite(store.write()?),
            AnyStore::Postgres(store) => AnyTx::Postgres(store.write()?),
        })
    }

    fn read(&mut self) -> Result<AnyTx<'_>> {
        Ok(match self {
            AnyStore::Sqlite(store) => AnyTx::Sqlite(store.read()?),
            AnyStore::Postgres(store) => AnyTx::Postgres(store.read()?),
        })
    }

    fn read_single(&mut self) -> Result<AnyTx<'_>> {
        Ok(match self {
            AnyStore::Sqlite(store) => AnyTx::Sqlite(store.read_single()?),
            AnyStore::Postgres(store) => AnyTx::Postgres(store.read_single()?),
        })
    }

    fn grant_and_helpdesk(
        &mut self,
        id: &[u8],
        query: &HelpdeskQuery<'_>,
    ) -> Result<(GrantRows, HelpdeskRows)> {
        match self {
            AnyStore::Sqlite(store) => store.grant_and_helpdesk(id, query),
            AnyStore::Postgres(store) => store.grant_and_helpdesk(id, query),
        }
    }

    fn release(&mut self, release: &Release<'_>) -> Result<Released> {
        match self {
            AnyStore::Sqlite(store) => store.release(release),
            AnyStore::Postgres(store) => store.release(release),
        }
    }

    fn scrub(&mut self) -> Result<()> {
        match self {
            AnyStore::Sqlite(store) => store.scrub(),
            AnyStore::Postgres(store) => store.scrub(),
        }
    }

    fn import_guard(&mut self) -> Result<Option<ImportGuard>> {
        match self {
            AnyStore::Sqlite(store) => store.import_guard(),
            AnyStore::Postgres(store) => store.import_guard(),
        }
    }

    fn checkpoint(&mut self) -> Result<()> {
        match self {
            AnyStore::Sqlite(store) => store.checkpoint(),
            AnyStore::Postgres(store) => store.checkpoint(),
        }
    }

    fn write_unlocked(&mut self, ids: IdsWanted) -> Result<Option<AnyTx<'_>>> {
        Ok(match self {
            AnyStore::Sqlite(store) => store.write_unlocked(ids)?.map(AnyTx::Sqlite),
            AnyStore::Postgres(store) => store.write_unlocked(ids)?.map(AnyTx::Postgres),
        })
    }
}

/// Forwards each listed method to the transaction inside.
macro_rules! forward {
    ($(fn $name:ident(&self $(, $arg:ident: $type:ty)*) -> $ret:ty;)*) => {
        $(
            fn $name(&self $(, $arg: $type)*) -> $ret {
                match self {
                    AnyTx::Sqlite(tx) => tx.$name($($arg),*),
                    AnyTx::Postgres(tx) => tx.$name($($arg),*),
                }
            }
        )*
    };
}

impl StoreTx for AnyTx<'_> {
    fn commit(self) -> Result<()> {
        match self {
            AnyTx::Sqlite(tx) => tx.commit(),
            AnyTx::Postgres(tx) => tx.commit(),
        }
    }

    forward! {
        fn lock_writers(&self) -> Result<bool>;
        fn meta_get(&self, key: &str) -> Result<Option<String>>;
        fn meta_set(&self, key: &str, value: &str) -> Result<()>;
        fn operator(&self, name: &str) -> Result<Option<OperatorRow>>;
        fn operators(&self) -> Result<Vec<OperatorRow>>;
        fn operator_put(&self, row: &OperatorRow) -> Result<()>;
        fn operator_delete(&self, name: &str) -> Result<bool>;
        fn audit_key_put(&self, epoch: i64, sealed: &[u8]) -> Result<()>;
        fn audit_keys(&self) -> Result<Vec<(i64, Vec<u8>)>>;
        fn user_insert(&self, upn: &str, display_name: Option<&str>, at: u64) -> Result<i64>;
        fn user_by_upn(&self, upn: &str) -> Result<Option<User>>;
        fn users(&self) -> Result<Vec<User>>;
        fn device_insert(&self, device: &Device) -> Result<i64>;
        fn device_by_serial(&self, serial: &str) -> Result<Option<Device>>;
        fn credential_update(&self, row: &CredentialRow) -> Result<()>;
        fn credential_set_params(&self, id: i64, algorithm: &str, digits: u8, period: Option<u64>) -> Result<()>;
        fn credential_purge(&self, id: i64, at: u64) -> Result<()>;
        fn credential_detach(&self, id: i64, at: u64) -> Result<()>;
        fn credentials(&self, filter: &CredentialFilter) -> Result<Vec<CredentialRow>>;
        fn held_secrets(&self) -> Result<Vec<HeldSecret>>;
        fn identify_generation(&self) -> Result<i64>;
        fn identify_changes(&self, since: i64) -> Result<IdentifyChanges>;
        fn event_insert(&self, event: &Event) -> Result<()>;
        fn helpdesk_rows(&self, query: &HelpdeskQuery<'_>) -> Result<HelpdeskRows>;
        fn grant_rows(&self, id: &[u8]) -> Result<GrantRows>;
        fn grant_and_helpdesk_rows(&self, id: &[u8], query: &HelpdeskQuery<'_>) -> Result<(GrantRows, HelpdeskRows)>;
        fn devices_by_serial(&self, serials: &[String]) -> Result<Vec<Device>>;
        fn users_by_upn(&self, upns: &[String]) -> Result<Vec<User>>;
        fn slots_taken(&self, device_ids: &[i64]) -> Result<Vec<(i64, Option<u32>)>>;
        fn device_ids(&self, count: usize) -> Result<Vec<i64>>;
        fn devices_insert(&self, devices: &[Device], macs: &[Vec<u8>]) -> Result<()>;
        fn user_ids(&self, count: usize) -> Result<Vec<i64>>;
        fn users_insert(&self, users: &[User], macs: &[Vec<u8>]) -> Result<()>;
        fn credential_ids(&self, count: usize) -> Result<Vec<i64>>;
        fn credentials_insert(&self, rows: &[CredentialRow], macs: &[Vec<u8>]) -> Result<()>;
        fn events_insert(&self, events: &[Event]) -> Result<()>;
        fn events(&self, credential_id: i64) -> Result<Vec<Event>>;
        fn id_tops(&self) -> Result<Option<IdTops>>;
        fn import_batch_begin(&self, ranges: &ImportRanges, at: u64) -> Result<i64>;
        fn import_batch_publish(&self, batch: i64) -> Result<()>;
        fn import_batch_remove(&self, batch: i64) -> Result<()>;
        fn writers_waiting(&self) -> Result<bool>;
        fn records_generation(&self, kind: &str) -> Result<i64>;
        fn records_signed_of(&self, kind: &str, ids: &[String]) -> Result<SignedRecords>;
        fn records_stage(&self, batch: i64, rows: &[RecordRow], macs: &[Vec<u8>]) -> Result<()>;
        fn records_publish(&self, batch: i64, kind: &str, generation: i64) -> Result<bool>;
        fn records_fold(&self, limit: usize) -> Result<usize>;
        fn audit_last(&self) -> Result<Option<AuditRow>>;
        fn audit_insert(&self, row: &AuditRow) -> Result<()>;
        fn audit_all(&self) -> Result<Vec<AuditRow>>;
        fn audit_count(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<u64>;
        fn audit_times(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<Vec<u64>>;
        fn audit_count_action(&self, action: &str) -> Result<u64>;
        fn entra_links_all(&self) -> Result<Vec<EntraLink>>;
        fn row_macs(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>>;
        fn row_macs_put(&self, kind: &str, macs: &[(String, Vec<u8>)]) -> Result<()>;
        fn row_mac_delete(&self, kind: &str, id: &str) -> Result<()>;
        fn orphans(&self) -> Result<Vec<Orphan>>;
        fn row_macs_of(&self, rows: &[(&str, String)]) -> Result<Vec<(String, String, Vec<u8>)>>;
        fn released_record(&self, credential_id: i64, counter: u64, at: u64, mac_kind: &str, mac_id: &str, mac: &[u8], below: u64, mac_range: (&str, &str)) -> Result<()>;

        fn audit_append_if_below(&self, count: &AuditCount<'_>, limit: u64, entry: &AuditRow, step: &ReleasedStep<'_>) -> Result<u64>;
        fn released(&self, credential_id: i64) -> Result<Vec<(u64, u64)>>;
        fn released_all(&self) -> Result<Vec<(i64, u64, u64)>>;
        fn released_forget(&self, credential_id: i64, below: Option<u64>) -> Result<Vec<u64>>;
        fn entra_link(&self, tenant: &str, credential_id: i64) -> Result<Option<EntraLink>>;
        fn entra_links(&self, tenant: &str) -> Result<Vec<EntraLink>>;
        fn entra_link_put(&self, link: &EntraLink) -> Result<()>;
        fn entra_link_delete(&self, tenant: &str, credential_id: i64) -> Result<bool>;
        fn devices(&self) -> Result<Vec<Device>>;
        fn records_of(&self, kind: &str, ids: &[String]) -> Result<Vec<RecordRow>>;
        fn records(&self, kind: &str, state: Option<&str>) -> Result<Vec<RecordRow>>;
        fn records_put(&self, rows: &[RecordRow]) -> Result<()>;
        fn record_delete(&self, kind: &str, id: &str) -> Result<bool>;
        fn web_account(&self, name: &str) -> Result<Option<WebAccountRow>>;
        fn web_accounts(&self) -> Result<Vec<WebAccountRow>>;
        fn web_account_put(&self, row: &WebAccountRow) -> Result<()>;
        fn web_account_delete(&self, name: &str) -> Result<bool>;
        fn web_grant(&self, id: &[u8]) -> Result<Option<GrantRow>>;
        fn web_grants(&self, account: Option<&str>) -> Result<Vec<GrantRow>>;
        fn web_grant_put(&self, row: &GrantRow) -> Result<()>;
        fn web_grant_delete(&self, id: &[u8]) -> Result<bool>;
        fn web_grants_delete_account(&self, account: Option<&str>) -> Result<u64>;
        fn web_grants_delete_expired(&self, now: u64) -> Result<u64>;
        fn web_throttle(&self, key: &str) -> Result<Option<ThrottleRow>>;
        fn web_throttle_put(&self, row: &ThrottleRow) -> Result<()>;
        fn web_throttle_delete(&self, key: &str) -> Result<()>;
        fn sighting_insert(&self, row: &SightingRow) -> Result<bool>;
        fn sightings(&self, credential_id: Option<i64>) -> Result<Vec<SightingRow>>;
        fn drift_series_put(&self, credential_id: i64, points: &[u8]) -> Result<()>;
        fn drift_series(&self, credential_id: Option<i64>) -> Result<Vec<(i64, Vec<u8>)>>;
        fn drift_series_delete(&self, credential_id: i64) -> Result<()>;
    }
}
