//! The Fleet page in a real headless Chromium (issue 18, item 1): the drift
//! table of a simulated fleet, a token chosen with the keyboard and its
//! clock drawn as an inline SVG plot (a point per sighting, the fitted
//! line, the window's edges, the forecast crossing), with a text
//! alternative; sorting, the "near the edge" filter, another verifier,
//! the batteries due; no script error and nothing serious for axe-core, at
//! the desk and on a phone. Fails (never skips) when the browser is missing.

mod common;
#[path = "common/browser.rs"]
mod kit;

use std::time::Duration;

use common::*;
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use kit::*;
use oathdesk_otp::Verifier;
use serde_json::{Value, json};

const DAY: u64 = 86_400;

/// Two years of sightings up to yesterday: …404 is outside Entra's window
/// now, …403 and …402 near its edge (in about 50 and 70 days), …401
/// inside.
const FLEET: &[Drifting] = &[
    Drifting {
        serial: "2100000401",
        user: "ann@contoso.com",
        rate_s_per_year: 30.0,
        initial_s: -40.0,
    },
    Drifting {
        serial: "2100000402",
        user: "bob@contoso.com",
        rate_s_per_year: 52.0,
        initial_s: -54.0,
    },
    Drifting {
        serial: "2100000403",
        user: "cy@contoso.com",
        rate_s_per_year: -70.0,
        initial_s: 90.0,
    },
    Drifting {
        serial: "2100000404",
        user: "dee@contoso.com",
        rate_s_per_year: -40.0,
        initial_s: 0.0,
    },
];

const SIGHTINGS: u64 = 14;

