//! Burns: a secret is recorded before it is written into a programmable
//! token, and confirmed after.

use super::*;

impl<S: Store> Session<S> {
    /// Records a secret that is about to be burned into a programmable
    /// token, in state `burning`, before anything is written to the token:
    /// whatever happens to the burn, the vault knows which secret was meant
    /// for which device serial and slot.
    ///
    /// A live credential already in that slot is refused unless `replace`;
    /// replaced, it is retired, detached from the device and its secret
    /// purged (the token no longer holds it). One still `burning` — a burn
    /// cut short — is always superseded: the token never confirmed it. A
    /// retired credential left in the slot is detached.
    pub fn begin_burn(&mut self, token: NewToken, replace: bool, now: u64) -> Result<TokenInfo> {
        self.begin_burn_of(token, replace, None, now)
    }

    /// [`Session::begin_burn`] of a seed the caller just generated with
    /// `oathdesk_otp::seed::generate`: the burn's audit entry and a signed
    /// record keep the seed's provenance ([`Session::seed_provenance`]); `command` names the
    /// command, e.g. `oathdesk device burn --generate`.
    pub fn begin_generated_burn(
        &mut self,
        token: NewToken,
        replace: bool,
        command: &str,
        now: u64,
    ) -> Result<TokenInfo> {
        let provenance = self.provenance_of(command, now);
        self.begin_burn_of(token, replace, Some(provenance), now)
    }

    fn begin_burn_of(
        &mut self,
        token: NewToken,
        replace: bool,
        seed: Option<super::SeedProvenance>,
        now: u64,
    ) -> Result<TokenInfo> {
        let Some(serial) = token.serial.clone() else {
            return Err(Error::Invalid(
                "a burn needs the device serial (read from the token)".into(),
            ));
        };
        crate::model::check_serial(serial.trim())?;
        self.require(Permission::InventoryWrite)?;
        let slot = token.slot;
        let operator = self.operator.clone();
        let (row, purged) = self.change(now, |tx, key| {
            let reference = reference_of(Some(&serial), slot, 0);
            let occupants: Vec<CredentialRow> = tx
                .credentials(&CredentialFilter {
                    device_serial: Some(serial.clone()),
                    slot,
                    ..CredentialFilter::default()
                })?
                .into_iter()
                .filter(|r| r.slot == slot)
                .collect();
            signed::check_credentials(
                tx,
                key.signer,
                key.enforced,
                &occupants.iter().collect::<Vec<_>>(),
            )?;
            let mut superseded = Vec::new();
            let mut purged = false;
            for mut old in occupants {
                if old.state != State::Retired {
                    if old.state != State::Burning && !replace {
                        return Err(Error::Refused(format!(
                            "the vault records {} in {reference} ({}{}): pass --overwrite to replace it",
                            reference_of(None, None, old.id),
                            old.state,
                            old.upn
                                .as_deref()
                                .map(|u| format!(", {u}"))
                                .unwrap_or_default()
                        )));
                    }
                    let note = format!("superseded by a new burn of {reference}");
                    move_state(tx, &mut old, State::Retired, &operator, Some(&note), now)?;
                    tx.credential_update(&old)?;
                    if old.custody == Custody::Held {
                        tx.credential_purge(old.id, now)?;
                        forget_released(tx, old.id, None)?;
                        purged = true;
                    }
                }
                tx.credential_detach(old.id, now)?;
                key.signer.resign_credentials(tx, &[old.id])?;
                superseded.push(old.id);
            }
            let new = NewToken {
                state: State::Burning,
                ..token
            };
            let row = insert_tokens(tx, key, vec![new], now)?.remove(0);
            let mut event = AuditEvent::ok("device.burn.begin")
                .credential(reference_of(row.serial.as_deref(), row.slot, row.id))
                .detail(json!({"credential_id": row.id, "superseded": superseded}));
            if let Some(seed) = &seed {
                super::provenance::record_provenance(tx, key, row.id, seed, now)?;
                event.detail["seed"] = json!(seed);
            }
            event.user = row.upn.clone();
            Ok(((row, purged), event))
        })?;
        if purged {
            self.store.scrub()?;
        }
        Ok(info(&row))
    }

    /// Marks a burn confirmed by the token: `burning → burned`, then
    /// `assigned` when the credential is for a user.
    pub fn finish_burn(&mut self, credential_id: i64, note: &str, now: u64) -> Result<TokenInfo> {
        self.finish_burn_with(credential_id, note, None, now)
    }

    /// [`Session::finish_burn`], recording the display time-out (seconds)
    /// the burn wrote: a later clock write to a single-profile token, which
    /// rewrites its whole configuration, keeps it
    /// ([`Session::recorded_display_timeout`]).
    pub fn finish_burn_with(
        &mut self,
        credential_id: i64,
        note: &str,
        display_timeout: Option<u64>,
        now: u64,
    ) -> Result<TokenInfo> {
        self.require(Permission::InventoryWrite)?;
        let operator = self.operator.clone();
        self.change(now, |tx, keys| {
            let mut row = resolve_checked(tx, keys, &TokenRef::Id(credential_id))?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            if row.state != State::Burning {
                return Err(Error::Refused(format!(
                    "{reference} is {}, not burning: there is no burn to finish",
                    row.state
                )));
            }
            move_state(tx, &mut row, State::Burned, &operator, Some(note), now)?;
            if let Some(upn) = row.upn.clone() {
                move_state(tx, &mut row, State::Assigned, &operator, Some(&upn), now)?;
            }
            update_credential(tx, keys, &row)?;
            let mut detail = json!({"note": note, "credential_id": row.id});
            if let Some(seconds) = display_timeout {
                detail["display_timeout"] = json!(seconds);
            }
            let mut event = AuditEvent::ok("device.burn")
                .credential(reference)
                .detail(detail);
            event.user = row.upn.clone();
            Ok((info(&row), event))
        })
    }

    // ----- secret access ----------------------------------------------------
}
