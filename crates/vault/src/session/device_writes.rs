//! Writes to a programmable token after its burn — settings only, title
//! only, the clock — recorded in the vault's history, and the checks that
//! come before a burn: is this secret in the vault already, and how long
//! may an enrolment code still be shown.

use super::fleet::record_clock_sync;
use super::*;
use crate::identify_cache::IdentifyCache;

/// Seconds an enrolment code must still have on the token when it is
/// handed out: a user reading, switching windows and typing needs them.
pub const ENROLMENT_MIN_SECONDS_LEFT: u64 = 10;

/// Seconds to wait before an enrolment code may be handed out at `now` for
/// a `period`-second step: 0 when the current code has at least
/// [`ENROLMENT_MIN_SECONDS_LEFT`] left, else until the next step starts.
pub fn enrolment_wait(period: u64, now: u64) -> u64 {
    if period == 0 {
        return 0;
    }
    let left = period - now % period;
    if left < ENROLMENT_MIN_SECONDS_LEFT.min(period) {
        left
    } else {
        0
    }
}

/// What was written to a token outside a burn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceWrite {
    /// Algorithm, digits, period and display time-out (the seed stays).
    Config {
        algorithm: Algorithm,
        digits: u8,
        period: u64,
        /// Display time-out in seconds (15, 30, 60 or 120).
        display_timeout: u64,
    },
    /// The title shown on a Molto-2.
    Title { title: String },
    /// The token's clock, set to `time` (the drift history starts again).
    Clock { time: u64 },
}

impl DeviceWrite {
    fn action(&self) -> &'static str {
        match self {
            DeviceWrite::Config { .. } => "device.config",
            DeviceWrite::Title { .. } => "device.title",
            DeviceWrite::Clock { .. } => "device.clock",
        }
    }

    /// The history's record of it.
    fn detail(&self) -> serde_json::Value {
        match self {
            DeviceWrite::Config {
                algorithm,
                digits,
                period,
                display_timeout,
            } => json!({
                "algorithm": algorithm.to_string(),
                "digits": digits,
                "period": period,
                "display_timeout": display_timeout,
            }),
            DeviceWrite::Title { title } => json!({"title": title}),
            DeviceWrite::Clock { time } => json!({"time": time}),
        }
    }

    /// What the token's clock was set to, at `now`: a clock write sets it
    /// to its time, a configuration write to now (the token takes the time
    /// with the settings).
    fn clock_set_to(&self, now: u64) -> Option<u64> {
        match self {
            DeviceWrite::Clock { time } => Some(*time),
            DeviceWrite::Config { .. } => Some(now),
            DeviceWrite::Title { .. } => None,
        }
    }
}

/// The audit actions that carry a display time-out for a credential.
const SETTINGS_ACTIONS: [&str; 2] = ["device.burn", "device.config"];

impl<S: Store> Session<S> {
    /// Records a write to the token of `credential` after it was made and
    /// verified. A configuration write changes the credential's algorithm,
    /// digits and period in the vault too (the row is signed again): its
    /// codes are the token's from now on. A clock or configuration write
    /// sets the token's clock: a signed record says so, and the fleet drift
    /// report fits only the sightings from then on.
    pub fn record_device_write(
        &mut self,
        credential: &TokenRef,
        write: &DeviceWrite,
        now: u64,
    ) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        let operator = self.operator.clone();
        self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, credential)?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            if row.state == State::Retired {
                return Err(Error::Refused(format!(
                    "{reference} is retired: burn the token again instead"
                )));
            }
            // A write that cannot have happened must not be recorded: the
            // drift report would restart its fit at a re-sync that never was.
            if let Some(serial) = row.serial.as_deref()
                && tx
                    .device_by_serial(serial)?
                    .is_some_and(|d| d.kind == crate::model::DeviceKind::Classic)
            {
                return Err(Error::Refused(format!(
                    "{reference} is a classic (pre-seeded) token: its clock and settings \
                     cannot be written, so no write is recorded"
                )));
            }
            if let DeviceWrite::Config {
                algorithm,
                digits,
                period,
                ..
            } = write
            {
                if row.kind != "totp" {
                    return Err(Error::Invalid(format!(
                        "{reference} is not a time-based credential"
                    )));
                }
                // The sealed secret is bound to its parameters: open it
                // under the old ones, seal it under the new.
                let secret = match row.custody {
                    Custody::Held => Some(held_secret(keys.key, &row)?),
                    _ => None,
                };
                row.algorithm = algorithm.to_string();
                row.digits = *digits;
                row.period = Some(*period);
                row.updated_at = now;
                if let Some(secret) = secret {
                    row.sealed_secret =
                        Some(keys.key.seal_secret(secret.as_bytes(), &binding(&row))?);
                }
                tx.credential_set_params(row.id, &row.algorithm, row.digits, row.period)?;
                update_credential(tx, keys, &row)?;
            }
            let mut detail = write.detail();
            detail["credential_id"] = json!(row.id);
            if let Some(set_to) = write.clock_set_to(now)
                && record_clock_sync(tx, keys, &row, set_to, &operator, write.action(), now)?
                    .is_some()
            {
                // Said in the history too: why the drift report restarts.
                detail["drift_history_reset"] = json!(true);
            }
            let mut event = AuditEvent::ok(write.action())
                .credential(reference)
                .detail(detail);
            event.user = row.upn.clone();
            Ok((info(&row), event))
        })
    }

    /// The display time-out (seconds) last written to the token of
    /// `credential_id`, by its burn or a configuration write, as the
    /// vault's history records it; `None` when it never recorded one.
    pub fn recorded_display_timeout(&mut self, credential_id: i64) -> Result<Option<u64>> {
        self.require(Permission::InventoryRead)?;
        let rows = self.store.read()?.audit_all()?;
        Ok(rows
            .iter()
            .rev()
            .filter(|r| SETTINGS_ACTIONS.contains(&r.action.as_str()) && r.outcome == "ok")
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.detail).ok())
            .filter(|d| d["credential_id"].as_i64() == Some(credential_id))
            .find_map(|d| d["display_timeout"].as_u64()))
    }

    /// The live credentials whose secret is `secret` (under `algorithm`),
    /// found by the identify index kept in `cache` (no secret is compared
    /// in the clear; a process that asks more than once keeps its cache
    /// and opens each secret once).
    pub fn secret_holders_cached(
        &mut self,
        cache: &IdentifyCache,
        secret: &Secret,
        algorithm: Algorithm,
    ) -> Result<Vec<TokenInfo>> {
        self.require(Permission::Identify)?;
        self.refresh_identify_cache(cache)?;
        let ids = {
            let current = cache.read();
            current
                .as_ref()
                .map(|i| i.index.same_secret(secret, algorithm))
                .unwrap_or_default()
        };
        let tx = self.store.read()?;
        let mut holders = Vec::new();
        for id in ids {
            let filter = CredentialFilter {
                id: Some(id),
                ..CredentialFilter::default()
            };
            if let Some(row) = tx.credentials(&filter)?.pop()
                && row.state != State::Retired
            {
                holders.push(info(&row));
            }
        }
        Ok(holders)
    }

    /// [`Session::secret_holders_cached`] with an index built for this one
    /// question.
    pub fn secret_holders(
        &mut self,
        secret: &Secret,
        algorithm: Algorithm,
    ) -> Result<Vec<TokenInfo>> {
        self.secret_holders_cached(&IdentifyCache::new(), secret, algorithm)
    }
}
