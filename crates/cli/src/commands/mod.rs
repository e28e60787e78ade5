//! One module per top-level command.

pub mod audit_ship;
pub mod backup;
pub mod code;
pub mod custody;
pub mod device;
pub mod enroll;
pub mod entra;
pub mod entra_lifecycle;
pub mod files;
pub mod fleet;
pub mod forensic;
pub mod helpdesk;
pub mod notify;
pub mod oidc;
pub mod ops;
pub mod qr;
pub mod recovery;
pub mod seed;
pub mod selfservice;
pub mod selftest;
pub mod serve;
pub mod token;
pub mod uri;
pub mod vault;
pub mod verify;
pub mod verify_state;
