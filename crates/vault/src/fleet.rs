//! The fleet's clocks and batteries, as pure functions over rows: which
//! tokens drift toward the edge of a verifier's window and when they fall
//! out ([`drift_report`]), which reach the end of their battery life
//! ([`eol_report`]), and the battery table with its sources
//! ([`BATTERY_LIFE`]). The session reads the rows (checking their
//! signatures) and calls these; the bench calls them directly.
//!
//! A clock that oathdesk set ([`ClockSync`]: `device sync-time`, or a
//! configuration write, which sets it too) starts the token's drift history
//! again: the fit uses only the sightings from then on, since the older
//! ones forecast a drift the token no longer has.

use std::collections::HashMap;

use oathdesk_otp::drift::{self, Standing};
use oathdesk_otp::{TimeStep, Verifier};
use serde::{Deserialize, Serialize};

use crate::model::{CredentialRow, DeviceKind, State};
use crate::session::reference_of;
use crate::store::SightingRow;

/// Battery life of a family of tokens, with where the figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BatteryLife {
    /// The manufacturer as the inventory spells it (case-insensitive);
    /// `None` matches any.
    pub manufacturer: Option<&'static str>,
    /// A model prefix (case-insensitive); `None` matches any model.
    pub model_prefix: Option<&'static str>,
    /// The low and high end of the stated life, in years. Forecasts use
    /// the low end: a token replaced a little early costs less than one
    /// that goes blank in a user's hand.
    pub years_low: u32,
    pub years_high: u32,
    /// Where the figure comes from.
    pub source: &'static str,
}

/// The battery table, most specific first; the last row matches anything.
pub const BATTERY_LIFE: &[BatteryLife] = &[
    BatteryLife {
        manufacturer: Some("Token2"),
        model_prefix: None,
        years_low: 5,
        years_high: 8,
        source: "Token2 openT2OTP firmware README: \"Battery lasts 5–8 years\" \
                 (shared/specs/landscape.md §2.2, §9 item 4)",
    },
    BatteryLife {
        manufacturer: None,
        model_prefix: None,
        years_low: 5,
        years_high: 8,
        source: "no figure on file for this maker: the Token2 figure (5–8 years) is assumed",
    },
];

/// The battery row for a token.
pub fn battery_life(manufacturer: Option<&str>, model: Option<&str>) -> &'static BatteryLife {
    let matches = |wanted: Option<&str>, have: Option<&str>, prefix: bool| match (wanted, have) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(w), Some(h)) => {
            let (w, h) = (w.to_ascii_lowercase(), h.to_ascii_lowercase());
            if prefix { h.starts_with(&w) } else { h == w }
        }
    };
    BATTERY_LIFE
        .iter()
        .find(|b| {
            matches(b.manufacturer, manufacturer, false) && matches(b.model_prefix, model, true)
        })
        .unwrap_or(&BATTERY_LIFE[BATTERY_LIFE.len() - 1])
}

/// Seconds in a year of 365.2425 days, as whole seconds.
const YEAR: u64 = 31_556_952;

/// When a token's battery is due, from the moment its credential entered
/// the vault (stock, or the burn of a programmable one: the earliest date
/// the vault has; the cell ran before, so this errs late by the shelf time).
pub fn battery_due(entered: u64, life: &BatteryLife) -> u64 {
    entered.saturating_add(u64::from(life.years_low) * YEAR)
}

/// A token's clock set by oathdesk (a signed record per credential, the
/// latest): sightings from before it say nothing of the clock since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSync {
    pub credential_id: i64,
    /// When the clock was set (the host's clock, Unix seconds).
    pub synced_at: u64,
    /// What the token's clock was set to: `synced_at`, or another time
    /// given on purpose (`sync-time --at`).
    pub set_to: u64,
    pub operator: String,
    /// The write that set it: `device.clock` or `device.config`.
    pub via: String,
}

impl ClockSync {
    /// The token's offset just after the write, in seconds.
    pub fn offset_s(&self) -> f64 {
        self.set_to as f64 - self.synced_at as f64
    }

    /// Whether a sighting at `at` counts: one in the second of the write or
    /// later (a check right after `sync-time` is the new clock's first).
    pub fn covers(&self, at: u64) -> bool {
        at >= self.synced_at
    }
}

/// What the drift report needs of a credential's hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hardware {
    pub kind: DeviceKind,
}

