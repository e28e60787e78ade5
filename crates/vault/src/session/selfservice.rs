//! Self-service delivery: a one-time link with which a user confirms that
//! their token arrived, by typing the code it shows.
//!
//! - The link carries a random secret; the vault keeps only its SHA-256, as
//!   the id of a signed record ([`kind::DELIVERY_LINK`]) that says which
//!   credential it confirms, until when, and how many wrong codes it took.
//! - The code is checked by the same function as `token deliver`
//!   (`deliver_in`): a code of a released step is refused with the same
//!   words, a right one marks the token delivered and purges the secret.
//! - A link works once, expires by policy (`selfservice.link_lifetime_seconds`)
//!   and is locked after `selfservice.max_wrong_codes` wrong codes: with a
//!   window of ±10 steps, 5 guesses at a 6-digit code hit with odds of about
//!   one in ten thousand.
//! - A public page holds no operator: a console that holds the vault key
//!   (unsealed) acts for the link, and the audit names the link's handle as
//!   the actor (`self-service link 1a2b3c4d`). The page learns nothing about
//!   the user but their first name and the token's serial.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::records;
use super::*;
use crate::audit::hex;
use crate::store::RecordRow;

/// The states of a link record.
const OPEN: &str = "open";
const USED: &str = "used";
const LOCKED: &str = "locked";
/// A newer link for the same token replaced it.
const REPLACED: &str = "replaced";

/// Random bytes in a link's secret (120 bits, 24 characters).
const SECRET_BYTES: usize = 15;
/// Crockford's base-32 alphabet, lower case: no i, l, o or u, so a link
/// read out on the phone cannot be misheard as another.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Why a link does not (or no longer) open the page. The page says each in
/// the user's words; none says whether the token exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkProblem {
    /// No such link (mistyped, or never made).
    Unknown,
    /// Its lifetime ended.
    Expired,
    /// It confirmed a delivery already (or a newer link replaced it).
    Used,
    /// Too many wrong codes.
    Locked,
}

impl LinkProblem {
    pub fn describe(self) -> &'static str {
        match self {
            LinkProblem::Unknown => {
                "this delivery link is not known: check that it was copied whole"
            }
            LinkProblem::Expired => {
                "this delivery link has expired: ask the helpdesk for a new one"
            }
            LinkProblem::Used => "this delivery link was used already: it works once",
            LinkProblem::Locked => {
                "this delivery link is locked after too many wrong codes: ask the helpdesk for a new one"
            }
        }
    }
}

/// A new link, for the helpdesk to mail or read out. Its secret is shown
/// once; `Debug` leaves it out.
#[derive(Clone, Serialize)]
pub struct DeliveryLink {
    /// The bearer secret: the last part of the link (`/d/<secret>`).
    pub secret: String,
    /// A public handle (the first 4 bytes of the secret's hash, in hex):
    /// the actor in the audit log.
    pub handle: String,
    pub credential: String,
    pub user: String,
    pub first_name: Option<String>,
    pub expires_at: u64,
}

impl std::fmt::Debug for DeliveryLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryLink")
            .field("handle", &self.handle)
            .field("credential", &self.credential)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What the public page may show: nothing but these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkPage {
    pub first_name: Option<String>,
    pub serial: String,
    /// Wrong codes the link still takes.
    pub attempts_left: u64,
}

/// The signed body of a link record.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LinkBody {
    credential_id: i64,
    reference: String,
    first_name: Option<String>,
    created_by: String,
    created_at: u64,
    expires_at: u64,
    wrong_codes: u64,
    #[serde(default)]
    used_at: Option<u64>,
}

/// A new random secret in the link alphabet.
fn new_secret() -> Result<String> {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    crypto::random(bytes.as_mut())?;
    Ok(encode(bytes.as_ref()))
}

