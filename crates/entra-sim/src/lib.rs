//! A simulator of Microsoft Entra's sign-in service and of the parts of
//! Microsoft Graph oathdesk uses, on loopback, for oathdesk's tests and
//! demos: the hardware OATH API, directory users with their data on file,
//! mail, and Temporary Access Passes.
//!
//! It follows what Microsoft documents (`../shared/specs/entra.md` §2–§3,
//! and Graph's reference for users, sendMail and Temporary Access Pass):
//! the JSON shapes of `hardwareOathDevices` and `hardwareOathMethods`, the
//! status codes (`201` create, `204` activate/unassign/delete, `403` without
//! the permission), paging with `@odata.nextLink`, `$filter` by serial
//! number, the five-OATH-methods-per-user limit, update and delete only of
//! unassigned tokens, and activation that accepts only a correct TOTP of the
//! secret it received, within Entra's activation window (±1 day for 30 s
//! tokens, ±2 days for 60 s tokens), never a code of a step at or before the
//! last one used (replay). Where Microsoft documents nothing, the simulator
//! makes a choice and says so (marked *inference* below and in the modules;
//! *observed* marks an answer seen from the real service but not in the
//! reference):
//!
//! - a serial number already in the inventory is refused on create with
//!   `400 Request_BadRequest` (*inference*: Graph's uniqueness error for
//!   directory objects); a bulk create is all or nothing (*inference*);
//! - the bulk create (`PATCH` with `#$delta`) answers `200` with the created
//!   devices, each with its `@contentId` (*inference*);
//! - a wrong activation code answers `400` and marks the token
//!   `failedActivation` (the status exists; the answer is *inference*);
//! - `assignAndActivateBySerialNumber` refuses a serial two tokens share
//!   (*inference*: the call cannot know which one is meant).
//!
//! The modules, by concern:
//!
//! - `state` — the tenant's state and `State::dispatch`,
//!   the one routing table;
//! - `server` — the HTTP glue (faults, log, answers);
//! - `signin` — client credentials, device code, tokens; `access` — who may
//!   do what;
//! - `oath` — the hardware OATH inventory, methods, activation, policy;
//! - `users` — directory users, `$select`/`$expand=manager`/paging;
//! - `mail` — `sendMail`, kept for tests to read;
//! - `tap` — Temporary Access Passes and their policy;
//! - `oidc` — OpenID Connect for apps: discovery, keys, authorize, ID tokens.
//!
//! Tests add apps, users (with their data on file and managers) and admins,
//! set policies, inject faults (throttling with `Retry-After`, server errors
//! before or after a change is made), move the clock, and read the state
//! back: devices, users, sent mail, passes. The client under test is
//! oathdesk's real one; nothing of it is mocked.

mod access;
mod mail;
mod oath;
mod oidc;
mod server;
mod signin;
mod simulator;
mod state;
mod tap;
mod users;

pub use mail::SentMail;
pub use oath::{SimDevice, activation_window_steps};
pub use oidc::IdTokenFault;
pub use simulator::Simulator;
pub use state::{FaultKind, Logged};
pub use tap::{SimTap, TAP_LIFETIME_BOUNDS, TapPolicy};
pub use users::{
    SimUser, USERS_DEFAULT_PAGE, USERS_EXPANDED_MAX_PAGE, USERS_MAX_PAGE, UserProfile,
};

/// The permissions of Microsoft Graph the simulator checks.
pub mod permissions {
    pub const POLICY_READ: &str = "Policy.Read.All";
    pub const POLICY_WRITE: &str = "Policy.ReadWrite.AuthenticationMethod";
    pub const METHODS_READ: &str = "UserAuthenticationMethod.Read.All";
    pub const METHODS_WRITE: &str = "UserAuthenticationMethod.ReadWrite.All";
    pub const USERS_READ: &str = "User.Read.All";
    pub const MAIL_SEND: &str = "Mail.Send";
    /// Everything oathdesk needs.
    pub const ALL: [&str; 4] = [POLICY_WRITE, METHODS_WRITE, USERS_READ, MAIL_SEND];
}

/// Entra admin roles the simulator checks for delegated sign-in.
pub mod roles {
    pub const GLOBAL_ADMIN: &str = "Global Administrator";
    pub const AUTH_POLICY_ADMIN: &str = "Authentication Policy Administrator";
    pub const AUTH_ADMIN: &str = "Authentication Administrator";
    pub const PRIVILEGED_AUTH_ADMIN: &str = "Privileged Authentication Administrator";
}

/// The most OATH methods (hardware and software together) a user may have.
pub const MAX_OATH_METHODS: usize = 5;

/// The tenant id every simulator uses.
pub const TENANT_ID: &str = "72f988bf-0000-4000-8000-00000000cafe";
