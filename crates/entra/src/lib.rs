//! Microsoft Entra ID through Microsoft Graph: oathdesk puts hardware OATH
//! tokens into a tenant, assigns them to users and activates them with codes
//! it computes from the vault — the step Entra otherwise makes an admin do by
//! hand, code by code, for every token.
//!
//! - [`auth`] — sign-in (client secret, certificate assertion, device code)
//!   and the token cache;
//! - [`graph`] — the Graph beta calls (inventory, per-user methods, policy,
//!   users with their data on file, mail, Temporary Access Passes), with
//!   paging;
//! - [`http`] — one request with retries that honour `Retry-After`;
//! - [`error`] — errors that name the missing permission and least role;
//! - [`activation`] — the code to send, computed at send time;
//! - [`sync`] — push, assign, activate, compare, unassign and delete against
//!   the vault, idempotent and resumable;
//! - [`lifecycle`] — lost and retired tokens in Entra, by the vault's
//!   `entra.on_lost` policy.
//!
//! The facts this follows are in `../shared/specs/entra.md` §2–§3. The
//! `oathdesk-entra-sim` crate is a loopback simulator of the same API that
//! the tests run this client against.

pub mod activation;
pub mod assertion;
pub mod auth;
pub mod directory;
pub mod error;
pub mod graph;
pub mod http;
pub mod lifecycle;
pub mod sync;

pub use error::{Error, GraphError, Operation, Rejection, Result};
