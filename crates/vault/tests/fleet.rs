//! Drift sightings, the fleet drift and end-of-life reports, and forensic
//! searches, through the vault's public API on both databases.

mod common;

use common::*;
use oathdesk_otp::drift::SECONDS_PER_YEAR;
use oathdesk_otp::{Interval, Verifier, Window};
use oathdesk_vault::model::{DeviceKind, State};
use oathdesk_vault::{DeviceWrite, Error, ForensicTarget, Location};

on_both_backends!(
    checks_feed_the_drift_report_with_signed_sightings,
    delivery_and_fresh_identify_are_sightings,
    a_released_code_is_no_sighting,
    forensic_finds_past_intervals_and_refuses_the_present,
    end_of_life_lists_tokens_due_and_token_show_has_it,
    vault_copy_carries_sightings,
    one_tokens_drift_for_a_plot_is_signed_sorted_and_fitted,
    forensic_refuses_an_empty_range,
    a_clock_set_by_oathdesk_restarts_the_drift_history,
);

const DAY: u64 = 86_400;
const OTHER: &[u8] = b"abcdefghijabcdefghij";

/// The code a token shows at `now` when its clock is `offset` s off.
fn code_of(seed: &[u8], now: u64, offset: f64) -> String {
    code_at(seed, (now as f64 + offset) as u64)
}

/// A classic token gaining 45 s/year, checked 12 times over two years;
/// a Molto-2 profile 70 s fast. Both back as they were, signed.
fn checks_feed_the_drift_report_with_signed_sightings(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let mut classic = token("CL-1", None, SEED, Some("ann@contoso.com"));
    classic.device_kind = DeviceKind::Classic;
    classic.state = State::Stock;
    s.add_token(classic, NOW).unwrap();
    s.add_token(token("MOLTO-9", Some(4), OTHER, None), NOW)
        .unwrap();
    let start = NOW;
    let mut last = start;
    for i in 0..12u64 {
        let at = start + i * 61 * DAY + i * 997;
        let years = (at - start) as f64 / SECONDS_PER_YEAR;
        let checked = s
            .check_token(&serial("CL-1"), &code_of(SEED, at, 45.0 * years - 50.0), at)
            .unwrap();
        assert_eq!(checked.credential, "CL-1");
        s.check_token(&serial("MOLTO-9:4"), &code_of(OTHER, at, 70.0), at)
            .unwrap();
        last = at;
    }
    let report = s
        .fleet_drift(Verifier::Entra, 365 * DAY, last + DAY)
        .unwrap();
    assert_eq!(report.tokens.len(), 2, "{report:?}");
    let molto = &report.tokens[0];
    assert_eq!(molto.credential, "MOLTO-9:4");
    assert_eq!(molto.standing, "outside");
    assert!(molto.advice.contains("device sync-time"), "{molto:?}");
    assert!(molto.rate_s_per_year.unwrap().abs() < 8.0, "{molto:?}");
    let classic = &report.tokens[1];
    assert_eq!(classic.credential, "CL-1");
    assert_eq!(classic.sightings, 12);
    let rate = classic.rate_s_per_year.unwrap();
    assert!((rate - 45.0).abs() < 8.0, "{classic:?}");
    // About 40 s fast now; 60 s is about half a year away.
    assert_eq!(classic.standing, "near-edge", "{classic:?}");
    assert!(classic.advice.starts_with("replace"), "{classic:?}");
    assert!(s.verify_rows().unwrap().bad.is_empty());
    drop(s);

    // A sighting edited in the database is refused by name where it is
    // read (a token's plot); the report reads the signed drift series,
    // which `vault verify` finds no longer agrees (tests/fleet_series.rs).
    f.execute("UPDATE drift_sightings SET offset_steps = offset_steps - 5 WHERE source = 'check'");
    let mut s = session(&f.location);
    match s.token_drift(&serial("CL-1"), Verifier::Entra, 365 * DAY, last + DAY) {
        Err(Error::Altered { row }) => assert!(row.contains("drift sighting"), "{row}"),
        other => panic!("expected an altered row, got {other:?}"),
    }
    let bad = s.verify_rows().unwrap().bad;
    assert!(bad.iter().any(|b| b.kind == "drift_sighting"), "{bad:?}");
    assert!(bad.iter().any(|b| b.kind == "drift_series"), "{bad:?}");
}

