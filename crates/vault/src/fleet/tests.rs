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
fn drift_csv_quotes_and_writes_days() {
    let report = DriftReport {
        at: NOW,
        verifier: "entra".into(),
        horizon_days: 180,
        without_sightings: 0,
        tokens: vec![DriftLine {
            credential: "T0001".into(),
            credential_id: 1,
            serial: Some("T0001".into()),
            user: Some("ann, \"the boss\"@contoso.com".into()),
            model: None,
            device_kind: "classic".into(),
            sightings: 3,
            resynced_at: Some(1_700_000_000),
            sightings_before_resync: 2,
            resync_note: None,
            span_days: 40,
            rate_s_per_year: Some(12.5),
            offset_s: -3.0,
            edge_s: 60.0,
            standing: "inside",
            outside_at: Some(1_800_000_000),
            advice: "nothing to do".into(),
        }],
    };
    let text = drift_csv(&report);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "token,serial,user,model,device_kind,sightings,resynced_on,\
             sightings_before_resync,span_days,rate_s_per_year,offset_s,edge_s,standing,\
             outside_on,advice",
            "T0001,T0001,\"ann, \"\"the boss\"\"@contoso.com\",,classic,3,2023-11-14,2,40,\
             12.5,-3,60,inside,2027-01-15,nothing to do",
        ]
    );
}

#[test]
fn csv_reports_keep_typed_text_from_running_as_formulas() {
    let line = DriftLine {
        credential: "=1+1".into(),
        credential_id: 1,
        serial: Some("+T0001".into()),
        user: Some("@SUM(A1:A9)".into()),
        model: Some("-C202".into()),
        device_kind: "\tclassic".into(),
        sightings: 3,
        resynced_at: None,
        sightings_before_resync: 0,
        resync_note: None,
        span_days: 40,
        rate_s_per_year: Some(-12.5),
        offset_s: -3.0,
        edge_s: -60.0,
        standing: "inside",
        outside_at: None,
        advice: "\rnothing to do".into(),
    };
    let report = DriftReport {
        at: NOW,
        verifier: "entra".into(),
        horizon_days: 180,
        without_sightings: 0,
        tokens: vec![line],
    };
    let text = drift_csv(&report);
    let row = text.lines().nth(1).expect("a data line");
    // Text fields get the quote; the negative numbers stay numbers.
    assert_eq!(
        row,
        "'=1+1,'+T0001,'@SUM(A1:A9),'-C202,'\tclassic,3,,0,40,-12.5,-3,-60,inside,,\"'\rnothing to do\""
    );

    let eol = EolLine {
        credential: "-T0002".into(),
        serial: Some("T0002".into()),
        user: Some("=HYPERLINK(\"http://x.invalid\")".into()),
        manufacturer: Some("+Token2".into()),
        model: Some("C202-=".into()),
        state: State::Delivered,
        entered: NOW,
        due: NOW,
        life_years: "5–8".into(),
        source: "table",
    };
    let text = eol_csv(&[eol]);
    let row = text.lines().nth(1).expect("a data line");
    assert_eq!(
        row,
        "'-T0002,T0002,\"'=HYPERLINK(\"\"http://x.invalid\"\")\",'+Token2,C202-=,delivered,\
         2027-01-15,2027-01-15,5–8,table"
    );
}

#[test]
fn months_ahead_stops_at_a_century() {
    assert_eq!(months_ahead(NOW, 6).unwrap(), NOW + 6 * MONTH_S);
    assert!(matches!(
        months_ahead(NOW, EOL_MONTHS_MAX + 1),
        Err(crate::Error::Invalid(m)) if m.contains("century")
    ));
}

#[test]
fn horizon_stops_at_a_century() {
    assert_eq!(horizon_seconds(180).unwrap(), 180 * DAY);
    assert_eq!(
        horizon_seconds(HORIZON_DAYS_MAX).unwrap(),
        HORIZON_DAYS_MAX * DAY
    );
    // u64::MAX days would wrap the seconds round to a small number.
    for days in [HORIZON_DAYS_MAX + 1, u64::MAX / DAY + 1, u64::MAX] {
        assert!(matches!(
            horizon_seconds(days),
            Err(crate::Error::Invalid(m)) if m.contains("century") && m.contains(&days.to_string())
        ));
    }
}

