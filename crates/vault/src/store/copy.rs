//! Moving a vault between databases, row for row.
//!
//! Secrets stay sealed: a sealed secret is bound to its credential id and
//! parameters, and the audit chain to every field of every entry, so the
//! copy carries each row's values unchanged (ids included) and never needs
//! to open anything. Which tables there are, their columns and the order
//! that foreign keys demand are read from the target's catalog, so tables
//! added by later migrations are copied without a change here.
//!
//! [`Session::copy_to`](crate::Session::copy_to) wraps this in the checks
//! around it (the source's chain first, the target's chain after).
//!
//! Rows stream from the source's snapshot into the target's write
//! transaction: SQLite takes prepared inserts, PostgreSQL a binary `COPY`.

use std::collections::{BTreeMap, BTreeSet};

use ::postgres::binary_copy::BinaryCopyInWriter;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::error::{Error, Result};
use crate::store::any::AnyTx;
use crate::store::postgres::references;

/// One value of a row, in the few types vault tables use.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }

    pub(crate) fn from_sqlite(value: rusqlite::types::ValueRef<'_>, column: &str) -> Result<Value> {
        use rusqlite::types::ValueRef;
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Text(text) => {
                Value::Text(String::from_utf8(text.to_vec()).map_err(|_| {
                    Error::Database(format!("column {column} holds text that is not UTF-8"))
                })?)
            }
            ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
            ValueRef::Real(_) => {
                return Err(Error::Database(format!(
                    "column {column} holds a floating-point number, which no vault table has"
                )));
            }
        })
    }

    fn from_postgres(row: &::postgres::Row, index: usize) -> Result<Value> {
        let column = &row.columns()[index];
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Integer),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(index)?
                .map(|n| Value::Integer(n.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(index)?
                .map(|n| Value::Integer(n.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(index)?
                .map(|b| Value::Integer(b.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(index)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob),
            ref other => {
                return Err(Error::Database(format!(
                    "column {} is of type {other}, which the copy does not know",
                    column.name()
                )));
            }
        };
        Ok(value.unwrap_or(Value::Null))
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

/// PostgreSQL columns are typed: each value is written as its column's
/// type, or refused if it does not fit.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Integer(n), &Type::INT8) => n.to_sql(ty, out),
            (Value::Integer(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            (Value::Integer(n), &Type::INT2) => i16::try_from(*n)?.to_sql(ty, out),
            (Value::Integer(n), &Type::BOOL) => (*n != 0).to_sql(ty, out),
            (Value::Text(text), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
                text.to_sql(ty, out)
            }
            (Value::Blob(bytes), &Type::BYTEA) => bytes.to_sql(ty, out),
            (value, ty) => Err(format!("{} does not fit a {ty} column", value.kind()).into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A vault table as a database has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Table {
    pub name: String,
    pub columns: Vec<String>,
    /// Tables its foreign keys point to.
    pub parents: BTreeSet<String>,
}

/// An identifier quoted for both databases.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The vault's tables (not the migration bookkeeping, nor the identify
/// marker's tables, which the target's own triggers fill as the
/// credentials arrive, nor the staged imports' tables (`import_*`: ranges
/// only the source's identify generations give a meaning, and records
/// still being written or moved), parents before children. A SQLite vault
/// with an import being written, or whose published records are still
/// being moved into `records`, is refused: its hidden rows would arrive as
/// visible ones, its published ones would be missed.
pub(crate) fn tables(tx: &AnyTx<'_>) -> Result<Vec<Table>> {
    let mut found = Vec::new();
    match tx {
        AnyTx::Sqlite(t) => {
            if t.hidden()?.any() || !t.overlay()?.is_empty() {
                return Err(Error::Refused(
                    "an import into this vault is being written: copy it once the import is done"
                        .into(),
                ));
            }
            let tx = &t.tx;
            let names: Vec<String> = tx
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations' \
                     AND name NOT LIKE 'import\\_%' ESCAPE '\\' \
                     AND name NOT LIKE 'identify\\_%' ESCAPE '\\'",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for name in names {
                let columns = tx
                    .prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid")?
                    .query_map([&name], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let parents = tx
                    .prepare("SELECT \"table\" FROM pragma_foreign_key_list(?)")?
                    .query_map([&name], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                found.push(Table {
                    name,
                    columns,
                    parents,
                });
            }
        }
        AnyTx::Postgres(t) => {
            let mut tx = t.tx.borrow_mut();
            let names: Vec<String> = tx
                .query(
                    "SELECT relname::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace \
                     AND relkind = 'r' AND relname <> 'schema_migrations' \
                     AND relname NOT LIKE 'import\\_%' AND relname NOT LIKE 'identify\\_%'",
                    &[],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for name in names {
                let relation = quote(&name);
                let columns = tx
                    .query(
                        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass \
                         AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                        &[&relation],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let mut parents: BTreeSet<String> = tx
                    .query(
                        "SELECT (SELECT relname::text FROM pg_class WHERE oid = confrelid) \
                         FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype = 'f'",
                        &[&relation],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                // The references migration 14 keeps without foreign keys.
                parents.extend(references::parents_of(&name).map(str::to_owned));
                found.push(Table {
                    name,
                    columns,
                    parents,
                });
            }
        }
    }
    order_by_foreign_keys(found)
}

/// Parents before children; ties by name, so the order is stable.
fn order_by_foreign_keys(tables: Vec<Table>) -> Result<Vec<Table>> {
    let mut pending: BTreeMap<String, Table> =
        tables.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut ordered: Vec<Table> = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .values()
            .find(|t| {
                t.parents
                    .iter()
                    .all(|p| *p == t.name || !pending.contains_key(p))
            })
            .map(|t| t.name.clone())
            .ok_or_else(|| {
                Error::Database(format!(
                    "the foreign keys of tables {} form a cycle",
                    pending.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
        ordered.push(pending.remove(&ready).expect("found above"));
    }
    Ok(ordered)
}

/// Rows in a table.
pub(crate) fn count(tx: &AnyTx<'_>, table: &str) -> Result<u64> {
    let sql = format!("SELECT count(*) FROM {}", quote(table));
    let n: i64 = match tx {
        AnyTx::Sqlite(t) => t.tx.query_row(&sql, [], |r| r.get(0))?,
        AnyTx::Postgres(t) => t.tx.borrow_mut().query_one(&sql, &[])?.get(0),
    };
    Ok(n as u64)
}

/// Empties the tables, children first.
pub(crate) fn clear(tx: &AnyTx<'_>, tables: &[Table]) -> Result<()> {
    for table in tables.iter().rev() {
        let sql = format!("DELETE FROM {}", quote(&table.name));
        match tx {
            AnyTx::Sqlite(t) => {
                t.tx.execute(&sql, [])?;
            }
            AnyTx::Postgres(t) => {
                t.tx.borrow_mut().execute(&sql, &[])?;
            }
        }
    }
    Ok(())
}

/// Streams every row of `table` from `source` to `sink`; returns how many.
fn read_rows(
    source: &AnyTx<'_>,
    table: &Table,
    sink: &mut dyn FnMut(&[Value]) -> Result<()>,
) -> Result<u64> {
    let sql = format!("SELECT {} FROM {}", column_list(table), quote(&table.name));
    let mut rows = 0u64;
    let mut values = Vec::with_capacity(table.columns.len());
    match source {
        AnyTx::Sqlite(t) => {
            let mut statement = t.tx.prepare(&sql)?;
            let mut result = statement.query([])?;
            while let Some(row) = result.next()? {
                values.clear();
                for (index, column) in table.columns.iter().enumerate() {
                    values.push(Value::from_sqlite(row.get_ref(index)?, column)?);
                }
                sink(&values)?;
                rows += 1;
            }
        }
        AnyTx::Postgres(t) => {
            let mut tx = t.tx.borrow_mut();
            let mut result =
                tx.query_raw(sql.as_str(), std::iter::empty::<&(dyn ToSql + Sync)>())?;
            while let Some(row) = result.next()? {
                values.clear();
                for index in 0..table.columns.len() {
                    values.push(Value::from_postgres(&row, index)?);
                }
                sink(&values)?;
                rows += 1;
            }
        }
    }
    Ok(rows)
}

/// Copies one table's rows; returns how many.
pub(crate) fn copy_table(source: &AnyTx<'_>, target: &AnyTx<'_>, table: &Table) -> Result<u64> {
    let columns = column_list(table);
    let name = quote(&table.name);
    let into_row = |e: &dyn std::fmt::Display| {
        Error::Database(format!("copying a row of {}: {e}", table.name))
    };
    match target {
        AnyTx::Sqlite(t) => {
            let placeholders = vec!["?"; table.columns.len()].join(", ");
            let mut insert = t.tx.prepare(&format!(
                "INSERT INTO {name} ({columns}) VALUES ({placeholders})"
            ))?;
            read_rows(source, table, &mut |row| {
                insert
                    .execute(rusqlite::params_from_iter(row))
                    .map_err(|e| into_row(&e))?;
                Ok(())
            })
        }
        AnyTx::Postgres(t) => {
            let mut tx = t.tx.borrow_mut();
            let types: Vec<Type> = tx
                .prepare(&format!("SELECT {columns} FROM {name}"))?
                .columns()
                .iter()
                .map(|c| c.type_().clone())
                .collect();
            let mut writer = BinaryCopyInWriter::new(
                tx.copy_in(&format!("COPY {name} ({columns}) FROM STDIN BINARY"))?,
                &types,
            );
            let rows = read_rows(source, table, &mut |row| {
                let values: Vec<&(dyn ToSql + Sync)> =
                    row.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                writer
                    .write(&values)
                    .map_err(|e| into_row(&crate::store::postgres::describe(&e)))
            })?;
            writer.finish()?;
            Ok(rows)
        }
    }
}

/// Proves the references PostgreSQL keeps without foreign keys (migration
/// 14) over the copied tables, before the copy commits: every credential's
/// device and user, every event's credential. SQLite's foreign keys did it
/// row by row.
pub(crate) fn check_references(tx: &AnyTx<'_>) -> Result<()> {
    match tx {
        AnyTx::Postgres(t) => t.check_all_references(),
        AnyTx::Sqlite(_) => Ok(()),
    }
}

/// After rows came in with their ids: PostgreSQL's identity columns go on
/// from the highest id (SQLite's rowids do so by themselves).
pub(crate) fn continue_ids(tx: &AnyTx<'_>) -> Result<()> {
    let AnyTx::Postgres(t) = tx else {
        return Ok(());
    };
    let mut tx = t.tx.borrow_mut();
    let identities: Vec<(String, String)> = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (table, column) in identities {
        tx.query_one(
            &format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max({}), 0) + 1, false) FROM {}",
                quote(&column),
                quote(&table)
            ),
            &[&quote(&table), &column],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: vec!["id".into()],
            parents: parents.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn parents_come_first() {
        let ordered = order_by_foreign_keys(vec![
            table("events", &["credentials"]),
            table("credentials", &["devices", "users"]),
            table("users", &[]),
            table("devices", &[]),
            table("tree", &["tree"]),
        ])
        .unwrap();
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["devices", "tree", "users", "credentials", "events"]);
        let err = order_by_foreign_keys(vec![table("a", &["b"]), table("b", &["a"])]).unwrap_err();
        assert!(err.to_string().contains("form a cycle"), "{err}");
    }

    #[test]
    fn identifiers_are_quoted_for_both_databases() {
        assert_eq!(quote("user"), "\"user\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }
}
