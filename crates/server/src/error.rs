//! Errors as HTTP answers: a status and a JSON body `{"error": "…"}` whose
//! message says what is wrong and how to fix it. No message carries a
//! secret or a code: the vault's and the OTP engine's errors never do, and
//! the handlers add only names and numbers.
//!
//! One answer is not an error: a helpdesk code the policy holds back for a
//! second operator's approval is `202 Accepted` with
//! `{"kind": "approval_required", "id", "reason", "expires_at", "until",
//! "message"}` — the request waits in the vault, and its id is what the
//! requester collects the code with once another operator approved it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
    /// The vault's kind of refusal (`forbidden`, `rate_limited`, `refused`,
    /// `altered`, `code_released`, `code_mismatch`, `sealed`, `no_key_slot`,
    /// `password_change_required`, `import_problems`, `missing_reference`) or of a held-back
    /// answer (`approval_required`), for clients that branch on it — the
    /// command line's exit codes, the console's pages — rather than on the
    /// words.
    pub kind: Option<&'static str>,
    /// The whole body, for answers that are not refusals (202
    /// `approval_required`); `None` gives `{"error", "status", "kind"}`.
    pub body: Option<Map<String, Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            kind: None,
            body: None,
        }
    }

    pub fn of_kind(mut self, kind: &'static str) -> ApiError {
        self.kind = Some(kind);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn too_many(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    /// A helpdesk code the policy holds back until a second operator
    /// approves request `id` (202 Accepted: nothing failed, the request waits).
    pub fn approval_required(
        id: String,
        reason: String,
        expires_at: u64,
        until: String,
        message: String,
    ) -> ApiError {
        let mut body = Map::new();
        body.insert("kind".into(), json!("approval_required"));
        body.insert("id".into(), json!(id));
        body.insert("reason".into(), json!(reason));
        body.insert("expires_at".into(), json!(expires_at));
        body.insert("until".into(), json!(until));
        body.insert("message".into(), json!(message));
        body.insert("status".into(), json!(StatusCode::ACCEPTED.as_u16()));
        ApiError {
            body: Some(body),
            ..ApiError::new(StatusCode::ACCEPTED, message).of_kind("approval_required")
        }
    }

    /// A failure of the server itself. The details go to the log; the
    /// answer says only where to look.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to answer; the server log says why",
        )
    }
}

impl From<oathdesk_vault::Error> for ApiError {
    fn from(error: oathdesk_vault::Error) -> ApiError {
        use oathdesk_vault::Error as E;
        match error {
            E::Invalid(message) => ApiError::bad_request(message),
            E::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            E::Exists(what) => ApiError::conflict(format!("{what} already exists")),
            // Typed refusals: the answer follows the kind, never the words.
            E::RateLimited {
                reason,
                retry_at,
                raise,
            } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // The console's advice, not the command line's: where an
                // admin raises the limit here.
                let message = match raise {
                    Some(setting) => format!(
                        "{reason}; wait, or ask an admin to raise '{setting}' under Settings on \
                         the console's Operators page"
                    ),
                    None => reason,
                };
                ApiError::too_many(message, retry_at.saturating_sub(now).max(1))
                    .of_kind("rate_limited")
            }
            e @ E::Forbidden { .. } => ApiError::forbidden(e.to_string()).of_kind("forbidden"),
            e @ E::Altered { .. } => ApiError::conflict(e.to_string()).of_kind("altered"),
            e @ E::CodeReleased { .. } => {
                ApiError::conflict(e.to_string()).of_kind("code_released")
            }
            // 409 as before (it was a plain refusal), now with its own kind.
            e @ E::CodeMismatch { .. } => {
                ApiError::conflict(e.to_string()).of_kind("code_mismatch")
            }
            e @ E::PasswordChangeRequired => {
                ApiError::forbidden(e.to_string()).of_kind("password_change_required")
            }
            e @ E::DeliveryLink(_) => {
                ApiError::new(StatusCode::GONE, e.to_string()).of_kind("delivery_link")
            }
            e @ E::Sealed => ApiError::unavailable(e.to_string()).of_kind("sealed"),
            e @ E::NoKeySlot { .. } => ApiError::forbidden(e.to_string()).of_kind("no_key_slot"),
            ref e @ E::ApprovalRequired {
                ref id,
                ref reason,
                expires_at,
                ref until,
            } => ApiError::approval_required(
                id.clone(),
                reason.clone(),
                expires_at,
                until.clone(),
                e.to_string(),
            ),
            ref e @ E::ImportProblems {
                ref problems,
                importable,
            } => {
                let mut body = Map::new();
                body.insert("error".into(), json!(e.to_string()));
                body.insert(
                    "status".into(),
                    json!(StatusCode::UNPROCESSABLE_ENTITY.as_u16()),
                );
                body.insert("kind".into(), json!("import_problems"));
                body.insert("problems".into(), json!(problems));
                body.insert("importable".into(), json!(importable));
                ApiError {
                    body: Some(body),
                    ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                        .of_kind("import_problems")
                }
            }
            e @ E::InvalidSerial { .. } => {
                ApiError::bad_request(e.to_string()).of_kind("invalid_serial")
            }
            E::Refused(reason) => ApiError::conflict(reason).of_kind("refused"),
            e @ E::MissingReference { .. } => {
                ApiError::conflict(e.to_string()).of_kind("missing_reference")
            }
            E::Unauthenticated(reason) => ApiError::unauthorized(reason),
            E::SignInRefused(reason) => ApiError::forbidden(reason).of_kind("sign_in_refused"),
            e @ (E::UnknownOperator(_)
            | E::WrongPassphrase(_)
            | E::NeedsIdentity(_)
            | E::WrongIdentity(_)) => ApiError::unauthorized(e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.body {
            Some(body) => Json(Value::Object(body)),
            None => {
                let mut body = json!({"error": self.message, "status": self.status.as_u16()});
                if let Some(kind) = self.kind {
                    body["kind"] = json!(kind);
                }
                Json(body)
            }
        };
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// Results of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_code_that_did_not_verify_is_a_409_code_mismatch() {
        let error = ApiError::from(oathdesk_vault::Error::CodeMismatch {
            credential: "2100001".into(),
            steps: 3,
        });
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.kind, Some("code_mismatch"));
        assert!(error.message.starts_with("the code does not match 2100001"));
    }

    #[test]
    fn a_write_whose_parent_went_missing_is_a_409_missing_reference() {
        let error = ApiError::from(oathdesk_vault::Error::MissingReference {
            row: "credential 12".into(),
            parent: "device 7".into(),
        });
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.kind, Some("missing_reference"));
        assert!(
            error
                .message
                .starts_with("credential 12 refers to device 7"),
            "{}",
            error.message
        );
    }
}
