//! What Microsoft Entra holds of each credential (signed rows).

use super::*;

impl<S: Store> Session<S> {
    /// What Entra holds of each credential in `tenant`.
    pub fn entra_links(&mut self, tenant: &str) -> Result<Vec<EntraLink>> {
        self.require(Permission::InventoryRead)?;
        let checked = {
            let tx = self.store.read()?;
            tx.entra_links(tenant).and_then(|links| {
                check_entra_links(&tx, &self.signer, self.signed, &links)?;
                Ok(links)
            })
        };
        self.audited(wall_clock(), checked)
    }

    /// What Entra holds of one credential, in every tenant it was pushed to.
    pub fn entra_links_of(&mut self, credential_id: i64) -> Result<Vec<EntraLink>> {
        self.require(Permission::InventoryRead)?;
        let checked = {
            let tx = self.store.read()?;
            tx.entra_links_all().and_then(|links| {
                let links: Vec<EntraLink> = links
                    .into_iter()
                    .filter(|l| l.credential_id == credential_id)
                    .collect();
                check_entra_links(&tx, &self.signer, self.signed, &links)?;
                Ok(links)
            })
        };
        self.audited(wall_clock(), checked)
    }

    /// What Entra holds of one credential in `tenant`, if anything.
    pub fn entra_link(&mut self, tenant: &str, credential_id: i64) -> Result<Option<EntraLink>> {
        self.require(Permission::InventoryRead)?;
        let checked = {
            let tx = self.store.read()?;
            tx.entra_link(tenant, credential_id).and_then(|link| {
                check_entra_links(&tx, &self.signer, self.signed, link.as_slice())?;
                Ok(link)
            })
        };
        self.audited(wall_clock(), checked)
    }

    /// Writes links and forgets others in one transaction with `event` in
    /// the audit log: a step of a push is recorded whole or not at all.
    pub fn entra_record(
        &mut self,
        put: &[EntraLink],
        forget: &[(String, i64)],
        event: AuditEvent,
        now: u64,
    ) -> Result<()> {
        self.require(Permission::InventoryWrite)?;
        for link in put {
            check_text("Entra serial", &link.serial)?;
        }
        self.change(now, |tx, keys| {
            for (tenant, credential_id) in forget {
                tx.entra_link_delete(tenant, *credential_id)?;
                tx.row_mac_delete(
                    kind::ENTRA_LINK,
                    &signed::entra_link_id(tenant, *credential_id),
                )?;
            }
            let mut macs = Vec::with_capacity(put.len());
            for link in put {
                tx.entra_link_put(link)?;
                macs.push(keys.signer.entra_link(link));
            }
            keys.signer.put(tx, kind::ENTRA_LINK, macs)?;
            Ok(((), event))
        })
    }
}

pub(crate) fn check_entra_links(
    tx: &impl StoreTx,
    signer: &Signer,
    enforced: bool,
    links: &[EntraLink],
) -> Result<()> {
    let expected: Vec<(String, String, Vec<u8>)> = links
        .iter()
        .map(|link| {
            let (id, mac) = signer.entra_link(link);
            let name = format!(
                "the Entra link of credential {} in {}",
                link.credential_id, link.tenant
            );
            (id, name, mac)
        })
        .collect();
    signed::check(tx, enforced, kind::ENTRA_LINK, &expected)
}

/// What `token lost` and `token retire` do to the token in Entra, by the
/// signed setting [`settings::ENTRA_ON_LOST`]: a lost token left active
/// there still signs its finder in, so the vault never keeps quiet about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLost {
    /// Leave Entra alone; `entra sync` reports the token until someone acts.
    Report,
    /// Unassign it from its user (it returns to the inventory, unusable).
    Unassign,
    /// Unassign it and delete it from Entra's inventory.
    Delete,
}

impl OnLost {
    /// Every policy, in the order of their stored values.
    pub const ALL: [OnLost; 3] = [OnLost::Report, OnLost::Unassign, OnLost::Delete];

    /// The policy a stored setting value names (an unknown value reads as
    /// `report`, which changes nothing in Entra).
    pub fn from_setting(value: u64) -> OnLost {
        match value {
            1 => OnLost::Unassign,
            2 => OnLost::Delete,
            _ => OnLost::Report,
        }
    }

    /// The value stored in the signed setting.
    pub fn setting_value(self) -> u64 {
        match self {
            OnLost::Report => 0,
            OnLost::Unassign => 1,
            OnLost::Delete => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OnLost::Report => "report",
            OnLost::Unassign => "unassign",
            OnLost::Delete => "delete",
        }
    }
}

