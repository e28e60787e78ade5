//! The rows of an import, in bulk: binary `COPY … FROM STDIN` for a large
//! batch, one `INSERT … SELECT FROM unnest(…)` for a small one.
//!
//! A binary COPY is the cheapest way into PostgreSQL for many rows: the
//! client streams them without waiting, the server decodes fixed binary
//! fields (no array of each column to build, send and unnest) and, where the
//! table has no row trigger that runs before the insert, writes them a
//! page at a time. It costs two round trips (the COPY's start and its end)
//! where one INSERT costs one, so a batch of a few rows (a token added by
//! hand) still goes in one INSERT. Either way the rows carry the ids the
//! import reserved and their MACs, in the transaction of the import: a COPY
//! that fails half-way (a bad value, a broken connection) aborts the
//! transaction, and nothing of the batch stays.
//!
//! `credentials` and `events` have no foreign keys (migration 14): after
//! writing a batch of them this module proves its rows' parents, one
//! statement per reference (`postgres/references.rs`).

use std::io::Write;

use ::postgres::types::Type;

use super::copy_format::{Column, CopyRows};
use super::references::{CREDENTIAL_DEVICE, CREDENTIAL_USER, EVENT_CREDENTIAL};
use super::{PgTx, big, big_opt};
use crate::error::{Error, Result};
use crate::model::{CredentialRow, Device, Event, User};
use crate::store::same_length;

/// From this many rows on, a batch goes in a binary COPY.
pub(super) const COPY_FROM_ROWS: usize = 64;

/// The COPY is sent in pieces of about this many bytes: large enough
/// that the client's runtime is entered rarely, small enough that the
/// server starts on the rows while the rest are being encoded.
const SEND_AT: usize = 64 * 1024;

const DEVICE_COLUMNS: [Column; 8] = [
    ("id", Type::INT8),
    ("serial", Type::TEXT),
    ("manufacturer", Type::TEXT),
    ("model", Type::TEXT),
    ("kind", Type::TEXT),
    ("slots", Type::INT8),
    ("created_at", Type::INT8),
    ("mac", Type::BYTEA),
];

const USER_COLUMNS: [Column; 5] = [
    ("id", Type::INT8),
    ("upn", Type::TEXT),
    ("display_name", Type::TEXT),
    ("created_at", Type::INT8),
    ("mac", Type::BYTEA),
];

const CREDENTIAL_COLUMNS: [Column; 21] = [
    ("id", Type::INT8),
    ("device_id", Type::INT8),
    ("slot", Type::INT8),
    ("kind", Type::TEXT),
    ("algorithm", Type::TEXT),
    ("digits", Type::INT8),
    ("period", Type::INT8),
    ("t0", Type::INT8),
    ("counter", Type::INT8),
    ("issuer", Type::TEXT),
    ("label", Type::TEXT),
    ("state", Type::TEXT),
    ("custody", Type::TEXT),
    ("sealed_secret", Type::BYTEA),
    ("user_id", Type::INT8),
    ("drift_steps", Type::INT8),
    ("purge_after", Type::INT8),
    ("created_at", Type::INT8),
    ("updated_at", Type::INT8),
    ("mac", Type::BYTEA),
    ("changed_gen", Type::INT8),
];

const EVENT_COLUMNS: [Column; 7] = [
    ("id", Type::INT8),
    ("credential_id", Type::INT8),
    ("from_state", Type::TEXT),
    ("to_state", Type::TEXT),
    ("operator", Type::TEXT),
    ("at", Type::INT8),
    ("note", Type::TEXT),
];

/// `COPY table (columns) FROM STDIN BINARY`.
fn copy_sql(table: &str, columns: &[Column]) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    format!("COPY {table} ({}) FROM STDIN BINARY", names.join(", "))
}

