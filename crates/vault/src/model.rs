//! What the vault holds: users, devices, credentials and their lifecycle.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

/// Where a credential is in its life.
///
/// ```text
/// stock → burned → assigned → shipped → delivered
///                                  (any) → lost, retired
///   (new) → burning → burned, retired
/// ```
/// Pre-seeded (classic) tokens start in `stock` with their secret and skip
/// `burned`. `lost` can be found again (back to `assigned`); `retired` is
/// the end.
///
/// `burning` marks a secret that is being written into a programmable
/// token's slot: the vault records it (with device serial and slot) before
/// the first write, so a burn cut short — cable pulled, Ctrl-C — leaves the
/// slot visibly unfinished instead of unrecorded. It ends in `burned` once
/// the token confirmed the write, or `retired` when the slot is burned again
/// with another secret before that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Stock,
    Burning,
    Burned,
    Assigned,
    Shipped,
    Delivered,
    Lost,
    Retired,
}

impl State {
    /// All states, in lifecycle order.
    pub const ALL: [State; 8] = [
        State::Stock,
        State::Burning,
        State::Burned,
        State::Assigned,
        State::Shipped,
        State::Delivered,
        State::Lost,
        State::Retired,
    ];

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            State::Stock => "stock",
            State::Burning => "burning",
            State::Burned => "burned",
            State::Assigned => "assigned",
            State::Shipped => "shipped",
            State::Delivered => "delivered",
            State::Lost => "lost",
            State::Retired => "retired",
        }
    }

    /// The states reachable from this one.
    pub fn successors(self) -> &'static [State] {
        use State::*;
        match self {
            Stock => &[Burned, Assigned, Lost, Retired],
            Burning => &[Burned, Retired],
            Burned => &[Assigned, Lost, Retired],
            Assigned => &[Shipped, Delivered, Lost, Retired],
            Shipped => &[Delivered, Lost, Retired],
            Delivered => &[Lost, Retired],
            Lost => &[Assigned, Retired],
            Retired => &[],
        }
    }

    /// Whether codes computed from the vault's copy of the secret may stand
    /// for the token's own — a helpdesk code, an activation in Entra. Not
    /// for a lost or retired token, nor while a burn is unconfirmed: the
    /// token may hold another seed than the vault's.
    pub fn vouches_for_codes(self) -> bool {
        !matches!(self, State::Burning | State::Lost | State::Retired)
    }

    /// Checks a transition and explains a refusal.
    pub fn check_transition(self, to: State) -> Result<()> {
        if self.successors().contains(&to) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.successors().iter().map(|s| s.name()).collect();
        Err(Error::Refused(if allowed.is_empty() {
            format!("the credential is {self}, which is final: it cannot become {to}")
        } else {
            format!(
                "a credential that is {self} cannot become {to}; from {self} it can become {}",
                allowed.join(", ")
            )
        }))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for State {
    type Err = Error;
    fn from_str(s: &str) -> Result<State> {
        State::ALL
            .into_iter()
            .find(|state| state.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                // Named from ALL, so a new state cannot be left out.
                let (last, rest) = State::ALL.split_last().expect("there are states");
                let names: Vec<&str> = rest.iter().map(|state| state.name()).collect();
                Error::Invalid(format!(
                    "unknown state '{s}': use {} or {last}",
                    names.join(", ")
                ))
            })
    }
}

/// Whether the vault still holds a credential's secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Custody {
    Held,
    Purged,
}

impl Custody {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Custody::Held => "held",
            Custody::Purged => "purged",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Custody> {
        match s {
            "held" => Ok(Custody::Held),
            "purged" => Ok(Custody::Purged),
            _ => Err(Error::Database(format!("unknown custody '{s}'"))),
        }
    }
}

/// The kinds of hardware token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// Programmable with several profiles (Token2 Molto-2: 100).
    MultiProfile,
    /// Programmable with one profile (Token2 NFC tokens).
    SingleProfile,
    /// Seeded at the factory; the vendor ships the secrets.
    Classic,
    /// No hardware known (an authenticator app, or an unlabelled import).
    Unknown,
}

impl DeviceKind {
    /// The name used in commands and JSON.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::MultiProfile => "multi-profile",
            DeviceKind::SingleProfile => "single-profile",
            DeviceKind::Classic => "classic",
            DeviceKind::Unknown => "unknown",
        }
    }
}

