//! The references between rows that PostgreSQL no longer checks row by
//! row (migration 14): a credential's device and user, an event's
//! credential.
//!
//! A foreign key runs one query per inserted row and reference (`SELECT 1
//! FROM devices WHERE id = $1 FOR KEY SHARE`, from a trigger): three per
//! imported token, most of the server's time in a large import. Instead,
//! each way a row gets into `credentials` or `events` proves its parents
//! here, before its transaction commits:
//!
//! - a batch (an import's COPY, a few rows' INSERT) sends the parents its
//!   rows refer to in one statement per reference, which locks those that
//!   exist `FOR KEY SHARE` (as the key's check does, so that a delete of
//!   one waits for this transaction) and returns them: one the database
//!   did not return is missing. Parents this transaction wrote itself
//!   are not sent: it wrote them (its COPY or INSERT of them succeeded),
//!   no other transaction can see them, let alone delete them, before it
//!   commits, and the store deletes none;
//! - one event ([`PgTx::insert_event_checked`]) is inserted by a statement
//!   that selects, and locks, its credential: no credential, no row;
//! - an UPDATE that points a credential at another device or user (or an
//!   event at another credential) is checked by migration 14's trigger
//!   `reference_parents`, as the key checked it.
//!
//! Migration 14's triggers guard the parents: a DELETE, key UPDATE or
//! TRUNCATE of a device, user or credential takes `LOCK child IN SHARE
//! MODE` before it touches a row — so it waits for a transaction that is
//! writing children, an import, and then sees its rows — and is refused if
//! it would leave a child without its parent. A missing parent fails the
//! write with [`Error::MissingReference`]; the transaction rolls back.

use std::collections::HashSet;

use super::{Columns, PgTx};
use crate::error::{Error, Result};
use crate::model::Event;

/// A column of a child table that refers to the `id` of a parent table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    pub child: &'static str,
    pub column: &'static str,
    pub parent: &'static str,
    /// A row of each, in messages.
    child_row: &'static str,
    parent_row: &'static str,
}

pub(crate) const CREDENTIAL_DEVICE: Reference = Reference {
    child: "credentials",
    column: "device_id",
    parent: "devices",
    child_row: "credential",
    parent_row: "device",
};

pub(crate) const CREDENTIAL_USER: Reference = Reference {
    child: "credentials",
    column: "user_id",
    parent: "users",
    child_row: "credential",
    parent_row: "user",
};

pub(crate) const EVENT_CREDENTIAL: Reference = Reference {
    child: "events",
    column: "credential_id",
    parent: "credentials",
    child_row: "event",
    parent_row: "credential",
};

/// Every reference migration 14 took from the database's foreign keys.
pub(crate) const REFERENCES: [Reference; 3] =
    [CREDENTIAL_DEVICE, CREDENTIAL_USER, EVENT_CREDENTIAL];

/// The parent tables a table's rows refer to without a foreign key (for
/// `vault copy`, which orders tables parents first).
pub(crate) fn parents_of(table: &str) -> impl Iterator<Item = &'static str> + '_ {
    REFERENCES
        .iter()
        .filter(move |r| r.child == table)
        .map(|r| r.parent)
}

/// One reference's parents `$1` that exist, locked `FOR KEY SHARE`: the
/// client takes them from the ones it sent (an anti-join finished by the
/// client; a NOT EXISTS over the locked rows in SQL is planned as a nested
/// loop over a CTE, quadratic in the batch).
fn present_parents_sql(reference: &Reference) -> String {
    format!(
        "SELECT p.id FROM {parent} p WHERE p.id = ANY($1) FOR KEY SHARE OF p",
        parent = reference.parent
    )
}

/// The same over a whole table (after `vault copy` wrote it).
fn dangling_sql(reference: &Reference) -> String {
    format!(
        "SELECT c.{column}, c.id FROM {child} c WHERE c.{column} IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column}) LIMIT 1",
        column = reference.column,
        child = reference.child,
        parent = reference.parent
    )
}

/// The devices, users and credentials a transaction inserted: they exist
/// until it ends.
#[derive(Debug, Default)]
pub(crate) struct Written {
    devices: HashSet<i64>,
    users: HashSet<i64>,
    credentials: HashSet<i64>,
}

impl Written {
    pub(super) fn of(&self, table: &str) -> Option<&HashSet<i64>> {
        match table {
            "devices" => Some(&self.devices),
            "users" => Some(&self.users),
            "credentials" => Some(&self.credentials),
            _ => None,
        }
    }

    fn of_mut(&mut self, table: &str) -> Option<&mut HashSet<i64>> {
        match table {
            "devices" => Some(&mut self.devices),
            "users" => Some(&mut self.users),
            "credentials" => Some(&mut self.credentials),
            _ => None,
        }
    }

