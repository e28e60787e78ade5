//! PostgreSQL's binary COPY format, written into memory.
//!
//! The client's `BinaryCopyInWriter` goes through its runtime once per row
//! (a `block_on`, and a type check of every value): 400,000 times for a
//! 100k import, on a two-core machine where the server needs the other
//! core and is the bottleneck (see BENCHMARKS.md).
//! Here a batch is encoded into one buffer, as plain bytes, and handed to
//! the COPY in large pieces. Each value is written by the method of its
//! column's type, checked against the column list, so a row that does not
//! match the statement's columns is refused before anything is sent.

use ::postgres::types::Type;

use crate::error::{Error, Result};

/// A column's name and type in a COPY.
pub(super) type Column = (&'static str, Type);

/// The file header: signature, flags (no OIDs), no header extension.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The file trailer: a row of -1 fields.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// Rows being encoded for a binary COPY of `columns`.
pub(super) struct CopyRows<'c> {
    columns: &'c [Column],
    buf: Vec<u8>,
    /// The next field of the current row.
    field: usize,
}

impl<'c> CopyRows<'c> {
    pub(super) fn new(columns: &'c [Column]) -> CopyRows<'c> {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(HEADER);
        CopyRows {
            columns,
            buf,
            // No row open yet.
            field: columns.len(),
        }
    }

    /// Starts a row; the one before must be complete.
    pub(super) fn row(&mut self) -> Result<()> {
        self.complete()?;
        self.buf
            .extend_from_slice(&(self.columns.len() as i16).to_be_bytes());
        self.field = 0;
        Ok(())
    }

    /// The next field must be of type `expected`.
    fn next(&mut self, expected: &Type) -> Result<()> {
        match self.columns.get(self.field) {
            Some((_, found)) if found == expected => {
                self.field += 1;
                Ok(())
            }
            Some((name, found)) => Err(Error::Database(format!(
                "COPY column {name} is {found}, and a {expected} was written to it \
                 (a bug in oathdesk)"
            ))),
            None => Err(Error::Database(format!(
                "a COPY row with more than its {} columns (a bug in oathdesk)",
                self.columns.len()
            ))),
        }
    }

    fn value(&mut self, expected: &Type, bytes: Option<&[u8]>) -> Result<()> {
        self.next(expected)?;
        match bytes {
            None => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                let length = i32::try_from(bytes.len()).map_err(|_| {
                    Error::Invalid(format!("a value of {} bytes is too large", bytes.len()))
                })?;
                self.buf.extend_from_slice(&length.to_be_bytes());
                self.buf.extend_from_slice(bytes);
            }
        }
        Ok(())
    }

    pub(super) fn int8(&mut self, value: Option<i64>) -> Result<()> {
        self.value(
            &Type::INT8,
            value.map(i64::to_be_bytes).as_ref().map(|b| &b[..]),
        )
    }

    pub(super) fn text(&mut self, value: Option<&str>) -> Result<()> {
        self.value(&Type::TEXT, value.map(str::as_bytes))
    }

    pub(super) fn bytea(&mut self, value: Option<&[u8]>) -> Result<()> {
        self.value(&Type::BYTEA, value)
    }

    fn complete(&self) -> Result<()> {
        if self.field != self.columns.len() {
            return Err(Error::Database(format!(
                "a COPY row with {} of its {} columns (a bug in oathdesk)",
                self.field,
                self.columns.len()
            )));
        }
        Ok(())
    }

    /// How many bytes are waiting to be sent.
    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The bytes encoded so far (complete rows only), leaving the buffer
    /// empty for the next ones.
    pub(super) fn take(&mut self) -> Result<Vec<u8>> {
        self.complete()?;
        Ok(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(64 * 1024),
        ))
    }

    /// The last bytes, with the trailer.
    pub(super) fn finish(mut self) -> Result<Vec<u8>> {
        self.complete()?;
        self.buf.extend_from_slice(&TRAILER);
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 3] = [
        ("id", Type::INT8),
        ("name", Type::TEXT),
        ("mac", Type::BYTEA),
    ];

    #[test]
    fn rows_are_encoded_as_postgresql_reads_them() {
        let mut rows = CopyRows::new(&COLUMNS);
        rows.row().unwrap();
        rows.int8(Some(258)).unwrap();
        rows.text(Some("é")).unwrap();
        rows.bytea(None).unwrap();
        let bytes = rows.finish().unwrap();
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend([0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        expected.extend([0, 3]); // three fields
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]); // 258 as int8
        expected.extend([0, 0, 0, 2, 0xc3, 0xa9]); // "é" in UTF-8
        expected.extend([0xff, 0xff, 0xff, 0xff]); // NULL
        expected.extend([0xff, 0xff]); // trailer
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_value_of_the_wrong_type_or_a_short_row_is_refused() {
        let mut rows = CopyRows::new(&COLUMNS);
        rows.row().unwrap();
        assert!(rows.text(Some("1")).is_err());
        let mut rows = CopyRows::new(&COLUMNS);
        rows.row().unwrap();
        rows.int8(Some(1)).unwrap();
        assert!(rows.take().is_err());
        assert!(rows.row().is_err());
        let mut rows = CopyRows::new(&COLUMNS[..1]);
        rows.row().unwrap();
        rows.int8(None).unwrap();
        assert!(rows.int8(None).is_err());
    }

    #[test]
    fn taking_the_buffer_keeps_the_stream_whole() {
        let mut rows = CopyRows::new(&COLUMNS[..1]);
        let mut stream = Vec::new();
        for id in 0..3 {
            rows.row().unwrap();
            rows.int8(Some(id)).unwrap();
            stream.extend(rows.take().unwrap());
            assert_eq!(rows.buffered(), 0);
        }
        stream.extend(rows.finish().unwrap());
        let mut whole = CopyRows::new(&COLUMNS[..1]);
        for id in 0..3 {
            whole.row().unwrap();
            whole.int8(Some(id)).unwrap();
        }
        assert_eq!(stream, whole.finish().unwrap());
    }
}
