//! A helpdesk code's write in one round trip on the writer connection.
//!
//! In a group (`postgres/writer.rs`) a later member works inside its own
//! `SAVEPOINT`, so that a member that fails undoes only its own changes.
//! Sent alone, the savepoint is a round trip of its own on the writer
//! connection, where the members take turns: it lengthens the serial part
//! of every helpdesk code by a round trip. The synchronous client cannot
//! send an extended-protocol statement (Parse, Bind, Execute) together with
//! another; a simple query can hold several statements. So each writer
//! connection prepares the release statement by name once (`PREPARE`,
//! outside any transaction), and a later member sends
//! `SAVEPOINT member; EXECUTE oathdesk_release(…)` as one simple query.
//! The first member of a group has no savepoint, and a member that already
//! sent one (it wrote something before) has nothing to add: both use the
//! statement as before.
//!
//! The values travel as literals of digits and hex digits only
//! (`decode('…', 'hex')`, text through `convert_from`), so nothing a value
//! holds can end its literal: no quoting to get wrong.

use ::postgres::types::ToSql;
use ::postgres::{Client, SimpleQueryMessage};

use super::chain::{APPEND_TYPES, append_sql, append_sql_guarded};
use super::{PgTx, Txn};
use crate::error::{Error, Result};

/// The release statement's name on a writer connection.
const NAME: &str = "oathdesk_release";

/// The guarded release's (`chain::append_sql_guarded`), for the writes
/// made together (`postgres/combine.rs`).
const GUARDED: &str = "oathdesk_release_guarded";

/// A parameter's value: bound as a parameter, or written as a literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Int(i64),
    Text(Option<&'a str>),
    Bytes(&'a [u8]),
}

impl Value<'_> {
    /// The value as a parameter of an extended-protocol statement.
    pub(super) fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(value) => value,
            Value::Text(value) => value,
            Value::Bytes(value) => value,
        }
    }

    /// The value as an SQL expression of digits and hex digits.
    pub(super) fn literal(&self) -> String {
        let hex = |bytes: &[u8]| data_encoding::HEXLOWER.encode(bytes);
        match self {
            Value::Int(value) => value.to_string(),
            Value::Text(None) => "NULL".to_owned(),
            Value::Text(Some(text)) => {
                format!(
                    "convert_from(decode('{}', 'hex'), 'UTF8')",
                    hex(text.as_bytes())
                )
            }
            Value::Bytes(bytes) => format!("decode('{}', 'hex')", hex(bytes)),
        }
    }
}

/// Prepares the release statement on a writer connection, outside any
/// transaction: whether it could be (a vault whose tables are not there
/// yet cannot; its members then send their savepoints alone).
pub(super) fn prepare(client: &mut Client) -> bool {
    client
        .batch_execute(&format!(
            "PREPARE {NAME} ({APPEND_TYPES}) AS {}; PREPARE {GUARDED} ({APPEND_TYPES}) AS {}",
            append_sql(),
            append_sql_guarded()
        ))
        .is_ok()
}

/// The guarded release as a statement of a simple query.
pub(super) fn execute_guarded(values: &[Value<'_>]) -> String {
    let literals: Vec<String> = values.iter().map(Value::literal).collect();
    format!("EXECUTE {GUARDED}({})", literals.join(", "))
}

/// The simple query of a later member: its savepoint and the release.
fn savepoint_and_release(values: &[Value<'_>]) -> String {
    let literals: Vec<String> = values.iter().map(Value::literal).collect();
    format!("SAVEPOINT member; EXECUTE {NAME}({})", literals.join(", "))
}

impl PgTx<'_> {
    /// The release as a group member that still owes its savepoint: both
    /// in one round trip, answering the count found and whether it was
    /// below the limit (so the entry appended). `None` where that does not
    /// apply (not a member, the first member, a savepoint already sent, or
    /// no prepared statement on this connection): the caller sends the
    /// statement itself.
    pub(super) fn release_with_savepoint(
        &self,
        values: &[Value<'_>],
    ) -> Result<Option<(u64, bool)>> {
        let mut tx = self.tx.borrow_mut();
        let Txn::Member(member) = &mut *tx else {
            return Ok(None);
        };
        if member.release_prepared != Some(true) || !member.take_owed() {
            return Ok(None);
        }
        // The savepoint counts as sent from here: if the query fails, the
        // member's undo rolls back to it.
        member.releases_with_savepoint += 1;
        let answer = member.client.simple_query(&savepoint_and_release(values))?;
        let row = answer
            .iter()
            .find_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .ok_or_else(|| Error::Database("the helpdesk release answered no row".into()))?;
        let column = |index: usize| -> Result<&str> {
            row.try_get(index).ok().flatten().ok_or_else(|| {
                Error::Database("the helpdesk release answered an empty column".into())
            })
        };
        let found = column(0)?.parse().map_err(|_| {
            Error::Database("the helpdesk release answered a count out of range".into())
        })?;
        Ok(Some((found, column(1)? == "t")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_hold_digits_and_hex_digits_only() {
        let text = "it's \\ a 'quote'); DROP TABLE audit; --";
        let values = [
            Value::Int(-42),
            Value::Text(None),
            Value::Text(Some(text)),
            Value::Text(Some("")),
            Value::Bytes(&[0, 0xff, b'\'']),
        ];
        let literals: Vec<String> = values.iter().map(Value::literal).collect();
        assert_eq!(literals[0], "-42");
        assert_eq!(literals[1], "NULL");
        assert_eq!(
            literals[2],
            format!(
                "convert_from(decode('{}', 'hex'), 'UTF8')",
                data_encoding::HEXLOWER.encode(text.as_bytes())
            )
        );
        assert_eq!(literals[3], "convert_from(decode('', 'hex'), 'UTF8')");
        assert_eq!(literals[4], "decode('00ff27', 'hex')");
        // Inside quotes: hex digits, or the words of the functions.
        for literal in &literals {
            for quoted in literal.split('\'').skip(1).step_by(2) {
                assert!(
                    quoted.chars().all(|c| c.is_ascii_hexdigit())
                        || ["hex", "UTF8"].contains(&quoted),
                    "{literal}"
                );
            }
        }
    }
}
