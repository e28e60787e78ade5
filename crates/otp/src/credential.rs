//! A credential: a secret with everything needed to compute its codes and
//! to tell a person which account it belongs to.

use crate::engine::{Hotp, Totp};
use crate::params::{Algorithm, Digits, TimeStep};
use crate::secret::Secret;

/// Event-based or time-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// HOTP with its next counter.
    Hotp { counter: u64 },
    /// TOTP with its time step.
    Totp { step: TimeStep },
}

impl Kind {
    /// `hotp` or `totp`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hotp { .. } => "hotp",
            Kind::Totp { .. } => "totp",
        }
    }
}

impl Default for Kind {
    fn default() -> Kind {
        Kind::Totp {
            step: TimeStep::DEFAULT,
        }
    }
}

/// A secret and its parameters, plus the labels people know it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The shared key.
    pub secret: Secret,
    /// HOTP or TOTP, with counter or time step.
    pub kind: Kind,
    /// Hash function.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: Digits,
    /// Who issued it (the service), when known.
    pub issuer: Option<String>,
    /// The account name (often an e-mail address or UPN). May be empty.
    pub account: String,
    /// The issuer prefix of an otpauth label when it differs from `issuer`.
    /// Microsoft's URIs put the organisation name in the label and
    /// `issuer=Microsoft` in the query; keeping both lets such a URI be
    /// written back unchanged.
    pub label_issuer: Option<String>,
}

impl Credential {
    /// A TOTP credential with the default parameters (SHA-1, 6 digits, 30 s).
    pub fn totp(secret: Secret) -> Credential {
        Credential {
            secret,
            kind: Kind::default(),
            algorithm: Algorithm::default(),
            digits: Digits::default(),
            issuer: None,
            account: String::new(),
            label_issuer: None,
        }
    }

    /// The HOTP generator for this secret (also the core of TOTP).
    pub fn hotp(&self) -> Hotp {
        Hotp::new(&self.secret, self.algorithm, self.digits)
    }

    /// The TOTP generator, for TOTP credentials.
    pub fn totp_generator(&self) -> Option<Totp> {
        match self.kind {
            Kind::Totp { step } => Some(Totp::new(&self.secret, self.algorithm, self.digits, step)),
            Kind::Hotp { .. } => None,
        }
    }

    /// "Issuer: account", or just the account, for display.
    pub fn display_name(&self) -> String {
        match (&self.issuer, self.account.is_empty()) {
            (Some(issuer), false) => format!("{issuer}: {}", self.account),
            (Some(issuer), true) => issuer.clone(),
            (None, _) => self.account.clone(),
        }
    }
}

/// Settles who the issuer is when a label prefix and an explicit issuer
/// (`issuer=`, or a payload's issuer field) may both be given: the explicit
/// one wins, and a prefix that differs from it is kept as the label issuer
/// (Microsoft's organisation name beside `issuer=Microsoft`). Returns
/// `(issuer, label_issuer)`.
pub(crate) fn settle_issuers(
    explicit: Option<String>,
    prefix: Option<String>,
) -> (Option<String>, Option<String>) {
    let explicit = explicit.filter(|i| !i.is_empty());
    let prefix = prefix.filter(|p| !p.is_empty());
    match (explicit, prefix) {
        (Some(explicit), Some(prefix)) if explicit != prefix => (Some(explicit), Some(prefix)),
        (Some(explicit), _) => (Some(explicit), None),
        (None, prefix) => (prefix, None),
    }
}
