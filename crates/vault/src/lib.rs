//! The vault: oathdesk's encrypted inventory of token secrets.
//!
//! It replaces the plaintext spreadsheet a helpdesk keeps so that it can read
//! a code to a user whose token is still in the post:
//!
//! - users, devices and credentials with a lifecycle
//!   (`stock → burned → assigned → shipped → delivered`, `lost`, `retired`),
//!   every transition recorded with who and when;
//! - secrets sealed under a random vault key, the vault key reachable only
//!   through each operator's own key slot ([`crypto`] explains the scheme);
//! - helpdesk codes that demand an identity-verification record and obey a
//!   per-user rate limit; secrets purged (overwritten) after delivery;
//! - identification of a token from the codes it shows ([`identify`]);
//! - a hash-chained, MAC-authenticated audit log ([`audit`]);
//! - the web console's accounts, sessions, API tokens and login throttling
//!   ([`web`]).
//!
//! Storage sits behind the [`store::Store`] trait; [`sqlite::SqliteStore`]
//! is the embedded default.

pub mod audit;
pub mod crypto;
mod error;
pub mod exchange;
pub mod identify;
pub mod model;
pub mod sqlite;
pub mod store;
mod vault;
pub mod web;

pub use error::{Error, Result};
pub use vault::{
    Delivery, HelpdeskGrant, HelpdeskRequest, IdentifyHit, NewOperator, NewToken, OperatorInfo,
    Session, TokenInfo, Unlock, Vault, settings,
};