/// One token's line of the drift report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftLine {
    pub credential: String,
    pub credential_id: i64,
    pub serial: Option<String>,
    pub user: Option<String>,
    pub model: Option<String>,
    pub device_kind: String,
    /// Sightings the fit used: since the clock was last set, if it was.
    pub sightings: usize,
    /// When oathdesk last set the token's clock, if it did.
    pub resynced_at: Option<u64>,
    /// Sightings from before that, left out of the fit.
    pub sightings_before_resync: usize,
    /// `re-synced on 2026-12-04, 3 sightings since` (none if never set).
    pub resync_note: Option<String>,
    /// Days between the first and the last sighting.
    pub span_days: u64,
    /// Seconds gained per year (negative: losing); `None` without a rate.
    pub rate_s_per_year: Option<f64>,
    /// The estimated offset now, in seconds.
    pub offset_s: f64,
    /// The window's edge the clock drifts toward, in seconds.
    pub edge_s: f64,
    /// `outside`, `near-edge`, `inside`, `no-rate` or `unsupported`.
    pub standing: &'static str,
    /// When it falls outside the window, if it is forecast to.
    pub outside_at: Option<u64>,
    pub advice: String,
}

/// The drift report of a fleet.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftReport {
    pub at: u64,
    pub verifier: String,
    pub horizon_days: u64,
    /// Time-based credentials with no sighting yet.
    pub without_sightings: usize,
    /// Worst first: outside, near the edge (soonest first), inside, no rate.
    pub tokens: Vec<DriftLine>,
}

/// What to do about a token that is or will be outside.
pub fn advice(standing: &str, kind: DeviceKind) -> String {
    match standing {
        "outside" | "near-edge" => match kind {
            DeviceKind::MultiProfile => "re-sync its clock: oathdesk device sync-time".into(),
            DeviceKind::SingleProfile => "re-sync its clock with oathdesk device sync-time \
                 (most single-profile models clear the seed when the time is set: burn it again)"
                .into(),
            DeviceKind::Classic | DeviceKind::Unknown => {
                "replace it: a classic token's clock cannot be set".into()
            }
        },
        "no-rate" => "check it again later: one sighting gives no rate".into(),
        "unsupported" => "the verifier does not take this token's period".into(),
        _ => "nothing to do".into(),
    }
}

/// The drift report: one line per time-based credential with sightings
/// or a clock set by oathdesk (`resyncs`, by credential id). `sightings`
/// must be sorted by credential (as the store returns them).
pub fn drift_report(
    credentials: &[CredentialRow],
    hardware: &HashMap<i64, Hardware>,
    sightings: &[SightingRow],
    resyncs: &HashMap<i64, ClockSync>,
    verifier: Verifier,
    horizon_s: u64,
    now: u64,
) -> DriftReport {
    let mut by_credential: HashMap<i64, &[SightingRow]> = HashMap::new();
    let mut start = 0;
    for end in 1..=sightings.len() {
        if end == sightings.len() || sightings[end].credential_id != sightings[start].credential_id
        {
            by_credential.insert(sightings[start].credential_id, &sightings[start..end]);
            start = end;
        }
    }
    let mut without = 0;
    let mut tokens = Vec::new();
    for row in credentials {
        if row.kind != "totp" || matches!(row.state, State::Retired | State::Lost) {
            continue;
        }
        let seen = by_credential.get(&row.id).copied().unwrap_or_default();
        let resync = resyncs.get(&row.id);
        if seen.is_empty() && resync.is_none() {
            without += 1;
            continue;
        }
        let Some(line) = drift_line(row, hardware, seen, resync, verifier, horizon_s, now) else {
            continue;
        };
        tokens.push(line);
    }
    let rank = |l: &DriftLine| match l.standing {
        "outside" => 0,
        "near-edge" => 1,
        "inside" => 2,
        _ => 3,
    };
    tokens.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(
                a.outside_at
                    .unwrap_or(u64::MAX)
                    .cmp(&b.outside_at.unwrap_or(u64::MAX)),
            )
            .then(a.credential.cmp(&b.credential))
    });
    DriftReport {
        at: now,
        verifier: verifier.to_string(),
        horizon_days: horizon_s / 86_400,
        without_sightings: without,
        tokens,
    }
}

/// What the report says of a clock oathdesk set.
pub fn resync_note(resync: &ClockSync, since: usize) -> String {
    let date: String = crate::audit::rfc3339(resync.synced_at)
        .chars()
        .take(10)
        .collect();
    format!(
        "re-synced on {date}, {since} sighting{} since",
        if since == 1 { "" } else { "s" }
    )
}

