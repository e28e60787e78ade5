//! Break-glass recovery: a key split among several people, any few of whom
//! together can make a new admin when every admin's passphrase is lost.
//!
//! - The *recovery key* is 31 random bytes. An age X25519 identity is
//!   derived from it, and the vault key is wrapped to that identity's
//!   public key in the *recovery slot* (a signed record of its own kind,
//!   [`kind::RECOVERY`]). A public-key slot lets `vault rekey` re-wrap the
//!   new key to it without anyone's shares.
//! - The recovery key is split with Shamir's scheme (the `blahaj` crate;
//!   GF(256) is not something to write again) into N shares, any K of
//!   which rebuild it. A share is 32 bytes (its number and 31 bytes), which
//!   the BIP-39 English word list writes as 24 words with a checksum, so a
//!   mistyped word is caught before anything is tried.
//! - The shares are handed out once and never stored: the database holds
//!   the public key, the wrapped vault key, N, K, when and by whom.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::*;
use crate::session::records;

/// The recovery key's length: with the share number in front, a share is
/// 32 bytes, the most BIP-39 words carry (24 words).
const SECRET_BYTES: usize = 31;
const SHARE_BYTES: usize = SECRET_BYTES + 1;
const SHARE_WORDS: usize = 24;
/// The vault has one recovery slot, under this id.
const SLOT_ID: &str = "vault";

/// The recovery slot as the database keeps it.
#[derive(Serialize, Deserialize)]
struct SlotBody {
    recipient: String,
    /// The vault key, age-encrypted to `recipient`, in hex.
    wrapped_vault_key: String,
    shares: u8,
    threshold: u8,
    created_at: u64,
    created_by: String,
}

/// What `vault recovery status` shows: no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecoveryStatus {
    /// Shares handed out (N).
    pub shares: u8,
    /// Shares needed (K).
    pub threshold: u8,
    pub created_at: u64,
    pub created_by: String,
    /// A short name of this set of shares (from the slot's public key), on
    /// every share, so that shares of an older set are told apart.
    pub set: String,
}

/// One share, to print and hand to its holder. Zeroed when dropped.
pub struct RecoveryShare {
    /// 1 to N.
    pub number: u8,
    /// 24 BIP-39 English words, separated by spaces.
    pub words: Zeroizing<String>,
}

/// What `recovery create` made.
pub struct RecoveryKit {
    pub status: RecoveryStatus,
    pub shares: Vec<RecoveryShare>,
    /// An earlier recovery slot was replaced: its shares open nothing now.
    pub replaced: bool,
}

/// A share read back from its words.
pub struct ParsedShare {
    bytes: Zeroizing<Vec<u8>>,
}

/// Shows the share's number only: its bytes are part of a secret.
impl std::fmt::Debug for ParsedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedShare")
            .field("number", &self.number())
            .finish_non_exhaustive()
    }
}

impl ParsedShare {
    /// Its number (1 to N).
    pub fn number(&self) -> u8 {
        self.bytes[0]
    }
}

