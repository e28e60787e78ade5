//! The PostgreSQL side of group commit (`store::group_commit`): the
//! writers of one process on one vault (URL and schema) share one writer
//! connection, so that writers that queue share the audit table's lock,
//! the round trips of `BEGIN` and `COMMIT`, and one WAL flush. The lock
//! is taken once per group. A later member's `SAVEPOINT` is kept until the
//! group commits (no `RELEASE`, see [`PgConn::release`]), and is sent only
//! with the member's first statement ([`PgConn::place`]), or in the same
//! round trip with it; the group's `BEGIN`, lock and tail read likewise
//! ([`PgConn::begun`]); and the console's helpdesk codes that queue are
//! written by one member for all (`postgres/combine.rs`), with the
//! group's `BEGIN` and, if nobody waits to join, its `COMMIT`.
//!
//! A process with one store of a vault (a command-line run) writes on the
//! store's own connection as before: a second connection would cost it a
//! connection set-up and could share nothing.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use ::postgres::{Client, Config, Statement};

use super::{CHECK_TIMEOUT, IDLE_CHECK, begin_write_error, chain, session, write_begin_sql};
use crate::error::Result;
use crate::store::AuditRow;
use crate::store::group_commit::{GroupConnection, Writer};
use crate::store::shared::PerVault;

/// A writer connection: the client, its prepared statements, and the audit
/// chain's tail as the group's members have left it.
pub(crate) struct PgConn {
    pub(crate) client: Client,
    pub(crate) statements: HashMap<String, Statement>,
    /// The chain's tail: read with the lock when the group begins, then
    /// handed from member to member ([`super::PgTx`]'s [`commit`](crate::store::StoreTx::commit) writes back
    /// the tail a member leaves; one that gives up leaves it as it was).
    pub(crate) tail: Option<AuditRow>,
    open: bool,
    last_used: Instant,
    /// A later member's turn began and its `SAVEPOINT` is not sent yet: it
    /// goes before the member's first statement ([`PgConn::place`]), or with
    /// it. A member that sent nothing has nothing to roll back.
    owed: bool,
    /// The group's `BEGIN`, lock and tail are not sent yet: they go with
    /// the first member's first statement ([`PgConn::begun`]), or in one
    /// round trip with a batch of releases (`postgres/combine.rs`).
    begin_owed: bool,
    /// Whether [`PgConn::tail`] is the database's tail as of this
    /// connection's last commit: a batch of releases may then be chained
    /// on it before the lock is taken (its statements append only where
    /// the chain still ends there; `chain::append_sql_guarded`).
    pub(crate) tail_known: bool,
    /// Whether the helpdesk's guarded release is prepared on this
    /// connection by name (`postgres/release.rs`): `None` not tried yet,
    /// `Some(false)` it could not be (releases are sent one by one).
    pub(crate) release_prepared: Option<bool>,
    /// The group's transaction was committed by a batch of releases that
    /// sent its `COMMIT` with them (`postgres/combine.rs`).
    settled: bool,
    /// Groups whose `BEGIN` was sent in a round trip of its own (for the
    /// tests).
    #[cfg(test)]
    pub(crate) begins_alone: usize,
}

/// What opens a writer connection, for the thread that writes the
/// helpdesk's releases (`postgres/combine.rs`).
pub(crate) struct Opener {
    pub(crate) config: Config,
    pub(crate) schema: Option<String>,
    /// The URL as shown in messages (no password).
    pub(crate) shown: String,
}

impl Opener {
    pub(crate) fn open(&self) -> Result<PgConn> {
        PgConn::open(&self.config, self.schema.as_deref(), &self.shown)
    }
}

impl PgConn {
    pub(crate) fn open(config: &Config, schema: Option<&str>, shown: &str) -> Result<PgConn> {
        Ok(PgConn {
            client: session(config, schema, shown)?,
            statements: HashMap::new(),
            tail: None,
            open: false,
            last_used: Instant::now(),
            owed: false,
            begin_owed: false,
            tail_known: false,
            settled: false,
            release_prepared: None,
            #[cfg(test)]
            begins_alone: 0,
        })
    }

