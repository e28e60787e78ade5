//! The toolset API: what the vendor's "TOTP Toolset" page does, computed by
//! the same library functions as `oathdesk code`, `verify`, `seed` and
//! `qr show` — and with the secret in the request body, never in a URL.

use axum::Json;
use oathdesk_formats::Record;
use oathdesk_otp::{
    Algorithm, Credential, Digits, Encoding, Interval, Kind, Secret, SecretError, TimeStep,
    TimedCode, Verifier, Window, migration, seed, uri,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::state::now;

/// A secret and its parameters, as the toolset form sends them.
#[derive(Deserialize, Default, JsonSchema)]
pub struct SecretInput {
    /// Base32 (default), hex or Base64 text; or an `otpauth://` URI, or a
    /// one-account Google Authenticator export link.
    #[schemars(with = "String")]
    pub secret: Zeroizing<String>,
    /// `base32`, `hex`, `base64`; left out: Base32, with hex-looking text refused.
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub digits: Option<u64>,
    #[serde(default)]
    pub period: Option<u64>,
    #[serde(default)]
    pub t0: Option<u64>,
    /// HOTP with this counter.
    #[serde(default)]
    pub counter: Option<u64>,
}

fn encoding(name: Option<&str>) -> ApiResult<Option<Encoding>> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None | Some("auto") => Ok(None),
        Some("base32") => Ok(Some(Encoding::Base32)),
        Some("hex") => Ok(Some(Encoding::Hex)),
        Some("base64") => Ok(Some(Encoding::Base64)),
        Some(other) => Err(ApiError::bad_request(format!(
            "encoding: '{other}' is not one of base32, hex, base64"
        ))),
    }
}

fn secret_error(error: SecretError) -> ApiError {
    let hint = match error {
        SecretError::LooksLikeHex => ": choose the hex encoding, or Base32 if it really is Base32",
        _ => "",
    };
    ApiError::bad_request(format!("secret: {error}{hint}"))
}

impl SecretInput {
    /// The credential, with the overrides applied (as `oathdesk code` does).
    pub fn credential(&self) -> ApiResult<Credential> {
        let text = self.secret.trim();
        if text.is_empty() {
            return Err(ApiError::bad_request("secret: give a secret"));
        }
        let head = text.get(..21).unwrap_or(text).to_ascii_lowercase();
        let mut credential = if head.starts_with("otpauth://") {
            uri::parse(text).map_err(|e| ApiError::bad_request(format!("secret: {e}")))?
        } else if head.starts_with("otpauth-migration://") {
            let batch = migration::parse(text)
                .map_err(|e| ApiError::bad_request(format!("secret: {e}")))?;
            let count = batch.credentials.len();
            <[Credential; 1]>::try_from(batch.credentials)
                .map(|[only]| only)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "secret: this export holds {count} accounts; give one otpauth:// URI"
                    ))
                })?
        } else {
            let secret = match encoding(self.encoding.as_deref())? {
                Some(encoding) => Secret::decode(text, encoding),
                None => Secret::from_unspecified(text),
            }
            .map_err(secret_error)?;
            Credential::totp(secret)
        };
        if let Some(name) = &self.algorithm {
            credential.algorithm = name
                .parse::<Algorithm>()
                .map_err(|_| ApiError::bad_request("algorithm: use sha1, sha256 or sha512"))?;
        }
        if let Some(digits) = self.digits {
            credential.digits =
                Digits::new(digits).map_err(|e| ApiError::bad_request(format!("digits: {e}")))?;
        }
        if let Some(counter) = self.counter {
            if self.period.is_some() || self.t0.is_some() {
                return Err(ApiError::bad_request(
                    "counter selects HOTP, which has no period or t0: leave one out",
                ));
            }
            credential.kind = Kind::Hotp { counter };
        } else if self.period.is_some() || self.t0.is_some() {
            let (period, t0) = match credential.kind {
                Kind::Totp { step } => (step.period(), step.t0()),
                Kind::Hotp { .. } => (30, 0),
            };
            let step = TimeStep::new(self.period.unwrap_or(period), self.t0.unwrap_or(t0))
                .map_err(|e| ApiError::bad_request(format!("period: {e}")))?;
            credential.kind = Kind::Totp { step };
        }
        Ok(credential)
    }
}

