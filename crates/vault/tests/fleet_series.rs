//! The drift series the fleet report reads (one signed row per credential,
//! `oathdesk_vault::drift_series`): that it says what the sightings say,
//! that an altered, swapped or deleted one is refused, that an edited
//! sighting is still caught, and that a vault from before series builds
//! them at its first report — on both databases.

mod common;

use common::*;
use oathdesk_otp::Verifier;
use oathdesk_otp::drift::SECONDS_PER_YEAR;
use oathdesk_vault::fleet::DriftReport;
use oathdesk_vault::model::{DeviceKind, State};
use oathdesk_vault::{DeviceWrite, Error, Session};

on_both_backends!(
    the_report_from_series_is_the_report_from_sightings,
    an_edited_sighting_is_caught_by_the_plot_and_verify,
    a_swapped_series_is_refused,
    a_deleted_series_is_refused,
    a_series_deleted_with_its_mac_is_caught_by_verify,
    a_vault_from_before_series_builds_them_at_its_first_report,
);

const DAY: u64 = 86_400;
const SEEDS: [&[u8]; 3] = [
    b"12345678901234567890",
    b"abcdefghijabcdefghij",
    b"ABCDEFGHIJABCDEFGHIJ",
];
const SERIALS: [&str; 3] = ["SR-1", "SR-2", "SR-3"];

/// The code a token shows at `now` when its clock is `offset` s off.
fn code_of(seed: &[u8], now: u64, offset: f64) -> String {
    code_at(seed, (now as f64 + offset) as u64)
}

/// Three tokens gaining 40, losing 25 and keeping 0 s/year, checked eight
/// times over two years; the first also delivered (a second sighting in
/// the second of one check, from another source), the third re-synced by
/// oathdesk half-way. Returns the session and the moment after the last.
fn fleet(f: &Fixture) -> (Session, u64) {
    let mut s = session(&f.location);
    s.set_setting("purge.grace_seconds", 3000 * DAY, NOW)
        .unwrap();
    for (i, (serial_no, seed)) in SERIALS.iter().zip(SEEDS).enumerate() {
        let mut t = token(serial_no, None, seed, Some(&format!("u{i}@contoso.com")));
        t.device_kind = if i == 2 {
            DeviceKind::MultiProfile
        } else {
            DeviceKind::Classic
        };
        t.state = State::Shipped;
        s.add_token(t, NOW).unwrap();
    }
    let rates = [40.0, -25.0, 0.0];
    let mut last = NOW;
    for k in 0..8u64 {
        let at = NOW + k * 91 * DAY + k * 613;
        let years = (at - NOW) as f64 / SECONDS_PER_YEAR;
        for (n, serial_no) in SERIALS.iter().enumerate() {
            let code = code_of(SEEDS[n], at, rates[n] * years + 10.0);
            s.check_token(&serial(serial_no), &code, at).unwrap();
            if n == 0 && k == 3 {
                s.deliver(&serial(serial_no), &code, at).unwrap();
            }
        }
        if k == 4 {
            let set = at + 60;
            s.record_device_write(&serial("SR-3"), &DeviceWrite::Clock { time: set }, set)
                .unwrap();
        }
        last = at;
    }
    (s, last + DAY)
}

fn report(s: &mut Session, now: u64) -> DriftReport {
    s.fleet_drift(Verifier::Entra, 365 * DAY, now).unwrap()
}

fn the_report_from_series_is_the_report_from_sightings(backend: Backend) {
    let f = fixture(backend);
    let (mut s, now) = fleet(&f);
    let fleet = report(&mut s, now);
    assert_eq!(fleet.tokens.len(), 3, "{fleet:?}");
    for serial_no in SERIALS {
        // A token's plot reads its sightings, the report its series.
        let plot = s
            .token_drift(&serial(serial_no), Verifier::Entra, 365 * DAY, now)
            .unwrap();
        let line = fleet
            .tokens
            .iter()
            .find(|l| l.credential == serial_no)
            .unwrap();
        assert_eq!(plot.line.as_ref(), Some(line), "{serial_no}");
    }
    let first = fleet
        .tokens
        .iter()
        .find(|l| l.credential == "SR-1")
        .unwrap();
    assert_eq!(first.sightings, 9, "{first:?}");
    // Nine sightings of 30 s steps over 21 months: ±15 s of rounding each.
    assert!(
        (first.rate_s_per_year.unwrap() - 40.0).abs() < 15.0,
        "{first:?}"
    );
    let third = fleet
        .tokens
        .iter()
        .find(|l| l.credential == "SR-3")
        .unwrap();
    assert_eq!(
        (third.sightings, third.sightings_before_resync),
        (3, 5),
        "{third:?}"
    );
    let rows = s.verify_rows().unwrap();
    assert!(rows.bad.is_empty(), "{:?}", rows.bad);
}

fn an_edited_sighting_is_caught_by_the_plot_and_verify(backend: Backend) {
    let f = fixture(backend);
    let (mut s, now) = fleet(&f);
    let before = report(&mut s, now);
    let id = s.token(&serial("SR-2")).unwrap().0.id;
    drop(s);
    f.execute(&format!(
        "UPDATE drift_sightings SET offset_steps = offset_steps - 5 WHERE credential_id = {id}"
    ));
    let mut s = session(&f.location);
    // The report reads the signed series, which still says what the vault
    // saw: the edit changes nothing in it.
    assert_eq!(report(&mut s, now), before);
    match s.token_drift(&serial("SR-2"), Verifier::Entra, DAY, now) {
        Err(Error::Altered { row }) => assert!(row.contains("drift sighting"), "{row}"),
        other => panic!("expected an altered sighting, got {other:?}"),
    }
    let bad = s.verify_rows().unwrap().bad;
    assert!(
        bad.iter()
            .any(|b| b.kind == "drift_sighting" && b.problem == "altered"),
        "{bad:?}"
    );
    assert!(
        bad.iter().any(|b| b.kind == "drift_series"
            && b.problem == "disagrees"
            && b.name == format!("drift series of credential {id}")),
        "{bad:?}"
    );
    // And no new sighting of that token is signed on top of it.
    let at = now + DAY;
    match s.check_token(&serial("SR-2"), &code_at(SEEDS[1], at), at) {
        Err(Error::Altered { row }) => assert!(row.contains("drift sighting"), "{row}"),
        other => panic!("expected an altered sighting, got {other:?}"),
    }
}

