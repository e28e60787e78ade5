//! The shared store: a vault in a PostgreSQL database, for a team whose
//! helpdesk runs on more than one machine.
//!
//! # The client
//!
//! The vault is synchronous, so this store uses the synchronous `postgres`
//! crate (the blocking face of `tokio-postgres`, the maintained native Rust
//! client): one connection per store, statements prepared once per
//! connection and cached. Async callers (the web console) call the vault
//! inside `tokio::task::spawn_blocking`: the client drives its own runtime
//! and must not run on another one's thread.
//!
//! # One writer at a time
//!
//! Every change appends to the audit chain: it reads the newest entry, and
//! writes the next one with that entry's hash. Two writers that read the
//! same newest entry would fork the chain, and two helpdesk requests that
//! count a user's codes at once could both pass the rate limit. So write
//! transactions are serialised, as SQLite's `BEGIN IMMEDIATE` serialises
//! them in the embedded store:
//!
//! - a write transaction (READ COMMITTED) first takes
//!   `LOCK TABLE audit IN EXCLUSIVE MODE`. The mode conflicts with itself
//!   and with every row change, but not with plain reads, so writers queue
//!   while readers (the console's lists, `token list`) go on. Under READ
//!   COMMITTED each statement after the lock sees everything committed
//!   before it was granted: the writer reads the true tail of the chain,
//!   the true count for the rate limit, and the current state of the token
//!   it moves. Nothing is lost and nothing needs retrying.
//! - SERIALIZABLE with retries would also be correct, but every writer
//!   conflicts on the chain's tail anyway, so it would abort and redo work
//!   (Argon2id, sealing a 100k import) where a queue simply waits; and the
//!   vault's changes are closures run once, not replayable. An advisory lock
//!   would work as well, but it is keyed by a number shared by the whole
//!   database, while the table lock is scoped to this vault's schema and
//!   shows up by name in `pg_locks`.
//! - A writer waits at most [`LOCK_TIMEOUT`] for the lock, then fails with
//!   a message that says so; nothing is half-written.
//! - A large import takes the lock late ([`Store::write_unlocked`],
//!   `postgres/late_lock.rs`): it writes its rows first, unseen until it
//!   commits, and holds the lock only to append its entry and publish its
//!   rows to identify.
//!
//! Read transactions are `REPEATABLE READ READ ONLY`: one consistent
//! snapshot, like a SQLite read transaction, and they never wait.
//!
//! # Round trips
//!
//! Each statement is a round trip to the server, where SQLite's is a
//! library call, so the frequent paths send few: a writer's `BEGIN`, lock
//! and the audit chain's tail go in one simple query (`postgres/chain.rs`);
//! a console request is opened with one statement (`postgres/grant.rs`); a
//! helpdesk code reads what it decides on in one statement with no
//! transaction around it ([`Store::read_single`], `postgres/helpdesk.rs`;
//! the console's queued reads together: `postgres/read_together.rs`), then
//! recounts, appends its entry and records the released step in one more
//! (the console's queued codes together, with their group's `BEGIN` and
//! `COMMIT`: `postgres/combine.rs`); an import writes its rows with binary
//! `COPY` (`postgres/bulk.rs`).
//!
//! # Where the vault is
//!
//! `postgres://USER@HOST:PORT/DATABASE?schema=NAME`: the tables live in
//! schema NAME (created by `vault init`), so one database can hold several
//! vaults; without `schema` they go where the connection's `search_path`
//! puts them (usually `public`).
//!
//! # Purged secrets
//!
//! A purge sets the sealed secret to NULL. PostgreSQL cannot overwrite a
//! value in place: every UPDATE writes a new row version, and the old ones
//! (which held the ciphertext) stay until VACUUM prunes them. So
//! [`Store::scrub`] runs `VACUUM credentials` right after a purge: no row
//! version, live or dead, holds the ciphertext afterwards — unless a
//! transaction older than the purge is still running, in which case the
//! next VACUUM (or autovacuum) prunes it. Pruned bytes can stay in a page's
//! free space until it is reused, and in the write-ahead log and backups
//! until they are recycled. What makes every such leftover unreadable is
//! `vault rekey`: the old vault key is then in no operator's slot.

mod bulk;
mod chain;
mod combine;
mod copy_format;
mod grant;
mod helpdesk;
mod identify_marker;
mod late_lock;
mod read_together;
pub(crate) mod references;
mod release;
mod statistics;
mod writer;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::postgres::types::ToSql;
use ::postgres::{Client, Config, NoTls, Row, SimpleQueryMessage, Statement};
use grant::{
    GRANT_COLUMNS, WEB_ACCOUNT_COLUMNS, grant_from_row, operator_from_row, web_account_from_row,
};
use writer::{Opener, PgConn};

use crate::error::{Error, Result};
use crate::location::mask_password;
use crate::model::{CredentialRow, Custody, Device, EntraLink, Event, User};
use crate::store::group_commit::{Member, Writer};
use crate::store::migrations::{self, BOOKKEEPING, LATEST};
use crate::store::{
    AuditCount, AuditRow, CredentialFilter, GrantRow, GrantRows, HeldSecret, HelpdeskQuery,
    HelpdeskRows, IdTops, IdsWanted, ImportGuard, ImportRanges, ORPHANS_SQL, OperatorRow, Orphan,
    RecordRow, Release, Released, ReleasedStep, SightingRow, SignedRecords, Store, StoreTx,
    ThrottleRow, WebAccountRow, mac_table, row_id_of, row_key, row_of_key,
};

/// How long a writer waits for another writer before giving up.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection unused for this long is checked (one empty query) before
/// its next transaction, and replaced if the server has closed it.
pub const IDLE_CHECK: Duration = Duration::from_secs(30);

/// How long that check waits for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A vault in a PostgreSQL database (or one schema of it).
pub struct PgStore {
    client: Client,
    /// Prepared statements of this connection, by SQL text.
    statements: HashMap<String, Statement>,
    /// The vault's writer connection in this process, shared with the
    /// other stores of it (see `postgres/writer.rs`).
    writer: Arc<Writer<PgConn>>,
    /// Its helpdesk releases waiting to be written together (see
    /// `postgres/combine.rs`).
    combiner: Arc<combine::Combiner>,
    /// Its helpdesk reads waiting to be made together (see
    /// `postgres/read_together.rs`).
    reads: Arc<read_together::Reads>,
    /// The URL with its password masked, for messages.
    shown: String,
    /// What a new connection needs: the settings and the schema.
    config: Config,
    schema: Option<String>,
    /// When the connection last began a transaction, and after how long
    /// idle it is checked.
    last_used: Instant,
    /// A transaction failed to begin: check the connection before the next
    /// one (a terminated backend may not have closed the socket yet).
    suspect: bool,
    idle_check: Duration,
}

/// The database URL without oathdesk's own `schema` parameter, and that
/// parameter.
fn split_schema(url: &str) -> Result<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", name)) => schema = Some(name.to_owned()),
            _ => rest.push(pair),
        }
    }
    if let Some(name) = &schema {
        let valid = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::Invalid(format!(
                "schema '{name}' in the database URL: use 1 to 63 lower-case letters, digits \
                 and underscores, starting with a letter or underscore"
            )));
        }
    }
    let base = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((base, schema))
}

/// An error of the client as words: the server's message where there is one
/// (`tokio-postgres` shows just "db error" otherwise).
pub(crate) fn describe(error: &::postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.to_string();
    }
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

impl From<::postgres::Error> for Error {
    fn from(e: ::postgres::Error) -> Error {
        Error::Database(describe(&e))
    }
}