#[derive(Deserialize, JsonSchema)]
pub struct CodesRequest {
    #[serde(flatten)]
    pub input: SecretInput,
    /// Unix seconds; default now.
    #[serde(default)]
    pub at: Option<u64>,
    #[serde(default)]
    pub past: u64,
    #[serde(default)]
    pub future: u64,
    /// `entra`, `exact`, `steps=K`, `seconds=S`.
    #[serde(default)]
    pub verifier: Option<String>,
    /// Seconds: the earliest code accepted at least this long.
    #[serde(default)]
    pub valid_for: Option<u64>,
}

/// One code, as `oathdesk code --json` writes it.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct CodeJson {
    pub offset: i64,
    pub code: String,
    pub counter: u64,
    pub valid_from: Option<u64>,
    pub valid_until: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_until: Option<u64>,
}

/// The answer, shaped like `oathdesk code --json`.
#[derive(Serialize, Debug)]
pub struct CodesJson {
    pub r#type: &'static str,
    pub algorithm: String,
    pub digits: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t0: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
    pub codes: Vec<CodeJson>,
}

/// The most codes either side of now one request may ask for.
const MAX_AROUND: u64 = 50;

fn timed(timed: &TimedCode, accepted: Option<Interval>) -> CodeJson {
    CodeJson {
        offset: timed.offset,
        code: timed.code.to_string(),
        counter: timed.counter,
        valid_from: Some(timed.current.from),
        valid_until: Some(timed.current.until),
        accepted_from: accepted.map(|i| i.from),
        accepted_until: accepted.map(|i| i.until),
    }
}

/// Computes the codes a request asks for (pure: no clock unless `at` is
/// left out).
pub fn compute_codes(request: &CodesRequest) -> ApiResult<CodesJson> {
    let credential = request.input.credential()?;
    if request.past > MAX_AROUND || request.future > MAX_AROUND {
        return Err(ApiError::bad_request(format!(
            "past and future: at most {MAX_AROUND} codes each"
        )));
    }
    let verifier: Option<Verifier> = request
        .verifier
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.parse())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("verifier: {e}")))?;
    let (codes, period, t0, time) = match credential.kind {
        Kind::Hotp { counter } => {
            if request.at.is_some() || request.valid_for.is_some() || verifier.is_some() {
                return Err(ApiError::bad_request(
                    "at, valid_for and verifier apply to TOTP; this is an HOTP credential",
                ));
            }
            let hotp = credential.hotp();
            let first = counter.saturating_sub(request.past);
            let last = counter.saturating_add(request.future);
            let codes = (first..=last)
                .map(|c| CodeJson {
                    offset: c.wrapping_sub(counter) as i64,
                    code: hotp.generate(c).to_string(),
                    counter: c,
                    valid_from: None,
                    valid_until: None,
                    accepted_from: None,
                    accepted_until: None,
                })
                .collect();
            (codes, None, None, None)
        }
        Kind::Totp { step } => {
            let totp = credential
                .totp_generator()
                .expect("a TOTP credential has a generator");
            let time = request.at.unwrap_or_else(now);
            let window: Option<Window> = verifier
                .map(|v| v.window(step.period()))
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("verifier: {e}")))?;
            let codes = if let Some(seconds) = request.valid_for {
                let lasting = totp
                    .code_valid_for(time, seconds, window.unwrap_or(Window::EXACT))
                    .map_err(|e| ApiError::bad_request(format!("valid_for: {e}")))?;
                vec![timed(&lasting.code, Some(lasting.accepted))]
            } else {
                totp.codes_around(time, request.past, request.future)
                    .map_err(|e| ApiError::bad_request(format!("at: {e}")))?
                    .iter()
                    .map(|t| timed(t, window.map(|w| totp.accepted_interval(t.counter, w))))
                    .collect()
            };
            (codes, Some(step.period()), Some(step.t0()), Some(time))
        }
    };
    Ok(CodesJson {
        r#type: credential.kind.name(),
        algorithm: credential.algorithm.to_string(),
        digits: credential.digits.get(),
        period,
        t0,
        time,
        verifier: verifier.map(|v| v.to_string()),
        codes,
    })
}

