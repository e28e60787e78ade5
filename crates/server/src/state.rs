//! What every request shares: the configuration and a pool of open
//! database connections.

use std::sync::{Mutex, RwLock};

use oathdesk_vault::any::AnyStore;
use oathdesk_vault::crypto::{KdfParams, VaultKey};
use oathdesk_vault::location::Location;
use oathdesk_vault::web::ThrottlePolicy;
use oathdesk_vault::{IdentifyCache, Vault};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::outbound::OutboundHook;
use crate::proxy::TrustedProxy;

/// How the console behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Argon2id parameters for the passwords the console sets.
    pub kdf: KdfParams,
    /// A browser session ends this many seconds after login...
    pub session_lifetime: u64,
    /// ...or after this many seconds without a request.
    pub session_idle: u64,
    /// The longest lifetime an API token may be given.
    pub token_lifetime_max: u64,
    /// Cookies are marked `Secure` and named `__Host-…` (set with TLS).
    pub secure_cookies: bool,
    /// Failed logins per account.
    pub account_throttle: ThrottlePolicy,
    /// Failed logins (and setup attempts) per client address.
    pub client_throttle: ThrottlePolicy,
    /// Logins computing Argon2id at once (each takes the KDF's memory).
    pub concurrent_logins: usize,
    /// Load balancers and reverse proxies whose `X-Forwarded-For` names
    /// the client (for the per-address throttle).
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Addresses and networks that may read `GET /metrics` without a token
    /// (`oathdesk serve --metrics-from`; the client address as above).
    pub metrics_from: Vec<TrustedProxy>,
    /// Header and body read time-outs and the per-address connection cap.
    pub connections: crate::listen::ConnectionLimits,
    /// Entra's Temporary Access Pass and the user notices, when the binary
    /// that starts the console wires them in.
    pub outbound: OutboundHook,
    /// Sign-in through the organisation's identity provider
    /// (`serve --oidc-issuer`), if configured.
    pub oidc: Option<std::sync::Arc<crate::oidc::OidcClient>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            kdf: KdfParams::DEFAULT,
            session_lifetime: 12 * 3600,
            session_idle: 30 * 60,
            token_lifetime_max: 366 * 86_400,
            secure_cookies: false,
            account_throttle: ThrottlePolicy {
                max_failures: 5,
                window: 15 * 60,
                lockout: 15 * 60,
            },
            client_throttle: ThrottlePolicy {
                max_failures: 20,
                window: 15 * 60,
                lockout: 15 * 60,
            },
            concurrent_logins: 2,
            trusted_proxies: Vec::new(),
            metrics_from: Vec::new(),
            connections: crate::listen::ConnectionLimits::default(),
            outbound: OutboundHook::default(),
            oidc: None,
        }
    }
}

/// The state behind every handler.
pub struct AppState {
    /// The vault: a SQLite file or a PostgreSQL database.
    pub location: Location,
    pub settings: Settings,
    pool: Mutex<Vec<AnyStore>>,
    /// Bounds the memory of concurrent Argon2id computations.
    pub logins: Semaphore,
    /// The vault key once the console was unsealed (by an admin's sign-in
    /// or a key file): only in this process's memory, never on disk. Helpdesk
    /// and auditor accounts, who hold no key, are served with it.
    console_key: RwLock<Option<VaultKey>>,
    /// What `GET /metrics` reports.
    pub metrics: Metrics,
    /// The identify index, built by the first identify and kept current
    /// by the vault's change marker (see `oathdesk_vault::identify_cache`).
    /// It holds no more than the vault key opens; sealing drops it.
    pub identify: IdentifyCache,
}

/// Idle connections kept open.
const POOL_SIZE: usize = 16;

impl AppState {
    pub fn new(location: impl Into<Location>, settings: Settings) -> AppState {
        let logins = Semaphore::new(settings.concurrent_logins.max(1));
        let location = location.into();
        AppState {
            location,
            settings,
            pool: Mutex::new(Vec::new()),
            logins,
            console_key: RwLock::new(None),
            metrics: Metrics::new(),
            identify: IdentifyCache::new(),
        }
    }

    /// The vault key, if the console is unsealed.
    pub fn console_key(&self) -> Option<VaultKey> {
        self.console_key
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether the console holds the vault key.
    pub fn is_unsealed(&self) -> bool {
        self.console_key
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    /// Forgets the vault key (it no longer opens the vault: rekeyed elsewhere).
    pub fn seal(&self) {
        *self
            .console_key
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        self.identify.clear();
    }

    /// Keeps the vault key in memory (unsealing).
    pub fn unseal(&self, key: VaultKey) {
        *self
            .console_key
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(key);
        // A new key may be of a rekeyed vault: build the index afresh.
        self.identify.clear();
    }

    /// A locked vault on a pooled connection. Blocking: call it inside
    /// `spawn_blocking`.
    pub fn vault(&self) -> ApiResult<Vault> {
        self.checkout().map_err(ApiError::internal)
    }

    /// A pooled or new connection, its failure returned rather than logged:
    /// the readiness probe asks every second and reports an unreachable
    /// database as its answer, not as an internal error in the log.
    pub fn checkout(&self) -> oathdesk_vault::Result<Vault> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        self.metrics.checkout(pooled.is_some());
        match pooled {
            Some(store) => Ok(Vault::from_store(store)),
            None => Vault::open_at(&self.location),
        }
    }

    /// Connections waiting in the pool.
    pub fn idle_connections(&self) -> usize {
        self.pool.lock().map_or(0, |pool| pool.len())
    }

    /// Returns a connection to the pool.
    pub fn recycle(&self, store: AnyStore) {
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < POOL_SIZE
        {
            pool.push(store);
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs blocking work (the vault, Argon2id) off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}
