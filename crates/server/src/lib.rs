//! oathdesk's web console and REST API (`oathdesk serve`).
//!
//! Helpdesk staff live in a browser; this crate gives them the vault there:
//! a toolset (codes, conversions, seeds, QR codes, drift checks, Entra CSV
//! rows), helpdesk codes behind identity verification, the inventory, the
//! audit log and — for admins — accounts and settings. Every page is a thin
//! script over the JSON API under `/api/v1`, which scripts use with API
//! tokens.
//!
//! # Design
//!
//! - **The vault decides; the server translates.** Handlers call the same
//!   `oathdesk-vault`, `oathdesk-otp` and `oathdesk-formats` functions as the
//!   command line, always inside `spawn_blocking` (the vault is synchronous).
//! - **Nothing that opens a secret sits on disk.** A web account is a vault
//!   operator: the password opens its key slot (Argon2id). A session or API
//!   token is a random bearer secret; the database keeps its hash and the
//!   vault key sealed under a key derived from it (see
//!   [`oathdesk_vault::web`]). Each request opens the vault with the secret
//!   it carries. Sessions, lockouts and tokens live in the database, so two
//!   servers on one database share them, and a restart signs nobody out.
//! - **Roles are enforced where the work is.** Every protected handler takes
//!   an [`auth::Auth`] extractor typed with the permission it needs; without
//!   it the handler does not run. The role table is data ([`auth::Role::permits`]).
//! - **Browsers get the usual defences**: HttpOnly SameSite=Strict cookies
//!   (Secure with `__Host-` under TLS), a CSRF token on every state-changing
//!   request plus an origin check, a strict CSP without inline script,
//!   login throttling with lockout, and no secret or code in any URL or log
//!   line ([`security`]).

pub mod account;
pub mod admin;
pub mod auditlog;
pub mod auth;
pub mod error;
pub mod fleet;
pub mod health;
pub mod helpdesk;
pub mod inventory;
pub mod launch;
pub mod listen;
pub mod metrics;
pub mod oidc;
pub mod oidc_pages;
pub mod openapi;
pub mod outbound;
pub mod pages;
pub mod proxy;
pub mod security;
pub mod selfservice;
pub mod state;
pub mod tls;
pub mod toolset;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, patch, post};
use oathdesk_vault::Vault;
use oathdesk_vault::any::AnyStore;
use oathdesk_vault::crypto::KdfParams;
use oathdesk_vault::location::Location;
use oathdesk_vault::store::{CredentialFilter, Store, StoreTx};
use oathdesk_vault::web::SETUP_OPERATOR;

pub use auth::{Permission, Role};
pub use state::{AppState, Settings};

/// One API route: method, path, what it needs, and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRoute {
    pub method: &'static str,
    pub path: &'static str,
    /// `None` for routes anyone may call (sign-in, setup).
    pub permission: Option<Permission>,
    pub summary: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    permission: Option<Permission>,
    summary: &'static str,
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        permission,
        summary,
    }
}

