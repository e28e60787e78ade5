//! Sending a notice to a webhook: the only place in this crate that touches
//! the network.
//!
//! Each attempt is a `POST` of [`webhook_body`] signed afresh (see
//! [`crate::signature`]), so a delivery that waited through retries still
//! carries a current timestamp. Every attempt of one notice carries the
//! same `X-Oathdesk-Delivery` id, which lets the receiver drop the
//! duplicates that retries after a lost answer produce.
//!
//! Redirects are not followed: a signed notice goes to the configured URL
//! or nowhere. Errors name the receiver by its origin (scheme, host, port),
//! never by its path or query, which some services use as a token; the
//! secret appears in no error and no `Debug` output.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use zeroize::Zeroizing;

use crate::notice::Notice;
use crate::render::webhook_body;
use crate::retry::{RetryPolicy, is_retryable, jitter, parse_retry_after};
use crate::signature::sign;

/// The shortest secret accepted. HMAC takes any key, but a short one can
/// be guessed offline from a single captured request.
pub const MIN_SECRET_LEN: usize = 16;

/// How long one attempt may take, connection included, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest delivery id: it goes into a header.
pub const MAX_DELIVERY_ID_LEN: usize = 200;

/// Why a webhook could not be set up or a notice not delivered. No message
/// carries the secret, the URL's path or its query.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook URL is not usable: {0}")]
    BadUrl(String),
    #[error(
        "the webhook URL sends to {host} over plain http://, which only a loopback address \
         (127.0.0.0/8, ::1, localhost) may use: use https://"
    )]
    InsecureUrl { host: String },
    #[error(
        "the webhook secret is {len} bytes long; it must be at least {MIN_SECRET_LEN} \
         (32 random bytes are best)"
    )]
    WeakSecret { len: usize },
    #[error(
        "the delivery id must be 1 to {MAX_DELIVERY_ID_LEN} visible ASCII characters (a UUID, say): \
         it goes into a header"
    )]
    BadDeliveryId,
    /// A status that another attempt would not change (a `4xx` other than
    /// `429`, or a redirect).
    #[error("the webhook receiver at {origin} answered {status}: {}", rejected_hint(*status))]
    Rejected {
        origin: String,
        status: u16,
        attempts: u32,
    },
    /// `429` or `5xx` until the retries ran out (or the receiver asked to
    /// wait longer than the policy allows).
    #[error(
        "the webhook receiver at {origin} still answered {status} after {attempts} attempt(s): \
         the notice was not delivered"
    )]
    GaveUp {
        origin: String,
        status: u16,
        attempts: u32,
    },
    /// No answer at all: refused connection, unknown host, TLS failure,
    /// timeout.
    #[error(
        "could not reach the webhook receiver at {origin} ({reason}) after {attempts} attempt(s): \
         the notice was not delivered"
    )]
    Transport {
        origin: String,
        reason: String,
        attempts: u32,
    },
}

impl WebhookError {
    /// Attempts made before the error: 0 when nothing was sent.
    pub fn attempts(&self) -> u32 {
        match self {
            WebhookError::Rejected { attempts, .. }
            | WebhookError::GaveUp { attempts, .. }
            | WebhookError::Transport { attempts, .. } => *attempts,
            _ => 0,
        }
    }
}

fn rejected_hint(status: u16) -> &'static str {
    match status {
        300..=399 => "redirects are not followed; configure the URL it redirects to",
        401 | 403 => "it refused the notice; check that it has the same secret",
        404 | 405 => "check the webhook URL",
        _ => "it refused the notice, and retrying would not change that",
    }
}

/// A delivered notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Attempts it took, the successful one included.
    pub attempts: u32,
    /// The receiver's `2xx` status.
    pub status: u16,
}

