//! Signed rows: no row decides an action unless the vault signed it.
//!
//! Sealed secrets and the audit chain were always authenticated; the rows
//! that decide *who* and *whether* — which user a credential belongs to,
//! its state, a user's UPN, a rate limit, an operator's role — were plain
//! columns that anyone with write access to the database could edit
//! (threat model, actor A3). Each such row now carries an HMAC-SHA256 under
//! a key derived from the vault key, over every field that decides an
//! action, bound to the row's kind and id, kept in the table `row_macs`.
//!
//! - A row is signed in the transaction that writes it.
//! - A row is checked before it is acted on; one whose MAC is missing or
//!   wrong is refused with [`Error::Altered`] and audited, never re-signed.
//! - `verify_all` checks every row (`oathdesk vault verify`).
//! - A vault from before signed rows is signed whole by the first admin who
//!   unlocks it (`sign_all`), which the audit log records as
//!   `vault.sign_rows`. From then on (the `row_macs` entry `vault/rows_signed`, or that
//!   audit entry if the key was deleted) a missing MAC is an altered row.
//!
//! A credential's MAC covers the serial of its device and the UPN of its
//! user as joined: swapping two users' UPNs, or two credentials' users,
//! breaks the MACs of the credentials involved.

use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::crypto::VaultKey;
use crate::error::{Error, Result};
use crate::model::{CredentialRow, Device, EntraLink, User};
use crate::store::{CredentialFilter, OperatorRow, RecordRow, SightingRow, StoreTx};

type HmacSha256 = Hmac<sha2::Sha256>;

/// The kinds of signed rows, as stored in `row_macs.kind`.
pub mod kind {
    pub const CREDENTIAL: &str = "credential";
    pub const USER: &str = "user";
    pub const DEVICE: &str = "device";
    pub const SETTING: &str = "setting";
    pub const OPERATOR: &str = "operator";
    pub const ENTRA_LINK: &str = "entra_link";
    pub const RELEASED: &str = "released_step";
    /// Records (see `crate::session::records`), one kind each.
    pub const USER_FACTS: &str = "user_facts";
    pub const POLICY: &str = "policy";
    pub const APPROVAL: &str = "approval";
    pub const NOTICE: &str = "notice";
    /// The break-glass recovery slot (`crate::session::recovery`): its
    /// recipient is signed so that a rekey never wraps the key to a
    /// recipient someone wrote into the database.
    pub const RECOVERY: &str = "recovery_slot";
    /// OpenID Connect (`crate::session::oidc`): which group or app role
    /// gives which role, and which provider identity is which account.
    pub const OIDC_MAP: &str = "oidc_map";
    pub const OIDC_LINK: &str = "oidc_link";
    /// A self-service delivery link (`crate::session::selfservice`), by
    /// the SHA-256 of its secret: whether it still confirms a delivery.
    pub const DELIVERY_LINK: &str = "delivery_link";
    /// Custody of an exported token (`crate::session::custody`): to whom
    /// its secret went, when, in which file.
    pub const CUSTODY: &str = "custody";
    /// A drift sighting (`crate::session::fleet`): which step a token
    /// showed and when — signed, since it decides which tokens are
    /// replaced.
    pub const SIGHTING: &str = "drift_sighting";
    /// A token's clock set by oathdesk (`crate::session::device_writes`):
    /// the drift fit starts again from it. One per credential, the latest.
    pub const CLOCK_SYNC: &str = "clock_sync";
    /// Where a generated seed came from (`crate::session::provenance`),
    /// one per credential, written with the credential.
    pub const SEED_PROVENANCE: &str = "seed_provenance";
    /// A credential's sightings in one row (`crate::drift_series`), what
    /// the fleet report reads; and, under the id `SERIES_COMPLETE` (`"complete"`), the
    /// mark that every credential's series was built.
    pub const DRIFT_SERIES: &str = "drift_series";
    pub const RECORDS: [&str; 11] = [
        USER_FACTS,
        POLICY,
        APPROVAL,
        NOTICE,
        RECOVERY,
        OIDC_MAP,
        OIDC_LINK,
        DELIVERY_LINK,
        CUSTODY,
        CLOCK_SYNC,
        SEED_PROVENANCE,
    ];
    pub const ALL: [&str; 20] = [
        CREDENTIAL,
        USER,
        DEVICE,
        SETTING,
        OPERATOR,
        ENTRA_LINK,
        RELEASED,
        USER_FACTS,
        POLICY,
        APPROVAL,
        NOTICE,
        RECOVERY,
        OIDC_MAP,
        OIDC_LINK,
        DELIVERY_LINK,
        CUSTODY,
        SIGHTING,
        CLOCK_SYNC,
        SEED_PROVENANCE,
        DRIFT_SERIES,
    ];
}