fn delivery_and_fresh_identify_are_sightings(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.set_setting("purge.grace_seconds", 30 * DAY, NOW).unwrap();
    s.add_token(token("ID-1", None, SEED, Some("ann@contoso.com")), NOW)
        .unwrap();
    s.transition(&serial("ID-1"), State::Shipped, None, NOW)
        .unwrap();
    s.deliver(&serial("ID-1"), &code_at(SEED, NOW + 30), NOW)
        .unwrap();
    // An old code identified is no sighting of the clock.
    let old = NOW + 10 * DAY;
    s.identify(&[&code_at(SEED, old)], old, Window::symmetric(1), old + DAY)
        .unwrap();
    let report = s.fleet_drift(Verifier::Entra, DAY, NOW).unwrap();
    assert_eq!(report.tokens[0].sightings, 1, "{report:?}");
    assert_eq!(report.tokens[0].standing, "no-rate");
    let later = NOW + 40 * DAY;
    let hits = s
        .identify(
            &[&code_at(SEED, later + 30)],
            later,
            Window::symmetric(2),
            later,
        )
        .unwrap();
    assert_eq!(hits.len(), 1);
    let report = s.fleet_drift(Verifier::Entra, DAY, later).unwrap();
    let line = &report.tokens[0];
    assert_eq!(line.sightings, 2, "{report:?}");
    assert!(line.rate_s_per_year.is_some(), "{line:?}");
}

fn a_released_code_is_no_sighting(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("REL-1", None, SEED, None), NOW).unwrap();
    let shown = s
        .enrolment_code(&serial("REL-1"), Verifier::Entra, NOW)
        .unwrap();
    match s.check_token(&serial("REL-1"), &shown.code, NOW + 5) {
        Err(Error::CodeReleased { credential }) => assert_eq!(credential, "REL-1"),
        other => panic!("expected a released code, got {other:?}"),
    }
    assert!(matches!(
        s.check_token(&serial("REL-1"), "000000", NOW),
        Err(Error::CodeMismatch { .. })
    ));
    let report = s.fleet_drift(Verifier::Entra, DAY, NOW).unwrap();
    assert!(report.tokens.is_empty(), "{report:?}");
    assert_eq!(report.without_sightings, 1);
}

