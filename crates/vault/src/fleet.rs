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

pub use crate::drift_series::Observation;
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

/// Sightings by credential, each credential's in the order given (the
/// store's: by time, then source).
pub fn observations_of(sightings: &[SightingRow]) -> HashMap<i64, Vec<Observation>> {
    let mut by_credential: HashMap<i64, Vec<Observation>> = HashMap::new();
    for s in sightings {
        by_credential
            .entry(s.credential_id)
            .or_default()
            .push(Observation {
                at: s.at,
                offset_steps: s.offset_steps,
            });
    }
    by_credential
}

/// The drift report: one line per time-based credential with sightings
/// (`by_credential`, each in the store's order) or a clock set by oathdesk
/// (`resyncs`, by credential id).
pub fn drift_report(
    credentials: &[CredentialRow],
    hardware: &HashMap<i64, Hardware>,
    by_credential: &HashMap<i64, Vec<Observation>>,
    resyncs: &HashMap<i64, ClockSync>,
    verifier: Verifier,
    horizon_s: u64,
    now: u64,
) -> DriftReport {
    let inputs = DriftInputs {
        hardware,
        by_credential,
        resyncs,
        verifier,
        horizon_s,
        now,
    };
    drift_report_on(credentials, &inputs, crate::bulk_check::cores())
}

/// What every line of a drift report is computed from, besides its row.
pub struct DriftInputs<'a> {
    pub hardware: &'a HashMap<i64, Hardware>,
    pub by_credential: &'a HashMap<i64, Vec<Observation>>,
    pub resyncs: &'a HashMap<i64, ClockSync>,
    pub verifier: Verifier,
    pub horizon_s: u64,
    pub now: u64,
}

/// Below this many credentials the threads cost more than they save.
const PARALLEL_FROM: usize = 4096;

/// [`drift_report`] on `threads` threads: runs of consecutive credentials
/// are fitted side by side (a fit of 20 sightings is 190 slopes and their
/// median: most of a 100,000-token report). The report does not depend on
/// `threads`.
pub fn drift_report_on(
    credentials: &[CredentialRow],
    inputs: &DriftInputs<'_>,
    threads: usize,
) -> DriftReport {
    let lines = |rows: &[CredentialRow]| {
        let mut without = 0;
        let mut tokens = Vec::with_capacity(rows.len());
        for row in rows {
            if row.kind != "totp" || matches!(row.state, State::Retired | State::Lost) {
                continue;
            }
            let seen = inputs
                .by_credential
                .get(&row.id)
                .map_or(&[][..], Vec::as_slice);
            let resync = inputs.resyncs.get(&row.id);
            if seen.is_empty() && resync.is_none() {
                without += 1;
                continue;
            }
            let line = drift_line(
                row,
                inputs.hardware,
                seen,
                resync,
                inputs.verifier,
                inputs.horizon_s,
                inputs.now,
            );
            tokens.extend(line);
        }
        (without, tokens)
    };
    let (without, tokens) = if threads <= 1 || credentials.len() < PARALLEL_FROM {
        lines(credentials)
    } else {
        let chunk = credentials.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = credentials
                .chunks(chunk)
                .map(|part| scope.spawn(move || lines(part)))
                .collect();
            let mut all = (0, Vec::with_capacity(credentials.len()));
            for worker in workers {
                let (without, tokens) = worker.join().expect("a drift-fitting worker panicked");
                all.0 += without;
                all.1.extend(tokens);
            }
            all
        })
    };
    let (verifier, horizon_s, now) = (inputs.verifier, inputs.horizon_s, inputs.now);
    let rank = |l: &DriftLine| match l.standing {
        "outside" => 0,
        "near-edge" => 1,
        "inside" => 2,
        _ => 3,
    };
    // Sorted as positions, then moved once each: a line is some 300
    // bytes, and sorting 100,000 of them in place moved each many times.
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&tokens[a], &tokens[b]);
        rank(a)
            .cmp(&rank(b))
            .then(
                a.outside_at
                    .unwrap_or(u64::MAX)
                    .cmp(&b.outside_at.unwrap_or(u64::MAX)),
            )
            .then(a.credential.cmp(&b.credential))
    });
    let mut lines: Vec<Option<DriftLine>> = tokens.into_iter().map(Some).collect();
    let tokens = order
        .into_iter()
        .map(|i| lines[i].take().expect("each position once"))
        .collect();
    DriftReport {
        at: now,
        verifier: verifier.to_string(),
        horizon_days: horizon_s / 86_400,
        without_sightings: without,
        tokens,
    }
}

