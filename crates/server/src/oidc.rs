//! OpenID Connect: staff sign in with their organisation's identity.
//!
//! The authorization code flow with PKCE (RFC 7636, S256) against one
//! provider (`--oidc-issuer`): the console sends the browser to the
//! provider with a fresh `state`, `nonce` and code challenge, the provider
//! sends it back with a code, and the console exchanges the code for an ID
//! token (client secret or certificate — `private_key_jwt`). The ID token
//! is checked with the `jsonwebtoken` crate: signature by a key the
//! provider publishes (its JWKS, fetched again when a token names an
//! unknown `kid`, at most once per [`OidcClient::refetch_every`]), issuer,
//! audience (our client id), expiry and not-before (a minute's leeway),
//! and the nonce of this sign-in, which works once.
//!
//! What the identity may do is the vault's decision
//! (`oathdesk_vault::oidc`): mapped groups or app roles, helpdesk and
//! auditor only, and only at an unsealed console. Pending sign-ins live in
//! this process's memory: behind a load balancer the callback must reach
//! the console that started the sign-in (sticky sessions).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oathdesk_entra::auth::ClientCredential;
use oathdesk_vault::oidc::OidcIdentity;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long a started sign-in waits for the provider's answer.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Started sign-ins kept at most (a flood of `/oidc/login` evicts the oldest).
const PENDING_MAX: usize = 10_000;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 60;

/// How the console talks to its identity provider (`serve --oidc-…`).
pub struct OidcConfig {
    /// The provider's issuer (`https://login.microsoftonline.com/TENANT/v2.0`).
    pub issuer: String,
    pub client_id: String,
    /// A client secret or a certificate; `None` for a public client.
    pub credential: Option<ClientCredential>,
    /// This console's callback as registered at the provider
    /// (`https://desk.example.org/oidc/callback`).
    pub redirect_url: String,
}

/// Why a sign-in through the provider failed, in words for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcError(pub String);

impl std::fmt::Display for OidcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(message: impl Into<String>) -> OidcError {
    OidcError(message.into())
}

/// The parts of the provider's discovery document the console uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

struct Pending {
    nonce: String,
    verifier: String,
    started: Instant,
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// The console's OpenID Connect client.
pub struct OidcClient {
    pub config: OidcConfig,
    agent: ureq::Agent,
    discovery: Mutex<Option<Discovery>>,
    keys: Mutex<Option<Keys>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// The least time between two fetches of the keys for an unknown
    /// `kid` (someone sending tokens with made-up kids must not make us
    /// hammer the provider).
    pub refetch_every: Duration,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("credential", &self.config.credential)
            .finish_non_exhaustive()
    }
}

/// Where to send the browser, and the `state` it comes back with.
pub struct Started {
    pub url: String,
    pub state: String,
}

fn random_text(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the system's random generator");
    data_encoding::BASE64URL_NOPAD.encode(&buffer)
}

/// The S256 code challenge of a verifier (RFC 7636 §4.2).
pub fn code_challenge(verifier: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()))
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!(
        "{base}{}{query}",
        if base.contains('?') { '&' } else { '?' }
    )
}

