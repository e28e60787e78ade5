//! The vault's cryptography, composed from vetted crates:
//!
//! - **Vault key**: 32 random bytes. Every secret is sealed under it with
//!   XChaCha20-Poly1305 (192-bit random nonces: no nonce bookkeeping); the
//!   associated data binds the ciphertext to its credential id and
//!   parameters, so a ciphertext copied to another row does not open.
//! - **Operator slots**: each operator has an age X25519 key pair. The vault
//!   key is age-encrypted to every operator's public key, so `vault rekey`
//!   can hand a new key to all remaining operators without knowing their
//!   passphrases, and a removed operator's slot opens nothing written after.
//!   The private key is sealed under a key derived from the operator's
//!   passphrase with Argon2id (parameters stored with the slot), or kept
//!   outside the vault altogether as the operator's own age identity file.
//! - **Audit key**: HKDF-SHA256 of the vault key, for HMAC-SHA256 over the
//!   hash chain of audit entries.

use std::fmt;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

const NONCE_LEN: usize = 24;

/// The key every secret in the vault is sealed under.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct VaultKey([u8; 32]);

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(<redacted>)")
    }
}

impl VaultKey {
    /// A fresh random key.
    pub fn generate() -> Result<VaultKey> {
        let mut key = [0u8; 32];
        random(&mut key)?;
        Ok(VaultKey(key))
    }

    fn from_slice(bytes: &[u8]) -> Option<VaultKey> {
        <[u8; 32]>::try_from(bytes).ok().map(VaultKey)
    }

    /// The key of the audit chain's MACs.
    pub fn audit_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive(b"oathdesk audit mac v1")
    }

    /// A subkey for one purpose (HKDF-SHA256, `info` names the purpose).
    pub(crate) fn derive(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        derive_key(&self.0, info)
    }

    /// The key itself, sealed under `wrapping` (for web sessions and API
    /// tokens, whose bearer holds the wrapping key).
    pub(crate) fn wrap_under(&self, wrapping: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        seal(wrapping, &self.0, aad)
    }

    /// What a grant of an operator without a key slot holds instead of the
    /// vault key: a constant, sealed under a key that needs the vault key
    /// too, so that the grant proves itself only to a console holding it.
    pub(crate) fn no_key() -> VaultKey {
        VaultKey(*b"oathdesk grant without vault key")
    }

    /// Whether two keys are the same (in constant time).
    pub fn same_as(&self, other: &VaultKey) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    pub(crate) fn is_no_key(&self) -> bool {
        self.0 == *b"oathdesk grant without vault key"
    }

    /// Opens what [`VaultKey::wrap_under`] sealed.
    pub(crate) fn unwrap_from(wrapping: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<VaultKey> {
        VaultKey::from_slice(&open(wrapping, sealed, aad)?)
    }
}

/// HKDF-SHA256 of a 32-byte key material into a 32-byte key for `info`.
pub fn derive_key(material: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<sha2::Sha256>::new(None, material)
        .expand(info, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// Fills `buffer` from the OS CSPRNG.
pub fn random(buffer: &mut [u8]) -> Result<()> {
    getrandom::fill(buffer).map_err(|e| Error::Crypto(format!("random number generator: {e}")))
}

/// Seals `plaintext` under a 32-byte key: nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let body = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Crypto("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens what [`seal`] made; `None` when the key, the associated data or
/// the bytes are not the sealed ones.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
        .map(Zeroizing::new)
}

impl VaultKey {
    /// Seals a secret for one credential.
    pub fn seal_secret(&self, plaintext: &[u8], binding: &SecretBinding) -> Result<Vec<u8>> {
        seal(&self.0, plaintext, &binding.aad())
    }

    /// Opens a credential's secret; an error means the ciphertext was
    /// altered or moved from another credential.
    pub fn open_secret(
        &self,
        sealed: &[u8],
        binding: &SecretBinding,
    ) -> Result<Zeroizing<Vec<u8>>> {
        open(&self.0, sealed, &binding.aad()).ok_or(Error::Tampered {
            credential: binding.credential_id,
        })
    }

    /// Seals arbitrary vault data (audit keys of earlier epochs).
    pub fn seal_data(&self, plaintext: &[u8], label: &str) -> Result<Vec<u8>> {
        seal(&self.0, plaintext, label.as_bytes())
    }

    /// Opens what [`VaultKey::seal_data`] sealed.
    pub fn open_data(&self, sealed: &[u8], label: &str) -> Option<Zeroizing<Vec<u8>>> {
        open(&self.0, sealed, label.as_bytes())
    }
}

/// What a sealed secret is bound to: its row and the parameters that,
/// changed, would make its codes different.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretBinding {
    pub credential_id: i64,
    pub kind: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: Option<u64>,
    pub t0: Option<u64>,
}