/// A webhook receiver: where to send, the shared secret, how long to wait
/// and how often to retry.
pub struct Webhook {
    url: String,
    /// `scheme://host[:port]`, for messages.
    origin: String,
    secret: Zeroizing<Vec<u8>>,
    timeout: Duration,
    retry: RetryPolicy,
    agent: ureq::Agent,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("origin", &self.origin)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook to `url` with the default timeout and retry policy.
    ///
    /// The URL must be `https://`, or `http://` to a loopback address (a
    /// receiver on the same machine), and carry no user name or password.
    /// The secret must be at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(url: &str, secret: Zeroizing<Vec<u8>>) -> Result<Webhook, WebhookError> {
        let origin = check_url(url)?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(WebhookError::WeakSecret { len: secret.len() });
        }
        Ok(Webhook {
            url: url.to_owned(),
            origin,
            secret,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            agent: agent(DEFAULT_TIMEOUT),
        })
    }

    /// The same webhook with another limit on each attempt.
    pub fn with_timeout(mut self, timeout: Duration) -> Webhook {
        self.timeout = timeout;
        self.agent = agent(timeout);
        self
    }

    /// The same webhook with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Webhook {
        self.retry = retry;
        self
    }

    /// `scheme://host[:port]` of the receiver.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Sends `notice`, retrying as the policy says. `now` is the current
    /// Unix time; each attempt is stamped `now` plus the time spent so far.
    ///
    /// This blocks through the attempts and the waits between them (seconds
    /// with the default policy): from async code, call it on a blocking
    /// thread.
    pub fn send(&self, notice: &Notice, now: u64) -> Result<Delivered, WebhookError> {
        if !is_delivery_id(&notice.id) {
            return Err(WebhookError::BadDeliveryId);
        }
        let body = webhook_body(notice);
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timestamp = now.saturating_add(started.elapsed().as_secs());
            let outcome = self.once(&notice.id, timestamp, &body);
            let (retry_after, failure) = match outcome {
                Ok((status, _)) if (200..300).contains(&status) => {
                    return Ok(Delivered { attempts, status });
                }
                Ok((status, retry_after)) if is_retryable(status) => {
                    (retry_after, Failure::Status(status))
                }
                Ok((status, _)) => {
                    return Err(WebhookError::Rejected {
                        origin: self.origin.clone(),
                        status,
                        attempts,
                    });
                }
                Err(reason) => (None, Failure::Transport(reason)),
            };
            let Some(wait) = self.retry.delay(attempts, retry_after, jitter()) else {
                return Err(match failure {
                    Failure::Status(status) => WebhookError::GaveUp {
                        origin: self.origin.clone(),
                        status,
                        attempts,
                    },
                    Failure::Transport(reason) => WebhookError::Transport {
                        origin: self.origin.clone(),
                        reason,
                        attempts,
                    },
                });
            };
            std::thread::sleep(wait);
        }
    }

    /// One attempt: the status and `Retry-After`, or why there was none.
    fn once(
        &self,
        id: &str,
        timestamp: u64,
        body: &[u8],
    ) -> Result<(u16, Option<Duration>), String> {
        let response = self
            .agent
            .post(&self.url)
            .content_type("application/json")
            .header("X-Oathdesk-Delivery", id)
            .header("X-Oathdesk-Timestamp", timestamp.to_string())
            .header("X-Oathdesk-Signature", sign(&self.secret, timestamp, body))
            .send(body)
            .map_err(|e| describe_transport_error(&e))?;
        let status = response.status().as_u16();
        let clock = SystemTime::UNIX_EPOCH + Duration::from_secs(timestamp);
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, clock));
        Ok((status, retry_after))
    }
}

enum Failure {
    Status(u16),
    Transport(String),
}

/// The HTTP client: no redirects (see the module doc), a limit per attempt.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("oathdesk-notify/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A transport error in words, without the URL.
fn describe_transport_error(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Tls(reason) => format!("TLS: {reason}"),
        ureq::Error::Rustls(e) => format!("TLS: {e}"),
        ureq::Error::Protocol(e) => format!("HTTP: {e}"),
        _ => "the exchange failed".into(),
    }
}