/// The `drift_series` MAC whose presence (and validity) says that every
/// credential with sightings has its series: written with a new vault, and
/// by the first fleet report after the upgrade that added series.
pub(crate) const SERIES_COMPLETE: &str = "complete";

/// The `row_macs` entry (kind, id) whose presence says the vault's rows
/// are signed (kept there so that a session's check reads it in the same
/// round trip as the operator's signature).
pub(crate) const SIGNED_MARKER: (&str, &str) = ("vault", "rows_signed");
/// The audit action of the first signing.
pub(crate) const SIGN_ACTION: &str = crate::audit::Action::SignRows.name();

/// A field of a signed row. `None` and `Some("")` differ.
enum Field<'a> {
    Text(Option<&'a str>),
    Number(Option<i128>),
    Bytes(&'a [u8]),
}

fn text(value: &str) -> Field<'_> {
    Field::Text(Some(value))
}

fn opt_text(value: Option<&str>) -> Field<'_> {
    Field::Text(value)
}

fn number(value: impl Into<i128>) -> Field<'static> {
    Field::Number(Some(value.into()))
}

fn opt_number<T: Into<i128>>(value: Option<T>) -> Field<'static> {
    Field::Number(value.map(Into::into))
}

/// The key that signs rows, derived from the vault key.
pub struct Signer {
    /// HMAC keyed once: signing an import of 100,000 credentials computes
    /// 300,000 MACs, and keying is two of the few compression rounds each.
    keyed: HmacSha256,
}

impl Signer {
    pub fn new(key: &VaultKey) -> Signer {
        let key: Zeroizing<[u8; 32]> = key.derive(b"oathdesk row mac v1");
        Signer {
            keyed: <HmacSha256 as Mac>::new_from_slice(key.as_ref()).expect("HMAC takes any key"),
        }
    }