fn forensic_finds_past_intervals_and_refuses_the_present(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("FOR-1", None, SEED, Some("eve@contoso.com")), NOW)
        .unwrap();
    s.add_token(token("FOR-2", None, OTHER, Some("eve@contoso.com")), NOW)
        .unwrap();
    let typed_at = NOW + 9 * 3600 + 14 * 60;
    let code = code_at(SEED, typed_at);
    let range = Interval {
        from: NOW,
        until: NOW + DAY,
    };
    let report = s
        .forensic(
            &ForensicTarget::User("eve@contoso.com".into()),
            &code,
            range,
            Verifier::Entra,
            NOW + 2 * DAY,
        )
        .unwrap();
    assert_eq!(report.searched, ["FOR-1", "FOR-2"]);
    let step_start = typed_at - typed_at % 30;
    let hit = report
        .hits
        .iter()
        .find(|h| h.credential == "FOR-1" && h.current_from == step_start)
        .unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(hit.current_until, step_start + 30);
    assert_eq!(hit.accepted_from, step_start - 60);
    assert_eq!(hit.accepted_until, step_start + 90);
    // The audit log has the search, never the code.
    let entry = s.audit_entries().unwrap().pop().unwrap();
    assert_eq!(entry.action, "forensic");
    assert!(!entry.detail.contains(&code), "{}", entry.detail);
    assert!(entry.detail.contains("\"hits\""), "{}", entry.detail);
    // A range that reaches the present is refused: no live-code oracle.
    let now = NOW + DAY;
    match s.forensic(
        &ForensicTarget::Token(serial("FOR-1")),
        &code_at(SEED, now),
        Interval {
            from: now - 3600,
            until: now,
        },
        Verifier::Entra,
        now,
    ) {
        Err(Error::Invalid(message)) => assert!(message.contains("minutes ago"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn end_of_life_lists_tokens_due_and_token_show_has_it(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    let year = 31_556_952;
    let old = NOW - 5 * year + 60 * DAY;
    s.add_token(token("OLD-1", None, SEED, None), old).unwrap();
    s.add_token(token("NEW-1", None, OTHER, None), NOW).unwrap();
    s.add_token(token("GONE-1", None, OTHER, None), old)
        .unwrap();
    s.transition(&serial("GONE-1"), State::Retired, None, NOW)
        .unwrap();
    let due = s.fleet_eol(NOW + 90 * DAY, NOW).unwrap();
    let serials: Vec<_> = due.iter().filter_map(|l| l.serial.clone()).collect();
    assert_eq!(serials, ["OLD-1"]);
    assert_eq!(due[0].due, old + 5 * year);
    assert!(due[0].source.contains("openT2OTP"), "{:?}", due[0]);
    let (info, _) = s.token(&serial("NEW-1")).unwrap();
    assert_eq!(info.battery_due, Some(NOW + 5 * year));
    let (gone, _) = s.token(&serial("GONE-1")).unwrap();
    assert_eq!(gone.battery_due, None);
}

fn vault_copy_carries_sightings(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("CP-1", None, SEED, None), NOW).unwrap();
    s.check_token(&serial("CP-1"), &code_at(SEED, NOW), NOW)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = Location::Sqlite(dir.path().join("copy.db"));
    let copied = s.copy_to(&target, false, NOW).unwrap();
    assert!(
        copied
            .tables
            .iter()
            .any(|(table, rows)| table == "drift_sightings" && *rows == 1),
        "{copied:?}"
    );
    let mut copy = session(&target);
    let report = copy.fleet_drift(Verifier::Entra, DAY, NOW).unwrap();
    assert_eq!(report.tokens.len(), 1);
    assert!(copy.verify_rows().unwrap().bad.is_empty());
}

/// A token gaining 30 s/year, checked out of order: its sightings come back
/// oldest first with the offset each places the clock at, the fitted line,
/// Entra's window and the report's line; an edited sighting is refused by
/// name, and an HOTP token has no clock to plot.
fn one_tokens_drift_for_a_plot_is_signed_sorted_and_fitted(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("PL-1", None, SEED, Some("ann@contoso.com")), NOW)
        .unwrap();
    s.add_token(token("PL-2", None, OTHER, None), NOW).unwrap();
    let times: Vec<u64> = [5u64, 0, 9, 2, 7, 4, 1, 8, 3, 6]
        .iter()
        .map(|i| NOW + i * 73 * DAY + i * 311)
        .collect();
    for &at in &times {
        let years = (at - NOW) as f64 / SECONDS_PER_YEAR;
        s.check_token(&serial("PL-1"), &code_of(SEED, at, 30.0 * years - 20.0), at)
            .unwrap();
    }
    // The other token's sighting is not this one's.
    s.check_token(&serial("PL-2"), &code_at(OTHER, NOW), NOW)
        .unwrap();
    let last = *times.iter().max().unwrap();
    let plot = s
        .token_drift(&serial("PL-1"), Verifier::Entra, 365 * DAY, last + DAY)
        .unwrap();
    assert_eq!(plot.credential, "PL-1");
    assert_eq!(plot.period, 30);
    assert_eq!(plot.verifier, "entra");
    let window = plot.window.unwrap();
    assert_eq!((window.behind_s, window.ahead_s), (-60.0, 60.0));
    assert_eq!(plot.sightings.len(), 10);
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let seen: Vec<u64> = plot.sightings.iter().map(|p| p.at).collect();
    assert_eq!(seen, sorted);
    for point in &plot.sightings {
        assert_eq!(point.source, "check");
        // The midpoint of the step shown, within half a period of the truth.
        let years = (point.at - NOW) as f64 / SECONDS_PER_YEAR;
        let truth = 30.0 * years - 20.0;
        assert!(
            (point.offset_s - truth).abs() <= 15.0,
            "{point:?} vs {truth}"
        );
    }
    let fit = plot.fit.unwrap();
    assert!((fit.rate_s_per_year - 30.0).abs() < 8.0, "{fit:?}");
    assert_eq!(fit.reference, last);
    let line = plot.line.unwrap();
    assert_eq!(line.sightings, 10);
    assert_eq!(
        line.rate_s_per_year,
        Some((fit.rate_s_per_year * 10.0).round() / 10.0)
    );
    // The report's line for the same token is the same line.
    let report = s
        .fleet_drift(Verifier::Entra, 365 * DAY, last + DAY)
        .unwrap();
    let same = report
        .tokens
        .iter()
        .find(|l| l.credential == "PL-1")
        .unwrap();
    assert_eq!(same, &line);
    // Another profile, another window.
    let other = s
        .token_drift(&serial("PL-1"), Verifier::Steps(1), DAY, last + DAY)
        .unwrap();
    assert_eq!(other.window.unwrap().ahead_s, 30.0);
    // An HOTP token has no clock.
    let mut hotp = token("PL-3", None, OTHER, None);
    hotp.credential.kind = oathdesk_otp::Kind::Hotp { counter: 0 };
    s.add_token(hotp, NOW).unwrap();
    match s.token_drift(&serial("PL-3"), Verifier::Entra, DAY, NOW) {
        Err(Error::Invalid(message)) => assert!(message.contains("HOTP"), "{message}"),
        other => panic!("expected an HOTP token refused, got {other:?}"),
    }
    drop(s);

    f.execute("UPDATE drift_sightings SET offset_steps = offset_steps + 1 WHERE at = (SELECT MAX(at) FROM drift_sightings)");
    let mut s = session(&f.location);
    match s.token_drift(&serial("PL-1"), Verifier::Entra, DAY, last + DAY) {
        Err(Error::Altered { row }) => assert!(row.contains("drift sighting"), "{row}"),
        other => panic!("expected an altered row, got {other:?}"),
    }
    // The untouched token still plots.
    assert_eq!(
        s.token_drift(&serial("PL-2"), Verifier::Entra, DAY, NOW)
            .unwrap()
            .sightings
            .len(),
        1
    );
}

fn forensic_refuses_an_empty_range(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("FE-1", None, SEED, None), NOW).unwrap();
    match s.forensic(
        &ForensicTarget::Token(serial("FE-1")),
        &code_at(SEED, NOW),
        Interval {
            from: NOW + 3600,
            until: NOW,
        },
        Verifier::Entra,
        NOW + DAY,
    ) {
        Err(Error::Invalid(message)) => {
            assert!(message.contains("end after it starts"), "{message}")
        }
        other => panic!("expected an empty range refused, got {other:?}"),
    }
}