impl SecretBinding {
    fn aad(&self) -> Vec<u8> {
        format!(
            "oathdesk secret v1\0{}\0{}\0{}\0{}\0{}\0{}",
            self.credential_id,
            self.kind,
            self.algorithm,
            self.digits,
            self.period.map(|p| p.to_string()).unwrap_or_default(),
            self.t0.map(|t| t.to_string()).unwrap_or_default(),
        )
        .into_bytes()
    }
}

/// Argon2id cost parameters, stored with each passphrase slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The default: 256 MiB, 2 passes, 2 lanes — about half a second on the
    /// reference machine (BENCHMARKS.md), well above OWASP's minimums.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 256 * 1024,
        iterations: 2,
        parallelism: 2,
    };

    /// The least memory a new passphrase slot may use: OWASP's floor for
    /// Argon2id (19 MiB with 2 passes). Below it a stolen vault file's
    /// passphrases are cheap to guess on GPUs, so every front-end (`vault
    /// init`, `serve`) checks new parameters with [`KdfParams::check_minimum`].
    pub const MIN_MEMORY_KIB: u32 = 19 * 1024;

    /// With the `testing` feature, test suites may still create vaults with
    /// this little memory (or less) so that thousands of unlocks stay fast;
    /// production builds never compile this exception in.
    #[cfg(feature = "testing")]
    pub const TESTING_MEMORY_KIB: u32 = 1024;

    /// Refuses parameters below [`KdfParams::MIN_MEMORY_KIB`], saying what
    /// to choose instead. Existing slots are not checked: they open with the
    /// parameters they were sealed with.
    pub fn check_minimum(&self) -> Result<()> {
        #[cfg(feature = "testing")]
        if self.memory_kib <= Self::TESTING_MEMORY_KIB {
            return Ok(());
        }
        if self.memory_kib >= Self::MIN_MEMORY_KIB {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "Argon2id memory of {} KiB ({} MiB) is below the minimum of {} MiB (OWASP's floor for \
             Argon2id): choose at least {} MiB (the default is {} MiB)",
            self.memory_kib,
            self.memory_kib / 1024,
            Self::MIN_MEMORY_KIB / 1024,
            Self::MIN_MEMORY_KIB / 1024,
            Self::DEFAULT.memory_kib / 1024
        )))
    }

    fn argon2(&self) -> Result<argon2::Argon2<'static>> {
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::Invalid(format!("Argon2id parameters: {e}")))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    /// Derives the 32-byte key that seals an operator's private key.
    pub fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.argon2()?
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(|e| Error::Crypto(format!("Argon2id: {e}")))?;
        Ok(out)
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "argon2id$v=19$m={},t={},p={}",
            self.memory_kib, self.iterations, self.parallelism
        )
    }
}

impl FromStr for KdfParams {
    type Err = Error;
    fn from_str(s: &str) -> Result<KdfParams> {
        let bad = || Error::Invalid(format!("unreadable key-derivation parameters '{s}'"));
        let rest = s.strip_prefix("argon2id$v=19$").ok_or_else(bad)?;
        let mut params = KdfParams::DEFAULT;
        for part in rest.split(',') {
            let (name, value) = part.split_once('=').ok_or_else(bad)?;
            let value: u32 = value.parse().map_err(|_| bad())?;
            match name {
                "m" => params.memory_kib = value,
                "t" => params.iterations = value,
                "p" => params.parallelism = value,
                _ => return Err(bad()),
            }
        }
        Ok(params)
    }
}

/// Creates a key pair for a passphrase operator and seals its private key:
/// returns (recipient, salt, sealed identity).
pub fn new_passphrase_slot(
    name: &str,
    passphrase: &[u8],
    kdf: KdfParams,
) -> Result<(String, Vec<u8>, Vec<u8>)> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut salt = vec![0u8; 16];
    random(&mut salt)?;
    let kek = kdf.derive(passphrase, &salt)?;
    let secret = {
        use age::secrecy::ExposeSecret;
        Zeroizing::new(identity.to_string().expose_secret().as_bytes().to_vec())
    };
    let sealed = seal(&kek, &secret, slot_aad(name).as_bytes())?;
    Ok((recipient, salt, sealed))
}

/// Opens a passphrase slot's private key; `None` for a wrong passphrase.
pub fn open_passphrase_slot(
    name: &str,
    passphrase: &[u8],
    kdf: KdfParams,
    salt: &[u8],
    sealed_identity: &[u8],
) -> Result<Option<age::x25519::Identity>> {
    let kek = kdf.derive(passphrase, salt)?;
    let Some(text) = open(&kek, sealed_identity, slot_aad(name).as_bytes()) else {
        return Ok(None);
    };
    let text =
        std::str::from_utf8(&text).map_err(|_| Error::Crypto("corrupt operator slot".into()))?;
    age::x25519::Identity::from_str(text)
        .map(Some)
        .map_err(|_| Error::Crypto("corrupt operator slot".into()))
}

