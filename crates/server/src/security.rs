//! Headers every answer carries, and the request log.
//!
//! The content security policy allows scripts, styles and connections only
//! from the console itself and no inline script at all; `frame-ancestors
//! 'none'` (and `X-Frame-Options` for old browsers) keeps the console out of
//! other sites' frames. Answers are not cached: API answers and pages carry
//! codes and CSRF tokens. The log names method, path (never the query
//! string), status and time — no body, no header, so no secret or code.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// The content security policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The path as the log may name it: a self-service link's secret is its
/// only credential, so `/d/<secret>` is logged as `/d/{secret}`.
pub fn loggable_path(path: &str) -> String {
    if path.starts_with(crate::selfservice::PREFIX) {
        format!("{}{{secret}}", crate::selfservice::PREFIX)
    } else {
        path.to_owned()
    }
}

pub async fn headers(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = loggable_path(request.uri().path());
    let started = Instant::now();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    );
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if state.settings.secure_cookies {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    if path.starts_with("/assets/") {
        set(header::CACHE_CONTROL, "no-cache");
    } else {
        set(header::CACHE_CONTROL, "no-store");
    }
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}
