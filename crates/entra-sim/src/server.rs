//! The HTTP glue: axum hands every request to [`State::dispatch`] under the
//! state's lock; injected faults, the request log and the answer's headers
//! are handled here, so no handler deals with HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::{FaultKind, Logged, State};

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
}

/// What a handler answers.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
    pub(crate) retry_after: Option<u64>,
    /// A redirect's target (`302 Found`).
    pub(crate) location: Option<String>,
}

/// A handler's outcome: the answer, or an error answer (so handlers can use
/// `?` on permission checks and lookups).
pub(crate) type Handled = Result<Reply, Reply>;

impl Reply {
    pub(crate) fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            retry_after: None,
            location: None,
        }
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            retry_after: None,
            location: None,
        }
    }

    /// `302 Found` to `url` (the browser's part of OpenID Connect).
    pub(crate) fn redirect(url: &str) -> Reply {
        Reply {
            location: Some(url.to_owned()),
            ..Reply::empty(302)
        }
    }

    /// Graph's error shape: `{"error": {"code", "message", "innerError"}}`.
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": {"code": code, "message": message,
                "innerError": {"date": "2026-01-01T00:00:00", "request-id": "00000000-0000-0000-0000-000000000000"}}}),
        )
    }

    /// The sign-in service's error shape (RFC 6749 §5.2 with Entra's extras).
    pub(crate) fn oauth(status: u16, error: &str, description: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": error, "error_description": description, "error_codes": []}),
        )
    }

    /// `400 BadRequest` for a body that is not the JSON expected.
    pub(crate) fn bad_json(error: impl std::fmt::Display) -> Reply {
        Reply::error(
            400,
            "BadRequest",
            &format!("Unable to read JSON request payload: {error}"),
        )
    }
}

pub(crate) async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.state.lock().expect("simulator state");
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let fault = state.take_fault(&method, &path);
    let reply = match fault {
        Some(FaultKind::Throttle { retry_after }) => Reply {
            retry_after: Some(retry_after),
            ..Reply::error(
                429,
                "TooManyRequests",
                "Too many requests; retry after the time in Retry-After.",
            )
        },
        Some(FaultKind::Fail { status }) => Reply::error(
            status,
            "serviceUnavailable",
            "The service is temporarily unavailable.",
        ),
        _ => {
            let reply = state.dispatch(&method, &path, &query, &headers, &body);
            match fault {
                Some(FaultKind::FailAfter { status }) if reply.status < 300 => Reply::error(
                    status,
                    "generalException",
                    "An error occurred after the request was processed.",
                ),
                _ => reply,
            }
        }
    };
    state.log.push(Logged {
        method: method.to_string(),
        path: if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        },
        status: reply.status,
    });
    drop(state);
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        Some(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        None => status.into_response(),
    };
    if let Some(location) = reply.location.as_deref().and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(seconds) = reply.retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            seconds.to_string().parse().expect("a header value"),
        );
    }
    response
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random generator");
    data_encoding::HEXLOWER.encode(&buffer)
}

pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    form_pairs(query.as_bytes())
}

pub(crate) fn form_pairs(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// A Unix time as Graph writes a `DateTimeOffset`: `2026-01-31T08:05:09Z`.
pub(crate) fn iso8601(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent() {
        let form = form_pairs(b"a=b+c&scope=https%3A%2F%2Fg%2F.default&e=%zz");
        assert_eq!(form["a"], "b c");
        assert_eq!(form["scope"], "https://g/.default");
        assert_eq!(form["e"], "%zz");
    }

    #[test]
    fn times_are_written_as_graph_writes_them() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_445_412_480), "2015-10-21T07:28:00Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
