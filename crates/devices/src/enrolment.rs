//! Checks and names for enrolling a user's account onto a token from the
//! provider's QR code (`oathdesk enroll`): whose account the QR code is
//! for, what the vault keeps of its label, and the title a Molto-2 profile
//! gets. Pure functions; the CLI and the console call them.

use oathdesk_otp::Credential;

use crate::params::{check_title, truncate_utf8};

/// The default title template: the organisation and whose account it is.
pub const DEFAULT_TITLE_TEMPLATE: &str = "{org} {upn-local}";

/// The QR code is for another account than the user being enrolled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the QR code is for {qr_account}, not {user}: this would give {user} a token that signs in as \
     {qr_account}. Capture the QR code from {user}'s own setup page, or pass --force if the account \
     name really differs (e.g. an alias)"
)]
pub struct AccountMismatch {
    pub qr_account: String,
    pub user: String,
}

/// Compares the account in the QR code's label (Microsoft puts the UPN
/// there) with the user being enrolled, ignoring case. A label without an
/// account says nothing, so it passes.
pub fn check_account(credential: &Credential, user: &str) -> Result<(), AccountMismatch> {
    let account = credential.account.trim();
    if account.is_empty() || account.eq_ignore_ascii_case(user.trim()) {
        return Ok(());
    }
    Err(AccountMismatch {
        qr_account: account.to_owned(),
        user: user.trim().to_owned(),
    })
}

/// The label as the QR code wrote it: `Org:account` (Microsoft: the
/// organisation before the colon, `issuer=Microsoft` in the query), or the
/// account alone.
pub fn qr_label(credential: &Credential) -> Option<String> {
    let prefix = credential
        .label_issuer
        .as_deref()
        .or(credential.issuer.as_deref());
    match (prefix, credential.account.is_empty()) {
        (Some(prefix), false) => Some(format!("{prefix}:{}", credential.account)),
        (Some(prefix), true) => Some(prefix.to_owned()),
        (None, false) => Some(credential.account.clone()),
        (None, true) => None,
    }
}

/// The organisation the account belongs to: the label's prefix (Microsoft
/// writes the tenant's name there), else the issuer, else the UPN's domain
/// without its suffix (`contoso` of `bob@contoso.com`).
pub fn organisation(credential: &Credential, upn: &str) -> String {
    credential
        .label_issuer
        .as_deref()
        .or(credential.issuer.as_deref())
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            upn.split_once('@')
                .map(|(_, domain)| domain.split('.').next().unwrap_or(domain).to_owned())
                .unwrap_or_default()
        })
}

/// A title template with a placeholder oathdesk does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the title template '{template}' has {problem}: use {{org}}, {{upn}} and {{upn-local}} \
     (e.g. '{DEFAULT_TITLE_TEMPLATE}')"
)]
pub struct TemplateError {
    pub template: String,
    pub problem: String,
}

/// Renders `template` into a Molto-2 title of at most 12 bytes. When it
/// does not fit, `{org}` gives way first (down to 4 bytes) so the user part
/// that tells profiles apart survives; then the end is cut. Control
/// characters are dropped and spaces squeezed.
pub fn title(template: &str, org: &str, upn: &str) -> Result<String, TemplateError> {
    let local = upn.split('@').next().unwrap_or(upn);
    let render = |org: &str| -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                return Err(TemplateError {
                    template: template.to_owned(),
                    problem: "a '{' without '}'".into(),
                });
            };
            let name = &rest[start + 1..start + end];
            out.push_str(match name {
                "org" => org,
                "upn" => upn,
                "upn-local" => local,
                other => {
                    return Err(TemplateError {
                        template: template.to_owned(),
                        problem: format!("the unknown placeholder {{{other}}}"),
                    });
                }
            });
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        let cleaned: String = out.chars().filter(|c| !c.is_control()).collect();
        Ok(cleaned.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    const MAX: usize = 12;
    let mut rendered = render(org)?;
    if rendered.len() > MAX && template.contains("{org}") {
        let over = rendered.len() - MAX;
        let keep = org.len().saturating_sub(over).max(4);
        rendered = render(truncate_utf8(org, keep).trim_end())?;
    }
    let fitted = truncate_utf8(&rendered, MAX).trim_end().to_owned();
    if check_title(&fitted).is_err() {
        return Err(TemplateError {
            template: template.to_owned(),
            problem: "an empty result".into(),
        });
    }
    Ok(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oathdesk_otp::Secret;

    fn microsoft(account: &str) -> Credential {
        let mut c = Credential::totp(Secret::from_bytes(vec![1; 20]));
        c.issuer = Some("Microsoft".into());
        c.label_issuer = Some("Contoso".into());
        c.account = account.into();
        c
    }

    #[test]
    fn another_users_qr_code_is_refused() {
        let alice = microsoft("alice@contoso.com");
        let refusal = check_account(&alice, "bob@contoso.com").unwrap_err();
        assert_eq!(refusal.qr_account, "alice@contoso.com");
        assert!(refusal.to_string().contains("--force"));
        assert!(check_account(&alice, "Alice@Contoso.com").is_ok());
        assert!(check_account(&microsoft(""), "bob@contoso.com").is_ok());
    }

    #[test]
    fn the_label_and_organisation_are_the_qr_codes() {
        let c = microsoft("bob@contoso.com");
        assert_eq!(qr_label(&c).as_deref(), Some("Contoso:bob@contoso.com"));
        assert_eq!(organisation(&c, "bob@contoso.com"), "Contoso");
        let mut plain = Credential::totp(Secret::from_bytes(vec![1; 20]));
        plain.account = "bob".into();
        assert_eq!(organisation(&plain, "bob@fabrikam.example"), "fabrikam");
        plain.issuer = Some("GitHub".into());
        assert_eq!(qr_label(&plain).as_deref(), Some("GitHub:bob"));
    }

    #[test]
    fn titles_fit_twelve_bytes_and_keep_the_user() {
        assert_eq!(
            title(DEFAULT_TITLE_TEMPLATE, "Contoso", "bob@contoso.com").unwrap(),
            "Contoso bob"
        );
        // The organisation gives way to the user.
        assert_eq!(
            title(DEFAULT_TITLE_TEMPLATE, "Contoso Ltd", "alice@contoso.com").unwrap(),
            "Contos alice"
        );
        assert_eq!(
            title(DEFAULT_TITLE_TEMPLATE, "Contoso", "bernadette@contoso.com").unwrap(),
            "Cont bernade"
        );
        assert_eq!(title("{org}", "Contoso", "bob@x").unwrap(), "Contoso");
        // Multi-byte characters are never cut in half.
        let t = title("{upn-local}", "", "bérénice.dupont@x").unwrap();
        assert!(t.len() <= 12 && t.starts_with("bérénice"), "{t}");
        assert!(title("{tenant}", "Contoso", "bob@x").is_err());
        assert!(title("{org", "Contoso", "bob@x").is_err());
        assert!(title("{org}", "", "bob@x").is_err());
    }
}