fn slot_aad(name: &str) -> String {
    format!("oathdesk operator slot v1\0{name}")
}

/// Encrypts the vault key to an operator's age public key.
pub fn wrap_vault_key(key: &VaultKey, recipient: &str) -> Result<Vec<u8>> {
    let recipient = parse_recipient(recipient)?;
    age::encrypt(&recipient, &key.0).map_err(|e| Error::Crypto(format!("age encryption: {e}")))
}

/// Decrypts the vault key with an operator's age identity.
pub fn unwrap_vault_key(identity: &age::x25519::Identity, wrapped: &[u8]) -> Option<VaultKey> {
    let bytes = Zeroizing::new(age::decrypt(identity, wrapped).ok()?);
    VaultKey::from_slice(&bytes)
}

/// A new age X25519 identity: its text (`AGE-SECRET-KEY-1…`, to keep in a
/// file only its owner reads) and its public key (`age1…`).
pub fn new_identity() -> (Zeroizing<String>, String) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    (
        Zeroizing::new(identity.to_string().expose_secret().to_owned()),
        recipient,
    )
}

/// Reads an `age1…` public key.
pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(text.trim()).map_err(|_| {
        Error::Invalid("not an age X25519 public key (it starts with age1…)".to_string())
    })
}

/// Reads an age identity file's `AGE-SECRET-KEY-1…` line.
pub fn parse_identity(text: &str) -> Result<age::x25519::Identity> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .and_then(|l| age::x25519::Identity::from_str(l).ok())
        .ok_or_else(|| {
            Error::Invalid(
                "the identity file holds no age X25519 secret key (AGE-SECRET-KEY-1…)".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(id: i64) -> SecretBinding {
        SecretBinding {
            credential_id: id,
            kind: "totp".into(),
            algorithm: "sha1".into(),
            digits: 6,
            period: Some(30),
            t0: Some(0),
        }
    }

    #[test]
    fn sealed_secrets_are_bound_to_their_row_and_parameters() {
        let key = VaultKey::generate().unwrap();
        let sealed = key.seal_secret(b"secret", &binding(7)).unwrap();
        assert_eq!(
            key.open_secret(&sealed, &binding(7)).unwrap().as_slice(),
            b"secret"
        );
        assert!(matches!(
            key.open_secret(&sealed, &binding(8)),
            Err(Error::Tampered { credential: 8 })
        ));
        let mut other = binding(7);
        other.digits = 8;
        assert!(key.open_secret(&sealed, &other).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(key.open_secret(&flipped, &binding(7)).is_err());
        let stranger = VaultKey::generate().unwrap();
        assert!(stranger.open_secret(&sealed, &binding(7)).is_err());
    }

    #[test]
    fn one_argon2id_minimum_for_new_passphrases() {
        let with = |memory_kib| KdfParams {
            memory_kib,
            ..KdfParams::DEFAULT
        };
        for weak in [8 * 1024, KdfParams::MIN_MEMORY_KIB - 1] {
            let error = with(weak).check_minimum().unwrap_err();
            assert!(matches!(error, Error::Invalid(_)), "{error}");
            assert!(error.to_string().contains("at least 19 MiB"), "{error}");
        }
        assert!(with(KdfParams::MIN_MEMORY_KIB).check_minimum().is_ok());
        assert!(KdfParams::DEFAULT.check_minimum().is_ok());
    }

    #[test]
    fn passphrase_slots_open_only_with_the_passphrase() {
        let fast = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let (recipient, salt, sealed) =
            new_passphrase_slot("alice", b"correct horse", fast).unwrap();
        let identity = open_passphrase_slot("alice", b"correct horse", fast, &salt, &sealed)
            .unwrap()
            .unwrap();
        assert_eq!(identity.to_public().to_string(), recipient);
        assert!(
            open_passphrase_slot("alice", b"wrong", fast, &salt, &sealed)
                .unwrap()
                .is_none()
        );
        // The slot is bound to its operator's name.
        assert!(
            open_passphrase_slot("mallory", b"correct horse", fast, &salt, &sealed)
                .unwrap()
                .is_none()
        );
        let key = VaultKey::generate().unwrap();
        let wrapped = wrap_vault_key(&key, &recipient).unwrap();
        let unwrapped = unwrap_vault_key(&identity, &wrapped).unwrap();
        assert_eq!(unwrapped.0, key.0);
    }

    #[test]
    fn kdf_params_round_trip() {
        let text = KdfParams::DEFAULT.to_string();
        assert_eq!(text, "argon2id$v=19$m=262144,t=2,p=2");
        assert_eq!(text.parse::<KdfParams>().unwrap(), KdfParams::DEFAULT);
        assert!("scrypt$n=1".parse::<KdfParams>().is_err());
    }
}
