//! What can go wrong talking to Entra, and messages that say how to fix it.
//!
//! Graph answers a missing permission with a bare `403 Insufficient
//! privileges`. Which permission and which role were missing depends on the
//! call, so every request names its [`Operation`], and a refusal names the
//! permission and the least-privileged role Microsoft documents for it
//! (`../shared/specs/entra.md` §2.3–§2.4).

use std::fmt;

/// What oathdesk asked Entra to do: for messages and the permission a
/// refusal needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    SignIn,
    ListDevices,
    CreateDevices,
    UpdateDevice,
    DeleteDevice,
    ReadUser,
    ListMethods,
    Assign,
    Activate,
    Unassign,
    ReadPolicy,
    UpdatePolicy,
    /// List the directory's users with their data on file.
    ListUsers,
    /// Send a message from a mailbox.
    SendMail,
    /// Create a Temporary Access Pass for a user.
    CreateTap,
    /// Read the Temporary Access Pass method policy.
    ReadTapPolicy,
}

impl Operation {
    /// What the call does, as a verb phrase.
    pub fn describe(self) -> &'static str {
        match self {
            Operation::SignIn => "sign in",
            Operation::ListDevices => "read the hardware OATH token inventory",
            Operation::CreateDevices => "add hardware OATH tokens to the inventory",
            Operation::UpdateDevice => "update a hardware OATH token",
            Operation::DeleteDevice => "delete a hardware OATH token",
            Operation::ReadUser => "look up a user",
            Operation::ListMethods => "read a user's hardware OATH methods",
            Operation::Assign => "assign a hardware OATH token to a user",
            Operation::Activate => "activate a hardware OATH token",
            Operation::Unassign => "unassign a hardware OATH token",
            Operation::ReadPolicy => "read the hardware OATH authentication method policy",
            Operation::UpdatePolicy => "change the hardware OATH authentication method policy",
            Operation::ListUsers => "list the directory's users with their contact details",
            Operation::SendMail => "send mail",
            Operation::CreateTap => "create a Temporary Access Pass",
            Operation::ReadTapPolicy => {
                "read the Temporary Access Pass authentication method policy"
            }
        }
    }

    /// The Microsoft Graph permission the call needs (least privileged
    /// where Microsoft names one).
    pub fn permission(self) -> &'static str {
        match self {
            Operation::SignIn => "",
            Operation::ListDevices | Operation::ReadPolicy | Operation::ReadTapPolicy => {
                "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod)"
            }
            Operation::CreateDevices
            | Operation::UpdateDevice
            | Operation::DeleteDevice
            | Operation::UpdatePolicy => "Policy.ReadWrite.AuthenticationMethod",
            // User.ReadBasic.All does not cover mobilePhone, employeeId or
            // the manager.
            Operation::ReadUser | Operation::ListUsers => "User.Read.All",
            Operation::ListMethods
            | Operation::Assign
            | Operation::Activate
            | Operation::Unassign
            | Operation::CreateTap => "UserAuthenticationMethod.ReadWrite.All",
            // As an application permission it lets the app send as any
            // mailbox; an Exchange application access policy can narrow it.
            Operation::SendMail => "Mail.Send",
        }
    }

    /// The least-privileged Entra role that may make the call (for
    /// delegated sign-in; an application needs only the permission). Empty
    /// when no Entra role grants it (sign-in; mail, which Exchange grants
    /// per mailbox).
    pub fn least_role(self) -> &'static str {
        match self {
            Operation::SignIn | Operation::SendMail => "",
            Operation::ListDevices
            | Operation::CreateDevices
            | Operation::UpdateDevice
            | Operation::DeleteDevice
            | Operation::ReadPolicy
            | Operation::UpdatePolicy
            | Operation::ReadTapPolicy => "Authentication Policy Administrator",
            Operation::ReadUser | Operation::ListUsers => "Directory Readers",
            Operation::ListMethods
            | Operation::Assign
            | Operation::Activate
            | Operation::Unassign
            | Operation::CreateTap => {
                "Authentication Administrator (Privileged Authentication Administrator for users who hold admin roles)"
            }
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An error from Graph's JSON body: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl GraphError {
    /// Reads Graph's error body; a body that is not Graph's error shape
    /// keeps its first line as the message.
    pub fn parse(status: u16, body: &str) -> GraphError {
        #[derive(serde::Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        match serde_json::from_str::<Envelope>(body) {
            Ok(envelope) => GraphError {
                status,
                code: envelope.error.code,
                message: envelope.error.message,
            },
            Err(_) => GraphError {
                status,
                code: String::new(),
                message: body
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect(),
            },
        }
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => write!(f, "{} {}: {}", self.status, self.code, self.message),
            (false, true) => write!(f, "{} {}", self.status, self.code),
            (true, false) => write!(f, "{} {}", self.status, self.message),
            (true, true) => write!(f, "HTTP {}", self.status),
        }
    }
}

