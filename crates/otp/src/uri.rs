//! `otpauth://` Key URIs (the Google Authenticator "Key Uri Format").
//!
//! `otpauth://TYPE/LABEL?secret=…&issuer=…&algorithm=…&digits=…&period=…&counter=…`
//!
//! Reading is lenient where real producers differ and strict where a wrong
//! guess would give wrong codes:
//! - scheme, type, parameter names and algorithm names in any case;
//! - the label is `issuer:account` or `account`; a `+` in the issuer part
//!   means a space (Microsoft writes `Some+Company%3Aalice%40contoso.com`),
//!   while a `+` in the account stays a `+` (sub-addressed e-mail);
//! - when the label's issuer differs from `issuer=` (Microsoft always says
//!   `issuer=Microsoft`), the parameter wins and the label's is kept in
//!   [`Credential::label_issuer`];
//! - a repeated parameter, an unknown type or algorithm, or a bad number is
//!   an error: which of two `secret=` values is right cannot be guessed.
//! - unknown parameters (`image=`, `color=`) are ignored.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::credential::{Credential, Kind};
use crate::params::{Algorithm, Digits, TimeStep};
use crate::secret::{Secret, SecretError};
use crate::text::{strip_prefix_ignore_case, truncate_for_message};

/// Characters left as they are in labels and values: RFC 3986 unreserved,
/// plus `@` so e-mail accounts stay readable.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// Why a Key URI could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("not an otpauth URI: it must start with otpauth://totp/ or otpauth://hotp/")]
    Scheme,
    #[error(
        "this is a Google Authenticator export (otpauth-migration://); it holds several \
         accounts — decode it as a migration payload"
    )]
    IsMigration,
    #[error("unknown OTP type '{0}' in the URI: use totp or hotp")]
    Type(String),
    #[error("the URI has no secret= parameter")]
    MissingSecret,
    #[error("the URI's secret= parameter: {0}")]
    Secret(SecretError),
    #[error("the parameter {0}= appears more than once; which one is right cannot be guessed")]
    Duplicate(String),
    #[error("the URI's {name}= parameter: {problem}")]
    Parameter { name: &'static str, problem: String },
    #[error("the URI's label is not valid UTF-8 after percent-decoding")]
    LabelEncoding,
    #[error(
        "an otpauth URI cannot carry a start time T0 other than 0 (this credential has T0 = {0})"
    )]
    StartTime(u64),
    #[error("the issuer may not contain ':' in an otpauth label")]
    IssuerColon,
}

/// Reads an `otpauth://` URI.
pub fn parse(uri: &str) -> Result<Credential, UriError> {
    let uri = uri.trim();
    let Some(rest) = strip_prefix_ignore_case(uri, "otpauth://") else {
        if strip_prefix_ignore_case(uri, "otpauth-migration://").is_some() {
            return Err(UriError::IsMigration);
        }
        return Err(UriError::Scheme);
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (kind_name, label) = before_query.split_once('/').unwrap_or((before_query, ""));
    let is_hotp = match kind_name.to_ascii_lowercase().as_str() {
        "totp" => false,
        "hotp" => true,
        other => return Err(UriError::Type(truncate_for_message(other))),
    };
    let (label_prefix, account) = parse_label(label)?;

    let mut secret = None;
    let mut issuer = None;
    let mut algorithm = None;
    let mut digits = None;
    let mut period = None;
    let mut counter = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let key = key.to_ascii_lowercase();
        match key.as_str() {
            "secret" => set_once(&mut secret, &key, value.into_owned())?,
            "issuer" => set_once(&mut issuer, &key, value.into_owned())?,
            "algorithm" => set_once(&mut algorithm, &key, value.into_owned())?,
            "digits" => set_once(&mut digits, &key, value.into_owned())?,
            "period" => set_once(&mut period, &key, value.into_owned())?,
            "counter" => set_once(&mut counter, &key, value.into_owned())?,
            _ => {}
        }
    }

    let secret_text = zeroize::Zeroizing::new(secret.ok_or(UriError::MissingSecret)?);
    let secret = Secret::from_base32(&secret_text).map_err(UriError::Secret)?;
    let algorithm = match algorithm {
        Some(name) => name.parse::<Algorithm>().map_err(|_| UriError::Parameter {
            name: "algorithm",
            problem: format!(
                "'{}' is not SHA1, SHA256 or SHA512",
                truncate_for_message(&name)
            ),
        })?,
        None => Algorithm::Sha1,
    };
    let digits = match digits {
        Some(text) => {
            let number = parse_number("digits", &text)?;
            Digits::new(number).map_err(|e| UriError::Parameter {
                name: "digits",
                problem: e.to_string(),
            })?
        }
        None => Digits::SIX,
    };
    let kind = if is_hotp {
        // The Key URI format requires counter= for HOTP; Google
        // Authenticator itself reads a missing one as 0, and so do we.
        let counter = match counter {
            Some(text) => parse_number("counter", &text)?,
            None => 0,
        };
        Kind::Hotp { counter }
    } else {
        let period = match period {
            Some(text) => parse_number("period", &text)?,
            None => 30,
        };
        let step = TimeStep::new(period, 0).map_err(|e| UriError::Parameter {
            name: "period",
            problem: e.to_string(),
        })?;
        Kind::Totp { step }
    };

    // Trimmed like the label's issuer, so that the two compare as they
    // would be written (and as migration payloads are read).
    let issuer = issuer.map(|i| i.trim().to_owned());
    let (issuer, label_issuer) = crate::credential::settle_issuers(issuer, label_prefix);
    Ok(Credential {
        secret,
        kind,
        algorithm,
        digits,
        issuer,
        account,
        label_issuer,
    })
}

