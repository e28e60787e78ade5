//! The inventory API: users, devices, credentials, lifecycle, import and
//! export. Secrets never leave through here except by an audited export.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use oathdesk_formats::format::{self, Format, WriteOptions};
use oathdesk_formats::{Keys, Record, spreadsheet};
use oathdesk_otp::{Credential, Kind};
use oathdesk_vault::model::{DeviceKind, State, TokenRef};
use oathdesk_vault::store::CredentialFilter;
use oathdesk_vault::{Delivery, NewToken, TokenInfo, defaults, exchange};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::state::now;
use crate::toolset::SecretInput;

pub(crate) fn token_ref(text: &str) -> ApiResult<TokenRef> {
    text.parse()
        .map_err(|e: oathdesk_vault::Error| ApiError::bad_request(e.to_string()))
}

fn state(text: &str) -> ApiResult<State> {
    text.parse()
        .map_err(|e: oathdesk_vault::Error| ApiError::bad_request(e.to_string()))
}

/// A credential as listed, with its reference.
#[derive(Serialize)]
pub struct Listed {
    pub reference: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

fn listed(info: TokenInfo) -> Listed {
    Listed {
        reference: info.reference(),
        info,
    }
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    /// `held` or `purged`.
    #[serde(default)]
    pub custody: Option<String>,
    /// Words that must each appear in the serial, user, label or issuer.
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
}

fn matches_words(info: &TokenInfo, words: &[String]) -> bool {
    let haystack = [
        info.reference(),
        info.user.clone().unwrap_or_default(),
        info.label.clone().unwrap_or_default(),
        info.issuer.clone().unwrap_or_default(),
        info.model.clone().unwrap_or_default(),
    ]
    .join(" ")
    .to_lowercase();
    words.iter().all(|w| haystack.contains(w))
}

/// `GET /api/v1/tokens`
pub async fn list_tokens(
    auth: Auth<need::InventoryRead>,
    Query(query): Query<TokenQuery>,
) -> ApiResult<Json<Value>> {
    let filter = CredentialFilter {
        state: query.state.as_deref().map(state).transpose()?,
        user_upn: query.user.clone().filter(|u| !u.trim().is_empty()),
        device_serial: query.serial.clone().filter(|s| !s.trim().is_empty()),
        held_only: match query.custody.as_deref() {
            None | Some("") | Some("purged") => false,
            Some("held") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "custody: '{other}' is not held or purged"
                )));
            }
        },
        ..CredentialFilter::default()
    };
    let purged_only = query.custody.as_deref() == Some("purged");
    let words: Vec<String> = query
        .q
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let limit = query.limit.unwrap_or(500).min(5000);
    let offset = query.offset.unwrap_or(0);
    let tokens = auth
        .run(move |session| Ok(session.tokens(&filter)?))
        .await?;
    let chosen: Vec<TokenInfo> = tokens
        .into_iter()
        .filter(|t| !purged_only || t.custody.name() == "purged")
        .filter(|t| matches_words(t, &words))
        .collect();
    let total = chosen.len();
    let page: Vec<Listed> = chosen
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(listed)
        .collect();
    Ok(Json(
        json!({"total": total, "offset": offset, "tokens": page}),
    ))
}

/// `GET /api/v1/tokens/{ref}`: one credential and its history.
pub async fn token(
    auth: Auth<need::InventoryRead>,
    Path(reference): Path<String>,
) -> ApiResult<Json<Value>> {
    let reference = token_ref(&reference)?;
    let (info, events) = auth
        .run(move |session| Ok(session.token(&reference)?))
        .await?;
    // Nothing can be done with a row altered outside oathdesk (the vault
    // refuses it): offer no step.
    let next: Vec<&str> = if info.altered {
        Vec::new()
    } else {
        info.state.successors().iter().map(|s| s.name()).collect()
    };
    Ok(Json(
        json!({"token": listed(info), "events": events, "next_states": next}),
    ))
}

