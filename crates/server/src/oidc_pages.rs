//! The browser's side of OpenID Connect: `GET /oidc/login` sends it to the
//! provider, `GET /oidc/callback` takes it back, checks the ID token
//! ([`crate::oidc`]), lets the vault decide ([`oathdesk_vault::oidc`]) and
//! starts a session. Refusals are pages that say what is wrong.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use oathdesk_vault::Error as VaultError;
use serde::Deserialize;

use crate::auth::session_cookie;
use crate::pages::{escape, public_page};
use crate::state::{AppState, blocking, now};

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<section class=\"card narrow emphasis\"><h1>{}</h1>\
         <p id=\"oidc-message\" class=\"message error\">{}</p>\
         <p><a href=\"/login\">Back to sign-in</a></p></section>",
        escape(title),
        escape(message)
    );
    (status, Html(public_page(title, &body))).into_response()
}

fn refused(message: &str) -> Response {
    page(StatusCode::FORBIDDEN, "Sign-in refused", message)
}

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not available",
        "This console has no identity provider: sign in with your account name and password.",
    )
}

/// `GET /oidc/login`
pub async fn login(State(state): State<Arc<AppState>>) -> Response {
    let Some(client) = state.settings.oidc.clone() else {
        return not_configured();
    };
    if !state.is_unsealed() {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The console is sealed",
            "Signing in through your organisation works once an admin has signed in or \
             unsealed the console with their own key.",
        );
    }
    match blocking(move || Ok(client.start())).await {
        Ok(Ok(started)) => Redirect::to(&started.url).into_response(),
        Ok(Err(problem)) => page(
            StatusCode::BAD_GATEWAY,
            "Identity provider unavailable",
            &problem.to_string(),
        ),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
pub struct Callback {
    #[serde(default)]
    state: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// `GET /oidc/callback`
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(client) = state.settings.oidc.clone() else {
        return not_configured();
    };
    if let Some(error) = &answer.error {
        let why = answer.error_description.as_deref().unwrap_or(error);
        return refused(&format!("the identity provider did not sign you in: {why}"));
    }
    let Some(code) = answer.code.clone() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in incomplete",
            "the identity provider's answer has no code: start again from the sign-in page",
        );
    };
    let worker = state.clone();
    let lifetime = state.settings.session_lifetime;
    let outcome = blocking(move || {
        let at = now();
        let identity = match client.finish(&answer.state, &code, at) {
            Ok(identity) => identity,
            Err(problem) => return Ok(Err(problem.to_string())),
        };
        let Some(key) = worker.console_key() else {
            return Ok(Err(VaultError::Sealed.to_string()));
        };
        let signed_in = worker.vault()?.oidc_sign_in(&identity, &key, lifetime, at);
        match signed_in {
            Ok((secret, grant)) => Ok(Ok((secret, grant.expires_at.saturating_sub(at)))),
            Err(VaultError::Sealed) => {
                worker.seal();
                Ok(Err(VaultError::Sealed.to_string()))
            }
            Err(
                refusal @ (VaultError::SignInRefused(_)
                | VaultError::Unauthenticated(_)
                | VaultError::Invalid(_)
                | VaultError::Altered { .. }),
            ) => Ok(Err(refusal.to_string())),
            Err(other) => Err(other.into()),
        }
    })
    .await;
    match outcome {
        Ok(Ok((secret, max_age))) => {
            state.metrics.login("succeeded");
            let cookie = session_cookie(&secret, max_age, state.settings.secure_cookies);
            // A page, not a redirect: the browser arrived from the provider's
            // site, and a redirect would still count as cross-site, so the
            // SameSite=Strict cookie would not go with it; a navigation this
            // page starts is same-site.
            let body = "<section class=\"card narrow\"><h1>Signed in</h1>\
                 <p>Opening the console… <a id=\"continue\" href=\"/\">Continue</a></p></section>";
            let html = public_page("Signed in", body).replacen(
                "<head>",
                "<head><meta http-equiv=\"refresh\" content=\"0;url=/\">",
                1,
            );
            let mut response = Html(html).into_response();
            match HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                    response
                }
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
        Ok(Err(message)) => {
            state.metrics.login("failed");
            refused(&message)
        }
        Err(error) => error.into_response(),
    }
}
