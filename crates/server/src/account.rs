//! Signing in and out, first-run setup, and one's own account: password
//! and API tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oathdesk_vault::web::{Grant, SETUP_OPERATOR};
use oathdesk_vault::{Error as VaultError, Unlock};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::auth::{
    Auth, Permission, Role, TOKEN_PREFIX, check_same_origin, clear_cookie, csrf_token,
    encode_secret, need, session_cookie, session_secret,
};
use crate::error::{ApiError, ApiResult};
use crate::proxy::client_address as client_address_of;
use crate::state::{AppState, blocking, now};

/// What a signed-in page or script learns about itself.
#[derive(Serialize)]
pub struct Me {
    pub account: String,
    pub role: String,
    pub permissions: Vec<&'static str>,
    pub must_change_password: bool,
    /// For cookie sessions: the token to send in `X-CSRF-Token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    pub expires_at: u64,
}

fn me_of(grant: &Grant, role: Role, csrf: Option<String>) -> Me {
    Me {
        account: grant.account.clone(),
        role: role.name().to_owned(),
        permissions: role.permissions().into_iter().map(|p| p.name()).collect(),
        must_change_password: grant.must_change_password,
        csrf,
        expires_at: grant.expires_at,
    }
}

/// `GET /api/v1/me`
pub async fn me(auth: Auth<need::PasswordChange>) -> ApiResult<Json<Me>> {
    let csrf = auth.csrf().map(str::to_owned);
    Ok(Json(me_of(&auth.grant, auth.role, csrf)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    #[schemars(with = "String")]
    pub password: Zeroizing<String>,
}

/// The client's address for the per-address throttle (behind a trusted
/// load balancer: the one it forwarded for).
fn client_address(
    state: &AppState,
    connection: Option<&Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> String {
    connection.map_or_else(
        || "local".to_owned(),
        |c| client_address_of(c.0.0.ip(), headers, &state.settings.trusted_proxies).to_string(),
    )
}

fn throttle_keys(name: &str, client: &str) -> (String, String) {
    (
        format!("account:{}", name.trim().to_lowercase()),
        format!("client:{client}"),
    )
}

fn locked_out(until: u64) -> ApiError {
    let wait = until.saturating_sub(now()).max(1);
    ApiError::too_many(
        format!(
            "too many failed sign-ins for this account or from this address: try again in {} minute(s), \
             or ask an admin",
            wait.div_ceil(60)
        ),
        wait,
    )
}

/// Counts an attempt against each key before its password is checked
/// (the vault reserves it atomically), or refuses it while a key is locked
/// out or its limit is taken by attempts still being checked.
async fn reserve_attempt(
    state: &Arc<AppState>,
    policies: Vec<(String, oathdesk_vault::web::ThrottlePolicy)>,
) -> ApiResult<()> {
    let worker = state.clone();
    let refused = blocking(move || {
        let mut vault = worker.vault()?;
        let refused = vault.login_attempt(&policies, now())?;
        worker.recycle(vault.into_store());
        Ok(refused)
    })
    .await?;
    match refused {
        Some(until) => Err(locked_out(until)),
        None => Ok(()),
    }
}

/// A signed-in answer: the session cookie and who signed in.
fn signed_in(state: &AppState, secret: &[u8; 32], grant: &Grant) -> ApiResult<Response> {
    let role = Role::parse(&grant.role)
        .ok_or_else(|| ApiError::internal(format!("unknown role '{}'", grant.role)))?;
    let cookie = session_cookie(
        secret,
        state.settings.session_lifetime,
        state.settings.secure_cookies,
    );
    let mut response = Json(me_of(grant, role, Some(csrf_token(secret)))).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// `POST /api/v1/login`: name and password open the account's operator
/// slot (Argon2id); the answer sets the session cookie.
pub async fn login(
    State(state): State<Arc<AppState>>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Response> {
    check_same_origin(&headers)?;
    let name = request.name.trim().to_owned();
    if name.is_empty() || request.password.is_empty() {
        return Err(ApiError::bad_request("give your account name and password"));
    }
    let client = client_address(&state, connection.as_ref(), &headers);
    let (account_key, client_key) = throttle_keys(&name, &client);
    let policies = vec![
        (account_key.clone(), state.settings.account_throttle),
        (client_key.clone(), state.settings.client_throttle),
    ];
    // The attempt counts before the password is checked: a burst of
    // attempts sent at once gets no more tries than the limit.
    if let Err(refused) = reserve_attempt(&state, policies.clone()).await {
        if refused.status == StatusCode::TOO_MANY_REQUESTS {
            state.metrics.login("locked_out");
        }
        return Err(refused);
    }
    // Each login holds Argon2id's memory (256 MiB by default): a few at a time.
    let _slot = state.logins.acquire().await.map_err(ApiError::internal)?;
    let worker = state.clone();
    let keys = vec![account_key.clone(), client_key.clone()];
    let outcome = blocking(move || {
        let settings = &worker.settings;
        let vault = worker.vault()?;
        let password = Unlock::Passphrase(request.password.as_bytes());
        // Helpdesk and auditor accounts hold no key: after their password
        // was checked, the console's key serves them (or, sealed, nothing).
        let unlocked = match vault.unlock(&name, Unlock::Passphrase(request.password.as_bytes())) {
            Err(VaultError::NoKeySlot { .. }) => match worker.console_key() {
                Some(key) => {
                    let opened = worker.vault()?.unlock_with(&name, password, &key);
                    if matches!(opened, Err(VaultError::Sealed)) {
                        // Rekeyed elsewhere since this console was unsealed.
                        worker.seal();
                    }
                    opened
                }
                None => Err(VaultError::Sealed),
            },
            other => other,
        };
        match unlocked {
            Ok(mut session) => {
                // An admin's sign-in unseals a sealed console, or one whose key
                // a rekey elsewhere made stale.
                let current = worker.console_key().is_some_and(|k| session.acts_with(&k));
                if !current && session.may(Permission::Admin) {
                    worker.unseal(session.unseal_key("sign-in", now())?);
                    tracing::info!(admin = %session.operator(), "console unsealed");
                }
                let failures = worker
                    .vault()?
                    .login_attempt_succeeded(&account_key, &[client_key])?;
                let started = session.start_web_session(settings.session_lifetime, failures, now());
                worker.recycle(session.into_store());
                Ok(Ok(started?))
            }
            Err(error) => {
                if matches!(error, VaultError::UnknownOperator(_)) {
                    // Spend the same time as a wrong password, so that the
                    // answer's timing does not tell which names exist.
                    let mut salt = [0u8; 16];
                    let _ = oathdesk_vault::crypto::random(&mut salt);
                    let _ = settings.kdf.derive(request.password.as_bytes(), &salt);
                }
                if !matches!(
                    error,
                    VaultError::UnknownOperator(_)
                        | VaultError::WrongPassphrase(_)
                        | VaultError::NeedsIdentity(_)
                        | VaultError::WrongIdentity(_)
                ) {
                    // No password was found wrong: the attempt does not count.
                    worker.vault()?.login_attempt_void(&keys)?;
                    return Err(error.into());
                }
                let locked = worker.vault()?.login_attempt_failed(&policies, now())?;
                tracing::warn!(client = %client, "failed sign-in");
                Ok(Err(locked))
            }
        }
    })
    .await?;
    match outcome {
        Ok((secret, grant)) => {
            tracing::info!(account = %grant.account, "signed in");
            state.metrics.login("succeeded");
            signed_in(&state, &secret, &grant)
        }
        Err(Some(until)) => {
            state.metrics.login("failed");
            state.metrics.lockout();
            Err(locked_out(until))
        }
        Err(None) => {
            state.metrics.login("failed");
            Err(ApiError::unauthorized("wrong account name or password"))
        }
    }
}

/// `GET /api/v1/unseal`: whether this console holds the vault key.
pub async fn unseal_state(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({"sealed": !state.is_unsealed()}))
}

/// `POST /api/v1/unseal`: an admin's name and password open their key slot
/// and the console keeps the vault key in memory (no session is started).
/// Throttled like sign-in.
pub async fn unseal(
    State(state): State<Arc<AppState>>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    check_same_origin(&headers)?;
    let name = request.name.trim().to_owned();
    if name.is_empty() || request.password.is_empty() {
        return Err(ApiError::bad_request(
            "give an admin's account name and password",
        ));
    }
    let client = client_address(&state, connection.as_ref(), &headers);
    let (account_key, client_key) = throttle_keys(&name, &client);
    let policies = vec![
        (account_key.clone(), state.settings.account_throttle),
        (client_key.clone(), state.settings.client_throttle),
    ];
    reserve_attempt(&state, policies.clone()).await?;
    let _slot = state.logins.acquire().await.map_err(ApiError::internal)?;
    let worker = state.clone();
    let keys = vec![account_key.clone(), client_key.clone()];
    let outcome = blocking(move || {
        let unlocked = worker
            .vault()?
            .unlock(&name, Unlock::Passphrase(request.password.as_bytes()));
        match unlocked {
            Ok(mut session) => {
                let key = session.unseal_key("unseal page", now());
                worker.recycle(session.into_store());
                worker.unseal(key?);
                worker
                    .vault()?
                    .login_attempt_succeeded(&account_key, &[client_key])?;
                tracing::info!(admin = %name, "console unsealed");
                Ok(None)
            }
            Err(error @ VaultError::NoKeySlot { .. }) => {
                worker.vault()?.login_attempt_void(&keys)?;
                Err(ApiError::forbidden(format!(
                    "{error}; an admin unseals the console"
                )))
            }
            Err(
                VaultError::UnknownOperator(_)
                | VaultError::WrongPassphrase(_)
                | VaultError::NeedsIdentity(_)
                | VaultError::WrongIdentity(_),
            ) => Ok(Some(
                worker.vault()?.login_attempt_failed(&policies, now())?,
            )),
            Err(error) => {
                worker.vault()?.login_attempt_void(&keys)?;
                Err(error.into())
            }
        }
    })
    .await?;
    match outcome {
        None => Ok(Json(json!({"sealed": false}))),
        Some(Some(until)) => Err(locked_out(until)),
        Some(None) => Err(ApiError::unauthorized("wrong account name or password")),
    }
}

/// `POST /api/v1/logout`: ends the session in the database (not just the
/// cookie) and clears the cookie.
pub async fn logout(auth: Auth<need::PasswordChange>, headers: HeaderMap) -> ApiResult<Response> {
    let secure = auth.state.settings.secure_cookies;
    let oidc = auth.state.settings.oidc.clone();
    let secret = session_secret(&headers, secure)
        .ok_or_else(|| ApiError::bad_request("no session cookie to end"))?;
    let via_provider = auth
        .run(move |session| {
            let account = session.web_account()?;
            session.end_grant(&secret, now())?;
            Ok(account.created_by == oathdesk_vault::oidc::CREATED_BY)
        })
        .await?;
    // Sign-out ends the provider's session too: the page goes there next.
    let end_session = match oidc.filter(|_| via_provider) {
        Some(client) => blocking(move || Ok(client.end_session_url())).await?,
        None => None,
    };
    let mut response = match end_session {
        Some(url) => Json(json!({ "end_session": url })).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear_cookie(secure)).map_err(ApiError::internal)?,
    );
    Ok(response)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The one-time code printed when the console created the vault.
    #[schemars(with = "Option<String>")]
    #[serde(default)]
    pub code: Option<Zeroizing<String>>,
    /// Or: an operator of a vault made on the command line, who becomes admin.
    #[serde(default)]
    pub operator: Option<String>,
    #[schemars(with = "Option<String>")]
    #[serde(default)]
    pub passphrase: Option<Zeroizing<String>>,
    /// The first admin's name and password (with `code`).
    #[serde(default)]
    pub name: Option<String>,
    #[schemars(with = "Option<String>")]
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
}

/// `GET /api/v1/setup`: whether setup is open and which kind.
pub async fn setup_state(State(state): State<Arc<AppState>>) -> ApiResult<Json<serde_json::Value>> {
    let checked = state.clone();
    let (done, by_code) = blocking(move || {
        let mut vault = checked.vault()?;
        let done = vault.web_accounts_exist()?;
        let by_code = vault.operators()?.iter().any(|o| o.name == SETUP_OPERATOR);
        checked.recycle(vault.into_store());
        Ok((done, by_code))
    })
    .await?;
    Ok(Json(json!({
        "open": !done,
        "mode": if done { "done" } else if by_code { "code" } else { "operator" },
    })))
}

/// `POST /api/v1/setup`: creates the first admin, once.
pub async fn setup(
    State(state): State<Arc<AppState>>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(request): Json<SetupRequest>,
) -> ApiResult<Response> {
    check_same_origin(&headers)?;
    let client_key = format!(
        "client:{}",
        client_address(&state, connection.as_ref(), &headers)
    );
    let keys = vec![client_key.clone()];
    let checked = state.clone();
    let (locked, done) = blocking(move || {
        let mut vault = checked.vault()?;
        let locked = vault.login_locked(&keys, now())?;
        let done = vault.web_accounts_exist()?;
        checked.recycle(vault.into_store());
        Ok((locked, done))
    })
    .await?;
    if done {
        return Err(ApiError::conflict(
            "the console is set up already: sign in instead",
        ));
    }
    if let Some(until) = locked {
        return Err(locked_out(until));
    }
    let _slot = state.logins.acquire().await.map_err(ApiError::internal)?;
    let worker = state.clone();
    let outcome = blocking(move || {
        let settings = &worker.settings;
        let (operator, passphrase) = match (&request.code, &request.operator, &request.passphrase) {
            (Some(code), None, None) => (SETUP_OPERATOR.to_owned(), code.trim().to_owned()),
            (None, Some(operator), Some(passphrase)) => {
                (operator.trim().to_owned(), passphrase.as_str().to_owned())
            }
            _ => {
                return Err(ApiError::bad_request(
                    "give either the setup code (with the new admin's name and password), \
                     or an existing operator's name and passphrase",
                ));
            }
        };
        let passphrase = Zeroizing::new(passphrase);
        let unlocked = worker
            .vault()?
            .unlock(&operator, Unlock::Passphrase(passphrase.as_bytes()));
        let mut session = match unlocked {
            Ok(session) => session,
            Err(
                VaultError::UnknownOperator(_)
                | VaultError::WrongPassphrase(_)
                | VaultError::NeedsIdentity(_)
                | VaultError::WrongIdentity(_),
            ) => {
                let policies = vec![(client_key, settings.client_throttle)];
                let locked = worker.vault()?.login_failed(&policies, now())?;
                return Ok(Err(locked));
            }
            Err(other) => return Err(other.into()),
        };
        let result = if operator == SETUP_OPERATOR {
            let name = request
                .name
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let password = request.password.clone().unwrap_or_default();
            if name.is_empty() {
                Err(ApiError::bad_request("give the first admin's account name"))
            } else {
                session
                    .complete_setup(
                        &name,
                        password.as_bytes(),
                        settings.kdf,
                        settings.session_lifetime,
                        now(),
                    )
                    .map_err(ApiError::from)
            }
        } else {
            session
                .claim_first_admin(now())
                .and_then(|_| session.start_web_session(settings.session_lifetime, 0, now()))
                .map_err(ApiError::from)
        };
        // The first admin's setup unseals the console, as their sign-in would.
        if result.is_ok() && !worker.is_unsealed() {
            worker.unseal(session.unseal_key("setup", now())?);
        }
        drop(session);
        Ok(Ok(result?))
    })
    .await?;
    match outcome {
        Ok((secret, grant)) => {
            tracing::info!(admin = %grant.account, "first-run setup done");
            signed_in(&state, &secret, &grant)
        }
        Err(Some(until)) => Err(locked_out(until)),
        Err(None) => Err(ApiError::unauthorized(
            "wrong setup code, or wrong operator name or passphrase",
        )),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    #[schemars(with = "String")]
    pub current: Zeroizing<String>,
    #[schemars(with = "String")]
    pub new: Zeroizing<String>,
}

/// `POST /api/v1/me/password`: the current password proves it is you (a
/// session left open on a desk is not enough); every session of the account
/// ends, and this one is replaced by a new one.
pub async fn change_password(
    auth: Auth<need::PasswordChange>,
    Json(request): Json<PasswordRequest>,
) -> ApiResult<Response> {
    if request.current == request.new {
        return Err(ApiError::bad_request(
            "the new password is the same as the current one",
        ));
    }
    let state = auth.state.clone();
    let name = auth.grant.account.clone();
    // The current password proves it is the account's owner; wrong guesses
    // count against the account like failed sign-ins, and the check runs
    // before the write (Argon2id must not hold the writer's turn).
    let (account_key, _) = throttle_keys(&name, "");
    let policies = vec![(account_key.clone(), state.settings.account_throttle)];
    reserve_attempt(&state, policies.clone()).await?;
    let slot = state.logins.acquire().await.map_err(ApiError::internal)?;
    let worker = state.clone();
    let (operator, current) = (name.clone(), request.current.clone());
    let verified = blocking(move || {
        let mut vault = worker.vault()?;
        let check = vault.check_unlock(&operator, Unlock::Passphrase(current.as_bytes()));
        worker.recycle(vault.into_store());
        match check {
            Ok(()) => {
                worker.vault()?.login_attempt_succeeded(&account_key, &[])?;
                Ok(None)
            }
            Err(VaultError::WrongPassphrase(_)) => Ok(Some(
                worker.vault()?.login_attempt_failed(&policies, now())?,
            )),
            Err(other) => {
                worker.vault()?.login_attempt_void(&[account_key])?;
                Err(other.into())
            }
        }
    })
    .await?;
    drop(slot);
    match verified {
        None => {}
        Some(Some(until)) => return Err(locked_out(until)),
        Some(None) => return Err(ApiError::forbidden("the current password is wrong")),
    }
    let settings = state.settings.clone();
    let (secret, grant) = auth
        .run(move |session| {
            session.set_web_password(&name, request.new.as_bytes(), settings.kdf, false, now())?;
            Ok(session.start_web_session(settings.session_lifetime, 0, now())?)
        })
        .await?;
    signed_in(&state, &secret, &grant)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub scopes: Vec<String>,
    /// Days until it expires (default 90).
    #[serde(default)]
    pub days: Option<u64>,
}

/// `POST /api/v1/me/tokens`: a new API token with scopes within the role.
/// The token is in this answer only.
pub async fn create_token(
    auth: Auth<need::Account>,
    Json(request): Json<TokenRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let role = auth.role;
    let mut scopes = Vec::new();
    for name in &request.scopes {
        let permission = Permission::scope(name).ok_or_else(|| {
            let known: Vec<&str> = role
                .permissions()
                .into_iter()
                .filter(|p| *p != Permission::Account)
                .map(|p| p.name())
                .collect();
            ApiError::bad_request(format!(
                "unknown scope '{name}': your role can give {}",
                known.join(", ")
            ))
        })?;
        if !role.permits(permission) {
            return Err(ApiError::forbidden(format!(
                "the {} role may not {}, so its tokens cannot either",
                role.name(),
                permission.describe()
            )));
        }
        if !scopes.contains(&permission.name().to_owned()) {
            scopes.push(permission.name().to_owned());
        }
    }
    let days = request.days.unwrap_or(90);
    let max_days = auth.state.settings.token_lifetime_max / 86_400;
    if days == 0 || days > max_days {
        return Err(ApiError::bad_request(format!(
            "a token lasts 1 to {max_days} days"
        )));
    }
    let (secret, grant) = auth
        .run(move |session| {
            Ok(session.create_api_token(&request.name, &scopes, days * 86_400, now())?)
        })
        .await?;
    let token = Zeroizing::new(format!("{TOKEN_PREFIX}{}", encode_secret(&secret).as_str()));
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token.as_str(), "grant": grant})),
    ))
}

/// `GET /api/v1/me/tokens`: one's own API tokens and sessions.
pub async fn list_tokens(auth: Auth<need::Account>) -> ApiResult<Json<Vec<Grant>>> {
    let account = auth.grant.account.clone();
    Ok(Json(
        auth.run(move |session| Ok(session.web_grants(Some(&account))?))
            .await?,
    ))
}

/// `DELETE /api/v1/me/tokens/{handle}`
pub async fn revoke_token(
    auth: Auth<need::Account>,
    axum::extract::Path(handle): axum::extract::Path<String>,
) -> ApiResult<StatusCode> {
    let account = auth.grant.account.clone();
    auth.run(move |session| Ok(session.revoke_grant(&handle, Some(&account), now())?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
