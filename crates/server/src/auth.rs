//! Who may do what: roles, permissions, and the extractor every protected
//! handler takes.
//!
//! A handler declares what it needs in its signature — `Auth<need::HelpdeskCode>`
//! — and cannot run without it: the extractor finds the bearer secret (the
//! session cookie, or an `Authorization: Bearer` API token), opens the
//! vault with it, checks the role (and a token's scopes), and for a cookie
//! on a state-changing request checks the CSRF token and the origin. The
//! handler then works on the opened vault inside `spawn_blocking`. A handler
//! that reads what it decides on together with the opening (the helpdesk
//! code) takes `Bearer<need::…>` instead — the same checks but the vault's —
//! and opens it with [`Bearer::open`] on its blocking thread; the need is
//! checked there just the same.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use hmac::{Hmac, Mac};
use oathdesk_vault::Session;
use oathdesk_vault::web::Grant;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, blocking, now};

// The roles, permissions and the table that links them are the vault's
// (`oathdesk_vault::policy`): the console refuses early with the same
// words, and the vault refuses again whatever the front-end.
pub use oathdesk_vault::policy::{Permission, Role};

/// Marker types naming the permission a handler needs.
pub mod need {
    use super::Permission;

    /// A permission at the type level.
    pub trait Need: Send + Sync + 'static {
        const PERMISSION: Permission;
        /// Whether the route is part of changing one's own password, which
        /// is all a session whose password an admin set may do (the vault
        /// decides: `Session::authorize_password_change`).
        const DURING_PASSWORD_CHANGE: bool = false;
    }

    /// Who am I, the password change itself, signing out and the pages
    /// (which send such a session to its Account page): [`Permission::Account`],
    /// and allowed while a password change is pending.
    pub struct PasswordChange;
    impl Need for PasswordChange {
        const PERMISSION: Permission = Permission::Account;
        const DURING_PASSWORD_CHANGE: bool = true;
    }

    macro_rules! needs {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Needs [`Permission::", stringify!($name), "`].")]
            pub struct $name;
            impl Need for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }

    needs!(
        Toolset,
        InventoryRead,
        HelpdeskCode,
        Identify,
        Deliver,
        DeliveryLink,
        InventoryWrite,
        Export,
        AuditRead,
        Admin,
        Account,
        Forensic
    );
}

use need::Need;

// ----- bearer secrets ---------------------------------------------------------

/// The session cookie's name: with TLS the `__Host-` prefix makes browsers
/// insist on `Secure`, `Path=/` and no `Domain`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-oathdesk"
    } else {
        "oathdesk"
    }
}

/// The prefix of API tokens (secret scanners can look for it).
pub const TOKEN_PREFIX: &str = "odk_";

/// A bearer secret as text (cookie value, token after its prefix).
pub fn encode_secret(secret: &[u8; 32]) -> Zeroizing<String> {
    Zeroizing::new(data_encoding::BASE64URL_NOPAD.encode(secret))
}

fn decode_secret(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(
        data_encoding::BASE64URL_NOPAD
            .decode(text.as_bytes())
            .ok()?,
    );
    let mut secret = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return None;
    }
    secret.copy_from_slice(&bytes);
    Some(secret)
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(secret: &[u8; 32], max_age: u64, secure: bool) -> String {
    format!(
        "{}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        cookie_name(secure),
        encode_secret(secret).as_str(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

/// The CSRF token of a session: an HMAC of the session secret. Pages carry
/// it (the cookie is HttpOnly, so scripts cannot derive it themselves) and
/// scripts send it back in `X-CSRF-Token`; another site can neither read
/// the page nor guess it.
pub fn csrf_token(secret: &[u8; 32]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"oathdesk csrf v1");
    data_encoding::BASE64URL_NOPAD.encode(&mac.finalize().into_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a request proved itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// The session cookie; carries the page's CSRF token.
    Cookie { csrf: String },
    /// An API token.
    Token,
}

/// The bearer secret of a request: an API token, else the session cookie.
pub fn bearer(headers: &HeaderMap, secure: bool) -> ApiResult<Option<(Zeroizing<[u8; 32]>, bool)>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default().trim();
        let token = text
            .strip_prefix("Bearer ")
            .and_then(|t| t.trim().strip_prefix(TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::unauthorized(format!(
                    "the Authorization header must be 'Bearer {TOKEN_PREFIX}…' with an API token"
                ))
            })?;
        let secret = decode_secret(token)
            .ok_or_else(|| ApiError::unauthorized("the API token is malformed"))?;
        return Ok(Some((secret, true)));
    }
    Ok(session_secret(headers, secure).map(|s| (s, false)))
}

/// The session secret from the cookie, if there is one.
pub fn session_secret(headers: &HeaderMap, secure: bool) -> Option<Zeroizing<[u8; 32]>> {
    let name = cookie_name(secure);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| decode_secret(value.trim()))
}

