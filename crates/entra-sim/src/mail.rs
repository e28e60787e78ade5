//! Mail: `POST /users/{id | userPrincipalName}/sendMail` with a JSON
//! message, answered `202 Accepted` without a body (Microsoft's
//! user: sendMail). Nothing is delivered: every accepted message is kept,
//! for tests to read with [`Simulator::sent_mail`].
//!
//! - An unknown mailbox answers `404 ErrorInvalidUser` "The requested user
//!   '…' is invalid." (*observed* answer of Exchange Online);
//! - no recipient, or an address without `@`, answers
//!   `400 ErrorInvalidRecipients` (*observed* code; the second sentence of
//!   the message is *inference*);
//! - an app needs `Mail.Send` (else `403 ErrorAccessDenied`, *observed*);
//!   a signed-in user sends only from their own mailbox;
//! - every directory user has a mailbox, reached by object id, UPN or
//!   `mail` (*inference*: a tenant where everyone is licensed for Exchange).
//!
//! Property names of the body are read without regard to case, as Graph
//! does (its own example writes `"Message"`).

use serde_json::Value;

use crate::Simulator;
use crate::access::Op;
use crate::server::{Handled, Reply};
use crate::state::{FaultKind, Request, State};

/// A message the simulator accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMail {
    /// The mailbox as the request named it (`/users/{from}/sendMail`).
    pub from: String,
    /// The sender's object id.
    pub from_id: String,
    /// `toRecipients` addresses, in order.
    pub to: Vec<String>,
    /// `ccRecipients` addresses, in order.
    pub cc: Vec<String>,
    pub subject: String,
    /// `Text` or `HTML`, as sent.
    pub content_type: String,
    pub body: String,
    pub save_to_sent_items: bool,
    /// The simulator's time when it was accepted (Unix seconds).
    pub at: u64,
}

impl Simulator {
    /// Every message accepted so far, oldest first.
    pub fn sent_mail(&self) -> Vec<SentMail> {
        self.state().sent_mail.clone()
    }

    /// Forgets the messages accepted so far.
    pub fn clear_sent_mail(&self) {
        self.state().sent_mail.clear();
    }

    /// The next `times` sendMail requests answer `503` and send nothing
    /// (a passing Exchange outage; the client's retries should carry it).
    pub fn fail_next_sends(&self, times: u32) {
        self.fault(
            Some("POST"),
            "/sendMail",
            times,
            FaultKind::Fail { status: 503 },
        );
    }
}

/// A property of a JSON object, its name matched without regard to case.
fn field<'v>(object: &'v Value, name: &str) -> Option<&'v Value> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

fn bad(message: &str) -> Reply {
    Reply::error(400, "ErrorInvalidRequest", message)
}

/// The addresses of a recipient list (`[{"emailAddress": {"address"}}]`).
fn addresses(message: &Value, name: &str) -> Result<Vec<String>, Reply> {
    let Some(list) = field(message, name) else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(bad(&format!("{name} must be an array of recipients.")));
    };
    list.iter()
        .map(|recipient| {
            field(recipient, "emailAddress")
                .and_then(|e| field(e, "address"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(&format!("Each of {name} needs emailAddress.address.")))
        })
        .collect()
}

impl State {
    /// `POST /users/{from}/sendMail`.
    pub(crate) fn send_mail(&mut self, request: &Request, from: &str) -> Handled {
        let sender = self
            .find_user(from)
            .or_else(|| {
                self.users.values().find(|u| {
                    u.mail
                        .as_deref()
                        .is_some_and(|mail| mail.eq_ignore_ascii_case(from))
                })
            })
            .map(|u| u.id.clone());
        // The permission is checked before the mailbox is looked up: an app
        // without Mail.Send learns nothing about mailboxes.
        if let crate::signin::Principal::App { .. } = request.principal {
            self.allowed(&request.principal, Op::SendMail, sender.as_deref())?;
        }
        let Some(sender) = sender else {
            return Err(Reply::error(
                404,
                "ErrorInvalidUser",
                &format!("The requested user '{from}' is invalid."),
            ));
        };
        self.allowed(&request.principal, Op::SendMail, Some(&sender))?;
        let body = request.json()?;
        let Some(message) = field(&body, "message").filter(|m| m.is_object()) else {
            return Err(bad("The message parameter is required."));
        };
        let to = addresses(message, "toRecipients")?;
        let cc = addresses(message, "ccRecipients")?;
        let bcc = addresses(message, "bccRecipients")?;
        if to.is_empty() && cc.is_empty() && bcc.is_empty() {
            return Err(Reply::error(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
            ));
        }
        if let Some(wrong) = to.iter().chain(&cc).chain(&bcc).find(|a| {
            let mut parts = a.split('@');
            !matches!((parts.next(), parts.next(), parts.next()),
                (Some(local), Some(domain), None) if !local.is_empty() && domain.contains('.'))
        }) {
            return Err(Reply::error(
                400,
                "ErrorInvalidRecipients",
                &format!(
                    "At least one recipient isn't valid., Recipient '{wrong}' is not resolved. All recipients must be resolved before a message can be submitted."
                ),
            ));
        }
        let subject = match field(message, "subject") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(_) => return Err(bad("subject must be a string.")),
        };
        let (content_type, content) = match field(message, "body") {
            None | Some(Value::Null) => ("Text".to_owned(), String::new()),
            Some(item) => {
                let kind = field(item, "contentType")
                    .and_then(Value::as_str)
                    .unwrap_or("Text");
                if !kind.eq_ignore_ascii_case("text") && !kind.eq_ignore_ascii_case("html") {
                    return Err(bad(&format!("contentType '{kind}' is not Text or HTML.")));
                }
                let content = field(item, "content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                (kind.to_owned(), content.to_owned())
            }
        };
        // Documented as Boolean; Graph's own example sends the string "false".
        let save = match field(&body, "saveToSentItems") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(bad("saveToSentItems must be true or false.")),
        };
        let at = self.now();
        self.sent_mail.push(SentMail {
            from: from.into(),
            from_id: sender,
            to,
            cc,
            subject,
            content_type,
            body: content,
            save_to_sent_items: save,
            at,
        });
        Ok(Reply::empty(202))
    }
}
