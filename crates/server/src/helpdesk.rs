//! The helpdesk API: a code for a user whose token is not with them yet —
//! only with a verification by one of the policy's methods (its steps
//! confirmed against the data on file, evidence written) and a ticket,
//! within the per-user rate limit, audited granted or refused; the
//! verification policy itself; what a method shows the operator for a
//! user; four eyes (approval requests, approving, denying, collecting);
//! and identifying a token from the codes it shows.
//!
//! Every rule is the vault's: these handlers translate JSON into the
//! library's requests and its answers (and typed refusals) back.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use oathdesk_otp::{Verifier, Window};
use oathdesk_vault::model::TokenRef;
use oathdesk_vault::verification::{Policy, Verification};
use oathdesk_vault::{Approval, HelpdeskGrant, HelpdeskRequest, IdentifyHit, VerificationView};
use schemars::JsonSchema;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{AfterAnswer, Auth, Bearer, need};
use crate::error::{ApiError, ApiResult};
use crate::metrics::helpdesk_outcome;
use crate::outbound::IssuedPass;
use crate::state::{AppState, blocking, now};

/// What the operator did for one verification method.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationInput {
    /// A method of the policy (`GET /api/v1/helpdesk/policy`), e.g. `call-back`.
    pub method: String,
    /// One flag per step of the method, in order; every step must be confirmed.
    #[serde(default)]
    pub confirmed: Vec<bool>,
    /// What the operator saw or heard (required when the method says so).
    #[serde(default)]
    pub evidence: String,
}

impl VerificationInput {
    fn into_vault(self) -> Verification {
        Verification {
            method: self.method.trim().to_owned(),
            confirmed: self.confirmed,
            evidence: self.evidence.trim().to_owned(),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub user: String,
    /// How the caller was verified: one of the policy's methods (two when
    /// the first does not suffice alone), each with its steps and evidence.
    #[serde(default)]
    pub verifications: Vec<VerificationInput>,
    /// The ticket id of the call; it must match the policy's pattern.
    pub ticket: String,
    /// `SERIAL`, `SERIAL:SLOT` or `#ID` when the user has several tokens
    /// (also accepted as `token`).
    #[serde(default, alias = "token")]
    pub serial: Option<String>,
    /// Seconds the code must stay accepted (a code for an e-mail); default:
    /// the current code.
    #[serde(default)]
    pub valid_for: Option<u64>,
    /// `entra` (default), `exact`, `steps=K`, `seconds=S`.
    #[serde(default)]
    pub verifier: Option<String>,
    /// Gone: a free-text verification is no record. Refused with what to send.
    #[serde(default)]
    #[schemars(skip)]
    pub verified_by: Option<IgnoredAny>,
}

/// A granted code, with the server's clock for the countdown.
#[derive(Serialize)]
pub struct CodeAnswer {
    #[serde(flatten)]
    pub grant: HelpdeskGrant,
    pub time: u64,
}

impl CodeRequest {
    /// The vault's request (the shapes are checked here, the rules there).
    fn into_vault(self) -> ApiResult<HelpdeskRequest> {
        if self.verified_by.is_some() {
            return Err(ApiError::bad_request(
                "verified_by is no longer accepted: send verifications \
                 [{\"method\", \"confirmed\": [one flag per step], \"evidence\"}] \
                 (GET /api/v1/helpdesk/policy lists the methods and their steps)",
            ));
        }
        let verifier: Verifier = self
            .verifier
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or("entra")
            .parse()
            .map_err(|e| ApiError::bad_request(format!("verifier: {e}")))?;
        let token = self
            .serial
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<TokenRef>())
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("serial: {e}")))?;
        if self.valid_for.is_some_and(|s| s > 24 * 3600) {
            return Err(ApiError::bad_request("valid_for: at most a day"));
        }
        Ok(HelpdeskRequest {
            user: self.user.trim().to_owned(),
            verifications: self
                .verifications
                .into_iter()
                .map(VerificationInput::into_vault)
                .collect(),
            ticket: self.ticket.trim().to_owned(),
            token,
            valid_for: self.valid_for.filter(|s| *s > 0),
            verifier,
        })
    }
}

