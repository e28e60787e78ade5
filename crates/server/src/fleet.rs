//! The fleet API: the clocks' drift report (JSON and CSV), one token's
//! sightings for a plot, the batteries due, and "when was this code
//! valid?". The vault computes and decides (permissions, the forensic
//! range's rules, its audit entry); this only reads the request and
//! writes the answer.

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use oathdesk_otp::{Interval, Verifier};
use oathdesk_vault::fleet::{self, DriftReport, EolLine, TokenDrift};
use oathdesk_vault::{ForensicReport, ForensicTarget};
use schemars::JsonSchema;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::inventory::token_ref;
use crate::state::now;

/// The look ahead of "near the edge" when none is given (as the command
/// line's `--horizon-days`).
pub const HORIZON_DAYS: u64 = 180;

/// The end-of-life look ahead when none is given (as `--months`).
pub const EOL_MONTHS: u64 = 6;

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    /// The verifier whose window counts: `entra` (the default; ±1 min for
    /// 30 s tokens), `exact`, `steps=K` or `seconds=S`.
    #[serde(default)]
    pub verifier: Option<String>,
    /// How far ahead "near the edge" looks, in days (180 if left out; at
    /// most 36525, a century).
    #[serde(default)]
    pub horizon_days: Option<u64>,
}

impl DriftQuery {
    fn verifier(&self) -> ApiResult<Verifier> {
        verifier(self.verifier.as_deref())
    }

    /// The vault's rule (at most a century), as the command line's.
    fn horizon_s(&self) -> ApiResult<u64> {
        Ok(fleet::horizon_seconds(
            self.horizon_days.unwrap_or(HORIZON_DAYS),
        )?)
    }
}

/// A verifier profile by name; Entra when none is given.
fn verifier(text: Option<&str>) -> ApiResult<Verifier> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(Verifier::Entra),
        Some(text) => text
            .parse()
            .map_err(|e| ApiError::bad_request(format!("verifier '{text}': {e}"))),
    }
}

async fn drift_report(
    auth: Auth<need::InventoryRead>,
    query: &DriftQuery,
) -> ApiResult<DriftReport> {
    let (verifier, horizon_s) = (query.verifier()?, query.horizon_s()?);
    auth.run(move |session| Ok(session.fleet_drift(verifier, horizon_s, now())?))
        .await
}

/// `GET /api/v1/fleet/drift`: as `oathdesk fleet drift --json`.
pub async fn drift(
    auth: Auth<need::InventoryRead>,
    Query(query): Query<DriftQuery>,
) -> ApiResult<Json<DriftReport>> {
    Ok(Json(drift_report(auth, &query).await?))
}

/// `GET /api/v1/fleet/drift.csv`: as `oathdesk fleet drift --csv`, as a
/// file to save.
pub async fn drift_csv(
    auth: Auth<need::InventoryRead>,
    Query(query): Query<DriftQuery>,
) -> ApiResult<Response> {
    let report = drift_report(auth, &query).await?;
    let day: String = oathdesk_vault::audit::rfc3339(report.at)
        .chars()
        .take(10)
        .collect();
    let disposition = format!("attachment; filename=\"oathdesk-drift-{day}.csv\"");
    let mut response = fleet::drift_csv(&report).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EolQuery {
    /// Tokens due within this many months (overdue ones too); 6 if left out.
    #[serde(default)]
    pub months: Option<u64>,
}

/// `GET /api/v1/fleet/eol`: as `oathdesk fleet eol --json`, soonest first.
pub async fn eol(
    auth: Auth<need::InventoryRead>,
    Query(query): Query<EolQuery>,
) -> ApiResult<Json<Vec<EolLine>>> {
    let months = query.months.unwrap_or(EOL_MONTHS);
    Ok(Json(
        auth.run(move |session| {
            let at = now();
            let until = fleet::months_ahead(at, months)?;
            Ok(session.fleet_eol(until, at)?)
        })
        .await?,
    ))
}

/// `GET /api/v1/tokens/{ref}/sightings`: one token's sightings, fitted
/// drift and standing against the verifier (the plot's data).
pub async fn sightings(
    auth: Auth<need::InventoryRead>,
    Path(reference): Path<String>,
    Query(query): Query<DriftQuery>,
) -> ApiResult<Json<TokenDrift>> {
    let reference = token_ref(&reference)?;
    let (verifier, horizon_s) = (query.verifier()?, query.horizon_s()?);
    Ok(Json(
        auth.run(move |session| Ok(session.token_drift(&reference, verifier, horizon_s, now())?))
            .await?,
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForensicRequest {
    /// The code in question, as typed. It travels in the body, never in a
    /// URL, and the audit log records the search without it.
    #[schemars(with = "String")]
    pub code: Zeroizing<String>,
    /// Search every token of this user (UPN)…
    #[serde(default)]
    pub user: Option<String>,
    /// …or this one token (SERIAL, SERIAL:SLOT or #ID).
    #[serde(default)]
    pub serial: Option<String>,
    /// The start of the range, Unix seconds.
    pub from: u64,
    /// The end of the range, Unix seconds: at least 10 minutes ago.
    pub to: u64,
    /// Whose acceptance window to report: `entra` (the default), `exact`,
    /// `steps=K` or `seconds=S`.
    #[serde(default)]
    pub verifier: Option<String>,
}

/// Whose tokens a forensic request names: a user or a token, one of them.
fn target(request: &ForensicRequest) -> ApiResult<ForensicTarget> {
    let given = |field: &Option<String>| {
        field
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    match (given(&request.user), given(&request.serial)) {
        (Some(user), None) => Ok(ForensicTarget::User(user)),
        (None, Some(serial)) => Ok(ForensicTarget::Token(token_ref(&serial)?)),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "name either a user or a serial to search, not both",
        )),
        (None, None) => Err(ApiError::bad_request(
            "name whose tokens to search: 'user' (a UPN) or 'serial'",
        )),
    }
}

/// `POST /api/v1/forensic`: every interval of a past range in which a
/// code was current or accepted (admins and auditors, by the vault's
/// table; audited by the vault).
pub async fn forensic(
    auth: Auth<need::Forensic>,
    Json(request): Json<ForensicRequest>,
) -> ApiResult<Json<ForensicReport>> {
    let target = target(&request)?;
    let verifier = verifier(request.verifier.as_deref())?;
    let range = Interval {
        from: request.from,
        until: request.to,
    };
    let code = request.code;
    Ok(Json(
        auth.run(move |session| {
            Ok(session.forensic(&target, code.as_str(), range, verifier, now())?)
        })
        .await?,
    ))
}
