//! The state file of `oathdesk verify --state`: per credential the last
//! accepted counter and the learned drift, sealed with XChaCha20-Poly1305
//! under a key the user keeps (a 32-byte key file or environment variable).
//!
//! Why a file and not the vault: `verify` checks a secret the script holds,
//! not a vault credential, and scripts must not need an operator's unlock.
//!
//! Guarantees:
//! - **Once**: the whole read-decide-write runs under an exclusive lock on
//!   `FILE.lock`, so two verifiers never accept the same counter.
//! - **No rollback**: the new state is written to `FILE.tmp`, fsynced, renamed
//!   over `FILE` and the directory fsynced before the caller is told
//!   "accepted". A crash at any point leaves the old or the new state whole.
//! - **Owner-only**: files are created 0600; a state or key file others can
//!   read is refused.
//! - Credentials are named by an HMAC of their parameters and secret under a
//!   key derived from the state key: the file never holds a secret.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use oathdesk_otp::Remembered;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto;

const MAGIC: &[u8] = b"oathdesk verify state v1\n";

/// Why the state could not be used. Every message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state key: {problem} (the key is 32 random bytes in base64 or hex, in a file given with \
         --state-key-file or in OATHDESK_STATE_KEY; make one with: \
         head -c 32 /dev/urandom | base64 > verify.key && chmod 600 verify.key)"
    )]
    Key { problem: String },
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error(
        "{path} cannot be opened with this key: a different key, or the file was altered \
         (the state is not reset silently: give the right key, or move the file away to start afresh)"
    )]
    WrongKey { path: String },
    #[error("{path}: readable by others (mode {mode:o}); run: chmod 600 {path}")]
    TooOpen { path: String, mode: u32 },
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> StateError {
    StateError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// The user's state key; the sealing and naming keys derive from it.
pub struct StateKey {
    seal: Zeroizing<[u8; 32]>,
    name: Zeroizing<[u8; 32]>,
}

impl StateKey {
    /// Reads a key written as base64 or hex (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<StateKey, StateError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(text.as_bytes())
                .or_else(|_| data_encoding::BASE64.decode(text.as_bytes()))
                .map_err(|_| StateError::Key {
                    problem: "not base64 or hex".into(),
                })?,
        );
        if bytes.len() != 32 {
            return Err(StateError::Key {
                problem: format!("{} bytes, not 32", bytes.len()),
            });
        }
        Ok(StateKey {
            seal: crypto::derive_key(&bytes, b"oathdesk verify state seal v1"),
            name: crypto::derive_key(&bytes, b"oathdesk verify state name v1"),
        })
    }

    /// Reads the key from a file that only its owner may read.
    pub fn from_file(path: &Path) -> Result<StateKey, StateError> {
        let file = File::open(path).map_err(|e| StateError::Key {
            problem: format!("{}: {e}", path.display()),
        })?;
        refuse_open_mode(path, &file)?;
        let mut text = Zeroizing::new(String::new());
        (&file)
            .read_to_string(&mut text)
            .map_err(|e| StateError::Key {
                problem: format!("{}: {e}", path.display()),
            })?;
        StateKey::parse(&text)
    }

    /// The name of a credential in the file: HMAC-SHA256 over its
    /// parameters and secret, so equal secrets with other parameters differ
    /// and the file reveals nothing about either.
    pub fn credential_name(&self, parameters: &str, secret: &[u8]) -> String {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.name.as_ref())
            .expect("HMAC takes any key length");
        mac.update(&(parameters.len() as u64).to_be_bytes());
        mac.update(parameters.as_bytes());
        mac.update(secret);
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()[..16])
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    last_counter: Option<u64>,
    drift: i64,
    /// Unix seconds of the last accepted code (for people reading a dump).
    updated: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    credentials: BTreeMap<String, Entry>,
}

