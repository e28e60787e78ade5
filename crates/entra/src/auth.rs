//! Signing in to Microsoft Entra ID (OAuth 2.0 on the v2.0 endpoints).
//!
//! - **Client credentials** for automation: the app proves itself with a
//!   client secret, or with a certificate — a short-lived JWT (the *client
//!   assertion*) signed with the certificate's private key and naming the
//!   certificate by its thumbprint (`x5t`). The token carries the app's
//!   application permissions.
//! - **Device code** for a person: oathdesk shows a code, the admin enters
//!   it at the sign-in page in any browser, and oathdesk polls until the
//!   sign-in completes. The token carries the admin's delegated permissions
//!   and roles; a refresh token lets later runs continue without signing in.
//!
//! Tokens are kept in a [`TokenCache`] (the command line stores it in a file
//! readable only by its owner). Secrets and tokens never appear in `Debug`
//! output or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Operation, Result};
use crate::http::{Body, Http, Method};

/// Where to sign in and which Graph to call. Both are configurable for
/// national clouds and for the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// The sign-in authority, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// Microsoft Graph, e.g. `https://graph.microsoft.com`.
    pub graph: String,
    /// The tenant: its id (GUID) or a verified domain.
    pub tenant: String,
}

/// The global (public) cloud's sign-in service.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The global cloud's Graph.
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";

impl Endpoints {
    /// Endpoints with trailing slashes removed; refuses plain `http://`
    /// except on loopback (a simulator), because a token would travel in
    /// the clear.
    pub fn new(authority: &str, graph: &str, tenant: &str) -> Result<Endpoints> {
        let tenant = tenant.trim();
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(Error::Config(format!(
                "'{tenant}' is not a tenant id or domain (set OATHDESK_ENTRA_TENANT to the tenant's \
                 GUID or a verified domain such as contoso.onmicrosoft.com)"
            )));
        }
        let clean = |url: &str, what: &str, variable: &str| -> Result<String> {
            let url = url.trim().trim_end_matches('/');
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|prefix| {
                    url.strip_prefix(prefix)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
                });
            if url.starts_with("https://") || loopback {
                Ok(url.to_owned())
            } else {
                Err(Error::Config(format!(
                    "the {what} URL '{url}' must start with https:// (plain http only on loopback, \
                     for a simulator); check {variable}"
                )))
            }
        };
        Ok(Endpoints {
            authority: clean(
                authority,
                "sign-in",
                "--authority-url / OATHDESK_AUTHORITY_URL",
            )?,
            graph: clean(graph, "Graph", "--graph-url / OATHDESK_GRAPH_URL")?,
            tenant: tenant.to_owned(),
        })
    }

    /// The v2.0 token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant)
    }

    /// The v2.0 device-code endpoint.
    pub fn device_code_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/devicecode", self.authority, self.tenant)
    }

    /// The scope of an app-only token: every application permission the
    /// app was granted on this Graph.
    pub fn app_scope(&self) -> String {
        format!("{}/.default", self.graph)
    }

    /// The delegated scopes oathdesk asks an admin for, plus a refresh token.
    pub fn delegated_scopes(&self) -> String {
        DELEGATED_PERMISSIONS
            .iter()
            .map(|p| format!("{}/{p}", self.graph))
            .chain(["offline_access".to_owned()])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What oathdesk asks for when an admin signs in.
pub const DELEGATED_PERMISSIONS: [&str; 3] = [
    "Policy.ReadWrite.AuthenticationMethod",
    "UserAuthenticationMethod.ReadWrite.All",
    "User.Read.All",
];

/// How the app proves who it is.
pub enum ClientCredential {
    /// A client secret.
    Secret(Zeroizing<String>),
    /// A certificate and its private key.
    Certificate(crate::assertion::CertificateCredential),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret(<redacted>)"),
            ClientCredential::Certificate(c) => {
                f.debug_tuple("Certificate").field(&c.thumbprint()).finish()
            }
        }
    }
}

/// An access token and what came with it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Token {
    pub access_token: Zeroizing<String>,
    /// Unix time it expires.
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Zeroizing<String>>,
    /// Who signed in (delegated tokens), from the ID token if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("account", &self.account)
            .finish()
    }
}

impl Token {
    /// Still usable at `now` for at least a minute (a long operation must
    /// not start with a token about to lapse).
    pub fn fresh_at(&self, now: u64) -> bool {
        self.expires_at > now.saturating_add(60)
    }
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Zeroizing<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<Zeroizing<String>>,
    #[serde(default)]
    id_token: Option<String>,
}

/// The token endpoint's error.
#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The device-code endpoint's answer: what to show the admin.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct DeviceCode {
    #[serde(skip_serializing)]
    device_code: Zeroizing<String>,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    #[serde(default = "default_interval")]
    pub interval: u64,
    #[serde(default)]
    pub message: String,
}