/// Writes a credential as an `otpauth://` URI. Parameters at their default
/// value (SHA1, 6 digits, 30 s) are left out: shorter QR codes, and apps
/// that ignore them lose nothing.
pub fn format(credential: &Credential) -> Result<String, UriError> {
    let label_issuer = credential
        .label_issuer
        .as_deref()
        .or(credential.issuer.as_deref());
    let mut uri = String::with_capacity(128);
    uri.push_str("otpauth://");
    uri.push_str(credential.kind.name());
    uri.push('/');
    if let Some(prefix) = label_issuer {
        if prefix.contains(':') {
            return Err(UriError::IssuerColon);
        }
        uri.extend(utf8_percent_encode(prefix, COMPONENT));
        uri.push(':');
    } else if credential.account.contains(':') {
        // Readers split the label at the first ':' or '%3A', escaped or
        // not; an empty issuer prefix keeps the account whole.
        uri.push(':');
    }
    uri.extend(utf8_percent_encode(&credential.account, COMPONENT));
    uri.push_str("?secret=");
    uri.push_str(&credential.secret.to_base32());
    if let Some(issuer) = &credential.issuer {
        uri.push_str("&issuer=");
        uri.extend(utf8_percent_encode(issuer, COMPONENT));
    }
    if credential.algorithm != Algorithm::Sha1 {
        uri.push_str("&algorithm=");
        uri.push_str(credential.algorithm.uri_name());
    }
    if credential.digits != Digits::SIX {
        uri.push_str(&format!("&digits={}", credential.digits));
    }
    match credential.kind {
        Kind::Hotp { counter } => uri.push_str(&format!("&counter={counter}")),
        Kind::Totp { step } => {
            if step.t0() != 0 {
                return Err(UriError::StartTime(step.t0()));
            }
            if step.period() != 30 {
                uri.push_str(&format!("&period={}", step.period()));
            }
        }
    }
    Ok(uri)
}

/// Splits and decodes a label into (issuer prefix, account).
fn parse_label(label: &str) -> Result<(Option<String>, String), UriError> {
    let separator = label.char_indices().find_map(|(i, c)| match c {
        ':' => Some((i, 1)),
        // Bytes, not a str slice: a multi-byte character may follow the '%'.
        '%' if label
            .as_bytes()
            .get(i + 1..i + 3)
            .is_some_and(|hex| hex.eq_ignore_ascii_case(b"3a")) =>
        {
            Some((i, 3))
        }
        _ => None,
    });
    let decode = |raw: &str| {
        percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| UriError::LabelEncoding)
    };
    match separator {
        Some((at, width)) => {
            let prefix = decode(&label[..at].replace('+', " "))?;
            let account = decode(&label[at + width..])?;
            Ok((Some(prefix.trim().to_owned()), account.trim().to_owned()))
        }
        None => Ok((None, decode(label)?.trim().to_owned())),
    }
}

