//! Admin only: web accounts, the vault's operators, sessions and tokens of
//! everyone, and the vault's settings.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use oathdesk_vault::settings;
use oathdesk_vault::web::{Grant, WebAccount};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::auth::{Auth, Role, need};
use crate::error::{ApiError, ApiResult};
use crate::state::now;

/// `GET /api/v1/accounts`: web accounts, and the vault's operators without one.
pub async fn list(auth: Auth<need::Admin>) -> ApiResult<Json<Value>> {
    auth.run(|session| {
        let accounts = session.web_accounts()?;
        let operators = session.operators()?;
        let grants = session.web_grants(None)?;
        let rows: Vec<Value> = operators
            .iter()
            .map(|operator| {
                let account = accounts.iter().find(|a| a.name == operator.name);
                let sessions = grants
                    .iter()
                    .filter(|g| g.account == operator.name && g.kind.name() == "session")
                    .count();
                let tokens = grants
                    .iter()
                    .filter(|g| g.account == operator.name && g.kind.name() == "token")
                    .count();
                json!({
                    "name": operator.name,
                    "unlock": operator.unlock,
                    "operator_created_at": operator.created_at,
                    "operator_created_by": operator.created_by,
                    "web": account,
                    "sessions": sessions,
                    "tokens": tokens,
                })
            })
            .collect();
        Ok(Json(json!({"accounts": rows})))
    })
    .await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub name: String,
    pub role: String,
    /// Leave out to give an existing operator (made on the command line)
    /// a web account.
    #[schemars(with = "Option<String>")]
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
}

fn role(name: &str) -> ApiResult<Role> {
    Role::parse(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role: '{name}' is not one of admin, helpdesk, provisioner, auditor"
        ))
    })
}

/// `POST /api/v1/accounts`: a new account with a password the person must
/// change at first sign-in; or a web account for an existing operator.
pub async fn create(
    auth: Auth<need::Admin>,
    Json(request): Json<NewAccount>,
) -> ApiResult<(StatusCode, Json<WebAccount>)> {
    let role = role(&request.role)?;
    let kdf = auth.state.settings.kdf;
    let name = request.name.trim().to_owned();
    let account = auth
        .run(move |session| {
            Ok(match &request.password {
                Some(password) => session.add_web_account(
                    &name,
                    password.as_bytes(),
                    kdf,
                    role.name(),
                    true,
                    now(),
                )?,
                None => session.grant_web_account(&name, role.name(), now())?,
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(account)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// `PATCH /api/v1/accounts/{name}`: role, or disabled. Ends the account's
/// sessions and tokens.
pub async fn update(
    auth: Auth<need::Admin>,
    Path(name): Path<String>,
    Json(request): Json<AccountChange>,
) -> ApiResult<Json<WebAccount>> {
    if let Some(name) = &request.role {
        role(name)?;
    }
    if request.role.is_none() && request.disabled.is_none() {
        return Err(ApiError::bad_request("give a role or disabled"));
    }
    Ok(Json(
        auth.run(move |session| {
            Ok(session.update_web_account(
                &name,
                request.role.as_deref(),
                request.disabled,
                now(),
            )?)
        })
        .await?,
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    #[schemars(with = "String")]
    pub password: Zeroizing<String>,
}

/// `POST /api/v1/accounts/{name}/password`: an admin sets someone's
/// password; they must change it at their next sign-in.
pub async fn reset_password(
    auth: Auth<need::Admin>,
    Path(name): Path<String>,
    Json(request): Json<PasswordReset>,
) -> ApiResult<Json<WebAccount>> {
    let kdf = auth.state.settings.kdf;
    if name == auth.grant.account {
        return Err(ApiError::bad_request(
            "change your own password on the Account page (it asks for the current one)",
        ));
    }
    Ok(Json(
        auth.run(move |session| {
            Ok(session.set_web_password(&name, request.password.as_bytes(), kdf, true, now())?)
        })
        .await?,
    ))
}

/// `DELETE /api/v1/accounts/{name}`: removes the web account and the
/// operator's key slot. Rekey the vault afterwards (`oathdesk vault rekey`)
/// so that the departed person's old slot opens nothing written later.
pub async fn remove(auth: Auth<need::Admin>, Path(name): Path<String>) -> ApiResult<StatusCode> {
    if name == auth.grant.account {
        return Err(ApiError::bad_request(
            "you cannot remove your own account; another admin can",
        ));
    }
    auth.run(move |session| Ok(session.remove_web_account(&name, true, now())?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/grants`: every session and API token.
pub async fn grants(auth: Auth<need::Admin>) -> ApiResult<Json<Vec<Grant>>> {
    Ok(Json(
        auth.run(|session| Ok(session.web_grants(None)?)).await?,
    ))
}

/// `DELETE /api/v1/grants/{handle}`: ends anyone's session or token.
pub async fn revoke(auth: Auth<need::Admin>, Path(handle): Path<String>) -> ApiResult<StatusCode> {
    auth.run(move |session| Ok(session.revoke_grant(&handle, None, now())?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/settings`
pub async fn get_settings(auth: Auth<need::Admin>) -> ApiResult<Json<Value>> {
    auth.run(|session| {
        let mut values = serde_json::Map::new();
        for setting in settings::ALL {
            values.insert(setting.0.to_owned(), json!(session.setting(setting)?));
        }
        Ok(Json(Value::Object(values)))
    })
    .await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingChange {
    pub name: String,
    pub value: u64,
}

/// `PUT /api/v1/settings`: one setting (audited by the vault).
pub async fn put_setting(
    auth: Auth<need::Admin>,
    Json(request): Json<SettingChange>,
) -> ApiResult<Json<Value>> {
    auth.run(move |session| {
        session.set_setting(&request.name, request.value, now())?;
        Ok(Json(json!({"name": request.name, "value": request.value})))
    })
    .await
}