impl FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<DeviceKind> {
        match s.to_ascii_lowercase().as_str() {
            "multi-profile" | "multi" | "molto2" | "molto-2" => Ok(DeviceKind::MultiProfile),
            "single-profile" | "single" | "nfc" => Ok(DeviceKind::SingleProfile),
            "classic" | "pre-seeded" | "preseeded" => Ok(DeviceKind::Classic),
            "unknown" => Ok(DeviceKind::Unknown),
            _ => Err(Error::Invalid(format!(
                "unknown device kind '{s}': use multi-profile, single-profile or classic"
            ))),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A person who gets tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub upn: String,
    pub display_name: Option<String>,
    pub created_at: u64,
}

/// A hardware token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: i64,
    pub serial: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub kind: DeviceKind,
    pub slots: u32,
    pub created_at: u64,
}

/// A credential as stored: parameters, lifecycle and the sealed secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRow {
    pub id: i64,
    pub device_id: Option<i64>,
    pub slot: Option<u32>,
    /// `totp` or `hotp`.
    pub kind: String,
    pub algorithm: String,
    pub digits: u8,
    pub period: Option<u64>,
    pub t0: Option<u64>,
    pub counter: Option<u64>,
    pub issuer: Option<String>,
    pub label: Option<String>,
    pub state: State,
    pub custody: Custody,
    pub sealed_secret: Option<Vec<u8>>,
    pub user_id: Option<i64>,
    /// Steps the token was off when last checked (negative: behind).
    pub drift_steps: Option<i64>,
    /// When a delivered credential's secret is to be purged.
    pub purge_after: Option<u64>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The device's serial (joined, read-only).
    pub serial: Option<String>,
    /// The assigned user's UPN (joined, read-only).
    pub upn: Option<String>,
    /// The device's manufacturer (joined, read-only).
    pub manufacturer: Option<String>,
    /// The device's model (joined, read-only).
    pub model: Option<String>,
}

/// A lifecycle transition, for a credential's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Event {
    pub credential_id: i64,
    pub from_state: Option<State>,
    pub to_state: State,
    pub operator: String,
    pub at: u64,
    pub note: Option<String>,
}

/// What Microsoft Entra holds of a credential, as oathdesk last saw it:
/// the hardware OATH device it created there, the user it assigned it to,
/// and how far activation got. Push and sync read and write these so that a
/// re-run resumes instead of creating duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntraLink {
    /// The tenant (id or domain, as configured).
    pub tenant: String,
    pub credential_id: i64,
    /// The serial number Entra knows (`SERIAL-NN` for a profile).
    pub serial: String,
    /// The `hardwareOathDevices` object id; `None` while a create is pending.
    pub device_id: Option<String>,
    /// The Entra object id of the assigned user.
    pub user_id: Option<String>,
    pub user_upn: Option<String>,
    /// The user's `hardwareOathMethods` id, when known.
    pub method_id: Option<String>,
    /// `pending` (create sent, answer not yet seen), `available`, `assigned`,
    /// `activated`, `failedActivation`, or `missing` (gone from Entra).
    pub status: String,
    /// The counter of the last activation code sent (never sent twice).
    pub last_counter: Option<u64>,
    /// When Entra's view was last read.
    pub last_sync: Option<u64>,
    /// Why the last step failed, if it did.
    pub last_error: Option<String>,
    pub updated_at: u64,
}

/// Why a serial cannot be a device's serial, if it cannot: the one rule
/// for every way a token enters the vault (an import of any format, the
/// helpdesk's spreadsheet, `token add`, a burn). A serial must stay
/// addressable as a [`TokenRef`] and in a URL, and never collide with
/// another token's reference:
///
/// - `:` separates a serial from its slot (`SERIAL:SLOT`): a classic token
///   `CONF:1` would share its reference with slot 1 of a Molto-2 `CONF`;
/// - `#` starts a credential id (`#ID`);
/// - `/`, `\`, `?` and `%` would make it ambiguous in a URL or a path;
/// - spaces and control characters cannot be told apart when read out;
/// - at most 64 characters.
///
/// A vault may hold serials from before this rule: their credentials are
/// addressed by `#ID` (their [`reference`](crate::TokenInfo::reference)
/// says so) and `oathdesk vault verify` names them.
pub fn serial_problem(serial: &str) -> Option<&'static str> {
    if serial.is_empty() {
        return Some("a serial cannot be empty");
    }
    if serial.chars().count() > 64 {
        return Some("a serial has at most 64 characters");
    }
    for c in serial.chars() {
        let why = match c {
            ':' => {
                "':' separates a serial from its slot (SERIAL:SLOT), so a serial may not contain it"
            }
            '#' => "'#' starts a credential id (#ID), so a serial may not contain it",
            '/' | '\\' | '?' | '%' => {
                "'/', '\\', '?' and '%' would make the serial ambiguous in a URL, so a serial may not contain them"
            }
            c if c.is_control() => "a serial may not contain control characters",
            c if c.is_whitespace() => "a serial may not contain spaces",
            _ => continue,
        };
        return Some(why);
    }
    None
}