fn set_once(slot: &mut Option<String>, key: &str, value: String) -> Result<(), UriError> {
    if slot.is_some() {
        return Err(UriError::Duplicate(key.to_owned()));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_number(name: &'static str, text: &str) -> Result<u64, UriError> {
    text.trim().parse::<u64>().map_err(|_| UriError::Parameter {
        name,
        problem: format!("'{}' is not a whole number", truncate_for_message(text)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_example() {
        let c =
            parse("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example")
                .unwrap();
        assert_eq!(c.issuer.as_deref(), Some("Example"));
        assert_eq!(c.account, "alice@google.com");
        assert_eq!(c.label_issuer, None);
        assert_eq!(c.secret.as_bytes(), b"Hello!\xde\xad\xbe\xef");
        assert_eq!(
            c.kind,
            Kind::Totp {
                step: TimeStep::DEFAULT
            }
        );
        assert_eq!(
            format(&c).unwrap(),
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example"
        );
    }

    #[test]
    fn microsoft_form_keeps_both_issuers() {
        let uri = "otpauth://totp/Some+Company%3ame%40somecompany.net?secret=abcdefghijklmnop&issuer=Microsoft";
        let c = parse(uri).unwrap();
        assert_eq!(c.issuer.as_deref(), Some("Microsoft"));
        assert_eq!(c.label_issuer.as_deref(), Some("Some Company"));
        assert_eq!(c.account, "me@somecompany.net");
        assert_eq!(c.digits, Digits::SIX);
        let again = parse(&format(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn plus_in_account_is_kept() {
        let c = parse("otpauth://totp/ACME:alice+otp@example.com?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(c.account, "alice+otp@example.com");
        assert_eq!(c.issuer.as_deref(), Some("ACME"));
    }

    #[test]
    fn all_parameters() {
        let c = parse(
            "OTPAUTH://HOTP/ACME%20Co:%20bob?SECRET=gezdgnbvgy3tqojq&algorithm=sha256&digits=8&counter=42&image=x",
        )
        .unwrap();
        assert_eq!(c.kind, Kind::Hotp { counter: 42 });
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.digits, Digits::EIGHT);
        assert_eq!(c.issuer.as_deref(), Some("ACME Co"));
        assert_eq!(c.account, "bob");
        assert_eq!(
            format(&c).unwrap(),
            "otpauth://hotp/ACME%20Co:bob?secret=GEZDGNBVGY3TQOJQ&issuer=ACME%20Co&algorithm=SHA256&digits=8&counter=42"
        );
        let c = parse("otpauth://totp/x?secret=GEZDGNBV&period=60").unwrap();
        assert_eq!(
            c.kind,
            Kind::Totp {
                step: TimeStep::new(60, 0).unwrap()
            }
        );
        assert_eq!(c.issuer, None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(parse("https://example.com"), Err(UriError::Scheme));
        assert_eq!(
            parse("otpauth-migration://offline?data=AA"),
            Err(UriError::IsMigration)
        );
        assert_eq!(
            parse("otpauth://motp/x?secret=AA"),
            Err(UriError::Type("motp".into()))
        );
        assert_eq!(
            parse("otpauth://totp/x?issuer=A"),
            Err(UriError::MissingSecret)
        );
        assert_eq!(
            parse("otpauth://totp/x?secret=AAAA&secret=BBBB"),
            Err(UriError::Duplicate("secret".into()))
        );
        let err = parse("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=12").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the URI's digits= parameter: codes have 4 to 10 digits, not 12"
        );
        assert!(parse("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=0").is_err());
        assert!(parse("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5").is_err());
        let err = parse("otpauth://totp/x?secret=JBSWY3D8EHPK3PXP").unwrap_err();
        assert!(!err.to_string().contains("JBSW"), "{err}");
    }

    #[test]
    fn t0_cannot_be_written() {
        let mut c = Credential::totp(Secret::from_bytes(vec![1, 2, 3]));
        c.kind = Kind::Totp {
            step: TimeStep::new(30, 5).unwrap(),
        };
        assert_eq!(format(&c), Err(UriError::StartTime(5)));
    }
}