fn a_swapped_series_is_refused(backend: Backend) {
    let f = fixture(backend);
    let (mut s, now) = fleet(&f);
    let one = s.token(&serial("SR-1")).unwrap().0.id;
    let two = s.token(&serial("SR-2")).unwrap().0.id;
    drop(s);
    // Token 2's history under token 1: each part is a series this vault
    // signed, but not for that credential.
    f.execute(&format!(
        "UPDATE drift_series SET points = \
         (SELECT points FROM drift_series WHERE credential_id = {two}) WHERE credential_id = {one}"
    ));
    let mut s = session(&f.location);
    match s.fleet_drift(Verifier::Entra, DAY, now) {
        Err(Error::Altered { row }) => {
            assert_eq!(row, format!("drift series of credential {one}"))
        }
        other => panic!("expected an altered series, got {other:?}"),
    }
    let bad = s.verify_rows().unwrap().bad;
    for problem in ["altered", "disagrees"] {
        assert!(
            bad.iter()
                .any(|b| b.kind == "drift_series" && b.problem == problem),
            "{problem}: {bad:?}"
        );
    }
    // The refusal is audited.
    let entries = s.audit_entries().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.outcome == "refused" && e.detail.contains("drift series")),
        "{entries:?}"
    );
}

fn a_deleted_series_is_refused(backend: Backend) {
    let f = fixture(backend);
    let (mut s, now) = fleet(&f);
    let two = s.token(&serial("SR-2")).unwrap().0.id;
    drop(s);
    // Without its history, token 2 would drop out of the report.
    f.execute(&format!(
        "DELETE FROM drift_series WHERE credential_id = {two}"
    ));
    let mut s = session(&f.location);
    match s.fleet_drift(Verifier::Entra, DAY, now) {
        Err(Error::Altered { row }) => {
            assert_eq!(row, format!("drift series of credential {two}"))
        }
        other => panic!("expected a deleted series refused, got {other:?}"),
    }
    let bad = s.verify_rows().unwrap().bad;
    for problem in ["deleted", "missing"] {
        assert!(
            bad.iter()
                .any(|b| b.kind == "drift_series" && b.problem == problem),
            "{problem}: {bad:?}"
        );
    }
}

/// Deleting a series and its MAC together hides a token from the report
/// (as deleting its sightings and theirs always could); `vault verify`
/// finds its sightings without their series.
fn a_series_deleted_with_its_mac_is_caught_by_verify(backend: Backend) {
    let f = fixture(backend);
    let (mut s, now) = fleet(&f);
    let two = s.token(&serial("SR-2")).unwrap().0.id;
    drop(s);
    f.execute(&format!(
        "DELETE FROM drift_series WHERE credential_id = {two}; \
         DELETE FROM row_macs WHERE kind = 'drift_series' AND id = '{two:020}'"
    ));
    let mut s = session(&f.location);
    let hidden = report(&mut s, now);
    assert_eq!(
        (hidden.tokens.len(), hidden.without_sightings),
        (2, 1),
        "{hidden:?}"
    );
    let bad = s.verify_rows().unwrap().bad;
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        (bad[0].kind, bad[0].problem, bad[0].name.as_str()),
        (
            "drift_series",
            "missing",
            format!("drift series of credential {two}").as_str()
        )
    );
}

/// A vault upgraded from before series has sightings and no series: its
/// first report builds them from the checked sightings (audited), and
/// reports as the sightings say; an edited sighting stops the build.
fn a_vault_from_before_series_builds_them_at_its_first_report(backend: Backend) {
    let f = fixture(backend);
    let (mut s, now) = fleet(&f);
    let before = report(&mut s, now);
    drop(s);
    let upgrade = "DELETE FROM drift_series; DELETE FROM row_macs WHERE kind = 'drift_series'";
    f.execute(upgrade);
    let mut s = session(&f.location);
    assert_eq!(report(&mut s, now), before);
    let built: Vec<String> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "fleet.drift_series")
        .map(|e| e.detail)
        .collect();
    assert_eq!(built.len(), 1, "{built:?}");
    assert!(built[0].contains("\"series\":3"), "{built:?}");
    assert!(s.verify_rows().unwrap().bad.is_empty());
    // Built once: the next report reads them.
    report(&mut s, now);
    let again = s
        .audit_entries()
        .unwrap()
        .iter()
        .filter(|e| e.action == "fleet.drift_series")
        .count();
    assert_eq!(again, 1);
    drop(s);

    f.execute(upgrade);
    f.execute(
        "UPDATE drift_sightings SET offset_steps = offset_steps + 2 WHERE source = 'deliver'",
    );
    let mut s = session(&f.location);
    match s.fleet_drift(Verifier::Entra, DAY, now) {
        Err(Error::Altered { row }) => assert!(row.contains("drift sighting"), "{row}"),
        other => panic!("expected an altered sighting, got {other:?}"),
    }
}