fn default_interval() -> u64 {
    5
}

/// Turns an AADSTS error into advice. The codes are Microsoft's
/// (`AADSTS7000215` and friends); the description's first sentence follows.
pub fn explain_sign_in_error(error: &str, description: &str) -> String {
    let first = description
        .split(['\r', '\n'])
        .next()
        .unwrap_or_default()
        .trim();
    let code = first
        .split(':')
        .next()
        .filter(|c| c.starts_with("AADSTS"))
        .unwrap_or_default();
    let advice = match code {
        "AADSTS7000215" | "AADSTS7000222" => {
            "the client secret is wrong or expired: create a new one under App registrations → \
             Certificates & secrets and set OATHDESK_ENTRA_CLIENT_SECRET"
        }
        "AADSTS700016" => {
            "no app with this client id in the tenant: check OATHDESK_ENTRA_CLIENT_ID and OATHDESK_ENTRA_TENANT"
        }
        "AADSTS90002" | "AADSTS900023" => "the tenant does not exist: check OATHDESK_ENTRA_TENANT",
        "AADSTS700027" | "AADSTS700023" => {
            "the certificate is not registered for this app, or the assertion was refused: upload \
             the certificate (public part) under App registrations → Certificates & secrets"
        }
        "AADSTS7000218" => {
            "the app needs a credential: set OATHDESK_ENTRA_CLIENT_SECRET or a certificate file, or \
             allow public client flows for device-code sign-in"
        }
        "AADSTS65001" => "admin consent is missing for the permissions oathdesk asks for",
        _ => "",
    };
    match (advice.is_empty(), first.is_empty()) {
        (true, true) => error.to_owned(),
        (true, false) => format!("{error}: {first}"),
        (false, _) => format!("{advice} ({first})"),
    }
}

/// Signs an app or an admin in against one tenant.
pub struct SignIn<'h> {
    http: &'h Http,
    endpoints: Endpoints,
    client_id: String,
    credential: Option<ClientCredential>,
}