fn drift_line(
    row: &CredentialRow,
    hardware: &HashMap<i64, Hardware>,
    seen: &[SightingRow],
    resync: Option<&ClockSync>,
    verifier: Verifier,
    horizon_s: u64,
    now: u64,
) -> Option<DriftLine> {
    let step = TimeStep::new(row.period?, row.t0.unwrap_or(0)).ok()?;
    let points: Vec<(u64, f64)> = seen
        .iter()
        .filter(|s| resync.is_none_or(|r| r.covers(s.at)))
        .map(|s| (s.at, drift::clock_offset(step, s.at, s.offset_steps)))
        .collect();
    let fit = drift::fit(&points);
    // The latest offset known: the last sighting, else the clock as set.
    let last = match points.iter().max_by_key(|p| p.0) {
        Some(point) => *point,
        None => resync.map(|r| (r.synced_at, r.offset_s()))?,
    };
    let kind = row
        .device_id
        .and_then(|id| hardware.get(&id))
        .map_or(DeviceKind::Unknown, |h| h.kind);
    let (standing, forecast) = match verifier.window(step.period()) {
        Ok(window) => {
            let f = drift::forecast(fit.as_ref(), last.1, step.period(), window, now, horizon_s);
            (f.standing.name(), Some(f))
        }
        Err(_) => ("unsupported", None),
    };
    let first = points.iter().map(|p| p.0).min().unwrap_or(last.0);
    let advice = if points.is_empty() && standing != "outside" {
        "check it again later: no sighting since its clock was set".to_owned()
    } else {
        advice(standing, kind)
    };
    Some(DriftLine {
        credential: reference_of(row.serial.as_deref(), row.slot, row.id),
        credential_id: row.id,
        serial: row.serial.clone(),
        user: row.upn.clone(),
        model: row.model.clone(),
        device_kind: kind.name().to_owned(),
        sightings: points.len(),
        resynced_at: resync.map(|r| r.synced_at),
        sightings_before_resync: seen.len() - points.len(),
        resync_note: resync.map(|r| resync_note(r, points.len())),
        span_days: (last.0 - first) / 86_400,
        rate_s_per_year: fit.map(|f| round1(f.rate_s_per_year)),
        offset_s: round1(forecast.map_or(last.1, |f| f.offset_s)),
        edge_s: forecast.map_or(0.0, |f| f.edge_s),
        standing,
        outside_at: forecast.and_then(|f| {
            matches!(f.standing, Standing::Near | Standing::Inside)
                .then_some(f.outside_at)
                .flatten()
        }),
        advice,
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One token due for replacement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EolLine {
    pub credential: String,
    pub serial: Option<String>,
    pub user: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub state: State,
    /// When it entered the vault (stock or burn date).
    pub entered: u64,
    /// When its battery reaches the low end of its stated life.
    pub due: u64,
    pub life_years: String,
    pub source: &'static str,
}

/// When a credential's token is due for replacement, if it is a hardware
/// token still in use (lost and retired tokens are nobody's to replace).
pub fn due_of(row: &CredentialRow) -> Option<u64> {
    eol_of(row).map(|line| line.due)
}

/// The end-of-life forecast of one credential's token.
pub fn eol_of(row: &CredentialRow) -> Option<EolLine> {
    if matches!(row.state, State::Retired | State::Lost) || row.device_id.is_none() {
        return None;
    }
    let entered = row.created_at;
    let life = battery_life(row.manufacturer.as_deref(), row.model.as_deref());
    Some(EolLine {
        credential: reference_of(row.serial.as_deref(), row.slot, row.id),
        serial: row.serial.clone(),
        user: row.upn.clone(),
        manufacturer: row.manufacturer.clone(),
        model: row.model.clone(),
        state: row.state,
        entered,
        due: battery_due(entered, life),
        life_years: format!("{}–{}", life.years_low, life.years_high),
        source: life.source,
    })
}

/// Tokens due by `until` (overdue ones included), soonest first; one
/// line per device, its earliest credential (a Molto-2's profiles share
/// one battery).
pub fn eol_report(credentials: &[CredentialRow], until: u64) -> Vec<EolLine> {
    let mut earliest: HashMap<i64, EolLine> = HashMap::new();
    for row in credentials {
        let (Some(device), Some(line)) = (row.device_id, eol_of(row)) else {
            continue;
        };
        let kept = earliest.entry(device).or_insert_with(|| line.clone());
        if line.entered < kept.entered {
            *kept = line;
        }
    }
    let mut lines: Vec<EolLine> = earliest
        .into_values()
        .filter(|line| line.due <= until)
        .collect();
    lines.sort_by(|a, b| a.due.cmp(&b.due).then(a.credential.cmp(&b.credential)));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Custody;

    const DAY: u64 = 86_400;
    const NOW: u64 = 1_800_000_000;

    fn credential(id: i64, device: i64, manufacturer: &str, state: State) -> CredentialRow {
        CredentialRow {
            id,
            device_id: Some(device),
            slot: None,
            kind: "totp".into(),
            algorithm: "SHA1".into(),
            digits: 6,
            period: Some(30),
            t0: Some(0),
            counter: None,
            issuer: None,
            label: None,
            state,
            custody: Custody::Held,
            sealed_secret: None,
            user_id: None,
            drift_steps: None,
            purge_after: None,
            created_at: 0,
            updated_at: 0,
            serial: Some(format!("T{id:04}")),
            upn: None,
            manufacturer: Some(manufacturer.into()),
            model: Some("C202".into()),
        }
    }

    #[test]
    fn battery_table_names_a_source_for_every_row() {
        assert!(BATTERY_LIFE.iter().all(|b| !b.source.is_empty()));
        assert_eq!(battery_life(Some("token2"), Some("C202")).years_low, 5);
        let other = battery_life(Some("Feitian"), None);
        assert!(other.source.contains("assumed"), "{other:?}");
    }

    #[test]
    fn eol_lists_devices_due_soonest_first_and_skips_retired() {
        let year = YEAR;
        let entered = |mut row: CredentialRow, at: u64| {
            row.created_at = at;
            row
        };
        let rows = vec![
            // due in 30 days
            entered(
                credential(1, 1, "Token2", State::Delivered),
                NOW - 5 * year + 30 * DAY,
            ),
            // overdue
            entered(
                credential(2, 2, "Token2", State::Stock),
                NOW - 5 * year - DAY,
            ),
            // due in 3 years, though a later profile of device 1 is not
            entered(credential(3, 3, "Token2", State::Delivered), NOW - 2 * year),
            entered(credential(5, 1, "Token2", State::Delivered), NOW - year),
            // retired
            entered(credential(4, 4, "Token2", State::Retired), NOW - 6 * year),
        ];
        let due = eol_report(&rows, NOW + 6 * 30 * DAY);
        let serials: Vec<_> = due.iter().map(|l| l.serial.clone().unwrap()).collect();
        assert_eq!(serials, ["T0002", "T0001"]);
        assert_eq!(due_of(&rows[2]), Some(NOW + 3 * year));
        assert_eq!(due_of(&rows[4]), None);
        assert!(due[0].source.contains("openT2OTP"));
    }

    #[test]
    fn drift_report_ranks_and_advises() {
        let step = TimeStep::DEFAULT;
        let hardware: HashMap<i64, Hardware> = [
            (
                1,
                Hardware {
                    kind: DeviceKind::Classic,
                },
            ),
            (
                2,
                Hardware {
                    kind: DeviceKind::MultiProfile,
                },
            ),
        ]
        .into_iter()
        .collect();
        // Token 1 is 70 s fast now (outside Entra's ±60 s); token 2 gains
        // 40 s/year from −40 s (about 37 s now, outside in about 7 months);
        // token 3 has none.
        let sighting = |id: i64, at: u64, offset: f64| {
            let k = step.counter_at((at as f64 + offset) as u64).unwrap() as i64
                - step.counter_at(at).unwrap() as i64;
            SightingRow {
                credential_id: id,
                at,
                source: "check".into(),
                offset_steps: k,
            }
        };
        let mut sightings = Vec::new();
        for i in 0..10u64 {
            let at = NOW - 700 * DAY + i * 70 * DAY + i * 7;
            sightings.push(sighting(1, at, 70.0));
            let years = (at as f64 - (NOW - 700 * DAY) as f64) / drift::SECONDS_PER_YEAR;
            sightings.push(sighting(2, at, 40.0 * years - 40.0));
        }
        sightings.sort_by_key(|s| (s.credential_id, s.at));
        let rows = vec![
            credential(1, 1, "Token2", State::Delivered),
            credential(2, 2, "Token2", State::Delivered),
            credential(3, 1, "Token2", State::Delivered),
        ];
        let report = drift_report(
            &rows,
            &hardware,
            &sightings,
            &HashMap::new(),
            Verifier::Entra,
            365 * DAY,
            NOW,
        );
        assert_eq!(report.without_sightings, 1);
        assert_eq!(report.tokens.len(), 2);
        let first = &report.tokens[0];
        assert_eq!(first.credential_id, 1);
        assert_eq!(first.standing, "outside");
        assert!(first.advice.starts_with("replace"), "{first:?}");
        let second = &report.tokens[1];
        assert_eq!(second.credential_id, 2);
        let rate = second.rate_s_per_year.unwrap();
        assert!((rate - 40.0).abs() < 8.0, "{second:?}");
        assert_eq!(second.standing, "near-edge", "{second:?}");
        assert!(second.advice.contains("device sync-time"), "{second:?}");
        assert!(second.outside_at.unwrap() > NOW, "{second:?}");
    }

    /// What the vault sees of a token whose clock is `offset` s off at `at`.
    fn sighting_at(id: i64, at: u64, offset: f64) -> SightingRow {
        let step = TimeStep::DEFAULT;
        let k = step.counter_at((at as f64 + offset) as u64).unwrap() as i64
            - step.counter_at(at).unwrap() as i64;
        SightingRow {
            credential_id: id,
            at,
            source: "check".into(),
            offset_steps: k,
        }
    }

    /// A token 70 s fast for two years, its clock set right, then seen on
    /// time (steady since): counted from the re-sync it has no drift;
    /// counted whole, the old sightings forecast one of about −30 s/year
    /// that it does not have.
    #[test]
    fn a_resync_starts_the_drift_history_again() {
        let synced_at = NOW - 200 * DAY;
        let mut sightings: Vec<SightingRow> = (0..10u64)
            .map(|i| sighting_at(1, synced_at - 700 * DAY + i * 70 * DAY + i * 7, 70.0))
            .collect();
        sightings.extend((0..5u64).map(|i| sighting_at(1, synced_at + i * 40 * DAY, 0.0)));
        let rows = vec![credential(1, 1, "Token2", State::Delivered)];
        let hardware: HashMap<i64, Hardware> = [(
            1,
            Hardware {
                kind: DeviceKind::MultiProfile,
            },
        )]
        .into_iter()
        .collect();
        let resync = ClockSync {
            credential_id: 1,
            synced_at,
            set_to: synced_at,
            operator: "alice".into(),
            via: "device.clock".into(),
        };
        let report = |resyncs: &HashMap<i64, ClockSync>, sightings: &[SightingRow]| {
            drift_report(
                &rows,
                &hardware,
                sightings,
                resyncs,
                Verifier::Entra,
                365 * DAY,
                NOW,
            )
        };
        let whole = report(&HashMap::new(), &sightings);
        let line = &whole.tokens[0];
        assert_eq!(line.sightings, 15);
        assert!(line.rate_s_per_year.unwrap() < -20.0, "{line:?}");
        assert_eq!(line.resync_note, None);

        let resyncs: HashMap<i64, ClockSync> = [(1, resync)].into_iter().collect();
        let since = report(&resyncs, &sightings);
        let line = &since.tokens[0];
        assert_eq!(line.standing, "inside", "{line:?}");
        assert_eq!(line.sightings, 5);
        assert_eq!(line.sightings_before_resync, 10);
        assert_eq!(line.resynced_at, Some(synced_at));
        // Each of the five saw the same phase of the step: no drift, and
        // the midpoint of the step as the offset.
        assert_eq!(line.rate_s_per_year, Some(0.0), "{line:?}");
        assert_eq!(line.offset_s, 15.0, "{line:?}");
        let date: String = crate::audit::rfc3339(synced_at).chars().take(10).collect();
        assert_eq!(
            line.resync_note.as_deref(),
            Some(format!("re-synced on {date}, 5 sightings since").as_str())
        );

        // Re-synced and not seen since: listed, with no rate, not outside.
        let before = &sightings[..10];
        let unseen = report(&resyncs, before);
        assert_eq!(unseen.without_sightings, 0);
        let line = &unseen.tokens[0];
        assert_eq!((line.standing, line.sightings), ("no-rate", 0), "{line:?}");
        assert_eq!(line.offset_s, 0.0);
        assert!(line.advice.contains("no sighting since its clock was set"));
        assert!(
            line.resync_note
                .as_ref()
                .unwrap()
                .ends_with("0 sightings since")
        );
    }
}