impl std::fmt::Display for OnLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OnLost {
    type Err = Error;
    fn from_str(text: &str) -> Result<OnLost> {
        OnLost::ALL
            .into_iter()
            .find(|policy| policy.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "'{text}' is not an entra.on_lost policy: use report, unassign or delete"
                ))
            })
    }
}

/// A setting's value from its text: a number, or for `entra.on_lost`
/// one of its policy names.
pub fn parse_value(name: &str, text: &str) -> Result<u64> {
    if !settings::ALL.iter().any(|(known, _)| *known == name) {
        let names: Vec<&str> = settings::ALL.iter().map(|(n, _)| *n).collect();
        return Err(Error::Invalid(format!(
            "unknown setting '{name}': use one of {}",
            names.join(", ")
        )));
    }
    if name == settings::ENTRA_ON_LOST.0 {
        return text.parse::<OnLost>().map(OnLost::setting_value);
    }
    text.trim()
        .parse()
        .map_err(|_| Error::Invalid(format!("{name} takes a whole number, not '{text}'")))
}

/// A setting's value as people read it (`entra.on_lost` by name).
pub fn describe(name: &str, value: u64) -> String {
    if name == settings::ENTRA_ON_LOST.0 {
        return OnLost::from_setting(value).to_string();
    }
    value.to_string()
}

/// The tenant name under which `export entra-csv` (and `entra-json`)
/// records the serials it wrote: not a real tenant (those are ids or domains, never in
/// parentheses), so Graph work never touches these links; a push to any
/// tenant recognises a serial recorded here as this vault's own upload.
pub const CSV_EXPORT_TENANT: &str = "(entra file export)";

/// A token lost or retired in the vault whose Entra link says it is still
/// assigned or activated there: the `entra.on_lost` queue, kept in the
/// tokens' own state, so nothing can fall out of it — it empties when Entra
/// no longer has the token assigned.
#[derive(Clone, Debug)]
pub struct LostInEntra {
    pub token: TokenInfo,
    pub link: EntraLink,
}

/// True if a link says Entra still lets the token sign someone in.
pub fn link_is_live(link: &EntraLink) -> bool {
    link.user_id.is_some() || link.status == "activated"
}

impl<S: Store> Session<S> {
    /// The `entra.on_lost` policy (signed setting; default `report`).
    pub fn entra_on_lost(&mut self) -> Result<OnLost> {
        self.require(Permission::InventoryRead)?;
        self.setting_value(settings::ENTRA_ON_LOST)
            .map(OnLost::from_setting)
    }

    /// Tokens lost or retired in the vault that are still assigned or
    /// activated in `tenant` as far as the vault's links say (`only`: one
    /// credential).
    pub fn entra_lost_live(&mut self, tenant: &str, only: Option<i64>) -> Result<Vec<LostInEntra>> {
        let links = self.entra_links(tenant)?;
        let mut lost = Vec::new();
        for link in links {
            if only.is_some_and(|id| id != link.credential_id) || !link_is_live(&link) {
                continue;
            }
            let (token, _) = self.token(&TokenRef::Id(link.credential_id))?;
            if matches!(token.state, State::Lost | State::Retired) {
                lost.push(LostInEntra { token, link });
            }
        }
        Ok(lost)
    }

    /// Records the serials an Entra CSV export wrote (under
    /// [`CSV_EXPORT_TENANT`], signed, with `event` in the audit log), so
    /// that a push recognises the tokens an admin uploaded from that file as
    /// this vault's without `--adopt`.
    pub fn entra_record_csv_export(
        &mut self,
        exported: &[(i64, String)],
        event: AuditEvent,
        now: u64,
    ) -> Result<()> {
        let links: Vec<EntraLink> = exported
            .iter()
            .map(|(credential_id, serial)| EntraLink {
                tenant: CSV_EXPORT_TENANT.to_owned(),
                credential_id: *credential_id,
                serial: serial.clone(),
                device_id: None,
                user_id: None,
                user_upn: None,
                method_id: None,
                status: "exported".into(),
                last_counter: None,
                last_sync: None,
                last_error: None,
                updated_at: now,
            })
            .collect();
        self.entra_record(&links, &[], event, now)
    }

    /// The credential this vault exported to an Entra CSV under `serial`,
    /// if any.
    pub fn entra_csv_exported(&mut self, serial: &str) -> Result<Option<i64>> {
        Ok(self
            .entra_links(CSV_EXPORT_TENANT)?
            .into_iter()
            .find(|link| link.serial == serial)
            .map(|link| link.credential_id))
    }
}
