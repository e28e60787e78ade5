//! OpenID Connect sign-in for apps (the web console): discovery, the
//! signing keys (JWKS), the authorization endpoint, the authorization-code
//! grant with PKCE and signed ID tokens (RS256), sign-out, and a key
//! rotation.
//!
//! As Entra documents it (Microsoft identity platform, "OpenID Connect on
//! the Microsoft identity platform"): the issuer is
//! `{authority}/{tenant}/v2.0`, the keys are at
//! `{authority}/{tenant}/discovery/v2.0/keys`, an ID token carries `iss`,
//! `aud` (the client id), `sub`, `oid`, `tid`, `preferred_username`,
//! `name`, `nonce`, `groups` (group object ids, when the app asks for group
//! claims) and `roles` (app roles), and the `kid` header names the key.
//!
//! *Inference*: the simulator has no sign-in page. A test says who is
//! signed in at the "browser" ([`Simulator::oidc_sign_in_as`]); the
//! authorization endpoint consents for them at once, or answers the
//! redirect URI with `error=login_required` when nobody is. The keys are
//! fixed RSA keys (generating RSA keys takes long without optimisation):
//! the first signs until a rotation, which signs with the other and
//! publishes both; a third is never published.

use std::collections::HashMap;

use serde_json::{Value, json};
use sha2::Digest;

use crate::Simulator;
use crate::server::{Reply, parse_query, random_hex};
use crate::state::State;

struct SigningKey {
    kid: &'static str,
    pem: &'static str,
    /// The modulus, base64url (the exponent is 65537: `AQAB`).
    n: &'static str,
}

const KEYS: [SigningKey; 3] = [
    SigningKey {
        kid: "sim-key-1",
        pem: include_str!("oidc_keys/key1.pem"),
        n: include_str!("oidc_keys/n1.b64u"),
    },
    SigningKey {
        kid: "sim-key-2",
        pem: include_str!("oidc_keys/key2.pem"),
        n: include_str!("oidc_keys/n2.b64u"),
    },
    SigningKey {
        kid: "sim-key-3",
        pem: include_str!("oidc_keys/key3.pem"),
        n: include_str!("oidc_keys/n3.b64u"),
    },
];

/// How the token endpoint spoils its next ID token, for tests of the
/// client's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTokenFault {
    /// A claim changed after signing (`preferred_username`).
    Tampered,
    /// Already expired when issued.
    Expired,
    /// For another app (`aud`).
    WrongAudience,
    /// Signed with a key the JWKS does not publish.
    UnpublishedKey,
    /// The ID token of the previous sign-in again (its nonce is old).
    Replayed,
}

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    user_id: String,
    nonce: Option<String>,
    challenge: Option<String>,
    expires_at: u64,
}

/// The simulator's OpenID Connect state.
#[derive(Default)]
pub(crate) struct Oidc {
    /// Index into [`KEYS`] of the key that signs (0 or 1; 2 is never published).
    active: usize,
    rotations: usize,
    /// Who is signed in at the browser (a user id).
    browser_user: Option<String>,
    /// Group object ids per user id.
    groups: HashMap<String, Vec<String>>,
    /// App roles per user id.
    app_roles: HashMap<String, Vec<String>>,
    codes: HashMap<String, AuthCode>,
    /// Seconds an ID token lasts.
    lifetime: Option<u64>,
    fault: Option<IdTokenFault>,
    last_id_token: Option<String>,
    /// `post_logout_redirect_uri`s of the sign-outs so far.
    pub(crate) sign_outs: Vec<String>,
}

impl Simulator {
    /// Signs `upn` in at the "browser": the authorization endpoint consents
    /// for them from now on.
    pub fn oidc_sign_in_as(&self, upn: &str) {
        let mut state = self.state();
        let id = state.find_user(upn).map(|u| u.id.clone());
        assert!(id.is_some(), "no user {upn} in the simulator");
        state.oidc.browser_user = id;
    }

    /// The group object ids the user's ID tokens carry.
    pub fn set_groups(&self, upn: &str, groups: &[&str]) {
        let mut state = self.state();
        let id = state.find_user(upn).expect("a simulator user").id.clone();
        state
            .oidc
            .groups
            .insert(id, groups.iter().map(|g| g.to_string()).collect());
    }