    /// HMAC over the kind, the id and the fields, each length-prefixed;
    /// a field is a tag (0 none, 1 text, 2 number) and its bytes.
    fn mac(&self, kind: &str, id: &str, fields: &[Field<'_>]) -> Vec<u8> {
        // The message is laid out in one buffer and hashed in one call:
        // feeding HMAC field by field (forty small updates a credential) cost
        // more than the hashing itself.
        let mut message = Vec::with_capacity(256);
        let mut put = |tag: Option<u8>, bytes: &[u8]| {
            let length = bytes.len() + usize::from(tag.is_some());
            message.extend_from_slice(&(length as u64).to_be_bytes());
            if let Some(tag) = tag {
                message.push(tag);
            }
            message.extend_from_slice(bytes);
        };
        put(None, kind.as_bytes());
        put(None, id.as_bytes());
        for field in fields {
            match field {
                Field::Text(None) | Field::Number(None) => put(Some(0), b""),
                Field::Text(Some(value)) => put(Some(1), value.as_bytes()),
                Field::Number(Some(value)) => put(Some(2), &value.to_be_bytes()),
                Field::Bytes(value) => put(Some(3), value),
            }
        }
        let mut mac = self.keyed.clone();
        mac.update(&message);
        mac.finalize().into_bytes().to_vec()
    }

    /// Every field of a credential that decides what is done with it.
    pub(crate) fn credential(&self, row: &CredentialRow) -> (String, Vec<u8>) {
        let upn = row.upn.as_deref().map(str::to_lowercase);
        let id = row_id(row.id);
        let mac = self.mac(
            kind::CREDENTIAL,
            &id,
            &[
                opt_number(row.device_id),
                opt_text(row.serial.as_deref()),
                opt_number(row.slot),
                text(&row.kind),
                text(&row.algorithm),
                number(row.digits),
                opt_number(row.period),
                opt_number(row.t0),
                opt_number(row.counter),
                text(row.state.name()),
                text(row.custody.name()),
                number(u8::from(row.sealed_secret.is_some())),
                opt_number(row.user_id),
                opt_text(upn.as_deref()),
                opt_number(row.drift_steps),
                opt_number(row.purge_after),
            ],
        );
        (id, mac)
    }

    pub(crate) fn user(&self, user: &User) -> (String, Vec<u8>) {
        let id = row_id(user.id);
        let mac = self.mac(kind::USER, &id, &[text(&user.upn)]);
        (id, mac)
    }

    pub(crate) fn device(&self, device: &Device) -> (String, Vec<u8>) {
        let id = row_id(device.id);
        let mac = self.mac(
            kind::DEVICE,
            &id,
            &[
                text(&device.serial),
                text(device.kind.name()),
                number(device.slots),
            ],
        );
        (id, mac)
    }

    pub(crate) fn setting(&self, name: &str, value: &str) -> (String, Vec<u8>) {
        (
            name.to_owned(),
            self.mac(kind::SETTING, name, &[text(value)]),
        )
    }

    pub(crate) fn operator(&self, row: &OperatorRow) -> (String, Vec<u8>) {
        let mac = self.mac(
            kind::OPERATOR,
            &row.name,
            &[text(&row.role), text(&row.recipient)],
        );
        (row.name.clone(), mac)
    }

    pub(crate) fn entra_link(&self, link: &EntraLink) -> (String, Vec<u8>) {
        let id = entra_link_id(&link.tenant, link.credential_id);
        let mac = self.mac(
            kind::ENTRA_LINK,
            &id,
            &[
                text(&link.serial),
                opt_text(link.device_id.as_deref()),
                opt_text(link.user_id.as_deref()),
                opt_text(link.user_upn.as_deref()),
                opt_text(link.method_id.as_deref()),
                text(&link.status),
                opt_number(link.last_counter),
            ],
        );
        (id, mac)
    }

    pub(crate) fn released(&self, credential_id: i64, counter: u64, at: u64) -> (String, Vec<u8>) {
        let id = released_id(credential_id, counter);
        let mac = self.mac(kind::RELEASED, &id, &[number(at)]);
        (id, mac)
    }

    /// A drift sighting: its id binds credential, moment and source.
    /// Public for the fleet bench, which checks millions of them.
    pub fn sighting(&self, row: &SightingRow) -> (String, Vec<u8>) {
        let id = sighting_id(row);
        let mac = self.mac(kind::SIGHTING, &id, &[number(row.offset_steps)]);
        (id, mac)
    }

    /// A credential's drift series, bound to the credential.
    pub fn drift_series(&self, credential_id: i64, points: &[u8]) -> (String, Vec<u8>) {
        let id = row_id(credential_id);
        let mac = self.mac(kind::DRIFT_SERIES, &id, &[Field::Bytes(points)]);
        (id, mac)
    }

    /// The mark that every credential's drift series was built.
    pub(crate) fn series_complete(&self) -> (String, Vec<u8>) {
        let id = SERIES_COMPLETE.to_owned();
        let mac = self.mac(kind::DRIFT_SERIES, &id, &[]);
        (id, mac)
    }

    /// A record: its state and body, bound to its kind and id.
    pub(crate) fn record(&self, row: &RecordRow) -> Vec<u8> {
        self.mac(&row.kind, &row.id, &[text(&row.state), text(&row.body)])
    }

    /// Signs rows of one kind in the transaction.
    pub(crate) fn put(
        &self,
        tx: &impl StoreTx,
        kind: &str,
        macs: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if macs.is_empty() {
            return Ok(());
        }
        tx.row_macs_put(kind, &macs)
    }

    /// Signs credentials as they are now in the database (after an update
    /// that SQL made, such as a purge or a detach).
    pub(crate) fn resign_credentials(&self, tx: &impl StoreTx, ids: &[i64]) -> Result<()> {
        let mut macs = Vec::with_capacity(ids.len());
        for id in ids {
            for row in tx.credentials(&CredentialFilter {
                id: Some(*id),
                ..CredentialFilter::default()
            })? {
                macs.push(self.credential(&row));
            }
        }
        self.put(tx, kind::CREDENTIAL, macs)
    }
}

pub(crate) fn entra_link_id(tenant: &str, credential_id: i64) -> String {
    format!("{tenant}/{credential_id}")
}

pub(crate) fn sighting_id(row: &SightingRow) -> String {
    format!(
        "{}@{:020}:{}",
        row_id(row.credential_id),
        row.at,
        row.source
    )
}

/// What a credential's drift series is called in messages.
pub(crate) fn series_name(credential_id: i64) -> String {
    format!("drift series of credential {credential_id}")
}

/// Whether the vault holds a mark (valid or not) that its series are complete.
pub(crate) fn series_marked(tx: &impl StoreTx) -> Result<bool> {
    Ok(!tx
        .row_macs_of(&[(kind::DRIFT_SERIES, SERIES_COMPLETE.to_owned())])?
        .is_empty())
}

/// What a sighting is called in messages.
pub(crate) fn sighting_name(row: &SightingRow) -> String {
    format!(
        "drift sighting of credential {} at {} ({})",
        row.credential_id, row.at, row.source
    )
}

pub(crate) fn released_id(credential_id: i64, counter: u64) -> String {
    format!("{}:{counter:020}", row_id(credential_id))
}

/// A numeric row id as the key of its MAC (see [`crate::store::row_key`]).
pub(crate) fn row_id(id: i64) -> String {
    crate::store::row_key(id)
}

/// Whether this vault's rows are signed (a missing MAC is then an altered
/// row). Deleting the marker does not switch checking off: the audit log
/// keeps the signing.
pub(crate) fn enforced(tx: &impl StoreTx) -> Result<bool> {
    let (kind, id) = SIGNED_MARKER;
    Ok(!tx.row_macs_of(&[(kind, id.to_owned())])?.is_empty()
        || tx.audit_count_action(SIGN_ACTION)? > 0)
}

pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks rows of one kind: `rows` are (id, what to call it, expected MAC).
/// The first that fails is the error.
pub(crate) fn check(
    tx: &impl StoreTx,
    enforced: bool,
    kind: &'static str,
    rows: &[(String, String, Vec<u8>)],
) -> Result<()> {
    let expected: Vec<Expected> = rows
        .iter()
        .map(|(id, name, mac)| (kind, id.clone(), name.clone(), Some(mac.clone())))
        .collect();
    check_all(tx, enforced, &expected)
}

/// A row that decides: its kind, its id, what to call it, and the MAC it
/// must carry — or, with `None`, that it must carry none (a signed row that
/// was deleted leaves its MAC behind).
pub(crate) type Expected = (&'static str, String, String, Option<Vec<u8>>);

/// Checks rows of any kinds in one round trip; the first that fails is the
/// error.
pub(crate) fn check_all(tx: &impl StoreTx, enforced: bool, rows: &[Expected]) -> Result<()> {
    if !enforced || rows.is_empty() {
        return Ok(());
    }
    let keys: Vec<(&str, String)> = rows.iter().map(|(k, id, _, _)| (*k, id.clone())).collect();
    check_stored(enforced, rows, tx.row_macs_of(&keys)?)
}

/// Checks rows against the MACs stored for them, read already (as
/// (kind, id, MAC); a row without one is absent); the first that fails is
/// the error.
pub(crate) fn check_stored(
    enforced: bool,
    rows: &[Expected],
    stored: Vec<(String, String, Vec<u8>)>,
) -> Result<()> {
    if !enforced {
        return Ok(());
    }
    let stored: std::collections::HashMap<(String, String), Vec<u8>> = stored
        .into_iter()
        .map(|(kind, id, mac)| ((kind, id), mac))
        .collect();
    for (kind, id, name, expected) in rows {
        let found = stored.get(&((*kind).to_owned(), id.clone()));
        let fine = match (found, expected) {
            (Some(mac), Some(expected)) => same(mac, expected),
            (None, None) => true,
            _ => false,
        };
        if !fine {
            return Err(Error::Altered { row: name.clone() });
        }
    }
    Ok(())
}

/// What a record is called in messages: `approval A-17`, `data on file of user 4`.
pub fn record_name(kind: &str, id: &str) -> String {
    match kind {
        kind::USER_FACTS => format!("data on file of user {}", id.trim_start_matches('0')),
        kind::POLICY => format!("{id} policy"),
        _ => format!("{} {id}", kind.replace('_', " ")),
    }
}

/// What a credential is called in messages: `credential 17 (serial X:3)`.
pub fn credential_name(row: &CredentialRow) -> String {
    match (&row.serial, row.slot) {
        (Some(serial), Some(slot)) => format!("credential {} (serial {serial}:{slot})", row.id),
        (Some(serial), None) => format!("credential {} (serial {serial})", row.id),
        (None, _) => format!("credential {}", row.id),
    }
}

/// Checks credentials before they are acted on.
pub(crate) fn check_credentials(
    tx: &impl StoreTx,
    signer: &Signer,
    enforced: bool,
    rows: &[&CredentialRow],
) -> Result<()> {
    if !enforced {
        return Ok(());
    }
    let expected: Vec<(String, String, Vec<u8>)> = rows
        .iter()
        .map(|row| {
            let (id, mac) = signer.credential(row);
            (id, credential_name(row), mac)
        })
        .collect();
    check(tx, enforced, kind::CREDENTIAL, &expected)
}

/// One row that does not carry the vault's signature.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BadRow {
    pub kind: &'static str,
    pub id: String,
    /// `credential 17 (serial X:3)`, `user 4 (alice@example.com)`…
    pub name: String,
    /// `altered` (the MAC does not match), `unsigned` (no MAC),
    /// `deleted` (a MAC whose row is gone), or for a drift series
    /// `disagrees` (it does not say what the credential's sightings say) and
    /// `missing` (sightings without their series); a row whose parent is
    /// gone says which (`its device is gone`).
    pub problem: &'static str,
}

/// What `verify_all` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RowReport {
    /// Rows checked, all kinds.
    pub checked: u64,
    pub bad: Vec<BadRow>,
    /// Whether the vault's rows are signed at all (an old vault waits for
    /// its first admin unlock).
    pub signed: bool,
    /// The marker was deleted although the audit log says the rows were signed.
    pub marker_missing: bool,
}