/// Everything the Entra client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing or inconsistent configuration.
    #[error("{0}")]
    Config(String),
    /// The network, TLS or the server's connection failed.
    #[error("cannot {operation}: no answer from {host}: {reason}")]
    Transport {
        operation: Operation,
        host: String,
        reason: String,
    },
    /// The sign-in service refused (wrong secret, unknown app or tenant...).
    #[error("sign-in failed: {0}")]
    SignIn(String),
    /// The caller lacks a permission or role.
    #[error(
        "Entra refused to {operation}: the app needs the Microsoft Graph permission {permission} \
         (granted with admin consent), and {}. Graph said: {graph}",
        role_clause(*.operation, .role)
    )]
    Forbidden {
        operation: Operation,
        permission: &'static str,
        role: &'static str,
        graph: GraphError,
    },
    /// The access token was refused (expired, wrong audience).
    #[error(
        "Entra did not accept the sign-in token to {operation} ({graph}); run 'oathdesk entra login' again"
    )]
    Unauthorized {
        operation: Operation,
        graph: GraphError,
    },
    /// Something named does not exist.
    #[error("cannot {operation}: {what} does not exist in Entra ({graph})")]
    NotFound {
        operation: Operation,
        what: String,
        graph: GraphError,
    },
    /// Throttled or failing until the retries ran out.
    #[error(
        "cannot {operation}: Entra kept answering {graph} after {attempts} attempts; try again later"
    )]
    GaveUp {
        operation: Operation,
        attempts: u32,
        graph: GraphError,
    },
    /// Entra understood the request and refused it for a reason callers
    /// can branch on; `graph.message` is Entra's own explanation, for a
    /// front-end to show ("Entra refused: …").
    #[error("Entra refused to {operation}: {}", entra_words(.graph))]
    Rejected {
        operation: Operation,
        reason: Rejection,
        graph: GraphError,
    },
    /// Any other error answer.
    #[error("cannot {operation}: {graph}")]
    Graph {
        operation: Operation,
        graph: GraphError,
    },
    /// An answer oathdesk cannot read.
    #[error("cannot {operation}: unexpected answer: {reason}")]
    Protocol {
        operation: Operation,
        reason: String,
    },
    /// Something Entra cannot take, caught before sending.
    #[error("{0}")]
    Refused(String),
    /// The vault refused or failed.
    #[error(transparent)]
    Vault(#[from] oathdesk_vault::Error),
}

impl Error {
    /// The error for an error status, mapped by what the call was.
    pub fn from_status(operation: Operation, what: &str, graph: GraphError) -> Error {
        match graph.status {
            401 => Error::Unauthorized { operation, graph },
            403 => Error::Forbidden {
                operation,
                permission: operation.permission(),
                role: operation.least_role(),
                graph,
            },
            404 => Error::NotFound {
                operation,
                what: what.to_owned(),
                graph,
            },
            _ => match Rejection::classify(operation, &graph) {
                Some(reason) => Error::Rejected {
                    operation,
                    reason,
                    graph,
                },
                None => Error::Graph { operation, graph },
            },
        }
    }

