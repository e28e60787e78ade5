//! The sign-in service: client credentials (secret or certificate
//! assertion), the device-code flow, refresh tokens, and the bearer tokens
//! Graph requests carry.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::Simulator;
use crate::server::{Reply, form_pairs, random_hex};
use crate::state::State;

pub(crate) struct App {
    pub(crate) secret: Option<String>,
    /// The certificate's public key (PKCS#1 DER) and SHA-1 `x5t`.
    pub(crate) certificate: Option<(Vec<u8>, String)>,
    pub(crate) permissions: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) enum Principal {
    App { permissions: Vec<String> },
    User { user_id: String },
}

pub(crate) struct Grant {
    pub(crate) principal: Principal,
    pub(crate) expires_at: u64,
}

pub(crate) struct DeviceCodeGrant {
    pub(crate) client_id: String,
    pub(crate) user_code: String,
    pub(crate) approved_by: Option<String>,
    pub(crate) expires_at: u64,
}

impl Simulator {
    /// Registers an app with a client secret and application permissions.
    pub fn add_app(&self, client_id: &str, secret: &str, permissions: &[&str]) {
        self.state().apps.insert(
            client_id.into(),
            App {
                secret: Some(secret.into()),
                certificate: None,
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
            },
        );
    }

    /// Registers an app that proves itself with a certificate (PEM).
    pub fn add_certificate_app(
        &self,
        client_id: &str,
        certificate_pem: &str,
        permissions: &[&str],
    ) {
        use sha1::Digest;
        use x509_cert::der::{DecodePem, Encode};
        // The PEM may hold the private key too: take the certificate block.
        let begin = certificate_pem
            .find("-----BEGIN CERTIFICATE-----")
            .expect("a certificate block");
        let end = certificate_pem[begin..]
            .find("-----END CERTIFICATE-----")
            .map(|e| begin + e + "-----END CERTIFICATE-----".len())
            .expect("the end of the certificate block");
        let certificate = x509_cert::Certificate::from_pem(&certificate_pem.as_bytes()[begin..end])
            .expect("a PEM certificate");
        let der = certificate.to_der().expect("a certificate re-encodes");
        let x5t = data_encoding::BASE64URL_NOPAD.encode(&sha1::Sha1::digest(&der));
        let public_key = certificate
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        self.state().apps.insert(
            client_id.into(),
            App {
                secret: None,
                certificate: Some((public_key, x5t)),
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
            },
        );
    }

    /// Completes the sign-in of a shown device code as this user.
    pub fn approve_device_code(&self, user_code: &str, upn: &str) -> bool {
        let mut state = self.state();
        let Some(user_id) = state.find_user(upn).map(|u| u.id.clone()) else {
            return false;
        };
        match state
            .device_codes
            .values_mut()
            .find(|g| g.user_code == user_code)
        {
            Some(grant) => {
                grant.approved_by = Some(user_id);
                true
            }
            None => false,
        }
    }

    /// Approves every device code as this user, as soon as it is issued.
    pub fn auto_approve(&self, upn: &str) {
        let mut state = self.state();
        state.auto_approve = state.find_user(upn).map(|u| u.id.clone());
    }

    /// Lets every access token lapse (the client must renew).
    pub fn expire_tokens(&self) {
        for grant in self.state().grants.values_mut() {
            grant.expires_at = 0;
        }
    }
}

