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
        }
    }

    /// The Microsoft Graph permission the call needs (least privileged
    /// where Microsoft names one).
    pub fn permission(self) -> &'static str {
        match self {
            Operation::SignIn => "",
            Operation::ListDevices | Operation::ReadPolicy => {
                "Policy.Read.All (or Policy.ReadWrite.AuthenticationMethod)"
            }
            Operation::CreateDevices
            | Operation::UpdateDevice
            | Operation::DeleteDevice
            | Operation::UpdatePolicy => "Policy.ReadWrite.AuthenticationMethod",
            Operation::ReadUser => "User.Read.All",
            Operation::ListMethods
            | Operation::Assign
            | Operation::Activate
            | Operation::Unassign => "UserAuthenticationMethod.ReadWrite.All",
        }
    }

    /// The least-privileged Entra role that may make the call (for
    /// delegated sign-in; an application needs only the permission).
    pub fn least_role(self) -> &'static str {
        match self {
            Operation::SignIn => "",
            Operation::ListDevices
            | Operation::CreateDevices
            | Operation::UpdateDevice
            | Operation::DeleteDevice
            | Operation::ReadPolicy
            | Operation::UpdatePolicy => "Authentication Policy Administrator",
            Operation::ReadUser => "Directory Readers",
            Operation::ListMethods
            | Operation::Assign
            | Operation::Activate
            | Operation::Unassign => {
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
         (granted with admin consent), and a signed-in admin needs at least the role {role}. \
         Graph said: {graph}"
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
            _ => Error::Graph { operation, graph },
        }
    }

    /// The Graph error behind this one, if there is one.
    pub fn graph(&self) -> Option<&GraphError> {
        match self {
            Error::Forbidden { graph, .. }
            | Error::Unauthorized { graph, .. }
            | Error::NotFound { graph, .. }
            | Error::GaveUp { graph, .. }
            | Error::Graph { graph, .. } => Some(graph),
            _ => None,
        }
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
