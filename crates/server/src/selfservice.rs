//! Self-service delivery: the user's one-time page `/d/<secret>` ("your
//! token has arrived? type the code it shows"), and the route with which
//! the helpdesk makes the link.
//!
//! The page is public: the link's secret is its only credential, and the
//! vault decides everything (`oathdesk_vault::selfservice`). It is plain
//! HTML with a form — no script, so it works on any phone — and shows
//! nothing but the user's first name and the token's serial. The request
//! log names it `/d/{secret}` (see [`crate::security`]), never the secret.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use oathdesk_vault::{Error, LinkPage, LinkProblem};
use schemars::JsonSchema;
use serde::Serialize;

use crate::auth::{Auth, need};
use crate::error::{ApiError, ApiResult};
use crate::inventory::token_ref;
use crate::pages::escape;
use crate::state::{AppState, blocking, now};

/// The path prefix of the user's page.
pub const PREFIX: &str = "/d/";

/// The answer to `POST /api/v1/tokens/{ref}/delivery-link`.
#[derive(Serialize, JsonSchema)]
pub struct LinkAnswer {
    /// The page's path (`/d/<secret>`): put the console's address in front.
    /// Shown once; the vault keeps only its hash.
    pub path: String,
    /// The link's handle: the actor the audit log names.
    pub handle: String,
    pub credential: String,
    pub user: String,
    pub first_name: Option<String>,
    pub expires_at: u64,
}

/// `POST /api/v1/tokens/{ref}/delivery-link`: a one-time link for the
/// token's user (an older one stops working).
pub async fn create(
    auth: Auth<need::DeliveryLink>,
    Path(reference): Path<String>,
) -> ApiResult<Json<LinkAnswer>> {
    let reference = token_ref(&reference)?;
    let link = auth
        .run(move |session| Ok(session.create_delivery_link(&reference, now())?))
        .await?;
    Ok(Json(LinkAnswer {
        path: format!("{PREFIX}{}", link.secret),
        handle: link.handle.clone(),
        credential: link.credential.clone(),
        user: link.user.clone(),
        first_name: link.first_name.clone(),
        expires_at: link.expires_at,
    }))
}

/// What the page says after a code was typed, or instead of the form.
enum Said {
    Form(LinkPage, Option<String>),
    Delivered,
    Closed(LinkProblem),
    Unavailable,
}

/// `GET /d/{secret}`
pub async fn page(State(state): State<Arc<AppState>>, Path(secret): Path<String>) -> Response {
    let said = blocking(move || {
        let Some(key) = state.console_key() else {
            return Ok(Said::Unavailable);
        };
        let vault = state.vault()?;
        let (page, store) = vault
            .delivery_link_page(&key, &secret, now())
            .map_err(ApiError::from)?;
        state.recycle(store);
        Ok(match page {
            Ok(page) => Said::Form(page, None),
            Err(problem) => Said::Closed(problem),
        })
    })
    .await;
    render(said.unwrap_or(Said::Unavailable))
}

/// `POST /d/{secret}` with the form field `code`.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Path(secret): Path<String>,
    body: String,
) -> Response {
    let code = form_field(&body, "code").unwrap_or_default();
    let said = blocking(move || {
        let Some(key) = state.console_key() else {
            return Ok(Said::Unavailable);
        };
        let (outcome, store) = state
            .vault()?
            .redeem_delivery_link(&key, &secret, &code, now());
        if let Some(store) = store {
            state.recycle(store);
        }
        let again = |message: &str| -> ApiResult<Said> {
            let (page, store) = state
                .vault()?
                .delivery_link_page(&key, &secret, now())
                .map_err(ApiError::from)?;
            state.recycle(store);
            Ok(match page {
                Ok(page) => Said::Form(page, Some(message.to_owned())),
                Err(problem) => Said::Closed(problem),
            })
        };
        match outcome {
            Ok(_) => Ok(Said::Delivered),
            Err(Error::DeliveryLink(problem)) => Ok(Said::Closed(problem)),
            Err(Error::CodeMismatch { .. }) => again(
                "That code does not match this token. Type the code the token shows now \
                 (press its button for a new one).",
            ),
            // The words of `token deliver`, in the user's terms.
            Err(Error::CodeReleased { .. }) => again(
                "This code was given out by the helpdesk, so it proves nothing about the token: \
                 wait for the next code the token shows and type that one.",
            ),
            Err(Error::Invalid(_)) => again("Type the digits the token shows, nothing else."),
            Err(Error::Sealed) => Ok(Said::Unavailable),
            Err(other) => Err(ApiError::from(other)),
        }
    })
    .await;
    render(said.unwrap_or(Said::Unavailable))
}

