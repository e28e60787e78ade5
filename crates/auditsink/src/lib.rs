//! Audit entries to a SIEM, as they are committed.
//!
//! The vault hands every committed entry to its record sink
//! ([`oathdesk_vault::audit::set_record_sink`]) as an
//! [`AuditRecord`](oathdesk_vault::audit::AuditRecord); this crate takes it
//! the rest of the way. It is its own crate so that the vault stays free of
//! sockets and retry policy: the vault defines *what* an entry looks like,
//! this crate *where* it goes and what happens when that place is down.
//!
//! - [`SinkSpec`]: where, parsed from `file:PATH`, `stdout`,
//!   `syslog+udp://HOST:PORT`, `syslog+tcp://HOST:PORT`,
//!   `syslog+unix:///dev/log` (`?facility=local0` on the syslog ones);
//! - [`syslog`]: the RFC 5424 message around the JSON line;
//! - [`Connection`]: one open sink, which sends one line;
//! - [`Shipper`]: a bounded queue and a sender thread per sink, so the
//!   committing thread never waits on a network; retries with backoff, in
//!   order, and reports (to the process log and, once the sink is back, to
//!   the sink) the exact range of entries the full queue dropped, which
//!   `oathdesk audit ship` sends again from the vault.

mod connection;
mod gaps;
mod shipper;
mod spec;
pub mod syslog;

pub use connection::{Connection, GAP_SCHEMA, Line};
pub use shipper::{Report, Shipper, Undelivered};
pub use spec::{Facility, SinkSpec, SpecError};