    /// The app roles (`roles` claim) the user's ID tokens carry.
    pub fn set_app_roles(&self, upn: &str, roles: &[&str]) {
        let mut state = self.state();
        let id = state.find_user(upn).expect("a simulator user").id.clone();
        state
            .oidc
            .app_roles
            .insert(id, roles.iter().map(|g| g.to_string()).collect());
    }

    /// Seconds the next ID tokens last (default: an hour).
    pub fn set_id_token_lifetime(&self, seconds: u64) {
        self.state().oidc.lifetime = Some(seconds);
    }

    /// Spoils the next ID token the token endpoint issues.
    pub fn spoil_next_id_token(&self, fault: IdTokenFault) {
        self.state().oidc.fault = Some(fault);
    }

    /// Rotates the signing key: new tokens are signed with the next key,
    /// which the JWKS publishes with the previous one. Returns its `kid`.
    pub fn rotate_signing_key(&self) -> &'static str {
        let mut state = self.state();
        state.oidc.active = (state.oidc.active + 1) % 2;
        state.oidc.rotations += 1;
        KEYS[state.oidc.active].kid
    }

    /// The `kid` of the key that signs now.
    pub fn signing_kid(&self) -> &'static str {
        KEYS[self.state().oidc.active].kid
    }

    /// The issuer of the tenant's ID tokens.
    pub fn oidc_issuer(&self) -> String {
        format!("{}/{}/v2.0", self.url(), self.tenant())
    }

    /// Where the sign-outs so far were sent back to.
    pub fn oidc_sign_outs(&self) -> Vec<String> {
        self.state().oidc.sign_outs.clone()
    }
}

fn redirect(to: &str, pairs: &[(&str, &str)]) -> Reply {
    let mut url = to.to_owned();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&query);
    Reply::redirect(&url)
}