impl PgStore {
    /// Connects and sets the session up; `create_schema` makes the URL's
    /// schema if it is missing.
    fn connect(url: &str, create_schema: bool) -> Result<(PgStore, bool)> {
        let shown = mask_password(url);
        let (base, schema) = split_schema(url)?;
        let mut config = Config::from_str(&base).map_err(|e| {
            Error::Invalid(format!("{shown} is not a PostgreSQL URL: {}", describe(&e)))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("oathdesk");
        }
        // Like libpq: a password kept out of the URL (and out of the
        // process list) comes from PGPASSWORD.
        if config.get_password().is_none()
            && let Some(password) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty())
        {
            config.password(password.as_encoded_bytes());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = session(&config, schema.as_deref(), &shown)?;
        let mut schema_exists = true;
        if let Some(schema) = &schema {
            schema_exists = client
                .query_one(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                    &[schema],
                )?
                .get::<_, i64>(0)
                > 0;
            if !schema_exists && create_schema {
                let created =
                    client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""));
                match created {
                    Ok(()) => {}
                    // Another process made it at the same moment.
                    Err(e) if e.code() == Some(&::postgres::error::SqlState::UNIQUE_VIOLATION) => {}
                    Err(e) => return Err(e.into()),
                }
                schema_exists = true;
            }
        }
        Ok((
            PgStore {
                client,
                statements: HashMap::new(),
                writer: writer::writer_of(url),
                combiner: combine::combiner_of(url),
                reads: read_together::reads_of(url),
                shown,
                config,
                schema,
                last_used: Instant::now(),
                suspect: false,
                idle_check: IDLE_CHECK,
            },
            schema_exists,
        ))
    }

    /// Makes sure the connection still works before a transaction begins
    /// on it. A server keeps connections open between requests; a database
    /// restart or failover, or a firewall that drops idle connections,
    /// leaves them dead. One that has been idle for [`IDLE_CHECK`] is
    /// checked with an empty query and, if the server closed it, replaced
    /// by a new one (nothing was begun on it, so nothing is lost).
    fn ready(&mut self) -> Result<()> {
        let idle = self.last_used.elapsed() >= self.idle_check || self.suspect;
        self.suspect = false;
        if self.client.is_closed() || (idle && self.client.is_valid(CHECK_TIMEOUT).is_err()) {
            self.client = session(&self.config, self.schema.as_deref(), &self.shown)?;
            self.statements.clear();
        }
        self.last_used = Instant::now();
        Ok(())
    }

    /// Sets after how long idle the connection is checked (tests).
    #[doc(hidden)]
    pub fn set_idle_check(&mut self, after: Duration) {
        self.idle_check = after;
    }

    /// Creates the vault's tables in an empty database or schema.
    pub fn create(url: &str) -> Result<PgStore> {
        PgStore::create_at_version(url, LATEST)
    }

    /// Creates the tables of schema version `version` (tests prove with it
    /// that an old vault is migrated).
    #[doc(hidden)]
    pub fn create_at_version(url: &str, version: i64) -> Result<PgStore> {
        let (mut store, _) = PgStore::connect(url, true)?;
        if store.version()?.is_some_and(|v| v > 0) {
            return Err(Error::VaultExists { path: store.shown });
        }
        store.migrate(version)?;
        Ok(store)
    }

    /// Opens a vault, migrating its schema to this oathdesk's version.
    pub fn open(url: &str) -> Result<PgStore> {
        let (mut store, schema_exists) = PgStore::connect(url, false)?;
        let no_vault = |store: PgStore| Error::NoVault { path: store.shown };
        if !schema_exists {
            return Err(no_vault(store));
        }
        match store.version()? {
            Some(0) => Err(no_vault(store)),
            None => Err(Error::NotAVault {
                path: store.shown,
                reason: "it has tables but no schema_migrations table".into(),
            }),
            Some(version) if version > LATEST => Err(Error::NotAVault {
                reason: migrations::too_new(version),
                path: store.shown,
            }),
            Some(version) => {
                if version < LATEST {
                    store.migrate(LATEST)?;
                }
                Ok(store)
            }
        }
    }

    /// The URL, password masked.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The schema version: `Some(0)` for an empty database, `None` for one
    /// that holds tables of something else.
    pub(crate) fn version(&mut self) -> Result<Option<i64>> {
        version_in(&mut self.client)
    }

    /// Applies the migrations up to `target` in one transaction. A lock
    /// keeps two processes that open an old vault (or create a new one) at
    /// once from both migrating it. It is a session lock, taken before the
    /// transaction begins: a transaction that began before waiting for the
    /// other process would look the tables up in catalog caches from before
    /// that process's migration, and run it again.
    fn migrate(&mut self, target: i64) -> Result<()> {
        const LOCK: &str = "hashtext('oathdesk migrations ' || current_schema())";
        self.client
            .batch_execute(&format!("SELECT pg_advisory_lock({LOCK})"))?;
        let migrated = self.migrate_locked(target);
        let unlocked = self
            .client
            .batch_execute(&format!("SELECT pg_advisory_unlock({LOCK})"));
        migrated?;
        unlocked?;
        Ok(())
    }

    fn migrate_locked(&mut self, target: i64) -> Result<()> {
        let mut tx = self.client.transaction()?;
        let current = version_in(&mut tx)?.unwrap_or(0);
        if current > LATEST {
            return Err(Error::NotAVault {
                path: self.shown.clone(),
                reason: migrations::too_new(current),
            });
        }
        tx.batch_execute(BOOKKEEPING)?;
        for migration in migrations::pending(current, target) {
            tx.batch_execute(migration.postgres).map_err(|e| {
                Error::Database(format!(
                    "schema migration {} ({}) failed: {}",
                    migration.version,
                    migration.name,
                    describe(&e)
                ))
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[&migration.version, &migration.name, &migrations::now()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// A new connection with oathdesk's session settings: the lock timeout,
/// quiet notices, and the vault's schema first in the search path.
fn session(config: &Config, schema: Option<&str>, shown: &str) -> Result<Client> {
    let mut client = config.connect(NoTls).map_err(|e| {
        Error::Database(format!(
            "cannot connect to PostgreSQL at {shown}: {}",
            describe(&e)
        ))
    })?;
    client.batch_execute(&format!(
        "SET lock_timeout = '{}s'; SET client_min_messages = warning; \
         SET standard_conforming_strings = on",
        LOCK_TIMEOUT.as_secs()
    ))?;
    if let Some(schema) = schema {
        // The name was checked to be a plain identifier; a schema that
        // does not exist yet is allowed in the path (creation makes it).
        client.batch_execute(&format!("SET search_path TO \"{schema}\""))?;
    }
    Ok(client)
}

/// Reads the schema version through any client or transaction.
fn version_in(client: &mut impl ::postgres::GenericClient) -> Result<Option<i64>> {
    let row = client.query_one(
        "SELECT to_regclass('schema_migrations') IS NOT NULL, to_regclass('meta') IS NOT NULL",
        &[],
    )?;
    let (bookkept, has_meta): (bool, bool) = (row.get(0), row.get(1));
    if bookkept {
        let version: Option<i64> = client
            .query_one("SELECT max(version) FROM schema_migrations", &[])?
            .get(0);
        return Ok(Some(version.unwrap_or(0)));
    }
    Ok(if has_meta { None } else { Some(0) })
}

/// What a write transaction sends first, in one simple query: `BEGIN`, the
/// lock, and the chain's tail.
fn write_begin_sql() -> String {
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; LOCK TABLE audit IN EXCLUSIVE MODE; {}",
        chain::TAIL_SQL
    )
}

/// What a write transaction that could not begin says.
fn begin_write_error(error: ::postgres::Error) -> Error {
    if error.code() == Some(&::postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        return Error::Database(format!(
            "another oathdesk has been changing the vault for more than {} s \
             (an import?); nothing was changed: try again when it has finished",
            LOCK_TIMEOUT.as_secs()
        ));
    }
    error.into()
}

impl PgStore {
    /// Whether other stores of this vault are open in this process (the
    /// console's pool): its writes then go in groups on the shared writer
    /// connection, and its helpdesk reads and releases together with
    /// theirs. A store alone (a command-line run) has nobody to share
    /// with, and uses its own connection.
    fn shares_the_vault(&self) -> bool {
        Arc::strong_count(&self.writer) > 1
    }

    /// A transaction on the store's own connection that keeps no chain
    /// tail (a read, or a write that takes the writers' lock later: after
    /// it the database's tail is the true one).
    fn begin_own(&mut self, begin: &str, late: Option<late_lock::Late>) -> Result<PgTx<'_>> {
        self.ready()?;
        let tx = match Txn::begin(&mut self.client, &mut self.statements, begin) {
            Ok((tx, _)) => tx,
            Err(error) => {
                self.suspect = true;
                return Err(error.into());
            }
        };
        Ok(PgTx {
            tx: RefCell::new(tx),
            tail: None,
            single: None,
            written: RefCell::default(),
            bulk: RefCell::default(),
            late,
        })
    }
}

/// A transaction: begun by hand on a store's own connection rather than
/// with `Client::transaction` (so that a writer's `LOCK TABLE` travels with
/// its `BEGIN` in one round trip; rolled back if dropped before
/// [`PgTx`]'s [`commit`](StoreTx::commit)), or a member's turn in a group on the vault's writer
/// connection (see `postgres/writer.rs`).
pub(crate) enum Txn<'a> {
    Own(Own<'a>),
    Member(Member<'a, PgConn>),
}

/// A transaction on a store's own connection.
pub(crate) struct Own<'a> {
    client: &'a mut Client,
    statements: &'a mut HashMap<String, Statement>,
    open: bool,
}

impl<'a> Txn<'a> {
    /// Runs `begin` (a `BEGIN …` and the statements that go with it, in
    /// one simple query) on a store's own connection, with what they answered.
    fn begin(
        client: &'a mut Client,
        statements: &'a mut HashMap<String, Statement>,
        begin: &str,
    ) -> std::result::Result<(Txn<'a>, Vec<SimpleQueryMessage>), ::postgres::Error> {
        match client.simple_query(begin) {
            Ok(answer) => Ok((
                Txn::Own(Own {
                    client,
                    statements,
                    open: true,
                }),
                answer,
            )),
            Err(error) => {
                // A statement after BEGIN failed: the transaction is open, and aborted.
                let _ = client.batch_execute("ROLLBACK");
                Err(error)
            }
        }
    }

    /// The connection's prepared statements.
    fn statements(&mut self) -> &mut HashMap<String, Statement> {
        match self {
            Txn::Own(own) => own.statements,
            Txn::Member(member) => &mut member.statements,
        }
    }
}

impl std::ops::Deref for Txn<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        match self {
            Txn::Own(own) => own.client,
            Txn::Member(member) => &member.client,
        }
    }
}

impl std::ops::DerefMut for Txn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        match self {
            Txn::Own(own) => own.client,
            Txn::Member(member) => &mut member.client,
        }
    }
}