/// `GET /api/v1/devices`: each device with its slots in use.
pub async fn devices(auth: Auth<need::InventoryRead>) -> ApiResult<Json<Value>> {
    let (devices, tokens) = auth
        .run(|session| {
            Ok((
                session.devices()?,
                session.tokens(&CredentialFilter::default())?,
            ))
        })
        .await?;
    let mut by_serial: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for token in &tokens {
        if let Some(serial) = &token.serial {
            by_serial.entry(serial.clone()).or_default().push(json!({
                "reference": token.reference(), "slot": token.slot, "state": token.state,
                "custody": token.custody, "user": token.user,
            }));
        }
    }
    let rows: Vec<Value> = devices
        .iter()
        .map(|d| {
            let credentials = by_serial.remove(&d.serial).unwrap_or_default();
            json!({
                "serial": d.serial, "manufacturer": d.manufacturer, "model": d.model,
                "kind": d.kind, "slots": d.slots, "used": credentials.len(),
                "created_at": d.created_at, "credentials": credentials,
            })
        })
        .collect();
    Ok(Json(json!({"devices": rows})))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    #[serde(default)]
    pub q: Option<String>,
}

/// `GET /api/v1/users?q=`: users whose UPN, name or token serial contains
/// every word, each with their credentials (the helpdesk's search).
pub async fn users(
    auth: Auth<need::InventoryRead>,
    Query(query): Query<UserQuery>,
) -> ApiResult<Json<Value>> {
    let words: Vec<String> = query
        .q
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let (users, tokens) = auth
        .run(|session| {
            Ok((
                session.users()?,
                session.tokens(&CredentialFilter::default())?,
            ))
        })
        .await?;
    let mut rows = Vec::new();
    for user in users {
        let theirs: Vec<&TokenInfo> = tokens
            .iter()
            .filter(|t| {
                t.user
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&user.upn))
            })
            .collect();
        let haystack = format!(
            "{} {} {}",
            user.upn,
            user.display_name.clone().unwrap_or_default(),
            theirs
                .iter()
                .map(|t| t.reference())
                .collect::<Vec<_>>()
                .join(" ")
        )
        .to_lowercase();
        if !words.iter().all(|w| haystack.contains(w)) {
            continue;
        }
        let credentials: Vec<Listed> = theirs.into_iter().cloned().map(listed).collect();
        rows.push(json!({
            "upn": user.upn, "display_name": user.display_name, "created_at": user.created_at,
            "tokens": credentials,
        }));
        if rows.len() >= 200 {
            break;
        }
    }
    Ok(Json(json!({"users": rows})))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub upn: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `POST /api/v1/users`
pub async fn add_user(
    auth: Auth<need::InventoryWrite>,
    Json(request): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user = auth
        .run(move |session| {
            let name = request
                .display_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty());
            Ok(session.add_user(&request.upn, name, now())?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!(user))))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub slot: Option<u32>,
    /// `classic`, `single-profile`, `multi-profile`, `unknown`.
    pub kind: String,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Slots of a new device (default 100 for multi-profile, else 1).
    #[serde(default)]
    pub slots: Option<u32>,
    /// The secret and its parameters; or `generate`.
    #[serde(default)]
    pub credential: Option<SecretInput>,
    /// A fresh seed from the CSPRNG (for programmable tokens), never shown:
    /// the token is burned or exported from the vault.
    #[serde(default)]
    pub generate: bool,
    #[serde(default)]
    pub user: Option<String>,
    /// `stock` (pre-seeded) or `burned` (programmed).
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

