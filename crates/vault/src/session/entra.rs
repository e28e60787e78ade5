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
