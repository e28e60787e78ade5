//! `GET /metrics`: the console's operational counters in the Prometheus
//! (OpenMetrics) text format, from the `prometheus-client` crate.
//!
//! What is counted, and what never is:
//!
//! - **Requests** by method, route *template* (`/api/v1/tokens/{ref}`, as
//!   the router matched it) and status, and their latency. A concrete path
//!   would make a series per credential and put serials and user names in
//!   the labels; a request no route matched is `route="unmatched"`.
//! - **Helpdesk codes** by outcome: `granted`, or the vault's typed refusal
//!   (`rate_limited`, `forbidden`, `refused`, …) — the kind of the error,
//!   never its words, which name users.
//! - **Sign-ins** by outcome, and the failed ones that locked an account or
//!   address.
//! - **The audit head's sequence number** and **database connections**,
//!   read when scraped.
//!
//! Every label value is one of a fixed set of words or a route template,
//! so nothing in the output names a user, a serial, a code or a secret.
//!
//! Who may read it: a request from an address given with
//! `oathdesk serve --metrics-from` (the client address as the per-address
//! throttle sees it, behind `--trusted-proxy`), or one carrying an API
//! token (or session) whose role and scopes include
//! [`crate::Permission::Metrics`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oathdesk_vault::store::{Store, StoreTx};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::auth::{Auth, Permission, need::Need};
use crate::error::{ApiError, ApiResult};
use crate::proxy::client_address;
use crate::state::{AppState, blocking};

