//! Finding the token that shows a code, over every held secret.

use super::*;
use crate::identify_cache::{IdentifyCache, Indexed};

/// A credential found by its code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdentifyHit {
    pub credential: String,
    pub credential_id: i64,
    pub serial: Option<String>,
    pub slot: Option<u32>,
    pub user: Option<String>,
    pub state: State,
    /// Where the matching code stands from the time of the request, in
    /// steps (+2: the code of two steps ahead) — not the token's drift.
    pub offset: i64,
    /// The token's clock drift in steps as last recorded (at delivery or
    /// a check), if ever.
    #[serde(default)]
    pub drift_steps: Option<i64>,
}

/// How close to now an identified code's moment must be for the hit to
/// count as a sighting of the token's clock (a code read off it just now).
const SIGHTING_FRESH_S: u64 = 60;

/// "current code", "code of 2 steps ahead", "code of 1 step behind".
pub fn code_position(offset: i64) -> String {
    let steps = |n: i64| {
        if n.abs() == 1 {
            "1 step".to_owned()
        } else {
            format!("{} steps", n.abs())
        }
    };
    match offset {
        0 => "current code".to_owned(),
        n if n > 0 => format!("code of {} ahead", steps(n)),
        n => format!("code of {} behind", steps(n)),
    }
}

impl<S: Store> Session<S> {
    /// Builds the in-memory identify index of every held secret: secrets
    /// are opened and HMAC-keyed on all cores.
    pub fn identify_index(&mut self) -> Result<IdentifyIndex> {
        self.require(Permission::Identify)?;
        let held = self.store.read()?.held_secrets()?;
        self.key_secrets(&held)
    }

    /// Opens `held` secrets and keys HMAC with each, split over all cores.
    fn key_secrets(&self, held: &[HeldSecret]) -> Result<IdentifyIndex> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = held.len().div_ceil(threads).max(1);
        let key = &self.key;
        let build = |part: &[HeldSecret]| -> Result<IdentifyIndex> {
            let mut index = IdentifyIndex::with_capacity(part.len());
            for held in part {
                let secret = Secret::from_bytes(
                    key.open_secret(&held.sealed_secret, &binding(held))?
                        .to_vec(),
                );
                let (algorithm, digits, kind) = otp_parts(held)?;
                let hotp = Hotp::new(&secret, algorithm, digits);
                match kind {
                    Kind::Totp { step } => index.push_totp(held.id, hotp, step),
                    Kind::Hotp { counter } => index.push_hotp(held.id, hotp, counter),
                }
            }
            Ok(index)
        };
        let parts: Vec<Result<IdentifyIndex>> = std::thread::scope(|scope| {
            let workers: Vec<_> = held
                .chunks(chunk)
                .map(|part| scope.spawn(move || build(part)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("index worker panicked"))
                .collect()
        });
        let mut index = IdentifyIndex::with_capacity(held.len());
        for part in parts {
            index.append(part?);
        }
        Ok(index)
    }

    /// Brings `cache` to the vault's current generation (see
    /// [`crate::identify_cache`] for the rule): nothing when it is current,
    /// the changed rows when it is behind, everything when it is empty or
    /// the vault went back (a restored backup).
    pub(super) fn refresh_identify_cache(&mut self, cache: &IdentifyCache) -> Result<()> {
        let now_at = self.store.read()?.identify_generation()?;
        if cache.generation() == Some(now_at) {
            return Ok(());
        }
        let _turn = cache.refresh_turn();
        let clears = cache.clears();
        // Under the turn: the generation, and what changed up to it, from
        // one snapshot (another request may have refreshed meanwhile).
        let known = cache.generation();
        let (generation, touched, held) = {
            let tx = self.store.read()?;
            let generation = tx.identify_generation()?;
            match known {
                Some(known) if known == generation => return Ok(()),
                Some(known) if known < generation => {
                    let changes = tx.identify_changes(known)?;
                    (changes.generation, Some(changes.touched), changes.held)
                }
                _ => (generation, None, tx.held_secrets()?),
            }
        };
        // The slow part (opening secrets, keying HMAC) holds no lock on
        // the index: scans go on meanwhile.
        let added = self.key_secrets(&held)?;
        cache.count_opened(held.len());
        let mut current = cache.write();
        if cache.clears() != clears {
            // Sealed meanwhile: keep nothing.
            return Ok(());
        }
        match (touched, current.as_mut()) {
            (Some(touched), Some(indexed)) => {
                indexed.index.remove(&touched);
                indexed.index.append(added);
                indexed.generation = generation;
            }
            _ => {
                *current = Some(Indexed {
                    generation,
                    index: added,
                })
            }
        }
        Ok(())
    }