impl Drop for Own<'_> {
    fn drop(&mut self) {
        if self.open && !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

/// A transaction on a [`PgStore`].
pub struct PgTx<'a> {
    pub(crate) tx: RefCell<Txn<'a>>,
    /// A write transaction holds the audit table's lock: no one else
    /// appends, so the chain's tail, read with the lock (see
    /// `postgres/chain.rs`), stays the tail until this transaction appends, which
    /// keeps it current (`None` inside: the chain is empty). Reads have
    /// none and ask the database.
    tail: Option<RefCell<Option<AuditRow>>>,
    /// A read of one statement ([`Store::read_single`]): no transaction
    /// around it; `Some(true)` once its statement ran.
    single: Option<Cell<bool>>,
    /// The parents it inserted (see `postgres/references.rs`).
    written: RefCell<references::Written>,
    /// Begun without the writers' lock (see `postgres/late_lock.rs`).
    late: Option<late_lock::Late>,
    /// Rows written in bulk, for the statistics at the commit (see
    /// `postgres/statistics.rs`).
    bulk: RefCell<statistics::Bulk>,
}

impl Store for PgStore {
    type Tx<'a> = PgTx<'a>;

    fn write(&mut self) -> Result<PgTx<'_>> {
        if self.shares_the_vault() {
            // Other stores of this vault in this process: write in a group
            // on the shared writer connection.
            let (config, schema, shown) = (&self.config, self.schema.as_deref(), &self.shown);
            let mut member = self.writer.begin(|| PgConn::open(config, schema, shown))?;
            // This member chains on the tail: it must be read, with the lock.
            member.begun()?;
            let tail = member.tail.clone();
            return Ok(PgTx {
                tx: RefCell::new(Txn::Member(member)),
                tail: Some(RefCell::new(tail)),
                single: None,
                written: RefCell::default(),
                bulk: RefCell::default(),
                late: None,
            });
        }
        self.ready()?;
        // BEGIN, the lock and the chain's tail travel in one round trip.
        let started = Txn::begin(&mut self.client, &mut self.statements, &write_begin_sql());
        let (tx, answer) = match started {
            Ok(started) => started,
            Err(error) => {
                if error.code() != Some(&::postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                    self.suspect = true;
                }
                return Err(begin_write_error(error));
            }
        };
        let tail = chain::tail_of(&answer)?;
        Ok(PgTx {
            tx: RefCell::new(tx),
            tail: Some(RefCell::new(tail)),
            single: None,
            written: RefCell::default(),
            bulk: RefCell::default(),
            late: None,
        })
    }

    /// With other stores of this vault in this process, written with the
    /// releases queued with it (`postgres/combine.rs`).
    fn release(&mut self, release: &Release<'_>) -> Result<Released> {
        if self.shares_the_vault() {
            let opener = || Opener {
                config: self.config.clone(),
                schema: self.schema.clone(),
                shown: self.shown.clone(),
            };
            return self.combiner.release(&self.writer, opener, release);
        }
        crate::store::release_in_turn(self, release)
    }

    /// With other stores of this vault in this process, read with the
    /// reads queued with it (`postgres/read_together.rs`).
    fn grant_and_helpdesk(
        &mut self,
        id: &[u8],
        query: &HelpdeskQuery<'_>,
    ) -> Result<(GrantRows, HelpdeskRows)> {
        if self.shares_the_vault() {
            let reads = self.reads.clone();
            return reads.read(self, id, query);
        }
        self.read_single()?.grant_and_helpdesk_rows(id, query)
    }

    fn read(&mut self) -> Result<PgTx<'_>> {
        self.begin_own("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None)
    }

    fn read_single(&mut self) -> Result<PgTx<'_>> {
        self.ready()?;
        // One statement sees one snapshot of its own: no BEGIN, no ROLLBACK.
        Ok(PgTx {
            tx: RefCell::new(Txn::Own(Own {
                client: &mut self.client,
                statements: &mut self.statements,
                open: false,
            })),
            tail: None,
            single: Some(Cell::new(false)),
            written: RefCell::default(),
            bulk: RefCell::default(),
            late: None,
        })
    }

    fn scrub(&mut self) -> Result<()> {
        self.ready()?;
        self.client.batch_execute("VACUUM credentials")?;
        Ok(())
    }

    fn import_guard(&mut self) -> Result<Option<ImportGuard>> {
        // Not staged: an import here is one transaction, which writes its
        // rows before it takes the writers' lock (`postgres/late_lock.rs`).
        Ok(None)
    }

    fn checkpoint(&mut self) -> Result<()> {
        Ok(())
    }

    fn write_unlocked(&mut self, ids: IdsWanted) -> Result<Option<PgTx<'_>>> {
        self.begin_unlocked(ids)
    }
}

/// The refusal of a staged import's step on PostgreSQL (never asked for:
/// [`Store::import_guard`] says there are none).
fn staged_imports_are_sqlites() -> Error {
    Error::Database("staged imports are SQLite's; PostgreSQL imports in one transaction".into())
}

/// Parameters as the client takes them.
type Params<'p> = [&'p (dyn ToSql + Sync)];

/// A u64 as PostgreSQL's BIGINT; like SQLite, values past i64 are refused.
fn big(value: u64) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| Error::Invalid(format!("{value} is too large for the database")))
}

fn big_opt(value: Option<u64>) -> Result<Option<i64>> {
    value.map(big).transpose()
}

/// Typed, range-checked access to a row's columns.
struct Columns<'r>(&'r Row);

impl Columns<'_> {
    fn get<'a, T: ::postgres::types::FromSql<'a>>(&'a self, index: usize) -> Result<T> {
        self.0.try_get(index).map_err(|e| {
            Error::Database(format!(
                "column {} of the result: {}",
                self.0.columns()[index].name(),
                describe(&e)
            ))
        })
    }

    fn unsigned<T: TryFrom<i64>>(&self, index: usize) -> Result<T> {
        let value: i64 = self.get(index)?;
        T::try_from(value).map_err(|_| self.out_of_range(index, value))
    }

    fn unsigned_opt<T: TryFrom<i64>>(&self, index: usize) -> Result<Option<T>> {
        let value: Option<i64> = self.get(index)?;
        value
            .map(|v| T::try_from(v).map_err(|_| self.out_of_range(index, v)))
            .transpose()
    }

    fn out_of_range(&self, index: usize, value: i64) -> Error {
        Error::Database(format!(
            "column {} holds {value}, which is out of range",
            self.0.columns()[index].name()
        ))
    }
}

