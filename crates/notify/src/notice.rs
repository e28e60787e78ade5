//! The data of one notice.
//!
//! A notice is read by the person whose account the helpdesk acted on, and
//! by whatever receives the webhook: neither must learn a code or a pass
//! from it. So there is no field that could hold one — a secret cannot leak
//! through a notice because a notice has nowhere to put it.

use serde::{Deserialize, Serialize};

/// What the helpdesk did for (or refused to) a caller who named a user.
///
/// The serde names (`code_released`, …) are part of the webhook document
/// and do not change within its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A sign-in code was read to the caller (after a second operator's
    /// approval, when [`Notice::approver`] is set).
    CodeReleased,
    /// The caller asked for a code and the operator refused.
    CodeRefused,
    /// An Entra Temporary Access Pass was issued for the user.
    TemporaryAccessPassIssued,
    /// A release waits for a second operator's approval: nothing was given
    /// out yet, but the user hears of it before anything is.
    ApprovalRequested,
}

impl Event {
    /// Every event, for tests and for receivers' documentation.
    pub const ALL: [Event; 4] = [
        Event::CodeReleased,
        Event::CodeRefused,
        Event::TemporaryAccessPassIssued,
        Event::ApprovalRequested,
    ];

    /// The name used in the webhook document (`code_released`, …).
    pub fn name(self) -> &'static str {
        match self {
            Event::CodeReleased => "code_released",
            Event::CodeRefused => "code_refused",
            Event::TemporaryAccessPassIssued => "temporary_access_pass_issued",
            Event::ApprovalRequested => "approval_requested",
        }
    }
}

/// One notice: who, what, when, by whom. Nothing secret by construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// A unique delivery id chosen by the caller (a UUID, say). Retries of
    /// one notice carry the same id, so a receiver drops ids it has seen.
    pub id: String,
    pub event: Event,
    /// When it happened, in Unix seconds.
    pub at: u64,
    /// The user the caller claimed to be.
    pub user_upn: String,
    pub user_display_name: Option<String>,
    /// The helpdesk operator who acted.
    pub operator: String,
    /// The second operator who approved a release, or (for
    /// [`Event::ApprovalRequested`]) who was asked to.
    pub approver: Option<String>,
    pub ticket: Option<String>,
    /// How the caller was verified (the name of the verification method).
    pub method: Option<String>,
    /// Why a release was refused.
    pub reason: Option<String>,
    /// Who sends the notice, as users know them ("Contoso IT").
    pub organisation: Option<String>,
    /// Where to report misuse (a phone number, a mail address), as an admin
    /// configured it.
    pub report_to: Option<String>,
}

impl Notice {
    /// A notice with the required fields and every optional one unset.
    pub fn new(
        id: impl Into<String>,
        event: Event,
        at: u64,
        user_upn: impl Into<String>,
        operator: impl Into<String>,
    ) -> Notice {
        Notice {
            id: id.into(),
            event,
            at,
            user_upn: user_upn.into(),
            user_display_name: None,
            operator: operator.into(),
            approver: None,
            ticket: None,
            method: None,
            reason: None,
            organisation: None,
            report_to: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_match_serde() {
        for event in Event::ALL {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.name()));
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, event);
        }
    }
}
