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

use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::types::Type;

use super::{PgTx, big, big_opt};
use crate::error::Result;
use crate::model::{CredentialRow, Device, Event, User};
use crate::store::same_length;

/// From this many rows on, a batch goes in a binary COPY.
pub(super) const COPY_FROM_ROWS: usize = 64;

/// A column's name and type in a COPY.
type Column = (&'static str, Type);

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

const CREDENTIAL_COLUMNS: [Column; 20] = [
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
];

const EVENT_COLUMNS: [Column; 6] = [
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
        table: &str,
        columns: &[Column],
        items: &[T],
        mut write: impl FnMut(&mut BinaryCopyInWriter<'_>, &T) -> Result<()>,
    ) -> Result<()> {
        let statement = self.statement(&copy_sql(table, columns))?;
        let types: Vec<Type> = columns.iter().map(|(_, t)| t.clone()).collect();
        let mut tx = self.tx.borrow_mut();
        let mut writer = BinaryCopyInWriter::new(tx.copy_in(&statement)?, &types);
        for item in items {
            // An error here drops the writer unfinished: the COPY is
            // aborted, and with it the transaction.
            write(&mut writer, item)?;
        }
        writer.finish()?;
        Ok(())
    }

    pub(super) fn insert_devices(&self, devices: &[Device], macs: &[Vec<u8>]) -> Result<()> {
        if devices.is_empty() {
            return Ok(());
        }
        let macs = same_length(devices, macs)?;
        if devices.len() >= COPY_FROM_ROWS {
            let rows: Vec<(&Device, &Vec<u8>)> = devices.iter().zip(macs).collect();
            return self.copy_rows("devices", &DEVICE_COLUMNS, &rows, |w, (d, mac)| {
                Ok(w.write(&[
                    &d.id,
                    &d.serial,
                    &d.manufacturer,
                    &d.model,
                    &d.kind.name(),
                    &i64::from(d.slots),
                    &big(d.created_at)?,
                    mac,
                ])?)
            });
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
        Ok(())
    }

    pub(super) fn insert_users(&self, users: &[User], macs: &[Vec<u8>]) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let macs = same_length(users, macs)?;
        if users.len() >= COPY_FROM_ROWS {
            let rows: Vec<(&User, &Vec<u8>)> = users.iter().zip(macs).collect();
            return self.copy_rows("users", &USER_COLUMNS, &rows, |w, (u, mac)| {
                Ok(w.write(&[&u.id, &u.upn, &u.display_name, &big(u.created_at)?, mac])?)
            });
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
        let rows: Vec<(&CredentialRow, &Vec<u8>)> = rows.iter().zip(macs).collect();
        self.copy_rows(
            "credentials",
            &CREDENTIAL_COLUMNS,
            &rows,
            |w, (row, mac)| {
                Ok(w.write(&[
                    &row.id,
                    &row.device_id,
                    &row.slot.map(i64::from),
                    &row.kind,
                    &row.algorithm,
                    &i64::from(row.digits),
                    &big_opt(row.period)?,
                    &big_opt(row.t0)?,
                    &big_opt(row.counter)?,
                    &row.issuer,
                    &row.label,
                    &row.state.name(),
                    &row.custody.name(),
                    &row.sealed_secret,
                    &row.user_id,
                    &row.drift_steps,
                    &big_opt(row.purge_after)?,
                    &big(row.created_at)?,
                    &big(row.updated_at)?,
                    mac,
                ])?)
            },
        )
    }

    pub(super) fn insert_events(&self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.copy_rows("events", &EVENT_COLUMNS, events, |w, event| {
            Ok(w.write(&[
                &event.credential_id,
                &event.from_state.map(|s| s.name()),
                &event.to_state.name(),
                &event.operator,
                &big(event.at)?,
                &event.note,
            ])?)
        })
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
        assert_eq!(CREDENTIAL_COLUMNS.last().map(|c| c.0), Some("mac"));
    }
}
