//! A credential's drift sightings in one signed row (`drift_series`), so
//! that the fleet drift report reads and checks one row per token instead
//! of one per sighting (100,000 rather than 2,000,000 for a large fleet).
//!
//! The fit is Theil–Sen (the median of the slopes between every pair of
//! sightings), not least squares: running sums cannot give it, so the row
//! carries every sighting's moment and step offset, and the source that
//! orders two sightings of the same second as the sightings table does.
//! It is rewritten from the credential's checked sightings in the
//! transaction that adds one, and `vault verify` checks that it still says
//! what they say. A token's plot and `vault verify` read the sightings.
//!
//! Layout: a version byte, then per sighting, in the store's order (time,
//! then source), the time (u64) and step offset (i64), big-endian, and a
//! source byte.

use crate::error::{Error, Result};
use crate::store::SightingRow;

const VERSION: u8 = 1;
const POINT: usize = 8 + 8 + 1;

/// What the report needs of one sighting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub at: u64,
    pub offset_steps: i64,
}

/// The sources a series can name, by their byte.
const SOURCES: [(u8, &str); 3] = [(1, "deliver"), (2, "check"), (3, "identify")];

fn source_byte(source: &str) -> Result<u8> {
    SOURCES
        .iter()
        .find(|(_, name)| *name == source)
        .map(|(byte, _)| *byte)
        .ok_or_else(|| Error::Invalid(format!("'{source}' is not a source of drift sightings")))
}

fn source_name(byte: u8) -> Option<&'static str> {
    SOURCES.iter().find(|(b, _)| *b == byte).map(|(_, n)| *n)
}

/// One credential's sightings, in the store's order, as a series.
pub fn encode(sightings: &[SightingRow]) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(1 + sightings.len() * POINT);
    bytes.push(VERSION);
    for row in sightings {
        bytes.extend_from_slice(&row.at.to_be_bytes());
        bytes.extend_from_slice(&row.offset_steps.to_be_bytes());
        bytes.push(source_byte(&row.source)?);
    }
    Ok(bytes)
}

fn malformed(credential_id: i64) -> Error {
    Error::Database(format!(
        "the drift series of credential {credential_id} is not one this oathdesk wrote"
    ))
}

/// The points of a series, as `f` sees them; an error for bytes this
/// oathdesk did not write (checked before: a signed series is well formed).
fn each(credential_id: i64, bytes: &[u8], mut f: impl FnMut(u64, i64, u8)) -> Result<()> {
    let Some((&VERSION, points)) = bytes.split_first() else {
        return Err(malformed(credential_id));
    };
    if points.len() % POINT != 0 {
        return Err(malformed(credential_id));
    }
    for point in points.chunks_exact(POINT) {
        let at = u64::from_be_bytes(point[..8].try_into().expect("8 bytes"));
        let offset = i64::from_be_bytes(point[8..16].try_into().expect("8 bytes"));
        f(at, offset, point[16]);
    }
    Ok(())
}

/// What the report reads of a series: the moments and offsets.
pub fn observations(credential_id: i64, bytes: &[u8]) -> Result<Vec<Observation>> {
    let mut out = Vec::with_capacity(bytes.len() / POINT);
    each(credential_id, bytes, |at, offset_steps, _| {
        out.push(Observation { at, offset_steps })
    })?;
    Ok(out)
}

/// A series as the sightings it stands for (what `vault verify` compares).
pub fn sightings(credential_id: i64, bytes: &[u8]) -> Result<Vec<SightingRow>> {
    let mut out = Vec::with_capacity(bytes.len() / POINT);
    let mut unknown = false;
    each(
        credential_id,
        bytes,
        |at, offset_steps, source| match source_name(source) {
            Some(name) => out.push(SightingRow {
                credential_id,
                at,
                source: name.to_owned(),
                offset_steps,
            }),
            None => unknown = true,
        },
    )?;
    if unknown {
        return Err(malformed(credential_id));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: u64, source: &str, offset_steps: i64) -> SightingRow {
        SightingRow {
            credential_id: 7,
            at,
            source: source.into(),
            offset_steps,
        }
    }

    #[test]
    fn a_series_gives_back_its_sightings_in_order() {
        let rows = vec![
            row(1_700_000_000, "check", -2),
            row(1_700_000_000, "deliver", 0),
            row(1_800_000_000, "identify", i64::MIN),
            row(u64::MAX, "check", i64::MAX),
        ];
        let bytes = encode(&rows).unwrap();
        assert_eq!(bytes.len(), 1 + 4 * POINT);
        assert_eq!(sightings(7, &bytes).unwrap(), rows);
        let seen: Vec<(u64, i64)> = observations(7, &bytes)
            .unwrap()
            .iter()
            .map(|o| (o.at, o.offset_steps))
            .collect();
        assert_eq!(
            seen,
            [
                (1_700_000_000, -2),
                (1_700_000_000, 0),
                (1_800_000_000, i64::MIN),
                (u64::MAX, i64::MAX)
            ]
        );
        assert_eq!(encode(&[]).unwrap(), [VERSION]);
        assert!(observations(7, &[VERSION]).unwrap().is_empty());
    }

    #[test]
    fn bytes_it_did_not_write_are_refused() {
        let bytes = encode(&[row(5, "check", 1)]).unwrap();
        assert!(observations(7, &bytes[..bytes.len() - 1]).is_err());
        assert!(observations(7, &[]).is_err());
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert!(observations(7, &other_version).is_err());
        let mut unknown_source = bytes.clone();
        *unknown_source.last_mut().unwrap() = 9;
        assert!(sightings(7, &unknown_source).is_err());
        assert!(matches!(
            encode(&[row(5, "guess", 1)]),
            Err(Error::Invalid(m)) if m.contains("guess")
        ));
    }
}