/// The state file, locked for one read-decide-write.
pub struct StateFile {
    path: PathBuf,
    contents: Contents,
    // Held until drop: the exclusive lock on FILE.lock.
    _lock: File,
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn refuse_open_mode(path: &Path, file: &File) -> Result<(), StateError> {
    let mode = file
        .metadata()
        .map_err(|e| file_error(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(StateError::TooOpen {
            path: path.display().to_string(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

fn owner_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

impl StateFile {
    /// Locks and reads the state at `path` (a missing file is an empty
    /// state). Blocks while another verifier holds the lock.
    pub fn open(path: &Path, key: &StateKey) -> Result<StateFile, StateError> {
        let lock_path = sidecar(path, ".lock");
        let lock = owner_only()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| file_error(&lock_path, format!("cannot create the lock file: {e}")))?;
        lock.lock()
            .map_err(|e| file_error(&lock_path, format!("cannot lock: {e}")))?;
        let contents = match File::open(path) {
            Ok(file) => {
                refuse_open_mode(path, &file)?;
                read_sealed(path, file, key)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Contents::default(),
            Err(e) => return Err(file_error(path, e)),
        };
        Ok(StateFile {
            path: path.to_owned(),
            contents,
            _lock: lock,
        })
    }

    /// What is remembered about a credential (nothing for a new one).
    pub fn get(&self, name: &str) -> Remembered {
        self.contents
            .credentials
            .get(name)
            .map(|entry| Remembered {
                last_counter: entry.last_counter,
                drift: entry.drift,
            })
            .unwrap_or_default()
    }

    /// Stores a credential's new state durably (still under the lock).
    pub fn commit(
        &mut self,
        key: &StateKey,
        name: &str,
        remember: Remembered,
        now: u64,
    ) -> Result<(), StateError> {
        self.commit_with(key, name, remember, now, || Ok(()))
    }

    /// [`StateFile::commit`] with a hook run between writing the temporary
    /// file and renaming it (fault injection in tests).
    fn commit_with(
        &mut self,
        key: &StateKey,
        name: &str,
        remember: Remembered,
        now: u64,
        before_rename: impl FnOnce() -> io::Result<()>,
    ) -> Result<(), StateError> {
        let mut contents_after = Contents {
            credentials: self.contents.credentials.clone(),
        };
        contents_after.credentials.insert(
            name.to_owned(),
            Entry {
                last_counter: remember.last_counter,
                drift: remember.drift,
                updated: now,
            },
        );
        let plain = Zeroizing::new(
            serde_json::to_vec(&contents_after).map_err(|e| file_error(&self.path, e))?,
        );
        let sealed = crypto::seal(&key.seal, &plain, MAGIC)
            .map_err(|e| file_error(&self.path, format!("cannot seal the state: {e}")))?;
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&sealed);
        write_atomically(&self.path, &bytes, before_rename)?;
        self.contents = contents_after;
        Ok(())
    }
}

fn read_sealed(path: &Path, mut file: File, key: &StateKey) -> Result<Contents, StateError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| file_error(path, e))?;
    let Some(sealed) = bytes.strip_prefix(MAGIC) else {
        return Err(file_error(
            path,
            "not an oathdesk verify state file (it does not start with the state header)",
        ));
    };
    let plain = crypto::open(&key.seal, sealed, MAGIC).ok_or_else(|| StateError::WrongKey {
        path: path.display().to_string(),
    })?;
    serde_json::from_slice(&plain).map_err(|e| file_error(path, format!("damaged state: {e}")))
}

/// Temp file, fsync, rename, fsync of the directory: after this returns the
/// new bytes survive a crash; before the rename the old file is untouched.
fn write_atomically(
    path: &Path,
    bytes: &[u8],
    before_rename: impl FnOnce() -> io::Result<()>,
) -> Result<(), StateError> {
    let temp = sidecar(path, ".tmp");
    let mut file = owner_only()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(|e| file_error(&temp, e))?;
    file.write_all(bytes).map_err(|e| file_error(&temp, e))?;
    file.sync_all().map_err(|e| file_error(&temp, e))?;
    drop(file);
    before_rename().map_err(|e| file_error(&temp, e))?;
    fs::rename(&temp, path).map_err(|e| file_error(path, e))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_error(dir, format!("cannot sync the directory: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StateKey {
        StateKey::parse(&"ab".repeat(32)).unwrap()
    }

    fn remembered(counter: u64, drift: i64) -> Remembered {
        Remembered {
            last_counter: Some(counter),
            drift,
        }
    }

    #[test]
    fn state_survives_reopen_and_is_owner_only_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let key = key();
        let name = key.credential_name("totp sha1 6 30", b"secret bytes");
        {
            let mut state = StateFile::open(&path, &key).unwrap();
            assert_eq!(state.get(&name), Remembered::default());
            state.commit(&key, &name, remembered(42, -1), 1).unwrap();
        }
        let state = StateFile::open(&path, &key).unwrap();
        assert_eq!(state.get(&name), remembered(42, -1));
        drop(state);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let raw = fs::read(&path).unwrap();
        assert!(!raw.windows(name.len()).any(|w| w == name.as_bytes()));
        let other = StateKey::parse(&"cd".repeat(32)).unwrap();
        assert!(matches!(
            StateFile::open(&path, &other),
            Err(StateError::WrongKey { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            StateFile::open(&path, &key),
            Err(StateError::TooOpen { mode: 0o644, .. })
        ));
    }

    #[test]
    fn a_crash_between_write_and_rename_keeps_the_old_state_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let key = key();
        let mut state = StateFile::open(&path, &key).unwrap();
        state.commit(&key, "a", remembered(10, 0), 1).unwrap();
        let failed = state.commit_with(&key, "a", remembered(11, 0), 2, || {
            Err(io::Error::other("injected crash"))
        });
        assert!(failed.is_err());
        drop(state);
        // The temporary file holds the newer state, but it never counts.
        assert!(sidecar(&path, ".tmp").exists());
        let state = StateFile::open(&path, &key).unwrap();
        assert_eq!(state.get("a"), remembered(10, 0));
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(matches!(
            StateKey::parse("abcd"),
            Err(StateError::Key { problem }) if problem.contains("2 bytes")
        ));
        assert!(StateKey::parse(&data_encoding::BASE64.encode(&[7u8; 32])).is_ok());
        assert!(matches!(
            StateKey::parse("not a key!"),
            Err(StateError::Key { .. })
        ));
    }
}