/// A time-based credential's step, if it has a usable one.
fn step_of(row: &CredentialRow) -> Option<TimeStep> {
    TimeStep::new(row.period?, row.t0.unwrap_or(0)).ok()
}

/// The sightings as `(time, clock offset in seconds)` points.
fn points_of(step: TimeStep, seen: &[Observation]) -> Vec<(u64, f64)> {
    seen.iter()
        .map(|s| (s.at, drift::clock_offset(step, s.at, s.offset_steps)))
        .collect()
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
    seen: &[Observation],
    resync: Option<&ClockSync>,
    verifier: Verifier,
    horizon_s: u64,
    now: u64,
) -> Option<DriftLine> {
    let step = step_of(row)?;
    // Only what the clock showed since oathdesk last set it.
    let points: Vec<(u64, f64)> = points_of(step, seen)
        .into_iter()
        .filter(|(at, _)| resync.is_none_or(|r| r.covers(*at)))
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

/// One sighting as a plot shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SightingPoint {
    pub at: u64,
    /// The step the token showed, counted from the step of `at`
    /// (negative: behind).
    pub offset_steps: i64,
    /// The clock offset that step places the token at (its midpoint), in
    /// seconds; the true offset lies within half a period of it.
    pub offset_s: f64,
    /// `deliver`, `check` or `identify`.
    pub source: String,
}

/// The fitted line: `offset_s` at `reference`, gaining `rate_s_per_year`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FitLine {
    pub rate_s_per_year: f64,
    pub offset_s: f64,
    pub reference: u64,
}

/// A verifier's window around the correct time, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WindowEdges {
    /// The earliest offset it accepts (negative: behind).
    pub behind_s: f64,
    pub ahead_s: f64,
}

/// One token's sightings, its fitted drift and where it stands against a
/// verifier: what a plot of its clock needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenDrift {
    pub credential: String,
    pub period: u64,
    pub verifier: String,
    /// `None` when the verifier does not take the token's period.
    pub window: Option<WindowEdges>,
    /// Oldest first.
    pub sightings: Vec<SightingPoint>,
    /// `None` without two sightings a day or more apart.
    pub fit: Option<FitLine>,
    /// The token's line of the drift report; `None` without sightings.
    pub line: Option<DriftLine>,
}

/// The drift of one time-based credential from its sightings (any order);
/// `None` for a credential without a clock (HOTP, or no usable period).
pub fn token_drift(
    row: &CredentialRow,
    kind: DeviceKind,
    seen: &[SightingRow],
    resync: Option<&ClockSync>,
    verifier: Verifier,
    horizon_s: u64,
    now: u64,
) -> Option<TokenDrift> {
    if row.kind != "totp" {
        return None;
    }
    let step = step_of(row)?;
    let mut seen = seen.to_vec();
    seen.sort_by_key(|s| s.at);
    let observed: Vec<Observation> = seen
        .iter()
        .map(|s| Observation {
            at: s.at,
            offset_steps: s.offset_steps,
        })
        .collect();
    let points = points_of(step, &observed);
    // Every sighting is plotted; the line is fitted to those since the
    // clock was last set, as the report's is.
    let since_resync: Vec<(u64, f64)> = points
        .iter()
        .copied()
        .filter(|(at, _)| resync.is_none_or(|r| r.covers(*at)))
        .collect();
    let fit = drift::fit(&since_resync).map(|f| FitLine {
        rate_s_per_year: f.rate_s_per_year,
        offset_s: f.offset_s,
        reference: f.reference,
    });
    let period = step.period();
    let window = verifier.window(period).ok().map(|w| WindowEdges {
        behind_s: -(w.behind as f64) * period as f64,
        ahead_s: w.ahead as f64 * period as f64,
    });
    let hardware: HashMap<i64, Hardware> = row
        .device_id
        .map(|id| (id, Hardware { kind }))
        .into_iter()
        .collect();
    let line = drift_line(row, &hardware, &observed, resync, verifier, horizon_s, now);
    Some(TokenDrift {
        credential: reference_of(row.serial.as_deref(), row.slot, row.id),
        period,
        verifier: verifier.to_string(),
        window,
        sightings: seen
            .iter()
            .zip(&points)
            .map(|(s, p)| SightingPoint {
                at: s.at,
                offset_steps: s.offset_steps,
                offset_s: p.1,
                source: s.source.clone(),
            })
            .collect(),
        fit,
        line,
    })
}