impl PgTx<'_> {
    /// One block of `table`'s id sequence: writers are serialised, so
    /// nobody draws from it between the nextval and the setval (before the
    /// lock: from the block drawn for the transaction).
    fn next_ids(&self, table: &str, count: usize) -> Result<Vec<i64>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        if self.unlocked() {
            return self.reserved_ids(table, count);
        }
        let row = self.query_one(
            "SELECT setval(seq, nextval(seq) + $2 - 1) \
             FROM (SELECT pg_get_serial_sequence($1, 'id')::regclass AS seq) AS s",
            &[&table, &(count as i64)],
        )?;
        let last: i64 = Columns(&row).get(0)?;
        Ok((last - count as i64 + 1..=last).collect())
    }

    /// The chain's new tail, after this transaction appended `row`.
    fn set_tail(&self, row: &AuditRow) {
        if let Some(tail) = &self.tail {
            *tail.borrow_mut() = Some(row.clone());
        }
    }

    /// The prepared statement of `sql`, from the connection's cache.
    fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(used) = &self.single
            && used.replace(true)
        {
            return Err(Error::Database(
                "a second statement in a read of one statement: it would see another \
                 snapshot (a bug in oathdesk: use a read transaction)"
                    .into(),
            ));
        }
        let mut tx = self.tx.borrow_mut();
        if let Txn::Member(member) = &mut *tx {
            // A group member's owed savepoint goes before its first statement.
            member.place()?;
        }
        if let Some(statement) = tx.statements().get(sql) {
            return Ok(statement.clone());
        }
        let statement = tx.prepare(sql)?;
        tx.statements().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        Ok(self.tx.borrow_mut().query(&statement, params)?)
    }

    fn query_opt(&self, sql: &str, params: &Params<'_>) -> Result<Option<Row>> {
        let statement = self.statement(sql)?;
        Ok(self.tx.borrow_mut().query_opt(&statement, params)?)
    }

    fn query_one(&self, sql: &str, params: &Params<'_>) -> Result<Row> {
        let statement = self.statement(sql)?;
        Ok(self.tx.borrow_mut().query_one(&statement, params)?)
    }

    fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(self.tx.borrow_mut().execute(&statement, params)?)
    }
}

const CREDENTIAL_COLUMNS: &str = "c.id, c.device_id, c.slot, c.kind, c.algorithm, c.digits, c.period, c.t0, \
     c.counter, c.issuer, c.label, c.state, c.custody, c.sealed_secret, c.user_id, c.drift_steps, \
     c.purge_after, c.created_at, c.updated_at, d.serial, u.upn, d.manufacturer, d.model";

const CREDENTIAL_FROM: &str = "FROM credentials c LEFT JOIN devices d ON d.id = c.device_id \
     LEFT JOIN users u ON u.id = c.user_id";

/// SQLite's order: text byte by byte, NULLs first.
const CREDENTIAL_ORDER: &str =
    "ORDER BY d.serial COLLATE \"C\" NULLS FIRST, c.slot NULLS FIRST, c.id";

const OPERATOR_COLUMNS: &str =
    "name, recipient, kdf, salt, sealed_identity, wrapped_vault_key, created_at, created_by, role";

const AUDIT_COLUMNS: &str = "seq, at, operator, action, outcome, \"user\", credential, ticket, detail, epoch, prev_hash, hash";

const ENTRA_COLUMNS: &str = "tenant, credential_id, serial, device_id, user_id, user_upn, method_id, \
     status, last_counter, last_sync, last_error, updated_at";

fn entra_link_from_row(row: &Row) -> Result<EntraLink> {
    let c = Columns(row);
    Ok(EntraLink {
        tenant: c.get(0)?,
        credential_id: c.get(1)?,
        serial: c.get(2)?,
        device_id: c.get(3)?,
        user_id: c.get(4)?,
        user_upn: c.get(5)?,
        method_id: c.get(6)?,
        status: c.get(7)?,
        last_counter: c.unsigned_opt(8)?,
        last_sync: c.unsigned_opt(9)?,
        last_error: c.get(10)?,
        updated_at: c.unsigned(11)?,
    })
}

fn credential_from_row(row: &Row) -> Result<CredentialRow> {
    credential_at(row, 0)
}

/// A credential from [`CREDENTIAL_COLUMNS`] starting at column `at`.
fn credential_at(row: &Row, at: usize) -> Result<CredentialRow> {
    let c = Columns(row);
    let state: String = c.get(at + 11)?;
    let custody: String = c.get(at + 12)?;
    Ok(CredentialRow {
        id: c.get(at)?,
        device_id: c.get(at + 1)?,
        slot: c.unsigned_opt(at + 2)?,
        kind: c.get(at + 3)?,
        algorithm: c.get(at + 4)?,
        digits: c.unsigned(at + 5)?,
        period: c.unsigned_opt(at + 6)?,
        t0: c.unsigned_opt(at + 7)?,
        counter: c.unsigned_opt(at + 8)?,
        issuer: c.get(at + 9)?,
        label: c.get(at + 10)?,
        state: state.parse()?,
        custody: Custody::parse(&custody)?,
        sealed_secret: c.get(at + 13)?,
        user_id: c.get(at + 14)?,
        drift_steps: c.get(at + 15)?,
        purge_after: c.unsigned_opt(at + 16)?,
        created_at: c.unsigned(at + 17)?,
        updated_at: c.unsigned(at + 18)?,
        serial: c.get(at + 19)?,
        upn: c.get(at + 20)?,
        manufacturer: c.get(at + 21)?,
        model: c.get(at + 22)?,
    })
}

fn audit_from_row(row: &Row) -> Result<AuditRow> {
    let c = Columns(row);
    Ok(AuditRow {
        seq: c.get(0)?,
        at: c.unsigned(1)?,
        operator: c.get(2)?,
        action: c.get(3)?,
        outcome: c.get(4)?,
        user: c.get(5)?,
        credential: c.get(6)?,
        ticket: c.get(7)?,
        detail: c.get(8)?,
        epoch: c.get(9)?,
        prev_hash: c.get(10)?,
        hash: c.get(11)?,
    })
}

fn user_from_row(row: &Row) -> Result<User> {
    let c = Columns(row);
    Ok(User {
        id: c.get(0)?,
        upn: c.get(1)?,
        display_name: c.get(2)?,
        created_at: c.unsigned(3)?,
    })
}

fn device_from_row(row: &Row) -> Result<Device> {
    let c = Columns(row);
    let kind: String = c.get(4)?;
    Ok(Device {
        id: c.get(0)?,
        serial: c.get(1)?,
        manufacturer: c.get(2)?,
        model: c.get(3)?,
        kind: kind.parse()?,
        slots: c.unsigned(5)?,
        created_at: c.unsigned(6)?,
    })
}

/// The WHERE clause of a credential filter, with `$n` placeholders.
fn filter_sql(filter: &CredentialFilter) -> Result<(String, Vec<Box<dyn ToSql + Sync>>)> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut push = |clause: &str, value: Box<dyn ToSql + Sync>| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("${}", values.len())));
    };
    if let Some(id) = filter.id {
        push("c.id = ?", Box::new(id));
    }
    if let Some(serial) = &filter.device_serial {
        push("d.serial = ?", Box::new(serial.clone()));
    }
    if let Some(slot) = filter.slot {
        push("c.slot = ?", Box::new(i64::from(slot)));
    }
    if let Some(upn) = &filter.user_upn {
        push("lower(u.upn) = lower(?)", Box::new(upn.clone()));
    }
    if let Some(state) = filter.state {
        push("c.state = ?", Box::new(state.name()));
    }
    if let Some(at) = filter.purge_due_at {
        push(
            "c.custody = 'held' AND c.purge_after IS NOT NULL AND c.purge_after <= ?",
            Box::new(big(at)?),
        );
    }
    if filter.held_only {
        clauses.push("c.custody = 'held'".into());
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    Ok((where_sql, values))
}