/// A signed row as it should be: (kind, id, name, MAC).
type Signed = (&'static str, String, String, Vec<u8>);

/// Every signed row with its expected MAC.
fn expected_all(tx: &impl StoreTx, signer: &Signer, settings: &[&str]) -> Result<Vec<Signed>> {
    let mut all = Vec::new();
    for row in tx.credentials(&CredentialFilter::default())? {
        let (id, mac) = signer.credential(&row);
        all.push((kind::CREDENTIAL, id, credential_name(&row), mac));
    }
    for user in tx.users()? {
        let (id, mac) = signer.user(&user);
        all.push((
            kind::USER,
            id,
            format!("user {} ({})", user.id, user.upn),
            mac,
        ));
    }
    for device in tx.devices()? {
        let (id, mac) = signer.device(&device);
        let name = format!("device {} (serial {})", device.id, device.serial);
        all.push((kind::DEVICE, id, name, mac));
    }
    for name in settings {
        if let Some(value) = tx.meta_get(&format!("setting.{name}"))? {
            let (id, mac) = signer.setting(name, &value);
            all.push((kind::SETTING, id, format!("setting {name}"), mac));
        }
    }
    for operator in tx.operators()? {
        let (id, mac) = signer.operator(&operator);
        let name = format!("operator {} (role {})", operator.name, operator.role);
        all.push((kind::OPERATOR, id, name, mac));
    }
    for link in tx.entra_links_all()? {
        let (id, mac) = signer.entra_link(&link);
        let name = format!(
            "Entra link of credential {} in {}",
            link.credential_id, link.tenant
        );
        all.push((kind::ENTRA_LINK, id, name, mac));
    }
    for record_kind in kind::RECORDS {
        for row in tx.records(record_kind, None)? {
            let mac = signer.record(&row);
            let name = record_name(&row.kind, &row.id);
            all.push((record_kind, row.id, name, mac));
        }
    }
    for (credential_id, counter, at) in tx.released_all()? {
        let (id, mac) = signer.released(credential_id, counter, at);
        let name = format!("released step {counter} of credential {credential_id}");
        all.push((kind::RELEASED, id, name, mac));
    }
    for row in tx.sightings(None)? {
        let (id, mac) = signer.sighting(&row);
        all.push((kind::SIGHTING, id, sighting_name(&row), mac));
    }
    for (credential_id, points) in tx.drift_series(None)? {
        let (id, mac) = signer.drift_series(credential_id, &points);
        all.push((kind::DRIFT_SERIES, id, series_name(credential_id), mac));
    }
    if series_marked(tx)? {
        let (id, mac) = signer.series_complete();
        let name = "the mark that every drift series was built".to_owned();
        all.push((kind::DRIFT_SERIES, id, name, mac));
    }
    Ok(all)
}

/// Checks every signed row.
pub(crate) fn verify_all(
    tx: &impl StoreTx,
    signer: &Signer,
    settings: &[&str],
) -> Result<RowReport> {
    let signed = enforced(tx)?;
    let (marker_kind, marker_id) = SIGNED_MARKER;
    let marker_missing = signed
        && tx
            .row_macs_of(&[(marker_kind, marker_id.to_owned())])?
            .is_empty();
    let mut stored: std::collections::HashMap<&str, std::collections::HashMap<String, Vec<u8>>> =
        Default::default();
    for kind in kind::ALL {
        stored.insert(kind, tx.row_macs(kind)?.into_iter().collect());
    }
    let mut report = RowReport {
        signed,
        marker_missing,
        ..RowReport::default()
    };
    let mut seen: std::collections::HashSet<(&str, String)> = Default::default();
    for (kind, id, name, expected) in expected_all(tx, signer, settings)? {
        report.checked += 1;
        seen.insert((kind, id.clone()));
        let problem = match stored[kind].get(&id) {
            Some(mac) if same(mac, &expected) => continue,
            Some(_) => "altered",
            None => "unsigned",
        };
        report.bad.push(BadRow {
            kind,
            id,
            name,
            problem,
        });
    }
    // oathdesk deletes a row's MAC with the row: a MAC left alone is a row
    // deleted behind its back (a setting reset to its default, a released
    // step forgotten so that its code would pass as proof of delivery).
    for kind in kind::ALL {
        let mut orphans: Vec<&String> = stored[kind]
            .keys()
            .filter(|id| !seen.contains(&(kind, (*id).clone())))
            .collect();
        orphans.sort();
        for id in orphans {
            report.bad.push(BadRow {
                kind,
                id: id.clone(),
                name: format!("{} {id}", kind.replace('_', " ")),
                problem: "deleted",
            });
        }
    }
    report
        .bad
        .extend(series_disagreements(tx, series_marked(tx)?)?);
    report.bad.extend(orphaned(tx)?);
    Ok(report)
}

/// The rows whose device, user or credential is gone: a row deleted
/// behind oathdesk's back that carried its MAC in itself (a device, a user,
/// a credential) leaves no MAC behind, but its children say it was there.
fn orphaned(tx: &impl StoreTx) -> Result<Vec<BadRow>> {
    Ok(tx
        .orphans()?
        .into_iter()
        .map(|(child, id, parent, parent_id)| {
            let (kind, problem) = match (child.as_str(), parent.as_str()) {
                ("credentials", "devices") => (kind::CREDENTIAL, "its device is gone"),
                ("credentials", _) => (kind::CREDENTIAL, "its user is gone"),
                _ => ("event", "its credential is gone"),
            };
            let singular = |table: &str| table.trim_end_matches('s').to_owned();
            BadRow {
                kind,
                id: crate::store::row_key(id),
                name: format!(
                    "{} {id} (refers to {} {parent_id})",
                    singular(&child),
                    singular(&parent)
                ),
                problem,
            }
        })
        .collect())
}

/// The drift series that do not say what their credential's sightings say
/// (the fleet report reads the series alone), and — once every series was
/// built (`complete`) — the credentials with sightings and no series. Reads
/// the sightings again: `vault verify` is the full check.
fn series_disagreements(tx: &impl StoreTx, complete: bool) -> Result<Vec<BadRow>> {
    let mut series: std::collections::HashMap<i64, Vec<u8>> =
        tx.drift_series(None)?.into_iter().collect();
    let sightings = tx.sightings(None)?;
    let mut bad = Vec::new();
    let mut report = |credential_id: i64, problem: &'static str| {
        bad.push(BadRow {
            kind: kind::DRIFT_SERIES,
            id: row_id(credential_id),
            name: series_name(credential_id),
            problem,
        })
    };
    for run in sightings.chunk_by(|a, b| a.credential_id == b.credential_id) {
        let credential_id = run[0].credential_id;
        match series.remove(&credential_id) {
            Some(points) if crate::drift_series::encode(run).ok().as_ref() != Some(&points) => {
                report(credential_id, "disagrees")
            }
            None if complete => report(credential_id, "missing"),
            _ => {}
        }
    }
    let mut left: Vec<i64> = series.into_keys().collect();
    left.sort_unstable();
    for credential_id in left {
        report(credential_id, "disagrees");
    }
    Ok(bad)
}