impl State {
    pub(crate) fn tenant_matches(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant) || tenant.eq_ignore_ascii_case(&self.domain)
    }

    pub(crate) fn token(&mut self, tenant: &str, body: &[u8]) -> Reply {
        let form = form_pairs(body);
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        let grant_type = form.get("grant_type").cloned().unwrap_or_default();
        let now = self.now();
        match grant_type.as_str() {
            "client_credentials" => {
                let Some(app) = self.apps.get(&client_id) else {
                    return Reply::oauth(
                        400,
                        "unauthorized_client",
                        &format!(
                            "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
                        ),
                    );
                };
                if !form.get("scope").is_some_and(|s| s.ends_with("/.default")) {
                    return Reply::oauth(
                        400,
                        "invalid_scope",
                        "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
                    );
                }
                if let Err(reply) = self.check_client(app, &client_id, tenant, &form, now) {
                    return reply;
                }
                let permissions = app.permissions.clone();
                let token = self.issue(Principal::App { permissions }, now);
                Reply::json(
                    200,
                    json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
                )
            }
            "urn:ietf:params:oauth:grant-type:device_code" => {
                let code = form.get("device_code").cloned().unwrap_or_default();
                let Some(grant) = self.device_codes.get(&code) else {
                    return Reply::oauth(
                        400,
                        "invalid_grant",
                        "AADSTS70000: The provided value for the device code is not valid.",
                    );
                };
                if grant.client_id != client_id {
                    return Reply::oauth(
                        400,
                        "invalid_grant",
                        "AADSTS70000: The device code was issued to another client.",
                    );
                }
                if grant.expires_at <= now {
                    return Reply::oauth(
                        400,
                        "expired_token",
                        "AADSTS70019: Verification code expired.",
                    );
                }
                let Some(user_id) = grant.approved_by.clone() else {
                    return Reply::oauth(
                        400,
                        "authorization_pending",
                        "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.",
                    );
                };
                self.device_codes.remove(&code);
                self.user_tokens(&user_id, now)
            }
            "authorization_code" => {
                let Some(app) = self.apps.get(&client_id) else {
                    return Reply::oauth(
                        400,
                        "unauthorized_client",
                        &format!(
                            "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
                        ),
                    );
                };
                if let Err(reply) = self.check_client(app, &client_id, tenant, &form, now) {
                    return reply;
                }
                self.oidc_code_grant(tenant, &form, now)
            }
            "refresh_token" => {
                let refresh = form.get("refresh_token").cloned().unwrap_or_default();
                let Some(user_id) = self.refresh_tokens.remove(&refresh) else {
                    return Reply::oauth(
                        400,
                        "invalid_grant",
                        "AADSTS700082: The refresh token has expired or is invalid.",
                    );
                };
                self.user_tokens(&user_id, now)
            }
            other => Reply::oauth(
                400,
                "unsupported_grant_type",
                &format!("AADSTS70003: The app requested an unsupported grant type '{other}'."),
            ),
        }
    }

    fn check_client(
        &self,
        app: &App,
        client_id: &str,
        tenant: &str,
        form: &HashMap<String, String>,
        now: u64,
    ) -> Result<(), Reply> {
        if let Some(given) = form.get("client_secret") {
            return match &app.secret {
                Some(secret) if secret == given => Ok(()),
                _ => Err(Reply::oauth(
                    401,
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                )),
            };
        }
        let Some(assertion) = form.get("client_assertion") else {
            return Err(Reply::oauth(
                401,
                "invalid_client",
                "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        };
        let refused = |why: &str| {
            Reply::oauth(
                401,
                "invalid_client",
                &format!(
                    "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application, or the assertion is invalid: {why}."
                ),
            )
        };
        let Some((public_key, x5t)) = &app.certificate else {
            return Err(refused("no certificate"));
        };
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| refused("unreadable"))?;
        if header.x5t.as_deref() != Some(x5t.as_str()) {
            return Err(refused("unknown x5t"));
        }
        let audience = format!("{}/{tenant}/oauth2/v2.0/token", self.url);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[client_id]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 0;
        validation.validate_exp = false;
        let key = jsonwebtoken::DecodingKey::from_rsa_der(public_key);
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|e| refused(&e.to_string()))?
            .claims;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp <= now || claims.get("sub").and_then(Value::as_str) != Some(client_id) {
            return Err(refused("expired or wrong subject"));
        }
        Ok(())
    }

    fn issue(&mut self, principal: Principal, now: u64) -> String {
        let token = format!("sim.{}", random_hex(24));
        self.grants.insert(
            token.clone(),
            Grant {
                principal,
                expires_at: now + 3599,
            },
        );
        token
    }

    fn user_tokens(&mut self, user_id: &str, now: u64) -> Reply {
        let upn = self
            .users
            .get(user_id)
            .map(|u| u.upn.clone())
            .unwrap_or_default();
        let access = self.issue(
            Principal::User {
                user_id: user_id.into(),
            },
            now,
        );
        let refresh = format!("simrefresh.{}", random_hex(24));
        self.refresh_tokens.insert(refresh.clone(), user_id.into());
        let id_token = format!(
            "{}.{}.",
            data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none"}"#),
            data_encoding::BASE64URL_NOPAD.encode(
                json!({"preferred_username": upn, "tid": self.tenant})
                    .to_string()
                    .as_bytes()
            )
        );
        Reply::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": access,
                   "refresh_token": refresh, "id_token": id_token,
                   "scope": "Policy.ReadWrite.AuthenticationMethod UserAuthenticationMethod.ReadWrite.All User.Read.All Mail.Send"}),
        )
    }

    pub(crate) fn device_code(&mut self, body: &[u8]) -> Reply {
        let form = form_pairs(body);
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        if !self.apps.contains_key(&client_id) {
            return Reply::oauth(
                400,
                "unauthorized_client",
                &format!(
                    "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
                ),
            );
        }
        let device_code = random_hex(20);
        let letters: String = random_hex(4)
            .bytes()
            .map(|b| (b'A' + b % 26) as char)
            .collect();
        let user_code = format!("SIM{letters}");
        let now = self.now();
        self.device_codes.insert(
            device_code.clone(),
            DeviceCodeGrant {
                client_id,
                user_code: user_code.clone(),
                approved_by: self.auto_approve.clone(),
                expires_at: now + 900,
            },
        );
        let uri = format!("{}/devicelogin", self.url);
        Reply::json(
            200,
            json!({"device_code": device_code, "user_code": user_code, "verification_uri": uri,
                   "expires_in": 900, "interval": 1,
                   "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate.")}),
        )
    }

    pub(crate) fn principal(&self, headers: &HeaderMap) -> Result<Principal, Reply> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if token.is_empty() {
            return Err(Reply::error(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            ));
        }
        match self.grants.get(token) {
            Some(grant) if grant.expires_at > self.now() => Ok(grant.principal.clone()),
            Some(_) => Err(Reply::error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )),
            None => Err(Reply::error(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed.",
            )),
        }
    }
}