/// A day as the CSV files write it (`2026-12-04`, UTC).
fn day(at: u64) -> String {
    crate::audit::rfc3339(at).chars().take(10).collect()
}

/// A text cell a spreadsheet shows as text: one that starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return gets a leading `'`, so that a
/// serial, user or model someone typed cannot run as a formula when the file
/// is opened (OWASP, CSV injection). Numbers are written as they are: a
/// negative offset stays a number.
fn text_cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// Rows into CSV text (a header first).
fn csv_text<const N: usize>(header: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing into memory fails only on a bug: nothing here does I/O.
    out.write_record(header).expect("CSV into memory");
    for row in rows {
        out.write_record(&row).expect("CSV into memory");
    }
    String::from_utf8(out.into_inner().expect("CSV into memory")).expect("CSV of UTF-8 text")
}

/// The drift report as CSV (`oathdesk fleet drift --csv`, and the API's
/// `fleet/drift.csv`): one line per token, dates as days in UTC.
pub fn drift_csv(report: &DriftReport) -> String {
    csv_text(
        [
            "token",
            "serial",
            "user",
            "model",
            "device_kind",
            "sightings",
            "resynced_on",
            "sightings_before_resync",
            "span_days",
            "rate_s_per_year",
            "offset_s",
            "edge_s",
            "standing",
            "outside_on",
            "advice",
        ],
        report.tokens.iter().map(|l| {
            [
                text_cell(&l.credential),
                text_cell(l.serial.as_deref().unwrap_or_default()),
                text_cell(l.user.as_deref().unwrap_or_default()),
                text_cell(l.model.as_deref().unwrap_or_default()),
                text_cell(&l.device_kind),
                l.sightings.to_string(),
                l.resynced_at.map(day).unwrap_or_default(),
                l.sightings_before_resync.to_string(),
                l.span_days.to_string(),
                l.rate_s_per_year.map(|r| r.to_string()).unwrap_or_default(),
                l.offset_s.to_string(),
                l.edge_s.to_string(),
                text_cell(l.standing),
                l.outside_at.map(day).unwrap_or_default(),
                text_cell(&l.advice),
            ]
        }),
    )
}

/// The end-of-life forecast as CSV (`oathdesk fleet eol --csv`).
pub fn eol_csv(due: &[EolLine]) -> String {
    csv_text(
        [
            "token",
            "serial",
            "user",
            "manufacturer",
            "model",
            "state",
            "entered",
            "due",
            "life_years",
            "source",
        ],
        due.iter().map(|l| {
            [
                text_cell(&l.credential),
                text_cell(l.serial.as_deref().unwrap_or_default()),
                text_cell(l.user.as_deref().unwrap_or_default()),
                text_cell(l.manufacturer.as_deref().unwrap_or_default()),
                text_cell(l.model.as_deref().unwrap_or_default()),
                text_cell(l.state.name()),
                day(l.entered),
                day(l.due),
                text_cell(&l.life_years),
                text_cell(l.source),
            ]
        }),
    )
}

/// A month as the end-of-life forecast counts it: 30.44 days, as a
/// calendar averages them.
pub const MONTH_S: u64 = 2_629_746;

/// The longest look ahead of the end-of-life forecast, in months.
pub const EOL_MONTHS_MAX: u64 = 1200;

/// The moment `months` ahead of `now`, for [`eol_report`].
pub fn months_ahead(now: u64, months: u64) -> crate::Result<u64> {
    if months > EOL_MONTHS_MAX {
        return Err(crate::Error::Invalid(format!(
            "{months} months is more than a century: give the months ahead to look \
             (at most {EOL_MONTHS_MAX})"
        )));
    }
    Ok(now.saturating_add(months * MONTH_S))
}

/// The longest look ahead of the drift report's "near the edge", in days:
/// a century, as the end-of-life forecast's.
pub const HORIZON_DAYS_MAX: u64 = 36_525;

/// The drift report's look ahead in seconds, for [`drift_report`] and
/// [`token_drift`] (`--horizon-days`, the API's `horizon_days`).
pub fn horizon_seconds(days: u64) -> crate::Result<u64> {
    if days > HORIZON_DAYS_MAX {
        return Err(crate::Error::Invalid(format!(
            "a horizon of {days} days is more than a century: give the days ahead to look \
             (at most {HORIZON_DAYS_MAX})"
        )));
    }
    Ok(days * 86_400)
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
mod tests;
