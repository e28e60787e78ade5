//! Telling users what the helpdesk did in their name.
//!
//! A caller who talks the helpdesk into reading out a sign-in code is, if
//! they are not who they claim, impersonating someone. That someone is the
//! one person sure to notice — if they are told. So after the helpdesk
//! releases a code for a user, refuses one, issues an Entra Temporary Access
//! Pass, or asks a second operator to approve a release, oathdesk can tell
//! the user (threat-model promise 4: "the user can be told that a code was
//! released").
//!
//! - [`Notice`] — who, what, when and by whom. It has no field for a code
//!   or a pass, so neither channel can carry one.
//! - [`render_mail`] — subject and plain text, for the mail that is sent
//!   elsewhere through Microsoft Graph.
//! - [`Webhook`] — sends [`webhook_body`] to a receiver an admin runs,
//!   signed, with retries.
//! - [`verify_signature`] — what a receiver does with the signature.
//!
//! # Writing a webhook receiver
//!
//! Each notice arrives as one `POST` to the configured URL (`https://`, or
//! `http://` on the same machine) with these headers:
//!
//! | header | value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | `X-Oathdesk-Delivery` | the notice's unique id; the same on every retry |
//! | `X-Oathdesk-Timestamp` | when this attempt was signed, in Unix seconds |
//! | `X-Oathdesk-Signature` | `v1=` and the lower-case hex HMAC-SHA256, keyed with the shared secret, of the timestamp header, a `.`, and the body |
//!
//! The body is a JSON object with every key of [`WEBHOOK_FIELDS`], unset
//! ones `null`:
//!
//! ```json
//! {"version":1,"id":"d6f1c3a0-…","event":"code_released","at":1700000000,
//!  "user_upn":"alice@contoso.com","user_display_name":"Alice Example",
//!  "operator":"bob","approver":null,"ticket":"INC-1234","method":"callback",
//!  "reason":null,"organisation":"Contoso IT","report_to":"+1 555 0100"}
//! ```
//!
//! `event` is one of `code_released`, `code_refused`,
//! `temporary_access_pass_issued`, `approval_requested`; accept events you
//! do not know, as later releases may add some within version 1.
//!
//! To accept a request:
//!
//! 1. Compute the HMAC over the **raw body bytes** as received, before any
//!    JSON parsing (re-encoding changes bytes), and compare it with the
//!    header in constant time. Refuse anything but `v1=`.
//! 2. Refuse a timestamp more than five minutes from your clock: the
//!    signature is genuine, but the request may be a replay.
//! 3. Drop a delivery id you have already accepted: a retry after a lost
//!    answer sends the same notice again.
//! 4. Answer `2xx` quickly. `429` and `5xx` (or no answer) make oathdesk
//!    retry with backoff, honouring a short `Retry-After`; any other status
//!    ends the delivery as failed.
//!
//! In Python:
//!
//! ```python
//! import hashlib, hmac, time
//!
//! def verify(secret: bytes, headers, body: bytes, tolerance=300):
//!     timestamp = headers["X-Oathdesk-Timestamp"]
//!     version, _, signature = headers["X-Oathdesk-Signature"].partition("=")
//!     if version != "v1":
//!         raise ValueError("unknown signature version")
//!     expected = hmac.new(secret, timestamp.encode() + b"." + body,
//!                         hashlib.sha256).hexdigest()
//!     if not hmac.compare_digest(expected, signature.lower()):
//!         raise ValueError("bad signature")
//!     if abs(time.time() - int(timestamp)) > tolerance:
//!         raise ValueError("stale timestamp: a replay?")
//! ```
//!
//! By hand, to check one captured request (`body.json` holding the body
//! exactly as received; `[ = ]` is not a constant-time comparison, so this
//! is for debugging, not for a receiver):
//!
//! ```sh
//! expected="v1=$({ printf '%s.' "$ts"; cat body.json; } \
//!   | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
//! [ "$expected" = "$sig" ] && echo genuine
//! ```
//!
//! In Rust, with this crate:
//!
//! ```
//! use oathdesk_notify::{DEFAULT_TOLERANCE, sign, verify_signature};
//!
//! let secret = b"a secret of at least sixteen bytes";
//! let body = br#"{"version":1}"#;
//! let signature = sign(secret, 1_700_000_000, body);
//! assert!(verify_signature(secret, "1700000000", body, &signature,
//!                          1_700_000_060, DEFAULT_TOLERANCE).is_ok());
//! // An hour later the same request is a replay.
//! assert!(verify_signature(secret, "1700000000", body, &signature,
//!                          1_700_003_600, DEFAULT_TOLERANCE).is_err());
//! ```
//!
//! The secret is at least [`MIN_SECRET_LEN`] bytes; 32 random bytes (e.g.
//! `openssl rand -hex 32`, used as the text it prints) are best.

#![forbid(unsafe_code)]

pub mod notice;
pub mod render;
pub mod retry;
pub mod signature;
pub mod webhook;

pub use notice::{Event, Notice};
pub use render::{Mail, WEBHOOK_FIELDS, WEBHOOK_VERSION, render_mail, webhook_body};
pub use retry::RetryPolicy;
pub use signature::{DEFAULT_TOLERANCE, SignatureError, sign, verify_signature};
pub use webhook::{Delivered, MIN_SECRET_LEN, Webhook, WebhookError};
