//! Opening a held secret: the parameters its codes need, and revealing it
//! for an export, a burn or a push.

use super::*;

/// The fields that say how a credential's codes are computed, whether read
/// with the whole row or alone (for the identify index).
pub(crate) trait CodeParams {
    fn id(&self) -> i64;
    fn kind(&self) -> &str;
    fn algorithm(&self) -> &str;
    fn digits(&self) -> u8;
    fn period(&self) -> Option<u64>;
    fn t0(&self) -> Option<u64>;
    fn counter(&self) -> Option<u64>;
}

macro_rules! code_params {
    ($type:ty) => {
        impl CodeParams for $type {
            fn id(&self) -> i64 {
                self.id
            }
            fn kind(&self) -> &str {
                &self.kind
            }
            fn algorithm(&self) -> &str {
                &self.algorithm
            }
            fn digits(&self) -> u8 {
                self.digits
            }
            fn period(&self) -> Option<u64> {
                self.period
            }
            fn t0(&self) -> Option<u64> {
                self.t0
            }
            fn counter(&self) -> Option<u64> {
                self.counter
            }
        }
    };
}

code_params!(CredentialRow);
code_params!(HeldSecret);

pub(crate) fn binding(row: &impl CodeParams) -> SecretBinding {
    SecretBinding {
        credential_id: row.id(),
        kind: row.kind().to_owned(),
        algorithm: row.algorithm().to_owned(),
        digits: row.digits(),
        period: row.period(),
        t0: row.t0(),
    }
}

/// Rebuilds the OTP parameters of a stored credential.
pub(crate) fn otp_parts(row: &impl CodeParams) -> Result<(Algorithm, Digits, Kind)> {
    let corrupt =
        |what: &str| Error::Database(format!("credential #{} has a bad {what}", row.id()));
    let algorithm: Algorithm = row.algorithm().parse().map_err(|_| corrupt("algorithm"))?;
    let digits = Digits::new(u64::from(row.digits())).map_err(|_| corrupt("digit count"))?;
    let kind = match row.kind() {
        "totp" => Kind::Totp {
            step: TimeStep::new(row.period().unwrap_or(30), row.t0().unwrap_or(0))
                .map_err(|_| corrupt("period"))?,
        },
        "hotp" => Kind::Hotp {
            counter: row.counter().unwrap_or(0),
        },
        _ => return Err(corrupt("type")),
    };
    Ok((algorithm, digits, kind))
}

/// A stored credential with its secret opened.
pub(crate) fn credential_of(key: &VaultKey, row: &CredentialRow) -> Result<Credential> {
    let secret = held_secret(key, row)?;
    let (algorithm, digits, kind) = otp_parts(row)?;
    Ok(Credential {
        secret,
        kind,
        algorithm,
        digits,
        issuer: row.issuer.clone(),
        account: row
            .upn
            .clone()
            .or_else(|| row.label.clone())
            .unwrap_or_default(),
        label_issuer: None,
    })
}

pub(crate) fn held_secret(key: &VaultKey, row: &CredentialRow) -> Result<Secret> {
    match &row.sealed_secret {
        Some(sealed) if row.custody == Custody::Held => Ok(Secret::from_bytes(
            key.open_secret(sealed, &binding(row))?.to_vec(),
        )),
        _ => Err(Error::Refused(format!(
            "the secret of {} was purged; the vault no longer holds it",
            reference_of(row.serial.as_deref(), row.slot, row.id)
        ))),
    }
}

impl<S: Store> Session<S> {
    /// Opens every held secret that `filter` selects, in one read, for an
    /// export. The caller records the export with [`Session::record`].
    pub fn reveal_all(
        &mut self,
        filter: &CredentialFilter,
    ) -> Result<Vec<(TokenInfo, Credential)>> {
        self.require(Permission::Export)?;
        let filter = CredentialFilter {
            held_only: true,
            ..filter.clone()
        };
        let checked = {
            let tx = self.store.read()?;
            tx.credentials(&filter).and_then(|rows| {
                signed::check_credentials(
                    &tx,
                    &self.signer,
                    self.signed,
                    &rows.iter().collect::<Vec<_>>(),
                )?;
                Ok(rows)
            })
        };
        let rows = self.audited(wall_clock(), checked)?;
        rows.iter()
            .map(|row| Ok((info(row), credential_of(&self.key, row)?)))
            .collect()
    }

    // ----- Microsoft Entra ------------------------------------------------------

    /// Opens a held credential's secret for another part of oathdesk (device
    /// burns, exports). The caller records why with [`Session::record`] in
    /// the same breath.
    pub fn reveal(&mut self, token: &TokenRef) -> Result<(TokenInfo, Credential)> {
        self.require(Permission::Export)?;
        let checked = {
            let keys = Keys {
                key: &self.key,
                signer: &self.signer,
                enforced: self.signed,
            };
            let tx = self.store.read()?;
            resolve_checked(&tx, &keys, token)
        };
        let row = self.audited(wall_clock(), checked)?;
        Ok((info(&row), credential_of(&self.key, &row)?))
    }
}
