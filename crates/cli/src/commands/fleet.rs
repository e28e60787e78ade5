//! `oathdesk fleet drift` and `oathdesk fleet eol`: the fleet's clocks and
//! batteries. The reports come from the vault (`oathdesk_vault::fleet`);
//! this only prints them.

use anyhow::{Context, Result};
use clap::Subcommand;
use oathdesk_otp::Verifier;
use oathdesk_vault::fleet::{self, BATTERY_LIFE, DriftReport, EolLine};

use crate::input::{self, rfc3339};
use crate::unlock::VaultOptions;

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Each token's clock drift: its rate in s/year (a robust fit over the
    /// codes the vault saw it show), where it stands against a verifier's
    /// window, when it falls outside, and what to do.
    #[command(after_help = "\
Sightings come from 'token deliver', 'token check' and 'identify' of a code read off the token \
just now. One sighting gives an offset but no rate; a rate needs sightings a day or more apart. \
After 'device sync-time' (or 'device configure', which sets the clock too) only the sightings \
since count: the report says 're-synced on DATE, N sightings since'.

Examples:
  oathdesk fleet drift
  oathdesk fleet drift --verifier steps=1 --horizon-days 90 --csv > drift.csv")]
    Drift {
        /// The verifier whose window counts: entra (±1 min for 30 s tokens),
        /// exact, steps=K or seconds=S.
        #[arg(long, default_value = "entra")]
        verifier: String,
        /// How far ahead "near the edge" looks, in days (at most 36525).
        #[arg(long, default_value_t = 180)]
        horizon_days: u64,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// Tokens whose battery reaches the end of its stated life within the
    /// next N months (overdue ones too), by model and stock/burn date.
    #[command(after_help = "\
Battery life per maker is a table with its sources ('oathdesk fleet batteries'); the forecast \
takes the low end of the stated life from the date the token entered the vault.

Example:
  oathdesk fleet eol --months 6")]
    Eol {
        #[arg(long, default_value_t = 6)]
        months: u64,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// The battery-life table the end-of-life forecast uses, with its sources.
    Batteries {
        #[arg(long)]
        json: bool,
    },
}

/// A verifier profile from the command line.
pub fn verifier(text: &str) -> Result<Verifier> {
    text.parse().with_context(|| format!("--verifier '{text}'"))
}

pub fn run(command: FleetCommand, options: &VaultOptions) -> Result<()> {
    if let FleetCommand::Batteries { json } = command {
        return print_batteries(json);
    }
    let now = input::now();
    match command {
        FleetCommand::Drift {
            verifier: profile,
            horizon_days,
            json,
            csv,
        } => {
            // Checked before the vault asks for a passphrase.
            let horizon_s = fleet::horizon_seconds(horizon_days).context("--horizon-days")?;
            let verifier = verifier(&profile)?;
            let report = options.unlock()?.fleet_drift(verifier, horizon_s, now)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else if csv {
                print!("{}", fleet::drift_csv(&report));
            } else {
                print_drift(&report);
            }
        }
        FleetCommand::Eol { months, json, csv } => {
            let until = fleet::months_ahead(now, months).context("--months")?;
            let due = options.unlock()?.fleet_eol(until, now)?;
            if json {
                println!("{}", serde_json::to_string(&due)?);
            } else if csv {
                print!("{}", fleet::eol_csv(&due));
            } else {
                print_eol(&due, months, now);
            }
        }
        FleetCommand::Batteries { .. } => unreachable!("answered above"),
    }
    Ok(())
}

fn date(at: u64) -> String {
    rfc3339(at).chars().take(10).collect()
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:+.1}"))
}

fn print_drift(report: &DriftReport) {
    println!(
        "verifier {}; near the edge = outside within {} days",
        report.verifier, report.horizon_days
    );
    println!(
        "{:<22} {:>4} {:>11} {:>9} {:<10} {:<10}  ADVICE",
        "TOKEN", "SEEN", "RATE s/yr", "OFFSET s", "STANDING", "OUTSIDE"
    );
    for line in &report.tokens {
        println!(
            "{:<22} {:>4} {:>11} {:>9} {:<10} {:<10}  {}",
            line.credential,
            line.sightings,
            rate(line.rate_s_per_year),
            format!("{:+.0}", line.offset_s),
            line.standing,
            line.outside_at.map_or_else(|| "-".to_owned(), date),
            match &line.resync_note {
                Some(note) => format!("{} ({note})", line.advice),
                None => line.advice.clone(),
            }
        );
    }
    let count = |s: &str| report.tokens.iter().filter(|l| l.standing == s).count();
    eprintln!(
        "oathdesk: {} token(s) with sightings: {} outside, {} near the edge, {} inside, {} without a \
         rate yet; {} time-based token(s) never seen",
        report.tokens.len(),
        count("outside"),
        count("near-edge"),
        count("inside"),
        count("no-rate"),
        report.without_sightings
    );
}

fn print_eol(due: &[EolLine], months: u64, now: u64) {
    println!(
        "{:<22} {:<10} {:<12} {:<10} {:<10} {:<10}  USER",
        "TOKEN", "STATE", "MODEL", "ENTERED", "DUE", "LIFE (y)"
    );
    for line in due {
        println!(
            "{:<22} {:<10} {:<12} {:<10} {:<10} {:<10}  {}",
            line.credential,
            line.state.name(),
            line.model.as_deref().unwrap_or("-"),
            date(line.entered),
            if line.due <= now {
                format!("{} !", date(line.due))
            } else {
                date(line.due)
            },
            line.life_years,
            line.user.as_deref().unwrap_or("-")
        );
    }
    let overdue = due.iter().filter(|l| l.due <= now).count();
    eprintln!(
        "oathdesk: {} token(s) due for replacement within {months} month(s), {overdue} of them \
         overdue (!); sources: 'oathdesk fleet batteries'",
        due.len()
    );
}

fn print_batteries(json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(BATTERY_LIFE)?);
        return Ok(());
    }
    for row in BATTERY_LIFE {
        println!(
            "{:<8} {:<8} {}–{} years  {}",
            row.manufacturer.unwrap_or("(other)"),
            row.model_prefix.unwrap_or("(any)"),
            row.years_low,
            row.years_high,
            row.source
        );
    }
    Ok(())
}