impl OidcClient {
    pub fn new(config: OidcConfig) -> OidcClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(20)))
            .user_agent(concat!("oathdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        OidcClient {
            config,
            agent,
            discovery: Mutex::new(None),
            keys: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            refetch_every: Duration::from_secs(60),
        }
    }

    fn get_json(&self, url: &str, what: &str) -> Result<Value, OidcError> {
        let mut response = self.agent.get(url).call().map_err(|e| {
            fail(format!(
                "the identity provider's {what} is unreachable: {e}"
            ))
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| fail(format!("the identity provider's {what} broke off: {e}")))?;
        if status != 200 {
            return Err(fail(format!(
                "the identity provider's {what} answered {status}"
            )));
        }
        serde_json::from_str(&body)
            .map_err(|e| fail(format!("the identity provider's {what} is not JSON: {e}")))
    }

    /// The discovery document, fetched once (blocking).
    pub fn discovery(&self) -> Result<Discovery, OidcError> {
        if let Some(found) = self.discovery.lock().expect("discovery").clone() {
            return Ok(found);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let value = self.get_json(&url, "discovery document")?;
        let found: Discovery = serde_json::from_value(value).map_err(|e| {
            fail(format!(
                "the discovery document at {url} lacks what OpenID Connect needs: {e}"
            ))
        })?;
        if found.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(fail(format!(
                "the discovery document names the issuer '{}', not '{}': check --oidc-issuer",
                found.issuer, self.config.issuer
            )));
        }
        *self.discovery.lock().expect("discovery") = Some(found.clone());
        Ok(found)
    }

    /// Where sign-out sends the browser so that the provider's session
    /// ends too (RP-initiated logout), if the provider advertises it; it
    /// comes back to this console's sign-in page.
    pub fn end_session_url(&self) -> Option<String> {
        let endpoint = self.discovery().ok()?.end_session_endpoint?;
        let redirect = &self.config.redirect_url;
        let origin_end = redirect
            .find("://")
            .and_then(|scheme| redirect[scheme + 3..].find('/').map(|p| p + scheme + 3))
            .unwrap_or(redirect.len());
        let back = format!("{}/login", &redirect[..origin_end]);
        Some(with_query(
            &endpoint,
            &[
                ("client_id", &self.config.client_id),
                ("post_logout_redirect_uri", &back),
            ],
        ))
    }

    /// Starts a sign-in: remembers a fresh state, nonce and PKCE verifier
    /// and says where to send the browser.
    pub fn start(&self) -> Result<Started, OidcError> {
        let discovery = self.discovery()?;
        let state = random_text(32);
        let nonce = random_text(32);
        let verifier = random_text(32);
        let url = with_query(
            &discovery.authorization_endpoint,
            &[
                ("client_id", &self.config.client_id),
                ("response_type", "code"),
                ("redirect_uri", &self.config.redirect_url),
                ("response_mode", "query"),
                ("scope", "openid profile email"),
                ("state", &state),
                ("nonce", &nonce),
                ("code_challenge", &code_challenge(&verifier)),
                ("code_challenge_method", "S256"),
            ],
        );
        let mut pending = self.pending.lock().expect("pending sign-ins");
        pending.retain(|_, p| p.started.elapsed() < PENDING_LIFETIME);
        if pending.len() >= PENDING_MAX
            && let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(
            state.clone(),
            Pending {
                nonce,
                verifier,
                started: Instant::now(),
            },
        );
        Ok(Started { url, state })
    }

    /// Finishes a sign-in: the `state` must be one this console started
    /// (it works once), the code is exchanged and the ID token checked.
    /// Blocking.
    pub fn finish(&self, state: &str, code: &str, now: u64) -> Result<OidcIdentity, OidcError> {
        let pending = self
            .pending
            .lock()
            .expect("pending sign-ins")
            .remove(state)
            .filter(|p| p.started.elapsed() < PENDING_LIFETIME)
            .ok_or_else(|| {
                fail(
                    "this sign-in is unknown, was used already or took longer than ten \
                     minutes: start again",
                )
            })?;
        let discovery = self.discovery()?;
        let id_token = self.exchange(&discovery, code, &pending.verifier, now)?;
        self.verify(&discovery, &id_token, &pending.nonce, now)
    }

    fn exchange(
        &self,
        discovery: &Discovery,
        code: &str,
        verifier: &str,
        now: u64,
    ) -> Result<String, OidcError> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("client_id", self.config.client_id.clone()),
            ("code", code.into()),
            ("redirect_uri", self.config.redirect_url.clone()),
            ("code_verifier", verifier.into()),
        ];
        match &self.config.credential {
            Some(ClientCredential::Secret(secret)) => {
                form.push(("client_secret", secret.as_str().to_owned()))
            }
            Some(ClientCredential::Certificate(certificate)) => {
                let assertion = certificate
                    .assertion(&self.config.client_id, &discovery.token_endpoint, now)
                    .map_err(|e| fail(e.to_string()))?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion.as_str().to_owned()));
            }
            None => {}
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let mut response = self
            .agent
            .post(&discovery.token_endpoint)
            .content_type("application/x-www-form-urlencoded")
            .send(body.as_bytes())
            .map_err(|e| {
                fail(format!(
                    "the identity provider's token endpoint is unreachable: {e}"
                ))
            })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| fail(format!("the token endpoint's answer broke off: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            // The provider's words (no secret in them), for the admin.
            let why = value["error_description"]
                .as_str()
                .or(value["error"].as_str())
                .unwrap_or("no reason given");
            return Err(fail(format!(
                "the identity provider refused the sign-in code ({status}): {why}"
            )));
        }
        value["id_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| fail("the identity provider sent no ID token"))
    }

    /// The published key named `kid`, fetching the keys again if it is
    /// unknown and the last fetch is old enough.
    fn key(&self, discovery: &Discovery, kid: &str) -> Result<DecodingKey, OidcError> {
        let mut keys = self.keys.lock().expect("provider keys");
        let known = keys.as_ref().and_then(|k| k.set.find(kid).cloned());
        let jwk = match known {
            Some(jwk) => jwk,
            None => {
                let may_fetch = keys
                    .as_ref()
                    .is_none_or(|k| k.fetched.elapsed() >= self.refetch_every);
                if !may_fetch {
                    return Err(fail(format!(
                        "the ID token is signed with a key ('{kid}') the identity provider does \
                         not publish"
                    )));
                }
                let value = self.get_json(&discovery.jwks_uri, "key set")?;
                let set: JwkSet = serde_json::from_value(value).map_err(|e| {
                    fail(format!(
                        "the identity provider's key set is unreadable: {e}"
                    ))
                })?;
                let found = set.find(kid).cloned();
                *keys = Some(Keys {
                    set,
                    fetched: Instant::now(),
                });
                found.ok_or_else(|| {
                    fail(format!(
                        "the ID token is signed with a key ('{kid}') the identity provider does \
                         not publish"
                    ))
                })?
            }
        };
        DecodingKey::from_jwk(&jwk)
            .map_err(|e| fail(format!("the provider's key '{kid}' is unusable: {e}")))
    }

    /// Checks an ID token and reads the identity from it.
    pub fn verify(
        &self,
        discovery: &Discovery,
        id_token: &str,
        nonce: &str,
        now: u64,
    ) -> Result<OidcIdentity, OidcError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| fail("the ID token is not a signed JWT"))?;
        if header.alg != Algorithm::RS256 {
            return Err(fail(format!(
                "the ID token is signed with {:?}; the console accepts RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| fail("the ID token names no signing key (kid)"))?;
        let key = self.key(discovery, &kid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&discovery.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        // Expiry is checked below against the caller's clock.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .map_err(|e| fail(format!("the ID token is refused: {}", describe(&e))))?
            .claims;
        identity_of(&claims, nonce, now)
    }
}

fn describe(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::InvalidSignature => "its signature does not match (it was altered or forged)",
        K::InvalidIssuer => "it was issued by another provider",
        K::InvalidAudience => "it was issued for another app",
        K::ImmatureSignature => "it is not valid yet",
        K::ExpiredSignature => "it has expired",
        K::MissingRequiredClaim(_) => "it lacks a required claim",
        _ => "it is malformed",
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The identity in checked claims: expiry and nonce here (pure).
pub fn identity_of(claims: &Value, nonce: &str, now: u64) -> Result<OidcIdentity, OidcError> {
    let expires_at = claims["exp"].as_u64().unwrap_or(0);
    if expires_at.saturating_add(LEEWAY) <= now {
        return Err(fail("the ID token is refused: it has expired"));
    }
    if claims["nonce"].as_str() != Some(nonce) {
        return Err(fail(
            "the ID token is refused: it belongs to another sign-in (its nonce does not match)",
        ));
    }
    if claims
        .get("_claim_names")
        .is_some_and(|c| c.get("groups").is_some())
    {
        return Err(fail(
            "the user is in too many groups for the ID token to list them: have the app \
             registration emit only the groups assigned to the application",
        ));
    }
    let username = ["preferred_username", "email", "upn"]
        .iter()
        .find_map(|name| claims[*name].as_str().filter(|s| !s.trim().is_empty()))
        .ok_or_else(|| {
            fail("the ID token carries no user name (preferred_username or email): add the profile or email scope")
        })?;
    Ok(OidcIdentity {
        issuer: claims["iss"].as_str().unwrap_or_default().to_owned(),
        subject: claims["sub"].as_str().unwrap_or_default().to_owned(),
        username: username.trim().to_owned(),
        groups: strings(&claims["groups"]),
        app_roles: strings(&claims["roles"]),
        // A session never outlives the token, even within the leeway.
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pkce_challenge_is_rfc_7636_s256() {
        // RFC 7636 appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn claims_give_an_identity_only_with_their_nonce_and_in_time() {
        let claims = json!({"iss": "https://idp/v2.0", "sub": "s1", "exp": 1000,
            "nonce": "n1", "preferred_username": "bob@example.org",
            "groups": ["g1", 7], "roles": ["Desk"]});
        let who = identity_of(&claims, "n1", 900).unwrap();
        assert_eq!(who.username, "bob@example.org");
        assert_eq!(who.groups, vec!["g1".to_owned()]);
        assert_eq!(who.app_roles, vec!["Desk".to_owned()]);
        assert_eq!(who.expires_at, 1000);
        assert!(
            identity_of(&claims, "n2", 900)
                .unwrap_err()
                .0
                .contains("nonce")
        );
        assert!(
            identity_of(&claims, "n1", 1060)
                .unwrap_err()
                .0
                .contains("expired")
        );
        let overage = json!({"exp": 1000, "nonce": "n1", "preferred_username": "x",
            "_claim_names": {"groups": "src1"}});
        assert!(
            identity_of(&overage, "n1", 900)
                .unwrap_err()
                .0
                .contains("too many groups")
        );
    }
}