/// `POST /api/v1/toolset/codes`
pub async fn codes(
    _auth: Auth<need::Toolset>,
    Json(request): Json<CodesRequest>,
) -> ApiResult<Json<CodesJson>> {
    Ok(Json(compute_codes(&request)?))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertRequest {
    #[schemars(with = "String")]
    pub value: Zeroizing<String>,
    /// `hex`, `base32`, `base64`.
    pub from: String,
    pub to: String,
}

/// `POST /api/v1/toolset/convert`: hex ↔ Base32 ↔ Base64.
pub async fn convert(
    _auth: Auth<need::Toolset>,
    Json(request): Json<ConvertRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let from = encoding(Some(&request.from))?
        .ok_or_else(|| ApiError::bad_request("from: use hex, base32 or base64"))?;
    let to = encoding(Some(&request.to))?
        .ok_or_else(|| ApiError::bad_request("to: use hex, base32 or base64"))?;
    let secret = Secret::decode(request.value.trim(), from).map_err(secret_error)?;
    let value = secret.encode(to);
    Ok(Json(json!({
        "value": value.as_str(),
        "bytes": secret.len(),
        "bits": secret.len() * 8,
        "warning": seed::size_warning(secret.len()),
    })))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedRequest {
    /// Bytes (default: the algorithm's output size).
    #[serde(default)]
    pub bytes: Option<usize>,
    #[serde(default)]
    pub algorithm: Option<String>,
}

/// `POST /api/v1/toolset/seed`: a new secret from the OS CSPRNG (the
/// vendor page used `Math.random()`).
pub async fn new_seed(
    _auth: Auth<need::Toolset>,
    Json(request): Json<SeedRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let algorithm: Algorithm = request
        .algorithm
        .as_deref()
        .unwrap_or("sha1")
        .parse()
        .map_err(|_| ApiError::bad_request("algorithm: use sha1, sha256 or sha512"))?;
    let bytes = request
        .bytes
        .unwrap_or_else(|| seed::default_len(algorithm));
    let secret = seed::generate(bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({
        "base32": secret.to_base32().as_str(),
        "hex": secret.encode(Encoding::Hex).as_str(),
        "bytes": bytes,
        "algorithm": algorithm.to_string(),
        "warning": seed::size_warning(bytes),
    })))
}

#[derive(Deserialize, JsonSchema)]
pub struct QrRequest {
    #[serde(flatten)]
    pub input: SecretInput,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
}

/// `POST /api/v1/toolset/qr`: the otpauth URI and its QR code as SVG.
pub async fn qr(
    _auth: Auth<need::Toolset>,
    Json(request): Json<QrRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let mut credential = request.input.credential()?;
    if let Some(issuer) = request
        .issuer
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        credential.issuer = Some(issuer.to_owned());
    }
    if let Some(account) = request
        .account
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        credential.account = account.to_owned();
    }
    let text =
        Zeroizing::new(uri::format(&credential).map_err(|e| ApiError::bad_request(e.to_string()))?);
    let svg = oathdesk_formats::qr::svg(&text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(json!({"uri": text.as_str(), "svg": svg})))
}

#[derive(Deserialize, JsonSchema)]
pub struct VerifyRequest {
    #[serde(flatten)]
    pub input: SecretInput,
    pub code: String,
    #[serde(default)]
    pub at: Option<u64>,
    /// Steps searched either side (default 10: a drift check looks wide).
    #[serde(default)]
    pub window: Option<u64>,
}

