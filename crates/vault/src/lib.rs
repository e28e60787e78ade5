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
//! - one permission table for every front-end ([`policy`]) and signed rows
//!   for everything that decides who and whether ([`signed`]);
//! - the web console's accounts, sessions, API tokens and login throttling
//!   ([`web`]).
//!
//! Storage sits behind the [`store::Store`] trait: [`sqlite::SqliteStore`]
//! is the embedded default, [`postgres::PgStore`] the shared database, and
//! [`AnyStore`] either one, chosen at run time from a [`Location`]. Both
//! keep their schema with the versioned [`migrations`].

pub mod audit;
pub mod bulk_check;
pub mod crypto;
pub mod drift_series;
mod error;
pub mod fleet;
pub mod identify;
pub mod identify_cache;
pub mod location;
pub mod model;
pub mod policy;
pub mod signed;
pub mod store;
pub mod verification;
pub mod verify_state;
pub use store::{any, migrations, postgres, sqlite};
mod session;
#[cfg(feature = "testing")]
pub mod testing;

pub use any::AnyStore;
pub use error::{Error, Result};
pub use identify_cache::IdentifyCache;
pub use location::Location;
pub use policy::{Permission, Role};
pub use session::verification::{
    Approval, FactView, FactsReport, FactsUpdate, Notice, StepView, VerificationView,
};
pub use session::{BackupReport, RestoreReport, restore};
pub use session::{CSV_EXPORT_TENANT, LostInEntra, OnLost, link_is_live};
pub use session::{
    CopyReport, Delivery, EnrolmentCode, HelpdeskGrant, HelpdeskRequest, IdentifyHit, NewOperator,
    NewToken, OperatorInfo, SerialFinding, Session, TapPermit, TokenInfo, Unlock, Vault,
    VaultReport, code_position, defaults, settings,
};
pub use session::{
    CustodyBatch, CustodyCheck, CustodyEntry, CustodyExport, CustodyFound, MatchedBy,
    SerialSelector, custody,
};
pub use session::{DeliveryLink, LinkPage, LinkProblem, selfservice};
pub use session::{DeviceWrite, ENROLMENT_MIN_SECONDS_LEFT, enrolment_wait};
pub use session::{FORENSIC_QUIET_S, ForensicHit, ForensicReport, ForensicTarget, TokenCheck};
pub use session::{RESYNC_LOOK_AHEAD, SEED_RNG, SeedProvenance};
pub use session::{exchange, oidc, recovery, web};