/// Sends the notices a helpdesk action queued, after the answer, when the
/// console is wired to send them (else `oathdesk notify send` does, from a
/// timer). A notice that cannot be sent stays queued, its failure audited.
fn send_notices_after(state: &AppState) -> Option<AfterAnswer> {
    let outbound = state.settings.outbound.0.clone()?;
    Some(Box::new(move |session| {
        // Most requests queue nothing: then nothing is read or sent.
        if !session.queued_notices() {
            return;
        }
        match outbound.send_notices(session) {
            Ok((0, 0)) => {}
            Ok((sent, failed)) => tracing::info!(sent, failed, "user notices"),
            Err(error) => tracing::warn!(%error, "user notices not sent; they stay queued"),
        }
    }))
}

/// `POST /api/v1/helpdesk/code`: the code (200), or — when the policy
/// asks a second operator — `202 {"kind": "approval_required", "id", …}`.
///
/// The vault is opened here rather than by the extractor, so that what
/// the code is decided on is read with the grant (one statement on
/// PostgreSQL) and the request takes one blocking turn, not two. Refusals
/// keep their order: a bad secret is refused before a bad body is.
pub async fn code(
    bearer: Bearer<need::HelpdeskCode>,
    body: Result<Json<CodeRequest>, JsonRejection>,
) -> Result<Json<CodeAnswer>, Response> {
    let request = body.map(|Json(request)| request.into_vault());
    let after = send_notices_after(&bearer.state);
    let state = bearer.state.clone();
    let answer = blocking(move || {
        let time = now();
        let upn = match &request {
            Ok(Ok(request)) => Some((request.user.as_str(), time)),
            _ => None,
        };
        let auth = bearer.open(upn)?;
        let vault_request = match request {
            Ok(request) => request?,
            Err(rejection) => return Ok(Err(rejection)),
        };
        auth.run_here(
            |session| {
                let decided = session.helpdesk_code(&vault_request, time);
                state.metrics.helpdesk_code(helpdesk_outcome(&decided));
                Ok(Ok(CodeAnswer {
                    grant: decided?,
                    time,
                }))
            },
            after,
        )
    })
    .await;
    match answer {
        Ok(Ok(answer)) => Ok(Json(answer)),
        Ok(Err(rejection)) => Err(rejection.into_response()),
        Err(error) => Err(error.into_response()),
    }
}

/// Whether this console can issue Temporary Access Passes.
#[derive(Serialize)]
pub struct TapState {
    /// The helpdesk policy allows passes (`tap.enabled`).
    pub enabled: bool,
    /// The console is connected to Entra (`oathdesk serve --tenant …`).
    pub connected: bool,
    pub lifetime_minutes: u32,
    pub usable_once: bool,
}

/// `GET /api/v1/helpdesk/tap`: whether a pass can be offered beside the code.
pub async fn tap_state(auth: Auth<need::HelpdeskCode>) -> ApiResult<Json<TapState>> {
    let connected = auth
        .state
        .settings
        .outbound
        .0
        .as_ref()
        .is_some_and(|o| o.tap_connected());
    let policy = auth.run(|session| Ok(session.helpdesk_policy()?)).await?;
    Ok(Json(TapState {
        enabled: policy.tap.enabled,
        connected,
        lifetime_minutes: policy.tap.lifetime_minutes,
        usable_once: policy.tap.usable_once,
    }))
}

/// A pass for one caller, shown once.
#[derive(Serialize)]
pub struct TapAnswer {
    pub user: String,
    #[serde(flatten)]
    pub pass: IssuedPass,
}