    /// The Graph error behind this one, if there is one.
    pub fn graph(&self) -> Option<&GraphError> {
        match self {
            Error::Forbidden { graph, .. }
            | Error::Unauthorized { graph, .. }
            | Error::NotFound { graph, .. }
            | Error::GaveUp { graph, .. }
            | Error::Rejected { graph, .. }
            | Error::Graph { graph, .. } => Some(graph),
            _ => None,
        }
    }

    /// The refusal reason, when Entra refused for one oathdesk recognises.
    pub fn rejection(&self) -> Option<Rejection> {
        match self {
            Error::Rejected { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Entra's own words about the failure (Graph's error message), when
    /// it gave any: what a front-end shows after "Entra refused: ".
    pub fn entra_message(&self) -> Option<&str> {
        self.graph()
            .map(|g| g.message.as_str())
            .filter(|m| !m.trim().is_empty())
    }
}

/// Why Entra refused a request it understood, for callers to branch on.
///
/// Recognised from the answer's status, code and message. Microsoft
/// documents the wording of none of these; the lifetime error's wording
/// was observed from Graph ("Invalid LifetimeInMinutes specified. The valid
/// range between 60 and 480."), the others are matched loosely. An answer
/// that matches none stays [`Error::Graph`], with Entra's message kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// The Temporary Access Pass method is disabled in the tenant's
    /// authentication methods policy.
    TapPolicyDisabled,
    /// The lifetime asked for is outside the range the policy allows.
    TapLifetimeOutOfRange,
    /// The policy allows only one-time passes; a multi-use one was asked for.
    TapOneTimeOnly,
    /// A recipient's address is not valid (`ErrorInvalidRecipients`).
    InvalidRecipients,
}

impl Rejection {
    /// The reason behind a `400` answer to `operation`, if recognised.
    pub fn classify(operation: Operation, graph: &GraphError) -> Option<Rejection> {
        if graph.status != 400 {
            return None;
        }
        let message = graph.message.to_ascii_lowercase();
        match operation {
            Operation::CreateTap if message.contains("lifetimeinminutes") => {
                Some(Rejection::TapLifetimeOutOfRange)
            }
            Operation::CreateTap if message.contains("isusableonce") => {
                Some(Rejection::TapOneTimeOnly)
            }
            Operation::CreateTap
                if message.contains("policy")
                    && (message.contains("disabled") || message.contains("not enabled")) =>
            {
                Some(Rejection::TapPolicyDisabled)
            }
            Operation::SendMail if graph.code.eq_ignore_ascii_case("ErrorInvalidRecipients") => {
                Some(Rejection::InvalidRecipients)
            }
            _ => None,
        }
    }
}

/// The role part of a missing-permission message.
fn role_clause(operation: Operation, role: &str) -> String {
    match (operation, role) {
        (Operation::SendMail, _) => "a signed-in user can send only from their own mailbox \
            (another mailbox needs Exchange Send As rights on it)"
            .into(),
        (_, "") => "no Entra admin role grants it".into(),
        (_, role) => format!("a signed-in admin needs at least the role {role}"),
    }
}

/// Entra's message, or the status when it gave none.
fn entra_words(graph: &GraphError) -> String {
    if graph.message.trim().is_empty() {
        graph.to_string()
    } else {
        graph.message.clone()
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_permission_and_the_least_role() {
        let graph = GraphError::parse(
            403,
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
        );
        let error = Error::from_status(Operation::CreateDevices, "", graph);
        let text = error.to_string();
        assert!(
            text.contains("Policy.ReadWrite.AuthenticationMethod"),
            "{text}"
        );
        assert!(
            text.contains("Authentication Policy Administrator"),
            "{text}"
        );
        assert!(text.contains("Insufficient privileges"), "{text}");
        let error = Error::from_status(
            Operation::Activate,
            "",
            GraphError {
                status: 403,
                ..GraphError::default()
            },
        );
        assert!(
            error
                .to_string()
                .contains("UserAuthenticationMethod.ReadWrite.All"),
            "{error}"
        );
        assert!(error.to_string().contains("Authentication Administrator"));
    }

    #[test]
    fn refusals_of_mail_and_passes_explain_themselves() {
        let error = Error::from_status(
            Operation::SendMail,
            "mailbox x",
            GraphError::parse(
                403,
                r#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again."}}"#,
            ),
        );
        let text = error.to_string();
        assert!(text.contains("Mail.Send"), "{text}");
        assert!(text.contains("their own mailbox"), "{text}");
        assert!(!text.contains("at least the role ."), "{text}");
        let text = Error::from_status(
            Operation::ListUsers,
            "",
            GraphError {
                status: 403,
                ..GraphError::default()
            },
        )
        .to_string();
        assert!(
            text.contains("User.Read.All") && text.contains("Directory Readers"),
            "{text}"
        );
        let text = Error::from_status(
            Operation::CreateTap,
            "",
            GraphError {
                status: 403,
                ..GraphError::default()
            },
        )
        .to_string();
        assert!(
            text.contains("UserAuthenticationMethod.ReadWrite.All"),
            "{text}"
        );
    }

    #[test]
    fn known_refusals_are_typed_and_keep_entras_words() {
        let observed = GraphError::parse(
            400,
            r#"{"error":{"code":"badRequest","message":"Invalid LifetimeInMinutes specified. The valid range between 60 and 480."}}"#,
        );
        let error = Error::from_status(Operation::CreateTap, "user u", observed);
        assert_eq!(error.rejection(), Some(Rejection::TapLifetimeOutOfRange));
        assert_eq!(
            error.entra_message(),
            Some("Invalid LifetimeInMinutes specified. The valid range between 60 and 480.")
        );
        assert_eq!(
            error.to_string(),
            "Entra refused to create a Temporary Access Pass: Invalid LifetimeInMinutes specified. The valid range between 60 and 480."
        );
        let off = GraphError {
            status: 400,
            code: "badRequest".into(),
            message: "Temporary Access Pass is disabled in the authentication methods policy."
                .into(),
        };
        assert_eq!(
            Rejection::classify(Operation::CreateTap, &off),
            Some(Rejection::TapPolicyDisabled)
        );
        // The same words from another call, or another status, are not it.
        assert_eq!(Rejection::classify(Operation::Activate, &off), None);
        let server = GraphError {
            status: 500,
            ..off.clone()
        };
        assert_eq!(Rejection::classify(Operation::CreateTap, &server), None);
        let unknown = Error::from_status(
            Operation::CreateTap,
            "",
            GraphError {
                status: 400,
                code: "badRequest".into(),
                message: "Something new.".into(),
            },
        );
        assert!(matches!(unknown, Error::Graph { .. }), "{unknown:?}");
        assert_eq!(unknown.entra_message(), Some("Something new."));
        let recipients = GraphError {
            status: 400,
            code: "ErrorInvalidRecipients".into(),
            message: "At least one recipient isn't valid.".into(),
        };
        assert_eq!(
            Rejection::classify(Operation::SendMail, &recipients),
            Some(Rejection::InvalidRecipients)
        );
    }

    #[test]
    fn graph_errors_parse_or_keep_a_short_line() {
        let parsed = GraphError::parse(
            404,
            r#"{"error":{"code":"Request_ResourceNotFound","message":"gone"}}"#,
        );
        assert_eq!(parsed.code, "Request_ResourceNotFound");
        assert_eq!(parsed.to_string(), "404 Request_ResourceNotFound: gone");
        let plain = GraphError::parse(502, "Bad Gateway\n<html>...");
        assert_eq!(plain.to_string(), "502 Bad Gateway");
        assert!(matches!(
            Error::from_status(Operation::ListDevices, "x", parsed),
            Error::NotFound { .. }
        ));
    }
}
