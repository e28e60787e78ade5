//! A helpdesk code's write as a prepared statement and literal values.
//!
//! The writes made together (`postgres/combine.rs`) send several releases
//! in one simple query — the synchronous client cannot send several
//! extended-protocol statements (Parse, Bind, Execute) at once, and a
//! simple query can hold several statements. So each writer connection
//! prepares the guarded release by name once (`PREPARE`, outside any
//! transaction), and the batch is `EXECUTE oathdesk_release_guarded(…)`
//! per release, with its values written out.
//!
//! The values travel as literals that hold no quote and no character a
//! value chose: bytes as `'\x…'` (hex digits), text as a Unicode-escape
//! string `U&'…'` whose letters and digits are themselves and every other
//! character a `\+XXXXXX` escape — so nothing a value holds can end its
//! literal: no quoting to get wrong. Both need `standard_conforming_strings`
//! (set on every connection); they are constants, where `decode(…)` and
//! `convert_from(…)` were function calls the server looked up and ran for
//! each value of each code.

use std::fmt::Write as _;

use ::postgres::Client;
use ::postgres::types::ToSql;

use super::chain::{APPEND_TYPES, append_sql_guarded};

/// The guarded release's name (`chain::append_sql_guarded`) on a writer
/// connection.
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
    #[cfg(test)]
    pub(super) fn literal(&self) -> String {
        let mut literal = String::new();
        self.push_literal(&mut literal);
        literal
    }

    /// Appends the value as an SQL expression of digits and hex digits,
    /// allocating nothing of its own: a batch's statement holds 26 values
    /// per code, and a text value an escape per character that is not a
    /// letter or a digit.
    pub(super) fn push_literal(&self, out: &mut String) {
        match self {
            Value::Int(value) => {
                let _ = write!(out, "{value}");
            }
            Value::Text(None) => out.push_str("NULL"),
            Value::Text(Some(text)) => {
                out.reserve(text.len() + 4);
                out.push_str("U&'");
                for c in text.chars() {
                    if c.is_ascii_alphanumeric() {
                        out.push(c);
                    } else {
                        // A code point fits the escape's six hex digits.
                        out.push_str("\\+");
                        let [_, point @ ..] = u32::from(c).to_be_bytes();
                        data_encoding::HEXUPPER.encode_append(&point, out);
                    }
                }
                out.push('\'');
            }
            Value::Bytes(bytes) => {
                out.push_str("'\\x");
                data_encoding::HEXLOWER.encode_append(bytes, out);
                out.push('\'');
            }
        }
    }
}

/// Prepares the guarded release on a writer connection, outside any
/// transaction: whether it could be (a vault whose tables are not there
/// yet cannot; its releases are then sent one by one).
pub(super) fn prepare(client: &mut Client) -> bool {
    client
        .batch_execute(&format!(
            "PREPARE {GUARDED} ({APPEND_TYPES}) AS {}",
            append_sql_guarded()
        ))
        .is_ok()
}

/// Appends the guarded release as a statement of a simple query.
pub(super) fn push_execute_guarded(out: &mut String, values: &[Value<'_>]) {
    out.push_str("EXECUTE ");
    out.push_str(GUARDED);
    out.push('(');
    for (at, value) in values.iter().enumerate() {
        if at > 0 {
            out.push_str(", ");
        }
        value.push_literal(out);
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_hold_no_quote_and_no_character_a_value_chose() {
        let text = "it's \\ a 'quote'); DROP TABLE audit; -- é 🔑";
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
        assert!(
            literals[2].starts_with("U&'it\\+000027s\\+000020"),
            "{}",
            literals[2]
        );
        assert_eq!(literals[3], "U&''");
        assert_eq!(literals[4], "'\\x00ff27'");
        // Inside the quotes: letters, digits, and the escapes' `\` and `+`.
        for literal in &literals {
            let quoted: Vec<&str> = literal.split('\'').collect();
            assert!(quoted.len() == 1 || quoted.len() == 3, "{literal}");
            if let Some(inside) = quoted.get(1) {
                assert!(
                    inside
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '\\' || c == '+'),
                    "{literal}"
                );
            }
        }
    }

    #[test]
    fn a_release_is_one_execute_of_its_values() {
        let mut sql = String::from("SAVEPOINT batch; ");
        let values = [
            Value::Int(-42),
            Value::Text(None),
            Value::Text(Some("a b")),
            Value::Bytes(&[0, 0xff]),
        ];
        push_execute_guarded(&mut sql, &values);
        assert_eq!(
            sql,
            "SAVEPOINT batch; EXECUTE oathdesk_release_guarded(-42, NULL, U&'a\\+000020b', '\\x00ff')"
        );
        // The escape of a character beyond the Basic Multilingual Plane.
        assert_eq!(Value::Text(Some("🔑")).literal(), "U&'\\+01F511'");
    }

    /// What the server makes of the literals is the values themselves.
    #[test]
    fn the_server_reads_the_literals_as_the_values() {
        let config: ::postgres::Config = crate::testing::database_url().parse().unwrap();
        // A connection as the writer's is set up (standard_conforming_strings).
        let mut client = super::super::session(&config, None, "test").unwrap();
        for text in [
            "",
            "plain",
            "it's \\ a 'quote'); DROP TABLE audit; --",
            "U&'\\+000041' \\x41 $1 $$ E'\\n'",
            "line\nbreak\ttab",
            "é ü ß 中文 🔑",
        ] {
            let sql = format!("SELECT {}::text", Value::Text(Some(text)).literal());
            let row = client.query_one(&sql, &[]).unwrap();
            assert_eq!(row.get::<_, String>(0), text, "{sql}");
        }
        let bytes: &[u8] = &[0, 1, 0x27, 0x5c, 0xff];
        let sql = format!("SELECT {}::bytea", Value::Bytes(bytes).literal());
        let row = client.query_one(&sql, &[]).unwrap();
        assert_eq!(row.get::<_, Vec<u8>>(0), bytes);
    }
}