impl PgTx<'_> {
    /// Streams `items` into `table` with a binary COPY, each item's values
    /// written by `write` in the order of `columns`. The statement is
    /// prepared once per connection, like every other.
    fn copy_rows<T>(
        &self,
        table: &'static str,
        columns: &[Column],
        items: &[T],
        mut write: impl FnMut(&mut CopyRows<'_>, &T) -> Result<()>,
    ) -> Result<()> {
        let statement = self.statement(&copy_sql(table, columns))?;
        let mut tx = self.tx.borrow_mut();
        // An error before `finish` drops the writer unfinished: the COPY
        // is aborted, and with it the transaction.
        let mut sink = tx.copy_in(&statement)?;
        let sent = |e: std::io::Error| Error::Database(format!("sending the rows of {table}: {e}"));
        let mut rows = CopyRows::new(columns);
        for item in items {
            rows.row()?;
            write(&mut rows, item)?;
            if rows.buffered() >= SEND_AT {
                sink.write_all(&rows.take()?).map_err(sent)?;
            }
        }
        sink.write_all(&rows.finish()?).map_err(sent)?;
        sink.finish()?;
        self.bulk.borrow_mut().add(table, items.len());
        Ok(())
    }

    pub(super) fn insert_devices(&self, devices: &[Device], macs: &[Vec<u8>]) -> Result<()> {
        if devices.is_empty() {
            return Ok(());
        }
        let macs = same_length(devices, macs)?;
        if devices.len() >= COPY_FROM_ROWS {
            let rows: Vec<(&Device, &Vec<u8>)> = devices.iter().zip(macs).collect();
            self.copy_rows("devices", &DEVICE_COLUMNS, &rows, |w, (d, mac)| {
                w.int8(Some(d.id))?;
                w.text(Some(d.serial.as_str()))?;
                w.text(d.manufacturer.as_deref())?;
                w.text(d.model.as_deref())?;
                w.text(Some(d.kind.name()))?;
                w.int8(Some(i64::from(d.slots)))?;
                w.int8(Some(big(d.created_at)?))?;
                w.bytea(Some(mac.as_slice()))
            })?;
            self.wrote("devices", devices.iter().map(|d| d.id));
            return Ok(());
        }
        let macs: Vec<&[u8]> = macs.iter().map(Vec::as_slice).collect();
        let ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
        let column = |f: fn(&Device) -> Option<String>| devices.iter().map(f).collect::<Vec<_>>();
        let serials = column(|d| Some(d.serial.clone()));
        let manufacturers = column(|d| d.manufacturer.clone());
        let models = column(|d| d.model.clone());
        let kinds = column(|d| Some(d.kind.name().to_owned()));
        let slots: Vec<i64> = devices.iter().map(|d| i64::from(d.slots)).collect();
        let created: Vec<i64> = devices
            .iter()
            .map(|d| big(d.created_at))
            .collect::<Result<_>>()?;
        self.execute(
            "INSERT INTO devices (id, serial, manufacturer, model, kind, slots, created_at, mac) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::bigint[], $7::bigint[], $8::bytea[])",
            &[
                &ids,
                &serials,
                &manufacturers,
                &models,
                &kinds,
                &slots,
                &created,
                &macs,
            ],
        )?;
        self.wrote("devices", ids);
        Ok(())
    }

    pub(super) fn insert_users(&self, users: &[User], macs: &[Vec<u8>]) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let macs = same_length(users, macs)?;
        if users.len() >= COPY_FROM_ROWS {
            let rows: Vec<(&User, &Vec<u8>)> = users.iter().zip(macs).collect();
            self.copy_rows("users", &USER_COLUMNS, &rows, |w, (u, mac)| {
                w.int8(Some(u.id))?;
                w.text(Some(u.upn.as_str()))?;
                w.text(u.display_name.as_deref())?;
                w.int8(Some(big(u.created_at)?))?;
                w.bytea(Some(mac.as_slice()))
            })?;
            self.wrote("users", users.iter().map(|u| u.id));
            return Ok(());
        }
        let macs: Vec<&[u8]> = macs.iter().map(Vec::as_slice).collect();
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let upns: Vec<&str> = users.iter().map(|u| u.upn.as_str()).collect();
        let names: Vec<Option<&str>> = users.iter().map(|u| u.display_name.as_deref()).collect();
        let created: Vec<i64> = users
            .iter()
            .map(|u| big(u.created_at))
            .collect::<Result<_>>()?;
        self.execute(
            "INSERT INTO users (id, upn, display_name, created_at, mac) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bytea[])",
            &[&ids, &upns, &names, &created, &macs],
        )?;
        self.wrote("users", ids);
        Ok(())
    }

    pub(super) fn insert_credentials(
        &self,
        rows: &[CredentialRow],
        macs: &[Vec<u8>],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let macs = same_length(rows, macs)?;
        // One generation of the identify marker for the whole batch,
        // written by the rows' own COPY (migration 11: no insert trigger,
        // which made COPY go row by row and run PL/pgSQL for each); 0 in a
        // transaction that has not taken the writers' lock yet, which
        // publishes the batch when it does (`postgres/late_lock.rs`).
        let generation = self.insert_generation(rows)?;
        let pairs: Vec<(&CredentialRow, &Vec<u8>)> = rows.iter().zip(macs).collect();
        self.copy_rows(
            "credentials",
            &CREDENTIAL_COLUMNS,
            &pairs,
            |w, (row, mac)| {
                w.int8(Some(row.id))?;
                w.int8(row.device_id)?;
                w.int8(row.slot.map(i64::from))?;
                w.text(Some(row.kind.as_str()))?;
                w.text(Some(row.algorithm.as_str()))?;
                w.int8(Some(i64::from(row.digits)))?;
                w.int8(big_opt(row.period)?)?;
                w.int8(big_opt(row.t0)?)?;
                w.int8(big_opt(row.counter)?)?;
                w.text(row.issuer.as_deref())?;
                w.text(row.label.as_deref())?;
                w.text(Some(row.state.name()))?;
                w.text(Some(row.custody.name()))?;
                w.bytea(row.sealed_secret.as_deref())?;
                w.int8(row.user_id)?;
                w.int8(row.drift_steps)?;
                w.int8(big_opt(row.purge_after)?)?;
                w.int8(Some(big(row.created_at)?))?;
                w.int8(Some(big(row.updated_at)?))?;
                w.bytea(Some(mac.as_slice()))?;
                w.int8(Some(generation))
            },
        )?;
        // No foreign keys (migration 14): the rows' devices and users are
        // proven here, before the transaction commits.
        self.check_parents(
            &CREDENTIAL_DEVICE,
            rows.iter().map(|r| (Some(r.id), r.device_id)),
        )?;
        self.check_parents(
            &CREDENTIAL_USER,
            rows.iter().map(|r| (Some(r.id), r.user_id)),
        )?;
        self.wrote("credentials", rows.iter().map(|r| r.id));
        Ok(())
    }

    pub(super) fn insert_events(&self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if events.len() < COPY_FROM_ROWS {
            let ids: Vec<i64> = events.iter().map(|e| e.credential_id).collect();
            let from: Vec<Option<&str>> = events
                .iter()
                .map(|e| e.from_state.map(|s| s.name()))
                .collect();
            let to: Vec<&str> = events.iter().map(|e| e.to_state.name()).collect();
            let operators: Vec<&str> = events.iter().map(|e| e.operator.as_str()).collect();
            let at: Vec<i64> = events.iter().map(|e| big(e.at)).collect::<Result<_>>()?;
            let notes: Vec<Option<&str>> = events.iter().map(|e| e.note.as_deref()).collect();
            self.execute(
                "INSERT INTO events (credential_id, from_state, to_state, operator, at, note) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], \
                 $5::bigint[], $6::text[])",
                &[&ids, &from, &to, &operators, &at, &notes],
            )?;
        } else {
            // Ids in one block, not a `nextval` per row.
            let ids = self.next_ids("events", events.len())?;
            let rows: Vec<(i64, &Event)> = ids.into_iter().zip(events).collect();
            self.copy_rows("events", &EVENT_COLUMNS, &rows, |w, (id, event)| {
                w.int8(Some(*id))?;
                w.int8(Some(event.credential_id))?;
                w.text(event.from_state.map(|s| s.name()))?;
                w.text(Some(event.to_state.name()))?;
                w.text(Some(event.operator.as_str()))?;
                w.int8(Some(big(event.at)?))?;
                w.text(event.note.as_deref())
            })?;
        }
        // No foreign key (migration 14): the events' credentials are
        // proven here.
        self.check_parents(
            &EVENT_CREDENTIAL,
            events.iter().map(|e| (None, Some(e.credential_id))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_names_its_columns_in_the_order_values_are_written() {
        assert_eq!(
            copy_sql("users", &USER_COLUMNS),
            "COPY users (id, upn, display_name, created_at, mac) FROM STDIN BINARY"
        );
        assert_eq!(CREDENTIAL_COLUMNS.last().map(|c| c.0), Some("changed_gen"));
    }
}
