//! The identify index kept between requests, and the rule that keeps it
//! current.
//!
//! Building the index reads every held secret, opens it and keys HMAC with
//! it: about three seconds per million credentials on two cores (the
//! one-shot `oathdesk identify` in BENCHMARKS.md), while the scan itself
//! takes under 0.2 s. A console answers many identify requests with one
//! vault, so it keeps the index in an [`IdentifyCache`] (in its state, next
//! to the vault key it holds) and [`crate::Session::identify_cached`] only brings
//! it up to date before scanning.
//!
//! # Freshness
//!
//! The database keeps a generation, raised by triggers (migration 7) in the
//! same transaction as every change that matters to the index: a credential
//! inserted or deleted, or its secret, custody, counter or parameters
//! changed. Every process bumps it, whatever front-end it runs, because the
//! database does. Each identify reads the generation (one primary-key read);
//! equal to the cache's, the index is used as is. Higher, the cache loads
//! only the rows stamped after its generation (and the tombstones of
//! deleted ones), opens just their secrets and patches the index. Lower (a
//! vault restored from a backup) or no index yet: a full build. So a
//! change by another console, the CLI or a PostgreSQL peer is seen by the
//! next request, and a helpdesk code, which writes only audit rows and
//! released steps, costs the cache nothing.
//!
//! # Concurrency
//!
//! Scans share the index under a read lock. One refresh runs at a time
//! (others that found the index stale wait for it rather than load the same
//! rows again); it loads and keys the changed secrets without any lock on
//! the index, then takes the write lock only to patch it (a pass over the
//! entries, milliseconds at a million).
//!
//! # What it holds
//!
//! Keyed HMAC states, derived from secrets that the console, holding the
//! vault key, can open at any time: no more than the unsealed key already
//! exposes. A sealed console drops it ([`IdentifyCache::clear`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::identify::IdentifyIndex;

/// An index and the generation of the vault it reflects.
#[derive(Debug)]
pub(crate) struct Indexed {
    pub(crate) generation: i64,
    pub(crate) index: IdentifyIndex,
}

/// The identify index of one vault, kept between requests (see the module
/// documentation). Share it (`Arc`) among the sessions of that vault only.
#[derive(Debug, Default)]
pub struct IdentifyCache {
    current: RwLock<Option<Indexed>>,
    /// One refresh at a time.
    refreshing: Mutex<()>,
    /// Secrets opened to build or patch the index, ever: how tests tell a
    /// reused index from a rebuilt one without timing anything.
    secrets_opened: AtomicU64,
    /// Raised by every [`IdentifyCache::clear`]: a refresh that started
    /// before it does not put back what the clear dropped.
    clears: AtomicU64,
}

impl IdentifyCache {
    /// An empty cache: the first identify builds the index.
    pub fn new() -> IdentifyCache {
        IdentifyCache::default()
    }

    /// Drops the index (sealing the console; a rekey elsewhere). The next
    /// identify builds it again.
    ///
    /// It does not wait for a refresh under way (sealing must not wait for a
    /// build of a million secrets): that refresh sees the clear and throws
    /// its result away.
    pub fn clear(&self) {
        self.clears.fetch_add(1, Ordering::SeqCst);
        *self.write() = None;
    }

    pub(crate) fn clears(&self) -> u64 {
        self.clears.load(Ordering::SeqCst)
    }

    /// The vault generation the index reflects; `None` before it is built.
    pub fn generation(&self) -> Option<i64> {
        self.read().as_ref().map(|i| i.generation)
    }

    /// Credentials in the index.
    pub fn len(&self) -> usize {
        self.read().as_ref().map_or(0, |i| i.index.len())
    }

    /// True when the index is empty or not built.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index takes (see [`IdentifyIndex::BYTES_PER_CREDENTIAL`]).
    pub fn memory_bytes(&self) -> usize {
        self.read().as_ref().map_or(0, |i| i.index.memory_bytes())
    }

    /// The credentials indexed, in no particular order (tests compare the
    /// kept index with a fresh build).
    pub fn credential_ids(&self) -> Vec<i64> {
        self.read()
            .as_ref()
            .map_or_else(Vec::new, |i| i.index.credential_ids())
    }

    /// Secrets opened to build and patch the index so far.
    pub fn secrets_opened(&self) -> u64 {
        self.secrets_opened.load(Ordering::Relaxed)
    }

    pub(crate) fn count_opened(&self, secrets: usize) {
        self.secrets_opened
            .fetch_add(secrets as u64, Ordering::Relaxed);
    }

    pub(crate) fn refresh_turn(&self) -> MutexGuard<'_, ()> {
        self.refreshing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Option<Indexed>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Option<Indexed>> {
        self.current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