/// Reads a share from text: its 24 words, in order. Lines starting with
/// `#` (the label of a share file) and word numbers (`7`, `7.`, `7:`) are
/// skipped. `label` names the share in errors ("share 2", a file name).
/// An error names the word's position, never the word: it is part of a
/// secret.
pub fn parse_share(label: &str, text: &str) -> Result<ParsedShare> {
    let words: Vec<String> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter(|token| {
            !token
                .trim_end_matches(['.', ':', ')'])
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .map(str::to_lowercase)
        .collect();
    let bad = |problem: String| Error::BadShare {
        share: label.to_owned(),
        problem,
    };
    if words.len() != SHARE_WORDS {
        return Err(bad(format!(
            "{} words found; a share is {SHARE_WORDS} words (type them in order, numbers optional)",
            words.len()
        )));
    }
    let phrase = Zeroizing::new(words.join(" "));
    drop(words);
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &phrase)
        .map_err(|e| {
            bad(match e {
                bip39::Error::UnknownWord(index) => format!(
                    "word {} is not in the word list: check its spelling on the printed share",
                    index + 1
                ),
                bip39::Error::InvalidChecksum => "the words do not add up (checksum): one of them \
                     is wrong or two are swapped; compare each with the printed share"
                    .into(),
                other => format!("the words are not a share: {other}"),
            })
        })?;
    let bytes = Zeroizing::new(mnemonic.to_entropy());
    if bytes.len() != SHARE_BYTES || bytes[0] == 0 {
        return Err(bad("the words are not an oathdesk recovery share".into()));
    }
    Ok(ParsedShare { bytes })
}

/// The age identity the recovery key stands for.
fn identity_of(secret: &[u8]) -> Result<age::x25519::Identity> {
    use bech32::ToBase32;
    let scalar = crypto::derive_key(secret, b"oathdesk recovery identity v1");
    let text = Zeroizing::new(
        bech32::encode(
            "age-secret-key-",
            scalar.as_ref().to_base32(),
            bech32::Variant::Bech32,
        )
        .map_err(|e| Error::Crypto(format!("recovery identity: {e}")))?
        .to_uppercase(),
    );
    crypto::parse_identity(&text)
}

/// The short name of a set of shares.
fn set_name(recipient: &str) -> String {
    audit::hex(&Sha256::digest(recipient.as_bytes())[..4])
}

fn status_of(body: &SlotBody) -> RecoveryStatus {
    RecoveryStatus {
        shares: body.shares,
        threshold: body.threshold,
        created_at: body.created_at,
        created_by: body.created_by.clone(),
        set: set_name(&body.recipient),
    }
}

/// The recovery slot's record, unchecked (reading it needs no key).
fn slot_record(tx: &impl StoreTx) -> Result<Option<(RecordRow, SlotBody)>> {
    let Some(row) = tx.records_of(kind::RECOVERY, &[SLOT_ID.to_owned()])?.pop() else {
        return Ok(None);
    };
    let body = records::body(&row)?;
    Ok(Some((row, body)))
}

/// Re-wraps the recovery slot to `new_key` inside a rekey (the caller has
/// checked every signature and signs every row afterwards).
pub(crate) fn rewrap(tx: &impl StoreTx, new_key: &VaultKey, now: u64) -> Result<bool> {
    let Some((mut row, mut body)) = slot_record(tx)? else {
        return Ok(false);
    };
    body.wrapped_vault_key = audit::hex(&crypto::wrap_vault_key(new_key, &body.recipient)?);
    row.body = serde_json::to_string(&body)
        .map_err(|e| Error::Invalid(format!("cannot encode the recovery slot: {e}")))?;
    row.updated_at = now;
    tx.records_put(&[row])?;
    Ok(true)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl<S: Store> Vault<S> {
    /// Whether the vault has a recovery slot, and its N, K and date (no
    /// key needed; `vault verify` checks its signature).
    pub fn recovery_status(&mut self) -> Result<Option<RecoveryStatus>> {
        let tx = self.store.read()?;
        Ok(slot_record(&tx)?.map(|(_, body)| status_of(&body)))
    }

    /// Break glass: rebuilds the recovery key from `shares`, opens the
    /// vault through the recovery slot and adds `new_admin`, an admin who
    /// unlocks with `passphrase`. Audited (`recovery.use`, by the new
    /// admin). Returns the new admin's session.
    pub fn recover(
        mut self,
        shares: &[ParsedShare],
        new_admin: &str,
        passphrase: &[u8],
        kdf: KdfParams,
        now: u64,
    ) -> Result<Session<S>> {
        check_operator_name(new_admin)?;
        let (key, audit_keys, body) = {
            let tx = self.store.read()?;
            let Some((_, body)) = slot_record(&tx)? else {
                return Err(Error::Refused(
                    "this vault has no recovery slot: an admin makes one with \
                     'oathdesk vault recovery create'"
                        .into(),
                ));
            };
            let mut numbers: Vec<u8> = shares.iter().map(ParsedShare::number).collect();
            numbers.sort_unstable();
            numbers.dedup();
            if numbers.len() < usize::from(body.threshold) {
                return Err(Error::NotEnoughShares {
                    given: numbers.len(),
                    threshold: usize::from(body.threshold),
                });
            }
            if passphrase.is_empty() {
                return Err(Error::Invalid("the new admin's passphrase is empty".into()));
            }
            let pieces: Vec<blahaj::Share> = shares
                .iter()
                .map(|s| blahaj::Share::try_from(s.bytes.as_slice()))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Invalid(format!("a share is malformed: {e}")))?;
            let secret = Zeroizing::new(
                blahaj::Sharks(body.threshold)
                    .recover(&pieces)
                    .map_err(|e| Error::Invalid(format!("the shares do not combine: {e}")))?,
            );
            let identity = identity_of(&secret)?;
            if identity.to_public().to_string() != body.recipient {
                return Err(Error::Refused(format!(
                    "these shares do not rebuild this vault's recovery key (set {}): one is from \
                     an earlier 'recovery create' or another vault; check the set named on each",
                    set_name(&body.recipient)
                )));
            }
            let wrapped = unhex(&body.wrapped_vault_key).ok_or_else(|| Error::Altered {
                row: signed::record_name(kind::RECOVERY, SLOT_ID),
            })?;
            let key =
                crypto::unwrap_vault_key(&identity, &wrapped).ok_or_else(|| Error::Altered {
                    row: signed::record_name(kind::RECOVERY, SLOT_ID),
                })?;
            let audit_keys = open_audit_keys(&tx, &key)?;
            (key, audit_keys, body)
        };
        let signer = Signer::new(&key);
        let epoch = audit_keys.keys().copied().max().unwrap_or(1);
        let row = {
            let tx = self.store.write()?;
            let keys = Keys {
                key: &key,
                signer: &signer,
                enforced: signed::enforced(&tx)?,
            };
            // The slot must carry the vault's signature, as any slot.
            records::read_one(&tx, &keys, kind::RECOVERY, SLOT_ID)?;
            if tx.operator(new_admin)?.is_some() {
                return Err(Error::Exists(format!(
                    "operator '{new_admin}' (choose another name for the new admin)"
                )));
            }
            let row = passphrase_slot(
                new_admin,
                passphrase,
                kdf,
                &key,
                "recovery",
                Role::Admin,
                now,
            )?;
            put_operator(&tx, &keys, row.clone())?;
            let event = AuditEvent::ok("recovery.use").detail(json!({
                "break_glass": true,
                "new_admin": new_admin,
                "shares_used": shares.iter().map(ParsedShare::number).collect::<Vec<_>>(),
                "set": set_name(&body.recipient),
            }));
            let head = append_audit(&tx, &audit_keys[&epoch], epoch, new_admin, now, &event)?;
            tx.commit()?;
            audit::anchor(&head);
            row
        };
        Session::open(self.store, &row, None, key, audit_keys)
    }
}

impl<S: Store> Session<S> {
    /// Makes a new recovery slot and splits its key into `shares` shares,
    /// any `threshold` of which open it. Replaces an earlier slot (whose
    /// shares then open nothing). The shares are returned once, never
    /// stored. Admins only; audited (`recovery.create`).
    pub fn recovery_create(&mut self, shares: u8, threshold: u8, now: u64) -> Result<RecoveryKit> {
        self.require(Permission::Admin)?;
        if threshold < 2 || shares < threshold {
            return Err(Error::Invalid(format!(
                "--threshold {threshold} of --shares {shares}: the threshold is at least 2 (with 1, \
                 every share is the whole key) and at most the number of shares"
            )));
        }
        let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
        crypto::random(secret.as_mut())?;
        let recipient = identity_of(secret.as_ref())?.to_public().to_string();
        let body = SlotBody {
            wrapped_vault_key: audit::hex(&crypto::wrap_vault_key(&self.key, &recipient)?),
            recipient,
            shares,
            threshold,
            created_at: now,
            created_by: self.operator().to_owned(),
        };
        let status = status_of(&body);
        let replaced = self.change(now, |tx, keys| {
            let replaced = records::read_one(tx, keys, kind::RECOVERY, SLOT_ID)?.is_some();
            let row = records::record(kind::RECOVERY, SLOT_ID, "active", &body, now)?;
            records::put(tx, keys, vec![row])?;
            let event = AuditEvent::ok("recovery.create").detail(json!({
                "shares": shares, "threshold": threshold, "set": status.set,
                "replaced": replaced,
                "note": if replaced { "the shares of the earlier set open nothing now" } else { "" },
            }));
            Ok((replaced, event))
        })?;
        let mut made = Vec::with_capacity(usize::from(shares));
        for share in blahaj::Sharks(threshold)
            .dealer(secret.as_ref())
            .take(usize::from(shares))
        {
            let bytes = Zeroizing::new(Vec::<u8>::from(&share));
            let mnemonic = bip39::Mnemonic::from_entropy(&bytes)
                .map_err(|e| Error::Crypto(format!("share words: {e}")))?;
            made.push(RecoveryShare {
                number: bytes[0],
                words: Zeroizing::new(mnemonic.words().collect::<Vec<_>>().join(" ")),
            });
        }
        Ok(RecoveryKit {
            status,
            shares: made,
            replaced,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_reads_back_with_numbers_and_labels_and_names_a_bad_word() {
        let bytes: Vec<u8> = (1..=32).collect();
        let words: Vec<&str> = bip39::Mnemonic::from_entropy(&bytes)
            .unwrap()
            .words()
            .collect();
        let numbered: String = words
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{}. {w}\n", i + 1))
            .collect();
        let text = format!("# oathdesk recovery share 1 of 3\n{numbered}");
        let parsed = parse_share("share 1", &text).unwrap();
        assert_eq!(parsed.bytes.as_slice(), bytes.as_slice());
        assert_eq!(parsed.number(), 1);

        let mut garbled = words.clone();
        garbled[6] = "zzzzz";
        let error = parse_share("share 1", &garbled.join(" ")).unwrap_err();
        assert!(matches!(error, Error::BadShare { .. }));
        assert_eq!(
            error.to_string(),
            "share 1: word 7 is not in the word list: check its spelling on the printed share"
        );
        let short = parse_share("share 2", &words[..23].join(" ")).unwrap_err();
        assert!(short.to_string().contains("23 words found"), "{short}");
        let mut swapped = words.clone();
        swapped.swap(0, 1);
        if swapped != words {
            let error = parse_share("share 3", &swapped.join(" "));
            // One swap in 256 keeps the checksum; this one does not.
            assert!(error.is_err_and(|e| e.to_string().contains("checksum")));
        }
    }

    #[test]
    fn the_recovery_identity_is_stable_and_secret_dependent() {
        let a = identity_of(&[7u8; SECRET_BYTES]).unwrap().to_public();
        let b = identity_of(&[7u8; SECRET_BYTES]).unwrap().to_public();
        let c = identity_of(&[8u8; SECRET_BYTES]).unwrap().to_public();
        assert_eq!(a.to_string(), b.to_string());
        assert_ne!(a.to_string(), c.to_string());
    }
}