/// Every API route. The router below registers each one; tests walk this
/// table to check that every role without a route's permission is refused.
pub const API_ROUTES: &[ApiRoute] = &[
    route(
        "GET",
        "/healthz",
        None,
        "Liveness: 200 'ok' while the process serves",
    ),
    route(
        "GET",
        "/readyz",
        None,
        "Readiness: 200 {\"status\":\"ready\"}, or 503 with reason database, migrations or sealed",
    ),
    route(
        "GET",
        "/metrics",
        Some(Permission::Metrics),
        "Prometheus (OpenMetrics) text: requests, latencies, helpdesk outcomes, sign-ins, \
         audit head, database connections (a token with scope metrics, or --metrics-from)",
    ),
    route(
        "POST",
        "/api/v1/login",
        None,
        "Sign in with account name and password; sets the session cookie",
    ),
    route(
        "GET",
        "/api/v1/unseal",
        None,
        "Whether the console holds the vault key (helpdesk and auditor accounts need it)",
    ),
    route(
        "POST",
        "/api/v1/unseal",
        None,
        "Unseal the console with an admin's name and password",
    ),
    route(
        "GET",
        "/api/v1/setup",
        None,
        "Whether first-run setup is open, and how",
    ),
    route(
        "POST",
        "/api/v1/setup",
        None,
        "Create the first admin (setup code, or an existing operator)",
    ),
    route(
        "POST",
        "/api/v1/logout",
        Some(Permission::Account),
        "End this session",
    ),
    route(
        "GET",
        "/api/v1/me",
        Some(Permission::Account),
        "Who is signed in, role and permissions",
    ),
    route(
        "POST",
        "/api/v1/me/password",
        Some(Permission::Account),
        "Change one's own password",
    ),
    route(
        "GET",
        "/api/v1/me/tokens",
        Some(Permission::Account),
        "One's own sessions and API tokens",
    ),
    route(
        "POST",
        "/api/v1/me/tokens",
        Some(Permission::Account),
        "Create an API token with scopes",
    ),
    route(
        "DELETE",
        "/api/v1/me/tokens/{handle}",
        Some(Permission::Account),
        "Revoke one's own token or session",
    ),
    route(
        "POST",
        "/api/v1/toolset/codes",
        Some(Permission::Toolset),
        "Codes around a moment with validity windows (as `oathdesk code --json`)",
    ),
    route(
        "POST",
        "/api/v1/toolset/convert",
        Some(Permission::Toolset),
        "Convert a secret between hex, Base32 and Base64",
    ),
    route(
        "POST",
        "/api/v1/toolset/seed",
        Some(Permission::Toolset),
        "A new random seed from the OS CSPRNG",
    ),
    route(
        "POST",
        "/api/v1/toolset/qr",
        Some(Permission::Toolset),
        "otpauth URI and QR code (SVG) of a secret",
    ),
    route(
        "POST",
        "/api/v1/toolset/verify",
        Some(Permission::Toolset),
        "Drift check: which step offset matches a code",
    ),
    route(
        "POST",
        "/api/v1/toolset/entra-csv",
        Some(Permission::Toolset),
        "Build and lint an Entra ID CSV upload",
    ),
    route(
        "GET",
        "/api/v1/users",
        Some(Permission::InventoryRead),
        "Users (search with q=) and their credentials",
    ),
    route(
        "POST",
        "/api/v1/users",
        Some(Permission::InventoryWrite),
        "Add a user",
    ),
    route(
        "GET",
        "/api/v1/tokens",
        Some(Permission::InventoryRead),
        "Credentials, filtered (state, user, serial, custody, q)",
    ),
    route(
        "POST",
        "/api/v1/tokens",
        Some(Permission::InventoryWrite),
        "Add a token's credential",
    ),
    route(
        "POST",
        "/api/v1/tokens/bulk",
        Some(Permission::InventoryWrite),
        "Move many credentials to one state, all or none",
    ),
    route(
        "GET",
        "/api/v1/tokens/{ref}",
        Some(Permission::InventoryRead),
        "One credential and its lifecycle history",
    ),
    route(
        "POST",
        "/api/v1/tokens/{ref}/state",
        Some(Permission::InventoryWrite),
        "Move a credential to another state (ship, lost, retire, …)",
    ),
    route(
        "POST",
        "/api/v1/tokens/{ref}/assign",
        Some(Permission::InventoryWrite),
        "Assign a credential to a user",
    ),
    route(
        "POST",
        "/api/v1/tokens/{ref}/purge",
        Some(Permission::InventoryWrite),
        "Purge a credential's secret now",
    ),
    route(
        "POST",
        "/api/v1/tokens/{ref}/deliver",
        Some(Permission::Deliver),
        "Confirm delivery with a code read off the token (drift recorded, secret purged)",
    ),
    route(
        "POST",
        "/api/v1/tokens/{ref}/delivery-link",
        Some(Permission::DeliveryLink),
        "A one-time link with which the token's user confirms its delivery (shown once)",
    ),
    route(
        "GET",
        "/api/v1/tokens/{ref}/sightings",
        Some(Permission::InventoryRead),
        "A token's drift sightings, fitted line and standing against a verifier (verifier=, \
         horizon_days=): a plot's data",
    ),
    route(
        "GET",
        "/api/v1/fleet/drift",
        Some(Permission::InventoryRead),
        "Every token's clock drift against a verifier (verifier=, horizon_days=), worst first \
         (as `oathdesk fleet drift --json`)",
    ),
    route(
        "GET",
        "/api/v1/fleet/drift.csv",
        Some(Permission::InventoryRead),
        "The drift report as a CSV file (as `oathdesk fleet drift --csv`)",
    ),
    route(
        "GET",
        "/api/v1/fleet/eol",
        Some(Permission::InventoryRead),
        "Tokens whose battery is due within months= (6 if left out), overdue ones too \
         (as `oathdesk fleet eol --json`)",
    ),
    route(
        "POST",
        "/api/v1/forensic",
        Some(Permission::Forensic),
        "When was a code valid: every interval of a past range in which it was current or \
         accepted, for a user's or one token's credentials (audited; the code never in a URL)",
    ),
    route(
        "GET",
        "/api/v1/devices",
        Some(Permission::InventoryRead),
        "Devices and the slots in use",
    ),
    route(
        "POST",
        "/api/v1/import/preview",
        Some(Permission::InventoryWrite),
        "Read a seed file: what it holds and every problem, importing nothing",
    ),
    route(
        "POST",
        "/api/v1/import",
        Some(Permission::InventoryWrite),
        "Import a seed file, all or nothing",
    ),
    route(
        "POST",
        "/api/v1/export",
        Some(Permission::Export),
        "Export held secrets in a seed-file format (audited)",
    ),
    route(
        "POST",
        "/api/v1/helpdesk/code",
        Some(Permission::HelpdeskCode),
        "A code for a user, verified by the policy's methods, with a ticket (audited, \
         rate-limited); 202 when a second operator must approve it",
    ),
    route(
        "GET",
        "/api/v1/helpdesk/policy",
        Some(Permission::HelpdeskCode),
        "The verification policy: methods and their steps, ticket pattern, four eyes, notices",
    ),
    route(
        "PUT",
        "/api/v1/helpdesk/policy",
        Some(Permission::Admin),
        "Replace the verification policy (the vault checks it and says what to fix)",
    ),
    route(
        "GET",
        "/api/v1/helpdesk/tap",
        Some(Permission::HelpdeskCode),
        "Whether this console can issue Entra Temporary Access Passes (policy and connection)",
    ),
    route(
        "POST",
        "/api/v1/helpdesk/tap",
        Some(Permission::HelpdeskCode),
        "A Temporary Access Pass from Entra for a verified caller, shown once (audited)",
    ),
    route(
        "GET",
        "/api/v1/helpdesk/verification",
        Some(Permission::HelpdeskCode),
        "A method's steps with the user's data on file, masked (user=, method=; audited)",
    ),
    route(
        "POST",
        "/api/v1/helpdesk/reveal",
        Some(Permission::HelpdeskCode),
        "One value on file shown whole, to dial it ({user, method, name}; audited on its own)",
    ),
    route(
        "GET",
        "/api/v1/helpdesk/approvals",
        Some(Permission::HelpdeskCode),
        "Requests waiting for (or given) a second operator's approval, newest first (state=)",
    ),
    route(
        "POST",
        "/api/v1/helpdesk/approvals/{id}/approve",
        Some(Permission::HelpdeskCode),
        "Approve another operator's request (never one's own; audited)",
    ),
    route(
        "POST",
        "/api/v1/helpdesk/approvals/{id}/deny",
        Some(Permission::HelpdeskCode),
        "Deny another operator's request (audited)",
    ),
    route(
        "POST",
        "/api/v1/helpdesk/approvals/{id}/collect",
        Some(Permission::HelpdeskCode),
        "The code of one's own approved request, once (audited, rate-limited)",
    ),
    route(
        "POST",
        "/api/v1/identify",
        Some(Permission::Identify),
        "Find the token that shows one or two codes",
    ),
    route(
        "GET",
        "/api/v1/audit",
        Some(Permission::AuditRead),
        "The audit log, newest first, filtered",
    ),
    route(
        "GET",
        "/api/v1/audit/verify",
        Some(Permission::AuditRead),
        "Verify the audit chain (optionally against a kept head)",
    ),
    route(
        "GET",
        "/api/v1/vault/verify",
        Some(Permission::AuditRead),
        "Check every signed row and the audit chain (as 'oathdesk vault verify')",
    ),
    route(
        "GET",
        "/api/v1/accounts",
        Some(Permission::Admin),
        "Web accounts and the vault's operators",
    ),
    route(
        "POST",
        "/api/v1/accounts",
        Some(Permission::Admin),
        "Create a web account (or give an operator one)",
    ),
    route(
        "PATCH",
        "/api/v1/accounts/{name}",
        Some(Permission::Admin),
        "Change an account's role, or disable it",
    ),
    route(
        "DELETE",
        "/api/v1/accounts/{name}",
        Some(Permission::Admin),
        "Remove an account and its operator slot",
    ),
    route(
        "POST",
        "/api/v1/accounts/{name}/password",
        Some(Permission::Admin),
        "Set someone's password (they change it at next sign-in)",
    ),
    route(
        "GET",
        "/api/v1/grants",
        Some(Permission::Admin),
        "Every session and API token",
    ),
    route(
        "DELETE",
        "/api/v1/grants/{handle}",
        Some(Permission::Admin),
        "End anyone's session or token",
    ),
    route(
        "GET",
        "/api/v1/settings",
        Some(Permission::Admin),
        "The vault's settings",
    ),
    route(
        "PUT",
        "/api/v1/settings",
        Some(Permission::Admin),
        "Change a setting",
    ),
];

