//! `GET /healthz` and `GET /readyz`: probes for load balancers, systemd and
//! orchestrators, answered without credentials.
//!
//! - `/healthz` says the process serves: `200 ok`, always, touching nothing.
//! - `/readyz` says this console can do its work: the database answers,
//!   its schema is the one this build knows, and the console holds the
//!   vault key (helpdesk and auditor accounts work only in an unsealed
//!   console, see docs/trust-model.md). `200 {"status":"ready"}`, else
//!   `503 {"status":"unready","reason":WORD}` with WORD one of `database`,
//!   `migrations`, `sealed` — and nothing else: an anonymous caller learns
//!   no path, host, version or error text.
//!
//! Both are cheap enough to probe every second: no Argon2id, no table
//! scan (one row of `schema_migrations` on a pooled connection), and no
//! sign-in throttle applies to them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oathdesk_vault::location::Location;
use oathdesk_vault::migrations::LATEST;
use serde_json::json;

use crate::state::{AppState, blocking};

/// Why a console is not ready: the word `/readyz` answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unready {
    /// The database does not answer, or the vault's tables are gone.
    Database,
    /// The schema is older or newer than this build's (a newer oathdesk
    /// migrated it, or a migration is pending).
    Migrations,
    /// No vault key in memory: an admin must unseal the console.
    Sealed,
}

impl Unready {
    pub fn word(self) -> &'static str {
        match self {
            Unready::Database => "database",
            Unready::Migrations => "migrations",
            Unready::Sealed => "sealed",
        }
    }
}

/// `GET /healthz`
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let probe = state.clone();
    let verdict = blocking(move || Ok(readiness(&probe)))
        .await
        .unwrap_or(Err(Unready::Database));
    match verdict {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unready", "reason": reason.word()})),
        )
            .into_response(),
    }
}

/// Whether the console can serve, and if not the first reason why.
/// Blocking (one database round trip): call it inside `spawn_blocking`.
pub fn readiness(state: &AppState) -> Result<(), Unready> {
    // A pooled SQLite connection keeps reading a file that was deleted or
    // replaced under it: the file at the path is what a new connection,
    // and the next start, would open.
    if let Location::Sqlite(path) = &state.location
        && std::fs::File::open(path).is_err()
    {
        return Err(Unready::Database);
    }
    let mut store = state
        .checkout()
        .map_err(|_| Unready::Database)?
        .into_store();
    match store.schema_version() {
        Ok(Some(version)) if version == LATEST => state.recycle(store),
        // Dropped, not recycled: a connection that failed may be broken.
        Ok(Some(0) | None) | Err(_) => return Err(Unready::Database),
        Ok(Some(_)) => return Err(Unready::Migrations),
    }
    if !state.is_unsealed() {
        return Err(Unready::Sealed);
    }
    Ok(())
}