impl State {
    fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.url, self.tenant)
    }

    /// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
    pub(crate) fn oidc_discovery(&self) -> Reply {
        let base = format!("{}/{}", self.url, self.tenant);
        Reply::json(
            200,
            json!({
                "issuer": self.issuer(),
                "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
                "token_endpoint": format!("{base}/oauth2/v2.0/token"),
                "jwks_uri": format!("{base}/discovery/v2.0/keys"),
                "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
                "response_types_supported": ["code", "id_token", "code id_token"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported":
                    ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce",
                    "preferred_username", "name", "oid", "tid", "groups", "roles"],
            }),
        )
    }

    /// `GET /{tenant}/discovery/v2.0/keys`: the signing key and the one
    /// before it (a client that cached the old set meets an unknown `kid`
    /// after a rotation and fetches again).
    pub(crate) fn oidc_keys(&self) -> Reply {
        let published = match self.oidc.rotations {
            0 => vec![self.oidc.active],
            _ => vec![self.oidc.active, 1 - self.oidc.active],
        };
        let keys: Vec<Value> = published
            .into_iter()
            .map(|i| {
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KEYS[i].kid,
                    "n": KEYS[i].n.trim(), "e": "AQAB"})
            })
            .collect();
        Reply::json(200, json!({ "keys": keys }))
    }

    /// `GET /{tenant}/oauth2/v2.0/authorize`.
    pub(crate) fn oidc_authorize(&mut self, query: &str) -> Reply {
        let query = parse_query(query);
        let get = |name: &str| query.get(name).cloned().unwrap_or_default();
        let client_id = get("client_id");
        let redirect_uri = get("redirect_uri");
        if !self.apps.contains_key(&client_id) {
            return Reply::oauth(
                400,
                "unauthorized_client",
                &format!(
                    "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
                ),
            );
        }
        if !redirect_uri.starts_with("http") {
            return Reply::oauth(
                400,
                "invalid_request",
                "AADSTS50011: The redirect URI specified in the request does not match.",
            );
        }
        let state = get("state");
        if get("response_type") != "code" || !get("scope").split(' ').any(|s| s == "openid") {
            return redirect(
                &redirect_uri,
                &[("error", "unsupported_response_type"), ("state", &state)],
            );
        }
        let Some(user_id) = self.oidc.browser_user.clone() else {
            return redirect(
                &redirect_uri,
                &[("error", "login_required"), ("state", &state)],
            );
        };
        let challenge = match query.get("code_challenge_method").map(String::as_str) {
            Some("S256") | None => query.get("code_challenge").cloned(),
            Some(_) => {
                return redirect(
                    &redirect_uri,
                    &[("error", "invalid_request"), ("state", &state)],
                );
            }
        };
        let code = format!("simcode.{}", random_hex(24));
        let now = self.now();
        self.oidc.codes.insert(
            code.clone(),
            AuthCode {
                client_id,
                redirect_uri: redirect_uri.clone(),
                user_id,
                nonce: query.get("nonce").cloned(),
                challenge,
                expires_at: now + 600,
            },
        );
        redirect(&redirect_uri, &[("code", &code), ("state", &state)])
    }

    /// `GET /{tenant}/oauth2/v2.0/logout`: signs the browser out and goes
    /// back to `post_logout_redirect_uri`.
    pub(crate) fn oidc_logout(&mut self, query: &str) -> Reply {
        let query = parse_query(query);
        self.oidc.browser_user = None;
        let back = query
            .get("post_logout_redirect_uri")
            .cloned()
            .unwrap_or_default();
        self.oidc.sign_outs.push(back.clone());
        if back.is_empty() {
            Reply::json(200, json!({"signed_out": true}))
        } else {
            Reply::redirect(&back)
        }
    }

    /// The authorization-code grant of the token endpoint (the client was
    /// checked by the caller).
    pub(crate) fn oidc_code_grant(
        &mut self,
        tenant: &str,
        form: &HashMap<String, String>,
        now: u64,
    ) -> Reply {
        let invalid = |why: &str| Reply::oauth(400, "invalid_grant", why);
        let code = form.get("code").cloned().unwrap_or_default();
        // A code works once.
        let Some(grant) = self.oidc.codes.remove(&code) else {
            return invalid("AADSTS70008: The provided authorization code is expired or was used.");
        };
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        if grant.client_id != client_id || grant.expires_at <= now {
            return invalid(
                "AADSTS70008: The authorization code was issued to another client or has expired.",
            );
        }
        if form.get("redirect_uri") != Some(&grant.redirect_uri) {
            return invalid(
                "AADSTS50148: The redirect_uri does not match the authorization request.",
            );
        }
        if let Some(challenge) = &grant.challenge {
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let computed =
                data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha256::digest(verifier.as_bytes()));
            if &computed != challenge {
                return invalid(
                    "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                );
            }
        }
        let Some(user) = self.users.get(&grant.user_id) else {
            return invalid("AADSTS50034: The user account does not exist in the directory.");
        };
        let fault = self.oidc.fault.take();
        let lifetime = self.oidc.lifetime.unwrap_or(3600);
        let mut claims = json!({
            "ver": "2.0",
            "iss": self.issuer(),
            "aud": if fault == Some(IdTokenFault::WrongAudience) { "another-app".to_owned() } else { client_id.clone() },
            "sub": format!("sub-{}", user.id),
            "oid": user.id,
            "tid": tenant,
            "preferred_username": user.upn,
            "name": user.display_name,
            "iat": now,
            "nbf": now,
            "exp": if fault == Some(IdTokenFault::Expired) { now - 600 } else { now + lifetime },
            "groups": self.oidc.groups.get(&user.id).cloned().unwrap_or_default(),
            "roles": self.oidc.app_roles.get(&user.id).cloned().unwrap_or_default(),
        });
        if let Some(nonce) = &grant.nonce {
            claims["nonce"] = json!(nonce);
        }
        let key = if fault == Some(IdTokenFault::UnpublishedKey) {
            &KEYS[2]
        } else {
            &KEYS[self.oidc.active]
        };
        let mut id_token = sign(key, &claims);
        if fault == Some(IdTokenFault::Tampered) {
            let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
            claims["preferred_username"] = json!("admin@contoso.example");
            parts[1] = data_encoding::BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
            id_token = parts.join(".");
        }
        if fault == Some(IdTokenFault::Replayed)
            && let Some(previous) = self.oidc.last_id_token.clone()
        {
            id_token = previous;
        } else if fault.is_none() {
            // Only a good token is worth replaying.
            self.oidc.last_id_token = Some(id_token.clone());
        }
        let access = format!("sim.{}", random_hex(24));
        Reply::json(
            200,
            json!({"token_type": "Bearer", "scope": "openid profile email", "expires_in": lifetime,
                "access_token": access, "id_token": id_token}),
        )
    }
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid.to_owned());
    let encoding =
        jsonwebtoken::EncodingKey::from_rsa_pem(key.pem.as_bytes()).expect("a fixed RSA key");
    jsonwebtoken::encode(&header, claims, &encoding).expect("an ID token signs")
}