/// Refuses a state-changing request that another site sent: browsers send
/// `Sec-Fetch-Site` and `Origin` with it. (SameSite=Strict already keeps
/// the cookie off such requests; this also covers login and setup, which
/// have no session yet.)
pub fn check_same_origin(headers: &HeaderMap) -> ApiResult<()> {
    let refused = || {
        ApiError::forbidden(
            "cross-site request refused: the console accepts changes only from its own pages",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refused());
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if origin == "null" || origin_host != host {
            return Err(refused());
        }
    }
    Ok(())
}

fn check_csrf(headers: &HeaderMap, secret: &[u8; 32]) -> ApiResult<()> {
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(sent.as_bytes(), csrf_token(secret).as_bytes()) {
        return Err(ApiError::forbidden(
            "missing or wrong CSRF token: reload the page and try again \
             (scripts send the page's token in X-CSRF-Token)",
        ));
    }
    Ok(())
}

// ----- the extractor ----------------------------------------------------------

/// Work handed the session after a request is answered (see [`Auth::run_then`]).
pub type AfterAnswer = Box<dyn FnOnce(&mut Session) + Send + 'static>;

/// An authenticated, authorised request with the vault opened for it.
pub struct Auth<N: Need> {
    session: Option<Session>,
    pub grant: Grant,
    pub role: Role,
    pub via: Via,
    pub state: Arc<AppState>,
    need: PhantomData<N>,
}

impl<N: Need> Auth<N> {
    /// Runs vault work on the opened session, off the async threads, and
    /// gives the connection back to the pool.
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce(&mut Session) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        self.run_then(work, None).await
    }

    /// Like [`Auth::run`], then hands the session to `after` on another
    /// blocking thread without waiting for it: work that must hold up
    /// neither the answer nor other requests' writes (sending the notices a
    /// release queued; a slow webhook must not delay the code).
    pub async fn run_then<T: Send + 'static>(
        self,
        work: impl FnOnce(&mut Session) -> ApiResult<T> + Send + 'static,
        after: Option<AfterAnswer>,
    ) -> ApiResult<T> {
        blocking(move || self.run_here(work, after)).await
    }

    /// [`Auth::run_then`] on the calling thread, which must be a blocking
    /// one (a handler that opened the vault itself, see [`Bearer::open`]).
    pub fn run_here<T>(
        mut self,
        work: impl FnOnce(&mut Session) -> ApiResult<T>,
        after: Option<AfterAnswer>,
    ) -> ApiResult<T> {
        let mut session = self
            .session
            .take()
            .expect("an Auth holds its session until run");
        let state = self.state.clone();
        let result = work(&mut session);
        match after {
            Some(after) => {
                tokio::task::spawn_blocking(move || {
                    after(&mut session);
                    state.recycle(session.into_store());
                });
            }
            None => state.recycle(session.into_store()),
        }
        result
    }

    /// Whether this request's principal has a permission (role, and a
    /// token's scopes), as the vault's table says: for pages that show or
    /// hide an action. (False once the session was handed to `run`.)
    pub fn may(&self, permission: Permission) -> bool {
        self.session.as_ref().is_some_and(|s| s.may(permission))
    }

    /// The CSRF token of a cookie session (for pages).
    pub fn csrf(&self) -> Option<&str> {
        match &self.via {
            Via::Cookie { csrf } => Some(csrf),
            Via::Token => None,
        }
    }
}

impl<N: Need> Drop for Auth<N> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.state.recycle(session.into_store());
        }
    }
}