    /// Sends the group's owed `BEGIN`, the lock and the tail read, if they
    /// are owed: before the first member's first statement, or before a
    /// member reads the tail.
    pub(crate) fn begun(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.begin_owed) {
            return Ok(());
        }
        #[cfg(test)]
        {
            self.begins_alone += 1;
        }
        let answer = match self.client.simple_query(&write_begin_sql()) {
            Ok(answer) => answer,
            Err(error) => {
                // A statement after BEGIN failed: the transaction is open, and aborted.
                self.abandon();
                return Err(begin_write_error(error));
            }
        };
        match chain::tail_of(&answer) {
            Ok(tail) => {
                self.tail = tail;
                self.tail_known = true;
                Ok(())
            }
            Err(error) => {
                self.abandon();
                Err(error)
            }
        }
    }

    /// Takes the owed `BEGIN`, lock and tail read to send with a batch of
    /// releases in one simple query: the statements to send first, if they
    /// were owed and the tail is known (the batch is chained on it). Once
    /// taken they count as sent (see [`PgConn::take_owed`]).
    pub(crate) fn take_owed_begin(&mut self) -> Option<String> {
        (self.begin_owed && self.tail_known).then(|| {
            self.begin_owed = false;
            write_begin_sql()
        })
    }

    /// The batch that took the owed `BEGIN` sent the `COMMIT` too, and it
    /// succeeded: the group's transaction is over, and the tail the batch
    /// left is the database's.
    pub(crate) fn settle(&mut self) {
        self.settled = true;
        self.open = false;
    }

    /// Begins the group's transaction anew for the releases a batch left:
    /// after a batch that committed it (nothing to undo), or one whose
    /// round trip failed (rolled back: it held nothing but that batch).
    pub(crate) fn begin_anew(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.settled) {
            self.abandon();
        }
        self.open = true;
        self.begin_owed = true;
        self.begun()
    }

    /// Ends a transaction that cannot go on (and forgets the tail, which
    /// it may have moved).
    pub(crate) fn abandon(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
        self.open = false;
        self.tail_known = false;
    }

    /// Sends what this member owes before its first statement: the group's
    /// `BEGIN` (the first member), or its `SAVEPOINT` (a later one), so
    /// that everything it changes is after it.
    pub(crate) fn place(&mut self) -> Result<()> {
        self.begun()?;
        if std::mem::take(&mut self.owed) {
            self.run("SAVEPOINT member")?;
        }
        Ok(())
    }

    /// Takes the owed `SAVEPOINT` to send with a statement in one simple
    /// query (a batch of `postgres/combine.rs`): whether there was one. Once taken it
    /// counts as sent: if the query fails, the member's undo rolls back to
    /// it (and if it never reached the server, that fails too and the
    /// group's commit reports the aborted transaction).
    pub(crate) fn take_owed(&mut self) -> bool {
        std::mem::take(&mut self.owed)
    }

    fn run(&mut self, sql: &str) -> Result<()> {
        let result = self.client.batch_execute(sql);
        if self.client.is_closed() {
            self.open = false;
        }
        Ok(result?)
    }
}

impl GroupConnection for PgConn {
    /// Nothing to send yet: `BEGIN`, the lock and the tail read are owed
    /// until the first member's first statement ([`PgConn::begun`]), which
    /// they travel with where they can. A group whose transaction a
    /// statement of another process's would wait for is therefore one
    /// that has sent something.
    fn begin(&mut self) -> Result<()> {
        self.last_used = Instant::now();
        self.owed = false;
        self.settled = false;
        if self.release_prepared.is_none() {
            // Once per connection, outside any transaction.
            self.release_prepared = Some(super::release::prepare(&mut self.client));
        }
        self.begin_owed = true;
        self.open = true;
        Ok(())
    }

    /// Nothing to send yet: the savepoint is owed until the member's first
    /// statement ([`PgConn::place`]), which it travels with where it can.
    fn savepoint(&mut self) -> Result<()> {
        self.owed = true;
        Ok(())
    }

    /// Nothing to send: the savepoint stays until the group commits (a
    /// round trip less per member; a group has at most 32). A member that
    /// left the transaction aborted is caught at the commit.
    fn release(&mut self) -> Result<()> {
        self.owed = false;
        Ok(())
    }

    /// Back to the newest savepoint named `member`: this member's own. A
    /// member whose savepoint was never sent changed nothing, and must not
    /// roll back to the one before (another member's).
    fn rollback_to_savepoint(&mut self) {
        if std::mem::take(&mut self.owed) {
            return;
        }
        let _ = self.run("ROLLBACK TO member; RELEASE member");
    }

    /// `COMMIT` of an aborted transaction answers `ROLLBACK` without an
    /// error; the `SELECT` before it fails instead (and the `COMMIT` is not
    /// run), so a group that cannot commit is told so.
    fn commit(&mut self) -> Result<()> {
        self.open = false;
        self.owed = false;
        if std::mem::take(&mut self.begin_owed) || std::mem::take(&mut self.settled) {
            // Nothing was sent, or it is committed already.
            return Ok(());
        }
        let committed = self.client.batch_execute("SELECT 1; COMMIT");
        // Committed, the tail the members left is the database's.
        self.tail_known = committed.is_ok();
        if committed.is_err() && !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        Ok(committed?)
    }

    fn rollback(&mut self) -> Result<()> {
        self.open = false;
        self.owed = false;
        if std::mem::take(&mut self.begin_owed) || std::mem::take(&mut self.settled) {
            // Nothing was sent (the tail is as the last commit left it),
            // or it is committed already.
            return Ok(());
        }
        // The members may have moved the tail in what is rolled back.
        self.tail_known = false;
        Ok(self.client.batch_execute("ROLLBACK")?)
    }

    fn in_transaction(&self) -> bool {
        self.open && !self.client.is_closed()
    }

    fn settled(&self) -> bool {
        self.settled
    }

    /// Checked like a store's own connection (`PgStore::ready`): closed, or
    /// idle for [`IDLE_CHECK`] and not answering, it is replaced.
    fn usable(&mut self) -> bool {
        !self.client.is_closed()
            && (self.last_used.elapsed() < IDLE_CHECK
                || self.client.is_valid(CHECK_TIMEOUT).is_ok())
    }
}

/// One writer per vault: by its URL as given (with the schema parameter).
static WRITERS: LazyLock<PerVault<String, Writer<PgConn>>> = LazyLock::new(PerVault::default);

/// The writer of the vault at `url`.
pub(crate) fn writer_of(url: &str) -> Arc<Writer<PgConn>> {
    WRITERS.of(url)
}

#[cfg(test)]
pub(super) mod tests;