/// A Molto-2 profile gaining 60 s/year, checked over two years (outside
/// Entra's window by then), its clock set (`device sync-time`), then seen
/// on time: the report fits only the sightings since the re-sync and says
/// so; the re-sync is a signed record.
fn a_clock_set_by_oathdesk_restarts_the_drift_history(backend: Backend) {
    let f = fixture(backend);
    let mut s = session(&f.location);
    s.add_token(token("MOLTO-7", Some(2), SEED, None), NOW)
        .unwrap();
    let profile = serial("MOLTO-7:2");
    for i in 0..8u64 {
        let at = NOW + i * 90 * DAY + i * 7;
        let years = (at - NOW) as f64 / SECONDS_PER_YEAR;
        s.check_token(&profile, &code_of(SEED, at, 60.0 * years), at)
            .unwrap();
    }
    let synced = NOW + 800 * DAY;
    let before = s.fleet_drift(Verifier::Entra, 365 * DAY, synced).unwrap();
    assert_eq!(before.tokens[0].standing, "outside", "{before:?}");
    assert_eq!(before.tokens[0].resync_note, None);

    s.record_device_write(&profile, &DeviceWrite::Clock { time: synced }, synced)
        .unwrap();
    // Not seen since: listed as re-synced, no rate yet.
    let unseen = s.fleet_drift(Verifier::Entra, 365 * DAY, synced).unwrap();
    let line = &unseen.tokens[0];
    assert_eq!((line.standing, line.sightings), ("no-rate", 0), "{line:?}");
    assert_eq!(line.sightings_before_resync, 8);
    let mut last = synced;
    for i in 1..=3u64 {
        last = synced + i * 30 * DAY;
        s.check_token(&profile, &code_of(SEED, last, 0.0), last)
            .unwrap();
    }
    let after = s.fleet_drift(Verifier::Entra, 365 * DAY, last).unwrap();
    let line = &after.tokens[0];
    assert_eq!(line.sightings, 3, "{line:?}");
    assert_eq!(line.resynced_at, Some(synced));
    assert_eq!(line.standing, "inside", "{line:?}");
    assert_eq!(line.rate_s_per_year, Some(0.0), "{line:?}");
    let note = line.resync_note.as_deref().unwrap();
    assert!(
        note.starts_with("re-synced on 20") && note.ends_with(", 3 sightings since"),
        "{note}"
    );
    // The history says the drift history restarted, and who did it.
    let entry = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .rfind(|e| e.action == "device.clock")
        .unwrap();
    assert_eq!(entry.operator, "alice");
    assert!(
        entry.detail.contains("\"drift_history_reset\":true"),
        "{}",
        entry.detail
    );
    assert!(s.verify_rows().unwrap().bad.is_empty());
    drop(s);

    // The record is signed: edited, or deleted (its MAC stays), the report
    // is refused rather than fitting the old sightings again.
    f.execute("UPDATE records SET body = replace(body, '\"alice\"', '\"mallory\"') WHERE kind = 'clock_sync'");
    let mut s = session(&f.location);
    match s.fleet_drift(Verifier::Entra, 365 * DAY, last) {
        Err(Error::Altered { row }) => assert!(row.contains("clock sync"), "{row}"),
        other => panic!("expected an altered record, got {other:?}"),
    }
    drop(s);
    f.execute("DELETE FROM records WHERE kind = 'clock_sync'");
    let mut s = session(&f.location);
    match s.fleet_drift(Verifier::Entra, 365 * DAY, last) {
        Err(Error::Altered { row }) => assert!(row.contains("clock sync"), "{row}"),
        other => panic!("expected a deleted record to count as altered, got {other:?}"),
    }
}