    /// Finds which held credentials produce `codes` (one, or consecutive
    /// ones) around `at`. The search is audited. Builds the index for this
    /// one search: a process that identifies more than once keeps an
    /// [`IdentifyCache`] and calls [`Session::identify_cached`].
    pub fn identify(
        &mut self,
        codes: &[&str],
        at: u64,
        window: Window,
        now: u64,
    ) -> Result<Vec<IdentifyHit>> {
        self.identify_cached(&IdentifyCache::new(), codes, at, window, now)
    }

    /// [`Session::identify`] with an index kept in `cache` (the cache of
    /// this vault: the console keeps one for its vault), brought up to date
    /// first, so a change by any process is seen.
    pub fn identify_cached(
        &mut self,
        cache: &IdentifyCache,
        codes: &[&str],
        at: u64,
        window: Window,
        now: u64,
    ) -> Result<Vec<IdentifyHit>> {
        self.require(Permission::Identify)?;
        self.refresh_identify_cache(cache)?;
        let (matches, searched) = {
            let current = cache.read();
            let index = current.as_ref().map(|i| &i.index);
            let empty = IdentifyIndex::default();
            let index = index.unwrap_or(&empty);
            (index.identify(codes, at, window), index.len())
        };
        let matches = matches.ok_or_else(|| Error::Invalid("a code is 4 to 10 digits".into()))?;
        let mut rows = HashMap::new();
        let checked = {
            let tx = self.store.read()?;
            for m in &matches {
                let filter = CredentialFilter {
                    id: Some(m.credential_id),
                    ..CredentialFilter::default()
                };
                if let Some(row) = tx.credentials(&filter)?.pop() {
                    rows.insert(row.id, row);
                }
            }
            // A hit names a user and a state: only from signed rows.
            let hits: Vec<&CredentialRow> = rows.values().collect();
            signed::check_credentials(&tx, &self.signer, self.signed, &hits)
        };
        self.audited(now, checked)?;
        let hits: Vec<IdentifyHit> = matches
            .iter()
            .filter_map(|m: &IdentifyMatch| {
                let row = rows.get(&m.credential_id)?;
                Some(IdentifyHit {
                    credential: reference_of(row.serial.as_deref(), row.slot, row.id),
                    credential_id: row.id,
                    serial: row.serial.clone(),
                    slot: row.slot,
                    user: row.upn.clone(),
                    state: row.state,
                    offset: m.offset,
                    drift_steps: row.drift_steps,
                })
            })
            .collect();
        let found: Vec<&str> = hits.iter().map(|h| h.credential.as_str()).collect();
        let event = AuditEvent::ok("identify").detail(json!({
            "codes": codes.len(),
            "searched": searched,
            "found": found,
        }));
        // A fresh code that names one time-based token is a sighting of
        // its clock; an old code, or one several tokens show, is not.
        let sighting = match hits.as_slice() {
            [hit]
                if at.abs_diff(now) <= SIGHTING_FRESH_S
                    && rows
                        .get(&hit.credential_id)
                        .is_some_and(|r| r.kind == "totp") =>
            {
                Some((hit.credential_id, hit.offset))
            }
            _ => None,
        };
        self.change(now, |tx, keys| {
            if let Some((credential_id, offset)) = sighting {
                record_sighting(
                    tx,
                    keys,
                    credential_id,
                    now,
                    offset,
                    sighting_source::IDENTIFY,
                )?;
            }
            Ok(((), event))
        })?;
        Ok(hits)
    }

    // ----- audit ----------------------------------------------------------------
}
