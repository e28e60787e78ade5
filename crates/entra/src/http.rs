//! One HTTP exchange with retries: the only place that touches the network.
//!
//! Graph throttles with `429 Too Many Requests` and a `Retry-After` header,
//! and answers `503`/`504` when a service is briefly unavailable. Such
//! answers (and dropped connections) are retried: after the server's
//! `Retry-After` when it sends one, else after an exponential backoff with
//! jitter. The policy is a pure function ([`RetryPolicy::delay`]) so it is
//! tested without a network.
//!
//! Bearer tokens and form bodies (client secrets) go into requests only;
//! nothing here logs a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use crate::error::{Error, GraphError, Operation, Result};

/// When and how often to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles with each retry.
    pub base: Duration,
    /// The longest backoff without a `Retry-After`.
    pub cap: Duration,
    /// The longest `Retry-After` obeyed; a server that asks for more ends
    /// the retries (the caller can re-run later: every operation resumes).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Statuses worth another try: throttling and passing server trouble.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Reads `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// How long to wait before retry number `retry` (1 for the first
    /// retry), or `None` to give up. `retry_after` is the server's wish;
    /// `jitter` in `0.0..1.0` spreads clients that were throttled together.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if retry >= self.attempts {
            return None;
        }
        if let Some(wish) = retry_after {
            return (wish <= self.max_retry_after).then_some(wish);
        }
        let exponent = retry.saturating_sub(1).min(20);
        let backoff = self.base.saturating_mul(1 << exponent).min(self.cap);
        // Half fixed, half random: never zero, never more than the backoff.
        Some(backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Json(&'a serde_json::Value),
    /// `application/x-www-form-urlencoded`, built by the caller (it may
    /// hold a client secret, so it is wiped after use).
    Form(&'a Zeroizing<String>),
}

/// HTTP methods used with Graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

/// An answer: status, `Retry-After`, body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self, operation: Operation) -> Result<T> {
        serde_json::from_str(&self.body).map_err(|e| Error::Protocol {
            operation,
            reason: format!("not the JSON expected: {e}"),
        })
    }

    /// The Graph error this answer carries.
    pub fn error(&self) -> GraphError {
        GraphError::parse(self.status, &self.body)
    }
}

/// Counts of what went over the wire (for benchmarks and `--verbose`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Of those, retries after 429/5xx or a dropped connection.
    pub retries: u64,
    /// Time spent waiting before retries, in milliseconds.
    pub waited_ms: u64,
}

/// The HTTP client with its retry policy.
pub struct Http {
    agent: ureq::Agent,
    policy: RetryPolicy,
    requests: AtomicU64,
    retries: AtomicU64,
    waited_ms: AtomicU64,
}

impl Http {
    /// A client with `policy`. Redirects are not followed: Graph does not
    /// send them, and following one would carry the bearer token elsewhere.
    pub fn new(policy: RetryPolicy) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(100)))
            .user_agent(concat!("oathdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http {
            agent,
            policy,
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
        }
    }

    /// What was sent so far.
    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            waited_ms: self.waited_ms.load(Ordering::Relaxed),
        }
    }

    /// Sends a request, retrying throttling, passing server errors and
    /// dropped connections. The final answer is returned whatever its
    /// status, except that a retryable status that outlived the retries
    /// becomes [`Error::GaveUp`].
    pub fn send(
        &self,
        operation: Operation,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: &Body<'_>,
    ) -> Result<Answer> {
        let mut retry = 0;
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = self.once(method, url, bearer, body);
            let (retry_after, failure) = match outcome {
                Ok((answer, retry_after)) if is_retryable(answer.status) => {
                    (retry_after, Err(answer))
                }
                Ok((answer, _)) => return Ok(answer),
                Err(reason) => (None, Ok(reason)),
            };
            retry += 1;
            let Some(wait) = self.policy.delay(retry, retry_after, jitter()) else {
                return Err(match failure {
                    Err(answer) => Error::GaveUp {
                        operation,
                        attempts: retry,
                        graph: answer.error(),
                    },
                    Ok(reason) => Error::Transport {
                        operation,
                        host: host_of(url).to_owned(),
                        reason,
                    },
                });
            };
            self.retries.fetch_add(1, Ordering::Relaxed);
            self.waited_ms
                .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            std::thread::sleep(wait);
        }
    }

    /// One attempt: the answer and its `Retry-After`, or why there was none.
    fn once(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        body: &Body<'_>,
    ) -> std::result::Result<(Answer, Option<Duration>), String> {
        let authorization = bearer.map(|token| Zeroizing::new(format!("Bearer {token}")));
        macro_rules! with_headers {
            ($request:expr) => {{
                let request = $request.header("Accept", "application/json");
                match &authorization {
                    Some(value) => request.header("Authorization", value.as_str()),
                    None => request,
                }
            }};
        }
        macro_rules! with_body {
            ($request:expr) => {{
                let request = with_headers!($request);
                match body {
                    Body::Empty => request.send_empty(),
                    Body::Json(value) => request
                        .content_type("application/json")
                        .send(serde_json::to_vec(value).unwrap_or_default()),
                    Body::Form(text) => request
                        .content_type("application/x-www-form-urlencoded")
                        .send(text.as_bytes()),
                }
            }};
        }
        let response = match method {
            Method::Get => with_headers!(self.agent.get(url)).call(),
            Method::Delete => with_headers!(self.agent.delete(url)).call(),
            Method::Post => with_body!(self.agent.post(url)),
            Method::Patch => with_body!(self.agent.patch(url)),
        };
        let mut response = response.map_err(|e| describe_transport_error(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("the answer broke off: {e}"))?;
        Ok((Answer { status, body }, retry_after))
    }
}

/// A transport error in words, without the URL (it may carry a query).
fn describe_transport_error(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => other.to_string(),
    }
}

/// The host part of a URL, for messages.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// The scheme and host of a URL (`https://graph.microsoft.com`).
pub fn origin_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or(rest);
            &url[..scheme.len() + 3 + host.len()]
        }
        None => url,
    }
}

/// A number in `0.0..1.0` from the OS RNG (0.5 if it fails: jitter only
/// spreads retries, it protects nothing).
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_over_backoff_and_too_long_a_wait_gives_up() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(7)), 0.9),
            Some(Duration::from_secs(7))
        );
        assert_eq!(policy.delay(1, Some(Duration::from_secs(301)), 0.0), None);
        assert_eq!(policy.delay(policy.attempts, None, 0.0), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let policy = RetryPolicy {
            attempts: 30,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(60),
        };
        assert_eq!(policy.delay(1, None, 0.0), Some(Duration::from_millis(50)));
        assert_eq!(policy.delay(1, None, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(policy.delay(2, None, 1.0), Some(Duration::from_millis(200)));
        assert_eq!(policy.delay(3, None, 0.0), Some(Duration::from_millis(200)));
        assert_eq!(policy.delay(20, None, 1.0), Some(Duration::from_secs(2)));
        for retry in 1..29 {
            let d = policy.delay(retry, None, 0.37).unwrap();
            assert!(d > Duration::ZERO && d <= policy.cap, "{retry}: {d:?}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        // 2015-10-21 07:28:00 UTC is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_and_urls() {
        assert!(is_retryable(429) && is_retryable(503) && is_retryable(504));
        assert!(!is_retryable(400) && !is_retryable(403) && !is_retryable(501));
        assert_eq!(
            host_of("https://graph.microsoft.com/beta/x?y"),
            "graph.microsoft.com"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/beta/x"),
            "http://127.0.0.1:8080"
        );
    }
}