/// The largest import request: a 48 MiB file, Base64-encoded.
const IMPORT_LIMIT: usize = 64 * 1024 * 1024;

/// The console's router over a shared state.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login))
        .route("/oidc/login", get(oidc_pages::login))
        .route("/oidc/callback", get(oidc_pages::callback))
        .route("/setup", get(pages::setup))
        .route("/unseal", get(pages::unseal))
        .route("/toolset", get(pages::toolset))
        .route("/helpdesk", get(pages::helpdesk))
        .route("/inventory", get(pages::inventory))
        .route("/fleet", get(pages::fleet))
        .route("/audit", get(pages::audit))
        .route("/operators", get(pages::operators))
        .route("/account", get(pages::account))
        .route("/assets/{file}", get(pages::asset))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve))
        .route("/api/v1/login", post(account::login))
        .route(
            "/api/v1/unseal",
            get(account::unseal_state).post(account::unseal),
        )
        .route(
            "/api/v1/setup",
            get(account::setup_state).post(account::setup),
        )
        .route("/api/v1/logout", post(account::logout))
        .route("/api/v1/me", get(account::me))
        .route("/api/v1/me/password", post(account::change_password))
        .route(
            "/api/v1/me/tokens",
            get(account::list_tokens).post(account::create_token),
        )
        .route("/api/v1/me/tokens/{handle}", delete(account::revoke_token))
        .route("/api/v1/toolset/codes", post(toolset::codes))
        .route("/api/v1/toolset/convert", post(toolset::convert))
        .route("/api/v1/toolset/seed", post(toolset::new_seed))
        .route("/api/v1/toolset/qr", post(toolset::qr))
        .route("/api/v1/toolset/verify", post(toolset::verify))
        .route("/api/v1/toolset/entra-csv", post(toolset::entra_csv))
        .route(
            "/api/v1/users",
            get(inventory::users).post(inventory::add_user),
        )
        .route(
            "/api/v1/tokens",
            get(inventory::list_tokens).post(inventory::add_token),
        )
        .route("/api/v1/tokens/bulk", post(inventory::bulk_state))
        .route("/api/v1/tokens/{ref}", get(inventory::token))
        .route("/api/v1/tokens/{ref}/state", post(inventory::change_state))
        .route("/api/v1/tokens/{ref}/assign", post(inventory::assign))
        .route("/api/v1/tokens/{ref}/purge", post(inventory::purge))
        .route("/api/v1/tokens/{ref}/deliver", post(inventory::deliver))
        .route(
            "/api/v1/tokens/{ref}/delivery-link",
            post(selfservice::create),
        )
        .route(
            "/d/{secret}",
            get(selfservice::page).post(selfservice::submit),
        )
        .route("/api/v1/tokens/{ref}/sightings", get(fleet::sightings))
        .route("/api/v1/fleet/drift", get(fleet::drift))
        .route("/api/v1/fleet/drift.csv", get(fleet::drift_csv))
        .route("/api/v1/fleet/eol", get(fleet::eol))
        .route("/api/v1/forensic", post(fleet::forensic))
        .route("/api/v1/devices", get(inventory::devices))
        .route(
            "/api/v1/import/preview",
            post(inventory::import_preview).layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .route(
            "/api/v1/import",
            post(inventory::import).layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .route("/api/v1/export", post(inventory::export))
        .route("/api/v1/helpdesk/code", post(helpdesk::code))
        .route(
            "/api/v1/helpdesk/policy",
            get(helpdesk::policy).put(helpdesk::set_policy),
        )
        .route("/api/v1/helpdesk/verification", get(helpdesk::verification))
        .route("/api/v1/helpdesk/reveal", post(helpdesk::reveal))
        .route(
            "/api/v1/helpdesk/tap",
            get(helpdesk::tap_state).post(helpdesk::tap),
        )
        .route("/api/v1/helpdesk/approvals", get(helpdesk::approvals))
        .route(
            "/api/v1/helpdesk/approvals/{id}/approve",
            post(helpdesk::approve),
        )
        .route("/api/v1/helpdesk/approvals/{id}/deny", post(helpdesk::deny))
        .route(
            "/api/v1/helpdesk/approvals/{id}/collect",
            post(helpdesk::collect),
        )
        .route("/api/v1/identify", post(helpdesk::identify))
        .route("/api/v1/audit", get(auditlog::list))
        .route("/api/v1/audit/verify", get(auditlog::verify))
        .route("/api/v1/vault/verify", get(auditlog::verify_vault))
        .route("/api/v1/accounts", get(admin::list).post(admin::create))
        .route(
            "/api/v1/accounts/{name}",
            patch(admin::update).delete(admin::remove),
        )
        .route(
            "/api/v1/accounts/{name}/password",
            post(admin::reset_password),
        )
        .route("/api/v1/grants", get(admin::grants))
        .route("/api/v1/grants/{handle}", delete(admin::revoke))
        .route(
            "/api/v1/settings",
            get(admin::get_settings).put(admin::put_setting),
        )
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        // Outermost, so that every answer is counted (with the route the
        // router matched, which `Router::layer` sees).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// The state of the vault when the server starts.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstRun {
    /// Web accounts exist: people sign in.
    Ready,
    /// The vault was just created: the first admin is made with this
    /// one-time code at `/setup`.
    Created { setup_code: String },
    /// A vault made on the command line has no web account yet: an existing
    /// operator signs in at `/setup` to become the first admin.
    NeedsAdmin,
    /// An earlier start (or another server on the same database) created
    /// the vault and printed its setup code, which still works here: setup
    /// is done once, on any of the servers.
    AwaitingSetup,
}

/// Argon2id for the setup code's slot: the code is 160 random bits, so the
/// KDF only has to be sound, not slow.
pub const SETUP_KDF: KdfParams = KdfParams {
    memory_kib: 19 * 1024,
    iterations: 2,
    parallelism: 1,
};

/// Makes sure there is a vault at `location`: creates one (with a one-time
/// setup code) when there is none. A SQLite vault that still waits for its
/// setup from an earlier start, and holds nothing else, is made anew with a
/// new code: the old code was only printed, never stored. A PostgreSQL
/// vault that waits for its setup is left as it is: other servers on the
/// same database may be serving it, and its code works on every one.
/// Servers started at the same moment on an empty database create one
/// vault between them: the others find it made.
pub fn prepare(location: &Location, setup_kdf: KdfParams, now: u64) -> Result<FirstRun, String> {
    if let Some(first_run) = existing_vault(location, true)? {
        return Ok(first_run);
    }
    let code = new_setup_code()?;
    match Vault::create_at(location, SETUP_OPERATOR, code.as_bytes(), setup_kdf, now) {
        Ok(_) => Ok(FirstRun::Created { setup_code: code }),
        // Another server may have created it at the same moment.
        Err(error) => existing_vault(location, false)?.ok_or_else(|| error.to_string()),
    }
}

/// What the vault at `location` waits for; `None` when there is none (or
/// the waiting SQLite vault was removed to be made anew, if `renew`).
fn existing_vault(location: &Location, renew: bool) -> Result<Option<FirstRun>, String> {
    let existing = match location {
        Location::Sqlite(path) if !path.exists() => None,
        _ => match AnyStore::open(location) {
            Ok(store) => Some(store),
            Err(oathdesk_vault::Error::NoVault { .. }) => None,
            Err(error) => return Err(error.to_string()),
        },
    };
    let Some(mut store) = existing else {
        return Ok(None);
    };
    // Tables without an operator: another server is creating the vault
    // right now (its tables are made before the first operator's slot).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (accounts, operators, empty) = loop {
        let tx = store.read().map_err(|e| e.to_string())?;
        let accounts = tx.web_accounts().map_err(|e| e.to_string())?.len();
        let operators: Vec<String> = tx
            .operators()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|o| o.name)
            .collect();
        let empty = tx.users().map_err(|e| e.to_string())?.is_empty()
            && tx
                .credentials(&CredentialFilter::default())
                .map_err(|e| e.to_string())?
                .is_empty();
        drop(tx);
        if !operators.is_empty() {
            break (accounts, operators, empty);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{location} has a vault's tables but no operator: its creation was interrupted; \
                 remove it and start again"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    drop(store);
    if accounts > 0 {
        return Ok(Some(FirstRun::Ready));
    }
    if operators != [SETUP_OPERATOR] {
        return Ok(Some(FirstRun::NeedsAdmin));
    }
    let Some(path) = location.sqlite_path().filter(|_| renew && empty) else {
        return Ok(Some(FirstRun::AwaitingSetup));
    };
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
    Ok(None)
}

fn new_setup_code() -> Result<String, String> {
    let mut bytes = [0u8; 20];
    oathdesk_vault::crypto::random(&mut bytes).map_err(|e| e.to_string())?;
    Ok(data_encoding::BASE32_NOPAD.encode(&bytes))
}

/// Serves the console on `listener` until `shutdown` completes, within the
/// default [`listen::ConnectionLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(
        listener,
        app,
        None,
        listen::ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// Serves the console over TLS on `listener` until `shutdown` completes;
/// open connections get five seconds to finish.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    app: Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    listen::serve(
        listener,
        app,
        Some(config),
        listen::ConnectionLimits::default(),
        shutdown,
    )
    .await
}
