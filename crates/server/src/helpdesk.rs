//! The helpdesk API: a code for a user whose token is not with them yet —
//! only with the identity-verification record and a ticket, within the
//! per-user rate limit, audited granted or refused — and identifying a
//! token from the codes it shows.

use axum::Json;
use oathdesk_otp::{Verifier, Window};
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::{HelpdeskGrant, HelpdeskRequest, IdentifyHit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::state::now;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub user: String,
    /// How the caller's identity was verified (call-back to the number on
    /// file, manager confirmed, …).
    pub verified_by: String,
    pub ticket: String,
    /// `SERIAL`, `SERIAL:SLOT` or `#ID` when the user has several tokens.
    #[serde(default)]
    pub token: Option<String>,
    /// Seconds the code must stay accepted (a code for an e-mail); default:
    /// the current code.
    #[serde(default)]
    pub valid_for: Option<u64>,
    /// `entra` (default), `exact`, `steps=K`, `seconds=S`.
    #[serde(default)]
    pub verifier: Option<String>,
}

/// A granted code, with the server's clock for the countdown.
#[derive(Serialize)]
pub struct CodeAnswer {
    #[serde(flatten)]
    pub grant: HelpdeskGrant,
    pub time: u64,
}

/// `POST /api/v1/helpdesk/code`
pub async fn code(
    auth: Auth<need::HelpdeskCode>,
    Json(request): Json<CodeRequest>,
) -> ApiResult<Json<CodeAnswer>> {
    let verifier: Verifier = request
        .verifier
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or("entra")
        .parse()
        .map_err(|e| ApiError::bad_request(format!("verifier: {e}")))?;
    let token = request
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<TokenRef>())
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if request.valid_for.is_some_and(|s| s > 24 * 3600) {
        return Err(ApiError::bad_request("valid_for: at most a day"));
    }
    let vault_request = HelpdeskRequest {
        user: request.user.trim().to_owned(),
        verified_by: request.verified_by.trim().to_owned(),
        ticket: request.ticket.trim().to_owned(),
        token,
        valid_for: request.valid_for.filter(|s| *s > 0),
        verifier,
    };
    let (grant, time) = auth
        .run(move |session| {
            let time = now();
            Ok((session.helpdesk_code(&vault_request, time)?, time))
        })
        .await?;
    Ok(Json(CodeAnswer { grant, time }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifyRequest {
    /// One code, or two consecutive ones (which make the answer unique).
    pub codes: Vec<String>,
    #[serde(default)]
    pub at: Option<u64>,
    /// Steps either side (default 2).
    #[serde(default)]
    pub window: Option<u64>,
}

/// `POST /api/v1/identify`: which held credentials show these codes.
pub async fn identify(
    auth: Auth<need::Identify>,
    Json(request): Json<IdentifyRequest>,
) -> ApiResult<Json<Vec<IdentifyHit>>> {
    let codes: Vec<String> = request
        .codes
        .iter()
        .map(|c| c.trim().replace(' ', ""))
        .filter(|c| !c.is_empty())
        .collect();
    if codes.is_empty() || codes.len() > 2 {
        return Err(ApiError::bad_request(
            "codes: give one code, or two consecutive codes",
        ));
    }
    let steps = request.window.unwrap_or(2);
    if steps > 100 {
        return Err(ApiError::bad_request("window: at most 100 steps"));
    }
    let hits = auth
        .run(move |session| {
            let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
            let time = now();
            Ok(session.identify(
                &codes,
                request.at.unwrap_or(time),
                Window::symmetric(steps),
                time,
            )?)
        })
        .await?;
    Ok(Json(hits))
}