impl<'h> SignIn<'h> {
    pub fn new(
        http: &'h Http,
        endpoints: Endpoints,
        client_id: &str,
        credential: Option<ClientCredential>,
    ) -> Result<SignIn<'h>> {
        let client_id = client_id.trim();
        if client_id.is_empty() {
            return Err(Error::Config(
                "no client id: set OATHDESK_ENTRA_CLIENT_ID to the app registration's Application (client) ID"
                    .into(),
            ));
        }
        Ok(SignIn {
            http,
            endpoints,
            client_id: client_id.to_owned(),
            credential,
        })
    }

    /// The endpoints signed in to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The app's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the app has a credential (client credentials possible).
    pub fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    /// The key of this app's tokens in a cache.
    pub fn cache_key(&self, delegated: bool) -> String {
        format!(
            "{}|{}|{}|{}",
            self.endpoints.authority,
            self.endpoints.tenant,
            self.client_id,
            if delegated { "delegated" } else { "app" }
        )
    }

    /// The app's credential as form fields.
    fn credential_fields(&self, now: u64) -> Result<Vec<(&'static str, Zeroizing<String>)>> {
        Ok(match &self.credential {
            Some(ClientCredential::Secret(secret)) => vec![("client_secret", secret.clone())],
            Some(ClientCredential::Certificate(certificate)) => vec![
                (
                    "client_assertion_type",
                    Zeroizing::new("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
                ),
                (
                    "client_assertion",
                    certificate.assertion(&self.client_id, &self.endpoints.token_url(), now)?,
                ),
            ],
            None => Vec::new(),
        })
    }

    fn form(
        &self,
        fields: &[(&str, &str)],
        secret_fields: &[(&'static str, Zeroizing<String>)],
    ) -> Zeroizing<String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("client_id", &self.client_id);
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        for (name, value) in secret_fields {
            form.append_pair(name, value);
        }
        Zeroizing::new(form.finish())
    }

    /// Posts a form to the token endpoint.
    fn token_request(
        &self,
        form: &Zeroizing<String>,
        now: u64,
    ) -> Result<std::result::Result<Token, OAuthError>> {
        let answer = self.http.send(
            Operation::SignIn,
            Method::Post,
            &self.endpoints.token_url(),
            None,
            &Body::Form(form),
        )?;
        if answer.ok() {
            let token: TokenAnswer = answer.json(Operation::SignIn)?;
            Ok(Ok(Token {
                access_token: token.access_token,
                expires_at: now + token.expires_in.unwrap_or(3600),
                refresh_token: token.refresh_token,
                account: token.id_token.as_deref().and_then(account_of_id_token),
            }))
        } else {
            Ok(Err(serde_json::from_str(&answer.body).unwrap_or(
                OAuthError {
                    error: format!("HTTP {}", answer.status),
                    error_description: String::new(),
                },
            )))
        }
    }

    /// An app-only token (client credentials grant).
    pub fn client_credentials(&self, now: u64) -> Result<Token> {
        if self.credential.is_none() {
            return Err(Error::Config(
                "no app credential: set OATHDESK_ENTRA_CLIENT_SECRET, or OATHDESK_ENTRA_CERTIFICATE \
                 to a PEM file with the certificate and its private key, or sign in as a person \
                 with 'oathdesk entra login --device-code'"
                    .into(),
            ));
        }
        let scope = self.endpoints.app_scope();
        let form = self.form(
            &[("scope", &scope), ("grant_type", "client_credentials")],
            &self.credential_fields(now)?,
        );
        self.token_request(&form, now)?
            .map_err(|e| Error::SignIn(explain_sign_in_error(&e.error, &e.error_description)))
    }

    /// Renews a delegated token with its refresh token.
    pub fn refresh(&self, refresh_token: &str, now: u64) -> Result<Token> {
        let scope = self.endpoints.delegated_scopes();
        let mut secret_fields = self.credential_fields(now)?;
        secret_fields.push(("refresh_token", Zeroizing::new(refresh_token.to_owned())));
        let form = self.form(
            &[("scope", &scope), ("grant_type", "refresh_token")],
            &secret_fields,
        );
        self.token_request(&form, now)?.map_err(|e| {
            Error::SignIn(format!(
                "{}; sign in again with 'oathdesk entra login --device-code'",
                explain_sign_in_error(&e.error, &e.error_description)
            ))
        })
    }

    /// Starts a device-code sign-in: show [`DeviceCode::message`] to the
    /// admin, then call [`SignIn::poll_device_code`].
    pub fn start_device_code(&self) -> Result<DeviceCode> {
        let scope = self.endpoints.delegated_scopes();
        let form = self.form(&[("scope", &scope)], &[]);
        let answer = self.http.send(
            Operation::SignIn,
            Method::Post,
            &self.endpoints.device_code_url(),
            None,
            &Body::Form(&form),
        )?;
        if !answer.ok() {
            let e: OAuthError = serde_json::from_str(&answer.body).unwrap_or_default();
            return Err(Error::SignIn(explain_sign_in_error(
                &e.error,
                &e.error_description,
            )));
        }
        answer.json(Operation::SignIn)
    }

    /// Polls until the admin completed the sign-in, declined, or the code
    /// expired. `now` gives the time, `sleep` waits (tests pass fast ones).
    pub fn poll_device_code(
        &self,
        code: &DeviceCode,
        now: &dyn Fn() -> u64,
        sleep: &dyn Fn(Duration),
    ) -> Result<Token> {
        let started = now();
        let mut interval = code.interval.max(1);
        loop {
            let mut fields = self.credential_fields(now())?;
            fields.push(("device_code", code.device_code.clone()));
            let form = self.form(
                &[("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
                &fields,
            );
            match self.token_request(&form, now())? {
                Ok(token) => return Ok(token),
                Err(e) => match e.error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => interval += 5,
                    "authorization_declined" => {
                        return Err(Error::SignIn("the sign-in was declined".into()));
                    }
                    "expired_token" => {
                        return Err(Error::SignIn(
                            "the code expired before the sign-in was completed; run the login again"
                                .into(),
                        ));
                    }
                    _ => {
                        return Err(Error::SignIn(explain_sign_in_error(
                            &e.error,
                            &e.error_description,
                        )));
                    }
                },
            }
            if now().saturating_sub(started) > code.expires_in {
                return Err(Error::SignIn(
                    "the code expired before the sign-in was completed; run the login again".into(),
                ));
            }
            sleep(Duration::from_secs(interval));
        }
    }
}

/// The `preferred_username` of an ID token (its payload is read, not
/// verified: it only labels the cache entry for `entra status`).
fn account_of_id_token(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.trim_end_matches('=').as_bytes())
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("preferred_username")
        .or_else(|| claims.get("upn"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// Tokens by app and kind, as stored between runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenCache {
    #[serde(default)]
    pub tokens: BTreeMap<String, Token>,
}

impl TokenCache {
    /// Reads a cache file's contents; an unreadable cache is an empty one
    /// (tokens can always be fetched again).
    pub fn from_bytes(bytes: &[u8]) -> TokenCache {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// The cache as file contents. Holds tokens: keep it owner-only.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(serde_json::to_vec_pretty(self).unwrap_or_default())
    }
}

/// Hands Graph calls a valid token: from the cache, renewed by refresh
/// token, or fetched with client credentials.
pub struct Authenticator<'h> {
    sign_in: SignIn<'h>,
    delegated: bool,
    cache: Mutex<TokenCache>,
    changed: std::sync::atomic::AtomicBool,
}

impl<'h> Authenticator<'h> {
    /// `delegated`: use the admin's device-code sign-in (its refresh token)
    /// rather than the app's own credential.
    pub fn new(sign_in: SignIn<'h>, delegated: bool, cache: TokenCache) -> Authenticator<'h> {
        Authenticator {
            sign_in,
            delegated,
            cache: Mutex::new(cache),
            changed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The sign-in settings.
    pub fn sign_in(&self) -> &SignIn<'h> {
        &self.sign_in
    }

    /// Whether tokens come from a person's sign-in.
    pub fn delegated(&self) -> bool {
        self.delegated
    }

    /// The cache, if a token was fetched since it was loaded (to be saved).
    pub fn changed_cache(&self) -> Option<TokenCache> {
        self.changed
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| self.cache.lock().expect("token cache lock").clone())
    }

    /// Stores a token got elsewhere (the device-code login).
    pub fn store(&self, token: Token) {
        let key = self.sign_in.cache_key(self.delegated);
        self.cache
            .lock()
            .expect("token cache lock")
            .tokens
            .insert(key, token);
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The cached token, whatever its age.
    pub fn cached(&self) -> Option<Token> {
        let key = self.sign_in.cache_key(self.delegated);
        self.cache
            .lock()
            .expect("token cache lock")
            .tokens
            .get(&key)
            .cloned()
    }

    /// A token valid for at least a minute. `renew` skips a cached access
    /// token (Graph refused it).
    pub fn token(&self, now: u64, renew: bool) -> Result<Zeroizing<String>> {
        let cached = self.cached();
        if let Some(token) = &cached
            && !renew
            && token.fresh_at(now)
        {
            return Ok(token.access_token.clone());
        }
        let token = if self.delegated {
            let refresh = cached.and_then(|t| t.refresh_token).ok_or_else(|| {
                Error::Config(
                    "nobody is signed in: run 'oathdesk entra login --device-code' first".into(),
                )
            })?;
            let mut token = self.sign_in.refresh(&refresh, now)?;
            if token.refresh_token.is_none() {
                token.refresh_token = Some(refresh);
            }
            token
        } else {
            self.sign_in.client_credentials(now)?
        };
        let access = token.access_token.clone();
        self.store(token);
        Ok(access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_refuse_plain_http_except_loopback() {
        let e = Endpoints::new(
            "https://login.microsoftonline.us/",
            "https://graph.microsoft.us",
            "contoso.onmicrosoft.com",
        )
        .unwrap();
        assert_eq!(
            e.token_url(),
            "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(e.app_scope(), "https://graph.microsoft.us/.default");
        assert!(e.delegated_scopes().ends_with(" offline_access"));
        assert!(Endpoints::new("http://127.0.0.1:9", "http://localhost:9/", "t").is_ok());
        let err = Endpoints::new("http://login.example", DEFAULT_GRAPH, "t").unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
        assert!(Endpoints::new("http://127.0.0.1.evil.example", DEFAULT_GRAPH, "t").is_err());
        assert!(Endpoints::new(DEFAULT_AUTHORITY, DEFAULT_GRAPH, "a/b").is_err());
    }

    #[test]
    fn sign_in_errors_become_advice() {
        let text = explain_sign_in_error(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent ...\r\nTrace ID: x",
        );
        assert!(text.contains("OATHDESK_ENTRA_CLIENT_SECRET"), "{text}");
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(!text.contains("Trace ID"), "{text}");
        assert_eq!(explain_sign_in_error("invalid_grant", ""), "invalid_grant");
    }

    #[test]
    fn tokens_are_redacted_and_cached_by_app() {
        let token = Token {
            access_token: Zeroizing::new("eyJ.secret.token".into()),
            expires_at: 1000,
            refresh_token: Some(Zeroizing::new("refresh-secret".into())),
            account: Some("admin@contoso.com".into()),
        };
        let debug = format!("{token:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(token.fresh_at(939) && !token.fresh_at(940));
        let mut cache = TokenCache::default();
        cache.tokens.insert("k".into(), token.clone());
        let back = TokenCache::from_bytes(&cache.to_bytes());
        assert_eq!(back.tokens["k"], token);
        assert_eq!(TokenCache::from_bytes(b"garbage"), TokenCache::default());
    }

    #[test]
    fn id_token_names_the_account() {
        let payload =
            data_encoding::BASE64URL_NOPAD.encode(br#"{"preferred_username":"admin@contoso.com"}"#);
        assert_eq!(
            account_of_id_token(&format!("e30.{payload}.sig")).as_deref(),
            Some("admin@contoso.com")
        );
        assert_eq!(account_of_id_token("nonsense"), None);
    }
}