/// `POST /api/v1/tokens`
pub async fn add_token(
    auth: Auth<need::InventoryWrite>,
    Json(request): Json<NewTokenRequest>,
) -> ApiResult<(StatusCode, Json<Listed>)> {
    let device_kind: DeviceKind = request
        .kind
        .parse()
        .map_err(|e: oathdesk_vault::Error| ApiError::bad_request(e.to_string()))?;
    let credential = match (&request.credential, request.generate) {
        (Some(input), false) => input.credential()?,
        (None, true) => Credential::totp(
            defaults::generated_secret(Default::default())
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "give the token's secret (credential), or generate: true — one of the two",
            ));
        }
    };
    let first = match request.state.as_deref() {
        None | Some("") => defaults::first_state(device_kind),
        Some(text) => match state(text)? {
            s @ (State::Stock | State::Burned) => s,
            other => {
                return Err(ApiError::bad_request(format!(
                    "state: a new token starts in stock or burned, not {other}"
                )));
            }
        },
    };
    let token = NewToken {
        serial: request.serial.clone().filter(|s| !s.trim().is_empty()),
        slot: request.slot,
        device_kind,
        manufacturer: request
            .manufacturer
            .clone()
            .filter(|m| !m.trim().is_empty()),
        model: request.model.clone().filter(|m| !m.trim().is_empty()),
        device_slots: request.slots.unwrap_or(defaults::slots(device_kind)),
        credential,
        label: request.label.clone().filter(|l| !l.trim().is_empty()),
        user: request.user.clone().filter(|u| !u.trim().is_empty()),
        state: first,
    };
    let generated = request.generate;
    let info = auth
        .run(move |session| {
            Ok(if generated {
                // The seed's provenance goes into the audit entry.
                session.add_generated_token(token, "POST /api/v1/tokens generate", now())?
            } else {
                session.add_token(token, now())?
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(listed(info))))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    pub state: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/tokens/{ref}/state`: ship, lost, retire, burned…
pub async fn change_state(
    auth: Auth<need::InventoryWrite>,
    Path(reference): Path<String>,
    Json(request): Json<StateChange>,
) -> ApiResult<Json<Listed>> {
    let reference = token_ref(&reference)?;
    let to = state(&request.state)?;
    if to == State::Delivered {
        return Err(ApiError::bad_request(
            "delivery is confirmed with a code read off the token: POST …/deliver",
        ));
    }
    if to == State::Assigned {
        return Err(ApiError::bad_request(
            "assign names the user: POST …/assign",
        ));
    }
    let note = request.note.filter(|n| !n.trim().is_empty());
    let info = auth
        .run(move |session| Ok(session.transition(&reference, to, note.as_deref(), now())?))
        .await?;
    Ok(Json(listed(info)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkChange {
    pub tokens: Vec<String>,
    pub state: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /api/v1/tokens/bulk`: one state for many credentials, all or none.
pub async fn bulk_state(
    auth: Auth<need::InventoryWrite>,
    Json(request): Json<BulkChange>,
) -> ApiResult<Json<Value>> {
    if request.tokens.len() > 10_000 {
        return Err(ApiError::bad_request("at most 10,000 tokens at once"));
    }
    let references = request
        .tokens
        .iter()
        .map(|t| token_ref(t))
        .collect::<ApiResult<Vec<_>>>()?;
    let to = state(&request.state)?;
    if matches!(to, State::Delivered | State::Assigned) {
        return Err(ApiError::bad_request(format!(
            "state: {to} is set one token at a time (deliver needs a code, assign a user)"
        )));
    }
    let note = request.note.filter(|n| !n.trim().is_empty());
    let moved = auth
        .run(move |session| Ok(session.transition_all(&references, to, note.as_deref(), now())?))
        .await?;
    let moved: Vec<Listed> = moved.into_iter().map(listed).collect();
    Ok(Json(json!({"moved": moved.len(), "tokens": moved})))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    pub user: String,
}

/// `POST /api/v1/tokens/{ref}/assign`
pub async fn assign(
    auth: Auth<need::InventoryWrite>,
    Path(reference): Path<String>,
    Json(request): Json<Assign>,
) -> ApiResult<Json<Listed>> {
    let reference = token_ref(&reference)?;
    let info = auth
        .run(move |session| Ok(session.assign(&reference, request.user.trim(), now())?))
        .await?;
    Ok(Json(listed(info)))
}

/// `POST /api/v1/tokens/{ref}/purge`: forget the secret now.
pub async fn purge(
    auth: Auth<need::InventoryWrite>,
    Path(reference): Path<String>,
) -> ApiResult<Json<Listed>> {
    let reference = token_ref(&reference)?;
    let info = auth
        .run(move |session| Ok(session.purge(&reference, now())?))
        .await?;
    Ok(Json(listed(info)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverRequest {
    pub code: String,
}

/// `POST /api/v1/tokens/{ref}/deliver`: the user reads a code off the token
/// that arrived; it is checked, the drift recorded, the secret purged.
pub async fn deliver(
    auth: Auth<need::Deliver>,
    Path(reference): Path<String>,
    Json(request): Json<DeliverRequest>,
) -> ApiResult<Json<Delivery>> {
    let reference = token_ref(&reference)?;
    Ok(Json(
        auth.run(move |session| Ok(session.deliver(&reference, request.code.trim(), now())?))
            .await?,
    ))
}

// ----- import and export --------------------------------------------------------

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The file, Base64.
    #[schemars(with = "String")]
    pub content: Zeroizing<String>,
    /// A format name, `spreadsheet` (the helpdesk's username,secret CSV), or
    /// left out to detect it.
    #[serde(default)]
    pub format: Option<String>,
    /// For encrypted files (PSKC, Aegis, 2FAS, andOTP).
    #[schemars(with = "Option<String>")]
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
    /// A PSKC pre-shared key, hex.
    #[schemars(with = "Option<String>")]
    #[serde(default)]
    pub key: Option<Zeroizing<String>>,
    /// Import the good records and leave out the rows with problems (the
    /// preview's `skipped`). Without it, a file with any problem is refused
    /// (422, `kind: import_problems`, every problem by line).
    #[serde(default)]
    pub skip_bad: bool,
}

/// What a file holds, with no secret in it.
#[derive(Serialize)]
struct PreviewRow {
    serial: Option<String>,
    slot: Option<u32>,
    user: Option<String>,
    issuer: Option<String>,
    account: String,
    r#type: &'static str,
    algorithm: String,
    digits: u8,
    period: Option<u64>,
    location: Option<String>,
}

fn preview_row(record: &Record) -> PreviewRow {
    let c = &record.credential;
    PreviewRow {
        serial: record.serial.clone(),
        slot: record.slot,
        user: record.user.clone(),
        issuer: c.issuer.clone(),
        account: c.account.clone(),
        r#type: c.kind.name(),
        algorithm: c.algorithm.to_string(),
        digits: c.digits.get(),
        period: match c.kind {
            Kind::Totp { step } => Some(step.period()),
            Kind::Hotp { .. } => None,
        },
        location: record.location.describe(),
    }
}

/// The file read: format, records and what is wrong.
enum Parsed {
    Records {
        format: Format,
        records: Vec<Record>,
        findings: Vec<oathdesk_formats::lint::Finding>,
        /// Entries the vault cannot take (`{entry, reference, reason}`).
        left_out: Vec<Value>,
    },
    Sheet(spreadsheet::Sheet),
}

fn parse_import(request: &ImportRequest) -> ApiResult<Parsed> {
    let bytes = Zeroizing::new(
        data_encoding::BASE64
            .decode(request.content.trim().as_bytes())
            .map_err(|_| ApiError::bad_request("content: the file must be sent as Base64"))?,
    );
    oathdesk_formats::record::check_size(&bytes)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let name = request.format.as_deref().map(str::trim).unwrap_or("auto");
    if name.eq_ignore_ascii_case("spreadsheet") {
        let sheet = spreadsheet::read(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
        return Ok(Parsed::Sheet(sheet));
    }
    let keys = Keys {
        password: request.password.clone().filter(|p| !p.is_empty()),
        key: match request
            .key
            .as_deref()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
        {
            Some(hex) => Some(Zeroizing::new(
                oathdesk_otp::Secret::from_hex(hex)
                    .map_err(|e| ApiError::bad_request(format!("key: {e}")))?
                    .as_bytes()
                    .to_vec(),
            )),
            None => None,
        },
    };
    let format = if name.is_empty() || name.eq_ignore_ascii_case("auto") {
        format::detect(&bytes).map_err(|e| ApiError::bad_request(e.to_string()))?
    } else {
        name.parse::<Format>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    // Every entry the vault can take is read; one it cannot (a Steam or
    // Yandex entry in an app backup) is named among the findings with its
    // reason, as `oathdesk import` does, instead of sinking the file.
    let read = format::read_all(format, &bytes, &keys)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let records = read.records;
    let left_out: Vec<Value> = read
        .skipped
        .iter()
        .map(|skipped| {
            json!({"entry": skipped.index + 1, "reference": skipped.reference, "reason": skipped.reason})
        })
        .collect();
    let mut findings: Vec<oathdesk_formats::lint::Finding> = read
        .skipped
        .into_iter()
        .map(|skipped| oathdesk_formats::lint::Finding {
            severity: oathdesk_formats::lint::Severity::Warning,
            location: Some(skipped.reference),
            field: None,
            message: format!("left out: {}", skipped.reason),
        })
        .collect();
    findings.extend(
        oathdesk_formats::lint::lint(&bytes, Some(format), &keys, None)
            .map(|report| report.findings)
            .unwrap_or_default(),
    );
    Ok(Parsed::Records {
        format,
        records,
        findings,
        left_out,
    })
}

/// The lint's findings as the console shows them: advice that names a
/// command line the console has a page for names that page instead, with
/// `fix` (a link and its label) for the page to offer.
fn console_findings(findings: &[oathdesk_formats::lint::Finding]) -> Vec<Value> {
    findings
        .iter()
        .map(|finding| {
            let mut shown = json!(finding);
            if finding.message.contains("'oathdesk seed convert") {
                shown["message"] = json!(
                    "the secret is made only of hex characters: if the vendor meant hex, convert \
                     it from Hex to Base32 with the Toolset's converter and put the Base32 in the \
                     file; Base32 read from hex gives wrong codes"
                );
                shown["fix"] = json!({
                    "href": "/toolset#convert",
                    "label": "Open the Toolset's converter",
                });
            }
            shown
        })
        .collect()
}

/// `POST /api/v1/import/preview`: reads the file and shows what would be
/// imported (no secrets) and every problem, by line; imports nothing.
pub async fn import_preview(
    _auth: Auth<need::InventoryWrite>,
    Json(request): Json<ImportRequest>,
) -> ApiResult<Json<Value>> {
    let parsed = tokio::task::spawn_blocking(move || parse_import(&request))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(match parsed {
        Parsed::Records {
            format,
            records,
            findings,
            left_out,
        } => {
            let plan = exchange::plan_records(&records, &findings);
            json!({
                "format": format.name(),
                "records": records.len(),
                "preview": records.iter().take(500).map(preview_row).collect::<Vec<_>>(),
                "findings": console_findings(&findings),
                "problems": plan.problems(),
                "importable": plan.good.len(),
                "skipped": plan.skipped,
                "blocking": plan.blocking,
                "left_out": left_out,
            })
        }
        Parsed::Sheet(sheet) => {
            let plan = exchange::plan_sheet(&sheet);
            json!({
                "format": "spreadsheet",
                "records": sheet.rows.len(),
                "preview": sheet.rows.iter().take(500).map(|row| json!({
                    "serial": row.serial, "user": row.user, "type": "totp", "period": row.period,
                    "manufacturer": row.manufacturer, "model": row.model,
                    "location": format!("line {}", row.line),
                })).collect::<Vec<_>>(),
                "findings": [],
                "problems": plan.problems(),
                "importable": plan.good.len(),
                "skipped": plan.skipped,
                "blocking": plan.blocking,
            })
        }
    }))
}

/// `POST /api/v1/import`: all or nothing. A file with problems is refused
/// (422, every problem by line) unless the request says `skip_bad`; then
/// the answer names the rows left out.
pub async fn import(
    auth: Auth<need::InventoryWrite>,
    Json(request): Json<ImportRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let skip_bad = request.skip_bad;
    let parsed = tokio::task::spawn_blocking(move || parse_import(&request))
        .await
        .map_err(ApiError::internal)??;
    let (imported, format, left_out) = auth
        .run(move |session| match parsed {
            Parsed::Records {
                format,
                records,
                findings,
                left_out,
            } => {
                let imported = session
                    .import_file(records, &findings, format, skip_bad, now())
                    .map_err(|e| nothing_imported(e.into()))?;
                Ok((imported, format.name().to_owned(), left_out))
            }
            Parsed::Sheet(sheet) => {
                let plan = exchange::plan_sheet(&sheet);
                let count = session
                    .import_sheet(sheet, skip_bad, now())
                    .map_err(|e| nothing_imported(e.into()))?;
                let imported = exchange::Imported {
                    imported: count,
                    skipped: plan.skipped,
                };
                Ok((imported, "spreadsheet".to_owned(), Vec::new()))
            }
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "imported": imported.imported,
            "skipped": imported.skipped,
            "format": format,
            "left_out": left_out,
        })),
    ))
}

fn nothing_imported(mut error: ApiError) -> ApiError {
    if !error.message.contains("nothing was imported") {
        error.message = format!("{}; nothing was imported", error.message);
        if let Some(body) = error.body.as_mut() {
            body.insert("error".into(), json!(error.message));
        }
    }
    error
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub format: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    /// Encrypts formats that can be (PSKC, Aegis, 2FAS, andOTP).
    #[schemars(with = "Option<String>")]
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
    /// Allows a file of secrets in plain text.
    #[serde(default)]
    pub plaintext: bool,
    /// Serial of a profile of a multi-profile device (Entra).
    #[serde(default)]
    pub profile_serial: Option<String>,
}

/// `POST /api/v1/export`: the held secrets in a seed-file format, audited.
/// The file comes back Base64 in the body (never in a URL).
pub async fn export(
    auth: Auth<need::Export>,
    Json(request): Json<ExportRequest>,
) -> ApiResult<Json<Value>> {
    let format: Format = request
        .format
        .parse()
        .map_err(|e: oathdesk_formats::FormatError| ApiError::bad_request(e.to_string()))?;
    let password = request.password.clone().filter(|p| !p.is_empty());
    // An encrypted output is encrypted or refused, never silently plain.
    if password.is_some() && (request.plaintext || !format.can_encrypt()) {
        return Err(ApiError::bad_request(if request.plaintext {
            "a password and 'plain text' contradict each other: clear the password or untick \
             'plain text'"
                .to_owned()
        } else {
            format!(
                "{format} files cannot be encrypted: clear the password to write a plain-text \
                 file, or choose PSKC, Aegis, 2FAS or andOTP"
            )
        }));
    }
    if !format.can_encrypt() && !request.plaintext {
        return Err(ApiError::bad_request(format!(
            "{format} files hold secrets in plain text: tick 'plain text' to write one (and protect the file)"
        )));
    }
    if format.can_encrypt() && password.is_none() && !request.plaintext {
        return Err(ApiError::bad_request(format!(
            "{format} output is encrypted: give a password, or tick 'plain text'"
        )));
    }
    let mut batch = [0u8; 4];
    oathdesk_vault::crypto::random(&mut batch).map_err(ApiError::internal)?;
    let options = WriteOptions {
        profile_serial: request
            .profile_serial
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| oathdesk_formats::entra::DEFAULT_PROFILE_SERIAL.to_owned()),
        password: if request.plaintext { None } else { password },
        key: None,
        batch_id: i32::from_le_bytes(batch) & i32::MAX,
    };
    let filter = CredentialFilter {
        user_upn: request.user.clone().filter(|u| !u.trim().is_empty()),
        state: request
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(state)
            .transpose()?,
        device_serial: request.serial.clone().filter(|s| !s.trim().is_empty()),
        ..CredentialFilter::default()
    };
    let written = auth
        .run(move |session| Ok(session.export(&filter, format, &options, now())?))
        .await?;
    let extension = match format {
        Format::EntraCsv | Format::PrivacyIdea | Format::PrivacyIdeaV2 | Format::LinOtp => "csv",
        Format::Pskc => "xml",
        Format::Otpauth | Format::Google => "txt",
        _ => "json",
    };
    let content = Zeroizing::new(data_encoding::BASE64.encode(&written.bytes));
    let skipped: Vec<Value> = written
        .skipped
        .iter()
        .map(|s| json!({"reference": s.reference, "reason": s.reason}))
        .collect();
    Ok(Json(json!({
        "filename": format!("oathdesk-export-{}.{extension}", format.name()),
        "content": content.as_str(),
        "skipped": skipped,
    })))
}

/// The formats the console can import and export.
pub fn format_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Format::ALL.iter().map(|f| f.name()).collect();
    names.push("spreadsheet");
    names
}
