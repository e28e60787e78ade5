//! What the console asks of the world outside the vault: a Temporary
//! Access Pass from Entra, and the notices that tell users of a release.
//!
//! The server knows neither Microsoft Graph nor webhooks; the binary that
//! starts it (`oathdesk serve`) wires them in through [`Outbound`], with the
//! same code its command line uses. The vault decides every time (a pass is
//! permitted or refused, a notice is queued) and records what came back.

use std::fmt;
use std::sync::Arc;

use oathdesk_vault::{Session, TapPermit};
use serde::Serialize;
use zeroize::Zeroizing;

/// A pass as Entra issued it: shown once to the operator, kept nowhere.
#[derive(Serialize)]
pub struct IssuedPass {
    /// Entra's id of the authentication method (audited).
    #[serde(skip)]
    pub method_id: String,
    #[serde(serialize_with = "expose")]
    pub temporary_access_pass: Zeroizing<String>,
    pub lifetime_minutes: u32,
    pub usable_once: bool,
    /// When it becomes usable (ISO 8601), as Entra says.
    pub start: Option<String>,
}

fn expose<S: serde::Serializer>(pass: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(pass)
}

/// Calls out of the console. Blocking: the server runs them off the async
/// threads. An error is a sentence for the operator (and the audit log).
pub trait Outbound: Send + Sync {
    /// Whether passes can be issued (the console is connected to Entra).
    fn tap_connected(&self) -> bool;
    /// Asks the identity provider for a pass the vault permitted.
    fn issue_tap(&self, permit: &TapPermit) -> Result<IssuedPass, String>;
    /// Sends the queued notices with this session (each outcome is
    /// recorded in the vault); returns (sent, not sent).
    fn send_notices(&self, session: &mut Session) -> Result<(u64, u64), String>;
}

/// The console's outbound calls, if any are configured.
#[derive(Clone, Default)]
pub struct OutboundHook(pub Option<Arc<dyn Outbound>>);

impl fmt::Debug for OutboundHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "OutboundHook(configured)"
        } else {
            "OutboundHook(none)"
        })
    }
}
