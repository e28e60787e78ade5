//! The console's pages and static files, embedded in the binary.
//!
//! Pages are static HTML bodies in a shared layout; their scripts (no
//! inline script: the CSP forbids it) fetch everything from the REST API,
//! so the console and scripts use one code path. The server fills in only
//! the navigation, who is signed in, and the CSRF token — escaped.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::auth::{Auth, Permission, need};
use crate::error::ApiError;

/// Embeds the files of `assets/` by name.
macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../assets/", $name)))),*]
    };
}

/// The static files: name and content.
const ASSETS: &[(&str, &str)] = assets!(
    "app.css",
    "app.js",
    "favicon.svg",
    "login.js",
    "setup.js",
    "unseal.js",
    "toolset.js",
    "helpdesk.js",
    "inventory.js",
    "fleet.js",
    "audit.js",
    "operators.js",
    "account.js",
);

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// `GET /assets/{file}`
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _)| *name == file) {
        Some((name, body)) => ([(header::CONTENT_TYPE, content_type(name))], *body).into_response(),
        None => ApiError::not_found(format!("no asset named '{file}'")).into_response(),
    }
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page of the console.
pub struct PageDef {
    pub path: &'static str,
    pub title: &'static str,
    /// Shown in the navigation to those who may open it.
    pub permission: Permission,
    pub body: &'static str,
    pub script: &'static str,
}

/// The pages in navigation order.
pub const PAGES: &[PageDef] = &[
    PageDef {
        path: "/helpdesk",
        title: "Helpdesk",
        permission: Permission::HelpdeskCode,
        body: include_str!("../assets/helpdesk.html"),
        script: "helpdesk.js",
    },
    PageDef {
        path: "/inventory",
        title: "Inventory",
        permission: Permission::InventoryRead,
        body: include_str!("../assets/inventory.html"),
        script: "inventory.js",
    },
    PageDef {
        path: "/fleet",
        title: "Fleet",
        permission: Permission::InventoryRead,
        body: include_str!("../assets/fleet.html"),
        script: "fleet.js",
    },
    PageDef {
        path: "/toolset",
        title: "Toolset",
        permission: Permission::Toolset,
        body: include_str!("../assets/toolset.html"),
        script: "toolset.js",
    },
    PageDef {
        path: "/audit",
        title: "Audit",
        permission: Permission::AuditRead,
        body: include_str!("../assets/audit.html"),
        script: "audit.js",
    },
    PageDef {
        path: "/operators",
        title: "Operators",
        permission: Permission::Admin,
        body: include_str!("../assets/operators.html"),
        script: "operators.js",
    },
    PageDef {
        path: "/account",
        title: "Account",
        permission: Permission::Account,
        body: include_str!("../assets/account.html"),
        script: "account.js",
    },
];

struct Viewer<'a> {
    account: &'a str,
    role: &'a str,
    csrf: &'a str,
    may: &'a dyn Fn(Permission) -> bool,
}

fn layout(
    title: &str,
    active: &str,
    viewer: Option<&Viewer<'_>>,
    body: &str,
    script: Option<&str>,
) -> String {
    let mut nav = String::new();
    let mut meta = String::new();
    let mut who = String::new();
    if let Some(viewer) = viewer {
        for page in PAGES {
            if (viewer.may)(page.permission) && page.path != "/account" {
                let current = if page.path == active {
                    " aria-current=\"page\""
                } else {
                    ""
                };
                nav.push_str(&format!(
                    "<a href=\"{}\"{current}>{}</a>",
                    page.path,
                    escape(page.title)
                ));
            }
        }
        meta = format!(
            "<meta name=\"csrf-token\" content=\"{}\">\n<meta name=\"account\" content=\"{}\">\n\
             <meta name=\"role\" content=\"{}\">\n",
            escape(viewer.csrf),
            escape(viewer.account),
            escape(viewer.role)
        );
        who = format!(
            "<div class=\"who\"><a href=\"/account\" class=\"account-link\"{}>{}</a>\
             <span class=\"role role-{}\">{}</span>\
             <button type=\"button\" class=\"ghost\" id=\"sign-out\">Sign out</button></div>",
            if active == "/account" {
                " aria-current=\"page\""
            } else {
                ""
            },
            escape(viewer.account),
            escape(viewer.role),
            escape(viewer.role)
        );
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · oathdesk</title>\n{meta}\
         <link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\">\n\
         <link rel=\"stylesheet\" href=\"/assets/app.css\">\n\
         <script src=\"/assets/app.js\" defer></script>\n{page_script}</head>\n<body>\n\
         <header class=\"top\"><a class=\"brand\" href=\"/\"><span class=\"logo\" aria-hidden=\"true\"></span>oathdesk</a>\
         <nav>{nav}</nav>{who}</header>\n<main id=\"main\">\n{body}\n</main>\n\
         <div id=\"toast\" role=\"status\" aria-live=\"polite\"></div>\n</body>\n</html>\n",
        title = escape(title),
        // app.js is every page's; a page's own script comes after it, once.
        page_script = script
            .filter(|s| *s != "app.js")
            .map(|s| format!("<script src=\"/assets/{}\" defer></script>\n", escape(s)))
            .unwrap_or_default(),
    )
}