#[test]
fn token_drift_sorts_places_and_fits() {
    let step = TimeStep::DEFAULT;
    let row = credential(7, 7, "Token2", State::Delivered);
    // 60 s/year, seen newest first; the step shown as a clock 0..60 s fast.
    let seen: Vec<SightingRow> = (0..6u64)
        .rev()
        .map(|i| {
            let at = NOW + i * 73 * DAY + 11;
            let offset = 60.0 * (i * 73 * DAY) as f64 / drift::SECONDS_PER_YEAR;
            SightingRow {
                credential_id: 7,
                at,
                source: "check".into(),
                offset_steps: step.counter_at(at + offset as u64).unwrap() as i64
                    - step.counter_at(at).unwrap() as i64,
            }
        })
        .collect();
    let plot = token_drift(
        &row,
        DeviceKind::MultiProfile,
        &seen,
        None,
        Verifier::Steps(3),
        365 * DAY,
        NOW + 365 * DAY,
    )
    .unwrap();
    assert!(plot.sightings.windows(2).all(|w| w[0].at < w[1].at));
    let first = &plot.sightings[0];
    // Seen at 11 s into a step, in that step: its midpoint is 4 s ahead.
    assert_eq!((first.offset_steps, first.offset_s), (0, 4.0));
    assert_eq!(
        plot.window,
        Some(WindowEdges {
            behind_s: -90.0,
            ahead_s: 90.0
        })
    );
    let fit = plot.fit.unwrap();
    assert!((fit.rate_s_per_year - 60.0).abs() < 15.0, "{fit:?}");
    let line = plot.line.unwrap();
    assert!(line.advice.contains("device sync-time"), "{line:?}");
    let mut hotp = row.clone();
    hotp.kind = "hotp".into();
    assert!(
        token_drift(
            &hotp,
            DeviceKind::Classic,
            &seen,
            None,
            Verifier::Entra,
            DAY,
            NOW
        )
        .is_none()
    );
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
        &observations_of(&sightings),
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

/// Split over threads, the report is line for line the one-thread one.
#[test]
fn the_report_does_not_depend_on_the_threads() {
    let rows: Vec<CredentialRow> = (1..=5000)
        .map(|id| {
            let state = if id % 7 == 0 {
                State::Retired
            } else {
                State::Delivered
            };
            credential(id, id, "Token2", state)
        })
        .collect();
    let mut sightings = Vec::new();
    for id in (1..=5000i64).filter(|id| id % 11 != 0) {
        for i in 0..4u64 {
            let at = NOW - 400 * DAY + i * 100 * DAY + id as u64;
            let offset = (id % 90) as f64 - 45.0 + (i * (id as u64 % 5)) as f64 * 4.0;
            sightings.push(sighting_at(id, at, offset));
        }
    }
    let by_credential = observations_of(&sightings);
    let (hardware, resyncs) = (HashMap::new(), HashMap::new());
    let inputs = DriftInputs {
        hardware: &hardware,
        by_credential: &by_credential,
        resyncs: &resyncs,
        verifier: Verifier::Entra,
        horizon_s: 365 * DAY,
        now: NOW,
    };
    let one = drift_report_on(&rows, &inputs, 1);
    let without = (1..=5000).filter(|id| id % 11 == 0 && id % 7 != 0).count();
    assert_eq!(one.without_sightings, without);
    assert_eq!(one.tokens.len(), 5000 - 5000 / 7 - without);
    let standings: std::collections::HashSet<&str> =
        one.tokens.iter().map(|l| l.standing).collect();
    assert!(standings.len() >= 3, "{standings:?}");
    for threads in [2, 3, 8] {
        assert_eq!(drift_report_on(&rows, &inputs, threads), one, "{threads}");
    }
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
            &observations_of(sightings),
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