    /// Whether this transaction wrote row `id` of `table`.
    fn has(&self, table: &str, id: i64) -> bool {
        self.of(table).is_some_and(|set| set.contains(&id))
    }
}

impl PgTx<'_> {
    /// Notes rows of `table` this transaction inserted (after the
    /// statement that inserted them succeeded).
    pub(super) fn wrote(&self, table: &str, ids: impl IntoIterator<Item = i64>) {
        if let Some(set) = self.written.borrow_mut().of_mut(table) {
            set.extend(ids);
        }
    }

    /// Proves that the parents of rows this transaction just wrote into
    /// `reference.child` exist, and locks those it did not write itself
    /// until it ends. `rows` are (child row's id, if known; parent's id).
    pub(super) fn check_parents(
        &self,
        reference: &Reference,
        rows: impl IntoIterator<Item = (Option<i64>, Option<i64>)>,
    ) -> Result<()> {
        let rows: Vec<(Option<i64>, i64)> = rows
            .into_iter()
            .filter_map(|(child, parent)| parent.map(|parent| (child, parent)))
            .collect();
        let mut others: Vec<i64> = {
            let written = self.written.borrow();
            rows.iter()
                .map(|&(_, parent)| parent)
                .filter(|&parent| !written.has(reference.parent, parent))
                .collect()
        };
        if others.is_empty() {
            return Ok(());
        }
        others.sort_unstable();
        others.dedup();
        let present: HashSet<i64> = self
            .query(&present_parents_sql(reference), &[&others])?
            .iter()
            .map(|row| Columns(row).get(0))
            .collect::<Result<_>>()?;
        let Some(&missing) = others.iter().find(|id| !present.contains(id)) else {
            return Ok(());
        };
        let child = rows
            .iter()
            .find(|&&(_, parent)| parent == missing)
            .and_then(|&(child, _)| child);
        Err(missing_reference(reference, child, missing))
    }

    /// Inserts one event, if its credential exists (locked `FOR KEY SHARE`
    /// by the same statement).
    pub(super) fn insert_event_checked(&self, event: &Event) -> Result<()> {
        let inserted = self.execute(
            "WITH parent AS (SELECT c.id FROM credentials c WHERE c.id = $1 FOR KEY SHARE) \
             INSERT INTO events (credential_id, from_state, to_state, operator, at, note) \
             SELECT parent.id, $2::text, $3::text, $4::text, $5::bigint, $6::text FROM parent",
            &[
                &event.credential_id,
                &event.from_state.map(|s| s.name()),
                &event.to_state.name(),
                &event.operator,
                &super::big(event.at)?,
                &event.note,
            ],
        )?;
        if inserted == 0 {
            return Err(missing_reference(
                &EVENT_CREDENTIAL,
                None,
                event.credential_id,
            ));
        }
        Ok(())
    }

    /// Checks every reference over whole tables: after `vault copy` wrote
    /// them (in this transaction, into an empty or emptied vault).
    pub(crate) fn check_all_references(&self) -> Result<()> {
        for reference in &REFERENCES {
            if let Some(row) = self.query_opt(&dangling_sql(reference), &[])? {
                let c = Columns(&row);
                return Err(missing_reference(reference, Some(c.get(1)?), c.get(0)?));
            }
        }
        Ok(())
    }
}

fn missing_reference(reference: &Reference, child: Option<i64>, parent: i64) -> Error {
    let row = match child {
        Some(id) => format!("{} {id}", reference.child_row),
        None if reference.child_row.starts_with('e') => format!("an {}", reference.child_row),
        None => format!("a {}", reference.child_row),
    };
    Error::MissingReference {
        row,
        parent: format!("{} {parent}", reference.parent_row),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reference_names_its_tables() {
        assert_eq!(
            parents_of("credentials").collect::<Vec<_>>(),
            ["devices", "users"]
        );
        assert_eq!(parents_of("events").collect::<Vec<_>>(), ["credentials"]);
        assert_eq!(parents_of("devices").count(), 0);
        let sql = present_parents_sql(&CREDENTIAL_USER);
        assert!(sql.contains("FROM users p") && sql.contains("FOR KEY SHARE OF p"));
        let sql = dangling_sql(&EVENT_CREDENTIAL);
        assert!(sql.contains("FROM events c") && sql.contains("p.id = c.credential_id"));
    }

    #[test]
    fn a_missing_parent_is_named_with_the_row_that_refers_to_it() {
        let error = missing_reference(&CREDENTIAL_DEVICE, Some(12), 7);
        assert_eq!(
            error.to_string(),
            Error::MissingReference {
                row: "credential 12".into(),
                parent: "device 7".into()
            }
            .to_string()
        );
        assert!(matches!(
            missing_reference(&EVENT_CREDENTIAL, None, 9),
            Error::MissingReference { row, parent } if row == "an event" && parent == "credential 9"
        ));
    }
}