/// One field of an `application/x-www-form-urlencoded` body. A code is
/// digits: a value with escapes is returned as it is and refused as such.
fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace('+', " "))
    })
}

fn render(said: Said) -> Response {
    let (status, title, body) = match said {
        Said::Form(page, message) => {
            let greeting = match &page.first_name {
                Some(name) => format!("Hello {},", escape(name)),
                None => "Hello,".to_owned(),
            };
            let message = message
                .map(|m| {
                    format!(
                        "<p class=\"message error\" role=\"alert\" id=\"d-message\">{}</p>",
                        escape(&m)
                    )
                })
                .unwrap_or_default();
            let left = if page.attempts_left <= 2 {
                format!(
                    "<p class=\"hint\" id=\"d-attempts\">{} wrong code{} more and this link stops working.</p>",
                    page.attempts_left,
                    if page.attempts_left == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            };
            (
                StatusCode::OK,
                "Confirm your token",
                format!(
                    "<h1>{greeting}</h1>\
                     <p>Your token <strong id=\"d-serial\">{serial}</strong> has arrived? \
                     Type the code it shows.</p>{message}\
                     <form method=\"post\" autocomplete=\"off\" id=\"d-form\">\
                     <div class=\"field wide\"><label for=\"code\">Code on the token</label>\
                     <input id=\"code\" name=\"code\" inputmode=\"numeric\" pattern=\"[0-9 ]*\" \
                     maxlength=\"12\" autocomplete=\"one-time-code\" required autofocus></div>\
                     {left}<div class=\"actions\"><button type=\"submit\" id=\"d-submit\">Confirm</button></div>\
                     </form>\
                     <p class=\"hint\">Press the token's button to show a code. This link works once.</p>",
                    serial = escape(&page.serial)
                ),
            )
        }
        Said::Delivered => (
            StatusCode::OK,
            "Token confirmed",
            "<h1>Thank you</h1><p class=\"message ok\" role=\"status\" id=\"d-done\">Your token is \
             confirmed: it is yours to use now. You can close this page.</p>"
                .to_owned(),
        ),
        Said::Closed(problem) => (
            match problem {
                LinkProblem::Unknown => StatusCode::NOT_FOUND,
                _ => StatusCode::GONE,
            },
            "Link not usable",
            format!(
                "<h1>This link cannot be used</h1><p class=\"message error\" role=\"alert\" \
                 id=\"d-closed\">{}.</p><p>If your token has arrived, call the helpdesk: they \
                 confirm it with you.</p>",
                escape(&sentence(problem))
            ),
        ),
        Said::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again later",
            "<h1>Please try again later</h1><p class=\"message warn\" role=\"alert\" \
             id=\"d-closed\">The service cannot confirm tokens right now. Try again in a few \
             minutes; your link still works.</p>"
                .to_owned(),
        ),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title}</title>\n\
         <link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"/assets/app.css\">\n</head>\n<body>\n\
         <header class=\"top\"><span class=\"brand\"><span class=\"logo\" aria-hidden=\"true\"></span>Token delivery</span></header>\n\
         <main id=\"main\"><section class=\"card narrow emphasis self-service\">{body}</section></main>\n</body>\n</html>\n"
    );
    (status, Html(html)).into_response()
}

/// A link problem in the user's words (the vault's, first letter kept).
fn sentence(problem: LinkProblem) -> String {
    let text = problem.describe();
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_field() {
        assert_eq!(form_field("code=123456", "code").as_deref(), Some("123456"));
        assert_eq!(
            form_field("x=1&code=12+34", "code").as_deref(),
            Some("12 34")
        );
        assert_eq!(form_field("codes=1", "code"), None);
    }

    #[test]
    fn sentences_start_with_a_capital() {
        assert!(sentence(LinkProblem::Expired).starts_with("This delivery link has expired"));
    }
}