/// `POST /api/v1/toolset/verify`: the drift check — which step offset
/// matches a code a user reads out.
pub async fn verify(
    _auth: Auth<need::Toolset>,
    Json(request): Json<VerifyRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let credential = request.input.credential()?;
    let steps = request.window.unwrap_or(10);
    if steps > 1000 {
        return Err(ApiError::bad_request("window: at most 1000 steps"));
    }
    let window = Window::symmetric(steps);
    let code = request.code.trim();
    let (found, period) = match credential.kind {
        Kind::Totp { step } => {
            let totp = credential.totp_generator().expect("TOTP");
            let at = request.at.unwrap_or_else(now);
            let found = totp
                .verify_at(code, at, window)
                .map_err(|e| ApiError::bad_request(format!("code: {e}")))?;
            (found, Some(step.period()))
        }
        Kind::Hotp { counter } => {
            let found = credential
                .hotp()
                .verify(code, counter, window)
                .map_err(|e| ApiError::bad_request(format!("code: {e}")))?;
            (found, None)
        }
    };
    Ok(Json(json!({
        "valid": found.is_some(),
        "offset": found.map(|m| m.offset),
        "counter": found.map(|m| m.counter),
        "drift_seconds": found.and_then(|m| period.map(|p| m.offset * p as i64)),
        "window": steps,
    })))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraRow {
    pub upn: String,
    pub serial: String,
    #[schemars(with = "String")]
    pub secret: Zeroizing<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub period: Option<u64>,
    #[serde(default)]
    pub manufacturer: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraRequest {
    pub rows: Vec<EntraRow>,
}

/// `POST /api/v1/toolset/entra-csv`: builds the Entra CSV upload with the
/// formats crate's writer, and lints the result for Entra.
pub async fn entra_csv(
    _auth: Auth<need::Toolset>,
    Json(request): Json<EntraRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    if request.rows.is_empty() || request.rows.len() > 10_000 {
        return Err(ApiError::bad_request("rows: give 1 to 10,000 rows"));
    }
    let mut records = Vec::with_capacity(request.rows.len());
    for (index, row) in request.rows.iter().enumerate() {
        let at = |field: &str, message: String| {
            ApiError::bad_request(format!("row {}, {field}: {message}", index + 1))
        };
        let input = SecretInput {
            secret: row.secret.clone(),
            encoding: row.encoding.clone(),
            period: row.period,
            ..SecretInput::default()
        };
        let credential = input.credential().map_err(|e| at("secret", e.message))?;
        if row.upn.trim().is_empty() {
            return Err(at("upn", "give the user's UPN".into()));
        }
        if row.serial.trim().is_empty() {
            return Err(at("serial", "give the token's serial number".into()));
        }
        let mut record = Record::new(credential);
        record.user = Some(row.upn.trim().to_owned());
        record.serial = Some(row.serial.trim().to_owned());
        record.manufacturer = row.manufacturer.clone().filter(|m| !m.trim().is_empty());
        record.model = row.model.clone().filter(|m| !m.trim().is_empty());
        records.push(record);
    }
    let written = oathdesk_formats::entra::write_csv(
        &records,
        oathdesk_formats::entra::DEFAULT_PROFILE_SERIAL,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let report = oathdesk_formats::lint::lint(
        &written.bytes,
        Some(oathdesk_formats::format::Format::EntraCsv),
        &oathdesk_formats::Keys::default(),
        Some(oathdesk_formats::lint::Target::Entra),
    )
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let skipped: Vec<serde_json::Value> = written
        .skipped
        .iter()
        .map(|s| json!({"row": s.index + 1, "reference": s.reference, "reason": s.reason}))
        .collect();
    let csv = Zeroizing::new(String::from_utf8(written.bytes).map_err(ApiError::internal)?);
    Ok(Json(json!({
        "csv": csv.as_str(),
        "skipped": skipped,
        "findings": report.findings,
    })))
}