/// Base-32 of `bytes` (5 bits a character, most significant first).
fn encode(bytes: &[u8]) -> String {
    let (mut out, mut buffer, mut bits) = (String::new(), 0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The secret as typed: case, dashes and spaces ignored, and the letters
/// people confuse with digits read as those digits. `None` if it cannot be
/// a link's secret at all.
pub fn normalize_secret(text: &str) -> Option<String> {
    let mut out = String::with_capacity(24);
    for c in text.chars() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' => continue,
            'i' | 'l' => '1',
            'o' => '0',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    (out.len() == SECRET_BYTES * 8 / 5).then_some(out)
}

/// The record id of a secret: its SHA-256 in hex.
fn link_id(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn handle_of(id: &str) -> String {
    id[..8].to_owned()
}

/// The first word of a display name ("Ada Lovelace" → "Ada").
fn first_name(display_name: Option<&str>) -> Option<String> {
    display_name
        .and_then(|name| name.split_whitespace().next())
        .map(str::to_owned)
}

/// The open link of `secret`, its record checked, or why it is not.
fn open_link(
    tx: &impl StoreTx,
    keys: &Keys<'_>,
    secret: &str,
    now: u64,
) -> Result<std::result::Result<(RecordRow, LinkBody), LinkProblem>> {
    let Some(secret) = normalize_secret(secret) else {
        return Ok(Err(LinkProblem::Unknown));
    };
    let Some(row) = records::read_one(tx, keys, kind::DELIVERY_LINK, &link_id(&secret))? else {
        return Ok(Err(LinkProblem::Unknown));
    };
    let body: LinkBody = records::body(&row)?;
    Ok(match row.state.as_str() {
        OPEN if now >= body.expires_at => Err(LinkProblem::Expired),
        OPEN => Ok((row, body)),
        LOCKED => Err(LinkProblem::Locked),
        _ => Err(LinkProblem::Used),
    })
}

impl<S: Store> Session<S> {
    /// Makes a one-time link with which the user of a shipped (or assigned)
    /// token confirms its delivery; an older open link of the token stops
    /// working. The token must have a user and its secret.
    pub fn create_delivery_link(&mut self, token: &TokenRef, now: u64) -> Result<DeliveryLink> {
        self.require(Permission::DeliveryLink)?;
        let lifetime = self.setting_value(settings::DELIVERY_LINK_LIFETIME)?;
        let operator = self.operator.clone();
        let secret = new_secret()?;
        let id = link_id(&secret);
        self.change(now, |tx, keys| {
            let row = resolve_checked(tx, keys, token)?;
            let reference = reference_of(row.serial.as_deref(), row.slot, row.id);
            row.state.check_transition(State::Delivered)?;
            if row.custody != Custody::Held {
                return Err(Error::Refused(format!(
                    "the secret of {reference} was purged: no code can prove its delivery any more"
                )));
            }
            let upn = row.upn.clone().ok_or_else(|| {
                Error::Refused(format!(
                    "{reference} has no user: assign it first ('oathdesk token assign {reference} UPN')"
                ))
            })?;
            let user = tx
                .user_by_upn(&upn)?
                .ok_or_else(|| Error::NotFound(format!("user '{upn}'")))?;
            check_user(tx, keys, &user)?;
            let mut rows = Vec::new();
            for old in records::list(tx, keys, kind::DELIVERY_LINK, Some(OPEN))? {
                let body: LinkBody = records::body(&old)?;
                if body.credential_id == row.id {
                    rows.push(records::record(kind::DELIVERY_LINK, &old.id, REPLACED, &body, now)?);
                }
            }
            let body = LinkBody {
                credential_id: row.id,
                reference: reference.clone(),
                first_name: first_name(user.display_name.as_deref()),
                created_by: operator.clone(),
                created_at: now,
                expires_at: now.saturating_add(lifetime),
                wrong_codes: 0,
                used_at: None,
            };
            rows.push(records::record(kind::DELIVERY_LINK, &id, OPEN, &body, now)?);
            let replaced = rows.len() - 1;
            records::put(tx, keys, rows)?;
            let event = AuditEvent::ok("delivery_link.create")
                .credential(reference.clone())
                .user(upn.clone())
                .detail(json!({
                    "link": handle_of(&id),
                    "expires_at": body.expires_at,
                    "replaced": replaced,
                }));
            Ok((
                DeliveryLink {
                    secret: secret.clone(),
                    handle: handle_of(&id),
                    credential: reference,
                    user: upn,
                    first_name: body.first_name,
                    expires_at: body.expires_at,
                },
                event,
            ))
        })
    }
}

impl<S: Store> Vault<S> {
    /// A session that acts for a link on a console holding the vault key:
    /// it may do nothing through the permission table; the self-service
    /// functions below use it for their one change and its audit entry.
    fn link_session(mut self, console_key: &VaultKey, secret: &str) -> Result<Session<S>> {
        let (audit_keys, enforced) = {
            let tx = self.store.read()?;
            let audit_keys = open_audit_keys(&tx, console_key).map_err(|_| Error::Sealed)?;
            (audit_keys, signed::enforced(&tx)?)
        };
        let handle = normalize_secret(secret)
            .map(|s| handle_of(&link_id(&s)))
            .unwrap_or_else(|| "(malformed)".into());
        let epoch = audit_keys.keys().copied().max().unwrap_or(1);
        Ok(Session {
            store: self.store,
            operator: format!("self-service link {handle}"),
            key: console_key.clone(),
            signer: Signer::new(console_key),
            signed: enforced,
            principal: Principal {
                role: Role::Helpdesk,
                scopes: Some(Vec::new()),
                password_change_pending: false,
            },
            audit_keys,
            epoch,
            notices_queued: false,
            helpdesk_ahead: None,
        })
    }

    /// What the self-service page of `secret` shows, or why it shows nothing.
    pub fn delivery_link_page(
        self,
        console_key: &VaultKey,
        secret: &str,
        now: u64,
    ) -> Result<(std::result::Result<LinkPage, LinkProblem>, S)> {
        let mut session = self.link_session(console_key, secret)?;
        let limit = session.setting_value(settings::DELIVERY_LINK_ATTEMPTS)?;
        let page = {
            let tx = session.store.read()?;
            let keys = Keys {
                key: &session.key,
                signer: &session.signer,
                enforced: session.signed,
            };
            open_link(&tx, &keys, secret, now)?.map(|(_, body)| LinkPage {
                first_name: body.first_name,
                serial: body.reference,
                attempts_left: limit.saturating_sub(body.wrong_codes),
            })
        };
        Ok((page, session.store))
    }

    /// Confirms a delivery with a code typed on the self-service page, as
    /// `token deliver` would (same checks, same refusals, same audit action;
    /// the actor is the link). A wrong or released code counts against the
    /// link; the last one allowed locks it. Gives the store back for reuse.
    pub fn redeem_delivery_link(
        self,
        console_key: &VaultKey,
        secret: &str,
        code: &str,
        now: u64,
    ) -> (Result<Delivery>, Option<S>) {
        let mut session = match self.link_session(console_key, secret) {
            Ok(session) => session,
            Err(error) => return (Err(error), None),
        };
        let outcome = session.redeem(secret, code, now);
        (outcome, Some(session.store))
    }
}

impl<S: Store> Session<S> {
    fn redeem(&mut self, secret: &str, code: &str, now: u64) -> Result<Delivery> {
        let grace = self.setting_value(settings::PURGE_GRACE)?;
        let steps = self
            .setting_value(settings::DELIVERY_WINDOW)?
            .min(settings::DELIVERY_WINDOW_MAX);
        let limit = self.setting_value(settings::DELIVERY_LINK_ATTEMPTS)?;
        let operator = self.operator.clone();
        let code = code.trim().replace(' ', "");
        if code.is_empty() || !code.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Invalid(
                "type the digits the token shows, without letters".into(),
            ));
        }
        let outcome = self.change(now, |tx, keys| {
            let (row, mut body) = match open_link(tx, keys, secret, now)? {
                Ok(open) => open,
                Err(problem) => return Err(Error::DeliveryLink(problem)),
            };
            let terms = DeliveryTerms { steps, grace };
            let token = TokenRef::Id(body.credential_id);
            let (result, mut event) = deliver_in(tx, keys, &token, &code, terms, &operator, now)?;
            event.detail["link"] = json!(handle_of(&row.id));
            let state = match &result {
                Ok(_) => {
                    body.used_at = Some(now);
                    USED
                }
                Err(_) => {
                    body.wrong_codes += 1;
                    event.detail["wrong_codes"] = json!(body.wrong_codes);
                    if body.wrong_codes >= limit {
                        event.detail["locked"] = json!(true);
                        LOCKED
                    } else {
                        OPEN
                    }
                }
            };
            let record = records::record(kind::DELIVERY_LINK, &row.id, state, &body, now)?;
            records::put(tx, keys, vec![record])?;
            Ok(((result, state == LOCKED), event))
        })?;
        match outcome {
            (Ok(delivery), _) => {
                if delivery.purged {
                    self.store.scrub()?;
                }
                Ok(delivery)
            }
            (Err(_), true) => Err(Error::DeliveryLink(LinkProblem::Locked)),
            (Err(refusal), false) => Err(refusal.into_error(steps)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_read_back_however_they_are_typed() {
        let secret = encode(&[0xff; SECRET_BYTES]);
        assert_eq!(secret.len(), 24);
        assert_eq!(normalize_secret(&secret).as_deref(), Some(secret.as_str()));
        let typed = "0123-4567-89AB-CDEF-GHJK-MNPQ".replace("-", " - ");
        assert_eq!(
            normalize_secret(&typed).as_deref(),
            Some("0123456789abcdefghjkmnpq")
        );
        assert_eq!(
            normalize_secret("O1IL456789abcdefghjkmnpq").as_deref(),
            Some("0111456789abcdefghjkmnpq")
        );
        assert_eq!(normalize_secret("u123456789abcdefghjkmnpq"), None);
        assert_eq!(normalize_secret("0123"), None);
        assert_eq!(normalize_secret("0123456789abcdefghjkmnpé"), None);
    }

    #[test]
    fn first_names() {
        assert_eq!(first_name(Some("Ada Lovelace")).as_deref(), Some("Ada"));
        assert_eq!(first_name(Some("  ")), None);
        assert_eq!(first_name(None), None);
    }
}