/// Signs every row (an old vault's first admin unlock, or a rekey under
/// the new key) and sets the marker; returns how many rows were signed.
pub(crate) fn sign_all(tx: &impl StoreTx, signer: &Signer, settings: &[&str]) -> Result<u64> {
    let mut by_kind: std::collections::HashMap<&str, Vec<(String, Vec<u8>)>> = Default::default();
    let mut count = 0;
    for (kind, id, _, mac) in expected_all(tx, signer, settings)? {
        by_kind.entry(kind).or_default().push((id, mac));
        count += 1;
    }
    for (kind, macs) in by_kind {
        signer.put(tx, kind, macs)?;
    }
    let (kind, id) = SIGNED_MARKER;
    tx.row_macs_put(kind, &[(id.to_owned(), b"1".to_vec())])?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Custody, State};

    fn row() -> CredentialRow {
        CredentialRow {
            id: 17,
            device_id: Some(3),
            slot: Some(2),
            kind: "totp".into(),
            algorithm: "sha1".into(),
            digits: 6,
            period: Some(30),
            t0: Some(0),
            counter: None,
            issuer: None,
            label: None,
            state: State::Assigned,
            custody: Custody::Held,
            sealed_secret: Some(vec![1, 2, 3]),
            user_id: Some(4),
            drift_steps: None,
            purge_after: None,
            created_at: 1,
            updated_at: 2,
            serial: Some("S1".into()),
            upn: Some("Alice@Example.com".into()),
            manufacturer: None,
            model: None,
        }
    }

    #[test]
    fn the_mac_is_the_field_by_field_hmac_that_earlier_vaults_hold() {
        // Rows signed by earlier versions (which fed HMAC one field at a
        // time) must verify: the one-buffer layout hashes the same bytes.
        let signer = Signer::new(&VaultKey::generate().unwrap());
        let fields = [
            text("S1"),
            opt_text(None),
            number(6u8),
            opt_number::<i64>(None),
            number(-3i64),
            text(""),
        ];
        let mut reference = signer.keyed.clone();
        let mut put = |tag: Option<u8>, bytes: &[u8]| {
            let length = bytes.len() + usize::from(tag.is_some());
            reference.update(&(length as u64).to_be_bytes());
            if let Some(tag) = tag {
                reference.update(&[tag]);
            }
            reference.update(bytes);
        };
        put(None, b"credential");
        put(None, b"00000000000000000017");
        put(Some(1), b"S1");
        put(Some(0), b"");
        put(Some(2), &6i128.to_be_bytes());
        put(Some(0), b"");
        put(Some(2), &(-3i128).to_be_bytes());
        put(Some(1), b"");
        assert_eq!(
            signer.mac("credential", "00000000000000000017", &fields),
            reference.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn every_deciding_field_changes_the_mac() {
        let signer = Signer::new(&VaultKey::generate().unwrap());
        let base = signer.credential(&row()).1;
        let edits: [fn(&mut CredentialRow); 12] = [
            |r| r.user_id = Some(5),
            |r| r.upn = Some("bob@example.com".into()),
            |r| r.state = State::Lost,
            |r| r.custody = Custody::Purged,
            |r| r.slot = Some(3),
            |r| r.slot = None,
            |r| r.serial = Some("S2".into()),
            |r| r.device_id = None,
            |r| r.digits = 8,
            |r| r.period = Some(60),
            |r| r.purge_after = Some(9),
            |r| r.sealed_secret = None,
        ];
        for edit in edits {
            let mut changed = row();
            edit(&mut changed);
            assert_ne!(signer.credential(&changed).1, base);
        }
        // Display-only fields and the UPN's case do not decide anything.
        let mut same_row = row();
        same_row.label = Some("x".into());
        same_row.updated_at = 99;
        same_row.upn = Some("alice@example.com".into());
        assert_eq!(signer.credential(&same_row).1, base);
        // Bound to the id.
        let mut moved = row();
        moved.id = 18;
        assert_ne!(signer.credential(&moved).1, base);
        // Another vault key signs differently.
        let other = Signer::new(&VaultKey::generate().unwrap());
        assert_ne!(other.credential(&row()).1, base);
    }
}