/// Visible ASCII, as a header value needs, and not too long.
fn is_delivery_id(id: &str) -> bool {
    (1..=MAX_DELIVERY_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks a webhook URL and gives its origin (`scheme://host[:port]`).
/// Plain `http://` is for a receiver on this machine only: anywhere else
/// the notice (who called about whom) would cross the network in clear.
pub fn check_url(url: &str) -> Result<String, WebhookError> {
    let bad = |reason: &str| WebhookError::BadUrl(reason.to_owned());
    let uri: ureq::http::Uri = url.parse().map_err(|_| bad("it does not parse as a URL"))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| bad("it has no scheme; write https://…"))?
        .to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(bad(
            "only https:// (or http:// to a loopback address) is supported",
        ));
    }
    let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "it carries a user name or password; leave them out (the signature authenticates oathdesk)",
        ));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("it has no host"));
    }
    if scheme == "http" && !is_loopback(host) {
        return Err(WebhookError::InsecureUrl {
            host: host.to_owned(),
        });
    }
    Ok(format!("{scheme}://{authority}"))
}

/// 127.0.0.0/8, ::1 or `localhost`.
fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |url: &str| check_url(url).unwrap();
        assert_eq!(
            ok("https://hooks.example.com/x?token=1"),
            "https://hooks.example.com"
        );
        assert_eq!(
            ok("HTTPS://hooks.example.com:8443/x"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(ok("http://127.0.0.1:9000/hook"), "http://127.0.0.1:9000");
        assert_eq!(ok("http://127.3.4.5/hook"), "http://127.3.4.5");
        assert_eq!(ok("http://[::1]:9000/hook"), "http://[::1]:9000");
        assert_eq!(ok("http://LocalHost:9000/"), "http://LocalHost:9000");

        let insecure = |url: &str, host: &str| {
            assert_eq!(
                check_url(url),
                Err(WebhookError::InsecureUrl { host: host.into() }),
                "{url}"
            );
        };
        insecure("http://hooks.example.com/x", "hooks.example.com");
        insecure("http://10.0.0.1/x", "10.0.0.1");
        insecure("http://128.0.0.1/x", "128.0.0.1");
        insecure("http://localhost.example.com/x", "localhost.example.com");
        insecure("http://127.0.0.1.example.com/x", "127.0.0.1.example.com");
        insecure("http://[::2]/x", "[::2]");
        insecure("http://0x7f.1/x", "0x7f.1");
        // The host is what follows the '@', whatever precedes it.
        assert!(matches!(
            check_url("http://127.0.0.1@evil.example/x"),
            Err(WebhookError::BadUrl(_))
        ));
        for url in [
            "ftp://127.0.0.1/x",
            "hooks.example.com/x",
            "/x",
            "https://user:pw@hooks.example.com/",
            "https:///x",
            "",
        ] {
            assert!(
                matches!(check_url(url), Err(WebhookError::BadUrl(_))),
                "{url}: {:?}",
                check_url(url)
            );
        }
    }

    #[test]
    fn secrets_and_ids() {
        let url = "https://hooks.example.com/x";
        assert_eq!(
            Webhook::new(url, Zeroizing::new(vec![7; 15])).unwrap_err(),
            WebhookError::WeakSecret { len: 15 }
        );
        assert!(Webhook::new(url, Zeroizing::new(vec![7; 16])).is_ok());
        assert!(is_delivery_id("d6f1c3a0-5b7e-4c1e-9f0a-2b3c4d5e6f70"));
        assert!(!is_delivery_id(""));
        assert!(!is_delivery_id("a b"));
        assert!(!is_delivery_id("a\r\nX-Injected: 1"));
        assert!(!is_delivery_id("é"));
        assert!(!is_delivery_id(&"a".repeat(MAX_DELIVERY_ID_LEN + 1)));
    }

    #[test]
    fn a_bad_delivery_id_sends_nothing() {
        let webhook = Webhook::new("http://127.0.0.1:9/x", Zeroizing::new(vec![7; 32])).unwrap();
        let notice = Notice::new("a\nb", crate::Event::CodeReleased, 0, "u@x", "op");
        assert_eq!(webhook.send(&notice, 0), Err(WebhookError::BadDeliveryId));
    }
}