/// `POST /api/v1/helpdesk/tap`: a Temporary Access Pass for a verified
/// caller (the same body as a code, without token and validity). The vault
/// permits or refuses it; Entra issues it; both are audited; the pass is
/// in this answer only.
pub async fn tap(
    auth: Auth<need::HelpdeskCode>,
    Json(request): Json<CodeRequest>,
) -> ApiResult<Json<TapAnswer>> {
    let outbound = auth
        .state
        .settings
        .outbound
        .0
        .clone()
        .filter(|o| o.tap_connected())
        .ok_or_else(|| {
            ApiError::unavailable(
                "this console is not connected to Entra: start 'oathdesk serve' with \
                 --tenant, --client-id and --client-secret-file (or --certificate) to issue \
                 passes here, or use 'oathdesk helpdesk tap'",
            )
        })?;
    if request.serial.is_some() || request.valid_for.is_some() {
        return Err(ApiError::bad_request(
            "a Temporary Access Pass is for the user, not a token: send no serial or valid_for \
             (the policy's tap.lifetime_minutes decides how long it lasts)",
        ));
    }
    let vault_request = request.into_vault()?;
    let after = send_notices_after(&auth.state);
    // Entra is asked between two vault writes, each its own transaction:
    // the wait holds up no other operator.
    let answer = auth
        .run_then(
            move |session| {
                let permit = session.helpdesk_tap(&vault_request, now())?;
                match outbound.issue_tap(&permit) {
                    Ok(pass) => {
                        session.helpdesk_tap_outcome(&permit, Ok(&pass.method_id), now())?;
                        Ok(TapAnswer {
                            user: permit.user,
                            pass,
                        })
                    }
                    Err(reason) => {
                        session.helpdesk_tap_outcome(&permit, Err(&reason), now())?;
                        Err(ApiError::new(
                            axum::http::StatusCode::BAD_GATEWAY,
                            format!("Entra refused the Temporary Access Pass: {reason}"),
                        )
                        .of_kind("entra_refused"))
                    }
                }
            },
            after,
        )
        .await?;
    Ok(Json(answer))
}

/// `GET /api/v1/helpdesk/policy`: the verification policy (the default
/// until an admin sets one).
pub async fn policy(auth: Auth<need::HelpdeskCode>) -> ApiResult<Json<Policy>> {
    let policy = auth.run(|session| Ok(session.helpdesk_policy()?)).await?;
    Ok(Json(policy))
}

/// The body of `PUT /api/v1/helpdesk/policy`: the whole policy, as `GET`
/// answers it; fields left out take their defaults.
pub struct PolicyBody;

impl JsonSchema for PolicyBody {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HelpdeskPolicy".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The schema of the vault's own type, read off an example of it:
        // a field the vault adds shows up here without an edit.
        let mut example = Policy::default();
        example.accepted = example.methods.iter().map(|m| m.name.clone()).collect();
        example.four_eyes.valid_longer_than_minutes = Some(15);
        example.four_eyes.after_codes_per_day = Some(3);
        example.four_eyes.users = vec!["ceo@contoso.com".into()];
        example.four_eyes.groups = vec!["Executive Board".into()];
        example.notify.channel = Some("mail".into());
        example.notify.mail_from = Some("helpdesk@contoso.com".into());
        example.notify.webhook_url = Some("https://hooks.contoso.com/oathdesk".into());
        example.notify.report_to = Some("security@contoso.com".into());
        example.notify.organisation = Some("Contoso".into());
        let mut schema = generator
            .root_schema_for_value(&example)
            .unwrap_or_else(|_| schemars::json_schema!({"type": "object"}));
        schema.insert(
            "description".into(),
            json!(
                "The helpdesk's verification policy, as GET /api/v1/helpdesk/policy answers it. \
                 It replaces the current one; fields left out take their defaults, unknown \
                 fields are refused."
            ),
        );
        schema
    }
}

/// `PUT /api/v1/helpdesk/policy` (admins): replaces the policy; the vault
/// checks it and says what to fix.
pub async fn set_policy(
    auth: Auth<need::Admin>,
    Json(sent): Json<Value>,
) -> ApiResult<Json<Policy>> {
    // The vault's policy type refuses a field it does not know (a misspelt
    // `four_eye` never leaves four eyes off unseen).
    let policy: Policy =
        serde_json::from_value(sent).map_err(|e| ApiError::bad_request(format!("policy: {e}")))?;
    let stored = auth
        .run(move |session| {
            session.set_helpdesk_policy(&policy, now())?;
            Ok(session.helpdesk_policy()?)
        })
        .await?;
    Ok(Json(stored))
}

#[derive(Deserialize, JsonSchema)]
pub struct VerificationQuery {
    /// The caller's UPN.
    #[serde(default)]
    pub user: String,
    /// One of the policy's methods.
    #[serde(default)]
    pub method: String,
}