/// A refusal or a missing page, in the layout: with the navigation when
/// someone is signed in, and app.js once (for the sign-out button).
fn error_page(status: StatusCode, message: &str, viewer: Option<&Viewer<'_>>) -> Response {
    let body = format!(
        "<section class=\"card narrow\"><h1>{}</h1><p class=\"error-text\" role=\"alert\">{}</p>\
         <p><a href=\"/\">Back to the console</a></p></section>",
        status.canonical_reason().unwrap_or("Error"),
        escape(message)
    );
    let title = status.canonical_reason().unwrap_or("Error");
    (status, Html(layout(title, "", viewer, &body, None))).into_response()
}

/// Renders `make` with the viewer `auth` describes.
fn with_viewer<T>(auth: &Auth<need::PasswordChange>, make: impl FnOnce(&Viewer<'_>) -> T) -> T {
    let may = |p: Permission| auth.may(p);
    let viewer = Viewer {
        account: &auth.grant.account,
        role: auth.role.name(),
        csrf: auth.csrf().unwrap_or_default(),
        may: &may,
    };
    make(&viewer)
}

/// Renders a page for a signed-in viewer, or sends them where they belong.
fn render(auth: Result<Auth<need::PasswordChange>, ApiError>, page: &PageDef) -> Response {
    let auth = match auth {
        Ok(auth) => auth,
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            return Redirect::to("/login").into_response();
        }
        Err(error) => return error_page(error.status, &error.message, None),
    };
    let pending = auth.grant.must_change_password;
    if pending && page.path != "/account" {
        return Redirect::to("/account").into_response();
    }
    if !pending && !auth.may(page.permission) {
        let message = format!(
            "The {} role may not {}. Ask an admin if you need to.",
            auth.role.name(),
            page.permission.describe()
        );
        return with_viewer(&auth, |viewer| {
            error_page(StatusCode::FORBIDDEN, &message, Some(viewer))
        });
    }
    with_viewer(&auth, |viewer| {
        Html(layout(
            page.title,
            page.path,
            Some(viewer),
            page.body,
            Some(page.script),
        ))
        .into_response()
    })
}

fn page(path: &str) -> &'static PageDef {
    PAGES
        .iter()
        .find(|p| p.path == path)
        .expect("every routed page is in PAGES")
}

pub async fn toolset(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    render(auth, page("/toolset"))
}

pub async fn helpdesk(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    render(auth, page("/helpdesk"))
}

pub async fn inventory(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    render(auth, page("/inventory"))
}

pub async fn fleet(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    render(auth, page("/fleet"))
}

pub async fn audit(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    render(auth, page("/audit"))
}

pub async fn operators(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    render(auth, page("/operators"))
}

pub async fn account(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    render(auth, page("/account"))
}

/// `GET /`: the first page the viewer may open.
pub async fn home(auth: Result<Auth<need::PasswordChange>, ApiError>) -> Response {
    match auth {
        Ok(auth) => {
            let first = PAGES
                .iter()
                .find(|p| auth.may(p.permission))
                .map_or("/account", |p| p.path);
            Redirect::to(first).into_response()
        }
        Err(_) => Redirect::to("/login").into_response(),
    }
}

/// A page for someone not signed in (the OpenID Connect answers).
pub(crate) fn public_page(title: &str, body: &str) -> String {
    layout(title, "/login", None, body, None)
}

/// `GET /login`: with an identity provider, also a way to sign in through it.
pub async fn login(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::state::AppState>>,
) -> Html<String> {
    let mut body = include_str!("../assets/login.html").to_owned();
    if state.settings.oidc.is_some() {
        body.push_str(
            "<section class=\"card narrow\"><h2>Helpdesk and auditor staff</h2>\
             <p class=\"muted\">Sign in with your organisation's account instead of a \
             password here (the console must be unsealed).</p>\
             <div class=\"actions\"><a class=\"button\" id=\"oidc-sign-in\" \
             href=\"/oidc/login\">Sign in with your organisation</a></div></section>",
        );
    }
    Html(layout("Sign in", "/login", None, &body, Some("login.js")))
}

/// `GET /unseal`
pub async fn unseal() -> Html<String> {
    Html(layout(
        "Unseal",
        "/unseal",
        None,
        include_str!("../assets/unseal.html"),
        Some("unseal.js"),
    ))
}

/// `GET /setup`
pub async fn setup() -> Html<String> {
    Html(layout(
        "First-run setup",
        "/setup",
        None,
        include_str!("../assets/setup.html"),
        Some("setup.js"),
    ))
}

/// Anything else (with the navigation for whoever is signed in).
pub async fn not_found(
    uri: axum::http::Uri,
    auth: Result<Auth<need::PasswordChange>, ApiError>,
) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found(format!(
            "no API route {}; the routes are listed in /api/v1/openapi.json",
            uri.path()
        ))
        .into_response()
    } else {
        let message = "There is no page here.";
        match auth {
            // A pending password change shows no navigation: every page but
            // the account's sends it there.
            Ok(auth) if !auth.grant.must_change_password => with_viewer(&auth, |viewer| {
                error_page(StatusCode::NOT_FOUND, message, Some(viewer))
            }),
            _ => error_page(StatusCode::NOT_FOUND, message, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_script_is_an_asset() {
        for page in PAGES {
            assert!(
                ASSETS.iter().any(|(name, _)| *name == page.script),
                "{} is not embedded",
                page.script
            );
        }
        for script in ["login.js", "setup.js", "app.js", "app.css", "favicon.svg"] {
            assert!(ASSETS.iter().any(|(name, _)| *name == script));
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
