//! One module per top-level command.

pub mod code;
pub mod qr;
pub mod seed;
pub mod selftest;
pub mod uri;
pub mod verify;