/// `GET /api/v1/helpdesk/verification?user=&method=`: the method's steps
/// with the user's data on file, partly masked (each view is audited).
pub async fn verification(
    auth: Auth<need::HelpdeskCode>,
    Query(query): Query<VerificationQuery>,
) -> ApiResult<Json<VerificationView>> {
    let user = query.user.trim().to_owned();
    let method = query.method.trim().to_owned();
    if user.is_empty() || method.is_empty() {
        return Err(ApiError::bad_request(
            "give user=UPN and method=NAME (GET /api/v1/helpdesk/policy lists the methods)",
        ));
    }
    // It writes an audit entry: take the writer's turn like a change.
    let view = auth
        .run(move |session| Ok(session.verification_view(&user, &method, now())?))
        .await?;
    Ok(Json(view))
}

/// Which value on file to show whole.
#[derive(Deserialize, JsonSchema)]
pub struct RevealRequest {
    pub user: String,
    pub method: String,
    /// `mobile_phone`, `office_phone`…: one a step of the method shows.
    pub name: String,
}

/// A value on file, whole (to dial it). Audited as `helpdesk.reveal`.
pub async fn reveal(
    auth: Auth<need::HelpdeskCode>,
    Json(request): Json<RevealRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let value = auth
        .run(move |session| {
            Ok(session.reveal_fact(&request.user, &request.method, &request.name, now())?)
        })
        .await?;
    Ok(Json(serde_json::json!({"value": value})))
}

#[derive(Deserialize, JsonSchema)]
pub struct ApprovalQuery {
    /// `pending`, `approved`, `denied`, `used` or `expired`; all when left out.
    #[serde(default)]
    pub state: Option<String>,
}

/// Approval requests and the server's clock.
#[derive(Serialize)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
    pub time: u64,
}

/// `GET /api/v1/helpdesk/approvals?state=`: approval requests, newest first.
pub async fn approvals(
    auth: Auth<need::HelpdeskCode>,
    Query(query): Query<ApprovalQuery>,
) -> ApiResult<Json<ApprovalList>> {
    let state = query
        .state
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let (approvals, time) = auth
        .run(move |session| {
            let time = now();
            Ok((session.approvals(state.as_deref(), time)?, time))
        })
        .await?;
    Ok(Json(ApprovalList { approvals, time }))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why, for the audit log (optional).
    #[serde(default)]
    pub note: Option<String>,
}

async fn decide(
    auth: Auth<need::HelpdeskCode>,
    id: String,
    approve: bool,
    decision: Decision,
) -> ApiResult<Json<Approval>> {
    let note = decision
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let decided = auth
        .run(move |session| {
            Ok(session.decide_approval(id.trim(), approve, note.as_deref(), now())?)
        })
        .await?;
    Ok(Json(decided))
}

/// `POST /api/v1/helpdesk/approvals/{id}/approve`: another operator's
/// request may go ahead (never one's own; not once expired).
pub async fn approve(
    auth: Auth<need::HelpdeskCode>,
    Path(id): Path<String>,
    Json(decision): Json<Decision>,
) -> ApiResult<Json<Approval>> {
    decide(auth, id, true, decision).await
}

/// `POST /api/v1/helpdesk/approvals/{id}/deny`
pub async fn deny(
    auth: Auth<need::HelpdeskCode>,
    Path(id): Path<String>,
    Json(decision): Json<Decision>,
) -> ApiResult<Json<Approval>> {
    decide(auth, id, false, decision).await
}

/// `POST /api/v1/helpdesk/approvals/{id}/collect`: the code of an approved
/// request — for the operator who asked, once.
pub async fn collect(
    auth: Auth<need::HelpdeskCode>,
    Path(id): Path<String>,
) -> ApiResult<Json<CodeAnswer>> {
    let after = send_notices_after(&auth.state);
    let state = auth.state.clone();
    let (grant, time) = auth
        .run_then(
            move |session| {
                let time = now();
                let decided = session.helpdesk_collect(id.trim(), time);
                state.metrics.helpdesk_code(helpdesk_outcome(&decided));
                Ok((decided?, time))
            },
            after,
        )
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
    // The console's index, kept between requests (the vault crate brings
    // it up to date with the vault's change marker before each search).
    let state = auth.state.clone();
    let hits = auth
        .run(move |session| {
            let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
            let time = now();
            Ok(session.identify_cached(
                &state.identify,
                &codes,
                request.at.unwrap_or(time),
                Window::symmetric(steps),
                time,
            )?)
        })
        .await?;
    Ok(Json(hits))
}