async fn run(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

async fn count(client: &Client, css: &str) -> usize {
    client.find_all(Locator::Css(css)).await.unwrap().len()
}

/// The references in the drift table, top to bottom.
async fn rows(client: &Client) -> Vec<String> {
    let found = run(
        client,
        "return [...document.querySelectorAll('#drift tbody tr')].map((r) => r.dataset.ref)",
    )
    .await;
    serde_json::from_value(found).unwrap()
}

/// The words drawn in the plot.
async fn plot_text(client: &Client) -> String {
    run(
        client,
        "return [...document.querySelectorAll('#plot text')].map((t) => t.textContent).join(' | ')",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

/// Nothing sticks out sideways on a phone (the page, the plot).
const FITS: &str = r#"
const width = window.innerWidth;
const wrong = [];
if (document.documentElement.scrollWidth > width) wrong.push("the page is " + document.documentElement.scrollWidth + " px wide");
const plot = document.getElementById("plot");
if (plot) {
  const r = plot.getBoundingClientRect();
  if (r.left < 0 || r.right > width + 0.5) wrong.push("the plot spans " + Math.round(r.left) + "–" + Math.round(r.right));
}
return wrong;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_plots_a_chosen_tokens_clock() {
    let axe = axe_source();
    let _one = BROWSER.lock().await;
    let fixture = staffed();
    let today = now() - now() % DAY;
    simulate_fleet(
        &fixture,
        FLEET,
        SIGHTINGS,
        today - 2 * 365 * DAY,
        today - DAY,
    );
    // A battery due in three weeks.
    add_stock_token(&fixture, "2100000499", now() - 5 * YEAR + 21 * DAY);
    let expected = admin_session(&fixture)
        .token_drift(
            &"2100000402".parse().unwrap(),
            Verifier::Entra,
            180 * DAY,
            now(),
        )
        .unwrap();
    let (address, _stop) = fixture.serve().await;
    let driver = driver();
    let client = browser(&driver).await;
    client.set_window_size(1366, 900).await.unwrap();
    let base = base(address);
    // An auditor reads the inventory: the page is in their navigation.
    sign_in(&client, &base, AUDITOR).await;
    client.goto(&format!("{base}/inventory")).await.unwrap();
    let nav = visible_text(&client, "header.top nav").await;
    assert!(nav.contains("Fleet"), "{nav}");
    client.goto(&format!("{base}/fleet")).await.unwrap();
    wait_for(&client, "#drift[data-loaded] tbody tr").await;
    wait_for(&client, "#eol[data-loaded]").await;
    assert_eq!(
        rows(&client).await,
        ["2100000404", "2100000403", "2100000402", "2100000401"],
        "outside first, then the nearest to the edge"
    );
    let total = visible_text(&client, "#drift-total").await;
    assert!(total.contains("1 outside, 2 near the edge"), "{total}");

    // The keyboard chooses a row: focus it, press Enter.
    let row = wait_for(&client, "#drift tbody tr[data-ref='2100000402']").await;
    run(
        &client,
        "document.querySelector(\"#drift tbody tr[data-ref='2100000402']\").focus()",
    )
    .await;
    row.send_keys(&Key::Enter.to_string()).await.unwrap();
    wait_for(&client, "#plot circle.obs").await;
    wait_for_text(&client, "#plot-title", "2100000402").await;
    assert_eq!(
        run(
            &client,
            "return document.querySelector(\"#drift tbody tr[data-ref='2100000402']\").getAttribute('aria-current')"
        )
        .await,
        json!("true")
    );

    // A point per sighting, at the sightings' moments.
    assert_eq!(count(&client, "#plot circle.obs").await, SIGHTINGS as usize);
    let drawn: Vec<u64> = serde_json::from_value(
        run(
            &client,
            "return [...document.querySelectorAll('#plot circle.obs')].map((c) => Number(c.dataset.at))",
        )
        .await,
    )
    .unwrap();
    let seen: Vec<u64> = expected.sightings.iter().map(|s| s.at).collect();
    assert_eq!(drawn, seen);
    // Later sightings sit higher (the clock gains), and the fitted line rises.
    let heights: Vec<f64> = serde_json::from_value(
        run(
            &client,
            "return [...document.querySelectorAll('#plot circle.obs')].map((c) => Number(c.getAttribute('cy')))",
        )
        .await,
    )
    .unwrap();
    assert!(heights[0] > heights[heights.len() - 1], "{heights:?}");
    let fit: Vec<f64> = serde_json::from_value(
        run(
            &client,
            "const l = document.querySelector('#plot line.fit'); \
             return ['x1','y1','x2','y2'].map((a) => Number(l.getAttribute(a)))",
        )
        .await,
    )
    .unwrap();
    assert!(fit[2] > fit[0] && fit[3] < fit[1], "{fit:?}");
    assert_eq!(count(&client, "#plot line.fit-ahead").await, 1);
    // The window: two edges, the outside shaded on both sides; the crossing.
    assert_eq!(count(&client, "#plot line.edge").await, 2);
    assert_eq!(count(&client, "#plot rect.band-out").await, 2);
    assert_eq!(count(&client, "#plot circle.cross").await, 1);
    let labels = plot_text(&client).await;
    assert!(
        labels.contains("window edge +60 s") && labels.contains("leaves 20"),
        "{labels}"
    );
    // The text alternative says the same in words.
    let image = run(
        &client,
        "const s = document.getElementById('plot'); return [s.getAttribute('role'), \
         s.getAttribute('aria-labelledby'), document.getElementById('plot-svg-desc').textContent]",
    )
    .await;
    assert_eq!(image[0], "img");
    assert_eq!(image[1], "plot-svg-title plot-svg-desc");
    let words = image[2].as_str().unwrap();
    let rate = expected.fit.unwrap().rate_s_per_year;
    assert!(
        words.contains(&format!("{SIGHTINGS} sighting(s)"))
            && words.contains(&format!("Fitted drift +{rate:.1} s per year"))
            && words.contains("from \u{2212}60 to +60 s")
            && words.contains("Forecast to leave the window on"),
        "{words}"
    );
    assert_eq!(visible_text(&client, "#plot-summary").await, words);
    let advice = visible_text(&client, "#plot-advice").await;
    assert!(
        advice.contains("near the edge") && advice.contains("replace"),
        "{advice}"
    );
    assert_eq!(
        count(&client, "#sightings tbody tr").await,
        SIGHTINGS as usize
    );

    assert!(script_errors(&driver, &client).await.is_empty());
    let shots = |name: &str| format!("fleet-{name}");
    shot(&client, None, &format!("{}.png", shots("desk"))).await;
    shot(
        &client,
        Some("plot-card"),
        &format!("{}.png", shots("desk-plot")),
    )
    .await;

    // axe-core: nothing serious, with the plot shown.
    let violations = axe_violations(&client, &axe).await;
    assert!(
        violations.is_empty(),
        "axe-core:\n{}",
        violations.join("\n")
    );

    // On a phone the table keeps its key columns and the plot fits.
    client.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wrong = run(&client, FITS).await;
    assert_eq!(wrong, json!([]), "at 390 px");
    let width: f64 = serde_json::from_value(
        run(
            &client,
            "return Number(document.getElementById('plot').dataset.width)",
        )
        .await,
    )
    .unwrap();
    assert!(width < 400.0, "the plot was redrawn for the phone: {width}");
    shot(&client, None, &format!("{}.png", shots("phone"))).await;
    shot(
        &client,
        Some("plot-card"),
        &format!("{}.png", shots("phone-plot")),
    )
    .await;
    shot(
        &client,
        Some("eol-heading"),
        &format!("{}.png", shots("phone-eol")),
    )
    .await;
    client.set_window_size(1366, 900).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    run(&client, "window.scrollTo(0, 0)").await;
    // Sorting by the forecast: latest first puts the inside token on top;
    // no forecast at all stays last either way.
    click(&client, "#sort-forecast").await;
    assert_eq!(
        run(
            &client,
            "return document.getElementById('forecast-head').getAttribute('aria-sort')"
        )
        .await,
        json!("descending")
    );
    assert_eq!(rows(&client).await[0], "2100000401");
    click(&client, "#sort-forecast").await;
    assert_eq!(rows(&client).await[0], "2100000404");
    // Near the edge (or past it) only.
    click(&client, "#near-only").await;
    assert_eq!(
        rows(&client).await,
        ["2100000404", "2100000403", "2100000402"]
    );
    click(&client, "#near-only").await;
    assert_eq!(rows(&client).await.len(), FLEET.len());
    // The CSV follows the choices.
    let href = run(
        &client,
        "return document.getElementById('csv-link').getAttribute('href')",
    )
    .await;
    assert_eq!(
        href,
        json!("/api/v1/fleet/drift.csv?verifier=entra&horizon_days=180")
    );
    // Another verifier: the table and the plot follow (±3 steps = ±90 s).
    client
        .find(Locator::Css("#verifier option[value='steps=3']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(
        &client,
        "[...document.querySelectorAll('#plot text.edge-label')].some((t) => t.textContent === 'window edge +90 s')",
        "the plot never showed the ±90 s window",
    )
    .await;
    let href = run(
        &client,
        "return document.getElementById('csv-link').getAttribute('href')",
    )
    .await;
    assert_eq!(
        href,
        json!("/api/v1/fleet/drift.csv?verifier=steps%3D3&horizon_days=180")
    );

    // The batteries due: the old token, with its source named.
    let eol = visible_text(&client, "#eol tbody").await;
    assert!(eol.contains("2100000499"), "{eol}");
    assert!(!eol.contains("2100000401"), "{eol}");
    let sources = visible_text(&client, "#eol-sources").await;
    assert!(sources.contains("openT2OTP"), "{sources}");

    // Closing the plot gives the focus back to its row.
    click(&client, "#plot-close").await;
    assert_eq!(
        run(
            &client,
            "return document.activeElement && document.activeElement.dataset.ref"
        )
        .await,
        json!("2100000402")
    );
    assert!(script_errors(&driver, &client).await.is_empty());
    client.close().await.unwrap();
}

/// A single-profile token whose clock oathdesk set a year ago, after a
/// year of losing time: its line is fitted to the sightings since (which
/// gain), drawn from the re-sync; the earlier sightings are drawn faded and
/// said to be left out; the advice says "re-synced on …, N sightings
/// since". At the desk and on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resynced_tokens_plot_says_since_when_it_is_fitted() {
    let axe = axe_source();
    let _one = BROWSER.lock().await;
    let fixture = staffed();
    let today = now() - now() % DAY;
    let serial = "2100000405";
    let seed = drifting_seed(serial);
    ship_token_of(
        &fixture,
        serial,
        "eve@contoso.com",
        &seed,
        oathdesk_vault::model::DeviceKind::SingleProfile,
    );
    let mut admin = admin_session(&fixture);
    let reference = serial.parse().unwrap();
    let synced_at = today - 365 * DAY;
    // `offset(at)`: how far the token's clock is off at `at`.
    let mut sight = |at: u64, offset: f64| {
        let code = totp(&seed)
            .generate_at((at as f64 + offset).floor() as u64)
            .unwrap()
            .to_string();
        admin.check_token(&reference, &code, at).unwrap();
    };
    // A year losing 70 s a year, from +40 s …
    let first = synced_at - 365 * DAY;
    for month in 0..10u64 {
        let at = first + month * 35 * DAY;
        sight(at, 40.0 - 70.0 * (at - first) as f64 / YEAR as f64);
    }
    // … then set, and gaining 45 s a year since.
    let mut admin = admin_session(&fixture);
    admin
        .record_device_write(
            &reference,
            &oathdesk_vault::DeviceWrite::Clock { time: synced_at },
            synced_at,
        )
        .unwrap();
    let mut admin = admin_session(&fixture);
    let reference = serial.parse().unwrap();
    for month in 1..=6u64 {
        let at = synced_at + month * 55 * DAY;
        let offset = 45.0 * (at - synced_at) as f64 / YEAR as f64;
        let code = totp(&seed)
            .generate_at((at as f64 + offset).floor() as u64)
            .unwrap()
            .to_string();
        admin.check_token(&reference, &code, at).unwrap();
    }
    let expected = admin
        .token_drift(&reference, Verifier::Entra, 180 * DAY, now())
        .unwrap();
    let note = expected
        .line
        .as_ref()
        .and_then(|line| line.resync_note.clone())
        .expect("the report notes the re-sync");
    assert_eq!(
        note,
        format!("re-synced on {}, 6 sightings since", day(synced_at))
    );
    let rate = expected.fit.as_ref().unwrap().rate_s_per_year;
    assert!(rate > 0.0, "fitted to the gaining sightings since: {rate}");
    let (address, _stop) = fixture.serve().await;
    let driver = driver();
    let client = browser(&driver).await;
    client.set_window_size(1366, 900).await.unwrap();
    let base = base(address);
    sign_in(&client, &base, AUDITOR).await;
    client.goto(&format!("{base}/fleet")).await.unwrap();
    let css = format!("#drift tbody tr[data-ref='{serial}']");
    wait_for(&client, &css).await.click().await.unwrap();
    wait_for(&client, "#plot circle.obs").await;
    wait_for_text(&client, "#plot-title", serial).await;
    let advice = visible_text(&client, "#plot-advice").await;
    assert!(advice.contains(&format!("({note})")), "{advice}");
    // Every sighting is drawn; the ten before the re-sync faded.
    assert_eq!(count(&client, "#plot circle.obs").await, 16);
    assert_eq!(count(&client, "#plot circle.obs.before-resync").await, 10);
    assert_eq!(count(&client, "#plot line.resync").await, 1);
    assert!(plot_text(&client).await.contains("clock set"));
    // The line starts at the re-sync, right of every earlier sighting.
    let starts: Vec<f64> = serde_json::from_value(
        run(
            &client,
            "return [Number(document.querySelector('#plot line.fit').getAttribute('x1')), \
             Number(document.querySelector('#plot line.resync').getAttribute('x1')), \
             ...[...document.querySelectorAll('#plot circle.obs.before-resync')].map((c) => Number(c.getAttribute('cx')))]",
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        starts[0], starts[1],
        "the fit starts at the re-sync: {starts:?}"
    );
    assert!(starts[2..].iter().all(|&cx| cx < starts[0]), "{starts:?}");
    let words = visible_text(&client, "#plot-summary").await;
    assert!(
        words.contains(&format!(
            "The clock was set on {}: the line is fitted to the 6 sighting(s) since, not to the 10 before.",
            day(synced_at)
        )),
        "{words}"
    );
    assert!(
        visible_text(&client, ".legend")
            .await
            .contains("before the clock was set"),
        "the legend names the faded points"
    );
    assert!(script_errors(&driver, &client).await.is_empty());
    let violations = axe_violations(&client, &axe).await;
    assert!(
        violations.is_empty(),
        "axe-core:\n{}",
        violations.join("\n")
    );
    for (name, width, height) in [("desk", 1366, 900), ("phone", 390, 844)] {
        client.set_window_size(width, height).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(run(&client, FITS).await, json!([]), "at {width} px");
        shot(
            &client,
            Some("plot-card"),
            &format!("fleet-resync-{name}.png"),
        )
        .await;
    }
    client.close().await.unwrap();
}

/// Scrolls the element with id `element` to the top of the window (or the
/// page to its top), lets it settle and takes the screenshot `name`.
async fn shot(client: &Client, element: Option<&str>, name: &str) {
    let script = match element {
        Some(id) => format!("document.getElementById('{id}').scrollIntoView({{block: 'start'}})"),
        None => "window.scrollTo(0, 0)".to_owned(),
    };
    run(client, &script).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    screenshot(client, name).await;
}

/// A day as the page writes it (UTC).
fn day(at: u64) -> String {
    oathdesk_vault::audit::rfc3339(at)[..10].to_owned()
}