/// The `Content-Type` of the OpenMetrics text format (Prometheus reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/metrics` needs of a token or session when the address is not
/// one of `--metrics-from`.
pub struct MetricsScope;
impl Need for MetricsScope {
    const PERMISSION: Permission = Permission::Metrics;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Latency buckets from 1 ms to about 16 s, doubling: a toolset request
/// takes a millisecond, a sign-in (Argon2id) most of a second.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The console's metrics, one set per [`AppState`]: counted as requests
/// are served, encoded on a scrape.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    in_flight: Gauge,
    helpdesk_codes: Family<OutcomeLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    lockouts: Counter,
    audit_head: Gauge,
    checkouts: Family<SourceLabels, Counter>,
    idle_connections: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("oathdesk");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer, by method and route template",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being answered now",
            in_flight.clone(),
        );
        let helpdesk_codes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "helpdesk_codes",
            "Helpdesk code requests the vault decided (codes asked for and collected after \
             approval), by outcome: granted, approval_required, or the kind of refusal",
            helpdesk_codes.clone(),
        );
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "logins",
            "Sign-ins by outcome: succeeded, failed (wrong name or password), locked_out \
             (refused unchecked: the account or address is locked)",
            logins.clone(),
        );
        let lockouts = Counter::default();
        registry.register(
            "login_lockouts",
            "Failed sign-ins after which the account or the address was locked",
            lockouts.clone(),
        );
        let audit_head = Gauge::default();
        registry.register(
            "audit_head_sequence",
            "Sequence number of the newest audit entry (read when scraped; 0: none)",
            audit_head.clone(),
        );
        let checkouts = Family::<SourceLabels, Counter>::default();
        registry.register(
            "db_connection_checkouts",
            "Database connections taken for a request: source=pool (an idle one) or \
             source=new (none idle: opened; a rising rate means the pool is exhausted)",
            checkouts.clone(),
        );
        let idle_connections = Gauge::default();
        registry.register(
            "db_connections_idle",
            "Open database connections waiting in the pool (read when scraped)",
            idle_connections.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            helpdesk_codes,
            logins,
            lockouts,
            audit_head,
            checkouts,
            idle_connections,
        }
    }

    /// Counts a helpdesk code request the vault decided.
    pub fn helpdesk_code(&self, outcome: &'static str) {
        self.helpdesk_codes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a sign-in: `succeeded`, `failed` or `locked_out`.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts a failed sign-in that locked the account or the address.
    pub fn lockout(&self) {
        self.lockouts.inc();
    }

    /// Counts a database connection taken from the pool or opened.
    pub fn checkout(&self, pooled: bool) {
        let source = if pooled { "pool" } else { "new" };
        self.checkouts.get_or_create(&SourceLabels { source }).inc();
    }

    /// The text of a scrape, with the gauges read at this moment.
    fn encode(&self, audit_head: i64, idle_connections: usize) -> Result<String, std::fmt::Error> {
        self.audit_head.set(audit_head);
        self.idle_connections
            .set(i64::try_from(idle_connections).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The outcome label of a helpdesk code request, from the vault's typed
/// answer (never its message).
pub fn helpdesk_outcome<T>(result: &Result<T, oathdesk_vault::Error>) -> &'static str {
    use oathdesk_vault::Error as E;
    match result {
        Ok(_) => "granted",
        Err(E::ApprovalRequired { .. }) => "approval_required",
        Err(E::RateLimited { .. }) => "rate_limited",
        Err(E::Forbidden { .. }) => "forbidden",
        Err(E::Refused(_)) => "refused",
        Err(E::Invalid(_)) => "invalid",
        Err(E::NotFound(_)) => "not_found",
        Err(E::CodeReleased { .. }) => "code_released",
        Err(E::Sealed) => "sealed",
        Err(_) => "error",
    }
}

/// A method as a label: the ones the console serves, else `other` (a
/// client may send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// One request in `oathdesk_http_requests_in_flight`, until dropped — also
/// when the client goes away and the request's future is dropped unfinished.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> InFlight<'a> {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware: counts every request by its route template and status,
/// and times it.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let metrics = &state.metrics;
    let in_flight = InFlight::enter(&metrics.in_flight);
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    let labels = RouteLabels { method, route };
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: labels.route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`: from an address of `--metrics-from`, or with a token
/// (or session) that has the `metrics` permission.
pub async fn serve(
    State(state): State<Arc<AppState>>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: Request,
) -> ApiResult<Response> {
    let (mut parts, _) = request.into_parts();
    let from_allowed_address = connection.is_some_and(|c| {
        let client = client_address(c.0.0.ip(), &parts.headers, &state.settings.trusted_proxies);
        state
            .settings
            .metrics_from
            .iter()
            .any(|allowed| allowed.contains(client))
    });
    if !from_allowed_address {
        // Opens and checks the token as every protected route does; its
        // session goes back to the pool when dropped here.
        Auth::<MetricsScope>::from_request_parts(&mut parts, &state).await?;
    }
    let reader = state.clone();
    let head = blocking(move || {
        let mut store = reader.vault()?.into_store();
        let head = store
            .read()
            .and_then(|tx| tx.audit_last())
            .map_err(ApiError::internal)?;
        reader.recycle(store);
        Ok(head.map_or(0, |row| row.seq))
    })
    .await?;
    let text = state
        .metrics
        .encode(head, state.idle_connections())
        .map_err(ApiError::internal)?;
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_vault_s_kinds() {
        let granted: Result<(), oathdesk_vault::Error> = Ok(());
        assert_eq!(helpdesk_outcome(&granted), "granted");
        let limited: Result<(), _> = Err(oathdesk_vault::Error::RateLimited {
            reason: "bob@contoso.com had 3 codes this hour".into(),
            retry_at: 0,
            raise: None,
        });
        assert_eq!(helpdesk_outcome(&limited), "rate_limited");
        let refused: Result<(), _> = Err(oathdesk_vault::Error::Refused("no".into()));
        assert_eq!(helpdesk_outcome(&refused), "refused");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn a_scrape_names_what_was_counted() {
        let metrics = Metrics::new();
        metrics.helpdesk_code("granted");
        metrics.login("failed");
        metrics.checkout(false);
        let text = metrics.encode(42, 3).unwrap();
        assert!(text.contains("oathdesk_helpdesk_codes_total{outcome=\"granted\"} 1"));
        assert!(text.contains("oathdesk_logins_total{outcome=\"failed\"} 1"));
        assert!(text.contains("oathdesk_audit_head_sequence 42"));
        assert!(text.contains("oathdesk_db_connections_idle 3"));
        assert!(text.contains("oathdesk_db_connection_checkouts_total{source=\"new\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