/// [`serial_problem`] as an error naming the serial.
pub fn check_serial(serial: &str) -> Result<()> {
    match serial_problem(serial) {
        Some(rule) => Err(Error::InvalidSerial {
            serial: serial.escape_debug().to_string(),
            rule,
        }),
        None => Ok(()),
    }
}

/// Names a credential: `SERIAL`, `SERIAL:SLOT` or `#ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRef {
    /// A device's serial, with the slot for multi-profile devices.
    Serial { serial: String, slot: Option<u32> },
    /// The credential id (for credentials without a device).
    Id(i64),
}

impl FromStr for TokenRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<TokenRef> {
        let s = s.trim();
        if let Some(id) = s.strip_prefix('#') {
            return id
                .parse()
                .map(TokenRef::Id)
                .map_err(|_| Error::Invalid(format!("'{s}' is not a credential id (#NUMBER)")));
        }
        if s.is_empty() {
            return Err(Error::Invalid(
                "empty token reference: use SERIAL, SERIAL:SLOT or #ID".into(),
            ));
        }
        match s.rsplit_once(':') {
            Some((serial, slot)) => {
                let slot = slot.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "'{slot}' is not a slot number (in '{s}', use SERIAL:SLOT)"
                    ))
                })?;
                Ok(TokenRef::Serial {
                    serial: serial.to_owned(),
                    slot: Some(slot),
                })
            }
            None => Ok(TokenRef::Serial {
                serial: s.to_owned(),
                slot: None,
            }),
        }
    }
}

impl fmt::Display for TokenRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenRef::Serial {
                serial,
                slot: Some(slot),
            } => write!(f, "{serial}:{slot}"),
            TokenRef::Serial { serial, slot: None } => f.write_str(serial),
            TokenRef::Id(id) => write!(f, "#{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_that_would_collide_with_references_are_refused() {
        for good in [
            "2100123456",
            "M2-00071",
            "NFC-4410",
            "2.10012E+09",
            "S3_x.y",
        ] {
            assert_eq!(serial_problem(good), None, "{good}");
        }
        for bad in [
            "CONF:1",
            "S3javascript:alert(4)",
            "#12",
            "a/b",
            "a%2F",
            "a?b",
            "a b",
            "a\tb",
            "",
        ] {
            assert!(serial_problem(bad).is_some(), "{bad:?}");
        }
        let error = check_serial("CONF:1").unwrap_err();
        assert!(matches!(error, Error::InvalidSerial { .. }));
        let text = error.to_string();
        assert!(
            text.contains("'CONF:1'") && text.contains("SERIAL:SLOT"),
            "{text}"
        );
    }

    #[test]
    fn lifecycle_refusals_explain_the_way() {
        assert!(State::Stock.check_transition(State::Burned).is_ok());
        assert!(State::Shipped.check_transition(State::Delivered).is_ok());
        let err = State::Stock.check_transition(State::Shipped).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a credential that is stock cannot become shipped; from stock it can become burned, assigned, lost, retired"
        );
        assert_eq!(
            "sent".parse::<State>().unwrap_err().to_string(),
            "unknown state 'sent': use stock, burning, burned, assigned, shipped, delivered, lost or retired"
        );
        // A burn in progress ends burned, or retired when superseded.
        assert!(State::Burning.check_transition(State::Burned).is_ok());
        let vouching: Vec<State> = State::ALL
            .into_iter()
            .filter(|s| s.vouches_for_codes())
            .collect();
        assert_eq!(
            vouching,
            [
                State::Stock,
                State::Burned,
                State::Assigned,
                State::Shipped,
                State::Delivered
            ]
        );
        let err = State::Burning
            .check_transition(State::Assigned)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a credential that is burning cannot become assigned; from burning it can become burned, retired"
        );
        let err = State::Retired
            .check_transition(State::Assigned)
            .unwrap_err();
        assert!(err.to_string().contains("final"), "{err}");
    }

    #[test]
    fn token_refs() {
        assert_eq!(
            "T2-123:7".parse::<TokenRef>().unwrap(),
            TokenRef::Serial {
                serial: "T2-123".into(),
                slot: Some(7)
            }
        );
        assert_eq!("#42".parse::<TokenRef>().unwrap(), TokenRef::Id(42));
        assert!("ABC:x".parse::<TokenRef>().is_err());
        assert_eq!(
            "2100123456".parse::<TokenRef>().unwrap().to_string(),
            "2100123456"
        );
    }
}