impl StoreTx for PgTx<'_> {
    fn commit(self) -> Result<()> {
        if self.single.is_some() {
            return Ok(());
        }
        self.require_lock("a commit")?;
        let tail = self.tail.map(RefCell::into_inner).unwrap_or_default();
        match self.tx.into_inner() {
            Txn::Member(mut member) => {
                // The next member appends after this one's entries.
                member.tail = tail;
                member.commit()
            }
            Txn::Own(mut own) => {
                own.open = false;
                own.client.batch_execute("COMMIT")?;
                statistics::refresh(own.client, &self.bulk.borrow());
                Ok(())
            }
        }
    }

    fn meta_get(&self, key: &str) -> Result<Option<String>> {
        self.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|row| Columns(&row).get(0))
            .transpose()
    }

    fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn operator(&self, name: &str) -> Result<Option<OperatorRow>> {
        self.query_opt(
            &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = $1"),
            &[&name],
        )?
        .as_ref()
        .map(operator_from_row)
        .transpose()
    }

    fn operators(&self) -> Result<Vec<OperatorRow>> {
        self.query(
            &format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name COLLATE \"C\""),
            &[],
        )?
        .iter()
        .map(operator_from_row)
        .collect()
    }

    fn operator_put(&self, row: &OperatorRow) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO operators ({OPERATOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (name) DO UPDATE SET recipient = EXCLUDED.recipient, kdf = EXCLUDED.kdf, \
                 salt = EXCLUDED.salt, sealed_identity = EXCLUDED.sealed_identity, \
                 wrapped_vault_key = EXCLUDED.wrapped_vault_key, created_at = EXCLUDED.created_at, \
                 created_by = EXCLUDED.created_by, role = EXCLUDED.role"
            ),
            &[
                &row.name,
                &row.recipient,
                &row.kdf,
                &row.salt,
                &row.sealed_identity,
                &row.wrapped_vault_key,
                &big(row.created_at)?,
                &row.created_by,
                &row.role,
            ],
        )?;
        Ok(())
    }

    fn operator_delete(&self, name: &str) -> Result<bool> {
        Ok(self.execute("DELETE FROM operators WHERE name = $1", &[&name])? > 0)
    }

    fn audit_key_put(&self, epoch: i64, sealed: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO audit_keys (epoch, sealed_key) VALUES ($1, $2) \
             ON CONFLICT (epoch) DO UPDATE SET sealed_key = EXCLUDED.sealed_key",
            &[&epoch, &sealed],
        )?;
        Ok(())
    }

    fn audit_keys(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        self.query(
            "SELECT epoch, sealed_key FROM audit_keys ORDER BY epoch",
            &[],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok((c.get(0)?, c.get(1)?))
        })
        .collect()
    }

    fn user_insert(&self, upn: &str, display_name: Option<&str>, at: u64) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO users (upn, display_name, created_at) VALUES ($1, $2, $3) RETURNING id",
            &[&upn, &display_name, &big(at)?],
        )?;
        Columns(&row).get(0)
    }

    fn user_by_upn(&self, upn: &str) -> Result<Option<User>> {
        self.query_opt(
            "SELECT id, upn, display_name, created_at FROM users WHERE lower(upn) = lower($1)",
            &[&upn],
        )?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    fn users(&self) -> Result<Vec<User>> {
        self.query(
            "SELECT id, upn, display_name, created_at FROM users ORDER BY lower(upn) COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(user_from_row)
        .collect()
    }

    fn device_insert(&self, device: &Device) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO devices (serial, manufacturer, model, kind, slots, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &device.serial,
                &device.manufacturer,
                &device.model,
                &device.kind.name(),
                &i64::from(device.slots),
                &big(device.created_at)?,
            ],
        )?;
        Columns(&row).get(0)
    }

    fn device_by_serial(&self, serial: &str) -> Result<Option<Device>> {
        self.query_opt(
            "SELECT id, serial, manufacturer, model, kind, slots, created_at FROM devices WHERE serial = $1",
            &[&serial],
        )?
        .as_ref()
        .map(device_from_row)
        .transpose()
    }

    fn credential_set_params(
        &self,
        id: i64,
        algorithm: &str,
        digits: u8,
        period: Option<u64>,
    ) -> Result<()> {
        let changed = self.execute(
            "UPDATE credentials SET algorithm = $1, digits = $2, period = $3 WHERE id = $4",
            &[&algorithm, &i64::from(digits), &big_opt(period)?, &id],
        )?;
        if changed != 1 {
            return Err(Error::NotFound(format!("credential #{id}")));
        }
        Ok(())
    }

    fn credential_update(&self, row: &CredentialRow) -> Result<()> {
        let changed = self.execute(
            "UPDATE credentials SET counter = $1, issuer = $2, label = $3, state = $4, custody = $5, \
             sealed_secret = $6, user_id = $7, drift_steps = $8, purge_after = $9, updated_at = $10 \
             WHERE id = $11",
            &[
                &big_opt(row.counter)?,
                &row.issuer,
                &row.label,
                &row.state.name(),
                &row.custody.name(),
                &row.sealed_secret,
                &row.user_id,
                &row.drift_steps,
                &big_opt(row.purge_after)?,
                &big(row.updated_at)?,
                &row.id,
            ],
        )?;
        if changed != 1 {
            return Err(Error::NotFound(format!("credential #{}", row.id)));
        }
        Ok(())
    }

    fn credential_purge(&self, id: i64, at: u64) -> Result<()> {
        // An UPDATE writes a new row version; the old one, which held the
        // ciphertext, is pruned by the VACUUM of `scrub`.
        self.execute(
            "UPDATE credentials SET sealed_secret = NULL, custody = 'purged', purge_after = NULL, \
             updated_at = $1 WHERE id = $2",
            &[&big(at)?, &id],
        )?;
        Ok(())
    }

    fn credential_detach(&self, id: i64, at: u64) -> Result<()> {
        let changed = self.execute(
            "UPDATE credentials SET device_id = NULL, slot = NULL, updated_at = $1 WHERE id = $2",
            &[&big(at)?, &id],
        )?;
        if changed != 1 {
            return Err(Error::NotFound(format!("credential #{id}")));
        }
        Ok(())
    }

    fn credentials(&self, filter: &CredentialFilter) -> Result<Vec<CredentialRow>> {
        let (where_sql, values) = filter_sql(filter)?;
        let sql =
            format!("SELECT {CREDENTIAL_COLUMNS} {CREDENTIAL_FROM} {where_sql} {CREDENTIAL_ORDER}");
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        self.query(&sql, &params)?
            .iter()
            .map(credential_from_row)
            .collect()
    }

    fn held_secrets(&self) -> Result<Vec<HeldSecret>> {
        self.query(
            "SELECT id, kind, algorithm, digits, period, t0, counter, sealed_secret FROM credentials \
             WHERE custody = 'held' AND sealed_secret IS NOT NULL",
            &[],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok(HeldSecret {
                id: c.get(0)?,
                kind: c.get(1)?,
                algorithm: c.get(2)?,
                digits: c.unsigned(3)?,
                period: c.unsigned_opt(4)?,
                t0: c.unsigned_opt(5)?,
                counter: c.unsigned_opt(6)?,
                sealed_secret: c.get(7)?,
            })
        })
        .collect()
    }

    fn identify_generation(&self) -> Result<i64> {
        self.marker_generation()
    }

    fn lock_writers(&self) -> Result<bool> {
        self.take_writers_lock()
    }

    fn identify_changes(&self, since: i64) -> Result<crate::store::IdentifyChanges> {
        self.marker_changes(since)
    }

    fn event_insert(&self, event: &Event) -> Result<()> {
        self.insert_event_checked(event)
    }

    fn devices_by_serial(&self, serials: &[String]) -> Result<Vec<Device>> {
        if serials.is_empty() {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT id, serial, manufacturer, model, kind, slots, created_at FROM devices \
             WHERE serial = ANY($1)",
            &[&serials],
        )?
        .iter()
        .map(device_from_row)
        .collect()
    }

    fn users_by_upn(&self, upns: &[String]) -> Result<Vec<User>> {
        if upns.is_empty() {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT id, upn, display_name, created_at FROM users \
             WHERE lower(upn) IN (SELECT lower(wanted) FROM unnest($1::text[]) AS wanted)",
            &[&upns],
        )?
        .iter()
        .map(user_from_row)
        .collect()
    }

    fn slots_taken(&self, device_ids: &[i64]) -> Result<Vec<(i64, Option<u32>)>> {
        if device_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT device_id, slot FROM credentials WHERE device_id = ANY($1)",
            &[&device_ids],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok((c.get(0)?, c.unsigned_opt(1)?))
        })
        .collect()
    }

    fn device_ids(&self, count: usize) -> Result<Vec<i64>> {
        self.next_ids("devices", count)
    }

    fn devices_insert(&self, devices: &[Device], macs: &[Vec<u8>]) -> Result<()> {
        self.insert_devices(devices, macs)
    }

    fn user_ids(&self, count: usize) -> Result<Vec<i64>> {
        self.next_ids("users", count)
    }

    fn users_insert(&self, users: &[User], macs: &[Vec<u8>]) -> Result<()> {
        self.insert_users(users, macs)
    }

    fn credential_ids(&self, count: usize) -> Result<Vec<i64>> {
        self.next_ids("credentials", count)
    }

    fn credentials_insert(&self, rows: &[CredentialRow], macs: &[Vec<u8>]) -> Result<()> {
        self.insert_credentials(rows, macs)
    }

    fn events_insert(&self, events: &[Event]) -> Result<()> {
        self.insert_events(events)
    }

    fn id_tops(&self) -> Result<Option<IdTops>> {
        // Ids come from sequences, drawn only in a write transaction.
        Ok(None)
    }

    fn import_batch_begin(&self, _ranges: &ImportRanges, _at: u64) -> Result<i64> {
        Err(staged_imports_are_sqlites())
    }

    fn import_batch_publish(&self, _batch: i64) -> Result<()> {
        Err(staged_imports_are_sqlites())
    }

    fn import_batch_remove(&self, _batch: i64) -> Result<()> {
        Err(staged_imports_are_sqlites())
    }

    fn helpdesk_rows(&self, query: &HelpdeskQuery<'_>) -> Result<HelpdeskRows> {
        self.helpdesk_snapshot(query)
    }

    fn grant_rows(&self, id: &[u8]) -> Result<GrantRows> {
        self.grant_snapshot(id)
    }

    fn grant_and_helpdesk_rows(
        &self,
        id: &[u8],
        query: &HelpdeskQuery<'_>,
    ) -> Result<(GrantRows, HelpdeskRows)> {
        self.grant_and_helpdesk(id, query)
    }

    fn events(&self, credential_id: i64) -> Result<Vec<Event>> {
        self.query(
            "SELECT credential_id, from_state, to_state, operator, at, note FROM events \
             WHERE credential_id = $1 ORDER BY id",
            &[&credential_id],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            let from: Option<String> = c.get(1)?;
            let to: String = c.get(2)?;
            Ok(Event {
                credential_id: c.get(0)?,
                from_state: from.map(|s| s.parse()).transpose()?,
                to_state: to.parse()?,
                operator: c.get(3)?,
                at: c.unsigned(4)?,
                note: c.get(5)?,
            })
        })
        .collect()
    }

    fn audit_last(&self) -> Result<Option<AuditRow>> {
        if let Some(known) = &self.tail {
            return Ok(known.borrow().clone());
        }
        self.query_opt(
            &format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1"),
            &[],
        )?
        .as_ref()
        .map(audit_from_row)
        .transpose()
    }

    fn audit_insert(&self, row: &AuditRow) -> Result<()> {
        self.require_lock("an audit entry")?;
        self.execute(
            &format!(
                "INSERT INTO audit ({AUDIT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &row.seq,
                &big(row.at)?,
                &row.operator,
                &row.action,
                &row.outcome,
                &row.user,
                &row.credential,
                &row.ticket,
                &row.detail,
                &row.epoch,
                &row.prev_hash,
                &row.hash,
            ],
        )?;
        self.set_tail(row);
        Ok(())
    }

    fn audit_all(&self) -> Result<Vec<AuditRow>> {
        self.query(
            &format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq"),
            &[],
        )?
        .iter()
        .map(audit_from_row)
        .collect()
    }

    fn audit_count(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<u64> {
        let row = self.query_one(
            "SELECT count(*) FROM audit WHERE action = $1 AND outcome = $2 \
             AND lower(\"user\") = lower($3) AND at >= $4",
            &[&action, &outcome, &user, &big(since)?],
        )?;
        Columns(&row).unsigned(0)
    }

    fn audit_times(&self, action: &str, outcome: &str, user: &str, since: u64) -> Result<Vec<u64>> {
        self.query(
            "SELECT at FROM audit WHERE action = $1 AND outcome = $2 \
             AND lower(\"user\") = lower($3) AND at >= $4 ORDER BY at",
            &[&action, &outcome, &user, &big(since)?],
        )?
        .iter()
        .map(|row| Columns(row).unsigned(0))
        .collect()
    }

    fn audit_count_action(&self, action: &str) -> Result<u64> {
        let row = self.query_one("SELECT count(*) FROM audit WHERE action = $1", &[&action])?;
        Columns(&row).unsigned(0)
    }

    fn entra_links_all(&self) -> Result<Vec<EntraLink>> {
        self.query(
            &format!(
                "SELECT {ENTRA_COLUMNS} FROM entra_links ORDER BY tenant COLLATE \"C\", credential_id"
            ),
            &[],
        )?
        .iter()
        .map(entra_link_from_row)
        .collect()
    }

    fn row_macs(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        // For a kind kept in its rows: what `row_macs` still holds of it
        // (MACs of rows deleted before the move), then the rows' own.
        let mut all: Vec<(String, Vec<u8>)> = self
            .query("SELECT id, mac FROM row_macs WHERE kind = $1", &[&kind])?
            .iter()
            .map(|row| {
                let c = Columns(row);
                Ok((c.get(0)?, c.get(1)?))
            })
            .collect::<Result<_>>()?;
        if let Some(table) = mac_table(kind) {
            for row in self.query(
                &format!("SELECT id, mac FROM {table} WHERE mac IS NOT NULL ORDER BY id"),
                &[],
            )? {
                let c = Columns(&row);
                all.push((row_key(c.get(0)?), c.get(1)?));
            }
        }
        Ok(all)
    }

    fn row_macs_put(&self, kind: &str, macs: &[(String, Vec<u8>)]) -> Result<()> {
        // In batches: one statement per few thousand rows, not per row.
        for batch in macs.chunks(2000) {
            let values: Vec<&[u8]> = batch.iter().map(|(_, mac)| mac.as_slice()).collect();
            if let Some(table) = mac_table(kind) {
                let ids: Vec<i64> = batch
                    .iter()
                    .map(|(id, _)| row_id_of(kind, id))
                    .collect::<Result<_>>()?;
                self.execute(
                    &format!(
                        "UPDATE {table} SET mac = m.mac \
                         FROM unnest($1::bigint[], $2::bytea[]) AS m (id, mac) WHERE {table}.id = m.id"
                    ),
                    &[&ids, &values],
                )?;
                continue;
            }
            let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
            self.bulk.borrow_mut().add("row_macs", ids.len());
            self.execute(
                "INSERT INTO row_macs (kind, id, mac) SELECT $1, * FROM unnest($2::text[], $3::bytea[]) \
                 ON CONFLICT (kind, id) DO UPDATE SET mac = EXCLUDED.mac",
                &[&kind, &ids, &values],
            )?;
        }
        Ok(())
    }

    fn row_macs_of(&self, rows: &[(&str, String)]) -> Result<Vec<(String, String, Vec<u8>)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip: `row_macs` for most kinds, the rows' own column
        // for credentials, users and devices.
        let mut kinds: Vec<&str> = Vec::new();
        let mut ids: Vec<&str> = Vec::new();
        let (mut credentials, mut users, mut devices) = (Vec::new(), Vec::new(), Vec::new());
        for (kind, id) in rows {
            match (mac_table(kind), row_of_key(id)) {
                (Some("credentials"), Some(row)) => credentials.push(row),
                (Some("users"), Some(row)) => users.push(row),
                (Some(_), Some(row)) => devices.push(row),
                (Some(_), None) => {}
                (None, _) => {
                    kinds.push(*kind);
                    ids.push(id.as_str());
                }
            }
        }
        self.query(
            "SELECT kind, id, mac FROM row_macs WHERE (kind, id) IN \
             (SELECT * FROM unnest($1::text[], $2::text[])) \
             UNION ALL SELECT 'credential', lpad(id::text, 20, '0'), mac FROM credentials \
             WHERE id = ANY($3) AND mac IS NOT NULL \
             UNION ALL SELECT 'user', lpad(id::text, 20, '0'), mac FROM users \
             WHERE id = ANY($4) AND mac IS NOT NULL \
             UNION ALL SELECT 'device', lpad(id::text, 20, '0'), mac FROM devices \
             WHERE id = ANY($5) AND mac IS NOT NULL",
            &[&kinds, &ids, &credentials, &users, &devices],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok((c.get(0)?, c.get(1)?, c.get(2)?))
        })
        .collect()
    }

    fn released_record(
        &self,
        credential_id: i64,
        counter: u64,
        at: u64,
        mac_kind: &str,
        mac_id: &str,
        mac: &[u8],
        below: u64,
        (mac_lo, mac_hi): (&str, &str),
    ) -> Result<()> {
        // One statement, one round trip: the new step is never below the
        // pruning bound, so the four parts touch different rows. A step
        // released before inserts no row, and then `step` is empty: the
        // rest, which reads from it, writes nothing.
        self.execute(
            "WITH step AS (INSERT INTO released_steps (credential_id, counter, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (credential_id, counter) DO NOTHING RETURNING 1), \
             signature AS (INSERT INTO row_macs (kind, id, mac) SELECT $4, $5, $6 FROM step \
                 ON CONFLICT (kind, id) DO UPDATE SET mac = EXCLUDED.mac), \
             old AS (DELETE FROM released_steps USING step WHERE credential_id = $1 AND counter < $7), \
             old_signatures AS (DELETE FROM row_macs USING step \
                 WHERE kind = $4 AND id >= $8 AND id < $9) \
             SELECT 1",
            &[
                &credential_id,
                &big(counter)?,
                &big(at)?,
                &mac_kind,
                &mac_id,
                &mac,
                &i64::try_from(below).unwrap_or(i64::MAX),
                &mac_lo,
                &mac_hi,
            ],
        )?;
        Ok(())
    }

    fn orphans(&self) -> Result<Vec<Orphan>> {
        self.query(ORPHANS_SQL, &[])?
            .iter()
            .map(|row| {
                let c = Columns(row);
                Ok((c.get(0)?, c.get(1)?, c.get(2)?, c.get(3)?))
            })
            .collect()
    }

    fn row_mac_delete(&self, kind: &str, id: &str) -> Result<()> {
        if let Some(table) = mac_table(kind) {
            self.execute(
                &format!("UPDATE {table} SET mac = NULL WHERE id = $1"),
                &[&row_id_of(kind, id)?],
            )?;
            return Ok(());
        }
        self.execute(
            "DELETE FROM row_macs WHERE kind = $1 AND id = $2",
            &[&kind, &id],
        )?;
        Ok(())
    }

    fn audit_append_if_below(
        &self,
        count: &AuditCount<'_>,
        limit: u64,
        entry: &AuditRow,
        step: &ReleasedStep<'_>,
    ) -> Result<u64> {
        self.append_if_below(count, limit, entry, step)
    }

    fn released(&self, credential_id: i64) -> Result<Vec<(u64, u64)>> {
        self.query(
            "SELECT counter, at FROM released_steps WHERE credential_id = $1 ORDER BY counter",
            &[&credential_id],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok((c.unsigned(0)?, c.unsigned(1)?))
        })
        .collect()
    }

    fn released_all(&self) -> Result<Vec<(i64, u64, u64)>> {
        self.query(
            "SELECT credential_id, counter, at FROM released_steps ORDER BY credential_id, counter",
            &[],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok((c.get(0)?, c.unsigned(1)?, c.unsigned(2)?))
        })
        .collect()
    }

    fn released_forget(&self, credential_id: i64, below: Option<u64>) -> Result<Vec<u64>> {
        let below = below.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        self.query(
            "DELETE FROM released_steps WHERE credential_id = $1 AND counter < $2 RETURNING counter",
            &[&credential_id, &below],
        )?
        .iter()
        .map(|row| Columns(row).unsigned(0))
        .collect()
    }

    fn entra_link(&self, tenant: &str, credential_id: i64) -> Result<Option<EntraLink>> {
        self.query_opt(
            &format!(
                "SELECT {ENTRA_COLUMNS} FROM entra_links WHERE tenant = $1 AND credential_id = $2"
            ),
            &[&tenant, &credential_id],
        )?
        .as_ref()
        .map(entra_link_from_row)
        .transpose()
    }

    fn entra_links(&self, tenant: &str) -> Result<Vec<EntraLink>> {
        self.query(
            &format!(
                "SELECT {ENTRA_COLUMNS} FROM entra_links WHERE tenant = $1 ORDER BY serial COLLATE \"C\""
            ),
            &[&tenant],
        )?
        .iter()
        .map(entra_link_from_row)
        .collect()
    }

    fn entra_link_put(&self, link: &EntraLink) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO entra_links ({ENTRA_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (tenant, credential_id) DO UPDATE SET serial = EXCLUDED.serial, \
                 device_id = EXCLUDED.device_id, user_id = EXCLUDED.user_id, user_upn = EXCLUDED.user_upn, \
                 method_id = EXCLUDED.method_id, status = EXCLUDED.status, \
                 last_counter = EXCLUDED.last_counter, last_sync = EXCLUDED.last_sync, \
                 last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at"
            ),
            &[
                &link.tenant,
                &link.credential_id,
                &link.serial,
                &link.device_id,
                &link.user_id,
                &link.user_upn,
                &link.method_id,
                &link.status,
                &big_opt(link.last_counter)?,
                &big_opt(link.last_sync)?,
                &link.last_error,
                &big(link.updated_at)?,
            ],
        )?;
        Ok(())
    }

    fn entra_link_delete(&self, tenant: &str, credential_id: i64) -> Result<bool> {
        Ok(self.execute(
            "DELETE FROM entra_links WHERE tenant = $1 AND credential_id = $2",
            &[&tenant, &credential_id],
        )? > 0)
    }

    fn devices(&self) -> Result<Vec<Device>> {
        self.query(
            "SELECT id, serial, manufacturer, model, kind, slots, created_at FROM devices \
             ORDER BY serial COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(device_from_row)
        .collect()
    }

    fn records_of(&self, kind: &str, ids: &[String]) -> Result<Vec<RecordRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT kind, id, state, body, updated_at FROM records \
             WHERE kind = $1 AND id = ANY($2) ORDER BY id COLLATE \"C\"",
            &[&kind, &ids],
        )?
        .iter()
        .map(record_from_row)
        .collect()
    }

    fn records_signed_of(&self, kind: &str, ids: &[String]) -> Result<SignedRecords> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        // One statement, one snapshot (see the trait).
        let found = self.query(
            "SELECT r.kind, r.id, r.state, r.body, r.updated_at, i.id, m.mac \
             FROM (SELECT DISTINCT unnest($2::text[]) AS id) AS i \
             LEFT JOIN records r ON r.kind = $1 AND r.id = i.id \
             LEFT JOIN row_macs m ON m.kind = $1 AND m.id = i.id \
             ORDER BY i.id COLLATE \"C\"",
            &[&kind, &ids],
        )?;
        let (mut records, mut macs) = (Vec::new(), Vec::new());
        for row in &found {
            if Columns(row).get::<Option<String>>(0)?.is_some() {
                records.push(record_from_row(row)?);
            }
            if let Some(mac) = Columns(row).get::<Option<Vec<u8>>>(6)? {
                macs.push((kind.to_owned(), Columns(row).get(5)?, mac));
            }
        }
        Ok((records, macs))
    }

    fn records(&self, kind: &str, state: Option<&str>) -> Result<Vec<RecordRow>> {
        self.query(
            "SELECT kind, id, state, body, updated_at FROM records \
             WHERE kind = $1 AND ($2::text IS NULL OR state = $2) ORDER BY id COLLATE \"C\"",
            &[&kind, &state],
        )?
        .iter()
        .map(record_from_row)
        .collect()
    }

    fn records_put(&self, rows: &[RecordRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // One round trip for a batch (a directory sync writes thousands).
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
        let at: Vec<i64> = rows.iter().map(|r| r.updated_at as i64).collect();
        const UPSERT: &str = "INSERT INTO records (kind, id, state, body, updated_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
             ON CONFLICT (kind, id) DO UPDATE SET state = EXCLUDED.state, body = EXCLUDED.body, \
             updated_at = EXCLUDED.updated_at";
        let params: [&(dyn ToSql + Sync); 5] = [&kinds, &ids, &states, &bodies, &at];
        self.bulk.borrow_mut().add("records", rows.len());
        if self.records_written_late(&kinds) {
            self.execute(UPSERT, &params)?;
        } else {
            // Each kind written counts a write, in the same round trip (a
            // write planned before the lock checks it: `postgres/late_lock.rs`).
            self.execute(
                &format!(
                    "WITH put AS ({UPSERT} RETURNING kind) \
                     INSERT INTO import_generations (kind, generation) \
                     SELECT DISTINCT kind, 1 FROM put \
                     ON CONFLICT (kind) DO UPDATE SET generation = import_generations.generation + 1"
                ),
                &params,
            )?;
        }
        Ok(())
    }

    fn records_generation(&self, kind: &str) -> Result<i64> {
        self.records_generation_of(kind)
    }

    fn record_delete(&self, kind: &str, id: &str) -> Result<bool> {
        let deleted = self.execute(
            "DELETE FROM records WHERE kind = $1 AND id = $2",
            &[&kind, &id],
        )? > 0;
        if !self.records_written_late(&[kind]) {
            self.bump_generations(&[kind.to_owned()])?;
        }
        Ok(deleted)
    }

    fn web_account(&self, name: &str) -> Result<Option<WebAccountRow>> {
        self.query_opt(
            &format!("SELECT {WEB_ACCOUNT_COLUMNS} FROM web_accounts WHERE name = $1"),
            &[&name],
        )?
        .as_ref()
        .map(web_account_from_row)
        .transpose()
    }

    fn web_accounts(&self) -> Result<Vec<WebAccountRow>> {
        self.query(
            &format!("SELECT {WEB_ACCOUNT_COLUMNS} FROM web_accounts ORDER BY name COLLATE \"C\""),
            &[],
        )?
        .iter()
        .map(web_account_from_row)
        .collect()
    }

    fn web_account_put(&self, row: &WebAccountRow) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO web_accounts ({WEB_ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, disabled = EXCLUDED.disabled, \
                 must_change_password = EXCLUDED.must_change_password, created_at = EXCLUDED.created_at, \
                 created_by = EXCLUDED.created_by, mac = EXCLUDED.mac"
            ),
            &[
                &row.name,
                &row.role,
                &row.disabled,
                &row.must_change_password,
                &big(row.created_at)?,
                &row.created_by,
                &row.mac,
            ],
        )?;
        Ok(())
    }

    fn web_account_delete(&self, name: &str) -> Result<bool> {
        Ok(self.execute("DELETE FROM web_accounts WHERE name = $1", &[&name])? > 0)
    }

    fn web_grant(&self, id: &[u8]) -> Result<Option<GrantRow>> {
        self.query_opt(
            &format!("SELECT {GRANT_COLUMNS} FROM web_grants WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(grant_from_row)
        .transpose()
    }

    fn web_grants(&self, account: Option<&str>) -> Result<Vec<GrantRow>> {
        self.query(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM web_grants WHERE $1::TEXT IS NULL OR account = $1 \
                 ORDER BY created_at"
            ),
            &[&account],
        )?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    fn web_grant_put(&self, row: &GrantRow) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO web_grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, account = EXCLUDED.account, \
                 label = EXCLUDED.label, scopes = EXCLUDED.scopes, wrapped_key = EXCLUDED.wrapped_key, \
                 created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, \
                 last_used_at = EXCLUDED.last_used_at"
            ),
            &[
                &row.id,
                &row.kind,
                &row.account,
                &row.label,
                &row.scopes,
                &row.wrapped_key,
                &big(row.created_at)?,
                &big(row.expires_at)?,
                &big(row.last_used_at)?,
            ],
        )?;
        Ok(())
    }

    fn web_grant_delete(&self, id: &[u8]) -> Result<bool> {
        Ok(self.execute("DELETE FROM web_grants WHERE id = $1", &[&id])? > 0)
    }

    fn web_grants_delete_account(&self, account: Option<&str>) -> Result<u64> {
        self.execute(
            "DELETE FROM web_grants WHERE $1::TEXT IS NULL OR account = $1",
            &[&account],
        )
    }

    fn web_grants_delete_expired(&self, now: u64) -> Result<u64> {
        self.execute(
            "DELETE FROM web_grants WHERE expires_at <= $1",
            &[&big(now)?],
        )
    }

    fn web_throttle(&self, key: &str) -> Result<Option<ThrottleRow>> {
        self.query_opt(
            "SELECT key, failures, first_at, locked_until FROM web_throttle WHERE key = $1",
            &[&key],
        )?
        .as_ref()
        .map(|row| {
            let c = Columns(row);
            Ok(ThrottleRow {
                key: c.get(0)?,
                failures: c.unsigned(1)?,
                first_at: c.unsigned(2)?,
                locked_until: c.unsigned(3)?,
            })
        })
        .transpose()
    }

    fn web_throttle_put(&self, row: &ThrottleRow) -> Result<()> {
        self.execute(
            "INSERT INTO web_throttle (key, failures, first_at, locked_until) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET failures = EXCLUDED.failures, \
             first_at = EXCLUDED.first_at, locked_until = EXCLUDED.locked_until",
            &[
                &row.key,
                &big(row.failures)?,
                &big(row.first_at)?,
                &big(row.locked_until)?,
            ],
        )?;
        Ok(())
    }

    fn web_throttle_delete(&self, key: &str) -> Result<()> {
        self.execute("DELETE FROM web_throttle WHERE key = $1", &[&key])?;
        Ok(())
    }

    fn sighting_insert(&self, row: &SightingRow) -> Result<bool> {
        let at = i64::try_from(row.at)
            .map_err(|_| Error::Invalid(format!("time {} is out of range", row.at)))?;
        Ok(self.execute(
            "INSERT INTO drift_sightings (credential_id, at, source, offset_steps) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&row.credential_id, &at, &row.source, &row.offset_steps],
        )? > 0)
    }

    fn sightings(&self, credential_id: Option<i64>) -> Result<Vec<SightingRow>> {
        // Sorted as SQLite sorts: `source` in byte order.
        self.query(
            "SELECT credential_id, at, source, offset_steps FROM drift_sightings \
             WHERE $1::BIGINT IS NULL OR credential_id = $1 \
             ORDER BY credential_id, at, source COLLATE \"C\"",
            &[&credential_id],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok(SightingRow {
                credential_id: c.get(0)?,
                at: c.unsigned(1)?,
                source: c.get(2)?,
                offset_steps: c.get(3)?,
            })
        })
        .collect()
    }

    fn drift_series_put(&self, credential_id: i64, points: &[u8]) -> Result<()> {
        self.execute(
            "INSERT INTO drift_series (credential_id, points) VALUES ($1, $2) \
             ON CONFLICT (credential_id) DO UPDATE SET points = EXCLUDED.points",
            &[&credential_id, &points],
        )?;
        Ok(())
    }

    fn drift_series(&self, credential_id: Option<i64>) -> Result<Vec<(i64, Vec<u8>)>> {
        self.query(
            "SELECT credential_id, points FROM drift_series \
             WHERE $1::BIGINT IS NULL OR credential_id = $1 ORDER BY credential_id",
            &[&credential_id],
        )?
        .iter()
        .map(|row| {
            let c = Columns(row);
            Ok((c.get(0)?, c.get(1)?))
        })
        .collect()
    }

    fn drift_series_delete(&self, credential_id: i64) -> Result<()> {
        self.execute(
            "DELETE FROM drift_series WHERE credential_id = $1",
            &[&credential_id],
        )?;
        Ok(())
    }
}