/// A request's bearer secret and how it came, checked as far as it can be
/// without the vault (a cookie on a state-changing request: the CSRF token
/// and the origin). [`Auth`] opens the vault with it before the handler
/// runs; a handler that reads with the opening (the helpdesk code) takes
/// this and calls [`Bearer::open`] itself.
pub struct Bearer<N: Need> {
    secret: Zeroizing<[u8; 32]>,
    via: Via,
    pub state: Arc<AppState>,
    need: PhantomData<N>,
}

impl<N: Need> FromRequestParts<Arc<AppState>> for Bearer<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let secure = state.settings.secure_cookies;
        let (secret, is_token) = bearer(&parts.headers, secure)?.ok_or_else(|| {
            ApiError::unauthorized(
                "sign in first (or send an API token as 'Authorization: Bearer odk_…')",
            )
        })?;
        let state_changing = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let via = if is_token {
            Via::Token
        } else {
            if state_changing {
                check_same_origin(&parts.headers)?;
                check_csrf(&parts.headers, &secret)?;
            }
            Via::Cookie {
                csrf: csrf_token(&secret),
            }
        };
        Ok(Bearer {
            secret,
            via,
            state: state.clone(),
            need: PhantomData,
        })
    }
}

impl<N: Need> Bearer<N> {
    /// Opens the vault with the secret and checks the need. Blocking: call
    /// it inside `spawn_blocking`. `helpdesk`: a helpdesk code for this user
    /// at this time follows, whose rows are read with the grant
    /// (`Vault::open_grant_for_helpdesk`).
    pub fn open(self, helpdesk: Option<(&str, u64)>) -> ApiResult<Auth<N>> {
        let state = self.state;
        let vault = state.vault()?;
        let console_key = state.console_key();
        let idle = Some(state.settings.session_idle);
        let opened = match helpdesk {
            Some((upn, at)) => {
                vault.open_grant_for_helpdesk(&self.secret, idle, at, console_key.as_ref(), upn)
            }
            None => vault.open_grant(&self.secret, idle, now(), console_key.as_ref()),
        };
        let (mut session, grant) = match opened {
            Ok(opened) => opened,
            Err(oathdesk_vault::Error::Sealed) => {
                // A key from before a rekey elsewhere opens nothing.
                state.seal();
                return Err(oathdesk_vault::Error::Sealed.into());
            }
            Err(other) => return Err(other.into()),
        };
        // The vault's table decides, and audits a refusal, as it does for
        // the command line; while the account's password is one an admin
        // set, the vault refuses all but the password change (sessions and
        // API tokens alike).
        let checked = if N::DURING_PASSWORD_CHANGE {
            session.authorize_password_change()
        } else {
            session.authorize(N::PERMISSION)
        };
        if let Err(refusal) = checked {
            state.recycle(session.into_store());
            return Err(refusal.into());
        }
        // The role the vault opened the session with (the operator's signed row).
        Ok(Auth {
            role: session.role(),
            session: Some(session),
            grant,
            via: self.via,
            state,
            need: PhantomData,
        })
    }
}

impl<N: Need> FromRequestParts<Arc<AppState>> for Auth<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let bearer = Bearer::<N>::from_request_parts(parts, state).await?;
        blocking(move || bearer.open(None)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_cookies_and_csrf() {
        let secret = [7u8; 32];
        let cookie = session_cookie(&secret, 60, true);
        assert!(cookie.starts_with("__Host-oathdesk="));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("; Secure"));
        assert!(!session_cookie(&secret, 60, false).contains("Secure"));
        let mut headers = HeaderMap::new();
        let value = format!("other=1; oathdesk={}", encode_secret(&secret).as_str());
        headers.insert(header::COOKIE, value.parse().unwrap());
        assert_eq!(*session_secret(&headers, false).unwrap(), secret);
        assert!(session_secret(&headers, true).is_none());
        assert_ne!(csrf_token(&secret), csrf_token(&[8u8; 32]));
        headers.insert("x-csrf-token", csrf_token(&secret).parse().unwrap());
        assert!(check_csrf(&headers, &secret).is_ok());
        assert!(check_csrf(&headers, &[8u8; 32]).is_err());
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(check_same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(check_same_origin(&headers).is_err());
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(check_same_origin(&headers).is_err());
        headers.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(check_same_origin(&headers).is_ok());
    }
}