fn record_from_row(row: &Row) -> Result<RecordRow> {
    let c = Columns(row);
    Ok(RecordRow {
        kind: c.get(0)?,
        id: c.get(1)?,
        state: c.get(2)?,
        body: c.get(3)?,
        updated_at: c.unsigned(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL form docs/src/postgresql.md gives for the server's Unix
    /// socket reaches the client as a socket directory, not a host name.
    #[test]
    fn a_percent_encoded_host_is_the_unix_socket_directory() {
        let (base, schema) =
            split_schema("postgres://desk@%2Fvar%2Frun%2Fpostgresql/helpdesk?schema=vault")
                .unwrap();
        assert_eq!(schema.as_deref(), Some("vault"));
        let config = Config::from_str(&base).unwrap();
        assert_eq!(
            config.get_hosts(),
            [::postgres::config::Host::Unix("/var/run/postgresql".into())]
        );
        assert_eq!(config.get_dbname(), Some("helpdesk"));
    }

    #[test]
    fn the_schema_parameter_is_oathdesk_s_own() {
        assert_eq!(
            split_schema("postgres://u@h/db").unwrap(),
            ("postgres://u@h/db".into(), None)
        );
        assert_eq!(
            split_schema("postgres://u@h/db?schema=desk_1&sslmode=disable").unwrap(),
            (
                "postgres://u@h/db?sslmode=disable".into(),
                Some("desk_1".into())
            )
        );
        assert_eq!(
            split_schema("postgres://u@h/db?schema=desk").unwrap(),
            ("postgres://u@h/db".into(), Some("desk".into()))
        );
        for bad in ["Desk", "1desk", "de\"sk", "a-b", ""] {
            let err = split_schema(&format!("postgres://h/db?schema={bad}")).unwrap_err();
            assert!(
                err.to_string().contains("lower-case letters"),
                "{bad}: {err}"
            );
        }
    }
}
